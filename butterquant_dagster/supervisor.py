"""Running one job in the command's process without ever stopping in silence.

``execute_in_process`` blocks while a step waits for a pool slot, prints nothing at the
command's log level, and, because Dagster only notes a signal between steps, ignores SIGTERM
and Ctrl-C for as long as it waits. So the run executes in a worker thread and the main
thread supervises it:

* it says on stderr, within seconds, which pool the run waits for, which run holds it (job,
  pid, since when), and it frees the slot at once if that run's process is gone;
* after ``BUTTERQUANT_SLOT_WAIT_SECONDS`` it gives up: the run is canceled and the command
  ends with the holder and the command that recovers;
* on SIGTERM or SIGINT (the CLI turns both into ``KeyboardInterrupt`` in the main thread) it
  marks the run canceling and interrupts the worker with Dagster's own
  ``DagsterExecutionInterruptedError``, so the run ends CANCELED through Dagster's normal
  path; if the worker does not stop within the grace period the run is marked canceled, its
  slots freed, and the process exits (which is no worse than the ``kill -9`` the trading
  steps are built to survive).
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from dagster import DagsterExecutionInterruptedError

from butterquant_dagster import runs

POLL_SECONDS = 0.25
FIRST_NOTICE_SECONDS = 1.0  # a wait shorter than this is normal hand-over between steps
REPEAT_NOTICE_SECONDS = 30.0
STOP_GRACE_SECONDS = 6.0  # the CLI's hard deadline after a signal is a few seconds later


@dataclass
class Outcome:
    result: object | None  # the ExecuteInProcessResult, None when the worker raised
    run_id: str
    gave_up: str | None = None  # why the supervisor canceled the run, for the terminal


def _interrupt_thread(thread: threading.Thread) -> None:
    """Raise Dagster's execution interrupt inside ``thread`` (the run's worker).

    Dagster notes signals only in the main thread and, while a step waits for a slot, never
    looks at them; there is no public API to cancel an in-process run from outside. CPython's
    ``PyThreadState_SetAsyncExc`` delivers the exception at the worker's next bytecode, where
    Dagster handles it as an interruption (the run ends CANCELED when it is marked canceling).
    """
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(DagsterExecutionInterruptedError)
    )


def _say(message: str) -> None:
    print(f"butterquant: {message}", file=sys.stderr, flush=True)


# What the CLI's hard-exit deadline must do before it ends the process: cancel the run.
_ACTIVE: dict[str, object] = {}


def force_cancel_active(reason: str) -> None:
    """Mark the run in flight (if any) canceled and free its slots; the process is about to
    end without its worker finishing."""
    instance, run_id = _ACTIVE.get("instance"), _ACTIVE.get("run_id")
    if instance is None or run_id is None:
        return
    try:
        _mark_canceled(instance, run_id, reason)
    except Exception as exc:  # the process ends anyway; the next command clears it as stale
        _say(f"could not mark run {run_id} canceled ({exc}); the next command will")


def _mark_canceled(instance, run_id: str, reason: str) -> None:
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status not in runs.FINISHED:
        instance.report_run_canceled(run, message=reason)
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def execute(instance, job, *, tags: dict, run_config: dict, wait_limit: float) -> Outcome:
    """Execute ``job`` in process under supervision (see the module docstring)."""
    run_id = str(uuid.uuid4())
    box: dict[str, object] = {}

    def work() -> None:
        try:
            box["result"] = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags=tags,
                run_config=run_config,
                raise_on_error=False,
            )
        except BaseException as exc:  # reported by the main thread
            box["error"] = exc

    worker = threading.Thread(target=work, name=f"run-{run_id[:8]}", daemon=True)
    _ACTIVE.update(instance=instance, run_id=run_id)
    gave_up = None
    try:
        worker.start()
        try:
            gave_up = _watch(instance, run_id, worker, wait_limit)
        except KeyboardInterrupt:
            _stop(instance, run_id, worker, "stopped by a signal (SIGTERM or Ctrl-C)")
            _say(f"run {run_id} ({job.name}) canceled")
            raise
        if gave_up:
            _stop(instance, run_id, worker, gave_up)
    finally:
        _ACTIVE.clear()
    if "error" in box and not gave_up:
        raise box["error"]  # type: ignore[misc]
    return Outcome(box.get("result"), run_id, gave_up)


def _watch(instance, run_id: str, worker: threading.Thread, wait_limit: float) -> str | None:
    """Wait for the worker; report and bound the time it waits for a slot. The reason to
    give up, or None when the run ended by itself."""
    waiting_since = None
    last_notice = 0.0
    last_text = ""
    while worker.is_alive():
        worker.join(POLL_SECONDS)
        if not worker.is_alive():
            return None
        waits = runs.waits_of(instance, run_id)
        if not waits:
            waiting_since = None
            continue
        now = time.monotonic()
        waiting_since = waiting_since or now
        waited = now - waiting_since
        if waited < FIRST_NOTICE_SECONDS:
            continue
        if any(info and info.stale for w in waits for info, _, _ in w.holders):
            for info in runs.clear_stale(instance):
                _say(f"cleared {info.describe()}: marked failed, its pool slots freed")
            continue
        text = "; ".join(w.describe() for w in waits)
        if text != last_text or now - last_notice >= REPEAT_NOTICE_SECONDS:
            _say(f"{text} (waited {waited:.0f} s of {wait_limit:.0f} s)")
            last_text, last_notice = text, now
        if waited >= wait_limit:
            return (
                f"gave up after {waited:.0f} s (BUTTERQUANT_SLOT_WAIT_SECONDS={wait_limit:g}) "
                f"{text}. If that run's process is gone, `{runs.RECOVERY_COMMAND}` frees its "
                "slot; if it is alive, wait for it or stop it (`butterquant runs` shows it), "
                "then run this command again."
            )
    return None


def _stop(instance, run_id: str, worker: threading.Thread, reason: str) -> None:
    """Cancel the run: Dagster's path when the worker stops in time, by hand otherwise."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.status not in runs.FINISHED:
        instance.report_run_canceling(run, message=reason)
    if worker.is_alive():
        _interrupt_thread(worker)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while worker.is_alive() and time.monotonic() < deadline:
        try:
            worker.join(POLL_SECONDS)
        except KeyboardInterrupt:
            break  # a second signal: stop waiting for the worker
    _mark_canceled(instance, run_id, reason)
