"""Response rates from the optional headcount table: Wilson intervals that cover, suppression that
no subtraction undoes, a non-response slope that finds a known truth, and the data page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from analysis.data.load import dataset_from_tables
from analysis.data.synth import StudyDesign, generate
from analysis.measures.intervals import wilson_interval
from analysis.measures.privacy import COMPLEMENTARY, assert_no_disclosure, small_group_reason
from analysis.measures.quality import (
    EVIDENCE,
    NO_CLEAR_EVIDENCE,
    NONRESPONSE_FIELDS,
    NOT_ESTIMABLE,
    RESPONSE_RATE_COLUMNS,
    nonresponse_check,
    response_rates,
)
from analysis.report import findings, sentences

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_GROUP_SIZE = 5
PARENTS = [("wave",), ("region", "wave")]


def _headcount(survey: pd.DataFrame, seed: int = 20261203, most_extra: int = 8) -> pd.DataFrame:
    """Respondents of each unit-wave plus a random number of staff who did not answer."""
    answered = survey.groupby(["unit_id", "wave"])["respondent_id"].nunique()
    extra = np.random.default_rng(seed).integers(0, most_extra, len(answered))
    return (answered + extra).rename("headcount").astype("Int64").reset_index()


@pytest.fixture(scope="module")
def study():
    design = StudyDesign(seed=7, n_units=60, n_waves=4, median_unit_size=12)
    dataset = dataset_from_tables(generate(design).tables)
    headcount = _headcount(dataset.employee_survey)
    rates = response_rates(dataset.employee_survey, headcount, dataset.units, MIN_GROUP_SIZE)
    return dataset, headcount, rates


def _true_counts(dataset, headcount) -> pd.DataFrame:
    survey = dataset.employee_survey
    answered = survey.groupby(["unit_id", "wave"])["respondent_id"].nunique().rename("true_n")
    return headcount.merge(answered.reset_index(), on=["unit_id", "wave"], how="left").fillna(
        {"true_n": 0}
    )


# --- the rates ---------------------------------------------------------------------------------


def test_rates_are_distinct_respondents_over_headcount(study):
    dataset, headcount, rates = study
    assert list(rates.columns) == list(RESPONSE_RATE_COLUMNS)
    assert rates["level"].drop_duplicates().tolist() == ["organisation", "region", "unit"]
    units = rates[rates["level"] == "unit"].merge(
        _true_counts(dataset, headcount), on=["unit_id", "wave"], suffixes=("", "_hr")
    )
    assert len(units) == len(headcount)
    assert (units["headcount"] == units["headcount_hr"]).all()
    shown = units[~units["suppressed"]]
    assert len(shown) > 100
    assert (shown["respondents"] == shown["true_n"]).all()
    np.testing.assert_allclose(shown["response_rate"], shown["true_n"] / shown["headcount"])
    low, high = proportion_confint(shown["true_n"], shown["headcount"], 0.05, method="wilson")
    np.testing.assert_allclose(shown["conf_low"], low, atol=1e-12)
    np.testing.assert_allclose(shown["conf_high"], high, atol=1e-12)
    # the organisation pools its unit-waves: Σ respondents / Σ headcount, wave by wave
    organisation = rates[rates["level"] == "organisation"].set_index("wave")
    pooled = units.groupby("wave")[["true_n", "headcount"]].sum()
    np.testing.assert_allclose(
        organisation["response_rate"], pooled["true_n"] / pooled["headcount"].astype(float)
    )
    assert (organisation["label"] == "Organisation").all()


def test_wilson_interval_covers_at_its_level_by_simulation():
    """Coverage of the 95% interval over unit-sized headcounts and typical response rates.

    18,000 simulated unit-waves (9 settings × 2,000, fixed seed). The binomial SE of the pooled
    coverage estimate is √(0.95 · 0.05 / 18,000) ≈ 0.0016, so sampling moves it by at most
    3 SE ≈ 0.005. Wilson's own coverage is not exactly 95% at small n (it oscillates with n and
    p; Brown, Cai & DasGupta, 2001): its exact mean over these settings, computed below from the
    binomial distribution, is within 0.01 of 0.95. So the simulated coverage must lie within
    0.01 + 3 SE of 0.95, and within 3 SE of the exact value.
    """
    rng = np.random.default_rng(1927)
    draws = 2000
    settings = [(n, p) for n in (10, 30, 100) for p in (0.5, 0.7, 0.85)]
    covered, exact = [], []
    for n, p in settings:
        successes = rng.binomial(n, p, size=draws)
        cache = {k: wilson_interval(int(k), n, 0.95) for k in range(n + 1)}
        covered += [cache[k][0] <= p <= cache[k][1] for k in successes]
        exact.append(
            sum(stats.binom.pmf(k, n, p) for k, (lo, hi) in cache.items() if lo <= p <= hi)
        )
    coverage = float(np.mean(covered))
    se = np.sqrt(0.95 * 0.05 / len(covered))
    assert abs(np.mean(exact) - 0.95) < 0.01
    assert abs(coverage - np.mean(exact)) < 3 * se
    assert abs(coverage - 0.95) < 0.01 + 3 * se


# --- privacy -----------------------------------------------------------------------------------


def test_no_small_group_is_shown_or_recoverable_by_subtraction(study):
    dataset, headcount, rates = study
    units = rates[rates["level"] == "unit"].merge(
        _true_counts(dataset, headcount)[["unit_id", "wave", "true_n"]], on=["unit_id", "wave"]
    )
    small = units["true_n"] < MIN_GROUP_SIZE
    assert small.any()
    assert units.loc[small, "suppressed"].all()
    assert (units.loc[small, "suppression"] == small_group_reason(MIN_GROUP_SIZE)).all()
    hidden = units[units["suppressed"]]
    assert hidden[["respondents", "response_rate", "conf_low", "conf_high"]].isna().all().all()
    assert hidden["headcount"].notna().all()  # HR data, not employee answers
    totals = {
        ("wave",): rates[rates["level"] == "organisation"][["wave", "suppressed"]],
        ("region", "wave"): rates[rates["level"] == "region"][["region", "wave", "suppressed"]],
    }
    for values in (["response_rate"], ["respondents"]):
        assert_no_disclosure(
            units,
            count="true_n",
            values=values,
            min_group_size=MIN_GROUP_SIZE,
            parents=PARENTS,
            totals=totals,
        )
    # and by hand: every published total minus the shown rows under it
    for level, keys in (("region", ["region", "wave"]), ("organisation", ["wave"])):
        published = rates[(rates["level"] == level) & ~rates["suppressed"]]
        assert (published["respondents"] >= MIN_GROUP_SIZE).all()
        for _, total in published.iterrows():
            inside = units[(units[keys] == total[keys]).all(axis=1)]
            rest = total["respondents"] - inside["respondents"].sum(skipna=True)
            holders = inside[inside["suppressed"] & (inside["true_n"] > 0)]
            assert rest == holders["true_n"].sum()
            assert rest == 0 or (rest >= MIN_GROUP_SIZE and len(holders) >= 2)


def _survey(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    """``n`` distinct respondents for each (unit, wave)."""
    rows = [
        {"respondent_id": f"{unit}-{wave}-{i}", "unit_id": unit, "wave": wave}
        for (unit, wave), n in counts.items()
        for i in range(n)
    ]
    survey = pd.DataFrame(rows, columns=["respondent_id", "unit_id", "wave"])
    return survey.assign(wave=pd.to_datetime(survey["wave"]))


def test_complementary_suppression_hides_the_next_smallest_unit():
    """Region R: A has 3 respondents, B 6, C 30. Showing B and the region total would give A's 3
    by subtraction, so B is hidden too. Region S has one unit of 2: its total is withheld, and
    so is one of region R's and the organisation's."""
    wave = "2025-03-31"
    counts = {("A", wave): 3, ("B", wave): 6, ("C", wave): 30, ("D", wave): 2}
    units = pd.DataFrame(
        {
            "unit_id": ["A", "B", "C", "D"],
            "unit_name": ["Alpha", "Beta", "Gamma", "Delta"],
            "region": ["R", "R", "R", "S"],
        }
    )
    headcount = pd.DataFrame(
        {"unit_id": ["A", "B", "C", "D"], "wave": pd.to_datetime([wave] * 4), "headcount": 40}
    )
    rates = response_rates(_survey(counts), headcount, units, MIN_GROUP_SIZE)
    by_label = rates.set_index("label")
    assert by_label.loc["Alpha", "suppression"] == small_group_reason(MIN_GROUP_SIZE)
    assert by_label.loc["Delta", "suppression"] == small_group_reason(MIN_GROUP_SIZE)
    assert by_label.loc["Beta", "suppression"] == COMPLEMENTARY
    assert not by_label.loc["Gamma", "suppressed"]
    assert by_label.loc["Gamma", "respondents"] == 30
    assert by_label.loc["Gamma", "response_rate"] == pytest.approx(30 / 40)
    assert by_label.loc["S", "suppressed"] and pd.isna(by_label.loc["S", "respondents"])
    # Region R (39) and the organisation (41) cannot both be shown: 41 − 39 is D's 2.
    region, organisation = by_label.loc["R"], by_label.loc["Organisation"]
    assert region["suppressed"] or organisation["suppressed"]
    assert region["suppressed"] == pd.isna(region["respondents"])
    if not organisation["suppressed"]:
        assert organisation["respondents"] == 41  # 41 − 30 = 11: A, B and D together
    true_n = {"A": 3, "B": 6, "C": 30, "D": 2}
    units_shown = rates[rates["level"] == "unit"].assign(true_n=lambda t: t["unit_id"].map(true_n))
    assert_no_disclosure(
        units_shown,
        count="true_n",
        values=["respondents"],
        min_group_size=MIN_GROUP_SIZE,
        parents=PARENTS,
        totals={
            ("wave",): rates[rates["level"] == "organisation"][["wave", "suppressed"]],
            ("region", "wave"): rates[rates["level"] == "region"][["region", "wave", "suppressed"]],
        },
    )


def test_unit_wave_with_no_respondent_has_rate_zero_and_is_hidden():
    wave = "2025-03-31"
    units = pd.DataFrame({"unit_id": ["A", "B", "C"], "region": ["R", "R", "R"]})
    headcount = pd.DataFrame(
        {"unit_id": ["A", "B", "C"], "wave": pd.to_datetime([wave] * 3), "headcount": [9, 0, 20]}
    )
    survey = _survey({("A", wave): 0, ("C", wave): 12})
    rates = response_rates(survey, headcount, units, MIN_GROUP_SIZE)
    unit = rates[rates["level"] == "unit"].set_index("unit_id")
    assert unit.loc["A", "suppressed"] and unit.loc["B", "suppressed"]
    assert unit.loc["C", "response_rate"] == pytest.approx(12 / 20)
    assert unit.loc["A", "label"] == "A"  # no unit_name column: the id is the label
    region = rates[rates["level"] == "region"].iloc[0]
    assert region["respondents"] == 12 and region["headcount"] == 29


def test_no_headcount_rows_give_an_empty_table_of_the_same_shape():
    survey = _survey({("A", "2025-03-31"): 7})
    headcount = pd.DataFrame(
        {
            "unit_id": pd.Series([], dtype="string"),
            "wave": pd.Series([], dtype="datetime64[ns]"),
            "headcount": pd.Series([], dtype="Int64"),
        }
    )
    rates = response_rates(survey, headcount, pd.DataFrame({"unit_id": ["A"]}), MIN_GROUP_SIZE)
    assert rates.empty and list(rates.columns) == list(RESPONSE_RATE_COLUMNS)


def test_a_dataset_folder_with_headcount_csv_gives_rates(small_study, tmp_path):
    """The loader's ``Dataset.headcount``, read from a real file, is what the rates take."""
    from analysis.data.load import load_dataset

    if not _loader_reads_headcount():
        pytest.skip("the loader does not read headcount yet")
    survey = pd.read_csv(small_study / "employee_survey.csv", dtype=str)
    counts = survey.groupby(["unit_id", "wave"])["respondent_id"].nunique()
    extra = np.random.default_rng(5).integers(0, 8, len(counts))
    (counts + extra).rename("headcount").reset_index().to_csv(
        small_study / "headcount.csv", index=False
    )
    dataset = load_dataset(small_study)
    rates = response_rates(
        dataset.employee_survey, dataset.headcount, dataset.units, MIN_GROUP_SIZE
    )
    units = rates[rates["level"] == "unit"]
    assert len(units) == len(counts)
    assert units["headcount"].sum() == (counts + extra).sum()
    shown = units[~units["suppressed"]]
    assert (shown["respondents"] >= MIN_GROUP_SIZE).all() and len(shown) > 100


# --- the non-response check ----------------------------------------------------------------------


def _nonresponse_data(slope: float, seed: int, n_units: int = 80, n_waves: int = 4):
    """Unit-waves whose engagement index rises by ``slope`` per 10 points of response rate."""
    rng = np.random.default_rng(seed)
    waves = pd.date_range("2024-03-31", periods=n_waves, freq="QE")
    unit_effect = rng.normal(0, 5, n_units)
    propensity = rng.uniform(0.35, 0.9, n_units)
    rows = []
    for u in range(n_units):
        for w, wave in enumerate(waves):
            headcount = int(rng.integers(8, 40))
            rate = float(np.clip(propensity[u] + rng.normal(0, 0.08), 0.2, 1.0))
            respondents = max(int(round(rate * headcount)), 1)
            engagement = (
                60
                + 2 * w
                + unit_effect[u]
                + slope * 10 * respondents / headcount
                + rng.normal(0, 15 / np.sqrt(respondents))
            )
            rows.append(
                {
                    "unit_id": f"{u:03d}",
                    "wave": wave,
                    "headcount": headcount,
                    "n_respondents": respondents,
                    "engagement_index": engagement,
                }
            )
    table = pd.DataFrame(rows)
    rates = table.assign(
        level="unit",
        respondents=table["n_respondents"],
        response_rate=table["n_respondents"] / table["headcount"],
        suppressed=False,
    )
    unit_wave = table[["unit_id", "wave", "n_respondents", "engagement_index"]].assign(
        suppressed=False
    )
    return rates, unit_wave


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nonresponse_slope_recovers_a_known_truth_within_three_se(seed):
    truth = 2.0  # index points per 10 percentage points of response
    rates, unit_wave = _nonresponse_data(truth, seed)
    check = nonresponse_check(rates, unit_wave, alpha=0.05)
    assert list(check.index) == list(NONRESPONSE_FIELDS)
    assert check["n_units"] == 80 and check["n_obs"] == 320 and check["df"] == 79
    assert abs(check["estimate"] - truth) < 3 * check["std_error"]
    assert check["conf_low"] < check["estimate"] < check["conf_high"]
    assert check["correlation"] > 0


def test_nonresponse_uses_only_shown_unit_waves():
    rates, unit_wave = _nonresponse_data(0.0, seed=4)
    baseline = nonresponse_check(rates, unit_wave)
    # a hidden engagement value, however extreme, and a hidden rate never enter
    unit_wave.loc[0, ["suppressed", "engagement_index"]] = [True, 1e6]
    rates.loc[1, ["suppressed", "response_rate"]] = [True, 1.0]
    unit_wave.loc[1, "engagement_index"] = -1e6
    check = nonresponse_check(rates, unit_wave)
    assert check["n_obs"] == baseline["n_obs"] - 2
    assert abs(check["estimate"] - baseline["estimate"]) < baseline["std_error"]


def test_verdicts_and_sentences_follow_the_findings_conventions():
    assert (EVIDENCE, NO_CLEAR_EVIDENCE, NOT_ESTIMABLE) == findings.VERDICTS
    null = nonresponse_check(*_nonresponse_data(0.0, seed=5))
    assert null["verdict"] == NO_CLEAR_EVIDENCE, null
    sentence = sentences.nonresponse_sentence(null)
    assert sentence.startswith("No clear evidence that engagement is related to response rate")
    assert "95% CI" in sentence and "80 units, 320 unit-waves" in sentence
    assert "includes no relation" in sentence

    strong = nonresponse_check(*_nonresponse_data(4.0, seed=5))
    assert strong["verdict"] == EVIDENCE
    sentence = sentences.nonresponse_sentence(strong)
    assert sentence.startswith("Units where more staff answered had higher engagement: +")
    assert "overstated" in sentence

    # an interval end that rounds to zero at one decimal gets more decimals, not "0.0"
    near = strong.copy()
    near[["estimate", "conf_low", "conf_high"]] = [1.2, 0.03, 2.4]
    assert "95% CI +0.03 to +2.40" in sentences.nonresponse_sentence(near)

    rates, unit_wave = _nonresponse_data(4.0, seed=5, n_units=3)
    few = nonresponse_check(rates, unit_wave)
    assert few["verdict"] == NOT_ESTIMABLE and np.isnan(few["estimate"])
    assert "3 unit(s)" in sentences.nonresponse_sentence(few)


# --- the page ----------------------------------------------------------------------------------


def _cell_text(notebook: dict) -> str:
    parts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts.append("".join(data.get("text/html", "")) + "".join(data.get("text/plain", "")))
            parts.append("".join(output.get("text", "")))
    return "\n".join(parts)


def test_notebook_is_committed_without_outputs():
    notebook = json.loads((PROJECT_ROOT / "notebooks" / "data_quality.ipynb").read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert not cell["outputs"] and cell["execution_count"] is None
    assert "Who answered?" in json.dumps(notebook)


def _loader_reads_headcount() -> bool:
    from analysis.data.load import Dataset

    return "headcount" in getattr(Dataset, "__dataclass_fields__", {})


def _run_page(data: Path, results: Path, out: Path) -> str:
    """The data page run by papermill as the report runs it; its outputs' text."""
    import papermill

    from analysis.report.build import NOTEBOOKS_DIR, _ipc_kernel_manager, _kernel_name

    papermill.execute_notebook(
        str(NOTEBOOKS_DIR / "data_quality.ipynb"),
        str(out),
        parameters={"data_dir": str(data), "output_dir": str(results)},
        kernel_name=_kernel_name(),
        cwd=str(NOTEBOOKS_DIR),
        progress_bar=False,
        kernel_manager_class=_ipc_kernel_manager(),
    )
    return _cell_text(json.loads(out.read_text()))


@pytest.mark.slow
@pytest.mark.skipif(not _loader_reads_headcount(), reason="the loader does not read headcount yet")
def test_data_page_shows_response_rates_only_with_a_headcount(small_study_master, tmp_path):
    """The real notebook on a small study with a headcount.csv, then without one."""
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    survey = pd.read_csv(data / "employee_survey.csv", dtype=str)
    counts = survey.groupby(["unit_id", "wave"])["respondent_id"].nunique()
    extra = np.random.default_rng(13).integers(0, 8, len(counts))
    (counts + extra).rename("headcount").reset_index().to_csv(data / "headcount.csv", index=False)
    text = _run_page(data, tmp_path / "results", tmp_path / "with.ipynb")
    assert "Lowest response in the latest wave" in text
    assert "Response rate (95% CI)" in text
    # the sentence, whatever its verdict on these data
    assert "related to response rate" in text or "Units where more staff answered" in text
    assert "image/png" in (tmp_path / "with.ipynb").read_text()
    assert "need the optional headcount table" not in text

    (data / "headcount.csv").unlink()
    text = _run_page(data, tmp_path / "results2", tmp_path / "without.ipynb")
    assert "need the optional headcount table" in text
    assert "Lowest response" not in text
    assert "related to response rate" not in text and "more staff answered" not in text


def test_the_response_rate_sentence_states_the_latest_wave_and_the_regions_shown():
    study = generate(StudyDesign(seed=5, n_units=40, n_waves=3, median_unit_size=9))
    dataset = dataset_from_tables(study.tables)
    rates = response_rates(dataset.employee_survey, dataset.headcount, dataset.units, 5, 0.95)
    text = sentences.response_rate_sentence(rates)
    organisation = rates[rates["level"] == "organisation"].sort_values("wave").iloc[-1]
    assert text.startswith(f"In the latest wave ({organisation['wave']:%d %B %Y}), ")
    assert f"{100 * organisation['response_rate']:.0f}% of the " in text
    assert f"{int(organisation['respondents']):,} respondents" in text
    shown = rates[(rates["level"] == "region") & ~rates["suppressed"].astype(bool)]
    shown = shown[shown["wave"] == organisation["wave"]]
    lowest = shown.nsmallest(1, "response_rate").iloc[0]
    assert f"ranged from {100 * lowest['response_rate']:.0f}% in {lowest['label']}" in text
    # nothing shown, nothing said
    assert sentences.response_rate_sentence(rates.assign(suppressed=True)) == ""
