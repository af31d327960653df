"""The Parquet lake under the data root, and DuckDB views over it.

Layout: ``<root>/lake/<table>/<partition>.parquet`` for partitioned tables (one file per
session) and ``<root>/lake/<table>/current.parquet`` for unpartitioned ones.

Writes never leave half a file: a frame goes to a temporary file in the same directory and
is renamed over the target (an atomic rename on POSIX). A run that produces many partitions
stages them first and publishes only those that were written and checked (the sessions a
check refused go to quarantine, see ``defs/staging.py``), so a failure half-way never leaves
half a partition or an unchecked one.

Old partitions of the big scan tables may be archived by retention
(``core/storage/retention.py``) into ``<root>/archive/<table>/<YYYY>.parquet``: one file per
table and year, each row tagged with its partition in a ``_partition`` column, and the
partition's original Arrow schema kept in the file's key-value metadata so a read gives back
exactly the frame that was written. Archived partitions stay part of the table: ``partitions``
lists them, ``read`` reads them, and the DuckDB views union the hot and the archived rows.
When a partition is in both places (re-materialized after it was archived, or a crash between
writing the archive and removing the hot file) the hot file wins everywhere.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

UNPARTITIONED = "current"
_STAGING = ".staging"
_QUARANTINE = "_quarantine"
ARCHIVE = "archive"
PARTITION_COLUMN = "_partition"
ARCHIVE_INDEX_KEY = b"butterquant.archive"


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


@dataclass(frozen=True)
class ArchiveIndex:
    """What one archive file holds: each partition's row count and original schema."""

    partitions: dict[str, int]
    schemas: dict[str, pa.Schema]

    def to_json(self) -> bytes:
        distinct: list[bytes] = []
        entries = {}
        for partition in sorted(self.partitions):
            encoded = self.schemas[partition].serialize().to_pybytes()
            if encoded not in distinct:
                distinct.append(encoded)
            entries[partition] = {
                "rows": self.partitions[partition],
                "schema": distinct.index(encoded),
            }
        record = {
            "version": 1,
            "schemas": [base64.b64encode(item).decode("ascii") for item in distinct],
            "partitions": entries,
        }
        return json.dumps(record, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: Path) -> ArchiveIndex:
        try:
            record = json.loads(data)
            schemas = [
                pa.ipc.read_schema(pa.py_buffer(base64.b64decode(item)))
                for item in record["schemas"]
            ]
            entries = record["partitions"]
            return cls(
                partitions={key: int(entry["rows"]) for key, entry in entries.items()},
                schemas={key: schemas[entry["schema"]] for key, entry in entries.items()},
            )
        except (ValueError, KeyError, IndexError, TypeError, pa.ArrowException) as exc:
            raise LakeError(
                f"archive file {where} has an unreadable partition index: {exc}"
            ) from exc


def read_archive_index(path: Path) -> ArchiveIndex:
    """The partition index of an archive file (its Parquet footer only)."""
    stat = path.stat()
    return _cached_index(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _cached_index(path: str, _mtime_ns: int, _size: int) -> ArchiveIndex:
    metadata = pq.read_schema(path).metadata or {}
    if ARCHIVE_INDEX_KEY not in metadata:
        raise LakeError(f"{path} is not an archive file of the lake (it has no partition index)")
    return ArchiveIndex.from_json(metadata[ARCHIVE_INDEX_KEY], Path(path))


def restore_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table``'s rows in ``schema`` (the partition's own columns, types and pandas
    metadata), undoing what unifying it with other partitions' schemas changed."""
    columns = [
        pa.nulls(table.num_rows, field.type)
        if pa.types.is_null(field.type)
        else table.column(field.name).cast(field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


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
        """The partitions' frames concatenated in the order asked; an archived partition is
        read from the archive."""
        partitions = list(partitions)
        archived = self._archived_locations(table)
        wanted_from_archive = [
            p
            for p in partitions
            if p and p in archived and not self.partition_path(table, p).exists()
        ]
        from_archive = self._read_archived(table, wanted_from_archive, archived)
        frames = []
        for partition in partitions:
            if partition in from_archive:
                frames.append(from_archive[partition])
                continue
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
        """Every partition of ``table``, hot or archived: to a reader they are all there."""
        return sorted(set(self.hot_partitions(table)) | set(self.archived_partitions(table)))

    def hot_partitions(self, table: str) -> list[str]:
        """The partitions stored as files of their own under ``lake/``."""
        directory = self.table_dir(table)
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.parquet") if p.stem != UNPARTITIONED)

    def archived_partitions(self, table: str) -> list[str]:
        """The partitions held in the archive (some may also be hot again)."""
        return sorted(self._archived_locations(table))

    def tables(self) -> list[str]:
        found = set()
        for directory in (self.directory, self.archive_directory):
            if directory.is_dir():
                found.update(
                    p.name for p in directory.iterdir() if p.is_dir() and any(p.glob("*.parquet"))
                )
        return sorted(found)

    # -------------------------------------------------------------------- archive
    @property
    def archive_directory(self) -> Path:
        return self.root / ARCHIVE

    def archive_dir(self, table: str) -> Path:
        return self.archive_directory / table

    def archive_path(self, table: str, year: str) -> Path:
        return self.archive_dir(table) / f"{year}.parquet"

    def archive_files(self, table: str) -> list[Path]:
        directory = self.archive_dir(table)
        return sorted(directory.glob("*.parquet")) if directory.is_dir() else []

    def _archived_locations(self, table: str) -> dict[str, Path]:
        located = {}
        for path in self.archive_files(table):
            for partition in read_archive_index(path).partitions:
                located[partition] = path
        return located

    def _read_archived(
        self, table: str, partitions: list[str], located: dict[str, Path]
    ) -> dict[str, pd.DataFrame]:
        by_file: dict[Path, list[str]] = {}
        for partition in dict.fromkeys(partitions):
            by_file.setdefault(located[partition], []).append(partition)
        frames = {}
        for path, wanted in by_file.items():
            index = read_archive_index(path)
            rows = pq.read_table(path, filters=[(PARTITION_COLUMN, "in", wanted)])
            for partition in wanted:
                selected = rows.filter(pc.equal(rows[PARTITION_COLUMN], partition))
                if selected.num_rows != index.partitions[partition]:
                    raise LakeError(
                        f"{table}: archive file {path} holds {selected.num_rows} rows of "
                        f"partition {partition}, its index says {index.partitions[partition]}"
                    )
                restored = restore_schema(selected, index.schemas[partition])
                frames[partition] = restored.to_pandas()
        return frames

    # ------------------------------------------------------------------------ SQL
    def _view_sql(self, table: str) -> str:
        """The hot files, plus the archived rows of partitions that are not hot."""
        hot = (self.table_dir(table) / "*.parquet").as_posix().replace("'", "''")
        sources = []
        if self.table_dir(table).is_dir() and any(self.table_dir(table).glob("*.parquet")):
            sources.append(f"SELECT * FROM read_parquet('{hot}', union_by_name = true)")
        if self.archive_files(table):
            archived = (self.archive_dir(table) / "*.parquet").as_posix().replace("'", "''")
            sources.append(
                f"SELECT * EXCLUDE ({PARTITION_COLUMN}) "
                f"FROM read_parquet('{archived}', union_by_name = true) "
                f"WHERE {PARTITION_COLUMN} NOT IN "
                f"(SELECT parse_filename(file, true) FROM glob('{hot}'))"
            )
        return f'CREATE OR REPLACE VIEW "{table}" AS ' + " UNION ALL BY NAME ".join(sources)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per table; holds no file lock."""
        connection = duckdb.connect(":memory:")
        for table in self.tables():
            connection.execute(self._view_sql(table))
        return connection

    def connect_read_only(self) -> duckdb.DuckDBPyConnection:
        """``connect()`` locked down for queries typed by a person (``butterquant sql``).

        Once the views exist, DuckDB may open files only under the lake and the archive
        (what the views read), may not install or load extensions, and its configuration is
        locked so no statement can undo that. Files there can still be written by a COPY,
        so the statements themselves are checked too (``read_only_sql.check_read_only``).
        """
        connection = self.connect()
        readable = [
            f"{directory.as_posix()}/" for directory in (self.directory, self.archive_directory)
        ]
        connection.execute("SET allowed_directories = ?", [readable])
        for setting in (
            "SET enable_external_access = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET allow_community_extensions = false",
            "SET lock_configuration = true",
        ):
            connection.execute(setting)
        return connection

    def refresh_warehouse(self) -> Path:
        """Write the views into ``warehouse.duckdb`` for SQL tools pointed at the data root."""
        path = self.root / "warehouse.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(path)) as connection:
            for table in self.tables():
                connection.execute(self._view_sql(table))
        return path
