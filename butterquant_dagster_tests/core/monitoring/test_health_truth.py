"""Health tells the truth: the freshness check names the newest session in the lake (not
the one merely due), a current regime without an ensemble model is a WARN, and a report
with a WARN does not call itself healthy."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from butterquant_dagster.core import calendar
from butterquant_dagster.core.monitoring import health
from butterquant_dagster.core.monitoring.health import (
    ENSEMBLE_PREFIX,
    FAIL,
    NOTICE,
    OK,
    PROBABILITY_MODEL,
    WARN,
    FreshnessRule,
    HealthCheck,
    HealthReport,
    ModelFacts,
    RegimeFacts,
)
from butterquant_dagster.core.storage.lake import Lake

NY = calendar.EXCHANGE_TZ
# Sunday 2026-12-06: Friday 2026-12-04 is the last close; its scan is due before Monday's
# close, so Thursday's scan is the one due, and Friday's is already in.
SUNDAY = dt.datetime(2026, 12, 6, 2, 46, tzinfo=dt.UTC)
RULES = (
    FreshnessRule("daily_bars", dt.timedelta(minutes=90), "butterquant backfill"),
    FreshnessRule("option_chains", dt.timedelta(minutes=90), "butterquant backfill"),
    FreshnessRule(
        "scan_rankings",
        dt.timedelta(minutes=15),
        "butterquant scan --date {session}",
        sessions_later=1,
    ),
)
PASSED = {"passed": True, "failed": [], "reason": "all gates passed", "checks": []}
CHAMPION = ModelFacts(
    PROBABILITY_MODEL,
    "v0003",
    {"training_date": "2026-11-20", "training_samples": 5000, "gates": PASSED},
    versions=3,
)


def _ensemble(*with_model: str) -> tuple[ModelFacts, ...]:
    return tuple(
        ModelFacts(ENSEMBLE_PREFIX + r, "v0001" if r in with_model else None, {}, 1)
        for r in ("bull", "neutral", "bear")
    )


def _regime(current: str | None) -> RegimeFacts:
    return RegimeFacts(
        True, "2026-12-04T22:00:00+00:00", "2026-12-04", None, None, None, None,
        current, 0.96 if current else None, "2026-12-04" if current else None,
    )  # fmt: skip


def test_freshness_names_the_latest_session_in_the_lake():
    both = frozenset({"2026-12-03", "2026-12-04"})
    partitions = {"daily_bars": both, "option_chains": both, "scan_rankings": both}
    check = health.check_data_freshness(partitions, SUNDAY, RULES)
    assert check.status == OK
    # Before: "scan_rankings 2026-12-03", the session due, while 2026-12-04 was in the lake.
    assert check.message == (
        "in the lake: daily_bars 2026-12-04, option_chains 2026-12-04, scan_rankings 2026-12-04"
    )
    assert check.details["scan_rankings"] == {
        "expected": "2026-12-03",
        "latest": "2026-12-04",
        "present": True,
    }


def test_a_gap_before_a_later_session_names_both():
    partitions = {
        "daily_bars": frozenset({"2026-12-02", "2026-12-04"}),
        "option_chains": frozenset({"2026-12-04"}),
        "scan_rankings": frozenset({"2026-12-01", "2026-12-04"}),
    }
    check = health.check_data_freshness(partitions, SUNDAY, RULES)
    assert check.status == FAIL
    assert (
        "scan_rankings lacks session 2026-12-03 (latest 2026-12-04, none between 2026-12-01 "
        "and it): run `butterquant scan --date 2026-12-03`"
    ) in check.message


def test_the_current_regime_without_a_model_is_a_warning():
    check = health.check_models(CHAMPION, "v0003", _ensemble("bull"), _regime("bear"))
    assert check.status == WARN
    assert check.message.startswith(
        "the market regime is bear 96% on 2026-12-04 and the signal ensemble has no bear "
        "model: today's buy / hold / sell decisions use the plain signal vote"
    )
    assert "butterquant models show signal_ensemble_bear" in check.message
    # The other regime without a model stays a notice, named apart.
    assert "signal ensemble has no champion for neutral:" in check.message
    assert check.details["current_regime"] == {
        "regime": "bear",
        "confidence": 0.96,
        "session": "2026-12-04",
        "has_model": False,
    }


def test_the_current_regime_with_a_model_is_fine():
    check = health.check_models(CHAMPION, "v0003", _ensemble("bear"), _regime("bear"))
    assert check.status == NOTICE  # bull and neutral lack one: worth knowing only
    assert "market regime is" not in check.message
    assert check.details["current_regime"]["has_model"] is True


def test_no_current_regime_judges_nothing():
    check = health.check_models(CHAMPION, "v0003", _ensemble(), _regime(None))
    assert check.status == NOTICE
    assert check.details["current_regime"]["regime"] is None


def test_the_current_regime_is_the_latest_analysed_session(tmp_path):
    lake = Lake(tmp_path)
    for session, regime in (("2026-12-03", "neutral"), ("2026-12-04", "bear")):
        frame = pd.DataFrame(
            {"session": [pd.Timestamp(session)], "market_regime": [regime],
             "regime_confidence": [0.96]}
        )  # fmt: skip
        lake.write("market_regime", frame, session)
    facts = health.regime_facts(lake, SUNDAY)
    assert facts.fitted is False  # no regime model: the current regime is still read
    assert (facts.current, facts.current_confidence, facts.current_session) == (
        "bear",
        0.96,
        "2026-12-04",
    )
    # Standing on Thursday, Friday's partition is not yet "current".
    thursday = dt.datetime(2026, 12, 3, 20, 0, tzinfo=NY)
    assert health.regime_facts(lake, thursday).current == "neutral"
    assert health.regime_facts(Lake(tmp_path / "empty")).current is None


def test_a_warning_is_not_healthy_in_the_verdict():
    def report(*statuses):
        checks = tuple(HealthCheck(f"c{i}", s, "m") for i, s in enumerate(statuses))
        return HealthReport(checks, SUNDAY)

    assert (report(OK, NOTICE).verdict, report(OK, NOTICE).status) == ("healthy", NOTICE)
    warned = report(OK, WARN, NOTICE)
    assert warned.verdict == "needs attention" and warned.status == WARN
    assert warned.healthy is True  # the daily run still goes (exit code 0)
    assert report(WARN, FAIL).verdict == "NOT HEALTHY"
    assert report(WARN, FAIL).to_dict()["status"] == FAIL
    assert warned.to_dict()["verdict"] == "needs attention"
