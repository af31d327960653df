"""Inference as the scan runs it: the champion's models score a session in batches of rows
shared by a thread per core (bounded memory at thousands of tickers, both cores busy), with
exactly the numbers of one single-threaded call over all rows, and loading the inference
path does not import the exporter."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.registry import ModelRegistry

N_FEATURES = 5


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, N_FEATURES)).astype(np.float32)
    y = (rng.uniform(size=600) < 1.0 / (1.0 + np.exp(-2.0 * x[:, 0]))).astype(int)
    with threadpool_limits(limits=1):
        classifier = CalibratedClassifierCV(
            HistGradientBoostingClassifier(max_iter=20, early_stopping=False, random_state=0),
            method="sigmoid",
            cv=3,
        ).fit(x, y)
        regressor = HistGradientBoostingRegressor(
            max_iter=20, early_stopping=False, random_state=0
        ).fit(x, 100.0 * x[:, 1])
    return (
        onnx_export.export(classifier, N_FEATURES),
        onnx_export.export(regressor, N_FEATURES),
    )


@pytest.mark.parametrize("which", [0, 1], ids=["classifier", "regressor"])
@pytest.mark.parametrize(("batch_rows", "threads"), [(1, 1), (7, 2), (256, 2), (100, 3)])
def test_batches_and_threads_give_exactly_the_numbers_of_one_call(
    models, which, batch_rows, threads
):
    session = onnx_export.session(models[which])
    x = np.random.default_rng(9).normal(size=(1_003, N_FEATURES)).astype(np.float32)
    whole = onnx_export.run(session, x, batch_rows=len(x), threads=1)
    batched = onnx_export.run(session, x, batch_rows=batch_rows, threads=threads)
    assert batched.shape == (len(x),)
    assert batched.dtype == whole.dtype
    np.testing.assert_array_equal(batched, whole)
    assert np.unique(whole).size > 10  # a model that varies, so order mistakes would show


def test_a_session_of_no_rows_scores_none(models):
    session = onnx_export.session(models[1])
    empty = onnx_export.run(session, np.zeros((0, N_FEATURES), dtype=np.float32), batch_rows=4)
    assert empty.shape == (0,)


def test_every_model_runs_on_one_onnxruntime_thread_per_call(models, tmp_path):
    """onnxruntime's own pool splits a tree ensemble's sum by thread: the numbers would
    depend on the machine's cores. The registry's champions run like the parity check's."""
    assert onnx_export.session(models[0]).get_session_options().intra_op_num_threads == 1
    registry = ModelRegistry(tmp_path)
    metadata = {
        "feature_columns": [f"f{i}" for i in range(N_FEATURES)],
        "label": "yield",
        "metrics": {},
    }
    version = registry.register("m", models[1], metadata)
    loaded = registry.load("m", version.version)
    assert loaded.session.get_session_options().intra_op_num_threads == 1


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
