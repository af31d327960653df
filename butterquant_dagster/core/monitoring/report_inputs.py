"""What each periodic report shows, gathered from the ledger, the lake and the registry.

What only the orchestrator knows (the health checks, the runs and their failures) is passed
in, so this stays free of Dagster and the command and the assets build the same pages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS
from butterquant_dagster.core.ml.registry import age_days
from butterquant_dagster.core.monitoring import assemble, sources
from butterquant_dagster.core.monitoring.drift import (
    DriftThresholds,
    accuracy_by_regime_trend,
    feature_importance_trend,
)
from butterquant_dagster.core.monitoring.periods import report_window
from butterquant_dagster.core.monitoring.reports import (
    DailyReportInputs,
    MonthlyReportInputs,
    WeeklyReportInputs,
)
from butterquant_dagster.core.scan import ev_reliability
from butterquant_dagster.core.scan.score import RANKED_BUTTERFLY
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.account import AccountView, account_view
from butterquant_dagster.core.trading.execution import order_outcomes
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.portfolio import entry_notes
from butterquant_dagster.core.trading.rules import PortfolioRules

IMPORTANCE_WEEKS = 12  # the weekly report's feature-importance trend
ACCURACY_MONTHS = 12  # the monthly report's accuracy-by-regime trend
TOP_RANKINGS = 20
RANKING_SHOWN = [
    *RANKED_BUTTERFLY,
    "score",
    "ev_per_1000",
    "ml_success_prob",
    "ml_expected_roi",  # shown per $1,000 (ev_reliability.with_per_1000)
    "recommendation",
    "confidence",
]
REGIME_FIELDS = ("market_regime", "regime_confidence", "p_bear", "p_neutral", "p_bull")


@dataclass(frozen=True)
class ReportContext:
    """What every report reads from and how it judges: the same for the three periods."""

    store: Lake
    ledger: Ledger
    champion: object | None  # the registry's ModelVersion of the win model, or None
    now: dt.datetime
    benchmark_symbol: str | None = None
    thresholds: DriftThresholds | None = None
    rules: PortfolioRules | None = None  # the trading rules, for why a plan entered nothing

    def performance(self, start: dt.date | None, end: dt.date):
        return assemble.performance(
            self.store, self.ledger, start, end, benchmark_symbol=self.benchmark_symbol
        )

    def account(self, session: dt.date) -> AccountView:
        """The account at ``session``'s close: the figures ``positions`` and ``journal``
        show, from the same function."""
        return account_view(self.ledger, session)

    def drift(self, through: dt.date):
        return assemble.drift(self.store, self.ledger, self.champion, through, self.thresholds)


def week_label(session: dt.date) -> str:
    year, week, _ = session.isocalendar()
    return f"{year}-W{week:02d}"


def _regime(store: Lake, session: dt.date) -> dict | None:
    rows = sources.session_rows(store, "market_regime", session)
    if not len(rows):
        return None
    row = rows.iloc[-1]
    return {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in REGIME_FIELDS}


def daily_inputs(
    context: ReportContext,
    session: dt.date,
    *,
    health: pd.DataFrame,
    run_failures: pd.DataFrame | None,
) -> DailyReportInputs:
    """The guide's daily template for ``session``: status, decisions, performance, notes."""
    drift = context.drift(session)
    rankings = sources.session_rows(context.store, "scan_rankings", session)
    positions = sources.session_rows(context.store, "positions", session)
    orders = context.ledger.orders(session)
    freshness = (
        f"market snapshot of {session} is in the lake"
        if session.isoformat() in context.store.partitions("option_chains")
        else f"no market snapshot of {session} yet"
    )
    return DailyReportInputs(
        session=session,
        generated_at=context.now,
        health=health,
        model_version=context.champion.version if context.champion is not None else None,
        model_age_days=_age(context.champion, context.now),
        data_freshness=freshness,
        run_failures=run_failures,
        regime=_regime(context.store, session),
        decisions=sources.session_rows(context.store, "trading_decisions", session),
        orders=orders,
        rankings=ev_reliability.with_per_1000(
            rankings[[c for c in RANKING_SHOWN if c in rankings.columns]].head(TOP_RANKINGS)
        ),
        session_performance=context.performance(session, session),
        performance=context.performance(None, session),
        open_positions=positions
        if session.isoformat() in context.store.partitions("positions")
        else None,
        drift=drift,
        notes=[*execution_notes(orders), *_entry_notes(context, session)],
        account=context.account(session),
    )


def execution_notes(orders: pd.DataFrame) -> list[str]:
    """How the session's orders ended: the fill rate of exits and entries, and each exit
    that did not fill (it stays open past its rule until tomorrow's retry)."""
    outcomes = order_outcomes(orders)
    notes = [
        f"{'Exits' if intent == 'close' else 'Entries'}: {rate:.0%} of the orders sent filled."
        for intent, rate in outcomes["rate"].items()
    ]
    notes += [
        f"Exit not filled: {row.ticker} {row.structure} ({row.status}; "
        f"{str(row.reason).split(':', 1)[0]}) - retried first next session at a marketable "
        "limit."
        for row in outcomes["unfilled_exits"].itertuples(index=False)
    ]
    return notes


def _entry_notes(context: ReportContext, session: dt.date) -> list[str]:
    """Why the session's plan entered nothing on a track, when it did not."""
    if session.isoformat() not in context.store.partitions("target_orders"):
        return []
    return plan_notes(context.store, session, context.rules or PortfolioRules())


def plan_notes(store, session: dt.date, rules: PortfolioRules) -> list[str]:
    """The plan's notes for ``session`` as ``target_orders`` decides it: on the previous
    session's rankings and candidates, the floor judging the EV calibrated on outcomes
    settled before that decision."""
    decided_on = calendar.previous_session(session)
    curve = ev_reliability.ev_curve_at(store, decided_on)
    rankings = sources.session_rows(store, "scan_rankings", decided_on)
    candidates = sources.session_rows(store, "butterfly_candidates", decided_on)
    return entry_notes(
        ev_reliability.with_calibrated_ev(rankings, curve),
        ev_reliability.with_calibrated_ev(candidates, curve),
        rules,
    )


def weekly_inputs(context: ReportContext, session: dt.date) -> WeeklyReportInputs:
    """The week to ``session``: wins and losses by stock and regime, confidence vs
    accuracy, and which features still separate winners, week by week."""
    start, end = report_window("weekly", session)
    since = end - dt.timedelta(weeks=IMPORTANCE_WEEKS)
    labelled = sources.labelled_features(context.store, end, since=since)
    drift = context.drift(end)
    settled = ev_reliability.known_before(
        ev_reliability.settled_candidates(context.store, end, end), end
    )
    choice = ev_reliability.choose_rule_measure(ev_reliability.skill_table(settled))
    return WeeklyReportInputs(
        week=week_label(end),
        generated_at=context.now,
        performance=context.performance(start, end),
        drift=drift,
        feature_importance=feature_importance_trend(labelled, FEATURE_COLUMNS, period="W"),
        ranking_reliability=ev_reliability.report_frames(settled),
        baseline_choice=f"{choice.measure}: {choice.why}",
        notes=[f"sessions {start} to {end}"],
        account=context.account(end),
    )


def monthly_inputs(
    context: ReportContext,
    session: dt.date,
    *,
    runs: pd.DataFrame | None,
    run_failures: pd.DataFrame | None,
) -> MonthlyReportInputs:
    """The month to ``session``: against the benchmark, model accuracy by regime over the
    last months, drift, and how reliably the system ran."""
    start, end = report_window("monthly", session)
    since = start - dt.timedelta(days=31 * (ACCURACY_MONTHS - 1))
    resolved = sources.resolved_candidates(context.store, end, since=since)
    drift = context.drift(end)
    return MonthlyReportInputs(
        month=f"{end:%Y-%m}",
        generated_at=context.now,
        performance=context.performance(start, end),
        drift=drift,
        accuracy_by_regime=accuracy_by_regime_trend(resolved, period="M"),
        runs=runs,
        run_failures=run_failures,
        notes=[f"sessions {start} to {end}"],
        account=context.account(end),
    )


def _age(champion, now: dt.datetime) -> float | None:
    if champion is None:
        return None
    try:
        return float(age_days(champion, now))
    except ValueError:
        return None
