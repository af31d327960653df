"""The model registry: versions, integrity, champion pointer, fallback, atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

from butterquant_dagster.core.ml import registry as registry_module
from butterquant_dagster.core.ml.registry import (
    FeatureMismatchError,
    LoadedModel,
    ModelLoadError,
    ModelRegistry,
    ModelVersion,
    NoChampionError,
    PromotionError,
    RegistryError,
    age_days,
)

NAME = "entry_filter"
COLUMNS = ["iv_rank", "skew"]
FIXED_NOW = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)


def _training_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, 2))
    labels = features[:, 0] - 0.5 * features[:, 1] + rng.normal(scale=0.3, size=200) > 0
    return features, labels.astype(int)


def _fit(seed: int = 0) -> tuple[LogisticRegression, bytes]:
    features, labels = _training_data(seed)
    model = LogisticRegression().fit(features, labels)
    onnx_model = to_onnx(
        model,
        features[:1].astype(np.float32),
        target_opset=17,
        options={id(model): {"zipmap": False}},
    )
    return model, onnx_model.SerializeToString()


@pytest.fixture(scope="module")
def fitted() -> tuple[LogisticRegression, bytes]:
    return _fit(0)


@pytest.fixture(scope="module")
def other_fitted() -> tuple[LogisticRegression, bytes]:
    return _fit(1)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", clock=lambda: FIXED_NOW)


def _metadata(**extra) -> dict:
    metadata = {
        "feature_columns": list(COLUMNS),
        "label": "hit_target",
        "metrics": {"auc": 0.71, "brier": 0.2},
        "training_window": {"start": "2023-01-03", "end": "2023-12-29"},
        "training_date": "2024-01-02",
        "dagster_run_id": "abc123",
    }
    metadata.update(extra)
    return metadata


def _corrupt_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# ---- registering and listing -----------------------------------------------------------


def test_register_load_and_run_matches_sklearn(registry, fitted):
    model, onnx_bytes = fitted
    registered = registry.register(NAME, onnx_bytes, _metadata())
    assert isinstance(registered, ModelVersion)
    assert (registered.path / "model.onnx").read_bytes() == onnx_bytes

    loaded = registry.load(NAME, registered.version)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version, loaded.path) == (NAME, "v0001", registered.path)
    assert loaded.session.get_providers() == ["CPUExecutionProvider"]

    features, _ = _training_data(5)
    rows = features[:25].astype(np.float32)
    input_name = loaded.session.get_inputs()[0].name
    _labels, probabilities = loaded.session.run(None, {input_name: rows})
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), atol=1e-5)


def test_versions_increment_per_name_and_sort(registry, fitted):
    _, onnx_bytes = fitted
    first = registry.register(NAME, onnx_bytes, _metadata())
    second = registry.register(NAME, onnx_bytes, _metadata())
    other = registry.register("exit-model", onnx_bytes, _metadata())
    third = registry.register(NAME, onnx_bytes, _metadata())
    assert [first.version, second.version, third.version] == ["v0001", "v0002", "v0003"]
    assert other.version == "v0001"
    assert [v.version for v in registry.versions(NAME)] == ["v0001", "v0002", "v0003"]
    assert [v.number for v in registry.versions(NAME)] == [1, 2, 3]
    assert registry.names() == ["entry_filter", "exit-model"]
    assert registry.versions("unknown") == []


def test_versions_sort_numerically_past_9999(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    # Pretend 9998 versions came before: rename v0001 to v9999.
    os.rename(registry.version_dir(NAME, "v0001"), registry.name_dir(NAME) / "v9999")
    metadata_path = registry.name_dir(NAME) / "v9999" / "metadata.json"
    stored = json.loads(metadata_path.read_text())
    stored["version"] = "v9999"
    metadata_path.write_text(json.dumps(stored))
    newest = registry.register(NAME, onnx_bytes, _metadata())
    assert newest.version == "v10000"
    assert [v.version for v in registry.versions(NAME)] == ["v9999", "v10000"]


def test_metadata_round_trips_with_registry_fields(registry, fitted):
    _, onnx_bytes = fitted
    given = _metadata(notes=None, thresholds=[0.1, 0.2], nested={"a": {"b": True}})
    registered = registry.register(NAME, onnx_bytes, given)
    stored = json.loads((registered.path / "metadata.json").read_text())
    assert stored == registered.metadata
    assert registry.get(NAME, "v0001").metadata == stored
    for key, value in given.items():
        assert stored[key] == value
    assert stored["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert stored["name"] == NAME
    assert stored["version"] == "v0001"
    assert stored["forced"] is False
    assert stored["registered_at"] == "2024-03-01T12:30:00+00:00"
    assert datetime.fromisoformat(stored["registered_at"]).utcoffset() == timedelta(0)
    assert given == _metadata(notes=None, thresholds=[0.1, 0.2], nested={"a": {"b": True}})


def test_registered_at_uses_real_utc_clock_by_default(tmp_path, fitted):
    _, onnx_bytes = fitted
    before = datetime.now(UTC)
    registered = ModelRegistry(tmp_path / "models").register(NAME, onnx_bytes, _metadata())
    after = datetime.now(UTC)
    stamp = datetime.fromisoformat(registered.metadata["registered_at"])
    assert before <= stamp <= after


@pytest.mark.parametrize("missing", ["feature_columns", "label", "metrics"])
def test_missing_required_metadata_refused(registry, fitted, missing):
    _, onnx_bytes = fitted
    metadata = _metadata()
    del metadata[missing]
    with pytest.raises(RegistryError, match=missing):
        registry.register(NAME, onnx_bytes, metadata)
    assert registry.versions(NAME) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"feature_columns": "iv_rank,skew"}, "feature_columns"),
        ({"feature_columns": ["iv_rank", 3]}, "feature_columns"),
        ({"feature_columns": []}, "feature_columns"),
        ({"feature_columns": ["iv_rank", "iv_rank"]}, "duplicates"),
        ({"label": 1}, "label"),
        ({"metrics": [0.7]}, "metrics"),
        ({"sha256": "0" * 64}, "set by the registry"),
        ({"forced": True}, "set by the registry"),
        ({"training_date": "last tuesday"}, "training_date"),
    ],
)
def test_malformed_metadata_refused(registry, fitted, overrides, message):
    _, onnx_bytes = fitted
    with pytest.raises(RegistryError, match=message):
        registry.register(NAME, onnx_bytes, _metadata(**overrides))
    assert registry.versions(NAME) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime(2024, 1, 1), r"\['when'\] is a datetime\.datetime.*not JSON-serializable"),
        (np.int64(3), r"\['when'\] is a numpy\.int64"),
        ({1, 2}, r"\['when'\] is a builtins\.set"),
        (float("nan"), r"\['when'\] is nan"),
        ({1: "x"}, "non-string key 1"),
    ],
)
def test_non_json_metadata_refused_with_clear_error(registry, fitted, value, message):
    _, onnx_bytes = fitted
    with pytest.raises(RegistryError, match=message):
        registry.register(NAME, onnx_bytes, _metadata(when=value))
    assert registry.versions(NAME) == []


def test_non_onnx_bytes_and_wrong_width_refused(registry, fitted):
    _, onnx_bytes = fitted
    with pytest.raises(RegistryError, match="not a loadable ONNX model"):
        registry.register(NAME, b"definitely not onnx", _metadata())
    with pytest.raises(RegistryError, match="non-empty bytes"):
        registry.register(NAME, b"", _metadata())
    with pytest.raises(RegistryError, match="takes 2 features but metadata lists 3"):
        registry.register(NAME, onnx_bytes, _metadata(feature_columns=["a", "b", "c"]))
    assert registry.versions(NAME) == []


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".hidden", "", "Upper", "name with space", "a" * 65, 7]
)
def test_path_traversal_and_bad_names_refused(registry, fitted, name, tmp_path):
    _, onnx_bytes = fitted
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register(name, onnx_bytes, _metadata())
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.versions(name)
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.load(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("version", ["../v0001", "v1", "v0001/..", "V0001", "0001", "v0001 "])
def test_bad_version_strings_refused(registry, fitted, version):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    with pytest.raises(RegistryError, match="invalid model version"):
        registry.get(NAME, version)
    with pytest.raises(RegistryError, match="invalid model version"):
        registry.load(NAME, version)
    with pytest.raises(RegistryError, match="invalid model version"):
        registry.promote(NAME, version, reason="x")


def test_unknown_version_is_an_error(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    with pytest.raises(RegistryError, match="has no version v0002"):
        registry.get(NAME, "v0002")
    with pytest.raises(ModelLoadError, match="does not exist"):
        registry.load(NAME, "v0002")


# ---- crash safety ----------------------------------------------------------------------


def test_crash_at_rename_leaves_no_partial_version(registry, fitted, monkeypatch):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())

    def explode(source, target):
        raise OSError("disk vanished")

    monkeypatch.setattr(registry_module.os, "replace", explode)
    with pytest.raises(OSError, match="disk vanished"):
        registry.register(NAME, onnx_bytes, _metadata())
    monkeypatch.undo()

    assert [v.version for v in registry.versions(NAME)] == ["v0001"]
    leftovers = sorted(p.name for p in registry.name_dir(NAME).iterdir())
    assert leftovers == [".lock", "v0001"]
    assert registry.register(NAME, onnx_bytes, _metadata()).version == "v0002"


def test_crash_mid_onnx_write_leaves_no_partial_version(registry, fitted, monkeypatch):
    _, onnx_bytes = fitted
    real_write = registry_module._write_bytes

    def half_write(path, data):
        if path.name == "model.onnx":
            real_write(path, data[: len(data) // 2])
            raise OSError("no space left on device")
        real_write(path, data)

    monkeypatch.setattr(registry_module, "_write_bytes", half_write)
    with pytest.raises(OSError, match="no space left"):
        registry.register(NAME, onnx_bytes, _metadata())
    monkeypatch.undo()

    assert registry.versions(NAME) == []
    assert registry.names() == []
    assert sorted(p.name for p in registry.name_dir(NAME).iterdir()) == [".lock"]


def test_crash_writing_champion_keeps_old_pointer(registry, fitted, monkeypatch):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.register(NAME, onnx_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="first")

    def explode(source, target):
        raise OSError("power cut")

    monkeypatch.setattr(registry_module.os, "replace", explode)
    with pytest.raises(OSError, match="power cut"):
        registry.promote(NAME, "v0002", reason="second")
    monkeypatch.undo()
    assert registry.champion(NAME).version == "v0001"
    assert not [p for p in registry.name_dir(NAME).iterdir() if p.name.endswith(".tmp")]


def test_stale_temp_directory_is_not_a_version(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    stale = registry.name_dir(NAME) / ".tmp-deadbeef"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(onnx_bytes[:10])
    assert [v.version for v in registry.versions(NAME)] == ["v0001"]
    assert registry.register(NAME, onnx_bytes, _metadata()).version == "v0002"


# ---- integrity and fallback ------------------------------------------------------------


def test_sha256_mismatch_names_file_and_hashes(registry, fitted):
    _, onnx_bytes = fitted
    registered = registry.register(NAME, onnx_bytes, _metadata())
    onnx_path = registered.path / "model.onnx"
    _corrupt_one_byte(onnx_path)
    with pytest.raises(ModelLoadError) as caught:
        registry.load(NAME, "v0001")
    message = str(caught.value)
    assert str(onnx_path) in message
    assert "sha256 mismatch" in message
    assert registered.metadata["sha256"] in message
    assert hashlib.sha256(onnx_path.read_bytes()).hexdigest() in message


def test_missing_or_corrupt_files_raise_model_load_error(registry, fitted):
    _, onnx_bytes = fitted
    first = registry.register(NAME, onnx_bytes, _metadata())
    second = registry.register(NAME, onnx_bytes, _metadata())
    third = registry.register(NAME, onnx_bytes, _metadata())

    (first.path / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"metadata\.json is corrupt"):
        registry.load(NAME, "v0001")

    (second.path / "metadata.json").unlink()
    with pytest.raises(ModelLoadError, match=r"metadata\.json is missing"):
        registry.load(NAME, "v0002")

    (third.path / "model.onnx").unlink()
    with pytest.raises(ModelLoadError, match=r"cannot read .*model\.onnx"):
        registry.load(NAME, "v0003")


def test_unloadable_onnx_with_matching_hash_raises_model_load_error(registry, fitted):
    _, onnx_bytes = fitted
    registered = registry.register(NAME, onnx_bytes, _metadata())
    garbage = b"not an onnx graph"
    (registered.path / "model.onnx").write_bytes(garbage)
    metadata = dict(registered.metadata, sha256=hashlib.sha256(garbage).hexdigest())
    (registered.path / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model"):
        registry.load(NAME, "v0001")


def test_metadata_describing_another_version_is_refused(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.register(NAME, onnx_bytes, _metadata())
    # Copy v0001's metadata over v0002's: the files no longer describe their directory.
    v1 = registry.version_dir(NAME, "v0001") / "metadata.json"
    v2 = registry.version_dir(NAME, "v0002") / "metadata.json"
    v2.write_text(v1.read_text())
    with pytest.raises(ModelLoadError, match="describes 'entry_filter' 'v0001'"):
        registry.load(NAME, "v0002")


def test_fallback_to_previous_champion_on_hash_mismatch(registry, fitted, other_fitted):
    model, onnx_bytes = fitted
    _, other_bytes = other_fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.register(NAME, other_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="first")
    registry.promote(NAME, "v0002", reason="better auc")

    healthy, warnings = registry.load_champion_with_fallback(NAME)
    assert healthy.version == "v0002"
    assert warnings == []

    _corrupt_one_byte(registry.version_dir(NAME, "v0002") / "model.onnx")
    loaded, warnings = registry.load_champion_with_fallback(NAME)
    assert loaded is not None
    assert loaded.version == "v0001"
    assert len(warnings) == 1
    assert "champion v0002 failed to load: sha256 mismatch" in warnings[0]
    assert warnings[0].endswith("using v0001")
    rows = _training_data(3)[0][:5].astype(np.float32)
    _, probabilities = loaded.session.run(None, {loaded.session.get_inputs()[0].name: rows})
    np.testing.assert_allclose(probabilities, model.predict_proba(rows), atol=1e-5)
    # The pointer itself is left alone: fixing or rolling back is a deliberate act.
    assert registry.champion_record(NAME)["version"] == "v0002"


def test_fallback_walks_newest_first_and_reports_every_failure(registry, fitted):
    _, onnx_bytes = fitted
    for _ in range(3):
        registry.register(NAME, onnx_bytes, _metadata())
    for version in ("v0001", "v0002", "v0003"):
        registry.promote(NAME, version, reason=f"promote {version}")
    (registry.version_dir(NAME, "v0003") / "metadata.json").write_text("[]")
    _corrupt_one_byte(registry.version_dir(NAME, "v0002") / "model.onnx")

    loaded, warnings = registry.load_champion_with_fallback(NAME)
    assert loaded.version == "v0001"
    assert len(warnings) == 1
    text = warnings[0]
    assert text.index("champion v0003 failed") < text.index("previous champion v0002 failed")
    assert "sha256 mismatch" in text
    assert text.endswith("using v0001")


def test_fallback_returns_none_when_nothing_loads(registry, fitted):
    _, onnx_bytes = fitted
    loaded, warnings = registry.load_champion_with_fallback(NAME)
    assert loaded is None
    assert warnings == [f"model {NAME} has no champion"]

    registry.register(NAME, onnx_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="only one")
    _corrupt_one_byte(registry.version_dir(NAME, "v0001") / "model.onnx")
    loaded, warnings = registry.load_champion_with_fallback(NAME)
    assert loaded is None
    assert len(warnings) == 1
    assert "champion v0001 failed to load: sha256 mismatch" in warnings[0]
    assert "no model could be loaded" in warnings[0]


def test_fallback_survives_corrupt_champion_pointer(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="first")
    (registry.name_dir(NAME) / "champion.json").write_text('{"version": "../../etc"}')
    loaded, warnings = registry.load_champion_with_fallback(NAME)
    assert loaded is None
    assert len(warnings) == 1
    assert "champion.json is malformed" in warnings[0]
    with pytest.raises(RegistryError, match="malformed"):
        registry.champion(NAME)


# ---- champion pointer ------------------------------------------------------------------


def test_no_champion_initially(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    assert registry.champion(NAME) is None
    with pytest.raises(NoChampionError, match="has no champion"):
        registry.load(NAME)
    assert issubclass(NoChampionError, ModelLoadError)


def test_promote_and_rollback_sequence(registry, fitted, other_fitted):
    _, onnx_bytes = fitted
    _, other_bytes = other_fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.register(NAME, other_bytes, _metadata())

    assert registry.promote(NAME, "v0001", reason="initial").version == "v0001"
    assert registry.champion(NAME).version == "v0001"
    assert registry.load(NAME).version == "v0001"

    registry.promote(NAME, "v0002", reason="auc 0.74 > 0.71")
    assert registry.champion(NAME).version == "v0002"
    assert registry.load(NAME).version == "v0002"
    record = json.loads((registry.name_dir(NAME) / "champion.json").read_text())
    assert record["version"] == "v0002"
    assert record["reason"] == "auc 0.74 > 0.71"
    assert record["previous"] == "v0001"
    assert record["promoted_at"] == FIXED_NOW.isoformat()
    assert [entry["version"] for entry in record["history"]] == ["v0001"]
    assert record["history"][0]["reason"] == "initial"

    rolled = registry.rollback(NAME, reason="live drawdown")
    assert rolled.version == "v0001"
    assert registry.champion(NAME).version == "v0001"
    assert registry.load(NAME).version == "v0001"
    record = registry.champion_record(NAME)
    assert record["previous"] is None
    assert record["history"] == []
    assert "rollback from v0002: live drawdown" in record["reason"]
    assert [(e["action"], e["version"], e["from"]) for e in record["events"]] == [
        ("promote", "v0001", None),
        ("promote", "v0002", "v0001"),
        ("rollback", "v0001", "v0002"),
    ]
    with pytest.raises(PromotionError, match="no predecessor"):
        registry.rollback(NAME)
    # Old versions are kept on disk after every pointer move.
    assert [v.version for v in registry.versions(NAME)] == ["v0001", "v0002"]


def test_rollback_without_champion_refused(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    with pytest.raises(PromotionError, match="has no champion"):
        registry.rollback(NAME)


def test_rollback_to_altered_version_refused(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.register(NAME, onnx_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="a")
    registry.promote(NAME, "v0002", reason="b")
    _corrupt_one_byte(registry.version_dir(NAME, "v0001") / "model.onnx")
    with pytest.raises(PromotionError, match="does not match its sha256"):
        registry.rollback(NAME)
    assert registry.champion(NAME).version == "v0002"


def test_promoting_the_champion_again_is_a_no_op(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    registry.promote(NAME, "v0001", reason="first")
    before = (registry.name_dir(NAME) / "champion.json").read_text()
    assert registry.promote(NAME, "v0001", reason="again").version == "v0001"
    assert (registry.name_dir(NAME) / "champion.json").read_text() == before


def test_forced_model_can_never_be_promoted(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    forced = registry.register(NAME, onnx_bytes, _metadata(), forced=True)
    assert forced.forced is True
    assert forced.metadata["forced"] is True
    registry.promote(NAME, "v0001", reason="first")
    with pytest.raises(PromotionError, match=r"entry_filter v0002.*forced"):
        registry.promote(NAME, "v0002", reason="please")
    assert registry.champion(NAME).version == "v0001"
    # A forced model still loads for inspection; it just cannot become champion.
    assert registry.load(NAME, "v0002").metadata["forced"] is True


def test_a_model_that_failed_its_gates_can_never_be_promoted(registry, fitted):
    from butterquant_dagster.core.ml import gates

    _, onnx_bytes = fitted
    failing = gates.verdict([gates.brier_skill_gate(-0.01)])
    passing = gates.verdict([gates.brier_skill_gate(0.02)])
    registry.register(NAME, onnx_bytes, _metadata(gates=failing))
    registry.register(NAME, onnx_bytes, _metadata(gates=passing))
    with pytest.raises(PromotionError, match=r"v0001: it failed its promotion gates.*no skill"):
        registry.promote(NAME, "v0001", reason="by hand")
    assert registry.champion(NAME) is None
    assert registry.promote(NAME, "v0002", reason="passed").version == "v0002"


def test_promotion_of_altered_file_refused(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    path = registry.version_dir(NAME, "v0001") / "model.onnx"
    _corrupt_one_byte(path)
    with pytest.raises(PromotionError, match=r"model\.onnx does not match its sha256"):
        registry.promote(NAME, "v0001", reason="x")
    assert registry.champion(NAME) is None


def test_promotion_needs_reason_and_existing_version(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    with pytest.raises(PromotionError, match="reason is required"):
        registry.promote(NAME, "v0001", reason=" ")
    with pytest.raises(PromotionError, match="has no version v0007"):
        registry.promote(NAME, "v0007", reason="x")
    assert registry.champion(NAME) is None


def test_history_is_capped(registry, fitted, monkeypatch):
    _, onnx_bytes = fitted
    monkeypatch.setattr(registry_module, "HISTORY_LIMIT", 3)
    for _ in range(2):
        registry.register(NAME, onnx_bytes, _metadata())
    for index in range(6):
        registry.promote(NAME, "v0001" if index % 2 == 0 else "v0002", reason=f"flip {index}")
    record = registry.champion_record(NAME)
    assert record["version"] == "v0002"
    assert [entry["reason"] for entry in record["history"]] == ["flip 2", "flip 3", "flip 4"]
    assert [event["reason"] for event in record["events"]] == ["flip 3", "flip 4", "flip 5"]


# ---- features and age ------------------------------------------------------------------


def test_check_features_accepts_exact_columns(registry, fitted):
    _, onnx_bytes = fitted
    registry.register(NAME, onnx_bytes, _metadata())
    loaded = registry.load(NAME, "v0001")
    assert loaded.feature_columns == COLUMNS
    loaded.check_features(["iv_rank", "skew"])


def test_check_features_names_missing_extra_and_reordered(tmp_path, fitted):
    # A three-feature model so that a reordering and a missing column can both show.
    features, labels = _training_data(0)
    wide = np.column_stack([features, features[:, 0] * features[:, 1]])
    model = LogisticRegression().fit(wide, labels)
    onnx_bytes = to_onnx(
        model, wide[:1].astype(np.float32), target_opset=17, options={id(model): {"zipmap": False}}
    ).SerializeToString()
    registry = ModelRegistry(tmp_path / "models")
    registry.register(NAME, onnx_bytes, _metadata(feature_columns=["a", "b", "c"]))
    loaded = registry.load(NAME, "v0001")

    with pytest.raises(FeatureMismatchError) as caught:
        loaded.check_features(["b", "a", "z"])
    error = caught.value
    assert error.missing == ["c"]
    assert error.extra == ["z"]
    assert error.reordered == ["b", "a"]
    message = str(error)
    assert "missing ['c']" in message
    assert "extra ['z']" in message
    assert "reordered ['b', 'a']" in message
    assert "entry_filter v0001" in message

    with pytest.raises(FeatureMismatchError) as caught:
        loaded.check_features(["a", "c", "b"])
    assert (caught.value.missing, caught.value.extra) == ([], [])
    assert caught.value.reordered == ["c", "b"]

    with pytest.raises(FeatureMismatchError) as caught:
        loaded.check_features(["a", "b"])
    assert caught.value.missing == ["c"]
    assert caught.value.reordered == []

    with pytest.raises(FeatureMismatchError, match=r"duplicated \['a'\]"):
        loaded.check_features(["a", "b", "c", "a"])
    assert issubclass(FeatureMismatchError, ValueError)


def test_age_days(registry, fitted):
    _, onnx_bytes = fitted
    dated = registry.register(NAME, onnx_bytes, _metadata(training_date="2024-01-02"))
    now = datetime(2024, 1, 12, 12, 0, tzinfo=UTC)
    assert age_days(dated, now) == pytest.approx(10.5)
    assert registry.age_days(dated, now) == pytest.approx(10.5)
    assert age_days(dated, datetime(2024, 1, 12, 12, 0)) == pytest.approx(10.5)  # naive = UTC

    timed = registry.register(
        NAME, onnx_bytes, _metadata(training_date="2024-01-02T06:00:00-05:00")
    )
    assert age_days(timed, now) == pytest.approx(10.0 + 1 / 24)
    assert age_days(registry.load(NAME, timed.version), now) == pytest.approx(10.0 + 1 / 24)

    metadata = _metadata()
    del metadata["training_date"]
    undated = registry.register(NAME, onnx_bytes, metadata)
    with pytest.raises(RegistryError, match="no training_date"):
        age_days(undated, now)


def test_exception_hierarchy():
    for error in (ModelLoadError, PromotionError, FeatureMismatchError):
        assert issubclass(error, RegistryError)
    assert issubclass(RegistryError, ValueError)
