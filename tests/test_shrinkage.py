"""The one empirical-Bayes estimator (analysis.measures.shrinkage) against published numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.measures.shrinkage import (
    calibration_signal,
    df_correction,
    empirical_bayes,
    residual_moments,
)
from analysis.models import linkage

# Efron & Morris (1975, JASA 70(350), 311–319; 1977, Scientific American 236(5)):
# hits in the first 45 at-bats of the 1970 season, 18 players.
HITS = {
    "Clemente": 18,
    "F. Robinson": 17,
    "F. Howard": 16,
    "Johnstone": 15,
    "Berry": 14,
    "Spencer": 14,
    "Kessinger": 13,
    "L. Alvarado": 12,
    "Santo": 11,
    "Swoboda": 11,
    "Unser": 10,
    "Williams": 10,
    "Scott": 10,
    "Petrocelli": 10,
    "E. Rodriguez": 10,
    "Campaneris": 9,
    "Munson": 8,
    "Alvis": 7,
}
AT_BATS = 45
PUBLISHED_GRAND_MEAN = 0.265
PUBLISHED_JAMES_STEIN_C = 0.212  # shrinking factor c, three digits
# c is given to three digits, so the true value lies within ±.0005 of it
ROUNDING = 0.0005


@pytest.fixture
def batting():
    average = pd.Series(HITS, dtype=float) / AT_BATS
    mean = average.mean()
    known_variance = mean * (1 - mean) / AT_BATS  # binomial, at the grand mean (as published)
    return average, pd.Series(known_variance, index=average.index)


def test_the_batting_data_reproduce_the_published_mean_and_james_stein_factor(batting):
    """Transcription check: ȳ = .265 and c = 1 − (k − 3)σ²/S = .212 as Efron & Morris print."""
    average, variance = batting
    k = len(average)
    spread = float(((average - average.mean()) ** 2).sum())
    assert round(average.mean(), 3) == PUBLISHED_GRAND_MEAN
    c = 1 - (k - 3) * variance.iloc[0] / spread
    assert abs(c - PUBLISHED_JAMES_STEIN_C) <= ROUNDING


def test_moment_shrinkage_factor_follows_from_the_published_james_stein_factor(batting):
    """With known σ² and an intercept (p = 1), ``1 − B = 1 − (k − 1)σ²/S``.

    The published ``c = 1 − (k − 3)σ²/S`` gives ``σ²/S = (1 − c)/(k − 3)``, so the method-of-
    moments factor with divisor ``n − p = k − 1`` is ``1 − (k − 1)/(k − 3) · (1 − c)`` = .1069.
    ``c`` is rounded to three digits (±.0005), so the implied factor is known to within
    ``(k − 1)/(k − 3) · .0005 = .00057``; ours must lie inside that. The divisor ``n`` (the
    kit's old choice) gives .054, twenty times outside it.
    """
    average, variance = batting
    k = len(average)
    table = empirical_bayes(average, variance)
    factor = 1 - table["shrinkage"]
    implied = 1 - (k - 1) / (k - 3) * (1 - PUBLISHED_JAMES_STEIN_C)
    tolerance = (k - 1) / (k - 3) * ROUNDING
    assert factor.iloc[0] == pytest.approx(0.1065, abs=1e-4)  # the "≈ .11 after"
    assert (factor - implied).abs().max() <= tolerance
    assert (table["df"] == k - 1).all()
    # the old divisor n: residual moments with no columns counted
    old = residual_moments((average - average.mean()).to_numpy(), variance.to_numpy(), 0)
    old_factor = old.tau2 / (old.tau2 + variance.iloc[0])
    assert old_factor == pytest.approx(0.054, abs=5e-4)  # the ".054 before"
    assert abs(old_factor - implied) > 10 * tolerance
    # every player moves towards the grand mean by that factor
    shrunken = average.mean() + factor * (average - average.mean())
    assert np.allclose(table["shrunken"], shrunken)
    assert table.loc["Clemente", "rank"] == 1
    assert (
        table.loc[["Unser", "Williams", "Scott", "Petrocelli", "E. Rodriguez"], "rank"] == 11
    ).all()


def test_the_n_minus_p_moment_estimator_is_unbiased_where_n_is_biased_down():
    """Known τ² = 1, v = 1, n = 20 units on p = 5 columns, 4000 replications (seed 11).

    ``S/(n − p) − v`` is unbiased; ``S/n − v`` has mean ``τ² − p/n (τ² + v) = 0.5``. The SD of
    one estimate is ``√(2 (τ² + v)²/(n − p)) ≈ 0.73``, so the mean over 4000 has SE ≈ 0.012;
    both means must lie within 4 SE of their expectation. The unfloored ``signal`` is tested:
    the floor at 0 biases any moment estimator up by design.
    """
    rng = np.random.default_rng(11)
    n, p, tau2, v, replications = 20, 5, 1.0, 1.0, 4000
    x = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    projection = np.eye(n) - x @ np.linalg.pinv(x)
    noise = np.full(n, v)
    unbiased, old = [], []
    for _ in range(replications):
        y = x @ rng.normal(size=p) + rng.normal(0, np.sqrt(tau2), n) + rng.normal(0, np.sqrt(v), n)
        residual = projection @ y
        unbiased.append(residual_moments(residual, noise, p).signal)
        old.append(residual_moments(residual, noise, 0).signal)
    unbiased, old = np.array(unbiased), np.array(old)
    se = unbiased.std(ddof=1) / np.sqrt(replications)
    assert abs(unbiased.mean() - tau2) < 4 * se
    expected_old = tau2 - p / n * (tau2 + v)
    assert abs(old.mean() - expected_old) < 4 * old.std(ddof=1) / np.sqrt(replications)
    assert tau2 - old.mean() > 20 * se  # the old divisor's bias is far beyond noise


def test_calibrate_estimates_the_signal_variance_without_bias_on_a_wide_design():
    """``linkage.calibrate`` on 40 unit-waves in 10 waves (p = 10 absorbed columns).

    True signal variance 2 around the wave means, sampling variance 1; 1500 replications
    (seed 5). The divisor ``n − p`` makes the mean signal estimate 2 within 4 SE (SE ≈ 0.02);
    the divisor ``n`` would give ``2 − 10/40 · 3 = 1.25``. The 5% floor binds in well under 1%
    of draws (it needs an estimate 2.4 SD below its mean), too rarely to matter at this SE.
    """
    rng = np.random.default_rng(5)
    waves = np.repeat(np.arange(10), 4)
    panel = pd.DataFrame({"wave": waves})
    design = linkage.absorbed_design(panel, ())
    assert linkage.design_columns(design) == 10
    noise = pd.Series(np.ones(len(waves)))
    signals = []
    for _ in range(1500):
        truth = rng.normal(size=10)[waves] + rng.normal(0, np.sqrt(2.0), len(waves))
        observed = pd.Series(truth + rng.normal(size=len(waves)))
        signals.append(linkage.calibrate(observed, noise, design)[1])
    signals = np.array(signals)
    se = signals.std(ddof=1) / np.sqrt(len(signals))
    assert abs(signals.mean() - 2.0) < 4 * se


def test_a_zero_signal_puts_every_unit_at_the_fitted_mean_and_ties_their_ranks():
    """τ² floored at 0: B = 1, shrunken = μ, posterior SD = SD of μ (√(v/k)), all rank 1."""
    values = pd.Series([0.1, -0.1, 0.05, -0.05, 0.0], index=list("abcde"))
    variance = pd.Series(1.0, index=values.index)  # noise far above the spread
    table = empirical_bayes(values, variance)
    assert (table["tau2"] == 0).all()
    assert (table["shrinkage"] == 1).all()
    assert np.allclose(table["shrunken"], values.mean())
    assert np.allclose(table["posterior_sd"], np.sqrt(1.0 / len(values)))
    assert (table["rank"] == 1).all()


def test_the_posterior_sd_includes_the_uncertainty_of_the_fitted_mean():
    """Morris (1983): ``sd² = (1 − B) v + B² x (XᵀWX)⁻¹ xᵀ``; check against the formula."""
    rng = np.random.default_rng(3)
    k = 12
    values = pd.Series(rng.normal(0, 2, k))
    variance = pd.Series(rng.uniform(0.5, 2.0, k))
    design = np.column_stack([np.ones(k), np.linspace(-1, 1, k)])
    table = empirical_bayes(values, variance, design)
    tau2 = table["tau2"].iloc[0]
    assert tau2 > 0
    coef = np.linalg.lstsq(design, values, rcond=None)[0]
    rss = float(((values - design @ coef) ** 2).sum())
    assert tau2 == pytest.approx(rss / (k - 2) - variance.mean())
    w = 1 / (variance + tau2)
    information = np.linalg.inv(design.T @ (design * w.to_numpy()[:, None]))
    b = variance / (variance + tau2)
    expected = np.sqrt(
        (1 - b) * variance + b**2 * np.einsum("ij,jk,ik->i", design, information, design)
    )
    assert np.allclose(table["posterior_sd"], expected)
    assert (table["posterior_sd"] > np.sqrt((1 - b) * variance)).all()


def test_one_unit_has_no_spread_to_estimate():
    table = empirical_bayes(pd.Series([3.0]), pd.Series([0.5]))
    assert table["tau2"].iloc[0] == 0 and table["df"].iloc[0] == 0
    assert table["shrunken"].iloc[0] == 3.0


def test_the_calibration_floor_keeps_a_positive_definite_signal():
    total = np.array([[1.0, 0.9], [0.9, 1.0]])
    signal = calibration_signal(total, np.array([1.0, 1.0]))
    assert np.linalg.eigvalsh(signal).min() == pytest.approx(0.05)
    assert calibration_signal(1.0, 2.0) == pytest.approx(0.05)
    assert df_correction(20, 5) == pytest.approx(20 / 15)
    assert np.isinf(df_correction(np.array([5.0]), 5)).all()


def test_no_residual_degrees_of_freedom_give_an_infinite_total_even_for_an_exact_fit():
    """With n ≤ p the moment has no information: ``total`` is infinite, whether the residuals
    are rounding noise or exactly 0 (an exact fit, which would otherwise give ∞ · 0 = NaN),
    so inverse-variance weights 1/(τ² + v) come out 0, not NaN."""
    from analysis.measures.shrinkage import residual_moments

    for residual in (np.zeros(2), np.array([1e-17, -1e-17])):
        moments = residual_moments(residual, np.array([0.5, 0.5]), n_columns=2)
        assert moments.total == np.inf and moments.df == 0
        assert 1.0 / (moments.tau2 + 0.5) == 0.0
