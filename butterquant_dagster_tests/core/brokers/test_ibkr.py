"""The IBKR adapter end to end: a real IB client against the fake TWS, once with ib_async and
once with ib_insync (the ``ib_client`` fixture forces each through BUTTERQUANT_IB_CLIENT)."""

from __future__ import annotations

import datetime as dt
import importlib
import socket
import threading
import time

import pytest

from butterquant_dagster.core.brokers.base import (
    BUY,
    SELL,
    BrokerConnectionError,
    BrokerError,
    ComboLeg,
    ComboOrder,
    OrderRejected,
    order_ref,
)
from butterquant_dagster.core.brokers.ibkr import (
    IB_ERRORS,
    IBKRBroker,
    Pacer,
    error_for,
    order_status,
    to_tick,
)
from butterquant_dagster_tests.fake_tws import BAG_CON_ID, FakeTWS, Plan, make_broker

EXPIRY = dt.date(2027, 1, 15)
SESSION = dt.date(2026, 11, 20)
STRIKES = [140.0, 145.0, 150.0, 155.0, 160.0]


def leg(strike: float, right: str, action: str, ratio: int = 1) -> ComboLeg:
    return ComboLeg("AAPL", EXPIRY, strike, right, action, ratio)


CALL_FLY = (leg(145, "C", BUY), leg(150, "C", SELL, 2), leg(155, "C", BUY))
PUT_FLY = (leg(140, "P", BUY), leg(150, "P", SELL, 2), leg(160, "P", BUY))
IRON_FLY = (leg(140, "P", BUY), leg(150, "P", SELL), leg(150, "C", SELL), leg(160, "C", BUY))


def combo(
    legs: tuple[ComboLeg, ...],
    limit: float,
    *,
    quantity: int = 1,
    action: str = BUY,
    structure: str = "call_fly",
    intent: str = "open",
) -> ComboOrder:
    ref = order_ref(SESSION, "AAPL", structure, legs, "ai", intent)
    return ComboOrder(ref, SESSION, "AAPL", structure, legs, action, quantity, limit, "ai")


def wait_for(predicate, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def tws(ib_client):
    with FakeTWS() as fake:
        fake.add_chain("AAPL", [EXPIRY], STRIKES)
        yield fake


@pytest.fixture
def broker(tws):
    with make_broker(tws) as b:
        yield b


def positions_of(broker: IBKRBroker) -> dict[str, int]:
    return {p.contract_key: p.quantity for p in broker.positions()}


def con_ids(tws: FakeTWS, legs: tuple[ComboLeg, ...]) -> list[int]:
    return [tws.option(x.symbol, x.expiry, x.strike, x.right).con_id for x in legs]


# ----------------------------------------------------------------------------- combos
def test_call_fly_end_to_end(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    order = combo(CALL_FLY, 1.237)

    placed = broker.place_combo(order)

    [sent] = tws.placed
    assert sent["sec_type"] == "BAG" and sent["symbol"] == "AAPL" and sent["exchange"] == "SMART"
    assert [(c, r, a) for c, r, a, _ in sent["legs"]] == list(
        zip(con_ids(tws, CALL_FLY), [1, 2, 1], [BUY, SELL, BUY], strict=True)
    )
    assert {x for *_, x in sent["legs"]} == {"SMART"}
    assert (sent["action"], sent["quantity"], sent["order_type"]) == (BUY, 1.0, "LMT")
    assert sent["limit"] == 1.23  # on the tick, rounded down for a buy
    assert (sent["tif"], sent["order_ref"], sent["account"]) == ("DAY", order.order_ref, "")
    assert placed.order_ref == order.order_ref and placed.legs == CALL_FLY
    assert placed.status in ("submitted", "filled")

    [done] = [o for o in broker.orders() if o.order_ref == order.order_ref]
    assert (done.status, done.filled, done.quantity) == ("filled", 1, 1)
    assert done.avg_fill_price == pytest.approx(1.23)
    assert done.legs == CALL_FLY

    [execution] = broker.executions(since)
    assert execution.order_ref == order.order_ref
    assert (execution.action, execution.quantity) == (BUY, 1)
    assert execution.price == pytest.approx(1.23)
    assert execution.commission == pytest.approx(4 * 0.65)  # the legs' reports, summed
    assert execution.legs == CALL_FLY
    assert execution.time.tzinfo is not None and execution.time >= since
    assert execution.broker_order_id == done.broker_order_id

    assert positions_of(broker) == {
        "AAPL 2027-01-15 145.00 C": 1,
        "AAPL 2027-01-15 150.00 C": -2,
        "AAPL 2027-01-15 155.00 C": 1,
    }


def test_put_fly_of_two_combos(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    order = combo(PUT_FLY, 0.85, quantity=2, structure="put_fly")

    broker.place_combo(order)

    [sent] = tws.placed
    assert [(c, r, a) for c, r, a, _ in sent["legs"]] == list(
        zip(con_ids(tws, PUT_FLY), [1, 2, 1], [BUY, SELL, BUY], strict=True)
    )
    assert sent["quantity"] == 2.0 and sent["limit"] == 0.85
    [execution] = broker.executions(since)
    assert (execution.quantity, execution.price) == (2, pytest.approx(0.85))
    assert execution.commission == pytest.approx(8 * 0.65)
    assert execution.legs == PUT_FLY
    assert positions_of(broker) == {
        "AAPL 2027-01-15 140.00 P": 2,
        "AAPL 2027-01-15 150.00 P": -4,
        "AAPL 2027-01-15 160.00 P": 2,
    }


def test_iron_fly_is_a_credit_with_four_legs_and_closes_with_the_same_bag(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    order = combo(IRON_FLY, -2.345, structure="iron_fly")

    broker.place_combo(order)

    [sent] = tws.placed
    assert sent["limit"] == -2.35  # a credit is negative; rounding asks for more, not less
    assert [(c, r, a) for c, r, a, _ in sent["legs"]] == list(
        zip(con_ids(tws, IRON_FLY), [1, 1, 1, 1], [BUY, SELL, SELL, BUY], strict=True)
    )
    assert all(c > 0 for c, *_ in sent["legs"])
    [opened] = broker.executions(since)
    assert (opened.action, opened.price) == (BUY, pytest.approx(-2.35))
    assert opened.commission == pytest.approx(4 * 0.65)
    assert opened.legs == IRON_FLY
    assert positions_of(broker) == {
        "AAPL 2027-01-15 140.00 P": 1,
        "AAPL 2027-01-15 150.00 P": -1,
        "AAPL 2027-01-15 150.00 C": -1,
        "AAPL 2027-01-15 160.00 C": 1,
    }

    close = combo(IRON_FLY, -0.40, action=SELL, structure="iron_fly", intent="close")
    broker.place_combo(close)

    closing = tws.placed[-1]
    assert closing["action"] == SELL and closing["legs"] == sent["legs"]  # IB reverses the legs
    assert closing["limit"] == -0.40
    executions = {e.order_ref: e for e in broker.executions(since)}
    assert executions[close.order_ref].action == SELL
    assert executions[close.order_ref].legs == IRON_FLY  # as a BUY of the combo takes them
    assert positions_of(broker) == {}


def test_a_rejection_comes_back_rejected_with_the_reason(tws, broker):
    tws.plans.append(Plan.reject("insufficient margin for this order"))
    order = combo(CALL_FLY, 1.20)

    placed = broker.place_combo(order)

    assert placed.status == "rejected"
    assert "insufficient margin for this order" in placed.reason
    assert "201" in placed.reason
    [seen] = [o for o in broker.orders() if o.order_ref == order.order_ref]
    assert seen.status == "rejected" and seen.filled == 0
    assert "insufficient margin for this order" in seen.reason  # a completed order, same session
    assert positions_of(broker) == {}


def test_a_partial_fill_stays_open_with_what_filled(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    tws.plans.append(Plan.partial(2))
    order = combo(CALL_FLY, 1.10, quantity=5)

    broker.place_combo(order)

    [working] = [o for o in broker.open_orders() if o.order_ref == order.order_ref]
    assert (working.status, working.filled, working.quantity) == ("partially_filled", 2, 5)
    [execution] = broker.executions(since)
    assert execution.quantity == 2 and execution.order_ref == order.order_ref
    assert execution.commission == pytest.approx(2 * 4 * 0.65)
    assert positions_of(broker)["AAPL 2027-01-15 150.00 C"] == -4


def test_cancel_a_working_order(tws, broker):
    tws.plans.append(Plan.work())
    order = combo(CALL_FLY, 0.50)
    assert broker.place_combo(order).status == "submitted"

    cancelled = broker.cancel(order.order_ref)

    assert cancelled.status == "cancelled" and "202" in cancelled.reason
    assert tws.orders[-1].status == "Cancelled"
    assert broker.open_orders() == []
    assert broker.cancel(order.order_ref).status == "cancelled"  # done: reported, not resent
    with pytest.raises(BrokerError, match="no order nope"):
        broker.cancel("nope")


def test_cancelling_someone_elses_order_is_refused_not_reported_cancelled(tws, broker):
    legs = [(tws.option("AAPL", EXPIRY, 150, "C"), 1, BUY)]
    tws.place_external(
        "AAPL", legs, BUY, 1, 3.0, order_ref="theirs", client_id=99, plan=Plan.work()
    )

    with pytest.raises(BrokerError, match=r"refused to cancel theirs.*10147"):
        broker.cancel("theirs")
    assert tws.orders[-1].status == "Submitted"
    assert [o.status for o in broker.open_orders()] == ["submitted"]


def test_what_if_estimates_without_placing(tws, broker):
    estimate = broker.what_if(combo(CALL_FLY, 1.23))

    assert estimate.commission == pytest.approx(4 * 0.65)
    assert estimate.init_margin_change == pytest.approx(123.0)
    assert tws.placed == [] and len(tws.what_ifs) == 1
    assert broker.orders() == []


# -------------------------------------------------------------------- lost connections
def test_connection_dropped_after_the_ack_then_found_on_reconnect(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    tws.plans.append(Plan.fill(drop="after_ack"))
    order = combo(CALL_FLY, 1.23)

    placed = broker.place_combo(order)  # acknowledged; the fill happens while disconnected

    assert placed.status == "submitted"
    assert wait_for(lambda: tws.connections == 0)
    [found] = [o for o in broker.orders() if o.order_ref == order.order_ref]
    assert found.status == "filled" and found.filled == 1
    assert [e.order_ref for e in broker.executions(since)] == [order.order_ref]
    assert len(tws.placed) == 1  # reconciled, never sent twice
    assert len(tws.requests(71)) == 2  # startApi: connected, then reconnected


def test_connection_dropped_before_the_ack_raises_then_reconciles(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    tws.plans.append(Plan.fill(drop="before_ack"))
    order = combo(IRON_FLY, -2.00, structure="iron_fly")

    with pytest.raises(BrokerConnectionError, match="may or may not have reached IB"):
        broker.place_combo(order)

    with make_broker(tws) as fresh:  # a rerun: a new process, a new broker
        assert [o.status for o in fresh.orders() if o.order_ref == order.order_ref] == ["filled"]
        [execution] = fresh.executions(since)
        assert execution.order_ref == order.order_ref and execution.legs == IRON_FLY
    assert len(tws.placed) == 1


def test_nothing_listening_says_what_to_do(ib_client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    b = IBKRBroker(port=port, connect_attempts=2, backoff_base=0.01, connect_timeout=1.0)

    started = time.monotonic()
    with pytest.raises(BrokerConnectionError) as error:
        b.account()

    text = str(error.value)
    assert f"no TWS or IB Gateway answers at 127.0.0.1:{port}" in text
    assert f"start TWS/IB Gateway and enable the API on port {port}" in text
    assert "Configure > API > Settings" in text
    assert time.monotonic() - started < 2.0


def test_a_handshake_that_never_completes_leaves_no_socket_open(ib_client):
    """TWS accepting TCP with the API off: each attempt times out, and the client closes its
    socket then and there (the silent server reads EOF), not when the broker is collected."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(3.0)
        port = server.getsockname()[1]
        b = IBKRBroker(port=port, connect_attempts=2, backoff_base=0.01, connect_timeout=0.3)
        accepted: list[socket.socket] = []

        def accept() -> None:
            for _ in range(2):
                accepted.append(server.accept()[0])

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with pytest.raises(BrokerConnectionError, match="did not complete the API handshake"):
            b.account()
        thread.join(timeout=3.0)

        assert len(accepted) == 2
        for peer in accepted:
            with peer:
                peer.settimeout(2.0)
                while peer.recv(4096):  # the client's hello, then EOF once it hung up
                    pass


def test_a_second_connection_with_the_same_client_id_is_refused(tws, broker):
    broker.account()
    other = make_broker(tws, connect_attempts=1, connect_timeout=0.5)

    with pytest.raises(BrokerConnectionError, match="client id 17: it is already in use"):
        other.account()
    assert broker.positions() == []  # the first connection is unharmed


def test_resubscribes_after_data_loss_and_holds_orders_while_ib_is_unreachable(tws, broker):
    broker.account()
    updates = len(tws.requests(6))

    tws.send_error(-1, 1101, "Connectivity between IB and TWS has been restored - data lost.")
    broker.positions()
    assert len(tws.requests(6)) == updates + 1  # reqAccountUpdates sent again

    tws.send_error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
    with pytest.raises(BrokerConnectionError, match="1100"):
        broker.place_combo(combo(CALL_FLY, 1.23))
    assert tws.placed == []

    tws.send_error(-1, 1102, "Connectivity between IB and TWS has been restored - data kept.")
    assert broker.place_combo(combo(CALL_FLY, 1.23)).order_ref
    assert len(tws.placed) == 1


# ------------------------------------------------------------------ refusals and ticks
def test_unknown_leg_is_rejected_by_name_before_any_order(tws, broker):
    legs = (leg(145, "C", BUY), leg(152.5, "C", SELL, 2), leg(160, "C", BUY))

    with pytest.raises(OrderRejected, match=r"AAPL 2027-01-15 152\.50 C.*\b200\b"):
        broker.place_combo(combo(legs, 1.00))
    assert tws.placed == []


@pytest.mark.parametrize(
    ("price", "action", "tick", "expected"),
    [
        (1.237, BUY, 0.01, 1.23),
        (1.231, SELL, 0.01, 1.24),
        (1.23, BUY, 0.01, 1.23),  # already on the tick: unchanged despite float noise
        (0.1 + 0.2, BUY, 0.01, 0.30),
        (-2.345, BUY, 0.01, -2.35),  # a credit bought: ask for more credit
        (-2.345, SELL, 0.01, -2.34),
        (1.23, BUY, 0.05, 1.20),
        (1.23, SELL, 0.05, 1.25),
    ],
)
def test_limits_round_to_the_tick_never_more_aggressive(price, action, tick, expected):
    assert to_tick(price, tick, action) == pytest.approx(expected, abs=1e-12)


def test_price_off_the_exchange_tick_is_refused_naming_the_price(tws):
    tws.combo_tick = 0.05
    with make_broker(tws) as b, pytest.raises(OrderRejected, match=r"limit 1\.23.*110"):
        b.place_combo(combo(CALL_FLY, 1.23))
    with make_broker(tws, combo_tick=0.05) as b:  # told the tick, it rounds to it instead
        assert b.place_combo(combo(CALL_FLY, 1.23)).status in ("submitted", "filled")
    assert tws.placed[-1]["limit"] == 1.20


# ----------------------------------------------------------------------------- pacing
def test_pacing_keeps_requests_below_the_configured_rate(tws):
    rate = 20.0
    with make_broker(tws, max_requests_per_second=rate) as b:
        b.account()
        after_connect = len(tws.requests(61))
        for _ in range(10):
            b.positions()
    arrivals = tws.requests(61)[after_connect:]
    assert len(arrivals) == 10
    assert arrivals[-1] - arrivals[0] >= 9 / rate * 0.9  # measured where TWS receives them


def test_pacer_spaces_bookings():
    now = [100.0]
    pacer = Pacer(40.0, clock=lambda: now[0])
    assert [pacer.delay() for _ in range(3)] == pytest.approx([0.0, 0.025, 0.05])
    now[0] += 1.0
    assert pacer.delay() == 0.0
    assert Pacer(0).delay() == 0.0 and Pacer(0).delay() == 0.0


# -------------------------------------------------------------------- error and status
@pytest.mark.parametrize(
    ("code", "exception"),
    [
        (200, OrderRejected),
        (201, OrderRejected),
        (110, OrderRejected),
        (504, BrokerConnectionError),
        (326, BrokerConnectionError),
        (202, None),
        (1100, None),
        (1101, None),
        (1102, None),
        (2104, None),
    ],
)
def test_error_codes_map_by_meaning(code, exception):
    error = error_for(code, "IB says so", "leg BUY 1 AAPL 2027-01-15 150.00 C")
    if exception is None:
        assert error is None
    else:
        assert type(error) is exception
        assert "AAPL 2027-01-15 150.00 C" in str(error) and str(code) in str(error)


def test_error_table_covers_the_codes_the_adapter_acts_on():
    assert {110, 200, 201, 202, 504, 1100, 1101, 1102} <= set(IB_ERRORS)
    assert IB_ERRORS[1101].outcome == "resubscribe"


@pytest.mark.parametrize(
    ("ib_status", "filled", "expected"),
    [
        ("PendingSubmit", 0, "submitted"),
        ("PreSubmitted", 0, "submitted"),
        ("Submitted", 0, "submitted"),
        ("Submitted", 2, "partially_filled"),
        ("Filled", 5, "filled"),
        ("Cancelled", 0, "cancelled"),
        ("ApiCancelled", 0, "cancelled"),
        ("Inactive", 0, "rejected"),
    ],
)
def test_order_statuses_map_to_ours(ib_status, filled, expected):
    assert order_status(ib_status, filled, 5) == expected


# ----------------------------------------------------------- account, chains, others
def test_account_is_paper_with_summary(tws, broker):
    account = broker.account()

    assert (account.account_id, account.paper) == ("DU1234567", True)
    assert account.net_liquidation == pytest.approx(100000.0)
    assert account.cash == pytest.approx(97500.0)


def test_a_configured_account_tws_does_not_manage_is_refused(tws):
    with make_broker(tws, account="U7654321") as b:
        with pytest.raises(BrokerError, match=r"U7654321.*DU1234567"):
            b.account()
        with pytest.raises(BrokerError, match="U7654321"):
            b.place_combo(combo(CALL_FLY, 1.23))
    assert tws.placed == []


def test_a_live_account_is_not_paper_and_orders_carry_it(ib_client):
    with FakeTWS(accounts=("U7654321",)) as fake:
        fake.add_chain("AAPL", [EXPIRY], STRIKES)
        with make_broker(fake, account="U7654321") as b:
            assert b.account().paper is False
            b.place_combo(combo(CALL_FLY, 1.23))
        assert fake.placed[0]["account"] == "U7654321"


def test_option_params_from_the_chain(tws, broker):
    params = broker.option_params("AAPL")

    assert params.expirations == (EXPIRY,)
    assert params.strikes == tuple(STRIKES)
    with pytest.raises(BrokerError, match="MSFT"):
        broker.option_params("MSFT")
    tws.add_stock("TSLA")  # listed, but no options
    with pytest.raises(BrokerError, match="no option chain for TSLA"):
        broker.option_params("TSLA")


def test_someone_elses_fills_show_with_their_reference(tws, broker):
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    put = tws.option("AAPL", EXPIRY, 150, "P")
    fly = [(145, 1, BUY), (150, 2, SELL), (155, 1, BUY)]
    legs = [(tws.option("AAPL", EXPIRY, k, "C"), ratio, action) for k, ratio, action in fly]
    tws.place_external("AAPL", legs, BUY, 1, 1.05, order_ref="other-program", client_id=99)
    tws.place_external("AAPL", put, SELL, 3, 2.10)  # by hand in TWS: no reference, id 0

    executions = broker.executions(since)

    by_ref = {e.order_ref: e for e in executions}
    assert set(by_ref) == {"other-program", ""}
    assert by_ref["other-program"].legs == CALL_FLY and by_ref["other-program"].quantity == 1
    manual = by_ref[""]
    assert (manual.action, manual.quantity, manual.price) == (SELL, 3, pytest.approx(2.10))
    assert manual.legs == (leg(150, "P", BUY),)
    assert {o.order_ref for o in broker.orders()} == {"other-program", ""}
    assert positions_of(broker)["AAPL 2027-01-15 150.00 P"] == -3


def test_executions_before_since_are_left_out(tws, broker):
    tws.now = lambda: dt.datetime(2026, 11, 20, 14, 30, tzinfo=dt.UTC)
    broker.place_combo(combo(CALL_FLY, 1.23))
    tws.now = lambda: dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC)
    later = combo(PUT_FLY, 0.90, structure="put_fly")
    broker.place_combo(later)

    executions = broker.executions(dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC))

    assert [e.order_ref for e in executions] == [later.order_ref]
    assert executions[0].time == dt.datetime(2026, 11, 20, 15, 30, tzinfo=dt.UTC)


def test_from_settings_reads_the_environment(monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_IB_HOST", "10.0.0.5")
    monkeypatch.setenv("BUTTERQUANT_IB_PORT", "4002")
    monkeypatch.setenv("BUTTERQUANT_IB_CLIENT_ID", "23")
    monkeypatch.setenv("BUTTERQUANT_IB_ACCOUNT", "DU999")

    b = IBKRBroker.from_settings(backoff_base=0.01)

    assert (b.host, b.port, b.client_id, b.account_id) == ("10.0.0.5", 4002, 23, "DU999")
    assert b.backoff_base == 0.01
    monkeypatch.setenv("BUTTERQUANT_IB_PORT", "seven")
    with pytest.raises(BrokerError, match="BUTTERQUANT_IB_PORT"):
        IBKRBroker.from_settings()


def test_defaults_are_tws_paper():
    b = IBKRBroker()
    assert (b.host, b.port) == ("127.0.0.1", 7497)


def test_connects_lazily_and_closes(tws):
    b = make_broker(tws)
    assert tws.connections == 0  # nothing until first use
    with b:
        b.positions()
        assert tws.connections == 1
    # the client hung up (not the fake), while ``b`` is still referenced: no GC involved
    assert wait_for(lambda: tws.hangups == [17])
    assert tws.connections == 0 and b._ib is None


def test_the_with_block_closes_the_connection_when_its_body_fails(tws):
    b = make_broker(tws)
    with pytest.raises(OrderRejected), b:
        b.account()
        b.place_combo(combo((leg(999, "C", BUY), leg(1000, "C", SELL)), 1.0))  # unknown leg
    assert wait_for(lambda: tws.hangups == [17])
    assert tws.connections == 0


def test_the_broker_speaks_through_the_chosen_client(tws, broker, ib_client):
    account = broker.account()

    assert broker.client.split() == [ib_client, importlib.import_module(ib_client).__version__]
    assert account.extra["ib_client"] == broker.client
    assert type(broker._ib).__module__ == f"{ib_client}.ib"
    assert tws.requests(71)  # startApi: a real handshake with the fake, not a stub


def test_the_fake_reports_combo_fills_as_ib_does(tws, broker):
    broker.place_combo(combo(CALL_FLY, 1.23))

    bag = [e for e in tws.executions if e.sec_type == "BAG"]
    legs = [e for e in tws.executions if e.sec_type == "OPT"]
    assert [(e.con_id, e.shares, e.price) for e in bag] == [(BAG_CON_ID, 1.0, 1.23)]
    assert [e.shares for e in legs] == [1.0, 2.0, 1.0]
    assert sum((1 if e.side == "BOT" else -1) * e.shares * e.price for e in legs) == (
        pytest.approx(1.23)
    )
