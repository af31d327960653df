"""The account in one place: its value, cash, realized and unrealized P/L and drawdown.

Every place that shows the account - ``butterquant positions``, ``butterquant journal``, the
daily, weekly and monthly reports and their Dagster metadata - takes these figures from
:func:`account_view` and the curve from :func:`equity_curve`, so they agree to the cent on
the same session. They are read from the ledger, whose positions and cash are sums over its
events, and from the close of each session that ``marking.close_session`` recorded (the
marks of the positions held and the account's value, written in one transaction).

The figures, each as of one marked close (``as_of``):

- ``cash``: the opening capital plus every cash flow of the ledger's events (premiums paid
  and received, fees, settlements) up to that close;
- ``positions_value``: the open positions at their marks (at mid; a position without a mark
  at its last mark, else at its entry price);
- ``account_value`` = ``cash`` + ``positions_value``;
- ``total_pnl`` = ``account_value`` - the opening capital = ``realized_pnl`` +
  ``unrealized_pnl``;
- ``realized_pnl``: the P/L after fees of the closed trades (the journal) up to that close;
- ``unrealized_pnl``: the rest - the open positions' marked value minus what they cost, fees
  included (a partly closed position's proceeds count here until it is closed);
- ``max_drawdown``: the largest fall of the account value from a running peak, on the curve
  that starts from the opening capital, so a fall on the first marked session counts.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring.metrics import max_drawdown
from butterquant_dagster.core.trading.ledger import Ledger

CENT = 0.005  # two dollar figures closer than this print the same


def dollars(value: float | None) -> str:
    """``-$1,234.50`` / ``$1,234.50`` (the reports' format), "not enough data" for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "not enough data"
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def signed_dollars(value: float | None) -> str:
    """``-$1,234.50`` / ``+$1,234.50``: a P/L, whose sign is the point."""
    text = dollars(value)
    return text if value is None or text.startswith(("-", "not")) else f"+{text}"


def equity_curve(ledger: Ledger, through: dt.date | None = None) -> pd.DataFrame:
    """The account's value at each marked close up to ``through`` (all of them if None):
    session, cash, positions_value, equity, open_positions, capital_at_risk.

    The curve starts the session before the first marked close with the ledger's opening
    capital (nothing held), so the first session's fees and marks count in its P/L, its
    return and the drawdown like any other's. Empty when no session was marked.
    """
    equity = ledger.equity()
    if len(equity):
        equity = (
            equity.loc[pd.to_datetime(equity["session"]).dt.date <= through] if through else equity
        )
    if not len(equity):
        return equity.reset_index(drop=True)
    first = pd.Timestamp(equity["session"].min()).date()
    opening = {column: 0.0 for column in equity.columns}
    opening |= {
        "session": pd.Timestamp(calendar.previous_session(first)),
        "cash": ledger.initial_capital,
        "equity": ledger.initial_capital,
        "open_positions": 0,
    }
    curve = pd.concat([pd.DataFrame([opening]), equity], ignore_index=True)
    curve["session"] = pd.to_datetime(curve["session"])
    return curve.sort_values("session").reset_index(drop=True)


@dataclass(frozen=True)
class AccountView:
    """The account as of the close of ``as_of`` (None: no session was marked yet).

    Figures that cannot be known are ``None`` (open positions never marked have no value),
    never a made-up number; ``notes`` say why, and what is not counted yet.
    """

    as_of: dt.date | None
    initial_capital: float
    cash: float
    positions_value: float | None
    account_value: float | None
    realized_pnl: float
    unrealized_pnl: float | None
    total_pnl: float | None
    max_drawdown: float | None
    open_positions: int
    capital_at_risk: float | None
    closed_trades: int
    cash_now: float  # every recorded event counted, also those after ``as_of``'s close
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Plain JSON values (``as_of`` as an ISO date)."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        out["notes"] = list(self.notes)
        return out

    def lines(self) -> list[str]:
        """The account for a terminal, every figure named for what it is."""
        when = f"at the close of {self.as_of}" if self.as_of else "(no session marked yet)"
        lines = [
            f"account {when}: value {dollars(self.account_value)} = cash "
            f"{dollars(self.cash)} + open positions {dollars(self.positions_value)} (marked)",
            f"  P/L since the start ({dollars(self.initial_capital)}): total "
            f"{signed_dollars(self.total_pnl)} = realized {signed_dollars(self.realized_pnl)} "
            f"(closed trades) + unrealized {signed_dollars(self.unrealized_pnl)} "
            "(open positions)"
            + (f"; max drawdown {self.max_drawdown:.2%}" if self.max_drawdown is not None else ""),
        ]
        return lines + [f"  note: {note}" for note in self.notes]


def account_view(ledger: Ledger, session: dt.date | None = None) -> AccountView:
    """The account at the close of ``session`` (None: the latest), or of the latest marked
    session before it when ``session`` itself is not marked yet (a note says so)."""
    curve = equity_curve(ledger, session)
    initial = ledger.initial_capital
    notes: list[str] = []
    events_through = session if session is not None else dt.date.max
    if len(curve) < 2:
        journal = ledger.journal(through=session)
        realized = float(journal["pnl"].sum()) if len(journal) else 0.0
        held = _held(ledger, events_through)
        cash = ledger.cash_balance(through=session)
        value = None if held else cash
        if held:
            notes.append(
                f"{held} open position(s) never marked: the account has no value until a "
                "session's positions step marks them at its close"
            )
        return AccountView(
            as_of=None,
            initial_capital=initial,
            cash=cash,
            positions_value=None if held else 0.0,
            account_value=value,
            realized_pnl=realized,
            unrealized_pnl=None if value is None else value - initial - realized,
            total_pnl=None if value is None else value - initial,
            max_drawdown=None,
            open_positions=held,
            capital_at_risk=None if held else 0.0,
            closed_trades=len(journal),
            cash_now=cash,
            notes=tuple(notes),
        )
    last = curve.iloc[-1]
    as_of = pd.Timestamp(last["session"]).date()
    journal = ledger.journal(through=as_of)
    realized = float(journal["pnl"].sum()) if len(journal) else 0.0
    account_value = float(last["equity"])
    total = account_value - initial
    if session is not None and as_of < session:
        notes.append(
            f"the account was last marked at the close of {as_of}, not {session}: its "
            "positions are marked after the session's close"
        )
    cash = float(last["cash"])
    recorded = ledger.cash_balance(through=as_of)
    if abs(recorded - cash) >= CENT:
        notes.append(
            f"the ledger's cash through {as_of} is {dollars(recorded)}, not the "
            f"{dollars(cash)} its close recorded: an event of {as_of} was recorded after it "
            f"was marked; run the positions step of {as_of} again to re-mark it"
        )
    later = _events_after(ledger, as_of, events_through)
    if later:
        notes.append(
            f"{later} ledger event(s) after the close of {as_of} (fills or settlements) are "
            "not in these figures until their session is marked"
        )
    return AccountView(
        as_of=as_of,
        initial_capital=initial,
        cash=cash,
        positions_value=float(last["positions_value"]),
        account_value=account_value,
        realized_pnl=realized,
        unrealized_pnl=total - realized,
        total_pnl=total,
        max_drawdown=max_drawdown(curve["equity"]),
        open_positions=int(last["open_positions"]),
        capital_at_risk=float(last["capital_at_risk"]),
        closed_trades=len(journal),
        cash_now=ledger.cash_balance(through=session),
        notes=tuple(notes),
    )


def _held(ledger: Ledger, through: dt.date) -> int:
    """Positions open after the events up to ``through``."""
    rows = ledger.query(
        "SELECT position_id FROM position_events WHERE session <= ? GROUP BY 1 "
        "HAVING SUM(quantity_change) <> 0",
        [through],
    )
    return len(rows)


def _events_after(ledger: Ledger, after: dt.date, through: dt.date) -> int:
    rows = ledger.query(
        "SELECT COUNT(*) AS n FROM position_events WHERE session > ? AND session <= ?",
        [after, through],
    )
    return int(rows["n"].iat[0])


HELD = "held"  # held at the close the account values
OPENED_SINCE = "opened since"  # opened after that close: not marked yet
CLOSED_SINCE = "closed since"  # held at that close, closed after it


def position_marks(
    ledger: Ledger, view: AccountView, through: dt.date | None = None
) -> pd.DataFrame:
    """The positions behind ``view``: those held at its close with their marks there, and
    those opened or closed after it (up to ``through``), each with a ``status``.

    ``unrealized_pnl`` of a held position is its marked value minus what it cost, fees
    included (its net cash flows up to the close), so the held rows add up to the view's
    ``unrealized_pnl``; a position opened since has none yet.
    """
    as_of = view.as_of or dt.date.min
    rows = ledger.query(
        """
        WITH flows AS (
            SELECT position_id,
                   COALESCE(SUM(quantity_change) FILTER (WHERE session <= ?), 0) AS at_close,
                   COALESCE(SUM(cash_flow) FILTER (WHERE session <= ?), 0) AS flows_at_close,
                   COALESCE(SUM(quantity_change) FILTER (WHERE session <= ?), 0) AS now
            FROM position_events GROUP BY 1
        )
        SELECT s.position_id, s.ticker, s.structure, s.track, s.expiry, s.lower, s.center,
               s.upper, s.entry_session, s.entry_price, s.max_loss,
               CAST(f.at_close AS INTEGER) AS quantity, CAST(f.now AS INTEGER) AS quantity_now,
               f.flows_at_close, m.session AS marked_on, m.mark, m.market_value
        FROM flows f JOIN position_state s USING (position_id)
        LEFT JOIN marks m ON m.position_id = f.position_id AND m.session = ?
        WHERE f.at_close <> 0 OR f.now <> 0
        ORDER BY s.entry_session, s.position_id
        """,
        [as_of, as_of, through or dt.date.max, as_of],
    )
    held = rows["quantity"] != 0
    rows["status"] = HELD
    rows.loc[~held, "status"] = OPENED_SINCE
    rows.loc[held & (rows["quantity_now"] == 0), "status"] = CLOSED_SINCE
    rows["unrealized_pnl"] = (rows["market_value"] + rows["flows_at_close"]).where(held)
    return rows.drop(columns=["flows_at_close"])
