"""Training the models through Dagster and summarizing the registry, for `train`, `models`
and `demo`."""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._data import lake, registry
from butterquant_dagster.commands._errors import CliError
from butterquant_dagster.commands._materialize import materialize
from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml import model_card
from butterquant_dagster.core.ml.regime import first_labelled_session


def train_models(model: str, start: str | None, end: str | None, show: bool) -> dict:
    """Fit the regime model over the bar history, then train the ensemble and the
    probability model over the scanned sessions in [start, end]; one run per stage."""
    from butterquant_dagster.defs.ml.automation import (
        ENSEMBLE_TRAINING_JOB,
        FEATURES_JOB,
        PROBABILITY_TRAINING_JOB,
    )

    store = lake()
    bars = store.partitions("daily_bars")
    scanned = [
        s
        for s in store.partitions("butterfly_candidates")
        if (not start or s >= start) and (not end or s <= end)
    ]
    if not bars:
        raise CliError(
            "no market data to train on; backfill first (`butterquant backfill` or "
            "`butterquant demo`)"
        )
    runs = []
    if model in ("all", "regime"):
        runs.append(_fit_regime(bars, start, end, show))
        if not runs[-1].success:
            return {"runs": runs}
    if model in ("all", "ensemble"):
        # A refusal here (too little history per regime) leaves decisions on the signal
        # vote; it does not stop the probability model from training.
        runs.append(materialize(ENSEMBLE_TRAINING_JOB, None, None, show_progress=show))
    if model in ("all", "probability"):
        if not scanned:
            raise CliError(
                "no scanned sessions in the range: run `butterquant scan` or "
                "`butterquant demo` first"
            )
        # The features of the scanned sessions (all of them after a retrain of everything;
        # for the probability model alone, those it lacks), one run per unbroken stretch: a
        # range with a gap would ask for features of sessions that were never scanned.
        have = set() if model == "all" else set(store.partitions("candidate_features"))
        for first, last in contiguous_blocks([s for s in scanned if s not in have]):
            runs.append(materialize(FEATURES_JOB, first, last, show_progress=show))
            if not runs[-1].success:
                return {"runs": runs}
        runs.append(materialize(PROBABILITY_TRAINING_JOB, None, None, show_progress=show))
    return {"runs": runs}


def _fit_regime(bars: list[str], start: str | None, end: str | None, show: bool):
    """One run of the regime job over every session a point-in-time regime can label."""
    from butterquant_dagster.defs.ml.automation import REGIME_JOB

    first = first_labelled_session([dt.date.fromisoformat(b) for b in bars])
    if first is None:
        raise CliError(
            f"{len(bars)} sessions of market data are too few for a point-in-time regime; "
            "backfill more (`butterquant backfill` or `butterquant demo`)"
        )
    window = {"start_date": start or "", "end_date": end or ""}
    return materialize(
        REGIME_JOB,
        first,
        dt.date.fromisoformat(bars[-1]),
        show_progress=show,
        run_config={"ops": {"regime_model": {"config": window}}},
    )


def contiguous_blocks(keys: list[str]) -> list[tuple[dt.date, dt.date]]:
    """Runs of consecutive NYSE sessions among ``keys`` (sorted ISO dates)."""
    blocks: list[tuple[dt.date, dt.date]] = []
    for key in keys:
        day = dt.date.fromisoformat(key)
        if blocks and calendar.next_session(blocks[-1][1]) == day:
            blocks[-1] = (blocks[-1][0], day)
        else:
            blocks.append((day, day))
    return blocks


def model_summary(name: str) -> dict | None:
    """The latest version of model ``name``, its figures, and its promotion verdict with
    the reason; the champion's too when it is an older version."""
    models = registry()
    champion = models.champion(name) if name in models.names() else None
    versions = models.versions(name) if name in models.names() else []
    if not versions:
        return None
    latest = versions[-1]
    metrics = latest.metadata.get("metrics", {})
    card = model_card.summary(latest.metadata)
    verdict = model_card.verdict(models, name, latest.version)
    return {
        "name": name,
        "latest": latest.version,
        "champion": champion.version if champion else None,
        "forced": latest.forced,
        "gates_passed": card["gates_passed"],
        "verdict": verdict.status,
        "verdict_reason": verdict.reason,
        "champion_reason": (
            model_card.verdict(models, name, champion.version).line()
            if champion and champion.version != latest.version
            else None
        ),
        "not_champion_because": None if verdict.status == "champion" else verdict.reason,
        "training_samples": latest.metadata.get("training_samples"),
        "roc_auc": metrics.get("roc_auc"),
        "brier": metrics.get("brier"),
        "brier_skill": metrics.get("brier_skill"),
        "ece": metrics.get("ece"),
        "accuracy": metrics.get("accuracy"),
        "top_decile_yield_per_1000": metrics.get("economic", {}).get("top_decile_mean_yield"),
        "all_yield_per_1000": metrics.get("economic", {}).get("all_mean_yield"),
        "yield_spearman": metrics.get("spearman"),
    }
