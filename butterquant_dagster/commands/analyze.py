"""``butterquant analyze --tickers T,...``: the signal ensemble's buy / hold / sell decisions
with the market regime, as JSON (or the portfolio system's export with ``--portfolio``),
analysing the session through Dagster first when the lake lacks its decisions.

Every ticker with a decision is printed; each one without is named on stderr with why and
the setting that adds it to the universe, and the command then exits 2."""

from __future__ import annotations

import datetime as dt
import sys

from butterquant_dagster.commands._data import lake
from butterquant_dagster.commands._dates import require_session
from butterquant_dagster.commands._errors import EXIT_BAD_INPUT, EXIT_OK, CliError
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.commands._output import dumps, report_failure
from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.universe import missing_tickers

REGIME_FIELDS = ("market_regime", "regime_confidence", "p_bear", "p_neutral", "p_bull")


def add_parser(sub) -> None:
    analyze = sub.add_parser(
        "analyze",
        help="buy / hold / sell decisions with the regime",
        description="The signal ensemble's decisions for tickers.",
    )
    analyze.add_argument("--tickers", required=True, help="comma-separated, e.g. AAPL,MSFT")
    analyze.add_argument("--date", help="session, YYYY-MM-DD (default: latest close)")
    analyze.add_argument("--show-reasoning", action="store_true", help="include the reasoning text")
    analyze.add_argument(
        "--portfolio",
        action="store_true",
        help="print the portfolio-system export (timestamp, shares, risk level)",
    )
    analyze.add_argument(
        "--capital",
        type=float,
        default=100_000.0,
        help="capital for the --portfolio shares (default 100000)",
    )
    analyze.set_defaults(handler=cmd_analyze)


def cmd_analyze(args) -> int:
    from butterquant_dagster.defs.ml.automation import ANALYSIS_JOB

    session = (
        require_session(args.date)
        if args.date
        else calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    )
    store = lake()
    key = session.isoformat()
    if key not in store.partitions("trading_decisions"):
        summary = materialize(ANALYSIS_JOB, session, session, show_progress=False)
        if not summary.success:
            return report_failure(summary, False)
    decisions = store.read("trading_decisions", [key])
    tickers = list(dict.fromkeys(t.strip().upper() for t in args.tickers.split(",") if t.strip()))
    if not tickers:
        raise CliError(f"--tickers names no ticker: {args.tickers!r}")
    missing = missing_tickers(
        tickers,
        set(decisions["symbol"]),
        list(store.read("universe")["symbol"]) if "universe" in store.tables() else [],
        what=f"decision on {key}",
        backfill=_backfill_command(store, key),
    )
    tickers = [t for t in tickers if t not in missing.reasons]
    if tickers:
        _print_decisions(args, store, session, decisions, tickers)
    if missing.reasons:
        print(
            f"butterquant: error: no decision on {key} for "
            f"{len(missing.reasons)} of {len(tickers) + len(missing.reasons)} ticker(s):",
            file=sys.stderr,
        )
        print("\n".join(missing.lines()), file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def _print_decisions(args, store, session, decisions, tickers: list[str]) -> None:
    from butterquant_dagster.core.ml.ensemble import decisions_json, portfolio_export

    key = session.isoformat()
    chosen = decisions[decisions["symbol"].isin(tickers)]
    regime = store.read("market_regime", [key]).iloc[0]
    regime_fields = {k: regime[k] for k in REGIME_FIELDS}
    if args.portfolio:
        closes = store.read("daily_bars", [key]).set_index("symbol")["close"]
        export = portfolio_export(
            chosen,
            regime_fields,
            timestamp=calendar.session_close(session).isoformat(),
            capital=args.capital,
            prices={t: float(closes[t]) for t in chosen["symbol"]},
        )
        print(dumps(export))
        return
    payload = decisions_json(chosen, regime_fields)
    if not args.show_reasoning:
        for decision in payload["decisions"].values():
            decision.pop("reasoning", None)
    print(dumps(payload))


def _backfill_command(store, key: str) -> str:
    """The backfill that loads a ticker's history up to ``key`` over the lake's sessions."""
    sessions = [s for s in store.partitions("daily_bars") if s <= key]
    start = sessions[0] if sessions else key
    return f"butterquant backfill --start {start} --end {key}"
