"""The benchmark runs for real on a tiny study and leaves a complete, readable record.

No timed assertions: the numbers depend on the machine. What must hold is that every step ran,
was measured (time and memory), and that the naive and our estimands were both timed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.studies.benchmark import (
    PANDAS_STEPS,
    SIZES,
    SKIPPED,
    ensure_study,
    pandas_fits,
    reduce_in_duckdb,
    reduce_in_pandas,
)
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """The tiny benchmark study, generated once for this module's tests."""
    directory, counts = ensure_study("tiny", tmp_path_factory.mktemp("bench-data"))
    return directory, counts


def test_reduce_step_in_duckdb_equals_the_pandas_path_on_a_tiny_study(tiny_study):
    """``reduce (DuckDB)`` and ``reduce (pandas)`` compute the same tables: both NPS windows
    and the retention exposure, exactly (values, dtypes, order), with the waves and ``as_of``
    each found in its own engine."""
    directory, _ = tiny_study
    in_duckdb, in_pandas = {}, {}
    duck = reduce_in_duckdb(directory, 91, in_duckdb)
    pandas_path = reduce_in_pandas(directory, 91, in_pandas)
    assert set(duck) == set(pandas_path) == {"outcome", "prior", "retention"}
    for name in duck:
        pd.testing.assert_frame_equal(duck[name], pandas_path[name])
    assert duck["outcome"]["n_responses"].sum() > 0 and duck["prior"]["n_responses"].sum() > 0
    assert duck["retention"]["customers_at_risk"].sum() > 0
    assert {"open", "dates", "outcome", "prior", "retention"} == set(in_duckdb)
    assert {"load", "dates", "outcome", "prior", "retention"} == set(in_pandas)


def test_steps_that_read_every_answer_into_pandas_are_recorded_as_skipped_above_the_limit(
    tiny_study,
):
    """At ``huge`` (100 million answers) only the DuckDB reduction runs; the steps that read
    every answer into pandas stay in the table, marked skipped, rather than missing. Here the
    limit is lowered below the tiny study's answers to apply the same rule in seconds."""
    assert not pandas_fits(100_000_000)  # huge: skipped by default
    assert pandas_fits(10_000_000)  # large: run
    directory, counts = tiny_study
    out = directory.parent / "out-skipped"
    command = [sys.executable, "-m", "analysis.studies.benchmark", "--sizes", "tiny"]
    command += ["--data-root", str(directory.parent), "--out", str(out)]
    command += ["--pandas-max-answers", str(counts["nps_responses"] - 1)]
    finished = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr
    table = pd.read_csv(out / "results" / "benchmark.csv").set_index("step")
    assert set(PANDAS_STEPS) <= set(table.index)
    skipped = table.loc[list(PANDAS_STEPS)]
    assert (skipped["status"] == SKIPPED).all()
    assert skipped[["seconds", "peak_mib"]].isna().all(axis=None)
    assert table.loc["reduce (DuckDB)", "status"] == "ok"
    assert table.loc["reduce (DuckDB)", "peak_mib"] > 50
    assert pd.read_csv(out / "results" / "benchmark_ratios.csv").empty  # nothing to compare
    assert (out / "results" / "benchmark.png").stat().st_size > 10_000
    assert SKIPPED in finished.stdout


def test_benchmark_measures_every_step_and_compares_with_the_naive_models(tmp_path):
    out, data = tmp_path / "benchmark", tmp_path / "data"
    command = [sys.executable, "-m", "analysis.studies.benchmark", "--sizes", "tiny", "--no-report"]
    command += ["--data-root", str(data), "--out", str(out)]
    finished = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr

    table = pd.read_csv(out / "results" / "benchmark.csv")
    steps = set(table["step"])
    assert {"generate", "estimate", "ours", "naive-nps", "naive-hazard"} <= steps
    assert {"reduce (DuckDB)", "reduce (pandas)"} <= steps
    measured = table[table["step"] != "generate"]
    assert (measured["status"] == "ok").all()
    # the reduce steps report their parts: both windows and the retention exposure
    reduced = table[table["step"].str.startswith("reduce")]
    assert reduced[["outcome_seconds", "prior_seconds", "retention_seconds"]].notna().all(axis=None)
    assert (measured["seconds"] > 0).all()
    # every step loads the data in its own process: more than an empty interpreter's 10 MiB
    assert (measured["peak_mib"] > 50).all()
    truth = json.loads((data / "tiny" / "truth.json").read_text())
    assert (table["nps_responses"] == truth["counts"]["nps_responses"]).all()
    assert truth["design"]["n_units"] == SIZES["tiny"].n_units

    ratios = pd.read_csv(out / "results" / "benchmark_ratios.csv")
    assert set(ratios["estimand"]) == {"nps_on_engagement", "churn_hazard_on_engagement"}
    assert np.allclose(ratios["ratio"], ratios["naive_seconds"] / ratios["ours_seconds"])
    machine = json.loads((out / "results" / "machine.json").read_text())
    assert machine["cores"] >= 1 and machine["memory_gib"] > 0
    assert (out / "results" / "benchmark.png").stat().st_size > 10_000
    assert "largest estimate" not in finished.stdout  # only said when the large size ran

    # a second run reuses the generated study rather than drawing it again
    again = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "generate" not in set(pd.read_csv(out / "results" / "benchmark.csv")["step"])


@pytest.mark.slow
def test_benchmark_times_the_scale_cases_and_records_a_clear_result(tmp_path):
    """The many-waves and many-units shapes (here a hundred times smaller) go to
    ``benchmark_scaling.csv``: timed, finished, and with "not estimable" rows where every
    unit-wave is too small to show. ``--no-growth`` times each shape once."""
    out, data = tmp_path / "benchmark", tmp_path / "data"
    command = [
        sys.executable,
        "-m",
        "analysis.studies.benchmark",
        "--sizes",
        "tiny-waves",
        "tiny-units",
    ]
    command += ["--no-report", "--no-growth", "--data-root", str(data), "--out", str(out)]
    finished = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert finished.returncode == 0, finished.stderr
    scaling = pd.read_csv(out / "results" / "benchmark_scaling.csv").set_index("case")
    assert set(scaling.index) == {"tiny-waves", "tiny-units"}
    assert (scaling["status"] == "ok").all() and (scaling["seconds"] > 0).all()
    assert scaling.loc["tiny-waves", "waves"] == SIZES["tiny-waves"].n_waves
    assert scaling.loc["tiny-units", "units"] == SIZES["tiny-units"].n_units
    # units of one to four people: both quartile gaps are "not estimable", the rest estimated
    assert scaling.loc["tiny-units", "estimands_not_estimable"] >= 2
    assert scaling.loc["tiny-units", "estimands_estimated"] >= 4
    assert pd.read_csv(out / "results" / "benchmark.csv").empty  # no standard size ran
    assert (out / "results" / "benchmark.png").stat().st_size > 10_000
    assert "tiny-units, 400 units: ok" in finished.stdout


def test_growth_of_a_scale_case_is_summarised_per_step_and_as_an_exponent():
    from analysis.studies.benchmark import growth_table

    waves = np.array([125, 250, 500, 1000])
    points = pd.DataFrame(
        {
            "axis": "waves",
            "fraction": waves / 1000,
            "waves": waves,
            "units": 60,
            "seconds": 5 + 0.04 * waves,  # a fixed cost and a linear part
            "status": "ok",
        }
    ).iloc[::-1]
    table = growth_table(points)
    assert list(table["waves"]) == list(waves)
    np.testing.assert_allclose(table["marginal_seconds_per_step"].iloc[1:], 0.04)
    assert 0.5 < table["growth_exponent"].iloc[0] < 1.0  # the fixed cost pulls it below 1
    quadratic = growth_table(points.assign(seconds=1e-4 * points["waves"] ** 2))
    assert quadratic["growth_exponent"].iloc[0] == pytest.approx(2.0)
