"""The per-ticker surface summary on chains a real vendor ships: an expiring expiry only,
one expiry, expiries all on one side of 30 days, and a mix of tickers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.scan.surface import SURFACE_COLUMNS, TARGET_DTE, surface_summary
from butterquant_dagster_tests.core.trading.chains import make_chain

SESSION = dt.date(2026, 3, 20)  # a Friday: an expiry day


def _chain(expiries: dict[dt.date, float], symbol: str = "AAA", spot: float = 100.0):
    """One ticker's chain with the given implied vol per expiry."""
    return pd.concat(
        [make_chain(SESSION, {symbol: spot}, expiry=e, vol=v) for e, v in expiries.items()],
        ignore_index=True,
    )


def test_a_session_with_only_the_expiring_expiry_gives_no_rows_not_a_crash():
    """Measured on a vendor file: the scan crashed with KeyError 'iv_atm_far' on such a day
    and one such session stopped the whole run."""
    summary = surface_summary(_chain({SESSION: 0.30}), SESSION)
    assert summary.empty
    assert list(summary.columns) == SURFACE_COLUMNS


def test_a_ticker_with_only_its_expiring_expiry_leaves_the_others_summarised():
    listed = _chain({SESSION: 0.30, SESSION + dt.timedelta(days=28): 0.25})
    expiring_only = _chain({SESSION: 0.40}, symbol="BBB")
    summary = surface_summary(pd.concat([listed, expiring_only], ignore_index=True), SESSION)
    assert summary["symbol"].tolist() == ["AAA"]
    assert summary["far_dte"].tolist() == [28]


def test_total_variance_is_interpolated_between_the_expiries_around_30_days():
    near, far = SESSION + dt.timedelta(days=20), SESSION + dt.timedelta(days=40)
    (row,) = surface_summary(_chain({near: 0.20, far: 0.30}), SESSION).itertuples()
    w = 0.20**2 * 20 + (0.30**2 * 40 - 0.20**2 * 20) * (TARGET_DTE - 20) / 20
    assert row.iv_atm_30 == pytest.approx(np.sqrt(w / TARGET_DTE))
    assert (row.near_dte, row.far_dte) == (20, 40)
    assert row.term_slope == pytest.approx(0.10)


@pytest.mark.parametrize("days", [[10], [45, 60], [3, 5]])
def test_expiries_on_one_side_of_30_days_hold_the_nearest_total_variance(days):
    expiries = {SESSION + dt.timedelta(days=d): 0.2 + 0.01 * i for i, d in enumerate(days)}
    (row,) = surface_summary(_chain(expiries), SESSION).itertuples()
    end = days[-1] if days[-1] < TARGET_DTE else days[0]
    vol = expiries[SESSION + dt.timedelta(days=end)]
    assert row.iv_atm_30 == pytest.approx(vol * np.sqrt(end / TARGET_DTE))
    # No expiry 7 days or more away: the near figures are missing, not invented.
    if days[-1] < 7:
        assert np.isnan(row.iv_atm_near) and row.near_dte == 0
    else:
        assert row.near_dte == next(d for d in days if d >= 7)
