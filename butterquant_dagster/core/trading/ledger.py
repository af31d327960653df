"""The trading ledger: orders, fills, positions and cash in one DuckDB file.

It is the system of record for the journal, so every change is one transaction (an order and
its status, a fill with the position and cash it moves) and a crash at any point leaves
either the whole change or none of it. Positions are not a running balance that could drift:
their quantity and cash are sums over ``position_events``, each of which points at the fill
(or settlement) that caused it, and a fill is recorded at most once (its ``exec_id`` is the
key), so replaying the broker's executions can never double a trade.

Only the trading steps write here (serialized by the Dagster pool "ledger"); everything else
reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

from butterquant_dagster.core.brokers.base import BUY, BrokerOrder, Execution
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER
from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.trading.combos import legs_from_json, legs_to_json, structure_of
from butterquant_dagster.core.trading.rows import bindable, in_list, insert
from butterquant_dagster.core.trading.vocabulary import (
    UNSENT_STATUSES,
    WORKING_STATUSES,
    Intent,
    OrderStatus,
    Origin,
    Structure,
    Track,
    choices,
)

# The comments naming a column's allowed values are generated from core.trading.vocabulary
# (and tested against it), so the schema cannot list fewer values than the code writes. No
# CHECK constraint: CREATE TABLE IF NOT EXISTS would give new ledgers one and leave every
# existing ledger without, and a restore (core.storage.backup) would refuse a backup holding
# a value added to an enum after the backup's code was written.
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS orders (
    order_ref VARCHAR PRIMARY KEY,
    session DATE NOT NULL,
    ticker VARCHAR NOT NULL,
    sector VARCHAR,
    structure VARCHAR NOT NULL,         -- {choices(Structure)}
    track VARCHAR NOT NULL,             -- {choices(Track)}
    intent VARCHAR NOT NULL,            -- {choices(Intent)}
    action VARCHAR NOT NULL,            -- BUY | SELL (of the combo)
    quantity INTEGER NOT NULL,
    limit_price DOUBLE,
    expiry DATE, lower DOUBLE, center DOUBLE, upper DOUBLE, width DOUBLE,
    legs VARCHAR NOT NULL,              -- JSON
    position_id VARCHAR,
    reason VARCHAR,
    model_version VARCHAR,
    ml_success_prob DOUBLE,
    max_profit DOUBLE, max_loss DOUBLE, risk_level VARCHAR, iv_center DOUBLE,
    status VARCHAR NOT NULL,            -- {choices(OrderStatus)}
    status_reason VARCHAR,
    broker_order_id VARCHAR,
    filled INTEGER NOT NULL DEFAULT 0,
    avg_fill_price DOUBLE,
    origin VARCHAR NOT NULL,            -- {choices(Origin)} (broker: found there, not ours)
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS order_limits (  -- every limit an order stood at, first to last
    order_ref VARCHAR NOT NULL,
    limit_price DOUBLE NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (order_ref, limit_price)
);
CREATE TABLE IF NOT EXISTS fills (
    exec_id VARCHAR PRIMARY KEY,
    order_ref VARCHAR NOT NULL,
    broker_order_id VARCHAR,
    session DATE NOT NULL,
    ticker VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    quantity INTEGER NOT NULL,
    price DOUBLE NOT NULL,
    commission DOUBLE NOT NULL,
    time TIMESTAMP NOT NULL,
    ghost BOOLEAN NOT NULL,             -- an execution we never sent
    recorded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    position_id VARCHAR PRIMARY KEY,
    ticker VARCHAR NOT NULL,
    sector VARCHAR,
    structure VARCHAR NOT NULL,         -- {choices(Structure)}
    track VARCHAR NOT NULL,             -- {choices(Track)}
    expiry DATE NOT NULL, lower DOUBLE, center DOUBLE, upper DOUBLE, width DOUBLE,
    legs VARCHAR NOT NULL,
    entry_session DATE NOT NULL,
    max_profit DOUBLE, max_loss DOUBLE, risk_level VARCHAR,
    iv_center_entry DOUBLE,
    model_version VARCHAR,
    ml_success_prob DOUBLE,
    ghost BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS position_events (
    event_id VARCHAR PRIMARY KEY,       -- the exec_id, or settle:<position>:<session>
    position_id VARCHAR NOT NULL,
    session DATE NOT NULL,
    kind VARCHAR NOT NULL,              -- {choices(Intent)}
    quantity_change INTEGER NOT NULL,   -- combos, signed
    price DOUBLE NOT NULL,              -- per share of one combo
    fees DOUBLE NOT NULL,
    cash_flow DOUBLE NOT NULL,          -- dollars, fees included
    reason VARCHAR
);
CREATE TABLE IF NOT EXISTS marks (
    session DATE NOT NULL,
    position_id VARCHAR NOT NULL,
    quantity INTEGER NOT NULL,
    mark DOUBLE, natural_low DOUBLE, natural_high DOUBLE, iv_center DOUBLE, spot DOUBLE,
    market_value DOUBLE, unrealized_pnl DOUBLE,
    PRIMARY KEY (session, position_id)
);
CREATE TABLE IF NOT EXISTS equity (
    session DATE PRIMARY KEY,
    cash DOUBLE NOT NULL,
    positions_value DOUBLE NOT NULL,
    equity DOUBLE NOT NULL,
    open_positions INTEGER NOT NULL,
    capital_at_risk DOUBLE NOT NULL
);
CREATE OR REPLACE VIEW position_state AS
SELECT p.*,
       CAST(COALESCE(SUM(e.quantity_change), 0) AS INTEGER) AS quantity,
       COALESCE(SUM(e.cash_flow), 0) AS cash_flow,
       COALESCE(SUM(e.fees), 0) AS fees,
       MAX(e.session) FILTER (WHERE e.kind <> '{Intent.OPEN}') AS exit_session,
       arg_max(e.reason, e.session) FILTER (WHERE e.kind <> '{Intent.OPEN}') AS exit_reason,
       SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind = '{Intent.OPEN}')
         / NULLIF(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = '{Intent.OPEN}'), 0)
         AS entry_price,
       CAST(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = '{Intent.OPEN}') AS INTEGER)
         AS opened_quantity,
       SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind <> '{Intent.OPEN}')
         / NULLIF(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind <> '{Intent.OPEN}'), 0)
         AS exit_price
FROM positions p LEFT JOIN position_events e USING (position_id)
GROUP BY ALL;
CREATE OR REPLACE VIEW trade_journal AS
SELECT position_id, ticker, sector, structure, track, entry_session, exit_session,
       opened_quantity AS quantity, entry_price, exit_price, fees,
       cash_flow AS pnl,
       max_loss * opened_quantity * 100 AS capital_at_risk,
       cash_flow / NULLIF(max_loss * opened_quantity * 100, 0) AS roi,
       1000 * cash_flow / NULLIF(max_loss * opened_quantity * 100, 0) AS yield_per_1000,
       date_diff('day', entry_session, exit_session) AS days_held,
       exit_reason, model_version, ml_success_prob, ghost, cash_flow > 0 AS won
FROM position_state
WHERE quantity = 0 AND exit_session IS NOT NULL
ORDER BY exit_session, position_id;
CREATE OR REPLACE VIEW cash AS
SELECT session, kind, position_id, event_id, cash_flow AS amount FROM position_events;
"""

# The columns of ``orders`` an intended order (a planner target) fills, by the same names.
ORDER_FIELDS = [
    "order_ref",
    "session",
    "ticker",
    "sector",
    "structure",
    "track",
    "intent",
    "action",
    "quantity",
    "limit_price",
    "expiry",
    "lower",
    "center",
    "upper",
    "width",
    "legs",
    "position_id",
    "reason",
    "model_version",
    "ml_success_prob",
    "max_profit",
    "max_loss",
    "risk_level",
    "iv_center",
]


# An equity row: the session's account value, as record_marks receives it.
EQUITY_FIELDS = ("cash", "positions_value", "equity", "open_positions", "capital_at_risk")
# The statuses of a close that ended (or may end) without filling its position: the planner
# sends it again (unfilled_exits). Every status but planned (not yet sent) and filled.
UNFILLED_EXIT_STATUSES = frozenset(
    {
        OrderStatus.CANCELLED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.MISSING_AT_BROKER,
        OrderStatus.BLOCKED,
        OrderStatus.SUBMITTED,
        OrderStatus.PARTIALLY_FILLED,
    }
)


class LedgerError(RuntimeError):
    """A change the ledger refuses because it would make it inconsistent."""


def ledger_ref(order_ref: str, broker_order_id: str) -> str:
    """The ledger's key of a broker order: its ``order_ref``, or, for an order placed without
    one (by hand in TWS), one made from the broker's order id, so two such orders never share
    a row (or a position)."""
    return order_ref or f"broker-{broker_order_id}"


def _record_limit(con, order_ref: str, limit_price: float, at: dt.datetime) -> None:
    """Keep the order's repricing trail: each limit once, when the ledger first saw it."""
    if limit_price is not None and limit_price == limit_price:  # not NaN
        insert(
            con,
            "order_limits",
            {"order_ref": order_ref, "limit_price": float(limit_price), "recorded_at": at},
            on_conflict="ON CONFLICT DO NOTHING",
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Ledger:
    def __init__(self, path: str | Path, initial_capital: float = 100_000.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(SCHEMA)
            insert(
                con,
                "ledger_meta",
                {"key": "initial_capital", "value": str(float(initial_capital))},
                on_conflict="ON CONFLICT DO NOTHING",
            )

    @contextmanager
    def _connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb_files.connect(self.path)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: the block's writes commit together or not at all."""
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self._connect() as con:
            return con.execute(sql, params or []).df()

    @property
    def initial_capital(self) -> float:
        return float(
            self.query("SELECT value FROM ledger_meta WHERE key='initial_capital'").iat[0, 0]
        )

    # orders ---------------------------------------------------------------------------------

    def order(self, order_ref: str) -> dict | None:
        rows = self.query("SELECT * FROM orders WHERE order_ref = ?", [order_ref])
        return rows.iloc[0].to_dict() if len(rows) else None

    def orders(self, session: dt.date | None = None) -> pd.DataFrame:
        if session is None:
            return self.query("SELECT * FROM orders ORDER BY session, created_at, order_ref")
        return self.query(
            "SELECT * FROM orders WHERE session = ? ORDER BY created_at, order_ref", [session]
        )

    def working_before(self, session: dt.date) -> pd.DataFrame:
        """Orders of sessions before ``session`` the ledger still sees working: the broker
        has ended them since (filled or expired) and the ledger has not heard yet."""
        working, statuses = in_list(WORKING_STATUSES)
        return self.query(
            f"SELECT * FROM orders WHERE session < ? AND status IN {working} "
            "ORDER BY session, order_ref",
            [session, *statuses],
        )

    def record_intent(self, target: dict, status: OrderStatus, status_reason: str = "") -> None:
        """Write (or re-state) an intended order before anything is sent.

        A re-run may turn ``blocked`` into ``planned`` (a limit was lifted) or the reverse;
        an order that reached the broker is never rewritten here.
        """
        now = _now()
        with self.transaction() as con:
            existing = con.execute(
                "SELECT status FROM orders WHERE order_ref = ?", [target["order_ref"]]
            ).fetchone()
            if existing is None:
                row = {name: _plain(target.get(name)) for name in ORDER_FIELDS}
                row |= {
                    "status": status,
                    "status_reason": status_reason,
                    "origin": Origin.LOCAL,
                    "created_at": now,
                    "updated_at": now,
                }
                insert(con, "orders", row)
            elif existing[0] in UNSENT_STATUSES:
                con.execute(
                    "UPDATE orders SET status = ?, status_reason = ?, updated_at = ? "
                    "WHERE order_ref = ?",
                    [bindable(status), status_reason, now, target["order_ref"]],
                )

    def record_broker_order(self, order: BrokerOrder, session: dt.date | None = None) -> bool:
        """Bring the ledger's copy of an order up to the broker's; returns True if it was new.

        An order the broker has and the ledger lacks (placed by someone else, or by us just
        before a crash with no intent recorded) is recorded with origin ``broker``.
        """
        now = _now()
        ref = ledger_ref(order.order_ref, order.broker_order_id)
        with self.transaction() as con:
            existing = con.execute(
                "SELECT status FROM orders WHERE order_ref = ?", [ref]
            ).fetchone()
            if existing is None:
                legs = order.legs
                insert(
                    con,
                    "orders",
                    {
                        "order_ref": ref,
                        "session": session or now.date(),
                        "ticker": order.symbol,
                        "structure": structure_of(legs) if legs else Structure.UNKNOWN,
                        "track": Track.EXTERNAL,
                        "intent": Intent.OPEN,
                        "action": order.action,
                        "quantity": order.quantity,
                        "limit_price": order.limit_price,
                        **_shape(legs, None),
                        "legs": legs_to_json(legs),
                        "position_id": ref,
                        "reason": "found at the broker, not placed by this ledger",
                        "status": order.status,
                        "status_reason": order.reason,
                        "broker_order_id": order.broker_order_id,
                        "filled": order.filled,
                        "avg_fill_price": order.avg_fill_price,
                        "origin": Origin.BROKER,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
                _record_limit(con, ref, order.limit_price, now)
                return True
            con.execute(
                "UPDATE orders SET status = ?, status_reason = ?, broker_order_id = ?, "
                "limit_price = ?, updated_at = ? WHERE order_ref = ?",
                [
                    bindable(order.status),
                    order.reason,
                    order.broker_order_id,
                    order.limit_price,
                    now,
                    ref,
                ],
            )
            _record_limit(con, ref, order.limit_price, now)
            return False

    def mark_missing(
        self, order_ref: str, reason: str, status: OrderStatus = OrderStatus.MISSING_AT_BROKER
    ) -> None:
        """An order of ours the broker does not list: ``missing_at_broker`` (a disagreement)
        or ``expired`` (a DAY order of an earlier session the broker has forgotten)."""
        with self.transaction() as con:
            con.execute(
                "UPDATE orders SET status = ?, status_reason = ?, updated_at = ? "
                "WHERE order_ref = ?",
                [bindable(status), reason, _now(), order_ref],
            )

    # fills ----------------------------------------------------------------------------------

    def has_fill(self, exec_id: str) -> bool:
        return bool(len(self.query("SELECT 1 FROM fills WHERE exec_id = ?", [exec_id])))

    def record_execution(self, execution: Execution, session: dt.date) -> bool:
        """Record one execution with the position and cash it moves; False if already known.

        An execution of an order the ledger did not place is a *ghost fill*: recorded,
        flagged, and given a position of its own (track ``external``) so it shows in the
        journal rather than vanishing.
        """
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM fills WHERE exec_id = ?", [execution.exec_id]).fetchone():
                return False
            ref = ledger_ref(execution.order_ref, execution.broker_order_id)
            order = _one(con, "SELECT * FROM orders WHERE order_ref = ?", [ref])
            ghost = order is None or order["origin"] != Origin.LOCAL
            if order is None:
                order = _ghost_order(con, execution, session)
            insert(
                con,
                "fills",
                {
                    "exec_id": execution.exec_id,
                    "order_ref": order["order_ref"],
                    "broker_order_id": execution.broker_order_id,
                    "session": session,
                    "ticker": execution.symbol,
                    "action": execution.action,
                    "quantity": execution.quantity,
                    "price": execution.price,
                    "commission": execution.commission,
                    "time": execution.time.astimezone(dt.UTC).replace(tzinfo=None),
                    "ghost": ghost,
                    "recorded_at": _now(),
                },
            )
            _apply_fill(con, order, execution, session, ghost)
            filled, value = con.execute(
                "SELECT SUM(quantity), SUM(quantity * price) FROM fills WHERE order_ref = ?",
                [order["order_ref"]],
            ).fetchone()
            status = (
                OrderStatus.FILLED if filled >= order["quantity"] else OrderStatus.PARTIALLY_FILLED
            )
            con.execute(
                "UPDATE orders SET filled = ?, avg_fill_price = ?, status = ?, updated_at = ?, "
                "broker_order_id = COALESCE(broker_order_id, ?) WHERE order_ref = ?",
                [
                    int(filled),
                    value / filled,
                    status.value,
                    _now(),
                    execution.broker_order_id,
                    order["order_ref"],
                ],
            )
            return True

    def fills(self, session: dt.date | None = None) -> pd.DataFrame:
        if session is None:
            return self.query("SELECT * FROM fills ORDER BY time, exec_id")
        return self.query("SELECT * FROM fills WHERE session = ? ORDER BY time, exec_id", [session])

    # positions ------------------------------------------------------------------------------

    def positions_at_start(self, session: dt.date) -> pd.DataFrame:
        """Positions open when ``session`` began: only events of earlier sessions count.

        Planning a session from this (not from the live state) is what makes a rerun plan the
        same orders after the session's own fills were recorded.
        """
        return self.query(
            f"""
            SELECT p.*, CAST(SUM(e.quantity_change) AS INTEGER) AS quantity,
                   SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind = '{Intent.OPEN}')
                     / SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = '{Intent.OPEN}')
                     AS entry_price
            FROM positions p JOIN position_events e USING (position_id)
            WHERE e.session < ?
            GROUP BY ALL
            HAVING SUM(e.quantity_change) <> 0
            ORDER BY p.entry_session, p.position_id
            """,
            [session],
        )

    def unfilled_exits(self, session: dt.date) -> pd.DataFrame:
        """Positions open when ``session`` began whose latest close, sent in an earlier
        session, ended without filling them: position_id, session, status, rule (the exit
        rule that sent it, the first word of its reason)."""
        unfilled, statuses = in_list(UNFILLED_EXIT_STATUSES)
        return self.query(
            f"""
            WITH latest AS (
                SELECT position_id, arg_max(order_ref, created_at) AS order_ref
                FROM orders
                WHERE intent = ? AND origin = ? AND session < ?
                GROUP BY position_id
            )
            SELECT o.position_id, o.session, o.status,
                   split_part(o.reason, ':', 1) AS rule
            FROM latest JOIN orders o USING (order_ref)
            WHERE o.status IN {unfilled}
            ORDER BY o.position_id
            """,
            [Intent.CLOSE.value, Origin.LOCAL.value, session, *statuses],
        ).merge(self.positions_at_start(session)[["position_id"]], on="position_id")

    def open_positions(self) -> pd.DataFrame:
        return self.query(
            "SELECT * FROM position_state WHERE quantity <> 0 ORDER BY entry_session, position_id"
        )

    def settle(self, position_id: str, session: dt.date, value: float, reason: str) -> bool:
        """Close what remains of a position at its value at expiry; False if nothing remains."""
        event_id = f"settle:{position_id}:{session.isoformat()}"
        with self.transaction() as con:
            if con.execute(
                "SELECT 1 FROM position_events WHERE event_id = ?", [event_id]
            ).fetchone():
                return False
            (quantity,) = con.execute(
                "SELECT COALESCE(SUM(quantity_change), 0) FROM position_events "
                "WHERE position_id = ?",
                [position_id],
            ).fetchone()
            if quantity == 0:
                return False
            insert(
                con,
                "position_events",
                {
                    "event_id": event_id,
                    "position_id": position_id,
                    "session": session,
                    "kind": Intent.SETTLE,
                    "quantity_change": -int(quantity),
                    "price": value,
                    "fees": 0,
                    "cash_flow": quantity * value * CONTRACT_MULTIPLIER,
                    "reason": reason,
                },
            )
            return True

    def record_marks(self, session: dt.date, marks: pd.DataFrame, equity: dict) -> None:
        """The session's marks of every open position and the account's value, replacing any
        earlier marks of the same session (a rerun re-marks)."""
        with self.transaction() as con:
            con.execute("DELETE FROM marks WHERE session = ?", [session])
            con.execute("DELETE FROM equity WHERE session = ?", [session])
            for row in marks.itertuples(index=False):
                insert(
                    con,
                    "marks",
                    {
                        "session": session,
                        "position_id": row.position_id,
                        "quantity": int(row.quantity),
                        "mark": _plain(row.mark),
                        "natural_low": _plain(row.low),
                        "natural_high": _plain(row.high),
                        "iv_center": _plain(row.iv_center),
                        "spot": _plain(row.spot),
                        "market_value": _plain(row.market_value),
                        "unrealized_pnl": _plain(row.unrealized_pnl),
                    },
                )
            insert(
                con,
                "equity",
                {
                    "session": session,
                    **{name: equity[name] for name in EQUITY_FIELDS},
                },
            )

    def cash_balance(self, through: dt.date | None = None) -> float:
        sql = "SELECT COALESCE(SUM(cash_flow), 0) FROM position_events"
        params: list = []
        if through is not None:
            sql += " WHERE session <= ?"
            params.append(through)
        with self._connect() as con:
            (flows,) = con.execute(sql, params).fetchone()
        return self.initial_capital + float(flows)

    def journal(self, through: dt.date | None = None) -> pd.DataFrame:
        if through is None:
            return self.query("SELECT * FROM trade_journal")
        return self.query("SELECT * FROM trade_journal WHERE exit_session <= ?", [through])

    def equity(self) -> pd.DataFrame:
        return self.query("SELECT * FROM equity ORDER BY session")

    def leg_positions(self, from_expiry: dt.date) -> dict[str, int]:
        """Net contracts per listed contract implied by the open positions (legs expiring on
        or after ``from_expiry``), to compare with what the broker holds."""
        net: dict[str, int] = {}
        for row in self.open_positions().itertuples(index=False):
            for leg in legs_from_json(row.ticker, row.legs):
                if leg.expiry < from_expiry:
                    continue
                net[leg.contract_key] = net.get(leg.contract_key, 0) + int(
                    row.quantity * leg.signed_ratio
                )
        return {k: v for k, v in net.items() if v}


def _plain(value):
    """DuckDB parameters from pandas/numpy values (NaN and NaT become NULL)."""
    if value is None:
        return None
    if isinstance(value, str):
        return bindable(value)  # a StrEnum member as its plain value
    if isinstance(value, pd.Timestamp):
        return value.date() if value == value.normalize() else value.to_pydatetime()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _one(con, sql: str, params: list) -> dict | None:
    cursor = con.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def _shape(legs: tuple, default_expiry: dt.date | None) -> dict:
    """Expiry, lower, center, upper and width of a combo known only by its legs, by the
    names of the ``orders`` columns they fill."""
    expiry = min((leg.expiry for leg in legs), default=default_expiry)
    strikes = sorted({leg.strike for leg in legs})
    lower, center, upper = strikes[:3] if len(strikes) >= 3 else (None,) * 3
    width = (upper - center) if upper is not None else None
    return {"expiry": expiry, "lower": lower, "center": center, "upper": upper, "width": width}


def _ghost_order(con, execution: Execution, session: dt.date) -> dict:
    """An order row for an execution whose order the ledger never saw."""
    ref = ledger_ref(execution.order_ref, execution.broker_order_id)
    now = _now()
    legs = execution.legs
    existing = _one(con, "SELECT * FROM orders WHERE order_ref = ?", [ref])
    if existing is not None:
        return existing
    insert(
        con,
        "orders",
        {
            "order_ref": ref,
            "session": session,
            "ticker": execution.symbol,
            "structure": structure_of(legs) if legs else Structure.UNKNOWN,
            "track": Track.EXTERNAL,
            "intent": Intent.OPEN,
            "action": execution.action,
            "quantity": execution.quantity,
            "limit_price": None,
            **_shape(legs, session),
            "legs": legs_to_json(legs),
            "position_id": ref,
            "reason": "ghost fill: an execution at the broker this system never sent",
            "status": OrderStatus.SUBMITTED,
            "broker_order_id": execution.broker_order_id,
            "filled": 0,
            "origin": Origin.BROKER,
            "created_at": now,
            "updated_at": now,
        },
    )
    return _one(con, "SELECT * FROM orders WHERE order_ref = ?", [ref])


def _apply_fill(con, order: dict, execution: Execution, session: dt.date, ghost: bool) -> None:
    """The position event and cash of one fill, in the caller's transaction."""
    sign = 1 if execution.action == BUY else -1
    cash_flow = -sign * execution.quantity * execution.price * CONTRACT_MULTIPLIER
    cash_flow -= execution.commission
    if order["intent"] == Intent.CLOSE:
        kind, position_id = Intent.CLOSE, order["position_id"]
        reason = (order.get("reason") or Intent.CLOSE.value).split(":")[0]
    else:
        kind, position_id = Intent.OPEN, order["position_id"] or order["order_ref"]
        reason = Intent.OPEN.value
        _ensure_position(con, order, position_id, session, ghost)
    if position_id is None:
        raise LedgerError(f"closing order {order['order_ref']} names no position")
    insert(
        con,
        "position_events",
        {
            "event_id": execution.exec_id,
            "position_id": position_id,
            "session": session,
            "kind": kind,
            "quantity_change": sign * execution.quantity,
            "price": execution.price,
            "fees": execution.commission,
            "cash_flow": cash_flow,
            "reason": reason,
        },
    )


def _ensure_position(con, order: dict, position_id: str, session: dt.date, ghost: bool) -> None:
    if con.execute("SELECT 1 FROM positions WHERE position_id = ?", [position_id]).fetchone():
        return
    copied = ("ticker", "sector", "structure", "track", "lower", "center", "upper", "width")
    insert(
        con,
        "positions",
        {
            "position_id": position_id,
            **{name: order.get(name) for name in copied},
            "expiry": order.get("expiry") or session,
            "legs": order["legs"],
            "entry_session": session,
            "max_profit": order.get("max_profit"),
            "max_loss": order.get("max_loss"),
            "risk_level": order.get("risk_level"),
            "iv_center_entry": order.get("iv_center"),
            "model_version": order.get("model_version"),
            "ml_success_prob": order.get("ml_success_prob"),
            "ghost": ghost,
        },
    )
