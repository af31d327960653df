"""The figures of a backtest, under the names every output (metadata, CLI, JSON) uses.

The formulas are the track record's own (``core.monitoring.metrics``); this module only
decides what a backtest feeds them and adds the one figure the track record lacks, the
share of winning days.
"""

from __future__ import annotations

import numpy as np

from butterquant_dagster.core.monitoring import metrics as track

METRIC_NAMES = (
    "total_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "win_rate_of_trades",
    "win_rate_of_days",
    "profit_factor",
    "trades",
)
BENCHMARK_METRIC_NAMES = ("benchmark_total_return", "benchmark_max_drawdown")


def win_rate_of_days(equity, active) -> float | None:
    """Share of the *active* sessions on which the account's value rose.

    Every session after the first has a return, its equity over the previous session's
    minus one. A session is active when the account held a position at the previous
    close (it was exposed to the market during the session) or its equity changed during
    the session (a fill, a fee or a settlement moved it). The figure is the number of
    active sessions with a return above zero over the number of active sessions. Idle
    sessions (all cash, nothing traded) are left out: counting them would score doing
    nothing as a string of draws. ``None`` without any active session.

    ``equity`` and ``active`` are aligned per session; ``active[0]`` is ignored (the first
    session has no return).
    """
    values = np.asarray(equity, dtype=float)
    flags = np.asarray(active, dtype=bool)
    if len(values) != len(flags):
        raise ValueError(
            f"win_rate_of_days: {len(values)} equity values but {len(flags)} activity flags"
        )
    if len(values) < 2:
        return None
    returns = values[1:] / values[:-1] - 1.0
    counted = flags[1:] & np.isfinite(returns)
    if not counted.any():
        return None
    return float((returns[counted] > 0).mean())


def active_sessions(equity, exposed) -> np.ndarray:
    """The activity flags :func:`win_rate_of_days` counts: exposed at the previous close,
    or the equity moved. ``exposed[t]`` is True when a position was held at close t."""
    values = np.asarray(equity, dtype=float)
    held = np.asarray(exposed, dtype=bool)
    flags = np.zeros(len(values), dtype=bool)
    if len(values) >= 2:
        flags[1:] = held[:-1] | ~np.isclose(values[1:], values[:-1], rtol=0.0, atol=1e-9)
    return flags


def backtest_metrics(equity, exposed, trade_pnl, benchmark=None) -> dict[str, float | None]:
    """Every figure of :data:`METRIC_NAMES` (and :data:`BENCHMARK_METRIC_NAMES` when a
    benchmark curve is given): ``None`` where the data cannot support it.

    ``equity`` is the account's value at each session's close, ``exposed`` whether it held
    a position at that close, ``trade_pnl`` the P/L after fees of each closed trade.
    """
    values = np.asarray(equity, dtype=float)
    pnl = np.asarray(trade_pnl, dtype=float)
    pnl = pnl[np.isfinite(pnl)]
    returns = track.session_returns(values)
    figures: dict[str, float | None] = {
        "total_return": track.total_return(values),
        "sharpe_ratio": track.sharpe_ratio(returns),
        "sortino_ratio": track.sortino_ratio(returns),
        # One value is not a curve: a drawdown needs at least two sessions.
        "max_drawdown": track.max_drawdown(values) if len(values) >= 2 else None,
        "win_rate_of_trades": track.win_rate(pnl > 0) if len(pnl) else None,
        "win_rate_of_days": win_rate_of_days(values, active_sessions(values, exposed)),
        "profit_factor": track.profit_factor(pnl),
        "trades": len(pnl),
    }
    if benchmark is not None:
        reference = np.asarray(benchmark, dtype=float)
        figures["benchmark_total_return"] = track.total_return(reference)
        figures["benchmark_max_drawdown"] = (
            track.max_drawdown(reference) if np.isfinite(reference).sum() >= 2 else None
        )
    return figures
