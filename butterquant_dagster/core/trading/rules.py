"""The portfolio's rules and risk limits as plain values, read from settings in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from butterquant_dagster.core import settings
from butterquant_dagster.core.scan.score import EXIT_RULES

AI_TRACK, BASELINE_TRACK = "ai", "baseline"


@dataclass(frozen=True)
class PortfolioRules:
    max_positions: int = 20
    ai_track_slots: int = 10
    max_sector_positions: int = 5
    allocation: float = 1000.0
    min_success_prob: float = 0.25
    min_expected_yield: float = -250.0  # per $1,000 at risk, after costs
    max_spread_pct: float = 0.25
    min_open_interest: int = 100
    # risk level -> (stop-loss share of max loss, take-profit share of max profit)
    exit_shares: dict = field(default_factory=lambda: dict(EXIT_RULES))
    time_stop_dte: int = 7  # close when fewer calendar days than this remain
    vol_stop_rise: float = 0.30  # close when the centre's implied vol rose this much
    limit_concession: float = 0.25

    def slots(self, track: str) -> int:
        if track == AI_TRACK:
            return min(self.ai_track_slots, self.max_positions)
        return max(self.max_positions - self.ai_track_slots, 0)

    @classmethod
    def from_settings(cls) -> PortfolioRules:
        return cls(
            max_positions=int(settings.env("BUTTERQUANT_MAX_POSITIONS")),
            ai_track_slots=int(settings.env("BUTTERQUANT_AI_TRACK_SLOTS")),
            max_sector_positions=int(settings.env("BUTTERQUANT_MAX_SECTOR_POSITIONS")),
            allocation=float(settings.env("BUTTERQUANT_ALLOCATION")),
            min_success_prob=float(settings.env("BUTTERQUANT_MIN_SUCCESS_PROB")),
            min_expected_yield=float(settings.env("BUTTERQUANT_MIN_EXPECTED_YIELD")),
            max_spread_pct=float(settings.env("BUTTERQUANT_MAX_SPREAD_PCT")),
            min_open_interest=int(settings.env("BUTTERQUANT_MIN_OPEN_INTEREST")),
            limit_concession=float(settings.env("BUTTERQUANT_LIMIT_CONCESSION")),
        )


@dataclass(frozen=True)
class RiskLimits:
    max_positions: int = 20
    max_capital_at_risk: float = 25_000.0
    max_order_loss: float = 1_250.0
    max_orders_per_day: int = 40
    kill_switch: bool = False
    kill_file: Path | None = None
    live_trading: bool = False
    live_account: str = ""

    def kill_switch_on(self) -> bool:
        return self.kill_switch or (self.kill_file is not None and self.kill_file.exists())

    @classmethod
    def from_settings(cls) -> RiskLimits:
        return cls(
            max_positions=int(settings.env("BUTTERQUANT_MAX_POSITIONS")),
            max_capital_at_risk=float(settings.env("BUTTERQUANT_MAX_CAPITAL_AT_RISK")),
            max_order_loss=float(settings.env("BUTTERQUANT_MAX_ORDER_LOSS")),
            max_orders_per_day=int(settings.env("BUTTERQUANT_MAX_ORDERS_PER_DAY")),
            kill_switch=settings.env("BUTTERQUANT_KILL_SWITCH").lower() in ("1", "true", "yes"),
            kill_file=settings.data_root() / "KILL_SWITCH",
            live_trading=settings.env("BUTTERQUANT_LIVE_TRADING").lower() in ("1", "true", "yes"),
            live_account=settings.env("BUTTERQUANT_IB_ACCOUNT"),
        )
