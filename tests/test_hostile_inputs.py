"""Hostile parameters, files, names and text end in a clear error (exit 2) or render safely.

Each case below once reached an internal error (exit 1), a hang or an unsafe page; see issue 10,
"Why". Commands run in a subprocess where a user would run them, with a timeout, so that a hang
fails the test instead of stalling CI. A refused command names the key, file, column and rows,
says how to fix it, reports every problem at once, prints no traceback and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from analysis.data.contract import MAX_TEXT_LENGTH
from analysis.data.load import DatasetError, load_dataset, write_tables
from analysis.data.parameters import (
    ParameterError,
    Parameters,
    check_parameters,
    load_parameters,
    parameters_from_mapping,
)
from analysis.report import figures, sentences

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds; every refusal below takes a few


def _cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _refused(result: subprocess.CompletedProcess) -> str:
    """The message of a clean refusal: exit 2, one ``error:``, no traceback, no 'bug'."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr and "bug in Inside Out" not in result.stderr
    assert "error: " in result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def dataset(small_study_master):
    return load_dataset(small_study_master)


# --------------------------------------------------------------------------------------------
# Parameters: every one has a range, and every problem is reported at once

EVERY_STATIC_PROBLEM = """\
outcome_window_days: 100000000000
alpha: 1.0e-300
seed: -1
bootstrap_draws: 1000000000000
covariates: [unit_id, region, region]
as_of: 2024-03-31T10:00:00
min_group_size: true
privacy_epsilon: 1000
"""


def test_every_parameter_problem_is_reported_at_once_before_any_work(small_study_master, tmp_path):
    """Each of these reached exit 1 or ran for ever; now one message lists all eight keys."""
    params = tmp_path / "params.yaml"
    params.write_text(EVERY_STATIC_PROBLEM, encoding="utf-8")
    out = tmp_path / "out"
    started = time.monotonic()
    result = _cli("estimate", "--data", small_study_master, "--out", out, "--params", params)
    message = _refused(result)
    assert time.monotonic() - started < 60
    assert f"{params}: 9 problems with the parameters" in message
    for expected in (
        "outcome_window_days must be from 1 to 3,660, not 100000000000",
        "alpha must be from 0.001 to 0.5, not 1e-300",
        "seed must be from 0 to 4,294,967,295, not -1",
        "bootstrap_draws must be from 10 to 100,000, not 1000000000000",
        "covariates: unit_id is an identifier",
        "covariates: region is listed more than once",
        "as_of must be a date without a time of day, not 2024-03-31T10:00:00; write "
        "as_of: 2024-03-31",
        "min_group_size must be a whole number from 3 to 1,000, not True",
        "privacy_epsilon must be from 0.01 to 100, not 1000",
    ):
        assert expected in message
    assert "README.md" in message
    assert not out.exists()


def test_parameters_are_checked_against_the_data_all_at_once(small_study_master, tmp_path):
    """A missing covariate, a per-unit covariate, an as_of of 9999-12-31 (which crashed) and a
    window longer than the data: one refusal that names each, before anything is written."""
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    units = pd.read_csv(data / "units.csv", dtype=str, keep_default_na=False)
    units["store_code"] = [f"S{i}" for i in range(len(units))]
    units.to_csv(data / "units.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text(
        "covariates: [region, regoin, store_code]\nas_of: 9999-12-31\noutcome_window_days: 3000\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    message = _refused(_cli("estimate", "--data", data, "--out", out, "--params", params))
    assert "parameters checked against the data: 4 problems" in message
    assert "covariates: regoin is not a column of units.csv" in message
    assert "covariates: store_code takes a different value in every one of the 60 units" in message
    assert "as_of: 9999-12-31 is outside the data, which run from the first survey wave" in message
    assert "outcome_window_days: 3,000 is longer than the data's span of" in message
    assert "Traceback" not in message and not out.exists()


@pytest.mark.slow
def test_report_refuses_data_dependent_parameters_before_creating_anything(
    small_study_master, tmp_path
):
    params = tmp_path / "params.yaml"
    params.write_text("as_of: 0001-01-01\ncovariates: [unit_name]\n", encoding="utf-8")
    reports = tmp_path / "reports"
    message = _refused(
        _cli("report", "--data", small_study_master, "--out", reports, "--params", params)
    )
    assert "covariates: unit_name is an identifier" in message
    assert not reports.exists() or not any(reports.iterdir())
    # the data-dependent one is found as soon as the file's own problems are fixed
    params.write_text("as_of: 0001-01-01\n", encoding="utf-8")
    message = _refused(
        _cli("report", "--data", small_study_master, "--out", reports, "--params", params)
    )
    assert "as_of: 0001-01-01 is outside the data" in message
    assert not reports.exists() or not any(reports.iterdir())


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"outcome_window_days": 100_000_000_000}, "outcome_window_days must be from 1 to 3,660"),
        ({"outcome_window_days": 0}, "outcome_window_days must be from 1 to 3,660"),
        ({"outcome_window_days": 91.5}, "outcome_window_days must be a whole number"),
        ({"alpha": 1.0e-300}, "alpha must be from 0.001 to 0.5"),
        ({"alpha": 1.0}, "alpha must be from 0.001 to 0.5"),
        ({"alpha": float("nan")}, "alpha must be from 0.001 to 0.5, not nan"),
        ({"alpha": 0.0125}, "alpha may have at most 3 decimals"),
        ({"alpha": True}, "alpha must be a number"),
        ({"alpha": "0.05"}, "alpha must be a number"),
        ({"seed": -1}, "seed must be from 0 to 4,294,967,295, not -1"),
        ({"seed": 2**32}, "seed must be from 0 to 4,294,967,295"),
        ({"seed": 2**70}, "seed must be from 0 to 4,294,967,295"),
        ({"seed": 10**400}, "not a number of more than 60 digits"),
        ({"seed": False}, "seed must be a whole number"),
        ({"bootstrap_draws": 1_000_000_000_000}, "bootstrap_draws must be from 10 to 100,000"),
        ({"bootstrap_draws": 1}, "bootstrap_draws must be from 10 to 100,000"),
        ({"min_group_size": 2}, "min_group_size must be from 3 to 1,000"),
        ({"min_group_size": 10**6}, "min_group_size must be from 3 to 1,000"),
        ({"min_group_size": 5.0}, "min_group_size must be a whole number"),
        ({"privacy_epsilon": 0}, "privacy_epsilon must be from 0.01 to 100"),
        ({"privacy_epsilon": float("inf")}, "privacy_epsilon must be from 0.01 to 100"),
        ({"covariates": ["unit_id"]}, "covariates: unit_id is an identifier"),
        ({"covariates": ["respondent_id"]}, "covariates: respondent_id is an identifier"),
        ({"covariates": ["customer_id"]}, "covariates: customer_id is an identifier"),
        ({"covariates": ["region", "region"]}, "covariates: region is listed more than once"),
        ({"covariates": ["wave"]}, "covariates: wave is a name the kit uses"),
        ({"covariates": ["engagement_index"]}, "engagement_index is a name the kit uses"),
        ({"covariates": "region"}, "covariates must be a list of column names of units"),
        ({"covariates": ["", None, 3]}, "covariates must be column names of units, not ''"),
        ({"as_of": dt.datetime(2024, 3, 31, 10)}, "as_of must be a date without a time of day"),
        ({"as_of": "2024-03-31 10:00"}, "as_of must be a date without a time of day"),
        ({"as_of": "2024-02-30"}, "as_of: '2024-02-30' is not a day of the calendar"),
        ({"as_of": "20240331"}, "as_of must be a date YYYY-MM-DD, not '20240331'"),
        ({"as_of": 20240331}, "as_of must be a date YYYY-MM-DD"),
        ({"not_a_key": 1}, "unknown key not_a_key; allowed keys are"),
    ],
)
def test_each_parameter_outside_its_range_is_named_with_its_range(values, expected):
    with pytest.raises(ParameterError) as caught:
        parameters_from_mapping(values, "params.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("params.yaml: ")


def test_the_edges_of_every_range_are_accepted(dataset):
    first = dataset.employee_survey["wave"].min().date()
    latest = max(
        dataset.customer_nps["responded_on"].max(),
        dataset.customers["since"].max(),
        dataset.customers["churned_on"].max(),
        dataset.employee_survey["wave"].max(),
    ).date()
    for values in (
        {"min_group_size": 3, "alpha": 0.001, "seed": 0, "bootstrap_draws": 10},
        {"min_group_size": 1000, "alpha": 0.5, "seed": 2**32 - 1, "bootstrap_draws": 100_000},
        {"as_of": first.isoformat(), "outcome_window_days": 1, "covariates": []},
        {"as_of": latest, "outcome_window_days": (latest - first).days},
        {"privacy_epsilon": 0.01, "covariates": ["region"]},
        {"privacy_epsilon": 100, "alpha": 0.025},
    ):
        parameters = parameters_from_mapping(values, "params.yaml", dataset)
        assert check_parameters(dataset, parameters) is parameters
    assert isinstance(parameters_from_mapping({"privacy_epsilon": 100}).privacy_epsilon, float)


def test_as_of_outside_the_data_and_a_window_beyond_it_are_refused(dataset):
    first = dataset.employee_survey["wave"].min().date()
    latest = max(
        dataset.customer_nps["responded_on"].max(),
        dataset.customers["since"].max(),
        dataset.customers["churned_on"].max(),
    ).date()
    last = latest + dt.timedelta(days=31)  # the day of extraction may follow the last record
    parameters_from_mapping({"as_of": last}, "p.yaml", dataset)
    for as_of in (
        "9999-12-31",
        "0001-01-01",
        dt.date(2262, 4, 12),
        dt.date(1677, 9, 21),
        last + dt.timedelta(days=1),
        first - dt.timedelta(days=1),
    ):
        with pytest.raises(ParameterError, match="is outside the data, which run from"):
            parameters_from_mapping({"as_of": as_of}, "p.yaml", dataset)
    with pytest.raises(ParameterError, match="longer than the data's span of 0 days") as caught:
        check_parameters(dataset, Parameters(as_of=first, outcome_window_days=30))
    assert "outcome_window_days: 30" in str(caught.value)


def test_a_covariate_that_names_each_unit_is_refused_only_where_models_could_run(dataset):
    """Below ten units estimation refuses anyway ("too few units"), the clearer message."""
    from analysis.data.parameters import FEWEST_UNITS
    from analysis.models.estimate import MIN_UNITS

    assert FEWEST_UNITS == MIN_UNITS
    few = dataset.units.head(MIN_UNITS - 1)
    few = few.assign(region=[f"R{i}" for i in range(len(few))])
    thin = type(dataset)(**{**dataset.__dict__, "units": few})
    check_parameters(thin, Parameters())
    many = dataset.units.assign(region=[f"R{i}" for i in range(len(dataset.units))])
    with pytest.raises(ParameterError, match="region takes a different value in every one"):
        check_parameters(type(dataset)(**{**dataset.__dict__, "units": many}), Parameters())
    check_parameters(
        type(dataset)(**{**dataset.__dict__, "units": many}), Parameters(covariates=())
    )


def test_static_and_data_problems_come_in_one_error(dataset, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("seed: -1\ncovariates: [regoin]\nas_of: 9999-12-31\n", encoding="utf-8")
    with pytest.raises(ParameterError) as caught:
        load_parameters(params, dataset)
    assert len(caught.value.problems) == 3
    assert "3 problems" in str(caught.value)


def test_parameters_built_in_python_are_checked_the_same_way():
    with pytest.raises(ParameterError) as caught:
        Parameters(seed=-1, alpha=1e-300, covariates=("unit_id",))
    assert len(caught.value.problems) == 3


def test_every_column_the_kit_computes_is_refused_as_a_covariate(dataset):
    """A units column named like a panel column (wave, nps, engagement_index …) gave KeyError."""
    from analysis.measures.panel import unit_wave_panel

    panel = unit_wave_panel(dataset)
    own = [c for c in panel.columns if c not in ("unit_id", "region", "customer_facing")]
    assert own
    for name in own:
        with pytest.raises(ParameterError, match="name the kit uses|is an identifier"):
            parameters_from_mapping({"covariates": [name]})


def test_a_colliding_covariate_column_is_refused_on_the_command_line(small_study_master, tmp_path):
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    units = pd.read_csv(data / "units.csv", dtype=str, keep_default_na=False)
    units["wave"] = "a"
    units.to_csv(data / "units.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text("covariates: [region, wave]\n", encoding="utf-8")
    message = _refused(
        _cli("estimate", "--data", data, "--out", tmp_path / "o", "--params", params)
    )
    assert "covariates: wave is a name the kit uses for its own columns" in message


# --------------------------------------------------------------------------------------------
# Files that are not files


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
@pytest.mark.parametrize("name", ["units.csv", "instrument.yaml"])
def test_a_folder_a_fifo_or_a_device_is_refused_unread(small_study_master, tmp_path, kind, name):
    """Reading a FIFO with no writer never ends; a folder gave IsADirectoryError (exit 1)."""
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    path = data / name
    path.unlink(missing_ok=True)
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    message = _refused(_cli("validate", data, timeout=60))
    described = {"folder": "a folder", "fifo": "a named pipe (FIFO)", "device": "a device"}[kind]
    assert f"{name}: is {described}, not a file, so it is not read: replace it with" in message


# --------------------------------------------------------------------------------------------
# Text fields have a length limit, checked fast


@pytest.mark.parametrize("length", [200_000, 10_000_000])
def test_a_huge_unit_name_is_refused_fast(small_study_master, tmp_path, length):
    """200,000 characters took the report 7 minutes; 10 million crashed it."""
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    units = pd.read_csv(data / "units.csv", dtype=str, keep_default_na=False)
    units.loc[3, "unit_name"] = "x" * length
    units.to_csv(data / "units.csv", index=False)
    assert (data / "units.csv").stat().st_size > length
    started = time.monotonic()
    message = _refused(
        _cli("estimate", "--data", data, "--out", tmp_path / "out", timeout=60),
    )
    assert time.monotonic() - started < 30
    assert (
        f"units.csv, column 'unit_name': text is longer than the 200-character limit (the "
        f"longest has {length:,}); shorten it (1 row: 5 '{'x' * 40}'…)"
    ) in message
    assert not (tmp_path / "out").exists()


def test_text_limits_cover_ids_names_and_column_names(small_study_master, tmp_path):
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    units = pd.read_csv(data / "units.csv", dtype=str, keep_default_na=False)
    units.loc[0, "unit_name"] = "n" * MAX_TEXT_LENGTH  # at the limit: fine
    units.loc[1, "region"] = "r" * (MAX_TEXT_LENGTH + 1)
    units.to_csv(data / "units.csv", index=False)
    survey = pd.read_csv(data / "employee_survey.csv", dtype=str, keep_default_na=False)
    survey.loc[[0, 4], "respondent_id"] = "p" * 5_000
    survey.to_csv(data / "employee_survey.csv", index=False)
    nps = pd.read_csv(data / "customer_nps.csv", dtype=str, keep_default_na=False)
    nps["c" * 300] = "1"
    nps.to_csv(data / "customer_nps.csv", index=False)
    customers = (data / "customers.csv").read_text(encoding="utf-8").splitlines()
    customers[0] += "," + "h" * 200_000  # over the csv module's 128 KiB field limit
    customers[1:] = [line + "," for line in customers[1:]]
    (data / "customers.csv").write_text("\n".join(customers) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        load_dataset(data)
    problems = {(p.file, p.column): p for p in caught.value.problems}
    assert set(problems) == {
        ("units.csv", "region"),
        ("employee_survey.csv", "respondent_id"),
        ("customer_nps.csv", None),
        ("customers.csv", None),
    }
    assert problems[("employee_survey.csv", "respondent_id")].rows == (2, 6)
    assert "a column name is longer than the 200-character limit" in str(
        problems[("customers.csv", None)]
    )
    assert len(str(caught.value)) < 2_000  # the long names are not repeated in the message


def test_parquet_text_has_the_same_limit(small_study_master, tmp_path):
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    units = pd.read_csv(data / "units.csv", dtype=str, keep_default_na=False)
    units.loc[2, "unit_name"] = "y" * 1_000
    units.to_parquet(data / "units.parquet", index=False)
    (data / "units.csv").unlink()
    with pytest.raises(DatasetError, match="units.parquet, column 'unit_name': text is longer"):
        load_dataset(data)


def test_instrument_items_must_be_answer_columns(small_study_master, tmp_path):
    data = Path(shutil.copytree(small_study_master, tmp_path / "data"))
    (data / "instrument.yaml").write_text(
        "scales:\n  engagement:\n    items: [eng_1, unit_id, '']\n    range: [1, 5]\n",
        encoding="utf-8",
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(data)
    message = str(caught.value)
    assert "an item cannot be one of the survey's own columns" in message
    assert "'unit_id' in engagement" in message
    assert "an item name is blank in engagement" in message


# --------------------------------------------------------------------------------------------
# Names in figures: literal, never mathtext


HOSTILE_NAMES = ["$\\frac$ store", "x$^$", "$5 & $6", "abc\u202edcba", "=cmd", "<b>bold</b>"]


def _render(figure: plt.Figure) -> list[str]:
    figure.savefig(io.BytesIO(), format="png")
    texts = [t.get_text() for t in figure.findobj(matplotlib.text.Text)]
    plt.close(figure)
    return texts


def test_names_render_literally_in_every_figure_under_the_house_style():
    """A scale or unit name with ``$\\frac$`` raised ParseSyntaxException and stopped the report."""
    matplotlib.use("Agg")
    figures.use_house_style()
    try:
        assert matplotlib.rcParams["text.parse_math"] is False
        labels = sentences.figure_text(pd.Series(HOSTILE_NAMES, index=list("abcdef")))
        assert labels.tolist()[0] == "$\\frac$ store"  # literal: no escaping needed
        assert labels.tolist()[3] == "abcdcba"  # bidirectional override removed
        drivers = pd.DataFrame(
            {
                "term": ["$\\frac$_index", "x$^$_index"],
                "share": [60.0, 40.0],
                "share_conf_low": [50.0, 30.0],
                "share_conf_high": [70.0, 50.0],
                "significant": [True, False],
            }
        )
        assert "$\\frac$_index" in _render(figures.driver_importance(drivers))
        table = pd.DataFrame(
            {
                "name": labels,
                "estimate": [1.0, 2, 3, 4, 5, 6],
                "conf_low": [0.0, 1, 2, 3, 4, 5],
                "conf_high": [2.0, 3, 4, 5, 6, 7],
                "n": [10] * 6,
            }
        )
        texts = _render(figures.estimates_with_intervals(table, "name", "estimate", "t", "x"))
        assert {"$\\frac$ store", "x$^$", "$5 & $6"} <= set(texts)
        cells = pd.DataFrame(
            {
                "unit_id": list("abcdef"),
                "wave": pd.Timestamp("2024-03-31"),
                "engagement_index": 50.0,
                "difference": [1.0, -1, 2, -2, 0, 3],
                "significant": True,
                "suppressed": False,
            }
        )
        assert "x$^$" in _render(figures.engagement_heatmap(cells, labels))
    finally:
        matplotlib.rcdefaults()


# --------------------------------------------------------------------------------------------
# Names on the page: escaped, bidirectional controls removed

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_the_controls_removed_are_every_bidirectional_control():
    assert set(sentences.BIDI_CONTROLS) == set(BIDI)
    assert sentences.plain_text(f"a{BIDI}b") == "ab"
    assert sentences.plain_text(None) == "" and sentences.plain_text(float("nan")) == ""


def test_html_helpers_neutralise_bidirectional_controls_and_escape():
    name = "Store \u202e<script>x</script>\u2066 lin\u200f"
    outputs = [
        sentences.paragraph(f"Top unit: {name}"),
        sentences.list_html([name, "plain"]),
        sentences.html_table(pd.DataFrame({f"Unit {name}": [name, None], "n": [1, 2]})),
        sentences.coverage_table_html(
            pd.DataFrame(
                {
                    "label": [name],
                    "value": [0.5],
                    "kind": ["share"],
                    "conf_low": [0.4],
                    "conf_high": [0.6],
                    "n": [10],
                    "note": [name],
                }
            )
        ),
    ]
    for output in outputs:
        assert not set(output) & set(BIDI), output
        assert "<script>" not in output and "&lt;script&gt;" in output
        assert "Store &lt;script&gt;x&lt;/script&gt; lin" in output


def test_every_page_loses_bidirectional_controls_whatever_made_its_html(tmp_path):
    """Notebooks also call DataFrame.to_html on unit names, and Markdown writes the controls as
    entities (``&#8238;``) that nbconvert decodes; render_page removes them from the finished
    page, so no route around the helpers is left."""
    import nbformat

    from analysis.report.build import render_page

    names = pd.DataFrame({"Unit": [f"Store{BIDI}1", "\u202eevil"], "Region": ["N\u2067", "S"]})
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["title"] = "Hostile names"
    cell = nbformat.v4.new_code_cell("display(table)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/html": names.to_html(index=False), "text/plain": f"Store{BIDI}1"},
        ),
        nbformat.v4.new_output("stream", name="stdout", text=f"printed {BIDI} name"),
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# Units {BIDI}"), cell]
    executed = tmp_path / "page.ipynb"
    nbformat.write(notebook, executed)
    context = {
        "title": "Hostile names",
        "subtitle": "Hostile names",
        "run_id": "run",
        "run_at": "2024-01-01T00:00:00+00:00",
        "git_commit": "abc",
        "parameters": {"alpha": 0.05},
        "inputs": {"units.csv": "0" * 64},
        "packages": {"pandas": pd.__version__},
        "pages": [],
    }
    page = render_page(executed, tmp_path / "page.html", context).read_text(encoding="utf-8")
    assert not set(page) & set(BIDI)
    assert "Store1" in page and "evil" in page and "printed  name" in page
    assert "io-masthead" in page and "Provenance" in page  # the rest of the page is intact
    assert "<h1" in page and "Units" in page


def test_confidence_levels_print_exactly():
    assert [sentences.level(1 - a) for a in (0.05, 0.001, 0.025, 0.5, 0.1)] == [
        "95%",
        "99.9%",
        "97.5%",
        "50%",
        "90%",
    ]
    findings = sentences.headline_findings(
        pd.DataFrame(
            {
                "estimand": ["nps_on_engagement"],
                "estimate": [2.0],
                "conf_low": [1.0],
                "conf_high": [3.0],
                "n_units": [10],
                "n_obs": [40],
                "p_value": [0.01],
                "p_adjusted": [0.01],
            }
        ),
        alpha=0.001,
    )
    assert "(99.9% CI +1.0 to +3.0" in findings[0]


# --------------------------------------------------------------------------------------------
# CSV headers are spreadsheet-safe like cells


def test_csv_headers_are_spreadsheet_safe_and_read_back_exactly(tmp_path):
    from analysis.data.load import FORMULA_STARTS, undo_spreadsheet_safe

    columns = ["=cmd_index", "+x", "-y", "@z", "'=already", "unit_id", "plain"]
    frame = pd.DataFrame([["=1+1", "a", "b", "c", "d", "-12", "e"]], columns=columns)
    write_tables({"table": frame}, tmp_path / "results")
    header = (tmp_path / "results" / "table.csv").read_text(encoding="utf-8").splitlines()[0]
    assert not any(cell.startswith(FORMULA_STARTS) for cell in header.split(","))
    back = pd.read_csv(tmp_path / "results" / "table.csv", dtype=str)
    back.columns = undo_spreadsheet_safe(pd.Series(back.columns, dtype=object)).tolist()
    assert list(back.columns) == columns
    assert undo_spreadsheet_safe(back["=cmd_index"]).tolist() == ["=1+1"]


def test_result_tables_read_back_with_their_column_names(tmp_path):
    from analysis.data.results import RESULT_FILES, read_results

    tables = {
        name: pd.DataFrame({"unit_id": ["-12"], "=cmd_index": [1.5]}) for name in RESULT_FILES
    }
    tables["unit_wave"] = tables["unit_wave"].assign(wave=pd.Timestamp("2024-03-31"))
    write_tables(tables, tmp_path / "results")
    back = read_results(tmp_path / "results")
    assert "=cmd_index" in back["estimates"].columns
    assert back["estimates"]["unit_id"].tolist() == ["-12"]


# --------------------------------------------------------------------------------------------
# A study in which every staff figure is suppressed


def test_a_report_with_every_staff_figure_hidden_is_refused_before_anything_is_written(
    small_study_master, tmp_path
):
    """It used to fail inside a notebook on an empty quartile figure (exit 1)."""
    params = tmp_path / "params.yaml"
    params.write_text("min_group_size: 1000\nbootstrap_draws: 20\n", encoding="utf-8")
    out = tmp_path / "reports"
    message = _refused(
        _cli("report", "--data", small_study_master, "--out", out, "--params", params)
    )
    assert "nothing to report: no unit-wave has 1000 or more respondents" in message
    assert "Lower min_group_size" in message
    assert not out.exists()


def test_figures_draw_an_empty_quartile_table_and_intervals_that_end_at_their_estimate():
    empty = pd.DataFrame(
        {
            "label": ["Bottom quartile", "Top quartile"],
            "nps": [float("nan")] * 2,
            "conf_low": [float("nan")] * 2,
            "conf_high": [float("nan")] * 2,
            "n_responses": [0, 0],
            "n_units": [0, 0],
        }
    )
    figure = figures.nps_by_quartile(empty)
    assert "No engagement quartile" in figure.axes[0].texts[0].get_text()
    plt.close(figure)
    at_the_bound = pd.DataFrame(
        {
            "label": ["a"],
            "percent": [100.0],
            "conf_low": [80.0],
            "conf_high": [100.0 - 1e-13],
            "n": [9],
        }
    )
    figure = figures.estimates_with_intervals(at_the_bound, "label", "percent", "t", "x")
    figure.canvas.draw()
    plt.close(figure)
