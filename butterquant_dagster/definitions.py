"""The code location: every definition under ``defs/``, bound to this environment's resources.

The domain folders declare their assets, checks, jobs, schedules and sensors at module level;
Dagster's loader finds them. Only what is global is applied here: the resources.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dagster import Definitions, load_from_defs_folder

from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.resources import MonitoringResource, default_resources


@cache
def domain_definitions() -> Definitions:
    """Everything under ``defs/``, without resources (loaded once per process)."""
    return load_from_defs_folder(path_within_project=Path(__file__).parent)


def build_definitions(resources: dict[str, object] | None = None) -> Definitions:
    """The definitions bound to ``resources`` (the environment's by default); tests pass
    their own (a temporary data root, another market source)."""
    bound = with_lake_defaults(resources or default_resources())
    return Definitions.merge(domain_definitions(), Definitions(resources=bound))


def with_lake_defaults(resources: dict[str, object]) -> dict[str, object]:
    """Assets are stored in the lake, and reports go under its data root, unless the
    resources say otherwise."""
    if "lake" not in resources:
        return resources
    lake = resources["lake"]
    return {
        "lake_io_manager": LakeIOManager(lake=lake),
        "monitoring": MonitoringResource(data_dir=lake.data_dir),
        **resources,
    }


defs = build_definitions()
