"""One account, one answer: `butterquant positions`, `butterquant journal` and the daily,
weekly and monthly reports (their inputs, their Dagster key figures and the HTML page) show
the same account value, cash, realized, unrealized and total P/L and drawdown, to the cent,
on the same session - all from core.trading.account."""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest

from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.core.monitoring import report_inputs, reports
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.account import account_view, dollars, signed_dollars
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.core.trading import accounts
from butterquant_dagster_tests.core.trading.accounts import D3

NOW = dt.datetime(2026, 3, 5, 22, 30, tzinfo=dt.UTC)
FIGURES = ("account_value", "cash", "positions_value", "realized_pnl", "unrealized_pnl")


def cents(value: float) -> int:
    return round(value * 100)


@pytest.fixture
def root(isolated_env, tmp_path, monkeypatch):
    """A data root whose ledger holds three marked sessions of trades (no ./.env around)."""
    monkeypatch.chdir(tmp_path)
    accounts.build(isolated_env / "ledger.duckdb")
    return isolated_env


def _json(argv, capsys) -> dict:
    assert main(argv) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def _text(argv, capsys) -> str:
    assert main(argv) == EXIT_OK
    return capsys.readouterr().out


def _visible(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.split("</style>", 1)[1]))


def _context(root) -> report_inputs.ReportContext:
    return report_inputs.ReportContext(
        store=Lake(root), ledger=Ledger(root / "ledger.duckdb"), champion=None, now=NOW
    )


def test_positions_journal_and_reports_agree_to_the_cent(root, capsys):
    ledger = Ledger(root / "ledger.duckdb")
    truth = account_view(ledger, D3)
    assert truth.as_of == D3 and truth.closed_trades == 1 and truth.open_positions == 2
    assert truth.realized_pnl != 0 and truth.unrealized_pnl != 0  # both parts are exercised
    expected = {name: cents(getattr(truth, name)) for name in FIGURES}
    expected["total_pnl"] = cents(truth.total_pnl)

    positions = _json(["positions", "--json"], capsys)
    journal = _json(["journal", "--json"], capsys)
    for source in (positions["account"], journal["account"]):
        assert source["as_of"] == D3.isoformat()
        assert {name: cents(source[name]) for name in expected} == expected
        assert source["max_drawdown"] == pytest.approx(truth.max_drawdown)
    assert cents(positions["cash"]) == expected["cash"]
    assert cents(positions["equity"]) == cents(journal["equity"]) == expected["account_value"]
    assert journal["max_drawdown"] == pytest.approx(truth.max_drawdown)
    assert cents(journal["realized_pnl"]) == expected["realized_pnl"]  # all closed by D3
    held = [p for p in positions["positions"] if p["status"] == "held"]
    assert cents(sum(p["unrealized_pnl"] for p in held)) == expected["unrealized_pnl"]

    daily = report_inputs.daily_inputs(_context(root), D3, health=pd.DataFrame(), run_failures=None)
    to_date = daily.performance.figures
    assert {
        "account_value": cents(to_date["end_equity"]),
        "realized_pnl": cents(to_date["realized_pnl"]),
        "unrealized_pnl": cents(to_date["unrealized_pnl"]),
        "total_pnl": cents(to_date["total_pnl"]),
    } == {k: expected[k] for k in ("account_value", "realized_pnl", "unrealized_pnl", "total_pnl")}
    assert to_date["max_drawdown"] == pytest.approx(truth.max_drawdown)
    assert daily.account == truth
    figures = reports.key_figures(daily)
    assert {name: cents(figures[name]) for name in FIGURES} == {n: expected[n] for n in FIGURES}
    assert cents(figures["account_total_pnl"]) == cents(figures["total_pnl"])
    assert figures["account_total_pnl"] == pytest.approx(truth.total_pnl)

    # What a reader sees: the same dollars on the page and in both commands' text.
    page = _visible(reports.render_daily(daily))
    positions_text = _text(["positions"], capsys)
    journal_text = _text(["journal"], capsys)
    for name in (*FIGURES, "total_pnl"):
        assert dollars(getattr(truth, name)) in page, name
    for text in (positions_text, journal_text):
        assert f"account at the close of {D3}: value {dollars(truth.account_value)}" in text
        assert f"cash {dollars(truth.cash)}" in text
        assert f"realized {signed_dollars(truth.realized_pnl)} (closed trades)" in text
        assert f"unrealized {signed_dollars(truth.unrealized_pnl)} (open positions)" in text
        assert f"total {signed_dollars(truth.total_pnl)}" in text
        assert f"max drawdown {truth.max_drawdown:.2%}" in text
    assert f"{truth.max_drawdown:.1%}" in page


def test_the_weekly_and_monthly_reports_show_the_same_account(root):
    context = _context(root)
    truth = account_view(context.ledger, D3)
    weekly = report_inputs.weekly_inputs(context, D3)
    monthly = report_inputs.monthly_inputs(context, D3, runs=None, run_failures=None)
    for inputs, render in ((weekly, reports.render_weekly), (monthly, reports.render_monthly)):
        assert inputs.account == truth
        page = _visible(render(inputs))
        assert f"Account at the close of {D3}" in page
        assert dollars(truth.account_value) in page and dollars(truth.unrealized_pnl) in page
        figures = reports.key_figures(inputs)
        assert cents(figures["account_value"]) == cents(truth.account_value)
        assert cents(figures["account_total_pnl"]) == cents(truth.total_pnl)


def test_journal_says_how_many_of_its_trades_it_lists(root, capsys):
    ledger = Ledger(root / "ledger.duckdb")
    for i in range(3):  # three more round trips, closed on D3: four trades in all
        accounts.fill(ledger, f"o{i}", "AAA", D3, "open", 1, 1.00)
        accounts.fill(ledger, f"c{i}", "AAA", D3, "close", 1, 1.10, position=f"o{i}")
    text = _text(["journal", "--last", "2"], capsys)
    assert "journal: 4 closed trades" in text
    assert "showing the last 2 of 4 closed trades (--last N for more)" in text
    listed = [line for line in text.splitlines() if " -> " in line]
    assert len(listed) == 2
    everything = _text(["journal"], capsys)
    assert "all 4 closed trades, oldest exit first:" in everything
    assert len([line for line in everything.splitlines() if " -> " in line]) == 4
    # D3's new closes came after D3 was marked: the account says its figures miss them.
    assert "6 ledger event(s) after" not in everything  # same session, not after it
    assert "the ledger's cash through 2026-03-05" in everything


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def test_positions_lists_what_changed_since_the_close(root, capsys):
    ledger = Ledger(root / "ledger.duckdb")
    after = dt.date(2026, 3, 6)
    accounts.fill(ledger, "open-d", "AAA", after, "open", 2, 1.20)
    assert main(["positions", "--json"]) == EXIT_OK
    result = json.loads(capsys.readouterr().out, parse_constant=_no_constants)
    (opened,) = [p for p in result["positions"] if p["position_id"] == "open-d"]
    assert opened["status"] == "opened since" and opened["quantity"] == 2
    assert opened["mark"] is None and opened["unrealized_pnl"] is None
    assert result["open_positions"] == 2  # held at the close the account values
    assert cents(result["account"]["cash_now"]) == cents(result["cash"] - 240 - accounts.FEE)
    text = _text(["positions"], capsys)
    assert "AAA    call_fly  ai       x2 95/100/105" in text
    assert "not marked (opened since the close)" in text
    assert f"1 ledger event(s) after the close of {D3}" in text


def test_a_position_without_a_quote_is_valued_at_its_entry_and_says_so(root, capsys):
    ledger = Ledger(root / "ledger.duckdb")
    after = dt.date(2026, 3, 6)
    accounts.fill(ledger, "open-x", "CCC", after, "open", 2, 1.20)  # not in the chain
    accounts.mark(ledger, after, 97.0)
    view = account_view(ledger)
    assert view.as_of == after and view.notes == ()
    rows = _json(["positions", "--json"], capsys)["positions"]
    (held,) = [p for p in rows if p["position_id"] == "open-x"]
    assert held["mark"] is None and held["market_value"] == pytest.approx(2 * 120)
    assert held["unrealized_pnl"] == pytest.approx(-accounts.FEE)  # at cost, less its fee
    text = _text(["positions"], capsys)
    assert "CCC    call_fly  baseline x2 95/100/105" in text
    assert "no quote, valued at +1.20 (last mark or entry) P/L -$2.60" in text
