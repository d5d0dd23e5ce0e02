"""Does staff belief in the brand promise show up in what customers say of it? (contract v2)

The estimand ``brand_promise_on_brand_alignment``: points of the customers' brand-promise index
(``brand_promise`` 1–5 rescaled to 0–100, in the outcome window after a wave: the next quarter)
per SD of the unit's **true** staff brand alignment at that wave. Model (customer-facing
unit-waves with staff brand-alignment answers and customer brand-promise answers)::

    P[u,t] = β · Â[u,t] / SD_T(A) + wave[t] + covariates[u] + ε

* ``P``: the brand-promise index of the unit's customers in the outcome window
  (``analysis.measures.panel.brand_promise_columns``), with sampling variance ``v_P = s²_P / n``;
* ``A``: the staff ``brand_alignment`` index, a mean of few people with sampling variance
  ``v_A = s²_A / n`` (``analysis.measures.panel.scale_noise``); ``Â`` is its regression
  calibration, ``Xγ + λ (A − Xγ)`` with ``λ = σ²_T|X / (σ²_T|X + v_A)``
  (``analysis.models.linkage.calibrate``; Carroll et al., 2006, ch. 4), which removes the
  attenuation the staff side's noise would cause; the customers' noise is in the outcome,
  where it costs precision but no bias;
* ``SD_T(A)``: the SD of the true alignment index across the unit-waves, sampling noise
  removed (method of moments, as ``linkage.true_index_sd``), so β is per SD of true alignment;
* weighted least squares with inverse-variance weights ``1 / (τ² + v_P)``, ``τ²`` the
  between-unit variance of ``P`` beyond the model (DerSimonian & Laird, 1986), as for NPS;
* the SE is the delete-a-group jackknife over units (50 groups; Kott, 2001), every ingredient
  (weights, calibration, SD) re-estimated in each replicate, t with ``K − 1`` df: units are the
  clusters, as a unit's waves share its people and customers.

**Assumptions.** The staff side's error is independent of the true alignment and of the
customers' error (different people answer the two); the link is linear over the range of the
data (with ordinal answers β is the population least-squares slope, which is the average
derivative when alignment is normal: Stein's lemma); wave and covariate effects are additive.
It is an association in time order (staff belief at a wave, customers in the quarter after it),
not by itself a causal effect: a unit's brand alignment travels with its engagement.

On a synthetic study (``analysis.data.synth`` with ``internal_service``) the truth is
``truth.json``'s ``effects.brand_promise_on_brand_alignment``.

References
----------
Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement Error
in Nonlinear Models*, 2nd ed. Chapman & Hall/CRC.

DerSimonian, R. & Laird, N. (1986). Meta-analysis in clinical trials. *Controlled Clinical
Trials* 7(3), 177–188.

Kott, P. S. (2001). The delete-a-group jackknife. *Journal of Official Statistics* 17(4),
521–526.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.measures.brand import BRAND_TABLE_COLUMNS, brand_alignment_by_unit_wave
from analysis.measures.privacy import released_pooled_variance
from analysis.measures.shrinkage import (
    CALIBRATION_FLOOR,
    calibration_signal,
    df_correction,
)
from analysis.models import linkage
from analysis.models.tidy import not_estimable, tidy_row

NAME = "brand_promise_on_brand_alignment"
TERM = "brand_alignment_sd"
#: The panel columns the estimand reads (``analysis.measures.panel.unit_wave_panel`` adds them
#: when customers answered ``brand_promise`` and the instrument has ``brand_alignment``).
STAFF = ("brand_alignment_index", "brand_alignment_noise_var", "brand_alignment_respondents")
CUSTOMERS = ("brand_promise", "brand_promise_noise_var", "brand_promise_n")


def brand_rows(panel: pd.DataFrame) -> pd.DataFrame:
    """The unit-waves the estimand uses: customer-facing, with both sides answered.

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel.

    Returns
    -------
    DataFrame
        Customer-facing rows with a staff brand-alignment index and its noise variance and at
        least one customer brand-promise answer in the outcome window; empty when the panel
        lacks the columns (no ``brand_promise``, or no ``brand_alignment`` scale).
    """
    if not set(STAFF + CUSTOMERS) <= set(panel.columns):
        return panel.iloc[0:0]
    rows = linkage.customer_facing_rows(panel)
    keep = (
        (rows["brand_promise_n"] > 0)
        & rows["brand_alignment_index"].notna()
        & rows["brand_alignment_noise_var"].notna()
    )
    return rows[keep]


def true_alignment_sd(rows: pd.DataFrame) -> float:
    """SD of the true staff brand-alignment index across ``rows``: observed variance less noise.

    ``√σ²_T`` with ``σ²_T = Σ (A − Ā)² / (n − 1) − mean(v_A)``, floored at 5% of the observed
    variance (``analysis.measures.shrinkage.calibration_signal``): ``linkage.true_index_sd``
    for the brand-alignment scale (Morris, 1983).
    """
    index = rows["brand_alignment_index"].to_numpy(dtype=float)
    return linkage.true_sd(index, float(rows["brand_alignment_noise_var"].mean()))


def promise_precision_weights(rows: pd.DataFrame, design: linkage.Design) -> np.ndarray:
    """Inverse-variance weights ``1 / (τ² + v_P)`` of the customers' brand-promise index.

    ``τ²``: residual variance of ``P`` on the design (divisor ``n − p``) less the mean sampling
    variance, floored at 0 (``analysis.measures.shrinkage.residual_moments``), as
    ``linkage.nps_precision_weights`` does for NPS (DerSimonian & Laird, 1986).
    """
    return linkage.precision_weights(
        rows["brand_promise"].to_numpy(float),
        rows["brand_promise_noise_var"].to_numpy(float),
        design,
    )


def _slope(rows: pd.DataFrame, covariates: Sequence[str]) -> float:
    """The point estimate on ``rows``: the whole pipeline (weights, calibration, SD)."""
    sd_true = true_alignment_sd(rows)
    design = linkage.absorbed_design(rows, covariates)
    weights = promise_precision_weights(rows, design)
    calibrated, _ = linkage.calibrate(
        rows["brand_alignment_index"],
        rows["brand_alignment_noise_var"],
        design,
        pd.Series(weights, index=rows.index),
    )
    coef, _, _ = design.fit(
        calibrated.to_numpy(float) / sd_true, rows["brand_promise"].to_numpy(float), weights
    )
    return float(coef[0])


def _too_thin(rows: pd.DataFrame, covariates: Sequence[str]) -> str | None:
    """Why ``rows`` cannot carry the estimate, or ``None``."""
    units = rows["unit_id"].nunique()
    if units < 3:
        return (
            f"{units} customer-facing units have staff brand-alignment answers and customer "
            "brand-promise answers in the quarter after a wave (need 3)"
        )
    if rows["brand_alignment_index"].nunique() < 2 or rows["brand_promise"].nunique() < 2:
        return "staff brand alignment or customers' brand promise does not vary"
    columns = linkage.absorbed_design(rows, covariates).n_columns + 1  # and the slope
    if len(rows) <= columns:
        return (
            f"{len(rows)} unit-waves for {columns} coefficients (the slope, wave and covariate "
            "effects): no residual variation to estimate the noise from"
        )
    return None


def brand_promise_on_brand_alignment_fit(
    panel: pd.DataFrame, covariates: Sequence[str]
) -> tuple[pd.DataFrame, float, np.ndarray, np.ndarray]:
    """The fit: its rows, slope, each row's jackknife group and the slope without each group.

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel with the brand columns.
    covariates : sequence of str
        Unit covariates beside the wave effects.

    Returns
    -------
    tuple
        ``(rows, slope, group, replicates)``.

    Raises
    ------
    linkage.EstimationError
        When the rows cannot carry it (``_too_thin``).
    """
    rows = brand_rows(panel)
    reason = _too_thin(rows, covariates)
    if reason is not None:
        raise linkage.EstimationError(reason)
    slope = _slope(rows, covariates)
    replicates, group, _ = linkage.delete_group_jackknife(rows, lambda r: _slope(r, covariates))
    return rows, slope, group, replicates


def brand_promise_on_brand_alignment(
    panel: pd.DataFrame, covariates: Sequence[str] = ("region",), confidence: float = 0.95
) -> dict:
    """Brand-promise index points in the next quarter per SD of true staff brand alignment.

    The model, estimator, assumptions and references are in the module docstring.

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel (with the brand columns of a dataset with ``brand_promise``).
    covariates : sequence of str
        Unit covariates beside the wave effects.
    confidence : float
        Level of the interval.

    Returns
    -------
    dict
        A ``tidy.tidy_row`` (jackknife SE, t with ``K − 1`` df, ``n_obs`` the unit-waves), or
        a ``tidy.not_estimable`` row saying why the data cannot carry it.
    """
    row, _ = fit_with_jackknife(panel, covariates, confidence)
    return row


def fit_with_jackknife(
    panel: pd.DataFrame, covariates: Sequence[str], confidence: float
) -> tuple[dict, tuple[pd.Series, np.ndarray] | None]:
    """The tidy row and, when estimated, ``(unit_ids of the rows, group)`` and the replicates
    for the influence check: ``((unit_ids, group), replicates)`` or ``None``."""
    try:
        rows, slope, group, replicates = brand_promise_on_brand_alignment_fit(panel, covariates)
    except linkage.EstimationError as error:
        return not_estimable(NAME, TERM, str(error)), None
    k = len(replicates)
    used = [c for c in covariates if c in rows.columns]
    row = tidy_row(
        NAME,
        TERM,
        slope,
        linkage.jackknife_se(replicates),
        df=k - 1,
        confidence=confidence,
        n_obs=len(rows),
        n_units=int(rows["unit_id"].nunique()),
        method="WLS (inverse-variance weights), wave FE"
        + "".join(f" + {c}" for c in used)
        + ", customers' brand-promise index (0-100) in the quarter after the wave on calibrated "
        "staff brand alignment per SD of the true index, SE by delete-a-group jackknife over "
        "units",
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )
    return row, ((rows["unit_id"], group), replicates)


def without_each_unit(fitting, units: pd.Index) -> np.ndarray:
    """``brand_promise_on_brand_alignment`` without each unit of ``units``, approximately.

    Parameters
    ----------
    fitting : analysis.models.registry.Fitting
        The run's panel and parameters.
    units : pandas.Index
        Sorted unit ids.

    Returns
    -------
    ndarray
        The estimate without each unit; the estimate itself for a unit it does not use; NaN
        everywhere when it is not estimable.

    Notes
    -----
    Weights, wave and covariate effects are held at their full-sample values; what the unit
    moves is kept: with ``x̃ = M(λ ⊙ r)`` the calibrated alignment after partialling out the
    design (``M``; ``r`` the residual of ``A`` on the design, ``λ = s / (s + v_A)``), the
    signal variance without the unit ``s_u`` is recomputed exactly from sums (the moments of
    ``linkage.calibrate`` less the unit's part), and ``x̃`` moves to first order,
    ``x̃_u = x̃ + (s_u − s) g`` with ``g = M(v_A / (s + v_A)² ⊙ r)``. The slope without the
    unit's rows is then a ratio of sums less the unit's own::

        b_u = (Σ w x̃ ỹ − own + δ (Σ w g ỹ − own)) / (Σ w x̃² − own + 2δ (Σ w x̃ g − own) + δ² (…))

    (δ = s_u − s), times ``SD_T`` recomputed exactly without the unit. Every unit costs a few
    sums, so twenty thousand units cost no more than one fit; the approximation is checked
    against exact refits in tests/test_brand.py, and the units that could flip the finding are
    refitted exactly by the influence check (``estimate.one_unit_fragility``).
    """
    covariates = fitting.parameters.covariates
    rows = brand_rows(fitting.panel)
    if _too_thin(rows, covariates) is not None:
        return np.full(len(units), np.nan)
    codes = units.get_indexer(rows["unit_id"].astype("string"))
    n_units = len(units)
    design = linkage.absorbed_design(rows, covariates)
    w = promise_precision_weights(rows, design)
    index = rows["brand_alignment_index"].to_numpy(float)
    noise = rows["brand_alignment_noise_var"].to_numpy(float)
    residual = linkage.weighted_residuals(index, design, w)[1]
    n_columns = linkage.design_columns(design)
    weight_sum = w.sum()
    total = np.sum(w * residual**2) / weight_sum * df_correction(len(rows), n_columns)
    mean_noise = np.sum(w * noise) / weight_sum
    signal = float(calibration_signal(total, mean_noise))
    partial = linkage.weighted_residuals(
        np.column_stack(
            [
                signal / (signal + noise) * residual,
                noise / (signal + noise) ** 2 * residual,
                rows["brand_promise"].to_numpy(float),
            ]
        ),
        design,
        w,
    )[1]
    x, g, y = partial[:, 0], partial[:, 1], partial[:, 2]

    def sums(values: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(w * values)), np.bincount(codes, w * values, n_units)

    (xy, own_xy), (gy, own_gy) = sums(x * y), sums(g * y)
    (xx, own_xx), (xg, own_xg), (gg, own_gg) = sums(x * x), sums(x * g), sums(g * g)
    # the signal variance without each unit, from sums (linkage.calibrate's moments)
    own_rows = np.bincount(codes, minlength=n_units)
    own_weight = np.bincount(codes, w, n_units)
    squares = w * residual**2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = weight_sum - own_weight
        total_u = (squares.sum() - np.bincount(codes, squares, n_units)) / left
        total_u = total_u * df_correction(len(rows) - own_rows, n_columns)
        noise_u = (mean_noise * weight_sum - np.bincount(codes, w * noise, n_units)) / left
        signal_u = np.maximum(total_u - noise_u, CALIBRATION_FLOOR * total_u)
        delta = np.where(own_rows > 0, signal_u - signal, 0.0)
        numerator = xy - own_xy + delta * (gy - own_gy)
        denominator = xx - own_xx + 2 * delta * (xg - own_xg) + delta**2 * (gg - own_gg)
        without = numerator / denominator * _sd_without(rows, codes, n_units)
    # a unit without rows here leaves the estimate as it is, to the bit
    estimate = getattr(fitting, "rows", {}).get(NAME, {}).get("estimate")
    if estimate is not None and np.isfinite(estimate):
        without[own_rows == 0] = estimate
    return without


def _sd_without(rows: pd.DataFrame, codes: np.ndarray, n_units: int) -> np.ndarray:
    """``true_alignment_sd`` without each unit, exactly, from sums."""
    x = rows["brand_alignment_index"].to_numpy(dtype=float)
    v = rows["brand_alignment_noise_var"].to_numpy(dtype=float)

    def sd(count, first, second, noise):
        with np.errstate(divide="ignore", invalid="ignore"):
            observed = (second - first**2 / count) / (count - 1)
            return np.sqrt(np.maximum(observed - noise / count, CALIBRATION_FLOOR * observed))

    return sd(
        len(x) - np.bincount(codes, minlength=n_units),
        x.sum() - np.bincount(codes, x, n_units),
        (x**2).sum() - np.bincount(codes, x**2, n_units),
        v.sum() - np.bincount(codes, v, n_units),
    )


# --------------------------------------------------------------------------------------------
# The table: both sides per unit × wave, released


def brand_alignment_table(
    panel: pd.DataFrame, unit_wave: pd.DataFrame, parameters, release
) -> pd.DataFrame:
    """``brand_alignment.csv``: staff brand alignment against customers' brand promise.

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel (``analysis.measures.panel.unit_wave_panel``).
    unit_wave : DataFrame
        ``unit_wave.csv`` as the run releases it (``estimate.released_unit_wave``), indexed as
        ``panel``: the staff figures shown here are its ``brand_alignment_index``.
    parameters : Parameters
        ``min_group_size``, ``confidence`` and ``alpha``.
    release : analysis.measures.privacy.Release
        The run's release (``privacy.release_for``), which also draws the pooled variance.

    Returns
    -------
    DataFrame
        ``analysis.measures.brand.BRAND_TABLE_COLUMNS``: one row per customer-facing unit-wave
        with customer brand-promise answers in the quarter after the wave (empty when the
        panel has no ``brand_promise`` or ``unit_wave`` no ``brand_alignment_index``),
        computed by ``analysis.measures.brand.brand_alignment_by_unit_wave``.

    Notes
    -----
    **Privacy.** The staff figures are employee-derived. ``staff_alignment`` is exactly the
    ``brand_alignment_index`` of ``unit_wave.csv``, taken from it: suppressed by the same rules
    (primary below ``min_group_size`` on the scale's own respondents, complementary for the
    totals by wave, by region and wave and overall) and released with the same Laplace draw,
    so this table publishes no new version of it to average or subtract. Its interval uses the
    within-unit-wave variance of brand alignment pooled over unit-waves of at least
    ``min_group_size`` respondents, released once with Laplace noise of scale
    ``100² / (df ε)`` (one response moves a sum of squares by less than ``100²``; ``df = Σ
    (n − 1)``), floored at 0 (README, "Privacy": one more ε for a study with brand promise), plus
    the index's release variance ``2 (100 / (n ε))²``. ``difference_z``, ``p_adjusted`` and
    ``disagrees`` are computed from these released figures only (and the exact customer side,
    which the kit does not protect, as NPS), so they are post-processing and hidden wherever
    the staff figure is; the counts stay visible, as everywhere.
    """
    empty = pd.DataFrame(columns=list(BRAND_TABLE_COLUMNS))
    if not set(STAFF + CUSTOMERS) <= set(panel.columns):
        return empty
    if "brand_alignment_index" not in unit_wave.columns:
        return empty
    minimum = parameters.min_group_size
    released = unit_wave
    rows = linkage.customer_facing_rows(panel)
    rows = rows[rows["brand_promise_n"] > 0]
    released = released.loc[rows.index]  # suppression keeps the panel's index
    n_staff = rows["brand_alignment_respondents"].fillna(0).to_numpy(float)
    large = n_staff >= minimum
    staff_ss = panel["brand_alignment_within_ss"]
    staff_n = panel["brand_alignment_respondents"].fillna(0)
    pooled_rows = staff_n >= minimum
    degrees = int((staff_n[pooled_rows] - 1).sum())
    pooled = float(staff_ss[pooled_rows].sum() / degrees) if degrees > 0 else np.nan
    pool = released_pooled_variance(
        pooled, degrees, ("brand_alignment", "brand_alignment_pooled_within_variance"), release
    )
    staff = released["brand_alignment_index"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sampling = np.where(large, pool / n_staff, np.nan)
        release_var = np.where(large, 2 * (100.0 / (n_staff * release.epsilon)) ** 2, np.nan)
    customers = rows["brand_promise_n"].to_numpy(float)
    customer_degrees = int((panel["brand_promise_n"][panel["brand_promise_n"] > 0] - 1).sum())
    frame = pd.DataFrame(
        {
            "unit_id": rows["unit_id"].to_numpy(),
            "wave": rows["wave"].to_numpy(),
            "n_staff": n_staff.astype("int64"),
            "staff_alignment": staff,
            "staff_noise_var": np.where(np.isfinite(staff), sampling, np.nan),
            "staff_release_var": np.where(np.isfinite(staff), release_var, np.nan),
            "staff_df": float(degrees),
            "n_customers": customers.astype("int64"),
            "brand_promise_index": rows["brand_promise"].to_numpy(float),
            "promise_noise_var": rows["brand_promise_noise_var"].to_numpy(float),
            "promise_df": float(customer_degrees),
        }
    )
    return brand_alignment_by_unit_wave(frame, parameters.confidence, parameters.alpha)
