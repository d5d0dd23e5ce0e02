"""Internal service between teams: provider scorecards and the service a unit receives.

Staff rate the internal teams they depend on (IT, HR, logistics, a regional office) on the six
points of connection and an internal NPS (contract v2, ``internal_service``). This module turns
those ratings into:

* :func:`rater_scores` — one row per rating: the 0–100 service score, each point of connection
  on 0–100 and the rating's internal NPS category (what every other function here builds on);
* :func:`provider_scores` — each provider's scorecard per wave: the internal service index
  (0–100) with its t interval and distinct raters, the six points of connection, internal NPS
  with its trinomial interval; small provider-waves suppressed, figures optionally released
  with Laplace noise (``analysis.measures.privacy``);
* :func:`provider_ranking` — the latest wave's shown providers ranked on their empirical-Bayes
  shrunken index (``analysis.measures.shrinkage``);
* :func:`provider_trend` — each shown provider's change from its first to its last shown wave;
* :func:`service_received` — the internal service a unit *receives* in a wave, computed leaving
  out the receiving unit's own raters (contract, "How the tables link"), with the sampling
  variance a regression needs to correct for the noise of a received index built from few
  raters. A model input, not a displayed figure (see its Notes).

The service-profit chain's first link is internal service quality (Heskett, Jones, Loveman,
Sasser & Schlesinger, 1994). Pure functions on pandas frames; nothing here reads or writes files.

References
----------
Heskett, J. L., Jones, T. O., Loveman, G. W., Sasser, W. E., & Schlesinger, L. A. (1994).
Putting the service-profit chain to work. *Harvard Business Review* 72(2), 164–174.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import POINTS_OF_CONNECTION, nps_category
from analysis.measures.nps import nps_from_counts
from analysis.measures.privacy import (
    MIN_GROUP_SIZE_FLOOR,
    SUPPRESSED,
    SUPPRESSION,
    Release,
    laplace_mechanism,
    mean_sensitivity,
    released_pooled_variance,
    small_group_reason,
    suppress,
    widened_interval,
)
from analysis.measures.shrinkage import empirical_bayes

__all__ = [
    "RANKING_COLUMNS",
    "RECEIVED_COLUMNS",
    "SCORE_COLUMNS",
    "SPLIT_REASON",
    "TREND_COLUMNS",
    "provider_ranking",
    "provider_scores",
    "provider_statistics",
    "provider_trend",
    "rater_scores",
    "service_received",
]

PROVIDER, RATER, WAVE, RESPONDENT = "provider_unit_id", "rater_unit_id", "wave", "respondent_id"
KEYS = [PROVIDER, WAVE]
#: Low and high answer of every point of connection (contract: integer 1–5).
POC_LOW, POC_HIGH = 1, 5

SCORE_COLUMNS = (
    PROVIDER,
    WAVE,
    "n_raters",
    "service_index",
    "conf_low",
    "conf_high",
    "service_index_noise_var",
    *(f"{item}{suffix}" for item in POINTS_OF_CONNECTION for suffix in ("_index", "_n")),
    "internal_nps",
    "internal_nps_conf_low",
    "internal_nps_conf_high",
    "internal_nps_n",
    SUPPRESSED,
    SUPPRESSION,
)
RANKING_COLUMNS = (
    PROVIDER,
    WAVE,
    "n_raters",
    "service_index",
    "service_index_noise_var",
    "shrinkage",
    "shrunken",
    "posterior_sd",
    "conf_low",
    "conf_high",
    "rank",
)
TREND_COLUMNS = (
    PROVIDER,
    "first_wave",
    "last_wave",
    "n_waves",
    "n_raters_first",
    "n_raters_last",
    "first",
    "last",
    "change",
    "std_error",
    "conf_low",
    "conf_high",
    "p_value",
)
RECEIVED_COLUMNS = (
    "unit_id",
    WAVE,
    "service_received",
    "received_noise_var",
    "n_providers",
    "n_providers_unmeasured",
    "n_raters_own",
    "n_raters_other",
    SUPPRESSED,
    SUPPRESSION,
)
#: ``suppression`` of a received row that uses a provider whose raters from some unit are few.
SPLIT_REASON = "a provider it uses has fewer than {} raters from one unit"


# --------------------------------------------------------------------------------------------
# Each rater's score of each provider


def rater_scores(internal_service: pd.DataFrame) -> pd.DataFrame:
    """One row per rating: the keys, the 0–100 service score, each item on 0–100, internal NPS.

    The score of a rating is ``(mean of its answered points of connection − 1) / 4 × 100``.
    Raises ``ValueError`` on what the loader refuses: a missing key column, a repeated
    (respondent, provider, wave), a rating that answers no point of connection.
    """
    missing = [c for c in (RESPONDENT, RATER, PROVIDER, WAVE) if c not in internal_service]
    if missing:
        raise ValueError(f"internal_service lacks columns: {', '.join(missing)}")
    repeated = internal_service.duplicated([RESPONDENT, PROVIDER, WAVE], keep=False)
    if repeated.any():
        raise ValueError(
            f"{int(repeated.sum())} rows repeat a (respondent_id, provider_unit_id, wave): the "
            "contract allows one rating of a provider per person and wave, so each rater counts "
            f"once; first rows {list(internal_service.index[repeated][:5])}"
        )
    n = len(internal_service)
    items = pd.DataFrame(
        {
            item: (
                internal_service[item].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
                if item in internal_service
                else np.full(n, np.nan)
            )
            for item in POINTS_OF_CONNECTION
        },
        index=internal_service.index,
    )
    unanswered = items.isna().all(axis=1)
    if unanswered.any():
        raise ValueError(
            f"{int(unanswered.sum())} ratings answer no point of connection (the contract needs "
            f"at least one); first rows {list(internal_service.index[unanswered][:5])}"
        )
    scale = 100.0 / (POC_HIGH - POC_LOW)
    nps_answers = (
        internal_service["internal_nps"].astype("Float64").to_numpy("float64", na_value=np.nan)
        if "internal_nps" in internal_service
        else np.full(n, np.nan)
    )
    frame = internal_service[[RESPONDENT, RATER, PROVIDER, WAVE]].copy()
    frame["score"] = (items.mean(axis=1) - POC_LOW) * scale
    for item in POINTS_OF_CONNECTION:
        frame[item] = (items[item] - POC_LOW) * scale
    frame["internal_nps"] = nps_answers
    return frame.reset_index(drop=True)


def _validate_min_group_size(min_group_size: int) -> None:
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer):
        raise ValueError(f"min_group_size must be a whole number, not {min_group_size!r}")
    if min_group_size < MIN_GROUP_SIZE_FLOOR:
        raise ValueError(
            f"min_group_size must be at least {MIN_GROUP_SIZE_FLOOR} to protect respondents' "
            f"anonymity, not {min_group_size}"
        )


def _t_interval(mean, variance, n, confidence: float, clip: bool = True):
    """``mean ± t_{n−1} √(variance / n)``, clipped to 0–100 unless ``clip`` is false; NaN for
    ``n < 2`` (vectorised ``analysis.measures.intervals.mean_with_t_interval``)."""
    mean, variance, n = (np.asarray(a, dtype="float64") for a in (mean, variance, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(n > 1, stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)), np.nan)
        half = t * np.sqrt(variance / n)
    if not clip:
        return mean - half, mean + half
    return np.clip(mean - half, 0.0, 100.0), np.clip(mean + half, 0.0, 100.0)


# --------------------------------------------------------------------------------------------
# Provider scorecards


def provider_scores(
    internal_service: pd.DataFrame,
    min_group_size: int,
    confidence: float = 0.95,
    *,
    release: Release | None = None,
    parents: Sequence[Sequence[str]] = (),
    nps_method: str = "adjusted_wald",
) -> pd.DataFrame:
    """Each provider's internal service scorecard per wave, small provider-waves suppressed.

    Parameters
    ----------
    internal_service : DataFrame
        The contract's ``internal_service`` table as the loader types it (``Dataset.
        internal_service``). Point-of-connection columns and ``internal_nps`` may be absent.
    min_group_size : int
        The fewest distinct raters a shown figure may rest on (at least 3).
    confidence : float
        Level of every interval.
    release : analysis.measures.privacy.Release, optional
        The run's release (``analysis.measures.privacy.release_for``). With it every shown
        employee-derived figure is released by the Laplace mechanism and every interval counts
        the noise; **a report must pass it**. Without it the figures are exact: for tests and
        model inputs only.
    parents : sequence of groupings
        Groupings of these rows (``("wave",)``, ``()``) whose totals some page publishes. By
        default none: this module publishes no total over providers. A page that adds, say, an
        organisation-wide internal service index per wave must declare ``[("wave",)]`` here and
        take that total from ``analysis.measures.privacy.safe_totals`` with the same
        ``parents`` on the exact table.
    nps_method : {"adjusted_wald", "wald"}
        Interval of internal NPS (``analysis.measures.nps.nps_from_counts``).

    Returns
    -------
    DataFrame
        One row per provider × wave rated, sorted by provider then wave (``SCORE_COLUMNS``):

        * ``provider_unit_id``, ``wave``, ``n_raters`` (distinct ``respondent_id``);
        * ``service_index`` (0–100) with ``conf_low``, ``conf_high`` and
          ``service_index_noise_var`` (its variance about the provider-wave's true mean, for
          the ranking and the trend);
        * ``<item>_index`` (0–100) and ``<item>_n`` (raters who answered it) for each of the
          six points of connection (``analysis.data.contract.POINTS_OF_CONNECTION``);
        * ``internal_nps`` (−100 … 100) with ``internal_nps_conf_low``,
          ``internal_nps_conf_high`` and ``internal_nps_n``;
        * ``suppressed``, ``suppression`` (``analysis.measures.privacy.suppress``) for the row.

        Counts always show; every other value is missing where hidden.

    Notes
    -----
    **Index.** Rater ``i`` of provider ``P`` in wave ``t`` answers ``k_i ≥ 1`` of the six
    points of connection (1–5); the rater's score is ``y_i = (mean of the k_i answers − 1) / 4
    × 100``. With ``n`` raters (each rates a provider once a wave, by contract; a repeated
    rating is an error)::

        service_index = ȳ = Σ y_i / n,   s² = Σ (y_i − ȳ)² / (n − 1)
        interval      = ȳ ± t_{(1+c)/2, n−1} s / √n           clipped to 0–100 (Student, 1908)

    Each point of connection is the mean of its answers rescaled the same way, over its own
    ``n``. Internal NPS is ``100 (p − d)`` over the ``internal_nps`` answers (promoters 9–10,
    detractors 0–6) with the trinomial variance ``100² (p + d − (p − d)²) / n`` and the
    adjusted-Wald (default) or Wald interval (Rocks, 2016; ``analysis.measures.nps``).
    ``service_index_noise_var`` is ``s²_pool / n`` with ``s²_pool = Σ Σ (y_i − ȳ)² / Σ (n − 1)``
    pooled over the provider-waves of at least ``min_group_size`` raters, so that a small
    provider whose raters happen to agree is not treated as known exactly (as
    ``analysis.measures.nps.nps_noise_var`` pools shares).

    **Suppression.** A provider-wave with fewer than ``min_group_size`` distinct raters shows
    none of its values (primary suppression, ``analysis.measures.privacy.suppress``). Each
    point of connection and internal NPS are also suppressed on their own count, like the
    per-item figures of the unit × wave table (README, "Privacy"): five raters of whom one
    answered ``poc_honesty`` show no honesty index. Complementary suppression protects the
    totals declared in ``parents``. **The rule chosen: this module publishes no total over
    providers** (no organisation-wide or per-wave index), so by default there is nothing to
    subtract a hidden provider from and no complementary suppression is needed; the ranking
    and the trend are computed from shown rows only, so they are functions of shown figures.
    A page that publishes totals declares them and gets the complementary pattern.

    **Release.** With ``release`` every shown figure goes through
    ``analysis.measures.privacy.laplace_mechanism``, as the unit × wave table does, with the
    sensitivity of one rating replaced by any other (count published): the service index and
    each point of connection ``100 / n`` (their own ``n``); internal NPS ``200 / n``; its share
    of promoters plus detractors (used only for the standard error, not shown) ``1 / n``; the
    pooled variance, released once, ``100² / Σ (n − 1)``. The released interval of the index is
    ``ỹ ± t_{n−1} √(s̃²_pool / n)`` widened by the noise (``widened_interval``) and
    ``service_index_noise_var = s̃²_pool / n + 2b²``; a provider's own ``s²`` is not released
    (its noise, ``b = 100² / (n ε)``, would swamp it at the sizes of internal teams). The NPS
    interval comes from the released score and share, widened the same way. Each figure is
    ε-differentially private in one rating; one person rating ``k`` providers enters ``k``
    provider-waves' figures (basic composition, README "Privacy").

    A shown service index includes the answers of a rater to a point of connection that is
    itself hidden for being answered by too few, exactly as a unit's scale index includes items
    whose per-item figures are hidden.

    References
    ----------
    Cox, L. H. (1980). Suppression methodology and statistical disclosure control. *JASA*
    75(370), 377–385.
    Dwork, C., McSherry, F., Nissim, K., & Smith, A. (2006). Calibrating noise to sensitivity
    in private data analysis. *TCC 2006*, LNCS 3876, 265–284.
    Rocks, B. (2016). Interval estimation for the "net promoter score". *The American
    Statistician* 70(4), 365–372.
    Student (1908). The probable error of a mean. *Biometrika* 6(1), 1–25.
    """
    exact = provider_statistics(internal_service, min_group_size, confidence, nps_method)
    pooled = float(exact.attrs["pooled_within_variance"])
    degrees = float(exact.attrs["pooled_degrees"])

    # Suppression: the row on its raters, each point of connection and NPS on their own count.
    service_values = ["service_index", "conf_low", "conf_high", "service_index_noise_var"]
    nps_values = ["internal_nps", "internal_nps_conf_low", "internal_nps_conf_high"]
    item_values = [f"{item}_index" for item in POINTS_OF_CONNECTION]
    shown = suppress(
        exact,
        count="n_raters",
        values=[*service_values, *item_values, *nps_values],
        min_group_size=min_group_size,
        parents=parents,
        members="raters",
    )
    for count, values in [
        *((f"{item}_n", [f"{item}_index"]) for item in POINTS_OF_CONNECTION),
        ("internal_nps_n", nps_values),
    ]:
        own = suppress(
            exact,
            count=count,
            values=values,
            min_group_size=min_group_size,
            parents=parents,
            members="raters",
        )[SUPPRESSED].to_numpy()
        for column in values:
            shown[column] = shown[column].where(~own)
    if release is not None:
        shown = _released_scores(shown, exact, pooled, degrees, release, confidence, nps_method)
    return shown[list(SCORE_COLUMNS)].reset_index(drop=True)


def provider_statistics(
    internal_service: pd.DataFrame,
    min_group_size: int,
    confidence: float = 0.95,
    nps_method: str = "adjusted_wald",
) -> pd.DataFrame:
    """The exact scorecard statistics of every provider-wave, before suppression and release.

    Never publish these: :func:`provider_scores` suppresses and releases them. A page that
    publishes totals over providers takes them from ``analysis.measures.privacy.safe_totals``
    on this table, with the ``parents`` it passes to :func:`provider_scores`.

    Parameters
    ----------
    internal_service : DataFrame
        The contract's ``internal_service`` table as the loader types it.
    min_group_size : int
        The run's threshold: the pooled variance uses provider-waves of at least this many.
    confidence : float
        Level of every interval.
    nps_method : {"adjusted_wald", "wald"}
        Interval of internal NPS.

    Returns
    -------
    DataFrame
        The columns of ``SCORE_COLUMNS`` but ``suppressed`` and ``suppression``, plus the
        exact ``within_ss`` (sum of squared deviations of the rater scores) and the
        ``promoters``, ``passives`` and ``detractors`` counts; ``attrs`` holds
        ``pooled_within_variance`` and ``pooled_degrees``. The formulas are those of
        :func:`provider_scores`.
    """
    _validate_min_group_size(min_group_size)
    rated = rater_scores(internal_service)
    rated["deviation2"] = (
        rated["score"] - rated.groupby(KEYS, sort=False)["score"].transform("mean")
    ) ** 2
    category = nps_category(rated["internal_nps"].to_numpy())
    rated["promoter"] = (category == 0).astype("int64")
    rated["passive"] = (category == 1).astype("int64")
    rated["detractor"] = (category == 2).astype("int64")
    grouped = rated.groupby(KEYS, sort=True)
    table = grouped.agg(
        n_raters=(RESPONDENT, "nunique"),
        service_index=("score", "mean"),
        within_ss=("deviation2", "sum"),
        promoters=("promoter", "sum"),
        passives=("passive", "sum"),
        detractors=("detractor", "sum"),
    ).reset_index()
    item_means = grouped[list(POINTS_OF_CONNECTION)].mean().to_numpy()
    item_counts = grouped[list(POINTS_OF_CONNECTION)].count().to_numpy()
    n = table["n_raters"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        own_variance = np.where(n > 1, table["within_ss"] / (n - 1), np.nan)
    table["conf_low"], table["conf_high"] = _t_interval(
        table["service_index"], own_variance, n, confidence
    )
    large = n >= min_group_size
    degrees = float((n[large] - 1).sum())
    pooled = float(table.loc[large, "within_ss"].sum() / degrees) if degrees > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        table["service_index_noise_var"] = np.where(n > 0, pooled / n, np.nan)
    for position, item in enumerate(POINTS_OF_CONNECTION):
        table[f"{item}_index"] = item_means[:, position]
        table[f"{item}_n"] = item_counts[:, position].astype("int64")
    nps_rows = [
        nps_from_counts(int(p), int(a), int(d), method=nps_method, confidence=confidence)
        for p, a, d in table[["promoters", "passives", "detractors"]].itertuples(index=False)
    ]
    nps_frame = pd.DataFrame(
        nps_rows, columns=["nps", "conf_low", "conf_high", "n"], index=table.index
    )
    table["internal_nps"] = nps_frame["nps"].astype("float64")
    table["internal_nps_conf_low"] = nps_frame["conf_low"].astype("float64")
    table["internal_nps_conf_high"] = nps_frame["conf_high"].astype("float64")
    table["internal_nps_n"] = nps_frame["n"].astype("int64")
    table.attrs["pooled_within_variance"] = pooled
    table.attrs["pooled_degrees"] = degrees
    return table


def _released_scores(
    shown: pd.DataFrame,
    exact: pd.DataFrame,
    pooled: float,
    degrees: float,
    release: Release,
    confidence: float,
    nps_method: str,
) -> pd.DataFrame:
    """The suppressed scorecards with every shown figure released (see ``provider_scores``)."""
    result = shown.copy()
    providers = result[PROVIDER].astype("string").to_numpy(dtype=object, na_value="\0missing")
    waves = pd.to_datetime(result[WAVE]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)

    def names(column: str) -> list[tuple]:
        return [("internal_service", column, p, w) for p, w in zip(providers, waves, strict=True)]

    pool = released_pooled_variance(
        pooled, degrees, ("internal_service", "service_pooled_within_variance"), release
    )
    n = result["n_raters"].to_numpy(dtype="float64")
    index, noise = laplace_mechanism(
        result["service_index"].to_numpy(dtype="float64"),
        mean_sensitivity(100.0, n),
        names("service_index"),
        release,
    )
    # a released index may fall outside 0–100 (left unbiased): widen first, then clip
    low, high = _t_interval(index, np.full(len(n), pool), n, confidence, clip=False)
    low, high = widened_interval(index, low, high, noise, confidence)
    result["service_index"] = index
    result["conf_low"] = np.clip(low, 0.0, 100.0)
    result["conf_high"] = np.clip(high, 0.0, 100.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        result["service_index_noise_var"] = np.where(np.isfinite(index), pool / n + noise, np.nan)
    for item in POINTS_OF_CONNECTION:
        column = f"{item}_index"
        result[column], _ = laplace_mechanism(
            result[column].to_numpy(dtype="float64"),
            mean_sensitivity(100.0, result[f"{item}_n"].to_numpy(dtype="float64")),
            names(column),
            release,
        )
    answers = result["internal_nps_n"].to_numpy(dtype="float64")
    shown_nps = result["internal_nps"].notna().to_numpy()
    score, score_noise = laplace_mechanism(
        result["internal_nps"].to_numpy(dtype="float64"),
        mean_sensitivity(200.0, answers),
        names("internal_nps"),
        release,
    )
    exact_share = (exact["promoters"] + exact["detractors"]) / exact["internal_nps_n"].where(
        exact["internal_nps_n"] > 0
    )
    share, _ = laplace_mechanism(
        np.where(shown_nps, exact_share.to_numpy(dtype="float64"), np.nan),
        mean_sensitivity(1.0, answers),
        names("internal_nps_non_passive"),
        release,
    )
    low = np.full(len(result), np.nan)
    high = np.full(len(result), np.nan)
    for i in np.flatnonzero(np.isfinite(score) & np.isfinite(share)):
        # promoter and detractor shares from the released net score and non-passive share
        net = min(max(score[i] / 100, -1.0), 1.0)
        non_passive = min(max(share[i], abs(net)), 1.0)
        p, d = (non_passive + net) / 2, (non_passive - net) / 2
        interval = nps_from_counts(
            p * answers[i],
            (1 - p - d) * answers[i],
            d * answers[i],
            method=nps_method,
            confidence=confidence,
        )
        lo, hi = widened_interval(
            score[i], interval["conf_low"], interval["conf_high"], score_noise[i], confidence
        )
        low[i], high[i] = max(float(lo), -100.0), min(float(hi), 100.0)
    result["internal_nps"] = score
    result["internal_nps_conf_low"] = low
    result["internal_nps_conf_high"] = high
    return result


# --------------------------------------------------------------------------------------------
# Ranking and trend, from the shown scorecards only


def _shown(scores: pd.DataFrame) -> pd.DataFrame:
    """Rows whose service index is shown, with a usable variance."""
    required = {PROVIDER, WAVE, "n_raters", "service_index", "service_index_noise_var"}
    missing = required - set(scores.columns)
    if missing:
        raise ValueError(
            f"scores lacks columns: {', '.join(sorted(missing))}; pass provider_scores' table"
        )
    keep = scores["service_index"].notna() & (scores["service_index_noise_var"] > 0)
    if SUPPRESSED in scores.columns:
        keep &= ~scores[SUPPRESSED].fillna(True).astype(bool)
    return scores[keep]


def provider_ranking(scores: pd.DataFrame, confidence: float = 0.95, wave=None) -> pd.DataFrame:
    """One wave's shown providers ranked on their empirical-Bayes shrunken service index.

    Parameters
    ----------
    scores : DataFrame
        :func:`provider_scores`' table (released, for a report).
    confidence : float
        Level of the posterior interval.
    wave : wave value, optional
        The wave to rank; by default the latest wave in ``scores``.

    Returns
    -------
    DataFrame
        ``RANKING_COLUMNS``, one row per provider shown in that wave, best first (rank 1 =
        highest shrunken index; ties share the best rank, then by provider): ``service_index``
        and ``service_index_noise_var`` as shown, ``shrinkage`` (``B``), ``shrunken``,
        ``posterior_sd`` and its interval clipped to 0–100. Suppressed providers are never
        listed; empty when no provider is shown.

    Notes
    -----
    With ``x_P`` the shown index and ``v_P`` its ``service_index_noise_var`` (sampling plus
    release noise), the kit's one empirical-Bayes estimator
    (``analysis.measures.shrinkage.empirical_bayes``, intercept only)::

        τ²  = max(0, Σ (x_P − x̄)² / (K − 1) − mean(v_P))
        B_P = v_P / (v_P + τ²),   θ̂_P = μ + (1 − B_P)(x_P − μ),   μ = Σ W x / Σ W, W = 1/(v + τ²)
        sd  = √((1 − B_P) v_P + B_P² / Σ W)

    (Morris, 1983; Efron & Morris, 1975). Only shown providers enter ``τ²`` and ``μ``, so the
    ranking is post-processing of published figures: a hidden provider moves nothing here.

    References
    ----------
    Efron, B. & Morris, C. (1975). Data analysis using Stein's estimator and its
    generalizations. *JASA* 70(350), 311–319.
    Morris, C. N. (1983). Parametric empirical Bayes inference: theory and applications.
    *JASA* 78(381), 47–55.
    """
    shown = _shown(scores)
    if wave is None:
        wave = scores[WAVE].max() if len(scores) else None
    rows = shown[shown[WAVE] == wave].sort_values(PROVIDER).reset_index(drop=True)
    if rows.empty:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    fit = empirical_bayes(
        rows["service_index"].astype("float64"),
        rows["service_index_noise_var"].astype("float64"),
        confidence=confidence,
    )
    table = rows[[PROVIDER, WAVE, "n_raters", "service_index", "service_index_noise_var"]].copy()
    for column in ("shrinkage", "shrunken", "posterior_sd"):
        table[column] = fit[column].to_numpy()
    table["conf_low"] = fit["conf_low"].clip(lower=0.0).to_numpy()
    table["conf_high"] = fit["conf_high"].clip(upper=100.0).to_numpy()
    table["rank"] = fit["rank"].astype("int64").to_numpy()
    return table.sort_values(["rank", PROVIDER], kind="stable").reset_index(drop=True)[
        list(RANKING_COLUMNS)
    ]


def provider_trend(scores: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Each shown provider's change in service index from its first to its last shown wave.

    Parameters
    ----------
    scores : DataFrame
        :func:`provider_scores`' table (released, for a report).
    confidence : float
        Level of the interval.

    Returns
    -------
    DataFrame
        ``TREND_COLUMNS``, one row per provider with at least one shown wave, sorted by
        provider: ``first_wave``, ``last_wave``, ``n_waves`` (shown waves), the raters and the
        index in each end wave, ``change = last − first`` with ``std_error``, interval and
        two-sided ``p_value``; the change and its statistics are missing with one shown wave.
        A provider never shown is not listed.

    Notes
    -----
    ``change = x_last − x_first`` and ``se = √(v_first + v_last)`` from each wave's
    ``service_index_noise_var`` (sampling plus release noise); ``z = change / se``, interval
    ``change ± z_{(1+c)/2} se``. The two waves' raters are treated as independent samples. When
    the same people rate the provider in both waves their leniency is shared and the true
    variance of the change is smaller, so the interval is conservative then.
    ``analysis.measures.comparisons.paired_change`` does not apply: it pairs units across
    waves, whereas here one provider is compared with itself through different raters.
    Computed from shown rows only.

    References
    ----------
    Student (1908). The probable error of a mean. *Biometrika* 6(1), 1–25.
    """
    shown = _shown(scores).sort_values([PROVIDER, WAVE])
    if shown.empty:
        return pd.DataFrame(columns=list(TREND_COLUMNS))
    grouped = shown.groupby(PROVIDER, sort=True)
    first, last = grouped.head(1).set_index(PROVIDER), grouped.tail(1).set_index(PROVIDER)
    waves = grouped.size()
    table = pd.DataFrame(
        {
            "first_wave": first[WAVE],
            "last_wave": last[WAVE],
            "n_waves": waves.astype("int64"),
            "n_raters_first": first["n_raters"].astype("int64"),
            "n_raters_last": last["n_raters"].astype("int64"),
            "first": first["service_index"].astype("float64"),
            "last": last["service_index"].astype("float64"),
        }
    )
    several = table["n_waves"] > 1
    change = (table["last"] - table["first"]).where(several)
    std_error = np.sqrt(
        first["service_index_noise_var"].astype("float64")
        + last["service_index_noise_var"].astype("float64")
    ).where(several)
    z = stats.norm.ppf(0.5 + confidence / 2)
    table["change"] = change
    table["std_error"] = std_error
    table["conf_low"] = change - z * std_error
    table["conf_high"] = change + z * std_error
    table["p_value"] = 2 * stats.norm.sf(np.abs(change / std_error))
    return table.rename_axis(PROVIDER).reset_index()[list(TREND_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Internal service received, leaving out the receiving unit's own raters


def service_received(internal_service: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """The internal service each unit receives per wave, from other units' raters only.

    Parameters
    ----------
    internal_service : DataFrame
        The contract's ``internal_service`` table as the loader types it.
    min_group_size : int
        The run's threshold; it sets ``suppressed`` only (the values are model inputs).

    Returns
    -------
    DataFrame
        ``RECEIVED_COLUMNS``, one row per receiving unit × wave in which the unit's staff rated
        at least one provider, sorted by unit then wave:

        * ``unit_id`` (the receiving unit: the raters' ``rater_unit_id``), ``wave``;
        * ``service_received`` (0–100) and ``received_noise_var``, its sampling variance;
        * ``n_providers`` (providers entering), ``n_providers_unmeasured`` (providers rated by
          the unit's staff only, so with nothing left after leaving them out);
        * ``n_raters_own`` (distinct staff of the unit behind the weights), ``n_raters_other``
          (distinct raters from other units behind the leave-out means);
        * ``suppressed``, ``suppression``: whether the row may be displayed (Notes).

    Notes
    -----
    For wave ``t``, receiving unit ``X`` and provider ``P`` with rater scores ``y_i`` (as in
    :func:`provider_scores`), ``n_P`` raters summing to ``S_P``, of whom ``n_XP`` from ``X``
    summing to ``S_XP``::

        m_XP = n_P − n_XP,   L_XP = (S_P − S_XP) / m_XP        P's index without X's raters
        a_XP = n_XP / Σ_Q n_XQ                                 over providers with m_XQ > 0
        service_received_X = Σ_P a_XP L_XP
        received_noise_var_X = s² Σ_P a_XP² / m_XP,   s² = Σ_{P,t} Σ_i (y_i − ȳ_P)² / Σ (n_P − 1)

    (contract, "How the tables link"). The leave-out keeps the same people from rating both
    their service and, in the engagement survey, their engagement, so that a rater's general
    mood cannot make a correlation between the two. Computed from sums and counts per provider
    and per (rater unit, provider): the total minus the unit's own part, no loop over units.

    *Noise variance.* Given the providers' true means ``θ_P`` (means over raters outside
    ``X``) and the weights (the unit's own counts, held fixed), ``L_XP − θ_P`` is a mean of
    ``m_XP`` independent errors of variance ``σ²``, independent across providers, so
    ``var(service_received_X) = σ² Σ a² / m``; ``σ²`` is estimated by the within-provider-wave
    variance pooled over every provider-wave of two or more raters. This is the error variance
    to remove when the received index is a regressor (regression calibration, Carroll et al.,
    2006, ch. 4; ``analysis.measures.shrinkage.calibration_signal``). Assumptions: raters of a
    provider-wave are exchangeable and independent (no clustering of raters by their unit); one
    person rating two of ``X``'s providers has independent errors on each; the within variance
    is the same for every provider. The variance is that of the received index about the
    providers' means among the *other* raters; the target is the service a unit gets as the
    rest of the organisation sees it.

    *A provider rated only by the receiving unit's own staff* leaves nothing after the
    leave-out (``m_XP = 0``). It does not enter ``X``'s received service: its weight is dropped
    and the other providers' weights renormalised; it is counted in
    ``n_providers_unmeasured``. When every provider of ``X`` is like that, ``service_received``
    and its variance are missing and ``n_providers`` is 0: the unit received service, but no
    one else's ratings measure it, and a regression must drop the row rather than fall back on
    the unit's own ratings (which the leave-out forbids) or an organisation mean (a value
    nobody measured).

    *Privacy.* This table is a **model input**, like the unsuppressed unit × wave panel
    (README, "Privacy": models use every response), and must not be displayed as it is. With
    the provider scorecards published, ``S_P`` is known, and one received row of a unit that
    rated a single provider gives ``S_XP = S_P − m_XP L_XP``: the unit's own raters' scores,
    however few; and ``L_XP`` is itself a mean of possibly fewer than ``min_group_size`` other
    raters (or of a provider hidden in its scorecard). ``suppressed`` marks the rows that may
    not be displayed under a conservative rule: a row is shown only when every provider it
    uses has, in that wave, at least ``min_group_size`` raters from **each** rater unit. Then
    even an attacker who learns every (rater unit, provider) sum ``S_XP`` exactly from the
    shown rows, more than they reveal, learns sums over groups of at least ``min_group_size``
    people only, and the hidden scorecards (fewer than ``min_group_size`` raters in all) never
    enter a shown row. Rows with no provider entering are suppressed too. A display must still
    release the shown values with Laplace noise: one rating of ``P`` by another unit moves
    ``service_received_X`` by at most ``max_P a_XP · 100 / m_XP``. ``received_noise_var``
    pools over every provider-wave, small ones included, and is for the model only (a
    displayed variance would pool over shown provider-waves, as ``provider_scores`` does).

    References
    ----------
    Carroll, R. J., Ruppert, D., Stefanski, L. A. & Crainiceanu, C. M. (2006). *Measurement
    Error in Nonlinear Models*, 2nd ed. Chapman & Hall/CRC.
    Heskett, J. L., Jones, T. O., Loveman, G. W., Sasser, W. E., & Schlesinger, L. A. (1994).
    Putting the service-profit chain to work. *Harvard Business Review* 72(2), 164–174.
    """
    _validate_min_group_size(min_group_size)
    rated = rater_scores(internal_service)
    if rated.empty:
        return pd.DataFrame(columns=list(RECEIVED_COLUMNS))
    rated["deviation2"] = (
        rated["score"] - rated.groupby(KEYS, sort=False)["score"].transform("mean")
    ) ** 2
    providers = rated.groupby(KEYS, sort=False).agg(
        n_p=("score", "size"), s_p=("score", "sum"), ss=("deviation2", "sum")
    )
    degrees = float((providers["n_p"] - 1).sum())
    pooled = float(providers["ss"].sum() / degrees) if degrees > 0 else np.nan
    cells = (
        rated.groupby([RATER, *KEYS], sort=True)
        .agg(n_xp=("score", "size"), s_xp=("score", "sum"))
        .reset_index()
        .join(providers[["n_p", "s_p"]], on=KEYS)
    )
    cells["m"] = cells["n_p"] - cells["n_xp"]
    entering = cells["m"] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cells["leave_out"] = np.where(
            entering, (cells["s_p"] - cells["s_xp"]) / cells["m"].where(entering), np.nan
        )
    smallest_cell = cells.groupby(KEYS, sort=False)["n_xp"].transform("min")
    cells["splittable"] = smallest_cell >= min_group_size
    weight = cells["n_xp"].where(entering, 0).astype("float64")
    receiver = [RATER, WAVE]
    total_weight = weight.groupby([cells[RATER], cells[WAVE]]).transform("sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(total_weight > 0, weight / total_weight, np.nan)
    cells["weighted"] = np.where(entering, a * cells["leave_out"], 0.0)
    cells["spread"] = np.where(entering, a**2 / cells["m"].where(entering), 0.0)
    cells["entering"] = entering
    cells["unmeasured"] = ~entering
    cells["unsafe"] = entering & ~cells["splittable"]
    table = cells.groupby(receiver, sort=True).agg(
        weighted=("weighted", "sum"),
        spread=("spread", "sum"),
        n_providers=("entering", "sum"),
        n_providers_unmeasured=("unmeasured", "sum"),
        unsafe=("unsafe", "any"),
    )
    measured = table["n_providers"] > 0
    table["service_received"] = table["weighted"].where(measured)
    table["received_noise_var"] = (pooled * table["spread"]).where(measured)

    # distinct people: own staff rating an entering provider; others rating those providers
    keys = cells.loc[entering, [RATER, *KEYS]]
    own = rated.merge(keys, on=[RATER, *KEYS], how="inner")
    table["n_raters_own"] = own.groupby(receiver)[RESPONDENT].nunique()
    pairs = keys.rename(columns={RATER: "unit_id"}).merge(
        rated[[PROVIDER, WAVE, RATER, RESPONDENT]], on=KEYS, how="inner"
    )
    pairs = pairs[pairs[RATER] != pairs["unit_id"]]
    other = pairs.drop_duplicates(["unit_id", WAVE, RESPONDENT]).groupby(["unit_id", WAVE]).size()
    other.index = other.index.set_names(receiver)
    table["n_raters_other"] = other
    for column in ("n_providers", "n_providers_unmeasured", "n_raters_own", "n_raters_other"):
        table[column] = table[column].fillna(0).astype("int64")

    reason = np.where(
        ~measured,
        "no provider measured without the unit's own raters",
        np.where(table["unsafe"], SPLIT_REASON.format(min_group_size), ""),
    )
    small = measured & (table["n_raters_other"] < min_group_size)
    reason = np.where(small, small_group_reason(min_group_size, "raters"), reason)
    table[SUPPRESSED] = reason != ""
    table[SUPPRESSION] = pd.Series(reason, index=table.index, dtype="str")
    table = table.reset_index().rename(columns={RATER: "unit_id"})
    return table[list(RECEIVED_COLUMNS)]
