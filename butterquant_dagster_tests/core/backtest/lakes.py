"""Small hand-made lakes for the backtest engines: a few tickers on a smooth price path,
Black-Scholes chains (``core/trading/chains.py``), scored candidates priced from them,
random features with one informative column, and the outcome of every candidate (also
those that expire after a backtest step begins: the engine must not look at them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster_tests.core.trading.chains import make_chain, make_rankings

TICKERS = {"AAA": "Tech", "BBB": "Energy", "CCC": "Health"}
EXPIRY_EVERY = 5  # sessions between listed expiries
MIN_DAYS_TO_EXPIRY = 9  # calendar days: entries clear the 7-day time stop
# The features the outcomes depend on, together: no single one carries most of the signal,
# so a model can pass the promotion gate "beats the best single feature".
INFORMATIVE = ("prob_profit_forecast", "iv_rank", "dte")
RANKING_ONLY = ["rank", "ticker", "ml_success_prob", "ml_expected_roi", "model_version"]


def spot(symbol: str, index: int) -> float:
    phase = {"AAA": 0.0, "BBB": 2.0, "CCC": 4.0}[symbol]
    return round(100.0 + 6.0 * np.sin(index / 6.0 + phase), 2)


def expiries_of(sessions: list[dt.date], tail: int = 40) -> list[dt.date]:
    """Listed expiries: every EXPIRY_EVERY-th session, running past the last session."""
    later = calendar.sessions(sessions[-1], sessions[-1] + dt.timedelta(days=tail * 2))
    every = [*sessions, *later[1:tail]]
    return every[EXPIRY_EVERY - 1 :: EXPIRY_EVERY]


def entry_expiry(session: dt.date, expiries: list[dt.date]) -> dt.date:
    return next(e for e in expiries if (e - session).days >= MIN_DAYS_TO_EXPIRY)


def chain_of(session: dt.date, index: int, expiries: list[dt.date]) -> pd.DataFrame:
    spots = {t: spot(t, index) for t in TICKERS}
    listed = [e for e in expiries if e >= session][:3]
    return pd.concat([make_chain(session, spots, expiry=e) for e in listed], ignore_index=True)


def picks_of(expiry: dt.date, index: int) -> list[dict]:
    """Call, put and iron flies around each ticker's spot: nine per ticker."""
    picks = []
    for ticker in TICKERS:
        center = round(spot(ticker, index) / 5.0) * 5.0
        for shift in (-5.0, 0.0, 5.0):
            for structure in ("call_fly", "put_fly", "iron_fly"):
                middle = center + shift
                picks.append(
                    {
                        "ticker": ticker,
                        "structure": structure,
                        "lower": middle - 5.0,
                        "center": middle,
                        "upper": middle + 5.0,
                        "expiry": expiry,
                        "score": 50.0 + 10.0 * np.cos(middle / 7.0 + index),
                        "ev_per_1000": 20.0 + 10.0 * np.sin(middle + index),
                    }
                )
    return picks


def candidates_of(session: dt.date, chain: pd.DataFrame, expiry: dt.date, index: int):
    rows = make_rankings(session, chain, picks_of(expiry, index), model=False)
    rows = rows.drop(columns=[c for c in RANKING_ONLY if c in rows.columns])
    rows["is_credit"] = rows["structure"] == "iron_fly"
    rows["dte"] = (rows["expiry"] - pd.Timestamp(session)).dt.days
    return rows


def keys_of(session: dt.date, expiry: dt.date, index: int) -> pd.DataFrame:
    """The candidates' keys alone: what the training history of a session needs."""
    picks = pd.DataFrame(picks_of(expiry, index))
    picks["session"] = pd.Timestamp(session)
    picks["symbol"] = picks["ticker"]
    picks["expiry"] = pd.to_datetime(picks["expiry"])
    return picks[KEY_COLUMNS]


def features_and_outcomes(candidates: pd.DataFrame, rng: np.random.Generator):
    features = candidates[KEY_COLUMNS].copy()
    for name in FEATURE_COLUMNS:
        features[name] = rng.normal(size=len(candidates))
    signal = sum(features[name].to_numpy() for name in INFORMATIVE) / np.sqrt(len(INFORMATIVE))
    win = signal + 0.3 * rng.normal(size=len(candidates)) > 0.6
    outcomes = candidates[KEY_COLUMNS].copy()
    outcomes["win"] = win
    outcomes["yield_per_1000"] = np.where(win, 400.0, -250.0) + 50.0 * signal
    return features, outcomes


def build_lake(
    root: Path,
    first: str,
    last: str,
    *,
    seed: int = 11,
    decisions: pd.DataFrame | None = None,
    traded_from: str | None = None,
) -> tuple[Lake, list[dt.date]]:
    """A lake over the sessions [first, last] (every table a backtest reads). Sessions
    before ``traded_from`` get only the training history (features and outcomes), which
    is all a backtest reads of them and much quicker to make."""
    lake = Lake(root)
    sessions = calendar.sessions(first, last)
    expiries = expiries_of(sessions)
    rng = np.random.default_rng(seed)
    lake.write(
        "universe",
        pd.DataFrame({"symbol": list(TICKERS), "name": list(TICKERS), "sector": TICKERS.values()}),
    )
    for index, session in enumerate(sessions):
        key = session.isoformat()
        expiry = entry_expiry(session, expiries)
        if traded_from and key < traded_from:
            features, outcomes = features_and_outcomes(keys_of(session, expiry, index), rng)
            lake.write("candidate_features", features, key)
            lake.write("candidate_outcomes", outcomes, key)
            # The rule's EV the yield model's gate compares with: a noisy view of the yield.
            rule = outcomes[KEY_COLUMNS].assign(
                ev_per_1000=outcomes["yield_per_1000"] + 300.0 * rng.normal(size=len(outcomes)),
                score=50.0,
                prob_profit_forecast=0.3,
                prob_profit_rn=0.3,
            )
            lake.write("butterfly_candidates", rule, key)
            continue
        chain = chain_of(session, index, expiries)
        lake.write("option_chains", chain, key)
        closes = [spot(t, index) for t in TICKERS]
        opens = [spot(t, index - 0.5) for t in TICKERS]
        lake.write(
            "daily_bars",
            pd.DataFrame(
                {
                    "session": pd.Timestamp(session),
                    "symbol": list(TICKERS),
                    "open": opens,
                    "close": closes,
                }
            ),
            key,
        )
        candidates = candidates_of(session, chain, expiry, index)
        lake.write("butterfly_candidates", candidates, key)
        features, outcomes = features_and_outcomes(candidates, rng)
        lake.write("candidate_features", features, key)
        lake.write("candidate_outcomes", outcomes, key)
        if decisions is not None and (decisions["session"] == key).any():
            lake.write("trading_decisions", decisions.loc[decisions["session"] == key], key)
    return lake, sessions


def poison(lake: Lake, after: dt.date) -> int:
    """Invert every outcome that expires on or after ``after``; the number changed."""
    changed = 0
    for key in lake.partitions("candidate_outcomes"):
        outcomes = lake.read("candidate_outcomes", [key])
        late = pd.to_datetime(outcomes["expiry"]) >= pd.Timestamp(after)
        if late.any():
            outcomes.loc[late, "win"] = ~outcomes.loc[late, "win"]
            outcomes.loc[late, "yield_per_1000"] = -outcomes.loc[late, "yield_per_1000"]
            lake.write("candidate_outcomes", outcomes, key)
            changed += int(late.sum())
    return changed
