"""The message of a failed step that a person can act on.

Dagster wraps the error a step raised in its own ``DagsterExecutionStepExecutionError``
("Error occurred while executing op ..."), with the domain error as its cause. The terminal,
the failure record and the alert want the domain error: the wrapper is dropped. Shared by the
CLI and the run-failure sensor, so neither imports the other.
"""

from __future__ import annotations

from dagster import DagsterExecutionStepExecutionError

_WRAPPER = DagsterExecutionStepExecutionError.__name__


def error_text(error) -> str:
    """Every message of ``error`` (a ``SerializableErrorInfo``) and its causes, one per line,
    Dagster's step wrapper left out."""
    messages = []
    while error is not None:
        if error.cls_name != _WRAPPER:
            messages.append(error.message.strip())
        error = error.cause
    return "\n".join(messages) or "unknown error"
