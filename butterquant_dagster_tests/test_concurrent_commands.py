"""backfill, scan, train, report daily and execute at once on one data root, three rounds.

They share the lake, the DuckDB ledger and broker files and the instance (its SQLite run
storage and the ``ledger`` pool). Every command must end on its own, none may fail on a lock,
and the trading books must stay one order per intent with every fill recorded once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from butterquant_dagster_tests.cli_processes import (
    COMMAND_TIMEOUT,
    SESSION,
    TRADED,
    assert_ledger_equals_broker,
    build_traded_root,
    copy_root,
    instance_state,
    prepared_root,
    run,
    start,
)

ROUNDS = 3
COMMANDS = {
    "backfill": ("backfill", "--start", "2025-05-27", "--end", "2025-05-30", "--json"),
    "scan": ("scan", "--date", SESSION, "--json"),
    # Too little settled history to train on in this small root: the run refuses, by name.
    "train": ("train", "--model", "probability", "--force", "--json"),
    "report": ("report", "daily", "--date", TRADED, "--json"),
    "execute": ("execute", "--date", SESSION, "--json"),
}
EXPECTED_REFUSAL = {"train": "no session has both candidate_features and candidate_outcomes"}
LOCK_WORDS = ("Could not set lock", "database is locked", "gave up after")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = prepared_root(tmp_path_factory, "traded", build_traded_root)
    return copy_root(base, tmp_path_factory.mktemp("concurrent"))


@pytest.mark.parametrize("round_number", range(1, ROUNDS + 1))
def test_five_commands_at_once_all_finish_without_lock_failures(root, round_number):
    began = time.monotonic()
    processes = {name: start(root, *args) for name, args in COMMANDS.items()}
    results = {}
    for name, process in processes.items():
        remaining = max(1.0, COMMAND_TIMEOUT - (time.monotonic() - began))
        out, err = process.communicate(timeout=remaining)
        results[name] = (process.returncode, out, err)
    for name, (code, out, err) in results.items():
        said = out + err  # with --json a failed run's messages are in the JSON
        assert not any(word in said for word in LOCK_WORDS), f"{name}: {said[-3000:]}"
        if name in EXPECTED_REFUSAL:
            assert EXPECTED_REFUSAL[name] in said, f"{name}: {said[-3000:]}"
        else:
            assert code == 0, f"{name} (round {round_number}): {err[-3000:]}"
    assert_ledger_equals_broker(root)
    state = instance_state(root)
    assert not state["unfinished"] and not state["slots"], state


@pytest.mark.parametrize("round_number", [1, 2, 3])
def test_commands_started_together_on_a_new_data_root_share_one_instance(tmp_path, round_number):
    """Three commands that each create the Dagster instance of an empty data root at once.
    Unserialized, the SQLite storages were created twice and the run database was left
    with two schema heads that no later command could open."""
    root = tmp_path / "data"
    root.mkdir()
    processes = [start(root, "runs", "--json") for _ in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=COMMAND_TIMEOUT)
        assert process.returncode == 0, err[-2000:]
    code, _, err, _ = run(root, "runs", "--json")
    assert code == 0, err[-2000:]
