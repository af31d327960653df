"""``butterquant scan [--date D]``: scan, price, score and rank a session's butterflies,
backfilling the market history the signals need first."""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._args import positive_int
from butterquant_dagster.commands._data import lake
from butterquant_dagster.commands._dates import require_session, session_range
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._materialize import (
    RunSummary,
    materialize,
    materialize_market,
    succeeded,
)
from butterquant_dagster.commands._rankings import rankings, rankings_lines
from butterquant_dagster.core import calendar

SCAN_HISTORY_SESSIONS = 65  # the signals need 60 sessions of closes


def add_parser(sub) -> None:
    scan = sub.add_parser(
        "scan",
        help="scan a session's butterflies and print the top rankings",
        description="Scan, price, score and rank every listed butterfly of a session "
        "(default: the latest completed session), backfilling the market history it needs.",
    )
    scan.add_argument("--date", help="session to scan, YYYY-MM-DD (default: latest close)")
    scan.add_argument("--top", type=positive_int, default=20, help="rows to print (20)")
    scan.add_argument("--json", action="store_true", help="print the rankings as JSON")
    scan.set_defaults(handler=cmd_scan)


def cmd_scan(args) -> int:
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    if args.date:
        session = require_session(args.date)
    else:
        session = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    market = ensure_market(session, SCAN_HISTORY_SESSIONS, show_progress=not args.json)
    if market is not None:
        succeeded(market)
    summary = succeeded(materialize(SCAN_JOB, session, session, show_progress=not args.json))
    top = rankings(session, args.top)
    if args.json:
        print(top.to_json(orient="records", date_format="iso", indent=2))
    else:
        print(f"top {len(top)} butterflies of {session} (run {summary.run_id})")
        print("\n".join(rankings_lines(top)))
    return EXIT_OK


def ensure_market(last: dt.date, sessions: int, show_progress: bool) -> RunSummary | None:
    """Backfill the market for any of the ``sessions`` up to ``last`` the lake lacks (the
    scan needs a price history); None when nothing was missing."""
    have = set(lake().partitions("option_chains"))
    needed = calendar.trailing_sessions(last, sessions)
    missing = [d for d in needed if d.isoformat() not in have]
    if not missing:
        return None
    days = session_range(missing[0].isoformat(), last.isoformat())
    return materialize_market(days[0], days[-1], show_progress=show_progress)
