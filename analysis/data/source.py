"""Open a dataset where it lives: the customer tables stay in an engine, the rest in pandas.

``load_dataset`` reads every row of every table into pandas. ``open_dataset`` is what
``estimate`` and ``report`` use: the two tables that grow with the number of customers
(``customer_nps``, ``customers``: 97% of the rows of a large study) stay in an engine, DuckDB
over the dataset's files by default, Spark, or a PostgreSQL database, and only their reductions
(``analysis.measures.reduction``) reach pandas. The tables that grow with the number of staff
(``units``, ``employee_survey``, ``headcount``, ``internal_service``) are read by the loader as
before: the staff answers feed item-level reliability, agreement and the split halves.

Validation keeps every rule and every message of the loader:

1. the staff-side tables are read and checked by the loader itself;
2. the customer tables are **screened** in the engine (``analysis.data.screen``): one pass per
   table counts the rows that may break any rule of the contract, unknown units and churn
   before the start included;
3. if the screen flags a table read from a file, the loader reads both customer tables in
   pandas (the old path) and reports what it finds there, with its row numbers and values; a
   false alarm only costs that reading, and the run goes on in pandas.

So a clean file is never read into Python, and a broken one ends in the loader's own
``DatasetError``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from analysis.data.contract import TABLE_NAMES, default_instrument, table_specs
from analysis.data.load import (
    CUSTOMER_TABLE_NAMES,
    DATABASE_URL_SCHEMES,
    Dataset,
    Problem,
    _checked_dataset,
    _default_in_effect,
    _typed_table,
    finish_reading,
    load_dataset,
    read_folder,
    read_tables,
)

if TYPE_CHECKING:
    from analysis.data.engine import Tables

#: Where ``estimate`` can run: ``pandas`` is the loader's path (every row in memory).
ENGINES = ("duckdb", "spark", "pandas")
DEFAULT_ENGINE = "duckdb"


def is_database(source: str | os.PathLike) -> bool:
    """Whether ``source`` names a database (a ``postgresql://`` URL), not a folder."""
    return os.fspath(source).startswith(DATABASE_URL_SCHEMES)


def database_name(url: str) -> str:
    """A database URL without its password, for messages and the manifest.

    Parameters
    ----------
    url : str
        ``postgresql://user:password@host:port/database?options``.

    Returns
    -------
    str
        ``postgresql://user@host:port/database`` (options dropped: they may hold secrets).
    """
    scheme, _, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    location = location.split("?", 1)[0]
    if not at:
        return f"{scheme}://{location}"
    return f"{scheme}://{credentials.split(':', 1)[0]}@{location}"


def open_dataset(
    source: str | os.PathLike,
    *,
    engine: Literal["duckdb", "spark", "pandas"] = DEFAULT_ENGINE,
    memory_limit: str = "2GB",
    temp_directory: str | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> Dataset:
    """Validate a dataset and open it with its customer tables in an engine.

    Parameters
    ----------
    source : str or path-like
        A dataset folder (as for ``load_dataset``), or a ``postgresql://`` URL of a database
        holding the contract's tables under their names.
    engine : {"duckdb", "spark", "pandas"}
        What reduces the customer tables of a folder: DuckDB (the default), Spark
        (``analysis.data.engine.open_tables``), or pandas, which is ``load_dataset``. A
        database's tables are always reduced in the database.
    memory_limit, temp_directory : str
        DuckDB's memory limit and spill folder (``open_tables``).
    progress : callable
        Called with a line of text as each step starts (the engines' own progress bars show
        on a terminal only).

    Returns
    -------
    Dataset
        As from ``load_dataset``, except that ``customer_nps`` and ``customers`` are ``None``
        and ``customer_tables`` holds them open in the engine (close it with
        ``close_dataset``). When the screen raised a false alarm the customer tables are in
        pandas and ``customer_tables`` is ``None``, as from ``load_dataset``.

    Raises
    ------
    DatasetError
        As ``load_dataset``: every problem in every table, with the loader's messages.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if is_database(source):
        return _open_database(os.fspath(source))
    if engine == "pandas":
        return load_dataset(source)
    if engine == "spark":
        from analysis.data.engine import JAVA_MISSING, java_available
        from analysis.data.parameters import ParameterError

        if not java_available():  # before any reading: a missing Java is not a bug
            raise ParameterError(f"--engine spark: {JAVA_MISSING}")
    reading = read_folder(source, leave_out=CUSTOMER_TABLE_NAMES)
    directory, files = reading.directory, reading.files
    opened = None
    flagged = True
    if all(name in files for name in CUSTOMER_TABLE_NAMES):
        from analysis.data.engine import open_tables  # Ibis loads only when it is used

        # The screen runs in DuckDB whatever reduces the tables: the folder is local (the
        # staff tables are read from it here), and Spark's reading is typed as DuckDB's is.
        progress(f"checking {', '.join(CUSTOMER_TABLE_NAMES)} against the contract (DuckDB)")
        local = open_tables(directory, memory_limit=memory_limit, temp_directory=temp_directory)
        try:
            flagged = _screened(local, reading.specs, files)
        finally:
            if engine != "duckdb" or flagged:
                local.close()
        if not flagged:
            opened = (
                local
                if engine == "duckdb"
                else open_tables(directory, engine=engine, temp_directory=temp_directory)
            )
    try:
        if flagged:
            progress(f"reading {', '.join(CUSTOMER_TABLE_NAMES)} in pandas, as the loader does")
            # the loader's own reading, for its exact messages (or a false alarm's data)
            read_tables(reading, [name for name in CUSTOMER_TABLE_NAMES if name in files])
        dataset = finish_reading(reading)
    except BaseException:
        if opened is not None:
            opened.close()
        raise
    dataset.customer_tables = opened
    return dataset


def _screened(opened: Tables, specs, files) -> bool:
    """Whether the screen flags either customer table (``analysis.data.screen``)."""
    from analysis.data.screen import screen_tables

    flags = screen_tables(opened, CUSTOMER_TABLE_NAMES, specs, files)
    return any(flags.get(name) for name in CUSTOMER_TABLE_NAMES)


def _open_database(url: str) -> Dataset:
    """A PostgreSQL database: staff tables fetched and checked, customer tables screened."""
    import psycopg

    from analysis.data.engine import open_tables
    from analysis.data.parameters import ParameterError
    from analysis.data.screen import screen_tables

    try:
        opened = open_tables(url)
    except psycopg.OperationalError as error:  # a wrong host, port, database or password
        reason = " ".join(str(error).split())
        raise ParameterError(
            f"--data {database_name(url)}: cannot connect ({reason}); check the host, port and "
            "database name, that the server is running, and that PGPASSWORD or ~/.pgpass holds "
            "the password"
        ) from error
    try:
        instrument = default_instrument()
        specs = table_specs(instrument)
        where = {name: Path(f"{name} (in the database)") for name in opened.tables}
        problems = [
            Problem(f"{name} (in the database)", None, "required table is missing")
            for name in TABLE_NAMES
            if name not in opened.tables
        ]
        tables = {}
        for name, table in opened.tables.items():
            if name in CUSTOMER_TABLE_NAMES:
                continue
            raw = table.to_pandas().reset_index(drop=True)
            tables[name], table_problems = _typed_table(raw, specs[name], where[name].name)
            problems += table_problems
        flags = screen_tables(opened, CUSTOMER_TABLE_NAMES, specs, where)
        for name in CUSTOMER_TABLE_NAMES if any(flags.values()) else ():
            if name in opened.tables:
                # no file to reread: the rows come over to be checked by the loader's rules
                raw = opened.tables[name].to_pandas().reset_index(drop=True)
                tables[name], table_problems = _typed_table(raw, specs[name], where[name].name)
                problems += table_problems
        instrument = _default_in_effect(tables.get("employee_survey"))
        dataset = _checked_dataset(database_name(url), tables, where, instrument, problems)
    except BaseException:
        opened.close()
        raise
    if all(name in tables for name in CUSTOMER_TABLE_NAMES):
        opened.close()  # a false alarm: everything is in pandas
    else:
        dataset.customer_tables = opened
    return dataset


def close_dataset(dataset: Dataset) -> None:
    """Close the engine holding a dataset's customer tables, if one does."""
    if dataset.customer_tables is not None:
        dataset.customer_tables.close()
        dataset.customer_tables = None
