"""The building blocks of the linkage models, each against a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.measures.intervals import unit_multiplicities
from analysis.models import hazard, power
from analysis.models.linkage import calibrate


def test_calibration_removes_attenuation_from_noisy_unit_means():
    """Slope of y on a noisy mean is attenuated by the reliability; on the calibrated mean not.

    2,000 units, true slope 2, signal SD 1, noise variance 0.5–3 by unit (reliability ≈ .45).
    The slope's SE here is about 0.05, so 0.15 is three SE.
    """
    rng = np.random.default_rng(11)
    n = 2000
    truth = rng.normal(0, 1, n)
    noise_var = rng.uniform(0.5, 3, n)
    observed = truth + rng.normal(0, np.sqrt(noise_var))
    y = 2 * truth + rng.normal(0, 1, n)
    design = pd.DataFrame({"const": np.ones(n)})
    calibrated, signal = calibrate(pd.Series(observed), pd.Series(noise_var), design)
    naive_slope = np.polyfit(observed, y, 1)[0]
    calibrated_slope = np.polyfit(calibrated, y, 1)[0]
    assert naive_slope < 1.3  # attenuated, as the theory says
    assert calibrated_slope == pytest.approx(2.0, abs=0.15)
    assert signal == pytest.approx(1.0, abs=0.1)


# Freireich et al. (1963) leukaemia remission data (weeks), as analysed by Gehan (1965) and Cox
# (1972). Status 0 = censored.
SIX_MP = [
    (6, 1),
    (6, 1),
    (6, 1),
    (6, 0),
    (7, 1),
    (9, 0),
    (10, 1),
    (10, 0),
    (11, 0),
    (13, 1),
    (16, 1),
    (17, 0),
    (19, 0),
    (20, 0),
    (22, 1),
    (23, 1),
    (25, 0),
    (32, 0),
    (32, 0),
    (34, 0),
    (35, 0),
]
PLACEBO = [(t, 1) for t in (1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23)]


def _gehan() -> pd.DataFrame:
    rows = [(t, s, 0.0) for t, s in SIX_MP] + [(t, s, 1.0) for t, s in PLACEBO]
    frame = pd.DataFrame(rows, columns=["stop", "event", "placebo"])
    return frame.assign(start=0.0, unit_id=[f"p{i}" for i in range(len(frame))])


def test_cox_matches_the_published_leukaemia_fit():
    """Breslow ties: coefficient 1.509 (SE 0.410) for placebo vs 6-MP, hazard ratio 4.523.

    Published in Kleinbaum & Klein (2012), *Survival Analysis: A Self-Learning Text*, 3rd ed.,
    ch. 3 (remission data, Rx). With one subject per cluster the Lin–Wei robust SE is a
    different quantity; we check the point estimate and the model-based SE.
    """
    from statsmodels.duration.hazard_regression import PHReg

    data = _gehan()
    fit = PHReg(
        data["stop"], data[["placebo"]], status=data["event"], entry=data["start"], ties="breslow"
    ).fit()
    assert fit.params[0] == pytest.approx(1.509, abs=5e-4)
    assert fit.bse[0] == pytest.approx(0.410, abs=5e-4)
    params, cov = hazard.cox_cluster_robust(data, data[["placebo"]], data["unit_id"])
    assert params[0] == pytest.approx(fit.params[0])
    assert np.exp(params[0]) == pytest.approx(4.523, abs=5e-3)
    assert 0.3 < np.sqrt(cov[0, 0]) < 0.6


def test_splitting_subjects_into_episodes_leaves_the_cox_fit_unchanged():
    """Counting-process episodes (delayed entry) are the same likelihood as whole subjects."""
    data = _gehan()
    split = []
    for _, row in data.iterrows():
        cut = 5.0
        if row["stop"] > cut:
            split.append({**row, "stop": cut, "event": 0})
            split.append({**row, "start": cut})
        else:
            split.append(dict(row))
    episodes = pd.DataFrame(split)
    whole, whole_cov = hazard.cox_cluster_robust(data, data[["placebo"]], data["unit_id"])
    parts, parts_cov = hazard.cox_cluster_robust(
        episodes, episodes[["placebo"]], episodes["unit_id"]
    )
    assert parts[0] == pytest.approx(whole[0], abs=1e-8)
    assert parts_cov[0, 0] == pytest.approx(whole_cov[0, 0], rel=1e-6)


def test_episodes_start_at_the_first_wave_and_end_at_churn():
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "unit_id": ["u", "u", "v"],
            "since": pd.to_datetime(["2020-01-01", "2024-05-01", "2024-02-01"]),
            "churned_on": pd.to_datetime([None, "2024-08-01", "2024-03-01"]),
        }
    )
    waves = pd.to_datetime(["2024-03-31", "2024-06-30"])
    episodes = hazard.churn_episodes(customers, waves, pd.Timestamp("2024-09-30"))
    a = episodes[episodes["customer_id"] == "a"]
    # delayed entry: tenure at the first wave, not at joining
    assert a["start"].iloc[0] == (pd.Timestamp("2024-03-31") - pd.Timestamp("2020-01-01")).days
    assert a["event"].sum() == 0 and len(a) == 2
    b = episodes[episodes["customer_id"] == "b"]
    assert list(b["event"]) == [0, 1]
    assert b["stop"].iloc[-1] == (pd.Timestamp("2024-08-01") - pd.Timestamp("2024-05-01")).days
    assert "c" not in set(episodes["customer_id"])  # churned before the study began


def test_poisson_cells_agree_with_cox_on_a_constant_hazard():
    """With a constant baseline hazard both models estimate the same log hazard ratio.

    3,000 subjects, true log HR 0.5; the Cox SE is about 0.04, and the two estimators differ
    by much less than one SE.
    """
    rng = np.random.default_rng(5)
    n = 3000
    group = rng.integers(0, 2, n).astype(float)
    time = rng.exponential(1 / (0.001 * np.exp(0.5 * group)))
    censor = 700.0
    frame = pd.DataFrame(
        {
            "start": 0.0,
            "stop": np.minimum(time, censor),
            "event": (time <= censor).astype(int),
            "group": group,
            "unit_id": [f"u{i % 300}" for i in range(n)],
            "wave": 1,
        }
    )
    cox, cov = hazard.cox_cluster_robust(frame, frame[["group"]], frame["unit_id"])
    cells = hazard.hazard_cells(frame, ["group"])
    design = pd.concat(
        [
            pd.DataFrame({"const": 1.0}, index=cells.index),
            cells[["group"]],
            pd.get_dummies(cells["band"], prefix="band", drop_first=True, dtype=float),
        ],
        axis=1,
    ).to_numpy(float)
    beta = hazard.poisson_fit(
        cells["events"].to_numpy(float), cells["exposure"].to_numpy(float), design
    )
    assert cox[0] == pytest.approx(0.5, abs=3 * np.sqrt(cov[0, 0]))
    assert beta[1] == pytest.approx(cox[0], abs=0.25 * np.sqrt(cov[0, 0]))


def test_power_at_the_minimum_detectable_effect_is_the_target():
    mde = power.minimum_detectable_effect(std_error=2.0, df=200, alpha=0.05, power=0.8)
    assert mde == pytest.approx((1.9719 + 0.8434) * 2.0, abs=0.01)  # t quantiles, 200 df
    assert float(power.power_at(mde, 2.0, 200)) == pytest.approx(0.80, abs=0.005)
    assert float(power.power_at(0.0, 2.0, 200)) == pytest.approx(0.05, abs=1e-6)
    curve = power.power_curve(2.0, 200, [0, 2, 4, 6, 8])
    assert curve["power"].is_monotonic_increasing


def test_power_of_a_simulated_test_matches_the_formula():
    """Reject rate of a t test over 4,000 simulated studies vs power_at; MC SE ≈ .008."""
    rng = np.random.default_rng(9)
    se, df, effect = 1.0, 60, 2.5
    estimates = rng.normal(effect, se, 4000)
    scale = np.sqrt(rng.chisquare(df, 4000) / df)  # estimated SE varies as in a t test
    rejected = np.abs(estimates / (se * scale)) > 2.0003  # t_{.975, 60}
    assert rejected.mean() == pytest.approx(float(power.power_at(effect, se, df)), abs=0.03)


def test_cluster_robust_cox_matches_statsmodels_sandwich():
    """Our Lin–Wei sandwich equals statsmodels' robust PHReg covariance up to the CR1 factor.

    statsmodels' ``fit(groups=...)`` uses Σ U_g U_gᵀ without G/(G − 1); ours adds it. Checked
    with each subject its own cluster and with the trial's 21 matched pairs as clusters.
    """
    from statsmodels.duration.hazard_regression import PHReg

    data = _gehan()
    pairs = pd.Series([f"pair{i % 21}" for i in range(len(data))])
    for clusters in (data["unit_id"], pairs):
        reference = PHReg(
            data["stop"],
            data[["placebo"]],
            status=data["event"],
            entry=data["start"],
            ties="breslow",
        ).fit(groups=clusters.to_numpy())
        _, cov = hazard.cox_cluster_robust(data, data[["placebo"]], clusters)
        g = clusters.nunique()
        assert np.sqrt(cov[0, 0] * (g - 1) / g) == pytest.approx(reference.bse[0], rel=1e-6)


@pytest.fixture(scope="module")
def churn_study(tmp_path_factory):
    """A full-size synthetic study (300 units, 8 waves; about 25,000 customers)."""
    from analysis.data.load import default_as_of, load_dataset
    from analysis.data.synth import StudyDesign
    from analysis.measures.panel import unit_wave_panel
    from analysis.models.estimate import calibrated_engagement_sd
    from tests.conftest import write_study

    directory = write_study(tmp_path_factory.mktemp("churn") / "study", StudyDesign(seed=11))
    dataset = load_dataset(directory)
    as_of = default_as_of(dataset)
    panel = unit_wave_panel(dataset, 91, as_of, ("region",))
    units = panel[panel["customer_facing"].fillna(True)].dropna(subset=["engagement_index"])
    units = units.assign(engagement_sd=calibrated_engagement_sd(panel, ("region",)))
    return dataset, panel, units, as_of


def test_cells_give_the_customer_level_cox_hazard_ratio(churn_study):
    """The shortcut behind ``churn_hazard_on_engagement`` against the model it replaces.

    Customer-level Cox on the split episodes (time-varying engagement, delayed entry, wave and
    region effects, Lin–Wei errors clustered by unit) and the piecewise-exponential model on
    unit × wave × tenure-band cells estimate the same log hazard ratio: they differ only in the
    baseline (free in tenure vs steps). The issue asks for agreement well within one SE; we
    require a quarter of one, for the estimate and for the clustered SE itself.
    """
    from analysis.models.estimate import churn_hazard_on_engagement

    dataset, panel, units, as_of = churn_study
    row, cells = churn_hazard_on_engagement(dataset, panel, as_of, ("region",), 0.95)
    cox, cov, episodes = hazard.customer_level_cox(dataset.customers, units, as_of, "engagement_sd")
    cox_se = np.sqrt(cov[0, 0])
    assert np.log(row["estimate"]) == pytest.approx(cox[0], abs=0.25 * cox_se)
    assert row["std_error"] == pytest.approx(cox_se, rel=0.25)
    assert row["n_obs"] == episodes["customer_id"].nunique()
    assert cells["events"].sum() == episodes["event"].sum()
    assert cells["exposure"].sum() == pytest.approx(episodes["exposure"].sum())


def test_estimating_function_bootstrap_matches_refitting_each_draw(churn_study):
    """The mediation interval's shortcut against the bootstrap it replaces.

    Both reweight units by the same multinomial counts (same seed); one refits both Poisson
    models to convergence per draw, the other takes the linearised solution. With 300 units the
    linearisation error is of order 1/G relative to the spread of the draws, so the draws
    should correlate above .95 and their SDs agree within 10% (the Monte-Carlo error of an SD
    from 200 draws is about 5%, but both use the same draws, so it mostly cancels).
    """
    from analysis.models.estimate import churn_hazard_on_engagement

    dataset, panel, units, as_of = churn_study
    _, cells = churn_hazard_on_engagement(dataset, panel, as_of, ("region",), 0.95)
    rows = units[units["n_responses"] > 0]
    cells = cells.merge(
        rows[["unit_id", "wave"]].assign(nps_10=rows["nps"] / 10), on=["unit_id", "wave"]
    )
    draws, seed, covariates = 200, 3, ["region", "wave"]
    shortcut = hazard.mediated_share(
        cells, "engagement_sd", "nps_10", covariates, draws=draws, seed=seed
    )
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    designs = [
        hazard.hazard_design(cells, columns, covariates).to_numpy()
        for columns in (["engagement_sd"], ["engagement_sd", "nps_10"])
    ]
    full = [hazard.poisson_fit(events, exposure, x) for x in designs]
    codes = pd.factorize(cells["unit_id"])[0]
    g = codes.max() + 1
    weights = unit_multiplicities(np.random.default_rng(seed), g, draws)
    refitted = np.empty(draws)
    for b in range(draws):
        w = weights[b][codes].astype(float)
        total, direct = (
            hazard.poisson_fit(events, exposure, x, w, start=f)[1]
            for x, f in zip(designs, full, strict=True)
        )
        refitted[b] = (total - direct) / total
    share = (full[0][1] - full[1][1]) / full[0][1]
    assert shortcut["estimate"] == pytest.approx(share, rel=1e-9)
    assert shortcut["std_error"] == pytest.approx(np.std(refitted, ddof=1), rel=0.10)
    low, high = np.quantile(refitted, [0.025, 0.975])
    assert shortcut["conf_low"] == pytest.approx(low, abs=0.25 * shortcut["std_error"])
    assert shortcut["conf_high"] == pytest.approx(high, abs=0.25 * shortcut["std_error"])


def test_jackknife_of_a_mean_is_the_textbook_standard_error():
    """With one unit per group, the jackknife SE of a mean is exactly s/√n (Efron, 1982, 3.2)."""
    from analysis.models.linkage import jackknife_se

    values = np.random.default_rng(8).normal(10, 3, 30)
    leave_one_out = [np.delete(values, i).mean() for i in range(len(values))]
    assert jackknife_se(np.array(leave_one_out)) == pytest.approx(
        values.std(ddof=1) / np.sqrt(len(values)), rel=1e-12
    )


def test_jackknife_groups_keep_units_whole_and_balanced():
    from analysis.models.linkage import JACKKNIFE_GROUPS, jackknife_groups

    units = pd.Series([f"u{i:03d}" for i in range(137)] * 3, dtype="string")
    group, k = jackknife_groups(units)
    assert k == JACKKNIFE_GROUPS
    per_unit = pd.Series(group).groupby(units.to_numpy()).nunique()
    assert (per_unit == 1).all()  # a unit's rows are never split
    sizes = pd.Series(group).groupby(units.to_numpy()).first().value_counts()
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == k
    again, _ = jackknife_groups(units.sample(frac=1, random_state=1).sort_index())
    assert (again == group).all()  # the same data give the same groups
    few, k_few = jackknife_groups(units[units.isin(["u001", "u002", "u003"])])
    assert k_few == 3 and len(set(few)) == 3  # fewer units than groups: delete-one-unit


def test_one_step_hazard_jackknife_matches_refitting_each_replicate(churn_study):
    """The churn SE's shortcut (one Newton step per deleted group) against full refits.

    A deleted group is a fiftieth of 300 units; each one-step replicate should match its refit
    to within a few percent of the standard error it feeds, and the two SEs within 3%.
    """
    from analysis.models.estimate import _hazard_jackknife, calibrated_engagement_sd, churn_model
    from analysis.models.linkage import jackknife_groups, jackknife_se

    dataset, panel, _, as_of = churn_study
    model = churn_model(dataset, panel, as_of, ("region",))
    one_step, k = _hazard_jackknife(
        model.units, model.cells, model.design, model.params, ("region",), model.wave_effects
    )
    units, cells = model.units, model.cells
    # the refits spell every wave and region out, as a reader would fit them
    design = hazard.hazard_design(cells, ["engagement_sd"], ["region", "wave"])
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    params = hazard.poisson_fit(events, exposure, design.to_numpy(float))
    assert params[1] == pytest.approx(model.params[0], rel=1e-9)

    group, _ = jackknife_groups(units["unit_id"])
    row = cells["unit_wave_row"].to_numpy()
    x = design.to_numpy(float, copy=True)
    refitted = np.empty(k)
    for g in range(k):
        engagement = np.zeros(len(units))
        engagement[group != g] = calibrated_engagement_sd(units[group != g], ("region",))
        x[:, 1] = engagement[row]
        weights = (group[row] != g).astype(float)
        refitted[g] = hazard.poisson_fit(events, exposure, x, weights, start=params)[1]
    se = jackknife_se(refitted)
    assert np.max(np.abs(one_step - refitted)) < 0.05 * se
    assert jackknife_se(one_step) == pytest.approx(se, rel=0.03)


def test_row_level_newton_steps_equal_the_full_step(churn_study):
    """``RowExposureSteps`` sums over wave × pattern keys; ``absorbed_newton_step`` over every
    cell and column. With engagement recalibrated and a group of units deleted, as in a jackknife
    replicate, both give the same step to rounding, for every coefficient."""
    from analysis.models.estimate import calibrated_engagement_sd, churn_model
    from analysis.models.linkage import Design, jackknife_groups

    dataset, panel, _, as_of = churn_study
    model = churn_model(dataset, panel, as_of, ("region",))
    units, cells, design, params = model.units, model.cells, model.design, model.params
    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    row = cells["unit_wave_row"].to_numpy()
    steps = hazard.RowExposureSteps(design, events, exposure, row, params, model.wave_effects)
    assert steps.patterns.n_patterns < len(cells) / 10  # few distinct band × region values
    group, _ = jackknife_groups(units["unit_id"])
    for g in (0, 7):
        kept = group != g
        engagement = np.zeros(len(units))
        engagement[kept] = calibrated_engagement_sd(units[kept], ("region",)).to_numpy()
        x = design.dense.copy()
        x[:, 0] = engagement[row]
        mu = exposure * np.exp(x @ params + model.wave_effects[design.groups])
        moved = Design(x, design.groups, design.n_groups, design.n_columns)
        full = hazard.absorbed_newton_step(moved, events, mu, rows=kept[row])
        fast = steps.step(engagement, kept)
        assert np.abs(full[0]) > 1e-6  # a real step, not two zeros
        np.testing.assert_allclose(fast, full, rtol=1e-8, atol=1e-12)


def test_pattern_sums_give_the_profile_information_of_the_cells(churn_study):
    """``Patterns.information`` against ``profile_information`` on a hazard design with two
    continuous columns, one of them placed among the indicators: same information and score
    to rounding, in the design's column order; and the Poisson fit that uses it equals the
    fit on the spelled-out design."""
    from analysis.models.estimate import churn_model
    from analysis.models.linkage import Design

    dataset, panel, _, as_of = churn_study
    model = churn_model(dataset, panel, as_of, ("region",))
    design, cells = model.design, model.cells
    rng = np.random.default_rng(5)
    dense = np.insert(design.dense, 3, rng.normal(size=len(cells)), axis=1)
    mixed = Design(dense, design.groups, design.n_groups, design.n_columns + 1)
    patterns = hazard.Patterns.of(mixed)
    assert list(patterns.continuous) == [0, 3]
    assert patterns.n_patterns < len(cells) / 10
    mu = rng.gamma(2.0, 0.05, size=len(cells))
    residual = cells["events"].to_numpy(float) - mu
    full = hazard.profile_information(mixed, mu, residual)
    fast = patterns.information(mu, residual)
    np.testing.assert_allclose(fast[0], full[0], rtol=1e-9, atol=1e-9 * np.abs(full[0]).max())
    np.testing.assert_allclose(fast[1], full[1], rtol=1e-9, atol=1e-9 * np.abs(full[1]).max())

    events = cells["events"].to_numpy(float)
    exposure = cells["exposure"].to_numpy(float) / 365.25
    spelled = hazard.hazard_design(cells, ["engagement_sd"], ["region", "wave"])
    params = hazard.poisson_fit(events, exposure, spelled.to_numpy(float))
    assert model.params[0] == pytest.approx(params[1], rel=1e-9)
