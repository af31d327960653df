"""The pre-close scan schedule and the daily settlement schedule, on explicit dates."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import build_schedule_context

from butterquant_dagster.core import calendar
from butterquant_dagster_tests.defs.helpers import make_defs


def _evaluate(tmp_path, name, year, month, day, hour, minute):
    defs = make_defs(tmp_path)
    schedule = defs.resolve_schedule_def(name)
    tick = dt.datetime(year, month, day, hour, minute, tzinfo=calendar.EXCHANGE_TZ)
    context = build_schedule_context(
        scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    return result.run_requests, result.skip_message


def _scan_schedule(when) -> str:
    """The pair's schedule that ticks at that hour: 12:15 is the early-close variant."""
    return "scan_before_early_close" if when[3] == 12 else "scan_before_close"


@pytest.mark.parametrize(
    ("when", "scanned"),
    [
        ((2025, 7, 2, 15, 15), "2025-07-01"),  # a normal day: 45 min before 16:00
        ((2025, 7, 3, 12, 15), "2025-07-02"),  # early close 13:00: moved to 12:15
        ((2025, 7, 7, 15, 15), "2025-07-03"),  # the Monday after the holiday
    ],
)
def test_scan_runs_45_minutes_before_the_close(tmp_path, when, scanned):
    requests, _ = _evaluate(tmp_path, _scan_schedule(when), *when)
    assert [r.partition_key for r in requests] == [scanned]
    assert requests[0].run_key == f"scan-{scanned}"


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ((2025, 7, 3, 15, 15), "the scan runs at 12:15"),  # early-close day's late tick
        ((2025, 7, 2, 12, 15), "the scan runs at 15:15"),  # normal day's early tick
        ((2025, 7, 4, 15, 15), "not an NYSE session"),  # Independence Day
        ((2025, 12, 25, 12, 15), "not an NYSE session"),  # Christmas
    ],
)
def test_scan_skips(tmp_path, when, reason):
    requests, message = _evaluate(tmp_path, _scan_schedule(when), *when)
    assert not requests
    assert reason in message


def test_settlement_targets_the_session_whose_expiries_passed(tmp_path):
    # 60 days before 2025-07-02 is Saturday 2025-05-03, before 2025-07-01 it is Friday
    # 2025-05-02: the Wednesday tick settles the Saturday-rolled window, i.e. nothing new
    # beyond Friday, which Tuesday's tick already settled.
    requests, message = _evaluate(tmp_path, "settle_matured_candidates", 2025, 7, 2, 17, 0)
    assert not requests and "no entry session matured" in message
    requests, _ = _evaluate(tmp_path, "settle_matured_candidates", 2025, 7, 1, 17, 0)
    assert [r.partition_key for r in requests] == ["2025-05-02"]
    # Monday 2025-07-07 follows the July 4th holiday: it settles everything since
    # Thursday's window (2025-05-05 .. 2025-05-08).
    requests, _ = _evaluate(tmp_path, "settle_matured_candidates", 2025, 7, 7, 17, 0)
    assert [r.partition_key for r in requests] == [
        "2025-05-05",
        "2025-05-06",
        "2025-05-07",
        "2025-05-08",
    ]


def test_settlement_covers_every_entry_session(tmp_path):
    """Over a quarter of ticks, every entry session is requested exactly once."""
    requested = []
    for day in calendar.sessions("2025-03-03", "2025-06-30"):
        requests, _ = _evaluate(
            tmp_path, "settle_matured_candidates", day.year, day.month, day.day, 17, 0
        )
        requested += [r.partition_key for r in requests]
    first = (dt.date(2025, 3, 3) - dt.timedelta(days=60)).isoformat()
    last = (dt.date(2025, 6, 30) - dt.timedelta(days=60)).isoformat()
    expected = [d.isoformat() for d in calendar.sessions(first, last)]
    assert sorted(requested) == sorted(set(requested))
    assert set(expected) - set(requested) <= {expected[0]}  # the window's first edge
    requests, message = _evaluate(tmp_path, "settle_matured_candidates", 2025, 7, 4, 17, 0)
    assert not requests and "not an NYSE session" in message
