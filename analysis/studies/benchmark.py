"""How long Inside Out takes, and how much memory, on studies of three sizes: ``make bench``.

For each size the benchmark generates a synthetic study (Parquet, under ``data/bench/``), then
runs, each in its own process so that its peak memory is its own:

* ``estimate``: ``python -m analysis estimate``, the whole engine (validation included);
* ``report``: ``python -m analysis report``, what ``make report`` runs;
* ``ours`` and ``naive``: the two estimands with a customer-level alternative, timed in one
  process after the same loading: NPS on engagement (ours: weighted least squares on the
  unit × wave panel; naive: a customer-level formula regression, ``score ~ engagement +
  C(region) + C(wave)`` with errors clustered by unit) and the churn hazard ratio (ours: the
  piecewise-exponential model on unit × wave × tenure-band cells; naive: customer-level Cox on
  the split episodes with Lin–Wei clustered errors). The naive Cox is stopped at a time limit,
  recorded as ``timeout``; its ratio is then a lower bound;
* ``reduce (DuckDB)`` and ``reduce (pandas)`` (issue 14): the customer side of the unit × wave
  panel alone (customer answers in each wave's outcome window and in the window before, and
  the retention exposure, with a 91-day window), once in DuckDB over the study's files
  (``analysis.measures.reduction``; only the reduced rows reach pandas) and once on the pandas
  path (the loader's reading of the tables, then ``analysis.measures.panel``). It is a part of
  ``estimate``, measured alone until ``estimate`` itself runs on DuckDB.

Above ``--pandas-max-answers`` customer answers (30 million by default; the ``huge`` size has
100 million) the steps that read every answer into pandas are not run: they stay in the table
with the status ``skipped: reads every answer into pandas``, and only ``reduce (DuckDB)`` runs.

Beside the three sizes, two shapes that users reach and that once did not finish (issue 10):
**many waves** (1,000 quarterly waves of 60 units) and **many small units** (100,000 units of
one to four people, so every unit-wave is too small to show). Each is timed (``estimate``) at
an eighth, a quarter, a half and all of its waves or units, with the data per wave or per unit
held fixed, so that the growth shows: ``benchmark_scaling.csv`` gives each point's time, the
marginal seconds per added wave or per thousand added units, and the growth exponent (the
log–log slope over the points; 1 is linear, and fixed costs such as imports pull it below 1).

Peak memory is the maximum resident set size of the step's process (``wait4``); for ``report``
that is its largest process, the orchestrator or one notebook kernel. Results go to
``benchmark.csv``, ``benchmark.png`` (time and peak memory of each step against the customer
answers, the machine in its title) and ``machine.json`` under ``--out``. Timings on a shared
machine vary by ±20–30%; there are no timed assertions anywhere in the tests.
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


TARGETS = {"estimate": (120.0, 4 * 1024**3)}  # the largest study: 2 minutes, 4 GiB


@dataclass
class Measured:
    """One measured step: wall time, peak memory of its process tree, and how it ended."""

    seconds: float
    peak_bytes: int
    status: str  # "ok", "timeout", "refused" (exit 2) or "failed"
    inner: dict  # timings a step reports about itself


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
    usage = _children_peak_bytes()
    if process.returncode != 0:
        print(stderr[-2000:], file=sys.stderr)
        # exit 2 is a clear refusal (invalid or too thin data), not a crash
        return Measured(seconds, usage, "refused" if process.returncode == 2 else "failed", {})
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    inner = json.loads(last) if last.startswith("{") else {}
    return Measured(seconds, usage, "ok", inner)


def _children_peak_bytes() -> int:
    """Peak RSS over this process's finished children and their descendants.

    ``RUSAGE_CHILDREN`` keeps the maximum over every child so far, so each step runs in a fresh
    helper process (``python -m analysis.studies.benchmark measure …``) whose only child is
    the step.
    """
    import resource

    return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024


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
    return Measured(fields["seconds"], fields["peak_bytes"], fields["status"], fields["inner"])


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
# The customer-side reduction, in DuckDB and in pandas, timed inside one process

#: The steps that read every customer answer into pandas; skipped above ``--pandas-max-answers``.
PANDAS_STEPS = ("estimate", "report", "reduce (pandas)", "ours", "naive-nps", "naive-hazard")
SKIPPED = "skipped: reads every answer into pandas"
# The pandas path peaked at 3.2–3.5 GiB on 9.5 million answers (issue 14), about 0.35 GiB per
# million, so 100 million would need some 35 GiB on this 24 GiB machine; 30 million (about
# 10 GiB) still fits beside other work.
PANDAS_MAX_ANSWERS = 30_000_000


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


def _reduced(customer_nps, customers, waves, window_days: int, as_of, timings: dict) -> dict:
    """Both NPS windows and retention exposure, with either engine's (or panel's) functions."""
    from analysis.measures import panel, reduction

    functions = panel if isinstance(customer_nps, pd.DataFrame) else reduction
    return {
        "outcome": _timed(
            timings, "outcome", functions.nps_counts_in_windows,
            customer_nps, waves, window_days, False, as_of,
        ),
        "prior": _timed(
            timings, "prior", functions.nps_counts_in_windows,
            customer_nps, waves, window_days, True, as_of,
        ),
        "retention": _timed(
            timings, "retention", functions.customers_at_waves,
            customers, waves, window_days, as_of,
        ),
    }  # fmt: skip


def reduce_in_duckdb(directory: Path, window_days: int, timings: dict | None = None) -> dict:
    """The customer side of the panel reduced in DuckDB over the study's files.

    The waves are the survey's (``employee_survey.wave``) and ``as_of`` the latest date in the
    data (``analysis.data.load.default_as_of``'s rule), both computed in the engine; then
    ``analysis.measures.reduction``'s ``nps_counts_in_windows`` (outcome window and the window
    before) and ``customers_at_waves``. Only the reduced rows reach pandas. No validation: the
    files are read as ``analysis.data.engine.open_tables`` types them.

    Parameters
    ----------
    directory : Path
        The study folder.
    window_days : int
        The outcome window in days.
    timings : dict, optional
        Filled with the seconds of each part (``open``, ``dates``, ``outcome``, ``prior``,
        ``retention``).

    Returns
    -------
    dict of str to DataFrame
        ``outcome``, ``prior`` and ``retention``, as ``analysis.measures.panel`` returns them.
    """
    import tempfile

    import ibis

    from analysis.data.engine import open_tables

    timings = {} if timings is None else timings
    with tempfile.TemporaryDirectory(prefix="inside-out-spill-") as spill:
        opened = _timed(timings, "open", lambda: open_tables(directory, temp_directory=spill))
        with opened:
            tables = opened.tables
            survey, answers, people = (
                tables["employee_survey"], tables["customer_nps"], tables["customers"]
            )  # fmt: skip

            def dates():
                latest = ibis.greatest(
                    survey.wave.max().as_scalar(),
                    answers.responded_on.max().as_scalar(),
                    people.since.max().as_scalar(),
                    people.churned_on.max().as_scalar(),
                )
                as_of = pd.Timestamp(opened.backend.execute(latest))
                waves = pd.to_datetime(survey.select("wave").distinct().to_pandas()["wave"])
                waves = waves.astype("datetime64[ns]")
                return np.sort(waves[waves <= as_of].unique()), as_of

            waves, as_of = _timed(timings, "dates", dates)
            return _reduced(answers, people, waves, window_days, as_of, timings)


def reduce_in_pandas(directory: Path, window_days: int, timings: dict | None = None) -> dict:
    """The same reduction on the pandas path: the loader's reading, then panel's functions.

    ``employee_survey`` (for its waves), ``customer_nps`` and ``customers`` are read, typed and
    checked table by table as ``analysis.data.load.load_dataset`` does (the rules across tables
    and the other tables are left out); ``as_of`` by ``default_as_of``; then
    ``analysis.measures.panel``'s ``nps_counts_in_windows`` and ``customers_at_waves``.

    Parameters
    ----------
    directory : Path
        The study folder.
    window_days : int
        The outcome window in days.
    timings : dict, optional
        Filled with the seconds of each part (``load``, ``dates``, ``outcome``, ``prior``,
        ``retention``).

    Returns
    -------
    dict of str to DataFrame
        ``outcome``, ``prior`` and ``retention``.

    Raises
    ------
    DatasetError
        If one of the three tables breaks the contract.
    """
    from types import SimpleNamespace

    from analysis.data.contract import default_instrument, table_specs
    from analysis.data.load import (
        INSTRUMENT_FILE,
        DatasetError,
        _read_table,  # the loader's reading of one table; load_dataset reads all of them
        default_as_of,
        find_table_files,
        load_instrument,
    )

    timings = {} if timings is None else timings

    def load():
        instrument, problems = load_instrument(directory)
        files, found = find_table_files(directory)
        default = not (directory / INSTRUMENT_FILE).exists()
        specs = table_specs(default_instrument() if default else instrument)
        tables = {}
        for name in ("employee_survey", "customer_nps", "customers"):
            tables[name], table_problems = _read_table(files[name], specs[name])
            problems += table_problems
        if problems + found:
            raise DatasetError(directory, problems + found)
        return SimpleNamespace(**tables)

    study = _timed(timings, "load", load)

    def dates():
        as_of = default_as_of(study)
        waves = study.employee_survey["wave"]
        return np.sort(waves[waves <= as_of].unique()), as_of

    waves, as_of = _timed(timings, "dates", dates)
    return _reduced(study.customer_nps, study.customers, waves, window_days, as_of, timings)


REDUCERS = {"duckdb": reduce_in_duckdb, "pandas": reduce_in_pandas}


def _reduce_main(argv: list[str]) -> int:
    """``reduce {duckdb,pandas} DATA``: time the customer-side reduction; print JSON timings."""
    from analysis.data.parameters import Parameters

    engine, data = argv
    timings: dict[str, float] = {}
    REDUCERS[engine](Path(data), Parameters().outcome_window_days, timings)
    print(json.dumps(timings))
    return 0


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


def run_benchmark(
    sizes: list[str],
    data_root: Path,
    out: Path,
    naive_timeout: float,
    report: bool,
    growth: bool = True,
    pandas_max_answers: int = PANDAS_MAX_ANSWERS,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every step for every size; writes ``benchmark.csv``, ``benchmark_ratios.csv``,
    ``benchmark_scaling.csv`` (the scale cases), ``benchmark.png`` and ``machine.json`` to
    ``out/results`` (one directory, all or nothing). Above ``pandas_max_answers`` customer
    answers the steps of ``PANDAS_STEPS`` are not run but recorded, status ``SKIPPED``."""
    rows, scaling_rows = [], []
    python = sys.executable
    for name in sizes:
        if name in SCALE_CASES:
            scaling_rows += run_scaling(name, data_root, out, growth)
            continue
        print(f"==> {name}: generating the study", file=sys.stderr, flush=True)
        directory, counts = ensure_study(name, data_root)
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
        steps = [
            ("estimate", [python, "-m", "analysis", "estimate", "--data", str(directory),
                          "--out", str(out / "runs" / name / "results")], None),
            ("reduce (DuckDB)", [*this, "reduce", "duckdb", str(directory)], None),
            ("reduce (pandas)", [*this, "reduce", "pandas", str(directory)], None),
            ("ours", [*this, "estimands", "ours", str(directory)], None),
            ("naive-nps", [*this, "estimands", "naive-nps", str(directory)], naive_timeout),
            ("naive-hazard", [*this, "estimands", "naive-hazard", str(directory)], naive_timeout),
        ]  # fmt: skip
        if report:
            steps.insert(
                1,
                ("report", [python, "-m", "analysis", "report", "--data", str(directory),
                            "--out", str(out / "runs" / name / "report")], None),
            )  # fmt: skip
        fits = pandas_fits(counts["nps_responses"], pandas_max_answers)
        for step, command, timeout in steps:
            if step in PANDAS_STEPS and not fits:
                rows.append(size | {"step": step, "status": SKIPPED})
                print(f"==> {name}: {step}: {SKIPPED}", file=sys.stderr, flush=True)
                continue
            print(f"==> {name}: {step}", file=sys.stderr, flush=True)
            measured = measure(command, timeout)
            rows.append(
                size
                | {
                    "step": step,
                    "seconds": measured.seconds,
                    "peak_mib": measured.peak_bytes / 1024**2 if measured.peak_bytes else None,
                    "status": measured.status,
                    **{f"{k}_seconds": v for k, v in measured.inner.items()},
                }
            )
            print(f"    {measured.status} in {measured.seconds:.1f} s", file=sys.stderr)
    table = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(TABLE_COLUMNS))
    table["status"] = table["status"].fillna("ok")
    ratios = naive_ratios(table)
    scaling = pd.DataFrame(scaling_rows, columns=SCALING_COLUMNS)
    import io

    from analysis.data.load import write_tables

    figure = io.BytesIO()  # written with the tables: the folder's marker lists every file
    machine = describe_machine()
    benchmark_figure(table, ratios, scaling, machine).savefig(
        figure, format="png", dpi=110, bbox_inches="tight"
    )
    write_tables(
        {"benchmark": table, "benchmark_ratios": ratios, "benchmark_scaling": scaling},
        out / "results",
        extra_files={
            "machine.json": json.dumps(machine, indent=2) + "\n",
            "benchmark.png": figure.getvalue(),
        },
    )
    return table, ratios, scaling


TABLE_COLUMNS = (
    "size",
    "units",
    "employee_responses",
    "customers",
    "nps_responses",
    "step",
    "seconds",
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
    "peak_mib",
    "status",
    "estimands_estimated",
    "estimands_not_estimable",
    "seconds_per_step",
    "marginal_seconds_per_step",
    "growth_exponent",
)


def naive_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Naive model time over ours, per size and estimand (a lower bound where naive timed out)."""
    rows = []
    columns = ["size", "nps_responses", "estimand", "ours_seconds", "naive_seconds"]
    columns += ["naive_status", "ratio", "ratio_is_lower_bound"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    for size, group in table.groupby("size", sort=False):
        by_step = group.set_index("step")
        if "ours" not in by_step.index or by_step.loc["ours", "status"] == SKIPPED:
            continue
        ours = by_step.loc["ours"]
        for estimand, naive_step, column in (
            ("nps_on_engagement", "naive-nps", "nps_model_seconds"),
            ("churn_hazard_on_engagement", "naive-hazard", "hazard_model_seconds"),
        ):
            if naive_step not in by_step.index or by_step.loc[naive_step, "status"] == SKIPPED:
                continue
            naive = by_step.loc[naive_step]
            timed_out = naive["status"] == "timeout"
            naive_seconds = naive["seconds"] if timed_out else naive.get(column, np.nan)
            rows.append(
                {
                    "size": size,
                    "nps_responses": ours["nps_responses"],
                    "estimand": estimand,
                    "ours_seconds": ours[column],
                    "naive_seconds": naive_seconds,
                    "naive_status": naive["status"],
                    "ratio": naive_seconds / ours[column],
                    "ratio_is_lower_bound": bool(timed_out),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def benchmark_figure(
    table: pd.DataFrame,
    ratios: pd.DataFrame,
    scaling: pd.DataFrame | None = None,
    machine: dict | None = None,
):
    """Wall time and peak memory per step against customer answers (log–log), the
    naive-to-ours ratios, and for the scale cases ``estimate`` time against waves and against
    units; the machine, when given, in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.report.figures import use_house_style

    use_house_style()
    measured = table[(table["step"] != "generate") & table["seconds"].notna()]
    standard = not measured.empty
    with_ratios = standard and not ratios.empty
    cases = [] if scaling is None or scaling.empty else list(dict.fromkeys(scaling["case"]))
    rows = int(standard) + int(with_ratios) + (len(cases) + 1) // 2 or 1
    figure, axes = plt.subplots(rows, 2, figsize=(11, 4.2 * rows), squeeze=False)
    panels = [axis for row in axes for axis in row]
    if standard:
        growth_panel(panels.pop(0), measured, "seconds")
        growth_panel(panels.pop(0), measured, "peak_mib")
    if with_ratios:
        ratio_panel(panels.pop(0), ratios)
        skipped = table[table["status"] == SKIPPED]
        skipped_note(panels.pop(0), skipped)
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


def growth_panel(axis, measured: pd.DataFrame, column: str) -> None:
    """One line per step: ``seconds`` or ``peak_mib`` against customer answers (log–log), and
    issue 14's targets for the whole ``estimate`` as grey stars."""
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
    for answers, seconds, peak in ANSWER_TARGETS:
        value = seconds if column == "seconds" else peak / 1024**2
        axis.scatter([answers], [value], marker="*", s=90, color="grey", zorder=3)
        shown = f"{seconds:.0f} s" if column == "seconds" else f"{peak / 1024**3:g} GiB"
        axis.annotate(
            f"target: estimate {shown}",
            (answers, value),
            xytext=(-4, 6),
            textcoords="offset points",
            ha="right",
            color="grey",
            fontsize=7,
        )
    label = "wall time (s)" if column == "seconds" else "peak memory (MiB)"
    axis.set(xscale="log", yscale="log", xlabel="customer NPS answers", ylabel=label)
    title = "Wall time" if column == "seconds" else "Peak memory"
    axis.set_title(f"{title} by customer answers (▲ stopped at the limit)", fontsize=11)
    axis.legend(frameon=False, fontsize=8)
    _plain_log_ticks(axis)
    from matplotlib.ticker import FuncFormatter

    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _short_count(value)))


def _short_count(value: float) -> str:
    """10,000 as ``10k``, 100,000,000 as ``100M``: log-axis ticks that do not collide."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def ratio_panel(axis, ratios: pd.DataFrame) -> None:
    """Naive time over ours per size and estimand (hatched where naive timed out)."""
    labels = [f"{r.size}\n{r.estimand.split('_on_')[0]}" for r in ratios.itertuples()]
    bars = axis.bar(range(len(ratios)), ratios["ratio"], color="#4c72b0")
    for bar, lower in zip(bars, ratios["ratio_is_lower_bound"], strict=True):
        if lower:
            bar.set_hatch("//")
    axis.set_xticks(range(len(ratios)), labels, fontsize=7)
    for bar, ratio in zip(bars, ratios["ratio"], strict=True):
        axis.annotate(
            f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    axis.set(ylabel="naive time ÷ our time")
    axis.set_title("Naive ÷ ours (hatched: at least)", fontsize=11)


def skipped_note(axis, skipped: pd.DataFrame) -> None:
    """The steps not run, by size, in words (they have no point in the growth panels)."""
    axis.set_axis_off()
    if skipped.empty:
        return
    lines = [
        f"{size} ({group['nps_responses'].iloc[0]:,.0f} answers): " + ", ".join(group["step"])
        for size, group in skipped.groupby("size", sort=False)
    ]
    axis.text(
        0.0,
        1.0,
        f"Not run ({SKIPPED}):\n" + "\n".join(lines),
        va="top",
        fontsize=8,
        wrap=True,
        transform=axis.transAxes,
    )


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
        description="Time and measure the memory of estimate and report on synthetic studies "
        "of three sizes, beside customer-level (naive) versions of two estimands, and of "
        "estimate on two shapes at four sizes each, to show its growth. Sizes: "
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
        default=["small", "medium", "large", "many-waves", "many-units"],
        choices=sorted(SIZES),
    )
    parser.add_argument("--data-root", type=Path, default=Path("data/bench"))
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
        "(estimate, report, reduce (pandas), ours, naive) are recorded as skipped, not run",
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
    if argv[:1] == ["reduce"]:
        return _reduce_main(argv[1:])
    args = build_parser().parse_args(argv)
    table, ratios, scaling = run_benchmark(
        args.sizes,
        args.data_root,
        args.out,
        args.naive_timeout,
        not args.no_report,
        growth=not args.no_growth,
        pandas_max_answers=args.pandas_max_answers,
    )
    summary = table[table["step"] != "generate"][
        ["size", "nps_responses", "step", "seconds", "peak_mib", "status"]
    ]
    if not summary.empty:
        print(summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    for _, points in scaling.groupby("case", sort=False):
        print(scaling_summary(points))
    if not ratios.empty:
        print(ratios.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    targets = answer_targets_summary(table)
    if targets:
        print(targets)
    largest = table[(table["size"] == "large") & (table["step"] == "estimate")]
    if not largest.empty:
        seconds, peak = largest["seconds"].iloc[0], largest["peak_mib"].iloc[0] * 1024**2
        limit_s, limit_b = TARGETS["estimate"]
        verdict = "within" if seconds < limit_s and peak < limit_b else "OUTSIDE"
        print(
            f"largest estimate: {seconds:.0f} s, {peak / 1024**3:.2f} GiB peak: {verdict} the "
            f"targets ({limit_s:.0f} s, {limit_b / 1024**3:.0f} GiB)"
        )
    print(f"wrote {args.out / 'results'}: benchmark.csv, benchmark_ratios.csv, "
          "benchmark_scaling.csv, benchmark.png, machine.json")  # fmt: skip
    return 0


def answer_targets_summary(table: pd.DataFrame) -> str:
    """Each size near a target of ``ANSWER_TARGETS`` (within a factor of two of its answers):
    ``estimate`` and ``reduce (DuckDB)`` against the target for the whole estimate."""
    lines = []
    for answers, seconds, peak in ANSWER_TARGETS:
        near = table[(table["nps_responses"] / answers).between(0.5, 2.0)]
        for step in ("estimate", "reduce (DuckDB)"):
            for row in near[near["step"] == step].itertuples():
                target = f"target for the whole estimate: {seconds:.0f} s, {peak / 1024**3:g} GiB"
                if pd.isna(row.seconds):
                    lines.append(f"{row.size} {step}: {row.status} ({target})")
                    continue
                verdict = (
                    "within"
                    if row.seconds < seconds and row.peak_mib * 1024**2 < peak
                    else "OUTSIDE"
                )
                part = " (a part of the estimate only)" if step != "estimate" else ""
                lines.append(
                    f"{row.size} {step}{part}: {row.seconds:,.1f} s, {row.peak_mib / 1024:.2f} GiB "
                    f"peak, {row.nps_responses:,.0f} answers: {verdict} the {target}"
                )
    return "\n".join(lines)


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
