"""`butterquant backtest` against a temporary data root: bad input exits 2 naming what is
wrong, a run goes through Dagster and prints its figures (text or strict JSON), a failed
run exits 1."""

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from dagster import DagsterInstance

from butterquant_dagster import cli
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.core.backtest.metrics import BENCHMARK_METRIC_NAMES, METRIC_NAMES
from butterquant_dagster.defs.backtest import assets as backtest_assets
from butterquant_dagster.defs.scan.automation import SCAN_JOB
from butterquant_dagster_tests.core.backtest.lakes import build_lake

HISTORY = ("2025-01-02", "2025-04-04")
SCANNED = ("2025-03-26", "2025-04-04")  # eight sessions
ENVIRONMENT = {
    "BUTTERQUANT_UNIVERSE_SIZE": "3",
    "BUTTERQUANT_AI_TRACK_SLOTS": "0",
    "BUTTERQUANT_MIN_EXPECTED_YIELD": "-1000000000",
    "BUTTERQUANT_MAX_SPREAD_PCT": "10",
    "BUTTERQUANT_MIN_OPEN_INTEREST": "0",
}


def _reject(constant: str):
    raise ValueError(f"{constant} is not JSON")


def strict_json(text: str):
    return json.loads(text, parse_constant=_reject)


@pytest.fixture
def small_lake(isolated_env, monkeypatch) -> Path:
    """A hand-made lake (tickers AAA, BBB, CCC) scanned 2025-02-03..2025-02-07."""
    monkeypatch.chdir(isolated_env.parent)
    build_lake(isolated_env, "2025-02-03", "2025-02-07")
    return isolated_env


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--tickers", "AAA,ZZZ"], "1 of 2 ticker(s) not in the universe:\n  ZZZ: not in"),
        (["--start-date", "2025-02-31"], "--start-date must be a date YYYY-MM-DD"),
        (["--end-date", "tomorrow"], "--end-date must be a date YYYY-MM-DD, got 'tomorrow'"),
        (["--start-date", "2025-02-07", "--end-date", "2025-02-03"], "is after the end date"),
        (
            ["--start-date", "2025-01-30", "--end-date", "2025-02-04"],
            "option_chains is missing for 2 session(s) (2025-01-30, 2025-01-31); run "
            "`butterquant backfill --start 2025-01-30 --end 2025-01-31`",
        ),
        (["--strategy", "signals"], "no session has trading_decisions in the lake"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(small_lake, capsys, arguments, message):
    assert cli.main(["backtest", *arguments]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("butterquant: error:") and message in error
    assert not (small_lake / "dagster").exists()  # refused before any run


@pytest.mark.parametrize(
    "arguments",
    [["--strategy", "momentum"], ["--step-sessions", "0"], ["--initial-capital", "-5"]],
)
def test_invalid_options_exit_2(small_lake, arguments):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["backtest", *arguments])
    assert exit_info.value.code == cli.EXIT_BAD_INPUT


def test_an_empty_data_root_says_how_to_start(isolated_env, capsys):
    assert cli.main(["backtest"]) == cli.EXIT_BAD_INPUT
    assert "the lake has no universe" in capsys.readouterr().err


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """The synthetic market backfilled and SCANNED scanned, through the CLI's instance."""
    root = tmp_path_factory.mktemp("backtest-cli") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root.parent)  # no ./.env of the working tree
        patch.setenv("BUTTERQUANT_DATA_DIR", str(root))
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            assert cli.main(["backfill", "--start", HISTORY[0], "--end", HISTORY[1]]) == 0
        first, last = (dt.date.fromisoformat(d) for d in SCANNED)
        assert materialize(SCAN_JOB, first, last, show_progress=False).success
        yield root


def test_a_backtest_runs_through_dagster_and_prints_json(scanned, capsys):
    root = scanned
    code = cli.main(
        [
            "backtest",
            "--tickers",
            "msft,AAPL",
            "--start-date",
            SCANNED[0],
            "--end-date",
            SCANNED[1],
            "--step-sessions",
            "4",
            "--initial-capital",
            "25000",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    result = strict_json(out)
    assert result["strategy"] == "butterfly" and result["tickers"] == ["AAPL", "MSFT"]
    assert (result["start"], result["end"]) == SCANNED
    assert set(result["metrics"]) == {*METRIC_NAMES, *BENCHMARK_METRIC_NAMES}
    assert result["initial_capital"] == 25_000.0
    assert [s["step"] for s in result["steps"]] == [1, 2]  # seven traded sessions, steps of 4
    assert all(s["model_trained"] is False for s in result["steps"])  # nothing settled yet
    for kind in ("html", "png", "json"):
        assert Path(result["report"][kind]).exists(), kind
    assert Path(result["report"]["html"]).parent == root / "reports" / "backtests"
    # The run is in the project's instance, so the UI shows it with its metadata.
    instance = DagsterInstance.get()
    (run,) = [r for r in instance.get_runs() if r.run_id == result["run_id"]]
    assert run.job_name == "backtest_job" and run.tags["butterquant/launched_by"] == "cli"


def test_the_text_output_is_a_table_of_figures(scanned, capsys):
    code = cli.main(["backtest", "--tickers", "MSFT", "--start-date", SCANNED[0]])
    out = capsys.readouterr().out
    assert code == cli.EXIT_OK, out
    lines = out.splitlines()
    assert lines[0].startswith(f"backtest butterfly {SCANNED[0]}..{SCANNED[1]}, 1 ticker(s)")
    for name in METRIC_NAMES:
        assert any(line.strip().startswith(name) for line in lines), name
    assert "walk-forward steps:" in lines and "report:" in lines
    assert any(line.strip().startswith("html: ") for line in lines)


def test_a_failed_run_exits_1(scanned, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("the simulated engine broke")

    with pytest.MonkeyPatch.context() as local:
        local.setattr(backtest_assets, "run_butterfly", broken)
        code = cli.main(["backtest", "--start-date", SCANNED[0], "--end-date", SCANNED[1]])
    assert code == cli.EXIT_RUN_FAILED
    assert "the simulated engine broke" in capsys.readouterr().err
