"""``butterquant backfill --start D --end D [--assets STAGE]``: a stage of history (or all
of them, in order) for every session in a range, each stage one run."""

from __future__ import annotations

from dataclasses import asdict

from butterquant_dagster.commands._data import lake_summary
from butterquant_dagster.commands._dates import require_closed, session_range
from butterquant_dagster.commands._errors import EXIT_OK
from butterquant_dagster.commands._output import emit, report_failure
from butterquant_dagster.commands._stages import STAGES, run_stages

ASSETS_HELP = (
    "which stage: market = universe, daily bars, option chains (+ synthetic truth); bars = "
    "the same without option chains (index history for the regime, years of it cost little); "
    "scan = every butterfly priced, scored and ranked; outcomes = the candidates of sessions "
    "whose expiries have passed, held to expiry; analysis = the market regime and buy / hold "
    "/ sell decisions; all = the bars the regime needs before the range, market, scan, the "
    "bars after it that settle its candidates, outcomes, analysis"
)


def add_parser(sub) -> None:
    backfill = sub.add_parser(
        "backfill",
        help="materialize a stage of history (default the market) for every session in a "
        "date range, one run per stage",
        description="Materialize assets for every NYSE session in [start, end], one run per "
        "stage (weekends and holidays are not sessions and are skipped). After "
        "`--assets all`, `butterquant train` has what it trains on.",
    )
    backfill.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    backfill.add_argument("--assets", choices=STAGES, default="market", help=ASSETS_HELP)
    backfill.add_argument("--json", action="store_true", help="print the result as JSON")
    backfill.set_defaults(handler=cmd_backfill)


def cmd_backfill(args) -> int:
    days = session_range(args.start, args.end)
    require_closed(days[-1], "--end")
    done = run_stages(args.assets, days, show=not args.json)
    if not done.success:
        return report_failure(done.runs[-1], args.json)
    lake = lake_summary(days[0], days[-1])
    last = done.runs[-1] if done.runs else None
    payload = {
        **(asdict(last) if last else {}),
        **lake,
        "stages": [asdict(run) for run in done.runs],
        "left_out": done.left_out,
    }
    lines = [
        f"{run.job}: {run.sessions} sessions {run.first_session}..{run.last_session} in one "
        f"run ({run.run_id})"
        for run in done.runs
    ] or ["nothing to run"]
    lines += [f"  left out ({stage}): {why}" for stage, why in done.left_out.items()]
    lines += [
        f"  {lake['tickers']} tickers, {lake['bars']} bars, {lake['contracts']} contracts",
        f"  lake: {lake['lake']}",
    ]
    emit(payload, args.json, lines)
    return EXIT_OK
