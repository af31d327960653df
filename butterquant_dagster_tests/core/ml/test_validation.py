"""Walk-forward folds without leakage, and the metrics every model reports."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from butterquant_dagster.core.ml.validation import (
    accuracy_by_group,
    classification_metrics,
    expected_calibration_error,
    reliability_table,
    top_decile_yield,
    walk_forward_folds,
)


# ---------------------------------------------------------------------- folds
def _random_options(seed: int, n_sessions: int = 260, max_dte: int = 60) -> pd.DataFrame:
    """Entries on random business days (a varying number per day), each with a random life
    of 1..max_dte calendar days; rows shuffled and indexed away from 0..n-1."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2021-01-04", periods=n_sessions)
    per_day = rng.integers(1, 6, size=n_sessions)
    # Some business days have no entry at all.
    per_day[rng.uniform(size=n_sessions) < 0.1] = 0
    entry = np.repeat(days.to_numpy(), per_day)
    dte = rng.integers(1, max_dte + 1, size=len(entry))
    frame = pd.DataFrame({"entry": entry, "expiry": entry + dte.astype("timedelta64[D]")})
    frame = frame.sample(frac=1.0, random_state=seed)
    frame.index = np.arange(1000, 1000 + len(frame))
    return frame


@pytest.mark.parametrize(
    ("seed", "n_folds", "purge_days"),
    [(0, 4, 60), (1, 4, 60), (2, 5, 30), (3, 3, 45), (4, 4, 0)],
)
def test_walk_forward_folds_never_train_on_what_the_test_block_could_know(
    seed, n_folds, purge_days
):
    data = _random_options(seed)
    entry = data["entry"].to_numpy()
    expiry = data["expiry"].to_numpy()
    sessions = np.sort(np.unique(entry))
    folds = walk_forward_folds(
        data["entry"], data["expiry"], n_folds=n_folds, purge_days=purge_days
    )
    assert len(folds) == n_folds
    assert [f.index for f in folds] == list(range(n_folds))
    # The first test block begins after the first 40% of the distinct sessions.
    assert folds[0].test_start == pd.Timestamp(sessions[int(len(sessions) * 0.4)])

    previous_train: set[int] = set()
    previous_end = None
    tested: list[int] = []
    block_sizes = []
    for fold in folds:
        start, end = fold.test_start, fold.test_end
        assert start <= end
        assert np.datetime64(start) in sessions and np.datetime64(end) in sessions
        # Training rows: outcome known before the block, entered purge_days before it.
        train_entry = pd.to_datetime(entry[fold.train])
        train_expiry = pd.to_datetime(expiry[fold.train])
        assert (train_expiry < start).all()
        assert (train_entry <= start - pd.Timedelta(days=purge_days)).all()
        # ...and every row satisfying both rules is admitted (nothing usable is thrown away).
        eligible = np.flatnonzero(
            (pd.to_datetime(expiry) < start)
            & (pd.to_datetime(entry) <= start - pd.Timedelta(days=purge_days))
        )
        np.testing.assert_array_equal(np.sort(fold.train), eligible)
        # Test rows: exactly the entries inside [start, end].
        inside = np.flatnonzero((entry >= np.datetime64(start)) & (entry <= np.datetime64(end)))
        np.testing.assert_array_equal(np.sort(fold.test), inside)
        assert len(fold.test) > 0
        assert not set(fold.train) & set(fold.test)
        # Blocks are increasing and adjacent: no session falls between two blocks.
        if previous_end is not None:
            assert start > previous_end
            between = sessions[(sessions > np.datetime64(previous_end)) & (sessions < start)]
            assert len(between) == 0
        # Expanding window.
        assert previous_train <= set(fold.train.tolist())
        previous_train = set(fold.train.tolist())
        previous_end = end
        tested.extend(fold.test.tolist())
        block_sizes.append(len(np.unique(entry[fold.test])))
    # Disjoint blocks that together cover every entry from the first test session on.
    assert len(tested) == len(set(tested))
    first = np.datetime64(folds[0].test_start)
    np.testing.assert_array_equal(np.sort(tested), np.flatnonzero(entry >= first))
    assert max(block_sizes) - min(block_sizes) <= 1
    assert sum(block_sizes) == len(sessions) - int(len(sessions) * 0.4)


def test_a_long_option_entered_just_before_the_block_is_purged():
    """A 60-day option entered a week before the test block is still open when the block
    begins: it must not be trained on, while an option long settled is."""
    entry = pd.to_datetime(
        ["2024-01-02", "2024-04-20"] + [f"2024-05-{d:02d}" for d in range(1, 11)]
    )
    expiry = entry + pd.Timedelta(days=60)
    expiry = expiry.where(entry != pd.Timestamp("2024-01-02"), pd.Timestamp("2024-02-01"))
    folds = walk_forward_folds(
        pd.Series(entry), pd.Series(expiry), n_folds=2, min_train_fraction=0.5, purge_days=5
    )
    # 12 sessions: the blocks are sessions 6..8 and 9..11 (May 5..7, May 8..10).
    assert folds[0].test_start == pd.Timestamp("2024-05-05")
    assert folds[0].train.tolist() == [0]
    assert 1 not in folds[1].train
    assert folds[1].test.tolist() == [9, 10, 11]


def test_too_few_sessions_for_the_folds_is_refused_naming_the_counts():
    # 5 sessions: the first 2 (40%) train, 3 are left for 4 folds.
    days = pd.Series(pd.bdate_range("2024-01-01", periods=5))
    with pytest.raises(ValueError, match=r"5 entry sessions are too few for 4 walk-forward folds"):
        walk_forward_folds(days, days + pd.Timedelta(days=1), n_folds=4)
    # Many rows on few sessions are still few sessions.
    many = pd.Series(np.repeat(days.to_numpy(), 50))
    with pytest.raises(ValueError, match=r"5 entry sessions"):
        walk_forward_folds(many, many + pd.Timedelta(days=1), n_folds=4)
    # Exactly enough: 10 sessions, 4 for training, 6 left for 6 folds of one session each.
    days = pd.Series(pd.bdate_range("2024-01-01", periods=10))
    folds = walk_forward_folds(days, days + pd.Timedelta(days=1), n_folds=6, purge_days=0)
    assert [len(f.test) for f in folds] == [1] * 6


# ---------------------------------------------------------------------- metrics
def test_metrics_agree_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(11)
    p = rng.uniform(0.01, 0.99, size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    m = classification_metrics(y, p)
    assert m["n"] == 500
    assert m["base_rate"] == pytest.approx(y.mean())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    reference = y.mean() * (1 - y.mean())
    assert m["brier_skill"] == pytest.approx(1 - brier_score_loss(y, p) / reference)
    assert m["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    # Predictions drawn from their own probabilities are informative and roughly calibrated.
    assert m["roc_auc"] > 0.7
    assert m["brier_skill"] > 0.1
    assert m["ece"] < 0.08


def test_metrics_computed_by_hand():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, p)
    # Pairs (positive, negative): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, *) ok: 3 of 4.
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    expected_ll = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["base_rate"] == pytest.approx(0.5)
    assert m["brier_skill"] == pytest.approx(1 - 0.158125 / 0.25)
    # Bins: 0.1 -> 1, 0.35 -> 3, 0.4 -> 4, 0.8 -> 8; each holds one row.
    # ECE = mean |p - y| over the four single-row bins.
    assert m["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)


def test_perfect_predictions():
    y = np.array([0, 1, 0, 1, 1, 0])
    m = classification_metrics(y, y.astype(float))
    assert m["roc_auc"] == 1.0
    assert m["brier"] == pytest.approx(0.0, abs=1e-12)
    assert m["brier_skill"] == pytest.approx(1.0)
    assert m["accuracy"] == 1.0
    assert m["log_loss"] < 1e-6
    assert m["ece"] == pytest.approx(0.0, abs=1e-6)


def test_constant_base_rate_predictions_have_no_skill():
    y = np.array([1] * 30 + [0] * 70)
    m = classification_metrics(y, np.full(100, 0.3))
    assert m["brier"] == pytest.approx(0.3 * 0.7)
    assert m["brier_skill"] == pytest.approx(0.0, abs=1e-12)
    assert m["roc_auc"] == pytest.approx(0.5)
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    # A constant prediction off the base rate has negative skill and a visible ECE.
    worse = classification_metrics(y, np.full(100, 0.6))
    assert worse["brier_skill"] < 0
    assert worse["ece"] == pytest.approx(0.3)


def test_ece_of_perfectly_calibrated_buckets_is_zero_and_bins_cover_every_row():
    # Ten buckets at 0.05, 0.15, ... 0.95 of 100 rows each, hitting exactly as predicted.
    y, p = [], []
    for b in range(10):
        level = 0.05 + 0.1 * b
        wins = round(100 * level)
        y += [1] * wins + [0] * (100 - wins)
        p += [level] * 100
    y, p = np.array(y), np.array(p)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-9)
    table = reliability_table(y, p)
    assert [r["count"] for r in table] == [100] * 10
    for r in table:
        assert r["low"] <= r["mean_predicted"] < r["high"]
        assert r["hit_rate"] == pytest.approx(r["mean_predicted"])
    # Shifting every prediction by 0.04 within its bin makes the ECE exactly 0.04.
    assert expected_calibration_error(y, p + 0.04) == pytest.approx(0.04)


def test_reliability_bins_partition_the_rows():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(0, 1, 997), [0.0, 1.0, 0.5]])
    y = rng.integers(0, 2, size=1000)
    m = classification_metrics(y, p, bins=7)
    table = m["reliability"]
    assert len(table) == 7
    assert sum(r["count"] for r in table) == 1000
    assert table[0]["low"] == 0.0 and table[-1]["high"] == 1.0
    for left, right in itertools.pairwise(table):
        assert left["high"] == pytest.approx(right["low"])
    for r in table:
        inside = (np.clip(p, 1e-7, 1 - 1e-7) >= r["low"]) & (
            (np.clip(p, 1e-7, 1 - 1e-7) < r["high"]) | (r["bin"] == 6)
        )
        assert r["count"] == int(inside.sum())
        assert r["hit_rate"] == pytest.approx(y[inside].mean())
    # An empty bin reports no mean rather than a NaN.
    sparse = reliability_table(np.array([0, 1]), np.array([0.05, 0.95]))
    assert sparse[4]["count"] == 0
    assert sparse[4]["mean_predicted"] is None and sparse[4]["hit_rate"] is None


def test_a_single_class_has_no_auc_but_the_other_metrics():
    m = classification_metrics([1, 1, 1], [0.9, 0.8, 0.7])
    assert m["roc_auc"] is None
    assert m["brier_skill"] is None
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_accuracy_by_group():
    y = [1, 0, 1, 1, 0, 0]
    p = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1]
    groups = ["bull", "bull", "bull", "bear", "bear", "neutral"]
    out = accuracy_by_group(y, p, groups)
    assert set(out) == {"bull", "bear", "neutral"}
    assert out["bull"]["n"] == 3
    # bull: 0.9 -> 1 right, 0.6 -> 1 wrong, 0.4 -> 0 wrong.
    assert out["bull"]["accuracy"] == pytest.approx(1 / 3)
    assert out["bull"]["hit_rate"] == pytest.approx(2 / 3)
    assert out["bull"]["mean_predicted"] == pytest.approx((0.9 + 0.6 + 0.4) / 3)
    assert out["bear"]["accuracy"] == pytest.approx(1.0)
    assert out["neutral"] == {"n": 1, "accuracy": 1.0, "hit_rate": 0.0, "mean_predicted": 0.1}


def test_top_decile_yield_by_hand():
    score = np.arange(20, dtype=float)  # 0..19; the top tenth is 18 and 19
    yields = np.where(score >= 18, 100.0, -10.0)
    yields[0] = 40.0
    out = top_decile_yield(score, yields)
    assert out["top_decile_n"] == 2
    assert out["top_decile_mean_yield"] == pytest.approx(100.0)
    assert out["all_mean_yield"] == pytest.approx((2 * 100 + 40 - 17 * 10) / 20)
    # Order of rows does not matter, only the scores.
    order = np.random.default_rng(0).permutation(20)
    assert top_decile_yield(score[order], yields[order]) == out
    assert top_decile_yield([], []) == {"top_decile_mean_yield": None, "all_mean_yield": None}
