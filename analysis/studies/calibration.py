"""The calibration study: do our tests keep their promises on studies whose truth is known?

A simulation study in the sense of Morris, White & Crowther (2019, "Using simulation studies to
evaluate statistical methods", *Statistics in Medicine* 38(11), 2074–2102; ADEMP):

* **Aims.** Check that every main estimand rejects a true null at its nominal rate, that its 95%
  intervals cover the truth 95% of the time, how its power grows with units and waves, and how
  it behaves when customers drive engagement rather than the reverse; and compare a naive
  analysis that a spreadsheet user would run.
* **Data-generating mechanisms.** ``analysis.data.synth`` with the switches of each ``Condition``
  (no effect, no effect but regions confound, the default effects, reverse causation, and a
  grid of units × waves). Each replicate draws a fresh study from its own seed.
* **Estimands and methods.** The engine's estimands, each computed exactly as
  ``analysis.models.estimate.estimate_all`` computes it (the bootstraps for drivers and the mediated
  share are left out: they are slow and not tests of an effect), plus the naive analysis
  (``naive_nps_on_engagement``, ``naive_churn_on_engagement``).
* **Performance measures** (``summarise``), over the ``R`` replicates with an estimate:

  - rejection rate ``p̂ = #{p < α} / R``: the false-positive rate where the truth is "no effect",
    the power where there is one;
  - coverage ``#{conf_low ≤ θ ≤ conf_high} / R``;
  - bias ``mean(θ̂) − θ`` (on the log scale for ratios), empirical SE ``sd(θ̂)`` and the mean
    model SE, whose ratio shows whether the reported standard errors are honest.

  Every one carries its Monte-Carlo standard error (Morris et al., 2019, Table 6)::

      MCSE(p̂)    = √(p̂ (1 − p̂) / R)          (rates: rejection, coverage)
      MCSE(bias) = sd(θ̂) / √R

  and each rate its Wilson 95% interval (``measures.intervals.wilson_interval``), the band shown
  in the report. A rate is *calibrated* when the nominal value lies inside that band,
  *liberal* when the band lies wholly above a nominal 5% (too many false alarms) and
  *conservative* when wholly below. With ``R = 200`` the band at 5% is about ±3 points
  (1.96 · √(.05 · .95 / 200) = 0.030).

Seeds are derived from a base seed, the condition's name and the replicate number
(``replicate_seed``), so a rerun gives the same numbers and adding a condition changes no other.

Pure: ``run_study`` returns tables; ``analysis.data.results`` writes them and
``analysis.report.calibration_page`` words the page.
"""

from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import PROJECT_ROOT
from analysis.data import folders
from analysis.data.contract import nps_points
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign
from analysis.measures.intervals import wilson_interval
from analysis.models import registry
from analysis.models.tidy import TIDY_COLUMNS, tidy_row
from analysis.report.build import (
    NOTEBOOKS_DIR,
    Page,
    execute_notebook,
    page_context,
    render_page,
    staged_run,
    write_manifest,
)

DEFAULT_SEED = 20240331
DEFAULT_REPLICATES = 200
NOMINAL_ALPHA = 0.05

# The engine's estimands the study fits (``Estimand.in_study``: the bootstraps are left out),
# in the registry's order.
STUDY_ESTIMANDS = tuple(e for e in registry.ESTIMANDS if e.in_study)
ESTIMANDS = tuple(e.name for e in STUDY_ESTIMANDS)


def _fit_naive_nps(fitting: registry.Fitting) -> dict:
    return naive_nps_on_engagement(fitting.dataset, fitting.panel, fitting.parameters.confidence)


def _fit_naive_churn(fitting: registry.Fitting) -> dict:
    return naive_churn_on_engagement(
        fitting.dataset, fitting.panel, fitting.as_of, fitting.parameters.confidence
    )


#: The naive analysis a spreadsheet user would run: study-only estimands, same form as the
#: registry's, each beside the registry estimand in ``counterpart``.
NAIVE = (
    (
        registry.Estimand(
            "naive_nps_on_engagement",
            "engagement_sd",
            "Naive: customer-level OLS, same quarter",
            "The naive customer-level link between engagement and NPS",
            "Customer-level OLS of each answer's NPS score on its unit's same-quarter engagement",
            0.0,
            "difference",
            tested=True,
            in_study=True,
            needs_churn=False,
            fit=_fit_naive_nps,
        ),
        "nps_on_engagement",
    ),
    (
        registry.Estimand(
            "naive_churn_on_engagement",
            "engagement_sd",
            "Naive: customer-level logistic for churn",
            "The naive customer-level link between engagement and churn",
            "Odds ratio of having churned per SD of the unit's mean engagement",
            1.0,
            "ratio",
            tested=True,
            in_study=True,
            needs_churn=False,
            fit=_fit_naive_churn,
        ),
        "churn_hazard_on_engagement",
    ),
)
NAIVE_ESTIMANDS = tuple(e.name for e, _ in NAIVE)
RATIO_ESTIMANDS = tuple(
    e.name for e in (*STUDY_ESTIMANDS, *(n for n, _ in NAIVE)) if e.scale == "ratio"
)
# The naive counterpart of each of our estimands, for side-by-side display.
NAIVE_COUNTERPART = {e.name: ours for e, ours in NAIVE}
LABELS = {e.name: e.label for e in (*STUDY_ESTIMANDS, *(n for n, _ in NAIVE))}
REPLICATE_COLUMNS = (
    "condition",
    "replicate",
    "seed",
    *(c for c in TIDY_COLUMNS if c != "method"),
    "truth",
    "failure",
)

# The base design: big enough for cluster-robust errors (about 96 customer-facing units), small
# enough that one replicate (generate + every estimand) takes under a second on one core.
BASE_DESIGN = StudyDesign(n_units=120, n_waves=4)


@dataclass(frozen=True)
class Condition:
    """One data-generating mechanism of the study.

    ``role`` says what the rows are for: ``no_effect`` (false-positive rate; nothing has an
    effect), ``effect`` (coverage and power at the base design), ``reverse`` (bias when
    customers drive engagement) or ``power`` (one cell of the units × waves grid). Names avoid
    "null", which CSV readers take for a missing value. ``share`` scales the number
    of replicates relative to ``--replicates``; ``churn`` fits the hazard model (the expensive
    part of a replicate). ``only``, when given, names the estimands fitted (the chain's
    conditions fit the chain's estimands only: the others are studied in their own conditions),
    without the naive analysis. The role ``confounded`` shows the bias when an unmeasured unit
    trait drives both the internal service received and customer NPS.
    """

    name: str
    role: str
    design: StudyDesign
    label: str
    share: float = 1.0
    churn: bool = True
    only: tuple[str, ...] = ()

    def replicates(self, replicates: int) -> int:
        """This condition's number of replicates for a study of ``replicates`` (at least 2)."""
        return max(2, int(round(self.share * replicates)))


POWER_UNITS = (40, 80, 160)
POWER_WAVES = (3, 6)


def default_conditions(base: StudyDesign = BASE_DESIGN) -> tuple[Condition, ...]:
    """The conditions of ``make validate``.

    Null conditions get the full replicate count (their rates are the headline), the reverse
    condition half, and each cell of the power grid 0.3 of it (60 at the default 200: a power
    band of at most ±13 points, enough to read a curve). Every condition fits every estimand,
    the churn hazard included (``churn=False`` is for quick looks in tests).
    """
    conditions = [
        Condition(
            "no_effect",
            "no_effect",
            replace(base, no_effect=True),
            "No effect of engagement",
        ),
        Condition(
            "no_effect_confounded",
            "no_effect",
            replace(base, no_effect=True, confounding=True),
            "No effect, regions confound",
        ),
        Condition("effect", "effect", base, "Default effects (4 NPS points, HR 0.88)"),
        Condition(
            "reverse",
            "reverse",
            replace(base, reverse_causation=True, nps_effect=0.0, churn_hazard_ratio=1.0),
            "Reverse causation only",
            share=0.5,
        ),
    ]
    for units in POWER_UNITS:
        for waves in POWER_WAVES:
            conditions.append(
                Condition(
                    f"power_u{units}_w{waves}",
                    "power",
                    replace(base, n_units=units, n_waves=waves),
                    f"{units} units, {waves} waves",
                    share=0.3,
                )
            )
    return (*conditions, *chain_conditions(base))


#: The estimands of contract version 2 that the chain's conditions fit: the internal-service
#: chain's (``analysis.models.chain``) and the brand promise's
#: (``analysis.models.brand_alignment``), as the generator draws ``brand_promise`` with the chain.
CHAIN_ESTIMANDS = tuple(e.name for e in STUDY_ESTIMANDS if e.needs)
CHAIN_POWER_UNITS = (60, 120)
CHAIN_POWER_WAVES = (4, 8)


def chain_conditions(base: StudyDesign = BASE_DESIGN) -> tuple[Condition, ...]:
    """The internal-service chain's conditions (``analysis.data.synth``'s chain switches).

    * ``chain_none`` (no effect at all: no chain, no engagement effect, brand effect 0): the
      false-positive rate of every chain test;
    * ``chain_direct_only`` (service moves NPS directly by the default 1 point per SD, not
      engagement): engagement's link and the share through it are null, the total is not;
    * ``chain`` (the default chain: 2.5 engagement points and 2.4 NPS points per SD of service
      received, three fifths through engagement): coverage and power;
    * ``chain_confounded`` (the default chain, and a unit trait that both steers units toward
      good providers and adds 4 NPS points per SD): the between-unit estimands are biased by
      design, the within-unit one should not be;
    * a units × waves grid of the default chain (``CHAIN_POWER_UNITS`` × ``CHAIN_POWER_WAVES``).

    Each fits the chain's estimands only (``Condition.only``) and no churn model.
    """
    chain = replace(base, internal_service=True)
    kwargs = {"churn": False, "only": CHAIN_ESTIMANDS}
    conditions = [
        Condition(
            "chain_none",
            "no_effect",
            replace(chain, no_effect=True, no_chain=True, brand_promise_per_sd=0.0),
            "Internal service: no effect at all",
            **kwargs,
        ),
        Condition(
            "chain_direct_only",
            "effect",
            replace(chain, engagement_per_service_sd=0.0),
            "Internal service: direct effect on NPS only",
            **kwargs,
        ),
        Condition("chain", "effect", chain, "Internal service chain (defaults)", **kwargs),
        Condition(
            "chain_confounded",
            "confounded",
            replace(chain, chain_confounding=True),
            "Internal service chain, a unit trait confounds",
            share=0.5,
            **kwargs,
        ),
    ]
    for units in CHAIN_POWER_UNITS:
        for waves in CHAIN_POWER_WAVES:
            conditions.append(
                Condition(
                    f"chain_power_u{units}_w{waves}",
                    "power",
                    replace(chain, n_units=units, n_waves=waves),
                    f"Internal service chain, {units} units, {waves} waves",
                    share=0.3,
                    **kwargs,
                )
            )
    return tuple(conditions)


def replicate_seed(base_seed: int, condition: str, index: int) -> int:
    """The generator seed of replicate ``index`` of ``condition``: stable across runs and
    platforms (CRC-32 of the name, not Python's salted ``hash``), independent streams."""
    sequence = np.random.SeedSequence([base_seed, zlib.crc32(condition.encode()), index])
    return int(sequence.generate_state(1)[0])


# --------------------------------------------------------------------------------------------
# The naive analysis


def _quarter(dates: pd.Series) -> np.ndarray:
    return (dates.dt.year * 4 + dates.dt.quarter).to_numpy()


def _observed_index_sd(panel: pd.DataFrame) -> float:
    from analysis.models.linkage import customer_facing_rows

    return float(customer_facing_rows(panel)["engagement_index"].std())


def naive_nps_on_engagement(dataset, panel: pd.DataFrame, confidence: float = 0.95) -> dict:
    """What a spreadsheet user would run: customer answers on their unit's engagement, same quarter.

    Each answer's score (+100 promoter, 0 passive, −100 detractor; its mean is the NPS) is
    regressed by ordinary least squares on the engagement index of its unit at the survey wave
    that closes the same calendar quarter (no lag), per SD of the observed index across
    unit-waves, with no covariates and the textbook iid standard error
    ``s / √Σ(x − x̄)²`` (t with ``n − 2`` df). It ignores that answers from one unit share the
    unit's circumstances (so its SE is far too small), that engagement measured on a few staff
    is noisy (attenuation), that a same-quarter association cannot tell which came first, and
    that regions differ in both.
    """
    waves = panel[["unit_id", "wave", "engagement_index"]].dropna()
    waves = waves.assign(quarter=_quarter(waves["wave"]))[
        ["unit_id", "quarter", "engagement_index"]
    ]
    answers = dataset.customer_nps
    answers = pd.DataFrame(
        {
            "unit_id": answers["unit_id"].to_numpy(),
            "quarter": _quarter(answers["responded_on"]),
            "score": nps_points(answers["likelihood_to_recommend"].to_numpy(dtype=float)),
        }
    ).merge(waves, on=["unit_id", "quarter"], how="inner")
    x = answers["engagement_index"].to_numpy(float) / _observed_index_sd(panel)
    y = answers["score"].to_numpy(float)
    n = len(y)
    centred = x - x.mean()
    slope = float(centred @ (y - y.mean()) / (centred @ centred))
    residual = y - y.mean() - slope * centred
    se = float(np.sqrt(residual @ residual / (n - 2) / (centred @ centred)))
    return tidy_row(
        "naive_nps_on_engagement",
        "engagement_sd",
        slope,
        se,
        df=n - 2,
        confidence=confidence,
        n_obs=n,
        n_units=answers["unit_id"].nunique(),
        method="customer-level OLS of each answer's NPS score on its unit's same-quarter "
        "engagement index (per observed SD), no covariates, iid SE",
        se_method="iid",
    )


def naive_churn_on_engagement(
    dataset, panel: pd.DataFrame, as_of: pd.Timestamp, confidence: float = 0.95
) -> dict:
    """The naive churn analysis: did the customer leave, against their unit's mean engagement.

    Logistic regression of "churned by ``as_of``" on the unit's engagement index averaged over
    its waves (per SD of the observed index across unit-waves), one row per customer, no
    covariates, model-based (iid) standard errors; the odds ratio per SD is reported. It ignores
    clustering within units, time at risk and the timing of engagement relative to churn.
    """
    import statsmodels.api as sm

    mean_index = panel.groupby("unit_id")["engagement_index"].mean().dropna()
    customers = dataset.customers
    churned = customers["churned_on"].notna() & (customers["churned_on"] <= as_of)
    frame = pd.DataFrame(
        {"unit_id": customers["unit_id"].to_numpy(), "churned": churned.to_numpy(dtype=float)}
    ).merge(mean_index.rename("engagement").reset_index(), on="unit_id", how="inner")
    x = frame["engagement"].to_numpy(float) / _observed_index_sd(panel)
    fit = sm.Logit(frame["churned"].to_numpy(float), sm.add_constant(x)).fit(disp=0)
    return tidy_row(
        "naive_churn_on_engagement",
        "engagement_sd",
        float(fit.params[1]),
        float(fit.bse[1]),
        df=None,
        confidence=confidence,
        exponentiate=True,
        n_obs=len(frame),
        n_units=frame["unit_id"].nunique(),
        method="customer-level logistic regression of churned (yes/no) on the unit's mean "
        "engagement index (per observed SD), no covariates, iid SE; odds ratio, std_error on "
        "the log scale",
        se_method="iid",
    )


# --------------------------------------------------------------------------------------------
# One replicate


def true_values(effects: dict) -> dict[str, float]:
    """The true value of each estimand in a generated study (NaN where none is defined).

    The NPS slopes are per SD of latent engagement, which the engine's per-SD scaling (SD of
    the true index, sampling noise removed) estimates, as in ``tests/test_estimate.py``. The
    quartile gaps compare quartiles of the *observed* index, an association attenuated by
    measurement noise, so they have a known truth only when engagement has no effect (0);
    likewise the naive churn odds ratio (1) and the retention gap (0). The reverse check's
    truth is 0 without reverse causation; with it, the generator's strength (SD of latent
    engagement per SD of prior sentiment) has no exact value on the estimand's scale (SD of the
    index per 10 points of *measured* prior NPS, given last wave's engagement), so it is left
    undefined and only the rate at which the check fires is reported. The brand-promise slope
    (contract v2) is the generator's own, ``brand_promise_on_brand_alignment``, in a study with
    the internal-service chain (which draws ``brand_promise``); NaN in any other.
    """
    nps = effects["nps_points_per_sd_latent_engagement"]
    hazard_ratio = effects["churn_hazard_ratio_per_sd"]
    no_churn_effect = abs(hazard_ratio - 1) < 1e-12
    reverse = effects["reverse_engagement_sd_per_sd_prior_sentiment"]
    return {
        **_chain_truth(effects),
        "nps_on_engagement": nps,
        "nps_on_engagement_within": nps,
        "engagement_on_prior_nps": 0.0 if reverse == 0 else np.nan,
        "churn_hazard_on_engagement": hazard_ratio,
        "nps_quartile_gap": 0.0 if nps == 0 else np.nan,
        "retention_quartile_gap": 0.0 if no_churn_effect and nps == 0 else np.nan,
        "naive_nps_on_engagement": nps,
        "naive_churn_on_engagement": 1.0 if no_churn_effect else np.nan,
        "brand_promise_on_brand_alignment": float(
            effects.get("brand_promise_on_brand_alignment", np.nan)
        ),
    }


def _chain_truth(effects: dict) -> dict[str, float]:
    """The chain estimands' truths from ``truth.json`` (NaN without the chain).

    ``engagement_on_internal_service`` and ``nps_on_internal_service`` are the generator's
    (per SD of the true received service across customer-facing unit-waves); the within-unit
    slope estimates the same total effect (the generator's effects do not vary by unit).
    The share through engagement is the generator's ``via / total``; when nothing runs through
    engagement it is 0 even if the total is 0 too (its test is of ``a·b = 0``, which is then
    true), so its false-positive rate is measured in ``chain_none``.
    """

    def value(key: str) -> float:
        found = effects.get(key)
        return float("nan") if found is None else float(found)

    total = value("nps_on_internal_service")
    via = value("nps_on_internal_service_via_engagement")
    share = value("nps_via_engagement_share")
    if np.isnan(share) and via == 0:
        share = 0.0
    return {
        "engagement_on_internal_service": value("engagement_on_internal_service"),
        "nps_on_internal_service": total,
        "nps_via_engagement_share": share,
        "nps_on_internal_service_within": total,
    }


def _attempt(estimand: str, compute: Callable[[], dict]) -> dict:
    """An estimand's row, or a row of NaNs saying why it failed (counted, not hidden)."""
    from analysis.models.linkage import EstimationError

    try:
        return compute()
    except (EstimationError, np.linalg.LinAlgError, ValueError, ZeroDivisionError) as error:
        return {"estimand": estimand, "failure": f"{type(error).__name__}: {error}"}


def replicate(
    design: StudyDesign,
    parameters: Parameters | None = None,
    churn: bool = True,
    only: Sequence[str] = (),
) -> pd.DataFrame:
    """Draw one study and estimate every main estimand and the naive analysis on it.

    Each estimand of the registry the study fits (``STUDY_ESTIMANDS``; without ``churn``, those
    that need no churn model), then the naive ones (``NAIVE``), each by its registry ``fit``,
    as ``analysis.models.estimate.estimate_all`` fits it. Returns tidy rows
    (``estimand, term, estimate, std_error, conf_low, conf_high, p_value, n_obs, n_units,
    method``) with the generator's ``truth`` and a ``failure`` message where an estimand could
    not be computed. With ``only``, just those estimands (and no naive analysis).
    """
    from analysis.data.load import dataset_from_tables
    from analysis.data.parameters import resolve_as_of
    from analysis.data.synth import generate
    from analysis.measures.panel import unit_wave_panel

    parameters = parameters or Parameters()
    study = generate(design)
    dataset = dataset_from_tables(study.tables)
    as_of = resolve_as_of(dataset, parameters)
    panel = unit_wave_panel(dataset, parameters.outcome_window_days, as_of, parameters.covariates)
    fitting = registry.Fitting(dataset, parameters, panel, as_of)
    estimands = [
        *(e for e in registry.applicable(dataset, STUDY_ESTIMANDS) if churn or not e.needs_churn),
        *(e for e, _ in NAIVE),
    ]
    if only:
        estimands = [e for e in estimands if e.name in only]
    truth = true_values(study.truth["effects"])
    rows = [_attempt(e.name, lambda e=e: e.fit(fitting)) for e in estimands]
    table = pd.DataFrame(rows)
    table["truth"] = table["estimand"].map(truth)
    for column in [*REPLICATE_COLUMNS[3:], "method"]:
        if column not in table:
            table[column] = "" if column in ("failure", "method") else np.nan
    table["failure"] = table["failure"].fillna("")
    # an estimand that returned a "not estimable" row instead of raising
    missing = table["estimate"].isna() & table["failure"].eq("")
    table.loc[missing, "failure"] = table.loc[missing, "method"].fillna("no estimate")
    return table


# --------------------------------------------------------------------------------------------
# The study


@dataclass(frozen=True)
class Task:
    """One replicate to simulate and analyse: a condition, its index and its own seed."""

    condition: Condition
    index: int
    seed: int
    parameters: Parameters = field(default_factory=Parameters)


def _run_task(task: Task) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    rows = replicate(
        replace(task.condition.design, seed=task.seed),
        task.parameters,
        task.condition.churn,
        task.condition.only,
    )
    rows.insert(0, "seed", task.seed)
    rows.insert(0, "replicate", task.index)
    rows.insert(0, "condition", task.condition.name)
    return rows[list(REPLICATE_COLUMNS)], time.perf_counter() - started


def study_tasks(
    conditions: Sequence[Condition],
    replicates: int,
    base_seed: int = DEFAULT_SEED,
    parameters: Parameters | None = None,
) -> list[Task]:
    """Every (condition, replicate) with its derived seed, interleaved across conditions so that
    an interrupted run has touched every condition."""
    parameters = parameters or Parameters()
    per_condition = [
        [
            Task(c, i, replicate_seed(base_seed, c.name, i), parameters)
            for i in range(c.replicates(replicates))
        ]
        for c in conditions
    ]
    tasks = []
    for i in range(max(len(t) for t in per_condition)):
        tasks += [t[i] for t in per_condition if i < len(t)]
    return tasks


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_study(
    conditions: Sequence[Condition],
    replicates: int = DEFAULT_REPLICATES,
    *,
    base_seed: int = DEFAULT_SEED,
    parameters: Parameters | None = None,
    workers: int = 2,
    progress: Callable[[str], None] = _stderr,
) -> pd.DataFrame:
    """Run every replicate of every condition, ``workers`` at a time; tidy rows, sorted.

    Replicates are independent, so they run in separate processes (spawned, not forked:
    forking a process with running BLAS threads can deadlock). The result does not depend on
    the order in which workers finish: rows are sorted by condition and replicate.
    """
    if replicates < 2:
        from analysis.data.parameters import ParameterError

        raise ParameterError(f"replicates must be at least 2, not {replicates}")
    tasks = study_tasks(conditions, replicates, base_seed, parameters)
    started = time.monotonic()
    progress(
        f"[calibration] {len(tasks)} replicates over {len(conditions)} conditions, "
        f"{workers} at a time"
    )
    frames: list[pd.DataFrame] = []
    seconds: list[float] = []
    last_report = started

    def record(rows: pd.DataFrame, spent: float) -> None:
        nonlocal last_report
        frames.append(rows)
        seconds.append(spent)
        now = time.monotonic()
        if now - last_report >= 15 or len(frames) == len(tasks):
            elapsed = now - started
            left = elapsed / len(frames) * (len(tasks) - len(frames))
            progress(
                f"[calibration {len(frames)}/{len(tasks)}] {elapsed:.0f} s elapsed, "
                f"{np.mean(seconds):.1f} s per replicate, about {left:.0f} s left"
            )
            last_report = now

    if workers <= 1:
        for task in tasks:
            record(*_run_task(task))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_task, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    record(*future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    order = {c.name: i for i, c in enumerate(conditions)}
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(
        ["condition", "replicate"], key=lambda s: s.map(order) if s.name == "condition" else s
    )
    return table.reset_index(drop=True)


def conditions_table(conditions: Sequence[Condition], replicates: int) -> pd.DataFrame:
    """One row per condition: its role, label, design switches and replicate count."""
    return pd.DataFrame(
        [
            {
                "condition": c.name,
                "role": c.role,
                "label": c.label,
                "n_units": c.design.n_units,
                "n_waves": c.design.n_waves,
                "no_effect": c.design.no_effect,
                "confounding": c.design.confounding,
                "reverse_causation": c.design.reverse_causation,
                "nps_effect": c.design.effective().nps_effect,
                "churn_hazard_ratio": c.design.effective().churn_hazard_ratio,
                "internal_service": _chain_description(c.design),
                "churn_model": c.churn,
                "replicates": c.replicates(replicates),
            }
            for c in conditions
        ]
    )


def _chain_description(design: StudyDesign) -> str:
    """The internal-service chain of a design in words ("" without the chain)."""
    if not design.internal_service:
        return ""
    d = design.effective()
    text = (
        f"{d.engagement_per_service_sd:g} engagement points, "
        f"{d.nps_direct_per_service_sd:g} direct NPS points per SD"
    )
    return text + (", confounded" if design.chain_confounding else "")


# --------------------------------------------------------------------------------------------
# Performance measures


def rate_with_band(successes: int, n: int, confidence: float = 0.95) -> dict[str, float]:
    """A Monte-Carlo rate with its MC standard error and Wilson band.

    ``rate = successes / n``, ``mc_se = √(rate (1 − rate) / n)`` (Morris et al., 2019, Table 6)
    and ``band_low, band_high`` the Wilson score interval (``measures.intervals.wilson_interval``),
    which stays inside [0, 1] when the rate is near 0 or 1.
    """
    if n == 0:
        return {"rate": np.nan, "mc_se": np.nan, "band_low": np.nan, "band_high": np.nan}
    rate = successes / n
    low, high = wilson_interval(int(successes), int(n), confidence)
    return {
        "rate": rate,
        "mc_se": float(np.sqrt(rate * (1 - rate) / n)),
        "band_low": low,
        "band_high": high,
    }


def nominal_band(nominal: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Where a calibrated method's rate falls 95% of the time: ``nominal ± z √(nominal (1 −
    nominal) / n)`` (the normal approximation to the binomial)."""
    half = z * np.sqrt(nominal * (1 - nominal) / n)
    return nominal - half, nominal + half


def verdict(band_low: float, band_high: float, nominal: float) -> str:
    """``calibrated`` if the nominal rate lies in the band; else ``liberal`` / ``conservative``
    (for a false-positive rate) or ``undercovers`` / ``overcovers`` (for coverage)."""
    if np.isnan(band_low):
        return "not estimable"
    if band_low <= nominal <= band_high:
        return "calibrated"
    if nominal < 0.5:
        return "liberal" if band_low > nominal else "conservative"
    return "undercovers" if band_high < nominal else "overcovers"


def summarise(
    replicates: pd.DataFrame, conditions: pd.DataFrame, alpha: float = NOMINAL_ALPHA
) -> pd.DataFrame:
    """Performance of every estimand in every condition, each with its Monte-Carlo error.

    Columns: ``condition, role, label, n_units, n_waves, confounding, estimand, naive,
    replicates, failed, truth, mean_estimate, bias, bias_mc_se, empirical_se, mean_model_se,
    rejection_rate, rejection_mc_se, rejection_low, rejection_high, coverage, coverage_mc_se,
    coverage_low, coverage_high, rejection_verdict, coverage_verdict, exploratory`` (the last
    the same on every row of an estimand: ``exploratory_estimands``). Bias and the SEs are on
    the log scale for ratios (hazard and odds ratios), where their standard errors live.
    The rejection rate uses each estimand's own p-value at ``alpha`` (no Holm adjustment: the
    question is whether each test alone holds its level).
    """
    keys = ["condition", "role", "label", "n_units", "n_waves", "confounding"]
    rows = []
    for (condition, estimand), group in replicates.groupby(["condition", "estimand"], sort=False):
        fitted = group[group["failure"].fillna("").eq("") & group["estimate"].notna()]
        ratio = estimand in RATIO_ESTIMANDS
        estimate = np.log(fitted["estimate"]) if ratio else fitted["estimate"]
        truth_values = fitted["truth"].dropna()
        truth = float(truth_values.iloc[0]) if len(truth_values) else np.nan
        n = len(fitted)
        row = {
            "condition": condition,
            "estimand": estimand,
            "naive": estimand in NAIVE_ESTIMANDS,
            "replicates": n,
            "failed": len(group) - n,
            "truth": truth,
            "mean_estimate": float(fitted["estimate"].mean()) if n else np.nan,
            "empirical_se": float(estimate.std(ddof=1)) if n > 1 else np.nan,
            "mean_model_se": float(fitted["std_error"].mean()) if n else np.nan,
        }
        if np.isnan(truth):
            row["bias"] = row["bias_mc_se"] = np.nan
        else:
            target = np.log(truth) if ratio else truth
            row["bias"] = float(estimate.mean() - target)
            row["bias_mc_se"] = row["empirical_se"] / np.sqrt(n) if n > 1 else np.nan
        tested = fitted["p_value"].notna()
        rejected = int((fitted.loc[tested, "p_value"] < alpha).sum())
        rejection = rate_with_band(rejected, int(tested.sum()))
        row.update(
            {f"rejection_{k}" if k != "rate" else "rejection_rate": v for k, v in rejection.items()}
        )
        if np.isnan(truth):
            covered = {"rate": np.nan, "mc_se": np.nan, "band_low": np.nan, "band_high": np.nan}
        else:
            inside = (fitted["conf_low"] <= truth) & (truth <= fitted["conf_high"])
            covered = rate_with_band(int(inside.sum()), n)
        row.update({f"coverage_{k}".replace("_rate", ""): v for k, v in covered.items()})
        rows.append(row)
    table = pd.DataFrame(rows).rename(
        columns={
            "rejection_band_low": "rejection_low",
            "rejection_band_high": "rejection_high",
            "coverage_band_low": "coverage_low",
            "coverage_band_high": "coverage_high",
        }
    )
    table = conditions[keys].merge(table, on="condition", how="right")
    null_value = np.where(table["estimand"].isin(RATIO_ESTIMANDS), 1.0, 0.0)
    null = np.isclose(table["truth"].to_numpy(float), null_value)  # NaN truth: not null
    table["rejection_verdict"] = [
        verdict(low, high, alpha) if is_null else ""
        for low, high, is_null in zip(
            table["rejection_low"], table["rejection_high"], null, strict=True
        )
    ]
    table["coverage_verdict"] = [
        verdict(low, high, 1 - alpha) if not np.isnan(low) else ""
        for low, high in zip(table["coverage_low"], table["coverage_high"], strict=True)
    ]
    table["exploratory"] = table["estimand"].isin(exploratory_estimands(table))
    return table


#: The roles whose rates an estimand must keep to be reported as calibrated.
JUDGED_ROLES = ("no_effect", "effect")


def exploratory_estimands(summary: pd.DataFrame) -> list[str]:
    """Our estimands whose false-positive rate or coverage missed its Monte-Carlo band.

    An estimand is *exploratory* when, in a condition of ``JUDGED_ROLES``, its rejection rate
    under a true null or its coverage has a verdict other than ``calibrated`` (the nominal
    rate lies outside the rate's Wilson band, ``verdict``). The page labels it
    "(exploratory)" rather than hiding it. The naive analysis is not judged (it is shown to
    fail). Conditions built to show a bias (``reverse``, ``confounded``) and the power grid
    are not judged either.
    """
    judged = summary[summary["role"].isin(JUDGED_ROLES) & ~summary["naive"].astype(bool)]
    missed = ~judged["rejection_verdict"].isin(["", "calibrated"]) | ~judged[
        "coverage_verdict"
    ].isin(["", "calibrated"])
    return list(dict.fromkeys(judged.loc[missed, "estimand"]))


def power_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Power (rejection rate under the default effects) by units and waves, with its band."""
    rows = summary[(summary["role"] == "power") & ~summary["naive"]]
    columns = [
        "estimand",
        "n_units",
        "n_waves",
        "replicates",
        "truth",
        "rejection_rate",
        "rejection_low",
        "rejection_high",
    ]
    return rows[columns].sort_values(["estimand", "n_waves", "n_units"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The study's run folder: tables, the executed notebook and its page, published atomically

CALIBRATION_PAGE = Page("index", "calibration.ipynb", "Calibration study")


def _code_digests() -> dict[str, str]:
    """SHA-256 of the code that generated and analysed the simulated studies: its inputs."""
    from analysis.data.load import file_sha256

    names = (
        "data/synth.py",
        "studies/calibration.py",
        "models/registry.py",
        "models/tidy.py",
        "models/linkage.py",
        "models/estimate.py",
        "models/hazard.py",
        "measures/panel.py",
    )
    return {f"analysis/{n}": file_sha256(PROJECT_ROOT / "analysis" / n) for n in names}


def build_calibration_report(
    out_root: Path | str,
    replicates: int | None = None,
    *,
    workers: int = 2,
    base_seed: int | None = None,
    conditions=None,
    alpha: float = 0.05,
    progress: Callable[[str], None] = print,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> Path:
    """Run the calibration study, write its tables, render its page.

    Writes ``<run-id>/results/{replicates,summary,conditions}.csv``
    (``analysis.data.results.write_calibration``), ``<run-id>/index.html`` (the notebook
    ``calibration.ipynb``, whose words and tables are ``analysis.report.calibration_page``), the
    executed notebook and ``manifest.json`` (``analysis.data.provenance.build_manifest``, with
    the code's hashes as the study's inputs) under ``out_root``, published atomically with
    ``staged_run``: a failed or interrupted run never replaces the previous good report.

    Parameters
    ----------
    out_root : Path or str
        The folder of calibration runs: new, empty or the kit's.
    replicates : int, optional
        Replicates per condition (``DEFAULT_REPLICATES``), scaled by each condition's share.
    workers : int
        Processes running replicates side by side.
    base_seed : int, optional
        The seed every replicate's seed is derived from (``replicate_seed``).
    conditions : sequence of Condition, optional
        ``default_conditions()`` when not given.
    alpha : float
        The nominal level of every test.
    progress : callable
        Called with a line of text as the study advances.
    notebooks_dir : Path
        Where ``calibration.ipynb`` is.

    Returns
    -------
    Path
        The published run folder.
    """
    from analysis.data.parameters import ParameterError
    from analysis.data.provenance import build_manifest, run_timestamp
    from analysis.data.results import write_calibration

    replicates = DEFAULT_REPLICATES if replicates is None else replicates
    base_seed = DEFAULT_SEED if base_seed is None else base_seed
    if replicates < 2:
        raise ParameterError(f"replicates must be at least 2, not {replicates}")
    if workers < 1:
        raise ParameterError(f"workers must be at least 1, not {workers}")
    conditions = tuple(conditions or default_conditions())
    out_root = folders.check_run_root(out_root, "calibration")
    started = time.monotonic()
    # simulated before the run folder exists: an interrupted study leaves nothing behind
    table = run_study(
        conditions, replicates, base_seed=base_seed, workers=workers, progress=progress
    )
    design = conditions_table(conditions, replicates)
    summary = summarise(table, design, alpha)
    with staged_run(out_root, "calibration") as (staging, run_id):
        results = staging / "results"
        write_calibration({"replicates": table, "summary": summary, "conditions": design}, results)
        progress(f"[calibration] simulated in {time.monotonic() - started:.0f} s; rendering")
        manifest = build_manifest(
            None,  # every study is simulated: the code that simulated them is the input
            None,
            {"replicates": replicates, "seed": base_seed, "alpha": alpha, "workers": workers},
            run_id,
            run_timestamp(),
            conditions=design.to_dict(orient="records"),
            code_sha256=_code_digests(),
        )
        executed = execute_notebook(
            CALIBRATION_PAGE, staging, {"output_dir": str(results), "alpha": alpha}, notebooks_dir
        )
        manifest["seconds"] = round(time.monotonic() - started, 1)
        context = page_context(CALIBRATION_PAGE, manifest, inputs=manifest["code_sha256"])
        render_page(executed, staging / "index.html", context)
        write_manifest(manifest, staging)
    final = out_root / run_id
    progress(
        f"Calibration report ready in {time.monotonic() - started:.0f} s: {final / 'index.html'}"
    )
    return final
