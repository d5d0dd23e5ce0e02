"""The dataset's tables as engine tables: DuckDB over the files, or a PostgreSQL database.

``analysis.data.load`` reads every raw row into pandas. Here the same tables stay where they
are and become Ibis tables, so that a reduction (``analysis.measures.reduction``) runs inside
the engine and only its result reaches pandas:

* a dataset **folder** (the contract's tables as ``NAME.csv`` or ``NAME.parquet``, found by
  ``analysis.data.load.find_table_files``) is opened in an in-process DuckDB, one typed view per
  table over ``read_csv`` or ``read_parquet``; DuckDB streams the files and spills to
  ``temp_directory`` beyond ``memory_limit``, so memory does not grow with the number of rows;
* the same folder with ``engine="spark"`` is read by Apache Spark through PySpark
  (``ibis.pyspark.connect``), one typed temporary view per table; by default a local session
  (``local[2]``), or the cluster whose master URL is given (``spark_master`` or the
  ``INSIDE_OUT_SPARK_MASTER`` environment variable);
* a ``postgresql://`` **URL** is opened through Ibis' PostgreSQL backend, and the contract's
  tables of that database are used as they are (the database's column types are its own).

The views type each column as the loader does (``data/README.md``): identifiers are text,
stripped, never numbers (``007`` stays ``007``; a Parquet id stored as a number becomes its
digits), dates are calendar dates (a timestamp's date part as written, in its own offset),
integers are whole numbers and booleans ``true``/``false``. A cell that cannot be read becomes
missing here; reporting it is the validation's job, which runs before any reduction. Both file
engines apply the same rules, DuckDB in SQL and Spark through PySpark's column functions.
"""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb
import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.data.contract import ColumnSpec, TableSpec, default_instrument, table_specs
from analysis.data.load import (
    DATABASE_URL_SCHEMES,
    INSTRUMENT_FILE,
    ISO_DATE_OR_TIMESTAMP,
    find_table_files,
    load_instrument,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

POSTGRES_SCHEMES = DATABASE_URL_SCHEMES

# Characters an identifier loses at either end, as Python's str.strip() in the loader does for
# the whitespace that occurs in exported files.
_WHITESPACE = " \t\n\r\x0b\x0c"

ENGINES = ("duckdb", "spark")
# Where a user names the Spark master (a cluster's URL) without changing the code that calls
# open_tables; the local default runs Spark inside this machine, on its two cores.
SPARK_MASTER_VARIABLE = "INSIDE_OUT_SPARK_MASTER"
SPARK_LOCAL_MASTER = "local[2]"
# Measured on a 2-core, 24 GiB machine (performance notes, "Engines"): a 2 GB driver and four
# shuffle partitions (Spark's 200 would make 200 tiny tasks of a few thousand rows each).
SPARK_LOCAL_SETTINGS = {
    "spark.driver.memory": "2g",
    "spark.sql.shuffle.partitions": "4",
}
SPARK_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # ANSI SQL (a bad cast raises) is Spark 4's default; kept explicit, as the typing relies on
    # try_cast for every cast that could fail.
    "spark.sql.ansi.enabled": "true",
    # Results and the small wave tables cross to and from pandas as Arrow batches, not pickled
    # rows: halved the reduction's time on the sample (falls back by itself where unsupported).
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
JAVA_MISSING = (
    "Spark needs Java, which was not found (no java on PATH and no JAVA_HOME): "
    "`make java` installs Debian's openjdk-17-jre-headless (`make test` does it too)"
)
_view_numbers = itertools.count(1)


@dataclass
class Tables:
    """The contract's tables of one dataset, open in one engine.

    Attributes
    ----------
    backend : ibis.BaseBackend
        The Ibis connection (DuckDB in-process, or PostgreSQL).
    tables : dict of str to ibis.Table
        Each contract table present, by name (``units``, ``employee_survey``, ``customer_nps``,
        ``customers``, then ``headcount`` and ``internal_service`` when present).
    unreadable : dict of str to str
        Tables of a DuckDB folder whose file could not even be opened as a view (a header
        row that is not UTF-8 or not CSV, an empty file), by name, with the error; they are
        absent from ``tables``. The validation (``analysis.data.load``) says what is wrong.
    """

    backend: ibis.BaseBackend
    tables: dict[str, ibis.Table] = field(default_factory=dict)
    on_close: Callable[[], None] | None = field(default=None, repr=False)
    unreadable: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Close the connection (an in-process DuckDB frees its memory and spill files).

        A Spark session that ``open_tables`` started is stopped; one that was already running
        (another caller's) only loses the temporary views of these tables.
        """
        if self.on_close is not None:
            self.on_close()
        else:
            self.backend.disconnect()

    def __enter__(self) -> Tables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_tables(
    source: str | os.PathLike,
    *,
    engine: Literal["duckdb", "spark"] = "duckdb",
    memory_limit: str = "2GB",
    temp_directory: str | None = None,
    spark_master: str | None = None,
) -> Tables:
    """Open a dataset's tables in an engine, without reading them into Python.

    Parameters
    ----------
    source : str or path-like
        A dataset folder, or a ``postgresql://user@host/database`` URL of a database holding
        the contract's tables under their contract names.
    engine : {"duckdb", "spark"}
        What reads a dataset folder: an in-process DuckDB (the default), or Apache Spark
        through PySpark. A ``postgresql://`` source always runs in PostgreSQL.
    memory_limit : str
        DuckDB's memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk. Unused for
        PostgreSQL, whose memory is the server's, and for Spark (a local driver gets 2 GB).
    temp_directory : str, optional
        Where DuckDB spills; DuckDB's default (``<database>.tmp`` or ``.tmp`` in the working
        folder) when ``None``. For Spark, its ``spark.local.dir`` (shuffle and spill files).
    spark_master : str, optional
        The Spark master URL, e.g. ``spark://host:7077``, ``yarn`` or ``k8s://https://host``;
        when ``None``, the ``INSIDE_OUT_SPARK_MASTER`` environment variable, else
        ``local[2]`` (Spark inside this process's machine). Every executor must see the
        dataset folder at the same path (a shared file system, or e.g. an ``s3a://`` folder
        the cluster can read). If a Spark session is already running (a notebook on a
        cluster, or ``start_spark``), it is used as it is and this is ignored.

    Returns
    -------
    Tables
        The backend and the tables present. Close it (or use it as a context manager).

    Raises
    ------
    FileNotFoundError
        If ``source`` is neither a URL nor an existing folder.
    ValueError
        If ``engine`` is not one of ``ENGINES``, or is ``"spark"`` for a PostgreSQL URL.
    RuntimeError
        If Spark is asked for and no Java is found (``make java`` installs it).

    Notes
    -----
    DuckDB's progress bar is shown only when standard error is a terminal, so CI logs stay
    quiet; a local Spark session has no web UI, no console progress and logs errors only.
    Missing tables are simply absent from ``tables``: whether that is allowed is the
    validation's rule (``find_table_files`` reports it). So is a file DuckDB cannot even open
    as a view (a header row that is not UTF-8, an empty file): it is named, with the error, in
    ``Tables.unreadable``, and ``analysis.data.screen`` flags it.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    text = os.fspath(source)
    if text.startswith(POSTGRES_SCHEMES):
        if engine != "duckdb":
            raise ValueError("a postgresql:// source runs in PostgreSQL; leave engine unset")
        return _open_postgres(text)
    directory = Path(text)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a dataset folder")
    if engine == "spark":
        return _open_spark(directory, spark_master, temp_directory)
    config = {"memory_limit": memory_limit}
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    backend = ibis.duckdb.connect(**config)
    try:
        # Dates are calendar dates; a session time zone other than UTC would shift a Parquet
        # instant's date, so it is fixed.
        backend.raw_sql("SET TimeZone = 'UTC'")
        _progress_bar(backend, sys.stderr.isatty())
        specs = _specs(directory)
        files, _problems = find_table_files(directory)
        tables, unreadable = {}, {}
        for name, path in files.items():
            try:
                select = _typed_select(backend, path, specs[name])
                backend.raw_sql(f"CREATE OR REPLACE VIEW {_quote(name)} AS {select}")
            except (UnicodeDecodeError, csv.Error, OSError, duckdb.Error) as error:
                # a broken file is the validation's to report, with its message; opening the
                # folder does not fail on it
                unreadable[name] = f"{type(error).__name__}: {error}"
                continue
            tables[name] = backend.table(name)
    except BaseException:
        backend.disconnect()
        raise
    return Tables(backend, tables, unreadable=unreadable)


def _progress_bar(backend: ibis.BaseBackend, wanted: bool) -> None:
    """DuckDB's progress bar on a terminal only, where it can be drawn.

    In a Jupyter kernel (a report's notebook) DuckDB refuses any change of the setting without
    ``ipywidgets``, whatever the value asked for; there the bar is left as DuckDB has it, which
    draws nothing in a kernel without widgets.
    """
    import duckdb

    try:
        backend.raw_sql(f"SET enable_progress_bar = {str(wanted).lower()}")
    except duckdb.InvalidInputException as error:
        if "ipywidgets" not in str(error):
            raise


def _open_postgres(url: str) -> Tables:
    """The contract's tables of the PostgreSQL database at ``url``."""
    backend = ibis.connect(url)
    present = set(backend.list_tables())
    names = [n for n in table_specs(default_instrument()) if n in present]
    return Tables(backend, {name: backend.table(name) for name in names})


def _specs(directory: Path) -> dict[str, TableSpec]:
    """Each table's contract columns, the survey's items as the loader types them."""
    if not (directory / INSTRUMENT_FILE).exists():
        return table_specs(default_instrument())
    instrument, _problems = load_instrument(directory)  # a broken one types no item columns
    return table_specs(instrument)


def _quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _csv_header(path: Path) -> list[str]:
    """The header row of a CSV file, read as the loader reads it (UTF-8, optional BOM)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), None) or []


def raw_source(
    backend: ibis.BaseBackend, path: Path
) -> tuple[str, dict[str, tuple[str, str | None]]]:
    """One file as DuckDB reads it untyped: the ``FROM`` source and each column's stored type.

    Parameters
    ----------
    backend : ibis.BaseBackend
        An Ibis DuckDB connection (``Tables.backend`` of a dataset folder).
    path : Path
        A table's ``.csv`` or ``.parquet`` file.

    Returns
    -------
    tuple of (str, dict of str to (str, str or None))
        The SQL table function reading the file (``read_csv(...)`` with every cell as text,
        as the loader reads a CSV file, or ``read_parquet(...)``), and for each column in
        file order its DuckDB type (``VARCHAR`` for every CSV column) and, for a Parquet
        timestamp written with a time zone, that zone.

    Raises
    ------
    UnicodeDecodeError, csv.Error
        If a CSV file's header row is not UTF-8 or not CSV.
    duckdb.Error
        If DuckDB cannot read a Parquet file's schema.
    """
    if path.suffix == ".parquet":
        source = f"read_parquet({_literal(str(path))})"
        described = backend.raw_sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
        types = {row[0]: row[1] for row in described}
        # An instant's calendar date is taken in the zone it was written in, as pandas does
        # (``tz_localize(None)`` keeps the wall time), not in UTC.
        zones = {
            f.name: f.type.tz
            for f in pq.read_schema(path)
            if pa.types.is_timestamp(f.type) and f.type.tz
        }
        types = {name: (kind, zones.get(name)) for name, kind in types.items()}
    else:
        header = _csv_header(path)
        # Every cell is read as text, as the loader does, so nothing is guessed from the data.
        columns = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in header) + "}"
        source = (
            f"read_csv({_literal(str(path))}, header = true, auto_detect = false, "
            f"columns = {columns}, delim = ',', quote = '\"', escape = '\"')"
        )
        types = dict.fromkeys(header, ("VARCHAR", None))
    return source, types


def _typed_select(backend: ibis.BaseBackend, path: Path, spec: TableSpec) -> str:
    """A ``SELECT`` over one file giving each contract column its type; extras pass through."""
    source, types = raw_source(backend, path)
    known = {c.name: c for c in spec.columns}
    expressions = [
        f"{typed_column(_quote(name), known[name], *stored)} AS {_quote(name)}"
        if name in known
        else _quote(name)
        for name, stored in types.items()
    ]
    return f"SELECT {', '.join(expressions) or '*'} FROM {source}"


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
_NUMERIC += ("UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATING = ("FLOAT", "DOUBLE", "REAL")


def typed_column(column: str, spec: ColumnSpec, stored: str, zone: str | None = None) -> str:
    """The DuckDB SQL expression giving a column the contract's type, from its stored type.

    Parameters
    ----------
    column : str
        The column as SQL (a quoted name, or any expression of the stored type).
    spec : ColumnSpec
        The contract's column: its ``kind`` decides the type.
    stored : str
        Its DuckDB type in the file (``raw_source``).
    zone : str, optional
        The time zone a Parquet timestamp column was written with, if any.

    Returns
    -------
    str
        The expression of the module's rules: ids stripped text (``NULL`` when blank), dates
        as written (a timestamp's date in its own zone), booleans from ``true``/``false``,
        integers only when whole; any cell it cannot read gives ``NULL``.
    """
    text = stored == "VARCHAR"
    floating = stored in _FLOATING or stored.startswith("DECIMAL")
    if spec.kind in ("id", "text"):
        if floating:  # Parquet ids stored as floats: 7.0 is the id "7"
            value = f"CAST(CAST({column} AS BIGINT) AS VARCHAR)"
        else:
            value = column if text else f"CAST({column} AS VARCHAR)"
        if spec.kind == "text":
            return value
        return f"NULLIF(trim({value}, {_literal(_WHITESPACE)}), '')"
    if spec.kind == "date":
        if stored == "DATE":
            return column
        if stored.startswith("TIMESTAMP"):
            local = f"timezone({_literal(zone)}, {column})" if zone else column
            return f"CAST({local} AS DATE)"
        date_part = f"regexp_extract(trim(CAST({column} AS VARCHAR), {_literal(_WHITESPACE)}), "
        date_part += f"{_literal(ISO_DATE_OR_TIMESTAMP)}, 1)"
        return f"TRY_CAST(NULLIF({date_part}, '') AS DATE)"
    if spec.kind == "bool":
        if stored == "BOOLEAN":
            return column
        lowered = f"lower(trim(CAST({column} AS VARCHAR), {_literal(_WHITESPACE)}))"
        return f"CASE {lowered} WHEN 'true' THEN true WHEN 'false' THEN false END"
    # integers: whole numbers only, as the loader's to_numeric then floor test
    if stored in _NUMERIC:
        return f"CAST({column} AS BIGINT)"
    number = (
        f"TRY_CAST(trim(CAST({column} AS VARCHAR), {_literal(_WHITESPACE)}) AS DOUBLE)"
        if not floating
        else f"CAST({column} AS DOUBLE)"
    )
    return (
        f"CASE WHEN isfinite({number}) AND {number} = floor({number}) "
        f"THEN CAST({number} AS BIGINT) END"
    )


def java_available() -> bool:
    """Whether a Java runtime for Spark is found: ``java`` on ``PATH`` or ``JAVA_HOME`` set."""
    return shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME"))


def start_spark(master: str | None = None, temp_directory: str | None = None) -> SparkSession:
    """Start (or get) the process's Spark session with the project's settings.

    Parameters
    ----------
    master : str, optional
        The Spark master URL; when ``None``, ``INSIDE_OUT_SPARK_MASTER``, else ``local[2]``.
        A local master also gets a 2 GB driver and four shuffle partitions (measured on a
        2-core machine); a cluster keeps its own settings for those.
    temp_directory : str, optional
        Spark's ``spark.local.dir``, where it writes shuffle and spill files.

    Returns
    -------
    SparkSession
        The session: without web UI or console progress, logging errors only, ANSI SQL on.
        Starting a local one takes about 13 s (the Java virtual machine); reuse it.

    Raises
    ------
    RuntimeError
        If no Java is found (``make java`` installs Debian's OpenJDK 17).
    """
    if not java_available():
        raise RuntimeError(JAVA_MISSING)
    from pyspark.sql import SparkSession

    master = master or os.environ.get(SPARK_MASTER_VARIABLE) or SPARK_LOCAL_MASTER
    builder = SparkSession.builder.master(master).appName("inside-out")
    settings = dict(SPARK_SETTINGS)
    if master.startswith("local"):
        settings.update(SPARK_LOCAL_SETTINGS)
    if temp_directory is not None:
        settings["spark.local.dir"] = str(temp_directory)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _open_spark(directory: Path, master: str | None, temp_directory: str | None) -> Tables:
    """The dataset folder's tables as typed temporary views of a Spark session."""
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    owned = session is None
    if owned:
        session = start_spark(master, temp_directory)
    backend = ibis.pyspark.connect(session)
    views: list[str] = []

    def close() -> None:
        for view in views:
            session.catalog.dropTempView(view)
        if owned:
            session.stop()

    try:
        specs = _specs(directory)
        files, _problems = find_table_files(directory)
        tables = {}
        # Each call has its own view names, so two datasets open in one session stay apart.
        number = next(_view_numbers)
        for name, path in files.items():
            view = f"{name}_{number}"
            _spark_typed(session, path, specs[name]).createOrReplaceTempView(view)
            views.append(view)
            tables[name] = backend.table(view)
    except BaseException:
        close()
        raise
    return Tables(backend, tables, on_close=close)


def _spark_column(name: str) -> Column:
    """A column by its exact name (dots and backticks taken literally)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _spark_typed(session: SparkSession, path: Path, spec: TableSpec) -> DataFrame:
    """One file as a Spark DataFrame, each contract column in the contract's type."""
    from pyspark.sql import types as T

    if path.suffix == ".parquet":
        frame = session.read.parquet(str(path))
        zones = {
            f.name: f.type.tz
            for f in pq.read_schema(path)
            if pa.types.is_timestamp(f.type) and f.type.tz
        }
    else:
        header = _csv_header(path)
        # Every cell is read as text, as the loader does; the schema names the columns, so a
        # byte-order mark before the first name does not matter. Quoted fields may hold line
        # breaks, as Python's csv module (the loader) allows.
        schema = T.StructType([T.StructField(c, T.StringType()) for c in header])
        frame = session.read.csv(
            str(path),
            schema=schema,
            header=True,
            enforceSchema=True,
            sep=",",
            quote='"',
            escape='"',
            multiLine=True,
            encoding="UTF-8",
            mode="PERMISSIVE",
        )
        zones = {}
    known = {c.name: c for c in spec.columns}
    columns = [
        _spark_typed_column(
            _spark_column(f.name), known[f.name], f.dataType, zones.get(f.name)
        ).alias(f.name)
        if f.name in known
        else _spark_column(f.name)
        for f in frame.schema.fields
    ]
    return frame.select(*columns)


# A decimal number as pandas.to_numeric reads one; Java's parser (Spark's cast) would also take
# "1d", "0x1p3" or "Infinity", which are not whole numbers of the contract.
_DECIMAL_NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"
# Whole numbers whose magnitude is below 2**63 fit a 64-bit integer.
_INT64_BOUND = 2.0**63


def _spark_typed_column(column: Column, spec: ColumnSpec, stored, zone: str | None) -> Column:
    """A column in the contract's type, from its stored Spark type, by ``typed_column``'s rules."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    text = isinstance(stored, T.StringType)
    floating = isinstance(stored, T.FloatType | T.DoubleType | T.DecimalType)
    whitespace = F.lit(_WHITESPACE)
    if spec.kind in ("id", "text"):
        if floating:  # Parquet ids stored as floats: 7.0 is the id "7"
            value = column.try_cast("bigint").cast("string")
        else:
            value = column if text else column.cast("string")
        if spec.kind == "text":
            return value
        return F.nullif(F.trim(value, whitespace), F.lit(""))
    if spec.kind == "date":
        if isinstance(stored, T.DateType):
            return column
        if isinstance(stored, T.TimestampType):
            # an instant's calendar date in the zone it was written in (the session's is UTC)
            return F.to_date(F.from_utc_timestamp(column, zone) if zone else column)
        if isinstance(stored, T.TimestampNTZType):
            return F.to_date(column)
        # Java's regular expressions name a group (?<name>...), Python's (?P<name>...)
        pattern = ISO_DATE_OR_TIMESTAMP.replace("(?P<", "(?<")
        date_part = F.regexp_extract(F.trim(column.cast("string"), whitespace), pattern, 1)
        return F.nullif(date_part, F.lit("")).try_cast("date")
    if spec.kind == "bool":
        if isinstance(stored, T.BooleanType):
            return column
        lowered = F.lower(F.trim(column.cast("string"), whitespace))
        return F.when(lowered == "true", True).when(lowered == "false", False)
    # integers: whole numbers only, as the loader's to_numeric then floor test
    if isinstance(stored, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return column.cast("bigint")
    if floating:
        number = column.cast("double")
    else:
        trimmed = F.trim(column.cast("string"), whitespace)
        number = F.when(trimmed.rlike(_DECIMAL_NUMBER), trimmed.try_cast("double"))
    whole = (F.abs(number) < _INT64_BOUND) & (number == F.rint(number))
    return F.when(whole, number.cast("bigint"))
