"""Sending a session's orders so that no trade is ever lost or doubled.

The sequence, and why:

1. **Reconcile** with the broker before anything else: orders it has that the ledger lacks
   are recorded, executions the ledger lacks are recorded as fills (flagged as ghosts when
   the order was not ours), and our working orders it does not know are marked missing. If
   the two still disagree (an order missing, a position that differs), nothing is sent.
2. **Exits**, then the fills they produced, then **entries**: a freed slot counts only once
   its close has filled.
3. For each order: skip it if the ledger shows it already went out (same ``order_ref``) or
   the broker has it; otherwise record the intent, send, record the acknowledgement. A crash
   between sending and recording is healed by step 1 of the next run, which finds the order
   at the broker by its ``order_ref``.
4. **Work** what is still open, rung by rung (``core.trading.order_policy``): it went out at
   the mid; after each wait every working order of the batch moves one rung toward its
   target price, each move recorded. A rerun picks the ladder up where the broker's limit
   stands, so a crash mid-ladder neither skips nor repeats a rung.

``checkpoint(step, order_ref)`` is called at each boundary (``core.faults.POINTS``) so the
tests can fail the run exactly there, in process or by killing a real process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import (
    Broker,
    BrokerConnectionError,
    BrokerError,
    ComboOrder,
    ComboQuote,
)
from butterquant_dagster.core.trading.combos import legs_from_json
from butterquant_dagster.core.trading.ledger import Ledger, ledger_ref
from butterquant_dagster.core.trading.order_policy import (
    OrderPolicy,
    is_urgent,
    ladder,
    next_rung,
    require_limit,
)
from butterquant_dagster.core.trading.risk import RiskState, account_problem, order_problem
from butterquant_dagster.core.trading.rules import RiskLimits
from butterquant_dagster.core.trading.vocabulary import (
    BROKER_STATUSES,
    WENT_OUT_STATUSES,
    WORKING_STATUSES,
    Intent,
    OrderStatus,
    Origin,
)

# The statuses a broker reports: an order in one of them was sent (and counts against the
# day's order limit).
SENT_STATUSES = frozenset(BROKER_STATUSES)
# Every status of an order that reached (or may have reached) the broker: never sent again.
WENT_OUT = WENT_OUT_STATUSES
# Sent in the order they go out: exits first, so a freed slot counts once its close filled.
SENT_INTENTS = (Intent.CLOSE, Intent.OPEN)
Checkpoint = Callable[[str, str], None]
Pause = Callable[[float], None]


def _no_checkpoint(step: str, order_ref: str) -> None:
    return None


def _no_pause(seconds: float) -> None:
    """Replays (the paper broker on a past session) do not wait between rungs."""
    return None


@dataclass
class Reconciliation:
    orders_added: list[str] = field(default_factory=list)
    fills_added: list[str] = field(default_factory=list)
    ghost_fills: list[str] = field(default_factory=list)
    missing_at_broker: list[str] = field(default_factory=list)
    position_mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return not self.missing_at_broker and not self.position_mismatches

    def problems(self) -> list[str]:
        out = [
            f"order {ref} is working in the ledger but unknown to the broker"
            for ref in self.missing_at_broker
        ]
        out += [
            f"{key}: ledger {ours:+d}, broker {theirs:+d}"
            for key, (ours, theirs) in sorted(self.position_mismatches.items())
        ]
        return out


@dataclass
class ExecutionReport:
    session: dt.date
    reconciliation: Reconciliation
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    repriced: dict[str, int] = field(default_factory=dict)  # order_ref -> rungs moved
    refused: str = ""  # why nothing was sent at all

    def summary(self) -> dict:
        return {
            "session": self.session.isoformat(),
            "sent": len(self.sent),
            "already_sent": len(self.already_sent),
            "blocked": len(self.blocked),
            "rejected": len(self.rejected),
            "repriced": len(self.repriced),
            "reprices": sum(self.repriced.values()),
            "fills_recorded": len(self.reconciliation.fills_added),
            "ghost_fills": len(self.reconciliation.ghost_fills),
            "refused": self.refused,
        }


def session_start(session: dt.date) -> dt.datetime:
    """Executions of a session are those since midnight New York time."""
    return dt.datetime.combine(session, dt.time(0), calendar.EXCHANGE_TZ)


def collect_fills(
    ledger: Ledger,
    broker: Broker,
    since: dt.datetime,
    report: Reconciliation,
    checkpoint: Checkpoint = _no_checkpoint,
) -> None:
    """Record every execution since ``since`` the ledger lacks (never one twice)."""
    for execution in broker.executions(since):
        if ledger.has_fill(execution.exec_id):
            continue
        order = ledger.order(execution.order_ref) if execution.order_ref else None
        session = (
            pd.Timestamp(order["session"]).date()
            if order is not None
            else execution.time.astimezone(calendar.EXCHANGE_TZ).date()
        )
        checkpoint("before_recording_fill", execution.order_ref)
        if ledger.record_execution(execution, session):
            report.fills_added.append(execution.exec_id)
            if order is None or order["origin"] != Origin.LOCAL:
                report.ghost_fills.append(execution.exec_id)
        checkpoint("after_recording_fill", execution.order_ref)


def sync_orders(
    ledger: Ledger, broker: Broker, report: Reconciliation, session: dt.date | None = None
) -> list:
    """Bring the ledger's copy of every order the broker lists up to the broker's (status,
    limit); orders new to the ledger go to ``report.orders_added``. Returns the list."""
    broker_orders = broker.orders()
    recorded = ledger.orders().set_index("order_ref")
    for order in broker_orders:
        ref = ledger_ref(order.order_ref, order.broker_order_id)
        if ref in recorded.index:
            mine = recorded.loc[ref]
            if (
                mine["status"] == order.status
                and mine["broker_order_id"] == order.broker_order_id
                and mine["limit_price"] == order.limit_price
            ):
                continue  # nothing new to record
        if ledger.record_broker_order(order, session):
            report.orders_added.append(ref)
    return broker_orders


def order_outcomes(orders: pd.DataFrame) -> dict:
    """Of a session's orders that went out, the share that filled, per intent (open,
    close), and the exits that did not fill (tomorrow's retries)."""
    went_out = orders.loc[orders["status"].isin(WENT_OUT)] if len(orders) else orders
    rate = {}
    for intent in SENT_INTENTS:
        sent = went_out.loc[went_out["intent"] == intent] if len(went_out) else went_out
        if len(sent):
            rate[intent.value] = float((sent["status"] == OrderStatus.FILLED).mean())
    unfilled = (
        went_out.loc[
            (went_out["intent"] == Intent.CLOSE) & (went_out["status"] != OrderStatus.FILLED)
        ]
        if len(went_out)
        else went_out
    )
    return {"rate": rate, "unfilled_exits": unfilled}


def reconcile(ledger: Ledger, broker: Broker, session: dt.date) -> Reconciliation:
    """Make the ledger agree with the broker where the broker is the truth, and list what
    still disagrees (which blocks sending)."""
    report = Reconciliation()
    broker_orders = sync_orders(ledger, broker, report, session)
    collect_fills(ledger, broker, session_start(calendar.previous_session(session)), report)
    known = {ledger_ref(o.order_ref, o.broker_order_id) for o in broker_orders}
    ours = ledger.orders()
    for row in ours.itertuples(index=False):
        if row.origin != Origin.LOCAL or row.order_ref in known:
            continue
        if row.status in WORKING_STATUSES:
            if pd.Timestamp(row.session).date() < session:
                ledger.mark_missing(
                    row.order_ref,
                    "DAY order ended; the broker no longer lists it",
                    OrderStatus.EXPIRED,
                )
                continue
            ledger.mark_missing(row.order_ref, "the broker does not know this order")
            report.missing_at_broker.append(row.order_ref)
    mine = ledger.leg_positions(from_expiry=session)
    theirs = {
        p.contract_key: p.quantity
        for p in broker.positions()
        if dt.date.fromisoformat(p.contract_key.split()[1]) >= session
    }
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key, 0) != theirs.get(key, 0):
            report.position_mismatches[key] = (mine.get(key, 0), theirs.get(key, 0))
    return report


def execute_session(
    session: dt.date,
    targets: pd.DataFrame,
    ledger: Ledger,
    broker: Broker,
    limits: RiskLimits,
    now: dt.datetime,
    checkpoint: Checkpoint = _no_checkpoint,
    dry_run: bool = False,
    policy: OrderPolicy | None = None,
    pause: Pause = _no_pause,
) -> ExecutionReport:
    """Reconcile, then send the session's closes and entries, each at most once, and work
    each batch up its price ladder (``policy``, ``pause`` between rungs)."""
    policy = policy or OrderPolicy()
    report = ExecutionReport(session, reconcile(ledger, broker, session))
    if not report.reconciliation.agrees:
        report.refused = "ledger and broker disagree: " + "; ".join(
            report.reconciliation.problems()
        )
        return report
    if dry_run:
        return report
    account = account_problem(broker.account(), broker.name, limits)
    state = _risk_state(ledger, session)
    to_send = targets.loc[targets["intent"].isin(SENT_INTENTS)] if len(targets) else targets
    for intent in SENT_INTENTS:
        batch = to_send.loc[to_send["intent"] == intent].to_dict("records")
        for target in batch:
            try:
                _send_one(
                    target, ledger, broker, limits, now, account, state, report, checkpoint, policy
                )
            except BrokerConnectionError:
                raise  # nothing more can go out; the next run reconciles
            except (BrokerError, ValueError) as exc:
                report.rejected[target["order_ref"]] = str(exc)
                ledger.record_intent(target, OrderStatus.REJECTED, str(exc))
        work_orders(batch, ledger, broker, policy, pause, report, checkpoint)
        collect_fills(ledger, broker, session_start(session), report.reconciliation, checkpoint)
        state = _risk_state(ledger, session, orders_today=state.orders_today)
    return report


def _send_one(
    target, ledger, broker, limits, now, account, state, report, checkpoint, policy
) -> None:
    ref = target["order_ref"]
    existing = ledger.order(ref)
    if existing is not None and existing["status"] in WENT_OUT:
        report.already_sent.append(ref)
        return
    problem = order_problem(target, state, limits, now, account)
    if problem:
        ledger.record_intent(target, OrderStatus.BLOCKED, problem)
        report.blocked[ref] = problem
        return
    checkpoint("before_intent", ref)
    ledger.record_intent(target, OrderStatus.PLANNED)
    checkpoint("after_planning", ref)
    combo = _combo(target)
    combo = replace(combo, limit_price=price_ladder(target, combo, broker, policy)[0])
    acknowledgement = broker.place_combo(combo)
    checkpoint("after_sending", ref)
    ledger.record_broker_order(acknowledgement)
    checkpoint("after_accepted", ref)
    report.sent.append(ref)
    state.orders_today += 1
    if target["intent"] == Intent.OPEN:
        state.open_positions += 1
        state.capital_at_risk += float(target["capital_at_risk"])
    if acknowledgement.status == OrderStatus.REJECTED:
        report.rejected[ref] = acknowledgement.reason


def work_orders(
    batch: list[dict],
    ledger: Ledger,
    broker: Broker,
    policy: OrderPolicy,
    pause: Pause,
    report: ExecutionReport,
    checkpoint: Checkpoint = _no_checkpoint,
) -> None:
    """Move every working order of ``batch`` up its ladder, one rung per wait.

    Orders of an earlier run of the session count too (their ladder resumes from the limit
    the broker holds); an order that filled or ended meanwhile is left alone.
    """
    targets = {t["order_ref"]: t for t in batch}
    for _ in range(policy.steps):
        working = [o for o in broker.open_orders() if o.order_ref in targets]
        if not working:
            return
        pause(policy.wait_seconds)
        for order in working:
            target = targets[order.order_ref]
            rungs = price_ladder(target, _combo(target), broker, policy)
            limit = next_rung(rungs, order.action, order.limit_price)
            if limit is None:
                continue
            checkpoint("before_reprice", order.order_ref)
            moved = broker.modify(order.order_ref, limit)
            checkpoint("after_reprice", order.order_ref)
            ledger.record_broker_order(moved)
            report.repriced[order.order_ref] = report.repriced.get(order.order_ref, 0) + 1


def price_ladder(target: dict, combo: ComboOrder, broker: Broker, policy: OrderPolicy) -> list:
    """The limits ``target``'s order walks: on the broker's quote now, else the plan's; an
    entry never beyond its planned limit; urgent exits to a marketable price."""
    planned = require_limit(combo.order_ref, combo.limit_price)
    quote = broker.quote(combo) or ComboQuote(
        float(target["mid"]), float(target["natural_low"]), float(target["natural_high"])
    )
    urgent = is_urgent(target["intent"], target["reason"])
    try:
        return ladder(
            combo.action,
            quote.mid,
            quote.low,
            quote.high,
            policy.target_share(urgent),
            policy.steps,
            cap=planned if target["intent"] == Intent.OPEN else None,
        )
    except ValueError:
        return [planned]  # no usable quote: the planned limit, as the plan priced it


def _combo(target: dict) -> ComboOrder:
    return ComboOrder(
        order_ref=target["order_ref"],
        session=pd.Timestamp(target["session"]).date(),
        symbol=target["ticker"],
        structure=target["structure"],
        legs=legs_from_json(target["ticker"], target["legs"]),
        action=target["action"],
        quantity=int(target["quantity"]),
        limit_price=float(target["limit_price"]),
        track=target["track"],
    )


def _risk_state(ledger: Ledger, session: dt.date, orders_today: int | None = None) -> RiskState:
    positions = ledger.open_positions()
    if orders_today is None:
        orders = ledger.orders(session)
        orders_today = int(orders["status"].isin(SENT_STATUSES).sum()) if len(orders) else 0
    at_risk = (positions["max_loss"].fillna(0) * positions["quantity"].abs() * 100).sum()
    return RiskState(
        open_positions=len(positions),
        capital_at_risk=float(at_risk) if len(positions) else 0.0,
        orders_today=orders_today,
    )
