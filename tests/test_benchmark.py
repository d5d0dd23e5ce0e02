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

from analysis.benchmark import SIZES
from tests.conftest import PROJECT_ROOT


def test_benchmark_measures_every_step_and_compares_with_the_naive_models(tmp_path):
    out, data = tmp_path / "benchmark", tmp_path / "data"
    command = [sys.executable, "-m", "analysis.benchmark", "--sizes", "tiny", "--no-report"]
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
