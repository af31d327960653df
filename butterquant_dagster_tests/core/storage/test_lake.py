"""The Parquet lake: atomic writes, all-or-nothing publication, DuckDB views."""

from __future__ import annotations

import pandas as pd
import pytest

from butterquant_dagster.core.storage import lake as lake_module
from butterquant_dagster.core.storage.lake import Lake, LakeError


def _frame(session: str, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": pd.Timestamp(session),
            "symbol": [f"T{i}" for i in range(n)],
            "close": [float(i + 1) for i in range(n)],
        }
    )


def test_write_and_read_round_trip(tmp_path):
    lake = Lake(tmp_path)
    lake.write("bars", _frame("2025-03-03"), "2025-03-03")
    lake.write("bars", _frame("2025-03-04", 2), "2025-03-04")
    assert lake.partitions("bars") == ["2025-03-03", "2025-03-04"]
    both = lake.read("bars", ["2025-03-03", "2025-03-04"])
    assert len(both) == 5
    pd.testing.assert_frame_equal(lake.read("bars", ["2025-03-03"]), _frame("2025-03-03"))


def test_a_crash_during_write_leaves_the_old_file(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    lake.write("bars", _frame("2025-03-03"), "2025-03-03")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lake_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        lake.write("bars", _frame("2025-03-03", 9), "2025-03-03")
    monkeypatch.undo()
    assert len(lake.read("bars", ["2025-03-03"])) == 3
    leftovers = [p.name for p in lake.table_dir("bars").iterdir()]
    assert leftovers == ["2025-03-03.parquet"]


def test_staged_partitions_appear_only_when_published(tmp_path):
    lake = Lake(tmp_path)
    staged = lake.stage("chains")
    staged.write("2025-03-03", _frame("2025-03-03"))
    staged.write("2025-03-04", _frame("2025-03-04"))
    assert lake.partitions("chains") == []
    with pytest.raises(LakeError, match="staged twice"):
        staged.write("2025-03-04", _frame("2025-03-04"))
    staged.publish()
    assert lake.partitions("chains") == ["2025-03-03", "2025-03-04"]
    assert not (lake.table_dir("chains") / ".staging").exists()


def test_quarantine_keeps_rejected_data_out_of_the_table(tmp_path):
    lake = Lake(tmp_path)
    lake.write("chains", _frame("2025-03-03"), "2025-03-03")
    staged = lake.stage("chains")
    staged.write("2025-03-03", _frame("2025-03-03", 7))
    where = staged.quarantine("crossed quotes in AAPL on 2025-03-03")
    assert len(lake.read("chains", ["2025-03-03"])) == 3  # the published one is untouched
    assert "crossed quotes" in (where / "REASON.txt").read_text()
    assert (where / "2025-03-03.parquet").exists()


def test_reading_a_missing_partition_names_it(tmp_path):
    with pytest.raises(LakeError, match="bars: partition 2025-03-03 is not in the lake"):
        Lake(tmp_path).read("bars", ["2025-03-03"])


def test_duckdb_views_over_all_partitions(tmp_path):
    lake = Lake(tmp_path)
    for day in ("2025-03-03", "2025-03-04", "2025-03-05"):
        lake.write("bars", _frame(day), day)
    with lake.connect() as db:
        count, sessions = db.execute(
            "SELECT count(*), count(DISTINCT session) FROM bars"
        ).fetchone()
    assert (count, sessions) == (9, 3)
    warehouse = lake.refresh_warehouse()
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as db:
        assert db.execute("SELECT sum(close) FROM bars").fetchone()[0] == 18.0
