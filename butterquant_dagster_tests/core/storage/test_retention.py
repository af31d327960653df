"""Retention: expired caches and logs go, old scan history moves to a queryable archive."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.storage.retention import (
    PROTECTED_SESSIONS,
    apply_retention,
    archive_partitions,
    protected_from,
)

NOW = dt.datetime(2026, 3, 14, 10, 0, tzinfo=dt.UTC)
DAY = 86_400.0
OLD = ["2024-01-02", "2024-01-03", "2024-12-31", "2025-01-02"]
RECENT = ["2026-03-02"]


def _age(path: Path, days: float) -> Path:
    moment = NOW.timestamp() - days * DAY
    os.utime(path, (moment, moment))
    return path


def _file(path: Path, days: float, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return _age(path, days)


def _frame(session: str, rows: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": pd.Timestamp(session),
            "symbol": [f"T{i}" for i in range(rows)],
            "price": np.linspace(1.0, 2.0, rows),
            "contracts": np.arange(rows, dtype="int64"),
            "modelled": [i % 2 == 0 for i in range(rows)],
        }
    )


def _scan_lake(root: Path) -> Lake:
    lake = Lake(root)
    for session in OLD + RECENT:
        lake.write("butterfly_candidates", _frame(session, 40), session)
        lake.write("option_chains", _frame(session, 20), session)
    lake.write("daily_bars", _frame("2024-01-02"), "2024-01-02")  # not scan history
    return lake


def _hot_bytes(lake: Lake, tables=("butterfly_candidates", "option_chains")) -> int:
    return sum(
        lake.partition_path(t, p).stat().st_size for t in tables for p in lake.hot_partitions(t)
    )


def _session_bytes(lake: Lake, session: str) -> int:
    return sum(
        lake.partition_path(t, session).stat().st_size
        for t in ("butterfly_candidates", "option_chains")
    )


def test_expired_caches_quarantines_and_logs_go_and_the_instance_databases_stay(tmp_path):
    root = tmp_path
    old_cache = _file(root / "cache" / "ibkr" / "chains.json", 31, 100)
    fresh_cache = _file(root / "cache" / "bars.csv", 29)
    quarantine = root / "lake" / "option_chains" / "_quarantine" / "abc"
    _file(quarantine / "2025-03-03.parquet", 40, 50)
    _age(_file(quarantine / "REASON.txt", 40, 5).parent, 40)
    fresh_quarantine = root / "lake" / "option_chains" / "_quarantine" / "def"
    _file(fresh_quarantine / "REASON.txt", 40)
    _file(fresh_quarantine / "2025-03-04.parquet", 1)  # its newest file is recent
    _age(fresh_quarantine, 40)
    leftover = _age(
        _file(root / "lake" / "option_chains" / ".staging" / "run1" / "x.parquet", 31).parent, 31
    )
    torn_backup = root / "backups" / ".tmp-20260101T060000Z-1a2b3c4d"
    _age(_file(torn_backup / "ledger" / "orders.parquet", 31, 4).parent.parent, 31)
    old_backup = _file(root / "backups" / "20250101T060000Z" / "manifest.json", 400)
    run_logs = root / "dagster" / "storage" / "run-1" / "compute_logs"
    old_out = _file(run_logs / "step.out", 91, 7)
    old_err = _file(run_logs / "step.err", 91, 3)
    fresh_out = _file(root / "dagster" / "storage" / "run-2" / "compute_logs" / "step.out", 89)
    databases = [
        _file(root / "dagster" / "history" / "runs.db", 400),
        _file(root / "dagster" / "history" / "runs" / "run-1.db", 400),
        _file(root / "dagster" / "schedules" / "schedules.db", 400),
        _file(root / "dagster" / "storage" / "run-1" / "outputs.db", 400),
    ]
    old_log = _file(root / "logs" / "daemon.log", 100, 20)
    not_a_log = _file(root / "logs" / "notes.txt", 100)

    report = apply_retention(root, NOW, cache_days=30, log_days=90)

    removed = {(item.kind, item.path, item.bytes) for item in report.removed}
    assert removed == {
        ("cache", "cache/ibkr/chains.json", 100),
        ("quarantine", "lake/option_chains/_quarantine/abc", 55),
        ("staging", "lake/option_chains/.staging/run1", 10),
        ("backup_temp", "backups/.tmp-20260101T060000Z-1a2b3c4d", 4),
        ("compute_log", "dagster/storage/run-1/compute_logs/step.err", 3),
        ("compute_log", "dagster/storage/run-1/compute_logs/step.out", 7),
        ("log", "logs/daemon.log", 20),
    }
    assert report.bytes_removed == 199
    for path in (old_cache, quarantine, leftover, torn_backup, old_out, old_err, old_log):
        assert not path.exists(), path
    for path in (fresh_cache, fresh_quarantine, fresh_out, not_a_log, old_backup, *databases):
        assert path.exists(), path
    assert not (root / "cache" / "ibkr").exists()  # emptied folders go too
    assert (root / "cache").is_dir()


def test_a_dry_run_reports_and_changes_nothing(tmp_path):
    old_cache = _file(tmp_path / "cache" / "a.bin", 31, 100)
    lake = _scan_lake(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))

    report = apply_retention(tmp_path, NOW, hot_limit_bytes=0, dry_run=True)

    assert [item.path for item in report.removed] == ["cache/a.bin"]
    assert {(a.table, a.partition) for a in report.archived} == {
        (t, s) for t in ("butterfly_candidates", "option_chains") for s in OLD
    }
    assert report.bytes_freed is None  # how well the archive compresses is unknown
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert old_cache.exists() and lake.archived_partitions("option_chains") == []


def test_the_oldest_sessions_are_archived_until_the_hot_tables_fit(tmp_path):
    lake = _scan_lake(tmp_path)
    originals = {s: lake.read("butterfly_candidates", [s]) for s in OLD + RECENT}
    total = _hot_bytes(lake)
    two_oldest = _session_bytes(lake, OLD[0]) + _session_bytes(lake, OLD[1])
    limit = total - two_oldest  # after the two oldest sessions the hot tables fit exactly

    report = apply_retention(tmp_path, NOW, hot_limit_bytes=limit)

    archived = sorted({a.partition for a in report.archived})
    assert archived == OLD[:2]
    assert report.hot_bytes_before == total and report.hot_bytes_after == limit
    assert lake.hot_partitions("butterfly_candidates") == OLD[2:] + RECENT
    assert lake.archived_partitions("butterfly_candidates") == OLD[:2]
    assert lake.partitions("butterfly_candidates") == OLD + RECENT  # still all there
    assert (tmp_path / "archive" / "butterfly_candidates" / "2024.parquet").is_file()
    assert lake.hot_partitions("daily_bars") == ["2024-01-02"]  # not scan history
    for session in OLD[:2]:
        pd.testing.assert_frame_equal(
            lake.read("butterfly_candidates", [session]), originals[session]
        )
    both = lake.read("butterfly_candidates", [OLD[2], OLD[0], RECENT[0]])  # mixed, in order
    pd.testing.assert_frame_equal(
        both,
        pd.concat([originals[OLD[2]], originals[OLD[0]], originals[RECENT[0]]], ignore_index=True),
    )
    assert report.archive_bytes_added > 0
    assert report.bytes_freed == report.hot_bytes_archived - report.archive_bytes_added


def test_the_last_252_sessions_are_never_archived(tmp_path):
    lake = _scan_lake(tmp_path)
    first = protected_from(lake, NOW)
    assert first == calendar.trailing_sessions(dt.date(2026, 3, 2), PROTECTED_SESSIONS)[0]
    inside = calendar.next_session(first).isoformat()
    lake.write("butterfly_candidates", _frame(inside), inside)

    report = apply_retention(tmp_path, NOW, hot_limit_bytes=0)

    assert sorted({a.partition for a in report.archived}) == OLD
    assert lake.hot_partitions("butterfly_candidates") == [inside, *RECENT]
    assert report.hot_bytes_after > 0  # over the limit, and rightly so
    assert report.protected_from == first.isoformat()


def test_archive_files_are_appended_by_rewrite_and_a_hot_rewrite_wins(tmp_path):
    lake = _scan_lake(tmp_path)
    archive_partitions(lake, "option_chains", [OLD[0]])
    archive_partitions(lake, "option_chains", [OLD[1], OLD[2]])  # same year, one file
    assert [p.name for p in lake.archive_files("option_chains")] == ["2024.parquet"]
    assert lake.archived_partitions("option_chains") == OLD[:3]

    newer = _frame(OLD[0], 3).assign(price=99.0)
    lake.write("option_chains", newer, OLD[0])  # a backfill re-materializes an archived one
    pd.testing.assert_frame_equal(lake.read("option_chains", [OLD[0]]), newer)
    with lake.connect() as db:
        rows, top = db.execute(
            "SELECT count(*), max(price) FROM option_chains WHERE session = ?", [OLD[0]]
        ).fetchone()
    assert (rows, top) == (3, 99.0)  # the hot rows only, not both

    archive_partitions(lake, "option_chains", [OLD[0]])  # archived again: replaced
    assert lake.hot_partitions("option_chains") == [OLD[3], *RECENT]
    pd.testing.assert_frame_equal(lake.read("option_chains", [OLD[0]]), newer)
    with lake.connect() as db:
        assert db.execute("SELECT count(*) FROM option_chains").fetchone()[0] == 3 + 2 * 20 + 2 * 20


def test_partitions_with_drifting_columns_read_back_exactly(tmp_path):
    lake = Lake(tmp_path)
    first = _frame("2024-01-02").assign(note=[None] * 4)  # an all-missing object column
    second = _frame("2024-01-03").assign(note=["a", "b", None, "d"], extra=1.5)
    empty = _frame("2024-01-04").iloc[0:0]
    for frame, key in ((first, "2024-01-02"), (second, "2024-01-03"), (empty, "2024-01-04")):
        lake.write("candidate_features", frame, key)
    originals = {
        k: lake.read("candidate_features", [k]) for k in lake.partitions("candidate_features")
    }

    archive_partitions(lake, "candidate_features", list(originals))

    assert lake.hot_partitions("candidate_features") == []
    for key, frame in originals.items():
        pd.testing.assert_frame_equal(lake.read("candidate_features", [key]), frame, obj=key)
    assert lake.tables() == ["candidate_features"]  # a table only in the archive is a table
    with lake.connect() as db:
        count, notes = db.execute("SELECT count(*), count(note) FROM candidate_features").fetchone()
    assert (count, notes) == (8, 3)


def test_the_warehouse_views_are_refreshed_to_union_the_archive(tmp_path):
    lake = _scan_lake(tmp_path)
    warehouse = lake.refresh_warehouse()

    apply_retention(tmp_path, NOW, hot_limit_bytes=0)

    with duckdb.connect(str(warehouse), read_only=True) as db:
        sessions = db.execute("SELECT count(DISTINCT session) FROM option_chains").fetchone()[0]
        rows = db.execute("SELECT count(*) FROM butterfly_candidates").fetchone()[0]
    assert sessions == len(OLD + RECENT) and rows == 40 * len(OLD + RECENT)


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="cache_days must be at least 0"):
        apply_retention(Path("/nonexistent"), NOW, cache_days=-1)
    with pytest.raises(ValueError, match="has no timezone"):
        apply_retention(Path("/nonexistent"), NOW.replace(tzinfo=None))
