"""The ``backtest`` asset: one configured backtest run, its equity curve in the lake, its
figures, steps and chart in the metadata, its report files under
``<data root>/reports/backtests``.

Thin: the request is checked and run by ``core.backtest``; this module turns the Dagster
config and resources into its arguments and its result into metadata.
"""

import base64
import datetime as dt

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    Config,
    Failure,
    MetadataValue,
    Output,
    asset,
    define_asset_job,
)
from pydantic import Field

from butterquant_dagster.core.backtest.butterfly import ButterflySettings, run_butterfly
from butterquant_dagster.core.backtest.inputs import BacktestInputError, LakeInputs, check_request
from butterquant_dagster.core.backtest.metrics import BENCHMARK_METRIC_NAMES, METRIC_NAMES
from butterquant_dagster.core.backtest.report import steps_markdown, write_report
from butterquant_dagster.core.backtest.result import (
    DEFAULT_WINDOW_SESSIONS,
    STRATEGIES,
    metric_value,
)
from butterquant_dagster.core.backtest.signals import StockCosts, run_signals
from butterquant_dagster.core.backtest.walk_forward import BACKTEST_TRAINING_ROWS, TrainingPolicy
from butterquant_dagster.resources import (
    LakeResource,
    ModelsResource,
    ScanResource,
    TradingResource,
)

BACKTEST_JOB = "backtest_job"
OWNER = "team:research"


class BacktestConfig(Config):
    """What to backtest; every field can be set in the launchpad or by the CLI."""

    tickers: list[str] = Field(default=[], description="Tickers to trade; empty = the universe.")
    start_date: str = Field(
        default="",
        description=f"First session, YYYY-MM-DD; empty = the last {DEFAULT_WINDOW_SESSIONS} "
        "scanned (or analysed) sessions.",
    )
    end_date: str = Field(
        default="", description="Last session, YYYY-MM-DD; empty = the last scanned session."
    )
    strategy: str = Field(
        default="butterfly",
        description="butterfly (the 20-slot portfolio, walk-forward models) or signals (the "
        "buy / hold / sell decisions traded on the stocks).",
    )
    initial_capital: float = Field(default=100_000.0, description="Starting cash, dollars.")
    step_sessions: int = Field(
        default=21, description="Sessions per walk-forward step (butterfly): models retrain."
    )
    slippage_bps: float = Field(
        default=5.0, description="Slippage against each stock fill, basis points (signals)."
    )
    max_training_rows: int = Field(
        default=BACKTEST_TRAINING_ROWS,
        description="Row cap of each walk-forward training (butterfly).",
    )


def _tickers_text(tickers: list[str], shown: int = 20) -> str:
    more = f" and {len(tickers) - shown} more" if len(tickers) > shown else ""
    return ", ".join(tickers[:shown]) + more


def _chart_markdown(png: bytes | None) -> MetadataValue | str:
    # The UI renders a data-URI image in markdown metadata (the Dagster tutorial's own
    # pattern); the PNG file is linked beside it for when it does not.
    if png is None:
        return "not enough data"
    encoded = base64.b64encode(png).decode("ascii")
    return MetadataValue.md(f"![equity curve](data:image/png;base64,{encoded})")


@asset(
    name="backtest",
    group_name="backtest",
    owners=[OWNER],
    kinds={"python", "duckdb"},
    io_manager_key="lake_io_manager",
    deps=[
        "universe",
        "daily_bars",
        "option_chains",
        "butterfly_candidates",
        "candidate_features",
        "candidate_outcomes",
        "trading_decisions",
    ],
    description=(
        "A configured backtest: the butterfly portfolio walk-forward (models retrained every "
        "step on outcomes known before it, traded through the paper broker and a scratch "
        "ledger) or the buy / hold / sell signals on the stocks against buy-and-hold. Stores "
        "the equity curve; metadata has every figure, the steps and the chart."
    ),
)
def backtest(
    context: AssetExecutionContext,
    config: BacktestConfig,
    lake: LakeResource,
    models: ModelsResource,
    trading: TradingResource,
    scan: ScanResource,
) -> Output:
    store = lake.lake()
    if config.strategy not in STRATEGIES:
        raise Failure(f"strategy {config.strategy!r} is not one of {list(STRATEGIES)}")
    try:
        request = check_request(
            store, config.strategy, config.tickers, config.start_date, config.end_date
        )
    except BacktestInputError as exc:
        raise Failure(f"backtest: {exc}") from exc
    started = dt.datetime.now(dt.UTC)
    if request.strategy == "butterfly":
        training_tickers = sorted(models.training_ticker_set())
        result = run_butterfly(
            LakeInputs(store, request.tickers, training_tickers or None),
            request.sessions,
            ButterflySettings(
                initial_capital=config.initial_capital,
                step_sessions=config.step_sessions,
                per_ticker=scan.per_ticker,
                rules=trading.rules(),
                limits=trading.limits(),
                training=TrainingPolicy(
                    max_rows=config.max_training_rows,
                    n_folds=models.n_folds,
                    min_rows=models.min_training_rows,
                    min_class=models.min_class_rows,
                    seed=models.seed,
                ),
                paper_slippage=trading.paper_slippage,
            ),
        )
    else:
        inputs = LakeInputs(store, request.tickers)
        result = run_signals(
            inputs.decisions(request.sessions),
            inputs.bars(request.sessions),
            request.sessions,
            tickers=request.tickers,
            initial_capital=config.initial_capital,
            costs=StockCosts(slippage_bps=config.slippage_bps),
        )
    files, png = write_report(lake.data_dir, result)
    figures = {
        name: metric_value(result.metrics[name])
        for name in (*METRIC_NAMES, *BENCHMARK_METRIC_NAMES)
        if name in result.metrics
    }
    context.log.info(
        f"backtest {result.strategy} {result.start}..{result.end} took "
        f"{(dt.datetime.now(dt.UTC) - started).total_seconds():.0f} s"
    )
    return Output(
        result.equity,
        metadata={
            **figures,
            "strategy": result.strategy,
            "start": str(result.start),
            "end": str(result.end),
            "sessions": len(result.equity),
            "tickers": _tickers_text(result.tickers),
            "initial_capital": float(result.initial_capital),
            "final_equity": float(result.equity["equity"].iloc[-1]),
            "steps": MetadataValue.md(steps_markdown(result.steps)),
            "equity_chart": _chart_markdown(png),
            "report_html": MetadataValue.path(str(files.html)),
            "report_png": MetadataValue.path(str(files.png)) if png else "not enough data",
            "report_json": MetadataValue.path(str(files.json)),
            "notes": MetadataValue.md("\n".join(f"- {n}" for n in result.notes) or "none"),
        },
    )


backtest_job = define_asset_job(
    BACKTEST_JOB,
    selection=AssetSelection.assets("backtest"),
    description="One configured backtest (strategy, tickers, window in the run config).",
)
