"""``butterquant models list|show|promote|rollback``: the model registry under
``<data root>/models``."""

from __future__ import annotations

from butterquant_dagster.commands._data import registry
from butterquant_dagster.commands._errors import EXIT_OK, CliError
from butterquant_dagster.commands._models import model_summary
from butterquant_dagster.commands._output import dumps
from butterquant_dagster.core.ml import model_card
from butterquant_dagster.core.ml.registry import RegistryError


def add_parser(sub) -> None:
    models = sub.add_parser(
        "models",
        help="list, show, promote or roll back models",
        description="The model registry under <data root>/models.",
    )
    models.add_argument("action", choices=["list", "show", "promote", "rollback"])
    models.add_argument("name", nargs="?", help="model name, e.g. butterfly_win_probability")
    models.add_argument("version", nargs="?", help="version, e.g. v0002")
    models.add_argument("--json", action="store_true", help="print JSON (list, show)")
    models.set_defaults(handler=cmd_models)


def cmd_models(args) -> int:
    action = {"list": list_models, "show": show, "promote": promote, "rollback": rollback}
    try:
        action[args.action](args)
    except (RegistryError, IndexError) as exc:
        raise CliError(str(exc) or "no such model") from exc
    return EXIT_OK


def list_models(args) -> None:
    rows = [s for s in (model_summary(n) for n in registry().names()) if s]
    if args.json:
        print(dumps(rows))
        return
    for row in rows:
        print(
            f"{row['name']:<32} latest {row['latest']}  champion "
            f"{row['champion'] or 'none'}  samples {row['training_samples']}"
        )
        joint = " " if row["verdict"] == "champion" else ": "
        print(f"{'':<32} {row['latest']} {row['verdict']}{joint}{row['verdict_reason']}")
        if row["champion_reason"]:
            print(f"{'':<32} {row['champion']} {row['champion_reason']}")
    if not rows:
        print("no models yet: run `butterquant train`")


def show(args) -> None:
    if not args.name:
        raise CliError("models show needs NAME")
    models = registry()
    version = (
        models.get(args.name, args.version)
        if args.version
        else (models.champion(args.name) or models.versions(args.name)[-1])
    )
    verdict = model_card.verdict(models, args.name, version.version)
    if args.json:
        print(dumps({**version.metadata, "verdict": verdict.to_dict()}))
    else:
        print(model_card.text(version.metadata, promotion=verdict.line()))


def promote(args) -> None:
    if not (args.name and args.version):
        raise CliError("models promote needs NAME and VERSION")
    registry().promote(args.name, args.version, reason="promoted by hand (CLI)")
    print(f"{args.name}: champion is now {args.version}")


def rollback(args) -> None:
    if not args.name:
        raise CliError("models rollback needs NAME")
    version = registry().rollback(args.name)
    print(f"{args.name}: rolled back to {version.version}")
