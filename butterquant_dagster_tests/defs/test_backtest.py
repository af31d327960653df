"""The backtest asset through Dagster on a synthetic market: the equity curve in the lake,
every figure, the steps and the chart in the metadata, the report files on disk; a window
that was never scanned fails naming what to run."""

from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance

from butterquant_dagster.core.backtest.metrics import BENCHMARK_METRIC_NAMES, METRIC_NAMES
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.backtest.assets import (
    BACKTEST_JOB,
)
from butterquant_dagster_tests.defs.helpers import (
    failure_messages,
    loose_trading,
    make_defs,
    market_and_scan,
)

HISTORY = ("2025-01-02", "2025-04-04")  # the scan needs 60 sessions of bars
SCANNED = ("2025-03-24", "2025-04-04")  # ten sessions
TICKERS = ["AAPL", "MSFT"]  # of the first four of the default universe


def backtest_config(**config) -> dict:
    return {"ops": {"backtest": {"config": config}}}


def materialization(result) -> dict:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path == ["backtest"]
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    root = tmp_path_factory.mktemp("backtest")
    defs = make_defs(root, universe_size=4, trading=loose_trading(root, max_positions=4))
    instance = DagsterInstance.ephemeral()
    market_and_scan(defs, HISTORY, SCANNED, instance)
    lake = Lake(root)
    sessions = lake.partitions("butterfly_candidates")
    decisions = pd.DataFrame(
        [
            {
                "session": pd.Timestamp(day),
                "symbol": symbol,
                "action": ("buy", "hold", "sell")[(i + j) % 3],
                "confidence": 0.6,
            }
            for i, day in enumerate(sessions)
            for j, symbol in enumerate(TICKERS)
        ]
    )
    for day in sessions:
        lake.write("trading_decisions", decisions.loc[decisions["session"] == day], day)
    job = defs.resolve_job_def(BACKTEST_JOB)

    def run(**config):
        return job.execute_in_process(
            instance=instance, run_config=backtest_config(**config), raise_on_error=False
        )

    return {"root": root, "run": run, "sessions": sessions}


def test_a_butterfly_backtest_materializes_its_curve_figures_and_report(desk):
    result = desk["run"](
        tickers=TICKERS,
        start_date=SCANNED[0],
        end_date=SCANNED[1],
        strategy="butterfly",
        step_sessions=5,
        initial_capital=50_000.0,
    )
    assert result.success, failure_messages(result)
    metadata = materialization(result)
    for name in (*METRIC_NAMES, *BENCHMARK_METRIC_NAMES):
        value = metadata[name]
        assert isinstance(value, float | int) or value == "not enough data", (name, value)
    assert metadata["strategy"] == "butterfly"
    assert (metadata["start"], metadata["end"]) == SCANNED
    assert metadata["sessions"] == 10 and metadata["tickers"] == "AAPL, MSFT"
    # Two steps of five traded sessions; the lake holds no outcome, so no model trains.
    steps = metadata["steps"]
    assert steps.count("AI track off") == 2 and "2025-03-24" in steps
    assert metadata["equity_chart"].startswith("![equity curve](data:image/png;base64,")
    html, png = Path(metadata["report_html"]), Path(metadata["report_png"])
    assert html.name == "butterfly-2025-03-24-2025-04-04.html" and html.exists()
    assert png.exists() and png.parent == desk["root"] / "reports" / "backtests"
    stored = Lake(desk["root"]).read("backtest")
    assert len(stored) == 10 and stored["equity"].iloc[0] == 50_000.0
    assert metadata["final_equity"] == pytest.approx(stored["equity"].iloc[-1])


def test_a_signals_backtest_has_a_benchmark(desk):
    result = desk["run"](tickers=TICKERS, strategy="signals", slippage_bps=2.0)
    assert result.success, failure_messages(result)
    metadata = materialization(result)
    assert metadata["strategy"] == "signals"
    # Without dates: every analysed session (fewer than the default 63).
    assert (metadata["start"], metadata["end"]) == (desk["sessions"][0], desk["sessions"][-1])
    assert isinstance(metadata["benchmark_total_return"], float)
    assert metadata["trades"] >= 1
    assert metadata["steps"] == "(no walk-forward steps)"


def test_a_window_that_was_never_scanned_fails_naming_the_fix(desk):
    result = desk["run"](start_date="2025-03-17", end_date="2025-03-25")
    assert not result.success
    message = failure_messages(result)
    assert "butterfly_candidates is missing for 5 session(s)" in message
    assert "butterquant scan --start 2025-03-17 --end 2025-03-21" in message


def test_an_unknown_strategy_fails(desk):
    result = desk["run"](strategy="momentum")
    assert not result.success
    assert "'momentum' is not one of ['butterfly', 'signals']" in failure_messages(result)


def test_a_single_session_says_not_enough_data(desk):
    result = desk["run"](tickers=TICKERS, start_date=SCANNED[1], end_date=SCANNED[1])
    assert result.success, failure_messages(result)
    metadata = materialization(result)
    assert metadata["trades"] == 0
    for name in set(METRIC_NAMES) - {"trades"}:
        assert metadata[name] == "not enough data", name
    assert metadata["equity_chart"] == "not enough data"
    assert metadata["report_png"] == "not enough data"
    assert Path(metadata["report_html"]).exists()
