"""The regime ensemble: labels from the future close only, features from the past only,
walk-forward folds without leakage, ONNX parity, refusals, and the decision JSON shapes."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar as cal
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.ensemble import (
    DECISION_COLUMNS,
    ENSEMBLE_FEATURES,
    REGIMES,
    ROW_COLUMNS,
    decide,
    decisions_json,
    portfolio_export,
    purge_days,
    regime_folds,
    train_ensemble,
    training_rows,
)
from butterquant_dagster.core.ml.technical import technical_signals

SESSIONS = cal.sessions(dt.date(2015, 1, 2), dt.date(2018, 12, 31))
HORIZON = 21
BULL = {
    "market_regime": "bull",
    "regime_confidence": 0.73,
    "p_bear": 0.07,
    "p_neutral": 0.2,
    "p_bull": 0.73,
}


def _regimes(truth: pd.DataFrame) -> pd.DataFrame:
    """The hidden regime as a regimes frame: one-hot probabilities, full confidence."""
    frame = pd.DataFrame(
        {
            "session": truth["session"],
            "market_regime": truth["regime"].astype(str),
            "regime_confidence": 1.0,
        }
    )
    for name in REGIMES:
        frame[f"p_{name}"] = (frame["market_regime"] == name).astype(float)
    return frame


@pytest.fixture(scope="module")
def market():
    synthetic = SyntheticMarket(select_universe(read_universe_file(), size=30))
    return {"bars": synthetic.bars(SESSIONS), "regimes": _regimes(synthetic.truth(SESSIONS))}


@pytest.fixture(scope="module")
def rows(market):
    return training_rows(market["bars"], market["regimes"], SESSIONS[130:], horizon=HORIZON)


@pytest.fixture(scope="module")
def result(rows):
    return train_ensemble(rows)


# ---------------------------------------------------------------------------- training rows
def test_labels_use_the_close_horizon_sessions_later(market, rows):
    assert list(rows.columns) == ROW_COLUMNS
    closes = market["bars"].pivot(index="session", columns="symbol", values="close")
    sample = rows.sample(200, random_state=3)
    for r in sample.itertuples(index=False):
        i = closes.index.get_loc(r.session)
        assert r.label_date == closes.index[i + HORIZON]
        assert r.label_close == closes.iloc[i + HORIZON][r.symbol]
        assert r.up == int(closes.iloc[i + HORIZON][r.symbol] > closes.iloc[i][r.symbol])
    # The last HORIZON sessions have no future close yet: their rows are dropped.
    assert rows["session"].max() == pd.Timestamp(SESSIONS[-1 - HORIZON])
    assert rows["session"].min() == pd.Timestamp(SESSIONS[130])
    assert np.isfinite(rows[ENSEMBLE_FEATURES].to_numpy()).all()


def test_features_see_nothing_after_their_session(market):
    bars = market["bars"][market["bars"]["session"] <= pd.Timestamp(SESSIONS[400])]
    session = SESSIONS[300]
    later = bars["session"] > pd.Timestamp(session)
    spiked = bars.copy()
    for column in ("high", "low", "close"):
        spiked.loc[later, column] *= 3.0  # a huge jump right after the session
    sessions = SESSIONS[280:301]
    base = training_rows(bars, market["regimes"], sessions, horizon=HORIZON)
    moved = training_rows(spiked, market["regimes"], sessions, horizon=HORIZON)
    key = ["session", "symbol", "market_regime", "regime_confidence", *ENSEMBLE_FEATURES, "close"]
    pd.testing.assert_frame_equal(base[key], moved[key])
    assert (moved["up"] == 1).all() and not (base["up"] == 1).all()  # only labels moved
    # The one-pass rows equal the per-session signals.
    signals = technical_signals(bars, session)[0]
    at = base[base["session"] == pd.Timestamp(session)].reset_index(drop=True)
    for column in ("adx", "zscore50", "mom126", "hurst", "trend_dir"):
        np.testing.assert_array_equal(at[column].to_numpy(), signals[column].to_numpy())


def test_sessions_without_a_regime_are_refused(market):
    regimes = market["regimes"].iloc[:-300]
    with pytest.raises(ValueError, match="no regimes row"):
        training_rows(market["bars"], regimes, SESSIONS[500:800])


# ---------------------------------------------------------------------------- training
def test_three_regime_models_with_parity_and_accuracy(result, rows):
    assert set(result.models) == set(REGIMES)
    assert not result.forced and result.horizon == HORIZON
    assert result.features == ENSEMBLE_FEATURES
    metadata = json.loads(json.dumps(result.metadata()))  # JSON-ready
    for name in REGIMES:
        model = result.models[name]
        assert model.parity.passed and model.parity.max_abs_diff <= 1e-5
        assert model.n_rows == int((rows["market_regime"] == name).sum())
        entry = metadata["regimes"][name]
        assert 0.0 <= entry["accuracy"] <= 1.0
        assert entry["accuracy"] == model.metrics["accuracy"]
        assert entry["parity"]["passed"] is True
        assert set(entry["metrics"]["by_fold"]) <= {"0", "1", "2", "3"}
    # The ONNX graph (scaler inside) reproduces the regime's probabilities.
    session = onnx_export.session(result.models["bull"].onnx_bytes)
    p = onnx_export.run(session, rows[ENSEMBLE_FEATURES].to_numpy(np.float32)[:50])
    assert ((p > 0) & (p < 1)).all()


def test_folds_never_train_on_a_label_known_after_the_test_starts(result, rows):
    for name in REGIMES:
        part = rows[rows["market_regime"] == name].reset_index(drop=True)
        folds = regime_folds(part, n_folds=4, horizon=HORIZON)
        assert len(folds) == 4
        for fold in folds:
            train, test = part.iloc[fold.train], part.iloc[fold.test]
            assert len(train) > 0
            assert (train["label_date"] < fold.test_start).all()
            assert (train["session"] <= fold.test_start - pd.Timedelta(days=31)).all()
            assert (test["session"] >= fold.test_start).all()
        for summary in result.models[name].folds:
            assert summary["last_train_label_date"] < summary["test_start"]
    assert purge_days(HORIZON) == 31


def test_single_class_regime_is_refused_with_counts(rows):
    part = rows[rows["session"] <= rows["session"].unique()[400]].copy()
    bear = part["market_regime"] == "bear"
    part.loc[bear, "up"] = 1
    n = int(bear.sum())
    with pytest.raises(ValueError, match=rf"regime bear: {n} rows \({n} up, 0 down\)"):
        train_ensemble(part)
    forced = train_ensemble(part, force=True)
    assert forced.forced and set(forced.models) == {"bull", "neutral"}
    assert "0 down" in forced.omitted["bear"]
    assert forced.sessions()["bear"] is None
    with pytest.raises(ValueError, match="need at least 100000 rows"):
        train_ensemble(part, min_rows=100_000, force=True)


# ---------------------------------------------------------------------------- decisions
@pytest.fixture(scope="module")
def signals(market):
    return technical_signals(market["bars"], SESSIONS[-1])[0]


def test_decisions_and_json_shapes(result, signals):
    decisions = decide(signals, BULL, result.sessions())
    assert list(decisions.columns) == DECISION_COLUMNS
    assert decisions["symbol"].tolist() == signals["symbol"].tolist()
    p = decisions["p_up"].to_numpy()
    expected = np.where(p >= 0.55, "buy", np.where(p <= 0.45, "sell", "hold"))
    assert decisions["action"].tolist() == expected.tolist()
    np.testing.assert_allclose(decisions["confidence"], np.abs(p - 0.5) * 2)

    out = decisions_json(decisions, BULL)
    assert set(out) == {"decisions", "market_regime", "regime_confidence"}
    assert out["market_regime"] == "bull" and out["regime_confidence"] == 0.73
    assert set(out["decisions"]) == set(signals["symbol"])
    for view in out["decisions"].values():
        assert set(view) == {"action", "confidence", "reasoning"}
        assert view["action"] in {"buy", "sell", "hold"}
        assert isinstance(view["confidence"], float) and 0 <= view["confidence"] <= 1
        assert isinstance(view["reasoning"], str)
        assert view["reasoning"].startswith("bull regime (0.73); model P(up)=")
        assert "trend " in view["reasoning"] and "momentum " in view["reasoning"]

    prices = dict(zip(signals["symbol"], signals["close"], strict=True))
    stamp = dt.datetime(2019, 1, 2, 16, 0)
    export = portfolio_export(decisions, BULL, timestamp=stamp, prices=prices)
    assert set(export) == {"timestamp", "decisions", "market_regime", "risk_level"}
    assert export["timestamp"] == "2019-01-02T16:00:00" and export["risk_level"] == "low"
    for r in decisions.itertuples(index=False):
        view = export["decisions"][r.symbol]
        assert set(view) == {"action", "confidence", "shares"} and isinstance(view["shares"], int)
        budget = 100_000 * 0.05 * r.confidence
        assert view["shares"] == (0 if r.action == "hold" else int(budget // prices[r.symbol]))
    json.dumps(out), json.dumps(export)


def test_reasoning_is_deterministic_and_falls_back_to_the_vote(result, signals):
    first = decide(signals, BULL, result.sessions())
    again = decide(signals.copy(), dict(BULL), result.sessions())
    pd.testing.assert_frame_equal(first, again)
    bear = {**BULL, "market_regime": "bear", "p_bear": 0.73, "p_bull": 0.07}
    no_model = decide(signals, bear, {"bull": None})
    assert no_model["p_up"].isna().all()
    vote = sum(signals[f"{s}_dir"] * signals[f"{s}_conf"] for s in ("trend", "mr", "mom")) / 3
    np.testing.assert_allclose(no_model["confidence"], np.abs(vote))
    assert no_model["reasoning"].str.contains("no bear model, signal vote").all()
    holds = no_model.assign(action="hold")
    for name, level in (("bear", "high"), ("neutral", "medium"), ("bull", "low")):
        export = portfolio_export(holds, {**BULL, "market_regime": name}, timestamp="t", prices={})
        assert export["risk_level"] == level
        assert {v["shares"] for v in export["decisions"].values()} == {0}


def test_non_finite_features_are_refused_naming_ticker_and_column(result, signals):
    broken = signals.copy()
    broken.loc[2, "adx"] = np.nan
    symbol = broken.loc[2, "symbol"]
    with pytest.raises(ValueError, match=rf"non-finite feature for {symbol}: adx=nan"):
        decide(broken, BULL, result.sessions())
    broken = signals.copy()
    broken.loc[0, "mom63"] = np.inf
    with pytest.raises(ValueError, match=rf"{signals.loc[0, 'symbol']}: mom63=inf"):
        decide(broken, BULL, result.sessions())
    trade = decide(signals, BULL, result.sessions()).head(1).assign(action="buy")
    with pytest.raises(ValueError, match="no positive price"):
        portfolio_export(trade, BULL, timestamp="t", prices={})
