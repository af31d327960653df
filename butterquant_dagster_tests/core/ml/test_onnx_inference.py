"""Inference as the scan runs it: the champion's models score a session in equal batches of
rows (bounded memory and cache-friendly at thousands of tickers) with exactly the numbers of
one call over all rows, on a thread pool that never spins, and loading the inference path
does not import the exporter."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.registry import ModelRegistry

N_FEATURES = 5
TREES = 120  # more than onnxruntime's threshold for splitting trees across threads (80)
SPINNING = "session.intra_op.allow_spinning"


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, N_FEATURES)).astype(np.float32)
    y = (rng.uniform(size=600) < 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))).astype(int)
    with threadpool_limits(limits=1):
        classifier = CalibratedClassifierCV(
            HistGradientBoostingClassifier(max_iter=TREES, early_stopping=False, random_state=0),
            method="sigmoid",
            cv=3,
        ).fit(x, y)
        regressor = HistGradientBoostingRegressor(
            max_iter=TREES, early_stopping=False, random_state=0
        ).fit(x, 100.0 * x[:, 1])
    return (
        onnx_export.export(classifier, N_FEATURES),
        onnx_export.export(regressor, N_FEATURES),
    )


@pytest.mark.parametrize("which", [0, 1], ids=["classifier", "regressor"])
@pytest.mark.parametrize("batch_rows", [2_000, 3_000, 4_000])
def test_batches_give_exactly_the_numbers_of_one_call(models, which, batch_rows):
    session = onnx_export.session(models[which])
    x = np.random.default_rng(9).normal(size=(10_007, N_FEATURES)).astype(np.float32)
    whole = onnx_export.run(session, x, batch_rows=len(x))
    batched = onnx_export.run(session, x, batch_rows=batch_rows)
    assert batched.shape == (len(x),)
    assert batched.dtype == whole.dtype
    np.testing.assert_array_equal(batched, whole)
    # ... and of the path they replaced: one call on onnxruntime's default session.
    before = ort.InferenceSession(models[which], providers=["CPUExecutionProvider"])
    outputs = before.run(None, {before.get_inputs()[0].name: x})
    np.testing.assert_array_equal(batched, outputs[1][:, 1] if which == 0 else outputs[0].ravel())
    assert np.unique(whole).size > 100  # a model that varies, so order mistakes would show


@pytest.mark.parametrize(
    ("rows", "batch_rows", "sizes"),
    [
        (10, 4, [3, 3, 4]),
        (65_540, 65_536, [32_770, 32_770]),  # not 65,536 and a last batch of 4
        (65_536, 65_536, [65_536]),
        (0, 8, [0]),
    ],
)
def test_batches_are_equal_and_cover_every_row_once(rows, batch_rows, sizes):
    bounds = onnx_export.batch_bounds(rows, batch_rows)
    assert [b - a for a, b in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == rows
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(bounds))


def test_a_session_of_no_rows_scores_none(models):
    session = onnx_export.session(models[1])
    empty = onnx_export.run(session, np.zeros((0, N_FEATURES), dtype=np.float32), batch_rows=4)
    assert empty.shape == (0,)


def test_every_model_runs_on_a_pool_that_never_spins(models, tmp_path):
    """A spinning pool busy-waits between operators: CPU burnt for no wall time on a busy
    machine. The registry's champions run like the parity check's sessions."""
    assert (
        onnx_export.session(models[0]).get_session_options().get_session_config_entry(SPINNING)
        == "0"
    )
    registry = ModelRegistry(tmp_path)
    metadata = {
        "feature_columns": [f"f{i}" for i in range(N_FEATURES)],
        "label": "yield",
        "metrics": {},
    }
    version = registry.register("m", models[1], metadata)
    loaded = registry.load("m", version.version)
    assert loaded.session.get_session_options().get_session_config_entry(SPINNING) == "0"


def test_loading_the_inference_path_does_not_import_the_exporter():
    code = (
        "import sys\n"
        "import butterquant_dagster.core.ml.onnx_export\n"
        "import butterquant_dagster.core.ml.registry\n"
        "print(sorted(m for m in ('skl2onnx', 'onnx', 'ml_dtypes') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
