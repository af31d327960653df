"""How figures and tables appear in the Dagster UI's metadata, the same for every asset."""

import math

import pandas as pd
from dagster import MetadataValue, TableColumn, TableColumnConstraints, TableSchema

from butterquant_dagster.core.market import schemas

NOT_ENOUGH_DATA = "not enough data"


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


def markdown_table(frame: pd.DataFrame, columns: list[str] | None = None, limit: int = 40):
    """A frame as a markdown table (its first ``limit`` rows), or "(none)"."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    shown = frame.head(limit)
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
