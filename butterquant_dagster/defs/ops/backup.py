"""The weekly backup as an asset, its job and its schedule.

``warehouse_backup`` runs in the concurrency pool ``ledger``, the pool every trading step
that writes the ledger runs in, so a backup never copies the ledger or the paper broker
between two steps of a session's trading (DuckDB's file lock already keeps it out of a
single transaction). The work is :func:`butterquant_dagster.core.storage.backup.backup`;
restoring is a command (``butterquant restore``), never a run, because it replaces the
files runs read.
"""

import datetime as dt

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
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS
from butterquant_dagster.resources import LakeResource

OWNER = "team:platform"
GROUP = "ops"
LEDGER_POOL = "ledger"
BACKUP_ASSET = "warehouse_backup"
BACKUP_JOB = "backup_job"


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


backup_job = define_asset_job(
    BACKUP_JOB,
    selection=AssetSelection.assets(BACKUP_ASSET),
    description="Back up the ledger, the paper broker, the models and the lake.",
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="weekly_backup",
    job=backup_job,
    cron_schedule="0 6 * * 6",
    execution_timezone="America/New_York",
    description=(
        "Saturday 06:00 New York: after the week's last session has been traded, marked "
        "and reported, and before anything of the next week runs."
    ),
)
def weekly_backup(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"backup-{context.scheduled_execution_time:%Y-%m-%d}")
