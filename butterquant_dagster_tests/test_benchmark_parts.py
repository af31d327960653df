"""The parts the scan and market benchmarks measure with: the plain NumPy Black-Scholes
baseline computes what the project's pricing computes, the process accounting of the timed
command reports its CPU and memory and refuses a failed run, and the champion's synthetic
training set is one the training asset accepts."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.options import black_scholes as bs

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def benches():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bench_market"), importlib.import_module("bench_scan")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_the_plain_black_scholes_baseline_prices_as_the_project_does(benches):
    bench_market, _ = benches
    rng = np.random.default_rng(4)
    n = 2_000
    spot = rng.uniform(20, 500, n)
    strike = spot * rng.uniform(0.7, 1.3, n)
    t = rng.uniform(1, 90, n) / 365
    vol = rng.uniform(0.1, 0.8, n)
    calls = rng.uniform(size=n) < 0.5
    plain = bench_market.plain_black_scholes(spot, strike, t, vol, 0.04, 0.01, calls)
    ours = {
        "price": bs.price(spot, strike, t, vol, 0.04, 0.01, calls),
        **bs.greeks(spot, strike, t, vol, 0.04, 0.01, calls),
    }
    assert set(plain) == set(ours)
    for name in ours:
        np.testing.assert_allclose(plain[name], ours[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_timed_process_reports_its_cpu_and_peak_memory(benches):
    _, bench_scan = benches
    burn = (
        "import time\n"
        "block = bytearray(300 * 1024 * 1024)\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
    )
    run = bench_scan.run_process([sys.executable, "-c", burn], {})
    assert run.cpu >= 0.3
    assert run.wall >= run.cpu * 0.5
    assert run.peak_mib >= 300


def test_a_failed_command_is_an_error_naming_its_output(benches):
    _, bench_scan = benches
    fail = "import sys; print('scan went wrong', file=sys.stderr); sys.exit(3)"
    with pytest.raises(RuntimeError, match=r"exited 3: scan went wrong"):
        bench_scan.run_process([sys.executable, "-c", fail], {})


def test_the_champion_training_set_has_both_labels_and_every_feature(benches):
    _, bench_scan = benches
    rows = bench_scan.champion_training_set(600)
    assert set(KEY_COLUMNS + FEATURE_COLUMNS + ["win", "yield_per_1000"]) <= set(rows.columns)
    assert 0.1 < rows["win"].mean() < 0.9
    # The wins follow the features jointly: a model has something to learn.
    signal = sum(rows[name] for name in bench_scan.CHAMPION_SIGNALS)
    assert np.corrcoef(signal, rows["win"])[0, 1] > 0.3
