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
  recorded as ``timeout``; its ratio is then a lower bound.

Peak memory is the maximum resident set size of the step's process (``wait4``); for ``report``
that is its largest process, the orchestrator or one notebook kernel. Results go to
``benchmark.csv``, ``benchmark.png`` and ``machine.json`` under ``--out``. Timings on a shared
machine vary by ±20–30%; there are no timed assertions anywhere in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.synth import StudyDesign

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
}
TARGETS = {"estimate": (120.0, 4 * 1024**3)}  # the largest study: 2 minutes, 4 GiB


@dataclass
class Measured:
    seconds: float
    peak_bytes: int
    status: str  # "ok", "timeout" or "failed"
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
        return Measured(seconds, usage, "failed", {})
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    inner = json.loads(last) if last.startswith("{") else {}
    return Measured(seconds, usage, "ok", inner)


def _children_peak_bytes() -> int:
    """Peak RSS over this process's finished children and their descendants.

    ``RUSAGE_CHILDREN`` keeps the maximum over every child so far, so each step runs in a fresh
    helper process (``python -m analysis.benchmark measure …``) whose only child is the step.
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
    helper = [sys.executable, "-m", "analysis.benchmark", "measure", str(timeout or 0), "--"]
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
            "score": np.where(score >= 9, 100.0, np.where(score <= 6, -100.0, 0.0))[inside],
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
    from analysis import linkage, retention

    units = linkage.customer_facing_rows(panel).dropna(subset=["engagement_index"])
    params, _, episodes = retention.customer_level_cox(
        dataset.customers, units, as_of, "engagement_index"
    )
    return {"log_hazard_ratio_per_index_point": float(params[0]), "episodes": len(episodes)}


def _estimands_main(argv: list[str]) -> int:
    """``estimands {ours,naive} DATA``: time the two estimands one way; print JSON timings."""
    import statsmodels.api  # noqa: F401  imports are not part of any model's time
    import statsmodels.formula.api  # noqa: F401

    from analysis import estimate, linkage
    from analysis.io import load_dataset
    from analysis.panel import default_as_of, unit_wave_panel
    from analysis.parameters import Parameters

    which, data = argv
    parameters = Parameters()
    timings: dict[str, float] = {}
    dataset = _timed(timings, "load", load_dataset, data)
    as_of = default_as_of(dataset)
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
        _timed(timings, "nps_model", linkage.nps_on_engagement, panel, parameters.covariates)
        _timed(
            timings,
            "hazard_model",
            estimate.churn_hazard_on_engagement,
            dataset,
            panel,
            as_of,
            parameters.covariates,
            parameters.confidence,
        )
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
# The runner


def describe_machine() -> dict:
    """What the numbers were measured on."""
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
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ensure_study(name: str, root: Path) -> tuple[Path, dict]:
    """Generate the study of size ``name`` under ``root`` unless the same design is there."""
    from dataclasses import asdict

    from analysis.io import write_tables
    from analysis.synth import generate, truth_json

    design = SIZES[name]
    directory = root / name
    truth_file = directory / "truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth["design"] == json.loads(json.dumps(asdict(design.effective()))):
            return directory, truth["counts"] | {"generate_seconds": None}
    started = time.monotonic()
    study = generate(design)
    write_tables(
        study.tables,
        directory,
        file_format="parquet",
        extra_files={"truth.json": truth_json(study)},
    )
    return directory, study.truth["counts"] | {"generate_seconds": time.monotonic() - started}


def run_benchmark(
    sizes: list[str], data_root: Path, out: Path, naive_timeout: float, report: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every step for every size; writes ``benchmark.csv``, ``benchmark_ratios.csv``,
    ``benchmark.png`` and ``machine.json`` to ``out/results`` (one directory, all or nothing)."""
    rows = []
    python = sys.executable
    for name in sizes:
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
        steps = [
            ("estimate", [python, "-m", "analysis", "estimate", "--data", str(directory),
                          "--out", str(out / "runs" / name / "results")], None),
            ("ours", [python, "-m", "analysis.benchmark", "estimands", "ours", str(directory)],
             None),
            ("naive-nps", [python, "-m", "analysis.benchmark", "estimands", "naive-nps",
                           str(directory)], naive_timeout),
            ("naive-hazard", [python, "-m", "analysis.benchmark", "estimands", "naive-hazard",
                              str(directory)], naive_timeout),
        ]  # fmt: skip
        if report:
            steps.insert(
                1,
                ("report", [python, "-m", "analysis", "report", "--data", str(directory),
                            "--out", str(out / "runs" / name / "report")], None),
            )  # fmt: skip
        for step, command, timeout in steps:
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
    table = pd.DataFrame(rows)
    table["status"] = table["status"].fillna("ok")
    ratios = naive_ratios(table)
    from analysis.io import write_tables

    results = write_tables(
        {"benchmark": table, "benchmark_ratios": ratios},
        out / "results",
        extra_files={"machine.json": json.dumps(describe_machine(), indent=2) + "\n"},
    )
    benchmark_figure(table, ratios).savefig(results / "benchmark.png", dpi=110, bbox_inches="tight")
    return table, ratios


def naive_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Naive model time over ours, per size and estimand (a lower bound where naive timed out)."""
    rows = []
    for size, group in table.groupby("size", sort=False):
        by_step = group.set_index("step")
        if "ours" not in by_step.index:
            continue
        ours = by_step.loc["ours"]
        for estimand, naive_step, column in (
            ("nps_on_engagement", "naive-nps", "nps_model_seconds"),
            ("churn_hazard_on_engagement", "naive-hazard", "hazard_model_seconds"),
        ):
            if naive_step not in by_step.index:
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
    return pd.DataFrame(rows)


def benchmark_figure(table: pd.DataFrame, ratios: pd.DataFrame):
    """Wall time per step against study size (log–log), and the naive-to-ours ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.figures import use_house_style

    use_house_style()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for step, group in table[table["step"] != "generate"].groupby("step", sort=False):
        group = group.sort_values("nps_responses")
        marker = ["o" if s == "ok" else "^" for s in group["status"]]
        left.plot(group["nps_responses"], group["seconds"], label=step, linewidth=1.5)
        for x, y, m in zip(group["nps_responses"], group["seconds"], marker, strict=True):
            left.scatter([x], [y], marker=m, s=28, color=left.lines[-1].get_color())
    left.axhline(TARGETS["estimate"][0], color="grey", linestyle=":", linewidth=1)
    left.annotate(
        "target: largest estimate under 2 min",
        (0.98, TARGETS["estimate"][0]),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        ha="right",
        color="grey",
        fontsize=8,
    )
    left.set(xscale="log", yscale="log", xlabel="customer NPS answers", ylabel="wall time (s)")
    left.set_title("Wall time by study size (▲ stopped at the limit)", fontsize=11)
    left.legend(frameon=False, fontsize=8)
    if not ratios.empty:
        labels = [f"{r.size}\n{r.estimand.split('_on_')[0]}" for r in ratios.itertuples()]
        bars = right.bar(range(len(ratios)), ratios["ratio"], color="#4c72b0")
        for bar, lower in zip(bars, ratios["ratio_is_lower_bound"], strict=True):
            if lower:
                bar.set_hatch("//")
        right.set_xticks(range(len(ratios)), labels, fontsize=7)
        for bar, ratio in zip(bars, ratios["ratio"], strict=True):
            right.annotate(
                f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
        right.set(ylabel="naive time ÷ our time")
        right.set_title("Naive ÷ ours (hatched: at least)", fontsize=11)
    figure.tight_layout()
    return figure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.benchmark",
        description="Time and measure the memory of estimate and report on synthetic studies "
        "of three sizes, beside customer-level (naive) versions of two estimands. Sizes: "
        "small ≈ 60,000 NPS answers; medium ≈ 1 million answers and 100,000 customers; "
        "large = 20,000 units, ≈ 1.7 million employee answers, ≈ 1 million customers, "
        "≈ 10 million answers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["small", "medium", "large"], choices=sorted(SIZES)
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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["measure"]:
        return _measure_main(argv[1:])
    if argv[:1] == ["estimands"]:
        return _estimands_main(argv[1:])
    args = build_parser().parse_args(argv)
    table, ratios = run_benchmark(
        args.sizes, args.data_root, args.out, args.naive_timeout, not args.no_report
    )
    summary = table[table["step"] != "generate"][
        ["size", "nps_responses", "step", "seconds", "peak_mib", "status"]
    ]
    print(summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    if not ratios.empty:
        print(ratios.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    largest = table[(table["size"] == "large") & (table["step"] == "estimate")]
    if not largest.empty:
        seconds, peak = largest["seconds"].iloc[0], largest["peak_mib"].iloc[0] * 1024**2
        limit_s, limit_b = TARGETS["estimate"]
        verdict = "within" if seconds < limit_s and peak < limit_b else "OUTSIDE"
        print(
            f"largest estimate: {seconds:.0f} s, {peak / 1024**3:.2f} GiB peak: {verdict} the "
            f"targets ({limit_s:.0f} s, {limit_b / 1024**3:.0f} GiB)"
        )
    print(f"wrote {args.out / 'results'}: benchmark.csv, benchmark_ratios.csv, benchmark.png, "
          "machine.json")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
