"""The command's exit codes and the two ways a command ends early.

A command returns an exit code; bad input raises ``CliError`` and a failed run may raise
``RunFailed``, and the entry point (:mod:`butterquant_dagster.cli`) reports either the same
way for every command.
"""

from __future__ import annotations

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class CliError(Exception):
    """Bad input from the command line: reported in one line, exit code 2."""


class RunFailed(Exception):
    """A run of the command failed: its summary is reported (as JSON with --json), exit 1."""

    def __init__(self, summary) -> None:
        super().__init__(f"run {summary.run_id} of {summary.job} failed")
        self.summary = summary
