"""Schedules tied to the close, as a pair: one at the regular close's time and its
early-close variant at the 13:00 close's time.

One schedule with both times read in the UI as "runs twice a day"; two schedules, each with
one time and a name that says which close it follows, read as what they are. Each tick runs
only if it matches the session's actual close, so a session is never run twice (the two
share their run keys as well).
"""

import datetime as dt
from collections.abc import Callable

from dagster import (
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS

REGULAR_CLOSE = dt.time(16, 0)
EARLY_CLOSE = dt.time(13, 0)
# Every NYSE early close in the calendar falls in these months (the day before Independence
# Day, the day after Thanksgiving, Christmas Eve and, in some years, New Year's Eve); a test
# holds the calendar to it. The early variants tick only in them.
EARLY_CLOSE_MONTHS = (7, 11, 12)


def session_due(tick: dt.datetime, offset: dt.timedelta, what: str) -> dt.date | SkipReason:
    """The session whose close + ``offset`` is ``tick``, or why this tick skips."""
    local = tick.astimezone(calendar.EXCHANGE_TZ)
    today = local.date()
    if not calendar.is_session(today):
        return SkipReason(f"{today} is not an NYSE session (holiday)")
    close = calendar.session_close(today)
    due = close + offset
    if (local.hour, local.minute) != (due.hour, due.minute):
        return SkipReason(f"{today} closes at {close:%H:%M}; {what} runs at {due:%H:%M}")
    return today


def _clock(close: dt.time, offset: dt.timedelta) -> dt.time:
    return (dt.datetime.combine(dt.date(2000, 1, 3), close) + offset).time()


def _cron(at: dt.time, months: tuple[int, ...] | None = None) -> str:
    month = ",".join(str(m) for m in months) if months else "*"
    return f"{at.minute} {at.hour} * {month} 1-5"


def close_schedules(
    *,
    name: str,
    early_name: str,
    job,  # a job definition or an asset job built by define_asset_job
    offset: dt.timedelta,
    what: str,
    run_request: Callable[[dt.date], RunRequest],
    description: str,
) -> tuple[ScheduleDefinition, ScheduleDefinition]:
    """The regular-close schedule and its early-close variant for one routine step.

    ``offset`` is the step's time relative to the close (negative: before it);
    ``run_request`` makes the run for the session whose close the tick follows.
    """

    def evaluate(context: ScheduleEvaluationContext):
        session = session_due(context.scheduled_execution_time, offset, what)
        if isinstance(session, SkipReason):
            return session
        return run_request(session)

    regular_at, early_at = _clock(REGULAR_CLOSE, offset), _clock(EARLY_CLOSE, offset)
    common = {
        "job": job,
        "execution_fn": evaluate,
        "execution_timezone": "America/New_York",
        "default_status": ROUTINE_SCHEDULE_STATUS,
    }
    regular = ScheduleDefinition(
        name=name,
        cron_schedule=_cron(regular_at),
        description=(
            f"{description} At {regular_at:%H:%M} New York on a regular session; on an "
            f"early-close day (13:00 close) `{early_name}` runs it at {early_at:%H:%M} and "
            "this tick skips."
        ),
        **common,
    )
    early = ScheduleDefinition(
        name=early_name,
        cron_schedule=_cron(early_at, EARLY_CLOSE_MONTHS),
        description=(
            f"Early-close days only (13:00 close): {description[0].lower()}{description[1:]} "
            f"At {early_at:%H:%M} New York; on every other day this tick skips and "
            f"`{name}` runs at {regular_at:%H:%M}."
        ),
        **common,
    )
    return regular, early
