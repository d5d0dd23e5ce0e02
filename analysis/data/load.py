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

import codecs
import csv
import difflib
import hashlib
import re
import stat
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from analysis.data.contract import (
    DEFAULT_INSTRUMENT,
    DEFAULT_OPTIONAL_SCALES,
    DETRACTOR_MAX,
    EMPLOYEE_SURVEY_FIXED,
    HEADCOUNT_MIN,
    MAX_TEXT_LENGTH,
    OPTIONAL_TABLE_NAMES,
    POINTS_OF_CONNECTION,
    PROMOTER_MIN,
    REQUIRED_SCALE,
    SCALE_NAMES,
    TABLE_NAMES,
    TABLES_LINKED_TO_UNITS,
    ColumnSpec,
    Instrument,
    Scale,
    TableSpec,
    default_instrument,
    table_specs,
)

FIRST_DATA_ROW = 2  # the header is row 1
# How every CSV table is read: each cell as text, only an empty cell missing, UTF-8 with or
# without a byte-order mark; index_col=False makes a row with more cells than the header an
# error, not an index. The screen (analysis.data.screen) reads the first rows the same way.
CSV_READING = {
    "dtype": str,
    "keep_default_na": False,
    "na_values": [""],
    "encoding": "utf-8-sig",
    "index_col": False,
}
# The tables that grow with customers, not staff: an engine may keep them (Dataset.customer_tables)
CUSTOMER_TABLE_NAMES = ("customer_nps", "customers")
# A dataset may be a database instead of a folder (analysis.data.source.open_dataset)
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")
ROWS_SHOWN = 5
INSTRUMENT_FILE = "instrument.yaml"
# Written by ``analysis.data.synth`` beside the tables of a generated study; its presence (not its
# text) makes ``Dataset.synthetic`` true, so every page can say the data are not real.
SYNTHETIC_FILE = "SYNTHETIC.md"


@dataclass(frozen=True)
class Problem:
    """One broken rule: where it is broken, how often, and the values that break it.

    ``str(problem)`` is the line a user reads: the file, the column, the rule, then the first
    ``ROWS_SHOWN`` spreadsheet row numbers, each with its offending value when known::

        customer_nps.csv, column 'likelihood_to_recommend': is not a whole number
        (3 rows: 5 '7.5', 9 'ten', 12 'n/a')

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
    values : tuple of str
        The offending cell of each row in ``rows``, as text; empty when the rule is about a
        blank cell or a row as a whole. Shown quoted, at most ``VALUE_CHARS`` characters each,
        with control characters and bidirectional overrides escaped (``shown_value``).
    """

    file: str
    column: str | None
    rule: str
    rows: tuple[int, ...] = ()
    count: int = 1
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        column = self.column
        if column is not None and len(column) > 60:  # a message must stay readable
            column = column[:57] + "…"
        where = self.file if column is None else f"{self.file}, column {shown_text(column)}"
        text = f"{where}: {self.rule}"
        if self.rows:
            rows = self.rows[:ROWS_SHOWN]
            if len(self.values) >= len(rows):
                cells = [f"{r} {shown_value(v)}" for r, v in zip(rows, self.values, strict=False)]
            else:
                cells = [str(r) for r in rows]
            more = ", …" if self.count > len(rows) else ""
            noun = "row" if self.count == 1 else "rows"
            text += f" ({self.count:,} {noun}: {', '.join(cells)}{more})"
        return text


VALUE_CHARS = 40  # an offending value is shown up to this length, then "…"


def shown_text(text: str) -> str:
    """Text quoted for a terminal: control, format and bidirectional characters escaped.

    Parameters
    ----------
    text : str
        A name or value taken from a user's file.

    Returns
    -------
    str
        ``repr(text)``: Python escapes every character that is not printable (categories Cc,
        Cf, Cs, Co, Cn, Zl, Zp and Zs other than the space), so an escape sequence or a
        right-to-left override (U+202E) in a cell cannot reach the terminal or reorder the line.

    References
    ----------
    Boucher, N. & Anderson, R. (2023). Trojan Source: Invisible Vulnerabilities. USENIX
    Security Symposium (bidirectional overrides that reorder displayed text).
    """
    return repr(str(text))


def shown_value(value: object) -> str:
    """One offending value for a message: quoted, escaped, at most ``VALUE_CHARS`` characters.

    Parameters
    ----------
    value : object
        A cell's value.

    Returns
    -------
    str
        ``shown_text`` of its first ``VALUE_CHARS`` characters, followed by ``…`` when longer.
    """
    text = str(value)
    if len(text) <= VALUE_CHARS:
        return shown_text(text)
    return shown_text(text[:VALUE_CHARS]) + "…"


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
        The instrument in effect, the one to loop over: ``instrument.yaml``, or the contract's
        default with its optional scales (``communication_effort``) only when the survey
        answers them (``analysis.data.contract.default_instrument``).
    files : dict of str to Path
        Where each table was read from, by table name (optional tables only when present).
    synthetic : bool
        True when the folder holds ``SYNTHETIC_FILE``, the marker ``analysis.data.synth``
        writes beside a generated study: its units, answers and customers are not real.
    headcount, internal_service : DataFrame or None
        The optional tables (contract version 2), typed like the others; ``None`` when the
        dataset has no such table.
    customer_tables : analysis.data.engine.Tables or None
        Set when the dataset was opened in an engine (``analysis.data.source.open_dataset``):
        ``customer_nps`` and ``customers`` then stay there, screened against the contract,
        and are ``None`` here; the reductions of ``analysis.measures.reduction`` read them.
        ``None`` when every table is in pandas.
    reductions : dict
        Reduced tables already computed in the engine, kept for the run (e.g.
        ``analysis.models.churn_data.retention_at_waves``); empty in pandas.
    """

    units: pd.DataFrame
    employee_survey: pd.DataFrame
    customer_nps: pd.DataFrame | None
    customers: pd.DataFrame | None
    instrument: Instrument = DEFAULT_INSTRUMENT
    files: dict[str, Path] = field(default_factory=dict)
    synthetic: bool = False
    headcount: pd.DataFrame | None = None
    internal_service: pd.DataFrame | None = None
    # an analysis.data.engine.Tables; not imported here, as engine builds on this module
    customer_tables: Any = None
    reductions: dict = field(default_factory=dict, repr=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The dataset's tables by name, in the contract's order.

        Returns
        -------
        dict of str to DataFrame
            ``{name: table}`` for every name in ``analysis.data.contract.TABLE_NAMES``, then
            each optional table (``OPTIONAL_TABLE_NAMES``) the dataset holds; the frames
            themselves, not copies. ``Dataset(**dataset.tables(), ...)`` rebuilds it.
        """
        names = TABLE_NAMES + OPTIONAL_TABLE_NAMES
        return {name: frame for name in names if (frame := getattr(self, name)) is not None}

    def is_empty(self, name: str) -> bool:
        """Whether table ``name`` has no rows, in pandas or in the engine holding it.

        Parameters
        ----------
        name : str
            A contract table the dataset holds.

        Returns
        -------
        bool
        """
        frame = getattr(self, name)
        if frame is None and self.customer_tables is not None:
            table = self.customer_tables.tables[name]
            return int(table.limit(1).count().execute()) == 0
        return frame.empty


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
        ``NO_INSTRUMENT`` (no scales) and every problem found, each naming the scale and the
        form allowed: the scale names the analysis knows, ``engagement`` present, only the
        keys ``INSTRUMENT_KEYS``, each item listed once, item names usable as survey columns
        (``_item_name_problems``), ``range`` two integers ``low < high`` (``[0, 10]`` for
        ``enps``), ``favourable`` a number within the range, ``reverse`` items of the scale.

    Notes
    -----
    Format::

        scales:
          engagement:
            items: [eng_1, eng_2, eng_3]
            range: [1, 5]
            favourable: 4        # optional
            reverse: [eng_3]     # optional: items where a high answer means less of the scale

    A broken instrument does not say which columns hold the answers, so the survey is then
    checked without items: checking it against the default instrument instead reported every
    default item as missing from a survey that never meant to have them.
    """
    path = directory / INSTRUMENT_FILE
    if not path.exists():
        return DEFAULT_INSTRUMENT, []
    if problem := not_a_file(path, "the instrument"):
        return NO_INSTRUMENT, [problem]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        return NO_INSTRUMENT, [Problem(INSTRUMENT_FILE, None, f"cannot be read ({error.strerror})")]
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        return NO_INSTRUMENT, [Problem(INSTRUMENT_FILE, None, f"is not valid YAML ({error})")]
    entries = raw.get("scales") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        return NO_INSTRUMENT, [
            Problem(
                INSTRUMENT_FILE,
                None,
                "needs a mapping 'scales:' with at least the 'engagement' scale, e.g. "
                "'scales: {engagement: {items: [eng_1, eng_2], range: [1, 5]}}'",
            )
        ]
    problems: list[Problem] = []
    scales = []
    for name, entry in entries.items():
        scale, scale_problems = _scale_from_entry(name, entry)
        problems += scale_problems
        if scale is not None:
            scales.append(scale)
    problems += _instrument_name_problems(entries) + _item_name_problems(entries)
    if problems:
        return NO_INSTRUMENT, problems
    return Instrument(tuple(scales)), []


#: What ``load_instrument`` returns with its problems: no scales, so that a survey is checked
#: only by the rules that do not depend on the instrument.
NO_INSTRUMENT = Instrument(())
#: The keys of a scale in ``instrument.yaml``.
INSTRUMENT_KEYS = ("items", "range", "favourable", "reverse")
#: The range the ``enps`` scale must have: promoters (``PROMOTER_MIN``) and detractors
#: (``DETRACTOR_MAX``) are cut-offs on 0–10 (Reichheld 2003).
ENPS_RANGE = (0, 10)
#: The largest magnitude of a range end: 2**53, beyond which a float (scores are computed in
#: floating point) no longer holds every integer exactly (IEEE 754 binary64).
RANGE_LIMIT = 2**53


def _shown_yaml(value: object) -> str:
    """A value of ``instrument.yaml`` as YAML would spell it (``[true, 5]``), quoted and escaped."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return shown_value(text.removesuffix("...").strip())


def _scale_problem(name: object, rule: str) -> Problem:
    return Problem(INSTRUMENT_FILE, None, f"scale {shown_value(name)}: {rule}")


def _is_number(value: object) -> bool:
    """A finite int or float, not a bool (YAML reads ``yes`` and ``true`` as booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or np.isfinite(value)  # np.isfinite refuses huge ints


def _is_range_end(value: object) -> bool:
    """An int, not a bool, small enough that answers and scores stay exact as floats."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= RANGE_LIMIT


def _item_list(value: object) -> list[str] | None:
    """The item names of a YAML list of strings or numbers; None for any other form."""
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) or _is_number(v) for v in value):
        return None
    return [str(v) for v in value]


def _scale_from_entry(name: object, entry: object) -> tuple[Scale | None, list[Problem]]:
    """One scale of ``instrument.yaml``, or every problem of its keys, each with the form allowed.

    Item names themselves are checked by ``_item_name_problems``, scale names by
    ``_instrument_name_problems``.
    """
    if not isinstance(entry, dict):
        return None, [
            _scale_problem(
                name,
                f"must be a mapping of {', '.join(INSTRUMENT_KEYS)}, e.g. "
                "'{items: [q1, q2], range: [1, 5]}', not "
                f"{_shown_yaml(entry)}",
            )
        ]
    problems = []
    unknown = [key for key in entry if key not in INSTRUMENT_KEYS]
    for key in unknown:
        guess = closest_header(str(key), [k for k in INSTRUMENT_KEYS if k not in entry])
        hint = f" (did you mean {guess!r}?)" if guess else ""
        problems.append(
            _scale_problem(
                name,
                f"unknown key {shown_value(key)}{hint}: a scale has only "
                f"{', '.join(INSTRUMENT_KEYS)}",
            )
        )
    items = _item_list(entry.get("items"))
    if "items" not in entry:
        problems.append(
            _scale_problem(name, "needs 'items', a non-empty list of survey column names")
        )
    elif not items:
        problems.append(
            _scale_problem(
                name,
                "'items' must be a non-empty list of survey column names (text or numbers), "
                f"e.g. [q1, q2], not {_shown_yaml(entry['items'])}",
            )
        )
    span = entry.get("range")
    low = high = None
    if "range" not in entry:
        problems.append(_scale_problem(name, "needs 'range', two integers [low, high]"))
    elif not (isinstance(span, list) and len(span) == 2 and all(_is_range_end(v) for v in span)):
        problems.append(
            _scale_problem(
                name,
                "'range' must be two integers [low, high], e.g. [1, 5], each within "
                f"±{RANGE_LIMIT:,}, not {_shown_yaml(span)}",
            )
        )
    elif span[0] >= span[1]:
        swapped = f", e.g. [{span[1]}, {span[0]}]" if span[0] > span[1] else ""
        problems.append(_scale_problem(name, f"'range' {span} must have low < high{swapped}"))
    else:
        low, high = span
    if str(name) == "enps" and low is not None and (low, high) != ENPS_RANGE:
        problems.append(
            _scale_problem(
                name,
                f"'range' must be {list(ENPS_RANGE)}: promoters ({PROMOTER_MIN}–10) and "
                f"detractors (0–{DETRACTOR_MAX}) are cut-offs on the 0–10 "
                "recommendation question; ask it on 0–10, or drop the enps scale",
            )
        )
    favourable = entry.get("favourable")
    if favourable is not None:
        if not _is_number(favourable):
            problems.append(
                _scale_problem(
                    name,
                    "'favourable' must be a number (the answer at or above which a respondent "
                    f"counts as favourable), not {_shown_yaml(favourable)}",
                )
            )
        elif low is not None and not low <= favourable <= high:
            problems.append(
                _scale_problem(
                    name,
                    f"'favourable' {favourable} is outside the range [{low}, {high}]: give an "
                    f"answer within it, e.g. {high - (high - low) // 4}",
                )
            )
    reverse = entry.get("reverse", [])
    reversed_items = _item_list(reverse)
    if reversed_items is None:
        problems.append(
            _scale_problem(
                name,
                "'reverse' must be a list of the scale's own items, e.g. "
                f"[{items[-1] if items else 'q2'}], not {_shown_yaml(reverse)}",
            )
        )
    elif items:
        foreign = [item for item in reversed_items if item not in items]
        if foreign:
            problems.append(
                _scale_problem(
                    name,
                    f"'reverse' may only name items of this scale: "
                    f"{', '.join(shown_value(i) for i in foreign)} "
                    f"{'is' if len(foreign) == 1 else 'are'} not in its items "
                    f"({', '.join(shown_value(i) for i in items[:8])}"
                    f"{', …' if len(items) > 8 else ''})",
                )
            )
    if problems or not items or low is None:
        return None, problems
    return Scale(
        str(name),
        tuple(items),
        low,
        high,
        None if favourable is None else float(favourable),
        tuple(reversed_items or ()),
    ), []


def _instrument_name_problems(entries: dict) -> list[Problem]:
    """Scale names the analysis knows, engagement present, no item in two places (contract v2)."""
    problems = []
    unknown = [str(name) for name in entries if name not in SCALE_NAMES]
    if unknown:
        named = []
        for name in unknown:
            guess = closest_header(name, [n for n in SCALE_NAMES if n not in entries])
            named.append(
                f"{shown_value(name)} (did you mean {guess!r}?)" if guess else shown_value(name)
            )
        problems.append(
            Problem(
                INSTRUMENT_FILE,
                None,
                f"unknown scale name{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(named)}: the scale names are fixed "
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
    """Item names are survey columns: not blank, not the survey's own, short, CSV-safe.

    Each unreadable name (``_unreadable_item_rules``) is its own problem, naming the item, the
    scale, every rule it breaks and a name that keeps them.
    """
    fixed = [c.name for c in EMPLOYEE_SURVEY_FIXED]
    blank, own, long = [], [], []
    unreadable = []
    for name, entry in entries.items():
        items = _item_list(entry.get("items")) if isinstance(entry, dict) else None
        for text in items or ():
            if not text.strip():
                blank.append(str(name))
            elif text in fixed:
                own.append(f"{text!r} in {name}")
            elif len(text) > MAX_TEXT_LENGTH:
                long.append(str(name))
            elif rules := _unreadable_item_rules(text):
                unreadable.append(
                    Problem(
                        INSTRUMENT_FILE,
                        None,
                        f"item {shown_value(text)} of scale {shown_value(name)} "
                        f"{'; and '.join(rules)}: rename the survey column and the item, e.g. "
                        f"to {shown_text(_readable_item_name(text))}",
                    )
                )
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
    return problems + unreadable


# Spreadsheets run a cell starting with one of these as a formula; ``spreadsheet_safe`` therefore
# writes such a header with a leading apostrophe, and the item could not be found when read back.
ITEM_FORMULA_STARTS = ("=", "+", "-", "@")


def _unreadable_item_rules(text: str) -> list[str]:
    """The rules an item name breaks that would keep its column from surviving a CSV file.

    A header must come back from ``write_tables`` and any CSV editor exactly as written:
    control characters (line breaks, tabs, the record separator) split or reshape the header
    row, spaces at either end are trimmed by many tools, and a formula start is neutralised
    (OWASP, *CSV Injection*) so the header read back differs from the item.
    """
    rules = []
    controls = [c for c in text if unicodedata.category(c) == "Cc"]
    if controls:
        shown = ", ".join(repr(c) for c in dict.fromkeys(controls))
        rules.append(f"holds control characters ({shown}), which a CSV header cannot keep")
    if text != text.strip():
        rules.append("starts or ends with a space, which CSV tools trim")
    if text.startswith(ITEM_FORMULA_STARTS) or re.match(_NEUTRALISED, text):
        start = re.match(r"'*.", text, flags=re.DOTALL).group()
        rules.append(
            f"starts with {start!r}, a spreadsheet formula character (= + - @): written "
            "tables mark it with an apostrophe, so the column could not be read back"
        )
    return rules


def _readable_item_name(text: str) -> str:
    """``text`` with control characters as ``_``, no spaces at the ends, no formula start."""
    name = "".join("_" if unicodedata.category(c) == "Cc" else c for c in text).strip()
    name = name.lstrip("'=+-@ ").strip()
    return name or "item_1"


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
        The file of each table found, by table name (the required tables, then the optional
        ``headcount`` and ``internal_service`` when present), and the problems: a required
        table missing, a table stored both as CSV and Parquet (the CSV is still checked, so
        every other problem is listed too), or a path that is not a regular file
        (``not_a_file``), whose table is then left out.
    """
    files: dict[str, Path] = {}
    problems = []
    for name in TABLE_NAMES + OPTIONAL_TABLE_NAMES:
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
            if name in TABLE_NAMES:  # an optional table may simply be absent
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
    except UnicodeDecodeError:
        return None, [_encoding_problem(path)]
    except csv.Error as error:
        if "field limit" in str(error):  # a header cell over the csv module's 128 KiB limit
            return None, [_long_column_name(path.name, [])]
        return None, [Problem(path.name, None, f"has a header row that is not CSV ({error})")]
    except OSError as error:
        return None, [Problem(path.name, None, f"cannot be read ({error.strerror})")]
    if not header:
        return None, [Problem(path.name, None, "is empty: it needs at least a header row")]
    if separator := _separator_problem(path.name, header):
        return None, [separator]  # one problem, not one per column the contract expects
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
        frame = pd.read_csv(path, **CSV_READING)
    except UnicodeDecodeError:  # a byte further down than the header row
        return None, [_encoding_problem(path)]
    except (pd.errors.ParserError, csv.Error) as error:
        hint = (
            "; a cell that holds a comma (a decimal comma, a list) must be in double quotes"
            if "Expected" in str(error)
            else ""
        )
        return None, [Problem(path.name, None, f"is not well-formed CSV ({error}){hint}")]
    except OSError as error:
        return None, [Problem(path.name, None, f"cannot be read ({error.strerror})")]
    return frame.reset_index(drop=True), []


SEPARATORS = ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"))


def _separator_problem(file: str, header: list[str]) -> Problem | None:
    """A header read as one column that holds another separator: the file is not comma-separated.

    Excel writes "CSV" with semicolons where the comma is the decimal mark (most of continental
    Europe); other tools export tab-separated text.
    """
    if len(header) != 1:
        return None
    for separator, name in SEPARATORS:
        if separator in header[0]:
            return Problem(
                file,
                None,
                f"has one column, {shown_value(header[0])}: it looks {name}-separated; save it "
                "as comma-separated CSV (in Excel: Save As 'CSV UTF-8 (Comma delimited)')",
            )
    return None


# Which encoding a file that is not UTF-8 probably is, and how the user got it.
ENCODING_ORIGINS = {
    "UTF-16": "Excel's 'Unicode Text'",
    "Windows-1252": "Excel's 'CSV' on Windows",
    "ISO-8859-1 (Latin-1)": "an older export",
}


def _first_bad_byte(path: Path) -> tuple[int, int] | None:
    """The offset and the line (from 1) of the first byte that is not UTF-8; None if all are.

    Read in 1 MiB blocks through an incremental decoder, so a large file needs little memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                position = offset - pending + error.start
                return position, lines + block[: max(0, position - offset)].count(b"\n") + 1
            lines += block.count(b"\n")
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:  # the file ends inside a character
            return offset - pending, lines + 1
    return None


def guess_encoding(sample: bytes) -> str:
    """The encoding text that is not UTF-8 is most likely in.

    Parameters
    ----------
    sample : bytes
        The start of the file, or the lines around its first byte that is not UTF-8.

    Returns
    -------
    str
        ``"UTF-16"`` when the sample starts with a UTF-16 byte order mark or holds NUL bytes
        (every ASCII character of UTF-16 text has one); ``"Windows-1252"`` when it decodes as
        that code page (Excel's "CSV" on Windows in Western Europe and the Americas); otherwise
        ``"ISO-8859-1 (Latin-1)"``, which decodes any bytes.

    References
    ----------
    Unicode Consortium. *The Unicode Standard*, section 23.8 (byte order marks); Microsoft,
    code page 1252 (Windows Latin 1), whose bytes 0x81, 0x8D, 0x8F, 0x90 and 0x9D are undefined.
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in sample:
        return "UTF-16"
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        return "ISO-8859-1 (Latin-1)"
    return "Windows-1252"


def _encoding_problem(path: Path) -> Problem:
    """The problem of a CSV file that is not UTF-8: where, which encoding it looks like, the fix."""
    try:
        found = _first_bad_byte(path)
        with path.open("rb") as handle:
            sample = handle.read(4096)
            near = b""
            if found is not None:
                handle.seek(max(0, found[0] - 40))
                near = handle.read(81)  # the bad byte and 40 bytes either side
                handle.seek(max(0, found[0] - (1 << 16)))
                sample += handle.read(1 << 17)
    except OSError as error:
        return Problem(path.name, None, f"cannot be read ({error.strerror})")
    encoding = guess_encoding(sample)
    fix = (
        f"it looks like {encoding} ({ENCODING_ORIGINS[encoding]}); save it as "
        "'CSV UTF-8 (Comma delimited)', or export it again as UTF-8"
    )
    if found is None or encoding == "UTF-16":
        return Problem(path.name, None, f"is not UTF-8 text: {fix}")
    position, line = found
    at = min(40, position)  # where the bad byte is in ``near``
    # the cell around the byte, as the guessed encoding reads it, so the user can find it
    left = near[:at].rsplit(b"\n", 1)[-1].rsplit(b",", 1)[-1]
    right = near[at:].split(b"\n", 1)[0].split(b",", 1)[0]
    codec = "cp1252" if encoding == "Windows-1252" else "latin-1"
    cell = (left + right).decode(codec, errors="replace").strip("\r")
    return Problem(
        path.name,
        None,
        f"is not UTF-8 text: byte 0x{near[at : at + 1].hex().upper()} on line {line:,}, in "
        f"{shown_value(cell)} if read as {encoding}; {fix}",
    )


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


def _values_at(values: pd.Series | pd.DataFrame, rows: tuple[int, ...]) -> tuple[str, ...]:
    """The cells at spreadsheet ``rows`` as short text (a frame's cells joined by ", ")."""
    labels = [r - FIRST_DATA_ROW for r in rows]
    picked = values.loc[labels]
    if isinstance(picked, pd.DataFrame):
        return tuple(
            ", ".join(_cell_text(v) for v in row) for row in picked.itertuples(index=False)
        )
    return tuple(_cell_text(v) for v in picked)


def _cell_text(value: object) -> str:
    """A cell as text, cut to a length a message can show (``Problem`` cuts it further)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)[: VALUE_CHARS + 1]


def _problem(
    file: str,
    column: str | None,
    rule: str,
    mask: pd.Series,
    values: pd.Series | pd.DataFrame | None = None,
) -> Problem | None:
    """A problem at the rows where ``mask`` holds, or None where it holds nowhere.

    ``values`` (aligned with ``mask``) gives the offending cells shown beside the rows; leave it
    out when the cells are blank or the rule is about the row as a whole.
    """
    rows, count = _rows(mask)
    if not count:
        return None
    shown = _values_at(values, rows) if values is not None else ()
    return Problem(file, column, rule, rows, count, shown)


def _with_values(problem: Problem | None, values: pd.Series) -> Problem | None:
    """``problem`` with the cells of ``values`` at its rows, unless it already shows values."""
    if problem is None or problem.values or not problem.rows:
        return problem
    import dataclasses

    return dataclasses.replace(problem, values=_values_at(values, problem.rows))


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
                parsed,
            )
        if spec.kind == "id":
            parsed = parsed.str.strip()
            blank = present & (parsed == "")
            parsed = parsed.mask(blank, pd.NA)
            blank = blank.fillna(False)
            return parsed, _problem(file, spec.name, "identifier is blank", blank, values)
        return parsed, None
    if spec.kind == "date":
        if pd.api.types.is_datetime64_any_dtype(values):
            parsed = values.dt.tz_localize(None) if values.dt.tz else values
            return parsed.astype("datetime64[ns]").dt.normalize(), None
        parsed, bad = _dates_from_text(values.astype("string").str.strip())
        bad &= present
        return parsed, _problem(
            file,
            spec.name,
            "is not a date in ISO form YYYY-MM-DD (an ISO 8601 timestamp such as "
            "2024-03-28T10:22:11 or 2024-03-28 10:22:11+02:00 is accepted too): write "
            "the year, month and day as 2024-03-31",
            bad,
            values,
        )
    if spec.kind == "bool":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean"), None
        text = values.astype("string").str.strip().str.lower()
        parsed = text.map({"true": True, "false": False}, na_action="ignore").astype("boolean")
        bad = present & parsed.isna()
        return parsed, _problem(file, spec.name, "is not 'true' or 'false'", bad, values)
    # integers
    if pd.api.types.is_integer_dtype(values):  # Parquet's typed integers: nothing to check
        return values.astype("Int64"), None
    numbers = (
        values
        if pd.api.types.is_numeric_dtype(values)
        else pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    )
    numbers = numbers.astype("float64")
    bad = present & (numbers.isna() | (numbers != np.floor(numbers)))
    parsed = numbers.where(~bad).astype("Int64")
    return parsed, _problem(file, spec.name, "is not a whole number", bad, values)


# (v2) A date, or an ISO 8601 timestamp whose date part is used as written (the calendar date in
# the stated offset, never converted to UTC): "T" or a space, hh:mm[:ss[.fff]], then an optional
# "Z" or offset (+02:00, -0500, +02). RFC 3339 section 5.6 allows the lower-case "t" and "z".
ISO_DATE_OR_TIMESTAMP = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::(?:[0-5][0-9]|60)(?:[.,][0-9]+)?)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)?)?$"
)


def _dates_from_text(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Calendar dates of ISO dates and timestamps; the mask of cells that are neither.

    pandas reads "today" and "now" as the clock's time and "2024-3-31" as a date even with an
    explicit format, and converts an offset to UTC (which can move the date), so the date part
    is cut out by ``ISO_DATE_OR_TIMESTAMP`` first and only then parsed, as exactly YYYY-MM-DD.
    Blank cells come back missing and not bad.
    """
    date = text.str.extract(ISO_DATE_OR_TIMESTAMP, expand=False)
    parsed = pd.to_datetime(date.astype(object), format="%Y-%m-%d", errors="coerce")
    parsed = pd.Series(parsed, index=text.index).astype("datetime64[ns]")
    return parsed, (text.notna() & parsed.isna()).astype(bool)


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
            present = [c for c in spec.unique_together if c in frame.columns]
            problems.append(
                _problem(
                    file,
                    ", ".join(spec.unique_together),
                    "combination must be unique but is repeated",
                    mask,
                    frame[present] if present else None,
                )
            )
        for (column, check), group in cases[~together].groupby(["column", "check"], sort=False):
            mask = pd.Series(frame.index.isin(group["index"].astype(int)), index=frame.index)
            # a blank cell has nothing to show; any other rule shows the offending values
            shown = frame[column] if check != "not_nullable" and column in frame.columns else None
            problems.append(_problem(file, column, _PANDERA_RULES.get(check, check), mask, shown))
        return [p for p in problems if p]
    return []


def _read_table(path: Path, spec: TableSpec) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Read one table's file, then type and check it (``_typed_table``)."""
    raw, problems = _read_raw(path)
    if raw is None:
        return None, problems
    frame, table_problems = _typed_table(raw, spec, path.name)
    return frame, problems + table_problems


def closest_header(name: str, headers: Iterable[object]) -> str | None:
    """The header a user most likely meant by ``name``, for a "did you mean" suggestion.

    Parameters
    ----------
    name : str
        The name the contract (or the instrument, or the parameters) expects.
    headers : iterable
        The names actually found.

    Returns
    -------
    str or None
        A header equal to ``name`` once case, spaces and punctuation are ignored (``Unit ID``,
        ``UnitID``, ``unit-id`` for ``unit_id``); otherwise the closest by
        ``difflib.get_close_matches`` (similarity ratio at least 0.6, case ignored); None when
        nothing is close.

    References
    ----------
    Ratcliff, J. W. & Metzener, D. E. (1988). Pattern matching: the gestalt approach. Dr.
    Dobb's Journal 13(7), 46 (the similarity ``difflib.SequenceMatcher`` computes).
    """
    found = [str(h) for h in headers]

    def bare(text: str) -> str:
        return "".join(ch for ch in text.casefold() if ch.isalnum())

    same = [h for h in found if bare(h) == bare(name) and bare(h)]
    if same:
        return same[0]
    folded = {h.casefold(): h for h in reversed(found)}  # the first spelling wins
    match = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def did_you_mean(name: str, headers: Iterable[object]) -> str:
    """A clause suggesting the header meant by a missing column ``name``, or ``""``.

    Parameters
    ----------
    name : str
        The column expected (a contract column, an instrument item).
    headers : iterable
        The file's headers that no other rule claims.

    Returns
    -------
    str
        ``"; did you mean 'Unit ID'? If so, rename that header to 'unit_id'"`` when
        :func:`closest_header` finds one, else ``""``.
    """
    guess = closest_header(name, headers)
    if guess is None:
        return ""
    return f"; did you mean {shown_text(guess)}? If so, rename that header to {shown_text(name)}"


HEADERS_SHOWN = 8  # a missing column without a close match lists this many of the file's headers


def _missing_column_problems(raw: pd.DataFrame, spec: TableSpec, file: str) -> list[Problem]:
    """Required columns absent, each with the header the user probably meant."""
    wanted = {c.name for c in spec.columns}
    # a header the contract already knows is not a misspelling of another one
    spare = [str(c) for c in raw.columns if str(c) not in wanted]
    problems = []
    for column in (c.name for c in spec.columns if c.required and c.name not in raw.columns):
        if suggestion := did_you_mean(column, spare):
            rule = f"required column is missing{suggestion}"
        elif spare:
            listed = ", ".join(shown_value(h) for h in spare[:HEADERS_SHOWN])
            more = f" and {len(spare) - HEADERS_SHOWN:,} more" if len(spare) > HEADERS_SHOWN else ""
            rule = f"required column is missing (other headers in the file: {listed}{more})"
        else:
            rule = "required column is missing"
        problems.append(Problem(file, column, rule))
    return problems


IMPORT_ID = r'\s*\{\s*"ImportId"'  # Qualtrics' third header row: {"ImportId":"QID5_1"}
TYPED_KINDS = ("int", "date", "bool")


def _header_like(row: pd.Series, spec: TableSpec) -> str | None:
    """The telling cell if a data row is really a survey platform's extra header row."""
    cells = row.dropna().astype(str)
    json = cells[cells.str.match(IMPORT_ID)]
    if len(json):
        return str(json.iloc[0])
    typed = [
        str(row[c.name])
        for c in spec.columns
        if c.kind in TYPED_KINDS and c.name in row.index and pd.notna(row[c.name])
    ]
    # question text where numbers, dates or true/false belong: every such cell holds a
    # letter, and at least two hold words (no answer, date or true/false has a space and a
    # letter both)
    wordy = [t for t in typed if any(ch.isalpha() for ch in t) and " " in t.strip()]
    if len(typed) >= 2 and len(wordy) >= 2 and all(any(ch.isalpha() for ch in t) for t in typed):
        return wordy[0]
    return None


def _extra_header_problem(raw: pd.DataFrame, spec: TableSpec, file: str) -> Problem | None:
    """One problem for a survey platform's second (and third) header row left in the table.

    Qualtrics exports three header rows: the column names, the question text, and
    ``{"ImportId": …}`` JSON. Left in, rows 2 and 3 broke every typed column, one problem each.
    """
    rows, shown = [], []
    for position in range(min(2, len(raw))):
        cell = _header_like(raw.iloc[position], spec)
        if cell is None:
            break
        rows.append(int(raw.index[position]) + FIRST_DATA_ROW)
        shown.append(cell[: VALUE_CHARS + 1])
    if not rows:
        return None
    json = any(re.match(IMPORT_ID, cell) for cell in shown)
    if not json and len(raw) > len(rows) and _header_like(raw.iloc[len(rows)], spec) is not None:
        return None  # the rows below read alike: answers written as words, not header rows
    span = f"rows {rows[0]}–{rows[-1]}" if len(rows) > 1 else f"row {rows[0]}"
    verb = "look" if len(rows) > 1 else "looks"
    return Problem(
        file,
        None,
        f"{span} {verb} like a survey platform's extra header "
        f'row{"s" if len(rows) > 1 else ""} (question text or {{"ImportId": …}}), not '
        f"answers: delete {'them' if len(rows) > 1 else 'it'} (the header row 1 stays), or "
        "import the raw export with `python -m analysis import` and `layout: qualtrics` in "
        "mapping.yaml",
        tuple(rows),
        len(rows),
        tuple(shown),
    )


def _typed_table(raw: pd.DataFrame, spec: TableSpec, file: str) -> tuple[pd.DataFrame, list]:
    """Type and check one table already in memory (read from a file or built in Python)."""
    problems: list[Problem] = []
    extra_header = _extra_header_problem(raw, spec, file)
    if extra_header is not None:
        # one problem for the platform's header rows, not one per column of each
        problems.append(extra_header)
        raw = raw.drop(index=[r - FIRST_DATA_ROW for r in extra_header.rows])
    problems += _missing_column_problems(raw, spec, file)
    typed = {}
    unreadable = pd.Series(False, index=raw.index)
    for column in spec.columns:
        if column.name in raw.columns:
            typed[column.name], problem = _parse_column(raw[column.name], column, file)
            if problem:
                problems.append(_with_values(problem, raw[column.name]))
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


def leading_zeros_hint(
    missing_ids: Iterable[object], known_ids: Iterable[object], known_file: str = "units.csv"
) -> str:
    """A hint when unknown ids match known ones once leading zeros are ignored (``7``, ``007``).

    Excel reads an id column such as ``007`` as the number 7 and saves it so; the ids of one
    file then no longer match those of another.

    Parameters
    ----------
    missing_ids : iterable
        Ids of a table that are not among ``known_ids`` (duplicates and blanks are ignored).
    known_ids : iterable
        The ids they should match, such as the ``unit_id`` of ``units.csv``.
    known_file : str
        Where ``known_ids`` come from, for the message.

    Returns
    -------
    str
        ``""`` when no missing id matches; otherwise a clause to append to the rule, such as
        ``"; Excel may have stripped leading zeros: '7' here matches '007' in units.csv (and 3
        more); format the id columns as text and restore the zeros"``.
    """

    def stripped(text: str) -> str:
        return text.lstrip("0") or "0"

    known: dict[str, str] = {}
    for value in known_ids:
        if value is not None and not pd.isna(value):
            known.setdefault(stripped(str(value).strip()), str(value))
    pairs = {}
    for value in missing_ids:
        if value is None or pd.isna(value):
            continue
        text = str(value)
        match = known.get(stripped(text.strip()))
        if match is not None and match != text:
            pairs.setdefault(text, match)
    if not pairs:
        return ""
    here, there = next(iter(pairs.items()))
    more = f" (and {len(pairs) - 1:,} more)" if len(pairs) > 1 else ""
    return (
        f"; Excel may have stripped leading zeros: {shown_value(here)} here matches "
        f"{shown_value(there)} in {known_file}{more}; format the id columns as text in every "
        "file and restore the zeros"
    )


def _cross_table_problems(
    tables: dict[str, pd.DataFrame], files: dict[str, Path], instrument: Instrument
) -> list[Problem]:
    """Rules across tables: known units, churn not before start, instrument items present.

    A missing item suggests the survey column most like it (``did_you_mean``). Then the rules
    of the optional tables (``_optional_table_problems``).
    """
    problems: list[Problem | None] = []
    if "units" in tables and "unit_id" in tables["units"]:
        known = pd.Index(tables["units"]["unit_id"].dropna().unique())
        for name in TABLES_LINKED_TO_UNITS:
            frame = tables.get(name)
            if frame is None or "unit_id" not in frame:
                continue
            unknown = frame["unit_id"].notna() & ~frame["unit_id"].isin(known)
            problems.append(
                _unknown_unit(files[name].name, "unit_id", frame, unknown, tables, files)
            )
    customers = tables.get("customers")
    if customers is not None and {"since", "churned_on"} <= set(customers.columns):
        early = customers["churned_on"] < customers["since"]
        problems.append(
            _problem(
                files["customers"].name,
                "churned_on",
                "churned_on is before since (shown as since, churned_on)",
                early.fillna(False).astype(bool),
                customers[["since", "churned_on"]],
            )
        )
    survey = tables.get("employee_survey")
    if survey is not None:
        # a column the instrument already claims is not a misspelling of another item
        spare = [c for c in survey.columns if c not in instrument.items]
        for item in instrument.items:
            if item not in survey.columns:
                problems.append(
                    Problem(
                        files["employee_survey"].name,
                        item,
                        "instrument item is missing from the survey" + did_you_mean(item, spare),
                    )
                )
    problems += _optional_table_problems(tables, files)
    return [p for p in problems if p]


def _unknown_unit(
    file: str,
    column: str,
    frame: pd.DataFrame,
    unknown: pd.Series,
    tables: dict[str, pd.DataFrame],
    files: dict[str, Path],
) -> Problem | None:
    """The rows whose ``column`` names no unit, with their ids and a leading-zeros hint."""
    if not unknown.any():
        return None
    known_file = files["units"].name if "units" in files else "units.csv"
    hint = leading_zeros_hint(
        frame.loc[unknown, column].unique(), tables["units"]["unit_id"].dropna(), known_file
    )
    return _problem(
        file,
        column,
        f"{column} is not in the units table{hint or f': add the unit to {known_file}'}",
        unknown.astype(bool),
        frame[column],
    )


def _optional_table_problems(
    tables: dict[str, pd.DataFrame], files: dict[str, Path]
) -> list[Problem | None]:
    """The rules of ``headcount`` and ``internal_service`` (contract v2) that span tables.

    A wave must be one of the survey's; a headcount is at least ``HEADCOUNT_MIN`` and at least
    the unit-wave's distinct respondents; an internal rating names two known, different units
    and answers at least one point of connection. Unknown ``unit_id`` in ``headcount`` is the
    ``TABLES_LINKED_TO_UNITS`` rule.
    """
    problems: list[Problem | None] = []
    survey = tables.get("employee_survey")
    survey_waves = None
    if survey is not None and "wave" in survey:
        survey_waves = pd.Index(survey["wave"].dropna().unique())
    for name in OPTIONAL_TABLE_NAMES:
        frame = tables.get(name)
        if frame is None or survey_waves is None or "wave" not in frame:
            continue
        unknown = frame["wave"].notna() & ~frame["wave"].isin(survey_waves)
        problems.append(
            _problem(
                files[name].name,
                "wave",
                "wave does not occur in employee_survey: use the close date of a survey wave, "
                "as the survey's wave column writes it",
                unknown,
                frame["wave"],
            )
        )
    headcount = tables.get("headcount")
    if headcount is not None and "headcount" in headcount:
        problems += _headcount_problems(headcount, survey, files["headcount"].name)
    service = tables.get("internal_service")
    if service is not None:
        problems += _internal_service_problems(
            service, tables, files, files["internal_service"].name
        )
    return problems


def _headcount_problems(
    headcount: pd.DataFrame, survey: pd.DataFrame | None, file: str
) -> list[Problem | None]:
    """Headcounts not negative, and not below the unit-wave's distinct respondents."""
    count = headcount["headcount"]
    negative = (count < HEADCOUNT_MIN).fillna(False).astype(bool)
    problems = [
        _problem(
            file,
            "headcount",
            f"headcount is below {HEADCOUNT_MIN}: it counts the staff invited to the wave",
            negative,
            count,
        )
    ]
    keys = ["unit_id", "wave"]
    if survey is None or not {*keys, "respondent_id"} <= set(survey.columns):
        return problems
    if not set(keys) <= set(headcount.columns):
        return problems
    respondents = survey.dropna(subset=keys).groupby(keys, sort=False)["respondent_id"].nunique()
    answered = pd.Series(
        respondents.reindex(pd.MultiIndex.from_frame(headcount[keys])).to_numpy(),
        index=headcount.index,
    )
    over = (answered > count).fillna(False).astype(bool)
    if over.any():
        first = over.idxmax()
        example = (
            f"unit {headcount.at[first, 'unit_id']!r} in wave "
            f"{headcount.at[first, 'wave']:%Y-%m-%d}: {int(answered[first]):,} respondents, "
            f"headcount {int(count[first]):,}"
        )
        shown = pd.DataFrame(
            {
                "unit_id": headcount["unit_id"],
                "wave": headcount["wave"],
                "respondents": answered.astype("Int64"),
                "headcount": count,
            }
        )
        problems.append(
            _problem(
                file,
                "headcount",
                "more distinct respondents in employee_survey than the headcount invited "
                f"(e.g. {example}; shown per row as unit_id, wave, respondents, headcount): "
                "correct the headcount, or the unit_id or wave of the survey's answers",
                over,
                shown,
            )
        )
    return problems


def _internal_service_problems(
    service: pd.DataFrame, tables: dict[str, pd.DataFrame], files: dict[str, Path], file: str
) -> list[Problem | None]:
    """Known and different rater and provider units; at least one point of connection a row."""
    problems: list[Problem | None] = []
    roles = ("rater_unit_id", "provider_unit_id")
    units = tables.get("units")
    if units is not None and "unit_id" in units:
        known = pd.Index(units["unit_id"].dropna().unique())
        for column in roles:
            if column in service:
                unknown = service[column].notna() & ~service[column].isin(known)
                problems.append(_unknown_unit(file, column, service, unknown, tables, files))
    if set(roles) <= set(service.columns):
        own = (service["rater_unit_id"] == service["provider_unit_id"]).fillna(False)
        problems.append(
            _problem(
                file,
                "provider_unit_id",
                "provider_unit_id is the rater's own unit (rater_unit_id): a row rates another "
                "team the rater depends on",
                own.astype(bool),
                service["provider_unit_id"],
            )
        )
    points = [c for c in POINTS_OF_CONNECTION if c in service.columns]
    if not points:
        problems.append(
            Problem(
                file,
                None,
                "has none of the point-of-connection columns "
                f"({', '.join(POINTS_OF_CONNECTION)}): a rating needs at least one",
            )
        )
    else:
        unanswered = service[points].isna().all(axis=1)
        problems.append(
            _problem(
                file,
                None,
                "a rating answers no point of connection: give at least one of "
                f"{', '.join(points)}, or drop the row",
                unanswered.astype(bool),
            )
        )
    return problems


# --------------------------------------------------------------------------------------------
# The public entry points


def load_dataset(directory: Path | str) -> Dataset:
    """Read and validate a dataset directory; raise ``DatasetError`` listing every problem.

    Files are only read, never modified.

    Parameters
    ----------
    directory : Path or str
        A folder with ``units``, ``employee_survey``, ``customer_nps`` and ``customers`` as
        ``.csv`` or ``.parquet``; optionally ``headcount``, ``internal_service`` (the same)
        and ``instrument.yaml``.

    Returns
    -------
    Dataset
        Tables typed: identifiers as strings, dates as ``datetime64[ns]`` (a timestamp's
        calendar date in its own offset), item and score columns as nullable ``Int64``,
        ``customer_facing`` as nullable boolean (blank means the contract's default, true);
        ``headcount`` and ``internal_service`` ``None`` when absent; ``instrument`` the one
        in effect (``Dataset``); ``synthetic`` true when the folder holds the marker
        ``SYNTHETIC_FILE`` (any other file beside the tables is ignored).

    Raises
    ------
    DatasetError
        If ``directory`` is not a folder or the data break the contract; the error lists
        every problem found, in every file.
    """
    return finish_reading(read_folder(directory))


@dataclass
class FolderReading:
    """A dataset folder's tables read and checked one by one, before the rules across tables.

    Built by :func:`read_folder`; :func:`read_tables` reads more of its tables and
    :func:`finish_reading` checks the rules across tables and makes the ``Dataset``.

    Attributes
    ----------
    directory : Path
    instrument : Instrument
        As read from ``instrument.yaml``, or the default.
    default : bool
        True when the folder has no ``instrument.yaml``.
    files : dict of str to Path
        Every table file found.
    specs : dict of str to TableSpec
        How each table is typed.
    tables : dict of str to DataFrame
        The tables read so far.
    problems : list of Problem
        Every problem found so far.
    """

    directory: Path
    instrument: Instrument
    default: bool
    files: dict[str, Path]
    specs: dict[str, TableSpec]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def read_folder(directory: Path | str, leave_out: Iterable[str] = ()) -> FolderReading:
    """Read and check each table of a dataset folder on its own, except those in ``leave_out``.

    Parameters
    ----------
    directory : Path or str
        The dataset folder.
    leave_out : iterable of str
        Tables found but not read yet (``analysis.data.source`` keeps the customer tables in
        an engine and reads them here only if its screen flags them).

    Returns
    -------
    FolderReading

    Raises
    ------
    DatasetError
        If ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(directory, [Problem(str(directory), None, "is not a directory")])
    instrument, problems = load_instrument(directory)
    files, found_problems = find_table_files(directory)
    # Without instrument.yaml the default's optional scales are typed (and checked) when present.
    default = not (directory / INSTRUMENT_FILE).exists()
    specs = table_specs(default_instrument() if default else instrument)
    reading = FolderReading(
        directory, instrument, default, files, specs, {}, problems + found_problems
    )
    skipped = set(leave_out)
    return read_tables(reading, [name for name in files if name not in skipped])


def read_tables(reading: FolderReading, names: Iterable[str]) -> FolderReading:
    """Read and check the tables ``names`` of a folder into ``reading`` (returned, updated)."""
    for name in names:
        frame, table_problems = _read_table(reading.files[name], reading.specs[name])
        reading.problems += table_problems
        if frame is not None:
            reading.tables[name] = frame
    return reading


def finish_reading(reading: FolderReading) -> Dataset:
    """The rules across tables, then the ``Dataset``; ``DatasetError`` lists every problem."""
    instrument = reading.instrument
    if reading.default:
        instrument = _default_in_effect(reading.tables.get("employee_survey"))
    dataset = _checked_dataset(
        reading.directory, reading.tables, reading.files, instrument, reading.problems
    )
    # a marker that is a folder or a pipe is not the kit's: only a regular file counts
    dataset.synthetic = (reading.directory / SYNTHETIC_FILE).is_file()
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
    # an engine's dataset (analysis.data.source) keeps its customer tables out of pandas
    kept_out = dict.fromkeys(CUSTOMER_TABLE_NAMES)
    return Dataset(**(kept_out | tables), instrument=instrument, files=files)


def _default_in_effect(survey: pd.DataFrame | None) -> Instrument:
    """The default instrument with each optional scale the survey answers at least once.

    An optional item column that is present but blank throughout is not measured: a scale
    without a single answer has nothing to report and would leave empty estimates.
    """
    if survey is None:
        return DEFAULT_INSTRUMENT
    optional = [item for s in DEFAULT_OPTIONAL_SCALES for item in s.items]
    return default_instrument(
        [item for item in optional if item in survey and survey[item].notna().any()]
    )


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
        The contract's tables by name: the four required ones, and ``headcount`` and
        ``internal_service`` when the study has them (a ``None`` value counts as absent).
        Other names are ignored.
    instrument : Instrument
        Which items form which scale; the contract's default unless given. The default
        measures its optional scales (``communication_effort``) when the survey answers
        them, as ``load_dataset`` does without ``instrument.yaml``.

    Returns
    -------
    Dataset
        Typed as by ``load_dataset``; ``files`` names each table ``<name> (in memory)`` so
        messages still say which table is wrong.

    Raises
    ------
    DatasetError
        If a required table is missing or the tables break the contract.
    """
    names = TABLE_NAMES + OPTIONAL_TABLE_NAMES
    files = {name: Path(f"{name} (in memory)") for name in names if tables.get(name) is not None}
    problems = [
        Problem(f"{name} (in memory)", None, "required table is missing")
        for name in TABLE_NAMES
        if tables.get(name) is None
    ]
    default = instrument == DEFAULT_INSTRUMENT
    specs = table_specs(default_instrument() if default else instrument)
    typed = {}
    for name, path in files.items():
        raw = tables[name].reset_index(drop=True)
        typed[name], table_problems = _typed_table(raw, specs[name], path.name)
        problems += table_problems
    if default:
        instrument = _default_in_effect(typed.get("employee_survey"))
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
        :func:`spreadsheet_safe`) or ``NAME.parquet``. A ``None`` table (an optional table a
        dataset does not have, such as ``headcount``) is not written.
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
                if frame is None:
                    continue
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
    if dataset.customer_tables is not None:
        answers = dataset.customer_tables.tables["customer_nps"]
        people = dataset.customer_tables.tables["customers"]
        # the maxima are computed where the rows are: two aggregate queries
        last_answer = answers.aggregate(last=answers.responded_on.max()).to_pandas()
        last_people = people.aggregate(
            since=people.since.max(), churned=people.churned_on.max()
        ).to_pandas()
        customer_dates = [*last_answer.iloc[0], *last_people.iloc[0]]
    else:
        customer_dates = [
            dataset.customer_nps["responded_on"].max(),
            dataset.customers["since"].max(),
            dataset.customers["churned_on"].max(),
        ]
    dates = [dataset.employee_survey["wave"].max(), *customer_dates]
    return max(pd.Timestamp(d) for d in dates if pd.notna(d))
