"""How figures and tables appear in the Dagster UI's metadata, the same for every asset."""

import math
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

from butterquant_dagster.core import glossary
from butterquant_dagster.core.market import schemas
from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA


def figure(value, digits: int = 4) -> float | int | str:
    """A number as the UI shows it; a figure that could not be computed says so."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_ENOUGH_DATA
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return round(value, digits)
    return str(value)


def dates_as_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Date columns (every value at midnight, as sessions and expiries are) shown as dates:
    2026-12-18, not 2026-12-18 00:00:00."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if (
            pd.api.types.is_datetime64_any_dtype(column)
            and (column.dropna() == column.dropna().dt.normalize()).all()
        ):
            out[name] = column.dt.date
    return out


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None, limit: int = 40):
    """A frame as a markdown table (its first ``limit`` rows), or "(none)"."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = dates_as_dates(frame.head(limit))
    return MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "(none)")


def column_schema(schema: schemas.TableSchema) -> dict:
    """A table's columns as the UI's column schema (type, nullability, description), from
    the same definition the sources are conformed to, so the two cannot disagree."""
    return {
        "dagster/column_schema": TableSchema(
            columns=[
                TableColumn(
                    name=column.name,
                    type=column.kind,
                    description=column.description or None,
                    constraints=TableColumnConstraints(nullable=column.nullable),
                )
                for column in schema.columns
            ]
        )
    }


def stored_column_schema(table: str, path: Path) -> dict:
    """The UI's column schema of a lake table as stored in ``path`` (its Parquet schema),
    each column described by the one glossary of column meanings (``core/glossary.py``).

    The market tables publish theirs from their definitions instead (``column_schema``). A
    column the glossary lacks is published without a description rather than failing a
    run that produced good data; a test keeps the glossary complete.
    """
    if table in glossary.MARKET_SCHEMAS:
        return {}
    columns = []
    for field in pq.read_schema(path):
        try:
            text = glossary.describe(table, field.name)
        except glossary.UndescribedColumn:
            text = None
        columns.append(TableColumn(name=field.name, type=str(field.type), description=text))
    return {"dagster/column_schema": TableSchema(columns=columns)}
