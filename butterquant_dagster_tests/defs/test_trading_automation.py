"""When trading runs: the pre-close execution schedule on explicit dates, the fills sensor on
real ledger and paper-broker states, and how the trading definitions are declared."""

import datetime as dt
import shutil

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, build_schedule_context, build_sensor_context

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, ComboOrder
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.combos import COMBO_TICK, combo_quote, legs_from_json
from butterquant_dagster.definitions import build_definitions
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.scan.automation import SCAN_JOB
from butterquant_dagster.defs.trading.automation import (
    EXECUTION_JOB,
    FILLS_JOB,
    PLAN_JOB,
    TRADING_ASSETS,
)
from butterquant_dagster.resources import (
    LakeResource,
    MarketDataResource,
    ModelsResource,
    ScanResource,
    TradingResource,
)
from butterquant_dagster_tests.defs.helpers import (
    failure_messages,
    loose_trading,
    market_and_scan,
    run_market,
)

HISTORY = ("2025-01-02", "2025-04-01")  # 62 sessions: the scan needs 60 of history
DECIDED_ON = "2025-03-31"
TRADED = "2025-04-01"
AS_OF = "2025-04-30T17:00:00-04:00"


def _resources(root, trading_root=None, as_of=AS_OF) -> dict:
    lake = LakeResource(data_dir=str(root))
    return {
        "lake": lake,
        "market": MarketDataResource(universe_size=2, as_of=as_of),
        "scan": ScanResource(max_dte=30),
        "models": ModelsResource(data_dir=str(root)),
        "lake_io_manager": LakeIOManager(lake=lake),
        "trading": loose_trading(trading_root or root),
    }


def _defs(root, trading_root=None, as_of=AS_OF):
    resources = _resources(root, trading_root, as_of)
    return build_definitions(resources)


# ----------------------------------------------------------------------------- the schedule
def _tick(when: dt.datetime):
    """The tick of whichever of the pair ticks then (12:45 New York: the early variant)."""
    defs = _defs("/nonexistent")  # the schedule reads nothing
    early = when.astimezone(calendar.EXCHANGE_TZ).hour == 12
    schedule = defs.resolve_schedule_def(
        "execute_before_early_close" if early else "execute_before_close"
    )
    context = build_schedule_context(
        scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    result = schedule.evaluate_tick(context)
    return result.run_requests or [], result.skip_message


def _ny(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=calendar.EXCHANGE_TZ)


@pytest.mark.parametrize(
    ("when", "session"),
    [
        (_ny(2026, 11, 24, 15, 45), "2026-11-24"),  # a normal Tuesday: 15 min before 16:00
        (_ny(2026, 11, 27, 12, 45), "2026-11-27"),  # day after Thanksgiving: closes 13:00
        (_ny(2026, 12, 24, 12, 45), "2026-12-24"),  # Christmas Eve: closes 13:00
        # The tick in UTC (winter, EST): still 15:45 in New York.
        (dt.datetime(2026, 12, 1, 20, 45, tzinfo=dt.UTC), "2026-12-01"),
        # Summer (EDT): 19:45 UTC is 15:45 in New York.
        (dt.datetime(2026, 7, 1, 19, 45, tzinfo=dt.UTC), "2026-07-01"),
    ],
)
def test_execution_runs_15_minutes_before_the_close(when, session):
    requests, _ = _tick(when)
    assert [r.partition_key for r in requests] == [session]
    assert requests[0].run_key == f"execute-{session}"


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (_ny(2026, 11, 24, 12, 45), "trading runs at 15:45"),  # a normal day's early tick
        (_ny(2026, 11, 27, 15, 45), "closes at 13:00; trading runs at 12:45"),  # early close
        (_ny(2026, 11, 26, 15, 45), "not an NYSE session"),  # Thanksgiving
        (_ny(2026, 11, 26, 12, 45), "not an NYSE session"),
        (_ny(2026, 12, 25, 15, 45), "not an NYSE session"),  # Christmas
    ],
)
def test_execution_skips(when, reason):
    requests, message = _tick(when)
    assert not requests
    assert reason in message


def test_every_session_of_a_month_is_requested_once():
    """Both daily ticks over November 2026: one request per session, none on the holiday."""
    requested = []
    day = dt.date(2026, 11, 1)
    while day.month == 11:
        if day.weekday() < 5:
            for hour in (12, 15):
                requests, _ = _tick(_ny(day.year, day.month, day.day, hour, 45))
                requested += [r.partition_key for r in requests]
        day += dt.timedelta(days=1)
    expected = [d.isoformat() for d in calendar.sessions("2026-11-01", "2026-11-30")]
    assert requested == expected
    assert "2026-11-26" not in requested


# ----------------------------------------------------------------------------- the sensor
@pytest.fixture(scope="module")
def traded(tmp_path_factory):
    """One session traded end to end on the paper broker."""
    root = tmp_path_factory.mktemp("traded")
    defs = _defs(root)
    instance = DagsterInstance.ephemeral()
    market_and_scan(defs, HISTORY, (DECIDED_ON, DECIDED_ON), instance)
    run = run_market(defs, TRADED, TRADED, instance=instance, job_name=EXECUTION_JOB)
    assert run.success, failure_messages(run)
    return root


def _sense(root, trading_root=None, as_of=AS_OF):
    defs = _defs(root, trading_root, as_of)
    resources = _resources(root, trading_root, as_of)
    sensor = defs.resolve_sensor_def("collect_fills")
    context = build_sensor_context(
        resources={k: resources[k] for k in ("lake", "trading", "market")},
        repository_def=defs.get_repository_def(),
    )
    result = sensor.evaluate_tick(context)
    return result.run_requests or [], result.skip_message


def _copy(root, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(root, target)
    return target


def _executions(root) -> pd.DataFrame:
    with duckdb.connect(str(root / "paper_broker.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM executions ORDER BY exec_id").df()


def test_nothing_traded_skips(tmp_path):
    requests, message = _sense(tmp_path)
    assert not requests
    assert "no session has been traded yet" in message


def test_a_fully_recorded_session_skips(traded):
    executions = _executions(traded)
    assert len(executions)  # the session did trade: there were executions to record
    ledger = TradingResource(data_dir=str(traded)).ledger()
    assert set(executions["exec_id"]) <= set(ledger.fills()["exec_id"])
    assert Lake(traded).partitions("positions") == [TRADED]
    requests, message = _sense(traded)
    assert not requests
    assert f"{TRADED}: no new executions and positions are marked" in message


def test_an_execution_missing_from_the_ledger_requests_the_fills_steps(traded, tmp_path):
    # Only the ledger and the broker are copied; the sensor reads the lake as it is.
    trading_root = tmp_path / "desk"
    trading_root.mkdir()
    for name in ("ledger.duckdb", "paper_broker.duckdb"):
        shutil.copy(traded / name, trading_root / name)
    lost = _executions(trading_root)["exec_id"].iloc[0]
    with duckdb.connect(str(trading_root / "ledger.duckdb")) as con:
        con.execute("DELETE FROM fills WHERE exec_id = ?", [lost])
    requests, _ = _sense(traded, trading_root)
    assert [r.partition_key for r in requests] == [TRADED]
    assert requests[0].run_key.startswith(f"fills-{TRADED}-")
    assert requests[0].run_key.endswith("-False")  # positions are marked; fills are new
    assert requests[0].job_name in (None, FILLS_JOB)


def test_an_order_placed_at_the_broker_is_collected_then_the_sensor_rests(traded, tmp_path):
    """Someone places an order on the broker directly: the sensor asks for the fills steps,
    the run records the execution (a ghost fill), and the next tick is quiet."""
    root = _copy(traded, tmp_path)
    resource = _resources(root)["trading"]
    lake = Lake(root)
    decision = calendar.session_close(dt.date.fromisoformat(TRADED)) - dt.timedelta(minutes=15)
    broker = resource.connect(lake, lambda: decision)
    target = lake.read("target_orders", [TRADED]).iloc[0]
    legs = legs_from_json(target["ticker"], target["legs"])
    quote = combo_quote(lake.read("option_chains", [TRADED]), legs)
    limit = round((quote["high"] + COMBO_TICK) / COMBO_TICK) * COMBO_TICK  # crosses: fills
    placed = broker.place_combo(
        ComboOrder(
            order_ref="manual-1",
            session=dt.date.fromisoformat(TRADED),
            symbol=target["ticker"],
            structure=target["structure"],
            legs=legs,
            action=BUY,
            quantity=1,
            limit_price=limit,
            track="manual",
        )
    )
    assert placed.status == "filled"
    requests, _ = _sense(root)
    assert [r.partition_key for r in requests] == [TRADED]
    run = run_market(_defs(root), TRADED, TRADED, job_name=FILLS_JOB)
    assert run.success, failure_messages(run)
    ghost = resource.ledger().fills().set_index("order_ref").loc["manual-1"]
    assert bool(ghost["ghost"])
    requests, message = _sense(root)
    assert not requests and "positions are marked" in message


def test_a_session_not_yet_marked_requests_the_fills_steps(traded, tmp_path):
    root = _copy(traded, tmp_path)
    shutil.rmtree(Lake(root).table_dir("positions"))
    requests, _ = _sense(root)
    assert [r.partition_key for r in requests] == [TRADED]
    assert requests[0].run_key.endswith("-True")


def test_a_live_session_runs_before_the_close_and_is_marked_after_it(traded, tmp_path):
    """Live, the run goes out at 15:45 without the session's closing chain: it sends the
    orders and succeeds; after the close snapshot the sensor asks for the fills steps,
    which record the fills and mark the positions."""
    root = _copy(traded, tmp_path)
    session = "2025-04-02"
    scan = run_market(_defs(root), TRADED, TRADED, job_name=SCAN_JOB)
    assert scan.success, failure_messages(scan)
    before_close = f"{session}T15:45:00-04:00"
    live = run_market(_defs(root, as_of=before_close), session, session, job_name=EXECUTION_JOB)
    assert Lake(root).partitions("orders")[-1] == session
    assert live.success, failure_messages(live)
    after_close = f"{session}T17:00:00-04:00"
    market = run_market(_defs(root, as_of=after_close), session, session)
    assert market.success, failure_messages(market)
    requests, _ = _sense(root, as_of=after_close)
    assert [r.partition_key for r in requests] == [session]
    fills = run_market(_defs(root, as_of=after_close), session, session, job_name=FILLS_JOB)
    assert fills.success, failure_messages(fills)
    assert session in Lake(root).partitions("positions")
    requests, message = _sense(root, as_of=after_close)
    assert not requests and "positions are marked" in message


# ----------------------------------------------------------------------------- definitions
def test_trading_assets_are_grouped_owned_and_documented():
    defs = _defs("/nonexistent")
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    for name in TRADING_ASSETS:
        spec = specs[name]
        assert spec.group_name == "trading", name
        assert spec.owners == ["team:trading"], name
        assert set(spec.kinds) == {"python", "duckdb"}, name
        assert spec.description and len(spec.description) > 60, name
    check = next(
        k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key == AssetKey("orders")
    )
    assert check.name == "ledger_matches_broker"
    assert defs.resolve_asset_graph().get_check_spec(check).blocking


def test_trading_jobs_schedule_and_sensor():
    defs = _defs("/nonexistent")

    def selected(job):
        keys = defs.resolve_job_def(job).asset_layer.executable_asset_keys
        return {k.to_user_string() for k in keys}

    assert selected(EXECUTION_JOB) == set(TRADING_ASSETS)
    assert selected(FILLS_JOB) == {"fills", "positions", "trade_journal"}
    assert selected(PLAN_JOB) == {"target_orders"}
    schedule = defs.resolve_schedule_def("execute_before_close")
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.job_name == EXECUTION_JOB
    sensor = defs.resolve_sensor_def("collect_fills")
    assert sensor.job_name == FILLS_JOB
    assert sensor.default_status.value == "RUNNING"  # BUTTERQUANT_AUTOMATION_DEFAULT
