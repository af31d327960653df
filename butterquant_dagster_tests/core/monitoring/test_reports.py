"""The reports: full inputs show their figures formatted and their charts embedded, empty
inputs say "not enough data" instead of crashing or inventing numbers, text is escaped, and
a report file appears whole or not at all."""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.monitoring import html, plots
from butterquant_dagster.core.monitoring.drift import DriftReport
from butterquant_dagster.core.monitoring.performance import NOT_ENOUGH_DATA, PerformanceReport
from butterquant_dagster.core.monitoring.reports import (
    DailyReportInputs,
    MonthlyReportInputs,
    WeeklyReportInputs,
    key_figures,
    render_daily,
    render_monthly,
    render_weekly,
    report_path,
    write_report,
)
from butterquant_dagster.core.trading.account import AccountView

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = 'src="data:image/png;base64,'
SESSION = dt.date(2026, 11, 20)
GENERATED = dt.datetime(2026, 11, 20, 22, 15, tzinfo=dt.UTC)
EVIL = "<script>alert(1)</script>"


# ------------------------------------------------------------------------------ inputs
def equity_frame(sessions: int = 60) -> pd.DataFrame:
    days = pd.bdate_range("2026-08-24", periods=sessions)
    steps = 0.004 * np.sin(np.arange(sessions) / 3.0) + 0.001
    equity = 100_000 * np.cumprod(1 + steps)
    peaks = np.maximum.accumulate(equity)
    benchmark = 100_000 * np.cumprod(1 + 0.0006 + 0.003 * np.cos(np.arange(sessions) / 5.0))
    return pd.DataFrame(
        {
            "session": days,
            "equity": equity,
            "drawdown": (peaks - equity) / peaks,
            "return": pd.Series(equity).pct_change(),
            "benchmark": benchmark,
        }
    )


def breakdown(key: str, names: list[str]) -> pd.DataFrame:
    n = len(names)
    trades = np.arange(n) + 3
    wins = (trades * 0.6).astype(int)
    return pd.DataFrame(
        {
            key: names,
            "trades": trades,
            "wins": wins,
            "win_rate": wins / trades,
            "total_pnl": np.linspace(-800.0, 1500.0, n),
            "yield_per_1000": np.linspace(-20.0, 35.0, n),
            "avg_days_held": np.linspace(5.0, 12.0, n),
        }
    )


def performance_report() -> PerformanceReport:
    pnl = np.array([120.0, -80.0, 45.5, 300.0, -150.0, 60.0, 10.0, -20.0] * 5)
    trades = pd.DataFrame(
        {"ticker": ["AAPL", "MSFT", EVIL, "NVDA"] * 10, "pnl": pnl, "won": pnl > 0}
    )
    return PerformanceReport(
        start=dt.date(2026, 8, 24),
        end=SESSION,
        figures={
            "trades": 40,
            "wins": 25,
            "win_rate": 0.625,
            "yield_per_1000": 41.27,
            "total_pnl": 12345.678,
            "realized_pnl": 10000.0,
            "unrealized_pnl": 2345.678,
            "max_drawdown": 0.0832,
            "sharpe": 1.2345,
            "sortino": 1.9,
            "total_return": 0.1234,
            "benchmark_symbol": "SPY",
            "benchmark_return": 0.0456,
            "benchmark_sharpe": 0.87,
            "benchmark_max_drawdown": 0.0571,
            "excess_return": 0.0778,
        },
        breakdowns={
            "ticker": breakdown("ticker", ["AAPL", "MSFT", EVIL, "NVDA", "SPY"]),
            "regime": breakdown("regime", ["bull", "neutral", "bear"]),
            "track": breakdown("track", ["ai", "baseline"]),
            "month": breakdown("month", ["2026-08", "2026-09", "2026-10", "2026-11"]),
        },
        track_test={
            "ai_trades": 30,
            "baseline_trades": 10,
            "win_rate_diff": 0.12,
            "win_rate_p": 0.0312,
            "yield_diff": 14.5,
            "yield_p": 0.21,
            "method": "permutation test, 10,000 shuffles",
            "verdict": "The AI track beats the baseline on win rate (p = 0.031).",
        },
        equity=equity_frame(),
        trades=trades,
        notes=["sortino uses 60 sessions"],
    )


def drift_report(status: str = "WARN") -> DriftReport:
    low = np.linspace(0.0, 0.9, 10)
    reliability = pd.DataFrame(
        {
            "bin": range(10),
            "low": low,
            "high": low + 0.1,
            "count": [0, 5, 20, 60, 90, 120, 80, 40, 12, 3],
            "mean_predicted": [None, 0.16, 0.25, 0.35, 0.45, 0.55, 0.65, 0.74, 0.85, 0.93],
            "hit_rate": [None, 0.2, 0.22, 0.3, 0.41, 0.5, 0.52, 0.6, 0.66, 0.67],
        }
    )
    return DriftReport(
        status=status,
        reasons=["hit rate 52.0% on 135 predictions >= 60% (below 55%)"],
        figures={
            "model_version": "v20261101",
            "training_date": "2026-11-01",
            "resolved_candidates": 430,
            "resolved_trades": 40,
            "brier_candidates": 0.2311,
            "brier_trades": 0.2402,
            "brier_training": 0.2107,
            "ece_candidates": 0.0613,
            "ece_trades": 0.0821,
            "ece_training": 0.0234,
            "hit_rate_high_confidence": 0.52,
            "high_confidence_n": 135,
        },
        reliability={
            "candidates": reliability,
            "trades": reliability.assign(count=lambda f: f["count"] // 10),
        },
        feature_psi=pd.DataFrame(
            {"feature": ["iv_rank", "dte"], "psi": [0.31, 0.04], "level": ["shifted", "stable"]}
        ),
        prediction_shift=pd.DataFrame(),
    )


ACCOUNT = AccountView(
    as_of=dt.date(2026, 11, 20),
    initial_capital=100_000.0,
    cash=104_892.0,
    positions_value=7_453.678,
    account_value=112_345.678,
    realized_pnl=10_000.0,
    unrealized_pnl=2_345.678,
    total_pnl=12_345.678,
    max_drawdown=0.0832,
    open_positions=3,
    capital_at_risk=2_000.0,
    closed_trades=40,
    cash_now=104_892.0,
    notes=("2 ledger event(s) after the close of 2026-11-20 are not in these figures",),
)


def daily_inputs() -> DailyReportInputs:
    session = performance_report()
    session.figures = {
        "trades": 2,
        "win_rate": 0.5,
        "yield_per_1000": 12.5,
        "total_pnl": -75.25,
        "realized_pnl": -50.0,
        "unrealized_pnl": -25.25,
    }
    return DailyReportInputs(
        session=SESSION,
        generated_at=GENERATED,
        health=pd.DataFrame(
            {
                "name": ["disk space", "model age", "data freshness"],
                "status": ["OK", "NOTICE", "WARN"],
                "message": ["41 GB free", "model is 95 days old", "chains 1 session late"],
            }
        ),
        model_version="v20261101",
        model_age_days=19,
        data_freshness="bars and chains of 2026-11-20",
        run_failures=pd.DataFrame(
            {
                "time": [pd.Timestamp("2026-11-20 21:05")],
                "job": ["trading_job"],
                "run_id": ["abc123"],
                "message": ["broker timeout"],
            }
        ),
        regime={
            "market_regime": "bull",
            "regime_confidence": 0.81,
            "p_bear": 0.04,
            "p_neutral": 0.15,
            "p_bull": 0.81,
        },
        decisions=pd.DataFrame(
            {
                "symbol": ["AAPL", "MSFT", EVIL, "NVDA"],
                "action": ["buy", "hold", "sell", "buy"],
                "confidence": [0.42, 0.05, 0.3, 0.2],
                "p_up": [0.71, 0.52, 0.35, 0.6],
                "reasoning": ["trend up", "flat", "trend down", "momentum"],
            }
        ),
        orders=pd.DataFrame(
            {
                "intent": ["open", "close"],
                "track": ["ai", "baseline"],
                "ticker": ["AAPL", EVIL],
                "structure": ["call", "iron"],
                "quantity": [2, 1],
                "limit_price": [1.85, 0.4],
                "status": ["filled", "submitted"],
                "reason": ["rank 1", "target reached"],
            }
        ),
        rankings=pd.DataFrame(
            {
                "rank": range(1, 31),
                "symbol": ["AAPL"] * 30,
                "rule_score": np.linspace(0.9, 0.5, 30),
                "ml_success_prob": np.linspace(0.7, 0.4, 30),
            }
        ),
        session_performance=session,
        performance=performance_report(),
        open_positions=pd.DataFrame(
            {
                "ticker": ["AAPL", "NVDA", "MSFT"],
                "structure": ["call", "put", "iron"],
                "quantity": [2, 1, 3],
                "unrealized_pnl": [120.5, -30.0, 15.0],
            }
        ),
        drift=drift_report(),
        notes=["paper broker; no live orders"],
        account=ACCOUNT,
    )


def weekly_inputs() -> WeeklyReportInputs:
    weeks = [f"2026-W{w}" for w in range(40, 48)]
    features = ["iv_rank", "dte", "trend_r2", "width"]
    rows = [
        {"period": w, "feature": f, "importance": 0.1 + 0.05 * i + 0.01 * j, "n": 400}
        for j, w in enumerate(weeks)
        for i, f in enumerate(features)
    ]
    return WeeklyReportInputs(
        week="2026-W47",
        generated_at=GENERATED,
        performance=performance_report(),
        drift=drift_report(),
        feature_importance=pd.DataFrame(rows),
        notes=["weekly review"],
    )


def monthly_inputs() -> MonthlyReportInputs:
    months = ["2026-08", "2026-09", "2026-10", "2026-11"]
    accuracy = pd.DataFrame(
        [
            {
                "period": m,
                "regime": r,
                "n": 50 + i,
                "accuracy": 0.5 + 0.03 * i + 0.02 * k,
                "hit_rate": 0.48 + 0.02 * i,
                "mean_predicted": 0.55,
            }
            for i, m in enumerate(months)
            for k, r in enumerate(["bull", "neutral", "bear"])
        ]
    )
    return MonthlyReportInputs(
        month="2026-11",
        generated_at=GENERATED,
        performance=performance_report(),
        drift=drift_report("RETRAIN"),
        accuracy_by_regime=accuracy,
        runs=pd.DataFrame(
            {
                "job": ["daily_job", "weekly_job"],
                "runs": [20, 4],
                "succeeded": [19, 4],
                "failed": [1, 0],
                "success_rate": [0.95, 1.0],
            }
        ),
        run_failures=pd.DataFrame(
            {
                "time": [pd.Timestamp("2026-11-03 21:00")],
                "job": ["daily_job"],
                "run_id": ["r-1"],
                "message": [EVIL],
            }
        ),
    )


def images(page: str) -> int:
    return page.count(DATA_URI)


def visible_text(page: str) -> str:
    """The page without tags and with entities left as they are."""
    body = page.split("</style>", 1)[1]
    return re.sub(r"<[^>]+>", " ", body)


# ------------------------------------------------------------------------------ daily
def test_daily_report_shows_every_section_with_formatted_figures():
    page = render_daily(daily_inputs())
    assert "<title>butterquant daily report 2026-11-20</title>" in page
    assert "generated 2026-11-20 22:15 UTC" in page
    for heading in ("1. System status", "2. Trading decisions", "3. Performance", "Notes"):
        assert f"<h2>{heading}</h2>" in page
    text = visible_text(page)
    # To-date tiles and the session's tiles.
    for figure in ("62.5%", "$41.27", "$12,345.68", "8.3%", "1.23", "-$75.25", "$12.50"):
        assert figure in text, figure
    assert "v20261101" in text and "19 days" in text
    assert "broker timeout" in text and "abc123" in text
    # Regime tiles, decisions counted, orders with their prices, rankings capped at 20.
    assert "bull" in text and "81.0%" in text
    assert re.search(r"Buy\s*</div>\s*<div class=\"tile-value\">2<", page)
    assert "$1.85" in text
    assert "10 more rows not shown" in text
    # Status badges in the health table and for drift.
    assert 'class="badge badge-warn">WARN<' in page
    assert 'class="badge badge-notice">NOTICE<' in page
    assert "hit rate 52.0% on 135 predictions" in text
    assert images(page) == 1
    # Only the session's own drawdown and Sharpe (one session has none) are missing.
    assert text.count(NOT_ENOUGH_DATA) == 2
    # The account, each P/L named for what it is.
    assert "Account at the close of 2026-11-20" in text
    for figure in ("$112,345.68", "$104,892.00", "$7,453.68", "$10,000.00", "$2,345.68"):
        assert figure in text, figure
    for label in ("Realized P/L", "Unrealized P/L", "Total P/L", "Account value"):
        assert label in text
    assert "closed trades, after fees" in text and "realized + unrealized" in text
    assert "account: 2 ledger event(s) after the close of 2026-11-20" in text


def test_daily_report_lists_buys_and_sells_and_folds_the_holds():
    """A trader acts on the buys and sells: they are the table; the holds are folded under
    one line, so a 50-ticker day is not pages of "hold"."""
    page = render_daily(daily_inputs())
    folded = page.index("<details><summary>1 hold (click to show)</summary>")
    for symbol in ("AAPL", "NVDA"):
        assert page.index(f">{symbol}<") < folded, symbol
    assert page.index(">MSFT<") > folded


def test_daily_report_with_empty_inputs_says_not_enough_data():
    page = render_daily(DailyReportInputs(session=SESSION, generated_at=GENERATED))
    text = visible_text(page)
    assert "<title>butterquant daily report 2026-11-20</title>" in page
    assert images(page) == 0
    for what in ("health checks", "market regime", "decisions", "run failures", "orders"):
        assert f"{what}: {NOT_ENOUGH_DATA}" in text, what
    assert f"Equity and drawdown: {NOT_ENOUGH_DATA}" in text
    # Every performance tile is missing, none invented.
    assert text.count(NOT_ENOUGH_DATA) >= 13
    assert "$0.00" not in text and "0.0%" not in text


def test_daily_report_tells_an_empty_ledger_from_an_unknown_one():
    inputs = DailyReportInputs(
        session=SESSION,
        generated_at=GENERATED,
        orders=pd.DataFrame(),
        run_failures=pd.DataFrame(),
        open_positions=pd.DataFrame(),
    )
    text = visible_text(render_daily(inputs))
    assert "No orders this session." in text
    assert "No run failed this session." in text
    assert "No open positions." in text
    assert key_figures(inputs)["open_positions"] == 0


def test_a_hostile_ticker_comes_out_escaped():
    for page in (
        render_daily(daily_inputs()),
        render_weekly(weekly_inputs()),
        render_monthly(monthly_inputs()),
    ):
        assert "<script" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ------------------------------------------------------------------------------ weekly
def test_weekly_report_breakdowns_calibration_and_trend():
    page = render_weekly(weekly_inputs())
    text = visible_text(page)
    assert "<title>butterquant weekly report 2026-W47</title>" in page
    assert "2026-08-24 to 2026-11-20" in text
    # pnl histogram, P/L by stock, win rate by regime, reliability diagram, feature trend
    assert images(page) == 5
    for figure in ("0.0613", "0.0821", "0.0234", "0.2311", "0.2107", "52.0%", "on 135 predictions"):
        assert figure in text, figure
    assert "-$800.00" in text and "$1,500.00" in text  # the by-stock table
    assert 'class="badge badge-warn">WARN<' in page
    # The latest week's importances, largest first.
    latest = text[text.index("Latest week") :]
    assert latest.index("width") < latest.index("iv_rank")
    assert "2026-W47" in latest and "2026-W46" not in latest


def test_weekly_report_with_empty_inputs():
    page = render_weekly(WeeklyReportInputs(week="2026-W47", generated_at=GENERATED))
    text = visible_text(page)
    assert images(page) == 0
    for what in (
        "P/L per closed trade",
        "P/L by stock",
        "Win rate by regime",
        "drift report",
        "Feature importance by week",
        "feature importance",
    ):
        assert f"{what}: {NOT_ENOUGH_DATA}" in text, what


def test_weekly_report_with_a_drift_report_without_resolved_predictions():
    empty_drift = DriftReport(
        status="OK",
        reasons=["not enough data: 12 resolved candidates (need 200)"],
        figures={"model_version": "v1", "brier_training": None},
        reliability={"candidates": pd.DataFrame(), "trades": pd.DataFrame()},
        feature_psi=pd.DataFrame(),
        prediction_shift=pd.DataFrame(),
    )
    inputs = WeeklyReportInputs(week="2026-W47", generated_at=GENERATED, drift=empty_drift)
    page = render_weekly(inputs)
    text = visible_text(page)
    assert f"Reliability diagram: {NOT_ENOUGH_DATA}" in text
    assert f"reliability of trades: {NOT_ENOUGH_DATA}" in text
    assert "12 resolved candidates (need 200)" in text
    assert 'class="badge badge-ok">OK<' in page


# ------------------------------------------------------------------------------ monthly
def test_monthly_report_against_benchmark_and_baseline():
    page = render_monthly(monthly_inputs())
    text = visible_text(page)
    assert "<title>butterquant monthly report 2026-11</title>" in page
    for figure in ("12.3%", "4.6%", "7.8%", "1.23", "0.87", "8.3%", "5.7%", "SPY return"):
        assert figure in text, figure
    assert "The AI track beats the baseline on win rate (p = 0.031)." in text
    assert "0.0312" in text and "$14.50" in text and "12.0%" in text
    assert "2026-09" in text  # the by-month table
    assert 'class="badge badge-retrain">RETRAIN<' in page
    assert "95.0%" in text and "23/24" not in text
    assert "95.8%" in text  # 23 of 24 runs succeeded
    assert "iv_rank" in text and "0.3100" in text
    assert images(page) == 2  # equity vs SPY, accuracy by regime


def test_monthly_report_with_empty_inputs():
    page = render_monthly(MonthlyReportInputs(month="2026-11", generated_at=GENERATED))
    text = visible_text(page)
    assert images(page) == 0
    for what in (
        "Equity vs benchmark",
        "track test",
        "by month",
        "Model accuracy by regime",
        "drift report",
        "runs per job",
        "run failures",
    ):
        assert f"{what}: {NOT_ENOUGH_DATA}" in text, what


# ------------------------------------------------------------------------------ figures
def test_key_figures_are_json_safe_and_none_when_unknown():
    figures = key_figures(daily_inputs())
    json.dumps(figures)
    assert figures["session"] == "2026-11-20"
    assert figures["win_rate"] == pytest.approx(0.625)
    assert figures["session_pnl"] == pytest.approx(-75.25)
    assert figures["open_positions"] == 3 and figures["orders"] == 2
    assert figures["health"] == "WARN" and figures["drift_status"] == "WARN"
    assert figures["account_as_of"] == "2026-11-20"
    assert figures["account_value"] == pytest.approx(112_345.678)
    assert figures["realized_pnl"] == 10_000.0 and figures["unrealized_pnl"] == 2_345.678
    assert figures["account_total_pnl"] == figures["total_pnl"]

    empty = key_figures(DailyReportInputs(session=SESSION, generated_at=GENERATED))
    json.dumps(empty)
    assert empty["win_rate"] is None and empty["open_positions"] is None
    assert empty["health"] is None
    assert empty["account_value"] is None and empty["account_as_of"] is None

    monthly = key_figures(monthly_inputs())
    assert monthly["run_success_rate"] == pytest.approx(23 / 24)
    assert monthly["excess_return"] == pytest.approx(0.0778)
    assert monthly["drift_status"] == "RETRAIN"
    weekly = key_figures(WeeklyReportInputs(week="2026-W47", drift=drift_report()))
    assert weekly["ece_candidates"] == pytest.approx(0.0613) and weekly["trades"] is None
    nan = key_figures(PerformanceReport(None, None, figures={"sharpe": float("nan")}))
    assert nan["sharpe"] is None
    with pytest.raises(TypeError, match="cannot summarize a dict"):
        key_figures({})


# ------------------------------------------------------------------------------ files
def test_write_report_is_atomic_and_where_it_says(tmp_path, monkeypatch):
    page = render_daily(daily_inputs())
    path = write_report(page, tmp_path, "daily", "2026-11-20")
    assert path == tmp_path / "reports" / "daily" / "2026-11-20.html"
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in path.parent.iterdir()] == ["2026-11-20.html"]

    # A crash between writing and renaming leaves the old report and no temporary file.
    def broken_replace(source, target):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_report("<html>half</html>", tmp_path, "daily", "2026-11-20")
    assert path.read_text(encoding="utf-8") == page
    assert [p.name for p in path.parent.iterdir()] == ["2026-11-20.html"]


@pytest.mark.parametrize(
    ("period", "key"), [("daily", "../escape"), ("daily/x", "k"), ("", "k"), ("weekly", "a/b")]
)
def test_report_path_refuses_names_that_leave_the_folder(tmp_path, period, key):
    with pytest.raises(ValueError, match="is not a plain file name"):
        report_path(tmp_path, period, key)


# ------------------------------------------------------------------------------ builders
def test_values_are_formatted_for_readers():
    assert html.format_value(0.1234, "percent") == "12.3%"
    assert html.format_value(-1234.5, "dollars") == "-$1,234.50"
    assert html.format_value(1.236, "ratio") == "1.24"
    assert html.format_value(0.02346, "score") == "0.0235"
    assert html.format_value(12345, "count") == "12,345"
    assert html.format_value(None, "percent") == NOT_ENOUGH_DATA
    assert html.format_value(float("nan"), "dollars") == NOT_ENOUGH_DATA
    assert html.format_value(dt.date(2026, 11, 20)) == "2026-11-20"
    with pytest.raises(ValueError, match="unknown kind 'money'"):
        html.format_value(1.0, "money")


def test_tables_cap_rows_and_escape_cells():
    frame = pd.DataFrame({"ticker": [EVIL] + [f"T{i}" for i in range(11)], "pnl": range(12)})
    block = html.table(frame, formats={"pnl": "dollars"}, max_rows=5)
    assert block.count("<tr>") == 6  # header and five rows
    assert "7 more rows not shown" in block
    assert "&lt;script&gt;" in block and "<script>" not in block
    assert "$4.00" in block and "$5.00" not in block
    with pytest.raises(ValueError, match="unknown format"):
        html.table(frame, formats={"pnl": "euros"})


def test_badges_and_documents_use_no_external_resources():
    page = html.document("t", [html.section("s", html.badge("fail"), html.badge("weird"))])
    assert 'class="badge badge-fail">FAIL<' in page
    assert 'class="badge badge-unknown">WEIRD<' in page
    assert not re.search(r"(https?:)?//", page.split("<body>")[1])
    assert "@import" not in page and "url(" not in page and "<script" not in page
    # Plain strings given as blocks are text, never markup.
    assert "&lt;b&gt;" in html.section("s", "<b>")


# ------------------------------------------------------------------------------ charts
def test_charts_are_png_deterministic_and_none_without_data():
    report = performance_report()
    charts = {
        "equity": lambda: plots.equity_chart(report.equity, benchmark_label="SPY"),
        "reliability": lambda: plots.reliability_chart(drift_report().reliability),
        "pnl": lambda: plots.pnl_histogram(report.trades["pnl"]),
        "bar": lambda: plots.bar_chart(report.breakdowns["ticker"], "ticker", "total_pnl", "P/L"),
        "line": lambda: plots.line_chart(
            weekly_inputs().feature_importance, "period", "importance", "feature", "trend"
        ),
    }
    for name, draw in charts.items():
        first, second = draw(), draw()
        assert first.startswith(PNG_SIGNATURE), name
        assert first == second, f"{name} is not deterministic"

    assert plots.equity_chart(pd.DataFrame()) is None
    assert plots.equity_chart(report.equity.head(1)) is None
    assert plots.reliability_chart({"candidates": pd.DataFrame()}) is None
    assert plots.reliability_chart({}) is None
    assert plots.pnl_histogram([]) is None
    assert plots.pnl_histogram([float("nan")]) is None
    assert plots.bar_chart(pd.DataFrame(), "ticker", "total_pnl", "P/L") is None
    assert plots.line_chart(pd.DataFrame(), "period", "importance", "feature", "t") is None


def test_a_chart_names_the_column_it_misses():
    with pytest.raises(ValueError, match=r"bar_chart 'P/L': missing column\(s\) \['total_pnl'\]"):
        plots.bar_chart(pd.DataFrame({"ticker": ["A"]}), "ticker", "total_pnl", "P/L")


def test_dollar_ticks_keep_enough_decimals_to_differ():
    formatter = plots.DollarFormatter()
    assert formatter.format_ticks([100_000, 100_050, 100_100]) == [
        "$100.00k",
        "$100.05k",
        "$100.10k",
    ]
    assert formatter.format_ticks([-1_000, 0, 1_000]) == ["-$1,000", "$0", "$1,000"]
    assert formatter.format_ticks([1_000_000, 2_000_000]) == ["$1M", "$2M"]


def test_a_health_report_frame_is_shown_with_its_worst_status():
    health = pd.DataFrame(
        {"check": ["disk", "broker"], "status": ["OK", "FAIL"], "message": ["ok", "refused"]}
    )
    inputs = DailyReportInputs(session=SESSION, generated_at=GENERATED, health=health)
    page = render_daily(inputs)
    assert 'class="badge badge-fail">FAIL<' in page
    assert "broker" in visible_text(page) and "refused" in visible_text(page)
    assert key_figures(inputs)["health"] == "FAIL"


# ------------------------------------------------------------------------------ rankings
def test_weekly_report_shows_how_far_each_ranking_is_believed():
    from butterquant_dagster.core.scan import ev_reliability as rel

    rng = np.random.default_rng(4)
    n = 1000
    settled = pd.DataFrame({m: rng.normal(size=n) for m in rel.RULE_MEASURES})
    settled[rel.REALIZED] = -590.0 + 400.0 * settled["ev_per_1000"] + 100 * rng.normal(size=n)
    settled["win"] = settled[rel.REALIZED] > 0
    settled[rel.MODEL_MEASURE] = 0.63 + 0.01 * rng.normal(size=n)  # a fraction
    frames = rel.report_frames(settled)
    choice = rel.choose_rule_measure(frames["skill"])
    inputs = WeeklyReportInputs(
        week="2026-W47",
        generated_at=GENERATED,
        ranking_reliability=frames,
        baseline_choice=f"{choice.measure}: {choice.why}",
    )
    text = visible_text(render_weekly(inputs))
    section = text[text.index("Rankings a trader can believe") :]
    assert "Baseline track ranks by" in section and "ev_per_1000 validates" in section
    assert "Rule expected value (ev_per_1000) by decile" in section
    assert "Model expected yield (ml_expected_per_1000) by decile" in section
    # the model's 0.63 shown as dollars per $1,000, realized yields as dollars
    model_table = section[section.index("Model expected yield") :]
    assert re.search(r"\$6[23]\d\.\d\d", model_table)
    all_realized = frames["skill"]["all_realized"].iloc[0]
    assert html.format_value(all_realized, "dollars") in section
    assert key_figures(inputs)["baseline_ranked_by"].startswith("ev_per_1000: ")
    empty = visible_text(render_weekly(WeeklyReportInputs(week="2026-W47")))
    assert f"settled candidates: {NOT_ENOUGH_DATA}" in empty


def test_daily_report_says_when_a_plan_entered_nothing_and_why(tmp_path):
    from butterquant_dagster.core.monitoring.report_inputs import ReportContext, _entry_notes
    from butterquant_dagster.core.storage.lake import Lake
    from butterquant_dagster.core.trading.rules import PortfolioRules
    from butterquant_dagster_tests.core.trading.chains import (
        NEXT,
        SESSION,
        make_chain,
        make_rankings,
    )

    chain = make_chain(SESSION, {"T0": 100.0, "T1": 100.0})
    picks = [
        {"ticker": t, "lower": 95.0, "center": 100.0, "upper": 105.0, "ev_per_1000": -40.0}
        for t in ("T0", "T1")
    ]
    rankings = make_rankings(SESSION, chain, picks, model=False)
    lake = Lake(tmp_path)
    context = ReportContext(store=lake, ledger=None, champion=None, now=GENERATED)
    assert _entry_notes(context, NEXT) == []  # no plan for the session: nothing to say
    lake.write("scan_rankings", rankings, SESSION.isoformat())
    lake.write("butterfly_candidates", rankings, SESSION.isoformat())
    lake.write("target_orders", pd.DataFrame({"session": [pd.Timestamp(NEXT)]}), NEXT.isoformat())
    notes = _entry_notes(context, NEXT)
    assert notes[0] == (  # no model: the AI track is off, not merely empty
        "ai track: off: no P(win) champion that passed its gates; nothing is traded on this track."
    )
    assert len(notes) == 2
    assert notes[1] == (
        "baseline track: nothing qualified: 2 candidates below the expected-yield floor of 0 "
        "per $1,000; nothing is traded on this track."
    )
    loose = ReportContext(
        store=lake, ledger=None, champion=None, now=GENERATED,
        rules=PortfolioRules(min_expected_yield=-1e9, ai_track_slots=0),
    )  # fmt: skip
    assert _entry_notes(loose, NEXT) == []
    page = visible_text(render_daily(DailyReportInputs(session=NEXT, notes=notes)))
    assert "2 candidates below the expected-yield floor of 0 per $1,000" in page
