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

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS orders (
    order_ref VARCHAR PRIMARY KEY,
    session DATE NOT NULL,
    ticker VARCHAR NOT NULL,
    sector VARCHAR,
    structure VARCHAR NOT NULL,
    track VARCHAR NOT NULL,
    intent VARCHAR NOT NULL,            -- open | close | settle
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
    status VARCHAR NOT NULL,            -- blocked | planned | submitted | partially_filled
                                        -- | filled | cancelled | rejected | missing_at_broker
                                        -- | expired
    status_reason VARCHAR,
    broker_order_id VARCHAR,
    filled INTEGER NOT NULL DEFAULT 0,
    avg_fill_price DOUBLE,
    origin VARCHAR NOT NULL,            -- local | broker (found at the broker, not ours)
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
    structure VARCHAR NOT NULL,
    track VARCHAR NOT NULL,
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
    kind VARCHAR NOT NULL,              -- open | close | settle
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
       MAX(e.session) FILTER (WHERE e.kind <> 'open') AS exit_session,
       arg_max(e.reason, e.session) FILTER (WHERE e.kind <> 'open') AS exit_reason,
       SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind = 'open')
         / NULLIF(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = 'open'), 0) AS entry_price,
       CAST(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = 'open') AS INTEGER)
         AS opened_quantity,
       SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind <> 'open')
         / NULLIF(SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind <> 'open'), 0) AS exit_price
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
        con.execute(
            "INSERT INTO order_limits VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [order_ref, float(limit_price), at],
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Ledger:
    def __init__(self, path: str | Path, initial_capital: float = 100_000.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(SCHEMA)
            con.execute(
                "INSERT INTO ledger_meta VALUES ('initial_capital', ?) ON CONFLICT DO NOTHING",
                [str(float(initial_capital))],
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
        return self.query(
            "SELECT * FROM orders WHERE session < ? AND status IN ('submitted', "
            "'partially_filled') ORDER BY session, order_ref",
            [session],
        )

    def record_intent(self, target: dict, status: str, status_reason: str = "") -> None:
        """Write (or re-state) an intended order before anything is sent.

        A re-run may turn ``blocked`` into ``planned`` (a limit was lifted) or the reverse;
        an order that reached the broker is never rewritten here.
        """
        values = [_plain(target.get(name)) for name in ORDER_FIELDS]
        now = _now()
        with self.transaction() as con:
            existing = con.execute(
                "SELECT status FROM orders WHERE order_ref = ?", [target["order_ref"]]
            ).fetchone()
            if existing is None:
                con.execute(
                    f"INSERT INTO orders ({', '.join(ORDER_FIELDS)}, status, status_reason, "
                    "origin, created_at, updated_at) VALUES "
                    f"({', '.join('?' * len(ORDER_FIELDS))}, ?, ?, 'local', ?, ?)",
                    [*values, status, status_reason, now, now],
                )
            elif existing[0] in ("planned", "blocked"):
                con.execute(
                    "UPDATE orders SET status = ?, status_reason = ?, updated_at = ? "
                    "WHERE order_ref = ?",
                    [status, status_reason, now, target["order_ref"]],
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
                con.execute(
                    "INSERT INTO orders (order_ref, session, ticker, structure, track, intent, "
                    "action, quantity, limit_price, expiry, lower, center, upper, width, legs, "
                    "position_id, reason, status, status_reason, broker_order_id, filled, "
                    "avg_fill_price, origin, created_at, updated_at) VALUES "
                    "(?, ?, ?, ?, 'external', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "'broker', ?, ?)",
                    [
                        ref,
                        session or now.date(),
                        order.symbol,
                        structure_of(legs) if legs else "unknown",
                        "open",
                        order.action,
                        order.quantity,
                        order.limit_price,
                        *_shape(legs, None),
                        legs_to_json(legs),
                        ref,
                        "found at the broker, not placed by this ledger",
                        order.status,
                        order.reason,
                        order.broker_order_id,
                        order.filled,
                        order.avg_fill_price,
                        now,
                        now,
                    ],
                )
                _record_limit(con, ref, order.limit_price, now)
                return True
            con.execute(
                "UPDATE orders SET status = ?, status_reason = ?, broker_order_id = ?, "
                "limit_price = ?, updated_at = ? WHERE order_ref = ?",
                [order.status, order.reason, order.broker_order_id, order.limit_price, now, ref],
            )
            _record_limit(con, ref, order.limit_price, now)
            return False

    def mark_missing(self, order_ref: str, reason: str, status: str = "missing_at_broker") -> None:
        """An order of ours the broker does not list: ``missing_at_broker`` (a disagreement)
        or ``expired`` (a DAY order of an earlier session the broker has forgotten)."""
        with self.transaction() as con:
            con.execute(
                "UPDATE orders SET status = ?, status_reason = ?, updated_at = ? "
                "WHERE order_ref = ?",
                [status, reason, _now(), order_ref],
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
            ghost = order is None or order["origin"] != "local"
            if order is None:
                order = _ghost_order(con, execution, session)
            con.execute(
                "INSERT INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    execution.exec_id,
                    order["order_ref"],
                    execution.broker_order_id,
                    session,
                    execution.symbol,
                    execution.action,
                    execution.quantity,
                    execution.price,
                    execution.commission,
                    execution.time.astimezone(dt.UTC).replace(tzinfo=None),
                    ghost,
                    _now(),
                ],
            )
            _apply_fill(con, order, execution, session, ghost)
            filled, value = con.execute(
                "SELECT SUM(quantity), SUM(quantity * price) FROM fills WHERE order_ref = ?",
                [order["order_ref"]],
            ).fetchone()
            status = "filled" if filled >= order["quantity"] else "partially_filled"
            con.execute(
                "UPDATE orders SET filled = ?, avg_fill_price = ?, status = ?, updated_at = ?, "
                "broker_order_id = COALESCE(broker_order_id, ?) WHERE order_ref = ?",
                [
                    int(filled),
                    value / filled,
                    status,
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
            """
            SELECT p.*, CAST(SUM(e.quantity_change) AS INTEGER) AS quantity,
                   SUM(ABS(e.quantity_change) * e.price) FILTER (WHERE e.kind = 'open')
                     / SUM(ABS(e.quantity_change)) FILTER (WHERE e.kind = 'open') AS entry_price
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
        return self.query(
            """
            WITH latest AS (
                SELECT position_id, arg_max(order_ref, created_at) AS order_ref
                FROM orders
                WHERE intent = 'close' AND origin = 'local' AND session < ?
                GROUP BY position_id
            )
            SELECT o.position_id, o.session, o.status,
                   split_part(o.reason, ':', 1) AS rule
            FROM latest JOIN orders o USING (order_ref)
            WHERE o.status IN ('cancelled', 'expired', 'rejected', 'missing_at_broker',
                               'blocked', 'submitted', 'partially_filled')
            ORDER BY o.position_id
            """,
            [session],
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
            con.execute(
                "INSERT INTO position_events VALUES (?, ?, ?, 'settle', ?, ?, 0, ?, ?)",
                [
                    event_id,
                    position_id,
                    session,
                    -int(quantity),
                    value,
                    quantity * value * CONTRACT_MULTIPLIER,
                    reason,
                ],
            )
            return True

    def record_marks(self, session: dt.date, marks: pd.DataFrame, equity: dict) -> None:
        """The session's marks of every open position and the account's value, replacing any
        earlier marks of the same session (a rerun re-marks)."""
        with self.transaction() as con:
            con.execute("DELETE FROM marks WHERE session = ?", [session])
            con.execute("DELETE FROM equity WHERE session = ?", [session])
            for row in marks.itertuples(index=False):
                con.execute(
                    "INSERT INTO marks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        session,
                        row.position_id,
                        int(row.quantity),
                        _plain(row.mark),
                        _plain(row.low),
                        _plain(row.high),
                        _plain(row.iv_center),
                        _plain(row.spot),
                        _plain(row.market_value),
                        _plain(row.unrealized_pnl),
                    ],
                )
            con.execute(
                "INSERT INTO equity VALUES (?, ?, ?, ?, ?, ?)",
                [
                    session,
                    equity["cash"],
                    equity["positions_value"],
                    equity["equity"],
                    equity["open_positions"],
                    equity["capital_at_risk"],
                ],
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


def _shape(legs: tuple, default_expiry: dt.date | None) -> tuple:
    """Expiry, lower, center, upper and width of a combo known only by its legs."""
    expiry = min((leg.expiry for leg in legs), default=default_expiry)
    strikes = sorted({leg.strike for leg in legs})
    lower, center, upper = strikes[:3] if len(strikes) >= 3 else (None,) * 3
    return expiry, lower, center, upper, (upper - center) if upper is not None else None


def _ghost_order(con, execution: Execution, session: dt.date) -> dict:
    """An order row for an execution whose order the ledger never saw."""
    ref = ledger_ref(execution.order_ref, execution.broker_order_id)
    now = _now()
    legs = execution.legs
    expiry, lower, center, upper, width = _shape(legs, session)
    existing = _one(con, "SELECT * FROM orders WHERE order_ref = ?", [ref])
    if existing is not None:
        return existing
    con.execute(
        "INSERT INTO orders (order_ref, session, ticker, structure, track, intent, action, "
        "quantity, limit_price, expiry, lower, center, upper, width, legs, position_id, reason, "
        "status, broker_order_id, filled, origin, created_at, updated_at) VALUES "
        "(?, ?, ?, ?, 'external', 'open', ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, 'submitted', ?, 0, "
        "'broker', ?, ?)",
        [
            ref,
            session,
            execution.symbol,
            structure_of(legs) if legs else "unknown",
            execution.action,
            execution.quantity,
            expiry,
            lower,
            center,
            upper,
            width,
            legs_to_json(legs),
            ref,
            "ghost fill: an execution at the broker this system never sent",
            execution.broker_order_id,
            now,
            now,
        ],
    )
    return _one(con, "SELECT * FROM orders WHERE order_ref = ?", [ref])


def _apply_fill(con, order: dict, execution: Execution, session: dt.date, ghost: bool) -> None:
    """The position event and cash of one fill, in the caller's transaction."""
    sign = 1 if execution.action == BUY else -1
    cash_flow = -sign * execution.quantity * execution.price * CONTRACT_MULTIPLIER
    cash_flow -= execution.commission
    if order["intent"] == "close":
        kind, position_id = "close", order["position_id"]
        reason = (order.get("reason") or "close").split(":")[0]
    else:
        kind, position_id = "open", order["position_id"] or order["order_ref"]
        reason = "open"
        _ensure_position(con, order, position_id, session, ghost)
    if position_id is None:
        raise LedgerError(f"closing order {order['order_ref']} names no position")
    con.execute(
        "INSERT INTO position_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            execution.exec_id,
            position_id,
            session,
            kind,
            sign * execution.quantity,
            execution.price,
            execution.commission,
            cash_flow,
            reason,
        ],
    )


def _ensure_position(con, order: dict, position_id: str, session: dt.date, ghost: bool) -> None:
    if con.execute("SELECT 1 FROM positions WHERE position_id = ?", [position_id]).fetchone():
        return
    con.execute(
        "INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            position_id,
            order["ticker"],
            order.get("sector"),
            order["structure"],
            order["track"],
            order.get("expiry") or session,
            order.get("lower"),
            order.get("center"),
            order.get("upper"),
            order.get("width"),
            order["legs"],
            session,
            order.get("max_profit"),
            order.get("max_loss"),
            order.get("risk_level"),
            order.get("iv_center"),
            order.get("model_version"),
            order.get("ml_success_prob"),
            ghost,
        ],
    )
