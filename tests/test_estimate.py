"""The engine against the generator's truth: recovery, no false alarm, the reverse check."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.load import load_dataset
from analysis.data.parameters import Parameters
from analysis.data.synth import StudyDesign
from analysis.measures.privacy import assert_no_disclosure
from analysis.models.estimate import estimate_all
from tests.conftest import write_study

# Full-size studies (300 units, 8 waves), as data/sample; fewer bootstrap draws keep them quick.
PARAMETERS = Parameters(bootstrap_draws=300)
DESIGNS = {
    "effect": StudyDesign(seed=101),
    "null": StudyDesign(seed=202, no_effect=True),
    "reverse": StudyDesign(
        seed=303, reverse_causation=True, nps_effect=0.0, churn_hazard_ratio=1.0
    ),
}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate")
    results = {}
    for name, design in DESIGNS.items():
        directory = write_study(root / name, design)
        truth = json.loads((directory / "truth.json").read_text())
        results[name] = (estimate_all(load_dataset(directory), PARAMETERS), truth)
    return results


def _row(results, estimand: str) -> pd.Series:
    table = results.estimates
    return table[table["estimand"] == estimand].iloc[0]


def test_every_estimand_is_a_tidy_row(studies):
    results, _ = studies["effect"]
    expected = {
        "nps_on_engagement",
        "nps_on_engagement_within",
        "engagement_on_prior_nps",
        "churn_hazard_on_engagement",
        "nps_quartile_gap",
        "retention_quartile_gap",
        "nps_mediated_share",
        "nps_on_engagement_uncorrected",
        "nps_on_engagement_mde",
    }
    assert set(results.estimates["estimand"]) == expected
    assert list(results.estimates.columns) == [
        "estimand",
        "term",
        "estimate",
        "std_error",
        "conf_low",
        "conf_high",
        "p_value",
        "n_obs",
        "n_units",
        "method",
        "se_method",
        "jackknife_groups",
        "bootstrap_draws",
        "correction",
        "p_adjusted",
        "fragile_to_one_unit",
        "n_units_flip_significance",
        "n_units_flip_sign",
    ]
    tested = results.estimates.dropna(subset=["p_value"])
    assert (tested["p_adjusted"] >= tested["p_value"]).all()
    intervals = results.estimates.dropna(subset=["conf_low"])
    assert (intervals["conf_low"] <= intervals["estimate"]).all()
    assert (intervals["estimate"] <= intervals["conf_high"]).all()
    assert (results.estimates["n_units"] > 100).all()
    # the fit facts are columns: the two jackknifed estimands name their 50 groups, the
    # mediated share its bootstrap draws, and no method text repeats them
    facts = results.estimates.set_index("estimand")
    assert facts.at["nps_on_engagement", "se_method"] == "jackknife"
    assert facts.at["churn_hazard_on_engagement", "jackknife_groups"] == 50
    assert facts.at["nps_mediated_share", "bootstrap_draws"] == PARAMETERS.bootstrap_draws
    assert facts.at["nps_on_engagement", "correction"] == "regression_calibration"
    assert not results.estimates["method"].str.contains("groups\\)|draws", regex=True).any()


def test_effects_are_recovered_within_their_intervals(studies):
    """The 95% intervals cover the generator's true effects (seeded; each fails ≈5% of seeds)."""
    results, truth = studies["effect"]
    effects = truth["effects"]
    for estimand in ("nps_on_engagement", "nps_on_engagement_within"):
        row = _row(results, estimand)
        assert (
            row["conf_low"] <= effects["nps_points_per_sd_latent_engagement"] <= row["conf_high"]
        ), row.to_dict()
    churn = _row(results, "churn_hazard_on_engagement")
    assert churn["conf_low"] <= effects["churn_hazard_ratio_per_sd"] <= churn["conf_high"]
    assert churn["conf_high"] < 1  # and the harm of disengagement is detected
    mediated = _row(results, "nps_mediated_share")
    assert mediated["conf_low"] <= effects["nps_mediated_share"] <= mediated["conf_high"]
    assert _row(results, "nps_on_engagement")["p_adjusted"] < 0.05
    for gap in ("nps_quartile_gap", "retention_quartile_gap"):
        assert _row(results, gap)["conf_low"] > 0


def test_no_effect_study_is_not_called_significant(studies):
    """Nothing passes Holm's family-wise 5% level (the report's meaning of significant)."""
    results, _ = studies["null"]
    for estimand in (
        "nps_on_engagement",
        "nps_on_engagement_within",
        "engagement_on_prior_nps",
        "nps_quartile_gap",
        "retention_quartile_gap",
        "churn_hazard_on_engagement",
    ):
        assert _row(results, estimand)["p_adjusted"] > 0.05, estimand
    churn = _row(results, "churn_hazard_on_engagement")
    assert churn["conf_low"] < 1 < churn["conf_high"]


def test_reverse_causation_is_flagged_by_the_reverse_check(studies):
    results, truth = studies["reverse"]
    reverse = _row(results, "engagement_on_prior_nps")
    assert reverse["estimate"] > 0 and reverse["p_adjusted"] < 0.05
    assert truth["effects"]["nps_points_per_sd_latent_engagement"] == 0


def test_minimum_detectable_effect_is_consistent_with_the_estimate(studies):
    results, _ = studies["effect"]
    main = _row(results, "nps_on_engagement")
    mde = _row(results, "nps_on_engagement_mde")
    assert mde["estimate"] == pytest.approx(2.8 * main["std_error"], rel=0.02)


def test_drivers_rank_every_scale_with_intervals(studies):
    results, _ = studies["effect"]
    drivers = results.drivers
    assert len(drivers) == 6
    assert {"term", "estimate", "conf_low", "conf_high", "p_value", "p_adjusted"} <= set(
        drivers.columns
    )
    # engagement is the scale the generator links to NPS
    assert drivers.sort_values("estimate").iloc[-1]["term"] == "engagement_index"


def test_unit_wave_table_cannot_reveal_a_small_group(studies):
    """Every scale, on the count of people who answered that scale, directly or by subtraction."""
    results, _ = studies["effect"]
    table = results.unit_wave
    minimum = PARAMETERS.min_group_size
    small = table["n_respondents"] < minimum
    assert small.any()
    assert table.loc[small, ["engagement_index", "engagement_noise_var"]].isna().all().all()
    parents = [("wave",), (), ("region", "wave")]
    assert_no_disclosure(
        table,
        count="n_respondents",
        values=["engagement_index"],
        parents=parents,
        min_group_size=minimum,
    )
    others = [c for c in table.columns if c.endswith("_index") and c != "engagement_index"]
    assert len(others) == 5
    for column in others:
        count = column.removesuffix("_index") + "_respondents"
        assert table.loc[table[count] < minimum, column].isna().all(), column
        shown = table.assign(suppressed=table[column].isna())
        assert_no_disclosure(
            shown, count=count, values=[column], parents=parents, min_group_size=minimum
        )


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], capture_output=True, text=True, timeout=600
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_estimate_command_writes_reproducible_results(small_study_master, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("bootstrap_draws: 200\n")
    outputs = []
    for name in ("first", "second"):
        result = _run(
            "estimate",
            "--data",
            str(small_study_master),
            "--out",
            str(tmp_path / name),
            "--params",
            str(params),
        )
        assert result.returncode == 0, result.stderr
        outputs.append(tmp_path / name)
    for file in ("estimates.csv", "drivers.csv", "unit_wave.csv"):
        assert _digest(outputs[0] / file) == _digest(outputs[1] / file), file
    manifest = json.loads((outputs[0] / "manifest.json").read_text())
    assert manifest["parameters"]["bootstrap_draws"] == 200
    assert manifest["inputs_sha256"]["customers.csv"] == _digest(
        small_study_master / "customers.csv"
    )
    assert manifest["git_commit"] and manifest["packages"]["statsmodels"]
    unit_wave = pd.read_csv(outputs[0] / "unit_wave.csv", dtype={"unit_id": str})
    assert "respondent_id" not in unit_wave.columns
    respondents = set(
        pd.read_csv(small_study_master / "employee_survey.csv", dtype=str)["respondent_id"]
    )
    for file in outputs[0].iterdir():
        text = file.read_text()
        assert not any(r in text for r in list(respondents)[:500]), file


def test_estimate_command_refuses_bad_data_without_writing(small_study_master, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in small_study_master.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    (broken / "customers.csv").write_text("customer_id,unit_id,since\nc1,0001,not-a-date\n")
    result = _run("estimate", "--data", str(broken), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "customers.csv" in result.stderr and "since" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_parameter_key_is_an_error(small_study_master, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("bootstrap_drawz: 10\n")
    result = _run(
        "estimate",
        "--data",
        str(small_study_master),
        "--out",
        str(tmp_path / "o"),
        "--params",
        str(params),
    )
    assert result.returncode == 2
    assert "bootstrap_drawz" in result.stderr


def test_min_group_size_below_three_is_refused():
    with pytest.raises(ValueError, match="at least 3"):
        Parameters(min_group_size=2)
    assert np.isfinite(Parameters().confidence)


def test_mistyped_covariate_is_an_error(small_study_master, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("covariates: [regoin]\n")
    result = _run(
        "estimate",
        "--data",
        str(small_study_master),
        "--out",
        str(tmp_path / "o"),
        "--params",
        str(params),
    )
    assert result.returncode == 2
    assert "regoin" in result.stderr and "units.csv" in result.stderr
