"""Candidates of a chain holding many sessions: the same as building each session on its own,
whatever the order of the rows; and the outcomes of many sessions settled at once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.schemas import OPTION_CHAINS, empty
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.scan.candidates import (
    SKIP_COLUMNS,
    CandidateRules,
    build_candidates,
    build_candidates_by_session,
)
from butterquant_dagster.core.scan.outcomes import settle

SESSIONS = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 3, 31))[:8]
NO_EXPIRY = "no listed expiry in the window"
# The session whose chain keeps only expiries beyond the window.
FAR_ONLY = SESSIONS[3]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(select_universe(read_universe_file(), size=3))


@pytest.fixture(scope="module")
def chains(market) -> dict[dt.date, pd.DataFrame]:
    out = {session: market.chains(session) for session in SESSIONS}
    far = out[FAR_ONLY]
    out[FAR_ONLY] = far[far["dte"] > CandidateRules().max_dte].reset_index(drop=True)
    return out


def _one_by_one(chains, rules=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each session built on its own, concatenated; the skips dated by their session."""
    candidates, skips = [], []
    for session, chain in chains.items():
        built, skipped = build_candidates(chain, session, rules)
        candidates.append(built)
        if not skipped.empty:
            skips.append(skipped.assign(session=pd.Timestamp(session)))
    skips = pd.concat(skips, ignore_index=True)[["session", *SKIP_COLUMNS]]
    return pd.concat(candidates, ignore_index=True), skips


def test_many_sessions_in_one_call_equal_each_session_on_its_own(chains):
    expected, expected_skips = _one_by_one(chains)
    assert expected["session"].nunique() == len(SESSIONS) - 1  # FAR_ONLY has none
    candidates, skips = build_candidates_by_session(pd.concat(chains.values(), ignore_index=True))
    pd.testing.assert_frame_equal(candidates, expected, check_exact=True)
    pd.testing.assert_frame_equal(skips, expected_skips, check_exact=True)


def test_the_order_of_the_rows_does_not_matter(chains):
    expected, expected_skips = _one_by_one(chains)
    shuffled = pd.concat(chains.values(), ignore_index=True).sample(frac=1.0, random_state=7)
    candidates, skips = build_candidates_by_session(shuffled)
    pd.testing.assert_frame_equal(candidates, expected, check_exact=True)
    pd.testing.assert_frame_equal(skips, expected_skips, check_exact=True)
    # Sorted the same way, as the issue asks: also equal after sorting by the key.
    key = ["session", "symbol", "expiry", "structure", "width_steps", "center"]
    pd.testing.assert_frame_equal(
        candidates.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
        check_exact=True,
    )


def test_other_rules_too(chains):
    rules = CandidateRules(min_dte=1, max_dte=30, center_band=0.2, max_width_steps=4)
    expected, expected_skips = _one_by_one(chains, rules)
    candidates, skips = build_candidates_by_session(
        pd.concat(chains.values(), ignore_index=True), rules
    )
    pd.testing.assert_frame_equal(candidates, expected, check_exact=True)
    pd.testing.assert_frame_equal(skips, expected_skips, check_exact=True)


def test_a_session_without_an_expiry_in_the_window_next_to_ones_with(chains):
    two = {s: chains[s] for s in (SESSIONS[2], FAR_ONLY, SESSIONS[4])}
    candidates, skips = build_candidates_by_session(pd.concat(two.values(), ignore_index=True))
    assert FAR_ONLY not in set(candidates["session"].dt.date)
    assert set(candidates["session"].dt.date) == {SESSIONS[2], SESSIONS[4]}
    far = skips[skips["session"] == pd.Timestamp(FAR_ONLY)]
    assert set(far["reason"]) == {NO_EXPIRY}
    assert sorted(far["symbol"]) == sorted(chains[FAR_ONLY]["symbol"].unique())
    assert (far["count"] == 1).all()
    # Without the session column, the skips are the same rows in the same order.
    plain_candidates, plain_skips = build_candidates(pd.concat(two.values(), ignore_index=True))
    pd.testing.assert_frame_equal(plain_candidates, candidates, check_exact=True)
    pd.testing.assert_frame_equal(plain_skips, skips[SKIP_COLUMNS], check_exact=True)
    assert list(plain_skips.columns) == SKIP_COLUMNS


def test_one_session_without_the_argument_is_the_same_as_with_it(chains):
    session = SESSIONS[0]
    with_argument = build_candidates(chains[session], session)
    without = build_candidates(chains[session])
    for a, b in zip(with_argument, without, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_an_empty_chain():
    chain = empty(OPTION_CHAINS)
    one, one_skips = build_candidates(chain, SESSIONS[0])
    many, many_skips = build_candidates(chain)
    assert one.empty and many.empty
    assert list(many.columns) == list(one.columns)
    assert list(one.columns)[:3] == ["session", "symbol", "expiry"]
    assert list(one_skips.columns) == SKIP_COLUMNS
    assert list(many_skips.columns) == SKIP_COLUMNS
    _, by_session = build_candidates_by_session(chain)
    assert by_session.empty
    assert list(by_session.columns) == ["session", *SKIP_COLUMNS]


def test_a_session_argument_with_a_chain_of_several_sessions_is_refused(chains):
    chain = pd.concat([chains[SESSIONS[0]], chains[SESSIONS[1]]], ignore_index=True)
    with pytest.raises(ValueError, match="several sessions"):
        build_candidates(chain, SESSIONS[0])


def test_a_chain_without_sessions_needs_the_argument(chains):
    chain = chains[SESSIONS[0]].drop(columns="session")
    with pytest.raises(ValueError, match="session"):
        build_candidates(chain)
    built, _ = build_candidates(chain, SESSIONS[0])
    expected, _ = build_candidates(chains[SESSIONS[0]], SESSIONS[0])
    pd.testing.assert_frame_equal(built, expected, check_exact=True)


# ---------------------------------------------------------------------- outcomes
@pytest.fixture(scope="module")
def year(market):
    """Candidates of a month of sessions and the closes of the months after."""
    sessions = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 6, 30))
    chain = pd.concat([market.chains(s) for s in sessions[:20]], ignore_index=True)
    candidates, _ = build_candidates(chain)
    closes = market.bars(sessions)[["session", "symbol", "close"]]
    return candidates, closes


def test_settling_many_sessions_at_once_equals_one_by_one(year):
    candidates, closes = year
    inside = candidates[candidates["expiry"].isin(pd.to_datetime(closes["session"]))]
    assert inside["session"].nunique() > 1
    together = settle(inside, closes)
    apart = pd.concat(
        [settle(part, closes) for _, part in inside.groupby("session", sort=True)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together, apart, check_exact=True)
    # A close that is not a candidate's (other tickers, other days) changes nothing.
    others = pd.DataFrame(
        {
            "session": pd.Timestamp("2025-04-01"),
            "symbol": [f"X{i:04d}" for i in range(5000)],
            "close": 1.0,
        }
    )
    crowded = pd.concat([others, closes.sample(frac=1.0, random_state=3)], ignore_index=True)
    pd.testing.assert_frame_equal(settle(inside, crowded), together, check_exact=True)


def test_settle_keeps_the_candidates_dtypes_and_numbers_its_rows(year):
    candidates, closes = year
    inside = candidates[candidates["expiry"].isin(pd.to_datetime(closes["session"]))]
    out = settle(inside.iloc[::2], closes)
    assert out.index.equals(pd.RangeIndex(len(out)))
    for column in ("session", "symbol", "expiry", "structure", "width_steps", "dte"):
        assert out[column].dtype == inside[column].dtype
    as_objects = inside.assign(symbol=inside["symbol"].astype(object))
    assert settle(as_objects, closes)["symbol"].dtype == object
    np.testing.assert_array_equal(
        settle(as_objects, closes)["pnl_per_share"], settle(inside, closes)["pnl_per_share"]
    )


def test_settle_refuses_two_closes_for_one_ticker_and_day(year):
    candidates, closes = year
    inside = candidates[candidates["expiry"].isin(pd.to_datetime(closes["session"]))]
    with pytest.raises(ValueError, match="non-unique"):
        settle(inside, pd.concat([closes, closes.iloc[:1]], ignore_index=True))
