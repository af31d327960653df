"""Scanner signals: each one recovered on series whose truth is known, no look-ahead, speed."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core import calendar as cal
from butterquant_dagster.core.market.schemas import DAILY_BARS, conform
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.scan.signals import (
    FORECAST_COLUMNS,
    SIGNAL_COLUMNS,
    TRADING_DAYS,
    forecast,
    ticker_signals,
)
from butterquant_dagster_tests.conftest import FIXTURES

D = dt.date
N_SESSIONS = 300


def _days(sessions: float) -> float:
    """Calendar days that ``forecast`` converts to ``sessions`` trading sessions."""
    return sessions * 365.0 / TRADING_DAYS


END = D(2021, 6, 30)


def _bars(log_closes: dict[str, np.ndarray], end: dt.date = END) -> pd.DataFrame:
    """DAILY_BARS rows for series that all end on ``end`` (weekday sessions back from it)."""
    frames = []
    for symbol, log_close in log_closes.items():
        sessions = pd.bdate_range(end=end, periods=len(log_close))
        close = np.exp(log_close)
        frames.append(
            pd.DataFrame(
                {
                    "session": sessions,
                    "symbol": symbol,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "adj_close": close,
                    "prev_close": np.r_[np.nan, close[:-1]],
                    "volume": 1_000_000,
                    "source": "synthetic",
                }
            )
        )
    return conform(pd.concat(frames, ignore_index=True), DAILY_BARS, origin="test")


def _random_walks(rng, n_tickers: int, sd, n: int = N_SESSIONS) -> np.ndarray:
    """(n, n_tickers) log closes; ``sd`` is a daily sd, scalar or per session."""
    sd = np.broadcast_to(np.asarray(sd, dtype=float).reshape(-1, 1), (n, 1))
    steps = rng.standard_normal((n, n_tickers)) * sd
    steps[0] = 0.0
    return np.log(50.0) + np.cumsum(steps, axis=0)


def _signals(log_closes: dict[str, np.ndarray], **kwargs) -> pd.DataFrame:
    signals, _ = ticker_signals(_bars(log_closes), D(2021, 6, 30), **kwargs)
    return signals.set_index("symbol")


def _circular_distance(a: float, b: float) -> float:
    return abs((a - b + np.pi) % (2.0 * np.pi) - np.pi)


# ---------------------------------------------------------------------------- trend
def test_linear_trend_recovers_drift_and_a_strong_trend():
    rng = np.random.default_rng(11)
    t = np.arange(N_SESSIONS)
    noise = rng.normal(0.0, 0.004, (2, N_SESSIONS))
    signals = _signals(
        {"UP": np.log(40.0) + 0.002 * t + noise[0], "DOWN": np.log(90.0) - 0.0015 * t + noise[1]}
    )
    assert signals.loc["UP", "drift_daily"] == pytest.approx(0.002, rel=0.05)
    assert signals.loc["DOWN", "drift_daily"] == pytest.approx(-0.0015, rel=0.05)
    assert (signals["trend_r2"] > 0.8).all()
    assert (signals["trend_r2"] <= 1.0).all()

    ahead = forecast(signals, _days(20.0))
    move = np.log(ahead["forecast_price"] / signals["close"])
    expected = signals["trend_r2"] * signals["drift_daily"] * 20.0
    # The cycle term of a trend plus white noise is negligible next to the drift.
    np.testing.assert_allclose(move, expected, atol=0.2 * abs(expected).min())
    assert move["UP"] > 0.02 and move["DOWN"] < -0.015


def test_random_walk_has_weak_trend_and_forecasts_little_move():
    rng = np.random.default_rng(5)
    walks = _random_walks(rng, 60, 0.02)
    signals = _signals({f"W{i:02d}": walks[:, i] for i in range(walks.shape[1])})
    assert len(signals) == 60
    assert signals["trend_r2"].median() < 0.1
    assert signals["trend_r2"].mean() < 0.25

    ahead = forecast(signals, _days(21.0))
    one_sigma = signals["vol_long"] * np.sqrt(21.0 / TRADING_DAYS)
    moves = (np.log(ahead["forecast_price"] / signals["close"]) / one_sigma).abs()
    assert moves.median() < 0.1
    assert moves.quantile(0.9) < 0.6


# ---------------------------------------------------------------------------- cycle
def _sine(period: float, amplitude: float, phase_at_end: float, noise, n: int = N_SESSIONS):
    """Log closes whose cycle has phase ``phase_at_end`` on the last session (0 = peak)."""
    t = np.arange(n) - (n - 1)
    return np.log(60.0) + amplitude * np.cos(2.0 * np.pi * t / period + phase_at_end) + noise


def test_sine_recovers_period_amplitude_share_and_phase():
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.003, (3, N_SESSIONS))
    signals = _signals(
        {
            "TROUGH": _sine(40.0, 0.08, np.pi, noise[0]),
            "PEAK": _sine(40.0, 0.08, 0.0, noise[1]),
            "RISING": _sine(40.0, 0.08, 1.5 * np.pi, noise[2]),
        }
    )
    np.testing.assert_allclose(signals["cycle_period"], 40.0, atol=1.0)
    np.testing.assert_allclose(signals["cycle_amplitude"], 0.08, rtol=0.05)
    assert (signals["cycle_power_share"] > 0.95).all()
    assert _circular_distance(signals.loc["TROUGH", "cycle_phase"], np.pi) < 0.2
    assert _circular_distance(signals.loc["PEAK", "cycle_phase"], 0.0) < 0.2
    assert _circular_distance(signals.loc["RISING", "cycle_phase"], 1.5 * np.pi) < 0.2
    assert signals["trend_r2"].max() < 0.05

    half_period = forecast(signals, _days(20.0))
    move = np.log(half_period["forecast_price"] / signals["close"])
    # Half a period from a trough is the next peak: up by about twice the amplitude.
    assert move["TROUGH"] == pytest.approx(0.16, rel=0.1)
    assert move["PEAK"] == pytest.approx(-0.16, rel=0.1)
    quarter = forecast(signals, _days(10.0))
    assert np.log(quarter.loc["RISING", "forecast_price"] / signals.loc["RISING", "close"]) > 0.06


def test_a_cycle_riding_on_a_random_walk_is_found_rather_than_the_longest_period():
    # Prices are red noise: the raw periodogram peaks at the longest period allowed. The
    # whitened one must still find a 30-session cycle on every one of these random walks.
    rng = np.random.default_rng(6)
    t = np.arange(N_SESSIONS)
    walks = _random_walks(rng, 20, 0.012) + 0.05 * np.cos(2.0 * np.pi * t / 30.0)[:, None]
    signals = _signals({f"X{i:02d}": walks[:, i] for i in range(walks.shape[1])})
    np.testing.assert_allclose(signals["cycle_period"], 30.0, atol=1.0)
    assert signals["cycle_power_share"].median() > 0.25


# ---------------------------------------------------------------------------- volatility
def test_constant_volatility_is_recovered_by_every_estimator():
    rng = np.random.default_rng(21)
    daily = 0.015
    true_vol = daily * np.sqrt(TRADING_DAYS)
    walks = _random_walks(rng, 50, daily)
    signals = _signals({f"C{i:02d}": walks[:, i] for i in range(walks.shape[1])})
    garch_vol = np.sqrt(TRADING_DAYS * signals["garch_var_now"])

    # 251 returns estimate a vol to about 4.5 % (one sd); 50 tickers, so allow 3.3 sd.
    np.testing.assert_allclose(signals["vol_long"], true_vol, rtol=0.15)
    assert signals["vol_long"].median() == pytest.approx(true_vol, rel=0.03)
    np.testing.assert_allclose(signals["vol_ewma"], true_vol, rtol=0.4)
    np.testing.assert_allclose(garch_vol, true_vol, rtol=0.3)
    assert signals["vol_ewma"].median() == pytest.approx(true_vol, rel=0.06)
    assert garch_vol.median() == pytest.approx(true_vol, rel=0.06)
    np.testing.assert_allclose(
        signals["garch_omega"], 0.02 * (signals["vol_long"] ** 2 / TRADING_DAYS), rtol=1e-9
    )
    assert (signals["garch_alpha"] + signals["garch_beta"] < 1.0).all()


def test_vol_forecast_mean_reverts_from_today_to_long_vol_as_horizon_grows():
    rng = np.random.default_rng(8)
    calm_end = np.r_[np.full(N_SESSIONS - 25, 0.02), np.full(25, 0.006)]
    hot_end = np.r_[np.full(N_SESSIONS - 25, 0.012), np.full(25, 0.04)]
    series = {
        "CONST": _random_walks(rng, 1, 0.015)[:, 0],
        "CALMED": _random_walks(rng, 1, calm_end)[:, 0],
        "HEATED": _random_walks(rng, 1, hot_end)[:, 0],
    }
    signals = _signals(series)
    vol_now = np.sqrt(TRADING_DAYS * signals["garch_var_now"])
    assert vol_now["CALMED"] < 0.8 * signals.loc["CALMED", "vol_long"]
    assert vol_now["HEATED"] > 1.5 * signals.loc["HEATED", "vol_long"]

    horizons = np.array([1.0, 7.0, 14.0, 30.0, 60.0, 120.0, 365.0, 2000.0])
    rows = signals.loc[signals.index.repeat(len(horizons))]
    curve = forecast(rows, np.tile(horizons, len(signals)))["vol_forecast"]
    curve = curve.to_numpy().reshape(len(signals), len(horizons))
    low = np.minimum(vol_now, signals["vol_long"]).to_numpy()[:, None]
    high = np.maximum(vol_now, signals["vol_long"]).to_numpy()[:, None]
    assert ((curve >= low - 1e-12) & (curve <= high + 1e-12)).all()
    gap_to_long = np.abs(curve - signals["vol_long"].to_numpy()[:, None])
    assert (np.diff(gap_to_long, axis=1) < 0).all()
    # One session ahead is today's conditional variance; far out is nearly the long vol.
    np.testing.assert_allclose(curve[:, 0], vol_now, rtol=1e-9)
    np.testing.assert_allclose(curve[:, -1], signals["vol_long"], rtol=0.1)


def test_band_is_one_forecast_sigma_around_the_forecast_price():
    rng = np.random.default_rng(2)
    signals = _signals({"X": _random_walks(rng, 1, 0.02)[:, 0]})
    ahead = forecast(signals, np.array([45.0]))
    sigma = ahead["vol_forecast"] * np.sqrt(ahead["horizon_sessions"] / TRADING_DAYS)
    np.testing.assert_allclose(ahead["horizon_sessions"], 45.0 * 252.0 / 365.0)
    np.testing.assert_allclose(np.log(ahead["forecast_high"] / ahead["forecast_price"]), sigma)
    np.testing.assert_allclose(np.log(ahead["forecast_price"] / ahead["forecast_low"]), sigma)
    assert list(ahead.columns) == FORECAST_COLUMNS
    assert ahead.index.equals(signals.index)


def test_forecast_ignores_signals_that_are_not_significant():
    row = pd.DataFrame(
        {
            "close": [100.0, 100.0],
            "drift_daily": [0.01, 0.01],
            "trend_r2": [0.0, 1.0],
            "cycle_period": [40.0, 40.0],
            "cycle_amplitude": [0.1, 0.1],
            "cycle_phase": [np.pi, np.pi],
            "cycle_power_share": [0.0, 1.0],
            "vol_long": [0.3, 0.3],
            "garch_alpha": [0.06, 0.06],
            "garch_beta": [0.92, 0.92],
            "garch_var_now": [0.3**2 / 252.0, 0.3**2 / 252.0],
        }
    )
    ahead = forecast(row, _days(20.0))
    assert ahead.loc[0, "forecast_price"] == pytest.approx(100.0)
    # Full weight: 20 sessions of 1 % drift plus a trough-to-peak swing of 2 × 0.1.
    assert ahead.loc[1, "forecast_price"] == pytest.approx(100.0 * np.exp(0.2 + 0.2))


# ---------------------------------------------------------------------------- stability
def test_stability_is_higher_for_a_calm_series_than_a_jumpy_one():
    rng = np.random.default_rng(13)
    calm = _random_walks(rng, 1, 0.012)[:, 0]
    steps = rng.normal(0.0, 0.012, N_SESSIONS)
    jump_days = rng.choice(np.arange(1, N_SESSIONS), size=12, replace=False)
    steps[jump_days] += rng.choice([-1.0, 1.0], size=12) * 0.09
    steps[-15:] *= 3.0  # and a recent burst of volatility
    steps[0] = 0.0
    signals = _signals({"CALM": calm, "JUMPY": np.log(50.0) + np.cumsum(steps)})
    assert signals["stability"].between(0.0, 1.0).all()
    assert signals.loc["CALM", "stability"] > 0.7
    assert signals.loc["JUMPY", "stability"] < 0.3


# ---------------------------------------------------------------------------- data handling
@pytest.fixture(scope="module")
def synthetic_history() -> pd.DataFrame:
    market = SyntheticMarket(select_universe(read_universe_file(), size=8))
    return market.bars(cal.sessions(D(2015, 1, 2), D(2016, 6, 30)))


def test_rows_after_the_session_and_row_order_change_nothing(synthetic_history):
    session = D(2016, 3, 1)
    past = synthetic_history[synthetic_history["session"] <= pd.Timestamp(session)]
    expected_signals, expected_skipped = ticker_signals(past, session)

    later_only = synthetic_history[synthetic_history["session"] > pd.Timestamp(session)].head(3)
    newcomer = later_only.assign(symbol="NEWCO")
    everything = pd.concat([synthetic_history, newcomer]).sample(frac=1.0, random_state=4)
    signals, skipped = ticker_signals(everything, session)

    pd.testing.assert_frame_equal(signals, expected_signals)
    pd.testing.assert_frame_equal(skipped, expected_skipped)
    assert len(signals) == 8
    # The later rows do differ: the signals a month on are not the same.
    later, _ = ticker_signals(everything, D(2016, 4, 1))
    assert not np.allclose(later["vol_ewma"], signals["vol_ewma"])


def test_signals_have_the_documented_columns_and_sane_values(synthetic_history):
    signals, skipped = ticker_signals(synthetic_history, D(2016, 6, 30))
    assert list(signals.columns) == SIGNAL_COLUMNS
    assert skipped.empty
    assert (signals["n_obs"] == 252).all()
    assert (signals["session"] == pd.Timestamp("2016-06-30")).all()
    numeric = signals.drop(columns=["symbol", "session"]).to_numpy(dtype=float)
    assert np.isfinite(numeric).all()
    for column in ("trend_r2", "cycle_power_share", "stability"):
        assert signals[column].between(0.0, 1.0).all(), column
    assert signals["cycle_period"].between(10.0, 126.0).all()
    assert signals["cycle_phase"].between(0.0, 2.0 * np.pi).all()
    assert signals["vol_long"].between(0.1, 1.0).all()
    last = synthetic_history[synthetic_history["session"] == pd.Timestamp("2016-06-30")]
    closes = last.set_index("symbol")["close"]
    np.testing.assert_allclose(signals.set_index("symbol")["close"], closes[signals["symbol"]])


def test_short_stale_and_broken_histories_are_skipped_with_a_reason():
    rng = np.random.default_rng(17)
    walks = _random_walks(rng, 5, 0.02)
    bars = _bars({"FULL": walks[:, 0], "YOUNG": walks[-12:, 1], "HOLEY": walks[:, 2]})
    holey = bars["symbol"] == "HOLEY"
    sessions = bars.loc[holey, "session"].sort_values()
    short_hole = sessions.iloc[-100:-98]  # two missing sessions: bridged
    long_hole = sessions.iloc[-40:-30]  # ten missing sessions: history restarts after it
    broken = _bars({"BROKEN": walks[:, 3]})
    broken = broken[~broken["session"].isin(long_hole)]
    stale = _bars({"STALE": walks[:-10, 4]}, end=D(2021, 6, 16))
    history = pd.concat(
        [bars[~(holey & bars["session"].isin(short_hole))], broken, stale], ignore_index=True
    )
    signals, skipped = ticker_signals(history, D(2021, 6, 30))

    assert list(signals["symbol"]) == ["FULL", "HOLEY"]
    assert (signals["n_obs"] == 252).all()
    reasons = dict(zip(skipped["symbol"], skipped["reason"], strict=True))
    assert reasons == {
        "BROKEN": "insufficient history: 30 of 60 sessions after a gap",
        "STALE": "stale: last close 2021-06-16, 10 sessions before 2021-06-30",
        "YOUNG": "insufficient history: 12 of 60 sessions",
    }
    shorter, _ = ticker_signals(history, D(2021, 6, 30), min_history=30)
    assert "BROKEN" in set(shorter["symbol"])
    assert shorter.set_index("symbol").loc["BROKEN", "n_obs"] == 30


def test_closes_are_carried_at_most_three_sessions_to_the_session():
    rng = np.random.default_rng(4)
    bars = _bars({"A": _random_walks(rng, 1, 0.02)[:, 0]}, end=D(2021, 6, 25))  # a Friday
    # Mon 28, Tue 29 and Wed 30 June are three sessions without a bar: still usable.
    signals, skipped = ticker_signals(bars, D(2021, 6, 30))
    assert skipped.empty
    assert signals.loc[0, "close"] == pytest.approx(bars["close"].iloc[-1])
    assert signals.loc[0, "session"] == pd.Timestamp("2021-06-30")
    signals, skipped = ticker_signals(bars, D(2021, 7, 1))
    assert signals.empty
    assert list(skipped["reason"]) == ["stale: last close 2021-06-25, 4 sessions before 2021-07-01"]


def test_a_price_that_never_moves_is_skipped():
    bars = _bars({"FLAT": np.full(100, np.log(10.0))})
    signals, skipped = ticker_signals(bars, D(2021, 6, 30))
    assert signals.empty
    assert skipped.to_dict("records") == [
        {"symbol": "FLAT", "reason": "no price movement in 100 sessions"}
    ]


def test_bad_arguments_are_refused():
    bars = _bars({"A": np.zeros(100)})
    with pytest.raises(ValueError, match="close"):
        ticker_signals(bars.drop(columns=["close"]), D(2021, 6, 30))
    with pytest.raises(ValueError, match="min_history"):
        ticker_signals(bars, D(2021, 6, 30), min_history=5)
    with pytest.raises(ValueError, match="min_history"):
        ticker_signals(bars, D(2021, 6, 30), lookback=50, min_history=60)


def test_a_session_before_any_data_gives_empty_frames():
    signals, skipped = ticker_signals(_bars({"A": np.zeros(100)}), D(2001, 1, 2))
    assert signals.empty and list(signals.columns) == SIGNAL_COLUMNS
    assert skipped.empty


# ---------------------------------------------------------------------------- real bars
@pytest.fixture(scope="module")
def nvda() -> pd.DataFrame:
    raw = pd.read_csv(FIXTURES / "nvda-1999-2014.csv")
    return pd.DataFrame(
        {"session": pd.to_datetime(raw["Date"]), "symbol": "NVDA", "close": raw["Close"]}
    )


@pytest.mark.parametrize(
    "session", [D(2007, 6, 29), D(2008, 6, 30), D(2008, 10, 10), D(2008, 10, 31), D(2009, 6, 30)]
)
def test_nvda_around_2008_gives_finite_sane_signals(nvda, session):
    signals, skipped = ticker_signals(nvda, session)
    assert skipped.empty and len(signals) == 1
    row = signals.iloc[0]
    numeric = signals.drop(columns=["symbol", "session"]).to_numpy(dtype=float)
    assert np.isfinite(numeric).all()
    last_close = nvda.loc[nvda["session"] <= pd.Timestamp(session), "close"].iloc[-1]
    assert row["close"] == pytest.approx(last_close)
    assert 0.2 < row["vol_long"] < 1.5 and 0.1 < row["vol_ewma"] < 2.0
    assert 10.0 <= row["cycle_period"] <= 126.0
    assert abs(row["drift_daily"]) < 0.01
    ahead = forecast(signals, np.array([30.0]))
    assert (ahead["forecast_low"] < ahead["forecast_price"]).all()
    assert (ahead["forecast_price"] < ahead["forecast_high"]).all()
    assert ahead["forecast_price"].iloc[0] / row["close"] == pytest.approx(1.0, abs=0.25)
    assert 0.1 < ahead["vol_forecast"].iloc[0] < 1.5


def test_nvda_crash_reads_as_turbulent(nvda):
    calm, _ = ticker_signals(nvda, D(2008, 6, 30))
    crash, _ = ticker_signals(nvda, D(2008, 10, 31))
    assert crash["vol_ewma"].iloc[0] > 1.2 * crash["vol_long"].iloc[0]
    assert crash["garch_var_now"].iloc[0] > crash["garch_omega"].iloc[0] / 0.02
    assert crash["stability"].iloc[0] < 0.5 * calm["stability"].iloc[0]
    assert crash["drift_daily"].iloc[0] < 0.0


# ---------------------------------------------------------------------------- speed
def test_a_500_ticker_universe_takes_well_under_a_second():
    rng = np.random.default_rng(99)
    sd = rng.uniform(0.01, 0.04, 500)
    walks = np.log(50.0) + np.cumsum(rng.standard_normal((N_SESSIONS, 500)) * sd, axis=0)
    sessions = pd.bdate_range(end="2021-06-30", periods=N_SESSIONS)
    history = pd.DataFrame(
        {
            "session": np.repeat(sessions.to_numpy(), 500),
            "symbol": np.tile([f"S{i:03d}" for i in range(500)], N_SESSIONS),
            "close": np.exp(walks).ravel(),
        }
    )
    started = time.perf_counter()
    signals, _ = ticker_signals(history, D(2021, 6, 30))
    rows = signals.loc[signals.index.repeat(20)]
    ahead = forecast(rows, np.tile(np.arange(5.0, 105.0, 5.0), len(signals)))
    elapsed = time.perf_counter() - started
    print(f"\n500 tickers x {N_SESSIONS} sessions + 10,000 forecasts: {elapsed * 1000:.0f} ms")
    assert len(signals) == 500 and len(ahead) == 10_000
    assert elapsed < 3.0
