"""The performance report: the journal and the daily marks turned into a track record.

Each source is used for what it knows. The trade journal (closed butterflies) gives the
trade figures, the breakdowns and the AI-vs-baseline test; the ledger's equity table (one
mark per session) gives the curve, so P/L, drawdown and Sharpe include the positions still
open at the end of the period instead of pretending they do not exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from butterquant_dagster.core.monitoring import metrics
from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA

# Closed trades each track needs before the AI-vs-baseline tests say anything: below it a
# p-value is noise that reads like evidence.
MIN_TRACK_TRADES = 5
SIGNIFICANCE = 0.05
UNKNOWN = "unknown"
EQUAL_WEIGHTED = "equal-weighted universe"
# The yield test shuffles the track labels this many times, always from the same seed, so
# a report rebuilt from the same journal gives the same p-value.
PERMUTATIONS = 5_000
PERMUTATION_SEED = 0
_PERMUTATION_CHUNK = 500  # shuffles held in memory at once
TRACK_TEST_METHOD = (
    "Fisher's exact test on win counts; permutation test "
    f"({PERMUTATIONS:,} shuffles of the track labels, two-sided) on yield per $1,000 at risk "
    "(each track's total P/L over its total capital at risk)"
)

JOURNAL_COLUMNS = (
    "ticker",
    "structure",
    "track",
    "entry_session",
    "exit_session",
    "pnl",
    "capital_at_risk",
    "days_held",
    "won",
)
BREAKDOWN_KEYS = ("track", "structure", "regime", "ticker", "month")
BREAKDOWN_COLUMNS = ("trades", "wins", "win_rate", "total_pnl", "yield_per_1000", "avg_days_held")
TRADE_FIGURES = ("win_rate", "yield_per_1000", "profit_factor", "avg_days_held")
CURVE_FIGURES = (
    "start_equity",
    "end_equity",
    "total_pnl",
    "total_return",
    "max_drawdown",
    "sharpe",
    "sortino",
)
BENCHMARK_FIGURES = ("benchmark_return", "benchmark_max_drawdown", "benchmark_sharpe")


@dataclass
class PerformanceReport:
    """Figures of one period. A figure that cannot be computed is ``None`` and has a line in
    ``notes`` saying why; nothing is filled in with a made-up number.

    ``figures`` keys: trades, wins, win_rate, yield_per_1000, total_pnl, realized_pnl,
    unrealized_pnl, max_drawdown, sharpe, sortino, profit_factor, avg_days_held, exposure,
    total_return, start_equity, end_equity, benchmark_symbol, benchmark_return,
    benchmark_max_drawdown, benchmark_sharpe, excess_return.

    ``breakdowns`` keys: track, structure, regime, ticker, month; each a frame whose first
    column is the key and then trades, wins, win_rate, total_pnl, yield_per_1000,
    avg_days_held.

    ``track_test``: AI vs baseline: ai_trades, baseline_trades, ai_win_rate,
    baseline_win_rate, win_rate_diff, win_rate_p, ai_yield, baseline_yield, yield_diff,
    yield_p, method, verdict (a sentence).

    ``equity``: session, equity, drawdown, return, benchmark (the index bought at the
    period's first equity, same scale; NaN where unknown).

    ``trades``: the period's closed trades (the journal rows plus the ``regime`` at entry),
    for the P/L distribution.
    """

    start: dt.date | None
    end: dt.date | None
    figures: dict = field(default_factory=dict)
    breakdowns: dict[str, pd.DataFrame] = field(default_factory=dict)
    track_test: dict = field(default_factory=dict)
    equity: pd.DataFrame = field(default_factory=pd.DataFrame)
    trades: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def performance_report(
    journal: pd.DataFrame,
    equity: pd.DataFrame,
    *,
    start: dt.date | None,
    end: dt.date | None,
    regimes: pd.DataFrame | None = None,
    benchmark: pd.DataFrame | None = None,
    benchmark_symbol: str | None = None,
) -> PerformanceReport:
    """The track record of ``start``..``end`` (inclusive dates; ``None`` is open-ended).

    - ``journal``: the ledger's ``trade_journal`` rows. The period's trades are those whose
      ``exit_session`` falls in the period.
    - ``equity``: the ledger's ``equity`` rows (one per marked session). The curve is the
      period's sessions preceded by the last session before ``start`` (the base), so the
      first day's move counts. ``total_pnl`` = end equity - base equity (realized and
      unrealized); ``realized_pnl`` = the closed trades' P/L; ``unrealized_pnl`` = the rest
      (open positions' change in value, net of what closed trades had already gained by
      the base).
    - ``exposure``: the mean over the period's sessions of capital_at_risk / equity - the
      share of the account that could be lost if every open butterfly expired worthless.
      The base row is the session before the period and never counts, also when ``start``
      is ``None`` (then the curve's first row is the base, e.g. the ledger's opening row).
    - ``win_rate``: the share of closed butterflies that ended with a positive P/L after
      fees.
    - ``regimes``: ``market_regime`` rows (session and ``market_regime`` or ``regime``);
      a trade is filed under the regime of its entry session, ``unknown`` without one.
    - ``benchmark``: ``session, close`` of the index to compare with (see
      :func:`benchmark_closes`), bought at the base equity.
    """
    notes: list[str] = []
    trades = period_trades(journal, start, end)
    trades["regime"] = regime_at_entry(trades["entry_session"], regimes, notes)
    curve = period_curve(equity, start, end)
    if start is not None and len(curve) and curve["session"].iloc[0] >= pd.Timestamp(start):
        notes.append(
            f"no marked session before {start}: the curve starts at "
            f"{curve['session'].iloc[0].date()}, whose own move is not counted"
        )

    figures = {**_trade_figures(trades, notes), **_curve_figures(curve, notes)}
    figures["exposure"] = _exposure(curve, start, end, notes)
    figures["unrealized_pnl"] = (
        None if figures["total_pnl"] is None else figures["total_pnl"] - figures["realized_pnl"]
    )
    frame = metrics.equity_frame(curve)
    frame["benchmark"] = benchmark_curve(curve, benchmark)
    figures["benchmark_symbol"] = benchmark_symbol or (
        EQUAL_WEIGHTED if benchmark is not None else None
    )
    figures.update(_benchmark_figures(frame, benchmark, notes))
    figures["excess_return"] = _difference(figures["total_return"], figures["benchmark_return"])

    test = track_test(trades)
    if test["win_rate_p"] is None:
        notes.append(f"track test: {test['verdict']}")
    return PerformanceReport(
        start=start,
        end=end,
        figures=figures,
        breakdowns=breakdowns(trades),
        track_test=test,
        equity=frame,
        trades=trades.reset_index(drop=True),
        notes=notes,
    )


# ---------------------------------------------------------------------------- inputs
def _sessions(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values)).astype("datetime64[ns]")


def _require(frame: pd.DataFrame, columns, what: str) -> pd.DataFrame:
    """``frame`` with ``columns``; an empty frame without them is an empty frame with them."""
    missing = [c for c in columns if c not in frame.columns]
    if missing and len(frame):
        raise ValueError(f"{what} is missing column(s) {missing}; found {list(frame.columns)}")
    if missing:
        frame = frame.reindex(columns=[*frame.columns, *missing])
    return frame


def _in_period(sessions: pd.Series, start, end) -> pd.Series:
    keep = sessions.notna()
    if start is not None:
        keep &= sessions >= pd.Timestamp(start)
    if end is not None:
        keep &= sessions <= pd.Timestamp(end)
    return keep


def period_trades(journal: pd.DataFrame, start, end) -> pd.DataFrame:
    """The journal rows whose ``exit_session`` is in ``start``..``end``, by exit."""
    frame = _require(journal, JOURNAL_COLUMNS, "trade journal").copy()
    for column in ("entry_session", "exit_session"):
        frame[column] = _sessions(frame[column]).to_numpy()
    frame = frame.loc[_in_period(frame["exit_session"], start, end).to_numpy()]
    return frame.sort_values("exit_session", kind="stable").reset_index(drop=True)


def period_curve(equity: pd.DataFrame, start, end) -> pd.DataFrame:
    """The equity rows of the period, preceded by the last row before ``start`` (the base)."""
    frame = _require(equity, ("session", "equity"), "equity table").copy()
    frame["session"] = _sessions(frame["session"]).to_numpy()
    duplicated = frame["session"].duplicated()
    if duplicated.any():
        day = frame.loc[duplicated, "session"].iloc[0].date()
        raise ValueError(f"equity table has more than one row for session {day}")
    frame = frame.sort_values("session").reset_index(drop=True)
    in_period = _in_period(frame["session"], start, end)
    if start is not None:
        before = np.flatnonzero((frame["session"] < pd.Timestamp(start)).to_numpy())
        if len(before):
            in_period.iloc[before[-1]] = True
    return frame.loc[in_period.to_numpy()].reset_index(drop=True)


def regime_at_entry(entry_sessions: pd.Series, regimes: pd.DataFrame | None, notes=None):
    """The regime of each entry session; ``unknown`` where the regime rows do not say."""
    entries = _sessions(entry_sessions)
    if regimes is None or not len(regimes):
        if notes is not None and len(entries):
            notes.append("regime: no market regime rows given; every trade is 'unknown'")
        return pd.Series(UNKNOWN, index=entries.index, dtype=object).to_numpy()
    column = next((c for c in ("regime", "market_regime") if c in regimes.columns), None)
    if column is None or "session" not in regimes.columns:
        raise ValueError(
            "regimes need a session and a regime (or market_regime) column; "
            f"found {list(regimes.columns)}"
        )
    lookup = pd.Series(regimes[column].astype(str).to_numpy(), index=_sessions(regimes["session"]))
    if lookup.index.duplicated().any():
        day = lookup.index[lookup.index.duplicated()][0].date()
        raise ValueError(f"regimes have more than one row for session {day}")
    return entries.map(lookup).fillna(UNKNOWN).astype(object).to_numpy()


# ---------------------------------------------------------------------------- figures
def _won(trades: pd.DataFrame) -> np.ndarray:
    return trades["won"].astype("boolean").fillna(False).to_numpy(bool)


def _trade_figures(trades: pd.DataFrame, notes: list[str]) -> dict:
    pnl = trades["pnl"].to_numpy(float)
    figures = {
        "trades": len(trades),
        "wins": int(_won(trades).sum()),
        "realized_pnl": float(np.nansum(pnl)),
    }
    if not len(trades):
        notes.append(
            f"{NOT_ENOUGH_DATA}: no closed trade in the period, so no {', '.join(TRADE_FIGURES)}"
        )
        return {**figures, **dict.fromkeys(TRADE_FIGURES)}
    figures["win_rate"] = metrics.win_rate(trades["won"])
    figures["yield_per_1000"] = metrics.yield_per_1000(pnl, trades["capital_at_risk"])
    if figures["yield_per_1000"] is None:
        notes.append(f"{NOT_ENOUGH_DATA}: yield_per_1000 - the trades carry no capital at risk")
    figures["profit_factor"] = metrics.profit_factor(pnl)
    if figures["profit_factor"] is None:
        notes.append(f"{NOT_ENOUGH_DATA}: profit_factor - no losing trade, the ratio is unbounded")
    days = trades["days_held"].to_numpy(float)
    figures["avg_days_held"] = float(np.nanmean(days)) if np.isfinite(days).any() else None
    return figures


def _curve_figures(curve: pd.DataFrame, notes: list[str]) -> dict:
    values = curve["equity"].to_numpy(float)
    if len(values) < 2:
        notes.append(
            f"{NOT_ENOUGH_DATA}: the equity curve has {len(values)} marked session(s); "
            f"{', '.join(CURVE_FIGURES)} need a base session and at least one after it"
        )
        return dict.fromkeys(CURVE_FIGURES)
    returns = metrics.session_returns(values)
    figures = {
        "start_equity": float(values[0]),
        "end_equity": float(values[-1]),
        "total_pnl": float(values[-1] - values[0]),
        "total_return": metrics.total_return(values),
        "max_drawdown": metrics.max_drawdown(values),
        "sharpe": metrics.sharpe_ratio(returns),
        "sortino": metrics.sortino_ratio(returns),
    }
    if not metrics.enough_for_ratios(returns):
        notes.append(
            f"{NOT_ENOUGH_DATA}: sharpe, sortino need at least "
            f"{metrics.MIN_RATIO_SESSIONS} session returns, the curve has {len(returns)}"
        )
    else:
        if figures["sharpe"] is None:
            notes.append(f"{NOT_ENOUGH_DATA}: sharpe - the session returns do not vary")
        if figures["sortino"] is None:
            notes.append(f"{NOT_ENOUGH_DATA}: sortino - no losing session, the ratio is unbounded")
    return figures


def _exposure(curve: pd.DataFrame, start, end, notes: list[str]) -> float | None:
    """Mean capital at risk / equity over the period's sessions after the base row.

    The base is the session before the period, there only to anchor the first day's move;
    counting it (often the ledger's opening row, nothing at risk yet) would understate how
    much of the account the period actually put at risk.
    """
    in_period = _in_period(curve["session"], start, end).to_numpy(copy=True)
    if start is None and len(in_period):
        in_period[0] = False  # open-ended: the first row is the base
    period = curve.loc[in_period]
    if "capital_at_risk" not in period.columns or not len(period):
        notes.append(
            f"{NOT_ENOUGH_DATA}: exposure - no marked session with capital at risk in the period"
        )
        return None
    at_risk = period["capital_at_risk"].to_numpy(float)
    equity = period["equity"].to_numpy(float)
    usable = np.isfinite(at_risk) & np.isfinite(equity) & (equity > 0)
    if not usable.any():
        notes.append(f"{NOT_ENOUGH_DATA}: exposure - no session with a positive equity")
        return None
    return float(np.mean(at_risk[usable] / equity[usable]))


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a - b)


# ---------------------------------------------------------------------------- benchmark
def benchmark_closes(bars: pd.DataFrame, symbol: str | None = None) -> pd.DataFrame:
    """``session, close`` of the index a track record is compared with.

    With ``symbol``, that ticker's close. Without, an equal-weighted index of every ticker
    in ``bars``: each session it moves by the mean of the tickers' close-to-previous-close
    ratios (each ticker against its own previous row), starting at 100. Chaining daily
    means, rather than averaging close / first close, keeps a ticker that enters the
    universe later from jumping the index on its first day.
    """
    frame = _require(bars, ("session", "symbol", "close"), "bars")[["session", "symbol", "close"]]
    frame = frame.assign(session=_sessions(frame["session"]).to_numpy())
    frame["symbol"] = frame["symbol"].astype(str)
    _check_bars(frame)
    frame = frame.sort_values(["symbol", "session"]).reset_index(drop=True)
    if symbol is not None:
        rows = frame.loc[frame["symbol"] == str(symbol), ["session", "close"]]
        if rows.empty and len(frame):
            raise ValueError(f"benchmark symbol {symbol!r} is not in the bars")
        return rows.astype({"close": float}).reset_index(drop=True)
    frame["ratio"] = frame["close"] / frame.groupby("symbol")["close"].shift(1)
    step = frame.groupby("session", sort=True)["ratio"].mean().fillna(1.0)
    return pd.DataFrame({"session": step.index, "close": 100.0 * step.cumprod().to_numpy()})


def _check_bars(frame: pd.DataFrame) -> None:
    duplicated = frame.duplicated(["session", "symbol"])
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise ValueError(f"bars have duplicate rows for {row['symbol']} on {row['session'].date()}")
    close = frame["close"].to_numpy(float)
    bad = ~(np.isfinite(close) & (close > 0))
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise ValueError(
            f"bars: close {float(row['close'])!r} of {row['symbol']} on {row['session'].date()} "
            "is not a positive price"
        )


def benchmark_curve(curve: pd.DataFrame, benchmark: pd.DataFrame | None) -> np.ndarray:
    """The index bought with the base equity: base equity x close / close at the base."""
    nan = np.full(len(curve), np.nan)
    if benchmark is None or not len(curve) or not len(benchmark):
        return nan
    closes = (
        pd.Series(benchmark["close"].to_numpy(float), index=_sessions(benchmark["session"]))
        .groupby(level=0)
        .last()
    )
    aligned = curve["session"].map(closes).to_numpy(float)
    if not np.isfinite(aligned[0]) or aligned[0] <= 0:
        return nan
    return float(curve["equity"].iloc[0]) * aligned / aligned[0]


def _benchmark_figures(frame: pd.DataFrame, benchmark, notes: list[str]) -> dict:
    values = frame["benchmark"].to_numpy(float)
    if benchmark is None:
        notes.append(f"{NOT_ENOUGH_DATA}: benchmark - no benchmark closes given")
        return dict.fromkeys(BENCHMARK_FIGURES)
    if len(values) < 2:
        notes.append(
            f"{NOT_ENOUGH_DATA}: benchmark - the equity curve has {len(values)} session(s)"
        )
        return dict.fromkeys(BENCHMARK_FIGURES)
    if not np.isfinite(values[0]) or not np.isfinite(values[-1]):
        notes.append(
            f"{NOT_ENOUGH_DATA}: benchmark - no close on the curve's first and last sessions "
            f"({frame['session'].iloc[0].date()}, {frame['session'].iloc[-1].date()})"
        )
        return dict.fromkeys(BENCHMARK_FIGURES)
    known = values[np.isfinite(values)]
    if not metrics.enough_for_ratios(metrics.session_returns(known)):
        notes.append(
            f"{NOT_ENOUGH_DATA}: benchmark_sharpe needs at least {metrics.MIN_RATIO_SESSIONS} "
            f"session returns, the benchmark has {max(len(known) - 1, 0)}"
        )
    return {
        "benchmark_return": metrics.total_return(known),
        "benchmark_max_drawdown": metrics.max_drawdown(known),
        "benchmark_sharpe": metrics.sharpe_ratio(metrics.session_returns(known)),
    }


# ---------------------------------------------------------------------------- breakdowns
def breakdowns(trades: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The trade figures per track, structure, regime at entry, ticker and month of exit."""
    keyed = trades.assign(month=trades["exit_session"].dt.strftime("%Y-%m"))
    return {key: breakdown(keyed, key) for key in BREAKDOWN_KEYS}


def breakdown(trades: pd.DataFrame, key: str) -> pd.DataFrame:
    keys = trades[key].astype(object).where(trades[key].notna(), UNKNOWN).astype(str)
    rows = [
        {key: value, **_group_figures(group)}
        for value, group in trades.groupby(keys.to_numpy(), sort=True)
    ]
    return pd.DataFrame(rows, columns=[key, *BREAKDOWN_COLUMNS])


def _group_figures(group: pd.DataFrame) -> dict:
    days = group["days_held"].to_numpy(float)
    return {
        "trades": len(group),
        "wins": int(_won(group).sum()),
        "win_rate": metrics.win_rate(group["won"]),
        "total_pnl": float(np.nansum(group["pnl"].to_numpy(float))),
        "yield_per_1000": metrics.yield_per_1000(group["pnl"], group["capital_at_risk"]),
        "avg_days_held": float(np.nanmean(days)) if np.isfinite(days).any() else None,
    }


# ---------------------------------------------------------------------------- AI vs baseline
def track_test(trades: pd.DataFrame) -> dict:
    """Does the AI track beat the baseline, beyond what luck explains?

    The yields compared are the ones the report shows: each track's total P/L per $1,000 of
    total capital at risk (:func:`metrics.yield_per_1000`, the by-track table's figure). A
    mean of per-trade ratios would weigh a $100 trade like a $1,000 one and could call a
    track that lost money the better one. The sum ratio has no textbook distribution, so
    its p-value comes from a permutation test: shuffle the track labels over the same
    trades, recompute both tracks' yields, and count how often the gap is at least as wide
    as the observed one.
    """
    track = trades["track"].astype(str)
    ai, base = trades.loc[(track == "ai").to_numpy()], trades.loc[(track == "baseline").to_numpy()]
    out = {
        "ai_trades": len(ai),
        "baseline_trades": len(base),
        "ai_win_rate": metrics.win_rate(ai["won"]),
        "baseline_win_rate": metrics.win_rate(base["won"]),
        "ai_yield": metrics.yield_per_1000(ai["pnl"], ai["capital_at_risk"]),
        "baseline_yield": metrics.yield_per_1000(base["pnl"], base["capital_at_risk"]),
        "win_rate_p": None,
        "yield_p": None,
        "method": TRACK_TEST_METHOD,
    }
    out["win_rate_diff"] = _difference(out["ai_win_rate"], out["baseline_win_rate"])
    out["yield_diff"] = _difference(out["ai_yield"], out["baseline_yield"])
    if min(len(ai), len(base)) < MIN_TRACK_TRADES:
        out["verdict"] = (
            f"{NOT_ENOUGH_DATA}: {len(ai)} AI and {len(base)} baseline closed trades "
            f"(need {MIN_TRACK_TRADES} each)"
        )
        return out
    out["win_rate_p"] = _fisher_p(_won(ai), _won(base))
    if out["yield_diff"] is not None:
        out["yield_p"] = _yield_permutation_p(ai, base, out["yield_diff"])
    out["verdict"] = _verdict(out)
    return out


def _fisher_p(ai_won: np.ndarray, base_won: np.ndarray) -> float:
    table = [
        [int(ai_won.sum()), int((~ai_won).sum())],
        [int(base_won.sum()), int((~base_won).sum())],
    ]
    return float(stats.fisher_exact(table).pvalue)


def _known_pnl_and_risk(trades: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The trades :func:`metrics.yield_per_1000` counts: both a P/L and a capital at risk."""
    pnl = trades["pnl"].to_numpy(float)
    risk = trades["capital_at_risk"].to_numpy(float)
    known = np.isfinite(pnl) & np.isfinite(risk)
    return pnl[known], risk[known]


def _yield_permutation_p(ai: pd.DataFrame, base: pd.DataFrame, observed: float) -> float:
    """Two-sided: (1 + shuffles with |AI - baseline yield| >= |observed|) / (1 + shuffles).

    A shuffle that leaves one side without capital at risk has no yield; it counts as
    extreme, which can only make the p-value larger.
    """
    ai_pnl, ai_risk = _known_pnl_and_risk(ai)
    base_pnl, base_risk = _known_pnl_and_risk(base)
    pnl, risk = np.concatenate([ai_pnl, base_pnl]), np.concatenate([ai_risk, base_risk])
    labels = np.zeros(len(pnl), dtype=bool)
    labels[: len(ai_pnl)] = True
    total_pnl, total_risk = pnl.sum(), risk.sum()
    # Rounding must not turn a shuffle that reproduces the observed split into a miss.
    bar = abs(observed) * (1 - 1e-9) - 1e-9
    rng = np.random.default_rng(PERMUTATION_SEED)
    extreme = 0
    for done in range(0, PERMUTATIONS, _PERMUTATION_CHUNK):
        rows = min(_PERMUTATION_CHUNK, PERMUTATIONS - done)
        shuffled = rng.permuted(np.tile(labels, (rows, 1)), axis=1).astype(float)
        ai_sum_pnl, ai_sum_risk = shuffled @ pnl, shuffled @ risk
        base_sum_risk = total_risk - ai_sum_risk
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = 1000.0 * (ai_sum_pnl / ai_sum_risk - (total_pnl - ai_sum_pnl) / base_sum_risk)
        defined = (ai_sum_risk > 0) & (base_sum_risk > 0)
        extreme += int(np.count_nonzero(~defined | (np.abs(gap) >= bar)))
    return (1 + extreme) / (1 + PERMUTATIONS)


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"


def _verdict(test: dict) -> str:
    findings = []
    if test["win_rate_p"] < SIGNIFICANCE:
        more = "more" if test["win_rate_diff"] > 0 else "less"
        findings.append(f"AI track wins {more} often than baseline ({_p(test['win_rate_p'])})")
    if test["yield_p"] is not None and test["yield_p"] < SIGNIFICANCE:
        more = "more" if test["yield_diff"] > 0 else "less"
        findings.append(
            f"AI track yields {more} per $1,000 at risk than baseline ({_p(test['yield_p'])})"
        )
    if findings:
        return "; ".join(findings)
    yield_part = (
        f"yield {_p(test['yield_p'])}"
        if test["yield_p"] is not None
        else "yield test undefined: a track has no capital at risk"
    )
    return f"no significant difference (win rate {_p(test['win_rate_p'])}, {yield_part})"
