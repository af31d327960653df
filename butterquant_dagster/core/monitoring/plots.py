"""The report charts, drawn as PNG bytes to embed in a self-contained HTML file.

Figures are built with matplotlib's object API on an explicit Agg canvas, never through
``pyplot``: pyplot keeps a global registry of open figures and picks a backend for the whole
process, both wrong for code that runs inside Dagster's workers. An unreferenced ``Figure``
is freed with its canvas, so nothing stays open between reports.

The same frame gives the same bytes: the style is reset to matplotlib's defaults (a
user's matplotlibrc does not leak in), the font is the DejaVu Sans matplotlib ships, and
the PNG carries no "Software" stamp. Each chart returns ``None`` when there is nothing to
draw; the report shows "not enough data" in its place.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import dates as mdates
from matplotlib import style as mpl_style
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from butterquant_dagster.core.monitoring.metrics import drawdown

DPI = 100
WIDTH = 11.0  # inches: 1100 px, the report's content width
INK, MUTED, GRID = "#1f2933", "#616e7c", "#d9e2ec"
GAIN, LOSS = "#1b7a43", "#b42318"
PALETTE = (
    "#2563a8",
    "#d97706",
    "#1b7a43",
    "#b42318",
    "#7c3aed",
    "#0f766e",
    "#9d174d",
    "#4b5563",
    "#65a30d",
    "#0369a1",
)
REGIME_COLORS = {"bull": GAIN, "neutral": "#2563a8", "bear": LOSS}
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "path.simplify": False,
}
Y_FORMATS = ("number", "percent", "dollars")


# ------------------------------------------------------------------------------ helpers
def _figure(height: float, width: float = WIDTH, **subplots) -> tuple[Figure, object]:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(**subplots)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    figure.clear()
    return buffer.getvalue()


def _draw(render) -> bytes | None:
    """Run ``render`` (which returns a Figure or None) in the fixed style, as PNG bytes."""
    with mpl_style.context("default"), matplotlib.rc_context(STYLE):
        figure = render()
        return None if figure is None else _png(figure)


def _formatter(kind: str) -> ticker.Formatter:
    if kind not in Y_FORMATS:
        raise ValueError(f"chart: unknown value format {kind!r}; expected one of {Y_FORMATS}")
    if kind == "percent":
        return ticker.PercentFormatter(1.0, decimals=None)  # decimals from the view
    if kind == "dollars":
        return DollarFormatter()
    return ticker.ScalarFormatter(useOffset=False)


class DollarFormatter(ticker.Formatter):
    """$, $k or $M with as many decimals as the tick step needs, so ticks $100.05k and
    $100.10k never both print as $100k."""

    def format_ticks(self, values) -> list[str]:
        locs = np.sort(np.asarray(values, dtype=float))
        step = float(np.min(np.diff(locs))) if len(locs) > 1 else 0.0
        largest = float(np.max(np.abs(locs))) if len(locs) else 0.0
        return [_dollars(value, step, largest) for value in values]

    def __call__(self, value: float, pos: object = None) -> str:
        return _dollars(value, 0.0, abs(value))


def _dollars(value: float, step: float, largest: float) -> str:
    unit, suffix = (1e6, "M") if largest >= 1e6 else (1e3, "k") if largest >= 1e4 else (1.0, "")
    decimals = 0 if step <= 0 else max(0, min(3, math.ceil(-math.log10(step / unit) - 1e-9)))
    sign = "-" if value < 0 and round(abs(value) / unit, decimals) != 0 else ""
    return f"{sign}${abs(value) / unit:,.{decimals}f}{suffix}"


def _label(value: float, kind: str) -> str:
    if kind == "percent":
        return f"{value:.1%}"
    if kind == "dollars":
        return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"
    return f"{value:,.3g}"


def _rows(
    frame: pd.DataFrame | None, what: str, numeric: list[str], labels: list[str] = ()
) -> pd.DataFrame | None:
    """Rows of ``frame`` whose ``numeric`` columns are finite numbers and whose ``labels``
    are present; None when no row is left."""
    if frame is None or frame.empty:
        return None
    missing = [c for c in [*labels, *numeric] if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; found {list(frame.columns)}")
    out = frame.copy()
    for column in numeric:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    keep = (
        np.isfinite(out[numeric].to_numpy(float)).all(axis=1)
        & out[list(labels)].notna().all(axis=1).to_numpy()
    )
    out = out[keep]
    return out if len(out) else None


def _date_axis(axes, sessions: np.ndarray) -> None:
    """Dates without overlapping labels; never finer than a day (sessions have no hours)."""
    span = pd.Timestamp(sessions.max()) - pd.Timestamp(sessions.min())
    if span < pd.Timedelta(days=10):
        locator = mdates.DayLocator()
    else:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# ------------------------------------------------------------------------------ charts
def equity_chart(equity: pd.DataFrame | None, benchmark_label: str = "benchmark") -> bytes | None:
    """Equity (and the benchmark, when its column has values) above, drawdown below.

    ``equity``: session, equity and optionally drawdown (a share of the peak) and
    benchmark. Needs two sessions: one point is not a curve.
    """
    frame = _rows(equity, "equity_chart", ["equity"], ["session"])
    if frame is None or len(frame) < 2:
        return None
    frame = frame.assign(session=pd.to_datetime(frame["session"])).sort_values("session")
    sessions = frame["session"].to_numpy()
    values = frame["equity"].to_numpy(float)
    if "drawdown" in frame and np.isfinite(frame["drawdown"].to_numpy(float)).all():
        fall = frame["drawdown"].to_numpy(float)
    else:
        fall = drawdown(values)
    benchmark = (
        pd.to_numeric(frame["benchmark"], errors="coerce").to_numpy(float)
        if "benchmark" in frame
        else np.full(len(frame), np.nan)
    )

    def render():
        figure, (top, bottom) = _figure(
            5.6, nrows=2, sharex=True, gridspec_kw={"height_ratios": [3, 1.2]}
        )
        top.plot(sessions, values, color=PALETTE[0], linewidth=1.8, label="equity")
        if np.isfinite(benchmark).any():
            top.plot(
                sessions,
                benchmark,
                color=MUTED,
                linewidth=1.3,
                linestyle="--",
                label=benchmark_label,
            )
        top.set_title("Equity")
        top.yaxis.set_major_formatter(_formatter("dollars"))
        top.legend(loc="upper left")
        bottom.fill_between(sessions, -fall, 0.0, color=LOSS, alpha=0.35, linewidth=0)
        bottom.plot(sessions, -fall, color=LOSS, linewidth=1.0)
        bottom.set_title("Drawdown from peak", fontsize=10)
        bottom.yaxis.set_major_formatter(_formatter("percent"))
        bottom.yaxis.set_major_locator(ticker.MaxNLocator(4))
        bottom.set_ylim(top=0.0, bottom=min(-0.01, float(-fall.max()) * 1.15))
        _date_axis(bottom, sessions)
        return figure

    return _draw(render)


def reliability_chart(reliability: Mapping[str, pd.DataFrame] | None) -> bytes | None:
    """The reliability diagram: the hit rate of each probability bucket against the mean
    probability the model gave it, one series per frame ("candidates", "trades"); marker
    area grows with the bucket's count. On the diagonal the model is calibrated."""
    series = {}
    for name, frame in (reliability or {}).items():
        rows = _rows(frame, f"reliability[{name}]", ["mean_predicted", "hit_rate", "count"])
        if rows is not None:
            rows = rows[rows["count"] > 0]
            if len(rows):
                series[name] = rows
    if not series:
        return None
    largest = max(float(rows["count"].max()) for rows in series.values())

    def render():
        figure, axes = _figure(5.2, width=6.4)
        axes.plot([0, 1], [0, 1], color=MUTED, linestyle="--", linewidth=1, label="calibrated")
        for i, (name, rows) in enumerate(series.items()):
            color = PALETTE[i % len(PALETTE)]
            x, y = rows["mean_predicted"].to_numpy(float), rows["hit_rate"].to_numpy(float)
            sizes = 25 + 350 * rows["count"].to_numpy(float) / largest
            axes.plot(x, y, color=color, linewidth=1.2, alpha=0.8)
            axes.scatter(
                x,
                y,
                s=sizes,
                color=color,
                alpha=0.75,
                edgecolors="white",
                zorder=3,
                label=f"{name} (n={int(rows['count'].sum()):,d})",
            )
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1)
        axes.set_aspect("equal")
        axes.xaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))
        axes.yaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=0))
        axes.set_xlabel("mean predicted P(win)")
        axes.set_ylabel("actual hit rate")
        axes.set_title("Confidence vs accuracy")
        legend = axes.legend(loc="upper left")
        for handle in legend.legend_handles[1:]:
            handle.set_sizes([60])  # the legend names the series; the size is per bucket
        return figure

    return _draw(render)


def pnl_histogram(pnl) -> bytes | None:
    """The distribution of closed trades' P/L in dollars, losses red and gains green."""
    values = np.asarray(pd.to_numeric(pd.Series(pnl, dtype=object), errors="coerce"), float)
    values = values[np.isfinite(values)]
    if not len(values):
        return None

    def render():
        figure, axes = _figure(3.6)
        # Bins of equal width with zero on an edge, so no bar mixes losses and gains.
        low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
        bins = int(min(30, max(6, math.ceil(math.sqrt(len(values)) * 2))))
        width = (high - low) / bins or 1.0
        edges = np.arange(math.floor(low / width), math.floor(high / width) + 2) * width
        counts, edges = np.histogram(values, bins=edges)
        centers = (edges[:-1] + edges[1:]) / 2
        colors = [LOSS if c < 0 else GAIN for c in centers]
        axes.bar(centers, counts, width=np.diff(edges) * 0.92, color=colors, alpha=0.85)
        axes.axvline(0.0, color=INK, linewidth=0.8)
        axes.xaxis.set_major_formatter(_formatter("dollars"))
        axes.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axes.set_xlabel("P/L per trade")
        axes.set_ylabel("trades")
        trades = "closed trade" if len(values) == 1 else "closed trades"
        axes.set_title(f"P/L distribution ({len(values):,d} {trades})")
        return figure

    return _draw(render)


def bar_chart(
    frame: pd.DataFrame | None,
    x: str,
    y: str,
    title: str,
    *,
    kind: str = "number",
    max_bars: int = 25,
) -> bytes | None:
    """Horizontal bars of ``y`` per ``x`` (a ticker, a regime), largest on top, red and
    green by sign when both occur; beyond ``max_bars`` only the largest in size are drawn
    and the title says so."""
    _formatter(kind)
    rows = _rows(frame, f"bar_chart {title!r}", [y], [x])
    if rows is None:
        return None
    total = len(rows)
    if total > max_bars:
        rows = rows.loc[rows[y].abs().sort_values(ascending=False).index[:max_bars]]
        title = f"{title} (largest {max_bars} of {total})"
    rows = rows.sort_values(y)
    labels = rows[x].astype(str).to_numpy()
    values = rows[y].to_numpy(float)

    def render():
        figure, axes = _figure(1.3 + 0.32 * len(rows))
        positions = np.arange(len(rows))
        # Red and green say loss and gain; bars that are all of one sign (win rates,
        # counts) get one neutral colour instead.
        mixed = values.min() < 0 < values.max()
        colors = [LOSS if v < 0 else GAIN for v in values] if mixed else PALETTE[0]
        axes.barh(positions, values, color=colors, height=0.7)
        axes.set_yticks(positions, labels)
        axes.axvline(0.0, color=INK, linewidth=0.8)
        axes.grid(axis="y", visible=False)
        axes.xaxis.set_major_formatter(_formatter(kind))
        low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
        pad = (high - low or 1.0) * 0.14
        axes.set_xlim(low - (pad if low < 0 else 0), high + (pad if high > 0 else 0))
        for position, value in zip(positions, values, strict=True):
            axes.annotate(
                _label(value, kind),
                (value, position),
                xytext=(4 if value >= 0 else -4, 0),
                textcoords="offset points",
                va="center",
                ha="left" if value >= 0 else "right",
                fontsize=8,
                color=INK,
            )
        axes.set_title(title)
        return figure

    return _draw(render)


def line_chart(
    frame: pd.DataFrame | None,
    x: str,
    y: str,
    group: str,
    title: str,
    *,
    kind: str = "number",
    max_groups: int = 8,
) -> bytes | None:
    """One line of ``y`` over ``x`` per ``group`` (a feature, a regime). ``x`` is a date or
    an ordered label such as "2026-W46" or "2026-11"; beyond ``max_groups`` only the groups
    with the largest mean size are drawn and the title says so."""
    _formatter(kind)
    rows = _rows(frame, f"line_chart {title!r}", [y], [x, group])
    if rows is None:
        return None
    rows = rows.assign(**{group: rows[group].astype(str)})
    sizes = rows.groupby(group)[y].apply(lambda s: s.abs().mean()).sort_values(ascending=False)
    if len(sizes) > max_groups:
        rows = rows[rows[group].isin(sizes.index[:max_groups])]
        title = f"{title} (largest {max_groups} of {len(sizes)})"
    order = [g for g in sizes.index if g in set(rows[group])]
    dated = pd.api.types.is_datetime64_any_dtype(rows[x])
    if dated:
        positions = {v: v for v in rows[x].unique()}
    else:
        labels = sorted(rows[x].astype(str).unique())
        positions = {label: i for i, label in enumerate(labels)}
        rows = rows.assign(**{x: rows[x].astype(str)})

    def render():
        figure, axes = _figure(4.2)
        for i, name in enumerate(order):
            line = rows[rows[group] == name].sort_values(x)
            axes.plot(
                [positions[v] for v in line[x]],
                line[y].to_numpy(float),
                color=REGIME_COLORS.get(name, PALETTE[i % len(PALETTE)]),
                marker="o",
                markersize=4,
                linewidth=1.6,
                label=name,
            )
        if dated:
            _date_axis(axes, rows[x].to_numpy())
        else:
            step = max(1, math.ceil(len(labels) / 12))
            ticks = list(range(0, len(labels), step))
            axes.set_xticks(ticks, [labels[t] for t in ticks])
            axes.set_xlim(-0.5, len(labels) - 0.5)
        axes.yaxis.set_major_formatter(_formatter(kind))
        axes.set_title(title)
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
        return figure

    return _draw(render)
