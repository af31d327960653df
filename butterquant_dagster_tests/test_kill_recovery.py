"""`kill -9` a real command at each step boundary; the rerun heals without a hand on it.

``execute`` is killed by its own kill points (``BUTTERQUANT_KILL_AT``, core/faults.py) before
and after intent, send, acknowledgement, fill record and marks; ``backfill`` and ``train``
from outside, once their run has started and again once it has written. Each rerun must end
in bounded time with no stale run, no held pool slot, no orphaned process, and for trading
0 duplicate orders, 0 lost fills and a ledger that is the broker's books.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from butterquant_dagster_tests.cli_processes import (
    SESSION,
    assert_ledger_equals_broker,
    build_traded_root,
    copy_root,
    instance_state,
    prepared_root,
    processes_mentioning,
    run,
    start,
    wait_until,
)

EXECUTE_POINTS = (
    "before_intent",
    "after_planning",
    "after_sending",
    "after_accepted",
    "before_recording_fill",
    "after_recording_fill",
    "before_marks",
    "after_marks",
)
RERUN_BOUND_SECONDS = 120.0
BACKFILL = ("2025-03-03", "2025-05-30")  # 62 sessions
REGIME_HISTORY = ("2023-01-03", "2025-05-30")  # enough bars for a point-in-time regime


def figure(**values) -> None:
    """Append a measurement for the report when BUTTERQUANT_TEST_FIGURES names a file."""
    path = os.environ.get("BUTTERQUANT_TEST_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps(values) + "\n")


def assert_nothing_left(root: Path) -> None:
    state = instance_state(root)
    assert not state["unfinished"], f"runs left unfinished: {state['unfinished']}"
    assert not state["slots"], f"pool slots still held: {state['slots']}"
    assert not processes_mentioning(str(root)), processes_mentioning(str(root))


@pytest.fixture(scope="session")
def traded(tmp_path_factory) -> Path:
    return prepared_root(tmp_path_factory, "traded", build_traded_root)


@pytest.fixture(scope="session")
def reference_root(traded, tmp_path_factory) -> Path:
    """SESSION traded once, never killed."""
    root = copy_root(traded, tmp_path_factory.mktemp("reference"))
    code, _, err, _ = run(root, "execute", "--date", SESSION, "--json")
    assert code == 0, err
    return root


@pytest.fixture(scope="session")
def reference_books(reference_root) -> dict:
    """What every healed rerun must arrive at."""
    return assert_ledger_equals_broker(reference_root)


def test_a_fill_the_ledger_has_not_heard_of_is_held_before_the_session_is_planned(
    traded, reference_root
):
    """The eve's orders were still working when its run ended (no closing chain yet) and
    filled at its close: planning the next session must count them as held, or it buys the
    same underlying a second time."""
    with duckdb.connect(str(traded / "ledger.duckdb"), read_only=True) as db:
        working = db.execute(
            "SELECT ticker FROM orders WHERE status = 'submitted' AND session < ?", [SESSION]
        ).fetchall()
    assert working, "the prepared root should hold the eve's orders still working"
    with duckdb.connect(str(reference_root / "ledger.duckdb"), read_only=True) as db:
        still_working = db.execute(
            "SELECT order_ref FROM orders WHERE status = 'submitted' AND session < ?", [SESSION]
        ).fetchall()
        opened = db.execute(
            "SELECT ticker, COUNT(*) FROM orders WHERE intent = 'open' AND filled > 0 "
            "GROUP BY ticker HAVING COUNT(*) > 1"
        ).fetchall()
        bought_eve = {
            t
            for (t,) in db.execute(
                "SELECT ticker FROM orders WHERE intent = 'open' AND filled > 0 AND session < ?",
                [SESSION],
            ).fetchall()
        }
        entered_today = {
            t
            for (t,) in db.execute(
                "SELECT ticker FROM orders WHERE intent = 'open' AND session = ?", [SESSION]
            ).fetchall()
        }
    assert not still_working
    assert bought_eve, "the eve's entries should have filled at its close"
    assert not bought_eve & entered_today, (bought_eve, entered_today)
    assert not opened, f"two filled entries in one underlying: {opened}"


@pytest.mark.parametrize("point", EXECUTE_POINTS)
def test_execute_killed_at_a_step_boundary_heals_on_the_rerun(
    traded, reference_books, tmp_path, point
):
    root = copy_root(traded, tmp_path)
    code, _, err, _ = run(root, "execute", "--date", SESSION, BUTTERQUANT_KILL_AT=point)
    assert code == -signal.SIGKILL, f"the kill point {point} was never reached:\n{err[-2000:]}"
    orphans = processes_mentioning(str(root))
    code, out, err, seconds = run(root, "execute", "--date", SESSION, "--json")
    assert code == 0, err[-3000:]
    assert "cleared run" in err  # the killed run, marked failed, its slot freed
    assert seconds < RERUN_BOUND_SECONDS
    books = assert_ledger_equals_broker(root)
    # Every order of a session that was never killed went out (once), and no other entry.
    sent = {o[0] for o in books["broker_orders"]}
    assert {o[0] for o in reference_books["broker_orders"]} <= sent, books
    assert json.loads(out)["session"] == SESSION
    assert_nothing_left(root)
    assert not orphans, orphans
    figure(command="execute", point=point, survived=True, rerun_seconds=round(seconds, 1))


def kill_when(process, ready, delay: float = 0.0, timeout: float = 180.0) -> bool:
    """SIGKILL ``process`` (only it, as the OOM killer would) ``delay`` seconds after
    ``ready()``; False when it ended first."""
    if not wait_until(lambda: process.poll() is not None or ready(), timeout):
        raise AssertionError("the moment to kill never came")
    time.sleep(delay)
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    return True


def run_ids(root: Path) -> set[str]:
    return set(instance_state(root)["statuses"]) if (root / "dagster").exists() else set()


def new_run_started(root: Path, known: set[str]) -> bool:
    """A run other than ``known`` ones is STARTED (a killed run stays STARTED until the next
    command clears it, so old runs do not count)."""
    try:
        state = instance_state(root)
    except Exception:  # the instance is being created
        return False
    return any(s == "STARTED" and r not in known for r, s in state["statuses"].items())


def bar_partitions(root: Path) -> int:
    directory = root / "lake" / "daily_bars"
    return len(list(directory.glob("*.parquet"))) if directory.exists() else 0


def test_backfill_killed_twice_heals_on_the_rerun(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    args = ("backfill", "--start", BACKFILL[0], "--end", BACKFILL[1], "--json")
    kills = 0
    process = start(root, *args)
    kills += kill_when(process, lambda: new_run_started(root, set()))
    before = bar_partitions(root)
    process = start(root, *args)
    kills += kill_when(process, lambda: bar_partitions(root) >= before + 5)
    code, out, err, seconds = run(root, *args)
    assert code == 0, err[-3000:]
    assert "cleared run" in err
    assert seconds < RERUN_BOUND_SECONDS
    result = json.loads(out)
    sessions = result["sessions"]
    assert bar_partitions(root) == sessions
    with duckdb.connect() as db:
        rows, distinct = db.execute(
            "SELECT count(*), count(DISTINCT (symbol, session)) FROM read_parquet(?)",
            [str(root / "lake" / "daily_bars" / "*.parquet")],
        ).fetchone()
    assert rows == distinct == sessions * 2  # two tickers, no bar twice
    assert_nothing_left(root)
    figure(command="backfill", kills=kills, attempted=2, rerun_seconds=round(seconds, 1))
    assert kills == 2


def build_market_history(root: Path) -> None:
    code, _, err, _ = run(
        root,
        "backfill",
        "--assets",
        "bars",
        "--start",
        REGIME_HISTORY[0],
        "--end",
        REGIME_HISTORY[1],
    )
    assert code == 0, err[-3000:]


def test_train_killed_twice_heals_on_the_rerun(tmp_path_factory, tmp_path):
    base = prepared_root(tmp_path_factory, "market-history", build_market_history)
    root = copy_root(base, tmp_path)
    args = ("train", "--model", "regime", "--force", "--json")
    kills = 0
    for delay in (0.0, 1.0):  # as the run starts; then inside its regime step
        known = run_ids(root)
        process = start(root, *args)
        kills += kill_when(process, lambda k=known: new_run_started(root, k), delay)

    code, out, err, seconds = run(root, *args)
    assert code == 0, err[-3000:]
    assert seconds < RERUN_BOUND_SECONDS
    result = json.loads(out)
    assert result["success"] and result["runs"][-1]["success"]
    # The regime model in the lake is the one the healed run fitted, not a killed run's.
    fitted = pd.read_parquet(root / "lake" / "regime_model" / "current.parquet")
    assert list(fitted["run_id"]) == [result["runs"][-1]["run_id"]]
    assert_nothing_left(root)
    figure(command="train", kills=kills, attempted=2, rerun_seconds=round(seconds, 1))
    assert kills == 2
