"""The "Internal service" page (issue 15, item 6): rendered only for data with internal service.

Fast tests call ``analysis.report.service_page`` on hand-made rows: the chain's and the brand's
estimands may be absent (another part of the kit adds them), present with evidence, or present
without; each reads as its verdict says. The slow tests render a small synthetic study with
papermill and nbconvert, add hand-made chain and brand rows, open the pages in headless
Chromium, and check that a version-1 study renders the same pages as before, with no link.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import Parameters
from analysis.report import service_page
from analysis.report.build import PAGES, SERVICE_PAGE, pages_for

matplotlib.use("Agg")

ALPHA = 0.05
UNITS = pd.DataFrame({"unit_id": ["A", "B", "C"], "unit_name": ["Alpha", "Beta", "<b>Gamma</b>"]})


def _estimate_row(estimand, estimate, low, high, p, units=40, obs=120):
    return {
        "estimand": estimand,
        "term": "x",
        "estimate": estimate,
        "std_error": (high - low) / 3.92,
        "conf_low": low,
        "conf_high": high,
        "p_value": p,
        "p_adjusted": p,
        "n_obs": obs,
        "n_units": units,
        "method": "hand-made",
    }


def _title(figure) -> str:
    """The first axes' title wherever it sits: the house style (use_house_style, run by other
    tests in the same process) puts titles on the left, matplotlib's default in the centre."""
    axes = figure.axes[0]
    titles = " ".join(axes.get_title(loc=where) for where in ("left", "center", "right"))
    return " ".join(titles.split())  # a long title wraps onto lines


def chain_estimates() -> pd.DataFrame:
    """Hand-made rows as the chain's estimands would write them: one clear, one not."""
    return pd.DataFrame(
        [
            _estimate_row("nps_on_engagement", 4.0, 2.0, 6.0, 0.001),
            _estimate_row("engagement_on_internal_service", 2.4, 1.1, 3.7, 0.002),
            _estimate_row("nps_on_internal_service", 0.8, -0.9, 2.5, 0.35),
            _estimate_row("nps_via_engagement_share", 0.42, 0.1, 0.8, 0.03),
            _estimate_row("nps_on_internal_service_within", 0.3, -1.5, 2.1, 0.7),
            _estimate_row("brand_promise_on_brand_alignment", 1.9, 0.6, 3.2, 0.004),
        ]
    )


def brand_table(disagree: bool = True) -> pd.DataFrame:
    wave = pd.Timestamp("2024-12-31")
    return pd.DataFrame(
        {
            "unit_id": ["A", "B", "C"],
            "wave": [wave] * 3,
            "n_staff": [12, 9, 3],
            "staff_alignment": [78.0, 60.0, np.nan],
            "staff_conf_low": [71.0, 51.0, np.nan],
            "staff_conf_high": [85.0, 69.0, np.nan],
            "n_customers": [80, 45, 30],
            "brand_promise_index": [55.0, 62.0, 70.0],
            "promise_conf_low": [50.0, 55.0, 62.0],
            "promise_conf_high": [60.0, 69.0, 78.0],
            "difference_z": [5.1, -0.4, np.nan],
            "p_adjusted": [0.0001 if disagree else 0.4, 0.9, np.nan],
            "disagrees": [disagree, False, False],
        }
    )


def test_the_chain_reads_each_verdict_with_its_argument():
    items = service_page.chain_items(chain_estimates(), None, ALPHA)
    assert [label for label, _, _ in items] == [s["label"] for s in service_page.CHAIN.values()]
    sentences = {label: sentence for label, sentence, _ in items}
    clear = sentences["Internal service → engagement"]
    # the findings' own sentences (one place puts findings into words), verdict first
    assert clear.startswith("Units that received internal service one standard deviation better")
    assert "2.4" in clear and "95% CI +1.1 to +3.7" in clear and "40 units" in clear
    assert "association between units" in clear
    unclear = sentences["Internal service → customer NPS"]
    assert unclear.startswith("No clear evidence of a link between the internal service")
    assert "includes no difference" in unclear and "40 units" in unclear
    # the total service–NPS link is not clear, so its share through engagement is not judged
    share = sentences["Share of the service–NPS link through engagement"]
    assert share.startswith("The share of the internal service–NPS link")
    assert "could not be estimated" in share and "no clear link" in share
    clear_total = chain_estimates()
    clear_total.loc[clear_total["estimand"] == "nps_on_internal_service", "p_adjusted"] = 0.001
    clear_total.loc[clear_total["estimand"] == "nps_on_internal_service", "conf_low"] = 0.2
    items = service_page.chain_items(clear_total, None, ALPHA)
    share = {label: sentence for label, sentence, _ in items}[
        "Share of the service–NPS link through engagement"
    ]
    assert share.startswith("About 42% of the link between internal service and customer NPS")
    assert "+10% to +80%" in share
    for _, _, argument in items:
        assert argument.startswith("How it is identified:")
    html = service_page.chain_html(chain_estimates(), None, ALPHA)
    assert html.count("<h3>") == 4 and "How it is identified" in html


def test_an_unbounded_interval_reads_as_such():
    rows = chain_estimates()
    share = rows["estimand"] == "nps_via_engagement_share"
    rows.loc[share, ["conf_low", "conf_high", "p_adjusted"]] = [-np.inf, np.inf, 0.4]
    rows.loc[rows["estimand"] == "nps_on_internal_service", ["p_adjusted", "conf_low"]] = [
        0.001,
        0.2,
    ]
    sentence = {label: s for label, s, _ in service_page.chain_items(rows, None, ALPHA)}[
        "Share of the service–NPS link through engagement"
    ]
    assert sentence.startswith("No clear evidence") and "95% CI unbounded" in sentence
    assert "inf" not in sentence


def test_a_findings_sentence_wins_over_one_built_here():
    findings = pd.DataFrame(
        {"estimand": ["nps_on_internal_service"], "sentence": ["No clear evidence from findings."]}
    )
    items = dict((label, s) for label, s, _ in service_page.chain_items(None, findings, ALPHA))
    assert items == {"Internal service → customer NPS": "No clear evidence from findings."}


def test_without_the_chain_rows_the_section_says_so_and_nothing_fails():
    v1 = pd.DataFrame([_estimate_row("nps_on_engagement", 4.0, 2.0, 6.0, 0.001)])
    assert service_page.chain_items(v1, None, ALPHA) == []
    assert "not among this run's results" in _text(service_page.chain_html(v1, None, ALPHA))
    assert "not among this run's results" in _text(service_page.chain_html(None, None, ALPHA))
    missing = _estimate_row("nps_on_internal_service", np.nan, np.nan, np.nan, np.nan)
    ((_, sentence, _),) = service_page.chain_items(pd.DataFrame([missing]), None, ALPHA)
    assert "could not be estimated" in sentence


def test_brand_alignment_on_both_sides_reads_as_its_tests_say():
    markup = service_page.brand_alignment_html(brand_table(), chain_estimates(), None, UNITS, ALPHA)
    html = _text(markup)
    assert "In 1 of the 2 units shown" in html and "Alpha" in html
    assert "78.0 (95% CI 71.0 to 85.0; 12 staff)" in html and "80 customers" in html
    assert "Units whose staff were one standard deviation higher in brand alignment" in html
    assert "Gamma" not in html  # C has no staff figure: not in the table
    quiet = _text(service_page.brand_alignment_html(brand_table(False), None, None, UNITS, ALPHA))
    assert "No clear evidence that staff and customers see the brand differently" in quiet
    absent = _text(service_page.brand_alignment_html(None, None, None, UNITS, ALPHA))
    assert "not among this run's results" in absent
    assert service_page.brand_figure(None, UNITS) is None
    figure = service_page.brand_figure(brand_table(), UNITS)
    assert "3 units" not in _title(figure) and "2 units" in _title(figure)


def _scores() -> pd.DataFrame:
    """Scorecards as released: two teams shown in two waves, one hidden."""
    from analysis.models.service_release import SCORECARD_COLUMNS

    w1, w2 = pd.Timestamp("2024-06-30"), pd.Timestamp("2024-12-31")
    rows = []
    for provider, wave, n, index, hidden in [
        ("A", w1, 20, 70.0, False),
        ("A", w2, 22, 80.0, False),
        ("B", w1, 9, 60.0, False),
        ("B", w2, 8, 61.0, False),
        ("C", w2, 3, np.nan, True),
    ]:
        row = dict.fromkeys(SCORECARD_COLUMNS, np.nan)
        row.update(
            provider_unit_id=provider,
            wave=wave,
            n_raters=n,
            service_index=index,
            conf_low=index - 5,
            conf_high=index + 5,
            service_index_noise_var=6.0,
            suppressed=hidden,
            suppression="fewer than 5 respondents" if hidden else "",
        )
        for item in service_page.POINT_LABELS:
            row[f"{item}_index"] = index
            row[f"{item}_n"] = n
        rows.append(row)
    table = pd.DataFrame(rows)
    latest = table["wave"] == w2
    table.loc[latest & ~table["suppressed"], "rank"] = [1, 2]
    table.loc[latest & ~table["suppressed"], "n_ranked"] = 2
    table.loc[latest & ~table["suppressed"], "shrunken"] = [78.0, 63.0]
    table.loc[latest & ~table["suppressed"], "shrunken_conf_low"] = [72.0, 55.0]
    table.loc[latest & ~table["suppressed"], "shrunken_conf_high"] = [84.0, 71.0]
    table.loc[latest & ~table["suppressed"], "change"] = [10.0, 1.0]
    table.loc[latest & ~table["suppressed"], "change_conf_low"] = [3.2, -5.8]
    table.loc[latest & ~table["suppressed"], "change_conf_high"] = [16.8, 7.8]
    table.loc[latest & ~table["suppressed"], "change_p_value"] = [0.004, 0.77]
    return table


def test_an_index_noised_past_the_scale_is_shown_at_its_end_and_marked():
    """Laplace noise on a small team's index can carry it past 100 (the file keeps it, so it
    stays unbiased); a reader sees 100 with a mark and a note, never '123.9 (89.1 to 100.0)'."""
    scores = _scores()
    latest = scores["wave"] == scores["wave"].max()
    first = scores.index[latest & ~scores["suppressed"]][0]
    scores.loc[first, ["service_index", "conf_low", "conf_high"]] = [123.9, 89.1, 100.0]
    scores.loc[first, "poc_listening_index"] = -4.0
    table = _text(service_page.scorecard_table_html(scores, UNITS))
    assert f"100.0{service_page.PAST_THE_SCALE} (89.1 to 100.0)" in table
    assert "123.9" not in table and service_page.PAST_THE_SCALE_NOTE in table
    points = _text(service_page.points_table_html(scores, UNITS))
    assert f"0{service_page.PAST_THE_SCALE} (22)" in points and "-4" not in points
    plain = _text(service_page.scorecard_table_html(_scores(), UNITS))
    assert service_page.PAST_THE_SCALE not in plain  # nothing clipped, no mark, no note
    figure = service_page.scorecard_figure(scores, UNITS)
    measured = [line for line in figure.axes[0].lines if len(line.get_xdata())]
    assert all(0 <= x <= 100 for line in measured for x in line.get_xdata())
    brand = brand_table()
    brand.loc[0, ["staff_alignment", "staff_conf_high"]] = [101.6, 100.0]
    table = _text(service_page.brand_table_html(brand, UNITS))
    assert f"100.0{service_page.PAST_THE_SCALE} (71.0 to 100.0; 12)" in table
    assert "101.6" not in table and service_page.PAST_THE_SCALE_NOTE in table


def test_scorecards_in_words_table_and_figures():
    scores = _scores()
    text = _text(service_page.scorecard_sentence(scores, UNITS, 5, ALPHA))
    assert "3 internal teams were rated; 2 had at least 5 raters" in text
    assert "1 had fewer and are suppressed" in text
    assert "the highest was Alpha (78.0" in text and "22 raters" in text
    assert "1 of the 2 teams compared" in text and "Alpha +10.0 points" in text
    table = service_page.scorecard_table_html(scores, UNITS)
    assert "suppressed: fewer than 5 respondents" in table and "&lt;b&gt;Gamma&lt;/b&gt;" in table
    assert "<b>Gamma" not in table
    network = pd.DataFrame(
        {
            "rater_unit_id": ["B", "C", "Z"],
            "provider_unit_id": ["A", "A", "B"],
            "wave": [pd.Timestamp("2024-12-31")] * 3,
            "n_raters": [6, 5, 7],
            "service_index": [81.0, np.nan, 60.0],
            "conf_low": [70.0, np.nan, 50.0],
            "conf_high": [90.0, np.nan, 70.0],
            "suppressed": [False, True, False],
            "suppression": ["", "complementary (protects a small group)", ""],
        }
    )
    for figure in (
        service_page.scorecard_figure(scores, UNITS),
        service_page.network_figure(scores, network, UNITS, 5),
        service_page.network_figure(scores.iloc[:0], network.iloc[:0], UNITS, 5),
    ):
        figure.canvas.draw()
    sentence = service_page.network_sentence(scores, network, UNITS, 5)
    assert "3 links" in sentence and "Alpha (2 units)" in sentence
    # suppressed teams appear in the figure without a value
    words = [t.get_text() for t in service_page.scorecard_figure(scores, UNITS).axes[0].texts]
    assert any("suppressed" in w and "n = 3" in w for w in words)


def test_the_network_layout_keeps_teams_apart_and_raters_inside():
    edges = pd.DataFrame({"rater_unit_id": ["X", "Y"], "provider_unit_id": ["A", "B"]})
    where = service_page.network_layout(["A", "B", "C"], ["X", "Y"], edges)
    assert np.hypot(*where["A"]) == pytest.approx(1) and np.hypot(*where["X"]) < 0.5
    assert len({tuple(np.round(p, 6)) for p in where.values()}) == 5


def test_the_executive_section_is_empty_for_a_version_one_run():
    v1 = {"estimates": pd.DataFrame([_estimate_row("nps_on_engagement", 4, 2, 6, 0.001)])}
    assert service_page.executive_html(v1, UNITS, 5, ALPHA) == ""
    v2 = {"estimates": chain_estimates(), "internal_service": _scores()}
    html = service_page.executive_html(v2, UNITS, 5, ALPHA)
    assert 'href="internal_service.html"' in html and "Internal service and the brand" in html
    empty = {"estimates": v1["estimates"], "internal_service": _scores().iloc[:0]}
    assert service_page.executive_html(empty, UNITS, 5, ALPHA) == ""  # no rows: no page to link
    brand_only = {"estimates": chain_estimates(), "brand_alignment": brand_table()}
    html = _text(service_page.executive_html(brand_only, UNITS, 5, ALPHA))
    assert "internal_service.html" not in html and "see the brand differently" in html


def test_only_a_dataset_with_internal_service_gets_the_page(small_study_master, tmp_path):
    assert pages_for(load_dataset(small_study_master)) == PAGES
    study = _v2_study(tmp_path / "v2")
    pages = pages_for(load_dataset(study))
    slugs = [p.slug for p in pages]
    assert SERVICE_PAGE in pages and slugs.index("internal_service") == 3
    assert [p for p in pages if p != SERVICE_PAGE] == list(PAGES)


def _v2_study(directory: Path) -> Path:
    from analysis.data.synth import StudyDesign, generate, truth_json

    study = generate(StudyDesign(seed=5, n_units=40, n_waves=3, internal_service=True))
    return write_tables(study.tables, directory, extra_files={"truth.json": truth_json(study)})


# --------------------------------------------------------------------------------------------
# Rendered for real


@pytest.fixture(scope="module")
def service_run(tmp_path_factory):
    """A real report of a small internal-service study, then the internal-service and executive
    pages rendered again on its results with hand-made chain and brand rows added."""
    import time

    from analysis.report.build import build_report, execute_notebook, page_context, render_page

    root = tmp_path_factory.mktemp("service")
    study = _v2_study(root / "study")
    parameters = Parameters(bootstrap_draws=200)
    started = time.monotonic()
    run = build_report(study, root / "reports", parameters, progress=lambda _: None)
    seconds = time.monotonic() - started
    # the same run with the chain's and the brand's rows, as the other parts of the kit add them
    extra = root / "extra"
    shutil.copytree(run, extra)
    results = extra / "results"
    # the real chain and brand rows and their findings give way to hand-made ones, so that each
    # verdict the page can state is stated in this run
    estimates = pd.read_csv(results / "estimates.csv")
    added = chain_estimates().iloc[1:]
    replaced = set(added["estimand"])
    kept = estimates[~estimates["estimand"].isin(replaced)]
    pd.concat([kept, added], ignore_index=True).to_csv(results / "estimates.csv", index=False)
    findings = pd.read_csv(results / "findings.csv")
    findings[~findings["estimand"].isin(replaced)].to_csv(results / "findings.csv", index=False)
    units = pd.read_csv(study / "units.csv", dtype=str)
    brand = brand_table()
    brand["unit_id"] = units["unit_id"].iloc[:3].to_list()
    brand.to_csv(results / "brand_alignment.csv", index=False)
    manifest = json.loads((results / "manifest.json").read_text())
    notebook_parameters = {
        "data_dir": str(study),
        "output_dir": str(results),
        **parameters.to_notebook(),
    }
    pages = pages_for(load_dataset(study))
    for page in pages:
        if page.slug in ("index", "internal_service"):
            executed = execute_notebook(page, extra, notebook_parameters)
            render_page(executed, extra / f"{page.slug}.html", page_context(page, manifest, pages))
    return {"run": run, "extra": extra, "study": study, "seconds": seconds}


def _text(markup: str) -> str:
    import html

    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup))).strip()


@pytest.mark.slow
def test_the_page_renders_for_an_internal_service_study(service_run):
    run = service_run["run"]
    assert (run / "internal_service.html").is_file()
    assert (run / "results" / "internal_service.csv").is_file()
    page = (run / "internal_service.html").read_text()
    text = _text(page)
    for heading in (
        "How does each team serve the others?",
        "Does the service a unit receives go with its engagement",
        "Who depends on whom?",
        "Do staff and customers agree on the brand?",
    ):
        assert heading in text
    assert page.count("<img") >= 2 and "<script" not in page.lower()
    assert "95% CI" in text and "raters" in text
    # the chain's and the brand's findings of this run, each stated with its argument
    findings = pd.read_csv(run / "results" / "findings.csv")
    chain = findings[findings["section"].isin(["chain", "brand"])]
    assert len(chain) == 5
    for sentence in chain["sentence"]:
        assert _text(sentence) in text
    assert text.count("How it is identified:") == 5
    for other in pages_for(load_dataset(service_run["study"])):
        assert f'href="{other.slug}.html"' in page
    index = (run / "index.html").read_text()
    assert 'href="internal_service.html"' in index
    assert "Internal service and the brand" in _text(index)
    ids = set(
        pd.read_csv(service_run["study"] / "internal_service.csv", dtype=str)["respondent_id"]
    )
    assert not set(re.split(r"[^0-9A-Za-z_-]+", page)) & ids


@pytest.mark.slow
def test_with_chain_and_brand_rows_the_page_states_each_verdict(service_run):
    extra = service_run["extra"]
    text = _text((extra / "internal_service.html").read_text())
    assert "Units that received internal service one standard deviation better" in text
    assert "No clear evidence of a link between the internal service a unit receives" in text
    assert text.count("How it is identified:") == 5  # four links of the chain and the brand
    assert "see the brand differently beyond chance" in text
    index = _text((extra / "index.html").read_text())
    assert "Units that received internal service one standard deviation better" in index


@pytest.mark.slow
def test_the_pages_open_in_chromium(service_run):
    from tests.test_report import CHROMIUM, _open_in_chromium

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    for page in ("internal_service.html", "index.html"):
        seen = _open_in_chromium((service_run["extra"] / page).as_uri())
        assert [r for r in seen["requests"] if not r.startswith(("file:", "data:"))] == []
        assert seen["problems"] == [] and seen["scripts"] == 0
        assert seen["images"] and all(seen["images"])
        if page == "internal_service.html":
            assert "Who depends on whom" in seen["text"]
            assert "Do staff and customers agree on the brand?" in seen["text"]


@pytest.mark.slow
def test_the_page_reads_on_a_phone_and_on_a_desk(service_run):
    """As tests/test_layout.py asks of every page: nothing scrolls sideways but in its own box,
    and no figure is wider than the column (so none is shrunk at 1280 px)."""
    from playwright.sync_api import sync_playwright

    from analysis.report.figures import COLUMN_PX
    from tests.test_report import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for width in (390, 1280):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto((service_run["extra"] / "internal_service.html").as_uri())
                seen = page.evaluate(
                    """() => ({scroll: document.documentElement.scrollWidth,
                               inner: window.innerWidth,
                               images: [...document.images].map(i => i.naturalWidth)})"""
                )
                assert seen["scroll"] <= seen["inner"], (width, seen)
                assert all(w <= COLUMN_PX * 1.02 for w in seen["images"]), seen
                page.close()
        finally:
            browser.close()


@pytest.mark.slow
def test_a_version_one_report_has_no_service_page_and_no_link(run_dir, hostile_study, tmp_path):
    from analysis.report.build import execute_notebook, page_context, render_page

    assert not (run_dir / "internal_service.html").exists()
    assert not list((run_dir / "results").glob("internal_service*"))
    for page in PAGES:
        text = (run_dir / f"{page.slug}.html").read_text()
        assert "internal_service.html" not in text
        assert "Internal service and the brand" not in text
    # opened by hand on version-1 data (JupyterLab), the notebook says so and does not fail
    parameters = {
        "data_dir": str(hostile_study),
        "output_dir": str(run_dir / "results"),
        **Parameters(bootstrap_draws=200).to_notebook(),
    }
    executed = execute_notebook(SERVICE_PAGE, tmp_path, parameters)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    page = render_page(
        executed, tmp_path / "page.html", page_context(SERVICE_PAGE, manifest, PAGES)
    )
    text = _text(page.read_text())
    assert "This dataset has no internal_service table" in text and "Traceback" not in text


def test_many_teams_are_drawn_as_the_highest_and_lowest_and_the_most_rated():
    """A large organisation: 60 teams shown and 20 suppressed in one wave. The scorecard figure
    draws the 15 highest and 15 lowest and one row for the suppressed; the network the 40
    most-rated teams; the sentence names the three largest changes."""
    one = _scores().iloc[1]
    rows = []
    for i in range(80):
        row = one.copy()
        row["provider_unit_id"] = f"T{i:02d}"
        hidden = i >= 60
        row["n_raters"] = 3 if hidden else 10 + i
        row["suppressed"] = hidden
        row["suppression"] = "fewer than 5 respondents" if hidden else ""
        for column in ("service_index", "shrunken", "rank", "n_ranked", "change"):
            row[column] = (
                np.nan if hidden else {"rank": i + 1, "n_ranked": 60}.get(column, 80 - i / 2)
            )
        row["change_p_value"] = np.nan if hidden else 0.0001
        row["change_conf_low"], row["change_conf_high"] = row["change"] - 1, row["change"] + 1
        rows.append(row)
    scores = pd.DataFrame(rows)
    units = pd.DataFrame({"unit_id": scores["provider_unit_id"]})
    figure = service_page.scorecard_figure(scores, units)
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert len(labels) == 31 and labels[0] == "T00" and labels[-2] == "T59"
    assert labels[-1] == "20 teams" and "15 highest and 15 lowest of 60" in _title(figure)
    network = pd.DataFrame(
        {
            "rater_unit_id": ["R1"] * 60,
            "provider_unit_id": scores["provider_unit_id"].iloc[:60],
            "wave": scores["wave"].iloc[:60],
            "n_raters": 5,
            "service_index": 70.0,
            "conf_low": 60.0,
            "conf_high": 80.0,
            "suppressed": False,
            "suppression": "",
        }
    )
    figure = service_page.network_figure(scores, network, units, 5)
    assert "the 40 most-rated of 80 teams" in _title(figure)
    text = service_page.scorecard_sentence(scores, units, 5)
    assert "60 of the 60 teams compared" in text and "and 57 more (see the table)" in text


def test_points_of_connection_cells_do_not_wrap_inside_an_interval():
    """A browser may break a line after an en dash; the points table's cells hold word joiners
    around it and no-break spaces, so "87 (82–92; 105)" never wraps at a phone's width."""
    import re

    from analysis.measures.internal_service import POINTS_OF_CONNECTION

    scores = _scores()
    for item in POINTS_OF_CONNECTION:  # each point's own interval, as the release writes it
        scores[f"{item}_conf_low"] = scores[f"{item}_index"] - 5.0
        scores[f"{item}_conf_high"] = scores[f"{item}_index"] + 5.0
    html = service_page.points_table_html(scores, UNITS)
    assert "\u2060–\u2060" in html
    assert re.search(r"\d–\d", html) is None  # every dash between numbers is joined
    assert re.search(r"\d \(|; \d", html) is None  # and every space is a no-break one
