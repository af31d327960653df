"""Market-regime detection: a 3-state Gaussian HMM on an index's return and realized volatility.

The pipeline is

1. :func:`index_features` turns daily bars into one row per session: the log return of a
   market index (one configured ticker, or an equal-weighted index of all tickers) and its
   trailing realized volatility;
2. :func:`fit_regime_model` fits a Gaussian HMM (hmmlearn) on the standardized features of a
   training window and keeps only its parameters, as plain lists in a :class:`RegimeModel`
   that is saved as JSON (never pickled), with the states ordered bear, neutral, bull by mean
   return;
3. :func:`filter_regimes` runs the forward (filtering) recursion in NumPy from the saved
   parameters: the probability for a session uses only that session and earlier ones, so it
   does not change when later sessions arrive. (hmmlearn's ``predict_proba`` is
   forward-backward smoothing, which looks ahead, and is deliberately not used.)
4. :func:`agreement` compares the detected regime with a known one (the synthetic market's
   ground truth).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252.0
STATE_NAMES = ("bear", "neutral", "bull")
FEATURE_NAMES = ("ret", "rv")
N_STATES = len(STATE_NAMES)
N_FEATURES = len(FEATURE_NAMES)
MIN_TRAINING_ROWS = 120
JSON_FORMAT = "butterquant.regime_hmm/1"
_SUM_TOLERANCE = 1e-6


# ---------------------------------------------------------------------------- features
def index_features(
    bars: pd.DataFrame, index_symbol: str | None = None, *, vol_window: int = 10
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
    """The parameters of a fitted 3-state Gaussian HMM, as plain (JSON-able) lists.

    States are ordered by mean return, ascending: index 0 is ``bear``, 1 ``neutral``, 2
    ``bull``. ``means`` and ``covars`` are in standardized feature units: a feature row ``x``
    is standardized as ``(x - feature_mean) / feature_std`` before it is scored.
    """

    startprob: list[float]  # (3,)
    transmat: list[list[float]]  # (3, 3), rows: from-state, columns: to-state
    means: list[list[float]]  # (3, 2), columns as feature_names
    covars: list[list[list[float]]]  # (3, 2, 2), full covariances
    feature_mean: list[float]  # (2,)
    feature_std: list[float]  # (2,)
    train_start: str  # first training session, ISO date
    train_end: str  # last training session, ISO date
    n_samples: int
    log_likelihood: float  # of the standardized training features under the model
    seed: int = 7
    converged: bool = True
    state_names: list[str] = field(default_factory=lambda: list(STATE_NAMES))
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))

    def __post_init__(self) -> None:
        # Normalise to plain Python lists of floats and check every invariant, so an invalid
        # model cannot exist whichever way it was made (fit, from_json or by hand).
        if list(self.state_names) != list(STATE_NAMES):
            raise ValueError(
                f"regime model: state_names {self.state_names!r}, expected {list(STATE_NAMES)}"
            )
        if list(self.feature_names) != list(FEATURE_NAMES):
            raise ValueError(
                f"regime model: feature_names {self.feature_names!r}, "
                f"expected {list(FEATURE_NAMES)}"
            )
        startprob = _as_float_array(self.startprob, (N_STATES,), "startprob")
        transmat = _as_float_array(self.transmat, (N_STATES, N_STATES), "transmat")
        means = _as_float_array(self.means, (N_STATES, N_FEATURES), "means")
        covars = _as_float_array(self.covars, (N_STATES, N_FEATURES, N_FEATURES), "covars")
        feature_mean = _as_float_array(self.feature_mean, (N_FEATURES,), "feature_mean")
        feature_std = _as_float_array(self.feature_std, (N_FEATURES,), "feature_std")
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
        if (np.diff(means[:, 0]) < 0).any():
            raise ValueError(
                "regime model: states are not ordered bear, neutral, bull by mean return "
                f"(mean returns {means[:, 0].tolist()})"
            )
        for k, cov in enumerate(covars):
            if not np.allclose(cov, cov.T, rtol=1e-9, atol=1e-12):
                raise ValueError(f"regime model: covars[{k}] is not symmetric")
            try:
                np.linalg.cholesky(cov)
            except np.linalg.LinAlgError as exc:
                raise ValueError(f"regime model: covars[{k}] is not positive definite") from exc
        if (feature_std <= 0).any():
            raise ValueError(f"regime model: feature_std must be positive, got {feature_std}")
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
            "covars": covars.tolist(),
            "feature_mean": feature_mean.tolist(),
            "feature_std": feature_std.tolist(),
            "train_start": train_start,
            "train_end": train_end,
            "n_samples": int(self.n_samples),
            "log_likelihood": float(self.log_likelihood),
            "seed": int(self.seed),
            "converged": bool(self.converged),
            "state_names": list(STATE_NAMES),
            "feature_names": list(FEATURE_NAMES),
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
            raise ValueError(f"regime model: format {fmt!r}, expected {JSON_FORMAT!r}")
        names = set(cls.__dataclass_fields__)
        missing = sorted(names - set(payload))
        if missing:
            raise ValueError(f"regime model: missing field(s) {missing}")
        unknown = sorted(set(payload) - names)
        if unknown:
            raise ValueError(f"regime model: unknown field(s) {unknown}")
        return cls(**payload)

    # -------------------------------------------------------------- arrays
    def standardize(self, x: np.ndarray) -> np.ndarray:
        return (x - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)


# ---------------------------------------------------------------------------- fitting
def fit_regime_model(
    features: pd.DataFrame,
    *,
    seed: int = 7,
    n_iter: int = 200,
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
) -> RegimeModel:
    """Fit the 3-state HMM on the standardized [ret, rv] of the training window.

    The training window is ``features`` restricted to ``start``..``end`` (inclusive; all
    rows when not given). The scaling (mean/std) is that of the training rows only. The
    fitted states are re-ordered by mean return so that 0 is bear, 1 neutral, 2 bull.
    Deterministic for a given ``seed``.
    """
    from hmmlearn.hmm import GaussianHMM  # imported here: only fitting needs hmmlearn

    sessions, x = _feature_matrix(features, what="fit_regime_model")
    keep = np.ones(len(sessions), dtype=bool)
    if start is not None:
        keep &= (sessions >= pd.Timestamp(start)).to_numpy()
    if end is not None:
        keep &= (sessions <= pd.Timestamp(end)).to_numpy()
    sessions, x = sessions[keep].reset_index(drop=True), x[keep]
    if len(x) < MIN_TRAINING_ROWS:
        raise ValueError(
            f"fit_regime_model needs at least {MIN_TRAINING_ROWS} training rows, got {len(x)}"
        )
    feature_mean = x.mean(axis=0)
    feature_std = x.std(axis=0)
    if (feature_std <= 0).any():
        flat = [FEATURE_NAMES[i] for i in np.flatnonzero(feature_std <= 0)]
        raise ValueError(f"fit_regime_model: feature(s) {flat} are constant in the window")
    z = (x - feature_mean) / feature_std

    hmm = GaussianHMM(
        n_components=N_STATES,
        covariance_type="full",
        random_state=seed,
        n_iter=n_iter,
    )
    hmm.fit(z)
    log_likelihood = float(hmm.score(z))

    order = np.argsort(hmm.means_[:, 0], kind="stable")
    transmat = hmm.transmat_[np.ix_(order, order)]
    # Renormalise away the last ulps so the saved rows sum to 1 as closely as floats allow.
    transmat = transmat / transmat.sum(axis=1, keepdims=True)
    startprob = hmm.startprob_[order]
    startprob = startprob / startprob.sum()
    covars = hmm.covars_[order]  # (3, 2, 2) for the "full" type
    covars = (covars + np.swapaxes(covars, 1, 2)) / 2.0
    return RegimeModel(
        startprob=startprob.tolist(),
        transmat=transmat.tolist(),
        means=hmm.means_[order].tolist(),
        covars=covars.tolist(),
        feature_mean=feature_mean.tolist(),
        feature_std=feature_std.tolist(),
        train_start=sessions.iloc[0].date().isoformat(),
        train_end=sessions.iloc[-1].date().isoformat(),
        n_samples=len(x),
        log_likelihood=log_likelihood,
        seed=seed,
        converged=bool(hmm.monitor_.converged),
    )


# ---------------------------------------------------------------------------- filtering
def _log_emissions(model: RegimeModel, z: np.ndarray) -> np.ndarray:
    """(n, 3) Gaussian log-densities of standardized rows ``z`` under each state.

    Written element-wise (a triangular solve by hand) so that a row's value does not depend
    on how many other rows are scored with it.
    """
    n, d = z.shape
    out = np.empty((n, N_STATES))
    means = np.asarray(model.means)
    for k, cov in enumerate(np.asarray(model.covars)):
        chol = np.linalg.cholesky(cov)
        diff = z - means[k]
        solved = np.empty_like(diff)
        for j in range(d):
            acc = diff[:, j].copy()
            for m in range(j):
                acc -= chol[j, m] * solved[:, m]
            solved[:, j] = acc / chol[j, j]
        mahalanobis = np.zeros(n)
        for j in range(d):
            mahalanobis += solved[:, j] ** 2
        log_det = 2.0 * float(np.sum(np.log(np.diag(chol))))
        out[:, k] = -0.5 * (d * math.log(2.0 * math.pi) + log_det + mahalanobis)
    return out


def _logsumexp(x: np.ndarray, axis: int | None = None) -> np.ndarray:
    """log(sum(exp(x))) along ``axis``, stable, and -inf (not nan) for all -inf input."""
    top = np.max(x, axis=axis, keepdims=True)
    safe_top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - safe_top), axis=axis, keepdims=True)) + safe_top
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _forward(model: RegimeModel, z: np.ndarray) -> tuple[np.ndarray, float]:
    """Normalised forward recursion in log space: (n, 3) log filtered probabilities and the
    total log-likelihood. Row t uses rows 0..t only."""
    log_b = _log_emissions(model, z)
    with np.errstate(divide="ignore"):
        log_start = np.log(np.asarray(model.startprob))
        log_trans = np.log(np.asarray(model.transmat))
    log_alpha = np.empty_like(log_b)
    total = 0.0
    previous: np.ndarray | None = None
    for t in range(len(z)):
        if previous is None:
            joint = log_start + log_b[t]
        else:
            joint = _logsumexp(previous[:, None] + log_trans, axis=0) + log_b[t]
        norm = float(_logsumexp(joint))
        if not np.isfinite(norm):
            raise ValueError(f"regime filter: row {t} has zero probability under every state")
        previous = joint - norm
        log_alpha[t] = previous
        total += norm
    return log_alpha, total


def regime_log_likelihood(model: RegimeModel, features: pd.DataFrame) -> float:
    """Log-likelihood of the standardized features under the model (forward algorithm)."""
    _, x = _feature_matrix(features, what="regime_log_likelihood")
    return _forward(model, model.standardize(x))[1]


def filter_regimes(model: RegimeModel, features: pd.DataFrame) -> pd.DataFrame:
    """Filtered regime probabilities per session, from the model's saved parameters.

    Columns ``session, market_regime, regime_confidence, p_bear, p_neutral, p_bull``.
    The probabilities of a session are P(state | features up to and including that
    session): forward filtering only, started from ``startprob`` at the first row, so a
    row's values do not change when later sessions are appended.
    """
    sessions, x = _feature_matrix(features, what="filter_regimes")
    if len(x):
        log_alpha, _ = _forward(model, model.standardize(x))
        probs = np.exp(log_alpha)
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
