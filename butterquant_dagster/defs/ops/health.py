"""System health in Dagster: the ``system_health`` asset with one check per health check,
the morning schedule, and a watcher that refreshes it when something breaks or recovers.

The verdicts live in ``core/monitoring/health.py``; this module only gathers the facts a
check needs from Dagster (the run history, the resources' settings) and maps statuses onto
asset checks:

- OK and NOTICE pass (the status is in the check's metadata);
- WARN fails with severity WARN, which the UI shows as a warning, as ``champion_age``
  does for an aging model;
- FAIL fails with severity ERROR.

No check blocks anything: health is reported, never a gate on the daily run, whose own
blocking checks stop bad data.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    Output,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
    sensor,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring.health import (
    CHECK_DESCRIPTIONS,
    CHECK_NAMES,
    FAIL,
    NOTICE,
    OK,
    RUN_WINDOW,
    WARN,
    FreshnessRule,
    HealthCheck,
    HealthReport,
    HealthThresholds,
    RunFacts,
    evaluate,
    gather_facts,
)
from butterquant_dagster.defs.freshness import FRESHNESS_RULES
from butterquant_dagster.defs.routine import ROUTINE_SCHEDULE_STATUS
from butterquant_dagster.resources import LakeResource, MarketDataResource, TradingResource

HEALTH_ASSET = "system_health"
HEALTH_JOB = "health_job"
OWNER = "team:platform"
RUN_HISTORY_LIMIT = 500
WATCH_INTERVAL_SECONDS = 15 * 60


def freshness_rules() -> tuple[FreshnessRule, ...]:
    """When each checked partition is due (defs/freshness.py, which the UI's freshness
    policies read too)."""
    return tuple(FRESHNESS_RULES.values())


def run_history(
    instance: DagsterInstance, now: dt.datetime, *, exclude: str | None = None
) -> tuple[list[RunFacts] | None, str | None]:
    """Runs created in the last two windows, newest first (a run that started yesterday may
    have failed today), or the newest run when there is none; None and why on error.
    ``exclude``: the run asking (a health run does not report on itself)."""
    try:
        # In UTC: the run storage drops the bound's time zone and compares with UTC times.
        since = (now - 2 * RUN_WINDOW).astimezone(dt.UTC)
        records = instance.get_run_records(
            filters=RunsFilter(created_after=since), limit=RUN_HISTORY_LIMIT
        )
        if not records:
            records = instance.get_run_records(limit=1)
    except Exception as exc:  # any storage error: reported by the check, never a crash
        return None, f"{type(exc).__name__}: {exc}"
    return [_run_facts(r) for r in records if r.dagster_run.run_id != exclude], None


def _run_facts(record) -> RunFacts:
    stamp = record.end_time or record.start_time
    if stamp is not None:
        at = dt.datetime.fromtimestamp(stamp, dt.UTC)
    else:
        created = record.create_timestamp
        at = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created
    run = record.dagster_run
    return RunFacts(run.run_id, run.job_name, run.status.value, at)


def collect_report(
    data_root: Path,
    now: dt.datetime,
    *,
    broker: str,
    ib_host: str,
    ib_port: int | str,
    instance: DagsterInstance,
    environ: Mapping[str, str] | None = None,
    measure_sizes: bool = True,
    thresholds: HealthThresholds | None = None,
    run_id: str | None = None,
) -> HealthReport:
    """The health report of ``data_root`` at ``now``: what the command prints and the asset
    stores. ``measure_sizes=False`` skips the du of the data root (the watcher's pass);
    ``run_id`` is the run making the report, left out of the run history."""
    runs, runs_error = run_history(instance, now, exclude=run_id)
    rules = freshness_rules()
    facts = gather_facts(
        Path(data_root),
        assets=[rule.asset for rule in rules],
        broker=broker,
        ib_host=ib_host,
        ib_port=ib_port,
        runs=runs,
        runs_error=runs_error,
        environ=environ,
        measure_sizes=measure_sizes,
        now=now,
    )
    return evaluate(facts, now, thresholds or HealthThresholds.from_settings(), rules)


def check_result(check: HealthCheck) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=check.name,
        passed=check.status in (OK, NOTICE),
        severity=AssetCheckSeverity.ERROR if check.status == FAIL else AssetCheckSeverity.WARN,
        description=check.message,
        metadata={
            "status": check.status,
            "details": MetadataValue.json(check.to_dict()["details"]),
        },
    )


def watch_state(report: HealthReport) -> list[str]:
    """What the watcher compares between ticks: the checks that would not pass, with their
    status (``disk=WARN``), sorted."""
    return sorted(f"{c.name}={c.status}" for c in report.checks if c.status in (WARN, FAIL))


@asset(
    name=HEALTH_ASSET,
    group_name="ops",
    owners=[OWNER],
    kinds={"python"},
    io_manager_key="lake_io_manager",
    check_specs=[
        AssetCheckSpec(name, asset=HEALTH_ASSET, description=CHECK_DESCRIPTIONS[name])
        for name in CHECK_NAMES
    ],
    description=(
        "One row per health check (models, model age, data freshness, broker, LLM provider, "
        "disk, last runs) with its status and message; each is also an asset check. The "
        "same report as `butterquant health`."
    ),
)
def system_health(
    context: AssetExecutionContext,
    lake: LakeResource,
    market: MarketDataResource,
    trading: TradingResource,
):
    report = collect_report(
        lake.lake().root,
        market.now(),
        broker=trading.broker,
        ib_host=trading.ib_host,
        ib_port=trading.ib_port,
        instance=context.instance,
        run_id=context.run.run_id,
    )
    frame = report.to_frame()
    yield Output(
        frame,
        metadata={
            "healthy": report.healthy,
            "generated_at": report.generated_at.isoformat(),
            **{check.name: check.status for check in report.checks},
            "report": MetadataValue.md(frame.to_markdown(index=False)),
        },
    )
    for check in report.checks:
        yield check_result(check)


health_job = define_asset_job(
    HEALTH_JOB,
    selection=AssetSelection.assets(HEALTH_ASSET)
    | AssetSelection.checks_for_assets("probability_model_champion"),
    description="The system health report and its checks, with the champion's age check.",
)


@schedule(
    default_status=ROUTINE_SCHEDULE_STATUS,
    name="health_morning",
    job=health_job,
    cron_schedule="0 8 * * 1-5",
    execution_timezone="America/New_York",
    description="The full health report before each session opens (skips NYSE holidays).",
)
def health_morning(context: ScheduleEvaluationContext):
    today = context.scheduled_execution_time.astimezone(calendar.EXCHANGE_TZ).date()
    if not calendar.is_session(today):
        return SkipReason(f"{today} is not an NYSE session; health_watch still watches")
    return RunRequest(run_key=f"health-morning-{today.isoformat()}")


@sensor(
    name="health_watch",
    job=health_job,
    minimum_interval_seconds=WATCH_INTERVAL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Every 15 minutes, the health checks without the disk walk; requests a "
        "health_job run when the set of checks at WARN or FAIL changes (recovery too), "
        "at most once per set and day."
    ),
)
def health_watch(
    context: SensorEvaluationContext,
    lake: LakeResource,
    market: MarketDataResource,
    trading: TradingResource,
):
    """Running by default: it only reads and its only action is a health_job run, and a
    watcher that has to be switched on is off exactly when it is needed."""
    now = market.now()
    report = collect_report(
        lake.lake().root,
        now,
        broker=trading.broker,
        ib_host=trading.ib_host,
        ib_port=trading.ib_port,
        instance=context.instance,
        measure_sizes=False,
    )
    state = watch_state(report)
    cursor = json.dumps(state)
    shown = ", ".join(state) or "every check passes"
    if context.cursor == cursor:
        return SkipReason(f"unchanged: {shown}")
    if context.cursor is None and not state:
        return SensorResult(skip_reason=f"watching: {shown}", cursor=cursor)
    day = now.astimezone(calendar.EXCHANGE_TZ).date().isoformat()
    digest = hashlib.sha256(cursor.encode()).hexdigest()[:12]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"health-watch-{day}-{digest}",
                tags={"butterquant/health_state": shown[:200]},
            )
        ],
        cursor=cursor,
    )
