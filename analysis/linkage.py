"""Does engagement go with customer loyalty? Linkage estimates on the unit × wave panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.metrics import clustered_nps, clustered_nps_difference

QUARTILE_LABELS = ("Bottom quartile", "Second quartile", "Third quartile", "Top quartile")


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
        raise ValueError(
            f"too few unit-waves to form quartiles: {len(eligible)} customer-facing unit-waves "
            f"have at least {min_group_size} respondents and customer answers (need 8)"
        )
    return eligible.assign(quartile=engagement_quartiles(eligible["engagement_index"]))


def nps_quartile_gap(
    panel: pd.DataFrame, min_group_size: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Top- minus bottom-quartile customer NPS, in NPS points, as one tidy row.

    Quartiles as in ``nps_by_engagement_quartile``; the standard error is cluster-robust by unit
    (``analysis.metrics.clustered_nps_difference``) and the p-value two-sided from Student's t
    with ``G − 1`` degrees of freedom. Columns: ``term, estimate, std_error, conf_low,
    conf_high, p_value, n_obs, n_units``; ``n_obs`` counts customer answers.
    """
    eligible = quartile_unit_waves(panel, min_group_size)
    counts = ["promoters", "passives", "detractors"]
    top = eligible[eligible["quartile"] == 4].groupby("unit_id")[counts].sum()
    bottom = eligible[eligible["quartile"] == 1].groupby("unit_id")[counts].sum()
    gap = clustered_nps_difference(top, bottom, confidence=confidence)
    p_value = 2 * stats.t.sf(abs(gap["estimate"] / gap["std_error"]), gap["n_clusters"] - 1)
    return pd.DataFrame(
        [
            {
                "term": "nps_quartile_gap",
                "estimate": gap["estimate"],
                "std_error": gap["std_error"],
                "conf_low": gap["conf_low"],
                "conf_high": gap["conf_high"],
                "p_value": p_value,
                "n_obs": int(gap["n"]),
                "n_units": int(gap["n_clusters"]),
            }
        ]
    )


def nps_by_engagement_quartile(
    panel: pd.DataFrame, min_group_size: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Customer NPS in the outcome window after a wave, by the unit's engagement quartile.

    Uses customer-facing unit-waves whose engagement index rests on at least ``min_group_size``
    respondents and that have customer answers in the window. Unit-waves are ranked into
    quartiles of the engagement index; each quartile's NPS pools its answers, with a
    cluster-robust (by unit) standard error and t interval (``analysis.metrics.clustered_nps``),
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
    return pd.DataFrame(rows)
