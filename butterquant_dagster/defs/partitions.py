"""Partitions are NYSE sessions: weekday keys with every exchange holiday excluded."""

from __future__ import annotations

import datetime as dt

from dagster import BackfillPolicy, TimeWindowPartitionsDefinition, asset

from butterquant_dagster.core import calendar, settings

SESSION_KEY_FORMAT = "%Y-%m-%d"


def nyse_sessions(start: str) -> TimeWindowPartitionsDefinition:
    """One partition per NYSE session from ``start``.

    A weekday cron at midnight New York time, with each weekday holiday (from
    exchange_calendars, through the end of its materialised range) as an exclusion, so a
    holiday or weekend is never a key. ``end_offset=1`` makes today's session a key while it
    trades; the assets refuse a session until it has closed.
    """
    first = calendar.require_session(start, what="partitions start")
    _, last = calendar.calendar_bounds()
    excluded = [dt.datetime(day.year, day.month, day.day) for day in calendar.holidays(first, last)]
    return TimeWindowPartitionsDefinition(
        start=first.strftime(SESSION_KEY_FORMAT),
        fmt=SESSION_KEY_FORMAT,
        cron_schedule="0 0 * * 1-5",
        timezone="America/New_York",
        exclusions=excluded,
        end_offset=1,
    )


# Every daily asset's partitions. Read once, when the code location loads: changing the first
# session is a change of the definitions (restart `make dev`), not of a run.
session_partitions = nyse_sessions(settings.env("BUTTERQUANT_PARTITIONS_START"))


def session_of(partition_key: str) -> dt.date:
    return dt.datetime.strptime(partition_key, SESSION_KEY_FORMAT).date()


def trailing_keys(session: dt.date, count: int, *, inclusive: bool = True) -> list[str]:
    """Partition keys of the ``count`` sessions up to (or before) ``session``."""
    return [d.isoformat() for d in calendar.trailing_sessions(session, count, inclusive=inclusive)]


def session_asset(**kwargs):
    """An asset with one partition per session, backfilled in a single run and stored in
    the lake: what every daily asset of the project is."""
    return asset(
        partitions_def=session_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        io_manager_key="lake_io_manager",
        **kwargs,
    )
