"""The SQL screen of the customer tables never passes a file the loader refuses.

Each case breaks (or harmlessly changes) ``customer_nps`` or ``customers`` of the small study
in a real file, then asks both the pandas loader (``load_dataset``) and the screen
(``analysis.data.screen.screen_tables`` over a real DuckDB). The promise tested is one-sided:
whenever the loader refuses the dataset naming a table's file, or fails on it in any other
way, the screen names a rule for that table. Cases marked ``CLEAN`` are data the loader
accepts, and the screen must then be clean too (a false alarm there would send a valid
hundred-million-row file to pandas). Adding a case is one line of ``CASES``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.contract import default_instrument, table_specs
from analysis.data.engine import open_tables
from analysis.data.load import DatasetError, find_table_files, load_dataset
from analysis.data.screen import FILE_UNREADABLE, NOT_SCREENED, screen_tables
from analysis.data.synth import StudyDesign
from tests.conftest import PROJECT_ROOT, write_study

SAMPLE = PROJECT_ROOT / "data" / "sample"
SCREENED = ("customer_nps", "customers")
# What the loader does with a case, and so what the screen must say: CLEAN, the loader accepts
# it and the screen passes it; REFUSED, the loader refuses it and the screen flags it; ALARM,
# the loader accepts it but the screen may flag it (a false alarm, documented as such).
CLEAN, REFUSED, ALARM = "clean", "refused", "alarm"
# Small enough that a case (loader and screen) takes well under a second; customers.csv has
# more than 40 rows and customer_nps.csv more than 12, which the cases edit.
TINY_DESIGN = StudyDesign(seed=7, n_units=12, n_waves=2, median_unit_size=6)
NPS, CUSTOMERS = "customer_nps", "customers"

Edit = Callable[[Path], None]


def screen(directory: Path) -> dict[str, list[str]]:
    """The screen of the two customer tables, as ``estimate`` would ask for it."""
    files, _problems = find_table_files(directory)
    with open_tables(directory) as opened:
        return screen_tables(opened, SCREENED, table_specs(default_instrument()), files)


# --------------------------------------------------------------------------------------------
# Edits of a study folder


def _read(directory: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(directory / f"{table}.csv", dtype=str, keep_default_na=False)


def _write(directory: Path, table: str, frame: pd.DataFrame, **options) -> None:
    frame.to_csv(directory / f"{table}.csv", index=False, **options)


def cell(table: str, column: str, row: int, value: str) -> Edit:
    """Set one cell; ``row`` counts as a spreadsheet does (header 1, first record 2)."""

    def edit(directory: Path) -> None:
        frame = _read(directory, table)
        frame.loc[row - 2, column] = value
        _write(directory, table, frame)

    return edit


def column(table: str, name: str, values: Callable[[pd.Series], pd.Series]) -> Edit:
    """Replace (or add) a whole column, computed from the current one (or from row numbers)."""

    def edit(directory: Path) -> None:
        frame = _read(directory, table)
        current = frame[name] if name in frame else pd.Series(np.arange(len(frame)).astype(str))
        frame[name] = values(current)
        _write(directory, table, frame)

    return edit


def copy_cell(table: str, name: str, source: int, target: int, suffix: str = "") -> Edit:
    def edit(directory: Path) -> None:
        frame = _read(directory, table)
        frame.loc[target - 2, name] = frame.loc[source - 2, name] + suffix
        _write(directory, table, frame)

    return edit


def frame_edit(table: str, change: Callable[[pd.DataFrame], pd.DataFrame], **options) -> Edit:
    def edit(directory: Path) -> None:
        _write(directory, table, change(_read(directory, table)), **options)

    return edit


def line_edit(table: str, line: int, change: Callable[[bytes], bytes]) -> Edit:
    """Change one line of the file's bytes (the header is line 1)."""

    def edit(directory: Path) -> None:
        path = directory / f"{table}.csv"
        lines = path.read_bytes().split(b"\n")
        lines[line - 1] = change(lines[line - 1])
        path.write_bytes(b"\n".join(lines))

    return edit


def text_edit(table: str, change: Callable[[bytes], bytes]) -> Edit:
    def edit(directory: Path) -> None:
        path = directory / f"{table}.csv"
        path.write_bytes(change(path.read_bytes()))

    return edit


def parquet(table: str, **columns: Callable[[pd.Series], object]) -> Edit:
    """Store the table as Parquet instead, each named column converted (blanks missing)."""

    def edit(directory: Path) -> None:
        frame = _read(directory, table).replace("", None)
        for name, convert in columns.items():
            frame[name] = convert(frame[name])
        frame.to_parquet(directory / f"{table}.parquet", index=False)
        (directory / f"{table}.csv").unlink()

    return edit


def parquet_indexed(table: str, name: str) -> Edit:
    """Store the table as Parquet with column ``name`` (made up if absent) as pandas' index."""

    def edit(directory: Path) -> None:
        frame = _read(directory, table).replace("", None)
        frame[name] = frame.get(name, pd.Series(np.arange(len(frame)).astype(str)))
        frame.set_index(name).to_parquet(directory / f"{table}.parquet")
        (directory / f"{table}.csv").unlink()

    return edit


def churn_before_since(directory: Path) -> None:
    frame = _read(directory, CUSTOMERS)
    frame.loc[10, ["since", "churned_on"]] = ["2024-06-01", "2024-05-01"]
    _write(directory, CUSTOMERS, frame)


def header_rows(json: bool) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A survey platform's question-text row (and its ImportId row) above the answers."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        rows = [{c: f"What is your {c.replace('_', ' ')}?" for c in frame.columns}]
        if json:
            rows = [{c: f'{{"ImportId":"QID{i}"}}' for i, c in enumerate(frame.columns)}]
        return pd.concat([pd.DataFrame(rows), frame])

    return change


def import_id_in_one_column(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the id holds the ImportId JSON: every other cell of the row still reads."""
    row = frame.iloc[[0]].copy()
    row["response_id"] = '{"ImportId":"QID1"}'
    return pd.concat([row, frame])


def zurich(frame: pd.DataFrame) -> pd.DataFrame:
    """A customer id with a letter outside ASCII, far down the file."""
    frame = frame.copy()
    frame.loc[40, "customer_id"] = "Zürich"
    return frame


def also_parquet(table: str) -> Edit:
    def edit(directory: Path) -> None:
        _read(directory, table).to_parquet(directory / f"{table}.parquet", index=False)

    return edit


def a_folder(table: str) -> Edit:
    def edit(directory: Path) -> None:
        (directory / f"{table}.csv").unlink()
        (directory / f"{table}.csv").mkdir()

    return edit


def zoned(values: pd.Series) -> pd.Series:
    """Dates as instants written in Berlin, late in the evening (UTC is the day before)."""
    local = pd.to_datetime(values) + pd.Timedelta(hours=0, minutes=30)
    return local.dt.tz_localize("Europe/Berlin")


def as_timestamps(values: pd.Series) -> pd.Series:
    forms = ["{}T10:22:11", "{} 23:30:00-0500", "{}T00:30:00+02:00", "{}T08:15Z", "{}"]
    return pd.Series(
        [forms[i % len(forms)].format(v) if v else "" for i, v in enumerate(values)],
        index=values.index,
    )


def floats(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values).astype("float64")


def late(values: pd.Series) -> pd.Series:
    """Timestamps in seconds, one of them after the last a pandas datetime64[ns] holds."""
    stamps = pd.to_datetime(values).astype("datetime64[s]")
    stamps.iloc[3] = pd.Timestamp("2262-05-01").as_unit("s")
    return stamps


# (name, edit, the table it breaks or changes, what the loader does and the screen must say)
# fmt: off
CASES = [
    # dates
    ("month 13", cell(NPS, "responded_on", 4, "2024-13-01"), NPS, REFUSED),
    ("day/month/year", cell(NPS, "responded_on", 5, "31/03/2024"), NPS, REFUSED),
    ("today", cell(NPS, "responded_on", 6, "today"), NPS, REFUSED),
    ("one-digit month", cell(NPS, "responded_on", 7, "2024-3-31"), NPS, REFUSED),
    ("30 February", cell(CUSTOMERS, "since", 4, "2024-02-30"), CUSTOMERS, REFUSED),
    ("hour 25", cell(CUSTOMERS, "since", 5, "2024-03-31T25:00:00"), CUSTOMERS, REFUSED),
    ("offset +25:00", cell(NPS, "responded_on", 8, "2024-03-31T10:00:00+25:00"), NPS, REFUSED),
    ("offset without colon", cell(NPS, "responded_on", 8, "2024-03-31T10:00+0530"), NPS, CLEAN),
    ("trailing text", cell(CUSTOMERS, "churned_on", 6, "2024-03-31X"), CUSTOMERS, REFUSED),
    ("year 3000", cell(CUSTOMERS, "since", 7, "3000-01-01"), CUSTOMERS, REFUSED),
    ("year 1600", cell(NPS, "responded_on", 9, "1600-01-01"), NPS, REFUSED),
    ("date with spaces", cell(NPS, "responded_on", 9, "  2024-03-31 "), NPS, CLEAN),
    ("timestamps", column(CUSTOMERS, "since", as_timestamps), CUSTOMERS, CLEAN),
    ("blank since", cell(CUSTOMERS, "since", 8, ""), CUSTOMERS, REFUSED),
    ("blank churned_on", cell(CUSTOMERS, "churned_on", 8, ""), CUSTOMERS, CLEAN),
    ("churn before since", churn_before_since, CUSTOMERS, REFUSED),
    # scores
    ("eleven", cell(NPS, "likelihood_to_recommend", 5, "11"), NPS, REFUSED),
    ("minus one", cell(NPS, "likelihood_to_recommend", 5, "-1"), NPS, REFUSED),
    ("7.5", cell(NPS, "likelihood_to_recommend", 5, "7.5"), NPS, REFUSED),
    ("ten", cell(NPS, "likelihood_to_recommend", 9, "ten"), NPS, REFUSED),
    ("n/a", cell(NPS, "likelihood_to_recommend", 12, "n/a"), NPS, REFUSED),
    ("underscore digits", cell(NPS, "likelihood_to_recommend", 5, "1_0"), NPS, REFUSED),
    ("hexadecimal", cell(NPS, "likelihood_to_recommend", 5, "0x1"), NPS, REFUSED),
    ("binary", cell(NPS, "likelihood_to_recommend", 5, "0b1"), NPS, REFUSED),
    ("infinity", cell(NPS, "likelihood_to_recommend", 5, "inf"), NPS, REFUSED),
    ("1e400", cell(NPS, "likelihood_to_recommend", 5, "1e400"), NPS, REFUSED),
    ("escape codes", cell(NPS, "likelihood_to_recommend", 2, "9\x1b[31m\u202e01"), NPS, REFUSED),
    ("blank score", cell(NPS, "likelihood_to_recommend", 5, ""), NPS, REFUSED),
    ("spaces for a score", cell(NPS, "likelihood_to_recommend", 5, "   "), NPS, REFUSED),
    ("7.0", cell(NPS, "likelihood_to_recommend", 5, "7.0"), NPS, CLEAN),
    ("padded 7", cell(NPS, "likelihood_to_recommend", 5, " 7 "), NPS, CLEAN),
    ("+7", cell(NPS, "likelihood_to_recommend", 5, "+7"), NPS, CLEAN),
    ("1e1", cell(NPS, "likelihood_to_recommend", 5, "1e1"), NPS, CLEAN),
    ("score with a line break", cell(NPS, "likelihood_to_recommend", 5, "7\n"), NPS, CLEAN),
    ("effort 99", cell(NPS, "effort", 6, "99"), NPS, REFUSED),
    ("effort 0", cell(NPS, "effort", 6, "0"), NPS, REFUSED),
    ("effort blank", cell(NPS, "effort", 6, ""), NPS, CLEAN),
    ("brand_promise 6", column(NPS, "brand_promise", lambda v: v.where(v != "3", "6")), NPS, REFUSED),  # noqa: E501
    ("brand_promise 1-5", column(NPS, "brand_promise", lambda v: (v.astype(int) % 5 + 1).astype(str)), NPS, CLEAN),  # noqa: E501
    # identifiers
    ("blank response_id", cell(NPS, "response_id", 4, ""), NPS, REFUSED),
    ("blank customer_id", cell(NPS, "customer_id", 6, ""), NPS, REFUSED),
    ("spaces for an id", cell(CUSTOMERS, "customer_id", 6, "   "), CUSTOMERS, REFUSED),
    ("no-break space for an id", cell(NPS, "customer_id", 6, "\xa0"), NPS, REFUSED),
    ("ideographic space", cell(CUSTOMERS, "customer_id", 6, "\u3000"), CUSTOMERS, REFUSED),
    ("duplicate response_id", copy_cell(NPS, "response_id", 2, 9), NPS, REFUSED),
    ("duplicate customer_id", copy_cell(CUSTOMERS, "customer_id", 4, 8), CUSTOMERS, REFUSED),
    ("duplicate by a padded id", copy_cell(NPS, "response_id", 2, 9, " "), NPS, REFUSED),
    ("duplicate by a no-break space", copy_cell(NPS, "response_id", 2, 9, "\xa0"), NPS, REFUSED),
    ("padded units", column(NPS, "unit_id", lambda v: " " + v + "\t"), NPS, CLEAN),
    ("no-break space after a unit", cell(NPS, "unit_id", 5, "0001\xa0"), NPS, ALARM),
    ("unknown unit", cell(NPS, "unit_id", 7, "0000"), NPS, REFUSED),
    ("unknown unit of a customer", cell(CUSTOMERS, "unit_id", 3, "X1"), CUSTOMERS, REFUSED),
    ("leading zeros lost", column(CUSTOMERS, "unit_id", lambda v: v.str.lstrip("0")), CUSTOMERS, REFUSED),  # noqa: E501
    ("201-character id", cell(NPS, "response_id", 5, "r" * 201), NPS, REFUSED),
    ("200-character id", cell(NPS, "response_id", 5, "r" * 200), NPS, CLEAN),
    ("200 letters ü", cell(NPS, "response_id", 5, "ü" * 200), NPS, CLEAN),
    ("201 letters ü", cell(NPS, "response_id", 5, "ü" * 201), NPS, REFUSED),
    ("id with a line break", cell(NPS, "response_id", 5, "N1\nN2"), NPS, CLEAN),
    ("id with a letter beyond ASCII", cell(CUSTOMERS, "customer_id", 5, "Zürich-7"), CUSTOMERS, CLEAN),  # noqa: E501
    # the header and the file
    ("missing column", frame_edit(NPS, lambda f: f.drop(columns="effort")), NPS, CLEAN),
    ("missing required column", frame_edit(NPS, lambda f: f.drop(columns="unit_id")), NPS, REFUSED),  # noqa: E501
    ("renamed column", frame_edit(CUSTOMERS, lambda f: f.rename(columns={"since": "Since"})), CUSTOMERS, REFUSED),  # noqa: E501
    ("extra column", column(NPS, "comment", lambda v: "fine"), NPS, CLEAN),
    ("long column name", column(NPS, "c" * 300, lambda v: "1"), NPS, REFUSED),
    ("duplicate column name", text_edit(CUSTOMERS, lambda b: b.replace(b"churned_on", b"since", 1)), CUSTOMERS, REFUSED),  # noqa: E501
    ("question-text row", frame_edit(NPS, header_rows(json=False)), NPS, REFUSED),
    ("ImportId row", frame_edit(CUSTOMERS, header_rows(json=True)), CUSTOMERS, REFUSED),
    ("ImportId in the id only", frame_edit(NPS, import_id_in_one_column), NPS, REFUSED),
    ("semicolons", frame_edit(CUSTOMERS, lambda f: f, sep=";"), CUSTOMERS, REFUSED),
    ("tabs", frame_edit(NPS, lambda f: f, sep="\t"), NPS, REFUSED),
    ("Latin-1 byte", frame_edit(CUSTOMERS, zurich, encoding="latin-1"), CUSTOMERS, REFUSED),
    ("Latin-1 header", text_edit(NPS, lambda b: b"\xfc" + b), NPS, REFUSED),
    ("UTF-16", text_edit(CUSTOMERS, lambda b: b.decode().encode("utf-16")), CUSTOMERS, REFUSED),
    ("byte-order mark", text_edit(NPS, lambda b: b"\xef\xbb\xbf" + b), NPS, CLEAN),
    ("CRLF lines", text_edit(CUSTOMERS, lambda b: b.replace(b"\n", b"\r\n")), CUSTOMERS, CLEAN),
    ("blank lines", text_edit(NPS, lambda b: b.replace(b"\n", b"\n\n", 3)), NPS, CLEAN),
    ("a row with a cell too many", line_edit(NPS, 4, lambda b: b + b",x"), NPS, REFUSED),
    ("a row with a cell too few", line_edit(CUSTOMERS, 4, lambda b: b.rsplit(b",", 1)[0]), CUSTOMERS, ALARM),  # noqa: E501
    ("unterminated quote", line_edit(NPS, 4, lambda b: b'"' + b), NPS, REFUSED),
    ("empty file", text_edit(CUSTOMERS, lambda b: b""), CUSTOMERS, REFUSED),
    ("header only", text_edit(NPS, lambda b: b.split(b"\n")[0] + b"\n"), NPS, CLEAN),
    ("a folder", a_folder(CUSTOMERS), CUSTOMERS, REFUSED),
    ("CSV and Parquet", also_parquet(NPS), NPS, REFUSED),
    # Parquet
    ("Parquet as written", parquet(NPS), NPS, CLEAN),
    ("Parquet numeric ids", parquet(NPS, response_id=lambda v: np.arange(len(v))), NPS, CLEAN),
    ("Parquet float ids", parquet(NPS, response_id=lambda v: np.arange(len(v)) + 0.0), NPS, CLEAN),  # noqa: E501
    ("Parquet ids 7.5", parquet(NPS, response_id=lambda v: np.arange(len(v)) + 0.5), NPS, REFUSED),  # noqa: E501
    ("Parquet ids with NaN", parquet(NPS, response_id=lambda v: np.r_[np.nan, np.arange(1.0, len(v))]), NPS, REFUSED),  # noqa: E501
    ("Parquet numeric unit ids", parquet(CUSTOMERS, unit_id=lambda v: v.astype(int)), CUSTOMERS, REFUSED),  # noqa: E501
    ("Parquet zoned timestamps", parquet(NPS, responded_on=zoned), NPS, CLEAN),
    ("Parquet naive timestamps", parquet(CUSTOMERS, since=pd.to_datetime, churned_on=pd.to_datetime), CUSTOMERS, CLEAN),  # noqa: E501
    ("Parquet dates", parquet(CUSTOMERS, since=lambda v: pd.to_datetime(v).dt.date), CUSTOMERS, CLEAN),  # noqa: E501
    ("Parquet float scores", parquet(NPS, likelihood_to_recommend=floats, effort=floats), NPS, CLEAN),  # noqa: E501
    ("Parquet score 7.5", parquet(NPS, likelihood_to_recommend=lambda v: floats(v) + 0.5), NPS, REFUSED),  # noqa: E501
    ("Parquet score 11", parquet(NPS, likelihood_to_recommend=lambda v: v.astype(int) + 1), NPS, REFUSED),  # noqa: E501
    ("Parquet text scores", parquet(NPS, likelihood_to_recommend=lambda v: v), NPS, CLEAN),
    ("Parquet score '1_0'", parquet(NPS, likelihood_to_recommend=lambda v: v.where(v != "3", "1_0")), NPS, REFUSED),  # noqa: E501
    ("Parquet empty id", parquet(CUSTOMERS, customer_id=lambda v: v.where(v.index != 3, "")), CUSTOMERS, REFUSED),  # noqa: E501
    ("Parquet year 2262", parquet(CUSTOMERS, since=late), CUSTOMERS, REFUSED),
    ("Parquet id as the index", parquet_indexed(NPS, "response_id"), NPS, REFUSED),
    ("Parquet extra column as the index", parquet_indexed(NPS, "comment"), NPS, CLEAN),
]
# fmt: on


@pytest.fixture(scope="module")
def tiny_master(tmp_path_factory) -> Path:
    return write_study(tmp_path_factory.mktemp("tiny") / "study", TINY_DESIGN)


@pytest.fixture
def study(tiny_master, tmp_path) -> Path:
    """A private copy of the tiny study that a case may break."""
    return Path(shutil.copytree(tiny_master, tmp_path / "study"))


@pytest.mark.parametrize(
    ("edit", "table", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_whatever_the_loader_refuses_the_screen_flags(study, edit, table, expected):
    edit(study)
    try:
        load_dataset(study)
        refused, error = set(), None
    except DatasetError as caught:
        # the tables the loader names, whichever their file's spelling
        refused = {t for t in SCREENED for p in caught.problems if p.file.startswith(t)}
        error = caught
    except Exception as caught:  # noqa: BLE001 - the loader breaking is a refusal too
        refused, error = {table}, caught
    flags = screen(study)
    if expected == REFUSED:
        assert table in refused, f"the case should break {table}; the loader says:\n{error}"
    else:
        assert error is None, f"the case should be valid, but the loader says:\n{error}"
    for name in refused:
        assert flags[name], f"{name} refused by the loader, passed by the screen:\n{error}"
    if expected == CLEAN:
        assert flags == {NPS: [], CUSTOMERS: []}


# The fuzz test's hostile cells (tests/test_fuzz.py) and a few more, each written into one
# column of customer_nps and one of customers, the columns taken in turn.
HOSTILE_CELLS = [
    *("", "0", "-1", "999", "4.5", "NaN", "2024-02-30", "9999-12-31", "0001-01-01"),
    *("2024-03-31 10:22:11", "true", "=SUM(A1)", "$\\frac{1}{2}$", "\u202e", "x" * 5_000),
    *("\x00", "٣", "７", " 1_0 ", "1e-1", "-0", "0.", ".0", "0x7", "2024-03-31\u00a0", "\t"),
]
NPS_COLUMNS = ("likelihood_to_recommend", "responded_on", "response_id", "unit_id", "effort")
CUSTOMER_COLUMNS = ("since", "customer_id", "churned_on", "unit_id")


@pytest.mark.parametrize("number", range(len(HOSTILE_CELLS)))
def test_hostile_cells_the_loader_refuses_are_flagged(study, number):
    value = HOSTILE_CELLS[number]
    cell(NPS, NPS_COLUMNS[number % len(NPS_COLUMNS)], 6, value)(study)
    cell(CUSTOMERS, CUSTOMER_COLUMNS[number % len(CUSTOMER_COLUMNS)], 7, value)(study)
    try:
        load_dataset(study)
        refused, error = set(), None
    except DatasetError as caught:
        refused = {t for t in SCREENED for p in caught.problems if p.file.startswith(t)}
        error = caught
    except Exception as caught:  # noqa: BLE001 - the loader breaking is a refusal too
        refused, error = set(SCREENED), caught
    flags = screen(study)
    for name in refused:
        assert flags[name], f"{name} refused by the loader, passed by the screen:\n{error}"


def test_the_sample_and_the_small_study_screen_clean(small_study_master):
    if not (SAMPLE / "units.csv").exists():
        pytest.skip("data/sample is absent (make data)")
    assert screen(SAMPLE) == {NPS: [], CUSTOMERS: []}
    assert screen(small_study_master) == {NPS: [], CUSTOMERS: []}


def test_rules_are_named_briefly(small_study):
    cell(NPS, "likelihood_to_recommend", 5, "11")(small_study)
    copy_cell(NPS, "response_id", 2, 9)(small_study)
    churn_before_since(small_study)
    cell(CUSTOMERS, "unit_id", 3, "X1")(small_study)
    flags = screen(small_study)
    assert flags == {
        NPS: ["out of range likelihood_to_recommend", "duplicate response_id"],
        CUSTOMERS: ["unknown unit_id", "churned_on before since"],
    }


def test_an_unreadable_file_is_a_flag_not_an_error(small_study):
    line_edit(NPS, 4, lambda b: b + b",x")(small_study)
    frame_edit(CUSTOMERS, zurich, encoding="latin-1")(small_study)
    flags = screen(small_study)
    assert FILE_UNREADABLE in flags[NPS] and FILE_UNREADABLE in flags[CUSTOMERS]


def test_other_tables_and_engines_are_not_screened(small_study_master):
    files, _problems = find_table_files(small_study_master)
    specs = table_specs(default_instrument())
    with open_tables(small_study_master) as opened:
        assert screen_tables(opened, ("employee_survey",), specs, files) == {
            "employee_survey": [NOT_SCREENED]
        }


def test_a_broken_units_table_flags_the_unit_rule(small_study):
    cell("units", "unit_id", 3, "0002\xa0")(small_study)  # the loader strips it, the engine not
    assert "unknown unit_id" in screen(small_study)[NPS]


def test_postgresql_tables_screen_clean_then_flag_broken_values(postgres_url, small_study):
    from tests.postgres_server import load_study

    load_study(postgres_url, small_study)
    files, _problems = find_table_files(small_study)
    specs = table_specs(default_instrument())
    with open_tables(postgres_url) as opened:
        assert screen_tables(opened, SCREENED, specs, files) == {NPS: [], CUSTOMERS: []}
        opened.backend.raw_sql(
            "UPDATE customer_nps SET likelihood_to_recommend = 11 WHERE response_id = "
            "(SELECT min(response_id) FROM customer_nps)"
        )
        opened.backend.raw_sql(
            "UPDATE customers SET churned_on = since - 1 WHERE customer_id = "
            "(SELECT min(customer_id) FROM customers)"
        )
        opened.backend.raw_sql("UPDATE customers SET unit_id = 'X1' WHERE unit_id = '0001'")
        opened.backend.raw_sql(
            "UPDATE customers SET customer_id = customer_id || chr(160), since = '3000-01-01' "
            "WHERE customer_id = (SELECT max(customer_id) FROM customers)"
        )
        opened.backend.raw_sql(
            "INSERT INTO customer_nps SELECT * FROM customer_nps "
            "WHERE response_id = (SELECT max(response_id) FROM customer_nps)"
        )
        flags = screen_tables(opened, SCREENED, specs, files)
    assert flags == {
        NPS: ["out of range likelihood_to_recommend", "duplicate response_id"],
        CUSTOMERS: [
            "odd whitespace customer_id",
            "date beyond pandas since",
            "unknown unit_id",
            "churned_on before since",
        ],
    }
