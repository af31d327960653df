"""The performance report on a journal and an equity curve small enough to check by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.monitoring.metrics import MIN_RATIO_SESSIONS
from butterquant_dagster.core.monitoring.performance import (
    BREAKDOWN_COLUMNS,
    MIN_TRACK_TRADES,
    NOT_ENOUGH_DATA,
    benchmark_closes,
    breakdown,
    performance_report,
    track_test,
)

D = dt.date
START, END = D(2024, 1, 2), D(2024, 2, 1)


def _trade(position_id, track, structure, ticker, entry, exit_, pnl, risk, days):
    return {
        "position_id": position_id,
        "ticker": ticker,
        "sector": "Tech",
        "structure": structure,
        "track": track,
        "entry_session": entry,
        "exit_session": exit_,
        "quantity": 1,
        "entry_price": 1.0,
        "exit_price": 1.5,
        "fees": 2.6,
        "pnl": pnl,
        "capital_at_risk": risk,
        "roi": pnl / risk,
        "yield_per_1000": 1000 * pnl / risk,
        "days_held": days,
        "exit_reason": "target",
        "model_version": "v1" if track == "ai" else None,
        "ml_success_prob": 0.6 if track == "ai" else np.nan,
        "ghost": False,
        "won": pnl > 0,
    }


def _journal() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _trade(
                "before", "ai", "call_fly", "AAPL", D(2023, 12, 1), D(2023, 12, 29), 500, 100, 28
            ),
            _trade("t1", "ai", "call_fly", "AAPL", D(2023, 12, 20), D(2024, 1, 3), 60, 200, 14),
            _trade("t2", "ai", "put_fly", "MSFT", D(2024, 1, 2), D(2024, 1, 31), -40, 400, 29),
            _trade("t3", "baseline", "call_fly", "AAPL", D(2024, 1, 3), D(2024, 2, 1), 30, 100, 29),
            _trade("after", "ai", "iron_fly", "SPY", D(2024, 1, 31), D(2024, 2, 5), -70, 100, 5),
        ]
    )


def _equity() -> pd.DataFrame:
    rows = [
        (D(2023, 12, 28), 5000.0, 0.0),  # before the base: not part of the curve
        (D(2023, 12, 29), 10000.0, 0.0),  # the base: last session before START
        (D(2024, 1, 2), 10100.0, 1000.0),
        (D(2024, 1, 3), 10050.0, 1000.0),
        (D(2024, 1, 31), 10200.0, 500.0),
        (D(2024, 2, 1), 10150.0, 500.0),
        (D(2024, 2, 2), 9000.0, 0.0),  # after END
    ]
    frame = pd.DataFrame(rows, columns=["session", "equity", "capital_at_risk"])
    frame["cash"] = frame["equity"]
    frame["positions_value"] = 0.0
    frame["open_positions"] = 1
    return frame.sample(frac=1.0, random_state=3)  # order must not matter


def _regimes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": [D(2023, 12, 20), D(2024, 1, 2)],
            "market_regime": ["bull", "bear"],
            "regime_confidence": [0.9, 0.8],
        }
    )


def _benchmark() -> pd.DataFrame:
    sessions = [D(2023, 12, 29), D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 31), D(2024, 2, 1)]
    return pd.DataFrame({"session": sessions, "close": [50.0, 51.0, 49.0, 52.0, 55.0]})


def _report(**kwargs):
    return performance_report(
        _journal(),
        _equity(),
        start=START,
        end=END,
        regimes=_regimes(),
        benchmark=_benchmark(),
        benchmark_symbol="SPY",
        **kwargs,
    )


def _row(frame: pd.DataFrame, key: str, value: str) -> dict:
    rows = frame.loc[frame[key] == value]
    assert len(rows) == 1, f"{key}={value!r} not exactly once in {frame}"
    return rows.iloc[0].to_dict()


def test_pnl_splits_into_realized_and_unrealized():
    figures = _report().figures
    assert figures["start_equity"] == 10000.0 and figures["end_equity"] == 10150.0
    assert figures["total_pnl"] == pytest.approx(150.0)
    assert figures["realized_pnl"] == pytest.approx(60 - 40 + 30)
    assert figures["unrealized_pnl"] == pytest.approx(100.0)
    assert figures["total_return"] == pytest.approx(0.015)


def test_trade_figures_of_the_period():
    report = _report()
    figures = report.figures
    assert list(report.trades["position_id"]) == ["t1", "t2", "t3"]
    assert figures["trades"] == 3 and figures["wins"] == 2
    assert figures["win_rate"] == pytest.approx(2 / 3)
    assert figures["profit_factor"] == pytest.approx(90 / 40)
    assert figures["yield_per_1000"] == pytest.approx(1000 * 50 / 700)
    assert figures["avg_days_held"] == pytest.approx((14 + 29 + 29) / 3)


def test_curve_figures_start_at_the_base_session():
    report = _report()
    curve = [10000.0, 10100.0, 10050.0, 10200.0, 10150.0]
    assert list(report.equity["equity"]) == curve
    # Peak 10100 then 10050; peak 10200 then 10150: the larger fall is 50/10100.
    assert report.figures["max_drawdown"] == pytest.approx(50 / 10100)
    # Four session returns: too few for an annualized ratio, and the notes say so.
    assert report.figures["sharpe"] is None and report.figures["sortino"] is None
    assert (
        f"{NOT_ENOUGH_DATA}: sharpe, sortino need at least {MIN_RATIO_SESSIONS} session "
        "returns, the curve has 4"
    ) in report.notes
    # Exposure: capital at risk over equity, averaged over the period's sessions only.
    exposure = np.mean([1000 / 10100, 1000 / 10050, 500 / 10200, 500 / 10150])
    assert report.figures["exposure"] == pytest.approx(exposure)


def test_benchmark_is_bought_with_the_base_equity():
    report = _report()
    figures = report.figures
    assert figures["benchmark_symbol"] == "SPY"
    assert figures["benchmark_return"] == pytest.approx(55 / 50 - 1)
    assert figures["excess_return"] == pytest.approx(0.015 - 0.10)
    assert figures["benchmark_max_drawdown"] == pytest.approx(2 / 51)
    assert list(report.equity["benchmark"]) == pytest.approx(
        [10000 * c / 50 for c in (50, 51, 49, 52, 55)]
    )
    assert figures["benchmark_sharpe"] is None  # four returns
    assert any(n.startswith(f"{NOT_ENOUGH_DATA}: benchmark_sharpe") for n in report.notes)


def test_ratios_of_a_long_enough_curve():
    """With MIN_RATIO_SESSIONS returns the curve's Sharpe and Sortino are the formulas'."""
    sessions = pd.bdate_range("2025-01-02", periods=MIN_RATIO_SESSIONS + 1)
    steps = np.resize([0.004, -0.002, 0.001, -0.001], MIN_RATIO_SESSIONS)
    values = 10000.0 * np.cumprod(np.concatenate([[1.0], 1 + steps]))
    equity = pd.DataFrame({"session": sessions, "equity": values, "capital_at_risk": 0.0})
    report = performance_report(_journal().iloc[0:0], equity, start=None, end=None)
    returns = values[1:] / values[:-1] - 1
    sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(252)
    assert report.figures["sharpe"] == pytest.approx(sharpe)
    downside = math.sqrt(np.mean(np.minimum(returns, 0) ** 2))
    assert report.figures["sortino"] == pytest.approx(returns.mean() / downside * math.sqrt(252))
    assert not any("sharpe" in note for note in report.notes)


def test_breakdowns_by_track_month_and_regime():
    breakdowns = _report().breakdowns
    for key, frame in breakdowns.items():
        assert list(frame.columns) == [key, *BREAKDOWN_COLUMNS]
    ai = _row(breakdowns["track"], "track", "ai")
    assert (ai["trades"], ai["wins"], ai["win_rate"]) == (2, 1, 0.5)
    assert ai["total_pnl"] == pytest.approx(20.0)
    assert ai["yield_per_1000"] == pytest.approx(1000 * 20 / 600)
    assert ai["avg_days_held"] == pytest.approx(21.5)
    baseline = _row(breakdowns["track"], "track", "baseline")
    assert (baseline["trades"], baseline["total_pnl"], baseline["yield_per_1000"]) == (
        1,
        30.0,
        300.0,
    )
    january = _row(breakdowns["month"], "month", "2024-01")
    assert (january["trades"], january["total_pnl"]) == (2, 20.0)
    assert _row(breakdowns["month"], "month", "2024-02")["total_pnl"] == 30.0
    # Regime at entry: t1 entered on a bull session, t2 on a bear one, t3 on an unknown one.
    regimes = breakdowns["regime"].set_index("regime")["total_pnl"].to_dict()
    assert regimes == {"bear": -40.0, "bull": 60.0, "unknown": 30.0}
    assert _row(breakdowns["ticker"], "ticker", "AAPL")["trades"] == 2
    assert set(breakdowns["structure"]["structure"]) == {"call_fly", "put_fly"}


def test_track_test_needs_five_trades_per_track():
    report = _report()
    test = report.track_test
    assert (test["ai_trades"], test["baseline_trades"]) == (2, 1)
    assert test["win_rate_p"] is None and test["yield_p"] is None
    assert test["verdict"] == "not enough data: 2 AI and 1 baseline closed trades (need 5 each)"
    assert test["win_rate_diff"] == pytest.approx(0.5 - 1.0)
    assert any("track test: not enough data" in note for note in report.notes)


def _tracks(ai_pnl, baseline_pnl, ai_risk=100.0, baseline_risk=100.0) -> pd.DataFrame:
    """AI and baseline trades; a risk is one number for every trade of the track or a list."""
    rows = []
    for track, pnls, risks in (("ai", ai_pnl, ai_risk), ("baseline", baseline_pnl, baseline_risk)):
        risks = np.broadcast_to(np.asarray(risks, dtype=float), (len(pnls),))
        rows += [
            _trade(
                f"{track}{i}", track, "call_fly", "AAPL", D(2024, 1, 2), D(2024, 1, 10), pnl, r, 8
            )
            for i, (pnl, r) in enumerate(zip(pnls, risks, strict=True))
        ]
    frame = pd.DataFrame(rows)
    frame["exit_session"] = pd.to_datetime(frame["exit_session"])
    return frame


def _exact_permutation_p(ai_pnl, baseline_pnl, risk=100.0) -> float:
    """The p-value over every split of the trades into the two tracks' sizes, by brute
    force; the report's 5,000 random shuffles estimate it."""
    pnl = np.array([*ai_pnl, *baseline_pnl], dtype=float)
    n = len(pnl)

    def gap(ai_index):
        mask = np.zeros(n, bool)
        mask[list(ai_index)] = True
        return 1000 * (
            pnl[mask].sum() / (risk * mask.sum()) - pnl[~mask].sum() / (risk * (~mask).sum())
        )

    observed = abs(gap(range(len(ai_pnl))))
    splits = list(itertools.combinations(range(n), len(ai_pnl)))
    return sum(abs(gap(s)) >= observed - 1e-9 for s in splits) / len(splits)


def test_track_test_with_enough_trades():
    assert MIN_TRACK_TRADES == 5
    ai = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    baseline = [-10.0, -20.0, -30.0, -40.0, -50.0, -60.0]
    test = track_test(_tracks(ai, baseline))
    # Fisher, [[6, 0], [0, 6]]: the two most extreme tables of C(12, 6) = 924, 1 way each.
    assert test["win_rate_p"] == pytest.approx(2 / 924)
    # Yields: total P/L over total risk, 1000 * 210 / 600 and 1000 * -210 / 600.
    assert test["ai_yield"] == pytest.approx(350.0)
    assert test["baseline_yield"] == pytest.approx(-350.0)
    assert test["yield_diff"] == pytest.approx(700.0)
    # Only the observed split and its mirror are as extreme: exactly 2 / 924.
    assert _exact_permutation_p(ai, baseline) == pytest.approx(2 / 924)
    assert test["yield_p"] == pytest.approx(2 / 924, abs=0.002)
    assert test["verdict"].startswith("AI track wins more often than baseline (p=0.002)")
    assert "AI track yields more per $1,000 at risk than baseline" in test["verdict"]
    assert "permutation test" in test["method"]
    # Seeded: the same journal gives the same p-value.
    assert track_test(_tracks(ai, baseline))["yield_p"] == test["yield_p"]


def test_track_test_without_a_significant_difference():
    ai = [50.0, -50.0, 40.0, 30.0, 20.0, 10.0]
    baseline = [60.0, -10.0, -20.0, -30.0, -40.0, -50.0]
    test = track_test(_tracks(ai, baseline))
    # Fisher, [[5, 1], [1, 5]]: tables with k = 0, 1, 5, 6 wins: (1 + 36 + 36 + 1) / 924.
    assert test["win_rate_p"] == pytest.approx(74 / 924)
    assert test["yield_diff"] == pytest.approx(1000 * 100 / 600 - 1000 * -90 / 600)
    # 5,000 shuffles: the estimate's standard error is below 0.01 at any p.
    assert test["yield_p"] == pytest.approx(_exact_permutation_p(ai, baseline), abs=0.03)
    assert test["yield_p"] > 0.05
    assert test["verdict"] == (
        f"no significant difference (win rate p=0.08, yield p={test['yield_p']:.2f})"
    )


def test_track_test_compares_the_yields_the_report_shows():
    # AI wins small bets and loses big ones: most trades +100%, yet the track lost money.
    ai = _tracks([100.0] * 15 + [-500.0] * 5, [], ai_risk=[100.0] * 15 + [1000.0] * 5)
    baseline = _tracks([], [20.0] * 10 + [-10.0] * 10, baseline_risk=500.0)
    trades = pd.concat([ai, baseline], ignore_index=True)
    test = track_test(trades)
    by_track = breakdown(trades, "track").set_index("track")["yield_per_1000"]
    assert test["ai_yield"] == pytest.approx(1000 * (1500 - 2500) / 6500)  # -153.8
    assert test["baseline_yield"] == pytest.approx(1000 * 100 / 10000)  # +10
    assert (test["ai_yield"], test["baseline_yield"]) == pytest.approx(
        (by_track["ai"], by_track["baseline"])
    )
    assert test["yield_diff"] < 0
    assert "AI track yields more" not in test["verdict"]
    assert 0 < test["yield_p"] <= 1


def test_empty_journal_and_empty_equity_do_not_crash():
    report = performance_report(pd.DataFrame(), pd.DataFrame(), start=START, end=END)
    figures = report.figures
    assert figures["trades"] == 0
    for name in ("win_rate", "profit_factor", "total_pnl", "max_drawdown", "sharpe", "exposure"):
        assert figures[name] is None, name
    assert all(frame.empty for frame in report.breakdowns.values())
    assert report.equity.empty
    assert any(
        note.startswith("not enough data: no closed trade in the period") for note in report.notes
    )
    assert any("the equity curve has 0 marked session(s)" in note for note in report.notes)


def test_a_period_without_trades_still_has_its_curve():
    report = performance_report(_journal(), _equity(), start=D(2024, 1, 4), end=D(2024, 1, 30))
    assert report.figures["trades"] == 0 and report.figures["win_rate"] is None
    # The curve is the base (Jan 3) alone: no session of the period was marked.
    assert list(report.equity["equity"]) == [10050.0]
    assert report.figures["total_pnl"] is None and report.figures["exposure"] is None
    assert any("exposure" in note for note in report.notes)


def test_one_equity_row_gives_no_curve_figures():
    equity = _equity().sort_values("session").iloc[[2]]
    report = performance_report(_journal(), equity, start=START, end=END, benchmark=_benchmark())
    assert report.figures["total_return"] is None and report.figures["sharpe"] is None
    assert report.figures["benchmark_return"] is None and report.figures["excess_return"] is None
    assert report.figures["exposure"] == pytest.approx(0.1 / 1.01)
    assert any("the equity curve has 1 marked session(s)" in n for n in report.notes)
    assert any(n.startswith("no marked session before 2024-01-02") for n in report.notes)
    # Trade figures do not need the curve.
    assert report.figures["trades"] == 3


def test_exposure_leaves_out_the_base_row():
    # The ledger's history starts with an opening row (nothing at risk, the session before
    # the first mark); since inception it is the base, not a session of the period.
    equity = pd.DataFrame(
        {
            "session": [D(2024, 1, 2), D(2024, 1, 3), D(2024, 1, 4)],
            "equity": [10000.0, 10000.0, 10000.0],
            "capital_at_risk": [0.0, 5000.0, 5000.0],
        }
    )
    report = performance_report(pd.DataFrame(), equity, start=None, end=None)
    assert report.figures["exposure"] == pytest.approx(0.5)
    # With a start, the base is the last row before it: also left out.
    report = performance_report(pd.DataFrame(), equity, start=D(2024, 1, 3), end=None)
    assert report.figures["exposure"] == pytest.approx(0.5)
    # The opening row alone: no session of the period, no exposure.
    report = performance_report(pd.DataFrame(), equity.head(1), start=None, end=None)
    assert report.figures["exposure"] is None


def test_open_ended_period_and_bad_input():
    report = performance_report(_journal(), _equity(), start=None, end=None)
    assert report.figures["trades"] == 5
    assert report.figures["total_pnl"] == pytest.approx(9000.0 - 5000.0)
    with pytest.raises(ValueError, match=r"trade journal is missing column\(s\) \['won'\]"):
        performance_report(_journal().drop(columns="won"), _equity(), start=None, end=None)
    duplicated = pd.concat([_equity(), _equity().iloc[[0]]])
    with pytest.raises(ValueError, match="equity table has more than one row for session"):
        performance_report(_journal(), duplicated, start=None, end=None)


def test_equal_weighted_benchmark_chains_daily_means():
    bars = pd.DataFrame(
        {
            "session": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-03", "2024-01-04"],
            "symbol": ["A", "A", "A", "B", "B"],
            "close": [10.0, 11.0, 12.1, 100.0, 90.0],
        }
    )
    index = benchmark_closes(bars)
    # Jan 3: only A has a previous close (+10 %); B enters without moving the index.
    # Jan 4: mean of A's +10 % and B's -10 % = 0.
    assert list(index["close"]) == pytest.approx([100.0, 110.0, 110.0])
    spy = benchmark_closes(bars, symbol="B")
    assert list(spy["close"]) == [100.0, 90.0]
    with pytest.raises(ValueError, match="benchmark symbol 'SPY' is not in the bars"):
        benchmark_closes(bars, symbol="SPY")
    bad = bars.assign(close=[10.0, 0.0, 12.1, 100.0, 90.0])
    with pytest.raises(ValueError, match=r"close 0\.0 of A on 2024-01-03 is not a positive price"):
        benchmark_closes(bad)
    assert list(benchmark_closes(bars.iloc[:0]).columns) == ["session", "close"]
