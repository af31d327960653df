"""One session's scan: candidates from the chain, signals per ticker, score, ranking.

The Dagster assets call these functions once per session; everything here is plain pandas
and NumPy so that a backtest or a notebook runs the very same scan.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from butterquant_dagster.core.scan.candidates import CandidateRules, build_candidates
from butterquant_dagster.core.scan.score import score_candidates
from butterquant_dagster.core.scan.signals import forecast

SKIP_COLUMNS = ["session", "symbol", "stage", "reason", "detail", "count"]
CARRIED_SIGNALS = ["trend_r2", "cycle_power_share", "return_20d", "vol_ewma", "vol_long"]


def scan_session(
    chain: pd.DataFrame,
    signals: pd.DataFrame,
    signal_skips: pd.DataFrame,
    session: dt.date,
    rules: CandidateRules | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scored candidates, skips) of one session. A ticker without signals or without a
    tradable candidate is skipped with its reason; it never stops the others."""
    candidates, candidate_skips = build_candidates(chain, session, rules)
    skips = [
        signal_skips.assign(stage="signals", detail="", count=0),
        candidate_skips.assign(stage="candidates"),
    ]
    with_signals = candidates["symbol"].isin(signals["symbol"])
    no_signals = sorted(set(candidates.loc[~with_signals, "symbol"]) - set(signal_skips["symbol"]))
    skips.append(
        pd.DataFrame(
            {
                "symbol": no_signals,
                "stage": "signals",
                "reason": "no price signals for the session",
                "detail": "",
                "count": 0,
            }
        )
    )
    candidates = candidates.loc[with_signals].reset_index(drop=True)
    rows = (
        signals.drop(columns=["session"])
        .set_index("symbol")
        .loc[candidates["symbol"]]
        .reset_index()
    )
    predicted = forecast(rows, candidates["dte"].to_numpy(float))
    scored = score_candidates(
        candidates, pd.concat([rows, predicted.reset_index(drop=True)], axis=1)
    )
    # The ticker's own signals travel with each candidate: the probability model's features.
    for column in CARRIED_SIGNALS:
        scored[column] = rows[column].to_numpy(float)
    return scored, _skips(skips, session)


def _skips(parts: list[pd.DataFrame], session: dt.date) -> pd.DataFrame:
    frames = [p for p in parts if not p.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SKIP_COLUMNS}).assign(
            session=pd.Series(dtype="datetime64[ns]")
        )
    skips = pd.concat(frames, ignore_index=True)
    skips["session"] = pd.Timestamp(session)
    skips["detail"] = skips["detail"].fillna("").astype(str)
    skips["count"] = skips["count"].fillna(0).astype("int64")
    return skips[SKIP_COLUMNS]
