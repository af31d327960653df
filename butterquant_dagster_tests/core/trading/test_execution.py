"""Reliability of sending orders: reruns, crashes at every step boundary, ghost fills.

Runs the real ledger against the real paper broker (two DuckDB files), so "the ledger
equals the broker" is checked between two independent records.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, ComboOrder
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.trading.combos import legs_of
from butterquant_dagster.core.trading.execution import execute_session, reconcile
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.portfolio import plan_session
from butterquant_dagster.core.trading.risk import ORDER_SENDING_OFF
from butterquant_dagster.core.trading.rules import PortfolioRules, RiskLimits
from butterquant_dagster_tests.core.trading.chains import (
    EXPIRY,
    NEXT,
    SESSION,
    make_chain,
    make_rankings,
)

SPOTS = {"AAA": 100.0, "BBB": 100.0, "CCC": 100.0, "DDD": 100.0}
SECTORS = {"AAA": "Tech", "BBB": "Tech", "CCC": "Energy", "DDD": "Health"}
DECISION_TIME = calendar.session_close(NEXT) - dt.timedelta(minutes=15)


class Crash(RuntimeError):
    pass


@pytest.fixture
def desk(tmp_path):
    chain = make_chain(SESSION, SPOTS)
    # The next session quotes the same prices: these tests are about sending, not fills.
    chains = {SESSION: chain, NEXT: chain.assign(session=pd.Timestamp(NEXT))}
    rankings = make_rankings(
        SESSION,
        chain,
        [
            {"ticker": t, "structure": s, "lower": 95.0, "center": 100.0, "upper": 105.0}
            for t, s in (
                ("AAA", "call_fly"),
                ("BBB", "put_fly"),
                ("CCC", "iron_fly"),
                ("DDD", "call_fly"),
            )
        ],
    )
    ledger = Ledger(tmp_path / "ledger.duckdb")
    broker = PaperBroker(tmp_path / "broker.duckdb", chains.get, lambda: DECISION_TIME)
    rules = PortfolioRules(ai_track_slots=2, max_positions=4, allocation=1000.0)
    targets, _, _ = plan_session(
        NEXT, ledger.positions_at_start(NEXT), chain, rankings, rankings, SECTORS, rules
    )
    return dataclasses.make_dataclass("Desk", ["ledger", "broker", "targets", "path"])(
        ledger, broker, targets, tmp_path
    )


def run(desk, checkpoint=None, limits=None, now=DECISION_TIME):
    limits = limits or RiskLimits()
    kwargs = {"checkpoint": checkpoint} if checkpoint else {}
    return execute_session(NEXT, desk.targets, desk.ledger, desk.broker, limits, now, **kwargs)


def assert_ledger_equals_broker(desk):
    broker_orders = {o.order_ref: o for o in desk.broker.orders()}
    ledger_orders = desk.ledger.orders()
    sent = ledger_orders.loc[ledger_orders["status"] != "blocked"]
    assert set(sent["order_ref"]) == set(broker_orders)
    for row in sent.itertuples(index=False):
        assert row.status == broker_orders[row.order_ref].status
        assert row.filled == broker_orders[row.order_ref].filled
    broker_fills = {
        e.exec_id for e in desk.broker.executions(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    }
    assert set(desk.ledger.fills()["exec_id"]) == broker_fills
    held = {p.contract_key: p.quantity for p in desk.broker.positions()}
    assert desk.ledger.leg_positions(from_expiry=NEXT) == held


def broker_cash(desk) -> float:
    """The cash the broker's own executions imply: debits paid, credits received, fees."""
    flows = [
        (-1 if e.action == BUY else 1) * e.quantity * e.price * 100 - e.commission
        for e in desk.broker.executions(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    ]
    return desk.ledger.initial_capital + sum(flows)


def test_plan_has_one_entry_per_ticker_on_both_tracks(desk):
    opens = desk.targets.loc[desk.targets["intent"] == "open"]
    assert len(opens) == 4
    assert opens["ticker"].is_unique
    assert opens.groupby("track").size().to_dict() == {"ai": 2, "baseline": 2}
    iron = opens.loc[opens["structure"] == "iron_fly"].iloc[0]
    assert iron["limit_price"] < 0  # a credit is a negative combo price


def test_five_runs_send_each_order_once_and_the_ledger_equals_the_broker(desk):
    reports = [run(desk) for _ in range(5)]
    assert len(reports[0].sent) == 4
    assert all(not r.sent for r in reports[1:])
    assert all(len(r.already_sent) == 4 for r in reports[1:])
    assert len(desk.broker.orders()) == 4
    assert len(desk.ledger.fills()) == 4
    assert len(desk.ledger.open_positions()) == 4
    assert_ledger_equals_broker(desk)
    assert desk.ledger.cash_balance() == pytest.approx(broker_cash(desk))


# The per-order kill points of core.faults a session of entries passes through.
ORDER_POINTS = (
    "before_intent",
    "after_planning",
    "after_sending",
    "after_accepted",
    "before_reprice",
    "after_reprice",
    "before_recording_fill",
    "after_recording_fill",
)


@pytest.mark.parametrize("step", ORDER_POINTS)
def test_a_failure_at_any_step_boundary_heals_on_retry(desk, step):
    calls = []

    def crash_on_second(name, ref):
        if name == step:
            calls.append(ref)
            if len(calls) == 2:
                raise Crash(f"killed at {step}")

    with pytest.raises(Crash):
        run(desk, crash_on_second)
    run(desk)
    run(desk)
    assert len(desk.broker.orders()) == 4, "an order was sent twice or lost"
    assert len(desk.ledger.fills()) == 4, "a fill was lost or doubled"
    assert desk.ledger.orders()["order_ref"].is_unique
    assert_ledger_equals_broker(desk)
    assert desk.ledger.cash_balance() == pytest.approx(broker_cash(desk))


def test_killed_between_sending_and_recording_reconciliation_finds_the_order(desk):
    def die_after_send(name, ref):
        if name == "after_sending":
            raise Crash("process killed")

    with pytest.raises(Crash):
        run(desk, die_after_send)
    ref = desk.broker.orders()[0].order_ref
    assert desk.ledger.order(ref)["status"] == "planned"  # the ledger never heard back
    report = run(desk)
    assert ref in report.already_sent
    assert desk.ledger.order(ref)["status"] == "filled"
    assert len(desk.broker.orders()) == 4
    assert_ledger_equals_broker(desk)


def test_an_execution_we_never_sent_is_recorded_flagged_and_journaled(desk):
    run(desk)
    stranger = ComboOrder(
        order_ref="tws-manual-7",
        session=NEXT,
        symbol="DDD",
        structure="call_fly",
        legs=legs_of("DDD", "call_fly", EXPIRY, 90.0, 95.0, 100.0),
        action=BUY,
        quantity=2,
        limit_price=9.99,
        track="manual",
    )
    desk.broker.place_combo(stranger)  # placed by someone else, e.g. by hand in TWS
    report = reconcile(desk.ledger, desk.broker, NEXT)
    assert report.orders_added == ["tws-manual-7"]
    assert len(report.ghost_fills) == 1
    fill = desk.ledger.fills().set_index("order_ref").loc["tws-manual-7"]
    assert bool(fill["ghost"])
    assert report.agrees
    ghost = desk.ledger.open_positions().set_index("position_id").loc["tws-manual-7"]
    assert ghost["track"] == "external" and bool(ghost["ghost"]) and ghost["quantity"] == 2
    assert desk.ledger.settle("tws-manual-7", EXPIRY, 0.0, "expiry: test")
    journal = desk.ledger.journal().set_index("position_id")
    assert bool(journal.loc["tws-manual-7", "ghost"])
    assert journal.loc["tws-manual-7", "pnl"] == pytest.approx(-2 * 9.99 * 100 - fill["commission"])


def test_nothing_is_sent_while_the_ledger_and_the_broker_disagree(desk):
    run(desk)
    with duckdb.connect(str(desk.path / "broker.duckdb")) as broker_db:
        ref = broker_db.execute("SELECT order_ref FROM orders LIMIT 1").fetchone()[0]
        broker_db.execute("DELETE FROM executions WHERE order_ref = ?", [ref])
        broker_db.execute("DELETE FROM orders WHERE order_ref = ?", [ref])
    report = run(desk)
    assert report.refused.startswith("ledger and broker disagree")
    assert report.reconciliation.position_mismatches
    assert not report.sent


def test_the_kill_switch_blocks_entries_but_not_exits(desk):
    report = run(desk, limits=RiskLimits(kill_switch=True))
    assert not report.sent
    assert set(report.blocked.values()) == {"kill switch on: no new entries"}
    assert (desk.ledger.orders()["status"] == "blocked").all()
    # lifting it lets the same orders (same refs) go out once
    report = run(desk)
    assert len(report.sent) == 4 and len(desk.broker.orders()) == 4


def test_order_sending_off_plans_and_records_but_sends_nothing(desk):
    report = run(desk, limits=RiskLimits(send_orders=False))
    assert not report.sent and len(report.blocked) == 4
    assert set(report.blocked.values()) == {ORDER_SENDING_OFF}
    assert len(desk.broker.orders()) == 0
    assert (desk.ledger.orders()["status"] == "blocked").all()
    # switched back on, the same orders (same refs) go out once
    report = run(desk)
    assert len(report.sent) == 4 and len(desk.broker.orders()) == 4


def test_a_closed_market_blocks_every_order_with_the_reason(desk):
    after_close = calendar.session_close(NEXT) + dt.timedelta(minutes=5)
    report = run(desk, now=after_close)
    assert not report.sent
    assert all("market is closed" in r for r in report.blocked.values())
    yesterday = DECISION_TIME - dt.timedelta(days=1)
    report = run(desk, now=yesterday)
    assert all("the decision is for" in r for r in report.blocked.values())


def test_limits_block_only_the_orders_that_break_them(desk):
    report = run(desk, limits=RiskLimits(max_positions=3))
    assert len(report.sent) == 3
    assert list(report.blocked.values()) == ["all 3 slots are taken"]
    report = run(desk, limits=RiskLimits(max_order_loss=1.0))
    assert not report.sent and len(report.blocked) == 1
    assert "max loss" in next(iter(report.blocked.values()))


def test_a_live_account_needs_the_explicit_opt_in(desk):
    class LiveAccount:
        def __init__(self, broker, account_id):
            self._broker, self.name, self._id = broker, "ibkr", account_id

        def account(self):
            from butterquant_dagster.core.brokers.base import Account

            return Account(self._id, paper=False)

        def __getattr__(self, name):
            return getattr(self._broker, name)

    live = LiveAccount(desk.broker, "U1234567")
    report = execute_session(NEXT, desk.targets, desk.ledger, live, RiskLimits(), DECISION_TIME)
    assert not report.sent
    assert all("live trading is not enabled" in r for r in report.blocked.values())
    wrong = RiskLimits(live_trading=True, live_account="U7654321")
    report = execute_session(NEXT, desk.targets, desk.ledger, live, wrong, DECISION_TIME)
    assert not report.sent and all("U1234567" in r for r in report.blocked.values())
    right = RiskLimits(live_trading=True, live_account="U1234567")
    report = execute_session(NEXT, desk.targets, desk.ledger, live, right, DECISION_TIME)
    assert len(report.sent) == 4
