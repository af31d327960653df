"""Option chains modelled from bars, for sources that have price history but no chains.

The chain model needs a volatility state; from bars alone the best point-in-time estimates
are realised: an EWMA volatility for today's level and a one-year volatility for the level
it reverts to, both from returns up to the session only, so nothing looks ahead. The
premium, skew and liquidity cannot be estimated from bars and are fixed assumptions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core.market.chain_model import UNDERLYING_COLUMNS, model_chains
from butterquant_dagster.core.market.files.bars import History
from butterquant_dagster.core.market.files.parsing import _as_ns
from butterquant_dagster.core.market.schemas import OPTION_CHAINS, conform, empty
from butterquant_dagster.core.market.seeding import keyed_rng

TRADING_DAYS = 252.0
EWMA_LAMBDA = 0.94
EWMA_WINDOW = 750  # 0.94**750 < 1e-20: older returns carry no weight
LONG_WINDOW = 252
MIN_RETURNS = 20
MODEL_VRP = 0.10
MODEL_SKEW = 0.10
MODEL_LIQUIDITY = 0.6


def session_rng(seed: int, session: dt.date) -> np.random.Generator:
    """The random stream of a modelled chain: a pure function of (seed, session)."""
    return keyed_rng(seed, "files-chain", session)


def _volatility_state(
    history: dict[str, History], symbols: list[str], day: dt.date
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per ticker with enough history, the chain model's inputs at the close of ``day``
    (UNDERLYING_COLUMNS and the bars file's name), and why the other tickers have none."""
    stamp = _as_ns(day)
    rows, skipped = [], {}
    weights = EWMA_LAMBDA ** np.arange(EWMA_WINDOW)[::-1]  # oldest first
    for symbol in symbols:
        dates, close, returns, file_name = history[symbol]
        n = int(np.searchsorted(dates, stamp, side="right"))
        if n == 0 or dates[n - 1] != stamp:
            skipped[symbol] = f"no bar on {day}"
            continue
        past = returns[: n - 1]  # returns up to and including the session
        if len(past) < MIN_RETURNS:
            skipped[symbol] = f"only {len(past)} daily returns up to {day}, needs {MIN_RETURNS}"
            continue
        recent = past[-EWMA_WINDOW:]
        w = weights[-len(recent) :]
        vol_now = float(np.sqrt(np.sum(w * recent**2) / np.sum(w) * TRADING_DAYS))
        long = past[-LONG_WINDOW:]
        vol_long = float(np.sqrt(np.mean(long**2) * TRADING_DAYS))
        if not (vol_now > 0 and vol_long > 0):
            skipped[symbol] = f"no price variation up to {day}"
            continue
        rows.append(
            {
                "symbol": symbol,
                "spot": float(close[n - 1]),
                "vol_now": vol_now,
                "vol_long": vol_long,
                "vrp": MODEL_VRP,
                "skew": MODEL_SKEW,
                "dividend_yield": 0.0,
                "liquidity": MODEL_LIQUIDITY,
                "event_days": np.nan,
                "event_vol": 0.0,
                "_file": file_name,
            }
        )
    columns = [*UNDERLYING_COLUMNS, "_file"]
    return pd.DataFrame(rows, columns=columns), skipped


def _modelled_chains(
    state: pd.DataFrame, session: dt.date, *, rate: float, seed: int, bars_path: Path
) -> pd.DataFrame:
    """OPTION_CHAINS rows modelled from ``state``, each sourced to its ticker's bars file."""
    if state.empty:
        return empty(OPTION_CHAINS)
    sources = {
        s: f"modelled:files:{f}" for s, f in zip(state["symbol"], state["_file"], strict=True)
    }
    chain = model_chains(
        session,
        state[list(UNDERLYING_COLUMNS)],
        rate=rate,
        rng=session_rng(seed, session),
        source="modelled:files",
        modelled=True,
    )
    chain["source"] = chain["symbol"].astype(object).map(sources)
    # Same row order as file chains (conform aligns on the index, so reset it after).
    chain = chain.sort_values(["symbol", "expiry", "strike", "right"], kind="stable")
    return conform(chain.reset_index(drop=True), OPTION_CHAINS, origin=f"modelled from {bars_path}")
