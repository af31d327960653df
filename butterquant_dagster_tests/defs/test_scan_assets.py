"""The scan assets end to end on the synthetic market: candidates, rankings, skips and
outcomes, including the refusal to settle before expiries have passed."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.scan.assets import RANKING_COLUMNS
from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB, SCAN_JOB
from butterquant_dagster.resources import ScanResource
from butterquant_dagster_tests.defs.helpers import (
    check_outcomes,
    failure_messages,
    make_defs,
    run_market,
)

HISTORY = ("2025-01-02", "2025-05-30")  # enough history for signals before the scan days
SCANNED = ("2025-04-28", "2025-04-30")
# Expiries up to 30 days out, so the scanned sessions' candidates all expire by May 30.
SCAN = ScanResource(max_dte=30)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan")
    defs = make_defs(root, universe_size=4, as_of="2025-06-02T17:00:00-04:00", scan=SCAN)
    market = run_market(defs, *HISTORY)
    assert market.success, failure_messages(market)
    scan = run_market(defs, *SCANNED, job_name=SCAN_JOB)
    outcomes = run_market(defs, *SCANNED, job_name=OUTCOMES_JOB)
    return root, defs, scan, outcomes


def test_scan_publishes_candidates_skips_and_rankings(scanned):
    root, _, scan, _ = scanned
    assert scan.success, failure_messages(scan)
    lake = Lake(root)
    sessions = [d.isoformat() for d in calendar.sessions(*SCANNED)]
    for table in ("butterfly_candidates", "scan_skips", "scan_rankings"):
        assert lake.partitions(table) == sessions, table
    outcomes = check_outcomes(scan)
    assert outcomes and all(outcomes.values()), outcomes
    assert {name for _, name in outcomes} == {
        "max_loss_positive",
        "debit_within_width",
        "credit_below_width",
        "breakevens_inside_wings",
        "legs_listed",
    }


def test_candidates_use_only_listed_strikes(scanned):
    root = scanned[0]
    lake = Lake(root)
    candidates = lake.read("butterfly_candidates", ["2025-04-29"])
    chain = lake.read("option_chains", ["2025-04-29"])
    listed = set(zip(chain["symbol"], chain["expiry"], chain["strike"], strict=True))
    for column in ("lower", "center", "upper"):
        keys = zip(candidates["symbol"], candidates["expiry"], candidates[column], strict=True)
        assert all(k in listed for k in keys), column
    assert set(candidates["structure"]) == {"call_fly", "put_fly", "iron_fly"}
    assert candidates["dte"].between(7, 30).all()
    assert (
        (candidates["center"] - candidates["lower"])
        .round(6)
        .equals((candidates["upper"] - candidates["center"]).round(6))
    )


def test_rankings_carry_the_original_fields(scanned):
    root = scanned[0]
    rankings = Lake(root).read("scan_rankings", ["2025-04-30"])
    assert list(rankings.columns) == RANKING_COLUMNS
    assert rankings["rank"].tolist() == list(range(1, len(rankings) + 1))
    assert rankings["ev_per_1000"].is_monotonic_decreasing
    assert rankings.groupby("ticker").size().max() <= 3
    assert rankings["ml_success_prob"].isna().all()
    assert set(rankings["recommendation"]) <= {"STRONG_BUY", "BUY", "NEUTRAL", "AVOID"}


def test_outcomes_for_sessions_whose_expiries_passed(scanned):
    root, _, _, outcomes = scanned
    assert outcomes.success, failure_messages(outcomes)
    lake = Lake(root)
    settled = lake.read("candidate_outcomes", ["2025-04-28"])
    candidates = lake.read("butterfly_candidates", ["2025-04-28"])
    assert len(settled) == len(candidates)
    bars = lake.read("daily_bars", [d.isoformat() for d in calendar.sessions(*HISTORY)])
    closes = bars.set_index(["symbol", "session"])["close"]
    row = settled.iloc[0]
    assert row["settle_price"] == closes[(row["symbol"], pd.Timestamp(row["expiry"]))]
    assert (settled["pnl_per_contract"] == settled["pnl_per_share"] * 100).all()
    assert settled.loc[settled["win"], "pnl_per_share"].gt(0).all()


def test_outcomes_refuse_unexpired_sessions(scanned):
    # On 2025-05-05 the candidates of 2025-04-30 (expiring up to May 30) have not expired.
    early = make_defs(scanned[0], universe_size=4, as_of="2025-05-05T17:00:00-04:00", scan=SCAN)
    result = run_market(early, "2025-04-30", "2025-04-30", job_name=OUTCOMES_JOB)
    assert not result.success
    assert "has not passed" in failure_messages(result)


def _metadata(result, asset: str) -> dict:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_rankings_show_the_reliability_of_each_measure_on_outcomes_known_before(scanned):
    root, defs, _, outcomes = scanned
    assert outcomes.success, failure_messages(outcomes)
    later = "2025-05-16"  # some of the scanned candidates have expired by then, not all
    result = run_market(defs, later, later, job_name=SCAN_JOB)
    assert result.success, failure_messages(result)
    metadata = _metadata(result, "scan_rankings")
    lake = Lake(root)
    settled = lake.read("candidate_outcomes", [d.isoformat() for d in calendar.sessions(*SCANNED)])
    known = settled.loc[settled["expiry"] < pd.Timestamp(later)]
    assert 0 < len(known) < len(settled)  # the point-in-time cut is exercised
    assert metadata["settled_candidates_judged"] == len(known)
    skill = metadata["ranking_skill"]
    for measure in ("ev_per_1000", "score", "prob_profit_forecast", "prob_profit_rn"):
        assert f"| {measure}" in skill, measure
    assert f"expiry before {later}" in metadata["reliability_ev_per_1000"]
    assert "realized_per_1000" in metadata["reliability_ev_per_1000"]
    rankings = lake.read("scan_rankings", [later])
    assert set(rankings["baseline_rank_by"]) == {metadata["baseline_ranked_by"]}
    # The list is ordered by the measure the baseline trades by, not by the raw EV.
    measure = metadata["baseline_ranked_by"]
    assert set(rankings["ranked_by"]) == {f"rule:{measure}"}
    assert list(rankings["ranking_value"]) == list(rankings[measure].astype(float))
    assert rankings["ranking_value"].is_monotonic_decreasing
    # A buy needs a gain by the best expected value there is (the calibrated one once
    # enough has settled), and that figure sits beside the raw EV.
    expected = rankings["ev_calibrated_per_1000"].fillna(rankings["ev_per_1000"])
    buys = rankings["recommendation"].isin(["BUY", "STRONG_BUY"])
    assert (expected[buys] > 0).all()
    assert "ev_calibrated_per_1000" in metadata["top_20"]
    assert "ml_expected_per_1000" in metadata["top_20"]  # one unit: per $1,000
    assert "ml_expected_roi" not in metadata["top_20"]


def test_scan_tables_publish_their_stored_columns_each_described(scanned):
    """The UI's column schema of each scan table is the Parquet schema as stored, every
    column described by the one glossary (a column it lacks would show undescribed)."""
    root, _, scan, outcomes = scanned
    for result, table in (
        (scan, "butterfly_candidates"),
        (scan, "scan_rankings"),
        (scan, "candidate_features"),
        (outcomes, "candidate_outcomes"),
    ):
        materialization = [
            event.materialization
            for event in result.get_asset_materialization_events()
            if event.asset_key.to_user_string() == table
        ][-1]
        published = materialization.metadata["dagster/column_schema"].schema.columns
        stored = Lake(root).read(table, [SCANNED[-1]]).columns
        assert [column.name for column in published] == list(stored), table
        undescribed = [c.name for c in published if not c.description]
        assert not undescribed, (table, undescribed)


def test_the_ui_top_20_prints_expiries_as_dates(scanned):
    _, _, scan, _ = scanned
    materialization = [
        event.materialization
        for event in scan.get_asset_materialization_events()
        if event.asset_key.to_user_string() == "scan_rankings"
    ][-1]
    table = materialization.metadata["top_20"].value
    assert "| expiry" in table
    assert re.search(r"\| 2025-0[5-6]-\d\d \|", table), table[:400]
    assert "00:00:00" not in table
