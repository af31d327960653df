"""Blocking data-quality checks, one per rule of a core rule set (market data, candidates).

The checks run inside the asset, on the frames it produced, session by session, before
anything is published: a session that fails one never reaches the lake, so no later run can
read it either, and the sessions of the run that passed every check are published without it
(docs/data_formats.md, "Bad sessions").
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

from butterquant_dagster.core import calendar
from butterquant_dagster.core.market.validation import QualityReport, Rule


def check_specs(asset_name: str, rules: tuple[Rule, ...]) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            name=rule.name,
            asset=asset_name,
            description=rule.description,
            blocking=True,
        )
        for rule in rules
    ]


def check_results(asset_name: str, report: QualityReport) -> list[AssetCheckResult]:
    """One result per rule over the run. A rule that failed names the sessions it refused;
    those sessions are not published, the others passed it."""
    results = []
    for outcome in report.outcomes.values():
        examples = "\n".join(f"- {v.describe()}" for v in outcome.examples[:20])
        description = outcome.summary()
        if not outcome.passed:
            description += (
                f"\nRefused, not published: {', '.join(outcome.sessions_failed[:10])}"
                + (" ..." if len(outcome.sessions_failed) > 10 else "")
            )
        results.append(
            AssetCheckResult(
                asset_key=asset_name,
                check_name=outcome.rule,
                passed=outcome.passed,
                severity=AssetCheckSeverity.ERROR,
                description=description,
                metadata={
                    "violations": outcome.violations,
                    "rows_checked": outcome.rows_checked,
                    "sessions_failed": len(outcome.sessions_failed),
                    "first_failed_sessions": ", ".join(outcome.sessions_failed[:10]),
                    "examples": MetadataValue.md(examples or "none"),
                },
            )
        )
    return results


def failure_message(
    asset_name: str, report: QualityReport, published: list[str] | None = None, shown: int = 10
) -> str:
    """What was refused and why, session by session, and what was published instead.

    ``published`` lists the run's sessions that passed every check, in order."""
    refused = report.sessions_refused
    published = published or []
    total = len(refused) + len(published)
    lines = [
        f"{asset_name} refused {len(refused)} of {total} session(s) of the run; "
        "they were not published:"
    ]
    lines += [report.refusals[key].describe() for key in refused[:shown]]
    if len(refused) > shown:
        lines.append(f"- ... and {len(refused) - shown} more: {', '.join(refused[shown:][:20])}")
    failed_rules = [outcome.rule for outcome in report.failures()]
    if failed_rules:
        lines.append(f"Failed checks: {', '.join(failed_rules)}.")
    if published:
        lines.append(
            f"The other {len(published)} session(s) passed every check and were published: "
            f"{session_ranges_of(published)}."
        )
    else:
        lines.append("Nothing was published.")
    return "\n".join(lines)


def session_ranges_of(keys: list[str]) -> str:
    """Runs of consecutive NYSE sessions among ``keys`` (ISO dates), e.g.
    ``2008-10-13..2008-10-14, 2008-10-16..2008-10-17``."""
    if not keys:
        return "none"
    keys = sorted(keys)
    every = [d.isoformat() for d in calendar.sessions(keys[0], keys[-1])]
    position = {key: i for i, key in enumerate(every)}
    runs: list[list[str]] = [[keys[0]]]
    for key in keys[1:]:
        if position.get(key, -2) == position.get(runs[-1][-1], -3) + 1:
            runs[-1].append(key)
        else:
            runs.append([key])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)
