"""Small, exact option chains and rankings for the trading tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from butterquant_dagster.core.options.black_scholes import price
from butterquant_dagster.core.trading.combos import legs_of

SESSION = dt.date(2026, 3, 2)  # a Monday session
NEXT = dt.date(2026, 3, 3)
EXPIRY = dt.date(2026, 4, 17)
STRIKES = np.arange(80.0, 121.0, 5.0)


def make_chain(
    session: dt.date,
    spots: dict[str, float],
    *,
    expiry: dt.date = EXPIRY,
    vol: float = 0.30,
    half_spread: float = 0.05,
    strikes=STRIKES,
) -> pd.DataFrame:
    """A Black-Scholes chain with a fixed half-spread on every quote."""
    rows = []
    t = max((expiry - session).days, 0) / 365.0
    for symbol, spot in spots.items():
        for strike in strikes:
            for right in ("C", "P"):
                theo = float(price(spot, strike, max(t, 1e-6), vol, 0.04, 0.0, right == "C"))
                bid = max(theo - half_spread, 0.01)
                ask = bid + 2 * half_spread
                rows.append(
                    {
                        "session": pd.Timestamp(session),
                        "symbol": symbol,
                        "expiry": pd.Timestamp(expiry),
                        "expiry_type": "monthly",
                        "dte": (expiry - session).days,
                        "strike": float(strike),
                        "right": right,
                        "bid": bid,
                        "ask": ask,
                        "mid": (bid + ask) / 2,
                        "theo": theo,
                        "volume": 500,
                        "open_interest": 1000,
                        "implied_vol": vol,
                        "delta": 0.5,
                        "gamma": 0.01,
                        "vega": 0.1,
                        "theta": -0.01,
                        "underlying_price": spot,
                        "rate": 0.04,
                        "dividend_yield": 0.0,
                        "modelled": True,
                        "source": "test",
                    }
                )
    return pd.DataFrame(rows)


def make_rankings(
    session: dt.date, chain: pd.DataFrame, picks: list[dict], *, model: bool = True
) -> pd.DataFrame:
    """Ranking rows for ``picks`` (ticker, structure, lower, center, upper, and optionally
    score / ml_success_prob / ml_expected_roi), priced from ``chain`` like the scan does."""
    from butterquant_dagster.core.options.butterfly import CONTRACTS_PER_COMBO
    from butterquant_dagster.core.options.money import order_fee
    from butterquant_dagster.core.trading.combos import combo_quote

    rows = []
    for i, pick in enumerate(picks):
        structure = pick.get("structure", "call_fly")
        legs = legs_of(
            pick["ticker"], structure, pick.get("expiry", EXPIRY), pick["lower"], pick["center"],
            pick["upper"],
        )  # fmt: skip
        quote = combo_quote(chain, legs)
        width = pick["center"] - pick["lower"]
        fee = float(order_fee(CONTRACTS_PER_COMBO[structure])) / 100
        cost = quote["high"] + fee
        credit = structure == "iron_fly"
        max_loss = width + cost if credit else cost
        max_profit = -cost if credit else width - cost
        rows.append(
            {
                "session": pd.Timestamp(session),
                "rank": i + 1,
                "ticker": pick["ticker"],
                "symbol": pick["ticker"],
                "structure": structure,
                "expiry": pd.Timestamp(pick.get("expiry", EXPIRY)),
                "lower": pick["lower"],
                "center": pick["center"],
                "upper": pick["upper"],
                "width": width,
                "debit_mid": quote["mid"],
                "debit_natural": quote["high"],
                "cost": cost,
                "max_profit": max_profit,
                "max_loss": max_loss,
                "capital_at_risk": max_loss * 100,
                "spread_pct": pick.get("spread_pct", 0.05),
                "min_open_interest": pick.get("min_open_interest", 1000),
                "risk_level": pick.get("risk_level", "MEDIUM"),
                "score": pick.get("score", 70.0 - i),
                "ev_per_1000": pick.get("ev_per_1000", 50.0),
                "ml_success_prob": pick.get("ml_success_prob", 0.6) if model else np.nan,
                "ml_expected_roi": pick.get("ml_expected_roi", 0.1 - 0.01 * i) if model else np.nan,
                "model_version": "v-test" if model else "none",
                "ranked_by": "model" if model else "rule",
                "iv_center": 0.3,
            }
        )
    return pd.DataFrame(rows)
