"""History by stage from the command line: `backfill --assets all` leaves what `train` needs,
each stage one run, and the sessions whose candidates have not expired are named, not
settled."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from butterquant_dagster.cli import main
from butterquant_dagster.commands._errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED
from butterquant_dagster.commands._stages import matured
from butterquant_dagster.core.storage.lake import Lake

FIRST, LAST = "2025-01-02", "2025-03-31"  # 60 sessions (9 January 2025 closed), long expired


@pytest.fixture
def root(isolated_env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUTTERQUANT_UNIVERSE_SIZE", "5")
    return isolated_env


def _json(argv, capsys, code=EXIT_OK):
    assert main(argv) == code
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_backfill_all_then_train_works(root, capsys):
    result = _json(
        ["backfill", "--start", FIRST, "--end", LAST, "--assets", "all", "--json"], capsys
    )
    jobs = [stage["job"] for stage in result["stages"]]
    assert jobs == [
        "bars_history_job",
        "market_snapshot_job",
        "scan_job",
        "bars_history_job",
        "outcomes_job",
        "analysis_job",
    ]
    assert all(stage["success"] for stage in result["stages"])
    ranged = [s for s in result["stages"] if s["job"] != "bars_history_job"]
    history, closes = [s for s in result["stages"] if s["job"] == "bars_history_job"]
    assert history["last_session"] == "2024-12-31" and history["first_session"] < "2023-01-31"
    # The closes that settle the candidates: through the longest expiry (60 days).
    assert (closes["first_session"], closes["last_session"]) == ("2025-04-01", "2025-05-30")
    assert {(s["first_session"], s["last_session"], s["sessions"]) for s in ranged} == {
        (FIRST, LAST, 60)
    }
    assert result["left_out"] == {}
    lake = Lake(root)
    for table in ("option_chains", "scan_rankings", "candidate_outcomes", "trading_decisions"):
        assert lake.partitions(table)[-60:] == lake.partitions("scan_rankings"), table
    # The history the point-in-time regime needs came first, bars only.
    assert lake.partitions("daily_bars")[0] < "2023-03-01"
    assert lake.partitions("option_chains")[0] == FIRST
    # `train` right after: the probability model trains on what the backfill scanned and
    # settled (forced: ten sessions of five tickers are too few to promote anything).
    code = main(["train", "--model", "probability", "--force", "--json"])
    trained = json.loads(capsys.readouterr().out)
    (run,) = trained["runs"]  # the scan already built the features
    assert run["job"] == "probability_training_job"
    # Trained, validated and registered; a forced model is never promoted, so the run
    # ends on its promotion checks, not on missing data.
    assert code == EXIT_RUN_FAILED
    assert run["failed_checks"] and all(
        check.startswith("probability_model:") for check in run["failed_checks"]
    )
    assert not any("no scanned sessions" in failure for failure in run["failures"])
    assert set(trained["models"]) == {"butterfly_win_probability", "butterfly_expected_yield"}
    assert all(
        m["latest"] and m["forced"] and not m["champion"] for m in trained["models"].values()
    )


def test_only_sessions_whose_every_expiry_has_closed_are_settled():
    """Settling needs every expiry of a session to have closed: later sessions are left out
    (and named by the command), nothing is settled early."""
    latest = dt.date(2025, 3, 14)
    days = [dt.date(2025, 1, 2) + dt.timedelta(days=7 * i) for i in range(10)]
    ready = matured(days, latest)
    assert ready == [d for d in days if d + dt.timedelta(days=60) <= latest]
    assert 0 < len(ready) < len(days)


def test_outcomes_of_a_range_past_the_bars_are_left_out_with_the_fix(root, capsys):
    """A range whose expiries reach past the lake's bars settles nothing and says what to
    backfill; the run count stays honest (no run made)."""
    result = _json(["backfill", "--start", "2025-03-03", "--end", "2025-03-04", "--json"], capsys)
    assert result["left_out"] == {}
    result = _json(
        [
            "backfill",
            "--start",
            "2025-03-03",
            "--end",
            "2025-03-04",
            "--assets",
            "outcomes",
            "--json",
        ],
        capsys,
    )
    assert result["stages"] == []
    assert "after the last bars in the lake (2025-03-04)" in result["left_out"]["outcomes"]
    assert "--assets outcomes" in result["left_out"]["outcomes"]


def test_an_unknown_stage_is_bad_input(root, capsys):
    argv = ["backfill", "--start", FIRST, "--end", LAST, "--assets", "everything"]
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == EXIT_BAD_INPUT
    assert "invalid choice: 'everything'" in capsys.readouterr().err
