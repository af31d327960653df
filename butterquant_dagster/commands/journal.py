"""``butterquant journal [--last N]``: the closed trades and the track record."""

from __future__ import annotations

from butterquant_dagster.commands._args import positive_int
from butterquant_dagster.commands._data import trading
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit
from butterquant_dagster.commands._trading import journal_lines, pd_date
from butterquant_dagster.core.trading.account import account_view
from butterquant_dagster.core.trading.journal import summary


def add_parser(sub) -> None:
    journal = sub.add_parser("journal", help="closed trades and the track record")
    journal.add_argument("--last", type=positive_int, default=20, help="trades listed")
    journal.add_argument("--json", action="store_true", help="print the result as JSON")
    journal.set_defaults(handler=cmd_journal)


def cmd_journal(args) -> int:
    ledger = trading().ledger()
    journal = ledger.journal()
    account = account_view(ledger)
    figures = summary(journal, account=account)
    lines = journal_lines(figures, account)
    shown = journal.tail(args.last)
    if len(journal):
        lines.append(listing_line(len(shown), len(journal)))
    for row in shown.itertuples(index=False):
        lines.append(
            f"  {pd_date(row.entry_session)} -> {pd_date(row.exit_session)} {row.ticker:6} "
            f"{row.structure:9} {row.track:8} P/L {row.pnl:+8.2f} yield "
            f"{row.yield_per_1000:+5.0f} {row.exit_reason}" + (" GHOST" if row.ghost else "")
        )
    emit({**figures, "trades": journal.to_dict(orient="records")}, args.json, lines)
    return EXIT_OK


def listing_line(shown: int, total: int) -> str:
    """What the list below shows: all the closed trades, or the last ``shown`` of them."""
    if shown >= total:
        return f"all {total} closed trades, oldest exit first:"
    return f"showing the last {shown} of {total} closed trades (--last N for more), oldest first:"
