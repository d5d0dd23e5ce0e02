"""The synthetic study's internal-service chain (issue 15): valid under the contract, true to
its truth.json, switchable, and, when off, the generator writes exactly what it wrote before.

Recovery checks regress the generated data on the generator's hidden values
(``Study.latent``) on fixed seeds and allow three cluster-robust standard errors (clusters are
units), so a correct generator fails one of them with probability under 0.3% per seed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from pandas.testing import assert_frame_equal

from analysis.data.contract import POINTS_OF_CONNECTION, nps_points
from analysis.data.load import load_dataset
from analysis.data.synth import StudyDesign, generate, write_study, write_study_chunked

ROOT = Path(__file__).resolve().parents[1]
#: The last commit that changed analysis/data/synth.py before the chain was added: without the
#: chain, the generator must write what that version wrote.
BEFORE_CHAIN = "aa34d98f172fa40e79ab3fe4b3e3fec579618b0e"
CHAIN_FIELDS = {
    "internal_service",
    "providers_per_unit",
    "engagement_per_service_sd",
    "nps_direct_per_service_sd",
    "brand_promise_per_sd",
    "no_chain",
    "chain_confounding",
    "chain_confounding_strength",
    "chain_confounding_nps",
}
SMALL = StudyDesign(seed=7, n_units=40, n_waves=3, median_unit_size=12)
CHAIN = StudyDesign(internal_service=True, seed=3)  # 300 units, 8 waves: the recovery study


@pytest.fixture(scope="module")
def old_synth(tmp_path_factory):
    """``analysis/data/synth.py`` as it was before the chain, imported from a temporary file."""
    shown = subprocess.run(
        ["git", "show", f"{BEFORE_CHAIN}:analysis/data/synth.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        pytest.skip(f"the commit before the chain is not in this clone: {shown.stderr.strip()}")
    path = tmp_path_factory.mktemp("before_chain") / "synth_before_chain.py"
    path.write_text(shown.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("synth_before_chain", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def chain_study():
    return generate(CHAIN)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _fit(formula: str, data: pd.DataFrame, term: str) -> tuple[float, float]:
    """OLS estimate of ``term`` and its cluster-robust (by unit) standard error."""
    data = data.reset_index(drop=True)
    result = smf.ols(formula, data).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(data["unit_id"])[0]}
    )
    return float(result.params[term]), float(result.bse[term])


def _unit_waves(study) -> pd.DataFrame:
    """Observed engagement and communication-effort indices (0–100) per customer-facing
    unit-wave, beside the hidden values."""
    survey = study.tables["employee_survey"]
    engagement = survey[[f"eng_{i}" for i in range(1, 6)]].astype(float).mean(axis=1)
    survey = survey.assign(
        engagement=(engagement - 1) / 4 * 100,
        comm=(survey["comm_effort"].astype(float) - 1) / 6 * 100,
    )
    observed = survey.groupby(["unit_id", "wave"])[["engagement", "comm"]].mean().reset_index()
    both = observed.merge(study.latent["unit_waves"], on=["unit_id", "wave"])
    return both[both["customer_facing"]].dropna()


def _answers(study) -> pd.DataFrame:
    """Customer answers in the quarter after each wave, with that wave's hidden unit values."""
    nps = study.tables["customer_nps"]
    waves = pd.DatetimeIndex(study.truth["waves"])
    after = np.searchsorted(waves.to_numpy(), nps["responded_on"].to_numpy(), side="left")
    answers = nps[after >= 1].assign(wave=waves[after[after >= 1] - 1])
    answers["points"] = nps_points(answers["likelihood_to_recommend"].to_numpy(float))
    answers["promise"] = (answers["brand_promise"].astype(float) - 1) / 4 * 100
    return answers.merge(study.latent["unit_waves"], on=["unit_id", "wave"])


# --------------------------------------------------------------------------------------------
# Without the chain nothing moves


@pytest.mark.parametrize("switches", [{}, {"confounding": True, "reverse_causation": True}])
def test_without_the_chain_every_file_is_what_the_generator_wrote_before(
    tmp_path, old_synth, switches
):
    design = replace(SMALL, **switches)
    old_design = old_synth.StudyDesign(
        **{k: v for k, v in asdict(design).items() if k not in CHAIN_FIELDS}
    )
    write_study(generate(design), tmp_path / "now")
    old_synth.write_study(old_synth.generate(old_design), tmp_path / "before")
    now, before = _files(tmp_path / "now"), _files(tmp_path / "before")
    assert set(now) == set(before)
    truth_now, truth_before = (json.loads(files.pop("truth.json")) for files in (now, before))
    assert now == before  # every table, the marker and SYNTHETIC.md, byte for byte
    # truth.json only gains the new fields of the design, so that a design is read back whole
    assert set(truth_now["design"]) - set(truth_before["design"]) == CHAIN_FIELDS
    truth_now["design"] = {k: v for k, v in truth_now["design"].items() if k not in CHAIN_FIELDS}
    assert truth_now == truth_before


def test_the_chain_draws_from_its_own_streams(tmp_path):
    """With no chain effects, turning the chain on adds tables and columns and moves nothing."""
    off = generate(SMALL).tables
    on = generate(replace(SMALL, internal_service=True, no_chain=True)).tables
    assert set(on) == set(off) | {"internal_service"}
    for name, table in off.items():
        assert_frame_equal(on[name][table.columns], table)
    assert set(on["employee_survey"].columns) - set(off["employee_survey"].columns) == {
        "comm_effort"
    }
    assert set(on["customer_nps"].columns) - set(off["customer_nps"].columns) == {"brand_promise"}


# --------------------------------------------------------------------------------------------
# The contract


def test_the_new_tables_follow_the_contract(tmp_path):
    study = generate(replace(SMALL, internal_service=True))
    dataset = load_dataset(write_study(study, tmp_path / "study"))  # raises on any broken rule
    service = dataset.internal_service
    assert service is not None and len(service) == study.truth["counts"]["internal_service_ratings"]
    assert (service["rater_unit_id"] != service["provider_unit_id"]).all()
    assert not service.duplicated(["respondent_id", "provider_unit_id", "wave"]).any()
    assert service[list(POINTS_OF_CONNECTION)].notna().any(axis=1).all()
    assert set(service["wave"]) <= set(dataset.employee_survey["wave"])
    # the raters are the survey's respondents, from the unit the survey puts them in
    key = ["respondent_id", "wave"]
    rater = service[[*key, "rater_unit_id"]].merge(dataset.employee_survey[[*key, "unit_id"]])
    assert len(rater) == len(service) and (rater["rater_unit_id"] == rater["unit_id"]).all()
    providers = dataset.units.set_index("unit_id").loc[service["provider_unit_id"].unique()]
    assert (~providers["customer_facing"]).any() and providers["customer_facing"].any()
    assert "communication_effort" in [s.name for s in dataset.instrument.scales]
    assert dataset.customer_nps["brand_promise"].between(1, 5).all()
    assert dataset.customer_nps["brand_promise"].isna().mean() == pytest.approx(0.5, abs=0.05)


def test_the_chunked_writer_refuses_the_chain(tmp_path):
    with pytest.raises(ValueError, match="internal-service chain"):
        write_study_chunked(replace(SMALL, internal_service=True), tmp_path / "study")
    assert not (tmp_path / "study").exists()


# --------------------------------------------------------------------------------------------
# truth.json is recovered from the data


def test_truth_json_holds_the_three_chain_estimands_by_their_definitions(chain_study):
    effects = chain_study.truth["effects"]
    assert effects["engagement_on_internal_service"] == pytest.approx(
        CHAIN.engagement_per_service_sd
    )
    via = (
        effects["engagement_sd_latent_per_sd_internal_service"]
        * effects["nps_points_per_sd_latent_engagement"]
    )
    assert effects["nps_on_internal_service_via_engagement"] == pytest.approx(via)
    total = via + CHAIN.nps_direct_per_service_sd
    assert effects["nps_on_internal_service"] == pytest.approx(total)
    assert effects["nps_via_engagement_share"] == pytest.approx(via / total)
    assert effects["brand_promise_on_brand_alignment"] == pytest.approx(CHAIN.brand_promise_per_sd)
    hidden = chain_study.latent["unit_waves"]
    facing = hidden[hidden["customer_facing"]]
    # "per SD" is per SD of the true received service across customer-facing unit-waves
    assert facing["received_service_sd"].std(ddof=0) == pytest.approx(1)
    assert facing["received_service"].std(ddof=0) == pytest.approx(
        chain_study.truth["internal_service"]["received_service_sd_points"]
    )


def test_engagement_and_communication_effort_recover_their_truth(chain_study):
    effects = chain_study.truth["effects"]
    unit_waves = _unit_waves(chain_study)
    estimate, se = _fit(
        "engagement ~ received_service_sd + C(wave)", unit_waves, "received_service_sd"
    )
    assert abs(estimate - effects["engagement_on_internal_service"]) < 3 * se
    estimate, se = _fit("comm ~ engagement_latent + C(wave)", unit_waves, "engagement_latent")
    assert abs(estimate - effects["communication_effort_index_points_per_sd_latent"]) < 3 * se


def test_nps_and_brand_promise_recover_their_truth(chain_study):
    effects = chain_study.truth["effects"]
    answers = _answers(chain_study)
    estimate, se = _fit("points ~ received_service_sd + C(wave)", answers, "received_service_sd")
    assert abs(estimate - effects["nps_on_internal_service"]) < 3 * se
    # given true engagement, what is left of received service is the direct path
    formula = "points ~ received_service_sd + engagement_latent + C(wave)"
    estimate, se = _fit(formula, answers, "received_service_sd")
    assert abs(estimate - effects["nps_on_internal_service_direct"]) < 3 * se
    estimate, se = _fit(formula, answers, "engagement_latent")
    assert abs(estimate - effects["nps_points_per_sd_latent_engagement"]) < 3 * se
    promise = answers.dropna(subset=["promise"])
    formula = "promise ~ brand_alignment_latent + C(wave)"
    estimate, se = _fit(formula, promise, "brand_alignment_latent")
    assert abs(estimate - effects["brand_promise_on_brand_alignment"]) < 3 * se


# --------------------------------------------------------------------------------------------
# The switches


def test_no_chain_means_no_chain_effects():
    study = generate(replace(SMALL, internal_service=True, no_chain=True))
    effects = study.truth["effects"]
    assert effects["engagement_on_internal_service"] == 0
    assert effects["nps_on_internal_service"] == 0
    assert effects["nps_via_engagement_share"] is None
    assert effects["brand_promise_on_brand_alignment"] > 0  # brand is not part of the chain
    # and engagement is exactly what it is without the chain (see the streams test)
    hidden = generate(SMALL).latent["unit_waves"]
    assert_frame_equal(study.latent["unit_waves"][hidden.columns].reset_index(drop=True), hidden)


def test_chain_confounding_biases_the_naive_estimate_but_not_the_within_unit_one():
    design = replace(
        CHAIN, seed=4, no_chain=True, chain_confounding=True, chain_confounding_nps=10.0
    )
    study = generate(design)
    assert study.truth["effects"]["nps_on_internal_service"] == 0
    assert study.truth["internal_service"]["confounder_received_service_correlation"] > 0.3
    answers = _answers(study)
    naive, se = _fit("points ~ received_service_sd + C(wave)", answers, "received_service_sd")
    assert naive > 3 * se
    # the trait does not change within a unit, nor does the choice of providers it tilts
    waves = pd.get_dummies(answers["wave"], prefix="wave", drop_first=True, dtype=float)
    waves.columns = [f"wave_{i}" for i in range(waves.shape[1])]
    columns = ["points", "received_service_sd", *waves.columns]
    within = pd.concat([answers[["unit_id", "points", "received_service_sd"]], waves], axis=1)
    # unit fixed effects by the within transformation (Frisch–Waugh–Lovell)
    within[columns] -= within.groupby("unit_id")[columns].transform("mean")
    formula = "points ~ received_service_sd + " + " + ".join(waves.columns) + " - 1"
    estimate, se = _fit(formula, within, "received_service_sd")
    assert abs(estimate) < 3 * se
    # without the switch the same study has no such trait
    plain = generate(replace(design, chain_confounding=False)).truth["internal_service"]
    assert abs(plain["confounder_received_service_correlation"]) < 0.1


def test_the_design_fields_and_their_switches():
    names = {f.name for f in fields(StudyDesign)}
    assert names >= CHAIN_FIELDS
    assert not StudyDesign().internal_service  # off by default: data/sample does not move
    effective = StudyDesign(no_chain=True).effective()
    assert effective.engagement_per_service_sd == effective.nps_direct_per_service_sd == 0
    assert StudyDesign().effective().chain_confounding_nps == 0


def test_synth_command_line_writes_the_chain(tmp_path):
    out = tmp_path / "study"
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "synth", "--out", str(out), "--units", "30",
         "--waves", "3", "--no-chain", "--chain-confounding"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    truth = json.loads((out / "truth.json").read_text())
    assert truth["design"]["internal_service"]  # the chain's switches turn it on
    assert truth["design"]["no_chain"] and truth["design"]["chain_confounding"]
    assert truth["effects"]["nps_on_internal_service"] == 0
    assert "internal_service" in (out / "SYNTHETIC.md").read_text()
    assert load_dataset(out).internal_service is not None
    shown = subprocess.run(
        [sys.executable, "-m", "analysis", "synth", "--help"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    for flag in (
        "--internal-service",
        "--no-chain",
        "--chain-confounding",
        "--engagement-per-service-sd",
        "--nps-direct-per-service-sd",
        "--brand-promise-per-sd",
        "--providers-per-unit",
    ):
        assert flag in shown.stdout
