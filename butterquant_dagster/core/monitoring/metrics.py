"""The track-record figures every report and backtest shares, each defined once.

Returns are per session (the equity curve's own steps, one per NYSE session); annualized
figures use 252 sessions a year. A figure that needs more data than it has is ``None``,
never a made-up zero: a report prints "not enough data" for it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# What a figure that cannot be computed (too few sessions or trades) says, everywhere.
NOT_ENOUGH_DATA = "not enough data"

SESSIONS_PER_YEAR = 252
# Session returns an annualized ratio (Sharpe, Sortino) needs before it is shown: about a
# quarter of sessions. The standard error of an annualized Sharpe from n daily returns is
# about sqrt(252 / n) (Lo, 2002): +-3.5 from 20 sessions, where a -13 is noise; +-2 from 60.
# Below it the ratio is None and a report prints "not enough data".
MIN_RATIO_SESSIONS = 60
FLAT_RETURNS_SD = 1e-12


def _values(series) -> np.ndarray:
    values = np.asarray(series, dtype=float)
    return values[np.isfinite(values)]


def drawdown(equity) -> np.ndarray:
    """Fall from the running peak at each point, as a share of that peak (0.12 = 12 %)."""
    values = np.asarray(equity, dtype=float)
    if not len(values):
        return values
    peaks = np.maximum.accumulate(values)
    return (peaks - values) / peaks


def max_drawdown(equity) -> float | None:
    """Largest fall from a running peak, as a share of that peak; ``None`` without data."""
    values = _values(equity)
    if not len(values):
        return None
    return float(np.max(drawdown(values)))


def session_returns(equity) -> np.ndarray:
    """Simple returns between consecutive equity values."""
    values = _values(equity)
    if len(values) < 2:
        return np.zeros(0)
    return values[1:] / values[:-1] - 1.0


def total_return(equity) -> float | None:
    values = _values(equity)
    if len(values) < 2:
        return None
    return float(values[-1] / values[0] - 1.0)


def enough_for_ratios(returns, min_sessions: int = MIN_RATIO_SESSIONS) -> bool:
    """Whether ``returns`` has the finite session returns an annualized ratio needs."""
    return len(_values(returns)) >= max(2, min_sessions)


def sharpe_ratio(
    returns, risk_free_annual: float = 0.0, *, min_sessions: int = MIN_RATIO_SESSIONS
) -> float | None:
    """Annualized mean excess return over its standard deviation (sample, ddof=1).

    ``None`` with fewer than ``min_sessions`` returns (:data:`MIN_RATIO_SESSIONS`; at
    least two) or no variation: a flat line has no Sharpe.
    """
    r = _values(returns) - risk_free_annual / SESSIONS_PER_YEAR
    if not enough_for_ratios(r, min_sessions):
        return None
    sd = float(np.std(r, ddof=1))
    # Equal returns leave a rounding residue (1e-18), not zero: no variation all the same.
    if not math.isfinite(sd) or sd <= FLAT_RETURNS_SD:
        return None
    return float(np.mean(r) / sd * math.sqrt(SESSIONS_PER_YEAR))


def sortino_ratio(
    returns, risk_free_annual: float = 0.0, *, min_sessions: int = MIN_RATIO_SESSIONS
) -> float | None:
    """Annualized mean excess return over the downside deviation.

    Downside deviation is the root mean square of the returns below zero over *all*
    returns (Sortino & Price's target semideviation with target 0). ``None`` with fewer
    than ``min_sessions`` returns, or when there is no downside at all (the ratio is
    unbounded, not a number to print).
    """
    r = _values(returns) - risk_free_annual / SESSIONS_PER_YEAR
    if not enough_for_ratios(r, min_sessions):
        return None
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    if downside == 0.0:
        return None
    return float(np.mean(r) / downside * math.sqrt(SESSIONS_PER_YEAR))


def profit_factor(pnl) -> float | None:
    """Gross profit over gross loss of closed trades; ``None`` without a losing trade."""
    values = _values(pnl)
    losses = -values[values < 0].sum()
    if not len(values) or losses == 0:
        return None
    return float(values[values > 0].sum() / losses)


def win_rate(won) -> float | None:
    """Share of True among the known outcomes; ``None`` without any.

    A missing outcome (None/NaN) is left out rather than read as a win: ``bool(nan)`` is
    True, which would quietly count every unknown as a success.
    """
    values = pd.Series(won, dtype=object).dropna()
    if not len(values):
        return None
    return float(values.astype(bool).mean())


def yield_per_1000(pnl, capital_at_risk) -> float | None:
    """P/L per $1,000 of capital put at risk, summed over trades (not a mean of ratios).

    Only trades with both a P/L and a capital at risk count, so a trade missing one side
    cannot add its risk without its P/L (or the reverse).
    """
    pnl = np.asarray(pnl, dtype=float)
    risk = np.asarray(capital_at_risk, dtype=float)
    known = np.isfinite(pnl) & np.isfinite(risk)
    total_risk = float(risk[known].sum())
    if total_risk <= 0:
        return None
    return float(1000.0 * pnl[known].sum() / total_risk)


def equity_frame(equity: pd.DataFrame) -> pd.DataFrame:
    """``session, equity`` sorted, with each session's ``drawdown`` and ``return``."""
    frame = equity[["session", "equity"]].copy()
    frame["session"] = pd.to_datetime(frame["session"])
    frame = frame.sort_values("session").reset_index(drop=True)
    frame["drawdown"] = drawdown(frame["equity"].to_numpy(float))
    frame["return"] = frame["equity"].pct_change()
    return frame
