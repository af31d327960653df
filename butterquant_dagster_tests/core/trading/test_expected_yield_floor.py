"""The expected-yield floor: one default everywhere, no expected loss entered under it, an
empty plan that says why, and the baseline ranked by the rule measure that validated."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import settings
from butterquant_dagster.core.scan.ev_reliability import (
    BASELINE_COLUMN,
    EV_CALIBRATED,
    ReliabilityError,
)
from butterquant_dagster.core.trading.portfolio import entry_notes, plan_session
from butterquant_dagster.core.trading.rules import BASELINE_TRACK, PortfolioRules
from butterquant_dagster.resources import TradingResource
from butterquant_dagster_tests.core.trading.chains import NEXT, SESSION, make_chain, make_rankings

SPOTS = {f"T{i}": 100.0 for i in range(6)}
NOTHING_HELD = pd.DataFrame(
    columns=["position_id", "ticker", "track", "structure", "expiry", "lower", "center",
             "upper", "width", "quantity", "entry_price", "max_profit", "max_loss",
             "risk_level", "iv_center_entry", "model_version", "ml_success_prob"]
)  # fmt: skip


def pick(i: int, **extra) -> dict:
    return {"ticker": f"T{i}", "lower": 95.0, "center": 100.0, "upper": 105.0, **extra}


def plan(rankings, rules):
    chain = make_chain(SESSION, SPOTS)
    sectors = dict.fromkeys(SPOTS, "Tech")
    targets, _, passed = plan_session(NEXT, NOTHING_HELD, chain, rankings, rankings, sectors, rules)
    return targets, passed


def test_the_floor_default_is_one_value_read_everywhere_and_never_negative():
    default = settings.default("BUTTERQUANT_MIN_EXPECTED_YIELD")
    assert default >= 0
    assert PortfolioRules().min_expected_yield == default
    field = TradingResource.model_fields["min_expected_yield"]
    assert field.default == default
    assert TradingResource(data_dir="x").rules().min_expected_yield == default


def test_a_candidate_expected_to_lose_is_never_entered_under_the_default():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(
        SESSION,
        chain,
        [
            pick(0, ev_per_1000=-1.0, ml_expected_roi=-0.001, score=99.0),
            pick(1, ev_per_1000=40.0, ml_expected_roi=0.04, score=10.0),
            pick(2, ev_per_1000=float("nan"), ml_expected_roi=0.05, score=98.0),
        ],
    )
    targets, passed = plan(rankings, PortfolioRules(max_positions=6, ai_track_slots=3))
    opened = targets.loc[targets["intent"] == "open"]
    assert "T0" not in set(opened["ticker"])  # the best score does not beat the floor
    baseline = opened.loc[opened["track"] == BASELINE_TRACK]
    assert set(baseline["ticker"]) == {"T1"}  # an unknown (NaN) expected yield never passes
    assert (opened["ranking_value"] >= 0).all()
    assert passed[BASELINE_TRACK]["expected yield below floor"] == 2


def test_nothing_qualifying_trades_nothing_and_says_so():
    chain = make_chain(SESSION, SPOTS)
    losing = [pick(i, ev_per_1000=-100.0 - i, ml_expected_roi=-0.2) for i in range(4)]
    rankings = make_rankings(SESSION, chain, losing)
    rules = PortfolioRules(max_positions=6, ai_track_slots=3)
    targets, passed = plan(rankings, rules)
    assert (targets["intent"] == "open").sum() == 0
    assert passed == {track: {"expected yield below floor": 4} for track in ("ai", "baseline")}
    notes = entry_notes(rankings, rankings, rules)
    assert notes == [
        "ai track: nothing qualified: 4 candidates below the expected-yield floor of 0 per "
        "$1,000; nothing is traded on this track.",
        "baseline track: nothing qualified: 4 candidates below the expected-yield floor of 0 "
        "per $1,000; nothing is traded on this track.",
    ]
    # a loose floor (as tests of other rules use) lets the same candidates in: no note
    loose = dataclasses.replace(rules, min_expected_yield=-1e9)
    assert (plan(rankings, loose)[0]["intent"] == "open").sum() == 4
    assert entry_notes(rankings, rankings, loose) == []


def test_without_a_gated_champion_the_ai_track_says_it_is_off():
    chain = make_chain(SESSION, SPOTS)
    unscored = [pick(i, ev_per_1000=50.0 + i) for i in range(3)]
    rankings = make_rankings(SESSION, chain, unscored)
    rankings["ml_success_prob"] = np.nan
    rankings["ml_expected_roi"] = np.nan
    rules = PortfolioRules(max_positions=6, ai_track_slots=3)
    notes = entry_notes(rankings, rankings, rules)
    assert notes == [
        "ai track: off: no P(win) champion that passed its gates; nothing is traded on this track."
    ]
    targets, _ = plan(rankings, rules)
    assert set(targets.loc[targets["intent"] == "open", "track"]) == {BASELINE_TRACK}


def test_the_baseline_ranks_by_the_recorded_measure_not_the_rule_score():
    chain = make_chain(SESSION, SPOTS)
    # the higher the score, the lower the rule's expected value
    rows = [pick(i, ev_per_1000=10.0 * (i + 1), score=90.0 - i) for i in range(4)]
    rankings = make_rankings(SESSION, chain, rows, model=False)
    rules = PortfolioRules(max_positions=2, ai_track_slots=0)
    targets, _ = plan(rankings, rules)
    assert targets["ticker"].tolist() == ["T3", "T2"]  # by ev_per_1000 when nothing recorded
    by_score = rankings.assign(**{BASELINE_COLUMN: "score"})
    targets, _ = plan(by_score, rules)
    assert targets["ticker"].tolist() == ["T0", "T1"]
    with pytest.raises(ReliabilityError, match="baseline measure 'lottery'"):
        plan(rankings.assign(**{BASELINE_COLUMN: "lottery"}), rules)


def test_the_floor_judges_the_calibrated_ev_when_the_plan_has_one():
    """A rule EV of +120 per $1,000 whose kind realized -80 is refused; without a curve the
    raw EV is judged (and enters)."""
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, [pick(0, ev_per_1000=120.0)], model=False)
    rules = PortfolioRules(max_positions=6, ai_track_slots=0)
    raw = rankings.assign(**{EV_CALIBRATED: np.nan})
    targets, _ = plan(raw, rules)
    assert (targets["intent"] == "open").sum() == 1
    calibrated = rankings.assign(**{EV_CALIBRATED: -80.0})
    targets, passed = plan(calibrated, rules)
    assert (targets["intent"] == "open").sum() == 0
    assert passed[BASELINE_TRACK] == {"expected yield below floor": 1}
