"""``butterquant backfill --start D --end D``: the market of every session in a range, in one
run (the bars only with ``--assets bars``)."""

from __future__ import annotations

from dataclasses import asdict

from butterquant_dagster.commands._data import lake_summary
from butterquant_dagster.commands._dates import require_closed, session_range
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._materialize import materialize, materialize_market
from butterquant_dagster.commands._output import emit, report_failure


def add_parser(sub) -> None:
    backfill = sub.add_parser(
        "backfill",
        help="materialize the market snapshot for every session in a date range, in one run",
        description="Materialize assets for every NYSE session in [start, end] in one run "
        "(weekends and holidays are not sessions and are skipped).",
    )
    backfill.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    backfill.add_argument(
        "--assets",
        choices=["market", "bars"],
        default="market",
        help="which assets: market = universe, daily bars, option chains (+ synthetic truth); "
        "bars = the same without option chains (index history for the regime, years of it "
        "cost little)",
    )
    backfill.add_argument("--json", action="store_true", help="print the result as JSON")
    backfill.set_defaults(handler=cmd_backfill)


def cmd_backfill(args) -> int:
    days = session_range(args.start, args.end)
    require_closed(days[-1], "--end")
    if args.assets == "bars":
        from butterquant_dagster.defs.market.automation import BARS_JOB

        summary = materialize(BARS_JOB, days[0], days[-1], show_progress=not args.json)
    else:
        summary = materialize_market(days[0], days[-1], show_progress=not args.json)
    if not summary.success:
        return report_failure(summary, args.json)
    lake = lake_summary(days[0], days[-1])
    emit(
        {**asdict(summary), **lake},
        args.json,
        [
            f"backfilled {summary.sessions} sessions {summary.first_session}.."
            f"{summary.last_session} in one run ({summary.run_id})",
            f"  {lake['tickers']} tickers, {lake['bars']} bars, {lake['contracts']} contracts",
            f"  lake: {lake['lake']}",
        ],
    )
    return EXIT_OK
