"""Opening a DuckDB file that another process may hold for a moment.

DuckDB lets one process at a time open a database file, even to read. The ledger and the
paper broker are opened briefly by runs, the fills sensor and the CLI, so two of them can
collide; waiting a little is the right answer, failing is not.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb

LOCK_MESSAGE = "Could not set lock"


def connect(path: str | Path, *, read_only: bool = False, attempts: int = 40, wait: float = 0.05):
    """A connection to ``path``, retrying while another process holds the file's lock
    (about 10 s in all with the back-off), then raising DuckDB's own error."""
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if LOCK_MESSAGE not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(wait * (attempt + 1), 0.5))
    raise AssertionError("unreachable")
