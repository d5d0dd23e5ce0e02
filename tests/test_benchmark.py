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

from analysis.studies.benchmark import SIZES
from tests.conftest import PROJECT_ROOT


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
    measured = table[table["step"] != "generate"]
    assert (measured["status"] == "ok").all()
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
