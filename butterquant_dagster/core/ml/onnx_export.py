"""Export scikit-learn models to ONNX and prove the export computes the same thing.

The opset is pinned so a model exported today loads the same way next year; the parity
check runs the ONNX graph with onnxruntime on held-out rows and compares it with the
scikit-learn model it came from (the promotion of a model is blocked when they differ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx

OPSET = 17
PARITY_TOLERANCE = 1e-5


def export(estimator, n_features: int) -> bytes:
    """ONNX bytes of ``estimator`` taking a float32 [n, n_features] input named ``X``."""
    sample = np.zeros((1, n_features), dtype=np.float32)
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    model = to_onnx(estimator, sample, target_opset=OPSET, options=options)
    return model.SerializeToString()


def session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def run(model: ort.InferenceSession, features: np.ndarray) -> np.ndarray:
    """Positive-class probability for a classifier graph, the prediction for a regressor."""
    name = model.get_inputs()[0].name
    outputs = model.run(None, {name: np.ascontiguousarray(features, dtype=np.float32)})
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
