"""Every linkage estimand from one dataset: the engine behind ``python -m analysis estimate``.

Pure: a validated ``Dataset`` and ``Parameters`` in, tidy tables out. ``data.load`` writes them.

``estimates`` has one row per estimand of ``registry.ESTIMANDS``, in its order, with the
columns ``tidy.ESTIMATE_COLUMNS`` (the tidy row and the fit's facts: ``se_method``,
``jackknife_groups``, ``bootstrap_draws``, ``correction``), ``p_adjusted`` (Holm, see
``with_holm``) and ``INFLUENCE_COLUMNS`` (does leaving out one unit flip the finding? see
``one_unit_fragility``). Hazard ratios are reported exponentiated
(``estimate``, ``conf_low``, ``conf_high``) with ``std_error`` on the log scale, as R's broom does
with ``exponentiate = TRUE``. Each estimand's fit lives in ``registry``; this module runs them
all, checks their influence and releases the display tables. The estimates are exact; the
employee figures of the display tables (``unit_wave``, the quartile means) are released with
Laplace noise (``released_unit_wave``, ``released_quartiles``, ``analysis.measures.privacy``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import REQUIRED_SCALE
from analysis.data.load import Dataset
from analysis.data.parameters import Parameters, check_parameters, resolve_as_of
from analysis.measures.panel import holds_brand_promise, keep_splits, unit_wave_panel
from analysis.measures.privacy import Release, release_for
from analysis.measures.shrinkage import CALIBRATION_FLOOR, calibration_signal, df_correction
from analysis.models import churn_data, hazard, linkage, registry
from analysis.models.brand_alignment import brand_alignment_table
from analysis.models.linkage import EstimationError
from analysis.models.registry import (  # noqa: F401  the fits' home is the registry
    ChurnModel,
    Fitting,
    Jackknife,
    Mediation,
    _hazard_jackknife,
    _mediation_cells,
    calibrated_engagement_sd,
    churn_hazard_on_engagement,
    churn_model,
    nps_mediated_share,
    nps_on_engagement_with_jackknife,
    retention_quartile_gap,
)
from analysis.models.service_release import released_service
from analysis.models.tidy import ESTIMATE_COLUMNS

SCALE_INDEX_SUFFIX = "_index"
# Cluster-robust errors rest on the number of units; below about ten they are unreliable
# (Cameron & Miller, 2015, section VI).
MIN_UNITS = 10


@dataclass
class Results:
    """Everything ``estimate_all`` produces for one dataset.

    Attributes
    ----------
    estimates : DataFrame
        One tidy row per registered estimand (``analysis.models.tidy.ESTIMATE_COLUMNS``), with
        ``p_adjusted`` (Holm) and the influence columns.
    drivers : DataFrame
        Relative-weight importance of each internal measure for customer NPS.
    unit_wave : DataFrame
        The unit × wave table as released: small groups suppressed, the rest with Laplace noise.
    quartiles : DataFrame
        Customer NPS by engagement quartile of unit-waves, released the same way.
    panel : DataFrame
        The unreleased unit × wave panel the models were fitted on; never written to a file.
    brand_alignment : DataFrame or None
        (Contract v2) Staff brand alignment against customers' brand promise per unit × wave,
        released (``analysis.models.brand_alignment.brand_alignment_table``); ``None`` when
        customers were not asked ``brand_promise``.
    service : dict of str to DataFrame
        With an ``internal_service`` table (contract v2), the released provider scorecards and
        network (``analysis.models.service_release``); empty otherwise, and then no file.
    """

    estimates: pd.DataFrame
    drivers: pd.DataFrame
    unit_wave: pd.DataFrame
    quartiles: pd.DataFrame
    panel: pd.DataFrame
    brand_alignment: pd.DataFrame | None = None
    service: dict[str, pd.DataFrame] = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result files, by name: what ``estimate`` writes and the report reads (the
        optional ones, ``analysis.data.results.OPTIONAL_RESULT_FILES``, when present)."""
        tables = {
            "estimates": self.estimates,
            "drivers": self.drivers,
            "unit_wave": self.unit_wave,
            "nps_by_engagement_quartile": self.quartiles,
        }
        if self.brand_alignment is not None:
            tables["brand_alignment"] = self.brand_alignment
        return {**tables, **self.service}


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


def pooled_within_variance(panel: pd.DataFrame, min_group_size: int) -> tuple[float, int]:
    """The within-unit-wave variance of engagement pooled over unit-waves of at least
    ``min_group_size`` people, and its degrees of freedom ``Σ (n − 1)`` over them."""
    large = panel["n_respondents"] >= min_group_size
    degrees = int((panel.loc[large, "n_respondents"] - 1).sum())
    pooled = panel.loc[large, "engagement_within_ss"].sum() / degrees if degrees > 0 else np.nan
    return float(pooled), degrees


def published_noise_var(panel: pd.DataFrame, min_group_size: int) -> pd.Series:
    """``s²/n`` with ``s²`` pooled only over unit-waves of at least ``min_group_size`` people.

    The models pool the within-unit-wave variance over every unit-wave, small ones included;
    published, that pooled variance would let two reports that differ by one small unit be
    subtracted to recover the small unit's sum of squares. Pooled over large cells only, the
    published figure changes with a unit's answers only where that unit's cell is itself
    large enough to show. (Before release, ``released_unit_wave`` adds noise to ``s²``.)
    """
    pooled, _ = pooled_within_variance(panel, min_group_size)
    return pooled / panel["n_respondents"].where(panel["n_respondents"] > 0)


def suppressed_unit_wave(panel: pd.DataFrame, scale_columns, min_group_size: int) -> pd.DataFrame:
    """The unit × wave table for display: every employee-derived value passes suppression.

    Each scale is suppressed on the count of people who answered that scale (a one-item scale
    can rest on fewer people than engagement), with complementary suppression for the totals
    that could be published: by wave, by region and wave, and overall. ``suppressed`` and
    ``suppression`` describe the engagement index; other scales are blank where hidden.
    """
    from analysis.measures.privacy import suppress

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


def released_unit_wave(
    table: pd.DataFrame, panel: pd.DataFrame, min_group_size: int, release: Release
) -> pd.DataFrame:
    """The suppressed unit × wave table with every employee-derived value released with noise.

    ``table`` is ``suppressed_unit_wave``'s (exact values, small groups hidden). Each shown
    ``<scale>_index`` (0–100, one person's score moves a mean of ``n`` by at most ``100/n``)
    gets Laplace noise of scale ``b = 100 / (n ε)`` with ``n`` that scale's respondents
    (``measures.privacy.laplace_mechanism``). The pooled within-unit-wave variance ``s²`` behind
    ``engagement_noise_var`` is released once, with ``b = 100² / (df ε)`` (one response moves a
    sum of squares by less than ``100²``; ``df = Σ (n − 1)`` over the pooled unit-waves, a
    count), and floored at zero. ``engagement_noise_var`` then becomes the whole variance of the
    published index about the unit-wave's true mean: ``s̃² / n + 2 b²``, sampling plus release
    noise, so that every interval, test and shrinkage computed from the table (``analysis.
    internal``) counts the noise. Hidden values stay missing; counts and customer NPS are not
    employee answers and stay exact. The noise draws come from ``release`` (the data's secret
    and the parameters) and each figure's name, ``("unit_wave", column, unit_id, wave)``.
    """
    from analysis.measures.privacy import (
        laplace_mechanism,
        mean_sensitivity,
        released_pooled_variance,
    )

    result = table.copy()
    units = result["unit_id"].astype("string").to_numpy(dtype=object, na_value="\0missing")
    waves = pd.to_datetime(result["wave"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    shown_engagement = result["engagement_index"].notna().to_numpy()
    n = result["n_respondents"].to_numpy(dtype="float64")
    pooled, degrees = pooled_within_variance(panel, min_group_size)
    pooled_noisy = released_pooled_variance(
        pooled, degrees, ("unit_wave", "engagement_pooled_within_variance"), release
    )
    for column in [c for c in result.columns if c.endswith(SCALE_INDEX_SUFFIX)]:
        count = (
            "n_respondents"
            if column == "engagement_index"
            else column.removesuffix(SCALE_INDEX_SUFFIX) + "_respondents"
        )
        counts = result[count].to_numpy(dtype="float64")
        figures = [("unit_wave", column, u, w) for u, w in zip(units, waves, strict=True)]
        noisy, noise_var = laplace_mechanism(
            result[column].to_numpy(dtype="float64"),
            mean_sensitivity(100.0, counts),
            figures,
            release,
        )
        result[column] = noisy
        if column == "engagement_index":
            with np.errstate(divide="ignore", invalid="ignore"):
                sampling = np.where(n > 0, pooled_noisy / n, np.nan)
            result["engagement_noise_var"] = np.where(
                shown_engagement, sampling + noise_var, np.nan
            )
    return result


def released_quartiles(
    quartiles: pd.DataFrame, panel: pd.DataFrame, min_group_size: int, release: Release
) -> pd.DataFrame:
    """The quartile table with ``mean_engagement_index`` released with Laplace noise.

    A quartile's mean engagement is the plain mean of its ``K`` unit-waves' indices. Quartiles
    are blocks of the sorted indices, and sorting moves no value further than the change that
    caused it (it is 1-Lipschitz in the L1 norm), so replacing one response, which moves one
    unit-wave's index by at most ``100 / n_min`` (``n_min``: the fewest respondents of any
    unit-wave in the quartiles, a count), moves the four quartile sums by at most that much in
    total. Noise of scale ``b_q = 100 / (n_min K_q ε)`` on each quartile's mean makes the four
    together ε-differentially private. Which quartile a unit-wave falls in is not protected
    (see README, "Privacy"); customer NPS and counts stay exact.
    """
    from analysis.measures.privacy import laplace_mechanism

    if quartiles.empty or "mean_engagement_index" not in quartiles:
        return quartiles
    eligible = linkage.quartile_unit_waves(panel, min_group_size)
    n_min = float(eligible["n_respondents"].min())
    sizes = quartiles["n_unit_waves"].to_numpy(dtype="float64")
    noisy, _ = laplace_mechanism(
        quartiles["mean_engagement_index"].to_numpy(dtype="float64"),
        100.0 / (n_min * sizes),
        [("quartiles", "mean_engagement_index", int(q)) for q in quartiles["quartile"]],
        release,
    )
    return quartiles.assign(mean_engagement_index=noisy)


def estimate_all(
    dataset: Dataset, parameters: Parameters, progress: Callable[[str], None] = lambda _: None
) -> Results:
    """Build the panel, every estimand of the registry, drivers and the released tables.

    Parameters
    ----------
    dataset : Dataset
        A validated study (``analysis.data.load``).
    parameters : Parameters
        The run's parameters; ``as_of`` is resolved by ``parameters.resolve_as_of``.
    progress : callable
        Called with a short message before each slow step.

    Returns
    -------
    Results
        ``estimates`` (one ``tidy`` row per entry of ``registry.ESTIMANDS``, in its order,
        with ``p_adjusted`` and the influence columns), drivers, the released unit × wave and
        quartile tables, and the panel.

    Notes
    -----
    The entries are fitted in order on one ``registry.Fitting``, which fits the churn model
    once for the hazard ratio, the mediated share and the influence check. Holm's adjustment
    (``with_holm``) runs over every row with a p-value, then ``one_unit_fragility``.

    The drivers compare every scale of the instrument whose unit-wave index varies, whatever
    its items are called; a scale nobody answered is left out, and when the data cannot carry
    the comparison at all (``drivers.DriversUnavailable``) the drivers table is empty and the
    other results stand. No engagement answer at all is an ``EstimationError``.
    """
    from analysis.models.drivers import DRIVER_COLUMNS, DriversUnavailable, driver_importance

    empty = [
        dataset.files[name].name
        for name in ("employee_survey", "customer_nps", "customers")
        if dataset.is_empty(name)
    ]
    if empty:
        raise EstimationError(f"nothing to estimate from: {', '.join(empty)} has no rows")
    engagement = dataset.instrument.scale(REQUIRED_SCALE).items
    if not dataset.employee_survey[list(engagement)].notna().any(axis=None):
        survey = dataset.files.get("employee_survey")
        raise EstimationError(
            f"nothing to estimate from: no one answered an engagement item "
            f"({', '.join(engagement)}) in {survey.name if survey else 'employee_survey'}; "
            "every estimand needs engagement: check that instrument.yaml lists, under "
            "'engagement', the survey columns that hold the engagement answers"
        )
    # Covariates, as_of and the window against the data, every problem at once, before any work
    check_parameters(dataset, parameters)
    as_of = resolve_as_of(dataset, parameters)
    covariates = parameters.covariates
    confidence = parameters.confidence
    progress("building the unit × wave panel")
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
    fitting = Fitting(dataset, parameters, panel, as_of)
    rows = registry.fit_rows(fitting, progress=progress)
    estimates = pd.DataFrame(rows)[list(ESTIMATE_COLUMNS)]
    estimates = with_holm(estimates.astype({"n_obs": "int64", "n_units": "int64"}))
    # quartiles need unit-waves large enough to show; without them the table is empty
    try:
        quartiles = linkage.nps_by_engagement_quartile(panel, parameters.min_group_size, confidence)
    except EstimationError:
        quartiles = pd.DataFrame(columns=list(linkage.QUARTILE_COLUMNS))
    progress("influence of single units on each finding")
    churn_fit = fitting.churn_model()
    leave_out = leave_one_unit_out(dataset, panel, parameters, as_of, churn_fit, fitting)
    estimates = one_unit_fragility(
        estimates,
        leave_out,
        parameters.alpha,
        fitting.jackknives,
        refit=lambda unit, names: refit_without(
            unit, names, dataset, panel, parameters, as_of, churn_fit
        ),
    )

    progress(f"driver importance ({parameters.bootstrap_draws} bootstrap draws)")
    predictors = [
        c for c in panel.columns if c.endswith(SCALE_INDEX_SUFFIX) and not c.endswith("_lag")
    ]
    driver_rows = linkage.customer_facing_rows(panel)
    driver_rows = driver_rows[driver_rows["n_responses"] > 0]
    # An optional scale nobody answered (or everyone answered alike) has no weight to give,
    # and keeping it would drop every row: it is left out of the comparison.
    measured = [c for c in predictors if driver_rows[c].nunique() > 1]
    try:
        if not measured:
            raise DriversUnavailable("no internal measure varies between unit-waves")
        drivers = driver_importance(
            driver_rows.dropna(subset=measured),
            measured,
            outcome="nps",
            cluster="unit_id",
            weight="n_responses",
            draws=parameters.bootstrap_draws,
            seed=parameters.seed,
            confidence=confidence,
            alpha=parameters.alpha,
        )
    except DriversUnavailable as error:
        # the other results stand without it; the report says it could not be estimated
        progress(f"driver importance left out: {error}")
        drivers = pd.DataFrame(columns=list(DRIVER_COLUMNS))

    progress(f"releasing the employee figures (Laplace noise, ε = {parameters.privacy_epsilon:g})")
    release = release_for(dataset, parameters)
    unit_wave = released_unit_wave(
        suppressed_unit_wave(panel, predictors, parameters.min_group_size),
        panel,
        parameters.min_group_size,
        release,
    )
    quartiles = released_quartiles(quartiles, panel, parameters.min_group_size, release)
    brand = None
    if holds_brand_promise(dataset):  # (v2) only when customers were asked brand_promise
        brand = brand_alignment_table(panel, unit_wave, parameters, release)
    # optional (contract v2): absent on a dataset without the table, so no file is written
    service = released_service(
        dataset.internal_service, parameters.min_group_size, release, confidence
    )
    return Results(estimates, drivers, unit_wave, quartiles, panel, brand, service)


# --------------------------------------------------------------------------------------------
# Does a finding rest on one unit?

#: Columns the influence check adds to ``estimates`` (after ``p_adjusted``).
INFLUENCE_COLUMNS = ("fragile_to_one_unit", "n_units_flip_significance", "n_units_flip_sign")


def leave_one_unit_out(
    dataset: Dataset,
    panel: pd.DataFrame,
    parameters: Parameters,
    as_of: pd.Timestamp,
    churn: ChurnModel,
    fitting: Fitting | None = None,
) -> pd.DataFrame:
    """Each tested estimand recomputed without each unit, by a one-step approximation.

    Returns one row per unit of the panel (shown or suppressed, indexed by ``unit_id``) and one
    column per estimand with a test: its estimate without that unit, on the scale of
    ``estimates.csv`` (the churn column is the log hazard ratio). A unit an estimand does not
    use leaves it unchanged.

    Refitting every estimand without every unit would cost units × estimands fits (hours for
    twenty thousand units). Instead each estimator is linearised in its final stage, with the
    nuisance parts (covariate and wave effects, regression calibration, precision weights)
    held at their full-sample values:

    * **weighted least squares** (``nps_on_engagement``, ``engagement_on_prior_nps``): with
      ``x̃``, ``ỹ`` the regressor and outcome after partialling out every other column
      (Frisch–Waugh–Lovell) and ``e = ỹ − β x̃``, the slope without unit ``u`` is exactly
      ``β − Σ_u w x̃ e / (Σ w x̃² − Σ_u w x̃²)`` for those residuals;
    * **ratios of unit sums** (``nps_on_engagement_within``): ``(A − a_u) / (D − d_u)``, the
      denominator's parts including each unit's first-order share of the reliability;
    * **Poisson hazard models** (``churn_hazard_on_engagement``, both models of
      ``nps_mediated_share``): one Newton step from the full-sample fit on the data without
      the unit, on the efficient score of the engagement coefficient: ``θ − Ũ_u / (Ĩ − Ĩ_u)``
      with ``Ũ_u`` the unit's share of the score and ``Ĩ − Ĩ_u`` the information left, nuisance
      parameters profiled to first order (as the jackknife of ``_hazard_jackknife`` steps once);
    * **quartile gaps**: the pooled means of the top and bottom quartile without the unit's
      answers or customers, the quartile of every other unit-wave held fixed.

    "Per SD of engagement" divides by the SD of the true index, which the unit also moves:
    that SD is recomputed exactly without the unit (from sums). Every approximation is checked
    against exact refits on a small study in tests/test_influence.py.

    An estimand added to the registry brings its own approximation
    (``Estimand.without_each_unit``), computed here on ``fitting`` (the run's, whose shared
    pieces it reuses) when the dataset holds what the estimand needs.
    """
    units = pd.Index(np.sort(panel["unit_id"].astype("string").unique()), name="unit_id")
    covariates = parameters.covariates
    facing = linkage.customer_facing_rows(panel)
    index_rows = facing.dropna(subset=["engagement_index"])
    columns = {
        "nps_on_engagement": _loo_nps_on_engagement(facing, covariates, units),
        "nps_on_engagement_within": _loo_within(facing, index_rows, units),
        "engagement_on_prior_nps": _loo_reverse(
            facing,
            index_rows,
            covariates,
            units,
            _fitted_estimate(fitting, "engagement_on_prior_nps"),
        ),
        "churn_hazard_on_engagement": _loo_churn(churn, index_rows, units),
        "nps_quartile_gap": _loo_nps_quartile_gap(panel, parameters.min_group_size, units),
        "retention_quartile_gap": _loo_retention_gap(
            dataset, panel, parameters.min_group_size, as_of, units
        ),
        "nps_mediated_share": _loo_mediated_share(churn.mediation_on(panel, covariates), units),
    }
    if fitting is not None:
        for estimand in registry.applicable(dataset):
            if estimand.tested and estimand.without_each_unit is not None:
                columns[estimand.name] = estimand.without_each_unit(fitting, units)
    return pd.DataFrame(columns, index=units)


#: Splits of the staff on which ``_loo_reverse`` computes each unit's effect (see there), at
#: most; fewer where the stacked rows would pass ``INFLUENCE_ROWS``
INFLUENCE_SPLITS = 32
#: Stacked rows (two per eligible unit-wave and split) ``_loo_reverse`` works on, at most: each
#: recalibrated unit costs a pass over them. The sample's 720 eligible unit-waves keep all 32
#: splits; a study of 20,000 units keeps 2 (at least one split always), where a unit's effect,
#: one part in thousands, varies between splits far less than the estimate does.
INFLUENCE_ROWS = 400_000

#: Exact refits per estimand that confirm or correct the approximation (``one_unit_fragility``;
#: one beyond two thousand units, where a refit takes seconds and one unit weighs little)
REFITS_PER_ESTIMAND = 3


#: Each share among the estimands and the link it divides: a share is judged fragile only when
#: that link is significant, as the findings read it (``analysis.report.findings``).
SHARES_OF = {
    "nps_mediated_share": "churn_hazard_on_engagement",
    "nps_via_engagement_share": "nps_on_internal_service",
}


def one_unit_fragility(
    estimates: pd.DataFrame,
    leave_out: pd.DataFrame,
    alpha: float,
    jackknives: dict[str, Jackknife] | None = None,
    refit: Callable[[str, list[str]], dict[str, tuple[float, float]]] | None = None,
) -> pd.DataFrame:
    """Add ``INFLUENCE_COLUMNS``: does leaving out one unit flip a finding?

    For each unit ``u`` every tested estimand's test is redone without ``u``: its estimate
    ``θ_u`` from ``leave_one_unit_out``, and its standard error approximated from the same
    leave-one-out changes ``δ_g = θ_g − θ``. Cluster-robust and bootstrap variances over units
    are, to first order, ``Σ_g δ_g²``; leaving ``u`` out removes its term, so
    ``SE_u ≈ SE √(1 − δ_u² / Σ_g δ_g²)`` (no less than ``SE / √G``). For the estimands whose SE
    is a delete-a-group jackknife (``jackknives``: the replicates ``θ_k`` and each unit's
    group), every replicate but the one that already lacks ``u`` moves by ``δ_u``, and ``SE_u``
    is the jackknife SE of the moved replicates. This matters: a unit extreme enough to move an
    estimate also inflates its standard error, so keeping the full-sample SE would miss the
    very case this check is for, a hidden unit that masks a finding.

    Those approximations are checked where they matter: with ``refit`` (``unit, estimands →
    {estimand: (estimate on the test scale, p-value)}``, the estimators themselves rerun
    without the unit), the ``REFITS_PER_ESTIMAND`` units with the largest share ``δ_u² / Σ δ²``
    among those whose approximate Holm-adjusted p-value lies within a factor of ten of
    ``alpha`` or that flip the finding are refitted exactly, and their exact results replace
    the approximation. So every reported flip of an estimand is confirmed by a refit unless
    more than that many units flip it, and a unit that masks a finding by inflating its
    standard error is refitted rather than guessed at. The test statistic
    becomes ``T_u = T · (θ_u / θ) / (SE_u / SE)``, with ``T`` read back from the published
    p-value under the estimand's own reference distribution (Student's t with the df of its
    test: ``K − 1`` for a jackknife over ``K`` groups, units − 1 for a cluster-robust SE; the
    normal for the bootstrap of the mediated share). Holm's adjustment is then redone
    over the family without ``u``. A finding **flips** when its Holm-adjusted significance
    (``p_adjusted < alpha``) or the sign of its estimate (of the log hazard ratio, for the
    hazard ratio) differs from the published one.

    ``n_units_flip_significance`` and ``n_units_flip_sign`` count the units that flip it.
    ``fragile_to_one_unit`` is true when one unit flips its significance, or the sign of a
    significant estimate: the direction of an estimate that is not significant is not a
    finding, and near zero any unit may turn it (that still shows in ``n_units_flip_sign``).
    A share (``SHARES_OF``) is judged only when the link it divides is significant (the mediated
    share when the churn hazard ratio is, the chain's share through engagement when the total
    service–NPS link is),
    as the report reads it (near a zero total effect the share is unstable). Rows without a
    test (the minimum detectable effect) get zero and false. No unit is named anywhere: the
    counts are all that is kept.
    """
    result = estimates.copy()
    for column in INFLUENCE_COLUMNS[1:]:
        result[column] = 0
    result[INFLUENCE_COLUMNS[0]] = False
    tested = [
        i
        for i, row in result.iterrows()
        if pd.notna(row["p_value"])
        and pd.notna(row["estimate"])
        and row["estimand"] in leave_out.columns
    ]
    if not tested or leave_out.empty:
        return result[[*estimates.columns, *INFLUENCE_COLUMNS]]
    names = [result.at[i, "estimand"] for i in tested]
    theta = np.array(
        [_test_scale(n, result.at[i, "estimate"]) for i, n in zip(tested, names, strict=True)]
    )
    p_full = result.loc[tested, "p_value"].to_numpy(dtype=float)
    tested_units = result.loc[tested, "n_units"].to_numpy(dtype=float)
    significant = result.loc[tested, "p_adjusted"].to_numpy(dtype=float) < alpha
    without = leave_out[names].to_numpy(dtype=float, copy=True)
    p_without = np.empty_like(without)
    shares = np.zeros_like(without)  # how much each unit could move each test
    jackknives = jackknives or {}
    for j, name in enumerate(names):
        change = without[:, j] - theta[j]
        used = np.isfinite(change) & (change != 0)
        if name in jackknives:
            jackknife = jackknives[name]
            df = len(jackknife.replicates) - 1
            se_ratio = _jackknife_se_ratio(jackknife, leave_out.index, change)
        else:
            df = np.inf if name == "nps_mediated_share" else max(int(tested_units[j]) - 1, 1)
            spread = float(np.sum(change[used] ** 2))
            share = np.zeros(len(change))
            if spread > 0:
                share[used] = change[used] ** 2 / spread
            se_ratio = np.sqrt(np.maximum(1 - share, 1 / max(int(used.sum()), 1)))
        reference = stats.norm if not np.isfinite(df) else stats.t(df)
        statistic = reference.isf(p_full[j] / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(without[:, j] / theta[j]) / se_ratio if theta[j] != 0 else np.nan
        p_j = np.minimum(2 * reference.sf(statistic * ratio), 1.0)
        p_j = np.where(np.isnan(without[:, j]), 1.0, p_j)  # not estimable: not significant
        p_without[:, j] = np.where(without[:, j] == theta[j], p_full[j], p_j)
        # how far the unit moves the test: its share of the variance, and of the estimate
        shares[:, j] = 1 - se_ratio**2 + (change / theta[j]) ** 2 if theta[j] else 0.0
    adjusted = _holm_rows(p_without)
    flips_significance = (adjusted < alpha) != significant[None, :]
    flips_sign = (np.sign(without) != np.sign(theta)[None, :]) & ~np.isnan(without)
    if refit is not None:
        chosen: dict[int, list[int]] = {}
        for j in range(len(names)):
            with np.errstate(divide="ignore"):
                near = np.abs(np.log(adjusted[:, j] / alpha)) < np.log(10)
            flipping = flips_significance[:, j] | (flips_sign[:, j] & significant[j])
            candidates = np.flatnonzero((near | flipping) & np.isfinite(shares[:, j]))
            order = candidates[np.argsort(-shares[candidates, j], kind="stable")]
            for u in order[: REFITS_PER_ESTIMAND if len(leave_out) <= 2000 else 1]:
                chosen.setdefault(int(u), []).append(j)
        for u, columns in chosen.items():
            exact = refit(str(leave_out.index[u]), [names[j] for j in columns])
            for j in columns:
                estimate_u, p_u = exact.get(names[j], (np.nan, np.nan))
                without[u, j] = estimate_u
                p_without[u, j] = p_u if np.isfinite(p_u) else 1.0
        if chosen:
            adjusted = _holm_rows(p_without)
            flips_significance = (adjusted < alpha) != significant[None, :]
            flips_sign = (np.sign(without) != np.sign(theta)[None, :]) & ~np.isnan(without)
    judged = {
        n: n not in SHARES_OF
        or (SHARES_OF[n] in names and bool(significant[names.index(SHARES_OF[n])]))
        for n in names
    }
    for j, i in enumerate(tested):
        result.at[i, "n_units_flip_significance"] = int(flips_significance[:, j].sum())
        result.at[i, "n_units_flip_sign"] = int(flips_sign[:, j].sum())
        result.at[i, "fragile_to_one_unit"] = judged[names[j]] and bool(
            flips_significance[:, j].any() or (significant[j] and flips_sign[:, j].any())
        )
    result = result.astype(
        {
            "fragile_to_one_unit": bool,
            "n_units_flip_significance": "int64",
            "n_units_flip_sign": "int64",
        }
    )
    return result[[*estimates.columns, *INFLUENCE_COLUMNS]]


def refit_without(
    unit: str,
    names: list[str],
    dataset: Dataset,
    panel: pd.DataFrame,
    parameters: Parameters,
    as_of: pd.Timestamp,
    churn: ChurnModel,
) -> dict[str, tuple[float, float]]:
    """Each named estimand refitted without ``unit``: ``{estimand: (estimate, p-value)}``.

    The estimators themselves, standard errors included, on the panel without the unit's rows
    (the panel is not rebuilt: its pooled within-unit variance keeps the unit's share, a
    negligible difference). The churn model reuses the hazard cells of the other units and
    recalibrates their engagement. The estimate is on the test's scale (log hazard ratio).
    """
    covariates = parameters.covariates
    rest = panel[panel["unit_id"].astype("string") != unit]
    results: dict[str, tuple[float, float]] = {}
    model = None
    if {"churn_hazard_on_engagement", "nps_mediated_share"} & set(names):
        units = churn.units[churn.units["unit_id"].astype("string") != unit].copy()
        units["engagement_sd"] = calibrated_engagement_sd(units, covariates)
        renumber = pd.Series(np.arange(len(units)), index=units["unit_wave_row"].to_numpy())
        units["unit_wave_row"] = np.arange(len(units))
        cells = churn.cells[churn.cells["unit_id"].astype("string") != unit].copy()
        cells["engagement_sd"] = units["engagement_sd"].to_numpy()[
            renumber.loc[cells["unit_wave_row"].to_numpy()].to_numpy()
        ]
        cells["unit_wave_row"] = renumber.loc[cells["unit_wave_row"].to_numpy()].to_numpy()
        cells = cells.reset_index(drop=True)
        unit_covariates = [c for c in covariates if c in units.columns]
        design = hazard.hazard_absorbed_design(cells, ["engagement_sd"], [*unit_covariates, "wave"])
        params, wave_effects = hazard.poisson_fit_absorbed(
            cells["events"].to_numpy(float), cells["exposure"].to_numpy(float) / 365.25, design
        )
        model = ChurnModel(units, churn.runs, cells, design, params, wave_effects=wave_effects)
    fitting = Fitting(dataset, parameters, rest, as_of, churn=model)
    for estimand in registry.ESTIMANDS:
        if estimand.name not in names:
            continue
        try:
            row = estimand.fit(fitting)
        except (EstimationError, np.linalg.LinAlgError, ValueError, ZeroDivisionError):
            results[estimand.name] = (np.nan, np.nan)
            continue
        results[estimand.name] = (estimand.test_scale(row["estimate"]), float(row["p_value"]))
    return results


def _jackknife_se_ratio(jackknife: Jackknife, units: pd.Index, change: np.ndarray) -> np.ndarray:
    """Each unit's jackknife SE without it over the published one (1 where it is not used).

    Without unit ``u``, every replicate but that of ``u``'s group (which already lacks ``u``)
    moves by ``u``'s leave-one-out change ``δ_u``; the SE is recomputed from the moved
    replicates (``linkage.jackknife_se``).
    """
    replicates = np.asarray(jackknife.replicates, dtype=float)
    k = len(replicates)
    full = linkage.jackknife_se(replicates)
    group = jackknife.group.reindex(units).to_numpy(dtype=float)
    ratio = np.ones(len(units))
    inside = np.isfinite(group) & np.isfinite(change) & (full > 0)
    if not inside.any():
        return ratio
    moved = replicates[None, :] + change[inside, None]
    rows = np.arange(int(inside.sum()))
    moved[rows, group[inside].astype(int)] = replicates[group[inside].astype(int)]
    spread = np.sqrt((k - 1) / k * ((moved - moved.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))
    ratio[inside] = np.maximum(spread / full, 1 / np.sqrt(k))
    return ratio


def _test_scale(estimand: str, estimate: float) -> float:
    """The estimate on the scale its test uses: the log for a hazard ratio."""
    return registry.by_name(estimand).test_scale(estimate)


def _holm_rows(p_values: np.ndarray) -> np.ndarray:
    """Holm's adjustment of each row: ``max_{j ≤ i} min(1, (m − j) p_(j))`` in sorted order."""
    m = p_values.shape[1]
    order = np.argsort(p_values, axis=1, kind="stable")
    ordered = np.take_along_axis(p_values, order, axis=1)
    adjusted = np.minimum(np.maximum.accumulate((m - np.arange(m)) * ordered, axis=1), 1.0)
    result = np.empty_like(adjusted)
    np.put_along_axis(result, order, adjusted, axis=1)
    return result


def _codes(unit_ids: pd.Series, units: pd.Index) -> np.ndarray:
    return units.get_indexer(unit_ids.astype("string"))


def _slope_without(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, codes: np.ndarray, n_units: int
) -> tuple[float, np.ndarray]:
    """A partialled one-regressor WLS slope, and it without each unit (residuals held)."""
    total = float(np.sum(w * x * x))
    slope = float(np.sum(w * x * y) / total)
    residual = y - slope * x
    own = np.bincount(codes, w * x * residual, n_units)
    own_information = np.bincount(codes, w * x * x, n_units)
    with np.errstate(divide="ignore", invalid="ignore"):
        return slope, slope - own / (total - own_information)


def _sd_ratio(rows: pd.DataFrame, units: pd.Index) -> np.ndarray:
    """``linkage.true_index_sd`` without each unit, over its value on all ``rows``
    (``linkage.true_sd_ratio_without``)."""
    return linkage.true_sd_ratio_without(
        rows["engagement_index"].to_numpy(dtype=float),
        rows["engagement_noise_var"].to_numpy(dtype=float),
        _codes(rows["unit_id"], units),
        len(units),
    )


#: Units × rows recomputed with the calibration re-estimated (``_loo_nps_on_engagement``,
#: ``_loo_reverse``): every unit of a study up to about two thousand units, beyond that the
#: units whose first-order influence is largest (at least fifty).
RECALIBRATION_BUDGET = 20_000_000


class _Partial:
    """Weighted residuals on a fixed design, in the ``√w``-scaled space (projection cached).

    With a ``linkage.Design`` the waves are absorbed by demeaning within wave and the dense
    columns, demeaned once, are projected out (Frisch–Waugh–Lovell): the same residuals as
    ``linkage.weighted_residuals``, without refitting the design for every call.
    """

    def __init__(self, design: np.ndarray | linkage.Design, weights: np.ndarray):
        self.root = np.sqrt(weights)
        self.design, self.weights = design, weights
        if isinstance(design, linkage.Design):
            design = design.demean(design.dense, weights)
        scaled = np.asarray(design, dtype=float) * self.root[:, None]
        if scaled.shape[1] == 0:
            self.basis = scaled
            return
        basis, triangle = np.linalg.qr(scaled)
        diagonal = np.abs(np.diag(triangle))
        if (diagonal <= diagonal.max(initial=0) * 1e-10).any():  # a level without rows
            u, singular, _ = np.linalg.svd(scaled, full_matrices=False)
            basis = u[:, singular > singular.max(initial=0) * 1e-10]
        self.basis = basis

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``√w``-scaled residuals of ``values`` (rows on axis ``-2`` or a vector)."""
        vector = values.ndim == 1
        stacked = np.moveaxis(values[:, None] if vector else values, -2, 0)
        shape = stacked.shape
        flat = stacked.reshape(shape[0], -1)
        if isinstance(self.design, linkage.Design):
            flat = self.design.demean(flat, self.weights)
        scaled = flat * self.root[:, None]
        scaled -= self.basis @ (self.basis.T @ scaled)
        residual = np.moveaxis(scaled.reshape(shape), 0, -2)
        return residual[:, 0] if vector else residual


def _screened(change: np.ndarray, present: np.ndarray, n_rows: int) -> np.ndarray:
    """The units to recompute: all present ones, or the most influential within the budget."""
    candidates = np.flatnonzero(present)
    limit = max(50, RECALIBRATION_BUDGET // max(n_rows, 1))
    if len(candidates) <= limit:
        return candidates
    size = np.nan_to_num(np.abs(change[candidates]), nan=np.inf)
    return candidates[np.argsort(-size, kind="stable")[:limit]]


def _unit_rows(codes: np.ndarray, chosen: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], chosen, side="left")
    stops = np.searchsorted(codes[order], chosen, side="right")
    return {u: order[a:b] for u, a, b in zip(chosen, starts, stops, strict=True)}


def _chunks(chosen: np.ndarray, n_rows: int):
    size = max(1, 2_000_000 // max(n_rows, 1))
    for start in range(0, len(chosen), size):
        yield chosen[start : start + size]


def _loo_nps_on_engagement(facing: pd.DataFrame, covariates, units: pd.Index) -> np.ndarray:
    """``linkage.nps_on_engagement`` without each unit.

    First order for every unit (``_slope_without``); then, for the units ``_screened``
    selects, the regression calibration of engagement is re-estimated without the unit
    (its signal variance from sums), every row recalibrated and the slope refitted on the
    remaining rows. Covariate and wave effects and the precision weights stay fixed.
    """
    rows = facing[(facing["n_responses"] > 0) & facing["engagement_index"].notna()]
    sd_true = linkage.true_index_sd(rows)
    design = linkage.absorbed_design(rows, covariates)
    weights = linkage.nps_precision_weights(rows, design)
    calibrated, _ = linkage.calibrate(
        rows["engagement_index"], rows["engagement_noise_var"], design, weights
    )
    x_design, w = design, weights.to_numpy(float)
    codes = _codes(rows["unit_id"], units)
    n_units = len(units)
    x = linkage.weighted_residuals(calibrated.to_numpy(float) / sd_true, x_design, w)[1]
    y = linkage.weighted_residuals(rows["nps"].to_numpy(float), x_design, w)[1]
    _, without = _slope_without(x, y, w, codes, n_units)
    # linkage.calibrate, step by step: λ_i = signal / (signal + v_i) on the residuals r, the
    # signal from the moments with divisor n − p (measures.shrinkage.residual_moments)
    noise = rows["engagement_noise_var"].to_numpy(float)
    residual = linkage.weighted_residuals(rows["engagement_index"].to_numpy(float), x_design, w)[1]
    weight_sum = w.sum()
    total, mean_noise = np.sum(w * residual**2) / weight_sum, np.sum(w * noise) / weight_sum
    n_columns = linkage.design_columns(x_design)
    own_rows = np.bincount(codes, minlength=n_units)
    own_weight = np.bincount(codes, w, n_units)
    own_total = np.bincount(codes, w * residual**2, n_units)
    own_noise = np.bincount(codes, w * noise, n_units)
    present = own_weight > 0
    chosen = _screened(without - np.sum(w * x * y) / np.sum(w * x * x), present, len(rows))
    partial = _Partial(x_design, w)
    target = partial(rows["nps"].to_numpy(float))
    members = _unit_rows(codes, chosen)
    for chunk in _chunks(chosen, len(rows)):
        left = weight_sum - own_weight[chunk]
        total_u = (total * weight_sum - own_total[chunk]) / left
        total_u = total_u * df_correction(len(rows) - own_rows[chunk], n_columns)
        noise_u = (mean_noise * weight_sum - own_noise[chunk]) / left
        signal = np.maximum(total_u - noise_u, CALIBRATION_FLOOR * total_u)  # calibration_signal
        column = signal[:, None] / (signal[:, None] + noise[None, :]) * residual[None, :]
        column = partial(column[:, :, None])[:, :, 0]  # (units, rows)
        for k, u in enumerate(chunk):
            mine = members[u]
            xx = column[k] @ column[k] - column[k, mine] @ column[k, mine]
            xy = column[k] @ target - column[k, mine] @ target[mine]
            without[u] = xy / xx * sd_true  # per SD; the SD's own change is applied below
    return without * _sd_ratio(rows, units)


def _loo_within(facing: pd.DataFrame, index_rows: pd.DataFrame, units: pd.Index) -> np.ndarray:
    """``linkage.nps_on_engagement_within`` without each unit: ``(A − a_u) / (D − d_u)``.

    Exact for the numerator; for the denominator, the unit's part ``d_u``
    (``linkage.within_unit_sums``) includes its first-order change of the reliability.
    """
    a, d, _ = linkage.within_unit_sums(facing)
    codes = _codes(pd.Series(a.index), units)
    a = np.bincount(codes, a.to_numpy(float), len(units))
    d = np.bincount(codes, d.to_numpy(float), len(units))
    sd_true = linkage.true_index_sd(index_rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (a.sum() - a) / (d.sum() - d)
    return slope * sd_true * _sd_ratio(index_rows, units)


def _fitted_estimate(fitting: Fitting | None, name: str) -> float | None:
    """The estimate ``fitting`` already holds for ``name``, if any (refitting costs seconds)."""
    row = None if fitting is None else fitting.rows.get(name)
    return None if row is None else float(row["estimate"])


def _loo_reverse(
    facing: pd.DataFrame,
    index_rows: pd.DataFrame,
    covariates,
    units: pd.Index,
    full: float | None = None,
) -> np.ndarray:
    """``linkage.engagement_on_prior_nps`` without each unit, calibration included.

    The reverse model's two predictors are calibrated jointly (``linkage.calibrate_jointly``)
    with a signal covariance ``Σ_T`` estimated from every row; where the signal is small next to
    the noise (the lag of half a small unit), one unit can move ``Σ_T`` and through it the
    estimate far more than through its own rows, and not linearly. So: the deletion formula for
    the final least squares plus the first-order change through ``Σ_T`` for every unit
    (the calibrated values move by ``(I − G_i) dΣ (Σ_T + V_i)⁻¹ r_i``, ``G_i = Σ_T (Σ_T +
    V_i)⁻¹``, and the coefficient by ``A⁻¹ (Dᵀ W e − Zᵀ W D β)`` for a change ``D`` of the
    regressors ``Z``), then, for the units ``_screened`` selects, ``Σ_T`` re-estimated without
    the unit, every row recalibrated and the coefficient refitted on the remaining rows.
    Covariate and wave effects stay fixed.

    The rows are stacked over every split of the staff, and each recalibrated refit costs a
    pass over them; so the units' effects are computed on the first ``INFLUENCE_SPLITS``
    splits (fewer, at least one, where that passes ``INFLUENCE_ROWS`` rows) and added to the
    estimate from all of them:
    ``θ_u = θ + (θ_u^(sub) − θ^(sub))``. A random subset of splits is an unbiased draw of
    the same estimator, and one unit's effect varies far less between splits than the
    estimate does. ``full`` is the estimate from all splits, when already fitted (stacking
    every split again costs seconds and, at twenty thousand units, 600 MiB).
    """
    eligible = int((facing["prior_n_responses"] > 0).sum())
    splits = int(np.clip(INFLUENCE_ROWS // max(2 * eligible, 1), 1, INFLUENCE_SPLITS))
    rows = linkage.stacked_half_rows(keep_splits(facing, splits), covariates)
    if rows.empty:
        return np.full(len(units), np.nan)
    if full is None:
        full = linkage.engagement_on_prior_nps(facing, covariates)["estimate"]
    sd_true = linkage.true_index_sd(index_rows)
    w = rows["outcome_n"].to_numpy(float)
    # waves absorbed: every column below is demeaned within wave (Frisch–Waugh–Lovell)
    x_design = linkage.absorbed_design(rows, covariates)
    observed = rows[["lag", "prior_nps"]].to_numpy(float)
    noise = np.column_stack(
        [
            rows["lag_noise"].to_numpy(float),
            linkage.nps_noise_var(
                rows["prior_promoters"], rows["prior_detractors"], rows["prior_n_responses"]
            ).to_numpy(float),
        ]
    )
    # linkage.calibrate_jointly, step by step (moments with divisor n − p)
    residual = linkage.weighted_residuals(observed, x_design, w)[1]
    fitted = observed - residual
    weight_sum = w.sum()
    n_columns = linkage.design_columns(x_design)
    cross = (residual * w[:, None]).T @ residual  # Σ w r rᵀ
    total = cross / weight_sum * df_correction(len(w), n_columns)
    mean_noise = (noise * w[:, None]).sum(axis=0) / weight_sum
    signal = calibration_signal(total, mean_noise)
    inverse = np.linalg.inv(signal[None, :, :] + noise[:, :, None] * np.eye(2)[None, :, :])
    gain = signal[None, :, :] @ inverse  # G_i = Σ_T (Σ_T + V_i)⁻¹
    calibrated = fitted + np.einsum("ijk,ik->ij", gain, residual)
    scale = np.array([1 / sd_true, 1 / 10])  # lag in SD of engagement, prior NPS per 10 points
    z = x_design.demean(
        np.column_stack([calibrated[:, 1] * scale[1], calibrated[:, 0] * scale[0], x_design.dense]),
        w,
    )
    y = x_design.demean(rows["outcome"].to_numpy(float) / sd_true, w)
    information = (z * w[:, None]).T @ z
    beta = np.linalg.lstsq(information, (z * w[:, None]).T @ y, rcond=None)[0]
    error = y - z @ beta
    # derivative of β[0] along each direction of a symmetric dΣ: (1,1), (2,2), (1,2)
    complement = np.eye(2)[None, :, :] - gain
    moved = inverse @ residual[:, :, None]  # (Σ_T + V_i)⁻¹ r_i
    gradient = []
    for direction in (np.diag([1.0, 0.0]), np.diag([0.0, 1.0]), np.array([[0, 1.0], [1.0, 0]])):
        change = (complement @ direction[None, :, :] @ moved)[:, :, 0]
        d = np.zeros_like(z)
        d[:, 0], d[:, 1] = change[:, 1] * scale[1], change[:, 0] * scale[0]
        d = x_design.demean(d, w)
        step = np.linalg.lstsq(
            information, (d * w[:, None]).T @ error - (z * w[:, None]).T @ (d @ beta), rcond=None
        )[0]
        gradient.append(step[0])
    codes = _codes(rows["unit_id"], units)
    n_units = len(units)
    own_weight = np.bincount(codes, w, n_units)
    own = np.stack(
        [
            np.stack(
                [np.bincount(codes, w * residual[:, i] * residual[:, j], n_units) for j in (0, 1)],
                axis=-1,
            )
            for i in (0, 1)
        ],
        axis=-2,
    )  # (units, 2, 2)
    own_noise = np.column_stack([np.bincount(codes, w * noise[:, i], n_units) for i in (0, 1)])
    scale_u = df_correction(len(w) - np.bincount(codes, minlength=n_units), n_columns)
    # without such a unit no residual degree of freedom is left: no estimate to compare
    scale_u[~np.isfinite(scale_u)] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        left = (weight_sum - own_weight)[:, None]
        total_u = (cross[None, :, :] - own) / left[:, :, None] * scale_u[:, None, None]
        noise_u = (mean_noise[None, :] * weight_sum - own_noise) / left
    change = total_u - total[None, :, :]
    change[:, 0, 0] -= noise_u[:, 0] - mean_noise[0]
    change[:, 1, 1] -= noise_u[:, 1] - mean_noise[1]
    through_calibration = (
        gradient[0] * change[:, 0, 0]
        + gradient[1] * change[:, 1, 1]
        + gradient[2] * change[:, 0, 1]
    )
    # the deletion formula for the final least squares, the other columns partialled out
    x = linkage.weighted_residuals(z[:, 0], z[:, 1:], w)[1]
    target = linkage.weighted_residuals(y, z[:, 1:], w)[1]
    slope, without = _slope_without(x, target, w, codes, n_units)
    without = without + through_calibration
    # recalibrated without the unit, for the units that matter most
    present = (own_weight > 0) & np.isfinite(scale_u)
    chosen = _screened(without - slope, present, len(rows))
    partial = _Partial(x_design, w)
    target = partial(y)
    members = _unit_rows(codes, chosen)
    for chunk in _chunks(chosen, len(rows)):
        signal_u = np.stack([calibration_signal(total_u[u], noise_u[u]) for u in chunk])
        moved_u = linkage.gain_times(signal_u, noise, residual)
        columns = partial(moved_u[:, :, ::-1] * scale[::-1][None, None, :])  # prior, lag
        for k, u in enumerate(chunk):
            mine = members[u]
            a, b = columns[k], columns[k, mine]
            coefficients = np.linalg.lstsq(
                a.T @ a - b.T @ b, a.T @ target - b.T @ target[mine], rcond=None
            )[0]
            without[u] = coefficients[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (without + (full - slope)) / _sd_ratio(index_rows, units)


def _loo_churn(churn: ChurnModel, index_rows: pd.DataFrame, units: pd.Index) -> np.ndarray:
    cells = churn.cells
    without = hazard.poisson_without_units(
        churn.design,
        churn.params,
        churn.wave_effects,
        cells["events"].to_numpy(float),
        cells["exposure"].to_numpy(float) / 365.25,
        _codes(cells["unit_id"], units),
        len(units),
        patterns=churn.patterns,
    )
    # engagement_sd is calibrated engagement over the SD of the true index of these rows
    return without * _sd_ratio(index_rows, units)


def _quartile_gap_without(
    eligible: pd.DataFrame, total: np.ndarray, n: np.ndarray, units: pd.Index
) -> np.ndarray:
    """Top- minus bottom-quartile pooled mean (``Σ total / Σ n``) without each unit, exactly.

    ``eligible`` are the unit-waves of ``linkage.quartile_unit_waves`` (in its order), ``total``
    and ``n`` each one's contribution. Without a unit, the others keep their order (ranks break
    ties first-come) and the quartiles are cut again on ``M`` ranks as ``pd.qcut`` cuts them:
    the bottom quartile is the first ``1 + ⌊(M − 1)/4⌋`` remaining unit-waves, the top one
    the last ``M − 1 − ⌊3(M − 1)/4⌋``. Prefix sums over the sorted unit-waves give each
    unit's gap in a few steps, whatever the number of units.
    """
    order = np.argsort(eligible["engagement_index"].to_numpy(float), kind="stable")
    total, n = total[order], n[order]
    codes = _codes(eligible["unit_id"], units)[order]
    size = len(order)
    prefix_total = np.concatenate([[0.0], np.cumsum(total)])
    prefix_n = np.concatenate([[0.0], np.cumsum(n)])
    result = np.full(len(units), np.nan)

    def gap(removed: np.ndarray) -> float:
        m = size - len(removed)
        if m < 8:
            return np.nan
        top, bottom = m - 1 - (3 * (m - 1)) // 4, 1 + (m - 1) // 4
        start = size - top
        while True:  # the last `top` remaining positions begin at `start`
            moved = size - top - int((removed >= start).sum())
            if moved == start:
                break
            start = moved
        stop = bottom
        while True:  # the first `bottom` remaining positions end before `stop`
            moved = bottom + int((removed < stop).sum())
            if moved == stop:
                break
            stop = moved
        upper, lower = removed[removed >= start], removed[removed < stop]
        top_total = prefix_total[-1] - prefix_total[start] - total[upper].sum()
        top_n = prefix_n[-1] - prefix_n[start] - n[upper].sum()
        bottom_total = prefix_total[stop] - total[lower].sum()
        bottom_n = prefix_n[stop] - n[lower].sum()
        if top_n <= 0 or bottom_n <= 0:
            return np.nan
        return top_total / top_n - bottom_total / bottom_n

    result[:] = gap(np.zeros(0, dtype=int))
    positions = np.argsort(codes, kind="stable")
    for unit, members in zip(*_groups_of(codes[positions], positions), strict=True):
        if unit >= 0:
            result[unit] = gap(np.sort(members))
    return result


def _groups_of(codes: np.ndarray, positions: np.ndarray):
    """Split ``positions`` (sorted by ``codes``) into one array per code."""
    if not len(codes):
        return [], []
    breaks = np.flatnonzero(np.diff(codes)) + 1
    return codes[np.r_[0, breaks]], np.split(positions, breaks)


def _loo_nps_quartile_gap(panel: pd.DataFrame, min_group_size: int, units: pd.Index):
    try:
        eligible = linkage.quartile_unit_waves(panel, min_group_size)
    except EstimationError:
        return np.full(len(units), np.nan)
    promoters, detractors = eligible["promoters"], eligible["detractors"]
    total = (100.0 * (promoters - detractors)).to_numpy(float)
    n = (promoters + eligible["passives"] + detractors).to_numpy(float)
    return _quartile_gap_without(eligible, total, n, units)


def _loo_retention_gap(
    dataset: Dataset, panel: pd.DataFrame, min_group_size: int, as_of, units: pd.Index
):
    try:
        eligible = linkage.quartile_unit_waves(panel, min_group_size)
    except EstimationError:
        return np.full(len(units), np.nan)
    retained = churn_data.retention_at_waves(dataset, eligible["wave"], 365, as_of)
    if retained.empty:
        return np.full(len(units), np.nan)
    merged = eligible[["unit_id", "wave"]].merge(retained, on=["unit_id", "wave"], how="left")
    at_risk = merged["at_risk"].fillna(0).to_numpy(float)
    kept = merged["retained"].fillna(0).to_numpy(float)
    return _quartile_gap_without(eligible, 100.0 * kept, at_risk, units)


def _loo_mediated_share(mediation: Mediation, units: pd.Index):
    cells = mediation.cells
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    codes = _codes(cells["unit_id"], units)
    effects = [
        hazard.poisson_without_units(
            m.design,
            m.params,
            m.group_effects,
            events,
            exposure,
            codes,
            len(units),
            patterns=m.patterns,
        )
        for m in mediation.models
    ]
    total, direct = effects
    with np.errstate(divide="ignore", invalid="ignore"):
        return (total - direct) / total
