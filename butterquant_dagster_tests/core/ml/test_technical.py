"""Technical signals: each recovered on series whose truth is known, checked against plain
reference implementations, and shown to see nothing after the session."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar as cal
from butterquant_dagster.core.market.schemas import DAILY_BARS, conform
from butterquant_dagster.core.ml.technical import (
    SIGNAL_COLUMNS,
    SKIPPED_COLUMNS,
    signals_at_sessions,
    technical_signals,
)

END = dt.date(2021, 6, 30)


def _sessions(n: int, end: dt.date = END) -> list[dt.date]:
    """The last ``n`` NYSE sessions up to ``end``."""
    return cal.sessions(end - dt.timedelta(days=2 * n + 10), end)[-n:]


def _bars(closes: dict[str, np.ndarray], spread: float = 0.005, end: dt.date = END):
    """DAILY_BARS rows for close series ending on ``end``; high/low ``spread`` around close."""
    frames = []
    for symbol, close in closes.items():
        close = np.asarray(close, dtype=float)
        frames.append(
            pd.DataFrame(
                {
                    "session": pd.to_datetime(_sessions(len(close), end)),
                    "symbol": symbol,
                    "open": close,
                    "high": close * (1 + spread),
                    "low": close * (1 - spread),
                    "close": close,
                    "adj_close": close,
                    "prev_close": np.r_[np.nan, close[:-1]],
                    "volume": 1_000_000,
                    "source": "test",
                }
            )
        )
    return conform(pd.concat(frames, ignore_index=True), DAILY_BARS, origin="test")


def _random_walk(n: int, seed: int, vol: float = 0.015, drift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(drift + vol * rng.standard_normal(n)))


def _row(signals: pd.DataFrame, symbol: str) -> pd.Series:
    return signals.set_index("symbol").loc[symbol]


# ---------------------------------------------------------------------------- trend
def _reference_ema(x: np.ndarray, span: int) -> float:
    """EMA seeded with the simple mean of the first ``span`` values (the textbook seed)."""
    value = x[:span].mean()
    for price in x[span:]:
        value += 2.0 / (span + 1) * (price - value)
    return value


def _reference_adx(high, low, close, n: int = 14) -> float:
    """Wilder's ADX as he wrote it down: 14-bar sums, then running-sum smoothing."""
    tr, plus, minus = [], [], []
    for i in range(1, len(close)):
        tr.append(max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1])))
        up, down = high[i] - high[i - 1], low[i - 1] - low[i]
        plus.append(up if up > down and up > 0 else 0.0)
        minus.append(down if down > up and down > 0 else 0.0)
    s_tr, s_p, s_m = sum(tr[:n]), sum(plus[:n]), sum(minus[:n])
    dx = []
    for i in range(n, len(tr) + 1):
        if i > n:
            s_tr += tr[i - 1] - s_tr / n
            s_p += plus[i - 1] - s_p / n
            s_m += minus[i - 1] - s_m / n
        di_p, di_m = 100 * s_p / s_tr, 100 * s_m / s_tr
        dx.append(100 * abs(di_p - di_m) / (di_p + di_m) if di_p + di_m else 0.0)
    adx = sum(dx[:n]) / n
    for value in dx[n:]:
        adx = (adx * (n - 1) + value) / n
    return adx


def test_steady_uptrend_is_trend_up_with_high_adx():
    rng = np.random.default_rng(3)
    close = 40.0 * np.exp(0.004 * np.arange(200) + 0.002 * rng.standard_normal(200))
    signals, skipped = technical_signals(_bars({"UP": close}), END)
    row = _row(signals, "UP")
    assert skipped.empty
    assert row["trend_dir"] == 1
    assert row["ema8"] > row["ema21"] > row["ema55"]
    assert row["adx"] > 40
    assert row["trend_conf"] == pytest.approx(min(row["adx"] / 50, 1.0))
    assert row["mom_dir"] == 1 and row["mom63"] > 0.2
    down, _ = technical_signals(_bars({"DOWN": close[::-1]}), END)
    assert _row(down, "DOWN")["trend_dir"] == -1


def test_ema_and_adx_match_reference_implementations():
    close = _random_walk(300, seed=11, drift=0.001)
    rng = np.random.default_rng(12)
    high = close * np.exp(np.abs(rng.normal(0, 0.01, 300)))
    low = close * np.exp(-np.abs(rng.normal(0, 0.01, 300)))
    bars = _bars({"X": close})
    bars["high"], bars["low"] = high, low
    row = _row(technical_signals(bars, END)[0], "X")
    for span in (8, 21, 55):
        assert row[f"ema{span}"] == pytest.approx(_reference_ema(close, span), rel=1e-12)
    assert row["adx"] == pytest.approx(_reference_adx(high, low, close), rel=1e-10)


# ---------------------------------------------------------------------------- mean reversion
def test_close_three_sd_above_its_mean_is_mean_reversion_down():
    rng = np.random.default_rng(5)
    close = 100.0 + rng.normal(0.0, 1.0, 200)
    window = close[-50:-1]
    close[-1] = window.mean() + 4.0 * window.std()  # about 3 sd once it is in the window
    row = _row(technical_signals(_bars({"SPIKE": close}), END)[0], "SPIKE")
    last50, last20 = close[-50:], close[-20:]
    z = (close[-1] - last50.mean()) / last50.std()
    pctb = (close[-1] - (last20.mean() - 2 * last20.std())) / (4 * last20.std())
    assert z > 3.0
    assert row["zscore50"] == pytest.approx(z, rel=1e-9)
    assert row["bollinger_pctb"] == pytest.approx(pctb, rel=1e-9)
    assert row["mr_dir"] == -1
    assert row["mr_conf"] == pytest.approx(min(max(z, 4 * (pctb - 0.5)) / 4, 1.0))
    close[-1] = window.mean() - 4.0 * window.std()
    dip = _row(technical_signals(_bars({"DIP": close}), END)[0], "DIP")
    assert dip["mr_dir"] == 1


# ---------------------------------------------------------------------------- volatility regime
def test_volatility_ratio_and_regime():
    rng = np.random.default_rng(8)
    shocks = rng.standard_normal(200)
    calm = shocks * np.r_[np.full(190, 0.02), np.full(10, 0.005)]
    wild = shocks * np.r_[np.full(190, 0.01), np.full(10, 0.04)]
    bars = _bars({"CALM": 50 * np.exp(np.cumsum(calm)), "WILD": 50 * np.exp(np.cumsum(wild))})
    signals = technical_signals(bars, END)[0]
    returns = np.diff(np.cumsum(calm))
    expected = returns[-10:].std(ddof=1) / returns[-60:].std(ddof=1)
    assert _row(signals, "CALM")["vol_ratio"] == pytest.approx(expected, rel=1e-9)
    assert _row(signals, "CALM")["volreg_dir"] == 1
    assert _row(signals, "WILD")["volreg_dir"] == -1
    assert _row(signals, "WILD")["volreg_conf"] > 0.5


# ---------------------------------------------------------------------------- Hurst
def _fractional_noise(n: int, hurst: float, seed: int) -> np.ndarray:
    """Exact fractional Gaussian noise by Cholesky factorisation of its autocovariance."""
    k = np.arange(n, dtype=float)
    gamma = 0.5 * ((k + 1) ** (2 * hurst) - 2 * k ** (2 * hurst) + np.abs(k - 1) ** (2 * hurst))
    cov = gamma[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]
    return np.linalg.cholesky(cov) @ np.random.default_rng(seed).standard_normal(n)


def _ornstein_uhlenbeck(n: int, kappa: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = (1 - kappa) * x[i - 1] + 0.01 * rng.standard_normal()
    return x


def test_hurst_is_half_for_a_random_walk():
    signals = technical_signals(_bars({"RW": _random_walk(2000, seed=21)}), END)[0]
    assert _row(signals, "RW")["hurst"] == pytest.approx(0.5, abs=0.1)
    walks = {f"W{i}": _random_walk(600, seed=100 + i, drift=0.001) for i in range(40)}
    hurst = technical_signals(_bars(walks), END)[0]["hurst"]
    assert hurst.mean() == pytest.approx(0.5, abs=0.02)  # the overlap correction removes bias


def test_hurst_is_high_for_a_persistent_series_and_low_for_a_mean_reverting_one():
    fbm = 50 * np.exp(0.01 * np.cumsum(_fractional_noise(600, 0.8, seed=4)))
    rng = np.random.default_rng(6)
    ar_returns = np.zeros(600)
    for i in range(1, 600):
        ar_returns[i] = 0.5 * ar_returns[i - 1] + 0.01 * rng.standard_normal()
    closes = {
        "FBM": fbm,
        "AR": 50 * np.exp(np.cumsum(ar_returns)),
        "OU": 50 * np.exp(_ornstein_uhlenbeck(600, kappa=0.2, seed=9)),
    }
    hurst = technical_signals(_bars(closes), END)[0].set_index("symbol")["hurst"]
    assert hurst["FBM"] > 0.6
    assert hurst["AR"] > 0.6
    assert hurst["OU"] < 0.4


# ---------------------------------------------------------------------------- look-ahead
def _mixed_bars() -> pd.DataFrame:
    closes = {f"T{i}": _random_walk(400, seed=i, drift=0.0005 * (i - 2)) for i in range(5)}
    return _bars(closes, end=dt.date(2021, 12, 30))


def test_later_rows_change_nothing():
    bars = _mixed_bars()
    session = dt.date(2021, 6, 30)
    cut = bars[bars["session"] <= pd.Timestamp(session)]
    expected = technical_signals(cut, session)
    shuffled = bars.sample(frac=1.0, random_state=1)
    for full in (bars, shuffled):
        got = technical_signals(full, session)
        pd.testing.assert_frame_equal(got[0], expected[0])
        pd.testing.assert_frame_equal(got[1], expected[1])
    assert list(expected[0].columns) == SIGNAL_COLUMNS
    assert len(expected[0]) == 5


def test_one_pass_over_all_sessions_equals_the_per_session_signals():
    bars = _mixed_bars()
    sessions = [dt.date(2021, 3, 1), dt.date(2021, 6, 30), dt.date(2021, 12, 30)]
    together = signals_at_sessions(bars, sessions)
    for session in sessions:
        alone = technical_signals(bars, session)[0]
        part = together[together["session"] == pd.Timestamp(session)].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, alone)
    with pytest.raises(ValueError, match="no bars"):
        signals_at_sessions(bars, [dt.date(2021, 7, 4)])


# ---------------------------------------------------------------------------- skipped tickers
def test_skipped_tickers_say_why():
    close = _random_walk(300, seed=2)
    gapped = _bars({"GAP": close})
    gapped = gapped.drop(gapped.index[200:210])  # a 10-session gap: the run restarts
    bars = pd.concat(
        [
            _bars({"OK": close, "SHORT": close[-50:], "FLAT": np.full(300, 20.0)}),
            _bars({"OLD": close}, end=dt.date(2021, 6, 10)),
            gapped,
        ],
        ignore_index=True,
    )
    signals, skipped = technical_signals(bars, END)
    assert signals["symbol"].tolist() == ["OK"]
    assert list(skipped.columns) == SKIPPED_COLUMNS
    reasons = skipped.set_index("symbol")["reason"]
    assert reasons["SHORT"] == "insufficient history: 50 of 130 sessions"
    assert reasons["GAP"] == "insufficient history: 90 of 130 sessions after a gap"
    assert reasons["FLAT"] == "no price movement in the last 60 sessions"
    assert reasons["OLD"] == ("stale: last close 2021-06-10, 14 sessions before 2021-06-30")
    with pytest.raises(ValueError, match="min_history"):
        technical_signals(bars, END, min_history=60)
