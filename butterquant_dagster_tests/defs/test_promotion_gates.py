"""Promotion through the gates, as assets: a model that passes every gate is promoted with its
model card; a forced one is registered and never promoted; a yield model that fails its
gates is not promoted and ai_probabilities writes no expected yield for it, saying why."""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize
from threadpoolctl import threadpool_limits

from butterquant_dagster.core.ml import gates
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.ml.registry import ModelRegistry, PromotionError
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.ml.assets import (
    WIN_MODEL,
    YIELD_MODEL,
    probability_model,
    probability_model_champion,
)
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource
from butterquant_dagster_tests.core.ml.test_gates import candidates, joint_signal
from butterquant_dagster_tests.defs.helpers import check_outcomes, make_defs

pytestmark = pytest.mark.slow
SCORED_SESSION = "2025-06-02"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def yield_by_rule(frame, rng):
    """Realized yield that the rule's ev_per_1000 ranks and the features do not."""
    return 4.0 * frame["ev_per_1000"].to_numpy() + rng.normal(scale=100.0, size=len(frame))


def train_on(root, rows, **models):
    Lake(root).write("training_set", rows)
    lake = LakeResource(data_dir=str(root))
    return materialize(
        [probability_model, probability_model_champion],
        resources={
            "lake": lake,
            "models": ModelsResource(data_dir=str(root), **models),
            "market": MarketDataResource(source="synthetic"),
            "lake_io_manager": LakeIOManager(lake=lake),
        },
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def score_a_session(root):
    """ai_probabilities for one session of candidate features, with the registry's champion."""
    features = candidates(60, seed=99)[[*KEY_COLUMNS, *FEATURE_COLUMNS]]
    features["session"] = pd.Timestamp(SCORED_SESSION)
    features["expiry"] = pd.Timestamp(SCORED_SESSION) + pd.Timedelta(days=30)
    Lake(root).write("candidate_features", features, SCORED_SESSION)
    defs = make_defs(root, models=ModelsResource(data_dir=str(root)))
    result = materialize(
        [defs.get_assets_def("ai_probabilities")],
        partition_key=SCORED_SESSION,
        resources={
            "lake": LakeResource(data_dir=str(root)),
            "models": ModelsResource(data_dir=str(root)),
            "market": MarketDataResource(source="synthetic"),
            "lake_io_manager": LakeIOManager(lake=LakeResource(data_dir=str(root))),
        },
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    return Lake(root).read("ai_probabilities", [SCORED_SESSION]), result


@pytest.fixture(scope="module")
def skilled_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("skilled")
    result = train_on(root, candidates(12_000, seed=11, win_logit=joint_signal))
    return root, result


def test_a_model_that_passes_every_gate_is_promoted_with_its_card(skilled_root):
    root, result = skilled_root
    assert result.success
    checks = check_outcomes(result)
    assert checks[("probability_model", "promotion_gates")] is True
    assert checks[("probability_model", "yield_model_gates")] is True
    registry = ModelRegistry(root / "models")
    champion = registry.champion(WIN_MODEL)
    assert champion.version == "v0001"
    meta = champion.metadata
    assert meta["gates"]["passed"] is True
    assert {c["name"] for c in meta["gates"]["checks"]} >= {
        "brier_skill",
        "latest_fold_ece",
        "onnx_parity",
        "beats_best_feature_auc",
        "beats_best_feature_brier",
        "not_forced",
        "beats_champion",
    }
    assert meta["best_single_feature"]["feature"] in FEATURE_COLUMNS
    assert registry.champion(YIELD_MODEL).version == "v0001"
    # The drift reference describes out-of-fold predictions: fewer rows than training.
    reference = meta["feature_reference"]
    assert reference["rows"] == meta["training_samples"]
    assert reference["prediction"]["n"] < meta["training_samples"]
    # The model card reaches the UI, with its reliability diagram inline.
    materialization = result.asset_materializations_for_node("probability_model")[0]
    card = materialization.metadata["model_card"].value
    assert "Walk-forward folds" in card and "data:image/png;base64," in card
    assert "all passed" in card


def test_a_passing_model_scores_with_a_validated_yield(skilled_root):
    root, _ = skilled_root
    scored, result = score_a_session(root)
    assert scored["ml_success_prob"].between(0, 1).all()
    assert scored["ml_expected_roi"].notna().all()
    assert scored["yield_model_validated"].all()
    assert set(scored["model_status"]) == {"champion"}
    metadata = result.asset_materializations_for_node("ai_probabilities")[0].metadata
    assert metadata["yield_model"].value == "validated"


def test_a_forced_model_is_registered_and_never_promoted(skilled_root):
    root, _ = skilled_root
    result = train_on(root, candidates(1500, seed=4, win_logit=joint_signal), force=True)
    checks = check_outcomes(result)
    assert checks[("probability_model", "promotion_gates")] is False
    registry = ModelRegistry(root / "models")
    forced = registry.versions(WIN_MODEL)[-1]
    assert forced.version == "v0002" and forced.forced
    assert "not_forced" in forced.metadata["gates"]["failed"]
    assert "never promoted" in gates.failure_reason(forced.metadata)
    assert registry.champion(WIN_MODEL).version == "v0001"
    with pytest.raises(PromotionError, match="forced"):
        registry.promote(WIN_MODEL, "v0002", reason="by hand")


def test_a_yield_model_without_rank_skill_is_not_used(tmp_path):
    rows = candidates(12_000, seed=11, win_logit=joint_signal, yield_of=yield_by_rule)
    result = train_on(tmp_path, rows)
    checks = check_outcomes(result)
    assert checks[("probability_model", "promotion_gates")] is True
    assert checks[("probability_model", "yield_model_gates")] is False
    registry = ModelRegistry(tmp_path / "models")
    assert registry.champion(WIN_MODEL).version == "v0001"
    assert registry.champion(YIELD_MODEL) is None
    refused = registry.versions(YIELD_MODEL)[-1]
    assert "top_decile_beats_rule_ev" in refused.metadata["gates"]["failed"]
    with pytest.raises(PromotionError, match="promotion gates"):
        registry.promote(YIELD_MODEL, refused.version, reason="by hand")
    scored, run = score_a_session(tmp_path)
    assert scored["ml_success_prob"].notna().all()
    # Nothing downstream can rank by an expected yield that was never written.
    assert scored["ml_expected_roi"].isna().all()
    assert not scored["yield_model_validated"].any()
    assert all("yield model not validated" in s for s in scored["model_status"])
    metadata = run.asset_materializations_for_node("ai_probabilities")[0].metadata
    assert "top_decile_beats_rule_ev" in metadata["yield_model"].value
