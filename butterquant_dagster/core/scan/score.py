"""The rule score: ButterQuant's baseline ranking, reproduced and corrected.

Per candidate, from its ticker's signals (``core.scan.signals``) and its own pricing:

- ``price_match``: how close the forecast price at expiry is to the centre strike, in units
  of the forecast's one-sigma band (a Gaussian kernel, 1 at the centre);
- ``vol_edge``: implied vol at the centre against the forecast realized vol to expiry; a
  butterfly is short vega, so rich implied vol is in its favour (logistic, 0.5 at parity);
- ``stability``: the ticker's calmness (from the signals);
- ``alignment``: whether the trend/cycle forecast moves the price towards the centre;
- ``delta_penalty``: directional exposure over the expected move, relative to the risk.

``score = 100 × (0.35 price_match + 0.25 vol_edge + 0.20 stability + 0.20 alignment)
− 20 × delta_penalty``, clipped to 0..100. The ranking does not rely on the score alone: it
uses the expected value per $1,000 at risk after costs under the forecast distribution (a
lognormal at the forecast price with the forecast volatility), the score breaking ties.
docs/scan.md ("Rule score") documents each factor and threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core import settings
from butterquant_dagster.core.options.butterfly import expected_long_fly_value, prob_between
from butterquant_dagster.core.options.money import CONTRACT_MULTIPLIER
from butterquant_dagster.core.trading.exit_rules import exit_shares

WEIGHTS = {"price_match": 0.35, "vol_edge": 0.25, "stability": 0.20, "alignment": 0.20}
DELTA_PENALTY_POINTS = 20.0
VOL_EDGE_SCALE = 0.10  # a 10 % vol edge moves the factor from 0.5 to 0.73
# The columns that name a ranked butterfly wherever a ranking is shown (CLI, UI, reports);
# each view adds the figures it shows after them.
RANKED_BUTTERFLY = ["rank", "ticker", "strategy", "expiry", "lower", "center", "upper"]
STRATEGY_NAMES = {
    "call_fly": "Long Call Butterfly",
    "put_fly": "Long Put Butterfly",
    "iron_fly": "Iron Butterfly",
}


@dataclass(frozen=True)
class Thresholds:
    strong_buy: float = 75.0
    buy: float = 60.0
    neutral: float = 40.0


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def recommend(score, expected_per_1000, thresholds: Thresholds | None = None) -> np.ndarray:
    """The original scanner's verdict: a buy needs the score *and* an expected gain.

    ``expected_per_1000`` is the best expected value there is: the rule EV as settled
    outcomes priced it once enough have settled (``ev_reliability.EvCurve``), the raw rule
    EV before, so no candidate is called a buy on a promise the record says is a loss.
    """
    thresholds = thresholds or Thresholds()
    score = np.asarray(score, dtype=float)
    gain = np.asarray(expected_per_1000, dtype=float) > 0
    return np.select(
        [
            (score >= thresholds.strong_buy) & gain,
            (score >= thresholds.buy) & gain,
            score >= thresholds.neutral,
        ],
        ["STRONG_BUY", "BUY", "NEUTRAL"],
        default="AVOID",
    )


def score_candidates(
    candidates: pd.DataFrame, forecasts: pd.DataFrame, thresholds: Thresholds | None = None
) -> pd.DataFrame:
    """Add the factors, score, EV, recommendation, confidence, risk and exits.

    ``forecasts`` is aligned row by row with ``candidates`` and carries the ticker's
    signals plus ``forecast_price, forecast_low, forecast_high, vol_forecast``.
    """
    thresholds = thresholds or Thresholds()
    c = candidates
    f = forecasts
    spot, center, width = (c[k].to_numpy(float) for k in ("spot", "center", "width"))
    forecast = f["forecast_price"].to_numpy(float)
    band = np.maximum((f["forecast_high"] - f["forecast_low"]).to_numpy(float) / 2.0, 1e-6 * spot)
    vol_forecast = f["vol_forecast"].to_numpy(float)
    iv = c["iv_center"].to_numpy(float)
    t = np.maximum(c["dte"].to_numpy(float), 0.5) / 365.0

    price_match = np.exp(-0.5 * ((forecast - center) / band) ** 2)
    vol_edge = _sigmoid(((iv - vol_forecast) / np.maximum(iv, 1e-6)) / VOL_EDGE_SCALE)
    stability = np.clip(f["stability"].to_numpy(float), 0.0, 1.0)
    alignment = np.clip(1.0 - np.abs(forecast - center) / (np.abs(spot - center) + band), 0.0, 1.0)
    max_loss = c["max_loss"].to_numpy(float)
    expected_move = c["expected_move"].to_numpy(float)
    delta_penalty = np.clip(
        np.abs(c["net_delta"].to_numpy(float)) * expected_move / np.maximum(max_loss, 1e-9),
        0.0,
        1.0,
    )
    raw = (
        WEIGHTS["price_match"] * price_match
        + WEIGHTS["vol_edge"] * vol_edge
        + WEIGHTS["stability"] * stability
        + WEIGHTS["alignment"] * alignment
    )
    score = np.clip(100.0 * raw - DELTA_PENALTY_POINTS * delta_penalty, 0.0, 100.0)

    # Expected value under the forecast distribution, after the spread paid and the entry
    # fee, which are both in ``cost``: the price the order is expected to fill at
    # (core.options.costs.COST_BASIS), the basis of the outcomes it is checked against.
    expected_fly = expected_long_fly_value(forecast, vol_forecast, t, center, width)
    is_credit = c["is_credit"].to_numpy(bool)
    ev_share = expected_fly - np.where(is_credit, width, 0.0) - c["cost"].to_numpy(float)
    ev_per_1000 = ev_share / np.maximum(max_loss, 1e-9) * 1000.0
    prob_forecast = prob_between(
        c["breakeven_low"].to_numpy(float),
        c["breakeven_high"].to_numpy(float),
        forecast,
        vol_forecast,
        t,
    )

    recommendation = recommend(score, ev_per_1000, thresholds)
    signal_strength = np.clip(
        f["trend_r2"].to_numpy(float) + f["cycle_power_share"].to_numpy(float), 0.0, 1.0
    )
    spread_pct = c["spread_pct"].to_numpy(float)
    liquid = (spread_pct <= 0.15) & (c["min_open_interest"].to_numpy(float) >= 100)
    confidence = np.select(
        [
            (signal_strength >= 0.5) & liquid & (f["n_obs"].to_numpy(float) >= 120),
            (signal_strength >= 0.25) | liquid,
        ],
        ["HIGH", "MEDIUM"],
        default="LOW",
    )
    reward_risk = c["reward_risk"].to_numpy(float)
    dte = c["dte"].to_numpy(float)
    risk_level = np.select(
        [
            (iv > 0.60) | (reward_risk > 5.0) | (dte < 14),
            (iv < 0.30) & (reward_risk <= 3.0) & (dte >= 21),
        ],
        ["HIGH", "LOW"],
        default="MEDIUM",
    )
    stop_share, take_share = exit_shares(risk_level)
    out = c.copy()
    out["forecast_price"] = forecast
    out["forecast_low"] = f["forecast_low"].to_numpy(float)
    out["forecast_high"] = f["forecast_high"].to_numpy(float)
    out["vol_forecast"] = vol_forecast
    out["price_match"] = price_match
    out["vol_edge"] = vol_edge
    out["stability"] = stability
    out["alignment"] = alignment
    out["delta_penalty"] = delta_penalty
    out["score"] = score
    out["ev_per_share"] = ev_share
    out["ev_per_1000"] = ev_per_1000
    out["prob_profit_forecast"] = prob_forecast
    out["recommendation"] = recommendation
    out["confidence"] = confidence
    out["risk_level"] = risk_level
    out["stop_loss_pnl"] = -stop_share * max_loss * CONTRACT_MULTIPLIER
    out["take_profit_pnl"] = take_share * c["max_profit"].to_numpy(float) * CONTRACT_MULTIPLIER
    out["strategy"] = c["structure"].map(STRATEGY_NAMES)
    out["tags"] = _tags(out)
    return out


def _tags(frame: pd.DataFrame) -> pd.Series:
    rules = {
        "credit": frame["is_credit"],
        "iv_rich": frame["vol_edge"] > 0.73,
        "at_the_money": (frame["center"] / frame["spot"] - 1.0).abs() < 0.01,
        # The entry floors a trader has set: a tagged candidate is one they would not enter.
        "wide_spread": frame["spread_pct"] > settings.value("BUTTERQUANT_MAX_SPREAD_PCT"),
        "low_open_interest": frame["min_open_interest"]
        < settings.value("BUTTERQUANT_MIN_OPEN_INTEREST"),
        "short_dated": frame["dte"] < 14,
    }
    # Each row's set of tags as a bit code; the text is built once per distinct code (at
    # most 2**6), not once per candidate.
    code = np.zeros(len(frame), dtype=np.int64)
    for bit, mask in enumerate(rules.values()):
        code |= mask.to_numpy(bool).astype(np.int64) << bit
    codes, rows = np.unique(code, return_inverse=True)
    names = list(rules)
    texts = np.array(
        [",".join(n for bit, n in enumerate(names) if c >> bit & 1) for c in codes], dtype=object
    )
    return pd.Series(texts[rows.reshape(-1)], index=frame.index)


def rank(
    scored: pd.DataFrame, *, per_ticker: int = 3, rule_measure: str = "ev_per_1000"
) -> pd.DataFrame:
    """The best ``per_ticker`` candidates of each ticker, ranked overall, the score breaking
    ties.

    When the champion model's estimates are present (``ml_expected_roi``), they rank (its
    expected yield per $1,000); otherwise ``rule_measure`` does: the rule measure that
    validated on settled outcomes (``ev_reliability.choose_rule_measure``), so the list a
    trader reads is ordered as the baseline track trades, not by a promise that failed.
    """
    model = "ml_expected_roi" in scored and bool(scored["ml_expected_roi"].notna().any())
    value = scored["ml_expected_roi"] * 1000.0 if model else scored[rule_measure].astype(float)
    # Sort only the three columns the order depends on and take the chosen rows: a session
    # has ~250k candidates of ~80 columns, of which ~1,500 are kept.
    keys = scored[["score", "symbol"]].reset_index(drop=True)
    keys["ranking_value"] = value.reset_index(drop=True)
    ordered = keys.sort_values(["ranking_value", "score"], ascending=[False, False], kind="stable")
    chosen = ordered.groupby("symbol", sort=False).head(per_ticker).index.to_numpy()
    best = scored.take(chosen).reset_index(drop=True)
    best["ranked_by"] = "model" if model else f"rule:{rule_measure}"
    best["ranking_value"] = keys["ranking_value"].take(chosen).reset_index(drop=True)
    best["ticker_rank"] = best.groupby("symbol").cumcount() + 1
    best.insert(0, "rank", np.arange(1, len(best) + 1))
    best["ticker"] = best["symbol"]
    best["date"] = best["session"]
    best["is_credit_strategy"] = best["is_credit"]
    for column in ("ml_success_prob", "ml_expected_roi"):
        if column not in best:
            best[column] = np.nan  # no champion model yet
    if "model_version" not in best:
        best["model_version"] = "none"
    return best
