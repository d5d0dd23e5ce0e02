"""NPS and its intervals, checked by hand and against simulations whose truth is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.metrics import (
    clustered_nps,
    clustered_nps_difference,
    nps,
    nps_categories,
    nps_from_counts,
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
    assert gap["n_clusters"] == 55
