"""Backups of the data root, and restoring one.

A backup is a directory ``<root>/backups/<UTC time YYYYmmddTHHMMSSZ>/`` holding:

* ``ledger/`` and ``paper_broker/``: one Parquet file per table of each DuckDB database
  (``<part>/<table>.parquet``), the tables being those the code's own DDL defines
  (:data:`~butterquant_dagster.core.trading.ledger.SCHEMA`,
  :data:`~butterquant_dagster.core.brokers.paper.STATE`), read from a read-only connection so
  each database is one consistent snapshot. ``warehouse.duckdb`` is not backed up: it holds
  only views over the lake, which ``Lake.refresh_warehouse`` rebuilds.
* ``models/``: the model registry copied as it is (ONNX files, metadata, champion pointers).
* ``lake/`` and ``archive/``: every published Parquet partition and archive file, copied
  byte for byte (a copy, not a hard link: a link shares the data it should protect).
  Staging and quarantine folders are not published data and are left out.
* ``manifest.json``: per part its files with their size and sha256, the row count of each
  table, the package version and ``created_at``.

Not backed up: the Dagster instance (``dagster/``, run history that a restore must not
rewrite under a running daemon), ``reports/`` (rebuilt from the ledger and the lake) and
``cache/`` (refetchable by definition).

Everything is written into a hidden ``.tmp-...`` directory next to the backups and renamed to
its final name only when complete, so a crash never leaves a directory that looks like a
whole backup (retention removes old leftovers). After a backup, only the newest
``BUTTERQUANT_BACKUP_KEEP`` backups are kept.

**A backup is untrusted data.** Its manifest proves integrity, not authenticity: anyone who
can write a backup folder can write a manifest that matches it. So a restore never executes
anything from it (format version 1 held DuckDB's ``EXPORT DATABASE`` SQL scripts, which a
restore would have had to run, and is refused), and :func:`verify_backup` refuses, before
anything is written, a backup with a file the manifest does not list, a symbolic link, a hard
link, a device or FIFO, a manifest entry that is absolute, holds ``..`` or leaves its part, or
a database part whose files are not exactly the code's tables. The databases are rebuilt from
the code's DDL and filled from the Parquet files only through ``read_parquet`` of a path this
module built inside the staging folder; the columns must be the code's, and values must cast
to the code's types.

:func:`restore` verifies every file against the manifest before it touches anything, copies
the listed files into a temporary directory in the data root (checking every sha256 again, so
a file swapped after the check is caught), builds the restored databases there, then moves
what the data root holds now aside into ``<root>/backups/pre-restore-<UTC time>/`` and renames
the restored parts into place. The restore can be undone by moving the files in that folder
back; only the newest ``BUTTERQUANT_PRE_RESTORE_KEEP`` such folders are kept. A failure while
parts are being moved undoes the moves made so far, so the data root is never left a mix of
old and restored parts (and if even that fails, nothing is deleted and the error names both
folders). Whether Dagster runs are in progress is for the caller to check (the CLI does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import stat
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pyarrow.parquet as pq

from butterquant_dagster.core import settings
from butterquant_dagster.core.brokers.paper import STATE as PAPER_BROKER_DDL
from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.storage.backup_dirs import (
    BACKUPS_DIR,
    MANIFEST,
    complete_backups,
    is_real_dir,
)
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import SCHEMA as LEDGER_DDL

FORMAT = "butterquant-backup"
FORMAT_VERSION = 2  # 1: EXPORT DATABASE with SQL scripts, refused; 2: Parquet per table
TEMP_PREFIX = ".tmp-"
PRE_RESTORE_PREFIX = "pre-restore-"
DATABASES = ("ledger", "paper_broker")  # <name>.duckdb in the data root
DATABASE_DDL = {"ledger": LEDGER_DDL, "paper_broker": PAPER_BROKER_DDL}  # the code's schema
PARQUET_PARTS = ("lake", "archive")
PARTS = (*DATABASES, "models", *PARQUET_PARTS)
BACKUP_KEEP_SETTING = "BUTTERQUANT_BACKUP_KEEP"
PRE_RESTORE_KEEP_SETTING = "BUTTERQUANT_PRE_RESTORE_KEEP"
NOT_BACKED_UP = {
    "warehouse.duckdb": "only views over the lake; rebuilt by Lake.refresh_warehouse",
    "dagster/": "the Dagster instance (run history); not restored under a running daemon",
    "reports/": "rebuilt from the ledger and the lake",
    "cache/": "refetchable downloads and derived data",
}
_CHUNK = 1 << 20


class BackupError(RuntimeError):
    """A backup that cannot be written, or a directory that is not a whole, intact backup."""


@dataclass(frozen=True)
class BackupManifest:
    path: Path
    created_at: str
    package_version: str
    parts: dict[str, dict]
    pruned: tuple[str, ...] = ()  # older backups deleted after this one was written

    @property
    def total_bytes(self) -> int:
        return sum(f["bytes"] for part in self.parts.values() for f in part["files"].values())

    @property
    def file_count(self) -> int:
        return sum(len(part["files"]) for part in self.parts.values())

    def tables(self, part: str) -> dict[str, int]:
        return dict(self.parts.get(part, {}).get("tables", {}))

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "package_version": self.package_version,
            "parts": self.parts,
            "not_backed_up": NOT_BACKED_UP,
        }


@dataclass
class RestoreReport:
    backup: str
    root: str
    restored: dict[str, dict] = field(default_factory=dict)  # part -> tables, files
    moved_aside: str | None = None  # where the data root's previous state went
    pruned: list[str] = field(default_factory=list)  # older pre-restore folders deleted
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def package_version() -> str:
    try:
        return importlib.metadata.version("butterquant-dagster")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _stamp(now: dt.datetime) -> str:
    if now.tzinfo is None:
        raise ValueError(f"now {now} has no timezone; pass an aware datetime")
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _free_name(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name-2``, ``name-3``... when two land in the same second."""
    candidate, number = directory / name, 1
    while candidate.exists():
        number += 1
        candidate = directory / f"{name}-{number}"
    return candidate


def _keep(value: int | None, setting: str) -> int:
    """How many to keep: ``value``, or the setting's. At least one, so the backup just
    written, or the pre-restore copy that undoes the restore just made, is never deleted."""
    if value is None:
        raw = settings.env(setting)
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{setting}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{setting}={value}: at least 1 must be kept")
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# ------------------------------------------------------------------------ the schema
def code_schema(part: str) -> dict[str, list[tuple[str, str]]]:
    """The tables of database ``part`` as the code's DDL defines them: table -> [(column,
    type)], in the DDL's column order. Built in memory from the code's own constants, so
    neither a backup nor the database being backed up decides what a table is."""
    with duckdb.connect(":memory:") as connection:
        connection.execute(DATABASE_DDL[part])
        rows = connection.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE t.table_type = 'BASE TABLE' AND c.table_schema = 'main' "
            "ORDER BY c.table_name, c.ordinal_position"
        ).fetchall()
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        schema.setdefault(table, []).append((column, data_type))
    return schema


# ---------------------------------------------------------------------------- backup
def backup(root: str | Path, now: dt.datetime, keep: int | None = None) -> BackupManifest:
    """Write a complete backup of ``root`` under ``root/backups`` and return its manifest;
    then delete all but the newest ``keep`` backups (``BUTTERQUANT_BACKUP_KEEP`` when None),
    so weekly backups do not fill the disk."""
    keep = _keep(keep, BACKUP_KEEP_SETTING)
    root = Path(root)
    stamp = _stamp(now)
    backups = root / BACKUPS_DIR
    backups.mkdir(parents=True, exist_ok=True)
    temporary = backups / f"{TEMP_PREFIX}{stamp}-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        parts: dict[str, dict] = {}
        for name in DATABASES:
            source = root / f"{name}.duckdb"
            if source.exists():
                _add_missing_tables(source, name)
                parts[name] = _export_database(source, temporary / name, name)
        if (root / "models").is_dir():
            parts["models"] = _copy_tree(root / "models", temporary / "models", _model_file)
        for name in PARQUET_PARTS:
            if (root / name).is_dir():
                parts[name] = _copy_tree(root / name, temporary / name, _published_parquet)
        for name, part in parts.items():  # paths relative to the backup directory
            part["files"] = {f"{name}/{path}": info for path, info in part["files"].items()}
        manifest = BackupManifest(
            temporary, now.astimezone(dt.UTC).isoformat(), package_version(), parts
        )
        _write_json(temporary / MANIFEST, manifest.to_dict())
        final = _free_name(backups, stamp)
        os.replace(temporary, final)
        _fsync_dir(backups)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    try:
        pruned = prune_backups(root, keep, protect=[final])
    except OSError as exc:
        raise BackupError(
            f"backup written to {final}, but deleting the backups beyond the newest {keep} "
            f"failed: {exc}"
        ) from exc
    return BackupManifest(
        final,
        manifest.created_at,
        manifest.package_version,
        parts,
        tuple(str(path) for path in pruned),
    )


def connect_read_only(path: Path):
    """A read-only connection to ``path``, waiting while a writer holds the file's lock."""
    return duckdb_files.connect(path, read_only=True)


def _base_tables(connection) -> list[str]:
    return [
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = 'main' ORDER BY table_name"
        ).fetchall()
    ]


def _table_counts(connection, tables) -> dict[str, int]:
    return {
        name: connection.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]
        for name in tables
    }


def _add_missing_tables(source: Path, part: str) -> None:
    """Give a database an older version wrote the tables added since (the code's DDL is
    ``CREATE TABLE IF NOT EXISTS`` only, as the ledger applies it on every open), so a
    backup right after an upgrade holds every table the restore will ask for."""
    if "CREATE TABLE IF NOT EXISTS" not in DATABASE_DDL[part]:
        raise BackupError(f"the code's schema of {part} is not additive DDL")
    with duckdb_files.connect(source) as connection:
        connection.execute(DATABASE_DDL[part])


def _export_database(source: Path, target: Path, part: str) -> dict:
    """Each table of the code's schema as ``target/<table>.parquet``, from one read-only
    connection (one snapshot). A table the code does not define, or one it defines that the
    file lacks, fails the backup: a backup that silently drops or invents a table would only
    show at the restore."""
    tables = sorted(code_schema(part))
    target.mkdir(parents=True)
    connection = connect_read_only(source)
    try:
        present = _base_tables(connection)
        if sorted(present) != tables:
            raise BackupError(
                f"{source} holds the tables {present}; the code's schema of {part} defines {tables}"
            )
        counts = _table_counts(connection, tables)
        for table in tables:
            path = (target / f"{table}.parquet").as_posix().replace("'", "''")
            connection.execute(f"COPY (SELECT * FROM {_quote(table)}) TO '{path}' (FORMAT parquet)")
    finally:
        connection.close()
    files = {}
    for table in tables:
        path = target / f"{table}.parquet"
        _fsync_file(path)
        files[path.name] = _describe(path)
    return {"kind": "duckdb", "source": source.name, "tables": counts, "files": files}


def _model_file(relative: PurePosixPath) -> bool:
    # The registry's lock file and the hidden directories of unfinished registrations.
    return not any(part.startswith(".") for part in relative.parts)


def _published_parquet(relative: PurePosixPath) -> bool:
    # <table>/<partition>.parquet: not staging, quarantine or temporary files.
    return (
        len(relative.parts) == 2
        and relative.suffix == ".parquet"
        and not relative.name.startswith(".")
    )


def _copy_tree(source: Path, target: Path, wanted) -> dict:
    files, tables = {}, {}
    for path in sorted(source.rglob("*")):
        relative = PurePosixPath(path.relative_to(source).as_posix())
        if path.is_symlink() or not path.is_file() or not wanted(relative):
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        files[relative.as_posix()] = _copy_hashed(path, destination)
        if relative.suffix == ".parquet":
            table = relative.parts[0]
            tables[table] = tables.get(table, 0) + pq.read_metadata(destination).num_rows
    kind = "parquet" if tables else "files"
    return {"kind": kind, "source": source.name, "tables": tables, "files": files}


def _copy_hashed(source: Path, target: Path) -> dict:
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    shutil.copystat(source, target)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _describe(path: Path) -> dict:
    """Size and sha256 of ``path``, which is never a symbolic link followed elsewhere."""
    digest, size = hashlib.sha256(), 0
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"bytes": size, "sha256": digest.hexdigest()}


def _write_json(path: Path, record: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------- prune
def _name_order(path: Path) -> tuple[str, int]:
    """Sort key of ``<prefix><stamp>`` and ``<prefix><stamp>-<n>`` names: by time, then by
    the number :func:`_free_name` added for a second one in the same second."""
    base, _, rest = path.name.rpartition("Z")
    number = rest[1:]
    return (base, int(number) if rest.startswith("-") and number.isdigit() else 1)


def _prune(folders: list[Path], keep: int, protect) -> list[Path]:
    """Delete all but the newest ``keep`` of ``folders`` (never one in ``protect``); the
    folders deleted, oldest first."""
    protected = {path.resolve() for path in protect}
    ordered = sorted(folders, key=_name_order)
    victims = [p for p in ordered[: max(len(ordered) - keep, 0)] if p.resolve() not in protected]
    for folder in victims:
        shutil.rmtree(folder)
    return victims


def prune_backups(root: str | Path, keep: int, protect=()) -> list[Path]:
    """Keep the newest ``keep`` complete backups of ``root``; the backups deleted."""
    return _prune(complete_backups(Path(root)), keep, protect)


def pre_restore_folders(root: str | Path) -> list[Path]:
    """The ``pre-restore-<time>`` folders restores left under ``root/backups``."""
    backups = Path(root) / BACKUPS_DIR
    if not backups.is_dir():
        return []
    return [
        p for p in backups.iterdir() if is_real_dir(p) and p.name.startswith(PRE_RESTORE_PREFIX)
    ]


def prune_pre_restore(root: str | Path, keep: int, protect=()) -> list[Path]:
    """Keep the newest ``keep`` pre-restore folders of ``root``; the folders deleted."""
    return _prune(pre_restore_folders(root), keep, protect)


# ---------------------------------------------------------------------------- verify
def verify_backup(backup_dir: str | Path) -> BackupManifest:
    """The backup's manifest, once the backup holds nothing but what its manifest lists and
    every listed file is present with its size and sha256. Reads only; raises BackupError
    naming the first offending file and the backup. The checks are against untrusted input
    (see the module docstring), so they come before anything is written."""
    directory = Path(backup_dir)
    record = _read_manifest(directory)
    parts = _checked_parts(directory, record)
    listed = {relative for part in parts.values() for relative in part["files"]}
    _check_tree(directory, listed)
    for part in parts.values():
        for relative, expected in part["files"].items():
            _check_hash(directory / relative, expected)
    created_at = record.get("created_at")
    if not isinstance(created_at, str):
        raise BackupError(f"{directory / MANIFEST} has no created_at")
    version = record.get("package_version", "unknown")
    return BackupManifest(directory, created_at, str(version), parts)


def _read_manifest(directory: Path) -> dict:
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file() or manifest_path.is_symlink():
        raise BackupError(f"{directory} is not a backup: it has no {MANIFEST}")
    try:
        record = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{manifest_path} is not readable JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise BackupError(f"{manifest_path} is not a butterquant backup manifest")
    version = record.get("format_version")
    if version == 1:
        raise BackupError(
            f"{manifest_path} has format version 1, whose databases are SQL scripts a restore "
            f"would have to run; backups are untrusted data, so this version of butterquant "
            f"restores only version {FORMAT_VERSION} (tables as Parquet). Take a new backup "
            "with `butterquant backup`"
        )
    if version != FORMAT_VERSION:
        raise BackupError(
            f"{manifest_path} has format version {version}; this version of butterquant "
            f"restores version {FORMAT_VERSION}"
        )
    return record


def _checked_parts(directory: Path, record: dict) -> dict[str, dict]:
    """The manifest's parts, once every entry has the shape its part allows."""
    parts = record.get("parts")
    if not isinstance(parts, dict) or not set(parts) <= set(PARTS):
        shown = sorted(parts) if isinstance(parts, dict) else parts
        raise BackupError(f"{directory / MANIFEST} lists unknown parts: {shown}")
    for name, part in parts.items():
        files = part.get("files") if isinstance(part, dict) else None
        if not isinstance(files, dict) or not isinstance(part.get("tables", {}), dict):
            raise BackupError(f"{directory / MANIFEST}: part {name} has no files and tables")
        for relative, expected in files.items():
            _check_entry(directory, name, relative)
            _check_expected(directory, relative, expected)
        if name in DATABASES:
            _check_database_part(directory, name, part)
    return parts


def _check_entry(directory: Path, part: str, relative) -> None:
    """A manifest entry names a file inside its part: relative, normalized, no ``..``."""

    def refuse(reason: str):
        raise BackupError(
            f"backup {directory}: the manifest lists {relative!r}, which {reason}; refused"
        )

    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        refuse("is not a plain relative path")
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        refuse("is an absolute path")
    if ".." in pure.parts:
        refuse("leaves its folder (..)")
    if pure.as_posix() != relative or "." in relative.split("/"):
        refuse("is not a normalized path")
    if len(pure.parts) < 2 or pure.parts[0] != part:
        refuse(f"is outside its part {part}/")
    inner = PurePosixPath(*pure.parts[1:])
    if part in PARQUET_PARTS and not _published_parquet(inner):
        refuse(f"is not a <table>/<partition>.parquet file of {part}/")
    if part == "models" and not _model_file(inner):
        refuse("is a hidden file of the model registry")


def _check_expected(directory: Path, relative: str, expected) -> None:
    valid = (
        isinstance(expected, dict)
        and isinstance(expected.get("bytes"), int)
        and expected["bytes"] >= 0
        and isinstance(expected.get("sha256"), str)
        and len(expected["sha256"]) == 64
    )
    if not valid:
        raise BackupError(f"backup {directory}: the manifest's entry of {relative} is malformed")


def _check_database_part(directory: Path, part: str, record: dict) -> None:
    """A database part is exactly one Parquet file per table of the code's schema, with a
    row count each: nothing else in it is read, so nothing else may be in it."""
    tables = sorted(code_schema(part))
    wanted = {f"{part}/{table}.parquet" for table in tables}
    unexpected = sorted(set(record["files"]) - wanted)
    if unexpected:
        raise BackupError(
            f"backup {directory}: {unexpected[0]} is not a table of the code's schema of "
            f"{part} ({', '.join(tables)}); refused"
        )
    missing = sorted(wanted - set(record["files"]))
    if missing:
        raise BackupError(f"backup {directory}: the manifest does not list {missing[0]}")
    counts = record.get("tables")
    if sorted(counts) != tables or not all(isinstance(n, int) and n >= 0 for n in counts.values()):
        raise BackupError(
            f"backup {directory}: the row counts of {part} are not one count per table of the "
            f"code's schema ({', '.join(tables)})"
        )


def _check_tree(directory: Path, listed: set[str]) -> None:
    """Everything in ``directory`` is a regular file with one name that the manifest lists
    (or the manifest), and every listed file is there. Walks with ``lstat``, never following
    a link."""
    found: set[str] = set()
    for folder, subfolders, files in os.walk(directory, onerror=_walk_error):
        subfolders.sort()
        for name in sorted(subfolders + files):
            path = Path(folder) / name
            relative = path.relative_to(directory).as_posix()
            mode = os.lstat(path)
            if stat.S_ISDIR(mode.st_mode):
                continue
            _check_file(directory, path, mode)
            if relative != MANIFEST and relative not in listed:
                raise BackupError(
                    f"backup {directory}: {relative} is not listed in the manifest; refused"
                )
            found.add(relative)
    missing = sorted(listed - found)
    if missing:
        raise BackupError(f"backup file {directory / missing[0]} is missing")


def _walk_error(error: OSError) -> None:
    raise BackupError(f"backup folder {error.filename} cannot be read: {error}") from error


def _check_file(directory: Path, path: Path, mode: os.stat_result) -> None:
    relative = path.relative_to(directory)
    if stat.S_ISLNK(mode.st_mode):
        target = os.readlink(path)
        raise BackupError(
            f"backup {directory}: {relative} is a symbolic link (to {target}); a backup holds "
            "only regular files; refused"
        )
    if not stat.S_ISREG(mode.st_mode):
        raise BackupError(
            f"backup {directory}: {relative} is not a regular file (a device, FIFO or "
            "socket); refused"
        )
    if mode.st_nlink > 1:
        raise BackupError(
            f"backup {directory}: {relative} is a hard link ({mode.st_nlink} names share its "
            "data); a backup holds only its own copies; refused"
        )


def _check_hash(path: Path, expected: dict) -> None:
    actual = _describe(path)
    if actual["sha256"] != expected["sha256"] or actual["bytes"] != expected["bytes"]:
        raise BackupError(
            f"backup file {path} is corrupted: its sha256 is {actual['sha256']} "
            f"({actual['bytes']} bytes), the manifest says {expected['sha256']} "
            f"({expected['bytes']} bytes)"
        )


# --------------------------------------------------------------------------- restore
class RestoreError(BackupError):
    """A restore that failed after it began replacing the data root's parts.

    ``rolled_back`` says whether the data root was put back exactly as it was. When it was
    not, nothing was deleted: ``staging`` holds the restored parts that were not placed and
    ``moved_aside`` the data root's previous parts that could not be moved back.
    """

    def __init__(
        self,
        message: str,
        *,
        rolled_back: bool,
        staging: Path | None = None,
        moved_aside: Path | None = None,
    ):
        super().__init__(message)
        self.rolled_back = rolled_back
        self.staging = staging
        self.moved_aside = moved_aside


def restore(
    backup_dir: str | Path,
    root: str | Path,
    now: dt.datetime | None = None,
    keep: int | None = None,
) -> RestoreReport:
    """Replace the data root's ledger, paper broker, models, lake and archive with the
    backup's, keeping the current ones in ``backups/pre-restore-<time>/``; then delete all
    but the newest ``keep`` pre-restore folders (``BUTTERQUANT_PRE_RESTORE_KEEP`` when None).

    A part the backup does not hold (no paper broker when it was taken) is moved aside too,
    so the data root ends up exactly as it was at the backup. A restore that fails once it
    has begun moving parts is undone, so the data root is never a mix of old and restored
    parts; if even the undo fails, the staged and the moved-aside parts are both kept and
    the :class:`RestoreError` names them.
    """
    keep = _keep(keep, PRE_RESTORE_KEEP_SETTING)
    now = now or dt.datetime.now(dt.UTC)
    stamp = _stamp(now)
    manifest = verify_backup(backup_dir)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    report = RestoreReport(backup=str(manifest.path), root=str(root))
    staging = root / f".restore-{uuid.uuid4().hex}"
    staging.mkdir()
    keep_staging = False
    try:
        try:
            staged = _stage(manifest, staging)
        except (OSError, duckdb.Error) as exc:
            raise BackupError(
                f"the restored copies could not be prepared in {staging}: {exc}"
            ) from exc
        for name, part in manifest.parts.items():
            report.restored[name] = {"tables": part["tables"], "files": len(part["files"])}
        try:
            aside = _place(root, stamp, staged, staging)
        except RestoreError as exc:
            keep_staging = not exc.rolled_back
            raise
        report.moved_aside = str(aside) if aside else None
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
    _prune_after_restore(root, keep, [p for p in (aside, manifest.path) if p], report)
    if (root / "lake").is_dir() or (root / "archive").is_dir():
        try:
            Lake(root).refresh_warehouse()
        except (duckdb.Error, OSError) as exc:  # a SQL tool holding warehouse.duckdb
            report.warnings.append(
                f"warehouse views not refreshed ({exc}); run `butterquant status`"
            )
    return report


def _prune_after_restore(root: Path, keep: int, protect: list[Path], report) -> None:
    """The restore is done; a pre-restore folder that cannot be deleted is a warning, not a
    failure that would read as "nothing was restored"."""
    try:
        report.pruned = [str(p) for p in prune_pre_restore(root, keep, protect)]
    except OSError as exc:
        report.warnings.append(
            f"deleting the pre-restore folders beyond the newest {keep} failed ({exc})"
        )


def _stage(manifest: BackupManifest, staging: Path) -> dict[str, Path]:
    """Build every restored part under ``staging``: data-root name -> staged path. Only the
    verified, listed files are copied (each checked against its sha256 again while copying),
    and only those copies are read: a database's tables from ``staging/.tables/<part>/``."""
    tables = staging / ".tables"
    folders = {name: tables / name if name in DATABASES else staging / name for name in PARTS}
    for name, part in manifest.parts.items():
        folders[name].mkdir(parents=True, exist_ok=True)
        for relative, expected in part["files"].items():
            target = folders[name] / PurePosixPath(relative).relative_to(name)
            if not _inside(target, folders[name]):
                raise BackupError(f"backup {manifest.path}: {relative} leaves its part")
            _copy_verified(manifest.path / relative, target, expected)
    staged: dict[str, Path] = {}
    for name in DATABASES:
        if name in manifest.parts:
            staged[f"{name}.duckdb"] = _import_database(
                manifest, name, folders[name], staging / f"{name}.duckdb"
            )
    for name in ("models", *PARQUET_PARTS):
        if name in manifest.parts:
            staged[name] = folders[name]
    return staged


def _inside(path: Path, folder: Path) -> bool:
    resolved, base = path.resolve(), folder.resolve()
    return resolved != base and resolved.is_relative_to(base)


def _copy_verified(source: Path, target: Path, expected: dict) -> None:
    """Copy ``source`` to a new file ``target`` and check the copy's sha256 and size against
    the manifest: a file swapped or changed since :func:`verify_backup` is caught, and a
    symbolic link put in its place is never followed."""
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BackupError(
            f"backup file {source} cannot be opened as a regular file: {exc}"
        ) from exc
    with os.fdopen(descriptor, "rb") as reader:
        info = os.fstat(reader.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            raise BackupError(f"backup file {source} is no longer a regular file of its own")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with open(target, "xb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    if digest.hexdigest() != expected["sha256"] or size != expected["bytes"]:
        raise BackupError(f"backup file {source} changed after it was verified; refused")
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _import_database(manifest: BackupManifest, part: str, tables_dir: Path, target: Path) -> Path:
    """A new database at ``target`` with the code's DDL, each table filled from its staged
    Parquet file as data. Nothing of the backup is executed."""
    schema = code_schema(part)
    connection = duckdb.connect(str(target))
    try:
        connection.execute(DATABASE_DDL[part])
        for table, columns in schema.items():
            _load_table(connection, manifest.path, part, table, columns, tables_dir)
        counts = _table_counts(connection, sorted(schema))
    finally:
        connection.close()
    expected = manifest.tables(part)
    if counts != expected:
        raise BackupError(
            f"backup {manifest.path}: the imported tables of {part} have the row counts "
            f"{counts}, the manifest says {expected}"
        )
    return target


def _load_table(connection, backup: Path, part: str, table: str, columns, tables_dir) -> None:
    """Insert ``tables_dir/<table>.parquet`` into ``table``, read by ``read_parquet`` with the
    path as a parameter. Its columns must be the code's, each cast to the code's type."""
    path = tables_dir / f"{table}.parquet"
    if not _inside(path, tables_dir):  # the name is the code's; the check is cheap insurance
        raise BackupError(f"backup {backup}: table {part}.{table} has no file of its own")
    wanted = [name for name, _ in columns]
    try:
        found = [
            row[0]
            for row in connection.execute(
                "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]
            ).fetchall()
        ]
        missing = [name for name in wanted if name not in found]
        extra = [name for name in found if name not in wanted]
        if missing or extra:
            raise BackupError(
                f"backup {backup}: table {part}.{table} does not have the code's columns "
                f"(missing: {missing or 'none'}; not in the code's schema: {extra or 'none'})"
            )
        names = ", ".join(_quote(name) for name in wanted)
        casts = ", ".join(f"CAST({_quote(name)} AS {kind})" for name, kind in columns)
        connection.execute(
            f"INSERT INTO {_quote(table)} ({names}) SELECT {casts} FROM read_parquet(?)",
            [str(path)],
        )
    except duckdb.Error as exc:
        raise BackupError(
            f"backup {backup}: table {part}.{table} does not load into the code's schema: {exc}"
        ) from exc


def _current_parts(root: Path) -> list[str]:
    names = (
        *(f"{db}.duckdb{suffix}" for db in DATABASES for suffix in ("", ".wal")),
        "models",
        *PARQUET_PARTS,
    )
    return [name for name in names if (root / name).exists()]


def _place(root: Path, stamp: str, staged: dict[str, Path], staging: Path) -> Path | None:
    """Move the data root's current parts into a new ``pre-restore-<stamp>`` folder, then
    the staged parts into the data root; the pre-restore folder, or None when the data root
    held nothing. On any failure the moves made so far are undone (see :func:`_roll_back`)."""
    present = _current_parts(root)
    aside = _free_name(root / BACKUPS_DIR, f"{PRE_RESTORE_PREFIX}{stamp}") if present else None
    moved: list[str] = []  # data-root names now in the pre-restore folder
    placed: list[str] = []  # data-root names now holding the restored part
    step = "creating the pre-restore folder"
    try:
        if aside is not None:
            aside.mkdir(parents=True)
            (aside / "README.txt").write_text(
                "The data root's ledger, broker, models, lake and archive as they were before "
                "a restore.\nTo undo the restore, stop Dagster and move these back into the "
                "data root.\n"
            )
        for name in present:
            step = f"moving the current {name} aside"
            os.replace(root / name, aside / name)
            moved.append(name)
        for name, source in staged.items():
            step = f"placing the restored {name}"
            os.replace(source, root / name)
            placed.append(name)
        step = "syncing the data root"
        _fsync_dir(root)
    except Exception as exc:
        try:
            _roll_back(root, aside, staged, moved, placed)
        except Exception as undo_exc:
            previous = f"the data root's previous parts are in {aside}, " if aside else ""
            raise RestoreError(
                f"the restore failed while {step} ({exc}) and undoing it failed too "
                f"({undo_exc}); the data root is a mix of old and restored parts. Nothing was "
                f"deleted: {previous}the restored parts not yet placed are in {staging}; stop "
                "Dagster and move the previous parts back",
                rolled_back=False,
                staging=staging,
                moved_aside=aside,
            ) from exc
        raise RestoreError(
            f"the restore failed while {step} ({exc}); the data root was put back as it was",
            rolled_back=True,
        ) from exc
    return aside


def _roll_back(
    root: Path, aside: Path | None, staged: dict[str, Path], moved: list[str], placed: list[str]
) -> None:
    """Undo :func:`_place`: the restored parts go back to staging, the previous parts back to
    the data root, and the then empty pre-restore folder is removed. Every move is tried, so a
    part that cannot be moved back does not keep the others from going back; raises OSError
    naming the moves that failed."""
    moves = [(root / name, staged[name]) for name in reversed(placed)]
    moves += [(aside / name, root / name) for name in reversed(moved)]
    failed = []
    for source, target in moves:
        try:
            os.replace(source, target)
        except OSError as exc:
            failed.append(f"{source} -> {target}: {exc}")
    if failed:
        raise OSError("; ".join(failed))
    try:  # the data root is whole again; an empty pre-restore folder left over is harmless
        if aside is not None and aside.exists():
            (aside / "README.txt").unlink(missing_ok=True)
            aside.rmdir()  # refuses, keeping it, if anything unexpected is inside
        _fsync_dir(root)
    except OSError:
        pass
