"""The leadership report end to end: real papermill, real nbconvert, a real browser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from analysis.report.build import NOTEBOOKS_DIR, PAGES, Page, ReportError, build_report
from tests.conftest import REPORT_PARAMETERS, SMALL_DESIGN, write_study

CHROMIUM = shutil.which("chromium")
PARAMETERS = REPORT_PARAMETERS  # the parameters of the shared report (conftest.report_root)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (make test installs it)",
)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_report_run_lays_out_its_folder(report_root, run_dir):
    assert (report_root / "latest").is_symlink()
    assert run_dir.parent == report_root
    expected = [
        "manifest.json",
        "results/estimates.csv",
        "results/drivers.csv",
        "results/unit_wave.csv",
        "results/nps_by_engagement_quartile.csv",
    ]
    expected += [f"{page.slug}.html" for page in PAGES]
    expected += [f"notebooks/{page.notebook}" for page in PAGES]
    for name in expected:
        assert (run_dir / name).is_file(), name
    assert not list(report_root.glob(".partial-*"))
    # one manifest per run, built once: the results carry the one beside the pages
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert json.loads((run_dir / "results/manifest.json").read_text()) == manifest
    assert manifest["run_id"] == run_dir.name


def test_no_page_shows_a_path_of_the_users_machine(run_dir, report_root, hostile_study):
    """papermill injects the absolute data and output paths; no page may show them."""
    private = {
        str(hostile_study),
        str(hostile_study.resolve()),
        str(report_root),
        str(report_root.resolve()),
        str(Path.home()),
        str(Path(__file__).resolve().parent.parent),  # the checkout
    }
    for page in PAGES:
        text = (run_dir / f"{page.slug}.html").read_text()
        shown = [p for p in private if p in text]
        assert shown == [], (page.slug, shown)


@pytest.mark.parametrize("page", [p.slug for p in PAGES])
def test_every_page_is_self_contained_with_code_hidden(run_dir, page):
    text = (run_dir / f"{page}.html").read_text()
    assert "<script" not in text.lower()
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text, re.I)
    assert external == []
    assert "@import" not in text and "url(http" not in text
    assert "<img" in text and "data:image/png;base64," in text
    images = re.findall(r"<img [^>]*>", text)
    assert all('alt="Figure: ' in image for image in images)  # every figure is described
    assert "setup(" not in text and "import " not in text  # no code, only results
    assert "Traceback" not in text
    for other in PAGES:  # every page links to every other
        assert f'href="{other.slug}.html"' in text


def test_executive_summary_states_findings_with_interval_and_n(run_dir):
    page = (run_dir / "index.html").read_text()
    estimates = pd.read_csv(run_dir / "results/estimates.csv").set_index("estimand")
    main = estimates.loc["nps_on_engagement"]
    assert f"{abs(main['estimate']):.1f} points" in page
    assert f"{int(main['n_units'])} units" in page
    assert "95% CI" in page
    mde = estimates.loc["nps_on_engagement_mde", "estimate"]
    assert f"{mde:.1f} NPS points" in page  # the minimum detectable effect is stated
    assert "reverse" in page.lower() and "within the same unit" in page.lower()


def test_manifest_records_inputs_parameters_and_versions(run_dir, hostile_study):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for name in ("units.csv", "employee_survey.csv", "customer_nps.csv", "customers.csv"):
        digest = hashlib.sha256((hostile_study / name).read_bytes()).hexdigest()
        assert manifest["inputs_sha256"][name] == digest
    assert manifest["parameters"]["bootstrap_draws"] == 200
    assert {"pandas", "statsmodels", "papermill", "nbconvert"} <= set(manifest["packages"])
    assert manifest["git_commit"] and manifest["run_at"]
    footer = (run_dir / "index.html").read_text()
    assert manifest["inputs_sha256"]["units.csv"][:12] in footer


def test_no_respondent_or_customer_identifier_reaches_the_report(run_dir, hostile_study):
    """Every token of every produced file is compared with every identifier in the input."""
    survey = pd.read_csv(hostile_study / "employee_survey.csv", dtype=str)
    customers = pd.read_csv(hostile_study / "customers.csv", dtype=str)
    answers = pd.read_csv(hostile_study / "customer_nps.csv", dtype=str)
    identifiers = (
        set(survey["respondent_id"]) | set(customers["customer_id"]) | set(answers["response_id"])
    )
    for path in run_dir.rglob("*"):
        if path.is_file():
            tokens = set(re.split(r"[^0-9A-Za-z_-]+", path.read_text(errors="ignore")))
            assert not tokens & identifiers, path


def test_unit_names_with_markup_are_shown_as_text(run_dir):
    page = (run_dir / "internal_measures.html").read_text()
    assert "&lt;script&gt;window.__pwned" in page
    assert "<script>window.__pwned" not in page


def test_same_inputs_give_the_same_results(report_root, run_dir, hostile_study):
    again = build_report(hostile_study, report_root, PARAMETERS, progress=lambda _: None)
    for name in ("estimates.csv", "drivers.csv", "unit_wave.csv", "nps_by_engagement_quartile.csv"):
        assert (again / "results" / name).read_bytes() == (
            run_dir / "results" / name
        ).read_bytes(), name
    assert (report_root / "latest").resolve() == again


def test_failed_notebook_stops_the_run_and_keeps_the_last_report(tmp_path, small_study_master):
    root = tmp_path / "reports"
    good = build_report(
        small_study_master, root, PARAMETERS, progress=lambda _: None, pages=PAGES[:1]
    )
    before = _tree(root)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    broken = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    broken.cells = [
        nbformat.v4.new_code_cell("data_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("raise RuntimeError('the chart broke')"),
    ]
    nbformat.write(broken, notebooks / "broken.ipynb")
    with pytest.raises(ReportError) as caught:
        build_report(
            small_study_master,
            root,
            PARAMETERS,
            progress=lambda _: None,
            pages=(Page("index", "broken.ipynb", "Broken"),),
            notebooks_dir=notebooks,
        )
    message = str(caught.value)
    assert "the chart broke" in message and "RuntimeError" in message
    partial = Path(message.split("Partial executed notebook:")[1].split()[0])
    assert partial.is_file() and partial.parent.parent.name.startswith(".failed-")
    assert (root / "latest").resolve() == good
    after = {k: v for k, v in _tree(root).items() if not k.startswith(".failed-")}
    assert after == before


def test_data_too_thin_to_estimate_fails_cleanly(tmp_path):
    tiny = write_study(tmp_path / "tiny", replace(SMALL_DESIGN, n_units=3, n_waves=2))
    root = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "report", "--data", str(tiny), "--out", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2  # valid data, too thin: an input problem, not a bug
    assert "too few units" in result.stderr and "Traceback" not in result.stderr
    assert not (root / "latest").exists()


def test_invalid_data_writes_no_report(tmp_path, small_study_master):
    broken = Path(shutil.copytree(small_study_master, tmp_path / "broken"))
    (broken / "units.csv").write_text("unit_id\n0001\n0001\n")
    root = tmp_path / "reports"
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "report", "--data", str(broken), "--out", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "units.csv" in result.stderr and "unique" in result.stderr
    assert not root.exists() or not any(root.iterdir())


def test_unknown_parameter_is_refused(tmp_path, small_study_master):
    params = tmp_path / "params.yaml"
    params.write_text("min_group_sise: 3\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "report",
            "--data",
            str(small_study_master),
            "--out",
            str(tmp_path / "reports"),
            "--params",
            str(params),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "min_group_sise" in result.stderr and "min_group_size" in result.stderr


def _open_in_chromium(url: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM or "/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            requests, problems, dialogs = [], [], []
            page.on("request", lambda request: requests.append(request.url))
            page.on(
                "console",
                lambda message: (
                    problems.append(message.text) if message.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(url)
            page.wait_for_load_state("networkidle")
            return {
                "requests": requests,
                "problems": problems,
                "dialogs": dialogs,
                "images": page.evaluate(
                    "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
                ),
                "scripts": page.evaluate("document.scripts.length"),
                "pwned": page.evaluate("window.__pwned === undefined ? null : window.__pwned"),
                "text": page.inner_text("body"),
            }
        finally:
            browser.close()


@needs_browser
@pytest.mark.parametrize("page", ["index", "internal_measures"])
def test_pages_open_in_chromium_without_network_errors_or_scripts(run_dir, page):
    seen = _open_in_chromium((run_dir / f"{page}.html").as_uri())
    assert [r for r in seen["requests"] if not r.startswith(("file:", "data:"))] == []
    assert seen["problems"] == []
    assert seen["images"] and all(seen["images"])
    assert seen["scripts"] == 0 and seen["pwned"] is None and seen["dialogs"] == []
    if page == "index":
        # the page shows the findings as decided in findings.csv, whatever their verdict
        findings = pd.read_csv(run_dir / "results" / "findings.csv")
        assert findings["sentence"].iloc[0] in seen["text"]
        assert "95% CI" in seen["text"]
    else:
        assert "<script>window.__pwned" in seen["text"]  # shown as text


def test_notebooks_default_to_the_sample_study_for_interactive_runs():
    """Opened in JupyterLab, each notebook runs on data/sample and computes missing results."""
    from analysis.report.build import NOTEBOOKS_DIR

    for page in PAGES:
        notebook = nbformat.read(NOTEBOOKS_DIR / page.notebook, as_version=4)
        parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        assert 'data_dir = "../data/sample"' in parameters.source
        assert 'output_dir = "../reports/scratch/results"' in parameters.source


@pytest.mark.parametrize("notebook", sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")))
def test_every_notebook_starts_with_one_set_up_call(notebook):
    """The first code cell after ``parameters`` calls ``setup`` once, and nothing imports the
    papermill module (``analysis.report.build``) or estimates by itself."""
    cells = nbformat.read(NOTEBOOKS_DIR / notebook, as_version=4).cells
    code = [c for c in cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    set_up = code[first + 1].source
    assert "from analysis.report.page import setup" in set_up
    assert set_up.count("setup(") == 1
    assert re.search(r"page = setup\(\s*data_dir, output_dir", set_up)
    everything = "".join(c.source for c in code)
    for forbidden in ("analysis.report.build", "ensure_results", "estimate_all", "load_dataset"):
        assert forbidden not in everything, (notebook, forbidden)
    assert all(not c.outputs and c.execution_count is None for c in code)  # committed clean


def test_ensure_results_computes_once_then_reads(small_study_master, tmp_path):
    from analysis.data.results import RESULT_FILES
    from analysis.report.page import ensure_results

    results_dir = tmp_path / "results"
    first = ensure_results(small_study_master, results_dir, PARAMETERS)
    assert set(first) == set(RESULT_FILES)
    stamps = {p.name: p.stat().st_mtime_ns for p in results_dir.iterdir()}
    second = ensure_results(small_study_master, results_dir, PARAMETERS)
    assert {p.name: p.stat().st_mtime_ns for p in results_dir.iterdir()} == stamps
    pd.testing.assert_frame_equal(first["estimates"], second["estimates"])
    # another minimum group size must not reuse tables suppressed for the old one
    stricter = replace(PARAMETERS, min_group_size=12)
    third = ensure_results(small_study_master, results_dir, stricter)
    manifest = json.loads((results_dir / "manifest.json").read_text())
    assert manifest["parameters"]["min_group_size"] == 12
    assert manifest["dataset"]["name"] == small_study_master.name
    small = third["unit_wave"]["n_respondents"] < 12
    assert small.any() and third["unit_wave"].loc[small, "engagement_index"].isna().all()


@pytest.mark.skipif(
    not (Path(__file__).parent.parent / "data/sample/.complete").exists(),
    reason="data/sample is absent (make test generates it)",
)
def test_every_notebook_runs_top_to_bottom_on_its_defaults(tmp_path):
    """As in JupyterLab: no injected parameters, the notebook's own defaults, data/sample."""
    import papermill

    from analysis.report.build import NOTEBOOKS_DIR, _ipc_kernel_manager, _kernel_name

    for page in PAGES:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / page.notebook),
            str(tmp_path / page.notebook),
            kernel_name=_kernel_name(),
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
            kernel_manager_class=_ipc_kernel_manager(),
        )
        executed = nbformat.read(tmp_path / page.notebook, as_version=4)
        assert not any(
            o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", [])
        )


def test_scale_labels_are_one_list_for_tables_figures_and_sentences():
    """One wording per scale (issue 11): the reliability table's, the drivers' figure's and
    their sentence's; an acronym keeps its capitals inside a sentence."""
    from analysis.data.contract import SCALE_NAMES
    from analysis.measures.internal import SCALE_LABELS, scale_label
    from analysis.report.sentences import drivers_sentence

    assert set(SCALE_LABELS) == set(SCALE_NAMES)
    assert scale_label("enps_index") == scale_label("enps") == SCALE_LABELS["enps"]
    drivers = pd.DataFrame(
        {
            "term": ["engagement_index", "enps_index"],
            "estimate": [1.0, 2.0],
            "share": [40.0, 60.0],
            "share_conf_low": [20.0, 35.0],
            "share_conf_high": [65.0, 80.0],
            "significant": [True, True],
            "n_units": [40, 40],
        }
    )
    text = drivers_sentence(drivers)
    enps = SCALE_LABELS["enps"]
    assert f"measures, {enps[0].lower()}{enps[1:]} accounts" in text and "(60%, 95% CI 35%" in text
    assert f"several at once: {enps[0].lower()}{enps[1:]}, engagement." in text


def test_calibration_page_states_the_band_and_rates_by_hand():
    """R = 200: a calibrated 5% rate falls in 0.05 ± 1.96 √(.05 · .95 / 200) = 2.0% to 8.0%;
    3 false alarms in 100 is 3.0%, the naive analysis's 24 in 100 is 4.8 times 5%."""
    from analysis.report.calibration_page import band_statement, false_positive_sentence

    text = band_statement(200, (0.019795, 0.080205), 0.05)
    assert "With 200 replicates" in text and "between 2.0% and 8.0%" in text
    assert "(5% ± 1.96 · √(0.05 · 0.95 / 200))" in text
    summary = pd.DataFrame(
        {
            "role": "no_effect",
            "label": "No effect",
            "estimand": ["nps_on_engagement", "naive_nps_on_engagement"],
            "naive": [False, True],
            "replicates": [100, 100],
            "rejection_rate": [0.03, 0.24],
            "rejection_low": [0.010, 0.168],
            "rejection_high": [0.085, 0.332],
            "rejection_verdict": ["calibrated", "liberal"],
            "mean_model_se": [1.0, 0.5],
            "empirical_se": [1.0, 1.0],
        }
    )
    text = false_positive_sentence(summary)
    assert "our one model called" in text and "3.0% to 3.0% of 100" in text
    assert "1 of 1 model-and-condition rates" in text and "4.8 times" in text


def test_the_page_context_shows_its_dataset_by_name_not_by_path(tmp_path):
    """A notebook cell that ends with ``page`` prints it onto the page: no path may show."""
    from analysis.report.page import PageContext

    shown = repr(PageContext(PARAMETERS, {"estimates": pd.DataFrame()}, tmp_path / "my study"))
    assert "'my study'" in shown and str(tmp_path) not in shown


def _text(markup: str) -> str:
    import html as html_module

    return re.sub(r"\s+", " ", html_module.unescape(re.sub(r"<[^>]+>", " ", markup))).strip()


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "customer_nps.html"])
def test_every_chart_carries_a_sentence_that_answers_its_question(run_dir, page):
    markup = (run_dir / page).read_text()
    main = markup[markup.index("<main") :]
    sections = [s for s in main.split("<h2")[1:] if "<img" in s]
    assert len(sections) >= 2
    for section in sections:
        title = _text(section[: section.index("</h2>")].split(">", 1)[1])
        paragraphs = [
            _text(p) for p in re.findall(r"<(?:p|li)[ >].*?</(?:p|li)>", section, flags=re.S)
        ]
        assert any(len(p) > 60 and re.search(r"\d", p) for p in paragraphs), title


@pytest.mark.slow
def test_the_executive_page_says_what_to_act_on(run_dir):
    text = _text((run_dir / "index.html").read_text())
    for heading in (
        "What to act on",
        "Is engagement moving, and is customer NPS?",
        "Does it differ by region?",
        "Which units need attention?",
    ):
        assert heading in text
    assert re.search(r"(No clear change in engagement|Engagement (rose|fell)) from", text)
    assert re.search(r"(No clear change in customer NPS|Customer NPS (rose|fell)) from", text)
    assert re.search(r"(No clear evidence that customer NPS differs|Customer NPS differs)", text)
    assert "ranked units" in text and "A low rank is a reason to ask" in text


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "engagement_nps.html", "internal_measures.html"])
def test_pages_with_corrected_tests_say_which_correction_and_why(run_dir, page):
    from analysis.report.sentences import MULTIPLE_TESTING

    assert MULTIPLE_TESTING in _text((run_dir / page).read_text())


@pytest.mark.slow
def test_the_reliability_section_says_what_the_correction_changes(run_dir):
    text = _text((run_dir / "internal_measures.html").read_text())
    estimates = pd.read_csv(run_dir / "results/estimates.csv").set_index("estimand")
    ratio = (
        estimates.loc["nps_on_engagement", "estimate"]
        / estimates.loc["nps_on_engagement_uncorrected", "estimate"]
    )
    assert "why the models correct for measurement error" in text
    assert f"the correction changes the headline by a factor of {ratio:.2f}" in text
