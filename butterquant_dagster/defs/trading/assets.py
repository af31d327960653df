"""The trading steps of a session: plan, send, collect fills, mark, journal.

Each asset is one step and one partition (one session) per run, in session order: the
positions a session starts with are what the previous sessions left. Every step that writes
the ledger runs in the Dagster pool ``ledger`` (one at a time across runs). The domain lives
in ``core/trading``; this module moves frames and metadata.
"""

import datetime as dt

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    Failure,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
)

from butterquant_dagster.core import calendar, faults
from butterquant_dagster.core.scan import ev_reliability
from butterquant_dagster.core.trading.account import account_view
from butterquant_dagster.core.trading.execution import (
    Reconciliation,
    collect_fills,
    execute_session,
    order_outcomes,
    reconcile,
    session_start,
    sync_orders,
)
from butterquant_dagster.core.trading.journal import summary
from butterquant_dagster.core.trading.marking import close_session
from butterquant_dagster.core.trading.portfolio import TARGET_COLUMNS, entry_notes, plan_session
from butterquant_dagster.core.trading.vocabulary import WORKING_STATUSES, Intent
from butterquant_dagster.defs.metadata import figure, markdown_table
from butterquant_dagster.defs.partitions import session_of, session_partitions
from butterquant_dagster.defs.retries import TRANSIENT_RETRY, retry_only_if_transient
from butterquant_dagster.resources import LakeResource, MarketDataResource, TradingResource

OWNER = "team:trading"
KINDS = {"python", "duckdb"}
LEDGER_POOL = "ledger"
PREVIOUS_SESSION = TimeWindowPartitionMapping(
    start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
)


def one_session(context: AssetExecutionContext) -> dt.date:
    """Trading moves one session at a time: each starts from what the last one left."""
    keys = context.partition_keys
    if len(keys) != 1:
        raise Failure(
            f"trading steps run one session per run, in order; this run has {len(keys)} "
            f"({keys[0]}..{keys[-1]}). Use `butterquant execute --date D` for each session."
        )
    return session_of(keys[0])


def require_previous_marked(ledger, session: dt.date) -> None:
    """Refuse to plan a session while an earlier one with positions is not closed out."""
    marked = ledger.equity()
    if not len(marked):
        return
    latest = pd.Timestamp(marked["session"].max()).date()
    previous = calendar.previous_session(session)
    if latest < previous:
        raise Failure(
            f"cannot trade {session}: positions were last marked on {latest}; run the trading "
            f"steps of {calendar.sessions(calendar.next_session(latest), previous)[0]} first "
            "(sessions are traded in order)"
        )


def trading_asset(pool: str | None = LEDGER_POOL, **kwargs):
    """One step of a session's trading, stored in the lake, writing the ledger in the
    pool unless it only reads it."""
    return asset(
        partitions_def=session_partitions,
        io_manager_key="lake_io_manager",
        group_name="trading",
        owners=[OWNER],
        kinds=KINDS,
        pool=pool,
        **kwargs,
    )


@trading_asset(
    retry_policy=TRANSIENT_RETRY,
    name="target_orders",
    deps=[
        AssetDep("scan_rankings", partition_mapping=PREVIOUS_SESSION),
        AssetDep("butterfly_candidates", partition_mapping=PREVIOUS_SESSION),
        AssetDep("option_chains", partition_mapping=PREVIOUS_SESSION),
        "universe",
    ],
    description=(
        "Every order the session intends, with its reason: exits of the positions held at "
        "the start of the session (by the previous close's marks, after the ledger has "
        "caught up with the broker's fills), then entries into free slots from the "
        "previous session's rankings (AI and baseline tracks)."
    ),
)
def target_orders(
    context: AssetExecutionContext,
    lake: LakeResource,
    trading: TradingResource,
    market: MarketDataResource,
) -> Output:
    with retry_only_if_transient("target_orders"):
        session = one_session(context)
        decided_on = calendar.previous_session(session).isoformat()
        store = lake.lake()
        for table in ("scan_rankings", "butterfly_candidates", "option_chains"):
            if decided_on not in store.partitions(table):
                raise Failure(
                    f"target_orders for {session} decides on {decided_on}'s {table}, which is "
                    "not materialized; run the scan of that session first"
                )
        ledger = trading.ledger()
        require_previous_marked(ledger, session)
        # What the broker did since the ledger last asked (an earlier session's orders that
        # filled after its run ended) decides what is held: planning on a stale ledger would
        # open a second position in an underlying already bought.
        caught_up = Reconciliation()
        if len(ledger.working_before(session)):
            now = trading.decision_time(session, market.now())
            with trading.connect(store, lambda: now) as broker:
                caught_up = reconcile(ledger, broker, session)
        universe = store.read("universe")
        # The expected-yield floor judges the rule EV as calibrated on outcomes settled
        # before the decision, not the raw EV (whose top decile promises far too much).
        curve = ev_reliability.ev_curve_at(store, calendar.previous_session(session))
        rankings = ev_reliability.with_calibrated_ev(
            store.read("scan_rankings", [decided_on]), curve
        )
        candidates = ev_reliability.with_calibrated_ev(
            store.read("butterfly_candidates", [decided_on]), curve
        )
        targets, marked, passed = plan_session(
            session,
            ledger.positions_at_start(session),
            store.read("option_chains", [decided_on]),
            rankings,
            candidates,
            dict(zip(universe["symbol"], universe["sector"], strict=True)),
            trading.rules(),
            ledger.unfilled_exits(session),
        )
        notes = entry_notes(rankings, candidates, trading.rules())
        by_intent = targets.groupby(["intent", "track"]).size() if len(targets) else pd.Series()
        return Output(
            targets[TARGET_COLUMNS],
            metadata={
                "decided_on": decided_on,
                "fills_caught_up": len(caught_up.fills_added),
                "order_statuses_caught_up": len(caught_up.orders_added),
                "expected_yield_judged_on": (
                    f"the rule EV calibrated on {curve.rows} settled candidates"
                    if curve
                    else "the raw rule EV (too few settled candidates to calibrate it)"
                ),
                "ev_calibration": markdown_table(
                    curve.as_frame() if curve else pd.DataFrame(), limit=10
                ),
                "held_at_start": len(marked),
                "closes": int((targets["intent"] == Intent.CLOSE).sum()) if len(targets) else 0,
                "settlements": int((targets["intent"] == "settle").sum()) if len(targets) else 0,
                "opens": int((targets["intent"] == Intent.OPEN).sum()) if len(targets) else 0,
                "by_intent_and_track": MetadataValue.json(
                    {f"{i}/{t}": int(n) for (i, t), n in by_intent.items()}
                ),
                "passed_over": MetadataValue.json(
                    {
                        track: {k: int(v) for k, v in reasons.items()}
                        for track, reasons in passed.items()
                    }
                ),
                "targets": markdown_table(
                    targets,
                    ["intent", "track", "ticker", "structure", "quantity", "limit_price", "reason"],
                ),
                "entry_notes": MetadataValue.md("\n".join(f"- {n}" for n in notes) or "-"),
            },
        )


@trading_asset(
    retry_policy=TRANSIENT_RETRY,
    name="orders",
    deps=["target_orders"],
    check_specs=[
        AssetCheckSpec(
            "ledger_matches_broker",
            asset="orders",
            blocking=True,
            description=(
                "After reconciliation, every order and position in the ledger agrees with "
                "the broker; while they disagree nothing is sent and trading stops here."
            ),
        )
    ],
    description=(
        "The session's orders: reconciled with the broker first, then closes and entries "
        "sent once each (deterministic order_ref), each through the risk checks; blocked "
        "orders keep their reason."
    ),
)
def orders(
    context: AssetExecutionContext,
    lake: LakeResource,
    trading: TradingResource,
    market: MarketDataResource,
):
    with retry_only_if_transient("orders"):
        session = one_session(context)
        store = lake.lake()
        targets = store.read("target_orders", [session.isoformat()])
        ledger = trading.ledger()
        now = trading.decision_time(session, market.now())
        with trading.connect(store, lambda: now) as broker:
            report = execute_session(
                session,
                targets,
                ledger,
                broker,
                trading.limits(),
                now,
                faults.checkpoint,
                policy=trading.order_policy(),
                pause=trading.pause,
            )
        recorded = ledger.orders(session)
        yield Output(
            recorded,
            metadata={
                **report.summary(),
                "broker": broker.name,
                "order_sending": "on" if trading.send_orders else "off (BUTTERQUANT_SEND_ORDERS)",
                "decision_time": now.isoformat(),
                "blocked_reasons": MetadataValue.json(report.blocked),
                "rejected_reasons": MetadataValue.json(report.rejected),
                "orders": markdown_table(
                    recorded,
                    ["order_ref", "intent", "track", "ticker", "quantity", "limit_price", "status"],
                ),
            },
        )
        problems = report.reconciliation.problems()
        yield AssetCheckResult(
            check_name="ledger_matches_broker",
            passed=report.reconciliation.agrees,
            severity=AssetCheckSeverity.ERROR,
            description="; ".join(problems[:10]) or "ledger and broker agree",
            metadata={
                "orders_found_at_broker": len(report.reconciliation.orders_added),
                "fills_recorded": len(report.reconciliation.fills_added),
                "ghost_fills": len(report.reconciliation.ghost_fills),
                "missing_at_broker": len(report.reconciliation.missing_at_broker),
                "position_mismatches": len(report.reconciliation.position_mismatches),
            },
        )


@trading_asset(
    retry_policy=TRANSIENT_RETRY,
    name="fills",
    deps=["orders"],
    description=(
        "The session's executions from the broker, each recorded once in the ledger with "
        "the position and cash it moves; executions of orders we never sent are flagged."
    ),
)
def fills(
    context: AssetExecutionContext,
    lake: LakeResource,
    trading: TradingResource,
    market: MarketDataResource,
) -> Output:
    with retry_only_if_transient("fills"):
        session = one_session(context)
        store = lake.lake()
        ledger = trading.ledger()
        now = trading.close_time(session, market.now())
        report = Reconciliation()
        with trading.connect(store, lambda: now) as broker:
            collect_fills(ledger, broker, session_start(session), report, faults.checkpoint)
            sync_orders(ledger, broker, report)
        recorded = ledger.fills(session)
        ended = order_outcomes(ledger.orders(session))
        return Output(
            recorded,
            metadata={
                "new_fills": len(report.fills_added),
                "ghost_fills": len(report.ghost_fills),
                "fills": len(recorded),
                "commissions": float(recorded["commission"].sum()) if len(recorded) else 0.0,
                "open_orders": int(
                    ledger.orders(session)["status"].isin(list(WORKING_STATUSES)).sum()
                ),
                **{f"{intent}_fill_rate": figure(rate) for intent, rate in ended["rate"].items()},
                "unfilled_exits": markdown_table(
                    ended["unfilled_exits"], ["ticker", "structure", "status", "reason"]
                ),
            },
        )


@trading_asset(
    name="positions",
    deps=["fills", "option_chains", "daily_bars"],
    output_required=False,
    description=(
        "Open positions at the session's close: expired ones settled at intrinsic value, "
        "the rest marked at mid, with the account's cash, value and capital at risk."
    ),
)
def positions(context: AssetExecutionContext, lake: LakeResource, trading: TradingResource):
    session = one_session(context)
    store = lake.lake()
    key = session.isoformat()
    if key not in store.partitions("option_chains"):
        # Live, the run goes out before the close: the collect_fills sensor marks the
        # session once its closing chain is there.
        context.log.info(f"positions of {session} are marked at its close; no chain yet")
        return
    chain = store.read("option_chains", [key])

    def spot_at(symbol: str, day: dt.date) -> float:
        bars = store.read_existing("daily_bars", [day.isoformat()])
        close = bars.loc[bars["symbol"] == symbol, "close"]
        return float(close.iloc[0]) if len(close) else float("nan")

    ledger = trading.ledger()
    marked, equity, settled = close_session(ledger, session, chain, spot_at, faults.checkpoint)
    columns = [
        "position_id", "ticker", "sector", "structure", "track", "expiry", "lower", "center",
        "upper", "quantity", "entry_session", "entry_price", "mark", "unrealized_pnl",
        "market_value", "max_loss", "risk_level", "model_version", "ghost",
    ]  # fmt: skip
    snapshot = marked[columns].copy() if len(marked) else pd.DataFrame(columns=columns)
    snapshot.insert(0, "session", pd.Timestamp(session))
    yield Output(
        snapshot,
        metadata={
            **{k: round(float(v), 2) for k, v in equity.items()},
            "settled_at_expiry": len(settled),
            "positions": markdown_table(
                snapshot,
                [
                    "ticker",
                    "structure",
                    "track",
                    "quantity",
                    "entry_price",
                    "mark",
                    "unrealized_pnl",
                ],
            ),
        },
    )


@trading_asset(
    name="trade_journal",
    pool=None,  # reads the ledger only
    deps=["positions"],
    description=(
        "Positions closed in the session (entry and exit, P/L after fees, ROI, yield per "
        "$1,000, days held, exit reason, track, model and its probability at entry), with "
        "the whole journal's win rate, P/L and drawdown to date in the metadata."
    ),
)
def trade_journal(context: AssetExecutionContext, trading: TradingResource) -> Output:
    session = one_session(context)
    ledger = trading.ledger()
    journal = ledger.journal(through=session)
    account = account_view(ledger, session)
    closed = journal.loc[pd.to_datetime(journal["exit_session"]).dt.date == session]
    figures = summary(journal, account=account)
    metadata = {
        "closed_today": len(closed),
        "trades_to_date": figures["trades"],
        "win_rate": figure(figures.get("win_rate")),
        # The closed trades' P/L; the account's figures (as positions and the reports show
        # them) follow.
        "total_pnl": figure(figures.get("total_pnl")),
        "realized_pnl": figure(account.realized_pnl),
        "unrealized_pnl": figure(account.unrealized_pnl),
        "account_value": figure(account.account_value),
        "account_total_pnl": figure(account.total_pnl),
        "yield_per_1000": figure(figures.get("yield_per_1000")),
        "max_drawdown": figure(figures.get("max_drawdown")),
        "by_track": MetadataValue.json(figures.get("by_track", {})),
        "closed": markdown_table(
            closed, ["ticker", "structure", "track", "pnl", "yield_per_1000", "exit_reason"]
        ),
    }
    closed = closed.reset_index(drop=True)
    closed.insert(0, "session", pd.Timestamp(session))
    return Output(closed, metadata=metadata)
