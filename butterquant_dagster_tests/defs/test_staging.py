"""stage_checked: a session whose input the source rejects is refused alone; a dropped
connection still fails the whole step (to be retried) with nothing left staged."""

from __future__ import annotations

import datetime as dt

import pytest

from butterquant_dagster.core.market.source import MarketDataError, MarketDataUnavailable
from butterquant_dagster.core.market.synthetic import SyntheticMarket
from butterquant_dagster.core.market.universe import read_universe_file, select_universe
from butterquant_dagster.core.market.validation import BAR_RULES, QualityPolicy, QualityReport
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.defs.staging import stage_checked
from butterquant_dagster.resources import LakeResource

DAYS = [dt.date(2025, 3, 3), dt.date(2025, 3, 4), dt.date(2025, 3, 5)]


class _Log:
    def info(self, _message: str) -> None:
        pass


class _Context:
    log = _Log()


@pytest.fixture(scope="module")
def bars():
    market = SyntheticMarket(select_universe(read_universe_file(), size=3))
    return {day: market.bars([day]) for day in DAYS}


def _produce(bars, error):
    def produce(session):
        if session == DAYS[1]:
            raise error
        return bars[session], bars[session]["symbol"].tolist()

    return produce


def test_a_source_error_refuses_that_session_alone(tmp_path, bars):
    report = QualityReport(BAR_RULES, QualityPolicy())
    error = MarketDataError("bars.csv: line 7: column 'High': 'x' is not a number")
    staged, rows = stage_checked(
        _Context(),
        LakeResource(data_dir=str(tmp_path)),
        "daily_bars",
        report,
        DAYS,
        _produce(bars, error),
    )
    assert sorted(staged.accepted.partitions) == ["2025-03-03", "2025-03-05"]
    assert staged.rejected.partitions == {}  # nothing was produced for it
    assert rows == len(bars[DAYS[0]]) + len(bars[DAYS[2]])
    assert report.refusals["2025-03-04"].reasons == [
        "source: bars.csv: line 7: column 'High': 'x' is not a number"
    ]
    assert all(o.passed for o in report.outcomes.values()) and not report.passed
    staged.discard()


def test_a_dropped_connection_fails_the_step_with_nothing_staged(tmp_path, bars):
    report = QualityReport(BAR_RULES, QualityPolicy())
    with pytest.raises(MarketDataUnavailable):
        stage_checked(
            _Context(),
            LakeResource(data_dir=str(tmp_path)),
            "daily_bars",
            report,
            DAYS,
            _produce(bars, MarketDataUnavailable("TWS at 127.0.0.1:7497 did not answer")),
        )
    assert report.sessions_refused == []
    staging = Lake(tmp_path).table_dir("daily_bars") / ".staging"
    assert not staging.exists() or not any(staging.rglob("*.parquet"))
