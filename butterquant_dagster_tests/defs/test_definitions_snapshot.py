"""The code location's public face, pinned: asset names, groups, partitions, checks, jobs,
schedules (with their cron and time zone) and sensors. An accidental rename breaks run
history, schedules and every bookmark a trader has; a deliberate one updates the snapshot
(`BUTTERQUANT_UPDATE_SNAPSHOT=1 pytest butterquant_dagster_tests/defs/test_definitions_snapshot.py`)
and shows up in review."""

from __future__ import annotations

import json
import os
from pathlib import Path

from butterquant_dagster.core.settings import Settings
from butterquant_dagster.definitions import build_definitions

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "definitions.json"


def _partitions(spec) -> str | None:
    partitions = spec.partitions_def
    if partitions is None:
        return None
    return f"{type(partitions).__name__}: {partitions}"


def describe(defs) -> dict:
    specs = sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string())
    graph = defs.resolve_asset_graph()
    return {
        "assets": {
            spec.key.to_user_string(): {
                "group": spec.group_name,
                "partitions": _partitions(spec),
                "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
                "checks": sorted(key.name for key in graph.get(spec.key).check_keys),
            }
            for spec in specs
        },
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
        "schedules": {
            schedule.name: {
                "cron": schedule.cron_schedule,
                "timezone": schedule.execution_timezone,
                "job": schedule.job_name,
                "default_status": schedule.default_status.value,
            }
            for schedule in sorted(defs.schedules, key=lambda s: s.name)
        },
        "sensors": sorted(sensor.name for sensor in defs.sensors),
    }


def test_definitions_match_the_snapshot():
    current = describe(build_definitions(Settings("2015-01-02", "synthetic")))
    if os.environ.get("BUTTERQUANT_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "jobs", "schedules", "sensors"):
        assert current[part] == expected[part], (
            f"the code location's {part} changed; if on purpose, update the snapshot "
            "(see this module's docstring)"
        )


def test_the_snapshot_catches_a_rename():
    current = describe(build_definitions(Settings("2015-01-02", "synthetic")))
    expected = json.loads(SNAPSHOT.read_text())
    renamed = dict(current["assets"])
    renamed["daily_bars_v2"] = renamed.pop("daily_bars")
    assert renamed != expected["assets"]
    assert len(expected["assets"]) == len(current["assets"]) >= 30
