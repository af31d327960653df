"""`butterquant execute` on a session already traded: the rerun sends nothing new and says
so, with the reason, in text and JSON."""

from __future__ import annotations

import json

from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.core.trading.ledger import Ledger
from butterquant_dagster_tests.defs.test_trading_cli import SESSION, scanned  # noqa: F401


def test_a_second_execute_sends_nothing_new_and_says_why(scanned, capsys):  # noqa: F811
    assert main(["execute", "--date", SESSION, "--json"]) == EXIT_OK
    first = json.loads(capsys.readouterr().out)
    assert first["sent"] == len(first["orders"]) > 0 and first["already_sent"] == 0
    assert first["note"] == f"sent {first['sent']} new order(s)"
    assert {o["expiry"] for o in first["orders"]} <= {t["expiry"] for t in first["targets"]}
    assert all(len(o["expiry"]) == 10 for o in first["orders"])  # 2025-06-13, a date
    refs = sorted(o["order_ref"] for o in first["orders"])

    assert main(["execute", "--date", SESSION]) == EXIT_OK
    text = capsys.readouterr().out
    assert (
        f"  sent nothing new: this session was already traded; its {len(refs)} order(s) went "
        "out in an earlier run"
    ) in text
    assert main(["execute", "--date", SESSION, "--json"]) == EXIT_OK
    again = json.loads(capsys.readouterr().out)
    assert (again["sent"], again["already_sent"]) == (0, len(refs))
    assert again["note"].startswith("sent nothing new")
    # And it is true: the ledger holds the first run's orders, none twice.
    ledger_refs = sorted(Ledger(scanned / "ledger.duckdb").orders()["order_ref"])
    assert ledger_refs == refs
