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


def pd_date(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def journal_lines(figures: dict) -> list[str]:
    """The track record of the journal's ``summary`` figures: overall, per track, exits."""
    if not figures["trades"]:
        return ["journal: no closed trades yet"]
    lines = [
        f"journal: {figures['trades']} closed trades, win rate {figures['win_rate']:.1%}, "
        f"P/L ${figures['total_pnl']:+,.2f}, yield {figures['yield_per_1000']:+.0f} per $1,000"
        + (
            f", max drawdown {figures['max_drawdown']:.2%}"
            if figures.get("max_drawdown") is not None
            else ""
        )
    ]
    for track, numbers in figures.get("by_track", {}).items():
        lines.append(
            f"  {track:8} {numbers['trades']} trades, win rate {numbers['win_rate']:.1%}, "
            f"P/L ${numbers['total_pnl']:+,.2f}, yield {numbers['yield_per_1000']:+.0f} per $1,000"
        )
    lines.append(f"  exits: {figures.get('by_exit_reason', {})}")
    return lines
