"""The walking skeleton end to end: real papermill, real nbconvert, a real browser."""

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

import pandas as pd
import pytest

from analysis.parameters import Parameters
from analysis.report import build_report
from tests.conftest import SMALL_DESIGN, write_study

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="session")
def report_root(small_study_master, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reports")
    build_report(small_study_master, root, Parameters(), progress=lambda _: None)
    return root


@pytest.fixture(scope="session")
def run_dir(report_root) -> Path:
    return (report_root / "latest").resolve()


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_report_run_lays_out_its_folder(report_root, run_dir):
    assert (report_root / "latest").is_symlink()
    assert run_dir.parent == report_root
    for name in (
        "index.html",
        "manifest.json",
        "results/nps_by_engagement_quartile.csv",
        "results/nps_quartile_gap.csv",
        "notebooks/nps_by_engagement.ipynb",
    ):
        assert (run_dir / name).is_file(), name
    assert not list(report_root.glob(".partial-*"))


def test_page_is_self_contained_with_code_hidden(run_dir):
    page = (run_dir / "index.html").read_text()
    assert "<script" not in page.lower()
    external = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.I)
    assert external == []
    assert "@import" not in page and "url(http" not in page
    assert "<img" in page and "data:image/png;base64," in page
    assert "load_dataset(" not in page  # no code, only results
    assert "unit_wave_panel" not in page


def test_page_states_the_numbers_with_intervals_and_n(run_dir):
    page = (run_dir / "index.html").read_text()
    quartiles = pd.read_csv(run_dir / "results/nps_by_engagement_quartile.csv")
    gap = pd.read_csv(run_dir / "results/nps_quartile_gap.csv").iloc[0]
    top = quartiles[quartiles["quartile"] == 4].iloc[0]
    assert "95% CI" in page
    assert f"{top['nps']:.1f}" in page
    assert f"{top['n_responses']:,} answers from {top['n_units']} units" in page
    assert f"{abs(gap['estimate']):.1f} points" in page
    assert len(quartiles) == 4
    assert (quartiles["conf_low"] <= quartiles["nps"]).all()
    assert (quartiles["nps"] <= quartiles["conf_high"]).all()
    assert quartiles["nps"].between(-100, 100).all()


def test_manifest_records_inputs_parameters_and_versions(run_dir, small_study_master):
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for name in ("units.csv", "employee_survey.csv", "customer_nps.csv", "customers.csv"):
        digest = hashlib.sha256((small_study_master / name).read_bytes()).hexdigest()
        assert manifest["inputs_sha256"][name] == digest
    assert manifest["parameters"]["min_group_size"] == 5
    assert {"pandas", "statsmodels", "papermill", "nbconvert"} <= set(manifest["packages"])
    assert manifest["git_commit"]


def test_no_respondent_or_customer_identifier_reaches_the_report(run_dir, small_study_master):
    respondents = set(
        pd.read_csv(small_study_master / "employee_survey.csv", dtype=str)["respondent_id"]
    )
    customers = set(pd.read_csv(small_study_master / "customers.csv", dtype=str)["customer_id"])
    identifier = re.compile(r"\b[RC]\d{6,7}\b")
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".csv", ".json", ".ipynb"}:
            found = set(identifier.findall(path.read_text()))
            assert not found & (respondents | customers), path


def test_same_inputs_give_the_same_numbers(report_root, run_dir, small_study_master):
    again = build_report(small_study_master, report_root, Parameters(), progress=lambda _: None)
    for name in ("nps_by_engagement_quartile.csv", "nps_quartile_gap.csv"):
        assert (again / "results" / name).read_bytes() == (run_dir / "results" / name).read_bytes()
    assert (report_root / "latest").resolve() == again


def test_failed_notebook_leaves_the_previous_report_untouched(tmp_path, small_study_master):
    root = tmp_path / "reports"
    good = build_report(small_study_master, root, Parameters(), progress=lambda _: None)
    before = _tree(root)
    tiny = write_study(tmp_path / "tiny", replace(SMALL_DESIGN, n_units=3, n_waves=2))
    result = subprocess.run(
        [sys.executable, "-m", "analysis", "report", "--data", str(tiny), "--out", str(root)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    assert "too few unit-waves" in result.stderr
    assert "Partial executed notebook:" in result.stderr
    partial = Path(result.stderr.split("Partial executed notebook:")[1].split()[0])
    assert partial.is_file() and partial.parent.parent.name.startswith(".failed-")
    assert (root / "latest").resolve() == good
    after = {k: v for k, v in _tree(root).items() if not k.startswith(".failed-")}
    assert after == before


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


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (make test installs it)",
)
def test_page_opens_in_chromium_without_network_or_errors(run_dir):
    from playwright.sync_api import sync_playwright

    url = (run_dir / "index.html").as_uri()
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
            requests, problems = [], []
            page.on("request", lambda request: requests.append(request.url))
            page.on(
                "console",
                lambda message: (
                    problems.append(message.text) if message.type in ("error", "warning") else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            page.wait_for_load_state("networkidle")
            images = page.evaluate(
                "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
            )
            headline = page.inner_text(".io-headline")
        finally:
            browser.close()
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []
    assert problems == []
    assert images and all(images)
    assert "top engagement quartile" in headline and "95% CI" in headline
