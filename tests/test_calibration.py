"""The calibration study, reduced: our tests hold their level, the naive analysis does not.

The full study (``make validate``) runs hundreds of replicates per condition; here a few dozen
studies of the same design (``calibration.BASE_DESIGN``: 120 units, 4 waves) run once per
module, then the real page is rendered. Tolerances come from the Monte-Carlo error of a rate
over R replicates, ``√(p (1 − p) / R)`` (Morris, White & Crowther, 2019):

* a calibrated test's false-positive rate over R = 24 studies has MC SE
  √(.05 · .95 / 24) = 0.044, so "at most 5% + 3 SE" (0.183) allows 4 false alarms in 24; a
  calibrated test has 5 or more with probability 0.006 (binomial), 6% over the eleven
  (condition, estimand) cells;
* 95% coverage over R = 20 has MC SE 0.049, so "at least 95% − 3 SE" (0.804) needs 17 of 20;
  a calibrated interval misses that with probability 0.016.

The null conditions ran 30 replicates each (at most 5 false alarms in 30). Fewer replicates
buy time, not blindness: the chance that a liberal test still passes is about the same at 24
as at 30, because the allowed count falls with R. A test that rejects 26% of the time (the
naive regression's rate in the full study) fails here with probability 0.79 (0.83 at 30), one
that rejects 15% of the time with probability 0.29 (0.29 at 30). What R = 24 gives up is
margin for a calibrated method (0.006 per cell instead of 0.003). Coverage keeps its 20
replicates: fewer would lower the chance of catching an interval that covers 80% (0.59 at 20,
0.40 at 16). Below 24 the naive regression's pooled band would sit at the edge of 5% on these
seeds (5 of 40 at R = 20: Wilson low 0.055), too close to show the contrast.

Seeds are fixed, so the outcome is the same on every run; the probabilities say how unlucky a
seed would have to be for a calibrated method to fail here.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.synth import StudyDesign, generate
from analysis.studies import calibration
from analysis.studies.calibration import (
    Condition,
    nominal_band,
    rate_with_band,
    replicate_seed,
    summarise,
    verdict,
)
from tests.test_report import _open_in_chromium, needs_browser

#: The study's estimands these conditions answer: those needing nothing beyond contract v1 (no
#: condition here draws the internal-service chain, so none has brand_promise).
ESTIMANDS = tuple(e.name for e in calibration.STUDY_ESTIMANDS if not e.needs)
NULL_REPLICATES = 24
EFFECT_REPLICATES = 20  # the coverage study's 20 replicates, as before (see the docstring)
SMALL = calibration.BASE_DESIGN
CONDITIONS = (
    Condition("no_effect", "no_effect", replace(SMALL, no_effect=True), "No effect of engagement"),
    Condition(
        "no_effect_confounded",
        "no_effect",
        replace(SMALL, no_effect=True, confounding=True),
        "No effect, regions confound",
    ),
    Condition(
        "effect", "effect", SMALL, "Default effects", share=EFFECT_REPLICATES / NULL_REPLICATES
    ),
    # only for the page: too few replicates to assert anything about them (2 each)
    Condition(
        "reverse",
        "reverse",
        replace(SMALL, reverse_causation=True, nps_effect=0.0, churn_hazard_ratio=1.0),
        "Reverse causation only",
        share=0.07,
    ),
    Condition(
        "power_u40_w3",
        "power",
        replace(SMALL, n_units=40, n_waves=3),
        "40 units, 3 waves",
        share=0.07,
        churn=False,
    ),
    Condition(
        "power_u80_w3",
        "power",
        replace(SMALL, n_units=80, n_waves=3),
        "80 units, 3 waves",
        share=0.07,
        churn=False,
    ),
)


def mc_se(p: float, replicates: int) -> float:
    return math.sqrt(p * (1 - p) / replicates)


@pytest.fixture(scope="module")
def calibration_run(tmp_path_factory) -> Path:
    """One real run: simulation on two workers, CSVs, papermill, nbconvert, atomic publish."""
    from analysis.studies.calibration import build_calibration_report

    root = tmp_path_factory.mktemp("calibration")
    return build_calibration_report(
        root, NULL_REPLICATES, conditions=CONDITIONS, workers=2, progress=lambda _: None
    )


@pytest.fixture(scope="module")
def tables(calibration_run) -> dict[str, pd.DataFrame]:
    from analysis.data.results import read_calibration

    return read_calibration(calibration_run / "results")


def _rate(summary: pd.DataFrame, condition: str, estimand: str) -> pd.Series:
    rows = summary[(summary["condition"] == condition) & (summary["estimand"] == estimand)]
    assert len(rows) == 1, (condition, estimand)
    return rows.iloc[0]


# --------------------------------------------------------------------------------------------
# The reduced study


def test_our_false_positive_rate_is_within_three_monte_carlo_errors_of_five_percent(tables):
    summary = tables["summary"]
    ceiling = 0.05 + 3 * mc_se(0.05, NULL_REPLICATES)  # 0.183: at most 4 of 24
    for condition in ("no_effect", "no_effect_confounded"):
        for estimand in ESTIMANDS:
            if condition == "no_effect_confounded" and estimand == "nps_quartile_gap":
                continue  # unadjusted for region by design: it shows the confounded association
            row = _rate(summary, condition, estimand)
            assert row["replicates"] >= NULL_REPLICATES - 2, row.to_dict()  # few or no failures
            assert row["rejection_rate"] <= ceiling, row.to_dict()


def test_naive_analysis_is_visibly_miscalibrated_beside_ours(tables):
    """Its iid SE treats thousands of answers from about 100 units as independent.

    Pooled over both no-effect conditions (R = 48), a calibrated test's Wilson band lies wholly
    above 5% with probability under 2.5%; the naive regression's does (the full study puts its
    rate near 26%, MC SE 0.063 at R = 48), and its rate is above each of our models'.
    """
    replicates = tables["replicates"]
    null = replicates[replicates["condition"].str.startswith("no_effect")]

    def rejections(estimand: str) -> tuple[int, int]:
        p_values = null.loc[null["estimand"] == estimand, "p_value"].dropna()
        return int((p_values < 0.05).sum()), len(p_values)

    naive = rate_with_band(*rejections("naive_nps_on_engagement"))
    assert naive["band_low"] > 0.05, naive
    for estimand in ESTIMANDS[:4]:
        ours = rate_with_band(*rejections(estimand))
        assert naive["rate"] > ours["rate"], (estimand, ours, naive)
    summary = tables["summary"]
    assert "liberal" in set(
        summary.loc[summary["estimand"] == "naive_nps_on_engagement", "rejection_verdict"]
    )


def test_intervals_cover_the_truth(tables):
    summary = tables["summary"]
    replicates = EFFECT_REPLICATES
    floor = 0.95 - 3 * mc_se(0.95, replicates)  # 0.804: at least 17 of 20
    for estimand in ("nps_on_engagement", "nps_on_engagement_within", "churn_hazard_on_engagement"):
        row = _rate(summary, "effect", estimand)
        assert row["replicates"] >= replicates - 2
        assert row["coverage"] >= floor, row.to_dict()
    # a forward effect alone must not look like reverse causation
    reverse = _rate(summary, "effect", "engagement_on_prior_nps")
    assert reverse["rejection_rate"] <= 0.05 + 3 * mc_se(0.05, replicates)


def test_replicates_are_tidy_and_reproducible(tables):
    """The same seed gives the same rows, whatever process ran it."""
    replicates = tables["replicates"]
    assert list(replicates.columns) == list(calibration.REPLICATE_COLUMNS)
    main = replicates[~replicates["condition"].str.startswith("power")]
    assert not main["failure"].str.len().any()  # (3-wave grid cells cannot have a 12-month gap)
    assert set(replicates["estimand"]) == set(ESTIMANDS) | set(calibration.NAIVE_ESTIMANDS)
    null = replicates[replicates["condition"] == "no_effect"]
    assert null["seed"].nunique() == NULL_REPLICATES
    again = calibration.run_study(
        CONDITIONS[:1], 2, workers=1, progress=lambda _: None
    )  # replicates 0 and 1 of "no_effect", in this process this time
    first = null[null["replicate"] < 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        again.drop(columns="failure"),
        first.drop(columns="failure"),
        check_dtype=False,
        rtol=1e-9,
    )


# --------------------------------------------------------------------------------------------
# The report page


def test_report_is_published_with_its_tables(calibration_run):
    root = calibration_run.parent
    assert (root / "latest").resolve() == calibration_run
    for name in (
        "index.html",
        "manifest.json",
        "results/replicates.csv",
        "results/summary.csv",
        "results/conditions.csv",
        "notebooks/calibration.ipynb",
    ):
        assert (calibration_run / name).is_file(), name
    assert not list(root.glob(".partial-*")) and not list(root.glob(".failed-*"))


def test_page_is_self_contained_and_states_its_bands(calibration_run, tables):
    text = (calibration_run / "index.html").read_text()
    assert "<script" not in text.lower() and "Traceback" not in text
    assert re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I) == []
    images = re.findall(r"<img [^>]*>", text)
    assert len(images) >= 3 and all('alt="Figure: ' in image for image in images)
    assert "import " not in text  # code hidden
    assert "Monte-Carlo" in text and "calibrated" in text
    assert f"With {NULL_REPLICATES} replicates" in text  # the band is stated
    naive = _rate(tables["summary"], "no_effect", "naive_nps_on_engagement")
    assert f"{100 * naive['rejection_rate']:.1f}%" in text


@needs_browser
def test_page_opens_in_chromium_without_network_or_errors(calibration_run):
    seen = _open_in_chromium((calibration_run / "index.html").as_uri())
    assert [r for r in seen["requests"] if not r.startswith(("file:", "data:"))] == []
    assert seen["problems"] == [] and seen["scripts"] == 0
    assert seen["images"] and all(seen["images"])
    assert "false alarm" in seen["text"]


def test_notebook_is_committed_without_outputs():
    import nbformat

    from analysis.report.build import NOTEBOOKS_DIR

    notebook = nbformat.read(NOTEBOOKS_DIR / "calibration.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    parameters = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1 and "output_dir =" in parameters[0].source


def test_a_failed_run_keeps_the_previous_report(tmp_path):
    from analysis.report.build import staged_run

    with staged_run(tmp_path) as (staging, run_id):
        (staging / "index.html").write_text("good")
    good = (tmp_path / "latest").resolve()
    with (
        pytest.raises(RuntimeError, match="simulation broke"),
        staged_run(tmp_path) as (staging, _),
    ):
        (staging / "index.html").write_text("half")
        raise RuntimeError("simulation broke")
    assert (tmp_path / "latest").resolve() == good == tmp_path / run_id
    assert (good / "index.html").read_text() == "good"
    assert len(list(tmp_path.glob(".failed-*"))) == 1


# --------------------------------------------------------------------------------------------
# Summary functions against hand calculations


def test_rate_band_matches_a_hand_calculation():
    """10 false alarms in 200: MC SE √(.05 · .95 / 200) = 0.015411; Wilson (z = 1.959964)
    centre (0.05 + z²/400) / (1 + z²/200) = 0.058480, half-width
    z / (1 + z²/200) · √(.05 · .95 / 200 + z² / 160000) = 0.031098."""
    band = rate_with_band(10, 200)
    assert band["rate"] == 0.05
    assert band["mc_se"] == pytest.approx(0.015411, abs=1e-6)
    assert band["band_low"] == pytest.approx(0.027383, abs=1e-6)
    assert band["band_high"] == pytest.approx(0.089578, abs=1e-6)
    low, high = nominal_band(0.05, 200)  # 0.05 ± 1.96 · 0.015411
    assert low == pytest.approx(0.019795, abs=1e-6) and high == pytest.approx(0.080205, abs=1e-6)
    assert np.isnan(rate_with_band(0, 0)["rate"])


def test_verdicts():
    assert verdict(0.02, 0.09, 0.05) == "calibrated"
    assert verdict(0.21, 0.35, 0.05) == "liberal"
    assert verdict(0.0, 0.04, 0.05) == "conservative"
    assert verdict(0.80, 0.90, 0.95) == "undercovers"
    assert verdict(0.96, 1.0, 0.95) == "overcovers"


def test_summarise_by_hand():
    """Four replicates of one estimand with truth 2: p-values .01, .2, .04, .5 reject twice;
    intervals cover 2 in three of four; estimates 1, 2, 3, 6 give bias 1 and
    MC SE sd/√4 = 2.16/2."""
    replicates = pd.DataFrame(
        {
            "condition": "effect",
            "replicate": range(4),
            "seed": range(4),
            "estimand": "nps_on_engagement",
            "term": "engagement_sd",
            "estimate": [1.0, 2.0, 3.0, 6.0],
            "std_error": [1.0, 1.0, 1.0, 2.0],
            "conf_low": [0.0, 1.0, 2.5, 1.0],
            "conf_high": [2.5, 3.0, 4.0, 9.0],
            "p_value": [0.01, 0.2, 0.04, 0.5],
            "n_obs": 100,
            "n_units": 10,
            "truth": 2.0,
            "failure": "",
        }
    )
    failed = replicates.iloc[:1].assign(
        replicate=4, estimate=np.nan, p_value=np.nan, failure="EstimationError: too few"
    )
    conditions = calibration.conditions_table([Condition("effect", "effect", SMALL, "Effect")], 4)
    row = summarise(pd.concat([replicates, failed]), conditions).iloc[0]
    assert row["replicates"] == 4 and row["failed"] == 1
    assert row["rejection_rate"] == 0.5
    assert row["coverage"] == 0.75
    assert row["bias"] == pytest.approx(1.0)
    sd = np.std([1.0, 2.0, 3.0, 6.0], ddof=1)
    assert row["empirical_se"] == pytest.approx(sd)
    assert row["bias_mc_se"] == pytest.approx(sd / 2)
    assert row["mean_model_se"] == pytest.approx(1.25)
    assert row["rejection_verdict"] == ""  # truth is not "no effect": that rate is power


def test_ratio_estimands_are_summarised_on_the_log_scale():
    replicates = pd.DataFrame(
        {
            "condition": "no_effect",
            "replicate": [0, 1],
            "seed": [0, 1],
            "estimand": "churn_hazard_on_engagement",
            "term": "engagement_sd",
            "estimate": [np.e, 1 / np.e],
            "std_error": 0.5,
            "conf_low": [1.5, 0.2],
            "conf_high": [5.0, 0.9],
            "p_value": [0.01, 0.02],
            "n_obs": 100,
            "n_units": 10,
            "truth": 1.0,
            "failure": "",
        }
    )
    no_effect = Condition("no_effect", "no_effect", SMALL, "No effect")
    conditions = calibration.conditions_table([no_effect], 2)
    row = summarise(replicates, conditions).iloc[0]
    assert row["bias"] == pytest.approx(0.0)  # log e + log 1/e = 0
    assert row["coverage"] == 0.0 and row["rejection_rate"] == 1.0


def test_seeds_are_stable_and_distinct():
    assert replicate_seed(1, "no_effect", 0) == replicate_seed(1, "no_effect", 0)
    seeds = {replicate_seed(1, c, i) for c in ("no_effect", "effect") for i in range(100)}
    assert len(seeds) == 200
    assert replicate_seed(2, "no_effect", 0) != replicate_seed(1, "no_effect", 0)


def test_naive_regression_is_textbook_ols():
    """The closed form equals statsmodels' OLS with its default (iid) covariance."""
    import statsmodels.api as sm

    from analysis.data.load import dataset_from_tables
    from analysis.measures.panel import unit_wave_panel

    study = generate(StudyDesign(seed=11, n_units=30, n_waves=3))
    dataset = dataset_from_tables(study.tables)
    panel = unit_wave_panel(dataset)
    row = calibration.naive_nps_on_engagement(dataset, panel)
    answers = dataset.customer_nps.assign(
        quarter=dataset.customer_nps["responded_on"].dt.to_period("Q")
    )
    waves = panel.dropna(subset=["engagement_index"]).assign(
        quarter=panel["wave"].dt.to_period("Q")
    )
    merged = answers.merge(waves, on=["unit_id", "quarter"])
    score = np.select(
        [merged["likelihood_to_recommend"] >= 9, merged["likelihood_to_recommend"] <= 6],
        [100.0, -100.0],
        0.0,
    )
    sd = panel.loc[panel["customer_facing"].astype(bool), "engagement_index"].std()
    fit = sm.OLS(score, sm.add_constant(merged["engagement_index"].to_numpy(float) / sd)).fit()
    assert row["estimate"] == pytest.approx(fit.params[1])
    assert row["std_error"] == pytest.approx(fit.bse[1])
    assert row["p_value"] == pytest.approx(fit.pvalues[1])
    assert row["n_obs"] == len(merged)


def test_in_memory_dataset_is_validated_like_files(small_study_master):
    from analysis.data.load import DatasetError, dataset_from_tables, load_dataset

    study = generate(StudyDesign(seed=7, n_units=60, n_waves=4, median_unit_size=12))
    in_memory = dataset_from_tables(study.tables)
    from_files = load_dataset(small_study_master)  # the same design, written as CSV
    for name, frame in in_memory.tables().items():
        pd.testing.assert_frame_equal(frame, from_files.tables()[name], check_dtype=True)
    broken = dict(study.tables, customers=study.tables["customers"].assign(unit_id="nowhere"))
    with pytest.raises(DatasetError, match="customers \\(in memory\\).*not in the units table"):
        dataset_from_tables(broken)
    assert (study.tables["customers"]["unit_id"] != "nowhere").all()  # input untouched


def test_command_refuses_bad_parameters_and_explains_replicates(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "analysis", "calibrate", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = run("--out", str(tmp_path / "c"), "--replicates", "1")
    assert refused.returncode == 2 and "at least 2" in refused.stderr
    assert not (tmp_path / "c").exists()
    shown = run("--help")
    assert shown.returncode == 0
    assert "--replicates" in shown.stdout and "Monte-Carlo" in shown.stdout
