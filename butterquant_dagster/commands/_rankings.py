"""A session's top butterflies as the scan ranked them, for `scan` and `demo`."""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._data import lake
from butterquant_dagster.core.scan.ev_reliability import (
    EV_CALIBRATED,
    ev_curve_at,
    with_calibrated_ev,
    with_per_1000,
)
from butterquant_dagster.core.scan.score import RANKED_BUTTERFLY

COLUMNS = [
    *RANKED_BUTTERFLY,
    "cost",
    "max_loss",
    "score",
    "ev_per_1000",
    "recommendation",
    "confidence",
]


def rankings(session: dt.date, top: int):
    """The ``top`` rankings of ``session``, with the calibrated EV."""
    store = lake()
    frame = store.read("scan_rankings", [session.isoformat()]).head(top)
    if EV_CALIBRATED in frame:
        return frame
    # Rankings scanned before the column existed: the EV as settled outcomes priced it.
    return with_calibrated_ev(frame, ev_curve_at(store, session))


def rankings_lines(frame) -> list[str]:
    """The rankings as a table, every yield per $1,000."""
    if frame.empty:
        return ["  (no candidates: every ticker was skipped; see the scan_skips table)"]
    columns = list(COLUMNS)
    if EV_CALIBRATED in frame and frame[EV_CALIBRATED].notna().any():
        columns.insert(columns.index("ev_per_1000") + 1, EV_CALIBRATED)
    if frame["ml_success_prob"].notna().any():
        columns += ["ml_success_prob", "ml_expected_roi"]
    shown = with_per_1000(frame[columns].copy())  # every yield per $1,000
    shown["expiry"] = shown["expiry"].dt.strftime("%Y-%m-%d")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}").splitlines()
