"""The ticker universe: the packaged S&P 500 file in its default order, selections and
malformed files."""

from __future__ import annotations

import csv
import re
from importlib import resources

import pytest

from butterquant_dagster.core.market.universe import (
    UniverseError,
    read_universe_file,
    select_universe,
)

COLUMNS = ["symbol", "name", "sector", "generated"]
GUIDE_TICKERS = ["AAPL", "MSFT", "NVDA", "GOOGL", "TSLA", "BRK.B"]
GICS_SECTORS = {
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
}


def _packaged(name: str) -> list[dict[str, str]]:
    source = resources.files("butterquant_dagster") / "data" / name
    with source.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _raw_rows() -> list[dict[str, str]]:
    """The packaged universe read with the standard library, as an independent reference:
    the rows of default_universe.csv first, then the rest of the S&P file in file order."""
    rows = _packaged("sp500_constituents.csv")
    by_symbol = {r["Symbol"]: r for r in rows}
    first = [r["symbol"] for r in _packaged("default_universe.csv")]
    return [by_symbol[s] for s in first] + [r for r in rows if r["Symbol"] not in set(first)]


@pytest.fixture(scope="module")
def base():
    return read_universe_file()


def test_packaged_file_has_503_tickers_with_dotted_classes(base):
    assert list(base.columns) == COLUMNS
    assert len(base) == 503
    assert base["symbol"].is_unique
    symbols = set(base["symbol"])
    assert {"BRK.B", "BF.B", "AAPL", "MSFT"} <= symbols
    assert not base["generated"].any()
    assert base["symbol"].notna().all() and base["sector"].notna().all()


def test_packaged_file_matches_the_csv(base):
    rows = _raw_rows()
    assert base["symbol"].tolist() == [r["Symbol"] for r in rows]
    assert base["name"].tolist() == [r["Security"] for r in rows]
    assert base["sector"].tolist() == [r["GICS Sector"] for r in rows]
    assert set(base["sector"]) == GICS_SECTORS
    # The rest follows in the S&P file's own order: MMM, AOS, ABT, ... (none of them default).
    assert base["symbol"].iloc[50:53].tolist() == ["MMM", "AOS", "ABT"]


def test_the_default_fifty_hold_the_guides_tickers_and_every_sector(base):
    default = select_universe(base, size=50)  # BUTTERQUANT_UNIVERSE_SIZE's default
    assert default["symbol"].head(6).tolist() == GUIDE_TICKERS
    assert set(default["sector"]) == GICS_SECTORS
    per_sector = default["sector"].value_counts()
    assert per_sector.min() >= 4 and per_sector.max() <= 6
    # The index's heaviest sector has the most names.
    assert per_sector.idxmax() == "Information Technology"
    # Any prefix is spread: the first 13 already cover all 11 sectors.
    assert set(default["sector"].head(13)) == GICS_SECTORS
    roles = {r["symbol"]: r["role"] for r in _packaged("default_universe.csv")}
    assert list(roles) == default["symbol"].tolist()
    assert [s for s, role in roles.items() if role == "guide"] == GUIDE_TICKERS
    assert set(roles.values()) == {"guide", "sector"}


def test_a_default_order_naming_a_ticker_the_file_lacks_is_refused(monkeypatch):
    from butterquant_dagster.core.market import universe

    monkeypatch.setattr(universe, "default_order", lambda: ["AAPL", "NOPE"])
    with pytest.raises(UniverseError, match=r"default_universe\.csv.*NOPE"):
        read_universe_file()


@pytest.mark.parametrize("size", [1, 20, 60, 502])
def test_size_takes_the_first_n_in_the_default_order(base, size):
    chosen = select_universe(base, size=size)
    assert chosen["symbol"].tolist() == [r["Symbol"] for r in _raw_rows()[:size]]
    assert list(chosen.columns) == COLUMNS
    assert chosen.index.tolist() == list(range(size))


@pytest.mark.parametrize("size", [None, 0, 503])
def test_no_size_or_full_size_is_the_whole_file(base, size):
    chosen = select_universe(base, size=size)
    assert len(chosen) == 503
    assert chosen["symbol"].tolist() == base["symbol"].tolist()


def test_explicit_symbols_in_the_order_given(base):
    chosen = select_universe(base, symbols=["msft", " BRK.B ", "BF.B", "AAPL"])
    assert chosen["symbol"].tolist() == ["MSFT", "BRK.B", "BF.B", "AAPL"]
    assert list(chosen.columns) == COLUMNS
    by_symbol = {r["Symbol"]: r for r in _raw_rows()}
    for _, row in chosen.iterrows():
        assert row["sector"] == by_symbol[row["symbol"]]["GICS Sector"]
        assert row["name"] == by_symbol[row["symbol"]]["Security"]
    assert not chosen["generated"].any()


def test_unknown_symbol_is_named(base):
    with pytest.raises(UniverseError, match="NOPE") as info:
        select_universe(base, symbols=["AAPL", "NOPE", "MSFT"])
    assert "AAPL" not in str(info.value)


def test_size_beyond_the_file_needs_generated_tickers(base):
    with pytest.raises(UniverseError, match="504"):
        select_universe(base, size=504)
    with pytest.raises(UniverseError):
        select_universe(base, size=2000, allow_generated=False)


def test_generated_tickers_fill_the_rest(base):
    chosen = select_universe(base, size=520, allow_generated=True)
    assert len(chosen) == 520
    assert chosen["symbol"].is_unique
    assert chosen["symbol"].iloc[:503].tolist() == base["symbol"].tolist()
    extra = chosen.iloc[503:]
    assert extra["generated"].all()
    assert not chosen["generated"].iloc[:503].any()
    assert not set(extra["symbol"]) & set(base["symbol"])
    assert all(re.fullmatch(r"[A-Z]{4}", s) for s in extra["symbol"])
    assert set(extra["sector"]) <= set(base["sector"])
    # Deterministic: the same request gives the same tickers.
    again = select_universe(base, size=520, allow_generated=True)
    assert again["symbol"].tolist() == chosen["symbol"].tolist()


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_custom_file_with_aliases_and_normalisation(tmp_path):
    path = _write(tmp_path / "mine.csv", "Ticker,Sector\n aapl ,Tech\nbrk.b,\nXOM,Energy\n")
    universe = read_universe_file(path)
    assert universe["symbol"].tolist() == ["AAPL", "BRK.B", "XOM"]
    assert universe["sector"].tolist() == ["Tech", "Unknown", "Energy"]
    assert universe["name"].tolist() == ["AAPL", "BRK.B", "XOM"]  # names default to symbols
    assert list(universe.columns) == COLUMNS


def test_invalid_symbol_raises_naming_the_file(tmp_path):
    path = _write(
        tmp_path / "bad_symbols.csv", "symbol,name,sector\nAAPL,Apple,Tech\nBAD SYMBOL,Bad,Tech\n"
    )
    with pytest.raises(UniverseError, match=re.escape("bad_symbols.csv")) as info:
        read_universe_file(path)
    assert "BAD SYMBOL" in str(info.value)


def test_duplicate_symbol_raises_naming_the_file(tmp_path):
    path = _write(
        tmp_path / "dupes.csv",
        "symbol,name,sector\nAAPL,Apple,Tech\nMSFT,Microsoft,Tech\naapl,Apple again,Tech\n",
    )
    with pytest.raises(UniverseError, match=re.escape("dupes.csv")) as info:
        read_universe_file(path)
    assert "duplicate" in str(info.value)
    assert "AAPL" in str(info.value)


def test_missing_symbol_column_raises_naming_the_file(tmp_path):
    path = _write(tmp_path / "no_symbol.csv", "name,sector\nApple,Tech\n")
    with pytest.raises(UniverseError, match=re.escape("no_symbol.csv")) as info:
        read_universe_file(path)
    assert "symbol" in str(info.value)


def test_missing_file_raises(tmp_path):
    with pytest.raises(UniverseError, match=re.escape("absent.csv")):
        read_universe_file(tmp_path / "absent.csv")
