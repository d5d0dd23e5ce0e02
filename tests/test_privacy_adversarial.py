"""Privacy under adversarial inputs: filtering the data or adding one person reveals nothing.

A reviewer can run the report on any subset of the data: one unit, a few units, all units but
one. The guarantee tested first is the strongest one that is also checkable: **nothing a
report publishes about employees depends on the answers of a group below
``min_group_size``**, before the release noise. Each test changes a small group's answers
(mirroring them, which keeps their spread) and checks that every published employee figure
stays the same before noise, and shows that the figure computed the old way, over every
response, would not. After noise the figures differ, by fresh noise only: changing any input
byte changes the secret the noise is drawn from (``analysis.measures.privacy.release_for``).

The second guarantee is against **two releases that differ by one person**: a reviewer reruns
the kit after one more respondent joins a unit of exactly ``min_group_size``. Subtracting
``n × mean`` of the two releases gives that person's answers exactly without noise; with the
Laplace release it gives them plus noise of scale ``range / ε``, and the tests show both.

Not covered: the model estimates (``estimates.csv``, ``drivers.csv``) use every response by
design (README, "Privacy"); two fits differing by one unit give a few nonlinear equations in
that unit's values, not its values.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.contract import DEFAULT_INSTRUMENT
from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import Parameters
from analysis.data.results import read_results
from analysis.measures import internal, nps, privacy, scales
from analysis.measures.privacy import Release, assert_no_disclosure
from analysis.measures.scales import respondent_scale_score
from analysis.models import linkage
from analysis.models.estimate import (
    SCALE_INDEX_SUFFIX,
    estimate_all,
    released_unit_wave,
    suppressed_unit_wave,
)
from analysis.models.linkage import EstimationError
from analysis.report.build import PAGES, build_report
from tests.conftest import present_tables

MIN = 5
PARAMETERS = Parameters(min_group_size=MIN, bootstrap_draws=20)
EMPLOYEE_VALUES = re.compile(r"(_index|_noise_var)$")


def _with_findings(tables: dict) -> dict:
    """The result tables as ``estimate`` writes them: the estimation's, and the findings."""
    from analysis.report.findings import findings_table

    return {**tables, "findings": findings_table(tables["estimates"], PARAMETERS.alpha)}


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
        for table in present_tables(directory):
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


def _published(directory: Path, released: bool = False) -> dict[str, pd.DataFrame]:
    """Every employee-derived table the report publishes, computed as its notebooks do.

    With ``released=False`` the tables before the release noise (the suppressed exact
    values, ``analysis.models.estimate.suppressed_unit_wave``); with ``released=True`` as published.
    """
    return _both(directory)[int(released)]


def _both(directory: Path) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """``_published`` before and after the release noise, from one estimation."""
    dataset = load_dataset(directory)
    results = estimate_all(dataset, PARAMETERS)
    survey = dataset.employee_survey
    predictors = [
        c
        for c in results.panel.columns
        if c.endswith(SCALE_INDEX_SUFFIX) and not c.endswith("_lag")
    ]
    exact = (
        suppressed_unit_wave(results.panel, predictors, MIN),
        linkage.nps_by_engagement_quartile(results.panel, MIN),
    )
    people = internal.distinct_respondents(survey, DEFAULT_INSTRUMENT.scale("engagement").items)
    both = []
    for unit_wave, quartiles in (exact, (results.unit_wave, results.quartiles)):
        tables = {
            "unit_wave": unit_wave,
            "quartiles": quartiles,
            "reliability": internal.scale_reliability(dataset, 0.95, unit_wave, MIN),
            "ranking": internal.shrunken_unit_engagement(unit_wave, MIN, people, dataset.units),
            "cells": internal.cell_significance(unit_wave),
        }
        if unit_wave is results.unit_wave:
            figures = internal.organisation_figures(dataset, unit_wave, PARAMETERS)
            tables["scorecard"] = figures["scorecard"]
            tables["effort"] = figures["effort"].to_frame()
            tables["enps"] = figures["enps"].to_frame()
        else:
            tables.update(
                internal.organisation_statistics(survey, unit_wave, DEFAULT_INSTRUMENT, MIN)
            )
        both.append(tables)
    return both[0], both[1]


@pytest.fixture(scope="module")
def mirrored_pair(small_study_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("pair")
    original, small = _with_small_unit(small_study_master, root / "original")
    mirrored = Path(shutil.copytree(original, root / "mirrored"))
    _mirror_answers(mirrored, small)
    return original, mirrored, small


def test_a_small_units_answers_change_nothing_published(mirrored_pair):
    original, mirrored, small = mirrored_pair
    (before, shown_before), (after, shown_after) = _both(original), _both(mirrored)
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    # As released, the figures differ by fresh noise only: the mirrored answers are other input
    # bytes, hence another secret. The same cells are shown, with the same counts.
    table_before, table_after = shown_before["unit_wave"], shown_after["unit_wave"]
    values = [c for c in table_before.columns if EMPLOYEE_VALUES.search(c)]
    counts = [c for c in table_before.columns if c not in values]
    pd.testing.assert_frame_equal(table_before[counts], table_after[counts])
    pd.testing.assert_frame_equal(table_before[values].isna(), table_after[values].isna())
    shown = table_before["engagement_index"].notna()
    assert (
        table_before.loc[shown, "engagement_index"] != table_after.loc[shown, "engagement_index"]
    ).all()
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
    assert nps.enps(a.employee_survey["enps"])["nps"] != pytest.approx(
        nps.enps(b.employee_survey["enps"])["nps"]
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
    for table in present_tables(without):
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

    published = _published(directory, released=True)
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
    """End to end, on data filtered to 12 units: the internal-measures page never shows the
    small unit, and the released tables behind it hide it in every wave. (Before noise its
    figures are the same whatever the small unit answered: the tests above. After noise the
    pages differ, since the noise is drawn afresh from the changed input bytes.)"""
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
    assert "random noise" in first
    name = _read(original, "units").set_index("unit_id").loc[small, "unit_name"]
    for body in (first, second):
        assert re.search(rf"{re.escape(name)}(?![0-9])", body) is None  # never named or ranked
    assert first != second  # fresh noise: the input bytes changed
    for run in runs:
        unit_wave = pd.read_csv(run / "results" / "unit_wave.csv", dtype={"unit_id": str})
        small_rows = unit_wave[unit_wave["n_respondents"] < MIN]
        assert small_rows.filter(regex=EMPLOYEE_VALUES.pattern).isna().all(axis=None)
        assert small_rows["suppressed"].all()
        assert unit_wave[unit_wave["unit_id"] == small]["suppressed"].all()


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


# --- two releases, one person -------------------------------------------------------------------

ITEMS = list(DEFAULT_INSTRUMENT.items)


def _half_step(scale) -> float:
    """Half the distance between two possible scores of one person on a scale, on 0–100."""
    return 100 / ((scale.high - scale.low) * len(scale.items)) / 2


@pytest.fixture(scope="module")
def one_more_person(small_study_master, tmp_path_factory):
    """Two studies, as real files: a customer-facing unit-wave of exactly ``MIN`` respondents,
    then the same with one more respondent (everyone answered every item). Both estimated and
    written as a report writes them."""
    root = tmp_path_factory.mktemp("two-releases")
    survey = _read(small_study_master, "employee_survey")
    units = _read(small_study_master, "units")
    facing = set(units.loc[units["customer_facing"] == "true", "unit_id"])
    complete = (survey[ITEMS] != "").all(axis=1)
    cells = survey[complete & survey["unit_id"].isin(facing)].groupby(["unit_id", "wave"]).size()
    for (unit, wave), _ in cells[cells >= MIN + 1].sort_values(ascending=False).items():
        cell = (survey["unit_id"] == unit) & (survey["wave"] == wave)
        people = survey[cell & complete]
        kept, added = people.iloc[:MIN], people.iloc[[MIN]]
        before = pd.concat([survey[~cell], kept])
        studies = {}
        for name, frame in (("before", before), ("after", pd.concat([before, added]))):
            directory = Path(shutil.copytree(small_study_master, root / f"{unit}-{name}"))
            _write(directory, "employee_survey", frame)
            dataset = load_dataset(directory)
            results = estimate_all(dataset, PARAMETERS)
            write_tables(_with_findings(results.tables()), directory / "results")
            studies[name] = (directory, dataset, results, read_results(directory / "results"))
        published = [s[3]["unit_wave"] for s in studies.values()]
        rows = [t[(t["unit_id"] == unit) & (t["wave"] == pd.Timestamp(wave))] for t in published]
        if all(len(r) == 1 and not r["suppressed"].iloc[0] for r in rows):  # shown in both
            return unit, pd.Timestamp(wave), added, studies
    raise AssertionError("no unit-wave large enough to build the two releases")


def test_two_releases_no_longer_give_away_the_added_person(one_more_person):
    """``n₂ m₂ − n₁ m₁`` on the published unit × wave table and on the organisation-wide
    figures of the internal-measures page: exact without noise, off by noise of scale
    ``range / ε`` with it (about ±100 points on a 0–100 scale at ε = 1)."""
    unit, wave, added, studies = one_more_person
    person = load_dataset(studies["after"][0]).employee_survey
    person = person[person["respondent_id"] == added["respondent_id"].iloc[0]]
    person = person[person["wave"] == wave]
    errors, steps = {}, {}
    # the unit × wave table, as written to unit_wave.csv, and before noise
    exact = {}
    for name, (_, _, results, files) in studies.items():
        predictors = [c for c in files["unit_wave"].columns if c.endswith(SCALE_INDEX_SUFFIX)]
        exact[name] = suppressed_unit_wave(results.panel, predictors, MIN)
    for scale in DEFAULT_INSTRUMENT.scales:
        column = f"{scale.name}_index"
        count = "n_respondents" if scale.name == "engagement" else f"{scale.name}_respondents"
        truth = float(respondent_scale_score(person, scale).iloc[0])

        def recovered(tables, count=count, column=column):
            rows = [t[(t["unit_id"] == unit) & (t["wave"] == wave)].iloc[0] for t in tables]
            (n1, m1), (n2, m2) = ((r[count], r[column]) for r in rows)
            assert n2 == n1 + 1
            return n2 * m2 - n1 * m1

        assert recovered([exact["before"], exact["after"]]) == pytest.approx(truth, abs=1e-9)
        published = [studies[name][3]["unit_wave"] for name in ("before", "after")]
        errors[f"unit_wave {column}"] = recovered(published) - truth
        steps[f"unit_wave {column}"] = _half_step(scale)
    # the organisation-wide figures, through the function the page calls
    figures, statistics = {}, {}
    for name, (_, dataset, _, files) in studies.items():
        figures[name] = internal.organisation_figures(dataset, files["unit_wave"], PARAMETERS)
        statistics[name] = internal.organisation_statistics(
            dataset.employee_survey, files["unit_wave"], DEFAULT_INSTRUMENT, MIN
        )
    poc = DEFAULT_INSTRUMENT.scale("points_of_connection")
    for item in poc.items:
        single = type(poc)(item, (item,), poc.low, poc.high)
        truth = float(respondent_scale_score(person, single).iloc[0])
        for source, column in ((statistics, "mean"), (figures, "mean")):
            cards = [
                source[n]["scorecard"].set_index("item").loc[item] for n in ("before", "after")
            ]
            assert cards[1]["n"] == cards[0]["n"] + 1
            value = cards[1]["n"] * cards[1][column] - cards[0]["n"] * cards[0][column]
            if source is statistics:
                assert value == pytest.approx(truth, abs=1e-6)
            else:
                errors[f"scorecard {item}"], steps[f"scorecard {item}"] = value - truth, 12.5
    effort = float(person["ees"].iloc[0])
    promoter = int(person["enps"].iloc[0] >= 9) - int(person["enps"].iloc[0] <= 6)
    for key, field, truth, step in (
        ("effort", "mean", effort, 0.5),
        ("enps", "nps", 100 * promoter, 50),
    ):
        for source in (statistics, figures):
            first, second = (
                source[n][key].iloc[0] if source is statistics else source[n][key]
                for n in ("before", "after")
            )
            value = second["n"] * second[field] - first["n"] * first[field]
            if source is statistics:
                assert value == pytest.approx(truth, abs=1e-6)
            else:
                errors[key], steps[key] = value - truth, step
    # with noise: no figure gives the answer exactly, and a rounding to the answer grid hits
    # only by chance (for ε = 1 the chance is 1–12% per figure, see the next test)
    assert all(abs(e) > 1e-6 for e in errors.values()), errors
    hits = [k for k, e in errors.items() if abs(e) < steps[k]]
    # Each of the 14 figures lands within half a grid step of the truth with chance at most
    # 12% (Laplace noise of scale ~100 against a step of 12.5; the others less): the number of
    # such lucky hits is at most Binomial(14, 0.12), which exceeds 5 with chance under 1%.
    assert len(hits) <= 5, (hits, errors)
    assert len(hits) < len(errors) / 2, (hits, errors)


def _pair_tables(answers: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A one-unit display table and its panel, as ``released_unit_wave`` receives them."""
    n = len(answers)
    mean = float(answers.mean())
    table = pd.DataFrame(
        {
            "unit_id": ["U"],
            "wave": [pd.Timestamp("2024-03-31")],
            "n_respondents": [n],
            "engagement_index": [mean],
            "engagement_noise_var": [np.nan],
        }
    )
    # the pooled within variance rests on many other cells; one large stand-in cell here
    panel = pd.DataFrame({"n_respondents": [n, 2000], "engagement_within_ss": [0.0, 4e5]})
    return table, panel


def test_over_many_pairs_the_recovery_error_has_the_predicted_laplace_spread():
    """1,500 pairs of releases, before and after one person joins a unit of five.

    The recovery error ``6 m̃₂ − 5 m̃₁ − x`` is ``(100/ε)(L₂ − L₁)`` for independent standard
    Laplace ``L``: SD ``200/ε`` (the SD of a sample SD of this distribution, kurtosis 4.5, has a
    relative error of about 0.94/√N, 2.4% here; four of them are allowed), and a recovered
    score lands within the answer grid's half-step ``t`` (2.5 points) with probability
    ``1 − (1 + τ/2) e^{−τ}``, ``τ = t ε / 100``: 1.25% at ε = 1. Keys come from each pair's
    data, as ``data_secret`` derives them. Without noise every pair is recovered exactly; with
    a draw that depends on the figure's name alone, shared by both releases, the noise cancels
    and every pair is recovered exactly too (shown on the first hundred).
    """
    rng = np.random.default_rng(5)
    epsilon, pairs = 1.0, 1500
    errors, shared, exact = np.empty(pairs), np.full(pairs, np.nan), np.empty(pairs)
    for i in range(pairs):
        people = rng.integers(0, 21, size=6) * 5.0  # engagement scores on the 5-point grid
        releases = []
        for size in (5, 6):
            answers = people[:size]
            table, panel = _pair_tables(answers)
            key = hashlib.sha256(b"pair" + answers.tobytes()).digest()
            releases.append(released_unit_wave(table, panel, MIN, Release(epsilon, key)))
        (m1, m2) = (r["engagement_index"].iloc[0] for r in releases)
        errors[i] = 6 * m2 - 5 * m1 - people[5]
        exact[i] = 6 * people.mean() - 5 * people[:5].mean() - people[5]
        if i >= 100:
            continue
        same = Release(epsilon, hashlib.sha256(b"the figure's name and the seed").digest())
        (s1, s2) = (
            released_unit_wave(*_pair_tables(people[:size]), MIN, same)["engagement_index"].iloc[0]
            for size in (5, 6)
        )
        shared[i] = 6 * s2 - 5 * s1 - people[5]
    assert np.abs(exact).max() < 1e-9
    assert np.nanmax(np.abs(shared)) < 1e-9  # the cancellation the secret prevents
    assert errors.std() == pytest.approx(200 / epsilon, rel=4 * 0.94 / np.sqrt(pairs))
    tau = 2.5 * epsilon / 100
    chance = 1 - (1 + tau / 2) * np.exp(-tau)
    hits = (np.abs(errors) < 2.5).mean()
    assert abs(hits - chance) < 4 * np.sqrt(chance * (1 - chance) / pairs)


def test_same_staff_data_give_the_same_noise_and_any_staff_byte_fresh_noise(
    small_study_master, tmp_path
):
    """Noise is keyed to the staff-side data (``privacy.data_secret``): the same inputs give
    byte-identical releases; a refreshed customer export leaves every employee figure and its
    noise as it was (fresh noise there would hand out independent copies of the same figure,
    which average out); one changed staff answer redraws the noise of every shown figure."""
    first, second = (tmp_path / "one", tmp_path / "two")
    for out in (first, second):
        dataset = load_dataset(small_study_master)
        old = estimate_all(dataset, PARAMETERS)
        write_tables(_with_findings(old.tables()), out)
        figures = internal.organisation_figures(dataset, read_results(out)["unit_wave"], PARAMETERS)
        (out / "organisation.txt").write_text(repr({k: v.to_dict() for k, v in figures.items()}))
    for name in ("unit_wave.csv", "nps_by_engagement_quartile.csv", "organisation.txt"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    shown = old.unit_wave["engagement_index"].notna()
    assert shown.sum() > 100
    predictors = [c for c in old.unit_wave.columns if c.endswith(SCALE_INDEX_SUFFIX)]

    # one byte of a customer file: NPS moves, the employee figures and their noise do not
    customer_change = Path(shutil.copytree(small_study_master, tmp_path / "customer"))
    customers = _read(customer_change, "customers")
    customers.loc[0, "since"] = (
        pd.Timestamp(customers.loc[0, "since"]) - pd.Timedelta(days=1)
    ).strftime("%Y-%m-%d")
    _write(customer_change, "customers", customers)
    new = estimate_all(load_dataset(customer_change), PARAMETERS)
    employee = ["engagement_index", *predictors]
    pd.testing.assert_frame_equal(old.unit_wave[employee], new.unit_wave[employee])
    assert privacy.data_secret(load_dataset(customer_change)) == privacy.data_secret(
        load_dataset(small_study_master)
    )

    # one staff answer in a unit-wave too small to show: every shown figure is the same before
    # noise, and its noise is new
    staff_change = Path(shutil.copytree(small_study_master, tmp_path / "staff"))
    survey = _read(staff_change, "employee_survey")
    hidden = old.panel[old.panel["n_respondents"] < MIN].iloc[0]
    row = survey.index[
        (survey["unit_id"] == hidden["unit_id"])
        & (survey["wave"] == hidden["wave"].strftime("%Y-%m-%d"))
        & (survey["eng_1"] != "")
    ][0]
    survey.loc[row, "eng_1"] = "1" if survey.loc[row, "eng_1"] != "1" else "2"
    _write(staff_change, "employee_survey", survey)
    new = estimate_all(load_dataset(staff_change), PARAMETERS)
    pd.testing.assert_frame_equal(
        suppressed_unit_wave(old.panel, predictors, MIN)[shown.to_numpy()][employee],
        suppressed_unit_wave(new.panel, predictors, MIN)[shown.to_numpy()][employee],
    )
    assert (
        old.unit_wave.loc[shown, "engagement_index"] != new.unit_wave.loc[shown, "engagement_index"]
    ).all()
    assert privacy.data_secret(load_dataset(staff_change)) != privacy.data_secret(
        load_dataset(small_study_master)
    )


# --- per-item figures on the item's own count ---------------------------------------------------


def test_an_item_answered_by_one_person_in_a_shown_unit_wave_stays_out(
    small_study_master, tmp_path
):
    """A unit-wave with enough people on the points-of-connection scale but one answer to one
    of its items: that answer enters no published figure of the item. Computed the old way (on
    the scale's count), two reports, with and without that one answer, differ by exactly it."""
    directory = Path(shutil.copytree(small_study_master, tmp_path / "study"))
    survey = _read(directory, "employee_survey")
    shown = estimate_all(load_dataset(directory), PARAMETERS).unit_wave
    shown = shown[shown["points_of_connection_index"].notna()]
    sizes = shown.set_index(["unit_id", shown["wave"].dt.strftime("%Y-%m-%d")])
    unit, wave = sizes.index[sizes["points_of_connection_respondents"] >= MIN + 3][0]
    cell = (survey["unit_id"] == unit) & (survey["wave"] == wave)
    survey.loc[cell, "poc_listening"] = ""
    answerer = survey.index[cell][0]
    without = Path(shutil.copytree(directory, tmp_path / "without"))
    _write(without, "employee_survey", survey)
    survey.loc[answerer, "poc_listening"] = "1"
    _write(directory, "employee_survey", survey)

    def item(path: Path, old: bool) -> pd.Series:
        dataset = load_dataset(path)
        unit_wave = estimate_all(dataset, PARAMETERS).unit_wave
        if old:
            responses = internal.shown_responses(
                dataset.employee_survey, unit_wave, "points_of_connection"
            )
            card = scales.points_of_connection_scorecard(responses, DEFAULT_INSTRUMENT)
        else:
            card = internal.organisation_statistics(
                dataset.employee_survey, unit_wave, DEFAULT_INSTRUMENT, MIN
            )["scorecard"]
        return card.set_index("item").loc["poc_listening"]

    old_with, old_without = item(directory, True), item(without, True)
    assert old_with["n"] == old_without["n"] + 1  # the old way: the one answer is in
    leaked = old_with["n"] * old_with["mean"] - old_without["n"] * old_without["mean"]
    assert leaked == pytest.approx(0.0, abs=1e-6)  # answer 1 of 1–5 scores 0: given away
    pd.testing.assert_series_equal(item(directory, False), item(without, False))
    dataset = load_dataset(directory)
    unit_wave = estimate_all(dataset, PARAMETERS).unit_wave
    allowed = internal.shown_item_cells(
        dataset.employee_survey, unit_wave, DEFAULT_INSTRUMENT.scale("points_of_connection"), MIN
    )
    assert not allowed["poc_listening"][answerer]
    assert allowed["poc_valued"][dataset.employee_survey.index[cell]].all()  # others stay
    # reliability drops the unit-wave too: alpha and r_wg use every item of the scale
    reliability = internal.scale_reliability(dataset, 0.95, unit_wave, MIN).set_index("scale")
    scale_only = internal.scale_reliability(dataset, 0.95, unit_wave).set_index("scale")
    assert (
        reliability.loc["points_of_connection", "n_responses"]
        < scale_only.loc["points_of_connection", "n_responses"]
    )


# --------------------------------------------------------------------------------------------
# Internal service (contract v2): the provider scorecards and the network, attacked


from analysis.data.contract import POINTS_OF_CONNECTION  # noqa: E402
from analysis.models.service_release import (  # noqa: E402
    NETWORK_COLUMNS,
    SCORECARD_COLUMNS,
    rater_cells,
    released_network,
    released_scorecards,
)

SERVICE_KEYS = ["provider_unit_id", "wave"]
CELL_KEYS = ["rater_unit_id", "provider_unit_id", "wave"]


@pytest.fixture(scope="module")
def service_table() -> pd.DataFrame:
    """A small synthetic v2 study's ratings, as the loader types them."""
    from analysis.data.synth import StudyDesign, generate

    study = generate(StudyDesign(seed=11, n_units=40, n_waves=3, internal_service=True))
    return _typed_service(study.tables["internal_service"])


def _typed_service(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in ("respondent_id", "rater_unit_id", "provider_unit_id"):
        frame[column] = frame[column].astype("string")
    frame["wave"] = pd.to_datetime(frame["wave"]).astype("datetime64[ns]")
    for column in (*POINTS_OF_CONNECTION, "internal_nps"):
        if column in frame:
            frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    return frame.reset_index(drop=True)


def _mirrored_ratings(table: pd.DataFrame, chosen: pd.Series) -> pd.DataFrame:
    """The chosen ratings turned around (x → 6 − x, NPS 10 − x): other answers, same people."""
    table = table.copy()
    for column in POINTS_OF_CONNECTION:
        table.loc[chosen, column] = 6 - table.loc[chosen, column]
    table.loc[chosen, "internal_nps"] = 10 - table.loc[chosen, "internal_nps"]
    return table


def _exact_service(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (
        released_scorecards(table, MIN, None),
        released_network(table, MIN, None),
    )


def test_a_hidden_providers_ratings_change_nothing_in_either_file_any_wave(service_table):
    """Across waves and totals: mirror every rating of each provider-wave below the minimum.
    Neither file moves before noise (no all-waves total, rank, change or network value uses
    it); the provider-waves stay listed by count only."""
    sizes = service_table.groupby(SERVICE_KEYS)["respondent_id"].nunique()
    hidden = sizes[sizes < MIN]
    assert len(hidden) >= 3 and hidden.index.get_level_values("wave").nunique() >= 2
    chosen = service_table.set_index(SERVICE_KEYS).index.isin(hidden.index)
    before = _exact_service(service_table)
    after = _exact_service(_mirrored_ratings(service_table, pd.Series(chosen)))
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)
    scores = before[0].set_index(SERVICE_KEYS)
    shown_values = [
        c
        for c in SCORECARD_COLUMNS
        if c.endswith(("_index", "nps", "_conf_low", "_conf_high"))
        or c in ("conf_low", "conf_high", "rank", "shrunken", "change")
    ]
    assert scores.loc[hidden.index, shown_values].isna().all(axis=None)
    assert (scores.loc[hidden.index, "n_raters"] == hidden).all()
    # and the network names none of them
    network = before[1].set_index(SERVICE_KEYS)
    assert not network.index.isin(hidden.index).any()


def test_a_small_rater_group_is_never_exposed_by_the_network(service_table):
    """A rater unit with fewer than the minimum raters of a provider: its ratings move the
    provider's scorecard (a group of at least the minimum) but no network value, and the
    scorecard total minus the shown network rows never isolates fewer than the minimum."""
    cells = rater_cells(service_table)
    providers = cells.groupby(SERVICE_KEYS)["n_raters"].transform("sum")
    small = cells[(cells["n_raters"] < MIN) & (providers >= MIN)]
    assert len(small) >= 5
    chosen = service_table.set_index(CELL_KEYS).index.isin(small.set_index(CELL_KEYS).index)
    scores, network = _exact_service(service_table)
    _, moved = _exact_service(_mirrored_ratings(service_table, pd.Series(chosen)))
    # (the intervals use the pooled within-provider variance, a figure over provider-waves of
    # at least the minimum that the scorecards publish anyway: it may move, the values not)
    values = [c for c in NETWORK_COLUMNS if c not in ("conf_low", "conf_high")]
    pd.testing.assert_frame_equal(network[values], moved[values])
    assert (network["n_raters"] >= MIN).all()
    # the attacker's equations: every provider-wave total is published (the scorecard); the
    # network shows some cells; every cell not listed or suppressed is unknown
    shown = cells.merge(
        network.loc[~network["suppressed"], CELL_KEYS], on=CELL_KEYS, how="left", indicator=True
    )
    board = cells.assign(
        service_index=np.where(shown["_merge"] == "both", cells["service_index"], np.nan),
        suppressed=(shown["_merge"] != "both").to_numpy(),
    )
    assert_no_disclosure(
        board,
        count="n_raters",
        values=["service_index"],
        min_group_size=MIN,
        parents=[tuple(SERVICE_KEYS)],
        # the published totals: every scorecard shown (a hidden one is no equation)
        totals={tuple(SERVICE_KEYS): scores[[*SERVICE_KEYS, "suppressed"]]},
    )


def test_without_complementary_suppression_the_network_would_give_a_rater_away():
    """By hand: IT has 8 raters from A (all 4s: 75) and 3 from B (all 2s: 25), so its
    scorecard is (8·75 + 3·25) / 11. Shown, A's 75 would give B's mean as
    (11 · scorecard − 8 · 75) / 3 = 25 exactly: A's row is hidden as complementary."""
    rows = [{"respondent_id": f"a{i}", "rater_unit_id": "A", "value": 4} for i in range(8)] + [
        {"respondent_id": f"b{i}", "rater_unit_id": "B", "value": 2} for i in range(3)
    ]
    table = _typed_service(
        pd.DataFrame(
            [
                {
                    "respondent_id": r["respondent_id"],
                    "rater_unit_id": r["rater_unit_id"],
                    "provider_unit_id": "IT",
                    "wave": "2024-03-31",
                    **dict.fromkeys(POINTS_OF_CONNECTION, r["value"]),
                    "internal_nps": 8,
                }
                for r in rows
            ]
        )
    )
    scores, network = _exact_service(table)
    mean = (8 * 75 + 3 * 25) / 11
    assert scores.loc[0, "service_index"] == pytest.approx(mean)
    # each point of connection's interval: its within variance pooled over shown provider-waves
    from scipy import stats as scipy_stats

    pooled = (8 * (75 - mean) ** 2 + 3 * (25 - mean) ** 2) / 10
    half = scipy_stats.t.ppf(0.975, 10) * np.sqrt(pooled / 11)
    for item in POINTS_OF_CONNECTION:
        assert scores.loc[0, f"{item}_conf_low"] == pytest.approx(mean - half)
        assert scores.loc[0, f"{item}_conf_high"] == pytest.approx(mean + half)
    assert list(network["rater_unit_id"]) == ["A"]  # B's 3 raters are not listed at all
    assert network.loc[0, "n_raters"] == 8 and network.loc[0, "suppressed"]
    assert (
        pd.isna(network.loc[0, "service_index"])
        and "complementary" in network.loc[0, "suppression"]
    )
    # with a fourth rater unit of 5 (C), A and C can show: the hidden remainder is B alone,
    # under the minimum, so one of them must still hide; with B at 5 all three show
    bigger = pd.concat(
        [
            table,
            table.iloc[:5]
            .assign(respondent_id=[f"c{i}" for i in range(5)], rater_unit_id="C")
            .pipe(_typed_service),
        ],
        ignore_index=True,
    )
    _, network = _exact_service(bigger)
    assert network["suppressed"].sum() >= 1
    assert set(network["rater_unit_id"]) == {"A", "C"}


def test_the_service_files_carry_no_respondent_and_only_large_groups(tmp_path):
    """``estimate`` on a v2 study: both files written, no respondent id, no value over fewer
    than the minimum; on the same study without the table neither file exists."""
    from analysis.data.synth import StudyDesign, generate, truth_json
    from analysis.report.page import publish_results

    study = generate(StudyDesign(seed=5, n_units=40, n_waves=3, internal_service=True))
    data = write_tables(
        study.tables, tmp_path / "v2", extra_files={"truth.json": truth_json(study)}
    )
    tables, _ = publish_results(data, tmp_path / "results", PARAMETERS)
    written = read_results(tmp_path / "results")
    assert {"internal_service", "internal_service_network"} <= set(written)
    scores, network = written["internal_service"], written["internal_service_network"]
    assert list(scores.columns) == list(SCORECARD_COLUMNS)
    assert list(network.columns) == list(NETWORK_COLUMNS)
    shown = ~scores["suppressed"].astype(bool)
    assert (scores.loc[shown, "n_raters"] >= MIN).all()
    assert scores.loc[~shown, ["service_index", "internal_nps", "rank"]].isna().all(axis=None)
    for item in POINTS_OF_CONNECTION:
        small = scores[f"{item}_n"] < MIN
        assert scores.loc[small, f"{item}_index"].isna().all()
    assert (network["n_raters"] >= MIN).all()
    ids = set(study.tables["internal_service"]["respondent_id"].astype(str))
    for name in ("internal_service", "internal_service_network"):
        text = (tmp_path / "results" / f"{name}.csv").read_text()
        assert not set(re.split(r"[^0-9A-Za-z_-]+", text)) & ids, name
    # a v1 copy of the same study: no service file at all
    v1 = Path(shutil.copytree(data, tmp_path / "v1"))
    (v1 / "internal_service.csv").unlink()
    publish_results(v1, tmp_path / "results-v1", PARAMETERS)
    assert not list((tmp_path / "results-v1").glob("internal_service*"))
