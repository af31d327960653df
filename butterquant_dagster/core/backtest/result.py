"""What a backtest hands back, whichever strategy ran: one shape for the asset, the CLI and
the report files."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA, drawdown

STRATEGIES = ("butterfly", "signals")
DEFAULT_WINDOW_SESSIONS = 63  # three months of sessions, when no start date is given
EQUITY_COLUMNS = ["session", "equity", "drawdown", "return", "benchmark", "exposed"]


@dataclass
class BacktestResult:
    """A finished backtest.

    ``equity``: one row per session of the window, :data:`EQUITY_COLUMNS` first (the
    benchmark is NaN where there is none), then strategy-specific columns (cash, positions
    value, open positions). ``trades``: the closed trades the trade figures count (the
    ledger's journal for the butterflies, round trips for the signals). ``fills``: every
    execution. ``steps``: the walk-forward steps (butterflies only). ``sessions``: one row
    per traded session, what was decided on and by which model. ``orders``: every order
    with its track and status (butterflies only). ``metrics``: the figures
    of ``core.backtest.metrics``, ``None`` where there was not enough data.
    """

    strategy: str
    start: dt.date | None
    end: dt.date | None
    tickers: list[str]
    initial_capital: float
    equity: pd.DataFrame
    trades: pd.DataFrame
    fills: pd.DataFrame
    metrics: dict[str, float | None]
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    orders: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    cost_basis: str = ""  # how fills were priced (core.options.costs), when options traded

    def summary(self) -> dict:
        """The result as plain JSON-able values (``None`` for a figure not computed)."""
        return {
            "strategy": self.strategy,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "tickers": list(self.tickers),
            "initial_capital": self.initial_capital,
            "final_equity": float(self.equity["equity"].iloc[-1]) if len(self.equity) else None,
            "metrics": {k: _plain(v) for k, v in self.metrics.items()},
            "steps": _records(self.steps),
            "notes": list(self.notes),
            "cost_basis": self.cost_basis,
        }


def equity_curve(
    sessions, equity, exposed, benchmark=None, extra: dict | None = None
) -> pd.DataFrame:
    """The equity frame in :data:`EQUITY_COLUMNS` order from aligned per-session values."""
    values = np.asarray(equity, dtype=float)
    frame = pd.DataFrame(
        {
            "session": pd.to_datetime(pd.Series(list(sessions), dtype=object)),
            "equity": values,
            "drawdown": drawdown(values) if len(values) else np.zeros(0),
            "return": pd.Series(values).pct_change().to_numpy(),
            "benchmark": (
                np.asarray(benchmark, dtype=float)
                if benchmark is not None
                else np.full(len(values), np.nan)
            ),
            "exposed": np.asarray(exposed, dtype=bool),
        }
    )
    for name, column in (extra or {}).items():
        frame[name] = column
    return frame


def metric_value(value) -> float | int | str:
    """A figure as the metadata shows it: a number, or the text ``not enough data``."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return NOT_ENOUGH_DATA
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    return float(value)


def _plain(value):
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    if frame is None or not len(frame):
        return []
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: _json_cell(v) for k, v in row.items()})
    return out


def _json_cell(value):
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return _plain(value)
