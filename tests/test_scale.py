"""Scales that users reach: many waves, many one-person units (issue 10).

No timed assertions (time is measured by ``make bench``, see ``analysis/studies/benchmark.py``).
What is tested here:

* the edge that used to fail: a study of one-person units (every unit-wave suppressed) finishes
  with "not estimable" rows instead of a ``ZeroDivisionError``;
* the shortcuts that make the work linear give the answers of the direct computations they
  replace: wave effects absorbed instead of spelled out as dummy columns, unit and wave effects
  by conjugate gradients, windows and risk sets by binary search instead of a scan per wave, the
  disclosure audit's classes without the equations × unknowns matrix;
* growth by structure: no least-squares problem or information matrix gets wider with the
  number of waves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.data import load
from analysis.data.load import load_dataset
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign
from analysis.measures import nps, panel, privacy
from analysis.models import estimate, hazard, linkage, registry
from tests.conftest import write_study

# --------------------------------------------------------------------------------------------
# The edge: one-person units


@pytest.fixture(scope="module")
def one_person_study(tmp_path_factory):
    """500 units of exactly one person over three waves: every unit-wave is suppressed."""
    design = StudyDesign(
        seed=21, n_units=500, n_waves=3, median_unit_size=1.0, min_unit_size=1, max_unit_size=1
    )
    return load_dataset(
        write_study(tmp_path_factory.mktemp("one_person") / "study", design, "parquet")
    )


def test_one_person_units_finish_with_a_clear_result(one_person_study):
    """Before: ``nps_on_engagement_within`` divided 0/0 and the quartile estimands raised, so
    100,000 one-person units ended in an error. Now every estimand has its row: numbers where
    the data support them, "not estimable: <why>" where they cannot."""
    results = estimate.estimate_all(one_person_study, Parameters(bootstrap_draws=200))
    rows = results.estimates.set_index("estimand")
    assert len(rows) == len(registry.applicable(one_person_study))
    for name in ("nps_quartile_gap", "retention_quartile_gap"):
        assert rows.loc[name, "method"].startswith("not estimable: too few unit-waves")
        assert np.isnan(rows.loc[name, "estimate"]) and rows.loc[name, "n_obs"] == 0
    # one person is always in the same fixed half: no split-half correction is possible
    assert rows.loc["nps_on_engagement_within", "method"].startswith("not estimable")
    for name in ("nps_on_engagement", "churn_hazard_on_engagement"):
        assert np.isfinite(rows.loc[name, ["estimate", "std_error", "p_value"]].astype(float)).all()
    assert results.quartiles.empty
    assert list(results.quartiles.columns) == list(linkage.QUARTILE_COLUMNS)
    assert results.unit_wave["suppressed"].all()
    assert results.unit_wave["engagement_index"].isna().all()


def test_one_cluster_gives_no_standard_error_instead_of_dividing_by_zero():
    one_unit = pd.DataFrame({"total": [300.0], "n": [10.0]}, index=["u1"])
    other = pd.DataFrame({"total": [100.0], "n": [5.0]}, index=["u1"])
    gap = nps.clustered_mean_difference(one_unit, other)  # ZeroDivisionError before
    assert np.isnan(gap["std_error"]) and gap["n_units"] == 1
    empty = pd.DataFrame({"total": [0.0], "n": [0.0]}, index=["u2"])
    assert np.isnan(nps.clustered_mean_difference(one_unit, empty)["estimate"])
    counts = pd.DataFrame({"promoters": [3], "passives": [1], "detractors": [1]}, index=["u1"])
    assert np.isnan(nps.clustered_nps_difference(counts, counts)["std_error"])


def test_within_estimate_of_a_single_unit_is_not_estimable(small_study_master):
    full = panel.unit_wave_panel(load_dataset(small_study_master))
    half_b = panel.half_columns(0)["engagement_half_b"]
    facing = linkage.customer_facing_rows(full).dropna(subset=[half_b])
    only = full[full["unit_id"] == facing["unit_id"].iloc[0]]
    row = linkage.nps_on_engagement_within(only)  # ZeroDivisionError before (G − 1 = 0)
    assert row["method"].startswith("not estimable") and np.isnan(row["estimate"])
    assert linkage.engagement_on_prior_nps(only)["method"].startswith("not estimable")


# --------------------------------------------------------------------------------------------
# Absorbed wave effects give the spelled-out answers


def _random_panel(seed: int, n_units: int = 40, n_waves: int = 30) -> pd.DataFrame:
    """An unbalanced unit × wave panel with regions and positive weights."""
    rng = np.random.default_rng(seed)
    unit, wave = np.meshgrid(np.arange(n_units), np.arange(n_waves), indexing="ij")
    keep = rng.random(unit.size) < 0.7
    rows = pd.DataFrame(
        {
            "unit_id": [f"u{u:03d}" for u in unit.ravel()[keep]],
            "wave": pd.Timestamp("2020-03-31") + pd.to_timedelta(91 * wave.ravel()[keep], unit="D"),
        }
    )
    rows["region"] = np.array(["North", "South", "East"])[unit.ravel()[keep] % 3]
    rows["weight"] = rng.uniform(0.2, 3.0, len(rows))
    for name in ("y", "x1", "x2"):
        rows[name] = rng.normal(size=len(rows)) + 0.1 * wave.ravel()[keep]
    return rows


def test_absorbed_least_squares_equals_the_spelled_out_design():
    rows = _random_panel(1)
    w = rows["weight"].to_numpy()
    y = rows["y"].to_numpy()
    spelled, absorbed = linkage.covariate_design(rows), linkage.absorbed_design(rows)
    assert absorbed.n_columns == spelled.shape[1]
    assert absorbed.dense.shape[1] == 2  # the regions; no column per wave
    fitted, residual = linkage.weighted_residuals(y, spelled.to_numpy(float), w)
    fitted_a, residual_a = linkage.weighted_residuals(y, absorbed, w)
    np.testing.assert_allclose(residual_a, residual, atol=1e-10)
    np.testing.assert_allclose(fitted_a, fitted, atol=1e-10)


def test_cluster_robust_fit_matches_statsmodels_on_the_spelled_out_design():
    import statsmodels.api as sm

    rows = _random_panel(2)
    predictors = rows[["x1", "x2"]]
    spelled = pd.concat([predictors, linkage.covariate_design(rows)], axis=1)
    reference = sm.WLS(rows["y"], spelled.to_numpy(float), weights=rows["weight"]).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(rows["unit_id"])[0]}
    )
    params, bse = linkage._cluster_fit(
        rows["y"], predictors, linkage.absorbed_design(rows), rows["weight"], rows["unit_id"]
    )
    np.testing.assert_allclose(params, reference.params[:2], rtol=1e-9)
    np.testing.assert_allclose(bse, reference.bse[:2], rtol=1e-9)


@pytest.mark.parametrize("seed", [3, 4])
def test_two_way_residuals_equal_least_squares_on_unit_and_wave_dummies(seed):
    rows = _random_panel(seed, n_units=25, n_waves=40)
    if seed == 4:  # two groups of units that never share a wave: a rank-deficient design
        late = rows["unit_id"] >= "u012"
        rows = rows[~late & (rows["wave"] < "2025-01-01") | late & (rows["wave"] >= "2025-01-01")]
    units = pd.factorize(rows["unit_id"])[0]
    waves = pd.factorize(rows["wave"])[0]
    w = rows["weight"].to_numpy()
    values = rows[["y", "x1"]].to_numpy()
    dummies = np.column_stack([np.eye(units.max() + 1)[units], np.eye(waves.max() + 1)[waves]])
    root = np.sqrt(w)
    coef = np.linalg.lstsq(dummies * root[:, None], values * root[:, None], rcond=None)[0]
    np.testing.assert_allclose(
        linkage.two_way_residuals(values, units, waves, w), values - dummies @ coef, atol=1e-9
    )


def _cells(seed: int, n_units: int = 30, n_waves: int = 25) -> pd.DataFrame:
    """Hazard cells with engagement, a mediator, a region, tenure bands and waves."""
    rng = np.random.default_rng(seed)
    n = n_units * n_waves * 3
    cells = pd.DataFrame(
        {
            "unit_id": [f"u{u:03d}" for u in rng.integers(0, n_units, n)],
            "wave": rng.integers(0, n_waves, n),
            "band": rng.integers(0, 4, n),
            "engagement_sd": rng.normal(size=n),
            "nps_10": rng.normal(size=n),
        }
    )
    cells["region"] = np.where(cells["unit_id"] < "u015", "North", "South")
    cells["exposure"] = rng.uniform(50, 400, n)
    log_rate = -1.5 - 0.2 * cells["engagement_sd"] + 0.1 * cells["band"] + 0.02 * cells["wave"]
    cells["events"] = rng.poisson(cells["exposure"] / 365.25 * np.exp(log_rate))
    return cells


def test_absorbed_poisson_fit_and_its_steps_equal_the_spelled_out_ones():
    cells = _cells(5)
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    columns, covariates = ["engagement_sd", "nps_10"], ["region", "wave"]
    spelled = hazard.hazard_design(cells, columns, covariates)
    absorbed = hazard.hazard_absorbed_design(cells, columns, covariates)
    full = hazard.poisson_fit(events, exposure, spelled.to_numpy(float))
    beta, alpha = hazard.poisson_fit_absorbed(events, exposure, absorbed)
    np.testing.assert_allclose(beta, full[1 : 1 + absorbed.dense.shape[1]], rtol=1e-8)
    mu = exposure * np.exp(absorbed.dense @ beta + alpha[absorbed.groups])
    np.testing.assert_allclose(mu, exposure * np.exp(spelled.to_numpy(float) @ full), rtol=1e-8)

    # one Newton step on some of the cells, from parameters off the optimum
    x = spelled.to_numpy(float)
    start = full + 0.05
    rows = cells["unit_id"].to_numpy() != "u007"
    mu = exposure * np.exp(x @ start)
    step = np.linalg.lstsq(
        hazard.information(x[rows], mu[rows]), x[rows].T @ (events - mu)[rows], rcond=None
    )[0]
    moved = hazard.absorbed_newton_step(absorbed, events, mu, rows)
    np.testing.assert_allclose(moved, step[1 : 1 + len(moved)], rtol=1e-7)

    # the bootstrap's influence of each unit on the engagement coefficient: I⁻¹ U_g
    dense_fit = hazard.poisson_with_cluster_scores(events, exposure, spelled, cells["unit_id"])
    fit = hazard.poisson_with_cluster_scores(events, exposure, absorbed, cells["unit_id"])
    np.testing.assert_allclose(
        fit.cluster_scores @ np.linalg.inv(fit.information)[:, 0],
        dense_fit.cluster_scores @ np.linalg.inv(dense_fit.information)[:, 1],
        rtol=1e-6,
        atol=1e-12,
    )

    # each unit left out, one step on the efficient score
    codes, units = pd.factorize(cells["unit_id"])
    nuisance = np.delete(x, 1, axis=1)
    mu = exposure * np.exp(x @ full)
    efficient = (
        x[:, 1]
        - nuisance
        @ np.linalg.lstsq(
            hazard.information(nuisance, mu), nuisance.T @ (mu * x[:, 1]), rcond=None
        )[0]
    )
    own = np.bincount(codes, efficient * (events - mu), len(units))
    own_information = np.bincount(codes, mu * efficient**2, len(units))
    expected = full[1] - own / (np.sum(mu * efficient**2) - own_information)
    without = hazard.poisson_without_units(
        absorbed, beta, alpha, events, cells["exposure"].to_numpy(float) / 365.25, codes, len(units)
    )
    np.testing.assert_allclose(without, expected, rtol=1e-7)


def _answers_and_customers(seed: int):
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, 3_000), unit="D")
    answers = pd.DataFrame(
        {
            "unit_id": pd.array([f"u{u}" for u in rng.integers(0, 12, 3_000)], dtype="string"),
            "responded_on": days,
            "likelihood_to_recommend": rng.integers(0, 11, 3_000),
        }
    )
    since = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 1600, 800), unit="D")
    churned = since + pd.to_timedelta(rng.integers(1, 900, 800), unit="D")
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(800)],
            "unit_id": pd.array([f"u{u}" for u in rng.integers(0, 12, 800)], dtype="string"),
            "since": since,
            "churned_on": churned.where(rng.random(800) < 0.6),
        }
    )
    waves = pd.date_range("2020-03-31", periods=14, freq="QE").to_numpy()
    return answers, customers, waves


@pytest.mark.parametrize("window", [30, 91, 200])  # 200 days: windows overlap
@pytest.mark.parametrize("before", [False, True])
def test_nps_windows_equal_a_wave_by_wave_count(window, before):
    answers, _, waves = _answers_and_customers(6)
    as_of = pd.Timestamp(waves[9]) + pd.Timedelta(days=20)
    counts = panel.nps_counts_in_windows(answers, waves, window, before=before, as_of=as_of)
    score = answers["likelihood_to_recommend"]
    expected = []
    for wave in waves:
        low, high = (
            (wave - np.timedelta64(window, "D"), wave)
            if before
            else (
                wave,
                wave + np.timedelta64(window, "D"),
            )
        )
        high = min(high, as_of.to_datetime64())
        inside = answers[(answers["responded_on"] > low) & (answers["responded_on"] <= high)]
        for unit, group in inside.groupby("unit_id"):
            s = score[group.index]
            expected.append(
                (unit, wave, (s >= 9).sum(), ((s >= 7) & (s <= 8)).sum(), (s <= 6).sum())
            )
    expected = pd.DataFrame(
        expected, columns=["unit_id", "wave", "promoters", "passives", "detractors"]
    )
    got = counts[["unit_id", "wave", "promoters", "passives", "detractors"]]
    assert (
        got.astype({"unit_id": str}).values.tolist()
        == expected.astype({"unit_id": str}).values.tolist()
    )


def test_risk_sets_equal_a_wave_by_wave_scan():
    _, customers, waves = _answers_and_customers(7)
    as_of = pd.Timestamp(waves[-1]) + pd.Timedelta(days=45)
    at_waves = panel.customers_at_waves(customers, waves, 91, as_of).set_index(["wave", "unit_id"])
    episodes = hazard.churn_episodes(customers, waves, as_of)
    retained = hazard.retention_by_unit_wave(
        customers, pd.DataFrame({"wave": waves}), 365, as_of
    ).set_index(["wave", "unit_id"])
    churned = customers["churned_on"].fillna(pd.Timestamp.max.normalize())
    bounds = [*waves, as_of.to_datetime64()]
    for k, wave in enumerate(waves):
        wave = pd.Timestamp(wave)
        at_risk = (customers["since"] <= wave) & (churned > wave)
        end = min(wave + pd.Timedelta(days=91), as_of)
        for unit, group in customers[at_risk].groupby("unit_id"):
            row = at_waves.loc[(wave, unit)]
            assert row["customers_at_risk"] == len(group)
            assert row["churned_in_window"] == (churned[group.index] <= end).sum()
            stop = np.minimum(churned[group.index], end)
            assert row["exposure_days"] == pytest.approx((stop - wave).dt.days.sum())
            if wave + pd.Timedelta(days=365) <= as_of:
                kept = (churned[group.index] > wave + pd.Timedelta(days=365)).sum()
                assert retained.loc[(wave, unit), "at_risk"] == len(group)
                assert retained.loc[(wave, unit), "retained"] == kept
        # an episode for every customer whose [since, end) overlaps the wave's interval
        end_of_risk = customers["churned_on"].where(customers["churned_on"] <= as_of, as_of)
        overlap = (customers["since"] < bounds[k + 1]) & (end_of_risk > bounds[k])
        overlap &= customers["since"] < end_of_risk
        assert (episodes["wave"] == wave).sum() == overlap.sum()


# --------------------------------------------------------------------------------------------
# The disclosure audit without the equations × unknowns matrix


def test_disclosure_classes_match_the_dense_equation_matrix():
    rng = np.random.default_rng(9)
    for _ in range(50):
        n = int(rng.integers(5, 80))
        table = pd.DataFrame(
            {"a": rng.integers(0, 6, n), "b": rng.integers(0, 4, n), "c": rng.integers(0, 3, n)}
        )
        counts = rng.integers(0, 8, n)
        parents = [("a",), ("b", "c"), ("c",), ()][: int(rng.integers(1, 5))]
        groups = privacy._groups(table, parents, counts)
        published = [g for g in groups if rng.random() < 0.8]
        unknown = np.flatnonzero((rng.random(n) < 0.6) & (counts > 0))
        matrix = privacy._equation_matrix(published, unknown, n)
        matrix = matrix[matrix.any(axis=1)]
        patterns, inverse = np.unique(matrix.T, axis=0, return_inverse=True)
        keys, classes, kept = privacy._unknown_classes(published, unknown, n)
        assert kept == matrix.shape[0]
        np.testing.assert_array_equal(classes, inverse.ravel())
        rebuilt = np.zeros((len(keys), kept))
        for c, key in enumerate(keys):
            rebuilt[c, key[key >= 0]] = 1.0
        np.testing.assert_array_equal(rebuilt, patterns)


# --------------------------------------------------------------------------------------------
# Growth by structure


def test_no_least_squares_problem_widens_with_the_number_of_waves(tmp_path, monkeypatch):
    """Every fit on 3 waves and on 12 waves of the same units solves problems of the same width.

    The work of a least-squares fit or an information matrix is rows × columns²; with the wave
    effects spelled out, columns grew with the waves and 1,000 waves did not finish. Counting
    columns instead of seconds keeps this test independent of the machine.
    """
    widths: list[int] = []
    lstsq, information = np.linalg.lstsq, hazard.information

    def recording_lstsq(a, b, *args, **kwargs):
        widths.append(np.shape(a)[1] if np.ndim(a) == 2 else 1)
        return lstsq(a, b, *args, **kwargs)

    def recording_information(design, weights):
        widths.append(design.shape[1])
        return information(design, weights)

    monkeypatch.setattr(np.linalg, "lstsq", recording_lstsq)
    monkeypatch.setattr(hazard, "information", recording_information)
    widest = {}
    for waves in (3, 12):
        design = StudyDesign(seed=12, n_units=20, n_waves=waves, median_unit_size=8)
        dataset = load_dataset(write_study(tmp_path / f"w{waves}", design, "parquet"))
        as_of = load.default_as_of(dataset)
        rows = panel.unit_wave_panel(dataset, 91, as_of, ("region",))
        widths.clear()
        linkage.nps_on_engagement(rows)
        linkage.nps_on_engagement_within(rows)
        linkage.engagement_on_prior_nps(rows)
        model = estimate.churn_model(dataset, rows, as_of, ("region",))
        _, cells = estimate.churn_hazard_on_engagement(
            dataset, rows, as_of, ("region",), 0.95, model=model
        )
        estimate.nps_mediated_share(rows, cells, ("region",), Parameters(bootstrap_draws=50))
        widest[waves] = max(widths)
    assert widest[12] == widest[3] < 20
