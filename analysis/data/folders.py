"""Where the kit may write, and how: owned folders, atomic replacement, run folders, disk errors.

Every command that writes a folder asks this module first, before any work starts:

* ``check_replaceable`` for a folder that a run replaces as a whole (``synth --out``,
  ``estimate --out``, ``import``, every ``write_tables``);
* ``check_run_root`` for a folder that collects run folders (``report --out``,
  ``calibrate --out``).

Both accept only a path that does not exist yet, an empty folder, or a folder that the kit
itself wrote, as the marker file ``.inside-out`` inside it shows. The marker of a replaceable
folder lists the files the kit wrote there; a file it does not list is a user's, and the folder
is then refused rather than replaced. The dataset being read, anything inside it or above it,
the working folder and the folders above it, and the repository are always refused. A refusal
is an ``OutputError`` (exit status 2) whose message says why and what to do; nothing has been
created by then.

Replacing a folder is atomic: the new one is written completely in a hidden sibling, then the
two are exchanged in one step (``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere the old one is
renamed aside, the new one renamed in, and the old one put back if that fails), and only then is
the old one removed. A disk that is full, read-only or not writable is a ``StorageError`` (exit
status 3) naming the path and the free space, never "a bug".

Run folders (``reserve_run``) are reserved with an exclusive ``mkdir``, so two runs started in
the same second get distinct ids; ``latest`` is a symbolic link the kit owns and never a folder
it would follow or delete; failed runs are kept as ``.failed-<run-id>``, the last
``KEEP_FAILED`` of them.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from analysis import PROJECT_ROOT, __version__

MARKER = ".inside-out"
#: Files the kit writes into its own folders besides those a marker lists: the Makefile's stamp
#: that ``make data`` finished (``data/sample/.complete``).
KIT_STAMPS = frozenset({".complete"})
KEEP_FAILED = 3
LATEST = "latest"
RUN_ID = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<suffix>\d+))?")

PROJECT_REPORTS = PROJECT_ROOT / "reports"
WHAT = {
    "dataset": "a dataset written by `synth` or `import`",
    "results": "result tables written by `estimate`",
    "reports": "a reports folder (report runs)",
    "calibration": "a calibration-study folder (calibrate runs)",
    "tables": "tables written by Inside Out",
}
# What an earlier version, which wrote no marker, wrote as each kind of folder: a folder holding
# one of the first names and nothing but the second is accepted as the kit's (and then replaced).
_TABLES = ("units", "employee_survey", "customers", "customer_nps")
_RESULTS = ("estimates", "drivers", "unit_wave", "nps_by_engagement_quartile")
BEFORE_MARKERS = {
    "dataset": (
        {"truth.json"},
        {"truth.json", *KIT_STAMPS, *(f"{t}.{x}" for t in _TABLES for x in ("csv", "parquet"))},
    ),
    "results": (
        {"manifest.json", "results_key.json"},
        {"manifest.json", "results_key.json", *(f"{t}.csv" for t in _RESULTS)},
    ),
}
# Errors of the disk or its permissions rather than of the kit: exit status 3.
FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
NOT_PERMITTED = frozenset({errno.EACCES, errno.EPERM})


class OutputError(ValueError):
    """The output location is refused: the message says why and what to do (exit status 2)."""


class StorageError(OSError):
    """The disk refused a write: full, read-only or not permitted (exit status 3)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: clean up, publish nothing half-done."""


# --------------------------------------------------------------------------------------------
# Checking an output location


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _absolute(path: Path | str) -> Path:
    """The path made absolute with its parent resolved, the last component kept as given."""
    path = Path(path).expanduser()
    if str(path) in ("", "."):
        return Path.cwd().resolve()
    parent = path.absolute().parent.resolve()
    return parent / path.name if path.name not in ("", ".", "..") else path.resolve()


def _refuse_relations(target: Path, inputs: Iterable[Path | str], role: str) -> None:
    """The locations no command may write to, whatever they hold."""
    cwd = Path.cwd().resolve()
    if target == Path(target.anchor):
        raise OutputError(f"{role} {target} is the root of the file system. Name a new folder.")
    if _within(cwd, target):
        where = (
            "the folder you are working in"
            if target == cwd
            else "a folder above the one you are working in"
        )
        raise OutputError(
            f"{role} {target} is {where}; writing there could delete your files. "
            "Name a new folder inside it instead, e.g. `--out results`."
        )
    if _within(PROJECT_ROOT, target):
        what = "the Inside Out repository" if target == PROJECT_ROOT else "above the repository"
        raise OutputError(
            f"{role} {target} is {what}. "
            "Name a new folder, e.g. `--out reports` or `--out results/first-run`."
        )
    for given in inputs:
        data = Path(given).expanduser().resolve()
        if target == data:
            why = "is the dataset being read (--data)"
        elif data in target.parents:
            why = f"is inside the dataset being read ({data})"
        elif target in data.parents:
            why = f"holds the dataset being read ({data})"
        else:
            continue
        raise OutputError(
            f"{role} {target} {why}; input files are only ever read. "
            "Name a new folder outside the dataset for the output."
        )


def _marker(folder: Path) -> dict | None:
    path = folder / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("written_by") == "Inside Out" else None


def _listing(names: Iterable[str], limit: int = 3) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe_writable(folder: Path) -> None:
    """Create and remove a folder where the output's folder will be made: fail early, cleanly."""
    place = _nearest_existing(folder)
    if not place.is_dir():
        raise OutputError(f"cannot create {folder}: {place} is a file, not a folder.")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f"{MARKER}-probe-", dir=place))
    except OSError as error:
        if is_storage_error(error, place):  # name the folder asked for, not the probe
            raise storage_error(OSError(error.errno, error.strerror), folder) from None
        raise OutputError(f"cannot create {folder}: {error.strerror}.") from None


def check_replaceable(
    path: Path | str, kind: str, *, inputs: Iterable[Path | str] = (), role: str = "output folder"
) -> Path:
    """Accept ``path`` as a folder that a run writes as a whole, or raise ``OutputError``.

    Accepted: a path that does not exist yet, an empty folder, or a folder whose marker says the
    kit wrote it as this ``kind`` and that holds nothing the marker does not list. A folder that
    an earlier version wrote, before markers, is recognised by its files (``BEFORE_MARKERS``):
    ``truth.json`` beside the four tables, or ``manifest.json`` beside the result tables, and
    nothing else. Creates nothing (the write probe is removed at once).

    Parameters
    ----------
    path : path-like
        The folder the run will replace.
    kind : str
        What the run writes there, a key of ``WHAT`` (``"dataset"``, ``"results"`` …).
    inputs : iterable of path-like
        The datasets the run reads; the output may not be one of them, inside or above them.
    role : str
        How messages name the folder.

    Returns
    -------
    Path
        The absolute path.

    Raises
    ------
    OutputError
        If the location is refused; the message says why and what to do.
    StorageError
        If the disk there cannot be written.
    """
    given = Path(path).expanduser()
    if given.is_symlink():
        raise OutputError(
            f"{role} {given} is a symbolic link; Inside Out does not replace links or what "
            "they point to. Name the real folder, or a new one."
        )
    target = _absolute(given)
    _refuse_relations(target, inputs, role)
    if target.exists():
        if not target.is_dir():
            raise OutputError(
                f"{role} {target} is a file, not a folder; it was not touched. "
                "Name a new folder for the output."
            )
        entries = {p.name for p in target.iterdir()}
        signature, names = BEFORE_MARKERS.get(kind, (set(), set()))
        written_before_markers = bool(entries & signature) and entries <= names
        if entries and not written_before_markers:
            marker = _marker(target)
            if marker is None:
                raise OutputError(
                    f"{role} {target} holds files that Inside Out did not write "
                    f"({_listing(entries)}), so it will not replace it. Name a new or empty "
                    "folder, or move those files away first."
                )
            if marker.get("kind") != kind:
                raise OutputError(
                    f"{role} {target} holds {WHAT.get(marker.get('kind'), 'other output')}, not "
                    f"{WHAT.get(kind, kind)}; it will not be replaced. Name another folder."
                )
            foreign = entries - set(marker.get("files", ())) - {MARKER} - KIT_STAMPS
            if foreign:
                raise OutputError(
                    f"{role} {target} was written by Inside Out but now also holds "
                    f"{_listing(foreign)}, which it did not write; replacing the folder would "
                    "delete them. Move them away, or name another folder."
                )
    probe_writable(target.parent)
    return target


def _legacy_run_root(root: Path) -> bool:
    """A reports folder of an earlier version: only runs, ``latest`` and run leftovers."""
    for entry in root.iterdir():
        name = entry.name
        if entry.is_symlink():
            if name == LATEST or name.startswith(f".{LATEST}-"):
                continue
            return False
        for prefix in ("", ".failed-", ".partial-"):
            if name.startswith(prefix) and RUN_ID.fullmatch(name[len(prefix) :]):
                break
        else:
            return False
        if not entry.is_dir() or (prefix == "" and not (entry / "manifest.json").is_file()):
            return False
    return True


def check_run_root(path: Path | str, kind: str, *, inputs: Iterable[Path | str] = ()) -> Path:
    """Accept ``path`` as a folder collecting run folders, or raise ``OutputError``.

    Accepted: a new path, an empty folder, a folder whose marker says it holds runs of this
    ``kind``, a reports folder of an earlier version (only run folders with their
    ``manifest.json``, ``latest`` and ``.failed-``/``.partial-`` runs), and the repository's own
    ``reports/`` folder, which is the kit's by design (its README describes it and git ignores
    everything else in it). A ``latest`` that is not a link is refused: it is never followed or
    deleted. The folder itself may be a link (to another disk, say). Creates nothing.

    Parameters
    ----------
    path : path-like
        The folder that collects the runs.
    kind : str
        ``"reports"`` or ``"calibration"``.
    inputs : iterable of path-like
        The datasets the run reads.

    Returns
    -------
    Path
        The resolved path.

    Raises
    ------
    OutputError
        If the location is refused.
    StorageError
        If the disk there cannot be written.
    """
    root = Path(path).expanduser().resolve()
    role = "reports folder" if kind == "reports" else "output folder"
    _refuse_relations(root, inputs, role)
    if root.exists():
        if not root.is_dir():
            raise OutputError(f"{role} {root} is a file, not a folder. Name a folder for runs.")
        marker = _marker(root)
        if marker is not None and marker.get("kind") != kind:
            raise OutputError(
                f"{role} {root} holds {WHAT.get(marker.get('kind'), 'other output')}, not "
                f"{WHAT.get(kind, kind)}. Name another folder."
            )
        latest = root / LATEST
        if os.path.lexists(latest) and not latest.is_symlink():
            raise OutputError(
                f"{latest} is a real {'folder' if latest.is_dir() else 'file'}, not the link "
                "Inside Out keeps there to the newest run; it was not touched. Rename or move "
                "it, then run again."
            )
        owned = (
            marker is not None
            or not any(root.iterdir())
            or (kind == "reports" and root == PROJECT_REPORTS.resolve())
            or _legacy_run_root(root)
        )
        if not owned:
            entries = [p.name for p in root.iterdir()]
            raise OutputError(
                f"{role} {root} holds files that Inside Out did not write "
                f"({_listing(entries)}); it keeps its runs in a folder of their own. Name a new "
                "or empty folder, e.g. `--out reports`."
            )
    probe_writable(root)
    return root


def claim_run_root(root: Path, kind: str) -> None:
    """Create the runs folder if needed and mark it as the kit's (``check_run_root`` first)."""
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
        if _marker(root) is None:
            write_marker(root, kind)


def write_marker(folder: Path, kind: str, files: Iterable[str] | None = None) -> None:
    """Say in ``folder`` that the kit wrote it: what kind of output, and which files."""
    marker = {
        "written_by": "Inside Out",
        "version": __version__,
        "kind": kind,
        "note": "Inside Out keeps its runs here: it adds run folders, moves the `latest` link "
        "and removes its own .failed-* folders beyond the last three.",
    }
    if files is not None:
        marker["note"] = (
            "Inside Out wrote this folder and may replace it on its next run. Keep your own "
            "files elsewhere: a file not listed here stops it from replacing the folder."
        )
        marker["files"] = sorted(files)
    text = json.dumps(marker, indent=2) + "\n"
    partial = folder / f"{MARKER}.{os.getpid()}.tmp"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, folder / MARKER)


# --------------------------------------------------------------------------------------------
# Replacing a folder atomically


def new_staging(target: Path) -> Path:
    """A hidden sibling of ``target`` to write the new folder into (same file system)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{MARKER[1:]}-new-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a dataset is meant to be shared
    return staging


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    path, flags = ctypes.c_char_p, ctypes.c_uint
    renameat2.argtypes = [ctypes.c_int, path, ctypes.c_int, path, flags]
    status = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def replace_folder(staging: Path, target: Path, *, exchange: bool = True) -> None:
    """Put the complete folder ``staging`` at ``target``; remove the old ``target`` afterwards.

    At every moment ``target`` holds the old folder or the new one. With ``exchange`` (the
    default, where the system offers it) the two swap in one step. Otherwise the old folder is
    renamed aside, the new one renamed in, and if that fails the old one is put back before the
    error is raised. The caller removes ``staging`` if this raises.

    Parameters
    ----------
    staging : Path
        The new folder, written completely, on the same file system as ``target``
        (:func:`new_staging`).
    target : Path
        Where it goes.
    exchange : bool
        Swap the two in one step (``renameat2(RENAME_EXCHANGE)``) where the system offers it;
        ``False`` takes the rename-aside path.
    """
    if not os.path.lexists(target):
        os.rename(staging, target)
        return
    with shielded():
        if exchange and _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # now the old folder
            return
        old = f".{target.name}.{MARKER[1:]}-old-"
        aside = Path(tempfile.mkdtemp(prefix=old, dir=target.parent))
        os.rename(target, aside)  # onto the empty folder just made: reserved, atomic
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def shielded() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM during a step that must not stop halfway; deliver them after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        if received:
            raise Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()


def discard(folder: Path) -> None:
    """Remove a staging folder, even while Ctrl-C is pressed again."""
    with shielded():
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Disk errors


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def free_space(path: Path | str) -> str:
    """Free and total space of the disk holding ``path`` (or its nearest existing parent)."""
    place = _nearest_existing(Path(path).absolute())
    try:
        usage = shutil.disk_usage(place)
    except OSError:
        return "free space unknown"
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def is_storage_error(error: BaseException, path: Path | str | None = None) -> bool:
    """A disk or permission failure on writing, rather than a fault of the kit.

    A full, over-quota or read-only disk is one wherever it is met. "Permission denied" is one
    only while writing under ``path``: reading an input the user may not read is not.

    Parameters
    ----------
    error : BaseException
        The error raised.
    path : path-like, optional
        The folder being written.

    Returns
    -------
    bool
        Whether ``error`` should become a ``StorageError`` (exit status 3).
    """
    if not isinstance(error, OSError) or isinstance(error, StorageError):
        return False
    if error.errno in FULL_OR_READ_ONLY:
        return True
    if error.errno in NOT_PERMITTED and path is not None:
        where = error.filename
        return where is None or _within(_absolute(where), _absolute(path))
    return False


def storage_error(error: OSError, path: Path | str) -> StorageError:
    """The error that names the path, the cause and the free space, and says what to do."""
    where = Path(error.filename) if error.filename else Path(path)
    cause = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "your disk quota is used up",
        errno.EROFS: "the disk is read-only",
    }.get(error.errno, "writing there is not permitted")
    message = (
        f"cannot write {where}: {cause} ({error.strerror or os.strerror(error.errno)}); "
        f"{free_space(where)}. Free some space, make the folder writable, or choose another "
        "output folder. Nothing was published."
    )
    return StorageError(error.errno, message, str(where))


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn a disk failure while writing under ``path`` into a ``StorageError``."""
    try:
        yield
    except OSError as error:
        if is_storage_error(error, path):
            raise storage_error(error, path) from None
        raise


# --------------------------------------------------------------------------------------------
# Run folders: ids, reservation, ``latest``, failed runs


def utc_now() -> dt.datetime:
    """The current time in UTC, timezone-aware: the clock run ids are taken from."""
    return dt.datetime.now(dt.UTC)


def _run_key(run_id: str) -> tuple[str, int]:
    match = RUN_ID.fullmatch(run_id)
    return (match["stamp"], int(match["suffix"] or 1)) if match else ("", 0)


def reserve_run(root: Path, clock: Callable[[], dt.datetime] = utc_now) -> tuple[Path, str]:
    """A fresh run id and its staging folder ``root/.partial-<run-id>``, created exclusively.

    The id is the UTC second, with ``-2``, ``-3``… when that second is taken. The exclusive
    ``mkdir`` reserves it: two runs started in the same second, even in two processes, get
    distinct ids, and neither can publish over the other.

    Parameters
    ----------
    root : Path
        The folder that collects the runs (checked by :func:`check_run_root`).
    clock : callable
        Returns the current time; tests pass a fixed one.

    Returns
    -------
    tuple of (Path, str)
        The staging folder, created, and the run id.
    """
    stamp = clock().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = 1
    while True:
        run_id = stamp if suffix == 1 else f"{stamp}-{suffix}"
        suffix += 1
        names = (run_id, f".failed-{run_id}")
        if any(os.path.lexists(root / n) for n in names):
            continue
        staging = root / f".partial-{run_id}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        if any(os.path.lexists(root / n) for n in names):  # published between check and mkdir
            staging.rmdir()
            continue
        return staging, run_id


def point_latest(root: Path, run_id: str) -> None:
    """Point ``root/latest`` at ``run_id`` with an atomic link swap; refuse a real ``latest``."""
    link = root / LATEST
    if os.path.lexists(link) and not link.is_symlink():
        raise OutputError(
            f"{link} is a real {'folder' if link.is_dir() else 'file'}, not the link Inside Out "
            f"keeps there; it was not touched. The new run is {root / run_id}; rename or move "
            f"{link} so that the next run can point to it."
        )
    staging_link = root / f".{LATEST}-{run_id}"
    staging_link.symlink_to(run_id, target_is_directory=True)
    os.replace(staging_link, link)


def prune_failed(root: Path, keep: int = KEEP_FAILED) -> list[Path]:
    """Remove all but the newest ``keep`` ``.failed-<run-id>`` folders; return those removed."""
    failed = [
        p
        for p in root.iterdir()
        if p.name.startswith(".failed-")
        and RUN_ID.fullmatch(p.name.removeprefix(".failed-"))
        and p.is_dir()
        and not p.is_symlink()
    ]
    failed.sort(key=lambda p: _run_key(p.name.removeprefix(".failed-")))
    removed = failed[: max(len(failed) - keep, 0)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
