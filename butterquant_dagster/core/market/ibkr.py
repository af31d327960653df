"""The Interactive Brokers market source: daily bars and live option-chain snapshots from
TWS or IB Gateway through the IB API client :mod:`~butterquant_dagster.core.brokers.ib_client`
picks (``ib_async`` when installed, else ``ib_insync``).

``IBKRMarketSource`` implements the
:class:`~butterquant_dagster.core.market.source.MarketSource` protocol. What it relies on,
and why:

- **Connection.** ``from_settings`` reads ``BUTTERQUANT_IB_HOST``/``_PORT``/``_CLIENT_ID``
  and connects read-only with client id ``BUTTERQUANT_IB_CLIENT_ID + 1``: TWS refuses a
  second connection with an id already in use, and the broker connects with the setting
  itself, so market data and order routing can be connected at the same time. Nothing
  listening is a :class:`MarketDataError` that says to start TWS/IB Gateway and enable the
  API on that port. A connection the source makes lasts one ``bars`` or ``chains`` call (or
  the ``with`` block around several) and is closed when it ends, errors included: never left
  open for garbage collection to close, so TWS does not keep a dead client id.
- **Bars.** One ``reqHistoricalData`` per ticker, daily ``TRADES`` bars in regular trading
  hours (IB's trade bars are split-adjusted: our ``close``), and, unless ``adjusted=False``,
  a second request for ``ADJUSTED_LAST`` (split- and dividend-adjusted; IB accepts it only
  with ``endDateTime=''``) whose close is ``adj_close``. With ``adjusted=False``,
  ``adj_close`` is ``close``. Volume is taken as IB reports it.
- **Chains** exist only live: IB keeps no history of option quotes. A chain is therefore
  snapshotted during the session's hours (open..close, 13:00 ET on early-close days, from
  ``core.calendar``) and refused otherwise, because after the close IB reports stale
  quotes and tiny or missing implied vols. The snapshot is of the moment of the call, not of
  the close: schedule it shortly before the close (CBOE's own end-of-day file is the 15:45
  snapshot). Expiries and strikes come from ``reqSecDefOptParams`` (the ``SMART`` chain of
  the ticker's standard trading class), limited to ``min_dte``..``max_dte`` calendar days
  and strikes within ``strike_width`` of the underlying's price; the contracts are qualified
  and their quotes requested in batches.
- **Open interest** (generic tick 101) cannot be asked for in a snapshot request (TWS
  rejects generic ticks with ``snapshot=True``: error 321, "Snapshot market data
  subscription is not applicable to generic ticks"). With the default ``generic_ticks``
  the source therefore streams each batch, waits until its quotes, model greeks and open
  interest are in (or ``snapshot_timeout``), and cancels the batch: ``batch_size`` is the
  number of market-data lines in use at once. ``generic_ticks=""`` takes plain snapshots
  instead, with ``open_interest`` 0 ("not reported", as for files without it).
- **Greeks.** ``ticker.modelGreeks`` (IB's option model, tick 13) give the implied vol,
  delta, gamma, vega, theta and the model price (``theo``). IB quotes vega per one
  volatility point and theta per calendar day, the conventions of
  ``docs/data_formats.md``; the source still checks every snapshot against Black-Scholes
  at IB's own implied vol and converts vega given per 1.00 of volatility (÷100) and theta
  given per year (÷365), with a warning, the policy of the file source. What IB leaves out
  (no model greeks yet, its "not computed" sentinels) is computed with
  ``core.options.black_scholes`` from the mid and counted in ``warnings``.
- **Quality.** Quotes without a bid or ask, crossed quotes and quotes that are not live
  (delayed or frozen) are dropped and counted in ``warnings``; then the market assets' own
  implied-vol rule (``validation``: same rule, same thresholds) runs on the snapshot and an
  implausible one is a :class:`MarketDataError` naming the tickers, the session and the rule.
- **Pacing.** IB allows about 50 messages a second and a limited number of simultaneous
  market-data lines (100 on a default account). Every request goes through a throttle
  with a minimum interval per message (``min_interval``, 1/40 s), contracts are qualified
  and quoted in batches of ``batch_size``, and waiting uses ``ib.sleep`` so the client
  keeps processing messages.

Attributes after a call: ``warnings`` (what was dropped, filled or converted) and
``skipped_tickers`` / ``skip_reasons`` (tickers of the last ``chains`` call without a
usable quote).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers import ib_client
from butterquant_dagster.core.market.files import expiry_kind
from butterquant_dagster.core.market.files.completion import _rescale
from butterquant_dagster.core.market.schemas import DAILY_BARS, OPTION_CHAINS, conform, empty
from butterquant_dagster.core.market.source import MarketDataError, MarketDataUnavailable
from butterquant_dagster.core.market.validation import CHAIN_RULES, QualityPolicy
from butterquant_dagster.core.options import black_scholes as bs

log = logging.getLogger(__name__)

SOURCE = "ibkr"
# The broker connects with BUTTERQUANT_IB_CLIENT_ID; market data uses the next id.
CLIENT_ID_OFFSET = 1
LIVE = 1  # IB market data type: 1 live, 2 frozen, 3 delayed, 4 delayed frozen
_IV_RULE = next(rule for rule in CHAIN_RULES if rule.name == "implied_vol_plausible")
# Values IB (or its API client) leaves in a field it did not compute.
_NOT_COMPUTED = (-1.0, -2.0)
_UNSET = 1e100  # IB's UNSET_DOUBLE is sys.float_info.max


def ib_symbol(symbol: str) -> str:
    """IB writes share classes with a space: ``BRK.B`` is ``BRK B``."""
    return symbol.replace(".", " ").replace("/", " ")


def _value(x: Any) -> float:
    """A float, or NaN for None, NaN and IB's "not computed" and unset values."""
    if x is None:
        return math.nan
    try:
        value = float(x)
    except (TypeError, ValueError):
        return math.nan
    if not math.isfinite(value) or value in _NOT_COMPUTED or abs(value) >= _UNSET:
        return math.nan
    return value


def _quote(x: Any) -> float:
    """A bid or ask: NaN when absent (IB sends -1 for no quote)."""
    value = _value(x)
    return math.nan if value < 0 else value


def _bar_day(value: Any) -> pd.Timestamp:
    """A bar's date (a date, or a datetime in the TWS login zone) as a midnight timestamp."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(calendar.EXCHANGE_TZ).tz_localize(None)
    return stamp.normalize()


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Throttle:
    """At most one message per ``min_interval`` seconds, on average.

    ``wait(n)`` returns when the next request may go out and books ``n`` messages for it,
    so a request of 50 contracts holds the next one back by 50 intervals.
    """

    def __init__(
        self,
        min_interval: float,
        sleep: Callable[[float], Any],
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.min_interval = float(min_interval)
        self._sleep = sleep
        self._monotonic = monotonic
        self._next = -math.inf
        self.requests = 0
        self.messages = 0

    def wait(self, messages: int = 1) -> None:
        now = self._monotonic()
        if now < self._next:
            self._sleep(self._next - now)
            now = max(self._monotonic(), self._next)
        self._next = now + self.min_interval * max(int(messages), 1)
        self.requests += 1
        self.messages += max(int(messages), 1)


class IBKRMarketSource:
    """Bars and live chain snapshots from TWS / IB Gateway; see the module docstring."""

    name = SOURCE

    def __init__(
        self,
        ib: Any,
        universe: pd.DataFrame,
        *,
        rate: float = 0.04,
        clock: Callable[[], dt.datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 7497,
        client_id: int = 18,
        connect_timeout: float = 10.0,
        adjusted: bool = True,
        min_dte: int = 7,
        max_dte: int = 60,
        strike_width: float = 0.10,
        batch_size: int = 50,
        min_interval: float = 1.0 / 40.0,
        generic_ticks: str = "101",
        snapshot_timeout: float = 11.0,
        poll_interval: float = 0.25,
        policy: QualityPolicy | None = None,
        sleep: Callable[[float], Any] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        """``ib`` is an ``IB`` of the IB client (connected or not) or a factory returning
        one; it is connected on first use when it is not, and a connection made here is
        closed at the end of the call that made it (see :meth:`_connection`). ``clock``
        returns the current instant as an aware datetime (UTC by default); it decides which
        sessions have closed and whether the market is open. ``sleep`` defaults to ``ib.sleep``."""
        if "symbol" not in universe.columns:
            raise ValueError(f"the universe needs a symbol column; found {list(universe.columns)}")
        symbols = universe["symbol"].astype(str).str.strip().str.upper().tolist()
        if not symbols:
            raise ValueError("the IBKR source needs at least one ticker")
        if not 0 <= min_dte <= max_dte:
            raise ValueError(f"need 0 <= min_dte <= max_dte; got {min_dte}, {max_dte}")
        if not 0 < strike_width < 1:
            raise ValueError(f"strike_width is a fraction of the price; got {strike_width}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        self.symbols: list[str] = list(dict.fromkeys(symbols))
        self.rate = float(rate)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.host, self.port, self.client_id = host, int(port), int(client_id)
        self.connect_timeout = float(connect_timeout)
        self.adjusted = bool(adjusted)
        self.min_dte, self.max_dte = int(min_dte), int(max_dte)
        self.strike_width = float(strike_width)
        self.batch_size = int(batch_size)
        self.generic_ticks = generic_ticks
        self.snapshot_timeout = float(snapshot_timeout)
        self.poll_interval = float(poll_interval)
        self.policy = policy or QualityPolicy()
        self.warnings: list[str] = []
        self.skipped_tickers: list[str] = []
        self.skip_reasons: dict[str, str] = {}
        is_factory = callable(ib) and not hasattr(ib, "reqHistoricalData")
        self._factory: Callable[[], Any] | None = ib if is_factory else None
        self._ib: Any = None if is_factory else ib
        self._ready = False
        self._owns_connection = False
        self._api: Any = None  # the IB client module, loaded on first use
        self._calls = 0  # bars/chains calls under way
        self._held = 0  # ``with`` blocks around them
        self._ib_errors: deque[tuple[int, str, str]] = deque(maxlen=200)
        self._user_sleep = sleep
        self.throttle = Throttle(min_interval, self._sleep, monotonic)

    @classmethod
    def from_settings(
        cls,
        universe: pd.DataFrame,
        *,
        rate: float | None = None,
        ib_factory: Callable[[], Any] | None = None,
        client_id_offset: int = CLIENT_ID_OFFSET,
        **options: Any,
    ) -> IBKRMarketSource:
        """The source on the TWS / IB Gateway of the ``BUTTERQUANT_IB_*`` settings, with
        client id ``BUTTERQUANT_IB_CLIENT_ID + client_id_offset`` (the broker uses the
        setting itself; two connections may not share an id)."""
        from butterquant_dagster.core.settings import env

        def setting(name: str) -> int:
            value = env(name)
            try:
                return int(value)
            except ValueError as exc:
                raise MarketDataError(f"{name}={value!r} is not an integer") from exc

        if ib_factory is None:

            def ib_factory():
                return ib_client.load().IB()

        return cls(
            ib_factory,
            universe,
            rate=float(env("BUTTERQUANT_RISK_FREE_RATE")) if rate is None else rate,
            host=env("BUTTERQUANT_IB_HOST"),
            port=setting("BUTTERQUANT_IB_PORT"),
            client_id=setting("BUTTERQUANT_IB_CLIENT_ID") + client_id_offset,
            **options,
        )

    # ------------------------------------------------------------------ connection
    @property
    def api(self) -> Any:
        """The IB client module (ib_async or ib_insync) whose contracts the source builds."""
        if self._api is None:
            self._api = ib_client.load()
        return self._api

    @property
    def client(self) -> str:
        """``"ib_async 2.1.0"``: the IB client in use, for logs and metadata."""
        return ib_client.describe(self.api)

    @property
    def ib(self) -> Any:
        """The IB connection, connected (read-only) on first use."""
        if self._ib is None:
            assert self._factory is not None
            self._ib = self._factory()
        if not self._ready:
            if not self._ib.isConnected():
                self._connect()
            self._ib.reqMarketDataType(LIVE)
            error_event = getattr(self._ib, "errorEvent", None)
            if error_event is not None:
                error_event += self._on_ib_error
            self._ready = True
        return self._ib

    def _connect(self) -> None:
        where = f"{self.host}:{self.port}"
        try:
            self._ib.connect(
                self.host,
                self.port,
                clientId=self.client_id,
                timeout=self.connect_timeout,
                readonly=True,
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise MarketDataUnavailable(
                f"ibkr: cannot connect to TWS / IB Gateway at {where} with client id "
                f"{self.client_id} ({type(exc).__name__}: {exc}): nothing listens there. "
                f"Start TWS/IB Gateway and enable the API on port {self.port} (Configure > "
                "API > Settings: 'Enable ActiveX and Socket Clients', socket port "
                f"{self.port}, 127.0.0.1 trusted), or set BUTTERQUANT_IB_HOST/_PORT; a "
                "client id in use by another connection is refused too"
            ) from exc
        if not self._ib.isConnected():
            raise MarketDataUnavailable(
                f"ibkr: TWS / IB Gateway at {where} did not accept client id "
                f"{self.client_id}; start TWS/IB Gateway and enable the API on port "
                f"{self.port}, and check that no other connection uses that client id"
            )
        self._owns_connection = True
        log.info(
            "ibkr market data: connected to %s as client id %d (read-only) with %s",
            where,
            self.client_id,
            self.client,
        )

    def close(self) -> None:
        """Disconnect, if this source made the connection; a factory's IB is dropped too,
        so the next call starts from a fresh one."""
        if self._ib is None:
            return
        error_event = getattr(self._ib, "errorEvent", None)
        if self._ready and error_event is not None:
            error_event -= self._on_ib_error
        self._ready = False
        if self._owns_connection:
            self._owns_connection = False
            self._ib.disconnect()
        if self._factory is not None:
            self._ib = None

    def __enter__(self) -> IBKRMarketSource:
        """Keep one connection across the calls inside the block; closed when it ends."""
        self._held += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._held -= 1
        if not self._held:
            self.close()

    @contextlib.contextmanager
    def _connection(self):
        """Scope of one ``bars``/``chains`` call: a connection it opens is closed when the
        outermost call ends (or its ``with`` block does), whatever happened. The market
        assets call the source without ``with``; this is what closes their connection."""
        self._calls += 1
        try:
            yield
        finally:
            self._calls -= 1
            if not self._calls and not self._held:
                self.close()

    def _on_ib_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        symbol = getattr(contract, "symbol", "") or ""
        self._ib_errors.append((int(code), str(message), symbol))

    def _errors_of(self, symbol: str) -> str:
        found = [f"IB error {c}: {m}" for c, m, s in self._ib_errors if s == ib_symbol(symbol)]
        return f" [{'; '.join(dict.fromkeys(found[-3:]))}]" if found else ""

    def _sleep(self, seconds: float) -> None:
        if self._user_sleep is not None:
            self._user_sleep(seconds)
        else:
            self.ib.sleep(seconds)

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError(f"the clock returned {now} without a timezone; it must be aware")
        return now

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def _call(self, what: str, symbol: str, session: str, fn: Callable[[], Any], messages=1):
        """One throttled request; an exception from IB becomes a MarketDataError."""
        self.throttle.wait(messages)
        try:
            return fn()
        except MarketDataError:
            raise
        except OSError as exc:  # a dropped connection or a timeout (both are OSErrors)
            raise MarketDataUnavailable(
                f"ibkr: {what} for ticker {symbol} ({session}) failed: "
                f"{type(exc).__name__}: {exc}{self._errors_of(symbol)}"
            ) from exc
        except Exception as exc:
            raise MarketDataError(
                f"ibkr: {what} for ticker {symbol} ({session}) failed: "
                f"{type(exc).__name__}: {exc}{self._errors_of(symbol)}"
            ) from exc

    # ------------------------------------------------------------------ protocol
    def truth(self, sessions: list[dt.date]) -> None:
        """Real markets have no known hidden regime."""
        return None

    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        """DAILY_BARS rows dated in ``sessions`` of every universe ticker with a bar there.

        Sessions must have closed by the clock's now. A ticker IB has no bars for, or
        without a bar on a requested session inside its history, is an error; sessions
        before a ticker's first bar (not listed yet) are skipped with a warning.
        """
        with self._connection():
            return self._bars(sessions)

    def _bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        wanted = sorted({self._require_session(day, "bars") for day in sessions})
        if not wanted:
            return empty(DAILY_BARS)
        now = self._now()
        closed = calendar.latest_completed_session(now)
        still_open = [day for day in wanted if day > closed]
        if still_open:
            raise MarketDataError(
                f"ibkr: bars of session(s) {[str(d) for d in still_open]} requested at "
                f"{now.astimezone(calendar.EXCHANGE_TZ):%Y-%m-%d %H:%M} ET, before their "
                f"close; the last closed session is {closed} (rule: a bar is complete only "
                "after its session's close)"
            )
        try:
            start = calendar.previous_session(wanted[0])  # for the first prev_close
        except calendar.CalendarError:
            start = wanted[0]
        days = (now.astimezone(calendar.EXCHANGE_TZ).date() - start).days + 1
        duration = f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"
        span = f"sessions {wanted[0]}..{wanted[-1]}"
        frames = [self._ticker_bars(symbol, wanted, duration, span) for symbol in self.symbols]
        table = pd.concat([f for f in frames if len(f)], ignore_index=True)
        if table.empty:
            raise MarketDataError(f"ibkr: no ticker has a bar in {span}")
        table = table.sort_values(["session", "symbol"], kind="stable").reset_index(drop=True)
        return conform(table, DAILY_BARS, origin=SOURCE)

    def chains(self, session: dt.date) -> pd.DataFrame:
        """OPTION_CHAINS rows of a live snapshot taken now, during ``session``'s hours."""
        with self._connection():
            return self._chains(session)

    def _chains(self, session: dt.date) -> pd.DataFrame:
        day = self._require_session(session, "chains")
        close = self._require_open(day)
        self.skipped_tickers, self.skip_reasons = [], {}
        frames = []
        for symbol in self.symbols:
            frame, reason = self._ticker_chain(symbol, day)
            if reason is not None:
                self.skipped_tickers.append(symbol)
                self.skip_reasons[symbol] = reason
                self._warn(f"ibkr {day} {symbol}: no chain: {reason}")
            else:
                frames.append(frame)
        if self._now() >= close:
            raise MarketDataError(
                f"ibkr: session {day}: the market closed at {close:%H:%M} ET while the "
                "snapshot was being taken; quotes after the close are unusable (rule: chains "
                "are snapshotted between the open and the close; start earlier)"
            )
        if not frames:
            reasons = "; ".join(f"{s}: {r}" for s, r in list(self.skip_reasons.items())[:5])
            raise MarketDataError(
                f"ibkr: session {day}: no ticker has a usable option quote ({reasons})"
            )
        chain = pd.concat(frames, ignore_index=True)
        chain = self._fill_and_convert(chain, day)
        chain = chain.sort_values(["symbol", "expiry", "strike", "right"], kind="stable")
        chain = conform(chain.reset_index(drop=True), OPTION_CHAINS, origin=SOURCE)
        self._check_implied_vols(chain, day)
        return chain

    # ------------------------------------------------------------------ sessions and hours
    def _require_session(self, day: dt.date, what: str) -> dt.date:
        try:
            return calendar.require_session(day, what=f"{what} requested for")
        except calendar.CalendarError as exc:
            raise MarketDataError(
                f"ibkr: {exc} (rule: data is requested for NYSE sessions only; the market "
                "has no quotes on a day it is closed)"
            ) from exc

    def _require_open(self, day: dt.date) -> dt.datetime:
        """The session's close, if the clock is between its open and close; else raise."""
        now = self._now()
        opens, close = calendar.session_open(day), calendar.session_close(day)
        local = now.astimezone(calendar.EXCHANGE_TZ)
        if opens <= now < close:
            return close
        early = " (early close)" if calendar.is_early_close(day) else ""
        if now < opens:
            state = f"has not opened yet: it opens at {opens:%Y-%m-%d %H:%M} ET"
        else:
            state = f"is closed: it closed at {close:%Y-%m-%d %H:%M} ET{early}"
        raise MarketDataError(
            f"ibkr: session {day} {state}, and it is {local:%Y-%m-%d %H:%M} ET now. "
            "Option quotes of a closed market are unusable: IB reports stale quotes and "
            "tiny or missing implied vols outside the session, and keeps no history of them "
            "(rule: chains are snapshotted between the session's open and close; schedule "
            "the snapshot before the close, e.g. 15:45 ET)"
        )

    # ------------------------------------------------------------------ bars
    def _history(self, symbol: str, contract: Any, what: str, duration: str, span: str):
        return self._call(
            f"reqHistoricalData({what})",
            symbol,
            span,
            lambda: self.ib.reqHistoricalData(
                contract,
                endDateTime="",
                durationStr=duration,
                barSizeSetting="1 day",
                whatToShow=what,
                useRTH=True,
                formatDate=1,
            ),
        )

    @staticmethod
    def _bar_frame(bars: Iterable[Any]) -> pd.DataFrame:
        rows = [
            {
                "session": _bar_day(b.date),
                "open": float(b.open),
                "high": float(b.high),
                "low": float(b.low),
                "close": float(b.close),
                "volume": float(b.volume),
            }
            for b in bars
        ]
        frame = pd.DataFrame(rows, columns=["session", "open", "high", "low", "close", "volume"])
        return frame.drop_duplicates("session", keep="last").sort_values("session")

    def _ticker_bars(
        self, symbol: str, wanted: list[dt.date], duration: str, span: str
    ) -> pd.DataFrame:
        contract = self.api.Stock(ib_symbol(symbol), "SMART", "USD")
        bars = self._bar_frame(self._history(symbol, contract, "TRADES", duration, span) or [])
        if bars.empty:
            raise MarketDataError(
                f"ibkr: IB returned no daily bars for ticker {symbol} ({span}, duration "
                f"{duration}){self._errors_of(symbol)}: check the symbol and the account's "
                "market-data permissions (rule: every universe ticker has bars)"
            )
        bars = bars.reset_index(drop=True)
        bars["prev_close"] = bars["close"].shift(1)
        first = bars["session"].iloc[0].date()
        chosen = bars.loc[bars["session"].isin(pd.DatetimeIndex(wanted))].copy()
        have = set(chosen["session"].dt.date)
        missing = [day for day in wanted if day not in have]
        unlisted = [day for day in missing if day < first]
        if unlisted:
            self._warn(
                f"ibkr: ticker {symbol} has no bars before {first}; skipped "
                f"{len(unlisted)} earlier session(s) ({unlisted[0]}..{unlisted[-1]})"
            )
        gaps = [day for day in missing if day >= first]
        if gaps:
            shown = ", ".join(str(d) for d in gaps[:5]) + (" ..." if len(gaps) > 5 else "")
            raise MarketDataError(
                f"ibkr: IB returned no daily bar for ticker {symbol} on session(s) {shown}, "
                f"inside its history from {first}{self._errors_of(symbol)} (rule: a listed "
                "ticker has a bar on every session)"
            )
        if chosen.empty:
            return chosen
        if self.adjusted:
            adjusted = self._bar_frame(
                self._history(symbol, contract, "ADJUSTED_LAST", duration, span) or []
            )
            adj = dict(zip(adjusted["session"], adjusted["close"], strict=True))
            chosen["adj_close"] = chosen["session"].map(adj)
            lacking = chosen.loc[chosen["adj_close"].isna(), "session"].dt.date.tolist()
            if lacking:
                raise MarketDataError(
                    f"ibkr: IB returned no ADJUSTED_LAST bar for ticker {symbol} on "
                    f"session(s) {', '.join(map(str, lacking[:5]))}{self._errors_of(symbol)} "
                    "(rule: adj_close comes from IB's adjusted bars; pass adjusted=False to "
                    "use the close)"
                )
        else:
            chosen["adj_close"] = chosen["close"]
        chosen["symbol"] = symbol
        chosen["volume"] = chosen["volume"].round()
        chosen["source"] = SOURCE
        return chosen[DAILY_BARS.names]

    # ------------------------------------------------------------------ chains
    def _underlying(self, symbol: str, day: dt.date) -> tuple[Any, float]:
        session = f"session {day}"
        stock = self.api.Stock(ib_symbol(symbol), "SMART", "USD")
        qualified = self._call(
            "qualifyContracts", symbol, session, lambda: self.ib.qualifyContracts(stock)
        )
        if not qualified or not getattr(qualified[0], "conId", 0):
            raise MarketDataError(
                f"ibkr: IB does not know the stock {symbol} (as {ib_symbol(symbol)!r}, SMART, "
                f"USD) on session {day}{self._errors_of(symbol)} (rule: every universe "
                "ticker is a listed US stock)"
            )
        tickers = self._call("reqTickers", symbol, session, lambda: self.ib.reqTickers(stock))
        spot = _value(tickers[0].marketPrice()) if tickers else math.nan
        if not spot > 0:
            raise MarketDataError(
                f"ibkr: no price for ticker {symbol} on session {day} (no last trade or "
                f"bid/ask in IB's snapshot){self._errors_of(symbol)}; check the account's "
                "market-data subscription for US stocks"
            )
        return qualified[0], spot

    def _option_chain(self, symbol: str, stock: Any, day: dt.date) -> Any | None:
        chains = self._call(
            "reqSecDefOptParams",
            symbol,
            f"session {day}",
            lambda: self.ib.reqSecDefOptParams(stock.symbol, "", "STK", stock.conId),
        )
        smart = [c for c in chains or [] if c.exchange == "SMART"]
        standard = [c for c in smart if c.tradingClass == ib_symbol(symbol).replace(" ", "")]
        if standard:
            return standard[0]
        if len(smart) == 1:
            return smart[0]
        return None

    def _ticker_chain(self, symbol: str, day: dt.date) -> tuple[pd.DataFrame, str | None]:
        """The ticker's quote rows, or a reason why it has none."""
        stock, spot = self._underlying(symbol, day)
        chain = self._option_chain(symbol, stock, day)
        if chain is None:
            return pd.DataFrame(), "IB lists no standard SMART option chain"
        expiries = []
        for text in chain.expirations:
            expiry = dt.datetime.strptime(str(text)[:8], "%Y%m%d").date()
            if self.min_dte <= (expiry - day).days <= self.max_dte:
                expiries.append(str(text)[:8])
        lo, hi = spot * (1 - self.strike_width), spot * (1 + self.strike_width)
        strikes = sorted(k for k in chain.strikes if lo <= k <= hi)
        if not expiries or not strikes:
            return pd.DataFrame(), (
                f"no expiry within {self.min_dte}..{self.max_dte} days or no strike within "
                f"±{self.strike_width:.0%} of {spot:g}"
            )
        candidates = [
            self.api.Option(
                stock.symbol,
                expiry,
                strike,
                right,
                "SMART",
                multiplier=chain.multiplier,
                currency="USD",
                tradingClass=chain.tradingClass,
            )
            for expiry in sorted(expiries)
            for strike in strikes
            for right in ("C", "P")
        ]
        contracts = []
        for batch in _chunks(candidates, self.batch_size):
            contracts += self._call(
                "qualifyContracts",
                symbol,
                f"session {day}",
                lambda batch=batch: self.ib.qualifyContracts(*batch),
                messages=len(batch),
            )
        if not contracts:
            return pd.DataFrame(), "IB qualified none of the contracts in the window"
        tickers = []
        for batch in _chunks(contracts, self.batch_size):
            tickers += self._quote_batch(symbol, day, batch)
        frame = self._quote_rows(symbol, day, spot, tickers)
        if frame.empty:
            return frame, f"none of {len(tickers)} quotes was usable"
        return frame, None

    def _complete(self, ticker: Any) -> bool:
        if math.isnan(_quote(ticker.bid)) or math.isnan(_quote(ticker.ask)):
            return False
        if ticker.modelGreeks is None:
            return False
        if "101" in self.generic_ticks.split(","):
            right = getattr(ticker.contract, "right", "")
            oi = ticker.callOpenInterest if right == "C" else ticker.putOpenInterest
            return not math.isnan(_value(oi))
        return True

    def _quote_batch(self, symbol: str, day: dt.date, contracts: Sequence[Any]) -> list[Any]:
        """Request one batch's quotes, wait until complete or timed out, release the lines."""
        snapshot = not self.generic_ticks
        tickers = [
            self._call(
                "reqMktData",
                symbol,
                f"session {day}",
                lambda c=c: self.ib.reqMktData(c, self.generic_ticks, snapshot, False),
            )
            for c in contracts
        ]
        polls = max(1, math.ceil(self.snapshot_timeout / self.poll_interval))
        for _ in range(polls):
            if all(self._complete(t) for t in tickers):
                break
            self._sleep(self.poll_interval)
        if not snapshot:
            for c in contracts:
                self._call(
                    "cancelMktData", symbol, f"session {day}", lambda c=c: self.ib.cancelMktData(c)
                )
        return tickers

    def _quote_rows(
        self, symbol: str, day: dt.date, spot: float, tickers: Sequence[Any]
    ) -> pd.DataFrame:
        rows, dropped = [], {"missing bid/ask": [], "crossed (bid > ask)": [], "not live": []}
        for t in tickers:
            c = t.contract
            expiry = dt.datetime.strptime(c.lastTradeDateOrContractMonth[:8], "%Y%m%d").date()
            bid, ask = _quote(t.bid), _quote(t.ask)
            label = f"{expiry} {c.strike:g} {c.right} (bid {bid:g}, ask {ask:g})"
            if getattr(t, "marketDataType", LIVE) != LIVE:
                dropped["not live"].append(label)
                continue
            if math.isnan(bid) or math.isnan(ask) or ask <= 0:
                dropped["missing bid/ask"].append(label)
                continue
            if bid > ask:
                dropped["crossed (bid > ask)"].append(label)
                continue
            greeks = t.modelGreeks
            oi = t.callOpenInterest if c.right == "C" else t.putOpenInterest
            volume = _value(t.volume)
            rows.append(
                {
                    "session": pd.Timestamp(day),
                    "symbol": symbol,
                    "expiry": pd.Timestamp(expiry),
                    "expiry_type": expiry_kind(expiry),
                    "dte": (expiry - day).days,
                    "strike": float(c.strike),
                    "right": c.right,
                    "bid": bid,
                    "ask": ask,
                    "mid": (bid + ask) / 2.0,
                    "model_price": _value(getattr(greeks, "optPrice", None)),
                    "volume": 0.0 if math.isnan(volume) else round(volume),
                    "open_interest": 0.0 if math.isnan(_value(oi)) else round(_value(oi)),
                    "implied_vol": _value(getattr(greeks, "impliedVol", None)),
                    "delta": _value(getattr(greeks, "delta", None)),
                    "gamma": _value(getattr(greeks, "gamma", None)),
                    "vega": _value(getattr(greeks, "vega", None)),
                    "theta": _value(getattr(greeks, "theta", None)),
                    "pv_dividend": _value(getattr(greeks, "pvDividend", None)),
                    "underlying_price": spot,
                }
            )
        count = sum(len(v) for v in dropped.values())
        if count:
            parts = ", ".join(f"{len(v)} {k}" for k, v in dropped.items() if v)
            first = "; ".join(label for v in dropped.values() for label in v[:2])
            self.warnings.append(
                f"ibkr {day} {symbol}: dropped {count} of {len(tickers)} quotes: {parts} "
                f"(e.g. {first})"
            )
        return pd.DataFrame(rows)

    def _fill_and_convert(self, chain: pd.DataFrame, day: dt.date) -> pd.DataFrame:
        """Units to the project's conventions, and what IB left out from Black-Scholes."""
        out = chain.copy()
        spot = out["underlying_price"].to_numpy(float)
        strike = out["strike"].to_numpy(float)
        is_call = (out["right"] == "C").to_numpy()
        t = np.maximum(out["dte"].to_numpy(float), 0.5) / 365.0
        # IB's model discounts dividends in dollars; as a continuous yield over the option's
        # life: S - PV(D) = S exp(-q t).
        pv = out["pv_dividend"].to_numpy(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = -np.log1p(-pv / spot) / t
        q = np.where(np.isfinite(q) & (pv > 0) & (pv < spot), q, 0.0).clip(0.0, 0.25)
        out["dividend_yield"] = q
        out["rate"] = self.rate
        origin = f"ibkr {day}"

        iv = out["implied_vol"].to_numpy(float)
        solved = bs.implied_vol(out["mid"].to_numpy(float), spot, strike, t, self.rate, q, is_call)
        given, note = _rescale(iv, solved, 100.0, "implied volatility", origin)
        if note:
            self._warn(note)
        lacking = np.isnan(given)
        if lacking.any():
            self._warn(
                f"{origin}: IB gave no implied vol for {int(lacking.sum())} of {len(out)} "
                "quotes; solved from the mid with Black-Scholes"
            )
        iv = np.where(lacking, solved, given)
        out["implied_vol"] = iv
        reference = bs.greeks(spot, strike, t, iv, self.rate, q, is_call)
        factors = {"delta": None, "gamma": None, "vega": 100.0, "theta": 365.0}
        for name, factor in factors.items():
            values = out[name].to_numpy(float)
            if factor is not None:
                values, note = _rescale(values, reference[name], factor, name, origin)
                if note:
                    self._warn(note)
            lacking = np.isnan(values) & np.isfinite(iv)
            if lacking.any():
                self._warn(
                    f"{origin}: IB gave no {name} for {int(lacking.sum())} of {len(out)} "
                    "quotes; computed with Black-Scholes at the implied vol"
                )
            out[name] = np.where(np.isnan(values), reference[name], values)
        model = out["model_price"].to_numpy(float)
        out["theo"] = np.where(np.isfinite(model), model, out["mid"].to_numpy(float))
        out["modelled"] = False
        out["source"] = SOURCE
        return out

    def _check_implied_vols(self, chain: pd.DataFrame, day: dt.date) -> None:
        """The market assets' implied-vol rule, with their thresholds, on the snapshot."""
        found = _IV_RULE.fn(chain, session=day, policy=self.policy)
        if not found:
            return
        counts: dict[str, int] = {}
        for violation in found.examples:
            counts[violation.symbol] = counts.get(violation.symbol, 0) + 1
        tickers = ", ".join(sorted(counts, key=lambda s: -counts[s]))
        raise MarketDataError(
            f"ibkr: session {day}, ticker(s) {tickers}: rule {_IV_RULE.name} "
            f"({_IV_RULE.description}) fails for {found.count} of {len(chain)} quotes; "
            f"first: {found.examples[0].describe()}. IB reports stale or tiny implied vols "
            "when the market is closed or its data is not live; the snapshot is unusable"
        )
