"""The market regime as assets: the HMM fitted on a window of bars, and each session's
regime filtered forward from it."""

import datetime as dt
import json

import numpy as np
import pandas as pd
from dagster import (
    AssetExecutionContext,
    Failure,
    Output,
    PartitionsDefinition,
    asset,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml.regime import (
    RegimeModel,
    agreement,
    filter_regimes,
    fit_regime_model,
    index_features,
)
from butterquant_dagster.defs.partitions import session_asset
from butterquant_dagster.defs.staging import run_sessions
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource

OWNER = "team:quant-research"
KINDS = {"python", "parquet"}


def regime_row(store, key: str) -> dict | None:
    if key not in store.partitions("market_regime"):
        return None
    row = store.read("market_regime", [key]).iloc[0]
    return {
        k: row[k] for k in ("market_regime", "regime_confidence", "p_bear", "p_neutral", "p_bull")
    }


# ------------------------------------------------------------------------------ regime
@asset(
    group_name="regime",
    owners=[OWNER],
    kinds={"python", "hmmlearn"},
    io_manager_key="lake_io_manager",
    deps=["daily_bars"],
    description=(
        "A 3-state Gaussian HMM on a market index's daily return and realized volatility, "
        "states ordered by mean return and named bear / neutral / bull; parameters as JSON."
    ),
)
def regime_model(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    store = lake.lake()
    latest = calendar.latest_completed_session(market.now()).isoformat()
    sessions = [p for p in store.partitions("daily_bars") if p <= latest]
    if not sessions:
        raise Failure("regime_model needs daily_bars; backfill the market first")
    features = index_features(
        store.read("daily_bars", sessions), models.regime_index_symbol or None
    )
    try:
        model = fit_regime_model(features, seed=models.seed)
    except ValueError as exc:
        raise Failure(f"regime_model: {exc}") from exc
    frame = pd.DataFrame(
        [
            {
                "model_json": model.to_json(),
                "train_start": model.train_start,
                "train_end": model.train_end,
                "n_samples": model.n_samples,
                "fitted_at": dt.datetime.now(dt.UTC).isoformat(),
                "run_id": context.run.run_id,
            }
        ]
    )
    means = np.asarray(model.means)
    return Output(
        frame,
        metadata={
            "train_start": model.train_start,
            "train_end": model.train_end,
            "n_samples": model.n_samples,
            "state_mean_returns_standardized": ", ".join(
                f"{name} {m:+.3f}" for name, m in zip(model.state_names, means[:, 0], strict=True)
            ),
            "log_likelihood": float(model.log_likelihood),
        },
    )


def build_regime_assets(partitions: PartitionsDefinition):
    @session_asset(
        partitions,
        name="market_regime",
        group_name="regime",
        owners=[OWNER],
        kinds=KINDS,
        deps=["regime_model", "daily_bars"],
        description=(
            "The market regime of each session by forward filtering only (never smoothing): "
            "market_regime, regime_confidence and the three probabilities. Sessions inside "
            "the regime model's training window are flagged in_sample."
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
        try:
            fitted = store.read("regime_model")
        except Exception as exc:
            raise Failure(
                "market_regime needs a regime_model: materialize it first (butterquant train)"
            ) from exc
        model = RegimeModel.from_json(fitted["model_json"].iloc[0])
        last = sessions[-1].isoformat()
        history = [p for p in store.partitions("daily_bars") if p <= last]
        features = index_features(
            store.read("daily_bars", history), models.regime_index_symbol or None
        )
        filtered = filter_regimes(model, features)
        wanted = pd.to_datetime([s.isoformat() for s in sessions])
        rows = filtered[filtered["session"].isin(wanted)].copy()
        missing = sorted(set(wanted) - set(rows["session"]))
        if missing:
            raise Failure(
                f"no regime for {len(missing)} session(s), e.g. {missing[0].date()}: the index "
                "needs a few sessions of bars before them to measure realized volatility"
            )
        rows["in_sample"] = rows["session"] <= pd.Timestamp(model.train_end)
        metadata = {
            "sessions": len(rows),
            "regime_counts": json.dumps(rows["market_regime"].value_counts().to_dict()),
        }
        truth_keys = [s.isoformat() for s in sessions]
        if set(truth_keys) <= set(store.partitions("market_truth")):
            scored = agreement(rows, store.read("market_truth", truth_keys))
            metadata["agreement_with_true_regime"] = float(scored["accuracy"])
            metadata["majority_baseline"] = float(scored["baseline_accuracy"])
        return Output(rows.reset_index(drop=True), metadata=metadata)

    return [market_regime]
