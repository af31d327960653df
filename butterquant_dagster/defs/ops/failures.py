"""The run-failure sensor: every failed run is recorded, and announced when a webhook is set.

It watches every run of the instance, those the ``butterquant`` command launches included, and
is running by default: a failure alert that has to be switched on first is off exactly when
it is needed. The record and the webhook
are in :mod:`butterquant_dagster.core.monitoring.run_failures`; the webhook URL is read from
``BUTTERQUANT_ALERT_WEBHOOK`` at each evaluation and never logged.
"""

import datetime as dt

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from butterquant_dagster.core import settings
from butterquant_dagster.core.monitoring.run_failures import (
    first_line,
    post_webhook,
    record_failure,
)
from butterquant_dagster.resources import LakeResource
from butterquant_dagster.run_errors import error_text

WEBHOOK_TIMEOUT_SECONDS = 10.0


def failure_message(context: RunFailureSensorContext) -> str:
    """The first failed step and its error's first line (Dagster's own wrapper removed);
    the run's failure message when no step failed (a crashed run worker)."""
    steps = context.get_step_failure_events()
    if steps:
        event = steps[0]
        error = event.event_specific_data.error if event.event_specific_data else None
        text = first_line(error_text(error)) if error is not None else event.message
        return f"{event.step_key}: {text}"
    return first_line(context.failure_event.message) or "the run failed"


def failure_time(context: RunFailureSensorContext) -> dt.datetime:
    record = context.instance.get_run_record_by_id(context.dagster_run.run_id)
    if record is not None and record.end_time is not None:
        return dt.datetime.fromtimestamp(record.end_time, dt.UTC)
    return dt.datetime.now(dt.UTC)


@run_failure_sensor(
    name="record_run_failures",
    default_status=DefaultSensorStatus.RUNNING,
    # Runs of the `butterquant` command execute in process and belong to no code location;
    # only this setting sees them (and runs of any other location of the instance).
    monitor_all_code_locations=True,
    description=(
        "Records every failed run (job, run id, time, the error's first line) in "
        "ops/run_failures.jsonl and posts it as JSON to BUTTERQUANT_ALERT_WEBHOOK when set."
    ),
)
def record_run_failures(context: RunFailureSensorContext, lake: LakeResource):
    run = context.dagster_run
    message = failure_message(context)
    when = failure_time(context)
    if not record_failure(lake.lake().root, run.run_id, run.job_name, when, message):
        context.log.info(f"run {run.run_id} of {run.job_name}: failure already recorded")
        return
    webhook = settings.env("BUTTERQUANT_ALERT_WEBHOOK")
    if not webhook:
        context.log.info(f"recorded the failure of {run.job_name} run {run.run_id}")
        return
    answer = post_webhook(
        webhook,
        {
            "text": f"butterquant: {run.job_name} failed ({run.run_id}): {message}",
            "job": run.job_name,
            "run_id": run.run_id,
            "time": when.isoformat(),
            "message": message,
        },
        timeout=WEBHOOK_TIMEOUT_SECONDS,
    )
    context.log.info(f"recorded the failure of {run.job_name} run {run.run_id}; alert: {answer}")
