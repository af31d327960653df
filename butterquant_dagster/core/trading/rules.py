"""The portfolio's rules and risk limits as plain values (the trading resource fills them
from the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from butterquant_dagster.core.options.costs import FILL_SHARE
from butterquant_dagster.core.scan.score import EXIT_RULES
from butterquant_dagster.core.settings import DEFAULT_MIN_EXPECTED_YIELD

AI_TRACK, BASELINE_TRACK = "ai", "baseline"


@dataclass(frozen=True)
class PortfolioRules:
    max_positions: int = 20
    ai_track_slots: int = 10
    max_sector_positions: int = 5
    allocation: float = 1000.0
    min_success_prob: float = 0.25
    min_expected_yield: float = DEFAULT_MIN_EXPECTED_YIELD  # per $1,000 at risk, after costs
    max_spread_pct: float = 0.25
    min_open_interest: int = 100
    # risk level -> (stop-loss share of max loss, take-profit share of max profit)
    exit_shares: dict = field(default_factory=lambda: dict(EXIT_RULES))
    time_stop_dte: int = 7  # close when fewer calendar days than this remain
    vol_stop_rise: float = 0.30  # close when the centre's implied vol rose this much
    limit_concession: float = FILL_SHARE  # the cost model's expected fill (core.options.costs)

    def slots(self, track: str) -> int:
        if track == AI_TRACK:
            return min(self.ai_track_slots, self.max_positions)
        return max(self.max_positions - self.ai_track_slots, 0)


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
