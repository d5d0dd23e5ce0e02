"""The top of the executive page: the synthetic marker and banner, the scope, the bottom line and
the business translation (issue 12, items 2 and 3)."""

from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from analysis.__main__ import main
from analysis.data.load import SYNTHETIC_FILE, load_dataset
from analysis.data.parameters import (
    ParameterError,
    Parameters,
    parameters_from_mapping,
    resolve_as_of,
)
from analysis.data.synth import StudyDesign, generate, write_study
from analysis.models import translation
from analysis.report.scope import bottom_line, scope_sentence, study_scope

DESIGN = StudyDesign(seed=11, n_units=40, n_waves=4, median_unit_size=10)
FINDING_COLUMNS = [
    "finding",
    "estimand",
    "verdict",
    "estimate",
    "conf_low",
    "conf_high",
    "n_units",
    "sentence",
]
VERDICTS = ("evidence", "no clear evidence", "not estimable")


@pytest.fixture(scope="module")
def synthetic_study(tmp_path_factory) -> Path:
    """A generated study written as synth writes it: tables, truth.json and the marker."""
    return write_study(generate(DESIGN), tmp_path_factory.mktemp("scope") / "synthetic")


@pytest.fixture
def user_copy(synthetic_study, tmp_path) -> Path:
    """The same tables as a user's own folder: no marker, no truth.json."""
    own = tmp_path / "own"
    own.mkdir()
    for path in synthetic_study.glob("*.csv"):
        shutil.copy(path, own / path.name)
    return own


# --------------------------------------------------------------------------------------------
# The marker


def test_synth_writes_the_marker_and_the_loader_reads_it(synthetic_study, capsys):
    marker = synthetic_study / SYNTHETIC_FILE
    assert marker.is_file()
    assert "synthetic" in marker.read_text(encoding="utf-8").lower()
    assert load_dataset(synthetic_study).synthetic is True
    # the marker is not a table: validation reads past it without a word
    assert main(["validate", str(synthetic_study)]) == 0
    assert SYNTHETIC_FILE not in capsys.readouterr().out
    # synth may replace its own folder, marker included (the .inside-out marker lists it)
    write_study(generate(DESIGN), synthetic_study)
    assert marker.is_file()


def test_a_users_dataset_is_not_synthetic(user_copy):
    assert load_dataset(user_copy).synthetic is False
    (user_copy / SYNTHETIC_FILE).mkdir()  # a folder of that name is not the kit's marker
    assert load_dataset(user_copy).synthetic is False


def test_the_marker_is_the_same_bytes_for_the_same_design(synthetic_study, tmp_path):
    again = write_study(generate(DESIGN), tmp_path / "again")
    assert (again / SYNTHETIC_FILE).read_bytes() == (synthetic_study / SYNTHETIC_FILE).read_bytes()


# --------------------------------------------------------------------------------------------
# Scope


def test_scope_counts_equal_counts_from_the_files(synthetic_study):
    dataset = load_dataset(synthetic_study)
    as_of = resolve_as_of(dataset)
    scope = study_scope(dataset, as_of)

    units = pd.read_csv(synthetic_study / "units.csv", dtype=str)
    survey = pd.read_csv(synthetic_study / "employee_survey.csv", dtype=str)
    nps = pd.read_csv(synthetic_study / "customer_nps.csv", dtype=str)
    customers = pd.read_csv(synthetic_study / "customers.csv", dtype=str)
    # ISO dates compare as text; the default as_of is the latest date in the files
    latest = max(
        survey["wave"].max(),
        nps["responded_on"].max(),
        customers["since"].max(),
        customers["churned_on"].dropna().max(),
    )
    first_wave = survey["wave"].min()
    churned_early = customers["churned_on"].notna() & (customers["churned_on"] <= first_wave)
    expected = {
        "start": pd.Timestamp(first_wave),
        "last_wave": pd.Timestamp(survey["wave"].max()),
        "end": pd.Timestamp(latest),
        "units": len(units),
        "customer_facing_units": int((units["customer_facing"] == "true").sum()),
        "waves": survey["wave"].nunique(),
        "staff_answers": len(survey),
        "customer_answers": len(nps),
        "customers": int(((customers["since"] < latest) & ~churned_early).sum()),
        "synthetic": True,
    }
    assert scope == expected
    sentence = scope_sentence(scope)
    assert sentence.startswith(f"This study covers {len(units):,} units (")
    last = expected["last_wave"]
    assert f"over {expected['waves']} survey waves (" in sentence
    assert f" to {last.day} {last:%B %Y}), with customers followed to " in sentence
    assert f"{len(survey):,} staff survey answers" in sentence
    assert f"{len(nps):,} customer NPS answers" in sentence
    assert "synthetic" in sentence


def test_scope_stops_at_as_of(synthetic_study, user_copy):
    dataset = load_dataset(user_copy)
    waves = sorted(dataset.employee_survey["wave"].unique())
    scope = study_scope(dataset, waves[1])
    assert scope["waves"] == 2
    assert scope["staff_answers"] == int((dataset.employee_survey["wave"] <= waves[1]).sum())
    assert scope["synthetic"] is False
    assert "synthetic" not in scope_sentence(scope)
    assert " to 30 June 2024:" in scope_sentence(scope)  # as_of, the second quarterly wave


# --------------------------------------------------------------------------------------------
# Bottom line


def findings_table(nps: str | None, churn: str | None, nps_estimate=4.1, hazard=0.85):
    """A findings table as helper 12-A writes it, with the two headline rows (or fewer)."""
    rows = []
    if nps is not None:
        rows.append(
            ["NPS", "nps_on_engagement", nps, nps_estimate, nps_estimate - 2.9, nps_estimate + 2.9]
        )
    if churn is not None:
        rows.append(["Churn", "churn_hazard_on_engagement", churn, hazard, 0.75, 0.96])
    # not a headline finding: it never decides the bottom line
    rows.append(["Quartile gap", "nps_quartile_gap", "evidence", 9.0, 2.0, 16.0])
    return pd.DataFrame([[*r, 40, "…"] for r in rows], columns=FINDING_COLUMNS)


@pytest.mark.parametrize(
    ("nps", "churn"), list(itertools.product([*VERDICTS, None], [*VERDICTS, None]))
)
def test_bottom_line_follows_the_verdicts(nps, churn):
    line = bottom_line(findings_table(nps, churn))
    found = [v == "evidence" for v in (nps, churn)]
    assert line.count(".") >= 1 and "\n" not in line
    if not any(found):
        assert line.startswith("No clear evidence")
        assert "association" not in line and "units with more engaged staff" not in line
    else:
        assert line.startswith("Yes: " if all(found) else "Partly: ")
        assert line.endswith(
            "These are associations, not proof that raising engagement causes them."
        )
    if nps == "evidence":
        assert (
            "have higher customer NPS (4.1 NPS points per SD of engagement, 95% CI 1.2 to 7.0)"
            in line
        )
    if churn == "evidence":
        assert "keep their customers longer (churn hazard ratio 0.85" in line
    for outcome, verdict in (("customer NPS", nps), ("retention", churn)):
        if verdict == "no clear evidence":
            said = line.lower().split("no clear evidence here that engagement predicts ")[1]
            assert outcome.lower() in said.split(";")[0]
        if verdict in ("not estimable", None) and any(found):
            assert f"{outcome} could not be estimated" in line


def test_bottom_line_states_the_direction_the_estimate_takes():
    line = bottom_line(findings_table("evidence", "evidence", nps_estimate=-4.1, hazard=1.2))
    assert "have lower customer NPS (−4.1 NPS points" in line
    assert "lose customers faster (churn hazard ratio 1.20" in line


def test_bottom_line_refuses_an_unknown_verdict():
    with pytest.raises(ValueError, match="verdict must be one of"):
        bottom_line(findings_table("significant", "evidence"))


# --------------------------------------------------------------------------------------------
# Business translation


def test_customers_kept_against_a_hand_calculation():
    # HR 0.9 (CI 0.8 to 1.0), 0.20 churn events per customer-year, 10,000 customers:
    # 10,000 (e^-0.18 - e^-0.20) = 10,000 (0.8352702 - 0.8187308) = 165.39 kept a year;
    # the interval's ends come from the HR's opposite ends: HR 1.0 keeps 0, HR 0.8 keeps
    # 10,000 (e^-0.16 - e^-0.20) = 10,000 (0.8521438 - 0.8187308) = 334.13.
    result = translation.translate(10_000, 0.20, 0.9, 0.8, 1.0, value_per_customer=1_000)
    assert result["kept"] == pytest.approx(165.39, abs=0.01)
    assert result["kept_low"] == pytest.approx(0.0, abs=1e-9)
    assert result["kept_high"] == pytest.approx(334.13, abs=0.01)
    assert result["value"] == pytest.approx(165_394.6, abs=1)
    assert result["value_high"] == pytest.approx(334_130.4, abs=1)
    # below a small rate the count approaches N · rate · (1 − HR), the rate-difference answer
    assert translation.customers_kept(10_000, 0.001, 0.9) == pytest.approx(1.0, rel=1e-3)
    assert translation.translate(10_000, 0.2, 0.9, 0.8, 1.0)["value"] is None


def test_observed_churn_against_counts_from_the_files(synthetic_study):
    dataset = load_dataset(synthetic_study)
    as_of = resolve_as_of(dataset)
    first_wave = dataset.employee_survey["wave"].min()
    base = translation.observed_churn(dataset, first_wave, as_of)

    units = pd.read_csv(synthetic_study / "units.csv", dtype=str)
    customers = pd.read_csv(synthetic_study / "customers.csv", dtype=str)
    facing = set(units.loc[units["customer_facing"] == "true", "unit_id"])
    customers = customers[customers["unit_id"].isin(facing)]
    churned = customers["churned_on"]
    events = churned.notna() & (churned > str(first_wave.date())) & (churned <= str(as_of.date()))
    years = 0.0
    for since, gone, event in zip(customers["since"], churned, events, strict=True):
        start = max(pd.Timestamp(since), first_wave)
        end = pd.Timestamp(gone) if event else as_of
        years += max((end - start).days, 0) / 365.25
    current = (customers["since"] <= str(as_of.date())) & ~(
        churned.notna() & (churned <= str(as_of.date()))
    )
    assert base.churned == int(events.sum())
    assert base.customer_years == pytest.approx(years, rel=1e-12)
    assert base.current_customers == int(current.sum())
    assert base.annual_rate == pytest.approx(events.sum() / years)
    # synth draws churn at 15% a year at average engagement; the observed share should be near
    assert 0.08 < base.annual_share < 0.25


def test_translation_of_a_study(synthetic_study):
    dataset = load_dataset(synthetic_study)
    estimates = pd.DataFrame(
        [
            {
                "estimand": "churn_hazard_on_engagement",
                "estimate": 0.85,
                "conf_low": 0.75,
                "conf_high": 0.96,
                "p_adjusted": 0.01,
            }
        ]
    )
    parameters = Parameters(value_per_customer=1200)
    result = translation.business_translation(dataset, estimates, parameters)
    assert result["verdict"] == "evidence"
    # synth's index moves about 7-9 points per SD of latent engagement; the true index SD of
    # customer-facing unit-waves is of that size
    assert 3 < result["sd_points"] < 15
    expected = translation.customers_kept(result["customers"], result["annual_rate"], 0.85)
    assert result["kept"] == pytest.approx(expected)
    assert result["value"] == pytest.approx(1200 * expected)
    assert "not proof" in result["rests_on"]
    sentences = translation.translation_sentences(result)
    assert (
        f"one SD is {result['sd_points']:.1f} points on the 0–100 engagement index" in sentences[0]
    )
    assert sentences[1].startswith("An association, not proof of cause:")
    assert f"about {round(expected):,} more customers kept a year" in sentences[1]
    assert sentences[2].startswith("At 1,200 per customer-year, that is about ")
    assert sentences[2].endswith("on the same association.")


def test_translation_without_clear_evidence_claims_nothing(synthetic_study):
    dataset = load_dataset(synthetic_study)
    estimates = pd.DataFrame(
        [
            {
                "estimand": "churn_hazard_on_engagement",
                "estimate": 0.95,
                "conf_low": 0.80,
                "conf_high": 1.12,
                "p_adjusted": 0.6,
            }
        ]
    )
    result = translation.business_translation(dataset, estimates, Parameters(value_per_customer=50))
    assert result["verdict"] == "no clear evidence"
    assert result["kept_low"] < 0 < result["kept_high"]
    sentences = translation.translation_sentences(result)
    assert sentences[1].startswith("No clear evidence here that engagement predicts churn")
    assert "fewer to" in sentences[1] and "association" not in sentences[1]
    assert sentences[2].startswith("In money, at 50 per customer-year, the interval runs from −")
    missing = translation.business_translation(dataset, estimates.iloc[:0], Parameters())
    assert missing["verdict"] == "not estimable" and math.isnan(missing["kept"])
    assert translation.translation_sentences(missing)[1].startswith("The churn model could not")


def test_value_per_customer_is_optional_and_checked():
    assert Parameters().value_per_customer is None
    assert parameters_from_mapping({"value_per_customer": 1200}).value_per_customer == 1200.0
    for bad in (0, -5, "1200", True, float("nan"), 2e9):
        with pytest.raises(ParameterError, match="value_per_customer must be an amount"):
            parameters_from_mapping({"value_per_customer": bad})


# --------------------------------------------------------------------------------------------
# The banner


def rendered_index(data_dir: Path, destination: Path) -> str:
    """One page rendered by the report's own renderer, with the context build_report gives."""
    from analysis.data.provenance import build_manifest
    from analysis.report.build import PAGES, page_context, render_page

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Does engagement show up in what customers do?")]
    )
    executed = destination.with_suffix(".ipynb")
    nbformat.write(notebook, executed)
    dataset = load_dataset(data_dir)
    manifest = build_manifest(data_dir, dataset.files, Parameters(), "run", "2026-01-01T00:00:00")
    context = page_context(PAGES[0], manifest, PAGES, synthetic=dataset.synthetic)
    return render_page(executed, destination, context).read_text(encoding="utf-8")


def test_the_banner_shows_on_a_synthetic_study_only(synthetic_study, user_copy, tmp_path):
    synthetic = rendered_index(synthetic_study, tmp_path / "synthetic.html")
    assert synthetic.count('class="io-banner io-banner-synthetic"') == 1
    assert "<strong>Synthetic data.</strong>" in synthetic
    # the banner sits at the top: before the page's own content
    assert synthetic.index('class="io-banner') < synthetic.index("Does engagement show up")
    real = rendered_index(user_copy, tmp_path / "real.html")
    assert 'class="io-banner' not in real and "Synthetic data" not in real
