"""The synthetic market: determinism, bar and chain consistency, and its stylised facts."""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar as cal
from butterquant_dagster.core.market.chain_model import (
    INDEX_LIKE_LIQUIDITY,
    LIQUID_LIQUIDITY,
    atm_spread_pct,
    strike_step,
)
from butterquant_dagster.core.market.synthetic import SyntheticConfig, SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe

D = dt.date
EPOCH = SyntheticConfig().epoch
BACKFILL = cal.sessions(D(2016, 3, 1), D(2016, 3, 14))
LONG_RUN = cal.sessions(EPOCH, D(2024, 12, 31))  # about 2500 sessions


@pytest.fixture(scope="module")
def base():
    return read_universe_file()


@pytest.fixture(scope="module")
def u20(base):
    return select_universe(base, size=20)


@pytest.fixture(scope="module")
def market(u20):
    return SyntheticMarket(u20)


@pytest.fixture(scope="module")
def truth(market):
    return market.truth(LONG_RUN)


def _rows(frame: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    return frame[frame["session"] == pd.Timestamp(session)].reset_index(drop=True)


# ---------------------------------------------------------------------- determinism


def test_backfill_order_does_not_matter(u20):
    reference = SyntheticMarket(u20)
    ref_bars = reference.bars(BACKFILL)
    ref_chains = {day: reference.chains(day) for day in BACKFILL}
    ref_truth = reference.truth(BACKFILL)
    assert len(ref_bars) == 20 * len(BACKFILL)

    # A fresh market generating the sessions one at a time, latest first.
    backwards = SyntheticMarket(u20)
    for day in reversed(BACKFILL):
        pd.testing.assert_frame_equal(backwards.bars([day]), _rows(ref_bars, day), check_exact=True)
        pd.testing.assert_frame_equal(backwards.chains(day), ref_chains[day], check_exact=True)

    # A fresh market given the sessions shuffled, in one call.
    shuffled = list(BACKFILL)
    random.Random(11).shuffle(shuffled)
    assert shuffled != BACKFILL
    mixed = SyntheticMarket(u20)
    mixed_bars = mixed.bars(shuffled)
    assert [d.date() for d in mixed_bars["session"].unique()] == shuffled
    pd.testing.assert_frame_equal(
        mixed_bars.sort_values(["session"], kind="stable").reset_index(drop=True),
        ref_bars,
        check_exact=True,
    )
    for day in shuffled:
        pd.testing.assert_frame_equal(mixed.chains(day), ref_chains[day], check_exact=True)
    pd.testing.assert_frame_equal(
        mixed.truth(shuffled).sort_values("session").reset_index(drop=True),
        ref_truth,
        check_exact=True,
    )

    # One session alone in a fresh market, and after simulating years further ahead.
    middle = BACKFILL[4]
    lone = SyntheticMarket(u20)
    pd.testing.assert_frame_equal(lone.chains(middle), ref_chains[middle], check_exact=True)
    pd.testing.assert_frame_equal(lone.bars([middle]), _rows(ref_bars, middle), check_exact=True)
    ahead = SyntheticMarket(u20)
    ahead.bars([D(2024, 6, 3)])
    pd.testing.assert_frame_equal(ahead.bars(BACKFILL), ref_bars, check_exact=True)
    pd.testing.assert_frame_equal(ahead.chains(middle), ref_chains[middle], check_exact=True)


def test_a_tickers_bars_do_not_depend_on_the_universe(base, u20, market):
    bars20 = market.bars(BACKFILL)
    wide = SyntheticMarket(select_universe(base, size=60))
    bars60 = wide.bars(BACKFILL)
    assert len(bars60) == 60 * len(BACKFILL)
    subset = bars60[bars60["symbol"].isin(u20["symbol"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, bars20, check_exact=True)

    # The same tickers listed in another order get the same bars too.
    reordered = SyntheticMarket(u20.iloc[::-1].reset_index(drop=True))
    again = reordered.bars(BACKFILL).sort_values(["session", "symbol"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        again, bars20.sort_values(["session", "symbol"]).reset_index(drop=True), check_exact=True
    )

    # The market factor and the hidden regime are the same for every universe.
    pd.testing.assert_frame_equal(wide.truth(BACKFILL), market.truth(BACKFILL), check_exact=True)

    # Model values (not the randomised quotes) of a ticker's chain are universe-independent.
    day = BACKFILL[2]
    model_columns = [
        "symbol",
        "expiry",
        "strike",
        "right",
        "theo",
        "implied_vol",
        "delta",
        "gamma",
        "vega",
        "theta",
        "underlying_price",
        "dividend_yield",
    ]
    chain60 = wide.chains(day)
    chain60 = chain60[chain60["symbol"].isin(u20["symbol"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        chain60[model_columns], market.chains(day)[model_columns], check_exact=True
    )


def test_a_different_seed_changes_prices(u20, market):
    same = SyntheticMarket(u20, SyntheticConfig(seed=7))
    pd.testing.assert_frame_equal(same.bars(BACKFILL), market.bars(BACKFILL), check_exact=True)
    other = SyntheticMarket(u20, SyntheticConfig(seed=8))
    a = market.bars(BACKFILL)
    b = other.bars(BACKFILL)
    assert (a["symbol"] == b["symbol"]).all()
    assert (a["close"] != b["close"]).all()
    assert (a["open"] != b["open"]).all()
    assert not market.chains(BACKFILL[0])["theo"].equals(other.chains(BACKFILL[0])["theo"])
    assert not np.array_equal(
        market.truth(LONG_RUN[:500])["market_return"], other.truth(LONG_RUN[:500])["market_return"]
    )


def test_invalid_sessions_and_setups_raise(u20, market):
    with pytest.raises(ValueError, match="epoch"):
        market.bars([D(2014, 12, 31)])
    with pytest.raises(cal.CalendarError, match="weekend"):
        market.bars([D(2016, 3, 5)])
    with pytest.raises(cal.CalendarError, match="holiday"):
        market.chains(D(2016, 3, 25))  # Good Friday
    with pytest.raises(ValueError, match="epoch"):
        SyntheticMarket(u20, SyntheticConfig(epoch=D(2015, 1, 3)))
    with pytest.raises(ValueError, match="ticker"):
        SyntheticMarket(u20.iloc[0:0])


# ---------------------------------------------------------------------- bars


def test_bars_are_consistent(market, u20):
    days = LONG_RUN[:260]
    bars = market.bars(days)
    assert len(bars) == 20 * len(days)
    assert not bars.duplicated(["session", "symbol"]).any()
    assert (bars["source"] == "synthetic").all()
    prices = bars[["open", "high", "low", "close", "adj_close"]]
    assert np.isfinite(prices.to_numpy()).all()
    assert (prices > 0).all().all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] > bars["low"]).all()
    assert (bars["volume"] >= 0).all() and (bars["volume"] > 0).mean() > 0.99
    # Dividends reinvested: the total-return index never trails the close.
    assert (bars["adj_close"] >= bars["close"]).all()

    for _, one in bars.groupby("symbol", sort=False):
        one = one.sort_values("session")
        # The epoch is each ticker's first bar: no previous close.
        assert math.isnan(one["prev_close"].iloc[0])
        assert one["adj_close"].iloc[0] == one["close"].iloc[0]
        np.testing.assert_array_equal(
            one["prev_close"].to_numpy()[1:], one["close"].to_numpy()[:-1]
        )

    # The previous close across a standalone request equals the earlier session's close.
    day = BACKFILL[5]
    before = cal.previous_session(day)
    lone = SyntheticMarket(u20).bars([day])
    np.testing.assert_array_equal(lone["prev_close"], market.bars([before])["close"])


def test_returns_have_plausible_scale(market):
    bars = market.bars(LONG_RUN[:500])
    close = bars.pivot(index="session", columns="symbol", values="close")
    log_returns = np.log(close).diff().dropna()
    annual_vol = log_returns.std() * math.sqrt(252)
    assert ((annual_vol > 0.1) & (annual_vol < 1.2)).all()
    # Tickers co-move through the market factor.
    corr = log_returns.corr().to_numpy()
    assert corr[np.triu_indices_from(corr, k=1)].mean() > 0.1


# ---------------------------------------------------------------------- chains


@pytest.fixture(scope="module")
def chain_sample(market, truth):
    regimes = truth.set_index("session")["regime"]
    picks = [EPOCH, D(2016, 2, 11), D(2018, 12, 24), D(2020, 3, 16), D(2023, 4, 6)]
    for name in ("bear", "bull", "neutral"):
        picks.append(regimes.index[regimes == name][3].date())
    picks.append(D(2016, 3, 18))  # a monthly expiry day
    return {day: market.chains(day) for day in picks}


def _sorted_groups(chain: pd.DataFrame):
    """The chain sorted by (symbol, expiry, right, strike), with a same-group mask."""
    ordered = chain.sort_values(["symbol", "expiry", "right", "strike"]).reset_index(drop=True)
    key = (
        ordered["symbol"].astype(str)
        + "|"
        + ordered["expiry"].astype(str)
        + "|"
        + ordered["right"].astype(str)
    )
    same = key.to_numpy()[1:] == key.to_numpy()[:-1]
    return ordered, same


def test_chain_theo_is_monotone_and_convex_in_strike(chain_sample):
    for day, chain in chain_sample.items():
        assert len(chain) > 1000, day
        ordered, same = _sorted_groups(chain)
        strike = ordered["strike"].to_numpy()
        theo = ordered["theo"].to_numpy()
        spot = ordered["underlying_price"].to_numpy()
        is_call = (ordered["right"] == "C").to_numpy()
        dk = np.diff(strike)
        assert (dk[same] > 0).all(), day  # strikes strictly increase within a group
        dv = np.diff(theo)
        tol = 1e-9 * spot[1:]
        calls = same & is_call[1:]
        puts = same & ~is_call[1:]
        assert (dv[calls] <= tol[calls]).all(), f"call value rises with strike on {day}"
        assert (dv[puts] >= -tol[puts]).all(), f"put value falls with strike on {day}"
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = dv / dk
        both = same[1:] & same[:-1]
        # Convexity on a non-uniform grid: slopes between neighbours never decrease.
        assert (np.diff(slope)[both] >= -1e-9 * spot[2:][both]).all(), day
        # Slopes are bounded by the discount factor: |dV/dK| <= 1.
        assert (np.abs(slope[same]) <= 1.0 + 1e-9).all(), day


def test_chain_quotes_are_sane_and_on_the_tick_grid(chain_sample):
    for day, chain in chain_sample.items():
        bid, ask = chain["bid"].to_numpy(), chain["ask"].to_numpy()
        assert (bid >= 0).all() and (bid < ask).all(), day
        np.testing.assert_allclose(chain["mid"], (bid + ask) / 2, atol=1e-9)
        for price in (bid, ask):
            # $0.01 below $3, $0.05 at and above (the rule of chain_model.tick_size).
            pennies = price * 100.0
            assert np.allclose(pennies, np.round(pennies), atol=1e-6), day
            high = price >= 3.0
            nickels = price[high] * 20.0
            assert np.allclose(nickels, np.round(nickels), atol=1e-6), (
                day,
                price[high][np.abs(nickels - np.round(nickels)) > 1e-6][:5],
            )
        # The model value lies inside the quoted market.
        theo = chain["theo"].to_numpy()
        assert (bid <= theo + 1e-9).all() and (theo <= ask + 1e-9).all(), day
        assert (chain["open_interest"] >= 0).all() and (chain["volume"] >= 0).all()
        assert (chain["volume"] <= chain["open_interest"]).all()


def test_chain_strikes_and_expiries_are_listed(chain_sample, market):
    bars_by_day = market.bars(list(chain_sample))
    for day, chain in chain_sample.items():
        spot = chain["underlying_price"].to_numpy()
        steps = strike_step(spot)
        units = chain["strike"].to_numpy() / steps
        assert np.allclose(units, np.round(units), atol=1e-9), day
        assert (chain["strike"] > 0).all()

        listed = cal.listed_expiries(day, max_days=90, weekly_weeks=6)
        assert {e.date: e.kind for e in listed} == {
            ts.date(): kind
            for ts, kind in chain[["expiry", "expiry_type"]]
            .drop_duplicates()
            .itertuples(index=False)
        }, day
        expiry_dates = chain["expiry"].dt.date
        assert (chain["dte"] == [(e - day).days for e in expiry_dates]).all()
        assert (chain["session"] == pd.Timestamp(day)).all()
        assert not chain.duplicated(["session", "symbol", "expiry", "strike", "right"]).any()

        # Every (symbol, expiry) has calls and puts on the same strikes around the spot.
        for (_, _), group in chain.groupby(["symbol", "expiry"]):
            calls = group.loc[group["right"] == "C", "strike"].tolist()
            puts = group.loc[group["right"] == "P", "strike"].tolist()
            assert calls == puts and len(calls) >= 11
            s = group["underlying_price"].iloc[0]
            assert min(calls) < s < max(calls)

        # The chain's underlying price is the session's close.
        closes = _rows(bars_by_day, day).set_index("symbol")["close"]
        per_symbol = chain.groupby("symbol")["underlying_price"].agg(["min", "max"])
        assert (per_symbol["min"] == per_symbol["max"]).all()
        np.testing.assert_array_equal(per_symbol["min"], closes.loc[per_symbol.index])
        assert set(per_symbol.index) == set(closes.index)


def test_chain_theo_satisfies_put_call_parity(chain_sample):
    for day, chain in chain_sample.items():
        keys = ["symbol", "expiry", "strike"]
        calls = chain[chain["right"] == "C"].set_index(keys)
        puts = chain[chain["right"] == "P"].set_index(keys).loc[calls.index]
        t = np.maximum(calls["dte"].to_numpy(), 0.5) / 365.0
        s = calls["underlying_price"].to_numpy()
        k = calls.index.get_level_values("strike").to_numpy()
        q = calls["dividend_yield"].to_numpy()
        r = calls["rate"].to_numpy()
        lhs = calls["theo"].to_numpy() - puts["theo"].to_numpy()
        rhs = s * np.exp(-q * t) - k * np.exp(-r * t)
        np.testing.assert_allclose(lhs, rhs, atol=1e-8 * s.max(), err_msg=str(day))
        # Deltas and gammas in range.
        assert ((calls["delta"] >= 0) & (calls["delta"] <= 1)).all()
        assert ((puts["delta"] >= -1) & (puts["delta"] <= 0)).all()
        assert (chain["gamma"] >= 0).all() and (chain["implied_vol"] > 0).all()


# ---------------------------------------------------------------------- regimes and volatility


def test_regimes_all_occur_and_persist(truth, market):
    regime = truth["regime"].to_numpy()
    assert len(regime) > 2400
    counts = pd.Series(regime).value_counts(normalize=True)
    assert set(counts.index) == {"bull", "neutral", "bear"}
    assert (counts > 0.05).all()
    stay = (regime[1:] == regime[:-1]).mean()
    assert stay > 0.95
    # Regimes come in spells lasting weeks, not single days.
    changes = np.flatnonzero(regime[1:] != regime[:-1])
    assert len(changes) >= 6
    assert np.mean(np.diff(changes)) > 20
    # Bear markets are more volatile and fall on average.
    by_regime = truth.groupby("regime")
    vol = by_regime["market_vol"].mean()
    assert vol["bear"] > vol["neutral"] > vol["bull"]
    drift = by_regime["market_return"].mean()
    assert drift["bear"] < 0 < drift["bull"]


def _autocorrelation(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    return float(np.dot(x[lag:], x[:-lag]) / np.dot(x, x))


def test_volatility_clusters(truth):
    returns = truth["market_return"].to_numpy()[:2000]
    squared = returns**2
    acf = [_autocorrelation(squared, lag) for lag in (1, 2, 3, 4, 5)]
    # Under independence each estimate is about N(0, 1/2000): sd 0.022.
    assert min(acf) > 0.05
    assert np.mean(acf) > 0.08
    # ... while returns themselves are nearly uncorrelated.
    assert abs(_autocorrelation(returns, 1)) < 0.1


def _atm_and_skew(chain: pd.DataFrame, target_dte: int = 30) -> pd.DataFrame:
    """Per symbol, at the expiry closest to ``target_dte``: ATM IV and the 25-delta put skew."""
    gap = (chain["dte"] - target_dte).abs()
    near = chain[gap == gap.min()]
    out = []
    for symbol, group in near.groupby("symbol"):
        spot = group["underlying_price"].iloc[0]
        calls = group[group["right"] == "C"]
        puts = group[group["right"] == "P"]
        atm = calls.loc[(calls["strike"] - spot).abs().idxmin(), "implied_vol"]
        put25 = puts.loc[(puts["delta"] + 0.25).abs().idxmin(), "implied_vol"]
        out.append((symbol, atm, put25 - atm))
    return pd.DataFrame(out, columns=["symbol", "atm_iv", "skew"]).set_index("symbol")


@pytest.fixture(scope="module")
def u12(base):
    return select_universe(base, size=12)


def test_implied_vol_exceeds_subsequent_realized_vol(u12):
    market = SyntheticMarket(u12)
    bars = market.bars(LONG_RUN)
    close = bars.pivot(index="session", columns="symbol", values="close")
    log_returns = np.log(close).diff()
    implied, realized = [], []
    for i in range(20, len(LONG_RUN) - 30, 25):
        iv = _atm_and_skew(market.chains(LONG_RUN[i]))["atm_iv"]
        following = log_returns.iloc[i + 1 : i + 22]  # the next 21 sessions
        assert len(following) == 21
        rv = np.sqrt((following**2).mean() * 252.0)
        implied.extend(iv.to_numpy())
        realized.extend(rv[iv.index].to_numpy())
    implied, realized = np.array(implied), np.array(realized)
    assert len(implied) > 1000
    assert implied.mean() > 1.03 * realized.mean()
    assert (implied**2).mean() > (realized**2).mean()
    assert (implied > realized).mean() > 0.55
    # ... but implied vol still tracks the volatility that follows.
    assert np.corrcoef(implied, realized)[0, 1] > 0.3


def test_bear_sessions_have_higher_iv_and_steeper_put_skew(u12, truth):
    market = SyntheticMarket(u12)
    regimes = truth["regime"].to_numpy()
    stats = {}
    for name in ("bull", "bear"):
        where = np.flatnonzero(regimes == name)
        picks = where[np.linspace(0, len(where) - 1, 25).astype(int)]
        frame = pd.concat([_atm_and_skew(market.chains(LONG_RUN[i])) for i in picks])
        stats[name] = frame.mean()
        assert (frame["skew"] > 0).mean() > 0.9  # puts are dearer than at-the-money
    assert stats["bear"]["atm_iv"] > stats["bull"]["atm_iv"] * 1.1
    assert stats["bear"]["skew"] > stats["bull"]["skew"] * 1.3


# ---------------------------------------------------------------------- scale and symbols


def test_thousands_of_tickers(base, market):
    universe = select_universe(base, size=2000, allow_generated=True)
    assert len(universe) == 2000 and universe["generated"].sum() == 2000 - 503
    big = SyntheticMarket(universe)
    day = BACKFILL[0]
    bars = big.bars([day])
    assert len(bars) == 2000
    assert bars["symbol"].is_unique
    assert bars["symbol"].tolist() == universe["symbol"].tolist()
    assert (bars["close"] > 0).all() and np.isfinite(bars["close"]).all()
    generated = bars[bars["symbol"].isin(universe.loc[universe["generated"], "symbol"])]
    assert len(generated) == 1497
    # The first twenty tickers are unchanged by the 1980 others.
    pd.testing.assert_frame_equal(
        bars.iloc[:20].reset_index(drop=True), market.bars([day]), check_exact=True
    )


def test_dotted_symbols_get_bars_and_chains(base):
    full = SyntheticMarket(base)
    day = BACKFILL[3]
    bars = full.bars([day]).set_index("symbol")
    assert len(bars) == 503
    for symbol in ("BRK.B", "BF.B"):
        assert symbol in bars.index
        assert bars.loc[symbol, "close"] > 0
    pair = SyntheticMarket(select_universe(base, symbols=["BRK.B", "BF.B"]))
    pair_bars = pair.bars([day]).set_index("symbol")
    pd.testing.assert_frame_equal(pair_bars, bars.loc[["BRK.B", "BF.B"]], check_exact=True)
    chain = pair.chains(day)
    assert set(chain["symbol"]) == {"BRK.B", "BF.B"}


# ---------------------------------------------------------------------------- scenarios
SHIFT = D(2016, 3, 7)  # a Monday inside BACKFILL


def _tables(market, sessions):
    bars = market.bars(sessions)
    chains = pd.concat([market.chains(s) for s in sessions], ignore_index=True)
    return bars, chains


def test_a_scenario_changes_the_market_only_from_its_date(u20, market):
    from butterquant_dagster.core.market.synthetic import Scenario

    small = u20.head(4)
    plain = SyntheticMarket(small)
    before, after = BACKFILL[:4], BACKFILL[4:]
    assert after[0] == SHIFT
    plain_before, plain_after = _tables(plain, before), _tables(plain, after)
    # Without a scenario the config is the default one: nothing changed for anyone.
    assert SyntheticConfig().scenario is None
    for kind, value in (("vrp_shift", -0.4), ("vol_scale", 1.8)):
        config = SyntheticConfig(scenario=Scenario(kind, value, SHIFT))
        shifted = SyntheticMarket(small, config)
        b_before, c_before = _tables(shifted, before)
        pd.testing.assert_frame_equal(b_before, plain_before[0])
        pd.testing.assert_frame_equal(c_before, plain_before[1])
        b_after, c_after = _tables(shifted, after)
        if kind == "vrp_shift":
            # The same path, options priced at 40 % less premium: lower implied vols.
            pd.testing.assert_frame_equal(b_after, plain_after[0])
            ratio = c_after["implied_vol"].to_numpy() / plain_after[1]["implied_vol"].to_numpy()
            plain_vrp = plain.underlyings(SHIFT)["vrp"].to_numpy()
            assert shifted.underlyings(SHIFT)["vrp"].to_numpy() == pytest.approx(plain_vrp - 0.4)
            assert (ratio < 0.75).all() and (ratio > 0.5).all()
        else:
            # A more volatile market factor: the bars move more from the date on.
            returns = np.log(b_after["close"] / b_after["prev_close"]).abs().mean()
            plain_returns = np.log(plain_after[0]["close"] / plain_after[0]["prev_close"])
            assert returns > plain_returns.abs().mean()
            assert (c_after["implied_vol"].mean()) > plain_after[1]["implied_vol"].mean()


def test_a_scenario_is_parsed_or_refused_with_its_format():
    from butterquant_dagster.core.market.synthetic import Scenario

    assert Scenario.parse("") is None and Scenario.parse("  ") is None
    assert Scenario.parse("vrp_shift:-0.4@2025-06-02") == Scenario("vrp_shift", -0.4, D(2025, 6, 2))
    assert Scenario.parse("vol_scale:1.5@2025-06-02").value == 1.5
    for bad, message in (
        ("vrp:-0.4@2025-06-02", "expected one of"),
        ("vrp_shift:-0.4", "<kind>:<value>@<YYYY-MM-DD>"),
        ("vrp_shift:x@2025-06-02", "<kind>:<value>@<YYYY-MM-DD>"),
        ("vrp_shift:-1.2@2025-06-02", "needs > -1"),
        ("vol_scale:0@2025-06-02", "must be > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            Scenario.parse(bad)


@pytest.mark.parametrize("day", [D(2025, 6, 2), D(2020, 3, 16)])
def test_atm_spreads_match_real_liquid_names_by_tier(base, day):
    """The median ATM 30-day quoted spread of the liquid half lies in the band of real
    liquid names (about 3-8 % of the option's price: SPXW 2018 3.3-5.4 %, large caps 2020
    ~1.2 % in the money to 7-8 % out of it); the few index-like names quote tighter than
    that band and the lower-liquidity half wider than the liquid half but within it
    (docs/decisions.md, "One price for one trade"), in a calm session and a crash."""
    market = SyntheticMarket(base)
    pct = atm_spread_pct(market.chains(day))
    liquidity = market.underlyings(day).set_index("symbol")["liquidity"].reindex(pct.index)
    index_like = pct[liquidity >= INDEX_LIKE_LIQUIDITY]
    liquid = pct[(liquidity >= LIQUID_LIQUIDITY) & (liquidity < INDEX_LIKE_LIQUIDITY)]
    less = pct[liquidity < LIQUID_LIQUIDITY]
    assert min(len(index_like), len(liquid), len(less)) >= 10
    assert 0.03 <= liquid.median() <= 0.08, liquid.median()
    assert index_like.median() < 0.03, index_like.median()
    assert liquid.median() < less.median() <= 0.08, less.median()
