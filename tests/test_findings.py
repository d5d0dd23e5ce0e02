"""Findings as data, then words (issue 12): each verdict decides its own sentence.

Three small studies are generated with the command line (120 units, 4 waves) and estimated
once each: one with no effect at all, one with an effect, and one where customer sentiment
drives engagement (reverse causation). The sentences of ``findings.csv`` must follow the
verdicts on each, and the cheap unit tests below check the verdict and wording rules on
hand-made estimate rows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.data.results import read_results
from analysis.measures.internal import SCALE_LABELS
from analysis.models import registry
from analysis.report import findings, sentences
from analysis.report.findings import (
    EVIDENCE,
    NO_CLEAR_EVIDENCE,
    NOT_ESTIMABLE,
    REVERSE_MEANINGFUL,
    findings_table,
    reverse_ruled_out,
    signed,
    verdict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SEED = 7
#: Few bootstrap draws: the tests read verdicts and words, not the bootstrap's precision.
QUICK = "bootstrap_draws: 50\n"
#: The effect study's true slope, NPS points per SD of engagement. With 120 units and 4 waves
#: the slope's SE is about 2 to 3.3 points (the MDE rows of these studies: 5 to 9 points at 80%
#: power), so 10 points is 3 to 5 SE from zero, beyond Holm's smallest threshold over 7 tests
#: (|t| > 2.8 for p < 0.05 / 7); the default 4 points would be below the MDE at this size.
EFFECT = "10"
FORWARD_HEADLINES = ("nps_on_engagement", "churn_hazard_on_engagement", "nps_quartile_gap")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def _study(root: Path, name: str, *switches: str) -> Path:
    """Generate a study with ``synth`` and estimate it with ``estimate``; the result folder."""
    data, out, params = root / name, root / f"{name}_results", root / "quick.yaml"
    params.write_text(QUICK)
    common = ["--seed", str(SEED), "--units", "120", "--waves", "4"]
    made = _cli("synth", "--out", str(data), *common, *switches)
    assert made.returncode == 0, made.stderr
    estimated = _cli("estimate", "--data", str(data), "--params", str(params), "--out", str(out))
    assert estimated.returncode == 0, estimated.stderr
    return out


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("findings")
    return {
        "null": _study(root, "null", "--no-effect"),
        "effect": _study(root, "effect", "--nps-effect", EFFECT),
        "reverse": _study(root, "reverse", "--reverse-causation"),
    }


def _findings(folder: Path) -> pd.DataFrame:
    return read_results(folder)["findings"]


def _names_a_measure(text: str) -> bool:
    """Whether a sentence names an internal measure as something to act on.

    "Engagement" is the subject of every sentence, so it counts only as a named driver
    (``drivers_sentence`` names drivers after "Of the internal measures," or "at once:").
    """
    others = [label.lower() for key, label in SCALE_LABELS.items() if key != "engagement"]
    return any(label in text.lower() for label in others) or "at once:" in text


def _row(table: pd.DataFrame, estimand: str) -> pd.Series:
    return table[table["estimand"] == estimand].iloc[0]


# --------------------------------------------------------------------------------------------
# The three studies


def test_null_study_says_no_clear_evidence_first(studies):
    table = _findings(studies["null"])
    forward = table[table["direction"] == "forward"]
    assert not (forward["verdict"] == EVIDENCE).any(), forward[["estimand", "verdict"]]
    first = sentences.headline_findings(table)[0]
    assert first.startswith("No clear evidence"), first
    main = _row(table, "nps_on_engagement")
    # the MDE the page states is the MDE row of estimates.csv, at the precision shown
    mde = read_results(studies["null"])["estimates"].set_index("estimand")
    assert f"detecting an effect of {mde.loc['nps_on_engagement_mde', 'estimate']:.1f}" in first
    assert main["mde"] == pytest.approx(mde.loc["nps_on_engagement_mde", "estimate"], abs=1e-6)
    for sentence in table.loc[table["verdict"] == NO_CLEAR_EVIDENCE, "sentence"]:
        assert sentence.startswith("No clear evidence"), sentence
    # the causal paragraph speaks of no association it did not find
    causal = sentences.causal_reading(table)
    assert "no association here" in causal and "the association" not in causal
    assert "timing fits" not in causal
    # nothing to act on: no internal measure is named
    drivers = read_results(studies["null"])["drivers"]
    link = findings.verdict_of(table, "nps_on_engagement") == EVIDENCE
    advice = sentences.drivers_sentence(drivers, link)
    assert not _names_a_measure(advice), advice


def test_effect_study_states_the_effect_with_its_interval(studies):
    table = _findings(studies["effect"])
    main = _row(table, "nps_on_engagement")
    assert main["verdict"] == EVIDENCE
    first = sentences.headline_findings(table)[0]
    interval = f"95% CI {signed(main['conf_low'])} to {signed(main['conf_high'])}"
    assert first.startswith("Units one standard deviation higher in engagement had customer NPS")
    assert f"{main['estimate']:.1f} points higher" in first and interval in first
    assert f"{int(main['n_units'])} units" in first
    causal = sentences.causal_reading(table)
    assert causal.startswith("Engagement measured in a survey wave predicts customer NPS")


def test_reverse_study_words_the_reverse_check_by_its_interval(studies):
    table = _findings(studies["reverse"])
    row = _row(table, "engagement_on_prior_nps")
    ruled_out = reverse_ruled_out(row["conf_low"], row["conf_high"])
    assert bool(row["excludes_meaningful"]) == ruled_out
    causal = sentences.causal_reading(table)
    if row["verdict"] == EVIDENCE:
        assert "predicts engagement at that wave" in row["sentence"]
    elif ruled_out:
        assert "argues against the reverse direction" in row["sentence"]
    else:
        # an interval wider than ±0.1 SD per 10 points cannot argue against the reverse link
        assert "argue" not in row["sentence"] and "argue" not in causal
        assert "too wide to rule out a reverse link of 0.1 SD per 10 NPS points" in row["sentence"]
    assert row["sentence"] in causal


def test_every_sentence_carries_n_and_the_interval(studies):
    for name, folder in studies.items():
        for _, row in _findings(folder).iterrows():
            if row["verdict"] == NOT_ESTIMABLE:
                assert "could not be estimated" in row["sentence"], (name, row["sentence"])
                continue
            assert "95% CI" in row["sentence"], (name, row["sentence"])
            assert f"{int(row['n_units'])} units" in row["sentence"], (name, row["sentence"])


def test_findings_csv_is_byte_identical_on_a_rerun(studies, tmp_path):
    data = studies["null"].parent / "null"
    params = studies["null"].parent / "quick.yaml"
    again = tmp_path / "again"
    result = _cli("estimate", "--data", str(data), "--params", str(params), "--out", str(again))
    assert result.returncode == 0, result.stderr
    first = (studies["null"] / "findings.csv").read_bytes()
    assert (again / "findings.csv").read_bytes() == first


# --------------------------------------------------------------------------------------------
# The rules, on hand-made rows


def _estimates(**rows: dict) -> pd.DataFrame:
    base = {"n_units": 40, "n_obs": 160, "std_error": 1.0, "method": "test"}
    return pd.DataFrame([{"estimand": name, **base, **row} for name, row in rows.items()])


def test_findings_follow_the_registry():
    # asked of every dataset: the tested entries that need nothing beyond contract v1
    tested = [e.name for e in registry.ESTIMANDS if e.tested and not e.needs]
    table = findings_table(_estimates(), 0.05)
    assert list(table["estimand"]) == tested
    assert set(tested) <= set(findings.WORDINGS) <= {e.name for e in registry.ESTIMANDS}
    assert list(table["finding"]) == [
        e.subject for e in registry.ESTIMANDS if e.tested and not e.needs
    ]
    assert (table["verdict"] == NOT_ESTIMABLE).all()
    assert list(table.columns) == list(findings.FINDING_COLUMNS)


@pytest.mark.parametrize(
    ("estimate", "low", "high", "p", "null", "expected"),
    [
        (2.0, 1.0, 3.0, 0.01, 0.0, EVIDENCE),
        (2.0, 1.0, 3.0, 0.06, 0.0, NO_CLEAR_EVIDENCE),  # Holm does not reject
        (2.0, -0.1, 4.0, 0.01, 0.0, NO_CLEAR_EVIDENCE),  # interval includes the null
        (0.8, 0.7, 0.9, 0.001, 1.0, EVIDENCE),  # a ratio's null is 1
        (0.8, 0.7, 1.01, 0.001, 1.0, NO_CLEAR_EVIDENCE),
        (float("nan"), 1.0, 3.0, 0.01, 0.0, NOT_ESTIMABLE),
        (2.0, 1.0, 3.0, float("nan"), 0.0, NOT_ESTIMABLE),
    ],
)
def test_verdict_needs_holm_and_the_interval(estimate, low, high, p, null, expected):
    assert verdict(estimate, low, high, p, null, 0.05) == expected


def test_no_clear_evidence_says_so_first_then_interval_then_mde():
    rows = _estimates(
        nps_on_engagement={"estimate": 2.2, "conf_low": -2.3, "conf_high": 6.8, "p_adjusted": 1},
        nps_on_engagement_mde={"estimate": 6.43, "conf_low": None, "conf_high": None},
    )
    sentence = _row(findings_table(rows, 0.05), "nps_on_engagement")["sentence"]
    assert sentence.startswith("No clear evidence of a link between engagement")
    assert "(95% CI −2.3 to +6.8; 40 units, 160 unit-quarters)" in sentence
    assert "includes no difference" in sentence
    assert "80% chance of detecting an effect of 6.4 NPS points" in sentence
    assert sentence.index("No clear") < sentence.index("95% CI") < sentence.index("80% chance")


def test_an_interval_that_excludes_the_null_without_holm_is_not_called_evidence():
    rows = _estimates(
        nps_quartile_gap={"estimate": 9.1, "conf_low": 1.6, "conf_high": 16.6, "p_adjusted": 0.13}
    )
    row = _row(findings_table(rows, 0.05), "nps_quartile_gap")
    assert row["verdict"] == NO_CLEAR_EVIDENCE
    assert row["sentence"].startswith("No clear evidence")
    assert "Holm's correction" in row["sentence"]
    assert "includes no difference" not in row["sentence"]


def test_evidence_states_the_effect_in_the_levels_interval():
    rows = _estimates(
        churn_hazard_on_engagement={
            "estimate": 0.83,
            "conf_low": 0.73,
            "conf_high": 0.95,
            "p_adjusted": 0.001,
        }
    )
    row = _row(findings_table(rows, 0.01), "churn_hazard_on_engagement")
    assert row["verdict"] == EVIDENCE
    assert row["sentence"] == (
        "Customers of units one standard deviation higher in engagement were 17% less likely "
        "to leave at any given time (hazard ratio 0.83, 99% CI 0.73 to 0.95; 160 customers in "
        "40 units)."
    )


@pytest.mark.parametrize(
    ("low", "high", "argues"),
    [(-0.05, 0.08, True), (-0.44, 0.50, False), (-0.05, 0.10, False), (-0.12, 0.02, False)],
)
def test_the_reverse_check_argues_only_inside_the_meaningful_bound(low, high, argues):
    rows = _estimates(
        engagement_on_prior_nps={
            "estimate": (low + high) / 2,
            "conf_low": low,
            "conf_high": high,
            "p_adjusted": 0.9,
        }
    )
    row = _row(findings_table(rows, 0.05), "engagement_on_prior_nps")
    assert REVERSE_MEANINGFUL == 0.1
    assert bool(row["excludes_meaningful"]) is argues
    assert ("argues against the reverse direction" in row["sentence"]) is argues
    assert "0.1 SD per 10 NPS points" in row["sentence"]


def test_the_mediated_share_needs_a_churn_link_to_divide():
    share = {"estimate": 0.3, "conf_low": 0.05, "conf_high": 0.6, "p_adjusted": 0.01}
    churn = {"estimate": 0.96, "conf_low": 0.85, "conf_high": 1.08, "p_adjusted": 1.0}
    row = _row(
        findings_table(
            _estimates(churn_hazard_on_engagement=churn, nps_mediated_share=share), 0.05
        ),
        "nps_mediated_share",
    )
    assert row["verdict"] == NOT_ESTIMABLE and "no clear link" in row["sentence"]
    churn |= {"estimate": 0.83, "conf_low": 0.73, "conf_high": 0.95, "p_adjusted": 0.001}
    row = _row(
        findings_table(
            _estimates(churn_hazard_on_engagement=churn, nps_mediated_share=share), 0.05
        ),
        "nps_mediated_share",
    )
    assert row["verdict"] == EVIDENCE
    assert row["sentence"].startswith("About 30% of engagement's link with churn runs through")


def test_causal_reading_speaks_of_an_association_only_where_one_was_found():
    null = {"conf_low": -1.0, "conf_high": 1.0, "p_adjusted": 1.0, "estimate": 0.0}
    found = {"estimate": 5.0, "conf_low": 3.0, "conf_high": 7.0, "p_adjusted": 0.001}
    none = findings_table(_estimates(nps_on_engagement=null, nps_on_engagement_within=null), 0.05)
    text = sentences.causal_reading(none)
    assert "no association here" in text and "part of the association" not in text
    some = findings_table(_estimates(nps_on_engagement=found, nps_on_engagement_within=null), 0.05)
    text = sentences.causal_reading(some)
    assert "timing fits engagement coming first" in text
    assert "part of the association may reflect stable differences" in text


def test_drivers_name_no_measure_without_evidence():
    drivers = pd.DataFrame(
        {
            "term": ["engagement_index", "enps_index"],
            "estimate": [1.0, 2.0],
            "share": [40.0, 60.0],
            "share_conf_low": [20.0, 35.0],
            "share_conf_high": [65.0, 80.0],
            "significant": [False, False],
            "n_units": [40, 40],
        }
    )
    for text in (
        sentences.drivers_sentence(drivers),
        sentences.drivers_sentence(drivers.assign(significant=True), link_found=False),
    ):
        assert not _names_a_measure(text), text
        assert "40 units" in text
    named = sentences.drivers_sentence(drivers.assign(significant=[False, True]), True)
    assert SCALE_LABELS["enps"][1:] in named and "(60%, 95% CI 35% to 80%" in named


def test_an_interval_that_excludes_the_null_never_reads_as_touching_it():
    """−0.0036 to two decimals would read "0.00": the end gets the digits it needs."""
    from analysis.report.findings import WORDINGS, side_digits

    assert WORDINGS["engagement_on_prior_nps"].ci(-0.2341, -0.0036) == "−0.23 to −0.004"
    assert WORDINGS["churn_hazard_on_engagement"].ci(0.84, 0.9962) == "0.84 to 0.996"
    assert WORDINGS["nps_mediated_share"].ci(-0.004, 0.49) == "−0.4% to +49%"
    assert WORDINGS["nps_on_engagement"].ci(2.3, 6.7) == "+2.3 to +6.7"  # unchanged
    assert side_digits(0.0, 0.0, 2) == 2 and side_digits(1e-9, 0.0, 2) == 5  # at most +3
