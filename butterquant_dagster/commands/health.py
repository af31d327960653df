"""The `butterquant health` command: the system health report in the terminal.

The same checks as the ``system_health`` asset, read straight from the data root, the
environment and the instance's run history, so it works with no daemon running and on an
empty data root. The headline says healthy (OK and NOTICE only), needs attention (a WARN:
the daily run still goes, but something should be done soon) or NOT HEALTHY (a FAIL). Exit
0 unless a check FAILs, then 1.
"""

from __future__ import annotations

import datetime as dt
import os

from butterquant_dagster.commands._errors import EXIT_OK, EXIT_RUN_FAILED, CliError
from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.commands._output import emit
from butterquant_dagster.core import settings


def now() -> dt.datetime:
    """The report's instant (tests replace it to stand at a fixed time)."""
    return dt.datetime.now(dt.UTC)


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "health",
        help="check models, data freshness, broker, disk and recent runs",
        description="System health: the probability model's champion and age, the latest "
        "due session in the lake, the broker's port, LLM providers configured, free disk, "
        "and failed runs of the last 24 hours. Exit 1 when any check FAILs.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=cmd_health)


def cmd_health(args) -> int:
    from butterquant_dagster.core.monitoring.health import HealthThresholds
    from butterquant_dagster.defs.ops.health import collect_report

    try:
        thresholds = HealthThresholds.from_settings()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    report = collect_report(
        settings.data_root(),
        now(),
        broker=settings.env("BUTTERQUANT_BROKER"),
        ib_host=settings.env("BUTTERQUANT_IB_HOST"),
        ib_port=settings.env("BUTTERQUANT_IB_PORT"),
        instance=prepare_instance(),
        environ=os.environ,
        thresholds=thresholds,
    )
    emit(report.to_dict(), args.json, report_lines(report))
    return EXIT_OK if report.healthy else EXIT_RUN_FAILED


def report_lines(report) -> list[str]:
    from butterquant_dagster.core.monitoring.health import STATUSES

    statuses = [check.status for check in report.checks]
    tally = ", ".join(f"{statuses.count(s)} {s}" for s in reversed(STATUSES) if s in statuses)
    verdict = report.verdict
    width = max(len(check.name) for check in report.checks)
    lines = [
        f"butterquant health: {verdict} ({tally}) at {report.generated_at:%Y-%m-%d %H:%M %Z}",
        f"  data root: {settings.data_root()}",
        "",
        f"  {'check':<{width}}  {'status':<6}  message",
    ]
    lines += [
        f"  {check.name:<{width}}  {check.status:<6}  {check.message}" for check in report.checks
    ]
    return lines
