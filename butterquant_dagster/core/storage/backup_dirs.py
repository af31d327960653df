"""Where backups live under a data root and which of them are complete.

Its own module because the DuckDB file helpers name the latest backup in their corruption
message, and the backup module itself needs those helpers: the layout is what both share.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
BACKUPS_DIR = "backups"


def complete_backups(root: Path) -> list[Path]:
    """Complete backups of ``root``, oldest first (their names are their UTC times). Only
    real directories: a symbolic link is never followed, for reading or for deleting."""
    backups = Path(root) / BACKUPS_DIR
    if not backups.is_dir():
        return []
    found = [
        p
        for p in backups.iterdir()
        if is_real_dir(p) and p.name[:1].isdigit() and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def is_real_dir(path: Path) -> bool:
    return not path.is_symlink() and path.is_dir()


def latest_backup(root: str | Path) -> Path | None:
    """The newest complete backup of ``root`` (by name, which is its UTC time), or None."""
    found = complete_backups(Path(root))
    return found[-1] if found else None
