"""The market regime as assets: the current regime model fitted on a chosen window of bars,
and each session's regime from a model fitted only on the sessions before it."""

import datetime as dt
import json

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml.regime import (
    MIN_TRAINING_ROWS,
    agreement,
    confidence_reliability,
    fit_regime_model,
    index_features,
    point_in_time_regimes,
)
from butterquant_dagster.core.ml.regime_gates import regime_gates
from butterquant_dagster.defs.partitions import session_asset
from butterquant_dagster.defs.staging import run_sessions
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource

OWNER = "team:quant-research"
KINDS = {"python", "parquet"}
REGIME_COLUMNS = ("market_regime", "regime_confidence", "p_bear", "p_neutral", "p_bull")
# Sessions of the synthetic market's hidden truth the current model is graded on.
VALIDATION_SESSIONS = 504


def regime_row(store, key: str) -> dict | None:
    if key not in store.partitions("market_regime"):
        return None
    row = store.read("market_regime", [key]).iloc[0]
    return {k: row[k] for k in REGIME_COLUMNS}


def _index(store, models: ModelsResource, last: str) -> pd.DataFrame:
    """The regime index's daily features over every stored session up to ``last``."""
    sessions = [p for p in store.partitions("daily_bars") if p <= last]
    if not sessions:
        raise Failure("the regime needs daily_bars; backfill the market first")
    try:
        return index_features(
            store.read("daily_bars", sessions), models.regime_index_symbol or None
        )
    except ValueError as exc:
        raise Failure(f"regime index: {exc}") from exc


class RegimeWindow(Config):
    """The training window of the regime model; empty means every stored session."""

    start_date: str = Field(default="", description="first session to fit on (YYYY-MM-DD)")
    end_date: str = Field(default="", description="last session to fit on (YYYY-MM-DD)")


def _requested_window(config: RegimeWindow, latest: str) -> tuple[str | None, str]:
    """The window as asked, refused (never widened) when it cannot be honoured."""
    for name in ("start_date", "end_date"):
        value = getattr(config, name)
        if value:
            try:
                dt.date.fromisoformat(value)
            except ValueError as exc:
                raise Failure(f"regime_model: {name} {value!r} is not a date (YYYY-MM-DD)") from exc
    start = config.start_date or None
    end = config.end_date or latest
    if end > latest:
        raise Failure(
            f"regime_model: the window ends {end}, after the latest completed session with "
            f"bars ({latest}); refusing rather than fitting on a shorter window"
        )
    if start and start > end:
        raise Failure(f"regime_model: start_date {start} is after end_date {end}")
    return start, end


@asset(
    group_name="regime",
    owners=[OWNER],
    kinds={"python", "hmmlearn"},
    io_manager_key="lake_io_manager",
    deps=["daily_bars"],
    description=(
        "The current regime model: a calm / stressed Gaussian HMM of the index's daily return "
        "fitted only on the configured window (refused, never widened, if the window cannot "
        "be honoured), its gates graded on the point-in-time history, parameters as JSON."
    ),
)
def regime_model(
    context: AssetExecutionContext,
    config: RegimeWindow,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    store = lake.lake()
    stored = store.partitions("daily_bars")
    completed = calendar.latest_completed_session(market.now()).isoformat()
    latest = max((p for p in stored if p <= completed), default="")
    if not latest:
        raise Failure("regime_model needs daily_bars; backfill the market first")
    start, end = _requested_window(config, latest)
    features = _index(store, models, latest)
    try:
        model = fit_regime_model(features, seed=models.seed, start=start, end=end)
    except ValueError as exc:
        raise Failure(f"regime_model: {exc}") from exc
    validation = _validate(store, models, features, start, latest)
    frame = pd.DataFrame(
        [
            {
                "model_json": model.to_json(),
                "train_start": model.train_start,
                "train_end": model.train_end,
                "requested_start": start or "",
                "requested_end": end,
                "n_samples": model.n_samples,
                "gates_passed": validation["passed"],
                "gates_json": json.dumps(validation),
                "fitted_at": dt.datetime.now(dt.UTC).isoformat(),
                "run_id": context.run.run_id,
            }
        ]
    )
    return Output(
        frame,
        metadata={
            "train_start": model.train_start,
            "train_end": model.train_end,
            "n_samples": model.n_samples,
            "annual_vol_by_state": ", ".join(
                f"{name} {vol:.1%}" for name, vol in model.annual_vols.items()
            ),
            "gates_passed": validation["passed"],
            "gates": MetadataValue.md(_gates_markdown(validation)),
            "log_likelihood": float(model.log_likelihood),
        },
    )


def _validate(store, models, features, start, latest) -> dict:
    """The regime gates on the point-in-time history of the last sessions with a known
    truth (the synthetic market's hidden regime); without a truth, the gates say so."""
    truth_keys = [k for k in store.partitions("market_truth") if k <= latest]
    if start:
        features = features[pd.to_datetime(features["session"]) >= pd.Timestamp(start)]
    if not truth_keys:
        return regime_gates(None, None)
    keys = truth_keys[-VALIDATION_SESSIONS:]
    labelled, _, _ = point_in_time_regimes(
        features, [dt.date.fromisoformat(k) for k in keys], seed=models.seed
    )
    if labelled.empty:
        return regime_gates(None, None)
    truth = store.read("market_truth", keys)
    return regime_gates(agreement(labelled, truth), confidence_reliability(labelled, truth))


def _gates_markdown(validation: dict) -> str:
    rows = ["| gate | value | threshold | passed |", "| --- | --- | --- | --- |"]
    for gate in validation["gates"]:
        value = "n/a" if gate["value"] is None else f"{gate['value']:.3f}"
        rows.append(f"| {gate['name']} | {value} | {gate['threshold']} | {gate['passed']} |")
    return "\n".join(rows) + f"\n\n{validation['summary']}"


@session_asset(
    name="market_regime",
    group_name="regime",
    owners=[OWNER],
    kinds=KINDS,
    deps=["daily_bars"],
    description=(
        "The market regime of each session, point in time: each month's sessions are "
        "labelled by a model refitted on the index's returns strictly before that month, "
        "filtered forward only. market_regime, regime_confidence, the three probabilities "
        "and the training window of the model that labelled the row."
    ),
)
def market_regime(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    sessions = run_sessions(context, market.now())
    store = lake.lake()
    features = _index(store, models, sessions[-1].isoformat())
    try:
        rows, refits, unlabelled = point_in_time_regimes(features, sessions, seed=models.seed)
    except ValueError as exc:
        raise Failure(f"market_regime: {exc}") from exc
    if unlabelled:
        raise Failure(
            f"no regime for {len(unlabelled)} session(s), e.g. {unlabelled[0]}: a regime "
            f"is fitted only on the sessions before it and needs {MIN_TRAINING_ROWS} "
            "sessions of index returns first; backfill earlier bars or start later"
        )
    metadata = {
        "sessions": len(rows),
        "refits": len(refits),
        "regime_counts": json.dumps(rows["market_regime"].value_counts().to_dict()),
        "latest_model_window": f"{rows['model_train_start'].iloc[-1]}.."
        f"{rows['model_train_end'].iloc[-1]}",
    }
    truth_keys = [s.isoformat() for s in sessions]
    if set(truth_keys) <= set(store.partitions("market_truth")):
        truth = store.read("market_truth", truth_keys)
        scored = agreement(rows, truth)
        metadata["agreement_with_true_regime"] = float(scored["accuracy"])
        metadata["balanced_accuracy"] = float(scored["balanced_accuracy"])
        metadata["majority_baseline"] = float(scored["baseline_accuracy"])
        metadata["mean_confidence"] = float(rows["regime_confidence"].mean())
    return Output(rows.reset_index(drop=True), metadata=metadata)
