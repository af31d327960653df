"""Steps that reach TWS / IB Gateway are retried when it cannot be reached, and only then."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, Failure, RetryPolicy, asset, materialize

from butterquant_dagster.core.brokers.base import BrokerConnectionError
from butterquant_dagster.core.market.source import MarketDataError, MarketDataUnavailable
from butterquant_dagster.defs.retries import TRANSIENT_RETRY, retry_only_if_transient
from butterquant_dagster_tests.defs.helpers import make_defs

BROKER_AND_MARKET_STEPS = ("daily_bars", "option_chains", "target_orders", "orders", "fills")


@pytest.mark.parametrize("name", BROKER_AND_MARKET_STEPS)
def test_broker_and_market_steps_carry_the_transient_retry(tmp_path, name):
    assert make_defs(tmp_path).resolve_assets_def(name).op.retry_policy == TRANSIENT_RETRY


def test_steps_that_read_only_the_lake_are_not_retried(tmp_path):
    defs = make_defs(tmp_path)
    for name in ("butterfly_candidates", "positions", "trade_journal", "scan_rankings"):
        assert defs.resolve_assets_def(name).op.retry_policy is None, name


def _attempts(error_on_first: Exception | None, error_always: Exception | None = None):
    """Materialize a step wrapped like the broker steps, under an immediate retry policy;
    return (success, how many times its body ran)."""
    calls = []

    @asset(retry_policy=RetryPolicy(max_retries=3))
    def reaches_out():
        with retry_only_if_transient("reaches_out"):
            calls.append(1)
            if error_always is not None:
                raise error_always
            if error_on_first is not None and len(calls) == 1:
                raise error_on_first
            return 1

    result = materialize([reaches_out], instance=DagsterInstance.ephemeral(), raise_on_error=False)
    return result.success, len(calls)


@pytest.mark.parametrize(
    "error",
    [
        MarketDataUnavailable("ibkr: cannot connect to TWS at 127.0.0.1:7497"),
        BrokerConnectionError("TWS dropped the connection"),
    ],
)
def test_an_unreachable_tws_is_tried_again(error):
    assert _attempts(error_on_first=error) == (True, 2)


@pytest.mark.parametrize(
    "error",
    [
        MarketDataError("bars.csv line 7: close is negative"),
        ValueError("malformed universe file"),
        Failure("quote_prices_valid failed on 2025-03-04"),
    ],
)
def test_bad_input_fails_once_with_its_message(error):
    assert _attempts(error_on_first=None, error_always=error) == (False, 1)


def test_a_tws_that_stays_down_fails_after_the_retries():
    down = MarketDataUnavailable("ibkr: cannot connect")
    assert _attempts(error_on_first=None, error_always=down) == (False, 4)


def test_the_message_of_bad_input_survives_the_wrapping():
    with pytest.raises(Failure) as raised, retry_only_if_transient("daily_bars"):
        raise MarketDataError("bars.csv line 7: close is negative")
    assert raised.value.allow_retries is False
    assert "bars.csv line 7: close is negative" in raised.value.description
