"""Whether the process that launched a run is still the one alive under its pid.

A run of the ``butterquant`` command executes inside the command's own process, so when that
process dies (``kill -9``, the OOM killer, a power cut) nothing is left to mark the run
finished or to give back the pool slot it holds. The command records who it is (host, pid
and the process's start time) on every run it launches; a later command compares that with
what is running now. The start time matters because pids are reused: a pid that is alive but
started at another time is somebody else.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    pid: int
    started: str  # opaque token: equal for the same process, different after pid reuse


def start_token(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux ``/proc``); "" where that
    cannot be read (another OS, or no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def current() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(socket.gethostname(), pid, start_token(pid))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent (a test harness, a shell) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[:1] == ["Z"]


def is_alive(identity: ProcessIdentity) -> bool | None:
    """True when the process still runs, False when it is gone, None when it cannot be told
    from here (it ran on another host)."""
    if identity.host != socket.gethostname():
        return None
    if identity.pid <= 0 or not _pid_exists(identity.pid) or _zombie(identity.pid):
        return False
    # A pid alive under another start time was reused by another process.
    return not (identity.started and start_token(identity.pid) not in ("", identity.started))
