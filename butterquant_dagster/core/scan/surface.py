"""A few numbers per ticker that summarise its implied-volatility surface each session.

The probability model wants to know whether options are rich or cheap against the ticker's
own past (IV rank and percentile), whether the term structure is inverted, and how steep
the put skew is. Storing this small summary per session (one row per ticker) makes those
history-relative features cheap and keeps them free of look-ahead.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

SURFACE_COLUMNS = [
    "session",
    "symbol",
    "spot",
    "iv_atm_30",
    "iv_atm_near",
    "iv_atm_far",
    "term_slope",
    "skew_25d",
    "near_dte",
    "far_dte",
]
TARGET_DTE = 30


def _atm_by_expiry(chain: pd.DataFrame) -> pd.DataFrame:
    """ATM implied vol per (symbol, expiry): mean of call and put at the strike nearest spot."""
    distance = (chain["strike"] - chain["underlying_price"]).abs()
    nearest = chain.assign(_d=distance).sort_values(["symbol", "expiry", "_d"], kind="stable")
    first = nearest.drop_duplicates(["symbol", "expiry", "right"])
    first = first[first["_d"] <= first.groupby(["symbol", "expiry"])["_d"].transform("min")]
    atm = first.groupby(["symbol", "expiry"], as_index=False).agg(
        iv=("implied_vol", "mean"), dte=("dte", "first"), spot=("underlying_price", "first")
    )
    return atm[np.isfinite(atm["iv"]) & (atm["dte"] >= 1)]


def _skew(chain: pd.DataFrame, expiry_of: pd.Series) -> pd.Series:
    """25-delta put IV minus 25-delta call IV at each ticker's ~30-day expiry."""
    picked = chain.merge(expiry_of.rename("expiry").reset_index(), on=["symbol", "expiry"])
    out = {}
    for right, target in (("P", -0.25), ("C", 0.25)):
        side = picked[picked["right"] == right].assign(
            _d=lambda f, t=target: (f["delta"] - t).abs()
        )
        best = side.sort_values(["symbol", "_d"], kind="stable").drop_duplicates("symbol")
        out[right] = best.set_index("symbol")["implied_vol"]
    return (out["P"] - out["C"]).rename("skew_25d")


def surface_summary(chain: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    if chain.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SURFACE_COLUMNS}).assign(
            session=pd.Series(dtype="datetime64[ns]"), symbol=pd.Series(dtype=str)
        )
    atm = _atm_by_expiry(chain)
    rows = []
    for symbol, group in atm.groupby("symbol", sort=True):
        group = group.sort_values("dte")
        dte, iv = group["dte"].to_numpy(float), group["iv"].to_numpy(float)
        # Total variance is linear in time between expiries: interpolate it, not the vol.
        iv30 = float(np.sqrt(np.interp(TARGET_DTE, dte, iv**2 * dte) / TARGET_DTE))
        near = group[group["dte"] >= 7].head(1)
        far = group.tail(1)
        rows.append(
            {
                "symbol": symbol,
                "spot": float(group["spot"].iloc[0]),
                "iv_atm_30": iv30,
                "iv_atm_near": float(near["iv"].iloc[0]) if len(near) else np.nan,
                "iv_atm_far": float(far["iv"].iloc[0]),
                "near_dte": int(near["dte"].iloc[0]) if len(near) else 0,
                "far_dte": int(far["dte"].iloc[0]),
                "_expiry30": group.iloc[int(np.argmin(np.abs(dte - TARGET_DTE)))]["expiry"],
            }
        )
    frame = pd.DataFrame(rows)
    frame["term_slope"] = frame["iv_atm_far"] - frame["iv_atm_near"]
    skew = _skew(chain, frame.set_index("symbol")["_expiry30"])
    frame = frame.drop(columns="_expiry30").join(skew, on="symbol")
    frame.insert(0, "session", pd.Timestamp(session))
    return frame[SURFACE_COLUMNS]


def iv_rank(history: pd.DataFrame, today: pd.DataFrame, *, column: str = "iv_atm_30"):
    """IV rank ((today − min) / (max − min)) and percentile (share of past days below
    today) of each ticker's ``column`` over ``history`` (sessions before today only)."""
    past = history[["symbol", column]].dropna()
    stats = past.groupby("symbol")[column].agg(["min", "max", "count"])
    merged = today[["symbol", column]].join(stats, on="symbol")
    span = (merged["max"] - merged["min"]).where(lambda s: s > 0)
    rank = ((merged[column] - merged["min"]) / span).clip(0.0, 1.0)
    below = past.merge(today[["symbol", column]], on="symbol", suffixes=("", "_today"))
    share = (below[column] < below[f"{column}_today"]).groupby(below["symbol"]).mean()
    percentile = merged["symbol"].map(share)
    return (
        rank.fillna(0.5).to_numpy(),
        percentile.fillna(0.5).to_numpy(),
        merged["count"].fillna(0).to_numpy(),
    )
