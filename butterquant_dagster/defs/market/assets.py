"""The market snapshot as assets: universe, daily bars, option chains (and, for the synthetic
market, the hidden truth the regime detector will be graded against).

The assets are thin: they turn partition keys into sessions, ask the configured source for
frames, run core.validation over them, stage them in the lake and publish only what passed.
"""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Output,
    asset,
)

from butterquant_dagster.core.market.schemas import (
    DAILY_BARS,
    MARKET_TRUTH,
    OPTION_CHAINS,
    UNIVERSE,
    empty,
)
from butterquant_dagster.core.market.validation import BAR_RULES, CHAIN_RULES, QualityReport
from butterquant_dagster.defs.freshness import freshness_policy
from butterquant_dagster.defs.metadata import column_schema
from butterquant_dagster.defs.partitions import session_asset
from butterquant_dagster.defs.quality_checks import check_specs
from butterquant_dagster.defs.retries import TRANSIENT_RETRY, retry_only_if_transient
from butterquant_dagster.defs.staging import finish, run_metadata, run_sessions, stage_checked
from butterquant_dagster.resources import LakeResource, MarketDataResource

OWNER = "team:market-data"
KINDS = {"python", "parquet"}


@asset(
    group_name="market",
    owners=[OWNER],
    kinds={"python", "parquet"},
    io_manager_key="lake_io_manager",
    metadata=column_schema(UNIVERSE),
    description=(
        "The tickers the system scans: symbol, name, sector. The packaged S&P 500 list or a "
        "universe file, cut to the configured size or symbols (generated tickers extend it "
        "for the synthetic market)."
    ),
)
def universe(context: AssetExecutionContext, market: MarketDataResource) -> Output:
    frame = market.universe()
    return Output(
        frame,
        metadata={
            "tickers": len(frame),
            "generated_tickers": int(frame["generated"].sum()),
            "sectors": int(frame["sector"].nunique()),
            "first_tickers": ", ".join(frame["symbol"].head(10)),
        },
    )


@session_asset(
    retry_policy=TRANSIENT_RETRY,
    name="daily_bars",
    freshness_policy=freshness_policy("daily_bars"),
    metadata=column_schema(DAILY_BARS),
    group_name="market",
    owners=[OWNER],
    kinds=KINDS,
    check_specs=check_specs("daily_bars", BAR_RULES),
    description=(
        "Daily OHLCV bars of every universe ticker for the session, with the previous "
        "close. One Parquet file per session; published only when every check passes."
    ),
)
def daily_bars(
    context: AssetExecutionContext,
    universe: pd.DataFrame,
    market: MarketDataResource,
    lake: LakeResource,
):
    with retry_only_if_transient("daily_bars"):
        sessions = run_sessions(context, market.now())
        source = market.market(universe)
        frame = source.bars(sessions)
        labels = pd.to_datetime(frame["session"]).dt.date
        expected = universe["symbol"].astype(str).tolist()
        report = QualityReport(BAR_RULES, market.quality_policy())
        by_session = {day: part for day, part in frame.groupby(labels, sort=False)}
        stray = frame.loc[~labels.isin(sessions)]
        if not stray.empty:  # rows dated outside the run's sessions: stale or look-ahead
            report.check(stray, sessions[0], expected=[])

        def produce(session):
            part = by_session.get(session, empty(DAILY_BARS)).reset_index(drop=True)
            return part, expected

        staged, rows = stage_checked(context, lake, "daily_bars", report, sessions, produce)
        metadata = {
            **run_metadata(sessions, source),
            "rows": rows,
            "tickers": int(frame["symbol"].nunique()),
        }
        yield from finish(context, "daily_bars", report, staged, metadata)


@session_asset(
    retry_policy=TRANSIENT_RETRY,
    name="option_chains",
    freshness_policy=freshness_policy("option_chains"),
    metadata=column_schema(OPTION_CHAINS),
    group_name="market",
    owners=[OWNER],
    kinds=KINDS,
    check_specs=check_specs("option_chains", CHAIN_RULES),
    description=(
        "Closing option chains of every universe ticker for the session: every listed "
        "expiry out to ~90 days, bid/ask, implied vol and greeks per contract. Modelled "
        "chains say so in `modelled` and `source`."
    ),
)
def option_chains(
    context: AssetExecutionContext,
    universe: pd.DataFrame,
    daily_bars: pd.DataFrame,
    market: MarketDataResource,
    lake: LakeResource,
):
    with retry_only_if_transient("option_chains"):
        sessions = run_sessions(context, market.now())
        source = market.market(universe)
        bar_labels = pd.to_datetime(daily_bars["session"]).dt.date
        tickers_with_bars = {
            day: part["symbol"].astype(str).tolist()
            for day, part in daily_bars.groupby(bar_labels, sort=False)
        }
        report = QualityReport(CHAIN_RULES, market.quality_policy())

        def produce(session):
            return source.chains(session), tickers_with_bars.get(session, [])

        staged, rows = stage_checked(context, lake, "option_chains", report, sessions, produce)
        metadata = {
            **run_metadata(sessions, source),
            "contracts": rows,
            "contracts_per_session": round(rows / len(sessions)),
        }
        yield from finish(context, "option_chains", report, staged, metadata)


@session_asset(
    name="market_truth",
    metadata=column_schema(MARKET_TRUTH),
    group_name="simulation",
    owners=[OWNER],
    kinds=KINDS,
    deps=["daily_bars"],
    # Real markets have no hidden regime: the step then records nothing, instead of failing
    # the market snapshot it belongs to.
    output_required=False,
    description=(
        "Ground truth of the synthetic market per session: the hidden regime (bull / "
        "neutral / bear) and the market factor. For grading the regime detector only; "
        "never a model feature. Other market sources have none, and record nothing here."
    ),
)
def market_truth(
    context: AssetExecutionContext, universe: pd.DataFrame, market: MarketDataResource
):
    sessions = run_sessions(context, market.now())
    truth = market.market(universe).truth(sessions)
    if truth is None:
        context.log.info(f"the {market.source!r} market source has no hidden regime to record")
        return
    counts = truth["regime"].value_counts().to_dict()
    yield Output(
        truth,
        metadata={
            "sessions": len(truth),
            **{f"sessions_{k}": int(v) for k, v in counts.items()},
        },
    )
