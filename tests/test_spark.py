"""The reduction on Apache Spark (PySpark in local mode) equals the pandas reduction exactly.

A dataset folder opened with ``open_tables(..., engine="spark")`` is read by a real local Spark
session on Debian's OpenJDK (``make java``); the same rows are typed as the DuckDB views type
them, and ``analysis.measures.reduction`` run in Spark gives exactly what
``analysis.measures.panel`` gives in pandas (``assert_frame_equal`` with ``check_exact``).
Starting Spark's Java virtual machine takes about 13 s, so the module shares one session.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.engine import JAVA_MISSING, java_available, open_tables, start_spark
from analysis.data.load import load_dataset
from analysis.data.parameters import resolve_as_of
from analysis.measures import panel, reduction
from tests.conftest import write_awkward_customers

pytestmark = pytest.mark.slow  # the Java virtual machine alone takes about 13 s to start


@pytest.fixture(scope="module")
def spark():
    """One local Spark session for the module; ``open_tables`` uses it and leaves it running.

    Without Java the module is skipped, or fails under ``CI=true``, where ``make test`` should
    have installed it.
    """
    if not java_available():
        if os.environ.get("CI") == "true":
            pytest.fail(JAVA_MISSING)
        pytest.skip(JAVA_MISSING)
    session = start_spark()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def small(spark, small_study_master):
    """The small study loaded by pandas, its waves and end, and its tables in Spark."""
    dataset = load_dataset(small_study_master)
    waves = np.sort(dataset.employee_survey["wave"].unique())
    with open_tables(small_study_master, engine="spark") as tables:
        yield dataset, waves, resolve_as_of(dataset), tables


def _as_of(which: str, waves: np.ndarray, end: pd.Timestamp) -> pd.Timestamp | None:
    """No end, the dataset's end, or the middle wave (later answers then count nowhere)."""
    return {"none": None, "end": end, "mid": pd.Timestamp(waves[len(waves) // 2])}[which]


@pytest.mark.parametrize(
    ("before", "as_of", "window"),  # 91 days: about a quarter; 200: windows overlap
    [
        (before, as_of, 91)
        for before in (False, True)
        for as_of in ("none", "end", "mid")  # without an end, the end, an end mid-study
    ]
    + [(False, "end", 200)],
)
def test_nps_counts_in_windows_equal_pandas(small, before, as_of, window):
    dataset, waves, end, tables = small
    as_of = _as_of(as_of, waves, end)
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, window, before=before, as_of=as_of
    )
    got = reduction.nps_counts_in_windows(
        tables.tables["customer_nps"], waves, window, before=before, as_of=as_of
    )
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize(("as_of", "window"), [("end", 91), ("mid", 200)])
def test_customers_at_waves_equal_pandas(small, as_of, window):
    dataset, waves, end, tables = small
    as_of = _as_of(as_of, waves, end)
    expected = panel.customers_at_waves(dataset.customers, waves, window, as_of)
    got = reduction.customers_at_waves(tables.tables["customers"], waves, window, as_of)
    assert got["customers_at_risk"].sum() > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_every_table_is_typed_as_duckdb_types_it(small, small_study_master):
    """Each contract table of the study, row for row, as DuckDB's view gives it."""
    _dataset, _waves, _end, spark_tables = small
    with open_tables(small_study_master) as duck_tables:
        assert list(spark_tables.tables) == list(duck_tables.tables)
        for name, duck in duck_tables.tables.items():
            on_spark = spark_tables.tables[name]
            assert on_spark.schema() == duck.schema(), name
            # sorted in pandas: a sort in Spark is one more shuffle per table
            columns = list(duck.columns)
            expected = duck.to_pandas().sort_values(columns, ignore_index=True)
            got = on_spark.to_pandas().sort_values(columns, ignore_index=True)
            pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)


def test_an_id_with_leading_zeros_stays_text(spark, tmp_path):
    pd.DataFrame(
        {
            "response_id": ["r1", "r2", "r3"],
            "customer_id": ["0042", "0042", "c9"],
            "unit_id": ["007", " 007 ", "010"],
            "responded_on": ["2024-01-15", "2024-02-01T23:59:00+05:00", "2024-01-20 08:00"],
            "likelihood_to_recommend": ["10", "8", " 3 "],
        }
    ).to_csv(tmp_path / "customer_nps.csv", index=False)
    waves = np.array(["2024-01-01"], dtype="datetime64[ns]")
    with open_tables(tmp_path, engine="spark") as tables:
        table = tables.tables["customer_nps"]
        answers = table.order_by("response_id").to_pandas()
        counts = reduction.nps_counts_in_windows(table, waves, 91)
    assert table.schema()["unit_id"].is_string() and table.schema()["customer_id"].is_string()
    assert answers["unit_id"].tolist() == ["007", "007", "010"]  # " 007 " stripped
    assert answers["customer_id"].tolist() == ["0042", "0042", "c9"]
    assert answers["likelihood_to_recommend"].tolist() == [10, 8, 3]
    assert answers["responded_on"].iloc[1] == pd.Timestamp("2024-02-01")  # the date as written
    assert counts["unit_id"].tolist() == ["007", "010"]
    assert counts[["promoters", "passives", "detractors"]].values.tolist() == [[1, 1, 0], [0, 0, 1]]


def test_parquet_ids_stored_as_numbers_and_zoned_timestamps(spark, tmp_path):
    write_awkward_customers(tmp_path)
    with open_tables(tmp_path, engine="spark") as tables:
        got = tables.tables["customers"].order_by("unit_id").to_pandas()
    with open_tables(tmp_path) as tables:
        expected = tables.tables["customers"].order_by("unit_id").to_pandas()
    assert got["customer_id"].tolist() == ["7", "8"]
    assert pd.Timestamp(got["since"].iloc[0]) == pd.Timestamp("2024-03-29")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_closing_tables_leaves_a_running_session_running(spark, tmp_path: Path):
    pd.DataFrame({"unit_id": ["007"], "unit_name": ["Seven"]}).to_csv(
        tmp_path / "units.csv", index=False
    )
    before = {view.name for view in spark.catalog.listTables()}
    with open_tables(tmp_path, engine="spark") as tables:
        (view,) = {view.name for view in spark.catalog.listTables()} - before
        assert view.startswith("units_")  # numbered: two open datasets never share a view
        assert tables.tables["units"].to_pandas()["unit_id"].tolist() == ["007"]
    # the session was the module's: still running, only this call's view is gone
    assert spark.sql("SELECT 1 AS one").collect()[0].one == 1
    assert {view.name for view in spark.catalog.listTables()} == before


def test_a_postgresql_url_does_not_take_an_engine():
    with pytest.raises(ValueError, match="runs in PostgreSQL"):
        open_tables("postgresql://nobody@localhost/none", engine="spark")
    with pytest.raises(ValueError, match="engine must be one of"):
        open_tables(".", engine="polars")


def test_estimate_on_spark_gives_every_table_pandas_gives(spark, small_study_master):
    """The whole estimation, the customer tables reduced in Spark: every result table equal."""
    from analysis.data.parameters import Parameters
    from analysis.data.source import close_dataset, open_dataset
    from analysis.report.page import estimate

    parameters = Parameters(bootstrap_draws=50)
    expected = estimate(load_dataset(small_study_master), parameters)
    dataset = open_dataset(small_study_master, engine="spark")
    try:
        assert dataset.customer_nps is None  # reduced in Spark
        got = estimate(dataset, parameters)
    finally:
        close_dataset(dataset)
    assert list(got) == list(expected)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(got[name], table, check_exact=True, obj=name)


def test_a_broken_customer_file_ends_in_the_loaders_error_on_spark(
    spark, small_study_master, tmp_path
):
    """Spark's dataset is screened as DuckDB's is; a broken file gets the loader's words."""
    import shutil

    from analysis.data.load import DatasetError
    from analysis.data.source import open_dataset

    study = Path(shutil.copytree(small_study_master, tmp_path / "study"))
    answers = pd.read_csv(study / "customer_nps.csv", dtype=str, keep_default_na=False)
    answers.loc[[3, 40], "likelihood_to_recommend"] = "11"
    answers.loc[9, "responded_on"] = "31/03/2024"
    answers.to_csv(study / "customer_nps.csv", index=False)
    with pytest.raises(DatasetError) as expected:
        load_dataset(study)
    with pytest.raises(DatasetError) as got:
        open_dataset(study, engine="spark")
    assert str(got.value) == str(expected.value)
    assert "5 '11', 42 '11'" in str(got.value)
