"""The NYSE calendar: sessions, holidays, early closes, look-ahead guard and expiries."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from butterquant_dagster.core import calendar as cal
from butterquant_dagster.core.calendar import CalendarError, Expiry

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
D = dt.date

# The NYSE's full-day closures of 2025 on weekdays, from the exchange's published schedule
# (including the national day of mourning for President Carter on 9 January).
NYSE_HOLIDAYS_2025 = [
    D(2025, 1, 1),  # New Year's Day
    D(2025, 1, 9),  # National day of mourning, President Carter
    D(2025, 1, 20),  # Martin Luther King Jr. Day
    D(2025, 2, 17),  # Washington's Birthday
    D(2025, 4, 18),  # Good Friday
    D(2025, 5, 26),  # Memorial Day
    D(2025, 6, 19),  # Juneteenth
    D(2025, 7, 4),  # Independence Day
    D(2025, 9, 1),  # Labor Day
    D(2025, 11, 27),  # Thanksgiving
    D(2025, 12, 25),  # Christmas
]

dates_2000_2028 = st.dates(min_value=D(2000, 1, 1), max_value=D(2028, 12, 31))


def _weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    days = (end - start).days + 1
    return [start + dt.timedelta(i) for i in range(days) if (start + dt.timedelta(i)).weekday() < 5]


# ---------------------------------------------------------------------- sessions, holidays


def test_2025_has_exactly_250_sessions():
    sessions = cal.sessions("2025-01-01", "2025-12-31")
    assert len(sessions) == 250
    assert sessions[0] == D(2025, 1, 2)
    assert sessions[-1] == D(2025, 12, 31)


def test_2025_holidays_are_the_published_ones():
    holidays = cal.holidays(D(2025, 1, 1), D(2025, 12, 31))
    assert D(2025, 1, 9) in holidays  # Carter national day of mourning
    assert D(2025, 4, 18) in holidays  # Good Friday
    assert holidays == NYSE_HOLIDAYS_2025
    # 261 weekdays in 2025, minus the holidays, are the sessions.
    assert len(_weekdays(D(2025, 1, 1), D(2025, 12, 31))) - len(holidays) == 250
    for day in NYSE_HOLIDAYS_2025:
        assert not cal.is_session(day)
        assert not cal.is_session(day.isoformat())


def test_2025_early_closes_are_at_1300_new_york():
    closes = cal.early_closes("2025-01-01", "2025-12-31")
    assert [c.session for c in closes] == [D(2025, 7, 3), D(2025, 11, 28), D(2025, 12, 24)]
    for early in closes:
        assert early.close == dt.datetime.combine(early.session, dt.time(13, 0), tzinfo=NY)
        assert early.close.utcoffset() == cal.session_close(early.session).utcoffset()
        assert cal.is_early_close(early.session)
    assert cal.session_close(D(2025, 7, 3)).astimezone(UTC) == dt.datetime(
        2025, 7, 3, 17, 0, tzinfo=UTC
    )


def test_regular_session_opens_0930_and_closes_1600():
    day = D(2025, 3, 12)
    assert not cal.is_early_close(day)
    assert cal.session_close(day) == dt.datetime(2025, 3, 12, 16, 0, tzinfo=NY)
    assert cal.session_open(day) == dt.datetime(2025, 3, 12, 9, 30, tzinfo=NY)
    # In winter New York is UTC-5, in summer UTC-4.
    assert cal.session_close(D(2025, 1, 15)).astimezone(UTC).hour == 21
    assert cal.session_close(D(2025, 7, 15)).astimezone(UTC).hour == 20


@pytest.mark.parametrize(
    ("day", "previous", "following"),
    [
        # Saturday and Sunday
        (D(2025, 3, 15), D(2025, 3, 14), D(2025, 3, 17)),
        (D(2025, 3, 16), D(2025, 3, 14), D(2025, 3, 17)),
        # A Monday session: the previous one is across the weekend
        (D(2025, 3, 17), D(2025, 3, 14), D(2025, 3, 18)),
        # A Friday session: the next one is across the weekend
        (D(2025, 3, 14), D(2025, 3, 13), D(2025, 3, 17)),
        # The Carter day of mourning (Thursday) and the sessions around it
        (D(2025, 1, 9), D(2025, 1, 8), D(2025, 1, 10)),
        (D(2025, 1, 8), D(2025, 1, 7), D(2025, 1, 10)),
        (D(2025, 1, 10), D(2025, 1, 8), D(2025, 1, 13)),
        # Good Friday glued to a weekend
        (D(2025, 4, 17), D(2025, 4, 16), D(2025, 4, 21)),
        (D(2025, 4, 19), D(2025, 4, 17), D(2025, 4, 21)),
        (D(2025, 4, 21), D(2025, 4, 17), D(2025, 4, 22)),
        # Martin Luther King Day (Monday)
        (D(2025, 1, 21), D(2025, 1, 17), D(2025, 1, 22)),
        # Across a year end
        (D(2025, 1, 1), D(2024, 12, 31), D(2025, 1, 2)),
    ],
)
def test_previous_and_next_session(day, previous, following):
    assert cal.previous_session(day) == previous
    assert cal.next_session(day) == following
    assert cal.previous_session(day.isoformat()) == previous


def test_session_position_counts_sessions():
    assert cal.session_position(D(2025, 1, 10)) - cal.session_position(D(2025, 1, 8)) == 1
    assert cal.session_position(D(2025, 12, 31)) - cal.session_position(D(2025, 1, 2)) == 249
    with pytest.raises(CalendarError):
        cal.session_position(D(2025, 1, 9))


# ---------------------------------------------------------------------- look-ahead guard


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Early close at 13:00 on 2025-07-03
        (dt.datetime(2025, 7, 3, 13, 30, tzinfo=NY), D(2025, 7, 3)),
        (dt.datetime(2025, 7, 3, 13, 0, tzinfo=NY), D(2025, 7, 3)),
        (dt.datetime(2025, 7, 3, 12, 59, tzinfo=NY), D(2025, 7, 2)),
        # A regular day, before and after 16:00
        (dt.datetime(2025, 3, 12, 15, 59, tzinfo=NY), D(2025, 3, 11)),
        (dt.datetime(2025, 3, 12, 16, 0, tzinfo=NY), D(2025, 3, 12)),
        (dt.datetime(2025, 3, 12, 16, 1, tzinfo=NY), D(2025, 3, 12)),
        (dt.datetime(2025, 3, 12, 0, 5, tzinfo=NY), D(2025, 3, 11)),
        # UTC instants: 19:59Z is 15:59 EDT; 02:00Z on the 13th is still the 12th in New York
        (dt.datetime(2025, 3, 12, 19, 59, tzinfo=UTC), D(2025, 3, 11)),
        (dt.datetime(2025, 3, 12, 20, 0, tzinfo=UTC), D(2025, 3, 12)),
        (dt.datetime(2025, 3, 13, 2, 0, tzinfo=UTC), D(2025, 3, 12)),
        # In winter the close is 21:00Z
        (dt.datetime(2025, 1, 15, 20, 30, tzinfo=UTC), D(2025, 1, 14)),
        (dt.datetime(2025, 1, 15, 21, 0, tzinfo=UTC), D(2025, 1, 15)),
        # Weekend: Saturday after the Independence Day holiday goes back to the early close
        (dt.datetime(2025, 7, 5, 10, 0, tzinfo=NY), D(2025, 7, 3)),
        (dt.datetime(2025, 1, 12, 23, 0, tzinfo=NY), D(2025, 1, 10)),
        # Holidays
        (dt.datetime(2025, 1, 9, 18, 0, tzinfo=NY), D(2025, 1, 8)),
        (dt.datetime(2025, 7, 4, 20, 0, tzinfo=NY), D(2025, 7, 3)),
        (dt.datetime(2025, 4, 18, 17, 0, tzinfo=NY), D(2025, 4, 17)),
    ],
)
def test_latest_completed_session(at, expected):
    assert cal.latest_completed_session(at) == expected


def test_latest_completed_session_rejects_naive_datetime():
    with pytest.raises(CalendarError, match="timezone"):
        cal.latest_completed_session(dt.datetime(2025, 3, 12, 17, 0))


# ---------------------------------------------------------------------- require_session


def test_require_session_accepts_sessions_and_strings():
    assert cal.require_session("2025-03-12") == D(2025, 3, 12)
    assert cal.require_session(D(2025, 7, 3)) == D(2025, 7, 3)
    assert cal.require_session(dt.datetime(2025, 7, 3, 9, 0)) == D(2025, 7, 3)


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (D(2025, 1, 11), "weekend"),
        (D(2025, 1, 12), "weekend"),
        (D(2025, 1, 9), "holiday"),
        (D(2025, 4, 18), "holiday"),
        (D(2025, 12, 25), "holiday"),
    ],
)
def test_require_session_names_why(day, reason):
    with pytest.raises(CalendarError, match=reason) as info:
        cal.require_session(day, what="partition")
    assert str(day) in str(info.value)
    assert "partition" in str(info.value)
    other = "holiday" if reason == "weekend" else "weekend"
    assert other not in str(info.value)


@pytest.mark.parametrize("bad", ["2025-13-01", "12/03/2025", "yesterday"])
def test_malformed_date_strings_raise_calendar_error(bad):
    with pytest.raises(CalendarError):
        cal.require_session(bad)


def test_dates_outside_the_calendar_raise():
    with pytest.raises(CalendarError, match="outside"):
        cal.require_session(D(1985, 1, 2))
    with pytest.raises(CalendarError):
        cal.sessions(D(1985, 1, 1), D(2025, 1, 1))
    with pytest.raises(CalendarError, match="after"):
        cal.sessions(D(2025, 2, 1), D(2025, 1, 1))


# ---------------------------------------------------------------------- expiries


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2025, 1, D(2025, 1, 17)),
        (2025, 2, D(2025, 2, 21)),
        (2025, 3, D(2025, 3, 21)),
        (2025, 4, D(2025, 4, 18)),
        (2025, 8, D(2025, 8, 15)),
        (2024, 11, D(2024, 11, 15)),
        (2026, 4, D(2026, 4, 17)),
        (2026, 5, D(2026, 5, 15)),
        (2020, 5, D(2020, 5, 15)),
        (2000, 12, D(2000, 12, 15)),
        (2021, 10, D(2021, 10, 15)),  # the 1st is a Friday
        (2019, 5, D(2019, 5, 17)),  # the 1st is a Wednesday
    ],
)
def test_third_friday(year, month, expected):
    assert cal.third_friday(year, month) == expected


@given(st.integers(1990, 2030), st.integers(1, 12))
def test_third_friday_is_a_friday_between_15_and_21(year, month):
    day = cal.third_friday(year, month)
    assert day.weekday() == 4
    assert (day.year, day.month) == (year, month)
    assert 15 <= day.day <= 21


def test_listed_expiries_known_schedule():
    # From Thursday 2025-01-02: weeklies out to six weeks (2025-02-13), monthlies to 90 days.
    expected = [
        Expiry(D(2025, 1, 3), "weekly"),
        Expiry(D(2025, 1, 10), "weekly"),
        Expiry(D(2025, 1, 17), "monthly"),
        Expiry(D(2025, 1, 24), "weekly"),
        Expiry(D(2025, 1, 31), "weekly"),
        Expiry(D(2025, 2, 7), "weekly"),
        Expiry(D(2025, 2, 21), "monthly"),
        Expiry(D(2025, 3, 21), "monthly"),
    ]
    assert cal.listed_expiries(D(2025, 1, 2), max_days=90, weekly_weeks=6) == expected


def test_listed_expiries_without_weekly_limit_lists_every_friday():
    listed = cal.listed_expiries(D(2025, 1, 2), max_days=30, weekly_weeks=None)
    assert [e.date for e in listed] == [
        D(2025, 1, 3),
        D(2025, 1, 10),
        D(2025, 1, 17),
        D(2025, 1, 24),
        D(2025, 1, 31),
    ]
    assert [e.kind for e in listed] == ["weekly", "weekly", "monthly", "weekly", "weekly"]


def test_april_2025_monthly_moves_to_thursday_before_good_friday():
    listed = cal.listed_expiries(D(2025, 3, 24), max_days=60)
    dates = [e.date for e in listed]
    assert D(2025, 4, 18) not in dates
    assert Expiry(D(2025, 4, 17), "monthly") in listed
    assert D(2025, 4, 17).weekday() == 3


def test_good_friday_2026_weekly_moves_to_thursday():
    assert not cal.is_session(D(2026, 4, 3))
    listed = cal.listed_expiries(D(2026, 3, 23), max_days=60, weekly_weeks=6)
    dates = [e.date for e in listed]
    assert D(2026, 4, 3) not in dates
    assert Expiry(D(2026, 4, 2), "weekly") in listed
    assert Expiry(D(2026, 4, 17), "monthly") in listed


def test_expiry_on_the_session_itself_is_listed():
    assert cal.listed_expiries(D(2025, 1, 17))[0] == Expiry(D(2025, 1, 17), "monthly")
    assert cal.listed_expiries(D(2025, 1, 10))[0] == Expiry(D(2025, 1, 10), "weekly")
    # The moved Good Friday expiry on its Thursday.
    assert cal.listed_expiries(D(2025, 4, 17))[0] == Expiry(D(2025, 4, 17), "monthly")
    # The day after an expiry, the next Friday is first.
    assert cal.listed_expiries(D(2025, 4, 21))[0].date == D(2025, 4, 25)


def test_listed_expiries_requires_a_session():
    with pytest.raises(CalendarError, match="weekend"):
        cal.listed_expiries(D(2025, 1, 11))
    with pytest.raises(CalendarError, match="holiday"):
        cal.listed_expiries(D(2025, 1, 9))


def _friday_on_or_after(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=(4 - day.weekday()) % 7)


@settings(max_examples=150, deadline=None)
@given(
    dates_2000_2028,
    st.integers(min_value=1, max_value=200),
    st.one_of(st.none(), st.integers(min_value=0, max_value=10)),
)
def test_listed_expiries_invariants(day, max_days, weekly_weeks):
    session = day if cal.is_session(day) else cal.next_session(day)
    listed = cal.listed_expiries(session, max_days=max_days, weekly_weeks=weekly_weeks)
    dates = [e.date for e in listed]
    assert dates == sorted(set(dates))  # sorted and unique
    horizon = session + dt.timedelta(days=max_days)
    weekly_horizon = horizon
    if weekly_weeks is not None:
        weekly_horizon = min(horizon, session + dt.timedelta(weeks=weekly_weeks))
    for expiry in listed:
        assert cal.is_session(expiry.date)
        assert session <= expiry.date <= horizon
        friday = _friday_on_or_after(expiry.date)
        assert (friday - expiry.date).days < 7
        is_third = friday == cal.third_friday(friday.year, friday.month)
        assert expiry.kind == ("monthly" if is_third else "weekly")
        if expiry.kind == "weekly":
            assert friday <= weekly_horizon
        if friday != expiry.date:  # moved: the Friday itself was a holiday
            assert not cal.is_session(friday)
            assert expiry.date == cal.previous_session(friday)
    # Every third Friday in range is listed (as itself, or the session before it).
    friday = _friday_on_or_after(session)
    while friday <= horizon:
        if friday == cal.third_friday(friday.year, friday.month):
            target = friday if cal.is_session(friday) else cal.previous_session(friday)
            assert Expiry(target, "monthly") in listed
        friday += dt.timedelta(days=7)


# ---------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(dates_2000_2028, st.integers(min_value=0, max_value=60))
def test_sessions_are_weekdays_and_sessions(start, length):
    end = start + dt.timedelta(days=length)
    listed = cal.sessions(start, end)
    assert listed == sorted(set(listed))
    for day in listed:
        assert start <= day <= end
        assert day.weekday() < 5
        assert cal.is_session(day)
    # Every weekday in the interval is a session or a holiday, never both.
    holidays = cal.holidays(start, end)
    assert sorted(listed + holidays) == _weekdays(start, end)
    assert not set(listed) & set(holidays)


@settings(max_examples=200, deadline=None)
@given(dates_2000_2028)
def test_previous_and_next_session_invariants(day):
    before = cal.previous_session(day)
    after = cal.next_session(day)
    assert before < day < after
    assert cal.is_session(before) and cal.is_session(after)
    # No session strictly between the neighbours other than ``day`` itself.
    between = cal.sessions(before, after)
    assert between == ([before, day, after] if cal.is_session(day) else [before, after])
    # Round trips land on ``day`` exactly when it is a session, past it otherwise.
    forward = cal.next_session(before)
    backward = cal.previous_session(after)
    assert forward >= day and backward <= day
    assert (forward == day) == cal.is_session(day)
    assert (backward == day) == cal.is_session(day)
    assert cal.session_position(after) - cal.session_position(before) == (
        2 if cal.is_session(day) else 1
    )
    # Neighbours are never more than a week and a half apart (the 2001 closure was 4 days).
    assert (after - before).days <= 10


@settings(max_examples=100, deadline=None)
@given(dates_2000_2028, st.times())
def test_latest_completed_session_never_looks_ahead(day, clock):
    at = dt.datetime.combine(day, clock, tzinfo=NY)
    latest = cal.latest_completed_session(at)
    assert cal.is_session(latest)
    assert latest <= day
    assert cal.session_close(latest) <= at
    # ... and it is the latest such session: the next one had not closed yet.
    assert cal.session_close(cal.next_session(latest)) > at


def test_trailing_sessions_is_the_lookback_window():
    from butterquant_dagster.core.calendar import trailing_sessions

    assert trailing_sessions("2025-07-07", 3) == [
        dt.date(2025, 7, 2),
        dt.date(2025, 7, 3),
        dt.date(2025, 7, 7),
    ]
    assert trailing_sessions("2025-07-07", 2, inclusive=False) == [
        dt.date(2025, 7, 2),
        dt.date(2025, 7, 3),
    ]
    # From a holiday, the window ends at the session before it either way.
    assert trailing_sessions("2025-07-04", 1) == trailing_sessions("2025-07-04", 1, inclusive=False)
    assert len(trailing_sessions("1990-01-03", 10)) == 2  # the calendar's first sessions
