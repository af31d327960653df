"""The ``butterquant restore`` command.

``restore`` is not a run: it replaces the files runs read, so it refuses while any run of
the instance is queued or in progress (``--force`` overrides, for a broken instance). Stop
the daemon (``dagster dev``) first, so no schedule starts a run meanwhile. What the data root
held before is kept in ``backups/pre-restore-<time>/`` (the newest
``BUTTERQUANT_PRE_RESTORE_KEEP`` of them). A backup is untrusted data: nothing in it is
executed, and one holding anything its manifest does not list, a link or a path leaving its
part is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from butterquant_dagster.commands._errors import EXIT_OK, CliError
from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.commands._output import emit
from butterquant_dagster.core import settings

BUSY_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def add_parser(sub) -> None:
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
        raise CliError(f"{path} is not a directory; pass a backup under <data root>/backups")
    busy = busy_runs(prepare_instance())
    if busy and not args.force:
        shown = ", ".join(busy[:5]) + (f" and {len(busy) - 5} more" if len(busy) > 5 else "")
        raise CliError(
            f"{len(busy)} Dagster run(s) queued or in progress: {shown}; a restore would replace "
            "the files they use. Wait for them (or cancel them) and stop the daemon, or pass "
            "--force"
        )
    try:
        report = restore(path, settings.data_root())
    except RestoreError as exc:
        if exc.rolled_back:
            raise CliError(f"nothing was restored: {exc}") from exc
        raise CliError(f"restore failed and was not undone: {exc}") from exc
    except (BackupError, OSError) as exc:
        raise CliError(f"nothing was restored: {exc}") from exc
    emit(
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
    return EXIT_OK
