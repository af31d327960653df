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
import re
from dataclasses import dataclass, field
from functools import lru_cache
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
            c if aliases[c] == (_norm(c),) else f"{c} (accepted: {', '.join(aliases[c])})"
            for c in missing
        )
        raise MarketDataError(
            f"{path}: missing column(s) for {table}: {described}; found {list(raw.columns)} "
            f"(rule: required columns must be present; header case, spaces and underscores "
            f"are ignored)"
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
    if pd.api.types.is_bool_dtype(raw):  # True/False is not a price
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


def _parse_symbols(raw: pd.Series, path: Path, column: str) -> pd.Series:
    symbols = raw.astype("string").str.strip().str.upper()
    bad = (symbols.isna() | (symbols == "")).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {column!r} is empty "
            f"(rule: every row names its ticker)"
        )
    return symbols.astype(object)


def _parse_bools(raw: pd.Series, path: Path, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(bool)
    mapped = raw.map(
        lambda v: {"true": True, "false": False, "1": True, "0": False}.get(
            str(v).strip().lower().removesuffix(".0")
        )
    )
    bad = mapped.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {column!r}: "
            f"{raw.iloc[first]!r} is not true/false (rule: booleans are true or false)"
        )
    return mapped.to_numpy(bool)


@lru_cache(maxsize=1)
def _session_table() -> tuple[np.ndarray, np.datetime64, np.datetime64]:
    """Every NYSE session of the calendar (datetime64[ns]), its first and its last."""
    first, last = calendar.calendar_bounds()
    days = pd.DatetimeIndex(calendar.sessions(first, last)).to_numpy("datetime64[ns]")
    return days, days[0], days[-1]


def _as_ns(day: dt.date) -> np.datetime64:
    return np.datetime64(day, "ns")


def _fmt(day) -> str:
    return str(pd.Timestamp(day).date())


def _stable_int(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def session_rng(seed: int, session: dt.date) -> np.random.Generator:
    """The random stream of a modelled chain: a pure function of (seed, session)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, _stable_int("files-chain", session)])


# ---------------------------------------------------------------------------- bars files
@dataclass
class BarsFile:
    """One parsed bars file: per ticker, its bars indexed by session, oldest first."""

    path: Path
    frames: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)


_BARS_CACHE: dict[tuple[str, str | None], tuple[tuple[str, int, int], BarsFile]] = {}
_CHAINS_CACHE: dict[str, tuple[tuple[str, int, int], ChainFile]] = {}


def clear_cache() -> None:
    """Forget every file read so far (the next call reads from disk again)."""
    _BARS_CACHE.clear()
    _CHAINS_CACHE.clear()


def read_bars_file(path: str | Path, ticker: str | None = None) -> BarsFile:
    """Parse a bars file once per process (cached by path, modification time and size).

    ``ticker`` is the symbol a one-ticker file holds (from its name); ``None`` reads the
    symbols from the file's symbol column, or, without one, from its name.
    """
    path = Path(path)
    if not path.is_file():
        raise MarketDataError(f"bars file {path} does not exist (rule: the path must exist)")
    signature = _signature(path)
    key = (signature[0], ticker)
    hit = _BARS_CACHE.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    parsed = _parse_bars(path, ticker)
    _BARS_CACHE[key] = (signature, parsed)
    return parsed


def _parse_bars(path: Path, ticker: str | None) -> BarsFile:
    raw = _read_raw(path)
    raw.index = pd.RangeIndex(len(raw))
    cols = _resolve(raw, BAR_ALIASES, BAR_REQUIRED, path, "daily bars")
    warnings: list[str] = []

    value_headers = [cols[c] for c in _BAR_VALUES if c in cols]
    no_values = raw[value_headers].isna().all(axis=1)
    no_date = raw[cols["session"]].isna()
    placeholder = no_values & ~no_date
    if placeholder.any():
        lines = [_where(path, int(i)) for i in np.flatnonzero(placeholder.to_numpy())[:5]]
        warnings.append(
            f"{path}: dropped {int(placeholder.sum())} row(s) with a date but no prices "
            f"({', '.join(lines)}{', ...' if placeholder.sum() > 5 else ''}) "
            f"(policy: vendor placeholder rows are dropped)"
        )
    raw = raw.loc[~(no_values)]  # blank lines and placeholders

    dates = _parse_dates(raw[cols["session"]], path, cols["session"])
    if "symbol" in cols:
        symbols = _parse_symbols(raw[cols["symbol"]], path, cols["symbol"])
        if ticker is not None:
            wrong = (symbols != ticker).to_numpy()
            if wrong.any():
                first = int(np.flatnonzero(wrong)[0])
                raise MarketDataError(
                    f"{path}: {_where(path, int(raw.index[first]))}: symbol "
                    f"{symbols.iloc[first]!r} differs from the ticker {ticker!r} in the file "
                    f"name (rule: a per-ticker file holds only its own ticker)"
                )
    else:
        symbols = pd.Series(ticker or ticker_from_name(path), index=raw.index, dtype=object)

    values = {
        c: _parse_numbers(raw[cols[c]], path, cols[c]) for c in _BAR_VALUES if c in cols
    }
    if "adj_close" not in values:
        values["adj_close"] = values["close"]
    not_positive = values["close"] <= 0
    if not_positive.any():
        first = int(np.flatnonzero(not_positive)[0])
        raise MarketDataError(
            f"{path}: {_where(path, int(raw.index[first]))}: column {cols['close']!r}: "
            f"{values['close'][first]!r} (rule: a close must be positive)"
        )
    frame = pd.DataFrame(
        {
            "session": dates.to_numpy(),
            "symbol": symbols.to_numpy(),
            **{c: values[c] for c in _BAR_VALUES},
            "_pos": raw.index.to_numpy(),
        }
    )
    frame["volume"] = np.round(frame["volume"])

    duplicated = frame.duplicated(["symbol", "session"], keep=False).to_numpy()
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        same = frame.loc[
            duplicated
            & (frame["symbol"] == first["symbol"]).to_numpy()
            & (frame["session"] == first["session"]).to_numpy()
        ]
        raise MarketDataError(
            f"{path}: {first['symbol']} has more than one row dated {_fmt(first['session'])} "
            f"({', '.join(_where(path, int(p)) for p in same['_pos'])}) "
            f"(rule: one bar per ticker and session)"
        )

    all_sessions, first_session, last_session = _session_table()
    stamps = frame["session"].to_numpy("datetime64[ns]")
    in_range = (stamps >= first_session) & (stamps <= last_session)
    closed = in_range & ~np.isin(stamps, all_sessions)
    if closed.any():
        weekend = closed & (frame["session"].dt.day_of_week >= 5).to_numpy()
        if weekend.any():
            row = frame.loc[weekend].iloc[0]
            raise MarketDataError(
                f"{path}: {_where(path, int(row['_pos']))}: {row['symbol']} row dated "
                f"{_fmt(row['session'])}, a {row['session']:%A}, is not an NYSE session "
                f"(rule: bars are dated on sessions; weekend dates usually mean the file's "
                f"dates are shifted by a timezone)"
            )
        days = sorted({_fmt(d) for d in frame.loc[closed, "session"]})
        warnings.append(
            f"{path}: dropped {int(closed.sum())} row(s) dated on weekday NYSE closures "
            f"({', '.join(days[:5])}{', ...' if len(days) > 5 else ''}) "
            f"(policy: vendor filler rows on market closures are dropped)"
        )
        frame = frame.loc[~closed]

    frame = frame.sort_values(["symbol", "session"], kind="stable")
    frame["prev_close"] = frame.groupby("symbol", sort=False)["close"].shift(1)
    frame["source"] = f"files:{path.name}"
    frame = frame.drop(columns="_pos")
    frames = {
        str(symbol): group.set_index("session", drop=False)
        for symbol, group in frame.groupby("symbol", sort=False)
    }
    return BarsFile(path, frames, warnings)


# ---------------------------------------------------------------------------- chain files
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
    signature = _signature(path)
    hit = _CHAINS_CACHE.get(signature[0])
    if hit is not None and hit[0] == signature:
        return hit[1]
    parsed = _parse_chains(path)
    _CHAINS_CACHE[signature[0]] = (signature, parsed)
    return parsed


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
    raw = _read_raw(path)
    raw.index = pd.RangeIndex(len(raw))
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


# ---------------------------------------------------------------------------- the source
class FileMarketSource:
    """Bars and chains from CSV/Parquet files; see the module docstring and
    ``docs/data_formats.md``.

    Attributes after a call: ``warnings`` lists what was dropped or converted while reading
    (rows on weekday market closures, vendor placeholder rows, greek units), and
    ``skipped_tickers`` / ``skip_reasons`` the tickers the last modelled ``chains`` call gave
    no chain (no bar on the session, fewer than 20 returns).
    """

    name = "files"

    def __init__(
        self,
        universe: pd.DataFrame,
        bars_path: str | Path,
        chains_path: str | Path | None = None,
        *,
        rate: float = 0.04,
        seed: int = 7,
    ):
        if "symbol" not in universe.columns:
            raise ValueError(f"the universe needs a symbol column; found {list(universe.columns)}")
        symbols = universe["symbol"].astype(str).str.strip().str.upper().tolist()
        if not symbols:
            raise ValueError("the file source needs at least one ticker")
        self.symbols: list[str] = list(dict.fromkeys(symbols))
        self.bars_path = Path(bars_path)
        self.chains_path = None if chains_path is None else Path(chains_path)
        self.rate = float(rate)
        self.seed = int(seed)
        self.warnings: list[str] = []
        self.skipped_tickers: list[str] = []
        self.skip_reasons: dict[str, str] = {}
        self._bars_key: tuple | None = None
        self._bars: pd.DataFrame | None = None
        self._history: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]] = {}

    # ------------------------------------------------------------------ helpers
    def _warn(self, messages: list[str]) -> None:
        for message in messages:
            if message not in self.warnings:
                self.warnings.append(message)

    def _require(self, day: dt.date, path: Path | None) -> dt.date:
        try:
            return calendar.require_session(day, what="requested date")
        except calendar.CalendarError as exc:
            raise MarketDataError(
                f"{path}: {exc} (rule: data is requested for NYSE sessions only)"
            ) from exc

    def _bars_files(self) -> dict[str, tuple[Path, str | None]]:
        """Universe ticker -> (file, ticker argument for read_bars_file)."""
        files = _data_files(self.bars_path, "bars")
        if not self.bars_path.is_dir():
            return {"*": (files[0], None)}
        wanted = set(self.symbols)
        found: dict[str, tuple[Path, str | None]] = {}
        for file in files:
            ticker = ticker_from_name(file)
            if ticker not in wanted:
                continue
            if ticker in found:
                raise MarketDataError(
                    f"{self.bars_path}: ticker {ticker} comes from both {found[ticker][0].name} "
                    f"and {file.name} (rule: one file per ticker)"
                )
            found[ticker] = (file, ticker)
        return found

    def _bars_table(self) -> pd.DataFrame:
        """Every bar of the universe, sorted by (session, symbol), indexed by session."""
        files = self._bars_files()
        key = tuple(sorted((t, _signature(f)) for t, (f, _) in files.items()))
        if self._bars is not None and key == self._bars_key:
            return self._bars
        frames: dict[str, pd.DataFrame] = {}
        for _, (file, ticker) in files.items():
            parsed = read_bars_file(file, ticker)
            self._warn(parsed.warnings)
            frames.update(parsed.frames)
        unknown = [s for s in self.symbols if s not in frames or frames[s].empty]
        if unknown:
            layout = (
                "no file named <ticker>-....csv/.parquet in the directory"
                if self.bars_path.is_dir() else "no rows with that symbol in the file"
            )
            raise MarketDataError(
                f"{self.bars_path}: unknown ticker(s) {unknown}: {layout} "
                f"(rule: every universe ticker has bars in the source)"
            )
        chosen = [frames[s] for s in self.symbols]
        table = pd.concat(chosen, ignore_index=True)
        table = table.sort_values(["session", "symbol"], kind="stable")
        table = table.set_index(pd.DatetimeIndex(table["session"]), drop=False)
        table.index.name = None
        self._history = {
            s: (
                frame["session"].to_numpy("datetime64[ns]"),
                frame["close"].to_numpy(float),
                np.diff(np.log(frame["close"].to_numpy(float))),
                str(frame["source"].iloc[0]).removeprefix("files:"),
            )
            for s, frame in zip(self.symbols, chosen, strict=True)
        }
        self._bars, self._bars_key = table, key
        return table

    # ------------------------------------------------------------------ protocol
    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        """DAILY_BARS rows dated in ``sessions`` of every universe ticker with a bar there."""
        wanted = [self._require(day, self.bars_path) for day in sessions]
        table = self._bars_table()
        if not wanted:
            return empty(DAILY_BARS)
        chosen = table.loc[table.index.isin(pd.DatetimeIndex(wanted))]
        chosen = chosen[DAILY_BARS.names].reset_index(drop=True)
        return conform(chosen, DAILY_BARS, origin=str(self.bars_path))

    def chains(self, session: dt.date) -> pd.DataFrame:
        """OPTION_CHAINS rows of ``session``: from the chain files, else modelled."""
        if self.chains_path is None:
            day = self._require(session, self.bars_path)
            return self._modelled_chains(day)
        day = self._require(session, self.chains_path)
        return self._file_chains(day)

    def truth(self, sessions: list[dt.date]) -> None:
        """Real markets have no known hidden regime."""
        return None

    # ------------------------------------------------------------------ file chains
    def _file_chains(self, session: dt.date) -> pd.DataFrame:
        assert self.chains_path is not None
        stamp = _as_ns(session)
        files = _data_files(self.chains_path, "chains")
        parts, known = [], []
        for file in files:
            named = _name_date(file) if self.chains_path.is_dir() else None
            if named is not None and named != session:
                known.append(_as_ns(named))
                continue
            parsed = read_chain_file(file)
            self._warn(parsed.warnings)
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
                f"{self.chains_path}: no option quotes for session {session}; {detail} "
                f"(rule: a chain file must hold the requested session)"
            )
        rows = pd.concat(parts, ignore_index=True)
        rows = rows.loc[rows["symbol"].isin(self.symbols)].reset_index(drop=True)
        if rows.empty:
            return empty(OPTION_CHAINS)
        return self._complete(rows, session)

    def _chain_file(self, name: str) -> Path:
        assert self.chains_path is not None
        return self.chains_path / name if self.chains_path.is_dir() else self.chains_path

    def _underlying_closes(self, session: dt.date) -> dict[str, float]:
        table = self._bars_table()
        today = table.loc[table.index == pd.Timestamp(session)]
        return dict(zip(today["symbol"], today["close"], strict=True))

    def _complete(self, rows: pd.DataFrame, session: dt.date) -> pd.DataFrame:
        """Fill what the layout lacks and return OPTION_CHAINS rows."""
        origin = str(self.chains_path)
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
            raise MarketDataError(
                f"{self._chain_file(row['_file'])}: "
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
            closes = self._underlying_closes(session)
            filled = rows["symbol"].map(closes).to_numpy(float)
            spot = np.where(lacking, filled, spot)
            still = np.isnan(spot)
            if still.any():
                symbols = sorted(set(rows.loc[still, "symbol"]))
                raise MarketDataError(
                    f"{origin}: no underlying price for {symbols} on {session}: the chain "
                    f"file has none and {self.bars_path} has no bar that session "
                    f"(rule: every chain row needs its underlying's close)"
                )
        out["underlying_price"] = spot

        rate = column("rate", self.rate)
        div = column("dividend_yield", 0.0)
        strike = rows["strike"].to_numpy(float)
        is_call = (rows["right"] == "C").to_numpy()
        t = np.maximum(dte, 0.5) / 365.0
        computed = bs.implied_vol(mid, spot, strike, t, rate, div, is_call)
        files = ", ".join(sorted(set(rows["_file"])))
        if "implied_vol" in rows.columns:
            given, note = _rescale(
                rows["implied_vol"].to_numpy(float), computed, 100.0, "implied volatility",
                files,
            )
            self._warn([note] if note else [])
            implied = np.where(np.isnan(given), computed, given)
        else:
            implied = computed
        out["implied_vol"] = implied
        reference = bs.greeks(spot, strike, t, implied, rate, div, is_call)
        factors = {"delta": None, "gamma": None, "vega": 100.0, "theta": 365.0}
        for name in _GREEKS:
            if name in rows.columns:
                given = rows[name].to_numpy(float)
                if factors[name] is not None:
                    given, note = _rescale(given, reference[name], factors[name], name, files)
                    self._warn([note] if note else [])
                out[name] = np.where(np.isnan(given), reference[name], given)
            else:
                out[name] = reference[name]
        out["rate"] = rate
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
                f"{f} {_where(Path(f), int(p))}" for f, p in zip(same["_file"], same["_pos"],
                                                                   strict=True)
            )
            raise MarketDataError(
                f"{origin}: contract {first['symbol']} {_fmt(first['expiry'])} "
                f"{first['strike']:g} {first['right']} is quoted more than once on {session} "
                f"({places}) (rule: one quote per contract and session)"
            )
        out = out.sort_values(["symbol", "expiry", "strike", "right"], kind="stable")
        # conform aligns columns on the index: hand it a fresh one in the sorted order.
        return conform(out.reset_index(drop=True), OPTION_CHAINS, origin=origin)

    # ------------------------------------------------------------------ modelled chains
    def volatility_state(self, session: dt.date) -> pd.DataFrame:
        """Per ticker with enough history, the chain model's inputs at the close of
        ``session`` (UNDERLYING_COLUMNS), from bars dated on or before it only."""
        return self._volatility_state(session)[list(UNDERLYING_COLUMNS)]

    def _volatility_state(self, session: dt.date) -> pd.DataFrame:
        day = self._require(session, self.bars_path)
        self._bars_table()
        stamp = _as_ns(day)
        rows, skipped = [], {}
        weights = EWMA_LAMBDA ** np.arange(EWMA_WINDOW)[::-1]  # oldest first
        for symbol in self.symbols:
            dates, close, returns, file_name = self._history[symbol]
            n = int(np.searchsorted(dates, stamp, side="right"))
            if n == 0 or dates[n - 1] != stamp:
                skipped[symbol] = f"no bar on {day}"
                continue
            past = returns[: n - 1]  # returns up to and including the session
            if len(past) < MIN_RETURNS:
                skipped[symbol] = (
                    f"only {len(past)} daily returns up to {day}, needs {MIN_RETURNS}"
                )
                continue
            recent = past[-EWMA_WINDOW:]
            w = weights[-len(recent):]
            vol_now = float(np.sqrt(np.sum(w * recent**2) / np.sum(w) * TRADING_DAYS))
            long = past[-LONG_WINDOW:]
            vol_long = float(np.sqrt(np.mean(long**2) * TRADING_DAYS))
            if not (vol_now > 0 and vol_long > 0):
                skipped[symbol] = f"no price variation up to {day}"
                continue
            rows.append(
                {
                    "symbol": symbol,
                    "spot": float(close[n - 1]),
                    "vol_now": vol_now,
                    "vol_long": vol_long,
                    "vrp": MODEL_VRP,
                    "skew": MODEL_SKEW,
                    "dividend_yield": 0.0,
                    "liquidity": MODEL_LIQUIDITY,
                    "event_days": np.nan,
                    "event_vol": 0.0,
                    "_file": file_name,
                }
            )
        self.skipped_tickers = list(skipped)
        self.skip_reasons = skipped
        columns = [*UNDERLYING_COLUMNS, "_file"]
        return pd.DataFrame(rows, columns=columns)

    def _modelled_chains(self, session: dt.date) -> pd.DataFrame:
        state = self._volatility_state(session)
        if state.empty:
            return empty(OPTION_CHAINS)
        sources = {s: f"modelled:files:{f}" for s, f in zip(state["symbol"], state["_file"],
                                                            strict=True)}
        chain = model_chains(
            session,
            state[list(UNDERLYING_COLUMNS)],
            rate=self.rate,
            rng=session_rng(self.seed, session),
            source="modelled:files",
            modelled=True,
        )
        chain["source"] = chain["symbol"].astype(object).map(sources)
        # Same row order as file chains (conform aligns on the index, so reset it after).
        chain = chain.sort_values(["symbol", "expiry", "strike", "right"], kind="stable")
        return conform(
            chain.reset_index(drop=True), OPTION_CHAINS, origin=f"modelled from {self.bars_path}"
        )


__all__ = [
    "BarsFile",
    "ChainFile",
    "FileMarketSource",
    "clear_cache",
    "expiry_kind",
    "read_bars_file",
    "read_chain_file",
    "session_rng",
    "ticker_from_name",
]
