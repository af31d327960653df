"""The after-close schedules: regular closes, early closes, holidays, weekends."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import RunRequest, build_schedule_context

from butterquant_dagster.core import calendar
from butterquant_dagster.defs.close_ticks import EARLY_CLOSE_MONTHS
from butterquant_dagster_tests.defs.helpers import make_defs

REGULAR, EARLY = "market_snapshot_after_close", "market_snapshot_after_early_close"


def _evaluate(tmp_path, year, month, day, hour, minute=30):
    """The tick of whichever of the pair ticks at that hour (13:30 is the early variant)."""
    defs = make_defs(tmp_path)
    schedule = defs.resolve_schedule_def(EARLY if hour == 13 else REGULAR)
    tick = dt.datetime(year, month, day, hour, minute, tzinfo=calendar.EXCHANGE_TZ)
    context = build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    return result.run_requests, result.skip_message


@pytest.mark.parametrize(
    ("when", "expected_key"),
    [
        ((2025, 7, 2, 16), "2025-07-02"),  # a regular session
        ((2025, 7, 3, 13), "2025-07-03"),  # early close at 13:00
        ((2025, 11, 28, 13), "2025-11-28"),  # day after Thanksgiving
    ],
)
def test_runs_after_the_actual_close(tmp_path, when, expected_key):
    requests, _ = _evaluate(tmp_path, *when)
    assert len(requests) == 1
    request: RunRequest = requests[0]
    assert request.partition_key == expected_key
    assert request.run_key == f"market-{expected_key}"


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ((2025, 7, 3, 16), "closes at 13:00"),  # the early-close day's late tick
        ((2025, 7, 2, 13), "closes at 16:00"),  # a regular day's early tick
        ((2025, 7, 4, 16), "not an NYSE session"),  # Independence Day
        ((2025, 1, 9, 16), "not an NYSE session"),  # national day of mourning
    ],
)
def test_skips(tmp_path, when, reason):
    requests, message = _evaluate(tmp_path, *when)
    assert not requests
    assert reason in message


def test_crons_never_tick_on_weekends_and_the_early_variant_only_in_early_close_months(tmp_path):
    defs = make_defs(tmp_path)
    assert defs.resolve_schedule_def(REGULAR).cron_schedule == "30 16 * * 1-5"
    assert defs.resolve_schedule_def(EARLY).cron_schedule == "30 13 * 7,11,12 1-5"
    requests, message = _evaluate(tmp_path, 2025, 7, 12, 16)  # a Saturday, if ever asked
    assert not requests and "not an NYSE session" in message


def test_every_early_close_in_the_calendar_falls_in_a_month_the_early_variants_tick():
    """The early variants' crons tick only in EARLY_CLOSE_MONTHS: an early close elsewhere
    would never be run by them (nor by the regular schedule, whose tick then skips)."""
    closes = calendar.early_closes(calendar.CALENDAR_FIRST_DAY, dt.date(2027, 12, 31))
    assert len(closes) > 50
    assert {c.session.month for c in closes} <= set(EARLY_CLOSE_MONTHS)
