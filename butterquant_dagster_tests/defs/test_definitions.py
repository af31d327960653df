"""The code location loads and every definition is documented and owned."""

from __future__ import annotations

import datetime as dt
import os

from dagster import AssetKey

from butterquant_dagster.core import calendar
from butterquant_dagster.defs.market.automation import MARKET_JOB
from butterquant_dagster.defs.partitions import nyse_sessions, session_partitions
from butterquant_dagster_tests.defs.helpers import in_loaded_code_location, make_defs


def test_code_location_module_loads():
    from butterquant_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"universe", "daily_bars", "option_chains", "market_truth"} <= keys


def test_every_asset_has_group_description_owner_and_kind(tmp_path):
    defs = make_defs(tmp_path)
    specs = list(defs.resolve_all_asset_specs())
    assert specs
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name and spec.group_name != "default", name
        assert spec.description and len(spec.description) > 40, name
        assert spec.owners, name
        assert spec.kinds, name


def test_every_schedule_has_a_timezone(tmp_path):
    defs = make_defs(tmp_path)
    schedules = list(defs.schedules or [])
    assert schedules
    for schedule in schedules:
        assert schedule.execution_timezone == "America/New_York", schedule.name


def test_market_checks_are_blocking(tmp_path):
    defs = make_defs(tmp_path)
    checks = defs.resolve_asset_graph().asset_check_keys
    bars_checks = {c.name for c in checks if c.asset_key == AssetKey("daily_bars")}
    chain_checks = {c.name for c in checks if c.asset_key == AssetKey("option_chains")}
    assert {
        "bar_ohlc_consistent",
        "split_jump",
        "missing_tickers",
        "stale_session",
        "duplicate_key",
        "schema",
        "bar_prices_positive",
    } == bars_checks
    assert {"crossed_quotes", "implied_vol_plausible", "quote_prices_valid"} <= chain_checks
    for key in checks:
        if key.asset_key.to_user_string() in (
            "daily_bars",
            "option_chains",
            "butterfly_candidates",
            "probability_model",
        ):
            # The yield model's gates decide only whether it is used, not P(win)'s promotion.
            blocking = key.name != "yield_model_gates"
            assert defs.resolve_asset_graph().get_check_spec(key).blocking == blocking, key
    # The age check is a daily health signal, not a gate.
    age = next(k for k in checks if k.name == "champion_age")
    assert not defs.resolve_asset_graph().get_check_spec(age).blocking


def test_partition_keys_are_exactly_nyse_sessions():
    partitions = nyse_sessions("2024-01-02")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    expected = [d.isoformat() for d in calendar.sessions("2024-01-02", "2025-12-31")]
    assert keys == expected
    assert len([k for k in keys if k.startswith("2025")]) == 250


def test_today_is_a_partition_while_it_trades():
    """end_offset=1: the session in progress is a key (the assets refuse it until close)."""
    partitions = nyse_sessions("2025-01-02")
    during = dt.datetime(2025, 7, 3, 15, 0, tzinfo=calendar.EXCHANGE_TZ)
    assert partitions.get_partition_keys(current_time=during)[-1] == "2025-07-03"
    saturday = dt.datetime(2025, 7, 12, 12, 0, tzinfo=calendar.EXCHANGE_TZ)
    assert partitions.get_partition_keys(current_time=saturday)[-1] == "2025-07-11"
    # After a holiday the next session is a key early (its window opens at the excluded
    # tick); it is still never a holiday, and the assets refuse it until its close.
    holiday_weekend = dt.datetime(2025, 7, 5, 12, 0, tzinfo=calendar.EXCHANGE_TZ)
    assert partitions.get_partition_keys(current_time=holiday_weekend)[-2:] == [
        "2025-07-03",
        "2025-07-07",
    ]
    monday = dt.datetime(2025, 7, 7, 9, 0, tzinfo=calendar.EXCHANGE_TZ)
    assert partitions.get_partition_keys(current_time=monday)[-2:] == ["2025-07-03", "2025-07-07"]


def test_every_daily_asset_starts_at_the_configured_session(tmp_path):
    """One partitions definition, from BUTTERQUANT_PARTITIONS_START (conftest sets it for
    the tests), shared by every partitioned asset."""
    defs = make_defs(tmp_path)
    first = calendar.require_session(os.environ["BUTTERQUANT_PARTITIONS_START"], what="start")
    partitioned = [
        spec for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None
    ]
    assert len(partitioned) >= 20
    assert {str(spec.partitions_def) for spec in partitioned} == {str(session_partitions)}
    assert session_partitions.get_first_partition_key() == first.isoformat()


def test_the_code_location_reads_its_partitions_start_from_the_environment():
    """A user's setting reaches the partitions of a freshly loaded code location."""
    loaded = in_loaded_code_location(
        "defs.resolve_assets_def('daily_bars').partitions_def.get_first_partition_key()",
        BUTTERQUANT_PARTITIONS_START="2020-01-02",
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "2020-01-02"


def test_market_job_takes_the_hidden_truth_only_where_there_is_one(tmp_path):
    """One market job for every source: the synthetic market records its hidden regime, a
    real source's run succeeds without one."""
    job = make_defs(tmp_path).resolve_job_def(MARKET_JOB)
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert keys == {"universe", "daily_bars", "option_chains", "market_truth"}
    assert not make_defs(tmp_path).resolve_assets_def("market_truth").op.outs["result"].is_required


def test_market_tables_publish_their_column_schema_from_the_one_definition():
    """The UI's column schema of each market table is the schema its sources conform to."""
    from butterquant_dagster.core.market import schemas
    from butterquant_dagster.definitions import defs

    for table in (
        schemas.UNIVERSE,
        schemas.DAILY_BARS,
        schemas.OPTION_CHAINS,
        schemas.MARKET_TRUTH,
    ):
        (spec,) = defs.get_assets_def(table.name).specs
        published = spec.metadata["dagster/column_schema"].columns
        assert [c.name for c in published] == table.names
        assert [c.constraints.nullable for c in published] == [c.nullable for c in table.columns]
        assert all(c.description for c in published), table.name
