"""What a market-data source provides, whatever it reads from.

The Dagster layer only ever talks to this protocol, so adding a source (IBKR comes with the
broker work) never touches an asset.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pandas as pd


class MarketDataError(ValueError):
    """Market data that cannot be produced: a missing or malformed file, an unknown ticker,
    a session the source has no data for. The message names the file, ticker, session and
    rule, because the person reading it is fixing a data problem at 5 pm."""


class MarketDataUnavailable(MarketDataError):
    """The source could not be reached or stopped answering (TWS down, a dropped
    connection, a timeout): nothing is known to be wrong with the data, and the same request
    may succeed a minute later, so it is the one market error worth retrying."""


class MarketSource(Protocol):
    name: str

    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        """DAILY_BARS rows of every universe ticker that traded on each session."""
        ...

    def chains(self, session: dt.date) -> pd.DataFrame:
        """OPTION_CHAINS rows of the closing snapshot of ``session``."""
        ...

    def truth(self, sessions: list[dt.date]) -> pd.DataFrame | None:
        """MARKET_TRUTH rows when the source knows the hidden regime (synthetic), else None."""
        ...
