"""The words the money path stores: order status, intent, track, structure, origin.

Every value here is written to the ledger (``core.trading.ledger``) or the paper broker's
state and read back by the reports, so each is a ``StrEnum``: a member *is* its string
(``OrderStatus.FILLED == "filled"``, same hash, formats as ``filled``), which keeps every
ledger written before these types existed readable and lets code that still uses the
strings (the IB adapter, the Dagster assets) interoperate. What the enums add is one list
of the allowed values: a typo is an ``AttributeError`` instead of a status no query
matches, and the ledger's schema comments are generated from these lists
(``ledger.SCHEMA``) and tested against them.

Renaming a value here changes what is stored: existing ledgers hold the old string, so
a value is added, never renamed.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    """Where an order stands (``orders.status``; the broker's own word for the first five
    after ``planned`` is mapped onto these by each adapter)."""

    BLOCKED = "blocked"  # a pre-trade check refused it; never sent
    PLANNED = "planned"  # intent recorded, about to be sent
    SUBMITTED = "submitted"  # the broker has it, working
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"  # by request, or a DAY order the broker ended unfilled
    REJECTED = "rejected"
    MISSING_AT_BROKER = "missing_at_broker"  # ours, working, and the broker does not list it
    EXPIRED = "expired"  # a DAY order of an earlier session the broker no longer lists


class Intent(StrEnum):
    """What an order (``orders.intent``, a target's ``intent``) or a position event
    (``position_events.kind``) does to a position."""

    OPEN = "open"
    CLOSE = "close"
    SETTLE = "settle"  # valued at intrinsic at expiry; never sent to a broker


class Track(StrEnum):
    """Who chose the trade (``orders.track``, ``positions.track``)."""

    AI = "ai"  # the champion model's ranking
    BASELINE = "baseline"  # the validated rule measure
    EXTERNAL = "external"  # found at the broker: an order or a fill this system never sent


class Structure(StrEnum):
    """The combo (``orders.structure``): the keys of ``core.options.butterfly.STRUCTURES``,
    or ``unknown`` for legs placed by someone else that form none of them."""

    CALL_FLY = "call_fly"
    PUT_FLY = "put_fly"
    IRON_FLY = "iron_fly"
    UNKNOWN = "unknown"


class Origin(StrEnum):
    """Who placed an order (``orders.origin``)."""

    LOCAL = "local"  # this ledger recorded its intent before sending it
    BROKER = "broker"  # found at the broker, not placed by this ledger


# Statuses every broker adapter maps onto (IB's PendingSubmit/PreSubmitted are "submitted").
BROKER_STATUSES = (
    OrderStatus.SUBMITTED,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED,
    OrderStatus.CANCELLED,
    OrderStatus.REJECTED,
)
# Still working at the broker: it may fill, be repriced or be cancelled.
WORKING_STATUSES = frozenset({OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED})
# An order that reached (or may have reached) the broker: never sent again.
WENT_OUT_STATUSES = frozenset(BROKER_STATUSES) | {
    OrderStatus.EXPIRED,
    OrderStatus.MISSING_AT_BROKER,
}
# Never reached a broker: a rerun may re-state it (a lifted limit turns blocked to planned).
UNSENT_STATUSES = frozenset({OrderStatus.PLANNED, OrderStatus.BLOCKED})


def choices(enum: type[StrEnum]) -> str:
    """The values of ``enum`` as the schema comments list them: ``open | close | settle``."""
    return " | ".join(member.value for member in enum)
