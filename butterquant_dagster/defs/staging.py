"""Producing partitions session by session, checking each session, and publishing the ones
that passed.

Shared by every partitioned asset that must not publish data failing its checks: the asset
stages one session at a time (memory stays one session's worth) and runs its rules on it.
A session that breaks a rule, or whose input cannot be read, is refused on its own: its rows
are quarantined for inspection and it is not published, while the sessions that passed are
published and recorded as materialized, one partition each; the step then fails naming every
refused session, rule and file, so the run ends failed and nothing after it in the run reads
the refused session. Policy and recovery: docs/data_formats.md, "Bad sessions".
"""

import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, AssetMaterialization, Failure, MetadataValue, Output

from butterquant_dagster.core import calendar, progress
from butterquant_dagster.core.market.schemas import SchemaError
from butterquant_dagster.core.market.source import MarketDataError, MarketDataUnavailable
from butterquant_dagster.core.market.validation import QualityReport
from butterquant_dagster.core.storage.lake import Lake, LakeError
from butterquant_dagster.defs.partitions import session_of
from butterquant_dagster.defs.quality_checks import (
    check_results,
    failure_message,
    session_ranges_of,
)
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


class CheckedPartitions:
    """One table's partitions of a run, staged apart by the verdict of their session's
    checks: ``accepted`` waits to be published, ``rejected`` to be quarantined."""

    def __init__(self, lake: Lake, table: str):
        self.table = table
        self.accepted = lake.stage(table)
        self.rejected = lake.stage(table)

    def write(self, partition: str, frame: pd.DataFrame, accepted: bool) -> None:
        (self.accepted if accepted else self.rejected).write(partition, frame)

    def discard(self) -> None:
        self.accepted.discard()
        self.rejected.discard()


# What a source raises for bad input of one session (not a dropped connection: that one is
# retried by the step's retry policy, for the whole step).
SESSION_INPUT_ERRORS = (MarketDataError, SchemaError)


def stage_checked(
    context,
    lake: LakeResource,
    table: str,
    report: QualityReport,
    sessions: list[dt.date],
    produce,
    **check_context,
) -> tuple[CheckedPartitions, int]:
    """Produce, check and stage one session at a time.

    ``produce(session)`` returns the session's frame and the tickers expected in it. A
    session whose frame breaks a rule is staged apart, to be quarantined; one whose input is
    bad (the source raises a ``MarketDataError`` for it: no quotes that day, an unreadable
    value) is refused with the source's message. Any other error fails the step with nothing
    published.
    """
    staged = CheckedPartitions(lake.lake(), table)
    rows = 0
    try:
        for done, session in enumerate(sessions, start=1):
            try:
                frame, expected = produce(session)
            except MarketDataUnavailable:
                raise
            except SESSION_INPUT_ERRORS as exc:
                report.refuse(session, f"source: {exc}")
                report_progress(context, table, done, len(sessions), session)
                continue
            accepted = report.check(frame, session, expected=expected, **check_context)
            staged.write(session.isoformat(), frame, accepted)
            rows += len(frame) if accepted else 0
            report_progress(context, table, done, len(sessions), session)
    except Exception:
        staged.discard()
        raise
    return staged, rows


def read_upstream(lake: Lake, report: QualityReport, table: str, session: dt.date):
    """``table``'s partition of ``session``, or None with the session refused when the lake
    does not hold it (refused upstream, or never materialized): nothing is ever computed from
    a session that was not published."""
    try:
        return lake.read(table, [session.isoformat()])
    except LakeError as exc:
        report.refuse(
            session,
            f"input: {exc}; a session refused there keeps its rows in "
            f"{lake.table_dir(table) / '_quarantine'}",
        )
        return None


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
    staged: CheckedPartitions,
    metadata,
    companions: dict[str, tuple[CheckedPartitions, dict]] | None = None,
):
    """Publish every session that passed; quarantine and name every refused one.

    When every session passed, the partitions go out as the step's outputs (the lake IO
    manager publishes them and Dagster records one materialization per partition), and the
    steps after it in the run go on. When a session was refused, the sessions that passed are
    published here and recorded as materialized one by one, the refused ones are quarantined,
    the check results say which sessions each failed rule refused, and the step fails naming
    them: the run ends failed and no step after it in the run starts (Dagster runs or skips a
    step as a whole), so nothing reads a refused session.

    ``companions`` are further outputs of a multi-asset (name -> staged, metadata) that share
    the verdict of ``table``'s sessions.
    """
    companions = companions or {}
    results = check_results(table, report)
    outputs = {table: (staged, metadata), **companions}
    if report.passed:
        for checked, _ in outputs.values():
            checked.rejected.discard()
        if companions:
            for name, (checked, output_metadata) in outputs.items():
                yield Output(checked.accepted, output_name=name, metadata=output_metadata)
        else:
            yield Output(staged.accepted, metadata=metadata)
        yield from results
        return
    published = sorted(staged.accepted.partitions)
    refused = report.sessions_refused
    message = failure_message(table, report, published)
    # The asset's own quarantine always keeps the record (REASON.txt), even of a session
    # refused for its input; a companion's only when it has rejected rows.
    where = staged.rejected.quarantine(message)
    _write_violations(where, report)
    for checked, _ in companions.values():
        if checked.rejected.partitions:
            checked.rejected.quarantine(message)
        else:
            checked.rejected.discard()
    for name, (checked, output_metadata) in outputs.items():
        rows = dict(checked.accepted.partitions)
        for path in checked.accepted.publish():
            key = path.stem
            yield AssetMaterialization(
                asset_key=name,
                partition=key,
                description=f"published; {len(refused)} other session(s) of the run refused",
                metadata={
                    **output_metadata,
                    "partition_rows": rows[key],
                    "path": MetadataValue.path(str(path)),
                    "checks": "passed every blocking check",
                    "run_sessions_refused": ", ".join(refused[:20]),
                },
            )
    yield from results
    context.log.error(message)
    raise Failure(
        description=(
            f"{message}\nRejected rows kept for inspection in {where} (<session>.parquet: the "
            "session's rows; <session>.violations.csv: the rows that broke a rule; "
            "REASON.txt: this message). "
            "Steps after this one in the run did not start: run them for the published "
            f"sessions ({session_ranges_of(published)}); rerun a refused session once its "
            "input is fixed."
        ),
        metadata={
            "quarantine": MetadataValue.path(str(where)),
            "sessions_refused": ", ".join(refused),
            "sessions_published": session_ranges_of(published),
        },
        allow_retries=False,
    )


VIOLATION_COLUMNS = ["rule", "session", "symbol", "origin", "message"]


def _write_violations(where, report: QualityReport) -> None:
    """Next to each refused session's rows, the rows that broke a rule (the first 50 of each
    rule); a session refused for its input has only its reason, in REASON.txt."""
    for key, refusal in report.refusals.items():
        if not refusal.violations:
            continue
        records = [
            {
                "rule": v.rule,
                "session": v.session or key,
                "symbol": v.symbol,
                "origin": v.origin,
                "message": v.message,
            }
            for v in refusal.violations
        ]
        frame = pd.DataFrame(records, columns=VIOLATION_COLUMNS)
        frame.to_csv(where / f"{key}.violations.csv", index=False)
