"""Candidate butterflies built from a hand-made chain: prices by hand, bad input, invariants."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from butterquant_dagster.core.market.schemas import OPTION_CHAINS, conform
from butterquant_dagster.core.market.validation import QualityPolicy, QualityReport
from butterquant_dagster.core.options.black_scholes import greeks, price
from butterquant_dagster.core.scan.candidates import CandidateRules, build_candidates
from butterquant_dagster.core.scan.invariants import CANDIDATE_RULES, listed_strikes

SESSION = dt.date(2024, 1, 2)
# Entry fee of every structure (4 contracts at $0.65), per share.
FEE = 2.60 / 100.0

MISSING = "missing strike or side in the chain"
ZERO_BID = "a leg has a zero bid (one-sided quote)"
TOO_DEAR = "impossible price: cost at or above the width"
NO_EXPIRY = "no listed expiry in the window"
ILLIQUID = "illiquid: no tradable candidate"


@dataclass(frozen=True)
class Q:
    bid: float
    ask: float
    delta: float
    iv: float = 0.25
    gamma: float = 0.03
    vega: float = 0.10
    theta: float = -0.02
    volume: int = 50
    oi: int = 500

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


# One ticker, one expiry 30 days out, underlying at 100: hand-chosen quotes.
CALLS = {
    95.0: Q(6.10, 6.30, 0.80, iv=0.27, gamma=0.030, vega=0.080, theta=-0.030, volume=40, oi=900),
    100.0: Q(2.90, 3.05, 0.52, iv=0.25, gamma=0.055, vega=0.114, theta=-0.045, volume=120),
    105.0: Q(1.00, 1.10, 0.25, iv=0.24, gamma=0.040, vega=0.090, theta=-0.035, volume=70, oi=300),
    110.0: Q(0.28, 0.34, 0.09, iv=0.23, gamma=0.020, vega=0.045, theta=-0.015, volume=10),
}
PUTS = {
    95.0: Q(0.95, 1.05, -0.19, iv=0.28, gamma=0.031, vega=0.081, theta=-0.028, volume=35),
    100.0: Q(2.80, 2.95, -0.47, iv=0.26, gamma=0.054, vega=0.113, theta=-0.040, volume=90),
    105.0: Q(5.85, 6.10, -0.74, iv=0.25, gamma=0.041, vega=0.091, theta=-0.030, volume=20),
    110.0: Q(10.00, 10.30, -0.90, iv=0.24, gamma=0.019, vega=0.044, theta=-0.012, volume=5),
}
# The 90 strike, to widen the ladder to 90..110.
CALL_90 = Q(10.50, 10.80, 0.93, iv=0.29, volume=8)
PUT_90 = Q(0.30, 0.36, -0.07, iv=0.30, volume=15)


def _rows(
    calls: dict[float, Q],
    puts: dict[float, Q],
    *,
    symbol: str = "AAA",
    spot: float = 100.0,
    dte: int = 30,
    session: dt.date = SESSION,
) -> list[dict]:
    expiry = session + dt.timedelta(days=dte)
    out = []
    for right, side in (("C", calls), ("P", puts)):
        for strike, q in side.items():
            out.append(
                {
                    "session": session,
                    "symbol": symbol,
                    "expiry": expiry,
                    "expiry_type": "monthly",
                    "dte": dte,
                    "strike": strike,
                    "right": right,
                    "bid": q.bid,
                    "ask": q.ask,
                    "mid": q.mid,
                    "theo": q.mid,
                    "volume": q.volume,
                    "open_interest": q.oi,
                    "implied_vol": q.iv,
                    "delta": q.delta,
                    "gamma": q.gamma,
                    "vega": q.vega,
                    "theta": q.theta,
                    "underlying_price": spot,
                    "rate": 0.05,
                    "dividend_yield": 0.0,
                    "modelled": False,
                    "source": "test",
                }
            )
    return out


def _chain(*row_lists: list[dict]) -> pd.DataFrame:
    rows = [row for rows in row_lists for row in rows]
    return conform(pd.DataFrame(rows), OPTION_CHAINS, origin="test")


def _bs_quotes(strikes, spot: float, dte: int = 30, vol: float = 0.25):
    """Sane quotes from Black-Scholes (a 3 % + 1 cent half-spread) for any ladder."""
    strikes = np.asarray(sorted(strikes), dtype=float)
    t = dte / 365.0
    calls, puts = {}, {}
    for is_call, side in ((True, calls), (False, puts)):
        value = price(spot, strikes, t, vol, 0.05, 0.0, is_call)
        delta = greeks(spot, strikes, t, vol, 0.05, 0.0, is_call)["delta"]
        for k, v, d in zip(strikes, value, delta, strict=True):
            bid = max(round(v * 0.97 - 0.01, 2), 0.01)
            side[float(k)] = Q(bid, round(max(v * 1.03 + 0.01, bid + 0.01), 2), float(d), iv=vol)
    return calls, puts


def _assert_invariants(candidates: pd.DataFrame, chain: pd.DataFrame) -> None:
    report = QualityReport(CANDIDATE_RULES, QualityPolicy())
    report.check(candidates, SESSION, expected=[], listed=listed_strikes(chain))
    assert report.passed, [o.summary() for o in report.failures()]


def _build(chain: pd.DataFrame, rules: CandidateRules | None = None):
    candidates, skips = build_candidates(chain, SESSION, rules)
    if not candidates.empty:
        _assert_invariants(candidates, chain)
    return candidates, skips


def _one(candidates: pd.DataFrame, structure: str, lower: float, upper: float) -> pd.Series:
    rows = candidates[
        (candidates["structure"] == structure)
        & (candidates["lower"] == lower)
        & (candidates["upper"] == upper)
    ]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def _triples(candidates: pd.DataFrame) -> set[tuple]:
    return set(
        zip(
            candidates["structure"],
            candidates["lower"],
            candidates["center"],
            candidates["upper"],
            strict=True,
        )
    )


def _skip_count(skips: pd.DataFrame, symbol: str, reason: str) -> int:
    rows = skips[(skips["symbol"] == symbol) & (skips["reason"] == reason)]
    assert len(rows) == 1, skips
    return int(rows["count"].iloc[0])


STRUCTURES = ("call_fly", "put_fly", "iron_fly")


# ---------------------------------------------------------------------- hand examples
def test_the_hand_ladder_gives_every_structure_on_both_inner_centres():
    candidates, skips = _build(_chain(_rows(CALLS, PUTS)))
    expected = {(s, 95.0, 100.0, 105.0) for s in STRUCTURES} | {
        (s, 100.0, 105.0, 110.0) for s in STRUCTURES
    }
    assert _triples(candidates) == expected
    assert len(candidates) == 6
    assert skips.empty
    assert (candidates["session"] == pd.Timestamp(SESSION)).all()
    assert (candidates["symbol"] == "AAA").all()
    assert (candidates["expiry"] == pd.Timestamp(SESSION + dt.timedelta(days=30))).all()
    assert (candidates["dte"] == 30).all()
    assert (candidates["width"] == 5.0).all()
    assert (candidates["width_steps"] == 1).all()
    assert (candidates["spot"] == 100.0).all()
    assert list(candidates["is_credit"]) == [s == "iron_fly" for s in candidates["structure"]]


def test_call_fly_95_100_105_by_hand():
    candidates, _ = _build(_chain(_rows(CALLS, PUTS)))
    row = _one(candidates, "call_fly", 95.0, 105.0)
    c95, c100, c105 = CALLS[95.0], CALLS[100.0], CALLS[105.0]
    debit_mid = c95.mid - 2 * c100.mid + c105.mid  # 6.20 - 5.95 + 1.05 = 1.30
    natural = c95.ask - 2 * c100.bid + c105.ask  # 6.30 - 5.80 + 1.10 = 1.60
    # The expected fill: a quarter of the way to natural, 1.30 + 0.075 = 1.375, up to 1.38.
    fill = 1.38
    cost = fill + FEE  # 1.406
    assert row["debit_mid"] == pytest.approx(debit_mid)
    assert row["debit_mid"] == pytest.approx(1.30)
    assert row["debit_natural"] == pytest.approx(natural)
    assert row["debit_natural"] == pytest.approx(1.60)
    assert row["debit_fill"] == pytest.approx(fill)
    assert row["cost"] == pytest.approx(cost)
    assert row["max_loss"] == pytest.approx(cost)
    assert row["max_profit"] == pytest.approx(5.0 - cost)
    assert row["breakeven_low"] == pytest.approx(95.0 + cost)
    assert row["breakeven_high"] == pytest.approx(105.0 - cost)
    assert row["profit_zone_width"] == pytest.approx(10.0 - 2 * cost)
    assert row["reward_risk"] == pytest.approx((5.0 - cost) / cost)
    assert row["capital_at_risk"] == pytest.approx(100.0 * cost)
    assert row["net_delta"] == pytest.approx(c95.delta - 2 * c100.delta + c105.delta)
    assert row["net_gamma"] == pytest.approx(c95.gamma - 2 * c100.gamma + c105.gamma)
    assert row["net_vega"] == pytest.approx(c95.vega - 2 * c100.vega + c105.vega)
    assert row["net_theta"] == pytest.approx(c95.theta - 2 * c100.theta + c105.theta)
    assert row["spread_pct"] == pytest.approx((natural - debit_mid) / debit_mid)
    assert row["iv_center"] == pytest.approx(c100.iv)
    assert row["min_volume"] == min(c95.volume, c100.volume, c105.volume)
    assert row["min_open_interest"] == min(c95.oi, c100.oi, c105.oi)
    assert 0.0 < row["prob_profit_rn"] < 1.0


def test_put_fly_95_100_105_by_hand():
    candidates, _ = _build(_chain(_rows(CALLS, PUTS)))
    row = _one(candidates, "put_fly", 95.0, 105.0)
    p95, p100, p105 = PUTS[95.0], PUTS[100.0], PUTS[105.0]
    debit_mid = p95.mid - 2 * p100.mid + p105.mid  # 1.00 - 5.75 + 5.975 = 1.225
    natural = p95.ask - 2 * p100.bid + p105.ask  # 1.05 - 5.60 + 6.10 = 1.55
    fill = 1.31  # 1.225 + 0.25 x 0.325 = 1.30625, up to the cent
    cost = fill + FEE
    assert row["debit_fill"] == pytest.approx(fill)
    assert row["debit_mid"] == pytest.approx(debit_mid)
    assert row["debit_natural"] == pytest.approx(1.55)
    assert row["debit_natural"] == pytest.approx(natural)
    assert row["cost"] == pytest.approx(cost)
    assert row["max_loss"] == pytest.approx(cost)
    assert row["max_profit"] == pytest.approx(5.0 - cost)
    assert row["breakeven_low"] == pytest.approx(95.0 + cost)
    assert row["breakeven_high"] == pytest.approx(105.0 - cost)
    assert row["reward_risk"] == pytest.approx((5.0 - cost) / cost)
    assert row["capital_at_risk"] == pytest.approx(100.0 * cost)
    assert row["net_delta"] == pytest.approx(p95.delta - 2 * p100.delta + p105.delta)
    assert row["iv_center"] == pytest.approx(p100.iv)


def test_iron_fly_95_100_105_by_hand():
    candidates, _ = _build(_chain(_rows(CALLS, PUTS)))
    row = _one(candidates, "iron_fly", 95.0, 105.0)
    p95, p100, c100, c105 = PUTS[95.0], PUTS[100.0], CALLS[100.0], CALLS[105.0]
    credit = p100.bid + c100.bid - p95.ask - c105.ask  # 2.80 + 2.90 - 1.05 - 1.10 = 3.55
    credit_mid = p100.mid + c100.mid - p95.mid - c105.mid  # 2.875 + 2.975 - 1.00 - 1.05 = 3.80
    # Bought as a combo the debit is -3.80 at mid, -3.55 at natural; the expected fill is
    # -3.80 + 0.25 x 0.25 = -3.7375, up (toward a fill) to -3.73: a credit of 3.73.
    fill_credit = 3.73
    net_credit = fill_credit - FEE
    assert credit == pytest.approx(3.55)
    assert credit_mid == pytest.approx(3.80)
    assert row["is_credit"]
    assert row["debit_natural"] == pytest.approx(-credit)
    assert row["debit_mid"] == pytest.approx(-credit_mid)
    assert row["debit_fill"] == pytest.approx(-fill_credit)
    assert row["cost"] == pytest.approx(-fill_credit + FEE)
    assert row["max_loss"] == pytest.approx(5.0 - fill_credit + FEE)
    assert row["max_profit"] == pytest.approx(net_credit)
    assert row["breakeven_low"] == pytest.approx(100.0 - net_credit)
    assert row["breakeven_high"] == pytest.approx(100.0 + net_credit)
    assert row["reward_risk"] == pytest.approx(net_credit / (5.0 - fill_credit + FEE))
    assert row["capital_at_risk"] == pytest.approx(100.0 * (5.0 - fill_credit + FEE))
    assert row["net_delta"] == pytest.approx(p95.delta - p100.delta - c100.delta + c105.delta)
    assert row["iv_center"] == pytest.approx((p100.iv + c100.iv) / 2.0)
    assert row["spread_pct"] == pytest.approx(abs(-credit + credit_mid) / credit_mid)


def test_upper_centre_flies_by_hand():
    candidates, _ = _build(_chain(_rows(CALLS, PUTS)))
    call = _one(candidates, "call_fly", 100.0, 110.0)
    natural = CALLS[100.0].ask - 2 * CALLS[105.0].bid + CALLS[110.0].ask  # 1.39
    assert call["debit_natural"] == pytest.approx(natural)
    # Mid 2.975 - 2.10 + 0.31 = 1.185; fill 1.185 + 0.25 x 0.205 = 1.23625, up to 1.24.
    assert call["breakeven_low"] == pytest.approx(100.0 + 1.24 + FEE)
    iron = _one(candidates, "iron_fly", 100.0, 110.0)
    credit = PUTS[105.0].bid + CALLS[105.0].bid - PUTS[100.0].ask - CALLS[110.0].ask
    assert credit == pytest.approx(3.56)
    # Mid credit 5.975 + 1.05 - 2.875 - 0.31 = 3.84; fill 3.84 - 0.25 x 0.28 = 3.77.
    assert iron["debit_fill"] == pytest.approx(-3.77)
    assert iron["cost"] == pytest.approx(-3.77 + FEE)
    assert iron["breakeven_high"] == pytest.approx(105.0 + 3.77 - FEE)


def test_atm_vol_and_expected_move():
    candidates, _ = _build(_chain(_rows(CALLS, PUTS)))
    # The strike nearest the spot is 100: the mean of its call's and put's implied vols.
    iv_atm = (CALLS[100.0].iv + PUTS[100.0].iv) / 2.0
    np.testing.assert_allclose(candidates["iv_atm"], iv_atm)
    np.testing.assert_allclose(candidates["expected_move"], 100.0 * iv_atm * np.sqrt(30 / 365))


# ---------------------------------------------------------------------- the strike grid
def test_two_step_wings_only_when_the_grid_allows():
    four, _ = _build(_chain(_rows(CALLS, PUTS)))
    assert (four["width_steps"] == 1).all()

    five, skips = _build(_chain(_rows({90.0: CALL_90, **CALLS}, {90.0: PUT_90, **PUTS})))
    assert skips.empty
    two_step = five[five["width_steps"] == 2]
    assert _triples(two_step) == {(s, 90.0, 100.0, 110.0) for s in STRUCTURES}
    assert (two_step["width"] == 10.0).all()
    one_step = five[five["width_steps"] == 1]
    assert {(lo, c, hi) for _, lo, c, hi in _triples(one_step)} == {
        (90.0, 95.0, 100.0),
        (95.0, 100.0, 105.0),
        (100.0, 105.0, 110.0),
    }
    assert len(five) == 12
    call = _one(five, "call_fly", 90.0, 110.0)
    natural = CALL_90.ask - 2 * CALLS[100.0].bid + CALLS[110.0].ask  # 10.80 - 5.80 + 0.34
    assert call["debit_natural"] == pytest.approx(natural)
    # Mid 10.65 - 5.95 + 0.31 = 5.01; fill 5.01 + 0.25 x 0.33 = 5.0925, up to 5.10.
    assert call["max_profit"] == pytest.approx(10.0 - 5.10 - FEE)
    assert call["breakeven_high"] == pytest.approx(110.0 - 5.10 - FEE)
    iron = _one(five, "iron_fly", 90.0, 110.0)
    credit = PUTS[100.0].bid + CALLS[100.0].bid - PUT_90.ask - CALLS[110.0].ask
    assert credit == pytest.approx(5.00)
    # Mid credit 2.875 + 2.975 - 0.33 - 0.31 = 5.21; fill 5.21 - 0.25 x 0.21 = 5.1575,
    # down (toward a fill) to 5.15.
    assert iron["max_loss"] == pytest.approx(10.0 - 5.15 + FEE)


def test_three_step_limit_is_respected():
    strikes = np.arange(70.0, 131.0, 2.5)
    calls, puts = _bs_quotes(strikes, 100.0)
    candidates, _ = _build(_chain(_rows(calls, puts)))
    assert set(candidates["width_steps"]) == {1, 2, 3}
    np.testing.assert_allclose(candidates["width"], 2.5 * candidates["width_steps"])
    narrow, _ = _build(_chain(_rows(calls, puts)), CandidateRules(max_width_steps=1))
    assert set(narrow["width_steps"]) == {1}


def test_asymmetric_ladder_builds_no_unequal_wings():
    calls, puts = _bs_quotes([95.0, 100.0, 110.0], 100.0)
    candidates, skips = build_candidates(_chain(_rows(calls, puts)), SESSION)
    assert candidates.empty
    assert _skip_count(skips, "AAA", ILLIQUID) == 0

    # 90 95 100 110 120 at spot 105: 90/95/100 and 100/110/120 are symmetric,
    # 95/100/110 and 90/100/120 are not.
    calls, puts = _bs_quotes([90.0, 95.0, 100.0, 110.0, 120.0], 105.0)
    candidates, _ = _build(_chain(_rows(calls, puts, spot=105.0)))
    assert {(lo, c, hi) for _, lo, c, hi in _triples(candidates)} == {
        (90.0, 95.0, 100.0),
        (100.0, 110.0, 120.0),
    }
    np.testing.assert_allclose(
        candidates["center"] - candidates["lower"], candidates["upper"] - candidates["center"]
    )
    assert set(candidates.loc[candidates["center"] == 110.0, "width"]) == {10.0}


def test_centres_stay_within_the_band_around_spot():
    strikes = np.arange(80.0, 131.0, 5.0)
    calls, puts = _bs_quotes(strikes, 101.0)
    candidates, _ = _build(_chain(_rows(calls, puts, spot=101.0)))
    # ±10 % of 101 is 90.9..111.1.
    assert set(candidates["center"]) == {95.0, 100.0, 105.0, 110.0}
    wider, _ = _build(_chain(_rows(calls, puts, spot=101.0)), CandidateRules(center_band=0.2))
    assert set(wider["center"]) == {85.0, 90.0, 95.0, 100.0, 105.0, 110.0, 115.0, 120.0}


# ---------------------------------------------------------------------- bad input
def test_a_strike_missing_on_the_call_side():
    calls = {k: q for k, q in CALLS.items() if k != 100.0}  # the 100 strike has a put only
    chain = _chain(_rows(calls, PUTS))
    candidates, skips = _build(chain)
    call_flies = candidates[candidates["structure"] == "call_fly"]
    assert call_flies.empty  # 95/100/105 and 100/105/110 both need the 100 call
    # The iron fly 95/100/105 sells the 100 call; 100/105/110 only buys the 100 put.
    assert _triples(candidates) == {
        ("put_fly", 95.0, 100.0, 105.0),
        ("put_fly", 100.0, 105.0, 110.0),
        ("iron_fly", 100.0, 105.0, 110.0),
    }
    # Two call flies and one iron fly needed the missing call.
    assert _skip_count(skips, "AAA", MISSING) == 3


def test_a_zero_bid_leg_is_not_built():
    calls = {**CALLS, 110.0: replace(CALLS[110.0], bid=0.0)}
    candidates, skips = _build(_chain(_rows(calls, PUTS)))
    # The 110 call is a leg of the call fly and of the iron fly 100/105/110.
    assert ("call_fly", 100.0, 105.0, 110.0) not in _triples(candidates)
    assert ("iron_fly", 100.0, 105.0, 110.0) not in _triples(candidates)
    assert len(candidates) == 4
    assert _skip_count(skips, "AAA", ZERO_BID) == 2


def test_a_debit_at_or_above_the_width_is_skipped():
    calls = {**CALLS, 95.0: replace(CALLS[95.0], ask=25.0)}
    candidates, skips = _build(_chain(_rows(calls, PUTS)))
    assert ("call_fly", 95.0, 100.0, 105.0) not in _triples(candidates)
    assert len(candidates) == 5
    assert _skip_count(skips, "AAA", TOO_DEAR) == 1

    # A natural debit of exactly the width: 9.70 - 2 x 2.90 + 1.10 = 5.00.
    exact = {**CALLS, 95.0: replace(CALLS[95.0], ask=9.70)}
    candidates, skips = _build(_chain(_rows(exact, PUTS)))
    assert ("call_fly", 95.0, 100.0, 105.0) not in _triples(candidates)
    assert _skip_count(skips, "AAA", TOO_DEAR) == 1


def test_an_iron_fly_credit_at_or_above_the_width_is_not_built():
    # Centre quotes so rich that the credit expected to fill is 5.00 on a 5-wide fly (mid
    # 7.08 - 2.05 = 5.03, natural 7.06 - 2.15 = 4.91, a quarter of the way: 5.00): as much
    # as the fly can ever lose, an impossible price even though the 0.026 fee keeps
    # max_loss > 0.
    calls = {**CALLS, 100.0: replace(CALLS[100.0], bid=3.53, ask=3.55)}
    puts = {**PUTS, 100.0: replace(PUTS[100.0], bid=3.53, ask=3.55)}
    credit_mid = puts[100.0].mid + calls[100.0].mid - PUTS[95.0].mid - CALLS[105.0].mid
    natural = puts[100.0].bid + calls[100.0].bid - PUTS[95.0].ask - CALLS[105.0].ask
    credit = credit_mid - 0.25 * (credit_mid - natural)
    assert credit == pytest.approx(5.00)
    assert 5.0 <= credit + 1e-9 < 5.0 + FEE
    candidates, skips = _build(_chain(_rows(calls, puts)))
    assert ("iron_fly", 95.0, 100.0, 105.0) not in _triples(candidates)
    assert _skip_count(skips, "AAA", "impossible price: credit at or above the width") == 1


def test_a_ticker_without_an_expiry_in_the_window():
    calls, puts = _bs_quotes([95.0, 100.0, 105.0], 100.0, dte=90)
    chain = _chain(_rows(CALLS, PUTS), _rows(calls, puts, symbol="FAR", dte=90))
    candidates, skips = _build(chain)
    assert set(candidates["symbol"]) == {"AAA"}
    assert _skip_count(skips, "FAR", NO_EXPIRY) == 1
    assert skips.loc[skips["symbol"] == "FAR", "detail"].iloc[0] == "7-60 days"

    near_calls, near_puts = _bs_quotes([95.0, 100.0, 105.0], 100.0, dte=3)
    only_out, skips = build_candidates(_chain(_rows(near_calls, near_puts, dte=3)), SESSION)
    assert only_out.empty
    assert _skip_count(skips, "AAA", NO_EXPIRY) == 1


def test_only_the_expiries_in_the_window_are_used():
    far_calls, far_puts = _bs_quotes(list(CALLS), 100.0, dte=90)
    chain = _chain(_rows(CALLS, PUTS), _rows(far_calls, far_puts, dte=90))
    candidates, skips = _build(chain)
    assert (candidates["dte"] == 30).all()
    assert len(candidates) == 6
    assert skips.empty


def test_a_ticker_whose_every_candidate_fails_is_illiquid():
    dead_calls = {k: replace(q, bid=0.0) for k, q in CALLS.items()}
    dead_puts = {k: replace(q, bid=0.0) for k, q in PUTS.items()}
    chain = _chain(_rows(CALLS, PUTS), _rows(dead_calls, dead_puts, symbol="DEAD"))
    candidates, skips = _build(chain)
    assert "DEAD" not in set(candidates["symbol"])
    assert _skip_count(skips, "DEAD", ZERO_BID) == 6
    assert _skip_count(skips, "DEAD", ILLIQUID) == 0
    assert not (skips["symbol"] == "AAA").any()

    alone, skips = build_candidates(_chain(_rows(dead_calls, dead_puts, symbol="DEAD")), SESSION)
    assert alone.empty
    assert set(skips["reason"]) == {ZERO_BID, ILLIQUID}


def test_one_bad_ticker_does_not_affect_another():
    good = _rows(CALLS, PUTS)
    alone, alone_skips = _build(_chain(good))
    dead = {k: replace(q, bid=0.0) for k, q in CALLS.items()}
    far_calls, far_puts = _bs_quotes(list(CALLS), 100.0, dte=90)
    chain = _chain(
        _rows(dead, PUTS, symbol="BAD"),
        good,
        _rows(far_calls, far_puts, symbol="FAR", dte=90),
        _rows({k: q for k, q in CALLS.items() if k != 105.0}, PUTS, symbol="GAP", spot=101.0),
    )
    mixed, skips = _build(chain)
    pd.testing.assert_frame_equal(
        mixed[mixed["symbol"] == "AAA"].reset_index(drop=True), alone.reset_index(drop=True)
    )
    assert alone_skips.empty
    assert not (skips["symbol"] == "AAA").any()
    assert {"BAD", "FAR", "GAP"} <= set(skips["symbol"])


def test_an_empty_window_returns_empty_frames():
    calls, puts = _bs_quotes([95.0, 100.0, 105.0], 100.0, dte=120)
    candidates, skips = build_candidates(_chain(_rows(calls, puts, dte=120)), SESSION)
    assert candidates.empty
    assert list(skips.columns) == ["symbol", "reason", "detail", "count"]
    assert list(skips["reason"]) == [NO_EXPIRY]


# ---------------------------------------------------------------------- invariants
def test_the_invariants_are_not_vacuous():
    chain = _chain(_rows(CALLS, PUTS))
    candidates, _ = _build(chain)
    tampered = candidates.copy()
    tampered.loc[0, "upper"] = 107.5  # not a listed strike
    tampered.loc[1, "max_loss"] = 0.0
    report = QualityReport(CANDIDATE_RULES, QualityPolicy())
    report.check(tampered, SESSION, expected=[], listed=listed_strikes(chain))
    assert {o.rule for o in report.failures()} >= {"legs_listed", "max_loss_positive"}


@st.composite
def _random_chain(draw):
    """A ladder drawn from a 2.5 grid and arbitrary (uncrossed) quotes, some one-sided."""
    grid = [80.0 + 2.5 * i for i in range(17)]  # 80 .. 120
    strikes = sorted(draw(st.sets(st.sampled_from(grid), min_size=1, max_size=len(grid))))
    sides = {}
    for right in ("C", "P"):
        side = {}
        for k in strikes:
            if draw(st.integers(0, 9)) == 0:
                continue  # this side of the strike is not listed
            bid = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0, 2.5, 4.0, 6.0, 10.0, 20.0]))
            spread = draw(st.sampled_from([0.0, 0.01, 0.05, 0.25, 1.0]))
            side[k] = Q(
                bid, bid + spread if bid + spread > 0 else 0.01, 0.5 if right == "C" else -0.5
            )
        sides[right] = side
    return strikes, sides["C"], sides["P"]


def _symmetric_triples(strikes, spot=100.0, band=0.10, max_steps=3):
    out = set()
    for i, centre in enumerate(strikes):
        if abs(centre / spot - 1.0) > band + 1e-12:  # the band is inclusive
            continue
        for w in range(1, max_steps + 1):
            if i - w < 0 or i + w >= len(strikes):
                continue
            lo, hi = strikes[i - w], strikes[i + w]
            if abs((centre - lo) - (hi - centre)) < 1e-9:
                out.add((lo, centre, hi, w))
    return out


@settings(max_examples=150, deadline=None)
@given(_random_chain())
def test_random_chains_only_build_valid_symmetric_listed_candidates(drawn):
    _strikes, calls, puts = drawn
    if not calls and not puts:
        return
    listed = sorted(set(calls) | set(puts))
    chain = _chain(_rows(calls, puts))
    candidates, skips = _build(chain)  # asserts CANDIDATE_RULES
    expected = _symmetric_triples(listed)
    considered = len(expected) * len(STRUCTURES)
    built = 0 if candidates.empty else len(candidates)
    not_built = int(skips.loc[~skips["reason"].isin([ILLIQUID, NO_EXPIRY]), "count"].sum())
    assert built + not_built == considered
    if candidates.empty:
        assert _skip_count(skips, "AAA", ILLIQUID) == 0
        return
    got = set(
        zip(
            candidates["lower"],
            candidates["center"],
            candidates["upper"],
            candidates["width_steps"],
            strict=True,
        )
    )
    assert got <= expected
    np.testing.assert_allclose(
        candidates["center"] - candidates["lower"], candidates["upper"] - candidates["center"]
    )
    np.testing.assert_allclose(candidates["cost"], candidates["debit_fill"] + FEE)
    # The expected fill lies between the mid and the natural price, on the cent.
    assert (candidates["debit_fill"] >= candidates["debit_mid"] - 1e-9).all()
    assert (candidates["debit_fill"] <= candidates["debit_natural"] + 1e-9).all()
    np.testing.assert_allclose(
        candidates["debit_fill"] * 100, np.round(candidates["debit_fill"] * 100), atol=1e-6
    )
    assert (candidates["max_profit"] > 0).all()
    assert (candidates["max_loss"] > 0).all()
    assert (candidates["debit_natural"] >= candidates["debit_mid"] - 1e-9).all()
    credit = candidates["is_credit"]
    assert (-candidates.loc[credit, "debit_natural"] < candidates.loc[credit, "width"]).all()
    assert (candidates.loc[~credit, "cost"] < candidates.loc[~credit, "width"]).all()
