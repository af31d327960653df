"""Report jobs and their schedules: the daily report after every session's close, the
weekly and monthly ones after the last session of their week or month (not a fixed
weekday: a holiday Friday moves the weekly report to Thursday)."""

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring.periods import PERIODS, closes_period
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS

REPORT_JOBS = {period: f"{period}_report_job" for period in PERIODS}
# Evening, New York time: after the close (16:00), the closing snapshot and the fills sensor.
REPORT_TIMES = {"daily": (18, 0), "weekly": (18, 30), "monthly": (19, 0)}


def _report_job(period: str):
    return define_asset_job(
        REPORT_JOBS[period],
        selection=AssetSelection.assets("performance_report", "drift_report", f"{period}_report"),
        description=f"The performance and drift figures and the {period} report.",
    )


def _report_schedule(period: str, job):
    hour, minute = REPORT_TIMES[period]

    @schedule(
        default_status=ROUTINE_SCHEDULE_STATUS,
        name=f"{period}_report_schedule",
        job=job,
        cron_schedule=f"{minute} {hour} * * 1-5",
        execution_timezone="America/New_York",
        description=f"The {period} report, written after the close of its last session.",
    )
    def _schedule(context: ScheduleEvaluationContext):
        today = context.scheduled_execution_time.astimezone(calendar.EXCHANGE_TZ).date()
        if not calendar.is_session(today):
            return SkipReason(f"{today} is not an NYSE session (holiday)")
        if not closes_period(period, today):
            return SkipReason(f"{today} is not the last session of its {period[:-2]}")
        return RunRequest(run_key=f"{period}-report-{today}", partition_key=today.isoformat())

    return _schedule


report_jobs = [_report_job(period) for period in PERIODS]
report_schedules = [
    _report_schedule(period, job) for period, job in zip(PERIODS, report_jobs, strict=True)
]
