"""Command line: ``python -m analysis {validate,synth,estimate,report,import,calibrate} …``.

Exit status: 0 success; 1 an internal failure (a bug, or a notebook that failed); 2 invalid
input (data, parameters, or an output folder the kit may not write: see ``analysis.data.folders``);
3 the disk refused a write (full, read-only, not permitted); 130 interrupted by Ctrl-C (143 by
SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

# Single-threaded BLAS unless the user set it, before NumPy loads: the models multiply thin
# matrices (rows × a few columns), where OpenBLAS's threads cost more than they give on two
# cores, and far more when other work shares them (measured on the sample's estimate with other
# work running: 19.0 → 14.6 processor seconds; one 41,000-row product 1.7 s → 0.016 s).
# Notebook kernels the report starts inherit it. DuckDB and Spark keep their own threads.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from analysis import __version__  # noqa: E402  (after the thread setting, on purpose)
from analysis.data.progress import show_on_terminal  # noqa: E402

EXIT_OK, EXIT_FAILURE, EXIT_INVALID, EXIT_ENVIRONMENT = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + the signal's number, as shells report
EXIT_STATUS = (
    "Exit status: 0 success, 1 internal failure, 2 invalid data, parameters or output folder, "
    "3 disk full, read-only or not writable, 130 interrupted (Ctrl-C)."
)


def _validate(args: argparse.Namespace) -> int:
    from analysis.data.load import load_dataset

    dataset = load_dataset(args.data)
    if args.verbose:
        sizes = ", ".join(f"{len(frame):,} {name}" for name, frame in dataset.tables().items())
        print(f"{args.data} follows the data contract: {sizes}")
    return EXIT_OK


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


def _synth(args: argparse.Namespace) -> int:
    from analysis.data.folders import check_replaceable

    check_replaceable(args.out, "dataset")  # before any work: a refused folder costs nothing
    from analysis.data.synth import StudyDesign, generate, write_study

    d = StudyDesign()
    design = StudyDesign(
        seed=args.seed,
        n_units=args.units,
        n_waves=args.waves,
        first_wave=args.first_wave,
        median_unit_size=args.median_unit_size,
        response_rate=args.response_rate,
        customers_per_employee=args.customers_per_employee,
        responses_per_customer_year=args.responses_per_customer_year,
        # "Reverse causation" alone means no forward effect, unless one was asked for.
        nps_effect=_given(args.nps_effect, 0.0 if args.reverse_causation else d.nps_effect),
        churn_hazard_ratio=_given(
            args.churn_hazard_ratio, 1.0 if args.reverse_causation else d.churn_hazard_ratio
        ),
        mediated_share=args.mediated_share,
        engagement_icc=args.engagement_icc,
        no_effect=args.no_effect,
        confounding=args.confounding,
        confounding_strength=args.confounding_strength,
        reverse_causation=args.reverse_causation,
        reverse_strength=args.reverse_strength,
        # The chain's switches only mean something with the chain, so they turn it on.
        internal_service=args.internal_service or args.no_chain or args.chain_confounding,
        providers_per_unit=args.providers_per_unit,
        engagement_per_service_sd=args.engagement_per_service_sd,
        nps_direct_per_service_sd=args.nps_direct_per_service_sd,
        brand_promise_per_sd=args.brand_promise_per_sd,
        no_chain=args.no_chain,
        chain_confounding=args.chain_confounding,
        chain_confounding_strength=args.chain_confounding_strength,
        chain_confounding_nps=args.chain_confounding_nps,
    )
    study = generate(design)
    write_study(study, args.out, file_format=args.format)
    counts = study.truth["counts"]
    print(
        f"Wrote {args.out}: {counts['units']} units, {counts['employee_responses']:,} employee "
        f"responses, {counts['customers']:,} customers, {counts['nps_responses']:,} NPS "
        f"responses (truth in {Path(args.out) / 'truth.json'})"
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from analysis.data.folders import check_run_root

    check_run_root(args.out, "reports", inputs=[args.data])  # refused in a second, not after
    from analysis.data.parameters import load_parameters
    from analysis.report.build import build_report

    parameters = load_parameters(args.params, data_dir=args.data)
    show_on_terminal()  # counters inside long steps, on a terminal only
    build_report(args.data, args.out, parameters, engine=args.engine)
    return EXIT_OK


def _estimate(args: argparse.Namespace) -> int:
    import time

    from analysis.data.folders import check_replaceable
    from analysis.data.source import database_name, is_database

    database = is_database(args.data)
    # the output folder first: a refused one must cost nothing and create nothing
    check_replaceable(args.out, "results", inputs=[] if database else [args.data])
    from analysis.data.parameters import ParameterError, load_parameters
    from analysis.report.page import publish_results

    if database and args.engine != "duckdb":
        raise ParameterError(
            f"--engine {args.engine}: the engines read dataset folders; a database reduces its "
            "own tables, so leave --engine out"
        )
    parameters = load_parameters(args.params, data_dir=None if database else args.data)
    started = time.monotonic()
    show_on_terminal()  # counters inside long steps, on a terminal only

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    where = database_name(args.data) if database else f"{args.data} ({args.engine})"
    progress(f"validating {where}")
    tables, _ = publish_results(
        args.data, args.out, parameters, progress=progress, engine=args.engine
    )
    written = ", ".join(f"{name}.csv" for name in tables)
    progress(f"wrote {args.out}/{written}, manifest.json")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from analysis.data.folders import check_replaceable

    # the output folder first: a refused one must cost nothing and create nothing
    check_replaceable(args.out, "dataset", inputs=[args.raw], role="output dataset")
    from analysis.data.importer import REPORT_FILE, import_exports

    result = import_exports(args.raw, args.mapping, args.out)
    tables = ", ".join(f"{rows:,} {name}" for name, rows in result.rows.items())
    ids = (
        f"; {', '.join(result.pseudonymised)} pseudonymised"
        if result.pseudonymised
        else "; ids copied unchanged"
    )
    print(
        f"Imported {args.raw} into {result.out}: {len(result.rows)} tables ({tables}); "
        f"{result.rows_kept:,} rows kept, {result.rows_dropped:,} dropped{ids} "
        f"(per file: {result.out / REPORT_FILE})"
    )
    return EXIT_OK


def _calibrate(args: argparse.Namespace) -> int:
    import time

    from analysis.studies.calibration import build_calibration_report

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    build_calibration_report(
        args.out, args.replicates, workers=args.workers, base_seed=args.seed, progress=progress
    )
    return EXIT_OK


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


PARAMS_HELP = (
    "parameters YAML; every key is optional (default in brackets): min_group_size "
    "3 to 1,000 [5]; outcome_window_days 1 to 3,660 and within the data's span [91]; "
    "as_of a date YYYY-MM-DD from the first survey wave to 31 days after the latest "
    "date in the data [that latest date]; alpha 0.001 to 0.5 with at most three decimals "
    "[0.05]; seed 0 to 2**32 - 1 [20240331]; bootstrap_draws 10 to 100,000 [2000]; covariates "
    "a list of distinct columns of units that group units, not identifiers [region]; "
    "privacy_epsilon 0.01 to 100 [2.0]; value_per_customer 0.01 to 1e9 [none]. "
    "Every problem is reported at once (exit 2); see 'Parameters' in README.md"
)


def _data_source(text: str) -> Path | str:
    """A dataset folder, or a database URL kept as it is (a Path would fold its ``//``)."""
    from analysis.data.load import DATABASE_URL_SCHEMES

    return text if text.startswith(DATABASE_URL_SCHEMES) else Path(text)


def _data_and_params(command: argparse.ArgumentParser, database: bool = False) -> None:
    """The ``--data``, ``--params`` and ``--engine`` options of ``estimate`` and ``report``."""
    command.add_argument(
        "--data",
        type=_data_source if database else Path,
        default=Path("data/sample"),
        help="dataset directory (default: data/sample)"
        + (
            ", or a postgresql://user@host/database URL of a database holding the contract's "
            "tables (the customer tables are reduced there)"
            if database
            else ""
        ),
    )
    command.add_argument("--params", type=Path, default=None, help=PARAMS_HELP)
    command.add_argument(
        "--engine",
        choices=("duckdb", "spark", "pandas"),
        default="duckdb",
        help="what reduces the customer answers and customers of a dataset folder: DuckDB over "
        "the files (default; they are never read into memory whole), Apache Spark (local, or "
        "the cluster named by INSIDE_OUT_SPARK_MASTER), or pandas (every row in memory, as "
        "before version 2). Every engine gives the same numbers",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one sub-command per verb, each with its help and defaults.

    Returns
    -------
    argparse.ArgumentParser
    """
    from analysis.data.synth import StudyDesign

    d = StudyDesign()
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Inside Out: does internal engagement show up in customer NPS and retention?",
        epilog=EXIT_STATUS,
    )
    parser.add_argument("--version", action="version", version=f"inside-out {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a dataset against the data contract",
        description="Check a dataset directory against the data contract (data/README.md). "
        "Silent and exit 0 when valid; otherwise every problem, with file, column, "
        "rule and row numbers, on stderr and exit 2. Never writes anything.",
    )
    validate.add_argument("data", type=Path, help="dataset directory")
    validate.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="print a one-line summary when the dataset is valid",
    )
    validate.set_defaults(run=_validate)

    synth = commands.add_parser(
        "synth",
        help="generate a synthetic study with known effects",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Generate a contract-valid synthetic study and truth.json, the parameters "
        "and true effects it was drawn from. The same seed gives byte-identical "
        "files. Default effect sizes follow Harter, Schmidt & Hayes (2002) and "
        "Gallup's Q12 meta-analysis (see analysis/data/synth.py).",
    )
    synth.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder to write: new, empty, or one synth wrote before (then replaced)",
    )
    synth.add_argument("--seed", type=int, default=d.seed, help="random seed")
    synth.add_argument(
        "--format", choices=("csv", "parquet"), default="csv", help="file format of the tables"
    )
    size = synth.add_argument_group("size of the organisation")
    size.add_argument("--units", type=int, default=d.n_units, help="number of units")
    size.add_argument("--waves", type=int, default=d.n_waves, help="quarterly survey waves")
    size.add_argument(
        "--first-wave", default=d.first_wave, help="close date of the first wave (a quarter end)"
    )
    size.add_argument(
        "--median-unit-size",
        type=float,
        default=d.median_unit_size,
        help="median employees per unit (sizes are log-normal)",
    )
    size.add_argument(
        "--response-rate",
        type=float,
        default=d.response_rate,
        help="share of employees answering each wave",
    )
    size.add_argument(
        "--customers-per-employee",
        type=float,
        default=d.customers_per_employee,
        help="customers per employee of a customer-facing unit",
    )
    size.add_argument(
        "--responses-per-customer-year",
        type=float,
        default=d.responses_per_customer_year,
        help="NPS answers per customer per year as a customer",
    )
    effects = synth.add_argument_group("true effects")
    effects.add_argument(
        "--nps-effect",
        type=float,
        default=None,
        help=f"NPS points per SD of unit engagement in the next quarter (default "
        f"{d.nps_effect}; 0 with --reverse-causation)",
    )
    effects.add_argument(
        "--churn-hazard-ratio",
        type=float,
        default=None,
        help=f"churn hazard ratio per SD of unit engagement, all paths (default "
        f"{d.churn_hazard_ratio}; 1 with --reverse-causation)",
    )
    effects.add_argument(
        "--mediated-share",
        type=float,
        default=d.mediated_share,
        help="share of the log hazard ratio that runs through customer "
        "sentiment (what NPS measures)",
    )
    effects.add_argument(
        "--engagement-icc",
        type=float,
        default=d.engagement_icc,
        help="share of engagement variance between units, ICC(1)",
    )
    harder = synth.add_argument_group("switches that make the study harder")
    harder.add_argument(
        "--no-effect", action="store_true", help="engagement has no effect on NPS or churn at all"
    )
    harder.add_argument(
        "--confounding",
        action="store_true",
        help="region moves engagement, NPS and churn together (a spurious "
        "association unless region is controlled)",
    )
    harder.add_argument(
        "--confounding-strength",
        type=float,
        default=d.confounding_strength,
        help="with --confounding: SD of engagement between regions",
    )
    harder.add_argument(
        "--reverse-causation",
        action="store_true",
        help="customer sentiment in the quarter before a wave drives engagement "
        "at that wave; no forward effect unless --nps-effect is also set",
    )
    harder.add_argument(
        "--reverse-strength",
        type=float,
        default=d.reverse_strength,
        help="with --reverse-causation: SD of engagement per SD of sentiment",
    )
    chain = synth.add_argument_group(
        "internal service, the service chain and brand alignment (contract v2)"
    )
    chain.add_argument(
        "--internal-service",
        action="store_true",
        help="also write the internal_service table (staff rate the teams they depend on), "
        "the comm_effort item and customers' brand_promise, with the service chain: the "
        "internal service a unit receives raises its engagement and its customers' NPS",
    )
    chain.add_argument(
        "--providers-per-unit",
        type=int,
        default=d.providers_per_unit,
        help="internal teams each unit depends on and rates",
    )
    chain.add_argument(
        "--engagement-per-service-sd",
        type=float,
        default=d.engagement_per_service_sd,
        help="engagement index points per SD of internal service received",
    )
    chain.add_argument(
        "--nps-direct-per-service-sd",
        type=float,
        default=d.nps_direct_per_service_sd,
        help="NPS points next quarter per SD of internal service received, not through engagement",
    )
    chain.add_argument(
        "--brand-promise-per-sd",
        type=float,
        default=d.brand_promise_per_sd,
        help="customers' brand_promise index points next quarter per SD of the unit's "
        "staff brand alignment",
    )
    chain.add_argument(
        "--no-chain",
        action="store_true",
        help="internal service has no effect on engagement or NPS (implies --internal-service)",
    )
    chain.add_argument(
        "--chain-confounding",
        action="store_true",
        help="a unit trait raises both the internal service a unit receives and its NPS, so "
        "the naive chain estimate is biased (implies --internal-service)",
    )
    chain.add_argument(
        "--chain-confounding-strength",
        type=float,
        default=StudyDesign.chain_confounding_strength,
        help="with --chain-confounding: tilt of a unit's choice of providers toward good ones "
        "per SD of the trait",
    )
    chain.add_argument(
        "--chain-confounding-nps",
        type=float,
        default=StudyDesign.chain_confounding_nps,
        help="with --chain-confounding: NPS points per SD of the trait",
    )
    synth.set_defaults(run=_synth)

    estimate = commands.add_parser(
        "estimate",
        help="fit every linkage model and write the result tables",
        description="Validate DATA, fit every estimand and write, without running notebooks: "
        "OUT/estimates.csv (one row per estimand: term, estimate, std_error, conf_low, "
        "conf_high, p_value, p_adjusted, n_obs, n_units, method; how it was fitted: se_method, "
        "jackknife_groups, bootstrap_draws, correction; and whether one unit decides it: "
        "fragile_to_one_unit, n_units_flip_significance, n_units_flip_sign), OUT/findings.csv "
        "(one row per headline finding: its verdict and the sentence the report shows), "
        "OUT/drivers.csv, "
        "OUT/unit_wave.csv "
        "(small groups suppressed), OUT/nps_by_engagement_quartile.csv, when customers "
        "answered brand_promise OUT/brand_alignment.csv (staff brand alignment against "
        "customers' brand promise per unit and wave, staff figures suppressed and released "
        "with noise), with an internal_service table OUT/internal_service.csv and "
        "OUT/internal_service_network.csv (internal teams' scorecards and who rates whom, "
        "small groups suppressed, the rest released with noise), and OUT/manifest.json "
        "(inputs by hash, parameters, code and package versions). OUT must be new, empty, or a "
        "folder estimate wrote before (its .inside-out marker says so); it is replaced "
        "atomically, only when everything has been computed. Any other folder, the dataset "
        "and the working folder are refused before any work starts.",
    )
    _data_and_params(estimate, database=True)
    estimate.add_argument(
        "--out", type=Path, required=True, help="folder for the results (new, empty or the kit's)"
    )
    estimate.set_defaults(run=_estimate)

    report = commands.add_parser(
        "report",
        help="run the notebooks and render the HTML report",
        description="Validate DATA, execute the notebooks with papermill and render "
        "self-contained HTML under OUT/<run-id>/, with OUT/latest pointing to it. "
        "A failed run leaves the previous report untouched. OUT must be new, empty or a "
        "reports folder Inside Out wrote.",
    )
    _data_and_params(report)
    report.add_argument(
        "--out", type=Path, default=Path("reports"), help="reports folder (default: reports)"
    )
    report.set_defaults(run=_report)

    importer = commands.add_parser(
        "import",
        help="import raw survey, HR, CX and CRM exports with a mapping.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Turn raw exports (a Qualtrics or plain CSV survey export per wave, an HR "
        "org table,\na CX NPS export, a CRM extract) into a dataset that follows the data "
        "contract, as\nMAPPING says: which file and column holds each contract column, "
        "answer labels and\ntheir codes, rows to keep, wave close dates, ids to pseudonymise "
        "(format: the data\ncontract, data/README.md; a worked example: make data, then\n"
        "data/examples/raw/mapping.yaml).\n\n"
        "Writes OUT/<table>.parquet and OUT/import_report.csv (per table and file: rows read,\n"
        "kept, dropped by reason), validated before it is published; OUT is replaced "
        "atomically.\nEvery problem (an unknown label with its rows, a missing column with "
        "the closest\nheader, a file pattern matching nothing, …) is listed at once, exit 2, "
        "nothing written.\nThe raw files are only ever read.\n\n"
        "Ids named under `pseudonymise` are replaced by keyed hashes (HMAC-SHA256) when the\n"
        "variable INSIDE_OUT_ID_KEY holds a secret; without it they are copied unchanged.\n\n"
        "Example:\n"
        "  export INSIDE_OUT_ID_KEY='a long secret kept outside the dataset'\n"
        "  python -m analysis import data/examples/raw \\\n"
        "      --mapping data/examples/raw/mapping.yaml --out data/imported\n"
        "  python -m analysis report --data data/imported",
        epilog=EXIT_STATUS,
    )
    importer.add_argument("raw", type=Path, metavar="RAW_DIR", help="folder of raw exports")
    importer.add_argument(
        "--mapping",
        type=Path,
        required=True,
        help="mapping.yaml: how the raw files become the contract's tables",
    )
    importer.add_argument(
        "--out",
        type=Path,
        required=True,
        help="dataset folder to write (new, empty, or a dataset Inside Out wrote)",
    )
    importer.set_defaults(run=_import)

    calibrate = commands.add_parser(
        "calibrate",
        help="simulation study: are our tests calibrated? (what `make validate` runs)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the calibration study and render it as one self-contained HTML page.\n\n"
        "Synthetic studies with known truth (analysis/data/synth.py) are drawn many times per "
        "condition\n(no effect; no effect but regions confound; the default effects; reverse "
        "causation;\na grid of units x waves; and, for the internal-service chain and the brand "
        "promise,\nno effect, a direct path only, the default chain, a confounded chain and a "
        "grid of its own)\nand every estimand is fitted on each, beside the naive\n"
        "customer-level analysis a spreadsheet user would run. The page shows "
        "false-positive\nrates, coverage of the 95% intervals, power and bias, each with its "
        "Monte-Carlo band.\n\n"
        "OUT/<run-id>/ gets index.html, results/{replicates,summary,conditions}.csv, the "
        "executed\nnotebook and manifest.json; OUT/latest points to it. A failed run leaves "
        "the previous\nreport untouched. The same --replicates and --seed give the same "
        "numbers.",
        epilog=EXIT_STATUS,
    )
    calibrate.add_argument(
        "--out",
        type=Path,
        default=Path("reports/calibration"),
        help="folder for calibration runs (default: reports/calibration)",
    )
    calibrate.add_argument(
        "--replicates",
        type=_at_least(2),
        default=200,
        metavar="N",
        help="simulated studies per condition (default 200). Each null and effect condition "
        "gets N, the reverse-causation and the confounded chain conditions N/2 and each of the "
        "ten cells of the power grids 0.3 N. The Monte-Carlo band of a false-positive rate at "
        "5%% is about ±1.96·√(0.05·0.95/N): ±3.0 points at N = 200, ±6.0 at 50. Run time "
        "grows linearly with N: roughly an hour at 200 on 2 cores (the chain's conditions, "
        "about 7 processor seconds a study, are most of it), a quarter of that at 50",
    )
    calibrate.add_argument(
        "--workers",
        type=_at_least(1),
        default=2,
        help="processes running replicates side by side (default 2, one per core)",
    )
    calibrate.add_argument(
        "--seed",
        type=int,
        default=20240331,
        help="base seed; each replicate's seed is derived from it, the condition's name and "
        "the replicate's number (default 20240331)",
    )
    calibrate.set_defaults(run=_calibrate)
    return parser


def _raise_terminated(signum, frame) -> None:
    from analysis.data.folders import Terminated

    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one command; never a traceback, always an exit status (see the module's docstring).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``python -m analysis``; ``sys.argv[1:]`` when not given.

    Returns
    -------
    int
        The exit status: 0, 1, 2, 3, 130 or 143.
    """
    import signal
    import threading

    previous = signal.getsignal(signal.SIGTERM)
    handles_signals = threading.current_thread() is threading.main_thread()
    if handles_signals:
        signal.signal(signal.SIGTERM, _raise_terminated)  # cleaned up like Ctrl-C
    try:
        return _run(argv)
    except KeyboardInterrupt as interruption:  # also while importing, before _run's handlers
        if handles_signals:  # the status is decided: a second Ctrl-C must not end us by SIGINT
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        from analysis.data.folders import Terminated

        terminated = isinstance(interruption, Terminated)
        print(
            f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}): stopped, and no "
            "half-written output was left behind",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    finally:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


INVALID_INPUT = (
    ("analysis.data.load", "DatasetError"),
    ("analysis.data.parameters", "ParameterError"),
    ("analysis.models.linkage", "EstimationError"),
    ("analysis.data.folders", "OutputError"),
)


def _invalid_input(error: Exception) -> bool:
    """An error of the user's input: data, parameters, output folder (exit status 2).

    Looked up among the modules already imported, so that a refusal made before the heavy
    imports (pandas, statsmodels) is also reported before them, in a fraction of a second.
    """
    return any(
        isinstance(error, getattr(sys.modules[module], name))
        for module, name in INVALID_INPUT
        if module in sys.modules
    )


def _run(argv: list[str] | None) -> int:
    from analysis.data.folders import StorageError, is_storage_error, storage_error

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except Exception as error:
        if _engine_interrupted(error):
            raise KeyboardInterrupt from error  # Ctrl-C, which DuckDB turned into an error
        if _invalid_input(error):
            print(f"error: {error}", file=sys.stderr)
            return EXIT_INVALID
        if isinstance(error, StorageError) or is_storage_error(error):
            if not isinstance(error, StorageError):  # full or read-only, met elsewhere
                error = storage_error(error, error.filename or ".")
            print(f"error: {error.strerror}", file=sys.stderr)
            return EXIT_ENVIRONMENT
        return _internal_error(error)


def _engine_interrupted(error: Exception) -> bool:
    """Whether ``error`` is DuckDB's answer to Ctrl-C during a query.

    DuckDB catches the SIGINT itself, stops the query and raises ``duckdb.InterruptException``,
    or, when the result was being streamed to Arrow (Ibis's ``to_pandas``), a plain
    ``RuntimeError("Query interrupted")``: an interruption, not a bug.
    """
    duckdb = sys.modules.get("duckdb")
    if duckdb is None:
        return False
    if isinstance(error, duckdb.InterruptException):
        return True
    return type(error) is RuntimeError and str(error) == "Query interrupted"


def _internal_error(error: Exception) -> int:
    """The promise is an exit status and a message, not a traceback."""
    # analysis.report.build imports nbformat (seconds); only a command that used it can raise it
    report = sys.modules.get("analysis.report.build")
    if report is not None and isinstance(error, report.ReportError):
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(
        f"internal error: {type(error).__name__}: {error}\n"
        "This is a bug in Inside Out; please report it with the command you ran.",
        file=sys.stderr,
    )
    return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
