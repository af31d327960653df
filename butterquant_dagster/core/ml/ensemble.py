"""Buy / hold / sell views per ticker: one classifier per market regime over the technical
signals, validated walk-forward and shipped as ONNX.

The question each model answers is "will this ticker close higher ``horizon`` sessions from
now?". Markets behave differently in bull, neutral and bear regimes (momentum works in a
calm bull market and mean reversion in a choppy one), so instead of one model with regime
interactions there is one small, interpretable model per regime: a standardising scaler and
a logistic regression, fitted on that regime's rows only. The scaler is part of the pipeline
so it is fitted on training rows only and travels inside the ONNX graph.

Decisions come out deterministic (same inputs, same text), with the reasoning naming the
signals, and in the JSON shapes the portfolio tooling reads. See ``docs/signal_ensemble.md``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from butterquant_dagster.core.ml import gates, onnx_export
from butterquant_dagster.core.ml.technical import close_matrix, signals_at_sessions
from butterquant_dagster.core.ml.validation import (
    Fold,
    accuracy_by_group,
    classification_metrics,
    walk_forward_folds,
)

REGIMES = ("bull", "neutral", "bear")
REGIME_PROBABILITIES = ["p_bear", "p_neutral", "p_bull"]
REGIME_COLUMNS = ["session", "market_regime", "regime_confidence", *REGIME_PROBABILITIES]
# The EMAs are in dollars, which would make the model depend on a stock's price level, so
# the features carry them relative to the close instead (ema8_rel = ema8 / close - 1).
EMA_RELATIVE = {"ema8_rel": "ema8", "ema21_rel": "ema21", "ema55_rel": "ema55"}
ENSEMBLE_FEATURES = [
    "trend_dir",
    "trend_conf",
    "ema8_rel",
    "ema21_rel",
    "ema55_rel",
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
    *REGIME_PROBABILITIES,
]
ROW_COLUMNS = [
    "session",
    "symbol",
    "market_regime",
    "regime_confidence",
    *ENSEMBLE_FEATURES,
    "close",
    "label_close",
    "label_date",
    "horizon",
    "up",
]
DECISION_COLUMNS = ["symbol", "action", "confidence", "p_up", "reasoning"]
RISK_LEVELS = {"bear": "high", "neutral": "medium", "bull": "low"}
_VOTE_SIGNALS = ("trend", "mr", "mom")  # the signals with a view on the price's direction


# ---------------------------------------------------------------------------- features
def purge_days(horizon: int) -> int:
    """Calendar days spanned by ``horizon`` sessions (5 sessions a week), plus one."""
    return math.ceil(horizon * 7 / 5) + 1


def model_features(signals: pd.DataFrame, probabilities) -> pd.DataFrame:
    """:data:`ENSEMBLE_FEATURES` from technical signal rows and regime probabilities.

    ``probabilities`` is a mapping (one regime for every row) or a frame aligned with
    ``signals`` holding the p_* columns.
    """
    missing = [c for c in ("close", *EMA_RELATIVE.values()) if c not in signals.columns]
    if missing:
        raise ValueError(f"signals are missing column(s) {missing}")
    frame = signals.copy()
    for name, ema in EMA_RELATIVE.items():
        frame[name] = frame[ema] / frame["close"] - 1.0
    for name in REGIME_PROBABILITIES:
        frame[name] = probabilities[name]
    absent = [c for c in ENSEMBLE_FEATURES if c not in frame.columns]
    if absent:
        raise ValueError(f"signals are missing column(s) {absent}")
    return frame[ENSEMBLE_FEATURES].astype(float)


def _regime_table(regimes: pd.DataFrame) -> pd.DataFrame:
    """The regimes frame checked: its columns, known regime names, one row per session."""
    missing = [c for c in REGIME_COLUMNS if c not in regimes.columns]
    if missing:
        raise ValueError(f"regimes are missing column(s) {missing}; found {list(regimes.columns)}")
    table = regimes[REGIME_COLUMNS].copy()
    table["session"] = pd.to_datetime(table["session"]).dt.normalize().astype("datetime64[ns]")
    table["market_regime"] = table["market_regime"].astype(str)
    unknown = sorted(set(table["market_regime"]) - set(REGIMES))
    if unknown:
        raise ValueError(f"unknown market regime(s) {unknown}; expected one of {REGIMES}")
    if table["session"].duplicated().any():
        raise ValueError("regimes has more than one row for a session")
    return table


def _labels(history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """(session, symbol, label_close, label_date): the close ``horizon`` sessions later."""
    closes = close_matrix(history)
    ahead = closes.shift(-horizon)
    label_dates = pd.Series(closes.index, index=closes.index).shift(-horizon)
    long = ahead.stack().dropna().rename("label_close").reset_index()
    long["label_date"] = long["session"].map(label_dates)
    return long


def training_rows(
    history: pd.DataFrame,
    regimes: pd.DataFrame,
    sessions: list[dt.date],
    *,
    horizon: int = 21,
) -> pd.DataFrame:
    """Feature rows with their label for every usable (session, ticker), :data:`ROW_COLUMNS`.

    Features are the technical signals at the session (computed once over the whole
    history; every statistic is causal, so a row sees nothing after its session) and the
    session's regime probabilities. ``up`` is 1 when the ticker's close ``horizon`` sessions
    later (sessions = rows of the bar history) is above its close at the session;
    ``label_date`` is that later session, when the label became known. Rows without that
    close are dropped. Every session needs bars and a regimes row.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1 session, got {horizon}")
    table = _regime_table(regimes)
    signals = signals_at_sessions(history, sessions)
    no_regime = sorted(set(signals["session"]) - set(table["session"]))
    if no_regime:
        shown = ", ".join(str(d.date()) for d in no_regime[:5])
        raise ValueError(f"{len(no_regime)} session(s) have no regimes row: {shown}")
    rows = signals.merge(table, on="session", how="left")
    rows = rows.merge(_labels(history, horizon), on=["session", "symbol"], how="inner")
    out = rows.copy()
    for name, ema in EMA_RELATIVE.items():
        out[name] = out[ema] / out["close"] - 1.0
    out["horizon"] = horizon
    out["up"] = (out["label_close"] > out["close"]).astype("int64")
    out = out.sort_values(["session", "symbol"], kind="stable")
    return out[ROW_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------- training
@dataclass(frozen=True)
class RegimeModel:
    """One regime's classifier: the ONNX graph, its walk-forward metrics and parity."""

    onnx_bytes: bytes
    metrics: dict
    n_rows: int
    parity: onnx_export.Parity
    folds: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class EnsembleResult:
    models: dict[str, RegimeModel]
    features: list[str]
    horizon: int
    seed: int
    forced: bool = False
    omitted: dict[str, str] = field(default_factory=dict)

    def sessions(self) -> dict[str, object | None]:
        """An onnxruntime session per regime (None for an omitted regime), for ``decide``."""
        return {
            name: onnx_export.session(m.onnx_bytes) if (m := self.models.get(name)) else None
            for name in REGIMES
        }

    def verdict(self, name: str) -> dict:
        """The promotion gates of one regime's model: Brier skill over the base rate of
        "up", ONNX parity, not forced."""
        model = self.models[name]
        parity = {
            "max_abs_diff": model.parity.max_abs_diff,
            "passed": model.parity.passed,
            "tolerance": model.parity.tolerance,
        }
        return gates.verdict(
            [
                *gates.ensemble_regime_gates(model.metrics, parity),
                gates.not_forced_gate(self.forced),
            ]
        )

    def metadata(self) -> dict:
        """JSON-ready description: features, horizon, and per regime its accuracy, parity
        and promotion gates."""
        return {
            "features": list(self.features),
            "horizon": self.horizon,
            "seed": self.seed,
            "forced": self.forced,
            "omitted": dict(self.omitted),
            "regimes": {
                name: {
                    "n_rows": m.n_rows,
                    "accuracy": m.metrics["accuracy"],
                    "metrics": m.metrics,
                    "parity": {
                        "max_abs_diff": m.parity.max_abs_diff,
                        "passed": m.parity.passed,
                        "tolerance": m.parity.tolerance,
                    },
                    "folds": m.folds,
                    "gates": self.verdict(name),
                }
                for name, m in self.models.items()
            },
        }


def _pipeline(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logit", LogisticRegression(C=1.0, max_iter=2000, random_state=seed)),
        ]
    )


def regime_folds(part: pd.DataFrame, *, n_folds: int, horizon: int) -> list[Fold]:
    """Walk-forward folds over one regime's rows: entry = session, expiry = label_date.

    A training row's label must be known before the fold's first test session and its session
    must precede it by the purge (the horizon in calendar days), so no label overlaps a test
    row's life.
    """
    return walk_forward_folds(
        part["session"], part["label_date"], n_folds=n_folds, purge_days=purge_days(horizon)
    )


def _refusal(name: str, part: pd.DataFrame, min_rows: int) -> str | None:
    """Why a regime cannot be trained (too few rows, one class), or None."""
    n_up = int(part["up"].sum())
    n_down = len(part) - n_up
    if len(part) >= min_rows and n_up and n_down:
        return None
    return (
        f"regime {name}: {len(part)} rows ({n_up} up, {n_down} down); "
        f"need at least {min_rows} rows with both classes"
    )


def _out_of_fold(part: pd.DataFrame, folds: list[Fold], seed: int):
    """Pooled out-of-fold probabilities; folds whose training rows hold one class are skipped."""
    x = part[ENSEMBLE_FEATURES].to_numpy(dtype=float)
    y = part["up"].to_numpy(dtype=int)
    p, truth, fold_of, summary = [], [], [], []
    for fold in folds:
        trainable = len(np.unique(y[fold.train])) == 2 and len(fold.test) > 0
        summary.append(
            {
                "index": fold.index,
                "n_train": len(fold.train),
                "n_test": len(fold.test),
                "test_start": str(fold.test_start.date()),
                "test_end": str(fold.test_end.date()),
                "last_train_label_date": str(part["label_date"].iloc[fold.train].max().date())
                if len(fold.train)
                else None,
                "trained": bool(trainable),
            }
        )
        if not trainable:
            continue
        model = _pipeline(seed).fit(x[fold.train], y[fold.train])
        p.append(model.predict_proba(x[fold.test])[:, 1])
        truth.append(y[fold.test])
        fold_of.append(np.full(len(fold.test), fold.index))
    if not p:
        return None, summary
    return (np.concatenate(truth), np.concatenate(p), np.concatenate(fold_of)), summary


def _train_regime(name: str, part: pd.DataFrame, n_folds: int, seed: int, horizon: int):
    """Validate walk-forward, fit on all rows, export to ONNX and prove parity."""
    folds = regime_folds(part, n_folds=n_folds, horizon=horizon)
    pooled, summary = _out_of_fold(part, folds, seed)
    if pooled is None:
        raise ValueError("no walk-forward fold has both classes to train on")
    y, p, fold_of = pooled
    metrics = classification_metrics(y, p)
    metrics["by_fold"] = accuracy_by_group(y, p, fold_of)
    x = part[ENSEMBLE_FEATURES].to_numpy(dtype=float)
    model = _pipeline(seed).fit(x, part["up"].to_numpy(dtype=int))
    onnx_bytes = onnx_export.export(model, len(ENSEMBLE_FEATURES))
    check = onnx_export.parity(model, onnx_bytes, x)
    if not check.passed:
        raise RuntimeError(
            f"regime {name}: ONNX output differs from scikit-learn by {check.max_abs_diff:.3g} "
            f"(tolerance {check.tolerance:g}); the model is not exported"
        )
    return RegimeModel(onnx_bytes, metrics, len(part), check, summary)


def _single_horizon(rows: pd.DataFrame) -> int:
    horizons = rows["horizon"].unique()
    if len(horizons) != 1:
        raise ValueError(f"rows mix label horizons {sorted(horizons)}; train one at a time")
    return int(horizons[0])


def train_ensemble(
    rows: pd.DataFrame,
    *,
    n_folds: int = 4,
    seed: int = 7,
    min_rows: int = 200,
    force: bool = False,
    allow_missing_regimes: bool = False,
) -> EnsembleResult:
    """One StandardScaler + LogisticRegression per regime, validated walk-forward, as ONNX.

    ``rows`` come from :func:`training_rows`; a row belongs to the regime in its
    ``market_regime``. A regime with fewer than ``min_rows`` rows, a single class, or too few
    sessions for the folds is refused with a ValueError naming the counts; with
    ``force=True`` its model is left out instead. Any ``force=True`` result is marked
    ``forced`` (registered, never promoted), whether or not something was left out.
    With ``allow_missing_regimes=True`` such a regime is left out without forcing anything:
    the regimes that had enough data get honest models (decisions in the missing regime fall
    back to the signal vote), and ``omitted`` says why the others are missing.
    """
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"training rows are missing column(s) {missing}")
    unknown = sorted(set(rows["market_regime"].astype(str)) - set(REGIMES))
    if unknown:
        raise ValueError(f"unknown market regime(s) {unknown}; expected one of {REGIMES}")
    horizon = _single_horizon(rows)
    models, refused = {}, {}
    for name in REGIMES:
        part = rows[rows["market_regime"].astype(str) == name].reset_index(drop=True)
        reason = _refusal(name, part, min_rows)
        if reason is None:
            try:
                models[name] = _train_regime(name, part, n_folds, seed, horizon)
            except ValueError as exc:
                reason = f"regime {name}: {exc}"
        if reason is not None:
            refused[name] = reason
    tolerated = force or allow_missing_regimes
    if refused and (not tolerated or not models):
        hint = "" if tolerated else " (force=True leaves these regimes without a model)"
        raise ValueError("; ".join(refused.values()) + hint)
    forced = bool(force)
    return EnsembleResult(models, list(ENSEMBLE_FEATURES), horizon, seed, forced, refused)


# ---------------------------------------------------------------------------- decisions
def _check_regime(regime: Mapping) -> str:
    keys = ("market_regime", "regime_confidence", *REGIME_PROBABILITIES)
    missing = [k for k in keys if k not in regime]
    if missing:
        raise ValueError(f"regime is missing key(s) {missing}")
    name = str(regime["market_regime"])
    if name not in REGIMES:
        raise ValueError(f"unknown market regime {name!r}; expected one of {REGIMES}")
    return name


def _check_finite(features: pd.DataFrame, symbols: np.ndarray) -> None:
    """Reject NaN/inf before inference, naming the first offending ticker and column."""
    values = features.to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"non-finite feature for {symbols[row]}: {features.columns[col]}="
            f"{values[row, col]} ({int(bad.sum())} non-finite value(s) in all)"
        )


def _signal_vote(signals: pd.DataFrame) -> np.ndarray:
    """Mean of direction × confidence over trend, mean reversion and momentum, in [-1, 1]."""
    parts = [
        signals[f"{s}_dir"].to_numpy(float) * signals[f"{s}_conf"].to_numpy(float)
        for s in _VOTE_SIGNALS
    ]
    return np.mean(parts, axis=0)


def _word(direction: float) -> str:
    return {1: "up", -1: "down"}.get(int(direction), "neutral")


def _signal_text(row) -> str:
    """The signals of one ticker in words, always in the same order and format."""
    trend_detail = {1: "EMA 8>21>55", -1: "EMA 8<21<55"}.get(int(row.trend_dir), "EMAs mixed")
    vol_word = {1: "calming", -1: "expanding"}.get(int(row.volreg_dir), "steady")
    return "; ".join(
        [
            f"trend {_word(row.trend_dir)} ({trend_detail}, ADX {row.adx:.0f})",
            f"momentum {_word(row.mom_dir)} (63d {100 * row.mom63:+.1f}%)",
            f"mean reversion {_word(row.mr_dir)} "
            f"(z {row.zscore50:+.1f}, %B {row.bollinger_pctb:.2f})",
            f"volatility {vol_word} (10d/60d {row.vol_ratio:.2f})",
            f"Hurst {row.hurst:.2f}",
        ]
    )


def _check_thresholds(buy: float, sell: float) -> None:
    if not 0.0 <= sell <= 0.5 <= buy <= 1.0 or sell == buy:
        raise ValueError(
            f"need 0 <= sell_threshold <= 0.5 <= buy_threshold <= 1, got {sell}, {buy}"
        )


def decide(
    signals: pd.DataFrame,
    regime: Mapping,
    models: Mapping,
    *,
    buy_threshold: float = 0.55,
    sell_threshold: float = 0.45,
) -> pd.DataFrame:
    """Buy / sell / hold per ticker, :data:`DECISION_COLUMNS`, in the order of ``signals``.

    ``signals`` are rows of ``technical_signals``; ``regime`` holds market_regime,
    regime_confidence and p_*; ``models`` maps regime names to onnxruntime sessions (or
    None). With a model, P(up) is its probability; without one, the signal vote v stands in
    as 0.5 + v / 2 (and ``p_up`` is NaN). Buy at or above ``buy_threshold``, sell at or below
    ``sell_threshold``; confidence = |P − 0.5| × 2.
    """
    _check_thresholds(buy_threshold, sell_threshold)
    name = _check_regime(regime)
    symbols = signals["symbol"].astype(str).to_numpy()
    features = model_features(signals.reset_index(drop=True), regime)
    _check_finite(features, symbols)
    model = models.get(name)
    vote = _signal_vote(signals)
    if model is not None:
        p_up = onnx_export.run(model, features.to_numpy(dtype=np.float32)).astype(float)
        score = p_up
    else:
        p_up = np.full(len(signals), np.nan)
        score = 0.5 + vote / 2.0
    action = np.where(
        score >= buy_threshold, "buy", np.where(score <= sell_threshold, "sell", "hold")
    )
    head = f"{name} regime ({float(regime['regime_confidence']):.2f})"
    reasoning = []
    for i, row in enumerate(signals.itertuples(index=False)):
        driver = (
            f"model P(up)={p_up[i]:.2f}"
            if model is not None
            else f"no {name} model, signal vote {vote[i]:+.2f}"
        )
        reasoning.append(f"{head}; {driver}; {_signal_text(row)}")
    return pd.DataFrame(
        {
            "symbol": symbols,
            "action": action,
            "confidence": np.clip(np.abs(score - 0.5) * 2.0, 0.0, 1.0),
            "p_up": p_up,
            "reasoning": reasoning,
        },
        columns=DECISION_COLUMNS,
    )


def decisions_json(decisions: pd.DataFrame, regime: Mapping) -> dict:
    """{"decisions": {T: {action, confidence, reasoning}}, "market_regime", "regime_confidence"}."""
    name = _check_regime(regime)
    ordered = decisions.sort_values("symbol", kind="stable")
    return {
        "decisions": {
            str(r.symbol): {
                "action": str(r.action),
                "confidence": round(float(r.confidence), 4),
                "reasoning": str(r.reasoning),
            }
            for r in ordered.itertuples(index=False)
        },
        "market_regime": name,
        "regime_confidence": round(float(regime["regime_confidence"]), 4),
    }


def _shares(action: str, confidence: float, price, budget: float, symbol: str) -> int:
    """floor(budget × confidence / price) for a buy or sell, 0 for a hold."""
    if action == "hold":
        return 0
    if price is None or not np.isfinite(price) or price <= 0:
        raise ValueError(f"no positive price for {symbol} ({price!r}); cannot size its {action}")
    return math.floor(budget * confidence / float(price))


def portfolio_export(
    decisions: pd.DataFrame,
    regime: Mapping,
    *,
    timestamp,
    capital: float = 100_000,
    max_position: float = 0.05,
    prices: Mapping,
) -> dict:
    """{"timestamp", "decisions": {T: {action, confidence, shares}}, "market_regime", "risk_level"}.

    shares = floor(capital × max_position × confidence / price) for buys and sells, 0 for
    holds; risk_level is high in a bear regime, medium in a neutral one, low in a bull one.
    """
    if capital <= 0 or not 0 < max_position <= 1:
        raise ValueError(
            f"need capital > 0 and 0 < max_position <= 1, got {capital}, {max_position}"
        )
    name = _check_regime(regime)
    budget = capital * max_position
    ordered = decisions.sort_values("symbol", kind="stable")
    stamp = timestamp.isoformat() if hasattr(timestamp, "isoformat") else str(timestamp)
    return {
        "timestamp": stamp,
        "decisions": {
            str(r.symbol): {
                "action": str(r.action),
                "confidence": round(float(r.confidence), 4),
                "shares": _shares(
                    str(r.action), float(r.confidence), prices.get(r.symbol), budget, r.symbol
                ),
            }
            for r in ordered.itertuples(index=False)
        },
        "market_regime": name,
        "risk_level": RISK_LEVELS[name],
    }
