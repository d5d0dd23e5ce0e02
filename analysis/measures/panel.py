"""The unit × wave panel: employee answers and customer answers brought to one grain.

Definitions follow the data contract (``data/README.md``):

* **Engagement index.** Each respondent's mean over the engagement items they answered
  (reverse-coded items flipped), rescaled to 0–100 as ``(mean − min) / (max − min) × 100``;
  a unit's index for a wave is the mean over its respondents.
* **Outcome window** of wave *t*: customer answers with ``responded_on`` in
  ``(wave t, wave t + outcome_window_days]``. The **window before** wave *t* is
  ``(wave t − outcome_window_days, wave t]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from analysis.data.contract import nps_category
from analysis.data.load import Dataset
from analysis.data.parameters import resolve_as_of
from analysis.measures import reduction
from analysis.measures.reduction import BRAND_PROMISE_SUMS, DEFAULT_OUTCOME_WINDOW_DAYS
from analysis.measures.scales import respondent_scale_score

#: Random splits of the staff into two halves. Estimands built on halves average over all of
#: them: one split is one draw, and its spread over draws (about 0.37 SE on the sample) would
#: make the estimate depend on how respondent ids happen to be spelled (a pseudonymisation key).
#: Averaged over 256 splits into equal halves, it is about 0.02 SE.
SPLITS = 256
#: Unit-waves × splits kept at most: a study of more than 3,906 unit-waves gets fewer splits
#: (never under ``MIN_SPLITS``), so the halves' columns and the reverse model's stacked rows
#: (two per unit-wave and split) stay within a few hundred megabytes. The sample (2,383
#: unit-waves) keeps all 256 splits; a study of 2,000 units and 8 waves gets 62, and its estimate
#: took 35 s (13 s with one split): a faster reverse model is issue 14's work.
SPLIT_BUDGET = 1_000_000
MIN_SPLITS = 8


def splits_for(n_unit_waves: int) -> int:
    """How many splits a panel of ``n_unit_waves`` rows gets (``SPLITS`` within the budget)."""
    return int(min(SPLITS, max(MIN_SPLITS, SPLIT_BUDGET // max(n_unit_waves, 1))))


def splits_in(panel: pd.DataFrame) -> int:
    """The number of splits whose half columns ``panel`` holds (``half_columns``)."""
    split = 0
    while half_columns(split)["n_half_a"] in panel.columns:
        split += 1
    return split


def split_halves(unit_id: pd.Series, respondent_id: pd.Series, splits: int = SPLITS) -> np.ndarray:
    """Random halves (0 or 1) of each unit's staff, one column per split: fixed across waves.

    Returns an ``(n, splits)`` array of ``int8`` aligned with the answers. In split ``s`` each
    unit's people (distinct respondent ids, over all waves) are put in a random order and dealt
    alternately to the two halves: a random partition into halves as equal as the unit allows,
    the same in every wave and every run. The order is a keyed 64-bit hash of the id
    (``pandas.util.hash_array``) passed, with ``s``, through the splitmix64 mixer (Steele, Lea
    & Flood, 2014), whose outputs for different ``s`` behave as independent random numbers.

    Halves made of different people measure a unit with independent errors, even though each
    person's answers are alike from wave to wave; their covariance is the true-score variance
    (split-half reliability; Spearman, 1910; Brown, 1910). Averaging a split-half statistic
    over many random splits removes the luck of one split, as Cronbach's (1951) alpha is the
    mean over all splits; equal halves keep small units in every split.
    """
    pairs = pd.DataFrame(
        {"unit": unit_id.to_numpy(), "person": respondent_id.astype(str).to_numpy()}
    )
    person_of_answer = pairs.groupby(["unit", "person"], sort=False).ngroup().to_numpy()
    people = pairs.drop_duplicates(ignore_index=True)
    unit_code = pd.factorize(people["unit"])[0]
    hashed = pd.util.hash_array(people["person"].to_numpy(dtype=object), categorize=False)
    halves = np.empty((len(people), splits), dtype=np.int8)
    for split in range(splits):
        order = np.lexsort((_splitmix64(hashed + np.uint64(split)), unit_code))
        first = np.searchsorted(unit_code[order], unit_code[order], side="left")
        halves[order, split] = (np.arange(len(order)) - first) & 1
    return halves[person_of_answer]


def _splitmix64(state: np.ndarray) -> np.ndarray:
    """The splitmix64 output function of ``state + golden gamma`` (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        x = state + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def half_columns(split: int) -> dict[str, str]:
    """The panel's column names of split ``split``'s halves, by role.

    Keys ``engagement_half_a``, ``engagement_half_b`` (each half's engagement index) and
    ``n_half_a``, ``n_half_b`` (its respondents); values the split's own column names.
    """
    return {
        role: f"{role}_{split}"
        for role in ("engagement_half_a", "engagement_half_b", "n_half_a", "n_half_b")
    }


def unit_wave_scales(dataset: Dataset, noise_scales: Sequence[str] = ()) -> pd.DataFrame:
    """Every scale's unit index per wave, with the engagement index's sampling variance.

    Columns: ``unit_id, wave, n_respondents, engagement_index, engagement_noise_var``, for each
    of the fixed splits of the staff (``splits_for``) the index and size of each half
    (``half_columns``, ``split_halves``), and one ``<scale>_index`` per other instrument scale.
    ``n_respondents`` counts respondents with an engagement score. ``engagement_noise_var`` is
    the sampling variance of the unit-wave mean, ``s²_w / n``, with ``s²_w`` the
    within-unit-wave variance pooled over all unit-waves (pooled because a unit of three has no
    stable variance of its own). Small groups are kept: this is a model input; anything
    displayed passes through ``analysis.measures.privacy`` first.

    Each scale named in ``noise_scales`` (other than engagement) also gets
    ``<scale>_noise_var`` and ``<scale>_within_ss``, defined as engagement's on that scale's
    own respondents (``scale_noise``); the panel asks for ``brand_alignment``'s when customers
    answered ``brand_promise`` (contract v2), and for nothing otherwise.
    """
    survey = dataset.employee_survey
    scores = {
        "unit_id": survey["unit_id"],
        "wave": survey["wave"],
    }
    for scale in dataset.instrument.scales:
        scores[scale.name] = respondent_scale_score(survey, scale)
    scored = pd.DataFrame(scores)
    keys = ["unit_id", "wave"]
    answered = scored.dropna(subset=["engagement"])
    engagement = answered.groupby(keys, sort=True)["engagement"]
    table = engagement.agg(n_respondents="size", engagement_index="mean").reset_index()
    residual = answered["engagement"] - engagement.transform("mean")
    pooled_var = float((residual**2).sum() / max(len(residual) - len(table), 1))
    table["engagement_noise_var"] = pooled_var / table["n_respondents"]
    # each cell's own sum of squares, so a published variance can be pooled over shown cells
    table["engagement_within_ss"] = (
        (residual**2).groupby([answered[k] for k in keys], sort=True).sum().to_numpy()
    )
    table = table.merge(_halves(answered, survey["respondent_id"], keys), on=keys, how="left")
    others = [s.name for s in dataset.instrument.scales if s.name != "engagement"]
    if others:
        grouped = scored.groupby(keys, sort=True)[others]
        means = grouped.mean().add_suffix("_index")
        # each scale's own respondents: a one-item scale may rest on fewer people than engagement
        counts = grouped.count().add_suffix("_respondents")
        table = table.merge(pd.concat([means, counts], axis=1).reset_index(), on=keys, how="left")
    for name in noise_scales:
        if name in others:
            table = table.merge(scale_noise(scored, name, keys), on=keys, how="left")
    return table.copy()  # one block per dtype: the panel adds columns one at a time


def scale_noise(scored: pd.DataFrame, name: str, keys: list[str]) -> pd.DataFrame:
    """A scale's sampling variance per unit-wave: ``<name>_noise_var`` and ``<name>_within_ss``.

    As for engagement (``unit_wave_scales``): ``<name>_within_ss`` is the cell's own sum of
    squared deviations of its respondents' 0–100 scores from their mean, and
    ``<name>_noise_var = s²_w / n`` with ``s²_w = Σ SS / Σ (n − 1)`` pooled over every
    unit-wave (a unit of three has no stable variance of its own) and ``n`` the scale's own
    respondents. The variance of a unit mean of ``n`` independent answers (Kish, 1965,
    *Survey Sampling*, 2.2), the staff side's noise in regression calibration.
    """
    answered = scored.dropna(subset=[name])
    grouped = answered.groupby(keys, sort=True)[name]
    table = grouped.size().rename("n").reset_index()
    residual = answered[name] - grouped.transform("mean")
    pooled = float((residual**2).sum() / max(len(residual) - len(table), 1))
    table[f"{name}_noise_var"] = pooled / table["n"]
    table[f"{name}_within_ss"] = (
        (residual**2).groupby([answered[k] for k in keys], sort=True).sum().to_numpy()
    )
    return table.drop(columns="n")


def keep_splits(panel: pd.DataFrame, splits: int) -> pd.DataFrame:
    """``panel`` with the half columns of its first ``splits`` splits only (``half_columns``)."""
    extra = [c for s in range(splits, splits_in(panel)) for c in half_columns(s).values()]
    return panel.drop(columns=extra)


def _halves(answered: pd.DataFrame, respondent_id: pd.Series, keys: list[str]) -> pd.DataFrame:
    """Each split's half indices and sizes per unit-wave, from one pass of sums."""
    grouped = answered.groupby(keys, sort=True)
    splits = splits_for(grouped.ngroups)
    half = split_halves(answered["unit_id"], respondent_id.loc[answered.index], splits)
    half = half.astype(float)
    cell = grouped.ngroup().to_numpy()
    score = answered["engagement"].to_numpy(float)
    total = np.bincount(cell, score, grouped.ngroups)[:, None]
    size = np.bincount(cell, minlength=grouped.ngroups).astype(float)[:, None]
    # half B's sizes and sums per cell as products with the cell-membership matrix; half A is
    # the rest of the cell
    member = sparse.csr_matrix(
        (np.ones(len(cell)), (cell, np.arange(len(cell)))), shape=(grouped.ngroups, len(cell))
    )
    in_b, sum_b = member @ half, member @ (half * score[:, None])
    in_a, sum_a = size - in_b, total - sum_b
    columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for split in range(half.shape[1]):
            names = half_columns(split)
            for role, people, summed in (("a", in_a, sum_a), ("b", in_b, sum_b)):
                n = people[:, split]
                columns[names[f"engagement_half_{role}"]] = np.where(
                    n > 0, summed[:, split] / n, np.nan
                )
                columns[names[f"n_half_{role}"]] = np.rint(n).astype("int64")
    frame = grouped.size().reset_index()[keys]
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def nps_counts_in_windows(
    customer_nps: pd.DataFrame,
    waves: pd.Series | np.ndarray,
    window_days: int = DEFAULT_OUTCOME_WINDOW_DAYS,
    before: bool = False,
    as_of: pd.Timestamp | None = None,
    brand_promise: bool = False,
) -> pd.DataFrame:
    """Promoter, passive and detractor counts per unit in each wave's outcome window.

    With ``before=True`` the window before each wave is used instead; answers after ``as_of``
    (the end of observation) count in no window. Returns
    ``unit_id, wave, promoters, passives, detractors, n_responses``. Windows that overlap (a
    window longer than the gap between waves) count a response in each.

    With ``brand_promise=True`` (contract v2; only when ``customer_nps`` has the column) the
    customers' ``brand_promise`` answers (1–5) of the same windows are reduced alongside, to
    their sufficient statistics ``brand_promise_n`` (answers given), ``brand_promise_sum``
    and ``brand_promise_sumsq`` (sum of squares), all ``int64``: integer sums, so every engine
    gives exactly the same numbers (``analysis.measures.reduction.nps_counts_in_windows``).
    """
    window = np.timedelta64(int(window_days), "D")
    score = customer_nps["likelihood_to_recommend"].to_numpy()
    category = nps_category(score)
    # integer unit codes once: a string group-by per wave costs seconds at ten million answers
    codes, units = pd.factorize(customer_nps["unit_id"], sort=True)
    responded_on = customer_nps["responded_on"].to_numpy()
    wave_values = np.sort(pd.unique(pd.Series(waves)))
    columns = ["unit_id", "wave", "promoters", "passives", "detractors"]
    if len(wave_values) == 0:
        result = pd.DataFrame(columns=columns)
        result["n_responses"] = result[["promoters", "passives", "detractors"]].sum(axis=1)
        if brand_promise:
            for column in BRAND_PROMISE_SUMS:
                result[column] = pd.Series(dtype="int64")
        return result
    observed = np.ones(len(responded_on), dtype=bool)
    if as_of is not None:
        observed = responded_on <= np.datetime64(pd.Timestamp(as_of))
    # The waves whose window holds an answer are a run of consecutive waves, found by binary
    # search: after a wave, wave < answer ≤ wave + window; before it, wave − window < answer
    # ≤ wave. The work is the number of (answer, window) pairs, not answers × waves.
    if before:
        first = np.searchsorted(wave_values, responded_on, side="left")
        stop = np.searchsorted(wave_values, responded_on + window, side="left")
    else:
        first = np.searchsorted(wave_values, responded_on - window, side="left")
        stop = np.searchsorted(wave_values, responded_on, side="left")
    length = np.where(observed, np.maximum(stop - first, 0), 0)
    who = np.repeat(np.arange(len(responded_on)), length)
    k = np.repeat(first - np.cumsum(length) + length, length) + np.arange(len(who))
    n_units = len(units)
    cells, inverse = np.unique(k.astype(np.int64) * n_units + codes[who], return_inverse=True)
    inverse = inverse.ravel()
    counts = [
        np.bincount(inverse, category[who] == c, len(cells)).astype("int64") for c in (0, 1, 2)
    ]
    result = pd.DataFrame(
        {
            "unit_id": units.take(cells % max(n_units, 1)),
            "wave": wave_values[cells // max(n_units, 1)],
            "promoters": counts[0],
            "passives": counts[1],
            "detractors": counts[2],
        }
    )
    result["n_responses"] = result[["promoters", "passives", "detractors"]].sum(axis=1)
    if brand_promise:
        promise = customer_nps["brand_promise"].to_numpy(dtype="float64", na_value=np.nan)[who]
        given = ~np.isnan(promise)
        value = np.where(given, promise, 0.0)
        for column, weights in zip(
            BRAND_PROMISE_SUMS, (given.astype("float64"), value, value * value), strict=True
        ):
            # sums of whole numbers far below 2**53: exact in float64, hence exact as int64
            result[column] = np.bincount(inverse, weights, len(cells)).astype("int64")
    return result


def customers_at_waves(
    customers: pd.DataFrame, waves: pd.Series | np.ndarray, window_days: int, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Retention exposure per unit and wave.

    ``customers_at_risk``: customers of the unit on the wave date (joined on or before it, not
    churned by it). ``churned_in_window``: of those, how many churned in the outcome window.
    ``exposure_days``: their days as customers within the window, up to ``as_of``.
    """
    window = pd.Timedelta(days=window_days)
    since = customers["since"].to_numpy()
    churned = customers["churned_on"].fillna(pd.Timestamp.max.normalize()).to_numpy()
    codes, units = pd.factorize(customers["unit_id"], sort=True)
    wave_index = pd.DatetimeIndex(np.sort(pd.unique(pd.Series(waves))))
    wave_values = wave_index.to_numpy()
    ends = np.minimum(wave_values + window.to_timedelta64(), pd.Timestamp(as_of).to_datetime64())
    # A customer is at risk at the waves in [since, churned): a run of consecutive waves, found
    # by binary search, so the work is the (customer, wave) pairs at risk, not customers × waves.
    first = np.searchsorted(wave_values, since, side="left")
    length = np.maximum(np.searchsorted(wave_values, churned, side="left") - first, 0)
    who = np.repeat(np.arange(len(since)), length)
    k = np.repeat(first - np.cumsum(length) + length, length) + np.arange(len(who))
    churn_in = churned[who] <= ends[k]
    stop = np.minimum(churned[who], ends[k])
    days = np.clip((stop - wave_values[k]) / np.timedelta64(1, "D"), 0, None)
    n_units, n_waves = len(units), len(wave_values)
    cell = k.astype(np.int64) * n_units + codes[who]
    size = n_waves * n_units
    # every unit at every wave (zero where none is at risk), wave by wave
    return pd.DataFrame(
        {
            "unit_id": units.take(np.tile(np.arange(n_units), n_waves)),
            "customers_at_risk": np.bincount(cell, minlength=size).astype("int64"),
            "churned_in_window": np.bincount(cell, churn_in, size).astype("int64"),
            "exposure_days": np.bincount(cell, days, size).astype(float),
            "wave": np.repeat(wave_values, n_units),
        }
    )


def unit_wave_panel(
    dataset: Dataset,
    outcome_window_days: int = DEFAULT_OUTCOME_WINDOW_DAYS,
    as_of: pd.Timestamp | None = None,
    covariates: Sequence[str] = ("region",),
) -> pd.DataFrame:
    """The unit × wave panel as the data contract defines it, one row per surveyed unit-wave.

    Columns: ``unit_id, wave, wave_number`` (1 = first wave), ``region`` (when present),
    ``customer_facing``, any other ``units`` column named in ``covariates``; the scales of
    ``unit_wave_scales``; ``engagement_index_lag`` and
    ``engagement_noise_var_lag`` (the unit's previous wave); customer answers in the outcome
    window (``promoters, passives, detractors, n_responses, nps``) and in the window before
    (the same with a ``prior_`` prefix); and retention exposure from ``customers_at_waves``.
    Windows with no answers have zero counts and a missing NPS. Works from counts, so millions
    of customer answers are reduced once and never copied.

    **(v2)** When ``customer_nps`` has the ``brand_promise`` column, the outcome window's
    answers to it are reduced too (``brand_promise_columns``: ``brand_promise``,
    ``brand_promise_n``, ``brand_promise_noise_var``, ``brand_promise_within_ss``), and the
    staff's ``brand_alignment`` scale gets its sampling variance (``scale_noise``). Without the
    column the panel is exactly what it was.
    """
    as_of = pd.Timestamp(as_of) if as_of is not None else resolve_as_of(dataset)
    brand = holds_brand_promise(dataset)
    panel = unit_wave_scales(dataset, noise_scales=("brand_alignment",) if brand else ())
    panel = panel[panel["wave"] <= as_of].reset_index(drop=True)  # after the end: unobserved
    waves = np.sort(panel["wave"].unique())
    panel["wave_number"] = np.searchsorted(waves, panel["wave"].to_numpy()) + 1
    lagged = ["engagement_index", "engagement_noise_var", "n_respondents"]
    previous = panel[["unit_id", "wave_number", *lagged]]
    previous = previous.assign(wave_number=previous["wave_number"] + 1).rename(
        columns={c: f"{c}_lag" for c in lagged}
    )
    panel = panel.merge(previous, on=["unit_id", "wave_number"], how="left")
    keys = ["unit_id", "wave"]
    if dataset.customer_tables is not None:  # reduced where the rows are (open_dataset)
        answers = dataset.customer_tables.tables["customer_nps"]
        people = dataset.customer_tables.tables["customers"]
        in_windows, at_waves = reduction.nps_counts_in_windows, reduction.customers_at_waves
    else:
        answers, people = dataset.customer_nps, dataset.customers
        in_windows, at_waves = nps_counts_in_windows, customers_at_waves
    # (v2) customers' brand_promise, only when they were asked: otherwise nothing changes
    outcome = in_windows(answers, waves, outcome_window_days, as_of=as_of, brand_promise=brand)
    prior = in_windows(answers, waves, outcome_window_days, before=True, as_of=as_of)
    prior = prior.rename(columns={c: f"prior_{c}" for c in prior.columns if c not in keys})
    retention = at_waves(people, waves, outcome_window_days, as_of)
    for extra in (outcome, prior, retention):
        panel = panel.merge(extra, on=keys, how="left")
    counts = [
        c
        for c in panel.columns
        if c.endswith(("promoters", "passives", "detractors", "n_responses"))
    ]
    counts += ["customers_at_risk", "churned_in_window"]
    counts += list(BRAND_PROMISE_SUMS) if brand else []
    panel[counts] = panel[counts].fillna(0).astype("int64")
    panel["exposure_days"] = panel["exposure_days"].fillna(0.0)
    for prefix in ("", "prior_"):
        n = panel[f"{prefix}n_responses"]
        net = panel[f"{prefix}promoters"] - panel[f"{prefix}detractors"]
        panel[f"{prefix}nps"] = (100 * net / n.where(n > 0)).astype("float64")
    if brand:
        panel = brand_promise_columns(panel)
    wanted = ("unit_id", "region", "customer_facing", *covariates)
    unit_columns = list(dict.fromkeys(c for c in wanted if c in dataset.units.columns))
    return panel.merge(dataset.units[unit_columns], on="unit_id", how="left")


def holds_brand_promise(dataset: Dataset) -> bool:
    """Whether customers answered ``brand_promise`` (the column exists, in pandas or in the
    engine holding ``customer_nps``)."""
    if dataset.customer_nps is not None:
        return "brand_promise" in dataset.customer_nps.columns
    tables = getattr(dataset.customer_tables, "tables", {})
    return "customer_nps" in tables and "brand_promise" in tables["customer_nps"].columns


def brand_promise_columns(panel: pd.DataFrame) -> pd.DataFrame:
    """The customers' brand-promise index per unit-wave, from its sums in the outcome window.

    Replaces ``brand_promise_sum`` and ``brand_promise_sumsq`` (``nps_counts_in_windows``)
    with:

    * ``brand_promise``: the contract's external brand index, the mean answer rescaled to
      0–100, ``25 (Σx / n − 1)``; missing where ``n = 0``;
    * ``brand_promise_within_ss``: the cell's sum of squared deviations on the 0–100 scale,
      ``625 (n Σx² − (Σx)²) / n`` (integers until the last division, so every engine gives the
      same bits);
    * ``brand_promise_noise_var``: the index's sampling variance ``s²_w / n``, ``s²_w =
      Σ SS / Σ (n − 1)`` pooled over the panel's unit-waves with answers, as for engagement
      (Kish, 1965, *Survey Sampling*, 2.2).

    ``brand_promise_n`` (answers to the question) stays. Each answer counts once per window it
    falls in, as for NPS.
    """
    n = panel["brand_promise_n"].to_numpy(dtype="int64")
    total = panel["brand_promise_sum"].to_numpy(dtype="int64")
    squares = panel["brand_promise_sumsq"].to_numpy(dtype="int64")
    answered = n > 0
    safe = np.where(answered, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(answered, 25.0 * (total / safe - 1.0), np.nan)
        within = np.where(answered, 625.0 * (n * squares - total * total) / safe, 0.0)
    degrees = int((n[answered] - 1).sum())
    pooled = float(within.sum() / degrees) if degrees > 0 else np.nan
    columns = {
        "brand_promise": index,
        "brand_promise_noise_var": np.where(answered, pooled / safe, np.nan),
        "brand_promise_within_ss": within,
    }
    kept = panel.drop(columns=["brand_promise_sum", "brand_promise_sumsq"])
    # one block per dtype again: later steps add columns one at a time
    return pd.concat([kept, pd.DataFrame(columns, index=panel.index)], axis=1).copy()
