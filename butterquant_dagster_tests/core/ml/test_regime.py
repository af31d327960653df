"""The HMM market-regime detector: features, fitting, causal filtering, JSON, agreement."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from hmmlearn.hmm import GaussianHMM

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.ml.regime import (
    MIN_TRAINING_ROWS,
    STATE_NAMES,
    RegimeModel,
    agreement,
    filter_regimes,
    fit_regime_model,
    index_features,
    regime_log_likelihood,
)

SQRT_YEAR = math.sqrt(252.0)


# ---------------------------------------------------------------------------- helpers
def _bars(closes: dict[str, list[float | None]], start: str = "2024-01-02") -> pd.DataFrame:
    """Daily bars for hand-made closes (None: no bar that day); prev_close is the last close."""
    sessions = pd.bdate_range(start, periods=len(next(iter(closes.values()))))
    rows = []
    for symbol, values in closes.items():
        previous = None
        for session, close in zip(sessions, values, strict=True):
            if close is None:
                continue
            rows.append(
                {
                    "session": session,
                    "symbol": symbol,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "adj_close": close,
                    "prev_close": np.nan if previous is None else previous,
                    "volume": 1000,
                    "source": "test",
                }
            )
            previous = close
    return pd.DataFrame(rows)


def _simulate_regimes(n: int, seed: int = 11) -> tuple[pd.DataFrame, np.ndarray]:
    """Bars of one index following a 3-regime Markov chain with distinct drift and vol.

    Returns the bars and the true state per bar (0 bear, 1 neutral, 2 bull).
    """
    rng = np.random.default_rng(seed)
    transmat = np.array([[0.97, 0.02, 0.01], [0.01, 0.98, 0.01], [0.005, 0.01, 0.985]])
    drift = np.array([-0.004, 0.0, 0.002])
    vol = np.array([0.030, 0.013, 0.006])
    states = np.empty(n, dtype=int)
    state = 1
    for i in range(n):
        state = rng.choice(3, p=transmat[state]) if i else state
        states[i] = state
    returns = drift[states] + vol[states] * rng.standard_normal(n)
    returns[0] = 0.0
    close = 100.0 * np.exp(np.cumsum(returns))
    bars = _bars({"IDX": close.tolist()}, start="2010-01-04")
    return bars, states


@pytest.fixture(scope="module")
def simulated() -> dict:
    bars, states = _simulate_regimes(1500)
    features = index_features(bars, "IDX", vol_window=10)
    # index_features drops the first vol_window rows (the first bar has no return).
    true_states = states[len(states) - len(features) :]
    model = fit_regime_model(features, seed=7)
    return {"features": features, "states": true_states, "model": model}


def _hmmlearn_model(model: RegimeModel) -> GaussianHMM:
    hmm = GaussianHMM(n_components=3, covariance_type="full")
    hmm.n_features = 2
    hmm.startprob_ = np.asarray(model.startprob)
    hmm.transmat_ = np.asarray(model.transmat)
    hmm.means_ = np.asarray(model.means)
    hmm.covars_ = np.asarray(model.covars)
    return hmm


# ---------------------------------------------------------------------------- features
def test_index_features_equal_weighted_on_hand_made_bars():
    closes = {
        "AAA": [100.0, 101.0, 102.01, 100.0, 103.0, 104.0],
        "BBB": [50.0, 51.0, None, 52.0, 51.0, 53.0],  # no bar on the third session
    }
    bars = _bars(closes).sample(frac=1.0, random_state=3)  # row order must not matter
    features = index_features(bars, vol_window=3)

    sessions = pd.bdate_range("2024-01-02", periods=6)
    log = np.log
    expected_ret = [
        (log(101 / 100) + log(51 / 50)) / 2,
        log(102.01 / 101),  # BBB missing that day: excluded, not counted as zero
        (log(100 / 102.01) + log(52 / 51)) / 2,
        (log(103 / 100) + log(51 / 52)) / 2,
        (log(104 / 103) + log(53 / 51)) / 2,
    ]
    expected_rv = [np.std(expected_ret[i - 2 : i + 1], ddof=1) * SQRT_YEAR for i in range(2, 5)]
    expected = pd.DataFrame(
        {
            "session": sessions[3:].astype("datetime64[ns]"),
            "ret": expected_ret[2:],
            "rv": expected_rv,
        }
    )
    pd.testing.assert_frame_equal(features, expected)


def test_index_features_use_only_past_rows():
    closes = {"AAA": [100, 101, 99, 102, 104, 103, 101, 105, 106, 104.0]}
    full = index_features(_bars(closes), vol_window=4)
    closes["AAA"][-1] = 150.0  # a shock on the last day changes only the last row
    shocked = index_features(_bars(closes), vol_window=4)
    pd.testing.assert_frame_equal(full.iloc[:-1], shocked.iloc[:-1])
    assert shocked["rv"].iloc[-1] > full["rv"].iloc[-1]


def test_index_symbol_selects_one_ticker():
    closes = {
        "AAA": [100.0, 101.0, 102.01, 100.0, 103.0, 104.0],
        "BBB": [50.0, 51.0, None, 52.0, 51.0, 53.0],
    }
    features = index_features(_bars(closes), "BBB", vol_window=2)
    rets = np.log([51 / 50, 52 / 51, 51 / 52, 53 / 51])
    sessions = pd.bdate_range("2024-01-02", periods=6)
    assert features["session"].tolist() == [sessions[3], sessions[4], sessions[5]]
    np.testing.assert_allclose(features["ret"], rets[1:], rtol=1e-12)
    np.testing.assert_allclose(
        features["rv"], [np.std(rets[i - 1 : i + 1], ddof=1) * SQRT_YEAR for i in (1, 2, 3)]
    )


def test_unknown_index_symbol_is_named():
    bars = _bars({"AAA": [100.0, 101.0, 102.0, 103.0]})
    with pytest.raises(ValueError, match="ZZZZ"):
        index_features(bars, "ZZZZ")


# ---------------------------------------------------------------------------- fitting
def test_states_are_ordered_bear_neutral_bull_by_mean_return(simulated):
    model, features = simulated["model"], simulated["features"]
    means = np.asarray(model.means)
    assert model.state_names == list(STATE_NAMES)
    assert means[0, 0] < means[1, 0] < means[2, 0]
    # The simulated bear is the most volatile state and the bull the calmest.
    assert means[0, 1] > means[1, 1] > means[2, 1]
    np.testing.assert_allclose(np.sum(model.transmat, axis=1), 1.0, atol=1e-12)
    assert sum(model.startprob) == pytest.approx(1.0, abs=1e-12)
    assert model.n_samples == len(features)
    assert model.train_start == features["session"].iloc[0].date().isoformat()
    assert model.train_end == features["session"].iloc[-1].date().isoformat()

    # The permuted parameters describe the same model hmmlearn fitted: same likelihood, by
    # hmmlearn's scoring and by the NumPy forward recursion.
    z = model.standardize(features[["ret", "rv"]].to_numpy())
    assert _hmmlearn_model(model).score(z) == pytest.approx(model.log_likelihood, rel=1e-9)
    assert regime_log_likelihood(model, features) == pytest.approx(model.log_likelihood, rel=1e-9)

    # The named states recover the simulated ones.
    filtered = filter_regimes(model, features)
    predicted = filtered["market_regime"].map({n: i for i, n in enumerate(STATE_NAMES)})
    accuracy = float((predicted.to_numpy() == simulated["states"]).mean())
    assert accuracy > 0.85, accuracy


def test_fit_is_deterministic_for_a_seed(simulated):
    again = fit_regime_model(simulated["features"], seed=7)
    assert again.to_json() == simulated["model"].to_json()


def test_fit_uses_only_the_training_window(simulated):
    features = simulated["features"]
    end = features["session"].iloc[799]
    model = fit_regime_model(features, end=end)
    assert model.n_samples == 800
    assert model.train_end == end.date().isoformat()
    assert model.feature_mean == pytest.approx(
        features[["ret", "rv"]].iloc[:800].mean().tolist(), rel=1e-12
    )


def test_too_few_rows_names_the_count(simulated):
    with pytest.raises(ValueError, match=rf"at least {MIN_TRAINING_ROWS}.*got 100"):
        fit_regime_model(simulated["features"].iloc[:100])


# ---------------------------------------------------------------------------- filtering
def test_filtering_does_not_look_ahead(simulated):
    model, features = simulated["model"], simulated["features"]
    n = 400
    short = filter_regimes(model, features.iloc[:n])
    longer = filter_regimes(model, features.iloc[: n + 50])
    pd.testing.assert_frame_equal(short, longer.iloc[:n], check_exact=True)


def test_filtered_probabilities_are_distributions(simulated):
    filtered = filter_regimes(simulated["model"], simulated["features"])
    assert list(filtered.columns) == [
        "session",
        "market_regime",
        "regime_confidence",
        "p_bear",
        "p_neutral",
        "p_bull",
    ]
    probs = filtered[["p_bear", "p_neutral", "p_bull"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert (probs >= 0).all()
    np.testing.assert_array_equal(filtered["regime_confidence"], probs.max(axis=1))
    assert filtered["market_regime"].tolist() == [STATE_NAMES[k] for k in probs.argmax(axis=1)]


def test_last_filtered_row_equals_the_smoothed_posterior(simulated):
    """At the last row forward filtering and forward-backward smoothing coincide."""
    model, features = simulated["model"], simulated["features"]
    hmm = _hmmlearn_model(model)
    for n in (150, 777):
        part = features.iloc[:n]
        filtered = filter_regimes(model, part)
        smoothed = hmm.predict_proba(model.standardize(part[["ret", "rv"]].to_numpy()))
        np.testing.assert_allclose(
            filtered[["p_bear", "p_neutral", "p_bull"]].iloc[-1], smoothed[-1], atol=1e-9
        )


# ---------------------------------------------------------------------------- JSON
def test_json_round_trip_filters_identically(simulated):
    model, features = simulated["model"], simulated["features"]
    text = model.to_json()
    json.loads(text)  # plain JSON
    restored = RegimeModel.from_json(text)
    assert restored == model
    pd.testing.assert_frame_equal(
        filter_regimes(restored, features), filter_regimes(model, features), check_exact=True
    )


def _mutated(model: RegimeModel, change) -> str:
    payload = json.loads(model.to_json())
    change(payload)
    return json.dumps(payload)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.update(transmat=p["transmat"][:2]), r"transmat has shape \(2, 3\)"),
        (lambda p: p["transmat"][1].__setitem__(0, p["transmat"][1][0] + 0.1), "row"),
        (lambda p: p.update(means=[[*row, 0.0] for row in p["means"]]), r"means has shape"),
        (lambda p: p.update(covars=[[1.0, 1.0]] * 3), r"covars has shape"),
        (lambda p: p.update(startprob=[0.5, 0.5]), r"startprob has shape"),
        (lambda p: p.update(covars=[[[1.0, 2.0], [2.0, 1.0]]] * 3), "positive definite"),
        (lambda p: p.update(means=p["means"][::-1]), "not ordered"),
        (lambda p: p.pop("feature_std"), "missing field"),
        (lambda p: p.update(format="something-else"), "format"),
    ],
)
def test_from_json_rejects_bad_models(simulated, change, message):
    with pytest.raises(ValueError, match=message):
        RegimeModel.from_json(_mutated(simulated["model"], change))


def test_from_json_rejects_non_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        RegimeModel.from_json("{not json")


# ---------------------------------------------------------------------------- agreement
def test_agreement_counts():
    sessions = pd.bdate_range("2024-01-02", periods=5)
    filtered = pd.DataFrame(
        {"session": sessions, "market_regime": ["bull", "bull", "bear", "neutral", "bull"]}
    )
    truth = pd.DataFrame(
        {"session": sessions[1:], "regime": ["bull", "bear", "bear", "bull"]}
    )  # the first session has no truth: not counted
    result = agreement(filtered, truth)
    assert result["n_sessions"] == 4
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["recall"] == {"bear": 0.5, "neutral": None, "bull": 1.0}
    assert result["confusion"]["bear"] == {"bear": 1, "neutral": 1, "bull": 0}
    assert result["balanced_accuracy"] == pytest.approx(0.75)
    assert result["baseline_accuracy"] == pytest.approx(0.5)


def test_agreement_with_the_synthetic_market():
    universe = select_universe(read_universe_file(), size=60)
    market = SyntheticMarket(universe)
    sessions = calendar.sessions(dt.date(2015, 1, 2), dt.date(2024, 12, 31))
    bars, truth = market.bars(sessions), market.truth(sessions)
    features = index_features(bars)
    model = fit_regime_model(features, end=dt.date(2022, 12, 30))
    assert model.train_end == "2022-12-30"
    filtered = filter_regimes(model, features)  # one causal pass over all history
    evaluation = filtered.loc[filtered["session"] >= pd.Timestamp("2023-01-01")]
    result = agreement(evaluation, truth)
    print(
        f"\nsynthetic market, out of sample 2023-2024 ({result['n_sessions']} sessions): "
        f"accuracy {result['accuracy']:.3f} vs majority-class ({result['majority_regime']}) "
        f"baseline {result['baseline_accuracy']:.3f}; balanced accuracy "
        f"{result['balanced_accuracy']:.3f} vs 0.333; recall {result['recall']}; "
        f"precision {result['precision']}"
    )
    assert result["n_sessions"] == 502
    # Plain accuracy does NOT beat the majority class here (about 0.32 vs 0.63): 2023-2024 is
    # 63% bull, the synthetic bull and neutral regimes have nearly the same realised
    # volatility, and ordering the states by mean return labels the calm state "neutral".
    # Even the regime's own market_vol, known exactly and split by thresholds tuned on
    # 2015-2022, scores only about 0.61 here. What the detector does do is find the bear
    # regime and beat every constant guess on balanced accuracy (1/3 for any constant).
    assert result["balanced_accuracy"] > 0.40
    assert result["precision"]["bear"] > 2 * result["true_share"]["bear"]
    assert result["recall"]["bear"] > 0.4
