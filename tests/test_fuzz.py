"""Fuzz the command line: hostile parameters, instruments and datasets end in exit 0 or 2.

Every example runs the real ``estimate`` command (``analysis.__main__.main``, the function the
console script calls) on real files and checks three promises:

* the run ends in exit 0 (a result) or exit 2 (a clear error), never 1 (a bug), and never prints
  a traceback;
* the input files are byte-identical afterwards;
* a previous run's results are intact when the run fails, and complete when it succeeds.

CI replays a fixed set of examples (``derandomize``). ``make fuzz`` runs the same properties with
``HYPOTHESIS_PROFILE=fuzz``: many more examples, searched afresh.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.__main__ import main
from analysis.data.synth import StudyDesign
from tests.conftest import write_study

settings.register_profile(
    "ci",
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Small enough for a second per run, large enough for every model to be estimable.
FUZZ_DESIGN = StudyDesign(seed=11, n_units=24, n_waves=3, median_unit_size=9)
# Keeps the bootstraps cheap in every example that does not fuzz them.
BASE_PARAMETERS = {"bootstrap_draws": 40}


def tree_digest(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (symlinks by their target), by relative path."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        relative = str(path.relative_to(directory))
        if path.is_symlink():
            digests[relative] = f"-> {os.readlink(path)}"
        elif path.is_file():
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def run_cli(*argv: str) -> tuple[int, str]:
    """Run the command line in this process; return the exit status and everything on stderr."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            status = main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse's own usage errors
            status = exit_.code
    return status, stderr.getvalue()


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory) -> tuple[Path, Path]:
    """A valid study and the results folder a successful earlier run wrote from it."""
    root = tmp_path_factory.mktemp("fuzz")
    study = write_study(root / "study", FUZZ_DESIGN)
    parameters = root / "base.yaml"
    parameters.write_text(yaml.safe_dump(BASE_PARAMETERS), encoding="utf-8")
    status, stderr = run_cli(
        "estimate", "--data", study, "--out", root / "results", "--params", parameters
    )
    assert status == 0, stderr
    return study, root / "results"


def check_run(study: Path, previous: Path, workdir: Path, parameters: dict | str) -> int:
    """Run estimate against copies of the study and of earlier results; check every promise."""
    data = Path(shutil.copytree(study, workdir / "data"))
    out = Path(shutil.copytree(previous, workdir / "results", symlinks=True))
    params = workdir / "params.yaml"
    text = parameters if isinstance(parameters, str) else yaml.safe_dump(parameters)
    params.write_text(text, encoding="utf-8")
    inputs_before, results_before = tree_digest(data), tree_digest(out)
    params_before = params.read_bytes()

    status, stderr = run_cli("estimate", "--data", data, "--out", out, "--params", params)

    assert status in (0, 2), f"exit {status}:\n{stderr}"
    assert "Traceback" not in stderr and "bug in Inside Out" not in stderr, stderr
    assert tree_digest(data) == inputs_before, "an input file changed"
    assert params.read_bytes() == params_before
    if status == 2:
        assert "\nerror: " in "\n" + stderr, stderr
        assert tree_digest(out) == results_before, "a failed run changed the earlier results"
    else:
        assert (out / "estimates.csv").exists() and (out / "manifest.json").exists()
    leftovers = [
        p.name for p in workdir.iterdir() if p.name not in {"data", "results", "params.yaml"}
    ]
    assert not leftovers, f"left behind: {leftovers}"
    return status


# --------------------------------------------------------------------------------------------
# Parameters

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            1.0e-300,
            100000000000,
            -1,
            0,
            10**12,
            "9999-12-31",
            "0001-01-01",
            "2024-03-31T10:00:00",
            "2024-02-30",
            "",
            "five",
            [],
            ["region", "region"],
            ["unit_id"],
            ["unit_name"],
            ["no_such_column"],
            {"nested": 1},
            "$\\frac{a}{b}$",
            "x" * 10_000,
        ]
    ),
    st.text(max_size=12),
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    st.lists(st.sampled_from(["region", "unit_id", "customer_facing", "", "=1+1"]), max_size=3),
)
PARAMETER_KEYS = [
    "min_group_size",
    "outcome_window_days",
    "as_of",
    "alpha",
    "seed",
    "bootstrap_draws",
    "covariates",
    "privacy_epsilon",
    "not_a_parameter",
]


@st.composite
def hostile_parameters(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(PARAMETER_KEYS), min_size=1, max_size=4, unique=True))
    values = {**BASE_PARAMETERS, **{key: draw(HOSTILE_VALUES) for key in keys}}
    draws = values.get("bootstrap_draws")
    # A valid but large number of draws is a legitimate, slow run: not what this test is for.
    if isinstance(draws, int) and not isinstance(draws, bool) and 200 < draws <= 10**6:
        values["bootstrap_draws"] = 200
    return values


@PROFILE
@given(parameters=hostile_parameters())
def test_hostile_parameters_end_in_a_result_or_a_clear_error(fuzz_base, parameters):
    study, previous = fuzz_base
    with tempfile.TemporaryDirectory() as workdir:
        check_run(study, previous, Path(workdir), parameters)


@PROFILE
@given(
    text=st.one_of(
        st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    )
)
def test_a_parameters_file_of_any_text_ends_in_a_result_or_a_clear_error(fuzz_base, text):
    study, previous = fuzz_base
    with tempfile.TemporaryDirectory() as workdir:
        check_run(study, previous, Path(workdir), text)


# --------------------------------------------------------------------------------------------
# Instruments

NAMES = st.one_of(
    st.sampled_from(
        [
            "engagement",
            "engaged",
            "enps",
            "$\\frac{a}{b}$",
            "=cmd",
            "\u202eevil",
            "été",
            "a b",
            "x" * 300,
            "",
            "1st",
            "unit_id",
        ]
    ),
    st.text(min_size=1, max_size=10),
)


@st.composite
def hostile_instrument(draw, item_columns: list[str]) -> dict:
    items = st.one_of(st.sampled_from(item_columns), st.sampled_from(["Q99", "", "unit_id"]))
    scales = {}
    for _ in range(draw(st.integers(1, 4))):
        chosen = draw(st.lists(items, min_size=0, max_size=4))
        entry: dict = {
            "items": chosen,
            "range": draw(
                st.one_of(st.just([1, 5]), st.lists(st.integers(-3, 12), min_size=0, max_size=3))
            ),
        }
        if draw(st.booleans()):
            entry["reverse"] = draw(st.lists(items, max_size=2))
        if draw(st.booleans()):
            entry["favourable"] = draw(st.one_of(st.integers(-5, 12), st.text(max_size=3)))
        scales[draw(NAMES)] = entry
    return {"scales": scales}


@PROFILE
@given(data=st.data())
def test_hostile_instruments_end_in_a_result_or_a_clear_error(fuzz_base, data):
    study, previous = fuzz_base
    survey_columns = pd.read_csv(study / "employee_survey.csv", nrows=0).columns
    item_columns = [c for c in survey_columns if c not in ("unit_id", "respondent_id", "wave")]
    instrument = data.draw(hostile_instrument(item_columns))
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        copy = Path(shutil.copytree(study, workdir / "study"))
        (copy / "instrument.yaml").write_text(yaml.safe_dump(instrument), encoding="utf-8")
        (workdir / "run").mkdir()
        check_run(copy, previous, workdir / "run", BASE_PARAMETERS)


# --------------------------------------------------------------------------------------------
# Datasets

CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "999",
            "4.5",
            "NaN",
            "2024-02-30",
            "9999-12-31",
            "0001-01-01",
            "2024-03-31 10:22:11",
            "true",
            "=SUM(A1)",
            "$\\frac{1}{2}$",
            "\u202e",
            "x" * 5_000,
        ]
    ),
    st.text(max_size=8),
)


@PROFILE
@given(data=st.data())
def test_hostile_datasets_end_in_a_result_or_a_clear_error(fuzz_base, data):
    study, previous = fuzz_base
    table = data.draw(st.sampled_from(["units", "employee_survey", "customer_nps", "customers"]))
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        copy = Path(shutil.copytree(study, workdir / "study"))
        frame = pd.read_csv(copy / f"{table}.csv", dtype=str, keep_default_na=False)
        action = data.draw(st.sampled_from(["cells", "drop_column", "drop_rows", "duplicate"]))
        if action == "cells":
            column = data.draw(st.sampled_from(list(frame.columns)))
            rows = data.draw(st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=5))
            for row in rows:
                frame.loc[row, column] = data.draw(CELLS)
        elif action == "drop_column":
            frame = frame.drop(columns=data.draw(st.sampled_from(list(frame.columns))))
        elif action == "drop_rows":
            share = data.draw(st.sampled_from([0.5, 0.9, 0.99, 1.0]))
            frame = frame.iloc[int(share * len(frame)) :]
        else:
            frame = pd.concat([frame, frame.sample(5, random_state=1)])
        frame.to_csv(copy / f"{table}.csv", index=False)
        (workdir / "run").mkdir()
        check_run(copy, previous, workdir / "run", BASE_PARAMETERS)
