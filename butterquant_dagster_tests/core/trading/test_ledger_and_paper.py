"""The ledger's money arithmetic and the paper broker's fill model, on exact numbers."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, SELL, ComboOrder, Execution, order_ref
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.trading.combos import combo_quote, legs_of, legs_to_json
from butterquant_dagster.core.trading.journal import max_drawdown, summary
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.core.trading.chains import EXPIRY, NEXT, make_chain

LEGS = legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0)
WHEN = dt.datetime(2026, 3, 3, 20, 0, tzinfo=dt.UTC)


def intent(ref: str, intent_: str = "open", quantity: int = 3, position_id: str = "") -> dict:
    return {
        "order_ref": ref,
        "session": NEXT,
        "ticker": "AAA",
        "sector": "Tech",
        "structure": "call_fly",
        "track": "ai",
        "intent": intent_,
        "action": BUY if intent_ == "open" else SELL,
        "quantity": quantity,
        "limit_price": 1.50,
        "expiry": EXPIRY,
        "lower": 95.0,
        "center": 100.0,
        "upper": 105.0,
        "width": 5.0,
        "legs": legs_to_json(LEGS),
        "position_id": position_id,
        "reason": "stop_loss: test" if intent_ == "close" else "ai track: test",
        "model_version": "v1",
        "ml_success_prob": 0.4,
        "max_profit": 3.5,
        "max_loss": 1.5,
        "risk_level": "MEDIUM",
        "iv_center": 0.3,
    }


def execution(exec_id, ref, action, quantity, price, commission=2.60) -> Execution:
    return Execution(exec_id, ref, "B1", "AAA", action, quantity, price, commission, WHEN, LEGS)


def test_partial_then_full_fills_and_a_close_give_the_exact_journal(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb", initial_capital=10_000)
    ledger.record_intent(intent("open-1"), "planned")
    assert ledger.record_execution(execution("e1", "open-1", BUY, 1, 1.50), NEXT)
    assert ledger.order("open-1")["status"] == "partially_filled"
    assert ledger.open_positions()["quantity"].tolist() == [1]
    assert ledger.record_execution(execution("e2", "open-1", BUY, 2, 1.60), NEXT)
    assert not ledger.record_execution(execution("e2", "open-1", BUY, 2, 1.60), NEXT)  # replay
    order = ledger.order("open-1")
    assert order["status"] == "filled" and order["filled"] == 3
    assert order["avg_fill_price"] == pytest.approx((1.50 + 2 * 1.60) / 3)
    assert ledger.cash_balance() == pytest.approx(10_000 - 150 - 320 - 2 * 2.60)
    later = dt.date(2026, 3, 10)
    ledger.record_intent(
        {**intent("close-1", "close", position_id="open-1"), "session": later}, "planned"
    )
    ledger.record_execution(execution("e3", "close-1", SELL, 3, 2.10, 2.60), later)
    journal = ledger.journal()
    assert len(journal) == 1
    trade = journal.iloc[0]
    paid, received, fees = 150 + 320, 3 * 210, 3 * 2.60
    assert trade["pnl"] == pytest.approx(received - paid - fees)
    assert trade["capital_at_risk"] == pytest.approx(1.5 * 3 * 100)
    assert trade["yield_per_1000"] == pytest.approx(1000 * (received - paid - fees) / 450)
    assert trade["days_held"] == 7 and trade["exit_reason"] == "stop_loss"
    assert trade["entry_price"] == pytest.approx((1.50 + 3.20) / 3)
    assert trade["exit_price"] == pytest.approx(2.10) and bool(trade["won"])
    assert not bool(trade["ghost"]) and trade["track"] == "ai" and trade["ml_success_prob"] == 0.4
    assert ledger.open_positions().empty


def test_settlement_is_recorded_once_and_closes_the_position(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record_intent(intent("open-1", quantity=2), "planned")
    ledger.record_execution(execution("e1", "open-1", BUY, 2, 1.00, 1.30), NEXT)
    assert ledger.settle("open-1", EXPIRY, 4.0, "expiry")
    assert not ledger.settle("open-1", EXPIRY, 4.0, "expiry")
    trade = ledger.journal().iloc[0]
    assert trade["pnl"] == pytest.approx(2 * 400 - 200 - 1.30)
    assert trade["exit_reason"] == "expiry"


def test_a_failed_transaction_leaves_nothing_behind(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    with pytest.raises(RuntimeError), ledger.transaction() as con:
        con.execute(
            "INSERT INTO position_events VALUES ('x', 'p', DATE '2026-03-03', 'open', 1, 1, 0, "
            "-100, 'open')"
        )
        raise RuntimeError("power cut")
    assert ledger.query("SELECT COUNT(*) AS n FROM position_events")["n"].iat[0] == 0


def test_positions_at_start_ignore_the_sessions_own_fills(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record_intent(intent("open-1"), "planned")
    ledger.record_execution(execution("e1", "open-1", BUY, 3, 1.50), NEXT)
    assert ledger.positions_at_start(NEXT).empty
    assert ledger.positions_at_start(dt.date(2026, 3, 4))["quantity"].tolist() == [3]


def test_journal_figures_and_drawdown_on_hand_computed_numbers():
    assert max_drawdown(pd.Series([100, 120, 90, 130, 117])) == pytest.approx(0.25)
    assert max_drawdown(pd.Series([100, 101, 102])) == 0.0
    journal = pd.DataFrame(
        {
            "pnl": [100.0, -50.0, -50.0, 200.0],
            "capital_at_risk": [500.0, 500.0, 500.0, 500.0],
            "won": [True, False, False, True],
            "days_held": [5, 10, 15, 10],
            "ghost": [False, False, False, True],
            "track": ["ai", "ai", "baseline", "external"],
            "exit_reason": ["take_profit", "stop_loss", "stop_loss", "expiry"],
        }
    )
    figures = summary(journal, pd.DataFrame({"equity": [1000.0, 1100.0, 990.0]}))
    assert figures["win_rate"] == 0.5
    assert figures["total_pnl"] == 200.0
    assert figures["yield_per_1000"] == pytest.approx(100.0)
    assert figures["max_drawdown"] == pytest.approx(0.1)
    assert figures["by_track"]["ai"] == {
        "trades": 2,
        "win_rate": 0.5,
        "total_pnl": 50.0,
        "yield_per_1000": 50.0,
    }
    assert figures["ghost_trades"] == 1
    empty = summary(journal.iloc[0:0])
    assert empty["trades"] == 0 and empty["win_rate"] is None and empty["total_pnl"] is None


def paper(tmp_path, chains, when):
    return PaperBroker(tmp_path / "b.duckdb", chains.get, lambda: when, slippage=0.25)


def order(limit: float, action: str = BUY, quantity: int = 2, ref: str | None = None):
    return ComboOrder(
        order_ref=ref or order_ref(NEXT, "AAA", "call_fly", LEGS, "ai", "open"),
        session=NEXT,
        symbol="AAA",
        structure="call_fly",
        legs=LEGS,
        action=action,
        quantity=quantity,
        limit_price=limit,
        track="ai",
    )


def test_the_paper_fill_model_fills_at_the_limit_past_the_threshold_only(tmp_path):
    chain = make_chain(NEXT, {"AAA": 100.0})
    quote = combo_quote(chain, LEGS)
    threshold = quote["mid"] + 0.25 * (quote["high"] - quote["mid"])
    when = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
    broker = paper(tmp_path, {NEXT: chain}, when)
    above = round(threshold + 0.005, 2)
    filled = broker.place_combo(order(above, ref="buy-above"))
    assert filled.status == "filled" and filled.avg_fill_price == above
    below = round(threshold - 0.01, 2)
    missed = broker.place_combo(order(below, ref="buy-below"))
    assert missed.status == "submitted", "short of the threshold it works until the close"
    at_close = paper(tmp_path, {NEXT: chain}, calendar.session_close(NEXT))
    (expired,) = [o for o in at_close.orders() if o.order_ref == "buy-below"]
    assert expired.status == "cancelled" and "fill threshold" in expired.reason
    (fill,) = broker.executions(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert fill.order_ref == "buy-above" and fill.quantity == 2
    assert fill.commission == pytest.approx(max(1.0, 0.65 * 2 * 4))  # 2 flies x 4 contracts
    sell_threshold = quote["mid"] - 0.25 * (quote["mid"] - quote["low"])
    assert broker.place_combo(order(round(sell_threshold - 0.005, 2), SELL, ref="s1")).status == (
        "filled"
    )
    assert broker.place_combo(order(round(sell_threshold + 0.01, 2), SELL, ref="s2")).status == (
        "submitted"
    )
    assert broker.modify("s2", round(sell_threshold - 0.005, 2)).status == "filled"


def test_the_paper_broker_accepts_an_order_ref_once_and_remembers_it(tmp_path):
    chain = make_chain(NEXT, {"AAA": 100.0})
    when = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
    first = paper(tmp_path, {NEXT: chain}, when).place_combo(order(9.99))
    again = paper(tmp_path, {NEXT: chain}, when).place_combo(order(5.00))  # a new process
    assert again == first
    assert len(paper(tmp_path, {NEXT: chain}, when).orders()) == 1
    with duckdb.connect(str(tmp_path / "b.duckdb")) as db:
        assert db.execute("SELECT COUNT(*) FROM executions").fetchone()[0] == 1


def test_paper_orders_work_until_the_sessions_quotes_exist(tmp_path):
    chain = make_chain(NEXT, {"AAA": 100.0})
    when = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
    chains: dict = {}
    broker = PaperBroker(tmp_path / "b.duckdb", chains.get, lambda: when)
    assert broker.place_combo(order(9.99)).status == "submitted"
    assert [o.status for o in broker.open_orders()] == ["submitted"]
    chains[NEXT] = chain
    assert broker.orders()[0].status == "filled"
    (fill,) = broker.executions(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert fill.time >= calendar.session_close(NEXT) - dt.timedelta(minutes=1)


def test_paper_rejects_off_tick_limits_and_drops_expired_contracts(tmp_path):
    chain = make_chain(NEXT, {"AAA": 100.0})
    when = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
    broker = paper(tmp_path, {NEXT: chain}, when)
    rejected = broker.place_combo(order(1.234, ref="off-tick"))
    assert rejected.status == "rejected" and "tick" in rejected.reason
    broker.place_combo(order(9.99))
    assert {p.quantity for p in broker.positions()} == {2, -4}
    after_expiry = paper(tmp_path, {NEXT: chain}, dt.datetime(2026, 4, 20, 15, tzinfo=dt.UTC))
    assert after_expiry.positions() == []
