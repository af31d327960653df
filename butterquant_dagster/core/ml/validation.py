"""Walk-forward validation with a purge gap, and the metrics every model reports.

Both systems we replace validated on shuffled folds, which lets a model see the future of
the very options it is tested on. Here a fold's test rows are a later block of entry
sessions, and a training row is admitted only if its outcome was known before that block
began (its expiry precedes the first test entry) and it was entered at least ``purge_days``
before it: no training outcome overlaps a test row's life.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score


@dataclass(frozen=True)
class Fold:
    index: int
    train: np.ndarray  # row positions
    test: np.ndarray
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def walk_forward_folds(
    entry: pd.Series,
    expiry: pd.Series,
    *,
    n_folds: int = 4,
    min_train_fraction: float = 0.4,
    purge_days: int = 60,
) -> list[Fold]:
    """Expanding-window folds over the distinct entry sessions."""
    entry = pd.to_datetime(pd.Series(entry)).reset_index(drop=True)
    expiry = pd.to_datetime(pd.Series(expiry)).reset_index(drop=True)
    sessions = np.sort(entry.unique())
    first_test = int(len(sessions) * min_train_fraction)
    if len(sessions) - first_test < n_folds:
        raise ValueError(
            f"{len(sessions)} entry sessions are too few for {n_folds} walk-forward folds "
            f"after the first {min_train_fraction:.0%} for training"
        )
    blocks = np.array_split(sessions[first_test:], n_folds)
    folds = []
    for i, block in enumerate(blocks):
        start, end = pd.Timestamp(block[0]), pd.Timestamp(block[-1])
        train = np.flatnonzero(
            (entry <= start - pd.Timedelta(days=purge_days)).to_numpy()
            & (expiry < start).to_numpy()
        )
        test = np.flatnonzero(((entry >= start) & (entry <= end)).to_numpy())
        folds.append(Fold(i, train, test, start, end))
    return folds


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        rows.append(
            {
                "bin": b,
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(mask.sum()),
                "mean_predicted": float(p[mask].mean()) if mask.any() else None,
                "hit_rate": float(y[mask].mean()) if mask.any() else None,
            }
        )
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    table = reliability_table(y, p, bins)
    n = len(y)
    return float(
        sum(r["count"] / n * abs(r["mean_predicted"] - r["hit_rate"]) for r in table if r["count"])
    )


def classification_metrics(y, p, bins: int = 10) -> dict:
    """AUC, Brier and its skill over the base rate, log loss, ECE, reliability, accuracy."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    base_rate = float(y.mean()) if len(y) else float("nan")
    brier = float(brier_score_loss(y, p)) if len(y) else float("nan")
    reference = base_rate * (1.0 - base_rate)
    both_classes = len(np.unique(y)) == 2
    return {
        "n": len(y),
        "base_rate": base_rate,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else None,
        "brier": brier,
        "brier_skill": float(1.0 - brier / reference) if reference > 0 else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
        "ece": expected_calibration_error(y, p, bins) if len(y) else None,
        "accuracy": float(((p >= 0.5) == y).mean()) if len(y) else None,
        "reliability": reliability_table(y, p, bins),
    }


def accuracy_by_group(y, p, groups) -> dict[str, dict]:
    frame = pd.DataFrame(
        {"y": np.asarray(y, int), "p": np.asarray(p, float), "g": np.asarray(groups).astype(str)}
    )
    out = {}
    for name, part in frame.groupby("g"):
        out[str(name)] = {
            "n": len(part),
            "accuracy": float(((part["p"] >= 0.5) == part["y"]).mean()),
            "hit_rate": float(part["y"].mean()),
            "mean_predicted": float(part["p"].mean()),
        }
    return out


def top_decile_yield(score, yields) -> dict:
    """The economic check: mean yield of the top-scored tenth against all candidates."""
    score = np.asarray(score, float)
    yields = np.asarray(yields, float)
    if len(score) == 0:
        return {"top_decile_mean_yield": None, "all_mean_yield": None}
    cut = np.quantile(score, 0.9)
    top = score >= cut
    return {
        "top_decile_mean_yield": float(yields[top].mean()),
        "all_mean_yield": float(yields.mean()),
        "top_decile_n": int(top.sum()),
    }


def _platt_and_isotonic(train_x, train_y, test_x) -> tuple[np.ndarray, np.ndarray]:
    """A single column turned into a probability two monotone ways, fitted on train rows."""
    if np.ptp(train_x) == 0:
        rate = np.full(len(test_x), float(train_y.mean()))
        return rate, rate
    scale = float(train_x.std()) or 1.0
    centre = float(train_x.mean())
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(
        ((train_x - centre) / scale)[:, None], train_y
    )
    # The isotonic fit runs in the direction the logistic fit found on the same rows.
    isotonic = IsotonicRegression(
        increasing=bool(platt.coef_[0, 0] >= 0), out_of_bounds="clip", y_min=0.0, y_max=1.0
    ).fit(train_x, train_y)
    return (
        platt.predict_proba(((test_x - centre) / scale)[:, None])[:, 1],
        isotonic.predict(test_x),
    )


def single_feature_baselines(x, y, folds: list[Fold], names: list[str]) -> list[dict]:
    """Every column alone as a forecaster, out of fold, on exactly ``folds``' test rows.

    Each column is mapped to a probability on each fold's training rows by a monotone fit
    (Platt and isotonic; the better of the two counts for the column, so the baseline a
    model must beat is the strongest honest one). Returned best first, by Brier.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=int)
    test = np.concatenate([f.test for f in folds]) if folds else np.zeros(0, int)
    truth = y[test]
    if len(truth) == 0 or len(np.unique(truth)) < 2:
        return []
    out = []
    for j, name in enumerate(names):
        platt, isotonic = [], []
        for fold in folds:
            a, b = _platt_and_isotonic(x[fold.train, j], y[fold.train], x[fold.test, j])
            platt.append(a)
            isotonic.append(b)
        candidates = [np.concatenate(platt), np.concatenate(isotonic)]
        briers = [float(brier_score_loss(truth, p)) for p in candidates]
        aucs = [float(roc_auc_score(truth, p)) for p in candidates]
        out.append({"feature": name, "roc_auc": max(aucs), "brier": min(briers), "n": len(truth)})
    return sorted(out, key=lambda r: r["brier"])


def yield_metrics(predicted, realized, rule_ev=None) -> dict:
    """Out-of-fold rank skill of a yield forecast and what its top decile realized, beside
    all candidates and the top decile by the rule's ``ev_per_1000`` on the same rows."""
    predicted = np.asarray(predicted, float)
    realized = np.asarray(realized, float)
    if len(predicted) < 2 or np.ptp(predicted) == 0:
        rho = None
    else:
        rho = float(spearmanr(predicted, realized).statistic)
        rho = rho if np.isfinite(rho) else None
    own = top_decile_yield(predicted, realized)
    out = {
        "n": len(predicted),
        "spearman": rho,
        "top_decile_mean_yield": own["top_decile_mean_yield"],
        "all_mean_yield": own["all_mean_yield"],
        "rule_top_decile_mean_yield": None,
    }
    if rule_ev is not None and len(predicted):
        rule_ev = np.asarray(rule_ev, float)
        finite = np.isfinite(rule_ev)
        if finite.any():
            rule = top_decile_yield(rule_ev[finite], realized[finite])
            out["rule_top_decile_mean_yield"] = rule["top_decile_mean_yield"]
    return out
