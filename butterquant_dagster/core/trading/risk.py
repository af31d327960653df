"""Risk checks run on every order just before it is sent.

Each check returns the reason it blocks an order, or ``None``. A blocked order is recorded
with its reason and the others go on: one bad order never stops the session's exits.
Closing orders only face the checks that keep a close from being a mistake (session, price,
account); the capital and slot limits exist to stop new risk.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from butterquant_dagster.core import calendar
from butterquant_dagster.core.brokers.base import Account
from butterquant_dagster.core.trading.rules import RiskLimits
from butterquant_dagster.core.trading.vocabulary import Intent

ORDER_SENDING_OFF = (
    "order sending is off (BUTTERQUANT_SEND_ORDERS=false): planned and recorded, not sent"
)


@dataclass
class RiskState:
    """What the limits are measured against, updated as the session's orders go out."""

    open_positions: int
    capital_at_risk: float
    orders_today: int


def session_problem(now: dt.datetime, session: dt.date) -> str | None:
    """Orders go out only during their own session's trading hours."""
    local = now.astimezone(calendar.EXCHANGE_TZ)
    if local.date() != session:
        return f"the decision is for {session}, but today is {local.date()}"
    if not calendar.is_session(session):
        return f"{session} is not an NYSE session"
    opens, closes = calendar.session_open(session), calendar.session_close(session)
    if not opens <= local < closes:
        return (
            f"the market is closed at {local:%H:%M} New York time "
            f"(open {opens:%H:%M}-{closes:%H:%M})"
        )
    return None


def account_problem(account: Account, broker_name: str, limits: RiskLimits) -> str | None:
    """Live money only on explicit opt-in naming the account the broker reports."""
    if account.paper:
        if (
            limits.live_account
            and broker_name != "paper"
            and account.account_id != limits.live_account
        ):
            return (
                f"the broker reports account {account.account_id}, not the configured "
                f"{limits.live_account}"
            )
        return None
    if not limits.live_trading:
        return (
            f"account {account.account_id} is a live account and live trading is not enabled "
            "(set BUTTERQUANT_LIVE_TRADING=true and BUTTERQUANT_IB_ACCOUNT to it)"
        )
    if account.account_id != limits.live_account:
        return (
            f"live trading is enabled for {limits.live_account or '(no account)'}, but the "
            f"broker reports {account.account_id}"
        )
    return None


def price_problem(target: dict) -> str | None:
    low, high, limit = target["natural_low"], target["natural_high"], target["limit_price"]
    if not (low - 1e-9 <= limit <= high + 1e-9):
        return f"limit {limit:.2f} outside the legs' natural bounds {low:.2f}..{high:.2f}"
    return None


def entry_problem(target: dict, state: RiskState, limits: RiskLimits) -> str | None:
    if limits.kill_switch_on():
        return "kill switch on: no new entries"
    if state.open_positions >= limits.max_positions:
        return f"all {limits.max_positions} slots are taken"
    if target["order_max_loss"] > limits.max_order_loss:
        return (
            f"order max loss ${target['order_max_loss']:,.0f} above the "
            f"${limits.max_order_loss:,.0f} limit"
        )
    if state.capital_at_risk + target["capital_at_risk"] > limits.max_capital_at_risk:
        return (
            f"capital at risk would be ${state.capital_at_risk + target['capital_at_risk']:,.0f}, "
            f"above the ${limits.max_capital_at_risk:,.0f} limit"
        )
    return None


def order_problem(
    target: dict,
    state: RiskState,
    limits: RiskLimits,
    now: dt.datetime,
    account: str | None,
) -> str | None:
    """The first reason this order must not go out, checking the cheap things first."""
    if not limits.send_orders:
        return ORDER_SENDING_OFF
    if state.orders_today >= limits.max_orders_per_day:
        return f"{limits.max_orders_per_day} orders already sent this session"
    for problem in (
        account,
        session_problem(now, target["session"]),
        price_problem(target),
        entry_problem(target, state, limits) if target["intent"] == Intent.OPEN else None,
    ):
        if problem:
            return problem
    return None
