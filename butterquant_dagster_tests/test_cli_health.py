"""`butterquant health`: exit codes on a missing, aging and expired model, a stale lake and
a healthy setup; strict JSON; an LLM key's value never printed."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, main
from butterquant_dagster.commands import health as health_command
from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring.health import CHECK_NAMES, LLM_VARIABLES
from butterquant_dagster_tests.core.monitoring.test_health import fresh_lake, register_champion

# Tuesday 2025-04-01 08:00 New York: Monday's snapshot and Friday's scan are due.
NOW = dt.datetime(2025, 4, 1, 8, 0, tzinfo=calendar.EXCHANGE_TZ)
SECRET = "sk-ant-health-test-never-printed-7731"


@pytest.fixture
def root(isolated_env, monkeypatch):
    """An empty data root at a fixed instant, on the paper broker, without LLM keys."""
    monkeypatch.setattr(health_command, "now", lambda: NOW)
    for name in LLM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BUTTERQUANT_BROKER", raising=False)
    monkeypatch.setenv("BUTTERQUANT_MIN_FREE_DISK_GB", "0")
    return isolated_env


def _health(capsys, *flags) -> tuple[int, str]:
    code = main(["health", *flags])
    return code, capsys.readouterr().out


def _report(capsys) -> tuple[int, dict]:
    code, out = _health(capsys, "--json")
    report = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    return code, report


def _statuses(report: dict) -> dict[str, str]:
    return {check["check"]: check["status"] for check in report["checks"]}


def _trained(days_ago: int) -> dt.date:
    return (NOW - dt.timedelta(days=days_ago)).date()


def test_an_empty_data_root_is_unhealthy_with_the_fixes_named(root, capsys):
    code, out = _health(capsys)
    assert code == EXIT_RUN_FAILED
    assert "butterquant health: NOT HEALTHY" in out
    assert "butterfly_win_probability: no champion: run `butterquant train`" in out
    assert "`butterquant backfill --start 2025-03-31 --end 2025-03-31`" in out
    assert "`butterquant scan --date 2025-03-28`" in out
    assert "no runs yet" in out
    for name in CHECK_NAMES:
        assert f"  {name} " in out


def test_a_healthy_setup_exits_zero(root, capsys):
    register_champion(root, _trained(5))
    fresh_lake(root, "2025-03-31", "2025-03-28")
    code, report = _report(capsys)
    assert code == EXIT_OK
    assert report["healthy"] is True
    assert report["generated_at"] == NOW.isoformat()
    statuses = _statuses(report)
    assert statuses["model_age"] == statuses["data_freshness"] == statuses["broker"] == "OK"
    assert statuses["models"] == "NOTICE"  # no ensemble and no regime model: optional
    disk = next(c for c in report["checks"] if c["check"] == "disk")
    assert disk["details"]["sizes_bytes"]["models"] > 0


def test_a_35_day_old_model_warns_but_exits_zero(root, capsys):
    register_champion(root, _trained(35))
    fresh_lake(root, "2025-03-31", "2025-03-28")
    code, out = _health(capsys)
    assert code == EXIT_OK
    # Not "healthy": a WARN needs attention, though the daily run still goes (exit 0).
    assert "butterquant health: needs attention (1 WARN, 2 NOTICE, 4 OK)" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("model_age"))
    assert "WARN" in line and "35 days ago" in line and "consider retraining" in line


def test_a_61_day_old_model_fails(root, capsys):
    register_champion(root, _trained(61))
    fresh_lake(root, "2025-03-31", "2025-03-28")
    code, report = _report(capsys)
    assert code == EXIT_RUN_FAILED
    assert _statuses(report)["model_age"] == "FAIL"
    assert [c["check"] for c in report["checks"] if c["status"] == "FAIL"] == ["model_age"]


def test_a_stale_session_fails_naming_the_backfill(root, capsys):
    register_champion(root, _trained(5))
    fresh_lake(root, "2025-03-28", "2025-03-28")  # Monday's snapshot never landed
    code, report = _report(capsys)
    assert code == EXIT_RUN_FAILED
    freshness = next(c for c in report["checks"] if c["check"] == "data_freshness")
    assert freshness["status"] == "FAIL"
    assert freshness["message"] == (
        "daily_bars, option_chains lack session 2025-03-31 (latest 2025-03-28): run "
        "`butterquant backfill --start 2025-03-31 --end 2025-03-31`"
    )


def test_an_llm_key_is_detected_but_never_printed(root, capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:11434")
    code, out = _health(capsys)
    json_code, json_out = _health(capsys, "--json")
    assert code == json_code == EXIT_RUN_FAILED
    assert "anthropic, ollama detected (ANTHROPIC_API_KEY, OLLAMA_HOST)" in out
    for text in (out, json_out):
        assert SECRET not in text and SECRET[:8] not in text
        assert "11434" not in text


def test_a_bad_threshold_setting_is_bad_input(root, capsys, monkeypatch):
    monkeypatch.setenv("BUTTERQUANT_MODEL_AGE_WARN_DAYS", "a month")
    assert main(["health"]) == EXIT_BAD_INPUT
    assert "BUTTERQUANT_MODEL_AGE_WARN_DAYS='a month' is not a number" in capsys.readouterr().err
