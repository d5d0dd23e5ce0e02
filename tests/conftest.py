"""Shared fixtures: small synthetic studies written to real files."""

# ruff: noqa: E402  (the thread setting below comes before every import that loads NumPy)

from __future__ import annotations

import os

# As the command line does (analysis/__main__.py), before NumPy loads: threaded BLAS on thin
# matrices is slower, and with tests and their subprocesses sharing two cores, far slower.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis.data.contract import OPTIONAL_TABLE_NAMES, TABLE_NAMES
from analysis.data.load import write_tables
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign, generate, truth_json

pytest_plugins = ["tests.postgres_server"]  # the postgres_url fixture

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL_DESIGN = StudyDesign(seed=7, n_units=60, n_waves=4, median_unit_size=12)
SCRIPT_NAME = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
REPORT_PARAMETERS = Parameters(bootstrap_draws=200)


#: The slowest test files, slowest first (seconds each on two workers: 190 to 50). ``make test``
#: hands each file whole to one worker (``--dist loadfile``) in collection order; starting the
#: long files first keeps one of them from starting last and running alone. Refresh the list
#: from ``pytest --junitxml`` when the order drifts; a file not listed runs after these.
SLOWEST_FILES = (
    "test_benchmark.py",
    "test_hardening.py",
    "test_privacy_adversarial.py",
    "test_calibration.py",
    "test_engines.py",
    "test_report.py",
    "test_any_instrument.py",
    "test_spark.py",
    "test_estimate.py",
    "test_influence.py",
    "test_import.py",
    "test_safe_outputs.py",
    "test_reduction_churn.py",
    "test_pdf.py",
    "test_progress.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first (``SLOWEST_FILES``); within a file, and among the rest, as collected."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def present_tables(directory: Path) -> list[str]:
    """The contract's tables a CSV dataset folder holds, required first: a test that renames or
    removes a unit everywhere must reach the optional tables (synth writes ``headcount``)."""
    return [t for t in (*TABLE_NAMES, *OPTIONAL_TABLE_NAMES) if (directory / f"{t}.csv").exists()]


def write_awkward_customers(directory: Path) -> Path:
    """``customers.parquet`` as spreadsheets and other tools write it: ids saved as numbers
    (``7.0``), a ``since`` instant zoned in Berlin (00:30 on 29 March there, 23:30 on the 28th
    in UTC), ``churned_on`` as a plain date. Every engine must read the ids ``"7"``, ``"8"``
    and the dates as written in their own zone."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    instants = pd.to_datetime(["2024-03-28 23:30", "2024-03-29 10:00"]).tz_localize("UTC")
    table = pa.table(
        {
            "customer_id": pa.array([7.0, 8.0]),
            "unit_id": pa.array(["007", "008"]),
            "since": pa.array(instants.tz_convert("Europe/Berlin")),
            "churned_on": pa.array([None, dt.date(2024, 5, 1)], type=pa.date32()),
        }
    )
    path = directory / "customers.parquet"
    pq.write_table(table, path)
    return path


def write_study(directory: Path, design: StudyDesign, file_format: str = "csv") -> Path:
    study = generate(design)
    return write_tables(
        study.tables,
        directory,
        file_format=file_format,
        extra_files={"truth.json": truth_json(study)},
    )


@pytest.fixture(scope="session")
def small_study_master(tmp_path_factory) -> Path:
    """A small valid study, written once per session. Copy it before changing anything."""
    return write_study(tmp_path_factory.mktemp("studies") / "small", SMALL_DESIGN)


@pytest.fixture
def small_study(small_study_master, tmp_path) -> Path:
    """A private copy of the small study that a test may break."""
    return Path(shutil.copytree(small_study_master, tmp_path / "study"))


@pytest.fixture(scope="session")
def hostile_study(small_study_master, tmp_path_factory) -> Path:
    """The small study with every unit named with markup that would run if not escaped."""
    directory = Path(shutil.copytree(small_study_master, tmp_path_factory.mktemp("s") / "study"))
    units = pd.read_csv(directory / "units.csv", dtype=str, keep_default_na=False)
    units["unit_name"] = SCRIPT_NAME + " " + units["unit_id"]
    units.to_csv(directory / "units.csv", index=False)
    return directory


@pytest.fixture(scope="session")
def report_root(hostile_study, tmp_path_factory) -> Path:
    """One real report of every page of the hostile study, rendered once per session: the
    report, layout and browser tests all read it (each rendering costs about a minute)."""
    from analysis.report.build import build_report

    root = tmp_path_factory.mktemp("reports")
    build_report(hostile_study, root, REPORT_PARAMETERS, progress=lambda _: None)
    return root


@pytest.fixture(scope="session")
def run_dir(report_root) -> Path:
    """The published run folder of ``report_root``."""
    return (report_root / "latest").resolve()
