"""The internal-service chain's estimands (analysis.models.chain): they recover the generator's
truth, are not asked of a version-1 dataset, approximate leaving one unit out, and their share
interval behaves as Fieller's should.

Recovery uses one fixed-seed study of 200 units × 6 waves and allows three of the estimate's
own (jackknife) standard errors: a correct, honestly calibrated estimator fails one such check
with probability about 0.3% (more with the jackknife's t tails on 49 df: 0.4%); the reduced
calibration study (tests/test_calibration_chain.py, the report) checks the same over many seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.data.load import dataset_from_tables, load_dataset
from analysis.data.parameters import Parameters, resolve_as_of
from analysis.data.synth import StudyDesign, generate
from analysis.measures.panel import unit_wave_panel
from analysis.models import chain, registry

PARAMETERS = Parameters(bootstrap_draws=50)
CHAIN_NAMES = list(chain.ESTIMANDS)


def _fitting(design: StudyDesign):
    study = generate(design)
    dataset = dataset_from_tables(study.tables)
    as_of = resolve_as_of(dataset, PARAMETERS)
    panel = unit_wave_panel(dataset, PARAMETERS.outcome_window_days, as_of, PARAMETERS.covariates)
    return study, registry.Fitting(dataset, PARAMETERS, panel, as_of)


@pytest.fixture(scope="module")
def fitted():
    study, fitting = _fitting(StudyDesign(internal_service=True, n_units=200, n_waves=6, seed=4))
    rows = {e.name: e.fit(fitting) for e in registry.ESTIMANDS if e.name in CHAIN_NAMES}
    return study, fitting, rows


def test_the_chain_follows_the_mediated_share_in_the_registry():
    names = [e.name for e in registry.ESTIMANDS]
    start = names.index("nps_mediated_share") + 1
    assert names[start : start + 4] == CHAIN_NAMES or all(n in names for n in CHAIN_NAMES)
    for name in CHAIN_NAMES:
        entry = registry.by_name(name)
        assert entry.needs == ("internal_service",)
        assert entry.tested and entry.in_study and not entry.needs_churn
        assert entry.without_each_unit is not None


@pytest.mark.parametrize(
    "name, truth_key",
    [
        ("engagement_on_internal_service", "engagement_on_internal_service"),
        ("nps_on_internal_service", "nps_on_internal_service"),
        ("nps_via_engagement_share", "nps_via_engagement_share"),
        ("nps_on_internal_service_within", "nps_on_internal_service"),
    ],
)
def test_estimates_recover_the_truth_within_three_standard_errors(fitted, name, truth_key):
    study, _, rows = fitted
    row = rows[name]
    truth = study.truth["effects"][truth_key]
    assert row["se_method"] == "jackknife" and row["correction"] == "regression_calibration"
    assert row["std_error"] > 0 and row["n_units"] > 100
    assert abs(row["estimate"] - truth) < 3 * row["std_error"], (row["estimate"], truth)
    if name != "nps_via_engagement_share":  # the share's interval is Fieller's, not ± t·SE
        assert row["conf_low"] < row["estimate"] < row["conf_high"]


def test_the_engagement_link_is_detected_and_the_leave_out_is_used(fitted):
    """2.5 points per SD on 160-odd units is several SEs from zero; the panel's received index
    never uses the receiving unit's own raters (its staff enter only as weights)."""
    _, fitting, rows = fitted
    assert rows["engagement_on_internal_service"]["p_value"] < 0.01
    panel = chain.rows_of(fitting)
    assert (panel["n_raters_own"] >= chain.MIN_OWN_RATERS).all()
    assert (panel["service_noise_var"] >= panel["received_noise_var"]).all()
    assert fitting.pieces[chain.PIECE] is panel  # built once, shared
    for name in CHAIN_NAMES:
        assert name in fitting.jackknives


def test_not_asked_of_a_version_1_dataset(small_study_master):
    dataset = load_dataset(small_study_master)
    asked = [e.name for e in registry.applicable(dataset)]
    assert not set(CHAIN_NAMES) & set(asked)


def test_no_chain_gives_estimates_near_zero():
    """With no chain effects the between estimands' intervals should usually cover 0."""
    _, fitting = _fitting(
        StudyDesign(internal_service=True, no_chain=True, n_units=160, n_waves=5, seed=11)
    )
    for fit in (chain.engagement_on_internal_service, chain.nps_on_internal_service):
        row = fit(fitting)
        assert abs(row["estimate"]) < 3 * row["std_error"]


#: The estimators' point estimates on a service panel (``chain.rows_of``): what a refit gives.
POINT = {
    "engagement_on_internal_service": lambda r, c: chain._engagement_slope(r, c),
    "nps_on_internal_service": lambda r, c: chain._nps_slope(r, c),
    "nps_via_engagement_share": lambda r, c: np.divide(*chain._paths(r, c)),
    "nps_on_internal_service_within": lambda r, c: chain._within_slope(r),
}


def test_without_each_unit_is_close_to_exact_refits():
    """The one-step deletion (calibration, weights and design held) against the estimators
    rerun without the unit, for eight units of a 150-unit study, each against a tenth of the
    estimate's own standard error: the influence check only needs to tell whether a unit moves
    a test across its threshold. The study has strong effects (8 NPS points per SD of
    engagement, 4 engagement points per SD of service) so that the share's denominator is far
    from zero, where a ratio's first-order deletion is meaningful (as the mediated share is
    judged only when its total is significant)."""
    design = StudyDesign(
        internal_service=True,
        n_units=150,
        n_waves=4,
        seed=6,
        nps_effect=8.0,
        engagement_per_service_sd=4.0,
        nps_direct_per_service_sd=2.0,
    )
    _, fitting = _fitting(design)
    covariates = PARAMETERS.covariates
    units = pd.Index(np.sort(fitting.panel["unit_id"].astype("string").unique()), name="unit_id")
    rows = chain.rows_of(fitting)
    used = pd.Index(rows["unit_id"].astype("string").unique())
    chosen = list(used[:: max(1, len(used) // 8)][:8])
    for name in CHAIN_NAMES:
        entry = registry.by_name(name)
        full = entry.fit(fitting)
        if name == "nps_via_engagement_share":  # its total is away from zero
            assert registry.by_name("nps_on_internal_service").fit(fitting)["p_value"] < 0.01
        approx = pd.Series(entry.without_each_unit(fitting, units), index=units)
        for unit in chosen:
            exact = POINT[name](rows[rows["unit_id"].astype("string") != unit], covariates)
            gap = abs(approx[unit] - exact)
            assert gap < 0.1 * full["std_error"], (name, unit, approx[unit], exact)
        # a unit the chain does not use leaves the estimate unchanged
        unused = units.difference(used)
        assert np.allclose(approx[unused], full["estimate"], rtol=1e-9)


def test_fieller_interval_behaviour():
    q = stats.t.ppf(0.975, 49)
    # a well-determined denominator: bounded, contains the ratio
    low, high = chain.fieller_interval(1.0, 4.0, np.diag([0.04, 0.25]), q)
    assert low < 0.25 < high and np.isfinite([low, high]).all()
    # the interval excludes 0 exactly when the numerator's t-test rejects
    low, high = chain.fieller_interval(0.3, 4.0, np.diag([0.04, 0.25]), q)
    assert (low > 0) == (q < 0.3 / 0.2)
    low, high = chain.fieller_interval(0.6, 4.0, np.diag([0.04, 0.25]), q)
    assert (low > 0) == (q < 0.6 / 0.2) and low > 0
    # a denominator that cannot be told from zero: unbounded
    assert chain.fieller_interval(1.0, 0.5, np.diag([0.04, 0.25]), q) == (-np.inf, np.inf)
    # wider with more noise
    narrow = chain.fieller_interval(1.0, 4.0, np.diag([0.01, 0.1]), q)
    wide = chain.fieller_interval(1.0, 4.0, np.diag([0.04, 0.4]), q)
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_share_row_is_consistent(fitted):
    _, _, rows = fitted
    row = rows["nps_via_engagement_share"]
    assert row["term"] == chain.SHARE_TERM
    if np.isfinite(row["conf_low"]):
        assert row["conf_low"] < row["estimate"] < row["conf_high"]
        assert (row["conf_low"] > 0) == (row["p_value"] < 0.05)


def test_the_share_is_judged_fragile_only_when_its_total_is_significant():
    """As the findings read it: a share of a link that may be zero is no finding to flip."""
    from analysis.models.estimate import one_unit_fragility

    units = pd.Index(["a", "b", "c", "d"], name="unit_id")

    def run(total_p: float) -> pd.Series:
        estimates = pd.DataFrame(
            {
                "estimand": ["nps_on_internal_service", "nps_via_engagement_share"],
                "estimate": [2.0, 0.5],
                "p_value": [total_p, 0.04],
                "p_adjusted": [min(1.0, 2 * total_p), 0.08],
                "n_units": [4, 4],
            }
        )
        # leaving out unit "a" makes the share far larger: its test would turn significant
        leave_out = pd.DataFrame(
            {
                "nps_on_internal_service": [2.0] * 4,
                "nps_via_engagement_share": [5.0, 0.5, 0.5, 0.5],
            },
            index=units,
        )
        result = one_unit_fragility(estimates, leave_out, 0.05)
        return result.set_index("estimand")["fragile_to_one_unit"]

    assert not run(0.4)["nps_via_engagement_share"]
    assert run(0.0001)["nps_via_engagement_share"]


def test_an_unbounded_share_interval_is_shown_as_such(fitted):
    """Fieller's interval of a share of a link that cannot be told from zero is the whole line:
    the table says "unbounded" and the coefficient plot leaves it out instead of failing."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.report import figures, sentences
    from analysis.report.findings import findings_table

    _, _, rows = fitted
    estimates = pd.DataFrame(list(rows.values()))
    share = estimates["estimand"] == "nps_via_engagement_share"
    estimates.loc[share, ["conf_low", "conf_high"]] = [-np.inf, np.inf]
    estimates["p_adjusted"] = estimates["p_value"]
    figure = figures.coefficient_plot(estimates)
    drawn = [t.get_text() for axis in figure.axes for t in axis.get_yticklabels()]
    assert not any(registry.by_name("nps_via_engagement_share").label in t for t in drawn)
    assert "unbounded" in sentences.estimates_table_html(estimates)
    table = findings_table(estimates).set_index("estimand")
    assert table.loc["nps_via_engagement_share", "verdict"] != "evidence"
