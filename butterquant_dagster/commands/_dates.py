"""The dates the commands take, and the one rule every date-taking command applies: a
session that has not closed is refused.

A session has no closing snapshot until its close has passed in New York, so nothing may be
computed for it; every command says so the same way, with exit 2 (bad input), naming the
date and the latest closed session, before any run starts.
"""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.commands._errors import CliError
from butterquant_dagster.core import calendar, settings


def now() -> dt.datetime:
    """The commands' instant (tests replace it to stand at a fixed time)."""
    return dt.datetime.now(dt.UTC)


def latest_closed() -> dt.date:
    return calendar.latest_completed_session(now())


def not_closed_message(what: str, day: dt.date) -> str:
    return f"{what} {day} has not closed yet; the latest closed NYSE session is {latest_closed()}"


def require_closed(day: dt.date, what: str) -> dt.date:
    """``day`` (any date) when every session up to it has closed; else the CLI's bad input."""
    latest = latest_closed()
    if day > latest:
        try:
            pending = calendar.next_session(latest)
        except calendar.CalendarError:
            pending = day
        if pending <= day:
            raise CliError(not_closed_message(what, day))
    return day


def require_closed_text(text: str | None, what: str) -> None:
    """As ``require_closed`` for a YYYY-MM-DD option (None or unparsable: left to the
    command's own parsing, which names the format)."""
    if not text:
        return
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return
    require_closed(day, what)


def require_session(text: str) -> dt.date:
    """--date as a session that has closed."""
    try:
        day = calendar.require_session(text, what="--date")
    except calendar.CalendarError as exc:
        raise CliError(str(exc)) from exc
    return require_closed(day, "--date")


def session_range(start: str, end: str) -> list[dt.date]:
    """The NYSE sessions in [start, end] (YYYY-MM-DD), none before the first partition."""
    try:
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    except ValueError as exc:
        raise CliError(f"dates must be YYYY-MM-DD: {exc}") from exc
    try:
        days = calendar.sessions(first, last)
    except calendar.CalendarError as exc:
        raise CliError(str(exc)) from exc
    if not days:
        raise CliError(f"no NYSE session between {first} and {last}")
    partitions_start = dt.date.fromisoformat(settings.env("BUTTERQUANT_PARTITIONS_START"))
    if days[0] < partitions_start:
        raise CliError(
            f"{days[0]} is before the first partition {partitions_start}; set "
            "BUTTERQUANT_PARTITIONS_START earlier to backfill older sessions"
        )
    return days
