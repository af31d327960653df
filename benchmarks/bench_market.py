"""Market-data benchmarks, printed side by side with their physical baselines.

1. One synthetic session of 500 tickers with full chains (cold: the path is simulated from
   the epoch; warm: another session on the cached path), as options priced per second,
   beside a bare vectorized Black-Scholes pricing (price + greeks) of the same number of
   options: the machine's limit for this arithmetic.
2. A year of sessions for 50 tickers through Dagster (one single-run backfill with checks and
   Parquet writes) beside generating the same sessions in core alone.

Absolute times are for information: these machines are shared, so compare the ratios.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticConfig, SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.options import black_scholes as bs

SESSION = dt.date(2025, 11, 20)
OTHER_SESSION = dt.date(2025, 11, 19)
YEAR = ("2025-01-02", "2025-12-31")


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_session(tickers: int = 500) -> None:
    universe = select_universe(read_universe_file(), size=tickers)
    holder = {}

    def cold():
        market = SyntheticMarket(universe, SyntheticConfig())
        market.bars([SESSION])
        holder["chain"] = market.chains(SESSION)
        holder["market"] = market

    cold_s = _best(cold)
    n = len(holder["chain"])
    warm_s = _best(lambda: holder["market"].chains(OTHER_SESSION))

    rng = np.random.default_rng(0)
    spot = rng.uniform(20, 500, n)
    strike = spot * rng.uniform(0.7, 1.3, n)
    t = rng.uniform(1, 90, n) / 365
    vol = rng.uniform(0.1, 0.8, n)
    calls = rng.uniform(size=n) < 0.5

    def bare():
        bs.price(spot, strike, t, vol, 0.04, 0.01, calls)
        bs.greeks(spot, strike, t, vol, 0.04, 0.01, calls)

    bare_s = _best(bare)
    print(f"one session, {tickers} tickers, {n:,} options")
    print(f"  {'':<38}{'seconds':>9}{'options/s':>14}{'vs bare BS':>12}")
    for label, seconds in (
        ("bare vectorized BS (price+greeks)", bare_s),
        ("synthetic session, warm path", warm_s),
        ("synthetic session, cold (target 2 s)", cold_s),
    ):
        print(f"  {label:<38}{seconds:>9.3f}{n / seconds:>14,.0f}{bare_s / seconds:>12.3f}")


def bench_year_backfill(tickers: int = 50) -> None:
    from dagster import DagsterInstance

    from butterquant_dagster.definitions import build_definitions
    from butterquant_dagster.defs.lake_io_manager import LakeIOManager
    from butterquant_dagster.defs.market.automation import MARKET_JOB
    from butterquant_dagster.resources import (
        LakeResource,
        MarketDataResource,
        ModelsResource,
        MonitoringResource,
        ScanResource,
        TradingResource,
    )

    sessions = calendar.sessions(*YEAR)
    universe = select_universe(read_universe_file(), size=tickers)

    def core_only():
        market = SyntheticMarket(universe)
        market.bars(sessions)
        for session in sessions:
            market.chains(session)

    core_s = _best(core_only, repeat=1)
    with tempfile.TemporaryDirectory() as root:
        lake = LakeResource(data_dir=str(Path(root)))
        # Every resource the code location declares, on the temporary root (the market job
        # uses only the first three, but definitions are validated as a whole).
        defs = build_definitions(
            {
                "lake": lake,
                "market": MarketDataResource(universe_size=tickers),
                "lake_io_manager": LakeIOManager(lake=lake),
                "scan": ScanResource(),
                "models": ModelsResource(data_dir=root),
                "trading": TradingResource(data_dir=root),
                "monitoring": MonitoringResource(data_dir=root),
            },
        )
        job = defs.resolve_job_def(MARKET_JOB)
        cpu_start = time.process_time()
        start = time.perf_counter()
        result = job.execute_in_process(
            instance=DagsterInstance.ephemeral(),
            tags={
                "dagster/asset_partition_range_start": YEAR[0],
                "dagster/asset_partition_range_end": YEAR[1],
            },
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        dagster_s = time.perf_counter() - start
        dagster_cpu = time.process_time() - cpu_start
        assert result.success
        files = len(list((Path(root) / "lake" / "option_chains").glob("*.parquet")))
    print(f"a year ({len(sessions)} sessions) of {tickers} tickers; {files} chain partitions")
    print(f"  {'':<42}{'seconds':>9}{'ratio':>9}")
    print(f"  {'core generation only':<42}{core_s:>9.2f}{1.0:>9.2f}")
    print(
        f"  {'Dagster single-run backfill (target 60 s)':<42}{dagster_s:>9.2f}"
        f"{dagster_s / core_s:>9.2f}   ({dagster_cpu:.2f} s CPU)"
    )


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    bench_session()
    print()
    bench_year_backfill()
