"""`butterquant models list/show` give each version's promotion verdict and its reason."""

from __future__ import annotations

import json

import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, main
from butterquant_dagster.core.ml.registry import ModelRegistry
from butterquant_dagster_tests.core.ml.test_model_card_verdict import (
    FAILED,
    NAME,
    PASSED,
    _register,
)


@pytest.fixture
def models(isolated_env, tmp_path, monkeypatch) -> ModelRegistry:
    """v0001 champion, v0002 failed its gates (the latest)."""
    monkeypatch.chdir(tmp_path)
    registry = ModelRegistry(isolated_env / "models")
    registry.promote(NAME, _register(registry, PASSED).version, reason="passed every gate")
    _register(registry, FAILED)
    return registry


def test_list_names_the_latest_verdict_and_the_champion_reason(models, capsys):
    assert main(["models", "list"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{NAME:<32} latest v0002  champion v0001")
    assert lines[1].strip() == f"v0002 not champion: {FAILED['reason']}"
    assert lines[2].strip().startswith("v0001 champion since ")
    assert lines[2].endswith(": passed every gate")
    assert main(["models", "list", "--json"]) == EXIT_OK
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["verdict"], row["verdict_reason"]) == ("not champion", FAILED["reason"])
    assert row["not_champion_because"] == FAILED["reason"]
    assert row["champion_reason"].startswith("champion since ")
    assert row["champion_reason"].endswith(": passed every gate")


def test_show_leads_with_the_verdict(models, capsys):
    assert main(["models", "show", NAME]) == EXIT_OK  # the champion by default
    card = capsys.readouterr().out.splitlines()
    assert card[0] == f"## Model card: {NAME} v0001"
    assert card[2].startswith("- promotion: champion since ")
    assert main(["models", "show", NAME, "v0002", "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["verdict"] == {
        "status": "not champion",
        "reason": FAILED["reason"],
        "champion": "v0001",
    }
    assert shown["gates"] == FAILED  # the metadata is all there, unchanged


def test_show_of_an_unknown_version_is_bad_input(models, capsys):
    assert main(["models", "show", NAME, "v0042"]) == EXIT_BAD_INPUT
    assert "v0042" in capsys.readouterr().err
