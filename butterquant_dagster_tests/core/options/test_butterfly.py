"""Butterfly payoffs, combo prices, economics and the lognormal probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from butterquant_dagster.core.options import butterfly as fly
from butterquant_dagster.core.options.black_scholes import price
from butterquant_dagster.core.options.money import order_fee, per_contract, per_share

SETTINGS = settings(max_examples=200, deadline=None)

centres = st.floats(min_value=5.0, max_value=1000.0)
widths = st.floats(min_value=0.5, max_value=50.0)
offsets = st.floats(min_value=-3.0, max_value=3.0)  # settle price offset, in widths
vols = st.floats(min_value=0.05, max_value=1.5)
times = st.floats(min_value=2.0 / 365.0, max_value=2.0)
rates = st.floats(min_value=0.0, max_value=0.10)
divs = st.floats(min_value=0.0, max_value=0.06)

# Entry fee of a 4-contract combo (1-2-1 or iron fly) on the IBKR schedule: 4 x $0.65.
FEE_4_PER_SHARE = 2.60 / 100.0


# ---------------------------------------------------------------------------- fees
def test_order_fee_schedule():
    assert float(order_fee(4)) == pytest.approx(2.60)
    assert float(order_fee(1)) == pytest.approx(1.00)  # the per-order minimum
    assert float(order_fee(2)) == pytest.approx(1.30)
    assert float(order_fee(8)) == pytest.approx(5.20)
    assert float(order_fee(0)) == 0.0
    np.testing.assert_allclose(order_fee(np.array([0, 1, 4])), [0.0, 1.0, 2.6])


def test_per_share_and_per_contract_use_the_multiplier():
    assert float(per_share(2.60)) == pytest.approx(0.026)
    assert float(per_contract(1.5)) == pytest.approx(150.0)


def test_contracts_per_combo():
    assert fly.CONTRACTS_PER_COMBO == {"call_fly": 4, "put_fly": 4, "iron_fly": 4}


# ---------------------------------------------------------------------------- payoffs
@SETTINGS
@given(centres, widths, offsets)
def test_long_fly_value_is_non_negative_and_bounded_by_the_width(center, width, offset):
    spot = center + offset * width
    value = float(fly.long_fly_value(spot, center, width))
    assert value >= 0.0
    assert value <= width + 1e-12
    if abs(spot - center) >= width:
        assert value == 0.0
    else:
        assert value == pytest.approx(width - abs(spot - center), abs=1e-9 * center)


@SETTINGS
@given(centres, widths)
def test_long_fly_is_worth_the_width_at_the_centre_and_that_is_its_maximum(center, width):
    assert float(fly.long_fly_value(center, center, width)) == pytest.approx(width)
    grid = np.linspace(center - 2 * width, center + 2 * width, 401)
    values = fly.long_fly_value(grid, center, width)
    assert values.max() <= float(fly.long_fly_value(center, center, width)) + 1e-12
    assert grid[np.argmax(values)] == pytest.approx(center, abs=width / 100)


@SETTINGS
@given(centres, widths, st.lists(offsets, min_size=1, max_size=20))
def test_iron_fly_expiry_value_is_the_long_fly_minus_the_width(center, width, offs):
    spots = center + np.asarray(offs) * width
    long_value = fly.long_fly_value(spots, center, width)
    iron = fly.expiry_value(np.full(len(spots), "iron_fly"), spots, center, width)
    np.testing.assert_allclose(iron, long_value - width)
    # An iron fly loses at most the width and never gains at expiry (the credit came first).
    assert np.all(iron <= 1e-12)
    assert np.all(iron >= -width - 1e-12)
    for structure in ("call_fly", "put_fly"):
        held = fly.expiry_value(np.full(len(spots), structure), spots, center, width)
        np.testing.assert_allclose(held, long_value)


def test_expiry_value_by_hand():
    structures = np.array(["call_fly", "put_fly", "iron_fly", "iron_fly", "call_fly"])
    spots = np.array([100.0, 97.0, 100.0, 103.0, 111.0])
    values = fly.expiry_value(structures, spots, 100.0, 5.0)
    np.testing.assert_allclose(values, [5.0, 2.0, 0.0, -3.0, 0.0])


# ---------------------------------------------------------------------------- BS parity
def _three(center, width, t, vol, rate, div, is_call, spot):
    return [
        price(spot, k, t, vol, rate, div, is_call) for k in (center - width, center, center + width)
    ]


@SETTINGS
@given(
    st.floats(min_value=20.0, max_value=500.0),
    st.floats(min_value=0.8, max_value=1.2),
    st.floats(min_value=0.01, max_value=0.15),
    times,
    vols,
    rates,
    divs,
)
def test_put_and_call_flies_with_the_same_strikes_cost_the_same(
    spot, moneyness, width_share, t, vol, rate, div
):
    center = spot * moneyness
    width = spot * width_share
    c_lo, c_mid, c_hi = _three(center, width, t, vol, rate, div, True, spot)
    p_lo, p_mid, p_hi = _three(center, width, t, vol, rate, div, False, spot)
    call_fly = float(c_lo - 2 * c_mid + c_hi)
    put_fly = float(p_lo - 2 * p_mid + p_hi)
    # C - P = S e^{-qT} - K e^{-rT} is linear in K: the 1, -2, 1 combination cancels it.
    assert call_fly == pytest.approx(put_fly, abs=1e-8 * spot)
    assert call_fly >= -1e-8 * spot
    assert call_fly <= width * np.exp(-rate * t) + 1e-8 * spot


@SETTINGS
@given(
    st.floats(min_value=20.0, max_value=500.0),
    st.floats(min_value=0.8, max_value=1.2),
    st.floats(min_value=0.01, max_value=0.15),
    times,
    vols,
    rates,
    divs,
)
def test_iron_fly_credit_is_the_discounted_width_less_the_long_fly(
    spot, moneyness, width_share, t, vol, rate, div
):
    center = spot * moneyness
    width = spot * width_share
    c_lo, c_mid, c_hi = _three(center, width, t, vol, rate, div, True, spot)
    p_lo, p_mid, _ = _three(center, width, t, vol, rate, div, False, spot)
    # Sell the centre put and call, buy the lower put and the upper call.
    credit = float(p_mid + c_mid - p_lo - c_hi)
    long_fly = float(c_lo - 2 * c_mid + c_hi)
    assert credit == pytest.approx(width * np.exp(-rate * t) - long_fly, abs=1e-8 * spot)
    assert credit >= -1e-8 * spot


# ---------------------------------------------------------------------------- combo prices
@st.composite
def _quotes(draw):
    legs = draw(st.integers(min_value=1, max_value=5))
    n = draw(st.integers(min_value=1, max_value=6))
    qty = draw(
        st.lists(st.integers(min_value=-3, max_value=3), min_size=legs * n, max_size=legs * n)
    )
    bid = draw(
        st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=legs * n, max_size=legs * n)
    )
    spread = draw(
        st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=legs * n, max_size=legs * n)
    )
    shape = (legs, n)
    bid_a = np.reshape(bid, shape)
    return np.reshape(qty, shape).astype(float), bid_a, bid_a + np.reshape(spread, shape)


@SETTINGS
@given(_quotes())
def test_natural_debit_is_never_below_the_mid_debit(quotes):
    quantity, bid, ask = quotes
    debit_mid, debit_natural = fly.combo_prices(quantity, bid, ask)
    assert debit_mid.shape == debit_natural.shape == (bid.shape[1],)
    assert np.all(debit_natural >= debit_mid - 1e-9)
    # The gap is exactly half the spread of every contract traded.
    half_spreads = np.sum(np.abs(quantity) * (ask - bid) / 2.0, axis=0)
    np.testing.assert_allclose(debit_natural - debit_mid, half_spreads, atol=1e-9)


def test_combo_prices_by_hand():
    # Call fly 95/100/105: bid/ask 6.10/6.30, 2.90/3.05, 1.00/1.10.
    quantity = np.array([[1.0], [-2.0], [1.0]])
    bid = np.array([[6.10], [2.90], [1.00]])
    ask = np.array([[6.30], [3.05], [1.10]])
    debit_mid, debit_natural = fly.combo_prices(quantity, bid, ask)
    assert float(debit_mid[0]) == pytest.approx(6.20 - 2 * 2.975 + 1.05)
    assert float(debit_natural[0]) == pytest.approx(6.30 - 2 * 2.90 + 1.10)


# ---------------------------------------------------------------------------- economics
@SETTINGS
@given(
    st.floats(min_value=10.0, max_value=1000.0),
    widths,
    st.floats(min_value=0.001, max_value=0.999),
)
def test_debit_fly_economics(center, width, cost_share):
    cost = cost_share * width
    debit_natural = cost - FEE_4_PER_SHARE
    econ = fly.economics(False, np.array([debit_natural]), center, width, 4)
    lower, upper = center - width, center + width
    assert float(econ.cost[0]) == pytest.approx(cost)
    assert float(econ.max_loss[0]) == pytest.approx(cost)
    assert float(econ.max_profit[0]) == pytest.approx(width - cost)
    assert float(econ.breakeven_low[0]) == pytest.approx(lower + cost)
    assert float(econ.breakeven_high[0]) == pytest.approx(upper - cost)
    assert lower < float(econ.breakeven_low[0]) <= center + 1e-9
    assert center - 1e-9 <= float(econ.breakeven_high[0]) < upper
    # At the breakevens the payoff exactly repays the cost.
    for be in (econ.breakeven_low[0], econ.breakeven_high[0]):
        assert float(fly.long_fly_value(be, center, width)) == pytest.approx(
            cost, abs=1e-9 * center
        )


@SETTINGS
@given(
    st.floats(min_value=10.0, max_value=1000.0),
    widths,
    st.floats(min_value=0.001, max_value=0.999),
)
def test_iron_fly_economics(center, width, credit_share):
    net_credit = credit_share * width  # after the entry fee
    debit_natural = -(net_credit + FEE_4_PER_SHARE)
    econ = fly.economics(True, np.array([debit_natural]), center, width, 4)
    assert float(econ.cost[0]) == pytest.approx(-net_credit)
    assert float(econ.max_profit[0]) == pytest.approx(net_credit)
    assert float(econ.max_loss[0]) == pytest.approx(width - net_credit)
    assert float(econ.breakeven_low[0]) == pytest.approx(center - net_credit)
    assert float(econ.breakeven_high[0]) == pytest.approx(center + net_credit)
    assert center - width < float(econ.breakeven_low[0]) < center
    assert center < float(econ.breakeven_high[0]) < center + width
    for be in (econ.breakeven_low[0], econ.breakeven_high[0]):
        held = float(fly.expiry_value("iron_fly", be, center, width))
        assert held - float(econ.cost[0]) == pytest.approx(0.0, abs=1e-9 * center)


def test_economics_by_hand_vectorized():
    # A call fly bought at 1.60 and an iron fly sold for 3.55, both 95/100/105.
    econ = fly.economics(
        np.array([False, True]), np.array([1.60, -3.55]), np.array([100.0, 100.0]), 5.0, 4
    )
    np.testing.assert_allclose(econ.cost, [1.626, -3.524])
    np.testing.assert_allclose(econ.max_loss, [1.626, 1.476])
    np.testing.assert_allclose(econ.max_profit, [3.374, 3.524])
    np.testing.assert_allclose(econ.breakeven_low, [96.626, 96.476])
    np.testing.assert_allclose(econ.breakeven_high, [103.374, 103.524])


# ---------------------------------------------------------------------------- probabilities
@SETTINGS
@given(
    st.floats(min_value=5.0, max_value=1000.0),
    vols,
    times,
    st.lists(st.floats(min_value=0.2, max_value=3.0), min_size=1, max_size=12),
)
def test_prob_between_sums_to_one_over_a_partition(forward, vol, t, cut_shares):
    cuts = np.unique(np.asarray(cut_shares) * forward)
    edges = np.r_[0.0, cuts, np.inf]
    probs = fly.prob_between(edges[:-1], edges[1:], forward, vol, t)
    assert np.all(probs >= 0.0)
    assert float(np.sum(probs)) == pytest.approx(1.0, abs=1e-9)


def _lognormal(rng, forward, vol, t, n=400_000):
    sd = vol * np.sqrt(t)
    return forward * np.exp(-0.5 * sd * sd + sd * rng.standard_normal(n))


MC_CASES = [
    # forward, vol, t, low, high
    (100.0, 0.25, 30 / 365, 96.5, 103.5),
    (100.0, 0.60, 45 / 365, 80.0, 100.0),
    (52.0, 0.15, 10 / 365, 50.0, 60.0),
    (250.0, 0.40, 0.5, 270.0, 400.0),
]


@pytest.mark.parametrize(("forward", "vol", "t", "low", "high"), MC_CASES)
def test_prob_between_matches_monte_carlo(forward, vol, t, low, high):
    rng = np.random.default_rng(20240102)
    spots = _lognormal(rng, forward, vol, t)
    estimate = float(np.mean((spots > low) & (spots < high)))
    standard_error = np.sqrt(max(estimate * (1 - estimate), 1e-4) / len(spots))
    exact = float(fly.prob_between(low, high, forward, vol, t))
    assert exact == pytest.approx(estimate, abs=5 * standard_error)


def test_prob_between_of_an_empty_or_unbounded_interval():
    assert float(fly.prob_between(100.0, 100.0, 100.0, 0.3, 0.1)) == 0.0
    assert float(fly.prob_between(0.0, np.inf, 100.0, 0.3, 0.1)) == pytest.approx(1.0)
    # The median of a lognormal with mean F is F e^{-sd^2/2}.
    sd = 0.3 * np.sqrt(0.1)
    median = 100.0 * np.exp(-0.5 * sd * sd)
    assert float(fly.prob_between(0.0, median, 100.0, 0.3, 0.1)) == pytest.approx(0.5)


FLY_CASES = [
    # forward, vol, t, centre, width
    (100.0, 0.25, 30 / 365, 100.0, 5.0),
    (100.0, 0.25, 30 / 365, 110.0, 5.0),
    (48.0, 0.50, 20 / 365, 45.0, 2.5),
    (300.0, 0.20, 60 / 365, 290.0, 20.0),
]


@pytest.mark.parametrize(("forward", "vol", "t", "center", "width"), FLY_CASES)
def test_expected_long_fly_value_matches_monte_carlo(forward, vol, t, center, width):
    rng = np.random.default_rng(7)
    spots = _lognormal(rng, forward, vol, t)
    payoff = np.maximum(0.0, width - np.abs(spots - center))
    estimate = float(payoff.mean())
    standard_error = max(float(payoff.std()), 1e-3) / np.sqrt(len(spots))
    exact = float(fly.expected_long_fly_value(forward, vol, t, center, width))
    assert 0.0 <= exact <= width
    assert exact == pytest.approx(estimate, abs=5 * standard_error)


def test_expected_long_fly_value_is_vectorized():
    centers = np.array([90.0, 100.0, 110.0])
    values = fly.expected_long_fly_value(100.0, 0.25, 30 / 365, centers, 5.0)
    assert values.shape == (3,)
    # Centred on the forward is worth the most; equally far either side is similar.
    assert values[1] > values[0] and values[1] > values[2]
