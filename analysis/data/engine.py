"""The dataset's tables as engine tables: DuckDB over the files, or a PostgreSQL database.

``analysis.data.load`` reads every raw row into pandas. Here the same tables stay where they
are and become Ibis tables, so that a reduction (``analysis.measures.reduction``) runs inside
the engine and only its result reaches pandas:

* a dataset **folder** (the contract's tables as ``NAME.csv`` or ``NAME.parquet``, found by
  ``analysis.data.load.find_table_files``) is opened in an in-process DuckDB, one typed view per
  table over ``read_csv`` or ``read_parquet``; DuckDB streams the files and spills to
  ``temp_directory`` beyond ``memory_limit``, so memory does not grow with the number of rows;
* a ``postgresql://`` **URL** is opened through Ibis' PostgreSQL backend, and the contract's
  tables of that database are used as they are (the database's column types are its own).

The views type each column as the loader does (``data/README.md``): identifiers are text,
stripped, never numbers (``007`` stays ``007``; a Parquet id stored as a number becomes its
digits), dates are calendar dates (a timestamp's date part as written, in its own offset),
integers are whole numbers and booleans ``true``/``false``. A cell that cannot be read becomes
missing here; reporting it is the validation's job, which runs before any reduction.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.data.contract import ColumnSpec, TableSpec, default_instrument, table_specs
from analysis.data.load import (
    INSTRUMENT_FILE,
    ISO_DATE_OR_TIMESTAMP,
    find_table_files,
    load_instrument,
)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")

# Characters an identifier loses at either end, as Python's str.strip() in the loader does for
# the whitespace that occurs in exported files.
_WHITESPACE = " \t\n\r\x0b\x0c"


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
    """

    backend: ibis.BaseBackend
    tables: dict[str, ibis.Table] = field(default_factory=dict)

    def close(self) -> None:
        """Close the connection (an in-process DuckDB frees its memory and spill files)."""
        self.backend.disconnect()

    def __enter__(self) -> Tables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_tables(
    source: str | os.PathLike,
    *,
    memory_limit: str = "2GB",
    temp_directory: str | None = None,
) -> Tables:
    """Open a dataset's tables in an engine, without reading them into Python.

    Parameters
    ----------
    source : str or path-like
        A dataset folder, or a ``postgresql://user@host/database`` URL of a database holding
        the contract's tables under their contract names.
    memory_limit : str
        DuckDB's memory limit (e.g. ``"2GB"``); beyond it DuckDB spills to disk. Unused for
        PostgreSQL, whose memory is the server's.
    temp_directory : str, optional
        Where DuckDB spills; DuckDB's default (``<database>.tmp`` or ``.tmp`` in the working
        folder) when ``None``.

    Returns
    -------
    Tables
        The backend and the tables present. Close it (or use it as a context manager).

    Raises
    ------
    FileNotFoundError
        If ``source`` is neither a URL nor an existing folder.

    Notes
    -----
    DuckDB's progress bar is shown only when standard error is a terminal, so CI logs stay
    quiet. Missing tables are simply absent from ``tables``: whether that is allowed is the
    validation's rule (``find_table_files`` reports it).
    """
    text = os.fspath(source)
    if text.startswith(POSTGRES_SCHEMES):
        return _open_postgres(text)
    directory = Path(text)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a dataset folder")
    config = {"memory_limit": memory_limit}
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    backend = ibis.duckdb.connect(**config)
    try:
        # Dates are calendar dates; a session time zone other than UTC would shift a Parquet
        # instant's date, so it is fixed.
        backend.raw_sql("SET TimeZone = 'UTC'")
        backend.raw_sql(f"SET enable_progress_bar = {str(sys.stderr.isatty()).lower()}")
        specs = _specs(directory)
        files, _problems = find_table_files(directory)
        tables = {}
        for name, path in files.items():
            select = _typed_select(backend, path, specs[name])
            backend.raw_sql(f"CREATE OR REPLACE VIEW {_quote(name)} AS {select}")
            tables[name] = backend.table(name)
    except BaseException:
        backend.disconnect()
        raise
    return Tables(backend, tables)


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


def _typed_select(backend: ibis.BaseBackend, path: Path, spec: TableSpec) -> str:
    """A ``SELECT`` over one file giving each contract column its type; extras pass through."""
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
    known = {c.name: c for c in spec.columns}
    expressions = [
        f"{_typed(_quote(name), known[name], *stored)} AS {_quote(name)}"
        if name in known
        else _quote(name)
        for name, stored in types.items()
    ]
    return f"SELECT {', '.join(expressions) or '*'} FROM {source}"


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
_NUMERIC += ("UINTEGER", "UBIGINT", "UHUGEINT")
_FLOATING = ("FLOAT", "DOUBLE", "REAL")


def _typed(column: str, spec: ColumnSpec, stored: str, zone: str | None = None) -> str:
    """The SQL expression giving a column the contract's type, from its stored type.

    ``zone`` is the time zone a Parquet timestamp column was written with, if any.
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
