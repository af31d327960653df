"""The code location's public face, pinned: asset names, groups, partitions, checks, jobs,
schedules (with their cron and time zone) and sensors. An accidental rename breaks run
history, schedules and every bookmark a trader has; a deliberate one updates the snapshot
(`BUTTERQUANT_UPDATE_SNAPSHOT=1 pytest butterquant_dagster_tests/defs/test_definitions_snapshot.py`)
and shows up in review. Dagster's own `dg list defs --json` is held to the same snapshot, so
what the project's tooling sees is what is pinned; the partitions and schedule time zones,
which that listing leaves out, come from the definitions themselves."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from butterquant_dagster.definitions import build_definitions

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "definitions.json"


def _partitions(spec) -> str | None:
    partitions = spec.partitions_def
    if partitions is None:
        return None
    # The first session is a setting (BUTTERQUANT_PARTITIONS_START), not part of the face.
    text = re.sub(
        r"starting \d{4}-\d{2}-\d{2}", "starting at the configured session", str(partitions)
    )
    return f"{type(partitions).__name__}: {text}"


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
    current = describe(build_definitions())
    if os.environ.get("BUTTERQUANT_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for part in ("assets", "jobs", "schedules", "sensors"):
        assert current[part] == expected[part], (
            f"the code location's {part} changed; if on purpose, update the snapshot "
            "(see this module's docstring)"
        )


def test_the_snapshot_catches_a_rename():
    current = describe(build_definitions())
    expected = json.loads(SNAPSHOT.read_text())
    renamed = dict(current["assets"])
    renamed["daily_bars_v2"] = renamed.pop("daily_bars")
    assert renamed != expected["assets"]
    assert len(expected["assets"]) == len(current["assets"]) >= 30


def test_dagsters_own_listing_matches_the_snapshot():
    """`dg list defs --json`, run as a user runs it, names the same assets (with groups,
    dependencies and checks), jobs, schedules (with crons) and sensors as the snapshot."""
    dg = shutil.which("dg", path=str(Path(sys.executable).parent))
    assert dg, "dg (dagster-dg-cli) is installed with the project"
    listed = json.loads(
        subprocess.run(
            [dg, "list", "defs", "--json"],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
    )
    expected = json.loads(SNAPSHOT.read_text())
    checks: dict[str, list[str]] = {}
    for check in listed["asset_checks"]:
        checks.setdefault(check["asset_key"], []).append(check["name"])
    assert {
        asset["asset_key"]: {
            "group": asset["group_name"],
            "deps": sorted(asset["dependency_keys"]),
            "checks": sorted(checks.get(asset["asset_key"], [])),
        }
        for asset in listed["assets"]
    } == {
        name: {key: value for key, value in asset.items() if key != "partitions"}
        for name, asset in expected["assets"].items()
    }
    assert sorted(job["name"] for job in listed["jobs"]) == sorted(
        name for name in expected["jobs"] if name != "__ASSET_JOB"
    )
    assert {s["name"]: s["cron_schedule"] for s in listed["schedules"]} == {
        name: schedule["cron"] for name, schedule in expected["schedules"].items()
    }
    assert sorted(sensor["name"] for sensor in listed["sensors"]) == expected["sensors"]
