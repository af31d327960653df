"""The HMM market-regime detector: features, fitting, causal filtering, JSON, agreement."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

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
    confidence_reliability,
    filter_regimes,
    first_bar_session_needed,
    first_labelled_session,
    fit_regime_model,
    index_features,
    point_in_time_regimes,
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
    hmm = GaussianHMM(n_components=2, covariance_type="diag")
    hmm.n_features = 1
    hmm.startprob_ = np.asarray(model.startprob)
    hmm.transmat_ = np.asarray(model.transmat)
    hmm.means_ = np.asarray(model.means).reshape(2, 1)
    hmm.covars_ = (np.asarray(model.sds) ** 2).reshape(2, 1)
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
def test_stressed_state_is_the_volatile_one_and_catches_the_bear(simulated):
    model, features = simulated["model"], simulated["features"]
    assert model.state_names == ["calm", "stressed"]
    assert model.sds[1] > 2 * model.sds[0]
    np.testing.assert_allclose(np.sum(model.transmat, axis=1), 1.0, atol=1e-12)
    assert sum(model.startprob) == pytest.approx(1.0, abs=1e-12)
    assert model.n_samples == len(features)
    assert model.train_start == features["session"].iloc[0].date().isoformat()
    assert model.train_end == features["session"].iloc[-1].date().isoformat()

    # The saved parameters describe the model hmmlearn fitted: same likelihood, by
    # hmmlearn's scoring and by the NumPy forward recursion.
    z = features[["ret"]].to_numpy() / model.return_scale
    assert _hmmlearn_model(model).score(z) == pytest.approx(model.log_likelihood, rel=1e-9)
    assert regime_log_likelihood(model, features) == pytest.approx(model.log_likelihood, rel=1e-9)

    # The simulated bear (the most volatile state) is found and the calmest state is not
    # called bear; the middle state (twice the calm volatility here) may go either way.
    filtered = filter_regimes(model, features)
    bear = filtered["market_regime"].to_numpy() == "bear"
    states = simulated["states"]
    print(f"\ncalled bear by true state: {[round(bear[states == k].mean(), 3) for k in range(3)]}")
    assert bear[states == 0].mean() > 0.85
    assert bear[states == 2].mean() < 0.10


def test_fit_is_deterministic_for_a_seed(simulated):
    again = fit_regime_model(simulated["features"], seed=7)
    assert again.to_json() == simulated["model"].to_json()


def test_fit_uses_only_the_training_window(simulated):
    features = simulated["features"]
    start, end = features["session"].iloc[200], features["session"].iloc[999]
    model = fit_regime_model(features, start=start, end=end)
    assert model.n_samples == 800
    assert (model.train_start, model.train_end) == (
        start.date().isoformat(),
        end.date().isoformat(),
    )
    assert model.return_scale == pytest.approx(
        features["ret"].iloc[200:1000].std(ddof=0), rel=1e-12
    )
    # Rows outside the window cannot change the fit.
    outside = features.copy()
    outside.loc[1000:, "ret"] *= 5.0
    outside.loc[:199, "ret"] *= -3.0
    assert fit_regime_model(outside, start=start, end=end).to_json() == model.to_json()


def test_too_few_rows_names_the_count(simulated):
    with pytest.raises(ValueError, match=rf"at least {MIN_TRAINING_ROWS}.*got 100"):
        fit_regime_model(simulated["features"].iloc[:100])


def test_a_window_too_short_is_refused_not_widened(simulated):
    features = simulated["features"]
    with pytest.raises(ValueError, match=r"got 50 \("):
        fit_regime_model(
            features, start=features["session"].iloc[0], end=features["session"].iloc[49]
        )


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
        smoothed = hmm.predict_proba(part[["ret"]].to_numpy() / model.return_scale)
        assert filtered["p_bear"].iloc[-1] == pytest.approx(smoothed[-1, 1], abs=1e-9)


def test_calm_sessions_split_by_their_trend(simulated):
    """Calm and rising is bull, calm and falling is neutral; stress is bear either way."""
    model = simulated["model"]
    sessions = pd.bdate_range("2030-01-01", periods=200)
    calm_sd = model.sds[0] * model.return_scale
    rising = pd.DataFrame({"session": sessions, "ret": calm_sd * 0.3, "rv": 0.1})
    falling = rising.assign(ret=-calm_sd * 0.3)
    assert filter_regimes(model, rising)["market_regime"].iloc[-1] == "bull"
    assert filter_regimes(model, falling)["market_regime"].iloc[-1] == "neutral"
    crash = rising.assign(ret=np.where(np.arange(200) % 2, 1, -1) * 4 * calm_sd)
    assert filter_regimes(model, crash)["market_regime"].iloc[-1] == "bear"


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
        (lambda p: p.update(transmat=p["transmat"][:1]), r"transmat has shape \(1, 2\)"),
        (lambda p: p["transmat"][1].__setitem__(0, p["transmat"][1][0] + 0.1), "row"),
        (lambda p: p.update(means=[0.0, 0.0, 0.0]), r"means has shape"),
        (lambda p: p.update(sds=[1.0, -1.0]), "sds must be positive"),
        (lambda p: p.update(startprob=[0.5, 0.25, 0.25]), r"startprob has shape"),
        (lambda p: p.update(sds=p["sds"][::-1]), "worse lower tail"),
        (lambda p: p.pop("return_scale"), "missing field"),
        (lambda p: p.update(format="butterquant.regime_hmm/1"), "retrain the regime model"),
    ],
)
def test_from_json_rejects_bad_models(simulated, change, message):
    with pytest.raises(ValueError, match=message):
        RegimeModel.from_json(_mutated(simulated["model"], change))


# ---------------------------------------------------------------------------- point in time
def test_no_session_is_labelled_by_a_model_fitted_on_it(simulated):
    features = simulated["features"]
    wanted = [d.date() for d in features["session"].iloc[600:1000]]
    rows, refits, unlabelled = point_in_time_regimes(features, wanted)
    assert unlabelled == []
    assert len(rows) == len(wanted)
    assert (pd.to_datetime(rows["model_train_end"]) < rows["session"]).all()
    # One model per calendar month, fitted on everything before the month's first day.
    months = {d.strftime("%Y-%m") for d in wanted}
    assert set(refits) == months
    for key, model in refits.items():
        assert model.train_end < f"{key}-01"


def test_point_in_time_labels_ignore_the_future(simulated):
    """Poisoning every session after a month changes no label of that month or before."""
    features = simulated["features"]
    wanted = [d.date() for d in features["session"].iloc[600:800]]
    clean, _, _ = point_in_time_regimes(features, wanted)
    poisoned = features.copy()
    poisoned.loc[poisoned["session"] > pd.Timestamp(wanted[-1]), "ret"] = 0.5
    again, _, _ = point_in_time_regimes(poisoned, wanted)
    pd.testing.assert_frame_equal(clean, again, check_exact=True)


def test_sessions_without_enough_history_are_reported(simulated):
    features = simulated["features"]
    wanted = [d.date() for d in features["session"].iloc[:40]]
    rows, _, unlabelled = point_in_time_regimes(features, wanted)
    assert rows.empty
    assert unlabelled == wanted


def test_first_labelled_session_leaves_room_for_a_fit():
    sessions = calendar.sessions(dt.date(2022, 1, 3), dt.date(2024, 12, 31))
    first = first_labelled_session(sessions)
    assert first is not None and first.day <= 7  # the first session of a month
    before = [s for s in sessions if s < first]
    assert len(before) >= MIN_TRAINING_ROWS + 10
    assert first_labelled_session(sessions[:MIN_TRAINING_ROWS]) is None


def test_first_bar_session_needed_is_just_enough():
    """Bars from first_bar_session_needed(day) label day's whole month; one fewer session
    of bars labels nothing."""
    day = dt.date(2026, 3, 16)
    start = first_bar_session_needed(day)
    bars = calendar.sessions(start, day)
    assert first_labelled_session(bars) == dt.date(2026, 3, 2)
    assert first_labelled_session(bars[1:]) is None


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


def test_point_in_time_regime_meets_its_targets_on_the_synthetic_market():
    """Every session of 2018-2025 labelled by a model refitted monthly on the sessions before
    it, graded against the market's hidden regime. Targets: balanced accuracy >= 0.60 and
    bear recall >= 0.60 (the old in-sample, mean-ordered HMM scored 0.10 accuracy in 2024-25
    with every "bull" session truly bear), and confidence that means something."""
    universe = select_universe(read_universe_file(), size=50)
    market = SyntheticMarket(universe)
    sessions = calendar.sessions(dt.date(2015, 1, 2), dt.date(2025, 12, 31))
    bars, truth = market.bars(sessions), market.truth(sessions)
    features = index_features(bars)
    wanted = [s for s in sessions if s >= dt.date(2018, 1, 1)]
    rows, _, unlabelled = point_in_time_regimes(features, wanted)
    assert unlabelled == []
    result = agreement(rows, truth)
    reliability = confidence_reliability(rows, truth)
    print(
        f"\nsynthetic market, point in time 2018-2025 ({result['n_sessions']} sessions): "
        f"balanced accuracy {result['balanced_accuracy']:.3f}, recall {result['recall']}, "
        f"mean confidence {reliability['mean_confidence']:.3f} vs share right "
        f"{reliability['share_correct']:.3f}"
    )
    assert result["n_sessions"] == len(wanted)
    assert result["balanced_accuracy"] >= 0.60
    assert result["recall"]["bear"] >= 0.60
    assert reliability["mean_confidence"] < 0.90  # not pinned at 1.0
    assert reliability["calibration_error"] <= 0.20


REAL_FILES = {
    "NVDA": "nvda-1999-2014.csv",
    "ORCL": "orcl-1995-2014.csv",
    "YHOO": "yhoo-1996-2015.csv",
}


@pytest.fixture(scope="module")
def real_index() -> pd.DataFrame:
    """The equal-weighted index of the three real tickers, from their dividend- and
    split-adjusted closes."""
    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    frames = []
    for symbol, name in REAL_FILES.items():
        raw = pd.read_csv(fixtures / name)
        frames.append(
            pd.DataFrame(
                {
                    "session": pd.to_datetime(raw["Date"]),
                    "symbol": symbol,
                    "close": raw["Adj Close"],
                    "prev_close": raw["Adj Close"].shift(1),
                }
            )
        )
    return index_features(pd.concat(frames, ignore_index=True))


@pytest.mark.parametrize("start", ["1996-06-03", "1999-01-04", "2001-01-02", "2003-01-02"])
def test_real_history_2008_crash_is_bear_and_2004_2006_mostly_not(real_index, start):
    """Fitted only on data before 2008 (several training windows, one of them with no crash
    in it at all): >= 70% of 2008-09-15..2009-03-09 is bear, most of 2004-2006 is not."""
    model = fit_regime_model(real_index, start=start, end="2007-12-31")
    assert model.train_end <= "2007-12-31"
    filtered = filter_regimes(model, real_index)
    day = filtered["session"]
    crash = filtered[(day >= "2008-09-15") & (day <= "2009-03-09")]
    calm = filtered[(day >= "2004-01-01") & (day <= "2006-12-31")]
    crash_bear = float((crash["market_regime"] == "bear").mean())
    calm_bear = float((calm["market_regime"] == "bear").mean())
    print(
        f"\ntrained {start}..2007-12-31: crash bear {crash_bear:.1%}, 2004-06 bear {calm_bear:.1%}"
    )
    assert len(crash) > 110
    assert crash_bear >= 0.70
    assert calm_bear < 0.5


def test_real_history_point_in_time(real_index):
    """The point-in-time history itself (monthly refits, nothing after the month) calls the
    crash bear and 2004-2006 not bear."""
    wanted = [d.date() for d in real_index["session"] if d.year in (2004, 2005, 2006, 2008, 2009)]
    rows, _, unlabelled = point_in_time_regimes(real_index, wanted)
    assert unlabelled == []
    day = rows["session"]
    crash = rows[(day >= "2008-09-15") & (day <= "2009-03-09")]
    calm = rows[(day >= "2004-01-01") & (day <= "2006-12-31")]
    assert (crash["market_regime"] == "bear").mean() >= 0.70
    assert (calm["market_regime"] == "bear").mean() < 0.5
