"""The churn side of the reduction in the engine equals the pandas functions of the churn models.

``analysis.measures.reduction`` computes the hazard cells, the customer runs, the retention at
waves and the latest customer date as queries; ``analysis.models.hazard`` computes them in
pandas from every customer's row. Each test compares the two exactly (``assert_frame_equal``
with ``check_exact``) on real engines: DuckDB over the files of the sample and of the small
study, a real PostgreSQL server, and (marked slow) a local Spark session; and on customers
written by hand at each edge of the episode definition.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data.engine import JAVA_MISSING, java_available, open_tables, start_spark
from analysis.data.load import load_dataset
from analysis.data.parameters import resolve_as_of
from analysis.measures import reduction
from analysis.models import hazard, registry
from tests.conftest import PROJECT_ROOT
from tests.postgres_server import load_study

SAMPLE = PROJECT_ROOT / "data" / "sample"
# The end of observation: the dataset's own, on the last wave (its interval is then empty),
# between two waves (the later waves' intervals start after it) and half a year after the end.
ENDS = ["end", "last_wave", "between", "after"]
HORIZONS = (91, 365)


def _as_of(which: str, waves: np.ndarray, end: pd.Timestamp) -> pd.Timestamp:
    middle = len(waves) // 2
    return {
        "end": end,
        "last_wave": pd.Timestamp(waves[-1]),
        "between": pd.Timestamp(waves[middle]) + pd.Timedelta(days=17),
        "after": end + pd.Timedelta(days=183),
    }[which]


def _expected_cells(customers: pd.DataFrame, waves, as_of) -> pd.DataFrame:
    cells = hazard.hazard_cells(hazard.churn_episodes(customers, waves, as_of))
    cells["unit_id"] = cells["unit_id"].astype("string")  # as registry.churn_model does
    return cells


def _expected_retention(customers: pd.DataFrame, waves, horizon, as_of) -> pd.DataFrame:
    expected = hazard.retention_by_unit_wave(
        customers, pd.DataFrame({"wave": waves}), horizon, as_of
    )
    if len(expected):
        expected["unit_id"] = expected["unit_id"].astype("string")
    return expected


def _customers_in(episodes: pd.DataFrame, unit_waves: pd.DataFrame) -> int:
    """The reference: distinct customers among the episodes in ``unit_waves``, by a join."""
    keys = unit_waves[["unit_id", "wave"]].drop_duplicates().astype({"unit_id": "string"})
    rows = episodes[["customer_id", "unit_id", "wave"]].astype({"unit_id": "string"})
    return int(rows.merge(keys, on=["unit_id", "wave"])["customer_id"].nunique())


def _unit_wave_subsets(episodes: pd.DataFrame, waves: np.ndarray, seed: int, count: int):
    """Random sets of unit-waves, from none to all, with units and waves that have no episode."""
    units = [*episodes["unit_id"].cat.categories, "no-such-unit"]
    every = pd.MultiIndex.from_product([units, waves], names=["unit_id", "wave"]).to_frame(
        index=False
    )
    rng = np.random.default_rng(seed)
    yield every.iloc[:0]
    yield every
    for _ in range(count):
        yield every[rng.random(len(every)) < rng.choice([0.01, 0.1, 0.5])]


def _check_all(customers_frame: pd.DataFrame, table, waves, as_of, subsets: int = 10) -> None:
    """Every churn reduction of ``table`` equals its pandas counterpart at ``as_of``."""
    got = reduction.hazard_cells(table, waves, as_of)
    pd.testing.assert_frame_equal(
        got, _expected_cells(customers_frame, waves, as_of), check_exact=True
    )
    episodes = hazard.churn_episodes(customers_frame, waves, as_of)
    runs = reduction.customer_runs(table, waves, as_of)
    pd.testing.assert_frame_equal(runs, hazard.customer_runs(episodes), check_exact=True)
    assert runs["customers"].sum() == episodes["customer_id"].nunique()
    for unit_waves in _unit_wave_subsets(episodes, np.sort(waves), 0, subsets):
        assert reduction.customers_in_runs(runs, unit_waves) == _customers_in(episodes, unit_waves)
    for horizon in HORIZONS:
        pd.testing.assert_frame_equal(
            reduction.retention_by_unit_wave(table, waves, horizon, as_of),
            _expected_retention(customers_frame, waves, horizon, as_of),
            check_exact=True,
        )


# --------------------------------------------------------------------------------------------
# DuckDB over the files of the sample and the small study


def _case(directory: Path):
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


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("study", ["small", "sample"])
def test_churn_reductions_equal_pandas(request, study, end):
    dataset, waves, last_date, tables = request.getfixturevalue(study)
    as_of = _as_of(end, waves, last_date)
    cells = reduction.hazard_cells(tables.tables["customers"], waves, as_of)
    assert cells["events"].sum() > 0 and cells["band"].nunique() > 3
    _check_all(dataset.customers, tables.tables["customers"], waves, as_of)


def test_retention_without_an_end_and_from_repeated_waves(small):
    dataset, waves, _end, tables = small
    repeated = np.concatenate([waves[::-1], waves])  # the order and repeats do not matter
    for horizon in HORIZONS:
        pd.testing.assert_frame_equal(
            reduction.retention_by_unit_wave(tables.tables["customers"], repeated, horizon),
            _expected_retention(dataset.customers, repeated, horizon, None),
            check_exact=True,
        )


def test_customers_in_runs_on_the_sample_with_many_subsets(sample):
    dataset, waves, end, tables = sample
    episodes = hazard.churn_episodes(dataset.customers, waves, end)
    runs = reduction.customer_runs(tables.tables["customers"], waves, end)
    for unit_waves in _unit_wave_subsets(episodes, waves, 1, 25):
        assert reduction.customers_in_runs(runs, unit_waves) == _customers_in(episodes, unit_waves)


def test_the_reference_counts_as_the_registry_did(sample):
    """The join above counts as ``registry._customers_in`` (the episodes' count) did."""
    counted = getattr(registry, "_customers_in", None)
    if counted is None:
        pytest.skip("registry no longer counts customers from episodes")
    dataset, waves, end, _tables = sample
    episodes = hazard.churn_episodes(dataset.customers, waves, end)
    for unit_waves in _unit_wave_subsets(episodes, waves, 2, 20):
        assert _customers_in(episodes, unit_waves) == counted(episodes, unit_waves)


def test_customers_in_runs_ignores_dates_that_are_not_waves(sample):
    dataset, waves, end, tables = sample
    runs = reduction.customer_runs(tables.tables["customers"], waves, end)
    between = pd.Timestamp(waves[3]) + pd.Timedelta(days=1)
    unit_waves = pd.DataFrame({"unit_id": runs["unit_id"].unique()[:5], "wave": between})
    episodes = hazard.churn_episodes(dataset.customers, waves, end)
    assert _customers_in(episodes, unit_waves) == 0
    assert reduction.customers_in_runs(runs, unit_waves, waves) == 0


@pytest.mark.parametrize("study", ["small", "sample"])
def test_latest_dates(request, study):
    dataset, _waves, _end, tables = request.getfixturevalue(study)
    expected = max(
        dataset.customer_nps["responded_on"].max(),
        dataset.customers["since"].max(),
        dataset.customers["churned_on"].max(),
    )
    got = reduction.latest_dates(tables.tables["customer_nps"], tables.tables["customers"])
    assert isinstance(got, pd.Timestamp) and got == expected


def test_the_tenure_bands_are_one_constant():
    assert hazard.TENURE_BANDS_DAYS is reduction.TENURE_BANDS_DAYS


def test_other_bands(small):
    """The engine's bands are a parameter; pandas reads the constant, so compare on a copy."""
    dataset, waves, end, tables = small
    coarse = (0, 365, np.inf)
    got = reduction.hazard_cells(tables.tables["customers"], waves, end, bands=coarse)
    fine = reduction.hazard_cells(tables.tables["customers"], waves, end)
    assert sorted(got["band"].unique()) == [0, 1]
    # the coarse bands' totals are the fine bands' totals regrouped at a year
    fine["band"] = (fine["band"] >= 3).astype("int64")
    regrouped = fine.groupby(["unit_id", "wave", "band"], as_index=False, observed=True).sum()
    pd.testing.assert_frame_equal(got, regrouped, check_exact=True)


def test_dates_with_a_time_of_day_are_refused(small):
    _dataset, waves, end, tables = small
    with pytest.raises(ValueError, match="calendar dates"):
        reduction.hazard_cells(tables.tables["customers"], waves, end + pd.Timedelta(hours=6))


# --------------------------------------------------------------------------------------------
# Edges, written by hand: three waves a quarter apart

WAVES = np.array(["2024-01-01", "2024-04-01", "2024-07-01"], dtype="datetime64[ns]")
EDGE_CUSTOMERS = [  # customer_id, unit_id, since, churned_on
    ("c01", "007", "2024-01-01", ""),  # joins on wave 1's date, never churns
    ("c02", "007", "2023-06-01", "2024-04-01"),  # churns on wave 2's date: an event in wave 1
    ("c03", "007", "2023-10-02", "2024-01-01"),  # churns on wave 1's date: never at risk
    ("c04", "007", "2023-12-01", "2024-03-01"),  # churns on tenure day 91, a band's last day
    ("c05", "010", "2023-12-01", "2024-03-02"),  # tenure day 92: the next band
    ("c06", "010", "2024-02-15", "2025-06-30"),  # churns after every end tried
    ("c07", "010", "2024-12-01", ""),  # joins after most ends
    ("c08", "010", "2010-05-05", ""),  # a customer for more than ten years: the open band
    ("c09", "010", "2024-05-01", "2024-05-01"),  # joins and leaves the same day
    ("c10", "012", "2024-04-02", "2024-06-30"),  # joins and churns between two waves
    ("c11", "012", "2023-01-01", "2023-12-31"),  # churns before wave 1
    ("c12", "012", "2024-03-01", "2024-07-01"),  # churns on the last wave's date
    ("c13", "012", "2024-08-01", "2024-05-01"),  # churn date before joining (not a valid row)
    ("c14", "012", "2023-05-21", "2024-05-20"),  # tenure day 365, the last of band 2
]
EDGE_ENDS = ["2024-07-01", "2024-05-15", "2024-12-31", "2024-01-01", "2023-12-01"]


def _edge_frame() -> pd.DataFrame:
    frame = pd.DataFrame(EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"])
    for column in ("customer_id", "unit_id"):
        frame[column] = frame[column].astype("string")
    for column in ("since", "churned_on"):
        frame[column] = pd.to_datetime(frame[column].replace("", None)).astype("datetime64[ns]")
    return frame


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edges")
    pd.DataFrame(EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"]).to_csv(
        folder / "customers.csv", index=False
    )
    pd.DataFrame(
        {
            "response_id": ["r1"],
            "customer_id": ["c01"],
            "unit_id": ["007"],
            "responded_on": ["2024-02-01"],
            "likelihood_to_recommend": [9],
        }
    ).to_csv(folder / "customer_nps.csv", index=False)
    with open_tables(folder) as tables:
        yield tables


@pytest.mark.parametrize("as_of", EDGE_ENDS)
def test_edges_equal_pandas(edges, as_of):
    _check_all(_edge_frame(), edges.tables["customers"], WAVES, pd.Timestamp(as_of), subsets=30)


def test_edges_by_hand(edges):
    """At the end of 2024: the cells and runs of the customers above, counted by hand."""
    table = edges.tables["customers"]
    cells = reduction.hazard_cells(table, WAVES, pd.Timestamp("2024-12-31"))
    wave1 = cells[(cells["unit_id"] == "007") & (cells["wave"] == WAVES[0])]
    # c01: tenure 0–91; c02: 214–305, an event in band 2 (182, 365]; c04: 31–91, an event on
    # day 91, the last of band 0 (0, 91]
    assert wave1[["band", "exposure", "events"]].values.tolist() == [[0, 151.0, 1], [2, 91.0, 1]]
    c14 = cells[(cells["unit_id"] == "012") & (cells["wave"] == WAVES[1]) & (cells["band"] >= 2)]
    assert c14[["band", "exposure", "events"]].values.tolist() == [[2, 49.0, 1]]  # days 316–365
    open_band = cells[(cells["unit_id"] == "010") & (cells["band"] == 7)]
    assert open_band["exposure"].sum() == 365.0  # c08 for the year 2024 (a leap year: 366 − 1)
    c05 = cells[(cells["unit_id"] == "010") & (cells["wave"] == WAVES[0]) & (cells["band"] == 1)]
    assert c05[["exposure", "events"]].values.tolist() == [[1.0, 1]]  # day 92 is in (91, 182]
    runs = reduction.customer_runs(table, WAVES, pd.Timestamp("2024-12-31"))
    assert runs.assign(first=runs["first_wave"].dt.month, last=runs["last_wave"].dt.month)[
        ["unit_id", "first", "last", "customers"]
    ].values.tolist() == [
        ["007", 1, 1, 2],  # c02, c04
        ["007", 1, 7, 1],  # c01
        ["010", 1, 1, 1],  # c05
        ["010", 1, 7, 2],  # c06, c08
        ["010", 7, 7, 1],  # c07 joins in December, in wave 3's interval
        ["012", 1, 4, 2],  # c14; c12, whose churn on wave 3's date ends wave 2's interval
        ["012", 4, 4, 1],  # c10
    ]


def test_edge_latest_dates(edges):
    got = reduction.latest_dates(edges.tables["customer_nps"], edges.tables["customers"])
    assert got == pd.Timestamp("2025-06-30")  # c06's churn, after every other date
    customers = edges.tables["customers"]
    never_churned = customers.filter(customers.churned_on.isnull())  # no churn date at all
    assert reduction.latest_dates(edges.tables["customer_nps"], never_churned) == pd.Timestamp(
        "2024-12-01"
    )  # c07's since
    nobody = customers.filter(customers.unit_id == "no-such-unit")
    assert reduction.latest_dates(edges.tables["customer_nps"], nobody) == pd.Timestamp(
        "2024-02-01"
    )  # the answer's date


# --------------------------------------------------------------------------------------------
# PostgreSQL: the small study loaded into a real server


@pytest.fixture(scope="module")
def in_postgres(postgres_url, small_study_master):
    load_study(postgres_url, small_study_master)
    tables = open_tables(postgres_url)
    yield tables
    tables.close()


@pytest.mark.parametrize("end", ["end", "between"])
def test_churn_reductions_in_postgres_equal_pandas(in_postgres, small, end):
    dataset, waves, last_date, _duck = small
    as_of = _as_of(end, waves, last_date)
    _check_all(dataset.customers, in_postgres.tables["customers"], waves, as_of, subsets=3)
    got = reduction.latest_dates(
        in_postgres.tables["customer_nps"], in_postgres.tables["customers"]
    )
    assert got == reduction.latest_dates(_duck.tables["customer_nps"], _duck.tables["customers"])


@pytest.fixture(scope="module")
def edges_in_postgres(postgres_url):
    """The hand-written customers as a table of their own, typed as ``load_study`` types them."""
    import ibis
    import psycopg

    frame = pd.DataFrame(EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"])
    with psycopg.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS churn_edges")
        cursor.execute(
            "CREATE TABLE churn_edges (customer_id text NOT NULL, unit_id text NOT NULL, "
            "since date NOT NULL, churned_on date)"
        )
        cursor.executemany(
            "INSERT INTO churn_edges VALUES (%s, %s, %s, %s)",
            [(c, u, s, e or None) for c, u, s, e in frame.itertuples(index=False)],
        )
    backend = ibis.connect(postgres_url)
    yield backend.table("churn_edges")
    backend.disconnect()


@pytest.mark.parametrize("as_of", EDGE_ENDS[:3])
def test_edges_in_postgres_equal_pandas(edges_in_postgres, as_of):
    _check_all(_edge_frame(), edges_in_postgres, WAVES, pd.Timestamp(as_of), subsets=5)


# --------------------------------------------------------------------------------------------
# Spark, local mode (slow: its Java virtual machine takes about 13 s to start)


@pytest.fixture(scope="module")
def spark():
    if not java_available():
        if os.environ.get("CI") == "true":
            pytest.fail(JAVA_MISSING)
        pytest.skip(JAVA_MISSING)
    session = start_spark()
    yield session
    session.stop()


@pytest.mark.slow
@pytest.mark.parametrize("end", ["end", "between"])
def test_churn_reductions_on_spark_equal_pandas(spark, small, small_study_master, end):
    dataset, waves, last_date, _duck = small
    as_of = _as_of(end, waves, last_date)
    with open_tables(small_study_master, engine="spark") as tables:
        _check_all(dataset.customers, tables.tables["customers"], waves, as_of, subsets=3)
        got = reduction.latest_dates(tables.tables["customer_nps"], tables.tables["customers"])
    assert got == reduction.latest_dates(_duck.tables["customer_nps"], _duck.tables["customers"])


@pytest.mark.slow
def test_edges_on_spark_equal_pandas(spark, tmp_path):
    pd.DataFrame(EDGE_CUSTOMERS, columns=["customer_id", "unit_id", "since", "churned_on"]).to_csv(
        tmp_path / "customers.csv", index=False
    )
    with open_tables(tmp_path, engine="spark") as tables:
        for as_of in EDGE_ENDS:
            _check_all(_edge_frame(), tables.tables["customers"], WAVES, pd.Timestamp(as_of), 5)
