"""Empirical-Bayes shrinkage of noisy unit estimates: the kit's one set of choices.

Every shrunken ranking (``measures.internal.shrunken_unit_engagement``,
``measures.nps.nps_by_unit``) and every regression calibration (``models.linkage.calibrate``,
``calibrate_jointly``, ``nps_precision_weights`` and the leave-one-out arithmetic of
``models.estimate``) estimates the between-unit ("signal") variance ``τ²`` here, so they share
one estimator:

* ``τ²`` by the method of moments from the residual sum of squares with divisor ``n − p``
  (``p`` = design columns, intercept included), which is unbiased when the sampling variances
  are equal; the divisor ``n`` is biased down by about ``p/n`` and over-shrinks with few units;
* ``τ²`` floored at 0; with ``τ² = 0`` every shrinkage factor is ``B = 1`` and every unit sits
  at its fitted mean (a ranking then has every unit tied at its covariates' fit);
* the posterior variance includes the uncertainty of the fitted mean ``μ`` (Morris, 1983);
* ties in a ranking share the best rank (``"min"``).

References
----------
Efron, B. & Morris, C. (1973). Stein's estimation rule and its competitors — an empirical
Bayes approach. *JASA* 68(341), 117–130.
Efron, B. & Morris, C. (1975). Data analysis using Stein's estimator and its generalizations.
*JASA* 70(350), 311–319.
Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications. *JASA*
78(381), 47–55.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: How ties are ranked in every shrunken ranking: equal values share the best rank.
RANK_METHOD = "min"

#: Regression calibration's floor under the signal variance, as a share of the residual
#: variance (``calibration_signal``). A ranking can take ``τ² = 0`` (every unit at its fit);
#: a calibrated regressor cannot, because it would then be a combination of the covariates and
#: the slope on it would not be identified. The floor caps the correction at 1/0.05 = 20 times.
CALIBRATION_FLOOR = 0.05


def df_correction(n: np.ndarray | float, n_columns: int) -> np.ndarray | float:
    """The factor ``n / (n − p)`` that turns a mean square of residuals into an unbiased one.

    Parameters
    ----------
    n : float or ndarray
        Number of observations (an array for the leave-one-out fits, one per deleted unit).
    n_columns : int
        Columns of the design, intercept included (``p``).

    Returns
    -------
    float or ndarray
        ``n / (n − p)``; ``inf`` where ``n ≤ p`` (no residual degrees of freedom).

    Notes
    -----
    For least-squares residuals ``r`` of ``n`` values with equal error variance ``σ²`` on ``p``
    columns, ``E[Σ r²] = (n − p) σ²``, so ``Σ r² / n · n/(n − p)`` is unbiased for ``σ²``.

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n > n_columns, n / (n - n_columns), np.inf)
    return float(factor) if factor.ndim == 0 else factor


@dataclass(frozen=True)
class Moments:
    """Method-of-moments pieces of the signal variance (see ``residual_moments``).

    Built by ``residual_moments``; ``signal`` and ``tau2`` derive the signal variance from them.

    Attributes
    ----------
    total : float or ndarray
        The residual variance with divisor ``n − p`` (a ``k × k`` matrix for several columns).
    noise : float or ndarray
        The mean sampling variance (a vector of ``k`` for several columns).
    df : int
        Residual degrees of freedom, ``n − p`` (0 when ``n ≤ p``).

    Notes
    -----
    ``signal = total − noise``, the unbiased moment estimate of ``τ²`` when the sampling
    variances are equal (Morris, 1983).

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """

    total: np.ndarray | float
    noise: np.ndarray | float
    df: int

    @property
    def signal(self) -> np.ndarray | float:
        """The signal (co)variance ``total − noise`` before any floor.

        Returns
        -------
        float or ndarray
            ``total − noise``; for a matrix ``total − diag(noise)`` (noise on the diagonal).
        """
        if np.ndim(self.total) == 0:
            return self.total - self.noise
        return self.total - np.diag(self.noise)

    @property
    def tau2(self) -> float:
        """The signal variance floored at 0 (one column only).

        Returns
        -------
        float
            ``τ² = max(0, total − noise)``, the empirical-Bayes choice (``empirical_bayes``).
        """
        return max(float(self.signal), 0.0)


def calibration_signal(total: np.ndarray | float, noise: np.ndarray | float) -> np.ndarray | float:
    """The signal (co)variance for regression calibration: ``total − noise``, floored.

    Parameters
    ----------
    total : float or ndarray
        Residual variance (or ``k × k`` covariance) with divisor ``n − p``
        (``residual_moments``).
    noise : float or ndarray
        Mean sampling variance (or the ``k`` of them).

    Returns
    -------
    float or ndarray
        ``max(total − noise, CALIBRATION_FLOOR · total)``; for a matrix, ``total − diag(noise)``
        with its eigenvalues raised to at least ``CALIBRATION_FLOOR · min diag(total)``, so
        it stays a positive-definite covariance.

    Notes
    -----
    The estimator is the one of ``empirical_bayes`` (method of moments, divisor ``n − p``);
    only the floor differs, for the reason given at ``CALIBRATION_FLOOR``. The reliability of
    a row is then ``λ_i = σ²_T / (σ²_T + v_i) ≥ 0.05 / (1 + v_i / total)``.

    References
    ----------
    Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement
    Error in Nonlinear Models*, 2nd ed., ch. 4. Chapman & Hall/CRC.
    """
    if np.ndim(total) == 0:
        return max(float(total) - float(noise), CALIBRATION_FLOOR * float(total))
    eigenvalues, vectors = np.linalg.eigh(total - np.diag(noise))
    floor = CALIBRATION_FLOOR * np.diag(total).min()
    return vectors @ np.diag(np.maximum(eigenvalues, floor)) @ vectors.T


def residual_moments(
    residual: np.ndarray,
    noise_var: np.ndarray,
    n_columns: int,
    weights: np.ndarray | None = None,
) -> Moments:
    """Residual (co)variance with divisor ``n − p`` and mean sampling variance.

    Parameters
    ----------
    residual : ndarray
        Residuals of the observed estimates on the design (``n`` or ``n × k``).
    noise_var : ndarray
        Each estimate's known sampling variance, the same shape as ``residual``.
    n_columns : int
        Columns of the design, intercept included (``p``), absorbed effects counted.
    weights : ndarray, optional
        Weights of the least-squares fit that gave ``residual``; equal when omitted.

    Returns
    -------
    Moments
        ``total``, ``noise``, ``df``; ``signal`` and ``tau2`` follow from them.

    Notes
    -----
    With weights ``w`` (all 1 by default)::

        total = n/(n − p) · Σ w r rᵀ / Σ w,     noise = Σ w v / Σ w,     τ² = max(0, total − noise)

    For equal weights and equal ``v`` this is the unbiased moment estimator ``S/(n − p) − v``
    (Morris, 1983); with unequal weights or variances it is the natural approximation
    (DerSimonian & Laird, 1986). With ``n ≤ p`` there is no residual information: ``total`` is
    infinite and callers treat ``τ²`` as 0.

    References
    ----------
    DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. *Controlled Clinical
    Trials* 7(3), 177–188.
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    residual = np.asarray(residual, dtype=float)
    noise_var = np.asarray(noise_var, dtype=float)
    n = residual.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    scale = df_correction(n, n_columns)
    if residual.ndim == 1:
        # n ≤ p: infinite, as documented, even where an exact fit leaves residuals of 0 (∞ · 0)
        total = float(np.sum(w * residual**2) / w.sum()) * scale if n else np.nan
        total = np.inf if n and np.isinf(scale) else total
        noise = float(np.sum(w * noise_var) / w.sum()) if n else np.nan
    else:
        total = (residual * w[:, None]).T @ residual / w.sum() * scale
        noise = (noise_var * w[:, None]).sum(axis=0) / w.sum()
    return Moments(total, noise, max(n - n_columns, 0))


def empirical_bayes(
    values: pd.Series,
    noise_var: pd.Series,
    design: pd.DataFrame | np.ndarray | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Normal–normal empirical-Bayes shrinkage of unit estimates towards a regression fit.

    Parameters
    ----------
    values : Series
        One noisy estimate per unit (``y_i``).
    noise_var : Series
        Its known sampling variance (``v_i``), aligned with ``values``.
    design : DataFrame or ndarray, optional
        Covariates of the prior mean, intercept included (``X``, ``n × p``). By default an
        intercept only, so every unit shrinks towards one mean.
    confidence : float
        Level of the posterior interval.

    Returns
    -------
    DataFrame
        Indexed like ``values``: ``estimate`` (``y_i``), ``noise_var``, ``fitted`` (``x_iβ``),
        ``shrinkage`` (``B_i``), ``shrunken``, ``posterior_sd``, ``conf_low``, ``conf_high``,
        ``rank`` (1 = highest shrunken value, ties ``"min"``), ``tau2`` and ``df`` (``n − p``;
        the same on every row).

    Notes
    -----
    Model ``y_i | θ_i ~ N(θ_i, v_i)``, ``θ_i ~ N(x_iβ, τ²)``. With ``r`` the ordinary
    least-squares residuals of ``y`` on ``X`` and ``S = Σ r²``::

        τ²   = max(0, S/(n − p) − mean(v))                 method of moments, divisor n − p
        W_i  = 1 / (v_i + τ²),   β = (XᵀWX)⁻¹ XᵀWy       precision-weighted prior mean
        B_i  = v_i / (v_i + τ²)                           shrinkage factor (1 when τ² = 0)
        θ̂_i  = x_iβ + (1 − B_i)(y_i − x_iβ)
        sd_i = √((1 − B_i) v_i + B_i² x_i (XᵀWX)⁻¹ x_iᵀ)

    and the interval ``θ̂_i ± z sd_i``. The second term of ``sd_i`` is the uncertainty of the
    estimated prior mean (Morris, 1983); the uncertainty of ``τ²`` itself is left out, so
    intervals are a little narrow with few units. With ``v_i = v``
    for all units, ``1 − B`` is the moment version of the James–Stein factor
    ``c = 1 − (n − p − 2) v / S`` (Efron & Morris, 1975): ``1 − B = 1 − (n − p) v / S``. The
    divisor ``n`` would give ``1 − n v / S``, shrinking too far when ``p/n`` is not small: on
    Efron & Morris's 18 batting averages the factor is .107 with ``n − p`` and .054 with
    ``n`` (the James–Stein ``c`` is .212).

    With ``n ≤ p`` there is no spread to estimate, ``τ² = 0`` and every unit sits at its fit.

    References
    ----------
    Efron, B. & Morris, C. (1973). Stein's estimation rule and its competitors — an empirical
    Bayes approach. *JASA* 68(341), 117–130.
    Efron, B. & Morris, C. (1975). Data analysis using Stein's estimator and its
    generalizations. *JASA* 70(350), 311–319.
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    y = np.asarray(values, dtype=float)
    v = np.asarray(noise_var, dtype=float)
    n = len(y)
    x = np.ones((n, 1)) if design is None else np.asarray(design, dtype=float)
    p = x.shape[1]
    tau2 = 0.0
    if n > p:
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        tau2 = residual_moments(y - x @ coef, v, p).tau2
    if n:
        w = 1.0 / (v + tau2)
        information = np.linalg.pinv((x * w[:, None]).T @ x)
        beta = information @ ((x * w[:, None]).T @ y)
        fitted = x @ beta
        mean_variance = np.einsum("ij,jk,ik->i", x, information, x)
    else:
        fitted = mean_variance = np.zeros(0)
    shrinkage = v / (v + tau2) if tau2 > 0 else np.ones(n)
    shrunken = fitted + (1 - shrinkage) * (y - fitted)
    posterior_sd = np.sqrt((1 - shrinkage) * v + shrinkage**2 * mean_variance)
    z = stats.norm.ppf(0.5 + confidence / 2)
    table = pd.DataFrame(
        {
            "estimate": y,
            "noise_var": v,
            "fitted": fitted,
            "shrinkage": shrinkage,
            "shrunken": shrunken,
            "posterior_sd": posterior_sd,
            "conf_low": shrunken - z * posterior_sd,
            "conf_high": shrunken + z * posterior_sd,
        },
        index=values.index,
    )
    table["rank"] = rank_shrunken(table["shrunken"])
    table["tau2"] = tau2
    table["df"] = max(n - p, 0)
    return table


def rank_shrunken(shrunken: pd.Series) -> pd.Series:
    """Rank of each shrunken value, 1 = highest, ties sharing the best rank (``"min"``).

    Parameters
    ----------
    shrunken : Series
        Shrunken values; missing ones (hidden units) get no rank.

    Returns
    -------
    Series
        Ranks as floats (missing where the value is missing).

    Notes
    -----
    Units tied on the shrunken value (all of them when ``τ² = 0`` and the prior mean has no
    covariates) share the best rank, so no unit is placed above an equal one by row order.

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    return shrunken.rank(ascending=False, method=RANK_METHOD)
