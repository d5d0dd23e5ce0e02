"""The data contract, version 2, as code.

The prose, with every rule explained, is ``data/README.md``; this module is the single place the
loader, the validator and the generator read the contract from. A dataset is a directory of four
required tables (``units``, ``employee_survey``, ``customer_nps``, ``customers``) and two optional
ones (``headcount``, ``internal_service``), each stored as ``NAME.csv`` or ``NAME.parquet``, plus
an optional ``instrument.yaml``. Version 2 only adds to version 1: every version-1 dataset is a
valid version-2 dataset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ColumnKind = Literal["id", "text", "date", "bool", "int"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its type, whether it is required, and its rule.

    Attributes
    ----------
    name : str
        The column's name in the file.
    kind : {"id", "text", "date", "bool", "int"}
        What its values must be.
    required : bool
        Whether a file without the column is refused.
    nullable : bool
        Whether a missing value is allowed.
    unique : bool
        Whether every value must differ (an identifier).
    low, high : int or None
        The allowed range of an ``int`` column, both ends included.
    """

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False
    unique: bool = False
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract: its name, its columns and its key.

    Attributes
    ----------
    name : str
        The table's name, and the stem of its file (``NAME.csv`` or ``NAME.parquet``).
    columns : tuple of ColumnSpec
        Every column the contract knows, required or optional.
    unique_together : tuple of str
        Columns whose combination must not repeat (``()`` for none).
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    unique_together: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSpec:
        """The column called ``name``; ``StopIteration`` if the table has none."""
        return next(c for c in self.columns if c.name == name)


UNITS = TableSpec(
    "units",
    (
        ColumnSpec("unit_id", "id", unique=True),
        ColumnSpec("unit_name", "text", required=False, nullable=True),
        ColumnSpec("region", "text", required=False, nullable=True),
        ColumnSpec("customer_facing", "bool", required=False, nullable=True),
    ),
)

# Item columns of employee_survey come from the instrument; see ``survey_spec``.
EMPLOYEE_SURVEY_FIXED = (
    ColumnSpec("respondent_id", "id"),
    ColumnSpec("unit_id", "id"),
    ColumnSpec("wave", "date"),
)

CUSTOMER_NPS = TableSpec(
    "customer_nps",
    (
        ColumnSpec("response_id", "id", unique=True),
        ColumnSpec("customer_id", "id"),
        ColumnSpec("unit_id", "id"),
        ColumnSpec("responded_on", "date"),
        ColumnSpec("likelihood_to_recommend", "int", low=0, high=10),
        ColumnSpec("effort", "int", required=False, nullable=True, low=1, high=7),
        # (v2) "They deliver what their advertising promises": the customer's side of brand
        # alignment, beside the staff's brand_alignment scale.
        ColumnSpec("brand_promise", "int", required=False, nullable=True, low=1, high=5),
    ),
)

CUSTOMERS = TableSpec(
    "customers",
    (
        ColumnSpec("customer_id", "id", unique=True),
        ColumnSpec("unit_id", "id"),
        ColumnSpec("since", "date"),
        ColumnSpec("churned_on", "date", nullable=True),
    ),
)

# (v2) The least a headcount may be; checked by the loader, as pandera's range check needs both
# ends and a headcount has no upper one.
HEADCOUNT_MIN = 0

HEADCOUNT = TableSpec(
    "headcount",
    (
        ColumnSpec("unit_id", "id"),
        ColumnSpec("wave", "date"),
        ColumnSpec("headcount", "int"),
    ),
    unique_together=("unit_id", "wave"),
)

#: The required tables, in the contract's order; a dataset without one of them is refused.
TABLE_NAMES = ("units", "employee_survey", "customer_nps", "customers")
#: (v2) Tables a dataset may hold; without them nothing changes.
OPTIONAL_TABLE_NAMES = ("headcount", "internal_service")
TABLES_LINKED_TO_UNITS = ("employee_survey", "customer_nps", "customers", "headcount")

# NPS categories of the 0–10 ``likelihood_to_recommend`` answer (and of eNPS): promoters
# answer 9–10, passives 7–8, detractors 0–6 (Reichheld, 2003, *Harvard Business Review* 81(12)).
PROMOTER_MIN = 9
DETRACTOR_MAX = 6
#: Category codes of ``nps_category``, in the order of the count columns.
NPS_CATEGORIES = ("promoters", "passives", "detractors")


def nps_category(score: np.ndarray) -> np.ndarray:
    """Each 0–10 answer's NPS category code: 0 promoter, 1 passive, 2 detractor.

    Parameters
    ----------
    score : array_like
        Answers on the 0–10 scale (validated elsewhere).

    Returns
    -------
    ndarray
        Integer codes indexing ``NPS_CATEGORIES``; −1 for a missing answer (no category).

    Notes
    -----
    Promoter if ``score ≥ PROMOTER_MIN`` (9), detractor if ``score ≤ DETRACTOR_MAX`` (6),
    passive otherwise; ``NPS = 100 (share of 0 − share of 2)``.

    References
    ----------
    Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review*
    81(12), 46–54.
    """
    score = np.asarray(score, dtype=float)
    codes = np.where(score >= PROMOTER_MIN, 0, np.where(score <= DETRACTOR_MAX, 2, 1))
    return np.where(np.isnan(score), -1, codes)


def nps_points(score: np.ndarray) -> np.ndarray:
    """Each 0–10 answer's contribution to NPS: +100 promoter, 0 passive, −100 detractor.

    Parameters
    ----------
    score : array_like
        Answers on the 0–10 scale.

    Returns
    -------
    ndarray
        Floats +100, 0 or −100 (NaN for a missing answer); the mean over answers is the NPS.

    Notes
    -----
    ``NPS = 100 (p − d)`` is the mean of these points (Reichheld, 2003), which is what lets
    regressions and cluster-robust means work on single answers.

    References
    ----------
    Reichheld, F. F. (2003). The one number you need to grow. *Harvard Business Review*
    81(12), 46–54.
    """
    return np.array([100.0, 0.0, -100.0, np.nan])[nps_category(score)]  # −1 picks NaN


# The longest identifier, name or column name the contract accepts, in characters. Names are
# shown on the page and in figures; a 200,000-character unit name took the report 7 minutes
# and 10 million characters crashed it. 200 is ample for any display name or key.
MAX_TEXT_LENGTH = 200


@dataclass(frozen=True)
class Scale:
    """A scale of the employee survey: its items, their range, and what counts as favourable.

    Attributes
    ----------
    name : str
        One of ``SCALE_NAMES``.
    items : tuple of str
        The survey columns that make up the scale.
    low, high : int
        The answer range of every item, both ends included.
    favourable : float or None
        The item-scale mean at or above which a respondent counts as favourable; ``None``
        for a scale scored otherwise (eNPS).
    reverse : tuple of str
        Items keyed in the opposite direction, flipped as ``low + high − x`` before scoring.
    """

    name: str
    items: tuple[str, ...]
    low: int
    high: int
    favourable: float | None = None
    reverse: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instrument:
    """The employee survey's scales, as ``instrument.yaml`` declares them.

    Attributes
    ----------
    scales : tuple of Scale
        The scales, in the order the report shows them.
    """

    scales: tuple[Scale, ...] = field(default_factory=tuple)

    @property
    def items(self) -> tuple[str, ...]:
        """Every item column of every scale, in scale order."""
        return tuple(item for scale in self.scales for item in scale.items)

    def scale(self, name: str) -> Scale:
        """The scale called ``name``.

        Raises
        ------
        KeyError
            If the instrument has no such scale.
        """
        for s in self.scales:
            if s.name == name:
                return s
        raise KeyError(f"the instrument has no scale {name!r}")


POINTS_OF_CONNECTION = (
    "poc_listening",
    "poc_valued",
    "poc_resolution",
    "poc_honesty",
    "poc_reliability",
    "poc_authenticity",
)

# (v2) Staff rate the internal teams they depend on on the points of connection, and may give
# them an internal NPS (0–10, scored like likelihood_to_recommend).
INTERNAL_SERVICE = TableSpec(
    "internal_service",
    (
        ColumnSpec("respondent_id", "id"),
        ColumnSpec("rater_unit_id", "id"),
        ColumnSpec("provider_unit_id", "id"),
        ColumnSpec("wave", "date"),
        # Each point of connection may be skipped, but a row must rate at least one (the loader).
        *(
            ColumnSpec(item, "int", required=False, nullable=True, low=1, high=5)
            for item in POINTS_OF_CONNECTION
        ),
        ColumnSpec("internal_nps", "int", required=False, nullable=True, low=0, high=10),
    ),
    unique_together=("respondent_id", "provider_unit_id", "wave"),
)

# The analysis knows what each scale means, so an instrument may only use these names; item
# names are free. engagement is the one scale every estimand needs.
SCALE_NAMES = (
    "engagement",
    "internal_communication",
    "brand_alignment",
    "points_of_connection",
    "employee_effort",
    "enps",
    "communication_effort",
)
REQUIRED_SCALE = "engagement"

DEFAULT_INSTRUMENT = Instrument(
    (
        Scale("engagement", tuple(f"eng_{i}" for i in range(1, 6)), 1, 5, favourable=4),
        Scale("internal_communication", tuple(f"comm_{i}" for i in range(1, 5)), 1, 5, 4),
        Scale("brand_alignment", tuple(f"brand_{i}" for i in range(1, 4)), 1, 5, 4),
        Scale("points_of_connection", POINTS_OF_CONNECTION, 1, 5, favourable=4),
        Scale("employee_effort", ("ees",), 1, 7, favourable=6),
        # eNPS has no favourable threshold: it is scored as promoters minus detractors.
        Scale("enps", ("enps",), 0, 10),
    )
)

# (v2) The internal counterpart of the customer effort score: 7 means "it is easy to get the
# information I need to serve my customers"; favourable at 6 of 7 like employee_effort.
COMMUNICATION_EFFORT = Scale("communication_effort", ("comm_effort",), 1, 7, favourable=6)
#: (v2) Scales of the default instrument that are measured only when their items are present.
#: ``DEFAULT_INSTRUMENT`` holds the required ones, so that it stays what every default dataset
#: must answer (and what ``analysis.data.synth`` generates).
DEFAULT_OPTIONAL_SCALES = (COMMUNICATION_EFFORT,)


def default_instrument(columns: Iterable[str] | None = None) -> Instrument:
    """The default instrument for a survey with these columns: its optional scales if answered.

    Parameters
    ----------
    columns : iterable of str, optional
        The survey's columns. ``None`` gives the full default instrument, every optional scale
        included (what a generator of complete surveys would write).

    Returns
    -------
    Instrument
        ``DEFAULT_INSTRUMENT`` (the six required scales), then each scale of
        ``DEFAULT_OPTIONAL_SCALES`` with any of its items among ``columns``. With no optional
        item present it is ``DEFAULT_INSTRUMENT`` itself, so a version-1 dataset's instrument
        is unchanged.

    Notes
    -----
    An optional scale with only some of its items present is kept, so that the missing ones
    are reported as missing items rather than the scale silently dropped.
    """
    if columns is None:
        return Instrument(DEFAULT_INSTRUMENT.scales + DEFAULT_OPTIONAL_SCALES)
    present = set(columns)
    extra = tuple(s for s in DEFAULT_OPTIONAL_SCALES if present & set(s.items))
    return Instrument(DEFAULT_INSTRUMENT.scales + extra) if extra else DEFAULT_INSTRUMENT


def survey_spec(instrument: Instrument) -> TableSpec:
    """The ``employee_survey`` table as the instrument defines it.

    Parameters
    ----------
    instrument : Instrument
        The survey's scales; each item becomes an optional integer column with its scale's range.

    Returns
    -------
    TableSpec
        The fixed columns (``respondent_id``, ``unit_id``, ``wave``) then the items, keyed by
        ``respondent_id`` and ``wave`` together.
    """
    # Items are not "required columns": a missing item is reported once, by the instrument rule.
    items = tuple(
        ColumnSpec(item, "int", required=False, nullable=True, low=scale.low, high=scale.high)
        for scale in instrument.scales
        for item in scale.items
    )
    return TableSpec(
        "employee_survey", EMPLOYEE_SURVEY_FIXED + items, unique_together=("respondent_id", "wave")
    )


def table_specs(instrument: Instrument) -> dict[str, TableSpec]:
    """Every table of the contract by name, the survey's items taken from ``instrument``.

    Parameters
    ----------
    instrument : Instrument
        The survey's scales (``survey_spec``).

    Returns
    -------
    dict of str to TableSpec
        The required tables (``TABLE_NAMES``), then the optional ones
        (``OPTIONAL_TABLE_NAMES``), in that order.
    """
    return {
        "units": UNITS,
        "employee_survey": survey_spec(instrument),
        "customer_nps": CUSTOMER_NPS,
        "customers": CUSTOMERS,
        "headcount": HEADCOUNT,
        "internal_service": INTERNAL_SERVICE,
    }
