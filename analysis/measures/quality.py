"""Data quality and coverage: how much of the organisation the numbers rest on.

Three tidy tables for the first page of a report, before any finding:

* :func:`coverage` — the size of the study (units, waves, responses, customers) and the shares
  that say how well it links: unit-waves large enough to show, and customer answers that fall in
  some surveyed unit-wave's outcome window (the *linkage rate*).
* :func:`response_by_wave` — the same, wave by wave, to spot a wave with poor response.
* :func:`suppression_summary` — how many rows of a display table were hidden, and why
  (``analysis.measures.privacy.suppress``).

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
from analysis.measures.privacy import COMPLEMENTARY, SUPPRESSION, small_group_reason

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
