"""Trading one session through Dagster, and the journal's lines, for `execute`, `positions`,
`journal` and `demo`."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from butterquant_dagster.commands._dates import require_session
from butterquant_dagster.commands._errors import CliError
from butterquant_dagster.commands._materialize import RunSummary, materialize
from butterquant_dagster.core import calendar


def trading_session(text: str | None) -> dt.date:
    """The session to trade: --date, else today's session, else the latest completed one."""
    if text:
        day = require_session(text)
        if not calendar.is_session(day):
            raise CliError(f"{day} is not an NYSE session")
        return day
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(calendar.EXCHANGE_TZ).date()
    return today if calendar.is_session(today) else calendar.latest_completed_session(now)


def execute_session_run(day: dt.date, *, dry_run: bool, show: bool) -> RunSummary:
    """One run of the execution job for ``day`` (the plan job only, on a dry run)."""
    from butterquant_dagster.defs.trading.automation import EXECUTION_JOB, PLAN_JOB

    return materialize(PLAN_JOB if dry_run else EXECUTION_JOB, day, day, show_progress=show)


def run_asset_metadata(run_id: str) -> dict[str, dict]:
    """The metadata each asset of run ``run_id`` materialized with, as plain values
    (``{asset: {key: value}}``; the last materialization of an asset wins). Empty when the
    run history cannot be read: the caller then says less, never something false."""
    from dagster import DagsterEventType

    from butterquant_dagster.commands._instance import prepare_instance

    try:
        records = (
            prepare_instance()
            .get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
            .records
        )
    except Exception:  # any storage error: no metadata to report
        return {}
    found: dict[str, dict] = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None:
            continue
        found[materialization.asset_key.to_user_string()] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return found


def sending_outcome(orders: dict, targets: dict, target_count: int) -> tuple[int, int, str]:
    """``(sent, already_sent, note)`` of an execution run from the metadata of its
    ``orders`` and ``target_orders``: the note says what was sent and, when nothing new
    went out, why."""
    sent = int(orders.get("sent") or 0)
    already = int(orders.get("already_sent") or 0)
    blocked, rejected = int(orders.get("blocked") or 0), int(orders.get("rejected") or 0)
    if orders.get("refused"):
        return sent, already, f"sent nothing: {orders['refused']}"
    if sent:
        earlier = f"; {already} already sent by an earlier run" if already else ""
        return sent, already, f"sent {sent} new order(s){earlier}"
    if already:
        return (
            sent,
            already,
            f"sent nothing new: this session was already traded; its {already} order(s) went "
            "out in an earlier run and a rerun never sends an order twice (each order_ref is "
            "fixed by session, ticker, legs and model), so this run only reconciled the "
            "ledger with the broker and collected fills",
        )
    if blocked or rejected:
        return sent, already, f"sent nothing: {blocked} blocked, {rejected} rejected (see above)"
    if not target_count:
        notes = str(targets.get("entry_notes") or "").replace("- ", "").strip()
        why = f": {'; '.join(notes.splitlines())}" if notes and notes != "-" else ""
        return (
            sent,
            already,
            f"sent nothing: no exit was due and no entry passed the rules{why}",
        )
    return sent, already, "sent nothing: no target is an order to send (see the targets above)"


def pd_date(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def journal_lines(figures: dict, account=None) -> list[str]:
    """The track record of the journal's ``summary`` figures: overall, per track, exits; the
    P/L there is the closed trades' (realized). With ``account`` (a
    ``core.trading.account.AccountView``) the account's value and its realized, unrealized
    and total P/L and drawdown follow, the figures ``positions`` and the reports show."""
    from butterquant_dagster.core.trading.account import signed_dollars

    account_lines = account.lines() if account is not None else []
    if not figures["trades"]:
        return ["journal: no closed trades yet", *account_lines]
    # Without the account, the drawdown of the equity rows given to summary (older callers).
    drawdown = figures.get("max_drawdown") if account is None else None
    lines = [
        f"journal: {figures['trades']} closed trades, win rate {figures['win_rate']:.1%}, "
        f"realized P/L {signed_dollars(figures['total_pnl'])} (closed trades), "
        f"yield {figures['yield_per_1000']:+.0f} per $1,000"
        + (f", max drawdown {drawdown:.2%}" if drawdown is not None else "")
    ]
    for track, numbers in figures.get("by_track", {}).items():
        lines.append(
            f"  {track:8} {numbers['trades']} trades, win rate {numbers['win_rate']:.1%}, "
            f"realized P/L {signed_dollars(numbers['total_pnl'])}, "
            f"yield {numbers['yield_per_1000']:+.0f} per $1,000"
        )
    lines.append(f"  exits: {figures.get('by_exit_reason', {})}")
    return lines + account_lines
