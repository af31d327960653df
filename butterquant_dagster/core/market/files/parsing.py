"""Reading vendor tables into typed columns, shared by the bars and the chain readers.

Vendor files differ in header spelling, date format and blank lines but break the same
rules, so each rule is checked once here and every failure is a :class:`MarketDataError`
naming the file, the row a person would see in an editor, the column and the rule.
Parsed files are cached per process by path, modification time and size: a backtest asks
for the same history session after session, and a file edited in between is read again.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.source import MarketDataError

SUFFIXES = (".csv", ".parquet", ".pq")

Signature = tuple[str, int, int]
T = TypeVar("T")

# (resolved path, reader's key) -> (signature when parsed, parsed file).
_CACHE: dict[tuple[str, object], tuple[Signature, object]] = {}


def _norm(header: object) -> str:
    """Headers compare without case, spaces or punctuation: "Adj Close" is "adjclose"."""
    return re.sub(r"[^a-z0-9]", "", str(header).lower())


def ticker_from_name(path: str | Path) -> str:
    """``nvda-1999-2014.csv`` -> NVDA, ``brk.b.csv`` -> BRK.B (dots belong to symbols)."""
    stem = Path(path).name
    for suffix in SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return re.split(r"[-_]", stem, maxsplit=1)[0].strip().upper()


def _signature(path: Path) -> Signature:
    stat = path.stat()
    return (str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def clear_cache() -> None:
    """Forget every file read so far (the next call reads from disk again)."""
    _CACHE.clear()


def _cached(path: Path, key: object, parse: Callable[[], T]) -> T:
    """``parse()`` once per (file, key) until the file changes on disk."""
    signature = _signature(path)
    slot = (signature[0], key)
    hit = _CACHE.get(slot)
    if hit is not None and hit[0] == signature:
        return hit[1]  # type: ignore[return-value]
    parsed = parse()
    _CACHE[slot] = (signature, parsed)
    return parsed


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
        p
        for p in path.iterdir()
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
    except (
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
        ValueError,
    ) as exc:
        raise MarketDataError(
            f"{path}: cannot be read as {path.suffix.lstrip('.').upper()} "
            f"(rule: a readable table with a header row): {exc}"
        ) from exc


def _read_table(path: Path) -> pd.DataFrame:
    """The file's table, numbered from 0 so that ``_where`` can name its rows."""
    raw = _read_raw(path)
    raw.index = pd.RangeIndex(len(raw))
    if path.suffix.lower() == ".csv" and len(raw):
        _refuse_cut_last_line(path, len(raw.columns), len(raw) - 1)
    return raw


def _refuse_cut_last_line(path: Path, columns: int, last: int) -> None:
    """A CSV cut off mid-line (an interrupted download) reads as a last row with empty
    columns; say that the file is truncated rather than that a column is empty."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if not tail or tail.endswith((b"\n", b"\r")):
        return
    line = tail.splitlines()[-1].decode("utf-8", errors="replace")
    fields = len(next(csv.reader([line]), []))
    if fields < columns:
        raise MarketDataError(
            f"{path}: {_where(path, last)}: the last line has {fields} of the header's "
            f"{columns} columns and no line break: the file looks truncated "
            f"(rule: every line has a value for every column; download the file again)"
        )


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


def _as_ns(day: dt.date) -> np.datetime64:
    return np.datetime64(day, "ns")


def _fmt(day) -> str:
    return str(pd.Timestamp(day).date())
