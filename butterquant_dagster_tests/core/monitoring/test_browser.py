"""The reports as a reader sees them: each written to disk, opened by headless Chromium from
the file alone, its DOM and a screenshot checked. This catches what string assertions on
the HTML cannot: a page the browser fails to parse, a data URI it refuses to decode, a
layout that renders blank.

Chromium is a test dependency installed by ``make browser`` (part of ``make test``); a
machine without it fails here rather than skipping, so a green run always means the pages
were really rendered.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from butterquant_dagster.core.monitoring.reports import (
    DailyReportInputs,
    MonthlyReportInputs,
    WeeklyReportInputs,
    render_daily,
    render_monthly,
    render_weekly,
    write_report,
)
from butterquant_dagster_tests.core.monitoring.test_reports import (
    GENERATED,
    PNG_SIGNATURE,
    SESSION,
    daily_inputs,
    monthly_inputs,
    weekly_inputs,
)

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_SECONDS = 60
WINDOW = (1280, 2400)
# Headless, and quiet on a closed network: no sandbox (containers run as root), no GPU, no
# QUIC, no first-run, component, sync or background requests that would wait for a
# network that is not there.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
DATA_IMAGE = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"')

REPORTS = {
    "daily": (
        lambda: render_daily(daily_inputs()),
        lambda: render_daily(DailyReportInputs(session=SESSION, generated_at=GENERATED)),
        "2026-11-20",
        1,
        ["62.5%", "$41.27", "$12,345.68", "8.3%", "-$75.25", "$1.85", "v20261101"],
    ),
    "weekly": (
        lambda: render_weekly(weekly_inputs()),
        lambda: render_weekly(WeeklyReportInputs(week="2026-W47", generated_at=GENERATED)),
        "2026-W47",
        5,
        ["0.0613", "0.2107", "52.0%", "-$800.00", "$1,500.00", "0.3200"],
    ),
    "monthly": (
        lambda: render_monthly(monthly_inputs()),
        lambda: render_monthly(MonthlyReportInputs(month="2026-11", generated_at=GENERATED)),
        "2026-11",
        2,
        ["12.3%", "4.6%", "7.8%", "0.87", "0.0312", "95.8%", "RETRAIN"],
    ),
}


def chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's chromium; "
            "run `make browser` (make test does it first)"
        )
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, (
        f"chromium exited {result.returncode}: {' '.join(command)}\n{result.stderr[-2000:]}"
    )
    return result


def screenshot(profile: Path, page: Path, target: Path) -> np.ndarray:
    width, height = WINDOW
    chromium(profile, f"--screenshot={target}", f"--window-size={width},{height}", page.as_uri())
    assert target.exists(), f"chromium wrote no screenshot to {target}"
    assert target.read_bytes()[:8] == PNG_SIGNATURE, f"{target} is not a PNG"
    pixels = matplotlib.image.imread(target)[:, :, :3]
    assert pixels.shape == (height, width, 3)
    return pixels


def ink(pixels: np.ndarray) -> float:
    """Share of pixels that are not (nearly) white."""
    return float((pixels < 0.94).any(axis=2).mean())


def colour(pixels: np.ndarray) -> int:
    """Pixels of a saturated colour: chart lines and bars, status badges."""
    return int(((pixels.max(axis=2) - pixels.min(axis=2)) > 0.25).sum())


@pytest.mark.slow
@pytest.mark.parametrize("period", list(REPORTS))
def test_a_report_renders_in_a_browser_from_the_file_alone(tmp_path, period):
    render_full, render_empty, key, images, figures = REPORTS[period]
    profile = tmp_path / "chromium-profile"
    # Kept for a person to look at: under tmp_path, or where BUTTERQUANT_SCREENSHOTS says
    # (pytest prunes old tmp_paths, and other runs on the machine advance them).
    shots = Path(os.environ.get("BUTTERQUANT_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page = write_report(render_full(), tmp_path / "full", period, key)
    empty = write_report(render_empty(), tmp_path / "empty", period, key)

    dom = chromium(profile, "--dump-dom", page.as_uri()).stdout
    assert f"<title>butterquant {period} report {key}</title>" in dom
    assert len(DATA_IMAGE.findall(dom)) == images
    assert "<script" not in dom  # the hostile ticker stayed text
    text = re.sub(r"<[^>]+>", " ", dom.split("</head>", 1)[1])
    for figure in figures:
        assert figure in text, f"{figure} is not in the rendered {period} report"

    full = screenshot(profile, page, shots / f"{period}.png")
    blank = screenshot(profile, empty, shots / f"{period}-empty.png")
    print(f"\n{period} screenshots kept in {shots}")
    # A page that failed to render is white; charts and badges put colour on it.
    assert ink(full) > 0.03, f"{period}: the screenshot is nearly blank ({ink(full):.1%} ink)"
    assert ink(full) > ink(blank) * 1.5
    assert colour(full) > 2000
    assert colour(blank) == 0  # no chart, no badge: nothing coloured to show
    assert (shots / f"{period}.png").stat().st_size > (shots / f"{period}-empty.png").stat().st_size
