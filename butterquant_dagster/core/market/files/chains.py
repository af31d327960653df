"""Option quotes from chain files in the canonical, DoltHub or CBOE/ORATS layout.

The layouts name the same fields differently, so the file's headers are mapped to the
canonical names once, and the rest of the source never sees a vendor's spelling. A file
is sorted by session when read so that a backtest's session-by-session requests are a
slice, not a scan.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core.market.files.parsing import (
    _as_ns,
    _cached,
    _data_files,
    _fmt,
    _norm,
    _parse_bools,
    _parse_dates,
    _parse_numbers,
    _parse_symbols,
    _read_table,
    _resolve,
    _where,
)
from butterquant_dagster.core.market.schemas import OPTION_CHAINS
from butterquant_dagster.core.market.source import MarketDataError

# Header aliases as for bars; the first alias present wins, so a file with both ``bid`` and
# ``bid_1545`` uses ``bid``.
CHAIN_ALIASES: dict[str, tuple[str, ...]] = {
    "session": ("session", "quotedate", "date", "tradedate"),
    "symbol": ("symbol", "underlyingsymbol", "actsymbol", "underlying", "ticker"),
    "root": ("root",),
    "expiry": ("expiry", "expiration", "expirationdate", "expirdate"),
    "strike": ("strike", "strikeprice"),
    "right": ("right", "optiontype", "callput", "putcall", "cpflag"),
    "bid": ("bid", "bideod", "bid1545"),
    "ask": ("ask", "askeod", "ask1545"),
    "mid": ("mid",),
    "theo": ("theo",),
    "volume": ("volume", "tradevolume"),
    "open_interest": ("openinterest",),
    "implied_vol": ("impliedvol", "impliedvolatility", "iv", "vol", "impliedvolatility1545"),
    "delta": ("delta", "delta1545"),
    "gamma": ("gamma", "gamma1545"),
    "vega": ("vega", "vega1545"),
    "theta": ("theta", "theta1545"),
    "underlying_price": (
        "underlyingprice",
        "underlyingclose",
        "activeunderlyingprice",
        "activeunderlyingprice1545",
        "underlyinglast",
    ),
    "rate": ("rate",),
    "dividend_yield": ("dividendyield",),
    "modelled": ("modelled",),
}
CHAIN_REQUIRED = ("session", "symbol", "expiry", "strike", "right", "bid", "ask")
_CHAIN_NUMBERS = (
    "strike",
    "bid",
    "ask",
    "mid",
    "theo",
    "volume",
    "open_interest",
    "implied_vol",
    "delta",
    "gamma",
    "vega",
    "theta",
    "underlying_price",
    "rate",
    "dividend_yield",
)
_GREEKS = ("delta", "gamma", "vega", "theta")
_RIGHTS = {"c": "C", "call": "C", "calls": "C", "p": "P", "put": "P", "puts": "P"}
# A date in a chain file's name (..._2008-10-01.csv, 20081001.parquet) marks a one-day file.
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


@dataclass
class ChainFile:
    """One parsed chain file: canonical columns it has, rows sorted by session."""

    path: Path
    layout: str
    frame: pd.DataFrame
    dates: np.ndarray  # distinct sessions, sorted, datetime64[ns]
    starts: np.ndarray  # first row of each session; len(dates) + 1 entries
    warnings: list[str] = field(default_factory=list)

    def rows(self, session: np.datetime64) -> pd.DataFrame:
        i = int(np.searchsorted(self.dates, session))
        if i == len(self.dates) or self.dates[i] != session:
            return self.frame.iloc[0:0]
        return self.frame.iloc[self.starts[i] : self.starts[i + 1]]


def read_chain_file(path: str | Path) -> ChainFile:
    """Parse a chain file once per process (cached by path, modification time and size)."""
    path = Path(path)
    if not path.is_file():
        raise MarketDataError(f"chains file {path} does not exist (rule: the path must exist)")
    return _cached(path, "chains", lambda: _parse_chains(path))


def _layout(headers: list[str]) -> str:
    normalised = {_norm(h) for h in headers}
    if {_norm(n) for n in OPTION_CHAINS.names} <= normalised:
        return "canonical"
    if {"actsymbol", "callput"} & normalised:
        return "dolthub"
    if {"underlyingsymbol", "quotedate", "optiontype"} & normalised:
        return "cboe"
    return "generic"


def _parse_chains(path: Path) -> ChainFile:
    raw = _read_table(path)
    cols = _resolve(raw, CHAIN_ALIASES, CHAIN_REQUIRED, path, "option chains")
    layout = _layout([str(c) for c in raw.columns])
    warnings: list[str] = []
    # One snapshot per row: CBOE files carry end-of-day quotes without greeks and 15:45
    # quotes with them; greeks of 15:45 never go with end-of-day quotes.
    if _norm(cols["bid"]).endswith("eod"):
        for name in ("implied_vol", *_GREEKS, "underlying_price"):
            if name in cols and _norm(cols[name]).endswith("1545"):
                del cols[name]
    raw = raw.loc[~raw[list(cols.values())].isna().all(axis=1)]  # blank lines

    frame = pd.DataFrame(index=raw.index)
    frame["session"] = _parse_dates(raw[cols["session"]], path, cols["session"])
    frame["expiry"] = _parse_dates(raw[cols["expiry"]], path, cols["expiry"])
    frame["symbol"] = _parse_symbols(raw[cols["symbol"]], path, cols["symbol"])
    rights = raw[cols["right"]].astype("string").str.strip().str.lower().map(_RIGHTS)
    bad = rights.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {cols['right']!r}: "
            f"{raw[cols['right']].iloc[first]!r} is not a call or a put "
            f"(rule: C/P, call/put, Call/Put)"
        )
    frame["right"] = rights.astype(object)
    for name in _CHAIN_NUMBERS:
        if name in cols:
            required = name in CHAIN_REQUIRED
            frame[name] = _parse_numbers(
                raw[cols[name]], path, cols[name], allow_missing=not required
            )
    not_positive = frame["strike"].to_numpy() <= 0
    if not_positive.any():
        first = int(np.flatnonzero(not_positive)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {cols['strike']!r}: "
            f"{float(frame['strike'].iloc[first])!r} (rule: a strike must be positive)"
        )
    if "modelled" in cols:
        frame["modelled"] = _parse_bools(raw[cols["modelled"]], path, cols["modelled"])
    if "root" in cols:
        roots = raw[cols["root"]].astype("string").str.strip().str.upper()
        other = (roots.notna() & (roots != frame["symbol"])).to_numpy()
        if other.any():
            warnings.append(
                f"{path}: dropped {int(other.sum())} contract row(s) whose root differs from "
                f"the underlying (policy: non-standard deliverables and other roots are "
                f"not part of the chain)"
            )
            frame = frame.loc[~other]
    frame["_pos"] = frame.index.to_numpy()
    frame["_file"] = path.name
    frame = frame.sort_values("session", kind="stable").reset_index(drop=True)
    stamps = frame["session"].to_numpy("datetime64[ns]")
    dates, starts = np.unique(stamps, return_index=True)
    starts = np.append(starts, len(frame))
    return ChainFile(path, layout, frame, dates, starts, warnings)


def _name_date(path: Path) -> dt.date | None:
    match = _NAME_DATE.search(path.name)
    if match is None:
        return None
    try:
        return dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _session_quotes(
    chains_path: Path, session: dt.date, warn: Callable[[list[str]], None]
) -> pd.DataFrame:
    """The rows of ``session`` from every chain file at ``chains_path``, as read.

    One-day files whose name dates another session are not opened: a directory of years
    of daily files costs one read per requested session.
    """
    stamp = _as_ns(session)
    files = _data_files(chains_path, "chains")
    parts, known = [], []
    for file in files:
        named = _name_date(file) if chains_path.is_dir() else None
        if named is not None and named != session:
            known.append(_as_ns(named))
            continue
        parsed = read_chain_file(file)
        warn(parsed.warnings)
        known.extend(parsed.dates)
        part = parsed.rows(stamp)
        if len(part):
            parts.append(part)
    if not parts:
        if known:
            latest = max(known)
            earlier = [d for d in known if d < stamp]
            detail = f"its latest quote date is {_fmt(latest)}"
            if earlier and max(earlier) != latest:
                detail += f" (the latest before {session} is {_fmt(max(earlier))})"
        else:
            detail = "it has no quotes at all"
        raise MarketDataError(
            f"{chains_path}: no option quotes for session {session}; {detail} "
            f"(rule: a chain file must hold the requested session)"
        )
    return pd.concat(parts, ignore_index=True)
