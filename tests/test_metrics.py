"""NPS, eNPS, effort and the employee-survey scale metrics, checked against published worked
examples, by hand, and against simulations whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW

from analysis.data.contract import DEFAULT_INSTRUMENT, POINTS_OF_CONNECTION, Instrument, Scale
from analysis.measures.intervals import wilson_interval
from analysis.measures.nps import (
    clustered_nps,
    clustered_nps_difference,
    enps,
    nps,
    nps_categories,
    nps_difference,
    nps_from_counts,
)
from analysis.measures.scales import (
    POINT_OF_CONNECTION_LABELS,
    SCORECARD_COLUMNS,
    cronbach_alpha,
    effort_score,
    feldt_interval,
    icc_oneway,
    points_of_connection_scorecard,
    rwg,
    rwg_summary,
    scale_scores,
    scale_summary,
)


def test_categories_follow_the_definition():
    assert nps_categories([0, 6, 7, 8, 9, 10, None]) == (2, 2, 2)


def test_nps_is_on_minus_100_to_100():
    assert nps([10] * 5)["nps"] == 100
    assert nps([0] * 5)["nps"] == -100
    assert nps([7, 8])["nps"] == 0


def test_wald_by_hand():
    # 50 promoters, 30 passives, 20 detractors: p = .5, d = .2, NPS = 30;
    # var = (.5 + .2 − .3²) / 100 = .0061, se = 100 √.0061 = 7.8102; z(.975) = 1.959964.
    result = nps_from_counts(50, 30, 20)
    assert result["nps"] == pytest.approx(30.0)
    assert result["std_error"] == pytest.approx(7.8102, abs=1e-4)
    assert result["conf_low"] == pytest.approx(30 - 1.959964 * 7.8102, abs=1e-3)
    assert result["conf_high"] == pytest.approx(30 + 1.959964 * 7.8102, abs=1e-3)
    assert (result["n"], result["promoters"], result["passives"], result["detractors"]) == (
        100,
        50,
        30,
        20,
    )


def test_adjusted_wald_by_hand():
    # Add ¾ to promoters and detractors and 3 to n: p = 50.75/103, d = 20.75/103.
    p, d = 50.75 / 103, 20.75 / 103
    centre = 100 * (p - d)
    se = 100 * math.sqrt((p + d - (p - d) ** 2) / 103)
    result = nps_from_counts(50, 30, 20, method="adjusted_wald")
    assert result["nps"] == pytest.approx(30.0)  # the estimate itself is not adjusted
    assert result["conf_low"] == pytest.approx(centre - 1.959964 * se, abs=1e-3)
    assert result["conf_high"] == pytest.approx(centre + 1.959964 * se, abs=1e-3)


def test_adjusted_wald_clips_and_wald_collapses_at_the_edge():
    assert nps_from_counts(10, 0, 0, method="wald")[["conf_low", "conf_high"]].tolist() == [
        100,
        100,
    ]
    adjusted = nps_from_counts(10, 0, 0, method="adjusted_wald")
    assert adjusted["conf_high"] == 100 and adjusted["conf_low"] < 100


def test_empty_and_invalid_input():
    assert math.isnan(nps([])["nps"])
    with pytest.raises(ValueError, match="0–10"):
        nps([3, 11])
    with pytest.raises(ValueError, match="method"):
        nps([9], method="bayes")


@pytest.mark.parametrize("method", ["wald", "adjusted_wald"])
def test_interval_coverage_in_simulation(method):
    """Coverage of 95% intervals over 4,000 samples of n = 150 from p = .45, d = .25.

    Monte-Carlo SE of a coverage near .95 is √(.95 · .05 / 4000) = .0034; we allow ±.015
    (over 4 SE), which also leaves room for the Wald interval's small-sample shortfall.
    """
    rng = np.random.default_rng(2016)
    counts = rng.multinomial(150, [0.45, 0.30, 0.25], size=4000)
    truth = 100 * (0.45 - 0.25)
    covered = [
        row["conf_low"] <= truth <= row["conf_high"]
        for row in (nps_from_counts(*c, method=method) for c in counts)
    ]
    assert np.mean(covered) == pytest.approx(0.95, abs=0.015)


def test_clustered_nps_with_singleton_clusters_is_the_trinomial_with_cr1_factor():
    answers = [10] * 40 + [8] * 35 + [3] * 25
    counts = pd.DataFrame(
        {
            "promoters": [a >= 9 for a in answers],
            "passives": [7 <= a <= 8 for a in answers],
            "detractors": [a <= 6 for a in answers],
        }
    ).astype(int)
    plain = nps(answers)
    clustered = clustered_nps(counts)
    assert clustered["nps"] == pytest.approx(plain["nps"])
    assert clustered["std_error"] == pytest.approx(plain["std_error"] * math.sqrt(100 / 99))


def _clustered_sample(rng, clusters=40, per_cluster=50, spread=0.6):
    """Answers where each unit has its own promoter/detractor odds (a known clustering)."""
    shift = rng.normal(0, spread, clusters)
    promoter = 1 / (1 + np.exp(-(0.0 + shift)))  # logit-scale unit effects
    detractor = (1 - promoter) * 0.4
    rows = []
    for p, d in zip(promoter, detractor, strict=True):
        rows.append(rng.multinomial(per_cluster, [p, 1 - p - d, d]))
    return pd.DataFrame(rows, columns=["promoters", "passives", "detractors"])


def test_clustered_standard_error_matches_the_spread_across_replications():
    """Over 600 replications the mean CR1 SE is within 10% of the SD of the estimates.

    The SD of 600 draws has relative SE about 1/√(2 · 600) ≈ 3%; 10% is over 3 SE. The plain
    trinomial SE, which ignores the clustering, must be clearly too small.
    """
    rng = np.random.default_rng(7)
    estimates, clustered_se, naive_se = [], [], []
    for _ in range(600):
        sample = _clustered_sample(rng)
        result = clustered_nps(sample)
        estimates.append(result["nps"])
        clustered_se.append(result["std_error"])
        totals = sample.sum()
        naive_se.append(
            nps_from_counts(totals["promoters"], totals["passives"], totals["detractors"])[
                "std_error"
            ]
        )
    spread = np.std(estimates, ddof=1)
    assert np.mean(clustered_se) == pytest.approx(spread, rel=0.10)
    assert np.mean(naive_se) < 0.8 * spread


def test_difference_of_disjoint_groups_adds_variances():
    rng = np.random.default_rng(3)
    first = _clustered_sample(rng, clusters=30)
    second = _clustered_sample(rng, clusters=25)
    second.index = second.index + 100  # different units
    gap = clustered_nps_difference(first, second)
    a, b = clustered_nps(first), clustered_nps(second)
    assert gap["estimate"] == pytest.approx(a["nps"] - b["nps"])
    # CR1 factors differ: G/(G−1) with G = 55 for the gap, 30 and 25 for the parts.
    expected = math.sqrt(
        a["std_error"] ** 2 * (55 / 54) / (30 / 29) + b["std_error"] ** 2 * (55 / 54) / (25 / 24)
    )
    assert gap["std_error"] == pytest.approx(expected)
    assert gap["n_units"] == 55


# ---------------------------------------------------------------------------------------------
# Employee-survey scales
# ---------------------------------------------------------------------------------------------


def _parallel_items(rng, n, k, rho):
    """``n`` respondents × ``k`` parallel items: unit variance, every inter-item correlation rho.

    Population alpha is then ``k rho / (1 + (k − 1) rho)`` (the Spearman–Brown formula).
    """
    true_score = rng.normal(size=(n, 1))
    return np.sqrt(rho) * true_score + np.sqrt(1 - rho) * rng.normal(size=(n, k))


def test_cronbach_alpha_matches_a_published_example():
    """Ten customers rate a restaurant on three 1–3 items; R's ``ltm::cronbach.alpha`` prints
    "Items: 3, Sample units: 10, alpha: 0.726" (finnstats, 2022, "How to calculate Cronbach's
    alpha in R", https://finnstats.com/2022/03/28/calculate-cronbachs-alpha-in-r, where the data
    are printed in full). Published to three decimals, so the tolerance is ±0.0005.
    """
    items = pd.DataFrame(
        {
            "Q1": [1, 1, 1, 2, 2, 1, 1, 3, 2, 1],
            "Q2": [1, 1, 1, 1, 3, 2, 2, 2, 2, 2],
            "Q3": [1, 2, 2, 3, 3, 3, 1, 3, 3, 2],
        }
    )
    result = cronbach_alpha(items)
    assert result["alpha"] == pytest.approx(0.726, abs=5e-4)
    assert (result["n"], result["k"]) == (10, 3)
    assert result["conf_low"] < result["alpha"] < result["conf_high"]


def test_feldt_interval_matches_a_published_example():
    """Chris Evans's R function for Feldt's interval (MRC CBU statistics wiki, "R code ... for
    computing confidence intervals for Cronbach's alpha",
    https://imaging.mrc-cbu.cam.ac.uk/statswiki/FAQ/cafun) prints 0.9044024 to 0.9211588 for
    alpha = .913 from n = 873 people on k = 20 items at 95%. Printed to 7 decimals: ±1e-6.
    The lower limit comes from the upper F quantile (Feldt, Woodruff & Salih, 1987, p. 95).
    """
    low, high = feldt_interval(0.913, 873, 20, 0.95)
    assert low == pytest.approx(0.9044024, abs=1e-6)
    assert high == pytest.approx(0.9211588, abs=1e-6)
    wider = feldt_interval(0.913, 873, 20, 0.99)
    assert wider[0] < low < 0.913 < high < wider[1]


def test_alpha_recovers_the_reliability_of_parallel_items():
    """5 parallel items with inter-item correlation .4: alpha = 5(.4)/(1 + 4(.4)) = .7692.

    With n = 5,000 the large-sample SE of alpha, √(2k(1 − α)² / ((k − 1)(n − 2))), is .0052;
    ±.02 is about 4 SE.
    """
    rng = np.random.default_rng(1951)
    items = pd.DataFrame(_parallel_items(rng, 5000, 5, 0.4))
    truth = 5 * 0.4 / (1 + 4 * 0.4)
    result = cronbach_alpha(items)
    assert result["alpha"] == pytest.approx(truth, abs=0.02)
    assert result["conf_low"] < truth < result["conf_high"]


def test_feldt_interval_covers_at_the_nominal_rate_with_the_right_tails():
    """1,500 samples of n = 40 on 6 parallel normal items, rho = .3 (alpha = 1.8 / 2.5 = .72).

    Feldt's F distribution is exact here. Monte-Carlo SE of a coverage near .95 over 1,500
    samples is √(.95 · .05 / 1500) = .0056, so ±.017 is about 3 SE. Each tail should miss about
    2.5% (SE .0040, ±.012 = 3 SE); a swapped lower/upper quantile would fail this badly.
    """
    rng = np.random.default_rng(1987)
    truth = 6 * 0.3 / (1 + 5 * 0.3)
    too_high = too_low = 0
    draws = 1500
    for _ in range(draws):
        result = cronbach_alpha(pd.DataFrame(_parallel_items(rng, 40, 6, 0.3)))
        too_high += result["conf_low"] > truth
        too_low += result["conf_high"] < truth
    assert 1 - (too_high + too_low) / draws == pytest.approx(0.95, abs=0.017)
    assert too_high / draws == pytest.approx(0.025, abs=0.012)
    assert too_low / draws == pytest.approx(0.025, abs=0.012)


def test_alpha_uses_listwise_deletion_and_needs_two_items():
    rng = np.random.default_rng(5)
    complete = pd.DataFrame(_parallel_items(rng, 50, 4, 0.5), columns=list("abcd"))
    gappy = pd.concat(
        [complete, pd.DataFrame({"a": [1.0, np.nan], "b": [np.nan, 2.0], "c": [0.0, 1.0]})],
        ignore_index=True,
    )  # both extra rows miss at least one item (d is missing in both)
    assert cronbach_alpha(gappy)["alpha"] == pytest.approx(cronbach_alpha(complete)["alpha"])
    assert cronbach_alpha(gappy)["n"] == 50
    with pytest.raises(ValueError, match="two items"):
        cronbach_alpha(complete[["a"]])
    assert math.isnan(cronbach_alpha(complete.iloc[:1])["alpha"])


# Shrout & Fleiss (1979), Table 2: six targets (rows) each rated by four judges (columns).
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def test_icc_matches_the_shrout_fleiss_published_example():
    """The one-way ICCs of Shrout & Fleiss's six targets rated by four judges each.

    Treating the targets as the groups, ICC(1) and ICC(2) are Shrout & Fleiss's ICC(1,1) and
    ICC(1,k). R's ``psych::ICC`` (whose documentation reproduces the data) prints, for these
    data, ICC1 = 0.17 with 95% bounds −0.133 and 0.72, ICC1k = 0.44 with bounds −0.884 and 0.91,
    and F = 1.8 on 5 and 18 df (D. Wollschläger, R example repository, ``md/interRaterICC.md``,
    https://github.com/dwoll/RExRepos). Tolerances are half a unit in the last printed digit.
    """
    ratings = np.array(SHROUT_FLEISS, dtype=float)
    scores = pd.Series(ratings.ravel())
    targets = pd.Series(np.repeat([f"S{i}" for i in range(1, 7)], 4))
    result = icc_oneway(scores, targets)
    assert result["icc1"] == pytest.approx(0.17, abs=0.005)
    assert result["conf_low"] == pytest.approx(-0.133, abs=5e-4)
    assert result["conf_high"] == pytest.approx(0.72, abs=0.005)
    assert result["icc2"] == pytest.approx(0.44, abs=0.005)
    assert result["icc2_conf_low"] == pytest.approx(-0.884, abs=5e-4)
    assert result["icc2_conf_high"] == pytest.approx(0.91, abs=0.005)
    assert (result["n"], result["n_groups"], result["group_size"]) == (24, 6, 4)


def test_icc2_is_spearman_brown_of_icc1_at_the_adjusted_group_size():
    """With unequal groups k is k0 = (N − Σ n_j² / N) / (J − 1), and ICC(2) is the
    Spearman–Brown step-up of ICC(1) to k0 (Bliese, 2000). Missing scores are dropped first."""
    rng = np.random.default_rng(11)
    sizes = np.array([2, 3, 5, 8, 13, 21])
    groups = pd.Series(np.repeat(np.arange(len(sizes)), sizes))
    scores = pd.Series(rng.normal(size=len(groups)) + groups * 0.2)
    with_gaps = pd.concat([scores, pd.Series([np.nan, np.nan])], ignore_index=True)
    gap_groups = pd.concat([groups, pd.Series([0, 5])], ignore_index=True)
    result = icc_oneway(with_gaps, gap_groups)
    n = sizes.sum()
    k0 = (n - np.sum(sizes**2) / n) / (len(sizes) - 1)
    assert result["n"] == n and result["n_groups"] == len(sizes)
    assert result["group_size"] == pytest.approx(k0)
    icc1 = result["icc1"]
    assert result["icc2"] == pytest.approx(k0 * icc1 / (1 + (k0 - 1) * icc1))


def test_icc1_recovers_a_known_between_group_share():
    """Group effects N(0, .15) plus individual noise N(0, .85): the true ICC(1) is .15.

    40 replications of 200 groups of 3–15 people (unequal, so k0 matters). The large-sample SD
    of the ANOVA estimator, √(2(1 − ρ)²(1 + (k − 1)ρ)² / (k(k − 1)(J − 1))) with k ≈ 9, J = 200,
    is about .022 per replication (a little more with unequal groups, say .025), so the mean of
    40 has SE ≈ .004; ±.012 is 3 SE.
    """
    rng = np.random.default_rng(2000)
    estimates = []
    for _ in range(40):
        sizes = rng.integers(3, 16, size=200)
        groups = np.repeat(np.arange(200), sizes)
        effects = rng.normal(0, np.sqrt(0.15), size=200)[groups]
        scores = effects + rng.normal(0, np.sqrt(0.85), size=len(groups))
        estimates.append(icc_oneway(pd.Series(scores), pd.Series(groups))["icc1"])
    assert np.mean(estimates) == pytest.approx(0.15, abs=0.012)


def test_icc1_interval_covers_at_the_nominal_rate():
    """1,000 samples of 25 groups × 6 with true ICC(1) = .2; the F interval is exact for equal
    groups and normal data. Monte-Carlo SE √(.95 · .05 / 1000) = .0069: ±.021 is 3 SE."""
    rng = np.random.default_rng(1979)
    groups = pd.Series(np.repeat(np.arange(25), 6))
    covered = 0
    for _ in range(1000):
        scores = np.repeat(rng.normal(0, np.sqrt(0.2), 25), 6) + rng.normal(0, np.sqrt(0.8), 150)
        result = icc_oneway(pd.Series(scores), groups)
        covered += result["conf_low"] <= 0.2 <= result["conf_high"]
    assert covered / 1000 == pytest.approx(0.95, abs=0.021)


def test_icc_needs_two_groups():
    result = icc_oneway(pd.Series([1.0, 2.0, 3.0]), pd.Series(["a", "a", "a"]))
    assert math.isnan(result["icc1"]) and result["n_groups"] == 1


def test_rwg_by_hand_and_at_the_extremes():
    # A 1–5 item has A = 5 options, so σ²_EU = (5² − 1) / 12 = 2.
    # x answers 3, 4, 5: s² = 1, r_wg = 1 − 1/2 = .5.
    # y answers 4, 4, 4: s² = 0, perfect agreement, r_wg = 1.
    # z answers 1, 5, 1, 5: s² = 4 · 2² / 3 = 16/3 > 2, worse than random: truncated to 0
    #   (untruncated 1 − (16/3) / 2 = −5/3).
    # w has a single member (and a row with a missing answer): undefined.
    answers = pd.Series([3, 4, 5, 4, 4, 4, 1, 5, 1, 5, 2, None], dtype="float64")
    groups = pd.Series(list("xxxyyyzzzzww"))
    table = rwg(answers, groups, low=1, high=5).set_index("group")
    assert table.loc["x", "rwg"] == pytest.approx(0.5)
    assert table.loc["y", "rwg"] == pytest.approx(1.0)
    assert table.loc["z", "rwg"] == 0
    assert math.isnan(table.loc["w", "rwg"])
    assert table["n"].tolist() == [1, 3, 3, 4]  # groups sorted: w, x, y, z
    raw = rwg(answers, groups, low=1, high=5, truncate=False).set_index("group")
    assert raw.loc["z", "rwg"] == pytest.approx(-5 / 3)
    # A 1–7 item: σ²_EU = (49 − 1) / 12 = 4, so s² = 1 gives r_wg = .75.
    seven = rwg(pd.Series([3.0, 4.0, 5.0]), pd.Series(["x"] * 3), low=1, high=7)
    assert seven["rwg"].iloc[0] == pytest.approx(0.75)


def test_rwg_j_by_hand():
    # Two 1–5 items; group x: a = 3, 4, 5 (s² = 1), b = 4, 4, 5 (s² = 1/3), so s̄² = 2/3 and
    # s̄²/σ²_EU = 1/3. r_wg(2) = 2(2/3) / (2(2/3) + 1/3) = (4/3) / (5/3) = .8.
    # Group y answers identically on both items: r_wg(2) = 1.
    items = pd.DataFrame({"a": [3, 4, 5, 2, 2, 2], "b": [4, 4, 5, 1, 1, 1]})
    groups = pd.Series(list("xxxyyy"))
    table = rwg(items, groups, low=1, high=5).set_index("group")
    assert table.loc["x", "rwg"] == pytest.approx(0.8)
    assert table.loc["x", "variance"] == pytest.approx(2 / 3)
    assert table.loc["y", "rwg"] == pytest.approx(1.0)


def test_rwg_j_is_spearman_brown_of_the_single_item_index():
    """r_wg(J) = J r / (1 + (J − 1) r) with r = 1 − s̄²/σ²_EU (James, Demaree & Wolf, 1984)."""
    rng = np.random.default_rng(84)
    groups = pd.Series(np.repeat(np.arange(30), 8))
    base = rng.integers(2, 5, size=(30, 1)).repeat(8, axis=0)
    items = pd.DataFrame(np.clip(base + rng.integers(-1, 2, size=(240, 4)), 1, 5))
    table = rwg(items, groups, low=1, high=5, truncate=False)
    single = 1 - table["variance"] / 2
    assert table["rwg"].to_numpy() == pytest.approx((4 * single / (1 + 3 * single)).to_numpy())


def test_rwg_is_near_zero_when_answers_are_uniform():
    """2,000 groups of 10 answering a 1–5 item uniformly at random ("no agreement").

    s² is unbiased for σ²_EU = 2, so the untruncated r_wg has expectation exactly 0. Per group,
    var(s²) = σ⁴ (2/(m − 1) + κ/m) with excess kurtosis κ = −1.3 for the discrete uniform on 5
    points, so SD(r_wg) = √(2/9 − .13) ≈ .30 and the mean of 2,000 groups has SE ≈ .0068;
    ±.025 is over 3.5 SE. After truncation, r_wg ≥ .70 needs s² ≤ .6, about 2.3 SD below the
    mean of s², so well under 5% of groups reach it. The untruncated median is also about 0
    (with this platykurtic parent s² is nearly symmetric); the SE of a median of 2,000 draws
    with SD .30 is about 1.25 · .30 / √2000 = .0084, so the truncated median, max(0, that),
    stays below .05 (about 6 SE).
    """
    rng = np.random.default_rng(1984)
    answers = pd.Series(rng.integers(1, 6, size=20_000).astype(float))
    groups = pd.Series(np.repeat(np.arange(2000), 10))
    raw = rwg(answers, groups, low=1, high=5, truncate=False)
    assert raw["rwg"].mean() == pytest.approx(0.0, abs=0.025)
    summary = rwg_summary(rwg(answers, groups, low=1, high=5))
    assert 0 <= summary["median_rwg"] < 0.05
    assert summary["share_at_least_threshold"] < 0.05
    assert summary["n_groups"] == 2000


def test_rwg_summary_by_hand():
    table = pd.DataFrame({"group": list("abcde"), "rwg": [0.5, 1.0, 0.0, np.nan, 0.8]})
    summary = rwg_summary(table)
    # Defined values 0, .5, .8, 1: median (.5 + .8)/2 = .65; two of four are ≥ .70.
    assert summary["median_rwg"] == pytest.approx(0.65)
    assert summary["share_at_least_threshold"] == pytest.approx(0.5)
    assert summary["n_groups"] == 4


def test_scale_scores_flip_reverse_items_and_apply_the_threshold():
    scale = Scale("s", ("a", "b", "c"), 1, 5, favourable=4, reverse=("c",))
    survey = pd.DataFrame(
        {"a": [5, 4, 3, None, 4], "b": [5, 4, 3, None, None], "c": [1, 2, 3, None, 5]},
        index=[10, 11, 12, 13, 14],
        dtype="float64",
    )
    # 10: 5, 5, flipped 1 → 5: mean 5, score 100, favourable.
    # 11: 4, 4, flipped 2 → 4: mean 4, score 75, favourable (exactly at the threshold).
    # 12: 3, 3, 3: mean 3, score 50, not favourable.
    # 13: nothing answered: no score, favourable unknown.
    # 14: 4, skipped, flipped 5 → 1: mean 2.5, score 37.5, not favourable.
    scored = scale_scores(survey, scale)
    assert scored.index.tolist() == [10, 11, 12, 13, 14]
    assert scored["score"].tolist()[:3] == pytest.approx([100, 75, 50])
    assert math.isnan(scored.loc[13, "score"])
    assert scored.loc[14, "score"] == pytest.approx(37.5)
    assert str(scored["favourable"].dtype) == "boolean"
    assert scored["favourable"].tolist() == [True, True, False, pd.NA, False]


def test_scale_without_a_threshold_has_no_favourable_flag():
    survey = pd.DataFrame({"enps": [10.0, 3.0, None]})
    scored = scale_scores(survey, DEFAULT_INSTRUMENT.scale("enps"))
    assert scored["favourable"].isna().all()
    assert scored["score"].tolist()[:2] == pytest.approx([100, 30])
    summary = scale_summary(survey, DEFAULT_INSTRUMENT.scale("enps"))
    assert math.isnan(summary["pct_favourable"]) and summary["n"] == 2


def test_scale_summary_matches_reference_implementations():
    """Mean and t interval against statsmodels' DescrStatsW; % favourable and its Wilson interval
    against statsmodels' proportion_confint(method="wilson"), on a seeded random survey."""
    rng = np.random.default_rng(42)
    scale = DEFAULT_INSTRUMENT.scale("engagement")
    survey = pd.DataFrame(
        rng.integers(1, 6, size=(300, len(scale.items))).astype(float), columns=scale.items
    )
    survey.iloc[:10] = np.nan  # ten respondents skipped the whole scale
    survey.iloc[10:40, 0] = np.nan  # thirty skipped one item
    summary = scale_summary(survey, scale)
    means = survey.mean(axis=1).dropna()
    scores = (means - 1) / 4 * 100
    low, high = DescrStatsW(scores.to_numpy()).tconfint_mean(alpha=0.05)
    assert summary["n"] == 290
    assert summary["mean"] == pytest.approx(scores.mean())
    assert summary["conf_low"] == pytest.approx(low)
    assert summary["conf_high"] == pytest.approx(high)
    favourable = int((means >= 4).sum())
    w_low, w_high = proportion_confint(favourable, 290, alpha=0.05, method="wilson")
    assert summary["pct_favourable"] == pytest.approx(100 * favourable / 290)
    assert summary["pct_favourable_conf_low"] == pytest.approx(100 * w_low)
    assert summary["pct_favourable_conf_high"] == pytest.approx(100 * w_high)


@pytest.mark.parametrize(("successes", "n"), [(0, 20), (1, 29), (15, 148), (81, 263), (20, 20)])
def test_wilson_interval_matches_statsmodels(successes, n):
    low, high = wilson_interval(successes, n, 0.95)
    ref_low, ref_high = proportion_confint(successes, n, alpha=0.05, method="wilson")
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-12)
    assert 0 <= low <= successes / n <= high <= 1


def test_wilson_interval_of_nothing_is_undefined():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_enps_is_nps_on_the_place_to_work_item():
    # Promoters 10, 10, 9 (3 of 5), detractor 6 (1 of 5): eNPS = 100 (3/5 − 1/5) = 40.
    answers = [10, 10, 9, 8, 6]
    assert enps(answers)["nps"] == pytest.approx(40)
    for method in ("wald", "adjusted_wald"):
        assert enps(answers, method=method).equals(nps(answers, method=method))
    assert enps([0, 3, 6])["nps"] == -100 and enps([9, 10])["nps"] == 100


def test_effort_score_by_hand():
    # Answers 7, 6, 5, 2, 7 (one blank): n = 5, mean 27/5 = 5.4; "easy" (≥ 6): 7, 6, 7 = 3/5.
    answers = [7, 6, 5, 2, 7, None]
    result = effort_score(answers)
    values = np.array([7, 6, 5, 2, 7], dtype=float)
    se = values.std(ddof=1) / math.sqrt(5)
    t = stats.t.ppf(0.975, 4)
    assert result["n"] == 5
    assert result["mean"] == pytest.approx(5.4)
    assert result["std_error"] == pytest.approx(se)
    assert result["conf_low"] == pytest.approx(5.4 - t * se)
    assert result["conf_high"] == pytest.approx(min(5.4 + t * se, 7))
    assert result["share_easy"] == pytest.approx(0.6)
    w_low, w_high = proportion_confint(3, 5, alpha=0.05, method="wilson")
    assert (result["share_easy_conf_low"], result["share_easy_conf_high"]) == pytest.approx(
        (w_low, w_high)
    )


def test_effort_score_interval_stays_on_the_scale_and_input_is_checked():
    tiny = effort_score([1, 7])  # mean 4, se 3, t(.975, 1) = 12.7: the raw interval is huge
    assert (tiny["conf_low"], tiny["conf_high"]) == (1, 7)
    with pytest.raises(ValueError, match="1–7"):
        effort_score([0, 5])
    with pytest.raises(ValueError, match="1–7"):
        effort_score([5.5])
    with pytest.raises(ValueError, match="easy_threshold"):
        effort_score([5], easy_threshold=8)
    assert math.isnan(effort_score([])["mean"])


def _poc_survey(rng, n=400):
    survey = pd.DataFrame(
        rng.integers(1, 6, size=(n, len(POINTS_OF_CONNECTION))).astype(float),
        columns=POINTS_OF_CONNECTION,
    )
    mask = rng.random(survey.shape) < 0.1  # about 10% of answers skipped
    return survey.mask(mask)


def test_points_of_connection_scorecard_rows_by_direct_computation():
    rng = np.random.default_rng(6)
    survey = _poc_survey(rng)
    card = points_of_connection_scorecard(survey)
    assert list(card.columns) == list(SCORECARD_COLUMNS)
    assert card["item"].tolist() == list(POINTS_OF_CONNECTION)
    assert card["label"].tolist() == [
        "Listening",
        "Feeling valued",
        "Resolving differences",
        "Honesty",
        "Doing what we say",
        "Authenticity",
    ]
    for row in card.itertuples():
        answers = survey[row.item].dropna()
        favourable = int((answers >= 4).sum())
        w_low, w_high = proportion_confint(favourable, len(answers), alpha=0.05, method="wilson")
        assert row.n == len(answers)
        assert row.mean == pytest.approx(((answers - 1) / 4 * 100).mean())
        assert row.conf_low < row.mean < row.conf_high
        assert row.pct_favourable == pytest.approx(100 * favourable / len(answers))
        assert row.pct_favourable_conf_low == pytest.approx(100 * w_low)
        assert row.pct_favourable_conf_high == pytest.approx(100 * w_high)


def test_points_of_connection_scorecard_honours_reverse_coding():
    rng = np.random.default_rng(8)
    survey = _poc_survey(rng)
    default = DEFAULT_INSTRUMENT.scale("points_of_connection")
    reversed_honesty = Instrument(
        (Scale(default.name, default.items, 1, 5, favourable=4, reverse=("poc_honesty",)),)
    )
    card = points_of_connection_scorecard(survey, reversed_honesty).set_index("item")
    plain = points_of_connection_scorecard(survey).set_index("item")
    answers = survey["poc_honesty"].dropna()
    # Flipping x → 6 − x mirrors the 0–100 score; favourable then means an original answer ≤ 2.
    assert card.loc["poc_honesty", "mean"] == pytest.approx(100 - plain.loc["poc_honesty", "mean"])
    assert card.loc["poc_honesty", "pct_favourable"] == pytest.approx(100 * (answers <= 2).mean())
    assert card.loc["poc_listening", "mean"] == pytest.approx(plain.loc["poc_listening", "mean"])


def test_every_default_point_of_connection_has_a_label():
    assert set(POINT_OF_CONNECTION_LABELS) == set(POINTS_OF_CONNECTION)


def test_difference_of_two_independent_nps_values_by_hand():
    # 50/30/20 (NPS 30, se 7.8102) against 30/40/30 (NPS 0, se 100·√(.6/100) = 7.7460)
    result = nps_difference((50, 30, 20), (30, 40, 30))
    se = math.sqrt(7.8102**2 + 7.7460**2)
    assert result["estimate"] == pytest.approx(30.0)
    assert result["std_error"] == pytest.approx(se, abs=1e-3)
    assert result["p_value"] == pytest.approx(
        2 * (1 - 0.5 * (1 + math.erf(30 / se / 2**0.5))), abs=1e-4
    )


def test_independent_difference_test_holds_its_size_in_simulation():
    """Two samples from the same population: rejection rate ≈ 5% (4,000 pairs, MC SE .0034)."""
    rng = np.random.default_rng(44)
    first = rng.multinomial(200, [0.5, 0.3, 0.2], size=4000)
    second = rng.multinomial(150, [0.5, 0.3, 0.2], size=4000)
    rejected = [
        nps_difference(tuple(a), tuple(b))["p_value"] < 0.05
        for a, b in zip(first, second, strict=True)
    ]
    assert np.mean(rejected) == pytest.approx(0.05, abs=0.012)


def test_unit_nps_shrinkage_beats_raw_estimates_on_known_truth():
    """James–Stein: shrunken unit NPS has lower mean squared error than raw unit NPS.

    200 units with true NPS ~ N(30, 8²) and 5–80 answers each; raw errors have variance near
    (0.7·100)²/n, far above τ² for small units, so the MSE ratio is around .4. Bound .8.
    """
    from analysis.measures.nps import nps_by_unit

    rng = np.random.default_rng(17)
    rows, truth = [], {}
    for unit in range(200):
        true_nps = rng.normal(30, 8)
        detractor = 0.2
        promoter = detractor + true_nps / 100
        n = int(rng.integers(5, 81))
        answers = rng.choice([10, 8, 3], size=n, p=[promoter, 1 - promoter - detractor, detractor])
        truth[f"u{unit}"] = 100 * (promoter - detractor)
        rows += [{"unit_id": f"u{unit}", "likelihood_to_recommend": a} for a in answers]
    table = nps_by_unit(pd.DataFrame(rows)).set_index("unit_id")
    true = pd.Series(truth).reindex(table.index)
    raw_mse = float(((table["nps"] - true) ** 2).mean())
    shrunken_mse = float(((table["shrunken"] - true) ** 2).mean())
    assert shrunken_mse < 0.8 * raw_mse
    small, large = table["n"] < 15, table["n"] > 60
    assert table.loc[small, "shrinkage"].mean() > table.loc[large, "shrinkage"].mean()
    # ranks: 1 = highest shrunken NPS; units with the same counts tie and share the best rank
    assert table["rank"].min() == 1 and table["rank"].max() <= 200
    higher = table["shrunken"].to_numpy()[:, None] > table["shrunken"].to_numpy()[None, :]
    assert (table["rank"].to_numpy() == 1 + higher.sum(axis=0)).all()
    assert table["rank"].duplicated().any()  # the sample has ties, so "min" is exercised


def test_the_contract_codes_nps_answers_once_for_every_module():
    """Promoters 9–10 (+100), passives 7–8 (0), detractors 0–6 (−100); missing has no category."""
    from analysis.data.contract import nps_category, nps_points
    from analysis.measures.nps import nps_categories

    answers = np.array([0, 5, 6, 7, 8, 9, 10, np.nan])
    assert nps_category(answers).tolist() == [2, 2, 2, 1, 1, 0, 0, -1]
    points = nps_points(answers)
    assert points[:-1].tolist() == [-100, -100, -100, 0, 0, 100, 100] and np.isnan(points[-1])
    assert nps_categories(answers) == (2, 2, 3)


def test_clustered_nps_is_never_more_certain_than_independent_answers():
    """Ten units with the same mix of answers: the sandwich sees almost no spread between them,
    but the interval may not be narrower than the trinomial one of 1,000 independent answers
    (seen on an imported study: a region's interval 2.5 times too narrow)."""
    counts = pd.DataFrame({"promoters": [30] * 10, "passives": [40] * 10, "detractors": [30] * 10})
    counts.loc[0] = [31, 39, 30]  # a sliver of spread, so CR1 is tiny but not zero
    total = counts.sum()
    plain = nps_from_counts(total["promoters"], total["passives"], total["detractors"])
    clustered = clustered_nps(counts)
    assert clustered["std_error"] == pytest.approx(plain["std_error"], rel=1e-9)
