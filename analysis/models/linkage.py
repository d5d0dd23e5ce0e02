"""Does engagement go with customer loyalty? Linkage estimates on the unit × wave panel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import sparse

from analysis.data.progress import counting
from analysis.measures.nps import clustered_nps, clustered_nps_difference, nps_noise_var
from analysis.measures.panel import half_columns, splits_in
from analysis.measures.shrinkage import (
    CALIBRATION_FLOOR,
    calibration_signal,
    residual_moments,
)
from analysis.models.tidy import computed_row, not_estimable, tidy_row


@dataclass
class Jackknife:
    """A delete-a-group jackknife's replicates and each unit's group, kept by an estimand's fit
    for the influence check (``analysis.models.estimate.one_unit_fragility``)."""

    replicates: np.ndarray
    group: pd.Series  # group number by unit_id


class EstimationError(ValueError):
    """The data are valid but too thin for an estimate (too few units, waves or answers)."""


QUARTILE_LABELS = ("Bottom quartile", "Second quartile", "Third quartile", "Top quartile")
QUARTILE_COLUMNS = (
    "quartile",
    "label",
    "n_units",
    "n_unit_waves",
    "n_respondents",
    "mean_engagement_index",
    "n_responses",
    "promoters",
    "passives",
    "detractors",
    "nps",
    "std_error",
    "conf_low",
    "conf_high",
)


def engagement_quartiles(engagement_index: pd.Series) -> pd.Series:
    """Quartile (1 = lowest) of each unit-wave's engagement index.

    Ranks break ties first-come, so every quartile gets a quarter of the unit-waves even when
    index values repeat (small units produce repeated values).
    """
    ranks = engagement_index.rank(method="first")
    return pd.qcut(ranks, 4, labels=False).astype("int64") + 1


def quartile_unit_waves(panel: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """The unit-waves quartile comparisons use, with their ``quartile`` (1 = lowest).

    Customer-facing unit-waves whose engagement index rests on at least ``min_group_size``
    respondents and that have customer answers in the outcome window.
    """
    eligible = panel[(panel["n_respondents"] >= min_group_size) & (panel["n_responses"] > 0)]
    if "customer_facing" in eligible:
        eligible = eligible[eligible["customer_facing"].fillna(True).astype(bool)]
    if len(eligible) < 8:
        raise EstimationError(
            f"too few unit-waves to form quartiles: {len(eligible)} customer-facing unit-waves "
            f"have at least {min_group_size} respondents and customer answers (need 8)"
        )
    return eligible.assign(quartile=engagement_quartiles(eligible["engagement_index"]))


def nps_quartile_gap(panel: pd.DataFrame, min_group_size: int, confidence: float = 0.95) -> dict:
    """Top- minus bottom-quartile customer NPS, in NPS points, as one tidy row.

    Parameters
    ----------
    panel : pandas.DataFrame
        The unit × wave panel (``measures.panel.unit_wave_panel``).
    min_group_size : int
        Fewest respondents behind a unit-wave's engagement index for it to be ranked.
    confidence : float
        Level of the interval.

    Returns
    -------
    dict
        A ``tidy.tidy_row``; ``n_obs`` counts customer answers. A ``tidy.not_estimable`` row
        when fewer than eight unit-waves can be ranked or the two quartiles hold fewer than two
        units.

    Notes
    -----
    Quartiles as in ``nps_by_engagement_quartile``. With ``S_g`` each unit's contribution to
    the difference of the two pooled NPS, the SE is cluster-robust (CR1) by unit,
    ``var = G/(G − 1) Σ_g S_g²`` (``measures.nps.clustered_nps_difference``); t interval and
    two-sided p-value with ``G − 1`` degrees of freedom.

    References
    ----------
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
    inference. *Journal of Human Resources* 50(2), 317–372.
    """
    name = "nps_quartile_gap"
    try:
        eligible = quartile_unit_waves(panel, min_group_size)
    except EstimationError as error:
        return not_estimable(name, name, str(error))
    counts = ["promoters", "passives", "detractors"]
    top = eligible[eligible["quartile"] == 4].groupby("unit_id")[counts].sum()
    bottom = eligible[eligible["quartile"] == 1].groupby("unit_id")[counts].sum()
    gap = clustered_nps_difference(top, bottom, confidence=confidence)
    return quartile_gap_row(
        name,
        name,
        gap,
        "difference in NPS points, top vs bottom engagement quartile of unit-waves, "
        "SE clustered by unit",
    )


def quartile_gap_row(estimand: str, term: str, gap: pd.Series, method: str) -> dict:
    """A top- minus bottom-quartile contrast as a tidy row.

    Parameters
    ----------
    estimand, term : str
        The row's names.
    gap : pandas.Series
        ``measures.nps.clustered_mean_difference``'s contrast (``estimate, std_error,
        conf_low, conf_high, p_value, n_obs, n_units``; CR1 by unit, t with ``G − 1`` df).
    method : str
        The row's short description.

    Returns
    -------
    dict
        A ``tidy.tidy_row`` with ``se_method`` ``"cluster_robust_cr1"``, or a
        ``tidy.not_estimable`` row when the quartiles hold fewer than two units (no SE).
    """
    if pd.isna(gap["std_error"]):
        return not_estimable(
            estimand, term, "the top and bottom quartiles hold fewer than two units"
        )
    return computed_row(estimand, term, gap, method=method, se_method="cluster_robust_cr1")


def nps_by_engagement_quartile(
    panel: pd.DataFrame, min_group_size: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Customer NPS in the outcome window after a wave, by the unit's engagement quartile.

    Uses customer-facing unit-waves whose engagement index rests on at least ``min_group_size``
    respondents and that have customer answers in the window. Unit-waves are ranked into
    quartiles of the engagement index; each quartile's NPS pools its answers, with a
    cluster-robust (by unit) standard error and t interval (``measures.nps.clustered_nps``),
    because answers from one unit are not independent.

    Returns one row per quartile: ``quartile, label, n_units, n_unit_waves, n_respondents,
    mean_engagement_index, n_responses, promoters, passives, detractors, nps, std_error,
    conf_low, conf_high``. An association, not a causal effect: see the linkage models.
    """
    eligible = quartile_unit_waves(panel, min_group_size)
    rows = []
    for quartile, group in eligible.groupby("quartile", sort=True):
        by_unit = group.groupby("unit_id")[["promoters", "passives", "detractors"]].sum()
        score = clustered_nps(by_unit, confidence=confidence)
        rows.append(
            {
                "quartile": int(quartile),
                "label": QUARTILE_LABELS[int(quartile) - 1],
                "n_units": int(group["unit_id"].nunique()),
                "n_unit_waves": len(group),
                "n_respondents": int(group["n_respondents"].sum()),
                "mean_engagement_index": float(np.average(group["engagement_index"])),
                "n_responses": int(score["n"]),
                "promoters": int(score["promoters"]),
                "passives": int(score["passives"]),
                "detractors": int(score["detractors"]),
                "nps": score["nps"],
                "std_error": score["std_error"],
                "conf_low": score["conf_low"],
                "conf_high": score["conf_high"],
            }
        )
    return pd.DataFrame(rows, columns=list(QUARTILE_COLUMNS))


# --------------------------------------------------------------------------------------------
# Linkage models on the unit × wave panel


def covariate_design(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), wave_effects: bool = True
) -> pd.DataFrame:
    """Intercept, wave fixed effects and categorical covariates as dummy columns (no patsy).

    A covariate named in the parameters but absent from the data is skipped (the contract makes
    ``region`` optional); a covariate with one level adds nothing. This spells every wave out as
    a column, so a fit costs rows × waves²; the models use ``absorbed_design``, the same column
    space with the waves absorbed. Kept as the reference the absorbed fits are tested against.
    """
    parts = [pd.DataFrame({"const": 1.0}, index=panel.index)]
    names = (["wave"] if wave_effects else []) + [c for c in covariates if c in panel.columns]
    for name in names:
        levels = panel[name].astype("string").fillna("(missing)")
        dummies = pd.get_dummies(levels, prefix=name, drop_first=True, dtype=float)
        parts.append(dummies)
    return pd.concat(parts, axis=1)


def _dummies(panel: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """``covariate_design``'s dummy columns of ``names`` (first level dropped), as one array."""
    parts = [
        pd.get_dummies(
            panel[name].astype("string").fillna("(missing)"),
            prefix=name,
            drop_first=True,
            dtype=float,
        ).to_numpy(float)
        for name in names
    ]
    return np.column_stack(parts) if parts else np.zeros((len(panel), 0))


@dataclass(frozen=True)
class Design:
    """A model's covariates with the wave fixed effects absorbed instead of spelled out.

    ``covariate_design`` writes the covariates as a constant, a dummy column for every wave but
    the first and the dummies of each categorical covariate: with a thousand waves, a thousand
    columns, and each weighted least-squares fit then costs rows × waves². This holds the same
    column space as ``groups`` (each row's wave, ``0 … n_groups − 1``; one group for all rows
    when the model has no wave effects, which is the constant) and ``dense`` (the other dummy
    columns, no constant). By the Frisch–Waugh–Lovell theorem, least squares on the columns
    after demeaning each within its group (weighted) gives the same slopes, fitted values and
    residuals as least squares on the spelled-out design (Davidson & MacKinnon, 2004,
    *Econometric Theory and Methods*, 2.4), at a cost of rows × dense columns².
    """

    dense: np.ndarray  # rows × p: the covariate dummies, no constant
    groups: np.ndarray  # each row's absorbed group (wave), 0 … n_groups − 1
    n_groups: int
    n_columns: int  # columns of the spelled-out design: 1 + (n_groups − 1) + p

    def __len__(self) -> int:
        return len(self.groups)

    @cached_property
    def _membership(self) -> sparse.csr_matrix:
        """groups × rows, 1 where the row is in the group: its product with a column is the
        column's group sums, added in row order as ``np.bincount`` adds them."""
        rows = len(self.groups)
        return sparse.csr_matrix(
            (np.ones(rows), (self.groups, np.arange(rows))), shape=(self.n_groups, rows)
        )

    def demean(self, values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``values`` (one column or several) less their weighted mean within each group."""
        values = np.asarray(values, dtype=float)
        total = self._membership @ weights
        safe = np.where(total > 0, total, 1.0)
        columns = values[:, None] if values.ndim == 1 else values
        # every column's group sums in one sparse product, no rows × columns index array
        sums = self._membership @ (weights[:, None] * columns)
        result = columns - (sums / safe[:, None])[self.groups]
        return result[:, 0] if values.ndim == 1 else result

    def fit(
        self, predictors: np.ndarray, values: np.ndarray, weights: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted least squares of ``values`` (one column or several) on ``predictors``
        (rows × k) and this design.

        Returns the coefficients of the predictors, then the dense columns (none for the
        absorbed groups); the regressors after demeaning (rows × (k + p)); and the residuals.
        """
        predictors = np.asarray(predictors, dtype=float)
        predictors = predictors[:, None] if predictors.ndim == 1 else predictors
        x = self.demean(np.column_stack([predictors, self.dense]), weights)
        y = self.demean(values, weights)
        if x.shape[1] == 0:
            return np.zeros((0, *y.shape[1:])), x, y
        return (coef := weighted_least_squares(x, y, weights)), x, y - x @ coef


#: Largest condition number of ``XᵀWX`` solved directly (``weighted_least_squares``): its
#: relative error is about the condition number times 1e-16, so at most about 1e-8 here
NORMAL_EQUATIONS_CONDITION = 1e8


def weighted_least_squares(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Coefficients of weighted least squares of ``y`` (one column or several) on ``x``.

    Solves the normal equations ``XᵀWX β = XᵀWy``: one pass over the rows, where an SVD-based
    ``lstsq`` of the ``√w``-scaled rows costs several (six times the time on 120,000 rows and
    four columns, measured). Squaring the condition number is harmless for well-conditioned
    designs, the models' usual case; a design whose ``XᵀWX`` is singular (a covariate level
    with no rows left) or conditioned worse than ``NORMAL_EQUATIONS_CONDITION`` goes to
    ``lstsq`` on the scaled rows, which gives the minimum-norm solution (and, as before, a
    ``LinAlgError`` for missing values).
    """
    weighted = x * weights[:, None]
    gram = weighted.T @ x
    if np.isfinite(gram).all() and np.linalg.cond(gram) < NORMAL_EQUATIONS_CONDITION:
        return np.linalg.solve(gram, weighted.T @ y)
    root = np.sqrt(weights)
    scaled = y * (root[:, None] if y.ndim == 2 else root)
    return np.linalg.lstsq(x * root[:, None], scaled, rcond=None)[0]


def absorbed_design(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), wave_effects: bool = True
) -> Design:
    """``covariate_design``'s column space with the wave effects absorbed (see ``Design``)."""
    names = [c for c in covariates if c in panel.columns]
    dense = _dummies(panel, names)
    if wave_effects and len(panel):
        groups, levels = pd.factorize(panel["wave"], sort=True)
        n_groups = len(levels)
    else:
        groups, n_groups = np.zeros(len(panel), dtype=np.intp), 1
    return Design(dense, groups, n_groups, n_groups + dense.shape[1])


def weighted_residuals(
    values: np.ndarray, design: np.ndarray | pd.DataFrame | Design, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fitted values and residuals of weighted least squares of ``values`` (one column or
    several) on ``design``; with a ``Design`` the waves are absorbed (rows × dense columns²)."""
    if isinstance(design, Design):
        _, _, residual = design.fit(np.zeros((len(design), 0)), values, weights)
        return values - residual, residual
    design = np.asarray(design, dtype=float)
    fitted = design @ weighted_least_squares(design, values, weights)
    return fitted, values - fitted


def design_columns(design: np.ndarray | pd.DataFrame | Design) -> int:
    """Columns ``p`` of a design, intercept and absorbed wave effects included.

    The moment estimators of the signal variance divide the residual sum of squares by
    ``n − p`` (``analysis.measures.shrinkage.residual_moments``).
    """
    if isinstance(design, Design):
        return design.n_columns
    return int(np.asarray(design).shape[1])


def two_way_residuals(
    values: np.ndarray,
    units: np.ndarray,
    waves: np.ndarray,
    weights: np.ndarray,
    tolerance: float = 1e-13,
) -> np.ndarray:
    """Residuals of weighted least squares of each column of ``values`` on unit and wave effects.

    ``units`` and ``waves`` are integer codes (``0 … U − 1``, ``0 … T − 1``). The unit effects
    are absorbed exactly (weighted demeaning within unit); the wave effects ``α`` then solve the
    normal equations ``D̃ᵀ W D̃ α = D̃ᵀ W ỹ`` of the unit-demeaned wave indicators ``D̃`` by
    conjugate gradients with a diagonal preconditioner, without forming ``D̃``: a step costs
    one pass over the rows, where least squares on spelled-out wave indicators costs
    rows × waves² (the approach of ``reghdfe`` and ``fixest``; Correia, 2017, "Linear models
    with high-dimensional fixed effects: an efficient and feasible estimator"). The iteration
    stops when the normal equations hold to ``tolerance`` relative to their right-hand side,
    checked on the true residual, so the result is the least-squares residual to rounding.
    """
    values = np.asarray(values, dtype=float)
    columns = values[:, None] if values.ndim == 1 else values
    n_units = int(units.max()) + 1 if len(units) else 0
    n_waves = int(waves.max()) + 1 if len(waves) else 0
    unit_total = np.bincount(units, weights, n_units)
    safe_total = np.where(unit_total > 0, unit_total, 1.0)

    def within_unit(x: np.ndarray) -> np.ndarray:
        return x - (np.bincount(units, weights * x, n_units) / safe_total)[units]

    def normal(alpha: np.ndarray) -> np.ndarray:  # D̃ᵀ W D̃ α; D̃ᵀ W v = Σ_t w v for v ⊥ units
        return np.bincount(waves, weights * within_unit(alpha[waves]), n_waves)

    # Preconditioner: the diagonal of D̃ᵀ W D̃, Σ_t w − Σ_u c_ut² / W_u with c_ut the weight of
    # unit u in wave t (from the occupied unit-wave cells only)
    cell, inverse = np.unique(units.astype(np.int64) * max(n_waves, 1) + waves, return_inverse=True)
    cell_weight = np.bincount(inverse.ravel(), weights, len(cell))
    shared = cell_weight**2 / safe_total[cell // max(n_waves, 1)]
    diagonal = np.bincount(waves, weights, n_waves) - np.bincount(
        cell % max(n_waves, 1), shared, n_waves
    )
    diagonal = np.where(diagonal > 0, diagonal, 1.0)

    result = np.empty_like(columns)
    for j in range(columns.shape[1]):
        y = within_unit(columns[:, j])
        b = np.bincount(waves, weights * y, n_waves)
        limit = tolerance * float(np.linalg.norm(b))
        alpha = np.zeros(n_waves)
        for _ in range(5):  # restarts from the true residual, should rounding stall the recursion
            residual = b - normal(alpha)
            if float(np.linalg.norm(residual)) <= limit:
                break
            z = residual / diagonal
            direction = z.copy()
            rz = float(residual @ z)
            for _ in range(2 * n_waves + 10):
                m_direction = normal(direction)
                curvature = float(direction @ m_direction)
                if curvature <= 0 or rz <= 0:
                    break
                step = rz / curvature
                alpha += step * direction
                residual -= step * m_direction
                if float(np.linalg.norm(residual)) <= limit:
                    break
                z = residual / diagonal
                rz, previous = float(residual @ z), rz
                direction = z + (rz / previous) * direction
        result[:, j] = y - within_unit(alpha[waves])
    return result[:, 0] if values.ndim == 1 else result


def calibrate(
    values: pd.Series,
    noise_var: pd.Series,
    design: pd.DataFrame | Design,
    weights: pd.Series | None = None,
) -> tuple[pd.Series, float]:
    """Regression calibration of an error-prone unit mean (empirical-Bayes shrinkage).

    A unit-wave mean ``I = T + e`` carries sampling error ``e`` with known variance ``v``
    (``s²/n``). Regressing an outcome on ``I`` attenuates the slope by the reliability
    ``σ²_T / (σ²_T + v)``. Replacing ``I`` by its best linear predictor given the covariates
    ``X`` removes that bias (regression calibration; Carroll, Ruppert, Stefanski & Crainiceanu,
    2006, *Measurement Error in Nonlinear Models*, 2nd ed., ch. 4)::

        Î = Xγ + λ (I − Xγ),   λ = σ²_T|X / (σ²_T|X + v)
        σ²_T|X = n/(n − p) · Σ w (I − Xγ)² / Σ w − Σ w v / Σ w

    with ``p`` the design's columns (``design_columns``): the kit's one moment estimator of the
    signal variance (``analysis.measures.shrinkage.residual_moments``, divisor ``n − p``; the
    divisor ``n`` shrinks too far when the design has many columns for its rows). ``λ`` is the
    ``1 − B`` of empirical Bayes. The signal variance is floored at 5% of the residual variance
    (``analysis.measures.shrinkage.calibration_signal``), not at 0 as for rankings: a zero
    signal would make ``Î`` a combination of the covariates and leave no slope to estimate.

    Parameters
    ----------
    values : Series
        The error-prone means ``I``.
    noise_var : Series
        Their sampling variances ``v``.
    design : DataFrame or Design
        The covariates ``X`` (intercept included, or waves absorbed).
    weights : Series, optional
        Weights of the least-squares fit of ``I`` on ``X`` and of the moments; equal if omitted.

    Returns
    -------
    tuple of (Series, float)
        The calibrated values and the estimated signal variance ``σ²_T|X``.

    Notes
    -----
    Assumes the error is independent of the true value and of the outcome's error, as for two
    separate samples (staff answers and customer answers).

    References
    ----------
    Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement
    Error in Nonlinear Models*, 2nd ed., ch. 4.
    Morris, C. N. (1983). Parametric empirical Bayes inference. *JASA* 78(381), 47–55.
    """
    w = np.ones(len(values)) if weights is None else weights.to_numpy(dtype=float)
    fitted, residual = weighted_residuals(values.to_numpy(dtype=float), design, w)
    noise = noise_var.to_numpy(dtype=float)
    moments = residual_moments(residual, noise, design_columns(design), w)
    signal = calibration_signal(moments.total, moments.noise)
    reliability = signal / (signal + noise)
    return pd.Series(fitted + reliability * residual, index=values.index), signal


def calibrate_jointly(
    values: pd.DataFrame,
    noise_var: pd.DataFrame,
    design: pd.DataFrame | Design,
    weights: pd.Series | None = None,
) -> pd.DataFrame:
    """Regression calibration of several error-prone unit means at once.

    With observed ``W = T + U`` (columns of ``values``), errors independent across columns with
    known per-row variances ``v`` (columns of ``noise_var``), and covariates ``X``, the best
    linear predictor of the true values is (Carroll et al., 2006, 4.4)::

        T̂_i = X_i Γ + Σ_T (Σ_T + diag(v_i))⁻¹ (W_i − X_i Γ),   Σ_T = Σ_R − diag(mean v)

    with ``Σ_R`` the weighted covariance of the residuals ``W − XΓ`` with divisor ``n − p``
    (``analysis.measures.shrinkage.residual_moments``, as ``calibrate``) and ``Σ_T``'s
    eigenvalues floored at 5% of the smallest residual variance
    (``analysis.measures.shrinkage.calibration_signal``). Calibrating one mean at a time would
    ignore what the other tells about it: lagged engagement and prior NPS both carry
    information about last quarter's true engagement.

    Parameters
    ----------
    values : DataFrame
        The error-prone means ``W``, one column each.
    noise_var : DataFrame
        Their sampling variances, the same shape.
    design : DataFrame or Design
        The covariates ``X``.
    weights : Series, optional
        Weights of the fits and of the moments; equal if omitted.

    Returns
    -------
    DataFrame
        The calibrated values ``T̂``, indexed and named like ``values``.

    References
    ----------
    Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement
    Error in Nonlinear Models*, 2nd ed., 4.4.
    """
    w = np.ones(len(values)) if weights is None else weights.to_numpy(dtype=float)
    fitted = np.empty(values.shape)
    residual = np.empty(values.shape)
    for j, column in enumerate(values.columns):
        fitted[:, j], residual[:, j] = weighted_residuals(values[column].to_numpy(float), design, w)
    noise = noise_var.to_numpy(dtype=float)
    moments = residual_moments(residual, noise, design_columns(design), w)
    signal = calibration_signal(moments.total, moments.noise)  # a positive-definite Σ_T
    if noise.shape[1] == 2:  # the reverse model's pair: the 2 × 2 inverse written out
        adjusted = gain_times(signal, noise, residual)
    else:
        stacked = signal[None, :, :] + np.einsum("ij,jk->ijk", noise, np.eye(noise.shape[1]))
        gain = np.linalg.solve(stacked, np.broadcast_to(signal, stacked.shape))  # (Σ_T+V)⁻¹ Σ_T
        adjusted = np.einsum("ikj,ik->ij", gain, residual)  # Σ_T (Σ_T+V)⁻¹ r, Σ_T symmetric
    return pd.DataFrame(fitted + adjusted, index=values.index, columns=values.columns)


def gain_times(signal: np.ndarray, noise: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """``Σ (Σ + diag v_i)⁻¹ r_i`` for each row, with the 2 × 2 inverse written out.

    ``signal`` is one ``Σ`` (2 × 2) or a stack of them (``c × 2 × 2``); the result has shape
    ``rows × 2`` or ``c × rows × 2``.
    """
    stack = signal.ndim == 3
    sig = signal if stack else signal[None]
    a, b, d = sig[:, 0, 0][:, None], sig[:, 0, 1][:, None], sig[:, 1, 1][:, None]
    first, second = a + noise[None, :, 0], d + noise[None, :, 1]
    determinant = first * second - b**2
    r0, r1 = residual[None, :, 0], residual[None, :, 1]
    q0 = (second * r0 - b * r1) / determinant
    q1 = (first * r1 - b * r0) / determinant
    moved = np.stack([a * q0 + b * q1, b * q0 + d * q1], axis=-1)
    return moved if stack else moved[0]


def true_index_sd(panel: pd.DataFrame) -> float:
    """SD of the true engagement index across unit-waves: observed variance less sampling noise.

    This is the contract's "one standard deviation of engagement" with the sampling error of
    small units taken out, so an effect "per SD" does not depend on how many staff answered.

    Parameters
    ----------
    panel : DataFrame
        Unit-waves with ``engagement_index`` and ``engagement_noise_var``.

    Returns
    -------
    float
        ``√σ²_T`` with ``σ²_T = Σ (I − Ī)² / (n − 1) − mean(v)``.

    Notes
    -----
    The moment estimator of ``analysis.measures.shrinkage`` with an intercept only (``p = 1``),
    floored at 5% of the observed variance as in ``calibrate`` (the SD divides the slopes).

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference. *JASA* 78(381), 47–55.
    """
    index = panel["engagement_index"].dropna().to_numpy(dtype=float)
    return true_sd(index, float(panel["engagement_noise_var"].mean()))


def true_sd(values: np.ndarray, mean_noise: float) -> float:
    """SD of the true values behind noisy unit-wave means: ``√σ²_T``, ``σ²_T = Σ (x − x̄)² /
    (n − 1) − mean(v)``, floored at 5% of the observed variance.

    The moment estimator of ``analysis.measures.shrinkage`` with an intercept only (``p = 1``;
    Morris, 1983); ``mean_noise`` is the mean sampling variance of the values. The one
    computation behind "per SD" of every index: engagement (``true_index_sd``), the internal
    service received (``analysis.models.chain``) and staff brand alignment
    (``analysis.models.brand_alignment``).
    """
    values = np.asarray(values, dtype=float)
    total = residual_moments(values - values.mean(), np.full(len(values), mean_noise), 1).total
    return float(np.sqrt(calibration_signal(total, mean_noise)))


def true_sd_ratio_without(
    values: np.ndarray, noise: np.ndarray, codes: np.ndarray, n_units: int
) -> np.ndarray:
    """``true_sd`` of ``values`` without each unit's rows, over its value on all of them.

    Exact, from the sums of the values, their squares and their sampling variances ``noise``
    less each unit's share (``codes``: each row's unit, ``0 … n_units − 1``): what the
    influence check divides a "per SD" estimate by when it leaves a unit out. NaN where no
    rows would be left.
    """
    values = np.asarray(values, dtype=float)
    noise = np.asarray(noise, dtype=float)

    def sd(count, first, second, noise_sum):
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = (second - first**2 / count) / (count - 1)
            floor = CALIBRATION_FLOOR * observed
            return np.sqrt(np.maximum(observed - noise_sum / count, floor))

    full = sd(len(values), values.sum(), (values**2).sum(), noise.sum())
    without = sd(
        len(values) - np.bincount(codes, minlength=n_units),
        values.sum() - np.bincount(codes, values, n_units),
        (values**2).sum() - np.bincount(codes, values**2, n_units),
        noise.sum() - np.bincount(codes, noise, n_units),
    )
    return without / full


def precision_weights(
    outcome: np.ndarray, sampling: np.ndarray, design, n_columns: int | None = None
) -> np.ndarray:
    """Inverse-variance weights ``1 / (τ² + v_i)`` of a unit-wave outcome.

    ``v_i`` is each row's sampling variance (``sampling``) and ``τ²`` the variance of the
    outcome around the design beyond sampling: the residual sum of squares of an unweighted
    fit over ``n − p`` less the mean sampling variance, floored at 0
    (``analysis.measures.shrinkage.residual_moments``; DerSimonian & Laird, 1986). ``p`` is
    ``design_columns(design)`` unless ``n_columns`` says otherwise. Shared by NPS
    (``nps_precision_weights``), engagement as an outcome and the customers' brand promise.
    """
    _, residual = weighted_residuals(outcome, design, np.ones(len(outcome)))
    columns = design_columns(design) if n_columns is None else n_columns
    tau2 = residual_moments(residual, sampling, columns).tau2
    return 1.0 / (tau2 + sampling)


def nps_precision_weights(
    rows: pd.DataFrame, design: pd.DataFrame | Design, within_unit: bool = False
) -> pd.Series:
    """Inverse-variance weights for unit NPS: ``1 / (τ² + σ²_i)``.

    A unit-wave NPS varies around the truth by sampling (``σ²_i``, the trinomial variance with
    pooled shares over ``n_responses``) and the truth varies between units beyond the model
    (``τ²``). Weighting by ``n_responses`` alone would hand a few very large units most of the
    weight; these weights cap that, as in random-effects meta-analysis.

    Parameters
    ----------
    rows : DataFrame
        Unit-waves with ``nps``, ``promoters``, ``detractors``, ``n_responses`` (and
        ``unit_id``, ``wave`` for ``within_unit``).
    design : DataFrame or Design
        The covariates of the NPS model.
    within_unit : bool
        Estimate ``τ²`` of change within units: NPS is demeaned within unit first, and the
        units' means count among the design's columns.

    Returns
    -------
    Series
        ``1 / (τ² + σ²_i)``, aligned with ``rows``.

    Notes
    -----
    ``τ²`` is the kit's one method-of-moments estimate
    (``analysis.measures.shrinkage.residual_moments``): residual sum of squares of NPS on the
    ``p`` design columns over ``n − p``, less the mean sampling variance, floored at 0 (then
    the weights are the plain inverse sampling variances). Within units, ``p`` adds the ``U``
    unit means less the one constant they share with the design.

    References
    ----------
    DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. *Controlled Clinical
    Trials* 7(3), 177–188.
    Morris, C. N. (1983). Parametric empirical Bayes inference. *JASA* 78(381), 47–55.
    """
    sampling = nps_noise_var(rows["promoters"], rows["detractors"], rows["n_responses"])
    outcome = rows["nps"]
    n_columns = design_columns(design)
    if within_unit:
        outcome = outcome - outcome.groupby(rows["unit_id"]).transform("mean")
        n_columns += int(rows["unit_id"].nunique()) - 1
    weights = precision_weights(
        outcome.to_numpy(float), sampling.to_numpy(float), design, n_columns
    )
    return pd.Series(weights, index=rows.index)


def _cluster_fit(
    y: pd.Series, predictors: pd.DataFrame, design: Design, weights: pd.Series, clusters: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """WLS of ``y`` on ``predictors`` and ``design``: the predictors' coefficients and CR1 SEs.

    The same numbers as ``statsmodels`` ``WLS(...).fit(cov_type="cluster")`` on the spelled-out
    design: the sandwich ``B (Σ_g s_g s_gᵀ) B · G/(G − 1) · (N − 1)/(N − K)`` with ``s_g`` the
    cluster sums of ``w x̃ e`` and ``K`` the spelled-out design's columns. By Frisch–Waugh–Lovell
    the block of the predictors is the same whether the absorbed wave effects are spelled out
    or partialled out, so it costs rows × (predictors + dense columns)².
    """
    w = weights.to_numpy(float)
    k = predictors.shape[1]
    coef, x, residual = design.fit(predictors.to_numpy(float), y.to_numpy(float), w)
    codes, uniques = pd.factorize(clusters)
    scores = x * (w * residual)[:, None]
    per_cluster = np.column_stack(
        [np.bincount(codes, scores[:, j], len(uniques)) for j in range(x.shape[1])]
    )
    bread = np.linalg.pinv((x * w[:, None]).T @ x)
    n, g, columns = len(y), len(uniques), k + design.n_columns
    covariance = bread @ (per_cluster.T @ per_cluster) @ bread
    covariance *= g / (g - 1) * (n - 1) / (n - columns)
    return coef[:k], np.sqrt(np.diag(covariance)[:k])


def customer_facing_rows(panel: pd.DataFrame) -> pd.DataFrame:
    """The unit-waves of customer-facing units (all of them when ``units`` has no such column).

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel, optionally with a ``customer_facing`` column (missing = facing).

    Returns
    -------
    DataFrame
        The rows whose customers can answer for them: the only rows any linkage model uses.
    """
    if "customer_facing" not in panel:
        return panel
    return panel[panel["customer_facing"].fillna(True).astype(bool)]


# Groups of the delete-a-group jackknife: enough for a stable variance (df = K − 1), few enough
# that refitting the whole estimator K times stays cheap at twenty thousand units.
JACKKNIFE_GROUPS = 50


def jackknife_groups(unit_ids: pd.Series, groups: int = JACKKNIFE_GROUPS) -> tuple[np.ndarray, int]:
    """Each row's jackknife group (0 … K−1, K = min(groups, units)), all rows of a unit together.

    Units are dealt to groups in a fixed pseudo-random order, so the same data give the same
    groups on every run.
    """
    units = pd.Index(unit_ids.unique()).sort_values()
    k = min(groups, len(units))
    order = np.random.default_rng(20240331).permutation(len(units))
    group_of_unit = np.empty(len(units), dtype=int)
    group_of_unit[order] = np.arange(len(units)) % k
    return group_of_unit[units.get_indexer(unit_ids)], k


def delete_group_jackknife(
    rows: pd.DataFrame, statistic, columns: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """``statistic`` recomputed on ``rows`` without each jackknife group of units.

    Parameters
    ----------
    rows : pandas.DataFrame
        The rows the estimator is fitted on, with ``unit_id``.
    statistic : callable
        The whole estimator: rows in, one value or several out.
    columns : sequence of str, optional
        The only columns ``statistic`` reads (``unit_id`` is kept): copying fewer columns into
        each replicate halves its cost on a wide panel.

    Returns
    -------
    tuple
        ``(replicates, group, k)``: ``K`` values (or ``K`` rows, one column per value),
        each row's group (``jackknife_groups``) and ``K``. Their spread gives
        ``jackknife_se``.
    """
    if columns is not None:
        rows = rows[list(dict.fromkeys(["unit_id", *(c for c in columns if c in rows.columns)]))]
    group, k = jackknife_groups(rows["unit_id"].astype("string"))
    replicates = []
    with counting("jackknife groups", k) as done:
        for g in range(k):
            replicates.append(statistic(rows[group != g]))
            done()
    return np.asarray(replicates, dtype=float), group, k


def jackknife_se(estimates: np.ndarray) -> float:
    """Delete-a-group jackknife SE, ``sqrt((K − 1)/K · Σ_k (θ_(k) − θ̄)²)``.

    ``θ_(k)`` is the whole estimator recomputed without group *k* of units (Kott, 2001, "The
    delete-a-group jackknife", *Journal of Official Statistics* 17(4), 521–526; with one unit
    per group it is the cluster jackknife, CV3, that MacKinnon, Nielsen & Webb, 2023, *Journal
    of Econometrics* 232(2), recommend over CR1 when units differ in size). Every estimated
    ingredient (calibration, weights, the SD of the true index) is re-estimated in each
    replicate, so their uncertainty is in the SE too. Inference uses t with ``K − 1`` df.
    """
    estimates = np.asarray(estimates, dtype=float)
    k = len(estimates)
    return float(np.sqrt((k - 1) / k * np.sum((estimates - estimates.mean()) ** 2)))


#: The panel columns ``nps_on_engagement`` and its uncorrected twin read, beside the covariates
NPS_MODEL_COLUMNS = (
    "unit_id",
    "wave",
    "engagement_index",
    "engagement_noise_var",
    "nps",
    "promoters",
    "detractors",
    "n_responses",
)


def _nps_slope(rows: pd.DataFrame, covariates: Sequence[str]) -> float:
    """``nps_on_engagement``'s point estimate on ``rows`` (the whole pipeline)."""
    sd_true = true_index_sd(rows)
    design = absorbed_design(rows, covariates)
    weights = nps_precision_weights(rows, design)
    calibrated, _ = calibrate(
        rows["engagement_index"], rows["engagement_noise_var"], design, weights
    )
    coef, _, _ = design.fit(
        calibrated.to_numpy(float) / sd_true, rows["nps"].to_numpy(float), weights.to_numpy(float)
    )
    return float(coef[0])


def nps_on_engagement(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), confidence: float = 0.95
) -> dict:
    """Change in unit NPS in the outcome window per +1 SD of that wave's engagement index.

    Model (customer-facing unit-waves with customer answers)::

        NPS[u,t] = β · Î[u,t] / SD_T + wave[t] + region[u] + ε

    weighted least squares with inverse-variance weights (``nps_precision_weights``).
    ``Î`` is the engagement index after regression calibration (``calibrate``), and ``SD_T``
    the SD of the true index (``true_index_sd``), so β is per SD of engagement free of the
    attenuation that sampling error in small units would cause. The SE is the delete-a-group
    jackknife over units (``jackknife_se``), refitting weights, calibration and SD each time:
    the calibration study (``make validate``) found the CR1 cluster-robust SE 10–15% too small
    with units of very different sizes (a false-positive rate near 9%).
    """
    rows, slope, _, replicates = nps_on_engagement_fit(panel, covariates)
    return nps_on_engagement_row(rows, slope, replicates, covariates, confidence)


def nps_on_engagement_fit(
    panel: pd.DataFrame, covariates: Sequence[str]
) -> tuple[pd.DataFrame, float, np.ndarray, np.ndarray]:
    """``nps_on_engagement``'s fit: its rows, slope, jackknife groups and replicates.

    Parameters
    ----------
    panel : pandas.DataFrame
        The unit × wave panel.
    covariates : sequence of str
        Unit covariates beside the wave effects.

    Returns
    -------
    tuple
        ``(rows, slope, group, replicates)``: the unit-waves used, the slope, each row's
        jackknife group (``jackknife_groups``) and the slope without each group.
    """
    rows = customer_facing_rows(panel)
    rows = rows[(rows["n_responses"] > 0) & rows["engagement_index"].notna()]
    slope = _nps_slope(rows, covariates)
    replicates, group, _ = delete_group_jackknife(
        rows, lambda r: _nps_slope(r, covariates), [*NPS_MODEL_COLUMNS, *covariates]
    )
    return rows, slope, group, replicates


def nps_on_engagement_row(
    rows: pd.DataFrame,
    slope: float,
    replicates: Sequence[float],
    covariates: Sequence[str],
    confidence: float,
) -> dict:
    """``nps_on_engagement``'s tidy row from its slope and jackknife replicates.

    Parameters
    ----------
    rows : pandas.DataFrame
        The unit-waves the slope was fitted on.
    slope : float
        NPS points per SD of engagement.
    replicates : sequence of float
        The slope without each jackknife group (``jackknife_groups``).
    covariates : sequence of str
        The covariates asked for; those present in ``rows`` are named in ``method``.
    confidence : float
        Level of the interval.

    Returns
    -------
    dict
        A ``tidy.tidy_row``: t with ``K − 1`` df, ``se_method`` ``"jackknife"``.
    """
    k = len(replicates)
    used = [c for c in covariates if c in rows.columns]
    return tidy_row(
        "nps_on_engagement",
        "engagement_sd",
        slope,
        jackknife_se(replicates),
        df=k - 1,
        confidence=confidence,
        n_obs=len(rows),
        n_units=int(rows["unit_id"].nunique()),
        method="WLS (inverse-variance weights), wave FE"
        + "".join(f" + {c}" for c in used)
        + ", calibrated engagement, SE by delete-a-group jackknife over units",
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )


def within_unit_sums(facing: pd.DataFrame) -> tuple[pd.Series, pd.Series, int]:
    """The within estimator's numerator and denominator, as sums of per-unit parts.

    Parameters
    ----------
    facing : pandas.DataFrame
        Customer-facing unit-waves of the panel (``customer_facing_rows``), with the half
        columns of ``analysis.measures.panel.half_columns``.

    Returns
    -------
    a, d : pandas.Series
        By ``unit_id``: ``a_u = Σ_t w Ñ Ĩ`` and ``d_u``, whose sum is ``ρ̄ Σ w Ĩ²`` (see
        ``nps_on_engagement_within``): ``d_u = ρ̄ c_u + C · mean_s (b_su − ρ_s c_su) / C_s``,
        the unit's part of the denominator and of ``ρ̄`` to first order, so that
        ``(a_u − β d_u)`` is its influence on ``β = Σ a / Σ d``.
    n_obs : int
        The unit-waves of the numerator.

    Notes
    -----
    The rows are the unit-waves with customer answers and two or more staff, of units with two
    or more such waves: fixed, whatever the split. In split ``s`` the reliability ``ρ_s`` is
    estimated on the rows ``R_s`` where both halves have staff (units with two or more such
    waves), demeaned two ways on those rows; ``ρ̄`` is the mean over splits. The weights
    (``nps_precision_weights`` for change within units) are estimated once on the fixed rows.
    """
    rows = facing[(facing["n_responses"] > 0) & (facing["n_respondents"] > 1)]
    rows = rows[rows.groupby("unit_id")["wave"].transform("size") > 1]
    if rows["unit_id"].nunique() == 0:
        empty = pd.Series(dtype=float)
        return empty, empty.copy(), 0
    w = nps_precision_weights(rows, absorbed_design(rows, ()), within_unit=True).to_numpy(float)
    unit_codes, units = pd.factorize(rows["unit_id"])
    wave_codes = pd.factorize(rows["wave"])[0]
    cleaned = two_way_residuals(
        rows[["nps", "engagement_index"]].to_numpy(float), unit_codes, wave_codes, w
    )
    a = np.bincount(unit_codes, w * cleaned[:, 0] * cleaned[:, 1], len(units))
    c = np.bincount(unit_codes, w * cleaned[:, 1] ** 2, len(units))
    # every split at once: split s's rows are its own units and waves (codes offset by s), so
    # one two-way demeaning of the stacked rows demeans each split on its own rows
    names = [half_columns(split) for split in range(splits_in(rows))]
    half_a = rows[[n["engagement_half_a"] for n in names]].to_numpy(float)
    half_b = rows[[n["engagement_half_b"] for n in names]].to_numpy(float)
    split_of, row_of = np.nonzero((~np.isnan(half_a) & ~np.isnan(half_b)).T)
    stacked_unit = split_of * len(units) + unit_codes[row_of]
    size = len(names) * len(units)
    several = np.bincount(stacked_unit, minlength=size)[stacked_unit] > 1
    split_of, row_of, stacked_unit = split_of[several], row_of[several], stacked_unit[several]
    if len(row_of) == 0:
        return pd.Series(a, index=units), pd.Series(np.zeros(len(units)), index=units), len(rows)
    clean = two_way_residuals(
        np.column_stack(
            [
                rows["engagement_index"].to_numpy(float)[row_of],
                half_a[row_of, split_of],
                half_b[row_of, split_of],
            ]
        ),
        pd.factorize(stacked_unit)[0],
        split_of * (int(wave_codes.max()) + 1) + wave_codes[row_of],
        w[row_of],
    )
    b_s = np.bincount(stacked_unit, w[row_of] * clean[:, 1] * clean[:, 2], size)
    c_s = np.bincount(stacked_unit, w[row_of] * clean[:, 0] ** 2, size)
    b_s, c_s = b_s.reshape(len(names), -1), c_s.reshape(len(names), -1)
    present = c_s.sum(axis=1) > 0  # a split with rows
    if not present.any():
        return pd.Series(a, index=units), pd.Series(np.zeros(len(units)), index=units), len(rows)
    b_s, c_s = b_s[present], c_s[present]
    reliabilities = b_s.sum(axis=1) / c_s.sum(axis=1)
    parts = (b_s - reliabilities[:, None] * c_s) / c_s.sum(axis=1)[:, None]
    d = reliabilities.mean() * c + c.sum() * parts.mean(axis=0)
    return pd.Series(a, index=units), pd.Series(d, index=units), len(rows)


def nps_on_engagement_within(panel: pd.DataFrame, confidence: float = 0.95) -> dict:
    """The same estimand from change within units only (unit and wave fixed effects).

    With tildes for values after weighted demeaning within unit and partialling out wave
    effects (Frisch–Waugh–Lovell), and ``A``, ``B`` the indices of the two halves of the staff
    in random split ``s`` (``analysis.measures.panel.split_halves``)::

        β = Σ w Ñ Ĩ / (ρ̄ Σ w Ĩ²),   ρ̄ = mean_s Σ w Ĩ_A Ĩ_B / Σ w Ĩ²
                                      (per index point; × SD_T for per SD)

    ``ρ̄`` is the within-unit reliability of the index: the share of its change within units
    that is true change. ``Σ w Ĩ_A Ĩ_B`` estimates the true part, since the halves share the
    true score but not the people, so their errors are independent even though each person
    answers alike from wave to wave (which makes the ``s²/n`` noise model wrong within units).
    This is the split-sample instrumental-variable estimator for a mismeasured regressor
    (Fuller, 1987, *Measurement Error Models*, 1.4), with the reliability averaged over the
    random splits (``within_unit_sums``), so the estimate does not hinge on one split, that is
    on how respondent ids are spelled, and the numerator's rows do not change with the split.
    Inverse-variance weights (``nps_precision_weights`` for change within units). The SE is
    the cluster-robust delta-method SE of the ratio, with the per-unit parts ``a_u`` and
    ``d_u`` of numerator and denominator (``within_unit_sums``):
    ``var = G/(G−1) Σ_u ((a_u − β d_u) / Σ d)²``.
    """
    facing = customer_facing_rows(panel)
    a, d, n_obs = within_unit_sums(facing)
    if len(a) < 2:
        return not_estimable(
            "nps_on_engagement_within",
            "engagement_sd",
            f"{len(a)} customer-facing units have two or more staff answers and customer "
            "answers in two or more waves (need 2)",
        )
    if d.sum() <= 0:
        return not_estimable(
            "nps_on_engagement_within",
            "engagement_sd",
            "engagement's change within units cannot be told from noise (split-half "
            "reliability of the change is not above 0)",
        )
    slope = float(a.sum() / d.sum())
    g = len(a)
    std_error = float(np.sqrt(g / (g - 1) * np.sum(((a - slope * d) / d.sum()) ** 2)))
    sd_true = true_index_sd(facing.dropna(subset=["engagement_index"]))
    return tidy_row(
        "nps_on_engagement_within",
        "engagement_sd",
        slope * sd_true,
        std_error * sd_true,
        df=g - 1,
        confidence=confidence,
        n_obs=n_obs,
        n_units=g,
        method="unit and wave fixed effects (within), split-half correction for measurement "
        f"error averaged over {splits_in(facing)} random splits, inverse-variance weights, "
        "SE clustered by unit",
        se_method="cluster_robust_cr1",
        correction="split_half_iv",
    )


def stacked_half_rows(facing: pd.DataFrame, covariates: Sequence[str] = ()) -> pd.DataFrame:
    """The reverse model's rows: each unit-wave once per split and orientation of the halves.

    Parameters
    ----------
    facing : pandas.DataFrame
        Customer-facing unit-waves of the panel (``customer_facing_rows``), with the half
        columns of ``analysis.measures.panel.half_columns``.
    covariates : sequence of str
        Unit columns the model adjusts for, carried into the rows.

    Returns
    -------
    pandas.DataFrame
        The unit-waves with customer answers before the wave and a previous wave, for each
        split ``s`` in two orientations (outcome from half A with lag from half B, then the
        reverse), each kept where both halves have answers, with ``unit_id, wave, split``,
        the covariates, the ``prior_`` counts, ``outcome``, ``outcome_n`` (the outcome half's
        size), ``lag`` and ``lag_noise``.

    Notes
    -----
    Each orientation uses different people on the two sides, so the same people's habits do
    not link the outcome's error to the lag's; stacking both orientations recovers the power of
    the full staff, and stacking every split removes the luck of one split. Clustering by unit
    accounts for the rows sharing a unit-wave. The lag's noise is the pooled within-unit-wave
    variance over the lag half's size, ``s²_w / n_half = v_lag · n_lag / n_half``.
    """
    splits = splits_in(facing)
    halves = [c for split in range(splits) for c in half_columns(split).values()]
    previous = facing[["unit_id", "wave_number", *halves]]
    previous = previous.assign(wave_number=previous["wave_number"] + 1)
    base = [
        "unit_id",
        "wave",
        "wave_number",
        "prior_promoters",
        "prior_detractors",
        "prior_n_responses",
        "prior_nps",
        "engagement_noise_var_lag",
        "n_respondents_lag",
        *(c for c in dict.fromkeys(covariates) if c in facing.columns),
    ]
    eligible = facing.loc[facing["prior_n_responses"] > 0, [*base, *halves]].merge(
        previous, on=["unit_id", "wave_number"], how="inner", suffixes=("", "_lag")
    )
    chosen, columns = [], {"split": [], "outcome": [], "outcome_n": [], "lag": [], "lag_n": []}
    for split in range(splits):
        names = half_columns(split)
        for outcome_half, lag_half in (("a", "b"), ("b", "a")):
            outcome_n = eligible[names[f"n_half_{outcome_half}"]].to_numpy()
            lag_n = eligible[names[f"n_half_{lag_half}"] + "_lag"].to_numpy()
            keep = np.flatnonzero((outcome_n > 0) & (lag_n > 0))
            chosen.append(keep)
            columns["split"].append(np.full(len(keep), split))
            columns["outcome"].append(
                eligible[names[f"engagement_half_{outcome_half}"]].to_numpy(float)[keep]
            )
            columns["outcome_n"].append(outcome_n[keep])
            columns["lag"].append(
                eligible[names[f"engagement_half_{lag_half}"] + "_lag"].to_numpy(float)[keep]
            )
            columns["lag_n"].append(lag_n[keep])
    order = np.concatenate(chosen) if chosen else np.array([], dtype=int)
    rows = eligible[base].iloc[order].reset_index(drop=True)
    for name, parts in columns.items():
        rows[name] = np.concatenate(parts) if parts else np.array([])
    rows["lag_noise"] = rows["engagement_noise_var_lag"] * rows["n_respondents_lag"] / rows["lag_n"]
    return rows.drop(columns="lag_n")


def engagement_on_prior_nps(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), confidence: float = 0.95
) -> dict:
    """The reverse direction: engagement (in SD) per +10 NPS points in the window before a wave.

    Model (customer-facing unit-waves with a previous wave and customer answers before it)::

        I_A[u,t] / SD_T = γ · N̂_prior[u,t] / 10 + δ · Î_B[u,t−1] / SD_T + wave[t] + region[u] + ε

    with the outcome from one half of the staff and the lag from the other, so that the
    same people's habits do not link the outcome's error to the lag's error
    (``measures.panel.split_halves``); both pairings of every random split are stacked
    (``stacked_half_rows``), weighted by the outcome half's size, SE clustered by unit.
    Both predictors are calibrated for
    their sampling error together (``calibrate_jointly``; the NPS noise is the trinomial
    variance with pooled shares): prior NPS also carries information about last quarter's true
    engagement, and ignoring it would leave that engagement partly uncontrolled, so a forward
    effect alone would show up as a reverse one. If customers' experience
    drives staff engagement, γ > 0 even after the previous wave's engagement is held fixed.
    """
    rows = stacked_half_rows(customer_facing_rows(panel), covariates)
    if rows["unit_id"].nunique() < 2:
        return not_estimable(
            "engagement_on_prior_nps",
            "prior_nps_per_10_points",
            f"{rows['unit_id'].nunique()} customer-facing units have staff answers in one "
            "half, the other half's in the wave before and customer answers before it (need 2)",
        )
    sd_true = true_index_sd(customer_facing_rows(panel).dropna(subset=["engagement_index"]))
    weights = rows["outcome_n"].astype(float)
    design = absorbed_design(rows, covariates)
    noise = pd.DataFrame(
        {
            "lag": rows["lag_noise"],
            "prior_nps": nps_noise_var(
                rows["prior_promoters"], rows["prior_detractors"], rows["prior_n_responses"]
            ),
        }
    )
    calibrated = calibrate_jointly(rows[["lag", "prior_nps"]], noise, design, weights)
    predictors = pd.concat(
        [
            (calibrated["prior_nps"] / 10).rename("prior_nps_10"),
            (calibrated["lag"] / sd_true).rename("engagement_lag_sd"),
        ],
        axis=1,
    )
    params, bse = _cluster_fit(
        rows["outcome"] / sd_true, predictors, design, weights, rows["unit_id"]
    )
    return tidy_row(
        "engagement_on_prior_nps",
        "prior_nps_per_10_points",
        float(params[0]),
        float(bse[0]),
        df=int(rows["unit_id"].nunique()) - 1,
        confidence=confidence,
        n_obs=len(rows[["unit_id", "wave"]].drop_duplicates()),
        n_units=int(rows["unit_id"].nunique()),
        method="WLS, wave FE + covariates, split-half outcome and lag stacked over "
        f"{rows['split'].nunique()} random splits, prior NPS and lagged engagement calibrated "
        "jointly, SE clustered by unit",
        se_method="cluster_robust_cr1",
        correction="regression_calibration",
    )


def _uncorrected_nps_slope(rows: pd.DataFrame, covariates: Sequence[str]) -> float:
    """``nps_on_engagement``'s slope without the measurement-error correction."""
    design = absorbed_design(rows, covariates)
    weights = nps_precision_weights(rows, design)
    observed = rows["engagement_index"].to_numpy(float)
    coef, _, _ = design.fit(
        observed / observed.std(ddof=1), rows["nps"].to_numpy(float), weights.to_numpy(float)
    )
    return float(coef[0])


def nps_on_engagement_uncorrected(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), confidence: float = 0.95
) -> dict:
    """The headline slope as a naive analysis would fit it: no correction for noisy unit means.

    Model: as ``nps_on_engagement``, on the same unit-waves and weights, but with the observed
    engagement index ``I`` in place of its calibrated value, scaled by the observed SD::

        NPS[u,t] = β_naive · I[u,t] / SD(I) + wave[t] + region[u] + ε

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel.
    covariates : sequence of str
        Unit covariates beside the wave effects.
    confidence : float
        Level of the interval.

    Returns
    -------
    dict
        A ``tidy.tidy_row`` with ``correction`` ``"none"``, a delete-a-group jackknife SE over
        units, and no p-value: it is reported to show what the correction does, not tested.

    Notes
    -----
    A unit-wave mean of ``n`` answers has reliability ``λ = σ²_T / (σ²_T + v)``, its ICC(2)
    in expectation. Regressing on it attenuates the slope per point by ``λ`` (Fuller 1987,
    §1.1), and its SD is inflated by ``1/√λ``; per SD the naive slope is therefore about
    ``√λ · β``. The reliability page states both numbers, so a reader sees how much a low
    ICC(2) would have shrunk the headline.

    References
    ----------
    Fuller, W. A. (1987). *Measurement Error Models*. Wiley.

    Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability. In Klein
    & Kozlowski (eds.), *Multilevel Theory, Research, and Methods in Organizations*, 349–381.
    """
    rows = customer_facing_rows(panel)
    rows = rows[(rows["n_responses"] > 0) & rows["engagement_index"].notna()]
    slope = _uncorrected_nps_slope(rows, covariates)
    replicates, _, k = delete_group_jackknife(
        rows, lambda r: _uncorrected_nps_slope(r, covariates), [*NPS_MODEL_COLUMNS, *covariates]
    )
    row = tidy_row(
        "nps_on_engagement_uncorrected",
        "engagement_observed_sd",
        slope,
        jackknife_se(replicates),
        df=k - 1,
        confidence=confidence,
        n_obs=len(rows),
        n_units=int(rows["unit_id"].nunique()),
        method="as nps_on_engagement, without regression calibration (observed engagement "
        "per observed SD); not tested",
        se_method="jackknife",
        jackknife_groups=k,
    )
    return row | {"p_value": float("nan")}
