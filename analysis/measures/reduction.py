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

The churn models' sufficient statistics are reduced here too, equal to their pandas definitions
in ``analysis.models.hazard`` (which this layer may not import, so the tenure bands live here):

* **hazard cells**: events and exposure per unit × wave × tenure band of the counting-process
  episodes (:func:`hazard_cells`);
* **customer runs**: customers counted by unit and by the first and last wave they were at risk
  in (:func:`customer_runs`), from which :func:`customers_in_runs` counts the distinct customers
  of any set of unit-waves;
* **retention at waves**: customers at risk at each unit-wave and how many stayed a horizon
  longer (:func:`retention_by_unit_wave`).

Their dates are calendar dates, counted in the engine as whole day numbers, so sums of days are
integer sums there and equal pandas' float sums exactly.
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
#: The sufficient statistics of customers' ``brand_promise`` per unit and window (contract v2).
BRAND_PROMISE_SUMS = ("brand_promise_n", "brand_promise_sum", "brand_promise_sumsq")


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
    brand_promise: bool = False,
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
    brand_promise : bool
        (Contract v2; only for a table with the ``brand_promise`` column.) Also reduce the
        customers' ``brand_promise`` answers (1–5) of each window to ``brand_promise_n``,
        ``brand_promise_sum`` and ``brand_promise_sumsq``: integer sums, summed as integers
        in the engine, so they equal pandas' exactly.

    Returns
    -------
    DataFrame
        ``unit_id, wave, promoters, passives, detractors, n_responses`` (then the three
        brand-promise sums when asked): one row per unit and wave whose window holds at least
        one answer, ordered by wave then unit, exactly as
        ``analysis.measures.panel.nps_counts_in_windows`` returns it (``unit_id`` as the
        loader's ``string`` dtype, ``wave`` with the dtype of ``waves``, counts ``int64``).
        An answer without a score makes its cell exist but is in no count.
    """
    wave_values = np.sort(pd.unique(pd.Series(waves)))
    columns = ["unit_id", "wave", *_COUNTS]
    if len(wave_values) == 0:
        result = pd.DataFrame(columns=columns)
        result["n_responses"] = result[_COUNTS].sum(axis=1)
        if brand_promise:
            for column in BRAND_PROMISE_SUMS:
                result[column] = pd.Series(dtype="int64")
        return result
    extra = {"promise": customer_nps.brand_promise.cast("int64")} if brand_promise else {}
    answers = customer_nps.select(
        unit_id=customer_nps.unit_id,
        answered_at=customer_nps.responded_on.cast("timestamp"),
        score=customer_nps.likelihood_to_recommend,
        **extra,
    )
    if as_of is not None:
        answers = answers.filter(answers.answered_at <= pd.Timestamp(as_of).to_pydatetime())
    wave_table = _wave_table(wave_values)
    window = ibis.interval(days=int(window_days))
    at, wave = answers.answered_at, wave_table.wave_at
    inside = [wave - window < at, at <= wave] if before else [wave < at, at <= wave + window]
    pairs = answers.join(wave_table, inside)
    score = pairs.score
    sums = {}
    if brand_promise:
        promise = pairs.promise
        # integer sums cast to 64 bits: DuckDB's 128-bit sum would reach pandas as decimals;
        # an empty sum (no answer to the question in the cell) is 0, as in pandas
        sums = {
            "brand_promise_n": promise.count(),
            "brand_promise_sum": promise.sum().cast("int64").fill_null(0),
            "brand_promise_sumsq": (promise * promise).sum().cast("int64").fill_null(0),
        }
    cells = pairs.group_by(["wave_index", "unit_id"]).aggregate(
        promoters=score.count(where=score >= PROMOTER_MIN),
        passives=score.count(where=(score > DETRACTOR_MAX) & (score < PROMOTER_MIN)),
        detractors=score.count(where=score <= DETRACTOR_MAX),
        **sums,
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
    for column in BRAND_PROMISE_SUMS if brand_promise else ():
        result[column] = fetched[column].to_numpy(dtype="int64")
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
                # a float, exact for whole seconds below 2**53: DuckDB's 128-bit sum would
                # otherwise reach pandas as Python decimals, slowly
                seconds=_.seconds.sum().cast("float64"),
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


# --------------------------------------------------------------------------------------------
# The churn side: hazard cells, customer runs, retention at waves

# Tenure bands of the piecewise-constant baseline hazard: finer in the first year, where churn
# usually changes fastest, so the baseline can follow a Cox model's free baseline closely.
TENURE_BANDS_DAYS = (0, 91, 182, 365, 730, 1096, 1826, 3652, np.inf)
_EPOCH = np.datetime64("1970-01-01", "D")


def _churn_waves(waves: pd.Series | np.ndarray) -> np.ndarray:
    """The waves as ``hazard.churn_episodes`` orders them (same values, same dtype)."""
    return pd.DatetimeIndex(sorted(pd.unique(pd.Series(waves)))).to_numpy()


def _day_numbers(values: np.ndarray, what: str) -> np.ndarray:
    """Calendar dates as whole days since 1970-01-01; a time of day is refused.

    The engine counts whole days in integers, which equal pandas' float days only when every
    date is midnight.
    """
    values = np.asarray(values, dtype="datetime64[ns]")
    days = values.astype("datetime64[D]")
    if np.isnat(values).any() or (days != values).any():
        raise ValueError(f"{what} must be calendar dates (no missing value, no time of day)")
    return (days - _EPOCH).astype("int64")


def _customer_spans(customers: ibis.Table, as_of_day: int) -> ibis.Table:
    """Each customer's days at risk, ``[since, end)``, as whole day numbers, where not empty.

    ``end`` is the churn date when the customer churned by ``as_of``, else ``as_of``;
    ``churned`` says which. Customers with ``end ≤ since`` (joined after ``as_of``, or a churn
    date before joining) are never at risk and are left out, as ``churn_episodes`` leaves them.
    """
    since = customers.since.epoch_days()
    churned_day = customers.churned_on.epoch_days()
    spans = customers.select(
        unit_id=customers.unit_id,
        since=since,
        end=ibis.least(churned_day.fill_null(as_of_day), as_of_day),
        churned=(churned_day <= as_of_day).fill_null(False),
    )
    return spans.filter(spans.since < spans.end)


def _wave_intervals(wave_values: np.ndarray, as_of: pd.Timestamp) -> ibis.Table:
    """Wave *k*'s interval ``[low, high)`` in day numbers: wave *k* to wave *k + 1*, the last
    to ``as_of``."""
    lows = _day_numbers(wave_values, "waves")
    highs = np.append(lows[1:], _day_numbers(np.array([pd.Timestamp(as_of)]), "as_of"))
    return ibis.memtable(
        pd.DataFrame(
            {"wave_index": np.arange(len(lows), dtype="int64"), "low": lows, "high": highs}
        )
    )


def _band_days(bands: tuple) -> list[tuple[int, int | None]]:
    """The bands' ``(low, high]`` bounds in whole days; ``None`` for an open end (``inf``)."""
    bounds = [None if np.isinf(b) else int(b) for b in bands]
    if any(b is not None and b != v for b, v in zip(bounds, bands, strict=True)):
        raise ValueError("tenure bands must be whole days")
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def hazard_cells(
    customers: ibis.Table,
    waves: pd.Series | np.ndarray,
    as_of: pd.Timestamp,
    bands: tuple = TENURE_BANDS_DAYS,
) -> pd.DataFrame:
    """Events and exposure per unit × wave × tenure band, in the engine.

    Parameters
    ----------
    customers : ibis.Table
        The ``customers`` table (``unit_id``, ``since``, ``churned_on`` dates, the last
        nullable), e.g. from ``analysis.data.engine.open_tables``.
    waves : array_like of datetime64
        The survey waves (repeats and order do not matter); calendar dates.
    as_of : Timestamp
        The end of observation; a calendar date.
    bands : tuple of float
        Tenure band bounds in whole days, the last possibly ``inf``.

    Returns
    -------
    DataFrame
        ``unit_id`` (``string``), ``wave, band, exposure, events``, exactly
        ``analysis.models.hazard.hazard_cells(churn_episodes(customers, waves, as_of))`` with
        ``unit_id`` as ``string``: the same rows, order (unit, wave, band) and dtypes.

    Notes
    -----
    The counting-process episodes of ``churn_episodes`` (Therneau & Grambsch, 2000, ch. 3):
    wave *k*'s interval runs from wave *k* to wave *k + 1* (the last to ``as_of``); a customer
    is at risk in it where it overlaps ``[since, end)``, ``end`` being the churn date if the
    customer churned by ``as_of``, else ``as_of``. In that episode tenure runs from
    ``start = max(since, wave k) − since`` to ``stop = min(end, wave k + 1) − since`` days,
    with an event if the churn falls in ``(wave k, wave k + 1]``. Exposure is split across the
    bands ``(low, high]`` exactly, ``max(0, min(stop, high) − max(start, low))``, and an event
    counts in the band of its ``stop``; cells without exposure are left out. These are the
    sufficient statistics of the piecewise-exponential model (Holford, 1980).

    Days are counted as integers in the engine and become floats only at the end: the float
    sums of whole numbers pandas makes are exact, so the two agree to the last bit.

    References
    ----------
    Holford, T. R. (1980). The analysis of rates and of survivorship using log-linear models.
    *Biometrics* 36(2), 299–305.

    Therneau, T. M. & Grambsch, P. M. (2000). *Modeling Survival Data: Extending the Cox
    Model*. Springer.
    """
    wave_values = _churn_waves(waves)
    band_days = _band_days(tuple(bands))
    n_bands = len(band_days)
    exposure_columns = [f"exposure_{b}" for b in range(n_bands)]
    event_columns = [f"events_{b}" for b in range(n_bands)]
    fetched = pd.DataFrame(
        {"unit_id": pd.Series(dtype="string"), "wave_index": pd.Series(dtype="int64")}
    )
    if len(wave_values):
        spans = _customer_spans(customers, int(_day_numbers([pd.Timestamp(as_of)], "as_of")[0]))
        intervals = _wave_intervals(wave_values, as_of)
        pairs = spans.join(intervals, [spans.since < intervals.high, intervals.low < spans.end])
        pairs = pairs.mutate(
            start=ibis.greatest(pairs.since, pairs.low) - pairs.since,
            stop=ibis.least(pairs.end, pairs.high) - pairs.since,
            event=pairs.churned & (pairs.end <= pairs.high),
        )
        sums = {}
        for b, (low, high) in enumerate(band_days):
            upper = pairs.stop if high is None else ibis.least(pairs.stop, high)
            inside = ibis.greatest(upper - ibis.greatest(pairs.start, low), 0)
            in_band = pairs.event & (pairs.stop > low)
            if high is not None:
                in_band &= pairs.stop <= high
            # summed exactly as integers, then a float: exact below 2**53 days, and DuckDB's
            # 128-bit sum would otherwise reach pandas as Python decimals, slowly
            sums[exposure_columns[b]] = inside.sum().cast("float64")
            sums[event_columns[b]] = pairs.event.count(where=in_band)
        fetched = pairs.group_by(["wave_index", "unit_id"]).aggregate(**sums).to_pandas()
        fetched["unit_id"] = fetched["unit_id"].astype("string")
    fetched = fetched.sort_values(["unit_id", "wave_index"], kind="stable")
    n_cells = len(fetched)
    exposure = np.zeros((n_cells, n_bands), dtype=float)
    events = np.zeros((n_cells, n_bands), dtype="int64")
    for b in range(n_bands):
        if n_cells:
            exposure[:, b] = fetched[exposure_columns[b]].to_numpy(dtype=float)
            events[:, b] = fetched[event_columns[b]].to_numpy(dtype="int64")
    cell = np.repeat(np.arange(n_cells), n_bands)
    cells = pd.DataFrame(
        {
            "unit_id": fetched["unit_id"].to_numpy()[cell],
            "wave": wave_values[fetched["wave_index"].to_numpy(dtype="int64")[cell]],
            "band": np.tile(np.arange(n_bands), n_cells),
            "exposure": exposure.ravel(),
            "events": events.ravel(),
        }
    )
    cells["unit_id"] = cells["unit_id"].astype("string")
    return cells[cells["exposure"] > 0].reset_index(drop=True)


_RUN_COLUMNS = ["unit_id", "first_wave", "last_wave", "customers"]


def customer_runs(
    customers: ibis.Table, waves: pd.Series | np.ndarray, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Customers counted by unit and by the first and last wave they were at risk in, in the engine.

    Parameters
    ----------
    customers : ibis.Table
        The ``customers`` table (``unit_id``, ``since``, ``churned_on``).
    waves : array_like of datetime64
        The survey waves (repeats and order do not matter); calendar dates.
    as_of : Timestamp
        The end of observation; a calendar date.

    Returns
    -------
    DataFrame
        ``unit_id`` (``string``), ``first_wave, last_wave`` (wave dates, the dtype
        ``churn_episodes`` gives them), ``customers`` (``int64``): one row per unit and run,
        sorted by those three, exactly ``analysis.models.hazard.customer_runs`` of
        ``churn_episodes(customers, waves, as_of)``.

    Notes
    -----
    A customer's episodes are the waves whose intervals overlap ``[since, end)``: a run of
    consecutive waves, from the interval holding ``max(since, wave 1)`` to the one holding
    ``end`` (``low < end ≤ high``). Each end is found by a range join against the intervals,
    so the engine groups by unit and run, never by customer. The runs are a sufficient
    statistic for the number of distinct customers with an episode in any set of unit-waves
    (:func:`customers_in_runs`).
    """
    wave_values = _churn_waves(waves)
    if len(wave_values) == 0:
        return _runs_frame(pd.DataFrame(columns=_RUN_COLUMNS), wave_values)
    spans = _customer_spans(customers, int(_day_numbers([pd.Timestamp(as_of)], "as_of")[0]))
    first_day = int(_day_numbers(wave_values[:1], "waves")[0])
    spans = spans.mutate(entry=ibis.greatest(spans.since, first_day))
    first = _wave_intervals(wave_values, as_of).rename(first_index="wave_index")
    last = _wave_intervals(wave_values, as_of).rename(
        last_index="wave_index", last_low="low", last_high="high"
    )
    runs = spans.join(first, [first.low <= spans.entry, spans.entry < first.high]).join(
        last, [last.last_low < spans.end, spans.end <= last.last_high]
    )
    counted = (
        runs.group_by(["unit_id", "first_index", "last_index"])
        .aggregate(customers=runs.unit_id.count())
        .to_pandas()
    )
    frame = pd.DataFrame(
        {
            "unit_id": counted["unit_id"].astype("string"),
            "first_wave": wave_values[counted["first_index"].to_numpy(dtype="int64")],
            "last_wave": wave_values[counted["last_index"].to_numpy(dtype="int64")],
            "customers": counted["customers"].to_numpy(dtype="int64"),
        }
    )
    return _runs_frame(frame, wave_values)


def _runs_frame(frame: pd.DataFrame, wave_values: np.ndarray) -> pd.DataFrame:
    """Runs in their documented dtypes and order."""
    frame = frame.astype(
        {
            "unit_id": "string",
            "first_wave": wave_values.dtype,
            "last_wave": wave_values.dtype,
            "customers": "int64",
        }
    )
    return frame.sort_values(["unit_id", "first_wave", "last_wave"], kind="stable").reset_index(
        drop=True
    )


def customers_in_runs(
    runs: pd.DataFrame, unit_waves: pd.DataFrame, waves: pd.Series | np.ndarray | None = None
) -> int:
    """Distinct customers with an episode in one of ``unit_waves``, from the customer runs.

    Parameters
    ----------
    runs : DataFrame
        ``unit_id, first_wave, last_wave, customers``, from :func:`customer_runs` or
        ``analysis.models.hazard.customer_runs``.
    unit_waves : DataFrame
        ``unit_id, wave``: the unit-waves to count in (repeats do not matter).
    waves : array_like of datetime64, optional
        The waves the runs were built on. Unit-waves at other dates are ignored. Without it the
        dates of ``unit_waves`` are taken to be such waves (as the panel's are).

    Returns
    -------
    int
        The number of customers whose run ``[first_wave, last_wave]`` in their unit contains
        a wave of ``unit_waves`` for that unit: equal to counting distinct customers among the
        episodes in those unit-waves, since each customer is at risk in a run of consecutive
        waves and belongs to one unit.
    """
    wanted = unit_waves[["unit_id", "wave"]].dropna()
    if waves is not None:
        wanted = wanted[wanted["wave"].isin(pd.DatetimeIndex(pd.Series(waves)))]
    if runs.empty or wanted.empty:
        return 0
    run_units = runs["unit_id"].astype("string").to_numpy(dtype=object)
    wanted_units = wanted["unit_id"].astype("string").to_numpy(dtype=object)
    unit_codes, _units = pd.factorize(np.concatenate([run_units, wanted_units]))
    dates = [
        pd.DatetimeIndex(c).as_unit("ns").asi8 for c in (runs["first_wave"], runs["last_wave"])
    ]
    wanted_dates = pd.DatetimeIndex(wanted["wave"]).as_unit("ns").asi8
    # one sorted integer key per (unit, date): a run holds a wanted wave when a key falls in
    # [key(unit, first), key(unit, last)], found by binary search
    times = np.unique(np.concatenate([*dates, wanted_dates]))
    stride = len(times)
    run_code, wanted_code = unit_codes[: len(runs)], unit_codes[len(runs) :]
    selected = np.unique(wanted_code * stride + np.searchsorted(times, wanted_dates))
    low = run_code * stride + np.searchsorted(times, dates[0])
    high = run_code * stride + np.searchsorted(times, dates[1])
    hits = np.searchsorted(selected, high, side="right") > np.searchsorted(selected, low)
    return int(runs["customers"].to_numpy(dtype="int64")[hits].sum())


def retention_by_unit_wave(
    customers: ibis.Table,
    waves: pd.Series | np.ndarray,
    horizon_days: int = 365,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Customers at risk at each unit-wave and how many were still customers a horizon later.

    Parameters
    ----------
    customers : ibis.Table
        The ``customers`` table (``unit_id``, ``since``, ``churned_on``).
    waves : array_like of datetime64
        The waves to count at (repeats and order do not matter); calendar dates.
    horizon_days : int
        How long after the wave a customer must still be one to count as retained.
    as_of : Timestamp, optional
        Only waves whose horizon ends by then count.

    Returns
    -------
    DataFrame
        ``unit_id`` (``string``), ``wave, at_risk, retained``, one row per unit and wave with a
        customer at risk (``since ≤ wave < churned_on``), sorted by wave then unit; retained:
        ``churned_on > wave + horizon_days`` or never churned. Exactly
        ``analysis.models.hazard.retention_by_unit_wave(customers, DataFrame({"wave": waves}),
        horizon_days, as_of)`` with ``unit_id`` as ``string``.
    """
    wave_index = pd.DatetimeIndex(sorted(pd.unique(pd.Series(waves))))
    if as_of is not None:
        wave_index = wave_index[wave_index + pd.Timedelta(days=horizon_days) <= as_of]
    columns = ["unit_id", "wave", "at_risk", "retained"]
    if wave_index.empty:
        return pd.DataFrame(columns=columns)
    wave_values = wave_index.to_numpy()
    days = _day_numbers(wave_values, "waves")
    wave_table = ibis.memtable(
        pd.DataFrame(
            {
                "wave_index": np.arange(len(days), dtype="int64"),
                "wave_day": days,
                "horizon_day": days + int(horizon_days),
            }
        )
    )
    churned = customers.churned_on.epoch_days()
    people = customers.select(
        unit_id=customers.unit_id,
        since=customers.since.epoch_days(),
        # "never churned" as a day after every wave, so that the join stays a range join
        churned=churned.fill_null(int(days[-1]) + 1),
        stays=churned.isnull(),
    )
    pairs = people.join(
        wave_table, [people.since <= wave_table.wave_day, wave_table.wave_day < people.churned]
    )
    retained = pairs.stays | (pairs.churned > pairs.horizon_day)
    cells = (
        pairs.group_by(["wave_index", "unit_id"])
        .aggregate(at_risk=pairs.unit_id.count(), retained=pairs.unit_id.count(where=retained))
        .to_pandas()
    )
    cells["unit_id"] = cells["unit_id"].astype("string")
    cells = cells.sort_values(["wave_index", "unit_id"], kind="stable")
    result = pd.DataFrame(
        {
            "unit_id": cells["unit_id"].to_numpy(),
            "wave": wave_values[cells["wave_index"].to_numpy(dtype="int64")],
            "at_risk": cells["at_risk"].to_numpy(dtype="int64"),
            "retained": cells["retained"].to_numpy(dtype="int64"),
        }
    )
    result["unit_id"] = result["unit_id"].astype("string")
    return result


def latest_dates(customer_nps: ibis.Table, customers: ibis.Table) -> pd.Timestamp:
    """The latest customer date: of answers' ``responded_on``, ``since`` and ``churned_on``.

    Parameters
    ----------
    customer_nps : ibis.Table
        The ``customer_nps`` table.
    customers : ibis.Table
        The ``customers`` table.

    Returns
    -------
    Timestamp
        The latest of the three maxima, missing dates ignored; ``NaT`` if there is none. The
        caller adds the survey's last wave, as ``analysis.data.load.default_as_of`` does.
    """
    answers = customer_nps.aggregate(responded=customer_nps.responded_on.max())
    people = customers.aggregate(since=customers.since.max(), churned=customers.churned_on.max())
    # one query: both single-row aggregates side by side
    row = answers.cross_join(people).to_pandas().iloc[0]
    dates = [pd.Timestamp(d) for d in row if pd.notna(d)]
    return max(dates) if dates else pd.NaT
