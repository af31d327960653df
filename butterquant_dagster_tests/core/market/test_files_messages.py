"""The files source names the real cause of three small faults: a header-only bars file,
a CSV cut off mid-line, and a strike that is zero or negative."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from butterquant_dagster.core.market.files import FileMarketSource
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster_tests.core.market.test_files import (
    FIXTURE_FILES,
    FIXTURES,
    OCTOBER_2008,
    SESSION,
    nvda_close,
    universe,
    write,
)


def test_a_header_only_bars_file_is_named_as_empty_not_missing(real_bars_dir):
    path = real_bars_dir / FIXTURE_FILES["YHOO"]
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n")
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe(), real_bars_dir).bars(OCTOBER_2008)
    message = str(info.value)
    assert f"{path}: has a header row but no bars" in message
    assert "no file named" not in message


def test_a_truncated_last_line_is_named_as_truncated(real_bars_dir):
    path = real_bars_dir / FIXTURE_FILES["YHOO"]
    data = path.read_bytes().rstrip(b"\n")
    cut = data[: data.rindex(b",", 0, data.rindex(b",", 0, data.rindex(b",")))]  # 3 fields gone
    path.write_bytes(cut)
    lines = cut.count(b"\n") + 1
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe(), real_bars_dir).bars(OCTOBER_2008)
    message = str(info.value)
    assert f"{path}: line {lines}: the last line has 4 of the header's 7 columns" in message
    assert "truncated" in message and "is empty" not in message


@pytest.mark.parametrize("strike", [0.0, -5.0])
def test_a_strike_that_is_not_positive_is_named_with_its_line(tmp_path, strike):
    spot = nvda_close(SESSION)
    frame = pd.DataFrame(
        {
            "date": SESSION.isoformat(),
            "act_symbol": "NVDA",
            "expiration": "2008-11-21",
            "strike": [spot, strike],
            "call_put": "Call",
            "bid": [1.5, 0.5],
            "ask": [1.6, 0.6],
        }
    )
    path = write(frame, tmp_path / "strikes.csv")
    with pytest.raises(MarketDataError) as info:
        FileMarketSource(universe("NVDA"), FIXTURES, path).chains(SESSION)
    message = str(info.value)
    assert f"{path}: line 3: column 'strike': {strike!r}" in message
    assert "a strike must be positive" in message


def test_a_complete_file_without_a_final_line_break_still_reads(real_bars_dir):
    path = real_bars_dir / FIXTURE_FILES["YHOO"]
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    bars = FileMarketSource(universe(), real_bars_dir).bars([dt.date(2008, 10, 1)])
    assert len(bars) == 3
