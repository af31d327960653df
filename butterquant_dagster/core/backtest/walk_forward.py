"""Walk-forward retraining of the probability models for a backtest, without look-ahead.

The traded sessions are cut into steps of N sessions. At the start S of each step the two
models (P(win) and the expected yield) are trained afresh by ``core.ml.probability`` on the
outcomes known before S: those whose expiry is on or before the *label cutoff*, the session
before S (an outcome is settled at its expiry's close, so it is known from that close on).
The step's candidates are then scored by the ONNX export of those models, through the same
feature matrix the daily inference uses.

Look-ahead is made impossible in three places, each raising :class:`LookAheadError`:

1. the training history is read only for entry sessions before S and only outcomes that
   expired before S (:func:`known_outcomes`), so later outcomes never reach the trainer;
2. the rows the trainer receives are checked again after they are built;
3. a model refuses to score candidates for a session on or before its label cutoff
   (:meth:`StepModel.score`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml import gates, onnx_export, probability
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS, feature_matrix

LabelledHistory = Callable[[dt.date], tuple[pd.DataFrame, pd.DataFrame]]
STEP_COLUMNS = [
    "step",
    "start",
    "end",
    "sessions",
    "label_cutoff",
    "training_rows",
    "training_wins",
    "model_trained",
    "model_version",
    "note",
]


class LookAheadError(RuntimeError):
    """A model would learn from, or be used before, an outcome known only later."""


@dataclass(frozen=True)
class Step:
    index: int
    sessions: tuple[dt.date, ...]

    @property
    def start(self) -> dt.date:
        return self.sessions[0]

    @property
    def end(self) -> dt.date:
        return self.sessions[-1]

    @property
    def label_cutoff(self) -> dt.date:
        """The last session whose close the step's models may have seen."""
        return calendar.previous_session(self.start)


def plan_steps(trading_sessions: list[dt.date], step_sessions: int) -> list[Step]:
    if step_sessions < 1:
        raise ValueError(f"step_sessions must be at least 1, got {step_sessions}")
    days = list(trading_sessions)
    return [
        Step(i + 1, tuple(days[at : at + step_sessions]))
        for i, at in enumerate(range(0, len(days), step_sessions))
    ]


# A third of the production retrain's cap: each step trains in seconds rather than minutes
# (a backtest trains once per step), with enough rows for a stable model.
BACKTEST_TRAINING_ROWS = 20_000


@dataclass(frozen=True)
class TrainingPolicy:
    """How each step trains: the production model's settings (ModelsResource), except the
    row cap (:data:`BACKTEST_TRAINING_ROWS`)."""

    max_rows: int = BACKTEST_TRAINING_ROWS
    n_folds: int = 4
    purge_days: int = 60
    min_rows: int = 500
    min_class: int = 50
    seed: int = 7


def known_outcomes(outcomes: pd.DataFrame, before: dt.date) -> pd.DataFrame:
    """The outcomes settled before ``before``: expiry strictly earlier."""
    if not len(outcomes):
        return outcomes
    return outcomes.loc[pd.to_datetime(outcomes["expiry"]) < pd.Timestamp(before)]


@dataclass
class StepModel:
    """The models of one step, as ONNX inference sessions, and what they learned up to."""

    step: int
    label_cutoff: dt.date
    version: str
    win: object
    gain: object

    def score(
        self, features: pd.DataFrame, *, decided_on: dt.date, traded: dt.date
    ) -> pd.DataFrame:
        """P(win) and expected yield of the candidates of ``decided_on`` (traded on
        ``traded``), keyed like the candidates; refuses to run before its cutoff."""
        if not self.label_cutoff < traded or self.label_cutoff > decided_on:
            raise LookAheadError(
                f"step {self.step} model learned outcomes up to {self.label_cutoff}; it "
                f"cannot score the decisions of {decided_on} traded on {traded}"
            )
        out = features[KEY_COLUMNS].copy()
        if not len(features):
            out["ml_success_prob"] = pd.Series(dtype=float)
            out["ml_expected_roi"] = pd.Series(dtype=float)
        else:
            x = feature_matrix(features, FEATURE_COLUMNS)
            out["ml_success_prob"] = onnx_export.run(self.win, x)
            # No expected yield unless that model validated: the AI track then ranks by P(win).
            out["ml_expected_roi"] = (
                onnx_export.run(self.gain, x) / 1000.0 if self.gain is not None else np.nan
            )
        out["model_version"] = self.version
        return out


def train_step(
    step: Step, history: LabelledHistory, policy: TrainingPolicy
) -> tuple[StepModel | None, dict]:
    """Train the step's models on what was known before it began, and its record.

    ``history(before)`` gives the candidate features and outcomes of the entry sessions
    before ``before``. Too little data, or a model that fails the production promotion
    gates (ONNX parity among them), leaves the step without a model: the AI track is off
    in that step and the record says why.
    """
    cutoff = step.label_cutoff
    features, outcomes = history(step.start)
    known = known_outcomes(outcomes, step.start)
    if len(known) < len(outcomes):
        raise LookAheadError(
            f"step {step.index}: the history for {step.start} held "
            f"{len(outcomes) - len(known)} outcome(s) expiring on or after it"
        )
    rows = probability.training_rows(
        features, known, cutoff=cutoff, max_rows=policy.max_rows, seed=policy.seed
    )
    if len(rows) and pd.to_datetime(rows["expiry"]).max() > pd.Timestamp(cutoff):
        raise LookAheadError(
            f"step {step.index}: a training row expires after the label cutoff {cutoff}"
        )
    record = {
        "step": step.index,
        "start": step.start,
        "end": step.end,
        "sessions": len(step.sessions),
        "label_cutoff": cutoff,
        "training_rows": len(rows),
        "training_wins": int(rows[probability.LABEL].sum()) if len(rows) else 0,
        "model_trained": False,
        "model_version": "none",
        "note": "",
    }
    try:
        trained = probability.train(
            rows,
            n_folds=policy.n_folds,
            purge_days=policy.purge_days,
            seed=policy.seed,
            min_rows=policy.min_rows,
            min_class=policy.min_class,
        )
    except ValueError as exc:  # TrainingError, or too few sessions for the folds
        record["note"] = f"AI track off: {exc}; the baseline track still trades"
        return None, record
    # The same absolute gates as production promotion: a step's model trades only if a
    # champion trained on the same rows could have been promoted.
    win_verdict = gates.verdict(trained.win_gates)
    if not win_verdict["passed"]:
        record["note"] = (
            f"AI track off: the model trained on outcomes known by {cutoff} failed its "
            f"promotion gates ({win_verdict['reason']}); the baseline track still trades"
        )
        return None, record
    yield_verdict = gates.verdict(trained.yield_gates)
    version = f"walk-forward-{step.index:02d}"
    record |= {
        "model_trained": True,
        "model_version": version,
        "note": f"trained on outcomes known by {cutoff} (walk-forward AUC "
        f"{_figure(trained.metrics.get('roc_auc'))}); "
        + (
            "ranked by the model's expected yield"
            if yield_verdict["passed"]
            else f"expected yield not validated ({yield_verdict['reason']}): ranked by P(win)"
        ),
    }
    model = StepModel(
        step=step.index,
        label_cutoff=cutoff,
        version=version,
        win=onnx_export.session(trained.classifier_onnx),
        gain=onnx_export.session(trained.regressor_onnx) if yield_verdict["passed"] else None,
    )
    return model, record


def _figure(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) and np.isfinite(value) else "n/a"
