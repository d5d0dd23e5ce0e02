"""The data contract, version 1, as code.

The prose lives in ``data/README.md`` (copied from ``shared/data-contract.md``); this module is the
single place the loader, the validator and the generator read it from. A dataset is a directory of
four tables (``units``, ``employee_survey``, ``customer_nps``, ``customers``), each stored as
``NAME.csv`` or ``NAME.parquet``, plus an optional ``instrument.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ColumnKind = Literal["id", "text", "date", "bool", "int"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table: its type, whether it is required, and its rule."""

    name: str
    kind: ColumnKind
    required: bool = True
    nullable: bool = False
    unique: bool = False
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    unique_together: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSpec:
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

TABLE_NAMES = ("units", "employee_survey", "customer_nps", "customers")
TABLES_LINKED_TO_UNITS = ("employee_survey", "customer_nps", "customers")

# The longest identifier, name or column name the contract accepts, in characters. Names are
# shown on the page and in figures; a 200,000-character unit name took the report 7 minutes
# and 10 million characters crashed it. 200 is ample for any display name or key.
MAX_TEXT_LENGTH = 200


@dataclass(frozen=True)
class Scale:
    """A scale of the employee survey: its items, their range, and what counts as favourable."""

    name: str
    items: tuple[str, ...]
    low: int
    high: int
    favourable: float | None = None
    reverse: tuple[str, ...] = ()


@dataclass(frozen=True)
class Instrument:
    scales: tuple[Scale, ...] = field(default_factory=tuple)

    @property
    def items(self) -> tuple[str, ...]:
        return tuple(item for scale in self.scales for item in scale.items)

    def scale(self, name: str) -> Scale:
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


def survey_spec(instrument: Instrument) -> TableSpec:
    """The ``employee_survey`` table as the instrument defines it."""
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
    return {
        "units": UNITS,
        "employee_survey": survey_spec(instrument),
        "customer_nps": CUSTOMER_NPS,
        "customers": CUSTOMERS,
    }
