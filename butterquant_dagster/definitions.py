"""The code location: every asset, check, job, schedule and resource of butterquant."""

from __future__ import annotations

from dagster import Definitions

from butterquant_dagster.core.settings import Settings
from butterquant_dagster.defs.market.assets import build_market_assets, universe
from butterquant_dagster.defs.market.automation import build_market_job, build_market_schedule
from butterquant_dagster.defs.partitions import nyse_sessions
from butterquant_dagster.defs.scan.assets import build_scan_assets
from butterquant_dagster.defs.scan.automation import (
    build_outcomes_schedule,
    build_scan_jobs,
    build_scan_schedule,
)
from butterquant_dagster.resources import default_resources


def build_definitions(
    settings: Settings | None = None, resources: dict[str, object] | None = None
) -> Definitions:
    """Definitions for ``settings`` (from the environment by default); tests pass their own
    settings and resources (a temporary data root, another source)."""
    settings = settings or Settings.from_env()
    partitions = nyse_sessions(settings.partitions_start)
    market_job = build_market_job(partitions, settings.market_source)
    scan_job, outcomes_job = build_scan_jobs()
    return Definitions(
        assets=[universe, *build_market_assets(partitions), *build_scan_assets(partitions)],
        jobs=[market_job, scan_job, outcomes_job],
        schedules=[
            build_market_schedule(market_job),
            build_scan_schedule(scan_job),
            build_outcomes_schedule(outcomes_job),
        ],
        resources=resources or default_resources(),
    )


defs = build_definitions()
