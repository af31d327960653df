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
from sklearn.model_selection import StratifiedGroupKFold

from butterquant_dagster.core import progress
from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS, feature_matrix
from butterquant_dagster.core.ml.gates import (
    Gate,
    expected_yield_gates,
    not_forced_gate,
    win_probability_gates,
)
from butterquant_dagster.core.ml.validation import (
    accuracy_by_group,
    classification_metrics,
    single_feature_baselines,
    top_decile_yield,
    walk_forward_folds,
    yield_metrics,
)
from butterquant_dagster.core.monitoring.psi import feature_reference

LABEL = "win"
LABEL_DEFINITION = (
    "win = the candidate, bought on the entry session at the price its order is expected "
    "to fill at (core.options.costs.COST_BASIS: mid + 0.25 of the way to natural) plus "
    "fees and held to expiry, settled inside its breakevens with a positive P/L after fees"
)
REGIME_NAMES = np.array(["bear", "neutral", "bull"])
CALIBRATION_FOLDS = 3
RULE_EV = "ev_per_1000"  # the scan's own yield estimate: the yield model must beat it
TRAINING_TASK = "training"


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
    # Out-of-fold P(win) of every row (NaN where no fold scored it): the drift reference.
    out_of_fold: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # Every single feature as a forecaster on the same folds, best (by Brier) first.
    feature_baselines: list[dict] = field(default_factory=list)
    yield_metrics: dict = field(default_factory=dict)
    win_gates: list[Gate] = field(default_factory=list)
    yield_gates: list[Gate] = field(default_factory=list)

    @property
    def best_feature(self) -> dict | None:
        return self.feature_baselines[0] if self.feature_baselines else None

    def drift_reference(self, rows: pd.DataFrame) -> dict:
        """Training feature distributions and the OUT-OF-FOLD prediction distribution: the
        final model's in-sample predictions are sharper than anything it will make live, so
        a reference built on them reports drift on the first honest day."""
        scored = np.isfinite(self.out_of_fold)
        return feature_reference(rows, self.out_of_fold[scored], FEATURE_COLUMNS)


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


def with_rule_ev(rows: pd.DataFrame, candidates: pd.DataFrame | None) -> pd.DataFrame:
    """``rows`` with the scan's own ``ev_per_1000`` from ``candidates`` (same keys): the
    yield model's gate compares its top decile with the rule's on the same rows. Rows stay
    as they are when the candidates are missing or carry no rule EV."""
    if candidates is None or RULE_EV not in candidates.columns or RULE_EV in rows.columns:
        return rows
    rule = candidates[[*KEY_COLUMNS, RULE_EV]].drop_duplicates(KEY_COLUMNS)
    return rows.merge(rule, on=KEY_COLUMNS, how="left")


def _classifier(seed: int, cv):
    """``cv``: the calibration splits (see :func:`calibration_splits`)."""
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
    return CalibratedClassifierCV(base, method="sigmoid", cv=cv)


def candidate_groups(rows: pd.DataFrame) -> np.ndarray:
    """(ticker, expiry) of each row: the candidates of one option series share an outcome
    path, so a calibration fold must hold all of them or none."""
    expiry = pd.to_datetime(rows["expiry"]).dt.strftime("%Y-%m-%d")
    return (rows["symbol"].astype(str) + "|" + expiry).to_numpy()


def calibration_splits(groups: np.ndarray, y: np.ndarray, seed: int) -> list[tuple]:
    """Folds for the inner Platt calibration, grouped by (ticker, expiry) and stratified by
    the label: the sigmoid is fitted on series the boosted trees never saw, as it would be
    live. An unpurged split lets the trees memorise a series and the sigmoid then learns
    their over-confidence on it as if it were skill."""
    n_groups = len(np.unique(groups))
    if n_groups < CALIBRATION_FOLDS:
        raise TrainingError(
            f"{n_groups} (ticker, expiry) groups, fewer than the {CALIBRATION_FOLDS} "
            "calibration folds"
        )
    splitter = StratifiedGroupKFold(n_splits=CALIBRATION_FOLDS, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(y)), y, groups))
    for number, (fit, calibrate) in enumerate(splits):
        if len(np.unique(y[fit])) < 2 or len(np.unique(y[calibrate])) < 2:
            raise TrainingError(
                f"calibration fold {number}: one class only after grouping by (ticker, expiry)"
            )
    return splits


def _fit_classifier(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int):
    return _classifier(seed, calibration_splits(groups, y, seed)).fit(x, y)


def _fit_regressor(x: np.ndarray, raw_yield: np.ndarray, seed: int):
    """The regressor on yields clipped at the 1st/99th percentiles of ``raw_yield`` itself:
    the clip of a validation fold comes from its training rows only."""
    low, high = np.quantile(raw_yield, [0.01, 0.99])
    clipped = np.clip(raw_yield, low, high)
    return _regressor(seed).fit(x, clipped), clipped


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
    """Walk-forward validate both models, judge them by their gates, then fit on all rows
    and export both to ONNX. ``force`` trains on too little data, and marks the result
    forced whatever the data: a forced model is registered, never promoted."""
    y = rows[LABEL].to_numpy(dtype=int) if len(rows) else np.zeros(0, int)
    problem = _check_trainable(y, min_rows, min_class)
    if problem and not force:
        raise TrainingError(f"refusing to train the probability model: {problem}")
    if problem and (len(np.unique(y)) < 2):
        raise TrainingError(f"cannot train even when forced: {problem}")
    x = feature_matrix(rows, FEATURE_COLUMNS)
    groups = candidate_groups(rows)
    raw_yield = rows["yield_per_1000"].to_numpy(float)
    rule_ev = rows[RULE_EV].to_numpy(float) if RULE_EV in rows.columns else None
    regimes = REGIME_NAMES[np.argmax(rows[["p_bear", "p_neutral", "p_bull"]].to_numpy(), 1)]

    folds = walk_forward_folds(
        rows["session"], rows["expiry"], n_folds=n_folds, purge_days=purge_days
    )
    out_of_fold = np.full(len(rows), np.nan)
    yield_out_of_fold = np.full(len(rows), np.nan)
    fold_reports, validated = [], []
    # Every fold fits both models, then the baselines, the final fit and the export: on a
    # year of 500 tickers that is many minutes, so each step says it is done.
    steps = len(folds) + 3
    for fold in folds:
        progress.report(TRAINING_TASK, fold.index, steps, f"walk-forward fold {fold.index + 1}")
        if len(fold.train) < min(min_rows, 100) or len(np.unique(y[fold.train])) < 2:
            fold_reports.append(
                {
                    "fold": fold.index,
                    "skipped": "too few training rows",
                    "train_rows": len(fold.train),
                }
            )
            continue
        model = _fit_classifier(x[fold.train], y[fold.train], groups[fold.train], seed)
        p = model.predict_proba(x[fold.test])[:, 1]
        out_of_fold[fold.test] = p
        gain, _ = _fit_regressor(x[fold.train], raw_yield[fold.train], seed)
        yield_out_of_fold[fold.test] = gain.predict(x[fold.test])
        report = classification_metrics(y[fold.test], p)
        report.pop("reliability")
        fold_yield = yield_metrics(yield_out_of_fold[fold.test], raw_yield[fold.test])
        validated.append(fold)
        fold_reports.append(
            {
                "fold": fold.index,
                "train_rows": len(fold.train),
                "test_rows": len(fold.test),
                "test_start": str(fold.test_start.date()),
                "test_end": str(fold.test_end.date()),
                **report,
                "yield_spearman": fold_yield["spearman"],
            }
        )
    scored = np.isfinite(out_of_fold)
    if not scored.any():
        raise TrainingError("no walk-forward fold had enough history to validate on")
    metrics = classification_metrics(y[scored], out_of_fold[scored])
    metrics["per_regime"] = accuracy_by_group(y[scored], out_of_fold[scored], regimes[scored])
    metrics["economic"] = top_decile_yield(out_of_fold[scored], raw_yield[scored])
    progress.report(TRAINING_TASK, len(folds), steps, "single-feature baselines")
    baselines = single_feature_baselines(x, y, validated, FEATURE_COLUMNS)
    gains = yield_metrics(
        yield_out_of_fold[scored],
        raw_yield[scored],
        rule_ev[scored] if rule_ev is not None else None,
    )

    progress.report(TRAINING_TASK, len(folds) + 1, steps, f"final fit on {len(rows):,} rows")
    classifier = _fit_classifier(x, y, groups, seed)
    regressor, yields = _fit_regressor(x, raw_yield, seed)
    progress.report(TRAINING_TASK, len(folds) + 2, steps, "ONNX export and parity")
    classifier_onnx = onnx_export.export(classifier, x.shape[1])
    regressor_onnx = onnx_export.export(regressor, x.shape[1])
    held_out = x[folds[-1].test]
    parity = {
        name: {
            "max_abs_diff": check.max_abs_diff,
            "rows": check.rows,
            "tolerance": check.tolerance,
            "passed": check.passed,
        }
        for name, check in {
            "classifier": onnx_export.parity(classifier, classifier_onnx, held_out),
            "regressor": onnx_export.parity(
                regressor,
                regressor_onnx,
                held_out,
                tolerance=1e-3 * max(1.0, float(np.abs(yields).max())),
            ),
        }.items()
    }
    progress.report(TRAINING_TASK, steps, steps, "done")
    latest = folds[-1]
    latest_report = fold_reports[-1] if "skipped" not in fold_reports[-1] else {}
    forced = bool(force)
    return TrainedModels(
        classifier=classifier,
        regressor=regressor,
        classifier_onnx=classifier_onnx,
        regressor_onnx=regressor_onnx,
        metrics=metrics,
        folds=fold_reports,
        parity=parity,
        training_samples=len(rows),
        window=(
            str(pd.Timestamp(rows["session"].min()).date()),
            str(pd.Timestamp(rows["session"].max()).date()),
        ),
        forced=forced,
        latest_fold_predictions=out_of_fold[latest.test],
        latest_fold={
            "test_start": str(latest.test_start.date()),
            "test_end": str(latest.test_end.date()),
            "test_rows": latest.test.tolist(),
        },
        out_of_fold=out_of_fold,
        feature_baselines=baselines,
        yield_metrics=gains,
        win_gates=[
            *win_probability_gates(
                metrics, latest_report, parity["classifier"], baselines[0] if baselines else None
            ),
            not_forced_gate(forced),
        ],
        yield_gates=[*expected_yield_gates(gains, parity["regressor"]), not_forced_gate(forced)],
    )


def latest_fold_brier(model_predict, rows: pd.DataFrame, test_positions: list[int]) -> dict:
    """Brier score and calibration error of any model on the latest fold's test rows, so a
    challenger and the champion are compared on the same rows."""
    x = feature_matrix(rows.iloc[test_positions], FEATURE_COLUMNS)
    y = rows[LABEL].to_numpy(int)[test_positions]
    metrics = classification_metrics(y, model_predict(x))
    return {"brier": metrics["brier"], "ece": metrics["ece"], "n": metrics["n"]}
