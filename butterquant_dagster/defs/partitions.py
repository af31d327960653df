"""Partitions are NYSE sessions: weekday keys with every exchange holiday excluded."""

from __future__ import annotations

import datetime as dt

from dagster import TimeWindowPartitionsDefinition

from butterquant_dagster.core import calendar

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


def session_of(partition_key: str) -> dt.date:
    return dt.datetime.strptime(partition_key, SESSION_KEY_FORMAT).date()
