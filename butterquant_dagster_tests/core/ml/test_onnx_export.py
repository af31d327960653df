"""ONNX export of the model kinds we ship, and the parity check that guards promotion."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from butterquant_dagster.core.ml import onnx_export

N_FEATURES = 6


def _data(seed: int = 5, n: int = 800):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[:, 2] = x[:, 2] * 40.0 + 100.0  # one feature on a very different scale
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.02 * (x[:, 2] - 100.0)
    y = (rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    target = 300.0 * x[:, 0] + 50.0 * x[:, 1] ** 2 + rng.normal(scale=20.0, size=n)
    return x, y, target


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Gradient boosting on one OpenMP thread: immune to spin-waits on busy shared cores."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def data():
    x, y, target = _data()
    return x[:600], y[:600], target[:600], x[600:]


@pytest.fixture(scope="module")
def logistic(data):
    x, y, _, _ = data
    return Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(x, y)


@pytest.fixture(scope="module")
def calibrated_boosting(data):
    x, y, _, _ = data
    base = HistGradientBoostingClassifier(max_iter=40, random_state=0)
    return CalibratedClassifierCV(base, method="sigmoid", cv=3).fit(x, y)


@pytest.fixture(scope="module")
def boosting_regressor(data):
    x, _, target, _ = data
    return HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(x, target)


@pytest.mark.parametrize("name", ["logistic", "calibrated_boosting"])
def test_classifiers_export_with_probability_parity(request, data, name):
    model = request.getfixturevalue(name)
    held_out = data[3]
    blob = onnx_export.export(model, N_FEATURES)
    assert isinstance(blob, bytes) and blob
    graph = onnx.load_from_string(blob)
    assert {o.domain: o.version for o in graph.opset_import}[""] == onnx_export.OPSET
    check = onnx_export.parity(model, blob, held_out)
    assert check.rows == len(held_out) == 200
    assert check.tolerance == onnx_export.PARITY_TOLERANCE
    assert check.max_abs_diff <= 1e-5
    assert check.passed
    # run(): one positive-class probability per row, equal to predict_proba[:, 1].
    session = onnx_export.session(blob)
    assert session.get_inputs()[0].name == "X"
    out = onnx_export.run(session, held_out[:17])
    assert out.shape == (17,)
    assert ((out >= 0) & (out <= 1)).all()
    np.testing.assert_allclose(out, model.predict_proba(held_out[:17])[:, 1], atol=1e-5)
    # The probabilities are informative, not a constant the parity check trivially passes.
    assert np.ptp(out) > 0.3


def test_regressor_export_matches_to_a_relative_tolerance(data, boosting_regressor):
    held_out = data[3]
    blob = onnx_export.export(boosting_regressor, N_FEATURES)
    expected = boosting_regressor.predict(held_out)
    scale = float(np.abs(expected).max())
    assert scale > 100.0
    check = onnx_export.parity(boosting_regressor, blob, held_out, tolerance=1e-5 * scale)
    assert check.rows == 200
    assert check.max_abs_diff <= 1e-5 * scale
    assert check.passed
    out = onnx_export.run(onnx_export.session(blob), held_out[:9])
    assert out.shape == (9,)
    np.testing.assert_allclose(out, expected[:9], rtol=0, atol=1e-5 * scale)


def test_float64_and_non_contiguous_inputs_are_accepted(data, logistic):
    held_out = data[3]
    blob = onnx_export.export(logistic, N_FEATURES)
    strided = np.asfortranarray(held_out.astype(np.float64))[::2]
    out = onnx_export.run(onnx_export.session(blob), strided)
    assert out.shape == (100,)
    np.testing.assert_allclose(out, logistic.predict_proba(held_out[::2])[:, 1], atol=1e-5)


def test_a_different_model_fails_parity(data, logistic, calibrated_boosting):
    x, y, _, held_out = data
    # Same kind of model, trained on flipped labels: the export is of another model.
    other = Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(x, 1 - y)
    blob = onnx_export.export(other, N_FEATURES)
    check = onnx_export.parity(logistic, blob, held_out)
    assert not check.passed
    assert check.max_abs_diff > 0.1
    # The boosting export does not stand in for the logistic model either.
    blob = onnx_export.export(calibrated_boosting, N_FEATURES)
    assert not onnx_export.parity(logistic, blob, held_out).passed


def test_parity_tolerance_is_the_boundary():
    check = onnx_export.Parity(max_abs_diff=1e-5, rows=3, tolerance=1e-5)
    assert check.passed
    assert not onnx_export.Parity(max_abs_diff=1.0001e-5, rows=3, tolerance=1e-5).passed
