"""The models as assets: market regime, candidate features, training set, the probability
model and its promotion, and the daily AI probabilities.

Thin: each asset reads the lake, calls core.ml, and writes frames or registry entries.
Retraining a model is re-materializing its asset, so every version has lineage to the
data it saw (the run id and upstream data versions are stored in its metadata).
"""

import datetime as dt

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MetadataValue,
    Output,
    asset,
    asset_check,
)

from butterquant_dagster.core import calendar, progress
from butterquant_dagster.core.ml import gates, model_card, onnx_export
from butterquant_dagster.core.ml.features import (
    FEATURE_COLUMNS,
    KEY_COLUMNS,
    build_features,
    feature_matrix,
    ticker_context,
)
from butterquant_dagster.core.ml.probability import (
    LABEL,
    LABEL_DEFINITION,
    TrainingError,
    latest_fold_brier,
    train,
    with_rule_ev,
)
from butterquant_dagster.core.ml.registry import RegistryError, age_days
from butterquant_dagster.core.options.costs import COST_BASIS
from butterquant_dagster.core.scan.surface import iv_rank
from butterquant_dagster.defs.ml.regime import regime_row
from butterquant_dagster.defs.partitions import session_asset, trailing_keys
from butterquant_dagster.defs.staging import report_progress, run_sessions
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource

OWNER = "team:quant-research"
KINDS = {"python", "parquet"}
WIN_MODEL = "butterfly_win_probability"
YIELD_MODEL = "butterfly_expected_yield"
IV_HISTORY_SESSIONS = 252


# ------------------------------------------------------------------------------ features
@session_asset(
    name="candidate_features",
    group_name="ml",
    owners=[OWNER],
    kinds=KINDS,
    deps=["butterfly_candidates", "iv_surface", "market_regime", "trading_decisions"],
    description=(
        "The probability model's features of every candidate, from the one feature "
        "pipeline (core/ml/features.py) that training and inference both call."
    ),
)
def candidate_features(
    context: AssetExecutionContext, lake: LakeResource, market: MarketDataResource
) -> Output:
    sessions = run_sessions(context, market.now())
    store = lake.lake()
    frames, without_regime = [], 0
    # One read of the surface history the whole run needs; each session sees its past.
    window = trailing_keys(sessions[0], IV_HISTORY_SESSIONS, inclusive=False)
    window += [d.isoformat() for d in calendar.sessions(sessions[0], sessions[-1])]
    surfaces = store.read_existing("iv_surface", window)
    surface_day = (
        pd.to_datetime(surfaces["session"]) if len(surfaces) else pd.Series(dtype="datetime64[ns]")
    )
    for done, session in enumerate(sessions, start=1):
        key = session.isoformat()
        candidates = store.read("butterfly_candidates", [key])
        today = store.read("iv_surface", [key])
        first = trailing_keys(session, IV_HISTORY_SESSIONS, inclusive=False)
        history = (
            surfaces.loc[(surface_day >= first[0]) & (surface_day < key)]
            if len(surfaces) and first
            else today.iloc[:0]
        )
        rank, percentile, _ = iv_rank(history, today)
        regime = regime_row(store, key)
        without_regime += regime is None
        decisions = (
            store.read("trading_decisions", [key])
            if key in store.partitions("trading_decisions")
            else None
        )
        context_frame = ticker_context(today, rank, percentile, regime, decisions)
        frames.append(build_features(candidates, context_frame))
        report_progress(context, "candidate_features", done, len(sessions), session)
    features = pd.concat(frames, ignore_index=True)
    return Output(
        features,
        metadata={
            "rows": len(features),
            "features": len(FEATURE_COLUMNS),
            "sessions_without_regime": without_regime,
        },
    )


@session_asset(
    name="ai_probabilities",
    group_name="ml",
    owners=[OWNER],
    kinds={"python", "onnx"},
    deps=["candidate_features", "probability_model_champion"],
    description=(
        "The champion model's P(win) and expected yield for every candidate of the "
        "session, with the model version; empty with model_status saying why when there "
        "is no champion that passed its promotion gates (rankings then use the rule "
        "score). ml_expected_roi is filled only when the paired yield model passed its "
        "own gates (yield_model_validated). A champion that fails to load falls back to "
        "the previous version, flagged."
    ),
)
def ai_probabilities(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    sessions = run_sessions(context, market.now())
    store = lake.lake()
    registry = models.registry()
    win, win_warnings = registry.load_champion_with_fallback(WIN_MODEL)
    gain, gain_warnings = _paired_yield_model(registry, win)
    for warning in win_warnings + gain_warnings:
        context.log.warning(warning)
    # A model may only score sessions on or after the last outcome it learned from:
    # scoring an earlier session would use outcomes that were not yet known then.
    cutoff = (win.metadata.get("label_cutoff", "") if win else "") or ""
    # A champion promoted before the gates existed (or by hand around them) is not used.
    unproven = win is not None and not gates.passed(win.metadata)
    yield_validated = gain is not None and gates.passed(gain.metadata)
    yield_status = (
        "validated"
        if yield_validated
        else "no yield model"
        if gain is None
        else f"not validated: {gates.failure_reason(gain.metadata)}"
    )
    frames = []
    for session in sessions:
        features = store.read("candidate_features", [session.isoformat()])
        out = features[KEY_COLUMNS].copy()
        if win is None or gain is None or unproven or session.isoformat() < cutoff:
            out["ml_success_prob"] = np.nan
            out["ml_expected_roi"] = np.nan
            out["yield_model_validated"] = False
            out["model_version"] = "none"
            out["model_status"] = (
                "no champion: ranked by the rule score"
                if win is None or gain is None
                else f"champion {win.version} did not pass its promotion gates "
                f"({gates.failure_reason(win.metadata)}): not used"
                if unproven
                else f"champion learned outcomes up to {cutoff}: not used before it"
            )
        else:
            win.check_features(FEATURE_COLUMNS)
            gain.check_features(FEATURE_COLUMNS)
            x = feature_matrix(features, FEATURE_COLUMNS)
            out["ml_success_prob"] = onnx_export.run(win.session, x)
            # An unvalidated yield estimate is not written, so nothing can rank by it.
            out["ml_expected_roi"] = (
                onnx_export.run(gain.session, x) / 1000.0 if yield_validated else np.nan
            )
            out["yield_model_validated"] = yield_validated
            out["model_version"] = win.version
            status = "fallback" if win_warnings or gain_warnings else "champion"
            out["model_status"] = (
                status if yield_validated else f"{status}; yield model {yield_status}"
            )
        frames.append(out)
    probabilities = pd.concat(frames, ignore_index=True)
    return Output(
        probabilities,
        metadata={
            "rows": len(probabilities),
            "model_version": win.version if win else "none",
            "win_model": "none"
            if win is None
            else f"{win.version}: "
            + ("gates passed" if not unproven else gates.failure_reason(win.metadata)),
            "yield_model": yield_status,
            "warnings": "; ".join(win_warnings + gain_warnings) or "none",
        },
    )


def _paired_yield_model(registry, win):
    """The expected-yield model trained together with ``win`` (never a mismatched pair)."""
    if win is None:
        return None, []
    pair = f"{WIN_MODEL}:{win.version}"
    versions = registry.versions(YIELD_MODEL) if YIELD_MODEL in registry.names() else []
    for version in reversed(versions):
        if version.metadata.get("paired_with") == pair:
            try:
                return registry.load(YIELD_MODEL, version.version), []
            except RegistryError as exc:
                return None, [f"{YIELD_MODEL} paired with {pair} failed to load: {exc}"]
    return None, [f"no {YIELD_MODEL} paired with {pair}"]


# ------------------------------------------------------------------------------ training
@asset(
    group_name="ml",
    owners=[OWNER],
    kinds=KINDS,
    io_manager_key="lake_io_manager",
    deps=["candidate_features", "candidate_outcomes"],
    description=(
        "Features joined with their recorded outcomes, only outcomes known at the training "
        "cutoff, sampled reproducibly (evenly across entry sessions) to the size cap."
    ),
)
def training_set(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
) -> Output:
    store = lake.lake()
    cutoff = calendar.latest_completed_session(market.now())
    sessions = sorted(
        set(store.partitions("candidate_outcomes")) & set(store.partitions("candidate_features"))
    )
    if models.training_sessions:
        sessions = sessions[-models.training_sessions :]
    if not sessions:
        raise Failure(
            "training_set: no session has both candidate_features and "
            "candidate_outcomes; scan and settle some history first"
        )
    per_session = max(1, models.max_training_rows // len(sessions))
    tickers = models.training_ticker_set()
    frames = []
    for key in sessions:
        outcomes = store.read("candidate_outcomes", [key])
        outcomes = outcomes[pd.to_datetime(outcomes["expiry"]) <= pd.Timestamp(cutoff)]
        if tickers:  # filter before sampling, so the cap is spent on the chosen tickers
            outcomes = outcomes[outcomes["symbol"].isin(tickers)]
        if len(outcomes) > per_session:
            outcomes = outcomes.sample(n=per_session, random_state=models.seed)
        features = store.read("candidate_features", [key])
        if tickers:
            features = features[features["symbol"].isin(tickers)]
        joined = features.merge(
            outcomes[[*KEY_COLUMNS, LABEL, "yield_per_1000"]], on=KEY_COLUMNS, how="inner"
        )
        frames.append(_with_rule_ev(store, key, joined))
    rows = pd.concat(frames, ignore_index=True)
    return Output(
        rows,
        metadata={
            "rows": len(rows),
            "sessions": len(sessions),
            "first_session": sessions[0],
            "last_session": sessions[-1],
            "cutoff": cutoff.isoformat(),
            "win_rate": float(rows[LABEL].mean()) if len(rows) else 0.0,
        },
    )


def _with_rule_ev(store, key: str, rows: pd.DataFrame) -> pd.DataFrame:
    if key not in store.partitions("butterfly_candidates"):
        return rows
    return with_rule_ev(rows, store.read("butterfly_candidates", [key]))


PROBABILITY_CHECKS = [
    AssetCheckSpec(
        "onnx_parity",
        asset="probability_model",
        blocking=True,
        description="ONNX and scikit-learn agree within 1e-5 on held-out rows",
    ),
    AssetCheckSpec(
        "trained_on_enough_data",
        asset="probability_model",
        blocking=True,
        description="enough rows and both classes; a forced model never passes",
    ),
    AssetCheckSpec(
        "beats_champion",
        asset="probability_model",
        blocking=True,
        description="lower Brier than the champion on the same latest walk-forward "
        "fold by the margin, and calibration not worse",
    ),
    AssetCheckSpec(
        "promotion_gates",
        asset="probability_model",
        blocking=True,
        description="P(win)'s absolute gates (core/ml/gates.py): Brier skill over the base "
        "rate, latest-fold ECE, ONNX parity, better AUC and Brier than the best single "
        "feature, not forced, and the champion comparison; every gate with its value",
    ),
    AssetCheckSpec(
        "yield_model_gates",
        asset="probability_model",
        description="the expected-yield model's gates: out-of-fold rank correlation, its top "
        "decile above all candidates and above the top decile by ev_per_1000; until they "
        "pass, nothing ranks by it",
    ),
]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@asset(
    group_name="ml",
    owners=[OWNER],
    kinds={"python", "scikitlearn", "onnx"},
    io_manager_key="lake_io_manager",
    deps=["training_set"],
    check_specs=PROBABILITY_CHECKS,
    description=(
        "Trains P(win) and the expected yield per $1,000 on the training set, validates them "
        "walk-forward with a purge gap, exports both to ONNX and registers them (not yet "
        "champion: promotion is gated by the blocking checks)."
    ),
)
def probability_model(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    market: MarketDataResource,
):
    store = lake.lake()
    rows = store.read("training_set")
    # Training takes minutes on a year of history: its steps go to the run's log too.
    unsubscribe = progress.subscribe(
        lambda task, done, total, label: context.log.info(f"{task}: {done}/{total} {label}")
    )
    try:
        trained = train(
            rows,
            n_folds=models.n_folds,
            seed=models.seed,
            min_rows=models.min_training_rows,
            min_class=models.min_class_rows,
            force=models.force,
        )
    except TrainingError as exc:
        raise Failure(str(exc)) from exc
    finally:
        unsubscribe()
    registry = models.registry()
    challenger, champion_score, champion_version, how = _promotion_scores(
        context, registry, rows, trained
    )
    beats, why = _beats(challenger, champion_score, models, how)
    win_verdict = gates.verdict(
        [*trained.win_gates, gates.Gate("beats_champion", beats, True, beats, why)]
    )
    yield_verdict = gates.verdict(trained.yield_gates)
    checks_passed = bool(win_verdict["passed"])
    promotion = {
        "challenger": challenger,
        "champion": champion_score,
        "basis": how,
        "passed": checks_passed,
        "reason": why if checks_passed else win_verdict["reason"],
    }
    metadata = _win_model_card(context, rows, trained, market, win_verdict, promotion)
    metadata["compared_with"] = champion_version
    win_version = registry.register(
        WIN_MODEL, trained.classifier_onnx, _jsonable(metadata), forced=trained.forced
    )
    yield_metadata = _yield_model_card(metadata, trained, yield_verdict, win_version.version)
    gain_version = registry.register(
        YIELD_MODEL, trained.regressor_onnx, _jsonable(yield_metadata), forced=trained.forced
    )
    verdicts = {"win": win_verdict, "yield": yield_verdict}
    yield _training_output(trained, win_version, gain_version, verdicts, champion_version)
    yield from _training_checks(trained, beats, why, verdicts)


def _win_model_card(context, rows, trained, market, verdict: dict, promotion: dict) -> dict:
    """What the registry keeps with the P(win) model: provenance, every figure of its
    validation, and why it was (not) promoted."""
    return {
        "training_date": market.now().date().isoformat(),
        "label_cutoff": str(pd.Timestamp(rows["expiry"].max()).date()),
        "training_window": {"start": trained.window[0], "end": trained.window[1]},
        "training_samples": trained.training_samples,
        "feature_columns": FEATURE_COLUMNS,
        "features_hash": model_card.features_hash(FEATURE_COLUMNS),
        "label": LABEL_DEFINITION,
        "cost_basis": COST_BASIS,
        "metrics": dict(trained.metrics),
        # What the drift report compares live features and predictions with (PSI); the
        # predictions are out of fold, as live ones are.
        "feature_reference": trained.drift_reference(rows),
        "folds": trained.folds,
        "parity": trained.parity,
        "latest_fold": {k: v for k, v in trained.latest_fold.items() if k != "test_rows"},
        "best_single_feature": trained.best_feature,
        "single_feature_baselines": trained.feature_baselines[:5],
        "gates": verdict,
        "promotion": promotion,
        "opset": onnx_export.OPSET,
        "libraries": _library_versions(),
        "dagster_run_id": context.run.run_id,
        "upstream": {"training_set": _data_version(context, "training_set")},
    }


def _yield_model_card(win_card: dict, trained, verdict: dict, win_version: str) -> dict:
    """The yield model shares the P(win) model's provenance, with its own label, figures
    and gates; it is used only beside the P(win) version it was trained with."""
    shared = {
        k: v
        for k, v in win_card.items()
        if k not in ("best_single_feature", "single_feature_baselines", "promotion")
    }
    return {
        **shared,
        "label": "expected yield per $1,000 at risk (clipped 1..99% of the training rows)",
        "metrics": trained.yield_metrics,
        "gates": verdict,
        "paired_with": f"{WIN_MODEL}:{win_version}",
    }


def _training_output(trained, win_version, gain_version, verdicts: dict, compared_with):
    checks_passed = bool(verdicts["win"]["passed"])
    yield_passed = bool(checks_passed and verdicts["yield"]["passed"])
    summary = pd.DataFrame(
        [
            {
                "win_model_version": win_version.version,
                "yield_model_version": gain_version.version,
                "forced": trained.forced,
                "checks_passed": checks_passed,
                "yield_gates_passed": yield_passed,
                "gates_reason": verdicts["win"]["reason"],
                "yield_gates_reason": verdicts["yield"]["reason"],
                "brier": trained.metrics["brier"],
                "roc_auc": trained.metrics["roc_auc"],
                "ece": trained.metrics["ece"],
                "training_samples": trained.training_samples,
                "compared_with": compared_with or "",
            }
        ]
    )
    best = trained.best_feature or {}
    return Output(
        summary,
        metadata={
            "win_model_version": win_version.version,
            "checks_passed": checks_passed,
            "gates_passed": checks_passed,
            "gates_reason": verdicts["win"]["reason"],
            "yield_gates_passed": yield_passed,
            "yield_gates_reason": verdicts["yield"]["reason"],
            "roc_auc": trained.metrics["roc_auc"],
            "brier": trained.metrics["brier"],
            "brier_skill": trained.metrics["brier_skill"],
            "ece": trained.metrics["ece"],
            "best_single_feature": str(best.get("feature", "none")),
            "best_single_feature_auc": best.get("roc_auc"),
            "best_single_feature_brier": best.get("brier"),
            "yield_spearman": trained.yield_metrics.get("spearman"),
            "top_decile_yield_per_1000": trained.metrics["economic"]["top_decile_mean_yield"],
            "all_yield_per_1000": trained.metrics["economic"]["all_mean_yield"],
            "training_samples": trained.training_samples,
            "model_card": MetadataValue.md(model_card.markdown(win_version.metadata)),
            "yield_model_card": MetadataValue.md(model_card.markdown(gain_version.metadata)),
        },
    )


def _training_checks(trained, beats: bool, why: str, verdicts: dict):
    yield AssetCheckResult(
        check_name="onnx_parity",
        passed=all(p["passed"] for p in trained.parity.values()),
        metadata={k: v["max_abs_diff"] for k, v in trained.parity.items()},
    )
    yield AssetCheckResult(
        check_name="trained_on_enough_data",
        passed=not trained.forced,
        description="forced model: registered, never promoted" if trained.forced else "ok",
        metadata={"training_samples": trained.training_samples},
    )
    yield AssetCheckResult(
        check_name="beats_champion",
        passed=beats,
        description=why,
        severity=AssetCheckSeverity.ERROR,
    )
    for check_name, verdict, severity in (
        ("promotion_gates", verdicts["win"], AssetCheckSeverity.ERROR),
        ("yield_model_gates", verdicts["yield"], AssetCheckSeverity.WARN),
    ):
        yield AssetCheckResult(
            check_name=check_name,
            passed=bool(verdict["passed"]),
            description=verdict["reason"],
            severity=severity,
            metadata={"gates": MetadataValue.md(model_card.gates_markdown(verdict))},
        )


def _promotion_scores(context, registry, rows, trained):
    """Brier/ECE of the challenger and the champion on the same unseen rows.

    The challenger is scored by its out-of-fold predictions on the latest fold (the final
    model saw those rows). The champion is scored on the same rows only if its labels all
    resolved before that fold began; otherwise both are compared by their recorded
    walk-forward scores, each out of sample for its own model.
    """
    test_rows = trained.latest_fold["test_rows"]
    predictions = trained.latest_fold_predictions
    champion, load_warnings = registry.load_champion_with_fallback(WIN_MODEL)
    for warning in load_warnings:
        context.log.warning(warning)
    if champion is None or list(champion.feature_columns) != FEATURE_COLUMNS:
        return _walk_forward_score(trained.metrics), None, None, "no comparable champion"
    cutoff = champion.metadata.get("label_cutoff", champion.metadata.get("training_date"))
    fold_start = trained.latest_fold["test_start"]
    if len(predictions) and np.isfinite(predictions).all() and cutoff and cutoff < fold_start:
        challenger = latest_fold_brier(lambda x: predictions, rows, test_rows)
        champion_score = latest_fold_brier(
            lambda x: onnx_export.run(champion.session, x), rows, test_rows
        )
        return challenger, champion_score, champion.version, "latest fold, both unseen"
    recorded = _walk_forward_score(champion.metadata.get("metrics", {}))
    return _walk_forward_score(trained.metrics), recorded, champion.version, "recorded walk-forward"


def _walk_forward_score(metrics: dict) -> dict:
    return {"brier": metrics.get("brier"), "ece": metrics.get("ece"), "n": metrics.get("n")}


def _beats(challenger, champion_score, models: ModelsResource, how: str) -> tuple[bool, str]:
    if champion_score is None:
        return True, "no comparable champion yet"
    if champion_score.get("brier") is None or challenger.get("brier") is None:
        return False, f"cannot compare ({how}): a Brier score is missing"
    better = challenger["brier"] <= champion_score["brier"] - models.promotion_brier_margin
    calibrated = (challenger["ece"] or 0.0) <= (champion_score["ece"] or 0.0) + (
        models.max_ece_increase
    )
    why = (
        f"{how}: challenger Brier {challenger['brier']:.5f} vs champion "
        f"{champion_score['brier']:.5f} (margin {models.promotion_brier_margin}); ECE "
        f"{(challenger['ece'] or 0):.4f} vs {(champion_score['ece'] or 0):.4f}"
    )
    return better and calibrated, why


def _library_versions() -> dict[str, str]:
    import onnxruntime
    import skl2onnx
    import sklearn

    return {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _data_version(context, asset_name: str) -> str | None:
    """The run that last materialized ``asset_name``: the data this model saw."""
    record = context.instance.get_latest_materialization_event(AssetKey(asset_name))
    return record.run_id if record else None


@asset(
    group_name="ml",
    owners=[OWNER],
    kinds=KINDS,
    io_manager_key="lake_io_manager",
    deps=["probability_model"],
    description=(
        "Promotes the newly trained P(win) model to champion. Runs only when "
        "probability_model's blocking checks passed (every promotion gate, the champion "
        "comparison, not forced); the paired yield model is promoted only if it passed its "
        "own gates. The previous champion stays in the registry for rollback."
    ),
)
def probability_model_champion(
    context: AssetExecutionContext, lake: LakeResource, models: ModelsResource
) -> Output:
    registry = models.registry()
    trained = lake.lake().read("probability_model").iloc[0]
    if not bool(trained["checks_passed"]):
        raise Failure(
            f"{WIN_MODEL} {trained['win_model_version']} did not pass its promotion gates "
            f"({trained.get('gates_reason', '')}); the champion is unchanged"
        )
    try:
        registry.promote(
            WIN_MODEL,
            trained["win_model_version"],
            reason=f"passed every gate; compared with "
            f"{trained['compared_with'] or 'no champion'} (run {context.run.run_id})",
        )
        if bool(trained.get("yield_gates_passed", False)):
            registry.promote(
                YIELD_MODEL,
                trained["yield_model_version"],
                reason=f"passed its gates; paired with {WIN_MODEL}:{trained['win_model_version']}",
            )
        else:
            context.log.warning(
                f"{YIELD_MODEL} {trained['yield_model_version']} not promoted: "
                f"{trained.get('yield_gates_reason', '')}; nothing ranks by it"
            )
    except RegistryError as exc:
        raise Failure(f"promotion refused: {exc}") from exc
    champion = registry.champion(WIN_MODEL)
    frame = pd.DataFrame(
        [
            {
                "model": WIN_MODEL,
                "version": champion.version,
                "promoted_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        ]
    )
    return Output(frame, metadata={"champion": champion.version})


@asset_check(
    asset=probability_model_champion,
    description="The champion is younger than the warning age (30 days by default, a warning) "
    "and the failure age (60 days, an error); both are settings. Runs every morning in health_job.",
)
def champion_age(models: ModelsResource, market: MarketDataResource) -> AssetCheckResult:
    champion = models.registry().champion(WIN_MODEL)
    if champion is None:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.WARN,
            description="no champion yet: train one (butterquant train)",
        )
    age = age_days(champion, market.now())
    failed = age > models.age_fail_days
    return AssetCheckResult(
        passed=age <= models.age_warn_days,
        severity=AssetCheckSeverity.ERROR if failed else AssetCheckSeverity.WARN,
        description=f"champion {champion.version} is {age:.1f} days old (warn after "
        f"{models.age_warn_days}, fail after {models.age_fail_days})",
        metadata={"age_days": float(age), "version": champion.version},
    )
