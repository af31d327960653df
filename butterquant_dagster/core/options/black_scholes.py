"""Vectorized Black-Scholes-Merton prices, greeks and implied volatility.

Everything here works on NumPy arrays of any (broadcastable) shape, because a session's
chain is hundreds of thousands of contracts and a Python loop per contract is what made the
original scanner take half an hour. Conventions, used everywhere in the project:

- ``t`` is the time to expiry in years (calendar days / 365),
- ``vol``, ``rate`` and ``div`` are annualised decimals (0.25 is 25 %),
- prices are dollars per share (the 100 multiplier is applied by the money code),
- ``vega`` is per one volatility point (0.01), ``theta`` is per calendar day.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_SQRT_2PI = np.sqrt(2.0 * np.pi)
# Below this much time the option is treated as expiring now and priced at intrinsic value.
_MIN_T = 1e-8


def _pdf(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


def _d1_d2(spot, strike, t, vol, rate, div):
    sqrt_t = np.sqrt(np.maximum(t, _MIN_T))
    vol_sqrt_t = np.maximum(vol, 1e-12) * sqrt_t
    d1 = (np.log(spot / strike) + (rate - div + 0.5 * vol * vol) * t) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t, sqrt_t


def price(spot, strike, t, vol, rate=0.0, div=0.0, is_call=True) -> np.ndarray:
    """European option price; ``is_call`` may be a boolean array."""
    spot, strike, t, vol, rate, div, is_call = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (spot, strike, t, vol, rate, div)),
        np.asarray(is_call, dtype=bool),
    )
    d1, d2, _ = _d1_d2(spot, strike, t, vol, rate, div)
    disc_spot = spot * np.exp(-div * t)
    disc_strike = strike * np.exp(-rate * t)
    call = disc_spot * ndtr(d1) - disc_strike * ndtr(d2)
    put = disc_strike * ndtr(-d2) - disc_spot * ndtr(-d1)
    value = np.where(is_call, call, put)
    expired = t <= _MIN_T
    if np.any(expired):
        intrinsic = np.where(is_call, spot - strike, strike - spot).clip(min=0.0)
        value = np.where(expired, intrinsic, value)
    return value


def greeks(spot, strike, t, vol, rate=0.0, div=0.0, is_call=True) -> dict[str, np.ndarray]:
    """Delta, gamma, vega (per vol point), theta (per calendar day)."""
    spot, strike, t, vol, rate, div, is_call = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (spot, strike, t, vol, rate, div)),
        np.asarray(is_call, dtype=bool),
    )
    d1, d2, sqrt_t = _d1_d2(spot, strike, t, vol, rate, div)
    div_disc = np.exp(-div * t)
    rate_disc = np.exp(-rate * t)
    pdf_d1 = _pdf(d1)
    delta = np.where(is_call, div_disc * ndtr(d1), -div_disc * ndtr(-d1))
    gamma = div_disc * pdf_d1 / (spot * np.maximum(vol, 1e-12) * sqrt_t)
    vega = spot * div_disc * pdf_d1 * sqrt_t / 100.0
    decay = -spot * div_disc * pdf_d1 * vol / (2.0 * sqrt_t)
    call_theta = decay - rate * strike * rate_disc * ndtr(d2) + div * spot * div_disc * ndtr(d1)
    put_theta = decay + rate * strike * rate_disc * ndtr(-d2) - div * spot * div_disc * ndtr(-d1)
    theta = np.where(is_call, call_theta, put_theta) / 365.0
    return {"delta": delta, "gamma": gamma, "vega": vega, "theta": theta}


def implied_vol(
    option_price,
    spot,
    strike,
    t,
    rate=0.0,
    div=0.0,
    is_call=True,
    *,
    low: float = 1e-4,
    high: float = 8.0,
    tol: float = 1e-7,
    max_iter: int = 100,
) -> np.ndarray:
    """Implied volatility by safeguarded Newton iteration inside a shrinking bracket.

    Returns NaN where the price is outside the no-arbitrage bounds (below intrinsic value or
    above the discounted underlying/strike) or the option has expired: such a quote has no
    implied volatility, and inventing one is how closed-market garbage gets into a model.
    """
    option_price, spot, strike, t, rate, div, is_call = np.broadcast_arrays(
        *(np.asarray(a, dtype=float) for a in (option_price, spot, strike, t, rate, div)),
        np.asarray(is_call, dtype=bool),
    )
    shape = option_price.shape
    p, s, k, tt, r, q, c = (a.ravel() for a in (option_price, spot, strike, t, rate, div, is_call))
    disc_spot = s * np.exp(-q * tt)
    disc_strike = k * np.exp(-r * tt)
    lower_bound = np.where(c, disc_spot - disc_strike, disc_strike - disc_spot).clip(min=0.0)
    upper_bound = np.where(c, disc_spot, disc_strike)
    valid = np.isfinite(p) & (tt > _MIN_T) & (p > lower_bound + 1e-12) & (p < upper_bound)
    result = np.full(p.shape, np.nan)
    if not valid.any():
        return result.reshape(shape)
    p, s, k, tt, r, q, c = (a[valid] for a in (p, s, k, tt, r, q, c))
    lo = np.full(p.shape, low)
    hi = np.full(p.shape, high)
    # Start from the Brenner-Subrahmanyam at-the-money approximation.
    sigma = np.clip(np.sqrt(2.0 * np.pi / tt) * p / s, low * 2, high / 2)
    for _ in range(max_iter):
        model = price(s, k, tt, sigma, r, q, c)
        diff = model - p
        if np.all(np.abs(diff) < tol):
            break
        too_high = diff > 0
        hi = np.where(too_high, sigma, hi)
        lo = np.where(too_high, lo, sigma)
        vega = greeks(s, k, tt, sigma, r, q, c)["vega"] * 100.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            newton = sigma - diff / vega
        in_bracket = np.isfinite(newton) & (newton > lo) & (newton < hi)
        sigma = np.where(in_bracket, newton, 0.5 * (lo + hi))
    converged = np.abs(price(s, k, tt, sigma, r, q, c) - p) < max(tol * 100, 1e-5)
    result[np.flatnonzero(valid)] = np.where(converged, sigma, np.nan)
    return result.reshape(shape)
