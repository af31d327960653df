"""The drift report: calibration rules on resolved candidates, feature shift against the
training reference, and the weekly/monthly trends - on synthetic histories whose answer is
known."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.monitoring.calibration import calibration_figures
from butterquant_dagster.core.monitoring.drift import (
    DriftThresholds,
    accuracy_by_regime_trend,
    drift_report,
    feature_importance_trend,
)
from butterquant_dagster.core.monitoring.psi import (
    feature_psi,
    feature_reference,
    live_shares,
    population_stability_index,
)

META = {"model_version": "v7", "training_date": "2024-01-05"}


def _calibrated(n=5000, seed=0, low=0.05, high=0.95) -> pd.DataFrame:
    """Predictions spread over low..high whose outcomes are Bernoulli(prediction)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(low, high, size=n)
    return pd.DataFrame({"ml_success_prob": p, "win": (rng.uniform(size=n) < p).astype(int)})


def _drifted(n=1000) -> pd.DataFrame:
    """Every prediction says 0.7; only 30 % win."""
    wins = np.zeros(n, int)
    wins[: int(0.3 * n)] = 1
    return pd.DataFrame({"ml_success_prob": np.full(n, 0.7), "win": wins})


def _no_trades() -> pd.DataFrame:
    return pd.DataFrame(columns=["ml_success_prob", "won"])


def _expected_brier(frame: pd.DataFrame) -> float:
    p = frame["ml_success_prob"]
    return float(np.mean(p * (1 - p)))


# ---------------------------------------------------------------------------- formulas
def test_psi_matches_the_formula():
    expected, actual = [0.25, 0.25, 0.5], [0.5, 0.25, 0.25]
    by_hand = (0.5 - 0.25) * math.log(0.5 / 0.25) + 0 + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert population_stability_index(expected, actual) == pytest.approx(by_hand)
    assert population_stability_index(expected, actual) == pytest.approx(0.5 * math.log(2))
    assert population_stability_index(expected, expected) == 0.0
    # An empty bin is raised to eps: large but finite.
    assert population_stability_index([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    )
    with pytest.raises(ValueError, match="same length"):
        population_stability_index([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        population_stability_index([0.5, 0.6], [0.5, 0.5])


def test_calibration_figures_on_a_tiny_example():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.15, 0.15, 0.85, 0.65])
    figures = calibration_figures(y, p, high_confidence=0.6, bins=10)
    # Bins: [0.1, 0.2) holds 0.15, 0.15 (hit 1/2); [0.6, 0.7) holds 0.65 (hit 1);
    # [0.8, 0.9) holds 0.85 (hit 1). ECE = 2/4 * 0.35 + 1/4 * 0.35 + 1/4 * 0.15.
    assert figures["ece"] == pytest.approx(0.5 * 0.35 + 0.25 * 0.35 + 0.25 * 0.15)
    assert figures["brier"] == pytest.approx((0.85**2 + 0.15**2 + 0.15**2 + 0.35**2) / 4)
    assert figures["accuracy"] == 0.75  # 0.15 -> predicted loss, but it won
    assert figures["high_confidence_n"] == 2 and figures["hit_rate_high_confidence"] == 1.0
    empty = calibration_figures(np.zeros(0, int), np.zeros(0), high_confidence=0.6, bins=10)
    assert empty["n"] == 0 and empty["brier"] is None and empty["ece"] is None


# ---------------------------------------------------------------------------- status
def test_confident_predictions_that_lose_ask_for_a_retrain():
    history = _drifted()
    report = drift_report(history, _no_trades(), training_metrics={"brier": 0.21}, **META)
    assert report.status == "RETRAIN"
    assert report.reasons[0] == "hit rate 30.0% on 1,000 predictions >= 60% (below 50%)"
    assert any(r.startswith("Brier 0.3700 vs 0.2100 at training") for r in report.reasons)
    assert any(r.startswith("accuracy 30.0%") for r in report.reasons)
    figures = report.figures
    assert figures["hit_rate_high_confidence"] == pytest.approx(0.3)
    assert figures["brier_candidates"] == pytest.approx(0.7 * 0.49 + 0.3 * 0.09)
    assert figures["ece_candidates"] == pytest.approx(0.4)
    assert figures["model_version"] == "v7" and figures["training_date"] == "2024-01-05"
    table = report.reliability["candidates"]
    full = table.loc[table["count"] > 0]
    assert len(full) == 1 and int(full["count"].iloc[0]) == 1000
    assert full["mean_predicted"].iloc[0] == pytest.approx(0.7)
    assert full["hit_rate"].iloc[0] == pytest.approx(0.3)


def test_a_calibrated_history_is_ok():
    history = _calibrated()
    trained = _expected_brier(history)
    trades = history.head(300).rename(columns={"win": "won"})
    trades.loc[:99, "ml_success_prob"] = np.nan  # baseline trades carry no prediction
    report = drift_report(history, trades, training_metrics={"brier": trained, "ece": 0.01}, **META)
    assert report.status == "OK", report.reasons
    assert report.reasons[0].startswith("calibrated: Brier ")
    assert f"vs {trained:.4f} at training on 5,000 resolved candidates" in report.reasons[0]
    assert "no training reference in the model's metadata" in report.reasons[-1]
    assert report.feature_psi.empty and report.figures["max_feature_psi"] is None
    figures = report.figures
    assert figures["resolved_candidates"] == 5000 and figures["resolved_trades"] == 200
    assert figures["brier_trades"] is not None and figures["ece_training"] == 0.01
    assert figures["hit_rate_high_confidence"] > 0.7
    assert figures["accuracy"] > 0.65
    assert list(report.reliability["trades"]["count"]).count(0) < 10


def _overconfident(n=1000, seed=1) -> pd.DataFrame:
    """Half the predictions at or above 0.6, and those win only 30 % of the time; the other
    half below 0.55 and calibrated."""
    rng = np.random.default_rng(seed)
    high = rng.uniform(0.6, 0.9, size=n // 2)
    low = rng.uniform(0.05, 0.55, size=n - n // 2)
    wins_high = np.zeros(len(high), int)
    wins_high[: int(0.3 * len(high))] = 1
    wins_low = (rng.uniform(size=len(low)) < low).astype(int)
    return pd.DataFrame(
        {
            "ml_success_prob": np.concatenate([high, low]),
            "win": np.concatenate([wins_high, wins_low]),
        }
    )


def _brier(frame: pd.DataFrame) -> float:
    return float(np.mean((frame["ml_success_prob"] - frame["win"]) ** 2))


def test_brier_worse_than_at_training_beyond_the_margin_asks_for_a_retrain():
    history = _calibrated()
    brier = _brier(history)

    def judged(training_brier, thresholds=None):
        return drift_report(
            history,
            _no_trades(),
            training_metrics={"brier": training_brier},
            thresholds=thresholds or DriftThresholds(),
            **META,
        )

    degraded = judged(brier - 0.021)
    assert degraded.status == "RETRAIN"
    assert degraded.reasons[0] == (
        f"Brier {brier:.4f} vs {brier - 0.021:.4f} at training (margin 0.02)"
    )
    assert not any(r.startswith("hit rate") for r in degraded.reasons)
    assert not any(r.startswith("calibrated:") for r in degraded.reasons)
    # Inside the margin it is no drift; a wider margin tolerates the larger gap.
    inside = judged(brier - 0.019)
    assert inside.status == "OK", inside.reasons
    assert inside.reasons[0].startswith(f"calibrated: Brier {brier:.4f} vs ")
    wider = judged(brier - 0.021, DriftThresholds(brier_margin=0.03))
    assert wider.status == "OK", wider.reasons


def test_losing_confident_predictions_and_a_worse_brier_are_reported_together():
    history = _overconfident()
    brier = _brier(history)
    report = drift_report(history, _no_trades(), training_metrics={"brier": brier - 0.1}, **META)
    assert report.status == "RETRAIN"
    assert report.reasons[0] == "hit rate 30.0% on 500 predictions >= 60% (below 50%)"
    assert report.reasons[1] == (
        f"Brier {brier:.4f} vs {brier - 0.1:.4f} at training (margin 0.02)"
    )
    assert report.figures["brier_candidates"] == pytest.approx(brier)


def test_too_few_confident_predictions_are_no_hit_rate_evidence():
    # 300 rows with confident ones all losing: 10 of them are below
    # max(20, 300 // 10) = 30 and judge nothing; 30 of them are evidence.
    rng = np.random.default_rng(4)

    def history(confident):
        low = rng.uniform(0.05, 0.5, size=300 - confident)
        return pd.DataFrame(
            {
                "ml_success_prob": np.concatenate([low, np.full(confident, 0.8)]),
                "win": np.concatenate(
                    [(rng.uniform(size=len(low)) < low).astype(int), np.zeros(confident, int)]
                ),
            }
        )

    lenient = DriftThresholds(min_samples=300)
    few = drift_report(history(10), _no_trades(), training_metrics=None, thresholds=lenient, **META)
    assert few.status == "OK", few.reasons
    assert few.figures["high_confidence_n"] == 10
    assert few.figures["hit_rate_high_confidence"] == 0.0
    assert "not enough data: 10 predictions >= 60% to judge their hit rate (need 30)" in few.reasons
    enough = drift_report(
        history(30), _no_trades(), training_metrics=None, thresholds=lenient, **META
    )
    assert enough.status == "RETRAIN"
    assert enough.reasons[0] == "hit rate 0.0% on 30 predictions >= 60% (below 50%)"


def test_low_accuracy_is_a_warning_to_investigate():
    # Calibrated but timid: every prediction within 0.4..0.6, so (p >= 0.5) is a coin flip.
    history = _calibrated(low=0.4, high=0.599)
    report = drift_report(
        history, _no_trades(), training_metrics={"brier": _expected_brier(history)}, **META
    )
    assert report.status == "WARN", report.reasons
    assert report.reasons[0].startswith("accuracy 5")
    assert report.reasons[0].endswith("on 5,000 resolved candidates (below 65%): investigate")
    assert any(
        r.startswith("not enough data: 0 predictions >= 60% to judge their hit rate")
        for r in report.reasons
    )


def test_too_few_resolved_candidates_judge_nothing():
    history = _drifted(n=12)
    report = drift_report(history, _no_trades(), training_metrics={"brier": 0.1}, **META)
    assert report.status == "OK"
    assert report.reasons[0] == "not enough data: 12 resolved candidates (need 200)"
    assert report.figures["resolved_candidates"] == 12
    empty = drift_report(
        pd.DataFrame(),
        pd.DataFrame(),
        training_metrics=None,
        model_version="v7",
        training_date=None,
    )
    assert empty.status == "OK"
    assert empty.reasons[0] == "not enough data: 0 resolved candidates (need 200)"
    for name in ("brier_candidates", "ece_candidates", "accuracy", "brier_training", "base_rate"):
        assert empty.figures[name] is None, name
    assert empty.reliability["candidates"].empty
    # 150 rows are not enough by default, and are with a lower bar.
    history = _drifted(n=150)
    assert drift_report(history, _no_trades(), training_metrics=None, **META).status == "OK"
    lenient = DriftThresholds(min_samples=100)
    assert (
        drift_report(
            history, _no_trades(), training_metrics=None, thresholds=lenient, **META
        ).status
        == "RETRAIN"
    )


def test_bad_predictions_are_named():
    bad = pd.DataFrame({"ml_success_prob": [0.2, 1.7], "win": [0, 1]})
    with pytest.raises(ValueError, match=r"candidates: 1 ml_success_prob value\(s\) outside"):
        drift_report(bad, _no_trades(), training_metrics=None, **META)
    with pytest.raises(
        ValueError, match=r"trades are missing column\(s\) \['ml_success_prob', 'won'\]"
    ):
        drift_report(_calibrated(), pd.DataFrame({"x": [1]}), training_metrics=None, **META)


# ---------------------------------------------------------------------------- feature shift
def _features(n, seed, shift=0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "iv_rank": rng.normal(shift, 1.0, size=n),
            "is_call_fly": (rng.uniform(size=n) < 0.3).astype(float),
            "p_bear": np.full(n, 1 / 3),
        }
    )


COLUMNS = ["iv_rank", "is_call_fly", "p_bear"]


def test_feature_reference_is_json_and_handles_flags_and_constants():
    training = _features(4000, seed=1)
    reference = feature_reference(training, np.linspace(0.05, 0.95, 4000), COLUMNS, bins=10)
    assert json.loads(json.dumps(reference)) == reference
    flag = reference["features"]["is_call_fly"]
    assert flag["kind"] == "categorical" and flag["values"] == [0.0, 1.0]
    assert sum(flag["shares"]) == pytest.approx(1.0)
    assert flag["shares"][1] == pytest.approx(training["is_call_fly"].mean())
    constant = reference["features"]["p_bear"]
    assert constant["kind"] == "categorical" and constant["shares"] == [1.0]
    iv = reference["features"]["iv_rank"]
    assert iv["kind"] == "quantile" and len(iv["edges"]) == 11
    assert iv["shares"] == pytest.approx([0.1] * 10)
    assert reference["prediction"]["shares"] == pytest.approx([0.1] * 10)
    # Beyond the edges: the end bins. NaN: left out and counted.
    _, shares, n, missing = live_shares(iv, [-100.0, 100.0, np.nan])
    assert (n, missing) == (2, 1)
    assert shares[0] == 0.5 and shares[-1] == 0.5
    # A value the training rows never had lands in "other", which training never filled.
    _, shares, _, _ = live_shares(constant, [1 / 3, 0.5])
    assert list(shares) == [0.5, 0.5]


def test_a_shifted_feature_is_a_warning():
    training = _features(4000, seed=1)
    history = _calibrated()
    reference = feature_reference(training, history["ml_success_prob"], COLUMNS)
    live = _features(1000, seed=2, shift=1.0)
    report = drift_report(
        history,
        _no_trades(),
        training_metrics={"brier": _expected_brier(history)},
        live_features=live,
        live_predictions=np.random.default_rng(6).uniform(0.05, 0.95, size=1000),
        reference=reference,
        **META,
    )
    assert report.status == "WARN", report.reasons
    assert report.reasons[0].startswith("feature shift: iv_rank PSI ")
    assert report.reasons[0].endswith("(>= 0.25)")
    psi = report.feature_psi.set_index("feature")
    assert psi.loc["iv_rank", "level"] == "shifted" and psi.loc["iv_rank", "psi"] > 0.25
    assert psi.loc["is_call_fly", "psi"] < 0.1 and psi.loc["p_bear", "psi"] == 0.0
    assert report.figures["max_feature_psi"] == pytest.approx(psi.loc["iv_rank", "psi"])
    # The predictions come from the same distribution as at training: no prediction shift.
    assert report.figures["prediction_psi"] < 0.1
    assert report.prediction_shift["training_share"].sum() == pytest.approx(1.0)
    assert report.prediction_shift["live_share"].sum() == pytest.approx(1.0)
    assert any(r.startswith("calibrated: Brier") for r in report.reasons)

    stable = feature_psi(reference, _features(1000, seed=3))
    assert (stable["level"] == "stable").all()
    few = drift_report(
        history,
        _no_trades(),
        training_metrics=None,
        live_features=live.head(50),
        reference=reference,
        **META,
    )
    assert few.status == "OK"
    assert "not enough data: 50 live feature rows for PSI (need 200)" in few.reasons
    assert "not enough data: 0 live predictions for the prediction shift (need 200)" in (
        few.reasons
    )


def test_a_shifted_prediction_is_a_warning():
    history = _calibrated()
    reference = feature_reference(_features(4000, seed=1), history["ml_success_prob"], COLUMNS)
    report = drift_report(
        history,
        _no_trades(),
        training_metrics=None,
        live_features=_features(1000, seed=2),
        live_predictions=pd.Series(np.full(1000, 0.9), name="ml_success_prob"),
        reference=reference,
        **META,
    )
    assert report.status == "WARN", report.reasons
    assert any(r.startswith("prediction shift: P(win) PSI ") for r in report.reasons)
    assert report.figures["prediction_psi"] > 0.25
    assert report.prediction_shift["live_share"].sum() == pytest.approx(1.0)
    # Predictions are counted on their own: 1,000 feature rows do not make 150 enough.
    few = drift_report(
        history,
        _no_trades(),
        training_metrics=None,
        live_features=_features(1000, seed=2),
        live_predictions=np.full(150, 0.9),
        reference=reference,
        **META,
    )
    assert few.status == "OK", few.reasons
    assert few.figures["prediction_psi"] is None and few.prediction_shift.empty
    assert "not enough data: 150 live predictions for the prediction shift (need 200)" in (
        few.reasons
    )


def test_prediction_shift_is_not_measured_on_the_resolved_candidates():
    # 3 resolved candidates at 0.9 and 300 live feature rows: the resolved candidates'
    # predictions are not the live predictions, and 3 of them are no distribution.
    reference = feature_reference(_features(4000, seed=1), np.linspace(0.05, 0.95, 4000), COLUMNS)
    resolved = pd.DataFrame({"ml_success_prob": [0.9, 0.9, 0.9], "win": [0, 0, 0]})
    report = drift_report(
        resolved,
        _no_trades(),
        training_metrics=None,
        live_features=_features(300, seed=2),
        reference=reference,
        **META,
    )
    assert report.status == "OK", report.reasons
    assert not any(r.startswith("prediction shift") for r in report.reasons)
    assert report.figures["prediction_psi"] is None
    assert report.figures["max_feature_psi"] is not None  # the features are still judged
    assert "not enough data: 0 live predictions for the prediction shift (need 200)" in (
        report.reasons
    )
    with pytest.raises(ValueError, match="live_predictions must be numbers"):
        drift_report(
            resolved,
            _no_trades(),
            training_metrics=None,
            live_predictions=["high"] * 300,
            reference=reference,
            **META,
        )


# ---------------------------------------------------------------------------- trends
def test_feature_importance_trend():
    rng = np.random.default_rng(5)
    sessions = np.repeat(pd.to_datetime(["2024-01-02", "2024-01-09", "2024-01-16"]), 200)
    win = rng.integers(0, 2, size=600)
    win[400:] = 1  # the third week: everything won, no AUC
    resolved = pd.DataFrame(
        {
            "session": sessions,
            "win": win,
            "perfect": win * 2.0 - 1.0,  # separates winners exactly
            "inverse": 1.0 - win,  # separates them exactly, the other way
            "noise": rng.normal(size=600),
        }
    )
    trend = feature_importance_trend(resolved, ["perfect", "inverse", "noise"])
    assert list(trend.columns) == ["period", "feature", "importance", "n"]
    assert trend["period"].nunique() == 2
    assert (trend.loc[trend["feature"] != "noise", "importance"] == 1.0).all()
    assert (trend.loc[trend["feature"] == "noise", "importance"] < 0.2).all()
    assert set(trend["n"]) == {200}


def test_accuracy_by_regime_trend():
    resolved = pd.DataFrame(
        {
            "session": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-02-01", "2024-02-02"],
            "ml_success_prob": [0.7, 0.6, 0.2, 0.8, np.nan],
            "win": [1, 0, 0, 1, 1],
            "market_regime": ["bull", "bull", None, "bear", "bear"],
        }
    )
    trend = accuracy_by_regime_trend(resolved)
    assert list(trend.columns) == [
        "period",
        "regime",
        "n",
        "accuracy",
        "hit_rate",
        "mean_predicted",
    ]
    bull = trend.loc[(trend["period"] == "2024-01") & (trend["regime"] == "bull")].iloc[0]
    assert (bull["n"], bull["accuracy"], bull["hit_rate"]) == (2, 0.5, 0.5)
    assert bull["mean_predicted"] == pytest.approx(0.65)
    unknown = trend.loc[trend["regime"] == "unknown"].iloc[0]
    assert (unknown["n"], unknown["accuracy"]) == (1, 1.0)
    bear = trend.loc[trend["period"] == "2024-02"].iloc[0]
    assert (bear["regime"], bear["n"]) == ("bear", 1)  # the row without a prediction is out
    assert accuracy_by_regime_trend(resolved.iloc[:0]).empty


# ---------------------------------------------------------------------------- calibration
def _held_out(n=5000, seed=11) -> pd.DataFrame:
    """Like the probability model's held-out rows: predictions below 0.37 around a 17 %
    base rate, outcomes drawn at the predicted rate."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.beta(2.0, 10.0, size=n), 0.01, 0.37)
    return pd.DataFrame({"ml_success_prob": p, "win": (rng.uniform(size=n) < p).astype(int)})


def _half_the_wins_lost(history: pd.DataFrame, seed=12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    wins = np.flatnonzero(history["win"].to_numpy())
    lost = rng.choice(wins, size=len(wins) // 2, replace=False)
    out = history.copy()
    out.loc[lost, "win"] = 0
    return out


def test_half_the_wins_removed_asks_for_a_retrain_naming_the_calibration_test():
    history = _held_out()
    trained = _brier(history)
    unchanged = drift_report(history, _no_trades(), training_metrics={"brier": trained}, **META)
    assert unchanged.status == "OK", unchanged.reasons
    assert any(
        r.startswith("calibration-in-the-large") and "within significance" in r
        for r in unchanged.reasons
    )
    drifted = _half_the_wins_lost(history)
    report = drift_report(drifted, _no_trades(), training_metrics={"brier": trained}, **META)
    figures = report.figures
    # What the old rules saw: no confident prediction, and a Brier score that fell.
    assert figures["high_confidence_n"] == 0
    assert figures["brier_candidates"] < trained
    assert report.status == "RETRAIN", report.reasons
    first = report.reasons[0]
    assert first.startswith("calibration-in-the-large (Poisson-binomial z test): ")
    assert "below predicted" in first
    assert not any(r.startswith("calibrated:") for r in report.reasons)
    # The test statistic is the one of a sum of Bernoullis.
    p, y = drifted["ml_success_prob"].to_numpy(), drifted["win"].to_numpy()
    sd = math.sqrt(float(np.sum(p * (1 - p))))
    z = (y.sum() - p.sum() + 0.5) / sd
    assert figures["calibration_z"] == pytest.approx(z)
    assert figures["wins"] == y.sum() and figures["expected_wins"] == pytest.approx(p.sum())
    assert figures["base_rate"] < 0.7 * figures["mean_probability"]


def test_more_wins_than_predicted_is_also_drift():
    history = _held_out()
    more = history.copy()
    rng = np.random.default_rng(5)
    losses = np.flatnonzero(more["win"].to_numpy() == 0)
    more.loc[rng.choice(losses, size=len(losses) // 4, replace=False), "win"] = 1
    report = drift_report(more, _no_trades(), training_metrics=None, **META)
    assert report.status == "RETRAIN"
    assert "above predicted" in report.reasons[0]


def test_a_small_gap_is_not_material_and_chance_is_not_significant():
    history = _held_out(n=200_000, seed=3)
    # 5 % fewer wins: highly significant on 200,000 rows, but below the 20 % margin.
    rng = np.random.default_rng(6)
    wins = np.flatnonzero(history["win"].to_numpy())
    history.loc[rng.choice(wins, size=len(wins) // 20, replace=False), "win"] = 0
    report = drift_report(history, _no_trades(), training_metrics=None, **META)
    assert report.figures["calibration_p_value"] < 0.01
    assert report.status == "OK", report.reasons
    # With a 4 % margin the same gap asks for a retraining.
    strict = drift_report(
        history,
        _no_trades(),
        training_metrics=None,
        thresholds=DriftThresholds(calibration_margin=0.04),
        **META,
    )
    assert strict.status == "RETRAIN" and "calibration-in-the-large" in strict.reasons[0]


def test_outcomes_clustered_by_expiry_are_not_independent_evidence():
    # 40 (symbol, expiry) groups of 50 flies that settle together: each group all wins or
    # all loses. 10 of 40 groups winning against 17 % predicted is within chance for 40
    # groups, but far outside it for 2,000 independent coins.
    groups, size, p = 40, 50, 0.17
    won = np.arange(groups) < 10  # 25 % of the groups won: 500 wins vs 340 predicted
    frame = pd.DataFrame(
        {
            "symbol": np.repeat([f"T{i}" for i in range(groups)], size),
            "expiry": pd.Timestamp("2025-04-17"),
            "ml_success_prob": p,
            "win": np.repeat(won, size).astype(int),
        }
    )
    independent = drift_report(
        frame.drop(columns=["symbol", "expiry"]), _no_trades(), training_metrics=None, **META
    )
    clustered = drift_report(frame, _no_trades(), training_metrics=None, **META)
    assert independent.status == "RETRAIN"
    assert independent.figures["calibration_p_value"] < 1e-6
    # Robust variance: 40/39 * (10 * 41.5^2 + 30 * 8.5^2), sd about 141 wins.
    assert clustered.figures["calibration_z"] == pytest.approx(159.5 / math.sqrt(19890.4), rel=1e-3)
    assert clustered.figures["calibration_p_value"] > 0.01
    # ECE's noise floor widens by the same design effect (about 40 here: 2,000 rows that
    # behave like 40), so the 0.08 gap of 10 winning groups is noise, not a warning.
    assert clustered.figures["ece_noise"] > 5 * independent.figures["ece_noise"]
    assert independent.figures["ece_candidates"] > independent.figures["ece_noise"]
    assert clustered.status == "OK", clustered.reasons
    assert any(
        r.startswith("calibration-in-the-large") and "within significance" in r
        for r in clustered.reasons
    )


def test_ece_above_the_threshold_is_flagged_and_noise_is_not():
    # Calibrated overall (mean prediction = win rate) but wrong in each half: the low half
    # predicted 0.10 wins 20 %, the high half predicted 0.30 wins 20 %. ECE 0.10.
    n = 4000
    rng = np.random.default_rng(9)
    p = np.where(np.arange(n) < n // 2, 0.10, 0.30)
    y = (rng.uniform(size=n) < 0.20).astype(int)
    frame = pd.DataFrame({"ml_success_prob": p, "win": y})
    report = drift_report(frame, _no_trades(), training_metrics=None, **META)
    ece = report.figures["ece_candidates"]
    assert ece == pytest.approx(0.10, abs=0.02)
    assert report.figures["ece_noise"] < 0.03
    assert report.status == ("RETRAIN" if ece > 0.10 else "WARN")
    assert any(r.startswith("ECE ") and "above" in r for r in report.reasons)
    lenient = DriftThresholds(ece_warn=0.05, ece_retrain=0.5)
    warned = drift_report(frame, _no_trades(), training_metrics=None, thresholds=lenient, **META)
    assert warned.status == "WARN" and any(
        r.startswith("ECE ") and r.endswith("above 0.05") for r in warned.reasons
    )
    # 200 calibrated rows: an ECE this large is the sample's noise, not drift.
    small = _held_out(n=200, seed=1)
    quiet = drift_report(small, _no_trades(), training_metrics=None, **META)
    figures = quiet.figures
    assert figures["ece_noise"] > 0.03
    assert quiet.status == "OK", quiet.reasons


def _with_yields(history: pd.DataFrame, realized_shift: float, seed=13) -> pd.DataFrame:
    """A predicted yield per $1,000 and a realized one drawn around it (+ shift)."""
    rng = np.random.default_rng(seed)
    predicted = rng.normal(-50.0, 150.0, size=len(history))
    realized = predicted + realized_shift + rng.normal(0.0, 600.0, size=len(history))
    return history.assign(ml_expected_roi=predicted / 1000.0, yield_per_1000=realized)


def test_realized_yield_far_below_predicted_asks_for_a_retrain():
    history = _held_out()
    fine = drift_report(_with_yields(history, 0.0), _no_trades(), training_metrics=None, **META)
    assert fine.status == "OK", fine.reasons
    assert any(r.startswith("yield per $1,000:") and "within" in r for r in fine.reasons)
    table = fine.yield_reliability
    assert list(table["decile"]) == list(range(10)) and table["count"].sum() == len(history)
    assert table["mean_predicted"].is_monotonic_increasing
    poor = drift_report(_with_yields(history, -500.0), _no_trades(), training_metrics=None, **META)
    assert poor.status == "RETRAIN", poor.reasons
    (reason,) = [r for r in poor.reasons if r.startswith("yield per $1,000:")]
    assert "below predicted" in reason
    figures = poor.figures
    assert figures["yield_realized"] < figures["yield_predicted"] - 400
    assert figures["yield_n"] == len(history)


def test_the_psi_threshold_is_defined_once():
    from butterquant_dagster.core.monitoring.psi import PSI_SHIFTED

    assert DriftThresholds().psi_warn == PSI_SHIFTED


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="significance"):
        DriftThresholds(significance=0.0)
    with pytest.raises(ValueError, match="ECE thresholds"):
        DriftThresholds(ece_warn=0.2, ece_retrain=0.1)
