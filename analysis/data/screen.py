"""A fast screen of a dataset's big tables against the data contract, in the engine.

``analysis.data.load`` reads every row into pandas to check the contract and to say exactly
where each rule is broken. At a hundred million customer answers that is too slow and too
big. ``screen_tables`` instead asks the engine, in a few passes over each file, whether any
row *may* break a rule:

* for a dataset folder in DuckDB (``analysis.data.engine.open_tables``), one aggregate query
  per table counts, for every rule at once, the rows that may break it; each unique column
  (and each ``unique_together`` key) costs one more ``GROUP BY`` pass. The header (or the
  Parquet schema) and the first three rows are read in Python, as the loader reads them;
* for a PostgreSQL database, whose tables are already typed, the value rules only (blanks,
  ranges, text length, uniqueness, unknown units, churn before start).

The promise is one-sided. Whenever ``load_dataset`` would report a problem in a table's file,
the screen names at least one rule for that table; a rule named where the loader finds nothing
is a false alarm, whose only cost is that the caller reads that table through the loader
(which then gives the exact messages, with rows and values). So wherever the engine and pandas
could read a cell differently (whitespace other than ASCII's at the end of an identifier, a
number DuckDB reads but ``pandas.to_numeric`` does not, a date pandas cannot hold, an error of
DuckDB's CSV reader) the screen errs towards naming a rule. An empty list for a table is
therefore also the guarantee that its engine view (``typed_column``'s rules) holds the values
the loader would have typed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from analysis.data.contract import (
    MAX_TEXT_LENGTH,
    TABLES_LINKED_TO_UNITS,
    ColumnSpec,
    TableSpec,
)
from analysis.data.engine import Tables, raw_source, typed_column
from analysis.data.load import CSV_READING, _extra_header_problem, not_a_file

#: Tables whose every rule the screen covers; any other is named ``NOT_SCREENED``.
SCREENED = ("units", "customer_nps", "customers")
NOT_SCREENED = "not screened"
FILE_UNREADABLE = "file unreadable"

# What the engine strips from an identifier (engine._WHITESPACE), and what Python's
# str.strip() strips (the loader's): every character whose isspace() holds, all below U+3001.
_ENGINE_WHITESPACE = " \t\n\r\x0b\x0c"
_PYTHON_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
# A number as pandas.to_numeric reads one. DuckDB's cast also takes "1_000", which pandas
# refuses, so a cell must have this form as well as cast to a whole number.
_DECIMAL_NUMBER = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
# The dates a pandas datetime64[ns] holds at any time of day (1677-09-21 00:12:43 to
# 2262-04-11 23:47:16): a date outside is refused by the loader or breaks it.
_FIRST_DATE, _LAST_DATE = "1677-09-22", "2262-04-10"
_INT64_BOUND = "9223372036854775808.0"  # 2**63: a whole DOUBLE below it fits BIGINT

# A count of the aggregate query that is not a rule: cells the cheap test of an identifier does
# not pass (``_column_checks``), which the exact test then looks at.
_IRREGULAR = "\x00irregular "

_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")
_INTEGER_TYPES += ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT", "UHUGEINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def screen_tables(
    opened: Tables,
    names: Sequence[str],
    specs: Mapping[str, TableSpec],
    files: Mapping[str, Path],
) -> dict[str, list[str]]:
    """Which contract rules each table may break, by queries in its engine.

    Parameters
    ----------
    opened : Tables
        The dataset's tables, from ``analysis.data.engine.open_tables``: a DuckDB folder or
        a PostgreSQL database. A Spark session is not screened (every table is named
        ``NOT_SCREENED``, so a caller reads it through the loader).
    names : sequence of str
        The tables to screen, e.g. ``("customer_nps", "customers")``. Every rule of
        ``units``, ``customer_nps`` and ``customers`` is covered; any other table is named
        ``NOT_SCREENED``.
    specs : mapping of str to TableSpec
        The contract's tables (``analysis.data.contract.table_specs``).
    files : mapping of str to Path
        Each table's file (``analysis.data.load.find_table_files``); ignored for PostgreSQL.

    Returns
    -------
    dict of str to list of str
        For each name, the short names of the rules some row may break, such as
        ``"unreadable likelihood_to_recommend"``, ``"duplicate response_id"``,
        ``"unknown unit_id"``, ``"churned_on before since"``, ``"file unreadable"``. An empty
        list means ``analysis.data.load.load_dataset`` reports no problem in that table's
        file (the converse does not hold: a named rule may be a false alarm).

    Notes
    -----
    Costs, on a DuckDB folder: one aggregate pass over each file (every column's rules at
    once), one ``GROUP BY`` pass per unique column over that column only (Parquet reads just
    it), and a pass over ``units`` for the units the other tables may name. A DuckDB error
    while reading a file (bytes that are not UTF-8, a row with more or fewer cells than the
    header, a stray quote) names ``FILE_UNREADABLE`` rather than raising. Uniqueness is
    tested on 64-bit hashes of the values: a collision (about 3 in 10,000 at 100 million
    distinct values) is a false alarm, never a missed repeat.
    """
    backend = opened.backend.name
    if backend == "postgres":
        return {name: _screen_typed(opened, name, specs) for name in names}
    if backend != "duckdb":
        return {name: [NOT_SCREENED] for name in names}
    units_clean = None
    screened = {}
    for name in names:
        if name not in SCREENED:
            screened[name] = [NOT_SCREENED]
            continue
        spec = specs[name]
        linked = name in TABLES_LINKED_TO_UNITS and any(c.name == "unit_id" for c in spec.columns)
        if linked and units_clean is None:  # the loader's known units are the engine's
            units_clean = not _screen_file(opened, "units", specs["units"], files, False)
        screened[name] = _screen_file(opened, name, spec, files, units_clean=bool(units_clean))
    return screened


# --------------------------------------------------------------------------------------------
# A dataset folder in DuckDB


def _quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _screen_file(
    opened: Tables, name: str, spec: TableSpec, files: Mapping[str, Path], units_clean: bool
) -> list[str]:
    """The rules one table's file may break: its header, then one aggregate query."""
    path = files.get(name)
    if path is None:
        return ["file missing"]
    flags = []
    other = path.with_suffix(".csv" if path.suffix == ".parquet" else ".parquet")
    if other.exists():
        flags.append("stored twice")
    if not_a_file(path) is not None or name not in opened.tables:
        return [*flags, FILE_UNREADABLE]
    header_flags = _header_flags(path, spec)
    if FILE_UNREADABLE in header_flags or "empty file" in header_flags:
        return flags + header_flags
    flags += header_flags
    backend = opened.backend
    try:
        source, stored = raw_source(backend, path)
        known = {c.name: c for c in spec.columns}
        inner, rules, where, keys = [], [], {}, {}
        for i, (column, (kind, zone)) in enumerate(stored.items()):
            if column not in known:
                continue
            typed, clean, checks = _column_checks(_quote(column), known[column], kind, zone)
            inner += [f"{_quote(column)} AS r{i}", f"{typed} AS t{i}"]
            if clean:
                inner.append(f"{clean} AS c{i}")
                # not a rule: where every cell passes the cheap test, a key is its own text
                rules.append((_IRREGULAR + column, f"NOT c{i}"))
            for rule, predicate in checks:
                predicate = predicate.replace("@r", f"r{i}").replace("@c", f"c{i}")
                rules.append((rule, predicate.replace("@t", f"t{i}")))
            where[column], keys[column] = f"t{i}", typed
        rules += _cross_rules(name, where, opened, units_clean)
        found: dict[str, int] = {}
        if rules:
            counts = ", ".join(f"count_if({predicate})" for _rule, predicate in rules)
            select = f"SELECT {counts} FROM (SELECT {', '.join(inner)} FROM {source})"
            row = backend.raw_sql(select).fetchone()
            for (rule, _predicate), n in zip(rules, row, strict=True):
                found[rule] = found.get(rule, 0) + (n or 0)  # count_if of no rows is NULL
        for column in keys:
            # a key is then its own stored value: every one passed the cheap test, or it is a
            # whole number, whose text is one to one with it
            if found.get(_IRREGULAR + column) == 0 or stored[column][0] in _INTEGER_TYPES:
                keys[column] = _quote(column)
        flags += [rule for rule, n in found.items() if n and not rule.startswith(_IRREGULAR)]
        for key in [[c.name] for c in spec.columns if c.unique] + [list(spec.unique_together)]:
            complete = bool(key) and all(k in keys for k in key)
            if complete and _repeated(backend, source, [keys[k] for k in key]):
                flags.append(f"duplicate {', '.join(key)}")
    except (duckdb.Error, UnicodeDecodeError, csv.Error, OSError):
        flags.append(FILE_UNREADABLE)
    return list(dict.fromkeys(flags))


def _header_flags(path: Path, spec: TableSpec) -> list[str]:
    """The header's rules (as ``_read_raw`` reads it) and a platform's extra header rows."""
    try:
        if path.suffix == ".parquet":
            schema = pq.read_schema(path)
            # pandas makes a column its metadata names as the index the index, which the
            # loader then drops: to it the column is missing
            index = (schema.pandas_metadata or {}).get("index_columns", [])
            names = [n for n in schema.names if n not in {i for i in index if isinstance(i, str)}]
        else:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                names = next(csv.reader(handle), None) or []
    except Exception:  # noqa: BLE001 - any failure to read the header is the loader's to name
        return [FILE_UNREADABLE]
    if not names:
        return ["empty file"]
    flags = []
    if len(set(names)) < len(names):
        flags.append("duplicate column name")
    if any(len(n) > MAX_TEXT_LENGTH for n in names):
        flags.append("column name too long")
    flags += [
        f"missing column {c.name}" for c in spec.columns if c.required and c.name not in names
    ]
    if flags:
        return flags
    try:
        if path.suffix == ".parquet":
            batches = pq.ParquetFile(path).iter_batches(batch_size=3)
            first = next(batches, None)
            rows = first.to_pandas() if first is not None else pd.DataFrame(columns=names)
        else:
            rows = pd.read_csv(path, nrows=3, **CSV_READING)
    except Exception:  # noqa: BLE001 - the loader names what is wrong
        return [FILE_UNREADABLE]
    if _extra_header_problem(rows, spec, path.name) is not None:
        flags.append("extra header rows")
    return flags


def _column_checks(
    column: str, spec: ColumnSpec, stored: str, zone: str | None
) -> tuple[str, str | None, list[tuple[str, str]]]:
    """How one column is typed and which rules each cell may break.

    Parameters
    ----------
    column : str
        The column as stored, as SQL (its quoted name).
    spec : ColumnSpec
        The contract's column.
    stored, zone : str
        Its DuckDB type in the file, and a Parquet timestamp's time zone.

    Returns
    -------
    tuple of (str, str or None, list of (str, str))
        The typed value over ``column``: the engine's own (``typed_column``), so a clean
        screen vouches for the engine's view, but first through a cheap test of the common
        form where the engine's own expression gives the same value: an identifier of at most
        ``MAX_TEXT_LENGTH`` bytes whose first and last characters are printable ASCII other
        than the space (two comparisons of bytes, which neither strip changes), digits, an ISO
        date. Then that test, or
        ``None``; then each rule as ``(rule, predicate)``, the predicates written over ``@r``
        (the stored cell), ``@t`` (the typed value) and ``@c`` (the test).
    """
    name = spec.name
    text = stored == "VARCHAR"
    floating = stored in _FLOAT_TYPES
    unexpected = ("NULL", None, [(f"unexpected type {name}", "true")])
    present = "(@r IS NOT NULL AND NOT isnan(@r))" if floating else "(@r IS NOT NULL)"
    whole = (
        f"(isfinite({column}) AND {column} = floor({column}) AND abs({column}) < {_INT64_BOUND})"
    )
    rules: list[tuple[str, str]] = []
    clean = None
    if spec.kind in ("id", "text"):
        if floating:
            typed = f"CASE WHEN {whole} THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) END"
            rules.append((f"unreadable {name}", f"{present} AND @t IS NULL"))
        elif text or stored in _INTEGER_TYPES:
            typed = typed_column(column, spec, stored, zone)
        else:  # decimals, dates, lists …: pandas would spell them otherwise
            return unexpected
        if text and spec.kind == "id":
            last = f"reverse({column})"
            clean = (
                f"({column} >= '!' AND {column} < '\x7f' AND {last} >= '!' AND {last} < '\x7f' "
                f"AND strlen({column}) <= {MAX_TEXT_LENGTH})"
            )
            typed = f"CASE WHEN {clean} THEN {column} ELSE {typed} END"
            # CASE, as DuckDB evaluates both sides of an AND outside a filter
            long = f"CASE WHEN @c THEN false ELSE length(@r) > {MAX_TEXT_LENGTH} END"
            rules.append((f"too long {name}", long))
            # the loader strips all of Unicode's white space, the engine only ASCII's
            odd = f"CASE WHEN @c THEN false ELSE @t <> trim(@t, {_literal(_PYTHON_WHITESPACE)}) END"
            rules.append((f"odd whitespace {name}", odd))
        elif text:
            rules.append((f"too long {name}", f"length(@r) > {MAX_TEXT_LENGTH}"))
        if spec.kind == "id":
            # a cell of white space only is blank to the loader even where blanks are allowed
            blank = "@t IS NULL" if not spec.nullable else f"{present} AND @t IS NULL"
            rules.append((f"blank {name}", blank))
        elif not spec.nullable:
            rules.append((f"blank {name}", f"NOT {present}"))
        return typed, clean, rules
    if spec.kind == "int":
        if floating:
            typed = f"CASE WHEN {whole} THEN CAST({column} AS BIGINT) END"
        elif stored in _INTEGER_TYPES:
            typed = f"CAST({column} AS BIGINT)"
        elif text:
            cell = f"trim({column}, {_literal(_ENGINE_WHITESPACE)})"
            number = f"TRY_CAST({cell} AS DOUBLE)"
            clean = f"regexp_full_match({column}, '[0-9]{{1,15}}')"
            typed = (
                f"CASE WHEN {clean} THEN CAST({column} AS BIGINT) "
                f"WHEN regexp_full_match({cell}, {_literal(_DECIMAL_NUMBER)}) "
                f"AND isfinite({number}) AND {number} = floor({number}) "
                f"AND abs({number}) < {_INT64_BOUND} THEN CAST({number} AS BIGINT) END"
            )
            clean = None  # the test is inside the typed value; the rules need no other
        else:
            return unexpected
    elif spec.kind == "date":
        if not (text or stored == "DATE" or stored.startswith("TIMESTAMP")):
            return unexpected
        typed = typed_column(column, spec, stored, zone)
        if text:
            iso = f"regexp_full_match({column}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
            typed = f"CASE WHEN {iso} THEN TRY_CAST({column} AS DATE) ELSE {typed} END"
    else:  # bool
        if not (text or stored == "BOOLEAN"):
            return unexpected
        typed = typed_column(column, spec, stored, zone)
    rules.append((f"unreadable {name}", f"{present} AND @t IS NULL"))
    if not spec.nullable:
        rules.append((f"blank {name}", f"NOT {present}"))
    if spec.low is not None:
        rules.append((f"out of range {name}", f"(@t < {spec.low} OR @t > {spec.high})"))
    if spec.kind == "date":
        beyond = f"(@t < DATE '{_FIRST_DATE}' OR @t > DATE '{_LAST_DATE}')"
        rules.append((f"date beyond pandas {name}", beyond))
    return typed, clean, rules


def _cross_rules(
    name: str, typed: dict[str, str], opened: Tables, units_clean: bool
) -> list[tuple[str, str]]:
    """The rules across tables: a known unit, and churn not before the customer's start."""
    rules = []
    if name in TABLES_LINKED_TO_UNITS and "unit_id" in typed:
        t = typed["unit_id"]
        if units_clean and "units" in opened.tables:
            known = 'SELECT unit_id FROM "units" WHERE unit_id IS NOT NULL'
            rules.append(("unknown unit_id", f"{t} IS NOT NULL AND {t} NOT IN ({known})"))
        else:  # the units the loader would know cannot be told here
            rules.append(("unknown unit_id", "true"))
    if name == "customers" and {"since", "churned_on"} <= set(typed):
        rules.append(("churned_on before since", f"{typed['churned_on']} < {typed['since']}"))
    return rules


def _repeated(backend, source: str, typed: list[str]) -> bool:
    """Whether two rows share the typed values ``typed`` of a key, hashed to 64 bits.

    Only the key's columns are read (Parquet reads nothing else); grouping on a hash rather
    than on the text keeps the hash table to 8 bytes a value.
    """
    query = (
        f"SELECT count(*) FROM (SELECT hash({', '.join(typed)}) AS h FROM {source} "
        "GROUP BY h HAVING count(*) > 1)"
    )
    return bool(backend.raw_sql(query).fetchone()[0])


# --------------------------------------------------------------------------------------------
# A PostgreSQL database: typed tables, value rules only


def _screen_typed(opened: Tables, name: str, specs: Mapping[str, TableSpec]) -> list[str]:
    """The value rules of one typed table, in one aggregate and one pass per unique key."""
    import ibis

    if name not in opened.tables:
        return ["table missing"]
    table = opened.tables[name]
    spec = specs[name]
    schema = table.schema()
    flags = [
        f"missing column {c.name}" for c in spec.columns if c.required and c.name not in schema
    ]
    rules = {}
    for column in spec.columns:
        if column.name not in schema:
            continue
        dtype = schema[column.name]
        value = table[column.name]
        expected = {
            "id": dtype.is_string(),
            "text": dtype.is_string(),
            "int": dtype.is_integer(),
            "date": dtype.is_date(),
            "bool": dtype.is_boolean(),
        }[column.kind]
        if not expected:
            flags.append(f"unexpected type {column.name}")
            continue
        blank = value.isnull()
        if column.kind == "id":
            # white space at either end, which the loader strips and the database does not:
            # the loader's values and the reduction's would differ (a blank id is one case)
            space = f"[{_PYTHON_WHITESPACE}]"
            rules[f"odd whitespace {column.name}"] = value.re_search(f"^{space}|{space}$")
            blank = blank | (value == "")
        if column.kind in ("id", "text"):
            rules[f"too long {column.name}"] = value.length() > MAX_TEXT_LENGTH
        if not column.nullable:
            rules[f"blank {column.name}"] = blank
        if column.low is not None:
            rules[f"out of range {column.name}"] = (value < column.low) | (value > column.high)
        if column.kind == "date":
            first, last = ibis.date(_FIRST_DATE), ibis.date(_LAST_DATE)
            rules[f"date beyond pandas {column.name}"] = (value < first) | (value > last)
    if name in TABLES_LINKED_TO_UNITS and "unit_id" in schema and "units" in opened.tables:
        known = opened.tables["units"].unit_id
        rules["unknown unit_id"] = table.unit_id.notnull() & ~table.unit_id.isin(known)
    if name == "customers" and {"since", "churned_on"} <= set(schema):
        rules["churned_on before since"] = table.churned_on < table.since
    if rules:
        counts = table.aggregate(
            **{f"c{i}": ibis.ifelse(p, 1, 0).sum() for i, p in enumerate(rules.values())}
        ).to_pyarrow()
        flags += [rule for i, rule in enumerate(rules) if (counts[f"c{i}"][0].as_py() or 0) > 0]
    for key in [[c.name] for c in spec.columns if c.unique] + [list(spec.unique_together)]:
        if key and all(k in schema for k in key):
            repeats = table.group_by(key).aggregate(n=ibis._.count()).filter(ibis._.n > 1)
            if repeats.count().to_pyarrow().as_py():
                flags.append(f"duplicate {', '.join(key)}")
    return flags
