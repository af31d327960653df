"""A candidate's tags are built once per distinct set of tags instead of by adding strings
row by row; every row must get exactly the text the row-by-row concatenation gave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_series_equal

from butterquant_dagster.core import settings
from butterquant_dagster.core.scan.score import _tags


def _tags_row_by_row(frame: pd.DataFrame) -> pd.Series:
    """The tags as they were built before: a string per rule and row, summed per row."""
    rules = {
        "credit": frame["is_credit"],
        "iv_rich": frame["vol_edge"] > 0.73,
        "at_the_money": (frame["center"] / frame["spot"] - 1.0).abs() < 0.01,
        "wide_spread": frame["spread_pct"] > settings.value("BUTTERQUANT_MAX_SPREAD_PCT"),
        "low_open_interest": frame["min_open_interest"]
        < settings.value("BUTTERQUANT_MIN_OPEN_INTEREST"),
        "short_dated": frame["dte"] < 14,
    }
    parts = [np.where(mask.to_numpy(bool), name + ",", "") for name, mask in rules.items()]
    joined = pd.Series(np.sum(np.vstack(parts).astype(object), axis=0), index=frame.index)
    return joined.str.rstrip(",")


def _candidates(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spot = rng.uniform(10, 500, rows)
    frame = pd.DataFrame(
        {
            "is_credit": rng.uniform(size=rows) < 0.3,
            "vol_edge": rng.uniform(size=rows),
            "spot": spot,
            # A third of the centres within 1 % of the spot: at the money.
            "center": spot * np.where(rng.uniform(size=rows) < 0.33, 1.005, 1.1),
            "spread_pct": rng.uniform(0, 0.4, rows),
            "min_open_interest": rng.integers(0, 500, rows),
            "dte": rng.integers(1, 60, rows),
        }
    )
    frame.index = rng.permutation(rows) + 10
    return frame


@pytest.mark.parametrize("rows", [0, 1, 5_000])
def test_tags_are_the_text_the_row_by_row_concatenation_gave(rows):
    frame = _candidates(rows, seed=rows)
    tags = _tags(frame)
    assert_series_equal(tags, _tags_row_by_row(frame))
    if rows > 1_000:  # most combinations of the six rules show up, no tag at all too
        assert tags.nunique() > 40
        assert (tags == "").any()
        assert not tags.str.contains(",,|^,|,$").any()
