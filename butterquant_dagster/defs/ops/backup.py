"""The weekly backup as an asset, and the operations definitions put together.

``warehouse_backup`` runs in the concurrency pool ``ledger``, the pool every trading step
that writes the ledger runs in, so a backup never copies the ledger or the paper broker
between two steps of a session's trading (DuckDB's file lock already keeps it out of a
single transaction). The work is :func:`butterquant_dagster.core.storage.backup.backup`;
restoring is a command (``butterquant restore``), never a run, because it replaces the
files runs read.
"""

import datetime as dt
from typing import NamedTuple

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from butterquant_dagster.core.storage.backup import DATABASES, NOT_BACKED_UP, backup
from butterquant_dagster.defs.ops.failures import record_run_failures
from butterquant_dagster.defs.ops.retention import (
    build_retention_job,
    build_retention_schedule,
    data_retention,
)
from butterquant_dagster.resources import LakeResource

OWNER = "team:platform"
GROUP = "ops"
LEDGER_POOL = "ledger"
BACKUP_ASSET = "warehouse_backup"
BACKUP_JOB = "backup_job"


class OpsDefs(NamedTuple):
    assets: list
    jobs: list
    schedules: list
    sensors: list


@asset(
    name=BACKUP_ASSET,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"duckdb", "parquet"},
    pool=LEDGER_POOL,
    description=(
        "A complete backup of the data root under backups/<UTC time>/: the ledger and the "
        "paper broker as one Parquet file per table, the model registry, the lake and its "
        "archive copied, and a manifest with every file's sha256 and every table's row "
        "count; backups beyond BUTTERQUANT_BACKUP_KEEP are then deleted. Runs in the ledger "
        "pool, so it never copies the ledger mid-session."
    ),
)
def warehouse_backup(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    manifest = backup(lake.lake().root, dt.datetime.now(dt.UTC))
    context.log.info(f"backup written to {manifest.path} ({manifest.file_count} files)")
    for path in manifest.pruned:
        context.log.info(f"older backup deleted: {path}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(manifest.path)),
            "created_at": manifest.created_at,
            "total_bytes": manifest.total_bytes,
            "files": manifest.file_count,
            "package_version": manifest.package_version,
            **{
                f"{name}_rows": MetadataValue.json(manifest.tables(name))
                for name in (*DATABASES, "lake", "archive")
                if name in manifest.parts
            },
            "models_files": len(manifest.parts.get("models", {}).get("files", {})),
            "not_backed_up": MetadataValue.json(NOT_BACKED_UP),
            "pruned": MetadataValue.json(list(manifest.pruned)),
        }
    )


def build_backup_job():
    return define_asset_job(
        BACKUP_JOB,
        selection=AssetSelection.assets(BACKUP_ASSET),
        description="Back up the ledger, the paper broker, the models and the lake.",
    )


def build_backup_schedule(job):
    @schedule(
        name="weekly_backup",
        job=job,
        cron_schedule="0 6 * * 6",
        execution_timezone="America/New_York",
        description=(
            "Saturday 06:00 New York: after the week's last session has been traded, marked "
            "and reported, and before anything of the next week runs."
        ),
    )
    def weekly_backup(context: ScheduleEvaluationContext):
        return RunRequest(run_key=f"backup-{context.scheduled_execution_time:%Y-%m-%d}")

    return weekly_backup


def build_ops_defs() -> OpsDefs:
    """Backup, retention and the run-failure record, for ``build_definitions`` to add."""
    backup_job = build_backup_job()
    retention_job = build_retention_job()
    return OpsDefs(
        assets=[warehouse_backup, data_retention],
        jobs=[backup_job, retention_job],
        schedules=[build_backup_schedule(backup_job), build_retention_schedule(retention_job)],
        sensors=[record_run_failures],
    )
