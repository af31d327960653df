"""System health: each check's verdict on stated facts, the collectors on a real registry,
lake and disk, and the report as strict JSON. Also the builders of a healthy data root the
Dagster and command tests share."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from butterquant_dagster.core import calendar
from butterquant_dagster.core.ml import onnx_export
from butterquant_dagster.core.ml.features import FEATURE_COLUMNS
from butterquant_dagster.core.ml.registry import RESERVED_METADATA, ModelRegistry
from butterquant_dagster.core.monitoring import health
from butterquant_dagster.core.monitoring.health import (
    CHECK_NAMES,
    ENSEMBLE_PREFIX,
    FAIL,
    GB,
    NOTICE,
    OK,
    PROBABILITY_MODEL,
    WARN,
    YIELD_MODEL,
    BrokerFacts,
    DiskFacts,
    FreshnessRule,
    HealthCheck,
    HealthReport,
    HealthThresholds,
    ModelFacts,
    RegimeFacts,
    RunFacts,
)
from butterquant_dagster.core.storage.lake import Lake

NY = calendar.EXCHANGE_TZ
# Tuesday 2025-04-01 08:00 New York: Monday's snapshot is due, Friday's scan is the latest.
MORNING = dt.datetime(2025, 4, 1, 8, 0, tzinfo=NY)
SNAPSHOT = dt.timedelta(minutes=90)  # 30 minutes after the close, one hour to land
SCAN = dt.timedelta(minutes=15)  # 45 minutes before the next close, one hour to land
RULES = (
    FreshnessRule("daily_bars", SNAPSHOT, "butterquant backfill --start {start} --end {end}"),
    FreshnessRule("option_chains", SNAPSHOT, "butterquant backfill --start {start} --end {end}"),
    FreshnessRule("scan_rankings", SCAN, "butterquant scan --date {session}", sessions_later=1),
)


# ----------------------------------------------------------------------------- builders
# A verdict as core.ml.gates.verdict writes it for a model that passed every gate.
PASSED_GATES = {"passed": True, "failed": [], "reason": "all gates passed", "checks": []}


def register_champion(root: Path, training_date: dt.date, *, paired: bool = True) -> str:
    """A tiny real ONNX probability model (and its paired yield model) as champion."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, len(FEATURE_COLUMNS))).astype(np.float32)
    registry = ModelRegistry(root / "models")
    metadata = {
        "feature_columns": FEATURE_COLUMNS,
        "label": "win",
        "metrics": {"brier": 0.2},
        "training_date": training_date.isoformat(),
        "training_samples": 120,
        "gates": PASSED_GATES,
    }
    classifier = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    win = registry.register(PROBABILITY_MODEL, onnx_export.export(classifier, x.shape[1]), metadata)
    registry.promote(PROBABILITY_MODEL, win.version, reason="test")
    if paired:
        regressor = LinearRegression().fit(x, x[:, 0])
        registry.register(
            YIELD_MODEL,
            onnx_export.export(regressor, x.shape[1]),
            {**metadata, "label": "yield", "paired_with": f"{PROBABILITY_MODEL}:{win.version}"},
        )
    return win.version


def write_sessions(root: Path, table: str, sessions) -> None:
    lake = Lake(root)
    for session in sessions:
        frame = pd.DataFrame({"session": [pd.Timestamp(session)], "symbol": ["AAA"]})
        lake.write(table, frame, str(session))


def fresh_lake(root: Path, market_through: str, scan_through: str) -> None:
    """The two latest sessions of the snapshot and of the scan, up to the given sessions."""
    for table in ("daily_bars", "option_chains"):
        write_sessions(root, table, calendar.trailing_sessions(market_through, 2))
    write_sessions(root, "scan_rankings", calendar.trailing_sessions(scan_through, 2))


# ----------------------------------------------------------------------------- models
def _champion(**metadata) -> ModelFacts:
    meta = {
        "training_date": "2025-03-20",
        "training_samples": 5000,
        "gates": PASSED_GATES,
        **metadata,
    }
    return ModelFacts(PROBABILITY_MODEL, "v0003", meta, versions=3)


ENSEMBLE = tuple(
    ModelFacts(ENSEMBLE_PREFIX + r, "v0001", {}, 1) for r in ("bull", "neutral", "bear")
)
FITTED = RegimeFacts(True, "2025-03-20T22:00:00+00:00", "2025-03-20")


def test_a_complete_champion_is_ok_and_named_with_its_metadata():
    check = health.check_models(_champion(), "v0003", ENSEMBLE, FITTED)
    assert check.status == OK
    assert "butterfly_win_probability v0003 (trained 2025-03-20, 5000 samples)" in check.message
    assert "regime model fitted to 2025-03-20" in check.message
    assert check.details["probability_model"]["champion"] == "v0003"


def test_no_champion_fails_and_says_to_train():
    check = health.check_models(ModelFacts(PROBABILITY_MODEL), None, ENSEMBLE, FITTED)
    assert check.status == FAIL
    assert check.message.startswith("butterfly_win_probability: no champion")
    assert "run `butterquant train`" in check.message


def test_versions_without_a_champion_say_none_was_promoted():
    facts = ModelFacts(PROBABILITY_MODEL, versions=2)
    check = health.check_models(facts, None, ENSEMBLE, FITTED)
    assert check.status == FAIL
    assert "2 version(s) registered, none passed its promotion gates" in check.message


def test_a_champion_without_a_passing_gates_record_fails():
    """A champion promoted before the gates existed does not trade, and health says so."""
    legacy = ModelFacts(
        PROBABILITY_MODEL, "v0002", {"training_date": "2025-03-20", "training_samples": 10}, 2
    )
    check = health.check_models(legacy, "v0002", ENSEMBLE, FITTED)
    assert check.status == FAIL
    assert "without a passing gates record" in check.message
    assert "the AI track does not trade" in check.message


def test_the_latest_refusal_is_named(tmp_path):
    register_champion(tmp_path, dt.date(2025, 3, 20))
    registry = ModelRegistry(tmp_path / "models")
    champion = registry.champion(PROBABILITY_MODEL)
    kept = {k: v for k, v in champion.metadata.items() if k not in RESERVED_METADATA}
    refused = {**kept, "gates": {"passed": False, "reason": "brier_skill: -0.01"}}
    onnx = champion.onnx_path.read_bytes()
    registry.register(PROBABILITY_MODEL, onnx, refused)
    facts = health.model_facts(registry, PROBABILITY_MODEL)
    assert facts.version == champion.version
    assert facts.latest_refusal == "v0002: brier_skill: -0.01"
    no_champion = dataclasses.replace(facts, version=None, metadata={})
    check = health.check_models(no_champion, None, ENSEMBLE, FITTED)
    assert check.status == FAIL
    assert "(latest v0002: brier_skill: -0.01); the AI track does not trade" in check.message


def test_a_champion_without_training_samples_fails():
    champion = ModelFacts(PROBABILITY_MODEL, "v0001", {"training_date": "2025-03-20"}, 1)
    check = health.check_models(champion, "v0001", ENSEMBLE, FITTED)
    assert check.status == FAIL
    assert "metadata lacks training_samples" in check.message


def test_an_unpaired_champion_warns_that_the_scan_uses_the_rule_score():
    check = health.check_models(_champion(), None, ENSEMBLE, FITTED)
    assert check.status == WARN
    assert "no butterfly_expected_yield paired with butterfly_win_probability v0003" in (
        check.message
    )


def test_missing_ensemble_and_regime_model_are_notices():
    ensemble = (ENSEMBLE[0], ModelFacts(ENSEMBLE_PREFIX + "neutral"), ENSEMBLE[2])
    check = health.check_models(_champion(), "v0003", ensemble, RegimeFacts(False))
    assert check.status == NOTICE
    assert "no champion for neutral" in check.message
    assert "`butterquant train --model regime`" in check.message
    # The good news comes before the notices.
    assert check.message.startswith("butterfly_win_probability v0003")


def test_model_facts_from_a_real_registry(tmp_path):
    assert health.model_facts(ModelRegistry(tmp_path / "models"), PROBABILITY_MODEL) == (
        ModelFacts(PROBABILITY_MODEL)
    )
    version = register_champion(tmp_path, dt.date(2025, 3, 20))
    registry = ModelRegistry(tmp_path / "models")
    facts = health.model_facts(registry, PROBABILITY_MODEL)
    assert (facts.version, facts.versions, facts.metadata["training_samples"]) == (
        version,
        1,
        120,
    )
    assert health.paired_yield_version(registry, facts) == "v0001"
    unpaired = tmp_path / "unpaired"
    register_champion(unpaired, dt.date(2025, 3, 20), paired=False)
    registry = ModelRegistry(unpaired / "models")
    assert (
        health.paired_yield_version(registry, health.model_facts(registry, PROBABILITY_MODEL))
        is None
    )


def test_an_unreadable_champion_pointer_is_a_failure_not_a_crash(tmp_path):
    register_champion(tmp_path, dt.date(2025, 3, 20))
    (tmp_path / "models" / PROBABILITY_MODEL / "champion.json").write_text("{not json")
    facts = health.model_facts(ModelRegistry(tmp_path / "models"), PROBABILITY_MODEL)
    assert facts.version is None and "unreadable" in facts.error
    check = health.check_models(facts, None, ENSEMBLE, FITTED)
    assert check.status == FAIL and "unreadable" in check.message


def test_regime_facts_read_the_lake(tmp_path):
    assert health.regime_facts(Lake(tmp_path)) == RegimeFacts(False)
    frame = pd.DataFrame(
        [{"model_json": "{}", "train_end": "2025-03-20", "fitted_at": "2025-03-21T00:00:00"}]
    )
    Lake(tmp_path).write("regime_model", frame)
    facts = health.regime_facts(Lake(tmp_path))
    assert (facts.fitted, facts.train_end) == (True, "2025-03-20")


def test_a_regime_model_that_failed_its_gates_is_a_warning(tmp_path):
    gates = {"passed": False, "measured": True, "summary": "failed bear_recall"}
    frame = pd.DataFrame(
        [
            {
                "model_json": "{}",
                "train_end": "2025-03-20",
                "fitted_at": "2025-03-21T00:00:00",
                "gates_json": json.dumps(gates),
            }
        ]
    )
    Lake(tmp_path).write("regime_model", frame)
    facts = health.regime_facts(Lake(tmp_path))
    assert (facts.gates_passed, facts.gates_measured) == (False, True)
    check = health.check_models(_champion(), "v0003", ENSEMBLE, facts)
    assert check.status == WARN
    assert "regime model failed its gates: failed bear_recall" in check.message
    unmeasured = RegimeFacts(True, "x", "2025-03-20", None, False, False, "not measured: no truth")
    check = health.check_models(_champion(), "v0003", ENSEMBLE, unmeasured)
    assert check.status == NOTICE and "not measured: no truth" in check.message


# ----------------------------------------------------------------------------- model age
THRESHOLDS = HealthThresholds()


@pytest.mark.parametrize(
    ("days", "status", "words"),
    [
        (10, OK, "trained 10 days ago"),
        (14, OK, "trained 14 days ago"),  # at the notice age, not over it
        (20, NOTICE, "(over 14)"),
        (35, WARN, "consider retraining"),
        (61, FAIL, "retrain it now"),
    ],
)
def test_model_age_thresholds(days, status, words):
    now = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    trained = (now - dt.timedelta(days=days)).date().isoformat()
    check = health.check_model_age(_champion(training_date=trained), now, THRESHOLDS)
    assert check.status == status
    assert words in check.message
    assert check.details["age_days"] == days


def test_model_age_without_a_champion_or_a_date_is_a_notice():
    now = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    assert health.check_model_age(ModelFacts(PROBABILITY_MODEL), now, THRESHOLDS).status == NOTICE
    bad = ModelFacts(PROBABILITY_MODEL, "v0001", {"training_date": "last spring"}, 1)
    check = health.check_model_age(bad, now, THRESHOLDS)
    assert check.status == NOTICE and "last spring" in check.message


def test_thresholds_from_settings(monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_MODEL_AGE_WARN_DAYS", "20")
    monkeypatch.setenv("BUTTERQUANT_MIN_FREE_DISK_GB", "1.5")
    thresholds = HealthThresholds.from_settings()
    assert (thresholds.model_age_warn_days, thresholds.min_free_disk_gb) == (20.0, 1.5)
    monkeypatch.setenv("BUTTERQUANT_MODEL_AGE_FAIL_DAYS", "soon")
    with pytest.raises(ValueError, match="BUTTERQUANT_MODEL_AGE_FAIL_DAYS='soon'"):
        HealthThresholds.from_settings()
    with pytest.raises(ValueError, match="notice <= warn <= fail"):
        HealthThresholds(model_age_warn_days=90)


# ----------------------------------------------------------------------------- freshness
@pytest.mark.parametrize(
    ("now", "market", "scan"),
    [
        # Tuesday morning: Monday's snapshot, Friday's scan (Monday's runs at Tuesday 15:15).
        (MORNING, "2025-03-31", "2025-03-28"),
        # Tuesday 17:29: Tuesday's snapshot (16:30) still has a minute to land.
        (dt.datetime(2025, 4, 1, 17, 29, tzinfo=NY), "2025-03-31", "2025-03-31"),
        (dt.datetime(2025, 4, 1, 17, 31, tzinfo=NY), "2025-04-01", "2025-03-31"),
        # Tuesday 16:14: Monday's scan (Tuesday 15:15) is due at 16:15.
        (dt.datetime(2025, 4, 1, 16, 14, tzinfo=NY), "2025-03-31", "2025-03-28"),
        # Independence Day: the holiday is never missing; 3 July closed early at 13:00.
        (dt.datetime(2025, 7, 4, 10, 0, tzinfo=NY), "2025-07-03", "2025-07-02"),
        (dt.datetime(2025, 7, 3, 14, 31, tzinfo=NY), "2025-07-03", "2025-07-02"),
        (dt.datetime(2025, 7, 3, 14, 29, tzinfo=NY), "2025-07-02", "2025-07-02"),
        # ... and its 12:15 scan of 2 July is due at 13:15.
        (dt.datetime(2025, 7, 3, 13, 14, tzinfo=NY), "2025-07-02", "2025-07-01"),
    ],
)
def test_the_due_session_follows_the_schedules_and_the_calendar(now, market, scan):
    assert RULES[0].expected_session(now).isoformat() == market
    assert RULES[2].expected_session(now).isoformat() == scan


def _partitions(market: list[str], scan: list[str]) -> dict[str, set[str]]:
    return {"daily_bars": set(market), "option_chains": set(market), "scan_rankings": set(scan)}


def test_fresh_lake_is_ok():
    check = health.check_data_freshness(
        _partitions(["2025-03-28", "2025-03-31"], ["2025-03-28"]), MORNING, RULES
    )
    assert check.status == OK
    assert check.message == (
        "in the lake: daily_bars 2025-03-31, option_chains 2025-03-31, scan_rankings 2025-03-28"
    )


def test_a_stale_lake_names_the_assets_the_session_and_the_backfill():
    check = health.check_data_freshness(
        _partitions(["2025-03-25", "2025-03-26"], ["2025-03-28"]), MORNING, RULES
    )
    assert check.status == FAIL
    assert check.message == (
        "daily_bars, option_chains lack session 2025-03-31 (latest 2025-03-26): run "
        "`butterquant backfill --start 2025-03-27 --end 2025-03-31`"
    )
    assert check.details["daily_bars"]["sessions_behind"] == 3


def test_a_missing_scan_names_the_scan_command():
    check = health.check_data_freshness(_partitions(["2025-03-31"], ["2025-03-27"]), MORNING, RULES)
    assert check.status == FAIL
    assert check.message == (
        "scan_rankings lacks session 2025-03-28 (latest 2025-03-27): run "
        "`butterquant scan --date 2025-03-28`"
    )


def test_an_empty_lake_also_points_at_the_demo():
    check = health.check_data_freshness({}, MORNING, RULES)
    assert check.status == FAIL
    assert "none materialized yet" in check.message
    assert "`butterquant backfill --start 2025-03-31 --end 2025-03-31`" in check.message
    assert check.message.endswith(
        "or `butterquant demo` to fill an empty lake with a year of sessions"
    )


# ----------------------------------------------------------------------------- broker
def test_the_paper_broker_is_simulated():
    check = health.check_broker(health.probe_broker("paper", "127.0.0.1", 7497))
    assert (check.status, check.message) == (OK, "paper broker (simulated)")


def test_a_listening_gateway_is_reachable_without_a_handshake():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        facts = health.probe_broker("ibkr", "127.0.0.1", str(port), timeout=1.0)
    check = health.check_broker(facts)
    assert check.status == OK
    assert f"127.0.0.1:{port}" in check.message and "no API handshake" in check.message


def test_a_closed_port_fails_naming_host_and_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check = health.check_broker(health.probe_broker("ibkr", "127.0.0.1", port, timeout=1.0))
    assert check.status == FAIL
    assert f"unreachable at 127.0.0.1:{port}" in check.message


def test_a_silent_host_times_out_quickly():
    def silent(address, timeout):
        assert timeout == health.BROKER_TIMEOUT_SECONDS
        raise TimeoutError("timed out")

    check = health.check_broker(health.probe_broker("ibkr", "10.9.9.9", 4002, connect=silent))
    assert check.status == FAIL and "10.9.9.9:4002: timed out" in check.message


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (health.probe_broker("ibkr", "127.0.0.1", "http"), "'http' is not a port"),
        (BrokerFacts("schwab"), "unknown broker 'schwab'"),
    ],
)
def test_bad_broker_settings_fail(facts, words):
    check = health.check_broker(facts)
    assert check.status == FAIL and words in check.message


# ----------------------------------------------------------------------------- llm
SECRET = "sk-test-DO-NOT-PRINT-4242"


def test_llm_providers_are_named_but_never_their_keys():
    environ = {"OPENAI_API_KEY": SECRET, "GEMINI_API_KEY": SECRET + "g", "GROQ_API_KEY": " "}
    check = health.check_llm_provider(health.llm_variables(environ))
    assert check.status == OK
    assert check.message == "gemini, openai detected (GEMINI_API_KEY, OPENAI_API_KEY)"
    text = json.dumps(check.to_dict())
    assert SECRET not in text and "sk-" not in text


def test_no_llm_provider_is_technical_analysis_only():
    check = health.check_llm_provider(health.llm_variables({"PATH": "/bin"}))
    assert check.status == OK
    assert check.message == "no LLM provider configured: technical analysis only"


# ----------------------------------------------------------------------------- disk
Usage = namedtuple("Usage", "total used free")


def _disk(free_gb: float) -> DiskFacts:
    return DiskFacts("/data", int(free_gb * GB), 100 * GB)


@pytest.mark.parametrize(
    ("free_gb", "status", "words"),
    [(4.0, FAIL, "below the 5 GB minimum"), (8.0, WARN, "below twice"), (20.0, OK, "20.0 GB")],
)
def test_disk_thresholds(free_gb, status, words):
    check = health.check_disk(_disk(free_gb), THRESHOLDS)
    assert check.status == status and words in check.message


def test_disk_facts_measure_each_data_directory(tmp_path):
    root = tmp_path / "data"
    (root / "lake" / "daily_bars").mkdir(parents=True)
    (root / "lake" / "daily_bars" / "2025-03-31.parquet").write_bytes(b"x" * 3000)
    (root / "models").mkdir()
    (root / "models" / "m.onnx").write_bytes(b"x" * 500)
    (root / "warehouse.duckdb").write_bytes(b"x" * 100)
    facts = health.disk_facts(root, usage=lambda path: Usage(100 * GB, 90 * GB, 10 * GB))
    assert facts.sizes == {
        "lake": 3000,
        "models": 500,
        "dagster": None,
        "reports": None,
        "backups": None,
    }
    assert (facts.root_bytes, facts.truncated, facts.free_bytes) == (3600, False, 10 * GB)
    check = health.check_disk(facts, THRESHOLDS)
    assert check.status == OK
    assert "data root 4 KB (lake 3 KB, models 500 B, dagster absent" in check.message


def test_the_walk_is_bounded(tmp_path):
    for i in range(10):
        (tmp_path / f"f{i}").write_bytes(b"x" * 10)
    facts = health.disk_facts(tmp_path, max_entries=4, usage=lambda p: Usage(1, 0, 1))
    assert facts.truncated and facts.root_bytes == 40
    assert "at least" in health.check_disk(facts, HealthThresholds(min_free_disk_gb=0)).message


def test_disk_without_sizes_and_before_the_root_exists(tmp_path):
    seen = []
    facts = health.disk_facts(
        tmp_path / "not" / "yet",
        measure_sizes=False,
        usage=lambda path: seen.append(path) or Usage(100 * GB, 50 * GB, 50 * GB),
    )
    assert seen == [str(tmp_path)]
    assert facts.sizes is None
    assert health.check_disk(facts, THRESHOLDS).message == "50.0 GB free of 100.0 GB"


# ----------------------------------------------------------------------------- runs
NOW = dt.datetime(2025, 4, 1, 12, 0, tzinfo=dt.UTC)


def _run(run_id: str, job: str, status: str, hours_ago: float) -> RunFacts:
    return RunFacts(run_id, job, status, NOW - dt.timedelta(hours=hours_ago))


def test_no_runs_yet_is_a_notice():
    assert health.check_last_runs([], NOW).status == NOTICE
    unreadable = health.check_last_runs(None, NOW, error="database is locked")
    assert unreadable.status == NOTICE and "database is locked" in unreadable.message


def test_a_failed_run_in_the_last_day_warns_naming_job_and_run():
    runs = [
        _run("r3", "market_snapshot_job", "SUCCESS", 1),
        _run("r2", "scan_job", "FAILURE", 2),
        _run("r1", "market_snapshot_job", "FAILURE", 3),
        _run("r0", "execution_job", "FAILURE", 30),  # outside the window
    ]
    check = health.check_last_runs(runs, NOW)
    assert check.status == WARN
    assert check.message == (
        "2 of 3 runs failed in the last 24 h: scan_job run r2, market_snapshot_job run r1 "
        "(a later run succeeded)"
    )
    assert [f["run_id"] for f in check.details["failed"]] == ["r2", "r1"]


def test_only_old_failures_are_ok():
    runs = [_run("r1", "scan_job", "SUCCESS", 1), _run("r0", "scan_job", "FAILURE", 25)]
    check = health.check_last_runs(runs, NOW)
    assert (check.status, check.message) == (OK, "1 run in the last 24 h, none failed")


# ----------------------------------------------------------------------------- the report
def _facts(**overrides) -> health.HealthFacts:
    values = {
        "probability_model": _champion(training_date="2025-03-25"),
        "paired_yield_version": "v0003",
        "ensemble": ENSEMBLE,
        "regime": FITTED,
        "partitions": _partitions(["2025-03-31"], ["2025-03-28"]),
        "broker": BrokerFacts("paper"),
        "llm_variables": (),
        "disk": _disk(50),
        "runs": (),
    }
    return health.HealthFacts(**(values | overrides))


def test_a_report_is_healthy_with_warnings_and_not_with_a_failure():
    report = health.evaluate(_facts(disk=_disk(8)), MORNING, THRESHOLDS, RULES)
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert report.healthy and report.check("disk").status == WARN
    broken = health.evaluate(_facts(partitions={}), MORNING, THRESHOLDS, RULES)
    assert not broken.healthy and broken.with_status(FAIL) == ["data_freshness"]


def test_a_check_that_raises_fails_alone():
    report = health.evaluate(_facts(disk=None), MORNING, THRESHOLDS, RULES)
    assert report.check("disk").status == FAIL
    assert report.check("disk").message.startswith("check could not run: AttributeError")
    assert report.check("models").status == OK


def test_the_report_is_strict_json():
    report = HealthReport(
        (HealthCheck("disk", OK, "fine", {"ratio": float("nan"), "when": dt.date(2025, 4, 1)}),),
        MORNING,
    )
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert json.loads(text)["checks"][0]["details"] == {"ratio": None, "when": "2025-04-01"}
    assert report.to_frame().columns.tolist() == ["check", "status", "message"]
    with pytest.raises(ValueError, match="status 'BAD'"):
        HealthCheck("disk", "BAD", "?")
