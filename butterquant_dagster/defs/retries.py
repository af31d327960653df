"""Which failed steps Dagster tries again: those that reached out to TWS / IB Gateway (for
market data or orders) and could not reach it, never those that met bad input.

A retry of a step that read a malformed file or failed a data check would fail the same way
three more times and bury the one message that says what to fix; a dropped connection to
TWS at 15:46 is worth trying again a minute later. Order steps are safe to retry because
every order carries a client order id the broker deduplicates (docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Backoff, Failure, Jitter, RetryPolicy

from butterquant_dagster.core.brokers.base import BrokerConnectionError
from butterquant_dagster.core.market.source import MarketDataUnavailable

TRANSIENT_ERRORS = (MarketDataUnavailable, BrokerConnectionError)

# 30 s, 60 s, 120 s (with jitter): about 3.5 minutes, well inside the 15 minutes between
# the pre-close execution and the close.
TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=30, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)


@contextmanager
def retry_only_if_transient(step: str) -> Iterator[None]:
    """Let a transient error through (the step's retry policy tries again) and turn any
    other into a Failure Dagster does not retry, keeping its message."""
    try:
        yield
    except TRANSIENT_ERRORS:
        raise
    except Failure as failure:
        if failure.allow_retries is False:
            raise
        raise Failure(
            description=failure.description, metadata=failure.metadata, allow_retries=False
        ) from failure
    except Exception as exc:
        raise Failure(description=f"{step}: {exc}", allow_retries=False) from exc
