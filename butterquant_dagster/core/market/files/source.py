"""The file source: the MarketSource protocol on top of the bars, chain and model readers.

Only what spans requests lives here: the universe, the warnings collected across calls and
the universe's bars table, rebuilt when one of its files changes on disk.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.chain_model import UNDERLYING_COLUMNS
from butterquant_dagster.core.market.files.bars import History, _universe_bars, _universe_files
from butterquant_dagster.core.market.files.chains import _session_quotes
from butterquant_dagster.core.market.files.completion import _complete
from butterquant_dagster.core.market.files.modelled import _modelled_chains, _volatility_state
from butterquant_dagster.core.market.files.parsing import _signature
from butterquant_dagster.core.market.schemas import DAILY_BARS, OPTION_CHAINS, conform, empty
from butterquant_dagster.core.market.source import MarketDataError


class FileMarketSource:
    """Bars and chains from CSV/Parquet files; see the package docstring and
    ``docs/data_formats.md``.

    Attributes after a call: ``warnings`` lists what was dropped or converted while reading
    (rows on weekday market closures, vendor placeholder rows, greek units), and
    ``skipped_tickers`` / ``skip_reasons`` the tickers the last modelled ``chains`` call gave
    no chain (no bar on the session, fewer than 20 returns).
    """

    name = "files"

    def __init__(
        self,
        universe: pd.DataFrame,
        bars_path: str | Path,
        chains_path: str | Path | None = None,
        *,
        rate: float = 0.04,
        seed: int = 7,
    ):
        if "symbol" not in universe.columns:
            raise ValueError(f"the universe needs a symbol column; found {list(universe.columns)}")
        symbols = universe["symbol"].astype(str).str.strip().str.upper().tolist()
        if not symbols:
            raise ValueError("the file source needs at least one ticker")
        self.symbols: list[str] = list(dict.fromkeys(symbols))
        self.bars_path = Path(bars_path)
        self.chains_path = None if chains_path is None else Path(chains_path)
        self.rate = float(rate)
        self.seed = int(seed)
        self.warnings: list[str] = []
        self.skipped_tickers: list[str] = []
        self.skip_reasons: dict[str, str] = {}
        self._bars_key: tuple | None = None
        self._bars: pd.DataFrame | None = None
        self._history: dict[str, History] = {}

    def _warn(self, messages: list[str]) -> None:
        for message in messages:
            if message not in self.warnings:
                self.warnings.append(message)

    def _require(self, day: dt.date, path: Path | None) -> dt.date:
        try:
            return calendar.require_session(day, what="requested date")
        except calendar.CalendarError as exc:
            raise MarketDataError(
                f"{path}: {exc} (rule: data is requested for NYSE sessions only)"
            ) from exc

    def _bars_table(self) -> pd.DataFrame:
        """Every bar of the universe, sorted by (session, symbol), indexed by session."""
        files = _universe_files(self.bars_path, self.symbols)
        key = tuple(sorted((t, _signature(f)) for t, (f, _) in files.items()))
        if self._bars is not None and key == self._bars_key:
            return self._bars
        table, self._history = _universe_bars(self.bars_path, self.symbols, files, self._warn)
        self._bars, self._bars_key = table, key
        return table

    def _underlying_closes(self, session: dt.date) -> dict[str, float]:
        table = self._bars_table()
        today = table.loc[table.index == pd.Timestamp(session)]
        return dict(zip(today["symbol"], today["close"], strict=True))

    # ------------------------------------------------------------------ protocol
    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        """DAILY_BARS rows dated in ``sessions`` of every universe ticker with a bar there."""
        wanted = [self._require(day, self.bars_path) for day in sessions]
        table = self._bars_table()
        if not wanted:
            return empty(DAILY_BARS)
        chosen = table.loc[table.index.isin(pd.DatetimeIndex(wanted))]
        chosen = chosen[DAILY_BARS.names].reset_index(drop=True)
        return conform(chosen, DAILY_BARS, origin=str(self.bars_path))

    def chains(self, session: dt.date) -> pd.DataFrame:
        """OPTION_CHAINS rows of ``session``: from the chain files, else modelled."""
        if self.chains_path is None:
            day = self._require(session, self.bars_path)
            return self._modelled_chains(day)
        day = self._require(session, self.chains_path)
        return self._file_chains(day)

    def truth(self, sessions: list[dt.date]) -> None:
        """Real markets have no known hidden regime."""
        return None

    def volatility_state(self, session: dt.date) -> pd.DataFrame:
        """Per ticker with enough history, the chain model's inputs at the close of
        ``session`` (UNDERLYING_COLUMNS), from bars dated on or before it only."""
        return self._volatility_state(session)[list(UNDERLYING_COLUMNS)]

    # ------------------------------------------------------------------ chains
    def _file_chains(self, session: dt.date) -> pd.DataFrame:
        assert self.chains_path is not None
        rows = _session_quotes(self.chains_path, session, self._warn)
        rows = rows.loc[rows["symbol"].isin(self.symbols)].reset_index(drop=True)
        rows = self._without_no_quote_rows(rows, session)
        if rows.empty:
            return empty(OPTION_CHAINS)
        return _complete(
            rows,
            session,
            chains_path=self.chains_path,
            bars_path=self.bars_path,
            rate=self.rate,
            closes=lambda: self._underlying_closes(session),
            warn=self._warn,
        )

    def _without_no_quote_rows(self, rows: pd.DataFrame, session: dt.date) -> pd.DataFrame:
        """Vendors list contracts nobody quoted at the close as bid = ask = 0. Such a row is
        no price at all (a zero bid with an ask is a one-sided quote and stays), so it is
        dropped here with a warning that counts it, instead of failing the price check and
        with it every session of the run (docs/data_formats.md, "No-quote rows")."""
        bid = pd.to_numeric(rows["bid"], errors="coerce")
        ask = pd.to_numeric(rows["ask"], errors="coerce")
        no_quote = (bid == 0) & (ask == 0)
        if no_quote.any():
            self._warn(
                [
                    f"{session}: dropped {int(no_quote.sum())} no-quote row(s) (bid = ask = 0) "
                    f"of {len(rows)}"
                ]
            )
        return rows.loc[~no_quote].reset_index(drop=True)

    def _volatility_state(self, session: dt.date) -> pd.DataFrame:
        day = self._require(session, self.bars_path)
        self._bars_table()
        state, skipped = _volatility_state(self._history, self.symbols, day)
        self.skipped_tickers = list(skipped)
        self.skip_reasons = skipped
        return state

    def _modelled_chains(self, session: dt.date) -> pd.DataFrame:
        state = self._volatility_state(session)
        return _modelled_chains(
            state, session, rate=self.rate, seed=self.seed, bars_path=self.bars_path
        )
