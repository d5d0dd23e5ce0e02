"""Does a finding rest on one unit? The leave-one-unit-out check behind ``fragile_to_one_unit``.

The check (``analysis.models.estimate.leave_one_unit_out`` and ``one_unit_fragility``) approximates
every estimand without each unit and confirms the cases that matter by refitting. Here: the
approximations against exact refits on a small study; the flags on a study where one hidden,
suppressed unit masks a finding, and on one where no unit matters; and the page sentences,
which never name a unit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from analysis.data.load import Dataset, default_as_of, load_dataset
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign
from analysis.measures.panel import unit_wave_panel
from analysis.models import estimate, linkage
from analysis.report import sentences
from tests.conftest import write_study

PARAMETERS = Parameters(bootstrap_draws=50)
HIDDEN = "ZZ01"
HIDDEN_NAME = "Hidden extreme unit"


def _without(dataset: Dataset, unit: str) -> Dataset:
    tables = {
        name: frame[frame["unit_id"] != unit].reset_index(drop=True)
        for name, frame in dataset.tables().items()
    }
    return Dataset(**tables, instrument=dataset.instrument, files=dataset.files)


def _exact(dataset: Dataset, as_of, unit: str) -> dict[str, float]:
    """Every estimand refitted on the data without ``unit`` (panel rebuilt from the tables)."""
    data = _without(dataset, unit)
    panel = unit_wave_panel(data, PARAMETERS.outcome_window_days, as_of, PARAMETERS.covariates)
    facing = linkage.customer_facing_rows(panel)
    rows = facing[(facing["n_responses"] > 0) & facing["engagement_index"].notna()]
    model = estimate.churn_model(data, panel, as_of, PARAMETERS.covariates)
    return {
        "nps_on_engagement": linkage._nps_slope(rows, PARAMETERS.covariates),
        "nps_on_engagement_within": linkage.nps_on_engagement_within(panel)["estimate"],
        "engagement_on_prior_nps": linkage.engagement_on_prior_nps(panel, PARAMETERS.covariates)[
            "estimate"
        ],
        "churn_hazard_on_engagement": np.log(
            estimate.churn_hazard_on_engagement(
                data, panel, as_of, PARAMETERS.covariates, 0.95, model=model
            )[0]["estimate"]
        ),
        "nps_quartile_gap": linkage.nps_quartile_gap(panel, 5)["estimate"],
        "retention_quartile_gap": estimate.retention_quartile_gap(data, panel, 5, as_of, 0.95)[
            "estimate"
        ],
        "nps_mediated_share": estimate.nps_mediated_share(
            panel, model.cells, PARAMETERS.covariates, Parameters(bootstrap_draws=10)
        )["estimate"],
    }


#: Largest error of the approximation seen on the 60-unit study, in standard errors: the linear
#: models and the quartile gaps are (nearly) exact given the nuisance parts; the hazard model
#: is one Newton step without recalibrating engagement; the reverse model's joint calibration
#: rests on a small signal that one unit moves nonlinearly.
TOLERANCE_SE = {
    "nps_on_engagement": 0.2,
    "nps_on_engagement_within": 0.05,
    "engagement_on_prior_nps": 0.4,
    "churn_hazard_on_engagement": 0.3,
    "nps_quartile_gap": 1e-9,
    "retention_quartile_gap": 1e-9,
    "nps_mediated_share": 0.1,
}


def test_the_leave_one_out_approximations_match_exact_refits(small_study_master):
    dataset = load_dataset(small_study_master)
    as_of = default_as_of(dataset)
    panel = unit_wave_panel(dataset, PARAMETERS.outcome_window_days, as_of, PARAMETERS.covariates)
    results = estimate.estimate_all(dataset, PARAMETERS)
    churn = estimate.churn_model(dataset, panel, as_of, PARAMETERS.covariates)
    approximate = estimate.leave_one_unit_out(dataset, panel, PARAMETERS, as_of, churn)
    table = results.estimates.set_index("estimand")
    full = {name: estimate._test_scale(name, table.at[name, "estimate"]) for name in TOLERANCE_SE}
    se = {name: table.at[name, "std_error"] for name in TOLERANCE_SE}
    moved = (approximate - pd.Series(full)).div(pd.Series(se)).abs().max(axis=1)
    units = list(dict.fromkeys([*moved.sort_values().index[-5:], *approximate.index[:3]]))
    checked = 0
    for unit in units:
        exact = _exact(dataset, as_of, unit)
        for name, tolerance in TOLERANCE_SE.items():
            error = abs(approximate.at[unit, name] - exact[name]) / se[name]
            assert error <= tolerance, (unit, name, error)
            checked += 1
    assert checked == len(units) * len(TOLERANCE_SE)
    assert moved.max() > 0.5  # the units checked include some that move a finding a lot


def test_the_engagement_row_with_its_jackknife_is_linkages_row(small_study_master):
    dataset = load_dataset(small_study_master)
    panel = unit_wave_panel(dataset, 91, default_as_of(dataset), ("region",))
    row, jackknife = estimate.nps_on_engagement_with_jackknife(panel, ("region",), 0.95)
    assert row == linkage.nps_on_engagement(panel, ("region",), 0.95)
    assert row["std_error"] == pytest.approx(linkage.jackknife_se(jackknife.replicates))
    assert jackknife.group.index.is_unique and jackknife.group.max() < len(jackknife.replicates)


def test_holm_by_rows_is_holm():
    rng = np.random.default_rng(3)
    p_values = rng.uniform(0, 0.2, size=(40, 7)) ** 2
    expected = np.array([multipletests(row, method="holm")[1] for row in p_values])
    np.testing.assert_allclose(estimate._holm_rows(p_values), expected)


def _estimates(rows: list[tuple[str, float, float, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["estimand", "estimate", "std_error", "p_value", "n_units"]
    ).assign(term="x", conf_low=np.nan, conf_high=np.nan, n_obs=100, method="m")
    return estimate.with_holm(frame)


def test_fragility_rules_on_a_made_up_check():
    """Significance flips count; a sign flip counts only for a significant finding; a refit
    overrides the approximation; nothing names a unit."""
    estimates = _estimates(
        [
            ("nps_on_engagement", 4.0, 1.0, 0.0001, 40),  # clearly significant
            ("nps_quartile_gap", 0.5, 1.0, 0.62, 40),  # near zero: signs come and go
        ]
    )
    units = pd.Index([f"u{i}" for i in range(40)], name="unit_id")
    leave_out = pd.DataFrame(
        {"nps_on_engagement": 4.0 + 0.01 * np.arange(40), "nps_quartile_gap": 0.5}, index=units
    )
    leave_out.iloc[3, 1] = -0.2  # one unit turns the gap's sign: not a finding
    calm = estimate.one_unit_fragility(estimates, leave_out, 0.05)
    assert list(calm.columns) == [*estimates.columns, *estimate.INFLUENCE_COLUMNS]
    assert not calm["fragile_to_one_unit"].any()
    assert calm.set_index("estimand").at["nps_quartile_gap", "n_units_flip_sign"] == 1
    leave_out.iloc[7, 0] = 0.2  # without u7 the main finding all but vanishes
    shaky = estimate.one_unit_fragility(estimates, leave_out, 0.05).set_index("estimand")
    assert shaky.at["nps_on_engagement", "fragile_to_one_unit"]
    assert shaky.at["nps_on_engagement", "n_units_flip_significance"] == 1
    # an exact refit that disagrees with the approximation wins
    refitted = estimate.one_unit_fragility(
        estimates,
        leave_out,
        0.05,
        refit=lambda unit, names: {n: (3.9, 0.0002) for n in names},
    ).set_index("estimand")
    assert not refitted.at["nps_on_engagement", "fragile_to_one_unit"]
    said = sentences.fragility_sentences(shaky.reset_index(), 0.05)
    assert said == [
        "The link between engagement and the next quarter's customer NPS rests on a single "
        "unit: without it, it would not be significant."
    ]
    assert sentences.fragility_sentences(calm, 0.05) == []


def _add_hidden_extreme_unit(directory: Path, customers_per_wave: int = 150) -> None:
    """Four staff (below the threshold of five: suppressed everywhere) who answer every item
    at the top of its scale, and many customers who never leave but never recommend us."""
    read = {
        name: pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("units", "employee_survey", "customer_nps", "customers")
    }
    units, survey = read["units"], read["employee_survey"]
    region = units["region"].iloc[0]
    units = pd.concat(
        [
            units,
            pd.DataFrame(
                [
                    {
                        "unit_id": HIDDEN,
                        "unit_name": HIDDEN_NAME,
                        "region": region,
                        "customer_facing": "true",
                    }
                ]
            ),
        ]
    )
    items = [c for c in survey.columns if c not in ("respondent_id", "unit_id", "wave")]
    top = {item: "10" if item == "enps" else "7" if item == "ees" else "5" for item in items}
    waves = sorted(survey["wave"].unique())
    staff = pd.DataFrame(
        [
            {"respondent_id": f"{HIDDEN}-R{k}", "unit_id": HIDDEN, "wave": w, **top}
            for w in waves
            for k in range(4)
        ]
    )
    customers, answers = [], []
    for i, wave in enumerate(waves):
        for j in range(customers_per_wave):
            customer = f"{HIDDEN}-C{i}-{j}"
            customers.append(
                {
                    "customer_id": customer,
                    "unit_id": HIDDEN,
                    "since": "2023-01-01",
                    "churned_on": "",
                }
            )
            day = pd.Timestamp(wave) + pd.Timedelta(days=10 + j % 60)
            answers.append(
                {
                    "response_id": f"{HIDDEN}-N{i}-{j}",
                    "customer_id": customer,
                    "unit_id": HIDDEN,
                    "responded_on": day.strftime("%Y-%m-%d"),
                    "likelihood_to_recommend": "0",
                    "effort": "",
                }
            )
    tables = {
        "units": units,
        "employee_survey": pd.concat([survey, staff]),
        "customer_nps": pd.concat([read["customer_nps"], pd.DataFrame(answers)]),
        "customers": pd.concat([read["customers"], pd.DataFrame(customers)]),
    }
    for name, frame in tables.items():
        frame.to_csv(directory / f"{name}.csv", index=False)


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    """A study with a clear churn finding, and the same with a hidden unit that masks it."""
    root = tmp_path_factory.mktemp("influence")
    design = StudyDesign(seed=5, n_units=100, n_waves=4, median_unit_size=12)
    base = write_study(root / "base", design)
    hidden = Path(shutil.copytree(base, root / "hidden"))
    _add_hidden_extreme_unit(hidden)
    return {
        name: estimate.estimate_all(load_dataset(path), PARAMETERS)
        for name, path in (("base", base), ("hidden", hidden))
    }


def test_a_hidden_unit_that_masks_a_finding_is_flagged_without_being_named(masked):
    base = masked["base"].estimates.set_index("estimand")
    hidden = masked["hidden"].estimates.set_index("estimand")
    churn = "churn_hazard_on_engagement"
    # the flip is real: significant without the unit, not with it
    assert base.at[churn, "p_adjusted"] < 0.05 <= hidden.at[churn, "p_adjusted"]
    assert hidden.at[churn, "fragile_to_one_unit"]
    assert hidden.at[churn, "n_units_flip_significance"] >= 1
    # the unit is hidden everywhere it could be shown
    unit_wave = masked["hidden"].unit_wave
    assert unit_wave.loc[unit_wave["unit_id"] == HIDDEN, "suppressed"].all()
    said = sentences.fragility_sentences(masked["hidden"].estimates, PARAMETERS.alpha)
    assert any(
        s.startswith("The link between engagement and customers' risk of leaving")
        and "leaving out a single unit would make it so" in s
        for s in said
    ), said
    text = " ".join(said)
    assert HIDDEN not in text and HIDDEN_NAME not in text and "unit_id" not in text


def test_the_influence_columns_are_written_and_read_back(masked, tmp_path):
    from analysis.data.load import write_tables
    from analysis.data.results import read_results
    from analysis.report.findings import findings_table

    tables = masked["hidden"].tables()
    tables["findings"] = findings_table(tables["estimates"], 0.05)
    write_tables(tables, tmp_path / "results")
    estimates = read_results(tmp_path / "results")["estimates"]
    assert list(estimates.columns[-3:]) == list(estimate.INFLUENCE_COLUMNS)
    assert sentences.fragility_sentences(estimates, 0.05) == sentences.fragility_sentences(
        masked["hidden"].estimates, 0.05
    )


def test_a_study_where_no_unit_matters_flags_nothing(tmp_path):
    """The sample study's design, 300 units, drawn with a seed that leaves every finding clear
    of the threshold (the default seed's reverse model lands at p = 0.04, where one unit can
    matter)."""
    directory = write_study(tmp_path / "sample", StudyDesign(seed=1))
    parameters = Parameters(bootstrap_draws=500)  # the mediated share's p-value is at least 1/B
    estimates = estimate.estimate_all(load_dataset(directory), parameters).estimates
    adjusted = estimates["p_adjusted"].dropna()
    assert ((adjusted < 0.05 / 5) | (adjusted > 0.5)).all(), adjusted  # the premise
    assert (adjusted < 0.05).sum() >= 5
    assert not estimates["fragile_to_one_unit"].any()
    assert (estimates["n_units_flip_significance"] == 0).all()
    assert sentences.fragility_sentences(estimates, 0.05) == []


def test_a_finding_resting_on_any_of_several_units_says_so_in_the_plural():
    row = {
        "estimand": "engagement_on_prior_nps",
        "p_adjusted": 0.044,
        "fragile_to_one_unit": True,
        "n_units_flip_significance": 22,
        "n_units_flip_sign": 0,
    }
    said = sentences.fragility_sentences(pd.DataFrame([row]), 0.05)
    assert said == [
        "The reverse link (customer NPS to later engagement) rests on any one of 22 units: "
        "without any one of them, it would not be significant."
    ]
