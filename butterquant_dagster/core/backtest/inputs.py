"""What a backtest reads from the lake, and what it needs there before it can start.

Everything is read per session partition as the engines ask for it (a year of option
chains does not fit in memory), restricted to the backtest's tickers. The training history
is read only up to the date asked for: the walk-forward steps cannot see later outcomes
because this module never hands them over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.backtest.result import DEFAULT_WINDOW_SESSIONS
from butterquant_dagster.core.ml.features import KEY_COLUMNS
from butterquant_dagster.core.ml.probability import LABEL, with_rule_ev
from butterquant_dagster.core.scan.ev_reliability import EvCurve, ev_curve_at
from butterquant_dagster.core.storage.lake import Lake

# The table whose partitions say a session is ready for each strategy.
READY_TABLE = {"butterfly": "butterfly_candidates", "signals": "trading_decisions"}
FIRST_STEPS = {
    "butterfly": "scan some sessions first (`butterquant demo`, or `butterquant backfill "
    "--assets all --start D --end D`)",
    "signals": "analyse some sessions first (`butterquant backfill --assets analysis "
    "--start D --end D`, one run)",
}
REQUIRED = {
    "butterfly": ("daily_bars", "option_chains", "butterfly_candidates"),
    "signals": ("daily_bars", "trading_decisions"),
}


class BacktestInputError(ValueError):
    """A backtest asked for something the lake cannot give: unknown tickers, an empty or
    reversed window, sessions that were never materialized."""


@dataclass(frozen=True)
class Missing:
    """Sessions of one table the backtest needs and the lake lacks, and how to make them."""

    table: str
    sessions: tuple[dt.date, ...]

    def message(self) -> str:
        first, last = self.sessions[0], self.sessions[-1]
        shown = ", ".join(d.isoformat() for d in self.sessions[:5])
        more = f" and {len(self.sessions) - 5} more" if len(self.sessions) > 5 else ""
        return (
            f"{self.table} is missing for {len(self.sessions)} session(s) ({shown}{more}); "
            f"{_remedy(self.table, first, last)}"
        )


def _remedy(table: str, first: dt.date, last: dt.date) -> str:
    span = f"{first.isoformat()}..{last.isoformat()}"
    if table in ("daily_bars", "option_chains"):
        return f"run `butterquant backfill --start {first} --end {last}`"
    if table == "butterfly_candidates":
        return (
            f"scan those sessions in one run: `butterquant scan --start {first} --end {last}` "
            f"(it takes the market it lacks first), or a backfill of scan_job over {span} in "
            "the UI"
        )
    if table == "trading_decisions":
        return (
            f"analyse those sessions in one run: `butterquant backfill --assets analysis "
            f"--start {first} --end {last}`, or a backfill of analysis_job over {span} in "
            "the UI"
        )
    return f"materialize {table} for {span}"


def missing_inputs(lake: Lake, strategy: str, sessions: list[dt.date]) -> list[Missing]:
    """Every required table's sessions of the window that the lake does not hold."""
    if strategy not in REQUIRED:
        raise BacktestInputError(f"unknown strategy {strategy!r}; expected one of {list(REQUIRED)}")
    out = []
    for table in REQUIRED[strategy]:
        present = set(lake.partitions(table))
        absent = tuple(d for d in sessions if d.isoformat() not in present)
        if absent:
            out.append(Missing(table, absent))
    return out


def resolve_window(
    lake: Lake,
    strategy: str,
    start: dt.date | None,
    end: dt.date | None,
    count: int = DEFAULT_WINDOW_SESSIONS,
) -> tuple[dt.date, dt.date]:
    """The backtest's first and last session: as given, else the last ``count`` sessions
    the strategy has inputs for (ending at ``end`` when only that is given)."""
    if start and end and start > end:
        raise BacktestInputError(f"the start date {start} is after the end date {end}")
    if start is None or end is None:
        ready = [dt.date.fromisoformat(p) for p in lake.partitions(READY_TABLE[strategy])]
        if end is not None:
            ready = [d for d in ready if d <= end]
        if start is not None:
            ready = [d for d in ready if d >= start]
        if not ready:
            where = " in the requested range" if start or end else ""
            raise BacktestInputError(
                f"no session has {READY_TABLE[strategy]} in the lake{where}; "
                f"{FIRST_STEPS[strategy]}"
            )
        end = end or ready[-1]
        start = start or ready[-count:][0]
    if start > end:
        raise BacktestInputError(f"the start date {start} is after the end date {end}")
    return start, end


def parse_date(text: str | None, what: str) -> dt.date | None:
    """``text`` as a date (None when empty), or an error naming ``what`` was wrong."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise BacktestInputError(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


@dataclass(frozen=True)
class BacktestRequest:
    """A checked request: known strategy and tickers, a window whose inputs are all there."""

    strategy: str
    tickers: list[str]
    sessions: list[dt.date]

    @property
    def start(self) -> dt.date:
        return self.sessions[0]

    @property
    def end(self) -> dt.date:
        return self.sessions[-1]


def check_request(
    lake: Lake,
    strategy: str,
    tickers: list[str],
    start_date: str | None,
    end_date: str | None,
    count: int = DEFAULT_WINDOW_SESSIONS,
) -> BacktestRequest:
    """Everything a backtest needs, checked before it starts; a BacktestInputError names
    the first thing wrong and how to fix it."""
    if strategy not in READY_TABLE:
        raise BacktestInputError(
            f"unknown strategy {strategy!r}; expected one of {list(READY_TABLE)}"
        )
    start = parse_date(start_date, "start_date")
    end = parse_date(end_date, "end_date")
    if start and end and start > end:
        raise BacktestInputError(f"the start date {start} is after the end date {end}")
    chosen = choose_tickers(lake, tickers)
    start, end = resolve_window(lake, strategy, start, end, count)
    sessions = window_sessions(start, end)
    missing = missing_inputs(lake, strategy, sessions)
    if missing:
        raise BacktestInputError(
            f"the backtest of {start}..{end} cannot run: " + "; ".join(m.message() for m in missing)
        )
    return BacktestRequest(strategy, chosen, sessions)


def window_sessions(start: dt.date, end: dt.date) -> list[dt.date]:
    try:
        days = calendar.sessions(start, end)
    except calendar.CalendarError as exc:
        raise BacktestInputError(str(exc)) from exc
    if not days:
        raise BacktestInputError(f"no NYSE session between {start} and {end}")
    return days


def universe_tickers(lake: Lake) -> list[str]:
    if "universe" not in lake.tables():
        raise BacktestInputError(
            "the lake has no universe; backfill the market first (`butterquant backfill` or "
            "`butterquant demo`)"
        )
    return sorted(lake.read("universe")["symbol"].astype(str))


def choose_tickers(lake: Lake, requested: list[str]) -> list[str]:
    """The requested tickers (upper-cased), all of them in the universe; empty = all."""
    universe = universe_tickers(lake)
    chosen = sorted({t.strip().upper() for t in requested if t.strip()})
    if not chosen:
        return universe
    unknown = sorted(set(chosen) - set(universe))
    if unknown:
        raise BacktestInputError(
            f"ticker(s) {unknown} are not in the universe ({len(universe)} tickers, e.g. "
            f"{', '.join(universe[:8])})"
        )
    return chosen


class LakeInputs:
    """The backtest's view of the lake: its tickers only, one session at a time."""

    def __init__(self, lake: Lake, tickers: list[str], training_tickers: list[str] | None = None):
        self.lake = lake
        self.tickers = list(tickers)
        self.training_tickers = list(training_tickers) if training_tickers else None
        self._present: dict[str, set[str]] = {}
        self.chain = lru_cache(maxsize=4)(self._chain)
        self._bars = lru_cache(maxsize=64)(self._bars_of)

    def _has(self, table: str, session: dt.date) -> bool:
        if table not in self._present:
            self._present[table] = set(self.lake.partitions(table))
        return session.isoformat() in self._present[table]

    def _read(self, table: str, session: dt.date) -> pd.DataFrame:
        frame = self.lake.read(table, [session.isoformat()])
        return frame.loc[frame["symbol"].isin(self.tickers)].reset_index(drop=True)

    def candidates(self, session: dt.date) -> pd.DataFrame:
        return self._read("butterfly_candidates", session)

    def ev_curve(self, session: dt.date) -> EvCurve | None:
        """What the rule EV was worth on outcomes settled before ``session`` (every ticker
        of the lake, as in production)."""
        return ev_curve_at(self.lake, session)

    def features(self, session: dt.date) -> pd.DataFrame | None:
        if not self._has("candidate_features", session):
            return None
        return self._read("candidate_features", session)

    def _chain(self, session: dt.date) -> pd.DataFrame | None:
        if not self._has("option_chains", session):
            return None
        return self._read("option_chains", session)

    def _bars_of(self, session: dt.date) -> pd.DataFrame:
        if not self._has("daily_bars", session):
            return pd.DataFrame(columns=["session", "symbol", "open", "close"])
        return self.lake.read("daily_bars", [session.isoformat()])

    def close(self, symbol: str, session: dt.date) -> float:
        bars = self._bars(session)
        close = bars.loc[bars["symbol"] == symbol, "close"]
        return float(close.iloc[0]) if len(close) else float("nan")

    def bars(self, sessions: list[dt.date]) -> pd.DataFrame:
        frames = [self._bars(d) for d in sessions]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=["session", "symbol", "open", "close"])
        bars = pd.concat(frames, ignore_index=True)
        return bars.loc[bars["symbol"].isin(self.tickers)].reset_index(drop=True)

    def decisions(self, sessions: list[dt.date]) -> pd.DataFrame:
        keys = [d.isoformat() for d in sessions]
        frame = self.lake.read_existing("trading_decisions", keys)
        if not len(frame):
            return pd.DataFrame(columns=["session", "symbol", "action", "confidence"])
        return frame.loc[frame["symbol"].isin(self.tickers)].reset_index(drop=True)

    def sectors(self) -> dict[str, str]:
        universe = self.lake.read("universe")
        return dict(
            zip(universe["symbol"].astype(str), universe["sector"].astype(str), strict=True)
        )

    def labelled_history(
        self, before: dt.date, *, max_rows: int = 60_000, seed: int = 7
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Features and outcomes of the entry sessions before ``before``, only outcomes
        that expired before it, sampled evenly across entry sessions to ``max_rows`` like
        the production training set (the training tickers only, when set)."""
        sessions = sorted(
            p
            for p in set(self.lake.partitions("candidate_outcomes"))
            & set(self.lake.partitions("candidate_features"))
            if p < before.isoformat()
        )
        empty = pd.DataFrame(columns=[*KEY_COLUMNS, LABEL, "yield_per_1000"])
        if not sessions:
            return pd.DataFrame(columns=KEY_COLUMNS), empty
        per_session = max(1, max_rows // len(sessions))
        scanned = set(self.lake.partitions("butterfly_candidates"))
        features, outcomes = [], []
        for key in sessions:
            settled = self.lake.read("candidate_outcomes", [key])
            settled = settled.loc[pd.to_datetime(settled["expiry"]) < pd.Timestamp(before)]
            if self.training_tickers:
                settled = settled.loc[settled["symbol"].isin(self.training_tickers)]
            if not len(settled):
                continue
            if len(settled) > per_session:
                settled = settled.sample(n=per_session, random_state=seed)
            frame = self.lake.read("candidate_features", [key])
            keys = settled[KEY_COLUMNS].assign(_keep=True)
            frame = frame.merge(keys, on=KEY_COLUMNS, how="inner").drop(columns="_keep")
            # The scan's own EV, which the yield model's gate must beat, as in production.
            if key in scanned:
                frame = with_rule_ev(frame, self.lake.read("butterfly_candidates", [key]))
            features.append(frame)
            outcomes.append(settled)
        if not outcomes:
            return pd.DataFrame(columns=KEY_COLUMNS), empty
        return (
            pd.concat(features, ignore_index=True),
            pd.concat(outcomes, ignore_index=True),
        )


def benchmark_curve(bars: pd.DataFrame, sessions: list[dt.date], capital: float) -> np.ndarray:
    """``capital`` spread equally over the stocks of ``bars`` at the first session's close
    and held (no costs): the equal-weighted index the butterfly equity is drawn against."""
    if not len(bars) or not sessions:
        return np.full(len(sessions), np.nan)
    frame = bars.assign(session=pd.to_datetime(bars["session"]).dt.date)
    closes = frame.pivot_table(index="session", columns="symbol", values="close", aggfunc="first")
    closes = closes.reindex(list(sessions)).ffill()
    first = closes.iloc[0]
    usable = first.index[np.isfinite(first.to_numpy(float))]
    if not len(usable):
        return np.full(len(sessions), np.nan)
    relative = closes[usable].to_numpy(float) / first[usable].to_numpy(float)
    return capital * np.nanmean(relative, axis=1)
