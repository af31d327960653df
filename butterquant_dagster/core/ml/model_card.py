"""A model card: what a model was trained on, how it did out of sample, and which promotion
gates it passed, from its registry metadata alone.

The same card is shown in the Dagster UI (markdown, with the reliability diagram as an
inline PNG) and by ``butterquant models show`` (text), so the two can never disagree.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping

import pandas as pd

from butterquant_dagster.core.ml import gates

FOLD_COLUMNS = [
    "fold",
    "train_rows",
    "test_rows",
    "test_start",
    "test_end",
    "base_rate",
    "roc_auc",
    "brier",
    "brier_skill",
    "ece",
    "yield_spearman",
    "skipped",
]


def features_hash(columns) -> str:
    """sha256 of the ordered feature names: two models with the same hash read the same
    inputs in the same order."""
    return hashlib.sha256("\n".join(map(str, columns)).encode("utf-8")).hexdigest()[:16]


def folds_markdown(folds: list[Mapping]) -> str:
    if not folds:
        return "(no walk-forward folds recorded)"
    frame = pd.DataFrame(list(folds))
    frame = frame[[c for c in FOLD_COLUMNS if c in frame.columns]]
    return frame.to_markdown(index=False, floatfmt=".4f")


def gates_markdown(verdict: Mapping | None) -> str:
    if not isinstance(verdict, Mapping) or not verdict.get("checks"):
        return "(no promotion gates recorded)"
    frame = pd.DataFrame(list(verdict["checks"]))[
        ["name", "passed", "value", "threshold", "reason"]
    ]
    frame["passed"] = frame["passed"].map({True: "PASS", False: "FAIL"})
    return frame.to_markdown(index=False)


def reliability_png(reliability: list[Mapping], title: str) -> bytes:
    """Predicted vs realized rate per bin, point size by count, against the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [r for r in reliability if r.get("count")]
    figure, axes = plt.subplots(figsize=(3.6, 3.2), dpi=80)
    axes.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    if rows:
        total = sum(r["count"] for r in rows)
        axes.scatter(
            [r["mean_predicted"] for r in rows],
            [r["hit_rate"] for r in rows],
            s=[20 + 300 * r["count"] / total for r in rows],
        )
        axes.plot([r["mean_predicted"] for r in rows], [r["hit_rate"] for r in rows])
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted", ylabel="realized", title=title)
    axes.title.set_fontsize(9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def summary(metadata: Mapping) -> dict:
    """The card's headline numbers, for ``models list/show`` and the UI."""
    metrics = metadata.get("metrics", {}) or {}
    window = metadata.get("training_window", {}) or {}
    verdict = metadata.get("gates")
    return {
        "training_window": f"{window.get('start')} .. {window.get('end')}",
        "rows": metadata.get("training_samples"),
        "features_hash": metadata.get("features_hash")
        or features_hash(metadata.get("feature_columns", [])),
        "base_rate": metrics.get("base_rate"),
        "brier": metrics.get("brier"),
        "brier_skill": metrics.get("brier_skill"),
        "roc_auc": metrics.get("roc_auc"),
        "ece": metrics.get("ece"),
        "spearman": metrics.get("spearman"),
        "gates_passed": gates.passed(metadata),
        "gates_reason": gates.failure_reason(metadata)
        if isinstance(verdict, Mapping)
        else gates.failure_reason(None),
        "forced": metadata.get("forced"),
    }


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def text(metadata: Mapping) -> str:
    """The card as markdown without images (the CLI prints it as is)."""
    head = summary(metadata)
    name = f"{metadata.get('name', '?')} {metadata.get('version', '')}".strip()
    lines = [
        f"## Model card: {name}",
        "",
        f"- training window: {head['training_window']}",
        f"- rows: {head['rows']}",
        f"- features hash: {head['features_hash']}",
        f"- label: {metadata.get('label', 'n/a')}",
    ]
    if head["brier_skill"] is not None or head["base_rate"] is not None:
        lines.append(
            f"- walk-forward: base rate {_fmt(head['base_rate'])}, Brier {_fmt(head['brier'])}, "
            f"skill vs base rate {_fmt(head['brier_skill'])}, AUC {_fmt(head['roc_auc'])}, "
            f"ECE {_fmt(head['ece'])}"
        )
    if head["spearman"] is not None:
        lines.append(f"- out-of-fold Spearman with realized yield: {_fmt(head['spearman'])}")
    lines.append(
        "- promotion gates: "
        + ("all passed" if head["gates_passed"] else f"NOT passed: {head['gates_reason']}")
    )
    lines += ["", "### Gates", "", gates_markdown(metadata.get("gates"))]
    lines += ["", "### Walk-forward folds", "", folds_markdown(metadata.get("folds", []))]
    return "\n".join(lines)


def markdown(metadata: Mapping) -> str:
    """The card for the Dagster UI: :func:`text` plus the reliability diagram inline."""
    body = text(metadata)
    reliability = (metadata.get("metrics", {}) or {}).get("reliability")
    if not reliability:
        return body
    png = reliability_png(reliability, f"{metadata.get('name', '')} reliability (walk-forward)")
    image = base64.b64encode(png).decode("ascii")
    return (
        f"{body}\n\n### Reliability (out of fold)\n\n![reliability](data:image/png;base64,{image})"
    )
