"""Outcomes: hand-made candidates held to expiry and settled on a hand-made price path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.scan.candidates import build_candidates
from butterquant_dagster.core.scan.outcomes import (
    OUTCOME_COLUMNS,
    OutcomeError,
    sample_for_outcomes,
    settle,
)

SESSION = pd.Timestamp("2024-01-02")
EXPIRY = pd.Timestamp("2024-02-01")
LATER = pd.Timestamp("2024-02-16")
# Exit fees per share: the $1.00 minimum for 1 contract, 4 x $0.65 for 4 contracts.
ONE_CONTRACT_FEE = 1.00 / 100.0
FOUR_CONTRACT_FEE = 2.60 / 100.0


# How much dearer than the expected fill the fixtures' natural price is, per share.
NATURAL_EXTRA = 0.30


def _call_fly(symbol="AAA", cost=1.50, expiry=EXPIRY, structure="call_fly"):
    """A 95/100/105 long fly expected to fill for ``cost`` per share (fees included), its
    natural price ``NATURAL_EXTRA`` dearer."""
    return {
        "session": SESSION,
        "symbol": symbol,
        "expiry": expiry,
        "structure": structure,
        "is_credit": False,
        "lower": 95.0,
        "center": 100.0,
        "upper": 105.0,
        "width": 5.0,
        "width_steps": 1,
        "dte": (expiry - SESSION).days,
        "cost": cost,
        "debit_natural": cost - FOUR_CONTRACT_FEE + NATURAL_EXTRA,
        "max_loss": cost,
        "max_profit": 5.0 - cost,
        "breakeven_low": 95.0 + cost,
        "breakeven_high": 105.0 - cost,
        "spot": 100.0,  # not an outcome column: must be dropped
    }


def _iron_fly(symbol="AAA", net_credit=3.50, expiry=EXPIRY):
    """A 95/100/105 iron fly sold for ``net_credit`` per share after the entry fee."""
    return {
        **_call_fly(symbol, expiry=expiry),
        "structure": "iron_fly",
        "is_credit": True,
        "cost": -net_credit,
        "debit_natural": -(net_credit + FOUR_CONTRACT_FEE) + NATURAL_EXTRA,
        "max_loss": 5.0 - net_credit,
        "max_profit": net_credit,
        "breakeven_low": 100.0 - net_credit,
        "breakeven_high": 100.0 + net_credit,
    }


def _path(symbol: str, expiry_close: float, expiry=EXPIRY) -> pd.DataFrame:
    """Weekday closes from the entry session to the expiry, ending at ``expiry_close``; the
    path wanders far from the expiry close before it, so only the expiry's close counts."""
    sessions = pd.bdate_range(SESSION, expiry)
    closes = np.linspace(80.0, 120.0, len(sessions))
    closes[-1] = expiry_close
    return pd.DataFrame({"session": sessions, "symbol": symbol, "close": closes})


def _settle(rows: list[dict], closes: pd.DataFrame) -> pd.DataFrame:
    return settle(pd.DataFrame(rows), closes)


# ---------------------------------------------------------------------- call fly
def test_call_fly_settled_at_the_centre():
    out = _settle([_call_fly()], _path("AAA", 100.0)).iloc[0]
    # Only the 95 call is in the money: one contract, the $1.00 minimum fee.
    pnl = 5.0 - 1.50 - ONE_CONTRACT_FEE  # 3.49
    assert out["settle_price"] == 100.0
    assert out["expiry_value"] == pytest.approx(5.0)
    assert out["exit_fee"] == pytest.approx(ONE_CONTRACT_FEE)
    assert out["pnl_per_share"] == pytest.approx(pnl)
    assert out["pnl_per_share"] == pytest.approx(3.49)
    assert out["pnl_per_contract"] == pytest.approx(349.0)
    assert out["roi"] == pytest.approx(pnl / 1.50)
    assert out["yield_per_1000"] == pytest.approx(1000.0 * pnl / 1.50)
    assert out["win"]
    # At natural: 1.50 + 0.30 = 1.80 paid, fee included; the same exit fee.
    assert out["cost_natural"] == pytest.approx(1.80)
    assert out["max_loss_natural"] == pytest.approx(1.80)
    assert out["pnl_per_share_natural"] == pytest.approx(5.0 - 1.80 - 0.01)  # 3.19
    assert out["yield_per_1000_natural"] == pytest.approx(1000.0 * 3.19 / 1.80)
    assert out["win_natural"]


def test_call_fly_settled_below_the_wings():
    out = _settle([_call_fly()], _path("AAA", 90.0)).iloc[0]
    # Every call finishes out of the money: nothing to close, no exit fee.
    assert out["expiry_value"] == 0.0
    assert out["exit_fee"] == 0.0
    assert out["pnl_per_share"] == pytest.approx(-1.50)
    assert out["pnl_per_contract"] == pytest.approx(-150.0)
    assert out["roi"] == pytest.approx(-1.0)
    assert not out["win"]


def test_call_fly_settled_above_the_wings():
    out = _settle([_call_fly()], _path("AAA", 107.0)).iloc[0]
    # All four calls are in the money (1 + 2 + 1 contracts): 4 x $0.65.
    assert out["expiry_value"] == 0.0
    assert out["exit_fee"] == pytest.approx(FOUR_CONTRACT_FEE)
    assert out["pnl_per_share"] == pytest.approx(-1.50 - FOUR_CONTRACT_FEE)
    assert not out["win"]


def test_call_fly_between_centre_and_upper_wing():
    out = _settle([_call_fly()], _path("AAA", 102.0)).iloc[0]
    # 95 and 2 x 100 calls in the money: 3 contracts x $0.65 = $1.95.
    assert out["expiry_value"] == pytest.approx(3.0)
    assert out["exit_fee"] == pytest.approx(1.95 / 100.0)
    assert out["pnl_per_share"] == pytest.approx(3.0 - 1.50 - 0.0195)
    assert out["win"]


def test_put_fly_exit_fees_count_puts_in_the_money():
    row = _call_fly(structure="put_fly")
    at_97 = _settle([row], _path("AAA", 97.0)).iloc[0]
    # Puts 100 (x2) and 105 in the money: 3 contracts.
    assert at_97["expiry_value"] == pytest.approx(2.0)
    assert at_97["exit_fee"] == pytest.approx(1.95 / 100.0)
    at_110 = _settle([row], _path("AAA", 110.0)).iloc[0]
    assert at_110["exit_fee"] == 0.0
    assert at_110["pnl_per_share"] == pytest.approx(-1.50)


def test_settled_on_a_breakeven_loses_the_exit_fee():
    # Settled exactly on the low breakeven: pnl is minus the exit fee, not a win.
    out = _settle([_call_fly()], _path("AAA", 96.5)).iloc[0]
    assert out["expiry_value"] == pytest.approx(1.5)
    assert out["pnl_per_share"] == pytest.approx(-ONE_CONTRACT_FEE)
    assert not out["win"]
    # At natural the low breakeven is 95 + 1.80 = 96.80: 96.5 is below it, a loss of 0.31.
    assert out["pnl_per_share_natural"] == pytest.approx(1.5 - 1.80 - ONE_CONTRACT_FEE)
    assert not out["win_natural"]


# ---------------------------------------------------------------------- iron fly
def test_iron_fly_settled_at_the_centre_keeps_the_credit():
    out = _settle([_iron_fly(net_credit=3.50)], _path("AAA", 100.0)).iloc[0]
    # At the centre nothing is in the money (strike == spot is not), so no exit fee.
    assert out["expiry_value"] == pytest.approx(0.0)
    assert out["exit_fee"] == 0.0
    assert out["pnl_per_share"] == pytest.approx(3.50)
    assert out["roi"] == pytest.approx(3.50 / 1.50)
    assert out["win"]
    # At natural the net credit is 3.50 - 0.30 = 3.20 and the risk 5 - 3.20 = 1.80.
    assert out["cost_natural"] == pytest.approx(-3.20)
    assert out["max_loss_natural"] == pytest.approx(1.80)
    assert out["pnl_per_share_natural"] == pytest.approx(3.20)
    assert out["yield_per_1000_natural"] == pytest.approx(1000.0 * 3.20 / 1.80)
    assert out["win_natural"]


def test_iron_fly_settled_off_centre():
    out = _settle([_iron_fly(net_credit=3.50)], _path("AAA", 103.0)).iloc[0]
    # Short 100 call in the money (1 contract): the $1.00 minimum; the fly owes 3.
    assert out["expiry_value"] == pytest.approx(-3.0)
    assert out["exit_fee"] == pytest.approx(ONE_CONTRACT_FEE)
    assert out["pnl_per_share"] == pytest.approx(3.50 - 3.0 - ONE_CONTRACT_FEE)
    assert out["win"]

    beyond = _settle([_iron_fly(net_credit=3.50)], _path("AAA", 91.0)).iloc[0]
    # Puts 95 and 100 in the money: 2 contracts, 2 x $0.65 = $1.30.
    assert beyond["expiry_value"] == pytest.approx(-5.0)
    assert beyond["exit_fee"] == pytest.approx(1.30 / 100.0)
    assert beyond["pnl_per_share"] == pytest.approx(3.50 - 5.0 - 0.013)
    assert beyond["roi"] == pytest.approx((3.50 - 5.0 - 0.013) / 1.50)
    assert not beyond["win"]


# ---------------------------------------------------------------------- many rows
def test_each_candidate_settles_at_its_own_ticker_and_expiry():
    rows = [
        _call_fly("AAA"),
        _call_fly("BBB"),
        _call_fly("AAA", expiry=LATER),
        _iron_fly("BBB", expiry=LATER),
    ]
    closes = pd.concat(
        [
            _path("AAA", 100.0),
            _path("BBB", 90.0),
            _path("AAA", 103.0, expiry=LATER).iloc[-1:],
            _path("BBB", 100.0, expiry=LATER).iloc[-1:],
        ],
        ignore_index=True,
    )
    closes["symbol"] = closes["symbol"].astype("string")
    out = _settle(rows, closes)
    assert list(out.columns) == OUTCOME_COLUMNS
    assert list(out["settle_price"]) == [100.0, 90.0, 103.0, 100.0]
    np.testing.assert_allclose(out["expiry_value"], [5.0, 0.0, 2.0, 0.0])
    assert list(out["win"]) == [True, False, True, True]
    assert list(out["symbol"]) == ["AAA", "BBB", "AAA", "BBB"]


def test_a_missing_close_raises_naming_the_ticker_and_expiry():
    rows = [_call_fly("AAA"), _call_fly("ZZZ", expiry=LATER)]
    closes = pd.concat([_path("AAA", 100.0), _path("ZZZ", 100.0)], ignore_index=True)
    with pytest.raises(OutcomeError, match=r"ZZZ.*2024-02-16"):
        _settle(rows, closes)
    # A close on the day before the expiry is not the expiry's close.
    with pytest.raises(OutcomeError, match=r"AAA.*2024-02-01"):
        _settle([_call_fly("AAA")], _path("AAA", 100.0).iloc[:-1])


def test_candidates_without_their_natural_price_are_refused():
    row = _call_fly()
    del row["debit_natural"]
    with pytest.raises(ValueError, match="debit_natural"):
        _settle([row], _path("AAA", 100.0))


def test_generated_candidates_carry_both_bases_and_natural_is_never_better():
    """Candidates of a generated session settled at spots across their whole range: the
    label's basis (expected fill) and the natural one side by side, natural never better."""
    session = dt.date(2025, 6, 2)
    market = SyntheticMarket(select_universe(read_universe_file(), size=6))
    candidates, _ = build_candidates(market.chains(session), session)
    assert len(candidates) > 500
    rng = np.random.default_rng(5)
    pairs = candidates[["symbol", "expiry", "spot"]].drop_duplicates(["symbol", "expiry"])
    closes = pd.DataFrame(
        {
            "session": pairs["expiry"].to_numpy(),
            "symbol": pairs["symbol"].to_numpy(),
            "close": pairs["spot"].to_numpy() * rng.uniform(0.85, 1.15, len(pairs)),
        }
    )
    out = settle(candidates, closes)
    assert list(out.columns) == OUTCOME_COLUMNS
    assert out["win"].any() and not out["win"].all()
    assert (out["cost_natural"] >= out["cost"] - 1e-12).all()
    assert (out["cost_natural"] > out["cost"]).mean() > 0.9  # spreads are paid
    assert (out["pnl_per_share_natural"] <= out["pnl_per_share"] + 1e-12).all()
    assert (~out["win_natural"] | out["win"]).all()
    # Per $1,000 at risk too, where the expiry's value covers its exit fee (otherwise a
    # bigger stake dilutes a loss beyond it, the only way natural's yield can read higher).
    covered = out["expiry_value"] - out["exit_fee"] >= 0
    assert covered.mean() > 0.3
    assert (
        out.loc[covered, "yield_per_1000_natural"] <= out.loc[covered, "yield_per_1000"] + 1e-9
    ).all()
    assert out["yield_per_1000_natural"].mean() < out["yield_per_1000"].mean()


# ---------------------------------------------------------------------- sampling
def _many(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(n), "symbol": [f"T{i % 7}" for i in range(n)]})


def test_sample_returns_every_row_under_the_cap():
    frame = _many(50)
    pd.testing.assert_frame_equal(sample_for_outcomes(frame, 50, seed=1), frame)
    pd.testing.assert_frame_equal(sample_for_outcomes(frame, 1000, seed=1), frame)


def test_sample_over_the_cap_is_seeded_reproducible_and_duplicate_free():
    frame = _many(1000)
    first = sample_for_outcomes(frame, 100, seed=42)
    again = sample_for_outcomes(frame, 100, seed=42)
    other = sample_for_outcomes(frame, 100, seed=43)
    assert len(first) == 100
    pd.testing.assert_frame_equal(first, again)
    assert not first["id"].duplicated().any()
    assert set(first["id"]) <= set(frame["id"])
    assert set(first["id"]) != set(other["id"])
    # Rows keep their columns and their pairing, in the original order.
    assert first["id"].is_monotonic_increasing
    pd.testing.assert_frame_equal(
        first, frame.set_index("id").loc[first["id"]].reset_index()[list(frame.columns)]
    )
    assert list(first.index) == list(range(100))
