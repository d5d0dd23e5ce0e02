"""The internal side on its own: are the scales sound, which units stand out, and where.

* :func:`scale_reliability` — is each scale reliable (Cronbach's alpha), and do the members of
  a unit-wave agree enough (ICC(1), ICC(2), r_wg) for a unit mean to stand for the unit?
* :func:`shrunken_unit_engagement` — each unit's engagement over the waves, shrunk towards the
  organisation's mean by empirical Bayes so that small units do not top or tail a league table by
  chance alone; small groups suppressed (``analysis.privacy``).
* :func:`cell_significance` — which cells of a unit × wave heat map differ from their wave's
  mean by more than sampling noise, after a false-discovery-rate correction.

Pure functions on pandas frames; nothing here reads or writes files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.contract import Scale
from analysis.drivers import benjamini_hochberg
from analysis.io import Dataset
from analysis.metrics import cronbach_alpha, icc_oneway, rwg, rwg_summary, wilson_interval
from analysis.panel import respondent_scale_score
from analysis.privacy import SUPPRESSED, suppress

#: Plain-English names of the default instrument's scales.
SCALE_LABELS = {
    "engagement": "Engagement",
    "internal_communication": "Internal communication",
    "brand_alignment": "Brand alignment",
    "points_of_connection": "Points of connection",
    "employee_effort": "Employee effort",
    "enps": "eNPS",
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
    """Plain-English name of a scale: ``SCALE_LABELS``, or the name with spaces for others."""
    return SCALE_LABELS.get(name, name.replace("_", " ").capitalize())


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

    With ``n`` sorted values, the interval ``(x_(j), x_(n−j+1))`` covers the median with
    probability ``1 − 2 P(Binomial(n, ½) < j)``; ``j`` is the largest rank keeping that at
    least ``confidence`` (Conover, 1999, *Practical Nonparametric Statistics*, 3rd ed., §3.2).
    NaN with too few values for the level asked.
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
    dataset: Dataset, confidence: float = 0.95, unit_wave: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Reliability of each scale and whether its unit-wave means may stand for the unit.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset; its ``instrument`` says which items form which scale.
    confidence : float
        Level of every interval.
    unit_wave : DataFrame, optional
        The **suppressed** unit × wave display table (``analysis.estimate``'s ``unit_wave``).
        When given, each scale's statistics use only the responses of the unit-waves whose
        value of that scale is shown there (``shown_responses``): what a report publishes. A
        report must pass it; see Notes.

    Returns
    -------
    DataFrame
        One row per scale of ``dataset.instrument``, in instrument order:

        * ``scale``, ``label`` (plain English, ``SCALE_LABELS``), ``n_items``;
        * ``alpha`` with Feldt's interval ``alpha_conf_low, alpha_conf_high`` and ``alpha_n``
          (complete rows) — Cronbach's alpha of the items (reverse-coded items flipped,
          ``analysis.metrics.cronbach_alpha``); NaN for a single-item scale;
        * ``icc1``, ``icc2`` with their intervals (``analysis.metrics.icc_oneway``) from a
          one-way ANOVA of each response's 0–100 scale score (``analysis.panel.
          respondent_scale_score``) by unit-wave group (``unit_id`` × ``wave``), and
          ``group_size`` (the adjusted mean group size ``k0``);
        * ``median_rwg`` (with an order-statistic interval, see ``_median_interval``),
          ``share_rwg_70`` (share of groups with r_wg ≥ .70, 0 … 1, Wilson interval) and
          ``n_rwg_groups`` (groups of two or more with complete answers): r_wg(J), or r_wg for
          one item, on the items grouped by unit-wave, with the uniform null over the scale's
          range (``analysis.metrics.rwg``; James, Demaree & Wolf, 1984);
        * ``n_responses`` (responses with a scale score: one person answering three waves is
          three responses), ``n_groups`` (unit-waves);
        * ``verdict``: ``"aggregation justified"`` when ICC(1) > .05, ICC(2) ≥ .70 and the
          median r_wg ≥ .70; otherwise ``"not justified: "`` and every criterion that fails.

    Notes
    -----
    Thresholds: ICC(1) of .05–.20 is typical of work-unit data and a value near zero means
    units barely differ; ICC(2) ≥ .70 means the group mean is a reliable measure of the group
    (Bliese, 2000, "Within-group agreement, non-independence, and reliability", in Klein &
    Kozlowski (eds.), *Multilevel theory, research, and methods in organizations*, 349–381).
    r_wg ≥ .70 is the conventional cut-off for agreement enough to aggregate; LeBreton & Senter
    (2008, *Organizational Research Methods* 11(4), 815–852) call .71–.90 strong agreement and
    warn that the cut-off is arbitrary. ICC(2) grows with group size (Spearman–Brown), so small
    unit-waves may fail it even when units truly differ: the verdict then says the unit-wave
    means are noisy, not that the scale is wrong; pooling waves (``shrunken_unit_engagement``)
    is the remedy. Responses are treated as independent; the same person answering several
    waves makes the intervals somewhat too narrow.

    Privacy: organisation-wide figures over every response look harmless, but two reports,
    one on all units and one on all units but a small one, would give away the small unit's
    answers by difference (its count of agreeing groups, its share of the sums of squares).
    With ``unit_wave`` every figure rests only on unit-waves that are themselves shown, so
    nothing here depends on the answers of a hidden group.
    """
    all_responses = dataset.employee_survey
    rows = []
    for scale in dataset.instrument.scales:
        survey = (
            all_responses
            if unit_wave is None
            else shown_responses(all_responses, unit_wave, scale.name)
        )
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
            "same run (analysis.estimate.suppressed_unit_wave)"
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
        ``engagement_noise_var`` (``s²_w / n``; ``analysis.panel.unit_wave_panel``), and
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
        units), and ``suppressed``, ``suppression`` from ``analysis.privacy.suppress``. Hidden
        units have every value of ``SHRUNKEN_VALUES`` and their rank missing.

    Notes
    -----
    For unit ``u`` with waves ``w``, index ``x_uw`` on ``n_uw`` respondents and sampling
    variance ``v_uw = s²/n_uw`` (``engagement_noise_var``)::

        x_u  = Σ_w n_uw x_uw / Σ_w n_uw                  raw mean
        v_u  = 1 / Σ_w (1 / v_uw)                        its sampling variance (≈ s² / Σ n_uw)
        τ²   = max(0, Σ_u (x_u − x̄)² / (K − 1) − mean(v_u))   between-unit variance (moments)
        μ    = Σ_u W_u x_u / Σ_u W_u,   W_u = 1 / (v_u + τ²)
        B_u  = v_u / (v_u + τ²)
        θ̂_u  = μ + (1 − B_u)(x_u − μ)
        sd_u = √((1 − B_u) v_u + B_u² / Σ W)

    and the interval ``θ̂_u ± z sd_u`` (Morris, 1983, "Parametric empirical Bayes inference:
    theory and applications", *JASA* 78(381), 47–55; James & Stein, 1961; Efron & Morris,
    1975, *JASA* 70(350), 311–319). ``τ²`` is the method-of-moments estimate, unbiased when all
    ``v_u`` are equal. ``(1 − B_u) v_u`` is the posterior variance with ``μ`` and ``τ²`` known;
    the ``B_u² / Σ W`` term adds the uncertainty of the estimated ``μ``. The uncertainty in
    ``τ²`` is ignored, so intervals are a little narrow when there are few units (Morris, 1983,
    §4). Because ``v_uw`` pools one within-group variance, the n-weighted raw mean is also the
    inverse-variance-weighted one. ``v_u`` treats the responses of different waves as
    independent; the same people answering again makes the waves' errors correlated, so
    ``v_u`` is an approximation that understates the noise a little. The target ``θ_u`` is the
    unit's mean over the waves it was surveyed, not a forecast.

    Why shrink: a unit's raw mean is noisy in proportion to ``1/n``; ranking raw means puts
    the smallest units at both ends by chance. Shrinkage pulls each mean towards ``μ`` by its
    own noise share ``B_u``, which lowers the total squared error over all units (the
    James–Stein property) and makes the ranking fairer to small units.

    Privacy: the table is passed through ``analysis.privacy.suppress`` with the count
    ``n_respondents_distinct`` and the grand total declared as published (``parents=[()]``).
    The count is of **distinct people**, not responses: the same three people answering eight
    waves give 24 responses but are still three people, and an average of their answers over
    the waves reveals those three people's views. Ranks are computed after suppression among
    the shown units, so a hidden unit has no rank (a rank would place its value between two
    shown ones). ``shrinkage`` stays visible: it depends only on the unit's number of
    responses and organisation-wide quantities, not on its answers.

    A unit's mean over the waves is a total of its unit-wave cells. If the same report also
    shows a unit × wave table, suppress that table with ``("unit_id",)`` among its ``parents``
    (and withhold this table's row where ``analysis.privacy.safe_totals`` withholds the unit
    total): otherwise the unit mean times its responses, minus its shown cells, gives away the
    sum of its hidden cells.
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
        precision=1.0 / rows["engagement_noise_var"],
        n=n,
    ).groupby("unit_id", sort=True)
    table = grouped.agg(
        n_waves=("engagement_index", "size"),
        n_responses=("n", "sum"),
        weighted=("weighted", "sum"),
        precision=("precision", "sum"),
    )
    raw = (table["weighted"] / table["n_responses"]).to_numpy()
    v = 1.0 / table["precision"].to_numpy()
    k = len(raw)
    # One unit gives no between-unit spread: τ² = 0 leaves it at its own mean (μ = x_u).
    tau2 = max(0.0, float(np.var(raw, ddof=1) - v.mean())) if k >= 2 else 0.0
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * raw) / np.sum(w)) if k else np.nan
    shrinkage = v / (v + tau2) if tau2 > 0 else np.ones(k)
    shrunken = mu + (1 - shrinkage) * (raw - mu)
    mean_variance = 1.0 / np.sum(w) if k else np.nan
    posterior_sd = np.sqrt((1 - shrinkage) * v + shrinkage**2 * mean_variance)
    z = stats.norm.ppf(0.5 + confidence / 2)

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
    out["raw_mean"] = raw
    out["shrinkage"] = shrinkage
    out["shrunken"] = shrunken
    out["posterior_sd"] = posterior_sd
    out["conf_low"] = shrunken - z * posterior_sd
    out["conf_high"] = shrunken + z * posterior_sd

    shown = suppress(
        out,
        count="n_respondents_distinct",
        values=list(SHRUNKEN_VALUES),
        min_group_size=min_group_size,
        parents=[()],
    )
    rank = shown["shrunken"].where(~shown[SUPPRESSED]).rank(ascending=False, method="min")
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
        The **suppressed** display table (``analysis.privacy.suppress`` over unit × wave) with
        ``unit_id``, ``wave``, ``n_respondents``, ``engagement_index`` and, which the caller
        must carry along, ``engagement_noise_var`` (``analysis.panel.unit_wave_panel``; the
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
    less than ``v_i``. The p-values of all shown cells are adjusted together by
    Benjamini–Hochberg (``analysis.drivers.benjamini_hochberg``; Benjamini & Hochberg, 1995,
    *JRSS B* 57(1), 289–300), and a cell is ``significant`` when its adjusted p-value is at most
    ``alpha``. The wave mean uses shown cells only, so nothing here depends on a hidden value.
    The test asks whether a cell differs from its wave by more than the sampling of its
    respondents explains; true, stable differences between units count as differences. Cells
    of one wave are slightly negatively correlated through the shared mean, which BH tolerates
    in practice; the z test assumes ``n_i`` large enough for a normal mean.
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
