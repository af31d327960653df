"""The progress line says how far, how fast and how long is left, so a long step never
looks hung."""

from __future__ import annotations

import io

from butterquant_dagster.commands._materialize import ProgressBar


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_piped_lines_give_done_total_rate_and_time_left():
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(stream, clock=clock)
    bar("option_chains", 0, 250, "2025-01-02")
    clock.now += 50.0
    bar("option_chains", 25, 250, "2025-02-07")
    clock.now += 450.0
    bar("option_chains", 250, 250, "2025-12-31")
    lines = stream.getvalue().splitlines()
    assert lines == [
        "option_chains: 25/250 (2025-02-07) (2s each, about 7m 30s left)",
        "option_chains: 250/250 (2025-12-31) (2s each, done in 8m 20s)",
    ]


def test_each_task_keeps_its_own_pace():
    stream, clock = io.StringIO(), Clock()
    bar = ProgressBar(stream, clock=clock)
    bar("training", 0, 7, "walk-forward fold 1")
    clock.now += 3600.0
    bar("daily_bars", 0, 10, "a")
    clock.now += 10.0
    bar("daily_bars", 10, 10, "b")
    bar("training", 7, 7, "done")
    lines = stream.getvalue().splitlines()
    assert lines[-2].endswith("(1.0/s, done in 10s)")
    assert lines[-1].endswith("(8m 36s each, done in 1h 00m)")
