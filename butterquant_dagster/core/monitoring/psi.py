"""Population stability: do the live inputs (and outputs) still look like the training rows?

Outcomes take a butterfly's whole life to arrive; a shift in the inputs shows the day it
happens. At training time :func:`feature_reference` records, per feature, the bins of the
training rows and the share of rows in each; the dict goes into the model's
``metadata.json``. Live rows are later put in the same bins and compared with
:func:`population_stability_index`.

Binning: a feature with few distinct training values (flags such as ``is_call_fly``, or a
constant) is categorical - one bin per value plus an "other" bin with a training share of
0, so a value the model never saw reads as a shift. Any other feature gets quantile bins
(edges from the training rows, ties merged); live values beyond the first or last edge go
to the end bins. Missing live values (NaN) are left out of the shares and counted apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REFERENCE_FORMAT = "butterquant.feature_reference/1"
MAX_CATEGORIES = 5  # at most this many distinct training values: one bin per value
PSI_MODERATE = 0.10
PSI_SHIFTED = 0.25
PSI_COLUMNS = ("feature", "psi", "level", "live_n", "missing")
SHIFT_COLUMNS = ("bin", "low", "high", "training_share", "live_share")


def population_stability_index(expected_shares, actual_shares, eps: float = 1e-4) -> float:
    """sum((actual - expected) * ln(actual / expected)) over the bins.

    Shares of 0 are raised to ``eps`` so a bin empty on one side gives a large, finite
    value instead of infinity.
    """
    expected = np.asarray(expected_shares, dtype=float)
    actual = np.asarray(actual_shares, dtype=float)
    if expected.shape != actual.shape or expected.ndim != 1:
        raise ValueError(
            f"PSI needs two share vectors of the same length, got {expected.shape} "
            f"and {actual.shape}"
        )
    for name, shares in (("expected", expected), ("actual", actual)):
        if (~np.isfinite(shares)).any() or (shares < 0).any() or abs(shares.sum() - 1) > 1e-6:
            raise ValueError(f"PSI: {name} shares must be non-negative and sum to 1: {shares}")
    expected, actual = np.maximum(expected, eps), np.maximum(actual, eps)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_level(psi: float | None, shifted: float = PSI_SHIFTED) -> str:
    """stable < 0.1 <= moderate < ``shifted`` <= shifted (the industry's usual reading)."""
    if psi is None:
        return "no data"
    return "stable" if psi < PSI_MODERATE else "moderate" if psi < shifted else "shifted"


# ---------------------------------------------------------------------------- reference
def distribution_reference(values, bins: int = 10) -> dict:
    """The bins of one training distribution and the share of rows in each (JSON-safe)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        raise ValueError("no finite training value to build bins from")
    distinct = np.unique(x)
    if len(distinct) <= MAX_CATEGORIES:
        spec = {"kind": "categorical", "values": distinct.tolist()}
    else:
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
        spec = {"kind": "quantile", "edges": edges.tolist()}
    counts = np.bincount(_bin_index(spec, x), minlength=_bin_count(spec))
    # The "other" bin of a categorical spec is empty at training by construction.
    shares = counts / len(x)
    return {**spec, "n": len(x), "shares": shares[: len(shares) - _other(spec)].tolist()}


def feature_reference(features: pd.DataFrame, predictions, columns, bins: int = 10) -> dict:
    """Per feature in ``columns`` and for the predicted P(win): training bins and shares.

    Stored in the model's metadata at training time, read back by :func:`feature_psi`.
    """
    columns = list(columns)
    missing = [c for c in columns if c not in features.columns]
    if missing:
        raise ValueError(f"feature_reference: features are missing column(s) {missing}")
    specs = {}
    for column in columns:
        try:
            specs[column] = distribution_reference(features[column], bins)
        except ValueError as exc:
            raise ValueError(f"feature_reference: feature {column!r}: {exc}") from exc
    try:
        prediction = distribution_reference(predictions, bins)
    except ValueError as exc:
        raise ValueError(f"feature_reference: predictions: {exc}") from exc
    return {
        "format": REFERENCE_FORMAT,
        "bins": int(bins),
        "rows": len(features),
        "features": specs,
        "prediction": prediction,
    }


def _other(spec: dict) -> int:
    return 1 if spec["kind"] == "categorical" else 0


def _bin_count(spec: dict) -> int:
    if spec["kind"] == "categorical":
        return len(spec["values"]) + 1
    return max(len(spec["edges"]) - 1, 1)


def _bin_index(spec: dict, x: np.ndarray) -> np.ndarray:
    if spec["kind"] == "categorical":
        values = np.asarray(spec["values"], dtype=float)
        match = np.isclose(x[:, None], values[None, :], rtol=1e-9, atol=1e-12)
        return np.where(match.any(axis=1), match.argmax(axis=1), len(values))
    return np.searchsorted(np.asarray(spec["edges"], dtype=float)[1:-1], x, side="right")


# ---------------------------------------------------------------------------- live
def live_shares(spec: dict, values) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(training shares, live shares, live n, missing)`` on the spec's bins."""
    x = np.asarray(values, dtype=float)
    known = x[np.isfinite(x)]
    expected = np.asarray(spec["shares"] + [0.0] * _other(spec), dtype=float)
    if not len(known):
        return expected, np.full(len(expected), np.nan), 0, len(x)
    counts = np.bincount(_bin_index(spec, known), minlength=_bin_count(spec))
    return expected, counts / len(known), len(known), len(x) - len(known)


def _spec_psi(spec: dict, values) -> tuple[float | None, int, int]:
    expected, actual, n, missing = live_shares(spec, values)
    psi = population_stability_index(expected, actual) if n else None
    return psi, n, missing


def check_reference(reference: dict) -> None:
    if not isinstance(reference, dict) or reference.get("format") != REFERENCE_FORMAT:
        found = reference.get("format") if isinstance(reference, dict) else type(reference)
        raise ValueError(f"feature reference: format {found!r}, expected {REFERENCE_FORMAT!r}")
    for key in ("features", "prediction"):
        if key not in reference:
            raise ValueError(f"feature reference: missing {key!r}")


def feature_psi(
    reference: dict, live_features: pd.DataFrame, *, shifted: float = PSI_SHIFTED
) -> pd.DataFrame:
    """PSI of each reference feature in ``live_features``, highest first."""
    check_reference(reference)
    names = list(reference["features"])
    missing = [c for c in names if c not in live_features.columns]
    if missing:
        raise ValueError(f"feature_psi: live features are missing column(s) {missing}")
    rows = []
    for name in names:
        psi, n, nan = _spec_psi(reference["features"][name], live_features[name])
        rows.append(
            {
                "feature": name,
                "psi": psi,
                "level": psi_level(psi, shifted),
                "live_n": n,
                "missing": nan,
            }
        )
    frame = pd.DataFrame(rows, columns=list(PSI_COLUMNS))
    return frame.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


def prediction_shift(reference: dict, predictions) -> tuple[pd.DataFrame, float | None]:
    """The P(win) distribution at training vs live, bin by bin, and its PSI."""
    check_reference(reference)
    spec = reference["prediction"]
    expected, actual, n, _ = live_shares(spec, predictions)
    frame = pd.DataFrame(
        {
            "bin": np.arange(len(expected)),
            "low": _bin_bounds(spec)[0],
            "high": _bin_bounds(spec)[1],
            "training_share": expected,
            "live_share": actual,
        },
        columns=list(SHIFT_COLUMNS),
    )
    return frame, population_stability_index(expected, actual) if n else None


def _bin_bounds(spec: dict) -> tuple[list, list]:
    """Display bounds per bin: the value itself for a category (NaN for "other")."""
    if spec["kind"] == "categorical":
        values = [*spec["values"], np.nan]
        return values, values
    edges = spec["edges"]
    if len(edges) == 1:
        return [edges[0]], [edges[0]]
    return edges[:-1], edges[1:]
