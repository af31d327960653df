"""Butterflies: their legs, their value at expiry, and their price from real quotes.

Three structures on three listed strikes lower < centre < upper with equal wings
(w = centre - lower = upper - centre):

- ``call_fly``: +1 lower call, -2 centre calls, +1 upper call (a debit),
- ``put_fly``: the same with puts (a debit),
- ``iron_fly``: +1 lower put, -1 centre put, -1 centre call, +1 upper call (a credit).

At expiry a long fly is worth ``max(0, w - |S - centre|)`` and an iron fly ``-min(|S -
centre|, w)``: the iron fly is the long fly minus the wing width, which is why its credit
is the width minus the long fly's price (the original priced the iron fly's centre twice).

All functions are vectorized over candidates; prices are dollars per share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from butterquant_dagster.core.options.black_scholes import price
from butterquant_dagster.core.options.money import order_fee, per_share


@dataclass(frozen=True)
class Leg:
    right: str  # "C" or "P"
    strike: str  # "lower" | "center" | "upper"
    quantity: int  # + bought, - sold, per combo


STRUCTURES: dict[str, tuple[Leg, ...]] = {
    "call_fly": (Leg("C", "lower", 1), Leg("C", "center", -2), Leg("C", "upper", 1)),
    "put_fly": (Leg("P", "lower", 1), Leg("P", "center", -2), Leg("P", "upper", 1)),
    "iron_fly": (
        Leg("P", "lower", 1),
        Leg("P", "center", -1),
        Leg("C", "center", -1),
        Leg("C", "upper", 1),
    ),
}
CREDIT_STRUCTURES = frozenset({"iron_fly"})
CONTRACTS_PER_COMBO = {
    name: sum(abs(leg.quantity) for leg in legs) for name, legs in STRUCTURES.items()
}


def long_fly_value(spot_at_expiry, center, width) -> np.ndarray:
    """Value per share of a long (call or put) butterfly at expiry."""
    return np.maximum(0.0, np.asarray(width) - np.abs(np.asarray(spot_at_expiry) - center))


def expiry_value(structure, spot_at_expiry, center, width) -> np.ndarray:
    """Value per share at expiry of the position as held (negative for the iron fly)."""
    fly = long_fly_value(spot_at_expiry, center, width)
    return np.where(np.asarray(structure) == "iron_fly", fly - np.asarray(width), fly)


def combo_prices(quantity: np.ndarray, bid: np.ndarray, ask: np.ndarray):
    """Net debit per share at mid and at the natural (worst) side, from leg quotes.

    ``quantity``, ``bid`` and ``ask`` are (legs, candidates) arrays; a negative debit is a
    credit. The natural side buys at the ask and sells at the bid.
    """
    mid = (bid + ask) / 2.0
    debit_mid = np.sum(quantity * mid, axis=0)
    debit_natural = np.sum(np.where(quantity > 0, quantity * ask, quantity * bid), axis=0)
    return debit_mid, debit_natural


@dataclass(frozen=True)
class Economics:
    """Per-share economics of entering at a net debit (the expected fill of
    ``core.options.costs``, or the natural price) and paying the entry fee."""

    cost: np.ndarray  # net paid per share incl. fee (negative: net credit received)
    max_profit: np.ndarray
    max_loss: np.ndarray
    breakeven_low: np.ndarray
    breakeven_high: np.ndarray


def economics(is_credit, debit, center, width, contracts) -> Economics:
    fee = per_share(order_fee(contracts))
    cost = debit + fee
    # A long fly risks what it cost; an iron fly risks the width less the net credit.
    max_loss = np.where(is_credit, width + cost, cost)
    max_profit = np.where(is_credit, -cost, width - cost)
    edge = np.where(is_credit, -cost, cost)  # distance of the breakevens from the wings/centre
    breakeven_low = np.where(is_credit, center - edge, center - width + edge)
    breakeven_high = np.where(is_credit, center + edge, center + width - edge)
    return Economics(cost, max_profit, max_loss, breakeven_low, breakeven_high)


def prob_between(low, high, forward, vol, t) -> np.ndarray:
    """P(low < S_T < high) for a lognormal S_T with the given forward and volatility."""
    sd = np.maximum(vol * np.sqrt(np.maximum(t, 1e-9)), 1e-12)

    def above(k):
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = (np.log(forward / np.maximum(k, 1e-12)) - 0.5 * sd * sd) / sd
        return np.where(k <= 0, 1.0, ndtr(d2))

    return np.clip(above(low) - above(high), 0.0, 1.0)


def expected_long_fly_value(forward, vol, t, center, width) -> np.ndarray:
    """E[max(0, w - |S_T - centre|)] for a lognormal S_T (forward, vol): three calls."""
    lower, upper = center - width, center + width
    calls = [price(forward, k, t, vol, 0.0, 0.0, True) for k in (lower, center, upper)]
    return np.maximum(calls[0] - 2.0 * calls[1] + calls[2], 0.0)
