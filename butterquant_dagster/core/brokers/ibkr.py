"""Interactive Brokers (TWS or IB Gateway) behind the :class:`~.base.Broker` protocol.

The IB API client (ib_async, or ib_insync: :mod:`.ib_client` picks) speaks the socket
protocol; this module adds what a trading system must not get wrong on top of it: a clear error
when nothing listens, reconnection, pacing below IB's limit of 50 messages a second (IB
disconnects clients that exceed it), every leg qualified to a conId before an order exists,
request errors raised instead of answered with empty lists, and IB's per-leg reports folded
back into the combos the strategy trades.

How IB reports a combo (BAG) order, which :meth:`IBKRBroker.executions` relies on:

- a fill produces one execution per leg (the option, ``shares`` = combos x ratio, that leg's
  price and side) and one execution of the BAG itself (secType BAG, conId 28812380 for every
  combo, ``shares`` in combos, ``price`` the net price per share, negative for a credit, side
  BOT/SLD of the combo). All carry the order's orderId, permId, clientId and orderRef. Public
  code built on ib_insync/ib_async filters ``fill.contract.secType == 'BAG'`` out of leg fills
  ("do not store information on combo executions") and pins "IBKR includes the BAG contract's
  own execution at the net price" in its tests; the execution fields are documented as "used in
  regular trades, combo trades and legs of the combo" (Execution.cumQty/avgPrice).
- commissions come in separate commissionReport messages keyed by execId, after their
  execution. Legs carry the commission; whether the BAG's own report carries anything was not
  established, so a combo's commission is the sum over its leg executions, and the BAG's own
  only when no leg reported one - never both, so nothing is counted twice.
- reqExecutions returns the current day only (TWS can be set to keep up to 7 days), and other
  clients' executions and commission reports reach only the Master API client id configured in
  TWS: use that id here for reconciliation to see orders placed by hand or by other programs.
- a combo's fill price per share is IB's quote convention: a credit is a negative limit and a
  negative fill price; closing sends the same BAG with action SELL (IB reverses each leg).

Use one instance from one thread: the client runs its event loop in the calling thread. Open it
with ``with``: the connection is closed on leaving the block, never by garbage collection.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, TypeVar

from butterquant_dagster.core.brokers import ib_client
from butterquant_dagster.core.brokers.base import (
    BUY,
    SELL,
    Account,
    BrokerConnectionError,
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    ComboLeg,
    ComboOrder,
    ComboQuote,
    Execution,
    OrderRejected,
)
from butterquant_dagster.core.brokers.ib_client import UNSET_DOUBLE
from butterquant_dagster.core.settings import env

log = logging.getLogger(__name__)
T = TypeVar("T")

PENDING = frozenset({"", "PendingSubmit", "ApiPending"})
LINK_OUTCOMES = frozenset({"link_down", "resubscribe", "link_up"})
REFUSALS = frozenset({"refused_price", "unknown_contract", "rejected"})
CANCEL_REFUSALS = frozenset({161, 10147, 10148})  # not cancellable / unknown order id
# A change IB will not make: a done order (104), an id clash (103), a price off the tick (110).
MODIFY_REFUSALS = frozenset({103, 104, 110})
DONE_STATUSES = frozenset({"Cancelled", "ApiCancelled", "Filled", "Inactive"})


@dataclass(frozen=True)
class IBCode:
    meaning: str
    outcome: str  # what it does here, see error_for()


# IB error codes that change what we do, in one place
# (https://interactivebrokers.github.io/tws-api/message_codes.html).
IB_ERRORS: dict[int, IBCode] = {
    110: IBCode("price does not conform to the minimum tick", "refused_price"),
    200: IBCode("no security definition", "unknown_contract"),
    201: IBCode("order rejected", "rejected"),
    202: IBCode("order cancelled", "cancelled"),
    326: IBCode("client id already in use", "connection"),
    504: IBCode("not connected", "connection"),
    1100: IBCode("connectivity between TWS and IB lost", "link_down"),
    1101: IBCode("connectivity restored, data lost: resubscribe", "resubscribe"),
    1102: IBCode("connectivity restored, data maintained", "link_up"),
}

# IB order statuses -> base.ORDER_STATUSES ("submitted" is widened to partially_filled by fills)
IB_STATUSES = {
    "PendingSubmit": "submitted",
    "ApiPending": "submitted",
    "PreSubmitted": "submitted",
    "Submitted": "submitted",
    "PendingCancel": "submitted",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "ApiCancelled": "cancelled",
    "Inactive": "rejected",
}


def error_for(code: int, message: str, subject: str) -> BrokerError | None:
    """The exception an IB error code means for ``subject``; None when it is not one."""
    known = IB_ERRORS.get(code)
    outcome = _outcome(code)
    text = f"{subject}: IB error {code} ({known.meaning if known else 'unlisted'}): {message}"
    if outcome in ("unknown_contract", "refused_price", "rejected"):
        return OrderRejected(text)
    if outcome == "connection":
        return BrokerConnectionError(text)
    return None


def order_status(ib_status: str, filled: float, quantity: float) -> str:
    status = IB_STATUSES.get(ib_status, "submitted")
    if status == "submitted" and 0 < filled < quantity:
        return "partially_filled"
    return status


def to_tick(price: float, tick: float, action: str) -> float:
    """The limit on the tick, never more aggressive than asked: a BUY rounds down (pays less
    or asks more credit), a SELL rounds up, so rounding can cost a fill but never money."""
    steps = Decimal(str(price)) / Decimal(str(tick))
    steps = steps.quantize(Decimal(1), rounding=ROUND_FLOOR if action == BUY else ROUND_CEILING)
    return float(steps * Decimal(str(tick)))


@dataclass(frozen=True)
class OptionParams:
    symbol: str
    expirations: tuple[dt.date, ...]
    strikes: tuple[float, ...]
    multiplier: str = "100"
    trading_class: str = ""


@dataclass(frozen=True)
class WhatIf:
    """IB's estimate of an order before it is sent (margin in dollars)."""

    init_margin_change: float | None
    maint_margin_change: float | None
    commission: float | None
    min_commission: float | None
    max_commission: float | None
    warning: str = ""


class Pacer:
    """Spaces requests at least ``1/per_second`` apart (0 turns pacing off).

    IB allows 50 messages a second and disconnects a client above it; the client's own throttle
    (ib_insync's and ib_async's alike) sits at 45, so ours, below that, keeps the whole
    connection under the limit with room for the messages the client sends by itself.
    """

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self._clock = clock
        self._next = -math.inf

    def delay(self) -> float:
        """Seconds to wait before the next request, which is then booked."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self.interval
        return start - now


@dataclass
class _Session:
    """What an IB error or status event told us, per request id (orderId for orders)."""

    errors: dict[int, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    link_down: bool = False
    stale: bool = False


class IBKRBroker:
    name = "ibkr"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 17,
        account: str = "",
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 15.0,
        order_ack_timeout: float = 10.0,
        connect_attempts: int = 3,
        backoff_base: float = 0.5,
        max_requests_per_second: float = 40.0,
        combo_tick: float = 0.01,
        poll_interval: float = 0.02,
    ) -> None:
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.account_id = account.strip()
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.order_ack_timeout = order_ack_timeout
        self.connect_attempts = max(1, connect_attempts)
        self.backoff_base = backoff_base
        self.combo_tick = combo_tick
        self.poll_interval = poll_interval
        self._pacer = Pacer(max_requests_per_second)
        # the IB client module (ib_async or ib_insync), chosen once per broker
        self._api = ib_client.load()
        self.client = ib_client.describe(self._api)
        self._ib: Any = None
        self._session = _Session()
        self._con_ids: dict[tuple[str, dt.date, float, str], int] = {}
        self._contracts: dict[int, tuple[str, dt.date, float, str]] = {}

    @classmethod
    def from_settings(cls, **overrides: Any) -> IBKRBroker:
        kwargs: dict[str, Any] = {
            "host": env("BUTTERQUANT_IB_HOST"),
            "port": _int_setting("BUTTERQUANT_IB_PORT"),
            "client_id": _int_setting("BUTTERQUANT_IB_CLIENT_ID"),
            "account": env("BUTTERQUANT_IB_ACCOUNT"),
        }
        return cls(**{**kwargs, **overrides})

    # --- connection ------------------------------------------------------------------------

    def __enter__(self) -> IBKRBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ib is not None:
            self._ib.disconnect()
            self._ib = None

    def _connected(self) -> Any:
        """The connection, made on first use and remade after a loss, with backoff."""
        ib = self._ib
        if ib is not None:
            _serve(ib, 0)  # read what already arrived: a dropped socket, a 1100/1101
        if ib is not None and ib.isConnected():
            if self._session.stale:
                self._resubscribe(ib)
            return ib
        _ensure_event_loop()
        ib = ib or self._new_ib()
        failure: BaseException | None = None
        for attempt in range(self.connect_attempts):
            if attempt:
                time.sleep(self.backoff_base * 2 ** (attempt - 1))
            self._session.errors.pop(-1, None)
            try:
                ib.connect(
                    self.host,
                    self.port,
                    clientId=self.client_id,
                    timeout=self.connect_timeout,
                    account=self.account_id,
                )
            except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                failure = exc
                log.warning("IB connect attempt %d failed: %r", attempt + 1, exc)
                continue
            except self._api.RequestError as exc:  # TWS answered, then refused a setup request
                ib.disconnect()
                raise BrokerConnectionError(
                    f"TWS at {self.host}:{self.port} refused to set up the session: "
                    f"IB error {exc.code}: {exc.message}"
                ) from exc
            self._ib = ib
            self._session.link_down = self._session.stale = False
            log.info(
                "IB connected to %s:%s as client id %d with %s",
                self.host,
                self.port,
                self.client_id,
                self.client,
            )
            try:
                self._check_account(ib.managedAccounts())
            except BrokerError:
                ib.disconnect()  # so every call fails the same way, not only the first
                raise
            return ib
        raise self._connect_error(failure)

    def _new_ib(self) -> Any:
        ib = self._api.IB()
        ib.RaiseRequestErrors = True  # an error is an exception, never an empty list
        ib.RequestTimeout = self.request_timeout
        ib.errorEvent += self._on_error
        self._ib = ib
        return ib

    def _connect_error(self, failure: BaseException | None) -> BrokerConnectionError:
        where = f"{self.host}:{self.port}"
        in_use = [msg for code, msg in self._session.errors.get(-1, []) if code == 326]
        if in_use:
            return BrokerConnectionError(
                f"TWS at {where} refused client id {self.client_id}: it is already in use by "
                "another connection; set BUTTERQUANT_IB_CLIENT_ID to a free id"
            )
        if isinstance(failure, TimeoutError):
            return BrokerConnectionError(
                f"TWS/IB Gateway at {where} accepted the connection but did not complete the "
                f"API handshake within {self.connect_timeout}s: check that the API is enabled "
                "(Configure > API > Settings) and that client id "
                f"{self.client_id} is free"
            )
        return BrokerConnectionError(
            f"no TWS or IB Gateway answers at {where}: start TWS/IB Gateway and enable the API "
            f"on port {self.port} (Configure > API > Settings) "
            f"[{self.connect_attempts} attempts, last: {failure!r}]"
        )

    def _on_error(self, req_id: int, code: int, message: str, _contract: object) -> None:
        self._session.errors[req_id].append((code, message))
        outcome = _outcome(code)
        if outcome == "link_down":
            self._session.link_down = True
            log.warning("IB %d: TWS lost its connection to IB: %s", code, message)
        elif outcome in ("resubscribe", "link_up"):
            self._session.link_down = False
            self._session.stale = outcome == "resubscribe"
            log.warning("IB %d: TWS reconnected to IB: %s", code, message)

    def _resubscribe(self, ib: Any) -> None:
        """After 1101 TWS dropped our subscriptions: renew the account stream the client keeps."""
        self._session.stale = False
        account = self.account_id or (ib.managedAccounts() or [""])[0]
        self._call("resubscribe account updates", lambda ib: ib.reqAccountUpdates(account))

    def _call(self, what: str, request: Callable[[Any], T], *, retry: bool = True) -> T:
        """One paced request; IB's failures become BrokerErrors. Reads (``retry``) are sent
        once more on a fresh connection when the old one turns out to be dead."""
        ib = self._connected()
        wait = self._pacer.delay()
        if wait > 0:
            _serve(ib, wait)
        try:
            return request(ib)
        except self._api.RequestError as exc:
            raise error_for(exc.code, exc.message, what) or BrokerError(
                f"{what}: IB error {exc.code}: {exc.message}"
            ) from exc
        except TimeoutError as exc:
            raise BrokerError(f"{what}: no answer from IB within {self.request_timeout}s") from exc
        except ConnectionError as exc:
            if retry:
                return self._call(what, request, retry=False)
            raise BrokerConnectionError(f"{what}: the connection to TWS was lost ({exc})") from exc

    def _check_account(self, managed: list[str]) -> str:
        """The account orders go to; never one TWS does not manage, never a guess."""
        if self.account_id:
            if self.account_id not in managed:
                raise BrokerError(
                    f"account {self.account_id} (BUTTERQUANT_IB_ACCOUNT) is not among the accounts "
                    f"this TWS manages: {', '.join(managed) or 'none'}"
                )
            return self.account_id
        if len(managed) != 1:
            raise BrokerError(
                f"TWS manages {len(managed)} accounts ({', '.join(managed)}): set "
                "BUTTERQUANT_IB_ACCOUNT to the one to trade"
            )
        return managed[0]

    # --- account and chains ----------------------------------------------------------------

    def account(self) -> Account:
        ib = self._connected()
        managed = list(ib.managedAccounts())
        account_id = self._check_account(managed)
        try:
            values = self._call("account summary", lambda ib: ib.accountSummary(account_id))
        except BrokerError as exc:
            log.warning("IB account summary unavailable: %s", exc)
            values = []
        summary = {v.tag: v.value for v in values if v.currency in ("USD", "BASE", "")}
        return Account(
            account_id=account_id,
            paper=account_id.startswith("DU"),
            net_liquidation=_number(summary.get("NetLiquidation")),
            cash=_number(summary.get("TotalCashValue")),
            extra={
                "managed_accounts": managed,
                "account_type": summary.get("AccountType", ""),
                "ib_client": self.client,
            },
        )

    def option_params(self, symbol: str) -> OptionParams:
        stock = self._api.Stock(symbol, "SMART", "USD")
        try:
            self._call(f"stock {symbol}", lambda ib: ib.qualifyContracts(stock))
        except OrderRejected as exc:  # no order here: a plain broker error
            raise BrokerError(str(exc)) from exc
        if not stock.conId:
            raise BrokerError(f"IB did not resolve the stock {symbol} to one contract")
        chains = self._call(
            f"option chain of {symbol}",
            lambda ib: ib.reqSecDefOptParams(symbol, "", "STK", stock.conId),
        )
        chains = [c for c in chains if c.exchange == "SMART"] or chains
        if not chains or not any(c.expirations and c.strikes for c in chains):
            raise BrokerError(f"IB returned no option chain for {symbol}")
        return OptionParams(
            symbol=symbol,
            expirations=tuple(sorted({_ib_date(e) for c in chains for e in c.expirations})),
            strikes=tuple(sorted({float(s) for c in chains for s in c.strikes})),
            multiplier=chains[0].multiplier,
            trading_class=chains[0].tradingClass,
        )

    # --- orders ----------------------------------------------------------------------------

    def _qualify(self, leg: ComboLeg) -> int:
        key = (leg.symbol, leg.expiry, float(leg.strike), leg.right)
        if key in self._con_ids:
            return self._con_ids[key]
        option = self._api.Option(
            symbol=leg.symbol,
            lastTradeDateOrContractMonth=f"{leg.expiry:%Y%m%d}",
            strike=float(leg.strike),
            right=leg.right,
            exchange="SMART",
            multiplier="100",
            currency="USD",
        )
        subject = f"leg {leg.action} {leg.ratio} {leg.contract_key}"
        self._call(subject, lambda ib: ib.qualifyContracts(option))
        if not option.conId:
            raise OrderRejected(f"{subject}: IB did not resolve it to one listed contract")
        self._con_ids[key] = option.conId
        self._contracts[option.conId] = key
        return option.conId

    def _bag(self, order: ComboOrder) -> Any:
        """The combo as IB trades it; every leg has a conId before any order exists."""
        legs = [
            self._api.ComboLeg(
                conId=self._qualify(leg), ratio=leg.ratio, action=leg.action, exchange="SMART"
            )
            for leg in order.legs
        ]
        return self._api.Contract(
            secType="BAG", symbol=order.symbol, currency="USD", exchange="SMART", comboLegs=legs
        )

    def _limit_order(self, order: ComboOrder) -> Any:
        if order.action not in (BUY, SELL) or order.quantity <= 0:
            raise OrderRejected(
                f"{order.order_ref}: invalid action/quantity {order.action} {order.quantity}"
            )
        limit = to_tick(order.limit_price, self.combo_tick, order.action)
        ib_order = self._api.LimitOrder(order.action, order.quantity, limit, tif=order.tif or "DAY")
        ib_order.orderRef = order.order_ref
        if self.account_id:
            ib_order.account = self.account_id
        return ib_order

    def what_if(self, order: ComboOrder) -> WhatIf:
        """IB's margin and commission estimate for the order; nothing is sent to the market."""
        bag, ib_order = self._bag(order), self._limit_order(order)
        state = self._call(f"what-if {order.order_ref}", lambda ib: ib.whatIfOrder(bag, ib_order))
        if not state:
            raise BrokerError(f"what-if {order.order_ref}: IB returned no estimate")
        return WhatIf(
            init_margin_change=_number(state.initMarginChange),
            maint_margin_change=_number(state.maintMarginChange),
            commission=_number(state.commission),
            min_commission=_number(state.minCommission),
            max_commission=_number(state.maxCommission),
            warning=state.warningText,
        )

    def place_combo(self, order: ComboOrder) -> BrokerOrder:
        bag, ib_order = self._bag(order), self._limit_order(order)
        self._check_account(self._connected().managedAccounts())
        if self._session.link_down:
            raise BrokerConnectionError(
                f"{order.order_ref} not sent: TWS has lost its connection to IB (1100); "
                "retry when it is restored"
            )
        # a round trip right before the order, so it is never written into a dead connection
        self._call("heartbeat", lambda ib: ib.reqCurrentTime())
        trade = self._call(order.order_ref, lambda ib: ib.placeOrder(bag, ib_order), retry=False)
        refusals = {code for code, known in IB_ERRORS.items() if known.outcome in REFUSALS}
        self._await(
            lambda: (
                trade.orderStatus.status not in PENDING
                or any(code in refusals for code, _ in self._order_errors(trade))
            ),
            lost=f"the connection to TWS was lost after sending {order.order_ref}",
            timeout=f"no acknowledgement of {order.order_ref} within {self.order_ack_timeout}s",
        )
        for code, message in self._order_errors(trade):
            outcome = _outcome(code)
            if outcome == "refused_price":
                raise OrderRejected(
                    f"{order.order_ref}: IB refused the limit {ib_order.lmtPrice} "
                    f"(110, {message}); the combo tick here is {self.combo_tick}"
                )
            if outcome == "unknown_contract":
                raise OrderRejected(f"{order.order_ref}: IB knows no such combo (200): {message}")
        return self._broker_order(trade, order.legs)

    def _await(self, done: Callable[[], bool], *, lost: str, timeout: str) -> None:
        """Serve the connection until ``done``; losing it or timing out leaves the order's
        fate unknown, which is what BrokerConnectionError says."""
        deadline = time.monotonic() + self.order_ack_timeout
        ib = self._ib
        assert ib is not None
        unknown = "it may or may not have reached IB; reconcile (orders, executions) first"
        while not done():
            if not ib.isConnected():
                raise BrokerConnectionError(f"{lost}: {unknown}")
            if time.monotonic() >= deadline:
                raise BrokerConnectionError(f"{timeout}: {unknown}")
            _serve(ib, self.poll_interval)

    def _order_errors(self, trade: Any) -> list[tuple[int, str]]:
        """IB errors about the order; a completed order has no orderId, its live trade has."""
        order_id, perm_id = trade.order.orderId, _perm_id(trade)
        if not order_id and perm_id and self._ib is not None:
            live = [t for t in self._ib.trades() if _perm_id(t) == perm_id and t.order.orderId]
            order_id = live[0].order.orderId if live else 0
        return list(self._session.errors.get(order_id, [])) if order_id else []

    def cancel(self, order_ref: str) -> BrokerOrder:
        trades = [t for t in self._open_trades() if t.order.orderRef == order_ref]
        if not trades:
            done = [o for o in self.orders() if o.order_ref == order_ref]
            if done:
                return done[-1]
            raise BrokerError(f"IB knows no order {order_ref} today")
        trade = trades[0]
        seen = len(self._order_errors(trade))
        self._call(f"cancel {order_ref}", lambda ib: ib.cancelOrder(trade.order), retry=False)

        def refusals() -> list[str]:
            new = self._order_errors(trade)[seen:]
            return [f"{message} (IB {code})" for code, message in new if code in CANCEL_REFUSALS]

        self._await(
            lambda: trade.orderStatus.status in DONE_STATUSES or bool(refusals()),
            lost=f"the connection to TWS was lost while cancelling {order_ref}",
            timeout=f"no confirmation of the cancel of {order_ref}",
        )
        if refusals():  # the client marks the trade cancelled on any error: ask IB instead
            now = [o for o in self.orders() if o.order_ref == order_ref]
            if not now or now[-1].status in ("submitted", "partially_filled"):
                raise BrokerError(f"IB refused to cancel {order_ref}: {refusals()[-1]}")
            return now[-1]
        return self._broker_order(trade)

    def modify(self, order_ref: str, limit_price: float) -> BrokerOrder:
        """Move the working order's limit: placeOrder again with its own order id, which IB
        treats as a modification. ``totalQuantity`` stays the order's total, so after a
        partial fill only the unfilled remainder works at the new price (a second order
        would double it). A done order is returned as it is."""
        if not math.isfinite(limit_price):
            raise OrderRejected(f"{order_ref}: a combo is only sent as a limit order")
        trades = [t for t in self._open_trades() if t.order.orderRef == order_ref]
        if not trades:
            done = [o for o in self.orders() if o.order_ref == order_ref]
            if done:
                return done[-1]
            raise BrokerError(f"IB knows no order {order_ref} today")
        trade = trades[0]
        seen = len(self._order_errors(trade))
        trade.order.lmtPrice = to_tick(limit_price, self.combo_tick, trade.order.action)
        self._call(
            f"modify {order_ref}",
            lambda ib: ib.placeOrder(trade.contract, trade.order),
            retry=False,
        )
        # TWS answers in order: once this round trip is back, a refusal of the change is in.
        self._call("heartbeat", lambda ib: ib.reqCurrentTime())
        for code, message in self._order_errors(trade)[seen:]:
            if code in MODIFY_REFUSALS:
                raise OrderRejected(f"IB refused to reprice {order_ref}: {message} (IB {code})")
        return self._broker_order(trade)

    def quote(self, order: ComboOrder) -> ComboQuote | None:
        """No live combo quote is requested (market data lines are the account's to spend):
        the executor prices the ladder from the quote its plan was made on."""
        return None

    def _open_trades(self) -> list[Any]:
        trades = self._call("open orders", lambda ib: ib.reqAllOpenOrders())
        return [
            t for t in trades if not self.account_id or t.order.account in ("", self.account_id)
        ]

    def open_orders(self) -> list[BrokerOrder]:
        trades = self._open_trades()
        self._learn_contracts()
        return [self._broker_order(t) for t in trades]

    def orders(self) -> list[BrokerOrder]:
        open_trades = self._open_trades()
        completed = self._call("completed orders", lambda ib: ib.reqCompletedOrders(False))
        self._learn_contracts()
        seen: set[int] = set()
        result = []
        for trade in [*open_trades, *completed]:
            if self.account_id and trade.order.account not in ("", self.account_id):
                continue
            perm_id = _perm_id(trade)
            if perm_id and perm_id in seen:
                continue
            seen.add(perm_id)
            result.append(self._broker_order(trade))
        return result

    def _broker_order(self, trade: Any, legs: tuple[ComboLeg, ...] | None = None) -> BrokerOrder:
        order, state = trade.order, trade.orderStatus
        filled = state.filled
        if not filled and order.filledQuantity not in (UNSET_DOUBLE, None):
            filled = order.filledQuantity  # completed orders carry it on the order
        status = order_status(state.status, filled, order.totalQuantity)
        errors = [(c, m) for c, m in self._order_errors(trade) if _outcome(c) not in LINK_OUTCOMES]
        if any(_outcome(code) == "rejected" for code, _ in errors):
            status = "rejected"
        reason = ""
        if status in ("rejected", "cancelled") and errors:
            code, message = errors[-1]
            reason = f"{message} (IB {code})"
        perm_id = _perm_id(trade)
        return BrokerOrder(
            order_ref=order.orderRef,
            broker_order_id=str(perm_id) if perm_id else f"{order.clientId}:{order.orderId}",
            symbol=trade.contract.symbol,
            action=order.action,
            quantity=int(order.totalQuantity),
            limit_price=0.0 if order.lmtPrice == UNSET_DOUBLE else order.lmtPrice,
            status=status,
            filled=int(filled),
            avg_fill_price=state.avgFillPrice or self._avg_fill(perm_id),
            reason=reason,
            legs=legs if legs is not None else self._legs_of(trade.contract),
        )

    def _avg_fill(self, perm_id: int) -> float:
        """Completed orders carry no price; their BAG executions do."""
        if self._ib is None or not perm_id:
            return 0.0
        bags = [
            f.execution
            for f in self._ib.fills()
            if f.execution.permId == perm_id and f.contract.secType == "BAG"
        ]
        shares = sum(e.shares for e in bags)
        return sum(e.shares * e.price for e in bags) / shares if shares else 0.0

    def _legs_of(self, contract: Any) -> tuple[ComboLeg, ...]:
        if contract.secType == "OPT":
            key = _contract_key(contract)
            return (ComboLeg(*key, action=BUY, ratio=1),) if key else ()
        if contract.secType != "BAG" or not contract.comboLegs:
            return ()
        if any(leg.conId not in self._contracts for leg in contract.comboLegs):
            return ()
        return tuple(
            ComboLeg(*self._contracts[leg.conId], action=leg.action, ratio=leg.ratio)
            for leg in contract.comboLegs
        )

    def _learn_contracts(self, fills: list[Any] | None = None) -> None:
        """Options seen in executions and positions, so legs of orders from earlier sessions
        (conIds only) can be named without extra requests."""
        if self._ib is None:
            return
        contracts = [f.contract for f in (fills or [])] + [f.contract for f in self._ib.fills()]
        contracts += [p.contract for p in self._ib.positions()]
        for contract in contracts:
            key = _contract_key(contract)
            if key and contract.conId:
                self._contracts.setdefault(contract.conId, key)

    # --- executions and positions ----------------------------------------------------------

    def executions(self, since: dt.datetime) -> list[Execution]:
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
        since = since.astimezone(dt.UTC)
        flt = self._api.ExecutionFilter(time=f"{since:%Y%m%d-%H:%M:%S}", acctCode=self.account_id)
        fills = self._call("executions", lambda ib: ib.reqExecutions(flt))
        self._learn_contracts(fills)
        known = {f.execution.execId: f for f in self._ib.fills()} if self._ib else {}
        by_order: dict[Any, list[Any]] = defaultdict(list)
        for fill in fills:
            e = fill.execution
            by_order[e.permId or (e.clientId, e.orderId)].append(known.get(e.execId, fill))
        result = []
        for group in by_order.values():
            bags = [f for f in group if f.contract.secType == "BAG"]
            result += self._combo_executions(bags, group) if bags else self._single(group)
        return sorted((e for e in result if e.time >= since), key=lambda e: (e.time, e.exec_id))

    def _combo_executions(self, bags: list[Any], group: list[Any]) -> list[Execution]:
        legs = [f for f in group if f.contract.secType != "BAG"]
        combos = sum(f.execution.shares for f in bags)
        leg_commission = [f.commissionReport.commission for f in legs if f.commissionReport.execId]
        derived = self._derived_legs(bags[0], legs, combos)
        result = []
        for bag in bags:
            e = bag.execution
            if leg_commission:
                commission = sum(leg_commission) * e.shares / combos
            else:
                commission = bag.commissionReport.commission
            result.append(
                Execution(
                    exec_id=e.execId,
                    order_ref=e.orderRef or "",
                    broker_order_id=str(e.permId),
                    symbol=bag.contract.symbol,
                    action=BUY if e.side == "BOT" else SELL,
                    quantity=int(e.shares),
                    price=e.price,
                    commission=round(commission, 6),
                    time=e.time,
                    legs=derived,
                )
            )
        return result

    def _derived_legs(self, bag: Any, legs: list[Any], combos: float) -> tuple[ComboLeg, ...]:
        """The combo's legs as a BUY of it takes them, from its leg executions."""
        shares: dict[int, float] = {}
        sides: dict[int, str] = {}
        for fill in legs:
            con_id = fill.contract.conId
            shares[con_id] = shares.get(con_id, 0.0) + fill.execution.shares
            sides[con_id] = fill.execution.side
        combo_bought = bag.execution.side == "BOT"
        derived = []
        for con_id, total in shares.items():
            key = self._contracts.get(con_id)
            ratio = total / combos if combos else 0
            if key is None or ratio <= 0 or not float(ratio).is_integer():
                return ()
            action = BUY if (sides[con_id] == "BOT") == combo_bought else SELL
            derived.append(ComboLeg(*key, action=action, ratio=int(ratio)))
        return tuple(derived)

    def _single(self, group: list[Any]) -> list[Execution]:
        """Executions of a single-contract order (someone else's, typically): one each."""
        result = []
        for fill in group:
            e, key = fill.execution, _contract_key(fill.contract)
            result.append(
                Execution(
                    exec_id=e.execId,
                    order_ref=e.orderRef or "",
                    broker_order_id=str(e.permId),
                    symbol=fill.contract.symbol,
                    action=BUY if e.side == "BOT" else SELL,
                    quantity=int(e.shares),
                    price=e.price,
                    commission=fill.commissionReport.commission,
                    time=e.time,
                    legs=(ComboLeg(*key, action=BUY, ratio=1),) if key else (),
                )
            )
        return result

    def positions(self) -> list[BrokerPosition]:
        positions = self._call("positions", lambda ib: ib.reqPositions())
        result = []
        for p in positions:
            if (self.account_id and p.account != self.account_id) or not p.position:
                continue
            key = _contract_key(p.contract)
            if key is None:  # options only
                continue
            leg = ComboLeg(*key, action=BUY, ratio=1)
            result.append(BrokerPosition(leg.contract_key, int(p.position), float(p.avgCost)))
        return result


def _perm_id(trade: Any) -> int:
    return trade.order.permId or trade.orderStatus.permId


def _outcome(code: int) -> str:
    known = IB_ERRORS.get(code)
    return known.outcome if known else ""


def _contract_key(contract: Any) -> tuple[str, dt.date, float, str] | None:
    if getattr(contract, "secType", "") != "OPT" or not contract.lastTradeDateOrContractMonth:
        return None
    expiry = _ib_date(contract.lastTradeDateOrContractMonth)
    return (contract.symbol, expiry, contract.strike, (contract.right or "?")[0].upper())


def _ib_date(text: str) -> dt.date:
    return dt.datetime.strptime(text[:8], "%Y%m%d").date()


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or number == UNSET_DOUBLE else number


def _int_setting(name: str) -> int:
    value = env(name)
    try:
        return int(value)
    except ValueError:
        raise BrokerError(f"{name}={value!r} is not a whole number") from None


def _serve(ib: Any, seconds: float) -> None:
    """Run the event loop for a while. The client cancels whatever runs when the socket drops
    and raises ConnectionError from it; callers look at the connection themselves."""
    with contextlib.suppress(ConnectionError):
        ib.sleep(seconds)


def _ensure_event_loop() -> None:
    """ib_insync runs the calling thread's event loop, and worker threads have none by default
    (ib_async makes one itself; setting it here first is harmless)."""
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
