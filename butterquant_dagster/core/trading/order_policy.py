"""How an order works its way to a fill: start at the mid, step toward natural, bounded.

A combo's quoted spread is wide (often several times the fly's edge), so an order sent at
natural gives the edge away, and one left at the mid often never fills. The policy mature
option desks and IB bots follow, and which the cost model prices (``core.options.costs``):

* every order starts at the mid (on the tick, toward a fill);
* after ``wait_seconds`` unfilled it is repriced one rung toward its target price, in
  ``steps`` equal rungs: entries and patient exits end at the cost model's expected fill
  (``FILL_SHARE`` of the way to natural); an entry never pays more than the price its plan
  judged (the planned limit), so a market that moved away is not chased;
* urgent exits (a stop-loss, an expiry-risk time stop, a retry of an exit that did not
  fill) end at a marketable limit: ``exit_max_slippage`` of the way to natural (1 = the
  natural price itself);
* a debit stays a debit and a credit a credit: no rung crosses zero, whatever the quote;
* after a partial fill only the unfilled quantity is worked (brokers keep the filled part;
  the adapters modify the working order, they never send a second one);
* combos go out as limit orders only: an order without a finite limit is refused.

The ladder is anchored on the broker's current quote of the combo when it has one (the
paper broker: the session's quotes it fills against), otherwise on the quote the plan was
made on. ``core.trading.execution`` walks it; this module only says where each rung is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from butterquant_dagster.core import settings
from butterquant_dagster.core.brokers.base import BUY, SELL
from butterquant_dagster.core.options import costs
from butterquant_dagster.core.trading.vocabulary import Intent

# Exits that must get out today: the loss limit, and the expiry risk of a short-dated fly.
URGENT_EXITS = frozenset({"stop_loss", "time_stop"})
RETRY_PREFIX = "retry"  # the reason of an exit re-sent because an earlier one did not fill


@dataclass(frozen=True)
class OrderPolicy:
    """The ladder's shape; the defaults are the settings' (``BUTTERQUANT_REPRICE_*``)."""

    steps: int = 3
    wait_seconds: float = 20.0
    exit_max_slippage: float = settings.default("BUTTERQUANT_EXIT_MAX_SLIPPAGE")

    def __post_init__(self):
        if self.steps < 0:
            raise ValueError(f"reprice steps must be 0 or more, not {self.steps}")
        if self.wait_seconds < 0:
            raise ValueError(f"reprice wait must be 0 s or more, not {self.wait_seconds}")
        if not 0.0 <= self.exit_max_slippage <= 1.0:
            raise ValueError(
                f"exit max slippage {self.exit_max_slippage} is outside 0..1 "
                "(share of the way from the mid to the natural price)"
            )

    def target_share(self, urgent: bool) -> float:
        """How far toward natural the last rung goes."""
        return self.exit_max_slippage if urgent else costs.FILL_SHARE


def is_urgent(intent: str, reason: str) -> bool:
    """A close that must fill today: its rule (the reason's first word) is urgent."""
    rule = str(reason or "").split(":", 1)[0].strip()
    return intent == Intent.CLOSE and (rule in URGENT_EXITS or rule == RETRY_PREFIX)


def ladder(
    action: str,
    mid: float,
    low: float,
    high: float,
    share: float,
    steps: int,
    cap: float | None = None,
) -> list[float]:
    """The limits an order walks through, first to last, each on the tick.

    ``mid``/``low``/``high`` quote the combo as a BUY of it is quoted (``core.options.costs.
    fill_price``). ``cap`` is the worst price the order may reach (an entry's planned limit).
    Rungs keep the sign of the first (no debit becomes a credit) and repeat none.
    """
    if action not in (BUY, SELL):
        raise ValueError(f"ladder: action {action!r} is neither {BUY!r} nor {SELL!r}")
    if not all(math.isfinite(x) for x in (mid, low, high)):
        raise ValueError(f"ladder: the quote is not finite (mid {mid}, low {low}, high {high})")
    rungs = [
        costs.fill_price(action, mid, low, high, share * k / steps if steps else share)
        for k in range(steps + 1)
    ]
    if cap is not None:
        rungs = [min(r, cap) if action == BUY else max(r, cap) for r in rungs]
    first = rungs[0]
    if first > 0:
        rungs = [max(r, costs.COMBO_TICK) for r in rungs]
    elif first < 0:
        rungs = [min(r, -costs.COMBO_TICK) for r in rungs]
    out: list[float] = []
    for rung in (round(r, 2) for r in rungs):
        if not out or abs(rung - out[-1]) > 1e-9:
            out.append(rung)
    return out


def next_rung(rungs: list[float], action: str, current: float) -> float | None:
    """The first rung beyond ``current`` toward a fill; None once the order is on the last."""
    for rung in rungs:
        beyond = rung > current + 1e-9 if action == BUY else rung < current - 1e-9
        if beyond:
            return rung
    return None


def require_limit(order_ref: str, limit_price) -> float:
    """Combos go out as limit orders only: a missing or non-finite limit is refused."""
    try:
        limit = float(limit_price)
    except (TypeError, ValueError):
        limit = math.nan
    if not math.isfinite(limit):
        raise ValueError(
            f"{order_ref}: a combo is only sent as a limit order; its limit {limit_price!r} is "
            "not a price (market orders for combos are refused)"
        )
    return limit
