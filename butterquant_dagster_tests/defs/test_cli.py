"""The `butterquant` command against a temporary data root and instance."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dagster import DagsterInstance

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, build_parser, main
from butterquant_dagster.commands._models import contiguous_blocks
from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml.regime import first_bar_session_needed
from butterquant_dagster.core.storage.lake import Lake


def test_backfill_over_holidays_creates_exactly_the_sessions(isolated_env, capsys):
    code = main(["backfill", "--start", "2025-11-26", "--end", "2025-12-02", "--json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    summary = json.loads(out)
    assert summary["success"] is True
    # Thanksgiving (27th) and the weekend are not sessions; the 28th closed early.
    expected = ["2025-11-26", "2025-11-28", "2025-12-01", "2025-12-02"]
    assert summary["sessions"] == 4
    assert Lake(isolated_env).partitions("daily_bars") == expected
    assert Lake(isolated_env).partitions("option_chains") == expected
    assert summary["tickers"] == 6 and summary["bars"] == 24
    # The run is in the project's instance, where the UI will find it.
    instance = DagsterInstance.get()
    runs = instance.get_runs()
    assert [r.run_id for r in runs] == [summary["run_id"]]
    assert runs[0].tags["dagster/asset_partition_range_start"] == "2025-11-26"
    assert (isolated_env / "dagster" / "dagster.yaml").exists()


def test_demo_summarizes_what_it_made(isolated_env, capsys):
    code = main(["demo", "--sessions", "3", "--scan-sessions", "2"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "3 sessions" in out and "tickers:   6" in out
    assert "scanned:   2 sessions" in out
    assert str(isolated_env / "lake") in out
    assert "http://127.0.0.1:3000" in out
    lake = Lake(isolated_env)
    assert len(lake.partitions("option_chains")) == 3
    assert len(lake.partitions("scan_rankings")) == 2
    # Bars (no chains) go back far enough for a point-in-time regime of the first session.
    chains = lake.partitions("option_chains")
    first = dt.date.fromisoformat(chains[0])
    history = calendar.sessions(first_bar_session_needed(first), calendar.previous_session(first))
    assert lake.partitions("daily_bars") == [d.isoformat() for d in history] + chains
    assert f"index history of {len(history)} more sessions" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "--start", "2025-13-01", "--end", "2025-12-31"], "YYYY-MM-DD"),
        (["backfill", "--start", "2025-07-05", "--end", "2025-07-06"], "no NYSE session"),
        (["backfill", "--start", "2025-07-10", "--end", "2025-07-01"], "after end"),
        (["backfill", "--start", "2010-01-04", "--end", "2010-01-08"], "before the first"),
        (["backfill", "--start", "1980-01-02", "--end", "1980-01-08"], "outside the NYSE"),
    ],
)
def test_bad_dates_are_errors(isolated_env, capsys, monkeypatch, argv, message):
    # The shipped first partition (the test process starts earlier, for the real files).
    monkeypatch.setenv("BUTTERQUANT_PARTITIONS_START", "2015-01-02")
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert Lake(isolated_env).tables() == []


def test_failed_run_exits_nonzero_and_names_the_problem(isolated_env, monkeypatch, capsys):
    monkeypatch.setenv("BUTTERQUANT_MARKET_SOURCE", "files")
    monkeypatch.setenv("BUTTERQUANT_BARS_PATH", str(isolated_env / "nowhere"))
    assert main(["backfill", "--start", "2025-03-03", "--end", "2025-03-04"]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_sql_and_status(isolated_env, capsys):
    assert main(["backfill", "--start", "2025-03-03", "--end", "2025-03-04", "--json"]) == 0
    capsys.readouterr()
    assert main(["sql", "SELECT count(*) AS n FROM daily_bars", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [{"n": 12}]
    assert main(["status", "--json"]) == EXIT_OK
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert tables["daily_bars"] == {"partitions": 2, "first": "2025-03-03", "last": "2025-03-04"}
    assert main(["sql", "SELECT * FROM no_such_table"]) == EXIT_BAD_INPUT
    assert "no_such_table" in capsys.readouterr().err


def test_sessions_lists_early_closes(capsys):
    assert main(["sessions", "--start", "2025-12-22", "--end", "2025-12-26", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sessions"]
    assert rows == [
        {"session": "2025-12-22", "early_close": False},
        {"session": "2025-12-23", "early_close": False},
        {"session": "2025-12-24", "early_close": True},
        {"session": "2025-12-26", "early_close": False},
    ]


@pytest.mark.parametrize("command", ["backfill", "demo", "scan", "status", "sql", "sessions"])
def test_every_command_has_help(command, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: butterquant {command}" in capsys.readouterr().out


def test_demo_needs_at_least_one_session(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--sessions", "0"])
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert "must be at least 1" in capsys.readouterr().err


def test_scan_backfills_history_and_prints_ranked_listed_butterflies(isolated_env, capsys):
    code = main(["scan", "--date", "2025-06-02", "--top", "5", "--json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    rows = json.loads(out)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    lake = Lake(isolated_env)
    assert len(lake.partitions("daily_bars")) == 65  # the history the signals need
    chain = lake.read("option_chains", ["2025-06-02"])
    listed = set(zip(chain["symbol"], chain["strike"], strict=True))
    for row in rows:
        for leg in ("lower", "center", "upper"):
            assert (row["ticker"], row[leg]) in listed
        assert row["max_loss"] > 0 and row["lower"] < row["center"] < row["upper"]
        assert row["recommendation"] in {"STRONG_BUY", "BUY", "NEUTRAL", "AVOID"}
    evs = [r["ev_per_1000"] for r in rows]
    assert evs == sorted(evs, reverse=True)


def test_scan_refuses_a_holiday(isolated_env, capsys):
    assert main(["scan", "--date", "2025-07-04"]) == EXIT_BAD_INPUT
    assert "not an NYSE session" in capsys.readouterr().err


def test_dotenv_in_the_working_directory_configures_the_cli(tmp_path, monkeypatch, capsys):
    """Like `dagster dev`, the CLI reads ./.env; the environment still wins."""
    (tmp_path / ".env").write_text(f"BUTTERQUANT_DATA_DIR={tmp_path / 'from-dotenv'}\n")
    monkeypatch.delenv("BUTTERQUANT_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["status", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(tmp_path / "from-dotenv")
    monkeypatch.setenv("BUTTERQUANT_DATA_DIR", str(tmp_path / "from-environment"))
    assert main(["status", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["data_dir"] == str(tmp_path / "from-environment")


def test_contiguous_blocks_split_at_gaps():
    keys = ["2025-07-01", "2025-07-02", "2025-07-03", "2025-07-07", "2025-07-09"]
    # July 4th is a holiday: the 3rd and the 7th are consecutive sessions; the 8th is missing.
    assert contiguous_blocks(keys) == [
        (dt.date(2025, 7, 1), dt.date(2025, 7, 7)),
        (dt.date(2025, 7, 9), dt.date(2025, 7, 9)),
    ]
