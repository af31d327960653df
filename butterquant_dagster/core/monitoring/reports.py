"""The daily, weekly and monthly reports: inputs in, one self-contained HTML page out.

Rendering only: the figures come computed (a :class:`PerformanceReport`, a
:class:`DriftReport`, frames read from the lake and the ledger) and this module lays them
out. Every input may be empty: a figure that cannot be computed is shown as "not enough
data", a list that is known to be empty (no orders, no failed runs) says so, and nothing
crashes or invents a number.

The layout follows the operations guide: the daily report answers "is the system healthy,
what did it decide, how is it doing"; the weekly one "where do wins and losses come from and
is the model still calibrated"; the monthly one "does it beat the benchmark and the
baseline, and is the system reliable".
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from butterquant_dagster.core.monitoring import html, plots
from butterquant_dagster.core.monitoring.drift import DriftReport
from butterquant_dagster.core.monitoring.html import Html, Tile
from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA
from butterquant_dagster.core.monitoring.performance import PerformanceReport
from butterquant_dagster.core.trading.account import AccountView, dollars

TITLE_PREFIX = "butterquant"
TOP_RANKINGS = 20
HEALTH_ORDER = ("OK", "NOTICE", "WARN", "FAIL")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# How a column is printed wherever it appears in a table (column name -> html kind).
COLUMN_FORMATS = {
    "win_rate": "percent",
    "hit_rate": "percent",
    "accuracy": "percent",
    "mean_predicted": "percent",
    "confidence": "percent",
    "regime_confidence": "percent",
    "p_up": "percent",
    "p_bear": "percent",
    "p_neutral": "percent",
    "p_bull": "percent",
    "ml_success_prob": "percent",
    "success_rate": "percent",
    "roi": "percent",
    "low": "percent",
    "high": "percent",
    "training_share": "percent",
    "live_share": "percent",
    "total_pnl": "dollars",
    "pnl": "dollars",
    "unrealized_pnl": "dollars",
    "yield_per_1000": "dollars",
    "ev_per_1000": "dollars",
    "ml_expected_per_1000": "dollars",
    "predicted_per_1000": "dollars",
    "realized_per_1000": "dollars",
    "top_decile_realized": "dollars",
    "all_realized": "dollars",
    "rank_correlation": "score",
    "rows": "count",
    "limit_price": "dollars",
    "entry_price": "dollars",
    "exit_price": "dollars",
    "mark": "dollars",
    "fees": "dollars",
    "capital_at_risk": "dollars",
    "max_profit": "dollars",
    "max_loss": "dollars",
    "avg_days_held": "ratio",
    "importance": "score",
    "psi": "score",
    "trades": "count",
    "wins": "count",
    "count": "count",
    "n": "count",
    "runs": "count",
    "succeeded": "count",
    "failed": "count",
    "quantity": "count",
}


def _empty() -> pd.DataFrame:
    return pd.DataFrame()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# ------------------------------------------------------------------------------ inputs
@dataclass
class DailyReportInputs:
    """Everything the daily report shows for one session.

    A frame that is ``None`` is unknown ("not enough data"); an empty ``orders``,
    ``run_failures`` or ``open_positions`` frame means there were none.

    ``health``: name (or check), status (OK / NOTICE / WARN / FAIL), message; e.g.
    ``HealthReport.to_frame()``.
    ``run_failures``: time, job, run_id, message (the session's failed runs).
    ``regime``: market_regime, regime_confidence, p_bear, p_neutral, p_bull.
    ``decisions``: symbol, action (buy / hold / sell), confidence, p_up, reasoning.
    ``orders``: intent, track, ticker, structure, quantity, limit_price, status, reason.
    ``rankings``: the session's ranked candidates, best first (the top ones are shown).
    ``session_performance`` is the session alone, ``performance`` the track record to date.
    ``account``: the account at the session's close (``core.trading.account.account_view``),
    the figures ``positions`` and ``journal`` show.
    """

    period: ClassVar[str] = "daily"

    session: dt.date
    generated_at: dt.datetime = field(default_factory=_now)
    health: pd.DataFrame = field(default_factory=_empty)
    model_version: str | None = None
    model_age_days: float | None = None
    data_freshness: str | None = None
    run_failures: pd.DataFrame | None = None
    regime: Mapping | None = None
    decisions: pd.DataFrame = field(default_factory=_empty)
    orders: pd.DataFrame | None = None
    rankings: pd.DataFrame = field(default_factory=_empty)
    session_performance: PerformanceReport | None = None
    performance: PerformanceReport | None = None
    open_positions: pd.DataFrame | None = None
    drift: DriftReport | None = None
    notes: list[str] = field(default_factory=list)
    account: AccountView | None = None

    @property
    def key(self) -> str:
        return self.session.isoformat()


@dataclass
class WeeklyReportInputs:
    """One week: ``week`` is its label (e.g. "2026-W47"), ``performance`` the week's
    track record, ``drift`` the model's calibration, ``feature_importance`` a frame
    period, feature, importance, n over the recent weeks.

    ``ranking_reliability``: from ``core.scan.ev_reliability.report_frames`` on outcomes
    known at the week's end: ``skill`` (one row per ranking measure) and a decile table per
    expected yield shown (``ev_per_1000``, ``ml_expected_per_1000``); ``baseline_choice`` is
    the sentence saying which rule measure the baseline ranks by and why.
    """

    period: ClassVar[str] = "weekly"

    week: str
    generated_at: dt.datetime = field(default_factory=_now)
    performance: PerformanceReport | None = None
    drift: DriftReport | None = None
    feature_importance: pd.DataFrame = field(default_factory=_empty)
    ranking_reliability: Mapping[str, pd.DataFrame] | None = None
    baseline_choice: str | None = None
    notes: list[str] = field(default_factory=list)
    account: AccountView | None = None  # at the week's last session's close

    @property
    def key(self) -> str:
        return self.week


@dataclass
class MonthlyReportInputs:
    """One month: ``month`` is its label (e.g. "2026-11").

    ``performance``: the track record with benchmark figures, the track test and the
    ``month`` breakdown. ``accuracy_by_regime``: period, regime, n, accuracy, hit_rate,
    mean_predicted over the recent months. ``runs``: job, runs, succeeded, failed,
    success_rate for the month (``None`` when unknown); ``run_failures``: time, job,
    run_id, message.
    """

    period: ClassVar[str] = "monthly"

    month: str
    generated_at: dt.datetime = field(default_factory=_now)
    performance: PerformanceReport | None = None
    drift: DriftReport | None = None
    accuracy_by_regime: pd.DataFrame = field(default_factory=_empty)
    runs: pd.DataFrame | None = None
    run_failures: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    account: AccountView | None = None  # at the month's last session's close

    @property
    def key(self) -> str:
        return self.month


# ------------------------------------------------------------------------------ pieces
def _title(period: str, key: str) -> str:
    return f"{TITLE_PREFIX} {period} report {key}"


def _generated(moment: dt.datetime) -> str:
    zone = f" {moment.tzname()}" if moment.tzinfo is not None else ""
    return f"generated {moment.strftime('%Y-%m-%d %H:%M')}{zone}"


def _figures(report: PerformanceReport | DriftReport | None) -> dict:
    return dict(report.figures) if report is not None else {}


def _frame(frame: pd.DataFrame | None, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """``frame`` reduced to ``columns`` that exist (in that order), or empty."""
    if frame is None or frame.empty:
        return _empty()
    if columns is None:
        return frame
    return frame[[c for c in columns if c in frame.columns]]


def _table(
    frame: pd.DataFrame | None,
    what: str,
    *,
    max_rows: int = html.DEFAULT_MAX_ROWS,
    status_column: str | None = None,
    none_text: str | None = None,
) -> Html:
    """A table with the report's column formats. ``none_text`` is what an empty (but known)
    frame says; ``None`` as the frame is always "not enough data"."""
    if frame is not None and frame.empty and none_text is not None:
        return html.paragraph(none_text, "missing")
    formats = {c: k for c, k in COLUMN_FORMATS.items() if frame is not None and c in frame}
    return html.table(
        frame, formats=formats, max_rows=max_rows, what=what, status_column=status_column
    )


def _worst_health(health: pd.DataFrame | None) -> str | None:
    if health is None or health.empty or "status" not in health:
        return None
    statuses = [str(s).upper() for s in health["status"].dropna()]
    ranked = [HEALTH_ORDER.index(s) for s in statuses if s in HEALTH_ORDER]
    unknown = [s for s in statuses if s not in HEALTH_ORDER]
    if unknown:
        return "FAIL"  # a check that reports something we cannot read is not fine
    return HEALTH_ORDER[max(ranked)] if ranked else None


def _drift_lines(drift: DriftReport | None) -> list[object]:
    if drift is None:
        return [f"Model drift: {NOT_ENOUGH_DATA} (no drift report)"]
    head = Html(f"Model drift: {html.badge(drift.status)}")
    return [head, *(f"drift: {reason}" for reason in drift.reasons)]


# What each P/L figure is, printed under it wherever it is shown.
REALIZED_HINT = "closed trades, after fees"
UNREALIZED_HINT = "open positions, marked"
TOTAL_HINT = "realized + unrealized"


PERIOD_UNREALIZED_HINT = "total minus realized: the marks' change"


def _pnl_tiles(figures: Mapping) -> list[Tile]:
    """A period's P/L: its closed trades' (whole life), and the rest of the account's change."""
    unrealized = figures.get("unrealized_pnl")
    return [
        Tile("Realized P/L", figures.get("realized_pnl"), "dollars", hint=REALIZED_HINT),
        Tile("Unrealized P/L", unrealized, "dollars", hint=PERIOD_UNREALIZED_HINT),
        Tile("Total P/L", figures.get("total_pnl"), "dollars", hint=TOTAL_HINT),
    ]


def _performance_tiles(report: PerformanceReport | None, heading: str, extra=()) -> Html:
    figures = _figures(report)
    return html.tiles(
        [
            Tile("Trades", figures.get("trades"), "count", hint="closed"),
            Tile("Win rate", figures.get("win_rate"), "percent"),
            Tile("Yield per $1,000", figures.get("yield_per_1000"), "dollars"),
            *_pnl_tiles(figures),
            Tile("Max drawdown", figures.get("max_drawdown"), "percent"),
            Tile("Sharpe", figures.get("sharpe"), "ratio"),
            *extra,
        ],
        heading,
    )


def account_heading(account: AccountView | None) -> str:
    if account is None or account.as_of is None:
        return "Account (no session marked yet)"
    return f"Account at the close of {account.as_of}"


def _account_tiles(account: AccountView | None) -> Html:
    """The account as ``positions`` and ``journal`` show it: value = cash + marked open
    positions; total P/L since the start = realized + unrealized."""
    if account is None:
        return html.not_enough_data("account")
    return html.tiles(
        [
            Tile("Account value", account.account_value, "dollars", hint="cash + positions"),
            Tile("Cash", account.cash, "dollars"),
            Tile(
                "Open positions",
                account.positions_value,
                "dollars",
                hint=f"{account.open_positions} marked at the close",
            ),
            Tile("Realized P/L", account.realized_pnl, "dollars", hint=REALIZED_HINT),
            Tile("Unrealized P/L", account.unrealized_pnl, "dollars", hint=UNREALIZED_HINT),
            Tile(
                "Total P/L",
                account.total_pnl,
                "dollars",
                hint=f"{TOTAL_HINT}, since {dollars(account.initial_capital)}",
            ),
            Tile(
                "Max drawdown",
                account.max_drawdown,
                "percent",
                hint="of the account value, from the start",
            ),
        ],
        account_heading(account),
    )


def _account_notes(account: AccountView | None) -> list[str]:
    return [f"account: {note}" for note in account.notes] if account is not None else []


def _equity(report: PerformanceReport | None) -> pd.DataFrame | None:
    return report.equity if report is not None else None


def _breakdown(report: PerformanceReport | None, key: str) -> pd.DataFrame:
    if report is None:
        return _empty()
    return report.breakdowns.get(key, _empty())


def _notes_section(*groups: Iterable[object]) -> Html:
    lines = [line for group in groups for line in group]
    block = html.notes(lines)
    return html.section("Notes", block if block else html.paragraph("No notes.", "missing"))


# ------------------------------------------------------------------------------ daily
def _daily_status(inputs: DailyReportInputs) -> Html:
    worst = _worst_health(inputs.health)
    age = inputs.model_age_days
    summary = html.facts(
        {
            "Overall": html.badge(worst) if worst else None,
            "Model version": inputs.model_version or None,
            "Model age": None if html.is_missing(age) else f"{age:,.0f} days",
            "Data freshness": inputs.data_freshness or None,
        }
    )
    health = inputs.health
    if health is not None and "check" in health and "name" not in health:
        health = health.rename(columns={"check": "name"})  # HealthReport.to_frame()
    checks = _table(
        _frame(health, ["name", "status", "message"]),
        "health checks",
        status_column="status",
    )
    failures = _table(
        _frame(inputs.run_failures, ["time", "job", "run_id", "message"])
        if inputs.run_failures is not None
        else None,
        "run failures",
        none_text="No run failed this session.",
    )
    return html.section(
        "1. System status",
        summary,
        html.subsection("Health checks", checks),
        html.subsection("Run failures", failures),
    )


def _regime_block(regime: Mapping | None) -> Html:
    if not regime or html.is_missing(regime.get("market_regime")):
        return html.not_enough_data("market regime")
    return html.tiles(
        [
            Tile("Regime", str(regime["market_regime"]), "text"),
            Tile("Confidence", regime.get("regime_confidence"), "percent"),
            Tile("P(bull)", regime.get("p_bull"), "percent"),
            Tile("P(neutral)", regime.get("p_neutral"), "percent"),
            Tile("P(bear)", regime.get("p_bear"), "percent"),
        ]
    )


def _decision_blocks(decisions: pd.DataFrame) -> list[Html]:
    if decisions is None or decisions.empty:
        return [html.not_enough_data("decisions")]
    blocks = []
    if "action" in decisions:
        counts = decisions["action"].astype(str).str.lower().value_counts()
        blocks.append(
            html.tiles(
                [Tile(a.title(), int(counts.get(a, 0)), "count") for a in ("buy", "hold", "sell")]
            )
        )
    frame = decisions
    if "action" in frame and "confidence" in frame:
        # The actionable views first, most confident on top; holds after them.
        order = frame["action"].astype(str).str.lower().map({"buy": 0, "sell": 1}).fillna(2)
        frame = frame.assign(_order=order).sort_values(
            ["_order", "confidence"], ascending=[True, False], kind="stable"
        )
        frame = frame.drop(columns="_order")
    columns = ["symbol", "action", "confidence", "p_up", "reasoning"]
    if "action" not in frame:
        return [*blocks, _table(_frame(frame, columns), "decisions")]
    # The buys and sells are what a trader acts on; the holds (most of a 50-ticker
    # universe on most days) are folded, so the page stays a page.
    held = frame["action"].astype(str).str.lower() == "hold"
    if (~held).any():
        blocks.append(_table(_frame(frame.loc[~held], columns), "decisions"))
    else:
        blocks.append(html.paragraph("No buy or sell today: every ticker is a hold."))
    if held.any():
        blocks.append(
            html.details(
                f"{int(held.sum())} hold{'' if held.sum() == 1 else 's'} (click to show)",
                _table(_frame(frame.loc[held], columns), "holds"),
            )
        )
    return blocks


def _daily_decisions(inputs: DailyReportInputs) -> Html:
    orders = _frame(
        inputs.orders,
        ["intent", "track", "ticker", "structure", "quantity", "limit_price", "status", "reason"],
    )
    return html.section(
        "2. Trading decisions",
        html.subsection("Market regime", _regime_block(inputs.regime)),
        html.subsection("Buy / hold / sell per ticker", *_decision_blocks(inputs.decisions)),
        html.subsection(
            "Orders of the session",
            _table(
                orders if inputs.orders is not None else None,
                "orders",
                none_text="No orders this session.",
            ),
        ),
        html.subsection(
            f"Top {TOP_RANKINGS} rankings",
            _table(_frame(inputs.rankings), "rankings", max_rows=TOP_RANKINGS),
        ),
    )


def _daily_performance(inputs: DailyReportInputs) -> Html:
    open_count = None if inputs.open_positions is None else len(inputs.open_positions)
    return html.section(
        "3. Performance",
        _account_tiles(inputs.account),
        _performance_tiles(inputs.session_performance, "This session"),
        _performance_tiles(
            inputs.performance, "To date", [Tile("Open positions", open_count, "count")]
        ),
        html.image(plots.equity_chart(_equity(inputs.performance)), "Equity and drawdown"),
        html.subsection(
            "Open positions",
            _table(
                inputs.open_positions,
                "open positions",
                none_text="No open positions.",
            ),
        ),
    )


def render_daily(inputs: DailyReportInputs) -> str:
    """The daily report: system status, trading decisions, performance, notes."""
    performance_notes = [
        *(inputs.session_performance.notes if inputs.session_performance else []),
        *(inputs.performance.notes if inputs.performance else []),
    ]
    return html.document(
        _title("daily", inputs.key),
        [
            _daily_status(inputs),
            _daily_decisions(inputs),
            _daily_performance(inputs),
            _notes_section(
                _drift_lines(inputs.drift),
                _account_notes(inputs.account),
                dict.fromkeys(performance_notes),
                inputs.notes,
            ),
        ],
        subtitle=f"Session {inputs.key} · {_generated(inputs.generated_at)}",
    )


# ------------------------------------------------------------------------------ weekly
def _drift_tiles(figures: Mapping) -> Html:
    """Calibration now (candidates, trades) against the same figure at training."""
    return html.tiles(
        [
            Tile("ECE candidates", figures.get("ece_candidates"), "score"),
            Tile("ECE trades", figures.get("ece_trades"), "score"),
            Tile("ECE at training", figures.get("ece_training"), "score"),
            Tile("Brier candidates", figures.get("brier_candidates"), "score"),
            Tile("Brier trades", figures.get("brier_trades"), "score"),
            Tile("Brier at training", figures.get("brier_training"), "score"),
            Tile(
                "Hit rate, high confidence",
                figures.get("hit_rate_high_confidence"),
                "percent",
                hint=_predictions(figures.get("high_confidence_n")),
            ),
            Tile("Resolved candidates", figures.get("resolved_candidates"), "count"),
        ]
    )


def _calibration(drift: DriftReport | None) -> Html:
    if drift is None:
        return html.section("Confidence vs accuracy", html.not_enough_data("drift report"))
    figures = drift.figures
    reliability = drift.reliability or {}
    return html.section(
        "Confidence vs accuracy",
        html.facts(
            {
                "Drift status": html.badge(drift.status),
                "Model version": figures.get("model_version") or None,
                "Trained": figures.get("training_date") or None,
            }
        ),
        html.notes(drift.reasons),
        _drift_tiles(figures),
        html.image(plots.reliability_chart(reliability), "Reliability diagram"),
        *(
            html.subsection(
                f"Reliability of {name}", _table(_frame(frame), f"reliability of {name}")
            )
            for name, frame in (reliability.items() if reliability else [("candidates", None)])
        ),
    )


def _predictions(n: object) -> str | None:
    return None if html.is_missing(n) else f"on {html.format_value(n, 'count')} predictions"


def _feature_trend(frame: pd.DataFrame) -> Html:
    chart = plots.line_chart(
        _frame(frame) if not frame.empty else None,
        "period",
        "importance",
        "feature",
        "Feature importance by week",
    )
    latest = _empty()
    if not frame.empty and {"period", "importance"} <= set(frame.columns):
        last = frame["period"].astype(str).max()
        latest = frame[frame["period"].astype(str) == last].sort_values(
            "importance", ascending=False
        )
    return html.section(
        "Feature-importance trend",
        html.image(chart, "Feature importance by week"),
        html.subsection("Latest week", _table(_frame(latest), "feature importance")),
    )


RELIABILITY_TITLES = {
    "ev_per_1000": "Rule expected value (ev_per_1000) by decile",
    "ml_expected_per_1000": "Model expected yield (ml_expected_per_1000) by decile",
}


def _ranking_reliability(inputs: WeeklyReportInputs) -> Html:
    """Whether the yields the rankings promise are the yields settled candidates returned:
    every measure's skill, then predicted against realized per $1,000 by decile."""
    heading = "Rankings a trader can believe"
    frames = dict(inputs.ranking_reliability or {})
    skill = frames.pop("skill", None)
    if skill is None or skill.empty:
        return html.section(heading, html.not_enough_data("settled candidates"))
    return html.section(
        heading,
        html.paragraph(
            "Settled candidates ranked by each measure (outcomes known before the week's last "
            "session; yields per $1,000 at risk after costs). A measure validates when its "
            "top decile returned more than all candidates and its rank correlation with "
            "realized yield is positive."
        ),
        html.facts({"Baseline track ranks by": inputs.baseline_choice}),
        html.subsection("Skill of each ranking measure", _table(skill, "ranking skill")),
        *(
            html.subsection(
                RELIABILITY_TITLES.get(name, name),
                _table(frame, f"reliability of {name}", none_text="No settled candidates."),
            )
            for name, frame in frames.items()
        ),
    )


def render_weekly(inputs: WeeklyReportInputs) -> str:
    """The weekly report: the week at a glance, wins and losses by stock and by regime,
    confidence vs accuracy, how far the rankings' promised yields are believed, the
    feature-importance trend."""
    report = inputs.performance
    trades = report.trades if report is not None else _empty()
    pnl = trades.get("pnl", [])
    by_ticker, by_regime = _breakdown(report, "ticker"), _breakdown(report, "regime")
    span = f" ({report.start} to {report.end})" if report and report.start and report.end else ""
    return html.document(
        _title("weekly", inputs.key),
        [
            html.section(
                "The week's performance",
                _account_tiles(inputs.account),
                _performance_tiles(report, "This week"),
                html.image(plots.pnl_histogram(pnl), "P/L per closed trade"),
            ),
            html.section(
                "Wins and losses by stock and by regime",
                html.subsection(
                    "By stock",
                    html.image(
                        plots.bar_chart(
                            by_ticker, "ticker", "total_pnl", "P/L by stock", kind="dollars"
                        )
                        if "ticker" in by_ticker
                        else None,
                        "P/L by stock",
                    ),
                    _table(by_ticker, "by stock"),
                ),
                html.subsection(
                    "By regime",
                    html.image(
                        plots.bar_chart(
                            by_regime, "regime", "win_rate", "Win rate by regime", kind="percent"
                        )
                        if "regime" in by_regime
                        else None,
                        "Win rate by regime",
                    ),
                    _table(by_regime, "by regime"),
                ),
            ),
            _calibration(inputs.drift),
            _ranking_reliability(inputs),
            _feature_trend(inputs.feature_importance),
            _notes_section(
                _account_notes(inputs.account), report.notes if report else [], inputs.notes
            ),
        ],
        subtitle=f"Week {inputs.key}{span} · {_generated(inputs.generated_at)}",
    )


# ------------------------------------------------------------------------------ monthly
def _versus_benchmark(report: PerformanceReport | None, account: AccountView | None) -> Html:
    figures = _figures(report)
    symbol = figures.get("benchmark_symbol") or "benchmark"
    return html.section(
        "Performance vs benchmark",
        _account_tiles(account),
        html.tiles(
            [
                Tile("Total return", figures.get("total_return"), "percent"),
                Tile(f"{symbol} return", figures.get("benchmark_return"), "percent"),
                Tile("Excess return", figures.get("excess_return"), "percent"),
                Tile("Sharpe", figures.get("sharpe"), "ratio"),
                Tile(f"{symbol} Sharpe", figures.get("benchmark_sharpe"), "ratio"),
                Tile("Max drawdown", figures.get("max_drawdown"), "percent"),
                Tile(f"{symbol} max drawdown", figures.get("benchmark_max_drawdown"), "percent"),
            ]
        ),
        html.tiles(
            [
                Tile("Trades", figures.get("trades"), "count"),
                Tile("Win rate", figures.get("win_rate"), "percent"),
                Tile("Yield per $1,000", figures.get("yield_per_1000"), "dollars"),
                *_pnl_tiles(figures),
                Tile("Profit factor", figures.get("profit_factor"), "ratio"),
                Tile("Average days held", figures.get("avg_days_held"), "ratio"),
            ],
            "Trades",
        ),
        html.image(
            plots.equity_chart(_equity(report), benchmark_label=str(symbol)),
            f"Equity vs {symbol}",
        ),
    )


def _track_test(report: PerformanceReport | None) -> Html:
    test = dict(report.track_test) if report is not None else {}
    verdict = test.get("verdict")
    return html.section(
        "AI vs baseline (track test)",
        html.paragraph(verdict, "verdict") if verdict else html.not_enough_data("track test"),
        html.tiles(
            [
                Tile("AI trades", test.get("ai_trades"), "count"),
                Tile("Baseline trades", test.get("baseline_trades"), "count"),
                Tile("Win-rate difference", test.get("win_rate_diff"), "percent"),
                Tile("p (win rate)", test.get("win_rate_p"), "score"),
                Tile("Yield difference per $1,000", test.get("yield_diff"), "dollars"),
                Tile("p (yield)", test.get("yield_p"), "score"),
            ]
        ),
        html.paragraph(f"Method: {test['method']}", "more") if test.get("method") else Html(""),
        html.subsection("By track", _table(_breakdown(report, "track"), "by track")),
    )


def _accuracy_trend(frame: pd.DataFrame) -> Html:
    chart = plots.line_chart(
        frame if not frame.empty else None,
        "period",
        "accuracy",
        "regime",
        "Model accuracy by regime",
        kind="percent",
    )
    return html.section(
        "Model accuracy by regime",
        html.image(chart, "Model accuracy by regime"),
        _table(
            _frame(frame, ["period", "regime", "n", "accuracy", "hit_rate", "mean_predicted"]),
            "accuracy by regime",
        ),
    )


def _drift_section(drift: DriftReport | None) -> Html:
    if drift is None:
        return html.section("Model drift", html.not_enough_data("drift report"))
    return html.section(
        "Model drift",
        html.facts(
            {
                "Status": html.badge(drift.status),
                "Model version": drift.figures.get("model_version") or None,
            }
        ),
        html.notes(drift.reasons) or html.paragraph("No reasons given.", "missing"),
        _drift_tiles(drift.figures),
        html.subsection(
            "Feature drift (PSI)",
            _table(_frame(drift.feature_psi), "feature drift (PSI)", max_rows=15),
        ),
    )


def _reliability(inputs: MonthlyReportInputs) -> Html:
    rate = _success_rate(inputs.runs)
    return html.section(
        "System reliability",
        html.tiles([Tile("Runs succeeded", rate, "percent")]),
        _table(
            _frame(inputs.runs, ["job", "runs", "succeeded", "failed", "success_rate"])
            if inputs.runs is not None
            else None,
            "runs per job",
            none_text="No runs this month.",
        ),
        html.subsection(
            "Failures",
            _table(
                _frame(inputs.run_failures, ["time", "job", "run_id", "message"])
                if inputs.run_failures is not None
                else None,
                "run failures",
                none_text="No run failed this month.",
            ),
        ),
    )


def _success_rate(runs: pd.DataFrame | None) -> float | None:
    if runs is None or runs.empty or not {"runs", "succeeded"} <= set(runs.columns):
        return None
    total = pd.to_numeric(runs["runs"], errors="coerce").sum()
    if not total:
        return None
    return float(pd.to_numeric(runs["succeeded"], errors="coerce").sum() / total)


def render_monthly(inputs: MonthlyReportInputs) -> str:
    """The monthly report: performance vs the benchmark and the baseline, the month by
    month record, model accuracy by regime, drift, system reliability."""
    report = inputs.performance
    return html.document(
        _title("monthly", inputs.key),
        [
            _versus_benchmark(report, inputs.account),
            _track_test(report),
            html.section("By month", _table(_breakdown(report, "month"), "by month")),
            _accuracy_trend(inputs.accuracy_by_regime),
            _drift_section(inputs.drift),
            _reliability(inputs),
            _notes_section(
                _account_notes(inputs.account), report.notes if report else [], inputs.notes
            ),
        ],
        subtitle=f"Month {inputs.key} · {_generated(inputs.generated_at)}",
    )


# ------------------------------------------------------------------------------ metadata
def _json_safe(value: object) -> object:
    if html.is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    return str(value)


_PERFORMANCE_KEYS = (
    "trades",
    "win_rate",
    "yield_per_1000",
    "total_pnl",
    "max_drawdown",
    "sharpe",
    "total_return",
)


def key_figures(report) -> dict:
    """The handful of numbers worth putting in Dagster metadata: plain JSON values, ``None``
    where not computable. Takes any of the report inputs, a PerformanceReport or a
    DriftReport."""
    if isinstance(report, PerformanceReport):
        out = {k: report.figures.get(k) for k in _PERFORMANCE_KEYS}
    elif isinstance(report, DriftReport):
        out = {
            "drift_status": report.status,
            **{k: report.figures.get(k) for k in ("ece_candidates", "brier_candidates")},
            "hit_rate_high_confidence": report.figures.get("hit_rate_high_confidence"),
        }
    elif isinstance(report, DailyReportInputs):
        figures = _figures(report.performance)
        out = {
            "session": report.session,
            **{k: figures.get(k) for k in _PERFORMANCE_KEYS},
            "session_pnl": _figures(report.session_performance).get("total_pnl"),
            "open_positions": None if report.open_positions is None else len(report.open_positions),
            "orders": None if report.orders is None else len(report.orders),
            "health": _worst_health(report.health),
            "drift_status": report.drift.status if report.drift else None,
        }
    elif isinstance(report, WeeklyReportInputs):
        figures, drift = _figures(report.performance), _figures(report.drift)
        out = {
            "week": report.week,
            **{k: figures.get(k) for k in _PERFORMANCE_KEYS},
            "ece_candidates": drift.get("ece_candidates"),
            "brier_candidates": drift.get("brier_candidates"),
            "drift_status": report.drift.status if report.drift else None,
            "baseline_ranked_by": report.baseline_choice,
        }
    elif isinstance(report, MonthlyReportInputs):
        figures = _figures(report.performance)
        track = report.performance.track_test if report.performance else {}
        out = {
            "month": report.month,
            **{
                k: figures.get(k)
                for k in (
                    "total_return",
                    "benchmark_return",
                    "excess_return",
                    "sharpe",
                    "benchmark_sharpe",
                    "max_drawdown",
                    "win_rate",
                    "total_pnl",
                )
            },
            "track_verdict": track.get("verdict"),
            "drift_status": report.drift.status if report.drift else None,
            "run_success_rate": _success_rate(report.runs),
        }
    else:
        raise TypeError(
            f"key_figures: cannot summarize a {type(report).__name__}; expected report inputs, "
            "a PerformanceReport or a DriftReport"
        )
    if isinstance(report, DailyReportInputs | WeeklyReportInputs | MonthlyReportInputs):
        out |= _account_figures(report.account)
    return {key: _json_safe(value) for key, value in out.items()}


ACCOUNT_KEYS = ("account_value", "cash", "positions_value", "realized_pnl", "unrealized_pnl")


def _account_figures(account: AccountView | None) -> dict:
    """The account's figures under names of their own: ``account_total_pnl`` is since the
    start, where a report's ``total_pnl`` is its period's."""
    if account is None:
        return dict.fromkeys(
            ("account_as_of", *ACCOUNT_KEYS, "account_total_pnl", "account_max_drawdown")
        )
    return {
        "account_as_of": account.as_of,
        **{k: getattr(account, k) for k in ACCOUNT_KEYS},
        "account_total_pnl": account.total_pnl,
        "account_max_drawdown": account.max_drawdown,
    }


# ------------------------------------------------------------------------------ files
def report_path(root: Path | str, period: str, key: str) -> Path:
    """``<root>/reports/<period>/<key>.html``; ``period`` and ``key`` must be plain names
    (letters, digits, ``-``, ``_``, ``.``), so a key can never point outside the folder."""
    for name, value in (("period", period), ("key", key)):
        if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
            raise ValueError(
                f"write_report: {name} {value!r} is not a plain file name "
                "(letters, digits, '-', '_', '.'; no '..' or '/')"
            )
    return Path(root) / "reports" / period / f"{key}.html"


def write_report(content: str, root: Path | str, period: str, key: str) -> Path:
    """Write the page to ``<root>/reports/<period>/<key>.html`` through a temporary file in
    the same folder and a rename, so a reader never sees half a report."""
    target = report_path(root, period, key)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target
