"""Running a job of the project for a range of sessions, as one run of the instance.

Every command that produces data materializes through Dagster against the project's
instance (``<data root>/dagster``), so each run shows up in the UI with its lineage, logs
and checks, exactly as if it had been launched there. The run executes in the command's
process under :mod:`butterquant_dagster.supervisor`; the terminal gets a progress bar and a
``RunSummary``, the instance the full log.

Dagster, the supervisor and the definitions are imported when a run starts: every command builds the
parser, and the commands that only read the lake should not wait for them.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass, field

from butterquant_dagster.commands._errors import CliError, RunFailed
from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.core import calendar, progress, settings


@dataclass
class RunSummary:
    run_id: str
    success: bool
    job: str
    first_session: str
    last_session: str
    sessions: int
    data_dir: str
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


class ProgressBar:
    """One updating line per task on a terminal; plain lines when piped. Each line says how
    far (done / total), how fast (per second since the task's first report) and how long
    is left at that pace."""

    def __init__(self, stream=None, clock=time.monotonic):
        # The stream of the moment, not of import time (tests and callers swap sys.stderr).
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.clock = clock
        self._last: dict[str, int] = {}
        self._started: dict[str, tuple[float, int]] = {}

    def pace(self, task: str, done: int, total: int) -> str:
        """``3.2/s, about 1m 17s left`` (or ``2m 05s each`` for slow steps) once the task
        has moved, else ``""``."""
        now = self.clock()
        started, first = self._started.setdefault(task, (now, done))
        elapsed, moved = now - started, done - first
        if moved <= 0 or elapsed <= 0:
            return ""
        rate = moved / elapsed
        speed = f"{rate:.1f}/s" if rate >= 1 else f"{_duration(1 / rate)} each"
        if done >= total:
            return f"{speed}, done in {_duration(elapsed)}"
        return f"{speed}, about {_duration((total - done) / rate)} left"

    def __call__(self, task: str, done: int, total: int, label: str) -> None:
        pace = self.pace(task, done, total)
        pace = f" ({pace})" if pace else ""
        if self.tty:
            width = 30
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if done == total else ""
            self.stream.write(f"\r{task:<14} [{bar}] {done:>5}/{total} {label}{pace}{end}")
            self.stream.flush()
            return
        step = max(1, total // 10)
        if done == total or done - self._last.get(task, 0) >= step:
            self._last[task] = done
            self.stream.write(f"{task}: {done}/{total} ({label}){pace}\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def succeeded(summary: RunSummary) -> RunSummary:
    """``summary`` when its run succeeded; else ``RunFailed`` (the command ends, exit 1)."""
    if not summary.success:
        raise RunFailed(summary)
    return summary


def materialize_market(first: dt.date, last: dt.date, *, show_progress: bool) -> RunSummary:
    """Materialize the market snapshot for every session in [first, last] in one run."""
    from butterquant_dagster.defs.market.automation import MARKET_JOB

    return materialize(MARKET_JOB, first, last, show_progress=show_progress)


def materialize(
    job_name: str,
    first: dt.date | None,
    last: dt.date | None,
    *,
    show_progress: bool,
    run_config: dict | None = None,
) -> RunSummary:
    """Run ``job_name`` for every session in [first, last] in one run of the instance
    (``first`` None: a job of unpartitioned assets); ``run_config`` configures its ops."""
    instance = prepare_instance()
    from butterquant_dagster import runs, supervisor
    from butterquant_dagster.definitions import build_definitions

    job = build_definitions().resolve_job_def(job_name)
    unsubscribe = progress.subscribe(ProgressBar()) if show_progress else (lambda: None)
    try:
        outcome = supervisor.execute(
            instance,
            job,
            tags={
                **(runs.partition_range_tags(first.isoformat(), last.isoformat()) if first else {}),
                # Who runs it: a later command can tell when this process is gone.
                **runs.launch_tags(),
            },
            # The full log stays in the instance (the UI); the terminal gets the summary.
            run_config={
                **(run_config or {}),
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            wait_limit=slot_wait_seconds(),
        )
    finally:
        unsubscribe()
    span = {
        "job": job_name,
        "first_session": first.isoformat() if first else "",
        "last_session": last.isoformat() if last else "",
        "sessions": len(calendar.sessions(first, last)) if first else 0,
        "data_dir": str(settings.data_root()),
    }
    result = outcome.result
    if result is None:  # the run was canceled before Dagster returned a result
        failures = [outcome.gave_up or "the run was canceled"]
        return RunSummary(run_id=outcome.run_id, success=False, **span, failures=failures)
    return RunSummary(
        run_id=result.run_id,
        success=result.success and not outcome.gave_up,
        **span,
        failures=([outcome.gave_up] if outcome.gave_up else []) + step_failures(result),
        failed_checks=failed_checks(result),
    )


def step_failures(result) -> list[str]:
    """``step: message`` of every failed step of an ``ExecuteInProcessResult``."""
    from dagster import DagsterEventType

    from butterquant_dagster.run_errors import error_text

    return [
        f"{event.step_key}: {error_text(event.event_specific_data.error)}"
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_FAILURE
    ]


def failed_checks(result) -> list[str]:
    """``asset:check`` of every asset check of the run that did not pass."""
    return [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]


def slot_wait_seconds() -> float:
    try:
        return settings.slot_wait_seconds()
    except ValueError as exc:
        raise CliError(str(exc)) from exc
