"""Coverage, response by wave and the suppression summary, checked against direct counts of the
tables of a small synthetic study written to real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from analysis.data.load import load_dataset
from analysis.measures.panel import unit_wave_panel
from analysis.measures.privacy import COMPLEMENTARY, small_group_reason, suppress
from analysis.measures.quality import (
    COVERAGE_COLUMNS,
    RESPONSE_BY_WAVE_COLUMNS,
    SUPPRESSION_SUMMARY_COLUMNS,
    coverage,
    linked_answers,
    response_by_wave,
    suppression_summary,
)

MIN_GROUP_SIZE = 5
WINDOW = 91


@pytest.fixture(scope="module")
def study(small_study_master):
    dataset = load_dataset(small_study_master)  # only reads the session's shared copy
    return dataset, unit_wave_panel(dataset, outcome_window_days=WINDOW)


def _linked_by_brute_force(answers: pd.DataFrame, panel: pd.DataFrame, window: int) -> int:
    """Every (answer, surveyed wave of its unit) pair, kept when the answer is in the window."""
    pairs = answers[["response_id", "unit_id", "responded_on"]].merge(
        panel[["unit_id", "wave"]], on="unit_id"
    )
    inside = (pairs["responded_on"] > pairs["wave"]) & (
        pairs["responded_on"] <= pairs["wave"] + pd.Timedelta(days=window)
    )
    return pairs.loc[inside, "response_id"].nunique()


def _values(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["measure"], table["value"], strict=True))


def test_coverage_counts_agree_with_the_tables(study):
    dataset, panel = study
    table = coverage(dataset, panel, MIN_GROUP_SIZE)
    assert list(table.columns) == list(COVERAGE_COLUMNS)
    assert table["measure"].is_unique
    value = _values(table)
    units, survey = dataset.units, dataset.employee_survey
    facing = [bool(x) for x in units["customer_facing"]]
    assert value["units"] == len(units) == 60
    assert value["units_customer_facing"] == sum(facing)
    assert value["units_back_office"] == len(facing) - sum(facing)
    assert value["waves"] == len(set(survey["wave"])) == 4
    assert value["employee_responses"] == len(survey)
    assert value["distinct_respondents"] == len(set(survey["respondent_id"]))
    assert value["unit_waves"] == len(set(zip(survey["unit_id"], survey["wave"], strict=True)))
    engagement_items = list(dataset.instrument.scale("engagement").items)
    scored = survey[engagement_items].notna().any(axis=1).sum()  # respondents with a score
    assert value["mean_respondents_per_unit_wave"] == pytest.approx(scored / len(panel))
    shown = sum(n >= MIN_GROUP_SIZE for n in panel["n_respondents"])
    assert value["share_unit_waves_shown"] == pytest.approx(shown / len(panel))
    assert value["nps_answers"] == len(dataset.customer_nps)
    customers = dataset.customers
    first_wave = min(survey["wave"])
    assert value["customers"] == len(customers)
    assert value["customers_before_first_wave"] == sum(s < first_wave for s in customers["since"])
    assert value["customers_churned"] == sum(pd.notna(d) for d in customers["churned_on"])
    # For a count, n is the count; for a share, its denominator.
    counts = table[table["kind"] == "count"]
    assert (counts["n"] == counts["value"]).all()
    assert counts[["conf_low", "conf_high"]].isna().all().all()
    shares = table.set_index("measure")
    assert shares.loc["share_unit_waves_shown", "n"] == len(panel)
    assert shares.loc["linkage_rate", "n"] == len(dataset.customer_nps)


def test_shares_carry_wilson_intervals_that_contain_them(study):
    dataset, panel = study
    table = coverage(dataset, panel, MIN_GROUP_SIZE).set_index("measure")
    shares = table[table["kind"] == "share"]
    assert len(shares) == 4
    for measure, row in shares.iterrows():
        assert 0 <= row["conf_low"] <= row["value"] <= row["conf_high"] <= 1, measure
        successes = round(row["value"] * row["n"])
        low, high = proportion_confint(successes, row["n"], alpha=0.05, method="wilson")
        assert (row["conf_low"], row["conf_high"]) == pytest.approx((low, high), abs=1e-10)


def test_linkage_rate_counts_answers_in_some_surveyed_window(study):
    dataset, panel = study
    brute = _linked_by_brute_force(dataset.customer_nps, panel, WINDOW)
    # Four quarterly waves from March to December are 91–92 days apart: no window overlaps, so
    # the panel's sum, the exact count and the brute-force count all agree.
    assert panel["n_responses"].sum() == brute
    assert linked_answers(dataset.customer_nps, panel, WINDOW) == brute
    for window in (None, WINDOW):
        table = coverage(dataset, panel, MIN_GROUP_SIZE, outcome_window_days=window)
        row = table.set_index("measure").loc["linkage_rate"]
        assert row["value"] == pytest.approx(brute / len(dataset.customer_nps))
        assert 0 <= row["conf_low"] <= row["value"] <= row["conf_high"] <= 1
    # Answers in the quarter before the first wave link to nothing, so the rate is below one.
    assert row["value"] < 1


def test_overlapping_windows_are_counted_once_when_the_window_is_given(study):
    dataset, _ = study
    wide = 200  # longer than the ~91-day gap between waves: each answer can sit in two windows
    panel = unit_wave_panel(dataset, outcome_window_days=wide)
    brute = _linked_by_brute_force(dataset.customer_nps, panel, wide)
    assert panel["n_responses"].sum() > len(dataset.customer_nps) >= brute
    exact = coverage(dataset, panel, MIN_GROUP_SIZE, outcome_window_days=wide)
    row = exact.set_index("measure").loc["linkage_rate"]
    assert row["value"] == pytest.approx(brute / len(dataset.customer_nps))
    assert "overlapping" in row["note"]
    # Without the window the double-counted sum is not a share, and it says so.
    naive = coverage(dataset, panel, MIN_GROUP_SIZE).set_index("measure").loc["linkage_rate"]
    assert np.isnan(naive["value"]) and "overlap" in naive["note"]


def test_response_by_wave_agrees_with_direct_counts(study):
    dataset, panel = study
    table = response_by_wave(dataset, panel, MIN_GROUP_SIZE)
    assert list(table.columns) == list(RESPONSE_BY_WAVE_COLUMNS)
    survey = dataset.employee_survey
    waves = sorted(set(survey["wave"]))
    assert list(table["wave"]) == waves
    assert list(table["wave_number"]) == [1, 2, 3, 4]
    for _, row in table.iterrows():
        in_wave = survey[survey["wave"] == row["wave"]]
        cells = panel[panel["wave"] == row["wave"]]
        assert row["employee_responses"] == len(in_wave)
        assert row["units_surveyed"] == in_wave["unit_id"].nunique()
        below = sum(n < MIN_GROUP_SIZE for n in cells["n_respondents"])
        assert row["unit_waves_below_min"] == below
        assert row["share_below_min"] == pytest.approx(below / len(cells))
        assert row["conf_low"] <= row["share_below_min"] <= row["conf_high"]
        assert row["nps_answers_in_window"] == cells["n_responses"].sum()
    assert table["employee_responses"].sum() == len(survey)
    coverage_table = coverage(dataset, panel, MIN_GROUP_SIZE).set_index("measure")
    assert table["nps_answers_in_window"].sum() == coverage_table.loc["nps_answers_linked", "value"]


def test_suppression_summary_counts_each_reason(study):
    _, panel = study
    cells = panel[["unit_id", "wave", "region", "n_respondents", "engagement_index"]]
    shown = suppress(
        cells,
        count="n_respondents",
        values=["engagement_index"],
        min_group_size=MIN_GROUP_SIZE,
        parents=[("wave",), ("region", "wave"), ()],
    )
    summary = suppression_summary(shown, min_group_size=MIN_GROUP_SIZE)
    assert list(summary.columns) == list(SUPPRESSION_SUMMARY_COLUMNS)
    assert summary["rows"].sum() == len(cells)
    assert (summary["n"] == len(cells)).all()
    assert summary["share"].sum() == pytest.approx(1.0)
    assert summary["respondents"].sum() == cells["n_respondents"].sum()
    expected = shown["suppression"].value_counts()
    for _, row in summary.iterrows():
        assert row["rows"] == expected.get(row["suppression"], 0)
    by_reason = summary.set_index("suppression")
    small = small_group_reason(MIN_GROUP_SIZE)
    assert by_reason.loc[small, "rows"] == sum(n < MIN_GROUP_SIZE for n in cells["n_respondents"])
    assert by_reason.loc["", "label"] == "Shown"
    assert "fewer than 5 respondents" in by_reason.loc[small, "label"]
    assert "complementary" in by_reason.loc[COMPLEMENTARY, "label"]


def test_suppression_summary_reports_complementary_suppression():
    # One group of three among two of ten, with the grand total published: the smaller of the
    # others (the first, on a tie) is hidden too, so the total cannot give the three away.
    table = pd.DataFrame({"team": ["a", "b", "c"], "n": [3, 10, 10], "score": [50.0, 60, 70]})
    shown = suppress(table, count="n", values=["score"], min_group_size=5, parents=[()])
    summary = suppression_summary(shown, count="n").set_index("suppression")
    assert summary.loc["", "rows"] == 1
    assert summary.loc[small_group_reason(5), "rows"] == 1
    assert summary.loc[COMPLEMENTARY, "rows"] == 1
    assert summary.loc[COMPLEMENTARY, "respondents"] == 10


def test_suppression_summary_lists_zero_rows_and_needs_the_suppression_column():
    table = pd.DataFrame({"n": [8, 9], "score": [1.0, 2.0]})
    shown = suppress(table, count="n", values=["score"], min_group_size=5, parents=[])
    summary = suppression_summary(shown, count="n", min_group_size=5)
    assert list(summary["rows"]) == [2, 0, 0]
    assert list(summary["suppression"]) == ["", small_group_reason(5), COMPLEMENTARY]
    without_count = suppression_summary(shown, count="missing")
    assert without_count["respondents"].isna().all()
    with pytest.raises(ValueError, match="suppress"):
        suppression_summary(table)
