"""Every column of every lake table has one description (core/glossary.py): the columns of
a lake built by a small real run (scan, one traded session, the daily report), and the code's
column lists of the tables that run does not build (outcomes, training, models, regime,
decisions, health, backtest, the weekly and monthly reports)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io

import pyarrow.parquet as pq
import pytest

from butterquant_dagster.core import glossary
from butterquant_dagster.core.backtest.result import EQUITY_COLUMNS
from butterquant_dagster.core.ml.ensemble import DECISION_COLUMNS, REGIME_COLUMNS
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.ml.probability import LABEL, RULE_EV
from butterquant_dagster.core.monitoring.calibration import RELIABILITY_COLUMNS
from butterquant_dagster.core.monitoring.health import OK, HealthCheck, HealthReport
from butterquant_dagster.core.scan.outcomes import OUTCOME_COLUMNS
from butterquant_dagster.core.scan.pipeline import CARRIED_SIGNALS, SKIP_COLUMNS
from butterquant_dagster.core.scan.surface import SURFACE_COLUMNS
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import EQUITY_FIELDS, Ledger
from butterquant_dagster.core.trading.portfolio import TARGET_COLUMNS
from butterquant_dagster_tests.cli_processes import ENVIRONMENT, FIRST_SCAN, TRADED

# The non-market tables the run below builds (it must build at least these).
BUILT = {
    "ai_probabilities",
    "butterfly_candidates",
    "candidate_features",
    "daily_report",
    "drift_report",
    "fills",
    "iv_surface",
    "orders",
    "performance_report",
    "positions",
    "scan_rankings",
    "scan_skips",
    "target_orders",
    "trade_journal",
}
# Columns the defs write from dict literals (no constant to import): listed here.
LITERAL_COLUMNS = {
    "probability_model": [
        "win_model_version",
        "yield_model_version",
        "forced",
        "checks_passed",
        "yield_gates_passed",
        "gates_reason",
        "yield_gates_reason",
        "brier",
        "roc_auc",
        "ece",
        "training_samples",
        "compared_with",
    ],
    "probability_model_champion": ["model", "version", "promoted_at"],
    "regime_model": [
        "model_json",
        "train_start",
        "train_end",
        "requested_start",
        "requested_end",
        "n_samples",
        "gates_passed",
        "gates_json",
        "fitted_at",
        "run_id",
    ],
    "signal_ensemble": [
        "regime",
        "version",
        "rows",
        "accuracy",
        "brier_skill",
        "roc_auc",
        "gates_passed",
        "gates_reason",
    ],
}


def code_columns(tmp_path) -> dict[str, list[str]]:
    """The columns each table can have, from the code that writes it."""
    from butterquant_dagster.defs.ml.regime import REGIME_COLUMNS as DECISION_REGIME
    from butterquant_dagster.defs.scan.assets import RANKING_COLUMNS

    ledger = Ledger(tmp_path / "ledger.duckdb")
    health = HealthReport((HealthCheck("disk", OK, "fine"),), dt.datetime.now(dt.UTC))
    report = ["session", "period", "path"]
    return {
        "candidate_features": [*KEY_COLUMNS, *FEATURE_COLUMNS],
        "training_set": [*KEY_COLUMNS, *FEATURE_COLUMNS, LABEL, "yield_per_1000", RULE_EV],
        "candidate_outcomes": OUTCOME_COLUMNS,
        "butterfly_candidates": list(CARRIED_SIGNALS),
        "iv_surface": SURFACE_COLUMNS,
        "scan_skips": SKIP_COLUMNS,
        "scan_rankings": RANKING_COLUMNS,
        "target_orders": TARGET_COLUMNS,
        "orders": list(ledger.orders().columns),
        "fills": list(ledger.fills().columns),
        "trade_journal": ["session", *ledger.journal().columns],
        "market_regime": [*REGIME_COLUMNS, "model_train_start", "model_train_end"],
        "trading_decisions": ["session", *DECISION_COLUMNS, *DECISION_REGIME[:2]],
        "drift_report": ["session", *RELIABILITY_COLUMNS, "source"],
        "system_health": list(health.to_frame().columns),
        # The butterfly strategy adds the ledger's equity fields, the signals one "positions".
        "backtest": [*EQUITY_COLUMNS, *EQUITY_FIELDS, "positions"],
        **dict.fromkeys(glossary.REPORT_TABLES, report),
        **LITERAL_COLUMNS,
    }


@pytest.fixture(scope="module")
def lake_columns(tmp_path_factory) -> dict[str, set[str]]:
    """Each table's columns in a lake of two tickers: a scan, the next session traded on
    the paper broker with its market present (fills, marks, journal), the daily report."""
    root = tmp_path_factory.mktemp("glossary") / "data"
    env = pytest.MonkeyPatch()
    for name, value in ENVIRONMENT.items():
        env.setenv(name, value)
    env.setenv("BUTTERQUANT_DATA_DIR", str(root))
    env.setenv("DAGSTER_HOME", str(root / "dagster"))
    from butterquant_dagster import cli

    try:
        for args in (
            ("scan", "--date", FIRST_SCAN),
            ("backfill", "--start", TRADED, "--end", TRADED),
            ("execute", "--date", TRADED),
            ("report", "daily", "--date", TRADED),
        ):
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli.main([*args, "--json"]) == 0, args
    finally:
        env.undo()
    store = Lake(root)
    return {
        table: {
            name
            for path in store.table_dir(table).glob("*.parquet")
            for name in pq.read_schema(path).names
        }
        for table in store.tables()
    }


@pytest.mark.slow
def test_every_column_of_a_real_lake_has_a_description(lake_columns):
    built = set(lake_columns) - set(glossary.MARKET_SCHEMAS)
    assert built >= BUILT, f"the run did not build {sorted(BUILT - built)}"
    undescribed = []
    for table in sorted(built):
        for column in sorted(lake_columns[table]):
            try:
                glossary.describe(table, column)
            except KeyError as exc:
                undescribed.append(str(exc))
    assert not undescribed, "\n".join(undescribed)


def test_every_column_the_code_writes_has_a_description(tmp_path):
    columns = code_columns(tmp_path)
    assert set(columns) | BUILT == set(glossary.TABLES), "a lake table is not covered here"
    undescribed = []
    for table, names in columns.items():
        for column in names:
            try:
                glossary.describe(table, column)
            except KeyError as exc:
                undescribed.append(str(exc))
    assert not undescribed, "\n".join(undescribed)


@pytest.mark.parametrize(
    ("table", "column", "named"),
    [
        ("orders", "no_such_column", ("orders", "no_such_column")),
        ("no_such_table", "session", ("no_such_table", "session")),
        ("daily_bars", "no_such_column", ("daily_bars", "no_such_column")),
        # A name described only for other tables is not guessed for this one.
        ("orders", "count", ("orders", "count")),
    ],
)
def test_an_undescribed_column_raises_naming_table_and_column(table, column, named):
    with pytest.raises(KeyError) as raised:
        glossary.describe(table, column)
    for name in named:
        assert repr(name) in str(raised.value)


def test_descriptions_are_one_short_line():
    texts = {**{(None, k): v for k, v in glossary.GLOSSARY.items()}, **glossary.OVERRIDES}
    bad = {
        key: text
        for key, text in texts.items()
        if not text.strip() or len(text) > 120 or "\n" in text
    }
    assert not bad, bad
    assert not hasattr(glossary, "UNDESCRIBED_OK")


def test_overrides_name_lake_tables_and_market_names_reuse_the_market_text():
    assert {table for table, _ in glossary.OVERRIDES} <= set(glossary.TABLES)
    for schema in glossary.MARKET_SCHEMAS.values():
        for column in schema.columns:
            if column.name in glossary.GLOSSARY:
                texts = [
                    s.column(column.name).description
                    for s in glossary.MARKET_SCHEMAS.values()
                    if column.name in s.names
                ]
                assert any(t in glossary.GLOSSARY[column.name] for t in texts), column.name


def test_market_tables_are_described_by_their_schema():
    schema = glossary.MARKET_SCHEMAS["option_chains"]
    assert glossary.describe("option_chains", "bid") == schema.column("bid").description
