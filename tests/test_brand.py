"""Brand alignment from both sides (issue 15, item 4): staff's ``brand_alignment`` scale against
customers' ``brand_promise`` answers (contract v2).

A small synthetic study with the chain (``StudyDesign(internal_service=True)``, which draws
``brand_promise`` with a known effect of staff brand alignment) is written once per module to
real files, so the reduction is checked in pandas and in DuckDB on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.data.engine import open_tables
from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import resolve_as_of
from analysis.data.source import open_dataset
from analysis.data.synth import StudyDesign, generate, truth_json
from analysis.measures import panel, reduction

BRAND_DESIGN = StudyDesign(
    seed=7, n_units=60, n_waves=4, median_unit_size=12, internal_service=True
)
#: The panel columns a study with brand_promise adds, and only such a study.
BRAND_COLUMNS = {
    "brand_promise",
    "brand_promise_n",
    "brand_promise_noise_var",
    "brand_promise_within_ss",
    "brand_alignment_noise_var",
    "brand_alignment_within_ss",
}


@pytest.fixture(scope="module")
def brand_study(tmp_path_factory) -> Path:
    """The small study with the chain: ``customer_nps`` holds ``brand_promise``."""
    study = generate(BRAND_DESIGN)
    directory = tmp_path_factory.mktemp("brand") / "study"
    return write_tables(study.tables, directory, extra_files={"truth.json": truth_json(study)})


@pytest.fixture(scope="module")
def without_brand(brand_study, tmp_path_factory) -> Path:
    """The same study with the ``brand_promise`` column removed (a version-1 dataset)."""
    dataset = load_dataset(brand_study)
    tables = dataset.tables()
    tables["customer_nps"] = tables["customer_nps"].drop(columns="brand_promise")
    return write_tables(tables, tmp_path_factory.mktemp("v1") / "study")


# --------------------------------------------------------------------------------------------
# The reduction


@pytest.mark.parametrize("before", [False, True])
def test_brand_promise_sums_are_the_same_in_pandas_and_duckdb(brand_study, before):
    dataset = load_dataset(brand_study)
    waves = np.sort(dataset.employee_survey["wave"].unique())
    as_of = resolve_as_of(dataset)
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, 91, before=before, as_of=as_of, brand_promise=True
    )
    with open_tables(brand_study) as tables:
        got = reduction.nps_counts_in_windows(
            tables.tables["customer_nps"], waves, 91, before=before, as_of=as_of, brand_promise=True
        )
    assert_frame_equal(got, expected, check_exact=True)
    assert (expected["brand_promise_n"] > 0).any()
    # by hand, for one cell: the answers of the unit in the window after the first wave
    answers = dataset.customer_nps
    cell = expected[expected["brand_promise_n"] > 0].iloc[0]
    low, high = (
        (cell["wave"] - pd.Timedelta(days=91), cell["wave"])
        if before
        else (cell["wave"], cell["wave"] + pd.Timedelta(days=91))
    )
    inside = answers[
        (answers["unit_id"] == cell["unit_id"])
        & (answers["responded_on"] > low)
        & (answers["responded_on"] <= min(high, as_of))
    ]["brand_promise"].dropna()
    assert cell["brand_promise_n"] == len(inside)
    assert cell["brand_promise_sum"] == inside.sum()
    assert cell["brand_promise_sumsq"] == (inside.astype("int64") ** 2).sum()


def test_the_brand_panel_is_the_same_in_pandas_and_duckdb(brand_study):
    loaded = load_dataset(brand_study)
    expected = panel.unit_wave_panel(loaded, 91, resolve_as_of(loaded))
    engine = open_dataset(brand_study)
    try:
        got = panel.unit_wave_panel(engine, 91, resolve_as_of(engine))
    finally:
        engine.customer_tables.close()
    assert_frame_equal(got, expected, check_exact=True)
    assert set(expected.columns) >= BRAND_COLUMNS
    assert "brand_promise_sum" not in expected.columns


def test_the_brand_promise_index_and_its_noise_by_hand(brand_study):
    loaded = load_dataset(brand_study)
    table = panel.unit_wave_panel(loaded, 91, resolve_as_of(loaded))
    answered = table[table["brand_promise_n"] > 0]
    answers = loaded.customer_nps
    row = answered.iloc[3]
    inside = answers[
        (answers["unit_id"] == row["unit_id"])
        & (answers["responded_on"] > row["wave"])
        & (answers["responded_on"] <= row["wave"] + pd.Timedelta(days=91))
    ]["brand_promise"].dropna()
    scores = (inside.astype(float) - 1) / 4 * 100
    assert row["brand_promise"] == pytest.approx(scores.mean())
    assert row["brand_promise_within_ss"] == pytest.approx(((scores - scores.mean()) ** 2).sum())
    pooled = answered["brand_promise_within_ss"].sum() / (answered["brand_promise_n"] - 1).sum()
    assert row["brand_promise_noise_var"] == pytest.approx(pooled / len(inside))
    assert table.loc[table["brand_promise_n"] == 0, "brand_promise"].isna().all()
    # the staff side's noise: the pooled within-unit-wave variance of brand alignment over n
    staff = table.dropna(subset=["brand_alignment_index"])
    pooled_staff = (
        staff["brand_alignment_within_ss"].sum() / (staff["brand_alignment_respondents"] - 1).sum()
    )
    assert staff["brand_alignment_noise_var"].to_numpy() == pytest.approx(
        pooled_staff / staff["brand_alignment_respondents"].to_numpy()
    )


def test_without_brand_promise_the_panel_is_what_it_was(brand_study, without_brand):
    for opened in (load_dataset, open_dataset):
        with_column, without = opened(brand_study), opened(without_brand)
        try:
            full = panel.unit_wave_panel(with_column, 91, resolve_as_of(with_column))
            plain = panel.unit_wave_panel(without, 91, resolve_as_of(without))
        finally:
            for dataset in (with_column, without):
                if dataset.customer_tables is not None:
                    dataset.customer_tables.close()
        assert not BRAND_COLUMNS & set(plain.columns)
        assert_frame_equal(plain, full.drop(columns=list(BRAND_COLUMNS)), check_exact=True)
