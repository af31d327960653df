"""``butterquant demo``: the whole system on a year of the (synthetic) market, end to end.

The steps, each one run or a few runs of the instance: backfill the market (and the bar
history the regime needs before it), scan the latest sessions, settle the candidates whose
expiries have passed, train the models and re-rank with the champion, trade the last weeks on
the paper broker, write the daily report; then say what was made, where, and the top 20
butterflies. A failed run ends the demo with its summary (exit 1).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import asdict, dataclass, field

from butterquant_dagster.commands._args import positive_int
from butterquant_dagster.commands._data import lake, lake_summary, registry, trading
from butterquant_dagster.commands._dates import session_range
from butterquant_dagster.commands._errors import EXIT_OK, RunFailed
from butterquant_dagster.commands._materialize import (
    RunSummary,
    materialize,
    materialize_market,
    succeeded,
)
from butterquant_dagster.commands._models import model_summary, train_models
from butterquant_dagster.commands._output import emit
from butterquant_dagster.commands._rankings import rankings, rankings_lines
from butterquant_dagster.commands._reports import write_report
from butterquant_dagster.commands._stages import matured, regime_history
from butterquant_dagster.commands._trading import execute_session_run, journal_lines, pd_date
from butterquant_dagster.core import calendar, settings

DEMO_SESSIONS = 252  # a year of market data
DEMO_SCAN_SESSIONS = 100  # the last ~5 months are scanned; the older ~2 months settle
DEMO_TRADE_SESSIONS = 20  # the last four weeks are traded end to end on the paper broker


def add_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="backfill a year of the market, scan, settle, train, show the top 20",
        description="Backfill the most recent sessions (synthetic market by default), scan the "
        "latest ones, settle the candidates whose expiries have passed, and print what was "
        "produced, where, and the top 20 butterflies.",
    )
    demo.add_argument(
        "--sessions",
        type=positive_int,
        default=DEMO_SESSIONS,
        help=f"how many sessions back from the latest close (default {DEMO_SESSIONS})",
    )
    demo.add_argument(
        "--scan-sessions",
        type=positive_int,
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


@dataclass
class Made:
    """What the demo's runs made, for its summary."""

    latest: dt.date
    days: list[dt.date]
    history: RunSummary | None = None
    market: RunSummary | None = None
    scanned: list[dt.date] = field(default_factory=list)
    outcomes: dict = field(default_factory=lambda: {"settled_sessions": 0})
    trained: dict = field(default_factory=lambda: {"trained": False})
    traded: list[dt.date] = field(default_factory=list)


def cmd_demo(args) -> int:
    show = not args.json
    latest = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    made = Made(latest, calendar.trailing_sessions(latest, args.sessions))
    session_range(made.days[0].isoformat(), latest.isoformat())  # refuses a range too old
    backfill(made, show)
    scan(made, args.scan_sessions, show)
    ready = matured(made.scanned, latest)
    if ready:
        settle(made, ready, show)
        if not args.skip_training:
            train(made, args.trade_sessions, show)
    trade(made, args.trade_sessions, show)
    summarize(made, args.json)
    return EXIT_OK


# ----------------------------------------------------------------------------- the steps
def backfill(made: Made, show: bool) -> None:
    """The bar history the regime needs before the first session, then the market."""
    made.history = regime_history(made.days[0], show_progress=show)
    if made.history is not None:
        succeeded(made.history)
    made.market = succeeded(materialize_market(made.days[0], made.days[-1], show_progress=show))


def scan(made: Made, sessions: int, show: bool) -> None:
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    made.scanned = made.days[-min(sessions, len(made.days)) :]
    succeeded(materialize(SCAN_JOB, made.scanned[0], made.scanned[-1], show_progress=show))


def settle(made: Made, matured: list[dt.date], show: bool) -> None:
    """Hold the candidates of the sessions whose expiries have passed to expiry."""
    from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB

    succeeded(materialize(OUTCOMES_JOB, matured[0], matured[-1], show_progress=show))
    made.outcomes = {"settled_sessions": len(matured), **outcome_stats(matured[0], matured[-1])}


def outcome_stats(first: dt.date, last: dt.date) -> dict[str, object]:
    with lake().connect() as db:
        rows, wins, mean_yield = db.execute(
            "SELECT count(*), avg(win::INTEGER), avg(yield_per_1000) FROM candidate_outcomes "
            "WHERE session BETWEEN ?::DATE AND ?::DATE",
            (first.isoformat(), last.isoformat()),
        ).fetchone()
    return {"settled_candidates": rows, "win_rate": wins, "mean_yield_per_1000": mean_yield}


def train(made: Made, trade_sessions: int, show: bool) -> None:
    """Train every model; the champion then re-ranks the stretch the demo trades (and the
    session before it, whose rankings the first trading session decides on)."""
    from butterquant_dagster.defs.ml.automation import ENSEMBLE_TRAINING_JOB
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    runs = train_models("all", None, None, show)["runs"]
    for run in runs:
        if not run.success and run.job != ENSEMBLE_TRAINING_JOB and not refused_promotion(run):
            raise RunFailed(run)
    ensemble_notes = [
        f"ensemble not trained: {r.failures[0][:160]}"
        for r in runs
        if r.job == ENSEMBLE_TRAINING_JOB and not r.success and r.failures
    ]
    rescore_from = made.scanned[-min(trade_sessions + 1, len(made.scanned))]
    succeeded(materialize(SCAN_JOB, rescore_from, made.latest, show_progress=show))
    made.trained = {
        "ensemble_notes": ensemble_notes,
        "trained": True,
        "models": {n: model_summary(n) for n in registry().names()},
    }


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


def trade(made: Made, trade_sessions: int, show: bool) -> None:
    """Trade the latest ``trade_sessions`` scanned sessions on the paper broker, in order."""
    scanned = made.scanned
    made.traded = scanned[-min(trade_sessions, len(scanned) - 1) :] if trade_sessions else []
    for done, day in enumerate(made.traded, start=1):
        succeeded(execute_session_run(day, dry_run=False, show=False))
        if show:
            print(f"execute: {done}/{len(made.traded)} sessions ({day})", file=sys.stderr)


# ----------------------------------------------------------------------------- the summary
def summarize(made: Made, as_json: bool) -> None:
    """Print what was made (reading the lake, the registry and the ledger), after writing
    the daily report of the latest session."""
    market, history, latest = made.market, made.history, made.latest
    lake_figures = lake_summary(made.days[0], made.days[-1])
    top = rankings(latest, 20)
    source = settings.env("BUTTERQUANT_MARKET_SOURCE")
    lines = [
        *made_lines(made, lake_figures, source),
        "",
        f"top 20 butterflies of {latest}:",
        *rankings_lines(top),
    ]
    trading_figures = {}
    if made.traded:
        trading_figures = trading_summary(made.traded)
        first, last = made.traded[0], made.traded[-1]
        lines += ["", f"paper trading {first}..{last} ({len(made.traded)} sessions):"]
        lines += trading_figures["lines"]
        lines += [f"  plan of {made.traded[-1]}: {note}" for note in plan_notes(made.traded[-1])]
    written, page = write_report("daily", latest, show_progress=False)
    succeeded(written)
    lines += ["", f"daily report of {latest}: {page}", "  open it in a browser"]
    emit(
        {
            **asdict(market),
            **lake_figures,
            "regime_history": asdict(history) if history is not None else None,
            "source": source,
            "scanned_sessions": len(made.scanned),
            **made.outcomes,
            "top": top.to_dict(orient="records"),
            "trading": {k: v for k, v in trading_figures.items() if k != "lines"},
            "daily_report": str(page),
        },
        as_json,
        lines,
    )


def made_lines(made: Made, lake_figures: dict, source: str) -> list[str]:
    """The demo's text summary: the market, the models, the outcomes, where things are."""
    market, history, scanned = made.market, made.history, made.scanned
    modelled = lake_figures["modelled_contracts"]
    lines = [
        f"butterquant demo: {source} market, {market.sessions} sessions "
        f"{market.first_session}..{market.last_session}",
        f"  tickers:   {lake_figures['tickers']}",
        f"  bars:      {lake_figures['bars']}",
    ]
    if history is not None:
        lines.append(
            f"  history:   index history of {history.sessions} more sessions "
            f"{history.first_session}..{history.last_session} for the regime (bars only)"
        )
    lines += [
        f"  contracts: {lake_figures['contracts']} option quotes"
        + (" (modelled)" if modelled == lake_figures["contracts"] else ""),
        f"  scanned:   {len(scanned)} sessions {scanned[0]}..{scanned[-1]}",
    ]
    if made.trained["trained"]:
        lines += model_lines(made.trained["models"]) + regime_lines()
        measure = baseline_measure(made.latest)
        if measure:
            lines.append(f"  baseline:  ranks by {measure} (the rule measure that validated)")
        lines += [f"  {note}" for note in made.trained["ensemble_notes"]]
    outcomes = made.outcomes
    if outcomes["settled_sessions"]:
        lines.append(
            f"  outcomes:  {outcomes['settled_candidates']} candidates of "
            f"{outcomes['settled_sessions']} entry sessions held to expiry: win rate "
            f"{outcomes['win_rate']:.1%}, mean yield {outcomes['mean_yield_per_1000']:.0f} "
            "per $1,000 at risk"
        )
    return [
        *lines,
        f"  data:      {lake_figures['lake']} (Parquet, one file per session)",
        f"  SQL:       {lake_figures['warehouse']} (DuckDB views), or `butterquant sql`",
        f"  runs:      in the instance at {os.environ['DAGSTER_HOME']}",
        "  UI:        `make dev`, then open http://127.0.0.1:3000",
    ]


def model_lines(models: dict) -> list[str]:
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


def regime_lines() -> list[str]:
    """The current regime model's window and how its point-in-time history graded."""
    store = lake()
    if not store.partition_path("regime_model", None).exists():
        return []
    row = store.read("regime_model").iloc[0]
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


def baseline_measure(session: dt.date) -> str | None:
    """The rule measure the baseline track ranked ``session``'s candidates by."""
    from butterquant_dagster.core.scan.ev_reliability import BASELINE_COLUMN

    frame = lake().read_existing("scan_rankings", [session.isoformat()])
    if BASELINE_COLUMN not in frame.columns or frame.empty:
        return None
    return str(frame[BASELINE_COLUMN].iloc[0])


def plan_notes(session: dt.date) -> list[str]:
    """Why the plan of ``session`` entered nothing on a track, when it did not."""
    from butterquant_dagster.core.monitoring.report_inputs import plan_notes as notes

    return notes(lake(), session, trading().rules())


def trading_summary(traded: list[dt.date]) -> dict:
    """Orders, fill rates, the journal and the open positions after the demo's trading."""
    from butterquant_dagster.core.trading.account import account_view
    from butterquant_dagster.core.trading.execution import order_outcomes
    from butterquant_dagster.core.trading.journal import summary

    resource = trading()
    ledger = resource.ledger()
    account = account_view(ledger)
    figures = summary(ledger.journal(), account=account)
    held = ledger.open_positions()
    orders = ledger.orders()
    outcomes = order_outcomes(orders)
    rates = ", ".join(
        f"{'exits' if intent == 'close' else 'entries'} {rate:.0%} filled"
        for intent, rate in outcomes["rate"].items()
    )
    unfilled = len(outcomes["unfilled_exits"])
    journal = journal_lines(figures, account)
    lines = [
        f"  orders:    {len(orders)} {orders['status'].value_counts().to_dict()}",
        f"  fills:     {rates or 'no order went out'}"
        + (
            f"; {unfilled} exits ended unfilled (retried first the next session)"
            if unfilled
            else ""
        ),
        "  " + journal[0],
        *["  " + line for line in journal[1:]],
        f"  open:      {len(held)} of {resource.max_positions} slots "
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
