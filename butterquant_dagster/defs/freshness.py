"""When each daily table is due, defined once: the health report's freshness rules and the
Dagster freshness policies the UI shows are both read from here.

The health report is the authority: it knows the NYSE calendar and asks for the expected
*partition*. Dagster's cron freshness policy knows neither (it watches the asset's last
materialization, and a weekday holiday's deadline still ticks), so on a holiday the UI may
show a table as late until the next session lands; docs/decisions.md has the trade-off.
"""

from __future__ import annotations

import datetime as dt

from dagster import FreshnessPolicy

from butterquant_dagster.core.monitoring.health import FreshnessRule
from butterquant_dagster.defs.market.automation import MINUTES_AFTER_CLOSE
from butterquant_dagster.defs.scan.automation import SCAN_MINUTES_BEFORE_CLOSE

# How long a scheduled run may take to land before its partition counts as missing.
FRESHNESS_GRACE = dt.timedelta(hours=1)
REGULAR_CLOSE = dt.time(16, 0)
# A 13:00 early close lands everything three hours before the regular deadline.
EARLY_CLOSE_GAP = dt.timedelta(hours=3)

SNAPSHOT_DUE = dt.timedelta(minutes=MINUTES_AFTER_CLOSE) + FRESHNESS_GRACE
SCAN_DUE = -dt.timedelta(minutes=SCAN_MINUTES_BEFORE_CLOSE) + FRESHNESS_GRACE
BACKFILL_COMMAND = "butterquant backfill --start {start} --end {end}"

FRESHNESS_RULES = {
    "daily_bars": FreshnessRule("daily_bars", SNAPSHOT_DUE, BACKFILL_COMMAND),
    "option_chains": FreshnessRule("option_chains", SNAPSHOT_DUE, BACKFILL_COMMAND),
    # The scan of session D runs before the close of D + 1.
    "scan_rankings": FreshnessRule(
        "scan_rankings", SCAN_DUE, "butterquant scan --date {session}", sessions_later=1
    ),
}


def freshness_policy(asset: str) -> FreshnessPolicy:
    """The asset's rule as a weekday cron deadline in New York time: due ``due_after_close``
    after a regular close, and a materialization since the earliest landing of an
    early-close day counts."""
    rule = FRESHNESS_RULES[asset]
    close = dt.datetime.combine(dt.date(2000, 1, 3), REGULAR_CLOSE)
    deadline = close + rule.due_after_close
    return FreshnessPolicy.cron(
        deadline_cron=f"{deadline.minute} {deadline.hour} * * 1-5",
        lower_bound_delta=EARLY_CLOSE_GAP + FRESHNESS_GRACE,
        timezone="America/New_York",
    )
