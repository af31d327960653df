"""The butterfly backtest on a hand-made lake: every session through the production money
path, models retrained per step, and no step able to use an outcome from its future."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.backtest.butterfly import ButterflySettings, run_butterfly
from butterquant_dagster.core.backtest.inputs import LakeInputs
from butterquant_dagster.core.backtest.metrics import BENCHMARK_METRIC_NAMES, METRIC_NAMES
from butterquant_dagster.core.backtest.walk_forward import (
    LookAheadError,
    Step,
    TrainingPolicy,
    train_step,
)
from butterquant_dagster.core.ml import probability
from butterquant_dagster.core.options.costs import COST_BASIS
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.rules import PortfolioRules
from butterquant_dagster_tests.core.backtest.lakes import TICKERS, build_lake, poison

HISTORY = ("2024-06-03", "2025-03-14")
WINDOW = 11  # the last 11 sessions: one that decides, then two steps of five
STEP = 5
RULES = PortfolioRules(
    max_positions=6,
    ai_track_slots=3,
    min_success_prob=0.0,
    min_expected_yield=-1e9,
    max_spread_pct=10.0,
    min_open_interest=0,
)
SETTINGS = ButterflySettings(
    step_sessions=STEP,
    rules=RULES,
    # Small enough for the hand-made history, the production model otherwise.
    training=TrainingPolicy(n_folds=2, purge_days=10, min_rows=40, min_class=5),
)
TRADE_COLUMNS = ["order_ref", "session", "ticker", "action", "quantity", "price", "commission"]


class TrainingSpy:
    """Records what each training saw: the cutoff asked for and the rows handed over."""

    def __init__(self):
        self.cutoffs: list[dt.date] = []
        self.rows: list[pd.DataFrame] = []

    def install(self, patch: pytest.MonkeyPatch) -> None:
        rows_of, train = probability.training_rows, probability.train

        def training_rows(features, outcomes, *, cutoff, **kwargs):
            self.cutoffs.append(cutoff)
            return rows_of(features, outcomes, cutoff=cutoff, **kwargs)

        def spy_train(rows, **kwargs):
            self.rows.append(rows.copy())
            return train(rows, **kwargs)

        patch.setattr(probability, "training_rows", training_rows)
        patch.setattr(probability, "train", spy_train)


def run(lake: Lake, sessions, settings=SETTINGS):
    spy = TrainingSpy()
    with pytest.MonkeyPatch.context() as patch:
        spy.install(patch)
        result = run_butterfly(LakeInputs(lake, sorted(TICKERS)), sessions, settings)
    return result, spy


@pytest.fixture(scope="module")
def backtests(tmp_path_factory):
    """The same window on the lake and on a copy whose later outcomes are inverted."""
    root = tmp_path_factory.mktemp("backtest-lake")
    sessions = calendar.sessions(*HISTORY)
    window = sessions[-WINDOW:]
    lake, _ = build_lake(root / "clean", *HISTORY, traded_from=window[0].isoformat())
    clean, clean_spy = run(lake, window)
    shutil.copytree(root / "clean", root / "poisoned")
    poisoned_lake = Lake(root / "poisoned")
    step_one_start = window[1]
    changed = poison(poisoned_lake, after=step_one_start)
    poisoned, poisoned_spy = run(poisoned_lake, window)
    return {
        "window": window,
        "clean": (clean, clean_spy),
        "poisoned": (poisoned, poisoned_spy),
        "changed": changed,
        "lake": lake,
    }


def test_every_session_is_traded_on_the_previous_close_and_marked(backtests):
    window = backtests["window"]
    result, _ = backtests["clean"]
    assert result.equity["session"].dt.date.tolist() == window
    assert result.equity["equity"].iloc[0] == pytest.approx(SETTINGS.initial_capital)
    assert result.sessions["session"].tolist() == window[1:]
    assert result.sessions["decided_on"].tolist() == window[:-1]
    assert set(result.metrics) == {*METRIC_NAMES, *BENCHMARK_METRIC_NAMES}
    # Both tracks sent orders through the paper broker, and some filled, with IB fees.
    orders = result.orders
    assert {"ai", "baseline"} <= set(orders["track"])
    assert len(result.fills) > 0
    assert (result.fills["commission"] >= 1.0).all()
    # Filled on the cost model's basis, and the result says so.
    assert result.cost_basis == COST_BASIS
    assert result.summary()["cost_basis"] == COST_BASIS
    # The equity is the ledger's: cash plus positions at the session's marks.
    assert result.equity["equity"].to_numpy() == pytest.approx(
        (result.equity["cash"] + result.equity["positions_value"]).to_numpy()
    )


def test_each_step_trains_on_outcomes_known_before_it(backtests):
    window = backtests["window"]
    result, spy = backtests["clean"]
    starts = [window[1], window[1 + STEP]]
    steps = result.steps
    assert steps["start"].tolist() == starts
    assert steps["label_cutoff"].tolist() == [calendar.previous_session(s) for s in starts]
    assert steps["model_trained"].all(), steps["note"].tolist()
    assert spy.cutoffs == steps["label_cutoff"].tolist()
    for start, rows in zip(starts, spy.rows, strict=True):
        assert len(rows) > 0
        assert pd.to_datetime(rows["expiry"]).max() < pd.Timestamp(start)
    # Every session used a model whose labels were all known before it traded.
    used = result.sessions.dropna(subset=["model_cutoff"])
    assert len(used) == len(result.sessions)
    assert (used["model_cutoff"] < used["session"]).all()
    assert (used["model_cutoff"] <= used["decided_on"]).all()


def test_poisoned_later_outcomes_do_not_change_earlier_trades(backtests):
    window = backtests["window"]
    clean, clean_spy = backtests["clean"]
    poisoned, poisoned_spy = backtests["poisoned"]
    first_step = set(window[1 : 1 + STEP])
    assert backtests["changed"] > 0
    # The poison reaches the second step's training (its labels differ) ...
    assert not clean_spy.rows[1]["win"].equals(poisoned_spy.rows[1]["win"])
    # ... but the first step trained on the same rows and traded exactly the same.
    pd.testing.assert_frame_equal(clean_spy.rows[0], poisoned_spy.rows[0])

    def first_step_fills(result):
        fills = result.fills.loc[pd.to_datetime(result.fills["session"]).dt.date.isin(first_step)]
        return fills[TRADE_COLUMNS].reset_index(drop=True)

    clean_fills = first_step_fills(clean)
    assert len(clean_fills) > 0
    pd.testing.assert_frame_equal(clean_fills, first_step_fills(poisoned))
    ai_orders = clean.orders.loc[
        (clean.orders["track"] == "ai")
        & pd.to_datetime(clean.orders["session"]).dt.date.isin(first_step)
    ]
    assert len(ai_orders) > 0  # the model did pick trades in the first step
    columns = ["session", "equity"]
    assert clean.equity[columns].head(STEP + 1).equals(poisoned.equity[columns].head(STEP + 1))


def test_a_model_refuses_sessions_its_labels_reach_into(backtests):
    lake = backtests["lake"]
    window = backtests["window"]
    inputs = LakeInputs(lake, sorted(TICKERS))
    step = Step(1, tuple(window[1:3]))
    model, record = train_step(
        step,
        lambda before: inputs.labelled_history(before, max_rows=5_000, seed=7),
        SETTINGS.training,
    )
    assert record["model_trained"], record["note"]
    features = inputs.features(window[0])
    assert len(model.score(features, decided_on=window[0], traded=window[1])) == len(features)
    with pytest.raises(LookAheadError, match="cannot score"):
        model.score(features, decided_on=step.label_cutoff, traded=step.label_cutoff)
    early = dataclasses.replace(model, label_cutoff=window[1])
    with pytest.raises(LookAheadError):
        early.score(features, decided_on=window[0], traded=window[1])


def test_a_history_that_leaks_later_outcomes_is_refused(backtests):
    lake = backtests["lake"]
    window = backtests["window"]
    inputs = LakeInputs(lake, sorted(TICKERS))
    step = Step(1, tuple(window[1:3]))

    def leaky(before):
        features, outcomes = inputs.labelled_history(window[-1], max_rows=5_000, seed=7)
        return features, outcomes  # outcomes expiring after ``before`` included

    with pytest.raises(LookAheadError, match="expiring on or after"):
        train_step(step, leaky, SETTINGS.training)


def test_a_step_model_without_skill_does_not_trade(backtests):
    """The backtest applies the production promotion gates: labels shuffled across rows
    leave a model with no skill over the base rate, and the step's AI track is off."""
    inputs = LakeInputs(backtests["lake"], sorted(TICKERS))
    window = backtests["window"]
    step = Step(1, tuple(window[1:3]))
    rng = np.random.default_rng(3)

    def shuffled(before):
        features, outcomes = inputs.labelled_history(before, max_rows=5_000, seed=7)
        outcomes = outcomes.assign(win=rng.permutation(outcomes["win"].to_numpy()))
        return features, outcomes

    model, record = train_step(step, shuffled, SETTINGS.training)
    assert model is None
    assert not record["model_trained"] and record["model_version"] == "none"
    assert "failed its promotion gates" in record["note"]
    assert "brier_skill" in record["note"] or "beats_best_feature" in record["note"]


def test_too_little_history_turns_the_ai_track_off(backtests):
    lake = backtests["lake"]
    window = backtests["window"][:4]
    strict = dataclasses.replace(
        SETTINGS, step_sessions=2, training=TrainingPolicy(min_rows=1_000_000)
    )
    result, spy = run(lake, window, strict)
    assert not result.steps["model_trained"].any()
    assert all("AI track off" in note for note in result.steps["note"])
    assert any("AI track off" in note for note in result.notes)
    assert (result.sessions["model_version"] == "none").all()
    assert result.sessions["model_cutoff"].isna().all()
    assert set(result.orders["track"]) == {"baseline"}  # the baseline still trades
    assert len(spy.cutoffs) == 2


def test_an_empty_or_single_session_window_is_not_enough_data(backtests):
    lake = backtests["lake"]
    inputs = LakeInputs(lake, sorted(TICKERS))
    empty = run_butterfly(inputs, [], SETTINGS)
    single = run_butterfly(inputs, backtests["window"][:1], SETTINGS)
    for result in (empty, single):
        assert result.metrics["trades"] == 0
        assert all(v is None for k, v in result.metrics.items() if k != "trades"), result.metrics
        assert result.notes
    assert single.equity["equity"].tolist() == [SETTINGS.initial_capital]
    assert single.steps.empty and single.sessions.empty


def test_tickers_without_candidates_trade_nothing_and_stay_flat(backtests):
    quiet = dataclasses.replace(SETTINGS, training=TrainingPolicy(min_rows=1_000_000))
    inputs = LakeInputs(backtests["lake"], ["ZZZ"])  # no candidate, chain or bar anywhere
    result = run_butterfly(inputs, backtests["window"][:3], quiet)
    assert result.orders.empty and result.fills.empty
    assert result.equity["equity"].tolist() == [quiet.initial_capital] * 3
    assert result.metrics["total_return"] == 0.0
    assert result.metrics["win_rate_of_days"] is None  # never exposed, never moved
    assert result.equity["benchmark"].isna().all()
    assert result.metrics["benchmark_total_return"] is None
