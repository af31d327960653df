"""``butterquant report daily|weekly|monthly [--date D]``: write one report now.

The report is materialized through Dagster (its job's run shows in the UI, with the
performance and drift figures refreshed first), then the page's path is printed.
"""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.core import settings
from butterquant_dagster.core.monitoring.periods import PERIODS


def report_key(period: str, session: dt.date) -> str:
    from butterquant_dagster.core.monitoring.report_inputs import week_label

    if period == "weekly":
        return week_label(session)
    if period == "monthly":
        return f"{session:%Y-%m}"
    return session.isoformat()


def report_session(text: str | None) -> dt.date:
    """--date, else the latest session that has closed."""
    from butterquant_dagster import cli
    from butterquant_dagster.commands.sessions import latest_closed

    return cli._require(text) if text else latest_closed()  # _require refuses an open one


def write_report(period: str, session: dt.date, *, show_progress: bool):
    """Run the period's report job for ``session``; the run summary and the page's path."""
    from butterquant_dagster import cli
    from butterquant_dagster.core.monitoring.reports import report_path
    from butterquant_dagster.defs.monitoring.automation import REPORT_JOBS

    summary = cli.materialize(REPORT_JOBS[period], session, session, show_progress=show_progress)
    return summary, report_path(settings.data_root(), period, report_key(period, session))


def cmd_report(args) -> int:
    from butterquant_dagster import cli

    session = report_session(args.date)
    summary, path = write_report(args.period, session, show_progress=not args.json)
    if not summary.success:
        return cli._report_failure(summary, args.json)
    cli._print(
        {"period": args.period, "session": session.isoformat(), "path": str(path),
         "run_id": summary.run_id},
        args.json,
        [f"{args.period} report of {session} written to {path} (run {summary.run_id})"],
    )  # fmt: skip
    return cli.EXIT_OK


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
