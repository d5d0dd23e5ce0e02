"""The chunked writer of synthetic studies (``analysis.data.synth.write_study_chunked``).

It must write a dataset the loader accepts, from the same model as ``generate`` (the same
organisation row for row, customers and answers from the same distribution), in memory bounded
by the chunk, and the same bytes for the same design.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from analysis.data.load import load_dataset
from analysis.data.synth import (
    CUSTOMER_BLOCK,
    StudyDesign,
    generate,
    write_study,
    write_study_chunked,
)

# About 29,000 customers and 110,000 answers: seven blocks of customers, so chunks of one block
# make several row groups, and enough answers for the distribution checks to have power.
DESIGN = StudyDesign(
    seed=11, n_units=120, n_waves=4, median_unit_size=12, customers_per_employee=20.0,
    responses_per_customer_year=3.0,
)  # fmt: skip
TABLES = ("units", "employee_survey", "customer_nps", "customers", "headcount")


@pytest.fixture(scope="module")
def chunked(tmp_path_factory) -> Path:
    return write_study_chunked(
        DESIGN, tmp_path_factory.mktemp("chunked") / "study", chunk_customers=CUSTOMER_BLOCK
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generated") / "study"
    return write_study(generate(DESIGN), folder, file_format="parquet")


def test_chunked_study_loads_and_passes_validation(chunked):
    dataset = load_dataset(chunked)  # raises a ContractError on any broken rule
    truth = json.loads((chunked / "truth.json").read_text())
    assert dataset.synthetic
    assert len(dataset.customer_nps) == truth["counts"]["nps_responses"]
    assert len(dataset.customers) == truth["counts"]["customers"]
    assert dataset.customer_nps["response_id"].is_unique
    assert pq.read_metadata(chunked / "customer_nps.parquet").num_row_groups > 1


def test_same_files_and_types_as_write_study(chunked, generated):
    assert sorted(p.name for p in chunked.iterdir()) == sorted(p.name for p in generated.iterdir())
    for name in TABLES:
        ours, theirs = (pq.read_schema(f / f"{name}.parquet") for f in (chunked, generated))
        assert ours.equals(theirs, check_metadata=True), name


def test_organisation_is_generates_row_for_row(chunked, generated):
    """Units, staff answers and headcount come from the same streams as ``generate``'s."""
    for name in ("units", "employee_survey", "headcount"):
        assert_frame_equal(
            pd.read_parquet(chunked / f"{name}.parquet"),
            pd.read_parquet(generated / f"{name}.parquet"),
        )
    ours, theirs = (pd.read_parquet(f / "customers.parquet") for f in (chunked, generated))
    assert_series_equal(
        ours["unit_id"].value_counts().sort_index(), theirs["unit_id"].value_counts().sort_index()
    )
    assert ours["customer_id"].tolist() == theirs["customer_id"].tolist()


def test_truth_is_generates_but_for_the_counts_of_the_draws(chunked, generated):
    ours, theirs = (json.loads((f / "truth.json").read_text()) for f in (chunked, generated))
    assert {k: v for k, v in ours.items() if k != "counts"} == {
        k: v for k, v in theirs.items() if k != "counts"
    }
    drawn = ("customers_before_first_wave", "churned", "nps_responses")
    assert {k: v for k, v in ours["counts"].items() if k not in drawn} == {
        k: v for k, v in theirs["counts"].items() if k not in drawn
    }
    customers = pd.read_parquet(chunked / "customers.parquet")
    assert ours["counts"]["churned"] == customers["churned_on"].notna().sum()
    first_wave = pd.Timestamp(ours["waves"][0])
    assert ours["counts"]["customers_before_first_wave"] == (customers["since"] < first_wave).sum()


def _customer_mean(values: pd.Series) -> tuple[float, float]:
    """Mean of a customer-level quantity and its variance."""
    return float(values.mean()), float(values.var(ddof=1) / len(values))


def _answer_share(answers: pd.DataFrame, column: str) -> tuple[float, float]:
    """Mean of an answer-level quantity over answers, with its variance clustered by customer
    (the linearised variance of a ratio of sums: answers of one customer share their effect)."""
    kept = answers.dropna(subset=[column])
    sums = kept.groupby("customer_id")[column].agg(["sum", "size"])
    ratio = sums["sum"].sum() / sums["size"].sum()
    residual = sums["sum"] - ratio * sums["size"]
    return float(ratio), float((residual**2).sum() / sums["size"].sum() ** 2)


def test_customers_and_answers_follow_generates_distribution(chunked, generated):
    """The customers' draws differ, their distribution does not.

    Both studies have the same units, latent paths and customers per unit, and customers are
    independent given their unit, so each statistic below is, in each study, a mean of
    independent terms with the same distribution unit by unit; the two studies are independent.
    The z-score of their difference (variances estimated within each study: customer-level
    sample variances, conservative as they include between-unit spread; answer-level ones
    clustered by customer) exceeds 4.5 with probability about 7e-6 each under a correct writer,
    under 1e-4 for the twelve. With about 29,000 customers and 110,000 answers that still flags
    a shift of about 2 points in a share, well under what a wrong seed, unit or date would do.
    """
    frames = {}
    for label, folder in (("chunked", chunked), ("generated", generated)):
        truth = json.loads((folder / "truth.json").read_text())
        customers = pd.read_parquet(folder / "customers.parquet")
        answers = pd.read_parquet(folder / "customer_nps.parquet")
        first_wave, as_of = pd.Timestamp(truth["waves"][0]), pd.Timestamp(truth["as_of"])
        customers = customers.assign(
            before=(customers["since"] < first_wave).astype(float),
            churned=customers["churned_on"].notna().astype(float),
            since_days=(customers["since"] - first_wave).dt.days.astype(float),
            churn_days=(customers["churned_on"] - first_wave).dt.days.astype(float),
            answers=customers["customer_id"].map(answers["customer_id"].value_counts()).fillna(0),
        )
        score = answers["likelihood_to_recommend"]
        answers = answers.assign(
            promoter=(score >= 9).astype(float),
            detractor=(score <= 6).astype(float),
            score=score.astype(float),
            effort_missing=answers["effort"].isna().astype(float),
            effort_value=answers["effort"].astype(float),
            day=(answers["responded_on"] - first_wave).dt.days.astype(float),
            last_quarter=(answers["responded_on"] > as_of - pd.offsets.QuarterEnd(1)).astype(float),
        )
        frames[label] = (customers, answers)
    checks = {}
    for column in ("before", "churned", "since_days", "answers"):
        checks[column] = [_customer_mean(frames[k][0][column]) for k in frames]
    churners = {k: frames[k][0]["churn_days"].dropna() for k in frames}
    checks["churn_days"] = [_customer_mean(churners[k]) for k in frames]
    for column in ("promoter", "detractor", "score", "effort_missing", "effort_value", "day"):
        checks[column] = [_answer_share(frames[k][1], column) for k in frames]
    checks["last_quarter"] = [_answer_share(frames[k][1], "last_quarter") for k in frames]
    assert len(checks) == 12
    z = {name: (a - b) / np.sqrt(va + vb) for name, ((a, va), (b, vb)) in checks.items()}
    assert all(abs(value) < 4.5 for value in z.values()), z


def _peak_rss_of_writing(design: StudyDesign, folder: Path) -> int:
    """Peak resident memory (bytes) of a new process writing ``design`` in one-block chunks.

    Read as ``VmHWM`` from ``/proc/self/status``, the high-water mark of the process's own
    memory: ``ru_maxrss`` would also count the memory of this (test) process, which Linux
    carries into a child's ``ru_maxrss`` across the ``exec`` that starts it.
    """
    script = (
        "import json, sys\n"
        "from analysis.data.synth import CUSTOMER_BLOCK, StudyDesign, write_study_chunked\n"
        "design = StudyDesign(**json.loads(sys.argv[1]))\n"
        "write_study_chunked(design, sys.argv[2], chunk_customers=CUSTOMER_BLOCK)\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()\n"
        "print(int(status[0]) * 1024)\n"
    )
    fields = {k: getattr(design, k) for k in design.__dataclass_fields__}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(fields), str(folder)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return int(result.stdout.split()[-1])


def test_peak_memory_is_bounded_by_the_chunk_not_the_answers(tmp_path):
    """Twenty times the customers cost no more memory: the answers are never all held.

    Two studies with the same organisation (units, staff, survey) and answers per customer,
    one with 2 customers per employee, one with 40: about 5,800 and 115,000 customers, 57,000
    and 1.1 million answers. Each is written in chunks of one block (4,096 customers, some
    40,000 answers) by a new process, so both work on full chunks. Holding the larger study's
    answers at any moment would add at least their Arrow size (measured below, about 75 MiB;
    pandas, as ``generate`` holds them, needs more) to its peak, since the rest of the work is
    the same in both. Written in chunks, both peaks are set by the imports, the organisation
    and one chunk (about 250 MiB each, measured), plus arrays with one entry per customer (not
    per answer): their difference measured 18-20 MB, about a quarter of the answers' size. Half
    that size leaves room for allocator noise and the Parquet writer's growing footer, and still
    fails a writer that holds every answer (which adds at least the whole size).
    """
    base = replace(DESIGN, seed=12, n_units=200, responses_per_customer_year=12.0)
    few = _peak_rss_of_writing(replace(base, customers_per_employee=2.0), tmp_path / "few")
    many = _peak_rss_of_writing(replace(base, customers_per_employee=40.0), tmp_path / "many")
    answers = pq.read_table(tmp_path / "many" / "customer_nps.parquet")
    assert answers.num_rows > 1_000_000
    assert pq.read_metadata(tmp_path / "many" / "customer_nps.parquet").num_row_groups >= 25
    assert many - few < answers.nbytes / 2, (many, few, answers.nbytes)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_design_gives_the_same_bytes_and_rows_whatever_the_chunk(tmp_path, chunked):
    again = write_study_chunked(DESIGN, tmp_path / "again", chunk_customers=CUSTOMER_BLOCK)
    assert _digests(again) == _digests(chunked)
    larger = write_study_chunked(DESIGN, tmp_path / "larger", chunk_customers=3 * CUSTOMER_BLOCK)
    for name in TABLES:
        assert pq.read_table(larger / f"{name}.parquet").equals(
            pq.read_table(chunked / f"{name}.parquet")
        ), name
    assert (larger / "truth.json").read_bytes() == (chunked / "truth.json").read_bytes()
    # only the row groups of the two customer tables follow the chunk
    groups = pq.read_metadata(larger / "customer_nps.parquet").num_row_groups
    assert groups < pq.read_metadata(chunked / "customer_nps.parquet").num_row_groups
    other = write_study_chunked(replace(DESIGN, seed=13), tmp_path / "other")
    assert _digests(other)["customer_nps.parquet"] != _digests(chunked)["customer_nps.parquet"]


def test_benchmark_writes_its_chunked_sizes_in_chunks(tmp_path):
    """``make bench``'s huge size goes through the chunked writer, once."""
    from analysis.studies import benchmark

    assert "huge" in benchmark.CHUNKED and "huge" in benchmark.SIZES
    assert "huge" not in benchmark.build_parser().get_default("sizes")
    directory, counts = benchmark.ensure_study("huge", tmp_path, DESIGN)
    assert counts["generate_seconds"] is not None
    assert pq.read_metadata(directory / "customer_nps.parquet").num_row_groups >= 1
    truth = json.loads((directory / "truth.json").read_text())
    assert counts["nps_responses"] == truth["counts"]["nps_responses"]
    assert benchmark.ensure_study("huge", tmp_path, DESIGN)[1]["generate_seconds"] is None
