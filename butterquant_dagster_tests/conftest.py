"""Shared fixtures: temporary data roots, small universes, the real-bar fixtures."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REAL_BAR_FILES = ("nvda-1999-2014.csv", "orcl-1995-2014.csv", "yhoo-1996-2015.csv")

warnings.filterwarnings("ignore", module="dagster")
# Two pytest workers on two cores: one OpenMP thread each, or gradient boosting thrashes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The code location's partitions start where the oldest real fixture's tests run (the
# Yahoo files go back to the 1990s); set before any test imports the definitions.
os.environ["BUTTERQUANT_PARTITIONS_START"] = "1999-01-04"


@pytest.fixture
def real_bars_dir(tmp_path: Path) -> Path:
    """A private copy of the real Yahoo bar files, safe to corrupt in a test."""
    target = tmp_path / "bars"
    target.mkdir()
    for name in REAL_BAR_FILES:
        shutil.copy(FIXTURES / name, target / name)
    return target


@pytest.fixture
def real_universe_file(tmp_path: Path) -> Path:
    path = tmp_path / "universe.csv"
    path.write_text(
        "symbol,name,sector\n"
        "NVDA,NVIDIA,Information Technology\n"
        "ORCL,Oracle,Information Technology\n"
        "YHOO,Yahoo,Communication Services\n"
    )
    return path


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch) -> Path:
    """Point every setting that writes at a temporary data root."""
    root = tmp_path / "data"
    monkeypatch.setenv("BUTTERQUANT_DATA_DIR", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SIZE", "6")
    return root
