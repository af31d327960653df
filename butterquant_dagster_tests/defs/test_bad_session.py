"""A genuinely bad session is refused on its own, through backfill, scan and settle.

The fixture ``fixtures/cboe_nvda_2008-10-13_17.csv`` is a vendor end-of-day chain file in
the CBOE layout (``underlying_symbol, quote_date, root, expiration, strike, option_type,
trade_volume, bid_eod, ask_eod, open_interest``; monthlies listed on the Saturday after the
third Friday, as CBOE did before 2015) for NVDA over five sessions, quoted around an 85 %
volatility on the real closes of ``fixtures/nvda-1999-2014.csv``:

- 2008-10-13, 2008-10-16: ordinary sessions (October, November and December expiries);
- 2008-10-14: the same plus 12 far strikes nobody quoted (bid = ask = 0), which the file
  source drops with a count;
- 2008-10-15: a broken delivery: every November quote crossed (bid and ask swapped, 24 rows)
  and a negative bid (December 7.0 call);
- 2008-10-17: an expiry day listing only the expiry that expires that day.

The user's path: ``butterquant backfill --assets bars`` for the signals' history, then
``butterquant backfill`` of the five sessions, then the scan job and the outcomes job (what
``butterquant scan`` runs after making sure the market is there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from butterquant_dagster.cli import EXIT_OK, main
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.partitions import session_partitions
from butterquant_dagster_tests.defs.helpers import (
    check_outcomes,
    failure_messages,
    make_defs,
    run_market,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHAIN_FILE = "cboe_nvda_2008-10-13_17.csv"
SESSIONS = ["2008-10-13", "2008-10-14", "2008-10-15", "2008-10-16", "2008-10-17"]
BAD = "2008-10-15"
GOOD = [s for s in SESSIONS if s != BAD]


def _cli(*argv: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    return code, json.loads(out.getvalue())


def _jobs(first: str, last: str, job: str):
    from butterquant_dagster.commands._materialize import materialize

    return materialize(
        job, dt.date.fromisoformat(first), dt.date.fromisoformat(last), show_progress=False
    )


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    from butterquant_dagster.defs.scan.automation import OUTCOMES_JOB, SCAN_JOB

    tmp = tmp_path_factory.mktemp("bad_session")
    bars = tmp / "bars"
    bars.mkdir()
    shutil.copy(FIXTURES / "nvda-1999-2014.csv", bars)
    chains = shutil.copy(FIXTURES / CHAIN_FILE, tmp / CHAIN_FILE)
    universe = tmp / "universe.csv"
    universe.write_text("symbol,name,sector\nNVDA,NVIDIA,Information Technology\n")
    data = tmp / "data"
    runs = {}
    with pytest.MonkeyPatch.context() as env:
        env.chdir(tmp)  # no ./.env of the working tree
        env.setenv("BUTTERQUANT_DATA_DIR", str(data))
        env.setenv("DAGSTER_HOME", str(data / "dagster"))
        env.setenv("BUTTERQUANT_MARKET_SOURCE", "files")
        env.setenv("BUTTERQUANT_BARS_PATH", str(bars))
        env.setenv("BUTTERQUANT_CHAINS_PATH", str(chains))
        env.setenv("BUTTERQUANT_UNIVERSE_FILE", str(universe))
        env.setenv("BUTTERQUANT_UNIVERSE_SIZE", "0")
        env.setenv("BUTTERQUANT_UNIVERSE_SYMBOLS", "")
        # Bars from July (the signals need 60 sessions) to the November expiry (settling).
        runs["history"] = _cli(
            "backfill", "--start", "2008-07-01", "--end", "2008-11-21", "--assets", "bars"
        )
        runs["market"] = _cli("backfill", "--start", SESSIONS[0], "--end", SESSIONS[-1])
        runs["materialized"] = {
            table: sorted(
                DagsterInstance.get().get_materialized_partitions(AssetKey(table)),
            )
            for table in ("option_chains", "daily_bars")
        }
        runs["status"] = DagsterInstance.get().get_status_by_partition(
            AssetKey("option_chains"), SESSIONS, session_partitions
        )
        runs["scan"] = _jobs(SESSIONS[0], SESSIONS[-1], SCAN_JOB)
        # What the failure says to do: the steps after the scan, for the published sessions.
        runs["scan_good"] = [_jobs(a, b, SCAN_JOB) for a, b in (GOOD[:2], GOOD[2:])]
        runs["outcomes"] = [_jobs(a, b, OUTCOMES_JOB) for a, b in (GOOD[:2], GOOD[2:])]
        # Fix the delivery (what the vendor resends) and backfill the refused session alone.
        frame = pd.read_csv(chains)
        broken = (frame["quote_date"] == BAD) & (frame["bid_eod"] > frame["ask_eod"])
        frame.loc[broken, ["bid_eod", "ask_eod"]] = frame.loc[
            broken, ["ask_eod", "bid_eod"]
        ].to_numpy()
        frame.loc[frame["bid_eod"] < 0, "bid_eod"] = 0.98
        frame.to_csv(chains, index=False)
        runs["fixed"] = _cli("backfill", "--start", BAD, "--end", BAD)
    return Lake(data), runs


def test_the_backfill_publishes_every_good_session_and_refuses_the_bad_one(flow):
    _, runs = flow
    assert runs["history"][0] == EXIT_OK, runs["history"][1]
    code, summary = runs["market"]
    assert code != EXIT_OK and summary["success"] is False
    message = "\n".join(summary["failures"])
    assert "option_chains refused 1 of 5 session(s)" in message
    assert f"- {BAD}:" in message
    assert "crossed_quotes (no bid above its ask): 24 violation(s) in 62 row(s)" in message
    assert "quote_prices_valid" in message and "C 7.0 exp 2008-12-19: bid -0.05" in message
    assert f"from files:{CHAIN_FILE}" in message
    assert "published: 2008-10-13..2008-10-14, 2008-10-16..2008-10-17" in message
    assert set(summary["failed_checks"]) == {
        "option_chains:crossed_quotes",
        "option_chains:quote_prices_valid",
    }
    # The bars of the run passed (all five sessions); the chains of the bad session did not.
    assert runs["materialized"]["option_chains"] == GOOD
    # What the UI shows per partition: the refused one failed, the others materialized.
    statuses = {key: status.value for key, status in runs["status"].items()}
    assert statuses == {key: "FAILED" if key == BAD else "MATERIALIZED" for key in SESSIONS}
    assert set(SESSIONS) <= set(runs["materialized"]["daily_bars"])


def test_published_sessions_hold_what_the_vendor_sent(flow):
    lake, _ = flow
    chains = {key: lake.read("option_chains", [key]) for key in GOOD}
    assert {key: len(frame) for key, frame in chains.items()} == {
        "2008-10-13": 62,
        "2008-10-14": 62,  # 74 listed, the 12 no-quote rows dropped
        "2008-10-16": 62,
        "2008-10-17": 14,
    }
    assert not ((chains["2008-10-14"]["bid"] == 0) & (chains["2008-10-14"]["ask"] == 0)).any()
    expiries = set(pd.to_datetime(chains["2008-10-17"]["expiry"]).dt.date.astype(str))
    assert expiries == {"2008-10-17"}  # listed as Saturday 2008-10-18: the last session before


def test_the_refused_session_is_quarantined_with_its_violations(flow):
    lake, _ = flow
    [where] = list((lake.table_dir("option_chains") / "_quarantine").iterdir())
    assert sorted(p.name for p in where.iterdir()) == [
        f"{BAD}.parquet",
        f"{BAD}.violations.csv",
        "REASON.txt",
    ]
    rejected = pd.read_parquet(where / f"{BAD}.parquet")
    assert len(rejected) == 62 and (rejected["bid"] > rejected["ask"]).sum() == 24
    violations = pd.read_csv(where / f"{BAD}.violations.csv")
    assert violations["rule"].value_counts().to_dict() == {
        "crossed_quotes": 24,
        "quote_prices_valid": 1,
    }
    assert (violations["origin"] == f"files:{CHAIN_FILE}").all()
    assert f"- {BAD}:" in (where / "REASON.txt").read_text()


def test_the_scan_refuses_the_session_the_market_refused_and_scans_the_others(flow):
    lake, runs = flow
    scan = runs["scan"]
    assert not scan.success
    message = "\n".join(scan.failures)
    assert "butterfly_candidates refused 1 of 5 session(s)" in message
    assert f"option_chains: partition {BAD} is not in the lake" in message
    for table in ("butterfly_candidates", "scan_skips", "iv_surface"):
        assert lake.partitions(table) == GOOD, table
    # Nothing was computed for it: its quarantine is the record of why, without rows.
    [where] = list((lake.table_dir("butterfly_candidates") / "_quarantine").iterdir())
    assert [p.name for p in where.iterdir()] == ["REASON.txt"]
    assert f"- {BAD}:\n    input: option_chains" in (where / "REASON.txt").read_text()
    assert not (lake.table_dir("scan_skips") / "_quarantine").exists()
    assert len(lake.read("butterfly_candidates", ["2008-10-13"])) > 0
    # The expiry day has nothing in the window: no candidates, the reason in the skips.
    assert len(lake.read("butterfly_candidates", ["2008-10-17"])) == 0
    skips = lake.read("scan_skips", ["2008-10-17"])
    assert len(skips) and skips["symbol"].eq("NVDA").all()
    # Nothing after the scan ran in that run; rerun for the published sessions, they rank.
    assert all(run.success for run in runs["scan_good"]), [r.failures for r in runs["scan_good"]]
    assert lake.partitions("scan_rankings") == GOOD


def test_good_sessions_settle(flow):
    lake, runs = flow
    assert all(run.success for run in runs["outcomes"]), [r.failures for r in runs["outcomes"]]
    assert lake.partitions("candidate_outcomes") == GOOD
    for key in GOOD:
        candidates = lake.read("butterfly_candidates", [key])
        settled = lake.read("candidate_outcomes", [key])
        assert len(settled) == len(candidates), key
    settled = lake.read("candidate_outcomes", ["2008-10-13"])
    assert len(settled) and settled["settle_price"].notna().all()


def test_the_fixed_session_lands_on_its_own(flow):
    lake, runs = flow
    code, summary = runs["fixed"]
    assert code == EXIT_OK, summary
    assert lake.partitions("option_chains") == SESSIONS
    assert len(lake.read("option_chains", [BAD])) == 62


def test_a_session_missing_from_the_chain_file_is_refused_alone(tmp_path, real_bars_dir):
    """A vendor that skipped a day: the source has no quotes for it, that session is refused
    with the source's message, the others are published."""
    frame = pd.read_csv(FIXTURES / CHAIN_FILE)
    chains = tmp_path / "chains.csv"
    frame[frame["quote_date"] != BAD].to_csv(chains, index=False)
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol,name,sector\nNVDA,NVIDIA,Information Technology\n")
    defs = make_defs(
        tmp_path / "root",
        source="files",
        bars_path=str(real_bars_dir),
        chains_path=str(chains),
        universe_file=str(universe),
        universe_size=0,
    )
    result = run_market(defs, SESSIONS[0], SESSIONS[-1])
    assert not result.success
    message = failure_messages(result)
    assert "option_chains refused 1 of 5 session(s)" in message
    assert f"- {BAD}:\n    source: " in message
    assert f"no option quotes for session {BAD}" in message
    assert Lake(tmp_path / "root").partitions("option_chains") == GOOD
    recorded = [m.partition for m in result.asset_materializations_for_node("option_chains")]
    assert recorded == GOOD
    # Every rule passed on the sessions it saw: the refusal is the source's, not a check's.
    outcomes = check_outcomes(result)
    assert outcomes and all(outcomes.values()), outcomes
