"""The account's figures (core.trading.account) on hand-computed money: value, cash,
realized and unrealized P/L, drawdown, and what is said when a figure cannot be known."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from butterquant_dagster.core.trading.account import (
    CLOSED_SINCE,
    HELD,
    OPENED_SINCE,
    account_view,
    dollars,
    equity_curve,
    position_marks,
    signed_dollars,
)
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.core.trading import accounts
from butterquant_dagster_tests.core.trading.accounts import D1, D2, D3, D4, FEE, INITIAL, SPOTS


@pytest.fixture
def account(tmp_path) -> accounts.Account:
    return accounts.build(tmp_path / "ledger.duckdb")


def _value(session, tickers_and_quantities) -> float:
    return sum(
        accounts.mid(session, SPOTS[session], ticker) * quantity * 100
        for ticker, quantity in tickers_and_quantities
    )


def test_the_latest_close_adds_up_to_the_cent(account):
    view = account_view(account.ledger)
    assert view.as_of == D3
    paid = 3 * 150 + 2 * 200 + 2 * FEE  # D1
    received = 3 * 210 - FEE  # D2
    cash = INITIAL - paid + received - (100 + 1.30)  # D3
    assert view.cash == pytest.approx(cash, abs=1e-9)
    value = _value(D3, [("BBB", 2), ("BBB", 1)])
    assert view.positions_value == pytest.approx(value, abs=1e-9)
    assert view.account_value == pytest.approx(cash + value, abs=1e-9)
    assert view.realized_pnl == pytest.approx(account.realized, abs=1e-9)
    assert view.realized_pnl == pytest.approx(3 * 60 - 2 * FEE)
    assert view.unrealized_pnl == pytest.approx(value + sum(account.cost.values()), abs=1e-9)
    assert view.total_pnl == pytest.approx(view.account_value - INITIAL, abs=1e-9)
    assert view.total_pnl == pytest.approx(view.realized_pnl + view.unrealized_pnl, abs=1e-9)
    assert view.open_positions == 2 and view.closed_trades == 1
    assert view.capital_at_risk == pytest.approx(2.0 * 3 * 100)
    assert view.cash_now == view.cash and view.notes == ()


def test_the_view_is_the_close_the_ledger_recorded(account):
    """The equity row close_session wrote is the account value, to the cent."""
    equity = account.ledger.equity().set_index("session")
    for session in (D1, D2, D3):
        view = account_view(account.ledger, session)
        row = equity.loc[pd.Timestamp(session)]
        assert view.as_of == session
        assert round(view.account_value, 2) == round(row["equity"], 2)
        assert round(view.cash, 2) == round(row["cash"], 2)
        assert round(view.positions_value, 2) == round(row["positions_value"], 2)


def test_an_earlier_session_counts_only_what_was_known_at_its_close(account):
    first = account_view(account.ledger, D1)
    assert first.realized_pnl == 0.0 and first.closed_trades == 0
    value = _value(D1, [("AAA", 3), ("BBB", 2)])
    assert first.unrealized_pnl == pytest.approx(value - 850 - 2 * FEE, abs=1e-9)
    second = account_view(account.ledger, D2)
    assert second.realized_pnl == pytest.approx(account.realized, abs=1e-9)
    assert second.open_positions == 1
    assert second.notes == ()  # D3's events come later and are not "after" D2's figures


def test_drawdown_starts_from_the_opening_capital(account):
    curve = equity_curve(account.ledger)
    assert curve["session"].dt.date.tolist()[1:] == [D1, D2, D3]
    assert curve["equity"].iloc[0] == INITIAL and curve["cash"].iloc[0] == INITIAL
    values = [INITIAL, *curve["equity"].iloc[1:]]
    peaks = pd.Series(values).cummax()
    expected = float(((peaks - pd.Series(values)) / peaks).max())
    view = account_view(account.ledger)
    assert view.max_drawdown == pytest.approx(expected)
    assert view.max_drawdown > 0  # the D1 fees alone drop the account below its opening
    # A drop on the first marked session counts: the curve without the opening row misses it.
    first = account_view(account.ledger, D1)
    assert first.max_drawdown == pytest.approx(1 - first.account_value / INITIAL)


def test_a_session_not_marked_yet_is_said(account):
    accounts.fill(account.ledger, "open-d", "AAA", D4, "open", 2, 1.20)
    view = account_view(account.ledger, D4)
    assert view.as_of == D3
    assert view.account_value == account_view(account.ledger, D3).account_value
    assert view.cash_now == pytest.approx(view.cash - 240 - FEE)
    assert any(f"last marked at the close of {D3}, not {D4}" in n for n in view.notes)
    assert any(f"1 ledger event(s) after the close of {D3}" in n for n in view.notes)
    latest = account_view(account.ledger)  # the latest close, with the same note
    assert latest.as_of == D3
    assert any("1 ledger event(s) after" in n for n in latest.notes)


def test_a_fill_recorded_after_its_session_was_marked_is_flagged(account):
    accounts.fill(account.ledger, "late", "AAA", D3, "open", 1, 1.00)
    view = account_view(account.ledger, D3)
    assert any(
        f"the ledger's cash through {D3} is" in n and "run the positions step" in n
        for n in view.notes
    )
    accounts.mark(account.ledger, D3, SPOTS[D3])  # re-marking makes it whole again
    again = account_view(account.ledger, D3)
    assert again.notes == ()
    assert again.open_positions == 3
    assert again.total_pnl == pytest.approx(again.realized_pnl + again.unrealized_pnl)


def test_an_empty_ledger_is_worth_its_opening_cash(tmp_path):
    view = account_view(Ledger(tmp_path / "l.duckdb", initial_capital=50_000.0))
    assert view.as_of is None
    assert view.cash == view.account_value == 50_000.0
    assert view.positions_value == 0.0
    assert view.total_pnl == view.realized_pnl == view.unrealized_pnl == 0.0
    assert view.max_drawdown is None and view.notes == ()


def test_positions_never_marked_have_no_value_and_say_so(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb", initial_capital=INITIAL)
    accounts.fill(ledger, "open-a", "AAA", D1, "open", 3, 1.50)
    view = account_view(ledger)
    assert view.as_of is None and view.open_positions == 1
    assert view.cash == pytest.approx(INITIAL - 450 - FEE)
    assert view.account_value is None and view.unrealized_pnl is None
    assert view.total_pnl is None and view.positions_value is None
    assert "1 open position(s) never marked" in view.notes[0]
    assert "not enough data" in view.lines()[0]


def test_held_positions_add_up_to_the_unrealized_pnl(account):
    view = account_view(account.ledger)
    rows = position_marks(account.ledger, view)
    assert rows["status"].tolist() == [HELD, HELD]
    assert rows["position_id"].tolist() == ["open-b", "open-c"]
    assert rows["quantity"].tolist() == [2, 1]
    mid = accounts.mid(D3, SPOTS[D3], "BBB")
    expected = [mid * 200 + account.cost["open-b"], mid * 100 + account.cost["open-c"]]
    assert rows["unrealized_pnl"].tolist() == pytest.approx(expected, abs=1e-9)
    assert round(rows["unrealized_pnl"].sum(), 2) == round(view.unrealized_pnl, 2)


def test_positions_opened_or_closed_after_the_close_are_listed_with_their_status(account):
    accounts.fill(account.ledger, "open-d", "AAA", D4, "open", 2, 1.20)
    accounts.fill(account.ledger, "close-b", "BBB", D4, "close", 2, 2.50, position="open-b")
    view = account_view(account.ledger)
    rows = position_marks(account.ledger, view).set_index("position_id")
    assert rows.loc["open-b", "status"] == CLOSED_SINCE
    assert rows.loc["open-c", "status"] == HELD
    assert rows.loc["open-d", "status"] == OPENED_SINCE
    assert pd.isna(rows.loc["open-d", "unrealized_pnl"]) and pd.isna(rows.loc["open-d", "mark"])
    held = rows.loc[rows["status"] != OPENED_SINCE, "unrealized_pnl"].sum()
    assert round(held, 2) == round(view.unrealized_pnl, 2)


def test_to_dict_is_plain_json(account):
    view = account_view(account.ledger)
    data = json.loads(json.dumps(view.to_dict()))
    assert data["as_of"] == D3.isoformat()
    assert set(data) == {f.name for f in dataclasses.fields(view)}
    assert data["account_value"] == view.account_value


def test_the_lines_name_each_figure(account):
    view = account_view(account.ledger)
    text = "\n".join(view.lines())
    assert f"account at the close of {D3}: value {dollars(view.account_value)}" in text
    assert f"realized {signed_dollars(view.realized_pnl)} (closed trades)" in text
    assert f"unrealized {signed_dollars(view.unrealized_pnl)} (open positions)" in text
    assert f"total {signed_dollars(view.total_pnl)}" in text
    assert f"max drawdown {view.max_drawdown:.2%}" in text


@pytest.mark.parametrize(
    ("value", "plain", "signed"),
    [
        (-8424.904, "-$8,424.90", "-$8,424.90"),
        (1234.5, "$1,234.50", "+$1,234.50"),
        (0.0, "$0.00", "+$0.00"),
        (None, "not enough data", "not enough data"),
        (float("nan"), "not enough data", "not enough data"),
    ],
)
def test_dollars_print_like_the_reports(value, plain, signed):
    from butterquant_dagster.core.monitoring.html import format_value

    assert dollars(value) == plain
    assert signed_dollars(value) == signed
    if value is not None:
        assert dollars(value) == format_value(value, "dollars")
