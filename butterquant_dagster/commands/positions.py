"""``butterquant positions``: the account (value, cash, realized and unrealized P/L) at the
latest marked close and the open positions behind it, with their marks."""

from __future__ import annotations

import pandas as pd

from butterquant_dagster.commands._data import trading
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit
from butterquant_dagster.commands._trading import pd_date
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER
from butterquant_dagster.core.trading.account import (
    HELD,
    account_view,
    dollars,
    position_marks,
    signed_dollars,
)

COLUMNS = [
    "position_id", "ticker", "structure", "track", "expiry", "lower", "center", "upper",
    "quantity", "entry_session", "entry_price", "mark", "market_value", "unrealized_pnl",
    "marked_on", "status",
]  # fmt: skip


def add_parser(sub) -> None:
    positions = sub.add_parser("positions", help="open positions with their latest marks")
    positions.add_argument("--json", action="store_true", help="print the result as JSON")
    positions.set_defaults(handler=cmd_positions)


def cmd_positions(args) -> int:
    ledger = trading().ledger()
    account = account_view(ledger)
    rows = position_marks(ledger, account)
    # A position opened since the close is listed with what is held now.
    rows["quantity"] = rows["quantity"].where(rows["status"] == HELD, rows["quantity_now"])
    rows = rows[COLUMNS]
    held = rows.loc[rows["status"] == HELD]
    result = {
        "open_positions": account.open_positions,
        "cash": account.cash,
        "equity": account.account_value,
        "account": account.to_dict(),
        "positions": rows.to_dict(orient="records"),
    }
    at_risk = account.capital_at_risk
    lines = [
        *account.lines(),
        f"{len(held)} open positions"
        + (f", capital at risk {dollars(at_risk)}" if at_risk else "")
        + " (P/L: marked value minus cost, fees included)",
    ]
    for row in rows.itertuples(index=False):
        mark = f"mark {row.mark:+.2f}"
        if pd.isna(row.mark):
            mark = "not marked"
            if not pd.isna(row.market_value) and row.quantity:
                # close_session's fallback: the last mark, else the entry price
                value = row.market_value / (row.quantity * CONTRACT_MULTIPLIER)
                mark = f"no quote, valued at {value:+.2f} (last mark or entry)"
        pnl = "" if pd.isna(row.unrealized_pnl) else f" P/L {signed_dollars(row.unrealized_pnl)}"
        status = "" if row.status == HELD else f" ({row.status} the close)"
        lines.append(
            f"  {row.ticker:6} {row.structure:9} {row.track:8} x{row.quantity} "
            f"{row.lower:g}/{row.center:g}/{row.upper:g} exp {pd_date(row.expiry)} "
            f"entry {row.entry_price:+.2f} {mark}{pnl}{status}"
        )
    emit(result, args.json, lines)
    return EXIT_OK
