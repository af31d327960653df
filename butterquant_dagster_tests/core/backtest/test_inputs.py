"""Checking a backtest request against the lake: every refusal names what is wrong and
what to run; the default window; the training history stops where it is told to."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.backtest.inputs import (
    BacktestInputError,
    LakeInputs,
    benchmark_curve,
    check_request,
)
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster_tests.core.backtest.lakes import TICKERS, build_lake

FIRST, LAST = "2025-02-03", "2025-02-14"  # ten sessions


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("inputs-lake")
    decisions = pd.DataFrame(
        [
            {"session": d.isoformat(), "symbol": t, "action": "hold", "confidence": 0.5}
            for d in calendar.sessions(FIRST, "2025-02-12")
            for t in TICKERS
        ]
    )
    built, _ = build_lake(root, FIRST, LAST, decisions=decisions)
    return built


def test_a_complete_request_is_accepted(lake):
    request = check_request(lake, "butterfly", ["aaa", " BBB"], FIRST, LAST)
    assert request.tickers == ["AAA", "BBB"]
    assert request.sessions == calendar.sessions(FIRST, LAST)
    everyone = check_request(lake, "butterfly", [], "2025-02-05", "2025-02-07")
    assert everyone.tickers == sorted(TICKERS)  # empty = the universe
    assert everyone.start == dt.date(2025, 2, 5) and everyone.end == dt.date(2025, 2, 7)


def test_without_dates_the_window_is_the_last_scanned_sessions(lake):
    request = check_request(lake, "butterfly", [], None, None, count=4)
    assert request.sessions == calendar.sessions("2025-02-11", LAST)
    # Only an end: the sessions scanned up to it.
    request = check_request(lake, "butterfly", [], None, "2025-02-07", count=3)
    assert request.sessions == calendar.sessions("2025-02-05", "2025-02-07")


@pytest.mark.parametrize(
    ("strategy", "tickers", "start", "end", "message"),
    [
        ("butterfly", ["AAA", "ZZZ"], FIRST, LAST, r"\['ZZZ'\] are not in the universe"),
        ("butterfly", [], "2025-02-30", LAST, "start_date must be a date YYYY-MM-DD"),
        ("butterfly", [], FIRST, "14/02/2025", "end_date must be a date YYYY-MM-DD"),
        ("butterfly", [], LAST, FIRST, "start date 2025-02-14 is after the end date"),
        ("butterfly", [], "2025-02-15", "2025-02-17", "no NYSE session between"),
        ("momentum", [], FIRST, LAST, "unknown strategy 'momentum'"),
    ],
)
def test_bad_requests_name_what_is_wrong(lake, strategy, tickers, start, end, message):
    with pytest.raises(BacktestInputError, match=message):
        check_request(lake, strategy, tickers, start, end)


def test_unscanned_sessions_are_named_with_the_command_that_makes_them(lake):
    with pytest.raises(BacktestInputError) as error:
        check_request(lake, "butterfly", [], "2025-01-29", "2025-02-04")
    text = str(error.value)
    assert "option_chains is missing for 3 session(s) (2025-01-29, 2025-01-30, 2025-01-31)" in text
    assert "`butterquant backfill --start 2025-01-29 --end 2025-01-31`" in text
    assert "butterfly_candidates is missing for 3 session(s)" in text
    assert "`butterquant scan --start 2025-01-29 --end 2025-01-31`" in text


def test_signals_need_the_decisions_of_every_session(lake):
    assert len(check_request(lake, "signals", [], FIRST, "2025-02-12").sessions) == 8
    with pytest.raises(BacktestInputError, match="trading_decisions is missing for 2 session"):
        check_request(lake, "signals", [], FIRST, LAST)


def test_an_empty_lake_says_how_to_start(tmp_path):
    with pytest.raises(BacktestInputError, match="no universe"):
        check_request(Lake(tmp_path), "butterfly", [], None, None)


def test_the_training_history_stops_before_the_date_asked(lake):
    inputs = LakeInputs(lake, ["AAA"])
    before = dt.date(2025, 2, 15)  # the first listed expiry, 2025-02-14, has settled
    stored = lake.read("candidate_outcomes", lake.partitions("candidate_outcomes"))
    assert (pd.to_datetime(stored["expiry"]) >= pd.Timestamp(before)).any()
    features, outcomes = inputs.labelled_history(before, max_rows=10_000, seed=7)
    assert len(outcomes) > 0 and len(features) == len(outcomes)
    assert (pd.to_datetime(outcomes["expiry"]) < pd.Timestamp(before)).all()
    # Trained on every ticker (like the production model), traded on the chosen ones.
    assert set(outcomes["symbol"]) == set(TICKERS)
    capped, _ = inputs.labelled_history(before, max_rows=12, seed=7)
    assert 0 < len(capped) <= 12 + len(calendar.sessions(FIRST, before))


def test_the_butterfly_benchmark_is_an_equal_weighted_index():
    days = calendar.sessions("2025-02-03", "2025-02-05")
    bars = pd.DataFrame(
        {
            "session": [pd.Timestamp(d) for d in days for _ in range(2)],
            "symbol": ["A", "B"] * 3,
            "close": [10.0, 50.0, 11.0, 50.0, 12.0, 45.0],
        }
    )
    curve = benchmark_curve(bars, days, 1_000.0)
    assert curve.tolist() == pytest.approx([1_000.0, 1_050.0, 1_050.0])
