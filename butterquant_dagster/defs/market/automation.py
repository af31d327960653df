"""The daily market snapshot job and the schedule that runs it after each close."""

import datetime as dt

from dagster import (
    AssetSelection,
    RunRequest,
    define_asset_job,
)

from butterquant_dagster.defs.close_ticks import close_schedules

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


def _snapshot_request(session: dt.date) -> RunRequest:
    key = session.isoformat()
    return RunRequest(run_key=f"market-{key}", partition_key=key)


market_snapshot_after_close, market_snapshot_after_early_close = close_schedules(
    name="market_snapshot_after_close",
    early_name="market_snapshot_after_early_close",
    job=market_snapshot_job,
    offset=dt.timedelta(minutes=MINUTES_AFTER_CLOSE),
    what="its snapshot",
    run_request=_snapshot_request,
    description="The closing snapshot of the session, 30 minutes after the close.",
)
