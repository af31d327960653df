"""The IBKR market source on a real IB client (ib_async, then ib_insync) against the fake TWS:
its connection is opened per call and closed by the source itself, errors included.

The market assets call ``source.bars(...)`` without a ``with`` block, so a connection that
only a ``with`` (or garbage collection) closed would stay open for the rest of the process and
hold its client id at TWS. "Closed" is checked at the far end: the fake sees the client hang up
while the source object is still referenced.
"""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest

from butterquant_dagster.core.market.ibkr import IBKRMarketSource
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster_tests.fake_tws import FakeTWS

DAYS = [dt.date(2026, 11, 17), dt.date(2026, 11, 18), dt.date(2026, 11, 19)]
AFTER_THE_CLOSE = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
CLIENT_ID = 17  # the broker's; market data connects as the next id
START_API = 71


def wait_for(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def tws(ib_client, monkeypatch):
    with FakeTWS() as fake:
        fake.add_stock("AAPL")
        fake.add_bars(
            "AAPL",
            [(day, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1e6) for i, day in enumerate(DAYS)],
        )
        monkeypatch.setenv("BUTTERQUANT_IB_PORT", str(fake.port))
        monkeypatch.setenv("BUTTERQUANT_IB_CLIENT_ID", str(CLIENT_ID))
        yield fake


def source(*symbols: str) -> IBKRMarketSource:
    universe = pd.DataFrame({"symbol": list(symbols or ["AAPL"])})
    return IBKRMarketSource.from_settings(
        universe, rate=0.04, clock=lambda: AFTER_THE_CLOSE, connect_timeout=3.0
    )


def test_bars_come_through_the_chosen_client_and_the_connection_is_closed(tws, ib_client):
    market = source()
    assert tws.connections == 0  # nothing until the first call

    bars = market.bars([DAYS[-1]])

    row = bars.iloc[0]
    assert (row["symbol"], row["close"], row["prev_close"]) == ("AAPL", 102.5, 101.5)
    assert row["adj_close"] == 102.5  # ADJUSTED_LAST was asked for too
    assert market.client.split()[0] == ib_client
    assert len(tws.requests(START_API)) == 1
    # the source closed it itself: the fake saw market data's client id hang up
    assert wait_for(lambda: tws.hangups == [CLIENT_ID + 1])
    assert tws.connections == 0

    market.bars([DAYS[-1]])  # a later call connects again, and closes again
    assert wait_for(lambda: tws.hangups == [CLIENT_ID + 1] * 2)


def test_a_failing_call_closes_its_connection_too(tws):
    market = source("AAPL", "NOPE")  # the fake has no bars for NOPE: IB error 162

    with pytest.raises(MarketDataError, match="no daily bars for ticker NOPE"):
        market.bars([DAYS[-1]])

    assert wait_for(lambda: tws.hangups == [CLIENT_ID + 1])
    assert tws.connections == 0


def test_a_with_block_keeps_one_connection_across_calls_and_closes_it_at_the_end(tws):
    with source() as market:
        market.bars([DAYS[-1]])
        market.bars([DAYS[-2]])
        assert tws.connections == 1 and tws.hangups == []
    assert len(tws.requests(START_API)) == 1
    assert wait_for(lambda: tws.hangups == [CLIENT_ID + 1])
    assert tws.connections == 0
