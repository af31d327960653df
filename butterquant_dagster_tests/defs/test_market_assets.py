"""The market assets materialized into a temporary data root, good inputs and bad."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from butterquant_dagster.core import calendar
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster_tests.defs.helpers import (
    check_outcomes,
    failure_messages,
    make_defs,
    run_market,
)


def _real_files_defs(root, bars_dir, universe_file):
    """Definitions on the real Yahoo bars (NVDA, ORCL, YHOO) with modelled chains."""
    return make_defs(
        root,
        source="files",
        bars_path=str(bars_dir),
        universe_file=str(universe_file),
        universe_size=0,
    )


def test_range_over_holidays_creates_exactly_the_sessions(tmp_path):
    defs = make_defs(tmp_path, universe_size=5)
    result = run_market(defs, "2025-06-30", "2025-07-08")  # July 4th inside, early close 3rd
    assert result.success, failure_messages(result)
    lake = Lake(tmp_path)
    expected = [d.isoformat() for d in calendar.sessions("2025-06-30", "2025-07-08")]
    assert expected == [
        "2025-06-30",
        "2025-07-01",
        "2025-07-02",
        "2025-07-03",
        "2025-07-07",
        "2025-07-08",
    ]
    for table in ("daily_bars", "option_chains", "market_truth"):
        assert lake.partitions(table) == expected, table
    bars = lake.read("daily_bars", expected)
    assert len(bars) == 5 * len(expected)
    assert set(pd.to_datetime(bars["session"]).dt.strftime("%Y-%m-%d")) == set(expected)
    outcomes = check_outcomes(result)
    assert len(outcomes) == 16 and all(outcomes.values()), outcomes
    # One run for the whole range: the single-run backfill policy.
    planned = {e.step_key for e in result.all_events if e.is_step_start}
    assert planned == {"universe", "daily_bars", "option_chains", "market_truth"}


def test_rerun_is_idempotent(tmp_path):
    defs = make_defs(tmp_path, universe_size=3)
    first = run_market(defs, "2025-03-03", "2025-03-05")
    before = Lake(tmp_path).read("option_chains", ["2025-03-04"])
    second = run_market(defs, "2025-03-03", "2025-03-05")
    assert first.success and second.success
    after = Lake(tmp_path).read("option_chains", ["2025-03-04"])
    pd.testing.assert_frame_equal(before, after)
    assert Lake(tmp_path).partitions("option_chains") == ["2025-03-03", "2025-03-04", "2025-03-05"]


def test_session_not_closed_yet_is_refused(tmp_path):
    defs = make_defs(tmp_path, universe_size=3, as_of="2025-07-03T12:59:00-04:00")
    result = run_market(defs, "2025-07-03", "2025-07-03")
    assert not result.success
    message = failure_messages(result)
    assert "2025-07-03 has not closed yet" in message and "13:00" in message
    assert Lake(tmp_path).partitions("daily_bars") == []


def test_session_closed_early_is_accepted_after_its_early_close(tmp_path):
    defs = make_defs(tmp_path, universe_size=3, as_of="2025-07-03T13:01:00-04:00")
    result = run_market(defs, "2025-07-03", "2025-07-03")
    assert result.success, failure_messages(result)


def test_real_files_end_to_end(tmp_path, real_bars_dir, real_universe_file):
    defs = _real_files_defs(tmp_path / "root", real_bars_dir, real_universe_file)
    result = run_market(defs, "2008-10-01", "2008-10-10")
    assert result.success, failure_messages(result)
    lake = Lake(tmp_path / "root")
    sessions = [d.isoformat() for d in calendar.sessions("2008-10-01", "2008-10-10")]
    assert lake.partitions("daily_bars") == sessions
    assert lake.partitions("market_truth") == []  # the files source has no hidden truth
    bars = lake.read("daily_bars", sessions)
    assert sorted(bars["symbol"].unique()) == ["NVDA", "ORCL", "YHOO"]
    nvda = bars[bars["symbol"] == "NVDA"].sort_values("session")
    raw = pd.read_csv(real_bars_dir / "nvda-1999-2014.csv", parse_dates=["Date"])
    raw = raw[(raw["Date"] >= "2008-10-01") & (raw["Date"] <= "2008-10-10")]
    assert nvda["close"].round(6).tolist() == raw["Close"].round(6).tolist()
    chains = lake.read("option_chains", sessions)
    assert chains["modelled"].all()
    assert chains["source"].str.startswith("modelled:").all()


def _corrupt_bar(path, date: str, **values) -> None:
    frame = pd.read_csv(path)
    row = frame["Date"] == date
    assert row.sum() == 1
    for column, value in values.items():
        frame.loc[row, column] = value
    frame.to_csv(path, index=False)


def test_inconsistent_bar_refuses_its_session_alone(tmp_path, real_bars_dir, real_universe_file):
    path = real_bars_dir / "orcl-1995-2014.csv"
    _corrupt_bar(path, "2008-10-08", High=1.0)  # high far below open and close
    root = tmp_path / "root"
    defs = _real_files_defs(root, real_bars_dir, real_universe_file)
    result = run_market(defs, "2008-10-06", "2008-10-09")
    assert not result.success
    outcomes = check_outcomes(result)
    assert outcomes[("daily_bars", "bar_ohlc_consistent")] is False
    assert outcomes[("daily_bars", "bar_prices_positive")] is True
    message = failure_messages(result)
    assert "daily_bars refused 1 of 4 session(s)" in message
    assert "bar_ohlc_consistent" in message and "ORCL" in message
    assert "2008-10-08" in message and "orcl-1995-2014.csv" in message
    assert "published: 2008-10-06..2008-10-07, 2008-10-09" in message
    lake = Lake(root)
    # The good sessions are published and recorded as materialized, one partition each.
    assert lake.partitions("daily_bars") == ["2008-10-06", "2008-10-07", "2008-10-09"]
    recorded = [m.partition for m in result.asset_materializations_for_node("daily_bars")]
    assert recorded == ["2008-10-06", "2008-10-07", "2008-10-09"]
    # The step after it in the run did not start: nothing reads the refused session.
    assert lake.partitions("option_chains") == []
    [quarantine] = list((lake.table_dir("daily_bars") / "_quarantine").iterdir())
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "2008-10-08.parquet",
        "2008-10-08.violations.csv",
        "REASON.txt",
    ]
    assert len(pd.read_parquet(quarantine / "2008-10-08.parquet")) == 3  # the session's bars
    violations = pd.read_csv(quarantine / "2008-10-08.violations.csv")
    assert violations[["rule", "symbol"]].values.tolist() == [["bar_ohlc_consistent", "ORCL"]]
    assert "orcl-1995-2014.csv" in violations["origin"].iloc[0]

    # Fix the file and rerun: the same range now lands.
    frame = pd.read_csv(real_bars_dir / "orcl-1995-2014.csv")
    frame.loc[frame["Date"] == "2008-10-08", "High"] = (
        frame.loc[frame["Date"] == "2008-10-08", ["Open", "Close"]].max(axis=1) * 1.01
    )
    frame.to_csv(path, index=False)
    fixed = run_market(defs, "2008-10-06", "2008-10-09")
    assert fixed.success, failure_messages(fixed)
    assert lake.partitions("daily_bars") == ["2008-10-06", "2008-10-07", "2008-10-08", "2008-10-09"]


def test_unadjusted_split_blocks(tmp_path, real_bars_dir, real_universe_file):
    path = real_bars_dir / "nvda-1999-2014.csv"
    frame = pd.read_csv(path)
    # Undo a 2:1 adjustment from 2008-10-08 on: prices before it doubled, as a raw file shows.
    before = frame["Date"] < "2008-10-08"
    for column in ("Open", "High", "Low", "Close"):
        frame.loc[before, column] *= 2.0
    frame.to_csv(path, index=False)
    defs = _real_files_defs(tmp_path / "root", real_bars_dir, real_universe_file)
    result = run_market(defs, "2008-10-07", "2008-10-09")
    assert not result.success
    assert check_outcomes(result)[("daily_bars", "split_jump")] is False
    assert "NVDA" in failure_messages(result)


def test_missing_ticker_file_is_an_error(tmp_path, real_bars_dir, real_universe_file):
    (real_bars_dir / "yhoo-1996-2015.csv").unlink()
    defs = _real_files_defs(tmp_path / "root", real_bars_dir, real_universe_file)
    result = run_market(defs, "2008-10-07", "2008-10-08")
    assert not result.success
    assert "YHOO" in failure_messages(result)


def test_unknown_source_is_an_error(tmp_path):
    defs = make_defs(tmp_path, source="bloomberg", universe_size=3)
    result = run_market(defs, "2025-03-03", "2025-03-03")
    assert not result.success
    assert "unknown market source 'bloomberg'" in failure_messages(result)


@pytest.mark.parametrize("bad_key", ["2025-07-04", "2025-07-05"])
def test_holiday_and_weekend_are_not_partitions(tmp_path, bad_key):
    defs = make_defs(tmp_path, universe_size=3)
    partitions = defs.resolve_assets_def("daily_bars").partitions_def
    assert not partitions.has_partition_key(bad_key)
    assert partitions.has_partition_key("2025-07-03")


def test_vendor_no_quote_rows_do_not_block_the_run(tmp_path, real_bars_dir, real_universe_file):
    """A vendor chain file whose second session lists contracts with bid = ask = 0: both
    sessions are published, and the run's metadata counts what the source dropped (such
    rows used to fail quote_prices_valid and block every session of the run)."""
    from butterquant_dagster_tests.core.market.test_files import hand_made_chain

    days = [dt.date(2008, 10, 14), dt.date(2008, 10, 15)]
    frames = []
    for day in days:
        made = hand_made_chain(day)
        frames.append(
            pd.DataFrame(
                {
                    "date": day.isoformat(),
                    "act_symbol": "NVDA",
                    "expiration": made["listed"].astype(str),
                    "strike": made["strike"],
                    "call_put": made["right"],
                    # Quoted prices: at least a cent bid, two cents wide.
                    "bid": made["bid"].clip(lower=0.01).round(2),
                    "ask": made["ask"].clip(lower=made["bid"].clip(lower=0.01) + 0.02).round(2),
                }
            )
        )
    no_quote = frames[1].iloc[:2].assign(strike=[30.0, 31.0], bid=0.0, ask=0.0)
    chains = tmp_path / "vendor.csv"
    pd.concat([*frames, no_quote], ignore_index=True).to_csv(chains, index=False)
    defs = make_defs(
        tmp_path / "root",
        source="files",
        bars_path=str(real_bars_dir),
        chains_path=str(chains),
        universe_file=str(real_universe_file),
        universe_symbols="NVDA",
    )
    result = run_market(defs, days[0].isoformat(), days[1].isoformat())
    assert result.success, failure_messages(result)
    lake = Lake(tmp_path / "root")
    assert lake.partitions("option_chains") == [d.isoformat() for d in days]
    published = lake.read("option_chains", [days[1].isoformat()])
    assert not ((published["bid"] == 0) & (published["ask"] == 0)).any()
    materializations = result.asset_materializations_for_node("option_chains")
    assert len(materializations) == len(days)
    warned = {m.metadata["source_warnings"].value for m in materializations}
    lines = materializations[-1].metadata["source_warning_lines"].value
    assert warned == {1} and "dropped 2 no-quote row(s)" in lines
