"""The unit × wave panel: employee answers and customer answers brought to one grain.

Definitions follow the data contract (``data/README.md``):

* **Engagement index.** Each respondent's mean over the engagement items they answered
  (reverse-coded items flipped), rescaled to 0–100 as ``(mean − min) / (max − min) × 100``;
  a unit's index for a wave is the mean over its respondents.
* **Outcome window** of wave *t*: customer answers with ``responded_on`` in
  ``(wave t, wave t + outcome_window_days]``. The **window before** wave *t* is
  ``(wave t − outcome_window_days, wave t]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.contract import Scale
from analysis.io import Dataset
from analysis.metrics import DETRACTOR_MAX, PROMOTER_MIN

DEFAULT_OUTCOME_WINDOW_DAYS = 91


def respondent_scale_score(survey: pd.DataFrame, scale: Scale) -> pd.Series:
    """Each respondent's score on a scale, 0–100; NaN where every item was skipped."""
    items = survey[list(scale.items)].astype("float64")
    if scale.reverse:
        reverse = list(scale.reverse)
        items[reverse] = scale.low + scale.high - items[reverse]
    return (items.mean(axis=1) - scale.low) / (scale.high - scale.low) * 100


def unit_wave_engagement(dataset: Dataset) -> pd.DataFrame:
    """Engagement index per unit and wave: ``unit_id, wave, n_respondents, engagement_index``.

    ``n_respondents`` counts respondents with an engagement score. Small groups are kept: this
    is a model input; anything displayed passes through suppression first.
    """
    survey = dataset.employee_survey
    score = respondent_scale_score(survey, dataset.instrument.scale("engagement"))
    scored = pd.DataFrame(
        {"unit_id": survey["unit_id"], "wave": survey["wave"], "engagement": score}
    ).dropna(subset=["engagement"])
    return (
        scored.groupby(["unit_id", "wave"], observed=True, sort=True)["engagement"]
        .agg(n_respondents="size", engagement_index="mean")
        .reset_index()
    )


def nps_counts_in_windows(
    customer_nps: pd.DataFrame,
    waves: pd.Series | np.ndarray,
    window_days: int = DEFAULT_OUTCOME_WINDOW_DAYS,
    before: bool = False,
) -> pd.DataFrame:
    """Promoter, passive and detractor counts per unit in each wave's outcome window.

    With ``before=True`` the window before each wave is used instead. Returns
    ``unit_id, wave, promoters, passives, detractors, n_responses``. Windows that overlap (a
    window longer than the gap between waves) count a response in each.
    """
    window = pd.Timedelta(days=window_days)
    score = customer_nps["likelihood_to_recommend"].to_numpy()
    category = np.where(score >= PROMOTER_MIN, 0, np.where(score <= DETRACTOR_MAX, 2, 1))
    frames = []
    for wave in np.sort(pd.unique(pd.Series(waves))):
        start, end = (wave - window, wave) if before else (wave, wave + window)
        inside = (
            (customer_nps["responded_on"] > start) & (customer_nps["responded_on"] <= end)
        ).to_numpy()
        counts = pd.crosstab(customer_nps["unit_id"].to_numpy()[inside], category[inside])
        counts = counts.reindex(columns=[0, 1, 2], fill_value=0)
        counts.columns = ["promoters", "passives", "detractors"]
        counts.index.name = "unit_id"
        frames.append(counts.reset_index().assign(wave=wave))
    columns = ["unit_id", "wave", "promoters", "passives", "detractors"]
    result = (
        pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    )
    result["n_responses"] = result[["promoters", "passives", "detractors"]].sum(axis=1)
    return result


def unit_wave_panel(
    dataset: Dataset, outcome_window_days: int = DEFAULT_OUTCOME_WINDOW_DAYS
) -> pd.DataFrame:
    """One row per surveyed unit and wave: engagement index, NPS counts in the outcome window.

    Columns: ``unit_id, wave, region, customer_facing, n_respondents, engagement_index,
    promoters, passives, detractors, n_responses, nps``. Units with no customer answers in a
    window have zero counts and a missing ``nps``.
    """
    engagement = unit_wave_engagement(dataset)
    outcome = nps_counts_in_windows(dataset.customer_nps, engagement["wave"], outcome_window_days)
    panel = engagement.merge(outcome, on=["unit_id", "wave"], how="left")
    count_columns = ["promoters", "passives", "detractors", "n_responses"]
    panel[count_columns] = panel[count_columns].fillna(0).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        panel["nps"] = np.where(
            panel["n_responses"] > 0,
            100 * (panel["promoters"] - panel["detractors"]) / panel["n_responses"],
            np.nan,
        )
    unit_columns = [
        c for c in ("unit_id", "region", "customer_facing") if c in dataset.units.columns
    ]
    return panel.merge(dataset.units[unit_columns], on="unit_id", how="left")
