"""Adjusting p-values for many tests: Benjamini–Hochberg (false discovery rate).

The key drivers and the unit × wave engagement cells use it. The estimand table's Holm
adjustment (family-wise error) lives with the estimands, in ``analysis.models``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def benjamini_hochberg(p_values):
    """Benjamini–Hochberg adjusted p-values (false discovery rate).

    Parameters
    ----------
    p_values : array-like or Series
        Unadjusted p-values. Missing values stay missing and are not counted in ``m``.

    Returns
    -------
    ndarray or Series
        Adjusted p-values in the input order (a Series keeps its index). Rejecting every
        hypothesis whose adjusted p-value is at most ``q`` controls the false discovery rate at
        ``q`` for independent or positively dependent tests.

    Notes
    -----
    With the ``m`` p-values sorted, ``p_(1) ≤ … ≤ p_(m)``::

        p̃_(i) = min(1, min_{k ≥ i} m p_(k) / k)

    the step-up procedure of Benjamini & Hochberg, as in
    ``statsmodels.stats.multitest.multipletests(method="fdr_bh")``.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. *Journal of the Royal Statistical Society B* 57(1),
    289–300.
    """
    values = np.asarray(p_values, dtype="float64")
    if values.ndim != 1:
        raise ValueError("p_values must be one-dimensional")
    present = ~np.isnan(values)
    if ((values[present] < 0) | (values[present] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full(values.shape, np.nan)
    observed = values[present]
    m = observed.size
    if m:
        order = np.argsort(observed, kind="mergesort")
        scaled = observed[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]
        result = np.empty(m)
        result[order] = np.minimum(stepped, 1.0)
        adjusted[present] = result
    if isinstance(p_values, pd.Series):
        return pd.Series(adjusted, index=p_values.index, name=p_values.name)
    return adjusted
