"""Portfolio rules on hand-made positions and rankings: exits, entries, sizing, tracks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from butterquant_dagster.core.brokers.base import BUY, SELL
from butterquant_dagster.core.trading.combos import combo_quote, legs_of, limit_price, structure_of
from butterquant_dagster.core.trading.portfolio import (
    exit_reasons,
    mark_positions,
    plan_session,
)
from butterquant_dagster.core.trading.rules import PortfolioRules
from butterquant_dagster_tests.core.trading.chains import (
    EXPIRY,
    NEXT,
    SESSION,
    make_chain,
    make_rankings,
)

RULES = PortfolioRules()


def marked(**overrides) -> pd.DataFrame:
    row = {
        "position_id": "p1",
        "ticker": "AAA",
        "structure": "call_fly",
        "track": "ai",
        "expiry": pd.Timestamp(EXPIRY),
        "lower": 95.0,
        "center": 100.0,
        "upper": 105.0,
        "width": 5.0,
        "quantity": 2,
        "entry_price": 2.00,
        "max_profit": 3.00,
        "max_loss": 2.00,
        "risk_level": "MEDIUM",
        "iv_center_entry": 0.30,
        "iv_center": 0.30,
        "mark": 2.00,
        "pnl_per_share": 0.0,
        "marked": True,
        "at_expiry": False,
        "dte": 30,
        "model_version": "v1",
        "ml_success_prob": 0.5,
    }
    row.update(overrides)
    row["pnl_per_share"] = row["mark"] - row["entry_price"]
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, ""),
        ({"mark": 2.00 - 0.80}, "stop_loss"),  # MEDIUM: -40 % of the 2.00 max loss
        ({"mark": 2.00 - 0.79}, ""),
        ({"mark": 2.00 + 1.80}, "take_profit"),  # MEDIUM: 60 % of the 3.00 max profit
        ({"mark": 2.00 + 1.79}, ""),
        ({"risk_level": "LOW", "mark": 2.00 - 1.00}, "stop_loss"),  # LOW: -50 %
        ({"risk_level": "LOW", "mark": 2.00 - 0.99}, ""),
        ({"risk_level": "HIGH", "mark": 2.00 + 1.50}, "take_profit"),  # HIGH: 50 %
        ({"risk_level": "LOW", "mark": 2.00 + 2.09}, ""),  # LOW needs 70 %
        ({"iv_center": 0.39}, "vol_stop"),  # +30 %
        ({"iv_center": 0.389}, ""),
        ({"dte": 6}, "time_stop"),
        ({"dte": 7}, ""),
        ({"at_expiry": True, "dte": 0, "mark": 0.0}, "expiry"),
        ({"dte": 3, "mark": 0.5}, "stop_loss"),  # stop-loss outranks the time stop
        ({"dte": 3, "iv_center": 0.5, "mark": 4.0}, "take_profit"),
        ({"dte": 3, "marked": False, "mark": np.nan}, "time_stop"),
    ],
)
def test_exit_rules_and_their_precedence(overrides, reason):
    assert exit_reasons(marked(**overrides), RULES).iloc[0] == reason


def test_an_iron_fly_stop_is_measured_on_its_max_loss_not_its_credit():
    # credit 3.00 on a 5-wide fly: max loss 2.00, max profit 3.00 (per share)
    base = {"structure": "iron_fly", "entry_price": -3.00, "max_loss": 2.00, "max_profit": 3.00}
    assert exit_reasons(marked(**base, mark=-3.79), RULES).iloc[0] == ""
    assert exit_reasons(marked(**base, mark=-3.80), RULES).iloc[0] == "stop_loss"
    assert exit_reasons(marked(**base, mark=-1.20), RULES).iloc[0] == "take_profit"


def test_marks_come_from_the_legs_and_expiry_settles_at_intrinsic():
    chain = make_chain(SESSION, {"AAA": 101.0})
    held = marked().drop(columns=["mark", "pnl_per_share", "marked", "at_expiry", "dte"])
    today = mark_positions(held, chain, SESSION).iloc[0]
    quote = combo_quote(chain, legs_of("AAA", "call_fly", EXPIRY, 95.0, 100.0, 105.0))
    assert today["mark"] == pytest.approx(quote["mid"])
    assert today["unrealized_pnl"] == pytest.approx((quote["mid"] - 2.0) * 2 * 100)
    at_expiry = mark_positions(held, make_chain(EXPIRY, {"AAA": 101.0}), EXPIRY).iloc[0]
    assert bool(at_expiry["at_expiry"])
    assert at_expiry["mark"] == pytest.approx(4.0)  # 5 - |101 - 100|


def test_limit_prices_are_on_the_tick_towards_a_fill_and_inside_the_natural_bounds():
    assert limit_price(BUY, 1.234, 1.00, 1.50, 0.25) == pytest.approx(1.31)  # 1.3005 up
    assert limit_price(SELL, 1.234, 1.00, 1.50, 0.25) == pytest.approx(1.17)  # 1.1755 down
    assert limit_price(BUY, 1.234, 1.00, 1.50, 0.0) == pytest.approx(1.24)
    assert limit_price(BUY, -2.345, -2.50, -2.20, 0.25) == pytest.approx(-2.30)  # a credit
    assert limit_price(BUY, 1.495, 1.40, 1.497, 1.0) == pytest.approx(1.49)  # capped at natural


def test_legs_of_each_structure_and_back():
    iron = legs_of("AAA", "iron_fly", EXPIRY, 95, 100, 105)
    assert [(leg.right, leg.strike, leg.action, leg.ratio) for leg in iron] == [
        ("P", 95.0, BUY, 1),
        ("P", 100.0, SELL, 1),
        ("C", 100.0, SELL, 1),
        ("C", 105.0, BUY, 1),
    ]
    call = legs_of("AAA", "call_fly", EXPIRY, 95, 100, 105)
    assert [leg.signed_ratio for leg in call] == [1, -2, 1]
    for name in ("call_fly", "put_fly", "iron_fly"):
        assert structure_of(legs_of("AAA", name, EXPIRY, 95, 100, 105)) == name
    with pytest.raises(ValueError, match="unknown structure"):
        legs_of("AAA", "condor", EXPIRY, 95, 100, 105)


SPOTS = {f"T{i}": 100.0 for i in range(12)}


def plan(rankings, held=None, rules=RULES, sectors=None, chain=None):
    chain = chain if chain is not None else make_chain(SESSION, SPOTS)
    held = held if held is not None else pd.DataFrame(columns=marked().columns)
    sectors = sectors or dict.fromkeys(SPOTS, "Tech")
    targets, _, passed = plan_session(NEXT, held, chain, rankings, rankings, sectors, rules)
    return targets, passed


def picks(n, **extra):
    return [
        {"ticker": f"T{i}", "lower": 95.0, "center": 100.0, "upper": 105.0, **extra}
        for i in range(n)
    ]


def test_entries_fill_each_tracks_slots_once_per_ticker_and_respect_the_sector_cap():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, picks(12))
    rules = PortfolioRules(max_positions=6, ai_track_slots=3, max_sector_positions=10)
    targets, _ = plan(rankings, rules=rules, chain=chain)
    assert len(targets) == 6
    assert targets["ticker"].is_unique
    assert targets.groupby("track").size().to_dict() == {"ai": 3, "baseline": 3}
    # the tracks take turns: the AI track's first choice, then the baseline's, ...
    assert list(targets["track"]) == ["ai", "baseline"] * 3
    capped = PortfolioRules(max_positions=6, ai_track_slots=3, max_sector_positions=4)
    targets, _ = plan(rankings, rules=capped, chain=chain)
    assert len(targets) == 4


def test_sizing_is_the_allocation_over_one_contracts_risk():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, picks(1))
    risk = rankings["capital_at_risk"].iloc[0]
    targets, _ = plan(rankings, rules=PortfolioRules(allocation=1000.0), chain=chain)
    assert (targets["quantity"] == int(1000.0 // risk)).all()
    targets, passed = plan(rankings, rules=PortfolioRules(allocation=risk * 0.99), chain=chain)
    assert targets.empty
    assert passed["ai"] == {"one contract risks more than the allocation": 1}


def test_floors_keep_out_thin_or_unpromising_candidates():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(
        SESSION,
        chain,
        [
            {**picks(1)[0], "ticker": "T0", "spread_pct": 0.5},
            {**picks(1)[0], "ticker": "T1", "min_open_interest": 10},
            {**picks(1)[0], "ticker": "T2", "ml_success_prob": 0.1},
            {**picks(1)[0], "ticker": "T3", "ml_expected_roi": -0.9, "ev_per_1000": -900},
        ],
    )
    targets, passed = plan(rankings, chain=chain)
    # the rule track has no probability floor: only T2 passes there
    assert targets[["track", "ticker"]].values.tolist() == [["baseline", "T2"]]
    assert passed["baseline"] == {
        "spread too wide": 1,
        "open interest too low": 1,
        "expected yield below floor": 1,
    }
    assert passed["ai"] == {
        "spread too wide": 1,
        "open interest too low": 1,
        "success probability below floor": 1,
        "expected yield below floor": 1,
    }


def test_no_model_means_the_ai_track_sits_out():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, picks(4), model=False)
    targets, passed = plan(rankings, rules=PortfolioRules(max_positions=4, ai_track_slots=2))
    assert set(targets["track"]) == {"baseline"}
    assert passed["ai"] == {"no P(win) champion that passed its gates": 4}


def test_held_tickers_and_full_slots_take_no_new_entry_and_exits_come_first():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, picks(4))
    held = marked(ticker="T0", position_id="p0", track="ai", entry_price=0.95, max_loss=0.95)
    held = held.drop(columns=["mark", "pnl_per_share", "marked", "at_expiry", "dte", "iv_center"])
    rules = PortfolioRules(max_positions=2, ai_track_slots=1)
    targets, _ = plan(rankings, held=held, rules=rules, chain=chain)
    assert list(targets["intent"]) == ["open"]
    assert targets["track"].tolist() == ["baseline"] and "T0" not in set(targets["ticker"])
    # a stop on the held position: its close comes first and frees the AI slot
    losing = held.assign(entry_price=50.0, max_loss=50.0)
    targets, _ = plan(rankings, held=losing, rules=rules, chain=chain)
    assert targets["intent"].tolist()[0] == "close"
    assert targets["reason"].iloc[0].startswith("stop_loss")
    assert targets["action"].iloc[0] == SELL
    assert (targets["intent"] == "open").sum() == 2


def test_the_same_inputs_plan_the_same_orders():
    chain = make_chain(SESSION, SPOTS)
    rankings = make_rankings(SESSION, chain, picks(8))
    first, _ = plan(rankings, chain=chain)
    second, _ = plan(rankings.sample(frac=1.0, random_state=3), chain=chain)
    assert first["order_ref"].tolist() == second["order_ref"].tolist()
    nothing_held = pd.DataFrame(columns=marked().columns)
    later, _ = plan_session(
        dt.date(2026, 3, 4), nothing_held, chain, rankings, rankings, {}, RULES
    )[0:2]
    assert not set(later["order_ref"]) & set(first["order_ref"])
