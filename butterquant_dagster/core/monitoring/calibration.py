"""Calibration of the win probability against what actually happened.

A probability model can rank well and still lie about its numbers; the 20-slot portfolio
sizes its trust on those numbers, so these figures compare the predicted P(win) with the
observed win share, on the same bins and formulas the training report used
(:mod:`butterquant_dagster.core.ml.validation`), so "now" and "at training" are comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss

from butterquant_dagster.core.ml.validation import (
    accuracy_by_group,
    expected_calibration_error,
    reliability_table,
)

PREDICTION = "ml_success_prob"
RELIABILITY_COLUMNS = ("bin", "low", "high", "count", "mean_predicted", "hit_rate")
CALIBRATION_FIGURES = (
    "n",
    "brier",
    "ece",
    "accuracy",
    "mean_probability",
    "base_rate",
    "high_confidence_n",
    "hit_rate_high_confidence",
)


def resolved_outcomes(frame: pd.DataFrame, outcome: str, what: str) -> tuple[np.ndarray, ...]:
    """``(y, p)`` of the rows that carry a prediction and an outcome.

    Rows without a prediction (the baseline track's trades) or without an outcome are
    dropped: they are no evidence about the model. A prediction outside [0, 1] is an error.
    """
    if not len(frame):
        return np.zeros(0, int), np.zeros(0)
    missing = [c for c in (PREDICTION, outcome) if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} are missing column(s) {missing}; found {list(frame.columns)}")
    p = pd.to_numeric(frame[PREDICTION], errors="coerce").to_numpy(float)
    y = frame[outcome].astype("boolean")
    known = np.isfinite(p) & y.notna().to_numpy()
    p, y = p[known], y[known].to_numpy(bool).astype(int)
    outside = (p < 0) | (p > 1)
    if outside.any():
        raise ValueError(
            f"{what}: {int(outside.sum())} {PREDICTION} value(s) outside [0, 1], "
            f"e.g. {p[outside][0]!r}"
        )
    return y, p


def calibration_figures(y: np.ndarray, p: np.ndarray, *, high_confidence: float, bins: int):
    """Brier, ECE, accuracy at 0.5, and the hit rate of the predictions >= high_confidence.

    Every figure is ``None`` without rows (and the hit rate without a confident prediction).
    """
    n = len(y)
    if not n:
        return {**dict.fromkeys(CALIBRATION_FIGURES), "n": 0, "high_confidence_n": 0}
    high = p >= high_confidence
    return {
        "n": n,
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p, bins),
        "accuracy": float(((p >= 0.5) == y).mean()),
        "mean_probability": float(p.mean()),
        "base_rate": float(y.mean()),
        "high_confidence_n": int(high.sum()),
        "hit_rate_high_confidence": float(y[high].mean()) if high.any() else None,
    }


def reliability_frame(y: np.ndarray, p: np.ndarray, bins: int) -> pd.DataFrame:
    """One row per probability bucket: how often the predictions in it came true."""
    if not len(y):
        return pd.DataFrame(columns=list(RELIABILITY_COLUMNS))
    return pd.DataFrame(reliability_table(y, p, bins), columns=list(RELIABILITY_COLUMNS))


def period_labels(sessions: pd.Series, period: str) -> pd.Series:
    """The calendar period of each session as text ("2024-03" for "M", "2024-03-04/2024-03-10"
    for "W"), which sorts in time order and prints as is in a report."""
    return pd.to_datetime(sessions).dt.to_period(period).astype(str)


def regime_column(frame: pd.DataFrame) -> str:
    column = next((c for c in ("regime", "market_regime") if c in frame.columns), None)
    if column is None:
        raise ValueError(
            f"resolved candidates need a regime (or market_regime) column; "
            f"found {list(frame.columns)}"
        )
    return column


def accuracy_by_regime_trend(resolved: pd.DataFrame, period: str = "M") -> pd.DataFrame:
    """Per period and market regime: n, accuracy at 0.5, hit rate and mean prediction.

    For the monthly report: a model can stay calibrated overall while failing in one regime
    (a bear month after training on bull months), which the overall figures average away.
    Candidates without a regime are counted under ``unknown``.
    """
    columns = ["period", "regime", "n", "accuracy", "hit_rate", "mean_predicted"]
    if not len(resolved):
        return pd.DataFrame(columns=columns)
    if "session" not in resolved.columns:
        raise ValueError(f"resolved candidates need a session column; found {list(resolved)}")
    if PREDICTION not in resolved.columns or "win" not in resolved.columns:
        raise ValueError(
            f"resolved candidates need {PREDICTION} and win columns; found {list(resolved)}"
        )
    known = resolved.loc[
        pd.to_numeric(resolved[PREDICTION], errors="coerce").notna() & resolved["win"].notna()
    ]
    regime = known[regime_column(known)]
    labels = regime.astype(object).where(regime.notna(), "unknown").astype(str)
    rows = []
    for label, part in known.groupby(period_labels(known["session"], period), sort=True):
        y, p = resolved_outcomes(part, "win", "resolved candidates")
        for name, figures in accuracy_by_group(y, p, labels.loc[part.index]).items():
            rows.append({"period": label, "regime": name, **figures})
    return pd.DataFrame(rows, columns=columns)
