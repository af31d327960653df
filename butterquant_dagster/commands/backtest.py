"""The ``butterquant backtest`` command: check the request against the lake, run the
``backtest`` asset through Dagster (so the run, its metadata and chart are in the UI) and
print its figures.

Exit codes: 0 done, 1 the run failed, 2 bad input (unknown tickers, each named with the
setting that adds it to the universe; bad dates; a window whose sessions were never scanned
or analysed: the message names what to run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from butterquant_dagster.commands._args import positive_int
from butterquant_dagster.commands._dates import require_closed_text
from butterquant_dagster.commands._errors import EXIT_BAD_INPUT, EXIT_OK, CliError
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.commands._output import emit, report_failure
from butterquant_dagster.core import settings
from butterquant_dagster.core.backtest.result import DEFAULT_WINDOW_SESSIONS, STRATEGIES


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "backtest",
        help="backtest the butterfly portfolio (walk-forward) or the buy/hold/sell signals",
        description="Backtest over scanned sessions already in the lake, through Dagster (the "
        "run and its chart appear in the UI). butterfly: the 20-slot portfolio on the paper "
        "fill model, its probability models retrained every --step-sessions on outcomes "
        "known before each step. signals: the daily decisions traded on the stocks at the "
        "next open, against buy-and-hold. Reports go to <data root>/reports/backtests.",
    )
    parser.add_argument("--tickers", help="comma-separated, e.g. AAPL,MSFT (default: universe)")
    parser.add_argument(
        "--start-date",
        help=f"first session, YYYY-MM-DD (default: {DEFAULT_WINDOW_SESSIONS} sessions back)",
    )
    parser.add_argument(
        "--end-date", help="last session, YYYY-MM-DD (default: the last scanned session)"
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="butterfly",
        help="butterfly: the option portfolio (default); signals: the stock decisions",
    )
    parser.add_argument(
        "--initial-capital",
        type=_positive_float,
        default=100_000.0,
        help="starting cash in dollars (default 100000)",
    )
    parser.add_argument(
        "--step-sessions",
        type=positive_int,
        default=21,
        help="sessions per walk-forward step; models retrain at each (default 21)",
    )
    parser.add_argument(
        "--slippage-bps",
        type=_non_negative_float,
        default=5.0,
        help="signals: slippage against each stock fill in basis points (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=cmd_backtest)


def cmd_backtest(args) -> int:
    # Imported here: the models and the charts are heavy, and every command builds the parser.
    from butterquant_dagster.core.backtest.inputs import (
        BacktestInputError,
        check_request,
        parse_date,
    )
    from butterquant_dagster.core.backtest.report import REPORT_DIR
    from butterquant_dagster.core.storage.lake import Lake
    from butterquant_dagster.defs.backtest.assets import BACKTEST_JOB

    require_closed_text(args.start_date, "--start-date")
    require_closed_text(args.end_date, "--end-date")
    lake = Lake(settings.data_root())
    tickers = [t for t in (args.tickers or "").split(",") if t.strip()]
    if args.tickers is not None and not tickers:
        raise CliError(f"--tickers names no ticker: {args.tickers!r}")
    if _unknown_tickers(lake, tickers, args.end_date):
        return EXIT_BAD_INPUT
    try:
        parse_date(args.start_date, "--start-date")  # named as the user typed it
        parse_date(args.end_date, "--end-date")
        request = check_request(lake, args.strategy, tickers, args.start_date, args.end_date)
    except BacktestInputError as exc:
        raise CliError(str(exc)) from exc
    run_config = {
        "ops": {
            "backtest": {
                "config": {
                    "tickers": request.tickers if args.tickers else [],
                    "start_date": request.start.isoformat(),
                    "end_date": request.end.isoformat(),
                    "strategy": request.strategy,
                    "initial_capital": float(args.initial_capital),
                    "step_sessions": int(args.step_sessions),
                    "slippage_bps": float(args.slippage_bps),
                }
            }
        }
    }
    summary = materialize(
        BACKTEST_JOB, None, None, show_progress=not args.json, run_config=run_config
    )
    if not summary.success:
        return report_failure(summary, args.json)
    report = (
        settings.data_root()
        / REPORT_DIR
        / f"{request.strategy}-{request.start.isoformat()}-{request.end.isoformat()}.json"
    )
    result = json.loads(Path(report).read_text())
    emit({"run_id": summary.run_id, **result}, args.json, _lines(result, summary.run_id))
    return EXIT_OK


def _unknown_tickers(lake, tickers: list[str], end: str | None) -> bool:
    """Whether any requested ticker is outside the lake's universe; each is named on stderr
    with why and the setting that adds it (as `analyze` does)."""
    from butterquant_dagster.core.market.universe import missing_tickers

    if not tickers or "universe" not in lake.tables():
        return False  # no universe: check_request says what to run
    universe = [str(s) for s in lake.read("universe")["symbol"]]
    sessions = lake.partitions("daily_bars")
    last = end or (sessions[-1] if sessions else None)
    backfill = (
        f"butterquant backfill --start {sessions[0]} --end {last}"
        if sessions and last
        else "butterquant backfill"
    )
    missing = missing_tickers(
        tickers, set(universe), universe, what="backtest data", backfill=backfill
    )
    if not missing.reasons:
        return False
    asked = len({t.strip().upper() for t in tickers})
    print(
        f"butterquant: error: {len(missing.reasons)} of {asked} ticker(s) not in the universe:",
        file=sys.stderr,
    )
    print("\n".join(missing.lines()), file=sys.stderr)
    return True


def _lines(result: dict, run_id: str) -> list[str]:
    from butterquant_dagster.core.backtest.report import metric_lines

    tickers = result["tickers"]
    lines = [
        f"backtest {result['strategy']} {result['start']}..{result['end']}, "
        f"{len(tickers)} ticker(s), initial capital {result['initial_capital']:,.0f} "
        f"(run {run_id})",
        *["  " + line for line in metric_lines(result["metrics"])],
    ]
    if result.get("final_equity") is not None:
        lines.append(f"  final equity  {result['final_equity']:,.2f}")
    if result["steps"]:
        lines.append("walk-forward steps:")
        for step in result["steps"]:
            lines.append(
                f"  {step['step']:>2}  {step['start']}..{step['end']}  labels to "
                f"{step['label_cutoff']}  {step['training_rows']:>6} rows  "
                f"{'model' if step['model_trained'] else 'no model'}: {step['note']}"
            )
    if result["notes"]:
        lines.append("notes:")
        lines += [f"  - {note}" for note in result["notes"]]
    lines.append("report:")
    lines += [f"  {kind}: {path}" for kind, path in result["report"].items() if path]
    return lines
