"""A corrupt ``ledger.duckdb`` (truncated, header or a middle block overwritten) stops
`positions`, `journal` and `execute` with exit 1 and one message naming the file and the
`butterquant restore` to run: no traceback, and the file's bytes are left as they were."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from butterquant_dagster.cli import EXIT_OK, EXIT_RUN_FAILED, main
from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.core.trading.test_ledger_and_paper import intent
from butterquant_dagster_tests.defs.test_trading_cli import DECIDED_ON, ENVIRONMENT, SESSION

BLOCK = 4096


def _damaged_in_the_middle(data: bytes, path: Path) -> bytes:
    """``data`` with one block past its header overwritten, chosen so that DuckDB opens the
    file and finds the damage only when a query reads ``ledger_meta`` (the starting capital,
    which every ledger command reads)."""
    for offset in range(3 * BLOCK, len(data) - BLOCK, BLOCK):
        damaged = data[:offset] + b"\xff" * BLOCK + data[offset + BLOCK :]
        path.write_bytes(damaged)
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error:
            continue
        try:
            con.execute("SELECT hash(m) FROM ledger_meta AS m").fetchall()
        except duckdb.Error:
            return damaged
        finally:
            con.close()
    raise AssertionError("no block of the ledger holds ledger_meta alone")


def corrupt(path: Path, how: str) -> bytes:
    """Damage the ledger at ``path`` one way; the bytes it now holds."""
    data = path.read_bytes()
    if how == "truncated":
        damaged = data[: len(data) // 2]
    elif how == "header":
        damaged = b"\x00" * BLOCK + data[BLOCK:]
    else:
        damaged = _damaged_in_the_middle(data, path)
    path.write_bytes(damaged)
    return damaged


def _ledger(root: Path) -> Path:
    Ledger(root / "ledger.duckdb").record_intent(intent("open-1"), "planned")
    return root / "ledger.duckdb"


def _assert_one_clear_line(err: str, path: Path, restore: str) -> None:
    assert "Traceback" not in err
    assert f"the database file {path} is corrupted" in err
    assert restore in err


@pytest.mark.parametrize("how", ["truncated", "header", "middle"])
@pytest.mark.parametrize("command", [["positions"], ["journal"], ["positions", "--json"]])
def test_positions_and_journal_name_the_file_and_the_backup_to_restore(
    isolated_env, capsys, how, command
):
    path = _ledger(isolated_env)
    assert main(["backup", "--json"]) == EXIT_OK
    backup = json.loads(capsys.readouterr().out)["path"]
    damaged = corrupt(path, how)

    assert main(command) == EXIT_RUN_FAILED
    captured = capsys.readouterr()
    _assert_one_clear_line(captured.err, path, f"`butterquant restore {backup}`")
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert path.read_bytes() == damaged
    assert not path.with_name("ledger.duckdb.wal").exists()


def test_without_a_backup_the_message_says_there_is_none(isolated_env, capsys):
    path = _ledger(isolated_env)
    damaged = corrupt(path, "header")
    assert main(["journal"]) == EXIT_RUN_FAILED
    err = capsys.readouterr().err
    _assert_one_clear_line(err, path, "there is no backup under")
    assert "move it aside" in err
    assert path.read_bytes() == damaged


def test_the_damage_found_by_a_query_is_the_same_domain_error(tmp_path):
    path = _ledger(tmp_path)
    corrupt(path, "middle")
    with pytest.raises(duckdb_files.CorruptDatabase, match="is corrupted"):
        Ledger(path).orders()
    # An ordinary SQL error is still DuckDB's own.
    with (
        pytest.raises(duckdb.CatalogException),
        duckdb_files.connect(tmp_path / "other.duckdb") as con,
    ):
        con.execute("SELECT * FROM no_such_table")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A data root where DECIDED_ON is scanned, so that SESSION can be executed."""
    root = tmp_path_factory.mktemp("corrupt") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root.parent)
        patch.setenv("BUTTERQUANT_DATA_DIR", str(root))
        patch.setenv("DAGSTER_HOME", str(root / "dagster"))
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            assert main(["scan", "--date", DECIDED_ON, "--json"]) == EXIT_OK
    return root


@pytest.mark.parametrize("how", ["truncated", "middle"])
def test_execute_on_a_corrupt_ledger_fails_naming_the_file(
    scanned, tmp_path, monkeypatch, capsys, how
):
    root = tmp_path / "data"
    shutil.copytree(scanned, root)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERQUANT_DATA_DIR", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    path = _ledger(root)
    assert main(["backup", "--json"]) == EXIT_OK
    backup = json.loads(capsys.readouterr().out)["path"]
    damaged = corrupt(path, how)

    assert main(["execute", "--date", SESSION]) == EXIT_RUN_FAILED
    captured = capsys.readouterr()
    _assert_one_clear_line(captured.err, path, f"`butterquant restore {backup}`")
    assert path.read_bytes() == damaged
