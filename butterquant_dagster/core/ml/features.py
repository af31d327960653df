"""The one feature pipeline of the butterfly probability model.

Training and inference both call :func:`build_features` on a session's scored candidates
and that session's ticker context, so a feature can never mean one thing in training and
another in production (the failure that made ButterQuant's simulator-trained model predict
a certain loss for every live trade). The model's metadata stores ``FEATURE_COLUMNS`` in
order; inference refuses a model whose list differs.

Every feature is known at the close of the candidate's session: the candidate's own
pricing, the ticker's signals and surface history up to that day, the filtered (never
smoothed) regime probabilities and the ensemble's view of the ticker that day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KEY_COLUMNS = ["session", "symbol", "expiry", "structure", "lower", "center", "upper"]
CONTEXT_COLUMNS = [
    "symbol",
    "iv_rank",
    "iv_percentile",
    "term_slope",
    "skew_25d",
    "p_bear",
    "p_neutral",
    "p_bull",
    "p_up",
    "action_sign",
]
FEATURE_COLUMNS = [
    "is_call_fly",
    "is_put_fly",
    "is_iron_fly",
    "dte",
    "moneyness",
    "center_in_moves",
    "width_in_moves",
    "cost_to_width",
    "reward_risk",
    "prob_profit_rn",
    "prob_profit_forecast",
    "iv_center",
    "iv_vs_forecast",
    "iv_rank",
    "iv_percentile",
    "term_slope",
    "skew_25d",
    "spread_pct",
    "log_min_open_interest",
    "log_min_volume",
    "return_20d",
    "vol_ewma",
    "vol_long",
    "trend_r2",
    "cycle_power_share",
    "price_match",
    "alignment",
    "stability",
    "vol_edge",
    "rule_score",
    "p_bear",
    "p_neutral",
    "p_bull",
    "p_up",
    "view_alignment",
]
# Without a regime model or an ensemble view yet, the context is the uninformed prior.
NEUTRAL_CONTEXT = {
    "p_bear": 1 / 3,
    "p_neutral": 1 / 3,
    "p_bull": 1 / 3,
    "p_up": 0.5,
    "action_sign": 0.0,
}


class FeatureError(ValueError):
    """Features that cannot be given to a model (NaN, infinite, missing columns)."""


def ticker_context(
    surface_today: pd.DataFrame,
    iv_rank: np.ndarray,
    iv_percentile: np.ndarray,
    regime: dict | None = None,
    decisions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per-ticker context of a session: surface, IV rank, regime probabilities, the view."""
    context = pd.DataFrame(
        {
            "symbol": surface_today["symbol"].astype(str).to_numpy(),
            "iv_rank": iv_rank,
            "iv_percentile": iv_percentile,
            "term_slope": surface_today["term_slope"].to_numpy(float),
            "skew_25d": surface_today["skew_25d"].to_numpy(float),
        }
    )
    for name in ("p_bear", "p_neutral", "p_bull"):
        context[name] = float(regime[name]) if regime else NEUTRAL_CONTEXT[name]
    if decisions is not None and len(decisions):
        views = decisions.set_index("symbol")
        context["p_up"] = context["symbol"].map(views["p_up"]).fillna(0.5).to_numpy(float)
        sign = views["action"].map({"buy": 1.0, "sell": -1.0, "hold": 0.0})
        context["action_sign"] = context["symbol"].map(sign).fillna(0.0).to_numpy(float)
    else:
        context["p_up"] = NEUTRAL_CONTEXT["p_up"]
        context["action_sign"] = NEUTRAL_CONTEXT["action_sign"]
    return context[CONTEXT_COLUMNS]


def build_features(candidates: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """Key columns plus FEATURE_COLUMNS for every scored candidate of one session."""
    c = candidates.reset_index(drop=True)
    ctx = c[["symbol"]].merge(context, on="symbol", how="left")
    missing_context = ctx["iv_rank"].isna()
    if missing_context.any():
        tickers = sorted(c.loc[missing_context, "symbol"].unique())[:10]
        raise FeatureError(f"no ticker context (surface, IV history) for {tickers}")
    structure = c["structure"].to_numpy()
    spot, center = c["spot"].to_numpy(float), c["center"].to_numpy(float)
    move = np.maximum(c["expected_move"].to_numpy(float), 1e-9)
    width = c["width"].to_numpy(float)
    direction = np.sign(center - spot)
    out = pd.DataFrame({k: c[k] for k in KEY_COLUMNS})
    features = {
        "is_call_fly": (structure == "call_fly").astype(float),
        "is_put_fly": (structure == "put_fly").astype(float),
        "is_iron_fly": (structure == "iron_fly").astype(float),
        "dte": c["dte"].to_numpy(float),
        "moneyness": center / spot - 1.0,
        "center_in_moves": (center - spot) / move,
        "width_in_moves": width / move,
        "cost_to_width": c["cost"].to_numpy(float) / width,
        "reward_risk": np.clip(c["reward_risk"].to_numpy(float), 0.0, 50.0),
        "prob_profit_rn": c["prob_profit_rn"].to_numpy(float),
        "prob_profit_forecast": c["prob_profit_forecast"].to_numpy(float),
        "iv_center": c["iv_center"].to_numpy(float),
        "iv_vs_forecast": c["iv_center"].to_numpy(float)
        / np.maximum(c["vol_forecast"].to_numpy(float), 1e-6)
        - 1.0,
        "iv_rank": ctx["iv_rank"].to_numpy(float),
        "iv_percentile": ctx["iv_percentile"].to_numpy(float),
        "term_slope": ctx["term_slope"].to_numpy(float),
        "skew_25d": ctx["skew_25d"].to_numpy(float),
        "spread_pct": np.clip(c["spread_pct"].to_numpy(float), 0.0, 5.0),
        "log_min_open_interest": np.log1p(c["min_open_interest"].to_numpy(float)),
        "log_min_volume": np.log1p(c["min_volume"].to_numpy(float)),
        "return_20d": c["return_20d"].to_numpy(float),
        "vol_ewma": c["vol_ewma"].to_numpy(float),
        "vol_long": c["vol_long"].to_numpy(float),
        "trend_r2": c["trend_r2"].to_numpy(float),
        "cycle_power_share": c["cycle_power_share"].to_numpy(float),
        "price_match": c["price_match"].to_numpy(float),
        "alignment": c["alignment"].to_numpy(float),
        "stability": c["stability"].to_numpy(float),
        "vol_edge": c["vol_edge"].to_numpy(float),
        "rule_score": c["score"].to_numpy(float) / 100.0,
        "p_bear": ctx["p_bear"].to_numpy(float),
        "p_neutral": ctx["p_neutral"].to_numpy(float),
        "p_bull": ctx["p_bull"].to_numpy(float),
        "p_up": ctx["p_up"].to_numpy(float),
        # A bullish view favours flies centred above spot, a bearish one below.
        "view_alignment": direction * ctx["action_sign"].to_numpy(float),
    }
    for name in FEATURE_COLUMNS:
        out[name] = features[name]
    return out


def feature_matrix(frame: pd.DataFrame, columns: list[str] | None = None) -> np.ndarray:
    """The float32 matrix a model consumes; NaN or infinite values are refused naming the
    ticker and the column, before any inference."""
    columns = list(columns or FEATURE_COLUMNS)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureError(f"feature column(s) missing: {missing}")
    values = frame[columns].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        count = int(bad.any(axis=1).sum())
        raise FeatureError(
            f"{count} row(s) have NaN or infinite features; first: ticker "
            f"{frame['symbol'].iloc[row]} column {columns[col]!r} = {values[row, col]}"
        )
    return values.astype(np.float32)
