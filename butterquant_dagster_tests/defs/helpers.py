"""Building definitions against a temporary data root and running them in process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, Definitions

from butterquant_dagster.definitions import build_definitions
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.market.automation import MARKET_JOB
from butterquant_dagster.resources import (
    LakeResource,
    MarketDataResource,
    ModelsResource,
    ScanResource,
    TradingResource,
)
from butterquant_dagster.run_errors import error_text
from butterquant_dagster.runs import partition_range_tags


def make_defs(
    root: Path,
    *,
    source="synthetic",
    scan=None,
    models=None,
    trading=None,
    **market,
):
    lake = LakeResource(data_dir=str(root))
    resources = {
        "lake": lake,
        "market": MarketDataResource(source=source, **market),
        "scan": scan or ScanResource(),
        "models": models or ModelsResource(data_dir=str(root)),
        "lake_io_manager": LakeIOManager(lake=lake),
        "trading": trading or TradingResource(data_dir=str(root)),
    }
    return build_definitions(resources)


def in_loaded_code_location(expression: str, **env: str) -> subprocess.CompletedProcess:
    """Print ``expression`` (over ``defs``) from a code location loaded in a new process with
    ``env`` added: settings read when the location loads take effect only there."""
    script = f"from butterquant_dagster.definitions import defs; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def loose_trading(root: Path, **overrides) -> TradingResource:
    """Paper trading whose floors let the synthetic rankings enter; with no model every slot
    belongs to the baseline track."""
    floors = {
        "ai_track_slots": 0,
        "min_success_prob": 0.0,
        "min_expected_yield": -1e9,
        "max_spread_pct": 10.0,
        "min_open_interest": 0,
    }
    return TradingResource(data_dir=str(root), **(floors | overrides))


def run_market(defs: Definitions, first: str, last: str, instance=None, job_name=MARKET_JOB):
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance or DagsterInstance.ephemeral(),
        tags=partition_range_tags(first, last),
        raise_on_error=False,
    )


def market_and_scan(defs: Definitions, history: tuple, scanned: tuple, instance) -> None:
    """The market over ``history``, then the scan over ``scanned`` (first, last), or fail."""
    from butterquant_dagster.defs.scan.automation import SCAN_JOB

    market = run_market(defs, *history, instance=instance)
    assert market.success, failure_messages(market)
    scan = run_market(defs, *scanned, instance=instance, job_name=SCAN_JOB)
    assert scan.success, failure_messages(scan)


def failure_messages(result) -> str:
    return "\n".join(
        error_text(event.event_specific_data.error)
        for event in result.all_events
        if event.is_step_failure
    )


def check_outcomes(result) -> dict[tuple[str, str], bool]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in result.get_asset_check_evaluations()
    }
