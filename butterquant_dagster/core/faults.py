"""Named points on the money path where a test can kill the process for real.

Crash safety is only proven by crashing: the tests start a real ``butterquant`` process with
``BUTTERQUANT_KILL_AT=<point>`` (or ``<point>:<n>`` for the n-th time it is reached) and the
process sends itself SIGKILL there, exactly as ``kill -9`` or the OOM killer would: no
``finally`` block, no flush, no Dagster bookkeeping runs. The rerun must then heal without a
hand on the keyboard. Unset (always, outside those tests), a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

KILL_AT = "BUTTERQUANT_KILL_AT"

# Every point, in the order a session passes them (docs/operations.md, "when something is
# stuck", names them too). Intent/send/ack/fill are per order; marks once per session.
POINTS = (
    "before_intent",
    "after_planning",  # the intent is recorded, nothing sent
    "after_sending",  # the broker has the order, the ledger does not know it
    "after_accepted",  # the acknowledgement is recorded
    "before_reprice",
    "after_reprice",
    "before_recording_fill",
    "after_recording_fill",
    "before_marks",
    "after_marks",
)

_passes: dict[str, int] = {}


def checkpoint(point: str, order_ref: str = "") -> None:
    """SIGKILL this process if ``BUTTERQUANT_KILL_AT`` names ``point`` (and its count)."""
    wanted = os.environ.get(KILL_AT)
    if not wanted:
        return
    name, _, nth = wanted.partition(":")
    if name != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
