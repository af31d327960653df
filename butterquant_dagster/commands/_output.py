"""How every command prints its result: text lines for people, or one JSON document for
scripts (``--json``), and the same report of a failed run."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from dataclasses import asdict

from butterquant_dagster.commands._errors import EXIT_RUN_FAILED


def finite(value):
    """JSON has no NaN or Infinity: a missing number prints as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def json_value(value):
    """How JSON shows what it has no type for. A date is ``2026-12-18``: a timestamp at
    midnight without a time zone is a date that pandas widened (an expiry, a session) and
    prints as one, not as ``2026-12-18 00:00:00``; other moments print as before
    (``str``). A missing time (NaT) is null; numpy numbers are numbers."""
    if isinstance(value, dt.datetime):
        if value != value:  # NaT
            return None
        if value.tzinfo is None and value.time() == dt.time(0):
            return value.date().isoformat()
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return finite(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def dumps(value) -> str:
    """``value`` as the commands print JSON: strict (no NaN), dates as dates, indented."""
    return json.dumps(finite(value), indent=2, default=json_value)


def emit(summary: dict, as_json: bool, lines: list[str]) -> None:
    """``summary`` as JSON, or ``lines`` as text."""
    if as_json:
        print(dumps(summary))
    else:
        print("\n".join(lines))


def report_failure(summary, as_json: bool) -> int:
    """A failed run (a ``RunSummary``): the summary as JSON, or its failures on stderr."""
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
    else:
        print(f"run {summary.run_id} FAILED", file=sys.stderr)
        for message in summary.failures:
            print(message, file=sys.stderr)
    return EXIT_RUN_FAILED
