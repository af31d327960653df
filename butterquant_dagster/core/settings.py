"""Settings from the environment, with the defaults of the embedded demo.

One table of every setting, so `.env.example`, the resources and the CLI agree. Values are
read when definitions are built; secrets never pass through here (they go straight from the
environment into the resource that needs them, via Dagster's ``EnvVar``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# name -> (default, description); the default "" means unset.
SETTINGS: dict[str, tuple[str, str]] = {
    "BUTTERQUANT_DATA_DIR": (
        "data",
        "Data root: lake/, warehouse.duckdb, models/, reports/, dagster/ (the instance).",
    ),
    "BUTTERQUANT_PARTITIONS_START": (
        "2015-01-02",
        "First NYSE session that is a partition (set earlier for older real files).",
    ),
    "BUTTERQUANT_MARKET_SOURCE": ("synthetic", "synthetic | files"),
    "BUTTERQUANT_SEED": ("7", "Seed of the synthetic market."),
    "BUTTERQUANT_SYNTHETIC_EPOCH": (
        "2015-01-02",
        "First session of the synthetic market's path (no data before it).",
    ),
    "BUTTERQUANT_UNIVERSE_FILE": (
        "",
        "Universe CSV (symbol,name,sector); the packaged S&P 500 if unset.",
    ),
    "BUTTERQUANT_UNIVERSE_SIZE": (
        "50",
        "First N tickers of the universe file; 0 = all; above the file = generated (synthetic).",
    ),
    "BUTTERQUANT_UNIVERSE_SYMBOLS": ("", "Comma-separated tickers; overrides the size."),
    "BUTTERQUANT_BARS_PATH": ("", "Files source: a directory of per-ticker files or one table."),
    "BUTTERQUANT_CHAINS_PATH": ("", "Files source: option chains; modelled from bars if unset."),
    "BUTTERQUANT_RISK_FREE_RATE": ("0.04", "Annual risk-free rate used for option models."),
    "BUTTERQUANT_TRAINING_TICKERS": (
        "",
        "Comma-separated tickers the probability model trains on; all when unset.",
    ),
    "BUTTERQUANT_FORCE_TRAINING": (
        "false",
        "Train even on too little data; such a model is marked forced and never promoted.",
    ),
}


def env(name: str) -> str:
    default, _ = SETTINGS[name]
    return os.environ.get(name, default).strip()


def data_root() -> Path:
    """The data root as an absolute path (relative values are taken from the cwd)."""
    return Path(env("BUTTERQUANT_DATA_DIR")).expanduser().resolve()


def dagster_home() -> Path:
    return data_root() / "dagster"


@dataclass(frozen=True)
class Settings:
    """What shapes the definitions themselves (partitions); the rest lives in resources."""

    partitions_start: str
    market_source: str = "synthetic"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            partitions_start=env("BUTTERQUANT_PARTITIONS_START"),
            market_source=env("BUTTERQUANT_MARKET_SOURCE"),
        )
