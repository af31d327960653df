"""The canonical tables of market data: columns, dtypes and keys.

Every source (synthetic, files, later IBKR) returns exactly these columns, so everything
downstream is written once. ``conform`` is the single gate a source's output passes through;
it raises :class:`SchemaError` naming the table, the origin (file or source) and the columns.

Dates are ``datetime64[ns]`` at midnight, meaning the exchange-local calendar date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class SchemaError(ValueError):
    """A table that does not have the columns or dtypes of its schema."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "date" | "str" | "float" | "int" | "bool"
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


DAILY_BARS = TableSchema(
    name="daily_bars",
    key=("session", "symbol"),
    columns=(
        Column("session", "date", description="NYSE session the bar belongs to"),
        Column("symbol", "str", description="ticker, e.g. AAPL or BRK.B"),
        Column("open", "float", description="first trade, dollars (split-adjusted)"),
        Column("high", "float", description="highest trade, dollars"),
        Column("low", "float", description="lowest trade, dollars"),
        Column("close", "float", description="closing price, dollars (split-adjusted)"),
        Column("adj_close", "float", description="close adjusted for splits and dividends"),
        Column(
            "prev_close",
            "float",
            nullable=True,
            description="close of the previous session; null on a ticker's first bar",
        ),
        Column("volume", "int", description="shares traded"),
        Column("source", "str", description="synthetic | files:<file name> | ibkr"),
    ),
)

OPTION_CHAINS = TableSchema(
    name="option_chains",
    key=("session", "symbol", "expiry", "strike", "right"),
    columns=(
        Column("session", "date", description="NYSE session of the closing snapshot"),
        Column("symbol", "str", description="underlying ticker"),
        Column("expiry", "date", description="last trading session of the contract"),
        Column("expiry_type", "str", description="weekly | monthly"),
        Column("dte", "int", description="calendar days from session to expiry"),
        Column("strike", "float", description="strike, dollars"),
        Column("right", "str", description="C (call) or P (put)"),
        Column("bid", "float", description="closing bid, dollars per share"),
        Column("ask", "float", description="closing ask, dollars per share"),
        Column("mid", "float", description="(bid + ask) / 2"),
        Column("theo", "float", description="model value (synthetic/modelled) or mid (vendor)"),
        Column("volume", "int", description="contracts traded in the session"),
        Column("open_interest", "int", description="open contracts at the start of the session"),
        Column("implied_vol", "float", description="annualised implied volatility"),
        Column("delta", "float", description="per share"),
        Column("gamma", "float", description="per share per dollar"),
        Column("vega", "float", description="per share per volatility point"),
        Column("theta", "float", description="per share per calendar day"),
        Column("underlying_price", "float", description="underlying close, dollars"),
        Column("rate", "float", description="risk-free rate used, annualised"),
        Column("dividend_yield", "float", description="continuous dividend yield used"),
        Column("modelled", "bool", description="true when modelled, not quoted by a market"),
        Column("source", "str", description="synthetic | files:<file name> | modelled:<source>"),
    ),
)

MARKET_TRUTH = TableSchema(
    name="market_truth",
    key=("session",),
    columns=(
        Column("session", "date", description="NYSE session"),
        Column("regime", "str", description="bull | neutral | bear (hidden state)"),
        Column("market_return", "float", description="log return of the market factor"),
        Column("market_vol", "float", description="annualised volatility of the market factor"),
    ),
)

UNIVERSE = TableSchema(
    name="universe",
    key=("symbol",),
    columns=(
        Column("symbol", "str", description="ticker, e.g. AAPL or BRK.B"),
        Column("name", "str", description="company name"),
        Column("sector", "str", description="GICS sector, for the per-sector position limit"),
        Column("generated", "bool", description="true for synthetic-only tickers"),
    ),
)


def _coerce(series: pd.Series, column: Column) -> pd.Series:
    if column.kind == "date":
        values = pd.to_datetime(series, errors="raise")
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_localize(None)
        return values.dt.normalize().astype("datetime64[ns]")
    if column.kind == "str":
        if series.isna().any() and not column.nullable:
            raise ValueError("missing values")
        return series.astype("string")
    if column.kind == "float":
        return pd.to_numeric(series, errors="raise").astype("float64")
    if column.kind == "int":
        numeric = pd.to_numeric(series, errors="raise")
        if numeric.isna().any():
            raise ValueError("missing values in an integer column")
        if not np.allclose(numeric, np.round(numeric)):
            raise ValueError("non-integer values in an integer column")
        return numeric.round().astype("int64")
    if column.kind == "bool":
        if series.dtype == bool:
            return series
        mapped = series.map({True: True, False: False, "true": True, "false": False})
        if mapped.isna().any():
            raise ValueError("values that are not booleans")
        return mapped.astype(bool)
    raise AssertionError(f"unknown column kind {column.kind}")


def conform(frame: pd.DataFrame, schema: TableSchema, *, origin: str) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns, in order, with its dtypes.

    ``origin`` names where the frame came from (a file path, a source) for the error.
    """
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SchemaError(
            f"{schema.name} from {origin}: missing column(s) {missing}; found {list(frame.columns)}"
        )
    out = {}
    for column in schema.columns:
        try:
            out[column.name] = _coerce(frame[column.name], column)
        except (ValueError, TypeError) as exc:
            raise SchemaError(
                f"{schema.name} from {origin}: column {column.name!r} cannot be read as "
                f"{column.kind}: {exc}"
            ) from exc
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def empty(schema: TableSchema) -> pd.DataFrame:
    return conform(pd.DataFrame({name: [] for name in schema.names}), schema, origin="empty")


def dtype_problems(frame: pd.DataFrame, schema: TableSchema) -> list[str]:
    """Columns whose presence or dtype differ from the schema (for the data-quality check)."""
    problems = []
    expected_kinds = {
        "date": lambda s: pd.api.types.is_datetime64_any_dtype(s),
        "str": lambda s: pd.api.types.is_string_dtype(s),
        "float": lambda s: pd.api.types.is_float_dtype(s),
        "int": lambda s: pd.api.types.is_integer_dtype(s),
        "bool": lambda s: pd.api.types.is_bool_dtype(s),
    }
    for column in schema.columns:
        if column.name not in frame.columns:
            problems.append(f"missing column {column.name!r}")
        elif not expected_kinds[column.kind](frame[column.name]):
            problems.append(
                f"column {column.name!r} has dtype {frame[column.name].dtype}, "
                f"expected {column.kind}"
            )
    extra = [c for c in frame.columns if c not in schema.names]
    if extra:
        problems.append(f"unexpected column(s) {extra}")
    return problems
