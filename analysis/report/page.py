"""What every page of the report starts from: one set-up call, and the one way to estimate.

Each notebook's first code cell after its papermill ``parameters`` cell is::

    page = setup(data_dir, output_dir, min_group_size=min_group_size, …)

and gets a :class:`PageContext`: the checked parameters, the result tables (computed first when
the folder does not hold tables for these data and parameters), the dataset (read when first
used) and the house style applied. Run by ``report``, the tables are already in the run folder
and are only read; opened in JupyterLab on the notebook's defaults, they are computed once and
reused while the data and the parameters stay the same.

Estimation is triggered only here (:func:`estimate`), for ``estimate``, ``report`` and the
notebooks alike; the tables are written and read by ``analysis.data.results`` with the one
manifest ``analysis.data.provenance.build_manifest`` builds. ``analysis.report.build`` only
runs the notebooks and renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from analysis.data.load import Dataset, load_dataset
from analysis.data.parameters import Parameters, parameters_from_mapping, resolve_as_of
from analysis.data.provenance import build_manifest, run_timestamp
from analysis.data.results import (
    read_calibration,
    read_results,
    results_are_current,
    write_results,
)
from analysis.data.source import DEFAULT_ENGINE, close_dataset, open_dataset


def estimate(
    dataset: Dataset, parameters: Parameters, progress: Callable[[str], None] | None = None
) -> dict[str, pd.DataFrame]:
    """Fit every estimand on a dataset: the one place the kit's estimation is started.

    Parameters
    ----------
    dataset : Dataset
        A dataset that follows the contract (``analysis.data.load.load_dataset``).
    parameters : Parameters
    progress : callable, optional
        Called with a line of text as each step starts.

    Returns
    -------
    dict of str to DataFrame
        The result tables by name (``analysis.data.results.RESULT_FILES``, and
        ``OPTIONAL_RESULT_FILES`` for a dataset with internal service): the estimation's
        tables and ``findings``, one row per headline finding with its verdict and sentence
        (``analysis.report.findings.findings_table``).

    Raises
    ------
    analysis.models.linkage.EstimationError
        When the data are too thin for an estimand.
    """
    from analysis.models.estimate import estimate_all
    from analysis.report.findings import findings_table

    tables = estimate_all(dataset, parameters, progress or (lambda _message: None)).tables()
    # the headline findings are decided once, here, so that findings.csv, the executive page
    # and anything else that reads the results say the same thing
    findings = findings_table(tables["estimates"], parameters.alpha)
    return {"estimates": tables["estimates"], "findings": findings, **tables}


def publish_results(
    data_dir: Path | str,
    out_dir: Path | str,
    parameters: Parameters,
    *,
    dataset: Dataset | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    run_id: str | None = None,
    progress: Callable[[str], None] | None = None,
    engine: str = DEFAULT_ENGINE,
) -> tuple[Mapping[str, pd.DataFrame], dict]:
    """Estimate (unless ``tables`` are given) and write a result folder with its manifest.

    Parameters
    ----------
    data_dir : Path or str
        The dataset folder, or a ``postgresql://`` URL (``analysis.data.source``).
    out_dir : Path or str
        The result folder: new, empty or the kit's (``analysis.data.results.write_results``).
    parameters : Parameters
    dataset : Dataset, optional
        ``data_dir`` already opened; opened here (``open_dataset``) when not given.
    tables : Mapping of str to DataFrame, optional
        Tables already estimated (``report`` estimates before its run folder exists).
    run_id : str, optional
        The run's id for the manifest; the folder's name when not given.
    progress : callable, optional
        As for :func:`estimate`.
    engine : {"duckdb", "spark", "pandas"}
        Where the customer tables are reduced when the dataset is opened here
        (``analysis.data.source.open_dataset``); every engine gives the same tables.

    Returns
    -------
    tables : Mapping of str to DataFrame
    manifest : dict
        As written to ``manifest.json`` (``analysis.data.provenance.build_manifest``).
    """
    if dataset is None:
        dataset = open_dataset(data_dir, engine=engine, progress=progress or (lambda _m: None))
        try:
            tables = estimate(dataset, parameters, progress) if tables is None else tables
        finally:
            close_dataset(dataset)
    elif tables is None:
        tables = estimate(dataset, parameters, progress)
    manifest = build_manifest(
        data_dir, dataset.files, parameters, run_id or Path(out_dir).name, run_timestamp()
    )
    write_results(tables, out_dir, manifest)
    return tables, manifest


def ensure_results(
    data_dir: Path | str, results_dir: Path | str, parameters: Parameters
) -> dict[str, pd.DataFrame]:
    """Read the result tables, computing them first unless they match these data and parameters.

    ``report`` computes them once before any notebook runs; this lets a researcher run a
    single notebook in JupyterLab on its defaults, and recomputes when the data or a parameter
    changed (results made with another ``min_group_size`` must never be shown).

    Parameters
    ----------
    data_dir, results_dir : Path or str
    parameters : Parameters

    Returns
    -------
    dict of str to DataFrame
        ``analysis.data.results.read_results`` of ``results_dir``.
    """
    wanted = build_manifest(data_dir, None, parameters, Path(results_dir).name, "")
    if not results_are_current(results_dir, wanted):
        publish_results(data_dir, results_dir, parameters)
    return read_results(results_dir)


@dataclass
class PageContext:
    """What a notebook of the report works with, from :func:`setup`.

    Attributes
    ----------
    parameters : Parameters
        The checked parameters of the run.
    results : dict of str to DataFrame
        The result tables (``estimates``, ``drivers``, ``unit_wave``,
        ``nps_by_engagement_quartile``, and ``internal_service`` and
        ``internal_service_network`` when the run has them), or the calibration study's
        (``replicates``, ``summary``, ``conditions``) for a page without data.
    data_dir : Path or None
        The dataset folder; ``None`` for the calibration study, whose data are all simulated.
    """

    parameters: Parameters
    results: dict[str, pd.DataFrame]
    data_dir: Path | None = None

    def __repr__(self) -> str:
        # what a cell ending with the context shows: the dataset's name, never a path of the
        # user's machine (dataclass keeps this __repr__ rather than writing its own)
        name = None if self.data_dir is None else self.data_dir.resolve().name
        return f"PageContext(dataset={name!r}, results={sorted(self.results)})"

    @cached_property
    def dataset(self) -> Dataset:
        """The dataset, read (and checked against the contract) when first used."""
        if self.data_dir is None:
            raise AttributeError("this page has no dataset: its studies are simulated")
        return load_dataset(self.data_dir)

    @property
    def estimates(self) -> pd.DataFrame:
        """The ``estimates`` table: one tidy row per estimand."""
        return self.results["estimates"]

    @cached_property
    def as_of(self) -> pd.Timestamp:
        """The end of observation (``analysis.data.parameters.resolve_as_of``)."""
        return resolve_as_of(self.dataset, self.parameters)


def setup(data_dir: Path | str | None, output_dir: Path | str, **parameters) -> PageContext:
    """The first call of every notebook: parameters checked, results ready, house style on.

    Parameters
    ----------
    data_dir : Path, str or None
        The dataset folder, as papermill injects it (``None`` for the calibration study).
    output_dir : Path or str
        The result folder: the run's ``results`` when ``report`` runs the notebook, a scratch
        folder when a researcher does.
    **parameters
        The notebook's parameters (``min_group_size``, ``alpha``, …), checked as a parameters
        file is (``analysis.data.parameters.parameters_from_mapping``).

    Returns
    -------
    PageContext

    Raises
    ------
    analysis.data.parameters.ParameterError
        For an unknown key or a value out of range.
    """
    from analysis.report import figures

    checked = parameters_from_mapping(parameters)
    figures.use_house_style()
    if data_dir is None:
        return PageContext(checked, read_calibration(output_dir))
    return PageContext(checked, ensure_results(data_dir, output_dir, checked), Path(data_dir))
