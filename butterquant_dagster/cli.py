"""The ``butterquant`` command: the entry point.

It assembles the parser from the commands under :mod:`butterquant_dagster.commands` (one
module per command, each with ``add_parser(sub)`` that registers it with its handler), reads
``./.env`` like ``dagster dev`` does, runs the handler and turns its outcome into the exit
code: 0 done, 1 a run (or a check) failed, 2 bad input.

Every command that produces data materializes through Dagster against the project's
instance (``<data root>/dagster``), so each run shows up in the UI with its lineage, logs
and checks, exactly as if it had been launched there.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings
from pathlib import Path

from butterquant_dagster import signals
from butterquant_dagster.commands._errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RUN_FAILED,
    CliError,
    RunFailed,
)
from butterquant_dagster.commands._output import report_failure
from butterquant_dagster.core.storage.duckdb_files import CorruptDatabase

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_RUN_FAILED", "build_parser", "main"]

# In the order `butterquant --help` lists them.
COMMAND_MODULES = (
    "backfill",
    "demo",
    "scan",
    "train",
    "models",
    "analyze",
    "status",
    "sessions",
    "execute",
    "positions",
    "journal",
    "report",
    "backtest",
    "health",
    "backup",
    "restore",
    "sql",
    "runs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="butterquant",
        description="Run the butterquant Dagster project from the terminal. Data root: "
        "$BUTTERQUANT_DATA_DIR (default ./data); runs appear in the Dagster UI.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"butterquant_dagster.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):  # `butterquant sql ... | head` ends quietly
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Dagster marks some of the APIs used here beta/preview; that is for us, not the user.
    warnings.filterwarnings("ignore", message=r".*(currently in beta|currently in preview).*")
    warnings.filterwarnings("ignore", module="dagster")
    _load_dotenv()
    args = build_parser().parse_args(argv)
    with signals.stop_on_signals() as received:
        try:
            return _handle(args)
        except KeyboardInterrupt:
            print(f"butterquant: stopped by {signals.name(received)}", file=sys.stderr)
            return signals.exit_code(received)


def _handle(args) -> int:
    try:
        return args.handler(args)
    except CliError as exc:
        print(f"butterquant: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunFailed as exc:
        return report_failure(exc.summary, getattr(args, "json", False))
    except CorruptDatabase as exc:  # names the file and the `butterquant restore` to run
        print(f"butterquant: error: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED


def _load_dotenv() -> None:
    """Read ./.env like `dagster dev` does, so the CLI and the UI share one configuration
    (variables already set in the environment win)."""
    from dotenv import load_dotenv

    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        load_dotenv(env_file, override=False)


if __name__ == "__main__":
    sys.exit(main())
