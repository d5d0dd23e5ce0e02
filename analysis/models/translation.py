"""Business translation: what one SD of engagement is, and what it goes with in customers kept.

The models report effects per standard deviation (SD) of unit engagement and churn as a hazard
ratio. Leadership asks two other questions: how big is one SD on the engagement index they know,
and how many customers does the association amount to in a year (and, given what a customer is
worth, how much money)? This module answers both from the fitted estimates and the data, and
labels every number as the association it rests on: a hazard ratio from observational data says
what goes with higher engagement, not what raising it would cause.

References
----------
Altman, D. G. & Andersen, P. K. (1999). Calculating the number needed to treat for trials where
the outcome is time to an event. *BMJ* 319, 1492–1495.

Cox, D. R. (1972). Regression models and life-tables. *Journal of the Royal Statistical Society,
Series B* 34(2), 187–220.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.data.load import Dataset
from analysis.data.parameters import Parameters, resolve_as_of
from analysis.measures.panel import unit_wave_panel
from analysis.models import linkage

DAYS_PER_YEAR = 365.25
CHURN_ESTIMAND = "churn_hazard_on_engagement"
VERDICTS = ("evidence", "no clear evidence", "not estimable")
#: What every customers-kept figure rests on, in the words the page shows.
CHURN_ASSOCIATION = (
    "the association between unit engagement and customer churn (hazard ratio per SD of "
    "engagement, churn_hazard_on_engagement): what goes with higher engagement in these data, "
    "not proof that raising engagement would keep these customers"
)


def engagement_sd_points(panel: pd.DataFrame) -> float:
    """One SD of engagement in points of the 0–100 engagement index.

    The SD every "per SD" finding uses: of the true index across customer-facing unit-waves,
    sampling noise removed (``analysis.models.linkage.true_index_sd``, on the rows the NPS and
    churn models use).

    Parameters
    ----------
    panel : DataFrame
        The unit × wave panel (``analysis.measures.panel.unit_wave_panel``).

    Returns
    -------
    float
        ``SD_T`` in index points.

    Notes
    -----
    ``SD_T = √(Σ (I − Ī)² / (n − 1) − mean(v))`` over customer-facing unit-waves with an index,
    ``v`` each unit-wave's sampling variance (floored as in ``linkage.true_index_sd``).

    References
    ----------
    Morris, C. N. (1983). Parametric empirical Bayes inference. *JASA* 78(381), 47–55.
    """
    rows = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    return linkage.true_index_sd(rows)


@dataclass(frozen=True)
class ChurnBase:
    """The observed churn of customer-facing units' customers, from the first wave to ``as_of``.

    Attributes
    ----------
    churned : int
        Customers who churned in the period.
    customer_years : float
        Time at risk: from ``max(since, first wave)`` to ``min(churned_on, as_of)``, in years.
    current_customers : int
        Customers on ``as_of``: started by then and not churned by then.
    """

    churned: int
    customer_years: float
    current_customers: int

    @property
    def annual_rate(self) -> float:
        """Churn events per customer-year, ``churned / customer_years`` (NaN without exposure)."""
        return self.churned / self.customer_years if self.customer_years > 0 else math.nan

    @property
    def annual_share(self) -> float:
        """The share of customers who leave within a year at that rate, ``1 − exp(−rate)``."""
        return -math.expm1(-self.annual_rate)


def observed_churn(dataset: Dataset, first_wave: pd.Timestamp, as_of: pd.Timestamp) -> ChurnBase:
    """Churn events, customer-years at risk and current customers of customer-facing units.

    Counted as the churn model counts them (``analysis.models.hazard.churn_episodes``): a
    customer is at risk from ``max(since, first wave)``; a churn on or before the first wave or
    after ``as_of`` is not an event of the period.

    Parameters
    ----------
    dataset : Dataset
        The study.
    first_wave, as_of : Timestamp
        The period: the first survey wave and the end of observation.

    Returns
    -------
    ChurnBase

    Notes
    -----
    ``rate = events / Σ_i (exit_i − entry_i) / 365.25``, the maximum-likelihood estimate of a
    constant hazard per customer-year (Poisson). Customers of back-office units are left out:
    the churn model has no engagement for them.
    """
    facing = dataset.units.loc[dataset.units["customer_facing"].fillna(True).astype(bool)]
    customers = dataset.customers[dataset.customers["unit_id"].isin(facing["unit_id"])]
    first_wave, as_of = pd.Timestamp(first_wave), pd.Timestamp(as_of)
    since, churned_on = customers["since"], customers["churned_on"]
    entry = since.where(since > first_wave, first_wave)
    event = churned_on.notna() & (churned_on > first_wave) & (churned_on <= as_of)
    exit_ = churned_on.where(event, as_of)
    days = (exit_ - entry).dt.days.clip(lower=0)
    current = (since <= as_of) & ~(churned_on.notna() & (churned_on <= as_of))
    return ChurnBase(
        churned=int(event.sum()),
        customer_years=float(days.sum()) / DAYS_PER_YEAR,
        current_customers=int(current.sum()),
    )


def customers_kept(n_customers: float, annual_rate: float, hazard_ratio):
    """Expected extra customers still there a year on, for a given hazard ratio.

    Parameters
    ----------
    n_customers : float
        Customers at the start of the year.
    annual_rate : float
        Churn events per customer-year without the change (the baseline hazard).
    hazard_ratio : float or array
        The hazard ratio of the change (below 1: less churn).

    Returns
    -------
    float or ndarray
        ``N (S₀^HR − S₀)`` with ``S₀ = exp(−rate)``; negative when ``HR > 1`` (customers lost).

    Notes
    -----
    Under proportional hazards the survival of the changed group is ``S₁(t) = S₀(t)^HR``
    (Cox, 1972), so of ``N`` customers ``N S₁(1)`` rather than ``N S₀(1)`` remain after a year:
    the difference is the number kept, the inverse of Altman & Andersen's (1999) number needed
    to treat, times ``N``. The baseline is the observed constant rate. Example: HR 0.9, 0.20
    churn events per customer-year, 10,000 customers:
    ``10,000 (e^{−0.18} − e^{−0.20}) ≈ 165`` customers kept a year.

    References
    ----------
    Altman, D. G. & Andersen, P. K. (1999). *BMJ* 319, 1492–1495.
    """
    hazard_ratio = np.asarray(hazard_ratio, dtype=float)
    kept = n_customers * (np.exp(-annual_rate * hazard_ratio) - np.exp(-annual_rate))
    return float(kept) if kept.ndim == 0 else kept


def _churn_row(estimates: pd.DataFrame) -> pd.Series | None:
    rows = estimates.loc[estimates["estimand"] == CHURN_ESTIMAND]
    return None if rows.empty else rows.iloc[0]


def churn_verdict(row: pd.Series | None, alpha: float) -> str:
    """The churn finding's verdict, as ``results/findings.csv`` defines it, from its row.

    Parameters
    ----------
    row : Series or None
        The ``churn_hazard_on_engagement`` row of ``estimates``.
    alpha : float
        The significance level.

    Returns
    -------
    str
        ``evidence`` when the Holm-adjusted p-value is below ``alpha`` and the interval
        excludes a hazard ratio of 1; ``not estimable`` without an estimate or interval;
        ``no clear evidence`` otherwise.
    """
    if row is None or not all(np.isfinite(row[c]) for c in ("estimate", "conf_low", "conf_high")):
        return "not estimable"
    p = row.get("p_adjusted", np.nan)
    excludes = row["conf_high"] < 1 or row["conf_low"] > 1
    return "evidence" if np.isfinite(p) and p < alpha and excludes else "no clear evidence"


def translate(
    n_customers: int,
    annual_rate: float,
    hazard_ratio: float,
    conf_low: float,
    conf_high: float,
    value_per_customer: float | None = None,
) -> dict:
    """Customers kept a year (and their value) for a one-SD rise, with the interval.

    Parameters
    ----------
    n_customers : int
        Current customers.
    annual_rate : float
        Observed churn events per customer-year.
    hazard_ratio, conf_low, conf_high : float
        The churn hazard ratio per SD of engagement and its interval.
    value_per_customer : float, optional
        What keeping one customer a year is worth; no money figures without it.

    Returns
    -------
    dict
        ``kept, kept_low, kept_high`` (customers a year) and ``value, value_low, value_high``
        (``None`` without ``value_per_customer``).

    Notes
    -----
    ``kept(HR) = N (e^{−r·HR} − e^{−r})`` (:func:`customers_kept`) falls as HR rises, so the
    interval's ends come from the hazard ratio's opposite ends: ``kept(conf_high)`` to
    ``kept(conf_low)``. The sampling error of the observed rate is not carried: with thousands
    of customer-years it is small next to the hazard ratio's. Money is ``kept × value``.
    """
    kept = customers_kept(n_customers, annual_rate, hazard_ratio)
    low = customers_kept(n_customers, annual_rate, conf_high)
    high = customers_kept(n_customers, annual_rate, conf_low)
    money = value_per_customer is not None
    return {
        "kept": kept,
        "kept_low": low,
        "kept_high": high,
        "value": kept * value_per_customer if money else None,
        "value_low": low * value_per_customer if money else None,
        "value_high": high * value_per_customer if money else None,
    }


def business_translation(
    dataset: Dataset,
    estimates: pd.DataFrame,
    parameters: Parameters,
    verdict: str | None = None,
    panel: pd.DataFrame | None = None,
) -> dict:
    """Every number of the business translation, each with the association it rests on.

    Parameters
    ----------
    dataset : Dataset
        The study.
    estimates : DataFrame
        The ``estimates`` result table.
    parameters : Parameters
        The run's parameters (``as_of``, ``outcome_window_days``, ``covariates``, ``alpha``,
        ``value_per_customer``).
    verdict : str, optional
        The churn finding's verdict from ``results/findings.csv``; worked out from its row
        (:func:`churn_verdict`) when not given.
    panel : DataFrame, optional
        The unit × wave panel, built when not given.

    Returns
    -------
    dict
        ``sd_points``; ``hazard_ratio, conf_low, conf_high, verdict``; ``churned,
        customer_years, annual_rate, annual_share, customers``; ``kept, kept_low, kept_high``
        and ``value, value_low, value_high, value_per_customer`` (see :func:`translate`);
        ``confidence``; ``rests_on`` (:data:`CHURN_ASSOCIATION`). Customer figures are NaN
        when the churn model could not be estimated.

    Notes
    -----
    Formulas: :func:`engagement_sd_points`, :func:`observed_churn`, :func:`customers_kept`.
    """
    as_of = resolve_as_of(dataset, parameters)
    if panel is None:
        panel = unit_wave_panel(
            dataset, parameters.outcome_window_days, as_of, parameters.covariates
        )
    first_wave = dataset.employee_survey["wave"].min()
    base = observed_churn(dataset, first_wave, as_of)
    row = _churn_row(estimates)
    verdict = verdict if verdict is not None else churn_verdict(row, parameters.alpha)
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    estimable = verdict != "not estimable" and row is not None and base.customer_years > 0
    hazard = (row["estimate"], row["conf_low"], row["conf_high"]) if estimable else (np.nan,) * 3
    kept = (
        translate(base.current_customers, base.annual_rate, *hazard, parameters.value_per_customer)
        if estimable
        else dict.fromkeys(("kept", "kept_low", "kept_high"), np.nan)
        | dict.fromkeys(("value", "value_low", "value_high"), None)
    )
    return {
        "sd_points": engagement_sd_points(panel),
        "hazard_ratio": float(hazard[0]),
        "conf_low": float(hazard[1]),
        "conf_high": float(hazard[2]),
        "verdict": verdict if estimable else "not estimable",
        "churned": base.churned,
        "customer_years": base.customer_years,
        "annual_rate": base.annual_rate,
        "annual_share": base.annual_share,
        "customers": base.current_customers,
        **kept,
        "value_per_customer": parameters.value_per_customer,
        "confidence": parameters.confidence,
        "rests_on": CHURN_ASSOCIATION,
    }


def _count(value: float) -> str:
    return f"{abs(value):,.0f} {'fewer' if round(value) < 0 else 'more'}"


def _money(value: float) -> str:
    """An amount to three significant figures: the interval is far wider than a unit of money."""
    if value == 0 or not math.isfinite(value):
        return f"{value:,.0f}"
    shown = round(abs(value), 2 - math.floor(math.log10(abs(value))))
    return f"{'−' if value < 0 else ''}{shown:,.0f}"


def _percent(confidence: float) -> str:
    return f"{100 * confidence:.10g}%"


def translation_sentences(translation: dict) -> list[str]:
    """The business translation in words: one SD in index points, then customers kept.

    Every customers-kept sentence names the association it rests on; with no clear evidence it
    says so first and gives the range only as what the data cannot rule out.

    Parameters
    ----------
    translation : dict
        As :func:`business_translation` returns it.

    Returns
    -------
    list of str
        Plain text (no markup): the SD sentence, the customers sentence and, with
        ``value_per_customer``, the money sentence.
    """
    t = translation
    level = _percent(t["confidence"])
    sentences = [
        f"Findings are given per standard deviation (SD) of engagement: one SD is "
        f"{t['sd_points']:.1f} points on the 0–100 engagement index (the spread of true "
        "engagement between customer-facing units and waves, sampling noise taken out)."
    ]
    if t["verdict"] == "not estimable":
        sentences.append(
            "The churn model could not be estimated on these data, so no number of customers "
            "kept can be given."
        )
        return sentences
    hr = (
        f"hazard ratio {t['hazard_ratio']:.2f}, {level} CI {t['conf_low']:.2f} to "
        f"{t['conf_high']:.2f}"
    )
    base = (
        f"{t['customers']:,} current customers and the observed churn of "
        f"{t['annual_rate']:.2f} per customer-year ({100 * t['annual_share']:.0f}% leave within "
        "a year)"
    )
    kept_range = f"{_count(t['kept_low'])} to {_count(t['kept_high'])}"
    if t["verdict"] == "evidence":
        change = 1 - t["hazard_ratio"]
        direction = f"{100 * abs(change):.0f}% {'lower' if change > 0 else 'higher'}"
        sentences.append(
            f"An association, not proof of cause: customer-facing units one SD higher in "
            f"engagement lost customers at a rate {direction} ({hr}). Applied to the {base}, "
            f"a one-SD rise in engagement goes with about {_count(t['kept'])} customers kept "
            f"a year ({level} CI {kept_range})."
        )
    else:
        sentences.append(
            f"No clear evidence here that engagement predicts churn ({hr}), so no number of "
            f"customers kept can be claimed: applied to the {base}, the interval runs from "
            f"{kept_range} customers kept a year."
        )
    if t["value"] is not None:
        value = f"{t['value_per_customer']:,.0f} per customer-year"
        worth = f"{_money(t['value_low'])} to {_money(t['value_high'])} a year"
        if t["verdict"] == "evidence":
            sentences.append(
                f"At {value}, that is about {_money(t['value'])} a year ({level} CI {worth}), "
                "on the same association."
            )
        else:
            sentences.append(
                f"In money, at {value}, the interval runs from {worth}; with no clear "
                "evidence, no value can be claimed."
            )
    return sentences
