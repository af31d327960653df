"""Rows land in the columns they name: the by-name inserts of the ledger and the paper
broker, read back column by column, and ledgers written with plain strings still read."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from butterquant_dagster.core.brokers.base import BUY, BrokerOrder, ComboOrder, Execution
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.trading import rows
from butterquant_dagster.core.trading.combos import legs_of, legs_to_json
from butterquant_dagster.core.trading.ledger import ORDER_FIELDS, Ledger
from butterquant_dagster.core.trading.vocabulary import Intent, OrderStatus, Track

EXPIRY = dt.date(2026, 4, 17)
SESSION = dt.date(2026, 3, 3)
LEGS = legs_of("AAA", "iron_fly", EXPIRY, 95.0, 100.0, 110.0)


def raw_order(path, ref: str) -> dict:
    """One ``orders`` row straight from DuckDB, by column name, with Python's own types."""
    with duckdb.connect(str(path), read_only=True) as con:
        cursor = con.execute("SELECT * FROM orders WHERE order_ref = ?", [ref])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True))


def test_insert_names_every_column_so_order_does_not_matter():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a VARCHAR, b INTEGER, c DOUBLE)")
    rows.insert(con, "t", {"c": 2.5, "a": OrderStatus.EXPIRED, "b": 7})
    assert con.execute("SELECT a, typeof(a), b, c FROM t").fetchall() == [
        ("expired", "VARCHAR", 7, 2.5)
    ]
    assert rows.insert_sql("t", ["a", "b"], "ON CONFLICT DO NOTHING") == (
        "INSERT INTO t (a, b) VALUES (?, ?) ON CONFLICT DO NOTHING"
    )
    with pytest.raises(duckdb.Error, match="nope"):
        rows.insert(con, "t", {"a": "x", "nope": 1})
    with pytest.raises(ValueError, match="at least one column"):
        rows.insert(con, "t", {})
    working = {OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED}
    assert rows.in_list(working) == ("(?, ?)", ["partially_filled", "submitted"])


def test_every_planned_field_lands_in_its_own_column(tmp_path):
    """Distinct values per field: a value in another column's place would show."""
    target = {
        "order_ref": "ref-1",
        "session": SESSION,
        "ticker": "AAA",
        "sector": "Tech",
        "structure": "iron_fly",
        "track": Track.BASELINE,
        "intent": Intent.OPEN,
        "action": BUY,
        "quantity": 3,
        "limit_price": -1.25,
        "expiry": EXPIRY,
        "lower": 95.0,
        "center": 100.0,
        "upper": 110.0,
        "width": 10.0,
        "legs": legs_to_json(LEGS),
        "position_id": "pos-1",
        "reason": "baseline track: test",
        "model_version": "rule",
        "ml_success_prob": 0.41,
        "max_profit": 1.25,
        "max_loss": 8.75,
        "risk_level": "HIGH",
        "iv_center": 0.27,
    }
    assert set(target) == set(ORDER_FIELDS)
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record_intent(target, OrderStatus.BLOCKED, "too many orders today")
    row = raw_order(ledger.path, "ref-1")
    assert {name: row[name] for name in ORDER_FIELDS} == target
    assert row["status"] == "blocked" and type(row["status"]) is str
    assert (row["status_reason"], row["origin"], row["filled"]) == (
        "too many orders today",
        "local",
        0,
    )
    assert type(row["intent"]) is str and type(row["track"]) is str
    # A rerun may lift the block: the unsent order is re-stated, not duplicated.
    ledger.record_intent(target, OrderStatus.PLANNED)
    assert raw_order(ledger.path, "ref-1")["status"] == "planned"


def test_an_order_found_at_the_broker_is_recorded_column_by_column(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    found = BrokerOrder(
        order_ref="",
        broker_order_id="77",
        symbol="AAA",
        action=BUY,
        quantity=2,
        limit_price=-1.10,
        status=OrderStatus.PARTIALLY_FILLED,
        filled=1,
        avg_fill_price=-1.05,
        reason="placed in TWS",
        legs=LEGS,
    )
    assert ledger.record_broker_order(found, SESSION)
    row = raw_order(ledger.path, "broker-77")
    assert row | {"created_at": None, "updated_at": None} == {
        "order_ref": "broker-77",
        "session": SESSION,
        "ticker": "AAA",
        "sector": None,
        "structure": "iron_fly",
        "track": "external",
        "intent": "open",
        "action": BUY,
        "quantity": 2,
        "limit_price": -1.10,
        "expiry": EXPIRY,
        "lower": 95.0,
        "center": 100.0,
        "upper": 110.0,
        "width": 10.0,
        "legs": legs_to_json(LEGS),
        "position_id": "broker-77",
        "reason": "found at the broker, not placed by this ledger",
        "model_version": None,
        "ml_success_prob": None,
        "max_profit": None,
        "max_loss": None,
        "risk_level": None,
        "iv_center": None,
        "status": "partially_filled",
        "status_reason": "placed in TWS",
        "broker_order_id": "77",
        "filled": 1,
        "avg_fill_price": -1.05,
        "origin": "broker",
        "created_at": None,
        "updated_at": None,
    }
    assert ledger.query("SELECT limit_price FROM order_limits")["limit_price"].tolist() == [-1.10]


def test_a_ghost_fill_records_order_fill_position_and_event_by_name(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    when = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)
    fill = Execution("x1", "", "88", "AAA", BUY, 2, 1.40, 2.60, when, LEGS)
    assert ledger.record_execution(fill, SESSION)
    order = raw_order(ledger.path, "broker-88")
    assert (order["track"], order["intent"], order["origin"], order["status"]) == (
        "external",
        "open",
        "broker",
        "filled",
    )
    assert (order["limit_price"], order["filled"], order["avg_fill_price"]) == (None, 2, 1.40)
    fills = ledger.fills().iloc[0]
    assert (fills["order_ref"], fills["broker_order_id"], fills["ticker"]) == (
        "broker-88",
        "88",
        "AAA",
    )
    assert (fills["quantity"], fills["price"], fills["commission"], fills["ghost"]) == (
        2,
        1.40,
        2.60,
        True,
    )
    position = ledger.open_positions().iloc[0]
    assert (position["position_id"], position["structure"], position["track"]) == (
        "broker-88",
        "iron_fly",
        "external",
    )
    assert (position["entry_session"].date(), position["expiry"].date()) == (SESSION, EXPIRY)
    assert (position["quantity"], position["entry_price"], position["ghost"]) == (2, 1.40, True)
    assert position["cash_flow"] == pytest.approx(-2 * 1.40 * 100 - 2.60)
    event = ledger.query("SELECT * FROM position_events").iloc[0]
    assert (event["event_id"], event["kind"], event["quantity_change"], event["fees"]) == (
        "x1",
        "open",
        2,
        2.60,
    )
    assert ledger.settle("broker-88", EXPIRY, 0.0, "expiry")
    kinds = ledger.query("SELECT kind FROM position_events ORDER BY kind")["kind"].tolist()
    assert kinds == ["open", "settle"]


def test_a_ledger_written_with_plain_strings_still_reads(tmp_path):
    """Ledgers from before the enums hold the same strings: the parameterized status lists
    must still find their rows, and opening the file again must not fail."""
    path = tmp_path / "l.duckdb"
    Ledger(path)
    earlier = dt.date(2026, 3, 2)
    with duckdb.connect(str(path)) as con:
        for ref, intent, status in (
            ("open-1", "open", "filled"),
            ("close-1", "close", "expired"),
            ("open-2", "open", "submitted"),
        ):
            con.execute(
                "INSERT INTO orders (order_ref, session, ticker, structure, track, intent, "
                "action, quantity, legs, position_id, reason, status, origin, created_at, "
                "updated_at) VALUES (?, ?, 'AAA', 'iron_fly', 'ai', ?, 'BUY', 1, '[]', "
                "'open-1', 'stop_loss: x', ?, 'local', now(), now())",
                [ref, earlier, intent, status],
            )
        con.execute(
            "INSERT INTO positions (position_id, ticker, structure, track, expiry, legs, "
            "entry_session, ghost) VALUES ('open-1', 'AAA', 'iron_fly', 'ai', ?, '[]', ?, "
            "false)",
            [EXPIRY, earlier],
        )
        con.execute(
            "INSERT INTO position_events VALUES ('e1', 'open-1', ?, 'open', 1, 1.4, 0, -140, "
            "'open')",
            [earlier],
        )
    ledger = Ledger(path)
    assert ledger.working_before(SESSION)["order_ref"].tolist() == ["open-2"]
    exits = ledger.unfilled_exits(SESSION)
    assert exits[["position_id", "status", "rule"]].values.tolist() == [
        ["open-1", "expired", "stop_loss"]
    ]
    assert ledger.positions_at_start(SESSION)["entry_price"].tolist() == [1.4]


def test_the_paper_broker_stores_its_orders_by_column_name(tmp_path):
    clock = dt.datetime(2026, 3, 3, 15, 0, tzinfo=dt.UTC)
    broker = PaperBroker(tmp_path / "p.duckdb", chains=lambda _: None, clock=lambda: clock)
    order = ComboOrder("ref-9", SESSION, "AAA", "iron_fly", LEGS, BUY, 2, -1.10, "ai")
    acknowledged = broker.place_combo(order)
    assert acknowledged.status == OrderStatus.SUBMITTED and acknowledged.broker_order_id == "P1"
    with duckdb.connect(str(broker.path), read_only=True) as con:
        cursor = con.execute("SELECT * FROM orders")
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))
    assert row == {
        "order_ref": "ref-9",
        "broker_order_id": "P1",
        "session": SESSION,
        "symbol": "AAA",
        "structure": "iron_fly",
        "action": BUY,
        "quantity": 2,
        "limit_price": -1.10,
        "legs": legs_to_json(LEGS),
        "status": "submitted",
        "filled": 0,
        "avg_fill_price": None,
        "reason": "",
        "placed_at": clock.replace(tzinfo=None),
    }
    assert type(row["status"]) is str
    assert broker.cancel("ref-9").status == OrderStatus.CANCELLED
    assert broker.open_orders() == []
