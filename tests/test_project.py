"""The project's own promises: one source of dependencies, clean notebooks, a self-documenting
Makefile."""

from __future__ import annotations

import json
import subprocess
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import PROJECT_ROOT


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def test_environment_yml_delegates_to_pyproject():
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    project = _pyproject()["project"]
    assert environment["name"] == project["name"]
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    # conda provides only the interpreter and pip; every library comes from pyproject.toml
    assert sorted(Requirement(d.replace("python>=", "python>=")).name for d in conda) == [
        "pip",
        "python",
    ]
    python = next(d for d in conda if d.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]
    assert len(pip) == 1
    extras = pip[0].removeprefix("-e .[").removesuffix("]").split(",")
    assert pip[0].startswith("-e .[")
    assert set(extras) == set(project["optional-dependencies"])


def test_lock_file_pins_every_declared_dependency():
    project = _pyproject()["project"]
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    pinned = {}
    for package in lock["package"]:
        pinned.setdefault(canonicalize_name(package["name"]), []).append(package["version"])
    declared = project["dependencies"] + [
        d for group in project["optional-dependencies"].values() for d in group
    ]
    for text in declared:
        requirement = Requirement(text)
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is declared but not in uv.lock"
        assert any(requirement.specifier.contains(v) for v in versions), (
            f"uv.lock pins {requirement.name} {versions}, outside {requirement.specifier}"
        )


def test_nbconvert_floor_has_the_security_fixes():
    nbconvert = next(
        Requirement(d) for d in _pyproject()["project"]["dependencies"] if d.startswith("nbconvert")
    )
    assert not nbconvert.specifier.contains("7.17.0")
    assert nbconvert.specifier.contains("7.17.1")


def test_notebooks_are_committed_without_outputs_and_have_a_parameters_cell():
    notebooks = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        notebook = json.loads(path.read_text())
        for cell in notebook["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [], f"{path.name} has outputs"
                assert cell["execution_count"] is None, f"{path.name} has execution counts"
        tagged = [c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
        for name in ("data_dir", "output_dir", "min_group_size"):
            assert f"{name} =" in "".join(tagged[0]["source"])


def test_make_help_documents_every_target():
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for target in ("report", "test", "lab", "data", "lint", "clean", "install"):
        assert f"make {target}" in result.stdout
    default = subprocess.run(
        ["make", "--no-print-directory", "-n"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "awk" in default.stdout  # `make` alone prints the help


def test_generated_artefacts_are_ignored_by_git():
    ignored = subprocess.run(
        [
            "git",
            "check-ignore",
            "--no-index",
            ".venv/",
            "data/sample/units.csv",
            "reports/20240101T000000Z/index.html",
            "notebooks/.ipynb_checkpoints/x.ipynb",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert len(ignored.stdout.splitlines()) == 4, ignored.stdout
