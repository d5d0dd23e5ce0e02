"""Malformed datasets end in a clear error or a correct result: never a traceback or a hang."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.contract import TABLE_NAMES
from analysis.io import DatasetError, load_dataset
from tests.conftest import SMALL_DESIGN, write_study

# CI runs the same examples every time; set HYPOTHESIS_EXPLORE=1 to search afresh.
DERANDOMIZE = os.environ.get("HYPOTHESIS_EXPLORE") != "1"

CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "0001",
            "007",
            "2024-03-31",
            "31/03/2024",
            "9",
            "11",
            "-1",
            "4.5",
            "true",
            "yes",
            "NaN",
            "\ufeff",
            '"',
            '""',
            "a,b",
            '"a,b"',
            "<script>",
            "=SUM(A1)",
            "\u00e9t\u00e9",
            " 0002 ",
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
)


@st.composite
def csv_text(draw) -> bytes:
    """A CSV-like file: a header of known and unknown names, rows of odd cells, odd bytes."""
    names = draw(
        st.lists(
            st.sampled_from(
                [
                    "unit_id",
                    "unit_name",
                    "region",
                    "customer_facing",
                    "respondent_id",
                    "wave",
                    "eng_1",
                    "enps",
                    "response_id",
                    "customer_id",
                    "responded_on",
                    "likelihood_to_recommend",
                    "since",
                    "churned_on",
                    "extra",
                    "unit_id",
                ]
            ),
            min_size=0,
            max_size=8,
        )
    )
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=len(names) + 1), max_size=6))
    lines = [",".join(names)] + [",".join(row) for row in rows]
    text = "\n".join(lines)
    prefix = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"]))
    encoding = draw(st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    try:
        body = text.encode(encoding)
    except UnicodeEncodeError:
        body = text.encode("utf-8")
    return prefix + body


@pytest.fixture(scope="module")
def base_study(tmp_path_factory) -> Path:
    """A tiny valid study, so that each generated case loads in milliseconds."""
    design = replace(SMALL_DESIGN, n_units=12, n_waves=2, median_unit_size=6)
    return write_study(tmp_path_factory.mktemp("h") / "base", design)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(table=st.sampled_from(TABLE_NAMES), content=csv_text())
def test_any_malformed_table_is_a_clear_error_or_loads(
    base_study, tmp_path_factory, table, content
):
    directory = Path(shutil.copytree(base_study, tmp_path_factory.mktemp("case") / "d"))
    (directory / f"{table}.csv").write_bytes(content)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}
    try:
        load_dataset(directory)
    except DatasetError as error:
        assert error.problems and str(error).count("\n") >= 2
    assert {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()
    } == digests


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_header_only_and_empty_tables(small_study_master, tmp_path, table):
    base_study = small_study_master
    for content in (b"", (base_study / f"{table}.csv").read_text().splitlines()[0].encode()):
        directory = Path(shutil.copytree(base_study, tmp_path / f"{len(content)}"))
        (directory / f"{table}.csv").write_bytes(content)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "analysis",
                "estimate",
                "--data",
                str(directory),
                "--out",
                str(tmp_path / f"out{len(content)}"),
                "--params",
                str(_quick(tmp_path)),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode in (0, 2), result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def _quick(tmp_path: Path) -> Path:
    params = tmp_path / "quick.yaml"
    params.write_text("bootstrap_draws: 50\n")
    return params


def test_row_with_more_cells_than_the_header_is_reported(base_study, tmp_path):
    directory = Path(shutil.copytree(base_study, tmp_path / "d"))
    (directory / "customers.csv").write_bytes(b"since\n,0001\n")
    with pytest.raises(DatasetError) as caught:
        load_dataset(directory)
    assert any(p.file == "customers.csv" for p in caught.value.problems)
