"""Invariants every priced butterfly must satisfy, run as blocking checks on the candidates.

They hold by construction (``candidates`` refuses to build anything else); checking them
on the stored table guards against a pricing change that quietly breaks one, which is the
kind of bug the original scanner shipped (an iron fly priced with its centre twice).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from butterquant_dagster.core.market.validation import Found, Rule, found_in

_TOL = 1e-9


def _describe(row) -> str:
    return (
        f"{row['structure']} {row['lower']}/{row['center']}/{row['upper']} exp "
        f"{pd.Timestamp(row['expiry']).date()}: cost {row['cost']:.4f}, max loss "
        f"{row['max_loss']:.4f}, breakevens {row['breakeven_low']:.4f}.."
        f"{row['breakeven_high']:.4f}"
    )


def check_max_loss_positive(frame: pd.DataFrame, **_) -> Found:
    return found_in(frame, ~(frame["max_loss"].to_numpy(float) > 0), "max_loss_positive", _describe)


def check_debit_within_width(frame: pd.DataFrame, **_) -> Found:
    debit = ~frame["is_credit"].to_numpy(bool)
    paid = frame["debit_natural"].to_numpy(float)
    bad = debit & ~((paid > 0) & (paid <= frame["width"].to_numpy(float) + _TOL))
    return found_in(frame, bad, "debit_within_width", _describe)


def check_credit_below_width(frame: pd.DataFrame, **_) -> Found:
    credit = frame["is_credit"].to_numpy(bool)
    received = -frame["debit_natural"].to_numpy(float)
    bad = credit & ~((received > 0) & (received < frame["width"].to_numpy(float)))
    return found_in(frame, bad, "credit_below_width", _describe)


def check_breakevens_inside_wings(frame: pd.DataFrame, **_) -> Found:
    low, high = frame["breakeven_low"].to_numpy(float), frame["breakeven_high"].to_numpy(float)
    bad = ~(
        (frame["lower"].to_numpy(float) - _TOL <= low)
        & (low <= high)
        & (high <= frame["upper"].to_numpy(float) + _TOL)
    )
    return found_in(frame, bad, "breakevens_inside_wings", _describe)


def _keys(symbol, expiry, strike) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [
            pd.Series(symbol).astype(str).to_numpy(),
            pd.to_datetime(pd.Series(expiry)).to_numpy(),
            pd.Series(strike).astype(float).to_numpy(),
        ]
    )


def check_legs_listed(frame: pd.DataFrame, listed: pd.MultiIndex | None = None, **_) -> Found:
    """Every leg's strike is listed in that expiry's chain (``listed``: the (symbol, expiry,
    strike) keys of the session's chain, from ``listed_strikes``)."""
    if listed is None or frame.empty:
        return Found(0, ())
    bad = np.zeros(len(frame), dtype=bool)
    for column in ("lower", "center", "upper"):
        keys = _keys(frame["symbol"], frame["expiry"], frame[column])
        bad |= ~keys.isin(listed)
    return found_in(frame, bad, "legs_listed", _describe)


def listed_strikes(chain: pd.DataFrame) -> pd.MultiIndex:
    return _keys(chain["symbol"], chain["expiry"], chain["strike"]).unique()


CANDIDATE_RULES: tuple[Rule, ...] = (
    Rule(
        "max_loss_positive",
        "every candidate risks something (max loss > 0)",
        check_max_loss_positive,
    ),
    Rule(
        "debit_within_width",
        "a debit is positive and never exceeds the wing width",
        check_debit_within_width,
    ),
    Rule(
        "credit_below_width",
        "a credit is positive and below the wing width",
        check_credit_below_width,
    ),
    Rule(
        "breakevens_inside_wings", "breakevens lie inside the wings", check_breakevens_inside_wings
    ),
    Rule("legs_listed", "every leg is a listed strike of its expiry", check_legs_listed),
)
