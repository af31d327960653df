"""The drift sensor requests a retraining on a drifted history and not on a calibrated one."""

from __future__ import annotations

import ast

import numpy as np
import pandas as pd
import pytest
from dagster import build_sensor_context
from sklearn.linear_model import LogisticRegression

from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.ml.assets import WIN_MODEL
from butterquant_dagster.resources import (
    LakeResource,
    ModelsResource,
    MonitoringResource,
    TradingResource,
)
from butterquant_dagster_tests.defs.helpers import in_loaded_code_location, make_defs


def _champion(root, training_brier: float) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, len(FEATURE_COLUMNS))).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    registry = ModelsResource(data_dir=str(root)).registry()
    version = registry.register(
        WIN_MODEL,
        onnx_export.export(model, x.shape[1]),
        {
            "feature_columns": FEATURE_COLUMNS,
            "label": "win",
            "training_date": "2025-01-02",
            "metrics": {"brier": training_brier},
        },
    )
    registry.promote(WIN_MODEL, version.version, reason="test")
    return version.version


def _history(root, predicted: np.ndarray, wins: np.ndarray, version: str) -> None:
    lake = Lake(root)
    n = len(predicted)
    keys = pd.DataFrame(
        {
            "session": pd.Timestamp("2025-03-03"),
            "symbol": [f"T{i % 50}" for i in range(n)],
            "expiry": pd.Timestamp("2025-04-04"),
            "structure": "call_fly",
            "lower": np.arange(n, dtype=float),
            "center": np.arange(n, dtype=float) + 5,
            "upper": np.arange(n, dtype=float) + 10,
        }
    )
    lake.write(
        "ai_probabilities",
        keys.assign(ml_success_prob=predicted, model_version=version),
        "2025-03-03",
    )
    outcomes = keys[KEY_COLUMNS].assign(win=wins, yield_per_1000=np.where(wins, 500.0, -1000.0))
    lake.write("candidate_outcomes", outcomes, "2025-03-03")


def _evaluate(root):
    defs = make_defs(root)
    sensor = defs.resolve_sensor_def("probability_model_drift")
    context = build_sensor_context(
        resources={
            "lake": LakeResource(data_dir=str(root)),
            "models": ModelsResource(data_dir=str(root)),
            "trading": TradingResource(data_dir=str(root)),
            "monitoring": MonitoringResource(data_dir=str(root)),
        },
        repository_def=defs.get_repository_def(),
    )
    return sensor.evaluate_tick(context)


def test_drifted_history_requests_a_retraining(tmp_path):
    version = _champion(tmp_path, training_brier=0.15)
    rng = np.random.default_rng(1)
    predicted = np.full(400, 0.7)
    wins = (rng.uniform(size=400) < 0.3).astype(bool)  # predicted 70 %, hit 30 %
    _history(tmp_path, predicted, wins, version)
    result = _evaluate(tmp_path)
    assert len(result.run_requests) == 1
    reason = result.run_requests[0].tags["butterquant/retrain_reason"]
    assert "hit rate" in reason and ">= 60%" in reason


def test_calibrated_history_does_not(tmp_path):
    # Predictions uniform on [0.05, 0.95] with outcomes at those rates: Brier ~0.195.
    version = _champion(tmp_path, training_brier=0.195)
    rng = np.random.default_rng(2)
    predicted = rng.uniform(0.05, 0.95, size=2000)
    wins = rng.uniform(size=2000) < predicted  # outcomes drawn at the predicted rate
    _history(tmp_path, predicted, wins, version)
    result = _evaluate(tmp_path)
    assert not result.run_requests
    assert "calibrated" in result.skip_message


def test_no_champion_skips(tmp_path):
    result = _evaluate(tmp_path)
    assert not result.run_requests and "no champion" in result.skip_message


ROUTINE_SENSORS = ("probability_model_drift", "collect_fills")
WATCHERS = ("health_watch", "record_run_failures", "clear_stale_runs")


@pytest.mark.parametrize(
    ("setting", "status"), [(None, "RUNNING"), ("running", "RUNNING"), ("stopped", "STOPPED")]
)
def test_the_daily_routine_runs_by_default_and_can_be_started_stopped(monkeypatch, setting, status):
    """Every schedule and the routine's sensors follow BUTTERQUANT_AUTOMATION_DEFAULT, read
    when the code location loads (each case loads one in a new process); the watchers always
    run."""
    monkeypatch.delenv("BUTTERQUANT_AUTOMATION_DEFAULT", raising=False)
    env = {} if setting is None else {"BUTTERQUANT_AUTOMATION_DEFAULT": setting}
    loaded = in_loaded_code_location(
        "[{s.name: s.default_status.value for s in found} "
        "for found in (defs.schedules, defs.sensors)]",
        **env,
    )
    assert loaded.returncode == 0, loaded.stderr
    schedules, sensors = ast.literal_eval(loaded.stdout.strip().splitlines()[-1])
    assert len(schedules) == 17  # 13 routine steps, 4 with an early-close variant
    assert set(schedules.values()) == {status}
    assert {sensors[name] for name in ROUTINE_SENSORS} == {status}
    assert {sensors[name] for name in WATCHERS} == {"RUNNING"}


def test_a_misspelt_automation_setting_is_refused():
    loaded = in_loaded_code_location("1", BUTTERQUANT_AUTOMATION_DEFAULT="on")
    assert loaded.returncode != 0
    assert "BUTTERQUANT_AUTOMATION_DEFAULT='on'" in loaded.stderr


def test_the_renamed_sensor_setting_is_refused_with_its_new_name():
    loaded = in_loaded_code_location("1", BUTTERQUANT_AUTOMATION_SENSORS_DEFAULT="stopped")
    assert loaded.returncode != 0
    assert "renamed BUTTERQUANT_AUTOMATION_DEFAULT" in loaded.stderr


def test_the_resource_and_the_report_share_one_set_of_drift_defaults(tmp_path, monkeypatch):
    from butterquant_dagster.core.monitoring.drift import DriftThresholds
    from butterquant_dagster.resources import monitoring_resource

    assert MonitoringResource(data_dir=str(tmp_path)).thresholds() == DriftThresholds()
    monkeypatch.setenv("BUTTERQUANT_DRIFT_SIGNIFICANCE", "0.001")
    monkeypatch.setenv("BUTTERQUANT_DRIFT_ECE_RETRAIN", "0.2")
    configured = monitoring_resource().thresholds()
    assert configured.significance == 0.001 and configured.ece_retrain == 0.2
    assert configured.calibration_margin == DriftThresholds().calibration_margin
