"""``butterquant status``: the tables of the lake and the sessions each holds."""

from __future__ import annotations

from butterquant_dagster.commands._data import lake
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit
from butterquant_dagster.core import settings


def add_parser(sub) -> None:
    status = sub.add_parser(
        "status", help="what the lake holds", description="Tables and partitions in the data root."
    )
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(handler=cmd_status)


def cmd_status(args) -> int:
    store = lake()
    tables = {}
    for table in store.tables():
        parts = store.partitions(table)
        tables[table] = {
            "partitions": len(parts),
            "first": parts[0] if parts else None,
            "last": parts[-1] if parts else None,
        }
    emit(
        {"data_dir": str(settings.data_root()), "tables": tables},
        args.json,
        [f"data root: {settings.data_root()}"]
        + [
            f"  {name:<16} "
            + (
                f"{info['partitions']:>5} partitions  {info['first']}..{info['last']}"
                if info["first"]
                else "unpartitioned"
            )
            for name, info in tables.items()
        ]
        + ([] if tables else ["  (empty: run `butterquant demo` or `butterquant backfill`)"]),
    )
    return EXIT_OK
