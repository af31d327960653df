"""The report figures as the assets gather them: from the ledger's opening cash, with a note
when the account was not marked on the session, and never judging a model on a session
before what it learned from."""

import datetime as dt
from types import SimpleNamespace

import pandas as pd
import pytest

from butterquant_dagster.core.monitoring import assemble
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.ledger import Ledger

D = dt.date


def _mark(ledger: Ledger, session: dt.date, equity: float, at_risk: float) -> None:
    ledger.record_marks(
        session,
        pd.DataFrame(),
        {
            "cash": equity,
            "positions_value": 0.0,
            "equity": equity,
            "open_positions": 1,
            "capital_at_risk": at_risk,
        },
    )


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.duckdb", initial_capital=100_000.0)
    _mark(ledger, D(2026, 11, 17), 99_000.0, 10_000.0)
    _mark(ledger, D(2026, 11, 18), 101_000.0, 10_000.0)
    return ledger


def test_to_date_figures_start_from_the_opening_cash(tmp_path, ledger):
    report = assemble.performance(Lake(tmp_path), ledger, None, D(2026, 11, 18))
    assert report.figures["total_pnl"] == pytest.approx(1_000.0)
    assert report.figures["max_drawdown"] == pytest.approx(0.01)  # 100,000 -> 99,000
    assert report.figures["exposure"] == pytest.approx(10_000 / 99_000 / 2 + 10_000 / 101_000 / 2)
    assert not [n for n in report.notes if "last marked" in n]


def test_a_session_not_marked_yet_is_said_not_hidden(tmp_path, ledger):
    report = assemble.performance(Lake(tmp_path), ledger, None, D(2026, 11, 20))
    assert report.figures["total_pnl"] == pytest.approx(1_000.0)
    assert any("last marked on 2026-11-18, not 2026-11-20" in n for n in report.notes)


def test_a_champion_that_learned_later_outcomes_is_not_judged_on_an_earlier_session(
    tmp_path, ledger
):
    champion = SimpleNamespace(
        version="v0007",
        metadata={"label_cutoff": "2026-11-19", "training_date": "2026-11-20", "metrics": {}},
    )
    report = assemble.drift(Lake(tmp_path), ledger, champion, D(2026, 11, 18))
    assert report.reasons[0].startswith("the champion v0007 learned outcomes up to 2026-11-19")
    assert report.figures["model_version"] is None
    assert report.status == "OK"
    later = assemble.drift(Lake(tmp_path), ledger, champion, D(2026, 11, 20))
    assert later.figures["model_version"] == "v0007"
