"""The code location: every asset, check, job, schedule and resource of butterquant."""

from __future__ import annotations

from dagster import Definitions

from butterquant_dagster.core.settings import Settings
from butterquant_dagster.defs.backtest.assets import build_backtest_assets, build_backtest_job
from butterquant_dagster.defs.market.assets import build_market_assets, universe
from butterquant_dagster.defs.market.automation import (
    build_bars_job,
    build_market_job,
    build_market_schedule,
)
from butterquant_dagster.defs.ml.assets import (
    build_feature_assets,
    champion_age,
    probability_model,
    probability_model_champion,
    training_set,
)
from butterquant_dagster.defs.ml.automation import (
    build_drift_sensor,
    build_ml_jobs,
    build_ml_schedules,
)
from butterquant_dagster.defs.ml.decisions import build_decision_assets, signal_ensemble
from butterquant_dagster.defs.ml.regime import build_regime_assets, regime_model
from butterquant_dagster.defs.monitoring.assets import build_monitoring_assets
from butterquant_dagster.defs.monitoring.automation import (
    build_report_jobs,
    build_report_schedules,
)
from butterquant_dagster.defs.monitoring.reports import build_report_assets
from butterquant_dagster.defs.ops.backup import build_ops_defs
from butterquant_dagster.defs.ops.health import build_health_defs
from butterquant_dagster.defs.ops.stale_runs import clear_stale_runs
from butterquant_dagster.defs.partitions import nyse_sessions
from butterquant_dagster.defs.scan.assets import build_scan_assets
from butterquant_dagster.defs.scan.automation import (
    build_outcomes_schedule,
    build_scan_jobs,
    build_scan_schedule,
)
from butterquant_dagster.defs.trading.assets import build_trading_assets
from butterquant_dagster.defs.trading.automation import (
    build_execution_schedule,
    build_fills_sensor,
    build_trading_jobs,
)
from butterquant_dagster.resources import MonitoringResource, default_resources


def build_definitions(
    settings: Settings | None = None, resources: dict[str, object] | None = None
) -> Definitions:
    """Definitions for ``settings`` (from the environment by default); tests pass their own
    settings and resources (a temporary data root, another source)."""
    settings = settings or Settings.from_env()
    partitions = nyse_sessions(settings.partitions_start)
    market_job = build_market_job(settings.market_source)
    bars_job = build_bars_job(settings.market_source)
    scan_job, outcomes_job = build_scan_jobs()
    ml_jobs = build_ml_jobs()
    ml_by_name = {job.name: job for job in ml_jobs}
    execution_job, fills_job, plan_job = build_trading_jobs()
    report_jobs = build_report_jobs()
    health = build_health_defs()
    ops = build_ops_defs()
    return Definitions(
        assets=[
            universe,
            *build_market_assets(partitions),
            *build_scan_assets(partitions),
            regime_model,
            *build_regime_assets(partitions),
            signal_ensemble,
            *build_decision_assets(partitions),
            *build_feature_assets(partitions),
            training_set,
            probability_model,
            probability_model_champion,
            *build_trading_assets(partitions),
            *build_monitoring_assets(partitions),
            *build_report_assets(partitions),
            *health.assets,
            *ops.assets,
            *build_backtest_assets(),
        ],
        asset_checks=[champion_age, *health.asset_checks],
        jobs=[
            market_job,
            bars_job,
            scan_job,
            outcomes_job,
            *ml_jobs,
            execution_job,
            fills_job,
            plan_job,
            *report_jobs,
            *health.jobs,
            *ops.jobs,
            build_backtest_job(),
        ],
        schedules=[
            build_market_schedule(market_job),
            build_scan_schedule(scan_job),
            build_outcomes_schedule(outcomes_job),
            *build_ml_schedules(ml_by_name),
            build_execution_schedule(execution_job),
            *build_report_schedules({job.name: job for job in report_jobs}),
            *health.schedules,
            *ops.schedules,
        ],
        sensors=[
            build_drift_sensor(ml_by_name),
            build_fills_sensor(fills_job),
            *health.sensors,
            *ops.sensors,
            clear_stale_runs,
        ],
        resources=with_monitoring(resources or default_resources()),
    )


def with_monitoring(resources: dict[str, object]) -> dict[str, object]:
    """Reports go under the lake's data root unless a monitoring resource says otherwise."""
    if "monitoring" in resources or "lake" not in resources:
        return resources
    return {**resources, "monitoring": MonitoringResource(data_dir=resources["lake"].data_dir)}


defs = build_definitions()
