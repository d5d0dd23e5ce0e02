"""One tidy row per estimand: the only constructor of an ``estimates.csv`` row.

Every estimate, the calibration study's naive ones included, is one row of ``ESTIMATE_COLUMNS``,
built by ``tidy_row`` (or ``not_estimable`` when the data cannot support it). The row follows
R's broom: ``tidy`` columns (``estimand, term, estimate, std_error, conf_low, conf_high,
p_value``), the counts, a short human ``method``, and the facts about the fit a reviewer
filters on as columns (broom's ``glance``): ``se_method``, ``jackknife_groups``,
``bootstrap_draws`` and ``correction``.

References
----------
Robinson, D., Hayes, A. & Couch, S. (2023). broom: Convert Statistical Objects into Tidy
Tibbles. R package, https://broom.tidymodels.org (``tidy(..., exponentiate = TRUE)``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

#: The tidy columns every row had before the fit facts became columns.
TIDY_COLUMNS = (
    "estimand",
    "term",
    "estimate",
    "std_error",
    "conf_low",
    "conf_high",
    "p_value",
    "n_obs",
    "n_units",
    "method",
)
#: Facts about the fit, one column each instead of words in ``method``.
FIT_COLUMNS = ("se_method", "jackknife_groups", "bootstrap_draws", "correction")
ESTIMATE_COLUMNS = (*TIDY_COLUMNS, *FIT_COLUMNS)

#: The standard-error methods ``se_method`` may name.
SE_METHODS = (
    "jackknife",  # delete-a-group jackknife over units (linkage.jackknife_se)
    "cluster_robust_cr1",  # sandwich with G/(G − 1) small-sample factor, clustered by unit
    "bootstrap",  # cluster bootstrap over units
    "iid",  # model-based, observations independent (the naive analyses)
    "none",  # no standard error of its own
)


def tidy_row(
    estimand: str,
    term: str,
    estimate: float,
    std_error: float,
    *,
    n_obs: int,
    n_units: int,
    method: str,
    se_method: str,
    df: float | None = None,
    confidence: float = 0.95,
    conf_low: float | None = None,
    conf_high: float | None = None,
    p_value: float | None = None,
    exponentiate: bool = False,
    jackknife_groups: int = 0,
    bootstrap_draws: int = 0,
    correction: str = "none",
) -> dict:
    """One estimate as a tidy row of ``ESTIMATE_COLUMNS``.

    Parameters
    ----------
    estimand, term : str
        What is estimated, and the coefficient or contrast reported.
    estimate, std_error : float
        The point estimate and its standard error, both on the model's (linear) scale: for a
        hazard or odds ratio, the log ratio and the SE of the log ratio.
    n_obs, n_units : int
        Observations and units (clusters) the estimate rests on.
    method : str
        A short human description of the model.
    se_method : str
        How the SE was computed, one of ``SE_METHODS``.
    df : float or None
        Degrees of freedom of the reference t distribution; ``None`` for the normal.
    confidence : float
        Level of the interval.
    conf_low, conf_high, p_value : float, optional
        An interval and p-value computed elsewhere (a percentile bootstrap interval, a pooled
        NPS contrast), on the reported scale; then ``df``, ``confidence`` and ``exponentiate``
        are not used for them.
    exponentiate : bool
        Report ``exp(estimate)`` and the exponentiated interval (a hazard or odds ratio).
    jackknife_groups, bootstrap_draws : int
        Groups of a delete-a-group jackknife, draws of a bootstrap (0 when not used).
    correction : str
        The correction for measurement error applied (``"regression_calibration"``,
        ``"split_half_iv"``) or ``"none"``.

    Returns
    -------
    dict
        The row, keyed by ``ESTIMATE_COLUMNS``.

    Notes
    -----
    With ``q = t_{df, (1 + confidence)/2}`` (the normal quantile when ``df`` is None)::

        conf = estimate ± q · std_error,    p = 2 · P(T > |estimate / std_error|)

    (p missing when ``std_error`` is not positive). As broom's ``exponentiate = TRUE``,
    an exponentiated row reports ``exp(estimate)``, ``exp(conf_low)``, ``exp(conf_high)``, and
    keeps ``std_error`` on the log scale, where the interval and test were computed: the SE of
    a ratio is not a useful number, and a delta-method one would not match the interval.
    """
    if conf_low is None:
        reference = stats.norm if df is None else stats.t(df)
        quantile = reference.ppf(0.5 + confidence / 2)
        p_value = 2 * reference.sf(abs(estimate / std_error)) if std_error > 0 else np.nan
        conf_low, conf_high = estimate - quantile * std_error, estimate + quantile * std_error
        if exponentiate:
            estimate, conf_low, conf_high = np.exp(estimate), np.exp(conf_low), np.exp(conf_high)
    return {
        "estimand": estimand,
        "term": term,
        "estimate": float(estimate),
        "std_error": float(std_error),
        "conf_low": float(conf_low),
        "conf_high": float(conf_high),
        "p_value": float(p_value),
        "n_obs": int(n_obs),
        "n_units": int(n_units),
        "method": method,
        "se_method": se_method,
        "jackknife_groups": int(jackknife_groups),
        "bootstrap_draws": int(bootstrap_draws),
        "correction": correction,
    }


def not_estimable(estimand: str, term: str, reason: str) -> dict:
    """The row of an estimand the data cannot support: no numbers, ``method`` says why.

    Parameters
    ----------
    estimand, term : str
        As in ``tidy_row``.
    reason : str
        Why the data cannot support the estimate; ``method`` reads "not estimable: <reason>".

    Returns
    -------
    dict
        A row of ``ESTIMATE_COLUMNS`` with missing numbers, zero counts and ``se_method``
        ``"none"``.
    """
    return {
        "estimand": estimand,
        "term": term,
        "estimate": np.nan,
        "std_error": np.nan,
        "conf_low": np.nan,
        "conf_high": np.nan,
        "p_value": np.nan,
        "n_obs": 0,
        "n_units": 0,
        "method": f"not estimable: {reason}",
        "se_method": "none",
        "jackknife_groups": 0,
        "bootstrap_draws": 0,
        "correction": "none",
    }


def computed_row(
    estimand: str, term: str, result: Mapping, *, method: str, se_method: str, **facts
) -> dict:
    """A tidy row from an estimate whose interval and p-value were computed elsewhere.

    Parameters
    ----------
    estimand, term : str
        The row's names.
    result : mapping
        ``estimate, std_error, conf_low, conf_high, p_value, n_obs, n_units`` on the reported
        scale (a pooled contrast of ``measures.nps``, a percentile bootstrap).
    method, se_method : str
        As in ``tidy_row``.
    **facts
        ``jackknife_groups``, ``bootstrap_draws``, ``correction`` as in ``tidy_row``.

    Returns
    -------
    dict
        ``tidy_row`` of those values.
    """
    return tidy_row(
        estimand,
        term,
        result["estimate"],
        result["std_error"],
        conf_low=result["conf_low"],
        conf_high=result["conf_high"],
        p_value=result["p_value"],
        n_obs=result["n_obs"],
        n_units=result["n_units"],
        method=method,
        se_method=se_method,
        **facts,
    )
