"""What the reports read, gathered in one place so the assets and the command agree.

Every reader takes the session the report is written at (``through``) and never returns
anything dated after it: an outcome counts only once its expiry has passed by then, so a
report rebuilt later for an old session says what was known at that session.

The scan history is large (every candidate of every session), so it is joined and filtered
in DuckDB over the lake's Parquet files rather than read into pandas whole.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from butterquant_dagster.core.ml.features import FEATURE_COLUMNS, KEY_COLUMNS
from butterquant_dagster.core.storage.lake import Lake

LIVE_FEATURE_SAMPLE = 100_000  # rows of live features compared with the training reference


def _has(store: Lake, *tables: str) -> bool:
    present = set(store.tables())
    return all(t in present for t in tables)


def _keys_equal(left: str, right: str) -> str:
    return " AND ".join(f"{left}.{k} = {right}.{k}" for k in KEY_COLUMNS)


def resolved_candidates(
    store: Lake,
    through: dt.date,
    *,
    since: dt.date | None = None,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Scan candidates with the probability predicted at entry and their outcome, for
    entries from ``since`` whose expiry is on or before ``through``, with the entry
    session's regime."""
    empty = pd.DataFrame(
        columns=[
            *KEY_COLUMNS,
            "ml_success_prob",
            "model_version",
            "win",
            "yield_per_1000",
            "regime",
        ]
    )
    if not _has(store, "ai_probabilities", "candidate_outcomes"):
        return empty
    regimes = _has(store, "market_regime")
    select = ["p.*", "o.win", "o.yield_per_1000"]
    joins = [f"JOIN candidate_outcomes o ON {_keys_equal('p', 'o')}"]
    if regimes:
        select.append("r.market_regime AS regime")
        joins.append("LEFT JOIN market_regime r ON r.session = p.session")
    else:
        select.append("NULL AS regime")
    where = ["o.expiry <= ?::DATE", "p.ml_success_prob IS NOT NULL"]
    params: list = [through.isoformat()]
    if since is not None:
        where.append("p.session >= ?::DATE")
        params.append(since.isoformat())
    if model_version is not None:
        where.append("p.model_version = ?")
        params.append(model_version)
    sql = (
        f"SELECT {', '.join(select)} FROM ai_probabilities p {' '.join(joins)} "
        f"WHERE {' AND '.join(where)} ORDER BY p.session"
    )
    with store.connect() as db:
        frame = db.execute(sql, params).df()
    return frame if len(frame) else empty


def labelled_features(store: Lake, through: dt.date, *, since: dt.date) -> pd.DataFrame:
    """Model features of the candidates entered from ``since`` with the outcome of those
    whose expiry passed by ``through`` - with or without a prediction, which is what says
    which inputs still separate winners from losers."""
    columns = ["session", *FEATURE_COLUMNS, "win"]
    if not _has(store, "candidate_features", "candidate_outcomes"):
        return pd.DataFrame(columns=columns)
    selected = ", ".join(f'f."{c}"' for c in FEATURE_COLUMNS)
    sql = (
        f"SELECT f.session, {selected}, o.win FROM candidate_features f "
        f"JOIN candidate_outcomes o ON {_keys_equal('f', 'o')} "
        "WHERE o.expiry <= ?::DATE AND f.session >= ?::DATE ORDER BY f.session"
    )
    with store.connect() as db:
        return db.execute(sql, [through.isoformat(), since.isoformat()]).df()


def _sampled(query: str, limit: int) -> str:
    """A repeatable reservoir sample of at most ``limit`` of ``query``'s rows.

    The sample wraps the query: DuckDB draws ``USING SAMPLE`` before it applies the
    query's own WHERE, which would sample the whole history and keep only the part of the
    sample that falls in the window.
    """
    return f"SELECT * FROM ({query}) USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (7)"


def live_features(
    store: Lake, since: dt.date, through: dt.date, *, limit: int = LIVE_FEATURE_SAMPLE
) -> pd.DataFrame:
    """The model features of candidates scanned in (since, through], a repeatable sample
    of at most ``limit`` rows (enough for a stability index; the whole is millions)."""
    if not _has(store, "candidate_features"):
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    columns = ", ".join(f'"{c}"' for c in FEATURE_COLUMNS)
    sql = _sampled(
        f"SELECT {columns} FROM candidate_features WHERE session > ?::DATE AND session <= ?::DATE",
        limit,
    )
    with store.connect() as db:
        return db.execute(sql, [since.isoformat(), through.isoformat()]).df()


def live_predictions(
    store: Lake,
    since: dt.date,
    through: dt.date,
    *,
    model_version: str | None = None,
    limit: int = LIVE_FEATURE_SAMPLE,
) -> pd.Series:
    """The P(win) predicted for candidates scanned in (since, through] (by ``model_version``
    when given), resolved or not: a repeatable sample of at most ``limit``, like
    :func:`live_features`, for the prediction's stability index."""
    if not _has(store, "ai_probabilities"):
        return pd.Series(dtype=float, name="ml_success_prob")
    where = ["session > ?::DATE", "session <= ?::DATE", "ml_success_prob IS NOT NULL"]
    params: list = [since.isoformat(), through.isoformat()]
    if model_version is not None:
        where.append("model_version = ?")
        params.append(model_version)
    sql = _sampled(
        f"SELECT ml_success_prob FROM ai_probabilities WHERE {' AND '.join(where)}", limit
    )
    with store.connect() as db:
        frame = db.execute(sql, params).df()
    return frame["ml_success_prob"].astype(float)


def regimes(store: Lake, through: dt.date) -> pd.DataFrame:
    """``session, regime`` of every session up to ``through`` (empty without the regime)."""
    if not _has(store, "market_regime"):
        return pd.DataFrame(columns=["session", "regime"])
    with store.connect() as db:
        return db.execute(
            "SELECT session, market_regime AS regime FROM market_regime "
            "WHERE session <= ?::DATE ORDER BY session",
            [through.isoformat()],
        ).df()


def closes(store: Lake, start: dt.date, end: dt.date, symbol: str | None = None) -> pd.DataFrame:
    """``session, symbol, close`` of the daily bars in [start, end] (one symbol or all)."""
    if not _has(store, "daily_bars"):
        return pd.DataFrame(columns=["session", "symbol", "close"])
    sql = "SELECT session, symbol, close FROM daily_bars WHERE session BETWEEN ?::DATE AND ?::DATE"
    params: list = [start.isoformat(), end.isoformat()]
    if symbol:
        sql += " AND symbol = ?"
        params.append(symbol)
    with store.connect() as db:
        return db.execute(sql + " ORDER BY session, symbol", params).df()


def session_rows(store: Lake, table: str, session: dt.date) -> pd.DataFrame:
    """One session's partition of ``table``, or an empty frame when it was not built."""
    return store.read_existing(table, [session.isoformat()])
