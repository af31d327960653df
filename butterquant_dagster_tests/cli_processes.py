"""Real ``butterquant`` processes for the crash and concurrency tests.

Crash safety is proven only by crashing a real process, so these helpers start the command
as a subprocess against a data root, kill it (``BUTTERQUANT_KILL_AT`` or ``SIGKILL`` from
outside), and read what it left: the ledger, the paper broker's state, the instance's runs
and pool slots, and the processes still alive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from filelock import FileLock

# Two tickers and loose floors: the synthetic rankings give entries (and later exits).
ENVIRONMENT = {
    "BUTTERQUANT_UNIVERSE_SIZE": "2",
    "BUTTERQUANT_AI_TRACK_SLOTS": "0",
    "BUTTERQUANT_MIN_EXPECTED_YIELD": "-1000000000",
    "BUTTERQUANT_MAX_SPREAD_PCT": "10",
    "BUTTERQUANT_MIN_OPEN_INTEREST": "0",
    "OMP_NUM_THREADS": "1",
}
FIRST_SCAN, TRADED, SECOND_SCAN = "2025-06-02", "2025-06-03", "2025-06-03"
SESSION = "2025-06-04"  # the session the crash tests trade: it has exits and entries
COMMAND_TIMEOUT = 240.0


def environment(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUTTERQUANT_")}
    env.pop("DAGSTER_HOME", None)
    env.update(ENVIRONMENT)
    env.update(BUTTERQUANT_DATA_DIR=str(root), DAGSTER_HOME=str(root / "dagster"))
    env.update(extra)
    return env


def start(root: Path, *args: str, **extra: str) -> subprocess.Popen:
    """``butterquant *args`` on ``root``, started in its own session (a group to inspect)."""
    return subprocess.Popen(
        [sys.executable, "-m", "butterquant_dagster.cli", *args],
        cwd=root.parent,  # no ./.env of the working tree
        env=environment(root, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run(root: Path, *args: str, timeout: float = COMMAND_TIMEOUT, **extra: str):
    """Run the command to its end; (exit code, stdout, stderr, seconds)."""
    began = time.monotonic()
    process = start(root, *args, **extra)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(
            f"butterquant {' '.join(args)} did not end within {timeout:.0f} s\n{err[-3000:]}"
        ) from None
    return process.returncode, out, err, time.monotonic() - began


def prepared_root(tmp_path_factory, name: str, build) -> Path:
    """A data root built once per test session (shared by the xdist workers) and copied
    for each test, so a test can crash its own copy."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    base = shared / f"prepared-{name}" / "data"
    with FileLock(str(shared / f"prepared-{name}.lock")):
        if not (base.parent / "done").exists():
            shutil.rmtree(base.parent, ignore_errors=True)
            base.mkdir(parents=True)
            build(base)
            (base.parent / "done").touch()
    return base


def copy_root(base: Path, target: Path) -> Path:
    root = target / "data"
    shutil.copytree(base, root)
    return root


def build_traded_root(root: Path) -> None:
    """Scanned through SESSION's eve, one session traded, SESSION's own market present (the
    paper broker fills against it at once): SESSION has exits, entries, fills and marks."""
    for args in (
        ("scan", "--date", FIRST_SCAN, "--json"),
        ("execute", "--date", TRADED, "--json"),
        ("scan", "--date", SECOND_SCAN, "--json"),
        ("backfill", "--start", SESSION, "--end", SESSION, "--json"),
    ):
        code, _, err, _ = run(root, *args)
        assert code == 0, f"{args}: {err[-3000:]}"


# ----------------------------------------------------------------------------- what is left
def ledger_and_broker(root: Path) -> dict:
    """Orders and fills as the ledger and as the paper broker know them."""
    with duckdb.connect(str(root / "ledger.duckdb"), read_only=True) as db:
        ledger_orders = db.execute(
            "SELECT order_ref, status, filled FROM orders WHERE status <> 'blocked'"
        ).fetchall()
        ledger_fills = [r[0] for r in db.execute("SELECT exec_id FROM fills").fetchall()]
    broker_path = root / "paper_broker.duckdb"
    broker_orders, broker_fills = [], []
    if broker_path.exists():
        with duckdb.connect(str(broker_path), read_only=True) as db:
            broker_orders = db.execute("SELECT order_ref, status, filled FROM orders").fetchall()
            broker_fills = [r[0] for r in db.execute("SELECT exec_id FROM executions").fetchall()]
    return {
        "ledger_orders": sorted(ledger_orders),
        "broker_orders": sorted(broker_orders),
        "ledger_fills": sorted(ledger_fills),
        "broker_fills": sorted(broker_fills),
    }


# A DAY order that ended unfilled: the paper broker says cancelled, the ledger (which no
# longer sees it listed the next session) says expired. Both mean done, nothing filled.
_ENDED_UNFILLED = {"cancelled": "ended", "expired": "ended"}


def _comparable(orders: list[tuple]) -> list[tuple]:
    return sorted(
        (ref, _ENDED_UNFILLED.get(status, status), filled) for ref, status, filled in orders
    )


def assert_ledger_equals_broker(root: Path) -> dict:
    """0 duplicate orders, 0 lost fills, the ledger's orders and fills are the broker's."""
    books = ledger_and_broker(root)
    refs = [o[0] for o in books["broker_orders"]]
    assert len(refs) == len(set(refs)), f"an order was sent twice: {refs}"
    assert _comparable(books["ledger_orders"]) == _comparable(books["broker_orders"]), books
    assert len(books["broker_fills"]) == len(set(books["broker_fills"]))
    assert books["ledger_fills"] == books["broker_fills"], "a fill was lost or doubled"
    return books


def instance_state(root: Path) -> dict:
    """Unfinished runs and held pool slots in the instance of ``root``."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    from butterquant_dagster.commands._instance import instance_lock

    home = root / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    with instance_lock(home):  # never create its storages while a command does
        instance = DagsterInstance.from_config(str(home))
    with instance:
        unfinished = instance.get_run_records(
            filters=RunsFilter(
                statuses=[
                    DagsterRunStatus.NOT_STARTED,
                    DagsterRunStatus.STARTING,
                    DagsterRunStatus.STARTED,
                    DagsterRunStatus.CANCELING,
                ]
            )
        )
        storage = instance.event_log_storage
        slots = [
            (pool, slot.run_id)
            for pool in storage.get_concurrency_keys()
            for slot in storage.get_concurrency_info(pool).claimed_slots
        ]
        statuses = {
            r.dagster_run.run_id: r.dagster_run.status.value for r in instance.get_run_records()
        }
    return {
        "unfinished": [r.dagster_run.run_id for r in unfinished],
        "slots": slots,
        "statuses": statuses,
    }


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (orphans after a kill)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text()
        except OSError:
            continue
        if state[state.rfind(")") + 2 :].startswith("Z"):
            continue
        line = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in line:
            found.append(f"{entry.name}: {line}")
    return found


def wait_until(predicate, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())
