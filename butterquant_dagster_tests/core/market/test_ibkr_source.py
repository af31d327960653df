"""The IBKR market source against a fake ``IB`` that returns real ib_insync objects."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from eventkit import Event
from ib_insync import BarData, OptionChain, OptionComputation, Ticker

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.ibkr import IBKRMarketSource, Throttle
from butterquant_dagster.core.market.schemas import DAILY_BARS, OPTION_CHAINS, dtype_problems
from butterquant_dagster.core.market.source import MarketDataError
from butterquant_dagster.core.options import black_scholes as bs

ET = calendar.EXCHANGE_TZ
SESSION = dt.date(2024, 3, 6)  # a Wednesday, EST
SPOT = 101.0
IV = 0.30
EXPIRATIONS = ["20240308", "20240315", "20240322", "20240517"]  # 2, 9, 16, 72 days
STRIKES = [85.0, 90.0, 95.0, 100.0, 105.0, 110.0, 115.0]
UNLISTED = {("20240322", 105.0)}  # strikes are a union over expiries: not every one exists
BAR_SESSIONS = calendar.sessions("2024-02-20", "2024-03-08")


def at(day: dt.date, hour: int, minute: int = 0):
    """A clock fixed at a New York wall time, returning UTC like the real one."""
    instant = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ET)
    return lambda: instant.astimezone(dt.UTC)


def universe(*symbols: str) -> pd.DataFrame:
    return pd.DataFrame({"symbol": list(symbols or ("AAPL",)), "sector": "Tech"})


def bar_list(sessions, scale: float = 1.0) -> list[BarData]:
    out = []
    for i, day in enumerate(sessions):
        close = (100.0 + i) * scale
        out.append(
            BarData(
                date=day,
                open=close - 0.5,
                high=close + 1.0,
                low=close - 1.5,
                close=close,
                volume=1_000_000 + i,
            )
        )
    return out


class FakeIB:
    """Just the IB methods the source calls, on fake time; every call is logged."""

    def __init__(
        self,
        *,
        connected: bool = True,
        refuse: bool = False,
        session: dt.date = SESSION,
        expirations=EXPIRATIONS,
        iv: float = IV,
        vega_scale: float = 1.0,
        theta_scale: float = 1.01,
        quote=None,
        late_open_interest: bool = False,
        bars=None,
    ):
        self.connected, self.refuse = connected, refuse
        self.session, self.expirations, self.iv = session, list(expirations), iv
        self.vega_scale, self.theta_scale = vega_scale, theta_scale
        self.quote_hook = quote
        self.late_open_interest = late_open_interest
        self.bars = bars if bars is not None else {}
        self.time = 0.0
        self.sleeps: list[float] = []
        self.log: list[tuple[str, float, int]] = []  # (method, fake time, messages)
        self.history_requests: list[dict] = []
        self.mkt_requests: list[tuple] = []
        self.connect_args: dict | None = None
        self.data_type = None
        self.open_lines = self.max_open_lines = 0
        self.pending: list[Ticker] = []
        self.errorEvent = Event("errorEvent")
        self._ids = 1000

    # connection
    def isConnected(self):
        return self.connected

    def connect(self, host, port, clientId, timeout, readonly):
        self.connect_args = dict(
            host=host, port=port, clientId=clientId, timeout=timeout, readonly=readonly
        )
        if self.refuse:
            raise ConnectionRefusedError(111, f"Connect call failed ('{host}', {port})")
        self.connected = True

    def disconnect(self):
        self.connected = False

    def reqMarketDataType(self, kind):
        self.data_type = kind

    # time
    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.time += seconds
        for ticker in self.pending:
            ticker.callOpenInterest = ticker.putOpenInterest = 4321.0
        self.pending = []

    def monotonic(self):
        return self.time

    def _log(self, name, messages=1):
        self.log.append((name, self.time, messages))

    # requests
    def reqHistoricalData(
        self, contract, endDateTime, durationStr, barSizeSetting, whatToShow, useRTH, formatDate
    ):
        self._log("reqHistoricalData")
        self.history_requests.append(
            dict(
                contract=contract,
                endDateTime=endDateTime,
                durationStr=durationStr,
                barSizeSetting=barSizeSetting,
                whatToShow=whatToShow,
                useRTH=useRTH,
                formatDate=formatDate,
            )
        )
        result = self.bars.get((contract.symbol, whatToShow), [])
        if isinstance(result, Exception):
            raise result
        if not result:
            self.errorEvent.emit(
                7,
                162,
                "Historical Market Data Service error message:HMDS query returned no data",
                contract,
            )
        return result

    def qualifyContracts(self, *contracts):
        self._log("qualifyContracts", len(contracts))
        out = []
        for c in contracts:
            if c.secType == "STK" and c.symbol == "NOPE":
                continue
            if c.secType == "OPT" and (c.lastTradeDateOrContractMonth, c.strike) in UNLISTED:
                continue
            self._ids += 1
            c.conId = self._ids
            out.append(c)
        return out

    def reqTickers(self, *contracts):
        self._log("reqTickers", len(contracts))
        return [
            Ticker(
                contract=c,
                bid=SPOT - 0.01,
                bidSize=100,
                ask=SPOT + 0.01,
                askSize=100,
                last=SPOT,
                lastSize=10,
            )
            for c in contracts
        ]

    def reqSecDefOptParams(self, symbol, exchange, sec_type, con_id):
        self._log("reqSecDefOptParams")
        return [
            OptionChain("CBOE", con_id, symbol, "100", self.expirations[:1], STRIKES[:2]),
            OptionChain("SMART", con_id, symbol, "100", self.expirations, STRIKES),
        ]

    def reqMktData(self, contract, genericTickList="", snapshot=False, regulatorySnapshot=False):
        self._log("reqMktData")
        self.mkt_requests.append((contract, genericTickList, snapshot))
        if not snapshot:
            self.open_lines += 1
            self.max_open_lines = max(self.max_open_lines, self.open_lines)
        ticker = self.quote(contract)
        if self.late_open_interest:
            ticker.callOpenInterest = ticker.putOpenInterest = math.nan
            self.pending.append(ticker)
        return ticker

    def cancelMktData(self, contract):
        self._log("cancelMktData")
        self.open_lines -= 1

    # the market
    def greeks(self, contract):
        expiry = dt.datetime.strptime(contract.lastTradeDateOrContractMonth, "%Y%m%d").date()
        t = max((expiry - self.session).days, 0.5) / 365.0
        call = contract.right == "C"
        price = float(bs.price(SPOT, contract.strike, t, self.iv, 0.04, 0.0, call))
        g = {
            k: float(v)
            for k, v in bs.greeks(SPOT, contract.strike, t, self.iv, 0.04, 0.0, call).items()
        }
        return price, g

    def quote(self, contract) -> Ticker:
        price, g = self.greeks(contract)
        ticker = Ticker(
            contract=contract,
            bid=max(price - 0.05, 0.0),
            bidSize=10,
            ask=price + 0.05,
            askSize=10,
            volume=250.0,
            callOpenInterest=1111.0 if contract.right == "C" else math.nan,
            putOpenInterest=2222.0 if contract.right == "P" else math.nan,
            modelGreeks=OptionComputation(
                0,
                self.iv,
                g["delta"],
                price + 0.01,
                0.0,
                g["gamma"],
                g["vega"] * self.vega_scale,
                g["theta"] * self.theta_scale,
                SPOT,
            ),
        )
        if self.quote_hook is not None:
            self.quote_hook(contract, ticker)
        return ticker


def source_for(fake: FakeIB, *symbols: str, clock=None, **options) -> IBKRMarketSource:
    return IBKRMarketSource(
        fake,
        universe(*symbols),
        rate=0.04,
        clock=clock or at(SESSION, 15, 45),
        monotonic=fake.monotonic,
        **options,
    )


def counts(fake: FakeIB) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, _, _ in fake.log:
        out[name] = out.get(name, 0) + 1
    return out


# ----------------------------------------------------------------------------- bars
def bars_fake(extra: dict | None = None) -> FakeIB:
    bars = {
        ("AAPL", "TRADES"): bar_list(BAR_SESSIONS),
        ("AAPL", "ADJUSTED_LAST"): bar_list(BAR_SESSIONS, scale=0.99),
        ("BRK B", "TRADES"): bar_list(BAR_SESSIONS, scale=4.0),
        ("BRK B", "ADJUSTED_LAST"): bar_list(BAR_SESSIONS, scale=4.0),
    }
    bars.update(extra or {})
    return FakeIB(bars=bars)


AFTER_CLOSE = at(dt.date(2024, 3, 8), 17, 0)
WANTED = [dt.date(2024, 2, 27), dt.date(2024, 2, 28), dt.date(2024, 3, 1)]


def test_bars_conform_keep_requested_sessions_and_fill_prev_close():
    fake = bars_fake()
    source = source_for(fake, "AAPL", "BRK.B", clock=AFTER_CLOSE)
    bars = source.bars(WANTED)

    assert dtype_problems(bars, DAILY_BARS) == []
    assert sorted(bars["session"].dt.date.unique()) == WANTED
    assert len(bars) == 6 and set(bars["symbol"]) == {"AAPL", "BRK.B"}
    assert set(bars["source"]) == {"ibkr"}
    aapl = bars[bars["symbol"] == "AAPL"].set_index(bars["session"][bars["symbol"] == "AAPL"])
    index = {day: i for i, day in enumerate(BAR_SESSIONS)}
    for day in WANTED:
        row = aapl.loc[pd.Timestamp(day)]
        assert row["close"] == 100.0 + index[day]
        # the previous session's close, also for 2024-03-01 whose previous (02-29) was not asked
        assert row["prev_close"] == 100.0 + index[day] - 1
        assert row["adj_close"] == pytest.approx(0.99 * row["close"])
        assert row["volume"] == 1_000_000 + index[day]


def test_bars_request_daily_trades_and_adjusted_bars_of_the_smart_stock():
    fake = bars_fake()
    source_for(fake, "BRK.B", clock=AFTER_CLOSE).bars(WANTED)

    assert [r["whatToShow"] for r in fake.history_requests] == ["TRADES", "ADJUSTED_LAST"]
    for request in fake.history_requests:
        contract = request["contract"]
        assert (contract.secType, contract.symbol, contract.exchange, contract.currency) == (
            "STK",
            "BRK B",
            "SMART",
            "USD",
        )
        assert request["endDateTime"] == ""
        assert request["barSizeSetting"] == "1 day"
        assert request["useRTH"] is True and request["formatDate"] == 1
        # from 2024-02-26 (the session before the first asked, for its prev_close) to now
        assert request["durationStr"] == "12 D"


def test_bars_without_adjusted_bars_use_the_close():
    fake = bars_fake()
    bars = source_for(fake, "AAPL", clock=AFTER_CLOSE, adjusted=False).bars(WANTED)

    assert (bars["adj_close"] == bars["close"]).all()
    assert [r["whatToShow"] for r in fake.history_requests] == ["TRADES"]


def test_bars_ib_returning_nothing_is_an_error_naming_ticker_session_and_ib_error():
    fake = bars_fake()
    with pytest.raises(MarketDataError) as err:
        source_for(fake, "AAPL", "MSFT", clock=AFTER_CLOSE).bars(WANTED)
    message = str(err.value)
    assert "MSFT" in message and "2024-02-27" in message
    assert "IB error 162" in message and "HMDS query returned no data" in message


def test_bars_ib_exception_is_a_market_data_error():
    fake = bars_fake({("AAPL", "TRADES"): ConnectionError("socket closed")})
    with pytest.raises(MarketDataError, match=r"ticker AAPL.*socket closed"):
        source_for(fake, "AAPL", clock=AFTER_CLOSE).bars(WANTED)


def test_bars_gap_inside_the_history_is_an_error_naming_the_session():
    gappy = [b for b in bar_list(BAR_SESSIONS) if b.date != dt.date(2024, 2, 28)]
    fake = bars_fake({("AAPL", "TRADES"): gappy})
    with pytest.raises(MarketDataError, match=r"ticker AAPL on session\(s\) 2024-02-28"):
        source_for(fake, "AAPL", clock=AFTER_CLOSE).bars(WANTED)


def test_bars_before_a_listing_are_skipped_with_a_warning_and_first_prev_close_is_null():
    listed = [s for s in BAR_SESSIONS if s >= dt.date(2024, 2, 28)]
    fake = bars_fake(
        {("NEWCO", "TRADES"): bar_list(listed), ("NEWCO", "ADJUSTED_LAST"): bar_list(listed)}
    )
    source = source_for(fake, "NEWCO", clock=AFTER_CLOSE)
    bars = source.bars(WANTED)

    assert list(bars["session"].dt.date) == [dt.date(2024, 2, 28), dt.date(2024, 3, 1)]
    assert math.isnan(bars["prev_close"].iloc[0])
    # listed 02-28 (100), 02-29 (101, not asked), 03-01 (102)
    assert list(bars["close"]) == [100.0, 102.0] and bars["prev_close"].iloc[1] == 101.0
    assert any("NEWCO has no bars before 2024-02-28" in w for w in source.warnings)


def test_bars_of_a_session_that_has_not_closed_are_refused():
    fake = bars_fake()
    source = source_for(fake, "AAPL", clock=at(dt.date(2024, 3, 8), 15, 0))
    with pytest.raises(MarketDataError, match=r"2024-03-08.*before their close"):
        source.bars([dt.date(2024, 3, 8)])
    assert fake.history_requests == []


# ----------------------------------------------------------------------------- chains
def test_chain_conforms_and_covers_only_the_scan_window():
    fake = FakeIB()
    chain = source_for(fake).chains(SESSION)

    assert dtype_problems(chain, OPTION_CHAINS) == []
    assert set(chain["session"].dt.date) == {SESSION}
    assert sorted(chain["expiry"].dt.date.unique()) == [dt.date(2024, 3, 15), dt.date(2024, 3, 22)]
    assert sorted(chain["strike"].unique()) == [95.0, 100.0, 105.0, 110.0]  # within ±10% of 101
    assert len(chain) == 2 * 4 * 2 - 2  # the unlisted 2024-03-22 105 call and put
    kinds = dict(zip(chain["expiry"].dt.date, chain["expiry_type"], strict=False))
    assert kinds == {dt.date(2024, 3, 15): "monthly", dt.date(2024, 3, 22): "weekly"}
    assert (chain["dte"] == (chain["expiry"] - chain["session"]).dt.days).all()
    assert set(chain["source"]) == {"ibkr"} and not chain["modelled"].any()
    np.testing.assert_allclose(chain["mid"], (chain["bid"] + chain["ask"]) / 2)
    # theo is IB's model price, which the fake sets a cent above the mid
    np.testing.assert_allclose(chain["theo"], chain["mid"] + 0.01, atol=1e-9)
    calls, puts = chain[chain["right"] == "C"], chain[chain["right"] == "P"]
    assert set(calls["open_interest"]) == {1111} and set(puts["open_interest"]) == {2222}
    assert set(chain["volume"]) == {250}
    assert set(chain["underlying_price"]) == {SPOT} and set(chain["rate"]) == {0.04}
    assert fake.data_type == 1  # live quotes only
    assert all(generic == "101" and snapshot is False for _, generic, snapshot in fake.mkt_requests)


@pytest.mark.parametrize(
    ("day", "hour", "minute", "expected"),
    [
        (SESSION, 9, 15, "has not opened yet"),
        (SESSION, 16, 30, "is closed: it closed at 2024-03-06 16:00 ET"),
        (dt.date(2024, 11, 29), 13, 30, r"closed at 2024-11-29 13:00 ET \(early close\)"),
        (dt.date(2024, 7, 4), 12, 0, "not an NYSE session"),
    ],
    ids=["before-open", "after-close", "early-close", "holiday"],
)
def test_chain_outside_market_hours_is_refused_before_asking_ib(day, hour, minute, expected):
    fake = FakeIB(session=day)
    with pytest.raises(MarketDataError, match=expected) as err:
        source_for(fake, clock=at(day, hour, minute)).chains(day)
    assert "unusable" in str(err.value) or "not an NYSE session" in str(err.value)
    assert fake.log == []


def test_chain_of_a_past_session_is_refused_even_during_todays_hours():
    fake = FakeIB()
    with pytest.raises(MarketDataError, match="is closed"):
        source_for(fake, clock=at(dt.date(2024, 3, 7), 12, 0)).chains(SESSION)


def test_chain_on_an_early_close_day_before_13_is_taken():
    day = dt.date(2024, 11, 29)
    fake = FakeIB(session=day, expirations=["20241206", "20241220"])
    chain = source_for(fake, clock=at(day, 12, 30)).chains(day)
    assert set(chain["dte"]) == {7, 21}


def test_market_closing_during_the_snapshot_is_an_error():
    instants = iter(
        [
            dt.datetime(2024, 3, 6, 15, 59, tzinfo=ET),
            dt.datetime(2024, 3, 6, 16, 1, tzinfo=ET),
        ]
    )
    fake = FakeIB()
    source = source_for(fake, clock=lambda: next(instants))
    with pytest.raises(MarketDataError, match="closed at 16:00 ET while the snapshot"):
        source.chains(SESSION)


def test_implausible_implied_vols_are_an_error_naming_ticker_session_and_rule():
    fake = FakeIB(iv=0.01)  # what IB reports for a market that is not trading
    with pytest.raises(MarketDataError) as err:
        source_for(fake, "AAPL").chains(SESSION)
    message = str(err.value)
    assert "implied_vol_plausible" in message
    assert "AAPL" in message and "2024-03-06" in message


def test_greeks_in_ib_units_are_kept_as_given():
    fake = FakeIB()
    source = source_for(fake)
    chain = source.chains(SESSION)
    t = chain["dte"].to_numpy(float) / 365.0
    ref = bs.greeks(SPOT, chain["strike"], t, IV, 0.04, 0.0, chain["right"] == "C")

    np.testing.assert_allclose(chain["implied_vol"], IV)
    np.testing.assert_allclose(chain["vega"], ref["vega"], rtol=1e-9)
    # IB's own theta (1% off Black-Scholes in the fake) is kept, not recomputed
    np.testing.assert_allclose(chain["theta"], 1.01 * ref["theta"], rtol=1e-9)
    assert not any("divided by" in w for w in source.warnings)


def test_vega_per_unit_vol_and_theta_per_year_are_converted_with_a_warning():
    fake = FakeIB(vega_scale=100.0, theta_scale=365.0)
    source = source_for(fake)
    chain = source.chains(SESSION)
    t = chain["dte"].to_numpy(float) / 365.0
    ref = bs.greeks(SPOT, chain["strike"], t, IV, 0.04, 0.0, chain["right"] == "C")

    np.testing.assert_allclose(chain["vega"], ref["vega"], rtol=1e-9)
    np.testing.assert_allclose(chain["theta"], ref["theta"], rtol=1e-9)
    assert any("vega is 100 times" in w and "divided by 100" in w for w in source.warnings)
    assert any("theta is 365 times" in w and "divided by 365" in w for w in source.warnings)


def test_missing_and_crossed_quotes_are_dropped_and_counted():
    def damage(contract, ticker):
        if contract.lastTradeDateOrContractMonth == "20240315" and contract.strike == 95.0:
            if contract.right == "C":
                ticker.bid = math.nan  # no quote
            else:
                ticker.bid, ticker.ask = 2.0, 1.5  # crossed
        if contract.lastTradeDateOrContractMonth == "20240322" and contract.strike == 110.0:
            ticker.ask = -1.0  # IB's "no ask"

    fake = FakeIB(quote=damage)
    source = source_for(fake)
    chain = source.chains(SESSION)

    assert len(chain) == 14 - 4
    assert not ((chain["strike"] == 95.0) & (chain["expiry"] == "2024-03-15")).any()
    [warning] = [w for w in source.warnings if "dropped" in w]
    assert "AAPL" in warning and "dropped 4 of 14 quotes" in warning
    assert "3 missing bid/ask" in warning and "1 crossed (bid > ask)" in warning


def test_quotes_that_are_not_live_are_dropped():
    def frozen(contract, ticker):
        if contract.strike == 100.0:
            ticker.marketDataType = 2

    source = source_for(FakeIB(quote=frozen))
    chain = source.chains(SESSION)
    assert 100.0 not in set(chain["strike"])
    assert any("4 not live" in w for w in source.warnings)


def test_a_snapshot_without_any_usable_quote_is_an_error_not_an_empty_frame():
    def blank(contract, ticker):
        ticker.bid = ticker.ask = math.nan

    source = source_for(FakeIB(quote=blank), snapshot_timeout=1.0, poll_interval=0.5)
    with pytest.raises(MarketDataError, match=r"session 2024-03-06: no ticker has a usable"):
        source.chains(SESSION)
    assert source.skipped_tickers == ["AAPL"]


def test_an_unknown_stock_is_an_error_naming_the_ticker():
    with pytest.raises(MarketDataError, match=r"does not know the stock NOPE.*2024-03-06"):
        source_for(FakeIB(), "NOPE").chains(SESSION)


def test_missing_model_greeks_are_computed_from_the_mid_and_reported():
    def no_model(contract, ticker):
        if contract.right == "P":
            ticker.modelGreeks = None
        else:  # ib_insync passes IB's "not computed" vega (-2) through
            ticker.modelGreeks = ticker.modelGreeks._replace(vega=-2.0)

    source = source_for(FakeIB(quote=no_model), snapshot_timeout=1.0, poll_interval=0.5)
    chain = source.chains(SESSION)
    t = chain["dte"].to_numpy(float) / 365.0
    ref = bs.greeks(SPOT, chain["strike"], t, IV, 0.04, 0.0, chain["right"] == "C")
    puts = (chain["right"] == "P").to_numpy()

    # the fake's mid is the Black-Scholes price at IV, so the solved vol is IV again
    np.testing.assert_allclose(chain["implied_vol"], IV, rtol=1e-5)
    np.testing.assert_allclose(chain["vega"], ref["vega"], rtol=1e-4)
    np.testing.assert_allclose(chain["delta"][puts], ref["delta"][puts], rtol=1e-4)
    np.testing.assert_allclose(chain["theo"][puts], chain["mid"][puts])  # no model price
    assert any("no implied vol for 7 of 14" in w for w in source.warnings)
    assert any("no vega for 14 of 14" in w for w in source.warnings)


def test_ib_dividends_become_a_continuous_yield():
    def dividend(contract, ticker):
        ticker.modelGreeks = ticker.modelGreeks._replace(pvDividend=0.5)

    chain = source_for(FakeIB(quote=dividend)).chains(SESSION)
    t = chain["dte"].to_numpy(float) / 365.0
    np.testing.assert_allclose(chain["dividend_yield"], -np.log(1 - 0.5 / SPOT) / t)


# ----------------------------------------------------------------------------- pacing
def test_requests_are_batched_and_throttled():
    fake = FakeIB()
    interval = 0.02
    source = source_for(fake, batch_size=4, min_interval=interval)
    source.chains(SESSION)
    calls = counts(fake)

    assert calls["qualifyContracts"] == 1 + 4  # the stock, then 16 options in batches of 4
    assert calls["reqMktData"] == 14 and calls["cancelMktData"] == 14
    assert fake.max_open_lines == 4 and fake.open_lines == 0  # never more lines than a batch
    assert max(n for name, _, n in fake.log if name == "qualifyContracts") == 4
    # every request waits min_interval per message of the one before it
    for (_, before, messages), (_, after, _) in zip(fake.log, fake.log[1:], strict=False):
        assert after - before >= interval * messages - 1e-12
    assert source.throttle.messages == sum(n for _, _, n in fake.log)


def test_throttle_sleeps_only_as_long_as_needed():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(0.1, sleep, lambda: now[0])
    throttle.wait()  # first: immediately
    throttle.wait(3)  # 0.1 after the first
    now[0] += 1.0  # plenty of time passes
    throttle.wait()  # owed 0.3 after the second, but 1.0 passed: no sleep
    throttle.wait()
    assert slept == pytest.approx([0.1, 0.1])
    assert throttle.requests == 4 and throttle.messages == 6


def test_batch_waits_for_streamed_open_interest():
    fake = FakeIB(late_open_interest=True)
    source = source_for(fake, poll_interval=0.25)
    chain = source.chains(SESSION)

    assert set(chain["open_interest"]) == {4321}
    assert 0.25 in fake.sleeps  # one poll per batch until the ticks were in
    assert fake.sleeps.count(0.25) == 1


def test_plain_snapshots_without_generic_ticks_need_no_cancel():
    fake = FakeIB()
    chain = source_for(fake, generic_ticks="").chains(SESSION)

    assert all(snapshot is True and generic == "" for _, generic, snapshot in fake.mkt_requests)
    assert "cancelMktData" not in counts(fake)
    assert len(chain) == 14


def test_an_incomplete_batch_times_out_after_the_configured_polls():
    def never(contract, ticker):
        ticker.modelGreeks = None

    fake = FakeIB(quote=never)
    source_for(fake, snapshot_timeout=2.0, poll_interval=0.5).chains(SESSION)
    assert fake.sleeps.count(0.5) == 4  # one batch of 14, 2.0 / 0.5 polls


# ----------------------------------------------------------------------------- connection
def set_ib_env(monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_IB_HOST", "10.1.2.3")
    monkeypatch.setenv("BUTTERQUANT_IB_PORT", "4002")
    monkeypatch.setenv("BUTTERQUANT_IB_CLIENT_ID", "17")


def test_from_settings_connects_read_only_with_the_next_client_id(monkeypatch):
    set_ib_env(monkeypatch)
    made: list[FakeIB] = []

    def factory():
        made.append(
            FakeIB(
                connected=False,
                bars={
                    ("AAPL", "TRADES"): bar_list(BAR_SESSIONS),
                    ("AAPL", "ADJUSTED_LAST"): bar_list(BAR_SESSIONS),
                },
            )
        )
        return made[-1]

    source = IBKRMarketSource.from_settings(universe(), ib_factory=factory, clock=AFTER_CLOSE)
    assert made == []  # nothing connects before data is asked for
    source.bars(WANTED[:1])

    assert made[0].connect_args == dict(
        host="10.1.2.3", port=4002, clientId=18, timeout=10.0, readonly=True
    )
    assert made[0].data_type == 1
    source.close()
    assert not made[0].isConnected()


def test_nothing_listening_is_a_clear_error(monkeypatch):
    set_ib_env(monkeypatch)
    source = IBKRMarketSource.from_settings(
        universe(), ib_factory=lambda: FakeIB(connected=False, refuse=True), clock=AFTER_CLOSE
    )
    with pytest.raises(MarketDataError) as err:
        source.bars(WANTED)
    message = str(err.value).lower()
    assert "start tws/ib gateway and enable the api on port 4002" in message
    assert "10.1.2.3:4002" in message and "client id 18" in message


def test_an_injected_connected_ib_is_used_as_is():
    fake = bars_fake()
    source_for(fake, "AAPL", clock=AFTER_CLOSE).bars(WANTED)
    assert fake.connect_args is None


def test_truth_is_none_and_the_name_is_ibkr():
    source = source_for(FakeIB())
    assert source.truth([SESSION]) is None
    assert source.name == "ibkr"
