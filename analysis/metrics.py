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

from analysis.contract import DEFAULT_INSTRUMENT, Instrument, Scale

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


# ---------------------------------------------------------------------------------------------
# Employee-survey scales: reliability, agreement, scores and scorecards
# ---------------------------------------------------------------------------------------------

#: Plain-English names of the six points of connection, for tables and charts.
POINT_OF_CONNECTION_LABELS = {
    "poc_listening": "Listening",
    "poc_valued": "Feeling valued",
    "poc_resolution": "Resolving differences",
    "poc_honesty": "Honesty",
    "poc_reliability": "Doing what we say",
    "poc_authenticity": "Authenticity",
}

#: Respondent means within this distance below a favourable threshold still count as favourable:
#: the mean is rebuilt from a 0–100 score and may carry floating-point rounding.
_THRESHOLD_TOLERANCE = 1e-9


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, on 0 … 1.

    With ``p = successes / n`` and ``z`` the standard normal quantile at ``(1 + confidence) / 2``::

        centre    = (p + z² / (2n)) / (1 + z² / n)
        halfwidth = z / (1 + z² / n) · √(p (1 − p) / n + z² / (4 n²))

    The interval inverts the score test, so it never leaves [0, 1] and does not collapse to a
    point when ``p`` is 0 or 1, unlike the Wald interval (Wilson, 1927, "Probable inference, the
    law of succession, and statistical inference", *JASA* 22(158), 209–212; recommended by
    Newcombe, 1998, *Statistics in Medicine* 17(8), 857–872, and by Brown, Cai & DasGupta, 2001,
    *Statistical Science* 16(2), 101–133). Assumes independent answers. ``n = 0`` gives NaNs.
    """
    if n == 0:
        return np.nan, np.nan
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0 … n; got {successes} of {n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    halfwidth = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(centre - halfwidth, 0.0), min(centre + halfwidth, 1.0)


def _mean_with_t_interval(
    values: np.ndarray, confidence: float, bounds: tuple[float, float]
) -> dict[str, float]:
    """Mean, standard error ``s / √n`` and Student-t interval (``n − 1`` df) clipped to bounds."""
    n = len(values)
    mean = float(values.mean()) if n else np.nan
    if n < 2:
        return {"mean": mean, "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan}
    std_error = float(values.std(ddof=1) / np.sqrt(n))
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return {
        "mean": mean,
        "std_error": std_error,
        "conf_low": max(mean - t * std_error, bounds[0]),
        "conf_high": min(mean + t * std_error, bounds[1]),
    }


def feldt_interval(alpha: float, n: int, k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Feldt's confidence interval for coefficient alpha from ``n`` respondents and ``k`` items.

    ``(1 − α) / (1 − α̂)`` follows an F distribution with ``df1 = n − 1`` and
    ``df2 = (n − 1)(k − 1)`` (Feldt, 1965, *Psychometrika* 30(3), 357–370). Inverting it gives,
    with ``γ = 1 − confidence`` and ``F_q`` the ``q`` quantile of that F distribution::

        low  = 1 − (1 − α̂) · F_{1 − γ/2}
        high = 1 − (1 − α̂) · F_{γ/2}

    (Feldt, Woodruff & Salih, 1987, "Statistical inference for coefficient alpha", *Applied
    Psychological Measurement* 11(1), 93–103, formulas 6 and 7 on p. 95). The upper F quantile
    gives the *lower* limit. The distribution is exact when the items are parallel with normal
    errors (compound symmetry); with unequal item variances the interval is approximate.
    """
    if n < 2 or k < 2 or not np.isfinite(alpha):
        return np.nan, np.nan
    gamma = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * stats.f.ppf(1 - gamma / 2, df1, df2)
    high = 1 - (1 - alpha) * stats.f.ppf(gamma / 2, df1, df2)
    return float(low), float(high)


def cronbach_alpha(items: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """Cronbach's coefficient alpha of a multi-item scale, with Feldt's confidence interval.

    ``items`` has one row per respondent and one column per item, all keyed in the same
    direction (flip reverse-coded items first, as ``scale_scores`` does). Rows with any missing
    item are dropped (listwise deletion), so ``n`` counts complete rows only. With ``k`` items,
    item variances ``s²_i`` and the variance ``s²_X`` of the row totals (all with ``n − 1``)::

        α = k / (k − 1) · (1 − Σ s²_i / s²_X)

    (Cronbach, 1951, "Coefficient alpha and the internal structure of tests", *Psychometrika*
    16(3), 297–334). Alpha is the reliability of the total only if the items are (essentially)
    tau-equivalent; otherwise it is a lower bound. The interval is ``feldt_interval``.

    Returns a Series ``alpha, conf_low, conf_high, n, k``; alpha and the interval are NaN with
    fewer than two complete rows or a total with no variance. Fewer than two items raises
    ``ValueError``.
    """
    data = items.astype("float64").to_numpy()
    data = data[~np.isnan(data).any(axis=1)]
    n, k = data.shape
    if k < 2:
        raise ValueError(f"alpha needs at least two items; got {k}")
    total_variance = float(data.sum(axis=1).var(ddof=1)) if n >= 2 else np.nan
    if not total_variance > 0:
        alpha = np.nan
    else:
        alpha = k / (k - 1) * (1 - float(data.var(axis=0, ddof=1).sum()) / total_variance)
    low, high = feldt_interval(alpha, n, k, confidence)
    return pd.Series({"alpha": alpha, "conf_low": low, "conf_high": high, "n": n, "k": k})


def icc_oneway(scores: pd.Series, groups: pd.Series, confidence: float = 0.95) -> pd.Series:
    """ICC(1) and ICC(2) of individual scores nested in groups, from a one-way ANOVA.

    ``scores`` and ``groups`` are matched by position. Rows with a missing score or group are
    dropped. With ``N`` scores in ``J`` groups of sizes ``n_j``, between- and within-group mean
    squares ``MSB`` (``J − 1`` df) and ``MSW`` (``N − J`` df)::

        ICC(1) = (MSB − MSW) / (MSB + (k − 1) MSW)
        ICC(2) = (MSB − MSW) / MSB
        k      = k0 = (N − Σ n_j² / N) / (J − 1)

    (Bliese, 2000, "Within-group agreement, non-independence, and reliability", in Klein &
    Kozlowski (eds.), *Multilevel theory, research, and methods in organizations*, Jossey-Bass,
    349–381). ICC(1) is the share of score variance that lies between groups; ICC(2) is the
    reliability of a group mean (Spearman–Brown of ICC(1) at ``k0``). For unequal group sizes
    ``k`` is the adjusted average group size ``k0`` of the one-way random-effects ANOVA (Donner,
    1986, *International Statistical Review* 54(1), 67–82), not the plain mean ``N / J`` used by
    R's ``multilevel::ICC1``; the two agree when groups are equal. ICC(1) is negative when group
    means vary less than chance alone would make them (``MSB < MSW``).

    Interval: with ``F = MSB / MSW``, ``γ = 1 − confidence``, ``F_L = F / F_{1−γ/2}(J−1, N−J)``
    and ``F_U = F · F_{1−γ/2}(N−J, J−1)``::

        ICC(1): ((F_L − 1) / (F_L + k − 1),  (F_U − 1) / (F_U + k − 1))
        ICC(2): (1 − 1 / F_L,                1 − 1 / F_U)

    (Shrout & Fleiss, 1979, *Psychological Bulletin* 86(2), 420–428, ICC(1,1) and ICC(1,k);
    McGraw & Wong, 1996, *Psychological Methods* 1(1), 30–46, case 1). Exact for equal group
    sizes with normal group effects and errors; approximate (with ``k0``) otherwise.

    Returns ``icc1, conf_low, conf_high, icc2, icc2_conf_low, icc2_conf_high, n, n_groups,
    group_size`` (``group_size`` is ``k0``). Statistics are NaN with fewer than two groups or
    no within-group degrees of freedom.
    """
    y = pd.Series(scores).astype("float64").to_numpy()
    group = pd.Series(groups)
    if len(group) != len(y):
        raise ValueError("scores and groups must have the same length")
    keep = ~np.isnan(y) & group.notna().to_numpy()
    y = y[keep]
    codes, _ = pd.factorize(group[keep].to_numpy())
    n, n_groups = len(y), int(codes.max()) + 1 if len(codes) else 0
    row = {"n": n, "n_groups": n_groups}
    nan_row = {
        "icc1": np.nan,
        "conf_low": np.nan,
        "conf_high": np.nan,
        "icc2": np.nan,
        "icc2_conf_low": np.nan,
        "icc2_conf_high": np.nan,
    }
    if n_groups < 2 or n - n_groups < 1:
        return pd.Series({**nan_row, **row, "group_size": np.nan})
    sizes = np.bincount(codes).astype(float)
    group_means = (np.bincount(codes, weights=y) / sizes)[codes]
    df_between, df_within = n_groups - 1, n - n_groups
    ms_between = float(np.sum((group_means - y.mean()) ** 2)) / df_between
    ms_within = float(np.sum((y - group_means) ** 2)) / df_within
    k0 = (n - np.sum(sizes**2) / n) / df_between
    if ms_within == 0:
        return pd.Series({**nan_row, **row, "group_size": k0})
    gamma = 1 - confidence
    f_observed = ms_between / ms_within
    f_low = f_observed / stats.f.ppf(1 - gamma / 2, df_between, df_within)
    f_high = f_observed * stats.f.ppf(1 - gamma / 2, df_within, df_between)
    return pd.Series(
        {
            "icc1": (ms_between - ms_within) / (ms_between + (k0 - 1) * ms_within),
            "conf_low": (f_low - 1) / (f_low + k0 - 1),
            "conf_high": (f_high - 1) / (f_high + k0 - 1),
            "icc2": (ms_between - ms_within) / ms_between if ms_between > 0 else np.nan,
            "icc2_conf_low": 1 - 1 / f_low,
            "icc2_conf_high": 1 - 1 / f_high,
            **row,
            "group_size": k0,
        }
    )


def rwg(
    items: pd.DataFrame | pd.Series,
    groups: pd.Series,
    low: int,
    high: int,
    truncate: bool = True,
) -> pd.DataFrame:
    """Within-group agreement r_wg (one item) or r_wg(J) (a scale of J items), per group.

    ``items`` (one column per item, or a Series for one item) and ``groups`` are matched by
    position; rows with any missing item or a missing group are dropped (listwise, as in R's
    ``multilevel::rwg.j``). Answers are whole numbers ``low … high``, so there are
    ``A = high − low + 1`` options and the variance expected if everyone answered at random
    (uniformly) is ``σ²_EU = (A² − 1) / 12``. Within a group, with ``s̄²`` the mean of the item
    variances (``n − 1`` divisor; for one item, its variance)::

        r_wg    = 1 − s² / σ²_EU                                   (J = 1)
        r_wg(J) = J (1 − s̄² / σ²_EU) / (J (1 − s̄² / σ²_EU) + s̄² / σ²_EU)

    (James, Demaree & Wolf, 1984, "Estimating within-group interrater reliability with and
    without response bias", *Journal of Applied Psychology* 69(1), 85–98.) r_wg(J) is the
    Spearman–Brown step-up of ``1 − s̄² / σ²_EU``. When ``s̄² > σ²_EU`` the group disagrees more
    than random answering would; the formulas then leave [0, 1], and with ``truncate=True`` (the
    default) such groups get 0, as LeBreton & Senter (2008, "Answers to 20 questions about
    interrater reliability and interrater agreement", *Organizational Research Methods* 11(4),
    815–852) recommend. The uniform null ignores response biases such as leniency, so r_wg
    tends to overstate agreement. A group needs two members.

    Returns one row per group: ``group, rwg, variance, n`` (``variance`` is ``s̄²``).
    """
    data = items.to_frame() if isinstance(items, pd.Series) else items
    data = data.astype("float64").reset_index(drop=True)
    group = pd.Series(groups).reset_index(drop=True)
    if len(group) != len(data):
        raise ValueError("items and groups must have the same length")
    if high <= low:
        raise ValueError(f"high must exceed low; got {low} … {high}")
    keep = data.notna().all(axis=1) & group.notna()
    data, group = data[keep], group[keep]
    options = high - low + 1
    expected = (options**2 - 1) / 12
    grouped = data.groupby(group.to_numpy(), sort=True)
    variance = grouped.var(ddof=1).mean(axis=1)
    sizes = grouped.size()
    ratio = variance / expected
    n_items = data.shape[1]
    if n_items == 1:
        agreement = 1 - ratio
    else:
        stepped = n_items * (1 - ratio)
        with np.errstate(divide="ignore", invalid="ignore"):
            agreement = stepped / (stepped + ratio)
    if truncate:
        agreement = agreement.mask(ratio > 1, 0.0)
    return pd.DataFrame(
        {
            "group": variance.index.to_numpy(),
            "rwg": agreement.to_numpy(dtype=float),
            "variance": variance.to_numpy(dtype=float),
            "n": sizes.reindex(variance.index).to_numpy(dtype=int),
        }
    )


def rwg_summary(table: pd.DataFrame, threshold: float = 0.70) -> pd.Series:
    """Summary of a ``rwg`` table over the groups where r_wg is defined.

    Returns ``median_rwg, share_at_least_threshold, threshold, n_groups``. The share is on
    0 … 1. ``.70`` is the conventional (and arbitrary) cut-off for "enough agreement to
    aggregate"; LeBreton & Senter (2008) describe .71–.90 as strong agreement.
    """
    values = table["rwg"].dropna().to_numpy(dtype=float)
    n_groups = len(values)
    return pd.Series(
        {
            "median_rwg": float(np.median(values)) if n_groups else np.nan,
            "share_at_least_threshold": float(np.mean(values >= threshold)) if n_groups else np.nan,
            "threshold": threshold,
            "n_groups": n_groups,
        }
    )


def scale_scores(survey: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Each respondent's scale score on 0–100 and whether it is favourable.

    ``score`` is ``analysis.panel.respondent_scale_score``: the mean of the items answered,
    reverse-coded items flipped (``low + high − x``), rescaled as
    ``(mean − low) / (high − low) × 100``. ``favourable`` (pandas ``boolean``) is True when that
    mean, on the original item scale, is at least ``scale.favourable`` (e.g. 4 on 1–5: "agree"
    or better); it is missing (``<NA>``) where no item was answered or the scale has no
    threshold (eNPS). The index is the survey's.
    """
    # Imported here, not at the top: analysis.panel imports this module.
    from analysis.panel import respondent_scale_score

    score = respondent_scale_score(survey, scale)
    favourable = pd.Series(pd.NA, index=survey.index, dtype="boolean")
    if scale.favourable is not None:
        mean = scale.low + score / 100 * (scale.high - scale.low)
        meets = mean >= scale.favourable - _THRESHOLD_TOLERANCE
        favourable = meets.astype("boolean").mask(score.isna())
    return pd.DataFrame({"score": score, "favourable": favourable}, index=survey.index)


def _score_summary(score: pd.Series, favourable: pd.Series, confidence: float) -> dict:
    values = score.dropna().to_numpy(dtype=float)
    answered = favourable.dropna()
    summary = _mean_with_t_interval(values, confidence, (0.0, 100.0))
    if len(answered):
        yes = int(answered.sum())
        low, high = wilson_interval(yes, len(answered), confidence)
        pct, pct_low, pct_high = 100 * yes / len(answered), 100 * low, 100 * high
    else:
        pct = pct_low = pct_high = np.nan
    return {
        **summary,
        "pct_favourable": pct,
        "pct_favourable_conf_low": pct_low,
        "pct_favourable_conf_high": pct_high,
        "n": len(values),
    }


def scale_summary(survey: pd.DataFrame, scale: Scale, confidence: float = 0.95) -> pd.Series:
    """Mean 0–100 score of a scale and its percentage favourable, each with an interval.

    Built on ``scale_scores``. ``mean`` is the mean respondent score on 0–100 with its standard
    error ``s / √n`` and a Student-t interval (``n − 1`` df, clipped to 0–100; respondents are
    treated as independent, which ignores clustering within units). ``pct_favourable`` is the
    percentage (0–100) of scored respondents who are favourable, with a Wilson interval
    (``wilson_interval``); NaN for a scale without a threshold. ``n`` counts respondents with a
    score.

    Returns ``mean, std_error, conf_low, conf_high, pct_favourable, pct_favourable_conf_low,
    pct_favourable_conf_high, n``.
    """
    scored = scale_scores(survey, scale)
    return pd.Series(_score_summary(scored["score"], scored["favourable"], confidence))


def enps(scores: Iterable[float], method: str = "wald", confidence: float = 0.95) -> pd.Series:
    """Employee Net Promoter Score: NPS of the 0–10 "recommend as a place to work" item.

    The same definition, scale (−100 … +100, not 0 … 100) and intervals as customer NPS, so it
    simply calls ``nps``: promoters 9–10, detractors 0–6, ``eNPS = 100 (p − d)``, trinomial
    standard error, Wald or adjusted-Wald interval (see the module docstring; Rocks, 2016).
    Returns the fields of ``nps``; the score is in ``nps``.
    """
    return nps(scores, method=method, confidence=confidence)


def effort_score(
    values: Iterable[float],
    low: int = 1,
    high: int = 7,
    easy_threshold: int = 6,
    confidence: float = 0.95,
) -> pd.Series:
    """Customer (CES) or employee (EES) effort score on its own 1–7 scale, 7 meaning "very easy".

    Missing answers are dropped; answers that are not whole numbers in ``low … high`` raise
    ``ValueError``. ``mean`` is on the original scale (not rescaled) with standard error
    ``s / √n`` and a Student-t interval (``n − 1`` df, clipped to ``low … high``).
    ``share_easy`` is the share (0 … 1) of answers at or above ``easy_threshold`` (default 6:
    "easy" or "very easy"), with a Wilson interval (``wilson_interval``). Answers are treated as
    independent.

    Returns ``mean, std_error, conf_low, conf_high, share_easy, share_easy_conf_low,
    share_easy_conf_high, n``.
    """
    if not low <= easy_threshold <= high:
        raise ValueError(f"easy_threshold must lie in {low} … {high}; got {easy_threshold}")
    answers = pd.array(list(values), dtype="Float64").to_numpy("float64", na_value=np.nan)
    answers = answers[~np.isnan(answers)]
    bad = (answers < low) | (answers > high) | (answers != np.floor(answers))
    if bad.any():
        raise ValueError(
            f"effort answers must be whole numbers {low}–{high}; got {answers[bad][:5]}"
        )
    n = len(answers)
    easy = int((answers >= easy_threshold).sum())
    share_low, share_high = wilson_interval(easy, n, confidence)
    return pd.Series(
        {
            **_mean_with_t_interval(answers, confidence, (low, high)),
            "share_easy": easy / n if n else np.nan,
            "share_easy_conf_low": share_low,
            "share_easy_conf_high": share_high,
            "n": n,
        }
    )


SCORECARD_COLUMNS = (
    "item",
    "label",
    "mean",
    "std_error",
    "conf_low",
    "conf_high",
    "pct_favourable",
    "pct_favourable_conf_low",
    "pct_favourable_conf_high",
    "n",
)


def points_of_connection_scorecard(
    survey: pd.DataFrame,
    instrument: Instrument = DEFAULT_INSTRUMENT,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per point-of-connection item: its mean 0–100 and percentage favourable.

    The items are those of the instrument's ``points_of_connection`` scale (by default
    listening, feeling valued, resolving differences, honesty, doing what we say, authenticity).
    Each item is scored as a one-item scale with the parent scale's range, reverse coding and
    favourable threshold, and summarised as in ``scale_summary``: ``mean`` 0–100 with a t
    interval, ``pct_favourable`` (answer ≥ the threshold, 0–100) with a Wilson interval, ``n``
    answers. ``label`` is the plain-English name (``POINT_OF_CONNECTION_LABELS``; the item
    name for items it does not know).

    Columns: ``item, label, mean, std_error, conf_low, conf_high, pct_favourable,
    pct_favourable_conf_low, pct_favourable_conf_high, n``.
    """
    scale = instrument.scale("points_of_connection")
    rows = []
    for item in scale.items:
        single = Scale(
            name=item,
            items=(item,),
            low=scale.low,
            high=scale.high,
            favourable=scale.favourable,
            reverse=(item,) if item in scale.reverse else (),
        )
        scored = scale_scores(survey, single)
        summary = _score_summary(scored["score"], scored["favourable"], confidence)
        rows.append({"item": item, "label": POINT_OF_CONNECTION_LABELS.get(item, item), **summary})
    return pd.DataFrame(rows, columns=list(SCORECARD_COLUMNS))


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
