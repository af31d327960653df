"""The paper broker: combo limit orders filled against a session's chain, deterministically.

Fill model (docs/operations.md): an order is judged against the closing quotes of the
session it was placed for — the session after the one its decision was made on, so no order
fills at a price its decision already saw. An order fills, in full and at its limit, when
its limit reaches the price the cost model expects a combo to fill at
(``core.options.costs.fill_price``: ``mid + slippage × (natural − mid)`` for a BUY, ``mid −
slippage × (mid − natural)`` for a SELL, on the cent tick toward a fill, ``natural`` being
the side that crosses every leg's spread) — the same function that prices the planner's
limits, the scan's candidates and the outcomes the models learn from. It is judged again at
every new limit (``modify``: the executor's repricing ladder, ``core.trading.order_policy``),
so an order fills at the first rung that reaches that price. An order still short of it
keeps working until the session's close (by the broker's clock), then expires unfilled.
Until that session's quotes exist (paper trading during the day, before the close
snapshot), the order is working. Commissions are IB tiered: $0.65 per contract, $1 minimum
per order.

Its state (orders, executions) lives in its own DuckDB file, apart from the ledger, so a
rerun sees the same orders and fills — and so reconciliation has a real counterpart that can
disagree with the ledger.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import (
    BUY,
    Account,
    BrokerOrder,
    BrokerPosition,
    ComboOrder,
    ComboQuote,
    Execution,
    OrderRejected,
)
from butterquant_dagster.core.options import costs
from butterquant_dagster.core.options.money import order_fee
from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.trading.combos import (
    MissingQuote,
    combo_quote,
    legs_from_json,
    legs_to_json,
)
from butterquant_dagster.core.trading.rows import in_list, insert
from butterquant_dagster.core.trading.vocabulary import WORKING_STATUSES, OrderStatus

PAPER_ACCOUNT = "PAPER"
STATE = """
CREATE TABLE IF NOT EXISTS orders (
    order_ref VARCHAR PRIMARY KEY, broker_order_id VARCHAR, session DATE, symbol VARCHAR,
    structure VARCHAR, action VARCHAR, quantity INTEGER, limit_price DOUBLE, legs VARCHAR,
    status VARCHAR, filled INTEGER, avg_fill_price DOUBLE, reason VARCHAR, placed_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS executions (
    exec_id VARCHAR PRIMARY KEY, order_ref VARCHAR, broker_order_id VARCHAR, symbol VARCHAR,
    action VARCHAR, quantity INTEGER, price DOUBLE, commission DOUBLE, time TIMESTAMP,
    legs VARCHAR
);
"""

ChainSource = Callable[[dt.date], pd.DataFrame | None]
# Still working: ``{_WORKING_SQL}`` with the parameters ``*_WORKING``.
_WORKING_IN, _WORKING = in_list(WORKING_STATUSES)
_WORKING_SQL = f"status IN {_WORKING_IN}"


class PaperBroker:
    name = "paper"

    def __init__(
        self,
        path: str | Path,
        chains: ChainSource,
        clock: Callable[[], dt.datetime],
        slippage: float = costs.FILL_SHARE,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._chains = chains
        self._clock = clock
        self.slippage = slippage
        with self._connect() as con:
            con.execute(STATE)

    @contextmanager
    def _connect(self):
        con = duckdb_files.connect(self.path)
        try:
            yield con
        finally:
            con.close()

    # the Broker protocol ---------------------------------------------------------------------

    def __enter__(self) -> PaperBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing held: every call opens and closes its own connection to the state file."""

    def account(self) -> Account:
        return Account(account_id=PAPER_ACCOUNT, paper=True)

    def place_combo(self, order: ComboOrder) -> BrokerOrder:
        """Accept the order (once per ``order_ref``: a resend returns the first one)."""
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            row = con.execute(
                "SELECT order_ref FROM orders WHERE order_ref = ?", [order.order_ref]
            ).fetchone()
            if row is None:
                (count,) = con.execute("SELECT COUNT(*) FROM orders").fetchone()
                status, reason = OrderStatus.SUBMITTED, ""
                if math.isfinite(order.limit_price) and not _on_tick(order.limit_price):
                    status = OrderStatus.REJECTED
                    reason = f"limit {order.limit_price} is not on the tick"
                elif not math.isfinite(order.limit_price):
                    status, reason = OrderStatus.REJECTED, "combos are sent as limit orders only"
                elif order.quantity <= 0:
                    status = OrderStatus.REJECTED
                    reason = f"quantity {order.quantity} is not positive"
                insert(
                    con,
                    "orders",
                    {
                        "order_ref": order.order_ref,
                        "broker_order_id": f"P{count + 1}",
                        "session": order.session,
                        "symbol": order.symbol,
                        "structure": order.structure,
                        "action": order.action,
                        "quantity": order.quantity,
                        "limit_price": order.limit_price,
                        "legs": legs_to_json(order.legs),
                        "status": status,
                        "filled": 0,
                        "avg_fill_price": None,
                        "reason": reason,
                        "placed_at": self._clock().astimezone(dt.UTC).replace(tzinfo=None),
                    },
                )
            con.execute("COMMIT")
        self._work()
        return self._order(order.order_ref)

    def cancel(self, order_ref: str) -> BrokerOrder:
        self._work()
        with self._connect() as con:
            con.execute(
                "UPDATE orders SET status = ?, reason = 'cancelled on request' "
                f"WHERE order_ref = ? AND {_WORKING_SQL}",
                [OrderStatus.CANCELLED.value, order_ref, *_WORKING],
            )
        return self._order(order_ref)

    def modify(self, order_ref: str, limit_price: float) -> BrokerOrder:
        """Move a working order's limit and judge it again; a done order stays as it is."""
        self._work()
        if not math.isfinite(limit_price) or not _on_tick(limit_price):
            raise OrderRejected(f"{order_ref}: limit {limit_price} is not a price on the tick")
        with self._connect() as con:
            con.execute(
                f"UPDATE orders SET limit_price = ? WHERE order_ref = ? AND {_WORKING_SQL}",
                [limit_price, order_ref, *_WORKING],
            )
        self._work()
        return self._order(order_ref)

    def quote(self, order: ComboOrder) -> ComboQuote | None:
        """The session's quote the order is judged against, once it exists."""
        chain = self._chains(order.session)
        if chain is None:
            return None
        try:
            quote = combo_quote(chain, order.legs)
        except MissingQuote:
            return None
        return ComboQuote(quote["mid"], quote["low"], quote["high"])

    def orders(self) -> list[BrokerOrder]:
        """Today's orders and any still working, as a broker lists them."""
        self._work()
        today = self._clock().astimezone(calendar.EXCHANGE_TZ).date()
        return self._orders(f"session >= ? OR {_WORKING_SQL}", [today, *_WORKING])

    def open_orders(self) -> list[BrokerOrder]:
        return [o for o in self.orders() if o.status in WORKING_STATUSES]

    def executions(self, since: dt.datetime) -> list[Execution]:
        self._work()
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM executions WHERE time >= ? ORDER BY time, exec_id",
                [since.astimezone(dt.UTC).replace(tzinfo=None)],
            ).fetchall()
        return [
            Execution(
                exec_id=r[0],
                order_ref=r[1],
                broker_order_id=r[2],
                symbol=r[3],
                action=r[4],
                quantity=int(r[5]),
                price=float(r[6]),
                commission=float(r[7]),
                time=r[8].replace(tzinfo=dt.UTC),
                legs=legs_from_json(r[3], r[9]),
            )
            for r in rows
        ]

    def positions(self) -> list[BrokerPosition]:
        """Net contracts per option from every execution; expired contracts are gone."""
        today = self._clock().astimezone(calendar.EXCHANGE_TZ).date()
        net: dict[str, int] = {}
        for execution in self.executions(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)):
            sign = 1 if execution.action == BUY else -1
            for leg in execution.legs:
                if leg.expiry < today:
                    continue
                key = leg.contract_key
                net[key] = net.get(key, 0) + sign * execution.quantity * leg.signed_ratio
        return [BrokerPosition(k, v) for k, v in sorted(net.items()) if v]

    # the fill model --------------------------------------------------------------------------

    def _work(self) -> None:
        """Judge every working order whose session's quotes now exist: fill or expire."""
        with self._connect() as con:
            working = con.execute(
                "SELECT order_ref, broker_order_id, session, symbol, action, quantity, "
                "limit_price, legs, placed_at FROM orders WHERE status = ? "
                "ORDER BY placed_at, order_ref",
                [OrderStatus.SUBMITTED.value],
            ).fetchall()
        for ref, broker_id, session, symbol, action, quantity, limit, legs_text, placed in working:
            chain = self._chains(session)
            if chain is None:
                continue
            legs = legs_from_json(symbol, legs_text)
            try:
                quote = combo_quote(chain, legs)
            except MissingQuote as exc:
                self._finish(ref, OrderStatus.CANCELLED, f"DAY order expired: {exc}")
                continue
            if self.fills_at(action, limit, quote):
                contracts = quantity * sum(leg.ratio for leg in legs)
                when = max(placed.replace(tzinfo=dt.UTC), _decision_floor(session))
                self._fill(
                    ref, broker_id, symbol, action, quantity, limit, contracts, when, legs_text
                )
            elif self._clock() >= calendar.session_close(session):
                threshold = self.threshold(action, quote)
                self._finish(
                    ref,
                    OrderStatus.CANCELLED,
                    f"DAY order expired unfilled: limit {limit:.2f} vs fill threshold "
                    f"{threshold:.2f} (mid {quote['mid']:.2f})",
                )

    def threshold(self, action: str, quote: dict) -> float:
        """The price an order of ``action`` must reach to fill against ``quote``."""
        return costs.fill_price(action, quote["mid"], quote["low"], quote["high"], self.slippage)

    def fills_at(self, action: str, limit: float, quote: dict) -> bool:
        return costs.fills(action, limit, quote["mid"], quote["low"], quote["high"], self.slippage)

    def _fill(self, ref, broker_id, symbol, action, quantity, price, contracts, when, legs_text):
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            insert(
                con,
                "executions",
                {
                    "exec_id": f"{broker_id}.1",
                    "order_ref": ref,
                    "broker_order_id": broker_id,
                    "symbol": symbol,
                    "action": action,
                    "quantity": quantity,
                    "price": price,
                    "commission": float(order_fee(contracts)),
                    "time": when.astimezone(dt.UTC).replace(tzinfo=None),
                    "legs": legs_text,
                },
                on_conflict="ON CONFLICT DO NOTHING",
            )
            con.execute(
                "UPDATE orders SET status = ?, filled = quantity, avg_fill_price = ? "
                "WHERE order_ref = ?",
                [OrderStatus.FILLED.value, price, ref],
            )
            con.execute("COMMIT")

    def _finish(self, ref: str, status: OrderStatus, reason: str) -> None:
        with self._connect() as con:
            con.execute(
                "UPDATE orders SET status = ?, reason = ? WHERE order_ref = ?",
                [status.value, reason, ref],
            )

    def _order(self, order_ref: str) -> BrokerOrder:
        return self._orders("order_ref = ?", [order_ref])[0]

    def _orders(self, where: str, params: list) -> list[BrokerOrder]:
        with self._connect() as con:
            rows = con.execute(
                "SELECT order_ref, broker_order_id, symbol, action, quantity, limit_price, status, "
                f"filled, avg_fill_price, reason, legs FROM orders WHERE {where} "
                "ORDER BY placed_at, order_ref",
                params,
            ).fetchall()
        return [
            BrokerOrder(
                order_ref=r[0],
                broker_order_id=r[1],
                symbol=r[2],
                action=r[3],
                quantity=int(r[4]),
                limit_price=float(r[5]),
                status=r[6],
                filled=int(r[7]),
                avg_fill_price=float(r[8] or 0.0),
                reason=r[9] or "",
                legs=legs_from_json(r[2], r[10]),
            )
            for r in rows
        ]


def _on_tick(price: float) -> bool:
    return abs(round(price / costs.COMBO_TICK) * costs.COMBO_TICK - price) <= 1e-9


def _decision_floor(session: dt.date) -> dt.datetime:
    """A replayed order fills no earlier than its session's close."""
    return calendar.session_close(session).astimezone(dt.UTC) - dt.timedelta(minutes=1)
