"""Scores with honest uncertainty: every estimate comes with its n and a 95% interval.

Net Promoter Score
------------------
On a 0–10 "how likely are you to recommend" answer, promoters answer 9–10, passives 7–8 and
detractors 0–6 (Reichheld, 2003). With promoter share ``p`` and detractor share ``d`` among
``n`` answers::

    NPS = 100 (p − d)                                   on −100 … +100, not 0 … 100
    var(NPS) = 100² (p + d − (p − d)²) / n              trinomial variance

The variance follows because each answer scores +1, 0 or −1, whose variance is
``p + d − (p − d)²`` (Rocks, 2016). The Wald interval is ``NPS ± z se``. The adjusted-Wald
interval (Rocks, 2016, after Agresti & Coull, 1998) first adds ¾ to the promoter and detractor
counts and 3 to ``n`` (so 1½ to the passives), recomputes the score and its variance, and clips
the interval to ±100; it keeps close to nominal coverage for small ``n`` and extreme shares.

References
----------
Agresti, A. & Coull, B. A. (1998). Approximate is better than "exact" for interval estimation
of binomial proportions. *The American Statistician* 52(2), 119–126.
Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review* 81(12),
46–54.
Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
Statistician* 70(4), 365–372.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import NPS_CATEGORIES, nps_category
from analysis.measures.shrinkage import empirical_bayes

NPS_METHODS = ("wald", "adjusted_wald")


def nps_categories(scores: Iterable[float]) -> tuple[int, int, int]:
    """Count promoters (9–10), passives (7–8) and detractors (0–6) among 0–10 answers.

    Missing answers are dropped before counting.

    Parameters
    ----------
    scores : iterable of float
        Answers to the 0–10 "how likely are you to recommend" item; missing values allowed.

    Returns
    -------
    tuple of int
        ``(promoters, passives, detractors)``.

    Raises
    ------
    ValueError
        If an answer is outside 0–10 or not a whole number.

    Notes
    -----
    Promoters answer 9–10, passives 7–8 and detractors 0–6 (``analysis.data.contract.
    nps_category``).

    References
    ----------
    Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review* 81(12),
    46–54.
    """
    values = pd.to_numeric(pd.Series(scores, dtype="float64"), errors="raise").dropna().to_numpy()
    bad = (values < 0) | (values > 10) | (values != np.floor(values))
    if bad.any():
        raise ValueError(f"NPS answers must be whole numbers 0–10; got {values[bad][:5]}")
    promoters, passives, detractors = np.bincount(nps_category(values), minlength=3)
    return int(promoters), int(passives), int(detractors)


def nps_from_counts(
    promoters: int,
    passives: int,
    detractors: int,
    *,
    method: str = "wald",
    confidence: float = 0.95,
) -> pd.Series:
    """NPS, its standard error and confidence interval from the three category counts.

    The point estimate is always the plain ``100 (p − d)``; ``method`` changes the interval
    only. With ``n = 0`` every statistic is NaN.

    Parameters
    ----------
    promoters, passives, detractors : int
        Counts of answers 9–10, 7–8 and 0–6.
    method : {"wald", "adjusted_wald"}
        The interval (``NPS_METHODS``).
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``nps, std_error, conf_low, conf_high, n, promoters, passives, detractors, method``.

    Raises
    ------
    ValueError
        If ``method`` is not one of ``NPS_METHODS``.

    Notes
    -----
    With ``p = promoters / n`` and ``d = detractors / n``::

        NPS = 100 (p − d),   se = 100 √((p + d − (p − d)²) / n)

    Wald: ``NPS ± z se``. Adjusted Wald: the same with ``promoters + ¾``, ``detractors + ¾``
    and ``n + 3`` for the centre and spread (Rocks, 2016, after Agresti & Coull, 1998). Both
    are clipped to ±100.

    References
    ----------
    Agresti, A. & Coull, B. A. (1998). Approximate is better than "exact" for interval estimation
    of binomial proportions. *The American Statistician* 52(2), 119–126.
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    if method not in NPS_METHODS:
        raise ValueError(f"method must be one of {NPS_METHODS}, not {method!r}")
    n = promoters + passives + detractors
    z = stats.norm.ppf(0.5 + confidence / 2)
    row = {
        "n": n,
        "promoters": promoters,
        "passives": passives,
        "detractors": detractors,
        "method": method,
    }
    if n == 0:
        return pd.Series(
            {"nps": np.nan, "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan, **row}
        )
    estimate, std_error = _nps_and_se(promoters, detractors, n)
    if method == "wald":
        centre, spread = estimate, std_error
    else:
        centre, spread = _nps_and_se(promoters + 0.75, detractors + 0.75, n + 3)
    low = max(centre - z * spread, -100.0)
    high = min(centre + z * spread, 100.0)
    return pd.Series(
        {"nps": estimate, "std_error": std_error, "conf_low": low, "conf_high": high, **row}
    )


def _nps_and_se(promoters: float, detractors: float, n: float) -> tuple[float, float]:
    """``100 (p − d)`` and its trinomial standard error from (possibly adjusted) counts."""
    p, d = promoters / n, detractors / n
    return 100 * (p - d), 100 * float(np.sqrt(trinomial_variance(p, d) / n))


def trinomial_variance(p: float | np.ndarray, d: float | np.ndarray) -> float | np.ndarray:
    """Variance of one answer scored +1 / 0 / −1, ``p + d − (p − d)²``.

    Parameters
    ----------
    p, d : float or ndarray
        Promoter and detractor shares.

    Returns
    -------
    float or ndarray
        The per-answer variance, floored at 0 against rounding.

    Notes
    -----
    ``E[y²] = p + d`` and ``E[y] = p − d``, so ``var(y) = p + d − (p − d)²``; the NPS of ``n``
    answers has variance ``100² var(y) / n`` (Rocks, 2016).

    References
    ----------
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    return np.maximum(p + d - (p - d) ** 2, 0.0)


def nps_noise_var(promoters: pd.Series, detractors: pd.Series, n: pd.Series) -> pd.Series:
    """Sampling variance of each unit's NPS from the trinomial variance with pooled shares.

    Parameters
    ----------
    promoters, detractors, n : Series
        Each unit's (or unit-wave's) promoter and detractor counts and number of answers.

    Returns
    -------
    Series
        ``100² (p + d − (p − d)²) / n_u`` with ``p`` and ``d`` the shares over all rows.

    Notes
    -----
    Pooling the shares keeps a small unit's variance from being zero (or tiny) just because
    its few answers happened to agree; it treats the units' true shares as close enough that
    one variance per answer serves all (the noise model of empirical Bayes and of the
    regression calibration, ``analysis.measures.shrinkage``).

    References
    ----------
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    p = promoters.sum() / n.sum()
    d = detractors.sum() / n.sum()
    return 100**2 * trinomial_variance(p, d) / n


def category_counts(customer_nps: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Promoter, passive and detractor counts of the answers per ``keys``.

    Parameters
    ----------
    customer_nps : DataFrame
        Answers with ``likelihood_to_recommend`` (0–10) and the ``keys`` columns.
    keys : list of str
        The grouping columns.

    Returns
    -------
    DataFrame
        Indexed by ``keys``, with ``promoters``, ``passives`` and ``detractors``
        (``analysis.data.contract.nps_category``).
    """
    code = nps_category(customer_nps["likelihood_to_recommend"].to_numpy(dtype=float))
    indicators = {name: (code == c).astype(int) for c, name in enumerate(NPS_CATEGORIES)}
    return (
        customer_nps[keys]
        .assign(**indicators)
        .groupby(keys, observed=True)[list(NPS_CATEGORIES)]
        .sum()
    )


def nps(scores: Iterable[float], method: str = "wald", confidence: float = 0.95) -> pd.Series:
    """Net Promoter Score of 0–10 answers with its standard error and interval.

    Counts the answers (``nps_categories``) and scores them (``nps_from_counts``).

    Parameters
    ----------
    scores : iterable of float
        Whole-number answers 0–10; missing values are dropped.
    method : {"wald", "adjusted_wald"}
        The interval.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        The fields of ``nps_from_counts``.

    Raises
    ------
    ValueError
        If an answer is outside 0–10 or not whole, or ``method`` is unknown.

    Notes
    -----
    ``NPS = 100 (p − d)``, ``var(NPS) = 100² (p + d − (p − d)²) / n``; see the module
    docstring for the intervals.

    References
    ----------
    Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review* 81(12),
    46–54.
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    return nps_from_counts(*nps_categories(scores), method=method, confidence=confidence)


def clustered_nps(counts: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """NPS pooled over clusters (units), with a cluster-robust standard error.

    Answers from one unit are not independent (they share its staff and its customers), so the
    trinomial standard error would be too small; this one treats the cluster as the sampled
    unit.

    Parameters
    ----------
    counts : DataFrame
        One row per cluster with ``promoters, passives, detractors``.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``nps, std_error, conf_low, conf_high, n, n_clusters, promoters, passives,
        detractors``. With fewer than two non-empty clusters the statistics are NaN.

    Notes
    -----
    Each answer scores ``y = +100, 0, −100``; NPS is the mean of ``y`` and, with ``G``
    clusters, residual sums ``S_g = Σ_{i∈g} (y_i − NPS)``::

        var(NPS) = max(G / (G − 1) · Σ_g S_g² / n²,  100² (p + d − (p − d)²) / n)

    the CR1 sandwich for a mean (Cameron & Miller, 2015), floored at the trinomial variance of
    independent answers (shares ``p`` of promoters and ``d`` of detractors): with few clusters
    the sandwich is biased downwards and noisy, and the larger of the robust and the
    conventional standard error guards against both (Angrist & Pischke, 2009, §8.2.3). The
    interval uses Student's t with ``G − 1`` degrees of freedom, clipped to ±100.

    References
    ----------
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
    inference. *Journal of Human Resources* 50(2), 317–372.

    Angrist, J. D. & Pischke, J.-S. (2009). *Mostly Harmless Econometrics*. Princeton
    University Press.
    """
    promoters = counts["promoters"].to_numpy(dtype=float)
    detractors = counts["detractors"].to_numpy(dtype=float)
    sizes = promoters + counts["passives"].to_numpy(dtype=float) + detractors
    n, clusters = sizes.sum(), int((sizes > 0).sum())
    row = {
        "n": int(n),
        "n_clusters": clusters,
        "promoters": int(promoters.sum()),
        "passives": int(n - promoters.sum() - detractors.sum()),
        "detractors": int(detractors.sum()),
    }
    if clusters < 2:
        return pd.Series(
            {"nps": np.nan, "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan, **row}
        )
    estimate = 100 * (promoters.sum() - detractors.sum()) / n
    residual_sums = 100 * (promoters - detractors) - estimate * sizes
    variance = clusters / (clusters - 1) * np.sum(residual_sums**2) / n**2
    # never below the answers' own trinomial variance: with few clusters CR1 is biased down and
    # noisy, and can come out far smaller than if every answer were independent
    p, d = promoters.sum() / n, detractors.sum() / n
    variance = max(variance, 100**2 * float(trinomial_variance(p, d)) / n)
    std_error = float(np.sqrt(variance))
    t = stats.t.ppf(0.5 + confidence / 2, clusters - 1)
    return pd.Series(
        {
            "nps": estimate,
            "std_error": std_error,
            "conf_low": max(estimate - t * std_error, -100.0),
            "conf_high": min(estimate + t * std_error, 100.0),
            **row,
        }
    )


def clustered_mean_difference(
    first: pd.DataFrame, second: pd.DataFrame, confidence: float = 0.95
) -> pd.Series:
    """Difference of two pooled means with a CR1 standard error by cluster.

    A cluster (a unit) may be in both groups, in different waves, so the two means are not
    independent; the standard error counts each cluster's contribution to both at once.

    Parameters
    ----------
    first, second : DataFrame
        Indexed by cluster, with columns ``total`` (the sum of the outcome) and ``n``.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``estimate, std_error, conf_low, conf_high, p_value, n_obs, n_units``. All but the
        counts are NaN when a group has no observations or there is only one cluster (no
        variance can be estimated from one); ``p_value`` is NaN when the standard error is 0.

    Notes
    -----
    Each cluster's influence on a group mean is ``(total_g − mean · n_g) / N``; differencing
    them within the cluster gives ``S_g`` and::

        var = G / (G − 1) · Σ_g S_g²

    over the ``G`` clusters in either group (Cameron & Miller, 2015). t interval and two-sided
    p-value with ``G − 1`` degrees of freedom.

    References
    ----------
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
    inference. *Journal of Human Resources* 50(2), 317–372.
    """

    def influence(group: pd.DataFrame) -> tuple[float, pd.Series, float]:
        n = float(group["n"].sum())
        mean = float(group["total"].sum()) / n
        return mean, (group["total"] - mean * group["n"]) / n, n

    n_a, n_b = float(first["n"].sum()), float(second["n"].sum())
    clusters = len(first.index.union(second.index))
    if n_a == 0 or n_b == 0 or clusters < 2:  # a side without data, or one cluster: no SE
        return pd.Series(
            {
                "estimate": np.nan,
                "std_error": np.nan,
                "conf_low": np.nan,
                "conf_high": np.nan,
                "p_value": np.nan,
                "n_obs": int(n_a + n_b),
                "n_units": clusters,
            }
        )
    a, influence_a, n_a = influence(first)
    b, influence_b, n_b = influence(second)
    combined = influence_a.sub(influence_b, fill_value=0.0)
    clusters = len(combined)
    estimate = a - b
    std_error = float(np.sqrt(clusters / (clusters - 1) * np.sum(combined.to_numpy() ** 2)))
    t = stats.t.ppf(0.5 + confidence / 2, clusters - 1)
    return pd.Series(
        {
            "estimate": estimate,
            "std_error": std_error,
            "conf_low": estimate - t * std_error,
            "conf_high": estimate + t * std_error,
            "p_value": (
                float(2 * stats.t.sf(abs(estimate) / std_error, clusters - 1))
                if std_error > 0
                else np.nan  # no variation: no test
            ),
            "n_obs": int(n_a + n_b),
            "n_units": clusters,
        }
    )


def clustered_nps_difference(
    first: pd.DataFrame, second: pd.DataFrame, confidence: float = 0.95
) -> pd.Series:
    """Difference ``NPS(first) − NPS(second)`` with a cluster-robust standard error.

    Each answer scores +100, 0 or −100, so NPS is a mean and ``clustered_mean_difference``
    applies.

    Parameters
    ----------
    first, second : DataFrame
        Per-cluster counts: index = cluster id; columns ``promoters, passives, detractors``.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        The fields of ``clustered_mean_difference``, in NPS points.

    Notes
    -----
    Per cluster, ``total_g = 100 (promoters_g − detractors_g)`` and ``n_g`` its answers; the
    CR1 variance of the difference of the two pooled means is then
    ``G / (G − 1) · Σ_g S_g²`` (Cameron & Miller, 2015).

    References
    ----------
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
    inference. *Journal of Human Resources* 50(2), 317–372.
    """

    def totals(counts: pd.DataFrame) -> pd.DataFrame:
        p, d = counts["promoters"].astype(float), counts["detractors"].astype(float)
        return pd.DataFrame({"total": 100 * (p - d), "n": p + counts["passives"].astype(float) + d})

    return clustered_mean_difference(totals(first), totals(second), confidence)


def nps_difference(
    first: tuple[int, int, int], second: tuple[int, int, int], confidence: float = 0.95
) -> pd.Series:
    """Difference between two independent NPS values, with its z test.

    For groups that share units (or customers), use ``clustered_nps_difference`` instead.

    Parameters
    ----------
    first, second : tuple of int
        ``(promoters, passives, detractors)`` of each group.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``estimate, std_error, conf_low, conf_high, z, p_value, n_first, n_second``.

    Notes
    -----
    With independent samples the variances add::

        se(NPS₁ − NPS₂) = √(se₁² + se₂²),   z = (NPS₁ − NPS₂) / se

    using the trinomial variance of each (Rocks, 2016); the interval is ``estimate ± z se``.

    References
    ----------
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    a = nps_from_counts(*first)
    b = nps_from_counts(*second)
    estimate = float(a["nps"] - b["nps"])
    std_error = float(np.hypot(a["std_error"], b["std_error"]))
    z = stats.norm.ppf(0.5 + confidence / 2)
    statistic = estimate / std_error if std_error > 0 else np.nan
    return pd.Series(
        {
            "estimate": estimate,
            "std_error": std_error,
            "conf_low": estimate - z * std_error,
            "conf_high": estimate + z * std_error,
            "z": statistic,
            "p_value": float(2 * stats.norm.sf(abs(statistic))),
            "n_first": int(a["n"]),
            "n_second": int(b["n"]),
        }
    )


def enps(scores: Iterable[float], method: str = "wald", confidence: float = 0.95) -> pd.Series:
    """Employee Net Promoter Score: NPS of the 0–10 "recommend as a place to work" item.

    The same definition, scale (−100 … +100, not 0 … 100) and intervals as customer NPS, so it
    simply calls ``nps``.

    Parameters
    ----------
    scores : iterable of float
        Whole-number answers 0–10; missing values are dropped.
    method : {"wald", "adjusted_wald"}
        The interval.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        The fields of ``nps``; the score is in ``nps``.

    Raises
    ------
    ValueError
        If an answer is outside 0–10 or not whole, or ``method`` is unknown.

    Notes
    -----
    Promoters 9–10, detractors 0–6, ``eNPS = 100 (p − d)``, trinomial standard error
    ``100 √((p + d − (p − d)²) / n)``, Wald or adjusted-Wald interval (see the module
    docstring; Rocks, 2016).

    References
    ----------
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    return nps(scores, method=method, confidence=confidence)


def nps_by_group(
    customer_nps: pd.DataFrame,
    by: str | list[str],
    cluster: str = "unit_id",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Customer NPS per group (e.g. quarter or region), with cluster-robust intervals.

    Answers are counted per group and cluster, then each group's NPS and interval come from
    ``clustered_nps``, so customers of one unit are not treated as independent.

    Parameters
    ----------
    customer_nps : DataFrame
        The contract's ``customer_nps`` table (``likelihood_to_recommend``, the ``by`` columns
        and ``cluster``).
    by : str or list of str
        The grouping column(s).
    cluster : str
        The column whose values are the clusters.
    confidence : float
        Level of the intervals.

    Returns
    -------
    DataFrame
        The group keys and ``nps, std_error, conf_low, conf_high, n, n_clusters, promoters,
        passives, detractors``, one row per group.

    Notes
    -----
    Within a group, ``var(NPS) = G / (G − 1) · Σ_g S_g² / n²`` over its ``G`` clusters, with
    ``S_g`` the cluster's sum of ``y − NPS`` and ``y = +100, 0, −100`` (CR1; Cameron & Miller,
    2015).

    References
    ----------
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
    inference. *Journal of Human Resources* 50(2), 317–372.
    """
    keys = [by] if isinstance(by, str) else list(by)
    counts = category_counts(customer_nps, [*keys, cluster])
    rows = []
    for group, table in counts.groupby(level=list(range(len(keys))), observed=True):
        group = group if isinstance(group, tuple) else (group,)
        rows.append(
            {**dict(zip(keys, group, strict=True)), **clustered_nps(table, confidence).to_dict()}
        )
    return pd.DataFrame(rows)


def nps_by_unit(customer_nps: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Each unit's NPS with its adjusted-Wald interval and an empirical-Bayes shrunken value.

    Parameters
    ----------
    customer_nps : DataFrame
        The contract's ``customer_nps`` table (``unit_id``, ``likelihood_to_recommend``).
    confidence : float
        Level of both intervals.

    Returns
    -------
    DataFrame
        ``unit_id, nps, conf_low, conf_high, n, promoters, passives, detractors, shrunken,
        shrunken_conf_low, shrunken_conf_high, shrinkage, rank`` (1 = highest shrunken NPS, ties
        sharing the best rank).

    Notes
    -----
    Raw unit NPS from a handful of answers swings widely, so rankings use the shrunken value
    from the kit's one empirical-Bayes function (``analysis.measures.shrinkage.empirical_bayes``,
    intercept only): with the unit's sampling variance ``v_u`` (``nps_noise_var``: trinomial,
    pooled shares over the unit's ``n``)::

        τ² = max(0, Σ_u (NPS_u − mean NPS)² / (K − 1) − mean(v_u))
        shrunken_u = m + (1 − B_u)(NPS_u − m),   B_u = v_u / (v_u + τ²)

    with ``m`` the precision-weighted mean and posterior SD ``√((1 − B_u) v_u + B_u² / Σ W)``
    (``W_u = 1/(v_u + τ²)``; the second term is ``m``'s uncertainty) for the shrunken interval,
    clipped to ±100. Customer answers are not employee-derived, so no suppression applies.

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    counts = category_counts(customer_nps, ["unit_id"])
    rows = [
        nps_from_counts(*row, method="adjusted_wald", confidence=confidence).rename(unit)
        for unit, row in counts.iterrows()
    ]
    table = pd.DataFrame(rows).rename_axis("unit_id").reset_index()
    sampling = nps_noise_var(
        table["promoters"].astype(float),
        table["detractors"].astype(float),
        table["n"].astype(float),
    )
    fit = empirical_bayes(table["nps"].astype(float), sampling, confidence=confidence)
    table["shrunken"] = fit["shrunken"]
    table["shrinkage"] = fit["shrinkage"]
    table["shrunken_conf_low"] = fit["conf_low"].clip(lower=-100)
    table["shrunken_conf_high"] = fit["conf_high"].clip(upper=100)
    table["rank"] = fit["rank"].astype(int)
    return table[
        [
            "unit_id",
            "nps",
            "conf_low",
            "conf_high",
            "n",
            "promoters",
            "passives",
            "detractors",
            "shrunken",
            "shrunken_conf_low",
            "shrunken_conf_high",
            "shrinkage",
            "rank",
        ]
    ]
