"""System health: can tonight's run trust what it is about to use?

Seven checks, each a pure function of facts that a thin collector gathered (the registry's
champion pointers, the lake's partition listing, the environment, a TCP probe, the disk,
the Dagster run history). Keeping the verdicts pure lets the command, the Dagster asset
checks and the sensor share one set of rules, and lets the tests state a situation
instead of staging it.

Statuses, mildest first: OK; NOTICE (worth knowing, nothing to do); WARN (act soon: the
run still works); FAIL (the daily run cannot be trusted). A report is healthy when no
check FAILs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from butterquant_dagster.core import calendar, settings
from butterquant_dagster.core.ml import gates
from butterquant_dagster.core.ml.registry import ModelRegistry, RegistryError, age_days
from butterquant_dagster.core.storage.lake import Lake

OK, NOTICE, WARN, FAIL = "OK", "NOTICE", "WARN", "FAIL"
STATUSES = (OK, NOTICE, WARN, FAIL)

CHECK_DESCRIPTIONS = {
    "models": "The probability model has a champion with its version, training date and "
    "sample count; the regime model and the signal ensemble are reported (optional).",
    "model_age": "Days since the probability model's champion was trained, against the "
    "notice / warn / fail ages (BUTTERQUANT_MODEL_AGE_*_DAYS).",
    "data_freshness": "The latest session whose snapshot and scan are due is in the lake "
    "for daily_bars, option_chains and scan_rankings.",
    "broker": "The configured broker is reachable (IBKR: a TCP connect to TWS / IB Gateway, "
    "no API handshake); the paper broker is simulated.",
    "llm_provider": "Which LLM providers the environment configures (variable names only, "
    "never their values); none means technical analysis only.",
    "disk": "Free space of the data root's filesystem against BUTTERQUANT_MIN_FREE_DISK_GB, "
    "and the size of each data directory.",
    "last_runs": "Failed Dagster runs in the last 24 hours, by job and run id.",
}
CHECK_NAMES = tuple(CHECK_DESCRIPTIONS)

# The registry names the training assets use (defs.ml.assets.WIN_MODEL / YIELD_MODEL and
# defs.ml.decisions.ENSEMBLE_PREFIX; core cannot import defs, a test keeps them equal).
PROBABILITY_MODEL = "butterfly_win_probability"
YIELD_MODEL = "butterfly_expected_yield"
ENSEMBLE_PREFIX = "signal_ensemble_"
ENSEMBLE_REGIMES = ("bull", "neutral", "bear")
REGIME_TABLE = "regime_model"
MARKET_REGIME_TABLE = "market_regime"
REQUIRED_MODEL_METADATA = ("training_date", "training_samples")

DATA_DIRECTORIES = ("lake", "models", "dagster", "reports", "backups")
GB = 1024**3
MAX_WALK_ENTRIES = 200_000  # a du over more files than this reports a lower bound

# Variable -> provider. Only the names are ever read out; values are tested for presence.
LLM_VARIABLES = {
    "OPENAI_API_KEY": "openai",
    "ANTHROPIC_API_KEY": "anthropic",
    "GROQ_API_KEY": "groq",
    "DEEPSEEK_API_KEY": "deepseek",
    "GOOGLE_API_KEY": "gemini",
    "GEMINI_API_KEY": "gemini",
    "OLLAMA_HOST": "ollama",
}

BROKER_TIMEOUT_SECONDS = 2.0
RUN_WINDOW = dt.timedelta(hours=24)
FAILED_RUN_STATUS = "FAILURE"


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class HealthCheck:
    name: str
    status: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"health check {self.name}: status {self.status!r} not in {STATUSES}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "status": self.status,
            "message": self.message,
            "details": json_safe(self.details),
        }


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[HealthCheck, ...]
    generated_at: dt.datetime

    @property
    def healthy(self) -> bool:
        """WARN and NOTICE still let the daily run go ahead; only a FAIL does not (the
        :attr:`verdict` still says a WARN needs attention)."""
        return all(check.status != FAIL for check in self.checks)

    @property
    def status(self) -> str:
        """The worst status of the checks: OK, NOTICE, WARN (act soon) or FAIL."""
        return _worst(check.status for check in self.checks)

    @property
    def verdict(self) -> str:
        """``healthy`` (OK and NOTICE only), ``needs attention`` (a WARN) or ``NOT HEALTHY``."""
        return {FAIL: "NOT HEALTHY", WARN: "needs attention"}.get(self.status, "healthy")

    def check(self, name: str) -> HealthCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(f"no health check named {name!r}; the checks are {CHECK_NAMES}")

    def with_status(self, *statuses: str) -> list[str]:
        return [check.name for check in self.checks if check.status in statuses]

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "status": self.status,
            "verdict": self.verdict,
            "generated_at": self.generated_at.isoformat(),
            "checks": [check.to_dict() for check in self.checks],
        }

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [(c.name, c.status, c.message) for c in self.checks],
            columns=["check", "status", "message"],
        )


def json_safe(value: Any) -> Any:
    """Details as strict JSON: no NaN or Infinity (null), dates and paths as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [json_safe(item) for item in items]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class HealthThresholds:
    model_age_notice_days: float = settings.default("BUTTERQUANT_MODEL_AGE_NOTICE_DAYS")
    model_age_warn_days: float = settings.default("BUTTERQUANT_MODEL_AGE_WARN_DAYS")
    model_age_fail_days: float = settings.default("BUTTERQUANT_MODEL_AGE_FAIL_DAYS")
    min_free_disk_gb: float = settings.default("BUTTERQUANT_MIN_FREE_DISK_GB")

    def __post_init__(self):
        ages = (self.model_age_notice_days, self.model_age_warn_days, self.model_age_fail_days)
        if not all(math.isfinite(a) and a >= 0 for a in ages) or sorted(ages) != list(ages):
            raise ValueError(
                "model ages must satisfy 0 <= notice <= warn <= fail days, got "
                f"notice {ages[0]}, warn {ages[1]}, fail {ages[2]}"
            )
        if not (math.isfinite(self.min_free_disk_gb) and self.min_free_disk_gb >= 0):
            raise ValueError(f"min_free_disk_gb must be >= 0, got {self.min_free_disk_gb}")

    @classmethod
    def from_settings(cls) -> HealthThresholds:
        def number(name: str) -> float:
            text = settings.env(name)
            try:
                return float(text)
            except ValueError as exc:
                raise ValueError(f"{name}={text!r} is not a number") from exc

        return cls(
            model_age_notice_days=number("BUTTERQUANT_MODEL_AGE_NOTICE_DAYS"),
            model_age_warn_days=number("BUTTERQUANT_MODEL_AGE_WARN_DAYS"),
            model_age_fail_days=number("BUTTERQUANT_MODEL_AGE_FAIL_DAYS"),
            min_free_disk_gb=number("BUTTERQUANT_MIN_FREE_DISK_GB"),
        )


@dataclass(frozen=True)
class FreshnessRule:
    """When an asset's partition for a session is due: ``due_after_close`` after the close
    of the session ``sessions_later`` sessions after it (the scan of session D runs before
    the close of D+1). ``command`` is the fix, with {start}, {end} and {session}."""

    asset: str
    due_after_close: dt.timedelta
    command: str
    sessions_later: int = 0

    def expected_session(self, now: dt.datetime) -> dt.date:
        """The newest session whose partition should be in the lake at ``now``."""
        landed = calendar.latest_completed_session(now - self.due_after_close)
        for _ in range(self.sessions_later):
            landed = calendar.previous_session(landed)
        return landed


# ----------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class ModelFacts:
    """A registry name's champion (``version`` None when it has none)."""

    name: str
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    versions: int = 0
    error: str | None = None
    # Why the latest version is not champion (its failed promotion gates), when it is not.
    latest_refusal: str | None = None


@dataclass(frozen=True)
class RegimeFacts:
    fitted: bool
    fitted_at: str | None = None
    train_end: str | None = None
    error: str | None = None
    # The regime gates: None for a model fitted before they existed.
    gates_passed: bool | None = None
    gates_measured: bool | None = None
    gates_summary: str | None = None
    # The market regime of the latest analysed session (the ``market_regime`` asset).
    current: str | None = None
    current_confidence: float | None = None
    current_session: str | None = None


@dataclass(frozen=True)
class BrokerFacts:
    broker: str
    host: str = ""
    port: int | None = None
    reachable: bool | None = None  # None: not probed (the paper broker, or a bad setting)
    error: str | None = None


@dataclass(frozen=True)
class DiskFacts:
    root: str
    free_bytes: int | None
    total_bytes: int | None
    sizes: dict[str, int | None] | None = None  # None: not measured; a value None: absent
    root_bytes: int | None = None
    truncated: bool = False
    error: str | None = None


@dataclass(frozen=True)
class RunFacts:
    run_id: str
    job: str
    status: str  # DagsterRunStatus value: SUCCESS, FAILURE, CANCELED, STARTED, ...
    at: dt.datetime  # when it ended (or last changed, while it runs)


@dataclass(frozen=True)
class HealthFacts:
    probability_model: ModelFacts
    paired_yield_version: str | None
    ensemble: tuple[ModelFacts, ...]
    regime: RegimeFacts
    partitions: dict[str, frozenset[str]]
    broker: BrokerFacts
    llm_variables: tuple[str, ...]
    disk: DiskFacts
    runs: tuple[RunFacts, ...] | None  # None: the run history could not be read
    runs_error: str | None = None


# ----------------------------------------------------------------------------- checks
def check_models(
    model: ModelFacts,
    paired_yield_version: str | None,
    ensemble: Sequence[ModelFacts],
    regime: RegimeFacts,
) -> HealthCheck:
    """FAIL without a usable probability champion; the regime model and the ensemble are
    optional (features go without a regime, decisions fall back to the signal vote)."""
    details: dict[str, Any] = {
        "probability_model": _model_details(model),
        "paired_yield_model": paired_yield_version,
        "ensemble": {m.name: _model_details(m) for m in ensemble},
        "regime_model": {
            "fitted": regime.fitted,
            "fitted_at": regime.fitted_at,
            "train_end": regime.train_end,
            "error": regime.error,
            "gates_passed": regime.gates_passed,
            "gates": regime.gates_summary,
        },
    }
    problems: list[tuple[str, str]] = []
    summary = None
    if model.error:
        problems.append((FAIL, f"{model.name}: {model.error}"))
    elif model.version is None:
        why = (
            f"{model.versions} version(s) registered, none passed its promotion gates"
            + (f" (latest {model.latest_refusal})" if model.latest_refusal else "")
            if model.versions
            else "no champion: run `butterquant train`"
        )
        problems.append((FAIL, f"{model.name}: {why}; the AI track does not trade"))
    else:
        missing = [k for k in REQUIRED_MODEL_METADATA if model.metadata.get(k) in (None, "")]
        if missing:
            problems.append(
                (
                    FAIL,
                    f"{model.name} {model.version}: metadata lacks {', '.join(missing)}: "
                    "retrain it (`butterquant train`)",
                )
            )
        elif not gates.passed(model.metadata):
            problems.append(
                (
                    FAIL,
                    f"{model.name} {model.version} is champion without a passing gates record "
                    f"({gates.failure_reason(model.metadata)}); the AI track does not trade: "
                    "retrain it (`butterquant train`)",
                )
            )
        else:
            summary = (
                f"{model.name} {model.version} (trained {model.metadata['training_date']}, "
                f"{model.metadata['training_samples']} samples)"
            )
        if paired_yield_version is None:
            problems.append(
                (
                    WARN,
                    f"no {YIELD_MODEL} paired with {model.name} {model.version}: the AI "
                    "track ranks by P(win) (`butterquant train`)",
                )
            )
    problems += [(NOTICE, f"{m.name}: {m.error}") for m in ensemble if m.error]
    absent = [
        m.name.removeprefix(ENSEMBLE_PREFIX) for m in ensemble if m.version is None and not m.error
    ]
    details["current_regime"] = {
        "regime": regime.current,
        "confidence": regime.current_confidence,
        "session": regime.current_session,
        "has_model": regime.current is not None and regime.current not in absent,
    }
    if regime.current in absent:
        # Today's decisions are made in this regime: no model for it is a gap that acts now.
        absent.remove(regime.current)
        confidence = (
            f" {regime.current_confidence:.0%}" if regime.current_confidence is not None else ""
        )
        problems.append(
            (
                WARN,
                f"the market regime is {regime.current}{confidence} on "
                f"{regime.current_session} and the signal ensemble has no {regime.current} "
                "model: today's buy / hold / sell decisions use the plain signal vote "
                "(`butterquant train --model ensemble`; `butterquant models show "
                f"{ENSEMBLE_PREFIX}{regime.current}` says why none was promoted)",
            )
        )
    if absent:
        problems.append(
            (
                NOTICE,
                f"signal ensemble has no champion for {', '.join(absent)}: decisions there "
                "use the signal vote (`butterquant train --model ensemble`)",
            )
        )
    present = [m for m in ensemble if m.version]
    if regime.error:
        problems.append((NOTICE, f"regime model: {regime.error}"))
    elif not regime.fitted:
        problems.append((NOTICE, "regime model not fitted: run `butterquant train --model regime`"))
    elif regime.gates_measured and not regime.gates_passed:
        problems.append((WARN, f"regime model failed its gates: {regime.gates_summary}"))
    elif regime.gates_measured is False:
        problems.append((NOTICE, f"regime model: {regime.gates_summary}"))
    messages = [summary] if summary else []
    if present:
        messages.append(
            "ensemble "
            + ", ".join(f"{m.name.removeprefix(ENSEMBLE_PREFIX)} {m.version}" for m in present)
        )
    if regime.fitted:
        messages.append(f"regime model fitted to {regime.train_end}")
    # The worst first: a person reads the start of the line.
    ordered = sorted(problems, key=lambda p: -STATUSES.index(p[0]))
    messages = [text for status, text in ordered if status != NOTICE] + messages
    messages += [text for status, text in ordered if status == NOTICE]
    return HealthCheck("models", _worst(s for s, _ in problems), "; ".join(messages), details)


def _model_details(model: ModelFacts) -> dict[str, Any]:
    return {
        "champion": model.version,
        "versions": model.versions,
        "training_date": model.metadata.get("training_date"),
        "training_samples": model.metadata.get("training_samples"),
        "error": model.error,
    }


def check_model_age(
    model: ModelFacts, now: dt.datetime, thresholds: HealthThresholds
) -> HealthCheck:
    limits = {
        "notice_days": thresholds.model_age_notice_days,
        "warn_days": thresholds.model_age_warn_days,
        "fail_days": thresholds.model_age_fail_days,
    }
    if model.version is None:
        return HealthCheck(
            "model_age",
            NOTICE,
            f"{model.name} has no champion to age (see the models check)",
            {"model": model.name, **limits},
        )
    try:
        age = age_days(model, now)
    except RegistryError as exc:
        return HealthCheck("model_age", NOTICE, f"age unknown: {exc}", {"model": model.name})
    details = {
        "model": model.name,
        "version": model.version,
        "training_date": model.metadata.get("training_date"),
        "age_days": round(age, 2),
        **limits,
    }
    what = f"{model.name} {model.version} trained {math.floor(age)} days ago"
    if age > thresholds.model_age_fail_days:
        status, message = FAIL, f"{what} (over {limits['fail_days']:g}): retrain it now"
    elif age > thresholds.model_age_warn_days:
        status = WARN
        message = f"{what} (over {limits['warn_days']:g}): consider retraining"
    elif age > thresholds.model_age_notice_days:
        status, message = NOTICE, f"{what} (over {limits['notice_days']:g})"
    else:
        status, message = OK, what
    return HealthCheck("model_age", status, message, details)


def check_data_freshness(
    partitions: Mapping[str, Iterable[str]], now: dt.datetime, rules: Sequence[FreshnessRule]
) -> HealthCheck:
    """FAIL naming each asset whose due session is missing, with the command that fills it.

    A session is due only once its run had time to land (see :class:`FreshnessRule`), so
    the evening before the snapshot and the morning before the scan are not failures.
    """
    details: dict[str, Any] = {}
    missing: dict[tuple[str, str, str], list[str]] = {}  # (session, where, fix) -> assets
    fine = []
    for rule in rules:
        expected = rule.expected_session(now)
        present = sorted(partitions.get(rule.asset, ()))
        up_to = [p for p in present if p <= expected.isoformat()]
        latest = up_to[-1] if up_to else None
        details[rule.asset] = {
            "expected": expected.isoformat(),
            "latest": present[-1] if present else None,
            "present": expected.isoformat() in present,
        }
        if expected.isoformat() in present:
            # The newest session in the lake, which may be ahead of the one due (the scan
            # of the last close is in before the next session's execution needs it).
            fine.append(f"{rule.asset} {present[-1]}")
            continue
        start = calendar.next_session(latest) if latest else expected
        details[rule.asset]["sessions_behind"] = len(calendar.sessions(start, expected))
        where = (
            f"latest {present[-1]}" + (f", none between {latest} and it" if latest else "")
            if present and present[-1] > expected.isoformat()
            else f"latest {latest}"
            if latest
            else "none materialized yet"
        )
        fix = rule.command.format(start=start, end=expected, session=expected)
        missing.setdefault((expected.isoformat(), where, fix), []).append(rule.asset)
    if not missing:
        return HealthCheck("data_freshness", OK, "in the lake: " + ", ".join(fine), details)
    messages = [
        f"{', '.join(assets)} {'lacks' if len(assets) == 1 else 'lack'} session {session} "
        f"({where}): run `{fix}`"
        for (session, where, fix), assets in missing.items()
    ]
    if not any(partitions.get(rule.asset) for rule in rules):
        messages.append("or `butterquant demo` to fill an empty lake with a year of sessions")
    return HealthCheck("data_freshness", FAIL, "; ".join(messages), details)


def check_broker(facts: BrokerFacts) -> HealthCheck:
    details = {"broker": facts.broker, "host": facts.host, "port": facts.port}
    if facts.broker == "paper":
        return HealthCheck("broker", OK, "paper broker (simulated)", details)
    if facts.broker != "ibkr":
        return HealthCheck(
            "broker",
            FAIL,
            f"unknown broker {facts.broker!r} (BUTTERQUANT_BROKER): expected paper or ibkr",
            details,
        )
    where = f"{facts.host}:{facts.port}"
    note = "TCP connect only, no API handshake"
    if facts.reachable:
        return HealthCheck(
            "broker", OK, f"TWS / IB Gateway accepts connections at {where} ({note})", details
        )
    return HealthCheck(
        "broker",
        FAIL,
        f"TWS / IB Gateway unreachable at {where}: {facts.error} ({note}); start it or set "
        "BUTTERQUANT_IB_HOST / BUTTERQUANT_IB_PORT",
        {**details, "error": facts.error},
    )


def check_llm_provider(variables: Iterable[str]) -> HealthCheck:
    names = sorted(set(variables) & set(LLM_VARIABLES))
    providers = sorted({LLM_VARIABLES[name] for name in names})
    details = {"providers": providers, "variables": names}
    if not providers:
        return HealthCheck(
            "llm_provider", OK, "no LLM provider configured: technical analysis only", details
        )
    return HealthCheck(
        "llm_provider",
        OK,
        f"{', '.join(providers)} detected ({', '.join(names)})",
        details,
    )


def check_disk(facts: DiskFacts, thresholds: HealthThresholds) -> HealthCheck:
    sizes_gb = (
        {
            name: (None if size is None else round(size / GB, 3))
            for name, size in facts.sizes.items()
        }
        if facts.sizes is not None
        else None
    )
    details: dict[str, Any] = {
        "root": facts.root,
        "free_gb": None if facts.free_bytes is None else round(facts.free_bytes / GB, 3),
        "total_gb": None if facts.total_bytes is None else round(facts.total_bytes / GB, 3),
        "min_free_gb": thresholds.min_free_disk_gb,
        "data_root_gb": None if facts.root_bytes is None else round(facts.root_bytes / GB, 3),
        "sizes_gb": sizes_gb,
        "sizes_bytes": facts.sizes,
        "data_root_bytes": facts.root_bytes,
        "sizes_are_lower_bounds": facts.truncated,
    }
    if facts.free_bytes is None:
        return HealthCheck(
            "disk", WARN, f"free space of {facts.root} unknown: {facts.error}", details
        )
    free_gb = facts.free_bytes / GB
    message = f"{free_gb:.1f} GB free"
    if facts.total_bytes:
        message += f" of {facts.total_bytes / GB:.1f} GB"
    if facts.root_bytes is not None:
        bound = "at least " if facts.truncated else ""
        parts = ", ".join(
            f"{name} {'absent' if size is None else _size(size)}"
            for name, size in (facts.sizes or {}).items()
        )
        message += f"; data root {bound}{_size(facts.root_bytes)} ({parts})"
    minimum = thresholds.min_free_disk_gb
    if free_gb < minimum:
        return HealthCheck(
            "disk",
            FAIL,
            f"{message}: below the {minimum:g} GB minimum (BUTTERQUANT_MIN_FREE_DISK_GB); free "
            "space or move the data root",
            details,
        )
    if free_gb < 2 * minimum:
        return HealthCheck(
            "disk", WARN, f"{message}: below twice the {minimum:g} GB minimum", details
        )
    return HealthCheck("disk", OK, message, details)


def _size(size: int) -> str:
    if size >= GB:
        return f"{size / GB:.1f} GB"
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def check_last_runs(
    runs: Sequence[RunFacts] | None,
    now: dt.datetime,
    *,
    error: str | None = None,
    window: dt.timedelta = RUN_WINDOW,
) -> HealthCheck:
    """WARN on any failed run of the last ``window``: the daily run may be missing a step
    even when the data it checks looks fine. ``runs`` newest first."""
    if runs is None:
        return HealthCheck("last_runs", NOTICE, f"run history unreadable: {error}", {})
    if not runs:
        return HealthCheck("last_runs", NOTICE, "no runs yet", {"runs_considered": 0})
    since = now - window
    recent = [run for run in runs if run.at >= since]
    failed = [run for run in recent if run.status == FAILED_RUN_STATUS]
    details = {
        "runs_considered": len(runs),
        "runs_in_window": len(recent),
        "window_hours": window.total_seconds() / 3600,
        "failed": [
            {
                "job": run.job,
                "run_id": run.run_id,
                "at": run.at.isoformat(),
                "recovered": _recovered(run, recent),
            }
            for run in failed
        ],
    }
    hours = f"{window.total_seconds() / 3600:g} h"
    if not failed:
        return HealthCheck(
            "last_runs", OK, f"{_runs(len(recent))} in the last {hours}, none failed", details
        )
    named = ", ".join(
        f"{run.job} run {run.run_id}"
        + (" (a later run succeeded)" if _recovered(run, recent) else "")
        for run in failed
    )
    return HealthCheck(
        "last_runs",
        WARN,
        f"{len(failed)} of {_runs(len(recent))} failed in the last {hours}: {named}",
        details,
    )


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def _recovered(run: RunFacts, recent: Sequence[RunFacts]) -> bool:
    return any(r.job == run.job and r.status == "SUCCESS" and r.at > run.at for r in recent)


def evaluate(
    facts: HealthFacts,
    now: dt.datetime,
    thresholds: HealthThresholds,
    rules: Sequence[FreshnessRule],
) -> HealthReport:
    """Every check over ``facts``; a check that raises is itself a FAIL naming the error,
    so one broken probe never hides the others."""
    steps: dict[str, Callable[[], HealthCheck]] = {
        "models": lambda: check_models(
            facts.probability_model, facts.paired_yield_version, facts.ensemble, facts.regime
        ),
        "model_age": lambda: check_model_age(facts.probability_model, now, thresholds),
        "data_freshness": lambda: check_data_freshness(facts.partitions, now, rules),
        "broker": lambda: check_broker(facts.broker),
        "llm_provider": lambda: check_llm_provider(facts.llm_variables),
        "disk": lambda: check_disk(facts.disk, thresholds),
        "last_runs": lambda: check_last_runs(facts.runs, now, error=facts.runs_error),
    }
    checks = []
    for name in CHECK_NAMES:
        try:
            checks.append(steps[name]())
        except Exception as exc:  # reported as the check's failure
            checks.append(
                HealthCheck(name, FAIL, f"check could not run: {type(exc).__name__}: {exc}")
            )
    return HealthReport(tuple(checks), now)


def _worst(statuses: Iterable[str]) -> str:
    return max(statuses, key=STATUSES.index, default=OK)


# ----------------------------------------------------------------------------- collecting
def model_facts(registry: ModelRegistry, name: str) -> ModelFacts:
    try:
        versions = len(registry.versions(name)) if name in registry.names() else 0
        champion = registry.champion(name)
    except RegistryError as exc:
        return ModelFacts(name, error=str(exc))
    latest = registry.versions(name)[-1] if versions else None
    refusal = (
        f"{latest.version}: {gates.failure_reason(latest.metadata)}"
        if latest is not None and not gates.passed(latest.metadata)
        else None
    )
    if champion is None:
        return ModelFacts(name, versions=versions, latest_refusal=refusal)
    return ModelFacts(name, champion.version, dict(champion.metadata), versions, None, refusal)


def paired_yield_version(registry: ModelRegistry, win: ModelFacts) -> str | None:
    """The expected-yield model trained with the win champion (the scan uses only a pair)."""
    if win.version is None:
        return None
    pair = f"{win.name}:{win.version}"
    try:
        versions = registry.versions(YIELD_MODEL) if YIELD_MODEL in registry.names() else []
    except RegistryError:
        return None
    for version in reversed(versions):
        if version.metadata.get("paired_with") == pair:
            return version.version
    return None


def regime_facts(lake: Lake, now: dt.datetime | None = None) -> RegimeFacts:
    """The regime model's fit and gates, and the market regime of the latest session
    analysed by ``now`` (every session when None)."""
    current = current_regime(lake, now)
    path = lake.partition_path(REGIME_TABLE, None)
    if not path.exists():
        return RegimeFacts(fitted=False, **current)
    try:
        row = pd.read_parquet(path).iloc[0]
    except Exception as exc:  # pyarrow raises many types for a bad file
        return RegimeFacts(fitted=False, error=f"{path} is unreadable: {exc}", **current)
    gates = json.loads(row["gates_json"]) if "gates_json" in row.index else None
    return RegimeFacts(
        True,
        str(row["fitted_at"]),
        str(row["train_end"]),
        gates_passed=bool(gates["passed"]) if gates else None,
        gates_measured=bool(gates["measured"]) if gates else None,
        gates_summary=str(gates["summary"]) if gates else None,
        **current,
    )


def current_regime(lake: Lake, now: dt.datetime | None = None) -> dict[str, Any]:
    """``current``, ``current_confidence`` and ``current_session`` of the newest
    ``market_regime`` partition dated on or before ``now`` (all None without one, or when
    it cannot be read: the regime model's own facts report a broken lake)."""
    today = now.astimezone(calendar.EXCHANGE_TZ).date().isoformat() if now else None
    keys = [k for k in lake.partitions(MARKET_REGIME_TABLE) if today is None or k <= today]
    none = {"current": None, "current_confidence": None, "current_session": None}
    if not keys:
        return none
    try:
        row = lake.read(MARKET_REGIME_TABLE, [keys[-1]]).iloc[0]
        confidence = float(row["regime_confidence"]) if "regime_confidence" in row else None
        return {
            "current": str(row["market_regime"]),
            "current_confidence": confidence if confidence == confidence else None,
            "current_session": keys[-1],
        }
    except Exception:  # an unreadable partition: no current regime to judge
        return none


def probe_broker(
    broker: str,
    host: str,
    port: int | str,
    *,
    timeout: float = BROKER_TIMEOUT_SECONDS,
    connect: Callable[..., socket.socket] = socket.create_connection,
) -> BrokerFacts:
    """For IBKR, whether something accepts TCP connections at host:port. No API handshake:
    a health probe must not take a client id from the trading connection."""
    broker = broker.strip().lower()
    if broker != "ibkr":
        return BrokerFacts(broker, host, None)
    try:
        number = int(port)
        if not 0 < number < 65536:
            raise ValueError
    except (TypeError, ValueError):
        return BrokerFacts(broker, host, None, False, f"BUTTERQUANT_IB_PORT {port!r} is not a port")
    try:
        with connect((host, number), timeout=timeout):
            pass
    except OSError as exc:
        return BrokerFacts(broker, host, number, False, str(exc) or type(exc).__name__)
    return BrokerFacts(broker, host, number, True)


def llm_variables(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the LLM variables set to something; the values are never kept."""
    return tuple(sorted(name for name in LLM_VARIABLES if (environ.get(name) or "").strip()))


def disk_facts(
    root: Path,
    *,
    measure_sizes: bool = True,
    usage: Callable[[str], Any] = shutil.disk_usage,
    max_entries: int = MAX_WALK_ENTRIES,
) -> DiskFacts:
    """Free space of the filesystem holding ``root`` (or the nearest existing parent) and,
    when asked, a du of the data root by top-level directory, bounded to ``max_entries``."""
    root = Path(root)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        space = usage(str(existing))
        free, total = int(space.free), int(space.total)
        error = None
    except OSError as exc:
        free = total = None
        error = str(exc)
    if not measure_sizes:
        return DiskFacts(str(root), free, total, error=error)
    by_top, root_bytes, truncated = _walk_sizes(root, max_entries)
    sizes = {
        name: (by_top.get(name, 0) if (root / name).is_dir() else None) for name in DATA_DIRECTORIES
    }
    return DiskFacts(str(root), free, total, sizes, root_bytes, truncated, error)


def _walk_sizes(root: Path, max_entries: int) -> tuple[dict[str, int], int, bool]:
    """Bytes per top-level entry of ``root`` and in all, without following links."""
    by_top: dict[str, int] = {}
    total, seen = 0, 0
    if not root.is_dir():
        return by_top, 0, False
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, top = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            seen += 1
            if seen > max_entries:
                return by_top, total, True
            owner = top or entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, owner))
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    by_top[owner] = by_top.get(owner, 0) + size
                    total += size
            except OSError:
                continue
    return by_top, total, False


def gather_facts(
    root: Path,
    *,
    assets: Iterable[str],
    broker: str,
    ib_host: str,
    ib_port: int | str,
    runs: Sequence[RunFacts] | None,
    runs_error: str | None = None,
    environ: Mapping[str, str] | None = None,
    measure_sizes: bool = True,
    connect: Callable[..., socket.socket] = socket.create_connection,
    now: dt.datetime | None = None,
) -> HealthFacts:
    """Everything the checks judge, read from the data root, the environment and the broker
    port. The run history comes from the caller (only the Dagster layer reads the instance)."""
    root = Path(root)
    registry = ModelRegistry(root / "models")
    lake = Lake(root)
    win = model_facts(registry, PROBABILITY_MODEL)
    return HealthFacts(
        probability_model=win,
        paired_yield_version=paired_yield_version(registry, win),
        ensemble=tuple(model_facts(registry, ENSEMBLE_PREFIX + r) for r in ENSEMBLE_REGIMES),
        regime=regime_facts(lake, now),
        partitions={asset: frozenset(lake.partitions(asset)) for asset in assets},
        broker=probe_broker(broker, ib_host, ib_port, connect=connect),
        llm_variables=llm_variables(os.environ if environ is None else environ),
        disk=disk_facts(root, measure_sizes=measure_sizes),
        runs=None if runs is None else tuple(runs),
        runs_error=runs_error,
    )
