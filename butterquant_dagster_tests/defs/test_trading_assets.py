"""The trading assets end to end on the synthetic market and the paper broker: four sessions
traded one run each, reruns that send nothing twice, and the refusals (two sessions in one
run, a session out of order, a decision session that was never scanned, a ledger that
disagrees with the broker)."""

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance

from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.trading.portfolio import EXIT_PRECEDENCE
from butterquant_dagster.definitions import build_definitions
from butterquant_dagster.defs.lake_io_manager import LakeIOManager
from butterquant_dagster.defs.trading.automation import EXECUTION_JOB
from butterquant_dagster.resources import (
    LakeResource,
    MarketDataResource,
    ModelsResource,
    ScanResource,
    TradingResource,
)
from butterquant_dagster_tests.defs.helpers import (
    check_outcomes,
    failure_messages,
    loose_trading,
    market_and_scan,
    run_market,
)

HISTORY = ("2025-01-02", "2025-04-04")  # 66 sessions: the scan needs 60 of history
SCANNED = ("2025-03-31", "2025-04-04")
TRADED = ["2025-04-01", "2025-04-02", "2025-04-03", "2025-04-04"]
UNSCANNED_DECISION = "2025-03-31"  # decides on 2025-03-28, which was never scanned
SKIPPING = "2025-04-07"  # tried while 2025-04-03 is the last marked session
AS_OF = "2025-04-30T17:00:00-04:00"  # every traded session is past: the broker replays
MAX_POSITIONS = 3
RERUNS = 5


def trading_defs(root, **trading):
    lake = LakeResource(data_dir=str(root))
    resources = {
        "lake": lake,
        "market": MarketDataResource(universe_size=4, as_of=AS_OF),
        "scan": ScanResource(max_dte=30),
        "models": ModelsResource(data_dir=str(root)),
        "lake_io_manager": LakeIOManager(lake=lake),
        # Loose floors so the synthetic rankings produce entries; no model, so every slot
        # belongs to the baseline track, and four tickers compete for three slots.
        "trading": loose_trading(root, max_positions=MAX_POSITIONS, **trading),
    }
    return build_definitions(resources)


def broker_orders(root) -> pd.DataFrame:
    with duckdb.connect(str(root / "paper_broker.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM orders ORDER BY order_ref").df()


def broker_executions(root) -> pd.DataFrame:
    with duckdb.connect(str(root / "paper_broker.duckdb"), read_only=True) as con:
        return con.execute("SELECT * FROM executions ORDER BY exec_id").df()


def metadata(result, asset: str) -> dict:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    """The whole story, in the order an operator would live it; the tests read the record."""
    root = tmp_path_factory.mktemp("trading")
    defs = trading_defs(root)
    instance = DagsterInstance.ephemeral()
    market_and_scan(defs, HISTORY, SCANNED, instance)
    ledger = TradingResource(data_dir=str(root)).ledger()

    def trade(first, last=None):
        return run_market(defs, first, last or first, instance=instance, job_name=EXECUTION_JOB)

    record = {"root": root, "defs": defs, "runs": {}, "open_after": {}, "reruns": []}
    record["unscanned"] = trade(UNSCANNED_DECISION)
    for session in TRADED:
        if session == TRADED[-1]:
            record["ledger_orders_before_refusals"] = len(ledger.orders())
            record["skipping"] = trade(SKIPPING)
            record["two_sessions"] = trade(TRADED[-2], TRADED[-1])
            record["ledger_orders_after_refusals"] = len(ledger.orders())
        result = record["runs"][session] = trade(session)
        record["open_after"][session] = ledger.open_positions()
        if not record["reruns"] and result.success and metadata(result, "orders")["sent"]:
            # The first session that sent orders is run again, as a retry would.
            record["rerun_session"] = session
            record["before_reruns"] = (broker_orders(root), ledger.orders(), ledger.fills())
            record["reruns"] = [trade(session) for _ in range(RERUNS)]
            record["after_reruns"] = (broker_orders(root), ledger.orders(), ledger.fills())
    return record


def test_every_session_trades_in_one_run(desk):
    for session, result in desk["runs"].items():
        assert result.success, (session, failure_messages(result))
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialized == {"target_orders", "orders", "fills", "positions", "trade_journal"}
    lake = Lake(desk["root"])
    for table in ("target_orders", "orders", "fills", "positions", "trade_journal"):
        assert lake.partitions(table) == TRADED, table


def test_target_orders_carry_reasons_and_order_refs(desk):
    lake = Lake(desk["root"])
    targets = lake.read("target_orders", TRADED)
    assert len(targets)
    assert (targets["intent"] == "open").any()
    assert targets["reason"].str.len().gt(0).all()
    assert targets["reason"].str.startswith(("ai track", "baseline track", *EXIT_PRECEDENCE)).all()
    assert targets["order_ref"].is_unique
    for row in targets.itertuples(index=False):
        assert row.order_ref.startswith(f"bq-{pd.Timestamp(row.session):%Y%m%d}-{row.ticker}-")
        assert f"-{row.intent}-" in row.order_ref
    opens = targets.loc[targets["intent"] == "open"]
    assert set(opens["track"]) == {"baseline"}  # no champion model: no AI-track entry
    assert (opens["quantity"] >= 1).all() and opens["limit_price"].notna().all()
    sessions = pd.to_datetime(targets["session"])
    meta = metadata(desk["runs"][TRADED[0]], "target_orders")
    assert meta["decided_on"] == "2025-03-31"
    assert meta["opens"] == int((sessions == pd.Timestamp(TRADED[0])).sum()) > 0


def test_orders_pass_the_blocking_reconciliation_check(desk):
    ledger = TradingResource(data_dir=str(desk["root"])).ledger()
    lake = Lake(desk["root"])
    for session, result in desk["runs"].items():
        assert check_outcomes(result) == {("orders", "ledger_matches_broker"): True}, session
        recorded = lake.read("orders", [session])
        targets = lake.read("target_orders", [session])
        sendable = targets.loc[targets["intent"].isin(["open", "close"]), "order_ref"]
        assert set(recorded["order_ref"]) == set(sendable), session
        assert set(recorded["order_ref"]) == set(ledger.orders(pd.Timestamp(session).date())
                                                 ["order_ref"])  # fmt: skip
    sent = ledger.orders()
    assert len(sent) and set(sent["origin"]) == {"local"}
    # Every order the ledger sent is at the broker, with the same status.
    at_broker = broker_orders(desk["root"]).set_index("order_ref")["status"]
    assert sent.set_index("order_ref")["status"].to_dict() == at_broker.to_dict()


def test_fills_are_recorded_once_each(desk):
    ledger = TradingResource(data_dir=str(desk["root"])).ledger()
    fills = ledger.fills()
    executions = broker_executions(desk["root"])
    assert len(fills) and sorted(fills["exec_id"]) == sorted(executions["exec_id"])
    assert not fills["ghost"].any()
    orders = ledger.orders().set_index("order_ref")
    assert (orders.loc[fills["order_ref"], "status"] == "filled").all()
    assert (fills["commission"] > 0).all()
    lake = Lake(desk["root"])
    per_session = lake.read("fills", TRADED)
    assert sorted(per_session["exec_id"]) == sorted(fills["exec_id"])


def test_slots_and_one_position_per_ticker(desk):
    counts = []
    for session, held in desk["open_after"].items():
        assert len(held) <= MAX_POSITIONS, session
        assert held["ticker"].is_unique, session
        counts.append(len(held))
    assert max(counts) == MAX_POSITIONS  # four tickers compete: the cap is what binds
    lake = Lake(desk["root"])
    targets = lake.read("target_orders", TRADED)
    opened_per_session = targets.loc[targets["intent"] == "open"].groupby("session").size()
    assert opened_per_session.max() <= MAX_POSITIONS
    # An entry is never planned for a ticker held at the start of its session.
    ledger = TradingResource(data_dir=str(desk["root"])).ledger()
    for session in TRADED:
        day = pd.Timestamp(session).date()
        held = set(ledger.positions_at_start(day)["ticker"])
        opens = targets.loc[
            (pd.to_datetime(targets["session"]) == pd.Timestamp(day))
            & (targets["intent"] == "open"),
            "ticker",
        ]
        assert not held & set(opens), session


def test_positions_are_marked_each_session_with_equity(desk):
    ledger = TradingResource(data_dir=str(desk["root"])).ledger()
    equity = ledger.equity()
    assert [d.date().isoformat() for d in pd.to_datetime(equity["session"])] == TRADED
    assert np.allclose(equity["equity"], equity["cash"] + equity["positions_value"])
    lake = Lake(desk["root"])
    for session, result in desk["runs"].items():
        meta = metadata(result, "positions")
        row = equity.loc[pd.to_datetime(equity["session"]) == pd.Timestamp(session)].iloc[0]
        assert meta["equity"] == pytest.approx(row["equity"], abs=0.01), session
        assert meta["open_positions"] == len(desk["open_after"][session])
        snapshot = lake.read("positions", [session])
        assert (snapshot["session"] == pd.Timestamp(session)).all()
        assert set(snapshot["position_id"]) == set(desk["open_after"][session]["position_id"])
        assert snapshot["mark"].notna().all(), session
    # Money moved: commissions and spreads, never exactly the initial capital.
    assert equity["equity"].iloc[-1] != pytest.approx(100_000.0, abs=0.001)


def test_rerunning_a_session_sends_nothing_new(desk):
    assert len(desk["reruns"]) == RERUNS, "no session sent an order"
    first = metadata(desk["runs"][desk["rerun_session"]], "orders")
    assert first["sent"] > 0
    for result in desk["reruns"]:
        assert result.success, failure_messages(result)
        assert check_outcomes(result) == {("orders", "ledger_matches_broker"): True}
        meta = metadata(result, "orders")
        assert meta["sent"] == 0 and meta["already_sent"] == first["sent"]
    broker_before, orders_before, fills_before = desk["before_reruns"]
    broker_after, orders_after, fills_after = desk["after_reruns"]
    assert len(broker_before) and len(orders_before)
    assert broker_after["order_ref"].tolist() == broker_before["order_ref"].tolist()
    assert orders_after["order_ref"].tolist() == orders_before["order_ref"].tolist()
    assert orders_after["status"].tolist() == orders_before["status"].tolist()
    assert fills_after["exec_id"].tolist() == fills_before["exec_id"].tolist()


def test_two_sessions_in_one_run_are_refused(desk):
    result = desk["two_sessions"]
    assert not result.success
    assert "one session per run" in failure_messages(result)
    assert desk["ledger_orders_after_refusals"] == desk["ledger_orders_before_refusals"]


def test_a_session_out_of_order_names_the_session_to_run_first(desk):
    result = desk["skipping"]
    assert not result.success
    message = failure_messages(result)
    assert f"cannot trade {SKIPPING}" in message
    assert "run the trading steps of 2025-04-04 first" in message
    assert SKIPPING not in Lake(desk["root"]).partitions("orders")


def test_a_decision_session_without_a_scan_names_the_missing_table(desk):
    result = desk["unscanned"]
    assert not result.success
    message = failure_messages(result)
    assert "2025-03-28's scan_rankings" in message and "not materialized" in message
    lake = Lake(desk["root"])
    assert UNSCANNED_DECISION not in lake.partitions("target_orders")
    assert UNSCANNED_DECISION not in lake.partitions("orders")


def test_a_ledger_that_disagrees_with_the_broker_stops_trading(desk, tmp_path):
    """The blocking check: with the broker's record gone, the ledger's open positions are
    unknown to it; nothing is sent and fills, positions and the journal do not run."""
    root = tmp_path / "copy"
    shutil.copytree(desk["root"], root)
    (root / "paper_broker.duckdb").unlink()
    defs = trading_defs(root)
    result = run_market(defs, "2025-04-07", "2025-04-07", job_name=EXECUTION_JOB)
    assert not result.success
    assert check_outcomes(result) == {("orders", "ledger_matches_broker"): False}
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "fills" not in materialized and "positions" not in materialized
    assert broker_orders(root).empty
    ledger = TradingResource(data_dir=str(root)).ledger()
    assert ledger.orders(pd.Timestamp("2025-04-07").date()).empty


def test_rerunning_an_earlier_session_keeps_its_marks(desk, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(desk["root"], root)
    ledger = TradingResource(data_dir=str(root)).ledger()
    before = ledger.equity().set_index("session")
    first = TRADED[0]
    # the book moved on after the first session: a rerun of it could be confused by later state
    at = {s: before.loc[pd.Timestamp(s)].to_dict() for s in (first, TRADED[-1])}
    assert at[first] != at[TRADED[-1]]
    result = run_market(trading_defs(root), first, first, job_name=EXECUTION_JOB)
    assert result.success, failure_messages(result)
    after = ledger.equity().set_index("session")
    assert after.loc[pd.Timestamp(first)].to_dict() == before.loc[pd.Timestamp(first)].to_dict()
    snapshot = Lake(root).read("positions", [first])
    assert set(snapshot["position_id"]) == set(desk["open_after"][first]["position_id"])


def test_a_session_where_nothing_qualifies_trades_nothing_and_says_why(desk, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(desk["root"], root)
    floor = 1e9  # above any expected yield: nothing can qualify
    result = run_market(
        trading_defs(root, min_expected_yield=floor), "2025-04-07", "2025-04-07",
        job_name=EXECUTION_JOB,
    )  # fmt: skip
    assert result.success, failure_messages(result)
    meta = metadata(result, "target_orders")
    assert meta["opens"] == 0
    below = len(Lake(root).read("butterfly_candidates", ["2025-04-04"]))
    assert meta["passed_over"]["baseline"]["expected yield below floor"] == below
    assert meta["entry_notes"] == (
        f"- baseline track: nothing qualified: {below} candidates below the expected-yield "
        f"floor of {floor:g} per $1,000; nothing is traded on this track."
    )
