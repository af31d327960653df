"""The daily, weekly and monthly HTML reports as assets, keyed by the session they are
written at. Each writes a standalone page under ``<data root>/reports/<period>/`` and puts
its key figures and the page's path in the metadata."""

import datetime as dt

import pandas as pd
from dagster import (
    AssetExecutionContext,
    DagsterInstance,
    MetadataValue,
    Output,
    RunsFilter,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring import report_inputs, reports
from butterquant_dagster.defs.metadata import figure
from butterquant_dagster.defs.ml.assets import WIN_MODEL
from butterquant_dagster.defs.monitoring.assets import monitoring_asset, report_session
from butterquant_dagster.defs.ops.health import collect_report
from butterquant_dagster.resources import (
    LakeResource,
    MarketDataResource,
    ModelsResource,
    MonitoringResource,
    TradingResource,
)

RUN_STATS_LIMIT = 5000


def calendar_month(session: dt.date) -> tuple[dt.date, dt.date]:
    """The whole calendar month of ``session``: the runs of its evenings and weekends count."""
    first = session.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first, following - dt.timedelta(days=1)


def _day_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The period as instants in New York: from the first day's midnight to the last's end."""
    first = dt.datetime.combine(start, dt.time(), calendar.EXCHANGE_TZ)
    last = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), calendar.EXCHANGE_TZ)
    return first, last


def run_stats(instance: DagsterInstance, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Runs per job created in the period: how many, how many succeeded and failed."""
    # The run storage drops a bound's time zone and compares it with UTC creation times: a
    # New York bound would shift the period by five hours.
    first, last = (bound.astimezone(dt.UTC) for bound in _day_bounds(start, end))
    records = instance.get_run_records(
        filters=RunsFilter(created_after=first, created_before=last), limit=RUN_STATS_LIMIT
    )
    rows = [{"job": r.dagster_run.job_name, "status": r.dagster_run.status.value} for r in records]
    columns = ["job", "runs", "succeeded", "failed", "success_rate"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows)
    stats = frame.groupby("job")["status"].agg(
        runs="size",
        succeeded=lambda s: int((s == "SUCCESS").sum()),
        failed=lambda s: int((s == "FAILURE").sum()),
    )
    finished = stats["succeeded"] + stats["failed"]
    stats["success_rate"] = (stats["succeeded"] / finished).where(finished > 0)
    return stats.reset_index()[columns]


def health_frame(
    instance: DagsterInstance, trading: TradingResource, root, now: dt.datetime
) -> pd.DataFrame:
    """The health checks as the report shows them (name, status, message), taken now."""
    report = collect_report(
        root,
        now,
        broker=trading.broker,
        ib_host=trading.ib_host,
        ib_port=trading.ib_port,
        instance=instance,
    )
    rows = [{"name": c.name, "status": c.status, "message": c.message} for c in report.checks]
    return pd.DataFrame(rows, columns=["name", "status", "message"])


def _failures(root, start: dt.date, end: dt.date) -> pd.DataFrame:
    from butterquant_dagster.core.monitoring.run_failures import failures_between

    first, last = _day_bounds(start, end)
    return failures_between(root, first, last)


def report_context(
    lake: LakeResource,
    trading: TradingResource,
    models: ModelsResource,
    monitoring: MonitoringResource,
    market: MarketDataResource,
) -> report_inputs.ReportContext:
    return report_inputs.ReportContext(
        store=lake.lake(),
        ledger=trading.ledger(),
        champion=models.registry().champion(WIN_MODEL),
        now=market.now(),
        benchmark_symbol=monitoring.benchmark_symbol or None,
        thresholds=monitoring.thresholds(),
        rules=trading.rules(),
    )


def _report_output(inputs, root, session: dt.date, render) -> Output:
    page = render(inputs)
    path = reports.write_report(page, root, inputs.period, inputs.key)
    figures = reports.key_figures(inputs)
    row = {"session": pd.Timestamp(session), "period": inputs.period, "path": str(path)}
    return Output(
        pd.DataFrame([row]),
        metadata={
            "report_path": MetadataValue.path(str(path)),
            "report": inputs.key,
            **{k: figure(v) for k, v in figures.items() if k not in ("session", "week", "month")},
        },
    )


def report_asset(**kwargs):
    return monitoring_asset(kinds=("python", "html"), **kwargs)


@report_asset(
    name="daily_report",
    deps=["performance_report", "drift_report", "orders", "positions", "scan_rankings"],
    description=(
        "The guide's daily report as a standalone HTML page: system status (health, "
        "model, data, failed runs), the trading decisions (regime, buy / hold / sell, "
        "orders, top rankings), performance (equity and drawdown, open positions) and "
        "notes."
    ),
)
def daily_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    trading: TradingResource,
    monitoring: MonitoringResource,
    market: MarketDataResource,
) -> Output:
    session = report_session(context)
    sources = report_context(lake, trading, models, monitoring, market)
    inputs = report_inputs.daily_inputs(
        sources,
        session,
        health=health_frame(context.instance, trading, monitoring.root(), sources.now),
        run_failures=_failures(monitoring.root(), session, session),
    )
    return _report_output(inputs, monitoring.root(), session, reports.render_daily)


@report_asset(
    name="weekly_report",
    deps=["performance_report", "drift_report"],
    description=(
        "The week's report: wins and losses by stock and by regime, confidence vs "
        "accuracy (reliability), the feature-importance trend and the P/L distribution."
    ),
)
def weekly_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    trading: TradingResource,
    monitoring: MonitoringResource,
    market: MarketDataResource,
) -> Output:
    session = report_session(context)
    inputs = report_inputs.weekly_inputs(
        report_context(lake, trading, models, monitoring, market), session
    )
    return _report_output(inputs, monitoring.root(), session, reports.render_weekly)


@report_asset(
    name="monthly_report",
    deps=["performance_report", "drift_report"],
    description=(
        "The month's report: performance against buying and holding the index, the AI "
        "vs baseline test, model accuracy by regime month by month, drift, and how "
        "reliably the system ran (runs per job, failures)."
    ),
)
def monthly_report(
    context: AssetExecutionContext,
    lake: LakeResource,
    models: ModelsResource,
    trading: TradingResource,
    monitoring: MonitoringResource,
    market: MarketDataResource,
) -> Output:
    session = report_session(context)
    start, end = calendar_month(session)
    inputs = report_inputs.monthly_inputs(
        report_context(lake, trading, models, monitoring, market),
        session,
        runs=run_stats(context.instance, start, end),
        run_failures=_failures(monitoring.root(), start, end),
    )
    return _report_output(inputs, monitoring.root(), session, reports.render_monthly)
