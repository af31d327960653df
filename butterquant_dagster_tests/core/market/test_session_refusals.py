"""QualityReport judges each session on its own: a refused session stays refused, and says
which rule, how many rows and which ones."""

from __future__ import annotations

import datetime as dt

import pytest

from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.market.validation import (
    CHAIN_RULES,
    QualityPolicy,
    QualityReport,
)

DAYS = [dt.date(2025, 3, 3), dt.date(2025, 3, 4), dt.date(2025, 3, 5)]


@pytest.fixture(scope="module")
def market():
    return SyntheticMarket(select_universe(read_universe_file(), size=4))


def _symbols(market, day):
    return market.bars([day])["symbol"].tolist()


def test_only_the_bad_session_is_refused(market):
    report = QualityReport(CHAIN_RULES, QualityPolicy())
    verdicts = {}
    for day in DAYS:
        chain = market.chains(day)
        if day == DAYS[1]:
            crossed = chain.index[:7]
            chain.loc[crossed, "bid"] = chain.loc[crossed, "ask"] + 0.10
        verdicts[day] = report.check(chain, day, expected=_symbols(market, day))
    assert verdicts == {DAYS[0]: True, DAYS[1]: False, DAYS[2]: True}
    assert report.sessions_refused == ["2025-03-04"]
    assert not report.passed
    refusal = report.refusals["2025-03-04"]
    [reason] = refusal.reasons
    assert reason.startswith("crossed_quotes (no bid above its ask): 7 violation(s) in ")
    assert len(refusal.violations) == 7
    assert {v.session for v in refusal.violations} == {"2025-03-04"}
    assert refusal.describe().startswith("- 2025-03-04:\n    crossed_quotes")
    # The run-level outcome of the rule still counts every session it saw.
    assert report.outcomes["crossed_quotes"].sessions_failed == ["2025-03-04"]
    assert report.outcomes["quote_prices_valid"].passed


def test_a_refusal_sticks_and_a_reason_without_a_rule_refuses_too(market):
    report = QualityReport(CHAIN_RULES, QualityPolicy())
    chain = market.chains(DAYS[0])
    stray = chain.head(3).assign(session=chain["session"].iloc[0] + dt.timedelta(days=7))
    assert report.check(stray, DAYS[0], expected=[]) is False  # stale rows filed under it
    assert report.check(chain, DAYS[0], expected=_symbols(market, DAYS[0])) is False
    report.refuse(DAYS[2], "source: chains.csv: no option quotes for session 2025-03-05")
    assert report.sessions_refused == ["2025-03-03", "2025-03-05"]
    assert report.is_refused("2025-03-05") and not report.is_refused(DAYS[1])
    assert report.refusals["2025-03-05"].violations == []
    # No rule failed for the refused-for-its-input session; the run still did not pass.
    assert {o.rule for o in report.failures()} == {"stale_session", "expiry_consistent"}
    assert not report.passed


def test_a_clean_run_passes(market):
    report = QualityReport(CHAIN_RULES, QualityPolicy())
    for day in DAYS:
        assert report.check(market.chains(day), day, expected=_symbols(market, day))
    assert report.passed and report.sessions_refused == []
