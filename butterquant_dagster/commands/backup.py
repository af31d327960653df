"""The ``butterquant backup`` command.

``backup`` materializes ``warehouse_backup`` in the project's instance, like the weekly
schedule does: the run is in the UI's history and waits for the ``ledger`` pool, so it never
copies the ledger in the middle of a session's trading. ``butterquant restore`` puts a backup
back (:mod:`butterquant_dagster.commands.restore`).
"""

from __future__ import annotations

import json
from pathlib import Path

from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.commands._output import emit, report_failure


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


def cmd_backup(args) -> int:
    from dagster import AssetKey

    from butterquant_dagster.defs.ops.backup import BACKUP_ASSET, BACKUP_JOB

    summary = materialize(BACKUP_JOB, None, None, show_progress=False)
    if not summary.success:
        return report_failure(summary, args.json)
    event = prepare_instance().get_latest_materialization_event(AssetKey(BACKUP_ASSET))
    metadata = event.asset_materialization.metadata
    path = Path(metadata["path"].value)
    pruned = list(metadata["pruned"].value) if "pruned" in metadata else []
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    parts = {
        name: {"files": len(part["files"]), "tables": part["tables"]}
        for name, part in manifest["parts"].items()
    }
    total = sum(f["bytes"] for part in manifest["parts"].values() for f in part["files"].values())
    emit(
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
    return EXIT_OK
