"""What to act on: the focus matrix, trends, regions and the units that need attention.

Each function takes the released result tables (``results/unit_wave.csv``, ``drivers.csv``) or
customer answers and returns a table a chart or a table on the page draws, and each ``…_sentence``
answers the chart's question from the same numbers. Employee-derived values come only from the
released unit × wave table, whose small groups are already withheld, so nothing here can show a
group below the minimum size. A sentence states a difference or a change only when its test
supports it; otherwise it says "no clear evidence" first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.measures import nps
from analysis.measures.comparisons import equal_estimates_test, paired_change
from analysis.measures.internal import scale_label
from analysis.measures.intervals import mean_with_t_interval
from analysis.report.findings import level, signed
from analysis.report.sentences import in_sentence, interval

INDEX_BOUNDS = (0.0, 100.0)
FOCUS_COLUMNS = (
    "term",
    "label",
    "score",
    "score_low",
    "score_high",
    "score_units",
    "impact",
    "impact_low",
    "impact_high",
    "clear",
    "impact_units",
)
ATTENTION_ROWS = 10


def _shown(unit_wave: pd.DataFrame, column: str) -> pd.DataFrame:
    """The unit-waves whose ``column`` is released (not suppressed, not missing)."""
    shown = unit_wave
    if "suppressed" in shown:
        shown = shown[~shown["suppressed"].astype(str).str.lower().isin(["true", "1"])]
    return shown.dropna(subset=[column])


def _p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


# --------------------------------------------------------------------------------------------
# The focus matrix


def focus_table(
    unit_wave: pd.DataFrame, drivers: pd.DataFrame, confidence: float = 0.95
) -> pd.DataFrame:
    """Each internal scale's score in the latest wave against its weight for customer NPS.

    Parameters
    ----------
    unit_wave : DataFrame
        The released unit × wave table: ``unit_id``, ``wave``, ``suppressed`` and one
        ``<scale>_index`` column (0–100) per scale.
    drivers : DataFrame
        ``drivers.csv``: ``term`` (a ``<scale>_index`` column), ``share``, ``share_conf_low``,
        ``share_conf_high`` (percent), ``significant`` (Benjamini–Hochberg) and ``n_units``.
    confidence : float
        Level of the score's interval.

    Returns
    -------
    DataFrame
        One row per driver: ``term``, ``label``, ``score`` with ``score_low``, ``score_high``
        and ``score_units`` (released unit-waves of the latest wave with the scale), and
        ``impact`` with ``impact_low``, ``impact_high`` (the share, percent), ``clear`` (the
        BH-adjusted test) and ``impact_units``.

    Notes
    -----
    The score is the mean of the units' released indices in the latest wave, with a t interval
    across units (``mean_with_t_interval``): every unit counts once, whatever its size, as on
    the other pages. The impact is the scale's relative weight (Johnson 2000) as a share of the
    NPS differences the scales explain together; being non-negative, its interval never
    crosses 0, so whether a scale stands out from chance is the drivers' BH-adjusted test.
    """
    rows = []
    for _, driver in drivers.iterrows():
        term = str(driver["term"])
        score = {"mean": np.nan, "conf_low": np.nan, "conf_high": np.nan}
        units = 0
        if term in unit_wave:
            shown = _shown(unit_wave, term)
            if not shown.empty:
                latest = shown[shown["wave"] == shown["wave"].max()]
                values = latest[term].to_numpy(float)
                score, units = mean_with_t_interval(values, confidence, INDEX_BOUNDS), len(values)
        rows.append(
            {
                "term": term,
                "label": scale_label(term),
                "score": score["mean"],
                "score_low": score["conf_low"],
                "score_high": score["conf_high"],
                "score_units": units,
                "impact": float(driver["share"]),
                "impact_low": float(driver["share_conf_low"]),
                "impact_high": float(driver["share_conf_high"]),
                "clear": str(driver["significant"]).lower() in ("true", "1"),
                "impact_units": int(driver["n_units"]),
            }
        )
    return pd.DataFrame(rows, columns=list(FOCUS_COLUMNS))


def focus_sentence(focus: pd.DataFrame, link_found: bool) -> str:
    """What the focus matrix says to do, named only where the data support it.

    Parameters
    ----------
    focus : DataFrame
        ``focus_table``.
    link_found : bool
        Whether the engagement–NPS finding has the verdict ``evidence``.

    Returns
    -------
    str
        Without a link, or without a scale that stands out from chance, a sentence that names
        none to act on. Otherwise the scales in the "priority" corner (weight at or above the
        median, score below the mean), each with its score, weight, intervals and n.
    """
    focus = focus.dropna(subset=["score", "impact"])
    if focus.empty:
        return "No scale has both a current score and an estimated weight to place on the matrix."
    if not link_found:
        return (
            "No clear evidence links engagement to customer NPS in these data, so the matrix only "
            "ranks the scales against each other: no corner is a reason to act for NPS."
        )
    clear = focus[focus["clear"]]
    if clear.empty:
        return (
            "No scale's weight for customer NPS stands out from chance after correcting for "
            "testing several at once, so the corners rank the scales against each other and "
            "do not point to one to act on."
        )
    priority = clear[
        (clear["impact"] >= focus["impact"].median()) & (clear["score"] < focus["score"].mean())
    ]
    if priority.empty:
        names = ", ".join(in_sentence(label) for label in clear["label"])
        return (
            f"The scales that carry clear weight for customer NPS ({names}) already score at or "
            "above the average of the scales: protect them rather than expect a quick gain."
        )
    parts = [
        f"{in_sentence(row['label'])} (score {row['score']:.0f} of 100, 95% CI "
        f"{row['score_low']:.0f} to {row['score_high']:.0f}, {int(row['score_units'])} units; "
        f"{row['impact']:.0f}% of the explained NPS differences, 95% CI "
        f"{row['impact_low']:.0f}% to {row['impact_high']:.0f}%)"
        for _, row in priority.iterrows()
    ]
    subject = (
        "It carries clear weight for customer NPS but scores"
        if len(parts) == 1
        else "Each carries clear weight for customer NPS but scores"
    )
    return (
        "Priority: "
        + "; ".join(parts)
        + f". {subject} below the other scales, so a rise there is where NPS is most likely "
        "to follow, if the link is causal."
    )


# --------------------------------------------------------------------------------------------
# Trends


def wave_trend(unit_wave: pd.DataFrame, column: str, confidence: float = 0.95) -> pd.DataFrame:
    """The units' mean of a released index per wave, with its interval and n.

    Parameters
    ----------
    unit_wave : DataFrame
        The released unit × wave table.
    column : str
        A 0–100 index column (``engagement_index``).
    confidence : float
        Level of the intervals.

    Returns
    -------
    DataFrame
        ``wave``, ``value``, ``conf_low``, ``conf_high``, ``n`` (units shown that wave).

    Notes
    -----
    Each wave's mean weights units equally, with a t interval across units
    (``mean_with_t_interval``); it describes the typical unit, not the typical employee.
    """
    rows = []
    for wave, group in _shown(unit_wave, column).groupby("wave", sort=True):
        values = group[column].to_numpy(float)
        summary = mean_with_t_interval(values, confidence, INDEX_BOUNDS)
        rows.append(
            {
                "wave": wave,
                "value": summary["mean"],
                "conf_low": summary["conf_low"],
                "conf_high": summary["conf_high"],
                "n": len(values),
            }
        )
    return pd.DataFrame(rows, columns=["wave", "value", "conf_low", "conf_high", "n"])


def engagement_change(
    unit_wave: pd.DataFrame, column: str = "engagement_index", confidence: float = 0.95
) -> pd.Series:
    """The units' change in a released index from the first to the latest wave (paired).

    Parameters
    ----------
    unit_wave : DataFrame
        The released unit × wave table.
    column : str
        The index.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``paired_change`` with ``first`` and ``last``, the waves compared.
    """
    shown = _shown(unit_wave, column)
    waves = sorted(shown["wave"].unique())
    if len(waves) < 2:
        return pd.Series({"estimate": np.nan, "n_units": 0, "first": None, "last": None})
    change = paired_change(shown, column, waves[0], waves[-1], confidence)
    return pd.concat([change, pd.Series({"first": waves[0], "last": waves[-1]})])


def _when(value) -> str:
    return value if isinstance(value, str) else f"{pd.Timestamp(value):%B %Y}"


def change_sentence(change: pd.Series, subject: str, unit: str, alpha: float = 0.05) -> str:
    """Is it moving? The change from the first to the last period, "no clear" when not clear.

    Parameters
    ----------
    change : Series
        ``engagement_change`` or ``nps_change``: ``estimate``, ``conf_low``, ``conf_high``,
        ``p_value``, ``n_units``, ``first`` and ``last``.
    subject : str
        What moved ("Engagement", "Customer NPS").
    unit : str
        Its unit ("index points", "NPS points").
    alpha : float
        The test's level; the interval is at ``1 − alpha``.

    Returns
    -------
    str
    """
    if pd.isna(change.get("estimate")):
        return f"{subject} cannot be compared over time here: fewer than two periods with data."
    interval = (
        f"{level(1 - alpha)} CI {signed(change['conf_low'])} to {signed(change['conf_high'])}; "
        f"{int(change['n_units']):,} units"
    )
    span = f"from {_when(change['first'])} to {_when(change['last'])}"
    if change["p_value"] < alpha and not change["conf_low"] <= 0 <= change["conf_high"]:
        direction = "rose" if change["estimate"] > 0 else "fell"
        return (
            f"{subject} {direction} {span}: a change of {signed(change['estimate'])} {unit} "
            f"({interval}, {_p(change['p_value'])})."
        )
    return (
        f"No clear change in {in_sentence(subject)} {span}: {signed(change['estimate'])} {unit} "
        f"({interval}), an interval that includes no change."
    )


def customer_quarters(customer_nps: pd.DataFrame) -> pd.DataFrame:
    """Customer answers with their calendar quarter (``2024Q1``) as ``quarter``."""
    return customer_nps.assign(quarter=customer_nps["responded_on"].dt.to_period("Q").astype(str))


def nps_change(answers: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """Customer NPS of the last quarter minus the first, clustered by unit.

    Parameters
    ----------
    answers : DataFrame
        ``customer_quarters`` of the customer answers.
    confidence : float
        Level of the interval.

    Returns
    -------
    Series
        ``analysis.measures.nps.clustered_nps_difference`` (last − first) with ``first`` and
        ``last``, the quarters compared.
    """
    quarters = sorted(answers["quarter"].unique())
    if len(quarters) < 2:
        return pd.Series({"estimate": np.nan, "n_units": 0, "first": None, "last": None})
    first, last = quarters[0], quarters[-1]
    change = nps.clustered_nps_difference(
        nps.category_counts(answers[answers["quarter"] == last], ["unit_id"]),
        nps.category_counts(answers[answers["quarter"] == first], ["unit_id"]),
        confidence,
    )
    return pd.concat([change, pd.Series({"first": first, "last": last})])


# --------------------------------------------------------------------------------------------
# Regions


def region_engagement(
    unit_wave: pd.DataFrame, column: str = "engagement_index", confidence: float = 0.95
) -> pd.DataFrame:
    """Each region's mean released index in the latest wave, with its interval and n units.

    Parameters
    ----------
    unit_wave : DataFrame
        The released unit × wave table, with ``region``.
    column : str
        The index.
    confidence : float
        Level of the intervals.

    Returns
    -------
    DataFrame
        ``region``, ``value``, ``std_error``, ``conf_low``, ``conf_high``, ``n`` (units).
    """
    columns = ["region", "value", "std_error", "conf_low", "conf_high", "n"]
    if "region" not in unit_wave:
        return pd.DataFrame(columns=columns)
    shown = _shown(unit_wave, column)
    if shown.empty:
        return pd.DataFrame(columns=columns)
    latest = shown[shown["wave"] == shown["wave"].max()]
    rows = []
    for region, group in latest.groupby("region", sort=True):
        values = group[column].to_numpy(float)
        summary = mean_with_t_interval(values, confidence, INDEX_BOUNDS)
        rows.append(
            {
                "region": region,
                "value": summary["mean"],
                "std_error": summary["std_error"],
                "conf_low": summary["conf_low"],
                "conf_high": summary["conf_high"],
                "n": len(values),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def region_sentence(
    table: pd.DataFrame, value: str, subject: str, unit: str, alpha: float = 0.05
) -> str:
    """Does it differ by region? Cochran's Q over the regions, "no clear evidence" first.

    Parameters
    ----------
    table : DataFrame
        One row per region: ``region``, ``value``, ``std_error`` and a count ``n`` or
        ``n_clusters`` (units).
    value : str
        The estimate's column (``value``, ``nps``).
    subject : str
        What is compared ("Customer NPS").
    unit : str
        Its unit ("points").
    alpha : float
        The test's level.

    Returns
    -------
    str
    """
    if table.empty or len(table) < 2:
        return f"{subject} cannot be compared between regions: fewer than two regions with data."
    test = equal_estimates_test(table[value], table["std_error"])
    if pd.isna(test["p_value"]):
        return f"{subject} cannot be compared between regions: too few units per region."
    ordered = table.sort_values(value)
    low, high = ordered.iloc[0], ordered.iloc[-1]
    units = int(table["n_clusters" if "n_clusters" in table else "n"].sum())
    spread = (
        f"from {signed(low[value])} {unit} in {low['region']} to {signed(high[value])} in "
        f"{high['region']}; {len(table)} regions, {units:,} units"
    )
    if test["p_value"] < alpha:
        return (
            f"{subject} differs between regions ({spread}; test of no difference "
            f"{_p(test['p_value'])}). The table shows each region's interval."
        )
    return (
        f"No clear evidence that {in_sentence(subject)} differs between regions ({spread}; "
        f"test of no difference {_p(test['p_value'])}): the gaps are within what chance "
        "produces."
    )


# --------------------------------------------------------------------------------------------
# Units that need attention


def attention_table(
    ranking: pd.DataFrame, unit_nps: pd.DataFrame, rows: int = ATTENTION_ROWS
) -> pd.DataFrame:
    """The lowest-ranked units on shrunken engagement, with their own customer NPS.

    Parameters
    ----------
    ranking : DataFrame
        ``analysis.measures.internal.shrunken_unit_engagement``: units with fewer distinct
        respondents than the minimum have no rank and are never listed.
    unit_nps : DataFrame
        ``analysis.measures.nps.nps_by_unit`` (``unit_id``, ``nps``, ``conf_low``,
        ``conf_high``, ``n``). The unit's own NPS and adjusted-Wald interval are shown, not the
        shrunken value: where units barely differ, shrinkage gives every unit the average and
        the average's interval, which reads as ten identical units.
    rows : int
        How many units to list.

    Returns
    -------
    DataFrame
        The ``rows`` lowest-ranked units, lowest first, with ``below_average`` (the upper end
        of the unit's interval lies below the mean of the ranked units) and ``nps``,
        ``nps_low``, ``nps_high``, ``nps_answers``.
    """
    ranked = ranking.dropna(subset=["rank"])
    average = float(ranked["shrunken"].mean()) if not ranked.empty else np.nan
    lowest = ranked.sort_values(["shrunken", "unit_id"]).head(rows)
    customers = unit_nps.set_index("unit_id").reindex(lowest["unit_id"])
    return lowest.assign(
        below_average=lowest["conf_high"].to_numpy(float) < average,
        average=average,
        nps=customers["nps"].to_numpy(float),
        nps_low=customers["conf_low"].to_numpy(float),
        nps_high=customers["conf_high"].to_numpy(float),
        nps_answers=customers["n"].fillna(0).to_numpy(int),
    )


def attention_sentence(ranking: pd.DataFrame, min_group_size: int) -> str:
    """How many units' engagement is clearly below the average, and how the list is chosen.

    Parameters
    ----------
    ranking : DataFrame
        ``shrunken_unit_engagement``.
    min_group_size : int
        The smallest number of distinct respondents a unit needs to be ranked.

    Returns
    -------
    str
    """
    ranked = ranking.dropna(subset=["rank"])
    if ranked.empty:
        return f"No unit has {min_group_size} or more different respondents, so no unit is ranked."
    average = float(ranked["shrunken"].mean())
    below = int((ranked["conf_high"] < average).sum())
    hidden = int(ranking["rank"].isna().sum())
    lead = (
        f"{below} of {len(ranked):,} ranked units have engagement clearly below the average "
        f"of {average:.1f} (their whole 95% interval lies below it)"
        if below
        else f"No clear evidence that any of the {len(ranked):,} ranked units is below the "
        f"average engagement of {average:.1f}: every unit's 95% interval reaches it"
    )
    chance = (
        f"; with {len(ranked):,} units, a few such flags can arise by chance alone"
        if below and len(ranked) >= 20
        else ""
    )
    unranked = (
        f" {hidden:,} units with fewer than {min_group_size} different respondents are not ranked."
        if hidden
        else ""
    )
    return (
        f"{lead}{chance}. The table lists the lowest-ranked units on engagement shrunk towards "
        "the average by how much data each has (empirical Bayes), with their own customers' "
        f"NPS and its interval (blank for units that serve no customers).{unranked} A low rank "
        "is a reason to ask, not a verdict on a team."
    )


def _interval(low: float, high: float) -> str:
    """``interval`` of ``analysis.report.sentences``, blank where there is none."""
    return "" if pd.isna(low) or pd.isna(high) else interval(low, high)


def region_table(customer: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """Regions side by side for the page: customer NPS and engagement, each with its n.

    Parameters
    ----------
    customer : DataFrame
        ``analysis.measures.nps.nps_by_group`` by ``region``.
    staff : DataFrame
        ``region_engagement``.

    Returns
    -------
    DataFrame
        Display columns, one row per region; a region without released engagement shows none.
    """
    merged = customer.merge(staff, on="region", how="outer", suffixes=("", "_staff"))
    return pd.DataFrame(
        {
            "Region": merged["region"].astype(str),
            "Customer NPS": merged["nps"].map(lambda v: "" if pd.isna(v) else signed(v)),
            "95% interval": [
                _interval(lo, hi)
                for lo, hi in zip(merged["conf_low"], merged["conf_high"], strict=True)
            ],
            "Customer answers": merged["n"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}"),
            "Engagement, latest wave": merged["value"].map(
                lambda v: "" if pd.isna(v) else f"{v:.1f}"
            ),
            "95% interval ": [
                "" if pd.isna(lo) else f"{lo:.1f} to {hi:.1f}"
                for lo, hi in zip(merged["conf_low_staff"], merged["conf_high_staff"], strict=True)
            ],
            "Units shown": merged["n_staff"].map(lambda v: "" if pd.isna(v) else f"{int(v):,}"),
        }
    )


def attention_display(table: pd.DataFrame) -> pd.DataFrame:
    """``attention_table`` as the page shows it: names, values, intervals and counts.

    Parameters
    ----------
    table : DataFrame
        ``attention_table``.

    Returns
    -------
    DataFrame
    """
    name = "unit_name" if "unit_name" in table else "unit_id"
    shown = {
        "Rank": table["rank"].astype(int),
        "Unit": table[name].astype(str),
    }
    if "region" in table:
        shown["Region"] = table["region"].astype(str)
    shown |= {
        "Engagement (shrunk)": table["shrunken"].map("{:.1f}".format),
        "95% interval": [
            f"{lo:.1f} to {hi:.1f}"
            for lo, hi in zip(table["conf_low"], table["conf_high"], strict=True)
        ],
        "Clearly below average": table["below_average"].map({True: "yes", False: "no"}),
        "Respondents": table["n_respondents_distinct"].astype(int),
        "Customer NPS": table["nps"].map(lambda v: "" if pd.isna(v) else signed(v)),
        "95% interval ": [
            _interval(lo, hi) for lo, hi in zip(table["nps_low"], table["nps_high"], strict=True)
        ],
        "Customer answers": table["nps_answers"].astype(int),
    }
    return pd.DataFrame(shown)
