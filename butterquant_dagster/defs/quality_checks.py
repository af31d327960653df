"""Blocking data-quality checks, one per rule of a core rule set (market data, candidates).

The checks run inside the asset, on the frames it produced, before anything is published:
a snapshot that fails one never reaches the lake, so no later run can read it either.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

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
    results = []
    for outcome in report.outcomes.values():
        examples = "\n".join(f"- {v.describe()}" for v in outcome.examples[:20])
        results.append(
            AssetCheckResult(
                asset_key=asset_name,
                check_name=outcome.rule,
                passed=outcome.passed,
                severity=AssetCheckSeverity.ERROR,
                description=outcome.summary(),
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


def failure_message(asset_name: str, report: QualityReport) -> str:
    lines = [f"{asset_name} failed its data-quality checks; nothing was published:"]
    lines += [outcome.summary() for outcome in report.failures()]
    return "\n".join(lines)
