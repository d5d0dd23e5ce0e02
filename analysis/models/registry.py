"""The estimands: each one's fit, and the one ordered list that every caller loops over.

``ESTIMANDS`` is the list. ``estimate.estimate_all`` (``python -m analysis estimate``), the
influence check, the calibration study (``studies.calibration.replicate``), the benchmark and
the report's figures and sentences all read it; adding an estimand means adding one
``Estimand`` entry here and its tests. Each entry's ``fit`` takes a ``Fitting`` (the data, the
parameters, the panel and ``as_of``, with the pieces estimands share, such as the churn
model, fitted once) and returns one ``tidy.tidy_row``.

Hazard ratios are reported exponentiated (``estimate``, ``conf_low``, ``conf_high``) with
``std_error`` on the log scale, as R's broom does with ``exponentiate = TRUE``
(``tidy.tidy_row``).

References
----------
Robinson, D., Hayes, A. & Couch, S. (2023). broom: Convert Statistical Objects into Tidy
Tibbles. R package, https://broom.tidymodels.org.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.data.load import Dataset
from analysis.data.parameters import Parameters
from analysis.data.progress import counting
from analysis.measures.nps import clustered_mean_difference
from analysis.measures.reduction import customers_in_runs
from analysis.models import brand_alignment, chain, churn_data, hazard, linkage, power
from analysis.models.linkage import EstimationError, Jackknife
from analysis.models.tidy import computed_row, not_estimable, tidy_row

#: The panel columns ``calibrated_engagement_sd`` reads, beside the covariates
CALIBRATION_COLUMNS = (
    "unit_id",
    "wave",
    "customer_facing",
    "engagement_index",
    "engagement_noise_var",
    "n_respondents",
)


def calibrated_engagement_sd(panel: pd.DataFrame, covariates) -> pd.Series:
    """Each customer-facing unit-wave's calibrated engagement, in SD of the true index."""
    rows = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    design = linkage.absorbed_design(rows, covariates)
    calibrated, _ = linkage.calibrate(
        rows["engagement_index"],
        rows["engagement_noise_var"],
        design,
        rows["n_respondents"].astype(float),
    )
    return calibrated / linkage.true_index_sd(rows)


@dataclass
class ChurnModel:
    """The fitted churn model's pieces, shared by its row, mediation and the influence check."""

    units: pd.DataFrame  # customer-facing unit-waves with engagement_sd and unit_wave_row
    runs: pd.DataFrame  # customers by unit and first and last wave at risk (customer_runs)
    cells: pd.DataFrame  # unit × wave × tenure-band cells with engagement_sd
    design: linkage.Design  # waves absorbed; dense column 0 is engagement_sd
    params: np.ndarray  # the dense columns' coefficients: params[0] is the log hazard ratio
    replicates: np.ndarray | None = None  # the jackknife's, once churn_hazard_on_engagement ran
    wave_effects: np.ndarray | None = None  # the absorbed waves' log baselines
    mediation: Mediation | None = None  # mediation_on's, once asked for
    patterns: hazard.Patterns | None = None  # the design's (hazard.Patterns.of), once found

    def mediation_on(self, panel: pd.DataFrame, covariates) -> Mediation:
        """The mediation models on these cells (``mediation``), fitted on first use: the share
        and its influence check need the same two fits."""
        if self.mediation is None:
            self.mediation = mediation(panel, self.cells, covariates)
        return self.mediation


@dataclass(frozen=True)
class Mediation:
    """The hazard cells with the calibrated mediator ``nps_10``, the unit covariates among the
    covariates, and the total- and direct-effect models fitted on them."""

    cells: pd.DataFrame
    covariates: list[str]
    models: tuple[hazard.AbsorbedFit, hazard.AbsorbedFit]


def mediation(panel: pd.DataFrame, cells: pd.DataFrame, covariates) -> Mediation:
    """``nps_mediated_share``'s cells and models (``hazard.mediation_models``)."""
    with_mediator, unit_covariates = _mediation_cells(panel, cells, covariates)
    models = hazard.mediation_models(
        with_mediator, "engagement_sd", "nps_10", [*unit_covariates, "wave"]
    )
    return Mediation(with_mediator, unit_covariates, models)


def nps_on_engagement_with_jackknife(
    panel: pd.DataFrame, covariates, confidence: float
) -> tuple[dict, Jackknife]:
    """``linkage.nps_on_engagement``'s row, and its jackknife replicates for the influence check.

    Parameters
    ----------
    panel : pandas.DataFrame
        The unit × wave panel.
    covariates : sequence of str
        Unit covariates beside the wave effects.
    confidence : float
        Level of the interval.

    Returns
    -------
    tuple
        The tidy row (``linkage.nps_on_engagement_row``) and the ``Jackknife``.
    """
    rows, slope, group, replicates = linkage.nps_on_engagement_fit(panel, covariates)
    row = linkage.nps_on_engagement_row(rows, slope, replicates, covariates, confidence)
    return row, Jackknife(replicates, _unit_groups(rows["unit_id"], group))


def _unit_groups(unit_ids: pd.Series, group: np.ndarray) -> pd.Series:
    frame = pd.DataFrame({"unit_id": unit_ids.astype("string").to_numpy(), "group": group})
    return frame.drop_duplicates("unit_id").set_index("unit_id")["group"]


def churn_model(
    dataset: Dataset, panel: pd.DataFrame, as_of: pd.Timestamp, covariates
) -> ChurnModel:
    """Fit the churn model of ``churn_hazard_on_engagement`` (no standard error)."""
    units = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"]).copy()
    units["engagement_sd"] = calibrated_engagement_sd(units, covariates)
    units["unit_wave_row"] = np.arange(len(units))
    unit_covariates = [c for c in covariates if c in units.columns]
    cells, runs = churn_data.churn_cells(dataset, panel["wave"].unique(), as_of)
    cells = hazard.attach_unit_covariates(
        cells, units, ["engagement_sd", "unit_wave_row", *unit_covariates]
    )
    # wave effects absorbed, not spelled out: a thousand waves cost no more than eight
    design = hazard.hazard_absorbed_design(cells, ["engagement_sd"], [*unit_covariates, "wave"])
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    patterns = hazard.Patterns.of(design)
    params, wave_effects = hazard.poisson_fit_absorbed(events, exposure, design, patterns=patterns)
    return ChurnModel(
        units, runs, cells, design, params, wave_effects=wave_effects, patterns=patterns
    )


def churn_hazard_on_engagement(
    dataset: Dataset,
    panel: pd.DataFrame,
    as_of: pd.Timestamp,
    covariates,
    confidence: float,
    model: ChurnModel | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Hazard ratio of churn per +1 SD of the unit's engagement, engagement updated each wave.

    A piecewise-exponential proportional-hazards model on tenure (eight tenure bands),
    with wave (calendar-quarter) effects and the covariates, fitted as a Poisson model on the
    cells of unit × wave × tenure band (``hazard.hazard_cells``); customers who joined before
    the first wave enter there (delayed entry). Engagement is constant within a cell, so the
    cells carry the whole likelihood and a million customers cost no more than their units;
    the customer-level Cox model on the same episodes gives the same hazard ratio (checked in
    tests/test_linkage.py). The SE is the delete-a-group jackknife over units
    (``linkage.jackknife_se``), recalibrating engagement in each replicate; the calibration study
    found the cluster-robust sandwich about 17% too small with units of very different sizes.

    Returns the tidy row and the hazard cells with ``engagement_sd`` (reused for mediation).
    ``model`` is ``churn_model``'s fit when the caller already has it.
    """
    if model is None:
        model = churn_model(dataset, panel, as_of, covariates)
    units, cells, design, params = model.units, model.cells, model.design, model.params
    replicates, k = _hazard_jackknife(
        units, cells, design, params, covariates, model.wave_effects, model.patterns
    )
    model.replicates = replicates
    row = tidy_row(
        "churn_hazard_on_engagement",
        "engagement_sd",
        float(params[0]),
        linkage.jackknife_se(replicates),
        df=k - 1,
        confidence=confidence,
        exponentiate=True,
        n_obs=customers_in_runs(model.runs, units),
        n_units=int(cells["unit_id"].nunique()),
        method="proportional hazards, piecewise-exponential baseline in tenure (8 bands), "
        "wave FE + covariates, engagement updated at each wave, delayed entry at the first "
        "wave, fitted on unit × wave × tenure-band cells; SE by delete-a-group jackknife over "
        "units; hazard ratio, std_error on the log scale",
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )
    return row, cells


def _hazard_jackknife(
    units: pd.DataFrame,
    cells: pd.DataFrame,
    design: linkage.Design,
    params: np.ndarray,
    covariates,
    wave_effects: np.ndarray,
    patterns: hazard.Patterns | None = None,
) -> tuple[np.ndarray, int]:
    """The engagement log hazard ratio without each jackknife group of units.

    Parameters
    ----------
    units, cells, design, params, wave_effects
        ``churn_model``'s fit: the unit-waves, the hazard cells, the design (waves absorbed,
        engagement in dense column 0), its dense coefficients and the waves' fitted effects.
    covariates : sequence of str
        Unit covariates of the calibration.

    Returns
    -------
    tuple
        The ``K`` replicates of the log hazard ratio and ``K``.

    Notes
    -----
    Each replicate recalibrates engagement on the remaining units and takes one Newton step
    from the full-sample estimate on their cells (score and information recomputed there,
    ``hazard.RowExposureSteps``: only engagement changes, so a step costs a few bincounts).
    A deleted group is a fiftieth of the data, so one step lands far closer to the refitted
    value than the spread of the replicates (checked against full refits in
    tests/test_linkage.py).
    """
    group, k = linkage.jackknife_groups(units["unit_id"])
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    steps = hazard.RowExposureSteps(
        design, events, exposure, cells["unit_wave_row"].to_numpy(), params, wave_effects, patterns
    )
    # only what the calibration reads: a replicate copies these columns, not the panel's 67
    slim = units[[c for c in dict.fromkeys([*CALIBRATION_COLUMNS, *covariates]) if c in units]]
    estimates = np.empty(k)
    with counting("jackknife groups", k) as done:
        for g in range(k):
            kept = group != g
            engagement = np.zeros(len(units))
            engagement[kept] = calibrated_engagement_sd(slim[kept], covariates).to_numpy()
            estimates[g] = params[0] + steps.step(engagement, kept)[0]
            done()
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
    try:
        groups = _retention_quartile_groups(dataset, panel, min_group_size, as_of)
    except EstimationError as error:  # no unit-wave large enough to show
        return not_estimable("retention_quartile_gap", "top_minus_bottom_pp", str(error))
    if groups is None:
        return not_estimable(
            "retention_quartile_gap",
            "top_minus_bottom_pp",
            "no wave is twelve months before the end of observation",
        )
    top, bottom = groups
    return linkage.quartile_gap_row(
        "retention_quartile_gap",
        "top_minus_bottom_pp",
        clustered_mean_difference(top, bottom, confidence),
        "difference in 12-month retention (percentage points), top vs bottom engagement "
        "quartile of unit-waves, SE clustered by unit",
    )


def _retention_quartile_groups(
    dataset: Dataset, panel: pd.DataFrame, min_group_size: int, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Per-unit ``total`` (100 × retained) and ``n`` (at risk) in the top and bottom quartile."""
    eligible = linkage.quartile_unit_waves(panel, min_group_size)
    retained = churn_data.retention_at_waves(dataset, eligible["wave"], 365, as_of)
    merged = eligible[["unit_id", "wave", "quartile"]].merge(retained, on=["unit_id", "wave"])
    merged = merged[merged["at_risk"] > 0]

    def per_unit(quartile: int) -> pd.DataFrame:
        group = (
            merged[merged["quartile"] == quartile].groupby("unit_id")[["retained", "at_risk"]].sum()
        )
        return pd.DataFrame({"total": 100.0 * group["retained"], "n": group["at_risk"]})

    top, bottom = per_unit(4), per_unit(1)
    if len(top) + len(bottom) < 2 or top["n"].sum() == 0 or bottom["n"].sum() == 0:
        return None
    return top, bottom


def nps_mediated_share(
    panel: pd.DataFrame,
    cells: pd.DataFrame,
    covariates,
    parameters: Parameters,
    fitted: Mediation | None = None,
) -> dict:
    """Share of the engagement → churn effect that runs through the unit's NPS.

    The mediator is the unit's NPS in the same quarter (the outcome window of the cell's
    wave), calibrated for its sampling error and scaled per 10 points. ``cells`` are the hazard
    cells of ``churn_hazard_on_engagement``; ``fitted`` their ``mediation``, when already fitted.
    """
    fitted = fitted or mediation(panel, cells, covariates)
    share = hazard.mediated_share(
        fitted.cells,
        "engagement_sd",
        "nps_10",
        covariates=[*fitted.covariates, "wave"],
        draws=parameters.bootstrap_draws,
        seed=parameters.seed,
        confidence=parameters.confidence,
        models=fitted.models,
    )
    return computed_row(
        share["estimand"],
        share["term"],
        share,
        method="piecewise-exponential, difference method, cluster bootstrap (estimating-function)",
        se_method="bootstrap",
        bootstrap_draws=parameters.bootstrap_draws,
        correction="regression_calibration",
    )


def _mediation_cells(panel: pd.DataFrame, cells: pd.DataFrame, covariates):
    """The hazard cells with the calibrated mediator ``nps_10``, and the unit covariates."""
    rows = linkage.customer_facing_rows(panel)
    rows = rows[rows["n_responses"] > 0]
    design = linkage.absorbed_design(rows, covariates)
    noise = linkage.nps_noise_var(rows["promoters"], rows["detractors"], rows["n_responses"])
    calibrated, _ = linkage.calibrate(rows["nps"], noise, design, rows["n_responses"].astype(float))
    mediator = rows[["unit_id", "wave"]].assign(nps_10=calibrated / 10)
    with_mediator = cells.merge(mediator, on=["unit_id", "wave"], how="inner")
    return with_mediator, [c for c in covariates if c in with_mediator.columns]


# --------------------------------------------------------------------------------------------
# The registry


@dataclass
class Fitting:
    """What the estimands are fitted on, and the pieces they share, each fitted once.

    ``churn`` is the churn model that ``churn_hazard_on_engagement`` and ``nps_mediated_share``
    share (fitted on first use, or given, as ``estimate.refit_without`` does);
    ``jackknives`` the jackknife replicates the influence check reuses; ``rows`` the rows
    fitted so far, by estimand (the minimum detectable effect reads the main estimate's).
    """

    dataset: Dataset
    parameters: Parameters
    panel: pd.DataFrame
    as_of: pd.Timestamp
    churn: ChurnModel | None = None
    jackknives: dict[str, Jackknife] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    pieces: dict[str, Any] = field(default_factory=dict, repr=False)

    def churn_model(self) -> ChurnModel:
        """The churn model, fitted on first use (``churn_model``)."""
        if self.churn is None:
            self.churn = churn_model(
                self.dataset, self.panel, self.as_of, self.parameters.covariates
            )
        return self.churn

    def piece(self, name: str, build: Callable[[Fitting], Any]) -> Any:
        """A piece several estimands share (a panel with more columns, a first-stage model),
        built by ``build(self)`` on first use and kept under ``name`` for the others."""
        if name not in self.pieces:
            self.pieces[name] = build(self)
        return self.pieces[name]


def _holds_internal_service(dataset: Dataset) -> bool:
    return dataset.internal_service is not None and not dataset.internal_service.empty


def _holds_brand_promise(dataset: Dataset) -> bool:
    if dataset.customer_nps is not None:
        return "brand_promise" in dataset.customer_nps.columns
    tables = getattr(dataset.customer_tables, "tables", {})
    return "customer_nps" in tables and "brand_promise" in tables["customer_nps"].columns


#: The parts of contract version 2 an estimand may need beyond version 1, each with the test of
#: whether a dataset holds it: the ``internal_service`` table (with rows) and the
#: ``brand_promise`` column of ``customer_nps`` (in pandas or in the engine holding it).
PARTS: dict[str, Callable[[Dataset], bool]] = {
    "internal_service": _holds_internal_service,
    "brand_promise": _holds_brand_promise,
}


@dataclass(frozen=True)
class Estimand:
    """One estimand: what it answers, how to read it and how to fit it.

    ``name`` and ``term`` are its row's keys in ``estimates.csv``; ``label`` the short name
    figures, tables and the calibration report show; ``subject`` the phrase sentences about
    it start with; ``question`` what it answers; ``null`` its no-effect value on the
    reported scale; ``scale`` how it is reported: ``"difference"`` (points, SD or percentage
    points), ``"ratio"`` (exponentiated, tested on the log scale), ``"share"`` or ``"mde"``
    (a minimum detectable effect, no test). ``tested`` says whether it carries a p-value (in
    Holm's family and the influence check); ``in_study`` whether the calibration study fits
    it (the bootstraps are left out there: slow, and not tests of an effect);
    ``needs_churn`` whether it fits the churn hazard model; ``progress`` the message shown
    before it is fitted. ``fit`` takes a ``Fitting`` and returns the estimand's tidy row.

    ``needs`` names the parts of the data beyond contract version 1 it asks about (keys of
    ``PARTS``): on a dataset without them the estimand is not asked at all, so it has no row,
    no finding and no place in Holm's family (``applicable``). ``without_each_unit``, for a
    tested estimand the hard-coded influence check (``estimate.leave_one_unit_out``) does not
    know, takes the ``Fitting`` and the units (a sorted ``pandas.Index``) and returns the
    estimate without each unit on its test's scale, the estimate itself for a unit it does not
    use.
    """

    name: str
    term: str
    label: str
    subject: str
    question: str
    null: float
    scale: str
    tested: bool
    in_study: bool
    needs_churn: bool
    fit: Callable[[Fitting], dict]
    progress: str = ""
    needs: tuple[str, ...] = ()
    without_each_unit: Callable[[Fitting, pd.Index], np.ndarray] | None = None

    def applies_to(self, dataset: Dataset) -> bool:
        """Whether ``dataset`` holds every part the estimand ``needs``."""
        return all(PARTS[part](dataset) for part in self.needs)

    def test_scale(self, estimate: float) -> float:
        """The estimate on the scale its test uses: the log for a ratio."""
        return float(np.log(estimate)) if self.scale == "ratio" else float(estimate)


def _fit_nps_on_engagement(fitting: Fitting) -> dict:
    parameters = fitting.parameters
    row, jackknife = nps_on_engagement_with_jackknife(
        fitting.panel, parameters.covariates, parameters.confidence
    )
    fitting.jackknives["nps_on_engagement"] = jackknife
    return row


def _fit_churn(fitting: Fitting) -> dict:
    parameters = fitting.parameters
    model = fitting.churn_model()
    row, _ = churn_hazard_on_engagement(
        fitting.dataset,
        fitting.panel,
        fitting.as_of,
        parameters.covariates,
        parameters.confidence,
        model=model,
    )
    group, _ = linkage.jackknife_groups(model.units["unit_id"])
    fitting.jackknives["churn_hazard_on_engagement"] = Jackknife(
        model.replicates, _unit_groups(model.units["unit_id"], group)
    )
    return row


def _fit_brand_promise(fitting: Fitting) -> dict:
    parameters = fitting.parameters
    row, jackknife = brand_alignment.fit_with_jackknife(
        fitting.panel, parameters.covariates, parameters.confidence
    )
    if jackknife is not None:
        (unit_ids, group), replicates = jackknife
        fitting.jackknives[brand_alignment.NAME] = Jackknife(
            replicates, _unit_groups(unit_ids, group)
        )
    return row


def _fit_mde(fitting: Fitting) -> dict:
    return power.mde_row(fitting.rows["nps_on_engagement"], fitting.parameters.alpha)


ESTIMANDS: tuple[Estimand, ...] = (
    Estimand(
        "nps_on_engagement",
        "engagement_sd",
        "NPS points per SD of engagement",
        "The link between engagement and the next quarter's customer NPS",
        "Change in a unit's customer NPS in the quarter after a wave per +1 SD of engagement",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=_fit_nps_on_engagement,
        progress="engagement → NPS models",
    ),
    Estimand(
        "nps_on_engagement_within",
        "engagement_sd",
        "… within the same unit over time",
        "The link between engagement and NPS within the same unit",
        "The same slope from change within units only (unit and wave fixed effects)",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=lambda f: linkage.nps_on_engagement_within(f.panel, f.parameters.confidence),
    ),
    Estimand(
        "engagement_on_prior_nps",
        "prior_nps_per_10_points",
        "Reverse: engagement SD per +10 prior NPS",
        "The reverse link (customer NPS to later engagement)",
        "Engagement (in SD) per +10 points of customer NPS in the quarter before a wave",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=lambda f: linkage.engagement_on_prior_nps(
            f.panel, f.parameters.covariates, f.parameters.confidence
        ),
    ),
    Estimand(
        "churn_hazard_on_engagement",
        "engagement_sd",
        "Churn hazard ratio per SD of engagement",
        "The link between engagement and customers' risk of leaving",
        "Hazard ratio of a customer leaving per +1 SD of the unit's engagement",
        1.0,
        "ratio",
        tested=True,
        in_study=True,
        needs_churn=True,
        fit=_fit_churn,
        progress="churn hazard (time-varying engagement, unit × wave × tenure cells)",
    ),
    Estimand(
        "nps_quartile_gap",
        "nps_quartile_gap",
        "NPS gap, top − bottom quartile (points)",
        "The NPS gap between the top and bottom engagement quartiles",
        "Customer NPS of the top minus the bottom engagement quartile of unit-waves",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=lambda f: linkage.nps_quartile_gap(
            f.panel, f.parameters.min_group_size, f.parameters.confidence
        ),
    ),
    Estimand(
        "retention_quartile_gap",
        "top_minus_bottom_pp",
        "12-month retention gap, top − bottom (pp)",
        "The retention gap between the top and bottom engagement quartiles",
        "12-month retention of the top minus the bottom engagement quartile, in points",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=lambda f: retention_quartile_gap(
            f.dataset,
            f.panel,
            f.parameters.min_group_size,
            f.as_of,
            f.parameters.confidence,
        ),
    ),
    Estimand(
        "nps_mediated_share",
        "share_through_nps",
        "Share of churn effect through NPS",
        "The share of the churn link that runs through NPS",
        "Share of engagement's effect on churn that runs through the unit's customer NPS",
        0.0,
        "share",
        tested=True,
        in_study=False,
        needs_churn=True,
        fit=lambda f: nps_mediated_share(
            f.panel,
            f.churn_model().cells,
            f.parameters.covariates,
            f.parameters,
            f.churn_model().mediation_on(f.panel, f.parameters.covariates),
        ),
        progress="mediation through NPS ({bootstrap_draws} bootstrap draws)",
    ),
    # (v2) The internal-service chain (analysis.models.chain): asked only of a dataset with the
    # internal_service table.
    Estimand(
        "engagement_on_internal_service",
        chain.TERM,
        "Engagement points per SD of internal service",
        "The link between the internal service a unit receives and its engagement",
        "Engagement index points per +1 SD of the internal service a unit receives from other "
        "teams (rated by other units' staff), same wave",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=chain.engagement_on_internal_service,
        progress="internal-service chain (service received → engagement → NPS)",
        needs=("internal_service",),
        without_each_unit=chain.engagement_without_each_unit,
    ),
    Estimand(
        "nps_on_internal_service",
        chain.TERM,
        "NPS points per SD of internal service (total)",
        "The link between the internal service a unit receives and the next quarter's NPS",
        "Change in a unit's customer NPS in the quarter after a wave per +1 SD of the internal "
        "service it received (all paths)",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=chain.nps_on_internal_service,
        needs=("internal_service",),
        without_each_unit=chain.nps_without_each_unit,
    ),
    Estimand(
        "nps_via_engagement_share",
        chain.SHARE_TERM,
        "Share of the service–NPS link through engagement",
        "The share of the internal service–NPS link that runs through engagement",
        "Share of the link between internal service received and NPS that runs through the "
        "unit's engagement (a·b / total)",
        0.0,
        "share",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=chain.nps_via_engagement_share,
        needs=("internal_service",),
        without_each_unit=chain.share_without_each_unit,
    ),
    Estimand(
        "nps_on_internal_service_within",
        chain.TERM,
        "NPS points per SD of internal service, within the same unit",
        "The link between internal service received and NPS within the same unit",
        "The NPS slope on internal service received from change within units only (unit and "
        "wave fixed effects)",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=chain.nps_on_internal_service_within,
        needs=("internal_service",),
        without_each_unit=chain.within_without_each_unit,
    ),
    Estimand(
        brand_alignment.NAME,
        brand_alignment.TERM,
        "Brand-promise points per SD of staff brand alignment",
        "The link between staff brand alignment and customers' sense that the brand promise "
        "is kept",
        "Change in a unit's customer brand-promise index (0-100) in the quarter after a wave "
        "per +1 SD of its staff's true brand alignment at that wave",
        0.0,
        "difference",
        tested=True,
        in_study=True,
        needs_churn=False,
        fit=_fit_brand_promise,
        progress="staff brand alignment → customers' brand promise",
        needs=("brand_promise",),
        without_each_unit=brand_alignment.without_each_unit,
    ),
    Estimand(
        "nps_on_engagement_uncorrected",
        "engagement_observed_sd",
        "NPS points per observed SD, uncorrected",
        "The headline link without the correction for noisy unit averages",
        "The NPS slope per SD of the observed engagement index, without regression calibration",
        0.0,
        "difference",
        tested=False,
        in_study=False,
        needs_churn=False,
        fit=lambda f: linkage.nps_on_engagement_uncorrected(
            f.panel, f.parameters.covariates, f.parameters.confidence
        ),
    ),
    Estimand(
        "nps_on_engagement_mde",
        "engagement_sd",
        "Minimum detectable effect, NPS per SD",
        "The smallest NPS slope this study could have detected",
        "The NPS slope per SD of engagement detectable with 80% power",
        0.0,
        "mde",
        tested=False,
        in_study=False,
        needs_churn=False,
        fit=_fit_mde,
    ),
)


def by_name(name: str) -> Estimand:
    """The registry's entry called ``name`` (``KeyError`` if there is none)."""
    for estimand in ESTIMANDS:
        if estimand.name == name:
            return estimand
    raise KeyError(name)


def applicable(dataset: Dataset, estimands: tuple[Estimand, ...] | None = None):
    """The entries of ``estimands`` (``ESTIMANDS`` by default) that ``dataset`` can answer,
    in order: those whose ``needs`` it holds."""
    entries = ESTIMANDS if estimands is None else estimands
    return tuple(e for e in entries if e.applies_to(dataset))


def fit_rows(
    fitting: Fitting,
    estimands: tuple[Estimand, ...] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Fit ``estimands`` (by default ``ESTIMANDS``) in order on ``fitting``; their tidy rows.

    Parameters
    ----------
    fitting : Fitting
        The data, parameters, panel and ``as_of``, and the shared pieces.
    estimands : tuple of Estimand, optional
        The entries to fit, in order; when omitted, those of ``ESTIMANDS`` that apply to the
        dataset (``applicable``).
    progress : callable
        Called with each entry's ``progress`` message before it is fitted.

    Returns
    -------
    list of dict
        One tidy row per entry. Each is also kept in ``fitting.rows``, so that a later entry
        can read an earlier one (the minimum detectable effect reads the main estimate's SE).
    """
    rows = []
    for estimand in applicable(fitting.dataset) if estimands is None else estimands:
        if estimand.progress:
            progress(estimand.progress.format(bootstrap_draws=fitting.parameters.bootstrap_draws))
        row = estimand.fit(fitting)
        fitting.rows[estimand.name] = row
        rows.append(row)
    return rows


def labels() -> dict[str, tuple[str, float]]:
    """``{name: (label, null)}`` of every tested estimand, in order: what figures and tables
    show, and the no-effect line each is drawn against."""
    return {e.name: (e.label, e.null) for e in ESTIMANDS if e.tested}
