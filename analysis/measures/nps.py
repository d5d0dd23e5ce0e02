"""Scores with honest uncertainty: every estimate comes with its n and a 95% interval.

Net Promoter Score
------------------
On a 0–10 "how likely are you to recommend" answer, promoters answer 9–10, passives 7–8 and
detractors 0–6 (Reichheld, 2003, *Harvard Business Review* 81(12)). With promoter share ``p`` and
detractor share ``d`` among ``n`` answers::

    NPS = 100 (p − d)                                   on −100 … +100, not 0 … 100
    var(NPS) = 100² (p + d − (p − d)²) / n              trinomial variance

The variance follows because each answer scores +1, 0 or −1, whose variance is
``p + d − (p − d)²`` (Rocks, 2016, "Interval estimation for the 'net promoter score'", *The
American Statistician* 70(4), 365–372). The Wald interval is ``NPS ± z se``. The adjusted-Wald
interval (Rocks, 2016, after Agresti & Coull, 1998) first adds ¾ to the promoter and detractor
counts and 3 to ``n`` (so 1½ to the passives), recomputes the score and its variance, and clips
the interval to ±100; it keeps close to nominal coverage for small ``n`` and extreme shares.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
NPS_METHODS = ("wald", "adjusted_wald")


def nps_categories(scores: Iterable[float]) -> tuple[int, int, int]:
    """Count promoters (9–10), passives (7–8) and detractors (0–6) among 0–10 answers.

    Missing answers are dropped; an answer outside 0–10 or not whole raises ``ValueError``.
    """
    values = pd.to_numeric(pd.Series(scores, dtype="float64"), errors="raise").dropna().to_numpy()
    bad = (values < 0) | (values > 10) | (values != np.floor(values))
    if bad.any():
        raise ValueError(f"NPS answers must be whole numbers 0–10; got {values[bad][:5]}")
    promoters = int((values >= PROMOTER_MIN).sum())
    detractors = int((values <= DETRACTOR_MAX).sum())
    return promoters, len(values) - promoters - detractors, detractors


def nps_from_counts(
    promoters: int,
    passives: int,
    detractors: int,
    *,
    method: str = "wald",
    confidence: float = 0.95,
) -> pd.Series:
    """NPS, its standard error and confidence interval from the three category counts.

    Returns a Series with ``nps, std_error, conf_low, conf_high, n, promoters, passives,
    detractors, method``. The point estimate is always the plain ``100 (p − d)``; ``method``
    changes the interval only. With ``n = 0`` every statistic is NaN.
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
    p, d = promoters / n, detractors / n
    variance = max(p + d - (p - d) ** 2, 0.0) / n
    return 100 * (p - d), 100 * np.sqrt(variance)


def nps(scores: Iterable[float], method: str = "wald", confidence: float = 0.95) -> pd.Series:
    """Net Promoter Score of 0–10 answers with its standard error and interval.

    See the module docstring for the formulas. ``method`` is ``"wald"`` or ``"adjusted_wald"``.
    """
    return nps_from_counts(*nps_categories(scores), method=method, confidence=confidence)


def clustered_nps(counts: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """NPS pooled over clusters (units), with a cluster-robust standard error.

    ``counts`` has one row per cluster with ``promoters, passives, detractors``. Answers from one
    unit are not independent (they share its staff and its customers), so the trinomial standard
    error would be too small. Each answer scores ``y = +100, 0, −100``; NPS is the mean of ``y``
    and, with ``G`` clusters, residual sums ``S_g = Σ_{i∈g} (y_i − NPS)``::

        var(NPS) = G / (G − 1) · Σ_g S_g² / n²

    the CR1 sandwich for a mean (Cameron & Miller, 2015, "A practitioner's guide to
    cluster-robust inference", *Journal of Human Resources* 50(2), 317–372). The interval uses
    Student's t with ``G − 1`` degrees of freedom. Needs at least two clusters.
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

    ``first`` and ``second`` are indexed by cluster with columns ``total`` (the sum of the
    outcome) and ``n``. A cluster (a unit) may be in both groups, in different waves, so the two
    means are not independent. Each cluster's influence on a group mean is
    ``(total_g − mean · n_g) / N``; differencing them within the cluster gives ``S_g`` and::

        var = G / (G − 1) · Σ_g S_g²

    over the ``G`` clusters in either group (Cameron & Miller, 2015). t interval and two-sided
    p-value with ``G − 1`` df. Returns ``estimate, std_error, conf_low, conf_high, p_value,
    n_obs, n_units``; all but the counts are NaN when a group has no observations or there is
    only one cluster (no variance can be estimated from one).
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

    ``first`` and ``second`` hold per-cluster counts (index = cluster id; columns
    ``promoters, passives, detractors``). Each answer scores +100, 0 or −100, so NPS is a mean
    and ``clustered_mean_difference`` applies.
    """

    def totals(counts: pd.DataFrame) -> pd.DataFrame:
        p, d = counts["promoters"].astype(float), counts["detractors"].astype(float)
        return pd.DataFrame({"total": 100 * (p - d), "n": p + counts["passives"].astype(float) + d})

    return clustered_mean_difference(totals(first), totals(second), confidence)


def nps_difference(
    first: tuple[int, int, int], second: tuple[int, int, int], confidence: float = 0.95
) -> pd.Series:
    """Difference between two independent NPS values, with its z test.

    ``first`` and ``second`` are (promoters, passives, detractors). With independent samples
    the variances add::

        se(NPS₁ − NPS₂) = √(se₁² + se₂²),   z = (NPS₁ − NPS₂) / se

    using the trinomial variance of each (Rocks, 2016). Returns ``estimate, std_error,
    conf_low, conf_high, z, p_value, n_first, n_second``. For groups that share units (or
    customers), use ``clustered_nps_difference`` instead.
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
    simply calls ``nps``: promoters 9–10, detractors 0–6, ``eNPS = 100 (p − d)``, trinomial
    standard error, Wald or adjusted-Wald interval (see the module docstring; Rocks, 2016).
    Returns the fields of ``nps``; the score is in ``nps``.
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
    ``clustered_nps``, so customers of one unit are not treated as independent. Returns the
    group keys and ``nps, std_error, conf_low, conf_high, n, n_clusters, promoters, passives,
    detractors``.
    """
    keys = [by] if isinstance(by, str) else list(by)
    score = customer_nps["likelihood_to_recommend"]
    counts = (
        customer_nps[[*keys, cluster]]
        .assign(
            promoters=(score >= PROMOTER_MIN).astype(int),
            detractors=(score <= DETRACTOR_MAX).astype(int),
            passives=((score > DETRACTOR_MAX) & (score < PROMOTER_MIN)).astype(int),
        )
        .groupby([*keys, cluster], observed=True)[["promoters", "passives", "detractors"]]
        .sum()
    )
    rows = []
    for group, table in counts.groupby(level=list(range(len(keys))), observed=True):
        group = group if isinstance(group, tuple) else (group,)
        rows.append(
            {**dict(zip(keys, group, strict=True)), **clustered_nps(table, confidence).to_dict()}
        )
    return pd.DataFrame(rows)


def nps_by_unit(customer_nps: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Each unit's NPS with its adjusted-Wald interval and an empirical-Bayes shrunken value.

    Raw unit NPS from a handful of answers swings widely, so rankings use the shrunken value
    (normal–normal empirical Bayes; Morris, 1983, *JASA* 78(381)): with the unit's sampling
    variance ``v_u`` (trinomial, pooled shares over the unit's ``n``) and the between-unit
    variance ``τ²`` (method of moments, ``var(NPS_u) − mean(v_u)``)::

        shrunken_u = m + (1 − B_u)(NPS_u − m),   B_u = v_u / (v_u + τ²)

    with ``m`` the precision-weighted mean and posterior SD ``√((1 − B_u) v_u)`` for the
    shrunken interval. Columns: ``unit_id, nps, conf_low, conf_high, n, shrunken,
    shrunken_conf_low, shrunken_conf_high, shrinkage, rank`` (1 = highest shrunken NPS).
    Customer answers are not employee-derived, so no suppression applies.
    """
    score = customer_nps["likelihood_to_recommend"]
    counts = (
        customer_nps.assign(
            promoters=(score >= PROMOTER_MIN).astype(int),
            detractors=(score <= DETRACTOR_MAX).astype(int),
            passives=((score > DETRACTOR_MAX) & (score < PROMOTER_MIN)).astype(int),
        )
        .groupby("unit_id", observed=True)[["promoters", "passives", "detractors"]]
        .sum()
    )
    rows = [
        nps_from_counts(*row, method="adjusted_wald", confidence=confidence).rename(unit)
        for unit, row in counts.iterrows()
    ]
    table = pd.DataFrame(rows).rename_axis("unit_id").reset_index()
    p = counts["promoters"].sum() / counts.to_numpy().sum()
    d = counts["detractors"].sum() / counts.to_numpy().sum()
    sampling = 100**2 * (p + d - (p - d) ** 2) / table["n"].astype(float)
    tau2 = max(float(table["nps"].var()) - float(sampling.mean()), 1e-6)
    weights = 1 / (sampling + tau2)
    centre = float(np.sum(weights * table["nps"]) / np.sum(weights))
    shrinkage = sampling / (sampling + tau2)
    table["shrunken"] = centre + (1 - shrinkage) * (table["nps"] - centre)
    table["shrinkage"] = shrinkage
    z = stats.norm.ppf(0.5 + confidence / 2)
    posterior_sd = np.sqrt((1 - shrinkage) * sampling)
    table["shrunken_conf_low"] = (table["shrunken"] - z * posterior_sd).clip(lower=-100)
    table["shrunken_conf_high"] = (table["shrunken"] + z * posterior_sd).clip(upper=100)
    table["rank"] = table["shrunken"].rank(ascending=False, method="first").astype(int)
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
