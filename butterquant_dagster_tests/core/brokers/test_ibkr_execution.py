"""The ledger and ``execute_session`` against the real IBKR adapter, end to end.

The real ledger (DuckDB) and the real :class:`IBKRBroker` (with ib_async, then ib_insync: the
``ib_client`` fixture) talk to the fake TWS over a socket, so "sent once", "recorded once" and
"the ledger equals the broker" are checked between the ledger and what the fake exchange itself
received and executed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
from collections import Counter

import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, SELL, BrokerConnectionError
from butterquant_dagster.core.brokers.ibkr import IBKRBroker
from butterquant_dagster.core.options.costs import fill_price
from butterquant_dagster.core.trading.combos import legs_from_json
from butterquant_dagster.core.trading.execution import ExecutionReport, execute_session
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.order_policy import OrderPolicy
from butterquant_dagster.core.trading.portfolio import plan_session
from butterquant_dagster.core.trading.rules import PortfolioRules, RiskLimits
from butterquant_dagster_tests.core.trading.chains import (
    EXPIRY,
    NEXT,
    SESSION,
    make_chain,
    make_rankings,
)
from butterquant_dagster_tests.fake_tws import FakeTWS, Plan, make_broker

PICKS = (("AAA", "call_fly"), ("BBB", "put_fly"), ("CCC", "iron_fly"))
SPOTS = {ticker: 100.0 for ticker, _ in PICKS}
SECTORS = {"AAA": "Tech", "BBB": "Energy", "CCC": "Health"}
LISTED_STRIKES = [90.0, 95.0, 100.0, 105.0, 110.0]
DECISION_TIME = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
ALL_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
COMMISSION = 0.65  # the fake's commission per option contract


@dataclasses.dataclass
class Desk:
    ledger: Ledger
    tws: FakeTWS
    broker: IBKRBroker
    targets: pd.DataFrame

    def target(self, ref: str) -> dict:
        return self.targets.set_index("order_ref").loc[ref].to_dict()


@pytest.fixture
def desk(tmp_path, ib_client):
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(
        SESSION,
        chain,
        [
            {"ticker": t, "structure": s, "lower": 95.0, "center": 100.0, "upper": 105.0}
            for t, s in PICKS
        ],
    )
    ledger = Ledger(tmp_path / "ledger.duckdb")
    rules = PortfolioRules(ai_track_slots=2, max_positions=4, allocation=1000.0)
    targets, _, _ = plan_session(
        NEXT, ledger.positions_at_start(NEXT), chain, rankings, rankings, SECTORS, rules
    )
    with FakeTWS() as fake:
        # the fake exchange lives in the session being traded: fills carry its times
        fake.now = lambda: DECISION_TIME.astimezone(dt.UTC)
        for ticker in SPOTS:
            fake.add_chain(ticker, [EXPIRY], LISTED_STRIKES)
        broker = make_broker(fake)
        try:
            yield Desk(ledger, fake, broker, targets)
        finally:
            broker.close()


def run(
    desk: Desk, broker: IBKRBroker | None = None, policy: OrderPolicy | None = None
) -> ExecutionReport:
    return execute_session(
        NEXT,
        desk.targets,
        desk.ledger,
        broker or desk.broker,
        RiskLimits(),
        DECISION_TIME,
        policy=policy,
    )


def fresh_broker(desk: Desk) -> IBKRBroker:
    """A rerun in a new process: the old connection is gone, a new one uses the same id."""
    desk.broker.close()
    return make_broker(desk.tws)


def placed_per_ref(tws: FakeTWS) -> Counter:
    return Counter(p["order_ref"] for p in tws.placed)


def fake_order(tws: FakeTWS, ref: str):
    [order] = [o for o in tws.orders if o.order_ref == ref]
    return order


def fake_commission(tws: FakeTWS, ref: str) -> float:
    """What the fake charged for one order: its commission reports (one per leg execution)."""
    return sum(e.commission for e in tws.executions if e.order.order_ref == ref and e.commission)


def fake_cash(tws: FakeTWS, initial: float) -> float:
    """The cash the fake exchange's own executions imply: net combo prices and commissions."""
    flows = 0.0
    for e in tws.executions:
        if e.sec_type == "BAG" or e.order.listed is not None:
            flows += (-1 if e.side == "BOT" else 1) * e.shares * e.price * 100
        flows -= e.commission or 0.0
    return initial + flows


def broker_positions(broker: IBKRBroker) -> dict[str, int]:
    return {p.contract_key: p.quantity for p in broker.positions()}


def assert_ledger_equals_broker(desk: Desk, broker: IBKRBroker) -> None:
    theirs = {o.order_ref: o for o in broker.orders()}
    ours = desk.ledger.orders()
    assert set(ours["order_ref"]) == set(theirs)
    for row in ours.itertuples(index=False):
        order = theirs[row.order_ref]
        assert (row.status, row.filled) == (order.status, order.filled), row.order_ref
        assert row.broker_order_id == order.broker_order_id
    executions = broker.executions(ALL_TIME)
    assert sorted(desk.ledger.fills()["exec_id"]) == sorted(e.exec_id for e in executions)
    assert desk.ledger.leg_positions(from_expiry=NEXT) == broker_positions(broker)
    assert desk.ledger.cash_balance() == pytest.approx(
        fake_cash(desk.tws, desk.ledger.initial_capital)
    )


# --------------------------------------------------------------------------------- tests
def test_three_flies_go_out_as_bags_fill_and_the_ledger_equals_the_broker(desk):
    tws = desk.tws
    refs = list(desk.targets["order_ref"])
    assert sorted(desk.targets["structure"]) == ["call_fly", "iron_fly", "put_fly"]

    report = run(desk)

    assert sorted(report.sent) == sorted(refs) and not report.blocked and not report.rejected
    assert placed_per_ref(tws) == Counter(refs)  # exactly 3 orders, one per intended trade
    for sent in tws.placed:
        target = desk.target(sent["order_ref"])
        legs = legs_from_json(target["ticker"], target["legs"])
        expected = [
            (tws.option(x.symbol, x.expiry, x.strike, x.right).con_id, x.ratio, x.action)
            for x in legs
        ]
        assert sent["sec_type"] == "BAG" and sent["symbol"] == target["ticker"]
        assert [(c, r, a) for c, r, a, _ in sent["legs"]] == expected
        assert (sent["action"], sent["quantity"]) == (BUY, float(target["quantity"]))
        assert (sent["order_type"], sent["tif"]) == ("LMT", "DAY")
        # It opens at the mid of the plan's quote (IB quotes no combo here), on the tick.
        opening = fill_price(BUY, target["mid"], target["natural_low"], target["natural_high"], 0)
        assert sent["limit"] == pytest.approx(min(opening, target["limit_price"]))
        if target["structure"] == "iron_fly":
            assert len(sent["legs"]) == 4
            assert sent["limit"] < 0  # a credit: IB's combo convention is a negative limit
        else:
            assert len(sent["legs"]) == 3 and sent["limit"] > 0
            assert [r for _, r, _, _ in sent["legs"]] == [1, 2, 1]

    fills = desk.ledger.fills().set_index("order_ref")
    assert sorted(fills.index) == sorted(refs)
    orders = desk.ledger.orders().set_index("order_ref")
    for ref in refs:
        target, fill, fake = desk.target(ref), fills.loc[ref], fake_order(tws, ref)
        legs_per_combo = sum(x.ratio for x in legs_from_json(target["ticker"], target["legs"]))
        assert fake.status == "Filled"
        assert (fill["quantity"], fill["action"]) == (target["quantity"], BUY)
        assert fill["price"] == pytest.approx(fake.limit)  # filled on its first rung
        assert fill["price"] <= target["limit_price"], "never above what the plan judged"
        assert fill["commission"] == pytest.approx(fake_commission(tws, ref))
        assert fill["commission"] == pytest.approx(COMMISSION * legs_per_combo * target["quantity"])
        assert not fill["ghost"]
        assert orders.loc[ref, "status"] == "filled"
        assert orders.loc[ref, "filled"] == target["quantity"]
        assert orders.loc[ref, "broker_order_id"] == str(fake.perm_id)
        assert orders.loc[ref, "origin"] == "local"
    positions = desk.ledger.open_positions().set_index("position_id")
    assert sorted(positions.index) == sorted(refs)
    assert (positions["quantity"] == 8).all() and not positions["ghost"].any()
    held = broker_positions(desk.broker)
    assert desk.ledger.leg_positions(from_expiry=NEXT) == held
    assert held["CCC 2026-04-17 100.00 C"] == -8 and held["AAA 2026-04-17 100.00 C"] == -16
    assert desk.ledger.cash_balance() == pytest.approx(fake_cash(tws, desk.ledger.initial_capital))
    assert fake_cash(tws, 0.0) == pytest.approx(
        sum(
            -t.quantity * fake_order(tws, t.order_ref).limit * 100 - COMMISSION * t.quantity * 4
            for t in desk.targets.itertuples()
        )
    )
    assert_ledger_equals_broker(desk, desk.broker)


def test_a_rejection_is_recorded_with_the_reason_and_the_rest_still_go_out(desk):
    tws = desk.tws
    tws.plans += [Plan.fill(), Plan.reject("insufficient margin for this order"), Plan.fill()]

    report = run(desk)

    assert len(tws.placed) == 3
    rejected = tws.placed[1]["order_ref"]
    others = [p["order_ref"] for p in tws.placed if p["order_ref"] != rejected]
    assert set(report.rejected) == {rejected}
    assert "insufficient margin for this order" in report.rejected[rejected]
    order = desk.ledger.order(rejected)
    assert order["status"] == "rejected" and order["filled"] == 0
    assert "insufficient margin for this order" in order["status_reason"]
    assert "201" in order["status_reason"]
    assert sorted(desk.ledger.fills()["order_ref"]) == sorted(others)
    assert all(desk.ledger.order(ref)["status"] == "filled" for ref in others)
    assert not desk.ledger.fills()["order_ref"].isin([rejected]).any()
    assert_ledger_equals_broker(desk, desk.broker)

    with fresh_broker(desk) as fresh:  # a rerun (new process) keeps it rejected, sends nothing
        again = run(desk, fresh)
        assert not again.sent and rejected in again.already_sent
        assert_ledger_equals_broker(desk, fresh)
    assert len(tws.placed) == 3
    assert "insufficient margin for this order" in desk.ledger.order(rejected)["status_reason"]


def test_a_reprice_after_a_partial_fill_works_only_the_unfilled_quantity(desk):
    tws = desk.tws
    tws.plans += [Plan.partial(3), Plan.fill(), Plan.fill()]  # the reprice then fills

    report = run(desk)

    first = tws.placed[0]
    partial = first["order_ref"]
    [modified] = [m for m in tws.modified if m["order_ref"] == partial]
    assert modified["order_id"] == first["order_id"], "the same order, not a second one"
    assert modified["quantity"] == first["quantity"] == 8
    assert modified["limit"] > first["limit"], "a buy reprices toward natural"
    assert report.repriced == {partial: 1}
    fills = desk.ledger.fills().query("order_ref == @partial")
    assert sorted(fills["quantity"]) == [3, 5], "only the unfilled 5 were worked"
    order = desk.ledger.order(partial)
    assert (order["status"], order["filled"], order["limit_price"]) == (
        "filled",
        8,
        modified["limit"],
    )
    assert placed_per_ref(tws)[partial] == 1
    assert_ledger_equals_broker(desk, desk.broker)


def test_a_partial_fill_holds_the_filled_part_and_a_rerun_sends_nothing(desk):
    tws = desk.tws
    tws.plans.append(Plan.partial(3))
    no_repricing = OrderPolicy(steps=0)

    run(desk, policy=no_repricing)

    partial = tws.placed[0]["order_ref"]
    target = desk.target(partial)
    assert target["quantity"] == 8
    order = desk.ledger.order(partial)
    assert (order["status"], order["filled"], order["quantity"]) == ("partially_filled", 3, 8)
    [fill] = desk.ledger.fills().query("order_ref == @partial").itertuples()
    assert fill.quantity == 3
    assert fill.commission == pytest.approx(fake_commission(tws, partial))
    position = desk.ledger.open_positions().set_index("position_id").loc[partial]
    assert position["quantity"] == 3
    [working] = [o for o in desk.broker.open_orders() if o.order_ref == partial]
    assert (working.status, working.filled) == ("partially_filled", 3)
    legs = legs_from_json(target["ticker"], target["legs"])
    held = broker_positions(desk.broker)
    assert {x.contract_key: held[x.contract_key] for x in legs} == {
        x.contract_key: 3 * x.signed_ratio for x in legs
    }
    assert_ledger_equals_broker(desk, desk.broker)

    with fresh_broker(desk) as fresh:  # a rerun in a new process
        again = run(desk, fresh, no_repricing)
        assert_ledger_equals_broker(desk, fresh)

    assert not again.sent and partial in again.already_sent and again.reconciliation.agrees
    assert placed_per_ref(tws)[partial] == 1 and len(tws.placed) == 3
    assert len(desk.ledger.fills()) == 3
    assert desk.ledger.order(partial)["filled"] == 3


@pytest.mark.parametrize("drop", ["before_ack", "after_ack"])
def test_a_connection_lost_around_an_order_is_reconciled_on_reconnect(desk, drop):
    tws = desk.tws
    tws.plans += [Plan.fill(), Plan.fill(drop=drop), Plan.fill()]
    refs = list(desk.targets["order_ref"])

    if drop == "before_ack":
        with pytest.raises(BrokerConnectionError, match="may or may not have reached IB"):
            run(desk)
        lost = tws.placed[1]["order_ref"]
        assert len(tws.placed) == 2  # nothing more went out once the connection was gone
        assert desk.ledger.order(lost)["status"] == "planned"  # never heard back
        sent = set(desk.ledger.orders()["order_ref"])
        assert sent == {tws.placed[0]["order_ref"], lost}
    else:
        # acknowledged, then filled while disconnected: the next order reconnects (or the run
        # raises, which is acceptable too: the rerun reconciles)
        with contextlib.suppress(BrokerConnectionError):
            run(desk)
        lost = tws.placed[1]["order_ref"]
        # the acknowledgement came before the drop: the ledger knows the order reached IB
        assert desk.ledger.order(lost)["status"] in ("submitted", "filled")
        assert desk.ledger.order(lost)["broker_order_id"] == str(fake_order(tws, lost).perm_id)
    assert fake_order(tws, lost).status == "Filled"  # the exchange filled it all the same

    with fresh_broker(desk) as fresh:  # the rerun: a new process, a new connection
        report = run(desk, fresh)
        assert report.reconciliation.agrees
        assert lost not in report.sent
        assert_ledger_equals_broker(desk, fresh)
        assert not run(desk, fresh).sent  # and again: still nothing to send

    assert placed_per_ref(tws) == Counter(refs)  # exactly one placeOrder per intended trade
    order = desk.ledger.order(lost)
    assert order["status"] == "filled" and order["filled"] == 8
    assert order["broker_order_id"] == str(fake_order(tws, lost).perm_id)
    fills = desk.ledger.fills()
    assert list(fills["order_ref"]).count(lost) == 1  # the fill recorded once
    assert sorted(fills["order_ref"]) == sorted(refs)
    assert len(desk.ledger.open_positions()) == 3


def test_an_execution_placed_by_someone_else_is_a_ghost_fill_with_an_external_position(desk):
    tws = desk.tws
    run(desk)
    fly = [(90.0, 1, BUY), (100.0, 2, SELL), (110.0, 1, BUY)]
    legs = [(tws.option("AAA", EXPIRY, k, "C"), ratio, action) for k, ratio, action in fly]
    tws.place_external("AAA", legs, BUY, 2, 1.50)  # by hand in TWS: no orderRef, order id 0

    with fresh_broker(desk) as fresh:
        report = run(desk, fresh)
        held = broker_positions(fresh)

    assert not report.sent and len(tws.placed) == 3  # nothing of ours went out again
    assert len(report.reconciliation.ghost_fills) == 1
    assert report.reconciliation.agrees
    fills = desk.ledger.fills()
    [ghost] = fills.loc[fills["ghost"]].itertuples()
    assert ghost.exec_id == report.reconciliation.ghost_fills[0]
    assert (ghost.ticker, ghost.action, ghost.quantity) == ("AAA", BUY, 2)
    assert ghost.price == pytest.approx(1.50)
    assert ghost.commission == pytest.approx(4 * 2 * COMMISSION)
    assert ghost.order_ref not in set(desk.targets["order_ref"])
    positions = desk.ledger.open_positions()
    [external] = positions.loc[positions["ghost"]].itertuples()
    assert (external.track, external.quantity, external.structure) == ("external", 2, "call_fly")
    assert (external.lower, external.center, external.upper) == (90.0, 100.0, 110.0)
    assert pd.Timestamp(external.expiry).date() == EXPIRY  # the legs' expiry, not today
    assert external.position_id  # a position of its own, not an empty key
    assert desk.ledger.leg_positions(from_expiry=NEXT) == held
    assert held["AAA 2026-04-17 100.00 C"] == -16 - 4  # ours and theirs, netted at the broker
    assert desk.ledger.cash_balance() == pytest.approx(fake_cash(tws, desk.ledger.initial_capital))

    run(desk)  # seen again: not recorded twice
    assert len(desk.ledger.fills()) == 4


def test_two_outside_orders_without_a_reference_stay_apart_and_block_nothing(desk):
    tws = desk.tws
    fly = ((90.0, 1, BUY), (100.0, 2, SELL), (110.0, 1, BUY))
    calls = [(tws.option("AAA", EXPIRY, k, "C"), r, a) for k, r, a in fly]
    puts = [(tws.option("BBB", EXPIRY, k, "P"), r, a) for k, r, a in fly]
    tws.place_external("AAA", calls, BUY, 1, 1.10)  # both by hand in TWS: no orderRef
    tws.place_external("BBB", puts, BUY, 3, 0.90)

    report = run(desk)

    fills = desk.ledger.fills()
    ghosts = fills.loc[fills["ghost"]]
    assert sorted(ghosts["quantity"]) == [1, 3]
    assert ghosts["order_ref"].is_unique, "two outside orders were merged into one"
    positions = desk.ledger.open_positions()
    external = positions.loc[positions["ghost"]].set_index("ticker")
    assert sorted(external.index) == ["AAA", "BBB"]
    assert (external.loc["AAA", "quantity"], external.loc["BBB", "quantity"]) == (1, 3)
    assert report.refused == "" and len(report.sent) == 3  # our own orders still go out
    assert desk.ledger.leg_positions(from_expiry=NEXT) == broker_positions(desk.broker)


def test_five_runs_send_each_order_once(desk):
    tws = desk.tws
    refs = list(desk.targets["order_ref"])

    reports = [run(desk) for _ in range(3)]
    with fresh_broker(desk) as fresh:
        reports += [run(desk, fresh) for _ in range(2)]
        assert_ledger_equals_broker(desk, fresh)

    assert sorted(reports[0].sent) == sorted(refs)
    for r in reports[1:]:
        assert not r.sent and sorted(r.already_sent) == sorted(refs)
        assert not r.reconciliation.fills_added and r.reconciliation.agrees
    assert placed_per_ref(tws) == Counter(refs) and len(tws.placed) == 3
    assert len(tws.orders) == 3
    assert len(desk.ledger.fills()) == 3 and len(desk.ledger.orders()) == 3


def test_nothing_listening_names_the_port_and_leaves_nothing_sent(tmp_path, ib_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once the probe closes: nothing listens there
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(
        SESSION, chain, [{"ticker": "AAA", "lower": 95.0, "center": 100.0, "upper": 105.0}]
    )
    ledger = Ledger(tmp_path / "ledger.duckdb")
    targets, _, _ = plan_session(
        NEXT, ledger.positions_at_start(NEXT), chain, rankings, rankings, SECTORS,
        PortfolioRules(),
    )  # fmt: skip
    assert len(targets) == 1
    broker = IBKRBroker(port=port, connect_attempts=2, backoff_base=0.01, connect_timeout=1.0)

    with pytest.raises(BrokerConnectionError) as error:
        execute_session(NEXT, targets, ledger, broker, RiskLimits(), DECISION_TIME)

    text = str(error.value)
    assert "start TWS/IB Gateway" in text
    assert f"port {port}" in text and f"127.0.0.1:{port}" in text
    statuses = set(ledger.orders()["status"])
    assert statuses <= {"planned"}, statuses  # nothing recorded as sent
    assert ledger.fills().empty and ledger.open_positions().empty
    assert ledger.cash_balance() == pytest.approx(ledger.initial_capital)
