"""Drift: a model whose confident predictions stop winning, or whose Brier score degrades,
asks for a retrain; a calibrated one does not; too little evidence decides nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from butterquant_dagster.core.monitoring.drift import DriftRules, drift_status


def _calibrated(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Predictions spread over 0.05..0.95 whose outcomes are Bernoulli(prediction)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=n)
    return pd.DataFrame({"ml_success_prob": p, "win": (rng.uniform(size=n) < p).astype(int)})


def _overconfident(n: int = 1000, seed: int = 1) -> pd.DataFrame:
    """Half the predictions at or above 0.6, and those win only 30% of the time."""
    rng = np.random.default_rng(seed)
    high = rng.uniform(0.6, 0.9, size=n // 2)
    low = rng.uniform(0.05, 0.55, size=n - n // 2)
    wins_high = np.zeros(len(high), int)
    wins_high[: int(0.3 * len(high))] = 1
    wins_low = (rng.uniform(size=len(low)) < low).astype(int)
    frame = pd.DataFrame(
        {
            "ml_success_prob": np.concatenate([high, low]),
            "win": np.concatenate([wins_high, wins_low]),
        }
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def test_confident_predictions_that_lose_request_a_retrain():
    history = _overconfident()
    status = drift_status(history, training_brier=None)
    assert status.drifted
    assert "hit rate 30.0%" in status.reason
    assert "500 predictions >= 60%" in status.reason
    assert status.high_confidence_n == 500
    assert status.high_confidence_hit_rate == pytest.approx(0.3)
    assert status.resolved == 1000
    expected = brier_score_loss(history["win"], history["ml_success_prob"])
    assert status.brier == pytest.approx(expected)


def test_a_calibrated_history_is_not_drift():
    history = _calibrated()
    expected_brier = float(np.mean(history["ml_success_prob"] * (1 - history["ml_success_prob"])))
    status = drift_status(history, training_brier=expected_brier)
    assert not status.drifted, status.reason
    assert status.reason.startswith("calibrated: Brier")
    assert f"on {len(history)} resolved predictions" in status.reason
    assert status.high_confidence_hit_rate > 0.7
    assert status.high_confidence_n == int((history["ml_success_prob"] >= 0.6).sum())
    assert status.brier == pytest.approx(expected_brier, abs=0.01)
    assert status.training_brier == expected_brier


def test_brier_degradation_beyond_the_margin_triggers():
    history = _calibrated()
    brier = brier_score_loss(history["win"], history["ml_success_prob"])
    degraded = drift_status(history, training_brier=brier - 0.021)
    assert degraded.drifted
    assert "Brier" in degraded.reason and "at training (margin 0.02)" in degraded.reason
    assert "hit rate" not in degraded.reason
    # Inside the margin it is not drift; a wider margin tolerates the larger gap.
    assert not drift_status(history, training_brier=brier - 0.019).drifted
    assert not drift_status(
        history, training_brier=brier - 0.021, rules=DriftRules(brier_margin=0.03)
    ).drifted


def test_both_reasons_are_reported_together():
    history = _overconfident()
    brier = brier_score_loss(history["win"], history["ml_success_prob"])
    status = drift_status(history, training_brier=brier - 0.1)
    assert status.drifted
    assert "hit rate" in status.reason and "; Brier" in status.reason


def test_too_few_resolved_predictions_decide_nothing():
    history = _overconfident(n=150)
    status = drift_status(history, training_brier=0.01)
    assert not status.drifted
    assert status.reason == "only 150 resolved predictions (need 200)"
    assert status.resolved == 150
    assert status.brier is None and status.high_confidence_hit_rate is None
    assert status.training_brier == 0.01
    # Rows without a prediction do not count as evidence.
    padded = pd.concat(
        [history, pd.DataFrame({"ml_success_prob": [np.nan] * 100, "win": [0] * 100})],
        ignore_index=True,
    )
    status = drift_status(padded, training_brier=None)
    assert not status.drifted and status.resolved == 150
    # With a lower bar the same evidence is enough to flag the losing confident predictions.
    assert drift_status(history, training_brier=None, rules=DriftRules(min_samples=100)).drifted


def test_too_few_confident_predictions_are_no_hit_rate_evidence():
    # 300 rows, only 10 of them confident and all losing: below max(20, 300 // 10) = 30.
    rng = np.random.default_rng(4)
    low = rng.uniform(0.05, 0.5, size=290)
    history = pd.DataFrame(
        {
            "ml_success_prob": np.concatenate([low, np.full(10, 0.8)]),
            "win": np.concatenate([(rng.uniform(size=290) < low).astype(int), np.zeros(10, int)]),
        }
    )
    status = drift_status(history, training_brier=None)
    assert not status.drifted
    assert status.high_confidence_n == 10
    assert status.high_confidence_hit_rate == 0.0
