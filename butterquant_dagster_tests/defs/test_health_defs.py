"""The health definitions: the asset and its checks materialized on a temporary data root,
the morning schedule and the watcher on explicit dates (a weekday, a holiday)."""

import datetime as dt
import json
import socket

import pandas as pd
import pytest
from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    build_schedule_context,
    build_sensor_context,
    job,
    op,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml import ensemble
from butterquant_dagster.core.monitoring import health
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.ml.assets import WIN_MODEL, YIELD_MODEL
from butterquant_dagster.defs.ml.decisions import ENSEMBLE_PREFIX
from butterquant_dagster.defs.ops import health as health_defs
from butterquant_dagster.defs.ops.health import HEALTH_JOB, freshness_rules, run_history
from butterquant_dagster.resources import LakeResource, MarketDataResource, TradingResource
from butterquant_dagster_tests.core.monitoring.test_health import fresh_lake, register_champion

# Tuesday 2025-04-01 08:00 New York: Monday's snapshot and Friday's scan are due.
MORNING = "2025-04-01T08:00:00-04:00"
HOLIDAY = "2025-07-04T10:00:00-04:00"  # Independence Day; 3 July closed at 13:00
LLM_VARIABLES = tuple(health.LLM_VARIABLES)


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    """No LLM key of the machine running the tests, and any free disk is enough."""
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BUTTERQUANT_MIN_FREE_DISK_GB", "0")


def _resources(root, as_of: str, **trading) -> dict:
    lake = LakeResource(data_dir=str(root))
    return {
        "lake": lake,
        "market": MarketDataResource(as_of=as_of),
        "trading": TradingResource(data_dir=str(root), **trading),
        "lake_io_manager": LakeIOManager(lake=lake),
    }


def _defs(root, as_of: str = MORNING, **trading) -> Definitions:
    return Definitions(
        assets=[health_defs.system_health],
        jobs=[health_defs.health_job],
        sensors=[health_defs.health_watch],
        schedules=[health_defs.health_morning],
        resources=_resources(root, as_of, **trading),
    )


def _healthy_root(root, trained: dt.date, market: str = "2025-03-31", scan: str = "2025-03-28"):
    register_champion(root, trained)
    fresh_lake(root, market, scan)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ----------------------------------------------------------------------------- declarations
def test_core_uses_the_registry_names_of_the_training_assets():
    assert health.PROBABILITY_MODEL == WIN_MODEL
    assert health.YIELD_MODEL == YIELD_MODEL
    assert health.ENSEMBLE_PREFIX == ENSEMBLE_PREFIX
    assert set(health.ENSEMBLE_REGIMES) == set(ensemble.REGIMES)


def test_the_asset_its_checks_and_the_automation_are_declared(tmp_path):
    defs = _defs(tmp_path)
    spec = next(iter(defs.resolve_assets_def("system_health").specs))
    assert spec.group_name == "ops"
    assert spec.owners == ["team:platform"]
    assert set(spec.kinds) == {"python"}
    assert len(spec.description) > 40
    graph = defs.resolve_asset_graph()
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert sorted(checks) == sorted(health.CHECK_NAMES)
    assert not any(check.blocking for check in checks.values())
    schedule = defs.resolve_schedule_def("health_morning")
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.cron_schedule == "0 8 * * 1-5"
    sensor = defs.resolve_sensor_def("health_watch")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 15 * 60


def test_freshness_rules_follow_the_market_and_scan_schedules():
    rules = {rule.asset: rule for rule in freshness_rules()}
    assert sorted(rules) == ["daily_bars", "option_chains", "scan_rankings"]
    tuesday_evening = dt.datetime(2025, 4, 1, 17, 31, tzinfo=calendar.EXCHANGE_TZ)
    assert rules["daily_bars"].expected_session(tuesday_evening) == dt.date(2025, 4, 1)
    assert rules["scan_rankings"].expected_session(tuesday_evening) == dt.date(2025, 3, 31)


# ----------------------------------------------------------------------------- the asset
def _materialize(defs, instance=None):
    result = defs.resolve_job_def(HEALTH_JOB).execute_in_process(
        instance=instance or DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert result.success
    return result, {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_an_empty_data_root_fails_models_and_freshness(tmp_path):
    port = _closed_port()
    defs = _defs(tmp_path, broker="ibkr", ib_port=port)
    result, checks = _materialize(defs)
    assert sorted(checks) == sorted(health.CHECK_NAMES)
    failed = {name for name, check in checks.items() if not check.passed}
    assert failed == {"models", "data_freshness", "broker"}
    assert all(checks[name].severity == AssetCheckSeverity.ERROR for name in failed)
    assert f"127.0.0.1:{port}" in checks["broker"].description
    assert checks["last_runs"].metadata["status"].value == health.NOTICE
    stored = Lake(tmp_path).read("system_health")
    assert stored["check"].tolist() == list(health.CHECK_NAMES)
    assert stored.set_index("check").loc["models", "status"] == health.FAIL
    metadata = result.asset_materializations_for_node("system_health")[0].metadata
    assert metadata["healthy"].value is False
    assert metadata["data_freshness"].value == health.FAIL


def test_an_aging_model_is_a_warning_the_ui_shows_yellow(tmp_path):
    _healthy_root(tmp_path, dt.date(2025, 2, 25))  # 35 days before the morning
    _, checks = _materialize(_defs(tmp_path))
    assert not checks["model_age"].passed
    assert checks["model_age"].severity == AssetCheckSeverity.WARN
    assert "consider retraining" in checks["model_age"].description
    # The ensemble and the regime model are optional: a notice passes.
    assert checks["models"].passed
    assert checks["models"].metadata["status"].value == health.NOTICE
    assert checks["data_freshness"].passed and checks["broker"].passed


@op
def boom():
    raise RuntimeError("the market source is down")


@job
def broken_job():
    boom()


def test_a_failed_run_in_the_instance_is_named(tmp_path):
    instance = DagsterInstance.ephemeral()
    failed = broken_job.execute_in_process(instance=instance, raise_on_error=False)
    runs, error = run_history(instance, dt.datetime.now(dt.UTC))
    assert error is None
    assert [(r.job, r.run_id, r.status) for r in runs] == [("broken_job", failed.run_id, "FAILURE")]
    _, checks = _materialize(_defs(tmp_path, as_of=dt.datetime.now(dt.UTC).isoformat()), instance)
    assert checks["last_runs"].severity == AssetCheckSeverity.WARN
    assert f"broken_job run {failed.run_id}" in checks["last_runs"].description


# ----------------------------------------------------------------------------- automation
def _schedule_tick(when: dt.datetime):
    defs = _defs("/nonexistent")  # the schedule reads nothing
    context = build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    return defs.resolve_schedule_def("health_morning").evaluate_tick(context)


@pytest.mark.parametrize(
    ("day", "run_key"),
    [
        (dt.date(2025, 4, 1), "health-morning-2025-04-01"),
        (dt.date(2025, 7, 4), None),  # Independence Day
        (dt.date(2025, 4, 18), None),  # Good Friday
    ],
)
def test_the_morning_schedule_runs_on_sessions_only(day, run_key):
    when = dt.datetime.combine(day, dt.time(8), tzinfo=calendar.EXCHANGE_TZ)
    result = _schedule_tick(when)
    if run_key is None:
        assert not result.run_requests
        assert f"{day} is not an NYSE session" in result.skip_message
    else:
        assert [r.run_key for r in result.run_requests] == [run_key]


def _watch(root, as_of: str, cursor: str | None = None):
    defs = _defs(root, as_of)
    resources = _resources(root, as_of)
    context = build_sensor_context(
        cursor=cursor,
        instance=DagsterInstance.ephemeral(),
        resources={k: resources[k] for k in ("lake", "market", "trading")},
        repository_def=defs.get_repository_def(),
    )
    return defs.resolve_sensor_def("health_watch").evaluate_tick(context)


def test_the_watcher_requests_a_run_when_the_failing_set_changes(tmp_path):
    # On Independence Day the lake through 3 July (scan through 2 July) is fresh.
    _healthy_root(tmp_path, dt.date(2025, 6, 30), market="2025-07-03", scan="2025-07-02")
    first = _watch(tmp_path, HOLIDAY)
    assert not first.run_requests
    assert first.cursor == "[]" and "every check passes" in first.skip_message
    # The next Tuesday morning the snapshot of Monday 7 July is missing.
    tuesday = "2025-07-08T08:00:00-04:00"
    changed = _watch(tmp_path, tuesday, cursor=first.cursor)
    assert json.loads(changed.cursor) == ["data_freshness=FAIL"]
    [request] = changed.run_requests
    assert request.run_key.startswith("health-watch-2025-07-08-")
    assert request.tags["butterquant/health_state"] == "data_freshness=FAIL"
    again = _watch(tmp_path, tuesday, cursor=changed.cursor)
    assert not again.run_requests and "unchanged: data_freshness=FAIL" in again.skip_message
    # The snapshot lands: recovery is a change too.
    fresh_lake(tmp_path, "2025-07-07", "2025-07-03")
    recovered = _watch(tmp_path, tuesday, cursor=changed.cursor)
    assert recovered.cursor == "[]" and len(recovered.run_requests) == 1


def test_the_watcher_reports_a_broken_root_on_its_first_tick(tmp_path):
    result = _watch(tmp_path, MORNING)
    assert json.loads(result.cursor) == ["data_freshness=FAIL", "models=FAIL"]
    assert len(result.run_requests) == 1
    assert not (tmp_path / "lake" / "system_health").exists()  # the sensor only reads


def test_the_stored_frame_is_small_and_plain(tmp_path):
    _materialize(_defs(tmp_path))
    frame = pd.read_parquet(Lake(tmp_path).partition_path("system_health", None))
    assert frame.columns.tolist() == ["check", "status", "message"]
    assert len(frame) == len(health.CHECK_NAMES)
