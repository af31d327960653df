"""The one feature pipeline: values by hand, column order, refusals, and sameness on reuse."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.ml.features import (
    CONTEXT_COLUMNS,
    FEATURE_COLUMNS,
    KEY_COLUMNS,
    NEUTRAL_CONTEXT,
    FeatureError,
    build_features,
    feature_matrix,
    ticker_context,
)
from butterquant_dagster.core.scan.pipeline import scan_session
from butterquant_dagster.core.scan.signals import ticker_signals
from butterquant_dagster.core.scan.surface import iv_rank, surface_summary

SESSION = pd.Timestamp("2024-01-02")
EXPIRY = pd.Timestamp("2024-02-01")


# ---------------------------------------------------------------------- hand-made rows
def _candidate(**overrides) -> dict:
    """A 100/105/110 call fly on a 100 stock whose expected move is 10."""
    row = {
        "session": SESSION,
        "symbol": "AAA",
        "expiry": EXPIRY,
        "dte": 30,
        "structure": "call_fly",
        "lower": 100.0,
        "center": 105.0,
        "upper": 110.0,
        "width": 5.0,
        "spot": 100.0,
        "cost": 1.25,
        "reward_risk": 3.0,
        "iv_center": 0.30,
        "expected_move": 10.0,
        "prob_profit_rn": 0.21,
        "prob_profit_forecast": 0.24,
        "vol_forecast": 0.25,
        "spread_pct": 0.12,
        "min_open_interest": 500.0,
        "min_volume": 40.0,
        "return_20d": 0.03,
        "vol_ewma": 0.22,
        "vol_long": 0.26,
        "trend_r2": 0.4,
        "cycle_power_share": 0.2,
        "price_match": 0.7,
        "alignment": 0.8,
        "stability": 0.9,
        "vol_edge": 0.1,
        "score": 64.0,
    }
    row.update(overrides)
    return row


def _surface(symbols=("AAA", "BBB")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": SESSION,
            "symbol": list(symbols),
            "term_slope": [0.02, -0.01, 0.0][: len(symbols)],
            "skew_25d": [0.05, 0.08, 0.07][: len(symbols)],
        }
    )


def _context(decisions=None, regime=None, symbols=("AAA", "BBB")) -> pd.DataFrame:
    n = len(symbols)
    return ticker_context(
        _surface(symbols),
        np.array([0.8, 0.2, 0.5][:n]),
        np.array([0.75, 0.1, 0.4][:n]),
        regime=regime,
        decisions=decisions,
    )


BULLISH = pd.DataFrame({"symbol": ["AAA", "BBB"], "p_up": [0.7, 0.35], "action": ["buy", "sell"]})


def test_hand_computed_features_of_one_candidate():
    features = build_features(pd.DataFrame([_candidate()]), _context(BULLISH))
    row = features.iloc[0]
    assert row["moneyness"] == pytest.approx(0.05)  # 105 / 100 - 1
    assert row["center_in_moves"] == pytest.approx(0.5)  # (105 - 100) / 10
    assert row["width_in_moves"] == pytest.approx(0.5)  # 5 / 10
    assert row["cost_to_width"] == pytest.approx(0.25)  # 1.25 / 5
    assert row["iv_vs_forecast"] == pytest.approx(0.2)  # 0.30 / 0.25 - 1
    assert row["log_min_open_interest"] == pytest.approx(math.log(501.0))
    assert row["log_min_volume"] == pytest.approx(math.log(41.0))
    assert row["rule_score"] == pytest.approx(0.64)
    assert (row["is_call_fly"], row["is_put_fly"], row["is_iron_fly"]) == (1.0, 0.0, 0.0)
    assert row["dte"] == 30.0
    # Context of AAA: IV rank/percentile, surface, the bullish view.
    assert row["iv_rank"] == pytest.approx(0.8)
    assert row["iv_percentile"] == pytest.approx(0.75)
    assert row["term_slope"] == pytest.approx(0.02)
    assert row["skew_25d"] == pytest.approx(0.05)
    assert row["p_up"] == pytest.approx(0.7)
    # A bullish view on a fly centred above spot is aligned.
    assert row["view_alignment"] == 1.0
    # Signals carried from the scan pass through unchanged.
    for name in ("return_20d", "vol_ewma", "vol_long", "trend_r2", "cycle_power_share"):
        assert row[name] == pytest.approx(_candidate()[name])
    for name in ("price_match", "alignment", "stability", "vol_edge", "prob_profit_rn"):
        assert row[name] == pytest.approx(_candidate()[name])


def test_view_alignment_sign_follows_the_view_and_the_centre():
    candidates = pd.DataFrame(
        [
            _candidate(),  # AAA buy, centre above spot: +1
            _candidate(structure="put_fly", lower=90.0, center=95.0, upper=100.0),  # below: -1
            _candidate(structure="iron_fly", lower=95.0, center=100.0, upper=105.0),  # at: 0
            _candidate(symbol="BBB"),  # BBB sell, centre above spot: -1
            _candidate(symbol="BBB", center=95.0, lower=90.0, upper=100.0),  # sell, below: +1
        ]
    )
    features = build_features(candidates, _context(BULLISH))
    assert features["view_alignment"].tolist() == [1.0, -1.0, 0.0, -1.0, 1.0]
    assert features["is_put_fly"].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert features["is_iron_fly"].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert features["moneyness"].tolist() == pytest.approx([0.05, -0.05, 0.0, 0.05, -0.05])
    # Rows keep their ticker's context, in the candidates' order.
    assert features["iv_rank"].tolist() == pytest.approx([0.8, 0.8, 0.8, 0.2, 0.2])
    assert features["p_up"].tolist() == pytest.approx([0.7, 0.7, 0.7, 0.35, 0.35])
    # Without a view nothing is aligned.
    neutral = build_features(candidates, _context())
    assert (neutral["view_alignment"] == 0.0).all()


def test_extreme_inputs_are_clipped_and_a_zero_move_does_not_divide_by_zero():
    candidates = pd.DataFrame(
        [_candidate(reward_risk=400.0, spread_pct=12.0, expected_move=0.0, vol_forecast=0.0)]
    )
    row = build_features(candidates, _context()).iloc[0]
    assert row["reward_risk"] == 50.0
    assert row["spread_pct"] == 5.0
    assert np.isfinite(row["center_in_moves"]) and row["center_in_moves"] > 1e9
    assert np.isfinite(row["iv_vs_forecast"])


def test_output_is_the_key_columns_then_feature_columns_in_order():
    candidates = pd.DataFrame([_candidate(), _candidate(symbol="BBB")])
    # Extra columns and a shuffled column order in the input change nothing.
    candidates["recommendation"] = "NEUTRAL"
    candidates = candidates[list(reversed(candidates.columns))]
    candidates.index = [17, 3]
    features = build_features(candidates, _context(BULLISH))
    assert list(features.columns) == [*KEY_COLUMNS, *FEATURE_COLUMNS]
    assert list(features.index) == [0, 1]
    assert features["symbol"].tolist() == ["AAA", "BBB"]
    assert len(FEATURE_COLUMNS) == len(set(FEATURE_COLUMNS))


def test_a_ticker_without_context_is_refused_by_name():
    candidates = pd.DataFrame([_candidate(), _candidate(symbol="ZZZ"), _candidate(symbol="QQQ")])
    with pytest.raises(FeatureError, match=r"no ticker context.*\['QQQ', 'ZZZ'\]"):
        build_features(candidates, _context())


# ---------------------------------------------------------------------- ticker_context
def test_context_without_regime_or_view_is_the_neutral_prior():
    context = _context()
    assert list(context.columns) == CONTEXT_COLUMNS
    assert context["symbol"].tolist() == ["AAA", "BBB"]
    for name in ("p_bear", "p_neutral", "p_bull"):
        assert context[name].tolist() == pytest.approx([1 / 3, 1 / 3])
    assert context["p_up"].tolist() == [0.5, 0.5]
    assert context["action_sign"].tolist() == [0.0, 0.0]
    assert NEUTRAL_CONTEXT == {
        "p_bear": 1 / 3,
        "p_neutral": 1 / 3,
        "p_bull": 1 / 3,
        "p_up": 0.5,
        "action_sign": 0.0,
    }
    # An empty decisions frame is no view either.
    empty = _context(decisions=BULLISH.iloc[:0])
    assert empty["p_up"].tolist() == [0.5, 0.5]
    assert empty["action_sign"].tolist() == [0.0, 0.0]


def test_context_maps_the_regime_and_each_tickers_view():
    regime = {"p_bear": 0.1, "p_neutral": 0.3, "p_bull": 0.6, "extra": 1.0}
    decisions = pd.DataFrame(
        {"symbol": ["CCC", "AAA"], "p_up": [0.2, 0.66], "action": ["sell", "buy"]}
    )
    context = _context(decisions=decisions, regime=regime, symbols=("AAA", "BBB", "CCC"))
    assert context["p_bear"].tolist() == [0.1] * 3
    assert context["p_neutral"].tolist() == [0.3] * 3
    assert context["p_bull"].tolist() == [0.6] * 3
    # BBB has no view: it keeps the prior; the others map by symbol, not by position.
    assert context["p_up"].tolist() == pytest.approx([0.66, 0.5, 0.2])
    assert context["action_sign"].tolist() == [1.0, 0.0, -1.0]
    assert context["iv_rank"].tolist() == pytest.approx([0.8, 0.2, 0.5])
    assert context["skew_25d"].tolist() == pytest.approx([0.05, 0.08, 0.07])
    hold = pd.DataFrame({"symbol": ["AAA"], "p_up": [0.52], "action": ["hold"]})
    assert _context(decisions=hold)["action_sign"].tolist() == [0.0, 0.0]


# ---------------------------------------------------------------------- feature_matrix
def test_feature_matrix_is_float32_in_feature_order():
    features = build_features(pd.DataFrame([_candidate(), _candidate(symbol="BBB")]), _context())
    matrix = feature_matrix(features)
    assert matrix.dtype == np.float32
    assert matrix.shape == (2, len(FEATURE_COLUMNS))
    np.testing.assert_allclose(
        matrix[:, FEATURE_COLUMNS.index("moneyness")], [0.05, 0.05], rtol=1e-6
    )
    np.testing.assert_allclose(matrix[:, FEATURE_COLUMNS.index("iv_rank")], [0.8, 0.2], rtol=1e-6)
    subset = feature_matrix(features, ["iv_rank", "dte"])
    np.testing.assert_allclose(subset, [[0.8, 30.0], [0.2, 30.0]], rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_feature_matrix_refuses_non_finite_values_naming_ticker_and_column(bad):
    features = build_features(
        pd.DataFrame([_candidate(), _candidate(symbol="BBB"), _candidate(symbol="BBB")]),
        _context(),
    )
    features.loc[1, "vol_edge"] = bad
    features.loc[2, "iv_rank"] = bad
    with pytest.raises(FeatureError, match=r"2 row\(s\).*ticker BBB column 'vol_edge'"):
        feature_matrix(features)


def test_feature_matrix_names_missing_columns():
    features = build_features(pd.DataFrame([_candidate()]), _context())
    with pytest.raises(FeatureError, match=r"missing: \['p_up'\]"):
        feature_matrix(features.drop(columns="p_up"))


# ---------------------------------------------------------------------- the real scan
@pytest.fixture(scope="module")
def scan():
    """Scored candidates and ticker context of one session from the synthetic market."""
    market = SyntheticMarket(select_universe(read_universe_file(), size=3))
    sessions = calendar.sessions(dt.date(2015, 1, 2), dt.date(2015, 7, 31))
    session = sessions[-1]
    bars = market.bars(sessions[-120:])
    signals, skips = ticker_signals(bars, session)
    chain = market.chains(session)
    scored, _ = scan_session(chain, signals, skips, session)
    history = pd.concat([surface_summary(market.chains(s), s) for s in sessions[-6:-1]])
    today = surface_summary(chain, session)
    rank, percentile, _ = iv_rank(history, today)
    decisions = pd.DataFrame(
        {"symbol": today["symbol"], "p_up": [0.6, 0.4, 0.5], "action": ["buy", "sell", "hold"]}
    )
    context = ticker_context(
        today,
        rank,
        percentile,
        regime={"p_bear": 0.2, "p_neutral": 0.5, "p_bull": 0.3},
        decisions=decisions,
    )
    return scored, context


def test_scanned_candidates_give_finite_features(scan):
    scored, context = scan
    assert len(scored) > 100 and scored["symbol"].nunique() == 3
    features = build_features(scored, context)
    assert len(features) == len(scored)
    assert list(features.columns) == [*KEY_COLUMNS, *FEATURE_COLUMNS]
    matrix = feature_matrix(features)
    assert matrix.dtype == np.float32 and np.isfinite(matrix).all()
    expected = scored["center"] / scored["spot"] - 1.0
    np.testing.assert_allclose(features["moneyness"], expected)
    aligned = np.sign(scored["center"] - scored["spot"]) * scored["symbol"].map(
        context.set_index("symbol")["action_sign"]
    )
    np.testing.assert_array_equal(features["view_alignment"], aligned)
    # Each structure flag is one-hot.
    flags = features[["is_call_fly", "is_put_fly", "is_iron_fly"]].sum(axis=1)
    assert (flags == 1.0).all()


def test_one_pipeline_same_inputs_same_features(scan):
    scored, context = scan
    first = build_features(scored, context)
    second = build_features(scored.copy(), context.copy())
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    np.testing.assert_array_equal(feature_matrix(first), feature_matrix(second))
    # A row's features do not depend on the other rows: scoring a subset (inference on a
    # few candidates) gives the same values as that subset of the full (training) build.
    pick = np.random.default_rng(0).choice(len(scored), size=40, replace=False)
    subset = build_features(scored.iloc[pick], context)
    pd.testing.assert_frame_equal(subset, first.iloc[pick].reset_index(drop=True), check_exact=True)
    # The context rows' order does not matter either.
    reordered = build_features(scored, context.iloc[::-1])
    pd.testing.assert_frame_equal(reordered, first, check_exact=True)
