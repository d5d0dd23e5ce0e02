"""A synthetic study whose truth is known: the yardstick every method in ``analysis`` is checked on.

The generator draws a whole organisation (regions, units of very different sizes, customer-facing
and back-office units), eight quarterly employee-survey waves and the customers those units serve,
from a model whose causal effects are set by the caller and written to ``truth.json``.
:func:`write_study` writes it as a dataset folder with the marker ``SYNTHETIC.md``, so every
report on it says that the data are generated. The optional ``headcount`` table lists each
unit's roster size at every wave (everyone is invited; leavers are replaced one for one), so the
response rates, and the non-response check, have a known truth: less engaged staff answer less.
A study too large to hold in memory (``make bench``'s huge size, 100 million customer answers)
is written by :func:`write_study_chunked` instead: the same model, customers in chunks.

The model
---------
Unit engagement (latent, in SD units) for unit *u* at wave *t* (``t = 0`` is the unobserved quarter
before the first wave)::

    z[u,t] = sqrt(rho) a[u] + sqrt(1 - rho) w[u,t] + g[region]         w: AR(1), phi = 0.5
             + kappa s[u,t-1]                                           (reverse causation only)

``rho`` is the share of unit variance that is stable, so engagement persists within a unit.

Employees: an employee *i* of unit *u* answers at wave *t* with probability
``logistic(logit(response_rate) + 0.2 e[i,t])`` (less engaged staff answer less often). Their
latent engagement is ``e[i,t] = sqrt(icc) z[u,t] + sqrt(1 - icc) (person + occasion)``; each other
scale mixes that factor with a specific part (correlations of .45–.70, as in published employee
surveys), and each item is the scale plus measurement error (loading 0.75), cut into the ordinal
categories of the instrument. Items are skipped at random (2%).

Customers: a customer of unit *u* in quarter *k* (the outcome window of wave *k*) has satisfaction
``eta = beta z[u,k] + r[region] + b[u] + s[u,k] + c[customer]``; ``s`` is unit customer sentiment,
AR(1) across quarters. The 0–10 answer is ordinal-logistic in ``eta``, so the promoter and
detractor odds move with engagement. Churn is piecewise exponential by quarter, with hazard::

    h = h0 exp(delta z[u,k] + lam (beta z[u,k] + r[region] + b[u] + s[u,k]))

so the effect of engagement on churn runs partly directly (``delta``) and partly through customer
sentiment, which NPS measures (``lam beta``). Customers who joined before the first wave enter the
study there.

Default effect sizes and their grounding
----------------------------------------
* ``nps_effect`` = 4 NPS points per SD of unit engagement. Harter, Schmidt & Hayes (2002) report a
  true-score unit-level correlation of about .33 between engagement and customer
  satisfaction–loyalty; with a between-unit SD of true NPS near 12 points (set here by
  ``unit_nps_sd``) that is a slope of .33 × 12 ≈ 4 points per SD.
* The same slope puts top-quartile units about 10 NPS points above bottom-quartile units (the
  quartile means of a normal variable are 2.54 SD apart). Gallup reports top-quartile units
  about 10% ahead on customer loyalty (Harter et al., 2020); that is a relative difference, and
  on a base NPS near +25 a 10-point gap is a similar order of size, not an identity.
* ``churn_hazard_ratio`` = 0.88 per SD (about 24% lower churn hazard in top- than
  bottom-quartile units) and ``baseline_annual_churn`` = 15% are our assumptions, chosen to be
  modest; the meta-analyses above report loyalty and retention gaps but no hazard ratio.
* ``mediated_share`` = 0.3 of the log hazard ratio runs through customer sentiment.
* ``engagement_icc`` = 0.15: ICC(1) values of .05–.20 are typical of work-unit climate data
  (Bliese, 2000).

Switches
--------
``no_effect`` sets every causal effect of engagement to zero. ``confounding`` makes region move
engagement, NPS and churn together. ``reverse_causation`` makes customer sentiment in the quarter
before a wave raise engagement at that wave (``kappa``), with no forward effect unless
``nps_effect`` is also given.

Internal service, the service chain, communication effort and brand promise (contract v2)
-----------------------------------------------------------------------------------------
Off by default (``internal_service``), so a design without it, ``data/sample`` included, writes
byte for byte what it wrote before. On, every new number comes from streams of its own
(``SeedSequence(seed, spawn_key=(CHAIN_STREAM,))``), and the chain moves only engagement and
customer satisfaction: with ``no_chain`` the four tables are unchanged, only added to.

* **Who depends on whom.** Each unit depends on ``providers_per_unit`` other units, mostly
  back-office teams (IT, HR, logistics, finance), more often in its own region, now and then a
  customer-facing one (:func:`_draw_chain`). Provider *p* has latent service quality
  ``q[p,t] = sqrt(.6) a[p] + sqrt(.4) w[p,t]`` (w AR(1), phi = 0.5) and a true internal
  service index ``Q = service_index(q)``, 0–100.
* **Ratings** (``internal_service``): every survey respondent of unit *u* rates each of *u*'s
  providers with a chance fixed per pair (.4–.9); the rating's latent is
  ``.5 q[p,t] + .3 e[i,t] + noise``, where e is the rater's own latent engagement (a halo: the
  reason the contract leaves a unit's own raters out of the service it receives); six points of
  connection (1–5) and internal NPS (0–10) are cut from it as the survey's items are.
* **The chain.** The service unit *u* receives, ``R[u,t]``, is the mean of its providers' Q
  weighted by the expected share of *u*'s raters each gets; S is R standardized across
  customer-facing unit-waves. Engagement becomes
  ``z = sqrt(1 − γ²) z_own + γ S + region + reverse`` (its within-region SD stays 1, so every
  effect above keeps its meaning), with γ set so that the engagement index moves
  ``engagement_per_service_sd`` points per SD of S; satisfaction gains
  ``direct × S`` (``nps_direct_per_service_sd`` NPS points). Engagement at wave *t* drives NPS
  in the quarter after it, so the received service does too, partly through engagement.
* **Communication effort** (``comm_effort``, 1–7): built like the other scales, correlation
  ``SCALE_CORRELATION["communication_effort"]`` = .5 with the engagement factor.
* **Brand promise** (``brand_promise``, 1–5, half the customers asked): ordinal logistic in
  ``ξ B[u,t] + unit part + .5 × the customer's own satisfaction``, B the unit's true staff brand
  alignment at the wave before (the surveyed scale's unit part), ξ set so the brand-promise
  index moves ``brand_promise_per_sd`` points per SD of B.

Defaults are our assumptions, chosen modest: Heskett et al. (1994) state the chain's links
(internal service quality → employee satisfaction → loyalty → customer satisfaction) without
effect sizes. 2.5 engagement points per SD of received service is γ ≈ .36 SD of latent
engagement; with the 4-point NPS effect of engagement and a direct 1 point it makes a total of
about 2.4 NPS points per SD, three fifths of it through engagement.

``no_chain`` sets the chain's effects (engagement and direct NPS) to zero. ``chain_confounding``
gives each unit a trait that tilts its choice of providers toward good ones
(``exp(chain_confounding_strength × trait × a[p])``, Gumbel top-k sampling) and adds
``chain_confounding_nps`` NPS points per SD of the trait: the naive association of received
service with NPS is biased, while the within-unit one is not (the trait and the providers are
fixed, the service varies by quarter). Everything is in ``truth.json`` (``effects`` and
``internal_service``); :func:`write_study_chunked` refuses the chain.

References
----------
Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability: implications
for data aggregation and analysis. In K. J. Klein & S. W. J. Kozlowski (Eds.), *Multilevel
Theory, Research, and Methods in Organizations* (pp. 349–381). Jossey-Bass.

Harter, J. K., Schmidt, F. L., & Hayes, T. L. (2002). Business-unit-level relationship between
employee satisfaction, employee engagement, and business outcomes: a meta-analysis. *Journal
of Applied Psychology* 87(2), 268–279.

Heskett, J. L., Jones, T. O., Loveman, G. W., Sasser, W. E., & Schlesinger, L. A. (1994).
Putting the service-profit chain to work. *Harvard Business Review* 72(2), 164–174.

Harter, J. K., et al. (2020). *The Relationship Between Engagement at Work and Organizational
Outcomes: Q12 Meta-Analysis* (10th ed.). Gallup.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr

from analysis.data.contract import (
    DEFAULT_INSTRUMENT,
    DETRACTOR_MAX,
    POINTS_OF_CONNECTION,
    PROMOTER_MIN,
    Instrument,
)
from analysis.data.load import SYNTHETIC_FILE, write_tables

DAYS_PER_YEAR = 365.25
REGIONS = ("North", "South", "East", "West", "Central")
TOWNS = (
    "Leeds",
    "Bristol",
    "King's Lynn",
    "Stoke-on-Trent",
    "Bury St Edmunds",
    "Cardiff",
    "Derby",
    "Exeter",
    "Glasgow",
    "Hull",
    "Ipswich",
    "Bath & Wells",
    "Kendal",
    "Luton",
    "Malvern",
)
UNIT_KINDS = ("Branch", "Store", "Contact centre", "Service desk")
BACK_OFFICE_KINDS = ("Finance", "IT", "HR", "Logistics", "Legal")

# Share of each 0–10 answer for an average customer (a net score near +30, detractors 20%).
CUSTOMER_NPS_BASE = (0.02, 0.01, 0.02, 0.02, 0.03, 0.04, 0.06, 0.10, 0.20, 0.25, 0.25)
ENPS_BASE = (0.02, 0.02, 0.03, 0.04, 0.05, 0.08, 0.09, 0.14, 0.17, 0.18, 0.18)
FIVE_POINT_BASE = (0.04, 0.08, 0.20, 0.43, 0.25)
SEVEN_POINT_BASE = (0.03, 0.06, 0.10, 0.17, 0.26, 0.23, 0.15)
CUSTOMER_EFFORT_BASE = (0.03, 0.05, 0.08, 0.14, 0.25, 0.25, 0.20)
# Correlation of each scale's latent with the engagement factor.
SCALE_CORRELATION = {
    "engagement": 1.0,
    "internal_communication": 0.60,
    "brand_alignment": 0.65,
    "points_of_connection": 0.55,
    "employee_effort": 0.45,
    "enps": 0.70,
    # (v2) Easy access to information goes with engagement, less strongly than communication.
    "communication_effort": 0.50,
}
ITEM_LOADING = 0.75
ITEM_SKIP_RATE = 0.02
CUSTOMER_SD_LOGIT = 1.0  # customer-to-customer spread of satisfaction, in logits


@dataclass(frozen=True)
class StudyDesign:
    """Every knob of the generator. The defaults make ``data/sample``.

    The effect sizes, their grounding in published meta-analyses and the switches
    (``no_effect``, ``confounding``, ``reverse_causation``; with ``internal_service``,
    ``no_chain`` and ``chain_confounding``) are described in the module docstring; each
    field's unit is in its comment.
    """

    seed: int = 20240331
    n_units: int = 300
    n_waves: int = 8
    first_wave: str = "2024-03-31"
    share_customer_facing: float = 0.8
    median_unit_size: float = 10.0
    unit_size_spread: float = 0.9  # SD of log unit size
    min_unit_size: int = 2  # employees in the smallest unit (1 for one-person units)
    max_unit_size: int = 400  # employees in the largest unit
    response_rate: float = 0.70
    annual_staff_turnover: float = 0.15
    customers_per_employee: float = 7.0
    share_customers_before_first_wave: float = 0.55
    responses_per_customer_year: float = 1.2
    engagement_icc: float = 0.15
    engagement_persistence: float = 0.6
    nps_effect: float = 4.0  # NPS points per SD of latent unit engagement
    unit_nps_sd: float = 12.0  # between-unit SD of true NPS, all sources
    churn_hazard_ratio: float = 0.88  # per SD of latent unit engagement, all paths
    mediated_share: float = 0.3
    baseline_annual_churn: float = 0.15
    sentiment_churn_log_hr: float = (
        -0.5
    )  # per logit of unit sentiment, when engagement has no effect
    no_effect: bool = False
    confounding: bool = False
    confounding_strength: float = 0.5  # SD of engagement between regions
    reverse_causation: bool = False
    reverse_strength: float = 0.6  # kappa: SD of engagement per SD of prior sentiment
    # (v2) The internal-service chain, communication effort and brand promise; off by default,
    # so that a design without it writes exactly what it wrote before (data/sample included).
    internal_service: bool = False
    providers_per_unit: int = 3  # internal teams each unit depends on
    engagement_per_service_sd: float = 2.5  # engagement index points per SD of received service
    nps_direct_per_service_sd: float = 1.0  # NPS points per SD of received service, not via staff
    brand_promise_per_sd: float = 3.0  # brand_promise index points per SD of staff alignment
    no_chain: bool = False
    chain_confounding: bool = False
    chain_confounding_strength: float = 0.5  # log-weight of provider choice per SD trait × quality
    chain_confounding_nps: float = 4.0  # NPS points per SD of the confounding unit trait

    def effective(self) -> StudyDesign:
        """The design with its switches applied."""
        design = self
        if self.no_effect:
            design = replace(design, nps_effect=0.0, churn_hazard_ratio=1.0)
        if not self.reverse_causation:
            design = replace(design, reverse_strength=0.0)
        if not self.confounding:
            design = replace(design, confounding_strength=0.0)
        if self.no_chain:
            design = replace(design, engagement_per_service_sd=0.0, nps_direct_per_service_sd=0.0)
        if not self.chain_confounding:
            design = replace(design, chain_confounding_strength=0.0, chain_confounding_nps=0.0)
        return design


@dataclass
class Study:
    """A generated study: its four tables and the truth they were drawn from.

    Attributes
    ----------
    tables : dict of str to DataFrame
        ``units``, ``employee_survey``, ``customer_nps``, ``customers`` and ``headcount``, as
        the contract defines them, and ``internal_service`` when the design has the chain.
    truth : dict
        The design, the counts and every effect on the scales the kit estimates them on (what
        ``truth.json`` holds; see :func:`truth_json`).
    latent : dict of str to DataFrame, optional
        The generator's hidden values, never written to the dataset, for tests that check the
        truth against the draws: ``unit_waves`` (one row per unit and wave: ``unit_id``,
        ``wave``, ``customer_facing``, ``engagement_latent``; with the internal-service chain
        also ``received_service`` (0–100), ``received_service_sd`` (its standardized value),
        ``brand_alignment_latent`` and ``confounding_trait``) and, with the chain,
        ``provider_waves`` (``unit_id``, ``wave``, ``service_quality_latent``,
        ``service_index``).
    """

    tables: dict[str, pd.DataFrame]
    truth: dict
    latent: dict[str, pd.DataFrame] | None = None


@dataclass(frozen=True)
class _Latent:
    """The design's effects on the generator's latent scales, as ``truth.json`` reports them."""

    beta: float  # logit of customer satisfaction per SD of unit engagement
    points_per_logit: float  # NPS points per logit of satisfaction, at the average customer
    unit_sd: float  # stable unit part of satisfaction, logits
    sentiment_sd: float  # quarter-to-quarter unit sentiment, logits
    region_engagement: np.ndarray  # each region's engagement offset, SD units
    region_nps_logit: np.ndarray  # each region's satisfaction offset, logits


# --------------------------------------------------------------------------------------------
# Ordinal answers


def _cutpoints(base: tuple[float, ...], link: str) -> np.ndarray:
    """Thresholds on the latent scale that reproduce the base shares at a latent value of 0."""
    cumulative = np.cumsum(base)[:-1]
    cumulative = cumulative / np.sum(base)
    if link == "logit":
        return logit(cumulative)
    from scipy.stats import norm

    return norm.ppf(cumulative)


def _ordinal(latent: np.ndarray, cutpoints: np.ndarray, low: int) -> np.ndarray:
    return low + np.searchsorted(cutpoints, latent, side="left")


def _ordinal_logistic(
    eta: np.ndarray, cutpoints: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    noise = rng.logistic(size=eta.shape)
    return np.searchsorted(cutpoints, eta + noise, side="left")


# --------------------------------------------------------------------------------------------
# Exact quantities implied by the design, for truth.json


_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(40)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def _expected_nps(eta_mean: np.ndarray, spread: float, cutpoints: np.ndarray) -> np.ndarray:
    """E[100 (P(promoter) − P(detractor))] when eta ~ N(eta_mean, spread²), ordinal logistic."""
    eta = np.asarray(eta_mean)[..., None] + spread * _GH_NODES
    # cutpoints[k] separates answer k from k + 1
    promoter = 1 - expit(cutpoints[PROMOTER_MIN - 1] - eta)  # answer 9 or 10
    detractor = expit(cutpoints[DETRACTOR_MAX] - eta)  # answer 0 to 6
    return 100 * ((promoter - detractor) * _GH_WEIGHTS).sum(axis=-1)


def _nps_slope(beta: float, spread: float, cutpoints: np.ndarray) -> float:
    """Average derivative of expected NPS with respect to latent engagement z ~ N(0, 1).

    By Stein's lemma this is also the population least-squares slope of NPS on z.
    """
    h = 1e-4
    z = _GH_NODES
    up = _expected_nps(beta * (z + h), spread, cutpoints)
    down = _expected_nps(beta * (z - h), spread, cutpoints)
    return float((((up - down) / (2 * h)) * _GH_WEIGHTS).sum())


def _points_per_logit(spread: float, cutpoints: np.ndarray) -> float:
    h = 1e-4
    return float(
        (
            _expected_nps(np.array(h), spread, cutpoints)
            - _expected_nps(np.array(-h), spread, cutpoints)
        )
        / (2 * h)
    )


def _beta_for_nps_effect(points: float, spread: float, cutpoints: np.ndarray) -> float:
    """Solve for the logit coefficient that gives ``points`` NPS points per SD (bisection)."""
    if points == 0:
        return 0.0
    low, high = 0.0, 3.0
    for _ in range(80):
        mid = (low + high) / 2
        if _nps_slope(mid, spread, cutpoints) < abs(points):
            low = mid
        else:
            high = mid
    return float(np.sign(points) * (low + high) / 2)


# --------------------------------------------------------------------------------------------
# The generator


def generate(
    design: StudyDesign = StudyDesign(), instrument: Instrument = DEFAULT_INSTRUMENT
) -> Study:
    """Draw a study. The same design (seed included) gives the same tables, row for row.

    Parameters
    ----------
    design : StudyDesign
        The generator's settings; its switches are applied first (:meth:`StudyDesign.effective`).
    instrument : Instrument
        The employee survey's scales and items.

    Returns
    -------
    Study
        The four tables and their truth.

    Notes
    -----
    The model (latent unit engagement, ordinal answers, piecewise-exponential churn) and the
    grounding of its default effect sizes are in the module docstring.
    """
    d = design.effective()
    rng_units, rng_engagement, rng_staff, rng_items, rng_customers, rng_nps = _streams(d)
    org = _organisation(d, rng_units, rng_engagement)
    # The chain draws from its own streams and only then moves engagement and sentiment, so a
    # design without it takes exactly the draws it always took.
    chain = _draw_chain(d, org, instrument) if d.internal_service else None
    if chain is not None:
        org = chain.organisation
    record: dict | None = {} if chain is not None else None
    waves = _employee_survey_waves(d, instrument, org, rng_staff, rng_items, record)
    survey = pd.concat([frame for frame, _ in waves], ignore_index=True)
    brand = None
    if chain is not None:
        survey = _with_communication_effort(d, chain, instrument, survey, record)
        service = _internal_service_table(chain, org, survey, record)
        brand = _brand_answers(chain, org, instrument, record)
    customers, nps = _customers(d, org, rng_customers, rng_nps, brand)
    tables = {
        "units": org.units,
        "employee_survey": survey,
        "customer_nps": nps,
        "customers": customers,
        "headcount": _headcount(org, survey["wave"]),
    }
    if chain is not None:
        tables["internal_service"] = service
    counts = _counts(tables, org.waves)
    truth = _truth(d, org.latent, org.waves, org.as_of, counts, instrument)
    latent = {"unit_waves": _unit_waves(org, chain, instrument, record)}
    if chain is not None:
        truth = _with_chain_truth(truth, chain, tables)
        latent["provider_waves"] = _provider_waves(org, chain)
    return Study(tables, truth, latent)


def _streams(d: StudyDesign) -> list[np.random.Generator]:
    """The six independent random streams of a design: units, engagement, staff, items,
    customers, NPS answers (children 0–5 of the seed's ``SeedSequence``)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(d.seed).spawn(6)]


@dataclass(frozen=True)
class _Organisation:
    """Everything but the people: units, the calendar, and the latent unit paths over quarters."""

    units: pd.DataFrame
    unit_ids: np.ndarray
    size: np.ndarray  # employees per unit
    customer_facing: np.ndarray
    waves: pd.DatetimeIndex
    as_of: pd.Timestamp
    boundaries: pd.DatetimeIndex  # quarter k runs from boundary k to boundary k + 1
    z: np.ndarray  # latent unit engagement, unit × quarter
    z_own: np.ndarray  # its stable and AR(1) part, without region or reverse causation
    unit_sentiment: np.ndarray  # unit customer sentiment, logits, unit × quarter
    beta: float
    nps_cuts: np.ndarray
    latent: _Latent


def _organisation(
    d: StudyDesign, rng_units: np.random.Generator, rng_engagement: np.random.Generator
) -> _Organisation:
    """Draw the units and their latent engagement and sentiment paths (the module's model)."""
    waves = pd.date_range(pd.Timestamp(d.first_wave), periods=d.n_waves, freq="QE")
    first_wave, last_wave = waves[0], waves[-1]
    as_of = last_wave + pd.offsets.QuarterEnd(1)
    response_start = first_wave - pd.offsets.QuarterEnd(1)
    # Quarter k runs from boundary k to boundary k + 1; quarter 0 precedes the first wave.
    boundaries = pd.DatetimeIndex([response_start, *waves, as_of])
    n_periods = d.n_waves + 1

    # ---- units
    n = d.n_units
    region_index = rng_units.integers(0, len(REGIONS), n)
    customer_facing = rng_units.random(n) < d.share_customer_facing
    size = np.clip(
        np.round(d.median_unit_size * np.exp(d.unit_size_spread * rng_units.standard_normal(n))),
        d.min_unit_size,
        d.max_unit_size,
    )
    size = size.astype(int)
    unit_ids = np.array([f"{i + 1:04d}" for i in range(n)])
    town = rng_units.integers(0, len(TOWNS), n)
    kind = rng_units.integers(0, 20, n)
    names = [
        f"{UNIT_KINDS[k % len(UNIT_KINDS)]} {TOWNS[t]} {i + 1}"
        if cf
        else f"{BACK_OFFICE_KINDS[k % len(BACK_OFFICE_KINDS)]} {TOWNS[t]} {i + 1}"
        for i, (t, k, cf) in enumerate(zip(town, kind, customer_facing, strict=True))
    ]
    units = pd.DataFrame(
        {
            "unit_id": unit_ids,
            "unit_name": names,
            "region": np.array(REGIONS)[region_index],
            "customer_facing": customer_facing,
        }
    )

    # ---- customer-side scale: from effect sizes to logit coefficients
    nps_cuts = _cutpoints(CUSTOMER_NPS_BASE, "logit")
    points_per_logit = _points_per_logit(CUSTOMER_SD_LOGIT, nps_cuts)
    beta = _beta_for_nps_effect(d.nps_effect, CUSTOMER_SD_LOGIT, nps_cuts)
    # What the engagement effect does not explain of the between-unit NPS variance is split
    # between a stable unit part (b) and a quarter-to-quarter sentiment (s).
    other_sd_points = np.sqrt(max(d.unit_nps_sd**2 - d.nps_effect**2, 1.0))
    other_sd_logit = other_sd_points / points_per_logit
    unit_sd, sentiment_sd = other_sd_logit * np.sqrt(0.6), other_sd_logit * np.sqrt(0.4)

    region_offsets = np.linspace(-1, 1, len(REGIONS))  # a fixed ordering of regions
    region_engagement = d.confounding_strength * region_offsets * np.sqrt(2)  # SD = strength
    region_nps_logit = 0.05 * rng_units.standard_normal(len(REGIONS))
    if d.confounding:
        # regions that engage staff more also have happier customers, whatever the causal path
        region_nps_logit = region_nps_logit + 0.5 * region_engagement * other_sd_logit

    # ---- unit engagement and customer sentiment over quarters
    phi = 0.5
    a = rng_engagement.standard_normal(n)
    w = np.empty((n, n_periods))
    s = np.empty((n, n_periods))
    w[:, 0] = rng_engagement.standard_normal(n)
    s[:, 0] = rng_engagement.standard_normal(n)
    for k in range(1, n_periods):
        w[:, k] = phi * w[:, k - 1] + np.sqrt(1 - phi**2) * rng_engagement.standard_normal(n)
        s[:, k] = phi * s[:, k - 1] + np.sqrt(1 - phi**2) * rng_engagement.standard_normal(n)
    rho = d.engagement_persistence
    z = np.sqrt(rho) * a[:, None] + np.sqrt(1 - rho) * w + region_engagement[region_index][:, None]
    z[:, 1:] += d.reverse_strength * s[:, :-1]
    b = unit_sd * rng_engagement.standard_normal(n)
    unit_sentiment = region_nps_logit[region_index][:, None] + b[:, None] + sentiment_sd * s

    latent = _Latent(
        beta, points_per_logit, unit_sd, sentiment_sd, region_engagement, region_nps_logit
    )
    return _Organisation(
        units, unit_ids, size, customer_facing, waves, as_of, boundaries, z,
        np.sqrt(rho) * a[:, None] + np.sqrt(1 - rho) * w, unit_sentiment, beta, nps_cuts, latent,
    )  # fmt: skip


def _headcount(org: _Organisation, survey_waves) -> pd.DataFrame:
    """Every unit's roster at each wave that has answers: everyone on it is invited every wave
    (leavers are replaced one for one)."""
    unit_ids, waves, size = org.unit_ids, org.waves, org.size
    return pd.DataFrame(
        {
            "unit_id": np.repeat(unit_ids, len(waves)),
            "wave": np.tile(np.asarray(waves, dtype="datetime64[ns]"), len(unit_ids)),
            "headcount": np.repeat(size, len(waves)).astype("int64"),
        }
    ).pipe(lambda h: h[h["wave"].isin(survey_waves)].reset_index(drop=True))


def _counts(tables: dict[str, pd.DataFrame], waves: pd.DatetimeIndex) -> dict[str, int]:
    """The counts ``truth.json`` reports, from a study's tables."""
    units, survey = tables["units"], tables["employee_survey"]
    customers, nps = tables["customers"], tables["customer_nps"]
    return {
        "units": len(units),
        "customer_facing_units": int(units["customer_facing"].sum()),
        "employees": int(survey["respondent_id"].nunique()),
        "employee_responses": len(survey),
        "customers": len(customers),
        "customers_before_first_wave": int((customers["since"] < waves[0]).sum()),
        "churned": int(customers["churned_on"].notna().sum()),
        "nps_responses": len(nps),
    }


def _employee_survey_waves(
    d: StudyDesign,
    instrument: Instrument,
    org: _Organisation,
    rng_staff: np.random.Generator,
    rng_items: np.random.Generator,
    record: dict | None = None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """The staff answers wave by wave: each wave's rows, and the staff numbers that answered.

    ``record``, when given, receives what the internal-service chain needs and the survey does
    not write: ``"specific"``, each scale's unit-specific part, and ``"waves"``, per wave the
    respondents' unit numbers and latent engagement, in the rows' order. No extra draws.
    """
    z, unit_ids, size, waves = org.z, org.unit_ids, org.size, org.waves
    roster_unit = np.repeat(np.arange(len(unit_ids)), size)
    n_staff = len(roster_unit)
    person = rng_staff.standard_normal(n_staff)
    staff_id = np.arange(n_staff)
    next_id = n_staff
    quarterly_leave = 1 - (1 - d.annual_staff_turnover) ** 0.25
    scale_specific_unit = {
        s.name: rng_items.standard_normal(len(unit_ids)) for s in instrument.scales
    }
    icc = d.engagement_icc
    if record is not None:
        record["specific"] = scale_specific_unit
        record["waves"] = []
    for t, wave in enumerate(waves, start=1):
        if t > 1:  # leavers are replaced by new staff with new pseudonymous ids
            leave = rng_staff.random(n_staff) < quarterly_leave
            staff_id = staff_id.copy()
            staff_id[leave] = next_id + np.arange(leave.sum())
            next_id += int(leave.sum())
            person = np.where(leave, rng_staff.standard_normal(n_staff), person)
        occasion = rng_staff.standard_normal(n_staff)
        general = np.sqrt(icc) * z[roster_unit, t] + np.sqrt(1 - icc) * (
            np.sqrt(0.5) * person + np.sqrt(0.5) * occasion
        )
        answers = rng_staff.random(n_staff) < expit(logit(d.response_rate) + 0.2 * general)
        columns: dict[str, np.ndarray] = {}
        for scale in instrument.scales:
            r = SCALE_CORRELATION.get(scale.name, 0.5)
            specific = np.sqrt(icc) * scale_specific_unit[scale.name][roster_unit] + np.sqrt(
                1 - icc
            ) * rng_items.standard_normal(n_staff)
            latent = r * general + np.sqrt(1 - r**2) * specific
            categories = scale.high - scale.low + 1
            base = {11: ENPS_BASE, 7: SEVEN_POINT_BASE, 5: FIVE_POINT_BASE}.get(
                categories, tuple(np.full(categories, 1 / categories))
            )
            cuts = _cutpoints(base, "probit")
            for item in scale.items:
                loading = ITEM_LOADING if len(scale.items) > 1 else 0.9
                value = loading * latent + np.sqrt(1 - loading**2) * rng_items.standard_normal(
                    n_staff
                )
                answer = _ordinal(value, cuts, scale.low).astype(float)
                if item in scale.reverse:
                    answer = scale.low + scale.high - answer
                answer[rng_items.random(n_staff) < ITEM_SKIP_RATE] = np.nan
                columns[item] = answer[answers]
        frame = pd.DataFrame(
            {
                "respondent_id": [f"R{i:06d}" for i in staff_id[answers]],
                "unit_id": unit_ids[roster_unit[answers]],
                "wave": wave,
                **{k: pd.array(v, dtype="Int64") for k, v in columns.items()},
            }
        )
        if record is not None:
            record["waves"].append((roster_unit[answers], general[answers]))
        yield frame, staff_id[answers]


def _churn_paths(d: StudyDesign, beta: float) -> tuple[float, float]:
    """Split the total log hazard ratio per SD into a direct path and a path through sentiment.

    Returns ``(delta, lam)``: the direct log hazard ratio per SD of engagement, and the log hazard
    ratio per logit of unit customer sentiment. With an engagement effect on NPS, ``lam`` is set
    so that ``lam * beta`` is ``mediated_share`` of the total; without one, sentiment still drives
    churn at ``sentiment_churn_log_hr`` (NPS predicts churn even where engagement does not).
    """
    total = float(np.log(d.churn_hazard_ratio))
    if beta == 0 or total == 0:
        return total, d.sentiment_churn_log_hr if beta == 0 else 0.0
    lam = d.mediated_share * total / beta
    return total - lam * beta, lam


def _customers(
    d: StudyDesign,
    org: _Organisation,
    rng: np.random.Generator,
    rng_nps: np.random.Generator,
    brand: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All customers and their NPS answers, sorted by date (``generate``).

    ``brand``, when given, is called with each answer's unit number, quarter and customer
    effect (in the answers' drawn order) and returns their ``brand_promise`` (NaN for skipped).
    """
    unit = np.repeat(np.arange(len(org.unit_ids)), _customer_counts(d, org, rng))
    drawn = _draw_customers(d, org, unit, rng, rng_nps)
    unit_ids = org.unit_ids
    m = len(unit)
    customer_ids = np.array([f"C{i:07d}" for i in range(1, m + 1)])
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "unit_id": unit_ids[unit],
            "since": pd.to_datetime(drawn.since),
            "churned_on": pd.to_datetime(drawn.churned_on),
        }
    )
    who, u, responded_on = drawn.who, unit[drawn.who], drawn.responded_on
    order = np.lexsort((customer_ids[who], responded_on))
    nps = pd.DataFrame(
        {
            "response_id": [f"N{i:08d}" for i in range(1, len(who) + 1)],
            "customer_id": customer_ids[who][order],
            "unit_id": unit_ids[u][order],
            "responded_on": pd.to_datetime(responded_on[order]),
            "likelihood_to_recommend": drawn.score[order],
            "effort": pd.array(
                np.where(drawn.effort_missing, np.nan, drawn.effort)[order], dtype="Int64"
            ),
        }
    )
    if brand is not None:
        promise = brand(u, drawn.period, drawn.customer_effect[who])
        nps["brand_promise"] = pd.array(promise[order], dtype="Int64")
    return customers, nps


def _customer_counts(d: StudyDesign, org: _Organisation, rng: np.random.Generator) -> np.ndarray:
    """Customers per unit: Poisson in the unit's staff, none for back-office units."""
    return np.where(org.customer_facing, rng.poisson(org.size * d.customers_per_employee), 0)


@dataclass(frozen=True)
class _DrawnCustomers:
    """Customers (in the order given) and their answers (grouped by customer, undated order)."""

    since: np.ndarray
    churned_on: np.ndarray  # NaT while active
    who: np.ndarray  # the answering customer's position among the customers given
    responded_on: np.ndarray
    score: np.ndarray  # likelihood to recommend, 0–10
    effort: np.ndarray  # customer effort, 1–7
    effort_missing: np.ndarray
    period: np.ndarray  # each answer's quarter (its wave's outcome window; 0 before the first)
    customer_effect: np.ndarray  # each customer's own satisfaction, logits


def _draw_customers(
    d: StudyDesign,
    org: _Organisation,
    unit: np.ndarray,
    rng: np.random.Generator,
    rng_nps: np.random.Generator,
) -> _DrawnCustomers:
    """Draw the customers of the units ``unit`` (one entry per customer): when each joined,
    when each churned and their NPS answers, independently given the units' latent paths."""
    z, beta, unit_sentiment, boundaries = org.z, org.beta, org.unit_sentiment, org.boundaries
    nps_cuts = org.nps_cuts
    first_wave, as_of = boundaries[1], boundaries[-1]
    day = np.timedelta64(1, "D")
    m = len(unit)
    before = rng.random(m) < d.share_customers_before_first_wave
    study_days = (as_of - first_wave) / day
    since = np.where(
        before,
        first_wave.to_datetime64() - (1 + rng.integers(0, int(5 * DAYS_PER_YEAR), m)) * day,
        first_wave.to_datetime64() + rng.integers(0, int(study_days), m) * day,
    )
    entry = np.maximum(since, first_wave.to_datetime64())

    # Piecewise-exponential churn: quarter k >= 1 runs from wave k to the next boundary.
    h0 = -np.log(1 - d.baseline_annual_churn) / DAYS_PER_YEAR
    delta, lam = _churn_paths(d, beta)
    threshold = rng.exponential(size=m)
    cumulative = np.zeros(m)
    churned_on = np.full(m, np.datetime64("NaT"), dtype="datetime64[ns]")
    for k in range(1, len(boundaries) - 1):
        start, end = boundaries[k].to_datetime64(), boundaries[k + 1].to_datetime64()
        log_h = delta * z[unit, k] + lam * (
            beta * z[unit, k] + unit_sentiment[unit, k] - unit_sentiment.mean()
        )
        hazard = h0 * np.exp(log_h)
        at_risk = np.isnat(churned_on) & (entry < end)
        exposure = np.clip((end - np.maximum(entry, start)) / day, 0, None)
        add = hazard * exposure
        ends = at_risk & (cumulative + add >= threshold)
        days_in = (threshold - cumulative) / hazard
        churn_day = np.maximum(entry, start) + np.ceil(days_in).astype(int) * day
        churned_on = np.where(ends, np.minimum(churn_day, end), churned_on)
        cumulative = np.where(at_risk, cumulative + add, cumulative)

    # NPS responses: a Poisson number over each customer's active time, at uniform dates.
    active_from = np.maximum(since, boundaries[0].to_datetime64())
    active_to = np.where(np.isnat(churned_on), as_of.to_datetime64(), churned_on)
    active_days = np.clip((active_to - active_from) / day, 0, None)
    n_responses = rng_nps.poisson(d.responses_per_customer_year * active_days / DAYS_PER_YEAR)
    who = np.repeat(np.arange(m), n_responses)
    offset = np.floor(rng_nps.random(len(who)) * active_days[who]).astype(int) + 1
    responded_on = active_from[who] + np.minimum(offset, active_days[who].astype(int)) * day
    period = np.searchsorted(boundaries[1:-1].to_numpy(), responded_on, side="left")
    customer_effect = CUSTOMER_SD_LOGIT * rng_nps.standard_normal(m)
    u = unit[who]
    eta = beta * z[u, period] + unit_sentiment[u, period] + customer_effect[who]
    score = _ordinal_logistic(eta, nps_cuts, rng_nps)
    effort_cuts = _cutpoints(CUSTOMER_EFFORT_BASE, "logit")
    effort = 1 + _ordinal_logistic(0.5 * eta, effort_cuts, rng_nps)
    effort_missing = rng_nps.random(len(who)) < 0.3  # effort is an optional question
    return _DrawnCustomers(
        since, churned_on, who, responded_on, score, effort, effort_missing, period,
        customer_effect,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# (v2) Internal service, the service chain, communication effort and brand promise

#: Spawn key of the chain's streams under the design's seed: ``generate`` uses ``(0,)`` to
#: ``(5,)`` and ``write_study_chunked`` ``(6, block)``, so none of the chain's draws is taken
#: from a stream the other tables use.
CHAIN_STREAM = 15
SERVICE_PERSISTENCE = 0.6  # share of a provider's quality variance that is stable
SERVICE_AGREEMENT = 0.5  # loading of a rating on the provider's true quality (rater ICC .25)
SERVICE_HALO = 0.3  # loading of a rating on the rater's own latent engagement
SERVICE_RATING_RATE = (0.4, 0.9)  # range of the chance a respondent rates a given provider
CUSTOMER_FACING_PROVIDER_WEIGHT = 0.05  # relative to a back-office team
SAME_REGION_PROVIDER_WEIGHT = 2.0  # a regional office serves its own region first
INTERNAL_NPS_SKIP_RATE = 0.10
BRAND_PROMISE_SKIP_RATE = 0.5  # asked of about half the customers
BRAND_UNIT_SD_LOGIT = 0.3  # what else makes a unit's customers feel the promise is kept
BRAND_CUSTOMER_LOADING = 0.5  # a satisfied customer also says the promise is kept


@dataclass(frozen=True)
class _Chain:
    """The internal-service network, its true quality, and the organisation it moved."""

    organisation: _Organisation  # engagement and sentiment with the chain's effects in
    providers: np.ndarray  # unit × slot: the provider's unit number (-1: none)
    rate: np.ndarray  # unit × slot: chance that one of the unit's respondents rates it
    quality: np.ndarray  # latent service quality q, unit × quarter (every unit may provide)
    service_index: np.ndarray  # its true index, 0–100, unit × quarter
    received: np.ndarray  # true internal service received, 0–100, unit × quarter
    received_mean: float
    received_sd: float  # across customer-facing unit-waves
    standardized: np.ndarray  # received service in SDs, unit × quarter
    trait: np.ndarray  # the confounding unit trait, SD units
    gamma: float  # SD of latent engagement per SD of received service
    index_points: float  # engagement index points per SD of latent engagement
    nps_per_logit: float  # the average NPS points per logit of satisfaction (A)
    direct_logit: float  # direct effect on satisfaction, logits per SD of received service
    brand_logit: float  # brand_promise logits per SD of true staff brand alignment
    brand_unit: np.ndarray  # unit part of brand_promise, logits
    brand_specific: np.ndarray  # unit-specific part of brand alignment, when not surveyed
    rng_ratings: np.random.Generator
    rng_comm: np.random.Generator
    rng_brand: np.random.Generator


def _chain_streams(d: StudyDesign) -> list[np.random.Generator]:
    """The chain's five streams: network, quality, ratings, communication effort, brand."""
    root = np.random.SeedSequence(d.seed, spawn_key=(CHAIN_STREAM,))
    return [np.random.default_rng(s) for s in root.spawn(5)]


def service_index(quality: np.ndarray) -> np.ndarray:
    """A provider's true internal service index (0–100) at latent service quality ``quality``.

    Parameters
    ----------
    quality : array_like
        Latent quality q, in SDs across providers.

    Returns
    -------
    ndarray
        The expected 0–100 point-of-connection index of a rater drawn from the whole
        organisation: ``25 Σ_k Φ((λ L q − c_k) / sqrt(1 − λ² L²))``, with λ
        (``SERVICE_AGREEMENT``) the rating's loading on q, L (``ITEM_LOADING``) each item's
        loading on the rating, and ``c_k`` the probit cut points of the 1–5 answers. Exact
        for the generator's model: an item's latent value given q is normal with mean λ L q and
        variance 1 − λ² L² (the halo and the rater's own noise take the rest of the rating's
        unit variance), so each answer exceeds ``k`` with probability Φ(...).
    """
    cuts = _cutpoints(FIVE_POINT_BASE, "probit")
    m = SERVICE_AGREEMENT * ITEM_LOADING
    q = np.asarray(quality, dtype=float)[..., None]
    return 25 * ndtr((m * q - cuts) / np.sqrt(1 - m**2)).sum(axis=-1)


def _average_slope(index: Callable[[np.ndarray], np.ndarray]) -> float:
    """Average derivative of ``index(x)`` over x ~ N(0, 1) (Gauss–Hermite, central differences).

    By Stein's lemma it is also the population least-squares slope of the index on x.
    """
    h = 1e-4
    return float((((index(_GH_NODES + h) - index(_GH_NODES - h)) / (2 * h)) * _GH_WEIGHTS).sum())


def _brand_promise_index(alignment: np.ndarray, coefficient: float) -> np.ndarray:
    """Expected ``brand_promise`` index (0–100) at true staff brand alignment ``alignment``.

    The answer is ordinal logistic in ``coefficient × alignment + v`` with v normal (the unit's
    and the customer's own parts), so ``E[index] = 25 Σ_k E_v[expit(ζ − c_k)]``.
    """
    cuts = _cutpoints(FIVE_POINT_BASE, "logit")
    spread = np.sqrt(BRAND_UNIT_SD_LOGIT**2 + (BRAND_CUSTOMER_LOADING * CUSTOMER_SD_LOGIT) ** 2)
    zeta = coefficient * np.asarray(alignment, dtype=float)[..., None] + spread * _GH_NODES
    inner = expit(zeta[..., None] - cuts).sum(axis=-1)
    return 25 * (inner * _GH_WEIGHTS).sum(axis=-1)


def _brand_coefficient(points: float) -> float:
    """The logit coefficient that gives ``points`` brand-promise index points per SD (bisection)."""
    if points == 0:
        return 0.0
    low, high = 0.0, 5.0
    for _ in range(80):
        mid = (low + high) / 2
        if _average_slope(lambda x, c=mid: _brand_promise_index(x, c)) < abs(points):
            low = mid
        else:
            high = mid
    return float(np.sign(points) * (low + high) / 2)


def _communication_effort_index(z: np.ndarray, icc: float) -> np.ndarray:
    """Expected ``comm_effort`` index (0–100 on 1–7) of a unit at latent engagement ``z``.

    The item's latent value given z is normal with mean ``m z`` and variance ``1 − m²``,
    ``m = 0.9 r sqrt(icc)`` (single-item loading 0.9, correlation r with the engagement factor),
    so ``E[index] = (100 / 6) Σ_k Φ((m z − c_k) / sqrt(1 − m²))``.
    """
    cuts = _cutpoints(SEVEN_POINT_BASE, "probit")
    m = 0.9 * SCALE_CORRELATION["communication_effort"] * np.sqrt(icc)
    x = np.asarray(z, dtype=float)[..., None]
    return 100 / 6 * ndtr((m * x - cuts) / np.sqrt(1 - m**2)).sum(axis=-1)


def _draw_chain(d: StudyDesign, org: _Organisation, instrument: Instrument) -> _Chain:
    """Draw who depends on whom and each provider's quality; move engagement and sentiment.

    Each unit depends on ``providers_per_unit`` other units, drawn without replacement with
    weights: back-office teams 1, customer-facing units ``CUSTOMER_FACING_PROVIDER_WEIGHT``,
    twice as much in the unit's own region, and, with ``chain_confounding``, a tilt
    ``exp(strength × trait[u] × a[p])`` toward providers of stable good quality ``a`` for units
    with a high trait (Gumbel top-k sampling, Plackett–Luce). A provider's quality is
    ``q = sqrt(.6) a + sqrt(.4) w`` (w AR(1), phi = 0.5), its true index :func:`service_index`.
    The service a unit receives is its providers' true indices weighted by the expected share
    of its raters each gets (the contract's definition, with the rater counts at their
    expectation; true quality has no rater of its own to leave out). Standardized across
    customer-facing unit-waves to S, it enters latent engagement as
    ``z = sqrt(1 − γ²) z_own + γ S + region + reverse`` (so within-region SD stays 1) and unit
    satisfaction as ``direct × S + confounding × trait``.
    """
    rng_network, rng_quality, rng_ratings, rng_comm, rng_brand = _chain_streams(d)
    n, n_periods = org.z.shape
    k = max(0, min(d.providers_per_unit, n - 1))

    a = rng_quality.standard_normal(n)
    w = np.empty((n, n_periods))
    w[:, 0] = rng_quality.standard_normal(n)
    for t in range(1, n_periods):
        w[:, t] = 0.5 * w[:, t - 1] + np.sqrt(0.75) * rng_quality.standard_normal(n)
    quality = np.sqrt(SERVICE_PERSISTENCE) * a[:, None] + np.sqrt(1 - SERVICE_PERSISTENCE) * w
    index = service_index(quality)

    trait = rng_network.standard_normal(n)
    gumbel = rng_network.gumbel(size=(n, n))
    rate = rng_network.uniform(*SERVICE_RATING_RATE, size=(n, k))
    region = org.units["region"].to_numpy()
    weight = np.where(org.customer_facing, CUSTOMER_FACING_PROVIDER_WEIGHT, 1.0)[None, :]
    weight = weight * np.where(region[:, None] == region[None, :], SAME_REGION_PROVIDER_WEIGHT, 1)
    with np.errstate(divide="ignore"):
        keys = np.log(weight) + d.chain_confounding_strength * trait[:, None] * a[None, :]
    np.fill_diagonal(keys, -np.inf)  # a unit does not serve itself
    providers = np.sort(np.argsort(-(keys + gumbel), axis=1, kind="stable")[:, :k], axis=1)

    share = rate / rate.sum(axis=1, keepdims=True) if k else rate
    received = np.einsum("uj,ujt->ut", share, index[providers]) if k else np.zeros((n, n_periods))
    facing = received[org.customer_facing, 1:]
    mean = float(facing.mean()) if facing.size else 0.0
    sd = float(facing.std()) if facing.size else 0.0
    standardized = (received - mean) / sd if sd > 0 else np.zeros_like(received)

    index_points = _index_points_per_sd(d, instrument)
    gamma = d.engagement_per_service_sd / index_points
    if abs(gamma) >= 1:
        raise ValueError(
            f"engagement_per_service_sd {d.engagement_per_service_sd} is at least the "
            f"engagement index points of one SD of latent engagement ({index_points:.2f})"
        )
    beta = org.beta
    nps_cuts = org.nps_cuts
    if beta:
        per_logit = _nps_slope(beta, CUSTOMER_SD_LOGIT, nps_cuts) / beta
    else:
        per_logit = _points_per_logit(CUSTOMER_SD_LOGIT, nps_cuts)
    direct = d.nps_direct_per_service_sd / per_logit
    confounding = d.chain_confounding_nps / per_logit
    z = org.z + (np.sqrt(1 - gamma**2) - 1) * org.z_own + gamma * standardized
    sentiment = org.unit_sentiment + direct * standardized + confounding * trait[:, None]
    moved = replace(org, z=z, unit_sentiment=sentiment)

    brand_unit = BRAND_UNIT_SD_LOGIT * rng_brand.standard_normal(n)
    brand_specific = rng_brand.standard_normal(n)
    return _Chain(
        moved, providers, rate, quality, index, received, mean, sd, standardized, trait,
        float(gamma), index_points, float(per_logit), float(direct),
        _brand_coefficient(d.brand_promise_per_sd), brand_unit, brand_specific,
        rng_ratings, rng_comm, rng_brand,
    )  # fmt: skip


def _respondents(record: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The survey's respondents in row order: unit numbers, latent engagement, quarter."""
    units = [u for u, _ in record["waves"]]
    return (
        np.concatenate(units) if units else np.zeros(0, int),
        np.concatenate([g for _, g in record["waves"]]) if units else np.zeros(0),
        np.repeat(np.arange(1, len(units) + 1), [len(u) for u in units]),
    )


def _with_communication_effort(
    d: StudyDesign, chain: _Chain, instrument: Instrument, survey: pd.DataFrame, record: dict
) -> pd.DataFrame:
    """The survey with ``comm_effort`` (1–7) added, drawn as the other scales are.

    The respondent's latent is ``r × engagement factor + sqrt(1 − r²) × specific`` (r =
    ``SCALE_CORRELATION["communication_effort"]``, the specific part with its own unit share
    ``engagement_icc``), the answer ``0.9 × latent + noise`` cut at the 1–7 base shares, 2%
    skipped. An instrument that already measures ``communication_effort`` keeps its own.
    """
    if any(s.name == "communication_effort" for s in instrument.scales):
        return survey
    rng, icc = chain.rng_comm, d.engagement_icc
    unit, general, _ = _respondents(record)
    r = SCALE_CORRELATION["communication_effort"]
    specific_unit = rng.standard_normal(len(chain.received))
    m = len(unit)
    specific = np.sqrt(icc) * specific_unit[unit] + np.sqrt(1 - icc) * rng.standard_normal(m)
    latent = r * general + np.sqrt(1 - r**2) * specific
    value = 0.9 * latent + np.sqrt(1 - 0.9**2) * rng.standard_normal(m)
    answer = _ordinal(value, _cutpoints(SEVEN_POINT_BASE, "probit"), 1).astype(float)
    answer[rng.random(m) < ITEM_SKIP_RATE] = np.nan
    return survey.assign(comm_effort=pd.array(answer, dtype="Int64"))


def _internal_service_table(
    chain: _Chain, org: _Organisation, survey: pd.DataFrame, record: dict
) -> pd.DataFrame:
    """Each respondent's ratings of the teams their unit depends on (contract v2).

    A respondent of unit u rates provider p with chance ``rate[u, p]``. The rating's latent is
    ``λ q[p, t] + h e + sqrt(1 − λ² − h²) ε``: λ = ``SERVICE_AGREEMENT``, and the halo ``h``
    (``SERVICE_HALO``) on the rater's own latent engagement ``e``, which is why the contract
    leaves a unit's own raters out of the service it receives. Each point of connection is
    ``L × latent + noise`` cut at the 1–5 base shares, 2% skipped (never all six); internal
    NPS is ``0.9 × latent + noise`` cut at the eNPS base shares, 10% skipped. Rows are ordered
    as the survey's, then by provider.
    """
    rng = chain.rng_ratings
    unit, general, period = _respondents(record)
    k = chain.providers.shape[1]
    rated = rng.random((len(unit), k)) < chain.rate[unit]
    row, slot = np.nonzero(rated)
    provider = chain.providers[unit[row], slot]
    m = len(row)
    rest = np.sqrt(1 - SERVICE_AGREEMENT**2 - SERVICE_HALO**2)
    latent = (
        SERVICE_AGREEMENT * chain.quality[provider, period[row]]
        + SERVICE_HALO * general[row]
        + rest * rng.standard_normal(m)
    )
    cuts = _cutpoints(FIVE_POINT_BASE, "probit")
    points = np.column_stack(
        [
            _ordinal(
                ITEM_LOADING * latent + np.sqrt(1 - ITEM_LOADING**2) * rng.standard_normal(m),
                cuts,
                1,
            )
            for _ in POINTS_OF_CONNECTION
        ]
    ).astype(float)
    skipped = rng.random((m, len(POINTS_OF_CONNECTION))) < ITEM_SKIP_RATE
    skipped[skipped.all(axis=1), 0] = False  # a rating answers at least one point
    points[skipped] = np.nan
    enps = _ordinal(
        0.9 * latent + np.sqrt(1 - 0.9**2) * rng.standard_normal(m),
        _cutpoints(ENPS_BASE, "probit"),
        0,
    ).astype(float)
    enps[rng.random(m) < INTERNAL_NPS_SKIP_RATE] = np.nan
    return pd.DataFrame(
        {
            "respondent_id": survey["respondent_id"].to_numpy()[row],
            "rater_unit_id": org.unit_ids[unit[row]],
            "provider_unit_id": org.unit_ids[provider],
            "wave": survey["wave"].to_numpy()[row],
            **{
                item: pd.array(points[:, i], dtype="Int64")
                for i, item in enumerate(POINTS_OF_CONNECTION)
            },
            "internal_nps": pd.array(enps, dtype="Int64"),
        }
    )


def _brand_alignment(chain: _Chain, org: _Organisation, instrument: Instrument, record: dict):
    """True staff brand alignment per unit and quarter, in SDs across units (1 when z's is 1).

    The surveyed scale's unit part is ``sqrt(icc) (r z + sqrt(1 − r²) specific)``; this is the
    bracket, with the survey's own unit-specific draw when the instrument has the scale.
    """
    r = SCALE_CORRELATION["brand_alignment"]
    specific = record["specific"].get("brand_alignment", chain.brand_specific)
    return r * org.z + np.sqrt(1 - r**2) * specific[:, None]


def _brand_answers(chain: _Chain, org: _Organisation, instrument: Instrument, record: dict):
    """The function that draws ``brand_promise`` (1–5) for customer answers.

    ``ζ = ξ B[u, k] + unit part + BRAND_CUSTOMER_LOADING × customer effect + logistic noise``,
    ordinal logistic at the 1–5 base shares: B is the unit's true staff brand alignment in the
    quarter of the answer (the wave before it), ξ set so that the brand-promise index moves
    ``brand_promise_per_sd`` points per SD of B; half the answers skip the question.
    """
    alignment = _brand_alignment(chain, org, instrument, record)
    cuts = _cutpoints(FIVE_POINT_BASE, "logit")
    rng = chain.rng_brand

    def draw(unit: np.ndarray, period: np.ndarray, customer: np.ndarray) -> np.ndarray:
        zeta = (
            chain.brand_logit * alignment[unit, period]
            + chain.brand_unit[unit]
            + BRAND_CUSTOMER_LOADING * customer
        )
        answer = 1 + _ordinal_logistic(zeta, cuts, rng).astype(float)
        answer[rng.random(len(unit)) < BRAND_PROMISE_SKIP_RATE] = np.nan
        return answer

    return draw


def _unit_waves(
    org: _Organisation, chain: _Chain | None, instrument: Instrument, record: dict | None
) -> pd.DataFrame:
    """The hidden unit-wave values of ``Study.latent["unit_waves"]``."""
    n, n_waves = len(org.unit_ids), len(org.waves)
    frame = pd.DataFrame(
        {
            "unit_id": np.repeat(org.unit_ids, n_waves),
            "wave": np.tile(np.asarray(org.waves, dtype="datetime64[ns]"), n),
            "customer_facing": np.repeat(org.customer_facing, n_waves),
            "engagement_latent": org.z[:, 1:].ravel(),
        }
    )
    if chain is not None:
        alignment = _brand_alignment(chain, org, instrument, record)
        frame["received_service"] = chain.received[:, 1:].ravel()
        frame["received_service_sd"] = chain.standardized[:, 1:].ravel()
        frame["brand_alignment_latent"] = alignment[:, 1:].ravel()
        frame["confounding_trait"] = np.repeat(chain.trait, n_waves)
    return frame


def _provider_waves(org: _Organisation, chain: _Chain) -> pd.DataFrame:
    """Every unit's true service quality and index per wave (``Study.latent``)."""
    n, n_waves = len(org.unit_ids), len(org.waves)
    return pd.DataFrame(
        {
            "unit_id": np.repeat(org.unit_ids, n_waves),
            "wave": np.tile(np.asarray(org.waves, dtype="datetime64[ns]"), n),
            "service_quality_latent": chain.quality[:, 1:].ravel(),
            "service_index": chain.service_index[:, 1:].ravel(),
        }
    )


def _with_chain_truth(truth: dict, chain: _Chain, tables: dict[str, pd.DataFrame]) -> dict:
    """``truth.json`` with the chain's estimands, their parts, and what they rest on.

    Every value is analytic on the generator's model, with the conventions of the existing
    effects (average derivatives over a standard normal driver, Stein's lemma):

    * ``engagement_on_internal_service`` = γ × ``engagement_index_points_per_sd_latent``, which
      is ``engagement_per_service_sd`` by construction (γ is solved from it);
    * ``nps_on_internal_service`` (total) = γ × ``nps_points_per_sd_latent_engagement`` +
      ``nps_direct_per_service_sd``: both paths move the same logit of satisfaction, by
      β γ and by the direct coefficient, and the direct one was converted to points with the
      same average slope A that turns β into the NPS effect;
    * ``nps_via_engagement_share`` = the first term over the total. It is exact pointwise: at
      every value of satisfaction the derivative of expected NPS splits between the paths in
      the ratio of their logit coefficients. ``None`` when the total is 0.

    The per-SD values are ``None`` when the received service does not vary (no providers).
    """
    d = truth["design"]
    effects = truth["effects"]
    via = chain.gamma * effects["nps_points_per_sd_latent_engagement"]
    total = via + d["nps_direct_per_service_sd"]
    varies = chain.received_sd > 0  # else no unit receives more service than another
    service = tables["internal_service"]
    facing = chain.organisation.customer_facing
    trait = np.repeat(chain.trait[facing], chain.standardized.shape[1] - 1)
    received = chain.standardized[facing, 1:].ravel()
    return truth | {
        "counts": truth["counts"]
        | {
            "internal_service_ratings": len(service),
            "internal_service_raters": int(service["respondent_id"].nunique()),
            "internal_service_providers": int(service["provider_unit_id"].nunique()),
            "brand_promise_answers": int(tables["customer_nps"]["brand_promise"].notna().sum()),
        },
        "effects": effects
        | {
            "engagement_on_internal_service": chain.gamma * chain.index_points if varies else None,
            "nps_on_internal_service": float(total) if varies else None,
            "nps_on_internal_service_via_engagement": float(via) if varies else None,
            "nps_on_internal_service_direct": (
                float(d["nps_direct_per_service_sd"]) if varies else None
            ),
            "nps_via_engagement_share": float(via / total) if total and varies else None,
            "engagement_sd_latent_per_sd_internal_service": chain.gamma,
            "nps_points_per_sd_chain_confounder": float(d["chain_confounding_nps"]),
            "brand_promise_on_brand_alignment": _average_slope(
                lambda x: _brand_promise_index(x, chain.brand_logit)
            ),
            "communication_effort_correlation_with_engagement": SCALE_CORRELATION[
                "communication_effort"
            ],
            "communication_effort_index_points_per_sd_latent": _average_slope(
                lambda x: _communication_effort_index(x, d["engagement_icc"])
            ),
        },
        "internal_service": {
            "received_service_mean_points": chain.received_mean,
            "received_service_sd_points": chain.received_sd,
            "service_persistence": SERVICE_PERSISTENCE,
            "rater_agreement_loading": SERVICE_AGREEMENT,
            "rater_halo_loading": SERVICE_HALO,
            "nps_points_per_logit_average": chain.nps_per_logit,
            "nps_direct_logit_per_sd_internal_service": chain.direct_logit,
            "brand_promise_logit_per_sd_brand_alignment": chain.brand_logit,
            "brand_unit_sd_logit": BRAND_UNIT_SD_LOGIT,
            "confounder_received_service_correlation": (
                float(np.corrcoef(trait, received)[0, 1]) if trait.std() and received.std() else 0.0
            ),
            "notes": (
                "Internal service received is the contract's index (0-100) of a unit's "
                "providers' true quality, weighted by the expected share of the unit's raters "
                "each gets; 'per SD' is per SD of it across customer-facing unit-waves of this "
                "study (received_service_sd_points). Engagement at wave t and NPS in the "
                "quarter after wave t respond to the service received at wave t. The chain's "
                "estimands are exact on the model's scales, as the effects above are. Brand "
                "promise: index points of customers' brand_promise (0-100) in the quarter "
                "after a wave per SD of the unit's true staff brand alignment at that wave."
            ),
        },
    }


def _index_points_per_sd(d: StudyDesign, instrument: Instrument) -> float:
    """Engagement-index points (0–100) per SD of latent unit engagement, by simulation.

    The index is nonlinear in z only through the ordinal cuts; the slope is estimated on a fixed
    large sample (seeded independently of the study) by least squares.
    """
    rng = np.random.default_rng(12345)
    scale = instrument.scale("engagement")
    k = 200_000
    z = rng.standard_normal(k)
    general = np.sqrt(d.engagement_icc) * z + np.sqrt(1 - d.engagement_icc) * rng.standard_normal(k)
    cuts = _cutpoints(
        FIVE_POINT_BASE
        if scale.high - scale.low == 4
        else tuple(np.full(scale.high - scale.low + 1, 1.0)),
        "probit",
    )
    items = [
        _ordinal(
            ITEM_LOADING * general + np.sqrt(1 - ITEM_LOADING**2) * rng.standard_normal(k),
            cuts,
            scale.low,
        )
        for _ in scale.items
    ]
    index = (np.mean(items, axis=0) - scale.low) / (scale.high - scale.low) * 100
    return float(np.polyfit(z, index, 1)[0])


def _truth(
    d: StudyDesign,
    latent: _Latent,
    waves: pd.DatetimeIndex,
    as_of: pd.Timestamp,
    counts: dict[str, int],
    instrument: Instrument,
) -> dict:
    """What ``truth.json`` holds: the design, the counts, and every effect on the kit's scales."""
    beta, points_per_logit = latent.beta, latent.points_per_logit
    nps_cuts = _cutpoints(CUSTOMER_NPS_BASE, "logit")
    total_log_hr = float(np.log(d.churn_hazard_ratio))
    delta, lam = _churn_paths(d, beta)
    mediated = float(lam * beta)
    sentiment_points_sd = float(latent.sentiment_sd * points_per_logit)
    return {
        "generator": "analysis.data.synth",
        "design": asdict(d),
        "waves": [w.strftime("%Y-%m-%d") for w in waves],
        "as_of": as_of.strftime("%Y-%m-%d"),
        "counts": counts,
        "effects": {
            "nps_points_per_sd_latent_engagement": float(
                _nps_slope(beta, CUSTOMER_SD_LOGIT, nps_cuts)
            ),
            "nps_logit_per_sd_latent_engagement": beta,
            "nps_quartile_gap_points": float(
                _nps_slope(beta, CUSTOMER_SD_LOGIT, nps_cuts) * 2 * 1.2711
            ),
            "churn_log_hazard_ratio_per_sd": total_log_hr,
            "churn_hazard_ratio_per_sd": float(np.exp(total_log_hr)),
            "churn_log_hazard_ratio_direct": float(delta),
            "churn_log_hazard_ratio_per_logit_sentiment": float(lam),
            "churn_log_hazard_ratio_through_sentiment": mediated,
            "nps_mediated_share": mediated / total_log_hr if total_log_hr else None,
            "reverse_engagement_sd_per_sd_prior_sentiment": d.reverse_strength,
            "reverse_engagement_sd_per_10_nps_points": (
                10 * d.reverse_strength / sentiment_points_sd if sentiment_points_sd else 0.0
            ),
            "engagement_index_points_per_sd_latent": _index_points_per_sd(d, instrument),
        },
        "nuisance": {
            "nps_points_per_logit": points_per_logit,
            "unit_sd_logit": float(latent.unit_sd),
            "sentiment_sd_logit": float(latent.sentiment_sd),
            "customer_sd_logit": CUSTOMER_SD_LOGIT,
            "region_engagement_sd_units": dict(
                zip(REGIONS, (float(v) + 0.0 for v in latent.region_engagement), strict=True)
            ),
            "region_nps_logit": dict(
                zip(REGIONS, map(float, latent.region_nps_logit), strict=True)
            ),
        },
        "notes": (
            "Effects are per SD of latent unit engagement z (within-region SD 1). The observed "
            "engagement index measures z with sampling error that shrinks with unit size; "
            "'engagement_index_points_per_sd_latent' converts between the two. Quartile gap: "
            "quartile means of a standard normal are ±1.2711 SD."
        ),
    }


def truth_json(study: Study) -> str:
    """The study's truth as the text of ``truth.json``: sorted keys, indented, one final newline."""
    return json.dumps(study.truth, indent=2, sort_keys=True) + "\n"


def synthetic_note(study: Study) -> str:
    """The text of the marker ``SYNTHETIC.md`` that says a dataset folder was generated.

    ``analysis.data.load.load_dataset`` sets ``Dataset.synthetic`` from the file's presence
    alone, and the report then shows a banner on every page; the text is for a person who
    opens the folder.

    Parameters
    ----------
    study : Study
        The generated study.

    Returns
    -------
    str
        Markdown naming the generator, the seed, the switches and the counts; no date or
        version, so the same design writes the same bytes.
    """
    design = study.truth["design"]
    counts = study.truth["counts"]
    # .get: the chain's switches are absent from the design of a truth.json written before them
    names = ("no_effect", "confounding", "reverse_causation", "no_chain", "chain_confounding")
    switches = [name for name in names if design.get(name)]
    if design.get("internal_service"):
        switches.insert(0, "internal_service")
    return (
        "# This dataset is synthetic\n\n"
        "Every unit, staff answer, customer and customer answer in this folder was generated by "
        f"`python -m analysis synth` (seed {design['seed']}"
        f"{', ' + ', '.join(switches) if switches else ''}): "
        f"{counts['units']:,} units, {counts['employee_responses']:,} staff survey answers, "
        f"{counts['customers']:,} customers and {counts['nps_responses']:,} customer NPS "
        'answers. Unit names such as "Store Leeds 12" are made up; no person, unit or '
        "customer is real. The effects the data were drawn from are in `truth.json`.\n\n"
        "Every page of a report on this folder carries a banner that says the data are "
        "synthetic, because this file is here. Do not copy it into a folder of real data; "
        "to regenerate the folder, run `make data` or `python -m analysis synth --out DIR`.\n"
    )


def dataset_files(study: Study) -> dict[str, str]:
    """The files a generated dataset holds beside its tables: ``truth.json`` and the marker.

    Parameters
    ----------
    study : Study
        The generated study.

    Returns
    -------
    dict of str to str
        ``{"truth.json": truth_json(study), SYNTHETIC_FILE: synthetic_note(study)}``, as
        ``analysis.data.load.write_tables`` takes them in ``extra_files``.
    """
    return {"truth.json": truth_json(study), SYNTHETIC_FILE: synthetic_note(study)}


def write_study(study: Study, directory: Path | str, file_format: str = "csv") -> Path:
    """Write a generated study as a dataset folder: the tables, ``truth.json`` and the marker.

    The one way a generated study becomes a folder (``synth``, ``make data``, the tests), so
    that every such folder says it is synthetic (``SYNTHETIC.md``, read back as
    ``analysis.data.load.Dataset.synthetic``).

    Parameters
    ----------
    study : Study
        The generated study.
    directory : Path or str
        New, empty, or a dataset folder the kit wrote before
        (``analysis.data.folders.check_replaceable``); written all or nothing.
    file_format : {"csv", "parquet"}
        How the tables are stored.

    Returns
    -------
    Path
        The folder written.
    """
    return write_tables(
        study.tables,
        directory,
        file_format=file_format,
        extra_files=dataset_files(study),
        kind="dataset",
    )


# --------------------------------------------------------------------------------------------
# Studies too large to hold: customers written block by block

#: Customers per random block of :func:`write_study_chunked`: block ``j`` (customers
#: ``j * CUSTOMER_BLOCK`` to ``(j + 1) * CUSTOMER_BLOCK - 1``) draws from its own stream,
#: so the rows do not depend on how many blocks are held at once.
CUSTOMER_BLOCK = 4_096


def write_study_chunked(
    design: StudyDesign,
    directory: Path | str,
    *,
    chunk_customers: int = 65_536,
    instrument: Instrument = DEFAULT_INSTRUMENT,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a study too large for memory as a Parquet dataset folder, customers in chunks.

    The same model and the same ``truth.json`` effects as :func:`generate` on ``design``: the
    units, their latent engagement and sentiment paths, the staff answers and the customers per
    unit are drawn from the same streams, so ``units``, ``employee_survey`` and ``headcount``
    are equal to ``generate``'s row for row and the number of customers of each unit is the
    same. Only the customers' own draws (joining, churn, answers) come from other streams:
    customers are independent given their unit's latent path, so each block of
    :data:`CUSTOMER_BLOCK` customers is drawn from its own generator, seeded by the
    ``SeedSequence`` of the design's seed with spawn key ``(6, block)`` (``generate`` uses the
    keys ``(0,)`` to ``(5,)``). The customers and answers therefore follow the same
    distribution as ``generate``'s, not the same draws; ``truth.json``'s counts are those of
    the files written.

    ``customers.parquet`` and ``customer_nps.parquet`` are appended one row group per chunk
    (``pyarrow.parquet.ParquetWriter``), and ``employee_survey.parquet`` one row group per
    wave, so peak memory grows with the chunk and the number of units, not with the number of
    customers or answers. Answers are ordered by customer, then date (``generate`` sorts all
    of them by date, which would need them all at once), and numbered in that order. The
    column types, and the pandas metadata, are those ``write_study(..., "parquet")`` writes.

    Reproducible: the same design writes the same rows whatever ``chunk_customers`` is, and
    the same bytes for the same ``chunk_customers`` (only the row-group boundaries of the two
    customer tables depend on it).

    Parameters
    ----------
    design : StudyDesign
        The generator's settings; its switches are applied first (:meth:`StudyDesign.effective`).
    directory : Path or str
        New, empty, or a dataset folder the kit wrote before
        (``analysis.data.folders.check_replaceable``); written all or nothing.
    chunk_customers : int
        Customers generated and written at a time, rounded up to whole blocks.
    instrument : Instrument
        The employee survey's scales and items.
    progress : callable, optional
        Called as ``progress(customers_written, customers)`` after each chunk.

    Returns
    -------
    Path
        The folder written, with ``truth.json`` and ``SYNTHETIC.md`` as :func:`write_study`
        writes them.

    Raises
    ------
    ValueError
        If ``design.internal_service`` is set: the chain is generated only by :func:`generate`.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from analysis.data import folders

    if design.internal_service:
        raise ValueError(
            "write_study_chunked does not generate the internal-service chain "
            "(StudyDesign.internal_service): its ratings need every respondent at once; "
            "use generate and write_study, or a design without it"
        )
    d = design.effective()
    rng_units, rng_engagement, rng_staff, rng_items, rng_customers, _ = _streams(d)
    org = _organisation(d, rng_units, rng_engagement)
    # the customers of unit u are numbers first_customer[u] to first_customer[u + 1] - 1
    first_customer = np.concatenate([[0], np.cumsum(_customer_counts(d, org, rng_customers))])
    n_customers = int(first_customer[-1])
    n_blocks = -(-n_customers // CUSTOMER_BLOCK)
    blocks_per_chunk = max(1, -(-chunk_customers // CUSTOMER_BLOCK))
    directory = folders.check_replaceable(directory, "dataset")
    with folders.writing(directory.parent):
        staging = folders.new_staging(directory)
        try:
            pq.write_table(_arrow(org.units), staging / "units.parquet")
            survey = _write_survey(d, instrument, org, rng_staff, rng_items, staging)
            counts = {
                "units": len(org.units),
                "customer_facing_units": int(org.units["customer_facing"].sum()),
                **survey["counts"],
                "customers": n_customers,
                "customers_before_first_wave": 0,
                "churned": 0,
                "nps_responses": 0,
            }
            pq.write_table(_arrow(_headcount(org, survey["waves"])), staging / "headcount.parquet")
            empty = _customer_block(d, org, first_customer, 0, 0, stop=0)
            with (
                pq.ParquetWriter(staging / "customers.parquet", empty[0].schema) as customers,
                pq.ParquetWriter(staging / "customer_nps.parquet", empty[1].schema) as answers,
            ):
                for chunk_start in range(0, n_blocks, blocks_per_chunk):
                    customer_parts, answer_parts = [], []
                    for block in range(chunk_start, min(n_blocks, chunk_start + blocks_per_chunk)):
                        rows, block_answers, block_counts = _customer_block(
                            d, org, first_customer, block, counts["nps_responses"]
                        )
                        customer_parts.append(rows)
                        answer_parts.append(block_answers)
                        for name, value in block_counts.items():
                            counts[name] += value
                    for writer, parts in ((customers, customer_parts), (answers, answer_parts)):
                        table = pa.concat_tables(parts)
                        writer.write_table(table, row_group_size=max(1, table.num_rows))
                    del customer_parts, answer_parts, table
                    if progress is not None:
                        done = min(n_customers, (chunk_start + blocks_per_chunk) * CUSTOMER_BLOCK)
                        progress(done, n_customers)
            truth = _truth(d, org.latent, org.waves, org.as_of, counts, instrument)
            names = [f"{name}.parquet" for name in _CHUNKED_TABLES]
            for name, content in dataset_files(Study({}, truth)).items():
                (staging / name).write_text(content, encoding="utf-8")
                names.append(name)
            folders.write_marker(staging, "dataset", names)
            folders.replace_folder(staging, directory)
        except BaseException:
            folders.discard(staging)
            raise
    return directory


_CHUNKED_TABLES = ("units", "employee_survey", "customer_nps", "customers", "headcount")


def _arrow(frame: pd.DataFrame):
    """A frame as the Arrow table ``DataFrame.to_parquet(index=False)`` would write."""
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def _write_survey(
    d: StudyDesign,
    instrument: Instrument,
    org: _Organisation,
    rng_staff: np.random.Generator,
    rng_items: np.random.Generator,
    staging: Path,
) -> dict:
    """Write ``employee_survey.parquet`` wave by wave; its counts and the waves with answers."""
    import pyarrow.parquet as pq

    writer = None
    staff, waves, responses = [], [], 0
    try:
        for frame, respondents in _employee_survey_waves(d, instrument, org, rng_staff, rng_items):
            table = _arrow(frame)
            if writer is None:
                writer = pq.ParquetWriter(staging / "employee_survey.parquet", table.schema)
            writer.write_table(table.cast(writer.schema), row_group_size=max(1, len(frame)))
            staff.append(respondents)
            responses += len(frame)
            if len(frame):
                waves.append(frame["wave"].iloc[0])
    finally:
        if writer is not None:
            writer.close()
    employees = len(np.unique(np.concatenate(staff))) if staff else 0
    return {
        "counts": {"employees": employees, "employee_responses": responses},
        "waves": pd.DatetimeIndex(waves),
    }


def _customer_block(
    d: StudyDesign,
    org: _Organisation,
    first_customer: np.ndarray,
    block: int,
    answers_before: int,
    stop: int | None = None,
) -> tuple:
    """Customers of block ``block`` and their answers, as Arrow tables, and their counts.

    Customer numbers, ids (``C0000001``) and answer ids (``N00000001``, continuing after
    ``answers_before``) are those ``generate`` would give in the same order; ``stop`` cuts the
    block short (``stop=0`` gives the empty tables, for their schema).
    """
    import pyarrow as pa

    n_customers = int(first_customer[-1])
    start = block * CUSTOMER_BLOCK
    stop = min(n_customers, start + CUSTOMER_BLOCK) if stop is None else stop
    number = np.arange(start, max(start, stop))
    unit = np.searchsorted(first_customer, number, side="right") - 1
    seeds = np.random.SeedSequence(d.seed, spawn_key=(6, block)).spawn(2)
    rng, rng_nps = (np.random.default_rng(s) for s in seeds)
    drawn = _draw_customers(d, org, unit, rng, rng_nps)
    order = np.lexsort((drawn.responded_on, drawn.who))
    who = drawn.who[order]
    unit_ids = pa.array(org.unit_ids, pa.large_string())
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype="str"),
            "unit_id": pd.Series([], dtype="str"),
            "since": pd.to_datetime(drawn.since[:0]),
            "churned_on": pd.to_datetime(drawn.churned_on[:0]),
        }
    )
    answers = pd.DataFrame(
        {
            "response_id": pd.Series([], dtype="str"),
            "customer_id": pd.Series([], dtype="str"),
            "unit_id": pd.Series([], dtype="str"),
            "responded_on": pd.to_datetime(drawn.responded_on[:0]),
            "likelihood_to_recommend": drawn.score[:0],
            "effort": pd.array([], dtype="Int64"),
        }
    )
    customer_schema = _arrow(customers).schema
    answer_schema = _arrow(answers).schema
    customer_table = pa.Table.from_arrays(
        [
            _ids("C", number + 1, 7),
            unit_ids.take(pa.array(unit)),
            pa.array(drawn.since, customer_schema.field("since").type),
            pa.array(
                drawn.churned_on,
                customer_schema.field("churned_on").type,
                mask=np.isnat(drawn.churned_on),
            ),
        ],
        schema=customer_schema,
    )
    answer_table = pa.Table.from_arrays(
        [
            _ids("N", answers_before + 1 + np.arange(len(who)), 8),
            _ids("C", number[who] + 1, 7),
            unit_ids.take(pa.array(unit[who])),
            pa.array(drawn.responded_on[order], answer_schema.field("responded_on").type),
            pa.array(drawn.score[order], pa.int64()),
            pa.array(drawn.effort[order], pa.int64(), mask=drawn.effort_missing[order]),
        ],
        schema=answer_schema,
    )
    counts = {
        "customers_before_first_wave": int((drawn.since < org.waves[0].to_datetime64()).sum()),
        "churned": int((~np.isnat(drawn.churned_on)).sum()),
        "nps_responses": len(who),
    }
    return customer_table, answer_table, counts


def _ids(prefix: str, numbers: np.ndarray, digits: int):
    """``f"{prefix}{n:0{digits}d}"`` for each number ``n``, as an Arrow string column built
    without a Python object per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.large_string()), digits, "0")
    empty = pa.scalar("", pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), text, empty)
