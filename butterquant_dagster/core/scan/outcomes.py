"""What each candidate really returned: bought at the entry session's natural price and held
to expiry, settled at intrinsic value from the underlying's close on the expiry session.

Costs are all in: the spread (entry at the natural side), the entry order's fee, and an
exit order's fee whenever a leg finishes in the money (it has to be closed or exercised;
an all-out-of-the-money expiry costs nothing). These rows are the labels of the success
probability model and the ground truth of drift monitoring and backtests, so they use only
prices dated on or before the expiry session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from butterquant_dagster.core.options import butterfly as fly
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER, order_fee, per_share

OUTCOME_COLUMNS = [
    "session",
    "symbol",
    "expiry",
    "structure",
    "is_credit",
    "lower",
    "center",
    "upper",
    "width",
    "width_steps",
    "dte",
    "cost",
    "max_loss",
    "breakeven_low",
    "breakeven_high",
    "settle_price",
    "expiry_value",
    "exit_fee",
    "pnl_per_share",
    "pnl_per_contract",
    "roi",
    "yield_per_1000",
    "win",
]


class OutcomeError(ValueError):
    """Outcomes asked for before every expiry involved has a closing price."""


def _itm_contracts(structure: np.ndarray, spot: np.ndarray, lower, center, upper):
    """Contracts of the combo that finish in the money."""
    total = np.zeros(len(spot))
    strikes = {"lower": lower, "center": center, "upper": upper}
    for name, legs in fly.STRUCTURES.items():
        mine = structure == name
        if not mine.any():
            continue
        for leg in legs:
            k = strikes[leg.strike]
            itm = spot > k if leg.right == "C" else spot < k
            total += np.where(mine & itm, abs(leg.quantity), 0)
    return total


def settle(candidates: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """Outcomes of ``candidates`` given ``closes`` (columns session, symbol, close) that
    include every candidate's expiry session. Missing closes raise OutcomeError."""
    lookup = closes.assign(session=pd.to_datetime(closes["session"]))
    lookup = lookup.set_index(["symbol", "session"])["close"]
    keys = pd.MultiIndex.from_arrays([candidates["symbol"], pd.to_datetime(candidates["expiry"])])
    settle_price = lookup.reindex(keys).to_numpy(float)
    missing = ~np.isfinite(settle_price)
    if missing.any():
        pairs = sorted(
            {
                (s, str(pd.Timestamp(e).date()))
                for s, e in zip(
                    candidates.loc[missing, "symbol"],
                    candidates.loc[missing, "expiry"],
                    strict=True,
                )
            }
        )
        raise OutcomeError(
            f"no close for {len(pairs)} (ticker, expiry) pair(s), e.g. {pairs[:5]}: the "
            "expiry has not passed in the data or the ticker has no bar that day"
        )
    structure = candidates["structure"].to_numpy()
    lower, center, upper, width = (
        candidates[k].to_numpy(float) for k in ("lower", "center", "upper", "width")
    )
    value = fly.expiry_value(structure, settle_price, center, width)
    exit_fee = per_share(order_fee(_itm_contracts(structure, settle_price, lower, center, upper)))
    pnl = value - candidates["cost"].to_numpy(float) - exit_fee
    max_loss = candidates["max_loss"].to_numpy(float)
    roi = pnl / max_loss
    inside = (settle_price > candidates["breakeven_low"].to_numpy(float)) & (
        settle_price < candidates["breakeven_high"].to_numpy(float)
    )
    out = candidates[[c for c in OUTCOME_COLUMNS if c in candidates.columns]].copy()
    out["settle_price"] = settle_price
    out["expiry_value"] = value
    out["exit_fee"] = exit_fee
    out["pnl_per_share"] = pnl
    out["pnl_per_contract"] = pnl * CONTRACT_MULTIPLIER
    out["roi"] = roi
    out["yield_per_1000"] = roi * 1000.0
    out["win"] = inside & (pnl > 0)
    return out[OUTCOME_COLUMNS].reset_index(drop=True)


def sample_for_outcomes(candidates: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """All candidates, or a seeded uniform sample of ``max_rows`` when there are more."""
    if len(candidates) <= max_rows:
        return candidates
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=max_rows, replace=False))
    return candidates.iloc[chosen].reset_index(drop=True)
