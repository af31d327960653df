"""A small account with exact, hand-checkable money: three sessions of fills, closes and
marks through the real ledger and ``marking.close_session``, for the account tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from butterquant_dagster.core.brokers.base import BUY, SELL, Execution
from butterquant_dagster.core.trading.combos import combo_quote, legs_of, legs_to_json
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.marking import close_session
from butterquant_dagster_tests.core.trading.chains import EXPIRY, make_chain

D1, D2, D3, D4 = dt.date(2026, 3, 3), dt.date(2026, 3, 4), dt.date(2026, 3, 5), dt.date(2026, 3, 6)
INITIAL = 100_000.0
FEE = 2.60  # per fill, as the paper broker charges 4 contracts x 0.65


def legs(ticker: str):
    return legs_of(ticker, "call_fly", EXPIRY, 95.0, 100.0, 105.0)


def intent(ref: str, ticker: str, session: dt.date, kind: str, quantity: int, position=""):
    return {
        "order_ref": ref,
        "session": session,
        "ticker": ticker,
        "sector": "Tech",
        "structure": "call_fly",
        "track": "ai" if ticker == "AAA" else "baseline",
        "intent": kind,
        "action": BUY if kind == "open" else SELL,
        "quantity": quantity,
        "limit_price": 2.0,
        "expiry": EXPIRY,
        "lower": 95.0,
        "center": 100.0,
        "upper": 105.0,
        "width": 5.0,
        "legs": legs_to_json(legs(ticker)),
        "position_id": position,
        "reason": "take_profit: test" if kind == "close" else "test entry",
        "model_version": "v1",
        "ml_success_prob": 0.4,
        "max_profit": 3.0,
        "max_loss": 2.0,
        "risk_level": "MEDIUM",
        "iv_center": 0.3,
    }


def fill(ledger: Ledger, ref, ticker, session, kind, quantity, price, position="", fee=FEE):
    ledger.record_intent(intent(ref, ticker, session, kind, quantity, position), "planned")
    when = dt.datetime.combine(session, dt.time(20, 0), dt.UTC)
    action = BUY if kind == "open" else SELL
    execution = Execution(
        f"x-{ref}", ref, f"B-{ref}", ticker, action, quantity, price, fee, when, legs(ticker)
    )
    assert ledger.record_execution(execution, session)


def chain(session: dt.date, spot: float):
    return make_chain(session, {"AAA": spot, "BBB": spot})


def mark(ledger: Ledger, session: dt.date, spot: float):
    return close_session(ledger, session, chain(session, spot), lambda t, d: spot)


def mid(session: dt.date, spot: float, ticker: str) -> float:
    return combo_quote(chain(session, spot), legs(ticker))["mid"]


SPOTS = {D1: 100.0, D2: 101.0, D3: 97.0}


@dataclass
class Account:
    ledger: Ledger
    realized: float  # AAA's round trip
    cost: dict  # net cash flow of each position still open at D3, fees included


def build(path: Path, initial: float = INITIAL) -> Account:
    """D1: open 3 AAA at 1.50 and 2 BBB at 2.00; D2: close the 3 AAA at 2.10;
    D3: open 1 more BBB-like position (CCC on BBB's legs) at 1.00. Marked at each close."""
    ledger = Ledger(path, initial_capital=initial)
    fill(ledger, "open-a", "AAA", D1, "open", 3, 1.50)
    fill(ledger, "open-b", "BBB", D1, "open", 2, 2.00)
    mark(ledger, D1, SPOTS[D1])
    fill(ledger, "close-a", "AAA", D2, "close", 3, 2.10, position="open-a")
    mark(ledger, D2, SPOTS[D2])
    fill(ledger, "open-c", "BBB", D3, "open", 1, 1.00, fee=1.30)
    mark(ledger, D3, SPOTS[D3])
    realized = 3 * 210 - 3 * 150 - 2 * FEE
    cost = {"open-b": -(2 * 200 + FEE), "open-c": -(100 + 1.30)}
    return Account(ledger, realized, cost)
