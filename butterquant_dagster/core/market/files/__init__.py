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

Callers import from this package, not from its modules, which may be rearranged.
"""

from __future__ import annotations

from butterquant_dagster.core.market.files.bars import BarsFile, read_bars_file
from butterquant_dagster.core.market.files.chains import ChainFile, read_chain_file
from butterquant_dagster.core.market.files.completion import expiry_kind
from butterquant_dagster.core.market.files.modelled import session_rng
from butterquant_dagster.core.market.files.parsing import clear_cache, ticker_from_name
from butterquant_dagster.core.market.files.source import FileMarketSource

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
