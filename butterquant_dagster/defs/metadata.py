"""How figures and tables appear in the Dagster UI's metadata, the same for every asset."""

import math

import pandas as pd
from dagster import MetadataValue

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
