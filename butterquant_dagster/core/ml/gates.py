"""Absolute promotion gates: what a model must prove out of sample before it steers money.

A relative test ("beats the champion") cannot stop the first model, nor a line of models
that are all worse than a coin; these gates can. Each gate is a named check with the value
measured, the threshold, pass/fail and a sentence a person can act on. A model is champion
only when every gate of its kind passes, and the verdict is stored in its registry metadata
(``gates``), where the registry, the UI and ``butterquant models`` read it.

The thresholds are constants, not settings, on purpose: a gate that can be loosened from
``.env`` to let a model through is not a gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

# Walk-forward Brier skill against always predicting the base rate must be above this.
MIN_BRIER_SKILL = 0.0
# Expected calibration error (10 equal-width bins) on the latest walk-forward fold.
MAX_LATEST_FOLD_ECE = 0.05
# Out-of-fold Spearman correlation of predicted with realized yield must be above this.
MIN_RANK_CORRELATION = 0.0


@dataclass(frozen=True)
class Gate:
    name: str
    value: float | bool | None
    threshold: float | bool | None
    passed: bool
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _number(value) -> float | None:
    return None if value is None else float(value)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def brier_skill_gate(skill, *, what: str = "walk-forward") -> Gate:
    skill = _number(skill)
    passed = skill is not None and skill > MIN_BRIER_SKILL
    return Gate(
        "brier_skill",
        skill,
        MIN_BRIER_SKILL,
        passed,
        f"{what} Brier skill {_fmt(skill)} against the base rate "
        + (f"> {MIN_BRIER_SKILL}" if passed else f"is not above {MIN_BRIER_SKILL}: no skill"),
    )


def latest_fold_ece_gate(ece) -> Gate:
    ece = _number(ece)
    passed = ece is not None and ece <= MAX_LATEST_FOLD_ECE
    return Gate(
        "latest_fold_ece",
        ece,
        MAX_LATEST_FOLD_ECE,
        passed,
        "latest walk-forward fold not validated"
        if ece is None
        else f"latest-fold ECE {ece:.4f} "
        + ("<=" if passed else "above")
        + f" {MAX_LATEST_FOLD_ECE}"
        + ("" if passed else ": badly calibrated"),
    )


def parity_gate(parity: Mapping | None) -> Gate:
    """``parity``: {"passed", "max_abs_diff", "tolerance"} of the ONNX export."""
    parity = parity or {}
    passed = parity.get("passed") is True
    diff, tolerance = _number(parity.get("max_abs_diff")), _number(parity.get("tolerance"))
    return Gate(
        "onnx_parity",
        diff,
        tolerance,
        passed,
        f"ONNX vs scikit-learn max |diff| {diff if diff is not None else 'n/a'} "
        + ("within" if passed else "outside")
        + f" tolerance {tolerance if tolerance is not None else 'n/a'}",
    )


def not_forced_gate(forced: bool) -> Gate:
    return Gate(
        "not_forced",
        bool(forced),
        False,
        not forced,
        "forced training: registered, never promoted" if forced else "trained without --force",
    )


def beats_feature_gates(model: Mapping, feature: Mapping | None) -> list[Gate]:
    """Better AUC and better Brier than the best single feature, on the same rows.

    ``model`` and ``feature`` hold ``roc_auc`` and ``brier``; ``feature`` also ``feature``
    (its column name). Without a feature baseline both gates fail: skill that cannot be
    compared with what the scan already has is not shown.
    """
    if not feature:
        missing = "no single-feature baseline was measured"
        return [
            Gate("beats_best_feature_auc", _number(model.get("roc_auc")), None, False, missing),
            Gate("beats_best_feature_brier", _number(model.get("brier")), None, False, missing),
        ]
    name = feature["feature"]
    auc, feature_auc = _number(model.get("roc_auc")), _number(feature.get("roc_auc"))
    brier, feature_brier = _number(model.get("brier")), _number(feature.get("brier"))
    auc_ok = auc is not None and feature_auc is not None and auc > feature_auc
    brier_ok = brier is not None and feature_brier is not None and brier < feature_brier
    return [
        Gate(
            "beats_best_feature_auc",
            auc,
            feature_auc,
            auc_ok,
            f"AUC {_fmt(auc)} " + ("above" if auc_ok else "not above") + f" {_fmt(feature_auc)} "
            f"of the best single feature {name!r} on the same folds",
        ),
        Gate(
            "beats_best_feature_brier",
            brier,
            feature_brier,
            brier_ok,
            f"Brier {_fmt(brier)} " + ("below" if brier_ok else "not below") + " "
            f"{_fmt(feature_brier)} of the best single feature {name!r} on the same folds",
        ),
    ]


def win_probability_gates(
    metrics: Mapping, latest_fold: Mapping, parity: Mapping, best_feature: Mapping | None
) -> list[Gate]:
    """P(win): skill over the base rate, calibration on the latest fold, ONNX parity, and
    better AUC and Brier than the best single feature on the same walk-forward rows."""
    return [
        brier_skill_gate(metrics.get("brier_skill")),
        latest_fold_ece_gate(latest_fold.get("ece")),
        parity_gate(parity),
        *beats_feature_gates(metrics, best_feature),
    ]


def expected_yield_gates(metrics: Mapping, parity: Mapping) -> list[Gate]:
    """Expected yield: out-of-fold rank skill, and its top decile realizes more than all
    candidates and more than the top decile by the rule's ``ev_per_1000``.

    ``metrics`` from :func:`validation.yield_metrics`.
    """
    rho = _number(metrics.get("spearman"))
    top = _number(metrics.get("top_decile_mean_yield"))
    everyone = _number(metrics.get("all_mean_yield"))
    rule_top = _number(metrics.get("rule_top_decile_mean_yield"))
    rho_ok = rho is not None and rho > MIN_RANK_CORRELATION
    all_ok = top is not None and everyone is not None and top > everyone
    rule_ok = top is not None and rule_top is not None and top > rule_top
    return [
        Gate(
            "rank_correlation",
            rho,
            MIN_RANK_CORRELATION,
            rho_ok,
            f"out-of-fold Spearman {_fmt(rho)} with realized yield "
            + (f"> {MIN_RANK_CORRELATION}" if rho_ok else f"is not above {MIN_RANK_CORRELATION}"),
        ),
        Gate(
            "top_decile_beats_all",
            top,
            everyone,
            all_ok,
            f"top decile realized {_fmt(top)} per $1,000 "
            + ("above" if all_ok else "not above")
            + f" all candidates' {_fmt(everyone)}",
        ),
        Gate(
            "top_decile_beats_rule_ev",
            top,
            rule_top,
            rule_ok,
            "no ev_per_1000 in the training rows to compare with"
            if rule_top is None
            else f"top decile realized {_fmt(top)} per $1,000 "
            + ("above" if rule_ok else "not above")
            + f" the top decile by ev_per_1000 ({_fmt(rule_top)})",
        ),
        parity_gate(parity),
    ]


def ensemble_regime_gates(metrics: Mapping, parity: Mapping) -> list[Gate]:
    """A regime's "up" classifier: Brier skill over the base rate of "up" (AUC alone is not
    skill: a model can rank slightly better than chance and still forecast worse than the
    base rate), and ONNX parity."""
    return [brier_skill_gate(metrics.get("brier_skill")), parity_gate(parity)]


def verdict(gates: Iterable[Gate]) -> dict:
    """The JSON stored as ``gates`` in a model's metadata: every gate and the outcome."""
    gates = list(gates)
    failed = [g for g in gates if not g.passed]
    return {
        "passed": bool(gates) and not failed,
        "failed": [g.name for g in failed],
        "reason": "; ".join(f"{g.name}: {g.reason}" for g in failed)
        or ("all gates passed" if gates else "no gates were evaluated"),
        "checks": [g.as_dict() for g in gates],
    }


def passed(metadata: Mapping | None) -> bool:
    """True only for a model whose metadata records a passing verdict (a model registered
    before the gates existed has none and is not trusted)."""
    gates = (metadata or {}).get("gates")
    return isinstance(gates, Mapping) and gates.get("passed") is True


def failure_reason(metadata: Mapping | None) -> str:
    gates = (metadata or {}).get("gates")
    if not isinstance(gates, Mapping):
        return "no promotion gates recorded (registered before the gates existed)"
    return str(gates.get("reason", ""))
