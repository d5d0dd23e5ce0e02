"""Provenance: what a reviewer needs to reproduce a run, recorded in ``manifest.json``."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from analysis.io import INSTRUMENT_FILE, file_sha256
from analysis.parameters import Parameters

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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


def build_manifest(
    data_dir: Path, files: dict[str, Path], parameters: Parameters, run_id: str, run_at: str
) -> dict:
    """What a reviewer needs to reproduce a run: inputs by hash, parameters, code, libraries."""
    inputs = {path.name: file_sha256(path) for path in files.values()}
    instrument = data_dir / INSTRUMENT_FILE
    if instrument.exists():
        inputs[INSTRUMENT_FILE] = file_sha256(instrument)
    return {
        "run_id": run_id,
        "run_at": run_at,
        "data_dir": str(data_dir),
        "inputs_sha256": dict(sorted(inputs.items())),
        "parameters": parameters.to_notebook(),
        "git_commit": _git_commit(),
        "packages": _package_versions(),
    }
