"""The report files of a backtest: chart, standalone page and strict JSON."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from butterquant_dagster.core.backtest.report import (
    metric_lines,
    metric_text,
    steps_markdown,
    write_report,
)
from butterquant_dagster.core.backtest.signals import run_signals
from butterquant_dagster_tests.core.backtest.test_signals import COSTS, SESSIONS, bars, decisions

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_backtest_writes_its_chart_page_and_figures(tmp_path):
    result = run_signals(decisions(), bars(), SESSIONS, initial_capital=10_000.0, costs=COSTS)
    files, png = write_report(tmp_path, result)
    assert files.png == tmp_path / "reports/backtests/signals-2025-03-03-2025-03-07.png"
    assert png is not None and files.png.read_bytes() == png and png.startswith(PNG_MAGIC)
    page = files.html.read_text()
    assert "data:image/png;base64," in page  # standalone: the chart is inline
    assert "total return" in page and "-11.6%" in page  # 8,839.53 from 10,000
    summary = json.loads(files.json.read_text())  # strict JSON: no NaN
    assert summary["metrics"]["profit_factor"] is None
    assert summary["metrics"]["trades"] == 1
    assert summary["final_equity"] == pytest.approx(8_839.525)
    assert summary["report"]["html"] == str(files.html)
    assert not list(files.png.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_one_session_has_no_chart_and_says_so(tmp_path):
    result = run_signals(decisions(), bars(), SESSIONS[:1], costs=COSTS)
    files, png = write_report(tmp_path, result)
    assert png is None and not files.png.exists()
    assert json.loads(files.json.read_text())["report"]["png"] is None
    assert "not enough data" in files.html.read_text()
    lines = metric_lines(result.metrics)
    assert "total_return            not enough data" in lines
    assert "trades                  0" in lines


def test_figures_and_steps_read_as_text():
    assert metric_text("max_drawdown", 0.1234) == "12.3%"
    assert metric_text("sharpe_ratio", 1.234) == "1.23"
    assert metric_text("sortino_ratio", None) == "not enough data"
    steps = pd.DataFrame(
        [
            {
                "step": 1,
                "start": pd.Timestamp("2025-03-04"),
                "end": pd.Timestamp("2025-03-10"),
                "label_cutoff": pd.Timestamp("2025-03-03"),
                "training_rows": 12,
                "model_trained": False,
                "note": "AI track off: 12 rows | too few",
            }
        ]
    )
    table = steps_markdown(steps)
    assert "2025-03-03" in table and "AI track off: 12 rows / too few" in table
    assert steps_markdown(pd.DataFrame()) == "(no walk-forward steps)"
