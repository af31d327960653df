"""Is the probability model still telling the truth? Compare what it predicted with what
the candidates it scored actually did, once their expiries have passed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss


@dataclass(frozen=True)
class DriftRules:
    high_confidence: float = 0.60  # predictions at or above this should mostly win
    min_hit_rate: float = 0.50
    brier_margin: float = 0.02  # Brier worse than at training by more than this
    min_samples: int = 200


@dataclass(frozen=True)
class DriftStatus:
    drifted: bool
    reason: str
    resolved: int
    high_confidence_n: int
    high_confidence_hit_rate: float | None
    brier: float | None
    training_brier: float | None


def drift_status(
    resolved: pd.DataFrame, training_brier: float | None, rules: DriftRules | None = None
) -> DriftStatus:
    """``resolved``: rows with ``ml_success_prob`` (the prediction made at entry) and
    ``win`` (the outcome), only for candidates whose expiry has passed."""
    rules = rules or DriftRules()
    rows = resolved.dropna(subset=["ml_success_prob"])
    n = len(rows)
    if n < rules.min_samples:
        return DriftStatus(
            False,
            f"only {n} resolved predictions (need {rules.min_samples})",
            n,
            0,
            None,
            None,
            training_brier,
        )
    p = rows["ml_success_prob"].to_numpy(float)
    y = rows["win"].to_numpy(int)
    brier = float(brier_score_loss(y, np.clip(p, 0, 1)))
    high = p >= rules.high_confidence
    hit = float(y[high].mean()) if high.any() else None
    reasons = []
    if (
        high.sum() >= max(20, rules.min_samples // 10)
        and hit is not None
        and (hit < rules.min_hit_rate)
    ):
        reasons.append(
            f"hit rate {hit:.1%} on {int(high.sum())} predictions >= "
            f"{rules.high_confidence:.0%} (below {rules.min_hit_rate:.0%})"
        )
    if training_brier is not None and brier > training_brier + rules.brier_margin:
        reasons.append(
            f"Brier {brier:.4f} vs {training_brier:.4f} at training (margin {rules.brier_margin})"
        )
    drifted = bool(reasons)
    reason = (
        "; ".join(reasons)
        if drifted
        else (f"calibrated: Brier {brier:.4f} on {n} resolved predictions")
    )
    return DriftStatus(drifted, reason, n, int(high.sum()), hit, brier, training_brier)


STATUSES = ("OK", "WARN", "RETRAIN")


@dataclass
class DriftReport:
    """Calibration and drift of one model version over one period.

    ``status`` is OK, WARN or RETRAIN; ``reasons`` says why (also for OK, e.g. "not enough
    data: 12 resolved candidates (need 200)").

    ``figures`` keys: model_version, training_date, resolved_candidates, resolved_trades,
    brier_candidates, brier_trades, brier_training, ece_candidates, ece_trades, ece_training,
    hit_rate_high_confidence, high_confidence_n, accuracy, mean_probability, base_rate,
    max_feature_psi, prediction_psi; ``None`` where not computable.

    ``reliability``: "candidates" and "trades" frames with bin, low, high, count,
    mean_predicted, hit_rate (one row per probability bucket).

    ``feature_psi``: feature, psi, level (stable < 0.1 <= moderate < 0.25 <= shifted).

    ``prediction_shift``: bin, low, high, training_share, live_share (the P(win)
    distribution at training vs live).
    """

    status: str
    reasons: list[str]
    figures: dict
    reliability: dict[str, pd.DataFrame]
    feature_psi: pd.DataFrame
    prediction_shift: pd.DataFrame
