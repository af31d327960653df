"""Export scikit-learn models to ONNX, prove the export computes the same thing, and run
ONNX models.

The opset is pinned so a model exported today loads the same way next year; the parity
check runs the ONNX graph with onnxruntime on held-out rows and compares it with the
scikit-learn model it came from (the promotion of a model is blocked when they differ).

Inference needs only onnxruntime: ``skl2onnx`` (with ``onnx`` and ``ml_dtypes``, about a
second of imports) is imported by :func:`export` alone, so the daily scan, which loads this
module to run the champion, does not pay for the exporter.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

OPSET = 17
PARITY_TOLERANCE = 1e-5
# Rows per onnxruntime call. A session's candidates (~250k at 500 tickers, ~2.5M at 5,000)
# go through in batches of this size, shared by a thread per core: the graph's intermediate
# tensors stay bounded by the batch, and both cores work.
BATCH_ROWS = 32_768


def export(estimator, n_features: int) -> bytes:
    """ONNX bytes of ``estimator`` taking a float32 [n, n_features] input named ``X``."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    model = to_onnx(estimator, sample, target_opset=OPSET, options=options)
    return model.SerializeToString()


def session_options() -> ort.SessionOptions:
    """How every model of the project runs: all graph optimizations, operators in sequence,
    one thread per call. A row's output is then a function of that row alone, bit for bit:
    onnxruntime's own thread pool splits a tree ensemble's sum by thread, so the same model
    gave a different last float32 bit on a machine with another number of cores (and a
    spinning pool doubled the CPU seconds of a pass on a busy 2-core machine). :func:`run`
    uses the cores by giving batches of rows to threads instead."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return options


def session(onnx_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_bytes, session_options(), providers=["CPUExecutionProvider"])


def inference_threads() -> int:
    """Threads that share a model's batches: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def run(
    model: ort.InferenceSession,
    features: np.ndarray,
    batch_rows: int = BATCH_ROWS,
    threads: int | None = None,
) -> np.ndarray:
    """Positive-class probability for a classifier graph, the prediction for a regressor.

    Rows go to onnxruntime ``batch_rows`` at a time, the batches shared by ``threads``
    threads (default: one per core; onnxruntime releases the GIL while it runs). Each row's
    output depends on that row only, so the result is the same whatever the batching.
    """
    name = model.get_inputs()[0].name
    x = np.ascontiguousarray(features, dtype=np.float32)
    starts = range(0, len(x), batch_rows)
    if len(starts) <= 1:
        return _outputs(model.run(None, {name: x}))

    def batch(start: int) -> np.ndarray:
        return _outputs(model.run(None, {name: x[start : start + batch_rows]}))

    workers = min(inference_threads() if threads is None else threads, len(starts))
    if workers <= 1:
        return np.concatenate([batch(start) for start in starts])
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnx") as pool:
        return np.concatenate(list(pool.map(batch, starts)))


def _outputs(outputs: list) -> np.ndarray:
    if len(outputs) >= 2:  # classifier: (label, probabilities)
        return np.asarray(outputs[1])[:, 1]
    return np.asarray(outputs[0]).ravel()


def sklearn_output(estimator, features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if hasattr(estimator, "predict_proba"):
        return estimator.predict_proba(x)[:, 1]
    return estimator.predict(x)


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    rows: int
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def parity(
    estimator, onnx_bytes: bytes, features: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> Parity:
    ours = run(session(onnx_bytes), features)
    theirs = sklearn_output(estimator, features)
    diff = float(np.max(np.abs(ours - theirs))) if len(ours) else 0.0
    return Parity(diff, len(ours), tolerance)
