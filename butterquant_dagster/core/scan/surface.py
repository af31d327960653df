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


def _empty_summary() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float) for c in SURFACE_COLUMNS}).assign(
        session=pd.Series(dtype="datetime64[ns]"),
        symbol=pd.Series(dtype=str),
        near_dte=pd.Series(dtype=int),
        far_dte=pd.Series(dtype=int),
    )[SURFACE_COLUMNS]


def surface_summary(chain: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    """One row per ticker with at least one expiry a day or more away; a ticker whose chain
    lists only the expiry that expires today (or nothing priced) has no surface that
    session, and the rest of the session is summarised as usual.

    Grouped operations over all tickers at once (a Python loop per ticker cost as much as
    the whole candidate build at 500 tickers)."""
    atm = _atm_by_expiry(chain) if not chain.empty else chain
    if atm.empty:
        return _empty_summary()
    atm = atm.sort_values(["symbol", "dte"], kind="stable").reset_index(drop=True)
    atm["w"] = atm["iv"] ** 2 * atm["dte"]  # total variance: linear in time between expiries
    by_symbol = atm.groupby("symbol", sort=True)
    first, last = by_symbol.head(1).set_index("symbol"), by_symbol.tail(1).set_index("symbol")
    symbols = first.index
    below = atm[atm["dte"] <= TARGET_DTE].groupby("symbol").tail(1).set_index("symbol")
    above = atm[atm["dte"] >= TARGET_DTE].groupby("symbol").head(1).set_index("symbol")
    w_lo, d_lo = below["w"].reindex(symbols), below["dte"].reindex(symbols)
    w_hi, d_hi = above["w"].reindex(symbols), above["dte"].reindex(symbols)
    span = (d_hi - d_lo).where(lambda d: d > 0)
    between = (w_lo + (w_hi - w_lo) * (TARGET_DTE - d_lo) / span).fillna(w_lo)
    # Outside the listed expiries the total variance is held at the nearest end (np.interp).
    w30 = between.where(w_lo.notna() & w_hi.notna(), w_lo.fillna(last["w"]))
    w30 = w30.where(w_lo.notna(), first["w"])
    near = atm[atm["dte"] >= 7].groupby("symbol").head(1).set_index("symbol").reindex(symbols)
    nearest_30 = (atm["dte"] - TARGET_DTE).abs().groupby(atm["symbol"]).idxmin()
    frame = pd.DataFrame(
        {
            "session": pd.Timestamp(session),
            "symbol": symbols.astype(str),
            "spot": first["spot"].to_numpy(float),
            "iv_atm_30": np.sqrt(w30.to_numpy(float) / TARGET_DTE),
            "iv_atm_near": near["iv"].to_numpy(float),
            "iv_atm_far": last["iv"].to_numpy(float),
            "near_dte": near["dte"].fillna(0).to_numpy().astype(int),
            "far_dte": last["dte"].to_numpy().astype(int),
        }
    )
    frame["term_slope"] = frame["iv_atm_far"] - frame["iv_atm_near"]
    expiry_30 = pd.Series(
        atm.loc[nearest_30.reindex(symbols).to_numpy(), "expiry"].to_numpy(), index=symbols
    )
    frame = frame.join(_skew(chain, expiry_30), on="symbol")
    frame["session"] = frame["session"].astype("datetime64[ns]")
    return frame[SURFACE_COLUMNS].reset_index(drop=True)


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
