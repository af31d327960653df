"""The butterfly success-probability model: training set, walk-forward validation, the final
fit and its ONNX export.

Labels are recorded outcomes (``candidate_outcomes``): a candidate ``win`` s when it
expired inside its profit zone with a positive P/L after spread and fees. Two models are
trained on the same rows and features:

- P(win): a histogram gradient-boosting classifier calibrated with Platt scaling
  (``CalibratedClassifierCV(method="sigmoid")``). Platt rather than isotonic because its
  ONNX export matches scikit-learn to 1e-7, while the isotonic converter drifts by 1e-2;
- the expected yield per $1,000 at risk: a gradient-boosting regressor on the realized
  yield, clipped at its 1st/99th percentiles so a few lottery payoffs do not dominate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS, feature_matrix
from butterquant_dagster.core.ml.validation import (
    accuracy_by_group,
    classification_metrics,
    top_decile_yield,
    walk_forward_folds,
)

LABEL = "win"
LABEL_DEFINITION = (
    "win = the candidate, bought at the entry session's natural price plus fees and held "
    "to expiry, settled inside its breakevens with a positive P/L after fees"
)
REGIME_NAMES = np.array(["bear", "neutral", "bull"])


class TrainingError(ValueError):
    """Training refused: too few rows, a single class, a failed export."""


@dataclass
class TrainedModels:
    classifier: object
    regressor: object
    classifier_onnx: bytes
    regressor_onnx: bytes
    metrics: dict
    folds: list[dict]
    parity: dict
    training_samples: int
    window: tuple[str, str]
    forced: bool = False
    latest_fold: dict = field(default_factory=dict)
    # Out-of-fold P(win) on the latest fold's test rows (NaN if that fold was skipped): the
    # challenger's score for promotion must not come from a model that saw those rows.
    latest_fold_predictions: np.ndarray = field(default_factory=lambda: np.zeros(0))


def training_rows(
    features: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    cutoff: dt.date,
    max_rows: int = 200_000,
    seed: int = 7,
) -> pd.DataFrame:
    """Features joined with their outcomes, only outcomes known at ``cutoff`` (expiry on or
    before it), reproducibly sampled to ``max_rows``."""
    known = outcomes[pd.to_datetime(outcomes["expiry"]) <= pd.Timestamp(cutoff)]
    labels = known[[*KEY_COLUMNS, LABEL, "yield_per_1000"]]
    rows = features.merge(labels, on=KEY_COLUMNS, how="inner")
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed).sort_values(["session", "symbol"])
    return rows.reset_index(drop=True)


def _classifier(seed: int):
    base = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.06,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        random_state=seed,
        # Early stopping holds out a random tenth whose float32 ONNX replay differs by 1e-3
        # on a few rows; a fixed number of iterations exports to within 1e-7.
        early_stopping=False,
    )
    return CalibratedClassifierCV(base, method="sigmoid", cv=3)


def _regressor(seed: int):
    return HistGradientBoostingRegressor(
        max_iter=150,
        learning_rate=0.06,
        max_leaf_nodes=31,
        l2_regularization=1.0,
        random_state=seed,
        early_stopping=False,
    )


def _check_trainable(y: np.ndarray, min_rows: int, min_class: int) -> str | None:
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if len(y) < min_rows:
        return f"{len(y)} training rows, fewer than the {min_rows} required"
    if min(positives, negatives) < min_class:
        return f"{positives} wins and {negatives} losses: each class needs at least {min_class}"
    return None


def train(
    rows: pd.DataFrame,
    *,
    n_folds: int = 4,
    purge_days: int = 60,
    seed: int = 7,
    min_rows: int = 500,
    min_class: int = 50,
    force: bool = False,
) -> TrainedModels:
    """Walk-forward validate, then fit on all rows and export both models to ONNX."""
    y = rows[LABEL].to_numpy(dtype=int) if len(rows) else np.zeros(0, int)
    problem = _check_trainable(y, min_rows, min_class)
    if problem and not force:
        raise TrainingError(f"refusing to train the probability model: {problem}")
    if problem and (len(np.unique(y)) < 2):
        raise TrainingError(f"cannot train even when forced: {problem}")
    x = feature_matrix(rows, FEATURE_COLUMNS)
    raw_yield = rows["yield_per_1000"].to_numpy(float)
    low, high = np.quantile(raw_yield, [0.01, 0.99])
    yields = np.clip(raw_yield, low, high)
    regimes = REGIME_NAMES[np.argmax(rows[["p_bear", "p_neutral", "p_bull"]].to_numpy(), 1)]

    folds = walk_forward_folds(
        rows["session"], rows["expiry"], n_folds=n_folds, purge_days=purge_days
    )
    out_of_fold = np.full(len(rows), np.nan)
    fold_reports = []
    for fold in folds:
        if len(fold.train) < min(min_rows, 100) or len(np.unique(y[fold.train])) < 2:
            fold_reports.append(
                {
                    "fold": fold.index,
                    "skipped": "too few training rows",
                    "train_rows": len(fold.train),
                }
            )
            continue
        model = _classifier(seed).fit(x[fold.train], y[fold.train])
        p = model.predict_proba(x[fold.test])[:, 1]
        out_of_fold[fold.test] = p
        report = classification_metrics(y[fold.test], p)
        report.pop("reliability")
        fold_reports.append(
            {
                "fold": fold.index,
                "train_rows": len(fold.train),
                "test_rows": len(fold.test),
                "test_start": str(fold.test_start.date()),
                "test_end": str(fold.test_end.date()),
                **report,
            }
        )
    scored = np.isfinite(out_of_fold)
    if not scored.any():
        raise TrainingError("no walk-forward fold had enough history to validate on")
    metrics = classification_metrics(y[scored], out_of_fold[scored])
    metrics["per_regime"] = accuracy_by_group(y[scored], out_of_fold[scored], regimes[scored])
    metrics["economic"] = top_decile_yield(out_of_fold[scored], raw_yield[scored])

    classifier = _classifier(seed).fit(x, y)
    regressor = _regressor(seed).fit(x, yields)
    classifier_onnx = onnx_export.export(classifier, x.shape[1])
    regressor_onnx = onnx_export.export(regressor, x.shape[1])
    held_out = x[folds[-1].test]
    parity = {
        "classifier": onnx_export.parity(classifier, classifier_onnx, held_out),
        "regressor": onnx_export.parity(
            regressor,
            regressor_onnx,
            held_out,
            tolerance=1e-3 * max(1.0, float(np.abs(yields).max())),
        ),
    }
    latest = folds[-1]
    return TrainedModels(
        classifier=classifier,
        regressor=regressor,
        classifier_onnx=classifier_onnx,
        regressor_onnx=regressor_onnx,
        metrics=metrics,
        folds=fold_reports,
        parity={
            k: {
                "max_abs_diff": v.max_abs_diff,
                "rows": v.rows,
                "tolerance": v.tolerance,
                "passed": v.passed,
            }
            for k, v in parity.items()
        },
        training_samples=len(rows),
        window=(
            str(pd.Timestamp(rows["session"].min()).date()),
            str(pd.Timestamp(rows["session"].max()).date()),
        ),
        forced=bool(problem),
        latest_fold_predictions=out_of_fold[latest.test],
        latest_fold={
            "test_start": str(latest.test_start.date()),
            "test_end": str(latest.test_end.date()),
            "test_rows": latest.test.tolist(),
        },
    )


def latest_fold_brier(model_predict, rows: pd.DataFrame, test_positions: list[int]) -> dict:
    """Brier score and calibration error of any model on the latest fold's test rows, so a
    challenger and the champion are compared on the same rows."""
    x = feature_matrix(rows.iloc[test_positions], FEATURE_COLUMNS)
    y = rows[LABEL].to_numpy(int)[test_positions]
    metrics = classification_metrics(y, model_predict(x))
    return {"brier": metrics["brier"], "ece": metrics["ece"], "n": metrics["n"]}
