"""The absolute promotion gates: a model without skill, one that loses to a single feature,
a badly calibrated one, a yield model without rank skill and an ensemble regime with AUC but
no Brier skill are all refused, each with its reason; a model whose features carry signal
beyond any single column passes every gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from butterquant_dagster.core.ml import gates
from butterquant_dagster.core.ml.ensemble import ENSEMBLE_FEATURES, train_ensemble
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS
from butterquant_dagster.core.ml.probability import train
from butterquant_dagster.core.ml.validation import (
    Fold,
    classification_metrics,
    single_feature_baselines,
)

PURGE_DAYS = 60
SIGNALS = ("prob_profit_forecast", "iv_vs_forecast", "vol_edge")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def candidates(
    n: int, *, seed: int, n_sessions: int = 160, win_logit=None, yield_of=None
) -> pd.DataFrame:
    """Candidate rows with every feature N(0, 1), a 30-day expiry, a label drawn from
    ``win_logit(frame)`` (labels independent of features when None) and a realized yield
    ``yield_of(frame, rng)`` (400 per win, -300 per loss, noise, when None). The rule's
    ``ev_per_1000`` is a weak, noisy view of the first signal."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2022-01-03", periods=n_sessions)
    session = np.sort(rng.choice(days.to_numpy(), size=n))
    center = 50.0 + 0.25 * np.arange(n)
    frame = pd.DataFrame(
        {
            "session": session,
            "symbol": rng.choice([f"T{i:02d}" for i in range(12)], size=n),
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
    logit = win_logit(frame) if win_logit else np.full(n, -1.0)
    frame["win"] = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame["ev_per_1000"] = 50.0 * frame[SIGNALS[0]] + rng.normal(scale=150.0, size=n)
    frame["yield_per_1000"] = (
        yield_of(frame, rng)
        if yield_of
        else np.where(frame["win"] == 1, 400.0, -300.0) + rng.normal(scale=50.0, size=n)
    )
    return frame


def joint_signal(frame: pd.DataFrame) -> np.ndarray:
    """P(win) from three features together: no single one of them carries most of it."""
    return -1.0 + sum(1.1 * frame[name].to_numpy() for name in SIGNALS)


def failed(gate_list) -> set[str]:
    return {g.name for g in gate_list if not g.passed}


# ---------------------------------------------------------------------------- P(win)
@pytest.fixture(scope="module")
def skilled():
    """Features carry signal beyond any single column; yield follows the wins. 12,000 rows
    give the latest fold ~1,800: on ~1,000 the ECE of a well-calibrated model is itself
    0.03-0.06 by sampling noise alone, around the gate's threshold."""
    return train(candidates(12_000, seed=11, win_logit=joint_signal), purge_days=PURGE_DAYS)


def test_a_model_with_signal_beyond_any_single_feature_passes_every_gate(skilled):
    verdict = gates.verdict(skilled.win_gates)
    assert verdict["passed"], verdict["reason"]
    assert verdict["reason"] == "all gates passed"
    names = [c["name"] for c in verdict["checks"]]
    assert names == [
        "brier_skill",
        "latest_fold_ece",
        "onnx_parity",
        "beats_best_feature_auc",
        "beats_best_feature_brier",
        "not_forced",
    ]
    best = skilled.best_feature
    assert best["feature"] in SIGNALS
    assert skilled.metrics["roc_auc"] > best["roc_auc"]
    assert skilled.metrics["brier"] < best["brier"]
    assert skilled.metrics["brier_skill"] > gates.MIN_BRIER_SKILL
    # Every check records the value it measured and the threshold it was held to.
    skill = verdict["checks"][0]
    assert skill["value"] == skilled.metrics["brier_skill"]
    assert skill["threshold"] == gates.MIN_BRIER_SKILL


def test_the_yield_model_that_ranks_realized_yield_passes(skilled):
    verdict = gates.verdict(skilled.yield_gates)
    assert verdict["passed"], verdict["reason"]
    metrics = skilled.yield_metrics
    assert metrics["spearman"] > 0
    assert metrics["top_decile_mean_yield"] > metrics["rule_top_decile_mean_yield"]
    assert metrics["top_decile_mean_yield"] > metrics["all_mean_yield"]


def test_a_model_without_skill_is_refused_with_its_reason():
    result = train(candidates(3000, seed=5), purge_days=PURGE_DAYS)  # labels ignore features
    assert result.metrics["brier_skill"] <= 0.0
    verdict = gates.verdict(result.win_gates)
    assert not verdict["passed"]
    assert "brier_skill" in verdict["failed"]
    assert "no skill" in verdict["reason"]


def test_a_model_that_loses_to_the_best_single_feature_is_refused():
    # All of P(win) sits in one column: the scan's own probability is the better forecaster.
    one_column = candidates(4000, seed=3, win_logit=lambda f: 2.5 * f[SIGNALS[0]].to_numpy())
    result = train(one_column, purge_days=PURGE_DAYS)
    assert result.metrics["brier_skill"] > 0  # it has skill, just not beyond the column
    assert result.best_feature["feature"] == SIGNALS[0]
    verdict = gates.verdict(result.win_gates)
    assert not verdict["passed"]
    assert {"beats_best_feature_auc", "beats_best_feature_brier"} & set(verdict["failed"])
    assert repr(SIGNALS[0]) in verdict["reason"]


def test_a_badly_calibrated_model_is_refused_though_it_ranks_well():
    rng = np.random.default_rng(4)
    truth = rng.uniform(0.05, 0.6, size=4000)
    y = (rng.uniform(size=4000) < truth).astype(int)
    overconfident = np.clip(truth * 1.5, 0, 1)  # same order, probabilities half again too high
    metrics = classification_metrics(y, overconfident)
    assert metrics["roc_auc"] > 0.6
    gate = gates.latest_fold_ece_gate(metrics["ece"])
    assert metrics["ece"] > gates.MAX_LATEST_FOLD_ECE
    assert not gate.passed and "badly calibrated" in gate.reason
    honest = gates.latest_fold_ece_gate(classification_metrics(y, truth)["ece"])
    assert honest.passed


def test_a_forced_model_fails_the_not_forced_gate():
    result = train(
        candidates(400, seed=2, n_sessions=100, win_logit=joint_signal),
        purge_days=PURGE_DAYS,
        force=True,
    )
    assert result.forced
    for gate_list in (result.win_gates, result.yield_gates):
        verdict = gates.verdict(gate_list)
        assert not verdict["passed"] and "not_forced" in verdict["failed"]
        assert "never promoted" in verdict["reason"]


def test_force_marks_the_model_forced_even_with_enough_data(skilled):
    """--force trains and registers, never promotes: also when the data would have been
    enough (the old rule only marked forced models that lacked data)."""
    rows = candidates(1200, seed=9, win_logit=joint_signal)
    result = train(rows, purge_days=PURGE_DAYS, force=True)
    assert result.forced
    assert not gates.verdict(result.win_gates)["passed"]


# ---------------------------------------------------------------------------- yield
def test_a_yield_model_the_rule_ev_beats_is_refused():
    """Wins follow the features, but realized yield follows the rule's ev_per_1000 (which
    the model does not see): the yield model's top decile loses to the rule's."""

    def yield_by_rule(frame, rng):
        return 4.0 * frame["ev_per_1000"].to_numpy() + rng.normal(scale=100.0, size=len(frame))

    rows = candidates(3000, seed=8, win_logit=joint_signal, yield_of=yield_by_rule)
    result = train(rows, purge_days=PURGE_DAYS)
    verdict = gates.verdict(result.yield_gates)
    assert not verdict["passed"]
    assert "top_decile_beats_rule_ev" in verdict["failed"]
    metrics = result.yield_metrics
    assert metrics["top_decile_mean_yield"] < metrics["rule_top_decile_mean_yield"]


def test_without_the_rule_ev_the_yield_gate_cannot_pass():
    gate_list = gates.expected_yield_gates(
        {"spearman": 0.2, "top_decile_mean_yield": 10.0, "all_mean_yield": -5.0},
        {"passed": True, "max_abs_diff": 0.0, "tolerance": 1.0},
    )
    assert failed(gate_list) == {"top_decile_beats_rule_ev"}


def test_yield_folds_clip_from_their_own_training_rows(monkeypatch):
    """A lottery payoff in a fold's test block must not move that fold's clip."""
    from butterquant_dagster.core.ml import probability

    seen = []
    real = probability._fit_regressor

    def spy(x, raw_yield, seed):
        seen.append(raw_yield.copy())
        return real(x, raw_yield, seed)

    rows = candidates(1500, seed=1, win_logit=joint_signal)
    last = pd.to_datetime(rows["session"]) == pd.to_datetime(rows["session"]).max()
    rows.loc[last, "yield_per_1000"] = 1e7  # only ever in the last fold's test rows
    monkeypatch.setattr(probability, "_fit_regressor", spy)
    train(rows, purge_days=PURGE_DAYS)
    *folds, final = seen
    assert folds and all(np.max(y) < 1e6 for y in folds)
    assert np.max(final) == 1e7  # the final model alone trains on every row


# ---------------------------------------------------------------------------- baselines
def test_single_feature_baselines_are_out_of_fold_and_named():
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.normal(size=(n, 3))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.0 * x[:, 1])))).astype(int)
    folds = [Fold(0, np.arange(0, 1000), np.arange(1000, 1500), None, None)]
    folds.append(Fold(1, np.arange(0, 1500), np.arange(1500, 2000), None, None))
    ranked = single_feature_baselines(x, y, folds, ["a", "b", "c"])
    assert ranked[0]["feature"] == "b"
    assert ranked[0]["n"] == 1000
    assert ranked[0]["roc_auc"] > 0.75 and ranked[-1]["roc_auc"] < 0.6
    # A decreasing feature counts as well as its mirror image.
    mirrored = single_feature_baselines(-x, y, folds, ["a", "b", "c"])
    assert mirrored[0]["feature"] == "b"
    assert mirrored[0]["roc_auc"] == pytest.approx(ranked[0]["roc_auc"], abs=1e-9)


# ---------------------------------------------------------------------------- ensemble
def ensemble_rows(seed: int = 0) -> pd.DataFrame:
    """One regime whose "up" rate swings from 30 % to 70 % over time while one signal ranks
    weakly within each period: AUC above 0.52, yet an intercept learned on the past makes the
    forecasts worse than the base rate."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2020-01-01", periods=400)
    symbols = [f"S{i:02d}" for i in range(10)]
    frame = pd.DataFrame([(d, s) for d in sessions for s in symbols], columns=["session", "symbol"])
    n = len(frame)
    for name in ENSEMBLE_FEATURES:
        frame[name] = rng.normal(size=n)
    position = np.arange(n) / n
    drift = np.where(position < 0.6, -1.2, 1.2)
    logit = drift + 0.35 * frame["mom21"].to_numpy()
    frame["up"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame["market_regime"] = "bull"
    frame["regime_confidence"] = 1.0
    frame["close"] = 100.0
    frame["label_close"] = 100.0
    frame["label_date"] = frame["session"] + pd.Timedelta(days=30)
    frame["horizon"] = 21
    return frame


def test_an_ensemble_regime_with_auc_but_no_brier_skill_is_refused():
    result = train_ensemble(ensemble_rows(), allow_missing_regimes=True)
    metrics = result.models["bull"].metrics
    assert metrics["roc_auc"] > 0.52  # the old rule would have promoted it
    assert metrics["brier_skill"] < 0
    verdict = result.verdict("bull")
    assert not verdict["passed"]
    assert verdict["failed"] == ["brier_skill"]
    assert result.metadata()["regimes"]["bull"]["gates"] == verdict


def test_a_forced_ensemble_is_never_promotable():
    rows = ensemble_rows(seed=1)
    result = train_ensemble(rows, allow_missing_regimes=True, force=True)
    assert result.forced
    assert "not_forced" in result.verdict("bull")["failed"]


# ---------------------------------------------------------------------------- verdicts
def test_verdict_and_legacy_metadata():
    ok = gates.Gate("a", 1.0, 0.0, True, "fine")
    bad = gates.Gate("b", -1.0, 0.0, False, "too low")
    assert gates.verdict([ok])["passed"] is True
    both = gates.verdict([ok, bad])
    assert both["passed"] is False and both["failed"] == ["b"] and both["reason"] == "b: too low"
    assert gates.verdict([])["passed"] is False
    assert gates.passed({"gates": both}) is False
    assert gates.passed({"gates": gates.verdict([ok])}) is True
    # A model registered before the gates existed is not trusted.
    assert gates.passed({"metrics": {}}) is False
    assert "before the gates existed" in gates.failure_reason({})
    parity = gates.parity_gate({"passed": False, "max_abs_diff": 0.1, "tolerance": 1e-5})
    assert not parity.passed and "outside" in parity.reason
    no_baseline = gates.beats_feature_gates({"roc_auc": 0.9, "brier": 0.1}, None)
    assert not any(g.passed for g in no_baseline)
