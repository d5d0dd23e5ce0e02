"""The reduction in the engine equals the pandas reduction: the same counts, dtypes and order.

Each test reads real files through a real in-process DuckDB (``analysis.data.engine``) and
compares ``analysis.measures.reduction`` with ``analysis.measures.panel`` on the same data,
exactly (``assert_frame_equal`` with ``check_exact``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.engine import open_tables
from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import resolve_as_of
from analysis.measures import panel, reduction
from tests.conftest import PROJECT_ROOT, write_awkward_customers

SAMPLE = PROJECT_ROOT / "data" / "sample"
# 30 days: windows apart; 91: about a quarter, the default; 200: each window overlaps the next.
WINDOWS = (30, 91, 200)


def _case(directory: Path):
    """The loaded dataset, its waves, its end of observation and its tables in DuckDB."""
    dataset = load_dataset(directory)
    waves = np.sort(dataset.employee_survey["wave"].unique())
    return dataset, waves, resolve_as_of(dataset), open_tables(directory)


@pytest.fixture(scope="module")
def small(small_study_master):
    case = _case(small_study_master)
    yield case
    case[3].close()


@pytest.fixture(scope="module")
def sample():
    if not (SAMPLE / "units.csv").exists():
        pytest.skip("data/sample is absent (make data)")
    case = _case(SAMPLE)
    yield case
    case[3].close()


@pytest.fixture(scope="module")
def small_parquet(small_study_master, tmp_path_factory):
    """The small study written again as Parquet, from the loader's typed tables."""
    dataset = load_dataset(small_study_master)
    directory = tmp_path_factory.mktemp("parquet") / "study"
    write_tables(dataset.tables(), directory, file_format="parquet")
    assert (directory / "customer_nps.parquet").exists()
    tables = open_tables(directory)
    yield tables
    tables.close()


def _as_of(which: str, waves: np.ndarray, end: pd.Timestamp) -> pd.Timestamp | None:
    """No end, the dataset's end, or the middle wave (later answers then count nowhere)."""
    return {"none": None, "end": end, "mid": pd.Timestamp(waves[len(waves) // 2])}[which]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("as_of", ["none", "end", "mid"])
@pytest.mark.parametrize("before", [False, True])
@pytest.mark.parametrize("study", ["small", "sample"])
def test_nps_counts_in_windows_equal_pandas(request, study, before, as_of, window):
    dataset, waves, end, tables = request.getfixturevalue(study)
    as_of = _as_of(as_of, waves, end)
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, window, before=before, as_of=as_of
    )
    got = reduction.nps_counts_in_windows(
        tables.tables["customer_nps"], waves, window, before=before, as_of=as_of
    )
    assert len(got) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("as_of", ["end", "mid"])
@pytest.mark.parametrize("study", ["small", "sample"])
def test_customers_at_waves_equal_pandas(request, study, as_of, window):
    dataset, waves, end, tables = request.getfixturevalue(study)
    as_of = _as_of(as_of, waves, end)
    expected = panel.customers_at_waves(dataset.customers, waves, window, as_of)
    got = reduction.customers_at_waves(tables.tables["customers"], waves, window, as_of)
    assert got["customers_at_risk"].sum() > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_parquet_gives_what_csv_gives(small, small_parquet):
    _dataset, waves, end, csv_tables = small
    for before in (False, True):
        pd.testing.assert_frame_equal(
            reduction.nps_counts_in_windows(
                small_parquet.tables["customer_nps"], waves, 200, before=before, as_of=end
            ),
            reduction.nps_counts_in_windows(
                csv_tables.tables["customer_nps"], waves, 200, before=before, as_of=end
            ),
            check_exact=True,
        )
    pd.testing.assert_frame_equal(
        reduction.customers_at_waves(small_parquet.tables["customers"], waves, 91, end),
        reduction.customers_at_waves(csv_tables.tables["customers"], waves, 91, end),
        check_exact=True,
    )


def test_no_waves_gives_the_empty_tables_pandas_gives(small):
    dataset, _waves, end, tables = small
    none = np.array([], dtype="datetime64[ns]")
    pd.testing.assert_frame_equal(
        reduction.nps_counts_in_windows(tables.tables["customer_nps"], none, 91),
        panel.nps_counts_in_windows(dataset.customer_nps, none, 91),
    )
    pd.testing.assert_frame_equal(
        reduction.customers_at_waves(tables.tables["customers"], none, 91, end),
        panel.customers_at_waves(dataset.customers, none, 91, end),
    )


# --------------------------------------------------------------------------------------------
# Window edges, written by hand: two waves 31 days apart and a 31-day window.

WAVES = np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[ns]")
EDGE_ANSWERS = [  # response_id, unit_id, responded_on as written, score
    ("r1", "007", "2024-01-01", 10),  # on wave 1: the window before it, not its outcome window
    ("r2", " 007 ", "2024-02-01T23:59:00+05:00", 8),  # last day of wave 1's window, wave 2's date
    ("r3", "007", "2024-03-03", 3),  # wave 2 + 31 days: the last day of its window
    ("r4", "007", "2024-03-04", 9),  # one day later: in no window
    ("r5", "010", "2023-12-02", 0),  # wave 1 − 30 days: the first day of the window before it
    ("r6", "010", "2023-12-01", 0),  # wave 1 − 31 days: outside
    ("r7", "010", "2024-01-15 08:00", 7),  # inside wave 1's window only
]
EDGE_CUSTOMERS = [  # customer_id, unit_id, since, churned_on
    ("c1", "007", "2024-01-01", ""),  # joined on the wave date: at risk, never churned
    ("c2", "007", "2023-06-01", "2024-01-01"),  # churned on the wave date: not at risk
    ("c3", "007", "2023-06-01", "2024-02-01"),  # churned on the last day of the window
    ("c4", "010", "2024-01-02", "2024-03-01"),  # joined after wave 1, at risk at wave 2
]


@pytest.fixture
def edges(tmp_path) -> Path:
    answers = pd.DataFrame(
        EDGE_ANSWERS, columns=["response_id", "unit_id", "responded_on", "likelihood_to_recommend"]
    ).assign(customer_id="c1")
    answers.to_csv(tmp_path / "customer_nps.csv", index=False)
    customers = pd.DataFrame(
        EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"]
    )
    customers.to_csv(tmp_path / "customers.csv", index=False)
    return tmp_path


def _typed_like_the_loader(frame: pd.DataFrame, ids: list[str], dates: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in ids:
        frame[column] = frame[column].astype("string").str.strip()
    for column in dates:
        frame[column] = pd.to_datetime(
            frame[column].replace("", None).str[:10], format="%Y-%m-%d"
        ).astype("datetime64[ns]")
    return frame


@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-03-03"), pd.Timestamp("2024-01-20")])
@pytest.mark.parametrize("before", [False, True])
def test_window_edges(edges, before, as_of):
    frame = pd.DataFrame(
        EDGE_ANSWERS, columns=["response_id", "unit_id", "responded_on", "likelihood_to_recommend"]
    )
    frame = _typed_like_the_loader(frame, ["response_id", "unit_id"], ["responded_on"])
    frame["likelihood_to_recommend"] = frame["likelihood_to_recommend"].astype("Int64")
    expected = panel.nps_counts_in_windows(frame, WAVES, 31, before=before, as_of=as_of)
    with open_tables(edges) as tables:
        got = reduction.nps_counts_in_windows(
            tables.tables["customer_nps"], WAVES, 31, before=before, as_of=as_of
        )
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_window_edges_by_hand(edges):
    with open_tables(edges) as tables:
        after = reduction.nps_counts_in_windows(tables.tables["customer_nps"], WAVES, 31)
        prior = reduction.nps_counts_in_windows(tables.tables["customer_nps"], WAVES, 31, True)
    assert after[["unit_id", "n_responses"]].values.tolist() == [["007", 1], ["010", 1], ["007", 1]]
    assert prior[["unit_id", "n_responses"]].values.tolist() == [
        ["007", 1],  # r1 on wave 1's date
        ["010", 1],  # r5
        ["007", 1],  # r2 on wave 2's date
        ["010", 1],  # r7
    ]


@pytest.mark.parametrize("as_of", [pd.Timestamp("2024-03-31"), pd.Timestamp("2024-01-20")])
def test_customer_edges(edges, as_of):
    frame = pd.DataFrame(EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"])
    frame = _typed_like_the_loader(frame, ["customer_id", "unit_id"], ["since", "churned_on"])
    expected = panel.customers_at_waves(frame, WAVES, 31, as_of)
    with open_tables(edges) as tables:
        got = reduction.customers_at_waves(tables.tables["customers"], WAVES, 31, as_of)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    if as_of > pd.Timestamp("2024-03-01"):
        # wave 1: c1 (31 days) and c3 (churned on day 31);
        # wave 2: c1 and c4 (29 days to 1 March 2024, churned)
        assert got["customers_at_risk"].tolist() == [2, 0, 1, 1]
        assert got["churned_in_window"].tolist() == [1, 0, 0, 1]
        assert got["exposure_days"].tolist() == [62.0, 0.0, 31.0, 29.0]


# --------------------------------------------------------------------------------------------
# Typing: identifiers stay text, dates are the date as written


def test_an_id_with_leading_zeros_stays_text(edges):
    with open_tables(edges) as tables:
        answers = tables.tables["customer_nps"].order_by("response_id").to_pandas()
        schema = tables.tables["customer_nps"].schema()
    assert schema["unit_id"].is_string() and schema["response_id"].is_string()
    assert answers["unit_id"].tolist()[:3] == ["007", "007", "007"]  # " 007 " stripped
    assert schema["responded_on"].is_date()
    assert answers["responded_on"].iloc[1] == pd.Timestamp("2024-02-01")  # date as written


def test_parquet_ids_stored_as_numbers_and_zoned_timestamps(tmp_path):
    expected = pd.read_parquet(write_awkward_customers(tmp_path))
    with open_tables(tmp_path) as tables:
        got = tables.tables["customers"].order_by("unit_id").to_pandas()
    assert got["customer_id"].tolist() == ["7", "8"]
    assert got["unit_id"].tolist() == ["007", "008"]
    local = expected["since"].dt.tz_localize(None).dt.normalize()
    assert pd.to_datetime(got["since"]).tolist() == local.tolist()
    assert pd.Timestamp(got["since"].iloc[0]) == pd.Timestamp("2024-03-29")


def test_engine_settings(tmp_path, edges):
    with open_tables(edges, memory_limit="300MB", temp_directory=str(tmp_path / "spill")) as t:
        limit, spill, progress = t.backend.raw_sql(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
            "current_setting('enable_progress_bar')"
        ).fetchone()
    assert limit.startswith("286") and spill == str(tmp_path / "spill")
    assert progress is False  # stderr is not a terminal under pytest
