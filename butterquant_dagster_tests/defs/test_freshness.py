"""The UI's freshness policies and the health report's rules are one definition."""

from __future__ import annotations

import datetime as dt

import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.defs.freshness import FRESHNESS_RULES, freshness_policy
from butterquant_dagster.defs.ops.health import freshness_rules
from butterquant_dagster_tests.defs.helpers import make_defs


def test_the_health_report_checks_the_rules_the_policies_are_built_from():
    assert freshness_rules() == tuple(FRESHNESS_RULES.values())
    assert [rule.asset for rule in freshness_rules()] == list(FRESHNESS_RULES)


@pytest.mark.parametrize(
    ("asset", "deadline"),
    [
        ("daily_bars", "30 17 * * 1-5"),
        ("option_chains", "30 17 * * 1-5"),
        ("scan_rankings", "15 16 * * 1-5"),
    ],
)
def test_each_table_carries_its_policy(tmp_path, asset, deadline):
    """The snapshot is due 30 minutes after the close plus the hour's grace; the scan 45
    minutes before the next close plus the grace."""
    (spec,) = make_defs(tmp_path).resolve_assets_def(asset).specs
    assert spec.freshness_policy == freshness_policy(asset)
    assert spec.freshness_policy.deadline_cron == deadline
    assert spec.freshness_policy.timezone == "America/New_York"


@pytest.mark.parametrize("asset", list(FRESHNESS_RULES))
@pytest.mark.parametrize("day", ["2025-07-03", "2025-11-28", "2025-12-24", "2025-07-07"])
def test_a_run_on_time_passes_on_regular_and_early_close_days(asset, day):
    """The earliest on-time landing of the day (its close plus the schedule's offset, with
    no grace used) falls inside the policy's window before the deadline."""
    rule = FRESHNESS_RULES[asset]
    policy = freshness_policy(asset)
    session = dt.date.fromisoformat(day)
    landed = calendar.session_close(session) + rule.due_after_close - dt.timedelta(hours=1)
    hour, minute = int(policy.deadline_cron.split()[1]), int(policy.deadline_cron.split()[0])
    deadline = landed.replace(hour=hour, minute=minute)
    assert deadline - policy.lower_bound_delta <= landed <= deadline, (asset, day)


def test_a_day_without_a_run_fails_the_policy():
    """A materialization from the session before falls outside the window: a missed
    snapshot shows as late."""
    policy = freshness_policy("daily_bars")
    yesterday = calendar.session_close(dt.date(2025, 7, 7)) + dt.timedelta(minutes=30)
    deadline = calendar.session_close(dt.date(2025, 7, 8)).replace(hour=17, minute=30)
    assert yesterday < deadline - policy.lower_bound_delta
