"""The project's Dagster instance as the ``butterquant`` command opens it.

The instance lives under ``<data root>/dagster`` (``DAGSTER_HOME``), shared with the UI and
the daemon, so every run of a command is in the UI's run history. The command opens it with
compute-log capture off: capture starts two ``tail -F`` processes per run (and a watcher) and
redirects the process's stdout and stderr into files; a killed command leaves them behind,
and the command's own messages to the terminal would go through them. The run's structured
log (the UI's) is unaffected.

Dagster has no public way to override one setting of an instance, so the command opens it
with ``DagsterInstance.from_config`` from ``dagster-cli.yaml``: the instance's own
``dagster.yaml`` with ``compute_logs`` set to the manager of Dagster's ephemeral instance
(which captures nothing). The file is regenerated whenever ``dagster.yaml`` changes.

Dagster is imported only when an instance is opened: every command builds the parser, and
the commands that only read the lake should not wait for it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import yaml

from butterquant_dagster.core import settings
from butterquant_dagster.core.storage.file_lock import exclusive_lock

# Not at the repository root: Dagster warns about a dagster.yaml in the working directory
# that is not $DAGSTER_HOME's, which is every `make dev` and every command run from a clone.
REPO_INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "instance" / "dagster.yaml"
INSTANCE_CONFIG = "dagster.yaml"
CLI_INSTANCE_CONFIG = "dagster-cli.yaml"
_SOURCE_MARK = "# generated from dagster.yaml sha256 "


def dagster_home() -> Path:
    """``$DAGSTER_HOME``, else ``<data root>/dagster``, created and exported (a run's code
    that opens the instance finds the same one)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home())
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def prepare_instance(*, clear_stale: bool = True):
    """The project's Dagster instance under the data root (created on first use), with the
    runs whose process is gone cleared: a killed command must never block the next one."""
    from dagster import DagsterInstance

    from butterquant_dagster import runs

    home = dagster_home()
    with instance_lock(home):
        config = home / INSTANCE_CONFIG
        if not config.exists() and REPO_INSTANCE_CONFIG.exists():
            shutil.copyfile(REPO_INSTANCE_CONFIG, config)
        instance = DagsterInstance.from_config(str(home), config_filename=write_cli_config(home))
    if not clear_stale:
        return instance
    for info in runs.clear_stale(instance):
        print(
            f"butterquant: cleared {info.describe()}: marked failed, its pool slots freed",
            file=sys.stderr,
        )
    return instance


def instance_lock(home: Path):
    """Held while the instance is opened. Opening creates its SQLite storages on first use,
    and two processes creating them at once (two commands started together on a new data
    root) leave a run database that no later command can open ("more than one head")."""
    return exclusive_lock(home / ".instance.lock")


def write_cli_config(home: Path) -> str:
    """Write ``dagster-cli.yaml`` (``dagster.yaml`` with compute-log capture off) unless it is
    current; its file name. Called under the instance lock."""
    source = home / INSTANCE_CONFIG
    text = source.read_text(encoding="utf-8") if source.exists() else ""
    mark = _SOURCE_MARK + hashlib.sha256(text.encode()).hexdigest()
    target = home / CLI_INSTANCE_CONFIG
    if target.exists() and target.read_text(encoding="utf-8").startswith(mark + "\n"):
        return CLI_INSTANCE_CONFIG
    config = yaml.safe_load(text) or {}
    config["compute_logs"] = _no_capture()
    header = (
        f"{mark}\n# The butterquant command's view of this instance: dagster.yaml with "
        "compute-log capture off.\n# Rewritten whenever dagster.yaml changes; edit that.\n"
    )
    scratch = target.with_suffix(".tmp")
    scratch.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    scratch.replace(target)
    return CLI_INSTANCE_CONFIG


def _no_capture() -> dict[str, str]:
    """The instance setting of a compute-log manager that captures nothing: the one Dagster's
    ephemeral instance uses (it has no public name of its own)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as ephemeral:
        manager = type(ephemeral.compute_log_manager)
    return {"module": manager.__module__, "class": manager.__name__}
