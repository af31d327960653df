"""``butterquant sessions --start D --end D``: the NYSE sessions of a range, early closes
marked."""

from __future__ import annotations

from butterquant_dagster.commands._dates import session_range
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit
from butterquant_dagster.core import calendar


def add_parser(sub) -> None:
    sessions = sub.add_parser(
        "sessions",
        help="list NYSE sessions in a date range",
        description="NYSE sessions and early closes in [start, end].",
    )
    sessions.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    sessions.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    sessions.add_argument("--json", action="store_true", help="print the result as JSON")
    sessions.set_defaults(handler=cmd_sessions)


def cmd_sessions(args) -> int:
    days = session_range(args.start, args.end)
    early = {e.session for e in calendar.early_closes(days[0], days[-1])}
    rows = [{"session": d.isoformat(), "early_close": d in early} for d in days]
    emit(
        {"sessions": rows, "count": len(rows)},
        args.json,
        [f"{r['session']}{'  (early close 13:00)' if r['early_close'] else ''}" for r in rows]
        + [f"{len(rows)} sessions"],
    )
    return EXIT_OK
