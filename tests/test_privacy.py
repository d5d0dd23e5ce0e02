"""Small-group suppression: the rules by hand, then an attacker on many random tables."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import linalg, stats

from analysis.data.parameters import MIN_GROUP_SIZE_FLOOR
from analysis.measures import privacy
from analysis.measures.privacy import (
    COMPLEMENTARY,
    Release,
    assert_no_disclosure,
    disclosure_risks,
    safe_totals,
    small_group_reason,
    suppress,
)

M = 5
SMALL = small_group_reason(M)


def unit_waves(rows: list[tuple]) -> pd.DataFrame:
    """A unit × wave table from ``(unit_id, region, wave, n)`` rows, with made-up scores."""
    table = pd.DataFrame(rows, columns=["unit_id", "region", "wave", "n"])
    table["engagement"] = 40.0 + 3.0 * np.arange(len(table))
    table["enps"] = -10.0 + 2.0 * np.arange(len(table))
    return table


def one_wave(counts: list[int]) -> pd.DataFrame:
    return unit_waves([(f"u{i}", "north", "2024-03", n) for i, n in enumerate(counts)])


def hidden_rows(shown: pd.DataFrame) -> list[int]:
    return [int(i) for i in np.flatnonzero(shown["suppressed"])]


def scores(table: pd.DataFrame) -> list[str]:
    return [c for c in ("engagement", "enps") if c in table.columns]


def run(table: pd.DataFrame, parents, min_group_size: int = M) -> pd.DataFrame:
    return suppress(
        table,
        count="n",
        values=scores(table),
        min_group_size=min_group_size,
        parents=parents,
    )


def totals_of(table: pd.DataFrame, parents, min_group_size: int = M) -> dict:
    return {
        by: safe_totals(
            table,
            by=by,
            count="n",
            values=scores(table),
            min_group_size=min_group_size,
            parents=parents,
        )
        for by in parents
    }


# --- the rules, by hand -------------------------------------------------------------------------


def test_primary_suppression_hides_small_rows_and_keeps_counts():
    table = one_wave([2, 10, 0, 5, 4])
    shown = run(table, parents=[])  # no total published anywhere: nothing to complement
    assert hidden_rows(shown) == [0, 2, 4]
    assert shown["suppression"].tolist() == [SMALL, "", SMALL, "", SMALL]
    assert shown.loc[[0, 2, 4], ["engagement", "enps"]].isna().all().all()
    pd.testing.assert_frame_equal(
        shown.loc[[1, 3], ["engagement", "enps"]], table.loc[[1, 3], ["engagement", "enps"]]
    )
    assert shown["n"].tolist() == [2, 10, 0, 5, 4]  # counts are not answers: they stay
    assert list(shown.columns) == [*table.columns, "suppressed", "suppression"]
    assert shown["suppressed"].dtype == bool


def test_complementary_suppression_hides_the_smallest_sibling():
    shown = run(one_wave([3, 8, 6, 12]), parents=[()])
    assert hidden_rows(shown) == [0, 2]
    assert shown["suppression"].tolist() == [SMALL, "", COMPLEMENTARY, ""]


def test_ties_between_siblings_break_by_table_order():
    assert hidden_rows(run(one_wave([3, 8, 8]), parents=[()])) == [0, 1]
    assert hidden_rows(run(one_wave([8, 3, 8]), parents=[()])) == [0, 1]


def test_the_last_visible_sibling_is_hidden_and_the_total_stays_published():
    table = one_wave([2, 6])
    shown = run(table, parents=[()])
    assert hidden_rows(shown) == [0, 1]
    total = totals_of(table, [()])[()]
    assert not total.loc[0, "suppressed"]  # two hidden rows, 8 respondents: safe
    assert total.loc[0, "engagement"] == pytest.approx((2 * 40 + 6 * 43) / 8)


def test_two_small_siblings_still_below_the_threshold_together_get_a_third():
    shown = run(one_wave([1, 2, 9, 7]), parents=[()])
    assert hidden_rows(shown) == [0, 1, 3]
    assert shown["suppression"].tolist() == [SMALL, SMALL, "", COMPLEMENTARY]


def test_a_total_over_a_single_small_row_is_withheld():
    table = unit_waves([("a", "north", "w1", 9), ("b", "north", "w1", 7), ("a", "north", "w2", 3)])
    shown = run(table, parents=[("wave",)])
    assert hidden_rows(shown) == [2]
    waves = totals_of(table, [("wave",)])[("wave",)]
    assert waves["suppressed"].tolist() == [False, True]
    assert waves["suppression"].tolist() == ["", SMALL]
    assert np.isnan(waves.loc[1, "engagement"])
    assert waves["n"].tolist() == [16, 3]


def test_a_total_over_a_single_complementary_row_is_withheld():
    # Unit c has one row. It is hidden to protect a in wave w1, so unit c's own total would
    # show it, and w1's total minus it would show a.
    table = unit_waves(
        [
            ("a", "north", "w1", 2),
            ("c", "north", "w1", 7),
            ("b", "north", "w1", 20),
            ("a", "north", "w2", 10),
            ("b", "north", "w2", 12),
        ]
    )
    parents = [("wave",), ("unit_id",)]
    shown = run(table, parents)
    assert hidden_rows(shown) == [0, 1, 2, 3, 4]
    units = totals_of(table, parents)[("unit_id",)]
    assert units.set_index("unit_id")["suppression"].to_dict() == {
        "a": "",
        "b": "",
        "c": COMPLEMENTARY,
    }
    assert_no_disclosure(
        shown,
        count="n",
        values=["engagement", "enps"],
        min_group_size=M,
        parents=parents,
        totals=totals_of(table, parents),
    )


def test_groupings_interact_so_suppression_iterates():
    # Hiding c/w1 to protect a/w1 in wave w1 leaves c/w1 alone in region south; protecting it
    # there hides c/w2, and region north needs b/w2.
    table = unit_waves(
        [
            ("a", "north", "w1", 2),
            ("b", "north", "w1", 9),
            ("c", "south", "w1", 7),
            ("a", "north", "w2", 12),
            ("b", "north", "w2", 6),
            ("c", "south", "w2", 20),
        ]
    )
    parents = [("wave",), ("region",), ()]
    shown = run(table, parents)
    assert hidden_rows(shown) == [0, 2, 4, 5]
    totals = totals_of(table, parents)
    assert not any(frame["suppressed"].any() for frame in totals.values())
    check = {"count": "n", "values": ["engagement", "enps"], "min_group_size": M}
    assert_no_disclosure(shown, parents=parents, totals=totals, **check)
    # One grouping at a time is not enough: the wave-only pattern leaks through the regions.
    wave_only = run(table, [("wave",)])
    assert disclosure_risks(wave_only, parents=parents, **check)


def test_rows_without_respondents_give_no_cover():
    table = unit_waves(
        [
            ("u1", "north", "w1", 2),
            ("u2", "south", "w1", 6),
            ("u2", "south", "w2", 0),
            ("u3", "south", "w2", 20),
        ]
    )
    parents = [("wave",), ("region",)]
    shown = run(table, parents)
    # Counting the empty row as cover would leave u3 shown: south's total minus u3 would give
    # u2/w1, and w1's total minus u2/w1 would give u1.
    assert hidden_rows(shown) == [0, 1, 2, 3]
    assert_no_disclosure(
        shown,
        count="n",
        values=["engagement", "enps"],
        min_group_size=M,
        parents=parents,
        totals=totals_of(table, parents),
    )


def test_totals_that_isolate_a_group_by_subtraction_are_withheld():
    # u1 is alone in north/w1. Every parent group passes the sibling rule, yet w1 minus
    # south/w1 is u1: the linear-algebra audit withholds south/w1.
    table = unit_waves(
        [
            ("u1", "north", "w1", 2),
            ("u2", "south", "w1", 8),
            ("u3", "south", "w1", 9),
            ("u4", "north", "w2", 20),
        ]
    )
    parents = [("region", "wave"), ("wave",)]
    shown = run(table, parents)
    assert hidden_rows(shown) == [0, 1, 2]
    totals = totals_of(table, parents)
    region_wave = totals[("region", "wave")]
    assert region_wave["suppression"].tolist() == [SMALL, "", COMPLEMENTARY]
    assert not totals[("wave",)]["suppressed"].any()
    check = {"count": "n", "values": ["engagement", "enps"], "min_group_size": M}
    assert_no_disclosure(shown, parents=parents, totals=totals, **check)
    leaky = {**totals, ("region", "wave"): region_wave.assign(suppressed=[True, False, False])}
    risks = disclosure_risks(shown, parents=parents, totals=leaky, **check)
    assert any("determine" in risk for risk in risks)


def test_safe_totals_are_count_weighted_means_and_only_for_declared_groupings():
    table = one_wave([6, 10, 14])
    total = totals_of(table, [()])[()]
    assert list(total.columns) == ["n", "engagement", "enps", "suppressed", "suppression"]
    assert total.loc[0, "n"] == 30
    assert total.loc[0, "engagement"] == pytest.approx((6 * 40 + 10 * 43 + 14 * 46) / 30)
    with pytest.raises(ValueError, match="not among parents"):
        safe_totals(
            table, by=("wave",), count="n", values=["engagement"], min_group_size=M, parents=[()]
        )


def test_disclosure_risks_flags_a_naive_table():
    table = one_wave([3, 8, 6, 12])
    check = {"count": "n", "values": ["engagement"], "min_group_size": M, "parents": [()]}
    assert any("fewer than 5" in r for r in disclosure_risks(table, **check))
    primary_only = run(table, parents=[])
    assert any("minus its visible rows" in r for r in disclosure_risks(primary_only, **check))
    leaky = run(table, parents=[()]).assign(engagement=table["engagement"])
    assert any("marked suppressed" in r for r in disclosure_risks(leaky, **check))
    assert disclosure_risks(run(table, parents=[()]), **check) == []
    with pytest.raises(AssertionError, match="disclosure risk"):
        assert_no_disclosure(primary_only, **check)


# --- contract: validation, purity, determinism --------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, MIN_GROUP_SIZE_FLOOR - 1])
def test_a_threshold_below_the_floor_is_refused(size):
    table = one_wave([3, 8])
    with pytest.raises(ValueError, match=f"at least {MIN_GROUP_SIZE_FLOOR}"):
        run(table, parents=[()], min_group_size=size)
    with pytest.raises(ValueError, match=f"at least {MIN_GROUP_SIZE_FLOOR}"):
        totals_of(table, [()], min_group_size=size)
    with pytest.raises(ValueError, match=f"at least {MIN_GROUP_SIZE_FLOOR}"):
        disclosure_risks(table, count="n", values=["engagement"], min_group_size=size)
    with pytest.raises(ValueError, match="whole number"):
        run(table, parents=[()], min_group_size=5.0)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="missing from the table: size, eng, division"):
        suppress(
            one_wave([3, 8]),
            count="size",
            values=["eng", "engagement"],
            min_group_size=M,
            parents=[("division",), ("wave",)],
        )


@pytest.mark.parametrize("bad", [[-1, 8], [2.5, 8], [np.nan, 8]])
def test_counts_must_be_whole_and_not_negative(bad):
    table = one_wave([3, 8]).assign(n=bad)
    with pytest.raises(ValueError, match="whole numbers"):
        run(table, parents=[()])


def test_a_bare_grouping_is_not_mistaken_for_a_list_of_groupings():
    with pytest.raises(ValueError, match="tuple of column names"):
        run(one_wave([3, 8]), parents=("wave",))


def test_the_input_is_not_modified():
    table = unit_waves([("a", "north", "w1", 2), ("b", "north", "w1", 9), ("c", "south", "w1", 7)])
    before = table.copy(deep=True)
    parents = [("wave",), ("region",)]
    shown = run(table, parents)
    totals_of(table, parents)
    disclosure_risks(shown, count="n", values=["engagement"], min_group_size=M, parents=parents)
    pd.testing.assert_frame_equal(table, before)


def test_the_pattern_is_deterministic_idempotent_and_blind_to_the_values():
    rng = np.random.default_rng(11)
    table, _ = random_study(rng, M)
    parents = [("wave",), ("region", "wave"), ()]
    first = run(table, parents)
    pd.testing.assert_frame_equal(first, run(table, parents))
    pd.testing.assert_frame_equal(first, run(first, parents))  # suppressing again: no change
    other_answers = table.assign(engagement=rng.uniform(0, 100, len(table)))
    assert run(other_answers, parents)["suppressed"].tolist() == first["suppressed"].tolist()
    reindexed = table.set_axis([f"row{i}" for i in range(len(table))])
    assert run(reindexed, parents)["suppressed"].tolist() == first["suppressed"].tolist()


# --- the attacker ---------------------------------------------------------------------------


GROUPINGS = [("wave",), ("region", "wave"), ("region",), ("unit_id",), ()]


def random_study(rng: np.random.Generator, min_group_size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A unit × wave table of mean scores from made-up answers, and each row's exact sum."""
    rows, sums = [], []
    n_waves = int(rng.integers(1, 4))
    for region in range(int(rng.integers(1, 4))):
        for unit in range(int(rng.integers(1, 4))):
            for wave in range(n_waves):
                if rng.random() < 0.15:
                    continue
                small = rng.random() < 0.35
                n = int(
                    rng.integers(0, min_group_size) if small else rng.integers(min_group_size, 30)
                )
                answers = rng.integers(0, 101, size=n)
                rows.append((f"u{region}{unit}", f"r{region}", f"w{wave}", n))
                sums.append(int(answers.sum()))
    table = pd.DataFrame(rows, columns=["unit_id", "region", "wave", "n"])
    sums = np.array(sums, dtype="float64")
    with np.errstate(invalid="ignore"):
        table["engagement"] = sums / table["n"].to_numpy()
    return table, sums


def members(table: pd.DataFrame, by: tuple, key: tuple) -> np.ndarray:
    inside = np.ones(len(table), dtype=bool)
    for column, value in zip(by, key, strict=True):
        inside &= (table[column] == value).to_numpy()
    return inside


def published_equations(table, totals):
    """Each published total as (rows it covers, its sum = count-weighted mean × count)."""
    for by, frame in totals.items():
        for _, total in frame[~frame["suppressed"]].iterrows():
            key = tuple(total[c] for c in by)
            yield members(table, by, key), total["engagement"] * total["n"], (by, key)


def subtraction_attack(table, shown, totals, sums, min_group_size) -> list[str]:
    """Each published total minus its visible rows; what did that recover?"""
    n = table["n"].to_numpy()
    hidden = shown["suppressed"].to_numpy() & (n > 0)
    visible_sum = np.nan_to_num(shown["engagement"].to_numpy() * n)
    leaks = []
    for inside, total_sum, where in published_equations(table, totals):
        recovered = total_sum - visible_sum[inside].sum()
        group = inside & hidden
        assert recovered == pytest.approx(sums[group].sum(), abs=1e-6)  # the attack works
        if group.any() and (group.sum() < 2 or n[group].sum() < min_group_size):
            leaks.append(f"{where}: rows {np.flatnonzero(group)} recovered")
    return leaks


def small_sets(positions: np.ndarray, n: np.ndarray, min_group_size: int) -> list[list[int]]:
    """Every set of the given rows holding fewer than ``min_group_size`` respondents."""
    found: list[list[int]] = []

    def extend(start: int, chosen: list[int], total: int) -> None:
        for i in range(start, len(positions)):
            if total + n[positions[i]] < min_group_size:
                found.append([*chosen, int(positions[i])])
                extend(i + 1, found[-1], total + n[positions[i]])

    extend(0, [], 0)
    return found


def linear_algebra_attack(table, shown, totals, min_group_size) -> list[str]:
    """Combine all published totals: which sets of small hidden rows are pinned down?

    The hidden rows' sums satisfy ``A s = b``, one equation per published total. The attacker
    learns ``v · s`` exactly when ``v`` is orthogonal to the null space of ``A``.
    """
    n = table["n"].to_numpy()
    unknown = np.flatnonzero(shown["suppressed"].to_numpy() & (n > 0))
    if unknown.size == 0:
        return []
    rows = [inside[unknown] for inside, _, _ in published_equations(table, totals)]
    equations = np.array(rows, dtype="float64").reshape(len(rows), unknown.size)
    free = linalg.null_space(equations) if len(rows) else np.eye(unknown.size)
    candidates = small_sets(unknown[n[unknown] < min_group_size], n, min_group_size)
    if not candidates:
        return []
    indicators = np.array([np.isin(unknown, s) for s in candidates], dtype="float64")
    pinned = np.abs(indicators @ free).max(axis=1, initial=0) < 1e-8
    return [f"rows {s} pinned down" for s, p in zip(candidates, pinned, strict=True) if p]


def attack_random_tables(seed: int, repetitions: int) -> int:
    """Suppress random tables, publish their totals, attack; returns the rows hidden."""
    rng = np.random.default_rng(seed)
    checked_groups = 0
    for _ in range(repetitions):
        min_group_size = int(rng.choice([3, 4, 5, 7]))
        table, sums = random_study(rng, min_group_size)
        parents = [g for g in GROUPINGS if rng.random() < 0.5] or [()]
        shown = run(table, parents, min_group_size)
        totals = totals_of(table, parents, min_group_size)
        n = table["n"].to_numpy()
        assert shown.loc[n < min_group_size, "suppressed"].all()
        assert shown.loc[shown["suppressed"], "engagement"].isna().all()
        assert subtraction_attack(table, shown, totals, sums, min_group_size) == []
        assert linear_algebra_attack(table, shown, totals, min_group_size) == []
        assert_no_disclosure(
            shown,
            count="n",
            values=["engagement"],
            min_group_size=min_group_size,
            parents=parents,
            totals=totals,
        )
        checked_groups += int(shown["suppressed"].sum())
    return checked_groups


def test_an_attacker_never_recovers_a_small_group():
    assert attack_random_tables(seed=20240331, repetitions=120) > 200  # many groups were hidden


def test_the_mixed_integer_audit_protects_as_well(monkeypatch):
    """Large tables skip enumerating candidate sets; force that path on small ones."""
    monkeypatch.setattr(privacy, "_ENUMERATION_LIMIT", 0)
    assert attack_random_tables(seed=99, repetitions=30) > 40


def test_the_attacker_beats_primary_suppression_alone():
    """The attack is real: without complementary suppression it recovers small groups."""
    rng = np.random.default_rng(7)
    leaked = 0
    for _ in range(40):
        table, sums = random_study(rng, M)
        parents = [("wave",), ("region", "wave")]
        shown = run(table, parents=[])
        naive = {}
        for by in parents:
            grouped = table.assign(weighted=sums).groupby(list(by), sort=True)
            frame = grouped[["n", "weighted"]].sum().reset_index()
            frame["engagement"] = frame["weighted"] / frame["n"]
            naive[by] = frame.assign(suppressed=frame["n"] < M)
        leaks = subtraction_attack(table, shown, naive, sums, M)
        leaks += linear_algebra_attack(table, shown, naive, M)
        leaked += bool(leaks)
    assert leaked >= 10


# --- the release: Laplace noise from a secret ---------------------------------------------------


def _release(tag: str = "test", epsilon: float = 1.0) -> Release:
    return Release(epsilon, hashlib.sha256(tag.encode()).digest())


def test_noise_has_the_laplace_spread_it_claims():
    """Over many figures the noise of a 0–100 mean of n answers has SD √2 · 100 / (n ε).

    The sample SD of N Laplace draws has a relative standard error of about √(5/(4N))
    (fourth moment 24 b⁴ against a variance 2 b²: Var(s²) ≈ 20 b⁴ / N, and SE(s) ≈ SE(s²)/(2σ));
    with N = 20,000 that is 0.79%, so four standard errors allow 3.2%.
    """
    figures = [("unit_wave", "engagement_index", f"u{i}", "2024-03-31") for i in range(20_000)]
    tolerance = 4 * np.sqrt(5 / 4 / len(figures))
    for epsilon in (1.0, 0.5):
        release = _release("calibration", epsilon)
        for n in (5, 10, 50):
            noisy, variance = privacy.laplace_mechanism(
                np.full(len(figures), 60.0), privacy.mean_sensitivity(100.0, n), figures, release
            )
            b = 100 / (n * epsilon)
            noise = noisy - 60.0
            assert variance == pytest.approx(np.full(len(figures), 2 * b**2))
            assert noise.std() == pytest.approx(np.sqrt(2) * b, rel=tolerance)
            assert abs(noise.mean()) < 4 * np.sqrt(2) * b / np.sqrt(len(figures))
            # the shape, not only the spread: mean |noise| = b and P(|noise| > b ln 20) = 5%
            assert np.abs(noise).mean() == pytest.approx(b, rel=tolerance)
            beyond = (np.abs(noise) > b * np.log(20)).mean()
            assert abs(beyond - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(figures))
    draws = privacy.standard_laplace(_release("calibration"), figures[:5000])
    assert stats.kstest(draws, stats.laplace.cdf).pvalue > 0.001


def test_noise_is_a_function_of_the_secret_and_the_figure_only():
    release = _release("one")
    figures = [("unit_wave", "engagement_index", "u1", "2024-03-31"), ("quartiles", "m", 1)]
    first = privacy.standard_laplace(release, figures)
    again = privacy.standard_laplace(_release("one"), figures[::-1])[::-1]
    np.testing.assert_array_equal(first, again)  # same secret and name: the same draw
    other = privacy.standard_laplace(_release("two"), figures)
    assert (first != other).all()
    # draws under two secrets are unrelated: correlation within its standard error
    many = [("unit_wave", "engagement_index", f"u{i}", "w") for i in range(5000)]
    a = privacy.standard_laplace(_release("one"), many)
    b = privacy.standard_laplace(_release("two"), many)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / np.sqrt(len(many))
    # a missing value stays missing and costs no draw; an empty group has no sensitivity
    noisy, variance = privacy.laplace_mechanism(
        [np.nan, 50.0, 50.0],
        privacy.mean_sensitivity(100.0, [5, 0, 5]),
        [("a",), ("b",), ("c",)],
        release,
    )
    assert np.isnan(noisy[:2]).all() and np.isnan(variance[:2]).all() and np.isfinite(noisy[2])


def test_the_key_hides_in_repr_and_refuses_nonsense():
    release = _release()
    assert release.key.hex() not in repr(release) and "key" not in repr(release)
    with pytest.raises(ValueError, match="positive"):
        Release(0.0, release.key)
    with pytest.raises(ValueError, match="secret bytes"):
        Release(1.0, b"short")


def test_the_secret_comes_from_every_staff_side_value_not_from_published_hashes(
    small_study, tmp_path
):
    from analysis.data.load import file_sha256, load_dataset
    from analysis.data.parameters import Parameters

    dataset = load_dataset(small_study)
    secret = privacy.data_secret(dataset)
    assert secret == privacy.data_secret(load_dataset(small_study))  # reproducible
    published = {bytes.fromhex(file_sha256(p)) for p in small_study.iterdir() if p.is_file()}
    assert secret not in published
    # a customer's join date, one day later: the staff-side data, and so the secret, stay
    customers = small_study / "customers.csv"
    text = customers.read_text()
    line = text.splitlines()[1]
    date = line.split(",")[2]
    later = (pd.Timestamp(date) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    customers.write_text(text.replace(line, line.replace(date, later), 1))
    assert privacy.data_secret(load_dataset(small_study)) == secret
    # one unit's name, one letter longer: a staff-side byte gives an unrelated secret
    units = small_study / "units.csv"
    text = units.read_text()
    line = text.splitlines()[1]
    fields = line.split(",")
    fields[1] += "x"
    units.write_text(text.replace(line, ",".join(fields), 1))
    assert privacy.data_secret(load_dataset(small_study)) != secret
    # the same tables held in memory are keyed on their values
    from analysis.data.load import dataset_from_tables

    memory = dataset_from_tables(dataset.tables())
    assert privacy.data_secret(memory) == privacy.data_secret(dataset_from_tables(dataset.tables()))
    assert privacy.data_secret(memory) == secret  # content, not file bytes, is keyed
    # every parameter is bound in: another seed or budget is another key
    keys = {
        privacy.release_for(dataset, parameters).key
        for parameters in (Parameters(), Parameters(seed=1), Parameters(privacy_epsilon=3.0))
    }
    assert len(keys) == 3


def test_widened_interval_adds_the_noise_in_quadrature():
    low, high = privacy.widened_interval(50.0, 45.0, 57.0, 2 * 3.0**2, 0.95)
    z = stats.norm.ppf(0.975)
    assert 50 - low == pytest.approx(np.sqrt(5**2 + z**2 * 18))
    assert high - 50 == pytest.approx(np.sqrt(7**2 + z**2 * 18))
