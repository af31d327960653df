"""``rank`` sorts only the columns the order depends on and takes the chosen rows, instead of
copying and sorting the whole scored frame. The rankings must be exactly those of the copy
and sort it replaced: same rows, order, columns, dtypes and values, ties and gaps included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from butterquant_dagster.core.scan.score import rank

SESSION = pd.Timestamp("2025-11-20")


def _rank_by_copying(
    scored: pd.DataFrame, *, per_ticker: int = 3, rule_measure: str = "ev_per_1000"
) -> pd.DataFrame:
    """The ranking as it was computed before (a copy of the frame, sorted whole)."""
    scored = scored.copy()
    model = "ml_expected_roi" in scored and bool(scored["ml_expected_roi"].notna().any())
    scored["ranked_by"] = "model" if model else f"rule:{rule_measure}"
    scored["ranking_value"] = (
        scored["ml_expected_roi"] * 1000.0 if model else scored[rule_measure].astype(float)
    )
    ordered = scored.sort_values(
        ["ranking_value", "score"], ascending=[False, False], kind="stable"
    )
    best = ordered.groupby("symbol", sort=False).head(per_ticker).reset_index(drop=True)
    best["ticker_rank"] = best.groupby("symbol").cumcount() + 1
    best.insert(0, "rank", np.arange(1, len(best) + 1))
    best["ticker"] = best["symbol"]
    best["date"] = best["session"]
    best["is_credit_strategy"] = best["is_credit"]
    for column in ("ml_success_prob", "ml_expected_roi"):
        if column not in best:
            best[column] = np.nan
    if "model_version" not in best:
        best["model_version"] = "none"
    return best


def _scored(rows: int, *, seed: int, model: bool) -> pd.DataFrame:
    """A session's scored candidates with the awkward cases of real ones: EVs and scores
    rounded so that many tie, missing EVs, tickers of one candidate, a shuffled index."""
    rng = np.random.default_rng(seed)
    symbols = [f"T{i:03d}" for i in range(80)]
    frame = pd.DataFrame(
        {
            "session": SESSION,
            "symbol": rng.choice(symbols, size=rows),
            "structure": rng.choice(["call_fly", "put_fly", "iron_fly"], size=rows),
            "center": rng.integers(20, 400, size=rows).astype(float),
            "ev_per_1000": np.round(rng.normal(-100, 150, size=rows), -1),
            "prob_profit_rn": np.round(rng.uniform(size=rows), 1),
            "score": np.round(rng.uniform(0, 100, size=rows), 0),
            "is_credit": rng.uniform(size=rows) < 0.3,
            "recommendation": rng.choice(["BUY", "AVOID"], size=rows),
        }
    )
    frame.loc[rng.uniform(size=rows) < 0.02, "ev_per_1000"] = np.nan
    frame.loc[rng.uniform(size=rows) < 0.02, "score"] = np.nan
    frame = pd.concat(
        [frame, frame.head(1).assign(symbol="ONLY", ev_per_1000=5.0)], ignore_index=True
    )
    if model:
        frame["ml_success_prob"] = rng.uniform(size=len(frame))
        frame["ml_expected_roi"] = np.round(rng.normal(0, 0.2, size=len(frame)), 2)
        frame.loc[rng.uniform(size=len(frame)) < 0.05, "ml_expected_roi"] = np.nan
        frame["model_version"] = "v0003"
    frame.index = rng.permutation(len(frame)) * 7
    return frame


@pytest.mark.parametrize("model", [False, True], ids=["rule", "model"])
@pytest.mark.parametrize("per_ticker", [1, 3, 1_000])
@pytest.mark.parametrize("rule_measure", ["ev_per_1000", "prob_profit_rn", "score"])
def test_rank_equals_the_copy_and_sort_it_replaced(model, per_ticker, rule_measure):
    scored = _scored(6_000, seed=per_ticker, model=model)
    before = scored.copy()
    ranked = rank(scored, per_ticker=per_ticker, rule_measure=rule_measure)
    expected = _rank_by_copying(scored, per_ticker=per_ticker, rule_measure=rule_measure)
    assert len(ranked) > 0
    assert_frame_equal(ranked, expected)
    assert_frame_equal(scored, before)  # the input is left as it was


def test_rank_of_no_candidates_is_empty_with_the_columns():
    scored = _scored(10, seed=1, model=False).iloc[:0]
    ranked = rank(scored)
    assert_frame_equal(ranked, _rank_by_copying(scored))
    assert len(ranked) == 0
