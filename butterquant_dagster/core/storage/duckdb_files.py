"""Opening a DuckDB file that another process may hold for a moment, or that is damaged.

DuckDB lets one process at a time open a database file, even to read. The ledger and the
paper broker are opened briefly by runs, the fills sensor and the CLI, so two of them can
collide; waiting a little is the right answer, failing is not.

A damaged file (truncated, its header or a block overwritten) is refused by DuckDB itself,
when it is opened or only when a damaged block is read; so a connection that may write
reads every table first, before a write could checkpoint over the damage. The person needs
the file's name and the way back (``butterquant restore <latest backup>``), not DuckDB's
traceback: every such error from a connection made here becomes ``CorruptDatabase``.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import duckdb

from butterquant_dagster.core.storage.backup_dirs import latest_backup

LOCK_MESSAGE = "Could not set lock"
# What DuckDB says of a file it cannot trust (2.x wording).
CORRUPTION_MARKERS = (
    "not a valid DuckDB database file",
    "Could not read enough bytes from file",
    "Corrupt database file",
    "does not match stored checksum",
    "database has been invalidated",
)


class CorruptDatabase(RuntimeError):
    """A DuckDB file DuckDB refuses as damaged; the message names it and how to restore."""

    def __init__(self, path: Path, detail: str):
        self.path = Path(path)
        super().__init__(_message(self.path, detail))


def _message(path: Path, detail: str) -> str:
    first_line = detail.strip().splitlines()[0] if detail.strip() else "unreadable"
    try:
        backup = latest_backup(path.parent)
    except OSError:
        backup = None
    remedy = (
        f"restore the data root from the latest backup: `butterquant restore {backup}`"
        if backup
        else f"there is no backup under {path.parent / 'backups'} for `butterquant restore`: "
        "restore the file from a copy of your own, or move it aside to start an empty one "
        "(its records are lost)"
    )
    return (
        f"the database file {path} is corrupted ({first_line}); nothing was written to it. "
        f"To recover, {remedy}"
    )


def is_corruption(error: BaseException) -> bool:
    return isinstance(error, duckdb.Error) and any(m in str(error) for m in CORRUPTION_MARKERS)


# Files read in full since they last changed: (size, mtime, inode) by path.
_verified: dict[str, tuple[int, int, int]] = {}


def _state(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _read_every_table(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Read every row of every table before anything may write: a damaged block in the
    middle of a file is found only by reading it, and a write first would checkpoint the
    damaged file (rewriting its header). Skipped while the file is unchanged since the last
    full read in this process, so a run's many short connections read it once."""
    state = _state(path)
    if state is None or _verified.get(str(path)) == state:
        return
    tables = connection.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND NOT temporary"
    ).fetchall()
    for schema, table in tables:
        name = f'"{schema.replace(chr(34), chr(34) * 2)}"."{table.replace(chr(34), chr(34) * 2)}"'
        connection.execute(f"SELECT count(hash(t)) FROM {name} AS t").fetchall()
    _verified[str(path)] = state


class _CheckedConnection:
    """A DuckDB connection whose calls turn a damaged file's errors into ``CorruptDatabase``
    (a damaged block is found only when a query reads it); everything else is DuckDB's."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path):
        self._connection = connection
        self._path = path

    def __getattr__(self, name: str):
        attribute = getattr(self._connection, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def checked(*args, **kwargs):
            try:
                result = attribute(*args, **kwargs)
            except duckdb.Error as exc:
                if is_corruption(exc):
                    raise CorruptDatabase(self._path, str(exc)) from None  # the message carries it
                raise
            return self if result is self._connection else result

        return checked

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._connection.close()


def connect(path: str | Path, *, read_only: bool = False, attempts: int = 40, wait: float = 0.05):
    """A connection to ``path``, retrying while another process holds the file's lock
    (about 10 s in all with the back-off), then raising DuckDB's own error; a damaged file
    raises ``CorruptDatabase``, now or when a query reads the damage."""
    for attempt in range(attempts):
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if is_corruption(exc):
                raise CorruptDatabase(Path(path), str(exc)) from None  # the message carries it
            if not isinstance(exc, duckdb.IOException):
                raise
            if LOCK_MESSAGE not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(wait * (attempt + 1), 0.5))
            continue
        if not read_only:
            try:
                _read_every_table(connection, Path(path))
            except duckdb.Error as exc:
                connection.close()  # nothing was written: closing an unchanged file writes nothing
                if is_corruption(exc):
                    raise CorruptDatabase(Path(path), str(exc)) from None  # the message has it
                raise
        return _CheckedConnection(connection, Path(path))
    raise AssertionError("unreachable")
