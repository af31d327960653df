"""The shared track-record figures on examples small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.monitoring import metrics


def test_max_drawdown_is_the_largest_fall_from_a_running_peak():
    # Peaks 100, 120, 120, 130, 130: falls 0, 0, 30/120, 0, 13/130.
    equity = [100, 120, 90, 130, 117]
    assert metrics.max_drawdown(equity) == pytest.approx(0.25)
    assert metrics.drawdown(equity) == pytest.approx([0, 0, 0.25, 0, 0.1])
    assert metrics.max_drawdown([100, 110, 120]) == 0.0
    assert metrics.max_drawdown([]) is None


def test_session_and_total_returns():
    assert metrics.session_returns([100, 110, 99]) == pytest.approx([0.1, -0.1])
    assert metrics.total_return([100, 110, 99]) == pytest.approx(-0.01)
    assert metrics.total_return([100]) is None
    assert len(metrics.session_returns([100])) == 0


def test_sharpe_and_sortino_by_hand():
    returns = [0.01, -0.02, 0.03]
    mean = (0.01 - 0.02 + 0.03) / 3
    sd = math.sqrt(((0.01 - mean) ** 2 + (-0.02 - mean) ** 2 + (0.03 - mean) ** 2) / 2)
    downside = math.sqrt((0.02**2) / 3)  # only -0.02 is below 0, over all three returns
    # Three returns are far below the reports' minimum: the formula is checked on its own.
    sharpe = metrics.sharpe_ratio(returns, min_sessions=2)
    assert sharpe == pytest.approx(mean / sd * math.sqrt(252))
    assert sharpe == pytest.approx(4.2052, abs=1e-4)
    sortino = metrics.sortino_ratio(returns, min_sessions=2)
    assert sortino == pytest.approx(mean / downside * math.sqrt(252))
    assert sortino == pytest.approx(9.1652, abs=1e-4)


def test_ratios_need_the_minimum_of_sessions():
    """20 sessions of a losing account gave an annualized Sharpe of -13.47: noise, not a
    figure. Below MIN_RATIO_SESSIONS returns the ratios are None ("not enough data")."""
    short = [-0.004, 0.001, -0.006, 0.002] * 5  # 20 session returns
    assert metrics.sharpe_ratio(short, min_sessions=2) < -5  # what used to be printed
    assert metrics.sharpe_ratio(short) is None
    assert metrics.sortino_ratio(short) is None
    assert not metrics.enough_for_ratios(short)
    enough = short * (metrics.MIN_RATIO_SESSIONS // len(short) + 1)
    enough = enough[: metrics.MIN_RATIO_SESSIONS]
    assert metrics.enough_for_ratios(enough)
    assert metrics.sharpe_ratio(enough) == pytest.approx(
        metrics.sharpe_ratio(enough, min_sessions=2)
    )
    assert metrics.sortino_ratio(enough) is not None
    assert metrics.sharpe_ratio(enough[:-1]) is None  # one short of the minimum
    # NaN returns do not count towards it.
    assert metrics.sharpe_ratio([*enough[:-1], float("nan")]) is None


def test_ratios_that_do_not_exist_are_none():
    assert metrics.sharpe_ratio([0.01], min_sessions=1) is None  # one return has no spread
    assert metrics.sharpe_ratio([0.01] * 100) is None  # a flat line
    assert metrics.sortino_ratio([0.01, 0.02] * 50) is None  # no downside: unbounded


def test_profit_factor_is_gross_profit_over_gross_loss():
    assert metrics.profit_factor([60, -40, 30, -20]) == pytest.approx(90 / 60)
    assert metrics.profit_factor([60, 30]) is None  # no losing trade
    assert metrics.profit_factor([]) is None


def test_win_rate_ignores_unknown_outcomes():
    assert metrics.win_rate([True, False, True, True]) == 0.75
    # bool(nan) is True; an unknown outcome must not count as a win.
    assert metrics.win_rate([True, False, None, np.nan]) == 0.5
    assert metrics.win_rate(pd.Series([True, pd.NA, False], dtype="boolean")) == 0.5
    assert metrics.win_rate([]) is None


def test_yield_per_1000_sums_pnl_over_summed_risk():
    # (60 - 40 + 30) * 1000 / (200 + 400 + 100): not the mean of the per-trade yields.
    assert metrics.yield_per_1000([60, -40, 30], [200, 400, 100]) == pytest.approx(50000 / 700)
    # A trade without a P/L adds no risk either.
    assert metrics.yield_per_1000([60, np.nan], [200, 800]) == pytest.approx(300.0)
    assert metrics.yield_per_1000([10], [0]) is None
    assert metrics.yield_per_1000([], []) is None


def test_equity_frame_sorts_and_adds_drawdown_and_return():
    frame = metrics.equity_frame(
        pd.DataFrame({"session": ["2024-01-03", "2024-01-02"], "equity": [90.0, 100.0]})
    )
    assert list(frame["equity"]) == [100.0, 90.0]
    assert frame["drawdown"].tolist() == pytest.approx([0.0, 0.1])
    assert math.isnan(frame["return"].iloc[0])
    assert frame["return"].iloc[1] == pytest.approx(-0.1)
