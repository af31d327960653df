"""Which sessions a report covers, and when the weekly and monthly ones are due."""

import datetime as dt

import pytest

from butterquant_dagster.core.monitoring.periods import PeriodError, closes_period, report_window

D = dt.date


def test_daily_report_covers_its_session():
    assert report_window("daily", D(2026, 11, 20)) == (D(2026, 11, 20), D(2026, 11, 20))


def test_weekly_report_starts_on_the_weeks_first_session():
    # 2025-01-20 is Martin Luther King Jr. Day: the week starts on Tuesday.
    assert report_window("weekly", D(2025, 1, 24)) == (D(2025, 1, 21), D(2025, 1, 24))
    assert report_window("weekly", D(2026, 11, 18)) == (D(2026, 11, 16), D(2026, 11, 18))


def test_monthly_report_starts_on_the_months_first_session():
    # 2026-11-01 is a Sunday.
    assert report_window("monthly", D(2026, 11, 20)) == (D(2026, 11, 2), D(2026, 11, 20))


def test_weekly_report_is_due_on_the_last_session_of_the_week():
    assert closes_period("weekly", D(2026, 11, 20))  # a Friday
    assert not closes_period("weekly", D(2026, 11, 19))
    # Good Friday 2025-04-18: the week's last session is Thursday.
    assert closes_period("weekly", D(2025, 4, 17))


def test_monthly_report_is_due_on_the_last_session_of_the_month():
    assert closes_period("monthly", D(2026, 10, 30))
    assert not closes_period("monthly", D(2026, 10, 29))
    # 2025-05-31 is a Saturday: Friday the 30th closes May.
    assert closes_period("monthly", D(2025, 5, 30))


def test_a_holiday_or_unknown_period_is_refused_by_name():
    with pytest.raises(ValueError, match="session"):
        report_window("daily", D(2026, 11, 26))  # Thanksgiving
    with pytest.raises(PeriodError, match="quarterly"):
        report_window("quarterly", D(2026, 11, 20))
