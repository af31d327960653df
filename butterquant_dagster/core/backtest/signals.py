"""The hedge fund's technical backtest: the daily buy / hold / sell decisions traded on the
stocks themselves, against buying and holding the same stocks.

How a decision becomes a trade, and why:

- A decision is made at session T's close (``trading_decisions`` of T), so it fills at
  the **open of the next session** T+1 (``daily_bars.open``): never at a price the
  decision already saw. Decisions of the window's last session have no next open and are
  not traded.
- **Long or flat**: ``buy`` wants the stock held, ``sell`` wants it flat, ``hold`` (or no
  decision, or a confidence below ``min_confidence``) keeps what is there. No shorting.
- **Equal weight among the held stocks**: whenever the set of wanted stocks changes, the
  whole book is rebalanced at that open to ``equity / n`` per stock (whole shares, sells
  before buys, buys limited to the cash there is). While the set is unchanged nothing
  trades and the weights drift with the prices.
- **Costs**: every fill pays ``slippage_bps`` against it (a buy at open × (1 + bps), a
  sell at open × (1 − bps)) and a commission like Interactive Brokers' fixed stock rate:
  $0.005 per share, at least $1.00 per order, at most 1 % of the order's value.
- The **benchmark** buys every stock of the backtest in equal dollar amounts at the same
  first opportunity (the open after the first session), with the same costs, and holds.

Equity is valued at each session's close (a stock without a close that day keeps its last
one). A *trade* for the win rate and the profit factor is a round trip: from the buy that
takes a stock from flat to the sell that makes it flat again, its P/L the sum of its fills'
cash after costs; one still open at the end is not counted.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core.backtest.metrics import backtest_metrics
from butterquant_dagster.core.backtest.result import BacktestResult, equity_curve

ACTIONS = ("buy", "hold", "sell")
FILL_COLUMNS = [
    "session",
    "decided_on",
    "symbol",
    "side",
    "shares",
    "open",
    "price",
    "commission",
    "cash_flow",
    "reason",
]
TRADE_COLUMNS = [
    "symbol",
    "entry_session",
    "exit_session",
    "fills",
    "shares_bought",
    "cost",
    "proceeds",
    "fees",
    "pnl",
    "won",
]


@dataclass(frozen=True)
class StockCosts:
    """IB fixed-rate stock commissions and a slippage in basis points."""

    per_share: float = 0.005
    minimum: float = 1.00
    max_share_of_value: float = 0.01
    slippage_bps: float = 5.0

    def commission(self, shares: int, price: float) -> float:
        if shares <= 0:
            return 0.0
        fee = max(self.minimum, self.per_share * shares)
        return min(fee, self.max_share_of_value * shares * price)

    def fill_price(self, side: str, open_price: float) -> float:
        slip = self.slippage_bps / 10_000.0
        return open_price * (1.0 + slip) if side == "buy" else open_price * (1.0 - slip)


class SignalsInputError(ValueError):
    """Decisions or bars a backtest cannot run on (missing columns, unknown actions)."""


def _check(decisions: pd.DataFrame, bars: pd.DataFrame) -> None:
    missing = {"decisions": {"session", "symbol", "action", "confidence"} - set(decisions)}
    missing["daily_bars"] = {"session", "symbol", "open", "close"} - set(bars)
    for table, columns in missing.items():
        if columns:
            raise SignalsInputError(f"{table} lacks column(s) {sorted(columns)}")
    unknown = sorted(set(decisions["action"].astype(str)) - set(ACTIONS))
    if unknown:
        raise SignalsInputError(f"trading_decisions has unknown action(s) {unknown}")


def _matrix(bars: pd.DataFrame, column: str, sessions, tickers) -> pd.DataFrame:
    frame = bars.assign(session=pd.to_datetime(bars["session"]).dt.date)
    table = frame.pivot_table(index="session", columns="symbol", values=column, aggfunc="first")
    return table.reindex(index=list(sessions), columns=list(tickers)).astype(float)


def _wanted_after(
    decisions: pd.DataFrame, held: set[str], min_confidence: float
) -> tuple[set[str], dict]:
    """The stocks wanted after one session's decisions, and the decision behind each
    stock that joins or leaves (the others only trade to rebalance)."""
    wanted = set(held)
    reasons = {}
    for row in decisions.itertuples(index=False):
        if row.confidence < min_confidence:
            continue
        joins = row.action == "buy" and row.symbol not in wanted
        leaves = row.action == "sell" and row.symbol in wanted
        if joins:
            wanted.add(row.symbol)
        elif leaves:
            wanted.discard(row.symbol)
        if joins or leaves:
            reasons[row.symbol] = f"{row.action} (confidence {row.confidence:.2f})"
    return wanted, reasons


class _Book:
    """Cash and whole shares, traded at an open with costs."""

    def __init__(self, cash: float, costs: StockCosts):
        self.cash = cash
        self.shares: dict[str, int] = {}
        self.costs = costs

    def value(self, prices: pd.Series, last: dict[str, float]) -> float:
        total = self.cash
        for symbol, count in self.shares.items():
            price = prices.get(symbol, np.nan)
            if not np.isfinite(price):
                price = last.get(symbol, 0.0)
            total += count * price
        return total

    def trade(self, symbol: str, delta: int, open_price: float) -> dict | None:
        """Buy (``delta`` > 0, limited to the cash) or sell ``|delta|`` shares at the open."""
        side = "buy" if delta > 0 else "sell"
        price = self.costs.fill_price(side, open_price)
        count = abs(delta)
        if side == "buy":
            count = min(count, max(0, math.floor(self.cash / price)))
            while count > 0 and count * price + self.costs.commission(count, price) > self.cash:
                count -= 1
        if count == 0:
            return None
        fee = self.costs.commission(count, price)
        flow = (-count * price if side == "buy" else count * price) - fee
        self.cash += flow
        self.shares[symbol] = self.shares.get(symbol, 0) + (count if side == "buy" else -count)
        if self.shares[symbol] == 0:
            del self.shares[symbol]
        return {
            "symbol": symbol,
            "side": side,
            "shares": count,
            "open": open_price,
            "price": price,
            "commission": fee,
            "cash_flow": flow,
        }

    def rebalance(self, wanted: set[str], opens: pd.Series, last: dict[str, float]) -> list[dict]:
        """Equal weight among ``wanted`` at this open: sells first, then buys."""
        value = self.value(opens, last)
        tradable = {s for s in wanted | set(self.shares) if np.isfinite(opens.get(s, np.nan))}
        target_value = value / len(wanted) if wanted else 0.0
        deltas = {}
        for symbol in sorted(tradable):
            target = math.floor(target_value / opens[symbol]) if symbol in wanted else 0
            deltas[symbol] = target - self.shares.get(symbol, 0)
        fills = []
        for symbol in sorted(s for s, d in deltas.items() if d < 0):
            fills.append(self.trade(symbol, deltas[symbol], float(opens[symbol])))
        for symbol in sorted(s for s, d in deltas.items() if d > 0):
            fills.append(self.trade(symbol, deltas[symbol], float(opens[symbol])))
        return [f for f in fills if f is not None]


def _round_trips(fills: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Closed round trips per stock, and how many are still open at the end."""
    rows, still_open = [], 0
    for symbol, group in fills.groupby("symbol", sort=True):
        position, trip = 0, None
        for fill in group.itertuples(index=False):
            if position == 0:
                trip = {
                    "symbol": symbol,
                    "entry_session": fill.session,
                    "fills": 0,
                    "shares_bought": 0,
                    "cost": 0.0,
                    "proceeds": 0.0,
                    "fees": 0.0,
                }
            trip["fills"] += 1
            trip["fees"] += fill.commission
            if fill.side == "buy":
                position += fill.shares
                trip["shares_bought"] += fill.shares
                trip["cost"] += fill.shares * fill.price
            else:
                position -= fill.shares
                trip["proceeds"] += fill.shares * fill.price
            if position == 0:
                pnl = trip["proceeds"] - trip["cost"] - trip["fees"]
                rows.append({**trip, "exit_session": fill.session, "pnl": pnl, "won": pnl > 0})
                trip = None
        still_open += trip is not None
    trades = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    return trades.sort_values(["exit_session", "symbol"]).reset_index(drop=True), still_open


def _benchmark(
    sessions, tickers, opens: pd.DataFrame, closes: pd.DataFrame, capital, costs
) -> np.ndarray:
    """Equal dollars in every stock at the first open after the first session, held."""
    values = np.full(len(sessions), float(capital))
    if len(sessions) < 2 or not tickers:
        return values
    book = _Book(float(capital), costs)
    first_opens = opens.iloc[1]
    tradable = [t for t in tickers if np.isfinite(first_opens.get(t, np.nan))]
    budget = capital / len(tradable) if tradable else 0.0
    for symbol in tradable:
        price = costs.fill_price("buy", float(first_opens[symbol]))
        count = math.floor(budget / price)
        while count > 0 and count * price + costs.commission(count, price) > budget:
            count -= 1
        if count:
            book.trade(symbol, count, float(first_opens[symbol]))
    last: dict[str, float] = {}
    for i in range(1, len(sessions)):
        row = closes.iloc[i]
        last.update({k: v for k, v in row.items() if np.isfinite(v)})
        values[i] = book.value(row, last)
    return values


def run_signals(
    decisions: pd.DataFrame,
    bars: pd.DataFrame,
    sessions: list[dt.date],
    *,
    tickers: list[str] | None = None,
    initial_capital: float = 100_000.0,
    costs: StockCosts | None = None,
    min_confidence: float = 0.0,
) -> BacktestResult:
    """Trade ``decisions`` (session, symbol, action, confidence) on ``bars`` (session, symbol,
    open, close) over ``sessions`` (the window, in order); see the module docstring."""
    costs = costs or StockCosts()
    _check(decisions, bars)
    sessions = list(sessions)
    chosen = sorted(tickers) if tickers else sorted(set(decisions["symbol"]))
    decisions = decisions.loc[decisions["symbol"].isin(chosen)].copy()
    decisions["session"] = pd.to_datetime(decisions["session"]).dt.date
    by_session = {day: rows for day, rows in decisions.groupby("session")}
    opens = _matrix(bars, "open", sessions, chosen)
    closes = _matrix(bars, "close", sessions, chosen)
    notes = []
    book = _Book(float(initial_capital), costs)
    wanted: set[str] = set()
    last: dict[str, float] = {}
    equity, exposed, held_counts, fills = [], [], [], []
    for i, session in enumerate(sessions):
        if i > 0:
            decided_on = sessions[i - 1]
            today = by_session.get(decided_on)
            before, reasons = wanted, {}
            if today is not None:
                wanted, reasons = _wanted_after(today, wanted, min_confidence)
            if wanted != before:
                opens_today = opens.iloc[i]
                for fill in book.rebalance(wanted, opens_today, last):
                    fills.append(
                        {
                            "session": session,
                            "decided_on": decided_on,
                            **fill,
                            "reason": reasons.get(fill["symbol"], "rebalance to equal weight"),
                        }
                    )
        row = closes.iloc[i]
        last.update({k: v for k, v in row.items() if np.isfinite(v)})
        equity.append(book.value(row, last))
        exposed.append(bool(book.shares))
        held_counts.append(len(book.shares))
    if sessions and sessions[-1] in by_session:
        notes.append(
            f"decisions of the last session {sessions[-1]} are not traded: they would fill at "
            "the next session's open, after the window"
        )
    fill_frame = pd.DataFrame(fills, columns=FILL_COLUMNS)
    trades, still_open = _round_trips(fill_frame)
    if still_open:
        notes.append(
            f"{still_open} position(s) still open at the end are valued at the last close "
            "and not counted as trades"
        )
    benchmark = _benchmark(sessions, chosen, opens, closes, initial_capital, costs)
    frame = equity_curve(
        sessions,
        equity,
        exposed,
        benchmark,
        extra={"positions": held_counts},
    )
    if len(sessions) < 2:
        notes.append("fewer than two sessions: nothing can be traded")
    return BacktestResult(
        strategy="signals",
        start=sessions[0] if sessions else None,
        end=sessions[-1] if sessions else None,
        tickers=chosen,
        initial_capital=float(initial_capital),
        equity=frame,
        trades=trades,
        fills=fill_frame,
        metrics=backtest_metrics(equity, exposed, trades["pnl"], benchmark),
        notes=notes,
    )
