"""The backtest figures on a curve small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from butterquant_dagster.core.backtest.metrics import (
    BENCHMARK_METRIC_NAMES,
    METRIC_NAMES,
    active_sessions,
    backtest_metrics,
    win_rate_of_days,
)
from butterquant_dagster.core.monitoring import metrics as track
from butterquant_dagster.core.monitoring.metrics import MIN_RATIO_SESSIONS

# Returns +10 %, -10 %, 0 %, +10 %; a position is held at the first two closes only.
EQUITY = [100.0, 110.0, 99.0, 99.0, 108.9]
EXPOSED = [True, True, False, False, False]
TRADE_PNL = [50.0, -20.0, 30.0, -10.0]
BENCHMARK = [100.0, 90.0, 95.0, 120.0, 96.0]


def test_every_figure_matches_the_hand_computation():
    figures = backtest_metrics(EQUITY, EXPOSED, TRADE_PNL, BENCHMARK)
    assert set(figures) == {*METRIC_NAMES, *BENCHMARK_METRIC_NAMES}
    assert figures["total_return"] == pytest.approx(0.089)
    assert figures["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99
    # Four returns are too few for an annualized ratio (MIN_RATIO_SESSIONS): not enough data.
    assert figures["sharpe_ratio"] is None and figures["sortino_ratio"] is None
    assert figures["win_rate_of_trades"] == pytest.approx(0.5)
    assert figures["profit_factor"] == pytest.approx(80.0 / 30.0)
    assert figures["trades"] == 4
    # Active: sessions 1 and 2 (held at the previous close) and 4 (the equity moved);
    # session 3 was flat and idle. Two of the three rose.
    assert figures["win_rate_of_days"] == pytest.approx(2 / 3)
    assert figures["benchmark_total_return"] == pytest.approx(-0.04)
    assert figures["benchmark_max_drawdown"] == pytest.approx(0.2)  # 120 -> 96


def test_idle_sessions_are_not_days_at_all():
    assert active_sessions(EQUITY, EXPOSED).tolist() == [False, True, True, False, True]
    # All cash and unchanged: no active session, so no figure rather than 0 %.
    assert win_rate_of_days([100.0, 100.0, 100.0], [False, False, False]) is None
    # Held but flat counts, as a day that did not win.
    assert win_rate_of_days([100.0, 100.0, 101.0], [True, True, True]) == pytest.approx(0.5)


def test_misaligned_flags_are_refused():
    with pytest.raises(ValueError, match="3 equity values but 2 activity flags"):
        win_rate_of_days([1.0, 2.0, 3.0], [True, False])


@pytest.mark.parametrize("equity", [[], [100_000.0]])
def test_an_empty_or_single_session_curve_has_no_figures(equity):
    figures = backtest_metrics(equity, [False] * len(equity), [], benchmark=equity)
    assert figures["trades"] == 0
    for name in set(figures) - {"trades"}:
        assert figures[name] is None, name


def test_without_a_losing_trade_there_is_no_profit_factor():
    figures = backtest_metrics(EQUITY, EXPOSED, [10.0, 5.0])
    assert figures["profit_factor"] is None
    assert figures["win_rate_of_trades"] == 1.0
    assert "benchmark_total_return" not in figures


def test_the_ratios_use_the_track_record_formulas_once_there_are_enough_sessions():
    # The four returns repeated: mean 0.025, sample variance ~0.0275 / 3, downside 0.05.
    equity = [100.0]
    for step in [0.1, -0.1, 0.0, 0.1] * (MIN_RATIO_SESSIONS // 4 + 1):
        equity.append(equity[-1] * (1 + step))
    figures = backtest_metrics(equity, [False] * len(equity), TRADE_PNL)
    returns = track.session_returns(equity)
    assert len(returns) >= MIN_RATIO_SESSIONS
    sd = float(np.std(returns, ddof=1))
    assert figures["sharpe_ratio"] == pytest.approx(returns.mean() / sd * math.sqrt(252))
    assert figures["sortino_ratio"] == pytest.approx(0.025 / 0.05 * math.sqrt(252))
