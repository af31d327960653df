"""Inserting a row by its column names, the SQL built from one mapping of column -> value.

A positional ``INSERT INTO orders VALUES (?, ?, ...)`` with two dozen placeholders puts a
value in the wrong column the day someone adds a column or swaps two lines, and nothing
fails when both columns have the same type. Naming every column next to its value makes
that impossible: the SQL is generated from the same dict the values come from, and a
name the table lacks is an error, not a shifted row.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


def bindable(value):
    """A DuckDB parameter: an enum member as its plain value (DuckDB accepts a ``StrEnum``
    as the ``str`` it is, but a plain value never depends on that), anything else as is."""
    return value.value if isinstance(value, Enum) else value


def in_list(values) -> tuple[str, list[str]]:
    """``(?, ?, ...)`` and its parameters, for ``status IN`` a set of enum members (sorted, so
    the SQL of a set is always the same text)."""
    plain = sorted(str(bindable(value)) for value in values)
    return f"({', '.join('?' * len(plain))})", plain


def insert_sql(table: str, columns: list[str], on_conflict: str = "") -> str:
    """``INSERT INTO table (a, b) VALUES (?, ?)``, then ``on_conflict`` (e.g. ``ON CONFLICT
    DO NOTHING``) when given."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return f"{sql} {on_conflict}" if on_conflict else sql


def insert(con, table: str, row: Mapping[str, object], on_conflict: str = "") -> None:
    """Insert ``row`` (column -> value) into ``table`` of connection ``con``."""
    if not row:
        raise ValueError(f"an insert into {table} needs at least one column")
    con.execute(insert_sql(table, list(row), on_conflict), [bindable(v) for v in row.values()])
