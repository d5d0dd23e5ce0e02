"""Employee-survey scales: respondent scores, reliability, agreement and scorecards.

Every function takes the survey table and a ``Scale`` of the instrument
(``analysis.data.contract``); each formula and its reference is in the function's docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import DEFAULT_INSTRUMENT, Instrument, Scale
from analysis.measures.intervals import mean_with_t_interval, wilson_interval

#: Plain-English names of the six points of connection, for tables and charts.
POINT_OF_CONNECTION_LABELS = {
    "poc_listening": "Listening",
    "poc_valued": "Feeling valued",
    "poc_resolution": "Resolving differences",
    "poc_honesty": "Honesty",
    "poc_reliability": "Doing what we say",
    "poc_authenticity": "Authenticity",
}

#: Respondent means within this distance below a favourable threshold still count as favourable:
#: the mean is rebuilt from a 0–100 score and may carry floating-point rounding.
_THRESHOLD_TOLERANCE = 1e-9


def feldt_interval(alpha: float, n: int, k: int, confidence: float = 0.95) -> tuple[float, float]:
    """Feldt's confidence interval for coefficient alpha from ``n`` respondents and ``k`` items.

    Parameters
    ----------
    alpha : float
        The estimated coefficient alpha ``α̂``.
    n : int
        Respondents (complete rows).
    k : int
        Items.
    confidence : float
        The interval's level.

    Returns
    -------
    tuple of float
        ``(low, high)``; NaNs with fewer than two respondents or items, or a missing ``alpha``.

    Notes
    -----
    ``(1 − α) / (1 − α̂)`` follows an F distribution with ``df1 = n − 1`` and
    ``df2 = (n − 1)(k − 1)`` (Feldt, 1965). Inverting it gives, with ``γ = 1 − confidence`` and
    ``F_q`` the ``q`` quantile of that F distribution::

        low  = 1 − (1 − α̂) · F_{1 − γ/2}
        high = 1 − (1 − α̂) · F_{γ/2}

    (Feldt, Woodruff & Salih, 1987, formulas 6 and 7 on p. 95). The upper F quantile gives the
    *lower* limit. The distribution is exact when the items are parallel with normal errors
    (compound symmetry); with unequal item variances the interval is approximate.

    References
    ----------
    Feldt, L. S. (1965). The approximate sampling distribution of Kuder–Richardson reliability
    coefficient twenty. *Psychometrika* 30(3), 357–370.

    Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for coefficient
    alpha. *Applied Psychological Measurement* 11(1), 93–103.
    """
    if n < 2 or k < 2 or not np.isfinite(alpha):
        return np.nan, np.nan
    gamma = 1 - confidence
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - alpha) * stats.f.ppf(1 - gamma / 2, df1, df2)
    high = 1 - (1 - alpha) * stats.f.ppf(gamma / 2, df1, df2)
    return float(low), float(high)


def cronbach_alpha(items: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """Cronbach's coefficient alpha of a multi-item scale, with Feldt's confidence interval.

    Parameters
    ----------
    items : DataFrame
        One row per respondent and one column per item, all keyed in the same direction (flip
        reverse-coded items first, as ``scale_scores`` does). Rows with any missing item are
        dropped (listwise deletion), so ``n`` counts complete rows only.
    confidence : float
        The level of the interval (``feldt_interval``).

    Returns
    -------
    Series
        ``alpha, conf_low, conf_high, n, k``; alpha and the interval are NaN with fewer than two
        complete rows or a total with no variance.

    Raises
    ------
    ValueError
        With fewer than two items.

    Notes
    -----
    With ``k`` items, item variances ``s²_i`` and the variance ``s²_X`` of the row totals (all
    with ``n − 1``)::

        α = k / (k − 1) · (1 − Σ s²_i / s²_X)

    Alpha is the reliability of the total only if the items are (essentially) tau-equivalent;
    otherwise it is a lower bound.

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests.
    *Psychometrika* 16(3), 297–334.
    """
    data = items.astype("float64").to_numpy()
    data = data[~np.isnan(data).any(axis=1)]
    n, k = data.shape
    if k < 2:
        raise ValueError(f"alpha needs at least two items; got {k}")
    total_variance = float(data.sum(axis=1).var(ddof=1)) if n >= 2 else np.nan
    if not total_variance > 0:
        alpha = np.nan
    else:
        alpha = k / (k - 1) * (1 - float(data.var(axis=0, ddof=1).sum()) / total_variance)
    low, high = feldt_interval(alpha, n, k, confidence)
    return pd.Series({"alpha": alpha, "conf_low": low, "conf_high": high, "n": n, "k": k})


def icc_oneway(scores: pd.Series, groups: pd.Series, confidence: float = 0.95) -> pd.Series:
    """ICC(1) and ICC(2) of individual scores nested in groups, from a one-way ANOVA.

    Parameters
    ----------
    scores : Series
        Individual scores.
    groups : Series
        Each score's group, matched to ``scores`` by position. Rows with a missing score or group
        are dropped.
    confidence : float
        The level of the intervals.

    Returns
    -------
    Series
        ``icc1, conf_low, conf_high, icc2, icc2_conf_low, icc2_conf_high, n, n_groups,
        group_size`` (``group_size`` is ``k0``). Statistics are NaN with fewer than two groups or
        no within-group degrees of freedom.

    Raises
    ------
    ValueError
        If ``scores`` and ``groups`` differ in length.

    Notes
    -----
    With ``N`` scores in ``J`` groups of sizes ``n_j``, between- and within-group mean squares
    ``MSB`` (``J − 1`` df) and ``MSW`` (``N − J`` df)::

        ICC(1) = (MSB − MSW) / (MSB + (k − 1) MSW)
        ICC(2) = (MSB − MSW) / MSB
        k      = k0 = (N − Σ n_j² / N) / (J − 1)

    (Bliese, 2000). ICC(1) is the share of score variance that lies between groups; ICC(2) is the
    reliability of a group mean (Spearman–Brown of ICC(1) at ``k0``). For unequal group sizes
    ``k`` is the adjusted average group size ``k0`` of the one-way random-effects ANOVA (Donner,
    1986), not the plain mean ``N / J`` used by R's ``multilevel::ICC1``; the two agree when
    groups are equal. ICC(1) is negative when group means vary less than chance alone would make
    them (``MSB < MSW``).

    Interval: with ``F = MSB / MSW``, ``γ = 1 − confidence``, ``F_L = F / F_{1−γ/2}(J−1, N−J)``
    and ``F_U = F · F_{1−γ/2}(N−J, J−1)``::

        ICC(1): ((F_L − 1) / (F_L + k − 1),  (F_U − 1) / (F_U + k − 1))
        ICC(2): (1 − 1 / F_L,                1 − 1 / F_U)

    (Shrout & Fleiss, 1979, ICC(1,1) and ICC(1,k); McGraw & Wong, 1996, case 1). Exact for equal
    group sizes with normal group effects and errors; approximate (with ``k0``) otherwise.

    References
    ----------
    Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability: implications
    for data aggregation and analysis. In K. J. Klein & S. W. J. Kozlowski (Eds.), *Multilevel
    Theory, Research, and Methods in Organizations* (pp. 349–381). Jossey-Bass.

    Donner, A. (1986). A review of inference procedures for the intraclass correlation
    coefficient in the one-way random effects model. *International Statistical Review* 54(1),
    67–82.

    McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation
    coefficients. *Psychological Methods* 1(1), 30–46.

    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
    reliability. *Psychological Bulletin* 86(2), 420–428.
    """
    y = pd.Series(scores).astype("float64").to_numpy()
    group = pd.Series(groups)
    if len(group) != len(y):
        raise ValueError("scores and groups must have the same length")
    keep = ~np.isnan(y) & group.notna().to_numpy()
    y = y[keep]
    codes, _ = pd.factorize(group[keep].to_numpy())
    n, n_groups = len(y), int(codes.max()) + 1 if len(codes) else 0
    row = {"n": n, "n_groups": n_groups}
    nan_row = {
        "icc1": np.nan,
        "conf_low": np.nan,
        "conf_high": np.nan,
        "icc2": np.nan,
        "icc2_conf_low": np.nan,
        "icc2_conf_high": np.nan,
    }
    if n_groups < 2 or n - n_groups < 1:
        return pd.Series({**nan_row, **row, "group_size": np.nan})
    sizes = np.bincount(codes).astype(float)
    group_means = (np.bincount(codes, weights=y) / sizes)[codes]
    df_between, df_within = n_groups - 1, n - n_groups
    ms_between = float(np.sum((group_means - y.mean()) ** 2)) / df_between
    ms_within = float(np.sum((y - group_means) ** 2)) / df_within
    k0 = (n - np.sum(sizes**2) / n) / df_between
    if ms_within == 0:
        return pd.Series({**nan_row, **row, "group_size": k0})
    gamma = 1 - confidence
    f_observed = ms_between / ms_within
    f_low = f_observed / stats.f.ppf(1 - gamma / 2, df_between, df_within)
    f_high = f_observed * stats.f.ppf(1 - gamma / 2, df_within, df_between)
    return pd.Series(
        {
            "icc1": (ms_between - ms_within) / (ms_between + (k0 - 1) * ms_within),
            "conf_low": (f_low - 1) / (f_low + k0 - 1),
            "conf_high": (f_high - 1) / (f_high + k0 - 1),
            "icc2": (ms_between - ms_within) / ms_between if ms_between > 0 else np.nan,
            "icc2_conf_low": 1 - 1 / f_low,
            "icc2_conf_high": 1 - 1 / f_high,
            **row,
            "group_size": k0,
        }
    )


def rwg(
    items: pd.DataFrame | pd.Series,
    groups: pd.Series,
    low: int,
    high: int,
    truncate: bool = True,
) -> pd.DataFrame:
    """Within-group agreement r_wg (one item) or r_wg(J) (a scale of J items), per group.

    Parameters
    ----------
    items : DataFrame or Series
        One column per item, or a Series for one item. Rows with any missing item or a missing
        group are dropped (listwise, as in R's ``multilevel::rwg.j``).
    groups : Series
        Each row's group, matched by position.
    low, high : int
        The answer range: whole numbers ``low … high``.
    truncate : bool
        Set r_wg to 0 where the group disagrees more than random answering would.

    Returns
    -------
    DataFrame
        One row per group: ``group, rwg, variance, n`` (``variance`` is ``s̄²``).

    Raises
    ------
    ValueError
        If ``items`` and ``groups`` differ in length, or ``high ≤ low``.

    Notes
    -----
    There are ``A = high − low + 1`` options and the variance expected if everyone answered at
    random (uniformly) is ``σ²_EU = (A² − 1) / 12``. Within a group, with ``s̄²`` the mean of the
    item variances (``n − 1`` divisor; for one item, its variance)::

        r_wg    = 1 − s² / σ²_EU                                   (J = 1)
        r_wg(J) = J (1 − s̄² / σ²_EU) / (J (1 − s̄² / σ²_EU) + s̄² / σ²_EU)

    (James, Demaree & Wolf, 1984.) r_wg(J) is the Spearman–Brown step-up of
    ``1 − s̄² / σ²_EU``. When ``s̄² > σ²_EU`` the group disagrees more than random answering would;
    the formulas then leave [0, 1], and with ``truncate=True`` (the default) such groups get 0, as
    LeBreton & Senter (2008) recommend. The uniform null ignores response biases such as
    leniency, so r_wg tends to overstate agreement. A group needs two members.

    References
    ----------
    James, L. R., Demaree, R. G., & Wolf, G. (1984). Estimating within-group interrater
    reliability with and without response bias. *Journal of Applied Psychology* 69(1), 85–98.

    LeBreton, J. M., & Senter, J. L. (2008). Answers to 20 questions about interrater reliability
    and interrater agreement. *Organizational Research Methods* 11(4), 815–852.
    """
    data = items.to_frame() if isinstance(items, pd.Series) else items
    data = data.astype("float64").reset_index(drop=True)
    group = pd.Series(groups).reset_index(drop=True)
    if len(group) != len(data):
        raise ValueError("items and groups must have the same length")
    if high <= low:
        raise ValueError(f"high must exceed low; got {low} … {high}")
    keep = data.notna().all(axis=1) & group.notna()
    data, group = data[keep], group[keep]
    options = high - low + 1
    expected = (options**2 - 1) / 12
    grouped = data.groupby(group.to_numpy(), sort=True)
    variance = grouped.var(ddof=1).mean(axis=1)
    sizes = grouped.size()
    ratio = variance / expected
    n_items = data.shape[1]
    if n_items == 1:
        agreement = 1 - ratio
    else:
        stepped = n_items * (1 - ratio)
        with np.errstate(divide="ignore", invalid="ignore"):
            agreement = stepped / (stepped + ratio)
    if truncate:
        agreement = agreement.mask(ratio > 1, 0.0)
    return pd.DataFrame(
        {
            "group": variance.index.to_numpy(),
            "rwg": agreement.to_numpy(dtype=float),
            "variance": variance.to_numpy(dtype=float),
            "n": sizes.reindex(variance.index).to_numpy(dtype=int),
        }
    )


def rwg_summary(table: pd.DataFrame, threshold: float = 0.70) -> pd.Series:
    """Summary of a ``rwg`` table over the groups where r_wg is defined.

    Parameters
    ----------
    table : DataFrame
        As returned by :func:`rwg`.
    threshold : float
        The cut-off for "enough agreement to aggregate": ``.70`` by convention (an arbitrary
        one); LeBreton & Senter (2008) describe .71–.90 as strong agreement.

    Returns
    -------
    Series
        ``median_rwg, share_at_least_threshold, threshold, n_groups``; the share is on 0 … 1.

    References
    ----------
    LeBreton, J. M., & Senter, J. L. (2008). Answers to 20 questions about interrater reliability
    and interrater agreement. *Organizational Research Methods* 11(4), 815–852.
    """
    values = table["rwg"].dropna().to_numpy(dtype=float)
    n_groups = len(values)
    return pd.Series(
        {
            "median_rwg": float(np.median(values)) if n_groups else np.nan,
            "share_at_least_threshold": float(np.mean(values >= threshold)) if n_groups else np.nan,
            "threshold": threshold,
            "n_groups": n_groups,
        }
    )


def respondent_scale_score(survey: pd.DataFrame, scale: Scale) -> pd.Series:
    """Each respondent's score on a scale, 0–100; NaN where every item was skipped."""
    items = survey[list(scale.items)].astype("float64")
    if scale.reverse:
        reverse = list(scale.reverse)
        items[reverse] = scale.low + scale.high - items[reverse]
    return (items.mean(axis=1) - scale.low) / (scale.high - scale.low) * 100


def scale_scores(survey: pd.DataFrame, scale: Scale) -> pd.DataFrame:
    """Each respondent's scale score on 0–100 and whether it is favourable.

    Parameters
    ----------
    survey : DataFrame
        The employee survey, with the scale's item columns.
    scale : Scale
        The scale to score.

    Returns
    -------
    DataFrame
        ``score`` and ``favourable``, with the survey's index.

    Notes
    -----
    ``score`` is ``respondent_scale_score``: the mean of the items answered, reverse-coded items
    flipped (``low + high − x``), rescaled as ``(mean − low) / (high − low) × 100``.
    ``favourable`` (pandas ``boolean``) is True when that mean, on the original item scale, is at
    least ``scale.favourable`` (e.g. 4 on 1–5: "agree" or better); it is missing (``<NA>``) where
    no item was answered or the scale has no threshold (eNPS).
    """
    score = respondent_scale_score(survey, scale)
    favourable = pd.Series(pd.NA, index=survey.index, dtype="boolean")
    if scale.favourable is not None:
        mean = scale.low + score / 100 * (scale.high - scale.low)
        meets = mean >= scale.favourable - _THRESHOLD_TOLERANCE
        favourable = meets.astype("boolean").mask(score.isna())
    return pd.DataFrame({"score": score, "favourable": favourable}, index=survey.index)


def _score_summary(score: pd.Series, favourable: pd.Series, confidence: float) -> dict:
    values = score.dropna().to_numpy(dtype=float)
    answered = favourable.dropna()
    summary = mean_with_t_interval(values, confidence, (0.0, 100.0))
    if len(answered):
        yes = int(answered.sum())
        low, high = wilson_interval(yes, len(answered), confidence)
        pct, pct_low, pct_high = 100 * yes / len(answered), 100 * low, 100 * high
    else:
        pct = pct_low = pct_high = np.nan
    return {
        **summary,
        "pct_favourable": pct,
        "pct_favourable_conf_low": pct_low,
        "pct_favourable_conf_high": pct_high,
        "n": len(values),
    }


def scale_summary(survey: pd.DataFrame, scale: Scale, confidence: float = 0.95) -> pd.Series:
    """Mean 0–100 score of a scale and its percentage favourable, each with an interval.

    Parameters
    ----------
    survey : DataFrame
        The employee survey.
    scale : Scale
        The scale to summarise (scored by ``scale_scores``).
    confidence : float
        The level of both intervals.

    Returns
    -------
    Series
        ``mean, std_error, conf_low, conf_high, pct_favourable, pct_favourable_conf_low,
        pct_favourable_conf_high, n``.

    Notes
    -----
    ``mean`` is the mean respondent score on 0–100 with its standard error ``s / √n`` and a
    Student-t interval (``n − 1`` df, clipped to 0–100; respondents are treated as independent,
    which ignores clustering within units). ``pct_favourable`` is the percentage (0–100) of scored
    respondents who are favourable, with a Wilson interval (``wilson_interval``); NaN for a scale
    without a threshold. ``n`` counts respondents with a score.
    """
    scored = scale_scores(survey, scale)
    return pd.Series(_score_summary(scored["score"], scored["favourable"], confidence))


def effort_score(
    values: Iterable[float],
    low: int = 1,
    high: int = 7,
    easy_threshold: int = 6,
    confidence: float = 0.95,
) -> pd.Series:
    """Customer (CES) or employee (EES) effort score on its own 1–7 scale, 7 meaning "very easy".

    The mean answer and the share of easy answers, each with an interval.

    Parameters
    ----------
    values : iterable of float
        The answers; missing ones are dropped.
    low, high : int
        The answer range.
    easy_threshold : int
        The lowest answer that counts as easy (default 6: "easy" or "very easy").
    confidence : float
        The level of both intervals.

    Returns
    -------
    Series
        ``mean, std_error, conf_low, conf_high, share_easy, share_easy_conf_low,
        share_easy_conf_high, n``.

    Raises
    ------
    ValueError
        If an answer is not a whole number in ``low … high``, or ``easy_threshold`` lies outside.

    Notes
    -----
    ``mean`` is on the original scale (not rescaled) with standard error ``s / √n`` and a
    Student-t interval (``n − 1`` df, clipped to ``low … high``). ``share_easy`` is the share
    (0 … 1) of answers at or above ``easy_threshold``, with a Wilson interval
    (``wilson_interval``). Answers are treated as independent.
    """
    if not low <= easy_threshold <= high:
        raise ValueError(f"easy_threshold must lie in {low} … {high}; got {easy_threshold}")
    answers = pd.array(list(values), dtype="Float64").to_numpy("float64", na_value=np.nan)
    answers = answers[~np.isnan(answers)]
    bad = (answers < low) | (answers > high) | (answers != np.floor(answers))
    if bad.any():
        raise ValueError(
            f"effort answers must be whole numbers {low}–{high}; got {answers[bad][:5]}"
        )
    n = len(answers)
    easy = int((answers >= easy_threshold).sum())
    share_low, share_high = wilson_interval(easy, n, confidence)
    return pd.Series(
        {
            **mean_with_t_interval(answers, confidence, (low, high)),
            "share_easy": easy / n if n else np.nan,
            "share_easy_conf_low": share_low,
            "share_easy_conf_high": share_high,
            "n": n,
        }
    )


SCORECARD_COLUMNS = (
    "item",
    "label",
    "mean",
    "std_error",
    "conf_low",
    "conf_high",
    "pct_favourable",
    "pct_favourable_conf_low",
    "pct_favourable_conf_high",
    "n",
)


def points_of_connection_scorecard(
    survey: pd.DataFrame,
    instrument: Instrument = DEFAULT_INSTRUMENT,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per point-of-connection item: its mean 0–100 and percentage favourable.

    Parameters
    ----------
    survey : DataFrame
        The employee survey.
    instrument : Instrument
        Its ``points_of_connection`` scale lists the items (by default listening, feeling valued,
        resolving differences, honesty, doing what we say, authenticity).
    confidence : float
        The level of the intervals.

    Returns
    -------
    DataFrame
        Columns ``item, label, mean, std_error, conf_low, conf_high, pct_favourable,
        pct_favourable_conf_low, pct_favourable_conf_high, n``. ``label`` is the plain-English
        name (``POINT_OF_CONNECTION_LABELS``; the item name for items it does not know). No
        rows when the instrument has no ``points_of_connection`` scale (it is optional).

    Notes
    -----
    Each item is scored as a one-item scale with the parent scale's range, reverse coding and
    favourable threshold, and summarised as in ``scale_summary``: ``mean`` 0–100 with a t
    interval, ``pct_favourable`` (answer ≥ the threshold, 0–100) with a Wilson interval, ``n``
    answers.
    """
    if "points_of_connection" not in {s.name for s in instrument.scales}:
        return pd.DataFrame(columns=list(SCORECARD_COLUMNS))
    scale = instrument.scale("points_of_connection")
    rows = []
    for item in scale.items:
        single = Scale(
            name=item,
            items=(item,),
            low=scale.low,
            high=scale.high,
            favourable=scale.favourable,
            reverse=(item,) if item in scale.reverse else (),
        )
        scored = scale_scores(survey, single)
        summary = _score_summary(scored["score"], scored["favourable"], confidence)
        rows.append({"item": item, "label": POINT_OF_CONNECTION_LABELS.get(item, item), **summary})
    return pd.DataFrame(rows, columns=list(SCORECARD_COLUMNS))
