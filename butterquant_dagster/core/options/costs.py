"""What a trade costs: the price a combo is expected to fill at, and the broker's fees.

Every number that stands for money made or lost on a butterfly - the candidates' economics
(and so the scan's EV per $1,000), the outcomes the models learn from, the backtests and
the paper broker's fills - is priced here, on one basis, so a model learns the market its
orders meet (issue 11, item 0; docs/decisions.md, "One price for one trade").

The price a combo is expected to fill at is the mid moved ``FILL_SHARE`` of the way toward
the natural price, on the cent combo tick, rounded toward a fill and never beyond natural.
``core.trading.portfolio`` plans an entry's limit at that price; ``core.trading.
order_policy`` sends each order at the mid and reprices it toward that price in bounded
rungs (an entry never above its planned limit; an urgent exit on to natural). The paper
broker fills an order when its limit reaches that same price (``fills``), so the price an
entry is expected to fill at is its planned limit. Traders who time their executions pay
under 40 % of the quoted spread (Muravyev & Pearson, RFS 2020); a quarter of the
half-spread is an eighth of it.

The natural price (buy every leg at its ask, sell at its bid) stays on record beside it as
the worst case. Fees are ``money.order_fee`` (IB tiered), per order of all legs.
"""

from __future__ import annotations

import numpy as np

from butterquant_dagster.core.brokers.base import BUY, SELL
from butterquant_dagster.core.options.money import (
    FEE_PER_CONTRACT,
    MIN_FEE_PER_ORDER,
    order_fee,
    per_share,
)

COMBO_TICK = 0.01  # IB prices option combos in cents
# Share of the way from the mid to the natural price an order concedes (and the paper
# broker requires): see the module docstring.
FILL_SHARE = 0.25


def cost_basis(share: float = FILL_SHARE) -> str:
    """The cost basis in words, for the metadata of what was priced on it."""
    return (
        f"expected fill: mid + {share:g} x (natural - mid) per combo, on the "
        f"${COMBO_TICK:.2f} tick toward a fill, never beyond natural; IB tiered fees "
        f"${FEE_PER_CONTRACT:.2f}/contract, ${MIN_FEE_PER_ORDER:.2f} minimum per order"
    )


# What the candidates, the outcomes (the models' labels) and the scan's EV are priced on.
COST_BASIS = cost_basis()
_EPS = 1e-6  # in ticks: a price a float hair off the grid is on it


def fill_price(action: str, mid, low, high, share: float = FILL_SHARE):
    """The price per share a combo order of ``action`` is sent at and expected to fill at.

    ``mid``, ``low``, ``high`` are the combo's mid and natural bounds as a BUY of it is
    quoted (``low``: buy legs at the bid, sell at the ask; ``high``: the natural price of a
    buy). A BUY concedes ``share`` of ``high - mid`` above the mid and rounds up to the
    tick; a SELL concedes ``share`` of ``mid - low`` below it and rounds down; neither goes
    past its natural side. Scalars give a float, arrays an array.
    """
    if action not in (BUY, SELL):
        raise ValueError(f"fill_price: action {action!r} is neither {BUY!r} nor {SELL!r}")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"fill_price: share {share} is outside 0..1 (mid to natural)")
    mid, low, high = (np.asarray(x, dtype=float) for x in (mid, low, high))
    if action == BUY:
        raw = mid + share * (high - mid)
        price = np.ceil(np.round(raw / COMBO_TICK, 6) - _EPS) * COMBO_TICK
        price = np.minimum(price, np.floor(np.round(high / COMBO_TICK, 6) + _EPS) * COMBO_TICK)
    else:
        raw = mid - share * (mid - low)
        price = np.floor(np.round(raw / COMBO_TICK, 6) + _EPS) * COMBO_TICK
        price = np.maximum(price, np.ceil(np.round(low / COMBO_TICK, 6) - _EPS) * COMBO_TICK)
    price = np.round(price, 2)
    return float(price) if price.ndim == 0 else price


def expected_debit(debit_mid, debit_natural, share: float = FILL_SHARE) -> np.ndarray:
    """Net debit per share (negative: a credit) an opening order is expected to fill at,
    from the combo's mid and natural debits as bought (vectorized over candidates)."""
    mid = np.asarray(debit_mid, dtype=float)
    return np.asarray(fill_price(BUY, mid, mid, debit_natural, share), dtype=float)


def fills(action: str, limit: float, mid: float, low: float, high: float, share: float) -> bool:
    """Whether a limit order fills against the combo's quote: its limit reaches the price
    the policy expects to fill at (the paper broker's fill rule)."""
    price = fill_price(action, mid, low, high, share)
    return limit >= price - 1e-9 if action == BUY else limit <= price + 1e-9


def fee_per_share(contracts) -> np.ndarray:
    """The fee of one order of ``contracts`` contracts (all legs), in dollars per share of
    one combo."""
    return per_share(order_fee(contracts))
