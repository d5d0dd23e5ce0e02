"""Provenance: what a reviewer needs to reproduce a run, recorded in ``manifest.json``.

The manifest names the dataset by its folder's name and a hash of its content, never by its
absolute path, which would name the user's home folder: ``manifest.json`` and the provenance
footer of every page travel with the report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from analysis import PROJECT_ROOT
from analysis.data.load import (
    DATABASE_URL_SCHEMES,
    INSTRUMENT_FILE,
    file_sha256,
    find_table_files,
)
from analysis.data.parameters import Parameters

PACKAGES = (
    "pandas",
    "numpy",
    "scipy",
    "statsmodels",
    "seaborn",
    "matplotlib",
    "pandera",
    "pyarrow",
    "papermill",
    "nbconvert",
)


def _git(*arguments: str) -> str:
    """The output of one git command on the checkout the package runs from."""
    return subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


def _git_commit() -> str:
    """The commit the code ran from, and whether tracked files had uncommitted changes."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit}{' with uncommitted changes' if dirty else ''}"


def _package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def run_timestamp() -> str:
    """The time a run starts, as the manifest records it: ISO 8601 in UTC, to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def dataset_sha256(inputs_sha256: dict[str, str]) -> str:
    """One SHA-256 for a whole dataset: of the lines ``<file sha256>  <file name>``, by name.

    The same text as ``sha256sum`` prints for the files taken in name order, so a reviewer can
    check it by hand: ``sha256sum customer_nps.csv customers.csv employee_survey.csv units.csv |
    sha256sum`` (with ``instrument.yaml`` in its place when the dataset has one).
    """
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(inputs_sha256.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def input_hashes(data_dir: Path | str, files: Mapping[str, Path] | None = None) -> dict[str, str]:
    """SHA-256 of every input file of a dataset, by file name, in name order.

    Parameters
    ----------
    data_dir : Path or str
        The dataset folder.
    files : Mapping of str to Path, optional
        The table files, as ``load_dataset(data_dir).files`` holds them; found with
        ``analysis.data.load.find_table_files`` when not given.

    Returns
    -------
    dict of str to str
        The tables' files and, when the dataset has one, ``instrument.yaml``.
    """
    data_dir = Path(data_dir)
    if files is None:
        files, _ = find_table_files(data_dir)
    paths = [*files.values(), data_dir / INSTRUMENT_FILE]
    return dict(sorted((p.name, file_sha256(p)) for p in paths if p.is_file()))


def build_manifest(
    data_dir: Path | str | None,
    files: Mapping[str, Path] | None,
    parameters: Parameters | Mapping,
    run_id: str,
    run_at: str,
    **extra,
) -> dict:
    """What a reviewer needs to reproduce a run: inputs by hash, parameters, code, libraries.

    The one manifest of the kit: ``estimate``, ``report`` and the calibration study all write
    what this returns, and ``analysis.data.results.results_key`` reads it back to decide
    whether a result folder is current.

    Parameters
    ----------
    data_dir : Path, str or None
        The dataset folder; ``None`` for a study whose data are all simulated.
    files : Mapping of str to Path or None
        The dataset's table files (``Dataset.files``); found in ``data_dir`` when ``None``.
    parameters : Parameters or Mapping
        The run's parameters: ``Parameters`` (recorded as ``to_notebook`` gives them) or, for a
        study, a plain mapping.
    run_id, run_at : str
        The run's id (its folder's name) and its start, ISO 8601 in UTC.
    **extra
        Further entries, such as a study's ``conditions`` and ``code_sha256``.

    Returns
    -------
    dict
        ``run_id, run_at, dataset, inputs_sha256, parameters, git_commit, packages`` and the
        ``extra`` entries. The dataset appears as its folder's name and ``dataset_sha256``,
        never as a path; ``dataset`` is ``None`` and ``inputs_sha256`` empty without data.
    """
    database = data_dir is not None and str(data_dir).startswith(DATABASE_URL_SCHEMES)
    inputs = {} if data_dir is None or database else input_hashes(data_dir, files)
    if data_dir is None:
        dataset = None
    elif database:
        # a database has no files to hash: its name (never its password) says what was read
        from analysis.data.source import database_name

        dataset = {"name": database_name(str(data_dir)), "sha256": None}
    else:
        dataset = {"name": Path(data_dir).resolve().name, "sha256": dataset_sha256(inputs)}
    recorded = parameters.to_notebook() if isinstance(parameters, Parameters) else dict(parameters)
    return {
        "run_id": run_id,
        "run_at": run_at,
        "dataset": dataset,
        "inputs_sha256": inputs,
        "parameters": recorded,
        "git_commit": _git_commit(),
        "packages": _package_versions(),
        **extra,
    }
