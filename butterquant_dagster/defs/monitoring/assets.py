"""The performance and drift reports of each session, as assets.

Both are recomputed from their sources (the ledger, the lake, the registry) through
``core/monitoring/assemble.py`` - the same path the HTML reports and the command take - and
store their figures in the lake; the key figures go into the metadata so the UI shows them
without opening anything.
"""

import datetime as dt

import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, asset

from butterquant_dagster.core.monitoring import assemble
from butterquant_dagster.core.monitoring.drift import DriftReport
from butterquant_dagster.core.monitoring.performance import PerformanceReport
from butterquant_dagster.defs.metadata import figure, markdown_table
from butterquant_dagster.defs.ml.assets import WIN_MODEL
from butterquant_dagster.defs.partitions import session_of, session_partitions
from butterquant_dagster.resources import (
    LakeResource,
    ModelsResource,
    MonitoringResource,
    TradingResource,
)

OWNER = "team:research"
HEADLINE = [
    "trades",
    "win_rate",
    "yield_per_1000",
    "total_pnl",
    "realized_pnl",
    "max_drawdown",
    "sharpe",
    "sortino",
    "profit_factor",
    "avg_days_held",
    "exposure",
    "total_return",
    "benchmark_return",
    "excess_return",
]


def report_session(context: AssetExecutionContext) -> dt.date:
    return session_of(context.partition_key)


def performance_frame(report: PerformanceReport, scope: str) -> pd.DataFrame:
    """The figures as rows (scope, figure, value); a figure not computed has no value."""
    rows = [
        {"scope": scope, "figure": name, "value": _number(value)}
        for name, value in report.figures.items()
        if not isinstance(value, str)
    ]
    return pd.DataFrame(rows, columns=["scope", "figure", "value"])


def performance_metadata(report: PerformanceReport, prefix: str = "") -> dict:
    figures = report.figures
    metadata = {f"{prefix}{name}": figure(figures.get(name)) for name in HEADLINE}
    metadata[f"{prefix}benchmark"] = str(figures.get("benchmark_symbol") or "none")
    return metadata


def drift_metadata(report: DriftReport) -> dict:
    keep = [
        "model_version",
        "resolved_candidates",
        "resolved_trades",
        "brier_candidates",
        "brier_training",
        "ece_candidates",
        "ece_trades",
        "hit_rate_high_confidence",
        "accuracy",
        "ece_noise",
        "wins",
        "expected_wins",
        "calibration_z",
        "calibration_p_value",
        "yield_n",
        "yield_predicted",
        "yield_realized",
        "yield_z",
        "max_feature_psi",
        "prediction_psi",
    ]
    return {
        "status": report.status,
        "reasons": MetadataValue.md("\n".join(f"- {r}" for r in report.reasons)),
        **{name: figure(report.figures.get(name)) for name in keep},
    }


def _number(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def monitoring_asset(kinds=("python", "duckdb"), **kwargs):
    """One session's figures or report, stored in the lake, in the monitoring group."""
    return asset(
        partitions_def=session_partitions,
        io_manager_key="lake_io_manager",
        group_name="monitoring",
        owners=[OWNER],
        kinds=set(kinds),
        **kwargs,
    )


@monitoring_asset(
    name="performance_report",
    deps=["trade_journal", "positions", "market_regime", "daily_bars"],
    description=(
        "The track record to each session's close and of the session itself: win rate, "
        "yield per $1,000, P/L, drawdown, Sharpe and Sortino of daily equity, profit "
        "factor, days held, exposure; by track with a significance test, by structure, "
        "regime, ticker and month; against buying and holding the index."
    ),
)
def performance_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    trading: TradingResource,
    monitoring: MonitoringResource,
) -> Output:
    session = report_session(context)
    store, ledger = lake.lake(), trading.ledger()
    symbol = monitoring.benchmark_symbol or None
    to_date = assemble.performance(store, ledger, None, session, benchmark_symbol=symbol)
    today = assemble.performance(store, ledger, session, session, benchmark_symbol=symbol)
    frame = pd.concat(
        [performance_frame(to_date, "to_date"), performance_frame(today, "session")],
        ignore_index=True,
    )
    frame.insert(0, "session", pd.Timestamp(session))
    by_track = to_date.breakdowns.get("track", pd.DataFrame())
    return Output(
        frame,
        metadata={
            **performance_metadata(to_date),
            **{
                f"session_{k}": figure(today.figures.get(k))
                for k in ("trades", "total_pnl", "win_rate")
            },
            "track_test": str(to_date.track_test.get("verdict", "not enough data")),
            "by_track": markdown_table(by_track),
            "by_regime": markdown_table(to_date.breakdowns.get("regime", pd.DataFrame())),
            "notes": MetadataValue.md("\n".join(f"- {n}" for n in to_date.notes) or "-"),
        },
    )


@monitoring_asset(
    name="drift_report",
    deps=["ai_probabilities", "candidate_outcomes", "candidate_features", "trade_journal"],
    description=(
        "Is the champion still calibrated? AI probability vs actual hit rate by bucket, "
        "ECE and Brier now vs at training, on resolved trades and resolved scan "
        "candidates; feature and prediction drift (PSI) against the training reference; "
        "a status OK / WARN / RETRAIN with its reasons, which the drift sensor acts on."
    ),
)
def drift_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    trading: TradingResource,
    monitoring: MonitoringResource,
) -> Output:
    session = report_session(context)
    champion = models.registry().champion(WIN_MODEL)
    report = assemble.drift(
        lake.lake(), trading.ledger(), champion, session, monitoring.thresholds()
    )
    frames = [
        table.assign(source=source)
        for source, table in report.reliability.items()
        if table is not None and len(table)
    ]
    reliability = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["source", "bin", "low", "high", "count"])
    )
    reliability.insert(0, "session", pd.Timestamp(session))
    return Output(
        reliability,
        metadata={
            **drift_metadata(report),
            "yield_reliability": markdown_table(report.yield_reliability),
            "reliability_candidates": markdown_table(
                report.reliability.get("candidates", pd.DataFrame())
            ),
            "feature_psi": markdown_table(
                report.feature_psi.sort_values("psi", ascending=False)
                if len(report.feature_psi)
                else report.feature_psi,
                limit=15,
            ),
        },
    )
