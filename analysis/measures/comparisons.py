"""Do groups differ, and did a value move? Two tests the "what to act on" charts answer with.

``equal_estimates_test`` asks whether several independent estimates (regions) share one value;
``paired_change`` asks whether the units' mean moved between two waves, each unit compared with
itself. Both return the estimate, its interval, the test and the counts, so a sentence can say
"no clear evidence" first when the data do not support a difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def equal_estimates_test(estimates, std_errors) -> pd.Series:
    """Cochran's Q test that independent estimates share one value.

    Parameters
    ----------
    estimates, std_errors : array-like
        One estimate per group (a region's NPS) and its standard error. Groups must be
        independent: no unit in two groups. Groups without a positive, finite SE are left out.

    Returns
    -------
    Series
        ``q``, ``df`` (groups − 1), ``p_value``, ``pooled`` (the inverse-variance weighted
        mean), ``lowest`` and ``highest`` estimates, ``n_groups``. ``q`` and ``p_value`` are NaN
        with fewer than two groups.

    Notes
    -----
    With weights ``w_i = 1 / se_i²`` and ``θ̄ = Σ w_i θ_i / Σ w_i``::

        Q = Σ w_i (θ_i − θ̄)²  ~  χ²_{k − 1}   under H0: θ_1 = … = θ_k

    (Cochran 1954). With cluster-robust SEs from few clusters the χ² reference is approximate;
    it is a screen for "do the groups differ at all", not a ranking.

    References
    ----------
    Cochran, W. G. (1954). The combination of estimates from different experiments.
    *Biometrics* 10(1), 101–129.
    """
    theta = np.asarray(estimates, dtype=float)
    se = np.asarray(std_errors, dtype=float)
    usable = np.isfinite(theta) & np.isfinite(se) & (se > 0)
    theta, se = theta[usable], se[usable]
    k = len(theta)
    if k < 2:
        return pd.Series(
            {
                "q": np.nan,
                "df": max(k - 1, 0),
                "p_value": np.nan,
                "pooled": float(theta[0]) if k else np.nan,
                "lowest": float(theta.min()) if k else np.nan,
                "highest": float(theta.max()) if k else np.nan,
                "n_groups": k,
            }
        )
    weights = 1.0 / se**2
    pooled = float(np.sum(weights * theta) / np.sum(weights))
    q = float(np.sum(weights * (theta - pooled) ** 2))
    return pd.Series(
        {
            "q": q,
            "df": k - 1,
            "p_value": float(stats.chi2.sf(q, k - 1)),
            "pooled": pooled,
            "lowest": float(theta.min()),
            "highest": float(theta.max()),
            "n_groups": k,
        }
    )


def paired_change(
    table: pd.DataFrame, value: str, first, last, confidence: float = 0.95
) -> pd.Series:
    """The mean change of ``value`` from wave ``first`` to wave ``last``, unit by unit.

    Parameters
    ----------
    table : DataFrame
        One row per unit and wave: ``unit_id``, ``wave`` and ``value`` (missing where not shown).
    value : str
        The column that changed.
    first, last : wave values
        The two waves compared.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``estimate`` (mean of ``last − first`` over units with both), ``std_error``,
        ``conf_low``, ``conf_high``, ``p_value`` and ``n_units``; NaN but the count with fewer
        than two such units.

    Notes
    -----
    Each unit is its own control, so stable differences between units cancel: with
    ``d_u = x_{u,last} − x_{u,first}`` over the ``n`` units with both,
    ``d̄ ± t_{n−1} · s_d / √n`` and the paired t-test (Student 1908).

    References
    ----------
    Student (1908). The probable error of a mean. *Biometrika* 6(1), 1–25.
    """
    wide = table[table["wave"].isin([first, last])].pivot_table(
        index="unit_id", columns="wave", values=value, aggfunc="mean"
    )
    if first not in wide or last not in wide:
        differences = np.array([])
    else:
        differences = (wide[last] - wide[first]).dropna().to_numpy(float)
    n = len(differences)
    if n < 2:
        return pd.Series(
            {
                "estimate": np.nan,
                "std_error": np.nan,
                "conf_low": np.nan,
                "conf_high": np.nan,
                "p_value": np.nan,
                "n_units": n,
            }
        )
    mean = float(differences.mean())
    std_error = float(differences.std(ddof=1) / np.sqrt(n))
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    p_value = float(2 * stats.t.sf(abs(mean) / std_error, n - 1)) if std_error > 0 else np.nan
    return pd.Series(
        {
            "estimate": mean,
            "std_error": std_error,
            "conf_low": mean - t * std_error,
            "conf_high": mean + t * std_error,
            "p_value": p_value,
            "n_units": n,
        }
    )
