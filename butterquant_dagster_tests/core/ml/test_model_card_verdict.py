"""A model version's promotion verdict, as `models list` and `models show` print it:
champion since when and why, a former champion, forced, failed gates, or passed without
a promotion."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from butterquant_dagster.core.ml import model_card, onnx_export
from butterquant_dagster.core.ml.registry import ModelRegistry, RegistryError

NAME = "butterfly_win_probability"
COLUMNS = ["a", "b"]
PASSED = {"passed": True, "failed": [], "reason": "all gates passed", "checks": []}
FAILED = {
    "passed": False,
    "failed": ["brier_skill"],
    "reason": "brier_skill: walk-forward Brier skill -0.04 against the base rate is not above 0.0",
    "checks": [],
}


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    clock = iter(dt.datetime(2026, 11, day, 22, 0, tzinfo=dt.UTC) for day in range(1, 28))
    return ModelRegistry(tmp_path / "models", clock=lambda: next(clock))


def _register(registry: ModelRegistry, gates: dict, *, forced: bool = False):
    x = np.random.default_rng(0).normal(size=(60, len(COLUMNS))).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    metadata = {"feature_columns": COLUMNS, "label": "win", "metrics": {}, "gates": gates}
    return registry.register(NAME, onnx_export.export(model, len(COLUMNS)), metadata, forced=forced)


def test_every_standing_has_its_reason(registry):
    first = _register(registry, PASSED).version
    registry.promote(NAME, first, reason="passed every gate; compared with no champion")
    second = _register(registry, PASSED).version
    registry.promote(NAME, second, reason="passed every gate; beat v0001")
    failed = _register(registry, FAILED).version
    forced = _register(registry, FAILED, forced=True).version
    waiting = _register(registry, PASSED).version

    champion = model_card.verdict(registry, NAME, second)
    assert (champion.status, champion.champion) == ("champion", second)
    assert champion.reason.startswith("since 2026-11-")
    assert champion.line().startswith("champion since 2026-11-")
    assert champion.reason.endswith(": passed every gate; beat v0001")

    former = model_card.verdict(registry, NAME, first)
    assert former.status == "former champion"
    assert f"the champion is {second}" in former.reason
    assert f"butterquant models rollback {NAME}" in former.reason

    assert model_card.verdict(registry, NAME, failed).line() == f"not champion: {FAILED['reason']}"
    assert model_card.verdict(registry, NAME, forced).reason == "forced: registered, never promoted"
    passed = model_card.verdict(registry, NAME, waiting)
    assert passed.status == "not champion"
    assert f"passed its gates but was not promoted (the champion is {second})" in passed.reason
    assert f"butterquant models promote {NAME} {waiting}" in passed.reason
    assert passed.to_dict() == {
        "status": "not champion",
        "reason": passed.reason,
        "champion": second,
    }


def test_without_a_champion_the_verdict_says_so(registry):
    version = _register(registry, PASSED).version
    verdict = model_card.verdict(registry, NAME, version)
    assert verdict.champion is None
    assert "there is no champion" in verdict.reason


def test_an_unknown_version_is_an_error_naming_it(registry):
    _register(registry, PASSED)
    with pytest.raises(RegistryError, match="v0042"):
        model_card.verdict(registry, NAME, "v0042")


def test_the_card_leads_with_the_verdict_and_prints_folds_plainly():
    folds = [
        {"fold": 0, "train_rows": 0, "test_rows": float("nan"), "test_start": None,
         "test_end": None, "brier": float("nan"), "skipped": "too few training rows"},
        {"fold": 1, "train_rows": 7497, "test_rows": 8568.0, "test_start": "2026-09-23",
         "test_end": "2026-10-02T00:00:00", "brier": 0.16981, "skipped": None},
    ]  # fmt: skip
    text = model_card.text(
        {"name": NAME, "version": "v0001", "folds": folds, "gates": FAILED},
        promotion="not champion: brier_skill: ...",
    )
    lines = text.splitlines()
    assert lines[2] == "- promotion: not champion: brier_skill: ..."
    table = text[text.index("### Walk-forward folds") :]
    assert "8568 " in table and "8568.0" not in table  # a count, not 8568.0000
    assert "2026-10-02 " in table and "00:00:00" not in table  # a date
    assert "0.1698" in table
    assert "nan" not in table and "None" not in table  # a skipped fold is blank
    assert "- promotion:" not in model_card.text({"name": NAME})  # no verdict given
