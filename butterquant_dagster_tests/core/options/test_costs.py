"""The cost model: expected fills worked by hand, fees per order, and the paper broker
filling through the very same function."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import BUY, SELL, ComboOrder
from butterquant_dagster.core.brokers.paper import PaperBroker
from butterquant_dagster.core.options import butterfly as fly
from butterquant_dagster.core.options import costs
from butterquant_dagster.core.trading.combos import combo_quote, legs_of, limit_price
from butterquant_dagster_tests.core.trading.chains import EXPIRY, NEXT, make_chain


# ---------------------------------------------------------------------- by hand
def test_a_debit_fly_fills_a_quarter_of_the_way_to_natural_rounded_up():
    # Call fly 95/100/105: mid 6.20 - 2 x 2.975 + 1.05 = 1.30, natural 6.30 - 5.80 + 1.10
    # = 1.60. 1.30 + 0.25 x 0.30 = 1.375, up to the cent: 1.38; with the fee of one
    # order of 4 contracts (4 x $0.65 = $2.60, 0.026 per share) it costs 1.406.
    quantity = np.array([[1.0], [-2.0], [1.0]])
    bid = np.array([[6.10], [2.90], [1.00]])
    ask = np.array([[6.30], [3.05], [1.10]])
    mid, natural = fly.combo_prices(quantity, bid, ask)
    fill = costs.expected_debit(mid, natural)
    assert fill[0] == pytest.approx(1.38)
    assert costs.fill_price(BUY, 1.30, 1.00, 1.60) == pytest.approx(1.38)
    econ = fly.economics(False, fill, 100.0, 5.0, fly.CONTRACTS_PER_COMBO["call_fly"])
    assert econ.cost[0] == pytest.approx(1.406)
    assert econ.max_loss[0] == pytest.approx(1.406)
    assert econ.breakeven_low[0] == pytest.approx(96.406)


def test_a_credit_iron_fly_fills_a_quarter_of_the_way_to_natural_toward_a_fill():
    # Iron fly 95/100/105 bought as a combo: +95 put (0.95/1.05), -100 put (2.80/2.95),
    # -100 call (2.90/3.05), +105 call (1.00/1.10). Mid debit 1.00 - 2.875 - 2.975 + 1.05
    # = -3.80 (a 3.80 credit), natural 1.05 - 2.80 - 2.90 + 1.10 = -3.55. -3.80 + 0.25 x
    # 0.25 = -3.7375, up (toward a fill) to -3.73: a 3.73 credit, 3.704 after the fee.
    quantity = np.array([[1.0], [-1.0], [-1.0], [1.0]])
    bid = np.array([[0.95], [2.80], [2.90], [1.00]])
    ask = np.array([[1.05], [2.95], [3.05], [1.10]])
    mid, natural = fly.combo_prices(quantity, bid, ask)
    assert mid[0] == pytest.approx(-3.80) and natural[0] == pytest.approx(-3.55)
    fill = costs.expected_debit(mid, natural)
    assert fill[0] == pytest.approx(-3.73)
    econ = fly.economics(True, fill, 100.0, 5.0, fly.CONTRACTS_PER_COMBO["iron_fly"])
    assert econ.max_profit[0] == pytest.approx(3.704)
    assert econ.max_loss[0] == pytest.approx(5.0 - 3.704)


def test_a_sell_concedes_toward_the_low_side_and_rounds_down():
    # Closing a fly quoted 1.00 / 1.234 (mid) / 1.50: 1.234 - 0.25 x 0.234 = 1.1755 -> 1.17.
    assert costs.fill_price(SELL, 1.234, 1.00, 1.50) == pytest.approx(1.17)
    # Never past natural: a full concession on a quote off the cent stops at the low side.
    assert costs.fill_price(SELL, 1.20, 1.003, 1.30, share=1.0) == pytest.approx(1.01)
    assert costs.fill_price(BUY, 1.495, 1.40, 1.497, share=1.0) == pytest.approx(1.49)


def test_on_the_tick_a_price_is_not_moved_and_arrays_work_elementwise():
    # 1.00 + 0.25 x 0.40 = 1.10 exactly: no rounding up to 1.11 from float noise.
    assert costs.fill_price(BUY, 1.00, 0.60, 1.40) == pytest.approx(1.10)
    got = costs.expected_debit(np.array([1.30, -3.80, 0.50]), np.array([1.60, -3.55, 0.50]))
    np.testing.assert_allclose(got, [1.38, -3.73, 0.50])


def test_the_planner_limit_is_the_expected_fill():
    for args in ((1.234, 1.00, 1.50), (-2.345, -2.50, -2.20), (0.07, -0.10, 0.24)):
        for action in (BUY, SELL):
            assert limit_price(action, *args, costs.FILL_SHARE) == costs.fill_price(action, *args)


def test_fees_are_per_order_with_a_minimum():
    # One combo of 4 contracts: 4 x $0.65 = $2.60, 0.026 per share of one combo.
    assert costs.fee_per_share(4) == pytest.approx(0.026)
    # One contract: the $1 minimum; ten 4-leg flies in one order: 40 x $0.65 = $26.
    assert costs.fee_per_share(1) == pytest.approx(0.01)
    assert costs.fee_per_share(40) * 100 == pytest.approx(26.0)
    assert costs.fee_per_share(0) == 0.0


def test_the_cost_basis_names_the_policy_and_the_fees():
    assert "0.25" in costs.COST_BASIS and "natural" in costs.COST_BASIS
    assert "$0.65/contract" in costs.COST_BASIS and "$1.00 minimum" in costs.COST_BASIS


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="action 'HOLD'"):
        costs.fill_price("HOLD", 1.0, 0.9, 1.1)
    with pytest.raises(ValueError, match=r"share 1\.5"):
        costs.fill_price(BUY, 1.0, 0.9, 1.1, share=1.5)


# ---------------------------------------------------------------------- the paper broker
def _order(limit: float, action: str, ref: str, legs) -> ComboOrder:
    return ComboOrder(
        order_ref=ref,
        session=NEXT,
        symbol="AAA",
        structure="call_fly",
        legs=legs,
        action=action,
        quantity=1,
        limit_price=limit,
        track="ai",
    )


@pytest.mark.parametrize("half_spread", [0.05, 0.13])
def test_the_paper_broker_fills_at_the_expected_fill_and_not_a_tick_below(tmp_path, half_spread):
    chain = make_chain(NEXT, {"AAA": 100.0}, half_spread=half_spread)
    legs = legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0)
    quote = combo_quote(chain, legs)
    clock = [calendar.session_close(NEXT) - dt.timedelta(minutes=15)]
    broker = PaperBroker(tmp_path / "b.duckdb", {NEXT: chain}.get, lambda: clock[0])
    assert broker.slippage == costs.FILL_SHARE
    buy = costs.fill_price(BUY, quote["mid"], quote["low"], quote["high"])
    sell = costs.fill_price(SELL, quote["mid"], quote["low"], quote["high"])
    assert quote["mid"] < buy <= quote["high"] and quote["low"] <= sell < quote["mid"]
    at = broker.place_combo(_order(buy, BUY, "buy-at", legs))
    assert at.status == "filled" and at.avg_fill_price == pytest.approx(buy)
    below = broker.place_combo(_order(round(buy - costs.COMBO_TICK, 2), BUY, "buy-below", legs))
    assert below.status == "submitted"  # a tick short: it works until the close
    assert broker.place_combo(_order(sell, SELL, "sell-at", legs)).status == "filled"
    above = broker.place_combo(_order(round(sell + costs.COMBO_TICK, 2), SELL, "sell-up", legs))
    assert above.status == "submitted"
    clock[0] = calendar.session_close(NEXT)
    ended = {o.order_ref: o for o in broker.orders()}
    assert ended["buy-below"].status == "cancelled" and f"{buy:.2f}" in ended["buy-below"].reason
    assert ended["sell-up"].status == "cancelled" and f"{sell:.2f}" in ended["sell-up"].reason
    # Its commission is the cost model's fee of one order of 4 contracts.
    fills = broker.executions(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert [f.commission for f in fills] == pytest.approx([costs.fee_per_share(4) * 100] * 2)


def test_candidates_expected_fill_is_what_the_paper_broker_fills_at(tmp_path):
    """A candidate's ``debit_fill`` from a chain is the limit the broker fills against the
    same chain: the label's price and the order's price are one number."""
    from butterquant_dagster.core.scan.candidates import build_candidates

    chain = make_chain(NEXT, {"AAA": 100.0}, half_spread=0.07)
    candidates, _ = build_candidates(chain, NEXT)
    when = calendar.session_close(NEXT) - dt.timedelta(minutes=15)
    broker = PaperBroker(tmp_path / "b.duckdb", {NEXT: chain}.get, lambda: when)
    sample = candidates.sort_values(["structure", "center", "width"]).head(12)
    assert len(sample) == 12
    for i, row in enumerate(sample.itertuples(index=False)):
        legs = legs_of(row.symbol, row.structure, row.expiry, row.lower, row.center, row.upper)
        placed = broker.place_combo(_order(float(row.debit_fill), BUY, f"c{i}", legs))
        assert placed.status == "filled", (row.structure, row.center, placed.reason)
        missed = broker.place_combo(_order(round(row.debit_fill - 0.01, 2), BUY, f"m{i}", legs))
        assert missed.status == "submitted", (row.structure, row.center)  # a cent short
