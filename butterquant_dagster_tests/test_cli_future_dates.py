"""Every date-taking command refuses a session that has not closed: exit 2, one message
naming the date and the latest closed session, and no run started."""

from __future__ import annotations

import datetime as dt

import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, main
from butterquant_dagster.commands import _dates
from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake

# Tuesday 2025-04-01 08:00 New York: Monday 2025-03-31 is the latest closed session.
NOW = dt.datetime(2025, 4, 1, 8, 0, tzinfo=calendar.EXCHANGE_TZ)
LATEST = "2025-03-31"


@pytest.fixture
def root(isolated_env, monkeypatch):
    monkeypatch.setattr(_dates, "now", lambda: NOW)
    return isolated_env


@pytest.mark.parametrize("day", ["2025-04-01", "2025-04-02"])
@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["scan", "--date", "{day}"], "--date"),
        (["execute", "--date", "{day}"], "--date"),
        (["execute", "--date", "{day}", "--dry-run"], "--date"),
        (["analyze", "--tickers", "AAPL", "--date", "{day}"], "--date"),
        (["report", "daily", "--date", "{day}"], "--date"),
        (["backtest", "--end-date", "{day}"], "--end-date"),
        (["backfill", "--start", "2025-03-28", "--end", "{day}"], "--end"),
        (["train", "--end-date", "{day}"], "--end-date"),
    ],
)
def test_a_session_that_has_not_closed_is_refused_the_same_way(root, capsys, argv, what, day):
    code = main([part.format(day=day) for part in argv])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err == (
        f"butterquant: error: {what} {day} has not closed yet; "
        f"the latest closed NYSE session is {LATEST}\n"
    )
    assert Lake(root).tables() == []


def test_a_closed_session_and_a_weekend_after_it_pass_the_check(root):
    assert _dates.require_closed(dt.date(2025, 3, 31), "--date") == dt.date(2025, 3, 31)
    # Saturday after the latest close at Saturday noon: no session in between is open.
    at_saturday = dt.datetime(2025, 4, 5, 12, 0, tzinfo=calendar.EXCHANGE_TZ)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_dates, "now", lambda: at_saturday)
        assert _dates.require_closed(dt.date(2025, 4, 5), "--end") == dt.date(2025, 4, 5)
