"""The synthetic study: deterministic, valid under the contract, and true to its truth.json."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from analysis.data.load import load_dataset
from analysis.data.synth import StudyDesign, generate
from analysis.measures.panel import unit_wave_panel
from analysis.models.linkage import nps_quartile_gap
from tests.conftest import SMALL_DESIGN, write_study


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args], capture_output=True, text=True, timeout=300
    )


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_gives_byte_identical_files_and_another_seed_does_not(tmp_path):
    args = ["--units", "30", "--waves", "3"]
    for name, seed in (("a", "11"), ("b", "11"), ("c", "12")):
        result = _cli("synth", "--out", str(tmp_path / name), "--seed", seed, *args)
        assert result.returncode == 0, result.stderr
    first, second, other = (_files(tmp_path / n) for n in "abc")
    assert set(first) == {
        "units.csv",
        "employee_survey.csv",
        "customer_nps.csv",
        "customers.csv",
        "headcount.csv",  # the rosters: response rates and the non-response check
        "truth.json",
        "SYNTHETIC.md",  # says the data is generated: every report page shows a banner
        ".inside-out",  # the marker: synth wrote this folder and may replace it
    }
    assert first == second
    assert first["customer_nps.csv"] != other["customer_nps.csv"]


def test_parquet_output_is_deterministic_and_valid(tmp_path):
    design = replace(SMALL_DESIGN, n_units=25, n_waves=3)
    write_study(tmp_path / "a", design, "parquet")
    write_study(tmp_path / "b", design, "parquet")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    load_dataset(tmp_path / "a")


@pytest.mark.parametrize(
    "switches", [{}, {"no_effect": True}, {"confounding": True}, {"reverse_causation": True}]
)
def test_every_variant_follows_the_contract(tmp_path, switches):
    write_study(tmp_path / "study", replace(SMALL_DESIGN, **switches))
    load_dataset(tmp_path / "study")  # raises on any broken rule


def test_truth_json_matches_the_files(small_study):
    truth = json.loads((small_study / "truth.json").read_text())
    dataset = load_dataset(small_study)
    counts = truth["counts"]
    assert counts["units"] == len(dataset.units) == SMALL_DESIGN.n_units
    assert counts["employee_responses"] == len(dataset.employee_survey)
    assert counts["employees"] == dataset.employee_survey["respondent_id"].nunique()
    assert counts["customers"] == len(dataset.customers)
    assert counts["nps_responses"] == len(dataset.customer_nps)
    assert counts["churned"] == dataset.customers["churned_on"].notna().sum()
    assert (
        counts["customers_before_first_wave"]
        == (dataset.customers["since"] < truth["waves"][0]).sum()
    )
    assert truth["waves"] == sorted(
        dataset.employee_survey["wave"].dt.strftime("%Y-%m-%d").unique()
    )
    assert truth["design"]["seed"] == SMALL_DESIGN.seed
    effects = truth["effects"]
    assert effects["nps_points_per_sd_latent_engagement"] == pytest.approx(
        SMALL_DESIGN.nps_effect, abs=1e-6
    )
    assert effects["churn_hazard_ratio_per_sd"] == pytest.approx(SMALL_DESIGN.churn_hazard_ratio)
    assert (
        effects["churn_log_hazard_ratio_direct"]
        + effects["churn_log_hazard_ratio_through_sentiment"]
    ) == pytest.approx(effects["churn_log_hazard_ratio_per_sd"])
    assert effects["nps_mediated_share"] == pytest.approx(SMALL_DESIGN.mediated_share)


def test_switches_are_recorded_in_truth():
    null = generate(replace(SMALL_DESIGN, no_effect=True)).truth["effects"]
    assert null["nps_points_per_sd_latent_engagement"] == 0
    assert null["churn_hazard_ratio_per_sd"] == 1
    assert null["nps_mediated_share"] is None
    reverse = generate(
        replace(SMALL_DESIGN, reverse_causation=True, nps_effect=0.0, churn_hazard_ratio=1.0)
    ).truth["effects"]
    assert reverse["reverse_engagement_sd_per_sd_prior_sentiment"] == pytest.approx(
        StudyDesign.reverse_strength
    )
    assert reverse["nps_points_per_sd_latent_engagement"] == 0
    confounded = generate(replace(SMALL_DESIGN, confounding=True)).truth
    assert np.std(list(confounded["nuisance"]["region_engagement_sd_units"].values())) > 0.3


def test_data_look_like_the_real_thing(small_study):
    dataset = load_dataset(small_study)
    truth = json.loads((small_study / "truth.json").read_text())
    units = dataset.units
    assert units["region"].nunique() >= 4
    assert 0.6 < units["customer_facing"].mean() < 0.95
    back_office = set(units.loc[~units["customer_facing"], "unit_id"])
    assert not back_office & set(dataset.customers["unit_id"])  # internal customers only
    staff = dataset.employee_survey.groupby("unit_id").size()
    assert staff.max() / staff.min() > 5  # very different sizes
    skipped = dataset.employee_survey["eng_1"].isna().mean()
    assert 0.005 < skipped < 0.05
    scores = dataset.customer_nps["likelihood_to_recommend"]
    assert scores.min() == 0 and scores.max() == 10
    assert truth["counts"]["customers_before_first_wave"] > 0
    scales = dataset.employee_survey[["eng_1", "comm_1", "brand_1", "poc_valued", "ees", "enps"]]
    correlation = scales.astype(float).corr().to_numpy()
    off_diagonal = correlation[~np.eye(6, dtype=bool)]
    assert (off_diagonal > 0.1).all() and (off_diagonal < 0.8).all()


def test_engagement_moves_nps_only_when_the_design_says_so(tmp_path):
    """The top-minus-bottom quartile gap: near zero without an effect, positive with one.

    Both checks allow three standard errors (the cluster-robust SE of the gap), so a correct
    generator fails them with probability under 0.3% per seed.
    """
    design = replace(StudyDesign(), seed=3, n_units=300, n_waves=6, customers_per_employee=10)
    gaps = {}
    for name, variant in (("effect", design), ("null", replace(design, no_effect=True))):
        directory = write_study(tmp_path / name, variant)
        gaps[name] = nps_quartile_gap(unit_wave_panel(load_dataset(directory)), 5)
    assert abs(gaps["null"]["estimate"]) < 3 * gaps["null"]["std_error"]
    assert gaps["effect"]["estimate"] > 3 * gaps["effect"]["std_error"]


def test_help_explains_every_switch():
    result = _cli("synth", "--help")
    assert result.returncode == 0
    for flag in (
        "--seed",
        "--out",
        "--format",
        "--units",
        "--waves",
        "--nps-effect",
        "--churn-hazard-ratio",
        "--mediated-share",
        "--no-effect",
        "--confounding",
        "--reverse-causation",
        "--reverse-strength",
        "--confounding-strength",
    ):
        assert flag in result.stdout
    assert "Harter" in result.stdout
