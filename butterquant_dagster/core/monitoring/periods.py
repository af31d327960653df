"""Which sessions a daily, weekly or monthly report covers.

Reports are keyed by the session they are written at, like every other asset, and cover the
sessions of their period up to it: a weekly report written on Wednesday (a holiday week, or
on demand) covers Monday to Wednesday. The scheduled ones are written on the last session of
their week or month, which is not always a Friday or the month's last weekday.
"""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.core import calendar

PERIODS = ("daily", "weekly", "monthly")


class PeriodError(ValueError):
    """An unknown period name."""


def _start(period: str, session: dt.date) -> dt.date:
    if period == "daily":
        return session
    if period == "weekly":
        return session - dt.timedelta(days=session.weekday())
    if period == "monthly":
        return session.replace(day=1)
    raise PeriodError(f"unknown report period {period!r}; expected one of {', '.join(PERIODS)}")


def report_window(period: str, session: dt.date) -> tuple[dt.date, dt.date]:
    """First and last session the ``period`` report written at ``session`` covers."""
    day = calendar.require_session(session, what=f"{period} report session")
    return calendar.sessions(_start(period, day), day)[0], day


def closes_period(period: str, session: dt.date) -> bool:
    """Is ``session`` the last session of its week / month (when the report is due)?"""
    if period == "daily":
        return True
    following = calendar.next_session(session)
    return _start(period, following) != _start(period, session)
