"""Data contract version 2: timestamps in date columns, the optional tables and columns.

Every test writes real files into a copy of the small study (``conftest.small_study``) and reads
them back with ``load_dataset`` or the CLI, as a user would.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.data.contract import (
    DEFAULT_INSTRUMENT,
    POINTS_OF_CONNECTION,
    SCALE_NAMES,
    TABLE_NAMES,
    default_instrument,
)
from analysis.data.load import (
    DatasetError,
    dataset_from_tables,
    find_table_files,
    load_dataset,
    write_tables,
)
from analysis.data.provenance import input_hashes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = PROJECT_ROOT / "data" / "sample"


# --------------------------------------------------------------------------------------------
# Helpers: read and write the study's CSV files as text, exactly as a user's editor would


def _read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(directory: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(directory / f"{table}.csv", index=False, lineterminator="\n")


def _problems(directory: Path) -> list:
    with pytest.raises(DatasetError) as caught:
        load_dataset(directory)
    return list(caught.value.problems)


def _find(problems: list, file: str, column: str | None, words: str):
    """The one problem of ``file``/``column`` whose rule holds ``words``; fails listing all."""
    matching = [p for p in problems if p.file == file and p.column == column and words in p.rule]
    assert matching, f"no {file}/{column} problem '{words}' in:\n" + "\n".join(map(str, problems))
    return matching[0]


def _headcount(directory: Path, spare: int = 3) -> pd.DataFrame:
    """A valid headcount: every unit-wave's distinct respondents plus ``spare``."""
    survey = _read(directory, "employee_survey")
    counts = survey.groupby(["unit_id", "wave"])["respondent_id"].nunique().reset_index()
    counts["headcount"] = (counts.pop("respondent_id") + spare).astype(str)
    return counts


def _internal_service(directory: Path) -> pd.DataFrame:
    """A valid internal_service: the first respondents of each wave rate a unit not their own."""
    survey = _read(directory, "employee_survey")
    units = _read(directory, "units")["unit_id"].tolist()
    rows = survey.groupby("wave").head(10).reset_index(drop=True)
    provider = [units[(units.index(u) + 1) % len(units)] for u in rows["unit_id"]]
    frame = pd.DataFrame(
        {
            "respondent_id": rows["respondent_id"],
            "rater_unit_id": rows["unit_id"],
            "provider_unit_id": provider,
            "wave": rows["wave"],
        }
    )
    for i, item in enumerate(POINTS_OF_CONNECTION):
        frame[item] = [str(1 + (i + j) % 5) for j in range(len(frame))]
    frame["internal_nps"] = [str(j % 11) for j in range(len(frame))]
    frame.loc[0, "poc_valued"] = ""  # a skipped point of connection is fine
    frame.loc[1, "internal_nps"] = ""  # so is a skipped internal NPS
    return frame


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )


# --------------------------------------------------------------------------------------------
# Timestamps in date columns

TIMESTAMP_FORMS = (
    "{date}T10:22:11",
    "{date} 10:22:11",
    "{date}T23:59:59Z",
    "{date}T00:30:00+02:00",
    "{date} 23:30:00-0500",
    "{date}T08:15",
    "{date}T08:15:00.250+0100",
    "{date}",
)

DATE_COLUMNS = (
    ("employee_survey", "wave"),
    ("customer_nps", "responded_on"),
    ("customers", "since"),
    ("customers", "churned_on"),
    ("headcount", "wave"),
    ("internal_service", "wave"),
)


def _as_timestamps(dates: pd.Series) -> pd.Series:
    """Each ISO date written as one of the timestamp forms in turn; blanks stay blank."""
    forms = [TIMESTAMP_FORMS[i % len(TIMESTAMP_FORMS)] for i in range(len(dates))]
    return pd.Series(
        [form.format(date=d) if d else "" for form, d in zip(forms, dates, strict=True)],
        index=dates.index,
    )


def test_timestamps_are_read_as_their_calendar_date_in_every_date_column(small_study):
    _write(small_study, "headcount", _headcount(small_study))
    _write(small_study, "internal_service", _internal_service(small_study))
    before = load_dataset(small_study)
    for table in {t for t, _ in DATE_COLUMNS}:
        frame = _read(small_study, table)
        for t, column in DATE_COLUMNS:
            if t == table:
                frame[column] = _as_timestamps(frame[column])
        _write(small_study, table, frame)
    survey = _read(small_study, "employee_survey")
    # Every form is really present, and a late-evening time with a negative offset is kept on
    # its own date (UTC would move it to the next day).
    assert survey["wave"].str.endswith("23:30:00-0500").any()
    assert survey["wave"].str.contains("T").any() and survey["wave"].str.endswith("Z").any()
    after = load_dataset(small_study)
    for table, column in DATE_COLUMNS:
        left, right = before.tables()[table][column], after.tables()[table][column]
        assert str(right.dtype) == "datetime64[ns]", (table, column)
        pd.testing.assert_series_equal(left, right, obj=f"{table}.{column}")


def test_a_timestamp_keeps_the_date_written_in_its_own_offset(small_study):
    nps = _read(small_study, "customer_nps")
    nps.loc[0, "responded_on"] = "2024-06-30T23:30:00-05:00"  # 2024-07-01 04:30 in UTC
    nps.loc[1, "responded_on"] = "2024-07-01T00:30:00+02:00"  # 2024-06-30 22:30 in UTC
    nps.loc[2, "responded_on"] = "2024-07-01 00:00:00Z"
    _write(small_study, "customer_nps", nps)
    dates = load_dataset(small_study).customer_nps["responded_on"]
    assert list(dates[:3]) == [pd.Timestamp(d) for d in ("2024-06-30", "2024-07-01", "2024-07-01")]


@pytest.mark.parametrize(
    "bad", ["03/31/2024", "today", "2024-3-31", "2024-02-30", "2024-03-31T25:00:00", "2024-03-31X"]
)
def test_anything_else_in_a_date_column_is_refused_showing_the_value(small_study, bad):
    customers = _read(small_study, "customers")
    customers.loc[4, "since"] = bad
    _write(small_study, "customers", customers)
    problem = _find(_problems(small_study), "customers.csv", "since", "ISO form YYYY-MM-DD")
    assert problem.rows == (6,) and problem.values == (bad,)
    assert repr(bad) in str(problem)


def test_parquet_timestamps_with_a_timezone_give_the_local_calendar_date(small_study):
    nps = load_dataset(small_study).customer_nps
    local = pd.Series(
        pd.to_datetime(["2024-07-01 00:30", "2024-06-30 23:30"] * (len(nps) // 2 + 1))[: len(nps)]
    )
    nps["responded_on"] = local.dt.tz_localize("Europe/Berlin")  # stored as UTC instants
    (small_study / "customer_nps.csv").unlink()
    nps.to_parquet(small_study / "customer_nps.parquet", index=False)
    dates = load_dataset(small_study).customer_nps["responded_on"]
    assert str(dates.dtype) == "datetime64[ns]"
    assert list(dates[:2]) == [pd.Timestamp("2024-07-01"), pd.Timestamp("2024-06-30")]


# --------------------------------------------------------------------------------------------
# The optional headcount table


def test_optional_tables_are_not_required(small_study):
    (small_study / "headcount.csv").unlink()  # synth writes the rosters; a dataset may lack them
    dataset = load_dataset(small_study)
    assert dataset.headcount is None and dataset.internal_service is None
    assert list(dataset.tables()) == list(TABLE_NAMES)
    assert set(find_table_files(small_study)[0]) == set(TABLE_NAMES)
    assert find_table_files(small_study)[1] == []


def test_a_valid_headcount_is_read_and_typed(small_study):
    expected = _headcount(small_study)
    _write(small_study, "headcount", expected)
    headcount = load_dataset(small_study).headcount
    assert headcount is not None and len(headcount) == len(expected)
    assert str(headcount["headcount"].dtype) == "Int64"
    assert str(headcount["wave"].dtype) == "datetime64[ns]"
    assert headcount["unit_id"].iloc[0] == expected["unit_id"].iloc[0]  # "0001" stays text
    assert (headcount["headcount"].astype(int) == expected["headcount"].astype(int)).all()


def test_more_respondents_than_headcount_names_unit_wave_both_numbers_and_row(small_study):
    headcount = _headcount(small_study)
    unit, wave = headcount.loc[5, ["unit_id", "wave"]]
    respondents = int(headcount.loc[5, "headcount"]) - 3
    headcount.loc[5, "headcount"] = str(respondents - 2)
    _write(small_study, "headcount", headcount)
    problem = _find(_problems(small_study), "headcount.csv", "headcount", "more distinct")
    assert problem.rows == (7,) and problem.count == 1
    assert f"unit {unit!r} in wave {wave}" in problem.rule
    assert f"{respondents} respondents, headcount {respondents - 2}" in problem.rule
    assert problem.values == (f"{unit}, {wave}, {respondents}, {respondents - 2}",)


def test_headcount_rules_are_all_reported_at_once(small_study):
    headcount = _headcount(small_study)
    headcount.loc[0, "unit_id"] = "9999"  # no such unit
    headcount.loc[1, "wave"] = "2031-01-31"  # no such wave
    headcount.loc[2, "headcount"] = "-1"
    headcount.loc[3, "headcount"] = "12.5"
    headcount = pd.concat([headcount, headcount.iloc[[4]]], ignore_index=True)  # twice
    _write(small_study, "headcount", headcount)
    problems = _problems(small_study)
    last = len(headcount) + 1
    assert _find(problems, "headcount.csv", "unit_id", "not in the units table").rows == (2,)
    wave = _find(problems, "headcount.csv", "wave", "does not occur in employee_survey")
    assert (wave.rows, wave.values) == ((3,), ("2031-01-31",))
    negative = _find(problems, "headcount.csv", "headcount", "below 0")
    assert (negative.rows, negative.values) == ((4,), ("-1",))
    assert _find(problems, "headcount.csv", "headcount", "whole number").rows == (5,)
    twice = _find(problems, "headcount.csv", "unit_id, wave", "combination must be unique")
    assert twice.rows == (6, last)


def test_headcount_needs_its_columns(small_study):
    _write(small_study, "headcount", _headcount(small_study).drop(columns="headcount"))
    _find(_problems(small_study), "headcount.csv", "headcount", "required column is missing")


# --------------------------------------------------------------------------------------------
# The optional internal_service table


def test_a_valid_internal_service_table_is_read_and_typed(small_study):
    expected = _internal_service(small_study)
    _write(small_study, "internal_service", expected)
    service = load_dataset(small_study).internal_service
    assert service is not None and len(service) == len(expected)
    for column in (*POINTS_OF_CONNECTION, "internal_nps"):
        assert str(service[column].dtype) == "Int64", column
    assert service["poc_valued"].isna().sum() == 1 and service["internal_nps"].isna().sum() == 1


def test_internal_service_rules_are_all_reported_at_once(small_study):
    service = _internal_service(small_study)
    service.loc[0, "provider_unit_id"] = service.loc[0, "rater_unit_id"]  # rates itself
    service.loc[1, "provider_unit_id"] = "9999"
    service.loc[2, "rater_unit_id"] = "8888"
    service.loc[3, "wave"] = "2031-01-31"
    service.loc[4, "poc_honesty"] = "6"
    service.loc[5, "internal_nps"] = "11"
    service.loc[6, list(POINTS_OF_CONNECTION)] = ""  # rates nothing
    service = pd.concat([service, service.iloc[[7]]], ignore_index=True)  # rated twice
    _write(small_study, "internal_service", service)
    problems = _problems(small_study)
    file = "internal_service.csv"
    own = _find(problems, file, "provider_unit_id", "the rater's own unit")
    assert own.rows == (2,)
    assert _find(problems, file, "provider_unit_id", "not in the units table").values == ("9999",)
    assert _find(problems, file, "rater_unit_id", "not in the units table").rows == (4,)
    assert _find(problems, file, "wave", "does not occur in employee_survey").rows == (5,)
    assert _find(problems, file, "poc_honesty", "outside the allowed range 1–5").rows == (6,)
    assert _find(problems, file, "internal_nps", "outside the allowed range 0–10").rows == (7,)
    assert _find(problems, file, None, "answers no point of connection").rows == (8,)
    twice = _find(
        problems, file, "respondent_id, provider_unit_id, wave", "combination must be unique"
    )
    assert twice.rows == (9, len(service) + 1)


def test_internal_service_needs_a_point_of_connection_column(small_study):
    service = _internal_service(small_study).drop(columns=list(POINTS_OF_CONNECTION))
    _write(small_study, "internal_service", service.drop(columns="wave"))
    problems = _problems(small_study)
    _find(problems, "internal_service.csv", None, "none of the point-of-connection columns")
    _find(problems, "internal_service.csv", "wave", "required column is missing")


# --------------------------------------------------------------------------------------------
# brand_promise and the communication_effort scale


def test_brand_promise_is_an_optional_integer_from_1_to_5(small_study):
    nps = _read(small_study, "customer_nps")
    nps["brand_promise"] = [str(1 + i % 5) if i % 7 else "" for i in range(len(nps))]
    _write(small_study, "customer_nps", nps)
    loaded = load_dataset(small_study).customer_nps["brand_promise"]
    assert str(loaded.dtype) == "Int64" and loaded.min() == 1 and loaded.max() == 5
    nps.loc[3, "brand_promise"] = "6"
    nps.loc[4, "brand_promise"] = "yes"
    _write(small_study, "customer_nps", nps)
    problems = _problems(small_study)
    assert _find(problems, "customer_nps.csv", "brand_promise", "range 1–5").rows == (5,)
    assert _find(problems, "customer_nps.csv", "brand_promise", "whole number").values == ("yes",)


def test_communication_effort_is_measured_only_when_answered(small_study):
    assert "communication_effort" in SCALE_NAMES
    absent = load_dataset(small_study)
    assert absent.instrument == DEFAULT_INSTRUMENT
    assert "communication_effort" not in [s.name for s in absent.instrument.scales]
    survey = _read(small_study, "employee_survey")
    survey["comm_effort"] = [str(1 + i % 7) if i % 5 else "" for i in range(len(survey))]
    _write(small_study, "employee_survey", survey)
    present = load_dataset(small_study)
    scale = present.instrument.scale("communication_effort")
    assert (scale.items, scale.low, scale.high, scale.favourable) == (("comm_effort",), 1, 7, 6)
    assert present.instrument.scales[: len(DEFAULT_INSTRUMENT.scales)] == DEFAULT_INSTRUMENT.scales
    assert str(present.employee_survey["comm_effort"].dtype) == "Int64"
    # in memory exactly as from files
    memory = dataset_from_tables(present.tables())
    assert memory.instrument == present.instrument
    # a blank column answers nothing, so measures nothing
    survey["comm_effort"] = ""
    _write(small_study, "employee_survey", survey)
    assert load_dataset(small_study).instrument == DEFAULT_INSTRUMENT


def test_communication_effort_answers_are_checked_and_other_items_stay_required(small_study):
    survey = _read(small_study, "employee_survey")
    survey["comm_effort"] = "4"
    survey.loc[2, "comm_effort"] = "8"
    _write(small_study, "employee_survey", survey.drop(columns="ees"))
    problems = _problems(small_study)
    assert _find(problems, "employee_survey.csv", "comm_effort", "range 1–7").rows == (4,)
    _find(problems, "employee_survey.csv", "ees", "instrument item is missing")


def test_a_custom_instrument_ignores_the_default_optional_scale(small_study):
    survey = _read(small_study, "employee_survey")
    survey["comm_effort"] = "not a number"  # an extra column to this instrument: ignored
    _write(small_study, "employee_survey", survey)
    scales = {
        "engagement": {"items": [f"eng_{i}" for i in range(1, 6)], "range": [1, 5]},
    }
    (small_study / "instrument.yaml").write_text(yaml.safe_dump({"scales": scales}))
    assert [s.name for s in load_dataset(small_study).instrument.scales] == ["engagement"]


def test_the_full_default_instrument_lists_the_optional_scale_last():
    full = default_instrument()
    assert full.scales[:-1] == DEFAULT_INSTRUMENT.scales
    assert full.scales[-1].name == "communication_effort"
    assert default_instrument(["eng_1"]) is DEFAULT_INSTRUMENT


# --------------------------------------------------------------------------------------------
# Round trips and provenance


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_new_tables_and_columns_round_trip(small_study, tmp_path, file_format):
    _write(small_study, "headcount", _headcount(small_study))
    _write(small_study, "internal_service", _internal_service(small_study))
    nps = _read(small_study, "customer_nps")
    nps["brand_promise"] = [str(1 + i % 5) for i in range(len(nps))]
    _write(small_study, "customer_nps", nps)
    survey = _read(small_study, "employee_survey")
    survey["comm_effort"] = [str(1 + i % 7) for i in range(len(survey))]
    _write(small_study, "employee_survey", survey)
    original = load_dataset(small_study)
    assert list(original.tables()) == [*TABLE_NAMES, "headcount", "internal_service"]

    out = write_tables(original.tables(), tmp_path / "copy", file_format=file_format)
    assert {p.name for p in out.glob(f"*.{file_format}")} == {
        f"{name}.{file_format}" for name in original.tables()
    }
    copy = load_dataset(out)
    memory = dataset_from_tables(original.tables())
    assert copy.instrument == original.instrument == memory.instrument
    for name, frame in original.tables().items():
        pd.testing.assert_frame_equal(frame, copy.tables()[name], check_dtype=False, obj=name)
        pd.testing.assert_frame_equal(frame, memory.tables()[name], obj=name)

    hashes = input_hashes(out, copy.files)
    assert f"headcount.{file_format}" in hashes and f"internal_service.{file_format}" in hashes
    assert hashes == input_hashes(out)  # found by find_table_files alike
    digest = hashlib.sha256((out / f"headcount.{file_format}").read_bytes()).hexdigest()
    assert hashes[f"headcount.{file_format}"] == digest


def test_dataset_from_tables_treats_a_none_table_as_absent(small_study):
    tables = dict(load_dataset(small_study).tables(), headcount=None)
    dataset = dataset_from_tables(tables)
    assert dataset.headcount is None and "headcount" not in dataset.files


def test_dataset_from_tables_checks_the_optional_tables(small_study):
    tables = load_dataset(small_study).tables()
    headcount = _headcount(small_study)
    headcount.loc[0, "headcount"] = "0"
    with pytest.raises(DatasetError) as caught:
        dataset_from_tables({**tables, "headcount": headcount})
    _find(list(caught.value.problems), "headcount (in memory)", "headcount", "more distinct")


# --------------------------------------------------------------------------------------------
# Version 1 still holds


@pytest.mark.skipif(not (SAMPLE / "units.csv").exists(), reason="data/sample is absent")
def test_the_version_1_sample_loads_unchanged(tmp_path):
    """The sample's four version-1 tables, without the rosters synth now adds, are a valid
    version-2 dataset read exactly as before."""
    version_1 = tmp_path / "v1"
    version_1.mkdir()
    for name in TABLE_NAMES:
        shutil.copyfile(SAMPLE / f"{name}.csv", version_1 / f"{name}.csv")
    dataset = load_dataset(version_1)
    assert list(dataset.tables()) == list(TABLE_NAMES)
    assert dataset.instrument == DEFAULT_INSTRUMENT
    assert dataset.headcount is None and dataset.internal_service is None
    assert set(input_hashes(version_1)) == {f"{name}.csv" for name in TABLE_NAMES}
    # Written back, every table is the same file, byte for byte: nothing read differently.
    copy = write_tables(dataset.tables(), tmp_path / "copy")
    for name in TABLE_NAMES:
        assert (copy / f"{name}.csv").read_bytes() == (SAMPLE / f"{name}.csv").read_bytes(), name


# --------------------------------------------------------------------------------------------
# The CLI


def test_validate_reports_the_new_faults_with_their_values_and_exits_2(small_study):
    headcount = _headcount(small_study)
    headcount.loc[0, "headcount"] = "1"
    _write(small_study, "headcount", headcount)
    service = _internal_service(small_study)
    service.loc[2, "provider_unit_id"] = service.loc[2, "rater_unit_id"]
    _write(small_study, "internal_service", service)
    survey = _read(small_study, "employee_survey")
    survey.loc[3, "wave"] = "03/31/2024"
    _write(small_study, "employee_survey", survey)
    before = {p.name: p.read_bytes() for p in small_study.iterdir()}
    result = _cli("validate", str(small_study))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()

    def line(*words: str) -> str:
        found = [x for x in lines if all(w in x for w in words)]
        assert found, f"no line with {words}:\n{result.stderr}"
        return found[0]

    assert "'03/31/2024'" in line("employee_survey.csv", "'wave'", "ISO form", "5 ")
    assert "respondents, headcount 1" in line("headcount.csv", "more distinct", "2 ")
    assert "'" + service.loc[2, "rater_unit_id"] + "'" in line(
        "internal_service.csv", "rater's own unit", "4 "
    )
    assert {p.name: p.read_bytes() for p in small_study.iterdir()} == before
