"""The models from the command line on a small synthetic history: train registers ONNX
models with their metadata and gates and promotes only what passed them, the scan then ranks
by a champion that passed, analyze prints the decisions JSON, and a corrupt champion falls
back to the previous version."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json

import pytest

from butterquant_dagster import cli
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.core.ml import gates
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS
from butterquant_dagster.core.ml.registry import ModelRegistry
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.ml.assets import WIN_MODEL, YIELD_MODEL
from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB, SCAN_JOB
from butterquant_dagster_tests.core.ml.test_gates import candidates, joint_signal
from butterquant_dagster_tests.defs.test_promotion_gates import train_on

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    env = pytest.MonkeyPatch()
    env.setenv("BUTTERQUANT_DATA_DIR", str(root))
    env.setenv("DAGSTER_HOME", str(root / "dagster"))
    env.setenv("BUTTERQUANT_UNIVERSE_SIZE", "10")
    assert cli.main(["backfill", "--start", "2024-09-03", "--end", "2025-09-30", "--json"]) == 0
    # Bars only before that: the index history the point-in-time regime is fitted on.
    bars = ["backfill", "--assets", "bars", "--start", "2022-06-01", "--end", "2024-08-30"]
    assert cli.main([*bars, "--json"]) == 0
    scan = materialize(SCAN_JOB, dt.date(2025, 4, 1), dt.date(2025, 9, 30), show_progress=False)
    assert scan.success, scan.failures
    settled = materialize(
        OUTCOMES_JOB, dt.date(2025, 4, 1), dt.date(2025, 7, 31), show_progress=False
    )
    assert settled.success, settled.failures
    # Every test sees a trained registry, whichever worker runs it.
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        code = cli.main(["train", "--json"])
    yield root, env, code, json.loads(capture.getvalue())
    env.undo()


@pytest.fixture(scope="module")
def champion(trained):
    """A P(win) champion that passed every gate. When the model trained on the history
    above did not pass (a few months of ten tickers), one trained on candidates whose
    features carry signal stands in, so the scan, fallback and age paths still run against
    a real, gated champion."""
    root = trained[0]
    registry = ModelRegistry(root / "models")
    if registry.champion(WIN_MODEL) is None:
        assert train_on(root, candidates(12_000, seed=11, win_logit=joint_signal)).success
    version = registry.champion(WIN_MODEL)
    assert gates.passed(version.metadata)
    return version.version


def test_train_registers_models_and_promotes_only_through_the_gates(trained, capsys):
    root, _, code, result = trained
    jobs = {run["job"]: run for run in result["runs"]}
    assert (code == cli.EXIT_OK) == all(run["success"] for run in result["runs"])
    assert jobs["regime_job"]["success"] and jobs["features_job"]["success"]
    registry = ModelRegistry(root / "models")
    # Each regime model of the ensemble is registered and champion exactly when its gates
    # passed; a regime with too little data is refused, naming the counts.
    for regime in ("bull", "neutral", "bear"):
        name = f"signal_ensemble_{regime}"
        if name in registry.names():
            (version,) = registry.versions(name)
            assert (registry.champion(name) is not None) == version.metadata["gates"]["passed"]
    if not jobs["ensemble_training_job"]["success"]:
        assert "need at least 200 rows" in jobs["ensemble_training_job"]["failures"][0]
    registered = registry.get(WIN_MODEL, "v0001")
    meta = registered.metadata
    verdict = meta["gates"]
    # Champion exactly when every gate passed; each gate names its value and reason.
    promoted = verdict["passed"]
    # A failed blocking gate stops the run before promotion.
    assert jobs["probability_training_job"]["success"] == promoted
    assert (registry.champion(WIN_MODEL) is not None) == promoted
    assert (WIN_MODEL in result["champion_changed"]) == promoted
    for check in verdict["checks"]:
        assert {"name", "value", "threshold", "passed", "reason"} <= set(check)
    if not promoted:
        assert (
            "probability_model:promotion_gates" in jobs["probability_training_job"]["failed_checks"]
        )
        assert result["models"][WIN_MODEL]["not_champion_because"] == verdict["reason"]
        assert cli.main(["models", "list"]) == 0
        assert f"v0001 not champion: {verdict['reason']}" in capsys.readouterr().out
    assert cli.main(["models", "show", WIN_MODEL, "v0001"]) == 0
    card = capsys.readouterr().out
    assert "Model card" in card and "Walk-forward folds" in card
    assert meta["feature_columns"] == FEATURE_COLUMNS
    for key in (
        "roc_auc",
        "brier",
        "brier_skill",
        "log_loss",
        "ece",
        "reliability",
        "per_regime",
        "economic",
    ):
        assert key in meta["metrics"], key
    assert meta["parity"]["classifier"]["passed"] is True
    assert meta["parity"]["classifier"]["max_abs_diff"] <= 1e-5
    assert len(meta["sha256"]) == 64 and meta["dagster_run_id"]
    assert all("accuracy" in v for v in meta["metrics"]["per_regime"].values())
    gain = registry.get(YIELD_MODEL, "v0001")
    assert gain.metadata["paired_with"] == f"{WIN_MODEL}:v0001"
    assert "spearman" in gain.metadata["metrics"]
    yield_champion = registry.champion(YIELD_MODEL)
    assert (yield_champion is not None) == (promoted and gain.metadata["gates"]["passed"])
    # Folds were validated on the future only.
    for fold in meta["folds"]:
        if "test_start" in fold:
            assert fold["test_start"] > meta["training_window"]["start"]


def test_scan_after_training_ranks_by_the_champion(trained, champion, capsys):
    root = trained[0]
    assert cli.main(["scan", "--date", "2025-09-30", "--top", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["ranked_by"] == "model" for r in rows)
    assert all(0.0 <= r["ml_success_prob"] <= 1.0 for r in rows)
    assert all(r["model_version"] == champion for r in rows)
    values = [r["ranking_value"] for r in rows]
    assert values == sorted(values, reverse=True)
    probabilities = Lake(root).read("ai_probabilities", ["2025-09-30"])
    assert set(probabilities["model_status"]) == {"champion"}


def test_analyze_prints_the_decisions_json(trained, capsys):
    assert (
        cli.main(["analyze", "--tickers", "AAPL,GE", "--date", "2025-09-30", "--show-reasoning"])
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"decisions", "market_regime", "regime_confidence"}
    assert payload["market_regime"] in {"bull", "neutral", "bear"}
    assert set(payload["decisions"]) == {"AAPL", "GE"}
    for decision in payload["decisions"].values():
        assert decision["action"] in {"buy", "sell", "hold"}
        assert 0.0 <= decision["confidence"] <= 1.0
        assert "regime" in decision["reasoning"]


def test_analyze_portfolio_export(trained, capsys):
    assert (
        cli.main(
            [
                "analyze",
                "--tickers",
                "AAPL,GE",
                "--date",
                "2025-09-30",
                "--portfolio",
                "--capital",
                "50000",
            ]
        )
        == 0
    )
    export = json.loads(capsys.readouterr().out)
    assert set(export) == {"timestamp", "decisions", "market_regime", "risk_level"}
    assert export["timestamp"].startswith("2025-09-30T16:00")
    for decision in export["decisions"].values():
        assert set(decision) == {"action", "confidence", "shares"}
        assert isinstance(decision["shares"], int) and decision["shares"] >= 0
        assert (decision["shares"] == 0) == (decision["action"] == "hold") or decision[
            "confidence"
        ] == 0


def test_champion_age_check(trained, champion):
    from dagster import DagsterInstance

    from butterquant_dagster.definitions import build_definitions
    from butterquant_dagster.defs.ops.health import HEALTH_JOB
    from butterquant_dagster.resources import MarketDataResource

    defs = build_definitions()
    job = defs.resolve_job_def(HEALTH_JOB)
    # The champion was trained "today" (the real date); seen from 90 days later it is stale.
    later = (dt.date.today() + dt.timedelta(days=90)).isoformat() + "T12:00:00+00:00"
    resources = {"market": MarketDataResource(universe_size=10, as_of=later)}
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), resources=resources, raise_on_error=False
    )
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "champion_age"
    ]
    assert not evaluation.passed
    assert evaluation.severity.value == "ERROR"
    assert "90.5 days old" in evaluation.description  # training date at midnight UTC, as of noon


def test_models_cli_and_corrupt_champion_fallback(trained, champion, capsys):
    root = trained[0]
    registry = ModelRegistry(root / "models")
    assert cli.main(["models", "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[WIN_MODEL]["champion"] == champion
    assert cli.main(["models", "promote", WIN_MODEL, "v0009"]) == cli.EXIT_BAD_INPUT
    assert "v0009" in capsys.readouterr().err
    # A version that failed its gates cannot be promoted by hand either.
    for version in registry.versions(WIN_MODEL):
        if not gates.passed(version.metadata):
            assert cli.main(["models", "promote", WIN_MODEL, version.version]) == (
                cli.EXIT_BAD_INPUT
            )
            assert "gates" in capsys.readouterr().err
    onnx = registry.get(WIN_MODEL, champion).path / "model.onnx"
    original = onnx.read_bytes()
    try:
        onnx.write_bytes(original[:-10] + b"0123456789")
        loaded, warnings = registry.load_champion_with_fallback(WIN_MODEL)
        assert any("sha256" in w for w in warnings)
        assert loaded is None or loaded.version != champion
    finally:
        onnx.write_bytes(original)
    assert registry.load(WIN_MODEL).version == champion


def test_a_retrained_challenger_replaces_the_champion_only_through_the_gates(
    trained, champion, capsys
):
    root = trained[0]
    code = cli.main(["train", "--model", "probability", "--json"])
    result = json.loads(capsys.readouterr().out)
    registry = ModelRegistry(root / "models")
    latest = registry.versions(WIN_MODEL)[-1]
    passed = latest.metadata["gates"]["passed"]
    assert latest.metadata["promotion"]["passed"] is passed
    assert (registry.champion(WIN_MODEL).version == latest.version) == passed
    assert (WIN_MODEL in result["champion_changed"]) == passed
    (run,) = result["runs"]
    assert ("probability_model:promotion_gates" in run["failed_checks"]) == (not passed)
    assert (code == cli.EXIT_OK) == passed
