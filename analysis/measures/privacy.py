"""Privacy of what the report shows: small-group suppression, then release noise.

**Suppression.** No displayed employee figure rests on fewer than ``min_group_size``.
Model inputs may use every response. Anything displayed (tables, figures, HTML) that is derived
from employee answers passes through :func:`suppress` first, and any total or average over a
coarser grouping is taken from :func:`safe_totals`. The guarantee: no published figure, alone or
combined with other published figures by subtraction, gives away a value for a set of fewer than
``min_group_size`` respondents.

The method is primary and complementary (secondary) cell suppression for tabular data (Cox,
1980; Hundepool et al., 2012, on secondary cell suppression):

1. **Primary.** A row with ``count < min_group_size`` shows none of its ``values``.
2. **Complementary.** ``parents`` lists every grouping whose totals or count-weighted means are
   published anywhere (``()`` is the grand total). A parent total minus its visible rows gives
   the sum over its hidden rows, so in every published parent group the hidden rows that hold
   respondents must be **at least two** and hold **at least** ``min_group_size`` respondents
   together. Where they do not, the visible row with the smallest count (the earliest in the
   table on a tie) is hidden too, until they do.
3. **Withheld totals.** A parent group with fewer than ``min_group_size`` respondents is never
   published. Nor is one whose rows are all hidden yet still fail that rule (a single row, say):
   hiding rows cannot protect it, so its own total is withheld. :func:`safe_totals` does this.
4. **Iteration.** Hiding a row for one grouping can break the rule in another, so steps 2–3
   repeat over all groupings, finest first, until nothing changes.
5. **Audit by linear algebra.** Per-group subtraction is not the only attack: totals of crossed
   or nested groupings can be combined (a wave total minus one region's total isolates the other
   region). Each published total is a linear equation in the hidden rows' sums
   (``mean × count``); an attacker learns exactly the combinations in the row space of those
   equations. The audit looks for the smallest set of hidden rows, together under
   ``min_group_size`` respondents, whose sum is so determined: by checking every such set
   against the null space of the equations when there are at most 2,000, otherwise by a
   mixed-integer program (HiGHS, through :func:`scipy.optimize.milp`). While one exists, the
   smallest-count visible row whose hiding breaks the determination is hidden; failing that,
   one of the totals involved is withheld; then 2–5 run again. Every step only adds
   suppression, so the loop ends.

The pattern depends on the counts and the group keys only, never on the values: it reveals
nothing about answers, the same table always gives the same pattern, and suppressing an already
suppressed table changes nothing. Counts stay visible: they say how many people answered, not
what anyone answered, and readers need them to judge precision. Limits: the audit assumes the
declared ``parents`` are the only totals published (declare every one, including those of other
tables over the same respondents); it rules out exact recovery, not bounds (a hidden group of
five whose published mean is the scale maximum still tells that all five answered the maximum,
exactly as a visible group of five would).

**Release noise** (:func:`laplace_mechanism`, the one function every employee-derived mean or
share passes through before it reaches a reader). Suppression is blind to a reader holding two
releases: a reviewer reruns the kit after one more respondent joined a unit of exactly
``min_group_size``, and ``n₂ m₂ − n₁ m₁`` on the two unit × wave tables is that person's score.
Rounding would leave the difference exact whenever the two means round apart; a
release-to-release guard would need the earlier releases, which the kit does not keep and a
reader may hold from anywhere. The defence is the Laplace mechanism of differential privacy
(Dwork, McSherry, Nissim & Smith, 2006): publish ``m + Lap(b)``, density ``e^{−|x|/b} / 2b``,
with ``b = Δ / ε``, ``Δ`` the figure's sensitivity and ``ε`` the parameter
``privacy_epsilon``.

*Neighbours and sensitivity.* Two datasets are neighbours when they differ in one survey
response (one person's answers in one wave) replaced by any other; the counts, published
exactly, are then equal. A mean of ``n`` answers in ``[low, high]`` changes by
``(x' − x)/n``, so ``Δ = R/n`` with ``R = high − low`` (100 for a 0–100 index, 200 for eNPS on
−100 … 100, ``high − low`` on a raw scale, 1 for a share). A sample variance moves by at most
``R²/n`` (see :func:`variance_sensitivity`); a pooled within-group variance with ``df`` degrees
of freedom by less than ``R²/df``. Adding a person is covered too: the release without them does
not depend on their answers, and the release with them is ε-private in their answers with ``n``
its own published count (the mean of ``n − 1`` answers plus theirs moves by at most ``R/n``
when theirs changes). Presence is not protected (the count says one more person answered);
answers are. Each released figure is ε-differentially private: any output is at most ``e^ε``
times likelier under one answer than under any other.

*Composition.* One response enters several figures (its unit-wave's scale indices, the pooled
variance, the quartile means, the organisation-wide figures). By basic composition the
release is private at the sum of their budgets (about 31ε for one response under the default
instrument; README, "Privacy"); a person answering ``k`` waves is ``k`` responses; every
release with other data or parameters spends its budget again.

*The noise source.* Each figure's standard Laplace draw is a pseudo-random function of a secret
and the figure's name (:func:`standard_laplace`). The secret (:func:`data_secret`) is SHA-256
over a domain tag and every value of the parsed staff-side tables and the instrument (not the
customer tables: see :func:`data_secret`), bound to every parameter by :func:`release_for`.
The same data and parameters give byte-identical releases; any other staff-side value or
parameter gives independent noise, so two releases never share a draw that subtraction could
cancel; a reader without every raw value cannot reproduce the noise. A draw
seeded from the figure's name and ``seed`` alone would be shared by both releases and cancel
exactly in ``n₂ m̃₂ − n₁ m̃₁``; a secret from the manifest's per-file hashes would be public. Honest
uncertainty: the noise variance ``2b²`` comes back with every released figure, and intervals
and precision weights computed from released figures add it. Residual risks, and which
outputs stay exact, are listed in README.md, "Privacy".

References
----------
Cox, L. H. (1980). Suppression methodology and statistical disclosure control. *Journal of the
American Statistical Association* 75(370), 377–385.

Dwork, C., McSherry, F., Nissim, K., & Smith, A. (2006). Calibrating noise to sensitivity in
private data analysis. In *Theory of Cryptography (TCC 2006)*, Lecture Notes in Computer
Science 3876, 265–284. Springer.

Hundepool, A., et al. (2012). *Statistical Disclosure Control*. Wiley.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from analysis.data.parameters import MIN_GROUP_SIZE_FLOOR

SUPPRESSED = "suppressed"
SUPPRESSION = "suppression"
COMPLEMENTARY = "complementary (protects a small group)"

__all__ = [
    "COMPLEMENTARY",
    "MIN_GROUP_SIZE_FLOOR",
    "SUPPRESSED",
    "SUPPRESSION",
    "Release",
    "assert_no_disclosure",
    "data_secret",
    "disclosure_risks",
    "laplace_mechanism",
    "mean_sensitivity",
    "released_pooled_variance",
    "release_for",
    "safe_totals",
    "small_group_reason",
    "standard_laplace",
    "suppress",
    "variance_sensitivity",
    "widened_interval",
]

_TOLERANCE = 1e-8
_ENUMERATION_LIMIT = 2000  # candidate sets checked directly; beyond that, a mixed-integer program
Grouping = tuple[str, ...]


def small_group_reason(min_group_size: int, members: str = "respondents") -> str:
    """The ``suppression`` text of a group below the threshold: ``"fewer than N respondents"``
    (``members`` names who the group counts: ``"raters"`` for internal-service ratings)."""
    return f"fewer than {min_group_size} {members}"


def suppress(
    table: pd.DataFrame,
    *,
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]] = ((),),
    members: str = "respondents",
) -> pd.DataFrame:
    """Hide employee-derived values of small groups, and of enough others to protect them.

    Parameters
    ----------
    table : DataFrame
        One row per displayed group (for example unit × wave). Not modified.
    count : str
        Column with the number of respondents behind each row's ``values`` (whole, ≥ 0).
    values : sequence of str
        The employee-derived columns to hide (a single name is accepted).
    min_group_size : int
        The smallest number of respondents a shown figure may rest on; at least
        ``MIN_GROUP_SIZE_FLOOR`` (3).
    parents : sequence of groupings
        Every grouping of these rows whose totals or count-weighted means are published
        anywhere, each a tuple of column names: ``[("wave",), ("region", "wave"), ()]``;
        ``()`` is the grand total. ``[]`` declares that no total is published.
    members : str
        Who ``count`` counts, as the ``suppression`` text names them (``"raters"`` for
        internal-service ratings).

    Returns
    -------
    DataFrame
        A copy with the same index, rows and columns (``values`` set to missing where hidden)
        plus ``suppressed`` (bool) and ``suppression`` (``""``, ``"fewer than N respondents"``
        or ``"complementary (protects a small group)"``), replacing any earlier ones. ``count``
        stays visible.

    Notes
    -----
    The rules, their order and their references are in the module docstring. Publish totals over
    a grouping only through :func:`safe_totals` called with the same ``parents``: it withholds
    the totals that would give a hidden group away. Ties between equally small rows are broken
    by the order of ``table``.
    """
    values, parents = _validate(table, count, values, min_group_size, parents)
    plan = _plan(table, count, parents, min_group_size)
    result = table.drop(columns=[SUPPRESSED, SUPPRESSION], errors="ignore").copy()
    hidden = plan.suppressed
    for column in values:
        result[column] = result[column].where(~hidden)
    reason = np.where(plan.counts < min_group_size, small_group_reason(min_group_size, members), "")
    reason = np.where(plan.complementary, COMPLEMENTARY, reason)
    result[SUPPRESSED] = hidden.copy()
    result[SUPPRESSION] = pd.Series(reason, index=result.index, dtype="str")
    return result


def safe_totals(
    table: pd.DataFrame,
    *,
    by: Sequence[str],
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]],
) -> pd.DataFrame:
    """Count-weighted means of ``values`` over the groups of ``by``, withheld where unsafe.

    Parameters
    ----------
    table : DataFrame
        The **unsuppressed** rows (true values), exactly as passed to :func:`suppress`.
    by : sequence of str
        The grouping to total; it must be one of ``parents`` (``()`` for the grand total).
    count, values, min_group_size, parents
        As for :func:`suppress`, and the same values: the suppression pattern shown next to
        these totals protects only the groupings it was told about.

    Returns
    -------
    DataFrame
        One row per group of ``by`` (sorted by its keys): the ``by`` columns, ``count`` (the
        summed respondents), each value as ``Σ count·value / Σ count``, and ``suppressed`` and
        ``suppression`` as in :func:`suppress`. A total is withheld (values missing) when the
        group has fewer than ``min_group_size`` respondents, or when publishing it would let a
        hidden small group be recovered (``"complementary (protects a small group)"``).
    """
    values, parents = _validate(table, count, values, min_group_size, parents)
    by = _grouping(by, "by")
    if by not in parents:
        raise ValueError(
            f"by={list(by)} is not among parents {[list(p) for p in parents]}: the suppression "
            "pattern only protects totals over the groupings it was told about"
        )
    numbers = {}
    for column in values:
        if len(table) and not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(f"column {column!r} must be numeric to be averaged")
        numbers[column] = table[column].to_numpy(dtype="float64")
        missing = np.isnan(numbers[column]) & (_counts(table, count) > 0)
        if missing.any():
            raise ValueError(
                f"column {column!r} is missing in {int(missing.sum())} row(s) that have "
                f"respondents; {count!r} must count the respondents behind every value"
            )
    plan = _plan(table, count, parents, min_group_size)
    rows = []
    for group in plan.groups:
        if group.grouping != by:
            continue
        members = group.members[plan.counts[group.members] > 0]
        weights = plan.counts[members].astype("float64")
        row = dict(zip(by, group.key, strict=True))
        row[count] = group.count
        for column, array in numbers.items():
            shown = not group.withheld and weights.sum() > 0
            row[column] = float(weights @ array[members] / weights.sum()) if shown else np.nan
        row[SUPPRESSED] = bool(group.withheld)
        row[SUPPRESSION] = group.withheld
        rows.append(row)
    columns = [*by, count, *values, SUPPRESSED, SUPPRESSION]
    return pd.DataFrame(rows, columns=columns).astype({SUPPRESSED: bool, SUPPRESSION: "str"})


def disclosure_risks(
    table: pd.DataFrame,
    *,
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]] = ((),),
    totals: Mapping[Sequence[str], pd.DataFrame] | None = None,
) -> list[str]:
    """Every way a displayed table, with its published totals, gives away a small group.

    Parameters
    ----------
    table : DataFrame
        The table as displayed. A row counts as hidden where its ``suppressed`` column is true
        or, without that column, where every one of ``values`` is missing.
    count, values, min_group_size, parents
        As for :func:`suppress`; ``parents`` are the groupings whose totals are published.
    totals : mapping from grouping to DataFrame, optional
        The published totals, as returned by :func:`safe_totals`. A parent group whose total
        there is withheld is not an equation for the attacker. Without it (or for a grouping it
        lacks), every parent group's total counts as published.

    Returns
    -------
    list of str
        Empty when the table is safe. Otherwise one message per problem: a small row shown, a
        row marked suppressed that still shows values, a published total over fewer than
        ``min_group_size`` respondents, a published parent group whose hidden rows are fewer
        than two or hold fewer than ``min_group_size`` respondents, or a set of hidden rows
        under ``min_group_size`` respondents whose sum the published totals determine.
    """
    values, parents = _validate(table, count, values, min_group_size, parents)
    counts = _counts(table, count)
    shown = table[values].notna().to_numpy()
    if SUPPRESSED in table.columns:
        hidden = table[SUPPRESSED].fillna(True).astype(bool).to_numpy()
    else:
        hidden = ~shown.any(axis=1)
    risks = []
    for position in np.flatnonzero(~hidden & (counts < min_group_size)):
        risks.append(
            f"row {table.index[position]!r} shows values for {counts[position]} respondent(s), "
            f"fewer than {min_group_size}"
        )
    for position in np.flatnonzero(hidden & shown.any(axis=1)):
        risks.append(f"row {table.index[position]!r} is marked suppressed but shows values")
    groups = _groups(table, parents, counts)
    published = _published(groups, parents, totals)
    for group, is_published in zip(groups, published, strict=True):
        if not is_published:
            continue
        if 0 < group.count < min_group_size:
            risks.append(
                f"the total of {_label(group)} is published but rests on {group.count} "
                f"respondent(s), fewer than {min_group_size}"
            )
            continue
        covered = group.members[hidden[group.members] & (counts[group.members] > 0)]
        if covered.size and (covered.size < 2 or counts[covered].sum() < min_group_size):
            risks.append(
                f"the total of {_label(group)} minus its visible rows gives away rows "
                f"{[table.index[p] for p in covered]} ({int(counts[covered].sum())} "
                f"respondent(s) in {covered.size} row(s); need at least 2 rows and "
                f"{min_group_size} respondents)"
            )
    equations = [g for g, p in zip(groups, published, strict=True) if p]
    revealed = _revealed_set(equations, hidden & (counts > 0), counts, min_group_size)
    if revealed is not None:
        risks.append(
            f"the published totals determine the combined value of rows "
            f"{[table.index[p] for p in revealed]}, only {int(counts[revealed].sum())} "
            f"respondent(s), fewer than {min_group_size}"
        )
    return risks


def assert_no_disclosure(table: pd.DataFrame, **rules) -> None:
    """Raise ``AssertionError`` listing every :func:`disclosure_risks` finding; for tests.

    Parameters
    ----------
    table : DataFrame
        The table as displayed.
    **rules
        ``count``, ``values``, ``min_group_size``, ``parents`` and ``totals``, exactly as
        :func:`disclosure_risks` takes them (keywords only).

    Raises
    ------
    AssertionError
        Listing every risk found.
    """
    risks = disclosure_risks(table, **rules)
    if risks:
        raise AssertionError("disclosure risk:\n" + "\n".join(f"- {risk}" for risk in risks))


# --- the suppression plan ---------------------------------------------------------------------


@dataclass
class _Group:
    grouping: Grouping
    key: tuple
    members: np.ndarray  # positions in the table, ascending
    count: int
    withheld: str = ""  # "" while the group's total may be published


@dataclass
class _Plan:
    counts: np.ndarray
    suppressed: np.ndarray
    complementary: np.ndarray
    groups: list[_Group] = field(default_factory=list)


def _plan(table: pd.DataFrame, count: str, parents: list[Grouping], min_group_size: int) -> _Plan:
    counts = _counts(table, count)
    suppressed = counts < min_group_size
    plan = _Plan(
        counts, suppressed, np.zeros(len(table), dtype=bool), _groups(table, parents, counts)
    )
    for group in plan.groups:
        if group.count < min_group_size:
            group.withheld = small_group_reason(min_group_size)
    while True:
        _apply_sibling_rule(plan, min_group_size)
        published = [g for g in plan.groups if not g.withheld]
        revealed = _revealed_set(published, plan.suppressed & (counts > 0), counts, min_group_size)
        if revealed is None:
            return plan
        _break_revelation(plan, published, revealed)


def _apply_sibling_rule(plan: _Plan, min_group_size: int) -> None:
    """Steps 2–4 of the module docstring, repeated until nothing changes."""
    counts, suppressed = plan.counts, plan.suppressed
    changed = True
    while changed:
        changed = False
        for group in plan.groups:
            if group.withheld:
                continue
            members = group.members
            while True:
                covered = members[suppressed[members] & (counts[members] > 0)]
                if covered.size == 0 or (
                    covered.size >= 2 and counts[covered].sum() >= min_group_size
                ):
                    break
                visible = members[~suppressed[members]]
                if visible.size == 0:
                    group.withheld = (
                        small_group_reason(min_group_size)
                        if group.count < min_group_size
                        else COMPLEMENTARY
                    )
                    break
                pick = visible[np.argmin(counts[visible])]  # first of the smallest
                suppressed[pick] = plan.complementary[pick] = True
                changed = True


def _revealed_set(
    equations: list[_Group], hidden: np.ndarray, counts: np.ndarray, min_group_size: int
) -> np.ndarray | None:
    """Smallest set of hidden rows under ``min_group_size`` whose sum the totals determine.

    ``hidden`` marks the unknowns (hidden rows with respondents). A set ``S`` is determined when
    its indicator ``x`` lies in the row space of the equations ``A`` (``x = Aᵀ y``). Then
    ``x_j = a_jᵀ y`` is equal on unknowns with the same column ``a_j`` (the same published
    totals), so ``S`` is a union of such classes, and the search runs on the classes: a matrix
    with one column per class rather than per row, exact and small at any table size. Up to
    ``_ENUMERATION_LIMIT`` candidate sets (classes under the threshold together) are checked one
    by one against the null space; beyond that, a mixed-integer program minimises ``Σ_S count``
    over binary ``x`` (one per small class) and free ``y`` subject to ``A_Kᵀ y = x`` (``0`` on
    the other classes) and ``Σ x ≥ 1``. Returns table positions, or ``None``.
    """
    unknown = np.flatnonzero(hidden)
    if not (counts[unknown] < min_group_size).any():
        return None
    keys, inverse, n_equations = _unknown_classes(equations, unknown, len(hidden))
    class_counts = np.bincount(inverse, weights=counts[unknown], minlength=len(keys))
    small = np.flatnonzero((class_counts < min_group_size) & (keys >= 0).any(axis=1))
    if small.size == 0:  # no published total involves a small class
        return None
    reduced = np.zeros((n_equations, len(keys)))  # one column per class of interchangeable unknowns
    in_class, slot = np.nonzero(keys >= 0)
    reduced[keys[in_class, slot], in_class] = 1.0

    def rows_of(chosen: np.ndarray) -> np.ndarray:
        return unknown[np.isin(inverse, chosen)]

    candidates = _small_sets(class_counts[small], min_group_size, _ENUMERATION_LIMIT)
    if candidates is not None:
        indicators = np.zeros((len(candidates), reduced.shape[1]))
        for i, chosen in enumerate(candidates):
            indicators[i, small[chosen]] = 1.0
        free = linalg.null_space(reduced)
        pinned = np.flatnonzero(np.abs(indicators @ free).max(axis=1, initial=0) < _TOLERANCE)
        if pinned.size == 0:
            return None
        sizes = [class_counts[small[candidates[i]]].sum() for i in pinned]
        return rows_of(small[candidates[pinned[int(np.argmin(sizes))]]])
    n_equations, n_small = reduced.shape[0], small.size
    selector = (np.arange(reduced.shape[1])[:, None] == small[None, :]).astype("float64")
    weights = class_counts[small]
    constraints = [
        optimize.LinearConstraint(np.hstack([reduced.T, -selector]), 0, 0),
        optimize.LinearConstraint(np.r_[np.zeros(n_equations), np.ones(n_small)], 1, np.inf),
        optimize.LinearConstraint(np.r_[np.zeros(n_equations), weights], 0, min_group_size - 1),
    ]
    result = optimize.milp(
        np.r_[np.zeros(n_equations), weights],
        constraints=constraints,
        integrality=np.r_[np.zeros(n_equations), np.ones(n_small)],
        bounds=optimize.Bounds(
            np.r_[np.full(n_equations, -np.inf), np.zeros(n_small)],
            np.r_[np.full(n_equations, np.inf), np.ones(n_small)],
        ),
    )
    if result.status == 2:  # infeasible: no small set is determined
        return None
    if not result.success:
        raise RuntimeError(f"the disclosure audit could not finish: {result.message}")
    return rows_of(small[result.x[n_equations:] > 0.5])


def _small_sets(weights: np.ndarray, min_group_size: int, limit: int) -> list[list[int]] | None:
    """Index sets of ``weights`` summing to under ``min_group_size``; ``None`` past ``limit``."""
    found: list[list[int]] = []

    def extend(start: int, chosen: list[int], total: int) -> bool:
        for i in range(start, len(weights)):
            if total + weights[i] < min_group_size:
                if len(found) >= limit:
                    return False
                found.append([*chosen, i])
                if not extend(i + 1, found[-1], total + int(weights[i])):
                    return False
        return True

    return found if extend(0, [], 0) else None


def _break_revelation(plan: _Plan, equations: list[_Group], revealed: np.ndarray) -> None:
    """Hide one more row, or withhold one total, so that ``revealed`` is no longer determined.

    With ``Aᵀ y = 1_S`` solved by ``y₀ + N z`` (``N`` spanning the null space of ``Aᵀ``), hiding
    row ``c`` (column ``a_c`` of the equations it belongs to) breaks the determination when
    ``a_cᵀ N = 0`` and ``a_cᵀ y₀ ≠ 0``; withholding total ``g`` does when ``N_g = 0`` and
    ``y₀_g ≠ 0``. The smallest-count visible row in the totals involved is preferred; then the
    smallest such total. If neither test succeeds, the smallest total involved is withheld
    anyway: suppression only grows, so the calling loop ends.
    """
    unknown = np.flatnonzero(plan.suppressed & (plan.counts > 0))
    matrix = _equation_matrix(equations, unknown, len(plan.counts))
    target = np.isin(unknown, revealed).astype("float64")
    y0 = np.linalg.lstsq(matrix.T, target, rcond=None)[0]
    # Aᵀy = 0 ⇔ Ry = 0 for Aᵀ = QR: an m × m problem, where null_space(Aᵀ) would form an
    # n × n matrix (n hidden rows; gigabytes for a company-sized table)
    null = (
        linalg.null_space(np.linalg.qr(matrix.T, mode="r"))
        if matrix.size
        else np.zeros((len(equations), 0))
    )
    involved = [
        i
        for i, group in enumerate(equations)
        if abs(y0[i]) > _TOLERANCE or np.isin(group.members, revealed).any()
    ]
    membership = np.zeros((len(plan.counts), len(equations)))
    for i, group in enumerate(equations):
        membership[group.members, i] = 1.0
    candidates = np.unique(
        np.concatenate([equations[i].members for i in involved] or [np.zeros(0, dtype=int)])
    )
    candidates = candidates[~plan.suppressed[candidates]]
    for row in candidates[np.lexsort((candidates, plan.counts[candidates]))]:
        column = membership[row]
        if np.abs(column @ null).max(initial=0) < _TOLERANCE and abs(column @ y0) > _TOLERANCE:
            plan.suppressed[row] = plan.complementary[row] = True
            return
    involved.sort(key=lambda i: (equations[i].count, i))
    for i in involved:
        if np.abs(null[i]).max(initial=0) < _TOLERANCE and abs(y0[i]) > _TOLERANCE:
            equations[i].withheld = COMPLEMENTARY
            return
    fallback = involved[0] if involved else 0
    equations[fallback].withheld = COMPLEMENTARY


def _unknown_classes(
    equations: list[_Group], unknown: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The classes of ``np.unique(A.T, axis=0)`` for ``A = _equation_matrix(...)``, its all-zero
    rows dropped, without forming ``A`` (equations × unknowns: gigabytes for a thousand waves).

    Each grouping partitions the rows, so an unknown's column of ``A`` has at most one 1 per
    grouping: it is given by the positions of its equations, one per grouping, and the classes
    are the distinct sorted position lists (unknowns × groupings, sorted in ``n log n``). 0/1
    columns in ascending order are position lists in descending order (padded at the end with
    a position past the last), so reversing that order gives ``np.unique``'s. Returns ``keys``
    (classes × groupings: each class's equation positions, ``-1`` padding), each unknown's
    class, and the number of equations with an unknown (the rows of ``A`` kept).
    """
    position = np.full(n_rows, -1)
    position[unknown] = np.arange(unknown.size)
    slots = {grouping: i for i, grouping in enumerate(dict.fromkeys(g.grouping for g in equations))}
    table = np.full((unknown.size, max(len(slots), 1)), -1, dtype=np.int64)
    kept = 0
    for group in equations:
        inside = position[group.members]
        inside = inside[inside >= 0]
        if inside.size:
            table[inside, slots[group.grouping]] = kept
            kept += 1
    padded = np.sort(np.where(table < 0, kept, table), axis=1)
    if (kept + 1) ** padded.shape[1] < 2**62:  # rows as one integer each, in the same order
        weights = (kept + 1) ** np.arange(padded.shape[1] - 1, -1, -1, dtype=np.int64)
        _, first, inverse = np.unique(padded @ weights, return_index=True, return_inverse=True)
        keys = padded[first]
    else:
        keys, inverse = np.unique(padded, axis=0, return_inverse=True)
    keys, inverse = keys[::-1], len(keys) - 1 - inverse.ravel()
    return np.where(keys >= kept, -1, keys), inverse, kept


def _equation_matrix(equations: list[_Group], unknown: np.ndarray, n_rows: int) -> np.ndarray:
    """``A[g, j] = 1`` when unknown ``j`` belongs to published group ``g``."""
    column = np.full(n_rows, -1)
    column[unknown] = np.arange(unknown.size)
    matrix = np.zeros((len(equations), unknown.size))
    for i, group in enumerate(equations):
        inside = column[group.members]
        matrix[i, inside[inside >= 0]] = 1.0
    return matrix


def _groups(table: pd.DataFrame, parents: list[Grouping], counts: np.ndarray) -> list[_Group]:
    """Every parent group, finest grouping first (more groups first; then as declared)."""
    by_grouping = []
    for grouping in parents:
        if not len(table):
            members, keys = [], []
        elif not grouping:
            members, keys = [np.arange(len(table))], [()]
        else:
            codes, uniques = [], []
            for column in grouping:  # sorted like groupby(sort=True, dropna=False)
                code, unique = pd.factorize(table[column], sort=True, use_na_sentinel=False)
                codes.append(code)
                uniques.append(unique)
            stacked = np.column_stack(codes)
            sizes = [max(len(u), 1) for u in uniques]
            if np.prod(sizes, dtype=float) < 2**62:  # one integer per row, in the same order
                flat = np.ravel_multi_index(tuple(stacked.T), sizes)
                _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
                combined = stacked[first]
            else:
                combined, inverse = np.unique(stacked, axis=0, return_inverse=True)
            inverse = inverse.ravel()
            order = np.argsort(inverse, kind="stable")
            members = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
            keys = [tuple(u[k] for u, k in zip(uniques, row, strict=True)) for row in combined]
        by_grouping.append(
            [
                _Group(grouping, key, m, int(counts[m].sum()))
                for key, m in zip(keys, members, strict=True)
            ]
        )
    order = sorted(range(len(parents)), key=lambda i: (-len(by_grouping[i]), i))
    return [group for i in order for group in by_grouping[i]]


def _published(
    groups: list[_Group],
    parents: list[Grouping],
    totals: Mapping[Sequence[str], pd.DataFrame] | None,
) -> list[bool]:
    """Whether each group's total is published according to ``totals`` (default: all are)."""
    published = [True] * len(groups)
    for grouping, frame in (totals or {}).items():
        grouping = _grouping(grouping, "totals key")
        if grouping not in parents:
            raise ValueError(f"totals over {list(grouping)} are not among parents")
        if SUPPRESSED in frame.columns:
            withheld = frame[SUPPRESSED].fillna(True).astype(bool).to_numpy()
        else:
            withheld = frame.drop(columns=list(grouping)).isna().all(axis=1).to_numpy()
        status = {_key_id(tuple(row)): w for row, w in _key_rows(frame, grouping, withheld)}
        for i, group in enumerate(groups):
            if group.grouping == grouping:
                published[i] = not status.get(_key_id(group.key), False)
    return published


def _key_rows(frame: pd.DataFrame, grouping: Grouping, withheld: np.ndarray):
    keys = (
        frame[list(grouping)].itertuples(index=False, name=None) if grouping else [()] * len(frame)
    )
    return zip(keys, withheld, strict=True)


def _key_id(key: tuple) -> tuple:
    """A dictionary key for a group key, with missing values made equal to each other."""
    return tuple("\0missing" if pd.isna(k) else k for k in key)


def _label(group: _Group) -> str:
    if not group.grouping:
        return "all rows"
    return ", ".join(f"{c}={k}" for c, k in zip(group.grouping, group.key, strict=True))


# --- validation ---------------------------------------------------------------------------------


def _grouping(columns: Sequence[str], name: str) -> Grouping:
    if isinstance(columns, str):
        raise ValueError(
            f"{name} must be a tuple of column names such as ({columns!r},), not the string "
            f"{columns!r}"
        )
    return tuple(columns)


def _validate(
    table: pd.DataFrame,
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]],
) -> tuple[list[str], list[Grouping]]:
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer):
        raise ValueError(f"min_group_size must be a whole number, not {min_group_size!r}")
    if min_group_size < MIN_GROUP_SIZE_FLOOR:
        raise ValueError(
            f"min_group_size must be at least {MIN_GROUP_SIZE_FLOOR} to protect respondents' "
            f"anonymity, not {min_group_size}"
        )
    values = [values] if isinstance(values, str) else list(values)
    if not values:
        raise ValueError("values must name at least one employee-derived column")
    if isinstance(parents, str):
        raise ValueError(f"parents must be a list of groupings such as [({parents!r},), ()]")
    groupings = []
    for grouping in parents:
        grouping = _grouping(grouping, "each grouping in parents")
        if grouping not in groupings:
            groupings.append(grouping)
    reserved = {SUPPRESSED, SUPPRESSION, count} & set(values)
    if reserved:
        raise ValueError(f"values may not include {sorted(reserved)}")
    keys = {c for g in groupings for c in g}
    if keys & set(values):
        raise ValueError(f"columns {sorted(keys & set(values))} are both values and group keys")
    wanted = [count, *values, *sorted(keys)]
    missing = [c for c in dict.fromkeys(wanted) if c not in table.columns]
    if missing:
        raise ValueError(f"columns missing from the table: {', '.join(map(str, missing))}")
    _counts(table, count)
    return values, groupings


def _counts(table: pd.DataFrame, count: str) -> np.ndarray:
    column = table[count]
    if column.empty:
        return np.zeros(0, dtype="int64")
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise ValueError(f"count column {count!r} must hold numbers of respondents")
    numbers = column.to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(numbers) | (numbers < 0) | (numbers != np.floor(numbers))
    if bad.any():
        raise ValueError(
            f"count column {count!r} must hold whole numbers ≥ 0; {int(bad.sum())} row(s) do not"
        )
    return numbers.astype("int64")


# --- release: the Laplace mechanism -------------------------------------------------------------

#: Domain tag of every digest here, so that no hash published elsewhere (the manifest's
#: per-file SHA-256) can stand in for one of them.
RELEASE_DOMAIN = b"inside-out/privacy-release/v1"


@dataclass(frozen=True)
class Release:
    """The privacy budget of one figure and the secret its noise is derived from.

    Build it with :func:`release_for`.

    Attributes
    ----------
    epsilon : float
        The budget ``ε`` of each released figure, finite and positive.
    key : bytes
        At least 16 secret bytes. Never written, shown or logged (it is left out of ``repr``):
        anyone holding it could remove the noise.

    Raises
    ------
    ValueError
        On a budget that is not a finite positive number, or a key shorter than 16 bytes.
    """

    epsilon: float
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, int | float) and np.isfinite(self.epsilon)):
            raise ValueError(f"epsilon must be a finite number, not {self.epsilon!r}")
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be positive, not {self.epsilon!r}")
        if not isinstance(self.key, bytes) or len(self.key) < 16:
            raise ValueError("the release key must be at least 16 secret bytes")


def data_secret(dataset) -> bytes:
    """SHA-256 over the domain tag and every input value: the seed of all noise, kept secret.

    The digest covers each staff-side table's name, row count, columns and types, every value
    (pandas' per-row hashes of the parsed ``units`` and ``employee_survey``, and the optional
    tables when the dataset has them) and the parsed instrument. It is computed from the
    content, not the files' bytes, so the same data stored as CSV or Parquet, with or without a
    byte-order mark, give the same release; any change to any value gives an unrelated secret,
    and so fresh noise.

    Item columns are keyed by their place in the instrument (scale and position), not by
    their names, and the instrument by its scales' names, ranges, thresholds and reverse-coded
    positions: the same answers under other item names (``Q1_1`` for ``eng_1``) are the same
    data and give the same release, as the same data in CSV and Parquet do.

    The customer tables are left out: the noise protects employee figures, which do not depend
    on them, so a refreshed customer export leaves every employee figure and its noise as they
    were. Hashing them would give the same figure fresh, independent noise at each refresh, and
    averaging k releases would shrink the noise by √k; it would also need every customer row in
    pandas, which an engine's dataset (``analysis.data.source``) never holds.

    It is not derived from the per-file SHA-256 digests that ``manifest.json`` publishes (the
    tag comes first, and they hash bytes, not values), nor from the ``seed`` parameter: a reader
    of the report holds neither the data nor this digest.

    Parameters
    ----------
    dataset : Dataset
        The loaded tables and instrument.

    Returns
    -------
    bytes
        The 32-byte digest; never written, shown or logged.
    """
    from analysis.data.contract import TABLE_NAMES
    from analysis.data.load import CUSTOMER_TABLE_NAMES

    instrument = getattr(dataset, "instrument", None)
    places = _item_places(instrument)
    digest = hashlib.sha256(RELEASE_DOMAIN + b"\0data\0")
    # units and the survey, then the optional staff tables (headcount …): every staff-side value
    tables = (
        dataset.tables()
        if hasattr(dataset, "tables")
        else {name: getattr(dataset, name) for name in TABLE_NAMES}
    )
    for name, frame in tables.items():
        if name in CUSTOMER_TABLE_NAMES:
            continue
        if name == "employee_survey" and places:
            frame = frame.rename(columns=places)
        columns = "\0".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items())
        _update(digest, name.encode(), len(frame))
        _update(digest, columns.encode())
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        digest.update(rows.astype("<u8").tobytes())
    _update(digest, _instrument_shape(instrument).encode())
    return digest.digest()


def _item_places(instrument) -> dict[str, str]:
    """Each item's place in the instrument (its scale and position there), by item name."""
    if instrument is None:
        return {}
    return {
        item: f"\0item\0{scale.name}\0{position}"
        for scale in instrument.scales
        for position, item in enumerate(scale.items)
    }


def _instrument_shape(instrument) -> str:
    """The instrument without its item names: what the analysis of the answers depends on."""
    if instrument is None:
        return repr(None)
    return repr(
        [
            (
                scale.name,
                len(scale.items),
                int(scale.low),
                int(scale.high),
                # 4 and 4.0 are one threshold (the default instrument's and a file's)
                None if scale.favourable is None else float(scale.favourable),
                sorted(scale.items.index(item) for item in scale.reverse),
            )
            for scale in instrument.scales
        ]
    )


def release_for(dataset, parameters) -> Release:
    """The :class:`Release` of one run: the data's secret, bound to every parameter.

    Same data and parameters give the same key, so a rerun (a reviewer's) publishes
    byte-identical figures. Any other input byte, or any other parameter value, gives an
    independent key and so fresh noise: two releases never share a draw that subtraction could
    cancel (with a shared draw ``L``, ``n₂ m̃₂ − n₁ m̃₁ = x + (range/ε)(L − L)`` would be the
    added person's answer exactly; and two budgets ``ε₁ ≠ ε₂`` over the same draw would give the
    figure itself by solving two equations).

    Parameters
    ----------
    dataset : Dataset
        The loaded tables and instrument (:func:`data_secret`).
    parameters : Parameters or Mapping
        Every run parameter; ``privacy_epsilon`` is the budget of each figure.

    Returns
    -------
    Release
        The budget and the key.
    """
    settings = parameters.to_notebook() if hasattr(parameters, "to_notebook") else dict(parameters)
    text = json.dumps(settings, sort_keys=True, default=str).encode()
    digest = hashlib.sha256(RELEASE_DOMAIN + b"\0release\0")
    _update(digest, data_secret(dataset))
    _update(digest, text)
    return Release(float(settings["privacy_epsilon"]), digest.digest())


def standard_laplace(release: Release, figures: Sequence[Sequence[object]]) -> np.ndarray:
    """One standard Laplace draw (density ``½ e^{−|x|}``) per figure, from the secret.

    Each figure is named by a tuple (table, column, unit, wave …). Its draw comes from keyed
    BLAKE2b of that name under ``release.key`` (a pseudo-random function): 53 bits give a
    uniform ``u`` in (0, 1), and the inverse distribution function gives
    ``L = ln(2u)`` for ``u < ½`` and ``−ln(2 − 2u)`` otherwise. A figure's draw depends on the
    secret and its own name only, not on which other figures exist.

    Parameters
    ----------
    release : Release
        Holds the secret key.
    figures : sequence of tuples
        One name per figure.

    Returns
    -------
    ndarray
        One draw per figure, in order.
    """
    keyed = hashlib.blake2b(key=release.key[:64], digest_size=8)
    words = bytearray()
    # the same few waves name most figures: each date is spelled out once (equal dates in
    # different time zones are different keys)
    spelled: dict[tuple[type, object, object], str] = {}

    def spell(part: object) -> str:
        if type(part) is str:
            return part
        if not isinstance(part, pd.Timestamp | np.datetime64 | dt.date):
            return _figure_part(part)
        key = (type(part), part, getattr(part, "tzinfo", None))
        if key not in spelled:
            spelled[key] = _figure_part(part)
        return spelled[key]

    for figure in figures:
        digest = keyed.copy()
        digest.update("\x1f".join([spell(part) for part in figure]).encode("utf-8"))
        words += digest.digest()
    integers = np.frombuffer(bytes(words), dtype=">u8")
    uniforms = ((integers >> np.uint64(11)).astype("float64") + 0.5) / 2.0**53
    return np.where(
        uniforms < 0.5, np.log(2 * uniforms), -np.log(np.maximum(2 - 2 * uniforms, 1e-300))
    )


def laplace_mechanism(
    values,
    sensitivity,
    figures: Sequence[Sequence[object]],
    release: Release,
) -> tuple[np.ndarray, np.ndarray]:
    """The one release function: ``value + Lap(sensitivity / ε)`` for each figure.

    Parameters
    ----------
    values : array-like of float
        The exact figures (missing where nothing is shown; they stay missing).
    sensitivity : array-like of float
        Each figure's largest change when one response is replaced by any other (see the
        module docstring: ``range / n`` for a mean of ``n`` answers whose count is published).
        A missing, zero-count or infinite sensitivity leaves the figure missing.
    figures : sequence of tuples
        A stable, unique name per figure, such as ``("unit_wave", "engagement_index", unit,
        wave)``; it selects the figure's draw (:func:`standard_laplace`).
    release : Release
        The budget ``ε`` per figure and the secret key.

    Returns
    -------
    (noisy, noise_variance)
        Arrays of the shape of ``values``: the released figures and the variance of the noise
        added, ``2 b²`` with ``b = sensitivity / ε``, which every published interval and every
        downstream precision weight must add to the sampling variance.
    """
    values = np.asarray(values, dtype="float64")
    sensitivity = np.broadcast_to(np.asarray(sensitivity, dtype="float64"), values.shape)
    if len(figures) != values.size:
        raise ValueError(f"{len(figures)} figure names for {values.size} values")
    scale = sensitivity / release.epsilon
    usable = np.isfinite(values) & np.isfinite(scale) & (scale >= 0)
    noisy = np.full(values.shape, np.nan)
    variance = np.full(values.shape, np.nan)
    if usable.any():
        positions = np.flatnonzero(usable.ravel())
        draws = standard_laplace(release, [figures[i] for i in positions])
        flat_noisy, flat_variance = noisy.reshape(-1), variance.reshape(-1)
        flat_scale = scale.reshape(-1)[positions]
        flat_noisy[positions] = values.reshape(-1)[positions] + flat_scale * draws
        flat_variance[positions] = 2 * flat_scale**2
    return noisy, variance


def released_pooled_variance(
    pooled: float, degrees: float, figure: tuple, release: Release | None
) -> float:
    """A pooled within-group variance of a 0–100 index, released once with Laplace noise.

    ``s² = Σ SS_g / df`` with ``df = Σ (n_g − 1)`` over the groups shown. One response moves
    ``Σ SS_g`` by less than ``100²`` (its squared deviation), so the sensitivity of ``s²`` is
    ``Δ = 100² / df`` (Dwork & Roth, 2014, §3.3). The noisy value is floored at 0, which is
    post-processing and costs no privacy.

    Parameters
    ----------
    pooled : float
        The exact pooled variance (NaN when there is none).
    degrees : float
        ``df``, its degrees of freedom.
    figure : tuple
        The figure's name (its noise is drawn from it: ``standard_laplace``).
    release : Release or None
        The run's release; ``None`` gives the exact value (tests and audits only).

    Returns
    -------
    float
        The released variance, NaN without one.
    """
    if release is None:
        return pooled
    noisy, _ = laplace_mechanism(
        [pooled], [100.0**2 / degrees if degrees > 0 else np.nan], [figure], release
    )
    return max(float(noisy[0]), 0.0) if np.isfinite(noisy[0]) else np.nan


def mean_sensitivity(value_range: float, count) -> np.ndarray:
    """``range / n``: how far one response can move a mean of ``n`` published answers.

    Parameters
    ----------
    value_range : float
        ``R = high − low`` of the answers.
    count : array-like
        The published number of answers ``n`` behind each mean.

    Returns
    -------
    ndarray
        ``R / n``; NaN where ``n`` is 0.
    """
    count = np.asarray(count, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, value_range / count, np.nan)


def variance_sensitivity(value_range: float, count) -> np.ndarray:
    """``range² / n``: how far one response can move a sample variance (``n − 1`` divisor).

    Parameters
    ----------
    value_range : float
        ``R = high − low`` of the answers.
    count : array-like
        The published number of answers ``n`` behind each variance.

    Returns
    -------
    ndarray
        ``R² / n``; NaN where ``n < 2``.

    Notes
    -----
    Replacing one of ``n`` values in ``[0, R]`` changes the sum of squared deviations by at most
    ``(1 − 1/n) R²`` (it is ``(1 − 1/n)(x − x̄₋)²`` plus a constant in that value, with ``x̄₋`` the
    mean of the others), hence the variance by at most ``R² / n``.
    """
    count = np.asarray(count, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 1, value_range**2 / count, np.nan)


def widened_interval(estimate, low, high, noise_variance, confidence: float):
    """Add the noise variance to an interval: each half-width ``h`` becomes ``√(h² + z² 2b²)``.

    Keeps the interval's own shape (a Wilson interval stays asymmetric) and adds the release
    noise in quadrature, as independent errors add.

    Parameters
    ----------
    estimate, low, high : array-like of float
        The figure and its interval before noise.
    noise_variance : array-like of float
        ``2 b²``, as :func:`laplace_mechanism` returns it.
    confidence : float
        The interval's level; ``z`` is the standard normal quantile at ``(1 + confidence) / 2``.

    Returns
    -------
    tuple of ndarray
        The widened ``(low, high)``.
    """
    from scipy import stats

    z = stats.norm.ppf(0.5 + confidence / 2)
    estimate = np.asarray(estimate, dtype="float64")
    extra = z**2 * np.asarray(noise_variance, dtype="float64")
    below = np.sqrt((estimate - np.asarray(low, dtype="float64")) ** 2 + extra)
    above = np.sqrt((np.asarray(high, dtype="float64") - estimate) ** 2 + extra)
    return estimate - below, estimate + above


def _update(digest, data: bytes | int, length: int | None = None) -> None:
    """Feed ``data`` with its length first, so that no two inputs run together."""
    if isinstance(data, int):
        digest.update(data.to_bytes(8, "big"))
        return
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)
    if length is not None:
        digest.update(int(length).to_bytes(8, "big"))


def _figure_part(part: object) -> str:
    if type(part) is str:
        return part
    if isinstance(part, pd.Timestamp | np.datetime64 | dt.date):
        return pd.Timestamp(part).strftime("%Y-%m-%d")
    if pd.api.types.is_scalar(part) and pd.isna(part):
        return "\0missing"
    return str(part)
