"""The AI track ranks by the model's expected yield only when the yield model passed its
gates; otherwise by P(win). Without a P(win) champion that passed, it takes nothing and
says why."""

from __future__ import annotations

import numpy as np

from butterquant_dagster.core.trading.portfolio import (
    AI_BY_PWIN,
    AI_BY_YIELD,
    NO_AI_CHAMPION,
    eligible_entries,
)
from butterquant_dagster.core.trading.rules import AI_TRACK, PortfolioRules
from butterquant_dagster_tests.core.trading.chains import SESSION, make_chain, make_rankings

SPOTS = {f"T{i}": 100.0 for i in range(6)}
RULES = PortfolioRules(max_positions=6, ai_track_slots=3, min_expected_yield=-1e9)


def rankings(**columns):
    """Six candidates whose model yield order is the reverse of their P(win) order."""
    chain = make_chain(SESSION, SPOTS)
    picks = [
        {
            "ticker": f"T{i}",
            "lower": 95.0,
            "center": 100.0,
            "upper": 105.0,
            "ml_success_prob": 0.30 + 0.05 * i,  # T5 most likely to win
            "ml_expected_roi": 0.50 - 0.05 * i,  # T0 highest model yield
            "ev_per_1000": 10.0 * i,
        }
        for i in range(6)
    ]
    frame = make_rankings(SESSION, chain, picks)
    for name, value in columns.items():
        frame[name] = value
    return frame


def test_a_validated_yield_model_ranks_the_ai_track():
    chosen, passed = eligible_entries(rankings(yield_model_validated=True), AI_TRACK, RULES)
    assert list(chosen["ticker"]) == [f"T{i}" for i in range(6)]
    assert set(chosen["ai_ranked_by"]) == {AI_BY_YIELD}
    assert np.allclose(chosen["track_value"], chosen["ml_expected_roi"] * 1000.0)
    assert passed.empty


def test_an_unvalidated_yield_model_never_ranks_the_ai_track():
    frame = rankings(yield_model_validated=False)
    chosen, _ = eligible_entries(frame, AI_TRACK, RULES)
    # Ranked by P(win), the reverse of the model yield's order; the floor reads the rule EV.
    assert list(chosen["ticker"]) == [f"T{i}" for i in reversed(range(6))]
    assert set(chosen["ai_ranked_by"]) == {AI_BY_PWIN}
    assert np.allclose(chosen["track_value"], chosen["ev_per_1000"])


def test_a_missing_yield_estimate_is_not_validated():
    """ai_probabilities writes no ml_expected_roi for an unvalidated yield model."""
    chosen, _ = eligible_entries(rankings(ml_expected_roi=np.nan), AI_TRACK, RULES)
    assert list(chosen["ticker"]) == [f"T{i}" for i in reversed(range(6))]
    assert set(chosen["ai_ranked_by"]) == {AI_BY_PWIN}


def test_without_a_passing_p_win_champion_the_ai_track_takes_nothing_and_says_why():
    frame = rankings(ml_success_prob=np.nan, ml_expected_roi=np.nan)
    chosen, passed = eligible_entries(frame, AI_TRACK, RULES)
    assert chosen.empty
    assert passed.value_counts().to_dict() == {NO_AI_CHAMPION: 6}
