"""The `butterquant` command's contract with scripts and people: every command and its flags,
their help texts, choices and defaults, the exit codes (0 done, 1 a run or check failed,
2 bad input) and the top-level keys of ``--json`` output.

Scripts parse the JSON and branch on the exit code, and the README lists the flags, so a
refactoring of the CLI must leave all of it as it is. A deliberate change updates the
snapshot (`BUTTERQUANT_UPDATE_SNAPSHOT=1 pytest butterquant_dagster_tests/test_cli_contract.py`)
and shows up in review.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, build_parser, main

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "cli_contract.json"

# Every command with its options (positionals by name), as the README documents them.
FLAGS = {
    "analyze": ["--capital", "--date", "--portfolio", "--show-reasoning", "--tickers"],
    "backfill": ["--assets", "--end", "--json", "--start"],
    "backtest": [
        "--end-date",
        "--initial-capital",
        "--json",
        "--slippage-bps",
        "--start-date",
        "--step-sessions",
        "--strategy",
        "--tickers",
    ],
    "backup": ["--json"],
    "demo": ["--json", "--scan-sessions", "--sessions", "--skip-training", "--trade-sessions"],
    "execute": ["--date", "--dry-run", "--json"],
    "health": ["--json"],
    "journal": ["--json", "--last"],
    "models": ["--json", "action", "name", "version"],
    "positions": ["--json"],
    "report": ["--date", "--json", "period"],
    "restore": ["--force", "--json", "path"],
    "runs": ["--clear", "--clear-stale", "--json"],
    "scan": ["--date", "--end", "--json", "--start", "--top"],
    "sessions": ["--end", "--json", "--start"],
    "sql": ["--json", "--max-rows", "query"],
    "status": ["--json"],
    "train": ["--end-date", "--force", "--json", "--model", "--start-date", "--tickers"],
}

RUN_SUMMARY_KEYS = {
    "run_id", "success", "job", "first_session", "last_session", "sessions", "data_dir",
    "failures", "failed_checks",
}  # fmt: skip


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _help_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {choice.dest: choice.help for choice in sub._choices_actions}


def _option(action: argparse.Action) -> dict:
    return {
        "help": action.help,
        "choices": list(action.choices) if action.choices is not None else None,
        "default": action.default,
        "required": action.required,
        "nargs": action.nargs,
        "metavar": action.metavar,
        "takes_value": action.nargs != 0,
    }


def describe(parser: argparse.ArgumentParser) -> dict:
    """Each command's help line, description and options, as the parser holds them."""
    helps = _help_of(parser)
    return {
        "prog": parser.prog,
        "description": parser.description,
        "commands": {
            name: {
                "help": helps[name],
                "description": command.description,
                "options": {
                    (action.option_strings[0] if action.option_strings else action.dest): _option(
                        action
                    )
                    for action in command._actions
                    if not isinstance(action, argparse._HelpAction)
                },
            }
            for name, command in sorted(_subcommands(parser).items())
        },
    }


def test_every_command_keeps_its_flags():
    commands = _subcommands(build_parser())
    assert sorted(commands) == sorted(FLAGS)
    for name, command in commands.items():
        flags = sorted(
            action.option_strings[0] if action.option_strings else action.dest
            for action in command._actions
            if not isinstance(action, argparse._HelpAction)
        )
        assert flags == FLAGS[name], name


def test_help_texts_choices_and_defaults_are_pinned():
    current = describe(build_parser())
    if os.environ.get("BUTTERQUANT_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True, default=str) + "\n")
    pinned = json.loads(SNAPSHOT.read_text())
    assert json.loads(json.dumps(current, default=str)) == pinned


@pytest.fixture
def root(isolated_env, tmp_path, monkeypatch):
    """An empty data root, and no ./.env of the working tree in the way."""
    monkeypatch.chdir(tmp_path)
    return isolated_env


# ----------------------------------------------------------------------------- bad input: 2
@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["backfill", "--end", "2025-03-04"],
        ["backfill", "--start", "2025-03-03", "--end", "2025-03-04", "--assets", "options"],
        ["demo", "--sessions", "0"],
        ["scan", "--top", "0"],
        ["train", "--model", "everything"],
        ["models", "retire"],
        ["analyze"],
        ["analyze", "--tickers", "MMM", "--capital", "lots"],
        ["status", "--verbose"],
        ["sessions", "--start", "2025-03-03"],
        ["execute", "--send"],
        ["positions", "--all"],
        ["journal", "--last", "0"],
        ["report", "yearly"],
        ["backtest", "--initial-capital", "0"],
        ["backtest", "--strategy", "martingale"],
        ["health", "--fix"],
        ["backup", "--to", "x"],
        ["restore"],
        ["sql"],
        ["runs", "--clear"],
    ],
)
def test_a_malformed_command_line_exits_2(argv, root, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == EXIT_BAD_INPUT
    assert "usage: butterquant" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backfill", "--start", "2025-13-01", "--end", "2025-12-31"], "YYYY-MM-DD"),
        (["sessions", "--start", "2025-07-05", "--end", "2025-07-06"], "no NYSE session"),
        (["scan", "--date", "2025-07-04"], "not an NYSE session"),
        (["analyze", "--tickers", "MMM", "--date", "2025-07-04"], "not an NYSE session"),
        (["execute", "--date", "2025-07-04"], "not an NYSE session"),
        (["report", "daily", "--date", "2025-07-04"], "not an NYSE session"),
        (["demo", "--sessions", "5000"], "before the first partition"),
        (["train"], "no market data"),
        (["train", "--end-date", "2999-01-04"], "has not closed yet"),
        (["models", "show"], "models show needs NAME"),
        (["models", "promote", "butterfly_win_probability"], "needs NAME and VERSION"),
        (["models", "rollback"], "models rollback needs NAME"),
        (["backtest"], "the lake has no universe"),
        (["restore", "nowhere"], "is not a directory"),
        (["sql", "DELETE FROM daily_bars"], "is read-only"),
        (["runs", "--clear", "no-such-run"], "no run no-such-run"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, root, capsys, monkeypatch):
    # The shipped first partition (the test process starts earlier, for the real files).
    monkeypatch.setenv("BUTTERQUANT_PARTITIONS_START", "2015-01-02")
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("butterquant: error: "), err
    assert message in err


def test_a_bad_setting_is_bad_input(root, capsys, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_MODEL_AGE_WARN_DAYS", "a month")
    assert main(["health", "--json"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("butterquant: error: ")


# ----------------------------------------------------------------------------- JSON shapes: 0
def _json(argv, capsys, code=EXIT_OK):
    assert main(argv) == code
    out = capsys.readouterr().out
    return json.loads(out)


def test_status_json(root, capsys):
    assert _json(["status", "--json"], capsys) == {"data_dir": str(root), "tables": {}}


def test_sessions_json(root, capsys):
    result = _json(["sessions", "--start", "2025-12-23", "--end", "2025-12-24", "--json"], capsys)
    assert set(result) == {"sessions", "count"}
    assert result["count"] == 2
    assert set(result["sessions"][0]) == {"session", "early_close"}


def test_runs_json(root, capsys):
    assert _json(["runs", "--json"], capsys) == {"cleared": [], "unfinished": []}


def test_models_list_json(root, capsys):
    assert _json(["models", "list", "--json"], capsys) == []


def test_positions_json(root, capsys):
    result = _json(["positions", "--json"], capsys)
    assert set(result) == {"open_positions", "cash", "equity", "account", "positions"}
    assert result["open_positions"] == 0 and result["positions"] == []


def test_journal_json(root, capsys):
    result = _json(["journal", "--json"], capsys)
    assert {"trades", "win_rate", "total_pnl", "realized_pnl", "yield_per_1000"} <= set(result)
    assert {"account", "equity", "max_drawdown"} <= set(result)
    assert result["trades"] == []


def test_health_json_fails_on_an_empty_root(root, capsys):
    result = _json(["health", "--json"], capsys, code=EXIT_RUN_FAILED)
    assert set(result) >= {"healthy", "generated_at", "checks"}
    assert result["healthy"] is False
    assert {"check", "status", "message", "details"} <= set(result["checks"][0])


# ----------------------------------------------------------------------------- runs: 0 and 1
def test_backfill_json_is_the_run_summary_with_the_lake(root, capsys):
    argv = ["backfill", "--start", "2025-03-03", "--end", "2025-03-04", "--json"]
    result = _json(argv, capsys)
    lake_keys = {"tickers", "bars", "contracts", "modelled_contracts", "lake", "warehouse"}
    assert set(result) == RUN_SUMMARY_KEYS | lake_keys | {"stages", "left_out"}
    assert result["success"] is True and result["sessions"] == 2
    (stage,) = result["stages"]
    assert set(stage) == RUN_SUMMARY_KEYS and stage["run_id"] == result["run_id"]
    assert result["left_out"] == {}
    assert main(["sql", "SELECT count(*) AS n FROM daily_bars", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [{"n": 12}]
    tables = _json(["status", "--json"], capsys)["tables"]
    assert tables["daily_bars"] == {"partitions": 2, "first": "2025-03-03", "last": "2025-03-04"}


def test_a_failed_run_exits_1_with_the_run_summary(root, capsys, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_MARKET_SOURCE", "files")
    monkeypatch.setenv("BUTTERQUANT_BARS_PATH", str(root / "nowhere"))
    argv = ["backfill", "--start", "2025-03-03", "--end", "2025-03-04", "--json"]
    result = _json(argv, capsys, code=EXIT_RUN_FAILED)
    assert set(result) == RUN_SUMMARY_KEYS
    assert result["success"] is False
    assert any("nowhere" in failure for failure in result["failures"])
    # The domain error, not Dagster's wrapper around it.
    assert not any("DagsterExecutionStepExecutionError" in f for f in result["failures"])
