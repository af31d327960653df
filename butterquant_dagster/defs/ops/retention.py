"""Retention as an asset: expired caches and logs removed, old scan history archived.

The rules are in :mod:`butterquant_dagster.core.storage.retention`. The limits come from
the settings (``BUTTERQUANT_CACHE_RETENTION_DAYS``, ``BUTTERQUANT_LOG_RETENTION_DAYS``,
``BUTTERQUANT_HOT_STORE_LIMIT_GB``) and can be overridden per run in the launchpad, where
``dry_run`` shows what a pass would do without doing it.

It runs daily at 05:00 New York, before anything of the day (the scan, the snapshot and
trading all run in the afternoon and evening), weekends included: each pass is small and
incremental, and a daily pass keeps the hot lake near its limit rather than a week over it.
On Saturdays it runs an hour before the weekly backup, so the backup has the fresh archive.
"""

import datetime as dt
from dataclasses import asdict

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from butterquant_dagster.core import settings
from butterquant_dagster.core.storage.retention import (
    ARCHIVED_TABLES,
    GIGABYTE,
    PROTECTED_SESSIONS,
    apply_retention,
)
from butterquant_dagster.defs.metadata import figure, markdown_table
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS
from butterquant_dagster.resources import LakeResource

OWNER = "team:platform"
GROUP = "ops"
RETENTION_ASSET = "data_retention"
RETENTION_JOB = "retention_job"


class RetentionConfig(Config):
    """Unset fields take their setting's value when the run starts."""

    cache_days: float | None = None
    log_days: float | None = None
    hot_limit_gb: float | None = None
    dry_run: bool = False


@asset(
    name=RETENTION_ASSET,
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "parquet"},
    description=(
        "Removes caches, quarantined partitions and run logs past their retention, and "
        f"archives the oldest scan history ({', '.join(ARCHIVED_TABLES)}) into yearly zstd "
        "Parquet files under archive/ once the hot tables pass their size limit; archived "
        f"partitions stay readable and queryable. The last {PROTECTED_SESSIONS} sessions, "
        "which the models train on, always stay hot."
    ),
)
def data_retention(
    context: AssetExecutionContext, config: RetentionConfig, lake: LakeResource
) -> MaterializeResult:
    def setting(value, name):
        if value is not None:
            return value
        try:
            return float(settings.env(name))
        except ValueError as exc:
            raise Failure(f"{name}={settings.env(name)!r} is not a number") from exc

    report = apply_retention(
        lake.lake().root,
        dt.datetime.now(dt.UTC),
        cache_days=setting(config.cache_days, "BUTTERQUANT_CACHE_RETENTION_DAYS"),
        log_days=setting(config.log_days, "BUTTERQUANT_LOG_RETENTION_DAYS"),
        hot_limit_bytes=int(
            setting(config.hot_limit_gb, "BUTTERQUANT_HOT_STORE_LIMIT_GB") * GIGABYTE
        ),
        dry_run=config.dry_run,
        dagster_home=context.instance.root_directory,
    )
    removed_by_kind: dict[str, dict[str, int]] = {}
    for item in report.removed:
        entry = removed_by_kind.setdefault(item.kind, {"items": 0, "bytes": 0})
        entry["items"] += 1
        entry["bytes"] += item.bytes
    archived = {}
    for item in report.archived:
        entry = archived.setdefault(item.table, {"table": item.table, "partitions": 0, "rows": 0})
        entry["partitions"] += 1
        entry["rows"] += item.rows
        entry["first"] = min(entry.get("first", item.partition), item.partition)
        entry["last"] = max(entry.get("last", item.partition), item.partition)
    return MaterializeResult(
        metadata={
            "dry_run": report.dry_run,
            "removed_items": len(report.removed),
            "bytes_removed": report.bytes_removed,
            "removed_by_kind": MetadataValue.json(removed_by_kind),
            "removed": markdown_table(pd.DataFrame([asdict(item) for item in report.removed])),
            "archived_partitions": len(report.archived),
            "archived": markdown_table(pd.DataFrame(list(archived.values()))),
            "kept_rewritten": MetadataValue.json(report.kept_rewritten),
            "hot_bytes_before": report.hot_bytes_before,
            "hot_bytes_after": report.hot_bytes_after,
            "hot_limit_bytes": report.hot_limit_bytes,
            "archive_bytes_added": figure(report.archive_bytes_added),
            "bytes_freed": figure(report.bytes_freed),
            "protected_from": report.protected_from or "nothing hot",
        }
    )


retention_job = define_asset_job(
    RETENTION_JOB,
    selection=AssetSelection.assets(RETENTION_ASSET),
    description="Apply the retention of caches and logs and archive old scan history.",
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="daily_retention",
    job=retention_job,
    cron_schedule="0 5 * * *",
    execution_timezone="America/New_York",
    description=(
        "Daily 05:00 New York, before the day's runs; on Saturdays an hour before the "
        "weekly backup."
    ),
)
def daily_retention(context: ScheduleEvaluationContext):
    return RunRequest(run_key=f"retention-{context.scheduled_execution_time:%Y-%m-%d}")
