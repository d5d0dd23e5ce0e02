"""Data quality and coverage: how much of the organisation the numbers rest on.

Three tidy tables for the first page of a report, before any finding:

* :func:`coverage` — the size of the study (units, waves, responses, customers) and the shares
  that say how well it links: unit-waves large enough to show, and customer answers that fall in
  some surveyed unit-wave's outcome window (the *linkage rate*).
* :func:`response_by_wave` — the same, wave by wave, to spot a wave with poor response.
* :func:`suppression_summary` — how many rows of a display table were hidden, and why
  (``analysis.measures.privacy.suppress``).

With the optional ``headcount`` table (staff invited per unit and wave), two more:

* :func:`response_rates` — respondents ÷ invited by unit, region and organisation, wave by
  wave, small groups suppressed (with :func:`response_rate_trend` and
  :func:`lowest_response_units` shaping it for the page).
* :func:`nonresponse_check` — whether units' engagement rises or falls with their response
  rate (``analysis.report.sentences.nonresponse_sentence`` says its verdict in words).

Counts here are counts of whole tables (a census of what was collected), not estimates, so they
carry no interval. Shares carry a 95% Wilson score interval
(``analysis.measures.intervals.wilson_interval``; Wilson, 1927), which treats the counted things
as independent trials; unit-waves of one unit are alike, so read those intervals as a lower bound
on the uncertainty. Nothing here shows an employee answer: counts of respondents say how many
people answered, not what they answered (see ``analysis.measures.privacy``).

References
----------
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
*Journal of the American Statistical Association* 22(158), 209–212.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.data.load import Dataset
from analysis.measures.intervals import wilson_interval
from analysis.measures.privacy import (
    COMPLEMENTARY,
    SUPPRESSED,
    SUPPRESSION,
    safe_totals,
    small_group_reason,
    suppress,
)

COVERAGE_COLUMNS = (
    "measure",
    "label",
    "kind",
    "value",
    "n",
    "conf_low",
    "conf_high",
    "note",
)
RESPONSE_BY_WAVE_COLUMNS = (
    "wave",
    "wave_number",
    "employee_responses",
    "units_surveyed",
    "unit_waves_below_min",
    "share_below_min",
    "conf_low",
    "conf_high",
    "nps_answers_in_window",
)
SUPPRESSION_SUMMARY_COLUMNS = ("suppression", "label", "rows", "share", "n", "respondents")

_SHOWN_LABEL = "Shown"
_COMPLEMENTARY_LABEL = "Hidden to protect a smaller group nearby (complementary suppression)"


def _count(measure: str, label: str, value: float, note: str = "") -> dict:
    """A census count: ``n`` is the count itself and there is no interval."""
    return {
        "measure": measure,
        "label": label,
        "kind": "count",
        "value": float(value),
        "n": int(value),
        "conf_low": np.nan,
        "conf_high": np.nan,
        "note": note,
    }


def _share(
    measure: str, label: str, successes: int, n: int, confidence: float, note: str = ""
) -> dict:
    """A share on 0 … 1 of ``n`` things, with its Wilson interval (NaN when ``n`` is 0)."""
    low, high = wilson_interval(int(successes), int(n), confidence)
    return {
        "measure": measure,
        "label": label,
        "kind": "share",
        "value": successes / n if n else np.nan,
        "n": int(n),
        "conf_low": low,
        "conf_high": high,
        "note": note,
    }


def linked_answers(
    customer_nps: pd.DataFrame, panel: pd.DataFrame, outcome_window_days: int
) -> int:
    """Number of distinct customer answers in at least one surveyed unit-wave's outcome window.

    Unlike ``panel["n_responses"].sum()``, an answer inside two overlapping windows is counted
    once.

    Parameters
    ----------
    customer_nps : DataFrame
        The customer answers, with ``unit_id`` and ``responded_on``.
    panel : DataFrame
        The unit × wave panel: one row per surveyed unit-wave, with ``unit_id`` and ``wave``.
    outcome_window_days : int
        The length of each wave's outcome window.

    Returns
    -------
    int
        The number of linked answers.

    Notes
    -----
    An answer is linked when its unit has a row in ``panel`` at a wave ``w`` with
    ``w < responded_on <= w + outcome_window_days``.
    """
    if customer_nps.empty or panel.empty:
        return 0
    # The latest surveyed wave before an answer has the latest window end, so the answer is
    # linked exactly when it falls in that wave's window.
    surveyed = (
        panel[["unit_id", "wave"]].drop_duplicates().astype({"unit_id": str}).sort_values("wave")
    )
    answers = (
        customer_nps[["unit_id", "responded_on"]]
        .dropna()
        .astype({"unit_id": str})
        .sort_values("responded_on")
    )
    latest = pd.merge_asof(
        answers,
        surveyed,
        left_on="responded_on",
        right_on="wave",
        by="unit_id",
        direction="backward",
        allow_exact_matches=False,
    )
    window = pd.Timedelta(days=outcome_window_days)
    return int((latest["responded_on"] <= latest["wave"] + window).sum())


def coverage(
    dataset: Dataset,
    panel: pd.DataFrame,
    min_group_size: int,
    *,
    outcome_window_days: int | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """What the study covers: units, waves, responses, customers and how well they link.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset (``analysis.data.load.load_dataset``).
    panel : DataFrame
        Its unit × wave panel (``analysis.measures.panel.unit_wave_panel``): one row per surveyed
        unit-wave with ``n_respondents`` and ``n_responses`` (customer answers in the outcome
        window).
    min_group_size : int
        The smallest group whose employee figures may be shown.
    outcome_window_days : int, optional
        The window the panel was built with. When given, linked answers are counted exactly
        (each answer once, see ``linked_answers``); when ``None``, they are taken as
        ``panel["n_responses"].sum()``, which counts an answer twice if it falls in two
        windows. That happens only when the window is longer than the gap between two waves
        (a 91-day window after a 90-day quarter, December to March, overlaps by a day).
    confidence : float
        Level of the intervals of the shares.

    Returns
    -------
    DataFrame
        One row per measure, columns ``measure`` (a stable key), ``label`` (plain English),
        ``kind`` (``"count"``, ``"mean"`` or ``"share"``), ``value`` (shares on 0 … 1),
        ``n`` (for a count, the count itself; for a mean, the number of things averaged; for a
        share, its denominator), ``conf_low``, ``conf_high`` (Wilson interval, shares only) and
        ``note``. Measures, in order: ``units``, ``units_customer_facing``,
        ``units_back_office``, ``units_surveyed``, ``waves``, ``employee_responses``,
        ``distinct_respondents``, ``unit_waves``, ``mean_respondents_per_unit_wave``,
        ``share_unit_waves_shown``, ``nps_answers``, ``nps_answers_linked``,
        ``linkage_rate``, ``customers``, ``customers_before_first_wave``,
        ``share_customers_before_first_wave``, ``customers_churned``,
        ``share_customers_churned``.

    Notes
    -----
    ``share_unit_waves_shown`` is the share of surveyed unit-waves with at least
    ``min_group_size`` respondents: those whose own figures may be displayed before any
    complementary suppression (``analysis.measures.privacy``). The linkage rate is::

        linked answers / all customer answers

    It is below one because answers before the first wave, after the last window, or at units
    not surveyed at the preceding wave have no wave to link to. Its Wilson interval treats
    answers as independent; a census has no sampling error, so read it as the uncertainty of
    the rate as a property of the process that produced the answers.
    """
    units = dataset.units
    survey = dataset.employee_survey
    answers = dataset.customer_nps
    customers = dataset.customers
    facing = (
        units["customer_facing"].fillna(True).astype(bool)
        if "customer_facing" in units
        else pd.Series(True, index=units.index)
    )
    waves = np.sort(survey["wave"].dropna().unique())
    n_unit_waves = len(panel)
    large = int((panel["n_respondents"] >= min_group_size).sum())
    respondents = panel["n_respondents"].to_numpy(dtype=float)

    window_sum = int(panel["n_responses"].sum())
    if outcome_window_days is None:
        linked = window_sum
        link_note = (
            "sum of the panel's outcome-window counts; an answer in two overlapping windows "
            "(window longer than the gap between waves) would count twice"
        )
    else:
        linked = linked_answers(answers, panel, outcome_window_days)
        twice = window_sum - linked
        link_note = f"each answer counted once; window {outcome_window_days} days" + (
            f"; {twice} answer(s) fall in two overlapping windows" if twice > 0 else ""
        )
    total_answers = len(answers)
    if linked <= total_answers:
        linkage = _share(
            "linkage_rate",
            "Share of customer answers linked to a surveyed unit-wave",
            linked,
            total_answers,
            confidence,
            link_note,
        )
    else:  # overlapping windows counted twice: the ratio is not a share
        linkage = {
            "measure": "linkage_rate",
            "label": "Share of customer answers linked to a surveyed unit-wave",
            "kind": "share",
            "value": np.nan,
            "n": total_answers,
            "conf_low": np.nan,
            "conf_high": np.nan,
            "note": "windows overlap, so the panel counts some answers twice; pass "
            "outcome_window_days for an exact count",
        }

    first_wave = pd.Timestamp(waves[0]) if len(waves) else pd.NaT
    before = int((customers["since"] < first_wave).sum()) if len(waves) else 0
    churned = int(customers["churned_on"].notna().sum())
    rows = [
        _count("units", "Units", len(units)),
        _count("units_customer_facing", "Customer-facing units", int(facing.sum())),
        _count(
            "units_back_office",
            "Back-office units",
            int((~facing).sum()),
            "internal customers only",
        ),
        _count(
            "units_surveyed",
            "Units with at least one survey response",
            panel["unit_id"].nunique(),
        ),
        _count("waves", "Survey waves", len(waves)),
        _count("employee_responses", "Employee survey responses", len(survey)),
        _count(
            "distinct_respondents",
            "Distinct employees who responded",
            survey["respondent_id"].nunique(),
            "pseudonymous ids; one person answering several waves counts once",
        ),
        _count("unit_waves", "Surveyed unit-waves", n_unit_waves),
        {
            "measure": "mean_respondents_per_unit_wave",
            "label": "Mean respondents per surveyed unit-wave",
            "kind": "mean",
            "value": float(respondents.mean()) if n_unit_waves else np.nan,
            "n": n_unit_waves,
            "conf_low": np.nan,
            "conf_high": np.nan,
            "note": "a description of the table, not an estimate; no interval",
        },
        _share(
            "share_unit_waves_shown",
            f"Share of unit-waves with at least {min_group_size} respondents",
            large,
            n_unit_waves,
            confidence,
            "smaller groups are never shown",
        ),
        _count("nps_answers", "Customer NPS answers", total_answers),
        _count(
            "nps_answers_linked",
            "Customer answers in a surveyed unit-wave's outcome window",
            linked,
            link_note,
        ),
        linkage,
        _count("customers", "Customers", len(customers)),
        _count(
            "customers_before_first_wave",
            "Customers who joined before the first wave",
            before,
            "they enter the retention analysis at the first wave (delayed entry)",
        ),
        _share(
            "share_customers_before_first_wave",
            "Share of customers who joined before the first wave",
            before,
            len(customers),
            confidence,
        ),
        _count("customers_churned", "Customers who left", churned),
        _share(
            "share_customers_churned",
            "Share of customers who left",
            churned,
            len(customers),
            confidence,
            "over the whole observation period, not per year",
        ),
    ]
    table = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    return table.astype({"n": "int64", "value": "float64"})


def response_by_wave(
    dataset: Dataset, panel: pd.DataFrame, min_group_size: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Response and linkage wave by wave.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset.
    panel : DataFrame
        Its unit × wave panel (``analysis.measures.panel.unit_wave_panel``).
    min_group_size : int
        The smallest group whose employee figures may be shown.
    confidence : float
        Level of the Wilson interval of ``share_below_min``.

    Returns
    -------
    DataFrame
        One row per survey wave, in date order: ``wave``, ``wave_number`` (1 = first),
        ``employee_responses`` (rows of the survey at that wave), ``units_surveyed`` (unit-waves
        in the panel: units with at least one engagement score), ``unit_waves_below_min`` (of
        those, how many have fewer than ``min_group_size`` respondents and so are never shown),
        ``share_below_min`` (0 … 1) with its Wilson interval ``conf_low, conf_high``, and
        ``nps_answers_in_window`` (customer answers in the wave's outcome window at surveyed
        units: the panel's ``n_responses`` summed).
    """
    survey = dataset.employee_survey
    waves = np.sort(pd.unique(pd.concat([survey["wave"], panel["wave"]]).dropna()))
    responses = survey.groupby("wave").size()
    by_wave = panel.groupby("wave").agg(
        units_surveyed=("unit_id", "size"),
        unit_waves_below_min=("n_respondents", lambda n: int((n < min_group_size).sum())),
        nps_answers_in_window=("n_responses", "sum"),
    )
    rows = []
    for number, wave in enumerate(waves, start=1):
        surveyed = int(by_wave["units_surveyed"].get(wave, 0))
        below = int(by_wave["unit_waves_below_min"].get(wave, 0))
        low, high = wilson_interval(below, surveyed, confidence)
        rows.append(
            {
                "wave": pd.Timestamp(wave),
                "wave_number": number,
                "employee_responses": int(responses.get(wave, 0)),
                "units_surveyed": surveyed,
                "unit_waves_below_min": below,
                "share_below_min": below / surveyed if surveyed else np.nan,
                "conf_low": low,
                "conf_high": high,
                "nps_answers_in_window": int(by_wave["nps_answers_in_window"].get(wave, 0)),
            }
        )
    return pd.DataFrame(rows, columns=list(RESPONSE_BY_WAVE_COLUMNS))


def suppression_summary(
    unit_wave_suppressed: pd.DataFrame,
    *,
    count: str = "n_respondents",
    min_group_size: int | None = None,
) -> pd.DataFrame:
    """How many rows of a suppressed display table are shown, and why the others are hidden.

    Parameters
    ----------
    unit_wave_suppressed : DataFrame
        A table returned by ``measures.privacy.suppress``: it has the ``suppression`` column,
        ``""`` for a shown row, ``"fewer than N respondents"`` (primary suppression) or
        ``"complementary (protects a small group)"`` (hidden so that a small group cannot be
        recovered by subtraction from a published total).
    count : str
        Column with each row's respondents; when present, their sum per reason is reported.
    min_group_size : int, optional
        The threshold used. When given, the primary-suppression row is listed even when no
        row was hidden for that reason.

    Returns
    -------
    DataFrame
        One row per reason, shown first, then small groups, then complementary suppression,
        then any other reason found: ``suppression`` (the reason as ``suppress`` writes it),
        ``label`` (plain English), ``rows``, ``share`` (of all rows, 0 … 1), ``n`` (all rows)
        and ``respondents`` (respondents behind those rows; missing without ``count``). The
        shown and complementary rows are always listed, with zero counts if need be. Rows are
        counted, not estimated, so there is no interval.
    """
    if SUPPRESSION not in unit_wave_suppressed.columns:
        raise ValueError(
            f"the table has no {SUPPRESSION!r} column: pass it through "
            "analysis.measures.privacy.suppress first"
        )
    reasons = unit_wave_suppressed[SUPPRESSION].fillna("").astype(str)
    has_count = count in unit_wave_suppressed.columns
    counts = (
        pd.to_numeric(unit_wave_suppressed[count], errors="coerce").fillna(0) if has_count else None
    )
    primary_prefix = "fewer than "
    order = ["", *sorted(r for r in reasons.unique() if r.startswith(primary_prefix))]
    if min_group_size is not None and small_group_reason(min_group_size) not in order:
        order.append(small_group_reason(min_group_size))
    order.append(COMPLEMENTARY)
    order += sorted(r for r in reasons.unique() if r not in order)
    total = len(reasons)
    rows = []
    for reason in order:
        mask = (reasons == reason).to_numpy()
        if reason == "":
            label = _SHOWN_LABEL
        elif reason == COMPLEMENTARY:
            label = _COMPLEMENTARY_LABEL
        elif reason.startswith(primary_prefix):
            label = f"Hidden: {reason} answered"
        else:
            label = f"Hidden: {reason}"
        rows.append(
            {
                SUPPRESSION: reason,
                "label": label,
                "rows": int(mask.sum()),
                "share": mask.sum() / total if total else np.nan,
                "n": total,
                "respondents": int(counts[mask].sum()) if has_count else pd.NA,
            }
        )
    table = pd.DataFrame(rows, columns=list(SUPPRESSION_SUMMARY_COLUMNS))
    return table.astype({"respondents": "Int64"})


# --------------------------------------------------------------------------------------------
# Response rates (the optional ``headcount`` table) and the non-response check

RESPONSE_RATE_COLUMNS = (
    "level",
    "unit_id",
    "region",
    "wave",
    "label",
    "respondents",
    "headcount",
    "response_rate",
    "conf_low",
    "conf_high",
    SUPPRESSED,
    SUPPRESSION,
)
RATE_LEVELS = ("organisation", "region", "unit")
ORGANISATION_LABEL = "Organisation"
NO_REGION_LABEL = "No region"
_RATE_VALUES = ["respondents", "response_rate", "conf_low", "conf_high"]
_COUNT = "_respondents"  # the true count suppression works on; never returned

#: The verdicts of ``analysis.report.findings`` (a higher layer, so the words are repeated here;
#: ``tests/test_response_rates.py`` checks they stay the same).
EVIDENCE = "evidence"
NO_CLEAR_EVIDENCE = "no clear evidence"
NOT_ESTIMABLE = "not estimable"
#: Fewest units (clusters) the non-response slope is estimated from: a cluster-robust variance
#: from fewer is too unstable to test with (Cameron & Miller, 2015).
MIN_NONRESPONSE_UNITS = 5
#: The slope is stated per this many percentage points of response rate.
RATE_STEP = 10.0
NONRESPONSE_FIELDS = (
    "estimate",
    "std_error",
    "conf_low",
    "conf_high",
    "p_value",
    "df",
    "correlation",
    "n_units",
    "n_obs",
    "confidence",
    "alpha",
    "mde",
    "verdict",
    "reason",
)


def response_rates(
    survey: pd.DataFrame,
    headcount: pd.DataFrame,
    units: pd.DataFrame,
    min_group_size: int,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Response rates by unit × wave, region × wave and organisation × wave, small groups hidden.

    Parameters
    ----------
    survey : DataFrame
        The employee survey (``Dataset.employee_survey``): ``respondent_id``, ``unit_id``,
        ``wave``.
    headcount : DataFrame
        The optional ``headcount`` table (``Dataset.headcount``): ``unit_id``, ``wave``,
        ``headcount`` (staff invited), at most one row per unit-wave, never fewer than the
        unit-wave's respondents (the loader checks both).
    units : DataFrame
        The units table: ``unit_id`` and, when present, ``unit_name`` (the label) and
        ``region`` (without it there are no region rows).
    min_group_size : int
        The smallest number of respondents a shown rate or count may rest on.
    confidence : float
        Level of the Wilson intervals.

    Returns
    -------
    DataFrame
        Columns ``RESPONSE_RATE_COLUMNS``: ``level`` (``"organisation"``, ``"region"`` or
        ``"unit"``, in that order, then by wave and label), ``unit_id`` and ``region`` (missing
        where they do not apply), ``wave``, ``label`` (unit name, region or
        ``"Organisation"``), ``respondents`` (distinct respondents), ``headcount``,
        ``response_rate`` on 0 … 1 with its Wilson interval ``conf_low, conf_high``, and
        ``suppressed`` / ``suppression`` as ``analysis.measures.privacy.suppress`` writes
        them. Where a row is suppressed, ``respondents``, ``response_rate`` and the interval
        are missing; ``headcount`` is HR data and stays.

    Notes
    -----
    For a unit-wave with ``r`` distinct respondents out of ``h`` staff invited::

        response rate = r / h

    the ratio employee-survey platforms such as Glint and Culture Amp report (respondents ÷
    invited), and AAPOR's (2016) simplest response rate, RR1, with every invitee counted as
    eligible. A region's or the
    organisation's rate pools its unit-waves, ``Σ r / Σ h``: a headcount-weighted mean of the
    units' rates. The interval is Wilson's (1927) score interval
    (``analysis.measures.intervals.wilson_interval``), which treats each invitee as an
    independent trial; a census has no sampling error, so read it as the uncertainty of the
    rate as a property of the process that produced the answers. A unit-wave with
    ``h = 0`` has no rate.

    Only unit-waves with a ``headcount`` row enter: respondents of a unit-wave without one have
    no denominator, and leaving them out of the totals keeps each total's rate a ratio of
    matching counts.

    Privacy: respondent counts are derived from employees, and ``r = rate × h`` with ``h``
    shown, so rates are suppressed like counts. A unit-wave with fewer than
    ``min_group_size`` respondents is hidden, and complementary suppression
    (``analysis.measures.privacy.suppress`` with the region × wave and wave totals as parents)
    hides enough others that no small group's count follows from a published region or
    organisation total by subtraction; a region or organisation total that would give one
    away, or rests on fewer than ``min_group_size`` respondents, is withheld
    (``analysis.measures.privacy.safe_totals``). What suppression does not rule out are
    bounds: a hidden count lies between 0 and its headcount, so when every hidden unit of a
    region answered in full, the subtracted sum equals their headcounts and gives each away.

    References
    ----------
    The American Association for Public Opinion Research (2016). *Standard Definitions: Final
    Dispositions of Case Codes and Outcome Rates for Surveys* (9th ed.). AAPOR.

    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    *Journal of the American Statistical Association* 22(158), 209–212.
    """
    unit_table = _unit_rates(survey, headcount, units, confidence)
    if unit_table.empty:
        return _typed(pd.DataFrame(columns=list(RESPONSE_RATE_COLUMNS)))
    has_region = "region" in units.columns
    parents = [("wave",)] + ([("region", "wave")] if has_region else [])
    shown = suppress(
        unit_table,
        count=_COUNT,
        values=_RATE_VALUES,
        min_group_size=min_group_size,
        parents=parents,
    )
    shown["respondents"] = shown["respondents"].astype("Int64")
    pieces = []
    for by, level in [(("wave",), "organisation"), (("region", "wave"), "region")]:
        if by not in parents:
            continue
        pieces.append(_total_rates(unit_table, by, level, parents, min_group_size, confidence))
    pieces.append(shown.assign(level="unit").drop(columns=_COUNT))
    table = pd.concat([p for p in pieces if len(p)], ignore_index=True)
    table["level"] = pd.Categorical(table["level"], categories=RATE_LEVELS, ordered=True)
    table = table.sort_values(["level", "wave", "label"], kind="stable").reset_index(drop=True)
    table["level"] = table["level"].astype(str)
    return _typed(table)


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    """``response_rates``'s columns, in order, with their types."""
    return table[list(RESPONSE_RATE_COLUMNS)].astype(
        {
            "level": "str",
            "wave": "datetime64[ns]",
            "unit_id": "string",
            "region": "string",
            "label": "string",
            "respondents": "Int64",
            "headcount": "Int64",
            "response_rate": "float64",
            "conf_low": "float64",
            "conf_high": "float64",
            SUPPRESSED: bool,
            SUPPRESSION: "str",
        }
    )


def _with_wilson(table: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """``response_rate`` and its Wilson interval from the ``_respondents`` and ``headcount``."""
    rates, lows, highs = [], [], []
    for r, h in zip(table[_COUNT], table["headcount"], strict=True):
        r, h = int(r), int(h)
        low, high = wilson_interval(r, h, confidence)
        rates.append(r / h if h else np.nan)
        lows.append(low)
        highs.append(high)
    return table.assign(response_rate=rates, conf_low=lows, conf_high=highs)


def _unit_rates(
    survey: pd.DataFrame, headcount: pd.DataFrame, units: pd.DataFrame, confidence: float
) -> pd.DataFrame:
    """One row per unit-wave of ``headcount``: exact counts, rate and interval, nothing hidden."""
    answered = (
        survey.assign(unit_id=survey["unit_id"].astype(str))
        .groupby(["unit_id", "wave"])["respondent_id"]
        .nunique()
        .rename(_COUNT)
    )
    invited = headcount[["unit_id", "wave", "headcount"]].astype({"unit_id": str})
    table = invited.merge(answered.reset_index(), on=["unit_id", "wave"], how="left")
    table[_COUNT] = table[_COUNT].fillna(0).astype("int64")
    table["headcount"] = table["headcount"].astype("int64")
    info = units.assign(unit_id=units["unit_id"].astype(str)).set_index("unit_id")
    names = (
        info["unit_name"].astype("string").fillna(pd.Series(info.index, index=info.index))
        if "unit_name" in info
        else pd.Series(info.index, index=info.index, dtype="string")
    )
    table["label"] = table["unit_id"].map(names).fillna(table["unit_id"])
    if "region" in info:
        table["region"] = (
            table["unit_id"].map(info["region"].astype("string")).fillna(NO_REGION_LABEL)
        )
    else:
        table["region"] = pd.NA
    table["respondents"] = table[_COUNT]
    table = table.sort_values(["wave", "unit_id"], kind="stable").reset_index(drop=True)
    return _with_wilson(table, confidence)


def _total_rates(
    unit_table: pd.DataFrame,
    by: tuple[str, ...],
    level: str,
    parents: list[tuple[str, ...]],
    min_group_size: int,
    confidence: float,
) -> pd.DataFrame:
    """Pooled rates over ``by``, withheld where ``safe_totals`` withholds the group's total."""
    # Only the withholding decision is wanted from safe_totals; the value it averages does not
    # matter, but it must be present wherever a row has respondents (the rate always is).
    status = safe_totals(
        unit_table.assign(_any=unit_table["response_rate"].fillna(0.0)),
        by=by,
        count=_COUNT,
        values=["_any"],
        min_group_size=min_group_size,
        parents=parents,
    )
    sums = unit_table.groupby(list(by), dropna=False)[[_COUNT, "headcount"]].sum().reset_index()
    table = sums.merge(status[[*by, SUPPRESSED, SUPPRESSION]], on=list(by), how="left")
    table = _with_wilson(table, confidence)
    table["respondents"] = table[_COUNT].astype("Int64")
    hidden = table[SUPPRESSED].to_numpy(dtype=bool)
    for column in _RATE_VALUES:
        table[column] = table[column].where(~hidden)
    table["level"] = level
    table["unit_id"] = pd.NA
    if "region" not in by:
        table["region"] = pd.NA
        table["label"] = ORGANISATION_LABEL
    else:
        table["label"] = table["region"]
    return table.drop(columns=_COUNT)


def response_rate_trend(rates: pd.DataFrame) -> pd.DataFrame:
    """The organisation's and regions' shown rates, in percent, for a chart by wave.

    Parameters
    ----------
    rates : DataFrame
        ``response_rates``'s table.

    Returns
    -------
    DataFrame
        One row per shown organisation-wave and region-wave, the organisation first:
        ``wave``, ``label`` (the line: ``"Organisation"`` or the region), ``percent``,
        ``conf_low``, ``conf_high`` (percent, the Wilson interval) and ``respondents``. The
        shape ``analysis.report.figures.trend_by_wave`` draws with ``series="label"``.
    """
    shown = rates[rates["level"].isin(["organisation", "region"]) & ~rates[SUPPRESSED]]
    shown = shown.dropna(subset=["response_rate"])
    return pd.DataFrame(
        {
            "wave": shown["wave"],
            "label": shown["label"].astype(str),
            "percent": 100 * shown["response_rate"],
            "conf_low": 100 * shown["conf_low"],
            "conf_high": 100 * shown["conf_high"],
            "respondents": shown["respondents"].astype("int64"),
        }
    ).reset_index(drop=True)


def lowest_response_units(rates: pd.DataFrame, count: int = 10) -> pd.DataFrame:
    """The shown units with the lowest response rates in the latest wave that shows any.

    Parameters
    ----------
    rates : DataFrame
        ``response_rates``'s table.
    count : int
        How many units to list at most.

    Returns
    -------
    DataFrame
        Up to ``count`` shown unit rows of that wave, lowest rate first (ties by label), with
        ``response_rate``'s columns. Hidden units are never listed: the lowest rates often
        belong to small units, which suppression hides, so the list starts at the lowest rate
        that may be shown. Empty when no unit-wave is shown.
    """
    shown = rates[(rates["level"] == "unit") & ~rates[SUPPRESSED]].dropna(subset=["response_rate"])
    if shown.empty:
        return shown.reset_index(drop=True)
    latest = shown[shown["wave"] == shown["wave"].max()]
    ordered = latest.sort_values(["response_rate", "label"], kind="stable")
    return ordered.head(count).reset_index(drop=True)


def _weighted_correlation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Pearson's correlation with weights ``w``."""
    if len(x) < 3:
        return np.nan
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    sxy = np.average((x - mx) * (y - my), weights=w)
    sxx = np.average((x - mx) ** 2, weights=w)
    syy = np.average((y - my) ** 2, weights=w)
    return float(sxy / np.sqrt(sxx * syy)) if sxx > 0 and syy > 0 else np.nan


def nonresponse_check(
    rates: pd.DataFrame, unit_wave: pd.DataFrame, alpha: float = 0.05
) -> pd.Series:
    """Is a unit's engagement related to its response rate? Slope across shown unit-waves.

    Parameters
    ----------
    rates : DataFrame
        ``response_rates``'s table; only its shown ``unit`` rows are used.
    unit_wave : DataFrame
        The released unit × wave table (``results["unit_wave"]``): ``unit_id``, ``wave``,
        ``n_respondents``, ``engagement_index`` and ``suppressed``. Only shown rows are used,
        so nothing that is not on the report enters the check.
    alpha : float
        The test's level; the interval has confidence ``1 − alpha``.

    Returns
    -------
    Series
        ``NONRESPONSE_FIELDS``: ``estimate`` (points of the 0–100 engagement index per
        ``RATE_STEP`` = 10 percentage points more response, within a wave), ``std_error``,
        ``conf_low``, ``conf_high``, ``p_value``, ``df`` (units − 1), ``correlation``
        (weighted Pearson correlation of the two across the same unit-waves, descriptive),
        ``n_units``, ``n_obs`` (unit-waves), ``confidence``, ``alpha``, ``mde`` (the slope
        the check detects with 80% power), ``verdict`` (``"evidence"``, ``"no clear
        evidence"`` or ``"not estimable"``, as ``analysis.report.findings`` uses them) and
        ``reason`` (why not estimable, else ``""``).

    Notes
    -----
    Weighted least squares of the unit-wave engagement index ``y`` on the response rate in
    units of 10 percentage points ``x``, with one intercept per wave::

        y_uw = α_w + β x_uw + e_uw,   weights n_uw (respondents behind y_uw)

    The wave intercepts compare units within a wave, so an organisation-wide change between
    waves (a drive that lifts every unit's response) is not read as a unit-level relation.
    Weights ``n`` make each unit-wave count as its sampling precision (a mean of ``n``
    answers has variance ``σ²/n``). Unit-waves of one unit are not independent, so the
    variance is cluster-robust by unit (CR1; Cameron & Miller, 2015)::

        V = G/(G − 1) · (X'WX)⁻¹ [Σ_g X_g'W_g e_g e_g'W_g X_g] (X'WX)⁻¹

    with ``G`` units, and the interval and test use Student's t with ``G − 1`` degrees of
    freedom. The minimum detectable slope is ``(t_{1−α/2, G−1} + t_{0.80, G−1}) · SE``
    (Bloom, 1995). Verdict as ``analysis.report.findings.verdict``: ``evidence`` when
    ``p < alpha`` and the interval excludes 0, ``not estimable`` with fewer than
    ``MIN_NONRESPONSE_UNITS`` units or no spread in response rate, ``no clear evidence``
    otherwise. It is one pre-specified check of data quality, not one of the estimands
    Holm's correction covers.

    A relation means respondents and non-respondents may differ: where engagement rises with
    response, units' low response may hide lower engagement among those who did not answer
    (Groves, 2006), so their indexes may flatter them. No relation does not prove the
    non-respondents answer like the respondents.

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical
    power of experimental designs. *Evaluation Review*, 19(5), 547–556.

    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference.
    *Journal of Human Resources* 50(2), 317–372.

    Groves, R. M. (2006). Nonresponse rates and nonresponse bias in household surveys.
    *Public Opinion Quarterly* 70(5), 646–675.
    """
    from scipy import stats

    confidence = 1 - alpha
    result = dict.fromkeys(NONRESPONSE_FIELDS, np.nan)
    result.update(confidence=confidence, alpha=alpha, verdict=NOT_ESTIMABLE, reason="")
    shown_rates = rates[(rates["level"] == "unit") & ~rates[SUPPRESSED].astype(bool)]
    shown_rates = shown_rates.dropna(subset=["response_rate"])
    released = unit_wave[~unit_wave[SUPPRESSED].astype(bool)].dropna(subset=["engagement_index"])
    rows = (
        shown_rates[["unit_id", "wave", "response_rate"]]
        .astype({"unit_id": str})
        .merge(
            released[["unit_id", "wave", "n_respondents", "engagement_index"]].astype(
                {"unit_id": str}
            ),
            on=["unit_id", "wave"],
        )
    )
    rows = rows[rows["n_respondents"] > 0]
    n_units, n_obs = rows["unit_id"].nunique(), len(rows)
    result.update(n_units=n_units, n_obs=n_obs)
    x = 100 * rows["response_rate"].to_numpy(float) / RATE_STEP
    y = rows["engagement_index"].to_numpy(float)
    w = rows["n_respondents"].to_numpy(float)
    waves = pd.get_dummies(rows["wave"]).to_numpy(float)
    design = np.column_stack([x, waves]) if n_obs else np.zeros((0, 1))
    if n_units < MIN_NONRESPONSE_UNITS:
        result["reason"] = (
            f"{n_units} unit(s) with both a shown response rate and a shown engagement index; "
            f"at least {MIN_NONRESPONSE_UNITS} are needed"
        )
        return pd.Series(result)[list(NONRESPONSE_FIELDS)]
    if np.linalg.matrix_rank(design) < design.shape[1]:
        result["reason"] = "response rates do not vary within a wave"
        return pd.Series(result)[list(NONRESPONSE_FIELDS)]
    weighted = design * w[:, None]
    bread = np.linalg.inv(design.T @ weighted)
    beta = bread @ (weighted.T @ y)
    residual = y - design @ beta
    scores = pd.DataFrame(weighted * residual[:, None]).groupby(rows["unit_id"].to_numpy()).sum()
    meat = scores.to_numpy().T @ scores.to_numpy()
    groups = len(scores)
    variance = groups / (groups - 1) * bread @ meat @ bread
    estimate, std_error = float(beta[0]), float(np.sqrt(variance[0, 0]))
    df = groups - 1
    t = stats.t.ppf(1 - alpha / 2, df)
    low, high = estimate - t * std_error, estimate + t * std_error
    p_value = float(2 * stats.t.sf(abs(estimate) / std_error, df)) if std_error > 0 else np.nan
    result.update(
        estimate=estimate,
        std_error=std_error,
        conf_low=low,
        conf_high=high,
        p_value=p_value,
        df=df,
        correlation=_weighted_correlation(x, y, w),
        mde=float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(0.80, df)) * std_error),
    )
    if any(pd.isna(v) for v in (estimate, low, high, p_value)):
        result["reason"] = "the slope's standard error could not be computed"
    elif p_value < alpha and (low > 0 or high < 0):
        result["verdict"] = EVIDENCE
    else:
        result["verdict"] = NO_CLEAR_EVIDENCE
    return pd.Series(result)[list(NONRESPONSE_FIELDS)]
