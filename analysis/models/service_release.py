"""Internal service as released to readers: provider scorecards and who depends on whom.

Two result files, written by ``estimate`` only when the dataset holds an ``internal_service``
table (contract v2); on a version-1 dataset neither exists and nothing else changes:

* ``internal_service.csv`` (:func:`released_scorecards`): one row per provider × wave rated,
  the scorecard of ``analysis.measures.internal_service.provider_scores`` (service index 0–100
  with its interval and distinct raters, the six points of connection, internal NPS with its
  trinomial interval; small provider-waves suppressed, every shown figure released with
  Laplace noise), each point of connection's interval (``_item_intervals``), each shown
  provider's rank that wave on its empirical-Bayes shrunken
  index (``provider_ranking``) and its change since its previous shown wave.
* ``internal_service_network.csv`` (:func:`released_network`): one row per rater unit ×
  provider × wave in which **at least** ``min_group_size`` people of the rater unit rated the
  provider: the number of those raters and, where safe, their mean service score (released).

Privacy (README, "Privacy"; ``analysis.measures.privacy``)
----------------------------------------------------------
* A provider-wave rated by fewer than ``min_group_size`` distinct people shows nothing but its
  count in the scorecards, is never ranked, never enters a trend, and has no network row: a
  network row needs ``min_group_size`` raters from one unit, so the provider has at least as
  many in all.
* A rater unit's ratings of a provider appear as a network row only when at least
  ``min_group_size`` people of that unit rated it; smaller groups are not listed at all, so no
  small rater group is named, counted or valued.
* **By subtraction.** The scorecard of a provider-wave is the count-weighted mean of all its
  rater cells (rater unit × provider × wave), listed or not. Its published total minus the
  shown network rows would give away the remaining raters' mean. So the network's values pass
  complementary cell suppression (Cox, 1980) over every rater cell, small ones included, with
  the provider-wave as the published parent total: in each provider-wave the hidden cells are
  at least two and hold at least ``min_group_size`` people together, or more cells are hidden,
  and the linear-algebra audit of ``privacy.suppress`` rules out combinations. No other total
  over rater cells or providers is published (no organisation-wide or all-waves figure; the
  ranking and the change are post-processing of shown rows), so the provider-wave is the only
  parent. ``tests/test_privacy_adversarial.py`` attacks the files across waves, totals and the
  network.
* **Release noise.** Each shown network value is a mean of ``n`` ratings on 0–100, released
  with ``b = 100 / (n ε)`` (``laplace_mechanism``), its interval from the released pooled
  within-provider variance (the scorecards' own release, drawn under the same name, so no
  second budget is spent on it). One rating enters its provider-wave's scorecard figures (index,
  its points of connection, internal NPS and its share, each ε) and, when its unit's cell is
  listed, one network value (ε): basic composition, as in the README.
* Each point of connection's interval uses that item's within-provider-wave variance pooled
  over the provider-waves where it is shown, released once per item (``b = 100² / (df ε)``):
  six more figures, each over thousands of answers.
* Counts stay visible, as everywhere in the kit (they say who answered, not what). No
  ``respondent_id`` reaches either file.

Pure: tables in, tables out; ``analysis.models.estimate`` calls :func:`released_service`.

References
----------
Cox, L. H. (1980). Suppression methodology and statistical disclosure control. *JASA* 75(370),
377–385.
Dwork, C., McSherry, F., Nissim, K., & Smith, A. (2006). Calibrating noise to sensitivity in
private data analysis. *TCC 2006*, LNCS 3876, 265–284.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.data.contract import POINTS_OF_CONNECTION
from analysis.measures.internal_service import (
    SCORE_COLUMNS,
    provider_ranking,
    provider_scores,
    provider_statistics,
    rater_scores,
)
from analysis.measures.privacy import (
    SUPPRESSED,
    SUPPRESSION,
    Release,
    laplace_mechanism,
    mean_sensitivity,
    released_pooled_variance,
    suppress,
    widened_interval,
)

__all__ = [
    "NETWORK_COLUMNS",
    "SCORECARD_COLUMNS",
    "released_network",
    "released_scorecards",
    "released_service",
]

PROVIDER, RATER, WAVE = "provider_unit_id", "rater_unit_id", "wave"

#: The interval of each point of connection, beside ``provider_scores``' index and count.
ITEM_INTERVAL_COLUMNS = tuple(
    f"{item}_{end}" for item in POINTS_OF_CONNECTION for end in ("conf_low", "conf_high")
)
SCORECARD_COLUMNS = (
    *[c for c in SCORE_COLUMNS if c not in (SUPPRESSED, SUPPRESSION)],
    *ITEM_INTERVAL_COLUMNS,
    "rank",
    "n_ranked",
    "shrunken",
    "shrunken_conf_low",
    "shrunken_conf_high",
    "previous_wave",
    "change",
    "change_conf_low",
    "change_conf_high",
    "change_p_value",
    SUPPRESSED,
    SUPPRESSION,
)
NETWORK_COLUMNS = (
    RATER,
    PROVIDER,
    WAVE,
    "n_raters",
    "service_index",
    "conf_low",
    "conf_high",
    SUPPRESSED,
    SUPPRESSION,
)


def released_scorecards(
    internal_service: pd.DataFrame,
    min_group_size: int,
    release: Release | None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The released provider scorecards per wave, ranked, with their change (``SCORECARD_COLUMNS``).

    Parameters
    ----------
    internal_service : DataFrame
        The contract's ``internal_service`` table as the loader types it.
    min_group_size : int
    release : analysis.measures.privacy.Release or None
        The run's release (``release_for``): every shown figure is noised. ``None`` gives the
        exact suppressed figures, for tests and audits only; a report must pass one.
    confidence : float

    Returns
    -------
    DataFrame
        ``provider_scores``' columns (released, parents ``()``: no total over providers is
        published) plus, for each shown row, ``rank`` among the ``n_ranked`` providers shown
        that wave on the shrunken index with its posterior interval (``provider_ranking``),
        and ``change`` since the provider's ``previous_wave`` shown, with its interval and
        two-sided p-value (``z = change / √(v_prev + v_now)``, ``v`` the released
        ``service_index_noise_var``; raters treated as independent samples, conservative when
        the same people rate in both waves). Missing where hidden or not applicable.
    """
    scores = provider_scores(
        internal_service, min_group_size, confidence, release=release, parents=()
    )
    table = scores.copy()
    for column in SCORECARD_COLUMNS[len(SCORE_COLUMNS) - 2 : -2]:
        table[column] = np.nan
    _item_intervals(table, internal_service, min_group_size, release, confidence)
    table["previous_wave"] = pd.Series(pd.NaT, index=table.index, dtype=table[WAVE].dtype)
    for wave in sorted(table[WAVE].dropna().unique()):
        ranking = provider_ranking(scores, confidence, wave=wave)
        if ranking.empty:
            continue
        at = table.reset_index().merge(ranking[[PROVIDER, WAVE]], on=[PROVIDER, WAVE])["index"]
        ranked = ranking.set_index(PROVIDER).loc[table.loc[at, PROVIDER]]
        table.loc[at, "rank"] = ranked["rank"].to_numpy(dtype="float64")
        table.loc[at, "n_ranked"] = float(len(ranking))
        table.loc[at, "shrunken"] = ranked["shrunken"].to_numpy(dtype="float64")
        table.loc[at, "shrunken_conf_low"] = ranked["conf_low"].to_numpy(dtype="float64")
        table.loc[at, "shrunken_conf_high"] = ranked["conf_high"].to_numpy(dtype="float64")
    shown = (
        ~table[SUPPRESSED].astype(bool)
        & table["service_index"].notna()
        & (table["service_index_noise_var"] > 0)
    )
    z = stats.norm.ppf(0.5 + confidence / 2)
    for _, rows in table[shown].sort_values(WAVE).groupby(PROVIDER, sort=False):
        positions = rows.index.to_numpy()
        for before, now in zip(positions[:-1], positions[1:], strict=True):
            change = table.at[now, "service_index"] - table.at[before, "service_index"]
            se = np.sqrt(
                table.at[now, "service_index_noise_var"]
                + table.at[before, "service_index_noise_var"]
            )
            table.at[now, "previous_wave"] = table.at[before, WAVE]
            table.at[now, "change"] = change
            table.at[now, "change_conf_low"] = change - z * se
            table.at[now, "change_conf_high"] = change + z * se
            table.at[now, "change_p_value"] = 2 * stats.norm.sf(abs(change / se))
    for column in ("rank", "n_ranked"):
        table[column] = table[column].astype("Int64")
    return table[list(SCORECARD_COLUMNS)].reset_index(drop=True)


def _item_intervals(
    table: pd.DataFrame,
    internal_service: pd.DataFrame,
    min_group_size: int,
    release: Release | None,
    confidence: float,
) -> None:
    """Fill ``<item>_conf_low`` / ``_conf_high`` of each shown point of connection, in place.

    ``x̃ ± t_{n−1} √(s̃²_item / n)`` widened by the index's release noise ``2 b²``,
    ``b = 100 / (n ε)`` (``widened_interval``), clipped to 0–100, with ``n`` the item's own
    count and ``s̃²_item`` the item's within-provider-wave variance pooled over the
    provider-waves where the item has at least ``min_group_size`` answers (the shown ones), as
    ``provider_scores`` pools the index: released once per item with ``b = 100² / (df ε)``,
    ``df = Σ (n − 1)`` (a count), and floored at zero. Missing where the item is hidden.
    """
    rated = rater_scores(internal_service)
    keys = [PROVIDER, WAVE]
    for item in POINTS_OF_CONNECTION:
        answers = rated[[*keys, item]].dropna(subset=[item])
        deviation = answers[item] - answers.groupby(keys)[item].transform("mean")
        groups = (
            answers.assign(ss=deviation**2).groupby(keys).agg(n=(item, "size"), ss=("ss", "sum"))
        )
        large = groups["n"] >= min_group_size
        df = float((groups.loc[large, "n"] - 1).sum())
        pooled = float(groups.loc[large, "ss"].sum() / df) if df > 0 else np.nan
        pooled = released_pooled_variance(
            pooled, df, ("internal_service", f"{item}_pooled_within_variance"), release
        )
        index = table[f"{item}_index"].to_numpy(dtype="float64")
        n = table[f"{item}_n"].to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            t = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
            half = np.where(n > 1, t * np.sqrt(pooled / n), np.nan)
            noise = (
                2 * (100.0 / (n * release.epsilon)) ** 2
                if release is not None
                else np.zeros(len(n))
            )
        low, high = widened_interval(index, index - half, index + half, noise, confidence)
        shown = np.isfinite(index)
        table[f"{item}_conf_low"] = np.where(shown, np.clip(low, 0.0, 100.0), np.nan)
        table[f"{item}_conf_high"] = np.where(shown, np.clip(high, 0.0, 100.0), np.nan)


def rater_cells(internal_service: pd.DataFrame) -> pd.DataFrame:
    """Exact figures per rater unit × provider × wave: ``n_raters`` and ``service_index`` (the
    raters' mean). Never publish: :func:`released_network` suppresses and releases them."""
    rated = rater_scores(internal_service)
    cells = (
        rated.groupby([RATER, PROVIDER, WAVE], sort=True)
        .agg(n_raters=("respondent_id", "nunique"), service_index=("score", "mean"))
        .reset_index()
    )
    cells["n_raters"] = cells["n_raters"].astype("int64")
    return cells


def released_network(
    internal_service: pd.DataFrame,
    min_group_size: int,
    release: Release | None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Who depends on whom: rater unit → provider rows of ``min_group_size`` raters or more.

    Parameters
    ----------
    internal_service : DataFrame
    min_group_size : int
    release : Release or None
        As for :func:`released_scorecards` (``None``: exact values, for tests only).
    confidence : float

    Returns
    -------
    DataFrame
        ``NETWORK_COLUMNS``, one row per rater unit × provider × wave with at least
        ``min_group_size`` raters from the rater unit, sorted by wave, provider, rater unit:
        ``n_raters`` (always shown) and their mean service score (0–100, released) with its
        interval, unless hidden by complementary suppression (``suppression`` says why).

    Notes
    -----
    Suppression runs on **every** rater cell, small ones included (primary suppression), with
    the parent ``(provider_unit_id, wave)``, whose total is the published scorecard; the small
    cells are then dropped from the table. The interval is ``x̃ ± t_{n−1} √(s̃²_pool / n)``
    widened by the release noise (``widened_interval``), ``s̃²_pool`` the released pooled
    within-provider-wave variance of the scorecards (same figure name: the same draw).
    """
    cells = rater_cells(internal_service)
    hidden = suppress(
        cells,
        count="n_raters",
        values=["service_index"],
        min_group_size=min_group_size,
        parents=[(PROVIDER, WAVE)],
        members="raters",
    )
    listed = hidden[hidden["n_raters"] >= min_group_size].copy()
    exact = provider_statistics(internal_service, min_group_size, confidence)
    pooled, degrees = exact.attrs["pooled_within_variance"], exact.attrs["pooled_degrees"]
    n = listed["n_raters"].to_numpy(dtype="float64")
    index = listed["service_index"].to_numpy(dtype="float64")
    noise = np.zeros(len(listed))
    pool = released_pooled_variance(
        pooled, degrees, ("internal_service", "service_pooled_within_variance"), release
    )
    if release is not None:
        names = [
            ("internal_service_network", "service_index", r, p, w)
            for r, p, w in zip(
                listed[RATER].astype("string").to_numpy(dtype=object),
                listed[PROVIDER].astype("string").to_numpy(dtype=object),
                pd.to_datetime(listed[WAVE]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object),
                strict=True,
            )
        ]
        index, noise = laplace_mechanism(index, mean_sensitivity(100.0, n), names, release)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = stats.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = t * np.sqrt(pool / n)
    low, high = widened_interval(index, index - half, index + half, noise, confidence)
    listed["service_index"] = index
    listed["conf_low"] = np.clip(low, 0.0, 100.0)
    listed["conf_high"] = np.clip(high, 0.0, 100.0)
    listed.loc[listed[SUPPRESSED], ["conf_low", "conf_high"]] = np.nan
    listed = listed.sort_values([WAVE, PROVIDER, RATER], kind="stable")
    return listed[list(NETWORK_COLUMNS)].reset_index(drop=True)


def released_service(
    internal_service: pd.DataFrame | None,
    min_group_size: int,
    release: Release,
    confidence: float = 0.95,
) -> dict[str, pd.DataFrame]:
    """Both result files by name (``analysis.data.results.REQUIRED_BY_INPUT`` lists them);
    an empty dict without the table.

    A dataset whose ``internal_service`` table exists but has no rows gets both files with
    their headers and no rows, so that the report can say there is nothing to show.
    """
    if internal_service is None:
        return {}
    if internal_service.empty:
        return {
            "internal_service": pd.DataFrame(columns=list(SCORECARD_COLUMNS)),
            "internal_service_network": pd.DataFrame(columns=list(NETWORK_COLUMNS)),
        }
    return {
        "internal_service": released_scorecards(
            internal_service, min_group_size, release, confidence
        ),
        "internal_service_network": released_network(
            internal_service, min_group_size, release, confidence
        ),
    }
