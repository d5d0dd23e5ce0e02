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


def clustered_nps_difference(
    first: pd.DataFrame, second: pd.DataFrame, confidence: float = 0.95
) -> pd.Series:
    """Difference ``NPS(first) − NPS(second)`` with a cluster-robust standard error.

    ``first`` and ``second`` hold per-cluster counts (index = cluster id; columns
    ``promoters, passives, detractors``). A unit may contribute to both groups (in different
    waves), so the two NPS values are not independent; the CR1 variance of the difference uses
    each cluster's combined influence ``S_g = S_g(first)/n_first − S_g(second)/n_second``::

        var = G / (G − 1) · Σ_g S_g²

    over the ``G`` clusters in either group (Cameron & Miller, 2015). t interval, ``G − 1`` df.
    """

    def influence(counts: pd.DataFrame) -> tuple[float, pd.Series, float]:
        p, d = counts["promoters"].astype(float), counts["detractors"].astype(float)
        sizes = p + counts["passives"].astype(float) + d
        n = sizes.sum()
        estimate = 100 * (p.sum() - d.sum()) / n
        return estimate, (100 * (p - d) - estimate * sizes) / n, n

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
            "n": int(n_a + n_b),
            "n_clusters": clusters,
        }
    )
