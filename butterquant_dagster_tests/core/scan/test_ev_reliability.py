"""The reliability of ranking measures: predicted vs realized yield per $1,000 by decile,
the stated validation criterion, the point-in-time choice and the lake reader."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.scan import ev_reliability as rel
from butterquant_dagster.core.storage.lake import Lake

RNG_SEED = 11


def settled(n=2000, *, informative="ev_per_1000", seed=RNG_SEED, expiry="2024-03-15"):
    """Settled candidates where ``informative`` predicts realized yield and the other
    measures are noise; the base yield is a loss, as in the synthetic market."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({m: rng.normal(size=n) for m in rel.RULE_MEASURES})
    frame[rel.REALIZED] = -500.0 + 300.0 * frame[informative] + 200.0 * rng.normal(size=n)
    frame["win"] = frame[rel.REALIZED] > 0
    frame["session"] = pd.Timestamp("2024-02-01")
    frame["expiry"] = pd.Timestamp(expiry)
    return frame


def test_the_table_has_every_decile_and_tracks_the_informative_measure():
    frame = settled()
    table = rel.reliability_table(frame, "ev_per_1000")
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["rows"].sum() == len(frame)
    assert table["realized_per_1000"].is_monotonic_increasing
    assert table["predicted"].is_monotonic_increasing
    assert table["win_rate"].iloc[-1] > table["win_rate"].iloc[0]
    scaled = rel.reliability_table(frame, "ev_per_1000", scale=rel.PER_1000)
    assert np.allclose(scaled["predicted"], table["predicted"] * 1000.0)


def test_ties_still_fill_every_decile():
    frame = settled().assign(score=0.0)  # a clipped score: every value equal
    table = rel.reliability_table(frame, "score")
    assert len(table) == 10 and table["rows"].min() == len(frame) // 10


def test_only_a_measure_that_ranks_realized_yield_validates():
    skill = rel.skill_table(settled(informative="prob_profit_rn")).set_index("measure")
    assert bool(skill.loc["prob_profit_rn", "validates"])
    assert skill.loc["prob_profit_rn", "rank_correlation"] > 0.5
    top, everyone = skill.loc["prob_profit_rn", ["top_decile_realized", "all_realized"]]
    assert top > everyone
    anti = settled().assign(score=lambda f: -f["ev_per_1000"])
    failed = rel.measure_skill(anti, "score")
    assert not failed["validates"]
    assert "rank correlation not positive" in failed["why"]
    assert "top decile returned no more" in failed["why"]
    few = rel.measure_skill(settled(n=rel.MIN_SETTLED_ROWS - 1), "ev_per_1000")
    assert not few["validates"] and "fewer than" in few["why"]


def test_the_best_validating_rule_measure_is_chosen_else_the_default_unvalidated():
    frame = settled(informative="score")
    frame["prob_profit_forecast"] = frame["score"] + np.random.default_rng(3).normal(
        scale=2.0, size=len(frame)
    )  # validates too, but ranks worse
    choice = rel.choose_rule_measure(rel.skill_table(frame))
    assert choice == rel.Choice("score", True, choice.why)
    assert choice.why.startswith("score validates: top decile")
    noise = settled(informative="ev_per_1000").assign(
        **{rel.REALIZED: lambda f: -500.0 + np.random.default_rng(5).normal(size=len(f))}
    )
    fallback = rel.choose_rule_measure(rel.skill_table(noise.iloc[:100]))
    assert fallback.measure == rel.DEFAULT_RULE_MEASURE and not fallback.validated
    assert "no rule measure validates" in fallback.why


def test_a_session_learns_only_from_outcomes_that_expired_before_it():
    early = settled(informative="score", expiry="2024-03-15")
    late = settled(informative="ev_per_1000", expiry="2024-04-19", seed=12)
    both = pd.concat([early, late], ignore_index=True)
    before_late, after_late = dt.date(2024, 4, 19), dt.date(2024, 4, 22)
    assert len(rel.known_before(both, before_late)) == len(early)  # expiry day excluded
    choices = rel.choices_by_session(both, [dt.date(2024, 3, 1), before_late, after_late])
    assert choices[dt.date(2024, 3, 1)][0].measure == rel.DEFAULT_RULE_MEASURE
    assert choices[dt.date(2024, 3, 1)][1] == 0
    assert choices[before_late] == (choices[before_late][0], len(early))
    assert choices[before_late][0].measure == "score"
    # what expired on or after the session cannot change its choice
    scrambled = pd.concat(
        [early, late.assign(**{rel.REALIZED: late[rel.REALIZED].sample(frac=1.0).values})]
    )
    assert rel.choices_by_session(scrambled, [before_late])[before_late][0].measure == "score"
    # outcomes entered more than the lookback before the session are left out
    far = before_late + dt.timedelta(days=rel.LOOKBACK_DAYS + 100)
    assert len(rel.known_before(both, far)) == 0


def test_a_frame_without_outcomes_is_refused_with_the_column_named():
    with pytest.raises(rel.ReliabilityError, match=r"lack column\(s\) \['yield_per_1000'\]"):
        rel.reliability_table(settled().drop(columns=[rel.REALIZED]), "ev_per_1000")


def test_the_model_estimate_is_shown_per_1000():
    frame = pd.DataFrame({"ticker": ["A"], "ml_expected_roi": [0.63], "ev_per_1000": [16.95]})
    shown = rel.with_per_1000(frame)
    assert shown.columns.tolist() == ["ticker", "ml_expected_per_1000", "ev_per_1000"]
    assert shown["ml_expected_per_1000"].iloc[0] == pytest.approx(630.0)
    assert "ml_expected_roi" in frame  # the stored frame is untouched


def _lake_with_history(root) -> Lake:
    """Two entry sessions of candidates, with outcomes for their two expiries."""
    lake = Lake(root)
    for day, expiry in (("2024-01-02", "2024-01-19"), ("2024-01-03", "2024-02-16")):
        n = 30
        keys = pd.DataFrame(
            {
                "session": pd.Timestamp(day),
                "symbol": [f"T{i % 3}" for i in range(n)],
                "expiry": pd.Timestamp(expiry),
                "structure": "call_fly",
                "lower": 90.0 + np.arange(n),
                "center": 95.0 + np.arange(n),
                "upper": 100.0 + np.arange(n),
            }
        )
        candidates = keys.assign(
            ev_per_1000=np.arange(n, dtype=float),
            score=50.0,
            prob_profit_forecast=0.2,
            prob_profit_rn=0.1,
        )
        outcomes = keys.assign(yield_per_1000=-100.0 + np.arange(n), win=np.arange(n) > 20)
        lake.write("butterfly_candidates", candidates, day)
        lake.write("candidate_outcomes", outcomes, day)
    return lake


def test_the_lake_reader_joins_candidates_to_outcomes_point_in_time(tmp_path, monkeypatch):
    lake = _lake_with_history(tmp_path)
    first = rel.settled_candidates(lake, dt.date(2024, 1, 22), dt.date(2024, 1, 22))
    assert len(first) == 30 and set(first["expiry"].dt.date) == {dt.date(2024, 1, 19)}
    assert (first[rel.REALIZED] - first["ev_per_1000"] == -100.0).all()  # joined on the key
    assert first[rel.MODEL_MEASURE].isna().all()  # no model estimates stored
    both = rel.settled_candidates(lake, dt.date(2024, 1, 22), dt.date(2024, 3, 1))
    assert len(both) == 60
    monkeypatch.setattr(rel, "PER_SESSION_CAP", 7)
    capped = rel.settled_candidates(lake, dt.date(2024, 1, 22), dt.date(2024, 3, 1))
    assert capped.groupby("session").size().tolist() == [7, 7]
    again = rel.settled_candidates(lake, dt.date(2024, 1, 22), dt.date(2024, 3, 1))
    assert again[["symbol", "ev_per_1000"]].equals(capped[["symbol", "ev_per_1000"]])
    empty = rel.settled_candidates(
        Lake(tmp_path / "none"), dt.date(2024, 1, 2), dt.date(2024, 1, 2)
    )
    assert empty.empty and rel.REALIZED in empty.columns


# ---------------------------------------------------------------------------- calibrated EV
def overpromising(n=4000, seed=RNG_SEED):
    """Rule EV that ranks realized yield but promises far more than it returns: realized is
    a loss everywhere, the EV's top tail positive (as measured on the demo's lake)."""
    rng = np.random.default_rng(seed)
    ev = rng.normal(-300.0, 250.0, size=n)
    frame = pd.DataFrame({m: rng.normal(size=n) for m in rel.RULE_MEASURES})
    frame["ev_per_1000"] = ev
    frame[rel.REALIZED] = -350.0 + 0.3 * (ev + 300.0) + 100.0 * rng.normal(size=n)
    frame["win"] = frame[rel.REALIZED] > 0
    frame["session"] = pd.Timestamp("2024-02-01")
    frame["expiry"] = pd.Timestamp("2024-03-15")
    return frame


def test_the_ev_curve_maps_the_rule_ev_to_what_it_realized():
    frame = overpromising()
    curve = rel.ev_curve(frame)
    assert curve is not None and curve.rows == len(frame)
    assert list(curve.realized) == sorted(curve.realized)  # isotonic: never decreasing
    table = rel.reliability_table(frame, "ev_per_1000")
    # At each decile's mean EV the curve gives about what that decile realized.
    np.testing.assert_allclose(
        curve.apply(table["predicted"]), table["realized_per_1000"], atol=25.0
    )
    promised = np.array([250.0, 0.0, -300.0, np.nan])
    calibrated = curve.apply(promised)
    assert (calibrated[:3] < 0).all()  # a promised +250 per $1,000 realized a loss
    assert calibrated[0] >= calibrated[1] >= calibrated[2]
    assert np.isnan(calibrated[3])
    shown = rel.with_calibrated_ev(pd.DataFrame({"ev_per_1000": promised}), curve)
    np.testing.assert_array_equal(shown[rel.EV_CALIBRATED].to_numpy(), calibrated)


def test_too_few_settled_candidates_give_no_curve_and_no_calibrated_ev():
    assert rel.ev_curve(overpromising(n=rel.MIN_SETTLED_ROWS - 1)) is None
    assert rel.ev_curve(overpromising().iloc[:0]) is None
    shown = rel.with_calibrated_ev(pd.DataFrame({"ev_per_1000": [10.0]}), None)
    assert shown[rel.EV_CALIBRATED].isna().all()
