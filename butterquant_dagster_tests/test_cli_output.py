"""How the commands print: dates as dates in JSON, strict numbers, and what an execution
run sent (or why it sent nothing)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from butterquant_dagster.commands._output import dumps, json_value
from butterquant_dagster.commands._trading import sending_outcome


def test_dates_print_as_dates():
    frame = pd.DataFrame(
        {
            "expiry": pd.to_datetime(["2026-12-18"]),
            "session": [dt.date(2026, 12, 4)],
            "created_at": pd.to_datetime(["2026-12-06 02:48:33.085355"]),
            "closed": [pd.NaT],
            "quantity": np.array([19], dtype=np.int64),
            "price": [float("nan")],
        }
    )
    printed = json.loads(dumps(frame.to_dict(orient="records")))
    assert printed == [
        {
            "expiry": "2026-12-18",  # not "2026-12-18 00:00:00"
            "session": "2026-12-04",
            "created_at": "2026-12-06 02:48:33.085355",
            "closed": None,
            "quantity": 19,
            "price": None,
        }
    ]


def test_a_zoned_midnight_is_a_moment_not_a_date():
    moment = dt.datetime(2026, 12, 4, 0, 0, tzinfo=dt.UTC)
    assert json_value(moment) == "2026-12-04 00:00:00+00:00"
    assert json_value(np.float64("inf")) is None
    assert json_value(object).startswith("<class")


def test_a_rerun_of_a_traded_session_says_it_sent_nothing_new():
    sent, already, note = sending_outcome({"sent": 0, "already_sent": 2}, {}, 2)
    assert (sent, already) == (0, 2)
    assert note.startswith("sent nothing new: this session was already traded; its 2 order(s)")
    assert "never sends an order twice" in note


def test_a_first_run_says_what_it_sent():
    assert sending_outcome({"sent": 2, "already_sent": 0}, {}, 2)[2] == "sent 2 new order(s)"
    assert sending_outcome({"sent": 1, "already_sent": 1}, {}, 2)[2] == (
        "sent 1 new order(s); 1 already sent by an earlier run"
    )


def test_nothing_to_send_says_why():
    refused = sending_outcome({"sent": 0, "refused": "ledger and broker disagree: x"}, {}, 2)
    assert refused[2] == "sent nothing: ledger and broker disagree: x"
    blocked = sending_outcome({"sent": 0, "blocked": 2, "rejected": 0}, {}, 2)
    assert blocked[2] == "sent nothing: 2 blocked, 0 rejected (see above)"
    notes = {"entry_notes": "- baseline: no candidate above the yield floor\n- ai: no champion"}
    empty = sending_outcome({"sent": 0}, notes, 0)
    assert empty[2] == (
        "sent nothing: no exit was due and no entry passed the rules: baseline: no candidate "
        "above the yield floor; ai: no champion"
    )
    assert sending_outcome({}, {"entry_notes": "-"}, 0)[2] == (
        "sent nothing: no exit was due and no entry passed the rules"
    )
