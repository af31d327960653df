"""Every repository path the code's docstrings and comments, the README and the docs name
exists: a renamed module or a doc that was never written is caught here, not by a reader.
And the README's UI section lists the asset graph's groups and assets as the code has them.

Three kinds of reference are checked:

- a path from the repository root: ``docs/scan.md``, ``butterquant_dagster/core/``,
  ``benchmarks/bench_scan.py``, ``deploy/``, ``butterquant_dagster_tests/fixtures``;
- a path inside the package, as the docs write them: ``core/trading/risk.py``,
  ``defs/ops/`` (the package first, then the tests: ``core/ml/test_regime.py``), and
  ``core/options/costs.fill_price``, a module and a name it must define;
- a Markdown link to a file, relative to the page, with its ``#anchor`` a heading there.

A path with a placeholder (``data/lake/<table>/``, ``*.csv``) is not a reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from butterquant_dagster_tests.defs.helpers import make_defs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "butterquant_dagster"
TESTS = "butterquant_dagster_tests"

_ROOTED = re.compile(
    r"(?<![\w./-])(?:docs|butterquant_dagster_tests|butterquant_dagster|benchmarks|deploy)"
    r"(?:/[\w.-]*)+"
)
_IN_PACKAGE = re.compile(r"(?<![\w./-])(?:core|defs)(?:/[\w.-]*)+")
_MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_PLACEHOLDER = re.compile(r"[<>{}*$]")


def _clean(match: re.Match, text: str) -> str | None:
    """The path a match names, or None when it is a placeholder; a sentence's full stop is
    not part of it."""
    end = match.end()
    if end < len(text) and _PLACEHOLDER.match(text[end]):
        return None
    return match.group(0).rstrip(".-")


def _defines(module: Path, name: str) -> bool:
    pattern = rf"^(?:def|class|async def)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]"
    return re.search(pattern, module.read_text(encoding="utf-8"), re.MULTILINE) is not None


def _exists_in_package(ref: str, root: Path) -> bool:
    for base in (root / PACKAGE, root / TESTS):
        if (base / ref).exists():
            return True
        # core/options/costs.fill_price: the module core/options/costs.py defines fill_price
        head, _, name = ref.rpartition(".")
        if name.isidentifier() and name not in ("py", "md"):
            module = base / f"{head}.py"
            if module.is_file() and _defines(module, name):
                return True
    return False


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", page.read_text(encoding="utf-8"), re.M)
    return {_slug(h) for h in headings}


def broken_references(text: str, source: Path, root: Path = ROOT) -> list[str]:
    """The references in ``text`` (the content of ``source``) that name nothing in
    ``root``, each as 'reference'."""
    broken = []
    for match in _ROOTED.finditer(text):
        ref = _clean(match, text)
        if ref and not (root / ref).exists():
            broken.append(ref)
    for match in _IN_PACKAGE.finditer(text):
        ref = _clean(match, text)
        if ref and not _exists_in_package(ref, root):
            broken.append(ref)
    if source.suffix == ".md":
        for target in _MD_LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            page = (source.parent / path).resolve() if path else source
            if not page.exists() or (
                anchor and page.suffix == ".md" and anchor not in _anchors(page)
            ):
                broken.append(target)
    return broken


def count_references(text: str) -> int:
    return len(_ROOTED.findall(text)) + len(_IN_PACKAGE.findall(text))


def _sources() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "deploy" / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    files += sorted((ROOT / PACKAGE).rglob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.py"))
    return [f for f in files if f.is_file()]


def test_every_named_repository_path_exists():
    broken = {}
    seen = 0
    for source in _sources():
        text = source.read_text(encoding="utf-8")
        seen += count_references(text)
        found = broken_references(text, source)
        if found:
            broken[str(source.relative_to(ROOT))] = found
    assert broken == {}, f"references to paths that do not exist: {broken}"
    # the scan really read the references (dozens of them), not an empty tree
    assert seen > 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("docs/scan_score.md documents each factor.", ["docs/scan_score.md"]),
        ("see `butterquant_dagster/core/nowhere.py`", ["butterquant_dagster/core/nowhere.py"]),
        ("run benchmarks/bench_nothing.py", ["benchmarks/bench_nothing.py"]),
        ("the domain in ``core/trading/nope.py``", ["core/trading/nope.py"]),
        ("priced by core/options/costs.no_such_function", ["core/options/costs.no_such_function"]),
        ("[a heading](docs/operations.md#no-such-heading)", ["docs/operations.md#no-such-heading"]),
        ("[gone](docs/gone.md)", ["docs/gone.md", "docs/gone.md"]),
        ("[gone](gone.md#a-heading)", ["gone.md#a-heading"]),
        # references that exist, and placeholders, are not reported
        ("docs/scan.md and `core/trading/risk.py` and deploy/", []),
        ("core/options/costs.fill_price and core/ml/test_regime.py", []),
        ("[the routine](docs/operations.md#the-routine), https://example.com/docs/x.md", []),
        ("data/lake/<table>/_quarantine/ and docs/<page>.md", []),
    ],
)
def test_a_missing_path_is_reported(text, expected):
    assert broken_references(text, ROOT / "README.md") == expected


def _readme_ui_groups(readme: str) -> dict[str, set[str]]:
    """The README's "The UI" table: group -> the assets its row names."""
    section = readme.split("\n## The UI\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.MULTILINE)
    return {group: set(re.findall(r"`(\w+)`", assets)) for group, assets in rows}


def test_the_readme_ui_section_lists_every_asset_group_and_its_assets(tmp_path):
    groups: dict[str, set[str]] = {}
    for spec in make_defs(tmp_path).resolve_all_asset_specs():
        groups.setdefault(spec.group_name, set()).add(spec.key.to_user_string())
    assert len(groups) >= 9
    assert _readme_ui_groups((ROOT / "README.md").read_text(encoding="utf-8")) == groups
