"""The scan job, its pre-close schedule, and the daily settlement of matured candidates."""

import datetime as dt

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.scan.candidates import CandidateRules
from butterquant_dagster.defs.close_ticks import close_schedules
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS

SCAN_JOB = "scan_job"
OUTCOMES_JOB = "outcomes_job"
SCAN_MINUTES_BEFORE_CLOSE = 45
SCAN_ASSETS = [
    "butterfly_candidates",
    "scan_skips",
    "iv_surface",
    "candidate_features",
    "ai_probabilities",
    "scan_rankings",
]


scan_job = define_asset_job(
    SCAN_JOB,
    selection=AssetSelection.assets(*SCAN_ASSETS),
    tags={"butterquant/lane": "scan"},
    description="Scan, price, score and rank every listed butterfly of a session.",
)

outcomes_job = define_asset_job(
    OUTCOMES_JOB,
    selection=AssetSelection.assets("candidate_outcomes"),
    description="Settle the candidates of an entry session whose expiries have passed.",
)


def _scan_request(today: dt.date) -> RunRequest:
    """45 minutes before the close, scan the latest completed session, so the day's orders
    can still be placed before the close."""
    scanned = calendar.previous_session(today).isoformat()
    return RunRequest(run_key=f"scan-{scanned}", partition_key=scanned)


scan_before_close, scan_before_early_close = close_schedules(
    name="scan_before_close",
    early_name="scan_before_early_close",
    job=scan_job,
    offset=-dt.timedelta(minutes=SCAN_MINUTES_BEFORE_CLOSE),
    what="the scan",
    run_request=_scan_request,
    description="The pre-close scan of the latest completed session's snapshot.",
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="settle_matured_candidates",
    job=outcomes_job,
    cron_schedule="0 17 * * 1-5",
    execution_timezone="America/New_York",
    description="Outcomes of the entry session whose expiries (up to max dte) have passed.",
)
def settle_matured_candidates(context: ScheduleEvaluationContext):
    """After each close, settle the entry session whose every expiry has now passed."""
    tick = context.scheduled_execution_time.astimezone(calendar.EXCHANGE_TZ)
    today = tick.date()
    if not calendar.is_session(today):
        return SkipReason(f"{today} is not an NYSE session (holiday)")
    # Every entry session whose longest expiry (entry + max dte days) has passed since the
    # previous session's tick: weekends and holidays roll into the next session.
    max_dte = CandidateRules.max_dte
    newest = today - dt.timedelta(days=max_dte)
    oldest = calendar.previous_session(today) - dt.timedelta(days=max_dte)
    entries = calendar.sessions(oldest + dt.timedelta(days=1), newest) if oldest < newest else []
    if not entries:
        return SkipReason(f"no entry session matured on {today}")
    return [RunRequest(run_key=f"outcomes-{e}", partition_key=e.isoformat()) for e in entries]
