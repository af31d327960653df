"""Is the probability model still telling the truth? Compare what it predicted with what
the candidates it scored actually did, once their expiries have passed, and whether the
inputs it sees today still look like the ones it was trained on.

:func:`drift_report` gives the full picture the sensor and the reports use (calibration on
candidates and on trades, reliability, feature and prediction shift) with an OK / WARN /
RETRAIN status.

Drift is judged on calibration itself. At a base rate near 17 % the Brier score *falls*
when wins get rarer, and the model never predicts the >= 0.60 the hit-rate rule needs, so
neither sees a model whose wins have halved. The rules that do: realized wins against the
sum of the predictions (calibration in the large), ECE beyond its sampling noise, and the
expected-yield model's realized against predicted yield.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from butterquant_dagster.core.monitoring.calibration import (
    YIELD_RELIABILITY_COLUMNS,
    accuracy_by_regime_trend,
    calibration_figures,
    calibration_in_the_large,
    cluster_codes,
    ece_noise,
    known_rows,
    period_labels,
    reliability_frame,
    resolved_outcomes,
    yield_calibration,
)
from butterquant_dagster.core.monitoring.psi import (
    PSI_COLUMNS,
    PSI_SHIFTED,
    SHIFT_COLUMNS,
    feature_psi,
    prediction_shift,
)
from butterquant_dagster.core.settings import default

__all__ = [
    "STATUSES",
    "DriftReport",
    "DriftThresholds",
    "accuracy_by_regime_trend",
    "drift_report",
    "feature_importance_trend",
]


def min_confident(min_samples: int) -> int:
    """Confident predictions needed before their hit rate is evidence: a handful of
    unlucky trades must not ask for a retrain."""
    return max(20, min_samples // 10)


STATUSES = ("OK", "WARN", "RETRAIN")


@dataclass
class DriftReport:
    """Calibration and drift of one model version over one period.

    ``status`` is OK, WARN or RETRAIN; ``reasons`` says why (also for OK, e.g. "not enough
    data: 12 resolved candidates (need 200)").

    ``figures`` keys: model_version, training_date, resolved_candidates, resolved_trades,
    brier_candidates, brier_trades, brier_training, ece_candidates, ece_trades, ece_training,
    ece_noise, hit_rate_high_confidence, high_confidence_n, accuracy, mean_probability,
    base_rate, wins, expected_wins, calibration_z, calibration_p_value, yield_n,
    yield_predicted, yield_realized, yield_z, yield_p_value, max_feature_psi, prediction_psi;
    ``None`` where not computable.

    ``reliability``: "candidates" and "trades" frames with bin, low, high, count,
    mean_predicted, hit_rate (one row per probability bucket).

    ``feature_psi``: feature, psi, level (stable < ``PSI_MODERATE`` <= moderate <
    ``psi_warn`` <= shifted), live_n (live rows with a value), missing (live rows without
    one, left out).

    ``prediction_shift``: bin, low, high, training_share, live_share (the P(win)
    distribution at training vs live).

    ``yield_reliability``: decile, low, high, count, mean_predicted, mean_realized of the
    expected-yield model (per $1,000) on the resolved candidates, by predicted decile.
    """

    status: str
    reasons: list[str]
    figures: dict
    reliability: dict[str, pd.DataFrame]
    feature_psi: pd.DataFrame
    prediction_shift: pd.DataFrame
    yield_reliability: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(YIELD_RELIABILITY_COLUMNS))
    )


def _setting(name: str) -> float:
    return float(default(f"BUTTERQUANT_DRIFT_{name}"))


@dataclass(frozen=True)
class DriftThresholds:
    """When the drift report asks for attention (WARN) or for a new model (RETRAIN).

    The defaults of the configurable ones are the settings table's (``BUTTERQUANT_DRIFT_*``).
    """

    high_confidence: float = 0.60  # predictions at or above this should mostly win
    min_hit_rate: float = _setting("MIN_HIT_RATE")  # RETRAIN when those hit below it
    min_accuracy: float = _setting("MIN_ACCURACY")  # WARN when (p >= 0.5) == win less often
    brier_margin: float = 0.02  # RETRAIN when Brier is worse than at training by more
    # RETRAIN when realized wins differ from the sum of predictions at this level...
    significance: float = _setting("SIGNIFICANCE")
    # ... and the realized win rate is off the mean prediction by this share of it.
    calibration_margin: float = _setting("CALIBRATION_MARGIN")
    ece_warn: float = _setting("ECE_WARN")  # WARN when ECE exceeds it and the noise
    ece_retrain: float = _setting("ECE_RETRAIN")  # RETRAIN when ECE exceeds it and the noise
    yield_margin: float = _setting("YIELD_MARGIN")  # per $1,000, with ``significance``
    psi_warn: float = PSI_SHIFTED  # WARN when a feature's (or the prediction's) PSI reaches it
    min_samples: int = 200  # resolved candidates (and live rows) before judging anything
    bins: int = 10

    def __post_init__(self):
        if not 0.0 < self.significance < 1.0:
            raise ValueError(f"drift significance must be in (0, 1), got {self.significance}")
        if not 0.0 <= self.ece_warn <= self.ece_retrain:
            raise ValueError(
                f"drift ECE thresholds need 0 <= warn ({self.ece_warn}) <= retrain "
                f"({self.ece_retrain})"
            )
        if self.calibration_margin < 0 or self.yield_margin < 0:
            raise ValueError(
                f"drift margins must be >= 0, got calibration {self.calibration_margin} "
                f"and yield {self.yield_margin}"
            )


def drift_report(
    candidates: pd.DataFrame,
    trades: pd.DataFrame,
    *,
    model_version: str,
    training_date: dt.date | str | None,
    training_metrics: dict | None,
    live_features: pd.DataFrame | None = None,
    reference: dict | None = None,
    thresholds: DriftThresholds = DriftThresholds(),
    live_predictions: np.ndarray | pd.Series | None = None,
) -> DriftReport:
    """Calibration and drift of ``model_version``.

    - ``candidates``: resolved scan candidates this model scored, with ``ml_success_prob``
      (the prediction at entry) and ``win``; the caller selects the model's own rows. They
      are the evidence the rules judge: far more of them than of trades.
    - ``trades``: resolved journal rows with ``ml_success_prob`` and ``won``; baseline
      trades carry no prediction and are left out. Shown, not judged.
    - ``training_metrics``: the model metadata's ``metrics`` (brier, ece, ...).
    - ``live_features`` / ``reference``: recent candidates' feature values and the model
      metadata's training reference (:func:`~.psi.feature_reference`).
    - ``live_predictions``: the P(win) the model gave recent candidates, resolved or not -
      what the prediction shift compares with training. Not the resolved candidates' own:
      those lag by a butterfly's life and are a different, smaller population.

    Calibration is judged only on ``thresholds.min_samples`` resolved candidates or more,
    the feature shift only on as many live feature rows and the prediction shift only on
    as many live predictions: below that the evidence says nothing and the status stays OK
    with a "not enough data" reason.
    """
    t = thresholds
    y_c, p_c = resolved_outcomes(candidates, "win", "candidates")
    y_t, p_t = resolved_outcomes(trades, "won", "trades")
    on_candidates = calibration_figures(y_c, p_c, high_confidence=t.high_confidence, bins=t.bins)
    on_trades = calibration_figures(y_t, p_t, high_confidence=t.high_confidence, bins=t.bins)
    training = training_metrics or {}
    figures = {
        "model_version": model_version,
        "training_date": None if training_date is None else str(training_date)[:10],
        "resolved_candidates": on_candidates["n"],
        "resolved_trades": on_trades["n"],
        "brier_candidates": on_candidates["brier"],
        "brier_trades": on_trades["brier"],
        "brier_training": _number(training.get("brier")),
        "ece_candidates": on_candidates["ece"],
        "ece_trades": on_trades["ece"],
        "ece_training": _number(training.get("ece")),
        "hit_rate_high_confidence": on_candidates["hit_rate_high_confidence"],
        "high_confidence_n": on_candidates["high_confidence_n"],
        "accuracy": on_candidates["accuracy"],
        "mean_probability": on_candidates["mean_probability"],
        "base_rate": on_candidates["base_rate"],
    }
    keep = known_rows(candidates, "win")
    clusters = cluster_codes(candidates, keep)
    large = calibration_in_the_large(y_c, p_c, clusters)
    figures |= {
        "wins": large.get("wins"),
        "expected_wins": large.get("expected_wins"),
        "calibration_z": large.get("z"),
        "calibration_p_value": large.get("p_value"),
        # Correlated outcomes make every bin's hit rate noisier by about the square root of
        # the design effect the calibration test measured (1 for independent rows).
        "ece_noise": (
            ece_noise(p_c, t.bins, 1.0 - t.significance) * np.sqrt(large["design_effect"])
            if len(y_c) >= t.min_samples
            else None
        ),
    }
    yields, yield_table = _yields(candidates, keep, clusters)
    figures |= {
        "yield_n": yields["n"],
        "yield_predicted": yields.get("mean_predicted"),
        "yield_realized": yields.get("mean_realized"),
        "yield_z": yields.get("z"),
        "yield_p_value": yields.get("p_value"),
    }
    retrain, warn, info = _judge_calibration(figures, t)
    retrain2, warn2, info2 = _judge_large(figures, large, yields, t)
    if retrain2:  # Brier alone said "calibrated"; the direct tests disagree
        info = [r for r in info if not r.startswith("calibrated:")]
    retrain, warn, info = [*retrain, *retrain2], [*warn, *warn2], [*info, *info2]
    psi, shift, shift_figures, shift_warn, shift_info = _judge_shift(
        live_features, live_predictions, reference, t
    )
    figures.update(shift_figures)
    status = "RETRAIN" if retrain else "WARN" if warn + shift_warn else "OK"
    return DriftReport(
        status=status,
        reasons=[*retrain, *warn, *shift_warn, *info, *shift_info],
        figures=figures,
        reliability={
            "candidates": reliability_frame(y_c, p_c, t.bins),
            "trades": reliability_frame(y_t, p_t, t.bins),
        },
        feature_psi=psi,
        prediction_shift=shift,
        yield_reliability=yield_table,
    )


PREDICTED_YIELD = "ml_expected_roi"  # the expected-yield model's output: yield per $1 at risk
REALIZED_YIELD = "yield_per_1000"  # the candidate's outcome, per $1,000 at risk


def _yields(candidates: pd.DataFrame, keep: np.ndarray, clusters):
    """The expected-yield model's predictions and outcomes on the resolved candidates."""
    if not len(candidates) or not {PREDICTED_YIELD, REALIZED_YIELD} <= set(candidates.columns):
        return yield_calibration(np.zeros(0), np.zeros(0))
    rows = candidates.loc[keep]
    predicted = pd.to_numeric(rows[PREDICTED_YIELD], errors="coerce").to_numpy(float) * 1000.0
    realized = pd.to_numeric(rows[REALIZED_YIELD], errors="coerce").to_numpy(float)
    both = np.isfinite(predicted) & np.isfinite(realized)
    return yield_calibration(
        predicted[both], realized[both], None if clusters is None else clusters[both]
    )


def _judge_large(f: dict, large: dict, yields: dict, t: DriftThresholds):
    """(retrain, warn, info) of the calibration-in-the-large test, ECE and the yield check.

    A gap is acted on only when it is both significant (not chance, at ``significance``)
    and material (``calibration_margin`` of the mean prediction; ``yield_margin`` per
    $1,000): with a hundred thousand rows a harmless 1 % gap is significant too. Both
    directions ask for a retraining - fewer wins than predicted lose money on the trades
    the model lets in, more wins than predicted keep good trades out, and a retraining is
    cheap because a new model still has to pass the promotion gates.
    """
    retrain, warn, info = [], [], []
    n = f["resolved_candidates"]
    if n < t.min_samples:
        return retrain, warn, info  # _judge_calibration already says so
    level = f"{t.significance:g}"
    gap = large["relative_gap"]
    text = (
        f"calibration-in-the-large (Poisson-binomial z test): {large['wins']:,} wins on "
        f"{n:,} resolved candidates vs {large['expected_wins']:,.1f} predicted "
        f"({large['realized_rate']:.1%} vs {large['predicted_rate']:.1%}, "
        f"z {large['z']:+.2f}, p {large['p_value']:.2g}"
    )
    significant = large["p_value"] < t.significance
    if significant and gap is not None and abs(gap) >= t.calibration_margin:
        side = "below" if gap < 0 else "above"
        retrain.append(
            f"{text}): realized {abs(gap):.0%} {side} predicted (margin "
            f"{t.calibration_margin:.0%}, significance {level})"
        )
    else:
        info.append(f"{text}): within significance {level} or margin {t.calibration_margin:.0%}")
    ece, noise = f["ece_candidates"], f["ece_noise"]
    ece_text = f"ECE {ece:.3f} on {n:,} resolved candidates (noise floor {noise:.3f})"
    if ece > max(t.ece_retrain, noise):
        retrain.append(f"{ece_text} above {t.ece_retrain}")
    elif ece > max(t.ece_warn, noise):
        warn.append(f"{ece_text} above {t.ece_warn}")
    else:
        info.append(f"{ece_text} within {t.ece_warn} or the noise")
    m = yields["n"]
    if m < t.min_samples:
        info.append(
            f"not enough data: {m:,} resolved candidates with a predicted and realized yield "
            f"(need {t.min_samples:,})"
        )
        return retrain, warn, info
    yield_text = (
        f"yield per $1,000: realized {yields['mean_realized']:+,.0f} vs predicted "
        f"{yields['mean_predicted']:+,.0f} on {m:,} resolved candidates "
        f"(z {yields['z']:+.2f}, p {yields['p_value']:.2g}"
    )
    if yields["p_value"] < t.significance and abs(yields["gap"]) >= t.yield_margin:
        side = "below" if yields["gap"] < 0 else "above"
        retrain.append(
            f"{yield_text}): realized {abs(yields['gap']):,.0f} {side} predicted (margin "
            f"{t.yield_margin:g}, significance {level})"
        )
    else:
        info.append(f"{yield_text}): within significance {level} or margin {t.yield_margin:g}")
    return retrain, warn, info


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _judge_calibration(f: dict, t: DriftThresholds) -> tuple[list[str], list[str], list[str]]:
    """(retrain reasons, warn reasons, other reasons) from the candidates' figures."""
    n = f["resolved_candidates"]
    if n < t.min_samples:
        return [], [], [f"not enough data: {n:,} resolved candidates (need {t.min_samples:,})"]
    retrain, warn, info = [], [], []
    high_n, hit = f["high_confidence_n"], f["hit_rate_high_confidence"]
    if high_n < min_confident(t.min_samples):
        info.append(
            f"not enough data: {high_n:,} predictions >= {t.high_confidence:.0%} to judge "
            f"their hit rate (need {min_confident(t.min_samples):,})"
        )
    elif hit < t.min_hit_rate:
        retrain.append(
            f"hit rate {hit:.1%} on {high_n:,} predictions >= {t.high_confidence:.0%} "
            f"(below {t.min_hit_rate:.0%})"
        )
    brier, trained = f["brier_candidates"], f["brier_training"]
    if trained is not None and brier > trained + t.brier_margin:
        retrain.append(f"Brier {brier:.4f} vs {trained:.4f} at training (margin {t.brier_margin})")
    if f["accuracy"] < t.min_accuracy:
        warn.append(
            f"accuracy {f['accuracy']:.1%} on {n:,} resolved candidates "
            f"(below {t.min_accuracy:.0%}): investigate"
        )
    if not retrain:
        versus = (
            f" vs {trained:.4f} at training"
            if trained is not None
            else " (no training Brier in the model's metadata)"
        )
        info.append(f"calibrated: Brier {brier:.4f}{versus} on {n:,} resolved candidates")
    return retrain, warn, info


def _judge_shift(live_features, live_predictions, reference, t: DriftThresholds):
    """(feature_psi, prediction_shift, figures, warn reasons, other reasons)."""
    empty_psi = pd.DataFrame(columns=list(PSI_COLUMNS))
    empty_shift = pd.DataFrame(columns=list(SHIFT_COLUMNS))
    figures = {"max_feature_psi": None, "prediction_psi": None}
    if reference is None:
        reason = "no training reference in the model's metadata: feature shift not measured"
        return empty_psi, empty_shift, figures, [], [reason]
    warn, info = [], []
    psi = empty_psi
    rows = 0 if live_features is None else len(live_features)
    if rows < t.min_samples:
        info.append(f"not enough data: {rows:,} live feature rows for PSI (need {t.min_samples:,})")
    else:
        psi = feature_psi(reference, live_features, shifted=t.psi_warn)
        known = psi["psi"].dropna()
        figures["max_feature_psi"] = float(known.max()) if len(known) else None
        shifted = psi.loc[psi["psi"].notna() & (psi["psi"] >= t.psi_warn)]
        if len(shifted):
            named = ", ".join(f"{r.feature} PSI {r.psi:.2f}" for r in shifted.head(3).itertuples())
            more = f" and {len(shifted) - 3} more" if len(shifted) > 3 else ""
            warn.append(f"feature shift: {named}{more} (>= {t.psi_warn})")
        elif len(known):
            info.append(f"features stable: max PSI {known.max():.2f} ({psi['feature'].iloc[0]})")
    shift = empty_shift
    predictions = _finite(live_predictions)
    if len(predictions) < t.min_samples:
        info.append(
            f"not enough data: {len(predictions):,} live predictions for the prediction "
            f"shift (need {t.min_samples:,})"
        )
    else:
        shift, figures["prediction_psi"] = prediction_shift(reference, predictions)
        prediction_psi = figures["prediction_psi"]
        if prediction_psi is not None and prediction_psi >= t.psi_warn:
            warn.append(
                f"prediction shift: P(win) PSI {prediction_psi:.2f} vs training (>= {t.psi_warn})"
            )
    return psi, shift, figures, warn, info


def _finite(values) -> np.ndarray:
    """The known values of a prediction array or Series (None: none)."""
    if values is None:
        return np.zeros(0)
    try:
        x = pd.Series(np.asarray(values).ravel()).astype(float).to_numpy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"live_predictions must be numbers: {exc}") from exc
    return x[np.isfinite(x)]


def feature_importance_trend(resolved: pd.DataFrame, columns, period: str = "W") -> pd.DataFrame:
    """Per period and feature: how well the feature alone still separates winners.

    ``importance`` = |AUC - 0.5| x 2 of the feature's raw value against ``win`` (0: no
    better than a coin, 1: a perfect split either way). The gradient-boosting model has no
    coefficients to watch, and its split gains describe the training data only; this shows,
    week by week, which inputs still carry information on the outcomes that resolved.
    Periods where every candidate won (or every one lost) have no AUC and are skipped.
    """
    out_columns = ["period", "feature", "importance", "n"]
    columns = list(columns)
    if not len(resolved):
        return pd.DataFrame(columns=out_columns)
    missing = [c for c in ("session", "win", *columns) if c not in resolved.columns]
    if missing:
        raise ValueError(f"feature_importance_trend: resolved is missing column(s) {missing}")
    frame = resolved.loc[resolved["win"].notna()]
    rows = []
    for label, part in frame.groupby(period_labels(frame["session"], period), sort=True):
        y = part["win"].astype(bool).to_numpy(int)
        for column in columns:
            x = pd.to_numeric(part[column], errors="coerce").to_numpy(float)
            known = np.isfinite(x)
            if len(np.unique(y[known])) < 2:
                continue
            auc = roc_auc_score(y[known], x[known])
            rows.append(
                {
                    "period": label,
                    "feature": column,
                    "importance": abs(auc - 0.5) * 2,
                    "n": int(known.sum()),
                }
            )
    return pd.DataFrame(rows, columns=out_columns)
