"""Any instrument works end to end: item names come from ``instrument.yaml``, never from code.

The contract fixes the scale names (``engagement`` required, the others optional) and leaves
item names, ranges, reverse coding and thresholds free. These tests rename and rescale the items
of real datasets, write a matching ``instrument.yaml`` and run the real ``estimate`` command:

* renaming every item (``eng_1`` → ``Q1_1`` …) changes no published number;
* an instrument with engagement only is enough for every table and figure;
* hypothesis over instruments (any subset of the optional scales, random item names, ranges,
  reverse items and thresholds) ends in exit 0 or 2, never 1.

``tests/test_fuzz.py`` covers malformed instruments on the default columns; here the
instruments are well formed and the data are made to fit them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from analysis.data.contract import DEFAULT_INSTRUMENT, REQUIRED_SCALE, SCALE_NAMES
from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import Parameters
from analysis.data.results import read_results
from analysis.data.synth import generate
from analysis.measures import internal, privacy
from analysis.report import sentences
from tests.conftest import write_study
from tests.test_fuzz import BASE_PARAMETERS, FUZZ_DESIGN, PROFILE, check_run, run_cli

FIXED = ("respondent_id", "unit_id", "wave")
RESULT_TABLES = (
    "estimates.csv",
    "findings.csv",
    "drivers.csv",
    "unit_wave.csv",
    "nps_by_engagement_quartile.csv",
)


def renamed_items(instrument) -> dict[str, str]:
    """``Q<scale>_<item>`` for every item (``Q<scale>`` for a one-item scale), by old name."""
    names = {}
    for number, scale in enumerate(instrument.scales, start=1):
        for position, item in enumerate(scale.items, start=1):
            names[item] = f"Q{number}" if len(scale.items) == 1 else f"Q{number}_{position}"
    return names


def instrument_yaml(instrument, names: dict[str, str] | None = None) -> str:
    """``instrument.yaml`` text for ``instrument``, its items renamed by ``names``."""
    names = names or {}
    scales = {}
    for scale in instrument.scales:
        entry: dict = {
            "items": [names.get(i, i) for i in scale.items],
            "range": [int(scale.low), int(scale.high)],
        }
        if scale.favourable is not None:
            entry["favourable"] = float(scale.favourable)
        if scale.reverse:
            entry["reverse"] = [names.get(i, i) for i in scale.reverse]
        scales[scale.name] = entry
    return yaml.safe_dump({"scales": scales}, sort_keys=False, allow_unicode=True)


def copy_renamed(source: Path, target: Path) -> dict[str, str]:
    """Copy a dataset's tables with every item column renamed and a matching instrument file."""
    instrument = load_dataset(source).instrument
    names = renamed_items(instrument)
    target.mkdir(parents=True)
    for path in source.glob("*.csv"):
        shutil.copyfile(path, target / path.name)
    survey = pd.read_csv(source / "employee_survey.csv", dtype=str, keep_default_na=False)
    survey.rename(columns=names).to_csv(target / "employee_survey.csv", index=False)
    (target / "instrument.yaml").write_text(instrument_yaml(instrument, names), encoding="utf-8")
    return names


def released_figures(data: Path, results: Path) -> tuple[pd.DataFrame, dict]:
    """The internal-measures page's reliability table and organisation figures for a run."""
    dataset = load_dataset(data)
    unit_wave = read_results(results)["unit_wave"]
    parameters = Parameters(**BASE_PARAMETERS)
    reliability = internal.scale_reliability(
        dataset, parameters.confidence, unit_wave, parameters.min_group_size
    )
    return reliability, internal.organisation_figures(dataset, unit_wave, parameters)


# --------------------------------------------------------------------------------------------
# Renamed items give identical results


# The fuzz design with a fourth wave: 24 units, and every estimand estimable (a 12-month
# retention gap needs four quarterly waves), so no comparison is between two empty rows.
RENAMING_DESIGN = replace(FUZZ_DESIGN, n_waves=4)


@pytest.fixture(scope="module")
def original_run(tmp_path_factory) -> tuple[Path, Path]:
    """A study with the default instrument and the results of its real ``estimate`` run."""
    root = tmp_path_factory.mktemp("original")
    study = write_study(root / "study", RENAMING_DESIGN)
    parameters = root / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", study, "--out", root / "results", "--params", parameters
    )
    assert status == 0, stderr
    return study, root / "results"


def test_renamed_items_give_identical_results(original_run, tmp_path):
    """Every published table byte for byte, and the internal-measures figures, for a copy whose
    items are all renamed, against the run of the original.

    A renaming touches item names only, so the size of the study cannot matter; this ran on the
    whole sample (two sample-sized runs, 95 s in CI) and now runs on ``RENAMING_DESIGN``, whose
    every estimand has a number (asserted, so the byte comparison covers each of them).
    """
    study, original = original_run
    names = copy_renamed(study, tmp_path / "renamed")
    assert {"eng_1", "enps", "ees"} <= set(names) and "Q1_1" in names.values()
    parameters = tmp_path / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate",
        "--data",
        tmp_path / "renamed",
        "--out",
        tmp_path / "renamed_results",
        "--params",
        parameters,
    )
    assert status == 0, stderr

    estimates = pd.read_csv(original / "estimates.csv")
    assert estimates["estimate"].notna().all(), estimates.loc[estimates["estimate"].isna()]
    assert len(pd.read_csv(original / "drivers.csv")) > 1
    for name in RESULT_TABLES:
        assert (original / name).stat().st_size > 0, name
        renamed_bytes = (tmp_path / "renamed_results" / name).read_bytes()
        assert renamed_bytes == (original / name).read_bytes(), name
    # the published unit × wave table is keyed by scale, so no item name can reach it
    header = pd.read_csv(tmp_path / "renamed_results" / "unit_wave.csv", nrows=0).columns
    assert not set(header) & (set(names) | set(names.values()))

    reliability, figures = released_figures(study, original)
    reliability_renamed, renamed = released_figures(
        tmp_path / "renamed", tmp_path / "renamed_results"
    )
    pd.testing.assert_frame_equal(reliability_renamed, reliability)
    assert set(renamed) == set(figures) == {"scorecard", "effort", "enps"}
    numbers = figures["scorecard"].drop(columns=["item", "label"])
    pd.testing.assert_frame_equal(renamed["scorecard"].drop(columns=["item", "label"]), numbers)
    assert list(renamed["scorecard"]["item"]) == [names[i] for i in figures["scorecard"]["item"]]
    pd.testing.assert_series_equal(renamed["effort"], figures["effort"])
    pd.testing.assert_series_equal(renamed["enps"], figures["enps"])
    assert sentences.employee_figures_html(renamed) == sentences.employee_figures_html(figures)


def test_the_release_is_keyed_by_answers_not_item_names(small_study, tmp_path):
    original = load_dataset(small_study)
    copy_renamed(small_study, tmp_path / "renamed")
    renamed = load_dataset(tmp_path / "renamed")
    assert renamed.instrument.items != original.instrument.items
    assert privacy.data_secret(renamed) == privacy.data_secret(original)
    # what the analysis reads from the instrument still changes the noise: a reverse-coded item
    text = (tmp_path / "renamed" / "instrument.yaml").read_text(encoding="utf-8")
    flipped = yaml.safe_load(text)
    flipped["scales"]["engagement"]["reverse"] = ["Q1_2"]
    (tmp_path / "renamed" / "instrument.yaml").write_text(yaml.safe_dump(flipped))
    assert privacy.data_secret(load_dataset(tmp_path / "renamed")) != privacy.data_secret(original)


# --------------------------------------------------------------------------------------------
# Engagement alone is a complete instrument


def test_an_instrument_with_engagement_only_runs_end_to_end(small_study, tmp_path):
    survey = pd.read_csv(small_study / "employee_survey.csv", dtype=str, keep_default_na=False)
    engagement = DEFAULT_INSTRUMENT.scale(REQUIRED_SCALE).items
    names = {item: f"E{n}" for n, item in enumerate(engagement, start=1)}
    survey = survey[[*FIXED, *engagement]].rename(columns=names)
    survey.to_csv(small_study / "employee_survey.csv", index=False)
    (small_study / "instrument.yaml").write_text(
        "scales:\n  engagement:\n    items: [E1, E2, E3, E4, E5]\n    range: [1, 5]\n"
        "    reverse: [E3]\n",
        encoding="utf-8",
    )
    parameters = tmp_path / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", small_study, "--out", tmp_path / "out", "--params", parameters
    )
    assert status == 0, stderr

    results = read_results(tmp_path / "out")
    assert list(results["drivers"]["term"]) == ["engagement_index"]
    share = results["drivers"][["share", "share_conf_low", "share_conf_high"]].to_numpy()
    assert share == pytest.approx(np.full((1, 3), 100.0))
    others = [f"{s}_index" for s in SCALE_NAMES if s != REQUIRED_SCALE]
    assert not set(others) & set(results["unit_wave"].columns)
    reliability, figures = released_figures(small_study, tmp_path / "out")
    assert list(reliability["scale"]) == [REQUIRED_SCALE]
    assert reliability.at[0, "n_items"] == 5 and np.isfinite(reliability.at[0, "alpha"])
    assert figures == {}
    assert "no organisation-wide figures" in sentences.employee_figures_html(figures)


def test_the_scorecard_of_an_instrument_without_points_of_connection_is_empty(small_study):
    from analysis.data.contract import Instrument
    from analysis.measures.scales import SCORECARD_COLUMNS, points_of_connection_scorecard

    survey = load_dataset(small_study).employee_survey
    only = Instrument((DEFAULT_INSTRUMENT.scale(REQUIRED_SCALE),))
    table = points_of_connection_scorecard(survey, only)
    assert table.empty and list(table.columns) == list(SCORECARD_COLUMNS)
    assert len(points_of_connection_scorecard(survey)) == 6


def test_effort_and_enps_follow_their_own_items_range_and_threshold(small_study, tmp_path):
    """Two effort items on 1–10 and an eNPS item called Q9: both figures and their sentence."""
    survey = pd.read_csv(small_study / "employee_survey.csv", keep_default_na=False, dtype=str)
    ees = pd.to_numeric(survey["ees"], errors="coerce")
    # 1–7 onto 1–10 (1 → 1, 7 → 10), twice: a reverse-keyed second item holds the mirror answer
    first = (1 + (ees - 1) * 1.5).round().astype("Int64")
    survey = survey[[*FIXED, *DEFAULT_INSTRUMENT.scale(REQUIRED_SCALE).items]].assign(
        EFF_a=first, EFF_b=11 - first, Q9=survey["enps"]
    )
    survey.to_csv(small_study / "employee_survey.csv", index=False)
    instrument = {
        "scales": {
            "engagement": {"items": [f"eng_{i}" for i in range(1, 6)], "range": [1, 5]},
            "employee_effort": {
                "items": ["EFF_a", "EFF_b"],
                "range": [1, 10],
                "reverse": ["EFF_b"],
            },
            "enps": {"items": ["Q9"], "range": [0, 10]},
        }
    }
    (small_study / "instrument.yaml").write_text(yaml.safe_dump(instrument), encoding="utf-8")
    parameters = tmp_path / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", small_study, "--out", tmp_path / "out", "--params", parameters
    )
    assert status == 0, stderr

    dataset = load_dataset(small_study)
    unit_wave = read_results(tmp_path / "out")["unit_wave"]
    exact = internal.organisation_statistics(
        dataset.employee_survey, unit_wave, dataset.instrument, Parameters().min_group_size
    )
    effort = exact["effort"].iloc[0]
    assert (effort["low"], effort["high"], effort["threshold"]) == (1, 10, 9.0)
    # the mirrored item flipped back agrees with the first, so the mean is the first's
    shown = dataset.employee_survey.loc[dataset.employee_survey["EFF_a"].notna()]
    assert 1 <= effort["mean"] <= 10 and effort["n"] > 0
    assert effort["mean"] == pytest.approx(
        shown["EFF_a"].astype(float).mean(), abs=0.5
    )  # shown cells only: close to, not exactly, the mean of every answer
    assert exact["enps"].at[0, "n"] > 0

    figures = internal.organisation_figures(dataset, unit_wave, Parameters(**BASE_PARAMETERS))
    text = sentences.employee_figures_html(figures)
    assert "on 1–10 (10 = it is easy" in text and "answered 9 or 10" in text
    assert "Employee NPS across the organisation" in text


def test_no_engagement_answer_at_all_is_a_clear_error(small_study, tmp_path):
    survey = pd.read_csv(small_study / "employee_survey.csv", dtype=str, keep_default_na=False)
    survey = survey.rename(columns={"eng_1": "Q1_1"})
    survey[list(DEFAULT_INSTRUMENT.scale(REQUIRED_SCALE).items[1:]) + ["Q1_1"]] = ""
    survey.to_csv(small_study / "employee_survey.csv", index=False)
    instrument = yaml.safe_load(instrument_yaml(DEFAULT_INSTRUMENT, {"eng_1": "Q1_1"}))
    (small_study / "instrument.yaml").write_text(yaml.safe_dump(instrument), encoding="utf-8")
    status, stderr = run_cli("estimate", "--data", small_study, "--out", tmp_path / "out")
    assert status == 2, stderr
    assert "no one answered an engagement item (Q1_1, eng_2, eng_3, eng_4, eng_5)" in stderr
    assert "employee_survey.csv" in stderr and "instrument.yaml" in stderr
    assert not (tmp_path / "out").exists()


def test_a_scale_nobody_answered_leaves_the_drivers_to_the_others(small_study, tmp_path):
    survey = pd.read_csv(small_study / "employee_survey.csv", dtype=str, keep_default_na=False)
    survey[list(DEFAULT_INSTRUMENT.scale("internal_communication").items)] = ""
    survey.to_csv(small_study / "employee_survey.csv", index=False)
    parameters = tmp_path / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", small_study, "--out", tmp_path / "out", "--params", parameters
    )
    assert status == 0, stderr
    terms = list(read_results(tmp_path / "out")["drivers"]["term"])
    assert "engagement_index" in terms and "internal_communication_index" not in terms
    assert len(terms) == len(load_dataset(small_study).instrument.scales) - 1


def test_an_empty_drivers_table_is_drawn_and_told_as_such():
    import matplotlib

    matplotlib.use("Agg")
    from analysis.models.drivers import DRIVER_COLUMNS
    from analysis.report import figures

    empty = pd.DataFrame(columns=list(DRIVER_COLUMNS))
    figure = figures.driver_importance(empty, {})
    shown = [t.get_text() for axes in figure.axes for t in axes.texts]
    assert any("could not be estimated" in t for t in shown)
    assert "could not be estimated" in sentences.drivers_sentence(empty)


# --------------------------------------------------------------------------------------------
# Hypothesis over instruments and data that fit them

OPTIONAL_SCALES = [s for s in SCALE_NAMES if s != REQUIRED_SCALE]
# Where each scale's answers come from in a synthetic study (scales it does not generate borrow
# another scale's), and that scale's range.
SOURCES = {scale.name: (scale.items, scale.low, scale.high) for scale in DEFAULT_INSTRUMENT.scales}
ITEM_NAMES = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True),
    st.sampled_from(["Q1_1", "Q9", "enps", "ees", "eng_1", "été", "Q 1", "1", "x" * 200]),
    # free text, within the contract's item-name rules (data/README.md): printable, no spaces at
    # either end, no spreadsheet formula start
    st.text(min_size=1, max_size=8).filter(
        lambda t: t == t.strip() and t.isprintable() and t.lstrip("'")[:1] not in "=+-@"
    ),
)


@st.composite
def instrument_and_data(draw) -> tuple[dict, list[dict]]:
    """A well-formed instrument and, per scale, how its data are made from a study's answers."""
    optional = draw(st.lists(st.sampled_from(OPTIONAL_SCALES), unique=True))
    names = draw(st.permutations([REQUIRED_SCALE, *optional]))
    sizes = [draw(st.integers(1, 6)) for _ in names]
    items = draw(
        st.lists(ITEM_NAMES, min_size=sum(sizes), max_size=sum(sizes), unique=True).filter(
            lambda chosen: not set(chosen) & set(FIXED)
        )
    )
    scales, plans, start = {}, [], 0
    for name, size in zip(names, sizes, strict=True):
        own = items[start : start + size]
        start += size
        low = draw(st.integers(-3, 5))
        high = draw(st.integers(low + 1, low + 12))
        if name == "enps":  # the contract fixes eNPS on 0–10 (its promoter cut-offs)
            low, high = 0, 10
        entry: dict = {"items": own, "range": [low, high]}
        if draw(st.booleans()):
            entry["favourable"] = draw(st.one_of(st.integers(low, high), st.floats(low, high)))
        if draw(st.booleans()):
            entry["reverse"] = draw(st.lists(st.sampled_from(own), unique=True))
        scales[name] = entry
        source = SOURCES.get(name, SOURCES["employee_effort"])
        plans.append(
            {
                "items": own,
                "low": low,
                "high": high,
                "source": source,
                # a whole item left blank, or an optional scale nobody answered (no engagement
                # answer at all has its own test)
                "blank": draw(
                    st.sampled_from(
                        ["none", "none", "one item"]
                        + (["every item"] if name != REQUIRED_SCALE else [])
                    )
                ),
                "missing_share": draw(st.sampled_from([0.0, 0.1, 0.6])),
            }
        )
    return {"scales": scales}, plans


def fitted_survey(survey: pd.DataFrame, plans: list[dict], seed: int) -> pd.DataFrame:
    """The study's survey with each planned scale's items made from its source answers."""
    rng = np.random.default_rng(seed)
    columns = {c: survey[c] for c in FIXED}
    for plan in plans:
        source_items, source_low, source_high = plan["source"]
        for position, item in enumerate(plan["items"]):
            answers = survey[source_items[position % len(source_items)]].astype("Float64")
            share = (answers - source_low) / (source_high - source_low)
            values = (plan["low"] + share * (plan["high"] - plan["low"])).round().astype("Int64")
            values = values.mask(pd.Series(rng.random(len(values)) < plan["missing_share"]))
            if plan["blank"] == "every item" or (plan["blank"] == "one item" and position == 0):
                values = pd.Series(pd.NA, index=values.index, dtype="Int64")
            columns[item] = values
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[dict, Path]:
    """A small study's tables, and the results folder an earlier successful run wrote."""
    tables = generate(FUZZ_DESIGN).tables
    root = tmp_path_factory.mktemp("instruments")
    study = write_tables(tables, root / "study", kind="dataset")
    parameters = root / "params.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", study, "--out", root / "results", "--params", parameters
    )
    assert status == 0, stderr
    return tables, root / "results"


# A handful of fixed examples keep the suite fast; `make fuzz` searches many more. Each example
# is a full estimate, so shrinking a failure would take minutes: the suite reports it unshrunk.
FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
EXAMPLES = PROFILE.max_examples if FUZZING else 5
PHASES = tuple(Phase) if FUZZING else (Phase.explicit, Phase.reuse, Phase.generate)


@settings(PROFILE, max_examples=EXAMPLES, phases=PHASES)
@given(drawn=instrument_and_data(), seed=st.integers(0, 2**16))
def test_any_well_formed_instrument_ends_in_a_result_or_a_clear_error(synthetic, drawn, seed):
    tables, previous = synthetic
    instrument, plans = drawn
    survey = fitted_survey(tables["employee_survey"], plans, seed)
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        study = write_tables(
            {**tables, "employee_survey": survey},
            workdir / "study",
            kind="dataset",
            extra_files={
                "instrument.yaml": yaml.safe_dump(instrument, allow_unicode=True, sort_keys=False)
            },
        )
        (workdir / "run").mkdir()
        if check_run(study, previous, workdir / "run", BASE_PARAMETERS) == 0:
            # what the internal-measures page then computes from the run, item names and all
            reliability, figures = released_figures(study, workdir / "run" / "results")
            assert list(reliability["scale"]) == list(instrument["scales"])
            sentences.reliability_table_html(reliability)
            sentences.employee_figures_html(figures)
            if "scorecard" in figures:
                assert list(figures["scorecard"]["item"]) == list(
                    instrument["scales"]["points_of_connection"]["items"]
                )
                sentences.points_of_connection_title(figures["scorecard"])


@pytest.mark.slow
def test_renamed_items_give_the_same_pages_word_for_word(hostile_study, run_dir, tmp_path):
    """The pages where item names could leak in (internal measures, data and coverage), rendered
    for a copy whose items are all renamed: the same sections, the same sentences, the same
    numbers as the shared report of the original (``conftest.report_root``)."""
    import re

    from analysis.report.build import PAGES, build_report
    from tests.conftest import REPORT_PARAMETERS

    renamed = tmp_path / "renamed"
    copy_renamed(hostile_study, renamed)
    shutil.copyfile(hostile_study / "units.csv", renamed / "units.csv")
    chosen = tuple(p for p in PAGES if p.slug in ("internal_measures", "data_quality"))
    run = build_report(
        renamed, tmp_path / "reports", REPORT_PARAMETERS, progress=lambda _: None, pages=chosen
    )

    def main_text(path: Path) -> str:
        markup = path.read_text(encoding="utf-8")
        main = markup[markup.index("<main") : markup.index("</main>")]
        main = re.sub(r'src="data:image/png;base64,[^"]+"', "", main)  # figures: compared apart
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)).strip()

    for page in chosen:
        original = main_text(run_dir / f"{page.slug}.html")
        assert "How well do teams serve each other?" in original or page.slug != "internal_measures"
        assert main_text(run / f"{page.slug}.html") == original, page.slug
