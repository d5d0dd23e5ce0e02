"""Every engine gives the same results: pandas, DuckDB (the default) and PostgreSQL.

``estimate`` opens a dataset with ``analysis.data.source.open_dataset``: the customer tables stay
in an engine and only their reductions reach pandas. The result tables must not depend on where
the reduction ran, byte for byte; a broken file must end in the loader's own error, with the
same words, whichever engine reads it. Spark is checked in tests/test_spark.py, where its one
session lives.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis import PROJECT_ROOT
from analysis.data.load import DatasetError, load_dataset
from analysis.data.parameters import Parameters
from analysis.data.results import RESULT_FILES
from analysis.data.source import close_dataset, open_dataset
from analysis.report.page import estimate
from tests.postgres_server import load_study

SAMPLE = PROJECT_ROOT / "data" / "sample"
PARAMETERS = Parameters(bootstrap_draws=50)


def _estimate_cli(data: Path | str, out: Path, *engine: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", "estimate", "--data", str(data), "--out", str(out)]
        + (["--engine", *engine] if engine else []),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )


def _same_tables(first: dict[str, pd.DataFrame], second: dict[str, pd.DataFrame]) -> None:
    assert list(first) == list(second)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name], check_exact=True, obj=name)


@pytest.mark.slow  # two estimates of the sample through the command line, about 15 s each
def test_the_sample_gives_byte_identical_results_on_pandas_and_duckdb(tmp_path):
    runs = {}
    for engine in ("pandas", "duckdb"):
        runs[engine] = _estimate_cli(SAMPLE, tmp_path / engine, engine)
        assert runs[engine].returncode == 0, runs[engine].stderr
    assert "(duckdb)" in runs["duckdb"].stderr  # the engine is named as the run starts
    for name in RESULT_FILES:
        pandas_bytes = (tmp_path / "pandas" / f"{name}.csv").read_bytes()
        assert pandas_bytes == (tmp_path / "duckdb" / f"{name}.csv").read_bytes(), name
    estimates = pd.read_csv(tmp_path / "duckdb" / "estimates.csv")
    assert estimates["estimate"].notna().sum() >= 8  # the comparison is of real numbers


def test_the_default_engine_keeps_the_customer_tables_out_of_pandas(small_study_master):
    dataset = open_dataset(small_study_master)
    try:
        assert dataset.customer_nps is None and dataset.customers is None
        assert set(dataset.customer_tables.tables) >= {"customer_nps", "customers"}
        assert not dataset.is_empty("customer_nps")
        # the staff-side tables are the loader's, value for value
        loaded = load_dataset(small_study_master)
        for name in ("units", "employee_survey"):
            pd.testing.assert_frame_equal(getattr(dataset, name), getattr(loaded, name))
        assert dataset.instrument == loaded.instrument
    finally:
        close_dataset(dataset)
    assert dataset.customer_tables is None


def test_the_small_study_gives_identical_tables_on_pandas_and_duckdb(small_study_master):
    expected = estimate(load_dataset(small_study_master), PARAMETERS)
    dataset = open_dataset(small_study_master, engine="duckdb")
    try:
        _same_tables(expected, estimate(dataset, PARAMETERS))
    finally:
        close_dataset(dataset)


def test_a_postgresql_database_gives_the_tables_the_files_give(
    postgres_url, small_study_master, tmp_path
):
    load_study(postgres_url, small_study_master)
    expected = estimate(load_dataset(small_study_master), PARAMETERS)
    dataset = open_dataset(postgres_url)
    try:
        assert dataset.customer_nps is None  # reduced in the server
        _same_tables(expected, estimate(dataset, PARAMETERS))
    finally:
        close_dataset(dataset)
    # and through the command line, whose manifest names the database without a password
    run = _estimate_cli(postgres_url, tmp_path / "from-database")
    assert run.returncode == 0, run.stderr
    files = _estimate_cli(small_study_master, tmp_path / "from-files")
    assert files.returncode == 0, files.stderr
    for name in ("estimates", "unit_wave"):
        assert (tmp_path / "from-database" / f"{name}.csv").read_bytes() == (
            tmp_path / "from-files" / f"{name}.csv"
        ).read_bytes(), name
    manifest = (tmp_path / "from-database" / "manifest.json").read_text()
    assert "postgresql://" in manifest and "@" in manifest
    password = postgres_url.split("://", 1)[1].split("@")[0].partition(":")[2]
    assert not password or password not in manifest


# Broken customer files, each as a function of the study folder; the loader's message is the
# reference, and every engine that reads files must end in it.
def _score_eleven(study: Path) -> None:
    answers = pd.read_csv(study / "customer_nps.csv", dtype=str, keep_default_na=False)
    answers.loc[[3, 40], "likelihood_to_recommend"] = "11"
    answers.to_csv(study / "customer_nps.csv", index=False)


def _churn_before_start(study: Path) -> None:
    people = pd.read_csv(study / "customers.csv", dtype=str, keep_default_na=False)
    people.loc[5, "churned_on"] = "2000-01-01"
    people.to_csv(study / "customers.csv", index=False)


def _unknown_unit_and_bad_date(study: Path) -> None:
    answers = pd.read_csv(study / "customer_nps.csv", dtype=str, keep_default_na=False)
    answers.loc[7, "unit_id"] = "no-such-unit"
    answers.loc[9, "responded_on"] = "31/03/2024"
    answers.to_csv(study / "customer_nps.csv", index=False)


def _repeated_response(study: Path) -> None:
    answers = pd.read_csv(study / "customer_nps.csv", dtype=str, keep_default_na=False)
    answers.loc[12, "response_id"] = answers.loc[11, "response_id"]
    answers.to_csv(study / "customer_nps.csv", index=False)


BREAKS = [_score_eleven, _churn_before_start, _unknown_unit_and_bad_date, _repeated_response]


@pytest.mark.parametrize("break_it", BREAKS, ids=[b.__name__.strip("_") for b in BREAKS])
def test_a_broken_customer_file_ends_in_the_loaders_error_on_duckdb(
    small_study_master, tmp_path, break_it
):
    study = Path(shutil.copytree(small_study_master, tmp_path / "study"))
    break_it(study)
    with pytest.raises(DatasetError) as expected:
        load_dataset(study)
    with pytest.raises(DatasetError) as got:
        open_dataset(study, engine="duckdb")
    assert str(got.value) == str(expected.value)


@pytest.mark.slow  # the command line, twice
def test_the_command_line_exits_2_with_the_same_message_on_every_file_engine(
    small_study_master, tmp_path
):
    study = Path(shutil.copytree(small_study_master, tmp_path / "study"))
    _score_eleven(study)
    messages = {}
    for engine in ("pandas", "duckdb"):
        run = _estimate_cli(study, tmp_path / f"out-{engine}", engine)
        assert run.returncode == 2, run.stderr
        assert "likelihood_to_recommend" in run.stderr and "11" in run.stderr
        assert not (tmp_path / f"out-{engine}").exists()  # nothing half-written
        messages[engine] = run.stderr[run.stderr.index("error:") :]
    assert messages["pandas"] == messages["duckdb"]
    assert "2 rows: 5 '11', 42 '11'" in messages["duckdb"]  # rows and values, as the loader


def test_a_database_that_cannot_be_reached_is_a_clear_refusal(tmp_path):
    """A wrong host or port is the user's input: exit 2, the fix named, no password shown."""
    run = _estimate_cli("postgresql://analyst:s3cret-pw@127.0.0.1:1/insideout", tmp_path / "out")
    assert run.returncode == 2, run.stderr
    assert "cannot connect" in run.stderr and "PGPASSWORD" in run.stderr
    assert "postgresql://analyst@127.0.0.1:1/insideout" in run.stderr
    assert "s3cret-pw" not in run.stderr
    assert not (tmp_path / "out").exists()
