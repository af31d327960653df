"""Model jobs, retraining schedules, the daily health check and the drift sensor."""

import datetime as dt

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring import assemble
from butterquant_dagster.defs.close_ticks import close_schedules
from butterquant_dagster.defs.ml.assets import WIN_MODEL
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS, ROUTINE_SENSOR_STATUS

REGIME_JOB = "regime_job"
ANALYSIS_JOB = "analysis_job"
ENSEMBLE_TRAINING_JOB = "ensemble_training_job"
PROBABILITY_TRAINING_JOB = "probability_training_job"
FEATURES_JOB = "features_job"
PROBABILITY_TRAINING = ["training_set", "probability_model", "probability_model_champion"]
# After the 16:30 snapshot, with its market job done (the regime reads the closing bars).
ANALYSIS_MINUTES_AFTER_CLOSE = 45


regime_job = define_asset_job(
    REGIME_JOB,
    selection=AssetSelection.assets("regime_model", "market_regime"),
    description="Fit the regime HMM and filter the regime of a range of sessions.",
)

analysis_job = define_asset_job(
    ANALYSIS_JOB,
    selection=AssetSelection.assets("market_regime", "trading_decisions"),
    description="The session's regime and buy / hold / sell decisions.",
)

ensemble_training_job = define_asset_job(
    ENSEMBLE_TRAINING_JOB,
    selection=AssetSelection.assets("signal_ensemble"),
    description="Retrain the per-regime signal ensemble.",
)

probability_training_job = define_asset_job(
    PROBABILITY_TRAINING_JOB,
    selection=AssetSelection.assets(*PROBABILITY_TRAINING),
    description="Retrain, validate, register and (if it wins) promote "
    "the butterfly probability model.",
)

features_job = define_asset_job(
    FEATURES_JOB,
    selection=AssetSelection.assets("trading_decisions", "candidate_features"),
    description="Decisions and candidate features over a range of scanned sessions "
    "(what the probability model trains on).",
)


def _analysis_request(today: dt.date) -> RunRequest:
    return RunRequest(run_key=f"analysis-{today}", partition_key=today.isoformat())


analysis_after_close, analysis_after_early_close = close_schedules(
    name="analysis_after_close",
    early_name="analysis_after_early_close",
    job=analysis_job,
    offset=dt.timedelta(minutes=ANALYSIS_MINUTES_AFTER_CLOSE),
    what="the analysis",
    run_request=_analysis_request,
    description="The regime and buy / hold / sell decisions after the snapshot.",
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="ensemble_monthly",
    job=ensemble_training_job,
    cron_schedule="0 18 1 * *",
    execution_timezone="America/New_York",
    description="The signal ensemble on a rolling 12-month window, monthly.",
)
def ensemble_monthly(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"ensemble-{context.scheduled_execution_time:%Y-%m}")


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="probability_model_monthly",
    job=probability_training_job,
    cron_schedule="0 18 2 * *",
    execution_timezone="America/New_York",
    description="The probability model on all history, monthly (the guides retrained "
    "every six months; the health check fails a champion older than 60 days). The "
    "challenger replaces the champion only when it passes the promotion checks.",
)
def probability_model_monthly(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"probability-{context.scheduled_execution_time:%Y-%m}")


@sensor(
    name="probability_model_drift",
    job=probability_training_job,
    minimum_interval_seconds=3600,
    default_status=ROUTINE_SENSOR_STATUS,
    required_resource_keys={"lake", "models", "trading", "monitoring"},
    description="Requests a retraining when the champion's drift report says RETRAIN: "
    "realized wins significantly and materially off the sum of its predictions, ECE "
    "above the retrain threshold, realized yield off the predicted, confident "
    "predictions hitting below the configured rate, or Brier worse than at training, "
    "over enough resolved predictions. The same report as the drift_report asset; the "
    "retrained model still becomes champion only through its promotion checks.",
)
def probability_model_drift(context: SensorEvaluationContext):
    registry = context.resources.models.registry()
    champion = registry.champion(WIN_MODEL)
    if champion is None:
        return SkipReason("no champion model to watch yet")
    now = dt.datetime.now(dt.UTC)
    through = calendar.latest_completed_session(now)
    report = assemble.drift(
        context.resources.lake.lake(),
        context.resources.trading.ledger(),
        champion,
        through,
        context.resources.monitoring.thresholds(),
    )
    reasons = "; ".join(report.reasons)
    if report.status != "RETRAIN":
        return SkipReason(f"drift status {report.status}: {reasons}")
    key = f"drift-{champion.version}-{through.isoformat()}"
    return RunRequest(run_key=key, tags={"butterquant/retrain_reason": reasons[:200]})
