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

import itertools
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

OPSET = 17
PARITY_TOLERANCE = 1e-5
# Rows per onnxruntime call, at most. A session's candidates (~250k at 500 tickers, ~2.6M at
# 5,000) go through in equal batches of up to this size: one call over 2.6M rows took twice
# the CPU of the batches (its intermediate tensors no longer fit any cache), and a batch
# this large is split across onnxruntime's threads the way one call is, so every number is
# the one a single call gives (tested on the champion: bit for bit at 500 and 5,000 tickers).
BATCH_ROWS = 65_536


def export(estimator, n_features: int) -> bytes:
    """ONNX bytes of ``estimator`` taking a float32 [n, n_features] input named ``X``."""
    from skl2onnx import to_onnx

    sample = np.zeros((1, n_features), dtype=np.float32)
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    model = to_onnx(estimator, sample, target_opset=OPSET, options=options)
    return model.SerializeToString()


def session_options() -> ort.SessionOptions:
    """How every model of the project runs: all graph optimizations, operators in sequence,
    onnxruntime's intra-op thread pool on the machine's cores, never spinning. A spinning
    pool busy-waits between operators: on a busy 2-core machine that took 2.8 s of CPU for
    the champion's pass over a 500-ticker session, against 1.7 s without, in the same wall
    time."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def session(onnx_bytes: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(onnx_bytes, session_options(), providers=["CPUExecutionProvider"])


def batch_bounds(rows: int, batch_rows: int = BATCH_ROWS) -> list[tuple[int, int]]:
    """``[start, end)`` of equal batches of at most ``batch_rows`` rows covering ``rows``.
    Never a small last batch: onnxruntime sums a tree ensemble over few rows by another
    strategy (trees split across threads), whose last float32 bit differs from one call."""
    batches = max(1, -(-rows // batch_rows))
    return list(itertools.pairwise(rows * i // batches for i in range(batches + 1)))


def run(
    model: ort.InferenceSession, features: np.ndarray, batch_rows: int = BATCH_ROWS
) -> np.ndarray:
    """Positive-class probability for a classifier graph, the prediction for a regressor;
    the rows go through in equal batches of at most ``batch_rows``."""
    name = model.get_inputs()[0].name
    x = np.ascontiguousarray(features, dtype=np.float32)
    parts = [_outputs(model.run(None, {name: x[a:b]})) for a, b in batch_bounds(len(x), batch_rows)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


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
