"""End of a session: settle what expired, mark what is held, value the account."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.options.butterfly import expiry_value
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.portfolio import mark_positions

SpotAt = Callable[[str, dt.date], float]


def close_session(
    ledger: Ledger,
    session: dt.date,
    chain: pd.DataFrame,
    spot_at: SpotAt,
    checkpoint: Callable[[str, str], None] = lambda point, ref: None,
) -> tuple[pd.DataFrame, dict, list[str]]:
    """Settle positions that reached expiry at intrinsic value (the underlying's close on the
    expiry session), mark the rest at this session's mid, and record the account's value.

    Returns the marked open positions, the equity row and the settled position ids. Safe to
    run twice: a settlement is keyed by position and session, marks of a session replace
    the earlier ones.
    """
    settled = []
    for row in ledger.open_positions().itertuples(index=False):
        expiry = pd.Timestamp(row.expiry).date()
        if expiry > session:
            continue
        spot = spot_at(row.ticker, expiry)
        if not np.isfinite(spot):
            raise ValueError(
                f"cannot settle {row.position_id} ({row.ticker} {row.structure} expiring "
                f"{expiry}): no close of {row.ticker} on {expiry}"
            )
        value = float(expiry_value(row.structure, spot, row.center, row.width))
        if ledger.settle(row.position_id, session, value, "expiry"):
            settled.append(row.position_id)
    # As of the session's close: a rerun of an earlier session must not see later trades.
    held = ledger.positions_at_start(calendar.next_session(session))
    marked = mark_positions(held, chain, session) if len(held) else held
    if len(marked):
        last = ledger.query(
            "SELECT position_id, arg_max(mark, session) AS last_mark FROM marks "
            "WHERE mark IS NOT NULL AND session <= ? GROUP BY 1",
            [session],
        )
        fallback = marked["position_id"].map(
            dict(zip(last.position_id, last.last_mark, strict=True))
        )
        value_per_share = marked["mark"].fillna(fallback).fillna(marked["entry_price"])
        marked["market_value"] = value_per_share * marked["quantity"] * CONTRACT_MULTIPLIER
        capital = (marked["max_loss"].fillna(0) * marked["quantity"].abs()).sum()
    else:
        marked = marked.assign(market_value=pd.Series(dtype=float))
        capital = 0.0
    cash = ledger.cash_balance(through=session)
    positions_value = float(marked["market_value"].sum()) if len(marked) else 0.0
    equity = {
        "cash": cash,
        "positions_value": positions_value,
        "equity": cash + positions_value,
        "open_positions": len(marked),
        "capital_at_risk": float(capital) * CONTRACT_MULTIPLIER,
    }
    checkpoint("before_marks", "")
    ledger.record_marks(session, marked, equity)
    checkpoint("after_marks", "")
    return marked, equity, settled
