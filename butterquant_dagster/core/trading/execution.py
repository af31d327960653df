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

``checkpoint(step, order_ref)`` is called at each boundary (``core.faults.POINTS``) so the
tests can fail the run exactly there, in process or by killing a real process.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import (
    OPEN_STATUSES,
    Broker,
    BrokerConnectionError,
    BrokerError,
    ComboOrder,
)
from butterquant_dagster.core.trading.combos import legs_from_json
from butterquant_dagster.core.trading.ledger import Ledger, ledger_ref
from butterquant_dagster.core.trading.risk import RiskState, account_problem, order_problem
from butterquant_dagster.core.trading.rules import RiskLimits

SENT_STATUSES = frozenset({"submitted", "partially_filled", "filled", "cancelled", "rejected"})
Checkpoint = Callable[[str, str], None]


def _no_checkpoint(step: str, order_ref: str) -> None:
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
    refused: str = ""  # why nothing was sent at all

    def summary(self) -> dict:
        return {
            "session": self.session.isoformat(),
            "sent": len(self.sent),
            "already_sent": len(self.already_sent),
            "blocked": len(self.blocked),
            "rejected": len(self.rejected),
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
            if order is None or order["origin"] != "local":
                report.ghost_fills.append(execution.exec_id)
        checkpoint("after_recording_fill", execution.order_ref)


def reconcile(ledger: Ledger, broker: Broker, session: dt.date) -> Reconciliation:
    """Make the ledger agree with the broker where the broker is the truth, and list what
    still disagrees (which blocks sending)."""
    report = Reconciliation()
    broker_orders = broker.orders()
    recorded = ledger.orders().set_index("order_ref")
    for order in broker_orders:
        ref = ledger_ref(order.order_ref, order.broker_order_id)
        if ref in recorded.index:
            mine = recorded.loc[ref]
            if mine["status"] == order.status and mine["broker_order_id"] == order.broker_order_id:
                continue  # nothing new to record
        if ledger.record_broker_order(order, session):
            report.orders_added.append(ref)
    collect_fills(ledger, broker, session_start(calendar.previous_session(session)), report)
    known = {ledger_ref(o.order_ref, o.broker_order_id) for o in broker_orders}
    ours = ledger.orders()
    for row in ours.itertuples(index=False):
        if row.origin != "local" or row.order_ref in known:
            continue
        if row.status in OPEN_STATUSES:
            if pd.Timestamp(row.session).date() < session:
                ledger.mark_missing(
                    row.order_ref, "DAY order ended; the broker no longer lists it", "expired"
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
) -> ExecutionReport:
    """Reconcile, then send the session's closes and entries, each at most once."""
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
    to_send = targets.loc[targets["intent"].isin(["close", "open"])] if len(targets) else targets
    for intent in ("close", "open"):
        for target in to_send.loc[to_send["intent"] == intent].to_dict("records"):
            try:
                _send_one(target, ledger, broker, limits, now, account, state, report, checkpoint)
            except BrokerConnectionError:
                raise  # nothing more can go out; the next run reconciles
            except BrokerError as exc:
                report.rejected[target["order_ref"]] = str(exc)
                ledger.record_intent(target, "rejected", str(exc))
        collect_fills(ledger, broker, session_start(session), report.reconciliation, checkpoint)
        state = _risk_state(ledger, session, orders_today=state.orders_today)
    return report


def _send_one(target, ledger, broker, limits, now, account, state, report, checkpoint) -> None:
    ref = target["order_ref"]
    existing = ledger.order(ref)
    if existing is not None and existing["status"] in SENT_STATUSES | {
        "missing_at_broker",
        "expired",
    }:
        report.already_sent.append(ref)
        return
    problem = order_problem(target, state, limits, now, account)
    if problem:
        ledger.record_intent(target, "blocked", problem)
        report.blocked[ref] = problem
        return
    checkpoint("before_intent", ref)
    ledger.record_intent(target, "planned")
    checkpoint("after_planning", ref)
    acknowledgement = broker.place_combo(_combo(target))
    checkpoint("after_sending", ref)
    ledger.record_broker_order(acknowledgement)
    checkpoint("after_accepted", ref)
    report.sent.append(ref)
    state.orders_today += 1
    if target["intent"] == "open":
        state.open_positions += 1
        state.capital_at_risk += float(target["capital_at_risk"])
    if acknowledgement.status == "rejected":
        report.rejected[ref] = acknowledgement.reason


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
