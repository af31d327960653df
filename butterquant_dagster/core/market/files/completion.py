"""Completing quotes read from chain files into OPTION_CHAINS rows.

Vendor chains lack fields the strategies need (underlying price, implied volatility,
greeks, expiry type) or give them in other units (vega per vol point, theta per year).
Missing fields are computed with Black-Scholes from the quotes, and given fields whose
median is a known unit factor away from the Black-Scholes value are converted, so every
chain reaches the pipeline in one convention whatever its vendor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.files.chains import _GREEKS
from butterquant_dagster.core.market.files.parsing import _fmt, _where
from butterquant_dagster.core.market.schemas import OPTION_CHAINS, conform
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster.core.options import black_scholes as bs


def _expiry_session(day: dt.date) -> dt.date:
    """The last session on or before ``day`` (a Saturday expiry trades last on Friday)."""
    first, last = calendar.calendar_bounds()
    if calendar.is_session(day) or not first < day <= last:
        return day
    return calendar.previous_session(day)


def expiry_kind(expiry: dt.date) -> str:
    """monthly: the third Friday, or the session before it when that Friday is a holiday."""
    friday = calendar.third_friday(expiry.year, expiry.month)
    if expiry == friday:
        return "monthly"
    if not calendar.is_session(friday) and expiry == _expiry_session(friday):
        return "monthly"
    return "weekly"


def _rescale(
    given: np.ndarray, reference: np.ndarray, factor: float, what: str, path: str
) -> tuple[np.ndarray, str | None]:
    """Divide ``given`` by ``factor`` when it is ``factor`` times the reference (units)."""
    usable = np.isfinite(given) & np.isfinite(reference) & (np.abs(reference) > 1e-6)
    if not usable.any():
        return given, None
    ratio = float(np.median(given[usable] / reference[usable]))
    if factor / 2.0 < ratio < factor * 2.0:
        return given / factor, (
            f"{path}: {what} is {ratio:.0f} times the Black-Scholes value; divided by "
            f"{factor:g} (policy: {what} in other units is converted)"
        )
    return given, None


def _complete(
    rows: pd.DataFrame,
    session: dt.date,
    *,
    chains_path: Path,
    bars_path: Path,
    rate: float,
    closes: Callable[[], dict[str, float]],
    warn: Callable[[list[str]], None],
) -> pd.DataFrame:
    """Fill what the layout lacks and return OPTION_CHAINS rows.

    ``closes`` is called only when a row has no underlying price, so a chain file that
    carries its own never needs the bars.
    """
    origin = str(chains_path)
    out = pd.DataFrame(index=rows.index)
    out["session"] = np.datetime64(session, "ns")
    out["symbol"] = rows["symbol"]

    listed = pd.DatetimeIndex(rows["expiry"].unique())
    normal = pd.DatetimeIndex([_expiry_session(d.date()) for d in listed])
    which = listed.get_indexer(rows["expiry"])
    expiry = pd.Series(normal[which], index=rows.index)
    expired = (expiry < pd.Timestamp(session)).to_numpy()
    if expired.any():
        row = rows.loc[expired].iloc[0]
        file = chains_path / row["_file"] if chains_path.is_dir() else chains_path
        raise MarketDataError(
            f"{file}: "
            f"{_where(Path(row['_file']), int(row['_pos']))}: expiry "
            f"{_fmt(row['expiry'])} is before the session {session} "
            f"(rule: a chain lists contracts that still trade)"
        )
    out["expiry"] = expiry.astype("datetime64[ns]")
    kinds = np.array([expiry_kind(d.date()) for d in normal], dtype=object)
    out["expiry_type"] = kinds[which]
    dte = (out["expiry"] - pd.Timestamp(session)).dt.days.to_numpy()
    out["dte"] = dte
    out["strike"] = rows["strike"]
    out["right"] = rows["right"]
    out["bid"] = rows["bid"]
    out["ask"] = rows["ask"]

    def column(name: str, default) -> np.ndarray:
        if name in rows.columns:
            values = rows[name].to_numpy(float)
            return np.where(np.isnan(values), default, values)
        return np.broadcast_to(np.asarray(default, dtype=float), len(rows)).copy()

    mid = column("mid", (rows["bid"].to_numpy(float) + rows["ask"].to_numpy(float)) / 2.0)
    out["mid"] = mid
    out["theo"] = column("theo", mid)
    out["volume"] = np.round(column("volume", 0.0))
    out["open_interest"] = np.round(column("open_interest", 0.0))

    spot = column("underlying_price", np.nan)
    lacking = np.isnan(spot)
    if lacking.any():
        filled = rows["symbol"].map(closes()).to_numpy(float)
        spot = np.where(lacking, filled, spot)
        still = np.isnan(spot)
        if still.any():
            symbols = sorted(set(rows.loc[still, "symbol"]))
            raise MarketDataError(
                f"{origin}: no underlying price for {symbols} on {session}: the chain "
                f"file has none and {bars_path} has no bar that session "
                f"(rule: every chain row needs its underlying's close)"
            )
    out["underlying_price"] = spot

    rates = column("rate", rate)
    div = column("dividend_yield", 0.0)
    strike = rows["strike"].to_numpy(float)
    is_call = (rows["right"] == "C").to_numpy()
    t = np.maximum(dte, 0.5) / 365.0
    computed = bs.implied_vol(mid, spot, strike, t, rates, div, is_call)
    files = ", ".join(sorted(set(rows["_file"])))
    if "implied_vol" in rows.columns:
        given, note = _rescale(
            rows["implied_vol"].to_numpy(float),
            computed,
            100.0,
            "implied volatility",
            files,
        )
        warn([note] if note else [])
        implied = np.where(np.isnan(given), computed, given)
    else:
        implied = computed
    out["implied_vol"] = implied
    reference = bs.greeks(spot, strike, t, implied, rates, div, is_call)
    factors = {"delta": None, "gamma": None, "vega": 100.0, "theta": 365.0}
    for name in _GREEKS:
        if name in rows.columns:
            given = rows[name].to_numpy(float)
            if factors[name] is not None:
                given, note = _rescale(given, reference[name], factors[name], name, files)
                warn([note] if note else [])
            out[name] = np.where(np.isnan(given), reference[name], given)
        else:
            out[name] = reference[name]
    out["rate"] = rates
    out["dividend_yield"] = div
    out["modelled"] = rows["modelled"] if "modelled" in rows.columns else False
    out["source"] = "files:" + rows["_file"]
    out["_file"] = rows["_file"]
    out["_pos"] = rows["_pos"]

    key = list(OPTION_CHAINS.key)
    duplicated = out.duplicated(key, keep=False).to_numpy()
    if duplicated.any():
        first = out.loc[duplicated].iloc[0]
        same = out.loc[duplicated & (out[key[1:]] == first[key[1:]]).all(axis=1).to_numpy()]
        places = ", ".join(
            f"{f} {_where(Path(f), int(p))}"
            for f, p in zip(same["_file"], same["_pos"], strict=True)
        )
        raise MarketDataError(
            f"{origin}: contract {first['symbol']} {_fmt(first['expiry'])} "
            f"{first['strike']:g} {first['right']} is quoted more than once on {session} "
            f"({places}) (rule: one quote per contract and session)"
        )
    out = out.sort_values(["symbol", "expiry", "strike", "right"], kind="stable")
    # conform aligns columns on the index: hand it a fresh one in the sorted order.
    return conform(out.reset_index(drop=True), OPTION_CHAINS, origin=origin)
