"""A backtest's report files: the equity chart (PNG), a standalone HTML page and the
figures as JSON, under ``<data root>/reports/backtests/<strategy>-<start>-<end>.*``.

The JSON is what ``butterquant backtest`` prints from; the HTML carries its chart inline,
so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from butterquant_dagster.core.backtest.metrics import BENCHMARK_METRIC_NAMES, METRIC_NAMES
from butterquant_dagster.core.backtest.result import BacktestResult
from butterquant_dagster.core.monitoring import html
from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA
from butterquant_dagster.core.monitoring.plots import equity_chart

REPORT_DIR = Path("reports") / "backtests"
METRIC_KINDS = {
    "total_return": "percent",
    "sharpe_ratio": "ratio",
    "sortino_ratio": "ratio",
    "max_drawdown": "percent",
    "win_rate_of_trades": "percent",
    "win_rate_of_days": "percent",
    "profit_factor": "ratio",
    "trades": "count",
    "benchmark_total_return": "percent",
    "benchmark_max_drawdown": "percent",
}
STEP_TABLE_COLUMNS = [
    "step",
    "start",
    "end",
    "label_cutoff",
    "training_rows",
    "model_trained",
    "note",
]
BENCHMARK_LABELS = {
    "butterfly": "equal-weighted stocks (buy and hold)",
    "signals": "buy and hold, equal weight",
}


@dataclass(frozen=True)
class ReportFiles:
    png: Path
    html: Path
    json: Path

    def as_dict(self) -> dict[str, str]:
        return {"png": str(self.png), "html": str(self.html), "json": str(self.json)}


def report_files(data_root: str | Path, result: BacktestResult) -> ReportFiles:
    start = result.start.isoformat() if result.start else "none"
    end = result.end.isoformat() if result.end else "none"
    stem = Path(data_root) / REPORT_DIR / f"{result.strategy}-{start}-{end}"
    return ReportFiles(
        png=stem.with_suffix(".png"), html=stem.with_suffix(".html"), json=stem.with_suffix(".json")
    )


def metric_text(name: str, value) -> str:
    """A figure as a person reads it: ``12.3%``, ``1.42``, or ``not enough data``."""
    return html.format_value(value, METRIC_KINDS.get(name, "number"), NOT_ENOUGH_DATA)


def metric_lines(metrics: dict) -> list[str]:
    names = [n for n in (*METRIC_NAMES, *BENCHMARK_METRIC_NAMES) if n in metrics]
    width = max((len(n) for n in names), default=0)
    return [f"{name:<{width}}  {metric_text(name, metrics[name])}" for name in names]


def steps_markdown(steps: pd.DataFrame) -> str:
    if steps is None or not len(steps):
        return "(no walk-forward steps)"
    shown = steps[[c for c in STEP_TABLE_COLUMNS if c in steps.columns]].copy()
    for column in ("start", "end", "label_cutoff"):
        if column in shown:
            shown[column] = pd.to_datetime(shown[column]).dt.strftime("%Y-%m-%d")
    shown["note"] = shown["note"].astype(str).str.replace("|", "/", regex=False)
    return shown.to_markdown(index=False)


def chart(result: BacktestResult) -> bytes | None:
    """The equity curve with its drawdown and benchmark; ``None`` under two sessions."""
    return equity_chart(
        result.equity[["session", "equity", "drawdown", "benchmark"]],
        benchmark_label=BENCHMARK_LABELS.get(result.strategy, "benchmark"),
    )


def page(result: BacktestResult, png: bytes | None) -> str:
    metrics = result.metrics
    tiles = [
        html.Tile(name.replace("_", " "), metrics[name], METRIC_KINDS.get(name, "number"))
        for name in (*METRIC_NAMES, *BENCHMARK_METRIC_NAMES)
        if name in metrics
    ]
    sections = [
        html.section(
            "Summary",
            html.facts(
                {
                    "strategy": result.strategy,
                    "window": f"{result.start} .. {result.end}",
                    "tickers": ", ".join(result.tickers) or "none",
                    "initial capital": html.format_value(result.initial_capital, "dollars"),
                }
            ),
            html.tiles(tiles),
            html.notes(result.notes),
        ),
        html.section("Equity", html.image(png, "equity, drawdown and benchmark")),
    ]
    if result.strategy == "butterfly":
        sections.append(
            html.section(
                "Walk-forward steps",
                html.table(
                    result.steps[[c for c in STEP_TABLE_COLUMNS if c in result.steps.columns]]
                    if len(result.steps)
                    else None,
                    formats={"training_rows": "count"},
                    what="walk-forward steps",
                ),
            )
        )
    sections.append(
        html.section(
            "Closed trades",
            html.table(result.trades, what="closed trades", max_rows=100),
        )
    )
    return html.document(
        f"Backtest: {result.strategy} {result.start} .. {result.end}",
        sections,
        subtitle="Simulated on the paper fill model with fees; past results, not a forecast.",
    )


def _write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` and rename: never half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_report(data_root: str | Path, result: BacktestResult) -> tuple[ReportFiles, bytes | None]:
    """Write the PNG (when there is a curve to draw), the HTML and the JSON; returns the
    paths and the PNG bytes."""
    files = report_files(data_root, result)
    png = chart(result)
    if png is not None:
        _write(files.png, png)
    else:
        files.png.unlink(missing_ok=True)  # an older chart of the same window is stale
    _write(files.html, page(result, png).encode("utf-8"))
    written = files.as_dict() | ({} if png is not None else {"png": None})
    summary = {**result.summary(), "report": written}
    _write(files.json, json.dumps(summary, indent=2, default=str).encode("utf-8"))
    return files, png
