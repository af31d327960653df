"""Retention: what the data root may forget, and what it moves out of the hot lake.

Three kinds of data age out, each by its own clock:

* **Caches** (``cache_days``, by modification time): ``<root>/cache/`` holds anything
  downloaded or derived that can be fetched or computed again (a source may keep its
  downloads there; nothing in it is the only copy of anything). Beside it, the lake's
  ``_quarantine`` folders (partitions a run rejected, kept for inspection), ``.staging``
  folders a crashed run left behind, and the temporary directories of an interrupted
  backup. A folder goes whole, once its newest file is older than the cutoff.
* **Logs** (``log_days``, by modification time): the Dagster instance's compute logs
  (``<dagster home>/storage/<run id>/compute_logs/*.out|.err|.complete|.partial``) and any
  ``*.log`` under ``<root>/logs``. The instance's SQLite databases (run history, event logs,
  schedules) are never touched: Dagster prunes its own tick history (``retention`` in
  dagster.yaml), and the run history is the lineage.
* **Scan history** (``hot_limit_bytes``): the big per-session tables (``ARCHIVED_TABLES``,
  largest first: butterfly candidates, option chains, candidate features, candidate
  outcomes, AI probabilities). When their hot partitions together pass the limit, the oldest
  sessions are compacted into ``<root>/archive/<table>/<YYYY>.parquet`` (one zstd file per
  table and year, rewritten with the new partitions appended) and removed from ``lake/``,
  oldest first until the hot tables are under the limit. The last ``PROTECTED_SESSIONS``
  (252, a year) sessions are never archived: the models train on them and the scan reads
  them as history, so they stay as fast single files. Archived partitions stay readable
  through :class:`~butterquant_dagster.core.storage.lake.Lake` (``read``, ``partitions``,
  the DuckDB views).

Archiving is crash-safe in the lake's usual way: the new archive file is written to a
temporary name and renamed over the old one, and only then are the hot files removed. A
crash in between leaves a partition in both places, where the hot file wins and the next run
archives it again. A hot file rewritten while it was being archived (a backfill of an old
session) is kept, since it is newer than what was archived.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.backup import BACKUPS_DIR, TEMP_PREFIX
from butterquant_dagster.core.storage.lake import (
    ARCHIVE_INDEX_KEY,
    PARTITION_COLUMN,
    ArchiveIndex,
    Lake,
    LakeError,
    read_archive_index,
)

ARCHIVED_TABLES = (
    "butterfly_candidates",
    "option_chains",
    "candidate_features",
    "candidate_outcomes",
    "ai_probabilities",
)
PROTECTED_SESSIONS = 252
GIGABYTE = 1024**3
CACHE_DIR = "cache"
LOGS_DIR = "logs"
COMPUTE_LOG_SUFFIXES = (".out", ".err", ".complete", ".partial")


class ArchiveError(LakeError):
    """Partitions that cannot be archived together (their columns' types conflict)."""


@dataclass(frozen=True)
class RemovedItem:
    kind: str  # cache | quarantine | staging | backup_temp | compute_log | log
    path: str  # relative to the data root
    bytes: int
    modified: str  # ISO time of the newest file


@dataclass(frozen=True)
class ArchivedPartition:
    table: str
    partition: str
    rows: int
    bytes: int  # of the hot file that left the lake
    archive_file: str  # relative to the data root


@dataclass
class RetentionReport:
    """What one retention pass removed and archived (or would have, on a dry run)."""

    now: str
    dry_run: bool
    cache_days: float
    log_days: float
    hot_limit_bytes: int
    removed: list[RemovedItem] = field(default_factory=list)
    archived: list[ArchivedPartition] = field(default_factory=list)
    kept_rewritten: list[str] = field(default_factory=list)
    hot_bytes_before: int = 0
    hot_bytes_after: int = 0
    archive_bytes_added: int | None = None  # unknown on a dry run
    protected_from: str | None = None  # first session never archived; None: nothing hot

    @property
    def bytes_removed(self) -> int:
        return sum(item.bytes for item in self.removed)

    @property
    def hot_bytes_archived(self) -> int:
        return sum(item.bytes for item in self.archived)

    @property
    def bytes_freed(self) -> int | None:
        """Disk given back: what was deleted, plus what left the lake, less what the archive
        grew by (None on a dry run, which cannot know how well the archive compresses)."""
        if self.archive_bytes_added is None:
            return None
        return self.bytes_removed + self.hot_bytes_archived - self.archive_bytes_added

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "bytes_removed": self.bytes_removed,
            "hot_bytes_archived": self.hot_bytes_archived,
            "bytes_freed": self.bytes_freed,
        }


def apply_retention(
    root: str | Path,
    now: dt.datetime,
    *,
    cache_days: float = 30,
    log_days: float = 90,
    hot_limit_bytes: int = 5 * GIGABYTE,
    dry_run: bool = False,
    dagster_home: str | Path | None = None,
) -> RetentionReport:
    """Remove expired caches and logs and archive the oldest scan history over the limit.

    ``dagster_home`` is where the instance keeps its compute logs (``<root>/dagster`` by
    default, as the CLI and the Makefile set it). With ``dry_run`` nothing changes and the
    report says what would have.
    """
    if now.tzinfo is None:
        raise ValueError(f"now {now} has no timezone; pass an aware datetime")
    for name, value in (("cache_days", cache_days), ("log_days", log_days)):
        if value < 0:
            raise ValueError(f"{name} must be at least 0, got {value}")
    if hot_limit_bytes < 0:
        raise ValueError(f"hot_limit_bytes must be at least 0, got {hot_limit_bytes}")
    root = Path(root)
    home = Path(dagster_home) if dagster_home is not None else root / "dagster"
    report = RetentionReport(
        now=now.isoformat(),
        dry_run=dry_run,
        cache_days=cache_days,
        log_days=log_days,
        hot_limit_bytes=hot_limit_bytes,
    )
    cache_cutoff = (now - dt.timedelta(days=cache_days)).timestamp()
    log_cutoff = (now - dt.timedelta(days=log_days)).timestamp()
    lake = Lake(root)

    candidates = [
        *_expired_files(root, root / CACHE_DIR, cache_cutoff, "cache", lambda p: True),
        *_expired_folders(root, _lake_leftovers(lake), cache_cutoff),
        *_expired_folders(root, _backup_leftovers(root), cache_cutoff),
        *_expired_files(root, home / "storage", log_cutoff, "compute_log", _is_compute_log),
        *_expired_files(root, root / LOGS_DIR, log_cutoff, "log", lambda p: p.suffix == ".log"),
    ]
    for item, path in candidates:
        if not dry_run:
            _remove(path)
            _prune_empty_parents(path.parent, stop_at=root)
        report.removed.append(item)

    _archive_over_limit(lake, now, hot_limit_bytes, dry_run, report)
    if not dry_run and report.archived and (root / "warehouse.duckdb").exists():
        lake.refresh_warehouse()  # its static views now need the archive in their union
    return report


# ------------------------------------------------------------------- caches and logs
def _is_compute_log(path: Path) -> bool:
    return path.parent.name == "compute_logs" and path.suffix in COMPUTE_LOG_SUFFIXES


def _walk_files(directory: Path) -> Iterator[Path]:
    """Regular files under ``directory``; symbolic links are neither followed nor listed,
    so nothing outside the data root is ever removed."""
    if not directory.is_dir() or directory.is_symlink():
        return
    for folder, _dirs, files in os.walk(directory, followlinks=False):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink() and path.is_file():
                yield path


def _expired_files(root: Path, directory: Path, cutoff: float, kind: str, wanted):
    for path in sorted(_walk_files(directory)):
        stat = path.stat()
        if wanted(path) and stat.st_mtime < cutoff:
            yield _item(kind, path, root, stat.st_size, stat.st_mtime), path


def _lake_leftovers(lake: Lake) -> Iterator[tuple[str, Path]]:
    if not lake.directory.is_dir():
        return
    for table in sorted(p for p in lake.directory.iterdir() if p.is_dir()):
        for kind, name in (("quarantine", "_quarantine"), ("staging", ".staging")):
            holder = table / name
            if holder.is_dir() and not holder.is_symlink():
                for folder in sorted(holder.iterdir()):
                    yield kind, folder


def _backup_leftovers(root: Path) -> Iterator[tuple[str, Path]]:
    backups = root / BACKUPS_DIR
    if backups.is_dir():
        for folder in sorted(backups.iterdir()):
            if folder.name.startswith(TEMP_PREFIX):
                yield "backup_temp", folder


def _expired_folders(root: Path, folders, cutoff: float):
    for kind, folder in folders:
        if folder.is_symlink():
            continue
        files = list(_walk_files(folder)) if folder.is_dir() else [folder]
        stats = [p.stat() for p in files]
        newest = max([s.st_mtime for s in stats] + [folder.stat().st_mtime])
        if newest < cutoff:
            size = sum(s.st_size for s in stats)
            yield _item(kind, folder, root, size, newest), folder


def _item(kind: str, path: Path, root: Path, size: int, mtime: float) -> RemovedItem:
    modified = dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat()
    return RemovedItem(kind, path.relative_to(root).as_posix(), size, modified)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _prune_empty_parents(folder: Path, stop_at: Path) -> None:
    """Remove folders emptied by a removal, up to (not including) the top folders the data
    root is made of (``cache/``, ``logs/``, ``dagster/storage``, a table's folder)."""
    keep = {stop_at, stop_at / CACHE_DIR, stop_at / LOGS_DIR, stop_at / BACKUPS_DIR}
    while folder not in keep and folder.name not in ("storage", "_quarantine", ".staging"):
        if folder.parent == folder or stop_at not in folder.parents:
            return
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


# --------------------------------------------------------------------------- archive
def protected_from(lake: Lake, now: dt.datetime) -> dt.date | None:
    """The first of the last ``PROTECTED_SESSIONS`` sessions, counted back from the newest
    hot scan partition or from the latest close, whichever protects more."""
    newest = [max(parts) for t in ARCHIVED_TABLES if (parts := lake.hot_partitions(t))]
    if not newest:
        return None
    ends = [dt.date.fromisoformat(max(newest)), calendar.latest_completed_session(now)]
    return min(calendar.trailing_sessions(end, PROTECTED_SESSIONS)[0] for end in ends)


def _archive_over_limit(
    lake: Lake, now: dt.datetime, limit: int, dry_run: bool, report: RetentionReport
) -> None:
    sizes: dict[str, dict[str, int]] = {}  # session -> table -> bytes
    for table in ARCHIVED_TABLES:
        for partition in lake.hot_partitions(table):
            size = lake.partition_path(table, partition).stat().st_size
            sizes.setdefault(partition, {})[table] = size
    total = sum(sum(by_table.values()) for by_table in sizes.values())
    report.hot_bytes_before = report.hot_bytes_after = total
    first_protected = protected_from(lake, now)
    report.protected_from = first_protected.isoformat() if first_protected else None
    report.archive_bytes_added = 0
    if total <= limit or first_protected is None:
        return
    chosen: dict[str, list[str]] = {}
    for session in sorted(sizes):
        if total <= limit or dt.date.fromisoformat(session) >= first_protected:
            break
        for table in sizes[session]:
            chosen.setdefault(table, []).append(session)
        total -= sum(sizes[session].values())
    if dry_run:
        report.archive_bytes_added = None if chosen else 0
        for table, partitions in chosen.items():
            for partition in partitions:
                rows = pq.read_metadata(lake.partition_path(table, partition)).num_rows
                target = lake.archive_path(table, partition[:4])
                report.archived.append(
                    ArchivedPartition(
                        table,
                        partition,
                        rows,
                        sizes[partition][table],
                        target.relative_to(lake.root).as_posix(),
                    )
                )
        report.hot_bytes_after = total
        return
    added = 0
    for table, partitions in chosen.items():
        archived, kept, grown = archive_partitions(lake, table, partitions)
        report.archived.extend(archived)
        report.kept_rewritten.extend(kept)
        added += grown
    report.hot_bytes_after = report.hot_bytes_before - report.hot_bytes_archived
    report.archive_bytes_added = added


def archive_partitions(
    lake: Lake, table: str, partitions: list[str]
) -> tuple[list[ArchivedPartition], list[str], int]:
    """Move hot ``partitions`` of ``table`` into its yearly archive files.

    Returns what was archived, the partitions kept hot because they were rewritten
    meanwhile (``table/partition``), and how many bytes the archive files grew by.
    """
    by_year: dict[str, list[str]] = {}
    for partition in sorted(set(partitions)):
        by_year.setdefault(partition[:4], []).append(partition)
    archived, kept, grown = [], [], 0
    for year, keys in by_year.items():
        target = lake.archive_path(table, year)
        before = target.stat().st_size if target.exists() else 0
        sources = {key: lake.partition_path(table, key) for key in keys}
        seen = {key: _identity(path) for key, path in sources.items()}
        rows = _rewrite_year(target, table, sources)
        grown += target.stat().st_size - before
        for key, path in sources.items():
            if _identity(path) != seen[key]:
                kept.append(f"{table}/{key}")  # a newer write; the hot file wins
                continue
            path.unlink()
            archived.append(
                ArchivedPartition(
                    table, key, rows[key], seen[key][1], target.relative_to(lake.root).as_posix()
                )
            )
    return archived, kept, grown


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _strip(schema: pa.Schema) -> pa.Schema:
    return schema.remove_metadata()


def _rewrite_year(target: Path, table: str, sources: dict[str, Path]) -> dict[str, int]:
    """Write ``target`` anew: its partitions not being replaced, then ``sources``, one
    partition per row group (so reading one partition skips the others), in key order."""
    existing = pq.ParquetFile(target) if target.exists() else None
    old_index = read_archive_index(target) if existing else ArchiveIndex({}, {})
    new_schemas = {key: pq.read_schema(path) for key, path in sources.items()}
    new_rows = {key: pq.read_metadata(path).num_rows for key, path in sources.items()}
    kept_old = {k: v for k, v in old_index.partitions.items() if k not in sources}
    index = ArchiveIndex(
        partitions={**kept_old, **new_rows},
        schemas={
            **{k: old_index.schemas[k] for k in kept_old},
            **new_schemas,
        },
    )
    parts = [_strip(s) for s in new_schemas.values()]
    if existing is not None:
        parts.append(
            _strip(existing.schema_arrow).remove(
                existing.schema_arrow.get_field_index(PARTITION_COLUMN)
            )
        )
    try:
        unified = pa.unify_schemas(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ArchiveError(
            f"{table}: cannot archive partitions {sorted(sources)[:5]} into {target}: their "
            f"columns' types conflict with each other or with the archive ({exc})"
        ) from exc
    unified = unified.append(pa.field(PARTITION_COLUMN, pa.string()))
    unified = unified.with_metadata({ARCHIVE_INDEX_KEY: index.to_json()})

    # Old row groups (each one partition) and new partitions, merged in key order.
    order: list[tuple[str, int, object]] = []
    if existing is not None:
        for group in range(existing.num_row_groups):
            column = existing.read_row_group(group, columns=[PARTITION_COLUMN])[0]
            if len(column) and column[0].as_py() not in sources:
                order.append((column[0].as_py(), 0, group))
    order.extend((key, 1, path) for key, path in sources.items())
    order.sort(key=lambda entry: (entry[0], entry[1]))

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with pq.ParquetWriter(temporary, unified, compression="zstd") as writer:
            for key, from_sources, what in order:
                if from_sources:
                    rows = pq.read_table(what)
                    rows = rows.append_column(
                        PARTITION_COLUMN, pa.array([key] * rows.num_rows, pa.string())
                    )
                else:
                    rows = existing.read_row_group(what)
                writer.write_table(_conform(rows, unified))
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return new_rows


def _conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = [
        rows.column(f.name).cast(f.type)
        if f.name in rows.column_names
        else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
