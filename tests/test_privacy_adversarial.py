"""Privacy under adversarial inputs: filtering the data cannot reveal a small group.

A reviewer can run the report on any subset of the data: one unit, a few units, all units but
one. The guarantee tested here is the strongest one that is also checkable: **nothing a report
publishes about employees depends on the answers of a group below ``min_group_size``**. Then no
single report, and no difference of two reports on overlapping data, can reveal such a group.
Each test changes a small group's answers (mirroring them, which keeps their spread) and checks
that every published employee figure stays the same, and shows that the figure computed the old
way, over every response, would not.

Not covered by the guarantee: the model estimates (``estimates.csv``, ``drivers.csv``) use every
response by design (``analysis.privacy``); two fits differing by one unit give a few nonlinear
equations in that unit's values, not its values.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import internal, metrics
from analysis.contract import DEFAULT_INSTRUMENT, TABLE_NAMES
from analysis.estimate import estimate_all
from analysis.io import load_dataset
from analysis.linkage import EstimationError
from analysis.parameters import Parameters
from analysis.privacy import assert_no_disclosure
from analysis.report import PAGES, build_report

MIN = 5
PARAMETERS = Parameters(min_group_size=MIN, bootstrap_draws=20)
EMPLOYEE_VALUES = re.compile(r"(_index|_noise_var)$")


def _read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(directory: Path, table: str, frame: pd.DataFrame) -> None:
    frame.to_csv(directory / f"{table}.csv", index=False)


def _with_small_unit(master: Path, directory: Path, keep_units: int | None = None):
    """A copy of the study where one customer-facing unit has the same 4 people every wave.

    Four people answering four waves are 16 responses but 4 respondents: below ``MIN``
    however the waves are pooled. With ``keep_units``, the study is first filtered to that
    many units (the small one among them), as a reviewer might.
    """
    directory = Path(shutil.copytree(master, directory))
    units, survey = _read(directory, "units"), _read(directory, "employee_survey")
    facing = units.loc[units["customer_facing"] == "true", "unit_id"]
    per_wave = survey.groupby(["unit_id", "wave"]).size().unstack(fill_value=0).min(axis=1)
    small = per_wave[per_wave.index.isin(facing)].sort_values(ascending=False).index[0]
    if keep_units is not None:
        # customer-facing first: the models need ten units with customers
        others = [u for u in [*facing, *units["unit_id"]] if u != small]
        kept = [small, *list(dict.fromkeys(others))[: keep_units - 1]]
        for table in TABLE_NAMES:
            frame = _read(directory, table)
            _write(directory, table, frame[frame["unit_id"].isin(kept)])
        survey = _read(directory, "employee_survey")
    mine = survey["unit_id"] == small
    rest, own = survey[~mine], survey[mine].copy()
    own = own.groupby("wave", group_keys=False).head(4)
    own["respondent_id"] = "SMALL-" + (own.groupby("wave").cumcount() + 1).astype(str)
    _write(directory, "employee_survey", pd.concat([rest, own]))
    return directory, small


def _mirror_answers(directory: Path, unit: str) -> None:
    """Every answer of ``unit`` turned around (x → low + high − x): same spread, other values."""
    survey = _read(directory, "employee_survey")
    mine = survey["unit_id"] == unit
    for scale in DEFAULT_INSTRUMENT.scales:
        for item in scale.items:
            answered = mine & (survey[item] != "")
            flipped = scale.low + scale.high - survey.loc[answered, item].astype(int)
            survey.loc[answered, item] = flipped.astype(str)
    _write(directory, "employee_survey", survey)


def _published(directory: Path) -> dict[str, pd.DataFrame]:
    """Every employee-derived table the report publishes, computed as its notebooks do."""
    dataset = load_dataset(directory)
    results = estimate_all(dataset, PARAMETERS)
    unit_wave = results.unit_wave
    survey = dataset.employee_survey
    engagement_items = DEFAULT_INSTRUMENT.scale("engagement").items
    ranking = internal.shrunken_unit_engagement(
        unit_wave,
        MIN,
        internal.distinct_respondents(survey, engagement_items),
        dataset.units,
    )
    effort = internal.shown_responses(survey, unit_wave, "employee_effort")["ees"]
    employer = internal.shown_responses(survey, unit_wave, "enps")["enps"]
    connection = internal.shown_responses(survey, unit_wave, "points_of_connection")
    return {
        "unit_wave": unit_wave,
        "quartiles": results.quartiles,
        "reliability": internal.scale_reliability(dataset, 0.95, unit_wave),
        "ranking": ranking,
        "cells": internal.cell_significance(unit_wave),
        "scorecard": metrics.points_of_connection_scorecard(connection, DEFAULT_INSTRUMENT),
        "effort": metrics.effort_score(effort.dropna()).to_frame(),
        "enps": metrics.enps(employer.dropna()).to_frame(),
    }


@pytest.fixture(scope="module")
def mirrored_pair(small_study_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    original, small = _with_small_unit(small_study_master, root / "original")
    mirrored = Path(shutil.copytree(original, root / "mirrored"))
    _mirror_answers(mirrored, small)
    return original, mirrored, small


def test_a_small_units_answers_change_nothing_published(mirrored_pair):
    original, mirrored, small = mirrored_pair
    before, after = _published(original), _published(mirrored)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    # the small unit itself: hidden in every wave, and not ranked (4 people, 16 responses)
    rows = before["unit_wave"][before["unit_wave"]["unit_id"] == small]
    assert len(rows) == 4 and rows["suppressed"].all()
    assert rows.filter(regex=EMPLOYEE_VALUES.pattern).isna().all(axis=None)
    ranking = before["ranking"]
    assert small not in set(ranking.loc[ranking["rank"].notna(), "unit_id"])
    assert small not in set(ranking.loc[ranking["shrunken"].notna(), "unit_id"])
    engagement = DEFAULT_INSTRUMENT.scale("engagement").items
    survey = load_dataset(original).employee_survey
    people = internal.distinct_respondents(survey, engagement)
    assert people[small] == 4 and (survey["unit_id"] == small).sum() == 16


def test_the_old_organisation_wide_figures_would_have_leaked(mirrored_pair):
    """The check has teeth: over every response, the same figures move with the small unit."""
    original, mirrored, _ = mirrored_pair
    a, b = load_dataset(original), load_dataset(mirrored)
    assert metrics.enps(a.employee_survey["enps"])["nps"] != pytest.approx(
        metrics.enps(b.employee_survey["enps"])["nps"]
    )
    assert not internal.scale_reliability(a).equals(internal.scale_reliability(b))


def test_differencing_two_reports_reveals_no_small_group(small_study_master, tmp_path):
    """Report A on all units, report B on all units but the small one: A − B isolates nothing.

    Every organisation-wide employee figure of a report is a sum over the unit-waves it shows.
    The unit-waves in one sum and not the other are all at least ``MIN`` strong, so the
    difference of the two is a figure of groups that are allowed to be seen.
    """
    full, small = _with_small_unit(small_study_master, tmp_path / "all")
    without = Path(shutil.copytree(full, tmp_path / "without"))
    for table in TABLE_NAMES:
        frame = _read(without, table)
        _write(without, table, frame[frame["unit_id"] != small])

    def cells(directory: Path) -> tuple[pd.DataFrame, pd.Series]:
        dataset = load_dataset(directory)
        unit_wave = estimate_all(dataset, PARAMETERS).unit_wave
        used = internal.shown_responses(dataset.employee_survey, unit_wave, "enps")
        keys = used.groupby(["unit_id", "wave"]).size()
        return dataset.employee_survey, keys

    survey_a, used_a = cells(full)
    _, used_b = cells(without)
    differing = used_a.index.symmetric_difference(used_b.index)
    sizes = pd.concat([used_a, used_b]).groupby(level=[0, 1]).max()
    assert (sizes.loc[differing] >= MIN).all()
    assert small not in used_a.index.get_level_values("unit_id")
    # What the old page did (eNPS over every response) gives the small unit away exactly:
    old_b = survey_a[survey_a["unit_id"] != small]["enps"].dropna().astype(float)
    old_a = survey_a["enps"].dropna().astype(float)
    own = survey_a[survey_a["unit_id"] == small]["enps"].dropna().astype(float)
    recovered = (old_a.sum() - old_b.sum()) / (len(old_a) - len(old_b))
    assert recovered == pytest.approx(own.mean())


def test_one_unit_short_of_the_threshold_in_one_wave(small_study_master, tmp_path):
    """A unit with exactly ``MIN − 1`` respondents in one wave: that cell, and only it, is
    small; complementary suppression protects it from every total, and the unit's ranking
    rests on its shown waves only."""
    directory = Path(shutil.copytree(small_study_master, tmp_path / "study"))
    survey = _read(directory, "employee_survey")
    sizes = survey.groupby(["unit_id", "wave"]).size().unstack()
    unit = sizes[(sizes >= MIN + 2).all(axis=1)].index[0]
    wave = sizes.columns[1]
    cell = (survey["unit_id"] == unit) & (survey["wave"] == wave)
    survey = survey.drop(survey[cell].index[MIN - 1 :])
    _write(directory, "employee_survey", survey)

    published = _published(directory)
    unit_wave = published["unit_wave"]
    mine = unit_wave[unit_wave["unit_id"] == unit]
    mine = mine.set_index(mine["wave"].dt.strftime("%Y-%m-%d"))
    assert mine.loc[wave, "n_respondents"] == MIN - 1 and mine.loc[wave, "suppressed"]
    assert mine.loc[[w for w in mine.index if w != wave], "suppressed"].eq(False).all()
    assert_no_disclosure(
        unit_wave,
        count="n_respondents",
        values=["engagement_index", "engagement_noise_var"],
        min_group_size=MIN,
        parents=[("wave",), (), ("region", "wave")],
    )
    shown = mine[~mine["suppressed"]]
    ranked = published["ranking"].set_index("unit_id").loc[unit]
    expected = np.average(shown["engagement_index"], weights=shown["n_respondents"])
    assert ranked["raw_mean"] == pytest.approx(expected)


def test_filtered_to_one_unit_is_refused_not_shown(small_study_master, tmp_path):
    directory, small = _with_small_unit(small_study_master, tmp_path / "one", keep_units=1)
    with pytest.raises(EstimationError, match="too few units"):
        estimate_all(load_dataset(directory), PARAMETERS)


def _page_body(run: Path, page: str) -> str:
    """The page without its footer (run id, time and input hashes differ between runs)."""
    text = (run / f"{page}.html").read_text(encoding="utf-8")
    text = re.sub(r"cell-id=[0-9a-f-]+", "", text)  # papermill's injected cell has a random id
    return text.split('<footer class="io-footer">')[0]


def test_few_units_report_pages_do_not_depend_on_a_small_group(small_study_master, tmp_path):
    """End to end, on data filtered to 12 units: the internal-measures page (every employee
    figure of the report) is byte for byte the same whatever the small unit answered."""
    original, small = _with_small_unit(small_study_master, tmp_path / "a", keep_units=12)
    mirrored = Path(shutil.copytree(original, tmp_path / "b"))
    _mirror_answers(mirrored, small)
    pages = tuple(p for p in PAGES if p.slug == "internal_measures")
    runs = [
        build_report(data, tmp_path / "reports", PARAMETERS, progress=lambda _: None, pages=pages)
        for data in (original, mirrored)
    ]
    first, second = (_page_body(run, "internal_measures") for run in runs)
    assert "Employee NPS across the organisation" in first
    assert first == second
    for run in runs:
        unit_wave = pd.read_csv(run / "results" / "unit_wave.csv", dtype={"unit_id": str})
        small_rows = unit_wave[unit_wave["n_respondents"] < MIN]
        assert small_rows.filter(regex=EMPLOYEE_VALUES.pattern).isna().all(axis=None)
        assert small_rows["suppressed"].all()


def test_a_small_units_spread_changes_nothing_published(mirrored_pair, tmp_path):
    original, _, small = mirrored_pair
    uniform = Path(shutil.copytree(original, tmp_path / "uniform"))
    survey = _read(uniform, "employee_survey")
    mine = survey["unit_id"] == small
    for item in DEFAULT_INSTRUMENT.scale("engagement").items:
        survey.loc[mine & (survey[item] != ""), item] = "3"  # all agree: no spread
    _write(uniform, "employee_survey", survey)
    before, after = _published(original), _published(uniform)
    for name in ("unit_wave", "cells", "ranking"):
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
