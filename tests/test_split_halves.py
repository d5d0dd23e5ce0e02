"""Split halves of the staff: equal, fixed, independent, and averaged so ids hardly matter.

Two estimands correct for measurement error with halves of each unit's staff
(``analysis.measures.panel.split_halves``). One split is one draw; the estimates average over
``SPLITS`` of them, so a new pseudonymisation key (new ids, new splits) moves them by a small
fraction of their standard error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data.load import load_dataset
from analysis.measures import panel
from analysis.models import linkage


@pytest.fixture(scope="module")
def survey(small_study_master) -> pd.DataFrame:
    return load_dataset(small_study_master).employee_survey


def test_each_unit_is_dealt_into_equal_halves_that_stay_fixed_across_waves(survey):
    halves = panel.split_halves(survey["unit_id"], survey["respondent_id"], 16)
    assert halves.shape == (len(survey), 16) and set(np.unique(halves)) == {0, 1}
    frame = survey[["unit_id", "respondent_id"]].assign(
        **{f"s{s}": halves[:, s] for s in range(16)}
    )
    per_person = frame.groupby(["unit_id", "respondent_id"])
    assert (per_person.nunique().max() == 1).all()  # a person keeps a half in every wave
    people = per_person.first()
    in_b = people.groupby("unit_id").sum()
    size = people.groupby("unit_id").size()
    # alternate dealing: half B holds ⌊n/2⌋ of a unit's n people, half A the rest
    assert (in_b.to_numpy() == (size // 2).to_numpy()[:, None]).all()
    # the halves belong to the people, not to the order of the rows
    shuffled = survey.sample(frac=1.0, random_state=7)
    again = panel.split_halves(shuffled["unit_id"], shuffled["respondent_id"], 16)
    np.testing.assert_array_equal(again, halves[survey.index.get_indexer(shuffled.index)])


def test_different_splits_are_as_unrelated_as_independent_coin_flips(survey):
    people = survey.drop_duplicates(["unit_id", "respondent_id"])
    halves = panel.split_halves(people["unit_id"], people["respondent_id"], 64).astype(float)
    correlation = np.corrcoef(halves.T)[np.triu_indices(64, 1)]
    # Independent splits: r ≈ N(0, 1/n), so E|r| = √(2/(πn)); the mean of 2,016 pairs sits
    # within a few percent of it, and a 30% margin would still catch any real dependence.
    expected = np.sqrt(2 / (np.pi * len(people)))
    assert np.abs(correlation).mean() < 1.3 * expected
    assert abs(correlation.mean()) < 3 * expected / np.sqrt(64)


def _reference_within_sums(facing: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """``linkage.within_unit_sums`` written out split by split."""
    rows = facing[(facing["n_responses"] > 0) & (facing["n_respondents"] > 1)]
    rows = rows[rows.groupby("unit_id")["wave"].transform("size") > 1]
    w = linkage.nps_precision_weights(rows, linkage.absorbed_design(rows, ()), within_unit=True)
    rows = rows.assign(weight=w.to_numpy())

    def demeaned(part: pd.DataFrame, columns: list[str]) -> np.ndarray:
        return linkage.two_way_residuals(
            part[columns].to_numpy(float),
            pd.factorize(part["unit_id"])[0],
            pd.factorize(part["wave"])[0],
            part["weight"].to_numpy(float),
        )

    full = demeaned(rows, ["nps", "engagement_index"])
    a = (rows["weight"] * full[:, 0] * full[:, 1]).groupby(rows["unit_id"]).sum()
    c = (rows["weight"] * full[:, 1] ** 2).groupby(rows["unit_id"]).sum()
    reliabilities, parts = [], []
    for split in range(panel.splits_in(rows)):
        names = panel.half_columns(split)
        half_a, half_b = names["engagement_half_a"], names["engagement_half_b"]
        part = rows.dropna(subset=[half_a, half_b])
        part = part[part.groupby("unit_id")["wave"].transform("size") > 1]
        clean = demeaned(part, ["engagement_index", half_a, half_b])
        b_s = (part["weight"] * clean[:, 1] * clean[:, 2]).groupby(part["unit_id"]).sum()
        c_s = (part["weight"] * clean[:, 0] ** 2).groupby(part["unit_id"]).sum()
        b_s, c_s = b_s.reindex(a.index, fill_value=0.0), c_s.reindex(a.index, fill_value=0.0)
        reliabilities.append(b_s.sum() / c_s.sum())
        parts.append((b_s - reliabilities[-1] * c_s) / c_s.sum())
    d = np.mean(reliabilities) * c + c.sum() * pd.concat(parts, axis=1).mean(axis=1)
    return a, d


def test_the_within_sums_of_all_splits_at_once_equal_a_split_by_split_loop(small_study_master):
    facing = linkage.customer_facing_rows(panel.unit_wave_panel(load_dataset(small_study_master)))
    a, d, n_obs = linkage.within_unit_sums(facing)
    expected_a, expected_d = _reference_within_sums(facing)
    assert panel.splits_in(facing) == panel.SPLITS and n_obs > 0
    pd.testing.assert_series_equal(a.sort_index(), expected_a.sort_index(), check_names=False)
    np.testing.assert_allclose(
        d.sort_index().to_numpy(), expected_d.sort_index().to_numpy(), rtol=1e-9, atol=1e-9
    )
    # Σ d is the mean reliability times Σ w Ĩ²: the per-unit parts of ρ̄ sum to zero
    assert d.sum() > 0


def test_a_large_panel_keeps_fewer_splits_within_the_budget():
    assert panel.splits_for(100) == panel.SPLITS
    assert panel.splits_for(panel.SPLIT_BUDGET // 20) == 20
    assert panel.splits_for(10 * panel.SPLIT_BUDGET) == panel.MIN_SPLITS


def test_new_pseudonyms_move_the_split_half_estimates_far_less_than_one_split_would(
    small_study_master,
):
    dataset = load_dataset(small_study_master)
    ids = dataset.employee_survey["respondent_id"].astype(str)
    averaged, single, standard_errors = [], [], []
    for key in range(6):
        dataset.employee_survey["respondent_id"] = ids + f"~key {key}"
        unit_waves = panel.unit_wave_panel(dataset)
        one_split = panel.keep_splits(unit_waves, 1)
        fits = [
            linkage.nps_on_engagement_within(unit_waves),
            linkage.engagement_on_prior_nps(unit_waves),
        ]
        averaged.append([f["estimate"] for f in fits])
        standard_errors.append([f["std_error"] for f in fits])
        # (within units, one split of this small study often finds no reliable change at all)
        single.append(linkage.engagement_on_prior_nps(one_split)["estimate"])
    spread = np.std(averaged, axis=0, ddof=1) / np.mean(standard_errors, axis=0)
    spread_one = np.std(single, ddof=1) / np.mean(standard_errors, axis=0)[1]
    # Measured over keys: about 0.002 SE (within) and 0.05 SE (reverse) averaged, against
    # 0.3 SE from one split. An SD from 6 keys is within ±60% of the truth at 95%, so 0.1 SE
    # and a third of the one-split spread leave room for that and still fail a single split.
    assert (spread < 0.1).all(), spread
    assert spread[1] < spread_one / 3, (spread, spread_one)
