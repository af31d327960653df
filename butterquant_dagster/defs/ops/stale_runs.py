"""The daemon's side of "a run that dies never blocks the next one".

Runs of the ``butterquant`` command execute in the command's process; Dagster's run
monitoring cannot tell when that process is killed (the default run launcher has no worker
health check for a run it did not launch), so such a run stays STARTED and keeps its pool
slot. Every command clears these when it starts; this sensor does the same every minute
while the daemon runs, so the 15:45 schedule never waits behind a dead run either.
"""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from butterquant_dagster import runs


@sensor(
    name="clear_stale_runs",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed every run whose `butterquant` process is gone (killed, crashed) and "
        "frees the pool slots it held, and those of finished runs; as "
        "`butterquant runs --clear-stale` does by hand."
    ),
)
def clear_stale_runs(context: SensorEvaluationContext):
    cleared = runs.clear_stale(context.instance)
    for info in cleared:
        context.log.warning(f"cleared {info.describe()}: marked failed, its pool slots freed")
    return SkipReason(f"cleared {len(cleared)} stale runs" if cleared else "no stale run")
