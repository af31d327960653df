"""``butterquant sql QUERY``: read the lake with DuckDB SQL, and only read it.

The query runs on ``Lake.connect_read_only()`` (files outside the lake unreachable,
extensions off, configuration locked) after ``read_only_sql.check_read_only`` has refused
every statement that is not a query, so a typed statement can neither publish a partition
past the blocking checks nor reach the rest of the machine. Refusals exit 2.
"""

from __future__ import annotations

from butterquant_dagster.commands._errors import EXIT_OK, CliError
from butterquant_dagster.core import settings


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "sql",
        help="query the lake with DuckDB SQL (read-only)",
        description="Run a read-only SQL query over the lake's tables (one view each). "
        "Statements that write, attach, copy, install or set anything are refused (exit 2), "
        "and files outside the lake cannot be read.",
    )
    parser.add_argument("query", help='e.g. "SELECT symbol, close FROM daily_bars LIMIT 5"')
    parser.add_argument("--max-rows", type=int, default=50, help="rows to print (text output)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.set_defaults(handler=cmd_sql)


def cmd_sql(args) -> int:
    import duckdb

    from butterquant_dagster.core.storage.lake import Lake
    from butterquant_dagster.core.storage.read_only_sql import ReadOnlyQueryError, check_read_only

    try:
        check_read_only(args.query)
    except ReadOnlyQueryError as exc:
        raise CliError(str(exc)) from exc
    lake = Lake(settings.data_root())
    with lake.connect_read_only() as db:
        try:
            frame = db.execute(args.query).fetchdf()
        except duckdb.PermissionException as exc:
            raise CliError(
                f"butterquant sql reads only the lake's views (files under {lake.directory} "
                f"and {lake.archive_directory}): {exc}"
            ) from exc
        except Exception as exc:  # duckdb raises many error types; all are bad input here
            raise CliError(f"query failed: {exc}") from exc
    if args.json:
        print(frame.to_json(orient="records", date_format="iso", indent=2))
    else:
        print(frame.to_string(index=False, max_rows=args.max_rows))
    return EXIT_OK
