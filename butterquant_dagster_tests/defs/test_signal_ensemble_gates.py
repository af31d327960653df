"""The signal ensemble as an asset: every regime model is registered with its gates and a
model card, and is champion exactly when its gates passed (Brier skill, not AUC)."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster import DagsterInstance, materialize

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.ml import gates
from butterquant_dagster.core.ml.ensemble import REGIMES
from butterquant_dagster.core.ml.registry import ModelRegistry
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.ml.decisions import ENSEMBLE_PREFIX, signal_ensemble
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource
from butterquant_dagster_tests.core.ml.test_ensemble import _regimes

pytestmark = pytest.mark.slow
SESSIONS = calendar.sessions(dt.date(2016, 1, 4), dt.date(2017, 12, 29))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Bars of 30 synthetic tickers and the market's hidden regime as market_regime."""
    root = tmp_path_factory.mktemp("ensemble")
    market = SyntheticMarket(select_universe(read_universe_file(), size=30))
    lake = Lake(root)
    bars = market.bars(SESSIONS)
    for session, frame in bars.groupby("session"):
        lake.write("daily_bars", frame.reset_index(drop=True), str(session.date()))
    regimes = _regimes(market.truth(SESSIONS))
    for session in SESSIONS[-300:]:
        row = regimes[regimes["session"] == session.isoformat()]
        lake.write("market_regime", row.reset_index(drop=True), session.isoformat())
    resource = LakeResource(data_dir=str(root))
    result = materialize(
        [signal_ensemble],
        resources={
            "lake": resource,
            "models": ModelsResource(data_dir=str(root)),
            "market": MarketDataResource(as_of="2018-01-05T12:00:00+00:00"),
            "lake_io_manager": LakeIOManager(lake=resource),
        },
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    return root, result


def test_each_regime_model_is_champion_exactly_when_its_gates_passed(trained):
    root, result = trained
    assert result.success
    registry = ModelRegistry(root / "models")
    names = [ENSEMBLE_PREFIX + r for r in REGIMES if ENSEMBLE_PREFIX + r in registry.names()]
    assert names
    all_passed = True
    for name in names:
        (version,) = registry.versions(name)
        verdict = version.metadata["gates"]
        assert [c["name"] for c in verdict["checks"]] == [
            "brier_skill",
            "onnx_parity",
            "not_forced",
        ]
        skill = version.metadata["metrics"]["brier_skill"]
        assert verdict["checks"][0]["value"] == skill
        assert verdict["passed"] == (skill > gates.MIN_BRIER_SKILL)
        champion = registry.champion(name)
        assert (champion is not None) == verdict["passed"]
        all_passed &= verdict["passed"]
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "promotion_gates"
    assert check.passed == (all_passed and len(names) == len(REGIMES))
    metadata = result.asset_materializations_for_node("signal_ensemble")[0].metadata
    for name in names:
        card = metadata[f"model_card_{name.removeprefix(ENSEMBLE_PREFIX)}"].value
        assert "Gates" in card and "data:image/png;base64," in card
