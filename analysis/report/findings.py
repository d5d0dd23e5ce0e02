"""The headline findings as data first, then words: one row per finding, its verdict decides.

``findings_table`` turns ``estimates.csv`` into ``findings.csv``: one row per tested estimand of
the registry (``analysis.models.registry.ESTIMANDS``), in the registry's order, with a
``verdict`` and the ``sentence`` the executive page shows. The verdict is decided from the
numbers alone (``verdict``), and the words follow it:

* ``evidence``: Holm's adjusted p-value is below alpha *and* the interval excludes the null.
  Only then does a sentence state an effect or an association.
* ``no clear evidence``: anything else with numbers. The sentence starts with "No clear
  evidence", gives the estimate and its interval, says whether the interval includes no
  difference, and says what size of effect the data could have detected (the minimum detectable
  effect, ``analysis.models.power``).
* ``not estimable``: the data could not support the estimate (and the share of the churn link
  that runs through NPS when there is no clear churn link to split).

The reverse check (``engagement_on_prior_nps``) may argue against the reverse direction only
when its interval lies inside ``±REVERSE_MEANINGFUL`` (``reverse_ruled_out``).

Every function here is pure: tables in, tables or text out. Nothing reads or writes files;
``analysis.report.page.estimate`` adds the table to the result files. Numbers are rounded to
``DIGITS`` decimals so that ``findings.csv`` is byte-identical on a rerun.

References
----------
Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scandinavian Journal
of Statistics*, 6(2), 65–70.

Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical power
of experimental designs. *Evaluation Review*, 19(5), 547–556.

Cohen, J. (1988). *Statistical Power Analysis for the Behavioral Sciences* (2nd ed.). Erlbaum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from analysis.models import power, registry

EVIDENCE = "evidence"
NO_CLEAR_EVIDENCE = "no clear evidence"
NOT_ESTIMABLE = "not estimable"
VERDICTS = (EVIDENCE, NO_CLEAR_EVIDENCE, NOT_ESTIMABLE)

#: Where a finding is shown: "found" in "What we found", "causal" in "Does engagement come
#: first?", "chain" in the internal-service chain (service received → engagement → customers;
#: asked only of a dataset with the ``internal_service`` table), "brand" (staff brand alignment
#: against customers' brand promise, asked only of a dataset with ``brand_promise``). Its
#: direction: "forward" (towards customers) or "reverse".
SECTIONS = ("found", "causal", "chain", "brand")

#: The smallest reverse link that matters, in SD of engagement per +10 points of prior NPS.
#: See ``reverse_ruled_out``.
REVERSE_MEANINGFUL = 0.1

#: Decimals kept in ``findings.csv`` (a rerun then writes the same bytes).
DIGITS = 6

#: Power at which the minimum detectable effect is stated.
POWER = 0.80

FINDING_COLUMNS = (
    "finding",
    "estimand",
    "section",
    "direction",
    "verdict",
    "estimate",
    "conf_low",
    "conf_high",
    "null",
    "confidence",
    "p_adjusted",
    "alpha",
    "n_units",
    "n_obs",
    "mde",
    "meaningful_size",
    "excludes_meaningful",
    "sentence",
)


# --------------------------------------------------------------------------------------------
# Numbers as words (the same conventions as ``analysis.report.sentences``, which imports this
# module and so cannot be imported here)


def signed(value: float, digits: int = 1) -> str:
    """A number with its sign: ``+6.1`` / ``−2.3`` (a true minus sign) / ``0.0``.

    Parameters
    ----------
    value : float
    digits : int
        Decimals shown; a value that rounds to zero has no sign.

    Returns
    -------
    str
    """
    text = f"{abs(value):.{digits}f}"
    if round(value, digits) > 0:
        return f"+{text}"
    if round(value, digits) < 0:
        return f"−{text}"
    return text


def level(confidence: float) -> str:
    """A confidence level as a percentage that prints exactly: ``95%``, ``99.9%``.

    Parameters
    ----------
    confidence : float
        ``1 − alpha``; alpha has at most three decimals (``analysis.data.parameters``).

    Returns
    -------
    str
    """
    return f"{100 * confidence:.1f}".removesuffix(".0") + "%"


def _count(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


# --------------------------------------------------------------------------------------------
# The verdict


def excludes_null(conf_low: float, conf_high: float, null: float) -> bool:
    """Whether the interval ``[conf_low, conf_high]`` lies wholly on one side of ``null``.

    Parameters
    ----------
    conf_low, conf_high : float
        The interval, on the reported scale.
    null : float
        The no-effect value on that scale (``Estimand.null``: 0, or 1 for a ratio).

    Returns
    -------
    bool
        ``conf_low > null or conf_high < null``.
    """
    return bool(conf_low > null or conf_high < null)


def verdict(
    estimate: float,
    conf_low: float,
    conf_high: float,
    p_adjusted: float,
    null: float,
    alpha: float,
) -> str:
    """The verdict on one estimand's row: ``evidence``, ``no clear evidence`` or ``not estimable``.

    Parameters
    ----------
    estimate, conf_low, conf_high : float
        The estimate and its interval, on the reported scale (a ratio exponentiated).
    p_adjusted : float
        Holm's adjusted p-value (``analysis.models.estimate.with_holm``).
    null : float
        The no-effect value on the reported scale (``Estimand.null``).
    alpha : float
        The family-wise error rate.

    Returns
    -------
    str
        ``evidence`` when ``p_adjusted < alpha`` and the interval excludes ``null``;
        ``not estimable`` when the estimate, its interval or its p-value is missing;
        ``no clear evidence`` otherwise.

    Notes
    -----
    Both conditions are asked for because the interval and the test need not agree: the
    interval is not adjusted for multiplicity, and a bootstrap's percentile interval and its
    p-value are computed differently. A finding counts as evidence only when both say so.

    References
    ----------
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scandinavian
    Journal of Statistics*, 6(2), 65–70.
    """
    numbers = (estimate, conf_low, conf_high, p_adjusted)
    if any(v is None or pd.isna(v) for v in numbers):
        return NOT_ESTIMABLE
    if p_adjusted < alpha and excludes_null(conf_low, conf_high, null):
        return EVIDENCE
    return NO_CLEAR_EVIDENCE


def reverse_ruled_out(
    conf_low: float, conf_high: float, meaningful: float = REVERSE_MEANINGFUL
) -> bool:
    """Whether the reverse check's interval excludes reverse links of a meaningful size.

    Parameters
    ----------
    conf_low, conf_high : float
        The interval of ``engagement_on_prior_nps``, in SD of engagement per +10 points of NPS
        in the quarter before the wave.
    meaningful : float
        The smallest reverse link that matters (``REVERSE_MEANINGFUL``, 0.1).

    Returns
    -------
    bool
        True when ``−meaningful < conf_low`` and ``conf_high < meaningful``: only then may a
        sentence say the data argue against the reverse direction. An interval that merely
        contains zero does not: it may hold large reverse links too.

    Notes
    -----
    Why ±0.1 SD of engagement per 10 NPS points: the standardised slope is
    ``β_std = b · SD_NPS / 10``. Between units, true quarterly NPS varies by roughly 10 to 20
    points (one SD), so ``b = 0.1`` is a standardised slope of 0.1 to 0.2, at least Cohen's
    (1988) "small" effect (r = .10) wherever NPS varies that much. A reverse link smaller than
    that would move engagement by under 0.2 SD even between units 20 NPS points apart, too
    little to explain a forward association of the size the kit looks for (4 NPS points per
    SD of engagement, Harter, Schmidt & Hayes 2002). This is an equivalence-style reading
    (Lakens 2017): the 95% interval has to lie inside the bounds, so the statement errs at
    most 2.5% of the time at each bound.

    References
    ----------
    Cohen, J. (1988). *Statistical Power Analysis for the Behavioral Sciences* (2nd ed.).
    Erlbaum.

    Lakens, D. (2017). Equivalence tests: a practical primer for t tests, correlations, and
    meta-analyses. *Social Psychological and Personality Science*, 8(4), 355–362.
    """
    return bool(-meaningful < conf_low and conf_high < meaningful)


# --------------------------------------------------------------------------------------------
# The words: how each estimand's numbers are said


@dataclass(frozen=True)
class Wording:
    """How one estimand's numbers are said.

    ``section`` and ``direction`` as in ``SECTIONS``; ``amount`` the estimate with its unit
    (for "the estimate is …"); ``ci`` the interval's two ends; ``counts`` the n behind it;
    ``found`` the sentence stating an effect (only ever used with the verdict ``evidence``);
    ``detectable`` the minimum detectable effect in words, or ``None`` where there is none;
    ``absent`` what "No clear evidence of …" is followed by (the registry's subject when
    empty).
    """

    section: str
    direction: str
    amount: Callable[[float], str]
    ci: Callable[[float, float], str]
    counts: Callable[[int, int], str]
    found: Callable[[float, str], str]
    detectable: Callable[[float], str] | None = None
    absent: str = ""


def side_digits(value: float, null: float, digits: int) -> int:
    """Decimals to show ``value`` with, so that it does not round onto ``null``.

    An interval that excludes the null must not read as if it touched it: an end of −0.0036
    shown to two decimals reads "0.00". Up to three more decimals are added until the shown
    value differs from the null (``−0.004``); a value equal to the null keeps ``digits``.

    Parameters
    ----------
    value, null : float
        The number shown and the value it must not seem to equal (0 for a difference, 1 for a
        ratio).
    digits : int
        The decimals normally shown.

    Returns
    -------
    int
    """
    shown = digits
    while shown < digits + 3 and value != null and round(value, shown) == round(null, shown):
        shown += 1
    return shown


def _difference_ci(digits: int) -> Callable[[float, float], str]:
    return lambda low, high: (
        f"{signed(low, side_digits(low, 0.0, digits))} to "
        f"{signed(high, side_digits(high, 0.0, digits))}"
    )


def _ratio_ci(low: float, high: float) -> str:
    return f"{low:.{side_digits(low, 1.0, 2)}f} to {high:.{side_digits(high, 1.0, 2)}f}"


def _units(n_units: int, n_obs: int, what: str) -> str:
    return f"{n_units} units, {n_obs:,} {what}"


def _more(value: float, up: str = "higher", down: str = "lower") -> str:
    return up if value >= 0 else down


WORDINGS: dict[str, Wording] = {
    "nps_on_engagement": Wording(
        "found",
        "forward",
        amount=lambda e: f"{signed(e)} points of NPS per standard deviation of engagement",
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"Units one standard deviation higher in engagement had customer NPS "
            f"{abs(e):.1f} points {_more(e)} in the following quarter {tail}."
        ),
        detectable=lambda m: f"an effect of {m:.1f} NPS points per standard deviation or more",
        absent="a link between engagement and the next quarter's customer NPS",
    ),
    "nps_on_engagement_within": Wording(
        "causal",
        "forward",
        amount=lambda e: f"{signed(e)} points of NPS per standard deviation of engagement",
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"Within the same unit over time, a rise of one standard deviation in engagement "
            f"went with customer NPS {abs(e):.1f} points {_more(e)} {tail}."
        ),
        detectable=lambda m: f"an effect of {m:.1f} NPS points per standard deviation or more",
        absent="a link between engagement and NPS within the same unit over time",
    ),
    "engagement_on_prior_nps": Wording(
        "causal",
        "reverse",
        amount=lambda e: f"{signed(e, 2)} SD of engagement per 10 NPS points",
        ci=_difference_ci(2),
        counts=lambda u, n: _units(u, n, "unit-waves"),
        found=lambda e, tail: (
            f"Customer NPS in the quarter before a wave predicts engagement at that wave: "
            f"units 10 NPS points higher had engagement {abs(e):.2f} SD {_more(e)} {tail}."
        ),
        detectable=lambda m: f"a reverse link of {m:.2f} SD per 10 NPS points or more",
        absent="a reverse link, from customer NPS to later engagement",
    ),
    "churn_hazard_on_engagement": Wording(
        "found",
        "forward",
        amount=lambda e: f"a hazard ratio of {e:.2f} per standard deviation of engagement",
        ci=_ratio_ci,
        counts=lambda u, n: f"{n:,} customers in {u} units",
        found=lambda e, tail: (
            f"Customers of units one standard deviation higher in engagement were "
            f"{abs(1 - e) * 100:.0f}% {_more(1 - e, 'less', 'more')} likely to leave at any "
            f"given time (hazard ratio {e:.2f}, {tail.removeprefix('(')}."
        ),
        detectable=lambda m: (
            f"a hazard ratio of {m:.2f} or lower (a {100 * (1 - m):.0f}% lower risk of leaving)"
        ),
        absent="a link between engagement and customers' risk of leaving",
    ),
    "nps_quartile_gap": Wording(
        "found",
        "forward",
        amount=lambda e: f"{signed(e)} NPS points, top minus bottom quarter of engagement",
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "customer answers"),
        found=lambda e, tail: (
            f"Units in the top quarter of engagement had customer NPS {abs(e):.1f} points "
            f"{_more(e)} than units in the bottom quarter {tail}."
        ),
        detectable=lambda m: f"a gap of {m:.1f} NPS points or more",
        absent="an NPS gap between the top and bottom engagement quartiles",
    ),
    "retention_quartile_gap": Wording(
        "found",
        "forward",
        amount=lambda e: (
            f"{signed(e)} percentage points of 12-month customer retention, top "
            "minus bottom quarter of engagement"
        ),
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "customer-waves"),
        found=lambda e, tail: (
            f"Units in the top quarter of engagement kept {abs(e):.1f} percentage points "
            f"{_more(e, 'more', 'fewer')} of their customers over 12 months than units in the "
            f"bottom quarter {tail}."
        ),
        detectable=lambda m: f"a gap of {m:.1f} percentage points or more",
        absent="a retention gap between the top and bottom engagement quartiles",
    ),
    "nps_mediated_share": Wording(
        "found",
        "forward",
        amount=lambda e: f"a share of {100 * e:.0f}%",
        ci=lambda low, high: " to ".join(
            f"{signed(100 * end, side_digits(100 * end, 0.0, 0))}%" for end in (low, high)
        ),
        counts=lambda u, n: f"{u} units",
        found=lambda e, tail: (
            f"About {100 * e:.0f}% of engagement's link with churn runs through customer NPS "
            f"{tail}."
        ),
        absent="a share of the churn link running through customer NPS",
    ),
    # (v2) The internal-service chain (analysis.models.chain). Every sentence says what kind of
    # evidence it is: the between-unit links are associations; the within-unit one removes
    # stable differences between units, not changes that move service and customers together.
    "engagement_on_internal_service": Wording(
        "chain",
        "forward",
        amount=lambda e: (
            f"{signed(e)} engagement index points per standard deviation of internal service "
            "received"
        ),
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-waves"),
        found=lambda e, tail: (
            f"Units that received internal service one standard deviation better from the "
            f"teams they depend on (as other units' staff rate those teams) had engagement "
            f"{abs(e):.1f} index points {_more(e)} in the same wave {tail}. This is an "
            "association between units: it does not show that the service caused it."
        ),
        detectable=lambda m: (
            f"a link of {m:.1f} engagement index points per standard deviation or more"
        ),
        absent="a link between the internal service a unit receives and its engagement",
    ),
    "nps_on_internal_service": Wording(
        "chain",
        "forward",
        amount=lambda e: (
            f"{signed(e)} points of NPS per standard deviation of internal service received"
        ),
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"Units that received internal service one standard deviation better had customer "
            f"NPS {abs(e):.1f} points {_more(e)} in the following quarter {tail}. This is an "
            "association between units, through engagement and any other path: units that "
            "get better service may differ in other ways that also please customers."
        ),
        detectable=lambda m: f"a link of {m:.1f} NPS points per standard deviation or more",
        absent="a link between the internal service a unit receives and the next quarter's "
        "customer NPS",
    ),
    "nps_via_engagement_share": Wording(
        "chain",
        "forward",
        amount=lambda e: f"a share of {100 * e:.0f}%",
        ci=lambda low, high: (
            "unbounded"
            if not (math.isfinite(low) and math.isfinite(high))
            else " to ".join(
                f"{signed(100 * end, side_digits(100 * end, 0.0, 0))}%" for end in (low, high)
            )
        ),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"About {100 * e:.0f}% of the link between internal service and customer NPS runs "
            f"through staff engagement {tail}. It splits an association, not a proven effect."
        ),
        absent="a share of the internal service–NPS link running through engagement",
    ),
    "nps_on_internal_service_within": Wording(
        "chain",
        "forward",
        amount=lambda e: (
            f"{signed(e)} points of NPS per standard deviation of internal service received"
        ),
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"Within the same unit over time, quarters in which its internal service was one "
            f"standard deviation better were followed by customer NPS {abs(e):.1f} points "
            f"{_more(e)} {tail}. Stable differences between units cannot explain this; changes "
            "that move service and customers together at the same time still could."
        ),
        detectable=lambda m: f"a link of {m:.1f} NPS points per standard deviation or more",
        absent="a link between internal service and NPS within the same unit over time",
    ),
    "brand_promise_on_brand_alignment": Wording(
        "brand",
        "forward",
        amount=lambda e: (
            f"{signed(e)} points of customers' brand-promise index per standard deviation of "
            "staff brand alignment"
        ),
        ci=_difference_ci(1),
        counts=lambda u, n: _units(u, n, "unit-quarters"),
        found=lambda e, tail: (
            f"Units whose staff were one standard deviation higher in brand alignment had "
            f"customers rate the brand promise as kept {abs(e):.1f} points {_more(e)} on a "
            f"0-100 index in the following quarter {tail}. This is an association between "
            "units: it does not show that staff belief causes it."
        ),
        detectable=lambda m: (
            f"a link of {m:.1f} brand-promise points per standard deviation or more"
        ),
        absent=(
            "a link between staff brand alignment and customers' sense, in the next quarter, "
            "that the brand promise is kept"
        ),
    ),
}

#: The estimand whose minimum detectable effect ``estimates.csv`` carries as its own row.
_MDE_ROWS = {"nps_on_engagement": "nps_on_engagement_mde"}
#: A share needs a link to split: each share and the estimand whose link it divides, with the
#: reason given when that link is not clear.
_SHARES = {
    "nps_mediated_share": (
        "churn_hazard_on_engagement",
        "there is no clear link between engagement and churn to divide",
    ),
    "nps_via_engagement_share": (
        "nps_on_internal_service",
        "there is no clear link between internal service and NPS to divide",
    ),
}


def _generic(estimand: registry.Estimand) -> Wording:
    """Plain wording for an estimand added to the registry without its own."""
    ci = (lambda lo, hi: f"{lo:.2f} to {hi:.2f}") if estimand.scale == "ratio" else None
    return Wording(
        "found",
        "forward",
        amount=lambda e: f"{e:.2f} ({estimand.label})",
        ci=ci or _difference_ci(2),
        counts=lambda u, n: _units(u, n, "observations"),
        found=lambda e, tail: f"{estimand.subject}: {e:.2f} ({estimand.label}) {tail}.",
    )


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _no_difference(estimand: registry.Estimand) -> str:
    if estimand.scale == "ratio":
        return "no difference (1.00)"
    return "zero" if estimand.scale == "share" else "no difference"


def mde_on_reported_scale(estimand: registry.Estimand, mde: float) -> float:
    """A minimum detectable effect on the scale the estimand is reported on.

    Parameters
    ----------
    estimand : Estimand
        The registry entry.
    mde : float
        ``power.minimum_detectable_effect`` on the test's scale (the log for a ratio).

    Returns
    -------
    float
        ``mde`` itself, or for a ratio the ratio below 1 the test detects, ``exp(−MDE)``.
    """
    return float(math.exp(-mde)) if estimand.scale == "ratio" else float(mde)


def minimum_detectable(
    estimand: registry.Estimand, row: pd.Series, estimates: pd.DataFrame, alpha: float
) -> float:
    """The smallest effect this study detects with 80% power, on the reported scale.

    Parameters
    ----------
    estimand : Estimand
    row : Series
        The estimand's row of ``estimates.csv``.
    estimates : DataFrame
        ``estimates.csv``: an estimand with its own ``…_mde`` row (``nps_on_engagement``) is
        read from there, so the page and the power section state the same number.
    alpha : float

    Returns
    -------
    float
        NaN for a share (no test of a size) or when the standard error is missing.

    Notes
    -----
    ``MDE = (t_{1−α/2, df} + t_{0.80, df}) · SE`` with ``df = n_units − 1``, as
    ``power.mde_row`` computes it; for a ratio, ``SE`` is on the log scale and the MDE is
    returned as the ratio ``exp(−MDE)``.

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical
    power of experimental designs. *Evaluation Review*, 19(5), 547–556.
    """
    if estimand.scale not in ("difference", "ratio"):
        return float("nan")
    own = _MDE_ROWS.get(estimand.name)
    if own is not None:
        mde_rows = estimates[estimates["estimand"] == own]
        if not mde_rows.empty and pd.notna(mde_rows.iloc[0]["estimate"]):
            return float(mde_rows.iloc[0]["estimate"])
    se, n_units = row.get("std_error"), _count(row.get("n_units"))
    if se is None or pd.isna(se) or n_units < 2:
        return float("nan")
    mde = power.minimum_detectable_effect(float(se), n_units - 1, alpha, POWER)
    return mde_on_reported_scale(estimand, mde)


def finding_sentence(
    estimand: registry.Estimand,
    row: pd.Series | None,
    verdict_: str,
    alpha: float,
    mde: float = float("nan"),
    reason: str = "",
    questions: int | None = None,
) -> str:
    """The sentence of one finding: its verdict decides its words.

    Parameters
    ----------
    estimand : Estimand
        The registry entry (its ``subject`` names the finding).
    row : Series or None
        Its row of ``estimates.csv`` (``estimate, conf_low, conf_high, n_units, n_obs``).
    verdict_ : str
        One of ``VERDICTS`` (``verdict``).
    alpha : float
        The level: the interval is a ``1 − alpha`` interval.
    mde : float
        The minimum detectable effect on the reported scale (``minimum_detectable``).
    reason : str
        Why it could not be estimated, for ``not estimable``.
    questions : int, optional
        How many tested questions Holm's correction ran over (``asked``); by default those
        every dataset is asked.

    Returns
    -------
    str
        ``evidence``: the effect in words with its interval and n. ``no clear evidence``:
        "No clear evidence of …" first, then the estimate, interval and n, whether the
        interval includes no difference, and the MDE. The reverse check says whether it rules
        out links of ``REVERSE_MEANINGFUL`` (``reverse_ruled_out``). ``not estimable``: so,
        with the reason.
    """
    words = WORDINGS.get(estimand.name) or _generic(estimand)
    subject = words.absent or _lower_first(estimand.subject)
    if verdict_ == NOT_ESTIMABLE or row is None:
        why = f": {reason}" if reason else ""
        return f"{estimand.subject} could not be estimated on these data{why}."
    estimate, low, high = (float(row[c]) for c in ("estimate", "conf_low", "conf_high"))
    ci = f"{level(1 - alpha)} CI {words.ci(low, high)}"
    counts = words.counts(_count(row.get("n_units")), _count(row.get("n_obs")))
    if verdict_ == EVIDENCE:
        return words.found(estimate, f"({ci}; {counts})")
    text = (
        f"No clear evidence of {subject}: the estimate is {words.amount(estimate)} ({ci}; {counts})"
    )
    if excludes_null(low, high, estimand.null):
        tested = questions or sum(e.tested and not e.needs for e in registry.ESTIMANDS)
        text += (
            f". The interval leaves out {_no_difference(estimand)} on its own, but the test does "
            f"not hold up after Holm's correction for the {tested} questions asked of these data"
        )
    else:
        text += f", an interval that includes {_no_difference(estimand)}"
    text += "."
    if estimand.name == "engagement_on_prior_nps":
        bound = f"{REVERSE_MEANINGFUL:.1f} SD per 10 NPS points"
        if reverse_ruled_out(low, high):
            text += (
                f" The interval excludes reverse links of {bound} or more in either "
                "direction, which argues against the reverse direction."
            )
        else:
            text += (
                f" The interval is too wide to rule out a reverse link of {bound} or more, "
                "so these data cannot say whether customer experience drives engagement."
            )
    elif words.detectable is not None and pd.notna(mde):
        text += (
            f" The data had an 80% chance of detecting {words.detectable(mde)}; a smaller "
            "one could have gone unnoticed."
        )
    return text


def asked(estimates: pd.DataFrame) -> tuple[registry.Estimand, ...]:
    """The tested estimands asked of these data, in the registry's order: every one that needs
    nothing beyond contract version 1, and those that do when ``estimates`` has their row (a
    dataset without the internal service table is not asked about the service chain)."""
    present = set(estimates["estimand"]) if "estimand" in estimates.columns else set()
    return tuple(e for e in registry.ESTIMANDS if e.tested and (not e.needs or e.name in present))


def findings_table(estimates: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """``findings.csv``: one row per tested estimand of the registry, verdict and sentence.

    Parameters
    ----------
    estimates : DataFrame
        ``estimates.csv`` (with ``p_adjusted``, Holm's, from ``estimate.with_holm``); an
        estimand missing from it is ``not estimable``.
    alpha : float
        The family-wise error rate; intervals are ``1 − alpha`` intervals.

    Returns
    -------
    DataFrame
        ``FINDING_COLUMNS``, in the registry's order: ``finding`` (the registry's subject),
        ``estimand``, ``section`` and ``direction`` (``WORDINGS``), ``verdict``,
        ``estimate, conf_low, conf_high`` (reported scale), ``null``, ``confidence``,
        ``p_adjusted``, ``alpha``, ``n_units, n_obs``, ``mde`` (80% power, reported scale),
        ``meaningful_size`` and ``excludes_meaningful`` (the reverse check's bound, empty
        elsewhere) and ``sentence``. Numbers rounded to ``DIGITS`` decimals.

    Notes
    -----
    The mediated share is ``not estimable`` unless the churn link itself is ``evidence``, and
    the share of the internal service–NPS link through engagement unless that link is: a share
    of an effect that may be zero has no meaning (its interval is then unbounded: Fieller's,
    for the chain, is then the whole line).
    """
    if "estimand" not in estimates.columns:  # no estimand at all: every finding not estimable
        estimates = pd.DataFrame({"estimand": pd.Series(dtype=str)})
    rows = []
    verdicts: dict[str, str] = {}
    questions = asked(estimates)
    for estimand in questions:
        words = WORDINGS.get(estimand.name) or _generic(estimand)
        matched = estimates[estimates["estimand"] == estimand.name]
        row = None if matched.empty else matched.iloc[0]

        def get(column: str, source: pd.Series | None = row) -> float:
            value = None if source is None else source.get(column)
            return float("nan") if value is None or pd.isna(value) else float(value)

        reason = "" if row is None else str(row.get("method", ""))
        reason = reason.removeprefix("not estimable: ") if reason.startswith("not est") else ""
        decided = verdict(
            get("estimate"),
            get("conf_low"),
            get("conf_high"),
            get("p_adjusted") if row is not None and "p_adjusted" in row else get("p_value"),
            estimand.null,
            alpha,
        )
        divides = _SHARES.get(estimand.name)
        if divides is not None and verdicts.get(divides[0]) != EVIDENCE:
            decided = NOT_ESTIMABLE
            reason = divides[1]
        verdicts[estimand.name] = decided
        mde = (
            minimum_detectable(estimand, row, estimates, alpha) if row is not None else float("nan")
        )
        reverse = estimand.name == "engagement_on_prior_nps"
        excludes = (
            reverse_ruled_out(get("conf_low"), get("conf_high"))
            if reverse and decided != NOT_ESTIMABLE
            else None
        )
        rows.append(
            {
                "finding": estimand.subject,
                "estimand": estimand.name,
                "section": words.section,
                "direction": words.direction,
                "verdict": decided,
                "estimate": get("estimate"),
                "conf_low": get("conf_low"),
                "conf_high": get("conf_high"),
                "null": estimand.null,
                "confidence": 1 - alpha,
                "p_adjusted": get("p_adjusted"),
                "alpha": alpha,
                "n_units": _count(None if row is None else row.get("n_units")),
                "n_obs": _count(None if row is None else row.get("n_obs")),
                "mde": mde,
                "meaningful_size": REVERSE_MEANINGFUL if reverse else float("nan"),
                "excludes_meaningful": excludes,
                "sentence": finding_sentence(
                    estimand, row, decided, alpha, mde, reason, len(questions)
                ),
            }
        )
    table = pd.DataFrame(rows, columns=list(FINDING_COLUMNS))
    numbers = ["estimate", "conf_low", "conf_high", "null", "confidence", "p_adjusted"]
    numbers += ["alpha", "mde", "meaningful_size"]
    table[numbers] = table[numbers].astype(float).round(DIGITS)
    table["excludes_meaningful"] = table["excludes_meaningful"].astype("boolean")
    return table


def verdict_of(findings: pd.DataFrame, estimand: str) -> str:
    """The verdict of one estimand in a findings table (``not estimable`` when absent).

    Parameters
    ----------
    findings : DataFrame
        ``findings.csv`` (``findings_table``).
    estimand : str
        A registry name.

    Returns
    -------
    str
        One of ``VERDICTS``.
    """
    rows = findings[findings["estimand"] == estimand]
    return NOT_ESTIMABLE if rows.empty else str(rows.iloc[0]["verdict"])


def sentence_of(findings: pd.DataFrame, estimand: str) -> str | None:
    """The sentence of one estimand in a findings table, ``None`` when absent.

    Parameters
    ----------
    findings : DataFrame
        ``findings.csv`` (``findings_table``).
    estimand : str
        A registry name.

    Returns
    -------
    str or None
    """
    rows = findings[findings["estimand"] == estimand]
    return None if rows.empty else str(rows.iloc[0]["sentence"])


def any_association(findings: pd.DataFrame) -> bool:
    """Whether any forward finding of "What we found" is ``evidence``.

    Parameters
    ----------
    findings : DataFrame
        ``findings.csv`` (``findings_table``).

    Returns
    -------
    bool
        True when a row with ``direction == "forward"`` and ``section == "found"`` has the
        verdict ``evidence``: only then may the causal reading speak of "the association".
    """
    forward = findings[(findings["direction"] == "forward") & (findings["section"] == "found")]
    return bool((forward["verdict"] == EVIDENCE).any())
