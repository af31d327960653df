"""Market-data benchmarks, printed side by side with their physical baselines.

1. One synthetic session of 500 tickers with full chains (cold: the path is simulated from
   the epoch; warm: another session on the cached path), as options priced per second,
   beside a plain NumPy Black-Scholes (price, delta, gamma, vega, theta of the same number
   of options, d1 and d2 computed once, the normal CDF from ``scipy.special.ndtr`` since
   NumPy has none): the machine's limit for this arithmetic, which the project's own
   ``black_scholes`` (shown too) does not reach. Goal: the warm session within 10x of it.
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
from scipy.special import ndtr

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticConfig, SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.options import black_scholes as bs

SESSION = dt.date(2025, 11, 20)
OTHER_SESSION = dt.date(2025, 11, 19)
YEAR = ("2025-01-02", "2025-12-31")
GOAL_VS_PLAIN = 10.0


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def plain_black_scholes(spot, strike, t, vol, rate, div, is_call) -> dict[str, np.ndarray]:
    """Textbook Black-Scholes-Merton on NumPy arrays: price and greeks from one d1/d2."""
    sqrt_t = np.sqrt(t)
    vol_sqrt_t = vol * sqrt_t
    d1 = (np.log(spot / strike) + (rate - div + 0.5 * vol * vol) * t) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    sign = np.where(is_call, 1.0, -1.0)
    nd1, nd2 = ndtr(sign * d1), ndtr(sign * d2)
    disc_spot = spot * np.exp(-div * t)
    disc_strike = strike * np.exp(-rate * t)
    pdf_d1 = np.exp(-0.5 * d1 * d1) / np.sqrt(2.0 * np.pi)
    return {
        "price": sign * (disc_spot * nd1 - disc_strike * nd2),
        "delta": sign * np.exp(-div * t) * nd1,
        "gamma": np.exp(-div * t) * pdf_d1 / (spot * vol_sqrt_t),
        "vega": disc_spot * pdf_d1 * sqrt_t / 100.0,
        "theta": (
            -disc_spot * pdf_d1 * vol / (2.0 * sqrt_t)
            - sign * rate * disc_strike * nd2
            + sign * div * disc_spot * nd1
        )
        / 365.0,
    }


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

    def plain():
        return plain_black_scholes(spot, strike, t, vol, 0.04, 0.01, calls)

    def ours():
        return {
            "price": bs.price(spot, strike, t, vol, 0.04, 0.01, calls),
            **bs.greeks(spot, strike, t, vol, 0.04, 0.01, calls),
        }

    # The baseline computes what the project's functions compute, to rounding.
    plain_out, ours_out = plain(), ours()
    for name, values in plain_out.items():
        np.testing.assert_allclose(values, ours_out[name], rtol=1e-9, atol=1e-12, err_msg=name)
    plain_s = _best(plain)
    ours_s = _best(ours)
    print(f"one session, {tickers} tickers, {n:,} options")
    print(f"  {'':<44}{'seconds':>9}{'options/s':>14}{'x plain BS':>12}")
    for label, seconds in (
        ("plain NumPy BS (price + 4 greeks)", plain_s),
        ("project's black_scholes.price + greeks", ours_s),
        ("synthetic session, warm path", warm_s),
        ("synthetic session, cold (target 2 s)", cold_s),
    ):
        print(f"  {label:<44}{seconds:>9.3f}{n / seconds:>14,.0f}{seconds / plain_s:>12.2f}")
    verdict = "met" if warm_s / plain_s <= GOAL_VS_PLAIN else "NOT met"
    print(
        f"  warm session / plain NumPy BS = {warm_s / plain_s:.1f}x; "
        f"goal within {GOAL_VS_PLAIN:.0f}x: {verdict}"
    )


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
