"""Progress of long steps, for whoever is watching in this process (the CLI's progress bar).

Assets report through Dagster's log as well; this hook exists because a terminal user of
``butterquant backfill`` wants one updating line, not a log stream.
"""

from __future__ import annotations

from collections.abc import Callable

Listener = Callable[[str, int, int, str], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register ``listener(task, done, total, label)``; returns the unsubscribe function."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def report(task: str, done: int, total: int, label: str = "") -> None:
    for listener in list(_listeners):
        listener(task, done, total, label)
