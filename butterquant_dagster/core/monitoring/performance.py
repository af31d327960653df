"""The performance report: the journal and the daily marks turned into a track record."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

NOT_ENOUGH_DATA = "not enough data"


@dataclass
class PerformanceReport:
    """Figures of one period. A figure that cannot be computed is ``None`` and has a line in
    ``notes`` saying why; nothing is filled in with a made-up number.

    ``figures`` keys: trades, wins, win_rate, yield_per_1000, total_pnl, realized_pnl,
    unrealized_pnl, max_drawdown, sharpe, sortino, profit_factor, avg_days_held, exposure,
    total_return, start_equity, end_equity, benchmark_symbol, benchmark_return,
    benchmark_max_drawdown, benchmark_sharpe, excess_return.

    ``breakdowns`` keys: track, structure, regime, ticker, month; each a frame whose first
    column is the key and then trades, wins, win_rate, total_pnl, yield_per_1000,
    avg_days_held.

    ``track_test``: AI vs baseline: ai_trades, baseline_trades, win_rate_diff, win_rate_p,
    yield_diff, yield_p, method, verdict (a sentence).

    ``equity``: session, equity, drawdown, return, benchmark (the index bought at the
    period's first equity, same scale; NaN where unknown).

    ``trades``: the period's closed trades (the journal rows), for the P/L distribution.
    """

    start: dt.date | None
    end: dt.date | None
    figures: dict = field(default_factory=dict)
    breakdowns: dict[str, pd.DataFrame] = field(default_factory=dict)
    track_test: dict = field(default_factory=dict)
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)
    trades: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
