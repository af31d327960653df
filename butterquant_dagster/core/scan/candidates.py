"""Every listed butterfly of a session, priced from its legs' real quotes.

For each ticker and each expiry in the window, every centre strike within the band around
spot and every symmetric wing of 1..3 listed strike steps, for each structure. Legs are
only ever listed strikes of that expiry (a wing is a step in the listed grid, never a
strike snapped on its own), and a candidate whose legs cannot be traded at a sane price
(a missing side, a zero bid on any leg, a debit at or above the wing width) is not built:
it is counted against its ticker with the reason.

Everything is NumPy over all candidates of the session at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core.options import butterfly as fly
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER

_LEG_FIELDS = (
    "bid",
    "ask",
    "implied_vol",
    "delta",
    "gamma",
    "vega",
    "theta",
    "volume",
    "open_interest",
)
_KEY = ["symbol", "expiry", "strike"]


@dataclass(frozen=True)
class CandidateRules:
    min_dte: int = 7
    max_dte: int = 60
    center_band: float = 0.10  # centre strikes within ±10 % of spot
    max_width_steps: int = 3
    structures: tuple[str, ...] = tuple(fly.STRUCTURES)


def _strike_table(chain: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, expiry, strike) with the call's and the put's quote side by side."""
    base = chain[
        ["symbol", "expiry", "strike", "dte", "underlying_price", "rate", "dividend_yield"]
    ].drop_duplicates(_KEY)
    for right, suffix in (("C", "_c"), ("P", "_p")):
        side = chain.loc[chain["right"] == right, [*_KEY, *_LEG_FIELDS]]
        base = base.merge(side, on=_KEY, how="left", suffixes=("", ""))
        base = base.rename(columns={f: f + suffix for f in _LEG_FIELDS})
    return base.sort_values(_KEY, kind="stable").reset_index(drop=True)


def _positions(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's position in its (symbol, expiry) strike ladder, and the ladder's length."""
    group = table.groupby(["symbol", "expiry"], sort=False).ngroup().to_numpy()
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    sizes = np.diff(np.r_[starts, len(group)])
    position = np.arange(len(group)) - np.repeat(starts, sizes)
    return position, np.repeat(sizes, sizes)


def _atm_vol(table: pd.DataFrame) -> pd.Series:
    """Implied vol at the strike nearest the spot, per (symbol, expiry)."""
    distance = (table["strike"] - table["underlying_price"]).abs()
    nearest = table.loc[distance.groupby([table["symbol"], table["expiry"]]).idxmin()]
    vol = nearest[["implied_vol_c", "implied_vol_p"]].mean(axis=1, skipna=True)
    return pd.Series(vol.to_numpy(), index=pd.MultiIndex.from_frame(nearest[["symbol", "expiry"]]))


def build_candidates(
    chain: pd.DataFrame, session: dt.date, rules: CandidateRules | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates, skips): the candidates of one session's chain and, per ticker, what was
    not built and why."""
    rules = rules or CandidateRules()
    skips: list[dict] = []
    in_window = chain[(chain["dte"] >= rules.min_dte) & (chain["dte"] <= rules.max_dte)]
    for symbol in sorted(set(chain["symbol"]) - set(in_window["symbol"])):
        skips.append(
            {
                "symbol": symbol,
                "reason": "no listed expiry in the window",
                "detail": f"{rules.min_dte}-{rules.max_dte} days",
                "count": 1,
            }
        )
    table = _strike_table(in_window)
    position, size = _positions(table)
    strike = table["strike"].to_numpy()
    spot = table["underlying_price"].to_numpy()
    near_spot = np.abs(strike / spot - 1.0) <= rules.center_band + 1e-12  # the edge is in

    pieces = []
    for width_steps in range(1, rules.max_width_steps + 1):
        centre = np.flatnonzero(
            (position >= width_steps) & (position + width_steps < size) & near_spot
        )
        lower, upper = centre - width_steps, centre + width_steps
        symmetric = np.isclose(strike[centre] - strike[lower], strike[upper] - strike[centre])
        centre, lower, upper = centre[symmetric], lower[symmetric], upper[symmetric]
        for structure in rules.structures:
            pieces.append(_price(table, structure, width_steps, lower, centre, upper))
    raw = pd.concat(pieces, ignore_index=True)
    valid, reasons = _validity(raw)
    for (symbol, reason), count in (
        raw.loc[~valid].assign(reason=reasons[~valid]).groupby(["symbol", "reason"]).size().items()
    ):
        skips.append(
            {
                "symbol": symbol,
                "reason": reason,
                "detail": "candidates not built",
                "count": int(count),
            }
        )
    candidates = drop_internal(raw.loc[valid]).reset_index(drop=True)
    built = set(candidates["symbol"])
    for symbol in sorted(set(in_window["symbol"]) - built):
        skips.append(
            {
                "symbol": symbol,
                "reason": "illiquid: no tradable candidate",
                "detail": "every candidate failed a price rule",
                "count": 0,
            }
        )
    atm = _atm_vol(table)
    keys = pd.MultiIndex.from_frame(candidates[["symbol", "expiry"]])
    candidates["iv_atm"] = atm.reindex(keys).to_numpy()
    candidates["expected_move"] = (
        candidates["spot"] * candidates["iv_atm"] * np.sqrt(candidates["dte"] / 365.0)
    )
    candidates.insert(0, "session", pd.Timestamp(session))
    skip_frame = pd.DataFrame(skips, columns=["symbol", "reason", "detail", "count"])
    return candidates, skip_frame


def _leg_arrays(table: pd.DataFrame, structure: str, rows: dict[str, np.ndarray]):
    legs = fly.STRUCTURES[structure]
    quantity = np.array([[leg.quantity] for leg in legs], dtype=float)
    fields = {}
    for field in _LEG_FIELDS:
        fields[field] = np.vstack(
            [
                table[f"{field}_{leg.right.lower()}"].to_numpy(float)[rows[leg.strike]]
                for leg in legs
            ]
        )
    return quantity, fields


def _price(table, structure, width_steps, lower, centre, upper) -> pd.DataFrame:
    rows = {"lower": lower, "center": centre, "upper": upper}
    quantity, leg = _leg_arrays(table, structure, rows)
    is_credit = structure in fly.CREDIT_STRUCTURES
    strike = table["strike"].to_numpy()
    k_low, k_mid, k_high = strike[lower], strike[centre], strike[upper]
    width = k_mid - k_low
    debit_mid, debit_natural = fly.combo_prices(quantity, leg["bid"], leg["ask"])
    contracts = fly.CONTRACTS_PER_COMBO[structure]
    econ = fly.economics(is_credit, debit_natural, k_mid, width, contracts)
    spot = table["underlying_price"].to_numpy()[centre]
    dte = table["dte"].to_numpy()[centre]
    t = np.maximum(dte, 0.5) / 365.0
    rate = table["rate"].to_numpy()[centre]
    div = table["dividend_yield"].to_numpy()[centre]
    forward = spot * np.exp((rate - div) * t)
    centre_legs = [i for i, l_ in enumerate(fly.STRUCTURES[structure]) if l_.strike == "center"]
    iv_center = np.nanmean(leg["implied_vol"][centre_legs], axis=0)
    greeks = {g: np.sum(quantity * leg[g], axis=0) for g in ("delta", "gamma", "vega", "theta")}
    spread = np.abs(debit_natural - debit_mid)
    n = len(centre)
    frame = pd.DataFrame(
        {
            "symbol": table["symbol"].to_numpy()[centre],
            "expiry": table["expiry"].to_numpy()[centre],
            "dte": dte,
            "structure": structure,
            "is_credit": is_credit,
            "lower": k_low,
            "center": k_mid,
            "upper": k_high,
            "width": width,
            "width_steps": width_steps,
            "spot": spot,
            "debit_mid": debit_mid,
            "debit_natural": debit_natural,
            "cost": econ.cost,
            "max_profit": econ.max_profit,
            "max_loss": econ.max_loss,
            "breakeven_low": econ.breakeven_low,
            "breakeven_high": econ.breakeven_high,
            "profit_zone_width": econ.breakeven_high - econ.breakeven_low,
            "reward_risk": econ.max_profit / np.where(econ.max_loss > 0, econ.max_loss, np.nan),
            "capital_at_risk": econ.max_loss * CONTRACT_MULTIPLIER,
            "iv_center": iv_center,
            "prob_profit_rn": fly.prob_between(
                econ.breakeven_low, econ.breakeven_high, forward, iv_center, t
            ),
            **{f"net_{g}": v for g, v in greeks.items()},
            # Spread of the combo as a share of its mid; a mid below a cent counts as a cent.
            "spread_pct": spread / np.maximum(np.abs(debit_mid), 0.01),
            "min_volume": np.nanmin(leg["volume"], axis=0),
            "min_open_interest": np.nanmin(leg["open_interest"], axis=0),
            "rate": rate,
            "dividend_yield": div,
        },
        index=pd.RangeIndex(n),
    )
    frame["_legs_quoted"] = np.all(np.isfinite(leg["bid"]) & np.isfinite(leg["ask"]), axis=0)
    frame["_zero_bid"] = np.any(leg["bid"] <= 0, axis=0)
    return frame


def _validity(raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates can be traded at a possible price, and the reason for the rest."""
    reasons = np.full(len(raw), "", dtype=object)
    checks = [
        (~raw["_legs_quoted"].to_numpy(), "missing strike or side in the chain"),
        (raw["_zero_bid"].to_numpy(), "a leg has a zero bid (one-sided quote)"),
        (raw["max_loss"].to_numpy() <= 0, "impossible price: no risk (max loss <= 0)"),
        (raw["max_profit"].to_numpy() <= 0, "impossible price: cost at or above the width"),
        # A credit of the width or more is free money before fees; the invariant
        # ``credit_below_width`` rejects it, so it must not be built.
        (
            raw["is_credit"].to_numpy(bool)
            & (-raw["debit_natural"].to_numpy(float) >= raw["width"].to_numpy(float)),
            "impossible price: credit at or above the width",
        ),
        # Being paid to buy a long fly (or to sell an iron fly) is not a price either.
        (
            np.where(raw["is_credit"].to_numpy(bool), 1.0, -1.0)
            * raw["debit_natural"].to_numpy(float)
            >= 0,
            "impossible price: a debit structure for a credit, or the reverse",
        ),
    ]
    for failed, reason in checks:
        reasons = np.where(failed & (reasons == ""), reason, reasons)
    valid = reasons == ""
    return valid, reasons


def drop_internal(candidates: pd.DataFrame) -> pd.DataFrame:
    return candidates.drop(columns=[c for c in candidates.columns if c.startswith("_")])
