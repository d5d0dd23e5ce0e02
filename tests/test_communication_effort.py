"""Communication effort appears everywhere a scale does (issue 15, item 3).

The contract's optional ``communication_effort`` scale (one item, ``comm_effort``, 1–7) is
measured when the survey has answers to it. On a synthetic study that has it, these tests follow
it through everything a report shows of a scale: the reliability and aggregation table, the
unit × wave table, the drivers, the focus matrix and the executive page's driver sentence.
The heat map shows engagement only, for every instrument, so no other scale is expected there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis.data.load import dataset_from_tables
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign, generate
from analysis.measures import internal
from analysis.models.estimate import estimate_all
from analysis.report import action, sentences

TERM = "communication_effort_index"
#: Small enough to fit in seconds, large enough for the drivers' bootstrap to run
DESIGN = StudyDesign(n_units=80, n_waves=4, internal_service=True, seed=11)


@pytest.fixture(scope="module")
def study():
    tables = generate(DESIGN).tables
    dataset = dataset_from_tables(tables)
    return dataset, estimate_all(dataset, Parameters(bootstrap_draws=100))


def test_the_scale_is_measured_with_its_reliability_and_aggregation_checks(study):
    dataset, results = study
    assert "communication_effort" in [s.name for s in dataset.instrument.scales]
    reliability = internal.scale_reliability(dataset, 0.95, results.unit_wave, 5).set_index("scale")
    row = reliability.loc["communication_effort"]
    assert row["label"] == "Communication effort"
    assert row["n_items"] == 1
    # a one-item scale has no alpha, but its agreement and reliability of unit means are known
    assert np.isnan(row["alpha"])
    for column in ("icc1", "icc2", "median_rwg"):
        assert 0 <= row[column] <= 1, column
    assert row["n_responses"] > 0
    assert isinstance(row["verdict"], str) and row["verdict"]


def test_the_scale_has_a_released_unit_wave_index_and_a_driver_weight(study):
    _, results = study
    shown = results.unit_wave[~results.unit_wave["suppressed"].astype(bool)]
    assert shown[TERM].notna().any()
    assert results.unit_wave.loc[results.unit_wave["suppressed"].astype(bool), TERM].isna().all()
    drivers = results.drivers.set_index("term")
    assert TERM in drivers.index
    assert 0 < drivers.loc[TERM, "share"] < 100
    assert drivers.loc[TERM, "share_conf_low"] <= drivers.loc[TERM, "share"]


def test_the_focus_matrix_places_the_scale(study):
    _, results = study
    focus = action.focus_table(results.unit_wave, results.drivers).set_index("term")
    row = focus.loc[TERM]
    assert row["label"] == "Communication effort"
    assert row["score_low"] <= row["score"] <= row["score_high"]
    assert row["score_units"] > 0


def test_the_executive_page_names_it_when_it_leads(study):
    """The sentence names the measure with the largest significant share, whichever it is; with
    communication effort given the largest share, it is the one named first."""
    _, results = study
    drivers = results.drivers.copy()
    others = drivers["term"] != TERM
    top = drivers.loc[others].sort_values("estimate").iloc[-1]
    leading = drivers.copy()
    columns = ["estimate", "share", "share_conf_low", "share_conf_high", "significant"]
    leading.loc[~others, columns] = top[columns].to_numpy()
    leading.loc[~others, "estimate"] = top["estimate"] * 2
    leading.loc[~others, "significant"] = True
    text = sentences.drivers_sentence(leading, link_found=True)
    assert text.startswith("Of the internal measures, communication effort accounts for")
    # and from the study's own table, the leading significant measure is the one named
    significant = results.drivers[results.drivers["significant"].astype(bool)]
    if not significant.empty:
        first = significant.sort_values("estimate").iloc[-1]["term"]
        label = sentences.in_sentence(internal.SCALE_LABELS[first.removesuffix("_index")])
        assert f"Of the internal measures, {label} accounts" in sentences.drivers_sentence(
            results.drivers, link_found=True
        )


def test_without_the_item_the_scale_is_nowhere():
    tables = generate(replace(DESIGN, internal_service=False)).tables
    assert "comm_effort" not in tables["employee_survey"].columns
    dataset = dataset_from_tables(tables)
    assert "communication_effort" not in [s.name for s in dataset.instrument.scales]
    results = estimate_all(dataset, Parameters(bootstrap_draws=100))
    assert TERM not in results.unit_wave.columns
    assert TERM not in set(results.drivers["term"])
