"""Run parameters: one YAML file drives the command line and every notebook.

papermill only warns about a parameter a notebook does not declare, so a mistyped key would
silently fall back to its default. Here an unknown key, a wrong type or an unsafe value is an
error that names the key and says what is allowed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Below three, a group's answers can be narrowed down to an individual's with little effort;
# five is the common default of employee-survey vendors.
MIN_GROUP_SIZE_FLOOR = 3


class ParameterError(ValueError):
    """The parameters file or a parameter value is not acceptable."""


@dataclass(frozen=True)
class Parameters:
    min_group_size: int = 5
    outcome_window_days: int = 91
    as_of: dt.date | None = None
    alpha: float = 0.05
    seed: int = 20240331
    bootstrap_draws: int = 2000
    covariates: tuple[str, ...] = field(default=("region",))
    # Laplace-noise budget of each published employee-derived figure (analysis.privacy).
    privacy_epsilon: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.min_group_size < MIN_GROUP_SIZE_FLOOR:
            problems.append(
                f"min_group_size must be at least {MIN_GROUP_SIZE_FLOOR} to protect "
                f"respondents' anonymity, not {self.min_group_size}"
            )
        if self.outcome_window_days < 1:
            problems.append("outcome_window_days must be a positive number of days")
        if not 0 < self.alpha < 1:
            problems.append("alpha must lie between 0 and 1")
        if self.bootstrap_draws < 1:
            problems.append("bootstrap_draws must be at least 1")
        if problems:
            raise ParameterError("; ".join(problems))

    @property
    def confidence(self) -> float:
        return 1 - self.alpha

    def to_notebook(self) -> dict:
        """Plain values papermill can inject."""
        values = dataclasses.asdict(self)
        values["as_of"] = self.as_of.isoformat() if self.as_of else None
        values["covariates"] = list(self.covariates)
        return values


_TYPES = {f.name: f.type for f in dataclasses.fields(Parameters)}


def _convert(key: str, value: object) -> object:
    expected = _TYPES[key]
    if key == "as_of":
        if value is None or isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise ParameterError(f"as_of must be a date YYYY-MM-DD, not {value!r}") from None
    if key == "covariates":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ParameterError(f"covariates must be a list of column names, not {value!r}")
        return tuple(str(v) for v in value)
    if expected == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParameterError(f"{key} must be a whole number, not {value!r}")
    if expected == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ParameterError(f"{key} must be a number, not {value!r}")
    return value


def parameters_from_mapping(values: dict, source: str = "parameters") -> Parameters:
    unknown = sorted(set(values) - set(_TYPES))
    if unknown:
        raise ParameterError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"allowed keys are {', '.join(sorted(_TYPES))}"
        )
    try:
        return Parameters(**{k: _convert(k, v) for k, v in values.items()})
    except ParameterError as error:
        raise ParameterError(f"{source}: {error}") from None


def load_parameters(path: Path | str | None) -> Parameters:
    """Read a parameters YAML file; ``None`` gives the defaults."""
    if path is None:
        return Parameters()
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ParameterError(f"{path}: cannot read parameters ({error})") from None
    if not isinstance(values, dict):
        raise ParameterError(f"{path}: expected a mapping of key: value")
    return parameters_from_mapping(values, str(path))
