"""``butterquant scan [--date D]``: scan, price, score and rank a session's butterflies,
backfilling the market history the signals need first."""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._args import positive_int
from butterquant_dagster.commands._data import lake
from butterquant_dagster.commands._dates import require_closed, require_session, session_range
from butterquant_dagster.commands._errors import EXIT_OK, CliError
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
        help="scan a session's (or a range's) butterflies and print the top rankings",
        description="Scan, price, score and rank every listed butterfly of a session "
        "(default: the latest completed session), or of every session in --start..--end in "
        "one run, taking first the bars the signals need and any chain the lake lacks.",
    )
    scan.add_argument("--date", help="session to scan, YYYY-MM-DD (default: latest close)")
    scan.add_argument("--start", help="first session of a range to scan, YYYY-MM-DD")
    scan.add_argument("--end", help="last session of a range to scan, YYYY-MM-DD")
    scan.add_argument("--top", type=positive_int, default=20, help="rows to print (20)")
    scan.add_argument("--json", action="store_true", help="print the rankings as JSON")
    scan.set_defaults(handler=cmd_scan)


def scanned_sessions(args) -> list[dt.date]:
    """The sessions asked for: --date, --start..--end, or the latest completed one."""
    if args.start or args.end:
        if args.date:
            raise CliError("give --date or --start/--end, not both")
        if not (args.start and args.end):
            raise CliError("a range needs both --start and --end")
        days = session_range(args.start, args.end)
        require_closed(days[-1], "--end")
        return days
    if args.date:
        return [require_session(args.date)]
    return [calendar.latest_completed_session(dt.datetime.now(dt.UTC))]


def cmd_scan(args) -> int:
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    days = scanned_sessions(args)
    for run in ensure_market(days, SCAN_HISTORY_SESSIONS, show_progress=not args.json):
        succeeded(run)
    summary = succeeded(materialize(SCAN_JOB, days[0], days[-1], show_progress=not args.json))
    session = days[-1]
    top = rankings(session, args.top)
    if args.json:
        print(top.to_json(orient="records", date_format="iso", indent=2))
    else:
        scanned = f"{len(days)} sessions {days[0]}..{session}, " if len(days) > 1 else ""
        print(f"top {len(top)} butterflies of {session} ({scanned}run {summary.run_id})")
        print("\n".join(rankings_lines(top)))
    return EXIT_OK


def ensure_market(days: list[dt.date], history: int, show_progress: bool) -> list[RunSummary]:
    """What the scan of ``days`` reads and the lake lacks, one run each: the bars of the
    ``history`` sessions up to the first (the signals' lookback; bars only, no chains for
    sessions that are not scanned), then the market of the scanned sessions without a
    chain. A session whose chain a check refused is taken again and refused again, by
    name."""
    from butterquant_dagster.defs.market.automation import BARS_JOB

    store = lake()
    runs = []
    bars = set(store.partitions("daily_bars"))
    lookback = calendar.trailing_sessions(days[0], history)
    missing_bars = [d for d in lookback if d.isoformat() not in bars]
    if missing_bars:
        runs.append(
            materialize(BARS_JOB, missing_bars[0], missing_bars[-1], show_progress=show_progress)
        )
        if not runs[-1].success:
            return runs
    chains = set(store.partitions("option_chains"))
    missing = [d for d in days if d.isoformat() not in chains]
    if missing:
        runs.append(materialize_market(missing[0], missing[-1], show_progress=show_progress))
    return runs
