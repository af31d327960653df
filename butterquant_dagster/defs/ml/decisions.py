"""The AI hedge-fund analysis as assets: the per-regime signal ensemble and the daily
buy / hold / sell decisions per ticker with the market regime."""

import datetime as dt
import json

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    asset,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml import gates, model_card
from butterquant_dagster.core.ml.ensemble import (
    REGIMES,
    decide,
    decisions_json,
    train_ensemble,
    training_rows,
)
from butterquant_dagster.core.ml.registry import RegistryError
from butterquant_dagster.core.ml.technical import technical_signals
from butterquant_dagster.defs.ml.assets import KINDS, OWNER
from butterquant_dagster.defs.ml.regime import regime_row
from butterquant_dagster.defs.partitions import session_asset, trailing_keys
from butterquant_dagster.defs.staging import run_sessions
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource

ENSEMBLE_PREFIX = "signal_ensemble_"
ENSEMBLE_WINDOW_SESSIONS = 252  # the rolling 12 months the monthly retrain uses
SIGNAL_HISTORY_SESSIONS = 504  # the longest technical lookback (Hurst) with room
HORIZON = 21


@asset(
    group_name="ml",
    owners=[OWNER],
    kinds={"python", "scikitlearn", "onnx"},
    io_manager_key="lake_io_manager",
    deps=["daily_bars", "market_regime"],
    check_specs=[
        AssetCheckSpec(
            "promotion_gates",
            asset="signal_ensemble",
            description="every regime model passed its gates (walk-forward Brier skill over "
            "the base rate of 'up', ONNX parity, not forced); a regime that did not decides "
            "by the signal vote",
        )
    ],
    description=(
        "One classifier per regime (bull / neutral / bear) for the sign of each ticker's "
        "21-session forward return, on the technical signals and regime probabilities; "
        "walk-forward validated, exported to ONNX with the scaler inside, registered, and "
        "promoted only when it passes its promotion gates (never when forced)."
    ),
)
def signal_ensemble(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
):
    store = lake.lake()
    latest = calendar.latest_completed_session(market.now()).isoformat()
    regime_sessions = [p for p in store.partitions("market_regime") if p <= latest]
    if len(regime_sessions) < 2 * HORIZON:
        raise Failure(
            f"signal_ensemble needs market_regime history; found {len(regime_sessions)} sessions"
        )
    window = regime_sessions[-ENSEMBLE_WINDOW_SESSIONS:]
    first = dt.date.fromisoformat(window[0])
    bars_sessions = [
        p
        for p in store.partitions("daily_bars")
        if p <= latest and p >= trailing_keys(first, SIGNAL_HISTORY_SESSIONS, inclusive=False)[0]
    ]
    history = store.read("daily_bars", bars_sessions)
    regimes = store.read("market_regime", window)
    rows = training_rows(
        history, regimes, [dt.date.fromisoformat(s) for s in window], horizon=HORIZON
    )
    try:
        result = train_ensemble(
            rows, seed=models.seed, force=models.force, allow_missing_regimes=True
        )
    except ValueError as exc:
        raise Failure(f"signal_ensemble: {exc}") from exc
    registry = models.registry()
    metadata = result.metadata()
    versions, verdicts, cards = {}, {}, {}
    for name, model in result.models.items():
        verdict = metadata["regimes"][name]["gates"]
        card = _regime_model_card(context, metadata, result.features, name, model, window)
        version = registry.register(
            ENSEMBLE_PREFIX + name, model.onnx_bytes, card, forced=result.forced
        )
        _promote_if_passed(context, registry, name, version.version, verdict)
        versions[name] = version.version
        verdicts[name] = verdict
        cards[name] = model_card.markdown(version.metadata)
    summary = _ensemble_summary(result, versions, verdicts)
    yield Output(
        summary,
        metadata={
            "versions": json.dumps(versions),
            "omitted": json.dumps(result.omitted),
            "accuracy_by_regime": MetadataValue.md(summary.to_markdown(index=False)),
            **{f"model_card_{name}": MetadataValue.md(card) for name, card in cards.items()},
        },
    )
    failed = summary.loc[~summary["gates_passed"]]
    yield AssetCheckResult(
        check_name="promotion_gates",
        passed=failed.empty,
        severity=AssetCheckSeverity.WARN,
        description="every regime model passed its gates"
        if failed.empty
        else "; ".join(f"{r.regime}: {r.gates_reason}" for r in failed.itertuples()),
        metadata={
            "gates": MetadataValue.md(
                "\n\n".join(
                    f"**{name}**\n\n{model_card.gates_markdown(v)}" for name, v in verdicts.items()
                )
                or "(no regime model trained)"
            )
        },
    )


def _regime_model_card(context, metadata: dict, features, name: str, model, window) -> dict:
    """What the registry keeps with one regime's model: its window, label and figures."""
    figures = metadata["regimes"][name]
    return {
        "training_date": dt.date.today().isoformat(),
        "training_window": {"start": window[0], "end": window[-1]},
        "training_samples": model.n_rows,
        "feature_columns": list(features),
        "features_hash": model_card.features_hash(features),
        "label": f"up = the close {HORIZON} sessions later is above the session's close",
        "metrics": figures["metrics"],
        "parity": figures["parity"],
        "folds": figures["folds"],
        "gates": figures["gates"],
        "regime": name,
        # Labels (21-session forward returns) resolved up to the window's last session.
        "label_cutoff": window[-1],
        "dagster_run_id": context.run.run_id,
    }


def _promote_if_passed(context, registry, regime: str, version: str, verdict: dict) -> None:
    """A regime model that failed its gates stays registered; its regime uses the vote."""
    name = ENSEMBLE_PREFIX + regime
    if not verdict["passed"]:
        context.log.warning(
            f"{name} {version} not promoted: {verdict['reason']}; "
            f"decisions in the {regime} regime use the signal vote"
        )
        return
    try:
        registry.promote(
            name, version, reason=f"passed every gate; monthly retrain, run {context.run.run_id}"
        )
    except RegistryError as exc:
        context.log.warning(f"not promoted: {exc}")


def _ensemble_summary(result, versions: dict, verdicts: dict) -> pd.DataFrame:
    """One row per regime, a model or not, with why it does (not) decide."""

    def figure(name: str, metric: str):
        return result.models[name].metrics[metric] if name in result.models else None

    return pd.DataFrame(
        [
            {
                "regime": name,
                "version": versions.get(name, ""),
                "rows": result.models[name].n_rows if name in result.models else 0,
                "accuracy": figure(name, "accuracy"),
                "brier_skill": figure(name, "brier_skill"),
                "roc_auc": figure(name, "roc_auc"),
                "gates_passed": bool(verdicts[name]["passed"]) if name in verdicts else False,
                "gates_reason": verdicts[name]["reason"]
                if name in verdicts
                else result.omitted.get(name, "no model"),
            }
            for name in REGIMES
        ]
    )


@session_asset(
    name="trading_decisions",
    group_name="ml",
    owners=[OWNER],
    kinds=KINDS,
    deps=["daily_bars", "market_regime", "signal_ensemble"],
    description=(
        "Per ticker and session: buy / sell / hold with confidence and deterministic "
        "reasoning naming the signals, plus the market regime and its confidence."
    ),
)
def trading_decisions(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    sessions = run_sessions(context, market.now())
    store = lake.lake()
    registry = models.registry()
    loaded, cutoffs = {}, {}
    for name in REGIMES:
        model, warnings = registry.load_champion_with_fallback(ENSEMBLE_PREFIX + name)
        for warning in warnings:
            context.log.warning(warning)
        if model is not None and not gates.passed(model.metadata):
            context.log.warning(
                f"{ENSEMBLE_PREFIX + name} {model.version} is champion but did not pass "
                f"its promotion gates ({gates.failure_reason(model.metadata)}): the "
                f"{name} regime decides by the signal vote"
            )
            model = None
        loaded[name] = model.session if model else None
        cutoffs[name] = (model.metadata.get("label_cutoff", "") if model else "") or ""
    frames, last_json = [], {}
    # One read of every bar the run needs; each session then sees only its past.
    window = [*trailing_keys(sessions[0], SIGNAL_HISTORY_SESSIONS, inclusive=False)]
    window += [d.isoformat() for d in calendar.sessions(sessions[0], sessions[-1])]
    bars = store.read_existing("daily_bars", window)
    bar_day = pd.to_datetime(bars["session"])
    for session in sessions:
        key = session.isoformat()
        regime = regime_row(store, key)
        if regime is None:
            raise Failure(
                f"trading_decisions for {key} needs market_regime for that "
                "session; materialize it first"
            )
        first = trailing_keys(session, SIGNAL_HISTORY_SESSIONS, inclusive=False)[0]
        history = bars.loc[(bar_day >= first) & (bar_day <= key)]
        signals, _skipped = technical_signals(history, session)
        # A model may only decide sessions on or after the last label it learned from.
        usable = {n: (m if key >= cutoffs[n] else None) for n, m in loaded.items()}
        decisions = decide(signals, regime, usable)
        decisions.insert(0, "session", pd.Timestamp(session))
        decisions["market_regime"] = regime["market_regime"]
        decisions["regime_confidence"] = float(regime["regime_confidence"])
        frames.append(decisions)
        last_json = decisions_json(decisions, regime)
    out = pd.concat(frames, ignore_index=True)
    preview = dict(list(last_json.get("decisions", {}).items())[:5])
    return Output(
        out,
        metadata={
            "rows": len(out),
            "actions": json.dumps(out["action"].value_counts().to_dict()),
            "models": json.dumps({k: bool(v) for k, v in loaded.items()}),
            "decisions_json_preview": MetadataValue.json({**last_json, "decisions": preview}),
        },
    )
