"""The internal-service chain as estimands: service received → engagement → customer NPS.

The service-profit chain (Heskett, Jones, Loveman, Sasser & Schlesinger, 1994) starts with
*internal service quality*: staff who get good service from the teams they depend on (IT, HR,
logistics) are more engaged, and engaged staff serve customers better. With the contract's
``internal_service`` table (v2) the kit measures the first link. This module estimates, on the
customer-facing unit-waves of the panel joined with the service each unit receives
(``analysis.measures.internal_service.service_received``, leave-out):

* ``engagement_on_internal_service`` (``a``): engagement index points per SD of internal
  service received in the same wave;
* ``nps_on_internal_service`` (``c``): customer NPS in the quarter after the wave per SD of
  service received, the *total* association (through engagement and any other way);
* ``nps_via_engagement_share``: ``a·b / c``, the share of ``c`` that runs through engagement
  (``b``: NPS per engagement index point, service held fixed), with a Fieller interval;
* ``nps_on_internal_service_within``: ``c`` from change within units over time only (unit and
  wave fixed effects).

Identification, in words
------------------------
*Common-rater bias.* A person in a good mood rates both their engagement and the teams that
serve them highly, so a unit's own ratings of the service it gets would correlate with its
engagement even if service did nothing. The received index leaves the receiving unit's own
raters out: a provider's score for unit X comes only from other units' staff, whose errors are
independent of X's engagement answers. That is what makes ``a`` interpretable at all.

*Confounding.* The between-unit estimands compare units that receive better service with units
that receive worse. Anything that makes a unit both get better internal service and have
happier customers (a strong manager who picks and chases good providers, a prosperous region,
a flagship branch served first) biases ``c`` and ``a`` upward; region and wave effects are
adjusted for, nothing else. They are associations. The within-unit version compares a unit
with itself in quarters when its providers served it better or worse, so every stable trait of
the unit (its manager, its location, which providers it uses) cancels; it is still biased by
anything that changes over time with the service received (a reorganisation that moves both).

*Measurement error.* A received index built from few raters is noisy; its sampling variance is
known (``received_noise_var``), so it is replaced by its regression-calibrated value (Carroll,
Ruppert, Stefanski & Crainiceanu, 2006, ch. 4; ``analysis.models.linkage.calibrate``), and "one
SD" is the SD of the *true* received index across the unit-waves used (observed variance less
the mean noise variance), as the kit does for engagement (``linkage.true_index_sd``).

*Inference.* Every SE is a delete-a-group jackknife over units (``linkage.jackknife_groups``,
``linkage.jackknife_se``): calibration, weights and the SD are re-estimated in every
replicate, so their uncertainty is in the SE; t with ``K − 1`` df.

*Calibration* (``analysis.studies.calibration.chain_conditions``, reduced: 120 units × 4
waves, 40 replicates per condition, 20 confounded, 12 per power cell; Wilson 95% bands in
brackets). With no effect at all, the four tests rejected in 2.5% [0.4–12.9], 5.0%
[1.4–16.5], 0% [0–8.8] (the share) and 2.5% [0.4–12.9] (within) of studies; with the direct
path only, engagement's link and the share rejected in 2.5% and 0%. Under the default chain
the intervals covered the truth in 97.5%, 95%, 95% and 92.5% of studies, the model SE over
the empirical SD was 1.03, 1.01 and 1.06 (the share's delta SE is no guide when the total is
near zero: its Fieller interval is then unbounded) and the power was 70% (engagement), 17.5%
(total NPS), 10% (share) and 5% (within): at this size only the first link is reliably seen.
With a confounding unit trait the between-unit NPS slope averaged 5.1 against a true 2.4
(coverage 85%), the within-unit one 3.0 (coverage 95%).

References
----------
Heskett, J. L., Jones, T. O., Loveman, G. W., Sasser, W. E., & Schlesinger, L. A. (1994).
Putting the service-profit chain to work. *Harvard Business Review* 72(2), 164–174.

Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement Error
in Nonlinear Models*, 2nd ed. Chapman & Hall/CRC.

Fieller, E. C. (1954). Some problems in interval estimation. *JRSS B* 16(2), 175–185.

Kott, P. S. (2001). The delete-a-group jackknife. *Journal of Official Statistics* 17(4),
521–526.

MacKinnon, D. P., Lockwood, C. M., Hoffman, J. M., West, S. G. & Sheets, V. (2002). A
comparison of methods to test mediation and other intervening variable effects.
*Psychological Methods* 7(1), 83–104.

Baron, R. M. & Kenny, D. A. (1986). The moderator–mediator variable distinction.
*Journal of Personality and Social Psychology* 51(6), 1173–1182.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.measures.internal_service import rater_scores, service_received
from analysis.measures.shrinkage import calibration_signal
from analysis.models import linkage
from analysis.models.tidy import not_estimable, tidy_row

#: The name of the shared piece (``Fitting.piece``).
PIECE = "service_panel"
TERM = "internal_service_sd"
SHARE_TERM = "share_through_engagement"
ESTIMANDS = (
    "engagement_on_internal_service",
    "nps_on_internal_service",
    "nps_via_engagement_share",
    "nps_on_internal_service_within",
)


# --------------------------------------------------------------------------------------------
# The shared piece


#: Fewest of a unit's own staff whose ratings weight its providers for a unit-wave to enter: the
#: ratio estimator's variance (``weighting_noise_var``) needs two, and with one or two it
#: understates the noise (checked on the generator: 3 and more hold).
MIN_OWN_RATERS = 3


def weighting_noise_var(internal_service: pd.DataFrame) -> pd.DataFrame:
    """The variance a received index owes to which of its own staff rated which provider.

    ``service_received`` weights provider ``P``'s leave-out index ``L_P`` by ``n_XP``, how many
    of unit ``X``'s staff rated it. Those counts are themselves a sample: with few staff, which
    providers they happened to rate moves the index even if every ``L_P`` were exact.
    ``service_received``'s ``received_noise_var`` holds the weights fixed; this is the other
    part. Writing rater ``i`` of ``X`` as ``x_i`` (entering providers they rated) and
    ``y_i = Σ_P r_iP L_P``, the index is the ratio ``R = Σ y_i / Σ x_i`` over ``X``'s raters, and
    its linearisation variance (Cochran, 1977, *Sampling Techniques*, 3rd ed., 6.3)::

        v_w = Σ_i (y_i − R x_i)² / (n (n − 1) x̄²)

    with the ``L_P`` held fixed (their own noise is ``received_noise_var``; the two parts are
    nearly independent, as the generator confirms).

    Returns
    -------
    DataFrame
        ``unit_id`` (string), ``wave``, ``weighting_noise_var`` (NaN with one rater).
    """
    rated = rater_scores(internal_service)
    keys = ["provider_unit_id", "wave"]
    providers = rated.groupby(keys).agg(n_p=("score", "size"), s_p=("score", "sum"))
    cells = (
        rated.groupby(["rater_unit_id", *keys])
        .agg(n=("score", "size"), s=("score", "sum"))
        .reset_index()
        .join(providers, on=keys)
    )
    cells = cells[cells["n_p"] > cells["n"]]
    cells["leave_out"] = (cells["s_p"] - cells["s"]) / (cells["n_p"] - cells["n"])
    by_unit = cells.groupby(["rater_unit_id", "wave"])
    cells["received"] = (cells["n"] * cells["leave_out"]).groupby(
        [cells["rater_unit_id"], cells["wave"]]
    ).transform("sum") / by_unit["n"].transform("sum")
    ratings = rated.merge(
        cells[["rater_unit_id", *keys, "leave_out", "received"]],
        on=["rater_unit_id", *keys],
        how="inner",
    )
    raters = (
        ratings.groupby(["rater_unit_id", "wave", "respondent_id"], observed=True)
        .agg(x=("leave_out", "size"), y=("leave_out", "sum"), received=("received", "first"))
        .reset_index()
    )
    raters["d2"] = (raters["y"] - raters["received"] * raters["x"]) ** 2
    units = raters.groupby(["rater_unit_id", "wave"], observed=True).agg(
        n=("x", "size"), x_bar=("x", "mean"), ss=("d2", "sum")
    )
    n = units["n"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(n > 1, units["ss"] / (n * (n - 1) * units["x_bar"] ** 2), np.nan)
    table = units.reset_index()
    return pd.DataFrame(
        {
            "unit_id": table["rater_unit_id"].astype("string").to_numpy(),
            "wave": pd.to_datetime(table["wave"]).to_numpy(),
            "weighting_noise_var": variance,
        }
    )


def service_panel(panel: pd.DataFrame, internal_service: pd.DataFrame, min_group_size: int):
    """Customer-facing unit-waves with engagement, joined with the service they received.

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel (``analysis.measures.panel.unit_wave_panel``).
    internal_service : DataFrame
        The contract's ``internal_service`` table.
    min_group_size : int
        The run's threshold (``service_received`` uses it only to mark rows not to display).

    Returns
    -------
    DataFrame
        The panel's customer-facing rows with an engagement index and a received service that
        is fully measured, with ``service_received``, ``received_noise_var`` (rater noise,
        weights held), ``weighting_noise_var`` and their sum ``service_noise_var`` (the noise
        the models correct for), ``n_raters_own`` and ``n_raters_other`` added, sorted by unit
        and wave. A model input, never displayed (``service_received``'s Notes).

    Notes
    -----
    A unit-wave enters when (1) every provider its staff rated was also rated by other units
    (``n_providers_unmeasured == 0``): a provider only the unit itself rates is dropped from
    its index by the leave-out, so the index would then measure only part of the service
    received, an error that persists over waves and that no noise variance describes (on the
    generator it was the largest error of all); and (2) at least ``MIN_OWN_RATERS`` of its
    own staff rated, so that ``weighting_noise_var`` can be estimated.
    """
    rows = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    received = service_received(internal_service, min_group_size)
    received = received[
        received["service_received"].notna()
        & (received["n_providers_unmeasured"] == 0)
        & (received["n_raters_own"] >= MIN_OWN_RATERS)
    ]
    keys = pd.DataFrame(
        {
            "_unit": received["unit_id"].astype("string").to_numpy(),
            "_wave": pd.to_datetime(received["wave"]).to_numpy(),
            "service_received": received["service_received"].astype(float).to_numpy(),
            "received_noise_var": received["received_noise_var"].astype(float).to_numpy(),
            "n_raters_own": received["n_raters_own"].astype("int64").to_numpy(),
            "n_raters_other": received["n_raters_other"].astype("int64").to_numpy(),
        }
    )
    weighting = weighting_noise_var(internal_service).rename(
        columns={"unit_id": "_unit", "wave": "_wave"}
    )
    keys = keys.merge(weighting, on=["_unit", "_wave"], how="left")
    keys["service_noise_var"] = keys["received_noise_var"] + keys["weighting_noise_var"]
    keys = keys[np.isfinite(keys["service_noise_var"]) & (keys["service_noise_var"] > 0)]
    left = rows.assign(
        _unit=rows["unit_id"].astype("string").to_numpy(),
        _wave=pd.to_datetime(rows["wave"]).to_numpy(),
    )
    joined = left.merge(keys, on=["_unit", "_wave"], how="inner").drop(columns=["_unit", "_wave"])
    return joined.sort_values(["unit_id", "wave"], kind="stable").reset_index(drop=True)


def _piece(fitting) -> pd.DataFrame:
    return service_panel(
        fitting.panel, fitting.dataset.internal_service, fitting.parameters.min_group_size
    )


def rows_of(fitting) -> pd.DataFrame:
    """The shared service panel of ``fitting`` (built once, ``Fitting.piece``)."""
    return fitting.piece(PIECE, _piece)


# --------------------------------------------------------------------------------------------
# Pieces of every fit


def engagement_weights(rows: pd.DataFrame, design: linkage.Design) -> np.ndarray:
    """Inverse-variance weights of the unit engagement index as an outcome: ``1/(τ² + v_i)``
    with ``v_i`` its ``engagement_noise_var`` (``linkage.precision_weights``)."""
    return linkage.precision_weights(
        rows["engagement_index"].to_numpy(float),
        rows["engagement_noise_var"].to_numpy(float),
        design,
    )


def _service_sd(rows: pd.DataFrame) -> float:
    """SD of the true received index on ``rows`` (``linkage.true_sd``)."""
    noise = rows["service_noise_var"].to_numpy(float)
    return linkage.true_sd(rows["service_received"].to_numpy(float), float(np.mean(noise)))


def _calibrated_service(rows: pd.DataFrame, design, weights: np.ndarray) -> np.ndarray:
    """The received index after regression calibration, per SD of the true received index."""
    calibrated, _ = linkage.calibrate(
        rows["service_received"].astype(float),
        rows["service_noise_var"].astype(float),
        design,
        pd.Series(weights, index=rows.index),
    )
    sd = _service_sd(rows)
    return calibrated.to_numpy(float) / sd


def _nps_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["n_responses"] > 0]


def _engagement_slope(rows: pd.DataFrame, covariates: Sequence[str]) -> float:
    """``a``: engagement index points per SD of true service received (see the estimand)."""
    design = linkage.absorbed_design(rows, covariates)
    w = engagement_weights(rows, design)
    x = _calibrated_service(rows, design, w)
    coef, _, _ = design.fit(x, rows["engagement_index"].to_numpy(float), w)
    return float(coef[0])


def _nps_slope(rows: pd.DataFrame, covariates: Sequence[str]) -> float:
    """``c``: NPS points per SD of true service received, on the rows with customer answers."""
    rows = _nps_rows(rows)
    design = linkage.absorbed_design(rows, covariates)
    w = linkage.nps_precision_weights(rows, design).to_numpy(float)
    x = _calibrated_service(rows, design, w)
    coef, _, _ = design.fit(x, rows["nps"].to_numpy(float), w)
    return float(coef[0])


def _paths(rows: pd.DataFrame, covariates: Sequence[str]) -> tuple[float, float]:
    """``(a·b, c)`` on the rows with customer answers, the share's numerator and denominator.

    ``a`` is engagement on calibrated service; ``b`` the NPS slope on engagement with service
    held fixed, both calibrated jointly (their errors are independent: different people); ``c``
    the total slope. All with the NPS precision weights, so the three fits share rows and
    weights, and without measurement error ``c = c' + a·b`` exactly (the omitted-variable
    identity of least squares, ``c'`` the direct slope).
    """
    rows = _nps_rows(rows)
    design = linkage.absorbed_design(rows, covariates)
    w = linkage.nps_precision_weights(rows, design).to_numpy(float)
    weights = pd.Series(w, index=rows.index)
    service = _calibrated_service(rows, design, w)
    a, _, _ = design.fit(service, rows["engagement_index"].to_numpy(float), w)
    c, _, _ = design.fit(service, rows["nps"].to_numpy(float), w)
    values = rows[["engagement_index", "service_received"]].astype(float)
    noise = pd.DataFrame(
        {
            "engagement_index": rows["engagement_noise_var"].astype(float),
            "service_received": rows["service_noise_var"].astype(float),
        }
    )
    joint = linkage.calibrate_jointly(values, noise, design, weights)
    sd = _service_sd(rows)
    predictors = np.column_stack(
        [joint["engagement_index"].to_numpy(float), joint["service_received"].to_numpy(float) / sd]
    )
    coef, _, _ = design.fit(predictors, rows["nps"].to_numpy(float), w)
    return float(a[0] * coef[0]), float(c[0])


def _within_sums(rows: pd.DataFrame) -> tuple[pd.Series, pd.Series, int, float]:
    """Per-unit numerator and denominator of the within slope, rows used, and the SD.

    See ``nps_on_internal_service_within``: returns ``a_u = Σ_t w x̂ Ñ`` and
    ``d_u = Σ_t w x̂²`` by unit, the number of unit-waves and the SD of the true received
    index on the between rows (``_service_sd``).
    """
    sd = _service_sd(rows)
    used = _nps_rows(rows)
    used = used[used.groupby("unit_id")["wave"].transform("size") > 1]
    if used.empty:
        empty = pd.Series(dtype=float)
        return empty, empty.copy(), 0, sd
    w = linkage.nps_precision_weights(
        used, linkage.absorbed_design(used, ()), within_unit=True
    ).to_numpy(float)
    unit_codes, units = pd.factorize(used["unit_id"].astype("string"))
    wave_codes = pd.factorize(used["wave"])[0]
    cleaned = linkage.two_way_residuals(
        used[["nps", "service_received"]].to_numpy(float), unit_codes, wave_codes, w
    )
    waves_of_unit = np.bincount(unit_codes)[unit_codes].astype(float)
    noise = used["service_noise_var"].to_numpy(float) * (1 - 1 / waves_of_unit)
    total = np.sum(w * cleaned[:, 1] ** 2) / w.sum()
    n_columns = len(units) + int(wave_codes.max()) + 1 - 1
    total *= len(used) / max(len(used) - n_columns, 1)
    mean_noise = float(np.sum(w * noise) / w.sum())
    signal = calibration_signal(total, mean_noise)
    shrunk = signal / (signal + noise) * cleaned[:, 1]
    x = linkage.two_way_residuals(shrunk, unit_codes, wave_codes, w)
    a = np.bincount(unit_codes, w * x * cleaned[:, 0], len(units))
    d = np.bincount(unit_codes, w * x * x, len(units))
    return pd.Series(a, index=units), pd.Series(d, index=units), len(used), sd


def _within_slope(rows: pd.DataFrame) -> float:
    a, d, _, sd = _within_sums(rows)
    return float(a.sum() / d.sum() * sd) if len(a) and d.sum() > 0 else float("nan")


def _jackknife(rows: pd.DataFrame, statistic) -> tuple[np.ndarray, np.ndarray, int]:
    """``statistic`` without each delete-a-group jackknife group of units.

    Returns the replicates (``K`` rows, one column per value ``statistic`` returns), each
    row's group and ``K`` (``linkage.jackknife_groups``).
    """
    replicates, group, k = linkage.delete_group_jackknife(
        rows, lambda r: np.atleast_1d(statistic(r))
    )
    return replicates, group, k


def _unit_group(rows: pd.DataFrame, group: np.ndarray) -> pd.Series:
    frame = pd.DataFrame({"unit_id": rows["unit_id"].astype("string").to_numpy(), "g": group})
    return frame.drop_duplicates("unit_id").set_index("unit_id")["g"]


def _remember(fitting, name: str, replicates: np.ndarray, rows: pd.DataFrame, group) -> None:
    """Keep an estimand's jackknife for the influence check (``estimate.one_unit_fragility``)."""
    fitting.jackknives[name] = linkage.Jackknife(
        np.asarray(replicates, float), _unit_group(rows, group)
    )


def _too_few(rows: pd.DataFrame, name: str, term: str) -> dict | None:
    units = rows["unit_id"].nunique()
    if units < 3:
        return not_estimable(
            name,
            term,
            f"{units} customer-facing units have an engagement index and internal service "
            "measured by other units' raters (need 3)",
        )
    if rows["service_received"].nunique() < 2:
        return not_estimable(name, term, "the internal service received does not vary")
    return None


def _covariates_named(rows: pd.DataFrame, covariates: Sequence[str]) -> str:
    return "".join(f" + {c}" for c in covariates if c in rows.columns)


# --------------------------------------------------------------------------------------------
# The estimands


def engagement_on_internal_service(fitting) -> dict:
    """Engagement index points per SD of true internal service received in the same wave.

    Model (customer-facing unit-waves with an engagement index and a measured received
    service)::

        I[u,t] = a · R̂[u,t] / SD_R + wave[t] + region[u] + ε

    ``I`` the unit's engagement index (0–100), ``R`` the internal service it received in wave
    ``t`` computed **leaving out its own raters** (contract v2; ``service_received``), ``R̂``
    its regression-calibrated value given the design, with the pooled rater variance over the
    number of other raters as its noise (``linkage.calibrate``; Carroll et al., 2006, ch. 4),
    and ``SD_R`` the SD of the true received index across these unit-waves (``linkage.true_sd``).
    Weighted least squares with weights ``1/(τ² + v_I)`` (``engagement_weights``); the outcome's
    own sampling noise needs no correction (it adds variance, not bias), and it is independent
    of ``R``'s noise because different people answered.

    Identification: the leave-out removes the common-rater path (one person's mood in both
    numbers). What remains is an association between units: unmeasured unit traits that raise
    both the service a unit gets and its engagement (a manager who picks good providers)
    bias ``a``. Assumptions: linearity, the calibration's normal-theory best linear predictor,
    rater errors independent across raters and of the outcome's.

    SE: delete-a-group jackknife over units, everything re-estimated in each replicate (Kott,
    2001); t with ``K − 1`` df.

    References
    ----------
    Heskett et al. (1994); Carroll et al. (2006), ch. 4; Kott (2001) (see the module).
    """
    name = "engagement_on_internal_service"
    rows = rows_of(fitting)
    problem = _too_few(rows, name, TERM)
    if problem:
        return problem
    return _between_unit_row(
        fitting,
        name,
        rows,
        rows,
        _engagement_slope,
        ", internal service received from other units' raters (leave-out), calibrated, per "
        "SD of the true received index; SE by delete-a-group jackknife over units",
    )


def nps_on_internal_service(fitting) -> dict:
    """Customer NPS in the quarter after a wave per SD of internal service received (total).

    Model (customer-facing unit-waves with customer answers in the outcome window)::

        NPS[u,t] = c · R̂[u,t] / SD_R + wave[t] + region[u] + ε

    as ``engagement_on_internal_service`` with NPS as the outcome and the NPS precision weights
    (``linkage.nps_precision_weights``). Engagement is *not* held fixed: ``c`` is the total
    association, through engagement and any other path (say, a quick IT fix that customers
    feel directly).

    Identification: the outcome comes from customers, so the common-rater path is absent even
    without the leave-out; the lag (service at wave ``t``, NPS in the quarter after) orders
    the two in time. Unit traits that raise both (location, a strong manager, a flagship
    branch served first) bias ``c``: it is an association. ``nps_on_internal_service_within``
    removes every stable trait. Assumptions and SE as for ``engagement_on_internal_service``.

    References
    ----------
    Heskett et al. (1994); Carroll et al. (2006), ch. 4; Kott (2001) (see the module).
    """
    name = "nps_on_internal_service"
    rows = rows_of(fitting)
    problem = _too_few(_nps_rows(rows), name, TERM)
    if problem:
        return problem
    return _between_unit_row(
        fitting,
        name,
        rows,
        _nps_rows(rows),
        _nps_slope,
        ", NPS in the quarter after the wave on internal service received (leave-out, "
        "calibrated, per SD of the true index), total effect; SE by delete-a-group jackknife "
        "over units",
    )


def _between_unit_row(fitting, name: str, rows, used, slope_of, described: str) -> dict:
    """A between-unit link's tidy row: ``slope_of(rows, covariates)``, its delete-a-group
    jackknife over units (kept for the influence check), counted on the rows ``used``;
    ``described`` finishes the method's text."""
    covariates = fitting.parameters.covariates
    slope = slope_of(rows, covariates)
    replicates, group, k = _jackknife(rows, lambda r: slope_of(r, covariates))
    _remember(fitting, name, replicates[:, 0], rows, group)
    return tidy_row(
        name,
        TERM,
        slope,
        linkage.jackknife_se(replicates[:, 0]),
        df=k - 1,
        confidence=fitting.parameters.confidence,
        n_obs=len(used),
        n_units=int(used["unit_id"].nunique()),
        method="WLS (inverse-variance weights), wave FE"
        + _covariates_named(rows, covariates)
        + described,
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )


def fieller_interval(
    numerator: float, denominator: float, covariance: np.ndarray, quantile: float
) -> tuple[float, float]:
    """Fieller's interval for the ratio ``θ = N / D`` of two jointly normal estimates.

    The set of ``θ`` with ``(N − θD)² ≤ q² (v_NN − 2θ v_ND + θ² v_DD)``, the roots of::

        θ² (D² − q² v_DD) − 2θ (N D − q² v_ND) + (N² − q² v_NN) = 0

    (Fieller, 1954). Bounded only when ``D`` itself is significant (``D² > q² v_DD``);
    otherwise the set is the whole line or two half-lines and ``(−inf, inf)`` is returned: the
    data cannot bound the share of an effect they cannot tell from zero.

    Parameters
    ----------
    numerator, denominator : float
        ``N`` and ``D``.
    covariance : ndarray
        2 × 2 covariance of ``(N, D)``.
    quantile : float
        ``q``, the two-sided reference quantile (t with the jackknife's df).

    Returns
    -------
    tuple of float
    """
    v_nn, v_nd, v_dd = covariance[0, 0], covariance[0, 1], covariance[1, 1]
    q2 = quantile**2
    a = denominator**2 - q2 * v_dd
    b = numerator * denominator - q2 * v_nd
    c = numerator**2 - q2 * v_nn
    discriminant = b * b - a * c
    if a <= 0 or discriminant < 0:
        return float("-inf"), float("inf")
    root = np.sqrt(discriminant)
    return float((b - root) / a), float((b + root) / a)


def _jackknife_covariance(replicates: np.ndarray) -> np.ndarray:
    """``(K − 1)/K Σ_k (θ_k − θ̄)(θ_k − θ̄)ᵀ``: the jackknife covariance of several estimates."""
    k = len(replicates)
    centred = replicates - replicates.mean(axis=0)
    return (k - 1) / k * centred.T @ centred


def nps_via_engagement_share(fitting) -> dict:
    """Share of the service → NPS association that runs through engagement: ``a·b / c``.

    On the unit-waves with customer answers, with the NPS precision weights throughout::

        I   = a  · R̂/SD_R + W + ε₁                      (engagement on service)
        NPS = b  · Î + c' · R̂/SD_R + W + ε₂             (Î, R̂ calibrated jointly)
        NPS = c  · R̂/SD_R + W + ε₃                      (total, nps_on_internal_service)
        share = a·b / c

    (product of coefficients, Baron & Kenny, 1986; MacKinnon et al., 2002). ``W`` stands for
    the wave and region effects. Without measurement error, on the same rows and weights,
    ``c = c' + a·b`` (omitted-variable identity), so the share is the indirect part of the
    total; with calibration the identity holds approximately.

    Inference: ``N = a·b`` and ``D = c`` are refitted together without each jackknife group of
    units (``_paths``), giving their joint covariance ``V`` (``_jackknife_covariance``). The
    interval is Fieller's for ``N/D`` (``fieller_interval``, t with ``K − 1`` df), unbounded
    when ``c`` is not significant. ``std_error`` is the delta-method SE
    ``√(v_NN − 2θ v_ND + θ² v_DD) / |D|``; the p-value tests ``share = 0``, which for ``D ≠ 0``
    is ``a·b = 0``: ``t = N / √v_NN`` (the indirect effect's jackknife test), so, when ``c`` is
    significant and the interval bounded, it excludes 0 exactly when the test rejects at the
    same level.

    Identification: a causal share needs no unmeasured confounding of service → engagement,
    engagement → NPS and service → NPS (sequential ignorability); unit traits that move
    engagement and NPS together bias ``b`` and so the share. Read it as a decomposition of an
    association. Assumptions as for the other chain estimands.

    References
    ----------
    Fieller (1954); Baron & Kenny (1986); MacKinnon et al. (2002); Kott (2001) (see the module).
    """
    name = "nps_via_engagement_share"
    rows = rows_of(fitting)
    used = _nps_rows(rows)
    problem = _too_few(used, name, SHARE_TERM)
    if problem:
        return problem
    covariates = fitting.parameters.covariates
    indirect, total = _paths(rows, covariates)
    replicates, group, k = _jackknife(used, lambda r: np.array(_paths(r, covariates)))
    covariance = _jackknife_covariance(replicates)
    share = indirect / total if total != 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        _remember(fitting, name, replicates[:, 0] / replicates[:, 1], used, group)
    quantile = float(stats.t.ppf(0.5 + fitting.parameters.confidence / 2, k - 1))
    low, high = fieller_interval(indirect, total, covariance, quantile)
    gradient = np.array([1.0, -share]) / total if total != 0 else np.array([np.nan, np.nan])
    std_error = float(np.sqrt(max(gradient @ covariance @ gradient, 0.0)))
    v_nn = covariance[0, 0]
    p_value = float(2 * stats.t.sf(abs(indirect) / np.sqrt(v_nn), k - 1)) if v_nn > 0 else np.nan
    return tidy_row(
        name,
        SHARE_TERM,
        share,
        std_error,
        conf_low=low,
        conf_high=high,
        p_value=p_value,
        n_obs=len(used),
        n_units=int(used["unit_id"].nunique()),
        method="product of coefficients a·b / c (engagement on service, NPS on engagement and "
        "service calibrated jointly, total NPS on service), wave FE"
        + _covariates_named(rows, covariates)
        + "; Fieller interval and delta SE from a joint delete-a-group jackknife over units; "
        "p-value of a·b",
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )


def nps_on_internal_service_within(fitting) -> dict:
    """NPS per SD of internal service received, from change within units over time only.

    With tildes for weighted two-way demeaning (unit and wave fixed effects;
    ``linkage.two_way_residuals``) on the unit-waves with customer answers of units with two or
    more such waves::

        x̂  = λ_i R̃,   λ_i = σ²_w / (σ²_w + v_i (1 − 1/T_u))    (then demeaned two ways again)
        c_w = Σ w x̂ Ñ / Σ w x̂²  × SD_R

    ``σ²_w`` is the within-unit signal variance of the received index (residual variance with
    divisor ``n − p``, ``p`` the unit and wave effects, less the mean within noise;
    ``calibration_signal``), ``v_i (1 − 1/T_u)`` the noise variance left after removing a
    unit's mean over its ``T_u`` waves, so this is regression calibration of the within
    variation (Carroll et al., 2006, ch. 4). Weights are ``linkage.nps_precision_weights``
    for change within units. ``SD_R`` is the between-unit SD of the true received index
    (``linkage.true_sd``), so ``c_w`` is on the same scale as ``nps_on_internal_service``.

    What it shows: whether a unit's customers were happier in the quarters after its providers
    served it better than they usually do. Every stable difference between units (manager,
    location, which providers it depends on) cancels, so the confounding that can bias the
    between-unit estimate cannot bias this one; what could is a change that moves both at once
    (a reorganisation, a new system rolled out to providers and branches together). It is the
    closest this observational design gets to a causal reading, not proof of one.

    Assumptions: rater errors independent across waves. The same people tend to rate a
    provider every quarter, and a rater's persistent leniency then cancels within the unit, so
    ``v_i (1 − 1/T_u)`` somewhat overstates the within noise and the correction somewhat
    overshoots (the calibration study measures by how much). SE: delete-a-group jackknife over
    units (everything re-estimated), t with ``K − 1`` df.

    References
    ----------
    Carroll et al. (2006), ch. 4; Kott (2001); Heskett et al. (1994) (see the module).
    """
    name = "nps_on_internal_service_within"
    rows = rows_of(fitting)
    a, d, n_obs, _ = _within_sums(rows)
    if len(a) < 3 or d.sum() <= 0:
        return not_estimable(
            name,
            TERM,
            f"{len(a)} customer-facing units have internal service measured by other units' "
            "raters and customer answers in two or more waves (need 3)",
        )
    slope = _within_slope(rows)
    used = _nps_rows(rows)
    used = used[used.groupby("unit_id")["wave"].transform("size") > 1]
    replicates, group, k = _jackknife(rows, _within_slope)
    _remember(fitting, name, replicates[:, 0], rows, group)
    return tidy_row(
        name,
        TERM,
        slope,
        linkage.jackknife_se(replicates[:, 0]),
        df=k - 1,
        confidence=fitting.parameters.confidence,
        n_obs=n_obs,
        n_units=int(used["unit_id"].nunique()),
        method="unit and wave fixed effects (within), internal service received (leave-out) "
        "calibrated for its within-unit noise, inverse-variance weights, per SD of the true "
        "received index; SE by delete-a-group jackknife over units",
        se_method="jackknife",
        jackknife_groups=k,
        correction="regression_calibration",
    )


# --------------------------------------------------------------------------------------------
# Leave one unit out (the influence check)


def _codes(unit_ids: pd.Series, units: pd.Index) -> np.ndarray:
    return units.get_indexer(unit_ids.astype("string"))


def _sd_ratio(rows: pd.DataFrame, units: pd.Index) -> np.ndarray:
    """``linkage.true_sd`` of the received index without each unit over its value on all
    ``rows`` (``linkage.true_sd_ratio_without``)."""
    return linkage.true_sd_ratio_without(
        rows["service_received"].to_numpy(float),
        rows["service_noise_var"].to_numpy(float),
        _codes(rows["unit_id"], units),
        len(units),
    )


def coefficients_without(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, codes: np.ndarray, n_units: int
) -> tuple[np.ndarray, np.ndarray]:
    """WLS coefficients of ``y`` on partialled regressors ``x`` (rows × k), and without each unit.

    The deletion formula of least squares (Belsley, Kuh & Welsch, 1980, ch. 2; Cook, 1977),
    for a cluster of rows: with ``M = Σ w x xᵀ`` and residuals ``e = y − x β``::

        β_(−u) = β − (M − M_u)⁻¹ Σ_{i∈u} w_i x_i e_i

    exact for these ``x`` and ``y``; the parts partialled out beforehand (covariate and wave
    effects, calibration, weights) are held at their full-sample values. Returns ``β`` (k) and
    ``β_(−u)`` (units × k; the full ``β`` for a unit without rows).
    """
    x = x[:, None] if x.ndim == 1 else x
    k = x.shape[1]
    information = (x * w[:, None]).T @ x
    beta = np.linalg.solve(information, (x * w[:, None]).T @ y)
    residual = y - x @ beta
    score = np.column_stack([np.bincount(codes, w * x[:, j] * residual, n_units) for j in range(k)])
    outer = np.einsum("ij,ik->ijk", x * w[:, None], x)
    own = np.zeros((n_units, k, k))
    np.add.at(own, codes, outer)
    left = information[None, :, :] - own
    without = np.tile(beta, (n_units, 1))
    present = np.bincount(codes, minlength=n_units) > 0
    if present.any():
        step = np.linalg.solve(left[present], score[present][:, :, None])[:, :, 0]
        without[present] = beta - step
    return beta, without


def _partialled(design: linkage.Design, values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``values`` (a column or several) with the design partialled out (weighted residuals)."""
    return linkage.weighted_residuals(values, design, w)[1]


def _loo_slope(rows: pd.DataFrame, outcome: str, weights, covariates, units) -> np.ndarray:
    design = linkage.absorbed_design(rows, covariates)
    w = weights(rows, design)
    x = _partialled(design, _calibrated_service(rows, design, w), w)
    y = _partialled(design, rows[outcome].to_numpy(float), w)
    _, without = coefficients_without(x, y, w, _codes(rows["unit_id"], units), len(units))
    return without[:, 0] * _sd_ratio(rows, units)


def _nps_weights(rows: pd.DataFrame, design) -> np.ndarray:
    return linkage.nps_precision_weights(rows, design).to_numpy(float)


def engagement_without_each_unit(fitting, units: pd.Index) -> np.ndarray:
    """``engagement_on_internal_service`` without each unit (``coefficients_without``; the SD
    of the true received index recomputed exactly without the unit)."""
    rows = rows_of(fitting)
    return _loo_slope(
        rows, "engagement_index", engagement_weights, fitting.parameters.covariates, units
    )


def nps_without_each_unit(fitting, units: pd.Index) -> np.ndarray:
    """``nps_on_internal_service`` without each unit (as ``engagement_without_each_unit``)."""
    rows = _nps_rows(rows_of(fitting))
    return _loo_slope(rows, "nps", _nps_weights, fitting.parameters.covariates, units)


def share_without_each_unit(fitting, units: pd.Index) -> np.ndarray:
    """``nps_via_engagement_share`` without each unit: ``a_(−u) b_(−u) / c_(−u)``, each from
    ``coefficients_without`` with the calibration held. ``b`` is per engagement point; ``a``
    and ``c`` both scale with the SD of the service received, so that SD cancels in ``a·b/c``
    and need not be refitted."""
    rows = _nps_rows(rows_of(fitting))
    covariates = fitting.parameters.covariates
    design = linkage.absorbed_design(rows, covariates)
    w = _nps_weights(rows, design)
    codes, n = _codes(rows["unit_id"], units), len(units)
    service = _partialled(design, _calibrated_service(rows, design, w), w)
    engagement = _partialled(design, rows["engagement_index"].to_numpy(float), w)
    nps = _partialled(design, rows["nps"].to_numpy(float), w)
    _, a = coefficients_without(service, engagement, w, codes, n)
    _, c = coefficients_without(service, nps, w, codes, n)
    values = rows[["engagement_index", "service_received"]].astype(float)
    noise = pd.DataFrame(
        {
            "engagement_index": rows["engagement_noise_var"].astype(float),
            "service_received": rows["service_noise_var"].astype(float),
        }
    )
    joint = linkage.calibrate_jointly(values, noise, design, pd.Series(w, index=rows.index))
    predictors = _partialled(design, joint.to_numpy(float), w)
    _, b = coefficients_without(predictors, nps, w, codes, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return a[:, 0] * b[:, 0] / c[:, 0]


def within_without_each_unit(fitting, units: pd.Index) -> np.ndarray:
    """``nps_on_internal_service_within`` without each unit: ``(A − a_u) / (D − d_u) × SD_(−u)``
    from ``_within_sums`` (exact for the sums, the calibration and wave effects held)."""
    rows = rows_of(fitting)
    a, d, _, sd = _within_sums(rows)
    codes = _codes(pd.Series(a.index), units)
    a_u = np.bincount(codes, a.to_numpy(float), len(units))
    d_u = np.bincount(codes, d.to_numpy(float), len(units))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (a.sum() - a_u) / (d.sum() - d_u) * sd
    return slope * _sd_ratio(rows, units)
