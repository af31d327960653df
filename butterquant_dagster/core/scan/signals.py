"""Per-ticker price signals for the butterfly scanner, and the forecast they imply.

The scanner scores every candidate butterfly of every ticker each session, so the signals
must cost milliseconds for the whole universe, not seconds per ticker as the original
ButterQuant's per-ticker GARCH fit and FFT loop did. Everything here works on one
(sessions × tickers) matrix of log closes: the maths is vectorised across tickers, and the
only Python loop is over time in the GARCH filter.

Only closes on or before the session are used (rows dated later are dropped first), so a
signal never sees the future. Formulas and the reasons behind them: ``docs/scan_signals.md``.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar

TRADING_DAYS = 252.0
CALENDAR_DAYS = 365.0
# A gap of up to this many sessions is bridged by carrying the last close forward; a longer
# gap cuts the history, and only the closes after it are used.
MAX_FILL_SESSIONS = 3
# RiskMetrics daily decay for the EWMA volatility.
EWMA_LAMBDA = 0.94
# Pooled GARCH(1,1) persistence (see the docs): alpha + beta = 0.98, a 34-session half-life.
GARCH_ALPHA = 0.06
GARCH_BETA = 0.92
SHORT_WINDOW = 20  # sessions of the short realized volatility and of return_20d
MIN_CYCLE_PERIOD = 10.0  # sessions; shorter "cycles" are noise and shorter than any expiry
LARGE_MOVE_SIGMAS = 3.0  # a large move is beyond this many robust standard deviations
GAUSSIAN_LARGE_SHARE = 0.0027  # P(|z| > 3) for a normal distribution
LARGE_SHARE_TO_ZERO = 0.05  # an excess share of large moves this big drives stability to 0
# The OLS slope of a driftless random walk of n steps has standard deviation
# sigma * sqrt(6 / (5 n)) (sigma = daily return volatility); used to judge a trend's significance.
_RW_SLOPE_VAR = 6.0 / 5.0
_MIN_HISTORY_FLOOR = 2 * int(MIN_CYCLE_PERIOD) + 2

SIGNAL_COLUMNS = [
    "symbol",
    "session",
    "close",
    "n_obs",
    "drift_daily",
    "trend_r2",
    "cycle_period",
    "cycle_amplitude",
    "cycle_phase",
    "cycle_power_share",
    "vol_ewma",
    "vol_long",
    "garch_omega",
    "garch_alpha",
    "garch_beta",
    "garch_var_now",
    "stability",
    "return_20d",
]
SKIPPED_COLUMNS = ["symbol", "reason"]
_FORECAST_INPUTS = (
    "close",
    "drift_daily",
    "trend_r2",
    "cycle_period",
    "cycle_amplitude",
    "cycle_phase",
    "cycle_power_share",
    "vol_long",
    "garch_alpha",
    "garch_beta",
    "garch_var_now",
)
FORECAST_COLUMNS = [
    "horizon_sessions",
    "forecast_price",
    "forecast_low",
    "forecast_high",
    "vol_forecast",
]


# ---------------------------------------------------------------------------- the price matrix
def _closes_up_to(history: pd.DataFrame, session: pd.Timestamp) -> pd.DataFrame:
    """(session, symbol, close) rows on or before ``session``: the no-look-ahead gate."""
    missing = [c for c in ("session", "symbol", "close") if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing column(s) {missing}; found {list(history.columns)}")
    rows = pd.DataFrame(
        {
            "session": pd.to_datetime(history["session"]).dt.normalize(),
            "symbol": history["symbol"].astype(str),
            "close": pd.to_numeric(history["close"], errors="coerce"),
        }
    )
    return rows[rows["session"] <= session]


def _valid_closes(rows: pd.DataFrame) -> pd.DataFrame:
    """Positive, finite closes, one per (session, symbol): the last row wins a duplicate."""
    valid = rows[np.isfinite(rows["close"]) & (rows["close"] > 0)]
    return valid.drop_duplicates(["session", "symbol"], keep="last")


def _price_matrix(valid: pd.DataFrame, lookback: int) -> pd.DataFrame:
    """Closes as a (sessions × tickers) matrix over the last ``lookback`` sessions.

    The sessions are the union of those any ticker traded, so a ticker's missing session is a
    NaN in its column; short gaps are bridged with the last close, longer ones stay NaN.
    """
    matrix = valid.pivot(index="session", columns="symbol", values="close").sort_index()
    return matrix.ffill(limit=MAX_FILL_SESSIONS).iloc[-lookback:]


def _trailing_run(log_close: np.ndarray) -> np.ndarray:
    """Per ticker, how many rows at the end of the matrix are unbroken by a NaN."""
    missing = np.isnan(log_close)
    n_rows = log_close.shape[0]
    any_missing = missing.any(axis=0)
    last_missing = n_rows - 1 - np.argmax(missing[::-1], axis=0)
    return np.where(any_missing, n_rows - 1 - last_missing, n_rows)


# ---------------------------------------------------------------------------- masked statistics
def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, values, 0.0).sum(axis=0) / mask.sum(axis=0)


def _trend(y: np.ndarray, mask: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Least-squares line through each ticker's log closes: slope, R² and residuals."""
    mean_t = _masked_mean(np.broadcast_to(t[:, None], y.shape), mask)
    mean_y = _masked_mean(y, mask)
    dt_ = np.where(mask, t[:, None] - mean_t, 0.0)
    dy = np.where(mask, y - mean_y, 0.0)
    slope = (dt_ * dy).sum(axis=0) / (dt_ * dt_).sum(axis=0)
    resid = dy - slope * dt_
    rss = (resid * resid).sum(axis=0)
    tss = (dy * dy).sum(axis=0)
    return {"slope": slope, "r2": 1.0 - rss / tss, "resid": resid, "rss": rss}


def _trend_strength(r2: np.ndarray, slope: np.ndarray, sd: np.ndarray, n_ret: np.ndarray):
    """R² of the trend line, discounted by how unlikely its slope is under a random walk.

    A line fitted to a driftless random walk has a large R² (a spurious regression), so R²
    alone would call most stocks trending. The slope's t-statistic against a random walk with
    the same daily volatility gives the James-Stein factor max(0, 1 - 1/t²): zero for the
    slopes that chance produces, close to one for a clear trend.
    """
    t_stat = slope / (sd * np.sqrt(_RW_SLOPE_VAR / n_ret))
    with np.errstate(divide="ignore"):
        significance = np.clip(1.0 - 1.0 / (t_stat * t_stat), 0.0, 1.0)
    return np.clip(r2, 0.0, 1.0) * significance


def _dominant_frequency(resid: np.ndarray, n_obs: np.ndarray) -> np.ndarray:
    """Cycles per session of each ticker's strongest cycle with period in [10, n_obs / 2].

    The periodogram of the detrended log prices is whitened by 4 sin²(πf), the spectrum of a
    random walk's levels relative to its returns. Unwhitened, prices are red noise and the
    longest period allowed would win for nearly every stock; whitened, the peak is the cycle
    that stands out most from a random walk. Zero padding to a long FFT gives a fine frequency
    grid (about 0.4 sessions of resolution at a 40-session period).
    """
    n_rows = resid.shape[0]
    n_fft = 1 << int(np.ceil(np.log2(16 * n_rows)))
    spectrum = np.fft.rfft(resid, n=n_fft, axis=0)
    freq = np.fft.rfftfreq(n_fft)
    power = (spectrum.real**2 + spectrum.imag**2) * (4.0 * np.sin(np.pi * freq) ** 2)[:, None]
    in_band = (freq[:, None] >= 2.0 / n_obs[None, :]) & (freq[:, None] <= 1.0 / MIN_CYCLE_PERIOD)
    return freq[np.argmax(np.where(in_band, power, -1.0), axis=0)]


def _cycle(y, mask, t, freq, rss_trend) -> dict[str, np.ndarray]:
    """Fit level + trend + one sinusoid at ``freq`` jointly; amplitude, phase, variance share.

    Fitting the trend and the sinusoid together (four regressors, one small solve per ticker)
    avoids the bias of fitting a sinusoid to residuals when the window is not a whole number
    of cycles. The share is the partial R² of the sinusoid: the fraction of the detrended
    variance it removes.
    """
    omega = 2.0 * np.pi * freq
    m = mask.astype(float)
    scaled_t = t[:, None] / max(len(t), 1) * m
    angle = np.outer(t, omega)
    design = np.stack([m, scaled_t, np.cos(angle) * m, np.sin(angle) * m], axis=2)
    target = np.where(mask, y, 0.0)
    gram = np.einsum("wnk,wnl->nkl", design, design)
    moment = np.einsum("wnk,wn->nk", design, target)
    coef = np.linalg.solve(gram, moment[:, :, None])[:, :, 0]
    resid = target - np.einsum("wnk,nk->wn", design, coef)
    rss = (resid * resid).sum(axis=0)
    a, b = coef[:, 2], coef[:, 3]
    # a cos(wt) + b sin(wt) = A cos(wt - phi0); the phase at the last row is w t_end - phi0.
    phase = np.mod(omega * t[-1] - np.arctan2(b, a), 2.0 * np.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip((rss_trend - rss) / rss_trend, 0.0, 1.0)
    return {"amplitude": np.hypot(a, b), "phase": phase, "share": np.nan_to_num(share)}


# ---------------------------------------------------------------------------- volatility
def _ewma_variance(r2: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RiskMetrics EWMA of squared returns, weights renormalised over each ticker's history."""
    age = np.arange(r2.shape[0] - 1, -1, -1, dtype=float)
    weights = np.where(mask, (EWMA_LAMBDA**age)[:, None], 0.0)
    return (weights * np.where(mask, r2, 0.0)).sum(axis=0) / weights.sum(axis=0)


def _garch_filter(r2: np.ndarray, mask: np.ndarray, long_var: np.ndarray) -> np.ndarray:
    """Next-session conditional variance from the pooled, variance-targeted GARCH(1,1).

    Before a ticker's history starts its squared return is taken as the long variance, which
    keeps the recursion at its fixed point there, so ragged histories need no special case.
    """
    omega = (1.0 - GARCH_ALPHA - GARCH_BETA) * long_var
    shocks = np.where(mask, r2, long_var[None, :])
    var = long_var.copy()
    for row in shocks:
        var = omega + GARCH_ALPHA * row + GARCH_BETA * var
    return var


def _large_move_share(returns: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of returns beyond 3 robust sigmas (1.4826 × MAD, which the jumps cannot inflate)."""
    masked = np.where(mask, returns, np.nan)
    centre = np.nanmedian(masked, axis=0)
    robust_sd = 1.4826 * np.nanmedian(np.abs(masked - centre), axis=0)
    large = np.abs(masked - centre) > LARGE_MOVE_SIGMAS * robust_sd
    return (large & mask).sum(axis=0) / mask.sum(axis=0)


def _stability(short_sd, long_sd, large_share, trend_r2) -> np.ndarray:
    """calm × tails × range-bound, each in [0, 1]; see docs/scan_signals.md."""
    with np.errstate(divide="ignore"):
        calm = np.clip(long_sd / short_sd, 0.0, 1.0)  # 20 unchanged closes count as calm
    excess = np.maximum(large_share - GAUSSIAN_LARGE_SHARE, 0.0)
    tails = np.clip(1.0 - excess / LARGE_SHARE_TO_ZERO, 0.0, 1.0)
    return calm * tails * (1.0 - trend_r2)


# ---------------------------------------------------------------------------- assembly
def _volatility(returns: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Daily return statistics: long and short variance, EWMA, GARCH and large-move share."""
    n_ret = mask.sum(axis=0)
    demeaned = np.where(mask, returns - _masked_mean(returns, mask), 0.0)
    long_var = (demeaned * demeaned).sum(axis=0) / (n_ret - 1)
    short = returns[-SHORT_WINDOW:]  # always inside the history: min_history > SHORT_WINDOW
    r2 = returns * returns
    return {
        "n_ret": n_ret,
        "long_var": long_var,
        "short_sd": short.std(axis=0, ddof=1),
        "ewma_var": _ewma_variance(r2, mask),
        "garch_var": _garch_filter(r2, mask, long_var),
        "large_share": _large_move_share(returns, mask),
    }


def _compute(log_close: np.ndarray, n_obs: np.ndarray) -> dict[str, np.ndarray]:
    """All signals for tickers whose last ``n_obs`` rows of ``log_close`` are complete."""
    n_rows = log_close.shape[0]
    t = np.arange(n_rows, dtype=float)
    mask = t[:, None] >= (n_rows - n_obs)[None, :]
    y = np.where(mask, log_close, 0.0)
    vol = _volatility(np.diff(y, axis=0), mask[1:] & mask[:-1])
    long_sd = np.sqrt(vol["long_var"])
    trend = _trend(y, mask, t)
    strength = _trend_strength(trend["r2"], trend["slope"], long_sd, vol["n_ret"])
    freq = _dominant_frequency(trend["resid"], n_obs)
    cycle = _cycle(y, mask, t, freq, trend["rss"])
    return {
        "close": np.exp(log_close[-1]),
        "n_obs": n_obs,
        "drift_daily": trend["slope"],
        "trend_r2": strength,
        "cycle_period": 1.0 / freq,
        "cycle_amplitude": cycle["amplitude"],
        "cycle_phase": cycle["phase"],
        "cycle_power_share": cycle["share"],
        "vol_ewma": np.sqrt(TRADING_DAYS * vol["ewma_var"]),
        "vol_long": np.sqrt(TRADING_DAYS) * long_sd,
        "garch_omega": (1.0 - GARCH_ALPHA - GARCH_BETA) * vol["long_var"],
        "garch_alpha": np.full(len(n_obs), GARCH_ALPHA),
        "garch_beta": np.full(len(n_obs), GARCH_BETA),
        "garch_var_now": vol["garch_var"],
        "stability": _stability(vol["short_sd"], long_sd, vol["large_share"], strength),
        "return_20d": np.exp(log_close[-1] - log_close[-1 - SHORT_WINDOW]) - 1.0,
    }


def _sessions_since(last_seen: pd.Series, session: pd.Timestamp) -> pd.Series:
    """NYSE sessions after each ticker's last close, up to and including ``session``."""
    first = max(last_seen.min().date(), calendar.CALENDAR_FIRST_DAY)
    days = pd.to_datetime(calendar.sessions(first, session.date())).to_numpy()
    after = len(days) - np.searchsorted(days, last_seen.to_numpy(), side="right")
    return pd.Series(after, index=last_seen.index)


def _skip_reasons(
    matrix: pd.DataFrame, n_obs: np.ndarray, min_history: int, last_seen: pd.Series, at
) -> list[str | None]:
    """Why each ticker (column) of ``matrix`` is left out, or None when it is kept."""
    values = matrix.to_numpy(dtype=float)
    in_run = np.arange(len(matrix))[:, None] >= (len(matrix) - n_obs)[None, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN runs of stale tickers
        run = np.where(in_run, values, np.nan)
        flat = np.nanmax(run, axis=0) == np.nanmin(run, axis=0)
    since = _sessions_since(last_seen[matrix.columns], at)
    reasons: list[str | None] = []
    for i, column in enumerate(matrix.columns):
        if n_obs[i] == 0 or since[column] > MAX_FILL_SESSIONS:
            reasons.append(
                f"stale: last close {last_seen[column].date()}, "
                f"{since[column]} sessions before {at.date()}"
            )
        elif n_obs[i] < min_history:
            gap = " after a gap" if np.isfinite(values[:, i]).sum() > n_obs[i] else ""
            reasons.append(f"insufficient history: {n_obs[i]} of {min_history} sessions{gap}")
        elif flat[i]:
            reasons.append(f"no price movement in {n_obs[i]} sessions")
        else:
            reasons.append(None)
    return reasons


def _skipped_frame(symbols: list[str], columns: pd.Index, reasons: list) -> pd.DataFrame:
    """Reasons for the skipped tickers, including those with no valid close at all."""
    by_symbol = dict(zip(columns.astype(str), reasons, strict=True))
    lines = []
    for symbol in symbols:
        reason = by_symbol.get(symbol, "no valid close on or before the session")
        if reason is not None:
            lines.append((symbol, reason))
    return pd.DataFrame(lines, columns=SKIPPED_COLUMNS)


def ticker_signals(
    history: pd.DataFrame,
    session: dt.date,
    *,
    lookback: int = 252,
    min_history: int = 60,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Signals per ticker from its closes up to and including ``session``.

    ``history`` holds DAILY_BARS rows (only ``session``, ``symbol`` and ``close`` are read) in
    any order; rows after ``session`` are ignored, so adding later bars changes nothing. A
    ticker needs ``min_history`` unbroken closes (gaps of up to three sessions are bridged),
    the last at most three NYSE sessions before ``session``; ``close`` is that last close.
    Returns
    ``(signals, skipped)``: one row per kept ticker with :data:`SIGNAL_COLUMNS`, and
    ``symbol, reason`` for every other ticker with a row on or before the session. Both are
    sorted by symbol.
    """
    if min_history < _MIN_HISTORY_FLOOR or lookback < min_history:
        raise ValueError(
            f"need {_MIN_HISTORY_FLOOR} <= min_history <= lookback, "
            f"got min_history={min_history}, lookback={lookback}"
        )
    at = pd.Timestamp(session).normalize()
    rows = _closes_up_to(history, at)
    symbols = sorted(rows["symbol"].unique())
    valid = _valid_closes(rows)
    matrix = _price_matrix(valid, lookback)
    if matrix.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS), _skipped_frame(symbols, matrix.columns, [])
    log_close = np.log(matrix.to_numpy(dtype=float))
    n_obs = _trailing_run(log_close)
    last_seen = valid.groupby("symbol")["session"].max()
    reasons = _skip_reasons(matrix, n_obs, min_history, last_seen, at)
    keep = np.array([reason is None for reason in reasons])
    values = _compute(log_close[:, keep], n_obs[keep]) if keep.any() else {}
    signals = pd.DataFrame(
        {"symbol": matrix.columns[keep].astype(str), "session": at, **values}
    ).reindex(columns=SIGNAL_COLUMNS)
    signals["n_obs"] = signals["n_obs"].astype("int64")
    return signals, _skipped_frame(symbols, matrix.columns, reasons)


# ---------------------------------------------------------------------------- forecast
def _mean_garch_variance(now, long, persistence, sessions) -> np.ndarray:
    """Average expected daily variance over the next ``sessions`` sessions.

    GARCH(1,1) forecasts E[h_{T+k}] = long + p^(k-1) (h_{T+1} - long); averaging k = 1..H gives
    long + (now - long) (1 - p^H) / (H (1 - p)). At least one session is averaged.
    """
    h = np.maximum(sessions, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        decay = (1.0 - persistence**h) / (h * (1.0 - persistence))
    return long + (now - long) * np.where(persistence < 1.0, decay, 1.0)


def forecast(signals_rows: pd.DataFrame, horizon_days: np.ndarray) -> pd.DataFrame:
    """Expected price, one-sigma band and average volatility at each row's horizon.

    ``signals_rows`` has one row per candidate with its ticker's signal columns;
    ``horizon_days`` are calendar days (an array of the same length, or a scalar). The
    drift and the cycle are shrunk by ``trend_r2`` and ``cycle_power_share``, so a weak signal
    forecasts almost no move. Returns :data:`FORECAST_COLUMNS`, indexed like ``signals_rows``.
    """
    rows = signals_rows
    days = np.broadcast_to(np.asarray(horizon_days, dtype=float), (len(rows),))
    sessions = days * TRADING_DAYS / CALENDAR_DAYS
    col = {name: rows[name].to_numpy(dtype=float) for name in _FORECAST_INPUTS}
    phase = col["cycle_phase"]
    cycle_change = col["cycle_amplitude"] * (
        np.cos(phase + 2.0 * np.pi * sessions / col["cycle_period"]) - np.cos(phase)
    )
    mean_move = (
        col["trend_r2"] * col["drift_daily"] * sessions + col["cycle_power_share"] * cycle_change
    )
    persistence = col["garch_alpha"] + col["garch_beta"]
    long_var = col["vol_long"] ** 2 / TRADING_DAYS
    avg_var = _mean_garch_variance(col["garch_var_now"], long_var, persistence, sessions)
    band = np.sqrt(avg_var * sessions)
    centre = col["close"] * np.exp(mean_move)
    return pd.DataFrame(
        {
            "horizon_sessions": sessions,
            "forecast_price": centre,
            "forecast_low": centre * np.exp(-band),
            "forecast_high": centre * np.exp(band),
            "vol_forecast": np.sqrt(TRADING_DAYS * avg_var),
        },
        index=rows.index,
    )
