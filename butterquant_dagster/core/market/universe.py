"""The ticker universe: which symbols the system looks at, with their sectors.

The default is the S&P 500 constituents shipped with the package (public domain data).
A universe file is a CSV with ``symbol, name, sector`` (the S&P file's ``Symbol, Security,
GICS Sector`` headers are understood too). The synthetic market can extend the real symbols
with generated ones, so that scans of thousands of tickers can be tested on one machine.
"""

from __future__ import annotations

import itertools
import re
import string
from importlib import resources
from pathlib import Path

import pandas as pd

from butterquant_dagster.core.market.schemas import UNIVERSE, SchemaError, conform

DEFAULT_UNIVERSE_FILE = "sp500_constituents.csv"
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


def read_universe_file(path: str | Path | None = None) -> pd.DataFrame:
    """Read a universe CSV (the packaged S&P 500 when ``path`` is None)."""
    if path is None:
        source = resources.files("butterquant_dagster") / "data" / DEFAULT_UNIVERSE_FILE
        origin = f"packaged {DEFAULT_UNIVERSE_FILE}"
        with resources.as_file(source) as file:
            raw = pd.read_csv(file, dtype=str)
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
    try:
        return conform(renamed, UNIVERSE, origin=origin)
    except SchemaError as exc:
        raise UniverseError(str(exc)) from exc


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
    rows in file order. When ``size`` exceeds the file and ``allow_generated`` is set (the
    synthetic market), generated tickers fill the rest, sectors assigned round-robin.
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
