"""The signals backtest on a five-session price path with known decisions, every fill,
fee and slippage worked out by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.backtest.signals import SignalsInputError, StockCosts, run_signals

SESSIONS = calendar.sessions(dt.date(2025, 3, 3), dt.date(2025, 3, 7))  # Monday..Friday
#          session:     0      1      2      3      4
PRICES = {
    "AAA": {"open": [50.0, 51.0, 53.0, 55.0, 52.0], "close": [50.0, 52.0, 54.0, 53.0, 50.0]},
    "BBB": {"open": [20.0, 20.0, 22.0, 21.0, 19.0], "close": [20.0, 21.0, 22.0, 20.0, 18.0]},
}
DECISIONS = [  # (session index, symbol, action, confidence)
    (0, "AAA", "buy", 0.8),
    (0, "BBB", "hold", 0.5),
    (1, "AAA", "hold", 0.5),
    (1, "BBB", "buy", 0.7),
    (2, "AAA", "sell", 0.6),
    (3, "AAA", "hold", 0.5),
    (3, "BBB", "hold", 0.5),
    (4, "AAA", "buy", 0.9),  # the last session: no next open, never traded
]
COSTS = StockCosts(per_share=0.005, minimum=1.00, max_share_of_value=0.01, slippage_bps=10.0)


def bars() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "session": pd.Timestamp(day),
                "symbol": symbol,
                "open": prices["open"][i],
                "close": prices["close"][i],
            }
            for symbol, prices in PRICES.items()
            for i, day in enumerate(SESSIONS)
        ]
    )


def decisions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"session": pd.Timestamp(SESSIONS[i]), "symbol": s, "action": a, "confidence": c}
            for i, s, a, c in DECISIONS
        ]
    )


@pytest.fixture(scope="module")
def result():
    return run_signals(decisions(), bars(), SESSIONS, initial_capital=10_000.0, costs=COSTS)


def test_fills_follow_the_decisions_at_the_next_open_with_costs(result):
    fills = result.fills
    got = list(
        zip(
            fills["session"],
            fills["decided_on"],
            fills["symbol"],
            fills["side"],
            fills["shares"],
            strict=True,
        )
    )
    s = SESSIONS
    assert got == [
        # buy AAA decided on session 0 fills at session 1's open: 195 shares, not the 196
        # the 10,000 would buy at 51, because slippage lifts the price to 51.051
        (s[1], s[0], "AAA", "buy", 195),
        # BBB joins: the book is rebalanced to half each at session 2's open
        (s[2], s[1], "AAA", "sell", 98),
        (s[2], s[1], "BBB", "buy", 235),
        # AAA sold: everything into BBB at session 3's open
        (s[3], s[2], "AAA", "sell", 97),
        (s[3], s[2], "BBB", "buy", 256),
    ]
    assert fills["price"].tolist() == pytest.approx([51.051, 52.947, 22.022, 54.945, 21.021])
    # $0.005 a share with a $1 minimum: only the 235- and 256-share BBB buys pay more.
    assert fills["commission"].tolist() == pytest.approx([1.0, 1.0, 1.175, 1.0, 1.28])


def test_equity_and_final_value_match_the_hand_computation(result):
    # session 1: cash 10,000 - 195 x 51.051 - 1 = 44.055, plus 195 x 52
    # session 2: sell 98 x 52.947, buy 235 x 22.022: cash 55.516 + 97 x 54 + 235 x 22
    # session 3: sell 97 x 54.945, buy 256 x 21.021: cash 1.525 + 491 x 20
    # session 4: holds, 491 x 18
    expected = [10_000.0, 10_184.055, 10_463.516, 9_821.525, 8_839.525]
    assert result.equity["equity"].tolist() == pytest.approx(expected)
    assert result.equity["exposed"].tolist() == [False, True, True, True, True]
    assert result.metrics["total_return"] == pytest.approx(8_839.525 / 10_000 - 1)


def test_round_trips_count_as_trades(result):
    # AAA: bought 195 at 51.051, sold 98 at 52.947 and 97 at 54.945, three $1 fees
    (trade,) = result.trades.to_dict(orient="records")
    assert trade["symbol"] == "AAA"
    assert trade["pnl"] == pytest.approx(98 * 52.947 + 97 * 54.945 - 195 * 51.051 - 3.0)
    assert result.metrics["trades"] == 1
    assert result.metrics["win_rate_of_trades"] == 1.0
    assert result.metrics["profit_factor"] is None  # no losing trade
    # Sessions 1 and 2 rose, 3 and 4 fell; all four were active.
    assert result.metrics["win_rate_of_days"] == pytest.approx(0.5)
    assert any("still open" in note for note in result.notes)  # BBB
    assert any("not traded" in note for note in result.notes)  # the last session's buy


def test_the_benchmark_buys_both_at_the_first_open_and_holds(result):
    # 5,000 each at session 1's open with slippage: 97 AAA at 51.051 ($1 fee) and 249 BBB
    # at 20.02 ($1.245 fee), leaving 60.828 in cash.
    cash = 10_000.0 - 97 * 51.051 - 1.0 - 249 * 20.02 - 1.245
    closes = [(52, 21), (54, 22), (53, 20), (50, 18)]
    expected = [10_000.0] + [cash + 97 * a + 249 * b for a, b in closes]
    assert result.equity["benchmark"].tolist() == pytest.approx(expected)
    assert result.metrics["benchmark_total_return"] == pytest.approx(expected[-1] / 10_000 - 1)
    assert result.metrics["benchmark_max_drawdown"] == pytest.approx(1 - expected[-1] / expected[2])


def test_low_confidence_decisions_are_held():
    quiet = run_signals(
        decisions(), bars(), SESSIONS, initial_capital=10_000.0, costs=COSTS, min_confidence=0.95
    )
    assert quiet.fills.empty
    assert quiet.equity["equity"].tolist() == [10_000.0] * 5
    assert quiet.metrics["win_rate_of_days"] is None
    assert quiet.metrics["trades"] == 0


def test_an_empty_window_gives_not_enough_data():
    empty = run_signals(decisions().iloc[:0], bars().iloc[:0], [], costs=COSTS)
    assert empty.equity.empty and empty.trades.empty
    assert all(value is None for name, value in empty.metrics.items() if name != "trades")


def test_unknown_actions_are_refused():
    wrong = decisions().assign(action="short")
    with pytest.raises(SignalsInputError, match="unknown action"):
        run_signals(wrong, bars(), SESSIONS)


def test_the_commission_is_ib_like():
    costs = StockCosts()
    assert costs.commission(100, 50.0) == pytest.approx(1.00)  # minimum
    assert costs.commission(1_000, 50.0) == pytest.approx(5.00)  # per share
    assert costs.commission(10, 5.0) == pytest.approx(0.50)  # at most 1 % of 50
    assert costs.commission(0, 50.0) == 0.0


def test_each_fill_names_the_decision_or_the_rebalance_behind_it(result):
    assert result.fills["reason"].tolist() == [
        "buy (confidence 0.80)",
        "rebalance to equal weight",  # AAA trimmed to make room for BBB
        "buy (confidence 0.70)",
        "sell (confidence 0.60)",
        "rebalance to equal weight",  # BBB takes the whole book
    ]
