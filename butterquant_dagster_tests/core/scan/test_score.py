"""The rule score, the recommendation, the exits and the ranking on hand-made candidates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from butterquant_dagster.core.scan.score import Thresholds, rank, recommend, score_candidates

SESSION = pd.Timestamp("2024-01-02")
EXPIRY = pd.Timestamp("2024-02-01")


def _candidate(**overrides) -> dict:
    """A 95/100/105 call fly on a 100 stock, 30 days out, bought for 1.00 per share."""
    row = {
        "session": SESSION,
        "symbol": "AAA",
        "expiry": EXPIRY,
        "dte": 30,
        "structure": "call_fly",
        "is_credit": False,
        "lower": 95.0,
        "center": 100.0,
        "upper": 105.0,
        "width": 5.0,
        "width_steps": 1,
        "spot": 100.0,
        "cost": 1.0,
        "max_loss": 1.0,
        "max_profit": 4.0,
        "breakeven_low": 96.0,
        "breakeven_high": 104.0,
        "reward_risk": 4.0,
        "iv_center": 0.25,
        "expected_move": 100.0 * 0.25 * math.sqrt(30 / 365),
        "net_delta": 0.0,
        "spread_pct": 0.10,
        "min_open_interest": 500.0,
    }
    row.update(overrides)
    return row


def _forecast(**overrides) -> dict:
    row = {
        "forecast_price": 100.0,
        "forecast_low": 95.0,
        "forecast_high": 105.0,
        "vol_forecast": 0.25,
        "stability": 1.0,
        "trend_r2": 0.3,
        "cycle_power_share": 0.3,
        "n_obs": 250,
    }
    row.update(overrides)
    return row


def _score(candidates: list[dict], forecasts: list[dict], **kwargs) -> pd.DataFrame:
    return score_candidates(pd.DataFrame(candidates), pd.DataFrame(forecasts), **kwargs)


def _one(candidate: dict | None = None, forecast: dict | None = None) -> pd.Series:
    return _score([candidate or _candidate()], [forecast or _forecast()]).iloc[0]


# ---------------------------------------------------------------------- factors
def test_forecast_at_the_centre_matches_perfectly():
    row = _one()
    assert row["price_match"] == pytest.approx(1.0)
    # Spot and forecast both at the centre: the forecast moves nowhere away from it.
    assert row["alignment"] == pytest.approx(1.0)


def test_price_match_is_a_gaussian_kernel_in_forecast_bands():
    # The band is half of forecast_high - forecast_low = 5: one band away is e^{-1/2}.
    one_band = _one(forecast=_forecast(forecast_price=105.0))
    two_bands = _one(forecast=_forecast(forecast_price=90.0))
    assert one_band["price_match"] == pytest.approx(math.exp(-0.5))
    assert two_bands["price_match"] == pytest.approx(math.exp(-2.0))


def test_vol_edge_is_above_half_when_implied_vol_is_rich():
    rich = _one(_candidate(iv_center=0.35), _forecast(vol_forecast=0.25))
    cheap = _one(_candidate(iv_center=0.20), _forecast(vol_forecast=0.25))
    fair = _one(_candidate(iv_center=0.25), _forecast(vol_forecast=0.25))
    assert rich["vol_edge"] > 0.5
    assert cheap["vol_edge"] < 0.5
    assert fair["vol_edge"] == pytest.approx(0.5)
    # A 10 % relative edge is one logistic unit: 1 / (1 + e^{-1}).
    ten_percent = _one(_candidate(iv_center=0.25), _forecast(vol_forecast=0.225))
    assert ten_percent["vol_edge"] == pytest.approx(1.0 / (1.0 + math.exp(-1.0)))


def test_alignment_falls_as_the_forecast_leaves_the_centre():
    # Spot 100, centre 105, band 5: forecast at the centre 1, at spot 1 - 5/10, beyond 0.
    base = _candidate(lower=100.0, center=105.0, upper=110.0)
    at_centre = _one(base, _forecast(forecast_price=105.0))
    at_spot = _one(base, _forecast(forecast_price=100.0))
    away = _one(base, _forecast(forecast_price=90.0))
    assert at_centre["alignment"] == pytest.approx(1.0)
    assert at_spot["alignment"] == pytest.approx(0.5)
    assert away["alignment"] == 0.0


def test_score_by_hand():
    # price_match 1, vol_edge 0.5, stability 1, alignment 1, no delta:
    # 100 x (0.35 + 0.25 x 0.5 + 0.20 + 0.20) = 87.5.
    assert _one()["score"] == pytest.approx(87.5)
    assert _one()["delta_penalty"] == 0.0
    # A delta of 0.05 over a 7.17 expected move risks 0.36 of the 1.00 max loss: -7.2 points.
    move = 100.0 * 0.25 * math.sqrt(30 / 365)
    tilted = _one(_candidate(net_delta=-0.05))
    assert tilted["delta_penalty"] == pytest.approx(0.05 * move / 1.0)
    assert tilted["score"] == pytest.approx(87.5 - 20.0 * 0.05 * move)
    # Stability 0.3 takes 0.7 x 20 points off.
    assert _one(forecast=_forecast(stability=0.3))["score"] == pytest.approx(73.5)


@settings(max_examples=200, deadline=None)
@given(
    forecast=st.floats(min_value=50.0, max_value=150.0),
    band=st.floats(min_value=0.0, max_value=30.0),
    iv=st.floats(min_value=0.01, max_value=3.0),
    vol=st.floats(min_value=0.01, max_value=3.0),
    stability=st.floats(min_value=-1.0, max_value=2.0),
    delta=st.floats(min_value=-3.0, max_value=3.0),
    max_loss=st.floats(min_value=0.01, max_value=10.0),
    spot=st.floats(min_value=80.0, max_value=120.0),
)
def test_score_stays_within_0_and_100(forecast, band, iv, vol, stability, delta, max_loss, spot):
    row = _one(
        _candidate(iv_center=iv, net_delta=delta, max_loss=max_loss, cost=max_loss, spot=spot),
        _forecast(
            forecast_price=forecast,
            forecast_low=forecast - band,
            forecast_high=forecast + band,
            vol_forecast=vol,
            stability=stability,
        ),
    )
    assert 0.0 <= row["score"] <= 100.0
    for factor in ("price_match", "vol_edge", "stability", "alignment", "delta_penalty"):
        assert 0.0 <= row[factor] <= 1.0
    assert 0.0 <= row["prob_profit_forecast"] <= 1.0


# ---------------------------------------------------------------------- expected value
def _monte_carlo_fly(forward, vol, t, center, width, n=400_000, seed=11):
    rng = np.random.default_rng(seed)
    sd = vol * math.sqrt(t)
    spots = forward * np.exp(-0.5 * sd * sd + sd * rng.standard_normal(n))
    payoff = np.maximum(0.0, width - np.abs(spots - center))
    return float(payoff.mean()), float(payoff.std() / math.sqrt(n))


def test_expected_value_after_costs_matches_monte_carlo():
    debit = _one(_candidate(cost=1.20, max_loss=1.20), _forecast(vol_forecast=0.30))
    fly, se = _monte_carlo_fly(100.0, 0.30, 30 / 365, 100.0, 5.0)
    assert debit["ev_per_share"] == pytest.approx(fly - 1.20, abs=5 * se)
    assert debit["ev_per_1000"] == pytest.approx(debit["ev_per_share"] / 1.20 * 1000.0)

    # An iron fly sold for 3.40 net: worth the fly minus the width at expiry.
    iron = _one(
        _candidate(structure="iron_fly", is_credit=True, cost=-3.40, max_loss=1.60),
        _forecast(vol_forecast=0.30),
    )
    assert iron["ev_per_share"] == pytest.approx(fly - 5.0 + 3.40, abs=5 * se)
    assert iron["ev_per_1000"] == pytest.approx(iron["ev_per_share"] / 1.60 * 1000.0)


# ---------------------------------------------------------------------- recommendation
def test_strong_buy_needs_a_high_score_and_a_positive_expected_value():
    cheap = _one(_candidate(cost=0.50, max_loss=0.50))  # score 87.5, E[fly] ~ 1.7
    dear = _one(_candidate(cost=4.50, max_loss=4.50, max_profit=0.5))  # same score
    assert cheap["score"] >= 75 and cheap["ev_per_share"] > 0
    assert cheap["recommendation"] == "STRONG_BUY"
    assert dear["score"] >= 75 and dear["ev_per_share"] < 0
    assert dear["recommendation"] == "NEUTRAL"


def test_buy_neutral_and_avoid():
    buy = _one(_candidate(cost=0.50, max_loss=0.50), _forecast(stability=0.3))  # 73.5
    assert buy["recommendation"] == "BUY"
    avoid = _one(
        _candidate(cost=0.50, max_loss=0.50, iv_center=0.10),
        _forecast(forecast_price=120.0, stability=0.0),
    )
    assert avoid["score"] < 40
    assert avoid["recommendation"] == "AVOID"
    # Moving the thresholds moves the labels.
    strict = _score(
        [_candidate(cost=0.50, max_loss=0.50)], [_forecast()], thresholds=Thresholds(90, 80, 70)
    ).iloc[0]
    assert strict["recommendation"] == "BUY"


def test_recommendations_follow_the_thresholds_on_a_grid():
    rng = np.random.default_rng(3)
    n = 400
    cost = rng.uniform(0.05, 4.9, n)
    candidates = [
        _candidate(
            cost=c,
            max_loss=c,
            max_profit=5.0 - c,
            iv_center=rng.uniform(0.1, 0.6),
            net_delta=rng.uniform(-0.1, 0.1),
        )
        for c in cost
    ]
    forecasts = [
        _forecast(
            forecast_price=rng.uniform(90.0, 110.0),
            vol_forecast=rng.uniform(0.1, 0.6),
            stability=rng.uniform(0.0, 1.0),
        )
        for _ in range(n)
    ]
    out = _score(candidates, forecasts)
    score, ev, rec = out["score"], out["ev_per_share"], out["recommendation"]
    strong = (score >= 75) & (ev > 0)
    buy = (score >= 60) & (score < 75) & (ev > 0)
    assert ((rec == "STRONG_BUY") == strong).all()
    assert ((rec == "BUY") == buy).all()
    assert ((rec == "NEUTRAL") == ((score >= 40) & ~strong & ~buy)).all()
    assert ((rec == "AVOID") == (score < 40)).all()
    assert set(rec) >= {"STRONG_BUY", "BUY", "NEUTRAL", "AVOID"}


# ---------------------------------------------------------------------- risk and exits
@pytest.mark.parametrize(
    ("overrides", "level", "stop", "take"),
    [
        # max loss 1.20, max profit 3.80 per share: exits in dollars per contract.
        ({"iv_center": 0.20, "reward_risk": 2.0, "dte": 30}, "LOW", -0.50 * 120, 0.70 * 380),
        ({"iv_center": 0.40, "reward_risk": 2.0, "dte": 30}, "MEDIUM", -0.40 * 120, 0.60 * 380),
        ({"iv_center": 0.20, "reward_risk": 2.0, "dte": 15}, "MEDIUM", -0.40 * 120, 0.60 * 380),
        ({"iv_center": 0.70, "reward_risk": 2.0, "dte": 30}, "HIGH", -0.30 * 120, 0.50 * 380),
        ({"iv_center": 0.20, "reward_risk": 6.0, "dte": 30}, "HIGH", -0.30 * 120, 0.50 * 380),
        ({"iv_center": 0.20, "reward_risk": 2.0, "dte": 10}, "HIGH", -0.30 * 120, 0.50 * 380),
    ],
)
def test_exit_rules_by_risk_level(overrides, level, stop, take):
    row = _one(_candidate(max_loss=1.20, cost=1.20, max_profit=3.80, **overrides))
    assert row["risk_level"] == level
    assert row["stop_loss_pnl"] == pytest.approx(stop)
    assert row["take_profit_pnl"] == pytest.approx(take)


def test_confidence_levels():
    high = _one(forecast=_forecast(trend_r2=0.4, cycle_power_share=0.2, n_obs=250))
    assert high["confidence"] == "HIGH"
    young = _one(forecast=_forecast(trend_r2=0.4, cycle_power_share=0.2, n_obs=60))
    assert young["confidence"] == "MEDIUM"
    illiquid_weak = _one(
        _candidate(spread_pct=0.5, min_open_interest=10.0),
        _forecast(trend_r2=0.05, cycle_power_share=0.05),
    )
    assert illiquid_weak["confidence"] == "LOW"


def test_strategy_names_and_tags():
    out = _score(
        [
            _candidate(),
            _candidate(structure="put_fly"),
            _candidate(structure="iron_fly", is_credit=True, cost=-3.0, max_loss=2.0, dte=10),
        ],
        [_forecast()] * 3,
    )
    assert list(out["strategy"]) == ["Long Call Butterfly", "Long Put Butterfly", "Iron Butterfly"]
    assert out["tags"].iloc[0] == "at_the_money"
    assert out["tags"].iloc[2] == "credit,at_the_money,short_dated"


# ---------------------------------------------------------------------- ranking
def _scored(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "session": SESSION,
                "symbol": symbol,
                "ev_per_1000": ev,
                "score": score,
                "is_credit": False,
                "id": i,
            }
            for i, (symbol, ev, score) in enumerate(rows)
        ]
    )


def test_rank_orders_by_expected_value_then_score_and_caps_each_ticker():
    scored = _scored(
        [
            ("AAA", 50.0, 60.0),  # 0
            ("AAA", 120.0, 70.0),  # 1
            ("AAA", 80.0, 90.0),  # 2
            ("AAA", 80.0, 95.0),  # 3: ties with 2 on EV, wins on score
            ("BBB", 100.0, 10.0),  # 4
            ("BBB", -20.0, 99.0),  # 5
            ("CCC", 80.0, 92.0),  # 6
        ]
    )
    ranked = rank(scored, per_ticker=2)
    # AAA keeps 1 and 3 (best two); BBB 4 and 5; CCC 6; overall by EV then score.
    assert list(ranked["id"]) == [1, 4, 3, 6, 5]
    assert list(ranked["rank"]) == [1, 2, 3, 4, 5]
    assert list(ranked["ticker_rank"]) == [1, 1, 2, 1, 2]
    assert ranked.groupby("symbol").size().max() <= 2
    assert list(ranked["ticker"]) == list(ranked["symbol"])
    assert (ranked["date"] == SESSION).all()
    assert list(ranked["is_credit_strategy"]) == list(ranked["is_credit"])
    assert ranked["ml_success_prob"].isna().all()
    assert ranked["ml_expected_roi"].isna().all()


def test_rank_default_keeps_three_per_ticker():
    scored = _scored([("AAA", float(ev), 50.0) for ev in range(10)] + [("BBB", 3.5, 50.0)])
    ranked = rank(scored)
    assert list(ranked["ev_per_1000"]) == [9.0, 8.0, 7.0, 3.5]
    assert list(ranked["rank"]) == [1, 2, 3, 4]


def test_rank_after_scoring():
    candidates = [
        _candidate(symbol="AAA", cost=0.5, max_loss=0.5),
        _candidate(symbol="AAA", cost=1.5, max_loss=1.5),
        _candidate(symbol="BBB", cost=1.0, max_loss=1.0),
    ]
    ranked = rank(_score(candidates, [_forecast()] * 3), per_ticker=1)
    assert list(ranked["symbol"]) == ["AAA", "BBB"]
    assert list(ranked["cost"]) == [0.5, 1.0]
    assert ranked["ev_per_1000"].is_monotonic_decreasing


def test_rank_by_a_rule_measure_that_validated_orders_by_it():
    scored = _scored([("AAA", 300.0, 40.0), ("BBB", 10.0, 90.0), ("CCC", 150.0, 70.0)])
    ranked = rank(scored, per_ticker=1, rule_measure="score")
    assert list(ranked["symbol"]) == ["BBB", "CCC", "AAA"]
    assert set(ranked["ranked_by"]) == {"rule:score"}
    assert list(ranked["ranking_value"]) == [90.0, 70.0, 40.0]


def test_a_buy_needs_the_score_and_an_expected_gain():
    verdicts = recommend([80.0, 80.0, 65.0, 65.0, 45.0, 10.0], [5.0, -5.0, 1.0, 0.0, 9.0, 9.0])
    assert list(verdicts) == ["STRONG_BUY", "NEUTRAL", "BUY", "NEUTRAL", "NEUTRAL", "AVOID"]
