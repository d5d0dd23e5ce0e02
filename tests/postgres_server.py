"""A throwaway PostgreSQL server for the tests, and a loader that puts a study into it.

The server is Debian's ``postgresql`` (``make postgres`` installs it; Debian keeps its programs
off PATH, in ``/usr/lib/postgresql/<version>/bin``). Each test session gets its own cluster in
a temporary folder: ``initdb`` with trust authentication, ``fsync`` off (a test database need
not survive a power cut), listening on 127.0.0.1 at a free port and on a Unix socket in the same
short folder. PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` user (``runuser``), which owns the folder. At the end the server stops and the
folder goes, also when a test failed.

``load_study`` creates the contract's tables (``analysis.data.contract``) in a database and
copies a dataset folder into them with ``COPY``, as a warehouse would hold them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from analysis.data.contract import OPTIONAL_TABLE_NAMES, TABLE_NAMES, table_specs
from analysis.data.load import Dataset, load_dataset

#: Where Debian installs each PostgreSQL version's server programs.
DEBIAN_PREFIX = Path("/usr/lib/postgresql")
MISSING = (
    "PostgreSQL's server programs (initdb, pg_ctl) are not installed: `make test` installs "
    "Debian's postgresql (or run `make postgres`)"
)
#: The database user the tests connect as (trust authentication, no password).
TEST_USER = "inside_out"
TEST_DATABASE = "inside_out"
# A Unix socket's path must fit sockaddr_un.sun_path: 108 bytes with its final NUL.
SOCKET_PATH_MAX = 107
# The contract's column kinds as PostgreSQL types: a warehouse keeps identifiers as text (leading
# zeros matter), calendar dates as date and answers as integers.
SQL_TYPES = {"id": "text", "text": "text", "date": "date", "bool": "boolean", "int": "integer"}


def postgres_bindir() -> Path | None:
    """The folder of PostgreSQL's server programs, or ``None`` when they are not installed.

    Returns
    -------
    Path or None
        The folder of ``initdb`` on PATH if there is one (a user's own installation), else
        the newest Debian version's ``/usr/lib/postgresql/<version>/bin``; no version is
        assumed.
    """
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent

    def version(initdb: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", initdb.parent.parent.name))

    installed = sorted(DEBIAN_PREFIX.glob("*/bin/initdb"), key=version)
    return installed[-1].parent if installed else None


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account that runs the server when the tests run as root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root, but there is no 'postgres' or 'nobody' user to run as")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the server may lose a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str], account: pwd.struct_passwd | None, cwd: Path) -> None:
    """Run one server program, as ``account`` when given; its output is shown if it fails."""
    if account is not None:
        command = ["runuser", "-u", account.pw_name, "--", *command]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def _short_temporary_folder() -> Path:
    """A new private folder whose socket path stays under the limit (TMPDIR may be long)."""
    base = tempfile.gettempdir()
    socket_file = "/.s.PGSQL.65535"
    if len(os.fsencode(base)) + len("/inside-out-pg-XXXXXXXX") + len(socket_file) > SOCKET_PATH_MAX:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="inside-out-pg-", dir=base))


@contextlib.contextmanager
def postgres_server(bindir: Path, attempts: int = 3) -> Iterator[str]:
    """Start a throwaway PostgreSQL cluster with one empty database; stop and delete it after.

    Parameters
    ----------
    bindir : Path
        The server's programs (``postgres_bindir``).
    attempts : int
        Ports to try: another process may take the free port before the server binds it.

    Yields
    ------
    str
        ``postgresql://inside_out@127.0.0.1:<port>/inside_out``, for psycopg and
        ``ibis.postgres.connect`` alike.
    """
    account = _server_account()
    root = _short_temporary_folder()
    data, log = root / "data", root / "server.log"
    try:
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        # C locale: text sorts by code point, as Python sorts it; -N: no fsync of the files.
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                TEST_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-N",
            ],
            account,
            root,
        )
        settings = data / "postgresql.conf"
        base_settings = settings.read_text()
        for attempt in range(attempts):
            port = _free_port()
            # Appended, not passed with -o: a folder's name may hold spaces. A later line wins.
            settings.write_text(
                base_settings
                + f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                + f"unix_socket_directories = '{root}'\n"
                + "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
            try:
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
                    + ["-s", "start"],
                    account,
                    root,
                )
            except RuntimeError as error:
                server_log = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" in server_log and attempt + 1 < attempts:
                    continue
                raise RuntimeError(f"{error}\nserver log:\n{server_log}") from None
            break
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", TEST_USER]
            + [TEST_DATABASE],
            check=True,
            capture_output=True,
            timeout=60,
        )
        yield f"postgresql://{TEST_USER}@127.0.0.1:{port}/{TEST_DATABASE}"
    finally:
        try:
            # also after a failed start: pg_ctl may give up waiting on a server that runs on
            if (data / "postmaster.pid").exists():
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-s", "stop"],
                    account,
                    root,
                )
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A session's own PostgreSQL server: the URL of its empty database.

    Without the server's programs the test is skipped, or fails under ``CI=true``, where
    ``make test`` should have installed them.
    """
    bindir = postgres_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    with postgres_server(bindir) as url:
        yield url


def _copy_values(frame: pd.DataFrame, kinds: dict[str, str]) -> list[list]:
    """Each column as Python values psycopg adapts: ``None`` for missing, dates as dates."""
    columns = []
    for name in frame.columns:
        values = frame[name]
        missing = values.isna().to_numpy()
        if kinds[name] == "date":
            values = values.dt.date
        objects = values.to_numpy(dtype=object)
        convert = int if kinds[name] == "int" else (lambda value: value)
        columns.append([None if m else convert(v) for v, m in zip(objects, missing, strict=True)])
    return columns


def table_columns(dataset: Dataset) -> dict[str, dict[str, str]]:
    """The contract's kind of every column of every table the dataset holds.

    Parameters
    ----------
    dataset : Dataset
        A validated dataset (``load_dataset``).

    Returns
    -------
    dict of str to dict of str to str
        ``{table: {column: kind}}`` in the tables' column order; a column the contract does
        not know (kept by the loader) is ``"text"``.
    """
    specs = table_specs(dataset.instrument)
    kinds = {}
    for name, frame in dataset.tables().items():
        known = {c.name: c.kind for c in specs[name].columns}
        kinds[name] = {column: known.get(column, "text") for column in frame.columns}
    return kinds


def load_study(url: str, directory: Path | str) -> dict[str, int]:
    """Create the contract's tables in a PostgreSQL database and copy a dataset folder into them.

    Parameters
    ----------
    url : str
        A ``postgresql://`` URL of the database (``postgres_url``); tables already there with
        the contract's names are replaced.
    directory : Path or str
        A valid dataset folder, read and checked by ``analysis.data.load.load_dataset``.

    Returns
    -------
    dict of str to int
        The rows copied into each table present: the required tables, then the optional
        ones the folder holds.

    Notes
    -----
    Identifiers are ``text`` (leading zeros kept), dates ``date``, scores and items
    ``integer``, ``customer_facing`` ``boolean``; a column that must not be missing is
    ``NOT NULL``. Rows go in with ``COPY ... FROM STDIN``, the bulk path of PostgreSQL.
    """
    import psycopg
    from psycopg import sql

    dataset = load_dataset(directory)
    kinds = table_columns(dataset)
    specs = table_specs(dataset.instrument)
    copied = {}
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        for name in (*TABLE_NAMES, *OPTIONAL_TABLE_NAMES):
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        for name, frame in dataset.tables().items():
            required = {c.name for c in specs[name].columns if not c.nullable}
            definitions = [
                sql.SQL("{} {}{}").format(
                    sql.Identifier(column),
                    sql.SQL(SQL_TYPES[kind]),
                    sql.SQL(" NOT NULL" if column in required else ""),
                )
                for column, kind in kinds[name].items()
            ]
            table = sql.Identifier(name)
            cursor.execute(
                sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(definitions))
            )
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                table, sql.SQL(", ").join(map(sql.Identifier, frame.columns))
            )
            with cursor.copy(statement) as copy:
                for row in zip(*_copy_values(frame, kinds[name]), strict=True):
                    copy.write_row(row)
            copied[name] = len(frame)
    return copied
