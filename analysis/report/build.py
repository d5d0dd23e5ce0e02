"""Render the leadership report: run the notebooks with papermill, turn them into HTML.

This module only renders. The tables the notebooks show are estimated by
``analysis.report.page.estimate`` and written with their manifest by
``analysis.data.results`` (the one module that writes and reads result files); the pages are
written here, into a run folder that ``analysis.data.folders`` allows: a reports folder that is
new, empty or the kit's own. The data, the parameters and the output folder are checked, and
every estimate computed, before anything is created. A run then builds everything in a hidden
staging folder ``.partial-<run-id>`` under the reports folder and moves it into place as
``<run-id>/`` only when every notebook has run and every page has rendered; ``latest`` then
points to it. A failed run never touches an earlier report: its staging folder is kept as
``.failed-<run-id>`` (the last three are kept) so the partial executed notebook can be opened.
An interrupted run (Ctrl-C, SIGTERM), a full or read-only disk, or a refused input leaves
nothing behind. The staged pages are also printed into one ``report.pdf`` by headless Chromium
(``write_pdf``), published with them; without a browser the run still publishes its pages and
one line says how to get the PDF.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd

from analysis import PROJECT_ROOT
from analysis.data import folders
from analysis.data.parameters import Parameters
from analysis.data.results import manifest_json
from analysis.data.source import DEFAULT_ENGINE, close_dataset, open_dataset

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
KERNEL_NAME = "inside-out"


@dataclass(frozen=True)
class Page:
    """One notebook of the report and the HTML page it becomes."""

    slug: str
    notebook: str
    title: str


PAGES = (
    Page("index", "executive_summary.ipynb", "Executive summary"),
    Page("data_quality", "data_quality.ipynb", "Data and coverage"),
    Page("internal_measures", "internal_measures.ipynb", "Internal measures"),
    Page("customer_nps", "customer_nps.ipynb", "Customer NPS"),
    Page("engagement_nps", "engagement_nps.ipynb", "Engagement and NPS"),
    Page("retention", "retention.ipynb", "Engagement and retention"),
)
#: Rendered only for a dataset with internal-service ratings (contract v2), after the internal
#: measures; a version-1 dataset renders ``PAGES`` exactly, with no link to it.
SERVICE_PAGE = Page("internal_service", "internal_service.ipynb", "Internal service")


def pages_for(dataset) -> tuple[Page, ...]:
    """The pages a dataset's report renders: ``PAGES``, plus ``SERVICE_PAGE`` when the dataset
    holds an ``internal_service`` table with rows (``analysis.models.registry.PARTS``)."""
    from analysis.models.registry import PARTS

    if not PARTS["internal_service"](dataset):
        return PAGES
    at = next(i for i, page in enumerate(PAGES) if page.slug == "internal_measures") + 1
    return (*PAGES[:at], SERVICE_PAGE, *PAGES[at:])


class ReportError(RuntimeError):
    """A notebook failed; the message names the cell's error, ``notebook`` the partial copy."""

    def __init__(self, message: str, notebook: Path | None = None):
        super().__init__(message)
        self.notebook = notebook


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def _ipc_kernel_manager():
    """A kernel manager that talks to its kernel over Unix sockets instead of TCP.

    ipykernel 7 warns on every start that TCP without encryption can be overheard; sockets in
    a private file path cannot. Each kernel gets its own socket prefix: with the default
    relative prefix, two kernels started in one folder would share sockets.
    """
    import tempfile
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            prefix = Path(tempfile.gettempdir()) / f"inside-out-{uuid.uuid4().hex[:16]}"
            super().__init__(transport="ipc", ip=str(prefix), **kwargs)
            _KERNELS.append(self)

        async def start_kernel(self, **kwargs):
            # A kernel reports to the notebook over its sockets; its own stderr only carries
            # start-up and shut-down chatter, which after a Ctrl-C would follow our one line.
            kwargs.setdefault("stderr", subprocess.DEVNULL)
            return await super().start_kernel(**kwargs)

    return IpcKernelManager


_KERNELS: list = []  # the kernel managers this process started, for _stop_quietly


def _stop_quietly(signum: int, _frame) -> None:
    """In a notebook worker told to stop: kill its kernels, remove their files, exit at once.

    Left alone, an orphaned kernel notices a second later, prints a warning and leaves its
    socket and connection files in the temporary folder.
    """
    for manager in _KERNELS:
        process = getattr(manager.provisioner, "process", None)
        try:
            if process is not None:
                process.kill()
            manager.cleanup_connection_file()
            manager.cleanup_ipc_files()
        except Exception:  # exiting anyway; nothing better to do
            pass
    os._exit(128 + signum)


def execute_notebook(
    page: Page, out_dir: Path, parameters: dict, notebooks_dir: Path = NOTEBOOKS_DIR
) -> Path:
    """Run one notebook with papermill; raise ``ReportError`` naming the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = out_dir / "notebooks" / page.notebook
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(notebooks_dir / page.notebook),
            str(output),
            parameters=parameters,
            kernel_name=_kernel_name(),
            cwd=str(notebooks_dir),
            progress_bar=False,
            log_output=False,
            report_mode=False,
            kernel_manager_class=_ipc_kernel_manager(),
        )
    except PapermillExecutionError as error:
        raise ReportError(
            f"notebook {page.notebook} failed in cell {error.exec_count}: "
            f"{error.ename}: {error.evalue}",
            output,
        ) from None
    return output


def _execute_timed(
    page: Page, out_dir: Path, parameters: dict, notebooks_dir: Path
) -> tuple[Path, float]:
    started = time.monotonic()
    return execute_notebook(page, out_dir, parameters, notebooks_dir), time.monotonic() - started


def _ignore_interrupts() -> None:
    """In a notebook worker: Ctrl-C is for the main process, which stops the workers itself.

    A terminal sends Ctrl-C to every process of the command; without this each worker would
    print its own traceback. The main process ends a worker with SIGTERM (``_stop_workers``).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_quietly)


@contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Processes started in this block ignore Ctrl-C from birth, while they import.

    A Ctrl-C pressed in these few milliseconds is lost; one pressed later stops the run.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )


def _stop_workers(pool) -> None:
    """End the workers and their kernels now, rather than waiting for their notebooks."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


def run_notebooks(
    out_dir: Path,
    parameters: dict,
    progress: Callable[[str], None],
    pages: tuple[Page, ...] = PAGES,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    workers: int = 2,
) -> dict[str, Path]:
    """Run every page's notebook, two at a time (they only read the data and the results).

    On two cores two kernels at once nearly halve the time; more would only queue. The first
    failure stops the run: notebooks not yet started are cancelled. Ctrl-C or SIGTERM stops
    the running ones too.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    executed: dict[str, Path] = {}
    futures = {}
    # spawn, not fork: forking a process whose BLAS threads are running can deadlock
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_ignore_interrupts
    ) as pool:
        try:
            with _children_ignore_ctrl_c():  # workers start here, one per submit
                futures = {
                    pool.submit(_execute_timed, page, out_dir, parameters, notebooks_dir): page
                    for page in pages
                }
            progress(f"[notebooks] running {len(pages)} notebooks, {workers} at a time")
            for future in as_completed(futures):
                page = futures[future]
                executed[page.slug], seconds = future.result()
                progress(
                    f"[notebooks {len(executed)}/{len(pages)}] {page.notebook} done in "
                    f"{seconds:.1f} s"
                )
        except KeyboardInterrupt:
            # no cancel() here: Python 3.11's pool then fails on the cancelled futures of the
            # workers it finds stopped, with a traceback from its own thread
            _stop_workers(pool)
            raise
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return executed


def _describe_figures(notebook) -> None:
    """Give every figure alternative text: the heading of the section it answers."""
    heading = notebook.metadata.get("title", "Figure")
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    heading = line.lstrip("#").strip()
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.setdefault("metadata", {})["alt"] = f"Figure: {heading}"


def render_page(executed: Path, destination: Path, context: dict) -> Path:
    """Turn an executed notebook into a self-contained HTML page with the code hidden."""
    from nbconvert import HTMLExporter

    from analysis.report.sentences import plain_text

    notebook = nbformat.read(executed, as_version=4)
    _describe_figures(notebook)
    exporter = HTMLExporter(
        template_name="inside_out",
        extra_template_basedirs=[str(TEMPLATES_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    css = (TEMPLATES_DIR / "inside_out" / "report.css").read_text(encoding="utf-8")
    body, _ = exporter.from_notebook_node(
        notebook,
        resources={"inside_out": {**context, "css": css}, "metadata": {"name": context["title"]}},
    )
    # Names may carry bidirectional controls (U+202E …) that reorder the text around them; the
    # page is final here (nbconvert has decoded every entity), so one pass removes them all.
    body = plain_text(body)
    destination.write_text(body, encoding="utf-8")
    return destination


def _require_something_to_show(unit_wave: pd.DataFrame, min_group_size: int) -> None:
    """Refuse (exit 2, before any folder exists) a report in which every staff figure is hidden.

    ``estimate`` still writes its tables for such a study; a leadership report whose every
    employee figure is suppressed would show nothing but blanks.
    """
    from analysis.models.linkage import EstimationError

    if unit_wave["engagement_index"].notna().any():
        return
    largest = int(unit_wave["n_respondents"].max()) if len(unit_wave) else 0
    raise EstimationError(
        f"nothing to report: no unit-wave has {min_group_size} or more respondents (the largest "
        f"has {largest}), so every staff figure would be hidden. Lower min_group_size (not below "
        "3), or group small units into larger ones in the units table; `estimate` still writes "
        "the model tables"
    )


def page_context(page: Page, manifest: dict, pages: tuple[Page, ...] = (), **overrides) -> dict:
    """What the page template shows besides the notebook: title, navigation and provenance.

    Parameters
    ----------
    page : Page
        The page being rendered.
    manifest : dict
        The run's manifest (``analysis.data.provenance.build_manifest``); its footer shows the
        run, the commit, the parameters, the inputs by hash and the packages, never a path.
    pages : tuple of Page
        Every page of the run; with more than one, each page links to every other.
    **overrides
        Entries to show instead of the manifest's (``inputs`` for a study whose inputs are its
        code).

    Returns
    -------
    dict
    """
    return {
        "title": page.title,
        "subtitle": page.title,
        "run_id": manifest["run_id"],
        "run_at": manifest["run_at"],
        "git_commit": manifest["git_commit"],
        "parameters": manifest["parameters"],
        "inputs": manifest["inputs_sha256"],
        "dataset": manifest["dataset"],
        "packages": manifest["packages"],
        "pages": [
            {"href": f"{p.slug}.html", "title": p.title, "current": p.slug == page.slug}
            for p in pages
        ]
        if len(pages) > 1
        else [],
        **overrides,
    }


def write_manifest(manifest: dict, run_dir: Path) -> Path:
    """Write a run's ``manifest.json`` beside its pages.

    Parameters
    ----------
    manifest : dict
        The run's manifest (``analysis.data.provenance.build_manifest``).
    run_dir : Path
        The run's (staging) folder.

    Returns
    -------
    Path
        The file written.
    """
    path = run_dir / "manifest.json"
    path.write_text(manifest_json(manifest), encoding="utf-8")
    return path


def build_report(
    data_dir: Path | str,
    out_root: Path | str,
    parameters: Parameters,
    progress: Callable[[str], None] = print,
    pages: tuple[Page, ...] | None = None,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    engine: str = DEFAULT_ENGINE,
) -> Path:
    """Validate the data, estimate, run every notebook, render every page, publish atomically.

    The tables are estimated once (``analysis.report.page.estimate``) before the run folder
    exists, then written with the run's one manifest into ``<run-id>/results``
    (``analysis.report.page.publish_results``), where every notebook finds them current and
    only reads them.

    Parameters
    ----------
    data_dir : Path or str
        The dataset folder.
    out_root : Path or str
        The reports folder: new, empty or the kit's.
    parameters : Parameters
    progress : callable
        Called with a line of text as the run advances.
    pages : tuple of Page, optional
        The notebooks to run; the page whose slug is ``index`` is the entry page, and every
        page links to every other. By default the dataset's (:func:`pages_for`); a research
        group may run its own set.
    notebooks_dir : Path
        Where the pages' notebooks are.
    engine : {"duckdb", "spark", "pandas"}
        Where the estimation reduces the customer tables (``analysis.data.source``); the
        notebooks read the dataset with ``load_dataset``.

    Returns
    -------
    Path
        The new run's folder.

    Raises
    ------
    OutputError, DatasetError, EstimationError
        Before anything is written (``analysis.data.folders``, ``analysis.data.load``,
        ``analysis.models.linkage``).
    ReportError
        A notebook failed: the earlier report stays, the partial run is kept as
        ``.failed-<run-id>``.
    """
    from analysis.report.page import estimate, publish_results

    data_dir = Path(data_dir).resolve()
    out_root = folders.check_run_root(out_root, "reports", inputs=[data_dir])
    started = time.monotonic()
    progress(f"Validating {data_dir}")
    dataset = open_dataset(data_dir, engine=engine)
    if pages is None:
        pages = pages_for(dataset)

    def estimate_progress(message: str) -> None:
        progress(f"[estimate] {message}")

    # estimated before the run folder exists: data too thin to estimate creates nothing
    try:
        tables = estimate(dataset, parameters, estimate_progress)
    finally:
        close_dataset(dataset)
    _require_something_to_show(tables["unit_wave"], parameters.min_group_size)
    with staged_run(out_root, "reports", inputs=[data_dir]) as (staging, run_id):
        # the notebooks find these tables current for their parameters and only read them
        _, manifest = publish_results(
            data_dir,
            staging / "results",
            parameters,
            dataset=dataset,
            tables=tables,
            run_id=run_id,
        )
        notebook_parameters = {
            "data_dir": str(data_dir),
            "output_dir": str(staging / "results"),
            **parameters.to_notebook(),
        }
        executed = run_notebooks(staging, notebook_parameters, progress, pages, notebooks_dir)
        for page in pages:
            context = page_context(page, manifest, pages, synthetic=dataset.synthetic)
            render_page(executed[page.slug], staging / f"{page.slug}.html", context)
        write_manifest(manifest, staging)
        # printed in the staging folder: the PDF is published with the pages or not at all
        write_pdf(staging, pages, progress)
    final = out_root / run_id
    progress(f"Report ready in {time.monotonic() - started:.1f} s: {final / 'index.html'}")
    return final


# --------------------------------------------------------------------------------------------
# Publishing any run atomically, and the calibration study's page


def _leaves_nothing(error: BaseException) -> bool:
    """Failures that keep no ``.failed-`` folder: interruptions, refusals, a full disk."""
    if not isinstance(error, Exception):  # Ctrl-C, SIGTERM, SystemExit
        return True
    from analysis.data.load import DatasetError
    from analysis.data.parameters import ParameterError
    from analysis.models.linkage import EstimationError

    refusals = (DatasetError, ParameterError, EstimationError, folders.OutputError)
    return isinstance(error, (*refusals, folders.StorageError))


@contextmanager
def staged_run(
    out_root: Path | str,
    kind: str = "reports",
    *,
    inputs: tuple[Path, ...] | list[Path] = (),
    clock: Callable[[], dt.datetime] = folders.utc_now,
) -> Iterator[tuple[Path, str]]:
    """Build a run in ``out_root/.partial-<run-id>``; publish it only if the block completes.

    ``out_root`` must be acceptable to ``analysis.data.folders.check_run_root`` (new, empty or the
    kit's own; ``kind`` is "reports" or "calibration"); it is marked as the kit's. The run id
    comes from ``clock`` and is reserved with an exclusive ``mkdir``, so runs started in the
    same second get distinct ids. On success the folder becomes ``<run-id>/`` and ``latest``
    points to it (an atomic rename and an atomic symlink swap). A failure of a notebook or of
    the kit keeps it as ``.failed-<run-id>`` (the newest ``KEEP_FAILED`` are kept); an
    interruption, a refused input or a disk error removes it. Either way nothing else under
    ``out_root`` changes, so a previous good run stays published. Every report is published
    this way: ``build_report`` and the calibration study's.
    """
    out_root = folders.check_run_root(out_root, kind, inputs=inputs)
    folders.claim_run_root(out_root, kind)
    with folders.writing(out_root):
        staging, run_id = folders.reserve_run(out_root, clock)
    try:
        with folders.writing(out_root):
            yield staging, run_id
    except ReportError as error:
        failed = _keep_failed(out_root, staging, run_id)
        partial = failed / error.notebook.relative_to(staging) if error.notebook else failed
        raise ReportError(
            f"{error}\nPartial executed notebook: {partial}\nThe previous report is unchanged."
        ) from None
    except BaseException as error:
        if _leaves_nothing(error):
            folders.discard(staging)
        else:
            _keep_failed(out_root, staging, run_id)
        raise
    with folders.shielded(), folders.writing(out_root):
        os.replace(staging, out_root / run_id)
        folders.point_latest(out_root, run_id)


def _keep_failed(out_root: Path, staging: Path, run_id: str) -> Path:
    failed = out_root / f".failed-{run_id}"
    with folders.shielded():
        os.replace(staging, failed)
        folders.prune_failed(out_root)
    return failed


# --------------------------------------------------------------------------------------------
# The forwardable PDF: every page in one document, printed by headless Chromium

BROWSER_VARIABLE = "INSIDE_OUT_BROWSER"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_PATHS = (  # macOS installs no command on PATH
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
)
PDF_NAME = "report.pdf"
PDF_TIMEOUT = 180.0  # seconds; the six pages print in about three

# Only in the printed document. A4 because the kit's users print in Europe as often as not;
# Letter readers lose a few millimetres of margin, nothing else.
PRINT_CSS = """
@page { size: A4; margin: 14mm 12mm 14mm 12mm; }
@media print {
  body.io-report { font-size: 12px; line-height: 1.45; }
  .io-nav { display: none; }
  .io-print-page + .io-print-page { break-before: page; }
  .io-masthead-inner, .io-main, .io-footer-inner { max-width: none; padding: 0; }
  .io-masthead-inner, .io-footer-inner { padding: 8px 12px; }
  .io-main { padding-top: 12px; padding-bottom: 0; }
  h1 { font-size: 22px; }
  h2 { font-size: 16px; margin-top: 20px; }
  h3 { font-size: 14px; }
  h1, h2, h3 { break-after: avoid; }
  p, li { max-width: none; orphans: 3; widows: 3; }
  /* on paper nothing scrolls: a box that scrolls on screen would cut its table or figure */
  .jp-OutputArea-output, .jp-RenderedImage { overflow: visible !important; }
  .jp-OutputArea-output img, img, svg, figure { break-inside: avoid; max-width: 100% !important; }
  table { display: table; overflow: visible; font-size: 10px; width: auto; max-width: 100%; }
  /* numbers never break inside ("2,15|2"); words in a note column still wrap at spaces */
  th, td { padding: 3px 6px; overflow-wrap: normal; word-break: normal; }
  .io-headline { font-size: 14px; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
}
"""


class PdfError(RuntimeError):
    """The PDF was not printed; the message is one line that says how to get it."""


def find_browser(browser: str | None = None) -> str:
    """The Chromium or Chrome that prints the PDF.

    Parameters
    ----------
    browser : str, optional
        A command or path. Without it, ``$INSIDE_OUT_BROWSER``; without that, the first of
        ``chromium``, ``chromium-browser``, ``google-chrome`` and ``google-chrome-stable`` on
        ``PATH``, then the usual macOS applications.

    Returns
    -------
    str
        The executable's path.

    Raises
    ------
    PdfError
        None is found, or the one named is not an executable; the message says how to get one.
    """
    import shutil

    named = browser or os.environ.get(BROWSER_VARIABLE) or None
    if named is not None:
        found = shutil.which(named)
        if found is None:
            raise PdfError(
                f"report.pdf not written: the browser {named!r} (from {BROWSER_VARIABLE} or the "
                "caller) is not an executable; point it at Chromium or Chrome, or unset it, and "
                "run the report again. The HTML pages are complete."
            )
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    for path in BROWSER_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise PdfError(
        "report.pdf not written: no Chromium or Chrome found. Install one (`make browser` on "
        f"Debian or Ubuntu) or set {BROWSER_VARIABLE} to its path, then run the report again. "
        "The HTML pages are complete."
    )


def _between(text: str, start: str, end: str, *, last: bool = False) -> str:
    """The part of ``text`` from the marker ``start`` through the marker ``end``."""
    begin = text.find(start)
    finish = text.rfind(end) if last else text.find(end, max(begin, 0))
    if begin < 0 or finish < begin:
        raise PdfError(
            f"report.pdf not written: a page lacks {start!r}; the HTML pages are complete."
        )
    return text[begin : finish + len(end)]


def print_document(run_dir: Path, pages: tuple[Page, ...] = PAGES) -> str:
    """One HTML document holding every rendered page, the executive summary first.

    Each page keeps all it shows above its footer, masthead (which names it) first; its
    navigation is hidden and links between pages become links within the document. The
    provenance footer comes once, at the end. The head, with its style sheet and its content
    security policy (no scripts, nothing fetched), is the entry page's.

    Parameters
    ----------
    run_dir : Path
        A (staging) run folder with ``<slug>.html`` for every page.
    pages : tuple of Page
        The pages, in the order of the report; the ``index`` page goes first.

    Returns
    -------
    str
    """
    ordered = sorted(pages, key=lambda page: page.slug != "index")  # stable: keeps the rest
    texts = {
        page.slug: (run_dir / f"{page.slug}.html").read_text(encoding="utf-8") for page in ordered
    }
    first = texts[ordered[0].slug]
    head = _between(first, "<!DOCTYPE html>", "</head>")[: -len("</head>")]
    head = re.sub(
        r"<title>.*?</title>", "<title>Inside Out report</title>", head, count=1, flags=re.S
    )
    sections = []
    for page in ordered:
        text = texts[page.slug]
        # everything the page shows above its footer: masthead, any banner, the content
        body = _between(text, '<body class="io-report">', '<footer class="io-footer">')
        body = body[len('<body class="io-report">') : -len('<footer class="io-footer">')]
        for other in ordered:
            body = body.replace(f'href="{other.slug}.html"', f'href="#io-page-{other.slug}"')
        sections.append(
            f'<section class="io-print-page" id="io-page-{page.slug}">\n{body}\n</section>'
        )
    footer = _between(first, '<footer class="io-footer">', "</footer>", last=True)
    return (
        f'{head}<style type="text/css">{PRINT_CSS}</style>\n</head>\n<body class="io-report">\n'
        + "\n".join(sections)
        + f"\n{footer}\n</body>\n</html>\n"
    )


def render_pdf(
    run_dir: Path,
    pages: tuple[Page, ...] = PAGES,
    browser: str | None = None,
    timeout: float = PDF_TIMEOUT,
) -> Path:
    """Print the run's pages into ``run_dir/report.pdf`` with headless Chromium.

    Parameters
    ----------
    run_dir : Path
        The (staging) run folder, its pages rendered.
    pages : tuple of Page
        The pages to print (``print_document``).
    browser : str, optional
        The browser (``find_browser``).
    timeout : float
        Seconds before a hung browser is stopped.

    Returns
    -------
    Path
        The PDF written.

    Raises
    ------
    PdfError
        No browser, or it failed or hung; nothing is written. The message is one line.

    Notes
    -----
    The document is printed from a private temporary folder, with a throw-away browser
    profile, and copied into the run folder only once it is a complete PDF.
    """
    import shutil
    import tempfile

    executable = find_browser(browser)
    document = print_document(run_dir, pages)
    with tempfile.TemporaryDirectory(prefix="inside-out-pdf-") as scratch:
        try:
            printed = _print_with(executable, document, Path(scratch), timeout)
        except OSError as error:  # a full temporary disk, a browser that cannot start
            raise PdfError(
                f"report.pdf not written: {error.strerror or error} ({executable}); the HTML "
                "pages are complete (print index.html from a browser instead)."
            ) from None
        destination = run_dir / PDF_NAME
        shutil.copyfile(printed, destination)  # a full disk here fails the run, as for any page
    return destination


def _print_with(executable: str, document: str, scratch: Path, timeout: float) -> Path:
    """Print ``document`` to ``scratch/report.pdf`` with the browser; return the PDF's path."""
    import signal

    source = scratch / "report.html"
    source.write_text(document, encoding="utf-8")
    printed = scratch / PDF_NAME
    command = [
        executable,
        "--headless",
        # The sandbox needs user namespaces that root and most containers lack. The page is the
        # kit's own; its content security policy blocks scripts and every fetch.
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={scratch / 'profile'}",
        "--no-pdf-header-footer",
        f"--print-to-pdf={printed}",
        source.as_uri(),
    ]
    # its own session, so that a hung browser and its helper processes go together
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PdfError(
            f"report.pdf not written: {executable} did not finish within {timeout:.0f} s; "
            "the HTML pages are complete (print index.html from a browser instead)."
        ) from None
    finally:  # also on Ctrl-C and SIGTERM: no browser outlives the run
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    content = printed.read_bytes() if printed.is_file() else b""
    if (
        process.returncode != 0
        or not content.startswith(b"%PDF")
        or b"%%EOF" not in content[-1024:]
    ):
        reason = stderr.decode(errors="replace").strip().splitlines()
        raise PdfError(
            f"report.pdf not written: {executable} exited with status {process.returncode}"
            f"{': ' + reason[-1][:200] if reason else ''}; the HTML pages are complete "
            "(print index.html from a browser instead)."
        )
    return printed


def write_pdf(
    run_dir: Path,
    pages: tuple[Page, ...],
    progress: Callable[[str], None],
    browser: str | None = None,
) -> Path | None:
    """Print ``report.pdf`` if a browser can; otherwise say in one line how to get it.

    A missing or failing browser never fails the run: the HTML pages are the report, the PDF
    is a copy to forward.

    Parameters
    ----------
    run_dir : Path
    pages : tuple of Page
    progress : callable
        Called with one line: the PDF written, or how to get it.
    browser : str, optional
        See ``find_browser``.

    Returns
    -------
    Path or None
        The PDF, or None when it was not written.
    """
    started = time.monotonic()
    try:
        path = render_pdf(run_dir, pages, browser)
    except PdfError as error:
        progress(str(error))
        return None
    size = path.stat().st_size / 1e6
    progress(f"[pdf] {PDF_NAME} ({size:.1f} MB) printed in {time.monotonic() - started:.1f} s")
    return path
