"""A run whose process is gone never blocks the next one, and a wait is never silent.

The holder of the ``ledger`` slot is staged in the instance (a STARTED run with a claimed
slot, its process a real ``sleep``), so each case takes seconds: the waiting command is a
real ``butterquant execute`` subprocess on an otherwise empty data root.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
from dagster import DagsterRun, DagsterRunStatus

from butterquant_dagster import runs
from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.core import processes
from butterquant_dagster_tests.cli_processes import instance_state, run, start, wait_until

SESSION = "2025-06-03"
LEDGER = "ledger"


@pytest.fixture
def instance(isolated_env):
    return prepare_instance()


@pytest.fixture
def sleeper():
    """A live process to stand for a run's launcher."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def stage_holder(instance, pid: int, started=None, host=None, *, claim: bool = True):
    """A STARTED run of ``pid`` holding the ledger slot, as a command in its orders step."""
    run_id = str(uuid.uuid4())
    tags = {
        runs.TAG_LAUNCHED_BY: "cli",
        runs.TAG_HOST: host or socket.gethostname(),
        runs.TAG_PID: str(pid),
        runs.TAG_PID_STARTED: processes.start_token(pid) if started is None else started,
    }
    instance.add_run(
        DagsterRun(
            job_name="execution_job", run_id=run_id, status=DagsterRunStatus.STARTED, tags=tags
        )
    )
    if claim:
        instance.event_log_storage.initialize_concurrency_limit_to_default(LEDGER)  # as a run does
        status = instance.event_log_storage.claim_concurrency_slot(LEDGER, run_id, "orders")
        assert status.is_claimed
    return run_id


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_process_is_alive_only_under_its_own_start_time(sleeper):
    me = processes.current()
    assert processes.is_alive(me) is True
    assert processes.is_alive(processes.ProcessIdentity(me.host, dead_pid(), "1")) is False
    reused = processes.ProcessIdentity(me.host, sleeper.pid, "12345")  # another start time
    assert processes.is_alive(reused) is False
    assert processes.is_alive(processes.ProcessIdentity("another-host", sleeper.pid, "")) is None


def test_clearing_fails_dead_runs_frees_their_slots_and_spares_live_ones(instance, sleeper):
    dead = stage_holder(instance, dead_pid())
    alive = stage_holder(instance, sleeper.pid, claim=False)
    elsewhere = stage_holder(instance, 4242, started="1", host="another-host", claim=False)
    cleared = runs.clear_stale(instance)
    assert [c.run_id for c in cleared] == [dead]
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(alive).status == DagsterRunStatus.STARTED
    assert instance.get_run_by_id(elsewhere).status == DagsterRunStatus.STARTED
    assert not instance.event_log_storage.get_concurrency_info(LEDGER).claimed_slots


def test_a_command_frees_the_slot_of_a_killed_run_and_finishes(instance):
    holder = stage_holder(instance, dead_pid())
    code, _, err, seconds = run(processes_root(), "execute", "--date", SESSION)
    # It fails for want of a scan, which is the point: it got past the slot, in seconds.
    assert code == 1 and "scan_rankings" in err, err
    assert f"cleared run {holder}" in err
    state = instance_state(processes_root())
    assert state["statuses"][holder] == "FAILURE" and not state["slots"]
    assert seconds < 60


def processes_root():
    from butterquant_dagster.core import settings

    return settings.data_root()


def test_a_wait_is_reported_within_seconds_and_gives_up_with_the_recovery(instance, sleeper):
    holder = stage_holder(instance, sleeper.pid)
    process = start(
        processes_root(), "execute", "--date", SESSION, BUTTERQUANT_SLOT_WAIT_SECONDS="6"
    )
    _, err = process.communicate(timeout=90)
    assert process.returncode == 1, err
    assert f"waiting for pool 'ledger' (target_orders): held by run {holder}" in err
    assert f"execution_job, pid {sleeper.pid}" in err and "since" in err
    assert "gave up after 6 s (BUTTERQUANT_SLOT_WAIT_SECONDS=6)" in err
    assert runs.RECOVERY_COMMAND in err
    state = instance_state(processes_root())
    mine = [r for r, s in state["statuses"].items() if r != holder]
    assert [state["statuses"][r] for r in mine] == ["CANCELED"]
    assert state["slots"] == [(LEDGER, holder)]  # the live holder keeps its slot


def test_a_holder_that_dies_during_the_wait_is_cleared_and_the_wait_ends(instance, sleeper):
    holder = stage_holder(instance, sleeper.pid)
    process = start(processes_root(), "execute", "--date", SESSION)
    assert wait_until(lambda: _waiting(processes_root(), holder), timeout=60)
    sleeper.kill()
    sleeper.wait()
    _, err = process.communicate(timeout=60)
    assert f"cleared run {holder}" in err and "scan_rankings" in err, err


def _waiting(root, holder) -> bool:
    state = instance_state(root)
    return any(status == "STARTED" for r, status in state["statuses"].items() if r != holder)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_waiting_command_within_seconds_with_its_run_canceled(
    instance, sleeper, stop
):
    holder = stage_holder(instance, sleeper.pid)
    process = start(processes_root(), "execute", "--date", SESSION)
    assert wait_until(lambda: _waiting(processes_root(), holder), timeout=60)
    time.sleep(1.5)  # well inside the wait
    sent = time.monotonic()
    process.send_signal(stop)
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + stop, err
    assert f"stopped by {signal.Signals(stop).name}" in err
    state = instance_state(processes_root())
    assert {s for r, s in state["statuses"].items() if r != holder} == {"CANCELED"}
    assert state["slots"] == [(LEDGER, holder)]
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)  # nothing of its group is left


def test_runs_lists_stale_runs_and_clears_them(instance, sleeper, capsys):
    dead = stage_holder(instance, dead_pid())
    alive = stage_holder(instance, sleeper.pid, claim=False)
    assert main(["runs", "--json"]) == EXIT_OK
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["unfinished"]}
    assert listed[dead]["stale"] and not listed[alive]["stale"]
    assert listed[dead]["slots"] == ["pool 'ledger' (orders)"]
    assert main(["runs"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "STALE" in text and runs.RECOVERY_COMMAND in text
    assert main(["runs", "--clear-stale"]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"cleared run {dead}" in text and "STALE" not in text
    assert instance.get_run_by_id(dead).status == DagsterRunStatus.FAILURE
    assert main(["runs", "--clear", alive]) == 2  # alive: refused, named
    assert f"kill {sleeper.pid}" in capsys.readouterr().err
