"""The NYSE trading calendar and the listed option expiries.

Every partition of the project is an NYSE session, so this module is the one place that
knows which days the market traded, when it closed, and which expiries were listed on a
given day. It is built on ``exchange_calendars`` rather than a hand-written holiday list,
because ad-hoc closures (national days of mourning, hurricanes) are exactly the days a
hand-written list gets wrong.
"""

from __future__ import annotations

import bisect
import datetime as dt
import warnings
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

EXCHANGE_TZ = ZoneInfo("America/New_York")
CALENDAR_FIRST_DAY = dt.date(1990, 1, 2)
# How far past today the calendar is materialised; holidays further out follow the rules.
_YEARS_AHEAD = 3


class CalendarError(ValueError):
    """A date that the NYSE calendar cannot honour (not a session, out of range)."""


@dataclass(frozen=True)
class EarlyClose:
    session: dt.date
    close: dt.datetime  # timezone-aware, America/New_York


@dataclass(frozen=True)
class Expiry:
    date: dt.date
    kind: str  # "monthly" (third Friday) or "weekly"


def _to_date(value: dt.date | dt.datetime | str | pd.Timestamp) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise CalendarError(f"not a date in YYYY-MM-DD form: {value!r}") from exc
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    return value


@lru_cache(maxsize=1)
def _xnys() -> xcals.ExchangeCalendar:
    last = dt.date(dt.date.today().year + _YEARS_AHEAD, 12, 31)
    with warnings.catch_warnings():
        # exchange_calendars reads Series.values of tz-aware times, which pandas deprecates;
        # the calendar it builds is unaffected, and the warning is not ours to act on.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar(
            "XNYS", start=CALENDAR_FIRST_DAY.isoformat(), end=last.isoformat()
        )


def calendar_bounds() -> tuple[dt.date, dt.date]:
    cal = _xnys()
    return cal.first_session.date(), cal.last_session.date()


def _check_in_range(day: dt.date) -> None:
    first, last = calendar_bounds()
    if not first <= day <= last:
        raise CalendarError(f"{day} is outside the NYSE calendar range {first}..{last}")


@lru_cache(maxsize=1)
def _all_sessions() -> tuple[dt.date, ...]:
    return tuple(ts.date() for ts in _xnys().sessions)


@lru_cache(maxsize=1)
def _session_index() -> dict[dt.date, int]:
    return {day: i for i, day in enumerate(_all_sessions())}


def is_session(day: dt.date | str) -> bool:
    return _to_date(day) in _session_index()


def require_session(day: dt.date | str, *, what: str = "date") -> dt.date:
    """Return ``day`` as a date, or raise naming why it is not an NYSE session."""
    parsed = _to_date(day)
    _check_in_range(parsed)
    if parsed not in _session_index():
        reason = "a weekend" if parsed.weekday() >= 5 else "an NYSE holiday"
        raise CalendarError(f"{what} {parsed} is not an NYSE session ({reason})")
    return parsed


def sessions(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Sessions in the closed interval [start, end]."""
    first, last = _to_date(start), _to_date(end)
    if first > last:
        raise CalendarError(f"start {first} is after end {last}")
    _check_in_range(first)
    _check_in_range(last)
    all_sessions = _all_sessions()
    lo = bisect.bisect_left(all_sessions, first)
    hi = bisect.bisect_right(all_sessions, last)
    return list(all_sessions[lo:hi])


def trailing_sessions(day: dt.date | str, count: int, *, inclusive: bool = True) -> list[dt.date]:
    """The last ``count`` sessions up to ``day`` (or strictly before it), oldest first;
    fewer near the start of the calendar. The history window of every lookback."""
    parsed = _to_date(day)
    all_sessions = _all_sessions()
    end = (bisect.bisect_right if inclusive else bisect.bisect_left)(all_sessions, parsed)
    return list(all_sessions[max(0, end - count) : end])


def session_position(day: dt.date | str) -> int:
    """Index of a session counted from the first session of the calendar."""
    return _session_index()[require_session(day)]


def holidays(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Weekdays in [start, end] on which the NYSE was (or will be) closed."""
    first, last = _to_date(start), _to_date(end)
    index = _session_index()
    return [day.date() for day in pd.bdate_range(first, last) if day.date() not in index]


def previous_session(day: dt.date | str) -> dt.date:
    """The last session strictly before ``day`` (which need not be a session)."""
    parsed = _to_date(day)
    _check_in_range(parsed)
    all_sessions = _all_sessions()
    pos = bisect.bisect_left(all_sessions, parsed)
    if pos == 0:
        raise CalendarError(f"no NYSE session before {parsed} in the calendar")
    return all_sessions[pos - 1]


def next_session(day: dt.date | str) -> dt.date:
    """The first session strictly after ``day`` (which need not be a session)."""
    parsed = _to_date(day)
    _check_in_range(parsed)
    all_sessions = _all_sessions()
    pos = bisect.bisect_right(all_sessions, parsed)
    if pos >= len(all_sessions):
        raise CalendarError(f"no NYSE session after {parsed} in the calendar")
    return all_sessions[pos]


def session_close(day: dt.date | str) -> dt.datetime:
    """The session's close in New York time (13:00 on early-close days)."""
    session = require_session(day)
    close = _xnys().session_close(pd.Timestamp(session))
    return close.tz_convert(EXCHANGE_TZ).to_pydatetime()


def session_open(day: dt.date | str) -> dt.datetime:
    session = require_session(day)
    opened = _xnys().session_open(pd.Timestamp(session))
    return opened.tz_convert(EXCHANGE_TZ).to_pydatetime()


def early_closes(start: dt.date | str, end: dt.date | str) -> list[EarlyClose]:
    first, last = _to_date(start), _to_date(end)
    cal = _xnys()
    days = cal.early_closes
    days = days[(days >= pd.Timestamp(first)) & (days <= pd.Timestamp(last))]
    return [EarlyClose(day.date(), session_close(day.date())) for day in days]


def is_early_close(day: dt.date | str) -> bool:
    close = session_close(day)
    return (close.hour, close.minute) < (16, 0)


def latest_completed_session(at: dt.datetime) -> dt.date:
    """The most recent session whose close is at or before the instant ``at``.

    This is the guard against look-ahead: a session that has not closed yet has no
    closing snapshot, so nothing may be computed for it.
    """
    if at.tzinfo is None:
        raise CalendarError(f"instant {at} has no timezone; pass an aware datetime")
    local = at.astimezone(EXCHANGE_TZ)
    candidate = local.date()
    if not is_session(candidate):
        return previous_session(candidate)
    if session_close(candidate) <= local:
        return candidate
    return previous_session(candidate)


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday is weekday 4
    return first + dt.timedelta(days=offset + 14)


def _expiry_session(friday: dt.date) -> dt.date:
    """Expiries fall on the previous session when the Friday is a holiday (Good Friday)."""
    return friday if is_session(friday) else previous_session(friday)


def listed_expiries(
    session: dt.date | str,
    *,
    max_days: int = 90,
    weekly_weeks: int | None = 6,
) -> list[Expiry]:
    """Expiries listed on ``session``: weeklies for the next ``weekly_weeks`` weeks and
    monthly third-Friday expiries out to ``max_days`` calendar days.

    An expiry on the session itself is included (it still trades until the close).
    ``weekly_weeks=None`` lists every Friday out to ``max_days``.
    """
    today = require_session(session, what="session")
    horizon = today + dt.timedelta(days=max_days)
    weekly_horizon = (
        horizon if weekly_weeks is None else min(horizon, today + dt.timedelta(weeks=weekly_weeks))
    )
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    _, last_day = calendar_bounds()
    expiries: dict[dt.date, Expiry] = {}
    while friday <= horizon and friday <= last_day:
        monthly = friday == third_friday(friday.year, friday.month)
        if monthly or friday <= weekly_horizon:
            expiry = _expiry_session(friday)
            if expiry >= today:
                expiries[expiry] = Expiry(expiry, "monthly" if monthly else "weekly")
        friday += dt.timedelta(days=7)
    return sorted(expiries.values(), key=lambda e: e.date)
