"""Run parameters: one YAML file drives the command line and every notebook.

papermill only warns about a parameter a notebook does not declare, so a mistyped key would
silently fall back to its default. Here an unknown key, a wrong type or a value outside its
documented range is an error that names the key, the value, what is allowed and how to fix it,
and **every** problem is reported at once, as ``DatasetError`` does for data.

The ranges (also in README.md, "Parameters"):

============================  ==========================================================
``min_group_size``            a whole number, 3 to 1,000 (default 5)
``outcome_window_days``       a whole number of days, 1 to 3,660, and no longer than the
                              data's span: from the first survey wave to the end of
                              observation (default 91)
``as_of``                     a date ``YYYY-MM-DD`` (no time of day) from the first survey
                              wave to 31 days after the latest date in the data (the day
                              the data were extracted; default: that latest date)
``alpha``                     0.001 to 0.5 with at most three decimals, so that p-values
                              (printed to three decimals) and the confidence level (``95%``,
                              ``99.9%``) print exactly (default 0.05)
``seed``                      a whole number, 0 to 2**32 − 1 (default 20240331)
``bootstrap_draws``           a whole number, 10 to 100,000 (default 2,000)
``covariates``                a list of distinct column names of ``units``; not an identifier
                              or display name, not a name the kit uses for its own columns,
                              and not a column that takes a different value in every unit
                              (default ``[region]``; an absent ``region`` is skipped)
``privacy_epsilon``           0.01 to 100 (default 2.0)
``value_per_customer``        optional: what keeping one customer for a year is worth, an
                              amount from 0.01 to 1,000,000,000 in any one currency; the
                              report then gives customers kept in money (default: none)
============================  ==========================================================

True and false are not numbers, and a number is not a whole number unless written as one.
Checks that need the data (covariates, ``as_of``, the window's span) run in
:func:`check_parameters` before any work starts; :func:`load_parameters` given the dataset
reports them together with every other problem of the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from analysis.data.contract import CUSTOMER_NPS, CUSTOMERS, EMPLOYEE_SURVEY_FIXED, UNITS

if TYPE_CHECKING:
    import pandas as pd

    from analysis.data.load import Dataset

# Below three, a group's answers can be narrowed down to an individual's with little effort;
# five is the common default of employee-survey vendors. Above a thousand nothing is shown.
MIN_GROUP_SIZE_FLOOR = 3
MIN_GROUP_SIZE_CEILING = 1_000
# Ten years: longer than any survey programme's horizon, short enough for any date arithmetic.
OUTCOME_WINDOW_MAX_DAYS = 3_660
# p-values print to three decimals ("<0.001"); a smaller alpha could not be read off a table.
ALPHA_LOW, ALPHA_HIGH, ALPHA_DECIMALS = 0.001, 0.5, 3
# numpy refuses a negative seed (exit 1 before); 2**32 is the bound of its legacy seeds and of
# most other tools, so a seed in the manifest can be replayed anywhere.
SEED_LIMIT = 2**32
# The driver bootstrap needs ten draws to estimate anything; the bound keeps time and memory
# finite (100,000 draws: 17 s for estimate on the sample, against 11 s with the default).
BOOTSTRAP_DRAWS_LOW, BOOTSTRAP_DRAWS_HIGH = 10, 100_000
EPSILON_LOW, EPSILON_HIGH = 0.01, 100.0
# A customer-year worth less than a cent or more than a billion is a typing error in any currency.
VALUE_LOW, VALUE_HIGH = 0.01, 1_000_000_000.0
FEWEST_UNITS = 10  # analysis.models.estimate.MIN_UNITS: the fewest units any model is fitted on
# as_of may follow the latest date in the data by a month: the day the data were extracted
# often comes after the last recorded answer. Later dates would invent quiet months.
AS_OF_GRACE_DAYS = 31

# Columns that identify a unit, a person or an answer: as covariates they would fit one level
# per unit (or leak an identifier into the model), never a grouping of units.
IDENTIFIER_COLUMNS = tuple(
    dict.fromkeys(
        [
            *(c.name for c in (*UNITS.columns, *EMPLOYEE_SURVEY_FIXED) if c.kind == "id"),
            *(c.name for c in (*CUSTOMER_NPS.columns, *CUSTOMERS.columns) if c.kind == "id"),
            "unit_name",
        ]
    )
)
# Names the unit × wave panel and the models give their own columns (analysis.measures.panel,
# analysis.models.estimate); a units column of the same name would collide with them. Scale
# names give ``<scale>_index``, ``<scale>_respondents`` …, caught by the suffixes.
RESERVED_COLUMNS = (
    "wave",
    "wave_number",
    "const",
    "n_respondents",
    "promoters",
    "passives",
    "detractors",
    "n_responses",
    "nps",
    "customers_at_risk",
    "churned_in_window",
    "exposure_days",
    "engagement_sd",
    "unit_wave_row",
    "events",
    "exposure",
)
RESERVED_PREFIXES = ("prior_", "n_half_", "engagement_half_")
RESERVED_SUFFIXES = (
    "_index",
    "_lag",
    "_respondents",
    "_noise_var",
    "_within_ss",
)

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
README_HINT = "Every range is listed under 'Parameters' in README.md."


class ParameterError(ValueError):
    """The parameters file or a parameter value is not acceptable. ``problems`` lists each."""

    def __init__(self, message: str, problems: tuple[str, ...] | list[str] = ()):
        self.problems = tuple(problems) or (message,)
        super().__init__(message)


def _error(source: str, problems: list[str]) -> ParameterError:
    """One error listing every problem, in the style of ``analysis.data.load.DatasetError``."""
    if len(problems) == 1:
        return ParameterError(f"{source}: {problems[0]}\n{README_HINT}", problems)
    lines = [f"{source}: {len(problems)} problems with the parameters:"]
    lines += [f"  - {p}" for p in problems]
    lines.append(README_HINT)
    return ParameterError("\n".join(lines), problems)


def _shown(value: object) -> str:
    """A value as the user wrote it, shortened: a message must stay readable."""
    if isinstance(value, int) and value.bit_length() > 200:
        return "a number of more than 60 digits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _names(names: list[str]) -> str:
    """Column names for a message: as written when plain, quoted and shortened otherwise."""
    return ", ".join(n if n.isprintable() and len(n) <= 60 else _shown(n) for n in names)


def _closest(name: str, known: list[str]) -> str | None:
    """The known name ``name`` most likely misspells (``difflib``, case ignored), or None.

    A name equal once case, spaces and punctuation are ignored comes first (``Min-Group-Size``
    for ``min_group_size``); otherwise the closest with a similarity ratio of at least 0.6
    (Ratcliff & Metzener 1988, as ``difflib.SequenceMatcher`` computes it).
    """

    def bare(text: str) -> str:
        return "".join(ch for ch in text.casefold() if ch.isalnum())

    same = [k for k in known if bare(k) == bare(name) and bare(k)]
    if same:
        return same[0]
    folded = {k.casefold(): k for k in reversed(known)}
    match = difflib.get_close_matches(name.casefold(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def _with_guess(name: str, known: list[str]) -> str:
    """A name for a message, with "(did you mean …?)" when a known name is close."""
    guess = _closest(name, known)
    shown = _names([name])
    return f"{shown} (did you mean {_names([guess])}?)" if guess else shown


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole_in(key: str, value: object, low: int, high: int, fix: str) -> str | None:
    if not _is_whole(value):
        return f"{key} must be a whole number from {low:,} to {high:,}, not {_shown(value)}; {fix}"
    if not low <= value <= high:
        return f"{key} must be from {low:,} to {high:,}, not {_shown(value)}; {fix}"
    return None


def _number_in(key: str, value: object, low: float, high: float, fix: str) -> str | None:
    if not _is_number(value):
        return f"{key} must be a number from {low:g} to {high:g}, not {_shown(value)}; {fix}"
    if not (math.isfinite(value) and low <= value <= high):
        return f"{key} must be from {low:g} to {high:g}, not {_shown(value)}; {fix}"
    return None


def _optional_amount_in(key: str, value: object, low: float, high: float, fix: str) -> str | None:
    if value is None:  # optional: left out, the report gives no money figure
        return None
    if not _is_number(value) or not (math.isfinite(value) and low <= value <= high):
        return (
            f"{key} must be an amount from {low:,g} to {high:,.0f}, or left out, "
            f"not {_shown(value)}; {fix}"
        )
    return None


# The parameters checked against a range on their own: the check and the range, ...
_RANGES = {
    "min_group_size": (_whole_in, MIN_GROUP_SIZE_FLOOR, MIN_GROUP_SIZE_CEILING),
    "outcome_window_days": (_whole_in, 1, OUTCOME_WINDOW_MAX_DAYS),
    "alpha": (_number_in, ALPHA_LOW, ALPHA_HIGH),
    "seed": (_whole_in, 0, SEED_LIMIT - 1),
    "bootstrap_draws": (_whole_in, BOOTSTRAP_DRAWS_LOW, BOOTSTRAP_DRAWS_HIGH),
    "privacy_epsilon": (_number_in, EPSILON_LOW, EPSILON_HIGH),
    "value_per_customer": (_optional_amount_in, VALUE_LOW, VALUE_HIGH),
}
# ... and what a message about each suggests.
_ADVICE = {
    "min_group_size": "at least 3 protects respondents' anonymity, and 5 is usual",
    "outcome_window_days": "91 days (a quarter) is the default",
    "alpha": "use a significance level such as 0.05 or 0.01",
    "seed": "any whole number in that range will do",
    "bootstrap_draws": "2,000 (the default) gives stable 95% limits",
    "privacy_epsilon": "smaller means more noise and more privacy; 1.0 is the default",
    "value_per_customer": "give the yearly value of one customer, e.g. 1200, in one currency",
}


def is_reserved_column(name: str) -> bool:
    """Whether the kit computes a column of this name (so a covariate may not have it)."""
    return (
        name in RESERVED_COLUMNS
        or name.startswith(RESERVED_PREFIXES)
        or name.endswith(RESERVED_SUFFIXES)
    )


def _covariate_problems(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return [
            f"covariates must be a list of column names of units, such as [region] or [], "
            f"not {_shown(value)}"
        ]
    problems = []
    names = [v for v in value if isinstance(v, str) and v.strip()]
    odd = [v for v in value if not (isinstance(v, str) and v.strip())]
    if odd:
        problems.append(
            f"covariates must be column names of units, not {', '.join(_shown(v) for v in odd)}"
        )
    identifiers = [n for n in dict.fromkeys(names) if n in IDENTIFIER_COLUMNS]
    if identifiers:
        problems.append(
            f"covariates: {_names(identifiers)} "
            f"{'is an identifier' if len(identifiers) == 1 else 'are identifiers'}, not a grouping "
            "of units (a covariate fits one level per value, so an identifier would fit one per "
            f"unit or person); remove {'it' if len(identifiers) == 1 else 'them'}"
        )
    reserved = [n for n in dict.fromkeys(names) if n not in identifiers and is_reserved_column(n)]
    if reserved:
        problems.append(
            f"covariates: {_names(reserved)} is a name the kit uses for its own columns "
            "(see analysis/data/parameters.py, RESERVED_COLUMNS); rename that column of units"
        )
    repeated = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if repeated:
        problems.append(
            f"covariates: {_names(repeated)} "
            f"{'is' if len(repeated) == 1 else 'are'} listed more than once; list each once"
        )
    return problems


def _as_of(value: object) -> tuple[dt.date | None, str | None]:
    """The date ``as_of`` names, or a problem. A time of day is refused, not truncated."""
    fix = "write the day as YYYY-MM-DD, e.g. as_of: 2024-03-31 (that whole day is observed)"
    if value is None:
        return None, None
    if isinstance(value, dt.datetime):  # YAML reads 2024-03-31T10:00:00 as a datetime
        return None, (
            f"as_of must be a date without a time of day, not {value.isoformat()}; write "
            f"as_of: {value.date().isoformat()} (that whole day is observed)"
        )
    if isinstance(value, dt.date):
        return value, None
    if isinstance(value, str) and ISO_DATE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip()), None
        except ValueError:
            return None, f"as_of: {_shown(value)} is not a day of the calendar; {fix}"
    if isinstance(value, str) and ISO_DATE.match(value.strip()):
        return None, f"as_of must be a date without a time of day, not {_shown(value)}; {fix}"
    return None, f"as_of must be a date YYYY-MM-DD, not {_shown(value)}; {fix}"


def _field_problems(key: str, value: object) -> list[str]:
    """What is wrong with one parameter on its own, before any data is read."""
    if key == "covariates":
        return _covariate_problems(value)
    if key == "as_of":
        problem = _as_of(value)[1]
    elif key in _RANGES:
        check, low, high = _RANGES[key]
        fix = _ADVICE[key]
        problem = check(key, value, low, high, fix)
        if key == "alpha" and problem is None and round(value, ALPHA_DECIMALS) != value:
            problem = (
                f"alpha may have at most {ALPHA_DECIMALS} decimals, so that its confidence level "
                f"prints exactly, not {_shown(value)}; {fix}"
            )
    else:
        problem = None
    return [problem] if problem else []


@dataclass(frozen=True)
class Parameters:
    """The run's parameters, every one checked on construction.

    The ranges and defaults are in the module docstring (and README.md, "Parameters").

    Raises
    ------
    ParameterError
        Listing every value outside its range, when constructed with one.
    """

    min_group_size: int = 5
    outcome_window_days: int = 91
    as_of: dt.date | None = None
    alpha: float = 0.05
    seed: int = 20240331
    bootstrap_draws: int = 2000
    covariates: tuple[str, ...] = field(default=("region",))
    # Laplace-noise budget of each published employee-derived figure (analysis.measures.privacy).
    privacy_epsilon: float = 2.0
    # What keeping one customer for a year is worth (analysis.models.translation); None: no money.
    value_per_customer: float | None = None

    def __post_init__(self) -> None:
        problems = [
            problem
            for f in dataclasses.fields(self)
            for problem in _field_problems(f.name, getattr(self, f.name))
        ]
        if problems:
            raise _error("parameters", problems)

    @property
    def confidence(self) -> float:
        """The level of every interval, ``1 − alpha``."""
        return 1 - self.alpha

    def to_notebook(self) -> dict:
        """Plain values papermill can inject."""
        values = dataclasses.asdict(self)
        values["as_of"] = self.as_of.isoformat() if self.as_of else None
        values["covariates"] = list(self.covariates)
        return values


_KEYS = tuple(f.name for f in dataclasses.fields(Parameters))


def _convert(key: str, value: object) -> object:
    """The field's value from a checked YAML value."""
    if key == "as_of":
        return _as_of(value)[0]
    if key == "covariates":
        return tuple(value)
    if key in ("alpha", "privacy_epsilon"):
        return float(value)
    if key == "value_per_customer":
        return None if value is None else float(value)
    return value


def _data_problems(values: Mapping, dataset: Dataset) -> list[str]:
    """What is wrong with the parameters given these data: covariates, as_of, the window."""
    from analysis.data.load import default_as_of

    problems = []
    units = dataset.units
    units_file = dataset.files["units"].name if "units" in dataset.files else "units"
    covariates = values.get("covariates", Parameters.covariates)
    if isinstance(covariates, list | tuple):
        # names already refused on their own (identifiers, the kit's names) are not repeated
        names = [
            c
            for c in dict.fromkeys(v for v in covariates if isinstance(v, str) and v.strip())
            if c not in IDENTIFIER_COLUMNS and not is_reserved_column(c)
        ]
        # region is the contract's optional default; any other name must be a column of units
        unknown = [c for c in names if c not in units and c != "region"]
        if unknown:
            known = [str(c) for c in units.columns]
            named = ", ".join(_with_guess(c, [k for k in known if k not in names]) for c in unknown)
            problems.append(
                f"covariates: {named} {'is' if len(unknown) == 1 else 'are'} not "
                f"a column of {units_file}; its columns are {_names(known)}"
            )
        n_units = len(units)
        for name in (c for c in names if c in units):
            present = units[name].dropna()
            # below ten units the models refuse anyway ("too few units"), the clearer message
            if n_units >= FEWEST_UNITS and len(present) == n_units and present.nunique() == n_units:
                problems.append(
                    f"covariates: {_names([name])} takes a different value in every one of the "
                    f"{n_units:,} units of {units_file}, so as a covariate it would stand for "
                    "the unit itself, not group units; remove it (covariates: [] for none)"
                )
    first_wave = dataset.employee_survey["wave"].min()
    if first_wave is None or first_wave != first_wave:  # no survey rows: nothing to check
        return problems
    first_wave = first_wave.date()
    latest = default_as_of(dataset).date()
    last = latest + dt.timedelta(days=AS_OF_GRACE_DAYS)
    as_of, as_of_problem = _as_of(values.get("as_of"))
    if as_of_problem is None and as_of is not None and not first_wave <= as_of <= last:
        problems.append(
            f"as_of: {as_of.isoformat()} is outside the data, which run from the first survey "
            f"wave {first_wave.isoformat()} to {latest.isoformat()}; choose a date from "
            f"{first_wave.isoformat()} to {last.isoformat()} ({AS_OF_GRACE_DAYS} days after "
            "the latest, for the day the data were extracted), or leave as_of out to use the "
            "latest date"
        )
    end = as_of if as_of is not None and first_wave <= as_of <= last else latest
    window = values.get("outcome_window_days", Parameters.outcome_window_days)
    span = (end - first_wave).days
    if not _field_problems("outcome_window_days", window) and window > max(span, 1):
        problems.append(
            f"outcome_window_days: {window:,} is longer than the data's span of {span:,} days "
            f"(from the first survey wave {first_wave.isoformat()} to {end.isoformat()}); "
            "choose at most that many (91, a quarter, is the default)"
        )
    return problems


def problems_with(values: Mapping, dataset: Dataset | None = None) -> list[str]:
    """Every problem of a mapping of parameters, and with ``dataset`` those the data reveal."""
    problems = []
    unknown = sorted(set(values) - set(_KEYS), key=str)
    if unknown:
        # a misspelt key is suggested only a key the file does not already set
        unset = [k for k in _KEYS if k not in values]
        named = ", ".join(_with_guess(str(k), unset) for k in unknown)
        problems.append(
            f"unknown key{'s' if len(unknown) > 1 else ''} {named}; "
            f"allowed keys are {', '.join(sorted(_KEYS))}"
        )
    for key in _KEYS:
        if key in values:
            problems += _field_problems(key, values[key])
    if dataset is not None:
        problems += _data_problems(values, dataset)
    return problems


def parameters_from_mapping(
    values: Mapping, source: str = "parameters", dataset: Dataset | None = None
) -> Parameters:
    """Parameters from a mapping; ``ParameterError`` listing every problem, data ones too.

    Parameters
    ----------
    values : Mapping
        Parameter names and values, as read from YAML.
    source : str
        How messages name where the values came from (a file name).
    dataset : Dataset, optional
        With it, the checks that need the data are made too.

    Returns
    -------
    Parameters
        The checked parameters.

    Raises
    ------
    ParameterError
        Listing every problem at once.
    """
    if not isinstance(values, Mapping):
        raise _error(source, ["expected a mapping of key: value"])
    problems = problems_with(values, dataset)
    if problems:
        raise _error(source, problems)
    return Parameters(**{k: _convert(k, v) for k, v in values.items()})


def check_parameters(
    dataset: Dataset, parameters: Parameters, source: str = "parameters checked against the data"
) -> Parameters:
    """Check parameters against the data before any work; ``ParameterError`` lists every problem.

    Covariates must be columns of ``units`` (an absent ``region`` is skipped) that group units;
    ``as_of`` must lie from the first survey wave to the latest date in the data; the outcome
    window must fit in the data's span. Every command calls it before it writes anything.

    Parameters
    ----------
    dataset : Dataset
        The loaded data.
    parameters : Parameters
        Values already checked on their own.
    source : str
        How messages name the parameters.

    Returns
    -------
    Parameters
        ``parameters`` unchanged.

    Raises
    ------
    ParameterError
        Listing every problem the data reveal.
    """
    values = {
        "covariates": list(parameters.covariates),
        "as_of": parameters.as_of,
        "outcome_window_days": parameters.outcome_window_days,
    }
    problems = _data_problems(values, dataset)
    if problems:
        raise _error(source, problems)
    return parameters


def load_parameters(
    path: Path | str | None,
    dataset: Dataset | None = None,
    data_dir: Path | str | None = None,
) -> Parameters:
    """Read a parameters YAML file; ``None`` gives the defaults.

    Parameters
    ----------
    path : path-like or None
        The YAML file; ``None`` for the defaults.
    dataset : Dataset, optional
        With it, the checks that need the data are made too, and every problem is reported in
        one ``ParameterError``.
    data_dir : path-like, optional
        The dataset folder the parameters are for. Read only when the file has a problem, so
        that the refusal also lists the problems only the data reveal (a covariate that is not
        a column, an ``as_of`` outside the data) rather than one batch per rerun; if the data
        cannot be read, the refusal says so. Valid parameters are checked against the data
        later, by :func:`check_parameters`, on the dataset the command loads anyway.

    Returns
    -------
    Parameters
        The file's values (defaults for the keys it leaves out), every one checked.

    Raises
    ------
    ParameterError
        If the file cannot be read, or listing every problem of its values.
    """
    if path is None:
        parameters = Parameters()
        return parameters if dataset is None else check_parameters(dataset, parameters)
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        raise ParameterError(f"{path}: cannot read parameters ({error})") from None
    try:
        return parameters_from_mapping(values, str(path), dataset)
    except ParameterError as error:
        if dataset is not None or data_dir is None or not isinstance(values, Mapping):
            raise
        raise _with_data_problems(values, str(path), Path(data_dir), error) from None


def _with_data_problems(
    values: Mapping, source: str, data_dir: Path, error: ParameterError
) -> ParameterError:
    """``error`` with the problems the data reveal added, when the data can be read."""
    from analysis.data.load import DatasetError, load_dataset

    try:
        dataset = load_dataset(data_dir)
    except DatasetError as data_error:
        note = (
            f"(not a parameter: {data_dir} does not follow the data contract either, with "
            f"{len(data_error.problems):,} problem{'s' if len(data_error.problems) != 1 else ''}"
            f"; `python -m analysis validate {data_dir}` lists them)"
        )
        return _error(source, [*error.problems, note])
    return _error(source, problems_with(values, dataset))


def resolve_as_of(dataset: Dataset, parameters: Parameters | None = None) -> pd.Timestamp:
    """The end of observation: ``parameters.as_of`` if set, else the latest date in the data.

    The one place ``as_of`` is resolved; the estimate, the panel, the calibration study, the
    benchmark and the notebooks all call it.

    Parameters
    ----------
    dataset : Dataset
        The loaded study (``analysis.data.load``).
    parameters : Parameters, optional
        The run's parameters; ``None`` (or ``as_of`` unset) uses the data's latest date.

    Returns
    -------
    pandas.Timestamp
        ``as_of`` at midnight; that whole day is observed.

    Notes
    -----
    The latest date is the maximum of the last survey wave, the last customer answer, the
    last customer start and the last churn date (``load.default_as_of``).
    """
    import pandas as pd

    from analysis.data.load import default_as_of

    if parameters is not None and parameters.as_of:
        return pd.Timestamp(parameters.as_of)
    return default_as_of(dataset)
