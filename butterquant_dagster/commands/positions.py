"""``butterquant positions``: the open positions with their latest marks, and the cash."""

from __future__ import annotations

from butterquant_dagster.commands._data import trading
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit
from butterquant_dagster.commands._trading import pd_date

COLUMNS = [
    "position_id", "ticker", "structure", "track", "expiry", "lower", "center", "upper",
    "quantity", "entry_session", "entry_price", "mark", "unrealized_pnl", "marked_on",
]  # fmt: skip


def add_parser(sub) -> None:
    positions = sub.add_parser("positions", help="open positions with their latest marks")
    positions.add_argument("--json", action="store_true", help="print the result as JSON")
    positions.set_defaults(handler=cmd_positions)


def cmd_positions(args) -> int:
    ledger = trading().ledger()
    held = ledger.open_positions()
    marks = ledger.query(
        "SELECT position_id, arg_max(mark, session) AS mark, max(session) AS marked_on, "
        "arg_max(unrealized_pnl, session) AS unrealized_pnl FROM marks GROUP BY 1"
    )
    rows = held.merge(marks, on="position_id", how="left")[COLUMNS]
    equity = ledger.equity()
    result = {
        "open_positions": len(rows),
        "cash": ledger.cash_balance(),
        "equity": float(equity["equity"].iloc[-1]) if len(equity) else None,
        "positions": rows.to_dict(orient="records"),
    }
    lines = [f"{len(rows)} open positions; cash ${result['cash']:,.2f}"]
    for row in rows.itertuples(index=False):
        lines.append(
            f"  {row.ticker:6} {row.structure:9} {row.track:8} x{row.quantity} "
            f"{row.lower:g}/{row.center:g}/{row.upper:g} exp {pd_date(row.expiry)} "
            f"entry {row.entry_price:+.2f} mark {row.mark:+.2f} P/L {row.unrealized_pnl:+,.0f}"
        )
    emit(result, args.json, lines)
    return EXIT_OK
