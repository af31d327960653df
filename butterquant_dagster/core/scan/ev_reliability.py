"""Is a ranking worth believing? Predicted against realized yield per $1,000, by decile.

A ranking measure earns trust only on candidates that have settled: sort them by the
measure, cut them into deciles, and compare what each decile was promised with what it
returned. A measure *validates* when, on outcomes known before the session being ranked,

1. its top decile returned more per $1,000 than all settled candidates did, and
2. its rank correlation (Spearman) with the realized yield is positive,

on at least ``MIN_SETTLED_ROWS`` settled candidates. Among the rule-based measures that
validate, the one whose top decile returned most ranks the baseline track; when none does,
the baseline falls back to ``DEFAULT_RULE_MEASURE`` and says it is unvalidated.

Point in time: the table of a session uses only candidates whose expiry is *before* that
session, so no ranking is judged on an outcome it could not have known.

Everything is per $1,000 at risk: ``ev_per_1000`` and ``yield_per_1000`` already are, the
model's ``ml_expected_roi`` (a fraction) is scaled by ``PER_1000`` wherever it is shown.
The table reads whatever cost basis the scan and the outcomes were computed on; it compares
them, it does not price anything itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from butterquant_dagster.core.ml.features import KEY_COLUMNS

PER_1000 = 1000.0  # a fraction of the capital at risk, as dollars per $1,000 at risk
REALIZED = "yield_per_1000"
DECILES = 10
MIN_SETTLED_ROWS = 200  # below this no decile holds enough outcomes to judge a measure
PER_SESSION_CAP = 2_000  # settled candidates read per entry session (a fixed, hashed subset)
LOOKBACK_DAYS = 730  # entry sessions older than this say little about today's market

# The rule-based measures the scan computes for every candidate, best-is-highest each.
RULE_MEASURES: dict[str, str] = {
    "ev_per_1000": "rule expected value per $1,000 after costs",
    "score": "4-factor rule score (0-100)",
    "prob_profit_forecast": "P(profit) under the rule's forecast",
    "prob_profit_rn": "risk-neutral P(profit) from the chain",
}
DEFAULT_RULE_MEASURE = "ev_per_1000"  # the rule's own expected value: ranks when none validates
BASELINE_COLUMN = "baseline_rank_by"  # the rankings' record of the baseline's measure
# The champion model's expected yield, a fraction of the capital at risk.
MODEL_MEASURE = "ml_expected_roi"
MODEL_MEASURE_PER_1000 = "ml_expected_per_1000"
# The rule EV mapped to what settled candidates with that EV realized (see EvCurve).
EV_CALIBRATED = "ev_calibrated_per_1000"

TABLE_COLUMNS = ["decile", "rows", "predicted", "realized_per_1000", "win_rate"]
SKILL_COLUMNS = [
    "measure",
    "rows",
    "rank_correlation",
    "top_decile_realized",
    "all_realized",
    "validates",
    "why",
]


class ReliabilityError(ValueError):
    """The settled frame lacks what a reliability table needs."""


@dataclass(frozen=True)
class Choice:
    """The measure the baseline ranks by, and whether the data backed it."""

    measure: str
    validated: bool
    why: str


def _require(settled: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in settled.columns]
    if missing:
        raise ReliabilityError(
            f"{where}: the settled candidates lack column(s) {missing}; expected the scan's "
            f"candidates joined with candidate_outcomes ({REALIZED}, win)"
        )


def _usable(settled: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = settled[[measure, REALIZED, "win"]].copy()
    rows[measure] = pd.to_numeric(rows[measure], errors="coerce")
    rows[REALIZED] = pd.to_numeric(rows[REALIZED], errors="coerce")
    finite = np.isfinite(rows[measure].to_numpy(float)) & np.isfinite(
        rows[REALIZED].to_numpy(float)
    )
    return rows.loc[finite]


def _deciles(values: pd.Series, bins: int) -> pd.Series:
    """Decile 1 (lowest) .. ``bins`` (highest) by rank, ties split by order of appearance,
    so a measure with many equal values still fills every decile."""
    ranks = values.rank(method="first")
    return np.ceil(ranks * bins / len(values)).astype(int).clip(1, bins)


def reliability_table(
    settled: pd.DataFrame, measure: str, *, scale: float = 1.0, bins: int = DECILES
) -> pd.DataFrame:
    """Per decile of ``measure`` (``scale``d, e.g. ``PER_1000`` for a fraction): rows, the
    mean predicted value, the mean realized yield per $1,000 and the win rate."""
    _require(settled, [measure, REALIZED, "win"], f"reliability table of {measure!r}")
    rows = _usable(settled, measure)
    if len(rows) < bins:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    rows["decile"] = _deciles(rows[measure], bins)
    table = rows.groupby("decile").agg(
        rows=(REALIZED, "size"),
        predicted=(measure, "mean"),
        realized_per_1000=(REALIZED, "mean"),
        win_rate=("win", "mean"),
    )
    table["predicted"] *= scale
    return table.reset_index()[TABLE_COLUMNS]


def measure_skill(settled: pd.DataFrame, measure: str, *, bins: int = DECILES) -> dict:
    """How well ``measure`` ranks realized yield, and whether it validates (module doc)."""
    _require(settled, [measure, REALIZED, "win"], f"skill of {measure!r}")
    rows = _usable(settled, measure)
    n = len(rows)
    result = dict.fromkeys(SKILL_COLUMNS)
    result |= {"measure": measure, "rows": n, "validates": False}
    if n < MIN_SETTLED_ROWS:
        result["why"] = f"{n} settled candidates, fewer than the {MIN_SETTLED_ROWS} needed"
        return result
    realized = rows[REALIZED]
    top = realized[_deciles(rows[measure], bins) == bins]
    rho = rows[measure].rank().corr(realized.rank())  # Spearman: Pearson on ranks
    result |= {
        "rank_correlation": float(rho) if np.isfinite(rho) else 0.0,
        "top_decile_realized": float(top.mean()),
        "all_realized": float(realized.mean()),
    }
    failures = []
    if not result["top_decile_realized"] > result["all_realized"]:
        failures.append("top decile returned no more than all candidates")
    if not result["rank_correlation"] > 0:
        failures.append("rank correlation not positive")
    result["validates"] = not failures
    result["why"] = "; ".join(failures) or "validates"
    return result


def skill_table(settled: pd.DataFrame, measures=tuple(RULE_MEASURES)) -> pd.DataFrame:
    """:func:`measure_skill` of each of ``measures`` the frame has, one row each."""
    present = [m for m in measures if m in settled.columns]
    return pd.DataFrame([measure_skill(settled, m) for m in present], columns=SKILL_COLUMNS)


def choose_rule_measure(skill: pd.DataFrame) -> Choice:
    """The validating rule measure whose top decile returned most; else the default."""
    passing = skill.loc[skill["validates"].astype(bool) & skill["measure"].isin(RULE_MEASURES)]
    if len(passing):
        best = passing.sort_values("top_decile_realized", ascending=False, kind="stable").iloc[0]
        return Choice(
            str(best["measure"]),
            True,
            f"{best['measure']} validates: top decile {best['top_decile_realized']:+.0f} per "
            f"$1,000 against {best['all_realized']:+.0f} for all {int(best['rows'])} settled "
            f"candidates, rank correlation {best['rank_correlation']:+.3f}",
        )
    reasons = "; ".join(f"{r.measure}: {r.why}" for r in skill.itertuples(index=False))
    return Choice(
        DEFAULT_RULE_MEASURE,
        False,
        f"no rule measure validates ({reasons or 'no settled candidates'}); "
        f"{DEFAULT_RULE_MEASURE} ranks, unvalidated",
    )


def known_before(settled: pd.DataFrame, session: dt.date) -> pd.DataFrame:
    """The settled candidates a ranking of ``session`` may learn from: expiry before it,
    entered within ``LOOKBACK_DAYS`` of it."""
    _require(settled, ["session", "expiry"], "point-in-time filter")
    day = pd.Timestamp(session)
    known = pd.to_datetime(settled["expiry"]) < day
    recent = pd.to_datetime(settled["session"]) >= day - pd.Timedelta(days=LOOKBACK_DAYS)
    return settled.loc[known & recent]


def choices_by_session(settled: pd.DataFrame, sessions) -> dict[dt.date, tuple[Choice, int]]:
    """The point-in-time choice for each session, with how many outcomes it rests on."""
    return _per_known_set(
        settled,
        sessions,
        lambda known: (choose_rule_measure(skill_table(known)), len(known)),
        "point-in-time choice",
    )


def curves_by_session(settled: pd.DataFrame, sessions) -> dict[dt.date, EvCurve | None]:
    """The point-in-time :class:`EvCurve` of each session (None before enough settled)."""
    return _per_known_set(settled, sessions, ev_curve, "point-in-time EV curve")


def _per_known_set(settled: pd.DataFrame, sessions, compute, what: str) -> dict:
    """``compute(known_before(settled, session))`` for each session, once per known set.

    The outcomes a session sees only grow (expiry before it) and shed their oldest (entry
    before its lookback), so the two counts name the set: sessions that share them share
    one computation.
    """
    _require(settled, ["session", "expiry"], what)
    expiries = np.sort(pd.to_datetime(settled["expiry"]).to_numpy("M8[ns]"))
    entries = np.sort(pd.to_datetime(settled["session"]).to_numpy("M8[ns]"))
    out, cache = {}, {}
    for session in sessions:
        day = pd.Timestamp(session)
        key = (
            int(np.searchsorted(expiries, day.to_datetime64(), "left")),
            int(
                np.searchsorted(
                    entries, (day - pd.Timedelta(days=LOOKBACK_DAYS)).to_datetime64(), "left"
                )
            ),
        )
        if key not in cache:
            cache[key] = compute(known_before(settled, session))
        out[session] = cache[key]
    return out


@dataclass(frozen=True)
class EvCurve:
    """What a candidate's rule EV per $1,000 has been worth: the mean realized yield per
    $1,000 of settled candidates by decile of their EV, made non-decreasing (isotonic, each
    decile weighted by its rows) and interpolated linearly between decile means, flat
    beyond them.

    Why: the rule EV ranks realized yield (its deciles are ordered) but its top decile
    promises far more than it returns, so a floor on the raw EV lets through orders that
    lose on average. The floor judges this calibrated EV instead.
    """

    predicted: tuple[float, ...]
    realized: tuple[float, ...]
    rows: int

    def apply(self, ev) -> np.ndarray:
        values = pd.to_numeric(pd.Series(ev), errors="coerce").to_numpy(float)
        out = np.interp(values, self.predicted, self.realized)
        out[~np.isfinite(values)] = np.nan
        return out

    def as_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ev_per_1000": self.predicted, "calibrated_per_1000": self.realized})


def ev_curve(known: pd.DataFrame) -> EvCurve | None:
    """The :class:`EvCurve` of ``known`` settled candidates (already point in time, see
    :func:`known_before`); None below ``MIN_SETTLED_ROWS``, when nothing can be said."""
    from sklearn.isotonic import IsotonicRegression

    if not len(known):
        return None
    table = reliability_table(known, DEFAULT_RULE_MEASURE)
    rows = int(table["rows"].sum()) if len(table) else 0
    if rows < MIN_SETTLED_ROWS:
        return None
    predicted = table["predicted"].to_numpy(float)
    fitted = IsotonicRegression(increasing=True).fit(
        predicted, table["realized_per_1000"].to_numpy(float), sample_weight=table["rows"]
    )
    return EvCurve(tuple(predicted.tolist()), tuple(fitted.predict(predicted).tolist()), rows)


def ev_curve_at(store, session: dt.date) -> EvCurve | None:
    """The curve a plan for ``session`` may use: from outcomes settled before it."""
    settled = settled_candidates(store, session, session)
    return ev_curve(known_before(settled, session))


def with_calibrated_ev(frame: pd.DataFrame, curve: EvCurve | None) -> pd.DataFrame:
    """``frame`` with :data:`EV_CALIBRATED` (NaN without a curve: the floor then judges the
    raw rule EV, and the plan says the EV is uncalibrated)."""
    out = frame.copy()
    if curve is None or DEFAULT_RULE_MEASURE not in out.columns:
        out[EV_CALIBRATED] = np.nan
    else:
        out[EV_CALIBRATED] = curve.apply(out[DEFAULT_RULE_MEASURE])
    return out


def with_per_1000(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` for display: the model's expected yield as dollars per $1,000 at risk in
    place of the stored fraction, so every yield on a page is in one unit."""
    if MODEL_MEASURE not in frame.columns:
        return frame
    shown = frame.copy()
    position = shown.columns.get_loc(MODEL_MEASURE)
    values = pd.to_numeric(shown.pop(MODEL_MEASURE), errors="coerce") * PER_1000
    shown.insert(position, MODEL_MEASURE_PER_1000, values)
    return shown


def settled_candidates(store, first: dt.date, last: dt.date) -> pd.DataFrame:
    """What the rankings of sessions ``first``..``last`` may learn from (each then narrows
    it with :func:`known_before`): scan candidates joined with their outcomes, with every
    rule measure, the model's estimate when one was stored, realized yield and win.

    Bounded so a large universe stays cheap: at most ``PER_SESSION_CAP`` candidates of each
    entry session, picked by a hash of the candidate's key (the same rows whichever run
    reads them). ``store`` is a ``Lake``.
    """
    columns = ["session", "symbol", "expiry", *RULE_MEASURES, MODEL_MEASURE, REALIZED, "win"]
    present = set(store.tables())
    if not {"butterfly_candidates", "candidate_outcomes"} <= present:
        return pd.DataFrame(columns=columns)
    keys = " AND ".join(f"c.{k} = o.{k}" for k in KEY_COLUMNS)
    measures = ", ".join(f"c.{m}" for m in RULE_MEASURES)
    model, join_model = "NULL", ""
    if "ai_probabilities" in present:
        model = f"p.{MODEL_MEASURE}"
        join_model = "LEFT JOIN ai_probabilities p ON " + " AND ".join(
            f"p.{k} = c.{k}" for k in KEY_COLUMNS
        )
    hashed = ", ".join(f"o.{k}" for k in KEY_COLUMNS)
    sql = (
        f"SELECT c.session, c.symbol, o.expiry, {measures}, {model} AS {MODEL_MEASURE}, "
        f"o.{REALIZED}, o.win, row_number() OVER (PARTITION BY o.session "
        f"ORDER BY hash({hashed})) AS pick "
        f"FROM candidate_outcomes o JOIN butterfly_candidates c ON {keys} {join_model} "
        "WHERE o.expiry < ?::DATE AND o.session >= ?::DATE"
    )
    since = first - dt.timedelta(days=LOOKBACK_DAYS)
    with store.connect() as db:
        frame = db.execute(
            f"SELECT * EXCLUDE (pick) FROM ({sql}) WHERE pick <= ? ORDER BY session, symbol",
            [last.isoformat(), since.isoformat(), PER_SESSION_CAP],
        ).df()
    return frame[columns] if len(frame) else pd.DataFrame(columns=columns)


def report_frames(settled: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What a page shows: the skill of every measure (the model's too when present) and the
    reliability table of the rule's EV and of the model's expected yield."""
    measures = list(RULE_MEASURES)
    model = MODEL_MEASURE in settled.columns and settled[MODEL_MEASURE].notna().any()
    if model:
        measures.append(MODEL_MEASURE)
    per_1000 = {"predicted": "predicted_per_1000"}  # both tables below are in dollars
    frames = {"skill": skill_table(settled, measures)}
    frames["ev_per_1000"] = reliability_table(settled, "ev_per_1000").rename(columns=per_1000)
    if model:
        frames[MODEL_MEASURE_PER_1000] = reliability_table(
            settled.loc[settled[MODEL_MEASURE].notna()], MODEL_MEASURE, scale=PER_1000
        ).rename(columns=per_1000)
    return frames


def baseline_measure(rankings: pd.DataFrame) -> str:
    """The measure the baseline ranks by, as the session's rankings recorded it (the
    default when they predate the record or are empty)."""
    if BASELINE_COLUMN not in rankings.columns or not len(rankings):
        return DEFAULT_RULE_MEASURE
    recorded = rankings[BASELINE_COLUMN].dropna()
    if not len(recorded):
        return DEFAULT_RULE_MEASURE
    measure = str(recorded.iloc[0])
    if measure not in RULE_MEASURES:
        raise ReliabilityError(
            f"rankings record baseline measure {measure!r} in {BASELINE_COLUMN}; expected one "
            f"of {sorted(RULE_MEASURES)}"
        )
    return measure
