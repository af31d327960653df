"""What each candidate really returned: bought on the entry session and held to expiry,
settled at intrinsic value from the underlying's close on the expiry session.

Each outcome is recorded on two cost bases. The label (``pnl_per_share``, ``roi``,
``yield_per_1000``, ``win``) is at the price the order policy is expected to fill at
(``core.options.costs``, ``COST_BASIS``; the candidate's ``cost``), the one the paper broker
fills at and the scan's EV assumes; ``*_natural`` is the same trade bought at the natural
price (every leg across its spread), the worst case, so both stay visible. Costs are all
in on both: the spread paid, the entry order's fee, and an exit order's fee whenever a leg
finishes in the money (it has to be closed or exercised; an all-out-of-the-money expiry
costs nothing). These rows are the labels of the success probability model and the ground
truth of drift monitoring and backtests, so they use only prices dated on or before the
expiry session.
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
    # The same trade bought at the natural price (never better than the label's basis).
    "cost_natural",
    "max_loss_natural",
    "pnl_per_share_natural",
    "yield_per_1000_natural",
    "win_natural",
]
# The candidate columns an outcome copies (those before the first computed one), and those
# it needs beyond them.
_COPIED = OUTCOME_COLUMNS[: OUTCOME_COLUMNS.index("settle_price")]
_INPUT_COLUMNS = ("debit_natural",)


class OutcomeError(ValueError):
    """Outcomes asked for before every expiry involved has a closing price."""


def _itm_contracts(structure: np.ndarray, spot: np.ndarray, lower, center, upper):
    """Contracts of the combo that finish in the money (whole numbers: the sum is exact
    in any order)."""
    total = np.zeros(len(spot))
    strikes = {"lower": lower, "center": center, "upper": upper}
    for name, legs in fly.STRUCTURES.items():
        mine = np.flatnonzero(structure == name)
        if not len(mine):
            continue
        at = spot[mine]
        count = np.zeros(len(mine))
        for leg in legs:
            k = strikes[leg.strike][mine]
            count += abs(leg.quantity) * (at > k if leg.right == "C" else at < k)
        total[mine] = count
    return total


def _closes_on(symbol: pd.Series, day: pd.Series, closes: pd.DataFrame) -> np.ndarray:
    """The close of each (``symbol``, ``day``) in ``closes`` (columns session, symbol, close),
    NaN where there is none: integer codes of symbols and days and one table gather."""
    close_symbol, close_symbols = pd.factorize(closes["symbol"])
    close_day, close_days = pd.factorize(pd.to_datetime(closes["session"]).to_numpy("M8[ns]"))
    wanted_symbol, wanted_symbols = pd.factorize(symbol)
    wanted_day, wanted_days = pd.factorize(pd.to_datetime(day).to_numpy("M8[ns]"))
    # The few distinct symbols and days asked for, looked up among those of the closes.
    symbol_at = pd.Index(np.asarray(close_symbols, dtype=object)).get_indexer(
        np.asarray(wanted_symbols, dtype=object)
    )
    day_at = pd.DatetimeIndex(close_days).get_indexer(pd.DatetimeIndex(wanted_days))
    n_days = max(len(close_days), 1)
    known = (close_symbol >= 0) & (close_day >= 0)
    close_key = (close_symbol * n_days + close_day)[known]
    value = closes["close"].to_numpy(float)[known]
    wanted_symbol = np.where(wanted_symbol >= 0, symbol_at[wanted_symbol], -1)
    wanted_day = np.where(wanted_day >= 0, day_at[wanted_day], -1)
    found = (wanted_symbol >= 0) & (wanted_day >= 0)
    wanted_key = np.where(found, wanted_symbol * n_days + wanted_day, 0)
    size = max(len(close_symbols), 1) * n_days
    if size <= 4 * len(close_key) + 1024:
        if len(close_key) and np.bincount(close_key, minlength=size).max() > 1:
            raise ValueError("cannot handle a non-unique multi-index!")
        table = np.full(size, np.nan)
        table[close_key] = value
        return np.where(found, table[wanted_key], np.nan)
    order = np.argsort(close_key, kind="stable")
    close_key, value = close_key[order], value[order]
    if (close_key[1:] == close_key[:-1]).any():
        raise ValueError("cannot handle a non-unique multi-index!")
    at = np.minimum(np.searchsorted(close_key, wanted_key), len(close_key) - 1)
    return np.where(found & (close_key[at] == wanted_key), value[at], np.nan)


def settle(candidates: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """Outcomes of ``candidates`` given ``closes`` (columns session, symbol, close) that
    include every candidate's expiry session. Missing closes raise OutcomeError."""
    needed = [c for c in (*_COPIED, *_INPUT_COLUMNS) if c not in candidates.columns]
    if needed:
        raise ValueError(f"candidates to settle lack column(s) {needed}")
    settle_price = _closes_on(candidates["symbol"], candidates["expiry"], closes)
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
    # The structures as fixed-width strings: compared in C, not object by object.
    code, names = pd.factorize(candidates["structure"])
    if (code < 0).any():  # a missing structure: compared as objects, as it is
        structure = candidates["structure"].to_numpy()
    else:
        structure = np.asarray(names, dtype=str)[code] if len(code) else np.array([], dtype=str)
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
    contracts = pd.Series(structure).map(fly.CONTRACTS_PER_COMBO).to_numpy(float)
    if np.isnan(contracts).any():
        unknown = sorted(set(pd.Series(structure)[np.isnan(contracts)].astype(str)))
        raise ValueError(f"candidates to settle have unknown structure(s) {unknown}")
    natural = fly.economics(
        candidates["is_credit"].to_numpy(bool),
        candidates["debit_natural"].to_numpy(float),
        center,
        width,
        contracts,
    )
    pnl_natural = value - natural.cost - exit_fee
    inside_natural = (settle_price > natural.breakeven_low) & (
        settle_price < natural.breakeven_high
    )
    computed = {
        "settle_price": settle_price,
        "expiry_value": value,
        "exit_fee": exit_fee,
        "pnl_per_share": pnl,
        "pnl_per_contract": pnl * CONTRACT_MULTIPLIER,
        "roi": roi,
        "yield_per_1000": roi * 1000.0,
        "win": inside & (pnl > 0),
        "cost_natural": natural.cost,
        "max_loss_natural": natural.max_loss,
        "pnl_per_share_natural": pnl_natural,
        "yield_per_1000_natural": pnl_natural / natural.max_loss * 1000.0,
        "win_natural": inside_natural & (pnl_natural > 0),
    }
    # One frame: the candidates' own columns as they are (dtypes included), then the
    # computed ones.
    out = pd.DataFrame(
        {c: computed[c] if c in computed else candidates[c] for c in OUTCOME_COLUMNS}
    )
    out.index = pd.RangeIndex(len(out))
    return out


def sample_for_outcomes(candidates: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """All candidates, or a seeded uniform sample of ``max_rows`` when there are more."""
    if len(candidates) <= max_rows:
        return candidates
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=max_rows, replace=False))
    return candidates.iloc[chosen].reset_index(drop=True)
