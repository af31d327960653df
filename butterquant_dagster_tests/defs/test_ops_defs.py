"""The operations definitions: backup and retention assets, their schedules, and the
run-failure sensor on a real failed run."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    RunRequest,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    job,
    op,
)

from butterquant_dagster.core.monitoring.run_failures import failures_path
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.defs.ops import backup, failures, retention
from butterquant_dagster.defs.ops.backup import BACKUP_JOB
from butterquant_dagster.defs.ops.failures import record_run_failures
from butterquant_dagster.defs.ops.retention import RETENTION_JOB
from butterquant_dagster.resources import LakeResource
from butterquant_dagster_tests.core.monitoring.test_run_failures import webhook_server
from butterquant_dagster_tests.core.trading.test_ledger_and_paper import intent
from butterquant_dagster_tests.defs.helpers import failure_messages

NEW_YORK = dt.timezone(dt.timedelta(hours=-4))  # EDT, for readable schedule ticks


def ops_definitions(root: Path) -> Definitions:
    """The operations folder's own definitions: backup, retention and the failure record."""
    return Definitions(
        assets=[backup.warehouse_backup, retention.data_retention],
        jobs=[backup.backup_job, retention.retention_job],
        schedules=[backup.weekly_backup, retention.daily_retention],
        sensors=[failures.record_run_failures],
        resources={"lake": LakeResource(data_dir=str(root))},
    )


def _materialized_metadata(result, asset: str) -> dict:
    (materialization,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def test_the_assets_are_owned_grouped_and_the_backup_takes_the_ledger_pool(tmp_path):
    defs = ops_definitions(tmp_path)
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert set(specs) == {"warehouse_backup", "data_retention"}
    for spec in specs.values():
        assert spec.group_name == "ops" and spec.owners == ["team:platform"]
        assert len(spec.description) > 40
    assert set(specs["warehouse_backup"].kinds) == {"duckdb", "parquet"}
    assert defs.resolve_assets_def("warehouse_backup").op.pool == "ledger"
    assert defs.resolve_assets_def("data_retention").op.pool is None
    assert {s.name: (s.cron_schedule, s.execution_timezone) for s in defs.schedules} == {
        "weekly_backup": ("0 6 * * 6", "America/New_York"),
        "daily_retention": ("0 5 * * *", "America/New_York"),
    }
    (sensor,) = defs.sensors
    assert sensor.name == "record_run_failures"
    assert sensor.default_status.value == "RUNNING"


def test_the_backup_job_writes_a_backup_and_reports_it(tmp_path):
    Ledger(tmp_path / "ledger.duckdb").record_intent(intent("open-1"), "planned")
    Lake(tmp_path).write("daily_bars", pd.DataFrame({"close": [1.0, 2.0]}), "2026-03-02")
    defs = ops_definitions(tmp_path)

    result = defs.resolve_job_def(BACKUP_JOB).execute_in_process(
        instance=DagsterInstance.ephemeral()
    )

    assert result.success
    metadata = _materialized_metadata(result, "warehouse_backup")
    path = Path(metadata["path"])
    assert path.parent == tmp_path / "backups" and (path / "manifest.json").is_file()
    assert metadata["ledger_rows"]["orders"] == 1
    assert metadata["lake_rows"] == {"daily_bars": 2}
    assert metadata["files"] == len(
        [p for p in path.rglob("*") if p.is_file() and p.name != "manifest.json"]
    )
    assert "paper_broker_rows" not in metadata  # no paper broker file yet


def test_the_retention_job_archives_with_the_configured_limit(tmp_path):
    lake = Lake(tmp_path)
    for session in ("2024-01-02", "2024-01-03", "2026-03-02"):
        frame = pd.DataFrame({"session": pd.Timestamp(session), "value": [1.0, 2.0, 3.0]})
        lake.write("option_chains", frame, session)
    defs = ops_definitions(tmp_path)
    run_config = {"ops": {"data_retention": {"config": {"hot_limit_gb": 0.0}}}}

    dry = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
        run_config={"ops": {"data_retention": {"config": {"hot_limit_gb": 0.0, "dry_run": True}}}},
        instance=DagsterInstance.ephemeral(),
    )
    assert _materialized_metadata(dry, "data_retention")["archived_partitions"] == 2
    assert lake.hot_partitions("option_chains") == ["2024-01-02", "2024-01-03", "2026-03-02"]

    result = defs.resolve_job_def(RETENTION_JOB).execute_in_process(
        run_config=run_config, instance=DagsterInstance.ephemeral()
    )

    assert result.success
    metadata = _materialized_metadata(result, "data_retention")
    assert metadata["archived_partitions"] == 2 and not metadata["dry_run"]
    assert (
        metadata["hot_bytes_after"]
        == lake.partition_path("option_chains", "2026-03-02").stat().st_size
    )
    assert "option_chains" in metadata["archived"]
    assert lake.archived_partitions("option_chains") == ["2024-01-02", "2024-01-03"]
    assert lake.read("option_chains", ["2024-01-02"])["value"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("name", "tick", "run_key"),
    [
        ("weekly_backup", dt.datetime(2026, 3, 14, 6, 0, tzinfo=NEW_YORK), "backup-2026-03-14"),
        ("daily_retention", dt.datetime(2026, 3, 9, 5, 0, tzinfo=NEW_YORK), "retention-2026-03-09"),
    ],
)
def test_the_schedules_request_one_run_per_tick(tmp_path, name, tick, run_key):
    schedule = ops_definitions(tmp_path).resolve_schedule_def(name)
    (request,) = schedule.evaluate_tick(
        build_schedule_context(scheduled_execution_time=tick)
    ).run_requests
    assert isinstance(request, RunRequest) and request.run_key == run_key


@op
def load_chains():
    raise ValueError("no option chains for 2026-03-09\nsecond line of detail")


@job
def failing_job():
    load_chains()


def _failed_run_context(instance: DagsterInstance, root: Path):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    (failure,) = instance.all_logs(result.run_id, of_type=DagsterEventType.RUN_FAILURE)
    return result.run_id, build_run_status_sensor_context(
        sensor_name="record_run_failures",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        resources={"lake": LakeResource(data_dir=str(root))},
    ).for_run_failure()


def test_a_failed_run_is_recorded_and_posted_once(tmp_path, monkeypatch):
    instance = DagsterInstance.ephemeral()
    run_id, context = _failed_run_context(instance, tmp_path)
    with webhook_server() as (url, received):
        monkeypatch.setenv("BUTTERQUANT_ALERT_WEBHOOK", url)
        record_run_failures(context)
        record_run_failures(context)  # the same failure seen again: no second alert

    (line,) = failures_path(tmp_path).read_text().splitlines()
    record = json.loads(line)
    assert record["run_id"] == run_id and record["job"] == "failing_job"
    assert record["message"] == "load_chains: ValueError: no option chains for 2026-03-09"
    end_time = instance.get_run_record_by_id(run_id).end_time
    assert dt.datetime.fromisoformat(record["time"]).timestamp() == pytest.approx(end_time)
    (post,) = received
    assert post["body"]["run_id"] == run_id and post["body"]["job"] == "failing_job"
    assert post["body"]["message"] == record["message"]
    assert post["body"]["text"].startswith("butterquant: failing_job failed")
    assert url not in line


def test_without_a_webhook_the_failure_is_still_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv("BUTTERQUANT_ALERT_WEBHOOK", raising=False)
    run_id, context = _failed_run_context(DagsterInstance.ephemeral(), tmp_path)
    record_run_failures(context)
    assert json.loads(failures_path(tmp_path).read_text())["run_id"] == run_id


def test_the_sensor_sees_runs_launched_in_process_like_the_cli_does(tmp_path, monkeypatch):
    """The sensor's own evaluation loop, not a hand-built context: the first tick only sets
    the cursor, the next one finds the failure of an in-process run. (Under the daemon the
    sensor has a code location and such a run has none; only monitoring all locations
    matches it, which the test context cannot show, hence the check of the setting.)"""
    assert record_run_failures._monitor_all_code_locations
    monkeypatch.delenv("BUTTERQUANT_ALERT_WEBHOOK", raising=False)
    instance = DagsterInstance.ephemeral()
    defs = Definitions(jobs=[failing_job], sensors=[record_run_failures])
    resources = {"lake": LakeResource(data_dir=str(tmp_path))}
    first = record_run_failures.evaluate_tick(
        build_sensor_context(instance=instance, definitions=defs, resources=resources)
    )
    assert not failures_path(tmp_path).exists()
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)

    record_run_failures.evaluate_tick(
        build_sensor_context(
            instance=instance, cursor=first.cursor, definitions=defs, resources=resources
        )
    )

    assert json.loads(failures_path(tmp_path).read_text())["run_id"] == result.run_id


def test_a_retention_setting_that_is_no_number_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_CACHE_RETENTION_DAYS", "thirty")
    result = (
        ops_definitions(tmp_path)
        .resolve_job_def(RETENTION_JOB)
        .execute_in_process(instance=DagsterInstance.ephemeral(), raise_on_error=False)
    )
    assert not result.success
    assert "BUTTERQUANT_CACHE_RETENTION_DAYS='thirty' is not a number" in failure_messages(result)
