"""Brand alignment from both sides: what staff believe against what customers experience.

The contract's external brand alignment (``data/README.md``, "How the tables link"): per unit
and wave, the staff's ``brand_alignment`` index ("I believe in and can explain our brand
promise", 0–100) beside the customers' ``brand_promise`` index ("They deliver what their
advertising promises", 1–5 rescaled to 0–100) in the outcome window after the wave.
:func:`brand_alignment_by_unit_wave` puts the two side by side, each with its interval, and asks
of every unit-wave whether its two sides disagree beyond their noise.

**The two sides are on different scales.** Staff answer about belief, customers about
delivery; an organisation whose staff average 75 and whose customers average 60 has not
failed every unit. So each side is first placed relative to the other unit-waves of the same
wave, robustly: centred on its median and scaled by its median absolute deviation (MAD,
× 1.4826 so that it estimates the SD of a normal distribution; Hampel, 1974; Rousseeuw &
Croux, 1993)::

    s = (A − med_t(A)) / MAD_t(A),      c = (P − med_t(P)) / MAD_t(P)
    d = s − c,                          var(d) = v_A / MAD_t(A)² + v_P / MAD_t(P)²
    z = d / √var(d),                    p = 2 Φ(−|z|)

with ``A`` the staff index and ``v_A`` its variance about the unit-wave's true value (sampling,
plus any release noise), ``P`` and ``v_P`` the customers'. ``z`` says how many standard errors
apart the unit-wave's two relative positions are: a unit whose staff are at the top of the
organisation while its customers are at the bottom has a large positive ``z``. Across the
table's unit-waves the p-values are adjusted by Benjamini & Hochberg's (1995) step-up
procedure, and ``disagrees`` is true where the adjusted p-value is below ``alpha``: a list of
units to look at, with the false discovery rate held at ``alpha``.

**Assumptions.** The two sides' errors are independent (different people answer them); the
medians and MADs are treated as known (with a few dozen unit-waves per wave they are estimated
far more precisely than any one unit-wave); ``z`` is read on the normal scale (each side's mean
rests on its pooled variance, with many degrees of freedom). "Disagrees" is about relative
positions, not about the two means, and true positions differ between units by more than noise
anyway: the flag finds the units where the gap is too large to be noise, not a causal claim.

Pure functions on pandas frames: the released, suppressed table is built in
``analysis.models.brand_alignment.brand_alignment_table``.

References
----------
Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
powerful approach to multiple testing. *Journal of the Royal Statistical Society B* 57(1),
289–300.

Hampel, F. R. (1974). The influence curve and its role in robust estimation. *Journal of the
American Statistical Association* 69(346), 383–393.

Rousseeuw, P. J. & Croux, C. (1993). Alternatives to the median absolute deviation. *Journal of
the American Statistical Association* 88(424), 1273–1283.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "BRAND_TABLE_COLUMNS",
    "MAD_TO_SD",
    "MIN_ROWS_PER_WAVE",
    "brand_alignment_by_unit_wave",
    "robust_position",
    "t_interval",
]

#: The columns of the brand alignment table (``brand_alignment.csv``), in order.
BRAND_TABLE_COLUMNS = (
    "unit_id",
    "wave",
    "n_staff",
    "staff_alignment",
    "staff_conf_low",
    "staff_conf_high",
    "n_customers",
    "brand_promise_index",
    "promise_conf_low",
    "promise_conf_high",
    "difference_z",
    "p_adjusted",
    "disagrees",
)
#: Consistency factor of the MAD for the SD of a normal distribution, 1 / Φ⁻¹(3/4).
MAD_TO_SD = 1.482602218505602
#: Fewest unit-waves of a wave with both sides shown for its medians and MADs to be used:
#: below it the relative positions are not stable enough to compare, and ``z`` stays empty.
MIN_ROWS_PER_WAVE = 5


def t_interval(
    index, variance, df, confidence: float, extra_variance=0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``index ± t_{df} √variance`` of a 0–100 index, widened for independent extra noise.

    Parameters
    ----------
    index, variance : array-like of float
        The figure and its sampling variance.
    df : float or array-like
        Degrees of freedom of the variance (of a pooled variance, ``Σ (n − 1)``).
    confidence : float
        The interval's level.
    extra_variance : array-like of float
        Variance of noise added on release (``2 b²`` of the Laplace mechanism); each half-width
        ``h`` becomes ``√(h² + z² · extra)``, as ``analysis.measures.privacy.widened_interval``
        does.

    Returns
    -------
    tuple of ndarray
        ``(low, high)``, clipped to the index's range 0–100; missing where the figure or its
        variance is.
    """
    index = np.asarray(index, dtype="float64")
    variance = np.asarray(variance, dtype="float64")
    df = np.broadcast_to(np.asarray(df, dtype="float64"), index.shape)
    quantile = np.full(index.shape, np.nan)
    usable = np.isfinite(df) & (df > 0)
    quantile[usable] = stats.t.ppf(0.5 + confidence / 2, df[usable])
    half = quantile * np.sqrt(variance)
    normal = stats.norm.ppf(0.5 + confidence / 2)
    half = np.sqrt(half**2 + normal**2 * np.asarray(extra_variance, dtype="float64"))
    # a 0–100 index: the true value lies in the range, so clipping loses no coverage
    return np.clip(index - half, 0.0, 100.0), np.clip(index + half, 0.0, 100.0)


def robust_position(values: pd.Series, groups: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Each value's median and scaled MAD within its group (missing where the group is small).

    Parameters
    ----------
    values : Series
        The figures (missing values are left out of the medians).
    groups : Series
        The group of each value (the wave).

    Returns
    -------
    tuple of Series
        ``median`` and ``MAD_TO_SD × MAD`` of each value's group, aligned with ``values``;
        missing where the group holds fewer than ``MIN_ROWS_PER_WAVE`` values or its MAD is 0.
    """
    frame = pd.DataFrame({"value": values.to_numpy(float), "group": groups.to_numpy()})
    grouped = frame.groupby("group")["value"]
    median = grouped.transform("median")
    deviation = (frame["value"] - median).abs()
    mad = deviation.groupby(frame["group"]).transform("median") * MAD_TO_SD
    enough = grouped.transform("count") >= MIN_ROWS_PER_WAVE
    mad = mad.where(enough & (mad > 0))
    return (
        pd.Series(median.where(enough).to_numpy(), index=values.index),
        pd.Series(mad.to_numpy(), index=values.index),
    )


def brand_alignment_by_unit_wave(
    rows: pd.DataFrame, confidence: float = 0.95, alpha: float = 0.05
) -> pd.DataFrame:
    """Staff brand alignment against customers' brand promise, per unit × wave.

    Parameters
    ----------
    rows : DataFrame
        One row per unit-wave: ``unit_id, wave``; the staff side ``n_staff``,
        ``staff_alignment`` (0–100, missing where it may not be shown), ``staff_noise_var``
        (its sampling variance), ``staff_release_var`` (release noise, 0 for exact figures)
        and ``staff_df`` (degrees of freedom of the pooled variance); the customer side
        ``n_customers``, ``brand_promise_index`` (0–100), ``promise_noise_var`` and
        ``promise_df``.
    confidence : float
        Level of both sides' intervals.
    alpha : float
        False discovery rate of ``disagrees`` (Benjamini–Hochberg).

    Returns
    -------
    DataFrame
        ``BRAND_TABLE_COLUMNS``, sorted by unit and wave: each side's figure with its t
        interval (the staff one widened for release noise) and n, ``difference_z`` (see the
        module docstring: each side centred on its wave's median and scaled by its MAD, the
        difference over its noise), ``p_adjusted`` (BH over every row with a ``z``) and
        ``disagrees`` (``p_adjusted < alpha``; pandas ``boolean``, missing without a ``z``).
        The medians and MADs use the rows where both sides are shown; a wave with fewer than
        ``MIN_ROWS_PER_WAVE`` of them gives no ``z``.
    """
    from statsmodels.stats.multitest import multipletests

    table = rows.sort_values(["unit_id", "wave"], kind="stable").reset_index(drop=True)
    staff_low, staff_high = t_interval(
        table["staff_alignment"],
        table["staff_noise_var"],
        table["staff_df"],
        confidence,
        table["staff_release_var"],
    )
    promise_low, promise_high = t_interval(
        table["brand_promise_index"], table["promise_noise_var"], table["promise_df"], confidence
    )
    both = table["staff_alignment"].notna() & table["brand_promise_index"].notna()
    shown = table[both]
    staff_median, staff_mad = robust_position(shown["staff_alignment"], shown["wave"])
    promise_median, promise_mad = robust_position(shown["brand_promise_index"], shown["wave"])
    difference = (shown["staff_alignment"] - staff_median) / staff_mad - (
        shown["brand_promise_index"] - promise_median
    ) / promise_mad
    variance = (shown["staff_noise_var"] + shown["staff_release_var"]) / staff_mad**2 + shown[
        "promise_noise_var"
    ] / promise_mad**2
    z = pd.Series(np.nan, index=table.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        z.loc[shown.index] = (difference / np.sqrt(variance)).to_numpy(float)
    z = z.where(np.isfinite(z))
    adjusted = pd.Series(np.nan, index=table.index)
    tested = z.notna()
    if tested.any():
        p_values = 2 * stats.norm.sf(np.abs(z[tested].to_numpy(float)))
        adjusted[tested] = multipletests(p_values, method="fdr_bh")[1]
    disagrees = pd.array(adjusted < alpha, dtype="boolean")
    disagrees[~tested.to_numpy()] = pd.NA
    return pd.DataFrame(
        {
            "unit_id": table["unit_id"],
            "wave": table["wave"],
            "n_staff": table["n_staff"].astype("int64"),
            "staff_alignment": table["staff_alignment"].astype(float),
            "staff_conf_low": staff_low,
            "staff_conf_high": staff_high,
            "n_customers": table["n_customers"].astype("int64"),
            "brand_promise_index": table["brand_promise_index"].astype(float),
            "promise_conf_low": promise_low,
            "promise_conf_high": promise_high,
            "difference_z": z.astype(float),
            "p_adjusted": adjusted.astype(float),
            "disagrees": disagrees,
        },
        columns=list(BRAND_TABLE_COLUMNS),
    )
