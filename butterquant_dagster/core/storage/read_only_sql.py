"""Which SQL statements a reader of the lake may run.

``butterquant sql`` is a window onto the lake, not a second way to write it: a ``COPY ... TO``
into ``lake/<table>/`` would publish a partition that no blocking check ever saw. DuckDB's
own parser (``duckdb.extract_statements``) says what each statement is; only queries pass.
``EXPLAIN ANALYZE`` runs the statement it explains, so that statement is checked too.
DESCRIBE, SHOW, SUMMARIZE, FROM-first and VALUES queries parse as SELECT and pass.
"""

from __future__ import annotations

import re

import duckdb

ALLOWED = "SELECT (with WITH, FROM-first, VALUES, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN SELECT"
_EXPLAIN = re.compile(
    r"^\s*(?:(?:/\*.*?\*/|--[^\n]*(?:\n|$))\s*)*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?P<inner>.*)$",
    re.IGNORECASE | re.DOTALL,
)


class ReadOnlyQueryError(ValueError):
    """A statement that would change something, or SQL that does not parse."""


def _kind(statement) -> str:
    return statement.type.name


def _excerpt(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def check_read_only(query: str) -> None:
    """Raise naming the first statement of ``query`` that is not a read, and where it is."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"the query does not parse: {exc}") from exc
    if not statements:
        raise ReadOnlyQueryError("the query is empty")
    for number, statement in enumerate(statements, start=1):
        kind = _kind(statement)
        where = f"statement {number} ({kind}: {_excerpt(statement.query)!r})"
        if kind == "SELECT":
            continue
        if kind == "EXPLAIN" and _explains_a_select(statement.query):
            continue
        raise ReadOnlyQueryError(
            f"butterquant sql is read-only: {where} is refused; only {ALLOWED} may run"
        )


def _explains_a_select(text: str) -> bool:
    match = _EXPLAIN.match(text)
    if not match:
        return False
    try:
        inner = duckdb.extract_statements(match.group("inner"))
    except duckdb.Error:
        return False
    return len(inner) == 1 and _kind(inner[0]) == "SELECT"
