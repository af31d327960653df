"""One process at a time: an exclusive advisory lock on a file, released on exit or death.

``flock`` is released by the kernel when the holder dies (``kill -9`` included), so a killed
command never leaves a lock behind for the next one to wait on.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock for the block, waiting while another process holds it."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
