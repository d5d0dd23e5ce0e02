"""What to act on: the tests behind the executive page's charts, and the sentences they decide.

The two tests (Cochran's Q across regions, the paired change between waves) are checked against
statsmodels and scipy and, for their error rate, by simulation; each sentence is checked on data
where nothing differs ("no clear …" first) and on data where something does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from analysis.data.load import load_dataset
from analysis.data.parameters import Parameters
from analysis.measures import internal, nps
from analysis.measures.comparisons import equal_estimates_test, paired_change
from analysis.models.estimate import estimate_all
from analysis.report import action, sentences

# --------------------------------------------------------------------------------------------
# The two tests


def test_cochran_q_matches_statsmodels_meta_analysis():
    estimates = np.array([22.2, 29.8, 26.2, 27.4, 28.5])
    std_errors = np.array([2.1, 3.0, 2.0, 2.0, 2.0])
    test = equal_estimates_test(estimates, std_errors)
    reference = combine_effects(estimates, std_errors**2)
    assert test["q"] == pytest.approx(reference.q, rel=1e-12)
    assert test["pooled"] == pytest.approx(reference.mean_effect_fe, rel=1e-12)
    assert test["p_value"] == pytest.approx(stats.chi2.sf(reference.q, 4), rel=1e-12)
    assert (test["df"], test["n_groups"], test["lowest"], test["highest"]) == (4, 5, 22.2, 29.8)


def test_cochran_q_holds_its_level_when_groups_share_one_value():
    """2,000 studies of six equal groups: the rejection rate at 5% is 0.05 within 3 binomial
    SEs (√(0.05 · 0.95 / 2000) ≈ 0.0049)."""
    rng = np.random.default_rng(20261203)
    se = np.array([1.0, 2.0, 0.5, 3.0, 1.5, 1.0])
    p_values = [equal_estimates_test(rng.normal(10.0, se), se)["p_value"] for _ in range(2000)]
    rate = float(np.mean(np.array(p_values) < 0.05))
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / 2000)


def test_cochran_q_needs_two_groups_with_a_standard_error():
    test = equal_estimates_test([5.0, 7.0, np.nan], [1.0, 0.0, 1.0])
    assert test["n_groups"] == 1 and np.isnan(test["p_value"]) and test["pooled"] == 5.0


def test_paired_change_is_the_paired_t_test():
    rng = np.random.default_rng(7)
    first = rng.normal(70, 5, 40)
    last = first + rng.normal(1.0, 2.0, 40)
    rows = pd.DataFrame(
        {
            "unit_id": [f"u{i}" for i in range(40)] * 2,
            "wave": ["a"] * 40 + ["b"] * 40,
            "value": np.concatenate([first, last]),
        }
    )
    # a unit seen in one wave only has no change to count
    rows = pd.concat([rows, pd.DataFrame({"unit_id": ["lone"], "wave": ["b"], "value": [0.0]})])
    change = paired_change(rows, "value", "a", "b")
    reference = stats.ttest_rel(last, first)
    assert change["estimate"] == pytest.approx(np.mean(last - first), rel=1e-12)
    assert change["p_value"] == pytest.approx(reference.pvalue, rel=1e-9)
    interval = reference.confidence_interval(0.95)
    assert (change["conf_low"], change["conf_high"]) == pytest.approx(
        (interval.low, interval.high), rel=1e-9
    )
    assert change["n_units"] == 40


# --------------------------------------------------------------------------------------------
# Sentences: "no clear …" first unless the test supports a difference


def _change(estimate, low, high, p, first="2024Q1", last="2025Q4", n=120):
    return pd.Series(
        {
            "estimate": estimate,
            "conf_low": low,
            "conf_high": high,
            "p_value": p,
            "n_units": n,
            "first": first,
            "last": last,
        }
    )


def test_a_change_is_stated_only_when_its_interval_excludes_none():
    null = action.change_sentence(_change(-0.2, -4.4, 4.1, 0.9), "Customer NPS", "points")
    assert null.startswith("No clear change in customer NPS from 2024Q1 to 2025Q4")
    assert "−0.2 points (95% CI −4.4 to +4.1; 120 units)" in null
    rose = action.change_sentence(_change(3.0, 1.0, 5.0, 0.004), "Engagement", "index points")
    assert rose.startswith("Engagement rose from 2024Q1 to 2025Q4: a change of +3.0 index points")
    assert "p = 0.004" in rose
    fell = action.change_sentence(
        _change(-3.0, -5.0, -1.0, 0.004, pd.Timestamp("2024-03-31"), pd.Timestamp("2025-12-31")),
        "Engagement",
        "index points",
    )
    assert fell.startswith("Engagement fell from March 2024 to December 2025")
    nothing = action.change_sentence(pd.Series({"estimate": np.nan}), "Customer NPS", "points")
    assert "cannot be compared" in nothing


def _regions(values, se):
    return pd.DataFrame(
        {
            "region": [f"R{i}" for i in range(len(values))],
            "nps": values,
            "std_error": se,
            "n_clusters": [40] * len(values),
        }
    )


def test_regions_differ_only_when_cochrans_q_says_so():
    same = action.region_sentence(
        _regions([25.0, 26.0, 24.5], [2.0] * 3), "nps", "Customer NPS", "points"
    )
    assert same.startswith("No clear evidence that customer NPS differs between regions")
    assert "from +24.5 points in R2 to +26.0 in R1; 3 regions, 120 units" in same
    apart = action.region_sentence(
        _regions([15.0, 35.0, 25.0], [2.0] * 3), "nps", "Customer NPS", "points"
    )
    assert apart.startswith("Customer NPS differs between regions (from +15.0 points in R0")
    assert "p < 0.001" in apart
    one = action.region_sentence(_regions([15.0], [2.0]), "nps", "Customer NPS", "points")
    assert "fewer than two regions" in one


def _focus(clear, score, impact):
    return pd.DataFrame(
        {
            "term": [f"s{i}_index" for i in range(len(score))],
            "label": ["Engagement", "Internal communication", "Brand alignment"][: len(score)],
            "score": score,
            "score_low": np.array(score) - 2,
            "score_high": np.array(score) + 2,
            "score_units": 200,
            "impact": impact,
            "impact_low": np.array(impact) / 2,
            "impact_high": np.array(impact) * 1.5,
            "clear": clear,
            "impact_units": 200,
        }
    )


def test_the_focus_matrix_names_a_priority_only_with_a_link_and_a_clear_weight():
    focus = _focus([False, True, False], [72.0, 60.0, 70.0], [20.0, 50.0, 30.0])
    named = action.focus_sentence(focus, link_found=True)
    assert named.startswith("Priority: internal communication (score 60 of 100, 95% CI 58 to 62")
    assert "50% of the explained NPS differences" in named and "if the link is causal" in named
    for text in (
        action.focus_sentence(focus, link_found=False),
        action.focus_sentence(focus.assign(clear=False), link_found=True),
    ):
        assert "Internal communication".lower() not in text.lower()
        assert "no" in text.lower().split(":")[0] or text.startswith("No")
    strong_and_high = action.focus_sentence(
        _focus([True, False, False], [80.0, 60.0, 70.0], [50.0, 20.0, 30.0]), True
    )
    assert (
        strong_and_high.startswith("The scales that carry clear weight")
        and "engagement" in strong_and_high
    )


# --------------------------------------------------------------------------------------------
# Tables from real results: only released values, never a small group


@pytest.fixture(scope="module")
def real(small_study_master):
    dataset = load_dataset(small_study_master)
    parameters = Parameters(bootstrap_draws=50)
    results = estimate_all(dataset, parameters)
    tables = results.tables()
    return dataset, parameters, tables


def test_trends_and_regions_rest_only_on_released_unit_waves(real):
    _, _, tables = real
    unit_wave = tables["unit_wave"]
    suppressed = unit_wave["suppressed"].astype(bool)
    shown = unit_wave[~suppressed].dropna(subset=["engagement_index"])
    trend = action.wave_trend(unit_wave, "engagement_index")
    expected = shown.groupby("wave")["engagement_index"].agg(["mean", "size"])
    assert list(trend["n"]) == list(expected["size"])
    assert np.allclose(trend["value"], expected["mean"])
    assert (trend["conf_low"] < trend["value"]).all() and (
        trend["value"] < trend["conf_high"]
    ).all()
    # a suppressed cell's value, whatever it holds, changes nothing
    poisoned = unit_wave.assign(
        engagement_index=unit_wave["engagement_index"].where(~suppressed, 1e6)
    )
    pd.testing.assert_frame_equal(action.wave_trend(poisoned, "engagement_index"), trend)
    regions = action.region_engagement(poisoned)
    latest = shown[shown["wave"] == shown["wave"].max()]
    assert regions.set_index("region")["n"].to_dict() == latest.groupby("region").size().to_dict()
    assert (regions["value"] < 100).all()


def test_units_needing_attention_are_ranked_units_only(real):
    dataset, parameters, tables = real
    respondents = internal.distinct_respondents(
        dataset.employee_survey, dataset.instrument.scale("engagement").items
    )
    ranking = internal.shrunken_unit_engagement(
        tables["unit_wave"],
        20,
        respondents,
        dataset.units,  # a high bar hides some units
    )
    hidden = set(ranking.loc[ranking["rank"].isna(), "unit_id"])
    assert hidden, "the bar should hide some units of the small study"
    table = action.attention_table(ranking, nps.nps_by_unit(dataset.customer_nps))
    assert not hidden & set(table["unit_id"])
    assert list(table["shrunken"]) == sorted(table["shrunken"])
    assert len(table) == min(action.ATTENTION_ROWS, ranking["rank"].notna().sum())
    average = ranking["shrunken"].mean()
    assert (table["below_average"] == (table["conf_high"] < average)).all()
    sentence = action.attention_sentence(ranking, 20)
    assert (
        f"{len(hidden):,} units with fewer than 20 different respondents are not ranked" in sentence
    )
    shown = sentences.html_table(action.attention_display(table))
    assert "respondent_id" not in shown and all(
        str(u) not in shown for u in hidden if len(str(u)) > 3
    )


def test_the_correction_sentence_states_both_slopes_and_their_ratio(real):
    dataset, parameters, tables = real
    estimates = tables["estimates"].set_index("estimand")
    reliability = internal.scale_reliability(
        dataset, parameters.confidence, tables["unit_wave"], parameters.min_group_size
    )
    text = sentences.correction_sentence(tables["estimates"], reliability)
    corrected = estimates.loc["nps_on_engagement", "estimate"]
    naive = estimates.loc["nps_on_engagement_uncorrected", "estimate"]
    icc2 = reliability.set_index("scale").loc["engagement", "icc2"]
    assert f"ICC(2) {icc2:.2f}" in text
    assert f"{sentences.signed(naive)} points per SD" in text
    assert f"with it, {sentences.signed(corrected)}" in text
    assert f"by a factor of {corrected / naive:.2f}" in text
