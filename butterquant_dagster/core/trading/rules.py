"""The portfolio's rules and risk limits as plain values (the trading resource fills them
from the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from butterquant_dagster.core.settings import default
from butterquant_dagster.core.trading.exit_rules import EXIT_RULES
from butterquant_dagster.core.trading.vocabulary import Track

AI_TRACK, BASELINE_TRACK = Track.AI, Track.BASELINE


@dataclass(frozen=True)
class PortfolioRules:
    """What the portfolio may enter and when it exits; every default is the setting of the
    field's name (``max_positions`` is ``BUTTERQUANT_MAX_POSITIONS``), described there."""

    max_positions: int = default("BUTTERQUANT_MAX_POSITIONS")
    ai_track_slots: int = default("BUTTERQUANT_AI_TRACK_SLOTS")
    max_sector_positions: int = default("BUTTERQUANT_MAX_SECTOR_POSITIONS")
    allocation: float = default("BUTTERQUANT_ALLOCATION")
    min_success_prob: float = default("BUTTERQUANT_MIN_SUCCESS_PROB")
    min_expected_yield: float = default("BUTTERQUANT_MIN_EXPECTED_YIELD")
    max_spread_pct: float = default("BUTTERQUANT_MAX_SPREAD_PCT")
    min_open_interest: int = default("BUTTERQUANT_MIN_OPEN_INTEREST")
    # risk level -> (stop-loss share of max loss, take-profit share of max profit)
    exit_shares: dict = field(default_factory=lambda: dict(EXIT_RULES))
    time_stop_dte: int = 7  # close when fewer calendar days than this remain
    vol_stop_rise: float = 0.30  # close when the centre's implied vol rose this much
    limit_concession: float = default("BUTTERQUANT_LIMIT_CONCESSION")

    def slots(self, track: str) -> int:
        if track == AI_TRACK:
            return min(self.ai_track_slots, self.max_positions)
        return max(self.max_positions - self.ai_track_slots, 0)


@dataclass(frozen=True)
class RiskLimits:
    """The pre-trade risk checks' limits; defaults from the settings of the same names."""

    max_positions: int = default("BUTTERQUANT_MAX_POSITIONS")
    max_capital_at_risk: float = default("BUTTERQUANT_MAX_CAPITAL_AT_RISK")
    max_order_loss: float = default("BUTTERQUANT_MAX_ORDER_LOSS")
    max_orders_per_day: int = default("BUTTERQUANT_MAX_ORDERS_PER_DAY")
    kill_switch: bool = default("BUTTERQUANT_KILL_SWITCH")
    kill_file: Path | None = None
    send_orders: bool = default("BUTTERQUANT_SEND_ORDERS")
    live_trading: bool = default("BUTTERQUANT_LIVE_TRADING")
    live_account: str = default("BUTTERQUANT_IB_ACCOUNT")

    def kill_switch_on(self) -> bool:
        return self.kill_switch or (self.kill_file is not None and self.kill_file.exists())
