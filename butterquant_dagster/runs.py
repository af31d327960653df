"""Runs whose process is gone, and the pool slots they still hold.

The ``butterquant`` command executes its runs in its own process (``execute_in_process``),
so no run launcher watches them: Dagster's run monitoring asks the launcher whether a run's
worker is alive, and the default launcher cannot tell for a run it did not launch. When the
command is killed (``kill -9``, the OOM killer) its run stays STARTED forever and keeps the
slot of the pool its step held (``ledger``): every later run of that pool waits for ever.

So every run the command launches carries who launched it (host, pid, process start time;
:mod:`butterquant_dagster.core.processes`), and this module, with the instance's own APIs,
finds the runs whose launcher is gone, marks them failed and frees their slots. The command
does so whenever it opens the instance and while a run of its own waits for a slot; the
``clear_stale_runs`` sensor does it in the daemon; ``butterquant runs --clear-stale`` does
it by hand.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from butterquant_dagster.core.processes import ProcessIdentity, current, is_alive

TAG_HOST = "butterquant/host"
TAG_PID = "butterquant/pid"
TAG_PID_STARTED = "butterquant/pid_started"
TAG_LAUNCHED_BY = "butterquant/launched_by"

IN_PROGRESS = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
RECOVERY_COMMAND = "butterquant runs --clear-stale"

# The run tags by which one run materializes a range of partitions: Dagster's documented
# protocol for such runs (the launchpad sets them with "Edit tags"); the constants Dagster
# itself names them by are not part of its public API.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def launch_tags() -> dict[str, str]:
    """The tags that let a later process tell whether this one is still alive."""
    me = current()
    return {
        TAG_LAUNCHED_BY: "cli",
        TAG_HOST: me.host,
        TAG_PID: str(me.pid),
        TAG_PID_STARTED: me.started,
    }


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """The tags of one run over the partitions ``first`` .. ``last`` (keys, inclusive)."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}


def launcher_of(tags: dict[str, str]) -> ProcessIdentity | None:
    if TAG_PID not in tags:
        return None
    try:
        pid = int(tags[TAG_PID])
    except ValueError:
        return None
    return ProcessIdentity(tags.get(TAG_HOST, ""), pid, tags.get(TAG_PID_STARTED, ""))


@dataclass(frozen=True)
class RunInfo:
    """An unfinished run and whether its process still runs (None: cannot be told here)."""

    run_id: str
    job: str
    status: str
    started_at: dt.datetime | None
    launcher: ProcessIdentity | None
    alive: bool | None

    @property
    def stale(self) -> bool:
        return self.alive is False

    def describe(self) -> str:
        who = (
            f"pid {self.launcher.pid} on {self.launcher.host}"
            if self.launcher
            else "launched by the daemon or UI"
        )
        since = f", started {self.started_at:%Y-%m-%d %H:%M:%S %Z}" if self.started_at else ""
        state = {True: "", False: ", process gone", None: ""}[self.alive]
        return f"run {self.run_id} ({self.job}, {who}{since}{state})"

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "status": self.status,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "host": self.launcher.host if self.launcher else None,
            "pid": self.launcher.pid if self.launcher else None,
            "process_alive": self.alive,
            "stale": self.stale,
        }


def _info(record) -> RunInfo:
    run = record.dagster_run
    launcher = launcher_of(dict(run.tags))
    started = record.start_time or record.create_timestamp.timestamp()
    return RunInfo(
        run_id=run.run_id,
        job=run.job_name,
        status=run.status.value,
        started_at=dt.datetime.fromtimestamp(started).astimezone() if started else None,
        launcher=launcher,
        alive=is_alive(launcher) if launcher else None,
    )


def in_progress(instance: DagsterInstance) -> list[RunInfo]:
    """Every unfinished run of the instance, oldest first."""
    records = instance.get_run_records(filters=RunsFilter(statuses=IN_PROGRESS))
    return sorted((_info(r) for r in records), key=lambda i: i.started_at or dt.datetime.min)


def run_info(instance: DagsterInstance, run_id: str) -> RunInfo | None:
    record = instance.get_run_record_by_id(run_id)
    return _info(record) if record else None


def mark_failed(instance: DagsterInstance, run_id: str, reason: str) -> None:
    """Mark an unfinished run failed (a finished one keeps its status) and free its slots."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status not in FINISHED:
        instance.report_run_failed(run, message=reason)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def orphaned_slot_runs(instance: DagsterInstance) -> list[str]:
    """Runs that hold or wait for a pool slot although they are finished (or deleted)."""
    orphans = []
    for run_id in sorted(instance.event_log_storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is None or run.status in FINISHED:
            orphans.append(run_id)
    return orphans


def clear_stale(instance: DagsterInstance) -> list[RunInfo]:
    """Mark failed every unfinished run whose process is gone, and free every slot held by
    a run that is no longer running; the runs cleared."""
    cleared = []
    for info in in_progress(instance):
        if info.stale:
            mark_failed(
                instance,
                info.run_id,
                f"The process that ran this run (pid {info.launcher.pid} on "
                f"{info.launcher.host}) is gone (killed or crashed); marked failed and its "
                "pool slots freed by butterquant.",
            )
            cleared.append(info)
    for run_id in orphaned_slot_runs(instance):
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return cleared


@dataclass(frozen=True)
class Wait:
    """A step of a run waiting for a slot of ``pool``, and the runs that hold the slots."""

    pool: str
    step_key: str
    waiting_since: dt.datetime
    holders: list[tuple[RunInfo | None, str, dt.datetime | None]]  # run, its step, since

    def describe(self) -> str:
        if not self.holders:
            return f"waiting for pool '{self.pool}' ({self.step_key}): no free slot"
        parts = []
        for info, step, since in self.holders:
            held = f" since {since.astimezone():%H:%M:%S}" if since else ""
            parts.append(f"{info.describe() if info else 'a deleted run'}, step {step}{held}")
        return f"waiting for pool '{self.pool}' ({self.step_key}): held by " + "; ".join(parts)


def waits_of(instance: DagsterInstance, run_id: str) -> list[Wait]:
    """The pool slots ``run_id`` waits for right now (empty when it waits for none)."""
    storage = instance.event_log_storage
    waits = []
    for pool in sorted(storage.get_concurrency_keys()):
        pool_info = storage.get_concurrency_info(pool)
        pending = pool_info.pending_steps
        mine = [p for p in pending if p.run_id == run_id and p.assigned_timestamp is None]
        if not mine:
            continue
        assigned = {
            (p.run_id, p.step_key): p.assigned_timestamp
            for p in pool_info.pending_steps
            if p.assigned_timestamp is not None
        }
        holders = [
            (run_info(instance, s.run_id), s.step_key, assigned.get((s.run_id, s.step_key)))
            for s in pool_info.claimed_slots
            if s.run_id != run_id
        ]
        for step in mine:
            waits.append(Wait(pool, step.step_key, step.enqueued_timestamp, holders))
    return waits
