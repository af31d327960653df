"""Resources: the configurable seams between Dagster and the domain in ``core/``.

Each resource turns settings (from the environment, editable in the launchpad) into a core
object. No rule or formula lives here.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache

import pandas as pd
from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from butterquant_dagster.core import settings
from butterquant_dagster.core.market.source import MarketDataError, MarketSource
from butterquant_dagster.core.market.synthetic import Scenario, SyntheticConfig, SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.market.validation import QualityPolicy
from butterquant_dagster.core.storage.lake import Lake

MARKET_SOURCES = ("synthetic", "files", "ibkr")


def setting_field(name: str):
    """A resource field whose default and description (shown in the launchpad) are the
    setting's: a default is written once, in the settings table."""
    return Field(default=settings.default(name), description=settings.description(name))


class LakeResource(ConfigurableResource):
    """Where the product writes: the data root with the Parquet lake and DuckDB views."""

    data_dir: str

    def lake(self) -> Lake:
        return Lake(self.data_dir)


@lru_cache(maxsize=4)
def _synthetic(
    seed: int,
    epoch: str,
    rate: float,
    universe: tuple[tuple[str, str], ...],
    scenario: str = "",
):
    # One simulated path per process and universe: a year's backfill simulates once.
    frame = pd.DataFrame(universe, columns=["symbol", "sector"])
    config = SyntheticConfig(
        seed=seed,
        epoch=dt.date.fromisoformat(epoch),
        rate=rate,
        scenario=Scenario.parse(scenario),
    )
    return SyntheticMarket(frame, config)


class MarketDataResource(ConfigurableResource):
    """The market-data source, the universe and the data-quality tolerances."""

    source: str = setting_field("BUTTERQUANT_MARKET_SOURCE")
    seed: int = setting_field("BUTTERQUANT_SEED")
    synthetic_epoch: str = setting_field("BUTTERQUANT_SYNTHETIC_EPOCH")
    synthetic_scenario: str = setting_field("BUTTERQUANT_SYNTHETIC_SCENARIO")
    universe_file: str = setting_field("BUTTERQUANT_UNIVERSE_FILE")
    universe_size: int = setting_field("BUTTERQUANT_UNIVERSE_SIZE")
    universe_symbols: str = setting_field("BUTTERQUANT_UNIVERSE_SYMBOLS")
    bars_path: str = setting_field("BUTTERQUANT_BARS_PATH")
    chains_path: str = setting_field("BUTTERQUANT_CHAINS_PATH")
    risk_free_rate: float = setting_field("BUTTERQUANT_RISK_FREE_RATE")
    as_of: str = ""
    max_missing_ticker_share: float = 0.02
    acknowledged_jumps: str = ""

    def universe(self) -> pd.DataFrame:
        symbols = [s for s in self.universe_symbols.split(",") if s.strip()]
        return select_universe(
            read_universe_file(self.universe_file or None),
            size=self.universe_size,
            symbols=symbols or None,
            allow_generated=self.source == "synthetic",
        )

    def market(self, universe: pd.DataFrame) -> MarketSource:
        if self.source == "synthetic":
            pairs = tuple(
                zip(universe["symbol"].astype(str), universe["sector"].astype(str), strict=True)
            )
            return _SyntheticSource(
                _synthetic(
                    self.seed,
                    self.synthetic_epoch,
                    self.risk_free_rate,
                    pairs,
                    self.synthetic_scenario,
                )
            )
        if self.source == "files":
            from butterquant_dagster.core.market.files import FileMarketSource

            if not self.bars_path:
                raise MarketDataError(
                    "market source 'files' needs bars_path (BUTTERQUANT_BARS_PATH)"
                )
            return FileMarketSource(
                universe,
                self.bars_path,
                self.chains_path or None,
                rate=self.risk_free_rate,
                seed=self.seed,
            )
        if self.source == "ibkr":
            from butterquant_dagster.core.market.ibkr import IBKRMarketSource

            # Chains are live snapshots: taken only while the session trades.
            return IBKRMarketSource.from_settings(
                universe, rate=self.risk_free_rate, clock=self.now
            )
        raise MarketDataError(
            f"unknown market source {self.source!r}; expected one of {MARKET_SOURCES}"
        )

    def now(self) -> dt.datetime:
        """The instant the run treats as now (fixed by ``as_of`` for replays and tests)."""
        if not self.as_of:
            return dt.datetime.now(dt.UTC)
        instant = dt.datetime.fromisoformat(self.as_of)
        if instant.tzinfo is None:
            raise MarketDataError(f"as_of {self.as_of!r} needs a timezone offset")
        return instant

    def quality_policy(self) -> QualityPolicy:
        return QualityPolicy(
            max_missing_ticker_share=self.max_missing_ticker_share,
            acknowledged_jumps=frozenset(
                j.strip() for j in self.acknowledged_jumps.split(",") if j.strip()
            ),
        )


class _SyntheticSource:
    """Adapts the synthetic market to the MarketSource protocol."""

    name = "synthetic"

    def __init__(self, market: SyntheticMarket):
        self._market = market

    def bars(self, sessions):
        return self._market.bars(sessions)

    def chains(self, session):
        return self._market.chains(session)

    def truth(self, sessions):
        return self._market.truth(sessions)


def _setting(name: str):
    """An EnvVar when the environment sets it (the UI shows it as such), else the default."""
    return EnvVar(name) if name in os.environ else settings.SETTINGS[name].default


def default_resources() -> dict[str, object]:
    """Every resource from the environment's settings (the lake's IO manager is added where
    the definitions are bound, ``definitions.py``: it belongs to the Dagster layer)."""
    lake = LakeResource(data_dir=str(settings.data_root()))
    market = MarketDataResource(
        source=_setting("BUTTERQUANT_MARKET_SOURCE"),
        seed=settings.value("BUTTERQUANT_SEED"),
        synthetic_epoch=settings.env("BUTTERQUANT_SYNTHETIC_EPOCH"),
        synthetic_scenario=settings.env("BUTTERQUANT_SYNTHETIC_SCENARIO"),
        universe_file=_setting("BUTTERQUANT_UNIVERSE_FILE"),
        universe_size=settings.value("BUTTERQUANT_UNIVERSE_SIZE"),
        universe_symbols=_setting("BUTTERQUANT_UNIVERSE_SYMBOLS"),
        bars_path=_setting("BUTTERQUANT_BARS_PATH"),
        chains_path=_setting("BUTTERQUANT_CHAINS_PATH"),
        risk_free_rate=float(settings.env("BUTTERQUANT_RISK_FREE_RATE")),
    )
    return {
        "lake": lake,
        "market": market,
        "scan": ScanResource(),
        "models": ModelsResource(
            data_dir=str(settings.data_root()),
            force=settings.value("BUTTERQUANT_FORCE_TRAINING"),
            training_tickers=settings.env("BUTTERQUANT_TRAINING_TICKERS"),
            regime_index_symbol=settings.env("BUTTERQUANT_REGIME_INDEX_SYMBOL"),
            age_warn_days=settings.value("BUTTERQUANT_MODEL_AGE_WARN_DAYS"),
            age_fail_days=settings.value("BUTTERQUANT_MODEL_AGE_FAIL_DAYS"),
        ),
        "trading": trading_resource(),
        "monitoring": monitoring_resource(),
    }


# Sessions of bars behind each scanned session: a year of signals (the scan assets' partition
# mapping reads this many).
SCAN_LOOKBACK_SESSIONS = 252


class ScanResource(ConfigurableResource):
    """How the daily scan builds, scores and ranks candidates."""

    min_dte: int = 7
    max_dte: int = 60
    center_band: float = 0.10
    max_width_steps: int = 3
    lookback_sessions: int = SCAN_LOOKBACK_SESSIONS
    min_history_sessions: int = 60
    per_ticker: int = 3
    max_outcome_rows: int = 250_000

    def candidate_rules(self):
        from butterquant_dagster.core.scan.candidates import CandidateRules

        return CandidateRules(
            min_dte=self.min_dte,
            max_dte=self.max_dte,
            center_band=self.center_band,
            max_width_steps=self.max_width_steps,
        )


class ModelsResource(ConfigurableResource):
    """Where models live and how they are trained, compared and aged."""

    data_dir: str
    max_training_rows: int = 60_000
    training_sessions: int = 0  # 0 = every session with resolved outcomes
    n_folds: int = 4
    min_training_rows: int = 500
    min_class_rows: int = 50
    force: bool = setting_field("BUTTERQUANT_FORCE_TRAINING")
    training_tickers: str = setting_field("BUTTERQUANT_TRAINING_TICKERS")
    promotion_brier_margin: float = 0.0005
    max_ece_increase: float = 0.01
    regime_index_symbol: str = setting_field("BUTTERQUANT_REGIME_INDEX_SYMBOL")
    age_warn_days: int = setting_field("BUTTERQUANT_MODEL_AGE_WARN_DAYS")
    age_fail_days: int = setting_field("BUTTERQUANT_MODEL_AGE_FAIL_DAYS")
    seed: int = 7

    def training_ticker_set(self) -> set[str]:
        """The tickers the probability model trains on (empty: all of them)."""
        return {t.strip().upper() for t in self.training_tickers.split(",") if t.strip()}

    def registry(self):
        from pathlib import Path

        from butterquant_dagster.core.ml.registry import ModelRegistry

        return ModelRegistry(Path(self.data_dir) / "models")


class TradingResource(ConfigurableResource):
    """The broker, the ledger, the portfolio rules and the risk limits.

    The paper broker replays history: an execution partition of a past session runs at
    that session's decision time (15 minutes before its close), so backfills and the demo
    trade as they would have on the day. IBKR always runs on the wall clock.
    """

    data_dir: str
    broker: str = setting_field("BUTTERQUANT_BROKER")
    ib_host: str = setting_field("BUTTERQUANT_IB_HOST")
    ib_port: int = setting_field("BUTTERQUANT_IB_PORT")
    ib_client_id: int = setting_field("BUTTERQUANT_IB_CLIENT_ID")
    ib_account: str = setting_field("BUTTERQUANT_IB_ACCOUNT")
    live_trading: bool = setting_field("BUTTERQUANT_LIVE_TRADING")
    kill_switch: bool = setting_field("BUTTERQUANT_KILL_SWITCH")
    send_orders: bool = setting_field("BUTTERQUANT_SEND_ORDERS")
    initial_capital: float = setting_field("BUTTERQUANT_INITIAL_CAPITAL")
    max_positions: int = setting_field("BUTTERQUANT_MAX_POSITIONS")
    ai_track_slots: int = setting_field("BUTTERQUANT_AI_TRACK_SLOTS")
    max_sector_positions: int = setting_field("BUTTERQUANT_MAX_SECTOR_POSITIONS")
    allocation: float = setting_field("BUTTERQUANT_ALLOCATION")
    min_success_prob: float = setting_field("BUTTERQUANT_MIN_SUCCESS_PROB")
    min_expected_yield: float = setting_field("BUTTERQUANT_MIN_EXPECTED_YIELD")
    max_spread_pct: float = setting_field("BUTTERQUANT_MAX_SPREAD_PCT")
    min_open_interest: int = setting_field("BUTTERQUANT_MIN_OPEN_INTEREST")
    max_capital_at_risk: float = setting_field("BUTTERQUANT_MAX_CAPITAL_AT_RISK")
    max_order_loss: float = setting_field("BUTTERQUANT_MAX_ORDER_LOSS")
    max_orders_per_day: int = setting_field("BUTTERQUANT_MAX_ORDERS_PER_DAY")
    limit_concession: float = setting_field("BUTTERQUANT_LIMIT_CONCESSION")
    paper_slippage: float = setting_field("BUTTERQUANT_PAPER_SLIPPAGE")
    reprice_steps: int = setting_field("BUTTERQUANT_REPRICE_STEPS")
    reprice_wait_seconds: float = setting_field("BUTTERQUANT_REPRICE_WAIT_SECONDS")
    exit_max_slippage: float = setting_field("BUTTERQUANT_EXIT_MAX_SLIPPAGE")

    def order_policy(self):
        from butterquant_dagster.core.trading.order_policy import OrderPolicy

        return OrderPolicy(
            steps=self.reprice_steps,
            wait_seconds=self.reprice_wait_seconds,
            exit_max_slippage=self.exit_max_slippage,
        )

    def pause(self, seconds: float) -> None:
        """The wait between rungs: real for a live broker, none for the paper broker (its
        fills are judged on the session's quotes, whenever the rungs are sent)."""
        if self.broker != "paper":
            import time

            time.sleep(seconds)

    def ledger(self):
        from pathlib import Path

        from butterquant_dagster.core.trading.ledger import Ledger

        return Ledger(Path(self.data_dir) / "ledger.duckdb", self.initial_capital)

    def rules(self):
        from dataclasses import fields

        from butterquant_dagster.core.trading.rules import PortfolioRules

        # The rules this resource configures share their names with its fields.
        shared = {f.name for f in fields(PortfolioRules)} & set(type(self).model_fields)
        return PortfolioRules(**{name: getattr(self, name) for name in shared})

    def limits(self):
        from pathlib import Path

        from butterquant_dagster.core.trading.rules import RiskLimits

        return RiskLimits(
            max_positions=self.max_positions,
            max_capital_at_risk=self.max_capital_at_risk,
            max_order_loss=self.max_order_loss,
            max_orders_per_day=self.max_orders_per_day,
            kill_switch=self.kill_switch,
            kill_file=Path(self.data_dir) / "KILL_SWITCH",
            send_orders=self.send_orders,
            live_trading=self.live_trading,
            live_account=self.ib_account,
        )

    def decision_time(self, session: dt.date, wall: dt.datetime) -> dt.datetime:
        """When the session's orders go out: now, or for a past session on the paper
        broker, 15 minutes before that session's close."""
        from butterquant_dagster.core import calendar

        if self.broker == "paper" and session < wall.astimezone(calendar.EXCHANGE_TZ).date():
            return calendar.session_close(session) - dt.timedelta(minutes=15)
        return wall

    def close_time(self, session: dt.date, wall: dt.datetime) -> dt.datetime:
        """When a session's fills are collected: now, or for a past session on the paper
        broker, its close (so an order that never reached its price has expired)."""
        from butterquant_dagster.core import calendar

        if self.broker == "paper" and session < wall.astimezone(calendar.EXCHANGE_TZ).date():
            return calendar.session_close(session)
        return wall

    def connect(self, lake: Lake, clock):
        """The configured broker; ``clock`` is the run's notion of now."""
        if self.broker == "paper":
            from pathlib import Path

            from butterquant_dagster.core.brokers.paper import PaperBroker

            @lru_cache(maxsize=4)
            def chains(session: dt.date):
                key = session.isoformat()
                if key not in lake.partitions("option_chains"):
                    return None
                return lake.read("option_chains", [key])

            return PaperBroker(
                Path(self.data_dir) / "paper_broker.duckdb",
                chains,
                clock,
                slippage=self.paper_slippage,
            )
        if self.broker == "ibkr":
            from butterquant_dagster.core.brokers.ibkr import IBKRBroker

            return IBKRBroker(
                host=self.ib_host,
                port=self.ib_port,
                client_id=self.ib_client_id,
                account=self.ib_account,
            )
        raise ValueError(f"unknown broker {self.broker!r}; expected paper or ibkr")


def trading_resource() -> TradingResource:
    """Every field is the setting of its name: ``ib_port`` is ``BUTTERQUANT_IB_PORT``."""
    values = {
        name: settings.env(f"BUTTERQUANT_{name.upper()}")
        for name in TradingResource.model_fields
        if name != "data_dir"
    }
    values["ib_account"] = _setting("BUTTERQUANT_IB_ACCOUNT")
    return TradingResource(data_dir=str(settings.data_root()), **values)


class MonitoringResource(ConfigurableResource):
    """Where reports are written, what they are compared with, and when drift is acted on."""

    data_dir: str
    benchmark_symbol: str = setting_field("BUTTERQUANT_BENCHMARK_SYMBOL")
    drift_min_hit_rate: float = setting_field("BUTTERQUANT_DRIFT_MIN_HIT_RATE")
    drift_min_accuracy: float = setting_field("BUTTERQUANT_DRIFT_MIN_ACCURACY")
    drift_significance: float = setting_field("BUTTERQUANT_DRIFT_SIGNIFICANCE")
    drift_calibration_margin: float = setting_field("BUTTERQUANT_DRIFT_CALIBRATION_MARGIN")
    drift_ece_warn: float = setting_field("BUTTERQUANT_DRIFT_ECE_WARN")
    drift_ece_retrain: float = setting_field("BUTTERQUANT_DRIFT_ECE_RETRAIN")
    drift_yield_margin: float = setting_field("BUTTERQUANT_DRIFT_YIELD_MARGIN")

    def thresholds(self):
        from butterquant_dagster.core.monitoring.drift import DriftThresholds

        return DriftThresholds(
            min_hit_rate=self.drift_min_hit_rate,
            min_accuracy=self.drift_min_accuracy,
            significance=self.drift_significance,
            calibration_margin=self.drift_calibration_margin,
            ece_warn=self.drift_ece_warn,
            ece_retrain=self.drift_ece_retrain,
            yield_margin=self.drift_yield_margin,
        )

    def root(self):
        from pathlib import Path

        return Path(self.data_dir)


def monitoring_resource() -> MonitoringResource:
    """Every field is the setting of its name, like the trading resource."""
    values = {
        name: settings.env(f"BUTTERQUANT_{name.upper()}")
        for name in MonitoringResource.model_fields
        if name != "data_dir"
    }
    return MonitoringResource(data_dir=str(settings.data_root()), **values)
