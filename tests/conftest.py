"""Shared fixtures: small synthetic studies written to real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis.data.load import write_tables
from analysis.data.synth import StudyDesign, generate, truth_json

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL_DESIGN = StudyDesign(seed=7, n_units=60, n_waves=4, median_unit_size=12)


def write_study(directory: Path, design: StudyDesign, file_format: str = "csv") -> Path:
    study = generate(design)
    return write_tables(
        study.tables,
        directory,
        file_format=file_format,
        extra_files={"truth.json": truth_json(study)},
    )


@pytest.fixture(scope="session")
def small_study_master(tmp_path_factory) -> Path:
    """A small valid study, written once per session. Copy it before changing anything."""
    return write_study(tmp_path_factory.mktemp("studies") / "small", SMALL_DESIGN)


@pytest.fixture
def small_study(small_study_master, tmp_path) -> Path:
    """A private copy of the small study that a test may break."""
    return Path(shutil.copytree(small_study_master, tmp_path / "study"))
