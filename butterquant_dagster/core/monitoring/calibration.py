"""Calibration of the win probability against what actually happened.

A probability model can rank well and still lie about its numbers; the 20-slot portfolio
sizes its trust on those numbers, so these figures compare the predicted P(win) with the
observed win share, on the same bins and formulas the training report used
(:mod:`butterquant_dagster.core.ml.validation`), so "now" and "at training" are comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm
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


# ---------------------------------------------------------------------------- judged tests
YIELD_RELIABILITY_COLUMNS = ("decile", "low", "high", "count", "mean_predicted", "mean_realized")
ECE_NOISE_DRAWS = 200  # simulated calibrated outcomes behind the ECE noise floor


def cluster_codes(frame: pd.DataFrame, keep: np.ndarray) -> np.ndarray | None:
    """One code per (symbol, expiry) of the kept rows, or None without those columns.

    Butterflies on one ticker and expiry settle on the same closing price, so their
    outcomes move together: counting them as independent would make a calibrated model
    look significantly wrong after one unlucky expiry.
    """
    if not {"symbol", "expiry"} <= set(frame.columns):
        return None
    keys = frame.loc[keep, ["symbol", "expiry"]].astype(str)
    return pd.MultiIndex.from_frame(keys).factorize()[0]


def known_rows(frame: pd.DataFrame, outcome: str) -> np.ndarray:
    """The mask :func:`resolved_outcomes` keeps, to align other columns with ``(y, p)``."""
    if not len(frame):
        return np.zeros(0, bool)
    p = pd.to_numeric(frame[PREDICTION], errors="coerce").to_numpy(float)
    return np.isfinite(p) & frame[outcome].astype("boolean").notna().to_numpy()


def _sum_variance(residuals: np.ndarray, clusters: np.ndarray | None, independent: float):
    """The larger of the variance under independence and the cluster-robust one
    (G/(G-1) * sum over clusters of the squared residual sums)."""
    if clusters is None or not len(residuals):
        return independent, None
    sums = np.bincount(clusters, weights=residuals)
    g = len(sums)
    robust = float(g / (g - 1) * np.sum(sums**2)) if g > 1 else float(np.sum(sums**2))
    return max(independent, robust), g


def calibration_in_the_large(y: np.ndarray, p: np.ndarray, clusters=None) -> dict:
    """Realized wins against the sum of predicted probabilities, as a two-sided z test.

    Under a calibrated model the number of wins of independent candidates is
    Poisson-binomial with mean sum p and variance sum p(1 - p). The test uses its normal
    approximation with a continuity correction rather than the exact distribution: the
    report judges only from a few hundred rows, where sum p(1 - p) is in the tens and the
    approximation's error (Berry-Esseen) is far below the significance levels used, and
    the exact convolution is quadratic in rows (the history has hundreds of thousands).
    With ``clusters`` (codes of (symbol, expiry)), the variance is the larger of that one
    and the cluster-robust one, so correlated outcomes do not pass for evidence.
    """
    n = len(y)
    if not n:
        return {"n": 0}
    wins, expected = float(np.sum(y)), float(np.sum(p))
    independent = float(np.sum(p * (1.0 - p)))
    variance, groups = _sum_variance(y - p, clusters, independent)
    gap = wins - expected
    # How much the clusters widen the noise, measured around the sample's own gap so that
    # drift itself does not count as noise.
    centred, _ = _sum_variance(y - p - gap / n, clusters, independent)
    sd = float(np.sqrt(variance))
    z = float(np.sign(gap) * max(abs(gap) - 0.5, 0.0) / sd) if sd > 0 else 0.0
    return {
        "n": n,
        "wins": int(wins),
        "expected_wins": expected,
        "sd": sd,
        "z": z,
        "p_value": float(2.0 * norm.sf(abs(z))) if sd > 0 else 1.0,
        "realized_rate": wins / n,
        "predicted_rate": expected / n,
        "relative_gap": gap / expected if expected > 0 else None,
        "clusters": groups,
        "design_effect": centred / independent if independent > 0 else 1.0,
    }


def ece_noise(p: np.ndarray, bins: int, quantile: float, draws: int = ECE_NOISE_DRAWS) -> float:
    """The ``quantile`` of the ECE a perfectly calibrated model shows on these predictions.

    ECE is positive on any finite sample (each bin's hit rate is noisy); on a few hundred
    rows the noise alone can reach 0.05. Outcomes are drawn as Bernoulli(p) ``draws``
    times with a fixed seed, so the floor is the same on every run. The draws are
    independent; the caller widens the floor by the clusters' design effect.
    """
    if not len(p):
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    predicted = np.bincount(which, weights=p, minlength=bins)
    rng = np.random.default_rng(0)
    values = np.empty(draws)
    for i in range(draws):
        hits = np.bincount(which, weights=rng.uniform(size=len(p)) < p, minlength=bins)
        values[i] = np.sum(np.abs(predicted - hits)) / len(p)
    return float(np.quantile(values, quantile))


def yield_calibration(
    predicted: np.ndarray, realized: np.ndarray, clusters=None, deciles: int = 10
) -> tuple[dict, pd.DataFrame]:
    """Mean realized against mean predicted yield per $1,000, a z test on their gap, and
    the table by predicted decile.

    Butterfly yields are heavy-tailed (-1,000 to several thousand), so the gap is judged
    on its standard error - cluster-robust by (symbol, expiry) when ``clusters`` is given,
    never below the one under independence - not on the raw difference alone.
    """
    n = len(predicted)
    if not n:
        return {"n": 0}, pd.DataFrame(columns=list(YIELD_RELIABILITY_COLUMNS))
    residual = realized - predicted
    gap = float(residual.mean())
    independent = float(np.var(residual, ddof=1) * n) if n > 1 else 0.0
    variance, groups = _sum_variance(residual - gap, clusters, independent)
    se = float(np.sqrt(variance)) / n
    z = gap / se if se > 0 else 0.0
    figures = {
        "n": n,
        "mean_predicted": float(predicted.mean()),
        "mean_realized": float(realized.mean()),
        "gap": gap,
        "se": se,
        "z": float(z),
        "p_value": float(2.0 * norm.sf(abs(z))) if se > 0 else 1.0,
        "clusters": groups,
    }
    decile = pd.qcut(pd.Series(predicted), deciles, labels=False, duplicates="drop")
    frame = pd.DataFrame({"decile": decile, "predicted": predicted, "realized": realized})
    table = (
        frame.groupby("decile")
        .agg(
            low=("predicted", "min"),
            high=("predicted", "max"),
            count=("predicted", "size"),
            mean_predicted=("predicted", "mean"),
            mean_realized=("realized", "mean"),
        )
        .reset_index()
    )
    table["decile"] = table["decile"].astype(int)
    return figures, table[list(YIELD_RELIABILITY_COLUMNS)]
