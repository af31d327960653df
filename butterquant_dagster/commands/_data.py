"""The stores the commands read, each opened on the configured data root: the lake, the
model registry and the trading resource (ledger and broker), and what a range of the lake
holds."""

from __future__ import annotations

import datetime as dt

from butterquant_dagster.core import settings
from butterquant_dagster.core.storage.lake import Lake


def lake() -> Lake:
    return Lake(settings.data_root())


def registry():
    from butterquant_dagster.core.ml.registry import ModelRegistry

    return ModelRegistry(settings.data_root() / "models")


def trading():
    """The trading resource as the definitions configure it (broker, rules, ledger)."""
    from butterquant_dagster.resources import trading_resource

    return trading_resource()


def lake_summary(first: dt.date, last: dt.date) -> dict[str, object]:
    """Tickers, bars and option quotes the lake holds for [first, last], and where."""
    store = lake()
    with store.connect() as db:
        window = (first.isoformat(), last.isoformat())
        tickers, bars = db.execute(
            "SELECT count(DISTINCT symbol), count(*) FROM daily_bars "
            "WHERE session BETWEEN ?::DATE AND ?::DATE",
            window,
        ).fetchone()
        contracts, modelled = 0, 0
        if "option_chains" in store.tables():  # absent after a bars-only backfill
            contracts, modelled = db.execute(
                "SELECT count(*), count(*) FILTER (WHERE modelled) FROM option_chains "
                "WHERE session BETWEEN ?::DATE AND ?::DATE",
                window,
            ).fetchone()
    warehouse = store.refresh_warehouse()
    return {
        "tickers": tickers,
        "bars": bars,
        "contracts": contracts,
        "modelled_contracts": modelled,
        "lake": str(store.directory),
        "warehouse": str(warehouse),
    }
