"""Provenance: what a reviewer needs to reproduce a run, recorded in ``manifest.json``.

The manifest names the dataset by its folder's name and a hash of its content, never by its
absolute path, which would name the user's home folder: ``manifest.json`` and the provenance
footer of every page travel with the report.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from analysis import PROJECT_ROOT
from analysis.data.load import INSTRUMENT_FILE, file_sha256
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


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
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


def dataset_sha256(inputs_sha256: dict[str, str]) -> str:
    """One SHA-256 for a whole dataset: of the lines ``<file sha256>  <file name>``, by name.

    The same text as ``sha256sum`` prints for the files taken in name order, so a reviewer can
    check it by hand: ``sha256sum customer_nps.csv customers.csv employee_survey.csv units.csv |
    sha256sum`` (with ``instrument.yaml`` in its place when the dataset has one).
    """
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(inputs_sha256.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def build_manifest(
    data_dir: Path, files: dict[str, Path], parameters: Parameters, run_id: str, run_at: str
) -> dict:
    """What a reviewer needs to reproduce a run: inputs by hash, parameters, code, libraries.

    The dataset appears as its folder's name and ``dataset_sha256``, not as a path.
    """
    inputs = {path.name: file_sha256(path) for path in files.values()}
    instrument = data_dir / INSTRUMENT_FILE
    if instrument.exists():
        inputs[INSTRUMENT_FILE] = file_sha256(instrument)
    inputs = dict(sorted(inputs.items()))
    return {
        "run_id": run_id,
        "run_at": run_at,
        "dataset": {"name": Path(data_dir).resolve().name, "sha256": dataset_sha256(inputs)},
        "inputs_sha256": inputs,
        "parameters": parameters.to_notebook(),
        "git_commit": _git_commit(),
        "packages": _package_versions(),
    }
