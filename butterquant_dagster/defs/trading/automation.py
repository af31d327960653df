"""When the trading steps run: 15 minutes before each close, and whenever fills arrive."""

import datetime as dt
import hashlib

from dagster import (
    AssetSelection,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from butterquant_dagster.core import settings
from butterquant_dagster.core.trading.execution import session_start
from butterquant_dagster.defs.close_ticks import close_schedules
from butterquant_dagster.defs.routine import ROUTINE_SENSOR_STATUS
from butterquant_dagster.resources import LakeResource, MarketDataResource, TradingResource

EXECUTION_JOB = "execution_job"
FILLS_JOB = "fills_job"
PLAN_JOB = "plan_orders_job"
EXECUTION_MINUTES_BEFORE_CLOSE = 15
# Read when the code location loads, as the execution's resource reads it.
ORDER_SENDING = (
    "on" if settings.value("BUTTERQUANT_SEND_ORDERS") else "OFF: orders are planned, not sent"
)
TRADING_ASSETS = ["target_orders", "orders", "fills", "positions", "trade_journal"]


execution_job = define_asset_job(
    EXECUTION_JOB,
    selection=AssetSelection.assets(*TRADING_ASSETS),
    tags={"butterquant/lane": "trading"},
    description=(
        "Plan, reconcile, send, collect fills, mark and journal one session on the broker."
    ),
)
fills_job = define_asset_job(
    FILLS_JOB,
    selection=AssetSelection.assets("fills", "positions", "trade_journal"),
    tags={"butterquant/lane": "trading"},
    description="Record the broker's new executions, then mark positions and the journal.",
)
plan_job = define_asset_job(
    PLAN_JOB,
    selection=AssetSelection.assets("target_orders"),
    tags={"butterquant/lane": "trading"},
    description="Plan a session's orders without sending anything (a dry run).",
)


def _execution_request(today: dt.date) -> RunRequest:
    """After the scan 45 minutes before the close, with time left for the orders to work
    before the close."""
    return RunRequest(run_key=f"execute-{today.isoformat()}", partition_key=today.isoformat())


execute_before_close, execute_before_early_close = close_schedules(
    name="execute_before_close",
    early_name="execute_before_early_close",
    job=execution_job,
    offset=-dt.timedelta(minutes=EXECUTION_MINUTES_BEFORE_CLOSE),
    what="trading",
    run_request=_execution_request,
    description=(
        "Exits, then entries, 15 minutes before the close. Order sending is "
        f"{ORDER_SENDING} (BUTTERQUANT_SEND_ORDERS)."
    ),
)


@sensor(
    name="collect_fills",
    job=fills_job,
    minimum_interval_seconds=120,
    default_status=ROUTINE_SENSOR_STATUS,
    description=(
        "Materializes fills, positions and the journal when the broker reports new "
        "executions, or once the session's closing chain is there to mark positions."
    ),
)
def collect_fills(
    context: SensorEvaluationContext,
    lake: LakeResource,
    trading: TradingResource,
    market: MarketDataResource,
):
    """While the latest traded session has working orders or unrecorded executions, or its
    close has not been marked yet, ask for a run of the fills steps (read-only here: only
    the trading steps write the ledger)."""
    store = lake.lake()
    traded = store.partitions("orders")
    if not traded:
        return SkipReason("no session has been traded yet")
    session = dt.date.fromisoformat(traded[-1])
    ledger = trading.ledger()
    now = trading.decision_time(session, market.now())
    with trading.connect(store, lambda: now) as broker:
        executions = broker.executions(session_start(session))
    new = [e.exec_id for e in executions if not ledger.has_fill(e.exec_id)]
    key = session.isoformat()
    unmarked = key in store.partitions("option_chains") and key not in store.partitions("positions")
    if not new and not unmarked:
        if key in store.partitions("positions"):
            return SkipReason(f"{key}: no new executions and positions are marked")
        return SkipReason(f"{key}: no new executions; positions wait for the closing chain")
    digest = hashlib.sha256(",".join(sorted(new)).encode()).hexdigest()[:12]
    return RunRequest(run_key=f"fills-{key}-{digest}-{unmarked}", partition_key=key)
