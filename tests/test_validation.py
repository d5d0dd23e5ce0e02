"""Every rule of the data contract, each broken on purpose in a real file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from analysis.data.load import DatasetError, load_dataset

Edit = Callable[[Path], None]


def read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False)


def write(directory: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(directory / f"{table}.csv", index=False)


def set_cell(table: str, column: str, row: int, value: str) -> Edit:
    """Set one cell; ``row`` counts as a spreadsheet does (header = 1, first record = 2)."""

    def edit(directory: Path) -> None:
        frame = read(directory, table)
        frame.loc[row - 2, column] = value
        write(directory, table, frame)

    return edit


def copy_cell(table: str, column: str, source_row: int, target_row: int) -> Edit:
    def edit(directory: Path) -> None:
        frame = read(directory, table)
        frame.loc[target_row - 2, column] = frame.loc[source_row - 2, column]
        write(directory, table, frame)

    return edit


def drop_column(table: str, column: str) -> Edit:
    def edit(directory: Path) -> None:
        write(directory, table, read(directory, table).drop(columns=[column]))

    return edit


def duplicate_survey_response(directory: Path) -> None:
    frame = read(directory, "employee_survey")
    frame.loc[5, ["respondent_id", "wave"]] = frame.loc[3, ["respondent_id", "wave"]].to_numpy()
    write(directory, "employee_survey", frame)


def churn_before_since(directory: Path) -> None:
    frame = read(directory, "customers")
    frame.loc[10, "since"] = "2024-06-01"
    frame.loc[10, "churned_on"] = "2024-05-01"
    write(directory, "customers", frame)


def also_parquet(directory: Path) -> None:
    read(directory, "units").to_parquet(directory / "units.parquet")


def bad_instrument(directory: Path) -> None:
    (directory / "instrument.yaml").write_text("scales:\n  engagement:\n    items: []\n")


def remove_table(directory: Path) -> None:
    (directory / "customers.csv").unlink()


def duplicate_header(directory: Path) -> None:
    path = directory / "units.csv"
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace("region", "unit_name")
    path.write_text("\n".join(lines) + "\n")


# (edit, file, column, words of the rule, rows)
RULES = {
    "unknown unit in survey": (
        set_cell("employee_survey", "unit_id", 4, "9999"),
        "employee_survey.csv",
        "unit_id",
        "not in the units table",
        (4,),
    ),
    "unknown unit in nps": (
        set_cell("customer_nps", "unit_id", 7, "0000"),
        "customer_nps.csv",
        "unit_id",
        "not in the units table",
        (7,),
    ),
    "unknown unit in customers": (
        set_cell("customers", "unit_id", 3, "X1"),
        "customers.csv",
        "unit_id",
        "not in the units table",
        (3,),
    ),
    "duplicate unit id": (
        copy_cell("units", "unit_id", 2, 6),
        "units.csv",
        "unit_id",
        "unique",
        (2, 6),
    ),
    "duplicate response id": (
        copy_cell("customer_nps", "response_id", 2, 9),
        "customer_nps.csv",
        "response_id",
        "unique",
        (2, 9),
    ),
    "duplicate customer id": (
        copy_cell("customers", "customer_id", 4, 8),
        "customers.csv",
        "customer_id",
        "unique",
        (4, 8),
    ),
    "two answers in one wave": (
        duplicate_survey_response,
        "employee_survey.csv",
        "respondent_id, wave",
        "unique",
        (5, 7),
    ),
    "item out of range": (
        set_cell("employee_survey", "eng_3", 12, "9"),
        "employee_survey.csv",
        "eng_3",
        "range 1–5",
        (12,),
    ),
    "enps out of range": (
        set_cell("employee_survey", "enps", 3, "11"),
        "employee_survey.csv",
        "enps",
        "range 0–10",
        (3,),
    ),
    "nps out of range": (
        set_cell("customer_nps", "likelihood_to_recommend", 5, "-1"),
        "customer_nps.csv",
        "likelihood_to_recommend",
        "range 0–10",
        (5,),
    ),
    "item not whole": (
        set_cell("employee_survey", "comm_1", 6, "3.5"),
        "employee_survey.csv",
        "comm_1",
        "whole number",
        (6,),
    ),
    "item not a number": (
        set_cell("employee_survey", "brand_2", 8, "agree"),
        "employee_survey.csv",
        "brand_2",
        "whole number",
        (8,),
    ),
    "unparseable wave date": (
        set_cell("employee_survey", "wave", 9, "31/03/2024"),
        "employee_survey.csv",
        "wave",
        "YYYY-MM-DD",
        (9,),
    ),
    "impossible date": (
        set_cell("customer_nps", "responded_on", 4, "2024-13-01"),
        "customer_nps.csv",
        "responded_on",
        "YYYY-MM-DD",
        (4,),
    ),
    "churned before since": (
        churn_before_since,
        "customers.csv",
        "churned_on",
        "before since",
        (12,),
    ),
    "instrument item missing": (
        drop_column("employee_survey", "comm_2"),
        "employee_survey.csv",
        "comm_2",
        "instrument item",
        (),
    ),
    "csv and parquet": (also_parquet, "units.csv + units.parquet", None, "both spellings", ()),
    "required column missing": (
        drop_column("customers", "since"),
        "customers.csv",
        "since",
        "required column",
        (),
    ),
    "blank required value": (
        set_cell("customer_nps", "customer_id", 6, ""),
        "customer_nps.csv",
        "customer_id",
        "blank",
        (6,),
    ),
    "blank wave": (
        set_cell("employee_survey", "wave", 10, ""),
        "employee_survey.csv",
        "wave",
        "blank",
        (10,),
    ),
    "customer_facing not boolean": (
        set_cell("units", "customer_facing", 3, "yes"),
        "units.csv",
        "customer_facing",
        "'true' or 'false'",
        (3,),
    ),
    "missing table": (remove_table, "customers.csv", None, "missing", ()),
    "broken instrument": (bad_instrument, "instrument.yaml", None, "items", ()),
    "duplicate column name": (duplicate_header, "units.csv", "unit_name", "more than once", ()),
}


@pytest.mark.parametrize("name", list(RULES))
def test_each_rule_is_reported_with_file_column_and_rows(small_study, name):
    edit, file, column, words, rows = RULES[name]
    edit(small_study)
    with pytest.raises(DatasetError) as caught:
        load_dataset(small_study)
    matching = [
        p
        for p in caught.value.problems
        if p.file == file and p.column == column and words in p.rule
    ]
    assert matching, f"no problem for {file}/{column} '{words}' in:\n{caught.value}"
    assert matching[0].rows[: len(rows)] == rows
    assert matching[0].count >= len(rows)


def test_valid_study_loads_with_types_and_ids_kept_as_text(small_study):
    dataset = load_dataset(small_study)
    assert dataset.units["unit_id"].iloc[0] == "0001"  # leading zeros survive
    assert str(dataset.customer_nps["responded_on"].dtype) == "datetime64[ns]"
    assert str(dataset.employee_survey["eng_1"].dtype) == "Int64"
    assert dataset.units["customer_facing"].notna().all()


def test_parquet_tables_load_like_csv(small_study, tmp_path):
    csv_dataset = load_dataset(small_study)
    for table, frame in csv_dataset.tables().items():
        (small_study / f"{table}.csv").unlink()
        frame.to_parquet(small_study / f"{table}.parquet", index=False)
    parquet_dataset = load_dataset(small_study)
    for table, frame in csv_dataset.tables().items():
        pd.testing.assert_frame_equal(frame, parquet_dataset.tables()[table], check_dtype=False)


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_lists_a_dozen_faults_at_once_exits_2_and_changes_nothing(small_study):
    dozen = [
        "unknown unit in survey",
        "duplicate unit id",
        "two answers in one wave",
        "item out of range",
        "nps out of range",
        "item not whole",
        "unparseable wave date",
        "impossible date",
        "churned before since",
        "instrument item missing",
        "blank required value",
        "customer_facing not boolean",
        "csv and parquet",
    ]
    for name in dozen:
        RULES[name][0](small_study)
    before = _digests(small_study)
    result = _cli("validate", str(small_study))
    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr
    for name in dozen:
        _, file, column, words, rows = RULES[name]
        line = next(
            (
                line
                for line in message.splitlines()
                if file in line and words in line and (column is None or column in line)
            ),
            None,
        )
        assert line, f"fault '{name}' is not reported:\n{message}"
        for row in rows:
            assert str(row) in line
    assert _digests(small_study) == before


def test_cli_is_silent_on_valid_data(small_study):
    result = _cli("validate", str(small_study))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cli_reports_a_missing_directory(tmp_path):
    result = _cli("validate", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "is not a directory" in result.stderr


def test_written_csv_cells_cannot_run_as_spreadsheet_formulas(tmp_path):
    from analysis.data.load import write_tables

    table = pd.DataFrame(
        {
            "unit_name": ['=HYPERLINK("x")', "+1", "@SUM(A1)", "-2+3", "Leeds"],
            "estimate": [-1.5, 2.0, 3.0, -4.0, 5.0],
        }
    )
    write_tables({"t": table}, tmp_path / "out")
    read_back = pd.read_csv(tmp_path / "out" / "t.csv")
    assert list(read_back["unit_name"]) == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'@SUM(A1)",
        "'-2+3",
        "Leeds",
    ]
    assert list(read_back["estimate"]) == [-1.5, 2.0, 3.0, -4.0, 5.0]  # numbers untouched


def test_instrument_scale_names_are_the_contracts_and_each_item_is_listed_once(small_study):
    """A renamed engagement scale used to pass validation and crash estimate (exit 1)."""
    (small_study / "instrument.yaml").write_text(
        "scales:\n"
        "  engaged:\n    items: [eng_1, eng_2]\n    range: [1, 5]\n"
        "  internal_communication:\n    items: [comm_1, eng_2]\n    range: [1, 5]\n",
        encoding="utf-8",
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(small_study)
    message = str(caught.value)
    assert "unknown scale name 'engaged'" in message
    assert "has no 'engagement' scale" in message
    assert "'eng_2' in engaged, internal_communication" in message
    assert len(caught.value.problems) == 3
