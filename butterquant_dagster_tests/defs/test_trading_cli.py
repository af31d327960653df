"""The trading commands (`execute`, `positions`, `journal`) against a temporary data root."""

import contextlib
import json
import os

import pytest
from dagster import DagsterInstance

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, build_parser, main
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.defs.trading.automation import PLAN_JOB

DECIDED_ON = "2025-06-02"
SESSION = "2025-06-03"
# Two tickers and loose floors: the synthetic rankings give entries to plan.
ENVIRONMENT = {
    "BUTTERQUANT_UNIVERSE_SIZE": "2",
    "BUTTERQUANT_AI_TRACK_SLOTS": "0",
    "BUTTERQUANT_MIN_EXPECTED_YIELD": "-1000000000",
    "BUTTERQUANT_MAX_SPREAD_PCT": "10",
    "BUTTERQUANT_MIN_OPEN_INTEREST": "0",
}


def _reject(constant: str):
    raise ValueError(f"{constant} is not JSON")


def strict_json(text: str):
    """Parse as a JSON consumer other than Python would: no NaN or Infinity."""
    return json.loads(text, parse_constant=_reject)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A data root where DECIDED_ON is scanned (and its history backfilled) by `scan`."""
    root = tmp_path_factory.mktemp("cli") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root.parent)  # no ./.env of the working tree
        patch.setenv("BUTTERQUANT_DATA_DIR", str(root))
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            assert main(["scan", "--date", DECIDED_ON, "--json"]) == EXIT_OK
        yield root


def test_dry_run_prints_targets_and_sends_nothing(scanned, capsys):
    assert main(["execute", "--date", SESSION, "--dry-run", "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["session"] == SESSION and result["dry_run"] is True
    targets = result["targets"]
    assert targets
    for target in targets:
        assert target["order_ref"].startswith(f"bq-20250603-{target['ticker']}-open-")
        assert target["reason"].startswith("baseline track: rule score")
        assert target["quantity"] >= 1
    assert len({t["ticker"] for t in targets}) == len(targets)  # one entry per ticker
    assert result["orders"] == [] and result["fills"] == []
    # Nothing reached the broker or the ledger; only the plan was materialized.
    assert not (scanned / "paper_broker.duckdb").exists()
    assert Ledger(scanned / "ledger.duckdb").orders().empty
    lake = Lake(scanned)
    assert lake.partitions("target_orders") == [SESSION]
    assert lake.partitions("orders") == []
    runs = DagsterInstance.get().get_runs()
    assert runs[0].job_name == PLAN_JOB and runs[0].run_id == result["run_id"]
    # The text form says so, and a second dry run plans the same orders.
    assert main(["execute", "--date", SESSION, "--dry-run"]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"butterquant execute {SESSION} (dry run: nothing sent)" in text
    assert f"targets: {len(targets)}" in text and "orders:" not in text
    again = lake.read("target_orders", [SESSION])
    assert sorted(again["order_ref"]) == sorted(t["order_ref"] for t in targets)


def test_execute_json_is_strict_json(scanned, capsys):
    assert main(["execute", "--date", SESSION, "--dry-run", "--json"]) == EXIT_OK
    strict_json(capsys.readouterr().out)


def test_execute_refuses_a_holiday(isolated_env, capsys):
    assert main(["execute", "--date", "2025-07-04", "--dry-run"]) == EXIT_BAD_INPUT
    assert "2025-07-04 is not an NYSE session" in capsys.readouterr().err


def test_execute_without_the_previous_scan_names_it(isolated_env, capsys):
    assert main(["execute", "--date", SESSION]) == EXIT_RUN_FAILED
    err = capsys.readouterr().err
    assert f"decides on {DECIDED_ON}'s scan_rankings" in err
    assert Lake(isolated_env).partitions("orders") == []


def test_positions_json_on_an_empty_ledger(isolated_env, capsys):
    assert main(["positions", "--json"]) == EXIT_OK
    result = strict_json(capsys.readouterr().out)
    account = result.pop("account")
    assert result == {"open_positions": 0, "cash": 100_000.0, "equity": 100_000.0, "positions": []}
    assert account["as_of"] is None and account["account_value"] == 100_000.0
    assert account["realized_pnl"] == account["unrealized_pnl"] == account["total_pnl"] == 0.0
    assert main(["positions"]) == EXIT_OK
    out = capsys.readouterr().out
    assert (
        "account (no session marked yet): value $100,000.00 = cash $100,000.00 "
        "+ open positions $0.00 (marked)"
    ) in out
    assert "0 open positions" in out


def test_journal_json_on_an_empty_ledger(isolated_env, capsys):
    assert main(["journal", "--json"]) == EXIT_OK
    result = strict_json(capsys.readouterr().out)
    assert result["trades"] == []
    assert result["win_rate"] is None
    assert result["total_pnl"] is None and result["yield_per_1000"] is None
    assert main(["journal"]) == EXIT_OK
    assert "journal: no closed trades yet" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["execute", "positions", "journal"])
def test_trading_commands_have_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: butterquant {command}" in capsys.readouterr().out
