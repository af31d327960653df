"""A model card: what a model was trained on, how it did out of sample, and which promotion
gates it passed, from its registry metadata alone.

The same card is shown in the Dagster UI (markdown, with the reliability diagram as an
inline PNG) and by ``butterquant models show`` (text), so the two can never disagree.
:func:`verdict` says whether a version is champion and why, for ``models list/show``.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class PromotionVerdict:
    """A version's standing: ``status`` champion | former champion | not champion, the
    ``reason`` a person reads, and the name's current ``champion`` version (or None)."""

    status: str
    reason: str
    champion: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "champion": self.champion}

    def line(self) -> str:
        """``champion since 2026-12-04: ...`` or ``not champion: ...``."""
        joint = " " if self.status == "champion" else ": "
        return f"{self.status}{joint}{self.reason}"


def _day(moment: Any) -> str:
    """The date of an ISO timestamp (the registry records UTC instants)."""
    text = str(moment or "")
    return text[:10] if len(text) >= 10 else (text or "an unrecorded date")


def verdict(registry, name: str, version: str) -> PromotionVerdict:
    """Whether ``version`` of ``name`` in ``registry`` (a ``ModelRegistry``) is champion,
    and why or why not: the champion's promotion date and reason, a former champion's
    replacement, a forced model, the failed promotion gates, or gates passed without a
    promotion."""
    candidate = registry.get(name, version)
    record = registry.champion_record(name)
    champion = record["version"] if record else None
    if champion == version:
        return PromotionVerdict(
            "champion",
            f"since {_day(record.get('promoted_at'))}: {record.get('reason')}",
            champion,
        )
    if candidate.forced:
        return PromotionVerdict("not champion", "forced: registered, never promoted", champion)
    if not gates.passed(candidate.metadata):
        # The gates' own reason names each failed gate (brier_skill: ..., ...).
        return PromotionVerdict("not champion", gates.failure_reason(candidate.metadata), champion)
    former = [e for e in (record or {}).get("history", []) if e.get("version") == version]
    if former:
        return PromotionVerdict(
            "former champion",
            f"champion from {_day(former[-1].get('promoted_at'))} until replaced; the "
            f"champion is {champion} (`butterquant models rollback {name}` goes back one "
            "champion)",
            champion,
        )
    current = f"the champion is {champion}" if champion else "there is no champion"
    return PromotionVerdict(
        "not champion",
        f"passed its gates but was not promoted ({current}); promote it by hand with "
        f"`butterquant models promote {name} {version}`",
        champion,
    )


def features_hash(columns) -> str:
    """sha256 of the ordered feature names: two models with the same hash read the same
    inputs in the same order."""
    return hashlib.sha256("\n".join(map(str, columns)).encode("utf-8")).hexdigest()[:16]


# Whole numbers and dates of a fold, shown as such (not 8568.0000 or nan).
_FOLD_COUNTS = ("fold", "train_rows", "test_rows")
_FOLD_DATES = ("test_start", "test_end")


def folds_markdown(folds: list[Mapping]) -> str:
    """The walk-forward folds as a table: counts as integers, dates as dates, figures to
    four places, and a blank where a skipped fold has no figure."""
    if not folds:
        return "(no walk-forward folds recorded)"
    frame = pd.DataFrame(list(folds))
    frame = frame[[c for c in FOLD_COLUMNS if c in frame.columns]]
    shown = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        values = frame[column]
        if column in _FOLD_COUNTS:
            shown[column] = [_count(v) for v in values]
        elif column in _FOLD_DATES:
            shown[column] = [_date(v) for v in values]
        elif pd.api.types.is_numeric_dtype(values):
            shown[column] = [f"{v:.4f}" if pd.notna(v) else "" for v in values]
        else:
            shown[column] = ["" if _missing(v) else str(v) for v in values]
    align = ["left" if c in (*_FOLD_DATES, "skipped") else "right" for c in shown.columns]
    return shown.to_markdown(index=False, disable_numparse=True, colalign=align)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _count(value) -> str:
    return "" if _missing(value) else str(int(value))


def _date(value) -> str:
    return "" if _missing(value) else pd.Timestamp(value).date().isoformat()


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


def text(metadata: Mapping, *, promotion: str | None = None) -> str:
    """The card as markdown without images (the CLI prints it as is); ``promotion`` is the
    registry's verdict on the version (champion or not, and why), first when given."""
    head = summary(metadata)
    name = f"{metadata.get('name', '?')} {metadata.get('version', '')}".strip()
    lines = [
        f"## Model card: {name}",
        "",
        *([f"- promotion: {promotion}"] if promotion else []),
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
