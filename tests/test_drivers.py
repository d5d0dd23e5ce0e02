"""Relative weights, their cluster bootstrap and the random-variable test, checked by algebra, by a
published example, by brute force and on simulations whose truth is known."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.models import drivers
from analysis.models.drivers import (
    DRIVER_COLUMNS,
    METHOD,
    benjamini_hochberg,
    driver_importance,
    relative_weights,
)

SCALES = [
    "engagement",
    "internal_communication",
    "brand_alignment",
    "points_of_connection",
    "employee_effort",
    "enps",
]

# Motor Trend road tests (Henderson & Velleman, 1981), R's `mtcars`: the columns the published
# example uses, all 32 cars, copied from R's dataset as exported to CSV.
MTCARS = """mpg,cyl,disp,hp,wt
21,6,160,110,2.62
21,6,160,110,2.875
22.8,4,108,93,2.32
21.4,6,258,110,3.215
18.7,8,360,175,3.44
18.1,6,225,105,3.46
14.3,8,360,245,3.57
24.4,4,146.7,62,3.19
22.8,4,140.8,95,3.15
19.2,6,167.6,123,3.44
17.8,6,167.6,123,3.44
16.4,8,275.8,180,4.07
17.3,8,275.8,180,3.73
15.2,8,275.8,180,3.78
10.4,8,472,205,5.25
10.4,8,460,215,5.424
14.7,8,440,230,5.345
32.4,4,78.7,66,2.2
30.4,4,75.7,52,1.615
33.9,4,71.1,65,1.835
21.5,4,120.1,97,2.465
15.5,8,318,150,3.52
15.2,8,304,150,3.435
13.3,8,350,245,3.84
19.2,8,400,175,3.845
27.3,4,79,66,1.935
26,4,120.3,91,2.14
30.4,4,95.1,113,1.513
15.8,8,351,264,3.17
19.7,6,145,175,2.77
15,8,301,335,3.57
21.4,4,121,109,2.78
"""


@pytest.fixture(scope="module")
def mtcars() -> pd.DataFrame:
    return pd.read_csv(io.StringIO(MTCARS))


def ols_r_squared(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """R² of (weighted) least squares with an intercept, by numpy's lstsq on √w-scaled rows."""
    w = np.ones(len(y)) if w is None else w
    design = np.column_stack([np.ones(len(y)), x]) * np.sqrt(w)[:, None]
    target = y * np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    centred = (y - np.average(y, weights=w)) * np.sqrt(w)
    return 1 - residual @ residual / (centred @ centred)


def clustered_panel(
    seed: int,
    n_units: int = 150,
    waves: int = 4,
    driver_slope: float = 0.0,
    unit_share_x: float = 0.7,
    unit_nps_sd: float = 12.0,
) -> pd.DataFrame:
    """A unit × wave panel like ``analysis.measures.panel``'s: six 0–100 scales, NPS from counts.

    Each scale is ``60 + 10 (√s a_u + √(1 − s) e_ut)`` with ``s = unit_share_x`` the share of its
    variance that is a stable unit trait; the scales are mutually independent. NPS is
    ``10 + driver_slope (engagement − 60) + b_u + sampling noise``; sampling noise has SD
    ``≈ 80 / √n_responses`` (an NPS answer scores ±100 or 0), so ``n_responses`` is the right
    precision weight. About 5% of unit-waves have no customer answers and a missing NPS.
    """
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), waves)
    n = len(unit)
    trait = rng.standard_normal((n_units, len(SCALES)))[unit]
    occasion = rng.standard_normal((n, len(SCALES)))
    scores = 60 + 10 * (np.sqrt(unit_share_x) * trait + np.sqrt(1 - unit_share_x) * occasion)
    panel = pd.DataFrame(scores, columns=SCALES)
    panel.insert(0, "unit_id", [f"U{u:04d}" for u in unit])
    panel.insert(1, "wave", np.tile(np.arange(waves), n_units))
    panel["n_responses"] = np.where(rng.random(n) < 0.05, 0, rng.integers(5, 60, n))
    sampling_sd = 80 / np.sqrt(np.maximum(panel["n_responses"], 1))
    nps = (
        10
        + driver_slope * (panel["engagement"] - 60)
        + unit_nps_sd * rng.standard_normal(n_units)[unit]
        + sampling_sd * rng.standard_normal(n)
    )
    panel["nps"] = np.where(panel["n_responses"] > 0, nps.clip(-100, 100), np.nan)
    return panel


# --- relative weights: algebra and a published example ------------------------------------------


def test_raw_weights_sum_to_ols_r_squared():
    rng = np.random.default_rng(1)
    common = rng.standard_normal((400, 1))
    x = 0.8 * common + 0.6 * rng.standard_normal((400, 5))  # correlations near .64
    y = x @ [0.5, 0.3, 0.0, -0.2, 0.1] + rng.standard_normal(400)
    w = rng.integers(1, 50, 400).astype(float)
    X = pd.DataFrame(x, columns=list("abcde"))
    raw = relative_weights(X, pd.Series(y))
    # Both sides are exact algebra on the same numbers: only rounding differs.
    assert raw.sum() == pytest.approx(ols_r_squared(x, y), abs=1e-12)
    assert (raw >= 0).all() and list(raw.index) == list("abcde")
    weighted = relative_weights(X, pd.Series(y), pd.Series(w))
    assert weighted.sum() == pytest.approx(ols_r_squared(x, y, w), abs=1e-12)


def test_orthogonal_predictors_get_their_squared_correlations():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 4))
    x -= x.mean(axis=0)
    x, _ = np.linalg.qr(x)  # exactly uncorrelated (centred, orthogonal) columns
    y = x @ [3.0, 2.0, 1.0, 0.0] + 0.05 * rng.standard_normal(200)
    raw = relative_weights(pd.DataFrame(x), pd.Series(y))
    squared_correlations = [np.corrcoef(x[:, j], y)[0, 1] ** 2 for j in range(4)]
    np.testing.assert_allclose(raw.to_numpy(), squared_correlations, rtol=0, atol=1e-12)


def test_matches_the_published_rwa_example(mtcars):
    # R package rwa (Chan), vignette "Regression methods" (articles/regression-methods.md in
    # github.com/martinctc/rwa, also martinctc.github.io/rwa/articles/regression-methods.html):
    # rwa_multiregress(mtcars, "mpg", c("cyl", "disp", "hp", "wt")) prints raw weights
    # 0.2096904, 0.1883043, 0.1799590, 0.2706812, rescaled 24.70914 … 31.89607, R² 0.8486.
    # Printed to 7 significant digits, so the tolerance is half a unit in the last place.
    raw = relative_weights(mtcars[["cyl", "disp", "hp", "wt"]], mtcars["mpg"])
    np.testing.assert_allclose(
        raw.to_numpy(), [0.2096904, 0.1883043, 0.1799590, 0.2706812], rtol=0, atol=5e-8
    )
    np.testing.assert_allclose(
        100 * raw.to_numpy() / raw.sum(), [24.70914, 22.18908, 21.20570, 31.89607], atol=5e-6
    )
    assert raw.sum() == pytest.approx(0.8486, abs=5e-5)


def test_matches_the_published_weighted_rwa_example(mtcars):
    # Same package, vignette "Observation weights and missing data": weights rep(c(1, 2, 5, 3), 8)
    # and predictors hp, wt, disp give 0.2322933, 0.3546032, 0.2844148 and R² 0.8713113, equal
    # to the R² of lm(..., weights = observation_weight).
    weights = pd.Series(np.tile([1.0, 2.0, 5.0, 3.0], 8))
    raw = relative_weights(mtcars[["hp", "wt", "disp"]], mtcars["mpg"], weights)
    np.testing.assert_allclose(raw.to_numpy(), [0.2322933, 0.3546032, 0.2844148], atol=5e-8)
    assert raw.sum() == pytest.approx(0.8713113, abs=5e-8)


def test_integer_weights_equal_repeated_rows(mtcars):
    counts = np.tile([1, 2, 5, 3], 8)
    repeated = mtcars.loc[mtcars.index.repeat(counts)]
    columns = ["cyl", "disp", "hp", "wt"]
    weighted = relative_weights(mtcars[columns], mtcars["mpg"], pd.Series(counts.astype(float)))
    expanded = relative_weights(repeated[columns], repeated["mpg"])
    np.testing.assert_allclose(weighted.to_numpy(), expanded.to_numpy(), atol=1e-12)


def test_relative_weights_rejects_bad_input(mtcars):
    X = mtcars[["cyl", "disp"]].copy()
    with pytest.raises(ValueError, match="constant"):
        relative_weights(X.assign(cyl=4.0), mtcars["mpg"])
    with pytest.raises(ValueError, match="collinear"):
        relative_weights(X.assign(twice=2 * X["disp"]), mtcars["mpg"])
    with pytest.raises(ValueError, match="missing"):
        relative_weights(X.assign(cyl=np.where(X.index == 3, np.nan, X["cyl"])), mtcars["mpg"])


# --- the bootstrap machinery --------------------------------------------------------------------


def test_bootstrap_replicates_equal_explicit_resampling():
    # Sufficient statistics must reproduce relative_weights on the explicitly resampled rows:
    # the same multiplicities (the first of the three seed streams), then exact algebra.
    rng = np.random.default_rng(5)
    n_units = 40
    codes = np.repeat(np.arange(n_units), rng.integers(1, 5, n_units))
    x = rng.standard_normal((len(codes), 3)) + rng.standard_normal((n_units, 3))[codes]
    y = x @ [1.0, 0.5, 0.0] + 2 * rng.standard_normal(len(codes))
    w = rng.integers(1, 30, len(codes)).astype(float)
    boot, _ = drivers._cluster_bootstrap(np.column_stack([x, y]), w, codes, n_units, 25, 99)
    resample = np.random.default_rng(np.random.SeedSequence(99).spawn(3)[0])
    unit_rows = [np.flatnonzero(codes == g) for g in range(n_units)]
    for replicate in boot:
        drawn = resample.integers(0, n_units, size=n_units)
        rows = np.concatenate([unit_rows[g] for g in drawn])
        direct = relative_weights(pd.DataFrame(x[rows]), pd.Series(y[rows]), pd.Series(w[rows]))
        np.testing.assert_allclose(replicate, direct.to_numpy(), rtol=0, atol=1e-12)


def test_random_variable_weight_has_the_distribution_of_a_materialised_one():
    # The comparator is never materialised (q normals and a chi-square per replicate stand in for
    # one N(0, 1/w) value per resampled row). Materialise it and compare the two distributions of
    # its weight over 1,000 replicates each: a two-sample Kolmogorov–Smirnov test (fixed seeds,
    # so deterministic; under equality p is uniform, and p > .01 fails 1 time in 100) and the
    # means, whose difference has a standard error of about √2 × SD / √1000.
    rng = np.random.default_rng(6)
    n_units, draws = 30, 1000
    codes = np.repeat(np.arange(n_units), rng.integers(1, 4, n_units))
    x = rng.standard_normal((len(codes), 2)) + rng.standard_normal((n_units, 2))[codes]
    y = x @ [1.0, 0.3] + 1.5 * rng.standard_normal(len(codes))
    w = rng.integers(1, 20, len(codes)).astype(float)
    _, fast = drivers._cluster_bootstrap(np.column_stack([x, y]), w, codes, n_units, draws, 7)
    resample, noise = np.random.default_rng(8), np.random.default_rng(9)
    unit_rows = [np.flatnonzero(codes == g) for g in range(n_units)]
    direct = np.empty(draws)
    for b in range(draws):
        rows = np.concatenate([unit_rows[g] for g in resample.integers(0, n_units, n_units)])
        data = pd.DataFrame(x[rows]).assign(
            random=noise.standard_normal(len(rows)) / np.sqrt(w[rows])
        )
        direct[b] = relative_weights(data, pd.Series(y[rows]), pd.Series(w[rows]))["random"]
    assert stats.ks_2samp(fast[:, -1], direct).pvalue > 0.01
    standard_error = np.sqrt(fast[:, -1].var() / draws + direct.var() / draws)
    assert abs(fast[:, -1].mean() - direct.mean()) < 4 * standard_error


# --- driver_importance ----------------------------------------------------------------------------


def test_table_is_tidy_and_counts_what_it_used():
    panel = clustered_panel(seed=11, n_units=60, driver_slope=0.8)
    panel.loc[3, "brand_alignment"] = np.nan
    result = driver_importance(panel, SCALES, draws=200)
    assert list(result.columns) == list(DRIVER_COLUMNS)
    assert list(result["term"]) == SCALES
    complete = panel.dropna(subset=[*SCALES, "nps"])
    complete = complete[complete["n_responses"] > 0]
    assert (result["n_obs"] == len(complete)).all()
    assert (result["n_units"] == complete["unit_id"].nunique()).all()
    assert (result["method"] == METHOD).all()
    assert result["share"].sum() == pytest.approx(100)
    point = relative_weights(complete[SCALES], complete["nps"], complete["n_responses"])
    np.testing.assert_allclose(result["estimate"], point.to_numpy(), atol=1e-15)
    assert (result["conf_low"] <= result["conf_high"]).all()
    assert result["p_value"].between(1 / 200, 1).all()
    assert (result["p_adjusted"] >= result["p_value"]).all()
    assert (result["significant"] == (result["p_adjusted"] < 0.05)).all()


def test_same_seed_same_table_whatever_the_chunking(monkeypatch):
    panel = clustered_panel(seed=12, n_units=80, driver_slope=0.5)
    first = driver_importance(panel, SCALES, draws=300, seed=3)
    pd.testing.assert_frame_equal(first, driver_importance(panel, SCALES, draws=300, seed=3))
    monkeypatch.setattr(drivers, "_CHUNK_CELLS", 7 * 80)  # seven replicates per chunk
    pd.testing.assert_frame_equal(first, driver_importance(panel, SCALES, draws=300, seed=3))
    other = driver_importance(panel, SCALES, draws=300, seed=4)
    assert not np.allclose(first["conf_high"], other["conf_high"])
    pd.testing.assert_series_equal(first["estimate"], other["estimate"])  # no randomness


def test_the_true_driver_stands_out_and_noise_does_not():
    # Engagement moves NPS by 0.8 points per point (8 per SD); with a unit NPS SD of 12 and
    # sampling SD ≈ 80/√30, engagement explains about 20% of the NPS variance, the other five
    # scales nothing. Over five seeds (draws = 500, so a p-value's Monte Carlo SE is at most
    # .022) the driver must be significant every time and hold most of R² (its expected share is
    # near 95%; ask for 60%), with its interval above every noise scale's. Of the 25 noise tests
    # we allow two false positives: the simulations in the module docstring put the rate at
    # ≤ 3% even before the BH adjustment, and three or more of 25 then has probability < .05.
    false_positives = 0
    for seed in range(5):
        result = driver_importance(
            clustered_panel(seed=seed, driver_slope=0.8), SCALES, draws=500, seed=seed
        ).set_index("term")
        assert result.loc["engagement", "p_adjusted"] < 0.05
        assert result.loc["engagement", "share"] > 60
        assert result.loc["engagement", "conf_low"] > result.drop("engagement")["conf_high"].max()
        false_positives += int(result.drop("engagement")["significant"].sum())
    assert false_positives <= 2


def test_no_driver_no_discoveries():
    # The null everywhere: no scale moves NPS. Twenty-four tests (four seeds × six scales) at a
    # false discovery rate of .05; with the test's conservative size, none should be rejected,
    # and we allow one.
    discoveries = 0
    for seed in range(20, 24):
        result = driver_importance(clustered_panel(seed=seed), SCALES, draws=500, seed=seed)
        discoveries += int(result["significant"].sum())
    assert discoveries <= 1


def test_cluster_bootstrap_is_wider_than_iid_with_strong_unit_effects():
    # Eight waves per unit; scales are 95% stable unit trait and NPS has a unit SD of 30 against
    # sampling noise of about 15: rows of a unit are near copies, so the effective sample is
    # close to the number of units. The design effect for a correlation is roughly
    # 1 + (m − 1) ρx ρy ≈ 1 + 7 × .95 × .8 ≈ 6, an interval about 2.5 times as wide; an i.i.d.
    # bootstrap (each row its own cluster) misses this. Ask for 1.5 times, far outside the
    # Monte Carlo error of 1,000 draws (about 5% of a width).
    panel = clustered_panel(
        seed=13, n_units=100, waves=8, driver_slope=0.8, unit_share_x=0.95, unit_nps_sd=30
    )
    panel["row_id"] = np.arange(len(panel))
    clustered = driver_importance(panel, SCALES, draws=1000, cluster="unit_id")
    iid = driver_importance(panel, SCALES, draws=1000, cluster="row_id")
    width_clustered = clustered["conf_high"] - clustered["conf_low"]
    width_iid = iid["conf_high"] - iid["conf_low"]
    assert width_clustered.iloc[0] > 1.5 * width_iid.iloc[0]  # engagement, the real driver
    assert (width_clustered > width_iid).all()
    assert clustered["std_error"].iloc[0] > 1.5 * iid["std_error"].iloc[0]
    assert iid["n_units"].iloc[0] == len(panel.dropna(subset=["nps"]))


def test_unweighted_and_argument_checks():
    panel = clustered_panel(seed=14, n_units=40, driver_slope=0.8)
    unweighted = driver_importance(panel, SCALES[:3], weight=None, draws=100)
    complete = panel.dropna(subset=["nps"])
    expected = relative_weights(complete[SCALES[:3]], complete["nps"])
    np.testing.assert_allclose(unweighted["estimate"], expected.to_numpy(), atol=1e-15)
    with pytest.raises(ValueError, match="lacks column"):
        driver_importance(panel, ["engagement", "not_a_scale"])
    with pytest.raises(ValueError, match="draws"):
        driver_importance(panel, SCALES, draws=5)
    with pytest.raises(ValueError, match="confidence"):
        driver_importance(panel, SCALES, confidence=95)
    with pytest.raises(ValueError, match="too little data"):
        driver_importance(panel[panel["unit_id"].isin(["U0000", "U0001"])], SCALES, draws=100)
    with pytest.raises(ValueError, match="negative"):
        driver_importance(panel.assign(n_responses=-panel["n_responses"]), SCALES, draws=100)


# --- Benjamini–Hochberg ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 6, 50])
def test_benjamini_hochberg_matches_statsmodels(size):
    rng = np.random.default_rng(size)
    p_values = rng.beta(0.4, 1.0, size)  # skewed towards 0, like p-values with some signal
    if size >= 6:
        p_values[[1, 4]] = p_values[0]  # ties
    expected = multipletests(p_values, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p_values), expected, rtol=0, atol=1e-15)


def test_benjamini_hochberg_keeps_index_and_missing_values():
    p = pd.Series([0.01, np.nan, 0.04, 0.03], index=list("abcd"))
    adjusted = benjamini_hochberg(p)
    assert list(adjusted.index) == list("abcd") and np.isnan(adjusted["b"])
    expected = multipletests([0.01, 0.04, 0.03], method="fdr_bh")[1]
    np.testing.assert_allclose(adjusted.drop("b").to_numpy(), expected, atol=1e-15)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.2, 1.5])
