"""The Parquet lake under the data root, and DuckDB views over it.

Layout: ``<root>/lake/<table>/<partition>.parquet`` for partitioned tables (one file per
session) and ``<root>/lake/<table>/current.parquet`` for unpartitioned ones.

Writes never leave half a file: a frame goes to a temporary file in the same directory and
is renamed over the target (an atomic rename on POSIX). A run that produces many partitions
stages them all first and publishes them only when every one of them is written and
checked, so a failure half-way leaves the lake as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

UNPARTITIONED = "current"
_STAGING = ".staging"
_QUARANTINE = "_quarantine"


class LakeError(RuntimeError):
    """A read of something the lake does not hold, or a write that could not complete."""


def _write_atomic(frame: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        frame.to_parquet(temporary, index=False, compression="zstd")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


class StagedPartitions:
    """Partitions written to a staging area of one table, waiting to be published."""

    def __init__(self, lake: Lake, table: str):
        self.lake = lake
        self.table = table
        self.directory = lake.table_dir(table) / _STAGING / uuid.uuid4().hex
        self.partitions: dict[str, int] = {}

    def write(self, partition: str, frame: pd.DataFrame) -> None:
        if partition in self.partitions:
            raise LakeError(f"{self.table}: partition {partition} staged twice in one run")
        _write_atomic(frame, self.directory / f"{partition}.parquet")
        self.partitions[partition] = len(frame)

    def publish(self) -> list[Path]:
        """Move every staged partition into the table (each move an atomic rename)."""
        published = []
        for partition in self.partitions:
            target = self.lake.partition_path(self.table, partition)
            os.replace(self.directory / f"{partition}.parquet", target)
            published.append(target)
        self.discard()
        return published

    def quarantine(self, reason: str) -> Path:
        """Keep rejected partitions out of the table but on disk for inspection."""
        target = self.lake.table_dir(self.table) / _QUARANTINE / self.directory.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.directory.exists():
            shutil.move(str(self.directory), target)
        else:
            target.mkdir(parents=True, exist_ok=True)
        (target / "REASON.txt").write_text(reason + "\n")
        return target

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):  # the staging area, when no other run uses it
            self.directory.parent.rmdir()


class Lake:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.directory = self.root / "lake"

    def table_dir(self, table: str) -> Path:
        return self.directory / table

    def partition_path(self, table: str, partition: str | None) -> Path:
        return self.table_dir(table) / f"{partition or UNPARTITIONED}.parquet"

    def write(self, table: str, frame: pd.DataFrame, partition: str | None = None) -> Path:
        target = self.partition_path(table, partition)
        _write_atomic(frame, target)
        return target

    def stage(self, table: str) -> StagedPartitions:
        return StagedPartitions(self, table)

    def read(self, table: str, partitions: Iterable[str | None] = (None,)) -> pd.DataFrame:
        frames = []
        for partition in partitions:
            path = self.partition_path(table, partition)
            if not path.exists():
                what = f"partition {partition}" if partition else "its current value"
                raise LakeError(
                    f"{table}: {what} is not in the lake at {path}; materialize it first"
                )
            frames.append(pd.read_parquet(path))
        if not frames:
            raise LakeError(f"{table}: no partitions requested")
        if len(frames) == 1:
            return frames[0]
        return pd.concat(frames, ignore_index=True)

    def read_existing(self, table: str, partitions: Iterable[str]) -> pd.DataFrame:
        """The partitions that exist, concatenated (an empty frame when none does): for
        history windows that may reach back before the first materialized session."""
        present = set(self.partitions(table))
        wanted = [p for p in partitions if p in present]
        return self.read(table, wanted) if wanted else pd.DataFrame()

    def partitions(self, table: str) -> list[str]:
        directory = self.table_dir(table)
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.parquet") if p.stem != UNPARTITIONED)

    def tables(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            p.name for p in self.directory.iterdir() if p.is_dir() and any(p.glob("*.parquet"))
        )

    # ------------------------------------------------------------------------ SQL
    def _view_sql(self, table: str) -> str:
        pattern = (self.table_dir(table) / "*.parquet").as_posix().replace("'", "''")
        return (
            f'CREATE OR REPLACE VIEW "{table}" AS '
            f"SELECT * FROM read_parquet('{pattern}', union_by_name = true)"
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table; holds no file lock."""
        connection = duckdb.connect(":memory:")
        for table in self.tables():
            connection.execute(self._view_sql(table))
        return connection

    def refresh_warehouse(self) -> Path:
        """Write the views into ``warehouse.duckdb`` for SQL tools pointed at the data root."""
        path = self.root / "warehouse.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as connection:
            for table in self.tables():
                connection.execute(self._view_sql(table))
        return path
