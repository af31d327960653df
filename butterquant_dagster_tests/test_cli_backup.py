"""`butterquant backup` and `butterquant restore` against a temporary data root."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, main
from butterquant_dagster.core.storage import backup as backup_module
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.core.trading.test_ledger_and_paper import intent


def _data(root: Path) -> Ledger:
    ledger = Ledger(root / "ledger.duckdb")
    ledger.record_intent(intent("open-1"), "planned")
    Lake(root).write("daily_bars", pd.DataFrame({"close": [1.0, 2.0]}), "2026-03-02")
    return ledger


def _backup(capsys) -> Path:
    code = main(["backup", "--json"])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    return Path(json.loads(out)["path"])


def test_backup_then_restore_brings_the_ledger_back(isolated_env, capsys):
    ledger = _data(isolated_env)
    code = main(["backup", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    path = Path(summary["path"])
    assert path.parent == isolated_env / "backups" and (path / "manifest.json").is_file()
    assert summary["parts"]["ledger"]["tables"]["orders"] == 1
    assert summary["parts"]["lake"] == {"files": 1, "tables": {"daily_bars": 2}}
    runs = DagsterInstance.get().get_runs()  # the backup is a run the UI shows
    assert [r.run_id for r in runs] == [summary["run_id"]] and runs[0].job_name == "backup_job"

    ledger.record_intent(intent("open-2"), "planned")
    assert len(ledger.orders()) == 2
    code = main(["restore", str(path)])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert f"restored {isolated_env} from {path}" in out
    assert "pre-restore-" in out and "move it back to undo" in out
    assert Ledger(isolated_env / "ledger.duckdb").orders()["order_ref"].tolist() == ["open-1"]


def test_restore_refuses_what_is_not_a_backup(isolated_env, tmp_path, capsys):
    code = main(["restore", str(tmp_path / "nowhere")])
    assert code == EXIT_BAD_INPUT
    assert "is not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    code = main(["restore", str(tmp_path / "empty")])
    assert code == EXIT_BAD_INPUT
    assert "is not a backup: it has no manifest.json" in capsys.readouterr().err


def test_restore_names_a_corrupted_file_and_restores_nothing(isolated_env, capsys):
    _data(isolated_env)
    path = _backup(capsys)
    (path / "ledger" / "orders.parquet").write_bytes(b"garbage")
    Ledger(isolated_env / "ledger.duckdb").record_intent(intent("open-2"), "planned")

    code = main(["restore", str(path), "--json"])

    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "nothing was restored" in err and "ledger/orders.parquet is corrupted" in err
    assert len(Ledger(isolated_env / "ledger.duckdb").orders()) == 2


def test_restore_waits_for_runs_in_progress_unless_forced(isolated_env, capsys):
    _data(isolated_env)
    path = _backup(capsys)
    run_id = str(uuid.uuid4())
    DagsterInstance.get().add_run(
        DagsterRun(job_name="execution_job", run_id=run_id, status=DagsterRunStatus.STARTED)
    )

    code = main(["restore", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"1 Dagster run(s) queued or in progress: execution_job ({run_id})" in err
    assert "--force" in err
    assert not list((isolated_env / "backups").glob("pre-restore-*"))

    code = main(["restore", str(path), "--force", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK
    assert report["forced_past_runs"] == [f"execution_job ({run_id})"]
    assert Path(report["moved_aside"]).name.startswith("pre-restore-")


def _fail_placing_the_lake(monkeypatch, also=lambda source: False) -> None:
    real_replace = os.replace

    def replace(source, target):
        source = Path(source)
        placing_lake = source.parent.name.startswith(".restore-") and source.name == "lake"
        if placing_lake or also(source):
            raise OSError(errno.ENOSPC, "No space left on device", str(source))
        return real_replace(source, target)

    monkeypatch.setattr(backup_module.os, "replace", replace)


def test_a_restore_failing_part_way_is_undone_and_reported_in_one_line(
    isolated_env, monkeypatch, capsys
):
    _data(isolated_env)
    path = _backup(capsys)
    Ledger(isolated_env / "ledger.duckdb").record_intent(intent("open-2"), "planned")
    _fail_placing_the_lake(monkeypatch)

    code = main(["restore", str(path)])

    err = capsys.readouterr().err
    monkeypatch.undo()
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "nothing was restored" in err and "while placing the restored lake" in err
    assert "No space left on device" in err and "put back as it was" in err
    assert len(Ledger(isolated_env / "ledger.duckdb").orders()) == 2
    assert len(Lake(isolated_env).read("daily_bars", ["2026-03-02"])) == 2
    assert not list((isolated_env / "backups").glob("pre-restore-*"))


def test_a_restore_that_cannot_be_undone_names_the_folders_that_keep_the_data(
    isolated_env, monkeypatch, capsys
):
    _data(isolated_env)
    path = _backup(capsys)
    _fail_placing_the_lake(
        monkeypatch, also=lambda source: source.parent.name.startswith("pre-restore-")
    )

    code = main(["restore", str(path)])

    err = capsys.readouterr().err
    monkeypatch.undo()
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "restore failed and was not undone" in err
    (aside,) = (isolated_env / "backups").glob("pre-restore-*")
    (staging,) = isolated_env.glob(".restore-*")
    assert str(aside) in err and str(staging) in err
    assert (aside / "ledger.duckdb").is_file() and (staging / "lake").is_dir()


def test_restore_refuses_a_backup_with_sql_in_it_and_prints_one_line(isolated_env, capsys):
    _data(isolated_env)
    path = _backup(capsys)
    outside = isolated_env.parent / "outside"
    (path / "ledger" / "load.sql").write_text(f"ATTACH '{outside}/x.duckdb' AS x;")

    code = main(["restore", str(path)])

    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "nothing was restored" in err and "ledger/load.sql is not listed" in err
    assert not outside.exists()
    assert not list((isolated_env / "backups").glob("pre-restore-*"))


def test_backup_deletes_the_backups_beyond_the_setting_and_says_so(
    isolated_env, monkeypatch, capsys
):
    _data(isolated_env)
    monkeypatch.setenv("BUTTERQUANT_BACKUP_KEEP", "1")
    first = _backup(capsys)
    (isolated_env / "backups" / first.name).rename(isolated_env / "backups" / "20200101T000000Z")

    code = main(["backup"])

    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert f"deleted older backup {isolated_env / 'backups' / '20200101T000000Z'}" in out
    assert len(list((isolated_env / "backups").iterdir())) == 1
