"""``butterquant report daily|weekly|monthly [--date D]``: write one report now.

The report is materialized through Dagster (its job's run shows in the UI, with the
performance and drift figures refreshed first), then the page's path is printed.
"""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._dates import latest_closed, require_session
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit, report_failure
from butterquant_dagster.commands._reports import write_report
from butterquant_dagster.core.monitoring.periods import PERIODS


def report_session(text: str | None) -> dt.date:
    """--date (a session that has closed), else the latest session that has closed."""
    return require_session(text) if text else latest_closed()


def cmd_report(args) -> int:
    session = report_session(args.date)
    summary, path = write_report(args.period, session, show_progress=not args.json)
    if not summary.success:
        return report_failure(summary, args.json)
    emit(
        {"period": args.period, "session": session.isoformat(), "path": str(path),
         "run_id": summary.run_id},
        args.json,
        [f"{args.period} report of {session} written to {path} (run {summary.run_id})"],
    )  # fmt: skip
    return EXIT_OK


def add_parser(sub) -> None:
    report = sub.add_parser(
        "report",
        help="write the daily, weekly or monthly HTML report now",
        description="Materialize a report (and the performance and drift figures it shows) "
        "through Dagster and print where the page is. Weekly and monthly reports cover their "
        "period up to --date.",
    )
    report.add_argument("period", choices=PERIODS, help="which report")
    report.add_argument("--date", help="session, YYYY-MM-DD (default: the latest closed one)")
    report.add_argument("--json", action="store_true", help="print the result as JSON")
    report.set_defaults(handler=cmd_report)
