"""The failure record (once per run, readable by period) and the webhook alert."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest

from butterquant_dagster.core.monitoring.run_failures import (
    RunFailuresError,
    failures_between,
    failures_path,
    first_line,
    post_webhook,
    record_failure,
)

T0 = dt.datetime(2026, 3, 9, 21, 5, tzinfo=dt.UTC)


@contextmanager
def webhook_server(status: int = 200):
    """A webhook on 127.0.0.1 that keeps every JSON body it receives."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            received.append(
                {
                    "path": self.path,
                    "content_type": self.headers["Content-Type"],
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/s3cr3t-token", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_failure_is_recorded_once_per_run(tmp_path):
    assert record_failure(tmp_path, "run-1", "scan_job", T0, "ValueError: boom\n  at line 3")
    assert not record_failure(tmp_path, "run-1", "scan_job", T0, "reported again")
    assert record_failure(
        tmp_path, "run-2", "market_job", T0 + dt.timedelta(days=1), "\nLakeError: gone"
    )
    lines = failures_path(tmp_path).read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0]) == {
        "time": "2026-03-09T21:05:00+00:00",
        "job": "scan_job",
        "run_id": "run-1",
        "message": "ValueError: boom",
    }


def test_failures_between_is_half_open_and_sorted(tmp_path):
    for day, run in ((2, "c"), (0, "a"), (1, "b"), (7, "d")):
        record_failure(tmp_path, run, "job", T0 + dt.timedelta(days=day), f"error {run}")
    week = failures_between(tmp_path, T0, T0 + dt.timedelta(days=7))
    assert week["run_id"].tolist() == ["a", "b", "c"]  # d is at the end: excluded
    assert list(week.columns) == ["time", "job", "run_id", "message"]
    assert week["time"].iloc[0] == pd.Timestamp("2026-03-09 21:05", tz="UTC")
    assert week["message"].tolist() == ["error a", "error b", "error c"]


def test_no_record_reads_as_an_empty_frame(tmp_path):
    empty = failures_between(tmp_path, T0, T0 + dt.timedelta(days=1))
    assert empty.empty and list(empty.columns) == ["time", "job", "run_id", "message"]


def test_a_line_torn_by_a_crash_is_dropped_and_a_corrupt_one_is_named(tmp_path):
    record_failure(tmp_path, "run-1", "job", T0, "first")
    path = failures_path(tmp_path)
    with open(path, "a") as handle:
        handle.write('{"time": "2026-03-')  # the crash
    assert failures_between(tmp_path, T0, T0 + dt.timedelta(days=1))["run_id"].tolist() == ["run-1"]
    record_failure(tmp_path, "run-2", "job", T0, "second")
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == [
        "run-1",
        "run-2",
    ]
    path.write_text('not json\n{"time": "x"}\n')
    with pytest.raises(RunFailuresError, match=r"run_failures\.jsonl, line 1: not a failure"):
        failures_between(tmp_path, T0, T0 + dt.timedelta(days=1))


def test_first_line_skips_blank_lines():
    assert first_line("\n\n  Failure: no chains \nTraceback") == "Failure: no chains"
    assert first_line(None) == ""


def test_the_webhook_receives_the_json():
    with webhook_server() as (url, received):
        assert post_webhook(url, {"text": "scan_job failed", "run_id": "r1"}, timeout=5) == "ok"
    assert received == [
        {
            "path": "/hooks/s3cr3t-token",
            "content_type": "application/json",
            "body": {"text": "scan_job failed", "run_id": "r1"},
        }
    ]


def test_a_failing_webhook_is_reported_not_raised_and_never_named():
    with webhook_server(status=500) as (url, _):
        answer = post_webhook(url, {"text": "x"}, timeout=5)
    assert answer == "error: the webhook answered HTTP 500"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks/s3cr3t-token"
    refused = post_webhook(closed, {"text": "x"}, timeout=5)
    assert refused.startswith("error: the webhook could not be reached")
    malformed = post_webhook("s3cr3t-token", {"text": "x"}, timeout=5)
    assert malformed.startswith("error:")
    for text in (answer, refused, malformed):
        assert "s3cr3t" not in text and "127.0.0.1" not in text
    assert post_webhook("", {"text": "x"}) == "error: no webhook configured"
