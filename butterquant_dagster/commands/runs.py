"""The `butterquant runs` command: unfinished runs, and clearing those whose process is gone.

A run whose process was killed stays STARTED and keeps its pool slot; every command clears
such runs when it starts, and this command shows them and clears them by hand (the recovery
the waiting message names). ``--clear RUN_ID`` fails one run whatever its state, for a run
launched before runs recorded their process, or on another host.
"""

from __future__ import annotations

import json

from butterquant_dagster.commands._errors import EXIT_OK, CliError
from butterquant_dagster.commands._instance import prepare_instance


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "runs",
        help="list unfinished runs; clear those whose process is gone",
        description="Unfinished runs of the instance with their process and the pool slots "
        "they hold. A run is stale when the process that ran it is gone (killed, crashed): "
        "--clear-stale marks such runs failed and frees their slots.",
    )
    parser.add_argument(
        "--clear-stale",
        action="store_true",
        help="mark failed every run whose process is gone and free its pool slots",
    )
    parser.add_argument(
        "--clear",
        metavar="RUN_ID",
        action="append",
        default=[],
        help="mark this run failed and free its slots, even if its process cannot be checked "
        "(stop the process first if it is alive)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=cmd_runs)


def cmd_runs(args) -> int:
    from butterquant_dagster import runs

    instance = prepare_instance(clear_stale=False)  # listed first, cleared if asked
    cleared = []
    for run_id in args.clear:
        info = runs.run_info(instance, run_id)
        if info is None:
            raise CliError(f"no run {run_id} in the instance")
        if info.alive:
            raise CliError(
                f"{info.describe()} is alive: stop it (kill {info.launcher.pid}) and retry"
            )
        runs.mark_failed(instance, run_id, "Marked failed by hand (`butterquant runs --clear`).")
        cleared.append(info)
    if args.clear_stale:
        cleared += runs.clear_stale(instance)
    holding = _slots_by_run(instance)
    unfinished = runs.in_progress(instance)
    payload = {
        "cleared": [i.to_dict() for i in cleared],
        "unfinished": [{**i.to_dict(), "slots": holding.get(i.run_id, [])} for i in unfinished],
    }
    lines = [f"cleared {i.describe()}: marked failed, slots freed" for i in cleared]
    lines += [
        f"{i.status:<10} {i.describe()}"
        + (f"  holds {', '.join(holding[i.run_id])}" if holding.get(i.run_id) else "")
        + ("  STALE" if i.stale else "")
        for i in unfinished
    ]
    if not unfinished:
        lines.append("no unfinished runs" + ("" if cleared else "; nothing is stuck"))
    if any(i.stale for i in unfinished):
        lines.append(f"stale runs: `{runs.RECOVERY_COMMAND}` clears them")
    if args.json:
        print(json.dumps(payload, indent=2, default=str))
    else:
        print("\n".join(lines))
    return EXIT_OK


def _slots_by_run(instance) -> dict[str, list[str]]:
    storage = instance.event_log_storage
    held: dict[str, list[str]] = {}
    for pool in sorted(storage.get_concurrency_keys()):
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            held.setdefault(slot.run_id, []).append(f"pool '{pool}' ({slot.step_key})")
    return held
