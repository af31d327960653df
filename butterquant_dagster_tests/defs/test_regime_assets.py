"""The regime assets through Dagster: the training window honoured or refused, and the
point-in-time history (no session labelled by a model that saw it)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.ml.regime import market_regime, regime_model
from butterquant_dagster.resources import LakeResource, MarketDataResource, ModelsResource
from butterquant_dagster.runs import partition_range_tags

FIRST, LAST = dt.date(2021, 1, 4), dt.date(2024, 12, 31)


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    """Four years of synthetic bars and hidden truth, written straight into the lake."""
    root = tmp_path_factory.mktemp("regime")
    market = SyntheticMarket(select_universe(read_universe_file(), size=12))
    sessions = calendar.sessions(FIRST, LAST)
    bars, truth = market.bars(sessions), market.truth(sessions)
    lake = Lake(root)
    for session in sessions:
        key = session.isoformat()
        day = pd.Timestamp(session)
        lake.write("daily_bars", bars[pd.to_datetime(bars["session"]) == day], key)
        lake.write("market_truth", truth[pd.to_datetime(truth["session"]) == day], key)
    return root


def _resources(root):
    from butterquant_dagster.defs.lake_io_manager import LakeIOManager

    lake = LakeResource(data_dir=str(root))
    return {
        "lake": lake,
        "lake_io_manager": LakeIOManager(lake=lake),
        "models": ModelsResource(data_dir=str(root)),
        "market": MarketDataResource(universe_size=12, as_of="2025-01-02T12:00:00-05:00"),
    }


def _fit(root, **window):
    return materialize(
        [regime_model],
        resources=_resources(root),
        run_config={"ops": {"regime_model": {"config": window}}},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_the_training_window_is_honoured(lake_root):
    result = _fit(lake_root, start_date="2022-03-01", end_date="2024-06-28")
    assert result.success
    row = Lake(lake_root).read("regime_model").iloc[0]
    assert (row["train_start"], row["train_end"]) == ("2022-03-01", "2024-06-28")
    assert (row["requested_start"], row["requested_end"]) == ("2022-03-01", "2024-06-28")
    model = json.loads(row["model_json"])
    assert model["train_end"] == "2024-06-28" and model["n_samples"] == row["n_samples"]
    assert row["n_samples"] == len(calendar.sessions(dt.date(2022, 3, 1), dt.date(2024, 6, 28)))
    gates = json.loads(row["gates_json"])
    assert gates["measured"] is True
    assert {g["name"] for g in gates["gates"]} == {
        "balanced_accuracy",
        "bear_recall",
        "confidence_gap",
    }
    assert gates["passed"] == all(g["passed"] for g in gates["gates"])


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"end_date": "2025-06-30"}, "after the latest completed session"),
        ({"start_date": "2024-05-01", "end_date": "2024-06-28"}, "at least 504 sessions"),
        ({"start_date": "2024-06-01", "end_date": "2024-01-02"}, "is after end_date"),
        ({"start_date": "June"}, "is not a date"),
    ],
)
def test_a_window_that_cannot_be_honoured_is_refused(lake_root, window, message):
    before = (
        Lake(lake_root).read("regime_model").iloc[0]["run_id"]
        if Lake(lake_root).partitions("regime_model")
        else None
    )
    result = _fit(lake_root, **window)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert message in failure.event_specific_data.error.message
    if before is not None:  # nothing was overwritten
        assert Lake(lake_root).read("regime_model").iloc[0]["run_id"] == before


def test_market_regime_is_point_in_time(lake_root):
    sessions = calendar.sessions(dt.date(2024, 9, 3), dt.date(2024, 10, 31))
    result = materialize(
        [market_regime],
        resources=_resources(lake_root),
        instance=DagsterInstance.ephemeral(),
        tags=partition_range_tags(sessions[0].isoformat(), sessions[-1].isoformat()),
    )
    assert result.success
    rows = Lake(lake_root).read("market_regime", [s.isoformat() for s in sessions])
    assert len(rows) == len(sessions)
    assert (pd.to_datetime(rows["model_train_end"]) < pd.to_datetime(rows["session"])).all()
    # September's sessions come from the model fitted to August's end, October's to September's.
    by_month = rows.groupby(pd.to_datetime(rows["session"]).dt.month)["model_train_end"].unique()
    assert [list(v) for v in by_month] == [["2024-08-30"], ["2024-09-30"]]
    assert set(rows["market_regime"]) <= {"bear", "neutral", "bull"}
    assert rows["regime_confidence"].between(1 / 3, 1.0).all()
