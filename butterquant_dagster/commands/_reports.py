"""Writing one HTML report through Dagster, for `report` and `demo`.

The report modules (charts, drift) load when a report is written: every command builds the
parser, and `demo` imports this module.
"""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.core import settings


def report_key(period: str, session: dt.date) -> str:
    from butterquant_dagster.core.monitoring.report_inputs import week_label

    if period == "weekly":
        return week_label(session)
    if period == "monthly":
        return f"{session:%Y-%m}"
    return session.isoformat()


def write_report(period: str, session: dt.date, *, show_progress: bool):
    """Run the period's report job for ``session``; the run summary and the page's path."""
    from butterquant_dagster.core.monitoring.reports import report_path
    from butterquant_dagster.defs.monitoring.automation import REPORT_JOBS

    summary = materialize(REPORT_JOBS[period], session, session, show_progress=show_progress)
    return summary, report_path(settings.data_root(), period, report_key(period, session))
