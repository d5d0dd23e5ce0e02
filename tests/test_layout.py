"""Pages a reader can read on a phone and on a desk (issue 12, item 6), in a real browser.

The small study's report (its units named with markup, ``conftest.report_root``) is rendered once
per session; every page is opened in headless Chromium at 390 px
(a phone) and 1280 px (a laptop).
"""

from __future__ import annotations

import os
import shutil

import pytest

from analysis.report.build import PAGES
from analysis.report.figures import COLUMN_PX

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and os.environ.get("CI") != "true",
        reason="Debian's chromium is not installed (make test installs it)",
    ),
]
WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def measured(run_dir) -> dict:
    """Per page and width: the page's and the viewport's widths, and each image's shown size."""
    from playwright.sync_api import sync_playwright

    pages = sorted(p.name for p in run_dir.glob("*.html"))
    seen = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for width in WIDTHS:
                for name in pages:
                    page = browser.new_page(viewport={"width": width, "height": 900})
                    page.goto((run_dir / name).as_uri())
                    seen[name, width] = page.evaluate(
                        """() => ({
                          scroll: document.documentElement.scrollWidth,
                          inner: window.innerWidth,
                          images: [...document.images].map(i => ({
                            natural: i.naturalWidth, shown: i.getBoundingClientRect().width})),
                          tables: [...document.querySelectorAll('table')].map(t => ({
                            right: t.getBoundingClientRect().right,
                            scrolls: getComputedStyle(t).overflowX})),
                        })"""
                    )
                    page.close()
        finally:
            browser.close()
    return seen


def test_every_page_was_rendered(run_dir):
    assert {p.name for p in run_dir.glob("*.html")} >= {f"{p.slug}.html" for p in PAGES}


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways(measured, width):
    """Wide tables and figures scroll in their own box; the page itself never does."""
    for (name, seen_width), seen in measured.items():
        if seen_width == width:
            assert seen["scroll"] <= seen["inner"], f"{name} at {width} px: {seen}"
            for table in seen["tables"]:
                assert table["right"] <= seen["inner"] + 0.5, name
                assert table["scrolls"] == "auto", name


def test_figures_are_shown_at_their_own_size_at_1280_px(measured):
    """At 1280 px no figure is shrunk, so its labels are the size figures.py drew them."""
    for (name, width), seen in measured.items():
        if width == 1280:
            assert seen["images"], name
            for image in seen["images"]:
                assert image["natural"] <= COLUMN_PX * 1.02, name
                assert image["shown"] == pytest.approx(image["natural"], abs=1), name


def test_figures_keep_a_readable_size_on_a_phone(measured):
    """At 390 px a figure is not shrunk to the 362 px column (labels of 5 px) but shown 600 px
    wide, its smallest label 8.5 px, and scrolls sideways in its own box."""
    for (name, width), seen in measured.items():
        if width == 390:
            for image in seen["images"]:
                assert image["shown"] == pytest.approx(min(600, image["natural"]), abs=1), name
