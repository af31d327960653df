"""From a butterfly (structure, expiry, strikes) to the listed legs and prices of its combo.

The scan, the planner, the paper broker and the ledger all need the legs of a position and
its price from a chain; this is the one place that knows how.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from butterquant_dagster.core.brokers.base import BUY, SELL, ComboLeg
from butterquant_dagster.core.options.butterfly import STRUCTURES
from butterquant_dagster.core.options.costs import COMBO_TICK as COMBO_TICK  # re-exported
from butterquant_dagster.core.options.costs import fill_price
from butterquant_dagster.core.trading.vocabulary import Structure


class MissingQuote(LookupError):
    """A leg the chain does not quote: the combo cannot be priced this session."""


def legs_of(symbol: str, structure: str, expiry, lower: float, center: float, upper: float):
    """The listed legs of one combo as bought (a BUY of the combo opens the position)."""
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; expected one of {sorted(STRUCTURES)}")
    strikes = {"lower": float(lower), "center": float(center), "upper": float(upper)}
    expiry = pd.Timestamp(expiry).date()
    legs = []
    for leg in STRUCTURES[structure]:
        legs.append(
            ComboLeg(
                symbol=symbol,
                expiry=expiry,
                strike=strikes[leg.strike],
                right=leg.right,
                action=BUY if leg.quantity > 0 else SELL,
                ratio=abs(leg.quantity),
            )
        )
    return tuple(legs)


def structure_of(legs: tuple[ComboLeg, ...]) -> str:
    """The structure a set of legs forms (for executions the ledger did not plan)."""
    signature = sorted((leg.right, leg.signed_ratio) for leg in legs)
    for name, template in STRUCTURES.items():
        if sorted((leg.right, leg.quantity) for leg in template) == signature:
            return Structure(name)
    return Structure.UNKNOWN


def quote_legs(chain: pd.DataFrame, legs: tuple[ComboLeg, ...]) -> pd.DataFrame:
    """The chain rows of ``legs``, in leg order; raises MissingQuote naming a missing leg."""
    by_symbol = _symbol_rows(chain)
    rows = []
    for leg in legs:
        candidates = by_symbol.get(leg.symbol)
        found = None
        if candidates is not None:
            sub = chain.iloc[candidates]
            match = (
                (sub["expiry"].to_numpy() == np.datetime64(leg.expiry, "ns"))
                & (np.abs(sub["strike"].to_numpy(float) - leg.strike) < 1e-6)
                & (sub["right"].to_numpy().astype(str) == leg.right)
            )
            hits = candidates[match]
            found = int(hits[0]) if len(hits) else None
        if found is None:
            raise MissingQuote(f"no quote for {leg.contract_key} in the chain")
        rows.append(found)
    return chain.iloc[rows]


def _symbol_rows(chain: pd.DataFrame) -> dict:
    """Row positions per symbol, computed once per chain frame (planning quotes many legs)."""
    cached = chain.attrs.get("_symbol_rows")
    if cached is not None and cached[0] == len(chain):
        return cached[1]
    index = chain.groupby("symbol", sort=False).indices if len(chain) else {}
    chain.attrs["_symbol_rows"] = (len(chain), index)
    return index


def combo_quote(chain: pd.DataFrame, legs: tuple[ComboLeg, ...]) -> dict:
    """Mid and natural bounds of one combo per share, as IB quotes a BUY of it.

    ``low`` is the best a buyer could hope for (buy legs at the bid, sell at the ask),
    ``high`` the natural price (buy at the ask, sell at the bid); a seller gets ``low`` at
    worst. Also the centre strike's implied vol, for the volatility stop.
    """
    rows = quote_legs(chain, legs)
    quantity = np.array([leg.signed_ratio for leg in legs], dtype=float)
    bid, ask = rows["bid"].to_numpy(float), rows["ask"].to_numpy(float)
    mid = float(np.sum(quantity * (bid + ask) / 2.0))
    low = float(np.sum(np.where(quantity > 0, quantity * bid, quantity * ask)))
    high = float(np.sum(np.where(quantity > 0, quantity * ask, quantity * bid)))
    center = sorted({leg.strike for leg in legs})[len({leg.strike for leg in legs}) // 2]
    at_center = rows.loc[rows["strike"].astype(float).round(4) == round(center, 4)]
    return {
        "mid": mid,
        "low": low,
        "high": high,
        "iv_center": float(at_center["implied_vol"].mean()),
        "underlying": float(rows["underlying_price"].iloc[0]),
    }


def limit_price(action: str, mid: float, low: float, high: float, concession: float) -> float:
    """The limit of a combo order: the price the cost model expects it to fill at
    (``costs.fill_price``: the mid, conceding a share of the way to natural, on the tick,
    rounded toward a fill and never past natural), so what is planned, what the paper broker
    fills and what the scan and the labels assume are one price."""
    return fill_price(action, mid, low, high, concession)


def legs_to_json(legs: tuple[ComboLeg, ...]) -> str:
    return json.dumps(
        [
            {
                "expiry": leg.expiry.isoformat(),
                "strike": leg.strike,
                "right": leg.right,
                "action": leg.action,
                "ratio": leg.ratio,
            }
            for leg in legs
        ]
    )


def legs_from_json(symbol: str, text: str) -> tuple[ComboLeg, ...]:
    return tuple(
        ComboLeg(
            symbol=symbol,
            expiry=dt.date.fromisoformat(leg["expiry"]),
            strike=float(leg["strike"]),
            right=leg["right"],
            action=leg["action"],
            ratio=int(leg["ratio"]),
        )
        for leg in json.loads(text)
    )
