"""report.pdf: a real report run printed by Debian's chromium, read back with poppler-utils."""

from __future__ import annotations

import html
import os
import re
import shutil
import stat
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from analysis.data.parameters import Parameters
from analysis.report.build import (
    BROWSER_VARIABLE,
    PAGES,
    PDF_NAME,
    Page,
    PdfError,
    build_report,
    find_browser,
    render_pdf,
    write_pdf,
)

PARAMETERS = Parameters(bootstrap_draws=200)
# The executive summary listed last: the PDF must still open with it.
PRINTED = (PAGES[2], PAGES[1], PAGES[0])
IN_PDF_ORDER = (PAGES[0], PAGES[2], PAGES[1])
needs_tools = pytest.mark.skipif(
    (shutil.which("chromium") is None or shutil.which("pdftotext") is None)
    and os.environ.get("CI") != "true",
    reason="Debian's chromium and poppler-utils are not installed (make test installs them)",
)


def _flat(text: str) -> str:
    """Text with every run of white space as one space: the PDF wraps lines where it likes."""
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


class _FirstTexts(HTMLParser):
    """The text of the first ``<h1>``, ``<p>`` and ``<li>`` inside ``<main>``."""

    def __init__(self):
        super().__init__()
        self.found: dict[str, str] = {}
        self.open: list[str] = []
        self.in_main = False

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.in_main = True
        if self.in_main and tag in ("h1", "p", "li") and tag not in self.found:
            self.open.append(tag)
            self.found[tag] = ""
        if tag == "a" and ("class", "anchor-link") in attrs:
            self.open.append("skip")

    def handle_endtag(self, tag):
        if self.open and (self.open[-1] == tag or (tag == "a" and self.open[-1] == "skip")):
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] != "skip":
            for tag in self.open:
                if tag != "skip":
                    self.found[tag] += data


def _first_texts(page: Path) -> dict[str, str]:
    parser = _FirstTexts()
    parser.feed(page.read_text(encoding="utf-8"))
    return {tag: _flat(text) for tag, text in parser.found.items()}


@pytest.fixture(scope="module")
def printed_run(small_study_master, tmp_path_factory) -> tuple[Path, list[str], float]:
    """A real report of three pages, with every progress line and the time it took."""
    lines: list[str] = []
    started = time.monotonic()
    run = build_report(
        small_study_master,
        tmp_path_factory.mktemp("reports"),
        PARAMETERS,
        progress=lines.append,
        pages=PRINTED,
    )
    return run, lines, time.monotonic() - started


@pytest.fixture(scope="module")
def pdf_text(printed_run) -> str:
    run, _, _ = printed_run
    result = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(run / PDF_NAME), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.mark.slow
@needs_tools
def test_report_run_publishes_a_pdf_and_says_so_once(printed_run):
    run, lines, _ = printed_run
    pdf = run / PDF_NAME
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    said = [line for line in lines if "pdf" in line.lower()]
    assert len(said) == 1 and said[0].startswith(f"[pdf] {PDF_NAME} ("), lines
    assert (run.parent / "latest").resolve() == run  # published with the pages


@pytest.mark.slow
@needs_tools
def test_pdf_opens_with_the_executive_summary_then_the_other_pages_in_order(printed_run, pdf_text):
    run, _, _ = printed_run
    text = _flat(pdf_text)
    first = _first_texts(run / "index.html")
    # the page's question, its first paragraph and its first finding, in the PDF's first part
    positions = [text.find(first[tag]) for tag in ("h1", "p", "li")]
    assert all(p >= 0 for p in positions), (first, text[:2000])
    # every page starts with the masthead that names it, in the report's order, the executive
    # summary's text before any other page's
    mastheads = [text.find(f"INSIDE OUT {page.title}") for page in IN_PDF_ORDER]
    assert all(p >= 0 for p in mastheads) and mastheads == sorted(mastheads), mastheads
    assert mastheads[0] < min(positions) and max(positions) < mastheads[1]
    pages = subprocess.run(["pdfinfo", str(run / PDF_NAME)], capture_output=True, text=True)
    count = int(re.search(r"^Pages:\s+(\d+)", pages.stdout, re.M).group(1))
    assert count >= len(IN_PDF_ORDER)  # each page of the report starts a printed page


@pytest.mark.slow
@needs_tools
def test_pdf_embeds_every_figure_of_the_pages(printed_run):
    run, _, _ = printed_run
    figures = set()
    for page in PRINTED:
        figures |= set(
            re.findall(
                r'src="data:image/png;base64,([^"]+)"', (run / f"{page.slug}.html").read_text()
            )
        )
    listed = subprocess.run(
        ["pdfimages", "-list", str(run / PDF_NAME)], capture_output=True, text=True, check=True
    ).stdout.splitlines()[2:]
    images = [row.split() for row in listed if row.strip()]
    assert len(figures) >= 3
    assert len(images) >= len(figures), (len(images), len(figures))
    # drawn at a resolution a printer can use, not as thumbnails
    assert all(int(row[3]) >= 400 for row in images), images


@pytest.mark.slow
@needs_tools
def test_pdf_shows_no_respondent_or_customer_identifier(pdf_text, small_study_master):
    survey = pd.read_csv(small_study_master / "employee_survey.csv", dtype=str)
    customers = pd.read_csv(small_study_master / "customers.csv", dtype=str)
    answers = pd.read_csv(small_study_master / "customer_nps.csv", dtype=str)
    identifiers = (
        set(survey["respondent_id"]) | set(customers["customer_id"]) | set(answers["response_id"])
    )
    tokens = set(re.split(r"[^0-9A-Za-z_-]+", pdf_text))
    assert not tokens & identifiers


@pytest.mark.slow
def test_a_missing_browser_publishes_the_html_and_says_in_one_line_how_to_get_the_pdf(
    small_study_master, tmp_path, monkeypatch
):
    # a one-cell page: what is tested is the run around it, not a notebook's figures
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    page = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    page.cells = [
        nbformat.v4.new_code_cell("data_dir = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("# What we found\n\nA page without a PDF."),
    ]
    nbformat.write(page, notebooks / "page.ipynb")
    monkeypatch.setenv(BROWSER_VARIABLE, str(tmp_path / "no-such-chromium"))
    lines: list[str] = []
    run = build_report(
        small_study_master,
        tmp_path / "reports",
        PARAMETERS,
        progress=lines.append,
        pages=(Page("index", "page.ipynb", "Executive summary"),),
        notebooks_dir=notebooks,
    )
    assert "A page without a PDF." in (run / "index.html").read_text()
    assert (tmp_path / "reports" / "latest").resolve() == run
    assert not (run / PDF_NAME).exists()
    said = [line for line in lines if "pdf" in line.lower()]
    assert len(said) == 1 and "\n" not in said[0], lines
    assert said[0].startswith(f"{PDF_NAME} not written") and BROWSER_VARIABLE in said[0]
    assert lines[-1].startswith("Report ready in ")


def test_without_chromium_on_path_the_notice_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv(BROWSER_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no browser on it
    with pytest.raises(PdfError) as caught:
        find_browser()
    message = str(caught.value)
    assert "\n" not in message and "make browser" in message and BROWSER_VARIABLE in message


def _pages_for_printing(run_dir: Path) -> None:
    """Minimal pages with the template's landmarks, for the browser-failure tests."""
    run_dir.mkdir()
    for page in PAGES:
        (run_dir / f"{page.slug}.html").write_text(
            '<!DOCTYPE html><html><head><title>t</title></head><body class="io-report">'
            f'<header class="io-masthead">{page.title}</header>'
            f'<main class="io-main"><h1>{page.title}</h1></main>'
            '<footer class="io-footer">provenance</footer></body></html>'
        )


def _executable(path: Path, script: str) -> str:
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_a_failing_browser_writes_no_pdf_and_never_fails_the_run(tmp_path):
    run_dir = tmp_path / "run"
    _pages_for_printing(run_dir)
    browser = _executable(
        tmp_path / "chromium", "#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n"
    )
    lines: list[str] = []
    assert write_pdf(run_dir, PAGES, lines.append, browser=browser) is None
    assert not (run_dir / PDF_NAME).exists()
    assert len(lines) == 1 and "status 3" in lines[0] and "cannot open display" in lines[0]


def test_a_hung_browser_is_stopped_with_its_children(tmp_path):
    run_dir = tmp_path / "run"
    _pages_for_printing(run_dir)
    marker = tmp_path / "child-alive"
    # the "browser" starts a helper process, as chromium does, then hangs
    browser = _executable(
        tmp_path / "chromium",
        f"#!/bin/sh\n(sleep 3; touch '{marker}') &\nsleep 60\n",
    )
    started = time.monotonic()
    with pytest.raises(PdfError, match="did not finish within 1 s"):
        render_pdf(run_dir, PAGES, browser=browser, timeout=1)
    assert time.monotonic() - started < 5
    time.sleep(3)
    assert not marker.exists()  # the helper went with it
    assert not (run_dir / PDF_NAME).exists()


def test_a_browser_that_cannot_start_writes_no_pdf_and_never_fails_the_run(tmp_path):
    run_dir = tmp_path / "run"
    _pages_for_printing(run_dir)
    browser = _executable(tmp_path / "chromium", "\x7fELF not really a program")
    lines: list[str] = []
    assert write_pdf(run_dir, PAGES, lines.append, browser=browser) is None
    assert len(lines) == 1 and lines[0].startswith(f"{PDF_NAME} not written: "), lines
    assert not (run_dir / PDF_NAME).exists()
