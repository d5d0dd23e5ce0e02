"""A study held in a real PostgreSQL server: it loads intact, and the reduction run inside the
server gives exactly what the pandas functions of ``analysis.measures.panel`` give.

The server is the session's own (``tests/postgres_server.py``), started once; each module here
loads the small study into it once.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import present_tables
from tests.postgres_server import load_study

NULL = "\\N"


@pytest.fixture(scope="module")
def loaded(postgres_url, small_study_master) -> dict[str, int]:
    """The small study copied into the session's database; the rows copied per table."""
    return load_study(postgres_url, small_study_master)


def file_checksum(path: Path) -> tuple[list[str], int, str]:
    """A CSV file's header, row count and the MD5 of its rows as sorted text lines.

    Each line joins the row's fields with tabs, an empty field written ``\\N``; lines sorted by
    code point and joined with newlines. ``server_checksum`` builds the same text inside
    PostgreSQL from the typed columns, so equal checksums mean every value came back as written.
    """
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next(reader)
        lines = sorted("\t".join(v if v != "" else NULL for v in row) for row in reader)
    return header, len(lines), hashlib.md5("\n".join(lines).encode()).hexdigest()


def server_checksum(url: str, table: str, columns: list[str]) -> tuple[int, str]:
    """A table's row count and the MD5 of its rows as ``file_checksum`` writes them.

    Dates print as ``YYYY-MM-DD``, booleans as ``true``/``false``, integers plainly;
    ``COLLATE "C"`` sorts by bytes, which in UTF-8 is Python's code-point order.
    """
    fields = sql.SQL(", ").join(
        sql.SQL("coalesce({}::text, {})").format(sql.Identifier(c), sql.Literal(NULL))
        for c in columns
    )
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(line, E'\\n' ORDER BY line COLLATE \"C\"), ''))"
        " FROM (SELECT concat_ws(E'\\t', {}) AS line FROM {}) AS lines"
    ).format(fields, sql.Identifier(table))
    with psycopg.connect(url) as connection:
        count, digest = connection.execute(query).fetchone()
    return count, digest


def test_a_loaded_study_holds_every_row_and_value_of_its_files(
    postgres_url, small_study_master, loaded
):
    tables = present_tables(small_study_master)
    assert "headcount" in tables  # an optional table is loaded too
    assert list(loaded) == tables
    for table in tables:
        header, rows, digest = file_checksum(small_study_master / f"{table}.csv")
        assert loaded[table] == rows, table
        assert server_checksum(postgres_url, table, header) == (rows, digest), table


def test_tables_keep_the_contracts_types(postgres_url, loaded):
    query = (
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public'"
    )
    with psycopg.connect(postgres_url) as connection:
        columns = {(t, c): (kind, null) for t, c, kind, null in connection.execute(query)}
    assert columns["customer_nps", "unit_id"] == ("text", "NO")
    assert columns["customer_nps", "responded_on"] == ("date", "NO")
    assert columns["customer_nps", "likelihood_to_recommend"] == ("integer", "NO")
    assert columns["customer_nps", "effort"] == ("integer", "YES")
    assert columns["customers", "churned_on"] == ("date", "YES")
    assert columns["units", "customer_facing"] == ("boolean", "YES")
    assert columns["employee_survey", "eng_1"] == ("integer", "YES")
    assert columns["headcount", "headcount"] == ("integer", "NO")


def test_loading_again_replaces_the_tables(postgres_url, small_study_master, loaded):
    assert load_study(postgres_url, small_study_master) == loaded
    with psycopg.connect(postgres_url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM units").fetchone()
    assert count == loaded["units"]
