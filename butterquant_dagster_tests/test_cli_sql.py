"""`butterquant sql` is read-only: every statement of the issue (COPY TO anywhere, COPY into
the lake, ATTACH + CREATE TABLE, read_text of a system file, DROP VIEW, INSTALL httpfs) and
a few more ways around the checks are refused with exit 2 and a message, nothing is written,
and a query over a lake view still works."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from butterquant_dagster.cli import EXIT_BAD_INPUT, EXIT_OK, main
from butterquant_dagster.core.storage.lake import Lake
from butterquant_dagster.core.storage.read_only_sql import ReadOnlyQueryError, check_read_only


@pytest.fixture
def lake(isolated_env) -> Lake:
    store = Lake(isolated_env)
    for session, close in (("2025-03-03", 10.0), ("2025-03-04", 11.0)):
        store.write("daily_bars", pd.DataFrame({"symbol": ["AAA"], "close": [close]}), session)
    return store


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused_statements(root: Path, outside: Path) -> dict[str, str]:
    """Each statement, and what it must not create (or "" when it would create nothing)."""
    partition = root / "lake" / "daily_bars" / "2008-10-16.parquet"
    return {
        f"COPY (SELECT 1 AS x) TO '{outside / 'anywhere.parquet'}'": outside / "anywhere.parquet",
        f"COPY (SELECT * FROM daily_bars) TO '{partition}'": partition,
        f"ATTACH '{outside / 'other.duckdb'}' AS other; CREATE TABLE other.t AS SELECT 1 AS x": (
            outside / "other.duckdb"
        ),
        "ATTACH ':memory:' AS scratch; CREATE TABLE scratch.t AS SELECT 1 AS x": "",
        "CREATE TABLE t AS SELECT * FROM daily_bars": "",
        "SELECT * FROM read_text('/etc/hostname')": "",
        "DROP VIEW daily_bars": "",
        "INSTALL httpfs": "",
        "LOAD httpfs": "",
        "SET enable_external_access = true": "",
        "SELECT 1; DROP VIEW daily_bars": "",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{partition}'": partition,
        f"EXPORT DATABASE '{outside / 'export'}'": outside / "export",
        f"SELECT * FROM glob('{outside.parent}/*')": "",
        f"SELECT * FROM read_csv('{outside / 'secret.csv'}')": "",
    }


def test_every_writing_or_escaping_statement_is_refused_and_nothing_is_written(
    lake, tmp_path, capsys
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("a\n1\n")
    before, outside_before = _listing(lake.root), _listing(outside)
    statements = _refused_statements(lake.root, outside)
    for query, target in statements.items():
        assert main(["sql", query]) == EXIT_BAD_INPUT, query
        captured = capsys.readouterr()
        assert captured.out == "", query
        assert captured.err.startswith("butterquant: error: "), query
        assert "read-only" in captured.err or "reads only the lake" in captured.err, query
        assert "Traceback" not in captured.err
        if target:
            assert not Path(target).exists(), query
    assert _listing(lake.root) == before
    assert _listing(outside) == outside_before
    assert lake.partitions("daily_bars") == ["2025-03-03", "2025-03-04"]
    assert len(statements) == 15


def test_a_refusal_names_the_statement_and_what_may_run(lake, capsys):
    assert main(["sql", "SELECT 1; DROP VIEW daily_bars"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "statement 2 (DROP: 'DROP VIEW daily_bars')" in err
    assert "only SELECT" in err


def test_a_file_outside_the_lake_is_named_as_out_of_reach(lake, capsys):
    assert main(["sql", "SELECT * FROM read_text('/etc/hostname')"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "reads only the lake's views" in err and "/etc/hostname" in err


@pytest.mark.parametrize(
    "query",
    [
        "SELECT symbol, close FROM daily_bars ORDER BY close",
        "WITH b AS (SELECT * FROM daily_bars) SELECT symbol, close FROM b ORDER BY close",
        "FROM daily_bars SELECT symbol, close ORDER BY close",
    ],
)
def test_a_query_over_a_lake_view_still_works(lake, capsys, query):
    assert main(["sql", query, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == [
        {"symbol": "AAA", "close": 10.0},
        {"symbol": "AAA", "close": 11.0},
    ]


@pytest.mark.parametrize(
    "query", ["DESCRIBE daily_bars", "SHOW TABLES", "SUMMARIZE daily_bars", "EXPLAIN SELECT 1"]
)
def test_describe_show_summarize_and_explain_run(lake, capsys, query):
    assert main(["sql", query]) == EXIT_OK
    assert capsys.readouterr().out


def test_the_read_only_connection_keeps_its_lock(lake):
    with lake.connect_read_only() as db:
        assert db.execute("SELECT count(*) FROM daily_bars").fetchone() == (2,)
        with pytest.raises(Exception, match="locked"):
            db.execute("SET enable_external_access = true")


def test_sql_that_does_not_parse_is_refused():
    with pytest.raises(ReadOnlyQueryError, match="does not parse"):
        check_read_only("SELEC 1")
    with pytest.raises(ReadOnlyQueryError, match="empty"):
        check_read_only("  ")
