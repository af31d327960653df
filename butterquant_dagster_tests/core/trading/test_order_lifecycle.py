"""Orders with a lifecycle: the price ladder, exits that get out, one position per ticker.

The ladder is checked on its own (where each rung sits), then through the real paper
broker and ledger (two DuckDB files): entries start at the mid and fill at the cost model's
price, a market that moved away is not chased, a retried exit goes first, and a ticker
whose position is being closed is never entered again in the same session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb
import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, SELL, BrokerOrder, ComboOrder
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.options import costs
from butterquant_dagster.core.trading.combos import combo_quote, legs_from_json, legs_of
from butterquant_dagster.core.trading.execution import execute_session, order_outcomes
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster.core.trading.order_policy import (
    OrderPolicy,
    is_urgent,
    ladder,
    next_rung,
)
from butterquant_dagster.core.trading.portfolio import plan_session
from butterquant_dagster.core.trading.rules import PortfolioRules, RiskLimits
from butterquant_dagster_tests.core.trading.chains import (
    EXPIRY,
    NEXT,
    SESSION,
    make_chain,
    make_rankings,
)

DECISION_TIME = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
RULES = PortfolioRules()


# ------------------------------------------------------------------------------ the ladder
def test_a_buy_starts_at_the_mid_and_ends_at_the_cost_models_fill():
    rungs = ladder(BUY, 1.00, 0.80, 1.40, costs.FILL_SHARE, 3)
    assert rungs[0] == 1.00
    assert rungs[-1] == costs.fill_price(BUY, 1.00, 0.80, 1.40)  # 1.10
    assert rungs == sorted(rungs) and len(set(rungs)) == len(rungs)
    assert all(abs(r * 100 - round(r * 100)) < 1e-9 for r in rungs), "every rung on the tick"


def test_a_sell_walks_down_and_an_urgent_one_reaches_natural():
    patient = ladder(SELL, 1.00, 0.80, 1.40, costs.FILL_SHARE, 3)
    urgent = ladder(SELL, 1.00, 0.80, 1.40, 1.0, 3)
    assert patient[0] == urgent[0] == 1.00
    assert patient == sorted(patient, reverse=True) and patient[-1] == 0.95
    assert urgent[-1] == 0.80, "the last rung of an urgent exit is the natural bid"


def test_an_entry_is_never_priced_above_its_planned_limit():
    rungs = ladder(BUY, 1.00, 0.80, 1.40, costs.FILL_SHARE, 3, cap=1.03)
    assert max(rungs) == 1.03 and rungs[-1] == 1.03
    moved_away = ladder(BUY, 1.50, 1.30, 1.90, costs.FILL_SHARE, 3, cap=1.03)
    assert moved_away == [1.03], "a market that moved away is not chased"


def test_no_rung_turns_a_debit_into_a_credit_or_back():
    # closing a nearly worthless long fly: its natural bid is below zero
    sell = ladder(SELL, 0.03, -0.10, 0.16, 1.0, 3)
    assert sell[0] == 0.03 and min(sell) == costs.COMBO_TICK
    # buying an iron fly for a credit whose natural price is a debit
    buy = ladder(BUY, -0.04, -0.20, 0.12, 1.0, 3)
    assert buy[0] == -0.04 and max(buy) == -costs.COMBO_TICK


def test_next_rung_moves_one_step_and_stops_on_the_last():
    rungs = [1.00, 1.04, 1.07, 1.10]
    assert next_rung(rungs, BUY, 1.00) == 1.04
    assert next_rung(rungs, BUY, 1.05) == 1.07  # a limit between rungs resumes upward
    assert next_rung(rungs, BUY, 1.10) is None
    assert next_rung([1.00, 0.97, 0.95], SELL, 0.97) == 0.95


def test_which_exits_are_urgent():
    assert is_urgent("close", "stop_loss: P/L -1.00/share against max loss 2.00")
    assert is_urgent("close", "time_stop: 5 days to expiry")
    assert is_urgent("close", "retry: the take_profit close of 2026-03-02 ended cancelled")
    assert not is_urgent("close", "take_profit: P/L +1.00/share")
    assert not is_urgent("open", "stop_loss")


@pytest.mark.parametrize(
    "policy",
    [{"steps": -1}, {"wait_seconds": -1.0}, {"exit_max_slippage": 1.5}],
)
def test_a_policy_that_makes_no_sense_is_refused(policy):
    with pytest.raises(ValueError):
        OrderPolicy(**policy)


# --------------------------------------------------------------- through the paper broker
SPOTS = {"AAA": 100.0, "BBB": 100.0}


def desk(tmp_path, next_chain_scale: float = 1.0):
    """A plan on SESSION's chain, executed on NEXT against quotes ``next_chain_scale``
    times SESSION's (1.0: the market did not move)."""
    chain = make_chain(SESSION, SPOTS)
    later = chain.assign(session=pd.Timestamp(NEXT))
    for side in ("bid", "ask", "mid"):
        later[side] = later[side] * next_chain_scale
    chains = {SESSION: chain, NEXT: later}
    picks = [
        {"ticker": t, "structure": "call_fly", "lower": 95.0, "center": 100.0, "upper": 105.0}
        for t in SPOTS
    ]
    rankings = make_rankings(SESSION, chain, picks)
    ledger = Ledger(tmp_path / "ledger.duckdb")
    clock = {"now": DECISION_TIME}
    broker = PaperBroker(tmp_path / "broker.duckdb", chains.get, lambda: clock["now"])
    rules = PortfolioRules(ai_track_slots=1, max_positions=2, allocation=1000.0)
    targets, _, _ = plan_session(
        NEXT, ledger.positions_at_start(NEXT), chain, rankings, rankings, {}, rules
    )
    fields = ["ledger", "broker", "targets", "clock", "chains", "path"]
    return dataclasses.make_dataclass("Desk", fields)(
        ledger, broker, targets, clock, chains, tmp_path
    )


def execute(d, targets=None, policy=None):
    return execute_session(
        NEXT,
        d.targets if targets is None else targets,
        d.ledger,
        d.broker,
        RiskLimits(),
        DECISION_TIME,
        policy=policy or OrderPolicy(),
    )


def test_entries_start_at_the_mid_climb_the_ladder_and_fill_at_the_expected_price(tmp_path):
    d = desk(tmp_path)
    report = execute(d)
    assert len(report.sent) == 2 and not report.rejected
    assert report.repriced == dict.fromkeys(report.sent, 3)
    for ref in report.sent:
        target = d.targets.set_index("order_ref").loc[ref]
        quote = combo_quote(d.chains[NEXT], legs_from_json(target["ticker"], target["legs"]))
        expected = costs.fill_price(BUY, quote["mid"], quote["low"], quote["high"])
        order = d.ledger.order(ref)
        assert order["status"] == "filled"
        assert order["avg_fill_price"] == pytest.approx(expected)
        assert order["limit_price"] == pytest.approx(expected)
        with duckdb.connect(str(d.ledger.path), read_only=True) as db:
            trail = [
                r[0]
                for r in db.execute(
                    "SELECT limit_price FROM order_limits WHERE order_ref = ? "
                    "ORDER BY recorded_at, limit_price",
                    [ref],
                ).fetchall()
            ]
        assert trail == ladder(BUY, quote["mid"], quote["low"], quote["high"], 0.25, 3)
        assert trail[0] == costs.fill_price(BUY, quote["mid"], quote["low"], quote["high"], 0)
    assert order_outcomes(d.ledger.orders(NEXT))["rate"] == {"open": 1.0}


def test_an_entry_whose_market_moved_away_works_then_expires_at_the_close(tmp_path):
    d = desk(tmp_path, next_chain_scale=1.3)
    report = execute(d)
    assert len(report.sent) == 2
    for ref in report.sent:
        planned = d.targets.set_index("order_ref").loc[ref, "limit_price"]
        order = d.ledger.order(ref)
        assert order["status"] == "submitted", "still working before the close"
        assert order["limit_price"] == pytest.approx(planned), "it stops at the planned limit"
    d.clock["now"] = calendar.session_close(NEXT)
    ended = {o.order_ref: o for o in d.broker.orders()}
    assert all(
        ended[ref].status == "cancelled" and "fill threshold" in ended[ref].reason
        for ref in report.sent
    )
    assert not d.broker.executions(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


def test_a_rerun_resumes_the_ladder_where_the_broker_holds_the_limit(tmp_path):
    d = desk(tmp_path)
    first = execute(d, policy=OrderPolicy(steps=3, wait_seconds=0))
    again = execute(d)
    assert not again.sent and not again.repriced, "filled orders are not worked again"
    assert sum(first.repriced.values()) == 6


def test_a_combo_without_a_limit_is_refused_never_sent_at_market(tmp_path):
    d = desk(tmp_path)
    target = d.targets.iloc[[0]].assign(limit_price=float("nan"))
    report = execute(d, targets=target)
    (ref,) = target["order_ref"]
    reason = report.blocked.get(ref) or report.rejected.get(ref) or ""
    assert "nan" in reason and ref not in report.sent, "refused before the broker"
    assert not d.broker.orders()
    at_market = ComboOrder(
        order_ref="x1",
        session=NEXT,
        symbol="AAA",
        structure="call_fly",
        legs=legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0),
        action=BUY,
        quantity=1,
        limit_price=float("nan"),
        track="ai",
    )
    refused = d.broker.place_combo(at_market)
    assert refused.status == "rejected" and "limit orders only" in refused.reason


# ---------------------------------------------------------- exits and one position per ticker
def held_position(ticker: str = "AAA", entry_price: float = 50.0) -> pd.DataFrame:
    """A call fly held from an earlier session; ``entry_price`` 50 puts it deep in a stop."""
    return pd.DataFrame(
        [
            {
                "position_id": "p-" + ticker,
                "ticker": ticker,
                "sector": "Tech",
                "structure": "call_fly",
                "track": "ai",
                "expiry": pd.Timestamp(EXPIRY),
                "lower": 95.0,
                "center": 100.0,
                "upper": 105.0,
                "width": 5.0,
                "quantity": 2,
                "entry_session": pd.Timestamp(SESSION),
                "entry_price": entry_price,
                "max_profit": 3.0,
                "max_loss": entry_price,
                "risk_level": "MEDIUM",
                "iv_center_entry": 0.30,
                "model_version": "v1",
                "ml_success_prob": 0.5,
                "ghost": False,
            }
        ]
    )


def test_a_ticker_being_closed_is_not_entered_again_the_same_session():
    chain = make_chain(SESSION, {"AAA": 100.0, "BBB": 100.0})
    picks = [
        {"ticker": t, "structure": "call_fly", "lower": 95.0, "center": 100.0, "upper": 105.0}
        for t in ("AAA", "BBB")
    ]
    rankings = make_rankings(SESSION, chain, picks)
    rules = PortfolioRules(ai_track_slots=1, max_positions=2)
    targets, _, _ = plan_session(NEXT, held_position("AAA"), chain, rankings, rankings, {}, rules)
    closes = targets.loc[targets["intent"] == "close"]
    opens = targets.loc[targets["intent"] == "open"]
    assert closes["ticker"].tolist() == ["AAA"] and closes["reason"].iloc[0].startswith("stop")
    assert "AAA" not in set(opens["ticker"]), "AAA's close may not fill: no second AAA fly"
    assert opens["ticker"].tolist() == ["BBB"], "the freed slot still goes to another ticker"


def test_an_exit_that_did_not_fill_is_retried_first_and_urgently_next_session():
    chain = make_chain(SESSION, {"AAA": 100.0})
    # no exit rule fires on today's marks (the fly is worth about what was paid) ...
    quote = combo_quote(chain, legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0))
    held = held_position("AAA", entry_price=round(quote["mid"], 2)).assign(max_loss=2.0)
    nothing = make_rankings(
        SESSION, chain, [{"ticker": "AAA", "lower": 95.0, "center": 100.0, "upper": 105.0}]
    ).iloc[0:0]
    quiet, _, _ = plan_session(NEXT, held, chain, nothing, nothing, {}, RULES)
    assert quiet.empty
    # ... but yesterday's stop-loss close ended unfilled: it goes again, first, urgent
    unfilled = pd.DataFrame(
        [{"position_id": "p-AAA", "session": SESSION, "status": "cancelled", "rule": "stop_loss"}]
    )
    targets, _, _ = plan_session(NEXT, held, chain, nothing, nothing, {}, RULES, unfilled)
    (retry,) = targets.itertuples(index=False)
    assert retry.intent == "close" and retry.action == SELL and retry.quantity == 2
    assert retry.reason.startswith("retry: the stop_loss close of 2026-03-02 ended cancelled")
    assert is_urgent(retry.intent, retry.reason)


def test_the_ledger_lists_closes_that_ended_unfilled_until_one_fills(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    chain = make_chain(SESSION, {"AAA": 100.0})
    legs = legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0)
    rankings = make_rankings(SESSION, chain, [{"ticker": "AAA", "lower": 95.0, "center": 100.0,
                                               "upper": 105.0}])  # fmt: skip
    on_session = calendar.session_close(SESSION) - dt.timedelta(minutes=15)
    broker = PaperBroker(tmp_path / "b.duckdb", {SESSION: chain}.get, lambda: on_session)
    opened, _, _ = plan_session(
        SESSION, ledger.positions_at_start(SESSION), chain, rankings, rankings, {}, RULES
    )
    execute_session(SESSION, opened.iloc[[0]], ledger, broker, RiskLimits(), on_session)
    (position_id,) = ledger.open_positions()["position_id"]
    close = opened.iloc[0].to_dict() | {
        "session": NEXT,
        "order_ref": "close-1",
        "intent": "close",
        "action": SELL,
        "position_id": position_id,
        "reason": "stop_loss: P/L -1.00/share",
    }
    ledger.record_intent(close, "planned")
    ledger.record_broker_order(
        BrokerOrder("close-1", "P9", "AAA", SELL, close["quantity"], 0.5, "cancelled", legs=legs)
    )
    later = calendar.next_session(NEXT)
    (row,) = ledger.unfilled_exits(later).itertuples(index=False)
    assert (row.position_id, row.status, row.rule) == (position_id, "cancelled", "stop_loss")
    assert ledger.unfilled_exits(NEXT).empty, "a close of the session itself is not a retry"


def test_the_daily_report_names_each_exit_that_did_not_fill_and_the_fill_rates():
    from butterquant_dagster.core.monitoring.report_inputs import execution_notes

    orders = pd.DataFrame(
        [
            {"intent": "close", "status": "filled", "ticker": "AAA", "structure": "call_fly",
             "reason": "take_profit: P/L +1.00/share"},
            {"intent": "close", "status": "cancelled", "ticker": "AEP", "structure": "put_fly",
             "reason": "stop_loss: P/L -1.20/share against max loss 2.00"},
            {"intent": "open", "status": "filled", "ticker": "BBB", "structure": "call_fly",
             "reason": "baseline track"},
            {"intent": "open", "status": "blocked", "ticker": "CCC", "structure": "call_fly",
             "reason": "baseline track"},
        ]
    )  # fmt: skip
    notes = execution_notes(orders)
    assert "Exits: 50% of the orders sent filled." in notes
    assert "Entries: 100% of the orders sent filled." in notes, "a blocked order never went out"
    assert any(n.startswith("Exit not filled: AEP put_fly (cancelled; stop_loss)") for n in notes)
