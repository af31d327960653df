"""The code location loads and every definition is documented and owned."""

from __future__ import annotations

import datetime as dt

from dagster import AssetKey

from butterquant_dagster.core import calendar
from butterquant_dagster.defs.market.automation import MARKET_JOB
from butterquant_dagster_tests.defs.helpers import make_defs


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


def test_partition_keys_are_exactly_nyse_sessions(tmp_path):
    defs = make_defs(tmp_path, partitions_start="2024-01-02")
    partitions = defs.resolve_assets_def("daily_bars").partitions_def
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    expected = [d.isoformat() for d in calendar.sessions("2024-01-02", "2025-12-31")]
    assert keys == expected
    assert len([k for k in keys if k.startswith("2025")]) == 250


def test_today_is_a_partition_while_it_trades(tmp_path):
    """end_offset=1: the session in progress is a key (the assets refuse it until close)."""
    defs = make_defs(tmp_path, partitions_start="2025-01-02")
    partitions = defs.resolve_assets_def("daily_bars").partitions_def
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


def test_market_job_selects_the_market_groups(tmp_path):
    synthetic = make_defs(tmp_path).resolve_job_def(MARKET_JOB)
    files = make_defs(tmp_path, source="files").resolve_job_def(MARKET_JOB)
    synthetic_keys = {k.to_user_string() for k in synthetic.asset_layer.executable_asset_keys}
    files_keys = {k.to_user_string() for k in files.asset_layer.executable_asset_keys}
    assert synthetic_keys == {"universe", "daily_bars", "option_chains", "market_truth"}
    assert files_keys == {"universe", "daily_bars", "option_chains"}


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
