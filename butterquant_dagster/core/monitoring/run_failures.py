"""A record of failed runs, and the alert that tells someone about them.

Dagster keeps every run in its instance, but a question like "what failed last week" should
not need the instance's databases (which retention and restores leave alone) nor a UI. So
each failure is also one JSON line in ``<root>/ops/run_failures.jsonl``, written once per run
id however often it is reported, and the reports read it.

The alert is a JSON POST to a webhook (``BUTTERQUANT_ALERT_WEBHOOK``; the ``text`` field
makes it readable in Slack-style chat hooks). The URL is a secret, since whoever holds it
can post to the channel: it never appears in a log line, an error text or metadata, and a
failing webhook never fails the caller, because an alert that cannot be delivered must not
turn into a second failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

FAILURES_FILE = Path("ops") / "run_failures.jsonl"
COLUMNS = ["time", "job", "run_id", "message"]
USER_AGENT = "butterquant-alerts"


class RunFailuresError(ValueError):
    """The failure record holds a line that is not a failure."""


def failures_path(root: str | Path) -> Path:
    return Path(root) / FAILURES_FILE


def first_line(text: str | None) -> str:
    """The first non-empty line of ``text`` (an error's headline), or ""."""
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def record_failure(
    root: str | Path, run_id: str, job: str, time: dt.datetime, message: str
) -> bool:
    """Append the failure of ``run_id`` unless it is already recorded; True if it was new.

    One ``write`` of one line to a file opened for appending, under an exclusive lock for
    the check-and-append, so two reporters of the same run record it once.
    """
    if not run_id:
        raise ValueError("record_failure needs the run id")
    if time.tzinfo is None:
        raise ValueError(f"time {time} has no timezone; pass an aware datetime")
    path = failures_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {
            "time": time.astimezone(dt.UTC).isoformat(),
            "job": job,
            "run_id": run_id,
            "message": first_line(message),
        },
        sort_keys=True,
    )
    with _locked(path):
        if any(record["run_id"] == run_id for record in _records(path)):
            return False
        _drop_torn_tail(path)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, (line + "\n").encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return True


def failures_between(root: str | Path, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """The failures with ``start <= time < end``, oldest first (``time`` in UTC)."""
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise ValueError(f"{name} {moment} has no timezone; pass an aware datetime")
    records = list(_records(failures_path(root)))
    frame = pd.DataFrame(records, columns=COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame = frame.astype({"job": str, "run_id": str, "message": str})
    window = (frame["time"] >= pd.Timestamp(start)) & (frame["time"] < pd.Timestamp(end))
    return frame.loc[window].sort_values(["time", "run_id"]).reset_index(drop=True)


def post_webhook(url: str, payload: dict, timeout: float = 10.0) -> str:
    """POST ``payload`` as JSON to ``url``; "ok" or "error: ..." (never raises, never names
    the URL)."""
    if not url:
        return "error: no webhook configured"
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload, default=str).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"error: the webhook answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:  # refused, unknown host, timeout
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return _redacted(f"error: the webhook could not be reached ({reason})", url)
    except Exception as exc:  # e.g. a malformed URL, whose message would quote it
        return f"error: the webhook could not be called ({type(exc).__name__})"
    if 200 <= status < 300:
        return "ok"
    return f"error: the webhook answered HTTP {status}"


def _redacted(text: str, url: str) -> str:
    return text.replace(url, "<webhook>") if url else text


def _records(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not all(key in record for key in COLUMNS):
                raise ValueError("missing fields")
        except ValueError as exc:
            if number == len(lines):  # a last line torn by a crash mid-write
                continue
            raise RunFailuresError(f"{path}, line {number}: not a failure record ({exc})") from exc
        yield record


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line a crash left without its newline (it never was a whole record)."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
