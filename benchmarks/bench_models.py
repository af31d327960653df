"""Model benchmarks: ONNX against scikit-learn inference on one session's candidates of the
500-ticker synthetic universe (the goal is ONNX at least 2x faster), and the training time
of the probability model (walk-forward validation, final fit, export) on demo-sized data.

Absolute times are for information; compare the ratios, measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings

import numpy as np

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.features import (
    FEATURE_COLUMNS,
    build_features,
    feature_matrix,
    ticker_context,
)
from butterquant_dagster.core.ml.probability import _classifier, calibration_splits, train
from butterquant_dagster.core.scan.pipeline import scan_session
from butterquant_dagster.core.scan.signals import ticker_signals
from butterquant_dagster.core.scan.surface import surface_summary

SESSION = dt.date(2025, 11, 20)


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def session_features(tickers: int = 500):
    market = SyntheticMarket(select_universe(read_universe_file(), size=tickers))
    bars = market.bars(calendar.sessions("2024-11-01", SESSION))
    chain = market.chains(SESSION)
    signals, skipped = ticker_signals(bars, SESSION)
    scored, _ = scan_session(chain, signals, skipped, SESSION)
    surface = surface_summary(chain, SESSION)
    neutral = np.full(len(surface), 0.5)
    features = build_features(scored, ticker_context(surface, neutral, neutral))
    return features, scored


def bench_inference() -> None:
    features, scored = session_features()
    x = feature_matrix(features, FEATURE_COLUMNS)
    rng = np.random.default_rng(0)
    # Labels only shape the trees; timing does not depend on their quality.
    y = rng.uniform(size=len(x)) < np.clip(scored["prob_profit_rn"].to_numpy(), 0.02, 0.9)
    sample = rng.choice(len(x), size=min(40_000, len(x)), replace=False)
    # The production model's shape: calibration folds grouped by (ticker, expiry).
    groups = (scored["symbol"].astype(str) + "|" + scored["expiry"].astype(str)).to_numpy()
    labels = y[sample].astype(int)
    splits = calibration_splits(groups[sample], labels, 7)
    model = _classifier(7, splits).fit(x[sample], labels)
    session = onnx_export.session(onnx_export.export(model, x.shape[1]))
    sklearn_s = _best(lambda: model.predict_proba(x))
    onnx_s = _best(lambda: onnx_export.run(session, x))
    parity = onnx_export.parity(model, onnx_export.export(model, x.shape[1]), x[:20_000])
    print(f"inference on one session: {len(x):,} candidates x {x.shape[1]} features; best of 3")
    print(f"  {'':<28}{'seconds':>9}{'rows/s':>14}{'ratio':>9}")
    print(
        f"  {'scikit-learn predict_proba':<28}{sklearn_s:>9.3f}{len(x) / sklearn_s:>14,.0f}"
        f"{1.0:>9.2f}"
    )
    print(
        f"  {'onnxruntime (CPU)':<28}{onnx_s:>9.3f}{len(x) / onnx_s:>14,.0f}"
        f"{sklearn_s / onnx_s:>9.2f}"
    )
    print(
        f"  ONNX speed-up {sklearn_s / onnx_s:.2f}x (goal >= 2x); parity max |diff| "
        f"{parity.max_abs_diff:.1e}"
    )
    return features, y


def bench_training(features, labels, rows: int = 60_000) -> None:
    rng = np.random.default_rng(1)
    pick = rng.choice(len(features), size=min(rows, len(features)), replace=False)
    frame = features.iloc[pick].reset_index(drop=True).copy()
    # Spread the rows over a year of entry sessions so the walk-forward folds exist.
    sessions = calendar.sessions("2024-11-20", SESSION)
    frame["session"] = np.array(sessions, dtype="datetime64[ns]")[
        rng.integers(0, len(sessions), len(frame))
    ]
    frame["expiry"] = frame["session"] + np.timedelta64(30, "D")
    frame["win"] = labels[pick].astype(int)
    frame["yield_per_1000"] = np.where(frame["win"], 500.0, -800.0) + rng.normal(0, 50, len(frame))
    start = time.perf_counter()
    trained = train(frame)
    seconds = time.perf_counter() - start
    folds = sum(1 for f in trained.folds if "test_rows" in f)
    print(
        f"training the probability model on {len(frame):,} rows ({folds} walk-forward folds,"
        f" final fit, two ONNX exports): {seconds:.1f} s"
    )


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    features, labels = bench_inference()
    print()
    bench_training(features, labels)
