"""What every broker offers the trading steps, whatever sits behind it.

The trading code only talks to :class:`Broker`, so the paper broker and Interactive
Brokers are interchangeable, and reconciliation is written once. Everything is at the level
the strategy thinks in: a *combo* (a butterfly) bought or sold as one order, its
executions in combos at a net price per share, and positions per listed contract (the legs),
because that is what a real broker reports.

Orders carry a deterministic ``order_ref`` (see :func:`order_ref`): the same intended trade
always gets the same reference, which is how a rerun recognises what it already sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from butterquant_dagster.core.trading.vocabulary import BROKER_STATUSES, WORKING_STATUSES

BUY, SELL = "BUY", "SELL"


class BrokerError(RuntimeError):
    """The broker refused or could not be reached; the message says which and what to do."""


class BrokerConnectionError(BrokerError):
    """Nothing answers, or the connection was lost (the order may or may not have arrived:
    reconcile before sending again)."""


class OrderRejected(BrokerError):
    """The broker answered and refused this order (the reason is the broker's own)."""


@dataclass(frozen=True)
class ComboLeg:
    """One listed option of a combo; ``ratio`` is per combo and always positive."""

    symbol: str
    expiry: dt.date
    strike: float
    right: str  # "C" | "P"
    action: str  # BUY | SELL (for a BUY of the combo)
    ratio: int

    @property
    def contract_key(self) -> str:
        """One listed contract, as positions are keyed: ``AAPL 2026-01-16 150.0 C``."""
        return f"{self.symbol} {self.expiry.isoformat()} {self.strike:.2f} {self.right}"

    @property
    def signed_ratio(self) -> int:
        return self.ratio if self.action == BUY else -self.ratio


@dataclass(frozen=True)
class ComboOrder:
    """A limit order for ``quantity`` combos of ``legs``, good for the day.

    ``action`` BUY takes the legs as written (opening a long fly or an iron fly), SELL takes
    the opposite of every leg (closing it). ``limit_price`` is the net price per share of one
    combo as the broker quotes combos: positive is a debit paid, negative a credit received.
    """

    order_ref: str
    session: dt.date
    symbol: str
    structure: str  # a Structure (core.trading.vocabulary)
    legs: tuple[ComboLeg, ...]
    action: str
    quantity: int
    limit_price: float
    track: str  # a Track
    tif: str = "DAY"


@dataclass(frozen=True)
class BrokerOrder:
    """The broker's view of one order: its id there, its status and how much filled."""

    order_ref: str
    broker_order_id: str
    symbol: str
    action: str
    quantity: int
    limit_price: float
    status: str  # an OrderStatus of ORDER_STATUSES (core.trading.vocabulary)
    filled: int = 0
    avg_fill_price: float = 0.0
    reason: str = ""  # why it was rejected or cancelled
    legs: tuple[ComboLeg, ...] = ()


# Statuses every adapter maps onto (IB's PendingSubmit/PreSubmitted are "submitted").
ORDER_STATUSES = BROKER_STATUSES
OPEN_STATUSES = WORKING_STATUSES


@dataclass(frozen=True)
class Execution:
    """A fill of ``quantity`` combos at the net ``price`` per share (negative: a credit)."""

    exec_id: str
    order_ref: str  # "" when the broker's order carries none (someone else's order)
    broker_order_id: str
    symbol: str
    action: str  # BUY | SELL of the combo
    quantity: int
    price: float
    commission: float
    time: dt.datetime  # UTC
    legs: tuple[ComboLeg, ...] = ()


@dataclass(frozen=True)
class BrokerPosition:
    """Net contracts held of one listed option (positive long, negative short)."""

    contract_key: str
    quantity: int
    avg_cost: float = 0.0  # dollars per contract, as brokers report it


@dataclass(frozen=True)
class ComboQuote:
    """A combo's mid and natural bounds per share, as a BUY of it is quoted (``low``: buy
    legs at the bid and sell legs at the ask; ``high``: the natural price of a buy)."""

    mid: float
    low: float
    high: float


@dataclass(frozen=True)
class Account:
    account_id: str
    paper: bool  # a paper (simulated) account: IB's start with "DU"
    net_liquidation: float | None = None
    cash: float | None = None
    extra: dict = field(default_factory=dict)


class Broker(Protocol):
    name: str

    def account(self) -> Account: ...

    def place_combo(self, order: ComboOrder) -> BrokerOrder:
        """Send the order; returns the broker's acknowledgement (may already be filled)."""
        ...

    def cancel(self, order_ref: str) -> BrokerOrder: ...

    def modify(self, order_ref: str, limit_price: float) -> BrokerOrder:
        """Move a working order's limit (the same order: after a partial fill only the
        unfilled quantity keeps working); returns its state after the change."""
        ...

    def quote(self, order: ComboOrder) -> ComboQuote | None:
        """The combo's quote now, as a BUY of it is quoted; None when the broker has none
        (the caller then prices from the quote its plan was made on)."""
        ...

    def orders(self) -> list[BrokerOrder]:
        """Today's orders the broker knows, open or done (open orders and completed orders)."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def executions(self, since: dt.datetime) -> list[Execution]: ...

    def positions(self) -> list[BrokerPosition]: ...

    def close(self) -> None:
        """Let go of the connection (a live broker frees its client id for the next step)."""
        ...

    def __enter__(self) -> Broker: ...

    def __exit__(self, *exc: object) -> None: ...


def order_ref(
    session: dt.date,
    symbol: str,
    structure: str,
    legs: tuple[ComboLeg, ...],
    track: str,
    intent: str,  # an Intent
) -> str:
    """A reference that is the same for the same intended trade, and differs otherwise.

    Built from the session, ticker, structure, legs, track and intent (open or close), and
    kept short and printable because IB stores it in ``orderRef`` and shows it in TWS.
    """
    legs_text = ";".join(
        f"{leg.right}{leg.strike:.2f}@{leg.expiry.isoformat()}x{leg.signed_ratio}" for leg in legs
    )
    text = f"{session.isoformat()}|{symbol}|{structure}|{legs_text}|{track}|{intent}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"bq-{session:%Y%m%d}-{symbol}-{intent}-{digest}"
