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

MARKET_JOB = "market_snapshot_job"
# Bars without chains: the index history the regime model needs years of, at a fraction of
# the cost of a full snapshot.
BARS_JOB = "bars_history_job"
# Closes settle and vendors publish end-of-day data within half an hour.
MINUTES_AFTER_CLOSE = 30


def market_groups(market_source: str) -> list[str]:
    """The groups of a market snapshot; the hidden truth exists only for the synthetic market."""
    return ["market", "simulation"] if market_source == "synthetic" else ["market"]


def build_market_job(market_source: str):
    return define_asset_job(
        MARKET_JOB,
        selection=AssetSelection.groups(*market_groups(market_source)),
        # One market snapshot at a time (dagster.yaml limits the "market" lane to one run).
        tags={"butterquant/lane": "market"},
        description="Take the closing market snapshot (bars and option chains) of a session.",
    )


def build_bars_job(market_source: str):
    groups = market_groups(market_source)
    selection = AssetSelection.assets("universe", "daily_bars")
    if "simulation" in groups:
        selection = selection | AssetSelection.groups("simulation")
    return define_asset_job(
        BARS_JOB,
        selection=selection,
        tags={"butterquant/lane": "market"},
        description=(
            "Take the daily bars (no option chains) of a range of sessions: the index history "
            "the point-in-time regime is fitted on."
        ),
    )


def build_market_schedule(job):
    """Ticks 30 minutes after both the regular (16:00) and the early (13:00) close, and runs
    only at the tick that follows the session's actual close; weekends and holidays skip."""

    @schedule(
        name="market_snapshot_after_close",
        job=job,
        cron_schedule=f"{MINUTES_AFTER_CLOSE} 13,16 * * 1-5",
        execution_timezone="America/New_York",
        description="Closing snapshot of each NYSE session, 30 minutes after its close.",
    )
    def market_snapshot_after_close(context: ScheduleEvaluationContext):
        session = session_due(
            context.scheduled_execution_time,
            dt.timedelta(minutes=MINUTES_AFTER_CLOSE),
            "its snapshot",
        )
        if isinstance(session, SkipReason):
            return session
        key = session.isoformat()
        return RunRequest(run_key=f"market-{key}", partition_key=key)

    return market_snapshot_after_close
