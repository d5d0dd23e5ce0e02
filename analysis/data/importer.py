"""Importing raw exports into a dataset: ``python -m analysis import RAW_DIR --mapping M --out D``.

Real data arrives as a survey platform's export (Qualtrics: three header rows, question ids as
headers, answers as labels, timestamps), an HR system's org table, a CX platform's NPS export
and a CRM extract. One ``mapping.yaml`` says how those files become a contract dataset, so that
next quarter's exports are imported by the same recipe. ``import_exports`` reads the raw files
(never modifying them), reshapes them, writes the dataset as Parquet beside an
``import_report.csv``, validates it with ``analysis.data.load.load_dataset`` and only then
publishes it, atomically (``analysis.data.folders``). Every problem is collected first and
raised together in one ``MappingError`` (exit status 2); nothing is written then.

The mapping format::

    version: 1
    waves: [2024-03-31, 2024-06-30]     # survey close dates, ISO; needed by `wave: {from: …}`
    label_sets:                         # answer labels to codes; trimmed, case-insensitive
      agree5: {Strongly disagree: 1, Disagree: 2, Neither agree nor disagree: 3,
               Agree: 4, Strongly agree: 5}
    pseudonymise: [respondent_id, customer_id]   # keyed hash, key in INSIDE_OUT_ID_KEY
    instrument: instrument.yaml         # optional: copied into the dataset (path relative to
                                        # the mapping file); needed when items are not the
                                        # default names
    tables:
      units:
        file: org_units.csv             # a path or a glob, relative to RAW_DIR; stacked, sorted
        columns: {unit_id: Dept Code, unit_name: Dept Name, customer_facing: Front Line}
        values: {customer_facing: {Y: true, N: false}}   # raw value -> contract value
      employee_survey:
        file: engagement_*.csv
        layout: qualtrics               # plain (one header row, default) or qualtrics
        keep: {Finished: ["1", "True"]} # keep rows whose raw value is one of these
        columns:
          respondent_id: EmployeeKey
          unit_id: DeptCode
          wave: {from: RecordedDate}    # first close date on or after the timestamp's date
          eng_1: Q1_1
        labels: {eng_1: agree5}         # unlisted item columns must already be numbers

Rules, as the data contract states them (its section "Importing raw exports"):

* Every raw cell is read as text, so ``007`` stays ``007``; a blank cell is missing. CSV files
  are UTF-8 (a byte-order mark is allowed); another encoding is an error that says so.
* ``layout: qualtrics`` takes row 1 as the column ids and skips rows 2 (question text) and 3
  (``{"ImportId": …}``); raw row numbers in messages count every row, as a spreadsheet does.
* ``keep``, ``values`` and label sets compare values trimmed and case-insensitively. A value
  that ``values`` does not list passes unchanged (the validation then judges it); a label that
  its set does not list is an error showing the label and its rows.
* A date column takes ``YYYY-MM-DD`` or an ISO 8601 timestamp (``T`` or a space, optional
  seconds, fraction, ``Z`` or offset); the calendar date as written, in its stated offset, is
  kept.
* ``wave: {from: COLUMN}`` assigns each row to the first close date in ``waves`` on or after
  its date; a row after the last close date is dropped and counted.
* Identifiers named in ``pseudonymise`` are replaced, in every table that has them, by
  ``pseudonymise_id`` keyed with the ``INSIDE_OUT_ID_KEY`` variable: the same person gets the
  same id in every file and wave, and raw e-mail addresses never reach the dataset. Without the
  variable ids are copied unchanged and a one-line notice says so.
* ``import_report.csv`` has one row per table and raw file: rows read, kept, dropped and why.

References
----------
Krawczyk, H., Bellare, M. & Canetti, R. (1997). HMAC: Keyed-hashing for message
authentication. RFC 2104.
NIST (2008). The keyed-hash message authentication code (HMAC). FIPS PUB 198-1.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import hashlib
import hmac
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.data import contract
from analysis.data.load import ROWS_SHOWN, SYNTHETIC_FILE, DatasetError, Problem

MAPPING_VERSION = 1
KEY_VARIABLE = "INSIDE_OUT_ID_KEY"
REPORT_FILE = "import_report.csv"
MAPPING_COPY = "mapping.yaml"
INSTRUMENT_FILE = "instrument.yaml"
LAYOUTS = ("plain", "qualtrics")
#: The first data row of each layout, counted as a spreadsheet does (header = row 1).
FIRST_ROW = {"plain": 2, "qualtrics": 4}
MAPPING_KEYS = ("version", "waves", "label_sets", "pseudonymise", "instrument", "tables")
TABLE_KEYS = ("file", "layout", "keep", "columns", "values", "labels")
#: Hex digits kept of each HMAC-SHA256 digest: 128 bits, far from any collision.
ID_HEX_DIGITS = 32
VALUES_SHOWN = 5
ISO_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


class MappingError(DatasetError):
    """The raw exports cannot be imported with this mapping; every problem is listed at once.

    A ``DatasetError`` (exit status 2), whose message names the raw folder and mapping and lists
    each problem on its own line: the file, the column, the offending values, their rows and
    what to do.

    Parameters
    ----------
    raw_dir : Path or str
        The folder of raw exports.
    mapping : Path or str
        The mapping file.
    problems : iterable of Problem
        Every problem found.
    headline : str, optional
        The first line, when the problems are not about reading the exports (the validation of
        the imported tables).
    """

    def __init__(
        self,
        raw_dir: Path | str,
        mapping: Path | str,
        problems: Iterable[Problem],
        headline: str | None = None,
    ):
        self.directory = Path(raw_dir)
        self.mapping = Path(mapping)
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = f"{count} problem{'s' if count != 1 else ''}"
        first = headline or f"cannot import {self.directory} with {self.mapping}"
        lines = [f"{first} ({noun}):"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(
            "Raw row numbers count every row of the file as a spreadsheet does. Nothing was "
            "written. See 'Bring your own data' in README.md and data/README.md."
        )
        ValueError.__init__(self, "\n".join(lines))


# --------------------------------------------------------------------------------------------
# The mapping


@dataclass
class TableMapping:
    """How one contract table is made from raw files (one entry of ``tables:``).

    Attributes
    ----------
    name : str
        The contract table.
    pattern : str
        A path or glob relative to the raw folder.
    layout : {"plain", "qualtrics"}
    keep : dict of str to set of str
        Raw column -> the values (trimmed, case-folded) a row must hold to be kept.
    keep_shown : dict of str to str
        Raw column -> the kept values as the mapping writes them, for the report.
    columns : dict of str to str
        Contract column -> raw column.
    wave_from : str or None
        The raw timestamp column that ``wave`` is assigned from, if any.
    values : dict of str to dict of str to str
        Contract column -> {raw value (trimmed, case-folded): contract value}.
    labels : dict of str to str
        Contract column -> label set name.
    """

    name: str
    pattern: str
    layout: str = "plain"
    keep: dict[str, set[str]] = field(default_factory=dict)
    keep_shown: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)
    wave_from: str | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Mapping:
    """A parsed ``mapping.yaml``.

    Attributes
    ----------
    path : Path
        The file.
    waves : tuple of datetime.date
        Survey close dates, ascending.
    label_sets : dict of str to dict of str to int
        Set name -> {label (trimmed, case-folded): code}.
    label_shown : dict of str to list of str
        Set name -> its labels as the mapping writes them, for messages.
    pseudonymise : tuple of str
        Contract columns replaced by keyed hashes.
    instrument : Path or None
        An ``instrument.yaml`` to copy into the dataset.
    tables : dict of str to TableMapping
    """

    path: Path
    waves: tuple[dt.date, ...] = ()
    label_sets: dict[str, dict[str, int]] = field(default_factory=dict)
    label_shown: dict[str, list[str]] = field(default_factory=dict)
    pseudonymise: tuple[str, ...] = ()
    instrument: Path | None = None
    tables: dict[str, TableMapping] = field(default_factory=dict)


def _fold(value: object) -> str:
    """A value as compared by ``keep``, ``values`` and label sets: text, trimmed, case-folded."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return str(value).strip().casefold()


# YAML 1.1 (PyYAML) reads these unquoted words as booleans; a mapping that writes `Yes` means
# the text Yes, so a boolean from the mapping matches every spelling it could have come from.
YAML_BOOLEAN_WORDS = {True: ("true", "yes", "on"), False: ("false", "no", "off")}


def _spellings(value: object) -> set[str]:
    """The raw values a mapping value matches: its ``_fold``, or every YAML boolean spelling."""
    if isinstance(value, bool):
        return set(YAML_BOOLEAN_WORDS[value])
    return {_fold(value)}


def _contract_text(value: object) -> str | None:
    """A contract value given in the mapping (YAML may read ``true`` or ``3``) as a cell."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _suggest(name: str, choices: Iterable[str], what: str = "") -> str:
    """' (did you mean 'x'?)' for the closest choice, or ''; a case-only difference wins."""
    choices = [str(c) for c in choices]
    folded = {c.strip().casefold(): c for c in choices}
    match = folded.get(name.strip().casefold())
    if match is None:
        close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
        match = close[0] if close else None
    return f" (did you mean {what}{match!r}?)" if match is not None else ""


def _known_tables(instrument: contract.Instrument) -> dict[str, dict[str, str]]:
    """Every table the contract knows, required or optional: name -> {column: kind}."""
    return {
        name: {c.name: c.kind for c in spec.columns}
        for name, spec in contract.table_specs(instrument).items()
    }


def _required_columns(name: str, instrument: contract.Instrument) -> tuple[str, ...]:
    return tuple(c.name for c in contract.table_specs(instrument)[name].columns if c.required)


def _mapping_problem(where: str, rule: str, file: str) -> Problem:
    return Problem(file, None, f"{where}: {rule}" if where else rule)


def read_mapping(path: Path | str) -> tuple[Mapping | None, list[Problem]]:
    """Read and check a ``mapping.yaml``; every problem of its shape at once.

    Parameters
    ----------
    path : Path or str
        The mapping file (format: this module's docstring).

    Returns
    -------
    tuple of (Mapping or None, list of Problem)
        The mapping (None when the file cannot be read as YAML) and every problem found:
        unknown keys (with the closest known key), a wrong ``version``, waves that are not ISO
        dates, label codes that are not whole numbers, a ``layout`` other than ``plain`` or
        ``qualtrics``, a ``labels`` entry naming an unknown set, a ``{from: …}`` on a column
        other than ``wave`` or without ``waves``, a required contract table or column the
        mapping does not describe, a table the contract does not know.
    """
    path = Path(path)
    name = path.name
    problems: list[Problem] = []

    def problem(where: str, rule: str) -> None:
        problems.append(_mapping_problem(where, rule, name))

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        return None, [Problem(str(path), None, "mapping file not found")]
    except IsADirectoryError:
        return None, [Problem(str(path), None, "is a folder; name the mapping.yaml file")]
    except UnicodeDecodeError as error:
        return None, [Problem(name, None, f"is not UTF-8 text (byte {error.start})")]
    except OSError as error:
        return None, [Problem(str(path), None, f"cannot be read ({error.strerror})")]
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return None, [Problem(name, None, f"is not valid YAML ({error})")]
    if not isinstance(raw, dict):
        return None, [Problem(name, None, "must be a YAML mapping with 'version' and 'tables'")]
    mapping = Mapping(path=path)
    for key in raw:
        if key not in MAPPING_KEYS:
            problem(
                str(key),
                "unknown key"
                + _suggest(str(key), MAPPING_KEYS)
                + f". Known keys: {', '.join(MAPPING_KEYS)}",
            )
    if raw.get("version") != MAPPING_VERSION:
        problem("version", f"must be {MAPPING_VERSION}, not {raw.get('version')!r}")
    # waves
    waves = raw.get("waves") or []
    if not isinstance(waves, list):
        problem("waves", "must be a list of ISO dates, e.g. [2024-03-31, 2024-06-30]")
        waves = []
    parsed_waves = []
    for value in waves:
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            parsed_waves.append(value)
            continue
        try:
            parsed_waves.append(dt.date.fromisoformat(str(value).strip()))
        except ValueError:
            problem("waves", f"{value!r} is not a date in ISO form YYYY-MM-DD")
    mapping.waves = tuple(sorted(set(parsed_waves)))
    # label sets
    label_sets = raw.get("label_sets") or {}
    if not isinstance(label_sets, dict):
        problem("label_sets", "must map set names to {label: code}")
        label_sets = {}
    for set_name, labels in label_sets.items():
        if not isinstance(labels, dict) or not labels:
            problem(f"label_sets.{set_name}", "must map each answer label to its code")
            continue
        codes = {}
        for label, code in labels.items():
            if isinstance(code, bool) or not isinstance(code, int):
                problem(f"label_sets.{set_name}.{label}", f"code {code!r} is not a whole number")
                continue
            codes.update(dict.fromkeys(_spellings(label), code))
        mapping.label_sets[str(set_name)] = codes
        mapping.label_shown[str(set_name)] = [str(label) for label in labels]
    # pseudonymise
    pseudo = raw.get("pseudonymise") or []
    if isinstance(pseudo, str):
        pseudo = [pseudo]
    if not isinstance(pseudo, list) or not all(isinstance(c, str) for c in pseudo):
        problem("pseudonymise", "must be a list of contract columns, e.g. [respondent_id]")
        pseudo = []
    mapping.pseudonymise = tuple(dict.fromkeys(pseudo))
    # instrument
    instrument_path = raw.get("instrument")
    if instrument_path is not None:
        candidate = path.parent / str(instrument_path)
        if not candidate.is_file():
            problem("instrument", f"{str(instrument_path)!r} is not a file beside the mapping")
        else:
            mapping.instrument = candidate
    # tables
    tables = raw.get("tables")
    if not isinstance(tables, dict) or not tables:
        problem("tables", "must describe each contract table: units, employee_survey, …")
        tables = {}
    for table, entry in tables.items():
        where = f"tables.{table}"
        if not isinstance(entry, dict):
            problem(where, "must be a mapping with 'file' and 'columns'")
            continue
        for key in entry:
            if key not in TABLE_KEYS:
                problem(
                    f"{where}.{key}",
                    "unknown key"
                    + _suggest(str(key), TABLE_KEYS)
                    + f". Known keys: {', '.join(TABLE_KEYS)}",
                )
        pattern = entry.get("file")
        if not isinstance(pattern, str) or not pattern.strip():
            problem(f"{where}.file", "needs a file name or glob relative to RAW_DIR")
            pattern = ""
        elif Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            problem(f"{where}.file", f"{pattern!r} must be a path inside RAW_DIR")
            pattern = ""
        layout = entry.get("layout", "plain")
        if layout not in LAYOUTS:
            problem(f"{where}.layout", f"{layout!r} is not one of: {', '.join(LAYOUTS)}")
            layout = "plain"
        spec = TableMapping(str(table), pattern, layout)
        keep = entry.get("keep") or {}
        if not isinstance(keep, dict):
            problem(f"{where}.keep", "must map raw columns to the values kept")
            keep = {}
        for column, allowed in keep.items():
            allowed = allowed if isinstance(allowed, list) else [allowed]
            spec.keep[str(column)] = set().union(*(_spellings(v) for v in allowed))
            spec.keep_shown[str(column)] = " or ".join(_contract_text(v) or "" for v in allowed)
        columns = entry.get("columns")
        if not isinstance(columns, dict) or not columns:
            problem(f"{where}.columns", "must map contract columns to raw column headers")
            columns = {}
        for target, source in columns.items():
            target = str(target)
            if isinstance(source, dict):
                if set(source) != {"from"} or not isinstance(source["from"], str):
                    problem(f"{where}.columns.{target}", "write {from: RAW COLUMN}")
                elif target != "wave":
                    problem(
                        f"{where}.columns.{target}",
                        "{from: …} assigns survey waves and applies to 'wave' only; map a "
                        "date column to its raw header directly",
                    )
                elif not mapping.waves:
                    problem(
                        f"{where}.columns.wave",
                        "{from: …} needs the survey close dates under 'waves'",
                    )
                else:
                    spec.wave_from = source["from"]
                continue
            if source is None or isinstance(source, list):
                problem(f"{where}.columns.{target}", "needs the raw column's header")
                continue
            spec.columns[target] = str(source)
        for key in ("values", "labels"):
            given = entry.get(key) or {}
            if not isinstance(given, dict):
                problem(f"{where}.{key}", "must map contract columns to " + key)
                continue
            for target, value in given.items():
                target = str(target)
                if target not in spec.columns:
                    problem(
                        f"{where}.{key}.{target}",
                        "is not a column this table maps" + _suggest(target, spec.columns),
                    )
                    continue
                if key == "values":
                    if not isinstance(value, dict):
                        problem(f"{where}.values.{target}", "must map raw values to values")
                        continue
                    spec.values[target] = {
                        spelling: _contract_text(v)
                        for k, v in value.items()
                        for spelling in _spellings(k)
                    }
                elif str(value) not in mapping.label_sets:
                    known = ", ".join(mapping.label_sets) or "none defined"
                    problem(
                        f"{where}.labels.{target}",
                        f"label set {value!r} is not under label_sets"
                        + _suggest(str(value), mapping.label_sets)
                        + f". Defined: {known}",
                    )
                else:
                    spec.labels[target] = str(value)
        mapping.tables[str(table)] = spec
    return mapping, problems


def _table_problems(mapping: Mapping, instrument: contract.Instrument) -> list[Problem]:
    """Tables the contract does not know, required tables and columns the mapping leaves out."""
    problems = []
    known = _known_tables(instrument)
    file = mapping.path.name
    for name in mapping.tables:
        if name not in known:
            problems.append(
                _mapping_problem(
                    f"tables.{name}",
                    "is not a table of the data contract"
                    + _suggest(name, known)
                    + f". Tables: {', '.join(known)}",
                    file,
                )
            )
    for name in contract.TABLE_NAMES:
        if name not in mapping.tables:
            problems.append(
                _mapping_problem(
                    "tables",
                    f"the mapping does not describe the required table {name!r}; add "
                    f"'{name}:' with its file and columns",
                    file,
                )
            )
    survey = mapping.tables.get("employee_survey")
    if survey is not None:
        # communication_effort is optional in contract v2: measured only where present
        unmapped = [
            item
            for scale in instrument.scales
            if scale.name != "communication_effort"
            for item in scale.items
            if item not in survey.columns
        ]
        if unmapped:
            shown = ", ".join(unmapped[:8]) + (", …" if len(unmapped) > 8 else "")
            problems.append(
                _mapping_problem(
                    "tables.employee_survey.columns",
                    f"{len(unmapped)} item(s) of the instrument are not mapped: {shown}. Map each "
                    "to its raw column, or name an instrument.yaml (key 'instrument') that "
                    "lists only the items your survey has",
                    file,
                )
            )
    for name, spec in mapping.tables.items():
        if name not in known:
            continue
        mapped = set(spec.columns) | ({"wave"} if spec.wave_from else set())
        for column in _required_columns(name, instrument):
            if column not in mapped:
                problems.append(
                    _mapping_problem(
                        f"tables.{name}.columns",
                        f"the required column {column!r} is not mapped; add '{column}: RAW "
                        "HEADER'"
                        + (" or 'wave: {from: TIMESTAMP COLUMN}'" if column == "wave" else ""),
                        file,
                    )
                )
    return problems


# --------------------------------------------------------------------------------------------
# Raw files


@dataclass
class RawFile:
    """One raw export read as text.

    Attributes
    ----------
    name : str
        Its path relative to the raw folder, as messages show it.
    header : list of str
        The column headers (row 1).
    frame : DataFrame
        Every data row, every cell a string or None (blank), indexed by its spreadsheet row.
    """

    name: str
    header: list[str]
    frame: pd.DataFrame


def _encoding_guess(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "an encoding other than UTF-8"
    return "Windows-1252 or Latin-1 (what Excel's plain 'CSV' writes)"


def read_raw_file(path: Path, name: str, layout: str = "plain") -> tuple[RawFile | None, list]:
    """Read one raw CSV export as text, without interpreting any cell.

    Parameters
    ----------
    path : Path
        The file.
    name : str
        How messages name it (its path relative to the raw folder).
    layout : {"plain", "qualtrics"}
        ``qualtrics`` skips rows 2 and 3 (question text, ``ImportId`` JSON).

    Returns
    -------
    tuple of (RawFile or None, list of Problem)
        The file, or None with the problems: not UTF-8 (with the likely encoding), an Excel
        workbook, not CSV, a semicolon- or tab-separated file, a Qualtrics export read as
        ``plain`` or the reverse, rows with more cells than the header.
    """
    if path.suffix.lower() in (".xlsx", ".xls", ".xlsm"):
        return None, [
            Problem(name, None, "is an Excel workbook; save it as 'CSV UTF-8' and map that file")
        ]
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, [Problem(name, None, f"cannot be read ({error.strerror})")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return None, [
            Problem(
                name,
                None,
                f"is not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start}); "
                f"it looks like {_encoding_guess(data)}. Export it again as 'CSV UTF-8' (Excel: "
                "Save As › CSV UTF-8), or convert it, e.g. `iconv -f cp1252 -t utf-8`",
            )
        ]
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        return None, [Problem(name, None, f"is not well-formed CSV ({error})")]
    if not records or not any(cell.strip() for cell in records[0]):
        return None, [Problem(name, None, "is empty: it needs at least a header row")]
    header = records[0]
    if len(header) == 1:
        for separator, called in ((";", "semicolons"), ("\t", "tabs")):
            if separator in header[0]:
                return None, [
                    Problem(
                        name,
                        None,
                        f"has one column whose header holds {called} ({header[0][:60]!r}): it is "
                        f"separated by {called}, not commas. Export it comma separated (Excel: "
                        "Save As › CSV UTF-8)",
                    )
                ]
    skipped = FIRST_ROW[layout] - 2
    import_row = records[2] if len(records) > 2 else []
    looks_qualtrics = any('"ImportId"' in cell for cell in import_row)
    if layout == "plain" and looks_qualtrics:
        return None, [
            Problem(
                name,
                None,
                'row 3 holds Qualtrics ImportId cells ({"ImportId": …}): this is a Qualtrics '
                "export with three header rows; add 'layout: qualtrics' to its table",
            )
        ]
    if layout == "qualtrics" and not looks_qualtrics:
        shown = ", ".join(repr(c) for c in import_row[:3]) or "nothing"
        return None, [
            Problem(
                name,
                None,
                "layout qualtrics expects row 2 to hold question text and row 3 "
                f'{{"ImportId": …}} cells, but row 3 holds {shown}. Export with "Use choice '
                "text\" and the three header rows, or set 'layout: plain'",
            )
        ]
    body = records[1 + skipped :]
    first = FIRST_ROW[layout]
    width = len(header)
    long_rows = [first + i for i, r in enumerate(body) if len(r) > width and any(r[width:])]
    if long_rows:
        return None, [
            Problem(
                name,
                None,
                f"rows have more cells than the header's {width} columns (a comma inside an "
                "unquoted cell?)",
                tuple(long_rows[:ROWS_SHOWN]),
                len(long_rows),
            )
        ]
    kept = [(first + i, r) for i, r in enumerate(body) if any(c.strip() for c in r)]
    cells = [(r + [""] * width)[:width] for _, r in kept]
    frame = pd.DataFrame(cells, columns=range(width), dtype=object)
    frame.index = pd.Index([n for n, _ in kept], name="row")
    frame = frame.where(frame.map(lambda c: c.strip() != ""), None) if len(frame) else frame
    return RawFile(name, header, frame), []


def _column(raw: RawFile, header: str) -> pd.Series:
    """The cells under ``header`` (the first such column, when a header repeats)."""
    return raw.frame[raw.header.index(header)]


def _values_problem(
    file: str, column: str, cells: pd.Series, mask: pd.Series, rule: Callable[[str], str]
) -> list[Problem]:
    """One problem per offending value (the first few), with its rows."""
    bad = cells[mask]
    problems = []
    values = list(dict.fromkeys(bad.tolist()))
    for value in values[:VALUES_SHOWN]:
        rows = bad.index[bad == value]
        problems.append(
            Problem(file, column, rule(value), tuple(int(r) for r in rows[:ROWS_SHOWN]), len(rows))
        )
    if len(values) > VALUES_SHOWN:
        rest = bad[~bad.isin(values[:VALUES_SHOWN])]
        more = ", ".join(repr(v) for v in values[VALUES_SHOWN : VALUES_SHOWN + 5])
        problems.append(
            Problem(
                file,
                column,
                f"{len(values) - VALUES_SHOWN} more values break the same rule: {more}"
                + (", …" if len(values) > VALUES_SHOWN + 5 else ""),
                tuple(int(r) for r in rest.index[:ROWS_SHOWN]),
                len(rest),
            )
        )
    return problems


def to_iso_date(cells: pd.Series) -> pd.Series:
    """ISO dates and timestamps as ``YYYY-MM-DD`` text; anything else becomes None.

    Parameters
    ----------
    cells : Series of str or None
        Raw cells: ``2024-03-28``, ``2024-03-28T10:22:11``, ``2024-03-28 10:22:11``, with
        optional fraction of a second and ``Z`` or an offset such as ``+02:00``.

    Returns
    -------
    Series of str or None
        The calendar date as written, i.e. in the timestamp's own offset (ISO 8601 writes the
        local date and time, then the offset); None for a blank cell or anything else,
        including impossible dates such as ``2024-02-30``.

    References
    ----------
    ISO 8601-1:2019, Date and time — Representations for information interchange.
    """

    def one(cell: object) -> str | None:
        if cell is None or (isinstance(cell, float) and np.isnan(cell)):
            return None
        match = ISO_TIMESTAMP.fullmatch(str(cell).strip())
        if not match:
            return None
        try:
            return dt.date.fromisoformat(match["date"]).isoformat()
        except ValueError:
            return None

    return cells.map(one).astype(object)


# --------------------------------------------------------------------------------------------
# Keyed pseudonymisation


def pseudonymise_id(value: str, key: bytes) -> str:
    """A stable pseudonym of one identifier: HMAC-SHA256 keyed with ``key``.

    Parameters
    ----------
    value : str
        The raw identifier. Surrounding spaces are dropped, and an e-mail address (anything
        with ``@``) is compared case-insensitively, so ``Ann@X.com`` and ``ann@x.com`` are
        one person.
    key : bytes
        The secret key (``INSIDE_OUT_ID_KEY``). Without it the pseudonym cannot be recomputed
        from a guessed e-mail address, which a plain hash would allow.

    Returns
    -------
    str
        The first ``ID_HEX_DIGITS`` hex digits (128 bits) of the digest: the same for the same
        id and key in every file, wave and run.

    References
    ----------
    Krawczyk, H., Bellare, M. & Canetti, R. (1997). HMAC: Keyed-hashing for message
    authentication. RFC 2104.
    """
    text = value.strip()
    if "@" in text:
        text = text.casefold()
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:ID_HEX_DIGITS]


def id_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The pseudonymisation key from ``INSIDE_OUT_ID_KEY``, or None when it is unset or blank.

    Parameters
    ----------
    environ : dict, optional
        The environment (``os.environ`` when not given).

    Returns
    -------
    bytes or None
        The key's UTF-8 bytes.
    """
    value = (os.environ if environ is None else environ).get(KEY_VARIABLE, "")
    return value.encode("utf-8") if value.strip() else None


# --------------------------------------------------------------------------------------------
# Importing one table


@dataclass
class FileReport:
    """What became of one raw file's rows (a row of ``import_report.csv``).

    Attributes
    ----------
    table, file : str
        The contract table and the raw file (relative to the raw folder).
    rows_read : int
        Data rows in the file (blank rows not counted).
    dropped : dict of str to int
        Rows dropped, by reason.
    """

    table: str
    file: str
    rows_read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_kept(self) -> int:
        """Rows read less rows dropped."""
        return self.rows_read - sum(self.dropped.values())


@dataclass
class _Imported:
    frame: pd.DataFrame
    origin_file: list[str]
    origin_row: list[int]


def table_reports_of(reports: Iterable[FileReport], table: str) -> list[FileReport]:
    """The file reports of one contract table.

    Parameters
    ----------
    reports : iterable of FileReport
        Every raw file's report.
    table : str
        The contract table.

    Returns
    -------
    list of FileReport
    """
    return [r for r in reports if r.table == table]


def _find_files(raw_dir: Path, pattern: str) -> list[tuple[Path, str]]:
    """The regular, non-hidden files matching ``pattern``, sorted by their relative path."""
    found = []
    for path in raw_dir.glob(pattern):
        relative = path.relative_to(raw_dir)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        found.append((path, relative.as_posix()))
    return sorted(found, key=lambda item: item[1])


def _files_listing(raw_dir: Path) -> list[str]:
    names = []
    for path in sorted(raw_dir.rglob("*")):
        relative = path.relative_to(raw_dir)
        if path.is_file() and not any(p.startswith(".") for p in relative.parts):
            names.append(relative.as_posix())
        if len(names) >= 200:
            break
    return names


def _import_table(
    raw_dir: Path,
    spec: TableMapping,
    mapping: Mapping,
    kinds: dict[str, str],
    items: set[str],
) -> tuple[_Imported | None, list[FileReport], list[Problem]]:
    """Read, filter, recode and date one table's raw files; every problem at once."""
    problems: list[Problem] = []
    reports: list[FileReport] = []
    files = _find_files(raw_dir, spec.pattern)
    if not files:
        listing = _files_listing(raw_dir)
        hint = _suggest(spec.pattern, listing, "")
        shown = ", ".join(listing[:8]) + (", …" if len(listing) > 8 else "") or "none"
        return (
            None,
            [],
            [
                Problem(
                    mapping.path.name,
                    None,
                    f"tables.{spec.name}.file: {spec.pattern!r} matches no file in {raw_dir}"
                    f"{hint}. Files there: {shown}",
                )
            ],
        )
    parts: list[pd.DataFrame] = []
    origin_file: list[str] = []
    origin_row: list[int] = []
    for path, name in files:
        raw, read_problems = read_raw_file(path, name, spec.layout)
        problems += read_problems
        if raw is None:
            continue
        report = FileReport(spec.name, name, rows_read=len(raw.frame))
        needed = [*spec.keep, *spec.columns.values(), *([spec.wave_from] if spec.wave_from else [])]
        missing = [h for h in dict.fromkeys(needed) if h not in raw.header]
        for header in missing:
            problems.append(
                Problem(
                    name,
                    header,
                    "column not found in the header"
                    + (_suggest(header, raw.header) or " (no header is similar)")
                    + f"; the mapping names it for table {spec.name}",
                )
            )
        # the columns that are there are still read, so that their problems are listed too
        frame = raw.frame
        for column, allowed in spec.keep.items():
            if column in missing:
                continue
            cells = frame[raw.header.index(column)]
            kept = cells.map(lambda c: _fold(c) if c is not None else "").isin(allowed)
            reason = f"{column} not {spec.keep_shown[column]}"
            report.dropped[reason] = report.dropped.get(reason, 0) + int((~kept).sum())
            frame = frame[kept]
        out = pd.DataFrame(index=frame.index)
        selected = RawFile(name, raw.header, frame)
        if spec.wave_from and spec.wave_from not in missing:
            stamps = _column(selected, spec.wave_from)
            dates = to_iso_date(stamps)
            bad = dates.isna()
            problems += _values_problem(
                name,
                spec.wave_from,
                stamps.fillna("(blank)"),
                bad,
                lambda v: (
                    f"{v!r} is not an ISO date or timestamp (YYYY-MM-DD or "
                    "YYYY-MM-DD HH:MM:SS, optional Z or offset), so no wave can be assigned"
                ),
            )
            closes = np.array([d.isoformat() for d in mapping.waves])
            position = np.searchsorted(closes, dates.fillna("").to_numpy(dtype=str), side="left")
            late = ~bad & (position >= len(closes))
            if late.any():
                reason = f"{spec.wave_from} after the last wave ({closes[-1]})"
                report.dropped[reason] = int(late.sum())
            assigned = np.where(
                position < len(closes), closes[np.minimum(position, len(closes) - 1)], None
            )
            out["wave"] = pd.Series(assigned, index=frame.index, dtype=object).where(~bad, None)
            out = out[~late.to_numpy()]
            frame = frame[~late.to_numpy()]
            selected = RawFile(name, raw.header, frame)
        for target, header in spec.columns.items():
            if header in missing:
                continue
            cells = _column(selected, header)
            kind = kinds.get(target, "int" if target in items else "text")
            if target in spec.values:
                recode = spec.values[target]
                folded = cells.map(lambda c: _fold(c) if c is not None else None)
                hit = folded.isin(list(recode))
                cells = cells.where(~hit, folded.map(recode))
            if target in spec.labels:
                set_name = spec.labels[target]
                codes = mapping.label_sets[set_name]
                folded = cells.map(lambda c: _fold(c) if c is not None else None)
                unknown = cells.notna() & ~folded.isin(list(codes))
                shown_labels = mapping.label_shown[set_name]
                labels = ", ".join(repr(k) for k in shown_labels[:6])
                labels += ", …" if len(shown_labels) > 6 else ""
                problems += _values_problem(
                    name,
                    header,
                    cells,
                    unknown,
                    lambda v, s=set_name, shown=labels: (
                        f"label {v!r} is not in label set {s!r} "
                        f"({shown}); add it under label_sets.{s} or correct the export"
                    ),
                )
                cells = folded.map(lambda c, m=codes: str(m[c]) if c in m else None)
            elif kind == "date":
                dates = to_iso_date(cells)
                problems += _values_problem(
                    name,
                    header,
                    cells,
                    cells.notna() & dates.isna(),
                    lambda v: (
                        f"{v!r} is not an ISO date or timestamp (YYYY-MM-DD or "
                        "YYYY-MM-DD HH:MM:SS, optional Z or offset)"
                    ),
                )
                cells = dates
            elif kind == "int":
                numbers = pd.to_numeric(cells.map(lambda c: c.strip() if c else c), errors="coerce")
                bad = cells.notna() & (numbers.isna() | (numbers != np.floor(numbers)))
                problems += _values_problem(
                    name,
                    header,
                    cells,
                    bad,
                    lambda v, t=target: (
                        f"{v!r} is not a whole number; {t} needs numbers (if "
                        f"the export has answer labels, map them: labels: {{{t}: SET}})"
                    ),
                )
            out[target] = cells
        parts.append(out)
        origin_file += [name] * len(out)
        origin_row += [int(r) for r in out.index]
        reports.append(report)
    if problems or not parts:
        return None, reports, problems
    frame = pd.concat(parts, ignore_index=True)
    return _Imported(frame, origin_file, origin_row), reports, []


def _typed(frame: pd.DataFrame, kinds: dict[str, str], items: set[str]) -> pd.DataFrame:
    """Columns as the contract types them, where every value allows; the rest stay text."""
    typed = {}
    for column in frame.columns:
        values = frame[column]
        kind = kinds.get(column, "int" if column in items else "text")
        if kind == "date":
            typed[column] = pd.to_datetime(values, format="%Y-%m-%d").astype("datetime64[ns]")
        elif kind == "int":
            numbers = pd.to_numeric(values, errors="coerce")
            whole = numbers.isna() | (numbers == np.floor(numbers))
            typed[column] = numbers.astype("Int64") if whole.all() else numbers
        elif kind == "bool":
            folded = values.map(lambda c: _fold(c) if c is not None else None)
            parsed = folded.map({"true": True, "false": False})
            if (parsed.notna() | values.isna()).all():
                typed[column] = parsed.astype("boolean")
            else:
                typed[column] = values.astype("string")
        else:
            typed[column] = values.astype("string")
    return pd.DataFrame(typed, index=frame.index)


# --------------------------------------------------------------------------------------------
# The import


@dataclass
class ImportResult:
    """What an import wrote.

    Attributes
    ----------
    out : Path
        The dataset folder.
    rows : dict of str to int
        Rows written per table.
    reports : list of FileReport
        Per table and raw file: rows read, kept, dropped by reason.
    pseudonymised : tuple of str
        The columns replaced by keyed hashes (empty without ``INSIDE_OUT_ID_KEY``).
    """

    out: Path
    rows: dict[str, int]
    reports: list[FileReport]
    pseudonymised: tuple[str, ...]

    @property
    def rows_kept(self) -> int:
        """Rows kept over every table."""
        return sum(r.rows_kept for r in self.reports)

    @property
    def rows_dropped(self) -> int:
        """Rows dropped over every table."""
        return sum(r.rows_read - r.rows_kept for r in self.reports)


def report_frame(reports: list[FileReport]) -> pd.DataFrame:
    """``import_report.csv``: one row per table and raw file.

    Parameters
    ----------
    reports : list of FileReport

    Returns
    -------
    DataFrame
        Columns ``table, file, rows_read, rows_kept, rows_dropped, dropped_by_keep,
        dropped_after_last_wave, reasons``; ``reasons`` spells each count out, e.g.
        ``Finished not 1 or True: 57``.
    """
    rows = []
    for r in reports:
        by_keep = sum(n for reason, n in r.dropped.items() if "after the last wave" not in reason)
        late = sum(n for reason, n in r.dropped.items() if "after the last wave" in reason)
        rows.append(
            {
                "table": r.table,
                "file": r.file,
                "rows_read": r.rows_read,
                "rows_kept": r.rows_kept,
                "rows_dropped": r.rows_read - r.rows_kept,
                "dropped_by_keep": by_keep,
                "dropped_after_last_wave": late,
                "reasons": "; ".join(f"{k}: {n}" for k, n in r.dropped.items() if n),
            }
        )
    columns = [
        "table",
        "file",
        "rows_read",
        "rows_kept",
        "rows_dropped",
        "dropped_by_keep",
        "dropped_after_last_wave",
        "reasons",
    ]
    return pd.DataFrame(rows, columns=columns)


def _load_instrument(path: Path | None) -> tuple[contract.Instrument, list[Problem]]:
    from analysis.data.load import load_instrument

    if path is None:
        return contract.DEFAULT_INSTRUMENT, []
    with tempfile.TemporaryDirectory() as folder:
        shutil.copyfile(path, Path(folder) / INSTRUMENT_FILE)
        result = load_instrument(Path(folder))
    instrument, problems = result[0], list(result[1])
    return instrument, problems


def _traced(error: DatasetError, imported: dict[str, _Imported], mapping: Mapping) -> list[Problem]:
    """The validation's problems, their output rows traced back to raw files and rows."""
    traced = []
    for problem in error.problems:
        table = Path(problem.file).stem
        source = imported.get(table)
        if source is None or not problem.rows:
            traced.append(problem)
            continue
        spec = mapping.tables.get(table)
        header = spec.columns.get(problem.column) if spec and problem.column else None
        column = f"{problem.column} (raw {header!r})" if header else problem.column
        places = []
        for row in problem.rows:
            index = row - 2  # load counts the header of the written table as row 1
            if 0 <= index < len(source.origin_file):
                places.append(f"{source.origin_file[index]} row {source.origin_row[index]}")
        noun = "row" if problem.count == 1 else "rows"
        where = ", ".join(places) + (", …" if problem.count > len(places) else "")
        traced.append(
            Problem(
                f"{table} (imported)",
                column,
                f"{problem.rule} ({problem.count} {noun}: {where})",
            )
        )
    return traced


def import_exports(
    raw_dir: Path | str,
    mapping_path: Path | str,
    out: Path | str,
    *,
    environ: dict[str, str] | None = None,
    notify: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import raw exports into a contract dataset at ``out``, all or nothing.

    Parameters
    ----------
    raw_dir : Path or str
        The folder of raw exports; only ever read.
    mapping_path : Path or str
        The ``mapping.yaml`` (format: this module's docstring).
    out : Path or str
        The dataset folder to write: new, empty, or a dataset the kit wrote
        (``analysis.data.folders.check_replaceable``).
    environ : dict, optional
        Where ``INSIDE_OUT_ID_KEY`` is read (``os.environ`` when not given).
    notify : callable, optional
        Receives the one-line notice that ids are copied unchanged when there is no key
        (default: print to standard error).

    Returns
    -------
    ImportResult
        Rows per table, the per-file report and the pseudonymised columns.

    Raises
    ------
    MappingError
        Every problem of the mapping, the raw files and the imported tables at once; nothing
        has been written.
    analysis.data.folders.OutputError
        If ``out`` may not be written (a folder holding files the kit did not write, the raw
        folder or inside it); checked before anything is read.
    analysis.data.folders.StorageError
        If the disk refuses the write.

    Notes
    -----
    The tables are written as Parquet into a hidden sibling of ``out``, validated there with
    ``analysis.data.load.load_dataset``, and exchanged with ``out`` in one step; a refused,
    invalid or interrupted import leaves ``out`` as it was and no staging folder behind. A
    ``SYNTHETIC.md`` in the raw folder (the worked example's) is copied too, so that made-up
    data stays labelled as such in every report.
    """
    from analysis.data import folders
    from analysis.data.load import load_dataset

    raw_dir = Path(raw_dir)
    mapping_path = Path(mapping_path)
    target = folders.check_replaceable(out, "dataset", inputs=[raw_dir], role="output dataset")
    notify = notify or (lambda line: print(line, file=sys.stderr))
    mapping, problems = read_mapping(mapping_path)
    if not raw_dir.is_dir():
        problems.append(Problem(str(raw_dir), None, "the raw folder does not exist"))
    if mapping is None or not raw_dir.is_dir():
        raise MappingError(raw_dir, mapping_path, problems)
    instrument, instrument_problems = _load_instrument(mapping.instrument)
    problems += [
        Problem(f"{mapping.instrument.name if mapping.instrument else ''}", p.column, p.rule)
        for p in instrument_problems
    ]
    problems += _table_problems(mapping, instrument)
    known = _known_tables(instrument)
    items = set(instrument.items)
    imported: dict[str, _Imported] = {}
    reports: list[FileReport] = []
    for name, spec in mapping.tables.items():
        if name not in known or not spec.pattern:
            continue
        result, table_reports, table_problems = _import_table(
            raw_dir, spec, mapping, known[name], items if name == "employee_survey" else set()
        )
        problems += table_problems
        reports += table_reports
        if result is not None:
            imported[name] = result
    for name, part in imported.items():
        read = sum(r.rows_read for r in table_reports_of(reports, name))
        if part.frame.empty and read:
            reasons = {}
            for r in table_reports_of(reports, name):
                for reason, n in r.dropped.items():
                    reasons[reason] = reasons.get(reason, 0) + n
            shown = "; ".join(f"{reason}: {n:,}" for reason, n in reasons.items())
            problems.append(
                _mapping_problem(
                    f"tables.{name}",
                    f"every one of its {read:,} rows was dropped ({shown}): check the values "
                    "under 'keep' against the raw file's, and the survey close dates under "
                    "'waves'",
                    mapping_path.name,
                )
            )
    pseudonymise = list(mapping.pseudonymise)
    mapped = {c for spec in mapping.tables.values() for c in spec.columns}
    for column in pseudonymise:
        if column not in mapped:
            contract_columns = {c for t in known.values() for c in t}
            problems.append(
                _mapping_problem(
                    "pseudonymise",
                    f"{column!r} is not mapped under 'columns' by any table"
                    + (
                        _suggest(column, mapped - contract_columns, "the mapped column ")
                        if column in contract_columns
                        else _suggest(column, contract_columns)
                    ),
                    mapping_path.name,
                )
            )
    if problems:
        raise MappingError(raw_dir, mapping_path, problems)
    key = id_key(environ)
    hashed: tuple[str, ...] = ()
    if pseudonymise:
        if key is None:
            notify(
                f"note: {KEY_VARIABLE} is not set, so {', '.join(pseudonymise)} are copied "
                "unchanged (an e-mail address among them would reach the dataset as it is); "
                "set it to a secret kept outside the dataset to replace them with keyed "
                "pseudonyms"
            )
        else:
            hashed = tuple(pseudonymise)
            for part in imported.values():
                for column in hashed:
                    if column in part.frame.columns:
                        part.frame[column] = part.frame[column].map(
                            lambda v: pseudonymise_id(v, key) if v is not None else None
                        )
    tables = {
        name: _typed(part.frame, known[name], items if name == "employee_survey" else set())
        for name, part in imported.items()
    }
    with folders.writing(target.parent):
        staging = folders.new_staging(target)
        try:
            names = []
            for name, frame in tables.items():
                frame.to_parquet(staging / f"{name}.parquet", index=False)
                names.append(f"{name}.parquet")
            report_frame(reports).to_csv(staging / REPORT_FILE, index=False, lineterminator="\n")
            names.append(REPORT_FILE)
            shutil.copyfile(mapping_path, staging / MAPPING_COPY)
            names.append(MAPPING_COPY)
            if mapping.instrument is not None:
                shutil.copyfile(mapping.instrument, staging / INSTRUMENT_FILE)
                names.append(INSTRUMENT_FILE)
            if (raw_dir / SYNTHETIC_FILE).is_file():  # made-up data stays labelled as such
                shutil.copyfile(raw_dir / SYNTHETIC_FILE, staging / SYNTHETIC_FILE)
                names.append(SYNTHETIC_FILE)
            try:
                load_dataset(staging)
            except DatasetError as error:
                raise MappingError(
                    raw_dir,
                    mapping_path,
                    _traced(error, imported, mapping),
                    headline=f"the tables imported from {raw_dir} with {mapping_path} would not "
                    "follow the data contract",
                ) from None
            folders.write_marker(staging, "dataset", names)
            folders.replace_folder(staging, target)
        except BaseException:
            folders.discard(staging)
            raise
    return ImportResult(
        out=target,
        rows={name: len(frame) for name, frame in tables.items()},
        reports=reports,
        pseudonymised=hashed,
    )
