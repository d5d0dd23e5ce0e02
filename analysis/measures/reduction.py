"""The customer side of the unit × wave panel, reduced inside the engine that holds the data.

``analysis.measures.panel`` reduces customer answers and customers in pandas, after every raw
row has been read. The functions here compute exactly the same tables as Ibis expressions, so
that DuckDB (over the dataset's files), PostgreSQL or Spark does the work and only the reduced
rows (at most units × waves) reach pandas. The definitions are those of ``panel``:

* **Outcome window** of wave *t*: answers with ``responded_on`` in
  ``(wave t, wave t + window_days]``; the **window before** wave *t* is
  ``(wave t − window_days, wave t]``. Windows that overlap count an answer in each; answers
  after ``as_of`` (the end of observation) count in none.
* **NPS categories** of the 0–10 answer: promoter 9–10, passive 7–8, detractor 0–6
  (``analysis.data.contract.nps_category``; Reichheld, 2003).
* **Retention exposure** at wave *t*: customers with ``since ≤ wave t < churned_on``; of
  them, those who churned by ``min(wave t + window_days, as_of)``, and their days as customers
  from the wave to that end (or to their churn, if earlier).

Each wave is matched to the answers or customers of its window by a range join against a small
table of the waves, so the work grows with the (row, window) pairs, as in ``panel``.
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
from ibis import _

from analysis.data.contract import DETRACTOR_MAX, PROMOTER_MIN

DEFAULT_OUTCOME_WINDOW_DAYS = 91
SECONDS_PER_DAY = 86_400
# What panel.customers_at_waves puts in place of a missing churn date: "never churned".
NEVER = pd.Timestamp.max.normalize()
_COUNTS = ["promoters", "passives", "detractors"]


def _wave_table(wave_values: np.ndarray, **extra: np.ndarray) -> ibis.Table:
    """The waves as a small engine table: position in ``wave_values``, date, extra columns."""
    frame = pd.DataFrame(
        {"wave_index": np.arange(len(wave_values), dtype="int64"), "wave_at": wave_values, **extra}
    )
    # microseconds are what every engine's timestamps hold
    for column in frame.columns.drop("wave_index"):
        frame[column] = frame[column].astype("datetime64[us]")
    return ibis.memtable(frame)


def nps_counts_in_windows(
    customer_nps: ibis.Table,
    waves: pd.Series | np.ndarray,
    window_days: int = DEFAULT_OUTCOME_WINDOW_DAYS,
    before: bool = False,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Promoter, passive and detractor counts per unit in each wave's window, in the engine.

    Parameters
    ----------
    customer_nps : ibis.Table
        The ``customer_nps`` table (``unit_id``, ``responded_on``,
        ``likelihood_to_recommend``), e.g. from ``analysis.data.engine.open_tables``.
    waves : array_like of datetime64
        The waves; repeats are ignored.
    window_days : int
        The window's length in days.
    before : bool
        Count the window before each wave, ``(wave − window_days, wave]``, instead of the
        outcome window ``(wave, wave + window_days]``.
    as_of : Timestamp, optional
        The end of observation: later answers count in no window.

    Returns
    -------
    DataFrame
        ``unit_id, wave, promoters, passives, detractors, n_responses``: one row per unit and
        wave whose window holds at least one answer, ordered by wave then unit, exactly as
        ``analysis.measures.panel.nps_counts_in_windows`` returns it (``unit_id`` as the
        loader's ``string`` dtype, ``wave`` with the dtype of ``waves``, counts ``int64``).
        An answer without a score makes its cell exist but is in no count.
    """
    wave_values = np.sort(pd.unique(pd.Series(waves)))
    columns = ["unit_id", "wave", *_COUNTS]
    if len(wave_values) == 0:
        result = pd.DataFrame(columns=columns)
        result["n_responses"] = result[_COUNTS].sum(axis=1)
        return result
    answers = customer_nps.select(
        unit_id=customer_nps.unit_id,
        answered_at=customer_nps.responded_on.cast("timestamp"),
        score=customer_nps.likelihood_to_recommend,
    )
    if as_of is not None:
        answers = answers.filter(answers.answered_at <= pd.Timestamp(as_of).to_pydatetime())
    wave_table = _wave_table(wave_values)
    window = ibis.interval(days=int(window_days))
    at, wave = answers.answered_at, wave_table.wave_at
    inside = [wave - window < at, at <= wave] if before else [wave < at, at <= wave + window]
    pairs = answers.join(wave_table, inside)
    score = pairs.score
    cells = pairs.group_by(["wave_index", "unit_id"]).aggregate(
        promoters=score.count(where=score >= PROMOTER_MIN),
        passives=score.count(where=(score > DETRACTOR_MAX) & (score < PROMOTER_MIN)),
        detractors=score.count(where=score <= DETRACTOR_MAX),
    )
    fetched = cells.to_pandas()
    fetched["unit_id"] = fetched["unit_id"].astype("string")
    fetched = fetched.sort_values(["wave_index", "unit_id"], kind="stable")
    result = pd.DataFrame(
        {
            "unit_id": fetched["unit_id"].to_numpy(),
            "wave": wave_values[fetched["wave_index"].to_numpy(dtype="int64")],
            **{c: fetched[c].to_numpy(dtype="int64") for c in _COUNTS},
        }
    )
    result["unit_id"] = result["unit_id"].astype("string")
    result["n_responses"] = result[_COUNTS].sum(axis=1)
    return result


def customers_at_waves(
    customers: ibis.Table, waves: pd.Series | np.ndarray, window_days: int, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Retention exposure per unit and wave, in the engine.

    Parameters
    ----------
    customers : ibis.Table
        The ``customers`` table (``unit_id``, ``since``, ``churned_on``).
    waves : array_like of datetime64
        The waves; repeats are ignored.
    window_days : int
        The outcome window's length in days.
    as_of : Timestamp
        The end of observation; required.

    Returns
    -------
    DataFrame
        ``unit_id, customers_at_risk, churned_in_window, exposure_days, wave`` for every unit
        of ``customers`` at every wave (zeros where none is at risk), wave by wave and units in
        order, exactly as ``analysis.measures.panel.customers_at_waves`` returns it.
        ``customers_at_risk``: customers with ``since ≤ wave < churned_on``;
        ``churned_in_window``: of those, churned by ``min(wave + window_days, as_of)``;
        ``exposure_days``: their days as customers from the wave to that end (or their churn),
        never negative.

    Raises
    ------
    ValueError
        If ``as_of`` is missing: exposure needs an end of observation.
    """
    if as_of is None or pd.isna(as_of):
        raise ValueError("customers_at_waves needs as_of, the end of observation")
    window = pd.Timedelta(days=window_days)
    wave_index = pd.DatetimeIndex(np.sort(pd.unique(pd.Series(waves))))
    wave_values = wave_index.to_numpy()
    ends = np.minimum(wave_values + window.to_timedelta64(), pd.Timestamp(as_of).to_datetime64())
    units = customers.select("unit_id").distinct().to_pandas()["unit_id"].astype("string")
    units = pd.Index(units.sort_values(kind="stable").to_numpy(), dtype="string")
    n_units, n_waves = len(units), len(wave_values)
    at_risk = np.zeros(n_waves * n_units, dtype="int64")
    churned_in = np.zeros(n_waves * n_units, dtype="int64")
    seconds = np.zeros(n_waves * n_units, dtype="int64")
    if n_units and n_waves:
        people = customers.select(
            unit_id=customers.unit_id,
            since=customers.since.cast("timestamp"),
            churned=customers.churned_on.cast("timestamp").fill_null(NEVER.to_pydatetime()),
        )
        wave_table = _wave_table(wave_values, end_at=ends)
        pairs = people.join(
            wave_table,
            [people.since <= wave_table.wave_at, wave_table.wave_at < people.churned],
        )
        pairs = pairs.mutate(
            churn_in=pairs.churned <= pairs.end_at,
            stop=ibis.least(pairs.churned, pairs.end_at),
        )
        pairs = pairs.mutate(
            seconds=ibis.greatest(_.stop.epoch_seconds() - _.wave_at.epoch_seconds(), 0)
        )
        cells = (
            pairs.group_by(["wave_index", "unit_id"])
            .aggregate(
                customers_at_risk=_.count(),
                churned_in_window=_.unit_id.count(where=_.churn_in),
                seconds=_.seconds.sum(),
            )
            .to_pandas()
        )
        cell = cells["wave_index"].to_numpy(dtype="int64") * n_units + units.get_indexer(
            cells["unit_id"].astype("string")
        )
        at_risk[cell] = cells["customers_at_risk"].to_numpy(dtype="int64")
        churned_in[cell] = cells["churned_in_window"].to_numpy(dtype="int64")
        seconds[cell] = cells["seconds"].to_numpy(dtype="int64")
    return pd.DataFrame(
        {
            "unit_id": units.take(np.tile(np.arange(n_units), n_waves)),
            "customers_at_risk": at_risk,
            "churned_in_window": churned_in,
            # whole seconds summed exactly, then days: equal to panel's sum of day fractions
            "exposure_days": (seconds / SECONDS_PER_DAY).astype(float),
            "wave": np.repeat(wave_values, n_units),
        }
    )
