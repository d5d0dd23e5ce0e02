"""How long Inside Out takes, and how much memory, up to 100 million answers: ``make bench``.

For each size the benchmark generates a synthetic study (Parquet, under ``data/bench/``; the
``sample`` size is the existing ``data/sample``, never generated), then runs, each in its own
process so that its peak memory is its own:

* ``estimate``: ``python -m analysis estimate --engine duckdb``, the whole engine as users run
  it (the default): the customer tables stay in DuckDB, are screened against the contract in
  SQL and reduced there, and only the reduced tables reach pandas;
* ``estimate (pandas)``: the same command with ``--engine pandas``, the path before issue 14
  (every row read, validated and reduced in pandas). Where both finish, their
  ``estimates.csv``, ``unit_wave.csv``, ``findings.csv``, ``drivers.csv`` and
  ``nps_by_engagement_quartile.csv`` are compared byte for byte: ``same_as_pandas`` on the
  ``estimate`` row (issue 14: the old and the new path give identical files);
* ``report``: ``python -m analysis report``, what ``make report`` runs;
* ``ours``, ``naive-nps`` and ``naive-hazard``: the two estimands with a customer-level
  alternative, timed in one process after the same loading: NPS on engagement (ours: weighted
  least squares on the unit × wave panel; naive: a customer-level formula regression,
  ``score ~ engagement + C(region) + C(wave)`` with errors clustered by unit) and the churn
  hazard ratio (ours: the piecewise-exponential model on unit × wave × tenure-band cells;
  naive: customer-level Cox on the split episodes with Lin–Wei clustered errors). The naive Cox
  is stopped at a time limit, recorded as ``timeout``; its ratio is then a lower bound.

Above ``--pandas-max-answers`` customer answers (30 million by default; the ``huge`` size has
100 million) the steps that read every answer into pandas are not run: they stay in the table
with the status ``skipped: reads every answer into pandas``, and only ``estimate`` runs.

Issue 14's targets go to ``benchmark_targets.csv`` (and are printed at the end), one row per
target with the measured value and whether it is met (``True``, ``False`` or ``not run``):
``estimate`` on 9.5–10 million answers (``large``) under 20 s and 1.5 GiB; on 100 million
(``huge``) under 5 minutes and 6 GiB, its 95% intervals for ``nps_on_engagement`` and
``churn_hazard_on_engagement`` covering the generator's truth (``truth.json``); ``report`` on
the sample under 30 s; and on the mid-size study (``medium``) ``estimate`` at least ten times
faster than the naive customer-level analysis of the same run (``TARGETS``).

Beside the sizes, two shapes that users reach and that once did not finish (issue 10):
**many waves** (1,000 quarterly waves of 60 units) and **many small units** (100,000 units of
one to four people, so every unit-wave is too small to show). Each is timed (``estimate``) at
an eighth, a quarter, a half and all of its waves or units, with the data per wave or per unit
held fixed, so that the growth shows: ``benchmark_scaling.csv`` gives each point's time, the
marginal seconds per added wave or per thousand added units, and the growth exponent (the
log–log slope over the points; 1 is linear, and fixed costs such as imports pull it below 1).

Peak memory is the maximum resident set size of the step's process (``wait4``); for ``report``
that is its largest process, the orchestrator or one notebook kernel. Results go to
``benchmark.csv``, ``benchmark_ratios.csv``, ``benchmark_targets.csv``, ``benchmark.png``
(time and peak memory of both ``estimate`` paths against the customer answers with the
targets marked, the machine in its title) and ``machine.json`` under ``--out``. Timings on a
shared machine vary by ±20–30%; there are no timed assertions anywhere in the tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data.contract import nps_points
from analysis.data.synth import StudyDesign

# The three sizes of issue 5, and a tiny one for the tests. Customer numbers and answers per
# customer are tuned so the counts land near the targets (checked in each run's table).
SIZES = {
    "small": StudyDesign(seed=1, n_units=300, responses_per_customer_year=1.7),
    "medium": StudyDesign(
        seed=2, n_units=2_000, customers_per_employee=4.2, responses_per_customer_year=7.0
    ),
    "large": StudyDesign(
        seed=3, n_units=20_000, customers_per_employee=4.2, responses_per_customer_year=7.0
    ),
    "tiny": StudyDesign(seed=4, n_units=60, n_waves=4, median_unit_size=12),
    # issue 14: about 100 million customer answers, 5 million customers, 40,000 units (and 3.4
    # million staff answers), written in chunks (CHUNKED). Not in the default list: generating
    # it alone takes minutes, and the pandas steps cannot hold it.
    "huge": StudyDesign(
        seed=9, n_units=40_000, customers_per_employee=10.4, responses_per_customer_year=13.5
    ),
}
# Sizes generated chunk by chunk to Parquet (analysis.data.synth.write_study_chunked): the same
# model as the others, but customers and answers never all in memory.
CHUNKED = frozenset({"huge"})
# The shapes of issue 10, each a full case plus the fractions of it that show the growth. Many
# waves: 1,000 quarters (1776–2025, within the dates pandas can hold) of 60 units, customers
# joining throughout so that every wave has about as many (some 780 staff answers and 2,100
# customer answers per wave; 0.8 and 2.1 million in all). Many units: 100,000 units of one to
# four people (three in four of one), below the default min_group_size of five, so every
# unit-wave is suppressed and the quartile estimands have nothing to stand on.
SCALE_CASES = {
    "many-waves": (
        "waves",
        StudyDesign(
            seed=5,
            n_units=60,
            n_waves=1_000,
            first_wave="1776-03-31",
            share_customers_before_first_wave=0.02,
            customers_per_employee=290.0,
        ),
    ),
    "many-units": (
        "units",
        StudyDesign(
            seed=6,
            n_units=100_000,
            median_unit_size=1.0,
            unit_size_spread=0.6,
            min_unit_size=1,
            max_unit_size=4,
        ),
    ),
    # the same shapes a hundred times smaller, for the tests
    "tiny-waves": ("waves", StudyDesign(seed=7, n_units=20, n_waves=24, first_wave="2000-03-31")),
    "tiny-units": (
        "units",
        StudyDesign(seed=8, n_units=400, median_unit_size=1.0, min_unit_size=1, max_unit_size=4),
    ),
}
GROWTH_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
SIZES |= {name: design for name, (_, design) in SCALE_CASES.items()}


def scaled_design(name: str, fraction: float) -> StudyDesign:
    """``fraction`` of scale case ``name``: its waves or units, the data per wave or unit kept.

    Customers of the many-waves case join throughout the study, so their number is scaled with
    the waves to keep the customers (and answers) per wave the same.
    """
    axis, design = SCALE_CASES[name]
    if fraction == 1.0:
        return design
    if axis == "waves":
        waves = max(2, round(design.n_waves * fraction))
        return replace(
            design,
            n_waves=waves,
            customers_per_employee=design.customers_per_employee * waves / design.n_waves,
        )
    return replace(design, n_units=max(20, round(design.n_units * fraction)))


@dataclass
class Measured:
    """One measured step: wall time, peak memory of its process tree, and how it ended.

    ``cpu_seconds`` is the processor time (user and system) of the step's processes: on a
    machine shared with other work the wall time grows while it waits for a core, the processor
    time much less, so the two together tell a slow step from a busy machine.
    """

    seconds: float
    peak_bytes: int
    status: str  # "ok", "timeout", "refused" (exit 2) or "failed"
    inner: dict  # timings a step reports about itself
    cpu_seconds: float = float("nan")


def run_measured(command: list[str], timeout: float | None) -> Measured:
    """Run ``command``; wall time, the peak RSS of its process tree's largest member, status."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return Measured(time.monotonic() - started, 0, "timeout", {})
    seconds = time.monotonic() - started
    usage, cpu = _children_usage()
    if process.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
        # exit 2 is a clear refusal (invalid or too thin data), not a crash
        status = "refused" if process.returncode == 2 else "failed"
        return Measured(seconds, usage, status, {}, cpu)
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    inner = json.loads(last) if last.startswith("{") else {}
    return Measured(seconds, usage, "ok", inner, cpu)


def _children_usage() -> tuple[int, float]:
    """Peak RSS (bytes) and processor seconds of this process's finished children and their
    descendants.

    ``RUSAGE_CHILDREN`` keeps the maximum RSS over every child so far and sums their processor
    time, so each step runs in a fresh helper process (``python -m analysis.studies.benchmark
    measure …``) whose only child is the step.
    """
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int(usage.ru_maxrss) * 1024, float(usage.ru_utime + usage.ru_stime)


def _measure_main(argv: list[str]) -> int:
    """``measure TIMEOUT -- COMMAND…``: run COMMAND, print its wall time and peak RSS as JSON."""
    timeout = float(argv[0])
    command = argv[2:]
    measured = run_measured(command, timeout if timeout > 0 else None)
    print(
        json.dumps(
            {
                "seconds": measured.seconds,
                "peak_bytes": measured.peak_bytes,
                "status": measured.status,
                "inner": measured.inner,
                "cpu_seconds": measured.cpu_seconds,
            }
        )
    )
    return 0


def measure(command: list[str], timeout: float | None = None) -> Measured:
    """``command``'s wall time and peak memory, measured in a fresh helper process."""
    helper = [
        sys.executable,
        "-m",
        "analysis.studies.benchmark",
        "measure",
        str(timeout or 0),
        "--",
    ]
    result = subprocess.run(helper + command, capture_output=True, text=True, check=True)
    fields = json.loads(result.stdout.strip().splitlines()[-1])
    return Measured(
        fields["seconds"],
        fields["peak_bytes"],
        fields["status"],
        fields["inner"],
        fields.get("cpu_seconds", float("nan")),
    )


# --------------------------------------------------------------------------------------------
# The estimands, ours and naive, timed inside one process


def _timed(timings: dict, name: str, function, *args):
    started = time.perf_counter()
    result = function(*args)
    timings[name] = time.perf_counter() - started
    return result


def naive_nps_on_engagement(dataset, panel: pd.DataFrame, window_days: int) -> dict:
    """The spreadsheet-to-statsmodels way: every answer a row, a formula, clustered errors.

    Each answer in a wave's outcome window is scored +100 (9–10), 0 (7–8) or −100 (0–6) and
    regressed on its unit's engagement index at that wave with region and wave effects; errors
    clustered by unit. Same question as ``nps_on_engagement``, without calibration or weights.
    """
    import statsmodels.formula.api as smf

    answers = dataset.customer_nps
    waves = np.sort(panel["wave"].unique())
    responded = answers["responded_on"].to_numpy()
    position = np.searchsorted(waves, responded, side="left") - 1  # the wave before the answer
    inside = position >= 0
    inside[inside] = (responded[inside] - waves[position[inside]]) <= np.timedelta64(
        window_days, "D"
    )
    score = answers["likelihood_to_recommend"].to_numpy(float)
    rows = pd.DataFrame(
        {
            "unit_id": answers["unit_id"].to_numpy()[inside],
            "wave": waves[position[inside]],
            "score": nps_points(score)[inside],
        }
    ).merge(
        panel[["unit_id", "wave", "engagement_index", "region"]].dropna(),
        on=["unit_id", "wave"],
    )
    fit = smf.ols("score ~ engagement_index + C(region) + C(wave)", data=rows).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(rows["unit_id"])[0]}
    )
    return {"estimate": float(fit.params["engagement_index"]), "n_obs": int(fit.nobs)}


def naive_churn_hazard(dataset, panel: pd.DataFrame, as_of) -> dict:
    """Customer-level Cox on the split episodes (time-varying engagement, delayed entry)."""
    from analysis.models import hazard, linkage

    units = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    params, _, episodes = hazard.customer_level_cox(
        dataset.customers, units, as_of, "engagement_index"
    )
    return {"log_hazard_ratio_per_index_point": float(params[0]), "episodes": len(episodes)}


#: The registry's estimands with a customer-level (naive) alternative, by the step that times them.
OURS = {"nps_model": "nps_on_engagement", "hazard_model": "churn_hazard_on_engagement"}


def _estimands_main(argv: list[str]) -> int:
    """``estimands {ours,naive} DATA``: time the two estimands one way; print JSON timings."""
    import statsmodels.api  # noqa: F401  imports are not part of any model's time
    import statsmodels.formula.api  # noqa: F401

    from analysis.data.load import load_dataset
    from analysis.data.parameters import Parameters, resolve_as_of
    from analysis.measures.panel import unit_wave_panel
    from analysis.models import registry

    which, data = argv
    parameters = Parameters()
    timings: dict[str, float] = {}
    dataset = _timed(timings, "load", load_dataset, data)
    as_of = resolve_as_of(dataset, parameters)
    panel = _timed(
        timings,
        "panel",
        unit_wave_panel,
        dataset,
        parameters.outcome_window_days,
        as_of,
        parameters.covariates,
    )
    if which == "ours":
        fitting = registry.Fitting(dataset, parameters, panel, as_of)
        for step, name in OURS.items():
            _timed(timings, step, registry.by_name(name).fit, fitting)
    elif which == "naive-nps":
        _timed(
            timings,
            "nps_model",
            naive_nps_on_engagement,
            dataset,
            panel,
            parameters.outcome_window_days,
        )
    else:
        _timed(timings, "hazard_model", naive_churn_hazard, dataset, panel, as_of)
    print(json.dumps(timings))
    return 0


# --------------------------------------------------------------------------------------------
# The two estimate paths, DuckDB and pandas, and whether they agree

#: The steps that read every customer answer into pandas; skipped above ``--pandas-max-answers``.
PANDAS_STEPS = ("estimate (pandas)", "report", "ours", "naive-nps", "naive-hazard")
SKIPPED = "skipped: reads every answer into pandas"
# The pandas path peaked at 3.2–3.5 GiB on 9.5 million answers (issue 14), about 0.35 GiB per
# million, so 100 million would need some 35 GiB on this 24 GiB machine; 30 million (about
# 10 GiB) still fits beside other work.
PANDAS_MAX_ANSWERS = 30_000_000
#: The files of ``estimate`` compared between its DuckDB and its pandas path, byte for byte.
COMPARED_FILES = (
    "estimates.csv",
    "unit_wave.csv",
    "findings.csv",
    "drivers.csv",
    "nps_by_engagement_quartile.csv",
)


def pandas_fits(nps_responses: int, max_answers: int = PANDAS_MAX_ANSWERS) -> bool:
    """Whether the steps that read every answer into pandas (``PANDAS_STEPS``) are run.

    Parameters
    ----------
    nps_responses : int
        The study's customer answers.
    max_answers : int
        The most answers the pandas steps are run on (``PANDAS_MAX_ANSWERS`` by default).

    Returns
    -------
    bool
        ``nps_responses <= max_answers``; above it those steps are recorded as ``SKIPPED``.
    """
    return int(nps_responses) <= int(max_answers)


def compare_results(ours: Path, theirs: Path, files: tuple[str, ...] = COMPARED_FILES) -> list:
    """Where two ``estimate`` result folders differ, file by file, byte for byte.

    Parameters
    ----------
    ours, theirs : Path
        The two ``results`` folders (``estimate --engine duckdb`` and ``--engine pandas``).
    files : tuple of str
        The files compared (``COMPARED_FILES``).

    Returns
    -------
    list of str
        One line per file that differs: its name, the first differing line's number and both
        versions of that line (or that one side lacks the file); empty when all are identical.
        A file neither folder has is not a difference.
    """
    differences = []
    for name in files:
        mine, other = ours / name, theirs / name
        if not mine.exists() and not other.exists():
            continue
        if not mine.exists() or not other.exists():
            missing = ours if not mine.exists() else theirs
            differences.append(f"{name}: missing in {missing}")
            continue
        mine_bytes, other_bytes = mine.read_bytes(), other.read_bytes()
        if mine_bytes == other_bytes:
            continue
        mine_lines = mine_bytes.decode(errors="replace").splitlines()
        other_lines = other_bytes.decode(errors="replace").splitlines()
        for number, (left, right) in enumerate(
            zip(mine_lines + [""], other_lines + [""], strict=False), start=1
        ):
            if left != right:
                differences.append(
                    f"{name}: line {number} differs:\n    duckdb: {left[:300]}\n"
                    f"    pandas: {right[:300]}"
                )
                break
        else:
            differences.append(f"{name}: differs in line endings or encoding")
    return differences


# --------------------------------------------------------------------------------------------
# The runner


def describe_machine() -> dict:
    """What the numbers were measured on."""
    import duckdb
    import ibis
    import numpy
    import statsmodels

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pd.__version__,
        "statsmodels": statsmodels.__version__,
        "duckdb": duckdb.__version__,
        "ibis": ibis.__version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ensure_study(name: str, root: Path, design: StudyDesign | None = None) -> tuple[Path, dict]:
    """Generate the study of size ``name`` (or ``design``, in folder ``name``) under ``root``
    unless the same design is there; the sizes in ``CHUNKED`` are written chunk by chunk."""
    from dataclasses import asdict

    from analysis.data.synth import generate, write_study, write_study_chunked

    design = SIZES[name] if design is None else design
    directory = root / name
    truth_file = directory / "truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth["design"] == json.loads(json.dumps(asdict(design.effective()))):
            counts = truth["counts"] | {"waves": len(truth["waves"])}
            return directory, counts | {"generate_seconds": None}
    started = time.monotonic()
    if name in CHUNKED:
        write_study_chunked(design, directory, progress=_generation_progress(name))
        truth = json.loads(truth_file.read_text())
    else:
        study = generate(design)
        write_study(study, directory, file_format="parquet")
        truth = study.truth
    counts = truth["counts"] | {"waves": len(truth["waves"])}
    return directory, counts | {"generate_seconds": time.monotonic() - started}


def _generation_progress(name: str):
    """Report a chunked generation's progress on standard error, about every tenth."""
    shown = [-1]

    def progress(done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"    {name}: {done:,} of {total:,} customers written", file=sys.stderr)

    return progress


def run_scaling(name: str, data_root: Path, out: Path, growth: bool = True) -> list[dict]:
    """``estimate`` on scale case ``name`` at each of ``GROWTH_FRACTIONS`` (or only in full).

    One row per point: the study's counts, generation and ``estimate`` time, peak memory,
    status, and how many estimands came out as numbers and how many as "not estimable" rows
    (a clear result where the data cannot support one).
    """
    axis, _ = SCALE_CASES[name]
    rows = []
    for fraction in GROWTH_FRACTIONS if growth else (1.0,):
        design = scaled_design(name, fraction)
        size = design.n_waves if axis == "waves" else design.n_units
        folder = name if fraction == 1.0 else f"{name}-{size}"
        print(f"==> {name}: {size:,} {axis}: generating the study", file=sys.stderr, flush=True)
        directory, counts = ensure_study(folder, data_root, design)
        results = out / "runs" / folder / "results"
        command = [sys.executable, "-m", "analysis", "estimate", "--data", str(directory)]
        print(f"==> {name}: {size:,} {axis}: estimate", file=sys.stderr, flush=True)
        measured = measure([*command, "--out", str(results)])
        print(f"    {measured.status} in {measured.seconds:.1f} s", file=sys.stderr)
        estimated = not_estimable = np.nan
        if measured.status == "ok" and (results / "estimates.csv").exists():
            estimates = pd.read_csv(results / "estimates.csv")
            not_estimable = int(estimates["method"].str.startswith("not estimable").sum())
            estimated = int(estimates["estimate"].notna().sum())
        rows.append(
            {
                "case": name,
                "axis": axis,
                "fraction": fraction,
                "waves": counts["waves"],
                "units": counts["units"],
                "employee_responses": counts["employee_responses"],
                "customers": counts["customers"],
                "nps_responses": counts["nps_responses"],
                "generate_seconds": counts["generate_seconds"],
                "seconds": measured.seconds,
                "cpu_seconds": measured.cpu_seconds,
                "peak_mib": measured.peak_bytes / 1024**2 if measured.peak_bytes else None,
                "status": measured.status,
                "estimands_estimated": estimated,
                "estimands_not_estimable": not_estimable,
            }
        )
    return growth_table(pd.DataFrame(rows)).to_dict("records")


def growth_table(points: pd.DataFrame) -> pd.DataFrame:
    """Add how time grows with the case's axis to each point of one scale case.

    ``seconds_per_step``: time per wave, or per thousand units; ``marginal_seconds_per_step``:
    the extra time per added wave (or thousand units) since the previous point, which stays
    flat when growth is linear; ``growth_exponent``: the slope of log time on log size over
    the finished points (1 is linear; fixed costs such as start-up pull it below 1).
    """
    points = points.sort_values("fraction").reset_index(drop=True)
    size = points["waves"] if points["axis"].iloc[0] == "waves" else points["units"] / 1000
    points["seconds_per_step"] = points["seconds"] / size
    points["marginal_seconds_per_step"] = points["seconds"].diff() / size.diff()
    ok = points["status"] == "ok"
    exponent = np.nan
    if ok.sum() >= 2 and size[ok].nunique() >= 2:
        exponent = float(np.polyfit(np.log(size[ok]), np.log(points.loc[ok, "seconds"]), 1)[0])
    points["growth_exponent"] = exponent
    return points


#: The sample study of ``make report``: an existing folder, timed as it is, never generated.
SAMPLE = "sample"
SAMPLE_DATA = Path("data/sample")
#: The estimands whose 95% intervals are checked against the generator's truth.
TRUTH_ESTIMANDS = ("nps_on_engagement", "churn_hazard_on_engagement")


def study_folder(
    name: str, data_root: Path, sample_data: Path = SAMPLE_DATA
) -> tuple[Path, dict] | None:
    """The folder of size ``name`` and its counts: ``SAMPLE`` is ``sample_data`` as it is (None
    when it is missing), every other size is generated under ``data_root`` if needed."""
    if name != SAMPLE:
        print(f"==> {name}: generating the study", file=sys.stderr, flush=True)
        return ensure_study(name, data_root)
    truth_file = sample_data / "truth.json"
    if not truth_file.exists():
        return None
    truth = json.loads(truth_file.read_text())
    return sample_data, truth["counts"] | {"waves": len(truth["waves"]), "generate_seconds": None}


def truth_recovery(results: Path, truth_file: Path) -> pd.DataFrame:
    """Whether ``estimate``'s 95% intervals cover the generator's true effects.

    The truth of ``nps_on_engagement`` is ``truth.json``'s
    ``effects.nps_points_per_sd_latent_engagement`` and that of ``churn_hazard_on_engagement``
    its ``effects.churn_hazard_ratio_per_sd`` (``analysis.studies.calibration.true_values``,
    as ``tests/test_estimate.py`` checks them).

    Parameters
    ----------
    results : Path
        The folder ``estimate`` wrote (its ``estimates.csv``).
    truth_file : Path
        The study's ``truth.json``.

    Returns
    -------
    DataFrame
        One row per estimand of ``TRUTH_ESTIMANDS``: ``estimand``, ``estimate``, ``conf_low``,
        ``conf_high``, ``truth`` and ``covered`` (``conf_low <= truth <= conf_high``).
    """
    from analysis.studies.calibration import true_values

    truth = true_values(json.loads(truth_file.read_text())["effects"])
    estimates = pd.read_csv(results / "estimates.csv").drop_duplicates("estimand")
    estimates = estimates.set_index("estimand")
    rows = []
    for estimand in TRUTH_ESTIMANDS:
        # an estimand missing, or "not estimable" (no interval), does not recover the truth
        row = estimates.loc[estimand] if estimand in estimates.index else {}
        low, high = float(row.get("conf_low", np.nan)), float(row.get("conf_high", np.nan))
        rows.append(
            {
                "estimand": estimand,
                "estimate": float(row.get("estimate", np.nan)),
                "conf_low": low,
                "conf_high": high,
                "truth": truth[estimand],
                "covered": bool(low <= truth[estimand] <= high),
            }
        )
    return pd.DataFrame(rows)


def run_benchmark(
    sizes: list[str],
    data_root: Path,
    out: Path,
    naive_timeout: float,
    report: bool,
    growth: bool = True,
    pandas_max_answers: int = PANDAS_MAX_ANSWERS,
    sample_data: Path = SAMPLE_DATA,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every step for every size; writes ``benchmark.csv``, ``benchmark_ratios.csv``,
    ``benchmark_targets.csv``, ``benchmark_scaling.csv`` (the scale cases), ``benchmark.png``
    and ``machine.json`` to ``out/results`` (one directory, all or nothing). Above
    ``pandas_max_answers`` customer answers the steps of ``PANDAS_STEPS`` are not run but
    recorded, status ``SKIPPED``. Returns the four tables."""
    rows, scaling_rows = [], []
    python = sys.executable
    for name in sizes:
        if name in SCALE_CASES:
            scaling_rows += run_scaling(name, data_root, out, growth)
            continue
        found = study_folder(name, data_root, sample_data)
        if found is None:
            print(f"==> {name}: {sample_data} is missing (make data writes it): not run",
                  file=sys.stderr, flush=True)  # fmt: skip
            continue
        directory, counts = found
        size = {
            "size": name,
            "units": counts["units"],
            "employee_responses": counts["employee_responses"],
            "customers": counts["customers"],
            "nps_responses": counts["nps_responses"],
        }
        if counts["generate_seconds"] is not None:
            rows.append(size | {"step": "generate", "seconds": counts["generate_seconds"]})
        this = [python, "-m", "analysis.studies.benchmark"]
        runs = out / "runs" / name
        estimate = [python, "-m", "analysis", "estimate", "--data", str(directory)]
        steps = [
            ("estimate", [*estimate, "--engine", "duckdb", "--out", str(runs / "results")], None),
            ("estimate (pandas)",
             [*estimate, "--engine", "pandas", "--out", str(runs / "results-pandas")], None),
            ("ours", [*this, "estimands", "ours", str(directory)], None),
            ("naive-nps", [*this, "estimands", "naive-nps", str(directory)], naive_timeout),
            ("naive-hazard", [*this, "estimands", "naive-hazard", str(directory)], naive_timeout),
        ]  # fmt: skip
        if report:
            steps.insert(
                2,
                ("report", [python, "-m", "analysis", "report", "--data", str(directory),
                            "--out", str(runs / "report")], None),
            )  # fmt: skip
        fits = pandas_fits(counts["nps_responses"], pandas_max_answers)
        finished = {}
        for step, command, timeout in steps:
            if step in PANDAS_STEPS and not fits:
                rows.append(size | {"step": step, "status": SKIPPED})
                print(f"==> {name}: {step}: {SKIPPED}", file=sys.stderr, flush=True)
                continue
            print(f"==> {name}: {step}", file=sys.stderr, flush=True)
            measured = measure(command, timeout)
            finished[step] = measured.status == "ok"
            rows.append(
                size
                | {
                    "step": step,
                    "seconds": measured.seconds,
                    "cpu_seconds": measured.cpu_seconds,
                    "peak_mib": measured.peak_bytes / 1024**2 if measured.peak_bytes else None,
                    "status": measured.status,
                    **{f"{k}_seconds": v for k, v in measured.inner.items()},
                }
            )
            print(f"    {measured.status} in {measured.seconds:.1f} s", file=sys.stderr)
        estimate_row = next((r for r in rows[::-1] if r["step"] == "estimate"), None)
        if finished.get("estimate") and (directory / "truth.json").exists():
            recovery = truth_recovery(runs / "results", directory / "truth.json")
            estimate_row["truth_covered"] = bool(recovery["covered"].all())
            for row in recovery.itertuples():
                estimate_row[f"{row.estimand}_conf_low"] = row.conf_low
                estimate_row[f"{row.estimand}_conf_high"] = row.conf_high
                estimate_row[f"{row.estimand}_truth"] = row.truth
        if finished.get("estimate") and finished.get("estimate (pandas)"):
            differences = compare_results(runs / "results", runs / "results-pandas")
            estimate_row["same_as_pandas"] = not differences
            for difference in differences:
                print(f"    {name}: DuckDB and pandas differ: {difference}", file=sys.stderr)
            if not differences:
                print(f"    {name}: DuckDB and pandas give identical "
                      f"{', '.join(COMPARED_FILES)}", file=sys.stderr)  # fmt: skip
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(TABLE_COLUMNS))
    table["status"] = table["status"].fillna("ok")
    if "same_as_pandas" not in table:
        table["same_as_pandas"] = pd.NA
    table["same_as_pandas"] = table["same_as_pandas"].astype("boolean")
    ratios = naive_ratios(table)
    targets = targets_table(table, ratios)
    scaling = pd.DataFrame(scaling_rows, columns=SCALING_COLUMNS)
    import io

    from analysis.data.load import write_tables

    figure = io.BytesIO()  # written with the tables: the folder's marker lists every file
    machine = describe_machine()
    benchmark_figure(table, ratios, scaling, machine, targets).savefig(
        figure, format="png", dpi=110, bbox_inches="tight"
    )
    write_tables(
        {
            "benchmark": table,
            "benchmark_ratios": ratios,
            "benchmark_targets": targets,
            "benchmark_scaling": scaling,
        },
        out / "results",
        extra_files={
            "machine.json": json.dumps(machine, indent=2) + "\n",
            "benchmark.png": figure.getvalue(),
        },
    )
    return table, ratios, targets, scaling


TABLE_COLUMNS = (
    "size",
    "units",
    "employee_responses",
    "customers",
    "nps_responses",
    "step",
    "seconds",
    "cpu_seconds",
    "peak_mib",
    "status",
)
SCALING_COLUMNS = (
    "case",
    "axis",
    "fraction",
    "waves",
    "units",
    "employee_responses",
    "customers",
    "nps_responses",
    "generate_seconds",
    "seconds",
    "cpu_seconds",
    "peak_mib",
    "status",
    "estimands_estimated",
    "estimands_not_estimable",
    "seconds_per_step",
    "marginal_seconds_per_step",
    "growth_exponent",
)


def naive_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Naive time over ours, per size and estimand, and for the whole ``estimate``.

    Per estimand: the naive model's time over ours (``ours`` and ``naive-nps`` or
    ``naive-hazard``, model time only, after the same loading). For the whole (estimand
    ``ALL_ESTIMANDS``): ``estimate`` on DuckDB, every estimand with its intervals, against the
    naive customer-level analysis of both estimands, loading the data once: the whole
    ``naive-nps`` step (start-up, loading, panel, model) plus the ``naive-hazard`` model. A
    naive step stopped at its time limit counts with its limit, and the ratio is a lower bound.
    """
    rows = []
    if table.empty:
        return pd.DataFrame(columns=list(RATIO_COLUMNS))
    for size, group in table.groupby("size", sort=False):
        by_step = group.set_index("step")

        def ran(step, by_step=by_step):
            return step in by_step.index and by_step.loc[step, "status"] != SKIPPED

        pairs = (
            ("nps_on_engagement", "naive-nps", "nps_model_seconds"),
            ("churn_hazard_on_engagement", "naive-hazard", "hazard_model_seconds"),
        )
        for estimand, naive_step, column in pairs if ran("ours") else ():
            if not ran(naive_step):
                continue
            ours, naive = by_step.loc["ours"], by_step.loc[naive_step]
            timed_out = naive["status"] == "timeout"
            naive_seconds = naive["seconds"] if timed_out else naive.get(column, np.nan)
            rows.append(
                {
                    "size": size,
                    "nps_responses": ours["nps_responses"],
                    "estimand": estimand,
                    "ours_seconds": ours.get(column, np.nan),
                    "naive_seconds": naive_seconds,
                    "naive_status": naive["status"],
                    "ratio": naive_seconds / ours.get(column, np.nan),
                    "ratio_is_lower_bound": bool(timed_out),
                }
            )
        if ran("estimate") and ran("naive-nps") and ran("naive-hazard"):
            estimate = by_step.loc["estimate"]
            nps, hazard = by_step.loc["naive-nps"], by_step.loc["naive-hazard"]
            timed_out = "timeout" in (nps["status"], hazard["status"])
            hazard_seconds = (
                hazard["seconds"]
                if hazard["status"] == "timeout"
                else hazard.get("hazard_model_seconds", np.nan)
            )
            naive_seconds = nps["seconds"] + hazard_seconds
            statuses = {nps["status"], hazard["status"]}
            rows.append(
                {
                    "size": size,
                    "nps_responses": estimate["nps_responses"],
                    "estimand": ALL_ESTIMANDS,
                    "ours_seconds": estimate["seconds"],
                    "naive_seconds": naive_seconds,
                    "naive_status": "ok" if statuses == {"ok"} else ", ".join(sorted(statuses)),
                    "ratio": naive_seconds / estimate["seconds"],
                    "ratio_is_lower_bound": bool(timed_out),
                }
            )
    return pd.DataFrame(rows, columns=list(RATIO_COLUMNS))


#: The row of ``benchmark_ratios.csv`` that compares the whole ``estimate`` with the naive total.
ALL_ESTIMANDS = "estimate (all estimands)"
RATIO_COLUMNS = (
    "size",
    "nps_responses",
    "estimand",
    "ours_seconds",
    "naive_seconds",
    "naive_status",
    "ratio",
    "ratio_is_lower_bound",
)

# Issue 14's targets, measured by ``make bench`` on its 2-core machine: (what, size, step,
# quantity, limit). Quantities: ``seconds`` and ``peak_gib`` of the step (below the limit),
# ``truth`` (the 95% intervals cover the truth), ``naive_ratio`` (at least the limit) and
# ``same_as_pandas``. ``large`` has about 10 million answers (its table row says how many).
TEN_MILLION = "estimate on 9.5–10 million answers (large: 10.3 million, a little more)"
TARGETS = (
    (f"{TEN_MILLION}: under 20 s", "large", "estimate", "seconds", 20.0),
    (f"{TEN_MILLION}: peak under 1.5 GiB", "large", "estimate", "peak_gib", 1.5),
    ("estimate on 100 million answers: under 5 minutes", "huge", "estimate", "seconds", 300.0),
    ("estimate on 100 million answers: peak under 6 GiB", "huge", "estimate", "peak_gib", 6.0),
    ("estimate on 100 million answers: 95% intervals of nps_on_engagement and "
     "churn_hazard_on_engagement cover the generator's truth", "huge", "estimate", "truth", None),
    ("make report on the sample: under 30 s", SAMPLE, "report", "seconds", 30.0),
    ("estimate on the mid-size study: at least 10× faster than the naive customer-level "
     "analysis (naive-nps + naive-hazard, same run)", "medium", "estimate", "naive_ratio", 10.0),
    ("estimate on the mid-size study: DuckDB and pandas paths give identical "
     + ", ".join(COMPARED_FILES), "medium", "estimate", "same_as_pandas", None),
)  # fmt: skip
TARGET_COLUMNS = ("target", "size", "nps_responses", "measured", "value", "limit", "met")
NOT_RUN = "not run"


def targets_table(table: pd.DataFrame, ratios: pd.DataFrame) -> pd.DataFrame:
    """Issue 14's targets (``TARGETS``), each with what this run measured and whether it is met.

    Parameters
    ----------
    table : DataFrame
        ``benchmark.csv``: one row per size and step.
    ratios : DataFrame
        ``benchmark_ratios.csv`` (``naive_ratios``), for the mid-size ratio.

    Returns
    -------
    DataFrame
        One row per target: ``target``, ``size``, ``nps_responses`` of that size, ``measured``
        (in words), ``value`` and ``limit`` (numbers where the target is one), and ``met``:
        ``"True"``, ``"False"``, or ``"not run"`` where the size or step did not run this time
        (or was skipped). A step that failed or timed out does not meet its target.
    """
    rows = []
    for target, size, step, quantity, limit in TARGETS:
        row = {"target": target, "size": size, "nps_responses": np.nan, "measured": NOT_RUN}
        row |= {"value": np.nan, "limit": np.nan if limit is None else limit, "met": NOT_RUN}
        rows.append(row)
        found = table[(table["size"] == size) & (table["step"] == step)] if len(table) else table
        if found.empty or found["status"].iloc[0] == SKIPPED:
            continue
        measured = found.iloc[0]
        row["nps_responses"] = measured["nps_responses"]
        if measured["status"] != "ok":
            row |= {"measured": f"{step}: {measured['status']}", "met": "False"}
            continue
        if quantity == "seconds":
            value = float(measured["seconds"])
            row |= {"value": value, "measured": f"{value:,.1f} s", "met": str(value < limit)}
        elif quantity == "peak_gib":
            value = float(measured["peak_mib"]) / 1024
            row |= {"value": value, "measured": f"{value:.2f} GiB", "met": str(value < limit)}
        elif quantity == "truth":
            if pd.isna(measured.get("truth_covered", np.nan)):
                continue
            row["measured"] = "; ".join(
                f"{estimand} [{measured[f'{estimand}_conf_low']:.3g}, "
                f"{measured[f'{estimand}_conf_high']:.3g}], truth "
                f"{measured[f'{estimand}_truth']:.3g}"
                for estimand in TRUTH_ESTIMANDS
            )
            row["met"] = str(bool(measured["truth_covered"]))
        elif quantity == "naive_ratio":
            whole = ratios[(ratios["size"] == size) & (ratios["estimand"] == ALL_ESTIMANDS)]
            if whole.empty:
                continue
            ratio = whole.iloc[0]
            at_least = "at least " if ratio["ratio_is_lower_bound"] else ""
            row |= {
                "value": float(ratio["ratio"]),
                "measured": f"{at_least}{ratio['ratio']:.1f}× ({ratio['naive_seconds']:,.1f} s "
                f"naive, {ratio['ours_seconds']:,.1f} s estimate)",
                "met": str(bool(ratio["ratio"] >= limit)),
            }
        elif quantity == "same_as_pandas":
            same = measured.get("same_as_pandas", pd.NA)
            if pd.isna(same):
                continue
            row |= {"measured": "identical" if same else "different", "met": str(bool(same))}
    return pd.DataFrame(rows, columns=list(TARGET_COLUMNS))


def benchmark_figure(
    table: pd.DataFrame,
    ratios: pd.DataFrame,
    scaling: pd.DataFrame | None = None,
    machine: dict | None = None,
    targets: pd.DataFrame | None = None,
):
    """Wall time and peak memory of ``estimate`` (DuckDB), ``estimate (pandas)`` and
    ``report`` against customer answers (log–log) with issue 14's targets marked, the
    naive-to-ours ratios, the targets and the steps not run in words, and for the scale cases
    ``estimate`` time against waves and against units; the machine, when given, in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.report.figures import use_house_style

    use_house_style()
    measured = table[table["step"].isin(PLOTTED_STEPS) & table["seconds"].notna()]
    standard = not measured.empty
    cases = [] if scaling is None or scaling.empty else list(dict.fromkeys(scaling["case"]))
    rows = 2 * int(standard) + (len(cases) + 1) // 2 or 1
    figure, axes = plt.subplots(rows, 2, figsize=(11, 4.2 * rows), squeeze=False)
    panels = [axis for row in axes for axis in row]
    if standard:
        growth_panel(panels.pop(0), measured, "seconds")
        growth_panel(panels.pop(0), measured, "peak_mib")
        ratio_axis = panels.pop(0)
        if ratios.empty:
            ratio_axis.set_axis_off()
        else:
            ratio_panel(ratio_axis, ratios)
        skipped = table[table["status"] == SKIPPED]
        skipped_note(panels.pop(0), skipped, targets)
    for axis, case in zip(panels, cases, strict=False):
        scaling_panel(axis, scaling[scaling["case"] == case])
    for axis in panels[len(cases) :]:
        axis.set_axis_off()
    if machine:
        figure.suptitle(machine_line(machine), fontsize=9, color="#555555")
    figure.tight_layout()
    return figure


def machine_line(machine: dict) -> str:
    """``describe_machine``'s record in one line, for a figure's title."""
    versions = ", ".join(
        f"{name} {machine[name]}" for name in ("python", "pandas", "duckdb") if name in machine
    )
    return (
        f"{machine.get('cores')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB; "
        f"{versions}; measured {machine.get('measured_at', '')}"
    )


def _plain_log_ticks(axis) -> None:
    """Tick labels as plain numbers: the house style draws text literally (no mathtext), which
    would print matplotlib's default log labels as ``$\\mathdefault{10^{3}}$``."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    for ticks in (axis.xaxis, axis.yaxis):
        ticks.set_major_formatter(plain)
        ticks.set_minor_formatter(NullFormatter())


# Issue 14's targets for the whole estimate: (customer answers, seconds, bytes of peak memory).
ANSWER_TARGETS = ((10_000_000, 20.0, 1.5 * 1024**3), (100_000_000, 300.0, 6 * 1024**3))
REPORT_TARGET_SECONDS = 30.0  # make report on the sample
#: The steps drawn against customer answers in the growth panels.
PLOTTED_STEPS = ("estimate", "estimate (pandas)", "report")


def growth_panel(axis, measured: pd.DataFrame, column: str) -> None:
    """One line per step: ``seconds`` or ``peak_mib`` against customer answers (log–log), and
    issue 14's targets as grey stars: the whole ``estimate`` at 10 and 100 million answers,
    and ``report`` on the sample (time only, where the sample ran)."""
    for step, group in measured.groupby("step", sort=False):
        group = group.sort_values("nps_responses").dropna(subset=[column])
        if group.empty:
            continue
        (line,) = axis.plot(group["nps_responses"], group[column], label=step, linewidth=1.5)
        for x, y, status in zip(
            group["nps_responses"], group[column], group["status"], strict=True
        ):
            axis.scatter(
                [x], [y], marker="o" if status == "ok" else "^", s=28, color=line.get_color()
            )
    stars = [
        (answers, seconds if column == "seconds" else peak / 1024**2,
         f"target: estimate {seconds:.0f} s" if column == "seconds"
         else f"target: estimate {peak / 1024**3:g} GiB")
        for answers, seconds, peak in ANSWER_TARGETS
    ]  # fmt: skip
    sample = measured[(measured["size"] == SAMPLE) & (measured["step"] == "report")]
    if column == "seconds" and not sample.empty:
        answers = sample["nps_responses"].iloc[0]
        stars.append((answers, REPORT_TARGET_SECONDS, "target: report on the sample 30 s"))
    for answers, value, text in stars:
        axis.scatter([answers], [value], marker="*", s=90, color="grey", zorder=3)
        axis.annotate(
            text,
            (answers, value),
            xytext=(-4, 6),
            textcoords="offset points",
            ha="right" if answers > 1e6 else "left",
            color="grey",
            fontsize=7,
        )
    label = "wall time (s)" if column == "seconds" else "peak memory (MiB)"
    axis.set(xscale="log", yscale="log", xlabel="customer NPS answers", ylabel=label)
    title = "Wall time" if column == "seconds" else "Peak memory"
    axis.set_title(f"{title} by customer answers (▲ stopped at the limit)", fontsize=11)
    axis.legend(frameon=False, fontsize=8)
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    _plain_log_ticks(axis)

    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _short_count(value)))


def _short_count(value: float) -> str:
    """10,000 as ``10k``, 100,000,000 as ``100M``: log-axis ticks that do not collide."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def ratio_panel(axis, ratios: pd.DataFrame) -> None:
    """Naive time over ours per size and estimand, and for the whole ``estimate`` (hatched
    where naive timed out), with issue 14's 10× target for the whole."""
    short = {"nps_on_engagement": "NPS", "churn_hazard_on_engagement": "hazard"}
    labels = [f"{r.size}: {short.get(r.estimand, 'estimate')}" for r in ratios.itertuples()]
    colours = ["#dd8452" if e == ALL_ESTIMANDS else "#4c72b0" for e in ratios["estimand"]]
    bars = axis.bar(range(len(ratios)), ratios["ratio"], color=colours)
    for bar, lower in zip(bars, ratios["ratio_is_lower_bound"], strict=True):
        if lower:
            bar.set_hatch("//")
    axis.set_xticks(range(len(ratios)), labels, fontsize=7, rotation=45, ha="right")
    for bar, ratio in zip(bars, ratios["ratio"], strict=True):
        axis.annotate(
            f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    if (ratios["estimand"] == ALL_ESTIMANDS).any():
        axis.axhline(10, color="grey", linestyle=":", linewidth=1)
        # beside the axes, where no bar's label can fall on it
        axis.annotate("target 10×\n(whole\nestimate,\nmid-size)", (1, 10),
                      xycoords=("axes fraction", "data"), xytext=(4, 0),
                      textcoords="offset points", ha="left", va="center", color="grey",
                      fontsize=7)  # fmt: skip
    axis.set(ylabel="naive time ÷ our time")
    axis.set_title("Naive ÷ ours (orange: whole estimate; hatched: at least)", fontsize=11)


def skipped_note(axis, skipped: pd.DataFrame, targets: pd.DataFrame | None = None) -> None:
    """Issue 14's targets, met or not, and the steps not run, by size, in words."""
    import textwrap

    axis.set_axis_off()
    lines = []
    if targets is not None and not targets.empty:
        lines.append("Issue 14's targets (met: yes / no / not run):")
        marks = {"True": "yes", "False": "NO", NOT_RUN: "not run"}
        for row in targets.itertuples():
            text = f"[{marks.get(row.met, row.met)}] {row.target}: {row.measured}"
            lines += textwrap.wrap(text, 95, subsequent_indent="      ")
        lines.append("")
    if not skipped.empty:
        lines.append(f"Not run ({SKIPPED}):")
        lines += [
            f"{size} ({group['nps_responses'].iloc[0]:,.0f} answers): " + ", ".join(group["step"])
            for size, group in skipped.groupby("size", sort=False)
        ]
    if lines:
        axis.text(0.0, 1.0, "\n".join(lines), va="top", fontsize=6.5, transform=axis.transAxes)


def scaling_panel(axis, points: pd.DataFrame) -> None:
    """``estimate`` time against waves or units, log–log, with the line of linear growth."""
    points = points.sort_values("fraction")
    by_waves = points["axis"].iloc[0] == "waves"
    size = points["waves"] if by_waves else points["units"]
    ok = points["status"] == "ok"
    axis.plot(size, points["seconds"], color="#4c72b0", linewidth=1.5)
    axis.scatter(size[ok], points.loc[ok, "seconds"], color="#4c72b0", s=28, zorder=3)
    axis.scatter(size[~ok], points.loc[~ok, "seconds"], color="#c44e52", marker="x", s=40)
    if ok.any():  # linear growth through the largest finished point
        largest = size[ok].idxmax()
        reference = points.loc[largest, "seconds"] * size / size[largest]
        axis.plot(size, reference, color="grey", linestyle=":", linewidth=1, label="linear")
        axis.legend(frameon=False, fontsize=8, loc="upper left")
    exponent = points["growth_exponent"].iloc[0]
    full = points.iloc[-1]
    label = "waves" if by_waves else "units"
    axis.set(xscale="log", yscale="log", xlabel=label, ylabel="estimate wall time (s)")
    from matplotlib.ticker import LogLocator

    axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    _plain_log_ticks(axis)
    axis.set_xticks(size.to_numpy(float))
    axis.set_title(
        f"{full['case']}: {size.iloc[-1]:,} {label} in {full['seconds']:.0f} s "
        f"(growth exponent {exponent:.2f})"
        if math.isfinite(exponent)
        else f"{full['case']}: {full['status']}",
        fontsize=11,
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m analysis.studies.benchmark`` (``make bench``)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.studies.benchmark",
        description="Time and measure the memory of estimate (on DuckDB, the default, and on "
        "the pandas path) and report on synthetic studies of three sizes and on the sample, "
        "beside customer-level (naive) versions of two estimands, check issue 14's targets, "
        "and time estimate on two shapes at four sizes each, to show its growth. Sizes: "
        "sample = data/sample as it is (≈ 43,000 NPS answers); "
        "small ≈ 60,000 NPS answers; medium ≈ 1 million answers and 100,000 customers; "
        "large = 20,000 units, ≈ 1.7 million employee answers, ≈ 1 million customers, "
        "≈ 10 million answers; huge (not by default) = 40,000 units, ≈ 5 million customers, "
        "≈ 100 million answers, generated in chunks. Shapes: many-waves = 1,000 waves of 60 "
        "units; many-units = 100,000 units of one to four people (every unit-wave suppressed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        default=[SAMPLE, "small", "medium", "large", "many-waves", "many-units"],
        choices=sorted([*SIZES, SAMPLE]),
    )
    parser.add_argument("--data-root", type=Path, default=Path("data/bench"))
    parser.add_argument(
        "--sample-data",
        type=Path,
        default=SAMPLE_DATA,
        help="the folder of the sample size (timed as it is, never generated)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports/benchmark"))
    parser.add_argument(
        "--naive-timeout",
        type=float,
        default=600.0,
        help="seconds after which a naive step is stopped (its ratio becomes a lower bound)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip timing the report")
    parser.add_argument(
        "--pandas-max-answers",
        type=int,
        default=PANDAS_MAX_ANSWERS,
        help="above this many customer answers, the steps that read every answer into pandas "
        "(estimate (pandas), report, ours, naive) are recorded as skipped, not run",
    )
    parser.add_argument(
        "--no-growth",
        action="store_true",
        help="time the many-waves and many-units shapes in full only, not at 1/8, 1/4 and 1/2",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, or one of its internal steps (``measure``, ``estimands``).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a refused request.
    """
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["measure"]:
        return _measure_main(argv[1:])
    if argv[:1] == ["estimands"]:
        return _estimands_main(argv[1:])
    args = build_parser().parse_args(argv)
    table, ratios, targets, scaling = run_benchmark(
        args.sizes,
        args.data_root,
        args.out,
        args.naive_timeout,
        not args.no_report,
        growth=not args.no_growth,
        pandas_max_answers=args.pandas_max_answers,
        sample_data=args.sample_data,
    )
    summary = table[table["step"] != "generate"][
        ["size", "nps_responses", "step", "seconds", "cpu_seconds", "peak_mib", "status"]
        + ["same_as_pandas"]
    ]
    if not summary.empty:
        print(summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}", na_rep=""))
    for _, points in scaling.groupby("case", sort=False):
        print(scaling_summary(points))
    if not ratios.empty:
        print(ratios.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    if not summary.empty:
        print("Issue 14's targets:")
        for row in targets.itertuples():
            print(f"  [{row.met}] {row.target}: {row.measured}")
    print(f"wrote {args.out / 'results'}: benchmark.csv, benchmark_ratios.csv, "
          "benchmark_targets.csv, benchmark_scaling.csv, benchmark.png, machine.json")  # fmt: skip
    return 0


def scaling_summary(points: pd.DataFrame) -> str:
    """One scale case in a few lines: each point's time and the growth."""
    points = points.sort_values("fraction")
    by_waves = points["axis"].iloc[0] == "waves"
    unit = "wave" if by_waves else "1,000 units"
    lines = []
    for point in points.itertuples():
        size = f"{point.waves:,} waves" if by_waves else f"{point.units:,} units"
        peak = f", {point.peak_mib:,.0f} MiB peak" if pd.notna(point.peak_mib) else ""
        result = ""
        if pd.notna(point.estimands_estimated):
            result = (
                f"; {point.estimands_estimated:.0f} estimands estimated, "
                f"{point.estimands_not_estimable:.0f} not estimable"
            )
        lines.append(
            f"{point.case}, {size}: {point.status} in {point.seconds:,.1f} s{peak}{result}"
        )
    marginal = points["marginal_seconds_per_step"].dropna()
    exponent = points["growth_exponent"].iloc[0]
    if len(marginal):
        lines.append(
            f"{points['case'].iloc[0]}: {marginal.iloc[-1]:.3g} s per added {unit} at the top; "
            f"growth exponent {exponent:.2f} (1 = linear)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
