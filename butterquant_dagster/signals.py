"""SIGTERM and SIGINT stop any ``butterquant`` command within seconds.

Python turns SIGINT into ``KeyboardInterrupt``; SIGTERM (``kill``, systemd, a container
stopping) kills the process without unwinding. Both become ``KeyboardInterrupt`` here, so a
command unwinds the same way for either: ``with`` blocks close their files and DuckDB
connections, and a run in flight is canceled by :mod:`butterquant_dagster.supervisor`. A
deadline guards the promise: if the command has not ended a few seconds after the signal
(a call stuck in C code), the run in flight is marked canceled and the process exits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
HARD_DEADLINE_SECONDS = 9.0


def _force_exit(signum: int) -> None:
    from butterquant_dagster import supervisor

    name = signal.Signals(signum).name
    supervisor.force_cancel_active(f"canceled: {name}; the command did not stop in time")
    print(f"butterquant: stopped by {name} (forced)", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(128 + signum)


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Within the block, SIGTERM and SIGINT raise ``KeyboardInterrupt`` in the main thread;
    yields the list of signals received (the first one decides the exit code)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    timers: list[threading.Timer] = []

    def handler(signum, _frame):
        received.append(signum)
        if not timers:
            timer = threading.Timer(HARD_DEADLINE_SECONDS, _force_exit, args=(signum,))
            timer.daemon = True
            timer.start()
            timers.append(timer)
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for timer in timers:
            timer.cancel()


def exit_code(received: list[int]) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + (received[0] if received else signal.SIGINT)


def name(received: list[int]) -> str:
    return signal.Signals(received[0] if received else signal.SIGINT).name
