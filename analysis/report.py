"""Render the leadership report: run the notebooks with papermill, turn them into HTML.

This module and ``analysis.io`` are the only ones that write files. A run builds everything in a
hidden staging folder under the reports folder and moves it into place as ``<run-id>/`` only when
every notebook has run and every page has rendered; ``latest`` then points to it. A failed run
therefore never touches an earlier report: its staging folder is kept as ``.failed-<run-id>`` so
the partial executed notebook can be opened.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from analysis.io import load_dataset
from analysis.parameters import Parameters
from analysis.provenance import build_manifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
KERNEL_NAME = "inside-out"


@dataclass(frozen=True)
class Page:
    """One notebook of the report and the HTML page it becomes."""

    slug: str
    notebook: str
    title: str


PAGES = (Page("index", "nps_by_engagement.ipynb", "Engagement and customer NPS"),)


class ReportError(RuntimeError):
    """A notebook failed; the message names the cell's error and the partial notebook."""


def _new_run_id(out_root: Path) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id, suffix = stamp, 1
    while (out_root / run_id).exists():
        suffix += 1
        run_id = f"{stamp}-{suffix}"
    return run_id


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def _ipc_kernel_manager():
    """A kernel manager that talks to the kernel over local sockets instead of TCP.

    ipykernel 7 warns on every start that TCP without encryption can be overheard; Unix
    sockets in the user's runtime directory cannot, and the warning goes away.
    """
    from jupyter_client.manager import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)

    return IpcKernelManager


def execute_notebook(page: Page, out_dir: Path, parameters: dict) -> Path:
    """Run one notebook with papermill; raise ``ReportError`` naming the failing cell."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output = out_dir / "notebooks" / page.notebook
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / page.notebook),
            str(output),
            parameters=parameters,
            kernel_name=_kernel_name(),
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
            log_output=False,
            report_mode=False,
            kernel_manager_class=_ipc_kernel_manager(),
        )
    except PapermillExecutionError as error:
        raise ReportError(
            f"notebook {page.notebook} failed in cell {error.exec_count}: "
            f"{error.ename}: {error.evalue}"
        ) from None
    return output


def render_page(executed: Path, destination: Path, context: dict) -> Path:
    """Turn an executed notebook into a self-contained HTML page with the code hidden."""
    from nbconvert import HTMLExporter

    notebook = nbformat.read(executed, as_version=4)
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
    destination.write_text(body, encoding="utf-8")
    return destination


def _point_latest(out_root: Path, run_id: str) -> None:
    link = out_root / "latest"
    staging_link = out_root / f".latest-{run_id}"
    staging_link.symlink_to(run_id, target_is_directory=True)
    os.replace(staging_link, link)


def build_report(
    data_dir: Path | str,
    out_root: Path | str,
    parameters: Parameters,
    progress: Callable[[str], None] = print,
) -> Path:
    """Validate the data, run every notebook, render every page, then publish atomically.

    Returns the new run's folder. Raises ``analysis.io.DatasetError`` (nothing is written) or
    ``ReportError`` (the earlier report stays; the partial run is kept as ``.failed-<run-id>``).
    """
    data_dir, out_root = Path(data_dir).resolve(), Path(out_root).resolve()
    started = time.monotonic()
    progress(f"Validating {data_dir}")
    dataset = load_dataset(data_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    run_id = _new_run_id(out_root)
    run_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    staging = out_root / f".partial-{run_id}"
    staging.mkdir()
    manifest = build_manifest(data_dir, dataset.files, parameters, run_id, run_at)
    notebook_parameters = {
        "data_dir": str(data_dir),
        "output_dir": str(staging / "results"),
        **parameters.to_notebook(),
    }
    current: Page | None = None
    try:
        executed = {}
        for number, page in enumerate(PAGES, start=1):
            current = page
            tick = time.monotonic()
            progress(f"[{number}/{len(PAGES)}] running {page.notebook}")
            executed[page.slug] = execute_notebook(page, staging, notebook_parameters)
            progress(
                f"[{number}/{len(PAGES)}] {page.notebook} done in {time.monotonic() - tick:.1f} s"
            )
        for page in PAGES:
            context = {
                "title": page.title,
                "subtitle": page.title,
                "run_id": run_id,
                "run_at": run_at,
                "git_commit": manifest["git_commit"],
                "parameters": manifest["parameters"],
                "inputs": manifest["inputs_sha256"],
                "packages": manifest["packages"],
                "pages": [
                    {"href": f"{p.slug}.html", "title": p.title, "current": p.slug == page.slug}
                    for p in PAGES
                ]
                if len(PAGES) > 1
                else [],
            }
            render_page(executed[page.slug], staging / f"{page.slug}.html", context)
        current = None
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
        )
    except BaseException as error:
        failed = out_root / f".failed-{run_id}"
        os.replace(staging, failed)
        if isinstance(error, ReportError):
            partial = failed / "notebooks" / current.notebook if current else failed
            raise ReportError(
                f"{error}\nPartial executed notebook: {partial}\nThe previous report is unchanged."
            ) from None
        raise
    final = out_root / run_id
    os.replace(staging, final)
    _point_latest(out_root, run_id)
    progress(f"Report ready in {time.monotonic() - started:.1f} s: {final / 'index.html'}")
    return final
