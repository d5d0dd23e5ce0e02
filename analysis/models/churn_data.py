"""The churn models' sufficient statistics from a dataset, in pandas or where the customers are.

The churn estimands never need a customer's row once these are computed:

* **hazard cells**: events and exposure per unit × wave × tenure band
  (``hazard.hazard_cells``), the piecewise-exponential model's likelihood;
* **customer runs**: customers counted by unit and by the first and last wave they were at
  risk in (``hazard.customer_runs``), from which the distinct customers of any set of
  unit-waves follow (``reduction.customers_in_runs``);
* **retention at waves**: customers at risk at each unit-wave and how many were still
  customers a horizon later (``hazard.retention_by_unit_wave``).

A dataset from ``load_dataset`` holds its customers in pandas, and these come from
``analysis.models.hazard``; one from ``analysis.data.source.open_dataset`` keeps them in an
engine, and the same tables come from ``analysis.measures.reduction``, computed there. Both give
equal tables (tests/test_reduction_churn.py), so every estimate is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.data.load import Dataset
from analysis.measures import reduction
from analysis.models import hazard


def churn_cells(
    dataset: Dataset, waves: Sequence, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hazard cells and the customer runs of the churn model.

    Parameters
    ----------
    dataset : Dataset
        The study, its customers in pandas or in an engine.
    waves : sequence of dates
        The survey waves (repeats and order do not matter).
    as_of : Timestamp
        The end of observation.

    Returns
    -------
    cells : DataFrame
        ``unit_id`` (``string``), ``wave, band, exposure, events``: ``hazard.hazard_cells`` of
        ``hazard.churn_episodes``.
    runs : DataFrame
        ``unit_id, first_wave, last_wave, customers``: ``hazard.customer_runs`` of the same
        episodes.
    """
    if dataset.customer_tables is not None:
        customers = dataset.customer_tables.tables["customers"]
        cells = reduction.hazard_cells(customers, waves, as_of)
        runs = reduction.customer_runs(customers, waves, as_of)
        return cells, runs
    episodes = hazard.churn_episodes(dataset.customers, waves, as_of)
    cells = hazard.hazard_cells(episodes)
    cells["unit_id"] = cells["unit_id"].astype("string")
    return cells, hazard.customer_runs(episodes)


def retention_at_waves(
    dataset: Dataset, waves: Sequence, horizon_days: int, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Customers at risk at each unit and wave and how many were kept ``horizon_days`` on.

    Parameters
    ----------
    dataset : Dataset
    waves : sequence of dates
        The waves to count at.
    horizon_days : int
        How long after the wave a customer must still be one to count as retained.
    as_of : Timestamp
        Only waves whose horizon ends by then count.

    Returns
    -------
    DataFrame
        ``unit_id, wave, at_risk, retained``, as ``hazard.retention_by_unit_wave``.

    Notes
    -----
    In an engine the counts for every wave of the dataset's survey are computed once and
    kept on the dataset (the influence check asks again for subsets of them); a unit-wave's
    counts do not depend on which other waves are asked for.
    """
    waves = pd.DatetimeIndex(np.sort(pd.unique(pd.Series(waves))))
    if dataset.customer_tables is None:
        return hazard.retention_by_unit_wave(
            dataset.customers, pd.DataFrame({"wave": waves}), horizon_days, as_of
        )
    key = ("retention", horizon_days, pd.Timestamp(as_of))
    if key not in dataset.reductions:
        every_wave = pd.DatetimeIndex(np.sort(dataset.employee_survey["wave"].unique()))
        dataset.reductions[key] = reduction.retention_by_unit_wave(
            dataset.customer_tables.tables["customers"], every_wave, horizon_days, as_of
        )
    counted = dataset.reductions[key]
    return counted[counted["wave"].isin(waves)].reset_index(drop=True)
