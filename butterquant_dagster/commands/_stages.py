"""The stages of history, each one run over a range of sessions: what `backfill --assets`
and the demo run, in the order a newcomer needs them (bars the regime needs, the market, the
scan, the outcomes of matured candidates, the regime and decisions)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from butterquant_dagster.commands._data import lake
from butterquant_dagster.commands._errors import CliError
from butterquant_dagster.commands._materialize import RunSummary, materialize, materialize_market
from butterquant_dagster.core import calendar

STAGES = ("market", "bars", "scan", "outcomes", "analysis", "all")
# What `all` runs, in order: each stage reads what the one before it wrote ("history": the
# bars the point-in-time regime needs before the range; "closes": the bars after it that
# settle its candidates, through the longest expiry).
ALL_STAGES = ("history", "market", "scan", "closes", "outcomes", "analysis")


@dataclass
class StagesDone:
    """The runs made (in order) and the sessions a stage left out, with why."""

    runs: list[RunSummary] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(run.success for run in self.runs)


def _horizon() -> dt.timedelta:
    from butterquant_dagster.core.scan.candidates import CandidateRules

    return dt.timedelta(days=CandidateRules.max_dte)


def matured(days: list[dt.date], latest: dt.date) -> list[dt.date]:
    """The entry sessions of ``days`` whose every candidate has expired by ``latest``, a
    completed session (no look-ahead: a later one would need closes that have not
    happened)."""
    return [day for day in days if day + _horizon() <= latest]


def closes_needed(days: list[dt.date]) -> list[dt.date]:
    """The sessions after ``days`` whose closes settle their candidates: through the longest
    expiry, never past the latest completed session."""
    latest = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    after = calendar.next_session(days[-1])
    last = min(days[-1] + _horizon(), latest)
    return calendar.sessions(after, last) if after <= last else []


def settleable(days: list[dt.date]) -> tuple[list[dt.date], str | None]:
    """The sessions of ``days`` that can be settled now (every expiry has closed and its
    close is in the lake), and why the others cannot."""
    latest = calendar.latest_completed_session(dt.datetime.now(dt.UTC))
    bars = lake().partitions("daily_bars")
    through = min(latest, dt.date.fromisoformat(bars[-1])) if bars else None
    ready = matured(days, through) if through else []
    if len(ready) == len(days):
        return ready, None
    waiting = days[len(ready)]
    if through is not None and through < latest:
        why = (
            f"{len(days) - len(ready)} session(s) from {waiting} have candidates expiring "
            f"after the last bars in the lake ({through}); backfill the market (or `--assets "
            "bars`) further, then settle them with `--assets outcomes`"
        )
    else:
        why = (
            f"{len(days) - len(ready)} session(s) from {waiting} have candidates that expire "
            f"after the latest completed session {latest}; the settle_matured_candidates "
            "schedule settles them once they have"
        )
    return ready, why


def regime_history(first: dt.date, *, show_progress: bool) -> RunSummary | None:
    """Bars (no chains) of the sessions a point-in-time regime of ``first`` needs before it
    and the lake lacks, in one run; None when nothing was missing."""
    from butterquant_dagster.core.ml.regime import first_bar_session_needed
    from butterquant_dagster.defs.market.automation import BARS_JOB

    try:
        start = first_bar_session_needed(first)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    have = set(lake().partitions("daily_bars"))
    needed = calendar.sessions(start, calendar.previous_session(first))
    missing = [day for day in needed if day.isoformat() not in have]
    if not missing:
        return None
    return materialize(BARS_JOB, missing[0], missing[-1], show_progress=show_progress)


def run_stage(stage: str, days: list[dt.date], show: bool, done: StagesDone) -> None:
    """Run one stage over ``days`` (one run), recording it in ``done``."""
    from butterquant_dagster.defs.market.automation import BARS_JOB
    from butterquant_dagster.defs.ml.automation import ANALYSIS_JOB
    from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB, SCAN_JOB

    first, last = days[0], days[-1]
    if stage == "history":
        run = regime_history(first, show_progress=show)
        if run is None:
            return
    elif stage == "market":
        run = materialize_market(first, last, show_progress=show)
    elif stage == "bars":
        run = materialize(BARS_JOB, first, last, show_progress=show)
    elif stage == "scan":
        run = materialize(SCAN_JOB, first, last, show_progress=show)
    elif stage == "closes":
        have = set(lake().partitions("daily_bars"))
        missing = [day for day in closes_needed(days) if day.isoformat() not in have]
        if not missing:
            return
        run = materialize(BARS_JOB, missing[0], missing[-1], show_progress=show)
    elif stage == "outcomes":
        ready, why = settleable(days)
        if why:
            done.left_out["outcomes"] = why
        if not ready:
            return
        run = materialize(OUTCOMES_JOB, ready[0], ready[-1], show_progress=show)
    elif stage == "analysis":
        run = materialize(ANALYSIS_JOB, first, last, show_progress=show)
    else:
        raise CliError(f"unknown stage {stage!r}; expected one of {STAGES}")
    done.runs.append(run)


def run_stages(assets: str, days: list[dt.date], show: bool) -> StagesDone:
    """``assets`` (one stage, or ``all`` of them in order) over ``days``; stops at the first
    failed run, whose summary is the last of ``runs``."""
    done = StagesDone()
    for stage in ALL_STAGES if assets == "all" else (assets,):
        run_stage(stage, days, show, done)
        if not done.success:
            break
    return done
