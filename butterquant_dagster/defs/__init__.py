"""The Dagster layer: thin assets, checks, jobs, schedules and sensors over ``core/``.

Two beta parameters are used on purpose, and their warnings are silenced here, before any
asset module is imported, so the logs show only warnings that ask for action:
``backfill_policy`` (a range of sessions runs as one run: a year's backfill is one run, not
250) and ``allow_nonexistent_upstream_partitions`` (a lookback that reaches before the first
partition is a short history, not an error). Any other beta or preview use still warns.
"""

import warnings

from dagster import BetaWarning

warnings.filterwarnings(
    "ignore",
    message=r"Parameter `(backfill_policy|allow_nonexistent_upstream_partitions)` ",
    category=BetaWarning,
)
