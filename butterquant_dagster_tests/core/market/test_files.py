"""The file market source: real Yahoo bars, tidy tables, chain layouts, errors, modelling."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market import files
from butterquant_dagster.core.market.files import FileMarketSource, parsing, ticker_from_name
from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    OPTION_CHAINS,
    dtype_problems,
)
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster.core.options import black_scholes as bs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FIXTURE_FILES = {
    "NVDA": "nvda-1999-2014.csv",
    "ORCL": "orcl-1995-2014.csv",
    "YHOO": "yhoo-1996-2015.csv",
}
OCTOBER_2008 = calendar.sessions("2008-10-01", "2008-10-31")
SESSION = dt.date(2008, 10, 15)  # a Wednesday
RATE = 0.04


def universe(*symbols: str) -> pd.DataFrame:
    symbols = symbols or tuple(FIXTURE_FILES)
    return pd.DataFrame({"symbol": list(symbols), "sector": "Information Technology"})


def vendor(symbol: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / FIXTURE_FILES[symbol])


def write_csv_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------- real bars
def test_real_fixtures_read_end_to_end():
    source = FileMarketSource(universe(), FIXTURES)
    bars = source.bars(OCTOBER_2008)

    assert dtype_problems(bars, DAILY_BARS) == []
    assert len(bars) == len(OCTOBER_2008) * 3
    assert sorted(bars["session"].dt.date.unique()) == OCTOBER_2008
    assert set(bars["symbol"]) == {"NVDA", "ORCL", "YHOO"}
    for symbol, name in FIXTURE_FILES.items():
        mine = bars[bars["symbol"] == symbol]
        assert set(mine["source"]) == {f"files:{name}"}
    # prev_close is the previous session's close, also across the month boundary.
    previous = calendar.previous_session(OCTOBER_2008[0])
    wider = source.bars([previous, *OCTOBER_2008]).sort_values(["symbol", "session"])
    expected_prev = wider.groupby("symbol")["close"].shift(1)
    in_october = wider["session"].dt.date >= OCTOBER_2008[0]
    np.testing.assert_allclose(
        wider.loc[in_october, "prev_close"], expected_prev[in_october], rtol=0, atol=0
    )
    # Values straight from the vendor file: Close is the close, Adj Close the adjusted one.
    nvda = bars[(bars["symbol"] == "NVDA") & (bars["session"] == "2008-10-01")].iloc[0]
    assert nvda["close"] == pytest.approx(10.41)
    assert nvda["prev_close"] == pytest.approx(10.71)
    assert nvda["adj_close"] == pytest.approx(9.634611)
    assert nvda["volume"] == 13930200
    assert source.truth(OCTOBER_2008) is None
    assert source.name == "files"
    assert source.warnings == []


def test_bars_return_only_the_requested_sessions():
    source = FileMarketSource(universe(), FIXTURES)
    wanted = [dt.date(2008, 10, 3), dt.date(2008, 10, 17), dt.date(2009, 3, 2)]
    bars = source.bars(wanted)
    assert sorted(set(bars["session"].dt.date)) == wanted
    assert len(bars) == 9
    assert source.bars([]).empty


def test_first_bar_has_no_prev_close_and_pre_ipo_sessions_have_no_row():
    source = FileMarketSource(universe(), FIXTURES)
    # NVDA listed on 1999-01-22: absent before, NaN prev_close on its first bar.
    bars = source.bars([dt.date(1999, 1, 21), dt.date(1999, 1, 22)])
    assert bars[bars["session"] == "1999-01-21"]["symbol"].tolist() == ["ORCL", "YHOO"]
    nvda = bars[bars["symbol"] == "NVDA"]
    assert nvda["session"].dt.date.tolist() == [dt.date(1999, 1, 22)]
    assert np.isnan(nvda["prev_close"].iloc[0])
    # YHOO's file runs to 2015, the others end in 2014: only YHOO in 2015.
    later = source.bars([dt.date(2015, 6, 1)])
    assert later["symbol"].tolist() == ["YHOO"]


def test_a_year_of_bars_is_one_selection(monkeypatch, real_bars_dir):
    files.clear_cache()
    reads = []
    original = parsing._read_raw
    monkeypatch.setattr(parsing, "_read_raw", lambda path: reads.append(path) or original(path))
    source = FileMarketSource(universe(), real_bars_dir)
    year = calendar.sessions("2008-01-01", "2008-12-31")
    first = source.bars(year)
    again = FileMarketSource(universe(), real_bars_dir).bars(year)
    assert len(first) == 3 * len(year)
    pd.testing.assert_frame_equal(first, again)
    assert len(reads) == 3  # each file once per process, whatever the number of sources

    # A changed file (new mtime and size) is read again; the others are not.
    nvda = real_bars_dir / FIXTURE_FILES["NVDA"]
    line = "2008-10-01,10.550000,10.740000,10.220000,10.410000,"
    assert line in nvda.read_text()
    nvda.write_text(nvda.read_text().replace(line, line.replace("10.410000", "10.415")))
    os.utime(nvda, ns=(1, 1))
    changed = source.bars([dt.date(2008, 10, 1)])
    assert len(reads) == 4
    assert changed.loc[changed["symbol"] == "NVDA", "close"].item() == pytest.approx(10.415)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tidy_table_gives_identical_bars(tmp_path, fmt):
    tidy = []
    for symbol in FIXTURE_FILES:
        frame = vendor(symbol).rename(
            columns={
                "Date": "date",
                "Open": "open",
                "High": "high",
                "Low": "low",
                "Close": "close",
                "Adj Close": "adj_close",
                "Volume": "volume",
            }
        )
        frame.insert(1, " Ticker ", symbol.lower())
        tidy.append(frame)
    table = pd.concat(tidy).sample(frac=1.0, random_state=3)  # any row order
    path = tmp_path / f"all_bars.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)

    from_dir = FileMarketSource(universe(), FIXTURES).bars(OCTOBER_2008)
    from_table = FileMarketSource(universe(), path).bars(OCTOBER_2008)
    assert set(from_table["source"]) == {f"files:all_bars.{fmt}"}
    pd.testing.assert_frame_equal(
        from_dir.drop(columns="source"), from_table.drop(columns="source")
    )


@pytest.mark.parametrize(
    ("name", "ticker"),
    [
        ("nvda-1999-2014.csv", "NVDA"),
        ("BRK.B.csv", "BRK.B"),
        ("brk.b_2010-2020.parquet", "BRK.B"),
        ("orcl.csv", "ORCL"),
    ],
)
def test_ticker_from_file_name(name, ticker):
    assert ticker_from_name(name) == ticker


def test_dotted_ticker_file_without_adj_close(tmp_path):
    directory = tmp_path / "bars"
    directory.mkdir()
    write_csv_lines(
        directory / "BRK.B.csv",
        [
            "date,open,high,low,close,volume",
            "2010-03-01,70.0,71.0,69.5,70.5,100",
            "2010-03-02,70.5,72.0,70.0,71.5,200",
        ],
    )
    bars = FileMarketSource(universe("BRK.B"), directory).bars(
        [dt.date(2010, 3, 1), dt.date(2010, 3, 2)]
    )
    assert bars["symbol"].tolist() == ["BRK.B", "BRK.B"]
    assert bars["adj_close"].tolist() == bars["close"].tolist()
    assert bars["prev_close"].iloc[1] == 70.5
    assert bars["source"].iloc[0] == "files:BRK.B.csv"


# ---------------------------------------------------------------------------- bar errors
def test_missing_close_column_names_file_and_rule(real_bars_dir):
    path = real_bars_dir / FIXTURE_FILES["ORCL"]
    vendor("ORCL").drop(columns="Close").to_csv(path, index=False)
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe(), real_bars_dir).bars(OCTOBER_2008)
    message = str(info.value)
    assert FIXTURE_FILES["ORCL"] in message
    assert "missing column" in message and "close" in message


def test_non_numeric_price_names_its_line(real_bars_dir):
    path = real_bars_dir / FIXTURE_FILES["YHOO"]
    frame = vendor("YHOO").astype({"High": object})
    row = int(np.flatnonzero(frame["Date"] == "2008-10-02")[0])
    frame.loc[row, "High"] = "16.85x"
    frame.to_csv(path, index=False)
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe(), real_bars_dir).bars(OCTOBER_2008)
    message = str(info.value)
    assert FIXTURE_FILES["YHOO"] in message
    assert f"line {row + 2}" in message  # header is line 1
    assert "'16.85x'" in message and "'High'" in message and "not a number" in message


def test_unparseable_date_names_its_line(tmp_path):
    path = write_csv_lines(
        tmp_path / "abc.csv",
        [
            "Date,Open,High,Low,Close,Volume",
            "2008-10-01,1,1,1,1,10",
            "2008-10-0x,1,1,1,1,10",
        ],
    )
    with pytest.raises(MarketDataError, match=r"abc\.csv: line 3: column 'Date': '2008-10-0x'"):
        FileMarketSource(universe("ABC"), path).bars([dt.date(2008, 10, 1)])


def test_unknown_universe_ticker(real_bars_dir):
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe("NVDA", "MSFT"), real_bars_dir).bars(OCTOBER_2008)
    message = str(info.value)
    assert "unknown ticker" in message and "MSFT" in message and str(real_bars_dir) in message
    assert "NVDA" not in message.split("unknown ticker")[1].split(":")[0]


def test_unknown_ticker_in_a_tidy_table(tmp_path):
    path = write_csv_lines(
        tmp_path / "tidy.csv",
        ["date,symbol,open,high,low,close,volume", "2008-10-01,AAA,1,1,1,1,10"],
    )
    with pytest.raises(MarketDataError, match=r"tidy\.csv: unknown ticker\(s\) \['BBB'\]"):
        FileMarketSource(universe("AAA", "BBB"), path).bars([dt.date(2008, 10, 1)])


@pytest.mark.parametrize(
    ("day", "reason"),
    [(dt.date(2008, 10, 4), "a weekend"), (dt.date(2008, 11, 27), "an NYSE holiday")],
)
def test_requested_non_session_is_rejected(day, reason):
    source = FileMarketSource(universe(), FIXTURES)
    with pytest.raises(MarketDataError) as info:
        source.bars([dt.date(2008, 10, 3), day])
    message = str(info.value)
    assert str(FIXTURES) in message and str(day) in message
    assert "not an NYSE session" in message and reason in message
    with pytest.raises(MarketDataError, match="not an NYSE session"):
        source.chains(day)


def test_nonexistent_path(tmp_path):
    missing = tmp_path / "nowhere" / "bars.csv"
    with pytest.raises(MarketDataError, match=r"nowhere/bars\.csv does not exist"):
        FileMarketSource(universe(), missing).bars(OCTOBER_2008)
    chains_missing = tmp_path / "no-chains"
    source = FileMarketSource(universe(), FIXTURES, chains_missing)
    with pytest.raises(MarketDataError, match=r"no-chains does not exist"):
        source.chains(SESSION)


def test_rows_on_market_closures(tmp_path):
    # A weekday closure (Hurricane Sandy, 2012-10-29) is dropped with a recorded warning;
    # prev_close then skips it.
    path = write_csv_lines(
        tmp_path / "abc.csv",
        [
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "2012-10-26,10,10,10,10.0,10.0,100",
            "2012-10-29,10,10,10,10.0,10.0,0",
            "2012-10-31,10,11,10,11.0,11.0,100",
        ],
    )
    source = FileMarketSource(universe("ABC"), path)
    bars = source.bars([dt.date(2012, 10, 26), dt.date(2012, 10, 31)])
    assert bars["prev_close"].tolist()[1] == 10.0
    assert len(source.warnings) == 1
    assert "abc.csv" in source.warnings[0] and "2012-10-29" in source.warnings[0]

    # A weekend-dated row means shifted dates: an error naming the line.
    weekend = write_csv_lines(
        tmp_path / "def.csv",
        [
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "2012-10-26,10,10,10,10.0,10.0,100",
            "2012-10-27,10,10,10,10.0,10.0,100",
        ],
    )
    with pytest.raises(MarketDataError, match=r"def\.csv: line 3: DEF row dated 2012-10-27"):
        FileMarketSource(universe("DEF"), weekend).bars([dt.date(2012, 10, 26)])


def test_duplicate_dates_and_placeholder_rows(tmp_path):
    duplicated = write_csv_lines(
        tmp_path / "dup.csv",
        [
            "Date,Open,High,Low,Close,Volume",
            "2008-10-01,1,1,1,1,10",
            "2008-10-01,1,1,1,1,10",
        ],
    )
    with pytest.raises(MarketDataError, match=r"one row dated 2008-10-01 \(line 2, line 3"):
        FileMarketSource(universe("DUP"), duplicated).bars([dt.date(2008, 10, 1)])

    placeholder = write_csv_lines(
        tmp_path / "nul.csv",
        [
            "Date,Open,High,Low,Close,Adj Close,Volume",
            "2008-10-01,1,1,1,1,1,10",
            "2008-10-02,null,null,null,null,null,null",
            "2008-10-03,2,2,2,2,2,20",
        ],
    )
    source = FileMarketSource(universe("NUL"), placeholder)
    bars = source.bars(calendar.sessions("2008-10-01", "2008-10-03"))
    assert bars["session"].dt.day.tolist() == [1, 3]
    assert "line 3" in source.warnings[0]

    partial = write_csv_lines(
        tmp_path / "par.csv",
        ["Date,Open,High,Low,Close,Volume", "2008-10-01,1,1,1,,10"],
    )
    with pytest.raises(MarketDataError, match=r"par\.csv: line 2: column 'Close' is empty"):
        FileMarketSource(universe("PAR"), partial).bars([dt.date(2008, 10, 1)])


# ---------------------------------------------------------------------------- chain files
def nvda_close(day: dt.date) -> float:
    frame = vendor("NVDA")
    return float(frame.loc[frame["Date"] == day.isoformat(), "Close"].item())


def hand_made_chain(session: dt.date = SESSION, spot: float | None = None) -> pd.DataFrame:
    """NVDA quotes around a known 60 % volatility: three expiries, two strikes, C and P."""
    spot = nvda_close(session) if spot is None else spot
    rows = []
    expiries = [
        (dt.date(2008, 10, 18), dt.date(2008, 10, 17), "monthly"),  # Saturday (old OCC style)
        (dt.date(2008, 10, 24), dt.date(2008, 10, 24), "weekly"),
        (dt.date(2008, 11, 21), dt.date(2008, 11, 21), "monthly"),
    ]
    for listed, expiry, kind in expiries:
        dte = (expiry - session).days
        for strike in (np.floor(spot * 2) / 2, np.ceil(spot * 2) / 2 + 0.5):
            for right in ("C", "P"):
                theo = float(
                    bs.price(spot, strike, max(dte, 0.5) / 365, 0.6, RATE, 0.0, right == "C")
                )
                rows.append(
                    {
                        "listed": listed,
                        "expiry": expiry,
                        "kind": kind,
                        "dte": dte,
                        "strike": float(strike),
                        "right": right,
                        "bid": round(theo - 0.02, 4),
                        "ask": round(theo + 0.02, 4),
                        "spot": spot,
                    }
                )
    return pd.DataFrame(rows)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def check_chain(chain: pd.DataFrame, made: pd.DataFrame, file_name: str) -> None:
    assert dtype_problems(chain, OPTION_CHAINS) == []
    assert len(chain) == len(made)
    made = made.sort_values(["expiry", "strike", "right"]).reset_index(drop=True)
    assert chain["symbol"].unique().tolist() == ["NVDA"]
    assert (chain["session"].dt.date == SESSION).all()
    assert chain["expiry"].dt.date.tolist() == made["expiry"].tolist()
    assert chain["expiry_type"].tolist() == made["kind"].tolist()
    assert chain["dte"].tolist() == made["dte"].tolist()
    assert chain["right"].tolist() == made["right"].tolist()
    assert chain["strike"].tolist() == made["strike"].tolist()
    np.testing.assert_allclose(chain["mid"], (made["bid"] + made["ask"]) / 2)
    assert (chain["source"] == f"files:{file_name}").all()
    assert not chain["modelled"].any()
    assert (chain["dividend_yield"] == 0.0).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_dolthub_layout(tmp_path, fmt):
    made = hand_made_chain()
    t = np.maximum(made["dte"], 0.5) / 365
    is_call = made["right"] == "C"
    greeks = bs.greeks(made["spot"], made["strike"], t, 0.6, RATE, 0.0, is_call)
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": "NVDA",
            "expiration": made["listed"].astype(str),
            "strike": made["strike"],
            "call_put": np.where(is_call, "Call", "Put"),
            "bid": made["bid"],
            "ask": made["ask"],
            "vol": 0.6,
            "delta": greeks["delta"],
            "gamma": greeks["gamma"],
            "theta": greeks["theta"],
            "vega": greeks["vega"],
            "rho": 0.0,
        }
    )
    frame.loc[0, ["vol", "delta"]] = np.nan  # a row the vendor could not solve
    path = write(frame, tmp_path / f"nvda_options.{fmt}")
    source = FileMarketSource(universe("NVDA"), FIXTURES, path, rate=RATE)
    chain = source.chains(SESSION)

    check_chain(chain, made, path.name)
    # underlying_price is the session's bar close; volume and open interest default to 0.
    assert (chain["underlying_price"] == nvda_close(SESSION)).all()
    assert (chain["volume"] == 0).all() and (chain["open_interest"] == 0).all()
    assert (chain["rate"] == RATE).all()
    # The vendor's vol is kept; the missing one is solved from the mid.
    by_key = chain.set_index(["expiry", "strike", "right"])
    key = (pd.Timestamp("2008-10-17"), frame.loc[0, "strike"], "C")
    solved = by_key.loc[key]
    assert solved["implied_vol"] != 0.6
    t0 = (dt.date(2008, 10, 17) - SESSION).days / 365
    assert bs.price(
        solved["underlying_price"], key[1], t0, solved["implied_vol"], RATE, 0.0, True
    ) == pytest.approx(solved["mid"], abs=1e-6)
    assert solved["delta"] == pytest.approx(
        float(
            bs.greeks(
                solved["underlying_price"], key[1], t0, solved["implied_vol"], RATE, 0.0, True
            )["delta"]
        )
    )
    others = chain.drop(
        index=chain.index[
            (chain["expiry"] == key[0]) & (chain["strike"] == key[1]) & (chain["right"] == "C")
        ]
    )
    assert (others["implied_vol"] == 0.6).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cboe_layout_solves_iv_from_the_mid(tmp_path, fmt):
    made = hand_made_chain(spot=9.87)  # the file's own underlying price, not the bar's
    is_call = made["right"] == "C"
    frame = pd.DataFrame(
        {
            "underlying_symbol": "nvda",
            "quote_date": SESSION.isoformat(),
            "root": "NVDA",
            "expiration": made["listed"].astype(str),
            "strike": made["strike"],
            "option_type": np.where(is_call, ["C", "call"] * 6, ["P", "put"] * 6),
            "bid": made["bid"],
            "ask": made["ask"],
            "trade_volume": np.arange(len(made)),
            "open_interest": 100,
            "underlying_close": 9.87,
        }
    )
    path = write(frame, tmp_path / f"UnderlyingOptionsEOD.{fmt}")
    chain = FileMarketSource(universe("NVDA"), FIXTURES, path, rate=RATE).chains(SESSION)

    check_chain(chain, made, path.name)
    assert (chain["underlying_price"] == 9.87).all()  # the file's own underlying price
    assert (chain["open_interest"] == 100).all()
    assert sorted(chain["volume"]) == list(range(len(made)))
    # Every implied volatility reprices its mid; the greeks follow from it.
    t = np.maximum(chain["dte"], 0.5) / 365
    call = chain["right"] == "C"
    assert chain["implied_vol"].notna().all()
    repriced = bs.price(9.87, chain["strike"], t, chain["implied_vol"], RATE, 0.0, call)
    np.testing.assert_allclose(repriced, chain["mid"], atol=1e-6)
    greeks = bs.greeks(9.87, chain["strike"], t, chain["implied_vol"], RATE, 0.0, call)
    np.testing.assert_allclose(chain["vega"], greeks["vega"])
    np.testing.assert_allclose(chain["theta"], greeks["theta"])
    assert (chain["theo"] == chain["mid"]).all()


def test_quotes_without_an_implied_volatility(tmp_path):
    # A mid below intrinsic value has no implied volatility: NaN, never an invented one.
    spot = nvda_close(SESSION)
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": "NVDA",
            "expiration": "2008-11-21",
            "strike": [spot - 2.0, spot],
            "call_put": "Call",
            "bid": [1.5, 0.5],
            "ask": [1.6, 0.6],
        }
    )
    path = write(frame, tmp_path / "cheap.csv")
    chain = FileMarketSource(universe("NVDA"), FIXTURES, path).chains(SESSION)
    assert np.isnan(chain["implied_vol"].iloc[0]) and np.isnan(chain["vega"].iloc[0])
    assert chain["implied_vol"].iloc[1] > 0 and chain["vega"].iloc[1] > 0


def test_greeks_in_other_units_are_converted(tmp_path):
    made = hand_made_chain()
    t = np.maximum(made["dte"], 0.5) / 365
    is_call = made["right"] == "C"
    greeks = bs.greeks(made["spot"], made["strike"], t, 0.6, RATE, 0.0, is_call)
    frame = pd.DataFrame(
        {
            "quote_date": SESSION.isoformat(),
            "underlying_symbol": "NVDA",
            "expiration": made["listed"].astype(str),
            "strike": made["strike"],
            "option_type": np.where(is_call, "C", "P"),
            "bid": made["bid"],
            "ask": made["ask"],
            "implied_volatility": 60.0,  # percent
            "vega": greeks["vega"] * 100.0,  # per 1.00 of volatility
            "theta": greeks["theta"] * 365.0,  # per year
            "delta": greeks["delta"],
            "gamma": greeks["gamma"],
        }
    )
    path = write(frame, tmp_path / "units.csv")
    source = FileMarketSource(universe("NVDA"), FIXTURES, path, rate=RATE)
    chain = source.chains(SESSION).sort_values(["expiry", "strike", "right"])
    made = made.sort_values(["expiry", "strike", "right"])
    np.testing.assert_allclose(chain["implied_vol"], 0.6)
    expected = bs.greeks(
        made["spot"],
        made["strike"],
        np.maximum(made["dte"], 0.5) / 365,
        0.6,
        RATE,
        0.0,
        made["right"] == "C",
    )
    np.testing.assert_allclose(chain["vega"], expected["vega"], rtol=1e-9)
    np.testing.assert_allclose(chain["theta"], expected["theta"], rtol=1e-9)
    assert len(source.warnings) == 3
    assert all("units.csv" in w for w in source.warnings)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_canonical_layout_keeps_its_values(tmp_path, fmt):
    made = hand_made_chain()
    t = np.maximum(made["dte"], 0.5) / 365
    is_call = made["right"] == "C"
    greeks = bs.greeks(made["spot"], made["strike"], t, 0.6, RATE, 0.0, is_call)
    frame = pd.DataFrame(
        {
            "session": SESSION.isoformat(),
            "symbol": "NVDA",
            "expiry": made["expiry"].astype(str),
            "expiry_type": "ignored",
            "dte": -1,
            "strike": made["strike"],
            "right": made["right"],
            "bid": made["bid"],
            "ask": made["ask"],
            "mid": (made["bid"] + made["ask"]) / 2,
            "theo": 1.25,
            "volume": 7,
            "open_interest": 70,
            "implied_vol": 0.6,
            **greeks,
            "underlying_price": made["spot"],
            "rate": 0.05,
            "dividend_yield": 0.01,
            "modelled": False,
            "source": "whatever",
        }
    )
    path = write(frame, tmp_path / f"canonical.{fmt}")
    chain = FileMarketSource(universe("NVDA"), FIXTURES, path).chains(SESSION)
    assert dtype_problems(chain, OPTION_CHAINS) == []
    made_sorted = made.sort_values(["expiry", "strike", "right"]).reset_index(drop=True)
    assert chain["expiry_type"].tolist() == made_sorted["kind"].tolist()
    assert chain["dte"].tolist() == made_sorted["dte"].tolist()
    assert (chain["theo"] == 1.25).all() and (chain["volume"] == 7).all()
    assert (chain["rate"] == 0.05).all() and (chain["dividend_yield"] == 0.01).all()
    assert (chain["implied_vol"] == 0.6).all()
    assert (chain["source"] == f"files:canonical.{fmt}").all()


def test_good_friday_expiry_is_monthly(tmp_path):
    # April 2014: the third Friday (18th) was Good Friday; the monthly expired on Thursday.
    session = dt.date(2014, 4, 15)
    frame = pd.DataFrame(
        {
            "date": session.isoformat(),
            "act_symbol": "ORCL",
            "expiration": ["2014-04-17", "2014-04-18", "2014-04-25", "2014-05-17"],
            "strike": 40.0,
            "call_put": "Call",
            "bid": [0.5, 0.5, 0.7, 1.0],
            "ask": [0.55, 0.55, 0.75, 1.1],
        }
    )
    path = write(frame.iloc[[0, 2, 3]], tmp_path / "orcl.csv")
    chain = FileMarketSource(universe("ORCL"), FIXTURES, path).chains(session)
    assert chain["expiry"].dt.date.tolist() == [
        dt.date(2014, 4, 17),
        dt.date(2014, 4, 25),
        dt.date(2014, 5, 16),
    ]
    assert chain["expiry_type"].tolist() == ["monthly", "weekly", "monthly"]
    assert chain["dte"].tolist() == [2, 10, 31]
    # A Good-Friday expiry listed on the holiday itself is the same contract as Thursday's.
    both = write(frame.iloc[[0, 1]], tmp_path / "twice.csv")
    with pytest.raises(MarketDataError, match="quoted more than once"):
        FileMarketSource(universe("ORCL"), FIXTURES, both).chains(session)


def test_chain_file_without_the_session_names_its_latest_date(tmp_path):
    made = hand_made_chain()
    frame = pd.DataFrame(
        {
            "date": ["2008-10-13", "2008-10-14"] * (len(made) // 2),
            "act_symbol": "NVDA",
            "expiration": "2008-11-21",
            "strike": made["strike"],
            "call_put": "Put",
            "bid": 1.0,
            "ask": 1.1,
        }
    )
    path = write(frame, tmp_path / "nvda_chain.csv")
    source = FileMarketSource(universe("NVDA"), FIXTURES, path)
    with pytest.raises(MarketDataError) as info:
        source.chains(SESSION)
    message = str(info.value)
    assert "nvda_chain.csv" in message and str(SESSION) in message
    assert "latest quote date is 2008-10-14" in message


def test_directory_of_daily_chain_files(tmp_path):
    directory = tmp_path / "chains"
    directory.mkdir()
    made = hand_made_chain()
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": made.get("symbol", "NVDA"),
            "expiration": made["listed"].astype(str),
            "strike": made["strike"],
            "call_put": made["right"],
            "bid": made["bid"],
            "ask": made["ask"],
        }
    )
    write(frame, directory / f"options_{SESSION:%Y%m%d}.csv")
    # Another day's file is not even read for this session (it is broken on purpose).
    (directory / "options_20081014.csv").write_text("garbage\n\x00\x01")
    source = FileMarketSource(universe("NVDA"), FIXTURES, directory)
    chain = source.chains(SESSION)
    assert len(chain) == len(made)
    assert (chain["source"] == f"files:options_{SESSION:%Y%m%d}.csv").all()
    with pytest.raises(MarketDataError, match="latest quote date is 2008-10-15"):
        source.chains(dt.date(2008, 10, 16))


def test_chain_rows_with_bad_values(tmp_path):
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": "NVDA",
            "expiration": "2008-11-21",
            "strike": [6.5, 7.5],
            "call_put": ["Call", "Straddle"],
            "bid": 1.0,
            "ask": 1.1,
        }
    )
    path = write(frame, tmp_path / "bad.csv")
    with pytest.raises(MarketDataError, match=r"bad\.csv: line 3: column 'call_put': 'Straddle'"):
        FileMarketSource(universe("NVDA"), FIXTURES, path).chains(SESSION)
    missing = write(frame.drop(columns="ask"), tmp_path / "noask.csv")
    with pytest.raises(MarketDataError, match=r"noask\.csv: missing column.*ask"):
        FileMarketSource(universe("NVDA"), FIXTURES, missing).chains(SESSION)


# ---------------------------------------------------------------------------- modelled chains
def test_modelled_chains_from_real_bars():
    source = FileMarketSource(universe(), FIXTURES, rate=RATE, seed=11)
    chain = source.chains(SESSION)
    assert dtype_problems(chain, OPTION_CHAINS) == []
    assert set(chain["symbol"]) == {"NVDA", "ORCL", "YHOO"}
    assert chain["modelled"].all()
    for symbol, name in FIXTURE_FILES.items():
        assert set(chain.loc[chain["symbol"] == symbol, "source"]) == {f"modelled:files:{name}"}
        spot = chain.loc[chain["symbol"] == symbol, "underlying_price"].unique()
        assert spot.tolist() == [
            pytest.approx(float(vendor(symbol).set_index("Date").loc[SESSION.isoformat(), "Close"]))
        ]
    assert source.skipped_tickers == []
    ordered = chain.sort_values(["symbol", "expiry", "strike", "right"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(chain, ordered)
    calls = chain[chain["right"] == "C"].sort_values(["symbol", "expiry", "strike"])
    steps = calls.groupby(["symbol", "expiry"])["theo"].diff().dropna()
    assert len(steps) > 50 and (steps <= 1e-12).all()
    puts = chain[chain["right"] == "P"].sort_values(["symbol", "expiry", "strike"])
    assert (puts.groupby(["symbol", "expiry"])["theo"].diff().dropna() >= -1e-12).all()
    # Deterministic in (seed, session); another seed draws other quotes.
    pd.testing.assert_frame_equal(chain, source.chains(SESSION))
    other = FileMarketSource(universe(), FIXTURES, rate=RATE, seed=12).chains(SESSION)
    assert not np.array_equal(other["ask"].to_numpy(), chain["ask"].to_numpy())


def test_volatility_state_is_ewma_and_realised_volatility():
    state = FileMarketSource(universe(), FIXTURES).volatility_state(SESSION)
    for symbol in FIXTURE_FILES:
        closes = vendor(symbol).set_index("Date")["Close"]
        closes = closes[closes.index <= SESSION.isoformat()]
        returns = np.log(closes).diff().dropna()
        ewma = (returns**2).ewm(alpha=1 - 0.94, adjust=True).mean().iloc[-1]
        row = state.set_index("symbol").loc[symbol]
        assert row["vol_now"] == pytest.approx(np.sqrt(ewma * 252), rel=1e-9)
        assert row["vol_long"] == pytest.approx(
            np.sqrt(np.mean(returns.iloc[-252:] ** 2) * 252), rel=1e-12
        )
        assert row["spot"] == closes.iloc[-1]
        assert (row["vrp"], row["skew"], row["liquidity"]) == (0.10, 0.10, 0.6)
        assert np.isnan(row["event_days"]) and row["event_vol"] == 0.0


def test_modelled_chain_uses_no_future_bars(tmp_path):
    truncated = tmp_path / "truncated"
    altered = tmp_path / "altered"
    truncated.mkdir()
    altered.mkdir()
    for symbol, name in FIXTURE_FILES.items():
        frame = vendor(symbol)
        after = frame["Date"] > SESSION.isoformat()
        frame.loc[~after].to_csv(truncated / name, index=False)
        changed = frame.copy()
        changed.loc[after, ["Open", "High", "Low", "Close", "Adj Close"]] *= 3.0
        changed.to_csv(altered / name, index=False)
    full = FileMarketSource(universe(), FIXTURES).chains(SESSION)
    for directory in (truncated, altered):
        chain = FileMarketSource(universe(), directory).chains(SESSION)
        pd.testing.assert_frame_equal(chain.drop(columns="source"), full.drop(columns="source"))
    # The next session does see the change.
    later = dt.date(2008, 10, 16)
    assert (
        not FileMarketSource(universe(), altered)
        .chains(later)["underlying_price"]
        .equals(FileMarketSource(universe(), FIXTURES).chains(later)["underlying_price"])
    )


def test_tickers_without_enough_history_get_no_chain():
    # NVDA listed on 1999-01-22: 10 sessions later it has fewer than 20 returns.
    session = dt.date(1999, 2, 5)
    source = FileMarketSource(universe(), FIXTURES)
    chain = source.chains(session)
    assert set(chain["symbol"]) == {"ORCL", "YHOO"}
    assert source.skipped_tickers == ["NVDA"]
    assert "needs 20" in source.skip_reasons["NVDA"]
    # A ticker without a bar on the session (YHOO's file outlives the others) is skipped too.
    assert set(source.chains(dt.date(2015, 6, 1))["symbol"]) == {"YHOO"}
    assert source.skipped_tickers == ["NVDA", "ORCL"]


def test_vendor_no_quote_rows_are_dropped_with_a_count(tmp_path):
    """bid = ask = 0 is a contract nobody quoted: dropped at the source and counted in its
    warnings; a zero bid with an ask is a one-sided quote and stays."""
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": "NVDA",
            "expiration": "2008-11-21",
            "strike": [6.0, 7.0, 8.0, 9.0],
            "call_put": "Call",
            "bid": [1.0, 0.0, 0.0, 0.0],
            "ask": [1.1, 0.0, 0.05, 0.0],
        }
    )
    path = write(frame, tmp_path / "vendor.csv")
    source = FileMarketSource(universe("NVDA"), FIXTURES, path)
    chain = source.chains(SESSION)
    assert chain["strike"].tolist() == [6.0, 8.0]
    assert chain["bid"].tolist() == [1.0, 0.0]
    assert f"{SESSION}: dropped 2 no-quote row(s) (bid = ask = 0) of 4" in source.warnings
