"""The daily market snapshot job and the schedule that runs it after each close."""

import datetime as dt

from dagster import (
    AssetSelection,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from butterquant_dagster.defs.close_ticks import session_due
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS

MARKET_JOB = "market_snapshot_job"
# Bars without chains: the index history the regime model needs years of, at a fraction of
# the cost of a full snapshot.
BARS_JOB = "bars_history_job"
# Closes settle and vendors publish end-of-day data within half an hour.
MINUTES_AFTER_CLOSE = 30


market_snapshot_job = define_asset_job(
    MARKET_JOB,
    # The hidden truth (group "simulation") records nothing for a real market source.
    selection=AssetSelection.groups("market", "simulation"),
    # One market snapshot at a time (dagster.yaml limits the "market" lane to one run).
    tags={"butterquant/lane": "market"},
    description="Take the closing market snapshot (bars and option chains) of a session.",
)

bars_history_job = define_asset_job(
    BARS_JOB,
    selection=AssetSelection.assets("universe", "daily_bars") | AssetSelection.groups("simulation"),
    tags={"butterquant/lane": "market"},
    description=(
        "Take the daily bars (no option chains) of a range of sessions: the index history "
        "the point-in-time regime is fitted on."
    ),
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="market_snapshot_after_close",
    job=market_snapshot_job,
    cron_schedule=f"{MINUTES_AFTER_CLOSE} 13,16 * * 1-5",
    execution_timezone="America/New_York",
    description=(
        "Once per session: the closing snapshot 30 minutes after the close, at 16:30 New "
        "York, or 13:30 on an early-close day (the other tick skips)."
    ),
)
def market_snapshot_after_close(context: ScheduleEvaluationContext):
    """Ticks 30 minutes after both the regular (16:00) and the early (13:00) close, and runs
    only at the tick that follows the session's actual close; weekends and holidays skip."""
    session = session_due(
        context.scheduled_execution_time,
        dt.timedelta(minutes=MINUTES_AFTER_CLOSE),
        "its snapshot",
    )
    if isinstance(session, SkipReason):
        return session
    key = session.isoformat()
    return RunRequest(run_key=f"market-{key}", partition_key=key)
