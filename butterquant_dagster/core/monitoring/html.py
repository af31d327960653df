"""A tiny HTML builder for the reports: one self-contained file, every text escaped.

A report is opened from disk, mailed, printed, archived, so it carries everything it shows:
the style sheet is inline, the charts are ``data:image/png;base64`` URIs, and nothing is
loaded from the network (no CDN, no web fonts, no scripts).

Every builder returns :class:`Html`, markup this module made. Anything else handed to a
builder is text and is escaped, so a ticker, a reason or an error message can never inject
markup into the page, whatever it contains.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd

from butterquant_dagster.core.monitoring.metrics import NOT_ENOUGH_DATA

MISSING_CELL = "–"
DEFAULT_MAX_ROWS = 50
STATUSES = ("OK", "NOTICE", "WARN", "RETRAIN", "FAIL")
KINDS = ("percent", "dollars", "ratio", "score", "count", "number", "date", "text")


class Html(str):
    """Markup made by this module; a plain ``str`` is text and gets escaped."""


def text(value: object) -> Html:
    """``value`` as escaped text (markup made here passes through unchanged)."""
    if isinstance(value, Html):
        return value
    return Html(escape(str(value), quote=True))


def _join(blocks: Iterable[object]) -> Html:
    return Html(
        "\n".join(block if isinstance(block, Html) else paragraph(block) for block in blocks)
    )


# ------------------------------------------------------------------------------ values
def is_missing(value: object) -> bool:
    if value is None or value is pd.NaT:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return not math.isfinite(float(value))
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_value(value: object, kind: str = "number", missing: str = NOT_ENOUGH_DATA) -> str:
    """``value`` as a reader wants it: 0.123 as percent is "12.3%", 1234.5 as dollars is
    "$1,234.50", 1.234 as ratio is "1.23"; ``missing`` for None or NaN."""
    if kind not in KINDS:
        raise ValueError(f"format_value: unknown kind {kind!r}; expected one of {KINDS}")
    if is_missing(value):
        return missing
    if isinstance(value, dt.date):  # datetimes and Timestamps too
        if isinstance(value, dt.datetime):
            has_time = (value.hour, value.minute, value.second) != (0, 0, 0)
            return value.strftime("%Y-%m-%d %H:%M" if has_time else "%Y-%m-%d")
        return value.isoformat()
    if kind in ("text", "date") or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = float(value)
    if kind == "percent":
        return f"{number:.1%}"
    if kind == "dollars":
        return f"-${-number:,.2f}" if number < 0 else f"${number:,.2f}"
    if kind == "ratio":
        return f"{number:,.2f}"
    if kind == "score":
        return f"{number:.4f}"
    if kind == "count":
        return f"{round(number):,d}"
    if isinstance(value, numbers.Integral) or (number.is_integer() and abs(number) < 1e15):
        return f"{round(number):,d}"
    return f"{number:,.4g}" if abs(number) < 1 else f"{number:,.2f}"


# ------------------------------------------------------------------------------ blocks
def paragraph(value: object, css_class: str | None = None) -> Html:
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return Html(f"<p{attribute}>{text(value)}</p>")


def not_enough_data(what: str | None = None) -> Html:
    """The placeholder for a figure, table or chart that cannot be computed."""
    message = f"{what}: {NOT_ENOUGH_DATA}" if what else NOT_ENOUGH_DATA
    return Html(f'<p class="missing">{text(message)}</p>')


def badge(status: str) -> Html:
    """A coloured status label; an unknown status is shown grey rather than refused."""
    label = str(status).upper()
    css = label.lower() if label in STATUSES else "unknown"
    return Html(f'<span class="badge badge-{css}">{text(label)}</span>')


@dataclass(frozen=True)
class Tile:
    """One key figure: ``value`` is formatted by ``kind`` (see :data:`KINDS`)."""

    label: str
    value: object
    kind: str = "number"
    hint: str | None = None  # a second line, e.g. the benchmark's figure


def tiles(items: Iterable[Tile], heading: str | None = None) -> Html:
    cells = []
    for tile in items:
        value = format_value(tile.value, tile.kind)
        missing = " tile-missing" if is_missing(tile.value) else ""
        hint = f'<div class="tile-hint">{text(tile.hint)}</div>' if tile.hint else ""
        cells.append(
            f'<div class="tile{missing}"><div class="tile-label">{text(tile.label)}</div>'
            f'<div class="tile-value">{text(value)}</div>{hint}</div>'
        )
    title = f'<div class="tiles-heading">{text(heading)}</div>' if heading else ""
    return Html(f'{title}<div class="tiles">{"".join(cells)}</div>')


def _fact(value: object) -> Html:
    if isinstance(value, Html):
        return value
    if is_missing(value):
        return Html(f'<span class="missing">{NOT_ENOUGH_DATA}</span>')
    return text(format_value(value, "text"))


def facts(items: Mapping[str, object]) -> Html:
    """Label-value lines; a value that is :class:`Html` (e.g. a badge) is kept as markup,
    None is "not enough data"."""
    rows = "".join(
        f"<dt>{text(label)}</dt><dd>{_fact(value)}</dd>" for label, value in items.items()
    )
    return Html(f'<dl class="facts">{rows}</dl>')


def notes(lines: Iterable[object]) -> Html:
    items = [line for line in lines if not is_missing(line) and str(line).strip()]
    if not items:
        return Html("")
    return Html(
        '<ul class="notes">' + "".join(f"<li>{text(line)}</li>" for line in items) + "</ul>"
    )


def table(
    frame: pd.DataFrame | None,
    *,
    formats: Mapping[str, str] | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    what: str | None = None,
    status_column: str | None = None,
) -> Html:
    """``frame`` as a table, numbers formatted by ``formats`` (column -> kind), at most
    ``max_rows`` rows with a line saying how many more there are. An empty or missing frame
    is the "not enough data" placeholder. ``status_column`` is shown as badges."""
    if frame is None or frame.empty or not len(frame.columns):
        return not_enough_data(what)
    formats = dict(formats or {})
    unknown = sorted(set(formats.values()) - set(KINDS))
    if unknown:
        raise ValueError(f"table {what or ''}: unknown format(s) {unknown}; expected {KINDS}")
    shown = frame.head(max_rows)
    numeric = {
        column
        for column in shown.columns
        if pd.api.types.is_numeric_dtype(shown[column])
        and not pd.api.types.is_bool_dtype(shown[column])
    }
    kinds = {
        column: formats.get(column)
        or (_number_kind(shown[column]) if column in numeric else "text")
        for column in shown.columns
    }
    head = "".join(
        f'<th class="{"num" if column in numeric else "txt"}">{text(column)}</th>'
        for column in shown.columns
    )
    body = []
    for row in shown.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(shown.columns, row, strict=True):
            if column == status_column and not is_missing(value):
                cells.append(f'<td class="txt">{badge(str(value))}</td>')
                continue
            kind = kinds[column]
            css = "num" if column in numeric else "txt"
            cells.append(f'<td class="{css}">{text(format_value(value, kind, MISSING_CELL))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = len(frame) - len(shown)
    footer = f'<p class="more">{more:,d} more rows not shown</p>' if more > 0 else ""
    return Html(
        f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{footer}"
    )


def _number_kind(column: pd.Series) -> str:
    """One format for a whole numeric column, so its decimals line up: whole numbers as
    counts, large values with 2 decimals, small ones with 4."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(float)
    values = values[np.isfinite(values)]
    if not len(values) or (np.mod(values, 1) == 0).all():
        return "count"
    return "ratio" if np.abs(values).max() >= 10 else "score"


def image(png: bytes | None, alt: str) -> Html:
    """A chart embedded as a data URI, or the placeholder when there was nothing to draw."""
    if not png:
        return not_enough_data(alt)
    encoded = base64.b64encode(png).decode("ascii")
    return Html(
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{text(alt)}">'
        f"<figcaption>{text(alt)}</figcaption></figure>"
    )


def subsection(heading: str, *blocks: object) -> Html:
    return Html(f'<div class="subsection"><h3>{text(heading)}</h3>\n{_join(blocks)}</div>')


def details(summary: str, *blocks: object) -> Html:
    """Blocks folded under a one-line summary (open with a click; printed folded)."""
    return Html(f"<details><summary>{text(summary)}</summary>\n{_join(blocks)}</details>")


def section(heading: str, *blocks: object) -> Html:
    return Html(f"<section><h2>{text(heading)}</h2>\n{_join(blocks)}</section>")


def document(title: str, sections: Iterable[object], subtitle: str | None = None) -> str:
    """The whole page: ``title`` in <title> and <h1>, ``subtitle`` under it."""
    sub = f'<p class="subtitle">{text(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{text(title)}</h1>{sub}</header>\n{_join(sections)}\n"
        "</main>\n</body>\n</html>\n"
    )


STYLE = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --panel: #f5f7fa;
  --ok: #1b7a43; --notice: #2563a8; --warn: #a86a00; --fail: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-bottom: 3px solid var(--ink); margin-bottom: 8px; }
h1 { font-size: 24px; margin: 0 0 4px; }
.subtitle { color: var(--muted); margin: 0 0 10px; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
p { margin: 6px 0; }
.missing { color: var(--muted); font-style: italic; }
.more { color: var(--muted); font-size: 12px; }
.tiles-heading { font-weight: bold; color: var(--muted); margin: 10px 0 6px; font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 10px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 12px; }
.tile-label { color: var(--muted); font-size: 12px; }
.tile-value { font-size: 20px; font-weight: bold; font-variant-numeric: tabular-nums; }
.tile-missing .tile-value { font-size: 13px; font-weight: normal; font-style: italic;
  color: var(--muted); padding-top: 6px; }
.tile-hint { color: var(--muted); font-size: 12px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 4px 0; }
th, td { padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); text-align: left; white-space: nowrap; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
figure { margin: 8px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; min-width: 58px; text-align: center; padding: 1px 8px;
  border-radius: 10px; font-size: 12px; font-weight: bold; color: #fff; background: #7b8794; }
.badge-ok { background: var(--ok); } .badge-notice { background: var(--notice); }
.badge-warn { background: var(--warn); } .badge-retrain { background: var(--fail); }
.badge-fail { background: var(--fail); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; }
.notes { margin: 6px 0; padding-left: 20px; }
.subsection { margin-bottom: 12px; }
@media print {
  main { max-width: none; padding: 0; }
  figure, .tiles, tr { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .badge, .tile, th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""
