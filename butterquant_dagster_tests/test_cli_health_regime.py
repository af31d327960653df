"""`butterquant health` escalates a current market regime that has no signal-ensemble
model: a WARN, and the headline says the setup needs attention (exit 0)."""

from __future__ import annotations

import json

import pandas as pd

from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster_tests.core.monitoring.test_health import fresh_lake, register_champion
from butterquant_dagster_tests.test_cli_health import _trained, root  # noqa: F401 (fixture)


def _regime(data_root, session: str, regime: str) -> None:
    frame = pd.DataFrame(
        {"session": [pd.Timestamp(session)], "market_regime": [regime], "regime_confidence": [0.96]}
    )
    Lake(data_root).write("market_regime", frame, session)


def test_a_bear_regime_without_a_bear_model_needs_attention(root, capsys):  # noqa: F811
    register_champion(root, _trained(5))
    fresh_lake(root, "2025-03-31", "2025-03-28")
    _regime(root, "2025-03-31", "bear")
    assert main(["health"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("butterquant health: needs attention (1 WARN, 1 NOTICE, 5 OK)")
    models = next(line for line in out.splitlines() if line.strip().startswith("models"))
    assert "WARN" in models
    assert "the market regime is bear 96% on 2025-03-31" in models
    assert main(["health", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["healthy"], report["status"], report["verdict"]) == (
        True,
        "WARN",
        "needs attention",
    )
    check = next(c for c in report["checks"] if c["check"] == "models")
    assert check["details"]["current_regime"]["regime"] == "bear"
