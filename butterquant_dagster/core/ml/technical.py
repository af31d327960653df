"""Technical signals per ticker for the buy/hold/sell ensemble: trend, mean reversion,
momentum, volatility regime and the Hurst exponent.

Each signal is a direction in {-1, 0, +1} (down, no view, up for the price), a confidence in
[0, 1] (how strongly it holds that direction; 0 when it has no view) and the raw values it
came from, so the classifier in ``ensemble.py`` can learn from the raw values and a human can
read the directions.

Everything is computed once on (sessions × tickers) matrices, as ``core/scan/signals.py``
does, and every statistic at a row uses only that row and earlier ones: the whole history
can be computed in one pass for training (``signals_at_sessions``) and agree exactly with
``technical_signals`` run on the data cut at each session. The only Python loop is over time
in the exponential smoothers (EMA, Wilder), with every ticker updated at once.

Formulas, thresholds and the reasons behind them: ``docs/signal_ensemble.md``.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd

from butterquant_dagster.core import calendar

# A gap of up to this many sessions is bridged with the last close; a longer one restarts
# the ticker's history (the same rule as the scanner's signals).
MAX_FILL_SESSIONS = 3
EMA_SPANS = (8, 21, 55)
ADX_PERIOD = 14
ADX_FULL = 50.0  # ADX at which the trend confidence reaches 1 (above 50 is a very strong trend)
Z_WINDOW = 50
BB_WINDOW, BB_WIDTH = 20, 2.0
MR_ENTRY_Z = 2.0  # stretched: |z| of at least 2 (close outside the Bollinger band)
MR_FULL_Z = 4.0  # a 4-sd stretch has full confidence
MOM_WINDOWS = (21, 63, 126)
MOM_ENTRY = 0.5  # momentum score (random-walk standard deviations) needed for a direction
MOM_FULL = 2.0
VOL_SHORT, VOL_LONG = 10, 60
VOL_CALM, VOL_EXPANDING = 0.8, 1.25  # short/long volatility ratio thresholds
HURST_LAGS = (1, 2, 4, 8, 16)
HURST_WINDOW = 504  # log prices (two years) at most; fewer when the history is shorter
MIN_HISTORY_FLOOR = max(MOM_WINDOWS) + 1  # the 126-session return needs 127 closes

DIRECTION_COLUMNS = ["trend_dir", "mr_dir", "mom_dir", "volreg_dir"]
SIGNAL_COLUMNS = [
    "symbol",
    "session",
    "close",
    "trend_dir",
    "trend_conf",
    "ema8",
    "ema21",
    "ema55",
    "adx",
    "mr_dir",
    "mr_conf",
    "zscore50",
    "bollinger_pctb",
    "mom_dir",
    "mom_conf",
    "mom21",
    "mom63",
    "mom126",
    "volreg_dir",
    "volreg_conf",
    "vol_ratio",
    "hurst",
]
VALUE_COLUMNS = SIGNAL_COLUMNS[2:]
SKIPPED_COLUMNS = ["symbol", "reason"]
_INPUT_COLUMNS = ("session", "symbol", "high", "low", "close")


# ---------------------------------------------------------------------------- the matrices
def _bars_up_to(history: pd.DataFrame, at: pd.Timestamp | None) -> pd.DataFrame:
    """(session, symbol, high, low, close) rows on or before ``at``: the no-look-ahead gate."""
    missing = [c for c in _INPUT_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing column(s) {missing}; found {list(history.columns)}")
    rows = pd.DataFrame(
        {
            "session": pd.to_datetime(history["session"]).dt.normalize(),
            "symbol": history["symbol"].astype(str),
            **{c: pd.to_numeric(history[c], errors="coerce") for c in ("high", "low", "close")},
        }
    )
    return rows if at is None else rows[rows["session"] <= at]


def _valid_bars(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with a positive, finite close, one per (session, symbol): the last one wins."""
    valid = rows[np.isfinite(rows["close"]) & (rows["close"] > 0)]
    return valid.drop_duplicates(["session", "symbol"], keep="last")


def close_matrix(history: pd.DataFrame) -> pd.DataFrame:
    """Valid closes as a (sessions × tickers) matrix, unbridged: NaN where a ticker has none.

    The rows are every session any ticker has a bar on, the same rows the signals use, so
    "``h`` sessions later" means the same thing for signals and for labels.
    """
    valid = _valid_bars(_bars_up_to(history, None))
    return valid.pivot(index="session", columns="symbol", values="close").sort_index()


def _matrices(valid: pd.DataFrame) -> dict:
    """Bridged close, high and low matrices, and each ticker's unbroken run length (age).

    On a bridged session high = low = close (no trading seen). A high below the close or a
    missing high is replaced by the close (and likewise the low), so the true range never
    comes out negative from a bad bar.
    """
    raw = valid.pivot(index="session", columns="symbol", values="close").sort_index()
    close = raw.ffill(limit=MAX_FILL_SESSIONS)
    c = close.to_numpy(dtype=float)
    bridged = raw.isna().to_numpy() & np.isfinite(c)
    extremes = {}
    for name, pick in (("high", np.fmax), ("low", np.fmin)):
        value = valid.pivot(index="session", columns="symbol", values=name)
        value = value.reindex(index=close.index, columns=close.columns).to_numpy(dtype=float)
        extremes[name] = np.where(bridged, c, pick(value, c))
    return {
        "sessions": close.index,
        "symbols": close.columns.astype(str),
        "close": c,
        "high": extremes["high"],
        "low": extremes["low"],
        "age": _run_age(np.isfinite(c)),
    }


def _run_age(valid: np.ndarray) -> np.ndarray:
    """Per cell, how many rows the ticker's unbroken run has lasted up to it (0 if no close)."""
    t = np.arange(valid.shape[0])[:, None]
    last_break = np.maximum.accumulate(np.where(valid, -1, t), axis=0)
    return np.where(valid, t - last_break, 0)


# ---------------------------------------------------------------------------- smoothing
def _seeded_smooth(x: np.ndarray, age: np.ndarray, periods: np.ndarray, alpha: np.ndarray):
    """Exponential smoothing seeded with the simple mean of a run's first ``period`` values.

    ``x`` and ``age`` are (sessions, series, tickers); ``periods`` and ``alpha`` per series.
    While a run has at most ``period`` values the weight 1/age makes the state their running
    mean (the conventional SMA seed of an EMA and of Wilder's smoothing); after that the
    weight is ``alpha``. A cell with age 0 (no value) resets the state, so a new run after a
    gap starts afresh.
    """
    out = np.full(x.shape, np.nan)
    state = np.full(x.shape[1:], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(x.shape[0]):
            a = age[i]
            weight = np.where(a <= periods, 1.0 / a, alpha)
            step = np.where(a == 1, x[i], state + weight * (x[i] - state))
            state = np.where(a == 0, np.nan, step)
            out[i] = state
    return out


def _lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` shifted down by ``lag`` rows (NaN at the top)."""
    out = np.full(values.shape, np.nan)
    out[lag:] = values[:-lag]
    return out


def _directional_movement(m: dict) -> dict[str, np.ndarray]:
    """Wilder's true range and directional movements (valid from a run's second bar)."""
    h, lo, c = m["high"], m["low"], m["close"]
    prev_c, prev_h, prev_lo = _lagged(c, 1), _lagged(h, 1), _lagged(lo, 1)
    true_range = np.fmax(h - lo, np.fmax(np.abs(h - prev_c), np.abs(lo - prev_c)))
    up, down = h - prev_h, prev_lo - lo
    return {
        "tr": true_range,
        "plus_dm": np.where((up > down) & (up > 0), up, 0.0),
        "minus_dm": np.where((down > up) & (down > 0), down, 0.0),
    }


def _ema_and_adx(m: dict) -> dict[str, np.ndarray]:
    """EMA 8/21/55 of the close and Wilder's ADX(14), in two smoothing passes over time."""
    age = m["age"]
    dm = _directional_movement(m)
    dm_age = np.maximum(age - 1, 0)  # the movements need the previous bar of the run
    n = ADX_PERIOD
    spans = np.array([*EMA_SPANS, n, n, n], dtype=float)[:, None]
    alpha = np.r_[[2.0 / (s + 1.0) for s in EMA_SPANS], [1.0 / n] * 3][:, None]
    stacked = np.stack([m["close"]] * 3 + [dm["tr"], dm["plus_dm"], dm["minus_dm"]], axis=1)
    ages = np.stack([age] * 3 + [dm_age] * 3, axis=1)
    smooth = _seeded_smooth(stacked, ages, spans, alpha)
    atr, plus, minus = smooth[:, 3], smooth[:, 4], smooth[:, 5]
    with np.errstate(divide="ignore", invalid="ignore"):
        di_plus, di_minus = 100.0 * plus / atr, 100.0 * minus / atr
        di_sum = di_plus + di_minus
        dx = np.where(di_sum > 0, 100.0 * np.abs(di_plus - di_minus) / di_sum, 0.0)
    # Wilder's DX starts once the true range has its full 14-bar seed; ADX seeds on 14 DXs.
    dx_age = np.maximum(dm_age - (n - 1), 0)
    adx = _seeded_smooth(dx[:, None], dx_age[:, None], np.array([[n]]), np.array([[1.0 / n]]))
    return {
        "ema8": smooth[:, 0],
        "ema21": smooth[:, 1],
        "ema55": smooth[:, 2],
        "adx": np.where(dx_age >= n, adx[:, 0], np.nan),
    }


# ---------------------------------------------------------------------------- rolling statistics
def _rolling(values: np.ndarray, window: int, how: str, ddof: int = 0) -> np.ndarray:
    """Trailing-window statistic per ticker; NaN unless all ``window`` rows have a value."""
    roll = pd.DataFrame(values).rolling(window, min_periods=window)
    out = roll.std(ddof=ddof) if how == "std" else roll.mean()
    return out.to_numpy()


def _mean_reversion(c: np.ndarray) -> dict[str, np.ndarray]:
    """Close z-score against its 50-session mean and the Bollinger %B (20, 2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z50 = (c - _rolling(c, Z_WINDOW, "mean")) / _rolling(c, Z_WINDOW, "std")
        mid, sd = _rolling(c, BB_WINDOW, "mean"), _rolling(c, BB_WINDOW, "std")
        pctb = (c - (mid - BB_WIDTH * sd)) / (2.0 * BB_WIDTH * sd)
    return {"zscore50": z50, "bollinger_pctb": pctb}


def _returns(c: np.ndarray) -> dict[str, np.ndarray]:
    """Simple returns over 21/63/126 sessions and the 10- and 60-session realized volatility."""
    log_ret = np.log(c) - np.log(_lagged(c, 1))
    out = {f"mom{k}": c / _lagged(c, k) - 1.0 for k in MOM_WINDOWS}
    out["vol_short"] = _rolling(log_ret, VOL_SHORT, "std", ddof=1)
    out["vol_long"] = _rolling(log_ret, VOL_LONG, "std", ddof=1)
    return out


def _overlap_factor(m: np.ndarray, lag: int) -> np.ndarray:
    """E[sample variance of overlapping lag-differences] / (lag σ²) for a random walk.

    ``m`` overlapping differences of a random walk are correlated, so their sample variance
    (mean removed) is biased low, by 13 % at lag 16 over 130 prices; dividing by this factor
    removes that bias (derivation in the docs).
    """
    return m / (m - 1.0) * (1.0 - lag / m + (lag * lag - 1.0) / (3.0 * m * m))


def _window_sum(prefix: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Sum of the last ``count`` rows ending at each row, from prefix sums (row 0 = 0)."""
    t = np.arange(1, prefix.shape[0])[:, None]
    start = np.clip(t - count, 0, None)
    return prefix[1:] - np.take_along_axis(prefix, start, axis=0)


def _hurst(log_c: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Hurst exponent from the variance of lagged differences of log prices.

    Var(y_{t+τ} − y_t) ∝ τ^{2H}, so H is half the slope of ln(variance) on ln τ over
    τ = 1, 2, 4, 8, 16, each variance taken over the ticker's last min(run, 504) log prices
    and corrected for the overlap bias.
    """
    prices = np.minimum(age, HURST_WINDOW)
    x = np.log(np.array(HURST_LAGS, dtype=float))
    x = x - x.mean()
    slope = np.zeros(log_c.shape)
    for weight, lag in zip(x / (x * x).sum(), HURST_LAGS, strict=True):
        diff = np.where(age > lag, log_c - _lagged(log_c, lag), 0.0)
        zero = np.zeros((1, log_c.shape[1]))
        count = np.maximum(prices - lag, 0)
        s1 = _window_sum(np.vstack([zero, np.cumsum(diff, axis=0)]), count)
        s2 = _window_sum(np.vstack([zero, np.cumsum(diff * diff, axis=0)]), count)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = (s2 - s1 * s1 / count) / (count - 1.0) / _overlap_factor(count, lag)
            log_var = np.where((count > 2 * lag) & (var > 0), np.log(var), np.nan)
        slope = slope + weight * log_var
    return slope / 2.0


# ---------------------------------------------------------------------------- the signals
def _trend_signal(v: dict) -> tuple[np.ndarray, np.ndarray]:
    """Up when EMA 8 > 21 > 55, down when 8 < 21 < 55; confidence ADX / 50 (capped at 1)."""
    up = (v["ema8"] > v["ema21"]) & (v["ema21"] > v["ema55"])
    down = (v["ema8"] < v["ema21"]) & (v["ema21"] < v["ema55"])
    direction = up.astype(float) - down
    return direction, np.clip(v["adx"] / ADX_FULL, 0.0, 1.0) * np.abs(direction)


def _mr_signal(v: dict) -> tuple[np.ndarray, np.ndarray]:
    """A close stretched 2+ sd above its means points down (-1), below them up (+1)."""
    z20 = 2.0 * BB_WIDTH * (v["bollinger_pctb"] - 0.5)  # %B as a z-score against the 20 mean
    high = np.maximum(v["zscore50"], z20)
    low = np.minimum(v["zscore50"], z20)
    above = (high >= MR_ENTRY_Z) & (high >= -low)
    below = (low <= -MR_ENTRY_Z) & (-low > high)
    direction = below.astype(float) - above
    stretch = np.where(above, high, np.where(below, -low, 0.0))
    return direction, np.clip(stretch / MR_FULL_Z, 0.0, 1.0)


def _momentum_signal(v: dict) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the three log returns in random-walk standard deviations (σ₆₀ √k)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = [np.log1p(v[f"mom{k}"]) / (v["vol_long"] * np.sqrt(k)) for k in MOM_WINDOWS]
    score = np.mean(scores, axis=0)
    direction = np.where(np.abs(score) >= MOM_ENTRY, np.sign(score), 0.0)
    return direction, np.clip(np.abs(score) / MOM_FULL, 0.0, 1.0) * np.abs(direction)


def _volreg_signal(v: dict) -> tuple[np.ndarray, np.ndarray]:
    """Calming (ratio < 0.8) is +1, expanding (> 1.25) is -1; a doubling is full confidence."""
    ratio = v["vol_ratio"]
    direction = (ratio < VOL_CALM).astype(float) - (ratio > VOL_EXPANDING)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.abs(np.log(ratio)) / np.log(2.0)
    return direction, np.clip(strength, 0.0, 1.0) * np.abs(direction)


def _panel(valid: pd.DataFrame) -> dict:
    """Every signal for every (session, ticker) cell of the history's matrices."""
    m = _matrices(valid)
    c = m["close"]
    v = {"close": c, **_ema_and_adx(m), **_mean_reversion(c), **_returns(c)}
    with np.errstate(divide="ignore", invalid="ignore"):
        v["vol_ratio"] = v["vol_short"] / v["vol_long"]
    v["hurst"] = _hurst(np.log(c), m["age"])
    for name, rule in (
        ("trend", _trend_signal),
        ("mr", _mr_signal),
        ("mom", _momentum_signal),
        ("volreg", _volreg_signal),
    ):
        v[f"{name}_dir"], v[f"{name}_conf"] = rule(v)
    return {**m, "values": v}


def _usable(panel: dict, min_history: int) -> np.ndarray:
    """Cells with enough unbroken history, some price movement and every value finite."""
    v = panel["values"]
    finite = np.logical_and.reduce([np.isfinite(v[name]) for name in VALUE_COLUMNS])
    return (panel["age"] >= min_history) & (v["vol_long"] > 0) & finite


def _frame(panel: dict, rows: np.ndarray, cols: np.ndarray, sessions) -> pd.DataFrame:
    """Signal rows for the (row, column) cells given, in :data:`SIGNAL_COLUMNS` order."""
    v = panel["values"]
    frame = pd.DataFrame(
        {
            "symbol": np.asarray(panel["symbols"])[cols],
            "session": pd.to_datetime(np.asarray(sessions)).astype("datetime64[ns]"),
            **{name: v[name][rows, cols] for name in VALUE_COLUMNS},
        }
    )
    for name in DIRECTION_COLUMNS:
        frame[name] = frame[name].astype("int64")
    return frame[SIGNAL_COLUMNS].reset_index(drop=True)


def _check_min_history(min_history: int) -> None:
    if min_history < MIN_HISTORY_FLOOR:
        raise ValueError(
            f"min_history must be at least {MIN_HISTORY_FLOOR} sessions (the 126-session "
            f"momentum needs them), got {min_history}"
        )


# ---------------------------------------------------------------------------- skipped tickers
def _sessions_since(last_seen: pd.Series, at: pd.Timestamp) -> pd.Series:
    """NYSE sessions after each ticker's last close, up to and including ``at``."""
    first = max(last_seen.min().date(), calendar.CALENDAR_FIRST_DAY)
    days = pd.to_datetime(calendar.sessions(first, at.date())).to_numpy()
    after = len(days) - np.searchsorted(days, last_seen.to_numpy(), side="right")
    return pd.Series(after, index=last_seen.index)


def _reason(panel: dict, j: int, min_history: int, last_seen, since, at) -> str | None:
    """Why ticker column ``j`` gets no signals at the last row, or None when it does."""
    symbol = panel["symbols"][j]
    v = panel["values"]
    age = int(panel["age"][-1, j])
    if since[symbol] > MAX_FILL_SESSIONS or age == 0:
        return (
            f"stale: last close {last_seen[symbol].date()}, "
            f"{since[symbol]} sessions before {at.date()}"
        )
    if age < min_history:
        earlier = np.isfinite(panel["close"][:, j]).sum() > age
        return f"insufficient history: {age} of {min_history} sessions" + (
            " after a gap" if earlier else ""
        )
    if not v["vol_long"][-1, j] > 0:
        return f"no price movement in the last {VOL_LONG} sessions"
    bad = [name for name in VALUE_COLUMNS if not np.isfinite(v[name][-1, j])]
    return f"undefined signal value(s): {', '.join(bad)}" if bad else None


def _skipped(symbols: list[str], reasons: dict[str, str | None]) -> pd.DataFrame:
    lines = [
        (s, reasons.get(s, "no valid close on or before the session"))
        for s in symbols
        if reasons.get(s, "") is not None
    ]
    return pd.DataFrame(lines, columns=SKIPPED_COLUMNS)


# ---------------------------------------------------------------------------- public API
def technical_signals(
    history: pd.DataFrame, session: dt.date, *, min_history: int = 130
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Technical signals per ticker from its bars up to and including ``session``.

    ``history`` holds DAILY_BARS rows (``session``, ``symbol``, ``high``, ``low``, ``close``
    are read) in any order; rows after ``session`` are ignored, so adding later bars changes
    nothing. A ticker needs ``min_history`` unbroken closes (gaps of up to three sessions
    bridged), the last at most three NYSE sessions before ``session``. Returns
    ``(signals, skipped)``: :data:`SIGNAL_COLUMNS` per kept ticker and ``symbol, reason`` for
    every other ticker with a row on or before the session, both sorted by symbol.
    """
    _check_min_history(min_history)
    at = pd.Timestamp(session).normalize()
    rows = _bars_up_to(history, at)
    symbols = sorted(rows["symbol"].unique())
    valid = _valid_bars(rows)
    if valid.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS), _skipped(symbols, {})
    panel = _panel(valid)
    last_seen = valid.groupby("symbol")["session"].max()
    since = _sessions_since(last_seen, at)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reasons = {
            s: _reason(panel, j, min_history, last_seen, since, at)
            for j, s in enumerate(panel["symbols"])
        }
    keep = np.array([reasons[s] is None for s in panel["symbols"]], dtype=bool)
    cols = np.flatnonzero(keep)
    rows_at = np.full(len(cols), len(panel["sessions"]) - 1)
    signals = _frame(panel, rows_at, cols, [at] * len(cols))
    return signals, _skipped(symbols, reasons)


def signals_at_sessions(
    history: pd.DataFrame, sessions: list[dt.date], *, min_history: int = 130
) -> pd.DataFrame:
    """:data:`SIGNAL_COLUMNS` for every usable ticker at each of ``sessions``, in one pass.

    Equal to ``technical_signals(history, s)`` for each session ``s`` (every statistic is
    causal, so computing the whole history at once and reading row ``s`` sees nothing after
    ``s``). Each session must have bars in ``history``. Sorted by session, then symbol.
    """
    _check_min_history(min_history)
    panel = _panel(_valid_bars(_bars_up_to(history, None)))
    wanted = pd.DatetimeIndex(pd.to_datetime(list(sessions))).normalize()
    missing = wanted[~wanted.isin(panel["sessions"])]
    if len(missing):
        shown = ", ".join(str(d.date()) for d in missing[:5])
        raise ValueError(f"{len(missing)} session(s) have no bars in the history: {shown}")
    positions = np.sort(np.unique(panel["sessions"].get_indexer(wanted)))
    usable = _usable(panel, min_history)[positions]
    which, cols = np.nonzero(usable)
    rows = positions[which]
    return _frame(panel, rows, cols, panel["sessions"][rows])
