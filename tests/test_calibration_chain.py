"""The calibration study of the internal-service chain (issue 15): its conditions, the truth
each chain estimand is held to, the ``exploratory`` label, and (slow) a few replicates end to end.

The reduced study whose numbers the closing report quotes (120 units × 4 waves, 40 replicates
per condition) takes minutes; here only its machinery is checked, on fixed seeds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.data.synth import StudyDesign, generate
from analysis.report import calibration_page
from analysis.studies import calibration
from analysis.studies.calibration import (
    CHAIN_ESTIMANDS,
    chain_conditions,
    exploratory_estimands,
    summarise,
    true_values,
)


def test_chain_conditions_use_the_generator_switches():
    conditions = {c.name: c for c in chain_conditions()}
    assert {"chain_none", "chain_direct_only", "chain", "chain_confounded"} <= set(conditions)
    none = conditions["chain_none"].design.effective()
    assert none.internal_service and none.nps_effect == 0
    assert none.engagement_per_service_sd == 0 and none.nps_direct_per_service_sd == 0
    assert none.brand_promise_per_sd == 0
    direct = conditions["chain_direct_only"].design.effective()
    assert direct.engagement_per_service_sd == 0 and direct.nps_direct_per_service_sd > 0
    assert conditions["chain_confounded"].design.chain_confounding
    assert conditions["chain_confounded"].role == "confounded"
    grid = [c for c in conditions.values() if c.role == "power"]
    assert len(grid) == len(calibration.CHAIN_POWER_UNITS) * len(calibration.CHAIN_POWER_WAVES)
    for condition in conditions.values():
        assert condition.only == CHAIN_ESTIMANDS and not condition.churn
    assert set(CHAIN_ESTIMANDS) == {
        "engagement_on_internal_service",
        "nps_on_internal_service",
        "nps_via_engagement_share",
        "nps_on_internal_service_within",
        "brand_promise_on_brand_alignment",  # the generator draws brand_promise with the chain
    }
    names = [c.name for c in calibration.default_conditions()]
    assert len(names) == len(set(names)) and "chain_confounded" in names


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        (  # the default chain: the generator's own values
            {},
            lambda e: {
                "engagement_on_internal_service": e["engagement_on_internal_service"],
                "nps_on_internal_service": e["nps_on_internal_service"],
                "nps_via_engagement_share": e["nps_via_engagement_share"],
                "nps_on_internal_service_within": e["nps_on_internal_service"],
            },
        ),
        (  # nothing at all: every chain truth is 0, the share's too (a·b = 0)
            {"no_effect": True, "no_chain": True, "brand_promise_per_sd": 0.0},
            lambda e: dict.fromkeys(CHAIN_ESTIMANDS, 0.0),
        ),
        (  # direct only: engagement's link and the share are 0, the total is the direct one
            {"engagement_per_service_sd": 0.0},
            lambda e: {
                "engagement_on_internal_service": 0.0,
                "nps_on_internal_service": 1.0,
                "nps_via_engagement_share": 0.0,
                "nps_on_internal_service_within": 1.0,
            },
        ),
    ],
)
def test_true_values_read_the_chain_from_truth_json(switches, expected):
    design = StudyDesign(internal_service=True, n_units=30, n_waves=2, seed=3, **switches)
    effects = generate(design).truth["effects"]
    truth = true_values(effects)
    for name, value in expected(effects).items():
        assert truth[name] == pytest.approx(value, abs=1e-12), name


def test_without_the_chain_its_truths_are_undefined():
    truth = true_values(generate(StudyDesign(n_units=30, n_waves=2, seed=3)).truth["effects"])
    assert all(np.isnan(truth[name]) for name in CHAIN_ESTIMANDS)
    assert truth["nps_on_engagement"] == pytest.approx(4.0, rel=0.05)


def _summary_rows(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    replicates, conditions = [], []
    for spec in rows:
        conditions.append(
            {
                "condition": spec["condition"],
                "role": spec["role"],
                "label": spec["condition"],
                "n_units": 100,
                "n_waves": 4,
                "confounding": False,
            }
        )
        for i, p in enumerate(spec["p"]):
            replicates.append(
                {
                    "condition": spec["condition"],
                    "replicate": i,
                    "estimand": spec["estimand"],
                    "estimate": spec.get("estimate", 0.5),
                    "std_error": 1.0,
                    "conf_low": -1.0,
                    "conf_high": spec.get("high", 2.0),
                    "p_value": p,
                    "truth": spec["truth"],
                    "failure": "",
                }
            )
    return pd.DataFrame(replicates), pd.DataFrame(conditions).drop_duplicates("condition")


def test_an_estimand_missing_its_band_is_exploratory_and_labelled_not_hidden():
    good = [0.5] * 38 + [0.01] * 2  # 5%: calibrated
    bad = [0.5] * 30 + [0.01] * 10  # 25%: liberal
    table, conditions = _summary_rows(
        [
            {
                "condition": "chain_none",
                "role": "no_effect",
                "estimand": "nps_on_internal_service",
                "p": good,
                "truth": 0.0,
            },
            {
                "condition": "chain_none",
                "role": "no_effect",
                "estimand": "nps_via_engagement_share",
                "p": bad,
                "truth": 0.0,
            },
            {  # a confounded condition is not judged: its bias is the point
                "condition": "chain_confounded",
                "role": "confounded",
                "estimand": "engagement_on_internal_service",
                "p": bad,
                "truth": 9.0,
            },
        ]
    )
    summary = summarise(table, conditions)
    assert exploratory_estimands(summary) == ["nps_via_engagement_share"]
    marked = summary.set_index("estimand")["exploratory"]
    assert marked["nps_via_engagement_share"] and not marked["nps_on_internal_service"]
    html = calibration_page.rates_table_html(summary[summary["role"] == "no_effect"])
    share = calibration.LABELS["nps_via_engagement_share"]
    total = calibration.LABELS["nps_on_internal_service"]
    assert f"{share} (exploratory)" in html
    assert total in html and f"{total} (exploratory)" not in html
    sentence = calibration_page.exploratory_sentence(summary)
    assert sentence.startswith("Labelled exploratory: " + share)


def test_the_chain_replicate_fits_only_the_chain():
    design = replace(calibration.BASE_DESIGN, internal_service=True, n_units=60, n_waves=3)
    rows = calibration.replicate(replace(design, seed=5), churn=False, only=CHAIN_ESTIMANDS)
    assert list(rows["estimand"]) == list(CHAIN_ESTIMANDS)
    assert rows["truth"].notna().all()
    assert (rows["failure"] == "").all(), rows["failure"].tolist()


@pytest.mark.slow
def test_a_few_chain_replicates_end_to_end():
    """Every chain condition, three replicates each on one worker: summarised with bands,
    every chain estimand in the false-positive, coverage and power tables, and the page's
    chain sentences written from them."""
    conditions = [
        replace(c, design=replace(c.design, n_units=60, n_waves=3))
        for c in chain_conditions()
        if not c.name.startswith("chain_power") or c.name.endswith("u60_w4")
    ]
    table = calibration.run_study(conditions, 3, workers=1, progress=lambda _: None)
    summary = summarise(table, calibration.conditions_table(conditions, 3))
    for role in ("no_effect", "effect", "power", "confounded"):
        present = set(summary.loc[summary["role"] == role, "estimand"])
        assert present == set(CHAIN_ESTIMANDS), role
    null = summary[summary["condition"] == "chain_none"]
    assert (null["truth"] == 0).all() and null["rejection_low"].notna().all()
    assert summary["exploratory"].dtype == bool
    power = calibration.power_table(summary)
    assert "power grid" not in calibration_page.power_sentence(power, CHAIN_ESTIMANDS[0])
    assert "between-unit" in calibration_page.confounded_sentence(summary)
    html = calibration_page.reverse_table_html(summary, calibration.LABELS, "confounded")
    assert calibration.LABELS["nps_on_internal_service_within"] in html
