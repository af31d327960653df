"""Backups of the data root, and restoring one.

A backup is a directory ``<root>/backups/<UTC time YYYYmmddTHHMMSSZ>/`` holding:

* ``ledger/`` and ``paper_broker/``: each DuckDB database exported with DuckDB's own
  ``EXPORT DATABASE ... (FORMAT parquet)`` (``schema.sql``, ``load.sql``, one Parquet file
  per table), read from a read-only connection, so the export is one consistent snapshot and
  does not depend on DuckDB's file format version. ``warehouse.duckdb`` is not backed up: it
  holds only views over the lake, which ``Lake.refresh_warehouse`` rebuilds.
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
whole backup (retention removes old leftovers).

:func:`restore` verifies every file against the manifest before it touches anything, builds
the restored databases and copies under a temporary directory in the data root, then moves
what the data root holds now aside into ``<root>/backups/pre-restore-<UTC time>/`` and renames
the restored parts into place. The restore can be undone by moving the files in that folder
back. A failure while parts are being moved undoes the moves made so far, so the data root is
never left a mix of old and restored parts (and if even that fails, nothing is deleted and the
error names both folders). Whether Dagster runs are in progress is for the caller to check
(the CLI does).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import pyarrow.parquet as pq

from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.storage.lake import Lake

FORMAT = "butterquant-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BACKUPS_DIR = "backups"
TEMP_PREFIX = ".tmp-"
PRE_RESTORE_PREFIX = "pre-restore-"
DATABASES = ("ledger", "paper_broker")  # <name>.duckdb in the data root
PARQUET_PARTS = ("lake", "archive")
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


# ---------------------------------------------------------------------------- backup
def backup(root: str | Path, now: dt.datetime) -> BackupManifest:
    """Write a complete backup of ``root`` under ``root/backups`` and return its manifest."""
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
                parts[name] = _export_database(source, temporary / name)
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
    return BackupManifest(final, manifest.created_at, manifest.package_version, parts)


def latest_backup(root: str | Path) -> Path | None:
    """The newest complete backup of ``root`` (by name, which is its UTC time), or None."""
    backups = Path(root) / BACKUPS_DIR
    if not backups.is_dir():
        return None
    found = [
        p
        for p in backups.iterdir()
        if p.is_dir() and p.name[:1].isdigit() and (p / MANIFEST).is_file()
    ]
    return max(found, key=lambda p: p.name) if found else None


def connect_read_only(path: Path):
    """A read-only connection to ``path``, waiting while a writer holds the file's lock."""
    return duckdb_files.connect(path, read_only=True)


def _table_counts(connection) -> dict[str, int]:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema = 'main' ORDER BY table_name"
        ).fetchall()
    ]
    return {
        name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names
    }


def _export_database(source: Path, target: Path) -> dict:
    connection = connect_read_only(source)
    try:
        tables = _table_counts(connection)
        quoted = target.as_posix().replace("'", "''")
        connection.execute(f"EXPORT DATABASE '{quoted}' (FORMAT parquet)")
    finally:
        connection.close()
    files = {}
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        _fsync_file(path)
        files[path.relative_to(target).as_posix()] = _describe(path)
    return {"kind": "duckdb", "source": source.name, "tables": tables, "files": files}


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
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


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


# ---------------------------------------------------------------------------- verify
def verify_backup(backup_dir: str | Path) -> BackupManifest:
    """The backup's manifest, once every file it lists is present with its sha256; raises
    BackupError naming the first file that is missing or differs."""
    directory = Path(backup_dir)
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{directory} is not a backup: it has no {MANIFEST}")
    try:
        record = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"{manifest_path} is not readable JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise BackupError(f"{manifest_path} is not a butterquant backup manifest")
    if record.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{manifest_path} has format version {record.get('format_version')}; this version "
            f"of butterquant restores version {FORMAT_VERSION}"
        )
    parts = record.get("parts")
    if not isinstance(parts, dict) or not set(parts) <= {*DATABASES, "models", *PARQUET_PARTS}:
        raise BackupError(f"{manifest_path} lists unknown parts: {sorted(parts or {})}")
    for name, part in parts.items():
        for relative, expected in part["files"].items():
            pure = PurePosixPath(relative)
            if pure.is_absolute() or ".." in pure.parts or pure.parts[0] != name:
                raise BackupError(f"{manifest_path} lists a file outside its part: {relative}")
            path = directory / pure
            if not path.is_file():
                raise BackupError(f"backup file {path} is missing")
            actual = _describe(path)
            if actual["sha256"] != expected["sha256"]:
                raise BackupError(
                    f"backup file {path} is corrupted: its sha256 is {actual['sha256']}, the "
                    f"manifest says {expected['sha256']}"
                )
    return BackupManifest(
        directory, record["created_at"], record.get("package_version", "unknown"), parts
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
    backup_dir: str | Path, root: str | Path, now: dt.datetime | None = None
) -> RestoreReport:
    """Replace the data root's ledger, paper broker, models, lake and archive with the
    backup's, keeping the current ones in ``backups/pre-restore-<time>/``.

    A part the backup does not hold (no paper broker when it was taken) is moved aside too,
    so the data root ends up exactly as it was at the backup. A restore that fails once it
    has begun moving parts is undone, so the data root is never a mix of old and restored
    parts; if even the undo fails, the staged and the moved-aside parts are both kept and
    the :class:`RestoreError` names them.
    """
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
    if (root / "lake").is_dir() or (root / "archive").is_dir():
        try:
            Lake(root).refresh_warehouse()
        except (duckdb.Error, OSError) as exc:  # a SQL tool holding warehouse.duckdb
            report.warnings.append(
                f"warehouse views not refreshed ({exc}); run `butterquant status`"
            )
    return report


def _stage(manifest: BackupManifest, staging: Path) -> dict[str, Path]:
    """Build every restored part under ``staging``: data-root name -> staged path."""
    staged: dict[str, Path] = {}
    for name in DATABASES:
        if name in manifest.parts:
            staged[f"{name}.duckdb"] = _import_database(
                manifest.path / name, staging / f"{name}.duckdb", manifest.tables(name)
            )
    for name in ("models", *PARQUET_PARTS):
        if name in manifest.parts:
            shutil.copytree(manifest.path / name, staging / name)
            staged[name] = staging / name
    return staged


def _import_database(export: Path, target: Path, expected: dict[str, int]) -> Path:
    quoted = export.as_posix().replace("'", "''")
    connection = duckdb.connect(str(target))
    try:
        connection.execute(f"IMPORT DATABASE '{quoted}'")
        counts = _table_counts(connection)
    finally:
        connection.close()
    if counts != expected:
        raise BackupError(
            f"{export}: the imported tables' row counts {counts} differ from the manifest's "
            f"{expected}"
        )
    return target


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
