"""The rules of ``instrument.yaml``: every fault is one clear contract error (exit 2).

Each test writes a real ``instrument.yaml`` (and, where needed, edits the survey's CSV) in a copy
of the small study (``conftest.small_study``) and runs ``python -m analysis validate`` as a user
would, or ``load_dataset`` where many cases are checked at once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.data.load import DatasetError, load_dataset, write_tables


def _read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(directory: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(directory / f"{table}.csv", index=False, lineterminator="\n")


def _instrument(directory: Path, scales: dict) -> None:
    text = yaml.safe_dump({"scales": scales}, allow_unicode=False, sort_keys=False)
    (directory / "instrument.yaml").write_text(text, encoding="utf-8")


def _refused(directory: Path) -> str:
    """The CLI's message for a dataset it must refuse: exit 2, nothing on stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "validate", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    return result.stderr


def _count(message: str) -> int:
    return int(re.search(r"\((\d+) problems?\)", message).group(1))


ENGAGEMENT = [f"eng_{i}" for i in range(1, 6)]


def test_a_broken_instrument_is_not_replaced_by_the_default(small_study):
    """One blank item among renamed items used to add "instrument item is missing" for eng_1 …"""
    survey = _read(small_study, "employee_survey")
    survey = survey.rename(columns={f"eng_{i}": f"Q1_{i}" for i in range(1, 6)})
    survey.loc[3, "unit_id"] = "no-such-unit"  # a fault that does not depend on the instrument
    _write(small_study, "employee_survey", survey)
    _instrument(
        small_study,
        {"engagement": {"items": ["Q1_1", "Q1_2", "Q1_3", "Q1_4", "Q1_5", ""], "range": [1, 5]}},
    )
    message = _refused(small_study)
    assert "instrument.yaml: an item name is blank in engagement" in message
    assert "employee_survey.csv, column 'unit_id': unit_id is not in the units table" in message
    assert "instrument item is missing" not in message
    assert "eng_1" not in message
    assert _count(message) == 2


UNREADABLE = {
    "eng\r1": ("control characters ('\\r')", "'eng_1'"),
    "eng\n1": ("control characters ('\\n')", "'eng_1'"),
    "eng\t1": ("control characters ('\\t')", "'eng_1'"),
    "eng\x1e1": ("control characters ('\\x1e')", "'eng_1'"),
    " eng_1": ("starts or ends with a space", "'eng_1'"),
    "eng_1 ": ("starts or ends with a space", "'eng_1'"),
    "=eng_1": ("starts with '=', a spreadsheet formula character", "'eng_1'"),
    "+eng_1": ("starts with '+', a spreadsheet formula character", "'eng_1'"),
    "-1": ("starts with '-', a spreadsheet formula character", "'1'"),
    "@eng_1": ("starts with '@', a spreadsheet formula character", "'eng_1'"),
    "'=eng_1": ('starts with "\'=", a spreadsheet formula character', "'eng_1'"),
}


def test_item_names_that_cannot_survive_a_csv_file_are_refused_each_with_a_fix(small_study):
    """Such an item passed the rules, then its column was written as '=eng_1 and never found."""
    names = list(UNREADABLE)
    _instrument(small_study, {"engagement": {"items": [*ENGAGEMENT, *names], "range": [1, 5]}})
    message = _refused(small_study)
    lines = message.splitlines()
    for name, (rule, fix) in UNREADABLE.items():
        shown = repr(name)
        found = [line for line in lines if f"item {shown} of scale 'engagement'" in line]
        assert found, f"{shown} not named in:\n{message}"
        assert rule in found[0] and f"e.g. to {fix}" in found[0], found[0]
    # the instrument's own faults only: no item is then looked for in the survey
    assert _count(message) == len(UNREADABLE)


def test_item_names_the_rules_accept_survive_write_tables_and_load(small_study_master, tmp_path):
    """What the rules let through must come back from the kit's own CSV writer unchanged."""
    odd = ["Q1 a", "été_1", "1", "a=b", "x-1", "sat'n", "Q.5"]
    tables = {
        name: pd.read_csv(small_study_master / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("units", "employee_survey", "customer_nps", "customers")
    }
    tables["employee_survey"] = tables["employee_survey"].rename(
        columns=dict(zip(ENGAGEMENT, odd[:5], strict=True))
    )
    for extra in odd[5:]:
        tables["employee_survey"][extra] = tables["employee_survey"][odd[0]]
    folder = write_tables(tables, tmp_path / "study", kind="dataset")
    _instrument(folder, {"engagement": {"items": odd, "range": [1, 5], "reverse": ["1"]}})
    dataset = load_dataset(folder)
    assert dataset.instrument.scale("engagement").items == tuple(odd)
    assert set(odd) <= set(dataset.employee_survey.columns)


def test_enps_must_be_asked_on_zero_to_ten(small_study):
    _instrument(
        small_study,
        {
            "engagement": {"items": ENGAGEMENT, "range": [1, 5]},
            "enps": {"items": ["enps"], "range": [1, 10]},
        },
    )
    message = _refused(small_study)
    assert "instrument.yaml: scale 'enps': 'range' must be [0, 10]" in message
    assert "promoters (9–10) and detractors (0–6)" in message
    assert _count(message) == 1


BROKEN_FORMS = {
    "engagement": {"items": ENGAGEMENT, "range": [1, 5], "favourable": 9},
    "internal_communication": {"items": ["comm_1"], "range": [1.5, 5], "favourable": "high"},
    "brand_alignment": {"items": "brand_1", "range": [True, 5], "reverse": ["brand_2"]},
    "employee_effort": {"items": ["ees"], "range": [7, 1], "reverse": "ees"},
    "points_of_connection": {"items": [], "range": ["1", "5"], "favorable": 4},
    "comms_effort": {"items": ["comm_2"], "range": [1, 2**60], "favourable": float("nan")},
    "enps": {"items": [{"q": 1}], "range": [0, 10, 11]},
}

EXPECTED = [
    "scale 'engagement': 'favourable' 9 is outside the range [1, 5]: give an answer within it",
    "scale 'internal_communication': 'range' must be two integers [low, high], e.g. [1, 5], "
    "each within ±9,007,199,254,740,992, not '[1.5, 5]'",
    "scale 'internal_communication': 'favourable' must be a number",
    "scale 'brand_alignment': 'items' must be a non-empty list of survey column names "
    "(text or numbers), e.g. [q1, q2], not 'brand_1'",
    "scale 'brand_alignment': 'range' must be two integers [low, high], e.g. [1, 5], "
    "each within ±9,007,199,254,740,992, not '[true, 5]'",
    "scale 'employee_effort': 'range' [7, 1] must have low < high, e.g. [1, 7]",
    "scale 'employee_effort': 'reverse' must be a list of the scale's own items, e.g. [ees], "
    "not 'ees'",
    "scale 'points_of_connection': unknown key 'favorable' (did you mean 'favourable'?)",
    "scale 'points_of_connection': 'items' must be a non-empty list",
    "scale 'points_of_connection': 'range' must be two integers",
    "scale 'comms_effort': 'favourable' must be a number (the answer at or above which a "
    "respondent counts as favourable), not '.nan'",
    "unknown scale name 'comms_effort' (did you mean 'communication_effort'?)",
    "scale 'enps': 'items' must be a non-empty list",
    "scale 'enps': 'range' must be two integers [low, high], e.g. [1, 5], each within "
    "±9,007,199,254,740,992, not '[0, 10, 11]'",
    "scale 'comms_effort': 'range' must be two integers",
]


def test_every_malformed_scale_key_is_its_own_problem_all_at_once(small_study):
    _instrument(small_study, BROKEN_FORMS)
    message = _refused(small_study)
    for expected in EXPECTED:
        assert f"instrument.yaml: {expected}" in message, f"{expected!r} not in:\n{message}"
    assert _count(message) == len(EXPECTED)


def test_reverse_may_name_only_the_scales_own_items(small_study):
    _instrument(
        small_study, {"engagement": {"items": ENGAGEMENT, "range": [1, 5], "reverse": ["ees"]}}
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(small_study)
    (problem,) = caught.value.problems
    assert problem.rule.startswith(
        "scale 'engagement': 'reverse' may only name items of this scale: 'ees' is not in its "
        "items ('eng_1',"
    )


def test_a_missing_item_suggests_the_survey_column_meant(small_study):
    survey = _read(small_study, "employee_survey").rename(columns={"eng_5": "Eng 5"})
    _write(small_study, "employee_survey", survey)
    _instrument(small_study, {"engagement": {"items": ENGAGEMENT, "range": [1, 5]}})
    message = _refused(small_study)
    assert (
        "employee_survey.csv, column 'eng_5': instrument item is missing from the survey; "
        "did you mean 'Eng 5'? If so, rename that header to 'eng_5'"
    ) in message
    assert _count(message) == 1


def test_a_column_the_instrument_claims_is_not_offered_for_another_item(small_study):
    _instrument(small_study, {"engagement": {"items": [*ENGAGEMENT, "eng_6"], "range": [1, 5]}})
    message = _refused(small_study)
    # without the exclusion, 'eng_1' (an item already) would be offered for 'eng_6'
    assert re.search(r"column 'eng_6': instrument item is missing from the survey\n", message)
