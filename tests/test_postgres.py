"""A study held in a real PostgreSQL server: it loads intact, and the reduction run inside the
server gives exactly what the pandas functions of ``analysis.measures.panel`` give.

The server is the session's own (``tests/postgres_server.py``), started once; each module here
loads the small study into it once.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from pandas.testing import assert_frame_equal
from psycopg import sql

from analysis.data.load import load_dataset
from analysis.data.parameters import resolve_as_of
from analysis.measures import panel
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


def test_names_with_quotes_and_markup_round_trip(postgres_url, hostile_study):
    # a database of its own: the module's tests share the one holding the small study
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE DATABASE hostile")
    url = postgres_url.rsplit("/", 1)[0] + "/hostile"
    load_study(url, hostile_study)
    header, rows, digest = file_checksum(hostile_study / "units.csv")
    assert server_checksum(url, "units", header) == (rows, digest)


# --------------------------------------------------------------------------------------------
# The reduction inside PostgreSQL


@pytest.fixture(scope="module")
def in_postgres(postgres_url, loaded):
    """The loaded study's tables as Ibis sees them in PostgreSQL."""
    from analysis.data.engine import open_tables

    tables = open_tables(postgres_url)
    yield tables
    tables.close()


@pytest.fixture(scope="module")
def dataset(small_study_master):
    return load_dataset(small_study_master)


def _waves(dataset) -> np.ndarray:
    return np.sort(dataset.employee_survey["wave"].unique())


def test_the_server_holds_the_contracts_tables(in_postgres, loaded):
    assert in_postgres.backend.name == "postgres"
    assert sorted(in_postgres.tables) == sorted(loaded)
    for name, rows in loaded.items():
        assert in_postgres.tables[name].count().execute() == rows


# 91 days: the default outcome window, shorter than the gap between waves; 200: windows that
# overlap, so an answer counts in two waves' windows.
@pytest.mark.parametrize("window_days", [91, 200])
@pytest.mark.parametrize("before", [False, True], ids=["after", "before"])
@pytest.mark.parametrize("observed_to", ["as_of", "all"])
def test_nps_counts_in_postgres_equal_pandas(
    in_postgres, dataset, window_days, before, observed_to
):
    from analysis.measures import reduction

    waves = _waves(dataset)
    # a month before the last wave: answers after it count in no window, before or after a wave
    as_of = pd.Timestamp(waves[-1]) - pd.Timedelta(days=30) if observed_to == "as_of" else None
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, window_days, before=before, as_of=as_of
    )
    got = reduction.nps_counts_in_windows(
        in_postgres.tables["customer_nps"], waves, window_days, before=before, as_of=as_of
    )
    assert len(expected) > 0
    assert_frame_equal(got, expected)


@pytest.mark.parametrize("window_days", [91, 200])
def test_customers_at_waves_in_postgres_equal_pandas(in_postgres, dataset, window_days):
    from analysis.measures import reduction

    as_of = resolve_as_of(dataset)
    waves = _waves(dataset)
    expected = panel.customers_at_waves(dataset.customers, waves, window_days, as_of)
    got = reduction.customers_at_waves(in_postgres.tables["customers"], waves, window_days, as_of)
    assert expected["customers_at_risk"].sum() > 0
    assert_frame_equal(got, expected)
