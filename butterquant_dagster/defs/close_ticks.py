"""Schedules tied to the close: each cron ticks at both the regular and the early close's
time, and only the tick matching the session's actual close runs."""

import datetime as dt

from dagster import SkipReason

from butterquant_dagster.core import calendar


def session_due(tick: dt.datetime, offset: dt.timedelta, what: str) -> dt.date | SkipReason:
    """The session whose close + ``offset`` is ``tick``, or why this tick skips."""
    local = tick.astimezone(calendar.EXCHANGE_TZ)
    today = local.date()
    if not calendar.is_session(today):
        return SkipReason(f"{today} is not an NYSE session (holiday)")
    close = calendar.session_close(today)
    due = close + offset
    if (local.hour, local.minute) != (due.hour, due.minute):
        return SkipReason(f"{today} closes at {close:%H:%M}; {what} runs at {due:%H:%M}")
    return today
