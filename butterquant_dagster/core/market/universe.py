"""The ticker universe: which symbols the system looks at, with their sectors.

The default is the S&P 500 constituents shipped with the package (public domain data), in
the packaged default order (``data/default_universe.csv``): first the six tickers the
operations guides use (AAPL, MSFT, NVDA, GOOGL, TSLA, BRK.B), then 44 large, well-known names
spread over the 11 GICS sectors, listed round-robin by sector so that any prefix is spread
too; the default size of 50 is exactly these. The rest of the S&P file follows in its own
order. Names and sectors come from the S&P file only; the order file lists symbols.
A universe file is a CSV with ``symbol, name, sector`` (the S&P file's ``Symbol, Security,
GICS Sector`` headers are understood too). The synthetic market can extend the real symbols
with generated ones, so that scans of thousands of tickers can be tested on one machine.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from butterquant_dagster.core.market.schemas import UNIVERSE, SchemaError, conform

DEFAULT_UNIVERSE_FILE = "sp500_constituents.csv"
# The order of the packaged universe's first rows (symbol, role: "guide" or "sector").
DEFAULT_ORDER_FILE = "default_universe.csv"
_HEADER_ALIASES = {
    "symbol": "symbol",
    "ticker": "symbol",
    "security": "name",
    "name": "name",
    "gics sector": "sector",
    "sector": "sector",
}
# Tickers as exchanges list them: letters, optionally a class suffix after a dot (BRK.B).
_SYMBOL_PATTERN = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")


class UniverseError(ValueError):
    """A universe file or selection that cannot be used."""


def _packaged_csv(name: str) -> pd.DataFrame:
    source = resources.files("butterquant_dagster") / "data" / name
    with resources.as_file(source) as file:
        return pd.read_csv(file, dtype=str)


def default_order() -> list[str]:
    """The symbols that open the packaged universe, in order (``data/default_universe.csv``)."""
    return _packaged_csv(DEFAULT_ORDER_FILE)["symbol"].str.strip().str.upper().tolist()


def read_universe_file(path: str | Path | None = None) -> pd.DataFrame:
    """Read a universe CSV. ``path`` None is the packaged S&P 500 in its default order
    (:func:`default_order` first, then the rest of the file in file order); a given file
    keeps its own order."""
    if path is None:
        origin = f"packaged {DEFAULT_UNIVERSE_FILE}"
        raw = _packaged_csv(DEFAULT_UNIVERSE_FILE)
    else:
        origin = str(path)
        if not Path(path).is_file():
            raise UniverseError(f"universe file {origin} does not exist")
        raw = pd.read_csv(path, dtype=str)
    renamed = raw.rename(
        columns={
            c: _HEADER_ALIASES[c.strip().lower()]
            for c in raw.columns
            if c.strip().lower() in _HEADER_ALIASES
        }
    )
    if "symbol" not in renamed.columns:
        raise UniverseError(f"universe file {origin} has no symbol column: {list(raw.columns)}")
    renamed["symbol"] = renamed["symbol"].str.strip().str.upper()
    if "name" not in renamed.columns:
        renamed["name"] = renamed["symbol"]
    if "sector" not in renamed.columns:
        renamed["sector"] = "Unknown"
    renamed["sector"] = renamed["sector"].fillna("Unknown").str.strip()
    renamed["generated"] = False
    bad = renamed.loc[~renamed["symbol"].fillna("").str.match(_SYMBOL_PATTERN), "symbol"]
    if not bad.empty:
        raise UniverseError(
            f"universe file {origin}: invalid symbol(s) {bad.tolist()[:10]} "
            f"(rows {[int(i) + 2 for i in bad.index[:10]]})"
        )
    duplicated = renamed.loc[renamed["symbol"].duplicated(), "symbol"]
    if not duplicated.empty:
        raise UniverseError(f"universe file {origin}: duplicate symbol(s) {duplicated.tolist()}")
    if path is None:
        renamed = _in_default_order(renamed)
    try:
        return conform(renamed, UNIVERSE, origin=origin)
    except SchemaError as exc:
        raise UniverseError(str(exc)) from exc


def _in_default_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The packaged file with the default order's symbols first, the rest in file order."""
    first = default_order()
    unknown = [s for s in first if s not in set(frame["symbol"])]
    if unknown or len(set(first)) != len(first):
        raise UniverseError(
            f"packaged {DEFAULT_ORDER_FILE}: symbol(s) {unknown} not in {DEFAULT_UNIVERSE_FILE}"
            if unknown
            else f"packaged {DEFAULT_ORDER_FILE}: duplicate symbols"
        )
    rank = {symbol: i for i, symbol in enumerate(first)}
    key = [rank.get(symbol, len(first) + i) for i, symbol in enumerate(frame["symbol"])]
    return frame.iloc[sorted(range(len(frame)), key=key.__getitem__)].reset_index(drop=True)


def _generated_symbols(taken: set[str]):
    """Deterministic four-letter symbols that are not real ones (ZAAA, ZAAB, ...)."""
    for letters in itertools.product(string.ascii_uppercase, repeat=3):
        symbol = "Z" + "".join(letters)
        if symbol not in taken:
            yield symbol


def select_universe(
    base: pd.DataFrame,
    *,
    size: int | None = None,
    symbols: list[str] | None = None,
    allow_generated: bool = False,
) -> pd.DataFrame:
    """Pick the working universe from ``base``.

    ``symbols`` picks exactly those (unknown ones are an error); otherwise the first ``size``
    rows in ``base``'s order (for the packaged universe, its default order). When ``size``
    exceeds the file and ``allow_generated`` is set (the synthetic market), generated tickers
    fill the rest, sectors assigned round-robin.
    """
    if symbols:
        wanted = [s.strip().upper() for s in symbols]
        unknown = sorted(set(wanted) - set(base["symbol"]))
        if unknown:
            raise UniverseError(f"unknown ticker(s) not in the universe file: {unknown}")
        chosen = base.set_index("symbol").loc[wanted].reset_index()
        return conform(chosen, UNIVERSE, origin="universe selection")
    if size is None or size <= 0 or size == len(base):
        return base.reset_index(drop=True)
    if size < len(base):
        return base.head(size).reset_index(drop=True)
    if not allow_generated:
        raise UniverseError(
            f"universe size {size} exceeds the {len(base)} tickers of the universe file; "
            "only the synthetic market can generate more"
        )
    sectors = sorted(base["sector"].unique()) or ["Unknown"]
    extra = list(itertools.islice(_generated_symbols(set(base["symbol"])), size - len(base)))
    generated = pd.DataFrame(
        {
            "symbol": extra,
            "name": [f"Synthetic {s}" for s in extra],
            "sector": [sectors[i % len(sectors)] for i in range(len(extra))],
            "generated": True,
        }
    )
    combined = pd.concat([base, generated], ignore_index=True)
    return conform(combined, UNIVERSE, origin="universe selection")


_ADD_BELOW = "the universe file has it: add it with the setting below"


@dataclass(frozen=True)
class MissingTickers:
    """Why requested tickers are missing: ``reasons`` one sentence per ticker (in the order
    requested), ``fix`` the one setting line that adds those the universe file has (None
    when there are none)."""

    reasons: dict[str, str]
    fix: str | None = None

    def lines(self) -> list[str]:
        lines = [f"  {symbol}: {reason}" for symbol, reason in self.reasons.items()]
        if self.fix:
            added = [s for s, r in self.reasons.items() if r.endswith(_ADD_BELOW)]
            lines.append(f"  to add {', '.join(added)}: {self.fix}")
        return lines


def missing_tickers(
    requested: list[str],
    available: set[str] | list[str],
    universe: list[str],
    *,
    what: str = "data",
    backfill: str = "butterquant backfill",
    universe_file: str | None = None,
    universe_size: int | None = None,
    universe_symbols: list[str] | None = None,
) -> MissingTickers:
    """Why each of ``requested`` (upper-cased) is not among ``available``, naming the
    setting that adds it to the universe.

    ``universe`` is the universe the lake was built with (its ``universe`` asset, in its
    order); the ``universe_*`` arguments are the current settings (read from the
    environment when None). ``what`` names what a ticker lacks ("decision on 2026-12-04"),
    ``backfill`` the command that then loads its history.
    """
    from butterquant_dagster.core import settings

    if universe_file is None:
        universe_file = settings.env("BUTTERQUANT_UNIVERSE_FILE")
    if universe_size is None:
        universe_size = settings.value("BUTTERQUANT_UNIVERSE_SIZE")
    if universe_symbols is None:
        text = settings.env("BUTTERQUANT_UNIVERSE_SYMBOLS")
        universe_symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    available, known = set(available), set(universe)
    origin = universe_file or (
        f"the packaged S&P 500 file {DEFAULT_UNIVERSE_FILE} in its default order "
        f"({DEFAULT_ORDER_FILE} first)"
    )
    try:
        in_file: set[str] | None = set(read_universe_file(universe_file or None)["symbol"])
    except (UniverseError, OSError, ValueError):
        in_file = None  # an unreadable file: the hint names the setting, without a verdict
    configured = set(universe_symbols)
    if configured:
        scope = "the tickers of BUTTERQUANT_UNIVERSE_SYMBOLS"
    elif universe_size and universe_size < len(in_file or ()):
        scope = f"the first {universe_size} of {origin}, BUTTERQUANT_UNIVERSE_SIZE={universe_size}"
    else:
        scope = origin
    reasons: dict[str, str] = {}
    to_add: list[str] = []
    for raw in requested:
        symbol = raw.strip().upper()
        if not symbol or symbol in available or symbol in reasons:
            continue
        if not _SYMBOL_PATTERN.match(symbol):
            reasons[symbol] = "not a ticker symbol (letters, optionally a class suffix as in BRK.B)"
        elif symbol in known:
            reasons[symbol] = (
                f"in the universe but has no {what}: too little price history before it "
                "(backfill earlier sessions with `butterquant backfill`)"
            )
        elif symbol in configured:
            reasons[symbol] = (
                "BUTTERQUANT_UNIVERSE_SYMBOLS lists it, but the lake's universe was built "
                f"before: run `{backfill}`"
            )
        elif in_file is not None and symbol not in in_file:
            reasons[symbol] = (
                f"not in the universe file ({origin}): add a row `{symbol},<name>,<sector>` to "
                "a universe CSV and point BUTTERQUANT_UNIVERSE_FILE at it"
            )
        else:
            to_add.append(symbol)
            reasons[symbol] = f"not in the {len(known)}-ticker universe ({scope}); {_ADD_BELOW}"
    fix = None
    if to_add:
        listed = ",".join([*universe, *to_add])
        fix = f"BUTTERQUANT_UNIVERSE_SYMBOLS={listed}" + (
            "" if configured else " (or BUTTERQUANT_UNIVERSE_SIZE=0 for the whole file)"
        )
        fix += f" in .env or the environment, then `{backfill}`"
    return MissingTickers(reasons, fix)
