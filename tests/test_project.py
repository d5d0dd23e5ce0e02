"""The project's own promises: one source of dependencies, clean notebooks, a self-documenting
Makefile."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import PROJECT_ROOT


def _pyproject() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def _environment() -> tuple[dict, list[str], list[str]]:
    environment = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    conda = [d for d in environment["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return environment, conda, pip


def _locked() -> dict[str, set[str]]:
    lock = tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        if package.get("source", {}).get("editable") != ".":  # the project itself
            versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def test_environment_yml_installs_the_project_from_pyproject():
    environment, conda, pip = _environment()
    project = _pyproject()["project"]
    assert environment["name"] == project["name"]
    # conda provides only the interpreter and pip; every library comes through pip
    assert sorted(Requirement(d).name for d in conda) == ["pip", "python"]
    python = next(d for d in conda if d.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]
    assert pip[-1].startswith("-e .[")  # the project last, with every extra
    extras = pip[-1].removeprefix("-e .[").removesuffix("]").split(",")
    assert set(extras) == set(project["optional-dependencies"])


def test_environment_yml_pins_exactly_what_uv_lock_pins():
    """Every package of uv.lock, at its locked version (with the lock's platform and Python
    markers where it locks more than one), and nothing else: conda users get the same
    versions as `make`. `make pins` regenerates the list after a change of dependencies."""
    _, _, pip = _environment()
    pins = [Requirement(line) for line in pip[:-1]]
    locked = _locked()
    pinned: dict[str, set[str]] = {}
    for pin in pins:
        (specifier,) = pin.specifier  # exactly one: ==version
        assert specifier.operator == "==", pin
        name = canonicalize_name(pin.name)
        assert specifier.version in locked.get(name, ()), f"{pin} is not what uv.lock pins"
        pinned.setdefault(name, set()).add(specifier.version)
        if pin.marker is not None:
            pin.marker.evaluate()  # a marker pip can evaluate
    assert pinned == locked, set(pinned) ^ set(locked)


def test_environment_yml_is_what_make_pins_writes():
    uv = PROJECT_ROOT / ".venv" / "bin" / "uv"
    if not uv.exists():
        pytest.skip("uv is not installed in .venv (make install)")
    exported = subprocess.run(
        [str(uv), "export", "--frozen", "--extra", "dev", "--no-hashes", "--no-emit-project"]
        + ["--no-header", "--no-annotate", "--format", "requirements-txt"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert _environment()[2][:-1] == [line for line in exported if line.strip()]


def test_makefile_installs_uv_only_with_verified_hashes():
    """pip refuses a uv wheel whose SHA-256 is not one of those listed (--require-hashes)."""
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M).group(1)
    block = re.search(r"^UV_SHA256 := \\\n((?:\t[0-9a-f]{64}(?: \\)?\n)+)", makefile, re.M)
    hashes = re.findall(r"[0-9a-f]{64}", block.group(1))
    assert len(hashes) >= 4 and len(set(hashes)) == len(hashes)  # Linux and macOS at least
    commands = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", "pyproject.toml", "install"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requirement = re.search(r'echo "(uv==[^"]+)" > (\S+)', commands)
    assert requirement.group(1) == f"uv=={version} " + " ".join(
        f"--hash=sha256:{h}" for h in hashes
    )
    install = re.search(r"pip install .*?-r (\S+)", commands.replace("\\\n", " "), re.S)
    assert install.group(1) == requirement.group(2)
    assert "--require-hashes" in install.group(0) and "--only-binary :all:" in install.group(0)
    assert re.search(r"pip install [^\n]*uv==", commands) is None  # never unverified


@pytest.mark.slow
def test_make_report_with_spaces_in_every_path(small_study_master, tmp_path):
    """`make report DATA="my data/study" OUT="my reports" PARAMS="my params.yaml"`, for real."""
    data = Path(shutil.copytree(small_study_master, tmp_path / "my data" / "the study"))
    params = tmp_path / "my params" / "quick run.yaml"
    params.parent.mkdir()
    params.write_text("bootstrap_draws: 20\n")
    out = tmp_path / "my reports"
    result = subprocess.run(
        ["make", "--no-print-directory", "report", f"DATA={data}", f"OUT={out}"]
        + [f"PARAMS={params}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    run = (out / "latest").resolve()
    assert (run / "index.html").is_file() and run.parent == out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "the study"
    assert manifest["parameters"]["bootstrap_draws"] == 20


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


#: The layers of ``analysis``, lowest first: a module may import its own layer and those before it.
LAYERS = ("data", "measures", "models", "report", "studies")


def _imports_of_analysis() -> dict[str, set[str]]:
    """Each module of ``analysis`` (dotted) and the ``analysis`` modules it imports, anywhere."""
    import ast

    package = PROJECT_ROOT / "analysis"
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("analysis")
            ):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    as_module = package.parent / Path(*candidate.split("."))
                    is_module = as_module.with_suffix(".py").exists() or as_module.is_dir()
                    imported.add(candidate if is_module else node.module)
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name.startswith("analysis")}
        graph[module] = imported - {module}
    return graph


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    loose = [
        m
        for m in _imports_of_analysis()
        if _layer(m) is None and m not in ("analysis", "analysis.__main__")
    ]
    assert loose == [], f"modules outside data/measures/models/report/studies: {loose}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} → {target}"
        for module, targets in _imports_of_analysis().items()
        for target in targets
        if _layer(module) is not None
        and _layer(target) is not None
        and _layer(target) > _layer(module)
    ]
    assert upward == [], "upward imports:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    graph = _imports_of_analysis()
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" → ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


# numpydoc's section headings; each stands alone on its line with a dashed underline of its length
NUMPYDOC_SECTIONS = (
    "Parameters",
    "Returns",
    "Yields",
    "Raises",
    "Warns",
    "See Also",
    "Notes",
    "References",
    "Examples",
    "Attributes",
    "Methods",
)
# Google style ("Args:" on a line of its own) and reST field lists (":param x:", ":returns:")
OTHER_DOCSTRING_FORMATS = re.compile(
    r"^\s*(Args|Arguments|Keyword Args|Returns|Return|Yields|Raises|Examples?|Attributes|"
    r"Notes?|References|Parameters|See Also):\s*$"
    r"|^\s*:(param|parameter|arg|key|keyword|type|returns?|rtype|raises?|except|yields?)\b",
    re.MULTILINE,
)


def _docstrings_of_analysis():
    """(where, name, docstring, public) for every module, class and function in analysis/."""
    import ast

    for path in sorted((PROJECT_ROOT / "analysis").rglob("*.py")):
        where = path.relative_to(PROJECT_ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        yield where, "module", ast.get_docstring(tree, clean=True), True
        # module-level definitions and the methods of module-level classes
        nodes = [(node, None) for node in tree.body]
        nodes += [
            (child, node)
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            for child in node.body
        ]
        for node, owner in nodes:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            name = node.name if owner is None else f"{owner.name}.{node.name}"
            public = not any(part.startswith("_") for part in name.split("."))
            overload = any(
                isinstance(d, ast.Attribute | ast.Name)
                and getattr(d, "attr", getattr(d, "id", "")) in ("overload", "setter", "deleter")
                for d in getattr(node, "decorator_list", [])
            )
            if not overload:
                yield where, name, ast.get_docstring(node, clean=True), public


def test_every_public_module_class_and_function_has_a_docstring():
    missing = [
        f"{where}: {name}"
        for where, name, docstring, public in _docstrings_of_analysis()
        if public and not (docstring or "").strip()
    ]
    assert missing == [], "no docstring:\n" + "\n".join(missing)


def test_docstrings_use_numpydoc_only():
    """One format: numpydoc. No Google-style ``Args:`` lines, no reST ``:param:`` fields, and
    every section heading (``References`` above all) underlined with dashes of its length."""
    problems = []
    for where, name, docstring, _ in _docstrings_of_analysis():
        if not docstring:
            continue
        other = OTHER_DOCSTRING_FORMATS.search(docstring)
        if other:
            problems.append(f"{where}: {name}: {other.group(0).strip()!r} is not numpydoc")
        lines = docstring.splitlines()
        for i, line in enumerate(lines):
            if line.strip() not in NUMPYDOC_SECTIONS:
                continue
            following = lines[i + 1] if i + 1 < len(lines) else ""
            indent = len(line) - len(line.lstrip())
            if following.strip() and len(following) - len(following.lstrip()) > indent:
                continue  # a type named like a section ("Parameters" returned), then its text
            underline = following.strip()
            if underline != "-" * len(line.strip()):
                problems.append(
                    f"{where}: {name}: section {line.strip()!r} lacks its underline "
                    f"{'-' * len(line.strip())!r}"
                )
    assert problems == [], "docstrings in another format:\n" + "\n".join(problems)


def _make_lab(*args: str) -> list[str]:
    """The `make lab` command line, without remaking the environment or the sample."""
    return [
        "make",
        "--no-print-directory",
        "-o",
        ".venv/.installed-inside-out",
        "-o",
        "data/sample/.complete",
        *args,
        "lab",
    ]


def test_make_lab_opens_the_project_kernel_and_runs_as_root_only_with_allow_root():
    import os

    result = subprocess.run(
        _make_lab("-n"), cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    command = result.stdout.strip().splitlines()[-1].split()
    assert command[:3] == [".venv/bin/jupyter", "lab", "notebooks/"]
    assert "--MappingKernelManager.default_kernel_name=inside-out" in command
    # jupyter refuses root without it; nobody else needs it
    assert ("--allow-root" in command) == (os.getuid() == 0)
    extra = subprocess.run(
        [*_make_lab("-n"), "LAB_ARGS=--no-browser --port=0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert extra.stdout.strip().endswith("--no-browser --port=0")


@pytest.mark.slow
def test_make_lab_starts_jupyterlab_with_the_project_kernel_as_default(tmp_path):
    """`make lab` for real, as whoever runs the tests (root in a container): the server comes
    up, and its kernelspec API names the project's kernel as the default."""
    import os
    import signal
    import time
    import urllib.error
    import urllib.request

    server = subprocess.Popen(
        [*_make_lab(), "LAB_ARGS=--no-browser --port=0 --ServerApp.port_retries=0"],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)},
        start_new_session=True,  # make, its shell and jupyter stop together
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break  # jupyter exited: its reason is on stderr
            found = re.search(r"(http://127\.0\.0\.1:\d+/)lab\?token=(\w+)", line)
            if found:
                url = found.groups()
        assert url is not None, f"jupyter lab did not come up (exit {server.poll()})"
        base, token = url
        specs = None
        while specs is None:  # the URL is logged a moment before the server listens
            try:
                with urllib.request.urlopen(
                    f"{base}api/kernelspecs?token={token}", timeout=10
                ) as r:
                    specs = json.load(r)
            except urllib.error.URLError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert specs["default"] == "inside-out"
        assert "inside-out" in specs["kernelspecs"]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server.stderr.close()
