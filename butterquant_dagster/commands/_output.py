"""How every command prints its result: text lines for people, or one JSON document for
scripts (``--json``), and the same report of a failed run."""

from __future__ import annotations

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


def emit(summary: dict, as_json: bool, lines: list[str]) -> None:
    """``summary`` as JSON, or ``lines`` as text."""
    if as_json:
        print(json.dumps(finite(summary), indent=2, default=str))
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
