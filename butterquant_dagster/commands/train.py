"""``butterquant train``: train, validate walk-forward, export and register the models, and
say which champion changed (exit 1 when a training run failed)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

from butterquant_dagster.commands._data import registry
from butterquant_dagster.commands._dates import require_closed_text
from butterquant_dagster.commands._errors import EXIT_OK, EXIT_RUN_FAILED
from butterquant_dagster.commands._models import model_summary, train_models


def add_parser(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train, validate walk-forward, export and register the models",
        description="Fit the regime model, train the signal ensemble and the butterfly "
        "probability model on the scanned history, and promote only a model that passes "
        "every promotion gate (skill over the base rate and the best single feature, "
        "calibration, ONNX parity) and beats the champion.",
    )
    train.add_argument(
        "--model",
        choices=["all", "regime", "ensemble", "probability"],
        default="all",
        help="which models (default all)",
    )
    train.add_argument(
        "--start-date",
        help="first session to train on: scanned sessions for the probability model, bars "
        "for the regime model (refused, never widened, if the window cannot be honoured)",
    )
    train.add_argument("--end-date", help="last session to train on (as --start-date)")
    train.add_argument("--tickers", help="comma-separated tickers for the probability model")
    train.add_argument(
        "--force",
        action="store_true",
        help="train even on too little data; every model trained is registered as forced "
        "and never promoted",
    )
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.set_defaults(handler=cmd_train)


def cmd_train(args) -> int:
    require_closed_text(args.end_date, "--end-date")
    require_closed_text(args.start_date, "--start-date")
    if args.force:
        os.environ["BUTTERQUANT_FORCE_TRAINING"] = "true"
    if args.tickers:
        os.environ["BUTTERQUANT_TRAINING_TICKERS"] = args.tickers
    before = champions()
    result = train_models(args.model, args.start_date, args.end_date, show=not args.json)
    failed = [r for r in result["runs"] if not r.success]
    summaries = {n: model_summary(n) for n in registry().names()}
    changed = {
        n: {"before": before.get(n), "after": s["champion"]}
        for n, s in summaries.items()
        if s and before.get(n) != s["champion"]
    }
    if args.json:
        payload = {
            "success": not failed,
            "runs": [asdict(r) for r in result["runs"]],
            "models": summaries,
            "champion_changed": changed,
        }
        print(json.dumps(payload, indent=2, default=str))
    else:
        print_text(result["runs"], summaries, changed, forced=args.force)
    return EXIT_RUN_FAILED if failed else EXIT_OK


def champions() -> dict[str, str | None]:
    """Each registered model's champion version (None: no champion)."""
    models = registry()
    return {n: (c.version if (c := models.champion(n)) else None) for n in models.names()}


def print_text(runs: list, summaries: dict, changed: dict, *, forced: bool) -> None:
    for run in runs:
        print(f"{run.job}: {'ok' if run.success else 'FAILED'} ({run.run_id})")
        for message in run.failures:
            print(f"  {message}", file=sys.stderr)
    for name, summary in summaries.items():
        if summary:
            print(
                f"{name}: latest {summary['latest']}, champion {summary['champion']}"
                + (
                    f", AUC {summary['roc_auc']:.3f}, Brier {summary['brier']:.4f}, "
                    f"ECE {summary['ece']:.4f}"
                    if summary.get("brier") is not None and summary.get("roc_auc") is not None
                    else ""
                )
            )
            if summary["not_champion_because"]:
                print(f"  {summary['latest']} not champion: {summary['not_champion_because']}")
    if forced:
        print("forced: every model was trained and registered as forced, never promoted")
    print(
        "champion changed: "
        + (", ".join(f"{n} {c['before']} -> {c['after']}" for n, c in changed.items()) or "no")
    )
