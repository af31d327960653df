"""Market data read from files: daily bars and, optionally, closing option chains.

``FileMarketSource`` implements the :class:`~butterquant_dagster.core.market.source.MarketSource`
protocol on CSV or Parquet files, so a backtest can run on real history (Yahoo-style
downloads, a DoltHub or CBOE option-chain export) exactly as it runs on the synthetic market.
The accepted layouts, the adjustment policy and the error rules are documented in
``docs/data_formats.md``; in short:

- bars come from a directory of one file per ticker in the vendor layout
  (``Date,Open,High,Low,Close,Adj Close,Volume``, ticker from the file name) or from one
  tidy table with a symbol column; ``Close`` is used as the traded, split-adjusted price;
- chains come from files in the canonical OPTION_CHAINS layout, the DoltHub layout or the
  CBOE/ORATS layout, with missing fields (underlying price, implied volatility, greeks, ...)
  filled in; without chain files, chains are modelled from the bars by ``chain_model``;
- every problem is a :class:`MarketDataError` naming the file, the row, the column or date,
  and the rule that was broken;
- each file is read once per process (cached by path, modification time and size).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.chain_model import UNDERLYING_COLUMNS, model_chains
from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    OPTION_CHAINS,
    conform,
    empty,
)
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster.core.options import black_scholes as bs

SUFFIXES = (".csv", ".parquet", ".pq")
TRADING_DAYS = 252.0

# Modelled chains (no chain files): the volatility state of each ticker.
EWMA_LAMBDA = 0.94
EWMA_WINDOW = 750  # 0.94**750 < 1e-20: older returns carry no weight
LONG_WINDOW = 252
MIN_RETURNS = 20
MODEL_VRP = 0.10
MODEL_SKEW = 0.10
MODEL_LIQUIDITY = 0.6

# Header aliases, compared after lower-casing and dropping everything but letters and
# digits ("Adj Close", "adj_close" and "AdjClose" are all "adjclose"). The first alias
# present wins, so a file with both ``bid`` and ``bid_1545`` uses ``bid``.
BAR_ALIASES: dict[str, tuple[str, ...]] = {
    "session": ("session", "date", "tradedate", "timestamp", "datetime"),
    "symbol": ("symbol", "ticker"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "adj_close": ("adjclose", "adjustedclose"),
    "volume": ("volume",),
}
BAR_REQUIRED = ("session", "open", "high", "low", "close", "volume")
_BAR_VALUES = ("open", "high", "low", "close", "adj_close", "volume")

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
    "strike", "bid", "ask", "mid", "theo", "volume", "open_interest", "implied_vol",
    "delta", "gamma", "vega", "theta", "underlying_price", "rate", "dividend_yield",
)
_GREEKS = ("delta", "gamma", "vega", "theta")
_RIGHTS = {"c": "C", "call": "C", "calls": "C", "p": "P", "put": "P", "puts": "P"}
# A date in a chain file's name (..._2008-10-01.csv, 20081001.parquet) marks a one-day file.
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")


# ---------------------------------------------------------------------------- helpers
def _norm(header: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def ticker_from_name(path: str | Path) -> str:
    """``nvda-1999-2014.csv`` -> NVDA, ``brk.b.csv`` -> BRK.B (dots belong to symbols)."""
    stem = Path(path).name
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.split(r"[-_]", stem, maxsplit=1)[0].strip().upper()


def _signature(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _data_files(path: Path, what: str) -> list[Path]:
    """The readable files at ``path`` (a file, or a directory's CSV/Parquet files)."""
    if not path.exists():
        raise MarketDataError(f"{what} path {path} does not exist (rule: the path must exist)")
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise MarketDataError(
                f"{what} file {path} is not CSV or Parquet (rule: files end in "
                f"{', '.join(SUFFIXES)})"
            )
        return [path]
    files = sorted(
        p for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES
    )
    if not files:
        raise MarketDataError(
            f"{what} directory {path} has no CSV or Parquet files (rule: one file per ticker "
            f"or per day, ending in {', '.join(SUFFIXES)})"
        )
    return files


def _where(path: Path, pos: int) -> str:
    """Where a data row is, for a person opening the file: CSV line (header is line 1)."""
    if path.suffix.lower() == ".csv":
        return f"line {pos + 2}"
    return f"row {pos + 1}"


def _read_raw(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, skip_blank_lines=False)
        return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            OSError, ValueError) as exc:
        raise MarketDataError(
            f"{path}: cannot be read as {path.suffix.lstrip('.').upper()} "
            f"(rule: a readable table with a header row): {exc}"
        ) from exc


def _resolve(
    raw: pd.DataFrame,
    aliases: dict[str, tuple[str, ...]],
    required: tuple[str, ...],
    path: Path,
    table: str,
) -> dict[str, str]:
    """Canonical column name -> the file's header, by alias; raise on missing/ambiguous."""
    by_norm: dict[str, str] = {}
    for header in raw.columns:
        key = _norm(header)
        if key in by_norm:
            raise MarketDataError(
                f"{path}: columns {by_norm[key]!r} and {header!r} are the same column once "
                f"case and spaces are ignored (rule: one column per field)"
            )
        by_norm[key] = str(header)
    mapping = {}
    for canonical, names in aliases.items():
        for name in names:
            if name in by_norm:
                mapping[canonical] = by_norm[name]
                break
    missing = [c for c in required if c not in mapping]
    if missing:
        described = "; ".join(
            f"{c} (any of {', '.join(aliases[c])})" for c in missing
        )
        raise MarketDataError(
            f"{path}: missing column(s) for {table}: {described}; found {list(raw.columns)} "
            f"(rule: required columns, header case and spaces ignored)"
        )
    return mapping


def _parse_dates(raw: pd.Series, path: Path, column: str) -> pd.Series:
    """Dates at midnight (exchange-local); raise naming the row of the first bad value."""
    values = raw
    if pd.api.types.is_integer_dtype(values):
        values = values.astype(str)
        parsed = pd.to_datetime(values, errors="coerce", format="%Y%m%d")
    elif pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        parsed = pd.to_datetime(values, errors="coerce")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert(calendar.EXCHANGE_TZ).dt.tz_localize(None)
    parsed = pd.Series(parsed, index=raw.index).dt.normalize().astype("datetime64[ns]")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = raw.iloc[first]
        rule = "missing date" if pd.isna(value) else f"{value!r} is not a date"
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {column!r}: {rule} "
            f"(rule: dates must be readable, e.g. YYYY-MM-DD)"
        )
    return parsed


def _parse_numbers(
    raw: pd.Series, path: Path, column: str, *, allow_missing: bool = False
) -> np.ndarray:
    """Floats; raise naming the row of the first value that is not a finite number."""
    if pd.api.types.is_bool_dtype(raw):
        values = pd.Series(np.nan, index=raw.index)
        not_number = pd.Series(True, index=raw.index)
    else:
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        not_number = values.isna() & raw.notna()
    infinite = np.isinf(values.to_numpy(float))
    bad = not_number.to_numpy() | infinite
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {column!r}: "
            f"{raw.iloc[first]!r} is not a "
            f"number (rule: prices and sizes must be finite numbers)"
        )
    if not allow_missing and values.isna().any():
        first = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {column!r} is empty "
            f"(rule: every row needs a value here)"
        )
    return values.to_numpy(float)


