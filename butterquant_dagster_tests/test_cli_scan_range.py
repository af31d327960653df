"""`butterquant scan` over a range, in one run, taking only what it reads: the bars of the
signals' lookback (no chains for sessions it does not scan) and the scanned chains."""

from __future__ import annotations

import json

import pytest

from butterquant_dagster.cli import main
from butterquant_dagster.commands._errors import EXIT_BAD_INPUT, EXIT_OK
from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake

FIRST, LAST = "2025-03-03", "2025-03-05"


@pytest.fixture
def root(isolated_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SIZE", "4")
    return isolated_env


def test_a_range_is_scanned_in_one_run_on_an_empty_lake(root, capsys):
    assert main(["scan", "--start", FIRST, "--end", LAST, "--top", "3", "--json"]) == EXIT_OK
    top = json.loads(capsys.readouterr().out)
    assert 0 < len(top) <= 3
    lake = Lake(root)
    scanned = [d.isoformat() for d in calendar.sessions(FIRST, LAST)]
    assert lake.partitions("scan_rankings") == scanned
    # Chains only for the scanned sessions; the lookback before them is bars only.
    assert lake.partitions("option_chains") == scanned
    lookback = calendar.trailing_sessions(calendar.sessions(FIRST, LAST)[0], 65)
    assert set(d.isoformat() for d in lookback) <= set(lake.partitions("daily_bars"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["scan", "--date", FIRST, "--start", FIRST, "--end", LAST], "not both"),
        (["scan", "--start", FIRST], "needs both --start and --end"),
        (["scan", "--start", LAST, "--end", FIRST], "after end"),
    ],
)
def test_a_bad_range_is_bad_input(root, capsys, argv, message):
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert Lake(root).tables() == []
