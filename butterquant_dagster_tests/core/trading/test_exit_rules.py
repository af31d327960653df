"""The exit-rule table: known risk levels map to their shares, an unknown one is refused."""

from __future__ import annotations

import pytest

from butterquant_dagster.core.trading.exit_rules import EXIT_RULES, exit_shares


def test_each_level_gets_its_stop_and_take_shares():
    stop, take = exit_shares(["HIGH", "LOW", "MEDIUM"])
    assert stop.tolist() == [EXIT_RULES["HIGH"][0], EXIT_RULES["LOW"][0], EXIT_RULES["MEDIUM"][0]]
    assert take.tolist() == [EXIT_RULES["HIGH"][1], EXIT_RULES["LOW"][1], EXIT_RULES["MEDIUM"][1]]
    # A riskier fly is cut sooner and taken earlier.
    assert EXIT_RULES["HIGH"] < EXIT_RULES["MEDIUM"] < EXIT_RULES["LOW"]


def test_an_unknown_risk_level_is_refused_not_guessed():
    """It used to fall back to (0.4, 0.6) silently."""
    with pytest.raises(ValueError, match=r"no exit rule for risk level\(s\) \['EXTREME'\]"):
        exit_shares(["LOW", "EXTREME"])
