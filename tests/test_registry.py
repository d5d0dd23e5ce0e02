"""One registry of estimands drives the engine, the study, the benchmark and the report's words.

And one tidy row: every estimates row comes from ``tidy.tidy_row`` (or ``tidy.not_estimable``),
with broom's ``exponentiate`` convention and the fit's facts as columns.
"""

from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.data.load import default_as_of, load_dataset
from analysis.data.parameters import Parameters, resolve_as_of
from analysis.data.synth import StudyDesign
from analysis.models import registry
from analysis.models.estimate import estimate_all
from analysis.models.tidy import ESTIMATE_COLUMNS, TIDY_COLUMNS, not_estimable, tidy_row
from analysis.studies import calibration

matplotlib.use("Agg")

PARAMETERS = Parameters(bootstrap_draws=50)


@pytest.fixture(scope="module")
def small_results(small_study_master):
    return estimate_all(load_dataset(small_study_master), PARAMETERS)


def test_the_registry_drives_estimate_all_in_its_order(small_results, small_study_master):
    names = [e.name for e in registry.applicable(load_dataset(small_study_master))]
    assert list(small_results.estimates["estimand"]) == names
    assert names == [  # today's estimands, in the order estimates.csv has always had
        "nps_on_engagement",
        "nps_on_engagement_within",
        "engagement_on_prior_nps",
        "churn_hazard_on_engagement",
        "nps_quartile_gap",
        "retention_quartile_gap",
        "nps_mediated_share",
        "nps_on_engagement_uncorrected",
        "nps_on_engagement_mde",
    ]
    terms = dict(
        zip(small_results.estimates["estimand"], small_results.estimates["term"], strict=True)
    )
    assert terms == {e.name: e.term for e in registry.ESTIMANDS if e.name in names}
    assert list(small_results.estimates.columns[: len(ESTIMATE_COLUMNS)]) == list(ESTIMATE_COLUMNS)
    # the tested entries, and only they, carry a p-value and enter Holm's family
    tested = {e.name for e in registry.ESTIMANDS if e.tested}
    with_p = small_results.estimates.dropna(subset=["p_value"])["estimand"]
    assert set(with_p) <= tested


def test_adding_an_entry_adds_a_row(small_study_master, monkeypatch):
    """One entry is all it takes: estimate_all fits it, in its place, with the others."""
    extra = registry.Estimand(
        "nps_level",
        "mean_nps",
        "Mean NPS of unit-waves",
        "The level of NPS",
        "Mean customer NPS over unit-waves with answers",
        0.0,
        "difference",
        tested=True,
        in_study=False,
        needs_churn=False,
        fit=lambda f: tidy_row(
            "nps_level",
            "mean_nps",
            float(f.panel["nps"].mean()),
            float(f.panel["nps"].std() / np.sqrt(f.panel["nps"].count())),
            df=int(f.panel["nps"].count()) - 1,
            n_obs=int(f.panel["nps"].count()),
            n_units=int(f.panel["unit_id"].nunique()),
            method="mean of unit-wave NPS",
            se_method="iid",
        ),
    )
    entries = (*registry.ESTIMANDS[:2], extra, *registry.ESTIMANDS[2:])
    monkeypatch.setattr(registry, "ESTIMANDS", entries)
    dataset = load_dataset(small_study_master)
    estimates = estimate_all(dataset, PARAMETERS).estimates
    # every entry the dataset can answer (a v1 study is not asked what needs contract v2)
    assert list(estimates["estimand"]) == [e.name for e in registry.applicable(dataset, entries)]
    assert "nps_level" in set(estimates["estimand"])
    row = estimates.set_index("estimand").loc["nps_level"]
    assert row["p_adjusted"] >= row["p_value"] and row["se_method"] == "iid"
    assert registry.labels()["nps_level"] == ("Mean NPS of unit-waves", 0.0)


def test_an_entry_needing_more_than_the_data_hold_is_not_asked(small_study_master, monkeypatch):
    """An estimand that needs a part of contract v2 the dataset lacks has no row, no finding and
    no place in Holm's family: the v1 report is the report it was. Given the part, it is asked,
    its shared piece built once for every entry that uses it, and its influence column added."""
    from analysis.report.findings import findings_table

    built = []

    def piece(fitting):
        built.append(1)
        return float(fitting.panel["nps"].mean())

    def fit(name):
        return lambda f: tidy_row(
            name,
            "mean_nps",
            f.piece("mean", piece),
            1.0,
            df=10,
            n_obs=5,
            n_units=5,
            method="m",
            se_method="iid",
        )

    def entry(name, needs):
        return registry.Estimand(
            name, "mean_nps", name, name, name, 0.0, "difference", tested=True,
            in_study=False, needs_churn=False, fit=fit(name), needs=needs,
            without_each_unit=lambda f, units: np.full(len(units), f.piece("mean", piece)),
        )  # fmt: skip

    extra = (entry("needs_service", ("internal_service",)), entry("needs_none", ()))
    monkeypatch.setattr(registry, "ESTIMANDS", (*registry.ESTIMANDS, *extra))
    dataset = load_dataset(small_study_master)
    assert dataset.internal_service is None
    assert not extra[0].applies_to(dataset) and extra[1].applies_to(dataset)
    estimates = estimate_all(dataset, PARAMETERS).estimates
    assert "needs_service" not in set(estimates["estimand"]) and built == [1]
    holm = estimates.dropna(subset=["p_value"])
    assert "needs_none" in set(holm["estimand"])
    findings = findings_table(estimates)
    assert "needs_service" not in set(findings["estimand"])
    assert "needs_none" in set(findings["estimand"])

    service = pd.DataFrame({"provider_unit_id": ["u1"]})
    with_service = dataclasses.replace(dataset, internal_service=service)
    assert [e.name for e in registry.applicable(with_service)][-2:] == [e.name for e in extra]
    with pytest.raises(KeyError):
        dataclasses.replace(extra[0], needs=("no_such_part",)).applies_to(dataset)


def test_figures_and_sentences_take_their_labels_from_the_registry(small_results):
    from analysis.report import figures, sentences

    labels = registry.labels()
    assert list(labels) == [e.name for e in registry.ESTIMANDS if e.tested]
    assert not hasattr(sentences, "ESTIMAND_LABELS")
    table = sentences.estimates_table_html(small_results.estimates)
    shown = small_results.estimates[small_results.estimates["estimand"].isin(labels)]
    for name in shown["estimand"]:
        assert sentences.plain_text(labels[name][0]) in table or labels[name][0] in table
    assert {
        e.name: e.subject for e in registry.ESTIMANDS if e.tested
    } == sentences.FRAGILITY_SUBJECTS
    figure = figures.coefficient_plot(small_results.estimates)
    drawn = shown.dropna(subset=["estimate", "conf_low", "conf_high"])["estimand"]
    units = list(dict.fromkeys(figures.unit_of(n) for n in drawn))
    rows = [t.get_text().split("\n")[0] for axis in figure.axes for t in axis.get_yticklabels()]
    assert rows == [labels[n][0] for u in units for n in drawn if figures.unit_of(n) == u]
    # one axis per unit of measure, each with its no-effect line at the registry's null
    nulls = [axis.lines[0].get_xdata()[0] for axis in figure.axes]
    assert nulls == [labels[next(n for n in drawn if figures.unit_of(n) == u)][1] for u in units]


def test_the_calibration_study_loops_over_the_registry():
    assert tuple(e.name for e in registry.ESTIMANDS if e.in_study) == calibration.ESTIMANDS
    assert set(calibration.RATIO_ESTIMANDS) == {
        "churn_hazard_on_engagement",
        "naive_churn_on_engagement",
    }
    for name in calibration.ESTIMANDS:
        assert calibration.LABELS[name] == registry.by_name(name).label
    rows = calibration.replicate(
        dataclasses.replace(StudyDesign(n_units=40, n_waves=3), seed=7), churn=False
    )
    expected = [
        e.name for e in registry.ESTIMANDS if e.in_study and not e.needs_churn and not e.needs
    ]
    assert list(rows["estimand"]) == [*expected, *calibration.NAIVE_ESTIMANDS]


def test_the_benchmark_times_registry_entries():
    from analysis.studies import benchmark

    for name in benchmark.OURS.values():
        assert registry.by_name(name).fit is not None


def test_tidy_row_exponentiates_as_broom_does():
    """A ratio: exp of the estimate and the interval; SE and test on the log scale."""
    log_ratio, se, df = np.log(0.8), 0.1, 49
    row = tidy_row(
        "ratio",
        "x",
        log_ratio,
        se,
        df=df,
        exponentiate=True,
        n_obs=100,
        n_units=50,
        method="m",
        se_method="jackknife",
        jackknife_groups=50,
    )
    t = stats.t.ppf(0.975, df)
    assert row["estimate"] == pytest.approx(0.8, rel=1e-12)
    assert row["std_error"] == se
    assert row["conf_low"] == pytest.approx(np.exp(log_ratio - t * se), rel=1e-12)
    assert row["conf_high"] == pytest.approx(np.exp(log_ratio + t * se), rel=1e-12)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(log_ratio) / se, df), rel=1e-12)
    # the interval is not symmetric about the ratio, and excludes 1 exactly when p < .05
    assert row["conf_high"] - row["estimate"] > row["estimate"] - row["conf_low"]
    assert (row["conf_high"] < 1) == (row["p_value"] < 0.05)
    assert list(row) == list(ESTIMATE_COLUMNS)


def test_tidy_row_normal_reference_and_given_interval():
    row = tidy_row("d", "x", 1.96, 1.0, n_obs=10, n_units=10, method="m", se_method="iid")
    assert row["p_value"] == pytest.approx(0.05, abs=1e-4)  # normal when df is None
    given = tidy_row(
        "d",
        "x",
        2.0,
        1.0,
        conf_low=0.5,
        conf_high=4.0,
        p_value=0.01,
        n_obs=10,
        n_units=10,
        method="m",
        se_method="bootstrap",
        bootstrap_draws=200,
    )
    assert (given["conf_low"], given["conf_high"], given["p_value"]) == (0.5, 4.0, 0.01)
    assert given["bootstrap_draws"] == 200 and given["jackknife_groups"] == 0


def test_one_not_estimable_row():
    row = not_estimable("nps_quartile_gap", "nps_quartile_gap", "too few unit-waves")
    assert list(row) == list(ESTIMATE_COLUMNS)
    assert row["method"] == "not estimable: too few unit-waves"
    assert all(pd.isna(row[c]) for c in TIDY_COLUMNS[2:7])
    assert row["se_method"] == "none" and row["n_units"] == 0


def test_as_of_is_resolved_in_one_place(small_study_master):
    dataset = load_dataset(small_study_master)
    assert resolve_as_of(dataset) == default_as_of(dataset)
    assert resolve_as_of(dataset, Parameters()) == default_as_of(dataset)
    chosen = Parameters(as_of=pd.Timestamp("2024-01-15").date())
    assert resolve_as_of(dataset, chosen) == pd.Timestamp("2024-01-15")


def test_every_tested_estimand_has_its_influence_check(small_study_master):
    """The leave-one-unit-out check covers exactly the registry's tested entries."""
    from analysis.measures.panel import unit_wave_panel
    from analysis.models import estimate

    dataset = load_dataset(small_study_master)
    as_of = resolve_as_of(dataset, PARAMETERS)
    panel = unit_wave_panel(dataset, 91, as_of, PARAMETERS.covariates)
    churn = estimate.churn_model(dataset, panel, as_of, PARAMETERS.covariates)
    fitting = registry.Fitting(dataset, PARAMETERS, panel, as_of, churn=churn)
    leave_out = estimate.leave_one_unit_out(dataset, panel, PARAMETERS, as_of, churn, fitting)
    asked = registry.applicable(dataset)
    assert list(leave_out.columns) == [e.name for e in asked if e.tested]


def test_the_uncorrected_slope_is_a_plain_wls_on_the_observed_index(small_results):
    """What the reliability page compares the headline with: the same rows, weights and fixed
    effects, the observed engagement index per observed SD, and no test of its own."""
    import statsmodels.api as sm

    from analysis.models import linkage

    panel = small_results.panel
    row = small_results.estimates.set_index("estimand").loc["nps_on_engagement_uncorrected"]
    assert np.isnan(row["p_value"]) and np.isnan(row["p_adjusted"])
    assert row["correction"] == "none" and row["se_method"] == "jackknife"
    rows = linkage.customer_facing_rows(panel)
    rows = rows[(rows["n_responses"] > 0) & rows["engagement_index"].notna()]
    weights = linkage.nps_precision_weights(rows, linkage.absorbed_design(rows, ["region"]))
    x = rows["engagement_index"] / rows["engagement_index"].std(ddof=1)
    design = pd.concat(
        [
            x.rename("engagement"),
            pd.get_dummies(rows["wave"].astype(str), prefix="w", dtype=float),
            pd.get_dummies(rows["region"], prefix="r", drop_first=True, dtype=float),
        ],
        axis=1,
    )
    fit = sm.WLS(rows["nps"].to_numpy(float), design.to_numpy(float), weights=weights).fit()
    assert row["estimate"] == pytest.approx(fit.params[0], rel=1e-8, abs=1e-10)
    assert row["n_obs"] == len(rows)
    assert row["conf_low"] < row["estimate"] < row["conf_high"]
