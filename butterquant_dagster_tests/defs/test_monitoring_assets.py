"""The performance, drift and report assets on a traded synthetic desk, and on an empty data
root (every report still renders, saying "not enough data")."""

import datetime as dt

import pandas as pd
import pytest
from dagster import DagsterInstance

from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.monitoring.automation import REPORT_JOBS
from butterquant_dagster.defs.monitoring.reports import run_stats
from butterquant_dagster.defs.trading.automation import EXECUTION_JOB
from butterquant_dagster.resources import TradingResource
from butterquant_dagster_tests.defs.helpers import failure_messages, market_and_scan, run_market
from butterquant_dagster_tests.defs.test_trading_assets import HISTORY, SCANNED, trading_defs

TRADED = ["2025-04-01", "2025-04-02", "2025-04-03", "2025-04-04"]
REPORTED = "2025-04-04"  # a Friday: the last session of its week


def metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    defs = trading_defs(root)
    instance = DagsterInstance.ephemeral()
    market_and_scan(defs, HISTORY, SCANNED, instance)
    for session in TRADED:
        traded = run_market(defs, session, session, instance=instance, job_name=EXECUTION_JOB)
        assert traded.success, failure_messages(traded)
    runs = {
        period: run_market(defs, REPORTED, REPORTED, instance=instance, job_name=job)
        for period, job in REPORT_JOBS.items()
    }
    ledger = TradingResource(data_dir=str(root)).ledger()
    return {"root": root, "runs": runs, "ledger": ledger, "instance": instance}


def test_each_report_job_materializes_the_figures_and_its_page(desk):
    for period, result in desk["runs"].items():
        assert result.success, (period, failure_messages(result))
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialized == {"performance_report", "drift_report", f"{period}_report"}


def test_performance_metadata_matches_the_ledger(desk):
    figures = metadata(desk["runs"]["daily"], "performance_report")
    ledger = desk["ledger"]
    journal = ledger.journal()
    equity = ledger.equity()
    assert figures["trades"] == len(journal)
    if len(journal):
        assert figures["win_rate"] == pytest.approx(journal["won"].mean(), abs=1e-4)
    else:
        assert figures["win_rate"] == "not enough data"
    # Total P/L to date is the account's change since the ledger's opening cash.
    expected = equity["equity"].iloc[-1] - ledger.initial_capital
    assert figures["total_pnl"] == pytest.approx(expected, abs=0.01)
    assert figures["benchmark"] == "equal-weighted universe"
    assert isinstance(figures["benchmark_return"], float)
    stored = Lake(desk["root"]).read("performance_report", [REPORTED])
    to_date = stored.loc[stored["scope"] == "to_date"].set_index("figure")["value"]
    assert to_date["trades"] == len(journal)


def test_drift_report_without_a_model_says_so(desk):
    figures = metadata(desk["runs"]["daily"], "drift_report")
    assert figures["status"] == "OK"
    assert "model" in figures["reasons"].lower() or "not enough data" in figures["reasons"]
    assert figures["ece_candidates"] == "not enough data"
    # The calibration-in-the-large and yield figures are on the asset, unmeasured here.
    for name in ("wins", "expected_wins", "calibration_z", "yield_realized", "yield_predicted"):
        assert figures[name] == "not enough data"
    assert figures["yield_reliability"] == "(none)"


def test_daily_page_stands_alone_with_plots_and_the_days_orders(desk):
    figures = metadata(desk["runs"]["daily"], "daily_report")
    path = desk["root"] / "reports" / "daily" / f"{REPORTED}.html"
    assert figures["report_path"] == str(path)
    page = path.read_text()
    assert f"<title>butterquant daily report {REPORTED}</title>" in page
    assert "data:image/png;base64," in page  # the equity curve, embedded
    assert "http://" not in page and "https://" not in page  # nothing loaded from outside
    orders = desk["ledger"].orders(pd.Timestamp(REPORTED).date())
    for ticker in set(orders["ticker"]):
        assert ticker in page
    assert figures["trades"] == len(desk["ledger"].journal())


def test_weekly_and_monthly_pages_are_keyed_by_their_period(desk):
    weekly = desk["root"] / "reports" / "weekly" / "2025-W14.html"
    monthly = desk["root"] / "reports" / "monthly" / "2025-04.html"
    assert "butterquant weekly report 2025-W14" in weekly.read_text()
    page = monthly.read_text()
    assert "butterquant monthly report 2025-04" in page
    figures = metadata(desk["runs"]["monthly"], "monthly_report")
    assert figures["report"] == "2025-04"
    # The runs were launched today, not in April 2025: that month has no run to rate.
    assert figures["run_success_rate"] == "not enough data"


def test_run_stats_count_the_runs_per_job(desk):
    today = dt.datetime.now(calendar.EXCHANGE_TZ).date()
    stats = run_stats(desk["instance"], today - dt.timedelta(days=1), today).set_index("job")
    assert stats.loc[EXECUTION_JOB, "runs"] == len(TRADED)
    assert stats.loc[EXECUTION_JOB, "succeeded"] == len(TRADED)
    assert stats.loc[EXECUTION_JOB, "success_rate"] == 1.0
    assert stats.loc[REPORT_JOBS["daily"], "runs"] == 1
    assert stats["failed"].sum() == 0


class _RecordingInstance:
    """Stands in for the instance: records the filter it is asked with."""

    def __init__(self):
        self.filters = []

    def get_run_records(self, filters=None, limit=None):
        self.filters.append(filters)
        return []


def test_run_stats_asks_the_run_storage_in_utc():
    """The run storage drops a bound's time zone and compares with UTC creation times, so
    the period's New York midnights go in as UTC instants (a run at 19:30 New York on the
    period's last day, 00:30 UTC the next day, was left out of its own day's counts)."""
    instance = _RecordingInstance()
    run_stats(instance, dt.date(2026, 12, 4), dt.date(2026, 12, 5))
    (filters,) = instance.filters
    assert filters.created_after == dt.datetime(2026, 12, 4, 5, tzinfo=dt.UTC)
    assert filters.created_before == dt.datetime(2026, 12, 6, 5, tzinfo=dt.UTC)
    assert filters.created_after.utcoffset() == dt.timedelta(0)


def test_reports_on_an_empty_data_root_render_not_enough_data(tmp_path):
    defs = trading_defs(tmp_path)
    instance = DagsterInstance.ephemeral()
    for period, job in REPORT_JOBS.items():
        result = run_market(defs, REPORTED, REPORTED, instance=instance, job_name=job)
        assert result.success, (period, failure_messages(result))
        figures = metadata(result, "performance_report")
        assert figures["trades"] == 0
        assert figures["win_rate"] == "not enough data"
        assert figures["sharpe"] == "not enough data"
    page = (tmp_path / "reports" / "daily" / f"{REPORTED}.html").read_text()
    assert "not enough data" in page
