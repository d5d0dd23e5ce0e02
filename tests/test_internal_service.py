"""Internal service (issue 15): provider scorecards and the service a unit receives.

Every number in the hand-built table below is worked out by hand in the comments, so each
assertion checks a formula, not the code against itself. Then: suppression directly and by
subtraction (an adversary who changes a hidden provider's ratings sees nothing move), the
release noise, repeated raters, a provider rated only by its receiver's own staff, and a
simulation that checks ``received_noise_var`` against the spread of the received index over
replications.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.data.contract import POINTS_OF_CONNECTION
from analysis.measures.internal_service import (
    RANKING_COLUMNS,
    RECEIVED_COLUMNS,
    SCORE_COLUMNS,
    SPLIT_REASON,
    TREND_COLUMNS,
    provider_ranking,
    provider_scores,
    provider_statistics,
    provider_trend,
    service_received,
)
from analysis.measures.intervals import mean_with_t_interval
from analysis.measures.privacy import (
    Release,
    assert_no_disclosure,
    safe_totals,
    small_group_reason,
    standard_laplace,
)
from analysis.measures.shrinkage import empirical_bayes

MIN = 3
W1, W2 = pd.Timestamp("2024-03-01"), pd.Timestamp("2024-09-01")
Z = stats.norm.ppf(0.975)
RELEASE = Release(2.0, b"a test key, never a real one!!!!")
ITEM_INDEX = [f"{item}_index" for item in POINTS_OF_CONNECTION]


def _rating(respondent, rater, provider, wave, answers, nps=None):
    """One row; ``answers`` is one value for all six items or a dict of some of them."""
    if not isinstance(answers, dict):
        answers = dict.fromkeys(POINTS_OF_CONNECTION, answers)
    return {
        "respondent_id": respondent,
        "rater_unit_id": rater,
        "provider_unit_id": provider,
        "wave": wave,
        **{item: answers.get(item) for item in POINTS_OF_CONNECTION},
        "internal_nps": nps,
    }


def _typed(rows) -> pd.DataFrame:
    """As the loader types the table: string ids, datetime waves, nullable Int64 answers."""
    frame = pd.DataFrame(rows)
    for column in ("respondent_id", "rater_unit_id", "provider_unit_id"):
        frame[column] = frame[column].astype("string")
    frame["wave"] = pd.to_datetime(frame["wave"]).astype("datetime64[ns]")
    for column in (*POINTS_OF_CONNECTION, "internal_nps"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    return frame


def hand_table() -> pd.DataFrame:
    """Units A, B, C rate providers IT, HR and B. A rater's score is 25 × (mean answer − 1).

    Wave 1
      IT: a1 {listening 5, valued 4} → 87.5; a2 all 3 → 50; b1 all 4 but authenticity → 75;
          b2 all 2 but authenticity → 25; c1 all 5 → 100.       n 5, mean 337.5 / 5 = 67.5
      HR: a1 all 2 → 25; b1 all 4 → 75.                           n 2: hidden
      B:  a3 all 5 → 100 (rated by unit A only).                  n 1: hidden
    Wave 2
      IT: a1 all 4 → 75; b1 all 4 → 75; c1 all 3 → 50; c2 all 5 → 100.   n 4, mean 75
      HR: a1 all 3 → 50; a2 all 5 → 100; b1 all 2 → 25.                  n 3, mean 58⅓
    """
    two_items = {"poc_listening": 5, "poc_valued": 4}
    no_authenticity_4 = {item: 4 for item in POINTS_OF_CONNECTION[:5]}
    no_authenticity_2 = {item: 2 for item in POINTS_OF_CONNECTION[:5]}
    return _typed(
        [
            _rating("a1", "A", "IT", W1, two_items, 10),
            _rating("a2", "A", "IT", W1, 3, 8),
            _rating("b1", "B", "IT", W1, no_authenticity_4, 6),
            _rating("b2", "B", "IT", W1, no_authenticity_2, None),
            _rating("c1", "C", "IT", W1, 5, 9),
            _rating("a1", "A", "HR", W1, 2, 3),
            _rating("b1", "B", "HR", W1, 4, 10),
            _rating("a3", "A", "B", W1, 5, 9),
            _rating("a1", "A", "IT", W2, 4, 9),
            _rating("b1", "B", "IT", W2, 4, 9),
            _rating("c1", "C", "IT", W2, 3, 7),
            _rating("c2", "C", "IT", W2, 5, 10),
            _rating("a1", "A", "HR", W2, 3, 5),
            _rating("a2", "A", "HR", W2, 5, 9),
            _rating("b1", "B", "HR", W2, 2, 10),
        ]
    )


# pooled within-provider-wave sums of squares over provider-waves of at least MIN raters:
# IT W1: deviations 20, −17.5, 7.5, −42.5, 32.5 → 3625 (df 4); IT W2: 0, 0, −25, 25 → 1250
# (df 3); HR W2: −8⅓, 41⅔, −33⅓ → 2916⅔ (df 2)
POOLED_SHOWN = (3625 + 1250 + 8750 / 3) / 9
# for the model input every provider-wave of two or more: HR W1 adds 25, 75 → 1250 (df 1)
POOLED_ALL = (3625 + 1250 + 8750 / 3 + 1250) / 10


def _row(table: pd.DataFrame, provider: str, wave) -> pd.Series:
    match = table[(table["provider_unit_id"] == provider) & (table["wave"] == wave)]
    assert len(match) == 1
    return match.iloc[0]


def _received(table: pd.DataFrame, unit: str, wave) -> pd.Series:
    match = table[(table["unit_id"] == unit) & (table["wave"] == wave)]
    assert len(match) == 1
    return match.iloc[0]


# --------------------------------------------------------------------------------------------
# Scorecards by hand


def test_service_index_and_its_t_interval_by_hand():
    scores = provider_scores(hand_table(), MIN)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert list(zip(scores["provider_unit_id"], scores["wave"], strict=True)) == [
        ("B", W1),
        ("HR", W1),
        ("HR", W2),
        ("IT", W1),
        ("IT", W2),
    ]
    it = _row(scores, "IT", W1)
    assert it["n_raters"] == 5 and not it["suppressed"]
    assert it["service_index"] == pytest.approx(67.5)
    # s² = 3625 / 4 = 906.25, se = √(906.25 / 5), t(0.975, 4) = 2.7764
    half = stats.t.ppf(0.975, 4) * np.sqrt(906.25 / 5)
    assert it["conf_low"] == pytest.approx(67.5 - half)
    assert it["conf_high"] == 100.0  # 67.5 + 37.4 clipped to the scale
    assert it["service_index_noise_var"] == pytest.approx(POOLED_SHOWN / 5)
    # the kit's own t interval gives the same on the five scores
    kit = mean_with_t_interval(np.array([87.5, 50, 75, 25, 100]), 0.95, (0.0, 100.0))
    assert (kit["conf_low"], kit["conf_high"]) == pytest.approx((it["conf_low"], 100.0))
    hr = _row(scores, "HR", W2)
    assert hr["service_index"] == pytest.approx(175 / 3)
    # s² = 2916⅔ / 2, se = √(s² / 3), t(0.975, 2) = 4.303: ±133, clipped at both ends
    half = stats.t.ppf(0.975, 2) * np.sqrt((8750 / 3) / 2 / 3)
    assert 175 / 3 - half < 0 and 175 / 3 + half > 100
    assert (hr["conf_low"], hr["conf_high"]) == (0.0, 100.0)


def test_points_of_connection_each_on_its_own_count_by_hand():
    it = _row(provider_scores(hand_table(), MIN), "IT", W1)
    # listening 5, 3, 4, 2, 5 → 100, 50, 75, 25, 100; valued 4, 3, 4, 2, 5
    assert (it["poc_listening_index"], it["poc_listening_n"]) == (pytest.approx(70.0), 5)
    assert (it["poc_valued_index"], it["poc_valued_n"]) == (pytest.approx(65.0), 5)
    # resolution, honesty, reliability: a2 3, b1 4, b2 2, c1 5 → 62.5 on four answers
    for item in ("poc_resolution", "poc_honesty", "poc_reliability"):
        assert (it[f"{item}_index"], it[f"{item}_n"]) == (pytest.approx(62.5), 4)
    # authenticity: a2 and c1 only, two answers: hidden on its own count
    assert it["poc_authenticity_n"] == 2 and pd.isna(it["poc_authenticity_index"])


def test_internal_nps_and_its_adjusted_wald_interval_by_hand():
    it = _row(provider_scores(hand_table(), MIN), "IT", W1)
    # 10, 8, 6, 9 (b2 skipped): 2 promoters, 1 passive, 1 detractor → 100 (2 − 1) / 4
    assert it["internal_nps_n"] == 4 and it["internal_nps"] == pytest.approx(25.0)
    # adjusted Wald: p = 2.75/7, d = 1.75/7; centre 100/7; var 4.5/7 − (1/7)²
    centre = 100 / 7
    se = 100 * np.sqrt((4.5 / 7 - 1 / 49) / 7)
    assert it["internal_nps_conf_low"] == pytest.approx(centre - Z * se)
    assert it["internal_nps_conf_high"] == pytest.approx(centre + Z * se)
    wald = _row(provider_scores(hand_table(), MIN, nps_method="wald"), "IT", W1)
    se = 100 * np.sqrt((0.75 - 0.25**2) / 4)
    assert wald["internal_nps_conf_low"] == pytest.approx(25 - Z * se)


def test_a_provider_wave_below_the_minimum_shows_nothing_but_its_counts():
    scores = provider_scores(hand_table(), MIN)
    employee_values = [c for c in SCORE_COLUMNS if c not in ("provider_unit_id", "wave")]
    employee_values = [
        c for c in employee_values if not c.endswith("_n") and c not in ("n_raters", "suppressed")
    ]
    employee_values.remove("suppression")
    for provider, n in (("HR", 2), ("B", 1)):
        row = _row(scores, provider, W1)
        assert row["n_raters"] == n and row["suppressed"]
        assert row["suppression"] == small_group_reason(MIN, "raters")
        assert row[employee_values].isna().all(), row[employee_values]
    assert_no_disclosure(
        scores, count="n_raters", values=employee_values, min_group_size=MIN, parents=[]
    )


def test_published_totals_get_complementary_suppression():
    """Declared per-wave totals: wave 1's two hidden providers hold 3 raters, under a minimum of
    4, so the total minus IT would give them away; IT is hidden too."""
    values = ["service_index", "conf_low", "conf_high", "service_index_noise_var"]
    plain = provider_scores(hand_table(), 4)
    assert not _row(plain, "IT", W1)["suppressed"]  # no total published: nothing to protect
    scores = provider_scores(hand_table(), 4, parents=[("wave",)])
    it = _row(scores, "IT", W1)
    assert it["suppressed"] and pd.isna(it["service_index"]) and it["n_raters"] == 5
    assert it["suppression"].startswith("complementary")
    exact = provider_statistics(hand_table(), 4)  # the true values, as safe_totals needs
    # W1: 67.5 (5), 50 (2), 100 (1); W2: 75 (4), 58⅓ (3)
    assert exact["service_index"].tolist() == pytest.approx([100, 50, 175 / 3, 67.5, 75])
    totals = safe_totals(
        exact,
        by=("wave",),
        count="n_raters",
        values=["service_index"],
        min_group_size=4,
        parents=[("wave",)],
    )
    # with IT hidden too, wave 1's total covers all 8 raters and no subtraction isolates any
    # fewer than 4: (337.5 + 25 + 75 + 100) / 8
    w1 = totals.set_index("wave").loc[W1]
    assert not w1["suppressed"] and w1["service_index"] == pytest.approx(537.5 / 8)
    assert_no_disclosure(
        scores,
        count="n_raters",
        values=values,
        min_group_size=4,
        parents=[("wave",)],
        totals={("wave",): totals},
    )


# --------------------------------------------------------------------------------------------
# Ranking and trend


def test_ranking_shrinks_the_latest_waves_shown_providers_by_hand():
    ranking = provider_ranking(provider_scores(hand_table(), MIN))
    assert list(ranking.columns) == list(RANKING_COLUMNS)
    assert set(ranking["provider_unit_id"]) == {"IT", "HR"}  # B never shown, W2 only
    # x = 75 (n 4), 58⅓ (n 3), v = s²/n: the spread 2 × (8⅓)² = 138.9 is below the mean noise
    # (s²/4 + s²/3)/2 = 252.5, so τ² = 0, B = 1 and both sit at μ = (4·75 + 3·58⅓)/7
    mu = (4 * 75 + 175) / 7
    assert ranking["shrinkage"].tolist() == [1.0, 1.0]
    assert ranking["shrunken"].tolist() == pytest.approx([mu, mu])
    assert ranking["posterior_sd"].tolist() == pytest.approx([np.sqrt(POOLED_SHOWN / 7)] * 2)
    assert ranking["rank"].tolist() == [1, 1]
    assert ranking["provider_unit_id"].tolist() == ["HR", "IT"]  # a tie, then by name


def test_ranking_uses_the_kits_empirical_bayes_and_never_lists_a_hidden_provider():
    rng = np.random.default_rng(3)
    rows = []
    for p in range(8):
        raters = 2 if p == 0 else 4 + p  # provider 0 hidden
        for r in range(raters):
            answer = int(np.clip(round(1 + p / 2 + rng.normal(0, 0.7)), 1, 5))
            rows.append(_rating(f"r{p}-{r}", f"U{r % 3}", f"P{p}", W2, answer))
    scores = provider_scores(_typed(rows), MIN)
    ranking = provider_ranking(scores)
    assert "P0" not in set(ranking["provider_unit_id"])
    shown = scores[~scores["suppressed"]].sort_values("provider_unit_id")
    fit = empirical_bayes(
        shown["service_index"].reset_index(drop=True),
        shown["service_index_noise_var"].reset_index(drop=True),
    )
    fit.index = shown["provider_unit_id"].to_numpy()
    assert fit["tau2"].iloc[0] > 0  # a real shrinkage, not the τ² = 0 corner
    mine = ranking.set_index("provider_unit_id")
    assert mine["shrunken"].to_dict() == pytest.approx(fit["shrunken"].to_dict())
    assert (mine["rank"] == fit["rank"].loc[mine.index]).all()
    assert ranking["rank"].is_monotonic_increasing


def test_trend_from_first_to_last_shown_wave_by_hand():
    trend = provider_trend(provider_scores(hand_table(), MIN))
    assert list(trend.columns) == list(TREND_COLUMNS)
    assert trend["provider_unit_id"].tolist() == ["HR", "IT"]  # B is never shown
    it = trend.set_index("provider_unit_id").loc["IT"]
    assert (it["first_wave"], it["last_wave"], it["n_waves"]) == (W1, W2, 2)
    assert (it["n_raters_first"], it["n_raters_last"]) == (5, 4)
    se = np.sqrt(POOLED_SHOWN / 5 + POOLED_SHOWN / 4)
    assert it["change"] == pytest.approx(7.5) and it["std_error"] == pytest.approx(se)
    assert (it["conf_low"], it["conf_high"]) == pytest.approx((7.5 - Z * se, 7.5 + Z * se))
    assert it["p_value"] == pytest.approx(2 * stats.norm.sf(7.5 / se))
    hr = trend.set_index("provider_unit_id").loc["HR"]  # wave 1 hidden: one shown wave
    assert hr["n_waves"] == 1 and hr["first_wave"] == W2 and pd.isna(hr["change"])


# --------------------------------------------------------------------------------------------
# Internal service received, leaving out the unit's own raters


def test_received_service_leaves_out_the_units_own_raters_by_hand():
    received = service_received(hand_table(), MIN)
    assert list(received.columns) == list(RECEIVED_COLUMNS)
    # wave 1, unit A: IT without a1, a2: (337.5 − 137.5)/3 = 66⅔ (m 3); HR without a1: b1's 75
    # (m 1); B is rated by A only: unmeasured. Weights 2 and 1 (A's raters of IT and of HR).
    a = _received(received, "A", W1)
    assert a["service_received"] == pytest.approx(2 / 3 * 200 / 3 + 1 / 3 * 75)
    assert a["received_noise_var"] == pytest.approx(POOLED_ALL * ((4 / 9) / 3 + (1 / 9) / 1))
    assert (a["n_providers"], a["n_providers_unmeasured"]) == (2, 1)
    assert (a["n_raters_own"], a["n_raters_other"]) == (2, 3)  # a1, a2; b1, b2, c1
    # unit B: IT without b1, b2: (337.5 − 100)/3; HR without b1: a1's 25
    b = _received(received, "B", W1)
    assert b["service_received"] == pytest.approx(2 / 3 * 237.5 / 3 + 1 / 3 * 25)
    assert (b["n_raters_own"], b["n_raters_other"]) == (2, 3)  # b1, b2; a1, a2, c1
    # unit C: IT only, without c1: 237.5 / 4
    c = _received(received, "C", W1)
    assert c["service_received"] == pytest.approx(59.375)
    assert c["received_noise_var"] == pytest.approx(POOLED_ALL / 4)
    # wave 2, A: IT without a1: 225/3 = 75 (m 3, weight 1); HR without a1, a2: 25 (m 1, weight 2)
    a2 = _received(received, "A", W2)
    assert a2["service_received"] == pytest.approx(75 / 3 + 2 / 3 * 25)
    assert a2["received_noise_var"] == pytest.approx(POOLED_ALL * ((1 / 9) / 3 + (4 / 9) / 1))
    # B: IT without b1 = 75 (m 3), HR without b1 = (50 + 100)/2 = 75 (m 2), weights 1, 1
    b2 = _received(received, "B", W2)
    assert b2["service_received"] == pytest.approx(75.0)
    assert b2["received_noise_var"] == pytest.approx(POOLED_ALL * (0.25 / 3 + 0.25 / 2))
    assert (b2["n_raters_own"], b2["n_raters_other"]) == (1, 4)  # a1, c1, c2 and a2


def test_received_service_equals_a_plain_loop_over_units():
    """The vectorised leave-out against the definition written as a loop, on random data."""
    rng = np.random.default_rng(11)
    rows = []
    for wave in (W1, W2):
        for person in range(60):
            unit = f"U{person % 6}"
            for provider in rng.choice([f"U{k}" for k in range(6)], size=2, replace=False):
                if provider != unit:
                    rows.append(
                        _rating(f"p{person}", unit, provider, wave, int(rng.integers(1, 6)))
                    )
    table = _typed(rows)
    received = service_received(table, MIN).set_index(["unit_id", "wave"])
    score = (table[list(POINTS_OF_CONNECTION)].astype(float).mean(axis=1) - 1) * 25
    for (unit, wave), row in received.iterrows():
        mine = table[(table["rater_unit_id"] == unit) & (table["wave"] == wave)]
        weights, values = [], []
        for provider, own in mine.groupby("provider_unit_id"):
            others = (
                (table["provider_unit_id"] == provider)
                & (table["wave"] == wave)
                & (table["rater_unit_id"] != unit)
            )
            if others.any():
                weights.append(len(own))
                values.append(score[others].mean())
        expected = np.average(values, weights=weights) if weights else np.nan
        assert row["service_received"] == pytest.approx(expected, nan_ok=True)


def test_a_provider_rated_only_by_the_receivers_own_staff_leaves_nothing():
    """Leaving out its own raters leaves nothing: the provider does not enter; with no other
    provider the unit's received service is missing, not its own ratings."""
    lone = _typed(
        [
            _rating("x1", "X", "P", W1, 5),
            _rating("x2", "X", "P", W1, 4),
            _rating("x3", "X", "P", W1, 3),
        ]
    )
    row = service_received(lone, MIN).iloc[0]
    assert (row["unit_id"], row["n_providers"], row["n_providers_unmeasured"]) == ("X", 0, 1)
    assert pd.isna(row["service_received"]) and pd.isna(row["received_noise_var"])
    assert (row["n_raters_own"], row["n_raters_other"]) == (0, 0)
    assert row["suppressed"]
    # its scorecard still exists: three raters, from one unit
    assert _row(provider_scores(lone, MIN), "P", W1)["service_index"] == pytest.approx(75.0)
    # in the hand table, B is rated by A only: A's received service is IT's and HR's alone
    a = _received(service_received(hand_table(), MIN), "A", W1)
    without_b = hand_table().query("provider_unit_id != 'B'")
    assert a["service_received"] == pytest.approx(
        _received(service_received(without_b, MIN), "A", W1)["service_received"]
    )


def test_repeated_ratings_are_refused_and_people_are_counted_once():
    table = hand_table()
    with pytest.raises(ValueError, match="repeat a"):
        provider_scores(pd.concat([table, table.iloc[[0]]], ignore_index=True), MIN)
    with pytest.raises(ValueError, match="repeat a"):
        service_received(pd.concat([table, table.iloc[[0]]], ignore_index=True), MIN)
    # one person rating two providers is one person: b1 rates IT and HR in wave 1 and counts
    # once among A's other raters (b1, b2, c1), and a1 once among A's own (a1, a2)
    a = _received(service_received(table, MIN), "A", W1)
    assert (a["n_raters_own"], a["n_raters_other"]) == (2, 3)
    unanswered = table.copy()
    unanswered.loc[0, list(POINTS_OF_CONNECTION)] = pd.NA
    with pytest.raises(ValueError, match="no point of connection"):
        provider_scores(unanswered, MIN)


def test_optional_columns_may_be_absent():
    table = hand_table().drop(columns=["internal_nps", "poc_authenticity"])
    scores = provider_scores(table, MIN)
    it = _row(scores, "IT", W1)
    assert it["internal_nps_n"] == 0 and pd.isna(it["internal_nps"])
    assert it["poc_authenticity_n"] == 0
    assert it["service_index"] == pytest.approx(67.5)  # nobody's mean changes here


# --------------------------------------------------------------------------------------------
# Privacy: directly, by subtraction, and across releases


def _mirrored(table: pd.DataFrame, hidden: list[tuple[str, pd.Timestamp]]) -> pd.DataFrame:
    """The same table with the hidden provider-waves' answers mirrored (x → 6 − x, NPS 10 − x)."""
    result = table.copy()
    mask = np.zeros(len(table), dtype=bool)
    for provider, wave in hidden:
        mask |= ((table["provider_unit_id"] == provider) & (table["wave"] == wave)).to_numpy()
    for item in POINTS_OF_CONNECTION:
        result.loc[mask, item] = 6 - result.loc[mask, item]
    result.loc[mask, "internal_nps"] = 10 - result.loc[mask, "internal_nps"]
    return result


def _adversarial_table() -> pd.DataFrame:
    """Two waves of eight providers rated from four units, some provider-waves under MIN, some
    cells of a provider's raters from one unit under MIN, and a provider hidden in one wave."""
    rng = np.random.default_rng(5)
    rows = []
    for wave in (W1, W2):
        for p in range(9):
            sizes = {
                0: [1, 1],
                1: [1, 0, 0, 0, 0, 0, 1],  # r6-0 rates the hidden P1 and P8
                2: [3, 3],
                3: [3, 1, 4],
                4: [5, 4, 3],
                8: [0, 0, 0, 0, 0, 3, 3],  # U5 rates only P8: its row shows
            }.get(p, [4, 3])
            if wave == W2 and p == 5:
                sizes = [1, 1]  # shown in wave 1, hidden in wave 2
            for u, size in enumerate(sizes):
                for r in range(size):
                    answers = {i: int(rng.integers(1, 6)) for i in POINTS_OF_CONNECTION}
                    if rng.random() < 0.2:
                        answers.pop("poc_honesty")
                    rows.append(
                        _rating(f"r{u}-{r}", f"U{u}", f"P{p}", wave, answers, int(rng.integers(11)))
                    )
    return _typed(rows)


def test_no_published_figure_moves_when_a_hidden_providers_ratings_change():
    """Everything the scorecards, the ranking, the trend and the shown received rows publish is
    the same whatever a hidden provider's raters answered, so no subtraction of any published
    figures can recover them; exact and released alike (the same release key)."""
    table = _adversarial_table()
    exact = provider_scores(table, MIN)
    hidden = [
        (p, w)
        for p, w, s in exact[["provider_unit_id", "wave", "suppressed"]].itertuples(index=False)
        if s
    ]
    assert {("P0", W1), ("P1", W1), ("P5", W2)} <= set(hidden)
    changed = _mirrored(table, hidden)
    assert not changed.equals(table)
    for release in (None, RELEASE):
        before = provider_scores(table, MIN, release=release)
        after = provider_scores(changed, MIN, release=release)
        pd.testing.assert_frame_equal(before, after)
        pd.testing.assert_frame_equal(provider_ranking(before), provider_ranking(after))
        pd.testing.assert_frame_equal(provider_trend(before), provider_trend(after))
    received_before = service_received(table, MIN)
    received_after = service_received(changed, MIN)
    shown = ~received_before["suppressed"]
    # U5 shows: it gets P8 from U6's three raters, one of whom also rates the hidden P1; U6
    # rated P1 itself, so its row is hidden
    assert set(received_before.loc[shown, "unit_id"]) == {"U5"}
    pd.testing.assert_series_equal(
        received_before.loc[shown, "service_received"],
        received_after.loc[shown, "service_received"],
    )
    # the model input itself does move: it uses every rating, and is not for display
    assert not received_before["service_received"].equals(received_after["service_received"])


def test_no_shown_received_row_depends_on_a_units_few_raters_of_a_provider():
    """The subtraction the display rule stops: a provider's published total minus the other
    units' parts is one unit's raters. Mirror every (rater unit, provider, wave) cell of fewer
    than MIN raters, in shown providers too: no shown received row moves."""
    table = _adversarial_table()
    cell = ["rater_unit_id", "provider_unit_id", "wave"]
    sizes = table.groupby(cell)["respondent_id"].transform("size")
    changed = table.copy()
    small = (sizes < MIN).to_numpy()
    for item in POINTS_OF_CONNECTION:
        changed.loc[small, item] = 6 - changed.loc[small, item]
    shown_providers = provider_scores(table, MIN).query("not suppressed")
    assert table[small].merge(shown_providers[["provider_unit_id", "wave"]]).shape[0] > 0
    before, after = service_received(table, MIN), service_received(changed, MIN)
    shown = ~before["suppressed"]
    pd.testing.assert_series_equal(
        before.loc[shown, "service_received"], after.loc[shown, "service_received"]
    )
    assert not before["service_received"].equals(after["service_received"])


def test_the_received_model_input_would_give_a_rater_away_and_is_marked_suppressed():
    """The attack the rule stops: unit C rated only IT in wave 1. IT's published index (67.5 of
    5 raters) minus C's received service (IT without c1, 4 raters) is c1's own rating."""
    scores = provider_scores(hand_table(), MIN)
    received = service_received(hand_table(), MIN)
    it = _row(scores, "IT", W1)
    c = _received(received, "C", W1)
    recovered = it["n_raters"] * it["service_index"] - 4 * c["service_received"]
    assert recovered == pytest.approx(100.0)  # c1 answered 5 everywhere
    assert c["suppressed"] and c["suppression"] == SPLIT_REASON.format(MIN)
    assert received["suppressed"].all()  # every unit of the hand table has a small cell


def test_received_rows_show_only_when_every_unit_cell_is_large_enough():
    rows = [_rating(f"x{i}", "X", "P", W1, 4) for i in range(3)]
    rows += [_rating(f"y{i}", "Y", "P", W1, 2 + i) for i in range(3)]
    received = service_received(_typed(rows), MIN).set_index("unit_id")
    # X gets Y's three raters (25, 50, 75 → 50); Y gets X's (75); every cell holds 3 people
    assert received.loc["X", "service_received"] == pytest.approx(50.0)
    assert received.loc["Y", "service_received"] == pytest.approx(75.0)
    assert not received["suppressed"].any()
    rows.append(_rating("z0", "Z", "P", W1, 1))  # one rater from Z: S_ZP = S_P − S_XP − S_YP
    received = service_received(_typed(rows), MIN).set_index("unit_id")
    assert received["suppressed"].all()


def test_released_figures_are_the_exact_ones_plus_laplace_noise_of_the_right_scale():
    table = hand_table()
    exact = provider_scores(table, MIN)
    released = provider_scores(table, MIN, release=RELEASE)
    pd.testing.assert_frame_equal(released, provider_scores(table, MIN, release=RELEASE))
    for column in ("service_index", *ITEM_INDEX, "internal_nps"):  # hidden stays hidden
        assert (released[column].isna() == exact[column].isna()).all(), column
    it_exact, it = _row(exact, "IT", W1), _row(released, "IT", W1)
    draw = standard_laplace(RELEASE, [("internal_service", "service_index", "IT", W1)])[0]
    b = 100 / (5 * RELEASE.epsilon)
    assert it["service_index"] == pytest.approx(it_exact["service_index"] + b * draw)
    draw = standard_laplace(RELEASE, [("internal_service", "poc_valued_index", "IT", W1)])[0]
    assert it["poc_valued_index"] == pytest.approx(65.0 + 100 / (5 * 2.0) * draw)
    draw = standard_laplace(RELEASE, [("internal_service", "internal_nps", "IT", W1)])[0]
    assert it["internal_nps"] == pytest.approx(25.0 + 200 / (4 * 2.0) * draw)
    # the noise variance 2b² is part of the published variance, and the interval holds it
    pool_draw = standard_laplace(RELEASE, [("internal_service", "service_pooled_within_variance")])
    pool = max(POOLED_SHOWN + 100**2 / (9 * 2.0) * pool_draw[0], 0.0)
    assert it["service_index_noise_var"] == pytest.approx(pool / 5 + 2 * b**2)
    assert it["conf_low"] < it["service_index"] < it["conf_high"] or it["conf_high"] == 100.0


# --------------------------------------------------------------------------------------------
# Simulation: the noise variance of the received index against its spread over replications


def test_received_noise_var_matches_the_spread_over_replications():
    """Each replication is one wave with the same design; answers drawn afresh.

    A provider's item answers are ``base_P + Binomial(2, ½)``, independent, so every rater's
    score has the same variance ``σ² = 25² · ½ / 6`` and the true received service of a unit is
    ``Σ a_P · 25 base_P``. Over ``R`` replications the sample variance of a unit's received
    index has relative standard error about ``√(2 / (R − 1))`` (2.2% at R = 4000; the index is
    an average of many bounded answers, near normal, with a kurtosis below the normal's), so
    agreement within 4 of them (8.9%) is asked of each unit; the mean of each is checked
    against the truth within 4 Monte-Carlo standard errors. The naive ``σ²/n_raters_other``
    misses unit U3 by 71% (``Σ a²/m`` = .142 against 1/12), so the test can tell.
    """
    design = {  # (rater unit, provider): raters
        ("U1", "P1"): 3, ("U1", "P2"): 1,
        ("U2", "P1"): 2, ("U2", "P2"): 4, ("U2", "P3"): 2,
        ("U3", "P1"): 5, ("U3", "P3"): 1,
        ("U4", "P2"): 2, ("U4", "P3"): 6,
    }  # fmt: skip
    base = {"P1": 1, "P2": 2, "P3": 3}
    replications = 4000
    raters, units, providers = [], [], []
    for (unit, provider), size in design.items():
        for r in range(size):
            # U2's first rater rates all three providers: one person, three ratings
            raters.append(f"{unit}-0" if unit == "U2" and r == 0 else f"{unit}-{provider}-{r}")
            units.append(unit)
            providers.append(provider)
    per_wave = len(raters)
    rng = np.random.default_rng(20261203)
    waves = pd.date_range("2000-01-01", periods=replications, freq="D")
    answers = np.array([base[p] for p in providers])[None, :, None] + rng.binomial(
        2, 0.5, size=(replications, per_wave, len(POINTS_OF_CONNECTION))
    )
    frame = pd.DataFrame(
        {
            "respondent_id": pd.array(np.tile(raters, replications), dtype="string"),
            "rater_unit_id": pd.array(np.tile(units, replications), dtype="string"),
            "provider_unit_id": pd.array(np.tile(providers, replications), dtype="string"),
            "wave": np.repeat(waves.to_numpy(), per_wave),
        }
    )
    flat = answers.reshape(-1, len(POINTS_OF_CONNECTION))
    for i, item in enumerate(POINTS_OF_CONNECTION):
        frame[item] = pd.array(flat[:, i], dtype="Int64")
    received = service_received(frame, MIN)
    sigma2 = 25**2 * 0.5 / len(POINTS_OF_CONNECTION)
    tolerance = 4 * np.sqrt(2 / (replications - 1))
    for unit in ("U1", "U2", "U3", "U4"):
        cells = {p: n for (u, p), n in design.items() if u == unit}
        total = sum(cells.values())
        others = {p: sum(n for (u, q), n in design.items() if q == p) - cells[p] for p in cells}
        weights = {p: n / total for p, n in cells.items()}
        truth = sum(weights[p] * 25 * base[p] for p in cells)
        theory = sigma2 * sum(weights[p] ** 2 / others[p] for p in cells)
        mine = received[received["unit_id"] == unit]
        assert len(mine) == replications
        empirical = mine["service_received"].var(ddof=1)
        predicted = mine["received_noise_var"].mean()
        assert predicted == pytest.approx(theory, rel=0.02)  # σ² pooled over 4000 waves
        assert abs(empirical / predicted - 1) < tolerance, (unit, empirical, predicted)
        standard_error = np.sqrt(empirical / replications)
        assert abs(mine["service_received"].mean() - truth) < 4 * standard_error
        if unit == "U3":
            naive = sigma2 / mine["n_raters_other"].iloc[0]
            assert abs(empirical / naive - 1) > 5 * tolerance


# --------------------------------------------------------------------------------------------
# Through the loader: a real dataset folder with the table as a CSV file


def test_the_loaded_table_gives_the_same_figures_as_the_hand_table(small_study):
    """The hand table written into a real study (its units and survey waves, as CSV text) and
    read back by the loader: identical scorecards and received service, ids mapped."""
    from analysis.data.load import load_dataset

    units = pd.read_csv(small_study / "units.csv", dtype=str)["unit_id"].tolist()
    survey_waves = pd.read_csv(small_study / "employee_survey.csv", dtype=str)["wave"]
    waves = sorted(survey_waves.unique())[:2]
    names = {"A": units[0], "B": units[1], "C": units[2], "IT": units[3], "HR": units[4]}
    dates = {W1: pd.Timestamp(waves[0]), W2: pd.Timestamp(waves[1])}
    table = hand_table()
    for column in ("rater_unit_id", "provider_unit_id"):
        table[column] = table[column].map(names).astype("string")
    table["wave"] = table["wave"].map(dates).astype("datetime64[ns]")
    text = table.assign(wave=table["wave"].dt.strftime("%Y-%m-%d"))
    text.to_csv(small_study / "internal_service.csv", index=False)
    loaded = load_dataset(small_study).internal_service
    for release in (None, RELEASE):
        pd.testing.assert_frame_equal(
            provider_scores(loaded, MIN, release=release),
            provider_scores(table, MIN, release=release),
        )
    pd.testing.assert_frame_equal(service_received(loaded, MIN), service_received(table, MIN))
    scores = provider_scores(loaded, MIN)
    assert _row(scores, names["IT"], dates[W1])["service_index"] == pytest.approx(67.5)
