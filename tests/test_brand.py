"""Brand alignment from both sides (issue 15, item 4): staff's ``brand_alignment`` scale against
customers' ``brand_promise`` answers (contract v2).

A small synthetic study with the chain (``StudyDesign(internal_service=True)``, which draws
``brand_promise`` with a known effect of staff brand alignment) is written once per module to
real files, so the reduction is checked in pandas and in DuckDB on the same rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from analysis.data.engine import open_tables
from analysis.data.load import load_dataset, write_tables
from analysis.data.parameters import resolve_as_of
from analysis.data.source import open_dataset
from analysis.data.synth import StudyDesign, generate, truth_json
from analysis.measures import panel, reduction

BRAND_DESIGN = StudyDesign(
    seed=7, n_units=60, n_waves=4, median_unit_size=12, internal_service=True
)
#: The panel columns a study with brand_promise adds, and only such a study.
BRAND_COLUMNS = {
    "brand_promise",
    "brand_promise_n",
    "brand_promise_noise_var",
    "brand_promise_within_ss",
    "brand_alignment_noise_var",
    "brand_alignment_within_ss",
}


@pytest.fixture(scope="module")
def brand_study(tmp_path_factory) -> Path:
    """The small study with the chain: ``customer_nps`` holds ``brand_promise``."""
    study = generate(BRAND_DESIGN)
    directory = tmp_path_factory.mktemp("brand") / "study"
    return write_tables(study.tables, directory, extra_files={"truth.json": truth_json(study)})


@pytest.fixture(scope="module")
def without_brand(brand_study, tmp_path_factory) -> Path:
    """The same study with the ``brand_promise`` column removed (a version-1 dataset)."""
    dataset = load_dataset(brand_study)
    tables = dataset.tables()
    tables["customer_nps"] = tables["customer_nps"].drop(columns="brand_promise")
    return write_tables(tables, tmp_path_factory.mktemp("v1") / "study")


# --------------------------------------------------------------------------------------------
# The reduction


@pytest.mark.parametrize("before", [False, True])
def test_brand_promise_sums_are_the_same_in_pandas_and_duckdb(brand_study, before):
    dataset = load_dataset(brand_study)
    waves = np.sort(dataset.employee_survey["wave"].unique())
    as_of = resolve_as_of(dataset)
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, 91, before=before, as_of=as_of, brand_promise=True
    )
    with open_tables(brand_study) as tables:
        got = reduction.nps_counts_in_windows(
            tables.tables["customer_nps"], waves, 91, before=before, as_of=as_of, brand_promise=True
        )
    assert_frame_equal(got, expected, check_exact=True)
    assert (expected["brand_promise_n"] > 0).any()
    # by hand, for one cell: the answers of the unit in the window after the first wave
    answers = dataset.customer_nps
    cell = expected[expected["brand_promise_n"] > 0].iloc[0]
    low, high = (
        (cell["wave"] - pd.Timedelta(days=91), cell["wave"])
        if before
        else (cell["wave"], cell["wave"] + pd.Timedelta(days=91))
    )
    inside = answers[
        (answers["unit_id"] == cell["unit_id"])
        & (answers["responded_on"] > low)
        & (answers["responded_on"] <= min(high, as_of))
    ]["brand_promise"].dropna()
    assert cell["brand_promise_n"] == len(inside)
    assert cell["brand_promise_sum"] == inside.sum()
    assert cell["brand_promise_sumsq"] == (inside.astype("int64") ** 2).sum()


def test_the_brand_panel_is_the_same_in_pandas_and_duckdb(brand_study):
    loaded = load_dataset(brand_study)
    expected = panel.unit_wave_panel(loaded, 91, resolve_as_of(loaded))
    engine = open_dataset(brand_study)
    try:
        got = panel.unit_wave_panel(engine, 91, resolve_as_of(engine))
    finally:
        engine.customer_tables.close()
    assert_frame_equal(got, expected, check_exact=True)
    assert set(expected.columns) >= BRAND_COLUMNS
    assert "brand_promise_sum" not in expected.columns


def test_the_brand_promise_index_and_its_noise_by_hand(brand_study):
    loaded = load_dataset(brand_study)
    table = panel.unit_wave_panel(loaded, 91, resolve_as_of(loaded))
    answered = table[table["brand_promise_n"] > 0]
    answers = loaded.customer_nps
    row = answered.iloc[3]
    inside = answers[
        (answers["unit_id"] == row["unit_id"])
        & (answers["responded_on"] > row["wave"])
        & (answers["responded_on"] <= row["wave"] + pd.Timedelta(days=91))
    ]["brand_promise"].dropna()
    scores = (inside.astype(float) - 1) / 4 * 100
    assert row["brand_promise"] == pytest.approx(scores.mean())
    assert row["brand_promise_within_ss"] == pytest.approx(((scores - scores.mean()) ** 2).sum())
    pooled = answered["brand_promise_within_ss"].sum() / (answered["brand_promise_n"] - 1).sum()
    assert row["brand_promise_noise_var"] == pytest.approx(pooled / len(inside))
    assert table.loc[table["brand_promise_n"] == 0, "brand_promise"].isna().all()
    # the staff side's noise: the pooled within-unit-wave variance of brand alignment over n
    staff = table.dropna(subset=["brand_alignment_index"])
    pooled_staff = (
        staff["brand_alignment_within_ss"].sum() / (staff["brand_alignment_respondents"] - 1).sum()
    )
    assert staff["brand_alignment_noise_var"].to_numpy() == pytest.approx(
        pooled_staff / staff["brand_alignment_respondents"].to_numpy()
    )


def test_without_brand_promise_the_panel_is_what_it_was(brand_study, without_brand):
    for opened in (load_dataset, open_dataset):
        with_column, without = opened(brand_study), opened(without_brand)
        try:
            full = panel.unit_wave_panel(with_column, 91, resolve_as_of(with_column))
            plain = panel.unit_wave_panel(without, 91, resolve_as_of(without))
        finally:
            for dataset in (with_column, without):
                if dataset.customer_tables is not None:
                    dataset.customer_tables.close()
        assert not BRAND_COLUMNS & set(plain.columns)
        assert_frame_equal(plain, full.drop(columns=list(BRAND_COLUMNS)), check_exact=True)


# --------------------------------------------------------------------------------------------
# The two sides side by side (analysis.measures.brand)


def _sides(staff, promise, wave="2024-03-31", **extra) -> pd.DataFrame:
    n = len(staff)
    frame = pd.DataFrame(
        {
            "unit_id": [f"u{i:02d}" for i in range(n)],
            "wave": pd.Timestamp(wave),
            "n_staff": 10,
            "staff_alignment": np.asarray(staff, dtype=float),
            "staff_noise_var": 4.0,
            "staff_release_var": 0.0,
            "staff_df": 200.0,
            "n_customers": 20,
            "brand_promise_index": np.asarray(promise, dtype=float),
            "promise_noise_var": 9.0,
            "promise_df": 400.0,
        }
    )
    return frame.assign(**extra)


def test_the_disagreement_by_hand():
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    from analysis.measures.brand import MAD_TO_SD, brand_alignment_by_unit_wave

    staff = [60, 62, 64, 66, 68, 70, 90]
    promise = [50, 55, 60, 65, 70, 75, 20]  # the last unit: staff on top, customers at the bottom
    table = brand_alignment_by_unit_wave(_sides(staff, promise), confidence=0.95, alpha=0.05)
    s, c = np.array(staff, float), np.array(promise, float)
    mad_s = np.median(np.abs(s - np.median(s))) * MAD_TO_SD
    mad_c = np.median(np.abs(c - np.median(c))) * MAD_TO_SD
    d = (s - np.median(s)) / mad_s - (c - np.median(c)) / mad_c
    z = d / np.sqrt(4.0 / mad_s**2 + 9.0 / mad_c**2)
    assert table["difference_z"].to_numpy() == pytest.approx(z)
    adjusted = multipletests(2 * stats.norm.sf(np.abs(z)), method="fdr_bh")[1]
    assert table["p_adjusted"].to_numpy() == pytest.approx(adjusted)
    assert list(table["disagrees"]) == list(adjusted < 0.05)
    assert bool(table["disagrees"].iloc[-1]) and table["difference_z"].iloc[-1] > 0
    half = stats.t.ppf(0.975, 200) * 2.0
    assert table["staff_conf_low"].to_numpy() == pytest.approx(s - half)
    assert table["promise_conf_high"].to_numpy() == pytest.approx(
        np.minimum(c + stats.t.ppf(0.975, 400) * 3.0, 100)
    )


def test_release_noise_widens_the_staff_interval_and_the_noise_of_z():
    from analysis.measures.brand import brand_alignment_by_unit_wave

    staff, promise = [60, 62, 64, 66, 68, 70, 90], [50, 55, 60, 65, 70, 75, 20]
    exact = brand_alignment_by_unit_wave(_sides(staff, promise))
    noisy = brand_alignment_by_unit_wave(_sides(staff, promise, staff_release_var=12.0))
    assert (noisy["staff_conf_high"] - noisy["staff_conf_low"] > 0).all()
    assert (
        noisy["staff_conf_high"] - noisy["staff_conf_low"]
        > exact["staff_conf_high"] - exact["staff_conf_low"]
    ).all()
    assert (noisy["difference_z"].abs() < exact["difference_z"].abs()).all()


def test_hidden_staff_figures_and_small_waves_give_no_z():
    from analysis.measures.brand import MIN_ROWS_PER_WAVE, brand_alignment_by_unit_wave

    staff = [60.0, 62, 64, 66, 68, 70, 90]
    staff[2] = np.nan  # suppressed
    rows = pd.concat(
        [
            _sides(staff, [50, 55, 60, 65, 70, 75, 20]),
            _sides([50, 60, 70], [40, 50, 60], wave="2024-06-30").assign(unit_id=["a", "b", "c"]),
        ]
    )
    table = brand_alignment_by_unit_wave(rows)
    hidden = table["staff_alignment"].isna()
    assert hidden.sum() == 1
    assert table.loc[hidden, ["staff_conf_low", "difference_z", "p_adjusted"]].isna().all(axis=None)
    assert table.loc[hidden, "disagrees"].isna().all()
    small = table["wave"] == pd.Timestamp("2024-06-30")
    assert MIN_ROWS_PER_WAVE > 3 and table.loc[small, "difference_z"].isna().all()
    assert table.loc[~hidden & ~small, "difference_z"].notna().all()


# --------------------------------------------------------------------------------------------
# The estimand (analysis.models.brand_alignment)


def _fitting(directory_or_study, parameters=None):
    from analysis.data.load import dataset_from_tables
    from analysis.data.parameters import Parameters
    from analysis.models import registry

    parameters = parameters or Parameters()
    if isinstance(directory_or_study, Path):
        dataset = load_dataset(directory_or_study)
    else:
        dataset = dataset_from_tables(directory_or_study.tables)
    as_of = resolve_as_of(dataset, parameters)
    table = panel.unit_wave_panel(dataset, 91, as_of, parameters.covariates)
    return registry.Fitting(dataset, parameters, table, as_of)


@pytest.fixture(scope="module")
def recovery_study():
    """300 units, 8 waves, the chain on: the default design (``brand_promise_per_sd`` = 3)."""
    return generate(StudyDesign(seed=3, internal_service=True))


def test_the_estimand_recovers_the_generators_slope(recovery_study):
    """Within 2.5 SE of the truth: over 200 simulated studies (README, "Brand alignment from
    both sides") the jackknife SE averaged 1.03 times the estimates' SD and the bias was a
    tenth of an SE, so a correct estimator fails here on a fixed seed with probability near
    1%; and the SE (about 0.5 at 300 units) tells the effect, 3 points per SD, from zero."""
    from analysis.models import registry
    from analysis.studies import calibration

    fitting = _fitting(recovery_study)
    row = registry.by_name("brand_promise_on_brand_alignment").fit(fitting)
    truth = recovery_study.truth["effects"]["brand_promise_on_brand_alignment"]
    assert truth == pytest.approx(3.0)
    # the calibration study reads the same truth (and none from a study without the chain)
    assert calibration.true_values(recovery_study.truth["effects"])[
        "brand_promise_on_brand_alignment"
    ] == pytest.approx(truth)
    plain = generate(StudyDesign(seed=7, n_units=20, n_waves=2)).truth["effects"]
    assert np.isnan(calibration.true_values(plain)["brand_promise_on_brand_alignment"])
    assert abs(row["estimate"] - truth) < 2.5 * row["std_error"]
    assert row["std_error"] < 0.6
    assert row["conf_low"] > 0 and row["p_value"] < 0.001
    assert row["se_method"] == "jackknife" and row["correction"] == "regression_calibration"
    assert "brand_promise_on_brand_alignment" in fitting.jackknives
    # the correction matters: the observed index, unadjusted, is attenuated
    rows = fitting.panel[
        (fitting.panel["brand_promise_n"] > 0) & fitting.panel["customer_facing"].astype(bool)
    ].dropna(subset=["brand_alignment_index"])
    naive = np.polyfit(
        rows["brand_alignment_index"] / rows["brand_alignment_index"].std(),
        rows["brand_promise"],
        1,
    )[0]
    assert naive < row["estimate"]


def test_leaving_out_each_unit_matches_exact_refits(brand_study):
    """The sums-based approximation (weights and wave effects held) against the estimator
    refitted without each unit: within 0.15 SE for every unit of the 47 used (largest seen:
    0.11; 0.005 on 300 units), where tests/test_influence.py allows 0.2 for the NPS slope."""
    from analysis.models import brand_alignment, registry

    fitting = _fitting(brand_study)
    row = registry.by_name(brand_alignment.NAME).fit(fitting)
    fitting.rows[brand_alignment.NAME] = row
    units = pd.Index(np.sort(fitting.panel["unit_id"].astype("string").unique()))
    approximate = brand_alignment.without_each_unit(fitting, units)
    covariates = fitting.parameters.covariates
    exact = np.array(
        [
            brand_alignment._slope(
                brand_alignment.brand_rows(
                    fitting.panel[fitting.panel["unit_id"].astype("string") != unit]
                ),
                covariates,
            )
            for unit in units
        ]
    )
    assert np.abs(approximate - exact).max() < 0.15 * row["std_error"]
    unused = ~units.isin(brand_alignment.brand_rows(fitting.panel)["unit_id"].astype("string"))
    assert unused.any() and (approximate[unused] == row["estimate"]).all()


def test_a_dataset_without_brand_promise_is_not_asked(without_brand, brand_study):
    from analysis.models import brand_alignment, registry
    from analysis.report.findings import findings_table

    plain, full = load_dataset(without_brand), load_dataset(brand_study)
    entry = registry.by_name(brand_alignment.NAME)
    assert entry.needs == ("brand_promise",) and entry.tested and entry.in_study
    assert entry not in registry.applicable(plain)
    assert entry in registry.applicable(full)
    estimates = pd.DataFrame(
        [{"estimand": "nps_on_engagement", "estimate": 1.0, "conf_low": 0.5, "conf_high": 1.5}]
    )
    assert brand_alignment.NAME not in set(findings_table(estimates)["estimand"])
    fitting = _fitting(without_brand)
    published = _published(fitting.panel, fitting.parameters, None, fitting.dataset)
    assert brand_alignment.brand_alignment_table(
        fitting.panel, published, fitting.parameters, None
    ).empty
    assert np.isnan(brand_alignment.without_each_unit(fitting, pd.Index(["0001"]))).all()


def test_too_few_units_is_not_estimable_with_its_reason(brand_study):
    from analysis.models import brand_alignment

    fitting = _fitting(brand_study)
    used = brand_alignment.brand_rows(fitting.panel)["unit_id"].unique()[:2]
    thin = fitting.panel[fitting.panel["unit_id"].isin(used)]
    row = brand_alignment.brand_promise_on_brand_alignment(thin)
    assert row["method"].startswith("not estimable: 2 customer-facing units")
    assert np.isnan(row["estimate"])


def test_the_finding_says_no_clear_evidence_first_when_null():
    from analysis.report.findings import NO_CLEAR_EVIDENCE, findings_table

    estimates = pd.DataFrame(
        [
            {
                "estimand": "brand_promise_on_brand_alignment",
                "estimate": 0.4,
                "std_error": 1.0,
                "conf_low": -1.6,
                "conf_high": 2.4,
                "p_value": 0.7,
                "p_adjusted": 1.0,
                "n_units": 40,
                "n_obs": 160,
            }
        ]
    )
    row = findings_table(estimates).set_index("estimand").loc["brand_promise_on_brand_alignment"]
    assert row["section"] == "brand" and row["verdict"] == NO_CLEAR_EVIDENCE
    assert row["sentence"].startswith("No clear evidence")
    assert "brand" in row["sentence"] and "40 units" in row["sentence"]


# --------------------------------------------------------------------------------------------
# The released table


def _published(panel, parameters, release, dataset=None):
    """``unit_wave.csv`` as ``estimate`` releases it, for the brand and engagement scales."""
    from analysis.measures.privacy import release_for
    from analysis.models.estimate import released_unit_wave, suppressed_unit_wave

    release = release if release is not None else release_for(dataset, parameters)
    scales = [s for s in ("engagement_index", "brand_alignment_index") if s in panel.columns]
    minimum = parameters.min_group_size
    return released_unit_wave(suppressed_unit_wave(panel, scales, minimum), panel, minimum, release)


def test_staff_figures_of_small_groups_are_absent_and_the_rest_are_unit_wave_csvs(brand_study):
    from analysis.measures.privacy import release_for
    from analysis.models import brand_alignment

    fitting = _fitting(brand_study)
    parameters = fitting.parameters
    release = release_for(fitting.dataset, parameters)
    published = _published(fitting.panel, parameters, release)
    table = brand_alignment.brand_alignment_table(fitting.panel, published, parameters, release)
    assert list(table.columns) == list(brand_alignment.BRAND_TABLE_COLUMNS)
    small = table["n_staff"] < parameters.min_group_size
    assert small.any() and (~small).any()
    staff = ["staff_alignment", "staff_conf_low", "staff_conf_high", "difference_z", "p_adjusted"]
    assert table.loc[small, staff].isna().all(axis=None)
    assert table.loc[small, "disagrees"].isna().all()
    assert table["brand_promise_index"].notna().all()  # customers' side: not employee answers
    # the staff figure shown is unit_wave.csv's, draw for draw: no second release to average
    merged = table.merge(published, on=["unit_id", "wave"], how="left")
    pd.testing.assert_series_equal(
        merged["staff_alignment"], merged["brand_alignment_index"], check_names=False
    )
    exact = fitting.panel.set_index(["unit_id", "wave"])["brand_alignment_index"]
    shown = table.dropna(subset=["staff_alignment"]).set_index(["unit_id", "wave"])
    assert (shown["staff_alignment"] != exact.loc[shown.index]).all()  # noise was added


def test_no_published_figure_moves_when_a_hidden_groups_answers_change(brand_study):
    """Hidden unit-waves enter no published figure: not the medians, not the pooled
    variance, not Holm's or BH's family. (With the release held fixed: a real rerun on changed
    data draws fresh noise everywhere, see analysis.measures.privacy.)"""
    from analysis.measures.privacy import release_for
    from analysis.models import brand_alignment

    fitting = _fitting(brand_study)
    parameters = fitting.parameters
    release = release_for(fitting.dataset, parameters)
    panel = fitting.panel
    before = brand_alignment.brand_alignment_table(
        panel, _published(panel, parameters, release), parameters, release
    )
    changed = fitting.panel.copy()
    small = changed["brand_alignment_respondents"] < parameters.min_group_size
    changed.loc[small, "brand_alignment_index"] = 100 - changed.loc[small, "brand_alignment_index"]
    changed.loc[small, "brand_alignment_within_ss"] *= 3
    after = brand_alignment.brand_alignment_table(
        changed, _published(changed, parameters, release), parameters, release
    )
    pd.testing.assert_frame_equal(after, before)


@pytest.mark.slow
def test_estimate_writes_brand_alignment_csv_only_with_brand_promise(
    brand_study, without_brand, tmp_path
):
    from dataclasses import replace

    from analysis.data.parameters import Parameters
    from analysis.data.results import OPTIONAL_RESULT_FILES, RESULT_FILES, read_results
    from analysis.report.page import publish_results

    parameters = replace(Parameters(), bootstrap_draws=50)
    publish_results(brand_study, tmp_path / "with", parameters)
    publish_results(without_brand, tmp_path / "without", parameters)
    assert (tmp_path / "with" / "brand_alignment.csv").is_file()
    assert not (tmp_path / "without" / "brand_alignment.csv").exists()
    with_brand, plain = read_results(tmp_path / "with"), read_results(tmp_path / "without")
    # the study has the chain's internal_service table too: its two files are in both folders
    service = {"internal_service", "internal_service_network"}
    assert set(with_brand) == {*RESULT_FILES, *OPTIONAL_RESULT_FILES}
    assert set(plain) == {*RESULT_FILES, *service}
    assert "brand_promise_on_brand_alignment" in set(with_brand["estimates"]["estimand"])
    assert "brand_promise_on_brand_alignment" not in set(plain["estimates"]["estimand"])
    assert "brand" in set(with_brand["findings"]["section"])
    assert "brand" not in set(plain["findings"]["section"])
    table = with_brand["brand_alignment"]
    assert table["staff_alignment"].notna().any() and table["difference_z"].notna().any()


def test_a_postgresql_database_gives_the_brand_panel_the_files_give(postgres_url, brand_study):
    """The same Ibis reduction, compiled for PostgreSQL: integer sums, so the same bits."""
    from analysis.data.source import close_dataset
    from tests.postgres_server import load_study

    load_study(postgres_url, brand_study)
    loaded = load_dataset(brand_study)
    expected = panel.unit_wave_panel(loaded, 91, resolve_as_of(loaded))
    dataset = open_dataset(postgres_url)
    try:
        assert dataset.customer_nps is None  # reduced in the server
        got = panel.unit_wave_panel(dataset, 91, resolve_as_of(dataset))
    finally:
        close_dataset(dataset)
    assert_frame_equal(got, expected, check_exact=True)
    assert got["brand_promise_n"].sum() > 0


@pytest.mark.slow
def test_spark_gives_the_brand_sums_the_files_give(brand_study):
    """And for Spark (local, through PySpark): the same sums, cell for cell."""
    from analysis.data.engine import java_available

    if not java_available():
        pytest.skip("Spark needs Java (make java)")
    dataset = load_dataset(brand_study)
    waves = np.sort(dataset.employee_survey["wave"].unique())
    as_of = resolve_as_of(dataset)
    expected = panel.nps_counts_in_windows(
        dataset.customer_nps, waves, 91, as_of=as_of, brand_promise=True
    )
    with open_tables(brand_study, engine="spark") as tables:
        got = reduction.nps_counts_in_windows(
            tables.tables["customer_nps"], waves, 91, as_of=as_of, brand_promise=True
        )
    assert_frame_equal(got, expected, check_exact=True)


# --------------------------------------------------------------------------------------------
# A dataset without brand_promise: what it gave before

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
#: The last commit before brand_promise reached the panel (issue 15, item 4).
BEFORE_BRAND = "3973138"


@pytest.fixture(scope="module")
def old_panel(tmp_path_factory):
    """``analysis/measures/panel.py`` as it was before brand_promise, imported from a file."""
    import importlib.util
    import subprocess

    shown = subprocess.run(
        ["git", "show", f"{BEFORE_BRAND}:analysis/measures/panel.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        pytest.skip(f"the commit before brand_promise is not in this clone: {shown.stderr}")
    path = tmp_path_factory.mktemp("before_brand") / "panel_before_brand.py"
    path.write_text(shown.stdout, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("panel_before_brand", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("opened", [load_dataset, open_dataset], ids=["pandas", "duckdb"])
def test_the_sample_panel_is_what_it_was_before_brand_promise(old_panel, opened):
    """Everything estimate writes on a v1 dataset is computed from this panel, and no brand
    estimand or table is asked of it (``registry.applicable``); on data/sample the result
    files were also compared byte for byte before and after (commit message)."""
    if not (SAMPLE / "units.csv").exists():
        pytest.skip("data/sample is absent (make data)")
    dataset = opened(SAMPLE)
    try:
        as_of = resolve_as_of(dataset)
        now = panel.unit_wave_panel(dataset, 91, as_of)
        before = old_panel.unit_wave_panel(dataset, 91, as_of)
    finally:
        if dataset.customer_tables is not None:
            dataset.customer_tables.close()
    assert_frame_equal(now, before, check_exact=True)
    assert not BRAND_COLUMNS & set(now.columns)
