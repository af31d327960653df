"""The money path's words: the enums, the ledger schema that lists them, and the source that
must use them rather than bare strings."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pytest

from butterquant_dagster.core.brokers import base
from butterquant_dagster.core.brokers.base import order_ref
from butterquant_dagster.core.options.butterfly import STRUCTURES
from butterquant_dagster.core.trading import ledger
from butterquant_dagster.core.trading.combos import legs_of, structure_of
from butterquant_dagster.core.trading.rows import bindable
from butterquant_dagster.core.trading.vocabulary import (
    BROKER_STATUSES,
    UNSENT_STATUSES,
    WENT_OUT_STATUSES,
    WORKING_STATUSES,
    Intent,
    OrderStatus,
    Origin,
    Structure,
    Track,
)

PACKAGE = Path(ledger.__file__).resolve().parents[2]
# The money path as typed: these files write or compare the enums' values only through them.
TYPED = (
    "core/trading/ledger.py",
    "core/trading/execution.py",
    "core/trading/portfolio.py",
    "core/trading/combos.py",
    "core/trading/order_policy.py",
    "core/trading/rows.py",
    "core/brokers/base.py",
    "core/brokers/paper.py",
)
WORDS = {m.value for e in (OrderStatus, Intent, Track, Origin) for m in e}


def schema_choices(ddl: str) -> dict[tuple[str, str], set[str]]:
    """(table, column) -> the values its ``-- a | b | c`` comment lists."""
    out: dict[tuple[str, str], set[str]] = {}
    table = ""
    for line in ddl.splitlines():
        if match := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", line):
            table = match.group(1)
        match = re.match(r"\s+(\w+) VARCHAR[^-]*-- (\w+(?: \| \w+)+)", line)
        if match and table:
            out[(table, match.group(1))] = set(match.group(2).split(" | "))
    return out


def test_the_ledger_schema_lists_exactly_the_enum_values():
    listed = schema_choices(ledger.SCHEMA)
    expected = {
        ("orders", "status"): OrderStatus,
        ("orders", "intent"): Intent,
        ("orders", "track"): Track,
        ("orders", "structure"): Structure,
        ("orders", "origin"): Origin,
        ("positions", "track"): Track,
        ("positions", "structure"): Structure,
        ("position_events", "kind"): Intent,
    }
    for column, enum in expected.items():
        assert listed.get(column) == {m.value for m in enum}, column
    # The two the hand-written comments once left out, though the code writes them.
    assert "expired" in listed[("orders", "status")]
    assert "settle" in listed[("orders", "intent")]
    assert "settle" in listed[("position_events", "kind")]


def test_the_schema_parser_sees_a_wrong_comment():
    wrong = ledger.SCHEMA.replace("| expired", "")
    assert schema_choices(wrong)[("orders", "status")] != {m.value for m in OrderStatus}


def test_structures_are_the_option_models_plus_unknown():
    assert {s.value for s in Structure} == set(STRUCTURES) | {"unknown"}
    for name in STRUCTURES:
        legs = legs_of("AAA", name, dt.date(2026, 4, 17), 95.0, 100.0, 105.0)
        assert structure_of(legs) is Structure(name)
    assert structure_of(()) is Structure.UNKNOWN


def test_status_groups_partition_as_the_executor_needs():
    assert set(base.ORDER_STATUSES) == set(BROKER_STATUSES)
    assert base.OPEN_STATUSES == WORKING_STATUSES <= WENT_OUT_STATUSES
    assert not UNSENT_STATUSES & WENT_OUT_STATUSES
    assert set(OrderStatus) == UNSENT_STATUSES | WENT_OUT_STATUSES
    assert set(OrderStatus) - {"planned", "filled"} == ledger.UNFILLED_EXIT_STATUSES


def test_members_are_their_strings_for_stored_values_and_order_refs():
    """Old ledgers hold the strings, and an order_ref hashes its intent and track: both
    must come out the same whether a caller passes a member or the string."""
    assert OrderStatus.FILLED == "filled" and hash(Intent.SETTLE) == hash("settle")
    assert "expired" in {OrderStatus.EXPIRED} and f"{Track.AI}" == "ai"
    value = bindable(OrderStatus.MISSING_AT_BROKER)
    assert type(value) is str and value == "missing_at_broker"
    legs = legs_of("AAA", "call_fly", dt.date(2026, 4, 17), 95.0, 100.0, 105.0)
    session = dt.date(2026, 3, 3)
    typed = order_ref(session, "AAA", Structure.CALL_FLY, legs, Track.AI, Intent.OPEN)
    assert typed == order_ref(session, "AAA", "call_fly", legs, "ai", "open")
    assert "-open-" in typed


def bare_words(source: str) -> list[str]:
    """Where ``source`` spells an order status, intent, track or origin as a bare string:
    a string constant equal to one (dict keys are column names, not values), or a quoted
    SQL literal of one inside a string."""
    tree = ast.parse(source)
    keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if node.value in WORDS and id(node) not in keys:
            found.append(f"line {node.lineno}: {node.value!r}")
        for word in re.findall(r"'(\w+)'", node.value):
            if word in WORDS:
                found.append(f"line {node.lineno}: SQL '{word}'")
    return found


@pytest.mark.parametrize("path", TYPED)
def test_the_money_path_spells_no_status_or_intent_as_a_bare_string(path):
    assert bare_words((PACKAGE / path).read_text()) == []


def test_the_source_check_finds_bare_strings():
    source = (
        'x = {"filled": 0, "status": "expired"}\n'
        'if intent == "settle": pass\n'
        "sql = \"WHERE status IN ('submitted', 'partially_filled')\"\n"
    )
    assert sorted(bare_words(source)) == [
        "line 1: 'expired'",
        "line 2: 'settle'",
        "line 3: SQL 'partially_filled'",
        "line 3: SQL 'submitted'",
    ]
