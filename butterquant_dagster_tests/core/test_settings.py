"""Settings: the documented table, the data root, and .env.example in step with them."""

from __future__ import annotations

from pathlib import Path

from butterquant_dagster.core import settings

REPO = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting_with_its_default():
    text = (REPO / ".env.example").read_text()
    for name, (default, description, _) in settings.SETTINGS.items():
        assert f"\n{name}={default}\n" in text, name
        assert description in text, name


def test_data_root_and_instance_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_DATA_DIR", str(tmp_path / "elsewhere"))
    assert settings.data_root() == tmp_path / "elsewhere"
    assert settings.dagster_home() == tmp_path / "elsewhere" / "dagster"


def test_relative_data_root_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUTTERQUANT_DATA_DIR", raising=False)
    assert settings.data_root() == tmp_path / "data"


PACKAGE = REPO / "butterquant_dagster"
# Fields that share a setting's name but mean something else.
NOT_THE_SETTING = {
    ("ModelsResource", "seed"): "the models' random seed, not the synthetic market's",
    ("TrainingPolicy", "seed"): "the models' random seed, not the synthetic market's",
    ("RegimeModel", "seed"): "the seed a saved regime model was fitted with",
    ("ReportContext", "benchmark_symbol"): "None: the caller passes the resource's value",
}


def _fields_named_like_settings():
    """(file, class, field, default node) of every class-level field whose name is a
    setting's (``max_positions`` ~ ``BUTTERQUANT_MAX_POSITIONS``)."""
    import ast

    names = {name.removeprefix("BUTTERQUANT_").lower(): name for name in settings.SETTINGS}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and item.target.id in names
                    and item.value is not None
                    and (node.name, item.target.id) not in NOT_THE_SETTING
                ):
                    yield path, node.name, item.target.id, item.value


def test_no_default_of_a_setting_is_written_twice():
    """A field named like a setting takes its default from the settings table, never from a
    literal of its own: two literals agree today and drift apart the day one is changed."""
    import ast

    found = list(_fields_named_like_settings())
    assert len(found) >= 40  # the resources, the trading rules and limits are all scanned
    literals = [
        f"{path.relative_to(REPO)}: {cls}.{name} = {ast.unparse(value)}"
        for path, cls, name, value in found
        if isinstance(value, ast.Constant)
        or (isinstance(value, ast.UnaryOp) and isinstance(value.operand, ast.Constant))
    ]
    assert literals == [], "defaults written again outside the settings table:\n" + "\n".join(
        literals
    )


def test_rules_limits_and_resources_start_from_the_table():
    from butterquant_dagster.core.trading.rules import PortfolioRules, RiskLimits
    from butterquant_dagster.resources import (
        MarketDataResource,
        MonitoringResource,
        TradingResource,
    )

    rules, limits = PortfolioRules(), RiskLimits()
    trading = TradingResource(data_dir="x")
    for name in set(TradingResource.model_fields) - {"data_dir"}:
        setting = f"BUTTERQUANT_{name.upper()}"
        if setting in settings.SETTINGS:
            assert getattr(trading, name) == settings.default(setting), name
            for plain in (rules, limits):
                if hasattr(plain, name):
                    assert getattr(plain, name) == settings.default(setting), name
    assert MarketDataResource().universe_size == settings.default("BUTTERQUANT_UNIVERSE_SIZE")
    monitoring = MonitoringResource(data_dir="x")
    assert monitoring.drift_ece_retrain == settings.default("BUTTERQUANT_DRIFT_ECE_RETRAIN")
    # The launchpad shows each field's description from the same table.
    field = TradingResource.model_fields["max_order_loss"]
    assert field.description == settings.description("BUTTERQUANT_MAX_ORDER_LOSS")


def test_a_malformed_number_names_the_setting(monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_MAX_POSITIONS", "twenty")
    import pytest

    with pytest.raises(ValueError, match="BUTTERQUANT_MAX_POSITIONS='twenty': expected int"):
        settings.value("BUTTERQUANT_MAX_POSITIONS")


def test_readme_settings_table_shows_the_table_defaults():
    """Each README row names settings and their defaults in the same order; every one must
    be the table's (the README is documentation of the one definition, not a second one)."""
    import re

    rows = [
        line
        for line in (REPO / "README.md").read_text().splitlines()
        if line.startswith("| `BUTTERQUANT_")
    ]
    assert len(rows) >= 10
    checked = 0
    for row in rows:
        names_cell, defaults_cell = row.split("|")[1:3]
        names = re.findall(r"`(BUTTERQUANT_\w+)`", names_cell)
        defaults = [d.strip().strip("`") for d in defaults_cell.split(",")]
        defaults += [""] * (len(names) - len(defaults))
        for name, shown in zip(names, defaults, strict=True):
            assert name in settings.SETTINGS, f"README names an unknown setting {name}"
            assert shown == settings.SETTINGS[name].default, (name, shown)
            checked += 1
    assert checked >= 14
