"""Settings: the documented table, the data root, and .env.example in step with them."""

from __future__ import annotations

from pathlib import Path

from butterquant_dagster.core import settings

REPO = Path(__file__).resolve().parents[2]


def test_env_example_documents_every_setting_with_its_default():
    text = (REPO / ".env.example").read_text()
    for name, (default, description) in settings.SETTINGS.items():
        assert f"\n{name}={default}\n" in text, name
        assert description in text, name


def test_data_root_and_instance_follow_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_DATA_DIR", str(tmp_path / "elsewhere"))
    assert settings.data_root() == tmp_path / "elsewhere"
    assert settings.dagster_home() == tmp_path / "elsewhere" / "dagster"


def test_relative_data_root_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUTTERQUANT_DATA_DIR", raising=False)
    assert settings.data_root() == tmp_path / "data"
