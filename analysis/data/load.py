"""Reading datasets, and writing tables as folders that are published whole.

``load_dataset`` reads a dataset directory, enforces the data contract
(``analysis.data.contract``) and returns typed tables. It never modifies its input. Every problem
it finds is collected and raised together in one ``DatasetError``, so a user fixes a file once,
not once per rerun.

Row numbers in messages count as a spreadsheet does: the header is row 1, the first record row 2.

``write_tables`` writes a folder of tables atomically (``analysis.data.folders``): ``synth`` uses
it for datasets, ``analysis.data.results`` for result folders, which it alone writes and reads.
Rendered pages and run folders are written by ``analysis.report.build``.
"""

from __future__ import annotations

import csv
import hashlib
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from analysis.data.contract import (
    DEFAULT_INSTRUMENT,
    EMPLOYEE_SURVEY_FIXED,
    MAX_TEXT_LENGTH,
    REQUIRED_SCALE,
    SCALE_NAMES,
    TABLE_NAMES,
    TABLES_LINKED_TO_UNITS,
    ColumnSpec,
    Instrument,
    Scale,
    TableSpec,
    table_specs,
)

FIRST_DATA_ROW = 2  # the header is row 1
ROWS_SHOWN = 5
INSTRUMENT_FILE = "instrument.yaml"
# Written by ``analysis.data.synth`` beside the tables of a generated study; its presence (not its
# text) makes ``Dataset.synthetic`` true, so every page can say the data are not real.
SYNTHETIC_FILE = "SYNTHETIC.md"
ISO_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


@dataclass(frozen=True)
class Problem:
    """One broken rule: where it is broken, and how often.

    ``str(problem)`` is the line a user reads: the file, the column, the rule and the first
    ``ROWS_SHOWN`` spreadsheet row numbers.

    Attributes
    ----------
    file : str
        The file's name (``units.csv``), or a description of an in-memory table.
    column : str or None
        The column, or None for a rule about the whole file.
    rule : str
        What is wrong, in words a user can act on.
    rows : tuple of int
        The first few rows where it is broken, numbered as a spreadsheet does (header = 1).
    count : int
        How many rows break it in all.
    """

    file: str
    column: str | None
    rule: str
    rows: tuple[int, ...] = ()
    count: int = 1

    def __str__(self) -> str:
        column = self.column
        if column is not None and len(column) > 60:  # a message must stay readable
            column = column[:57] + "…"
        where = self.file if column is None else f"{self.file}, column {column!r}"
        text = f"{where}: {self.rule}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:ROWS_SHOWN])
            more = ", …" if self.count > ROWS_SHOWN else ""
            noun = "row" if self.count == 1 else "rows"
            text += f" ({self.count} {noun}: {shown}{more})"
        return text


class DatasetError(ValueError):
    """The dataset breaks the data contract; every broken rule is listed at once.

    The message names the dataset, the number of problems and each problem on its own line,
    so a user fixes every file in one pass rather than once per rerun.

    Parameters
    ----------
    directory : Path or str
        The dataset folder (or a description such as ``"tables in memory"``).
    problems : iterable of Problem
        Every broken rule found.

    Attributes
    ----------
    directory : Path
        As given.
    problems : tuple of Problem
        Every broken rule, in the order found.
    """

    def __init__(self, directory: Path | str, problems: Iterable[Problem]):
        self.directory = Path(directory)
        self.problems = tuple(problems)
        lines = [
            f"{self.directory} does not follow the data contract ({len(self.problems)} "
            f"problem{'s' if len(self.problems) != 1 else ''}):"
        ]
        lines += [f"  - {p}" for p in self.problems]
        lines.append("Row numbers count the header as row 1. See data/README.md for the rules.")
        super().__init__("\n".join(lines))


@dataclass
class Dataset:
    """A validated dataset: typed tables, the instrument, and where they came from.

    Built by ``load_dataset`` or ``dataset_from_tables`` only, so every instance follows the
    data contract (``analysis.data.contract``).

    Attributes
    ----------
    units, employee_survey, customer_nps, customers : DataFrame
        The contract's tables, typed (identifiers as strings, dates as ``datetime64[ns]``,
        items and scores as nullable ``Int64``).
    instrument : Instrument
        Which survey items form which scale (``instrument.yaml`` or the contract's default).
    files : dict of str to Path
        Where each table was read from, by table name.
    synthetic : bool
        True when the folder holds ``SYNTHETIC_FILE``, the marker ``analysis.data.synth``
        writes beside a generated study: its units, answers and customers are not real.
    """

    units: pd.DataFrame
    employee_survey: pd.DataFrame
    customer_nps: pd.DataFrame
    customers: pd.DataFrame
    instrument: Instrument = DEFAULT_INSTRUMENT
    files: dict[str, Path] = field(default_factory=dict)
    synthetic: bool = False

    def tables(self) -> dict[str, pd.DataFrame]:
        """The contract's tables by name, in the contract's order.

        Returns
        -------
        dict of str to DataFrame
            ``{name: table}`` for every name in ``analysis.data.contract.TABLE_NAMES``; the
            frames themselves, not copies.
        """
        return {name: getattr(self, name) for name in TABLE_NAMES}


# --------------------------------------------------------------------------------------------
# Instrument


def load_instrument(directory: Path) -> tuple[Instrument, list[Problem]]:
    """Read ``instrument.yaml`` if present; otherwise the contract's default instrument.

    Parameters
    ----------
    directory : Path
        The dataset folder.

    Returns
    -------
    tuple of (Instrument, list of Problem)
        The instrument and no problems; or, when the file cannot be read or breaks a rule,
        the default instrument and every problem found (scale names the analysis knows,
        ``engagement`` present, each item listed once, item names usable as survey columns).

    Notes
    -----
    Format::

        scales:
          engagement:
            items: [eng_1, eng_2, eng_3]
            range: [1, 5]
            favourable: 4        # optional
            reverse: [eng_3]     # optional: items where a high answer means less of the scale
    """
    path = directory / INSTRUMENT_FILE
    if not path.exists():
        return DEFAULT_INSTRUMENT, []
    if problem := not_a_file(path, "the instrument"):
        return DEFAULT_INSTRUMENT, [problem]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        return DEFAULT_INSTRUMENT, [
            Problem(INSTRUMENT_FILE, None, f"cannot be read ({error.strerror})")
        ]
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        return DEFAULT_INSTRUMENT, [Problem(INSTRUMENT_FILE, None, f"is not valid YAML ({error})")]
    problems: list[Problem] = []
    scales = []
    entries = raw.get("scales") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        return DEFAULT_INSTRUMENT, [Problem(INSTRUMENT_FILE, None, "needs a mapping 'scales:'")]
    for name, entry in entries.items():
        try:
            items = tuple(str(i) for i in entry["items"])
            low, high = (int(v) for v in entry["range"])
            if not items or low >= high:
                raise ValueError
            reverse = tuple(str(i) for i in entry.get("reverse", ()))
            if not set(reverse) <= set(items):
                raise ValueError
            favourable = entry.get("favourable")
            scales.append(
                Scale(
                    str(name),
                    items,
                    low,
                    high,
                    None if favourable is None else float(favourable),
                    reverse,
                )
            )
        except (KeyError, TypeError, ValueError):
            problems.append(
                Problem(
                    INSTRUMENT_FILE,
                    None,
                    f"scale {name!r} needs 'items' (a non-empty list) and 'range' [low, high] with "
                    "low < high; 'reverse' may only name its own items",
                )
            )
    problems += _instrument_name_problems(entries) + _item_name_problems(entries)
    if problems:
        return DEFAULT_INSTRUMENT, problems
    return Instrument(tuple(scales)), []


def _instrument_name_problems(entries: dict) -> list[Problem]:
    """Scale names the analysis knows, engagement present, no item in two places (contract v2)."""
    problems = []
    unknown = [str(name) for name in entries if name not in SCALE_NAMES]
    if unknown:
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"unknown scale name{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(n) for n in unknown)}: the scale names are fixed "
                f"({', '.join(SCALE_NAMES)}); item names are free",
            )
        )
    if REQUIRED_SCALE not in entries:
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"has no {REQUIRED_SCALE!r} scale: every estimand needs it; name the scale "
                f"whose items measure engagement {REQUIRED_SCALE!r}",
            )
        )
    listed: dict[str, list[str]] = {}
    for name, entry in entries.items():
        items = entry.get("items") if isinstance(entry, dict) else None
        for item in items if isinstance(items, list) else ():
            listed.setdefault(str(item), []).append(str(name))
    twice = {item: names for item, names in listed.items() if len(names) > 1}
    if twice:
        shown = "; ".join(f"{item!r} in {', '.join(names)}" for item, names in twice.items())
        problems.append(Problem(INSTRUMENT_FILE, None, f"an item may be listed once only: {shown}"))
    return problems


def _item_name_problems(entries: dict) -> list[Problem]:
    """Item names are survey columns: not blank, not the survey's own columns, not too long."""
    fixed = [c.name for c in EMPLOYEE_SURVEY_FIXED]
    blank, own, long = [], [], []
    for name, entry in entries.items():
        items = entry.get("items") if isinstance(entry, dict) else None
        for item in items if isinstance(items, list) else ():
            text = str(item)
            if not text.strip():
                blank.append(str(name))
            elif text in fixed:
                own.append(f"{text!r} in {name}")
            elif len(text) > MAX_TEXT_LENGTH:
                long.append(str(name))
    problems = []
    if blank:
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"an item name is blank in {', '.join(dict.fromkeys(blank))}: name the survey "
                "column that holds the answers",
            )
        )
    if own:
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"an item cannot be one of the survey's own columns ({', '.join(fixed)}): "
                f"{'; '.join(own)}; name the column that holds the answers",
            )
        )
    if long:
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"an item name is longer than {MAX_TEXT_LENGTH} characters in "
                f"{', '.join(dict.fromkeys(long))}: shorten the survey column's name",
            )
        )
    return problems


# --------------------------------------------------------------------------------------------
# Reading one table


def not_a_file(path: Path, what: str = "the table") -> Problem | None:
    """A problem if ``path`` is not a regular file (or a link to one).

    Checked before anything is opened: a folder cannot be read, and opening a named pipe
    (FIFO) with no writer, or reading a device such as ``/dev/zero``, would never end.

    Parameters
    ----------
    path : Path
        The file about to be read.
    what : str
        What the file should hold, for the message (``"the table"``, ``"the instrument"``).

    Returns
    -------
    Problem or None
        None for a regular file; otherwise a problem naming what ``path`` is (a folder, a
        named pipe, a device, a socket) or why it cannot be examined.
    """
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return Problem(path.name, None, f"cannot be read ({error.strerror})")
    if stat.S_ISREG(mode):
        return None
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a named pipe (FIFO)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return Problem(
        path.name,
        None,
        f"is {kind}, not a file, so it is not read: replace it with {what} as a regular file",
    )


def find_table_files(directory: Path) -> tuple[dict[str, Path], list[Problem]]:
    """Find each contract table in a dataset folder, as ``NAME.csv`` or ``NAME.parquet``.

    Parameters
    ----------
    directory : Path
        The dataset folder.

    Returns
    -------
    tuple of (dict of str to Path, list of Problem)
        The file of each table found, by table name, and the problems: a table missing, a
        table stored both as CSV and Parquet (the CSV is still checked, so every other problem
        is listed too), or a path that is not a regular file (``not_a_file``), whose table is
        then left out.
    """
    files: dict[str, Path] = {}
    problems = []
    for name in TABLE_NAMES:
        candidates = [directory / f"{name}{ext}" for ext in (".csv", ".parquet")]
        present = [p for p in candidates if p.exists()]
        unreadable = [problem for p in present if (problem := not_a_file(p))]
        if unreadable:
            problems += unreadable
            continue
        if len(present) == 2:
            problems.append(
                Problem(
                    f"{name}.csv + {name}.parquet",
                    None,
                    "a table must be stored once: both spellings are present, remove one",
                )
            )
            files[name] = present[0]  # still checked, so that every other problem is listed too
        elif not present:
            problems.append(Problem(f"{name}.csv", None, "required table is missing"))
        else:
            files[name] = present[0]
    return files, problems


def _read_raw(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read a table without interpreting it: CSV cells stay strings, so ``007`` stays ``007``."""
    if problem := not_a_file(path):  # a folder, a FIFO or a device: never opened
        return None, [problem]
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several unrelated types
            return None, [Problem(path.name, None, f"cannot be read as Parquet ({error})")]
        frame = frame.reset_index(drop=True)
        long = [str(c) for c in frame.columns if len(str(c)) > MAX_TEXT_LENGTH]
        return (None, [_long_column_name(path.name, long)]) if long else (frame, [])
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as error:
        return None, [
            Problem(path.name, None, f"is not UTF-8 text ({error.reason} at byte {error.start})")
        ]
    except csv.Error as error:
        if "field limit" in str(error):  # a header cell over the csv module's 128 KiB limit
            return None, [_long_column_name(path.name, [])]
        return None, [Problem(path.name, None, f"has a header row that is not CSV ({error})")]
    except OSError as error:
        return None, [Problem(path.name, None, f"cannot be read ({error.strerror})")]
    if not header:
        return None, [Problem(path.name, None, "is empty: it needs at least a header row")]
    long = [c for c in header if len(c) > MAX_TEXT_LENGTH]
    if long:
        return None, [_long_column_name(path.name, long)]
    seen, duplicated = set(), []
    for column in header:
        if column in seen:
            duplicated.append(column)
        seen.add(column)
    if duplicated:
        return None, [
            Problem(path.name, c, "column name appears more than once")
            for c in dict.fromkeys(duplicated)
        ]
    try:
        # index_col=False: a row with more cells than the header is an error, not an index
        frame = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            index_col=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as error:
        return None, [Problem(path.name, None, f"is not well-formed CSV ({error})")]
    except OSError as error:
        return None, [Problem(path.name, None, f"cannot be read ({error.strerror})")]
    return frame.reset_index(drop=True), []


def _long_column_name(file: str, names: list[str]) -> Problem:
    """The problem of a header with a column name over ``MAX_TEXT_LENGTH`` characters."""
    shown = f" (the first starts {names[0][:40]!r}…)" if names else ""
    return Problem(
        file,
        None,
        f"a column name is longer than the {MAX_TEXT_LENGTH}-character limit{shown}: "
        "shorten the header row's names",
    )


def _rows(mask: pd.Series) -> tuple[tuple[int, ...], int]:
    """Spreadsheet row numbers where ``mask`` holds; frames keep the file's 0-based RangeIndex."""
    labels = mask.index[mask.to_numpy(dtype=bool)]
    return tuple(int(i) + FIRST_DATA_ROW for i in labels[:ROWS_SHOWN]), int(len(labels))


def _problem(file: str, column: str | None, rule: str, mask: pd.Series) -> Problem | None:
    """A problem at the rows where ``mask`` holds, or None where it holds nowhere."""
    rows, count = _rows(mask)
    return Problem(file, column, rule, rows, count) if count else None


def _parse_column(
    values: pd.Series, spec: ColumnSpec, file: str
) -> tuple[pd.Series, Problem | None]:
    """Turn raw cells into the column's type; cells that cannot be read become a problem."""
    present = values.notna()
    if spec.kind in ("id", "text"):
        if pd.api.types.is_float_dtype(values):  # Parquet ids stored as numbers
            values = values.astype("Int64")
        parsed = values.astype("str").where(present, None).astype("string")
        lengths = parsed.str.len()
        long = (lengths > MAX_TEXT_LENGTH).fillna(False)
        if long.any():  # checked first, and the cells dropped: nothing else reads them
            longest = int(lengths.max())
            return parsed.mask(long, pd.NA), _problem(
                file,
                spec.name,
                f"text is longer than the {MAX_TEXT_LENGTH}-character limit (the longest has "
                f"{longest:,}); shorten it",
                long,
            )
        if spec.kind == "id":
            parsed = parsed.str.strip()
            blank = present & (parsed == "")
            parsed = parsed.mask(blank, pd.NA)
            return parsed, _problem(file, spec.name, "identifier is blank", blank.fillna(False))
        return parsed, None
    if spec.kind == "date":
        if pd.api.types.is_datetime64_any_dtype(values):
            parsed = values.dt.tz_localize(None) if values.dt.tz else values
            return parsed.astype("datetime64[ns]").dt.normalize(), None
        text = values.astype("string").str.strip()
        # pandas reads "today" and "now" as the clock's time and "2024-3-31" as a date even
        # with an explicit format; the contract asks for exactly YYYY-MM-DD.
        iso = text.str.fullmatch(ISO_DATE).fillna(False).astype(bool)
        parsed = pd.to_datetime(text.where(iso), format="%Y-%m-%d", errors="coerce")
        bad = present & parsed.isna()
        return parsed.astype("datetime64[ns]"), _problem(
            file, spec.name, "is not a date in ISO form YYYY-MM-DD", bad
        )
    if spec.kind == "bool":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean"), None
        text = values.astype("string").str.strip().str.lower()
        parsed = text.map({"true": True, "false": False}, na_action="ignore").astype("boolean")
        bad = present & parsed.isna()
        return parsed, _problem(file, spec.name, "is not 'true' or 'false'", bad)
    # integers
    numbers = (
        values
        if pd.api.types.is_numeric_dtype(values)
        else pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    )
    numbers = numbers.astype("float64")
    bad = present & (numbers.isna() | (numbers != np.floor(numbers)))
    parsed = numbers.where(~bad).astype("Int64")
    return parsed, _problem(file, spec.name, "is not a whole number", bad)


def _pandera_schema(spec: TableSpec, columns: Iterable[str]) -> pa.DataFrameSchema:
    """The contract's value rules for one table, for the columns the file has."""
    schema_columns = {}
    for column in spec.columns:
        if column.name not in columns:
            continue
        checks = []
        if column.low is not None:
            checks.append(
                pa.Check.in_range(
                    column.low,
                    column.high,
                    error=f"value outside the allowed range {column.low}–{column.high}",
                )
            )
        schema_columns[column.name] = pa.Column(
            nullable=column.nullable, unique=column.unique, checks=checks, coerce=False
        )
    unique = [c for c in spec.unique_together if c in columns] or None
    return pa.DataFrameSchema(schema_columns, unique=unique, report_duplicates="all")


_PANDERA_RULES = {
    "not_nullable": "required value is blank",
    "field_uniqueness": "value must be unique but is repeated",
}


def _pandera_problems(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, file: str, spec: TableSpec
) -> list[Problem]:
    """Pandera's failures of the value rules, one problem per column and rule."""
    try:
        # inplace: nothing is coerced, and a copy of ten million rows costs a gigabyte
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases.dropna(subset=["index"])
        problems = []
        together = cases["check"] == "multiple_fields_uniqueness"
        if together.any():
            index = pd.Index(cases.loc[together, "index"].astype(int).unique())
            mask = pd.Series(frame.index.isin(index), index=frame.index)
            problems.append(
                _problem(
                    file,
                    ", ".join(spec.unique_together),
                    "combination must be unique but is repeated",
                    mask,
                )
            )
        for (column, check), group in cases[~together].groupby(["column", "check"], sort=False):
            mask = pd.Series(frame.index.isin(group["index"].astype(int)), index=frame.index)
            problems.append(_problem(file, column, _PANDERA_RULES.get(check, check), mask))
        return [p for p in problems if p]
    return []


def _read_table(path: Path, spec: TableSpec) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read one table's file, then type and check it (``_typed_table``)."""
    raw, problems = _read_raw(path)
    if raw is None:
        return None, problems
    frame, table_problems = _typed_table(raw, spec, path.name)
    return frame, problems + table_problems


def _typed_table(raw: pd.DataFrame, spec: TableSpec, file: str) -> tuple[pd.DataFrame, list]:
    """Type and check one table already in memory (read from a file or built in Python)."""
    problems: list[Problem] = []
    missing = [c.name for c in spec.columns if c.required and c.name not in raw.columns]
    for column in missing:
        problems.append(Problem(file, column, "required column is missing"))
    typed = {}
    unreadable = pd.Series(False, index=raw.index)
    for column in spec.columns:
        if column.name in raw.columns:
            typed[column.name], problem = _parse_column(raw[column.name], column, file)
            if problem:
                problems.append(problem)
                unreadable |= raw[column.name].notna() & typed[column.name].isna()
    frame = pd.DataFrame(typed, index=raw.index)
    # Extra columns pass through untouched (a covariate may be named in the parameters).
    extras = [c for c in raw.columns if c not in typed]
    frame = pd.concat([frame, raw[extras]], axis=1) if extras else frame
    # Rows with a cell that could not be read are already reported; pandera checks the rest.
    checked = frame[~unreadable] if unreadable.any() else frame
    problems += _pandera_problems(_pandera_schema(spec, frame.columns), checked, file, spec)
    return frame, problems


# --------------------------------------------------------------------------------------------
# Rules across tables


def _cross_table_problems(
    tables: dict[str, pd.DataFrame], files: dict[str, Path], instrument: Instrument
) -> list[Problem]:
    """Rules across tables: known units, churn not before start, instrument items present."""
    problems: list[Problem | None] = []
    if "units" in tables and "unit_id" in tables["units"]:
        known = pd.Index(tables["units"]["unit_id"].dropna().unique())
        for name in TABLES_LINKED_TO_UNITS:
            frame = tables.get(name)
            if frame is None or "unit_id" not in frame:
                continue
            unknown = frame["unit_id"].notna() & ~frame["unit_id"].isin(known)
            problems.append(
                _problem(files[name].name, "unit_id", "unit_id is not in the units table", unknown)
            )
    customers = tables.get("customers")
    if customers is not None and {"since", "churned_on"} <= set(customers.columns):
        early = customers["churned_on"] < customers["since"]
        problems.append(
            _problem(
                files["customers"].name,
                "churned_on",
                "churned_on is before since",
                early.fillna(False),
            )
        )
    survey = tables.get("employee_survey")
    if survey is not None:
        for item in instrument.items:
            if item not in survey.columns:
                problems.append(
                    Problem(
                        files["employee_survey"].name,
                        item,
                        "instrument item is missing from the survey",
                    )
                )
    return [p for p in problems if p]


# --------------------------------------------------------------------------------------------
# The public entry points


def load_dataset(directory: Path | str) -> Dataset:
    """Read and validate a dataset directory; raise ``DatasetError`` listing every problem.

    Files are only read, never modified.

    Parameters
    ----------
    directory : Path or str
        A folder with ``units``, ``employee_survey``, ``customer_nps`` and ``customers`` as
        ``.csv`` or ``.parquet``, and optionally ``instrument.yaml``.

    Returns
    -------
    Dataset
        Tables typed: identifiers as strings, dates as ``datetime64[ns]``, item and score
        columns as nullable ``Int64``, ``customer_facing`` as nullable boolean (blank means
        the contract's default, true); ``synthetic`` true when the folder holds the marker
        ``SYNTHETIC_FILE`` (any other file beside the tables is ignored).

    Raises
    ------
    DatasetError
        If ``directory`` is not a folder or the data break the contract; the error lists
        every problem found, in every file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(directory, [Problem(str(directory), None, "is not a directory")])
    instrument, problems = load_instrument(directory)
    files, found_problems = find_table_files(directory)
    problems += found_problems
    specs = table_specs(instrument)
    tables = {}
    for name, path in files.items():
        frame, table_problems = _read_table(path, specs[name])
        problems += table_problems
        if frame is not None:
            tables[name] = frame
    dataset = _checked_dataset(directory, tables, files, instrument, problems)
    # a marker that is a folder or a pipe is not the kit's: only a regular file counts
    dataset.synthetic = (directory / SYNTHETIC_FILE).is_file()
    return dataset


def _checked_dataset(
    where: Path | str,
    tables: dict[str, pd.DataFrame],
    files: dict[str, Path],
    instrument: Instrument,
    problems: list[Problem],
) -> Dataset:
    """The rules across tables, then the dataset; ``DatasetError`` if anything was broken."""
    problems = problems + _cross_table_problems(tables, files, instrument)
    if problems:
        raise DatasetError(where, problems)
    units = tables["units"]
    if "customer_facing" not in units:
        units["customer_facing"] = pd.array([True] * len(units), dtype="boolean")
    else:
        units["customer_facing"] = units["customer_facing"].fillna(True)
    return Dataset(**tables, instrument=instrument, files=files)


def dataset_from_tables(
    tables: dict[str, pd.DataFrame], instrument: Instrument = DEFAULT_INSTRUMENT
) -> Dataset:
    """Validate tables held in memory (e.g. a ``analysis.data.synth`` study) exactly as files are.

    The same typing and contract checks as ``load_dataset`` (the Parquet path: typed columns
    are accepted as they are), without writing anything; the calibration study uses it to
    estimate thousands of generated studies. Tables are copied, never modified.

    Parameters
    ----------
    tables : dict of str to DataFrame
        The contract's tables by name.
    instrument : Instrument
        Which items form which scale; the contract's default unless given.

    Returns
    -------
    Dataset
        Typed as by ``load_dataset``; ``files`` names each table ``<name> (in memory)`` so
        messages still say which table is wrong.

    Raises
    ------
    DatasetError
        If a table is missing or the tables break the contract.
    """
    files = {name: Path(f"{name} (in memory)") for name in TABLE_NAMES if name in tables}
    problems = [
        Problem(f"{name} (in memory)", None, "required table is missing")
        for name in TABLE_NAMES
        if name not in tables
    ]
    specs = table_specs(instrument)
    typed = {}
    for name, path in files.items():
        raw = tables[name].reset_index(drop=True)
        typed[name], table_problems = _typed_table(raw, specs[name], path.name)
        problems += table_problems
    return _checked_dataset("tables in memory", typed, files, instrument, problems)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks so large files need little memory.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    str
        The digest as 64 lower-case hexadecimal characters.

    Raises
    ------
    OSError
        If the file cannot be read.

    References
    ----------
    NIST (2015). *Secure Hash Standard (SHS)*. FIPS PUB 180-4.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A cell already made safe, or text that would look like one: apostrophes, then a formula start.
_NEUTRALISED = r"^'+[=+\-@\t\r]"


def spreadsheet_safe(values: pd.Series) -> pd.Series:
    """Neutralise text a spreadsheet would run as a formula (CSV injection).

    A text cell starting with ``= + - @``, tab or carriage return gets a leading apostrophe, as
    OWASP's CSV-injection guidance recommends; spreadsheets then show it as text. Numbers are
    never text here, so negative estimates are untouched. Text that already looks neutralised
    (apostrophes, then one of those characters) gets one more apostrophe, so that
    :func:`undo_spreadsheet_safe` recovers every value exactly.

    Parameters
    ----------
    values : Series
        A column (or the headers) about to be written to CSV.

    Returns
    -------
    Series
        The same values, risky text cells prefixed with ``'``.

    References
    ----------
    OWASP Foundation. *CSV Injection*. https://owasp.org/www-community/attacks/CSV_Injection
    """
    text = values.astype("string")
    risky = text.str.startswith(FORMULA_STARTS).fillna(False)
    risky |= text.str.contains(_NEUTRALISED, regex=True).fillna(False)
    return values.where(~risky, "'" + text)


def undo_spreadsheet_safe(values: pd.Series) -> pd.Series:
    """The original text of cells written by :func:`spreadsheet_safe`; others unchanged.

    Result tables are read back (``analysis.data.results.read_results``) and joined to the data
    on ``unit_id``: a unit called ``=1+1`` or ``-12`` must come back as itself, not ``'=1+1``.

    Parameters
    ----------
    values : Series
        A column (or the headers) read from a CSV file the kit wrote.

    Returns
    -------
    Series
        Text cells marked by :func:`spreadsheet_safe` without their first apostrophe; a column
        that is not text is returned as it is.

    References
    ----------
    OWASP Foundation. *CSV Injection*. https://owasp.org/www-community/attacks/CSV_Injection
    """
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return values
    text = values.astype("string")
    marked = text.str.contains(_NEUTRALISED, regex=True).fillna(False)
    return values.where(~marked, text.str.slice(1))


def _csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO, booleans as the contract's lower-case words, text spreadsheet-safe."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d")
        elif pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].map({True: "true", False: "false"})
        elif pd.api.types.is_object_dtype(out[column]) or pd.api.types.is_string_dtype(out[column]):
            out[column] = spreadsheet_safe(out[column])
    # Headers are cells too: a column named after an instrument scale or a covariate must not
    # run as a formula either. undo_spreadsheet_safe on the names recovers them on reading.
    out.columns = list(spreadsheet_safe(pd.Series([str(c) for c in out.columns], dtype=object)))
    return out


def write_tables(
    tables: dict[str, pd.DataFrame],
    directory: Path | str,
    *,
    file_format: str = "csv",
    extra_files: dict[str, str | bytes] | None = None,
    kind: str = "tables",
) -> Path:
    """Write tables (and small text or binary files) as one directory, all or nothing.

    Used for generated datasets (``kind="dataset"``) and, through ``analysis.data.results``,
    for result folders (``"results"``).

    ``directory`` must be new, empty, or a folder this function wrote before as the same
    ``kind`` and holding nothing else (``analysis.data.folders.check_replaceable``): a folder
    holding a user's files is refused with ``analysis.data.folders.OutputError``, never deleted.
    Everything is written into a hidden sibling directory, marked with ``.inside-out``, that
    replaces ``directory`` only once complete, in one atomic exchange; an interrupted or failed
    run leaves the previous folder as it was and no staging folder behind. A full or read-only
    disk raises ``analysis.data.folders.StorageError``.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Tables by name; each becomes ``NAME.csv`` (dates ISO, booleans ``true``/``false``, text
        :func:`spreadsheet_safe`) or ``NAME.parquet``.
    directory : Path or str
        The folder to write.
    file_format : {"csv", "parquet"}
    extra_files : dict of str to str or bytes, optional
        Further files by name, written as they are (``truth.json``, ``manifest.json``).
    kind : str
        What the folder is (``analysis.data.folders.WHAT``), recorded in its marker.

    Returns
    -------
    Path
        The folder written.

    References
    ----------
    Linux ``renameat2(2)``, flag ``RENAME_EXCHANGE``: the atomic exchange of the two folders.
    """
    from analysis.data import folders

    directory = folders.check_replaceable(directory, kind)
    with folders.writing(directory.parent):
        staging = folders.new_staging(directory)
        try:
            names = []
            for name, frame in tables.items():
                if file_format == "parquet":
                    frame.to_parquet(staging / f"{name}.parquet", index=False)
                    names.append(f"{name}.parquet")
                else:
                    _csv_ready(frame).to_csv(
                        staging / f"{name}.csv", index=False, lineterminator="\n"
                    )
                    names.append(f"{name}.csv")
            for name, content in (extra_files or {}).items():
                if isinstance(content, bytes):
                    (staging / name).write_bytes(content)
                else:
                    (staging / name).write_text(content, encoding="utf-8")
                names.append(name)
            folders.write_marker(staging, kind, names)
            folders.replace_folder(staging, directory)
        except BaseException:
            folders.discard(staging)
            raise
    return directory


def default_as_of(dataset: Dataset) -> pd.Timestamp:
    """The end of observation when the parameters do not set ``as_of``: the latest date seen.

    Parameters
    ----------
    dataset : Dataset
        The validated dataset.

    Returns
    -------
    Timestamp
        The latest of the survey waves, NPS response dates, customers' ``since`` and
        ``churned_on`` dates (missing dates ignored).

    Raises
    ------
    ValueError
        If the dataset holds no date at all.
    """
    dates = [
        dataset.employee_survey["wave"].max(),
        dataset.customer_nps["responded_on"].max(),
        dataset.customers["since"].max(),
        dataset.customers["churned_on"].max(),
    ]
    return max(pd.Timestamp(d) for d in dates if pd.notna(d))
