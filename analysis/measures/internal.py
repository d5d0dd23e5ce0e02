"""The internal side on its own: are the scales sound, which units stand out, and where.

* :func:`scale_reliability` — is each scale reliable (Cronbach's alpha), and do the members of
  a unit-wave agree enough (ICC(1), ICC(2), r_wg) for a unit mean to stand for the unit?
* :func:`shrunken_unit_engagement` — each unit's engagement over the waves, shrunk towards the
  organisation's mean by empirical Bayes so that small units do not top or tail a league table by
  chance alone; small groups suppressed (``analysis.measures.privacy``).
* :func:`cell_significance` — which cells of a unit × wave heat map differ from their wave's
  mean by more than sampling noise, after a false-discovery-rate correction.
* :func:`organisation_figures` — the organisation-wide employee figures of the
  internal-measures page (points of connection, effort, eNPS), each item on its own count of
  answers (:func:`shown_item_cells`) and released with Laplace noise (``measures.privacy``).

Pure functions on pandas frames; nothing here reads or writes files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import Scale, nps_category
from analysis.data.load import Dataset
from analysis.measures.intervals import wilson_interval
from analysis.measures.multiplicity import benjamini_hochberg
from analysis.measures.privacy import SUPPRESSED, suppress
from analysis.measures.scales import (
    cronbach_alpha,
    icc_oneway,
    respondent_scale_score,
    rwg,
    rwg_summary,
)
from analysis.measures.shrinkage import empirical_bayes, rank_shrunken

#: Plain-English names of the scales an instrument may use (``contract.SCALE_NAMES``): the one
#: list the reliability table, the drivers' figure and their sentences all read.
SCALE_LABELS = {
    "engagement": "Engagement",
    "internal_communication": "Internal communication",
    "brand_alignment": "Brand alignment",
    "points_of_connection": "Points of connection",
    "employee_effort": "Employee effort (ease)",
    "enps": "Employee NPS (eNPS)",
    "communication_effort": "Communication effort",
}

#: Aggregation thresholds: ICC(1) above .05 (Bliese, 2000), ICC(2) and median r_wg at least .70
#: (Bliese, 2000; LeBreton & Senter, 2008).
ICC1_MIN = 0.05
ICC2_MIN = 0.70
RWG_MIN = 0.70

RELIABILITY_COLUMNS = (
    "scale",
    "label",
    "n_items",
    "alpha",
    "alpha_conf_low",
    "alpha_conf_high",
    "alpha_n",
    "icc1",
    "icc1_conf_low",
    "icc1_conf_high",
    "icc2",
    "icc2_conf_low",
    "icc2_conf_high",
    "group_size",
    "median_rwg",
    "median_rwg_conf_low",
    "median_rwg_conf_high",
    "share_rwg_70",
    "share_rwg_70_conf_low",
    "share_rwg_70_conf_high",
    "n_rwg_groups",
    "n_responses",
    "n_groups",
    "verdict",
)
SHRUNKEN_COLUMNS = (
    "unit_id",
    "unit_name",
    "region",
    "n_waves",
    "n_responses",
    "n_respondents_distinct",
    "raw_mean",
    "shrinkage",
    "shrunken",
    "posterior_sd",
    "conf_low",
    "conf_high",
    "rank",
)
SHRUNKEN_VALUES = ("raw_mean", "shrunken", "posterior_sd", "conf_low", "conf_high")
CELL_COLUMNS = (
    "unit_id",
    "wave",
    "n_respondents",
    "engagement_index",
    "wave_mean",
    "difference",
    "std_error",
    "conf_low",
    "conf_high",
    "z",
    "p_value",
    "p_adjusted",
    "significant",
)


def scale_label(name: str) -> str:
    """Plain-English name of a scale, or of its unit-wave index column (``<scale>_index``).

    Parameters
    ----------
    name : str
        A scale's name (``engagement``) or its index column, as the drivers' ``term`` names it
        (``engagement_index``).

    Returns
    -------
    str
        ``SCALE_LABELS`` of the scale, or its name with spaces for a scale it does not list.
    """
    scale = name.removesuffix("_index")
    return SCALE_LABELS.get(scale, scale.replace("_", " ").capitalize())


# --------------------------------------------------------------------------------------------
# Reliability and agreement


def _keyed_items(survey: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """The scale's items as floats, reverse-coded items flipped (``low + high − x``)."""
    items = survey[list(scale.items)].astype("float64")
    if scale.reverse:
        reverse = list(scale.reverse)
        items[reverse] = scale.low + scale.high - items[reverse]
    return items


def _median_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Distribution-free interval for a median from order statistics.

    NaN with too few values for the level asked.

    Notes
    -----
    With ``n`` sorted values, the interval ``(x_(j), x_(n−j+1))`` covers the median with
    probability ``1 − 2 P(Binomial(n, ½) < j)``; ``j`` is the largest rank keeping that at
    least ``confidence`` (Conover, 1999, section 3.2).

    References
    ----------
    Conover, W. J. (1999). *Practical Nonparametric Statistics*, 3rd ed. Wiley.
    """
    values = np.sort(values[~np.isnan(values)])
    n = len(values)
    if n == 0:
        return np.nan, np.nan
    # P(B ≤ j − 1) ≤ (1 − confidence) / 2  ⇔  j − 1 ≤ the γ/2 quantile (rounded down)
    j = int(stats.binom.ppf((1 - confidence) / 2, n, 0.5))
    if stats.binom.cdf(j, n, 0.5) > (1 - confidence) / 2:
        j -= 1
    j += 1  # 1-based rank of the lower order statistic
    if j < 1:
        return np.nan, np.nan
    return float(values[j - 1]), float(values[n - j])


def _verdict(icc1: float, icc2: float, median_rwg: float) -> str:
    """Whether aggregation is justified, naming every threshold that fails."""
    checks = (
        (icc1, ICC1_MIN, False, "ICC(1) not above .05 (units barely differ)"),
        (icc2, ICC2_MIN, True, "ICC(2) below .70 (unit-wave means unreliable)"),
        (median_rwg, RWG_MIN, True, "median r_wg below .70 (members disagree)"),
    )
    if any(not np.isfinite(value) for value, *_ in checks):
        return "cannot be judged: too few groups or answers"
    failed = [
        phrase
        for value, threshold, inclusive, phrase in checks
        if not (value >= threshold if inclusive else value > threshold)
    ]
    return "aggregation justified" if not failed else "not justified: " + "; ".join(failed)


def scale_reliability(
    dataset: Dataset,
    confidence: float = 0.95,
    unit_wave: pd.DataFrame | None = None,
    min_group_size: int | None = None,
) -> pd.DataFrame:
    """Reliability of each scale and whether its unit-wave means may stand for the unit.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset; its ``instrument`` says which items form which scale.
    confidence : float
        Level of every interval.
    unit_wave : DataFrame, optional
        The **suppressed** unit × wave display table (``analysis.models.estimate``'s ``unit_wave``).
        When given, each scale's statistics use only the responses of the unit-waves whose
        value of that scale is shown there (``shown_responses``): what a report publishes. A
        report must pass it; see Notes.
    min_group_size : int, optional
        With ``unit_wave``: alpha and r_wg work on the items themselves, so a unit-wave also
        needs every item of the scale answered by enough people (``shown_item_cells``: each
        item suppressed on its own count, with complementary suppression). A report passes it.

    Returns
    -------
    DataFrame
        One row per scale of ``dataset.instrument``, in instrument order:

        * ``scale``, ``label`` (plain English, ``SCALE_LABELS``), ``n_items``;
        * ``alpha`` with Feldt's interval ``alpha_conf_low, alpha_conf_high`` and ``alpha_n``
          (complete rows) — Cronbach's alpha of the items (reverse-coded items flipped,
          ``analysis.measures.scales.cronbach_alpha``); NaN for a single-item scale;
        * ``icc1``, ``icc2`` with their intervals (``analysis.measures.scales.icc_oneway``) from a
          one-way ANOVA of each response's 0–100 scale score (``analysis.measures.panel.
          respondent_scale_score``) by unit-wave group (``unit_id`` × ``wave``), and
          ``group_size`` (the adjusted mean group size ``k0``);
        * ``median_rwg`` (with an order-statistic interval, see ``_median_interval``),
          ``share_rwg_70`` (share of groups with r_wg ≥ .70, 0 … 1, Wilson interval) and
          ``n_rwg_groups`` (groups of two or more with complete answers): r_wg(J), or r_wg for
          one item, on the items grouped by unit-wave, with the uniform null over the scale's
          range (``analysis.measures.scales.rwg``; James, Demaree & Wolf, 1984);
        * ``n_responses`` (responses with a scale score: one person answering three waves is
          three responses), ``n_groups`` (unit-waves);
        * ``verdict``: ``"aggregation justified"`` when ICC(1) > .05, ICC(2) ≥ .70 and the
          median r_wg ≥ .70; otherwise ``"not justified: "`` and every criterion that fails.

    Notes
    -----
    From the one-way ANOVA of scale scores by unit-wave (mean squares ``MSB``, ``MSW``; ``k0``
    the adjusted mean group size) and, within a unit-wave, the mean ``s̄²`` of the item
    variances over the scale's ``J`` items (``analysis.measures.scales``)::

        ICC(1)  = (MSB − MSW) / (MSB + (k0 − 1) MSW),   ICC(2) = (MSB − MSW) / MSB
        r_wg(J) = J (1 − s̄²/σ²_EU) / (J (1 − s̄²/σ²_EU) + s̄²/σ²_EU),   σ²_EU = (A² − 1) / 12

    with ``A = high − low + 1`` answer options (the uniform null).

    Thresholds: ICC(1) of .05–.20 is typical of work-unit data and a value near zero means
    units barely differ; ICC(2) ≥ .70 means the group mean is a reliable measure of the group
    (Bliese, 2000). r_wg ≥ .70 is the conventional cut-off for agreement enough to aggregate;
    LeBreton & Senter (2008) call .71–.90 strong agreement and warn that the cut-off is
    arbitrary. ICC(2) grows with group size (Spearman–Brown), so small
    unit-waves may fail it even when units truly differ: the verdict then says the unit-wave
    means are noisy, not that the scale is wrong; pooling waves (``shrunken_unit_engagement``)
    is the remedy. Responses are treated as independent; the same person answering several
    waves makes the intervals somewhat too narrow.

    Privacy: organisation-wide figures over every response look harmless, but two reports,
    one on all units and one on all units but a small one, would give away the small unit's
    answers by difference (its count of agreeing groups, its share of the sums of squares).
    With ``unit_wave`` every figure rests only on unit-waves that are themselves shown, so
    nothing here depends on the answers of a hidden group.

    References
    ----------
    Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability: implications
    for data aggregation and analysis. In K. J. Klein & S. W. J. Kozlowski (Eds.), *Multilevel
    Theory, Research, and Methods in Organizations* (pp. 349–381). Jossey-Bass.
    Conover, W. J. (1999). *Practical Nonparametric Statistics*, 3rd ed. Wiley.
    James, L. R., Demaree, R. G., & Wolf, G. (1984). Estimating within-group interrater
    reliability with and without response bias. *Journal of Applied Psychology* 69(1), 85–98.
    LeBreton, J. M., & Senter, J. L. (2008). Answers to 20 questions about interrater reliability
    and interrater agreement. *Organizational Research Methods* 11(4), 815–852.
    """
    all_responses = dataset.employee_survey
    rows = []
    for scale in dataset.instrument.scales:
        if unit_wave is None:
            survey = all_responses
        elif min_group_size is None:
            survey = shown_responses(all_responses, unit_wave, scale.name)
        else:
            cells = shown_item_cells(all_responses, unit_wave, scale, min_group_size)
            survey = all_responses[np.logical_and.reduce(list(cells.values()))]
        groups = survey.groupby(["unit_id", "wave"], sort=True).ngroup()
        items = _keyed_items(survey, scale)
        if len(scale.items) >= 2:
            alpha = cronbach_alpha(items, confidence)
        else:
            alpha = pd.Series({"alpha": np.nan, "conf_low": np.nan, "conf_high": np.nan, "n": 0})
        score = respondent_scale_score(survey, scale)
        icc = icc_oneway(score, groups, confidence)
        agreement = rwg(items, groups, scale.low, scale.high)
        summary = rwg_summary(agreement, RWG_MIN)
        values = agreement["rwg"].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        median_low, median_high = _median_interval(values, confidence)
        agreeing = int((values >= RWG_MIN).sum())
        share_low, share_high = wilson_interval(agreeing, len(values), confidence)
        rows.append(
            {
                "scale": scale.name,
                "label": scale_label(scale.name),
                "n_items": len(scale.items),
                "alpha": alpha["alpha"],
                "alpha_conf_low": alpha["conf_low"],
                "alpha_conf_high": alpha["conf_high"],
                "alpha_n": int(alpha["n"]),
                "icc1": icc["icc1"],
                "icc1_conf_low": icc["conf_low"],
                "icc1_conf_high": icc["conf_high"],
                "icc2": icc["icc2"],
                "icc2_conf_low": icc["icc2_conf_low"],
                "icc2_conf_high": icc["icc2_conf_high"],
                "group_size": icc["group_size"],
                "median_rwg": summary["median_rwg"],
                "median_rwg_conf_low": median_low,
                "median_rwg_conf_high": median_high,
                "share_rwg_70": summary["share_at_least_threshold"],
                "share_rwg_70_conf_low": share_low,
                "share_rwg_70_conf_high": share_high,
                "n_rwg_groups": int(summary["n_groups"]),
                "n_responses": int(icc["n"]),
                "n_groups": int(icc["n_groups"]),
                "verdict": _verdict(icc["icc1"], icc["icc2"], summary["median_rwg"]),
            }
        )
    return pd.DataFrame(rows, columns=list(RELIABILITY_COLUMNS))


# --------------------------------------------------------------------------------------------
# Organisation-wide figures from shown groups only


def shown_responses(
    survey: pd.DataFrame, unit_wave: pd.DataFrame, scale: str = "engagement"
) -> pd.DataFrame:
    """The survey responses behind the unit-waves whose ``scale`` value a report shows.

    Parameters
    ----------
    survey : DataFrame
        ``employee_survey`` with ``unit_id`` and ``wave``.
    unit_wave : DataFrame
        The suppressed unit × wave display table, with ``unit_id``, ``wave`` and
        ``<scale>_index`` (missing where hidden) and, for engagement, ``suppressed``.
    scale : str
        The instrument scale whose figure is about to be published.

    Returns
    -------
    DataFrame
        The rows of ``survey`` (same index and columns) whose unit-wave shows a value of
        ``scale``. Any organisation-wide, regional or per-wave figure of that scale computed
        from these rows is a function of groups of at least ``min_group_size`` people only, so
        neither one report nor the difference of two reports on overlapping data (all units,
        then all but one) can isolate a hidden group. Computed over every response instead,
        the organisation mean of a report on all units times its n, minus the same from a report
        without one small unit, is that unit's total.
    """
    column = f"{scale}_index"
    if column not in unit_wave.columns:
        raise ValueError(
            f"unit_wave has no {column!r} column: pass the suppressed unit × wave table of the "
            "same run (analysis.models.estimate.suppressed_unit_wave)"
        )
    shown = unit_wave[column].notna()
    if SUPPRESSED in unit_wave.columns and scale == "engagement":
        shown &= ~unit_wave[SUPPRESSED].fillna(True).astype(bool)
    cells = unit_wave.loc[shown, ["unit_id", "wave"]].astype({"unit_id": "string"})
    cells = cells.assign(wave=pd.to_datetime(cells["wave"]).astype("datetime64[ns]"))
    keys = pd.MultiIndex.from_frame(cells)
    mine = pd.MultiIndex.from_arrays(
        [
            survey["unit_id"].astype("string"),
            pd.to_datetime(survey["wave"]).astype("datetime64[ns]"),
        ]
    )
    return survey[mine.isin(keys)]


#: Suppression patterns of item counts already computed (``shown_item_cells``), by layout and
#: counts: the pattern depends on nothing else.
_ITEM_PATTERNS: dict[bytes, np.ndarray] = {}


def shown_item_cells(
    survey: pd.DataFrame, unit_wave: pd.DataFrame, scale: Scale, min_group_size: int
) -> dict[str, np.ndarray]:
    """For each item of ``scale``: which responses may enter a published figure of that item.

    Parameters
    ----------
    survey : DataFrame
        ``employee_survey``.
    unit_wave : DataFrame
        The suppressed unit × wave display table of the same run.
    scale : Scale
        The instrument scale whose items are about to be summarised one by one.
    min_group_size : int
        The run's threshold.

    Returns
    -------
    dict
        Item name → boolean array over the rows of ``survey``: true for the responses of a
        unit-wave that (a) shows the scale in ``unit_wave`` (``shown_responses``) and (b) has at
        least ``min_group_size`` answers **to that item**, after complementary suppression over
        the same totals as the unit × wave table (by wave, region and wave, and overall;
        ``analysis.measures.privacy.suppress``). The scale's own count is the number of people who
        answered any of its items; an item can rest on fewer. Five respondents of whom one
        answered an item would otherwise put that one answer into the item's figure, and two
        reports, one with that unit and one without, would give it away by difference.
    """
    keys = ["unit_id", "wave"]
    shown_scale = survey.index.isin(shown_responses(survey, unit_wave, scale.name).index)
    cells = unit_wave[[c for c in ("unit_id", "region", "wave") if c in unit_wave.columns]]
    cells = cells.astype({"unit_id": "string"}).assign(
        wave=pd.to_datetime(cells["wave"]).astype("datetime64[ns]")
    )
    unit = survey["unit_id"].astype("string")
    wave = pd.to_datetime(survey["wave"]).astype("datetime64[ns]")
    counts = survey[list(scale.items)].notna().groupby([unit, wave], sort=True).sum()
    counts.index = counts.index.set_names(keys)
    table = cells.merge(
        counts.add_suffix("__answers").reset_index(), on=keys, how="left"
    ).reset_index(drop=True)
    parents = [("wave",), ()] + ([("region", "wave")] if "region" in table.columns else [])
    position = pd.MultiIndex.from_frame(table[keys]).get_indexer(
        pd.MultiIndex.from_arrays([unit, wave])
    )
    layout = hashlib.sha256(
        pd.util.hash_pandas_object(
            table[[c for c in ("unit_id", "region", "wave") if c in table]], index=False
        )
        .to_numpy()
        .tobytes()
        + repr((parents, min_group_size)).encode()
    ).digest()
    result = {}
    for item in scale.items:
        count = f"{item}__answers"
        table[count] = table[count].fillna(0).astype("int64")
        # items answered alike share one pattern, within a call and across calls (a page asks
        # for the same items' patterns for reliability and for the organisation's figures)
        signature = layout + table[count].to_numpy().tobytes()
        if signature not in _ITEM_PATTERNS:
            hidden = suppress(
                table.assign(_value=0.0),
                count=count,
                values=["_value"],
                min_group_size=min_group_size,
                parents=parents,
            )[SUPPRESSED].to_numpy()
            if len(_ITEM_PATTERNS) >= 256:
                _ITEM_PATTERNS.pop(next(iter(_ITEM_PATTERNS)))
            _ITEM_PATTERNS[signature] = ~hidden & (table[count].to_numpy() > 0)
        shown_cell = _ITEM_PATTERNS[signature]
        inside = position >= 0
        shown = np.zeros(len(survey), dtype=bool)
        shown[inside] = shown_cell[position[inside]]
        result[item] = shown & shown_scale
    return result


# --------------------------------------------------------------------------------------------
# Organisation-wide figures of the internal-measures page, released with noise


def organisation_statistics(
    survey: pd.DataFrame, unit_wave: pd.DataFrame, instrument, min_group_size: int
) -> dict[str, pd.DataFrame]:
    """The exact statistics behind the organisation-wide figures, before any release.

    Each item's answers come only from the unit-waves ``shown_item_cells`` allows. Never
    publish these: :func:`organisation_figures` releases them.

    Parameters
    ----------
    survey : DataFrame
        ``employee_survey``.
    unit_wave : DataFrame
        The suppressed unit × wave display table of the same run.
    instrument : Instrument
        The dataset's instrument (``analysis.data.contract.Instrument``).
    min_group_size : int
        The run's threshold.

    Returns
    -------
    dict of str to DataFrame
        ``"scorecard"`` (one row per points-of-connection item: ``item, label, n, mean`` and
        ``variance`` of its 0–100 score, ``favourable`` share 0 … 1), ``"effort"`` (one row:
        ``n, mean, variance, share_easy``, ``low``, ``high``, ``threshold`` on the items' own
        scale) and ``"enps"`` (one row: ``n, nps``, ``non_passive`` = share of promoters plus
        detractors), each present only when the instrument has the scale.

    Notes
    -----
    Items are the instrument's, whatever their names. A scale of several items is summarised
    by each response's mean of its items (reverse-coded items flipped), on the items' scale,
    over the responses whose every item may be shown; one item is summarised as it is.
    Variances use the ``n − 1`` divisor. ``share_easy`` is the share answering at least the
    scale's ``favourable`` value (``threshold``; the top two answers, ``high − 1``, when the
    instrument sets none: 6 or 7 on 1–7). With promoter share ``p``
    and detractor share ``d``, ``nps = 100 (p − d)`` and ``non_passive = p + d``, so that
    ``var(eNPS) = 100² (non_passive − (nps/100)²) / n`` (Rocks, 2016) can be formed from the
    released values.

    References
    ----------
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    from analysis.measures.scales import POINT_OF_CONNECTION_LABELS, scale_scores

    names = {s.name for s in instrument.scales}
    result: dict[str, pd.DataFrame] = {}
    if "points_of_connection" in names:
        scale = instrument.scale("points_of_connection")
        allowed = shown_item_cells(survey, unit_wave, scale, min_group_size)
        rows = []
        for item in scale.items:
            single = Scale(
                item,
                (item,),
                scale.low,
                scale.high,
                scale.favourable,
                (item,) if item in scale.reverse else (),
            )
            scored = scale_scores(survey[allowed[item]], single)
            score = scored["score"].dropna().to_numpy(dtype=float)
            favourable = scored["favourable"].dropna()
            rows.append(
                {
                    "item": item,
                    "label": POINT_OF_CONNECTION_LABELS.get(item, item),
                    "n": len(score),
                    "mean": float(score.mean()) if len(score) else np.nan,
                    "variance": float(score.var(ddof=1)) if len(score) > 1 else np.nan,
                    "favourable": float(favourable.mean()) if len(favourable) else np.nan,
                }
            )
        result["scorecard"] = pd.DataFrame(rows)
    for name in ("employee_effort", "enps"):
        if name not in names:
            continue
        scale = instrument.scale(name)
        # the scale's own items, whatever they are called; a response counts where every item
        # may be shown (one item: that item's cells), as in scale_reliability
        cells = shown_item_cells(survey, unit_wave, scale, min_group_size)
        allowed = np.logical_and.reduce(list(cells.values()))
        answers = _keyed_items(survey[allowed], scale).mean(axis=1).dropna().to_numpy(float)
        n = len(answers)
        if name == "employee_effort":
            # without a threshold the top two answers count as easy (6 and 7 on 1–7)
            threshold = scale.favourable if scale.favourable is not None else scale.high - 1
            # a mean of several items carries rounding: 6 − 1e-15 still counts as 6
            easy = answers >= threshold - 1e-9
            row = {
                "n": n,
                "mean": float(answers.mean()) if n else np.nan,
                "variance": float(answers.var(ddof=1)) if n > 1 else np.nan,
                "share_easy": float(easy.mean()) if n else np.nan,
                "low": scale.low,
                "high": scale.high,
                "threshold": float(threshold),
            }
        else:
            category = nps_category(answers)
            promoters, detractors = (category == 0).mean(), (category == 2).mean()
            row = {
                "n": n,
                "nps": float(100 * (promoters - detractors)) if n else np.nan,
                "non_passive": float(promoters + detractors) if n else np.nan,
            }
        result["effort" if name == "employee_effort" else "enps"] = pd.DataFrame([row])
    return result


def organisation_figures(
    dataset: Dataset, unit_wave: pd.DataFrame, parameters, release=None
) -> dict[str, pd.DataFrame | pd.Series]:
    """The organisation-wide employee figures of the internal-measures page, as released.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset (its secret seeds the noise).
    unit_wave : DataFrame
        The suppressed unit × wave table of the same run (``results["unit_wave"]``).
    parameters : Parameters
        The run's parameters: ``min_group_size``, ``alpha`` and ``privacy_epsilon``.
    release : analysis.measures.privacy.Release, optional
        Defaults to ``analysis.measures.privacy.release_for(dataset, parameters)``, the run's own.

    Returns
    -------
    dict
        ``"scorecard"``: the points-of-connection items with the columns of
        ``analysis.measures.scales.points_of_connection_scorecard``; ``"effort"``: a Series with
        the fields of ``analysis.measures.scales.effort_score`` and the scale's ``low``,
        ``high`` and easy ``threshold`` (public: they come from the instrument); ``"enps"``: a
        Series ``nps, std_error, conf_low, conf_high, n`` (no category counts: they would give
        the exact score away).
        Each key only when the instrument has the scale and someone's answers are shown.

    Notes
    -----
    Every mean, share and variance is released by the Laplace mechanism
    (``measures.privacy.laplace_mechanism``) with its sensitivity to one response, ``n`` the
    published count of answers: a 0–100 mean ``100/n``, its variance ``100²/n``; the effort
    mean ``(high − low)/n``, its variance ``(high − low)²/n``, the share easy ``1/n``; eNPS
    ``200/n`` and the share of non-passives (for its standard error) ``1/n``; a share
    favourable ``100/n`` percentage points. Intervals come from the released values only and
    add the noise variance ``2b²``. With thousands of answers the noise is a few hundredths of
    a point; against a reader who holds two reports that differ by one person, ``n₂ m̃₂ −
    n₁ m̃₁`` is that person's answer plus noise of scale ``range/ε`` (README, "Privacy").

    References
    ----------
    Dwork, C., McSherry, F., Nissim, K., & Smith, A. (2006). Calibrating noise to sensitivity in
    private data analysis. In *Theory of Cryptography (TCC 2006)*, Lecture Notes in Computer
    Science 3876, 265–284. Springer.
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    """
    from analysis.measures.intervals import wilson_interval
    from analysis.measures.privacy import (
        laplace_mechanism,
        mean_sensitivity,
        release_for,
        variance_sensitivity,
        widened_interval,
    )
    from analysis.measures.scales import SCORECARD_COLUMNS

    release = release or release_for(dataset, parameters)
    confidence = parameters.confidence
    statistics = organisation_statistics(
        dataset.employee_survey, unit_wave, dataset.instrument, parameters.min_group_size
    )
    figures: dict[str, pd.DataFrame | pd.Series] = {}

    def noisy(value, sensitivity, name):
        released, variance = laplace_mechanism([value], [sensitivity], [name], release)
        return float(released[0]), float(variance[0])

    def mean_with_interval(name, n, mean, variance, value_range, bounds):
        mean_noisy, mean_noise = noisy(mean, mean_sensitivity(value_range, n), (*name, "mean"))
        var_noisy, _ = noisy(variance, variance_sensitivity(value_range, n), (*name, "variance"))
        var_noisy = (
            min(max(var_noisy, 0.0), value_range**2 / 2) if np.isfinite(var_noisy) else np.nan
        )
        std_error = float(np.sqrt(var_noisy / n + mean_noise)) if n > 1 else np.nan
        t = stats.t.ppf(0.5 + confidence / 2, n - 1) if n > 1 else np.nan
        low = max(mean_noisy - t * std_error, bounds[0]) if n > 1 else np.nan
        high = min(mean_noisy + t * std_error, bounds[1]) if n > 1 else np.nan
        return {"mean": mean_noisy, "std_error": std_error, "conf_low": low, "conf_high": high}

    def share_with_interval(name, n, share):
        share_noisy, noise = noisy(share, mean_sensitivity(1.0, n), name)
        if not (n and np.isfinite(share_noisy)):
            return np.nan, np.nan, np.nan
        centre = min(max(share_noisy, 0.0), 1.0)
        low, high = wilson_interval(centre * n, n, confidence)
        low, high = widened_interval(centre, low, high, noise, confidence)
        return share_noisy, max(float(low), 0.0), min(float(high), 1.0)

    if "scorecard" in statistics:
        rows = []
        for position, row in enumerate(statistics["scorecard"].itertuples(index=False)):
            # keyed by place, not item name: renaming the items leaves the release unchanged
            name = ("organisation", "points_of_connection", f"item {position + 1}")
            summary = mean_with_interval(name, row.n, row.mean, row.variance, 100.0, (0.0, 100.0))
            share, low, high = share_with_interval((*name, "favourable"), row.n, row.favourable)
            rows.append(
                {
                    "item": row.item,
                    "label": row.label,
                    **summary,
                    "pct_favourable": 100 * share,
                    "pct_favourable_conf_low": 100 * low,
                    "pct_favourable_conf_high": 100 * high,
                    "n": int(row.n),
                }
            )
        figures["scorecard"] = pd.DataFrame(rows, columns=list(SCORECARD_COLUMNS))
    if "effort" in statistics and statistics["effort"].at[0, "n"] > 0:
        row = statistics["effort"].iloc[0]
        n, bounds = int(row["n"]), (float(row["low"]), float(row["high"]))
        name = ("organisation", "employee_effort", "employee_effort")
        summary = mean_with_interval(
            name, n, row["mean"], row["variance"], bounds[1] - bounds[0], bounds
        )
        share, low, high = share_with_interval((*name, "share_easy"), n, row["share_easy"])
        figures["effort"] = pd.Series(
            {
                **summary,
                "share_easy": share,
                "share_easy_conf_low": low,
                "share_easy_conf_high": high,
                "n": n,
                "low": bounds[0],
                "high": bounds[1],
                "threshold": float(row["threshold"]),
            }
        )
    if "enps" in statistics and statistics["enps"].at[0, "n"] > 0:
        row = statistics["enps"].iloc[0]
        n = int(row["n"])
        name = ("organisation", "enps", "enps")
        score, noise = noisy(row["nps"], mean_sensitivity(200.0, n), (*name, "nps"))
        non_passive, _ = noisy(row["non_passive"], mean_sensitivity(1.0, n), (*name, "non_passive"))
        net = min(max(score / 100, -1.0), 1.0)
        spread = max(min(max(non_passive, 0.0), 1.0) - net**2, 0.0)
        std_error = float(np.sqrt(100**2 * spread / n + noise))
        z = stats.norm.ppf(0.5 + confidence / 2)
        figures["enps"] = pd.Series(
            {
                "nps": score,
                "std_error": std_error,
                "conf_low": max(score - z * std_error, -100.0),
                "conf_high": min(score + z * std_error, 100.0),
                "n": n,
            }
        )
    return figures


# --------------------------------------------------------------------------------------------
# Empirical-Bayes unit engagement


def distinct_respondents(survey: pd.DataFrame, items: Sequence[str] | None = None) -> pd.Series:
    """Number of distinct respondents per unit over all waves.

    Parameters
    ----------
    survey : DataFrame
        ``employee_survey`` with ``respondent_id`` and ``unit_id``.
    items : sequence of str, optional
        When given, only respondents who answered at least one of these items count (pass the
        engagement items to count the people behind an engagement figure).

    Returns
    -------
    Series
        Indexed by ``unit_id`` (sorted), named ``n_respondents_distinct``. A person who moved
        between units counts once in each.
    """
    answered = survey
    if items is not None:
        answered = survey[survey[list(items)].notna().any(axis=1)]
    counts = answered.groupby("unit_id", sort=True)["respondent_id"].nunique()
    return counts.rename("n_respondents_distinct").astype("int64")


def shrunken_unit_engagement(
    panel: pd.DataFrame,
    min_group_size: int,
    respondents_per_unit: pd.Series,
    units: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Each unit's engagement over the waves, shrunk towards the mean by empirical Bayes.

    Parameters
    ----------
    panel : DataFrame
        One row per unit-wave with ``unit_id``, ``n_respondents``, ``engagement_index`` and
        ``engagement_noise_var`` (``s²_w / n``; ``analysis.measures.panel.unit_wave_panel``), and
        ``region`` if known. Unsuppressed: this is the model input.
    min_group_size : int
        The smallest number of distinct people a shown figure may rest on.
    respondents_per_unit : Series
        Distinct respondents per unit over all waves, indexed by ``unit_id``
        (``distinct_respondents``). Units it lacks count as zero and are hidden.
    units : DataFrame, optional
        ``unit_id`` with ``unit_name`` (and ``region`` when the panel lacks it), for display.
    confidence : float
        Level of the interval.

    Returns
    -------
    DataFrame
        One row per unit, sorted by ``unit_id``: ``unit_id``, ``unit_name`` and ``region``
        (when known), ``n_waves``, ``n_responses`` (responses over the waves), ``n_respondents_
        distinct``, ``raw_mean``, ``shrinkage`` (``B``), ``shrunken``, ``posterior_sd``,
        ``conf_low``, ``conf_high``, ``rank`` (1 = highest shrunken value among the shown
        units), and ``suppressed``, ``suppression`` from ``measures.privacy.suppress``. Hidden
        units have every value of ``SHRUNKEN_VALUES`` and their rank missing.

    Notes
    -----
    For unit ``u`` with waves ``w``, index ``x_uw`` on ``n_uw`` respondents and sampling
    variance ``v_uw = s²/n_uw`` (``engagement_noise_var``)::

        x_u  = Σ_w n_uw x_uw / Σ_w n_uw                  raw mean
        v_u  = Σ_w n_uw² v_uw / (Σ_w n_uw)²              its variance (= s² / Σ n_uw)
        τ²   = max(0, Σ_u (x_u − x̄)² / (K − 1) − mean(v_u))   between-unit variance (moments)
        μ    = Σ_u W_u x_u / Σ_u W_u,   W_u = 1 / (v_u + τ²)
        B_u  = v_u / (v_u + τ²)
        θ̂_u  = μ + (1 − B_u)(x_u − μ)
        sd_u = √((1 − B_u) v_u + B_u² / Σ W)

    and the interval ``θ̂_u ± z sd_u`` (Morris, 1983; James & Stein, 1961; Efron & Morris,
    1975), computed by the kit's one empirical-Bayes function,
    ``analysis.measures.shrinkage.empirical_bayes`` (intercept only, so ``p = 1``). ``τ²`` is
    the method-of-moments estimate with divisor ``K − 1``, unbiased when all ``v_u`` are
    equal; floored at 0, when every unit sits at ``μ`` and all share rank 1.
    ``(1 − B_u) v_u`` is the posterior variance with ``μ`` and ``τ²`` known; the ``B_u² / Σ W``
    term adds the uncertainty of the estimated ``μ``. The uncertainty in
    ``τ²`` is ignored, so intervals are a little narrow when there are few units (Morris, 1983,
    4). With ``v_uw = s²/n_uw`` (one pooled within-group variance) the n-weighted raw mean is
    also the inverse-variance-weighted one and ``v_u = s²/Σ n_uw``. The published unit × wave
    table adds the release noise ``2b²`` to ``v_uw`` (``models.estimate.released_unit_wave``);
    ``v_u`` above is then the variance of the n-weighted mean of noisy cells, so the noise
    widens the intervals and strengthens the shrinkage of small units. ``v_u`` treats the
    responses of different waves as independent; the same people answering again makes the
    waves' errors correlated, so ``v_u`` is an approximation that understates the noise a
    little. The target ``θ_u`` is the
    unit's mean over the waves it was surveyed, not a forecast.

    Why shrink: a unit's raw mean is noisy in proportion to ``1/n``; ranking raw means puts
    the smallest units at both ends by chance. Shrinkage pulls each mean towards ``μ`` by its
    own noise share ``B_u``, which lowers the total squared error over all units (the
    James–Stein property) and makes the ranking fairer to small units.

    Privacy: the table is passed through ``analysis.measures.privacy.suppress`` with the count
    ``n_respondents_distinct`` and the grand total declared as published (``parents=[()]``).
    The count is of **distinct people**, not responses: the same three people answering eight
    waves give 24 responses but are still three people, and an average of their answers over
    the waves reveals those three people's views. Ranks are computed after suppression among
    the shown units, so a hidden unit has no rank (a rank would place its value between two
    shown ones). ``shrinkage`` stays visible: it depends only on the unit's number of
    responses and organisation-wide quantities, not on its answers.

    A unit's mean over the waves is a total of its unit-wave cells. If the same report also
    shows a unit × wave table, suppress that table with ``("unit_id",)`` among its ``parents``
    (and withhold this table's row where ``measures.privacy.safe_totals`` withholds the unit
    total): otherwise the unit mean times its responses, minus its shown cells, gives away the
    sum of its hidden cells.

    References
    ----------
    Efron, B. & Morris, C. (1975). Data analysis using Stein's estimator and its
    generalizations. *JASA* 70(350), 311–319.
    James, W. & Stein, C. (1961). Estimation with quadratic loss. In *Proceedings of the Fourth
    Berkeley Symposium on Mathematical Statistics and Probability*, vol. 1, 361–379.
    University of California Press.
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    required = {"unit_id", "n_respondents", "engagement_index", "engagement_noise_var"}
    missing = required - set(panel.columns)
    if missing:
        raise ValueError(f"panel lacks columns: {', '.join(sorted(missing))}")
    rows = panel.dropna(subset=["engagement_index", "engagement_noise_var"])
    rows = rows[(rows["n_respondents"] > 0) & (rows["engagement_noise_var"] > 0)]
    n = rows["n_respondents"].astype("float64")
    grouped = rows.assign(
        weighted=n * rows["engagement_index"],
        weighted_variance=n**2 * rows["engagement_noise_var"],
        n=n,
    ).groupby("unit_id", sort=True)
    table = grouped.agg(
        n_waves=("engagement_index", "size"),
        n_responses=("n", "sum"),
        weighted=("weighted", "sum"),
        weighted_variance=("weighted_variance", "sum"),
    )
    raw = table["weighted"] / table["n_responses"]
    v = table["weighted_variance"] / table["n_responses"] ** 2
    # One unit gives no between-unit spread: τ² = 0 leaves it at its own mean (μ = x_u).
    fit = empirical_bayes(raw, v, confidence=confidence)

    out = pd.DataFrame({"unit_id": table.index.to_numpy()})
    region = None
    if "region" in panel.columns:
        region = panel.drop_duplicates("unit_id").set_index("unit_id")["region"]
    if units is not None:
        info = units.drop_duplicates("unit_id").set_index("unit_id")
        if "unit_name" in info:
            out["unit_name"] = out["unit_id"].map(info["unit_name"])
        if region is None and "region" in info:
            region = info["region"]
    if region is not None:
        out["region"] = out["unit_id"].map(region)
    distinct = pd.Series(respondents_per_unit)
    out["n_waves"] = table["n_waves"].to_numpy(dtype="int64")
    out["n_responses"] = table["n_responses"].to_numpy(dtype="int64")
    out["n_respondents_distinct"] = out["unit_id"].map(distinct).fillna(0).to_numpy(dtype="int64")
    out["raw_mean"] = raw.to_numpy()
    for column in ("shrinkage", "shrunken", "posterior_sd", "conf_low", "conf_high"):
        out[column] = fit[column].to_numpy()

    shown = suppress(
        out,
        count="n_respondents_distinct",
        values=list(SHRUNKEN_VALUES),
        min_group_size=min_group_size,
        parents=[()],
    )
    rank = rank_shrunken(shown["shrunken"].where(~shown[SUPPRESSED]))
    shown.insert(shown.columns.get_loc("conf_high") + 1, "rank", rank)
    return shown


# --------------------------------------------------------------------------------------------
# Heat-map cells that differ from their wave


def cell_significance(
    unit_wave: pd.DataFrame, alpha: float = 0.05, confidence: float = 0.95
) -> pd.DataFrame:
    """Which unit-wave cells differ from their wave's mean, after a false-discovery-rate check.

    Parameters
    ----------
    unit_wave : DataFrame
        The **suppressed** display table (``measures.privacy.suppress`` over unit × wave) with
        ``unit_id``, ``wave``, ``n_respondents``, ``engagement_index`` and, which the caller
        must carry along, ``engagement_noise_var`` (``analysis.measures.panel.unit_wave_panel``; the
        sampling variance of the cell's index). A cell counts as shown where
        ``engagement_index`` is present and, when the column exists, ``suppressed`` is false.
    alpha : float
        False discovery rate for ``significant``.
    confidence : float
        Level of the interval of ``difference``.

    Returns
    -------
    DataFrame
        One row per input row, same index and order: ``unit_id, wave, n_respondents,
        engagement_index, wave_mean, difference, std_error, conf_low, conf_high, z, p_value,
        p_adjusted, significant``. Hidden cells keep a missing index and get missing
        statistics and ``significant`` False.

    Notes
    -----
    Within wave ``t``, over its shown cells with weights ``a_i = n_i / Σ n``, the wave mean
    is ``m_t = Σ a_i x_i`` and::

        d_i   = x_i − m_t
        var_i = v_i (1 − 2 a_i) + Σ_j a_j² v_j          (the cell is part of its own wave mean)
        z_i   = d_i / √var_i,    p_i = 2 (1 − Φ(|z_i|))

    With the pooled ``v_i = s²/n_i`` of the panel this is ``s² (1/n_i − 1/Σ n)``, slightly
    less than ``v_i``. In the published table ``v_i`` also holds the release noise ``2b²``
    (``analysis.models.estimate.released_unit_wave``), independent between cells, so the test counts
    it. The p-values of all shown cells are adjusted together by
    Benjamini–Hochberg (``measures.multiplicity.benjamini_hochberg``; Benjamini & Hochberg,
    1995), and a cell is ``significant`` when its adjusted p-value is at most
    ``alpha``. The wave mean uses shown cells only, so nothing here depends on a hidden value.
    The test asks whether a cell differs from its wave by more than the sampling of its
    respondents explains; true, stable differences between units count as differences. Cells
    of one wave are slightly negatively correlated through the shared mean, which BH tolerates
    in practice; the z test assumes ``n_i`` large enough for a normal mean.

    References
    ----------
    Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. *Journal of the Royal Statistical Society B* 57(1),
    289–300.
    """
    required = {"unit_id", "wave", "n_respondents", "engagement_index", "engagement_noise_var"}
    missing = required - set(unit_wave.columns)
    if missing:
        raise ValueError(
            f"unit_wave lacks columns: {', '.join(sorted(missing))}; carry "
            "engagement_noise_var from the panel through suppression (it is not a value to hide)"
        )
    x = unit_wave["engagement_index"].astype("float64")
    v = unit_wave["engagement_noise_var"].astype("float64")
    n = unit_wave["n_respondents"].astype("float64")
    shown = x.notna() & v.notna() & (n > 0)
    if SUPPRESSED in unit_wave.columns:
        shown &= ~unit_wave[SUPPRESSED].fillna(True).astype(bool)
    weight_total = n.where(shown).groupby(unit_wave["wave"]).transform("sum")
    a = (n / weight_total).where(shown)
    wave_mean = (a * x).groupby(unit_wave["wave"]).transform("sum").where(shown)
    spread = (a**2 * v).groupby(unit_wave["wave"]).transform("sum")
    variance = (v * (1 - 2 * a) + spread).where(shown)
    std_error = np.sqrt(variance.where(variance > 0))
    difference = (x - wave_mean).where(shown)
    z_stat = difference / std_error
    p_value = pd.Series(2 * stats.norm.sf(np.abs(z_stat)), index=unit_wave.index)
    p_value = p_value.where(z_stat.notna())
    p_adjusted = benjamini_hochberg(p_value)
    quantile = stats.norm.ppf(0.5 + confidence / 2)
    return pd.DataFrame(
        {
            "unit_id": unit_wave["unit_id"],
            "wave": unit_wave["wave"],
            "n_respondents": unit_wave["n_respondents"],
            "engagement_index": x.where(shown),
            "wave_mean": wave_mean,
            "difference": difference,
            "std_error": std_error,
            "conf_low": difference - quantile * std_error,
            "conf_high": difference + quantile * std_error,
            "z": z_stat,
            "p_value": p_value,
            "p_adjusted": p_adjusted,
            "significant": (p_adjusted <= alpha).fillna(False).astype(bool),
        },
        index=unit_wave.index,
    )[list(CELL_COLUMNS)]
