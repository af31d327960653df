"""Daily bars from vendor files, checked against the NYSE calendar.

Vendor downloads carry placeholder rows and filler rows on market closures; both are
dropped with a warning rather than an error so a real file loads as downloaded, while a
weekend date (usually a timezone shift of the whole file) or a duplicate bar stops the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.files.parsing import (
    _cached,
    _data_files,
    _fmt,
    _parse_dates,
    _parse_numbers,
    _parse_symbols,
    _read_table,
    _resolve,
    _where,
    ticker_from_name,
)
from butterquant_dagster.core.market.source import MarketDataError

# Header aliases, compared after lower-casing and dropping everything but letters and
# digits ("Adj Close", "adj_close" and "AdjClose" are all "adjclose"). The first alias
# present wins.
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

# Per ticker: sessions (datetime64[ns]), closes, daily log returns, the file's name.
History = tuple[np.ndarray, np.ndarray, np.ndarray, str]


@dataclass
class BarsFile:
    """One parsed bars file: per ticker, its bars indexed by session, oldest first."""

    path: Path
    frames: dict[str, pd.DataFrame]
    warnings: list[str] = field(default_factory=list)


def read_bars_file(path: str | Path, ticker: str | None = None) -> BarsFile:
    """Parse a bars file once per process (cached by path, modification time and size).

    ``ticker`` is the symbol a one-ticker file holds (from its name); ``None`` reads the
    symbols from the file's symbol column, or, without one, from its name.
    """
    path = Path(path)
    if not path.is_file():
        raise MarketDataError(f"bars file {path} does not exist (rule: the path must exist)")
    return _cached(path, ("bars", ticker), lambda: _parse_bars(path, ticker))


@lru_cache(maxsize=1)
def _session_table() -> tuple[np.ndarray, np.datetime64, np.datetime64]:
    """Every NYSE session of the calendar (datetime64[ns]), its first and its last."""
    first, last = calendar.calendar_bounds()
    days = pd.DatetimeIndex(calendar.sessions(first, last)).to_numpy("datetime64[ns]")
    return days, days[0], days[-1]


def _parse_bars(path: Path, ticker: str | None) -> BarsFile:
    raw = _read_table(path)
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

    values = {c: _parse_numbers(raw[cols[c]], path, cols[c]) for c in _BAR_VALUES if c in cols}
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


def _universe_files(bars_path: Path, symbols: list[str]) -> dict[str, tuple[Path, str | None]]:
    """Universe ticker -> (file, ticker argument for read_bars_file); a single file is
    keyed "*" because its symbols are only known once it is read."""
    files = _data_files(bars_path, "bars")
    if not bars_path.is_dir():
        return {"*": (files[0], None)}
    wanted = set(symbols)
    found: dict[str, tuple[Path, str | None]] = {}
    for file in files:
        ticker = ticker_from_name(file)
        if ticker not in wanted:
            continue
        if ticker in found:
            raise MarketDataError(
                f"{bars_path}: ticker {ticker} comes from both {found[ticker][0].name} "
                f"and {file.name} (rule: one file per ticker)"
            )
        found[ticker] = (file, ticker)
    return found


def _universe_bars(
    bars_path: Path,
    symbols: list[str],
    files: dict[str, tuple[Path, str | None]],
    warn: Callable[[list[str]], None],
) -> tuple[pd.DataFrame, dict[str, History]]:
    """Every bar of the universe, sorted by (session, symbol) and indexed by session, and
    each ticker's history for the volatility model."""
    frames: dict[str, pd.DataFrame] = {}
    for _, (file, ticker) in files.items():
        parsed = read_bars_file(file, ticker)
        warn(parsed.warnings)
        frames.update(parsed.frames)
    empty = [files[s][0] for s in symbols if s in files and not frames.get(s, pd.DataFrame()).size]
    if empty and bars_path.is_dir():
        raise MarketDataError(
            f"{empty[0]}: has a header row but no bars"
            + (f" (and {len(empty) - 1} other file(s) like it)" if len(empty) > 1 else "")
            + " (rule: every universe ticker has bars in the source)"
        )
    unknown = [s for s in symbols if s not in frames or frames[s].empty]
    if unknown:
        layout = (
            "no file named <ticker>-....csv/.parquet in the directory"
            if bars_path.is_dir()
            else "no rows with that symbol in the file"
        )
        raise MarketDataError(
            f"{bars_path}: unknown ticker(s) {unknown}: {layout} "
            f"(rule: every universe ticker has bars in the source)"
        )
    chosen = [frames[s] for s in symbols]
    table = pd.concat(chosen, ignore_index=True)
    table = table.sort_values(["session", "symbol"], kind="stable")
    table = table.set_index(pd.DatetimeIndex(table["session"]), drop=False)
    table.index.name = None
    history = {
        s: (
            frame["session"].to_numpy("datetime64[ns]"),
            frame["close"].to_numpy(float),
            np.diff(np.log(frame["close"].to_numpy(float))),
            str(frame["source"].iloc[0]).removeprefix("files:"),
        )
        for s, frame in zip(symbols, chosen, strict=True)
    }
    return table, history
