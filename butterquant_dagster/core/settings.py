"""Settings from the environment, with the defaults of the embedded demo.

One table of every setting, so `.env.example`, the resources and the CLI agree. Values are
read when definitions are built; secrets never pass through here (they go straight from the
environment into the resource that needs them, via Dagster's ``EnvVar``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from butterquant_dagster.core.options.costs import FILL_SHARE


class Setting(NamedTuple):
    """One setting: its default as written in ``.env.example`` ("" means unset), what it
    does, and the type its value is read as."""

    default: str
    description: str
    kind: type = str


_TRUE = ("1", "true", "yes")

# name -> Setting; the one place a setting's default is written. The resources, the rules
# and limits of core/trading, the CLI, .env.example and the README read it from here.
_TABLE: dict[str, tuple] = {
    "BUTTERQUANT_DATA_DIR": (
        "data",
        "Data root: lake/, warehouse.duckdb, models/, reports/, dagster/ (the instance).",
    ),
    "BUTTERQUANT_PARTITIONS_START": (
        "2015-01-02",
        "First NYSE session that is a partition (set earlier for older real files).",
    ),
    "BUTTERQUANT_MARKET_SOURCE": (
        "synthetic",
        "synthetic | files | ibkr (TWS / IB Gateway: bars, and chain snapshots in market hours)",
    ),
    "BUTTERQUANT_SEED": ("7", "Seed of the synthetic market.", int),
    "BUTTERQUANT_SYNTHETIC_EPOCH": (
        "2015-01-02",
        "First session of the synthetic market's path (no data before it).",
    ),
    "BUTTERQUANT_UNIVERSE_FILE": (
        "",
        "Universe CSV (symbol,name,sector), read in its own order; the packaged S&P 500 in "
        "its default order if unset.",
    ),
    "BUTTERQUANT_SYNTHETIC_SCENARIO": (
        "",
        "Synthetic market scenario from a date, for drill and tests: vrp_shift:<add>@<date> "
        "(variance risk premium) or vol_scale:<factor>@<date> (market volatility); none when "
        "unset.",
    ),
    "BUTTERQUANT_UNIVERSE_SIZE": (
        "50",
        "First N tickers of the universe: the packaged S&P 500 opens with the guides' AAPL, "
        "MSFT, NVDA, GOOGL, TSLA, BRK.B, then large names of the 11 sectors "
        "(data/default_universe.csv); 0 = all; above the file = generated (synthetic).",
        int,
    ),
    "BUTTERQUANT_UNIVERSE_SYMBOLS": ("", "Comma-separated tickers; overrides the size."),
    "BUTTERQUANT_BARS_PATH": ("", "Files source: a directory of per-ticker files or one table."),
    "BUTTERQUANT_CHAINS_PATH": ("", "Files source: option chains; modelled from bars if unset."),
    "BUTTERQUANT_RISK_FREE_RATE": ("0.04", "Annual risk-free rate used for option models.", float),
    "BUTTERQUANT_TRAINING_TICKERS": (
        "",
        "Comma-separated tickers the probability model trains on; all when unset.",
    ),
    "BUTTERQUANT_FORCE_TRAINING": (
        "false",
        "Train even on too little data; such a model is marked forced and never promoted.",
        bool,
    ),
    "BUTTERQUANT_BROKER": ("paper", "paper (the simulated default) | ibkr (TWS / IB Gateway)."),
    "BUTTERQUANT_IB_HOST": ("127.0.0.1", "IBKR: host of TWS or IB Gateway."),
    "BUTTERQUANT_IB_PORT": (
        "7497",
        "IBKR: API port (7497 TWS paper, 7496 TWS live, 4002/4001 Gateway).",
        int,
    ),
    "BUTTERQUANT_IB_CLIENT_ID": (
        "17",
        "IBKR: API client id of this system (unique per connection).",
        int,
    ),
    "BUTTERQUANT_IB_ACCOUNT": ("", "IBKR: the account id orders go to; required for live trading."),
    "BUTTERQUANT_IB_CLIENT": (
        "auto",
        "IBKR: API client library: auto (ib_async when installed, else ib_insync) | ib_async "
        "| ib_insync.",
    ),
    "BUTTERQUANT_LIVE_TRADING": (
        "false",
        "true allows a live (non-paper) IBKR account, and only BUTTERQUANT_IB_ACCOUNT.",
        bool,
    ),
    "BUTTERQUANT_KILL_SWITCH": (
        "false",
        "true blocks every new entry (exits still go out); so does a file data/KILL_SWITCH.",
        bool,
    ),
    "BUTTERQUANT_SEND_ORDERS": (
        "true",
        "false: the execution still reconciles and plans each session, and records every "
        "order as blocked instead of sending it (exits too); the broker setting is unchanged.",
        bool,
    ),
    "BUTTERQUANT_MAX_POSITIONS": ("20", "Open butterfly slots (both tracks together).", int),
    "BUTTERQUANT_AI_TRACK_SLOTS": (
        "10",
        "Slots of the AI track (model ranking); the rest go to the baseline track (rule measure).",
        int,
    ),
    "BUTTERQUANT_MAX_SECTOR_POSITIONS": ("5", "Open positions allowed in one sector.", int),
    "BUTTERQUANT_ALLOCATION": ("1000", "Dollars of capital at risk allocated to one entry.", float),
    "BUTTERQUANT_INITIAL_CAPITAL": ("100000", "Cash the ledger starts with.", float),
    "BUTTERQUANT_MIN_SUCCESS_PROB": (
        "0.25",
        "AI track: lowest model success probability entered.",
        float,
    ),
    "BUTTERQUANT_MIN_EXPECTED_YIELD": (
        "0",
        "Lowest expected yield per $1,000 after costs entered (model's on AI, rule's on "
        "baseline); below 0 would enter trades expected to lose.",
        float,
    ),
    "BUTTERQUANT_MAX_SPREAD_PCT": (
        "0.25",
        "Widest combo bid/ask spread, as a share of mid, entered.",
        float,
    ),
    "BUTTERQUANT_MIN_OPEN_INTEREST": ("100", "Lowest open interest of any leg entered.", int),
    "BUTTERQUANT_MAX_CAPITAL_AT_RISK": (
        "25000",
        "Risk check: capital at risk of all open positions.",
        float,
    ),
    "BUTTERQUANT_MAX_ORDER_LOSS": (
        "1250",
        "Risk check: largest loss one order may carry, dollars.",
        float,
    ),
    "BUTTERQUANT_MAX_ORDERS_PER_DAY": ("40", "Risk check: orders sent in one session.", int),
    "BUTTERQUANT_LIMIT_CONCESSION": (
        f"{FILL_SHARE:g}",
        "Share of the combo's half-spread the limit gives away from the mid (0 = quote the mid).",
        float,
    ),
    "BUTTERQUANT_PAPER_SLIPPAGE": (
        f"{FILL_SHARE:g}",
        "Paper broker: a buy fills when its limit reaches mid + this share of the half-spread.",
        float,
    ),
    "BUTTERQUANT_REPRICE_STEPS": (
        "3",
        "Orders start at the mid and move this many rungs toward their target price "
        "(entries: the cost model's expected fill, never above the planned limit).",
        int,
    ),
    "BUTTERQUANT_REPRICE_WAIT_SECONDS": (
        "20",
        "Live broker: seconds an order rests on a rung before it is repriced.",
        float,
    ),
    "BUTTERQUANT_EXIT_MAX_SLIPPAGE": (
        "1.0",
        "Stop-loss, time-stop and retried exits end at this share of the way from the mid "
        "to the natural price (1 = natural: marketable).",
        float,
    ),
    "BUTTERQUANT_REGIME_INDEX_SYMBOL": (
        "",
        "Ticker whose daily returns define the market regime (e.g. SPY, from the market "
        "source or the bars files); an equal-weighted index of the universe when unset.",
    ),
    "BUTTERQUANT_BENCHMARK_SYMBOL": (
        "",
        "Index bought and held as the reports' benchmark; an equal-weighted index of the "
        "universe when unset.",
    ),
    "BUTTERQUANT_DRIFT_MIN_HIT_RATE": (
        "0.50",
        "Drift: hit rate of high-confidence predictions below this asks for a retraining.",
        float,
    ),
    "BUTTERQUANT_DRIFT_MIN_ACCURACY": (
        "0.65",
        "Drift: accuracy (P >= 0.5 vs outcome) below this is a warning to investigate.",
        float,
    ),
    "BUTTERQUANT_MODEL_AGE_NOTICE_DAYS": ("14", "Health: model age that is noted.", int),
    "BUTTERQUANT_MODEL_AGE_WARN_DAYS": (
        "30",
        "Health: model age that asks to consider retraining.",
        int,
    ),
    "BUTTERQUANT_DRIFT_SIGNIFICANCE": (
        "0.01",
        "Drift: significance level of the tests of realized wins (and yield) against predicted.",
        float,
    ),
    "BUTTERQUANT_DRIFT_CALIBRATION_MARGIN": (
        "0.20",
        "Drift: relative gap of realized win rate vs mean prediction (either way) that, "
        "when significant, asks for a retraining.",
        float,
    ),
    "BUTTERQUANT_DRIFT_ECE_WARN": (
        "0.05",
        "Drift: ECE of resolved predictions above this (and above sampling noise) warns.",
        float,
    ),
    "BUTTERQUANT_DRIFT_ECE_RETRAIN": (
        "0.10",
        "Drift: ECE of resolved predictions above this (and above sampling noise) asks for "
        "a retraining.",
        float,
    ),
    "BUTTERQUANT_DRIFT_YIELD_MARGIN": (
        "100",
        "Drift: gap of mean realized vs predicted yield per $1,000 (either way) that, when "
        "significant, asks for a retraining.",
        float,
    ),
    "BUTTERQUANT_AUTOMATION_DEFAULT": (
        "running",
        "running | stopped: how the daily routine's schedules and the drift and fills sensors "
        "start when the daemon first sees them (the UI's toggle overrides it afterwards).",
    ),
    "BUTTERQUANT_MODEL_AGE_FAIL_DAYS": (
        "60",
        "Health: model age that fails the health check.",
        int,
    ),
    "BUTTERQUANT_MIN_FREE_DISK_GB": (
        "5",
        "Health: free disk under the data root below this fails.",
        float,
    ),
    "BUTTERQUANT_CACHE_RETENTION_DAYS": (
        "30",
        "Retention: cached downloads older than this go.",
        int,
    ),
    "BUTTERQUANT_LOG_RETENTION_DAYS": ("90", "Retention: run logs older than this go.", int),
    "BUTTERQUANT_HOT_STORE_LIMIT_GB": (
        "5",
        "Retention: scan history beyond this size is archived to Parquet (still queryable).",
        float,
    ),
    "BUTTERQUANT_BACKUP_KEEP": (
        "8",
        "Retention: backups kept in data/backups; older ones go after each backup.",
        int,
    ),
    "BUTTERQUANT_PRE_RESTORE_KEEP": (
        "2",
        "Retention: pre-restore copies (a restore's undo) kept; older ones go after a restore.",
        int,
    ),
    "BUTTERQUANT_ALERT_WEBHOOK": (
        "",
        "URL that run failures are posted to (JSON); none when unset. Treated as a secret.",
    ),
    "BUTTERQUANT_SLOT_WAIT_SECONDS": (
        "300",
        "Longest a command waits for a pool slot (the ledger) held by another live run before "
        "it gives up with the run that holds it and the command that recovers.",
        float,
    ),
}


SETTINGS: dict[str, Setting] = {name: Setting(*entry) for name, entry in _TABLE.items()}


def env(name: str) -> str:
    return os.environ.get(name, SETTINGS[name].default).strip()


def _typed(name: str, text: str) -> Any:
    kind = SETTINGS[name].kind
    if kind is bool:
        return text.strip().lower() in _TRUE
    try:
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"{name}={text!r}: expected {kind.__name__}") from exc


def value(name: str) -> Any:
    """The setting from the environment (or its default), as its type."""
    return _typed(name, env(name))


def data_root() -> Path:
    """The data root as an absolute path (relative values are taken from the cwd)."""
    return Path(env("BUTTERQUANT_DATA_DIR")).expanduser().resolve()


def default(name: str) -> Any:
    """The table's default of ``name`` as its type: what the dataclasses and resources start
    from, so a default is written once, here."""
    return _typed(name, SETTINGS[name].default)


def description(name: str) -> str:
    return SETTINGS[name].description


AUTOMATION_STATUSES = ("running", "stopped")
# Settings that were renamed: still set, they would be ignored in silence.
RENAMED = {"BUTTERQUANT_AUTOMATION_SENSORS_DEFAULT": "BUTTERQUANT_AUTOMATION_DEFAULT"}


def automation_running() -> bool:
    """Whether the daily routine's schedules and sensors start running once the daemon runs:
    a routine that must be switched on in the UI first is one that silently never happens."""
    for old, new in RENAMED.items():
        if old in os.environ:
            raise ValueError(f"{old} was renamed {new}; set {new} instead")
    value = env("BUTTERQUANT_AUTOMATION_DEFAULT").lower()
    if value not in AUTOMATION_STATUSES:
        raise ValueError(
            f"BUTTERQUANT_AUTOMATION_DEFAULT={value!r}: expected one of {AUTOMATION_STATUSES}"
        )
    return value == "running"


def slot_wait_seconds() -> float:
    """How long a run may wait for a pool slot: a bound, so a stuck holder is reported and
    the command ends instead of waiting in silence."""
    value = float(env("BUTTERQUANT_SLOT_WAIT_SECONDS"))
    if value <= 0:
        raise ValueError(f"BUTTERQUANT_SLOT_WAIT_SECONDS={value:g}: expected a positive number")
    return value


def dagster_home() -> Path:
    return data_root() / "dagster"
