"""The performance and drift reports of a period, from the ledger, the lake and the model
registry: the one path the assets, the report files and the command all take."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from butterquant_dagster.core.monitoring import sources
from butterquant_dagster.core.monitoring.drift import DriftReport, DriftThresholds, drift_report
from butterquant_dagster.core.monitoring.performance import (
    PerformanceReport,
    benchmark_closes,
    performance_report,
)
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.account import equity_curve
from butterquant_dagster.core.trading.ledger import Ledger

BENCHMARK_LOOKBACK_DAYS = 10  # the base close before a period that starts on a holiday week


def ledger_history(ledger: Ledger, through: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The journal and the equity curve as they stood at ``through``'s close.

    The curve is the account's (``core.trading.account.equity_curve``): it starts the
    session before the first mark with the ledger's opening cash, so the first session's
    fees and marks count in its P/L and return like any other's, and the reports' P/L and
    drawdown are the figures ``positions`` and ``journal`` show.
    """
    return ledger.journal(through=through), equity_curve(ledger, through)


def performance(
    store: Lake,
    ledger: Ledger,
    start: dt.date | None,
    end: dt.date,
    *,
    benchmark_symbol: str | None = None,
) -> PerformanceReport:
    """The track record of [start, end] (``start`` None: since the first trade)."""
    journal, equity = ledger_history(ledger, end)
    first = start
    if first is None and len(equity):
        first = pd.Timestamp(equity["session"].min()).date()
    benchmark = None
    if first is not None:
        bars = sources.closes(
            store, first - dt.timedelta(days=BENCHMARK_LOOKBACK_DAYS), end, benchmark_symbol
        )
        if len(bars):
            benchmark = benchmark_closes(bars, benchmark_symbol)
    report = performance_report(
        journal,
        equity,
        start=start,
        end=end,
        regimes=sources.regimes(store, end),
        benchmark=benchmark,
        benchmark_symbol=benchmark_symbol or "equal-weighted universe",
    )
    if len(equity) > 1 and pd.Timestamp(equity["session"].max()).date() < end:
        marked = pd.Timestamp(equity["session"].max()).date()
        report.notes.append(
            f"the account was last marked on {marked}, not {end}: the figures stop there "
            "(the positions of a session are marked after its close)"
        )
    return report


def drift(
    store: Lake,
    ledger: Ledger,
    champion,
    through: dt.date,
    thresholds: DriftThresholds | None = None,
) -> DriftReport:
    """Calibration and drift of the champion (a registry ``ModelVersion`` or None) on what
    it predicted and what has resolved by ``through``."""
    thresholds = thresholds or DriftThresholds()
    metadata = champion.metadata if champion is not None else {}
    cutoff = _date(metadata.get("label_cutoff") or metadata.get("training_date"))
    if champion is None or (cutoff is not None and cutoff > through):
        report = drift_report(
            sources.resolved_candidates(store, through).iloc[0:0],
            pd.DataFrame(columns=["ml_success_prob", "won"]),
            model_version=None,
            training_date=None,
            training_metrics={},
            thresholds=thresholds,
        )
        if champion is not None:
            # Judging a model on a session before what it learned from would be look-ahead.
            report.reasons.insert(
                0,
                f"the champion {champion.version} learned outcomes up to {cutoff}, after "
                f"{through}: it was not the model of that session",
            )
        return report
    candidates = sources.resolved_candidates(
        store, through, since=cutoff, model_version=champion.version
    )
    journal, _ = ledger_history(ledger, through)
    trades = journal.loc[journal["model_version"] == champion.version] if len(journal) else journal
    live = sources.live_features(store, cutoff, through) if cutoff else None
    predictions = (
        sources.live_predictions(store, cutoff, through, model_version=champion.version)
        if cutoff
        else None
    )
    return drift_report(
        candidates,
        trades,
        model_version=champion.version,
        training_date=str(metadata.get("training_date", ""))[:10] or None,
        training_metrics=metadata.get("metrics", {}),
        live_features=live,
        live_predictions=predictions,
        reference=metadata.get("feature_reference"),
        thresholds=thresholds,
    )


def _date(value) -> dt.date | None:
    if not value:
        return None
    return pd.Timestamp(str(value)[:10]).date()
