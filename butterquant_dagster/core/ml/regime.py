"""Market-regime detection, point in time: bear / neutral / bull from an index's daily returns.

The pipeline is

1. :func:`index_features` turns daily bars into one row per session: the log return of a
   market index (one configured ticker, or an equal-weighted index of all tickers) and its
   trailing realized volatility (shown, not modelled);
2. :func:`fit_regime_model` fits a two-state Gaussian HMM (hmmlearn) of the daily return on
   a training window: a calm and a stressed state, named by volatility and return together
   (the stressed state has the worse lower tail), with a fixed persistence. Only its
   parameters are kept, in a :class:`RegimeModel` saved as JSON (never pickled);
3. :func:`filter_regimes` runs the forward (filtering) recursion in NumPy: P(stressed) is
   ``p_bear``, and calm sessions are split into bull and neutral by their trailing trend.
   A session's probabilities use only that session and earlier ones. (hmmlearn's
   ``predict_proba`` is forward-backward smoothing, which looks ahead, and is not used.)
4. :func:`point_in_time_regimes` labels each session with a model refitted monthly on
   data strictly before it, so no label, feature or backtest is in sample;
5. :func:`agreement` and :func:`confidence_reliability` grade the detected regime against a
   known one (the synthetic market's hidden truth).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252.0
STATE_NAMES = ("bear", "neutral", "bull")
HIDDEN_STATES = ("calm", "stressed")
FEATURE_NAMES = ("ret", "rv")
N_STATES = len(STATE_NAMES)
# Two years of sessions: about five expected regime spells at STATE_PERSISTENCE. A shorter
# window may hold a single regime, which the two states then split in two: fitted on 133 to
# 219 sessions of one bull market, the models called 68 of the next 93 bull sessions bear
# at a mean confidence of 0.96 (confidence gap 0.47); with two years or more behind every
# refit, the same sessions scored balanced accuracy 0.90 and a gap of 0.02-0.03.
MIN_TRAINING_ROWS = 504
# Sessions of index return behind each realized-volatility value (the first rows have none).
VOL_WINDOW = 10
# Daily probability of staying in a hidden state: an expected stay of 100 sessions, since
# market regimes last months, not days (Hamilton 1989; Ang & Timmermann 2012).
STATE_PERSISTENCE = 0.99
# A state's lower tail is its mean minus this many standard deviations of the daily return.
TAIL_SDS = 2.0
# Sessions of index return whose sum, in calm-state standard errors, splits bull from neutral.
TREND_WINDOW = 63
# Starting (calm, stressed) standard deviations, in units of the window's return sd: EM is
# run from each and the best likelihood kept, so the fit does not hinge on one start.
_STARTING_SDS = ((0.6, 1.6), (0.75, 2.0), (0.5, 2.5))
JSON_FORMAT = "butterquant.regime_hmm/2"
_SUM_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------- features
def index_features(
    bars: pd.DataFrame, index_symbol: str | None = None, *, vol_window: int = VOL_WINDOW
) -> pd.DataFrame:
    """Per-session index log return ``ret`` and trailing realized volatility ``rv``.

    The index is ``index_symbol``'s close when given, otherwise an equal-weighted index of
    every ticker in ``bars``: each session's return is the mean of the tickers' log returns
    ``log(close / prev_close)``, tickers without a return that session being left out.
    ``rv`` is the annualised sample standard deviation of the index returns over the
    trailing ``vol_window`` sessions up to and including the row, so it uses no later data.
    Rows are sorted by session; the first rows, without a full window, are dropped.
    """
    if vol_window < 2:
        raise ValueError(f"vol_window must be at least 2 sessions, got {vol_window}")
    missing = [c for c in ("session", "symbol", "close", "prev_close") if c not in bars.columns]
    if missing:
        raise ValueError(f"bars are missing column(s) {missing}; found {list(bars.columns)}")
    frame = bars[["session", "symbol", "close", "prev_close"]].copy()
    frame["session"] = pd.to_datetime(frame["session"])
    frame["symbol"] = frame["symbol"].astype(str)
    duplicated = frame.duplicated(["session", "symbol"])
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        raise ValueError(
            f"bars have {int(duplicated.sum())} duplicate (session, symbol) row(s), "
            f"e.g. {first['symbol']} on {first['session'].date()}"
        )
    if index_symbol is not None:
        symbol = str(index_symbol)
        frame = frame.loc[frame["symbol"] == symbol]
        if frame.empty:
            raise ValueError(f"index symbol {symbol!r} is not in the bars")

    close = frame["close"].to_numpy(dtype=float)
    prev_close = frame["prev_close"].to_numpy(dtype=float)
    valid = np.isfinite(close) & np.isfinite(prev_close) & (close > 0) & (prev_close > 0)
    returns = pd.DataFrame(
        {
            "session": frame["session"].to_numpy()[valid],
            "ret": np.log(close[valid] / prev_close[valid]),
        }
    )
    index = returns.groupby("session", sort=True)["ret"].mean().reset_index()
    index["rv"] = index["ret"].rolling(vol_window, min_periods=vol_window).std(ddof=1) * math.sqrt(
        TRADING_DAYS
    )
    out = index.loc[index["rv"].notna(), ["session", "ret", "rv"]].reset_index(drop=True)
    out["session"] = out["session"].astype("datetime64[ns]")
    return out


def _feature_matrix(features: pd.DataFrame, *, what: str) -> tuple[pd.Series, np.ndarray]:
    """Sessions and the (n, 2) [ret, rv] matrix of ``features``, checked and sorted."""
    missing = [c for c in ("session", *FEATURE_NAMES) if c not in features.columns]
    if missing:
        raise ValueError(
            f"{what}: features are missing column(s) {missing}; found {list(features.columns)}"
        )
    frame = features[["session", *FEATURE_NAMES]].copy()
    frame["session"] = pd.to_datetime(frame["session"]).astype("datetime64[ns]")
    if frame["session"].duplicated().any():
        dup = frame.loc[frame["session"].duplicated(), "session"].iloc[0]
        raise ValueError(f"{what}: features have duplicate session(s), e.g. {dup.date()}")
    frame = frame.sort_values("session", kind="stable").reset_index(drop=True)
    x = frame[list(FEATURE_NAMES)].to_numpy(dtype=float)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{what}: {int(bad.sum())} row(s) with missing or non-finite features, "
            f"first on {frame.loc[bad, 'session'].iloc[0].date()}"
        )
    return frame["session"], x


# ---------------------------------------------------------------------------- the model
def _as_float_array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"regime model: {name} is not numeric: {exc}") from exc
    if array.shape != shape:
        raise ValueError(f"regime model: {name} has shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"regime model: {name} has non-finite values")
    return array


def _iso_date(value: Any, name: str) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError as exc:
        raise ValueError(f"regime model: {name} {value!r} is not an ISO date") from exc


@dataclass(frozen=True)
class RegimeModel:
    """A fitted two-state (calm, stressed) Gaussian HMM of daily index returns, as plain lists.

    State 0 is ``calm`` and state 1 ``stressed``: the stressed state is the one with the
    worse lower tail ``mean - 2 sd`` of the daily return, so volatility and return decide
    together and a noisy mean alone cannot make a crash "calm". ``means`` and ``sds`` are
    in units of ``return_scale`` (the training window's standard deviation of returns).
    ``trend_sd`` is the calm state's daily sd in return units, which scales the trailing
    trend that splits calm sessions into bull and neutral.
    """

    startprob: list[float]  # (2,)
    transmat: list[list[float]]  # (2, 2), fixed persistence, see fit_regime_model
    means: list[float]  # (2,)
    sds: list[float]  # (2,)
    return_scale: float
    trend_sd: float
    trend_window: int
    train_start: str  # first training session, ISO date
    train_end: str  # last training session, ISO date
    n_samples: int
    log_likelihood: float  # of the scaled training returns under the model
    seed: int = 7
    converged: bool = True
    state_names: list[str] = field(default_factory=lambda: list(HIDDEN_STATES))

    def __post_init__(self) -> None:
        # Check every invariant here, so an invalid model cannot exist whichever way it was
        # made (fit, from_json or by hand).
        if list(self.state_names) != list(HIDDEN_STATES):
            raise ValueError(
                f"regime model: state_names {self.state_names!r}, expected {list(HIDDEN_STATES)}"
            )
        k = len(HIDDEN_STATES)
        startprob = _as_float_array(self.startprob, (k,), "startprob")
        transmat = _as_float_array(self.transmat, (k, k), "transmat")
        means = _as_float_array(self.means, (k,), "means")
        sds = _as_float_array(self.sds, (k,), "sds")
        if (startprob < 0).any() or abs(startprob.sum() - 1.0) > _SUM_TOLERANCE:
            raise ValueError(
                f"regime model: startprob must be non-negative and sum to 1, "
                f"sums to {startprob.sum():.8f}"
            )
        if (transmat < 0).any():
            raise ValueError("regime model: transmat has negative probabilities")
        row_sums = transmat.sum(axis=1)
        bad_rows = np.flatnonzero(np.abs(row_sums - 1.0) > _SUM_TOLERANCE)
        if bad_rows.size:
            raise ValueError(
                f"regime model: transmat row(s) {bad_rows.tolist()} do not sum to 1 "
                f"(sums {[round(float(s), 8) for s in row_sums[bad_rows]]})"
            )
        if (sds <= 0).any():
            raise ValueError(f"regime model: sds must be positive, got {sds.tolist()}")
        tails = means - TAIL_SDS * sds
        if tails[1] > tails[0]:
            raise ValueError(
                "regime model: the stressed state must have the worse lower tail "
                f"(mean - {TAIL_SDS:g} sd: calm {tails[0]:.4f}, stressed {tails[1]:.4f})"
            )
        for name in ("return_scale", "trend_sd"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"regime model: {name} must be positive, got {value}")
        if isinstance(self.trend_window, bool) or int(self.trend_window) < 2:
            raise ValueError(f"regime model: trend_window must be >= 2, got {self.trend_window}")
        train_start = _iso_date(self.train_start, "train_start")
        train_end = _iso_date(self.train_end, "train_end")
        if train_start > train_end:
            raise ValueError(
                f"regime model: train_start {train_start} is after train_end {train_end}"
            )
        if isinstance(self.n_samples, bool) or int(self.n_samples) != self.n_samples:
            raise ValueError(f"regime model: n_samples {self.n_samples!r} is not an integer")
        if int(self.n_samples) < 1:
            raise ValueError(f"regime model: n_samples must be positive, got {self.n_samples}")
        values = {
            "startprob": startprob.tolist(),
            "transmat": transmat.tolist(),
            "means": means.tolist(),
            "sds": sds.tolist(),
            "return_scale": float(self.return_scale),
            "trend_sd": float(self.trend_sd),
            "trend_window": int(self.trend_window),
            "train_start": train_start,
            "train_end": train_end,
            "n_samples": int(self.n_samples),
            "log_likelihood": float(self.log_likelihood),
            "seed": int(self.seed),
            "converged": bool(self.converged),
            "state_names": list(HIDDEN_STATES),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # -------------------------------------------------------------- serialisation
    def to_json(self) -> str:
        payload = {"format": JSON_FORMAT, **asdict(self)}
        return json.dumps(payload, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RegimeModel:
        """Read a model written by :meth:`to_json`; a ValueError says what is wrong."""
        try:
            payload = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"regime model: not valid JSON: {exc}") from exc
        if not isinstance(payload, dict):
            raise ValueError(f"regime model: expected a JSON object, got {type(payload).__name__}")
        fmt = payload.pop("format", None)
        if fmt != JSON_FORMAT:
            raise ValueError(
                f"regime model: format {fmt!r}, expected {JSON_FORMAT!r} (retrain the regime "
                "model: `butterquant train --model regime`)"
            )
        names = set(cls.__dataclass_fields__)
        missing = sorted(names - set(payload))
        if missing:
            raise ValueError(f"regime model: missing field(s) {missing}")
        unknown = sorted(set(payload) - names)
        if unknown:
            raise ValueError(f"regime model: unknown field(s) {unknown}")
        return cls(**payload)

    @property
    def annual_vols(self) -> dict[str, float]:
        """Each hidden state's annualised volatility, for people reading the model."""
        return {
            name: float(sd * self.return_scale * math.sqrt(TRADING_DAYS))
            for name, sd in zip(self.state_names, self.sds, strict=True)
        }


# ---------------------------------------------------------------------------- fitting
def _window(
    features: pd.DataFrame, start: dt.date | str | None, end: dt.date | str | None, what: str
) -> tuple[pd.Series, np.ndarray]:
    sessions, x = _feature_matrix(features, what=what)
    keep = np.ones(len(sessions), dtype=bool)
    if start is not None:
        keep &= (sessions >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (sessions <= pd.Timestamp(end)).to_numpy()
    return sessions[keep].reset_index(drop=True), x[keep, 0]


def fit_regime_model(
    features: pd.DataFrame,
    *,
    seed: int = 7,
    n_iter: int = 300,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> RegimeModel:
    """Fit the calm / stressed HMM on the daily index returns of ``start``..``end``.

    Only rows inside the window are used (inclusive; all rows when not given), and a window
    with fewer than :data:`MIN_TRAINING_ROWS` sessions is refused, never widened.

    Why this shape: an HMM whose states are free to learn their own persistence turns one
    state into a detector of single-day jumps (earnings gaps of one index member), and an
    HMM on overlapping realized-volatility windows counts the same evidence many times,
    which pinned the old model's confidence at 1.0. So the emission is the daily return
    alone (independent given the state), the persistence is fixed at
    :data:`STATE_PERSISTENCE` (regimes last months, not days), and only the two states'
    means and variances are learned, from a few deterministic starting points.
    """
    from hmmlearn.hmm import GaussianHMM  # imported here: only fitting needs hmmlearn

    sessions, returns = _window(features, start, end, "fit_regime_model")
    if len(returns) < MIN_TRAINING_ROWS:
        raise ValueError(
            f"fit_regime_model needs at least {MIN_TRAINING_ROWS} sessions of index returns "
            f"in the training window, got {len(returns)}"
            + (f" ({sessions.iloc[0].date()}..{sessions.iloc[-1].date()})" if len(sessions) else "")
        )
    scale = float(returns.std())
    if not scale > 0:
        raise ValueError("fit_regime_model: the index return is constant in the window")
    z = (returns / scale).reshape(-1, 1)
    k = len(HIDDEN_STATES)
    transmat = np.full((k, k), (1.0 - STATE_PERSISTENCE) / (k - 1))
    np.fill_diagonal(transmat, STATE_PERSISTENCE)
    best: tuple[float, Any] | None = None
    for attempt, (calm_sd, stressed_sd) in enumerate(_STARTING_SDS):
        hmm = GaussianHMM(
            n_components=k,
            covariance_type="diag",
            random_state=seed + attempt,
            n_iter=n_iter,
            init_params="",
            params="smc",
        )
        hmm.startprob_ = np.full(k, 1.0 / k)
        hmm.transmat_ = transmat.copy()
        hmm.means_ = np.zeros((k, 1))
        hmm.covars_ = np.array([[calm_sd**2], [stressed_sd**2]])
        hmm.fit(z)
        score = float(hmm.score(z))
        if best is None or score > best[0]:
            best = (score, hmm)
    log_likelihood, hmm = best
    means = hmm.means_[:, 0]
    sds = np.sqrt(hmm.covars_.reshape(k))
    order = np.argsort(-(means - TAIL_SDS * sds), kind="stable")  # calm first
    startprob = hmm.startprob_[order]
    return RegimeModel(
        startprob=(startprob / startprob.sum()).tolist(),
        transmat=transmat.tolist(),
        means=means[order].tolist(),
        sds=sds[order].tolist(),
        return_scale=scale,
        trend_sd=float(sds[order][0] * scale),
        trend_window=TREND_WINDOW,
        train_start=sessions.iloc[0].date().isoformat(),
        train_end=sessions.iloc[-1].date().isoformat(),
        n_samples=len(returns),
        log_likelihood=log_likelihood,
        seed=seed,
        converged=bool(hmm.monitor_.converged),
    )


# ---------------------------------------------------------------------------- filtering
def _log_emissions(model: RegimeModel, returns: np.ndarray) -> np.ndarray:
    """(n, 2) Gaussian log-densities of the scaled returns under each hidden state."""
    z = returns[:, None] / model.return_scale
    means = np.asarray(model.means)[None, :]
    sds = np.asarray(model.sds)[None, :]
    return -0.5 * (((z - means) / sds) ** 2 + math.log(2.0 * math.pi)) - np.log(sds)


def _forward(model: RegimeModel, returns: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised forward recursion: (n, 2) filtered probabilities and the total
    log-likelihood. Row t uses rows 0..t only."""
    log_b = _log_emissions(model, returns)
    start = np.asarray(model.startprob)
    trans = np.asarray(model.transmat)
    alpha = np.empty_like(log_b)
    total = 0.0
    previous: np.ndarray | None = None
    for t in range(len(returns)):
        prior = start if previous is None else previous @ trans
        top = log_b[t].max()
        joint = prior * np.exp(log_b[t] - top)
        norm = float(joint.sum())
        if not (np.isfinite(norm) and norm > 0):
            raise ValueError(f"regime filter: row {t} has zero probability under every state")
        previous = joint / norm
        alpha[t] = previous
        total += math.log(norm) + top
    return alpha, total


def regime_log_likelihood(model: RegimeModel, features: pd.DataFrame) -> float:
    """Log-likelihood of the scaled returns under the model (forward algorithm), in the
    units of :attr:`RegimeModel.log_likelihood`."""
    _, x = _feature_matrix(features, what="regime_log_likelihood")
    return _forward(model, x[:, 0])[1]


def filter_regimes(model: RegimeModel, features: pd.DataFrame) -> pd.DataFrame:
    """Regime probabilities per session from the model's saved parameters.

    Columns ``session, market_regime, regime_confidence, p_bear, p_neutral, p_bull``.

    ``p_bear`` is P(stressed | returns up to and including the session), by forward
    filtering only. The calm probability is split into bull and neutral by the trailing
    ``trend_window``-session index return measured in calm-state standard errors:
    ``p_bull = P(calm) * Phi(trend / (trend_sd * sqrt(window)))``, so a calm, rising market
    is bull, a calm, flat or falling one neutral, and the split is as unsure as the trend
    is noisy. Every input of a row is dated on or before it, so a row does not change when
    later sessions are appended.
    """
    sessions, x = _feature_matrix(features, what="filter_regimes")
    returns = x[:, 0]
    if len(returns):
        p_stressed = _forward(model, returns)[0][:, 1]
        trend = pd.Series(returns).rolling(model.trend_window, min_periods=model.trend_window)
        t_stat = trend.sum() / (model.trend_sd * math.sqrt(model.trend_window))
        p_up = _normal_cdf(t_stat.fillna(0.0).to_numpy())
        probs = np.column_stack(
            [p_stressed, (1.0 - p_stressed) * (1.0 - p_up), (1.0 - p_stressed) * p_up]
        )
    else:
        probs = np.empty((0, N_STATES))
    best = probs.argmax(axis=1) if len(probs) else np.empty(0, dtype=int)
    names = np.asarray(STATE_NAMES, dtype=object)
    out = pd.DataFrame(
        {
            "session": sessions.to_numpy(),
            "market_regime": pd.array(names[best].tolist(), dtype="string"),
            "regime_confidence": probs.max(axis=1) if len(probs) else np.empty(0),
            **{f"p_{name}": probs[:, k] for k, name in enumerate(STATE_NAMES)},
        }
    )
    out["session"] = out["session"].astype("datetime64[ns]")
    return out


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(np.asarray(x, dtype=float))


# ---------------------------------------------------------------------------- point in time
def refit_points(sessions: list[dt.date]) -> dict[dt.date, list[dt.date]]:
    """The wanted sessions grouped by the first session of their calendar month: each group
    is labelled by a model refitted (monthly) on everything before that first session."""
    groups: dict[dt.date, list[dt.date]] = {}
    for session in sorted(sessions):
        key = session.replace(day=1)
        groups.setdefault(key, []).append(session)
    return groups


def point_in_time_regimes(
    features: pd.DataFrame,
    sessions: list[dt.date],
    *,
    seed: int = 7,
    fitted: dict[str, RegimeModel] | None = None,
) -> tuple[pd.DataFrame, dict[str, RegimeModel], list[dt.date]]:
    """The regime of each of ``sessions`` from a model fitted only on sessions before it.

    Models are refitted monthly on every index return strictly before the month's first
    day, so no session is ever labelled by a model that saw it or anything after it.
    Labels need no matching across refits: each refit names its states by their own
    volatility and return (see :class:`RegimeModel`). ``fitted`` caches models by refit
    key (``YYYY-MM``) and is returned updated. Returns the rows (with
    ``model_train_start`` / ``model_train_end``), the cache, and the sessions that have too
    little history before them to be labelled at all.
    """
    cache = dict(fitted or {})
    all_sessions, _ = _feature_matrix(features, what="point_in_time_regimes")
    frames, unlabelled = [], []
    for month_start, wanted in refit_points(sessions).items():
        key = month_start.strftime("%Y-%m")
        model = cache.get(key)
        if model is None:
            before = all_sessions < pd.Timestamp(month_start)
            if int(before.sum()) < MIN_TRAINING_ROWS:
                unlabelled.extend(wanted)
                continue
            model = fit_regime_model(features, seed=seed, end=month_start - dt.timedelta(days=1))
            cache[key] = model
        last = pd.Timestamp(max(wanted))
        history = features.loc[pd.to_datetime(features["session"]) <= last]
        filtered = filter_regimes(model, history)
        rows = filtered[filtered["session"].isin(pd.to_datetime(wanted))].copy()
        unlabelled.extend(
            sorted(set(wanted) - {ts.date() for ts in pd.to_datetime(rows["session"])})
        )
        rows["model_train_start"] = model.train_start
        rows["model_train_end"] = model.train_end
        frames.append(rows)
    columns = [
        "session",
        "market_regime",
        "regime_confidence",
        *(f"p_{name}" for name in STATE_NAMES),
        "model_train_start",
        "model_train_end",
    ]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return out[columns].reset_index(drop=True), cache, sorted(unlabelled)


# ---------------------------------------------------------------------------- evaluation
def agreement(filtered: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """How well ``filtered``'s market_regime matches ``truth``'s regime on common sessions.

    Returns plain Python values: ``n_sessions``, ``accuracy``, ``recall`` per true regime
    and ``precision`` per predicted regime (None when undefined), ``balanced_accuracy``
    (mean recall over the regimes that occur; 1/3 or 1/k for any constant guess),
    ``confusion`` as ``{true: {predicted: count}}``, ``true_share`` of each regime, and
    the majority-class baseline (``majority_regime``, ``baseline_accuracy``: the accuracy of
    always predicting the most frequent true regime of those sessions, known in hindsight).
    """
    for frame, name, column in (
        (filtered, "filtered", "market_regime"),
        (truth, "truth", "regime"),
    ):
        missing = [c for c in ("session", column) if c not in frame.columns]
        if missing:
            raise ValueError(f"agreement: {name} is missing column(s) {missing}")
    left = pd.DataFrame(
        {
            "session": pd.to_datetime(filtered["session"]).astype("datetime64[ns]"),
            "predicted": filtered["market_regime"].astype(str),
        }
    )
    right = pd.DataFrame(
        {
            "session": pd.to_datetime(truth["session"]).astype("datetime64[ns]"),
            "true": truth["regime"].astype(str),
        }
    )
    merged = left.merge(right, on="session", how="inner")
    if merged.empty:
        raise ValueError("agreement: filtered and truth have no session in common")
    unknown = sorted((set(merged["predicted"]) | set(merged["true"])) - set(STATE_NAMES))
    if unknown:
        raise ValueError(f"agreement: unknown regime name(s) {unknown}")
    confusion = {
        true: {
            predicted: int(((merged["true"] == true) & (merged["predicted"] == predicted)).sum())
            for predicted in STATE_NAMES
        }
        for true in STATE_NAMES
    }
    recall: dict[str, float | None] = {}
    precision: dict[str, float | None] = {}
    for name in STATE_NAMES:
        true_count = sum(confusion[name].values())
        predicted_count = sum(confusion[true][name] for true in STATE_NAMES)
        recall[name] = confusion[name][name] / true_count if true_count else None
        precision[name] = confusion[name][name] / predicted_count if predicted_count else None
    present = [r for r in recall.values() if r is not None]
    n = len(merged)
    counts = merged["true"].value_counts()
    return {
        "n_sessions": n,
        "accuracy": float((merged["predicted"] == merged["true"]).mean()),
        "balanced_accuracy": float(np.mean(present)),
        "recall": recall,
        "precision": precision,
        "confusion": confusion,
        "true_share": {name: float(counts.get(name, 0) / n) for name in STATE_NAMES},
        "majority_regime": str(counts.index[0]),
        "baseline_accuracy": float(counts.iloc[0] / n),
    }


def confidence_reliability(filtered: pd.DataFrame, truth: pd.DataFrame, bins: int = 5) -> dict:
    """Is ``regime_confidence`` a probability? Mean confidence against the share of sessions
    whose label was right, overall and by confidence bin (a reliability table)."""
    merged = pd.DataFrame(
        {
            "session": pd.to_datetime(filtered["session"]).astype("datetime64[ns]"),
            "predicted": filtered["market_regime"].astype(str),
            "confidence": filtered["regime_confidence"].astype(float),
        }
    ).merge(
        pd.DataFrame(
            {
                "session": pd.to_datetime(truth["session"]).astype("datetime64[ns]"),
                "true": truth["regime"].astype(str),
            }
        ),
        on="session",
    )
    if merged.empty:
        raise ValueError("confidence_reliability: no session in common with the truth")
    correct = (merged["predicted"] == merged["true"]).to_numpy(dtype=float)
    confidence = merged["confidence"].to_numpy()
    edges = np.linspace(1.0 / N_STATES, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table = [
        {
            "low": float(edges[b]),
            "high": float(edges[b + 1]),
            "sessions": int((which == b).sum()),
            "mean_confidence": float(confidence[which == b].mean()) if (which == b).any() else None,
            "share_correct": float(correct[which == b].mean()) if (which == b).any() else None,
        }
        for b in range(bins)
    ]
    gap = sum(
        r["sessions"] * abs(r["mean_confidence"] - r["share_correct"])
        for r in table
        if r["sessions"]
    ) / len(merged)
    return {
        "n_sessions": len(merged),
        "mean_confidence": float(confidence.mean()),
        "share_correct": float(correct.mean()),
        "calibration_error": float(gap),
        "table": table,
    }


def first_labelled_session(
    bar_sessions: list[dt.date], vol_window: int = VOL_WINDOW
) -> dt.date | None:
    """The first session a point-in-time regime can label: the first one whose month is
    preceded by enough sessions of bars to fit a model (a realized-volatility window of
    them yields no index row)."""
    needed = MIN_TRAINING_ROWS + vol_window
    ordered = sorted(bar_sessions)
    for session in ordered:
        if bisect.bisect_left(ordered, session.replace(day=1)) >= needed:
            return session
    return None


def first_bar_session_needed(first_session: dt.date, vol_window: int = VOL_WINDOW) -> dt.date:
    """The earliest session of bars a point-in-time regime of ``first_session`` needs: its
    month's refit is fitted on the :data:`MIN_TRAINING_ROWS` index returns before the month,
    and the first ``vol_window`` sessions of bars yield no index row."""
    from butterquant_dagster.core import calendar

    needed = MIN_TRAINING_ROWS + vol_window
    before = calendar.trailing_sessions(first_session.replace(day=1), needed, inclusive=False)
    if len(before) < needed:
        raise ValueError(
            f"the calendar has only {len(before)} sessions before {first_session:%Y-%m}; a "
            f"point-in-time regime needs {needed}"
        )
    return before[0]
