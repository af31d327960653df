"""The IO manager splits a run's frame into session partitions without a Python step per
row; each partition must hold exactly the rows, in the order, that the per-row labelling it
replaced (strftime of every session, one boolean mask per key) gave."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from butterquant_dagster.core.storage.lake import Lake, LakeError
from butterquant_dagster.defs.lake_io_manager import LakeIOManager, split_by_session

KEYS = ["2025-11-18", "2025-11-19", "2025-11-20"]


def _reference(frame: pd.DataFrame, keys: list[str]) -> dict[str, pd.DataFrame]:
    """The split as the IO manager did it before: a label per row, a mask per key."""
    labels = pd.to_datetime(frame["session"]).dt.strftime("%Y-%m-%d")
    return {key: frame.loc[labels == key].reset_index(drop=True) for key in keys}


def _frame(rows: int, sessions: list, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "session": rng.choice(np.array(sessions, dtype=object), size=rows),
            "symbol": rng.choice(["AAA", "BBB", "CCC"], size=rows),
            "value": rng.normal(size=rows),
            "count": rng.integers(0, 10, size=rows),
            "flag": rng.uniform(size=rows) < 0.5,
        }
    )
    frame["structure"] = pd.Categorical(rng.choice(["call_fly", "iron_fly"], size=rows))
    # Not a default index: the split must not depend on it.
    frame.index = rng.permutation(rows) + 1000
    return frame


@pytest.mark.parametrize(
    "sessions",
    [
        [pd.Timestamp(k) for k in KEYS],  # datetime64[ns], as the assets write them
        [dt.date.fromisoformat(k) for k in KEYS],  # date objects
        list(KEYS),  # ISO strings
    ],
    ids=["timestamps", "dates", "strings"],
)
def test_each_partition_holds_the_rows_and_order_the_per_row_split_gave(sessions):
    frame = _frame(5_000, sessions)
    parts = split_by_session(frame, KEYS)
    assert None not in parts
    reference = _reference(frame, KEYS)
    for key in KEYS:
        assert len(parts[key]) > 0
        assert_frame_equal(parts[key], reference[key])
    assert sum(len(p) for p in parts.values()) == len(frame)


def test_one_session_run_is_the_whole_frame_and_an_empty_key_keeps_the_columns():
    frame = _frame(300, [pd.Timestamp("2025-11-20")])
    (key,) = split_by_session(frame, ["2025-11-20"]).values()
    assert_frame_equal(key, _reference(frame, ["2025-11-20"])["2025-11-20"])
    parts = split_by_session(frame, ["2025-11-19", "2025-11-20"])
    empty = parts["2025-11-19"]
    assert len(empty) == 0
    assert list(empty.columns) == list(frame.columns)
    assert (empty.dtypes == frame.dtypes).all()
    assert_frame_equal(parts["2025-11-20"], frame.reset_index(drop=True))


def test_a_time_zone_aware_session_is_split_by_its_wall_date():
    eastern = pd.to_datetime(["2025-11-19 23:30", "2025-11-20 00:30"]).tz_localize(
        "America/New_York"
    )
    frame = pd.DataFrame({"session": eastern, "x": [1, 2]})
    parts = split_by_session(frame, ["2025-11-19", "2025-11-20"])
    assert parts["2025-11-19"]["x"].tolist() == [1]
    assert parts["2025-11-20"]["x"].tolist() == [2]
    reference = _reference(frame, ["2025-11-19", "2025-11-20"])
    for key, part in reference.items():
        assert_frame_equal(parts[key], part)


def test_rows_outside_the_run_and_missing_sessions_are_named():
    frame = pd.DataFrame(
        {
            "session": pd.to_datetime(["2025-11-20", "2025-11-21", None, "2025-11-17"]),
            "x": [1, 2, 3, 4],
        }
    )
    parts = split_by_session(frame, ["2025-11-20"])
    assert parts[None] == ["2025-11-17", "2025-11-21", "NaT"]
    assert parts["2025-11-20"]["x"].tolist() == [1]


def test_the_io_manager_refuses_stray_rows_and_leaves_nothing_staged(tmp_path):
    lake = Lake(tmp_path)
    frame = pd.DataFrame({"session": pd.to_datetime(["2025-11-20", "2025-11-21"]), "x": [1, 2]})
    with pytest.raises(LakeError, match=r"outside the run's partitions: \['2025-11-21'\]"):
        LakeIOManager._stage_frame(lake, "t", frame, ["2025-11-20"])
    staging = lake.table_dir("t") / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_the_io_manager_writes_the_partitions_the_per_row_split_wrote(tmp_path):
    lake = Lake(tmp_path)
    frame = _frame(2_000, [pd.Timestamp(k) for k in KEYS], seed=3)
    staged = LakeIOManager._stage_frame(lake, "t", frame, KEYS)
    staged.publish()
    reference = _reference(frame, KEYS)
    for key in KEYS:
        assert_frame_equal(lake.read("t", [key]), reference[key])
