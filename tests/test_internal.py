"""Scale reliability, empirical-Bayes unit engagement and heat-map significance, checked against
direct computations, against simulations whose truth is known, and for privacy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from analysis.data.contract import Instrument, Scale
from analysis.data.load import Dataset, load_dataset
from analysis.measures.internal import (
    CELL_COLUMNS,
    RELIABILITY_COLUMNS,
    SCALE_LABELS,
    _median_interval,
    cell_significance,
    distinct_respondents,
    scale_reliability,
    shrunken_unit_engagement,
)
from analysis.measures.panel import unit_wave_panel
from analysis.measures.privacy import assert_no_disclosure, small_group_reason
from analysis.measures.scales import respondent_scale_score

MIN_GROUP_SIZE = 5


@pytest.fixture(scope="module")
def study(small_study_master):
    dataset = load_dataset(small_study_master)  # only reads the session's shared copy
    return dataset, unit_wave_panel(dataset)


@pytest.fixture(scope="module")
def reliability(study):
    return scale_reliability(study[0])


# --------------------------------------------------------------------------------------------
# scale_reliability


def test_one_row_per_scale_with_plain_labels(study, reliability):
    dataset, _ = study
    assert list(reliability.columns) == list(RELIABILITY_COLUMNS)
    assert list(reliability["scale"]) == [s.name for s in dataset.instrument.scales]
    assert list(reliability["label"]) == [SCALE_LABELS[s.name] for s in dataset.instrument.scales]
    assert list(reliability["n_items"]) == [len(s.items) for s in dataset.instrument.scales]
    single = reliability[reliability["n_items"] == 1]
    assert list(single["scale"]) == ["employee_effort", "enps"]
    assert single[["alpha", "alpha_conf_low", "alpha_conf_high"]].isna().all().all()


def test_engagement_alpha_is_in_the_band_the_generator_implies(reliability):
    # Five items loading 0.75 on one latent: inter-item correlation .75² = .5625 and alpha
    # 5(.5625) / (1 + 4(.5625)) = .865 for the latent-normal items. Cutting them into five
    # skewed categories attenuates Pearson correlations by roughly 5–15% (correlations of
    # .48–.53, alpha .82–.85). Feldt's standard error with ~1,900 complete rows is ~.006, so
    # .78–.89 leaves several SEs of room on either side while excluding a broken computation
    # (reverse coding, a wrong item set) that would move alpha by .1 or more.
    row = reliability.set_index("scale").loc["engagement"]
    assert 0.78 <= row["alpha"] <= 0.89
    assert row["alpha_conf_low"] < row["alpha"] < row["alpha_conf_high"]
    assert row["alpha_conf_high"] - row["alpha_conf_low"] < 0.05
    assert row["alpha_n"] > 1500


def test_icc_matches_a_direct_one_way_anova(study, reliability):
    # ICC(1) at the unit-wave level is not the generator's engagement_icc (ordinal items and
    # item error dilute it), so check the arithmetic instead: MSB and MSW from statsmodels'
    # ANOVA of each response's scale score on its unit-wave group, then Bliese's formulas with
    # Donner's adjusted group size k0.
    dataset, _ = study
    survey = dataset.employee_survey
    rows = reliability.set_index("scale")
    for scale in dataset.instrument.scales:
        frame = pd.DataFrame(
            {
                "score": respondent_scale_score(survey, scale),
                "group": survey["unit_id"].astype(str) + "|" + survey["wave"].astype(str),
            }
        ).dropna()
        table = anova_lm(smf.ols("score ~ C(group)", data=frame).fit())
        msb, msw = table.loc["C(group)", "mean_sq"], table.loc["Residual", "mean_sq"]
        sizes = frame["group"].value_counts().to_numpy(dtype=float)
        n, j = sizes.sum(), len(sizes)
        k0 = (n - (sizes**2).sum() / n) / (j - 1)
        row = rows.loc[scale.name]
        assert row["icc1"] == pytest.approx((msb - msw) / (msb + (k0 - 1) * msw), rel=1e-8)
        assert row["icc2"] == pytest.approx((msb - msw) / msb, rel=1e-8)
        assert row["group_size"] == pytest.approx(k0, rel=1e-10)
        assert (row["n_responses"], row["n_groups"]) == (n, j)
        assert row["icc1_conf_low"] < row["icc1"] < row["icc1_conf_high"]
        assert row["icc2_conf_low"] < row["icc2"] < row["icc2_conf_high"]


def test_rwg_summary_matches_a_direct_computation(study, reliability):
    # r_wg(J) by hand (James, Demaree & Wolf, 1984) for the engagement items grouped by
    # unit-wave: listwise complete rows, mean item variance over the uniform null (25 − 1)/12.
    dataset, _ = study
    items = list(dataset.instrument.scale("engagement").items)
    data = dataset.employee_survey[["unit_id", "wave", *items]].dropna()
    values = []
    for _, group in data.groupby(["unit_id", "wave"]):
        if len(group) < 2:
            continue
        ratio = group[items].astype(float).var(ddof=1).mean() / 2.0
        stepped = len(items) * (1 - ratio)
        values.append(0.0 if ratio > 1 else stepped / (stepped + ratio))
    values = np.array(values)
    row = reliability.set_index("scale").loc["engagement"]
    assert row["n_rwg_groups"] == len(values)
    assert row["median_rwg"] == pytest.approx(np.median(values))
    assert row["share_rwg_70"] == pytest.approx(np.mean(values >= 0.70))
    assert row["median_rwg_conf_low"] <= row["median_rwg"] <= row["median_rwg_conf_high"]
    assert row["share_rwg_70_conf_low"] <= row["share_rwg_70"] <= row["share_rwg_70_conf_high"]


def test_median_interval_uses_the_binomial_order_statistics():
    # n = 10: P(B ≤ 1) = 11/1024 ≤ .025 < P(B ≤ 2) = 56/1024, so (x_(2), x_(9)) with coverage
    # 1 − 22/1024 = 97.9% (Conover's table). n = 5: P(B ≤ 0) = 1/32 > .025, no 95% interval.
    values = np.arange(1.0, 11.0)
    assert _median_interval(values, 0.95) == (2.0, 9.0)
    assert all(np.isnan(_median_interval(np.arange(5.0), 0.95)))
    assert _median_interval(np.arange(1.0, 7.0), 0.95) == (1.0, 6.0)  # 1/64 ≤ .025


def _toy_dataset(answers: np.ndarray, groups: np.ndarray) -> Dataset:
    """A dataset with only a survey: one three-item scale on 1–5, one wave."""
    scale = Scale("engagement", ("eng_1", "eng_2", "eng_3"), 1, 5, favourable=4)
    survey = pd.DataFrame(
        {
            "respondent_id": [f"R{i}" for i in range(len(groups))],
            "unit_id": [f"U{g}" for g in groups],
            "wave": pd.Timestamp("2024-03-31"),
            **{item: pd.array(answers[:, j], dtype="Int64") for j, item in enumerate(scale.items)},
        }
    )
    empty = pd.DataFrame()
    return Dataset(empty, survey, empty, empty, instrument=Instrument((scale,)))


def test_verdict_says_which_criterion_holds_or_fails():
    rng = np.random.default_rng(11)
    groups = np.repeat(np.arange(40), 12)
    # Clearly different units whose members mostly give their unit's answer: ICC(1) far above
    # .05, ICC(2) near 1, within-group variance ~.2 against 2 for random answering.
    level = rng.integers(2, 5, 40)[groups]
    jitter = rng.choice([-1, 0, 0, 0, 0, 0, 0, 0, 0, 1], size=(len(groups), 3))
    agreeing = _toy_dataset(np.clip(level[:, None] + jitter, 1, 5), groups)
    row = scale_reliability(agreeing).iloc[0]
    assert row["icc1"] > 0.5 and row["icc2"] > 0.9 and row["median_rwg"] > 0.9
    assert row["verdict"] == "aggregation justified"
    # Random answers: no unit differences and no agreement beyond chance; every criterion fails.
    noise = _toy_dataset(rng.integers(1, 6, size=(len(groups), 3)), groups)
    verdict = scale_reliability(noise).iloc[0]["verdict"]
    assert verdict.startswith("not justified")
    assert "ICC(1)" in verdict and "ICC(2)" in verdict and "r_wg" in verdict


# --------------------------------------------------------------------------------------------
# shrunken_unit_engagement


def _simulated_panel(seed: int, n_units: int = 300, tau: float = 6.0, s: float = 18.0):
    """Units with known true means; each wave's index is the truth plus noise of variance s²/n.

    Returns the panel, the true means by unit and each unit's staff size (its distinct people).
    """
    rng = np.random.default_rng(seed)
    unit_ids = np.array([f"U{i:03d}" for i in range(n_units)])
    staff = np.clip(np.round(np.exp(np.log(6) + 0.8 * rng.standard_normal(n_units))), 2, 60)
    truth = pd.Series(65 + tau * rng.standard_normal(n_units), index=unit_ids)
    rows = []
    for unit, size, theta in zip(unit_ids, staff, truth, strict=True):
        for wave in pd.date_range("2024-03-31", periods=4, freq="QE"):
            n = rng.binomial(int(size), 0.7)
            if n == 0:
                continue
            rows.append(
                {
                    "unit_id": unit,
                    "wave": wave,
                    "n_respondents": n,
                    "engagement_index": theta + s / np.sqrt(n) * rng.standard_normal(),
                    "engagement_noise_var": s**2 / n,
                }
            )
    return pd.DataFrame(rows), truth, pd.Series(staff.astype(int), index=unit_ids)


def test_shrinkage_lowers_the_squared_error_of_unit_means():
    # James–Stein: over many units, shrunken means are closer to the truth than raw means. Here
    # a unit has ~4 × .7 × 6 ≈ 17 responses, v ≈ 18²/17 ≈ 19 against τ² = 36, so B ≈ .35 and
    # the oracle ratio of mean squared errors E[(1 − B) v] / E[v] is about .5–.6 (smaller units
    # gain more). With 300 units the raw MSE has a relative SD of about √(2/300) ≈ .08 and the
    # ratio less (both errors share the same noise), so < .85 leaves a margin of ~3 SD.
    panel, truth, _ = _simulated_panel(seed=3)
    everyone_shown = pd.Series(100, index=truth.index)
    table = shrunken_unit_engagement(panel, MIN_GROUP_SIZE, everyone_shown).set_index("unit_id")
    assert not table["suppressed"].any()
    error_raw = ((table["raw_mean"] - truth) ** 2).mean()
    error_shrunk = ((table["shrunken"] - truth) ** 2).mean()
    assert error_shrunk < 0.85 * error_raw
    # The raw mean is the n-weighted mean of the unit's waves.
    first = panel[panel["unit_id"] == "U000"]
    expected = np.average(first["engagement_index"], weights=first["n_respondents"])
    assert table.loc["U000", "raw_mean"] == pytest.approx(expected)
    assert table.loc["U000", "n_responses"] == first["n_respondents"].sum()
    # 95% intervals cover the truth for about 95% of units: binomial SD with 300 units is
    # √(.95 · .05 / 300) ≈ .013; the interval ignores the uncertainty of τ², so allow a little
    # under-coverage: .89–.99.
    covered = ((table["conf_low"] <= truth) & (truth <= table["conf_high"])).mean()
    assert 0.89 <= covered <= 0.99


def test_smaller_units_are_shrunk_more():
    panel, truth, _ = _simulated_panel(seed=4)
    table = shrunken_unit_engagement(panel, MIN_GROUP_SIZE, pd.Series(100, index=truth.index))
    # With a pooled within-group variance v_u = s² / Σ n, B = v / (v + τ²) falls with n.
    ordered = table.sort_values("n_responses")
    by_size = ordered.groupby("n_responses")["shrinkage"].agg(["min", "max"])
    assert (by_size["max"] - by_size["min"]).max() < 1e-12  # the same n, the same B
    assert by_size["min"].is_monotonic_decreasing and by_size["min"].is_unique
    assert ((table["shrinkage"] > 0) & (table["shrinkage"] < 1)).all()
    # Each estimate moves towards a common centre, by its own B.
    centre = (table["shrunken"] - (1 - table["shrinkage"]) * table["raw_mean"]) / table["shrinkage"]
    assert centre.std() < 1e-8


def test_units_of_few_distinct_people_are_hidden_and_never_ranked():
    panel, truth, staff = _simulated_panel(seed=5, n_units=60)
    # The same three people answer all four waves of two units: 12 responses, three people.
    few = ["U001", "U002"]
    panel.loc[panel["unit_id"].isin(few), "n_respondents"] = 3
    panel.loc[panel["unit_id"].isin(few), "engagement_noise_var"] = 18.0**2 / 3
    staff[few] = 3
    table = shrunken_unit_engagement(panel, MIN_GROUP_SIZE, staff)
    hidden = table["suppressed"]
    small = table["n_respondents_distinct"] < MIN_GROUP_SIZE
    assert set(table.loc[table["unit_id"].isin(few), "n_responses"]) == {12}
    assert (table.loc[small, "suppression"] == small_group_reason(MIN_GROUP_SIZE)).all()
    assert hidden[small].all() and small[table["unit_id"].isin(few)].all()
    values = ["raw_mean", "shrunken", "posterior_sd", "conf_low", "conf_high", "rank"]
    assert table.loc[hidden, values].isna().all().all()
    assert table.loc[~hidden, values].notna().all().all()
    ranks = table.loc[~hidden, "rank"].sort_values().to_numpy()
    assert (ranks == np.arange(1, (~hidden).sum() + 1)).all()
    best = table.loc[~hidden].sort_values("shrunken", ascending=False)
    assert best["rank"].iloc[0] == 1
    assert_no_disclosure(
        table,
        count="n_respondents_distinct",
        values=["raw_mean", "shrunken", "conf_low", "conf_high"],
        min_group_size=MIN_GROUP_SIZE,
        parents=[()],
    )


def test_distinct_respondents_and_the_unit_table_on_a_study(study):
    dataset, panel = study
    survey = dataset.employee_survey
    distinct = distinct_respondents(survey)
    people: dict[str, set] = {}
    for unit, person in zip(survey["unit_id"], survey["respondent_id"], strict=True):
        people.setdefault(unit, set()).add(person)
    assert distinct.to_dict() == {u: len(p) for u, p in people.items()}
    # People counted for engagement answered at least one engagement item; never more people
    # than responses, never more than all respondents of the unit.
    items = list(dataset.instrument.scale("engagement").items)
    engaged = distinct_respondents(survey, items)
    assert (engaged <= distinct.reindex(engaged.index)).all()
    table = shrunken_unit_engagement(panel, MIN_GROUP_SIZE, engaged, units=dataset.units)
    assert {"unit_name", "region"} <= set(table.columns)
    assert len(table) == panel["unit_id"].nunique()
    assert (table["n_respondents_distinct"] <= table["n_responses"]).all()
    hidden = table["suppressed"]
    assert hidden[table["n_respondents_distinct"] < MIN_GROUP_SIZE].all()
    assert table.loc[hidden, "rank"].isna().all()
    assert sorted(table.loc[~hidden, "rank"]) == list(range(1, (~hidden).sum() + 1))
    names = dataset.units.set_index("unit_id")["unit_name"]
    assert (table["unit_name"] == table["unit_id"].map(names)).all()


# --------------------------------------------------------------------------------------------
# cell_significance


def _noise_cells(rng: np.random.Generator, n_units: int = 40, s: float = 20.0) -> pd.DataFrame:
    """Unit × wave cells whose indices differ from 60 by sampling noise only."""
    waves = pd.date_range("2024-03-31", periods=4, freq="QE")
    cells = pd.MultiIndex.from_product([[f"U{i:02d}" for i in range(n_units)], waves])
    n = rng.integers(5, 31, len(cells))
    frame = cells.to_frame(index=False, name=["unit_id", "wave"])
    frame["n_respondents"] = n
    frame["engagement_noise_var"] = s**2 / n
    frame["engagement_index"] = 60 + np.sqrt(frame["engagement_noise_var"]) * rng.standard_normal(
        len(frame)
    )
    return frame


def test_a_large_shift_is_significant_and_nothing_else_is():
    rng = np.random.default_rng(21)
    cells = _noise_cells(rng)
    target = 17
    # 8 SDs of the cell's noise: z ≈ 8 ± 1, p < 1e-9, far below the strictest BH threshold
    # .05 / 160 ≈ 3e-4.
    cells.loc[target, "engagement_index"] += 8 * np.sqrt(cells.loc[target, "engagement_noise_var"])
    result = cell_significance(cells)
    assert list(result.columns) == list(CELL_COLUMNS)
    assert result.index.equals(cells.index)
    assert result.loc[target, "significant"]
    assert result.loc[target, "difference"] > 0
    assert result.loc[target, "conf_low"] > 0
    assert result["significant"].sum() <= 2  # under pure noise elsewhere, at most a stray one


def test_under_pure_noise_few_cells_are_significant():
    # Under the complete null BH controls the chance of any rejection at α = .05 (Benjamini &
    # Hochberg, 1995). Over 50 tables of 160 cells, the number of tables with any significant
    # cell is about Binomial(50, ≤ .05): mean ≤ 2.5, P(≥ 8) ≈ .001. The z statistics use the
    # exact variance of a cell minus its own wave mean, so they are standard normal: with 8,000
    # of them the sample variance has SD √(2/8000) ≈ .016, tolerance .06.
    rng = np.random.default_rng(22)
    results = [cell_significance(_noise_cells(rng)) for _ in range(50)]
    any_significant = np.mean([r["significant"].any() for r in results])
    share = np.mean([r["significant"].mean() for r in results])
    assert any_significant <= 8 / 50
    assert share <= 0.01
    z = np.concatenate([r["z"].to_numpy() for r in results])
    assert abs(z.var() - 1) < 0.06
    p = np.concatenate([r["p_value"].to_numpy() for r in results])
    assert stats.kstest(p, "uniform").pvalue > 0.001


def test_hidden_cells_are_left_out_of_the_wave_mean_and_the_tests():
    rng = np.random.default_rng(23)
    cells = _noise_cells(rng)
    cells["suppressed"] = False
    hidden = [0, 5, 9]
    cells.loc[hidden, "suppressed"] = True
    cells.loc[hidden, "engagement_index"] = np.nan
    result = cell_significance(cells)
    assert (
        result.loc[hidden, ["wave_mean", "difference", "p_value", "p_adjusted"]].isna().all().all()
    )
    assert not result.loc[hidden, "significant"].any()
    wave = cells.loc[0, "wave"]
    shown = cells[(cells["wave"] == wave) & ~cells["suppressed"]]
    expected = np.average(shown["engagement_index"], weights=shown["n_respondents"])
    assert result.loc[shown.index, "wave_mean"].to_numpy() == pytest.approx(expected)
    # A marked row is hidden even if a value slipped through, and p-values are adjusted over
    # the shown cells only (m = 157).
    leaked = cells.copy()
    leaked.loc[hidden, "engagement_index"] = 1000.0
    again = cell_significance(leaked)
    pd.testing.assert_frame_equal(again, result)
    assert result["p_value"].notna().sum() == len(cells) - len(hidden)


def test_the_noise_variance_is_required():
    cells = _noise_cells(np.random.default_rng(24)).drop(columns="engagement_noise_var")
    with pytest.raises(ValueError, match="engagement_noise_var"):
        cell_significance(cells)
