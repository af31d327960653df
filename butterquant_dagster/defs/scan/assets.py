"""The daily pre-scan as assets: signals per ticker, every priced butterfly with its score,
the skips, the rankings, and what every candidate returned at expiry.

Thin: sessions in, core.scan functions called once per session, frames staged and published
only when the candidate invariants hold.
"""

import datetime as dt

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetOut,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    multi_asset,
)

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.validation import QualityPolicy, QualityReport
from butterquant_dagster.core.ml.features import KEY_COLUMNS
from butterquant_dagster.core.scan import ev_reliability
from butterquant_dagster.core.scan.invariants import CANDIDATE_RULES, listed_strikes
from butterquant_dagster.core.scan.outcomes import OutcomeError, sample_for_outcomes, settle
from butterquant_dagster.core.scan.pipeline import scan_session
from butterquant_dagster.core.scan.score import RANKED_BUTTERFLY, rank, recommend
from butterquant_dagster.core.scan.signals import ticker_signals
from butterquant_dagster.core.scan.surface import surface_summary
from butterquant_dagster.defs.freshness import freshness_policy
from butterquant_dagster.defs.metadata import dates_as_dates
from butterquant_dagster.defs.partitions import session_asset, session_partitions, trailing_keys
from butterquant_dagster.defs.quality_checks import check_specs
from butterquant_dagster.defs.staging import (
    CheckedPartitions,
    finish,
    read_upstream,
    report_progress,
    run_sessions,
)
from butterquant_dagster.resources import (
    SCAN_LOOKBACK_SESSIONS,
    LakeResource,
    MarketDataResource,
    ScanResource,
)

OWNER = "team:quant-research"
KINDS = {"python", "parquet"}
TOP_SHOWN = 20
RANKING_COLUMNS = [
    "rank",
    "ticker",
    "score",
    "strategy",
    "recommendation",
    "confidence",
    "ml_success_prob",
    "ml_expected_roi",
    "date",
    "expiry",
    "lower",
    "center",
    "upper",
    "is_credit_strategy",
    "tags",
    "ticker_rank",
    "structure",
    "dte",
    "width",
    "spot",
    "debit_mid",
    "debit_natural",
    "cost",
    "max_profit",
    "max_loss",
    "capital_at_risk",
    "breakeven_low",
    "breakeven_high",
    "profit_zone_width",
    "reward_risk",
    "net_delta",
    "net_gamma",
    "net_vega",
    "net_theta",
    "iv_center",
    "iv_atm",
    "vol_forecast",
    "forecast_price",
    "prob_profit_rn",
    "prob_profit_forecast",
    "ev_per_1000",
    ev_reliability.EV_CALIBRATED,
    "expected_move",
    "spread_pct",
    "min_volume",
    "min_open_interest",
    "risk_level",
    "stop_loss_pnl",
    "take_profit_pnl",
    "model_version",
    "ranked_by",
    "ranking_value",
    ev_reliability.BASELINE_COLUMN,
    "session",
]


TOP_SHOWN_COLUMNS = [
    *RANKED_BUTTERFLY,
    "cost",
    "max_loss",
    "score",
    "ev_per_1000",
    ev_reliability.EV_CALIBRATED,
    "ml_expected_roi",
    "recommendation",
]


def reliability_metadata(settled: pd.DataFrame, session: dt.date) -> dict:
    """Markdown tables of how each ranking measure did on outcomes settled before
    ``session``: the skill of each, predicted vs realized per $1,000 by decile."""
    frames = ev_reliability.report_frames(settled)
    heading = f"Outcomes with expiry before {session}; yields per $1,000 at risk.\n\n"
    # One format per column: counts as whole numbers, yields in dollars, rates to 3 places.
    skill_formats = ("", ".0f", ".3f", ".0f", ".0f", "", "")
    decile_formats = (".0f", ".0f", ".0f", ".0f", ".3f")
    out = {
        "ranking_skill": MetadataValue.md(
            heading + frames.pop("skill").to_markdown(index=False, floatfmt=skill_formats)
        )
    }
    for name, table in frames.items():
        text = (
            table.to_markdown(index=False, floatfmt=decile_formats) if len(table) else "no outcomes"
        )
        out[f"reliability_{name}"] = MetadataValue.md(heading + text)
    return out


# The bars a scan reads: the signals' lookback up to the scanned session.
history = TimeWindowPartitionMapping(
    start_offset=-(SCAN_LOOKBACK_SESSIONS - 1), allow_nonexistent_upstream_partitions=True
)


@multi_asset(
    name="scan",
    partitions_def=session_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    outs={
        "butterfly_candidates": AssetOut(
            group_name="scan",
            owners=[OWNER],
            kinds=KINDS,
            io_manager_key="lake_io_manager",
            description=(
                "Every listed call, put and iron butterfly of every ticker in the expiry "
                "window, priced from its legs' quotes (mid and natural, IB fees), with "
                "payoff, greeks, probabilities, the rule score and expected value."
            ),
        ),
        "iv_surface": AssetOut(
            group_name="scan",
            owners=[OWNER],
            kinds=KINDS,
            io_manager_key="lake_io_manager",
            description=(
                "Per ticker and session: 30-day ATM implied vol, near and far ATM vol, "
                "term slope and 25-delta skew; the history behind IV rank features."
            ),
        ),
        "scan_skips": AssetOut(
            group_name="scan",
            owners=[OWNER],
            kinds=KINDS,
            io_manager_key="lake_io_manager",
            description=(
                "Tickers (or candidates) the scan skipped and why: no chain, no expiry in "
                "the window, a one-sided quote, too little price history."
            ),
        ),
    },
    deps=[AssetDep("daily_bars", partition_mapping=history), "option_chains"],
    check_specs=check_specs("butterfly_candidates", CANDIDATE_RULES),
)
def scan(
    context: AssetExecutionContext,
    market: MarketDataResource,
    scan: ScanResource,
    lake: LakeResource,
):
    sessions = run_sessions(context, market.now())
    store = lake.lake()
    report = QualityReport(CANDIDATE_RULES, QualityPolicy())
    staged = CheckedPartitions(store, "butterfly_candidates")
    staged_skips = CheckedPartitions(store, "scan_skips")
    staged_surface = CheckedPartitions(store, "iv_surface")
    rows = skipped = 0
    try:
        # One read of the bars the whole run needs; ticker_signals ignores later rows.
        window = trailing_keys(sessions[0], scan.lookback_sessions)
        window += [d.isoformat() for d in sessions if d.isoformat() > window[-1]]
        bars = store.read_existing("daily_bars", window)
        bar_day = pd.to_datetime(bars["session"]) if len(bars) else pd.Series(dtype=object)
        for done, session in enumerate(sessions, start=1):
            key = session.isoformat()
            chain = read_upstream(store, report, "option_chains", session)
            if chain is None:  # refused by the market (or never published): not scanned
                continue
            first = trailing_keys(session, scan.lookback_sessions)[0]
            history = bars.loc[(bar_day >= first) & (bar_day <= key)] if len(bars) else bars
            signals, signal_skips = ticker_signals(
                history,
                session,
                lookback=scan.lookback_sessions,
                min_history=scan.min_history_sessions,
            )
            scored, skips = scan_session(
                chain, signals, signal_skips, session, scan.candidate_rules()
            )
            ok = report.check(scored, session, expected=[], listed=listed_strikes(chain))
            staged.write(key, scored, ok)
            staged_skips.write(key, skips, ok)
            staged_surface.write(key, surface_summary(chain, session), ok)
            rows += len(scored) if ok else 0
            skipped += skips["symbol"].nunique() if ok else 0
            report_progress(context, "scan", done, len(sessions), session)
    except Exception:
        staged.discard()
        staged_skips.discard()
        staged_surface.discard()
        raise
    metadata = {
        "sessions": len(sessions),
        "candidates": rows,
        "candidates_per_session": round(rows / len(sessions)),
    }
    yield from finish(
        context,
        "butterfly_candidates",
        report,
        staged,
        metadata,
        companions={
            "scan_skips": (staged_skips, {"tickers_with_skips": skipped}),
            "iv_surface": (staged_surface, {"sessions": len(sessions)}),
        },
    )


@session_asset(
    name="scan_rankings",
    freshness_policy=freshness_policy("scan_rankings"),
    group_name="scan",
    owners=[OWNER],
    kinds=KINDS,
    deps=["butterfly_candidates", "ai_probabilities"],
    description=(
        "The best candidates per ticker and overall: ranked by the champion model's "
        "expected yield when there is one, else by the rule measure the baseline track "
        "trades by (chosen on outcomes settled before the session; score breaks ties), "
        "with the original scanner's fields. The rule EV per $1,000 stands beside what "
        "settled candidates with that EV realized (ev_calibrated_per_1000), and a BUY "
        "needs that realized figure above 0; the metadata shows predicted vs realized "
        "yield per $1,000 by decile."
    ),
)
def scan_rankings(context: AssetExecutionContext, scan: ScanResource, lake: LakeResource) -> Output:
    store = lake.lake()
    frames = []
    with_model = set(store.partitions("ai_probabilities"))
    sessions = [dt.date.fromisoformat(k) for k in context.partition_keys]
    settled = ev_reliability.settled_candidates(store, sessions[0], sessions[-1])
    choices = ev_reliability.choices_by_session(settled, sessions)
    curves = ev_reliability.curves_by_session(settled, sessions)
    for key, session in zip(context.partition_keys, sessions, strict=True):
        candidates = store.read("butterfly_candidates", [key])
        if key in with_model:
            estimates = store.read("ai_probabilities", [key])
            candidates = candidates.merge(
                estimates[[*KEY_COLUMNS, "ml_success_prob", "ml_expected_roi", "model_version"]],
                on=KEY_COLUMNS,
                how="left",
            )
        measure = choices[session][0].measure
        ranked = rank(candidates, per_ticker=scan.per_ticker, rule_measure=measure)
        ranked[ev_reliability.BASELINE_COLUMN] = measure
        ranked = ev_reliability.with_calibrated_ev(ranked, curves[session])
        ranked["recommendation"] = recommend(
            ranked["score"], ranked[ev_reliability.EV_CALIBRATED].fillna(ranked["ev_per_1000"])
        )
        frames.append(ranked[RANKING_COLUMNS])
    rankings = pd.concat(frames, ignore_index=True)
    latest = frames[-1]
    shown = ev_reliability.with_per_1000(latest.head(TOP_SHOWN)[TOP_SHOWN_COLUMNS])
    choice, outcomes = choices[sessions[-1]]
    return Output(
        rankings,
        metadata={
            "rows": len(rankings),
            "session_shown": context.partition_keys[-1],
            "ranked_by": str(latest["ranked_by"].iloc[0]) if len(latest) else "none",
            "baseline_ranked_by": choice.measure,
            "baseline_measure_validated": choice.validated,
            "baseline_measure_why": choice.why,
            "settled_candidates_judged": outcomes,
            "top_20": MetadataValue.md(
                dates_as_dates(shown).to_markdown(index=False, floatfmt=".2f")
            ),
            **reliability_metadata(
                ev_reliability.known_before(settled, sessions[-1]), sessions[-1]
            ),
        },
    )


@session_asset(
    name="candidate_outcomes",
    group_name="scan",
    owners=[OWNER],
    kinds=KINDS,
    deps=[
        "butterfly_candidates",
        AssetDep(
            "daily_bars",
            partition_mapping=TimeWindowPartitionMapping(
                start_offset=0, end_offset=45, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    description=(
        "What each candidate of the entry session returned held to expiry, settled at "
        "intrinsic value on the expiry close after spread and fees: P/L, ROI, yield "
        "per $1,000, win. The labels of the probability model."
    ),
)
def candidate_outcomes(
    context: AssetExecutionContext,
    market: MarketDataResource,
    scan: ScanResource,
    lake: LakeResource,
) -> Output:
    store = lake.lake()
    latest = calendar.latest_completed_session(market.now())
    available = set(store.partitions("daily_bars"))
    frames = []
    for key in context.partition_keys:
        candidates = store.read("butterfly_candidates", [key])
        session = dt.date.fromisoformat(key)
        sample = sample_for_outcomes(
            candidates, scan.max_outcome_rows, seed=int(session.strftime("%Y%m%d"))
        )
        expiries = sorted({pd.Timestamp(e).date() for e in sample["expiry"]})
        pending = [e for e in expiries if e > latest or e.isoformat() not in available]
        if pending:
            raise Failure(
                f"candidate_outcomes for {key} needs the closes of its expiries up to "
                f"{expiries[-1]}; {pending[0]} has not passed in the data yet (latest "
                f"completed session {latest}, latest daily_bars partition "
                f"{max(available) if available else 'none'}). No look-ahead: materialize "
                "this partition once every expiry has closed."
            )
        closes = (
            store.read("daily_bars", [e.isoformat() for e in expiries])
            if expiries
            else pd.DataFrame({"session": [], "symbol": [], "close": []})
        )
        try:
            frames.append(settle(sample, closes[["session", "symbol", "close"]]))
        except OutcomeError as exc:
            raise Failure(f"candidate_outcomes for {key}: {exc}") from exc
        report_progress(
            context, "candidate_outcomes", len(frames), len(context.partition_keys), session
        )
    outcomes = pd.concat(frames, ignore_index=True)
    return Output(
        outcomes,
        metadata={
            "rows": len(outcomes),
            "win_rate": float(outcomes["win"].mean()) if len(outcomes) else 0.0,
            "mean_yield_per_1000": float(outcomes["yield_per_1000"].mean())
            if len(outcomes)
            else 0.0,
        },
    )
