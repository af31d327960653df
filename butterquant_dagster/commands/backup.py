"""The ``butterquant backup`` and ``butterquant restore`` commands.

``backup`` materializes ``warehouse_backup`` in the project's instance, like the weekly
schedule does: the run is in the UI's history and waits for the ``ledger`` pool, so it never
copies the ledger in the middle of a session's trading.

``restore`` is not a run: it replaces the files runs read, so it refuses while any run of
the instance is queued or in progress (``--force`` overrides, for a broken instance). Stop
the daemon (``dagster dev``) first, so no schedule starts a run meanwhile. What the data root
held before is kept in ``backups/pre-restore-<time>/`` (the newest
``BUTTERQUANT_PRE_RESTORE_KEEP`` of them). A backup is untrusted data: nothing in it is
executed, and one holding anything its manifest does not list, a link or a path leaving its
part is refused before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from butterquant_dagster import cli
from butterquant_dagster.core import settings

BUSY_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def add_parser(sub) -> None:
    backup = sub.add_parser(
        "backup",
        help="back up the ledger, the paper broker, the models and the lake now",
        description="Write a complete backup to <data root>/backups/<UTC time>/ (DuckDB "
        "exports, the model registry, the lake and its archive, a manifest with sha256 "
        "checksums) as a run of backup_job, and print its path.",
    )
    backup.add_argument("--json", action="store_true", help="print the result as JSON")
    backup.set_defaults(handler=cmd_backup)

    restore = sub.add_parser(
        "restore",
        help="restore the data root from a backup",
        description="Verify a backup (only regular files its manifest lists, each with its "
        "sha256; nothing in it is executed), then replace the "
        "ledger, the paper broker, the models, the lake and the archive with the backup's. "
        "The current ones are moved to <data root>/backups/pre-restore-<UTC time>/ (move "
        "them back to undo). Refuses while Dagster runs are queued or in progress.",
    )
    restore.add_argument("path", help="the backup directory, e.g. data/backups/20260314T110005Z")
    restore.add_argument(
        "--force", action="store_true", help="restore even while runs are in progress"
    )
    restore.add_argument("--json", action="store_true", help="print the result as JSON")
    restore.set_defaults(handler=cmd_restore)


def cmd_backup(args) -> int:
    from dagster import AssetKey

    from butterquant_dagster.defs.ops.backup import BACKUP_ASSET, BACKUP_JOB

    summary = cli.materialize(BACKUP_JOB, None, None, show_progress=False)
    if not summary.success:
        return cli._report_failure(summary, args.json)
    event = cli.prepare_instance().get_latest_materialization_event(AssetKey(BACKUP_ASSET))
    metadata = event.asset_materialization.metadata
    path = Path(metadata["path"].value)
    pruned = list(metadata["pruned"].value) if "pruned" in metadata else []
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    parts = {
        name: {"files": len(part["files"]), "tables": part["tables"]}
        for name, part in manifest["parts"].items()
    }
    total = sum(f["bytes"] for part in manifest["parts"].values() for f in part["files"].values())
    cli._print(
        {
            "path": str(path),
            "run_id": summary.run_id,
            "created_at": manifest["created_at"],
            "total_bytes": total,
            "parts": parts,
            "pruned": pruned,
        },
        args.json,
        [
            f"backup written to {path} (run {summary.run_id})",
            *(f"  {name:<13} {info['files']:>6} files" for name, info in parts.items()),
            f"  {total / 1e6:.1f} MB in all",
            *(f"  deleted older backup {p}" for p in pruned),
        ],
    )
    return cli.EXIT_OK


def busy_runs(instance) -> list[str]:
    """``job (run id)`` of every run that is queued or in progress."""
    from dagster import DagsterRunStatus, RunsFilter

    statuses = [DagsterRunStatus(status) for status in BUSY_STATUSES]
    records = instance.get_run_records(filters=RunsFilter(statuses=statuses))
    return [f"{r.dagster_run.job_name} ({r.dagster_run.run_id})" for r in records]


def cmd_restore(args) -> int:
    from butterquant_dagster.core.storage.backup import BackupError, RestoreError, restore

    path = Path(args.path).expanduser().resolve()
    if not path.is_dir():
        raise cli.CliError(f"{path} is not a directory; pass a backup under <data root>/backups")
    busy = busy_runs(cli.prepare_instance())
    if busy and not args.force:
        shown = ", ".join(busy[:5]) + (f" and {len(busy) - 5} more" if len(busy) > 5 else "")
        raise cli.CliError(
            f"{len(busy)} Dagster run(s) queued or in progress: {shown}; a restore would replace "
            "the files they use. Wait for them (or cancel them) and stop the daemon, or pass "
            "--force"
        )
    try:
        report = restore(path, settings.data_root())
    except RestoreError as exc:
        if exc.rolled_back:
            raise cli.CliError(f"nothing was restored: {exc}") from exc
        raise cli.CliError(f"restore failed and was not undone: {exc}") from exc
    except (BackupError, OSError) as exc:
        raise cli.CliError(f"nothing was restored: {exc}") from exc
    cli._print(
        {**report.to_dict(), "forced_past_runs": busy},
        args.json,
        [
            f"restored {report.root} from {report.backup}",
            *(
                f"  {name:<13} {info['files']:>6} files"
                + (f", {sum(info['tables'].values())} rows" if info["tables"] else "")
                for name, info in report.restored.items()
            ),
            f"  previous data kept in {report.moved_aside} (move it back to undo)"
            if report.moved_aside
            else "  the data root held nothing to keep",
            *(f"  pruned older pre-restore copy {path}" for path in report.pruned),
            *(f"  warning: {w}" for w in report.warnings),
        ],
    )
    return cli.EXIT_OK
