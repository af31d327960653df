"""The butterfly strategy backtested walk-forward on the production money path.

Every traded session goes through exactly what a live paper session goes through, with
the same functions: ``portfolio.plan_session`` decides on the *previous* session's
rankings, candidates and chain (as the ``target_orders`` asset does),
``execution.execute_session`` sends the orders to a ``PaperBroker`` (its fill model and IB
fees) and records them in a ``Ledger``, and ``marking.close_session`` settles and marks at
the close. The ledger and the broker live in DuckDB files in a scratch directory that is
thrown away afterwards, so a backtest never touches the real ledger.

What differs from production is only where the AI probabilities come from: instead of the
champion (which may have learned outcomes from after the backtested session), each
walk-forward step trains its own models on what was known before it
(``core.backtest.walk_forward``) and the rankings are rebuilt with them by
``core.scan.score.rank``. The rankings stored in the lake are deliberately not read.

The window's first session only decides: its close is the starting equity, and each later
session trades on the decisions of the one before.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar, settings
from butterquant_dagster.core.backtest.inputs import benchmark_curve
from butterquant_dagster.core.backtest.metrics import backtest_metrics
from butterquant_dagster.core.backtest.result import BacktestResult, equity_curve
from butterquant_dagster.core.backtest.walk_forward import (
    STEP_COLUMNS,
    LookAheadError,
    StepModel,
    TrainingPolicy,
    plan_steps,
    train_step,
)
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.ml.features import KEY_COLUMNS
from butterquant_dagster.core.options.costs import FILL_SHARE, cost_basis
from butterquant_dagster.core.scan.ev_reliability import EvCurve, with_calibrated_ev
from butterquant_dagster.core.scan.score import rank
from butterquant_dagster.core.storage import duckdb_files
from butterquant_dagster.core.trading.execution import collect_fills, execute_session, session_start
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.marking import close_session
from butterquant_dagster.core.trading.portfolio import plan_session
from butterquant_dagster.core.trading.rules import PortfolioRules, RiskLimits

ESTIMATE_COLUMNS = ("ml_success_prob", "ml_expected_roi", "model_version")
DECISION_LEAD = dt.timedelta(minutes=15)  # orders go out 15 minutes before the close
SESSION_COLUMNS = [
    "session",
    "decided_on",
    "step",
    "model_version",
    "model_cutoff",
    "ai_scored",
    "targets",
    "sent",
    "blocked",
    "rejected",
    "fills",
    "equity",
]


class ButterflyInputs(Protocol):
    """What the engine reads (``core.backtest.inputs.LakeInputs`` reads it from the lake)."""

    tickers: list[str]

    def candidates(self, session: dt.date) -> pd.DataFrame: ...
    def features(self, session: dt.date) -> pd.DataFrame | None: ...
    def chain(self, session: dt.date) -> pd.DataFrame | None: ...
    def close(self, symbol: str, session: dt.date) -> float: ...
    def bars(self, sessions: list[dt.date]) -> pd.DataFrame: ...
    def sectors(self) -> dict[str, str]: ...
    def ev_curve(self, session: dt.date) -> EvCurve | None: ...
    def labelled_history(
        self, before: dt.date, *, max_rows: int, seed: int
    ) -> tuple[pd.DataFrame, pd.DataFrame]: ...


@dataclass(frozen=True)
class ButterflySettings:
    initial_capital: float = settings.default("BUTTERQUANT_INITIAL_CAPITAL")
    step_sessions: int = 21
    per_ticker: int = 3  # candidates kept per ticker in the rankings, as the scan keeps
    rules: PortfolioRules = field(default_factory=PortfolioRules)
    limits: RiskLimits = field(default_factory=RiskLimits)
    training: TrainingPolicy = field(default_factory=TrainingPolicy)
    paper_slippage: float = FILL_SHARE


def _backtest_limits(limits: RiskLimits) -> RiskLimits:
    """The risk limits without the live switches: a backtest never stops for the real
    kill switch, and always trades on paper."""
    return replace(
        limits,
        kill_switch=False,
        kill_file=None,
        send_orders=True,
        live_trading=False,
        live_account="",
    )


def rankings_for(
    candidates: pd.DataFrame,
    features: pd.DataFrame | None,
    model: StepModel | None,
    *,
    decided_on: dt.date,
    traded: dt.date,
    per_ticker: int,
) -> tuple[pd.DataFrame, int]:
    """The session's rankings rebuilt with the step's model (rule-ranked without one), and
    how many candidates the model scored."""
    # Estimates come from the step's model only, never from columns already there.
    scored = candidates.drop(columns=[c for c in ESTIMATE_COLUMNS if c in candidates.columns])
    count = 0
    if model is not None and features is not None and len(candidates):
        estimates = model.score(features, decided_on=decided_on, traded=traded)
        scored = scored.merge(estimates, on=KEY_COLUMNS, how="left")
        count = int(scored["ml_success_prob"].notna().sum())
    return rank(scored, per_ticker=per_ticker), count


class _Clock:
    """The paper broker's notion of now: each session's decision time in turn."""

    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def run_butterfly(
    inputs: ButterflyInputs,
    sessions: list[dt.date],
    settings: ButterflySettings | None = None,
    *,
    scratch: Path | None = None,
) -> BacktestResult:
    """Backtest the butterfly portfolio over ``sessions`` (consecutive NYSE sessions)."""
    settings = settings or ButterflySettings()
    sessions = list(sessions)
    tickers = list(inputs.tickers)
    notes: list[str] = []
    if not sessions:
        return _empty(tickers, settings, ["the window holds no session"])
    steps = plan_steps(sessions[1:], settings.step_sessions)
    limits = _backtest_limits(settings.limits)
    sectors = inputs.sectors()
    with tempfile.TemporaryDirectory(prefix="butterquant-backtest-", dir=scratch) as tmp:
        ledger = Ledger(Path(tmp) / "ledger.duckdb", settings.initial_capital)
        clock = _Clock(calendar.session_close(sessions[0]) - DECISION_LEAD)
        broker = PaperBroker(
            Path(tmp) / "paper_broker.duckdb", inputs.chain, clock, slippage=settings.paper_slippage
        )
        # The ledger and the broker open their file afresh for every call (right for files
        # that processes share); holding one connection for the run lets those thousands of
        # calls reuse the open database instead of reopening it, about ten times faster.
        keep_open = [duckdb_files.connect(path) for path in (ledger.path, broker.path)]
        try:
            _close(ledger, sessions[0], inputs)
            desk = _Desk(inputs, ledger, broker, clock, sectors, settings, limits)
            records, session_rows = _walk_forward(desk, sessions, steps)
            journal = ledger.journal()
            equity = ledger.equity()
            fills = ledger.fills()
            orders = ledger.orders()
        finally:
            for connection in keep_open:
                connection.close()
    steps_frame = pd.DataFrame(records, columns=STEP_COLUMNS)
    notes += [f"step {r['step']}: {r['note']}" for r in records if not r["model_trained"]]
    if desk.without_features:
        days = ", ".join(d.isoformat() for d in desk.without_features[:5])
        notes.append(
            f"no candidate_features for {len(desk.without_features)} decision session(s) "
            f"({days}): the AI track had no estimates for their trades"
        )
    if len(sessions) < 2:
        notes.append("one session only: nothing can be traded (the first session only decides)")
    benchmark = _benchmark(inputs, sessions, settings.initial_capital)
    if len(equity) != len(sessions):
        raise RuntimeError(
            f"the backtest ledger marked {len(equity)} sessions of the {len(sessions)} traded"
        )
    exposed = equity["open_positions"].to_numpy() > 0
    frame = equity_curve(
        sessions,
        equity["equity"],
        exposed,
        benchmark,
        extra={
            "cash": equity["cash"].to_numpy(float),
            "positions_value": equity["positions_value"].to_numpy(float),
            "open_positions": equity["open_positions"].to_numpy(int),
            "capital_at_risk": equity["capital_at_risk"].to_numpy(float),
        },
    )
    return BacktestResult(
        strategy="butterfly",
        start=sessions[0],
        end=sessions[-1],
        tickers=tickers,
        initial_capital=settings.initial_capital,
        equity=frame,
        trades=journal,
        fills=fills,
        metrics=backtest_metrics(frame["equity"], exposed, journal["pnl"], benchmark),
        steps=steps_frame,
        sessions=pd.DataFrame(session_rows, columns=SESSION_COLUMNS),
        orders=orders,
        notes=notes,
        cost_basis=cost_basis(settings.paper_slippage),
    )


@dataclass
class _Desk:
    """What every traded session works with: the inputs, the scratch ledger and broker."""

    inputs: ButterflyInputs
    ledger: Ledger
    broker: PaperBroker
    clock: _Clock
    sectors: dict[str, str]
    settings: ButterflySettings
    limits: RiskLimits
    without_features: list[dt.date] = field(default_factory=list)


def _walk_forward(desk: _Desk, sessions: list[dt.date], steps) -> tuple[list, list]:
    """Train each step's models, then trade its sessions; the step and session records."""
    training = desk.settings.training
    previous = dict(zip(sessions[1:], sessions[:-1], strict=True))
    records, session_rows = [], []
    for step in steps:
        model, record = train_step(
            step,
            lambda before: desk.inputs.labelled_history(
                before, max_rows=training.max_rows, seed=training.seed
            ),
            training,
        )
        records.append(record)
        for session in step.sessions:
            decided_on = previous[session]
            desk.clock.now = calendar.session_close(session) - DECISION_LEAD
            session_rows.append(_trade_session(desk, session, decided_on, step.index, model))
    return records, session_rows


def _trade_session(
    desk: _Desk, session: dt.date, decided_on: dt.date, step: int, model: StepModel | None
) -> dict:
    """One session: plan on the previous close, send, collect the fills, close out."""
    if model is not None and not model.label_cutoff < session:
        raise LookAheadError(
            f"session {session} would trade on a model that learned outcomes up to "
            f"{model.label_cutoff}"
        )
    candidates = desk.inputs.candidates(decided_on)
    features = desk.inputs.features(decided_on)
    if model is not None and features is None:
        desk.without_features.append(decided_on)
    rankings, scored = rankings_for(
        candidates,
        features,
        model,
        decided_on=decided_on,
        traded=session,
        per_ticker=desk.settings.per_ticker,
    )
    # The floor judges the rule EV as calibrated on outcomes settled before the decision,
    # as the production plan does.
    curve = desk.inputs.ev_curve(decided_on)
    targets, _marked, _passed = plan_session(
        session,
        desk.ledger.positions_at_start(session),
        desk.inputs.chain(decided_on),
        with_calibrated_ev(rankings, curve),
        with_calibrated_ev(candidates, curve),
        desk.sectors,
        desk.settings.rules,
        desk.ledger.unfilled_exits(session),
    )
    report = execute_session(
        session, targets, desk.ledger, desk.broker, desk.limits, desk.clock.now
    )
    collect_fills(desk.ledger, desk.broker, session_start(session), report.reconciliation)
    if report.refused:
        raise RuntimeError(f"backtest session {session}: {report.refused}")
    equity = _close(desk.ledger, session, desk.inputs)
    used = model is not None and scored > 0
    return {
        "session": session,
        "decided_on": decided_on,
        "step": step,
        "model_version": model.version if used else "none",
        "model_cutoff": model.label_cutoff if used else None,
        "ai_scored": scored,
        "targets": len(targets),
        "sent": len(report.sent),
        "blocked": len(report.blocked),
        "rejected": len(report.rejected),
        "fills": len(desk.ledger.fills(session)),
        "equity": equity["equity"],
    }


def _close(ledger: Ledger, session: dt.date, inputs: ButterflyInputs) -> dict:
    chain = inputs.chain(session)
    if chain is None:
        raise ValueError(f"option_chains of {session} is not in the lake: cannot mark the close")
    _marked, equity, _settled = close_session(ledger, session, chain, inputs.close)
    return equity


def _benchmark(inputs: ButterflyInputs, sessions: list[dt.date], capital: float) -> np.ndarray:
    return benchmark_curve(inputs.bars(sessions), sessions, capital)


def _empty(tickers: list[str], settings: ButterflySettings, notes: list[str]) -> BacktestResult:
    frame = equity_curve([], [], [])
    return BacktestResult(
        strategy="butterfly",
        start=None,
        end=None,
        tickers=tickers,
        initial_capital=settings.initial_capital,
        equity=frame,
        trades=pd.DataFrame(columns=["pnl"]),
        fills=pd.DataFrame(),
        metrics=backtest_metrics([], [], [], benchmark=[]),
        steps=pd.DataFrame(columns=STEP_COLUMNS),
        sessions=pd.DataFrame(columns=SESSION_COLUMNS),
        notes=notes,
    )
