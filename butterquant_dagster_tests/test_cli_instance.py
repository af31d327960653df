"""The instance the `butterquant` command opens: the UI's (same run history), with
compute-log capture off (capture leaves `tail -F` processes behind a killed command), built
through Dagster's public API only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from butterquant_dagster import runs
from butterquant_dagster.commands import _instance

PACKAGE = Path(_instance.__file__).resolve().parents[1]


@pytest.fixture
def home(isolated_env) -> Path:
    return isolated_env / "dagster"


def test_the_command_captures_no_compute_logs_and_the_ui_does(home):
    with _instance.prepare_instance() as instance:
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
    assert (home / "dagster.yaml").exists()  # copied from the repository, for the UI
    with DagsterInstance.get() as ui:
        assert isinstance(ui.compute_log_manager, LocalComputeLogManager)


def test_the_command_and_the_ui_share_one_run_history(home):
    with _instance.prepare_instance() as instance:
        instance.add_run(DagsterRun(job_name="from_the_command", run_id="a" * 36))
    with DagsterInstance.get() as ui:
        assert [r.job_name for r in ui.get_runs()] == ["from_the_command"]


def test_the_command_follows_edits_of_dagster_yaml(home):
    with _instance.prepare_instance() as instance:
        assert instance.run_monitoring_enabled
    config = home / "dagster.yaml"
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))
    with _instance.prepare_instance() as instance:
        assert not instance.run_monitoring_enabled
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)


def test_the_partition_range_tags_are_dagsters():
    assert runs.partition_range_tags("2025-03-03", "2025-03-04") == {
        ASSET_PARTITION_RANGE_START_TAG: "2025-03-03",
        ASSET_PARTITION_RANGE_END_TAG: "2025-03-04",
    }


def test_the_package_uses_no_private_dagster_module():
    found = subprocess.run(
        ["grep", "-rn", "dagster._core", str(PACKAGE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.stdout == ""
