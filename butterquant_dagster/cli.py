"""The ``butterquant`` command.

Every command that produces data materializes through Dagster against the project's
instance (``<data root>/dagster``), so each run shows up in the UI with its lineage, logs
and checks, exactly as if it had been launched there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import math
import os
import signal
import sys
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from butterquant_dagster.commands._instance import prepare_instance
from butterquant_dagster.core import calendar, progress, settings
from butterquant_dagster.core.storage.duckdb_files import CorruptDatabase
from butterquant_dagster.run_errors import error_text

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEMO_SESSIONS = 252  # a year of market data
DEMO_SCAN_SESSIONS = 100  # the last ~5 months are scanned; the older ~2 months settle
DEMO_TRADE_SESSIONS = 20  # the last four weeks are traded end to end on the paper broker
SCAN_HISTORY_SESSIONS = 65  # the signals need 60 sessions of closes
MAX_DTE_DAYS = 60  # the scan's longest expiry; older entry sessions can be settled


# Commands with a module of their own under butterquant_dagster/commands: each has
# ``add_parser(sub)`` that registers it with its handler.
COMMAND_MODULES = ("report", "backtest", "health", "backup", "sql", "runs")


class CliError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


@dataclass
class RunSummary:
    run_id: str
    success: bool
    job: str
    first_session: str
    last_session: str
    sessions: int
    data_dir: str
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- plumbing
class _ProgressBar:
    """One updating line per task on a terminal; plain lines when piped."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last: dict[str, int] = {}

    def __call__(self, task: str, done: int, total: int, label: str) -> None:
        if self.tty:
            width = 30
            filled = int(width * done / max(total, 1))
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if done == total else ""
            self.stream.write(f"\r{task:<14} [{bar}] {done:>5}/{total} {label}{end}")
            self.stream.flush()
            return
        step = max(1, total // 10)
        if done == total or done - self._last.get(task, 0) >= step:
            self._last[task] = done
            self.stream.write(f"{task}: {done}/{total} sessions ({label})\n")
            self.stream.flush()


def _session_range(start: str, end: str) -> list[dt.date]:
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise CliError(f"dates must be YYYY-MM-DD: {exc}") from exc
    try:
        days = calendar.sessions(first, last)
    except calendar.CalendarError as exc:
        raise CliError(str(exc)) from exc
    if not days:
        raise CliError(f"no NYSE session between {first} and {last}")
    partitions_start = dt.date.fromisoformat(settings.env("BUTTERQUANT_PARTITIONS_START"))
    if days[0] < partitions_start:
        raise CliError(
            f"{days[0]} is before the first partition {partitions_start}; set "
            "BUTTERQUANT_PARTITIONS_START earlier to backfill older sessions"
        )
    return days


def materialize_market(first: dt.date, last: dt.date, *, show_progress: bool) -> RunSummary:
    """Materialize the market snapshot for every session in [first, last] in one run."""
    from butterquant_dagster.defs.market.automation import MARKET_JOB

    return materialize(MARKET_JOB, first, last, show_progress=show_progress)


def materialize_regime_history(first: dt.date, *, show_progress: bool) -> RunSummary | None:
    """Bars (no chains) of the sessions a point-in-time regime of ``first`` needs before it
    and the lake lacks, in one run; None when nothing was missing."""
    from butterquant_dagster.core.ml.regime import first_bar_session_needed
    from butterquant_dagster.defs.market.automation import BARS_JOB

    try:
        start = first_bar_session_needed(first)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    have = set(_lake().partitions("daily_bars"))
    needed = calendar.sessions(start, calendar.previous_session(first))
    missing = [day for day in needed if day.isoformat() not in have]
    if not missing:
        return None
    return materialize(BARS_JOB, missing[0], missing[-1], show_progress=show_progress)


def materialize(
    job_name: str,
    first: dt.date | None,
    last: dt.date | None,
    *,
    show_progress: bool,
    run_config: dict | None = None,
) -> RunSummary:
    """Run ``job_name`` for every session in [first, last] in one run of the instance
    (``first`` None: a job of unpartitioned assets); ``run_config`` configures its ops."""
    instance = prepare_instance()
    from dagster import DagsterEventType

    from butterquant_dagster import runs, supervisor
    from butterquant_dagster.definitions import build_definitions

    job = build_definitions().resolve_job_def(job_name)
    unsubscribe = progress.subscribe(_ProgressBar()) if show_progress else (lambda: None)
    try:
        outcome = supervisor.execute(
            instance,
            job,
            tags={
                **(runs.partition_range_tags(first.isoformat(), last.isoformat()) if first else {}),
                # Who runs it: a later command can tell when this process is gone.
                **runs.launch_tags(),
            },
            # The full log stays in the instance (the UI); the terminal gets the summary.
            run_config={
                **(run_config or {}),
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            wait_limit=_slot_wait_seconds(),
        )
    finally:
        unsubscribe()
    result = outcome.result
    if result is None:  # the run was canceled before Dagster returned a result
        return RunSummary(
            run_id=outcome.run_id,
            success=False,
            job=job_name,
            first_session=first.isoformat() if first else "",
            last_session=last.isoformat() if last else "",
            sessions=len(calendar.sessions(first, last)) if first else 0,
            data_dir=str(settings.data_root()),
            failures=[outcome.gave_up or "the run was canceled"],
        )
    failures = [
        f"{event.step_key}: {error_text(event.event_specific_data.error)}"
        for event in result.all_events
        if event.event_type == DagsterEventType.STEP_FAILURE
    ]
    failed_checks = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    if outcome.gave_up:
        failures.insert(0, outcome.gave_up)
    return RunSummary(
        run_id=result.run_id,
        success=result.success and not outcome.gave_up,
        job=job_name,
        first_session=first.isoformat() if first else "",
        last_session=last.isoformat() if last else "",
        sessions=len(calendar.sessions(first, last)) if first else 0,
        data_dir=str(settings.data_root()),
        failures=failures,
        failed_checks=failed_checks,
    )


def _slot_wait_seconds() -> float:
    try:
        return settings.slot_wait_seconds()
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _lake_summary(first: dt.date, last: dt.date) -> dict[str, object]:
    from butterquant_dagster.core.storage.lake import Lake

    lake = Lake(settings.data_root())
    with lake.connect() as db:
        window = (first.isoformat(), last.isoformat())
        tickers, bars = db.execute(
            "SELECT count(DISTINCT symbol), count(*) FROM daily_bars "
            "WHERE session BETWEEN ?::DATE AND ?::DATE",
            window,
        ).fetchone()
        contracts, modelled = 0, 0
        if "option_chains" in lake.tables():  # absent after a bars-only backfill
            contracts, modelled = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE modelled) FROM option_chains "
                "WHERE session BETWEEN ?::DATE AND ?::DATE",
                window,
            ).fetchone()
    warehouse = lake.refresh_warehouse()
    return {
        "tickers": tickers,
        "bars": bars,
        "contracts": contracts,
        "modelled_contracts": modelled,
        "lake": str(lake.directory),
        "warehouse": str(warehouse),
    }


def _finite(value):
    """JSON has no NaN or Infinity: a missing number prints as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _print(summary: dict, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(_finite(summary), indent=2, default=str))
    else:
        print("\n".join(lines))


def _report_failure(summary: RunSummary, as_json: bool) -> int:
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
    else:
        print(f"run {summary.run_id} FAILED", file=sys.stderr)
        for message in summary.failures:
            print(message, file=sys.stderr)
    return EXIT_RUN_FAILED


# ----------------------------------------------------------------------------- commands
def cmd_backfill(args) -> int:
    from butterquant_dagster.commands.sessions import require_closed

    days = _session_range(args.start, args.end)
    require_closed(days[-1], "--end")
    if args.assets == "bars":
        from butterquant_dagster.defs.market.automation import BARS_JOB

        summary = materialize(BARS_JOB, days[0], days[-1], show_progress=not args.json)
    else:
        summary = materialize_market(days[0], days[-1], show_progress=not args.json)
    if not summary.success:
        return _report_failure(summary, args.json)
    lake = _lake_summary(days[0], days[-1])
    _print(
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


def _ensure_market(last: dt.date, sessions: int, show_progress: bool) -> RunSummary | None:
    """Backfill the market for any of the ``sessions`` up to ``last`` the lake lacks (the
    scan needs a price history); None when nothing was missing."""
    from butterquant_dagster.core.storage.lake import Lake

    have = set(Lake(settings.data_root()).partitions("option_chains"))
    needed = calendar.trailing_sessions(last, sessions)
    missing = [d for d in needed if d.isoformat() not in have]
    if not missing:
        return None
    days = _session_range(missing[0].isoformat(), last.isoformat())
    return materialize_market(days[0], days[-1], show_progress=show_progress)


def _rankings(session: dt.date, top: int):
    from butterquant_dagster.core.scan.ev_reliability import (
        EV_CALIBRATED,
        ev_curve_at,
        with_calibrated_ev,
    )
    from butterquant_dagster.core.storage.lake import Lake

    store = Lake(settings.data_root())
    rankings = store.read("scan_rankings", [session.isoformat()]).head(top)
    if EV_CALIBRATED in rankings:
        return rankings
    # Rankings scanned before the column existed: the EV as settled outcomes priced it.
    return with_calibrated_ev(rankings, ev_curve_at(store, session))


def _rankings_lines(frame) -> list[str]:
    from butterquant_dagster.core.scan.ev_reliability import EV_CALIBRATED, with_per_1000

    if frame.empty:
        return ["  (no candidates: every ticker was skipped; see the scan_skips table)"]
    columns = [
        "rank",
        "ticker",
        "strategy",
        "expiry",
        "lower",
        "center",
        "upper",
        "cost",
        "max_loss",
        "score",
        "ev_per_1000",
        "recommendation",
        "confidence",
    ]
    if EV_CALIBRATED in frame and frame[EV_CALIBRATED].notna().any():
        columns.insert(columns.index("ev_per_1000") + 1, EV_CALIBRATED)
    if frame["ml_success_prob"].notna().any():
        columns += ["ml_success_prob", "ml_expected_roi"]
    shown = with_per_1000(frame[columns].copy())  # every yield per $1,000
    shown["expiry"] = shown["expiry"].dt.strftime("%Y-%m-%d")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}").splitlines()


def _outcome_stats(first: dt.date, last: dt.date) -> dict[str, object]:
    from butterquant_dagster.core.storage.lake import Lake

    with Lake(settings.data_root()).connect() as db:
        rows, wins, mean_yield = db.execute(
            "SELECT count(*), avg(win::INTEGER), avg(yield_per_1000) FROM candidate_outcomes "
            "WHERE session BETWEEN ?::DATE AND ?::DATE",
            (first.isoformat(), last.isoformat()),
        ).fetchone()
    return {"settled_candidates": rows, "win_rate": wins, "mean_yield_per_1000": mean_yield}


def cmd_scan(args) -> int:
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    if args.date:
        session = _require(args.date)
    else:
        session = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    market = _ensure_market(session, SCAN_HISTORY_SESSIONS, show_progress=not args.json)
    if market is not None and not market.success:
        return _report_failure(market, args.json)
    summary = materialize(SCAN_JOB, session, session, show_progress=not args.json)
    if not summary.success:
        return _report_failure(summary, args.json)
    top = _rankings(session, args.top)
    if args.json:
        print(top.to_json(orient="records", date_format="iso", indent=2))
    else:
        print(f"top {len(top)} butterflies of {session} (run {summary.run_id})")
        print("\n".join(_rankings_lines(top)))
    return EXIT_OK


def cmd_demo(args) -> int:
    from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB, SCAN_JOB

    latest = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    days = calendar.trailing_sessions(latest, args.sessions)
    _session_range(days[0].isoformat(), latest.isoformat())
    show = not args.json
    history = materialize_regime_history(days[0], show_progress=show)
    if history is not None and not history.success:
        return _report_failure(history, args.json)
    summary = materialize_market(days[0], days[-1], show_progress=show)
    if not summary.success:
        return _report_failure(summary, args.json)
    scanned = days[-min(args.scan_sessions, len(days)) :]
    scan = materialize(SCAN_JOB, scanned[0], scanned[-1], show_progress=show)
    if not scan.success:
        return _report_failure(scan, args.json)
    matured = [d for d in scanned if d + dt.timedelta(days=MAX_DTE_DAYS) < latest]
    outcomes = {"settled_sessions": 0}
    trained = {"trained": False}
    if matured:
        settled = materialize(OUTCOMES_JOB, matured[0], matured[-1], show_progress=show)
        if not settled.success:
            return _report_failure(settled, args.json)
        outcomes = {"settled_sessions": len(matured), **_outcome_stats(matured[0], matured[-1])}
        if not args.skip_training:
            from butterquant_dagster.defs.ml.automation import ENSEMBLE_TRAINING_JOB

            runs = train_models("all", None, None, show)["runs"]
            failed = [
                r
                for r in runs
                if not r.success and r.job != ENSEMBLE_TRAINING_JOB and not refused_promotion(r)
            ]
            if failed:
                return _report_failure(failed[0], args.json)
            ensemble_notes = [
                f"ensemble not trained: {r.failures[0][:160]}"
                for r in runs
                if r.job == ENSEMBLE_TRAINING_JOB and not r.success and r.failures
            ]
            # The champion re-ranks the stretch the demo trades (and the session before it,
            # whose rankings the first trading session decides on).
            rescore_from = scanned[-min(args.trade_sessions + 1, len(scanned))]
            rescored = materialize(SCAN_JOB, rescore_from, latest, show_progress=show)
            if not rescored.success:
                return _report_failure(rescored, args.json)
            trained = {
                "ensemble_notes": ensemble_notes,
                "trained": True,
                "models": {n: _model_summary(n) for n in _registry().names()},
            }
    traded = scanned[-min(args.trade_sessions, len(scanned) - 1) :] if args.trade_sessions else []
    for done, day in enumerate(traded, start=1):
        run = execute_session_run(day, dry_run=False, show=False)
        if not run.success:
            return _report_failure(run, args.json)
        if show:
            print(f"execute: {done}/{len(traded)} sessions ({day})", file=sys.stderr)
    lake = _lake_summary(days[0], days[-1])
    top = _rankings(latest, 20)
    source = settings.env("BUTTERQUANT_MARKET_SOURCE")
    lines = [
        f"butterquant demo: {source} market, {summary.sessions} sessions "
        f"{summary.first_session}..{summary.last_session}",
        f"  tickers:   {lake['tickers']}",
        f"  bars:      {lake['bars']}",
        *(
            [
                f"  history:   index history of {history.sessions} more sessions "
                f"{history.first_session}..{history.last_session} for the regime (bars only)"
            ]
            if history is not None
            else []
        ),
        f"  contracts: {lake['contracts']} option quotes"
        + (" (modelled)" if lake["modelled_contracts"] == lake["contracts"] else ""),
        f"  scanned:   {len(scanned)} sessions {scanned[0]}..{scanned[-1]}",
    ]
    if trained["trained"]:
        lines += _model_lines(trained["models"]) + _regime_lines()
        measure = _baseline_measure(latest)
        if measure:
            lines.append(f"  baseline:  ranks by {measure} (the rule measure that validated)")
        lines += [f"  {note}" for note in trained["ensemble_notes"]]
    if outcomes["settled_sessions"]:
        lines.append(
            f"  outcomes:  {outcomes['settled_candidates']} candidates of "
            f"{outcomes['settled_sessions']} entry sessions held to expiry: win rate "
            f"{outcomes['win_rate']:.1%}, mean yield {outcomes['mean_yield_per_1000']:.0f} "
            "per $1,000 at risk"
        )
    lines += [
        f"  data:      {lake['lake']} (Parquet, one file per session)",
        f"  SQL:       {lake['warehouse']} (DuckDB views), or `butterquant sql`",
        f"  runs:      in the instance at {os.environ['DAGSTER_HOME']}",
        "  UI:        `make dev`, then open http://127.0.0.1:3000",
        "",
        f"top 20 butterflies of {latest}:",
        *_rankings_lines(top),
    ]
    trading = {}
    if traded:
        trading = _trading_summary(traded)
        lines += ["", f"paper trading {traded[0]}..{traded[-1]} ({len(traded)} sessions):"]
        lines += trading["lines"]
        lines += [f"  plan of {traded[-1]}: {note}" for note in _plan_notes(traded[-1])]
    from butterquant_dagster.commands.report import write_report

    written, page = write_report("daily", latest, show_progress=False)
    if not written.success:
        return _report_failure(written, args.json)
    lines += ["", f"daily report of {latest}: {page}", "  open it in a browser"]
    _print(
        {
            **asdict(summary),
            **lake,
            "regime_history": asdict(history) if history is not None else None,
            "source": source,
            "scanned_sessions": len(scanned),
            **outcomes,
            "top": top.to_dict(orient="records"),
            "trading": {k: v for k, v in trading.items() if k != "lines"},
            "daily_report": str(page),
        },
        args.json,
        lines,
    )
    return EXIT_OK


# ----------------------------------------------------------------------------- trading
def _trading():
    from butterquant_dagster.resources import trading_resource

    return trading_resource()


def _trading_session(text: str | None) -> dt.date:
    """The session to trade: --date, else today's session, else the latest completed one."""
    if text:
        day = _require(text)
        if not calendar.is_session(day):
            raise CliError(f"{day} is not an NYSE session")
        return day
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(calendar.EXCHANGE_TZ).date()
    return today if calendar.is_session(today) else calendar.latest_completed_session(now)


def execute_session_run(day: dt.date, *, dry_run: bool, show: bool) -> RunSummary:
    from butterquant_dagster.defs.trading.automation import EXECUTION_JOB, PLAN_JOB

    if dry_run:
        return materialize(PLAN_JOB, day, day, show_progress=show)
    return materialize(EXECUTION_JOB, day, day, show_progress=show)


def cmd_execute(args) -> int:
    day = _trading_session(args.date)
    summary = execute_session_run(day, dry_run=args.dry_run, show=not args.json)
    if not summary.success:
        return _report_failure(summary, args.json)
    targets = _lake().read_existing("target_orders", [day.isoformat()])
    ledger = _trading().ledger()
    orders = ledger.orders(day) if not args.dry_run else targets.iloc[0:0]
    fills = ledger.fills(day) if not args.dry_run else targets.iloc[0:0]
    result = {
        "session": day.isoformat(),
        "dry_run": args.dry_run,
        "targets": targets.to_dict(orient="records"),
        "orders": orders.to_dict(orient="records"),
        "fills": fills.to_dict(orient="records"),
        "run_id": summary.run_id,
    }
    lines = [f"butterquant execute {day}" + (" (dry run: nothing sent)" if args.dry_run else "")]
    lines.append(f"  targets: {len(targets)}")
    for row in targets.itertuples(index=False):
        lines.append(
            f"    {row.intent:6} {row.track:8} {row.ticker:6} {row.structure:9} x{row.quantity} "
            f"@ {row.limit_price:+.2f}  {row.reason}"
        )
    if not args.dry_run:
        counts = orders["status"].value_counts().to_dict() if len(orders) else {}
        lines.append(f"  orders:  {len(orders)} {counts}")
        for row in orders.loc[orders["status"] == "blocked"].itertuples(index=False):
            lines.append(f"    blocked {row.ticker}: {row.status_reason}")
        lines.append(f"  fills:   {len(fills)}")
    _print(result, args.json, lines)
    return EXIT_OK


def _plan_notes(session: dt.date) -> list[str]:
    """Why the plan of ``session`` entered nothing on a track, when it did not."""
    from butterquant_dagster.core.monitoring.report_inputs import plan_notes

    return plan_notes(_lake(), session, _trading().rules())


def _trading_summary(traded: list[dt.date]) -> dict:
    from butterquant_dagster.core.trading.execution import order_outcomes
    from butterquant_dagster.core.trading.journal import summary

    ledger = _trading().ledger()
    journal = ledger.journal()
    figures = summary(journal, ledger.equity())
    held = ledger.open_positions()
    orders = ledger.orders()
    outcomes = order_outcomes(orders)
    rates = ", ".join(
        f"{'exits' if intent == 'close' else 'entries'} {rate:.0%} filled"
        for intent, rate in outcomes["rate"].items()
    )
    lines = [
        f"  orders:    {len(orders)} {orders['status'].value_counts().to_dict()}",
        f"  fills:     {rates or 'no order went out'}"
        + (
            f"; {len(outcomes['unfilled_exits'])} exits ended unfilled (retried first the "
            "next session)"
            if len(outcomes["unfilled_exits"])
            else ""
        ),
        "  " + journal_lines(journal, figures)[0],
        *["  " + line for line in journal_lines(journal, figures)[1:]],
        f"  open:      {len(held)} of {_trading().max_positions} slots "
        f"({held.groupby('track').size().to_dict() if len(held) else {}})",
    ]
    for row in held.itertuples(index=False):
        lines.append(
            f"    {row.ticker:6} {row.structure:9} {row.track:8} x{row.quantity} "
            f"{row.lower:g}/{row.center:g}/{row.upper:g} exp {pd_date(row.expiry)} "
            f"entry {row.entry_price:+.2f}"
        )
    return {
        "sessions": [d.isoformat() for d in traded],
        "orders": len(orders),
        "journal": figures,
        "open_positions": len(held),
        "fill_rates": outcomes["rate"],
        "lines": lines,
    }


def cmd_positions(args) -> int:
    ledger = _trading().ledger()
    held = ledger.open_positions()
    marks = ledger.query(
        "SELECT position_id, arg_max(mark, session) AS mark, max(session) AS marked_on, "
        "arg_max(unrealized_pnl, session) AS unrealized_pnl FROM marks GROUP BY 1"
    )
    held = held.merge(marks, on="position_id", how="left")
    equity = ledger.equity()
    rows = held[
        ["position_id", "ticker", "structure", "track", "expiry", "lower", "center", "upper",
         "quantity", "entry_session", "entry_price", "mark", "unrealized_pnl", "marked_on"]
    ]  # fmt: skip
    result = {
        "open_positions": len(rows),
        "cash": ledger.cash_balance(),
        "equity": float(equity["equity"].iloc[-1]) if len(equity) else None,
        "positions": rows.to_dict(orient="records"),
    }
    lines = [f"{len(rows)} open positions; cash ${result['cash']:,.2f}"]
    for row in rows.itertuples(index=False):
        lines.append(
            f"  {row.ticker:6} {row.structure:9} {row.track:8} x{row.quantity} "
            f"{row.lower:g}/{row.center:g}/{row.upper:g} exp {pd_date(row.expiry)} "
            f"entry {row.entry_price:+.2f} mark {row.mark:+.2f} P/L {row.unrealized_pnl:+,.0f}"
        )
    _print(result, args.json, lines)
    return EXIT_OK


def pd_date(value) -> str:
    import pandas as pd

    return pd.Timestamp(value).date().isoformat()


def journal_lines(journal, figures: dict) -> list[str]:
    if not figures["trades"]:
        return ["journal: no closed trades yet"]
    lines = [
        f"journal: {figures['trades']} closed trades, win rate {figures['win_rate']:.1%}, "
        f"P/L ${figures['total_pnl']:+,.2f}, yield {figures['yield_per_1000']:+.0f} per $1,000"
        + (
            f", max drawdown {figures['max_drawdown']:.2%}"
            if figures.get("max_drawdown") is not None
            else ""
        )
    ]
    for track, numbers in figures.get("by_track", {}).items():
        lines.append(
            f"  {track:8} {numbers['trades']} trades, win rate {numbers['win_rate']:.1%}, "
            f"P/L ${numbers['total_pnl']:+,.2f}, yield {numbers['yield_per_1000']:+.0f} per $1,000"
        )
    lines.append(f"  exits: {figures.get('by_exit_reason', {})}")
    return lines


def cmd_journal(args) -> int:
    from butterquant_dagster.core.trading.journal import summary

    ledger = _trading().ledger()
    journal = ledger.journal()
    figures = summary(journal, ledger.equity())
    lines = journal_lines(journal, figures)
    for row in journal.tail(args.last).itertuples(index=False):
        lines.append(
            f"  {pd_date(row.entry_session)} -> {pd_date(row.exit_session)} {row.ticker:6} "
            f"{row.structure:9} {row.track:8} P/L {row.pnl:+8.2f} yield "
            f"{row.yield_per_1000:+5.0f} {row.exit_reason}" + (" GHOST" if row.ghost else "")
        )
    _print({**figures, "trades": journal.to_dict(orient="records")}, args.json, lines)
    return EXIT_OK


def _lake():
    from butterquant_dagster.core.storage.lake import Lake

    return Lake(settings.data_root())


def _registry():
    from butterquant_dagster.core.ml.registry import ModelRegistry

    return ModelRegistry(settings.data_root() / "models")


def train_models(model: str, start: str | None, end: str | None, show: bool) -> dict:
    """Fit the regime model over the bar history, then train the ensemble and the
    probability model over the scanned sessions in [start, end]; one run per stage."""
    from butterquant_dagster.core.ml.regime import first_labelled_session
    from butterquant_dagster.defs.ml.automation import (
        ENSEMBLE_TRAINING_JOB,
        FEATURES_JOB,
        PROBABILITY_TRAINING_JOB,
        REGIME_JOB,
    )

    lake = _lake()
    bars = lake.partitions("daily_bars")
    scanned = [
        s
        for s in lake.partitions("butterfly_candidates")
        if (not start or s >= start) and (not end or s <= end)
    ]
    if not bars:
        raise CliError(
            "no market data to train on; backfill first (`butterquant backfill` or "
            "`butterquant demo`)"
        )
    runs = []
    if model in ("all", "regime"):
        first = first_labelled_session([dt.date.fromisoformat(b) for b in bars])
        if first is None:
            raise CliError(
                f"{len(bars)} sessions of market data are too few for a point-in-time regime; "
                "backfill more (`butterquant backfill` or `butterquant demo`)"
            )
        window = {"start_date": start or "", "end_date": end or ""}
        runs.append(
            materialize(
                REGIME_JOB,
                first,
                dt.date.fromisoformat(bars[-1]),
                show_progress=show,
                run_config={"ops": {"regime_model": {"config": window}}},
            )
        )
        if not runs[-1].success:
            return {"runs": runs}
    if model in ("all", "ensemble"):
        # A refusal here (too little history per regime) leaves decisions on the signal
        # vote; it does not stop the probability model from training.
        runs.append(materialize(ENSEMBLE_TRAINING_JOB, None, None, show_progress=show))
    if model in ("all", "probability"):
        if not scanned:
            raise CliError(
                "no scanned sessions in the range: run `butterquant scan` or "
                "`butterquant demo` first"
            )
        if model == "all":
            # One run per unbroken stretch of scanned sessions (a range with a gap would
            # ask for features of sessions that were never scanned).
            for first, last in _contiguous_blocks(scanned):
                runs.append(materialize(FEATURES_JOB, first, last, show_progress=show))
                if not runs[-1].success:
                    return {"runs": runs}
        runs.append(materialize(PROBABILITY_TRAINING_JOB, None, None, show_progress=show))
    return {"runs": runs}


def _contiguous_blocks(keys: list[str]) -> list[tuple[dt.date, dt.date]]:
    """Runs of consecutive NYSE sessions among ``keys`` (sorted ISO dates)."""
    blocks: list[tuple[dt.date, dt.date]] = []
    for key in keys:
        day = dt.date.fromisoformat(key)
        if blocks and calendar.next_session(blocks[-1][1]) == day:
            blocks[-1] = (blocks[-1][0], day)
        else:
            blocks.append((day, day))
    return blocks


def _model_summary(name: str) -> dict | None:
    registry = _registry()
    champion = registry.champion(name) if name in registry.names() else None
    versions = registry.versions(name) if name in registry.names() else []
    if not versions:
        return None
    from butterquant_dagster.core.ml import model_card

    latest = versions[-1]
    metrics = latest.metadata.get("metrics", {})
    card = model_card.summary(latest.metadata)
    return {
        "name": name,
        "latest": latest.version,
        "champion": champion.version if champion else None,
        "forced": latest.forced,
        "gates_passed": card["gates_passed"],
        "not_champion_because": None
        if champion and champion.version == latest.version
        else "forced: registered, never promoted"
        if latest.forced
        else card["gates_reason"]
        if not card["gates_passed"]
        else "passed its gates but was not promoted (see its promotion record)",
        "training_samples": latest.metadata.get("training_samples"),
        "roc_auc": metrics.get("roc_auc"),
        "brier": metrics.get("brier"),
        "brier_skill": metrics.get("brier_skill"),
        "ece": metrics.get("ece"),
        "accuracy": metrics.get("accuracy"),
        "top_decile_yield_per_1000": metrics.get("economic", {}).get("top_decile_mean_yield"),
        "all_yield_per_1000": metrics.get("economic", {}).get("all_mean_yield"),
        "yield_spearman": metrics.get("spearman"),
    }


def _baseline_measure(session: dt.date) -> str | None:
    """The rule measure the baseline track ranked ``session``'s candidates by."""
    from butterquant_dagster.core.scan.ev_reliability import BASELINE_COLUMN

    rankings = _lake().read_existing("scan_rankings", [session.isoformat()])
    if BASELINE_COLUMN not in rankings.columns or rankings.empty:
        return None
    return str(rankings[BASELINE_COLUMN].iloc[0])


def refused_promotion(run: RunSummary) -> bool:
    """A training run that failed only because the new model's blocking promotion checks
    failed: the model was trained and registered, and is not champion. That is an outcome
    to report, not a crash."""
    return (
        not run.success
        and bool(run.failed_checks)
        and all(check.startswith("probability_model:") for check in run.failed_checks)
        and all("DagsterAssetCheckFailedError" in failure for failure in run.failures)
    )


def _model_lines(models: dict) -> list[str]:
    """Which models are champion, why the others are not, and so which track trades."""
    from butterquant_dagster.core.monitoring.health import ENSEMBLE_PREFIX

    win = models.get("butterfly_win_probability") or {}
    gain = models.get("butterfly_expected_yield") or {}
    figures = (
        f"walk-forward AUC {win.get('roc_auc') or float('nan'):.3f}, Brier skill "
        f"{win.get('brier_skill') or float('nan'):+.3f}, ECE {win.get('ece') or float('nan'):.3f}"
    )
    lines = [f"  model:     butterfly_win_probability {win.get('latest')}: {figures}"]
    if win.get("champion"):
        lines.append(f"             champion {win['champion']} (passed every promotion gate)")
        if gain.get("champion") and not gain.get("not_champion_because"):
            lines.append("  AI track:  trades, ranked by the model's expected yield")
        else:
            why = gain.get("not_champion_because") or "no validated expected-yield model"
            lines.append(f"  AI track:  trades, ranked by P(win): expected yield not used ({why})")
    else:
        why = win.get("not_champion_because") or "no model trained"
        lines.append(f"             not promoted: {why}")
        lines.append("  AI track:  does not trade (no P(win) champion that passed its gates)")
    ensemble = sorted(
        f"{name.removeprefix(ENSEMBLE_PREFIX)} {s['champion']}"
        for name, s in models.items()
        if name.startswith(ENSEMBLE_PREFIX) and s and s.get("champion")
    )
    lines.append(
        "  ensemble:  "
        + (", ".join(ensemble) if ensemble else "no per-regime signal model passed its gates")
        + "; other regimes decide by the signal vote"
    )
    return lines


def _regime_lines() -> list[str]:
    """The current regime model's window and how its point-in-time history graded."""
    lake = _lake()
    if not lake.partition_path("regime_model", None).exists():
        return []
    row = lake.read("regime_model").iloc[0]
    validation = json.loads(row["gates_json"])
    values = ", ".join(
        f"{gate['name'].replace('_', ' ')} {gate['value']:.2f}"
        for gate in validation["gates"]
        if gate["value"] is not None
    )
    return [
        f"  regime:    fitted on {row['train_start']}..{row['train_end']} "
        f"({row['n_samples']} sessions)",
        f"             {validation['summary']}" + (f" ({values})" if values else ""),
    ]


def cmd_train(args) -> int:
    from butterquant_dagster.commands.sessions import require_closed_text

    require_closed_text(args.end_date, "--end-date")
    require_closed_text(args.start_date, "--start-date")
    if args.force:
        os.environ["BUTTERQUANT_FORCE_TRAINING"] = "true"
    if args.tickers:
        os.environ["BUTTERQUANT_TRAINING_TICKERS"] = args.tickers
    before = {
        n: (_registry().champion(n).version if _registry().champion(n) else None)
        for n in _registry().names()
    }
    result = train_models(args.model, args.start_date, args.end_date, show=not args.json)
    failed = [r for r in result["runs"] if not r.success]
    summaries = {n: _model_summary(n) for n in _registry().names()}
    changed = {
        n: {"before": before.get(n), "after": s["champion"]}
        for n, s in summaries.items()
        if s and before.get(n) != s["champion"]
    }
    payload = {
        "success": not failed,
        "runs": [asdict(r) for r in result["runs"]],
        "models": summaries,
        "champion_changed": changed,
    }
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        for run in result["runs"]:
            print(f"{run.job}: {'ok' if run.success else 'FAILED'} ({run.run_id})")
            for message in run.failures:
                print(f"  {message}", file=sys.stderr)
        for name, summary in summaries.items():
            if summary:
                print(
                    f"{name}: latest {summary['latest']}, champion {summary['champion']}"
                    + (
                        f", AUC {summary['roc_auc']:.3f}, Brier {summary['brier']:.4f}, "
                        f"ECE {summary['ece']:.4f}"
                        if summary.get("brier") is not None and summary.get("roc_auc") is not None
                        else ""
                    )
                )
                if summary["not_champion_because"]:
                    print(f"  {summary['latest']} not champion: {summary['not_champion_because']}")
        if args.force:
            print("forced: every model was trained and registered as forced, never promoted")
        print(
            "champion changed: "
            + (", ".join(f"{n} {c['before']} -> {c['after']}" for n, c in changed.items()) or "no")
        )
    return EXIT_RUN_FAILED if failed else EXIT_OK


def cmd_models(args) -> int:
    from butterquant_dagster.core.ml.registry import RegistryError

    registry = _registry()
    try:
        if args.action == "list":
            rows = [s for s in (_model_summary(n) for n in registry.names()) if s]
            if args.json:
                print(json.dumps(rows, indent=2, default=str))
            else:
                for row in rows:
                    print(
                        f"{row['name']:<32} latest {row['latest']}  champion "
                        f"{row['champion']}  samples {row['training_samples']}"
                    )
                    if row["not_champion_because"]:
                        why = row["not_champion_because"]
                        print(f"{'':<32} {row['latest']} not champion: {why}")
                if not rows:
                    print("no models yet: run `butterquant train`")
        elif args.action == "show":
            if not args.name:
                raise CliError("models show needs NAME")
            version = (
                registry.get(args.name, args.version)
                if args.version
                else (registry.champion(args.name) or registry.versions(args.name)[-1])
            )
            if args.json:
                print(json.dumps(version.metadata, indent=2, default=str))
            else:
                from butterquant_dagster.core.ml import model_card

                print(model_card.text(version.metadata))
        elif args.action == "promote":
            if not (args.name and args.version):
                raise CliError("models promote needs NAME and VERSION")
            registry.promote(args.name, args.version, reason="promoted by hand (CLI)")
            print(f"{args.name}: champion is now {args.version}")
        elif args.action == "rollback":
            if not args.name:
                raise CliError("models rollback needs NAME")
            version = registry.rollback(args.name)
            print(f"{args.name}: rolled back to {version.version}")
    except (RegistryError, IndexError) as exc:
        raise CliError(str(exc) or "no such model") from exc
    return EXIT_OK


def cmd_analyze(args) -> int:
    from butterquant_dagster.core.ml.ensemble import decisions_json
    from butterquant_dagster.defs.ml.automation import ANALYSIS_JOB

    session = (
        _require(args.date)
        if args.date
        else calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    )
    lake = _lake()
    key = session.isoformat()
    if key not in lake.partitions("trading_decisions"):
        summary = materialize(ANALYSIS_JOB, session, session, show_progress=False)
        if not summary.success:
            return _report_failure(summary, False)
    decisions = lake.read("trading_decisions", [key])
    tickers = [t.strip().upper() for t in args.tickers.split(",") if t.strip()]
    unknown = sorted(set(tickers) - set(decisions["symbol"]))
    if unknown:
        raise CliError(
            f"no decision for {unknown} on {key} (not in the universe, or too little price history)"
        )
    chosen = decisions[decisions["symbol"].isin(tickers)]
    regime = lake.read("market_regime", [key]).iloc[0]
    regime_fields = {
        k: regime[k]
        for k in ("market_regime", "regime_confidence", "p_bear", "p_neutral", "p_bull")
    }
    if args.portfolio:
        from butterquant_dagster.core.ml.ensemble import portfolio_export

        closes = lake.read("daily_bars", [key]).set_index("symbol")["close"]
        export = portfolio_export(
            chosen,
            regime_fields,
            timestamp=calendar.session_close(session).isoformat(),
            capital=args.capital,
            prices={t: float(closes[t]) for t in chosen["symbol"]},
        )
        print(json.dumps(export, indent=2, default=str))
        return EXIT_OK
    payload = decisions_json(chosen, regime_fields)
    if not args.show_reasoning:
        for decision in payload["decisions"].values():
            decision.pop("reasoning", None)
    print(json.dumps(payload, indent=2, default=str))
    return EXIT_OK


def _require(text: str) -> dt.date:
    """--date as a session that has closed (commands/sessions.py says why)."""
    from butterquant_dagster.commands.sessions import require_closed

    try:
        day = calendar.require_session(text, what="--date")
    except calendar.CalendarError as exc:
        raise CliError(str(exc)) from exc
    return require_closed(day, "--date")


def cmd_status(args) -> int:
    from butterquant_dagster.core.storage.lake import Lake

    lake = Lake(settings.data_root())
    tables = {}
    for table in lake.tables():
        parts = lake.partitions(table)
        tables[table] = {
            "partitions": len(parts),
            "first": parts[0] if parts else None,
            "last": parts[-1] if parts else None,
        }
    _print(
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


def cmd_sessions(args) -> int:
    days = _session_range(args.start, args.end)
    early = {e.session for e in calendar.early_closes(days[0], days[-1])}
    rows = [{"session": d.isoformat(), "early_close": d in early} for d in days]
    _print(
        {"sessions": rows, "count": len(rows)},
        args.json,
        [f"{r['session']}{'  (early close 13:00)' if r['early_close'] else ''}" for r in rows]
        + [f"{len(rows)} sessions"],
    )
    return EXIT_OK


def _load_dotenv() -> None:
    """Read ./.env like `dagster dev` does, so the CLI and the UI share one configuration
    (variables already set in the environment win)."""
    from dotenv import load_dotenv

    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="butterquant",
        description="Run the butterquant Dagster project from the terminal. Data root: "
        "$BUTTERQUANT_DATA_DIR (default ./data); runs appear in the Dagster UI.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

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

    demo = sub.add_parser(
        "demo",
        help="backfill a year of the market, scan, settle, train, show the top 20",
        description="Backfill the most recent sessions (synthetic market by default), scan the "
        "latest ones, settle the candidates whose expiries have passed, and print what was "
        "produced, where, and the top 20 butterflies.",
    )
    demo.add_argument(
        "--sessions",
        type=_positive_int,
        default=DEMO_SESSIONS,
        help=f"how many sessions back from the latest close (default {DEMO_SESSIONS})",
    )
    demo.add_argument(
        "--scan-sessions",
        type=_positive_int,
        default=DEMO_SCAN_SESSIONS,
        help=f"how many of the latest sessions to scan (default {DEMO_SCAN_SESSIONS})",
    )
    demo.add_argument(
        "--skip-training",
        action="store_true",
        help="do not train the models (rankings use the rule score)",
    )
    demo.add_argument(
        "--trade-sessions",
        type=int,
        default=DEMO_TRADE_SESSIONS,
        help=f"latest sessions traded on the paper broker (default {DEMO_TRADE_SESSIONS}; 0: none)",
    )
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.set_defaults(handler=cmd_demo)

    scan = sub.add_parser(
        "scan",
        help="scan a session's butterflies and print the top rankings",
        description="Scan, price, score and rank every listed butterfly of a session "
        "(default: the latest completed session), backfilling the market history it needs.",
    )
    scan.add_argument("--date", help="session to scan, YYYY-MM-DD (default: latest close)")
    scan.add_argument("--top", type=_positive_int, default=20, help="rows to print (20)")
    scan.add_argument("--json", action="store_true", help="print the rankings as JSON")
    scan.set_defaults(handler=cmd_scan)

    train = sub.add_parser(
        "train",
        help="train, validate walk-forward, export and register the models",
        description="Fit the regime model, train the signal ensemble and the butterfly "
        "probability model on the scanned history, and promote only a model that passes "
        "every promotion gate (skill over the base rate and the best single feature, "
        "calibration, ONNX parity) and beats the champion.",
    )
    train.add_argument(
        "--model",
        choices=["all", "regime", "ensemble", "probability"],
        default="all",
        help="which models (default all)",
    )
    train.add_argument(
        "--start-date",
        help="first session to train on: scanned sessions for the probability model, bars "
        "for the regime model (refused, never widened, if the window cannot be honoured)",
    )
    train.add_argument("--end-date", help="last session to train on (as --start-date)")
    train.add_argument("--tickers", help="comma-separated tickers for the probability model")
    train.add_argument(
        "--force",
        action="store_true",
        help="train even on too little data; every model trained is registered as forced "
        "and never promoted",
    )
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.set_defaults(handler=cmd_train)

    models = sub.add_parser(
        "models",
        help="list, show, promote or roll back models",
        description="The model registry under <data root>/models.",
    )
    models.add_argument("action", choices=["list", "show", "promote", "rollback"])
    models.add_argument("name", nargs="?", help="model name, e.g. butterfly_win_probability")
    models.add_argument("version", nargs="?", help="version, e.g. v0002")
    models.add_argument("--json", action="store_true", help="print JSON (list, show)")
    models.set_defaults(handler=cmd_models)

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

    status = sub.add_parser(
        "status", help="what the lake holds", description="Tables and partitions in the data root."
    )
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(handler=cmd_status)

    sessions = sub.add_parser(
        "sessions",
        help="list NYSE sessions in a date range",
        description="NYSE sessions and early closes in [start, end].",
    )
    sessions.add_argument("--start", required=True, help="first date, YYYY-MM-DD")
    sessions.add_argument("--end", required=True, help="last date, YYYY-MM-DD")
    sessions.add_argument("--json", action="store_true", help="print the result as JSON")
    sessions.set_defaults(handler=cmd_sessions)

    execute = sub.add_parser(
        "execute",
        help="trade one session: plan, reconcile, send, collect fills, mark, journal",
        description="Run the execution job for one session on the configured broker (the "
        "paper broker by default). A past session is replayed at its decision time.",
    )
    execute.add_argument("--date", help="session, YYYY-MM-DD (default: today's session)")
    execute.add_argument(
        "--dry-run", action="store_true", help="plan the orders and print them; send nothing"
    )
    execute.add_argument("--json", action="store_true", help="print the result as JSON")
    execute.set_defaults(handler=cmd_execute)

    positions = sub.add_parser("positions", help="open positions with their latest marks")
    positions.add_argument("--json", action="store_true", help="print the result as JSON")
    positions.set_defaults(handler=cmd_positions)

    journal = sub.add_parser("journal", help="closed trades and the track record")
    journal.add_argument("--last", type=_positive_int, default=20, help="trades listed")
    journal.add_argument("--json", action="store_true", help="print the result as JSON")
    journal.set_defaults(handler=cmd_journal)

    for name in COMMAND_MODULES:
        importlib.import_module(f"butterquant_dagster.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `butterquant sql ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Dagster marks some of the APIs used here beta/preview; that is for us, not the user.
    warnings.filterwarnings("ignore", message=r".*(currently in beta|currently in preview).*")
    warnings.filterwarnings("ignore", module="dagster")
    _load_dotenv()
    args = build_parser().parse_args(argv)
    from butterquant_dagster import signals

    with signals.stop_on_signals() as received:
        try:
            return _handle(args)
        except KeyboardInterrupt:
            print(f"butterquant: stopped by {signals.name(received)}", file=sys.stderr)
            return signals.exit_code(received)


def _handle(args) -> int:
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"butterquant: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CorruptDatabase as exc:  # names the file and the `butterquant restore` to run
        print(f"butterquant: error: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
