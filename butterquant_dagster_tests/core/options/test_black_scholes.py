"""Black-Scholes-Merton prices, greeks and implied volatility."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from butterquant_dagster.core.options import black_scholes as bs

spots = st.floats(min_value=5.0, max_value=1000.0)
moneyness = st.floats(min_value=0.6, max_value=1.6)  # strike / spot
times = st.floats(min_value=1.0 / 365.0, max_value=3.0)
vols = st.floats(min_value=0.05, max_value=1.5)
rates = st.floats(min_value=0.0, max_value=0.10)
divs = st.floats(min_value=0.0, max_value=0.06)
rights = st.booleans()

SETTINGS = settings(max_examples=300, deadline=None)


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _reference_price(spot, strike, t, vol, rate, div, is_call) -> float:
    """Textbook closed form with math.erfc, independent of the module's code."""
    d1 = (math.log(spot / strike) + (rate - div + 0.5 * vol**2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    if is_call:
        return spot * math.exp(-div * t) * _normal_cdf(d1) - strike * math.exp(
            -rate * t
        ) * _normal_cdf(d2)
    return strike * math.exp(-rate * t) * _normal_cdf(-d2) - spot * math.exp(
        -div * t
    ) * _normal_cdf(-d1)


def _p(*args, **kwargs) -> float:
    return float(bs.price(*args, **kwargs))


# ---------------------------------------------------------------------- known values


def test_textbook_values():
    # Hull's classic example: S=K=100, T=1, r=5 %, sigma=20 %.
    call = _p(100.0, 100.0, 1.0, 0.2, 0.05, 0.0, True)
    put = _p(100.0, 100.0, 1.0, 0.2, 0.05, 0.0, False)
    assert call == pytest.approx(10.4506, abs=1e-4)
    assert put == pytest.approx(5.5735, abs=1e-4)
    # Hull Example 15.6: S=42, K=40, T=0.5, r=10 %, sigma=20 %: c=4.76, p=0.81.
    assert _p(42.0, 40.0, 0.5, 0.2, 0.10, 0.0, True) == pytest.approx(4.7594, abs=1e-4)
    assert _p(42.0, 40.0, 0.5, 0.2, 0.10, 0.0, False) == pytest.approx(0.8086, abs=1e-4)


def test_textbook_greeks():
    g = bs.greeks(100.0, 100.0, 1.0, 0.2, 0.05, 0.0, True)
    # N(d1) with d1 = 0.35, and pdf(0.35) = 0.37524
    assert float(g["delta"]) == pytest.approx(0.636831, abs=1e-6)
    assert float(g["gamma"]) == pytest.approx(0.3752403 / (100.0 * 0.2), abs=1e-6)
    assert float(g["vega"]) == pytest.approx(0.3752403 * 100.0 / 100.0, abs=1e-6)
    # Annual call theta -6.414 -> per calendar day
    assert float(g["theta"]) == pytest.approx(-6.414028 / 365.0, abs=1e-6)


def test_matches_independent_reference_on_a_grid():
    for spot in (20.0, 100.0, 450.0):
        for m in (0.7, 0.95, 1.0, 1.1, 1.4):
            for t in (7 / 365, 0.25, 2.0):
                for is_call in (True, False):
                    got = _p(spot, spot * m, t, 0.3, 0.03, 0.01, is_call)
                    ref = _reference_price(spot, spot * m, t, 0.3, 0.03, 0.01, is_call)
                    assert got == pytest.approx(ref, rel=1e-10, abs=1e-10 * spot)


def test_expired_options_are_worth_intrinsic_value():
    calls = bs.price([90.0, 100.0, 110.0], 100.0, 0.0, 0.3, 0.05, 0.0, True)
    puts = bs.price([90.0, 100.0, 110.0], 100.0, 0.0, 0.3, 0.05, 0.0, False)
    np.testing.assert_allclose(calls, [0.0, 0.0, 10.0])
    np.testing.assert_allclose(puts, [10.0, 0.0, 0.0])


# ---------------------------------------------------------------------- parity and bounds


@SETTINGS
@given(spots, moneyness, times, vols, rates, divs)
def test_put_call_parity(spot, m, t, vol, rate, div):
    strike = spot * m
    call = _p(spot, strike, t, vol, rate, div, True)
    put = _p(spot, strike, t, vol, rate, div, False)
    forward_value = spot * math.exp(-div * t) - strike * math.exp(-rate * t)
    assert call - put == pytest.approx(forward_value, abs=1e-9 * (spot + strike))


@SETTINGS
@given(spots, moneyness, times, vols, rates, divs)
def test_prices_within_no_arbitrage_bounds(spot, m, t, vol, rate, div):
    strike = spot * m
    disc_spot = spot * math.exp(-div * t)
    disc_strike = strike * math.exp(-rate * t)
    tol = 1e-9 * spot
    call = _p(spot, strike, t, vol, rate, div, True)
    put = _p(spot, strike, t, vol, rate, div, False)
    assert max(disc_spot - disc_strike, 0.0) - tol <= call <= disc_spot + tol
    assert max(disc_strike - disc_spot, 0.0) - tol <= put <= disc_strike + tol


@SETTINGS
@given(spots, moneyness, moneyness, times, vols, rates, divs)
def test_monotone_in_strike(spot, m1, m2, t, vol, rate, div):
    assume(abs(m1 - m2) > 1e-6)
    lo, hi = sorted((spot * m1, spot * m2))
    tol = 1e-10 * spot
    call_lo, call_hi = (_p(spot, k, t, vol, rate, div, True) for k in (lo, hi))
    put_lo, put_hi = (_p(spot, k, t, vol, rate, div, False) for k in (lo, hi))
    assert call_hi <= call_lo + tol
    assert put_hi >= put_lo - tol
    # ... and the slopes are bounded by the discount factor (no arbitrage).
    assert call_lo - call_hi <= (hi - lo) * math.exp(-rate * t) + tol
    assert put_hi - put_lo <= (hi - lo) * math.exp(-rate * t) + tol


@SETTINGS
@given(spots, moneyness, times, vols, vols, rates, divs, rights)
def test_monotone_in_vol(spot, m, t, v1, v2, rate, div, is_call):
    assume(abs(v1 - v2) > 1e-6)
    lo, hi = sorted((v1, v2))
    strike = spot * m
    assert (
        _p(spot, strike, t, hi, rate, div, is_call)
        >= _p(spot, strike, t, lo, rate, div, is_call) - 1e-10 * spot
    )


def test_strictly_ordered_on_a_strike_grid():
    strikes = np.linspace(70.0, 130.0, 25)
    calls = bs.price(100.0, strikes, 0.25, 0.25, 0.03, 0.01, True)
    puts = bs.price(100.0, strikes, 0.25, 0.25, 0.03, 0.01, False)
    assert np.all(np.diff(calls) < 0)
    assert np.all(np.diff(puts) > 0)
    # Convex in strike.
    assert np.all(np.diff(calls, 2) > 0)
    assert np.all(np.diff(puts, 2) > 0)
    vol_grid = np.linspace(0.05, 1.0, 20)
    assert np.all(np.diff(bs.price(100.0, 105.0, 0.25, vol_grid, 0.03, 0.01, True)) > 0)


# ---------------------------------------------------------------------- greeks


@SETTINGS
@given(spots, moneyness, st.floats(min_value=7.0 / 365.0, max_value=3.0), vols, rates, divs, rights)
def test_greeks_match_finite_differences(spot, m, t, vol, rate, div, is_call):
    strike = spot * m

    def f(s=spot, tt=t, v=vol):
        return _p(s, strike, tt, v, rate, div, is_call)

    g = {k: float(v) for k, v in bs.greeks(spot, strike, t, vol, rate, div, is_call).items()}

    # Steps relative to the natural scale of each variable.
    scale = spot * vol * math.sqrt(t)  # one standard deviation of the spot, roughly
    h = 1e-4 * scale
    delta_fd = (f(s=spot + h) - f(s=spot - h)) / (2 * h)
    assert g["delta"] == pytest.approx(delta_fd, abs=1e-6)

    h = 1e-2 * scale
    gamma_fd = (f(s=spot + h) - 2 * f() + f(s=spot - h)) / (h * h)
    assert g["gamma"] == pytest.approx(gamma_fd, rel=1e-3, abs=1e-6 / scale)

    hv = 1e-4 * vol
    vega_fd = (f(v=vol + hv) - f(v=vol - hv)) / (2 * hv) / 100.0
    assert g["vega"] == pytest.approx(vega_fd, rel=1e-5, abs=1e-8 * spot)

    ht = 1e-4 * t
    theta_fd = -(f(tt=t + ht) - f(tt=t - ht)) / (2 * ht) / 365.0
    assert g["theta"] == pytest.approx(theta_fd, rel=1e-4, abs=1e-8 * spot)

    # Signs and ranges that hold for every European option.
    assert g["gamma"] >= 0 and g["vega"] >= 0  # zero only by underflow far from the money
    bound = math.exp(-div * t) * (1.0 + 1e-12)  # the dividend discount, up to rounding
    if is_call:
        assert 0.0 <= g["delta"] <= bound
    else:
        assert -bound <= g["delta"] <= 0.0


def test_call_and_put_deltas_differ_by_the_dividend_discount():
    strikes = np.array([80.0, 100.0, 120.0])
    call = bs.greeks(100.0, strikes, 0.5, 0.3, 0.04, 0.02, True)
    put = bs.greeks(100.0, strikes, 0.5, 0.3, 0.04, 0.02, False)
    np.testing.assert_allclose(call["delta"] - put["delta"], math.exp(-0.02 * 0.5), rtol=1e-12)
    np.testing.assert_allclose(call["gamma"], put["gamma"], rtol=1e-12)
    np.testing.assert_allclose(call["vega"], put["vega"], rtol=1e-12)


# ---------------------------------------------------------------------- implied volatility


@SETTINGS
@given(spots, moneyness, times, st.floats(min_value=0.05, max_value=2.0), rates, divs, rights)
def test_implied_vol_round_trips(spot, m, t, vol, rate, div, is_call):
    strike = spot * m
    value = _p(spot, strike, t, vol, rate, div, is_call)
    vega_per_unit = float(bs.greeks(spot, strike, t, vol, rate, div, is_call)["vega"]) * 100.0
    # Meaningful time value: one vol point moves the price by at least 1e-5 per dollar of
    # spot, and the price is not pinned against its upper bound.
    assume(vega_per_unit > 1e-3 * spot)
    upper = spot * math.exp(-div * t) if is_call else strike * math.exp(-rate * t)
    assume(value < upper * (1 - 1e-6))
    iv = float(bs.implied_vol(value, spot, strike, t, rate, div, is_call))
    assert math.isfinite(iv)
    assert _p(spot, strike, t, iv, rate, div, is_call) == pytest.approx(value, abs=1e-5)
    assert iv == pytest.approx(vol, abs=1e-5 / vega_per_unit + 1e-9)


def test_implied_vol_vectorized_round_trip_over_a_surface():
    spot = 150.0
    strikes = np.linspace(100.0, 220.0, 25)[None, :]
    t = np.array([10.0, 30.0, 90.0, 365.0])[:, None] / 365.0
    vol = 0.2 + 0.3 * np.abs(np.log(strikes / spot))  # a smile
    for is_call in (True, False):
        prices = bs.price(spot, strikes, t, vol, 0.04, 0.01, is_call)
        iv = bs.implied_vol(prices, spot, strikes, t, 0.04, 0.01, is_call)
        assert iv.shape == (4, 25)
        vega = bs.greeks(spot, strikes, t, vol, 0.04, 0.01, is_call)["vega"]
        ok = vega > 1e-3
        assert ok.sum() > 60
        np.testing.assert_allclose(iv[ok], np.broadcast_to(vol, iv.shape)[ok], atol=1e-5)


@pytest.mark.parametrize(
    ("spot", "strike", "t", "vol", "rate", "div", "is_call"),
    [
        # Inputs where a Newton step divides by a vega that has underflowed to almost zero.
        (
            970.0787962688485,
            1330.2902718091038,
            0.014010557209485873,
            1.512783319540955,
            0.03138131848936051,
            0.0021429598900861734,
            True,
        ),
        (
            469.7891552723129,
            600.3778429078916,
            2.6163801268090894,
            0.07235452596776681,
            0.0514223911049458,
            0.03418878839813862,
            True,
        ),
        (
            372.01818632687974,
            226.63201624259077,
            1.7984198017633122,
            0.25927533379777046,
            0.08028891786090595,
            0.04921057077671936,
            False,
        ),
    ],
)
def test_implied_vol_is_quiet_when_vega_underflows(spot, strike, t, vol, rate, div, is_call):
    value = _p(spot, strike, t, vol, rate, div, is_call)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        iv = float(bs.implied_vol(value, spot, strike, t, rate, div, is_call))
    assert iv == pytest.approx(vol, abs=1e-4)


def test_implied_vol_nan_outside_no_arbitrage_bounds():
    spot, strike, t, rate, div = 100.0, 90.0, 0.5, 0.05, 0.01
    disc_spot = spot * math.exp(-div * t)
    disc_strike = strike * math.exp(-rate * t)
    intrinsic = disc_spot - disc_strike  # lower bound of the call
    prices = np.array(
        [
            intrinsic - 0.5,  # below intrinsic value
            0.0,
            -1.0,
            disc_spot + 0.01,  # above the upper bound
            disc_spot,  # at the upper bound
            np.nan,
            np.inf,
            15.0,  # a sane quote
        ]
    )
    iv = bs.implied_vol(prices, spot, strike, t, rate, div, True)
    assert np.all(np.isnan(iv[:-1]))
    assert math.isfinite(iv[-1]) and 0.05 < iv[-1] < 1.0

    put_intrinsic = disc_strike - disc_spot  # negative: puts are bounded by zero here
    assert put_intrinsic < 0
    put_prices = np.array([-0.01, disc_strike + 0.01, 3.0])
    put_iv = bs.implied_vol(put_prices, spot, strike, t, rate, div, False)
    assert np.isnan(put_iv[0]) and np.isnan(put_iv[1]) and math.isfinite(put_iv[2])


def test_implied_vol_nan_when_expired():
    assert np.isnan(bs.implied_vol(5.0, 100.0, 100.0, 0.0, 0.0, 0.0, True))
    assert np.isnan(bs.implied_vol(5.0, 100.0, 100.0, -0.1, 0.0, 0.0, True))
    # The same price with time left has a volatility.
    assert math.isfinite(float(bs.implied_vol(5.0, 100.0, 100.0, 0.25, 0.0, 0.0, True)))


def test_implied_vol_all_invalid_keeps_shape():
    out = bs.implied_vol(np.full((2, 3), -1.0), 100.0, 100.0, 0.5)
    assert out.shape == (2, 3)
    assert np.all(np.isnan(out))


# ---------------------------------------------------------------------- broadcasting


def test_inputs_of_different_shapes_broadcast():
    spot = np.array([90.0, 100.0, 110.0])[:, None]  # (3, 1)
    strike = np.array([95.0, 100.0, 105.0, 120.0])[None, :]  # (1, 4)
    t = 0.5  # scalar
    vol = np.array([0.2, 0.25, 0.3, 0.35])  # (4,)
    is_call = np.array([[True], [False], [True]])  # (3, 1)
    prices = bs.price(spot, strike, t, vol, 0.03, 0.01, is_call)
    greeks = bs.greeks(spot, strike, t, vol, 0.03, 0.01, is_call)
    assert prices.shape == (3, 4)
    for values in greeks.values():
        assert values.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            s, k, v, c = spot[i, 0], strike[0, j], vol[j], bool(is_call[i, 0])
            expected = _reference_price(s, k, t, v, 0.03, 0.01, c)
            assert prices[i, j] == pytest.approx(expected, rel=1e-10)
            single = bs.greeks(s, k, t, v, 0.03, 0.01, c)
            for name, values in greeks.items():
                assert values[i, j] == pytest.approx(float(single[name]), rel=1e-12)
    iv = bs.implied_vol(prices, spot, strike, t, 0.03, 0.01, is_call)
    assert iv.shape == (3, 4)
    np.testing.assert_allclose(iv, np.broadcast_to(vol, (3, 4)), atol=1e-6)


def test_scalar_inputs_give_zero_dimensional_arrays():
    assert np.ndim(bs.price(100.0, 100.0, 1.0, 0.2)) == 0
    assert np.ndim(bs.implied_vol(8.0, 100.0, 100.0, 1.0)) == 0


def test_incompatible_shapes_raise():
    with pytest.raises(ValueError):
        bs.price(np.ones(3) * 100.0, np.ones(4) * 100.0, 0.5, 0.2)
