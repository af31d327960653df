"""Every data-quality rule: a clean snapshot passes, and one bad input per rule fails it,
naming the rule, the session and the ticker."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.market.validation import (
    BAR_RULES,
    CHAIN_RULES,
    QualityPolicy,
    QualityReport,
)

SESSION = dt.date(2025, 3, 5)


@pytest.fixture(scope="module")
def market():
    return SyntheticMarket(select_universe(read_universe_file(), size=8))


@pytest.fixture
def bars(market):
    return market.bars([SESSION])


@pytest.fixture
def chains(market):
    return market.chains(SESSION)


def _run(rules, frame, expected, policy=None):
    report = QualityReport(rules, policy or QualityPolicy())
    report.check(frame, SESSION, expected=expected)
    return report


def _failed(report) -> set[str]:
    return {outcome.rule for outcome in report.failures()}


def test_clean_snapshot_passes_every_rule(bars, chains):
    assert _run(BAR_RULES, bars, bars["symbol"]).passed
    chain_report = _run(CHAIN_RULES, chains, bars["symbol"])
    assert chain_report.passed, [o.summary() for o in chain_report.failures()]


# ------------------------------------------------------------------------------ bars
def _set(frame, row, **values):
    frame = frame.copy()
    for column, value in values.items():
        frame.loc[row, column] = value
    return frame


def _gap(frame, row, ratio):
    """Open the bar at prev_close / ratio and keep high and low consistent with it."""
    open_ = frame.loc[row, "prev_close"] / ratio
    close = open_ * 1.01
    return _set(frame, row, open=open_, close=close, high=close * 1.01, low=open_ * 0.99)


@pytest.mark.parametrize(
    ("mutate", "rule", "text"),
    [
        (lambda f: _set(f, 2, close=np.nan), "bar_prices_positive", "close=nan"),
        (lambda f: _set(f, 2, low=-1.0), "bar_prices_positive", "low=-1.0"),
        (lambda f: _set(f, 2, open=0.0), "bar_prices_positive", "open=0.0"),
        (lambda f: _set(f, 2, high=f.loc[2, "close"] * 0.5), "bar_ohlc_consistent", "high"),
        (lambda f: _set(f, 2, low=f.loc[2, "open"] * 2.0), "bar_ohlc_consistent", "low"),
        (lambda f: pd.concat([f, f.iloc[[2]]], ignore_index=True), "duplicate_key", "duplicate"),
        (
            lambda f: _set(f, 2, session=pd.Timestamp("2025-03-04")),
            "stale_session",
            "dated 2025-03-04",
        ),
        (lambda f: _gap(f, 2, 2.02), "split_jump", "unadjusted split"),
        (lambda f: _gap(f, 2, 1 / 3.1), "split_jump", "unadjusted split"),
        (lambda f: f.drop(columns=["adj_close"]), "schema", "missing column 'adj_close'"),
        (lambda f: f.assign(volume=f["volume"].astype(float)), "schema", "volume"),
    ],
)
def test_each_bar_rule_fails_on_its_bad_input(bars, mutate, rule, text):
    bad = mutate(bars)
    report = _run(BAR_RULES, bad, bars["symbol"])
    assert rule in _failed(report)
    outcome = report.outcomes[rule]
    described = " ".join(v.describe() for v in outcome.examples)
    assert text in described
    if rule != "schema":
        assert bars.loc[2, "symbol"] in described
    if text != "open=0.0":  # a zero open also breaks high/low consistency
        assert _failed(report) == {rule}


def test_missing_tickers_tolerance(bars):
    expected = bars["symbol"].tolist()
    report = _run(BAR_RULES, bars.iloc[1:], expected)  # 1 of 8 missing = 12.5 %
    assert _failed(report) == {"missing_tickers"}
    assert bars.loc[0, "symbol"] in report.outcomes["missing_tickers"].examples[0].message
    tolerant = QualityPolicy(max_missing_ticker_share=0.2)
    assert _run(BAR_RULES, bars.iloc[1:], expected, tolerant).passed


def test_acknowledged_jump_passes(bars):
    bad = _gap(bars, 2, 2.0)
    assert "split_jump" in _failed(_run(BAR_RULES, bad, bars["symbol"]))
    key = f"{bars.loc[2, 'symbol']}@{SESSION.isoformat()}"
    policy = QualityPolicy(acknowledged_jumps=frozenset({key}))
    assert "split_jump" not in _failed(_run(BAR_RULES, bad, bars["symbol"], policy))


def test_a_crash_that_is_not_a_split_ratio_passes(bars):
    crash = _gap(bars, 2, 1 / 0.62)  # a 38 % overnight drop
    assert _run(BAR_RULES, crash, bars["symbol"]).passed


# ------------------------------------------------------------------------------ chains
@pytest.mark.parametrize(
    ("mutate", "rule", "text"),
    [
        (lambda f: _set(f, 10, bid=f.loc[10, "ask"] + 0.5), "crossed_quotes", "> ask"),
        (lambda f: _set(f, 10, bid=-0.05), "quote_prices_valid", "bid -0.05"),
        (lambda f: _set(f, 10, ask=np.nan), "quote_prices_valid", "ask nan"),
        (lambda f: _set(f, 10, underlying_price=0.0), "quote_prices_valid", "underlying 0.0"),
        (lambda f: _set(f, 10, delta=np.inf), "greeks_finite", "delta inf"),
        (lambda f: _set(f, 10, dte=f.loc[10, "dte"] + 3), "expiry_consistent", "dte"),
        (
            lambda f: _set(f, 10, expiry=pd.Timestamp("2025-03-03"), dte=-2),
            "expiry_consistent",
            "expiry 2025-03-03",
        ),
        (lambda f: pd.concat([f, f.iloc[[10]]], ignore_index=True), "duplicate_key", "duplicate"),
        (
            lambda f: _set(f, 10, session=pd.Timestamp("2025-03-04")),
            "stale_session",
            "dated 2025-03-04",
        ),
        (lambda f: f.drop(columns=["implied_vol"]), "schema", "implied_vol"),
    ],
)
def test_each_chain_rule_fails_on_its_bad_input(bars, chains, mutate, rule, text):
    report = _run(CHAIN_RULES, mutate(chains), bars["symbol"])
    assert rule in _failed(report)
    described = " ".join(v.describe() for v in report.outcomes[rule].examples)
    assert text in described
    if rule != "schema":
        assert chains.loc[10, "symbol"] in described


def test_closed_market_implied_vols_fail(bars, chains):
    """A closed market reports implied vols near zero across the board."""
    closed = chains.copy()
    rows = closed.sample(frac=0.3, random_state=1).index
    closed.loc[rows, "implied_vol"] = 0.012
    report = _run(CHAIN_RULES, closed, bars["symbol"])
    assert _failed(report) == {"implied_vol_plausible"}
    assert "closed market" in report.outcomes["implied_vol_plausible"].examples[0].message


def test_a_quote_without_implied_vol_has_no_greeks_and_is_tolerated(bars, chains):
    """A vendor mid below intrinsic value has no implied vol, hence no greeks."""
    odd = _set(
        chains, 10, implied_vol=np.nan, delta=np.nan, gamma=np.nan, vega=np.nan, theta=np.nan
    )
    assert _run(CHAIN_RULES, odd, bars["symbol"]).passed


def test_a_few_odd_vols_are_tolerated(bars, chains):
    odd = _set(chains, 10, implied_vol=7.5)  # one absurd far-wing quote in thousands
    assert _run(CHAIN_RULES, odd, bars["symbol"]).passed


def test_tickers_without_a_chain(bars, chains):
    first = chains["symbol"].iloc[0]
    report = _run(CHAIN_RULES, chains[chains["symbol"] != first], bars["symbol"])
    assert _failed(report) == {"missing_tickers"}
    assert first in report.outcomes["missing_tickers"].examples[0].message


def test_schema_failure_skips_rules_that_cannot_read_the_frame(bars):
    report = _run(BAR_RULES, bars.drop(columns=["close"]), bars["symbol"])
    assert _failed(report) == {"schema"}
    assert report.outcomes["bar_ohlc_consistent"].rows_checked == 0
