"""The probability model: its training rows, walk-forward training without leakage, the
refusals, and the exported models."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from butterquant_dagster.core import progress
from butterquant_dagster.core.ml import onnx_export, probability
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS, feature_matrix
from butterquant_dagster.core.ml.probability import TrainingError, train, training_rows

SIGNAL = "prob_profit_forecast"  # the one feature P(win) truly depends on
ROW_ID = "iv_center"  # carries each row's position, to trace what a model was fitted on
PURGE_DAYS = 60


def _dataset(n: int = 3000, seed: int = 0, n_sessions: int = 200) -> pd.DataFrame:
    """Features + keys + outcome. P(win) = sigmoid(2.5 * SIGNAL); everything else is noise,
    except ROW_ID which equals the row's position (harmless for the model, useful to us)."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2022-01-03", periods=n_sessions)
    session = np.sort(rng.choice(days.to_numpy(), size=n))
    center = 50.0 + 0.25 * np.arange(n)  # unique keys: one candidate per row
    frame = pd.DataFrame(
        {
            "session": session,
            "symbol": rng.choice(["AAA", "BBB", "CCC", "DDD"], size=n),
            "expiry": session + np.timedelta64(30, "D"),
            "structure": rng.choice(["call_fly", "put_fly", "iron_fly"], size=n),
            "lower": center - 5.0,
            "center": center,
            "upper": center + 5.0,
        }
    )
    for name in FEATURE_COLUMNS:
        frame[name] = rng.normal(size=n)
    regime = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    frame["p_bear"], frame["p_neutral"], frame["p_bull"] = regime.T
    frame[ROW_ID] = np.arange(n, dtype=float)
    p_win = 1.0 / (1.0 + np.exp(-2.5 * frame[SIGNAL].to_numpy()))
    frame["win"] = (rng.uniform(size=n) < p_win).astype(int)
    frame["yield_per_1000"] = np.where(frame["win"] == 1, 400.0, -300.0) + rng.normal(
        scale=50.0, size=n
    )
    return frame


def _expected_train(rows: pd.DataFrame, test_start: str) -> np.ndarray:
    """Positions a fold starting at ``test_start`` may train on, computed from the data."""
    start = pd.Timestamp(test_start)
    ok = (pd.to_datetime(rows["expiry"]) < start) & (
        pd.to_datetime(rows["session"]) <= start - pd.Timedelta(days=PURGE_DAYS)
    )
    return np.flatnonzero(ok.to_numpy())


def _expected_last_block(rows: pd.DataFrame, n_folds: int = 4) -> tuple[pd.Timestamp, list]:
    sessions = np.sort(pd.to_datetime(rows["session"]).unique())
    later = sessions[int(len(sessions) * 0.4) :]
    last = np.array_split(later, n_folds)[-1]
    start = pd.Timestamp(last[0])
    positions = np.flatnonzero((pd.to_datetime(rows["session"]) >= start).to_numpy())
    return start, positions.tolist()


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Gradient boosting on one OpenMP thread: as fast on these small sets, and immune to the
    spin-wait slowdown of several threads sharing busy cores."""
    with threadpool_limits(limits=1):
        yield


# ---------------------------------------------------------------------- training rows
def _features_and_outcomes():
    data = _dataset(n=400, seed=3, n_sessions=80)
    features = data.drop(columns=["win", "yield_per_1000"])
    outcomes = data[[*KEY_COLUMNS, "win", "yield_per_1000"]].assign(pnl=1.0)
    return features, outcomes


def test_training_rows_keep_only_outcomes_known_at_the_cutoff():
    features, outcomes = _features_and_outcomes()
    cutoff = pd.Timestamp(np.sort(outcomes["expiry"].unique())[40]).date()
    rows = training_rows(features, outcomes, cutoff=cutoff)
    expiry = pd.to_datetime(rows["expiry"])
    assert (expiry <= pd.Timestamp(cutoff)).all()
    # The rows expiring on the cutoff are in, the next day's are out.
    on_cutoff = int((pd.to_datetime(outcomes["expiry"]) == pd.Timestamp(cutoff)).sum())
    assert on_cutoff > 0
    assert int((expiry == pd.Timestamp(cutoff)).sum()) == on_cutoff
    assert len(rows) == int((pd.to_datetime(outcomes["expiry"]) <= pd.Timestamp(cutoff)).sum())
    # A row expiring after the cutoff never appears, even a single day after.
    late = outcomes.iloc[[0]].assign(expiry=pd.Timestamp(cutoff) + pd.Timedelta(days=1))
    late_features = features.iloc[[0]].assign(expiry=late["expiry"].iloc[0])
    rows = training_rows(
        pd.concat([features, late_features], ignore_index=True),
        pd.concat([outcomes, late], ignore_index=True),
        cutoff=cutoff,
    )
    assert not (pd.to_datetime(rows["expiry"]) > pd.Timestamp(cutoff)).any()
    assert len(rows) == int((pd.to_datetime(outcomes["expiry"]) <= pd.Timestamp(cutoff)).sum())
    # Rows carry features and label, and only the label columns of the outcomes.
    assert {*FEATURE_COLUMNS, *KEY_COLUMNS, "win", "yield_per_1000"} <= set(rows.columns)
    assert "pnl" not in rows.columns


def test_training_rows_need_a_recorded_outcome():
    features, outcomes = _features_and_outcomes()
    cutoff = dt.date(2030, 1, 1)
    rows = training_rows(features, outcomes.iloc[::2], cutoff=cutoff)
    assert len(rows) == 200
    assert sorted(rows[ROW_ID].astype(int)) == list(range(0, 400, 2))
    # The label of each row is its own outcome's.
    joined = rows.merge(outcomes, on=KEY_COLUMNS, suffixes=("", "_outcome"))
    assert (joined["win"] == joined["win_outcome"]).all()


def test_training_rows_sample_reproducibly_to_max_rows():
    features, outcomes = _features_and_outcomes()
    cutoff = dt.date(2030, 1, 1)
    first = training_rows(features, outcomes, cutoff=cutoff, max_rows=120)
    again = training_rows(features, outcomes, cutoff=cutoff, max_rows=120)
    other = training_rows(features, outcomes, cutoff=cutoff, max_rows=120, seed=8)
    assert len(first) == 120 and list(first.index) == list(range(120))
    pd.testing.assert_frame_equal(first, again)
    assert set(first[ROW_ID]) != set(other[ROW_ID])
    assert first["session"].is_monotonic_increasing
    assert len(training_rows(features, outcomes, cutoff=cutoff, max_rows=10_000)) == 400


# ---------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def trained():
    """The real estimators on 3,000 rows, recording what each classifier fit saw."""
    rows = _dataset()
    fitted: list[np.ndarray] = []
    real = probability._classifier

    def recording(seed, cv):
        model = real(seed, cv)
        original_fit = model.fit

        def fit(x, y, *args, **kwargs):
            fitted.append(np.asarray(x)[:, FEATURE_COLUMNS.index(ROW_ID)].astype(int))
            return original_fit(x, y, *args, **kwargs)

        model.fit = fit
        return model

    steps: list[tuple] = []
    unsubscribe = progress.subscribe(lambda *step: steps.append(step))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(probability, "_classifier", recording)
            result = train(rows, purge_days=PURGE_DAYS)
    finally:
        unsubscribe()
    result.progress_steps = steps
    return rows, result, fitted


def test_training_reports_each_step_until_done(trained):
    """Minutes of training on a year of history never look like a hang: every fold, the
    baselines, the final fit and the export report done / total, ending at total."""
    _, result, _ = trained
    steps = [s for s in result.progress_steps if s[0] == probability.TRAINING_TASK]
    done = [s[1] for s in steps]
    total = steps[0][2]
    assert total == len(result.folds) + 3
    assert done == sorted(done) and done[-1] == total
    assert [s[3] for s in steps][-4:] == [
        "single-feature baselines",
        f"final fit on {result.training_samples:,} rows",
        "ONNX export and parity",
        "done",
    ]


def test_train_learns_the_signal_out_of_sample(trained):
    _, result, _ = trained
    metrics = result.metrics
    for key in ("roc_auc", "brier", "brier_skill", "log_loss", "ece", "reliability"):
        assert key in metrics
    assert metrics["roc_auc"] > 0.65
    assert metrics["brier_skill"] > 0.05
    assert metrics["ece"] < 0.1
    assert sum(r["count"] for r in metrics["reliability"]) == metrics["n"]
    assert set(metrics["per_regime"]) <= {"bear", "neutral", "bull"}
    assert len(metrics["per_regime"]) == 3
    for group in metrics["per_regime"].values():
        assert 0.0 <= group["accuracy"] <= 1.0 and group["n"] > 0
    assert sum(g["n"] for g in metrics["per_regime"].values()) == metrics["n"]
    economic = metrics["economic"]
    # Picking by P(win) picks winners: the top decile yields more than the average.
    assert economic["top_decile_mean_yield"] > economic["all_mean_yield"]
    assert result.training_samples == 3000
    assert result.forced is False


def test_train_exports_both_models_with_parity(trained):
    rows, result, _ = trained
    assert set(result.parity) == {"classifier", "regressor"}
    for check in result.parity.values():
        assert check["passed"] is True
        assert check["max_abs_diff"] <= check["tolerance"]
        assert check["rows"] == len(result.latest_fold["test_rows"])
    assert result.parity["classifier"]["tolerance"] == 1e-5
    assert isinstance(result.classifier_onnx, bytes) and isinstance(result.regressor_onnx, bytes)
    x = feature_matrix(rows.iloc[:50])
    p = onnx_export.run(onnx_export.session(result.classifier_onnx), x)
    np.testing.assert_allclose(p, result.classifier.predict_proba(x)[:, 1], atol=1e-5)
    assert result.window == ("2022-01-03", str(pd.Timestamp(rows["session"].max()).date()))


def test_latest_fold_is_the_last_block(trained):
    rows, result, _ = trained
    start, positions = _expected_last_block(rows)
    assert result.latest_fold["test_start"] == str(start.date())
    assert result.latest_fold["test_end"] == str(pd.Timestamp(rows["session"].max()).date())
    assert result.latest_fold["test_rows"] == positions
    last = result.folds[-1]
    assert last["test_start"] == result.latest_fold["test_start"]
    assert last["test_rows"] == len(positions)


def test_each_fold_was_fitted_only_on_outcomes_known_before_its_test_block(trained):
    rows, result, fitted = trained
    validated = [f for f in result.folds if "skipped" not in f]
    assert len(validated) == 4
    # One fit per validated fold, then the final fit on every row.
    assert len(fitted) == len(validated) + 1
    expiry = pd.to_datetime(rows["expiry"]).to_numpy()
    session = pd.to_datetime(rows["session"]).to_numpy()
    for report, seen in zip(validated, fitted, strict=False):
        start = pd.Timestamp(report["test_start"])
        assert (expiry[seen] < start.to_datetime64()).all()
        assert (session[seen] <= (start - pd.Timedelta(days=PURGE_DAYS)).to_datetime64()).all()
        expected = _expected_train(rows, report["test_start"])
        np.testing.assert_array_equal(np.sort(seen), expected)
        assert report["train_rows"] == len(expected)
        # No test row of the fold is among its training rows.
        test = np.flatnonzero(
            (session >= start.to_datetime64())
            & (session <= pd.Timestamp(report["test_end"]).to_datetime64())
        )
        assert report["test_rows"] == len(test)
        assert not set(seen) & set(test)
    np.testing.assert_array_equal(np.sort(fitted[-1]), np.arange(len(rows)))
    # The folds' windows expand.
    sizes = [r["train_rows"] for r in validated]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


# ---------------------------------------------------------------------- refusals
def _small_models(monkeypatch):
    """Fast stand-ins for the speed of the refusal/forced tests only."""
    monkeypatch.setattr(
        probability, "_classifier", lambda seed, cv: LogisticRegression(max_iter=2000)
    )
    monkeypatch.setattr(
        probability,
        "_regressor",
        lambda seed: HistGradientBoostingRegressor(max_iter=5, random_state=seed),
    )


def test_too_few_rows_are_refused_naming_the_count(monkeypatch):
    fits = []
    monkeypatch.setattr(probability, "_classifier", lambda seed, cv: fits.append(seed))
    rows = _dataset(n=300)
    with pytest.raises(TrainingError, match=r"300 training rows, fewer than the 500 required"):
        train(rows)
    with pytest.raises(TrainingError, match=r"0 training rows"):
        train(rows.iloc[:0])
    assert fits == []


def test_a_single_class_is_refused_naming_the_counts():
    rows = _dataset(n=800).assign(win=1)
    with pytest.raises(TrainingError, match=r"800 wins and 0 losses"):
        train(rows)
    with pytest.raises(TrainingError, match=r"cannot train even when forced: .*800 wins and 0"):
        train(rows, force=True)
    # A rare class below min_class is refused too.
    rows.loc[:9, "win"] = 0
    with pytest.raises(TrainingError, match=r"790 wins and 10 losses.*at least 50"):
        train(rows)


def test_force_trains_on_few_rows_and_says_so(monkeypatch):
    _small_models(monkeypatch)
    rows = _dataset(n=400, seed=2)
    assert rows["win"].nunique() == 2
    result = train(rows, force=True)
    assert result.forced is True
    assert result.training_samples == 400
    assert result.parity["classifier"]["passed"]
    assert any("skipped" not in f for f in result.folds)


def test_forced_training_with_no_fold_history_is_refused(monkeypatch):
    _small_models(monkeypatch)
    # 120 rows over 50 sessions: no fold has 100 training rows.
    rows = _dataset(n=120, seed=2, n_sessions=50)
    with pytest.raises(TrainingError, match="no walk-forward fold had enough history"):
        train(rows, force=True)


def test_small_estimators_do_not_change_the_fold_plan(monkeypatch, trained):
    """The speed stand-ins see the same folds as the real estimators."""
    rows, result, _ = trained
    monkeypatch.setattr(
        probability,
        "_classifier",
        lambda seed, cv: HistGradientBoostingClassifier(max_iter=5, random_state=seed),
    )
    monkeypatch.setattr(
        probability,
        "_regressor",
        lambda seed: HistGradientBoostingRegressor(max_iter=5, random_state=seed),
    )
    quick = train(rows, purge_days=PURGE_DAYS)
    assert [f["train_rows"] for f in quick.folds] == [f["train_rows"] for f in result.folds]
    assert quick.latest_fold == result.latest_fold
