"""Every linkage estimand from one dataset: the engine behind ``python -m analysis estimate``.

Pure: a validated ``Dataset`` and ``Parameters`` in, tidy tables out. ``analysis.io`` writes them.

``estimates`` has one row per estimand with the columns ``estimand, term, estimate, std_error,
conf_low, conf_high, p_value, n_obs, n_units, method`` and ``p_adjusted`` (Holm, see
``with_holm``). Hazard ratios are reported exponentiated
(``estimate``, ``conf_low``, ``conf_high``) with ``std_error`` on the log scale, as R's broom does
with ``exponentiate = TRUE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis import linkage, power, retention
from analysis.io import Dataset
from analysis.linkage import ESTIMATE_COLUMNS, EstimationError
from analysis.metrics import clustered_mean_difference
from analysis.panel import default_as_of, unit_wave_panel
from analysis.parameters import Parameters

SCALE_INDEX_SUFFIX = "_index"
# Cluster-robust errors rest on the number of units; below about ten they are unreliable
# (Cameron & Miller, 2015, section VI).
MIN_UNITS = 10


@dataclass
class Results:
    estimates: pd.DataFrame
    drivers: pd.DataFrame
    unit_wave: pd.DataFrame
    quartiles: pd.DataFrame
    panel: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result files, by name: what ``estimate`` writes and the report reads."""
        return {
            "estimates": self.estimates,
            "drivers": self.drivers,
            "unit_wave": self.unit_wave,
            "nps_by_engagement_quartile": self.quartiles,
        }


def calibrated_engagement_sd(panel: pd.DataFrame, covariates) -> pd.Series:
    """Each customer-facing unit-wave's calibrated engagement, in SD of the true index."""
    rows = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    design = linkage.covariate_design(rows, covariates)
    calibrated, _ = linkage.calibrate(
        rows["engagement_index"],
        rows["engagement_noise_var"],
        design,
        rows["n_respondents"].astype(float),
    )
    return calibrated / linkage.true_index_sd(rows)


def churn_hazard_on_engagement(
    dataset: Dataset, panel: pd.DataFrame, as_of: pd.Timestamp, covariates, confidence: float
) -> tuple[dict, pd.DataFrame]:
    """Hazard ratio of churn per +1 SD of the unit's engagement, engagement updated each wave.

    A piecewise-exponential proportional-hazards model on tenure (eight tenure bands),
    with wave (calendar-quarter) effects and the covariates, fitted as a Poisson model on the
    cells of unit × wave × tenure band (``retention.hazard_cells``); customers who joined before
    the first wave enter there (delayed entry). Engagement is constant within a cell, so the
    cells carry the whole likelihood and a million customers cost no more than their units;
    the customer-level Cox model on the same episodes gives the same hazard ratio (checked in
    tests/test_linkage.py). The SE is the delete-a-group jackknife over units
    (``linkage.jackknife_se``), recalibrating engagement in each replicate; the calibration study
    found the cluster-robust sandwich about 17% too small with units of very different sizes.

    Returns the tidy row and the hazard cells with ``engagement_sd`` (reused for mediation).
    """
    units = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"]).copy()
    units["engagement_sd"] = calibrated_engagement_sd(units, covariates)
    units["unit_wave_row"] = np.arange(len(units))
    unit_covariates = [c for c in covariates if c in units.columns]
    episodes = retention.churn_episodes(dataset.customers, panel["wave"].unique(), as_of)
    cells = retention.hazard_cells(episodes)
    cells["unit_id"] = cells["unit_id"].astype("string")
    cells = retention.attach_unit_covariates(
        cells, units, ["engagement_sd", "unit_wave_row", *unit_covariates]
    )
    design = retention.hazard_design(cells, ["engagement_sd"], [*unit_covariates, "wave"])
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    params = retention.poisson_fit(events, exposure, design.to_numpy(float))
    replicates, k = _hazard_jackknife(units, cells, design, params, covariates)
    log_hr, se = float(params[1]), linkage.jackknife_se(replicates)
    t = stats.t.ppf(0.5 + confidence / 2, k - 1)
    row = {
        "estimand": "churn_hazard_on_engagement",
        "term": "engagement_sd",
        "estimate": float(np.exp(log_hr)),
        "std_error": se,
        "conf_low": float(np.exp(log_hr - t * se)),
        "conf_high": float(np.exp(log_hr + t * se)),
        "p_value": float(2 * stats.t.sf(abs(log_hr) / se, k - 1)),
        "n_obs": _customers_in(episodes, units),
        "n_units": int(cells["unit_id"].nunique()),
        "method": "proportional hazards, piecewise-exponential baseline in tenure (8 bands), "
        "wave FE + covariates, engagement updated at each wave, delayed entry at the first "
        f"wave, fitted on unit × wave × tenure-band cells; SE by delete-a-group jackknife over "
        f"units ({k} groups); hazard ratio, std_error on the log scale",
    }
    return row, cells


def _hazard_jackknife(
    units: pd.DataFrame,
    cells: pd.DataFrame,
    design: pd.DataFrame,
    params: np.ndarray,
    covariates,
) -> tuple[np.ndarray, int]:
    """The engagement log hazard ratio without each jackknife group of units.

    Each replicate recalibrates engagement on the remaining units and takes one Newton step
    from the full-sample estimate on their cells (score and information recomputed there). A
    deleted group is a fiftieth of the data, so one step lands far closer to the refitted
    value than the spread of the replicates (checked against full refits in
    tests/test_linkage.py).
    """
    group, k = linkage.jackknife_groups(units["unit_id"])
    row = cells["unit_wave_row"].to_numpy()
    cell_group = group[row]
    x = design.to_numpy(float, copy=True)
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    estimates = np.empty(k)
    for g in range(k):
        kept = group != g
        engagement = np.zeros(len(units))
        engagement[kept] = calibrated_engagement_sd(units[kept], covariates).to_numpy()
        x[:, 1] = engagement[row]
        inside = cell_group != g
        x_g = x[inside]
        mu = exposure[inside] * np.exp(x_g @ params)
        # least squares, not solve: deleting a group can empty a level of a small study's wave
        # or region (a zero row and column), which leaves the engagement step determined
        step = np.linalg.lstsq(
            retention.information(x_g, mu), x_g.T @ (events[inside] - mu), rcond=None
        )[0]
        estimates[g] = params[1] + step[1]
    return estimates, k


def _customers_in(episodes: pd.DataFrame, unit_waves: pd.DataFrame) -> int:
    """Distinct customers with an episode in one of ``unit_waves``."""
    categories = episodes["unit_id"].cat.categories
    waves = pd.DatetimeIndex(np.sort(episodes["wave"].unique()))
    unit_pos = categories.get_indexer(unit_waves["unit_id"])
    wave_pos = waves.get_indexer(unit_waves["wave"])
    known = (unit_pos >= 0) & (wave_pos >= 0)
    lookup = np.zeros((len(categories), len(waves)), dtype=bool)
    lookup[unit_pos[known], wave_pos[known]] = True
    inside = lookup[episodes["unit_id"].cat.codes.to_numpy(), waves.get_indexer(episodes["wave"])]
    return int(np.unique(episodes["customer_id"].cat.codes.to_numpy()[inside]).size)


def retention_quartile_gap(
    dataset: Dataset,
    panel: pd.DataFrame,
    min_group_size: int,
    as_of: pd.Timestamp,
    confidence: float,
) -> dict:
    """Top- minus bottom-quartile 12-month retention, in percentage points (Gallup style).

    Quartiles as for ``nps_quartile_gap``; customers active on a wave date count for their unit's
    quartile at that wave if twelve months have passed by ``as_of``. SE clustered by unit.
    """
    eligible = linkage.quartile_unit_waves(panel, min_group_size)
    retained = retention.retention_by_unit_wave(dataset.customers, eligible, 365, as_of)
    merged = eligible[["unit_id", "wave", "quartile"]].merge(retained, on=["unit_id", "wave"])
    merged = merged[merged["at_risk"] > 0]

    def per_unit(quartile: int) -> pd.DataFrame:
        group = (
            merged[merged["quartile"] == quartile].groupby("unit_id")[["retained", "at_risk"]].sum()
        )
        return pd.DataFrame({"total": 100.0 * group["retained"], "n": group["at_risk"]})

    top, bottom = per_unit(4), per_unit(1)
    if len(top) + len(bottom) < 2 or top["n"].sum() == 0 or bottom["n"].sum() == 0:
        return _missing_row(
            "retention_quartile_gap",
            "top_minus_bottom_pp",
            "no wave is twelve months before the end of observation",
        )
    gap = clustered_mean_difference(top, bottom, confidence).to_dict()
    return {
        "estimand": "retention_quartile_gap",
        "term": "top_minus_bottom_pp",
        **gap,
        "method": "difference in 12-month retention (percentage points), top vs bottom "
        "engagement quartile of unit-waves, SE clustered by unit",
    }


def _missing_row(estimand: str, term: str, reason: str) -> dict:
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
    }


def nps_mediated_share(
    panel: pd.DataFrame, cells: pd.DataFrame, covariates, parameters: Parameters
) -> dict:
    """Share of the engagement → churn effect that runs through the unit's NPS.

    The mediator is the unit's NPS in the same quarter (the outcome window of the cell's
    wave), calibrated for its sampling error and scaled per 10 points. ``cells`` are the hazard
    cells of ``churn_hazard_on_engagement``.
    """
    rows = linkage.customer_facing_rows(panel)
    rows = rows[rows["n_responses"] > 0]
    design = linkage.covariate_design(rows, covariates)
    noise = linkage.nps_noise_var(rows["promoters"], rows["detractors"], rows["n_responses"])
    calibrated, _ = linkage.calibrate(rows["nps"], noise, design, rows["n_responses"].astype(float))
    mediator = rows[["unit_id", "wave"]].assign(nps_10=calibrated / 10)
    with_mediator = cells.merge(mediator, on=["unit_id", "wave"], how="inner")
    unit_covariates = [c for c in covariates if c in with_mediator.columns]
    return retention.mediated_share(
        with_mediator,
        "engagement_sd",
        "nps_10",
        covariates=[*unit_covariates, "wave"],
        draws=parameters.bootstrap_draws,
        seed=parameters.seed,
        confidence=parameters.confidence,
    )


def with_holm(estimates: pd.DataFrame) -> pd.DataFrame:
    """Add ``p_adjusted``: Holm's step-down adjustment over every estimand with a p-value.

    The report asks seven questions of one dataset; with each at 5% the chance of at least one
    false alarm would be about 30%. "Significant" in the report means ``p_adjusted`` below
    alpha, which keeps that chance at alpha (Holm, 1979, *Scandinavian Journal of Statistics*
    6(2), 65–70).
    """
    from statsmodels.stats.multitest import multipletests

    result = estimates.copy()
    tested = result["p_value"].notna()
    result["p_adjusted"] = np.nan
    if tested.any():
        result.loc[tested, "p_adjusted"] = multipletests(
            result.loc[tested, "p_value"], method="holm"
        )[1]
    return result


def published_noise_var(panel: pd.DataFrame, min_group_size: int) -> pd.Series:
    """``s²/n`` with ``s²`` pooled only over unit-waves of at least ``min_group_size`` people.

    The models pool the within-unit-wave variance over every unit-wave, small ones included;
    published, that pooled variance would let two reports that differ by one small unit be
    subtracted to recover the small unit's sum of squares. Pooled over large cells only, the
    published figure changes with a unit's answers only where that unit's cell is itself
    large enough to show.
    """
    large = panel["n_respondents"] >= min_group_size
    degrees = (panel.loc[large, "n_respondents"] - 1).sum()
    pooled = panel.loc[large, "engagement_within_ss"].sum() / degrees if degrees > 0 else np.nan
    return pooled / panel["n_respondents"].where(panel["n_respondents"] > 0)


def suppressed_unit_wave(panel: pd.DataFrame, scale_columns, min_group_size: int) -> pd.DataFrame:
    """The unit × wave table for display: every employee-derived value passes suppression.

    Each scale is suppressed on the count of people who answered that scale (a one-item scale
    can rest on fewer people than engagement), with complementary suppression for the totals
    that could be published: by wave, by region and wave, and overall. ``suppressed`` and
    ``suppression`` describe the engagement index; other scales are blank where hidden.
    """
    from analysis.privacy import suppress

    keys = [c for c in ("unit_id", "region", "customer_facing", "wave") if c in panel.columns]
    parents = [("wave",), ()] + ([("region", "wave")] if "region" in panel.columns else [])
    panel = panel.assign(
        engagement_noise_var=published_noise_var(panel, min_group_size),
    )
    # A hidden cell shows nothing derived from answers, not even the (pooled) noise variance.
    table = suppress(
        panel[
            [
                *keys,
                "n_respondents",
                "engagement_index",
                "engagement_noise_var",
                "n_responses",
                "nps",
            ]
        ],
        count="n_respondents",
        values=["engagement_index", "engagement_noise_var"],
        min_group_size=min_group_size,
        parents=parents,
    )
    for column in scale_columns:
        if column == "engagement_index":
            continue
        count = column.removesuffix(SCALE_INDEX_SUFFIX) + "_respondents"
        hidden = suppress(
            panel[[*keys, count, column]],
            count=count,
            values=[column],
            min_group_size=min_group_size,
            parents=parents,
        )
        table[count] = hidden[count]
        table[column] = hidden[column]
    return table


def estimate_all(
    dataset: Dataset, parameters: Parameters, progress: Callable[[str], None] = lambda _: None
) -> Results:
    """Build the panel and every estimand, drivers and the suppressed unit-wave table."""
    from analysis.drivers import driver_importance

    empty = [
        dataset.files[name].name
        for name in ("employee_survey", "customer_nps", "customers")
        if getattr(dataset, name).empty
    ]
    if empty:
        raise EstimationError(f"nothing to estimate from: {', '.join(empty)} has no rows")
    as_of = pd.Timestamp(parameters.as_of) if parameters.as_of else default_as_of(dataset)
    covariates = parameters.covariates
    confidence = parameters.confidence
    progress("building the unit × wave panel")
    # region is the contract's optional default; any other name must be a column of units
    unknown = [c for c in covariates if c not in dataset.units.columns and c != "region"]
    if unknown:
        from analysis.parameters import ParameterError

        raise ParameterError(
            f"covariates: {', '.join(unknown)} not a column of {dataset.files['units'].name}; "
            f"its columns are {', '.join(dataset.units.columns)}"
        )
    panel = unit_wave_panel(dataset, parameters.outcome_window_days, as_of, covariates)
    usable = linkage.customer_facing_rows(panel)
    usable = usable[(usable["n_responses"] > 0) & usable["engagement_index"].notna()]
    if usable["unit_id"].nunique() < MIN_UNITS or usable["wave"].nunique() < 2:
        raise EstimationError(
            f"too few units or waves to estimate anything: {usable['unit_id'].nunique()} "
            f"customer-facing units and {usable['wave'].nunique()} waves have both staff and "
            f"customer answers; the models need at least {MIN_UNITS} units and 2 waves"
        )
    if usable["nps"].nunique() < 2:
        raise EstimationError(
            f"customer NPS is {usable['nps'].iloc[0]:+.0f} in every one of the {len(usable)} "
            "unit-waves with staff and customer answers: with nothing varying, no model can "
            "relate NPS to engagement"
        )
    progress("engagement → NPS models")
    rows = [
        linkage.nps_on_engagement(panel, covariates, confidence=confidence),
        linkage.nps_on_engagement_within(panel, confidence=confidence),
        linkage.engagement_on_prior_nps(panel, covariates, confidence=confidence),
    ]
    progress("churn hazard (time-varying engagement, unit × wave × tenure cells)")
    churn, cells = churn_hazard_on_engagement(dataset, panel, as_of, covariates, confidence)
    rows.append(churn)
    quartiles = linkage.nps_by_engagement_quartile(panel, parameters.min_group_size, confidence)
    gap = linkage.nps_quartile_gap(panel, parameters.min_group_size, confidence).iloc[0]
    rows.append(
        {
            "estimand": "nps_quartile_gap",
            **gap.to_dict(),
            "method": "difference in NPS points, top vs bottom engagement quartile of "
            "unit-waves, SE clustered by unit",
        }
    )
    rows.append(
        retention_quartile_gap(dataset, panel, parameters.min_group_size, as_of, confidence)
    )
    progress(f"mediation through NPS ({parameters.bootstrap_draws} bootstrap draws)")
    rows.append(nps_mediated_share(panel, cells, covariates, parameters))
    rows.append(power.mde_row(rows[0], parameters.alpha))
    estimates = pd.DataFrame(rows)[list(ESTIMATE_COLUMNS)]
    estimates = with_holm(estimates.astype({"n_obs": "int64", "n_units": "int64"}))

    progress(f"driver importance ({parameters.bootstrap_draws} bootstrap draws)")
    predictors = [
        c for c in panel.columns if c.endswith(SCALE_INDEX_SUFFIX) and not c.endswith("_lag")
    ]
    driver_rows = linkage.customer_facing_rows(panel)
    driver_rows = driver_rows[driver_rows["n_responses"] > 0].dropna(subset=predictors)
    drivers = driver_importance(
        driver_rows,
        predictors,
        outcome="nps",
        cluster="unit_id",
        weight="n_responses",
        draws=parameters.bootstrap_draws,
        seed=parameters.seed,
        confidence=confidence,
        alpha=parameters.alpha,
    )

    unit_wave = suppressed_unit_wave(panel, predictors, parameters.min_group_size)
    return Results(estimates, drivers, unit_wave, quartiles, panel)
