"""The CLI's layout, kept: one module per command under ``commands/``, commands share only the
underscore modules, nothing but the entry point imports ``cli`` (the run-failure sensor
included), and every command the parser offers has its module."""

from __future__ import annotations

import ast
from pathlib import Path

from butterquant_dagster import cli

PACKAGE = Path(cli.__file__).resolve().parent
COMMANDS = PACKAGE / "commands"


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_a_command_imports_no_other_command():
    commands = {p.stem for p in COMMANDS.glob("*.py") if not p.stem.startswith("_")}
    for path in COMMANDS.glob("*.py"):
        others = {f"butterquant_dagster.commands.{c}" for c in commands - {path.stem}}
        assert not _imported(path) & others, path.name


def test_nothing_in_the_package_imports_the_entry_point():
    for path in PACKAGE.rglob("*.py"):
        if path != PACKAGE / "cli.py":
            imported = _imported(path)
            assert "butterquant_dagster.cli" not in imported, path
            assert "butterquant_dagster.cli.main" not in imported, path


def test_every_command_has_its_module():
    assert {p.stem for p in COMMANDS.glob("*.py") if not p.stem.startswith("_")} == set(
        cli.COMMAND_MODULES
    )


def test_the_entry_point_holds_no_command():
    tree = ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8"))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert functions == {"build_parser", "main", "_handle", "_load_dotenv"}
