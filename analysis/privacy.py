"""Small-group suppression: no displayed employee figure rests on fewer than ``min_group_size``.

Model inputs may use every response. Anything displayed (tables, figures, HTML) that is derived
from employee answers passes through :func:`suppress` first, and any total or average over a
coarser grouping is taken from :func:`safe_totals`. The guarantee: no published figure, alone or
combined with other published figures by subtraction, gives away a value for a set of fewer than
``min_group_size`` respondents.

The method is primary and complementary (secondary) cell suppression for tabular data (Cox,
1980, "Suppression methodology and statistical disclosure control", *Journal of the American
Statistical Association* 75(370), 377–385; Hundepool et al., 2012, *Statistical Disclosure
Control*, Wiley, on secondary cell suppression):

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize

from analysis.parameters import MIN_GROUP_SIZE_FLOOR

SUPPRESSED = "suppressed"
SUPPRESSION = "suppression"
COMPLEMENTARY = "complementary (protects a small group)"

__all__ = [
    "COMPLEMENTARY",
    "MIN_GROUP_SIZE_FLOOR",
    "SUPPRESSED",
    "SUPPRESSION",
    "assert_no_disclosure",
    "disclosure_risks",
    "safe_totals",
    "small_group_reason",
    "suppress",
]

_TOLERANCE = 1e-8
_ENUMERATION_LIMIT = 2000  # candidate sets checked directly; beyond that, a mixed-integer program
Grouping = tuple[str, ...]


def small_group_reason(min_group_size: int) -> str:
    """The ``suppression`` text of a group below the threshold: ``"fewer than N respondents"``."""
    return f"fewer than {min_group_size} respondents"


def suppress(
    table: pd.DataFrame,
    *,
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]] = ((),),
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
    reason = np.where(plan.counts < min_group_size, small_group_reason(min_group_size), "")
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


def assert_no_disclosure(
    table: pd.DataFrame,
    *,
    count: str,
    values: Sequence[str],
    min_group_size: int,
    parents: Sequence[Sequence[str]] = ((),),
    totals: Mapping[Sequence[str], pd.DataFrame] | None = None,
) -> None:
    """Raise ``AssertionError`` listing every :func:`disclosure_risks` finding; for tests."""
    risks = disclosure_risks(
        table,
        count=count,
        values=values,
        min_group_size=min_group_size,
        parents=parents,
        totals=totals,
    )
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
    matrix = _equation_matrix(equations, unknown, len(hidden))
    matrix = matrix[matrix.any(axis=1)]
    patterns, inverse = np.unique(matrix.T, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    class_counts = np.bincount(inverse, weights=counts[unknown], minlength=len(patterns))
    reduced = patterns.T  # one column per class of interchangeable unknowns
    small = np.flatnonzero((class_counts < min_group_size) & reduced.any(axis=0))
    if small.size == 0:  # no published total involves a small class
        return None

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
            combined, inverse = np.unique(np.column_stack(codes), axis=0, return_inverse=True)
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
