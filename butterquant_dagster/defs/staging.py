"""Producing partitions session by session, checking them, and publishing all or nothing.

Shared by every partitioned asset that must not publish data failing its checks: the
asset stages one session at a time (memory stays one session's worth), runs its rules, and
either publishes every staged partition or quarantines them and fails naming each rule.
"""

import datetime as dt

from dagster import AssetExecutionContext, Failure, MetadataValue, Output

from butterquant_dagster.core import calendar, progress
from butterquant_dagster.core.market.validation import QualityReport
from butterquant_dagster.core.storage.lake import StagedPartitions
from butterquant_dagster.defs.partitions import session_of
from butterquant_dagster.defs.quality_checks import check_results, failure_message
from butterquant_dagster.resources import LakeResource


def run_sessions(context: AssetExecutionContext, now: dt.datetime) -> list[dt.date]:
    """The run's sessions, refusing any that has not closed yet (no look-ahead)."""
    sessions = [session_of(key) for key in context.partition_keys]
    latest = calendar.latest_completed_session(now)
    open_sessions = [s for s in sessions if s > latest]
    if open_sessions:
        first = open_sessions[0]
        closes = calendar.session_close(first).strftime("%Y-%m-%d %H:%M %Z")
        raise Failure(
            f"session {first} has not closed yet (closes {closes}); the latest completed "
            f"session is {latest}. A snapshot taken before the close is not the closing snapshot."
        )
    return sessions


def report_progress(context, table: str, done: int, total: int, session: dt.date) -> None:
    progress.report(table, done, total, str(session))
    step = max(1, total // 20)
    if done == total or done % step == 0:
        context.log.info(f"progress {table} {done}/{total} sessions (last {session})")


def stage_checked(
    context,
    lake: LakeResource,
    table: str,
    report: QualityReport,
    sessions: list[dt.date],
    produce,
    **check_context,
) -> tuple[StagedPartitions, int]:
    """Produce, check and stage one session at a time.

    ``produce(session)`` returns the session's frame and the tickers expected in it.
    """
    staged = lake.lake().stage(table)
    rows = 0
    try:
        for done, session in enumerate(sessions, start=1):
            frame, expected = produce(session)
            report.check(frame, session, expected=expected, **check_context)
            staged.write(session.isoformat(), frame)
            rows += len(frame)
            report_progress(context, table, done, len(sessions), session)
    except Exception:
        staged.discard()
        raise
    return staged, rows


def run_metadata(sessions: list[dt.date], source) -> dict[str, object]:
    """What the run read, including what the source dropped or converted on the way (a
    vendor file's no-quote rows, say): nothing leaves the data silently."""
    warnings = list(getattr(source, "warnings", None) or [])
    return {
        "sessions": len(sessions),
        "first_session": str(sessions[0]),
        "last_session": str(sessions[-1]),
        "source": source.name,
        "source_warnings": len(warnings),
        **({"source_warning_lines": "\n".join(warnings[:50])} if warnings else {}),
    }


def finish(
    context,
    table: str,
    report: QualityReport,
    staged: StagedPartitions,
    metadata,
    companions: dict[str, tuple[StagedPartitions, dict]] | None = None,
):
    """Publish what passed every check, or quarantine it and fail naming each rule.

    ``companions`` are further outputs of a multi-asset (name -> staged, metadata) that are
    published or quarantined together with ``table``.
    """
    companions = companions or {}
    results = check_results(table, report)
    if not report.passed:
        message = failure_message(table, report)
        where = staged.quarantine(message)
        for other, _ in companions.values():
            other.quarantine(message)
        yield from results
        raise Failure(
            description=f"{message}\nRejected partitions kept for inspection in {where}",
            metadata={"quarantine": MetadataValue.path(str(where))},
        )
    if companions:
        yield Output(staged, output_name=table, metadata=metadata)
        for name, (other, other_metadata) in companions.items():
            yield Output(other, output_name=name, metadata=other_metadata)
    else:
        yield Output(staged, metadata=metadata)
    yield from results
