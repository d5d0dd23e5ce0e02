"""Result files: the one module that writes and reads the tables the models produce.

``estimate`` writes a result folder; ``report`` writes one inside each run; the notebooks read it
back; the calibration study writes and reads its own. All of them go through this module, next
to the loader (``analysis.data.load``), and every write is published atomically through
``analysis.data.folders`` (``load.write_tables`` with ``kind="results"``): a failed or
interrupted write leaves the previous folder as it was.

A result folder holds:

* ``estimates.csv``: one tidy row per estimand (``estimand, term, estimate, std_error,
  conf_low, conf_high, p_value, p_adjusted, n_obs, n_units, method``; the facts about the fit
  a reviewer filters on: ``se_method, jackknife_groups, bootstrap_draws, correction``; and
  whether one unit decides it: ``fragile_to_one_unit, n_units_flip_significance,
  n_units_flip_sign``);
* ``findings.csv``: one row per headline finding (``finding, estimand, section, direction,
  verdict, estimate, conf_low, conf_high, null, confidence, p_adjusted, alpha, n_units, n_obs,
  mde, meaningful_size, excludes_meaningful, sentence``), the verdict (``evidence``, ``no clear
  evidence``, ``not estimable``) deciding the sentence the executive page shows
  (``analysis.report.findings``);
* ``drivers.csv``, ``unit_wave.csv`` (small groups suppressed) and
  ``nps_by_engagement_quartile.csv``;
* optionally (``OPTIONAL_RESULT_FILES``), ``brand_alignment.csv``: staff brand alignment
  against customers' brand promise per unit × wave (staff figures suppressed and released
  with noise), only when customers were asked ``brand_promise`` (contract v2);
* optionally, only for a dataset with an ``internal_service`` table (contract v2):
  ``internal_service.csv`` (provider scorecards) and ``internal_service_network.csv`` (who
  rates whom), released by ``analysis.models.service_release``;
* ``manifest.json`` (``analysis.data.provenance.build_manifest``): the inputs by hash and the
  parameters the tables were computed from. Its ``results_key`` decides whether a folder is
  current for a dataset and a set of parameters, so the manifest is the only provenance file.

Text cells and headers were written spreadsheet-safe (``load.spreadsheet_safe``); reading
undoes it, so a unit called ``=1+1`` comes back as itself and joins to the data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis.data.load import undo_spreadsheet_safe, write_tables

RESULT_FILES = ("estimates", "findings", "drivers", "unit_wave", "nps_by_engagement_quartile")
#: Result files written only when the dataset holds what they need (contract v2):
#: ``brand_alignment`` when customers were asked ``brand_promise``; ``internal_service`` and
#: ``internal_service_network`` when it has an ``internal_service`` table.
OPTIONAL_RESULT_FILES = ("brand_alignment", "internal_service", "internal_service_network")
#: Of those, the ones an input table calls for: result name → the table (its file's stem, as
#: ``manifest.json`` names the inputs). A folder from such inputs is current only with them.
REQUIRED_BY_INPUT = {
    "internal_service": "internal_service",
    "internal_service_network": "internal_service",
}
#: Identifier columns read as text, and date columns read as dates, in an optional file.
_ID_COLUMNS = ("unit_id", "provider_unit_id", "rater_unit_id")
_DATE_COLUMNS = ("wave", "previous_wave")
CALIBRATION_FILES = ("replicates", "summary", "conditions")
MANIFEST_FILE = "manifest.json"
# Columns of the calibration tables whose empty cell means "none", not a missing value.
_CALIBRATION_TEXT = ("failure", "rejection_verdict", "coverage_verdict")


def manifest_json(manifest: Mapping) -> str:
    """A manifest as the text written to ``manifest.json``: indented JSON, one final newline.

    Parameters
    ----------
    manifest : Mapping
        As built by ``analysis.data.provenance.build_manifest`` (dates and other values JSON
        cannot hold are written as their ``str``).

    Returns
    -------
    str
    """
    return json.dumps(manifest, indent=2, default=str) + "\n"


def results_key(manifest: Mapping) -> dict:
    """What a result folder was computed from: the inputs by hash and the parameters.

    Two manifests with the same key describe the same tables: the run id, the time and the
    package versions may differ, the data and the parameters may not (tables suppressed for
    one ``min_group_size`` must never be shown under another).

    Parameters
    ----------
    manifest : Mapping
        A manifest (``analysis.data.provenance.build_manifest``).

    Returns
    -------
    dict
        ``{"inputs_sha256": …, "parameters": …}``.
    """
    return {
        "inputs_sha256": manifest.get("inputs_sha256"),
        "parameters": manifest.get("parameters"),
    }


def write_results(
    tables: Mapping[str, pd.DataFrame], out_dir: Path | str, manifest: Mapping
) -> Path:
    """Write a result folder, all or nothing: the tables and ``manifest.json``.

    Parameters
    ----------
    tables : Mapping of str to DataFrame
        The result tables by name (``RESULT_FILES``), as ``estimate_all(...).tables()`` returns
        them.
    out_dir : Path or str
        New, empty, or a result folder the kit wrote before (``folders.check_replaceable``);
        anything else is refused with ``folders.OutputError`` before anything is written.
    manifest : Mapping
        The run's manifest (``analysis.data.provenance.build_manifest``).

    Returns
    -------
    Path
        The folder written.
    """
    return write_tables(
        dict(tables), out_dir, extra_files={MANIFEST_FILE: manifest_json(manifest)}, kind="results"
    )


def _read_csv(path: Path, **options) -> pd.DataFrame:
    table = pd.read_csv(path, **options)
    table = table.apply(undo_spreadsheet_safe)
    # headers too: load._csv_ready neutralises column names like cells
    table.columns = list(undo_spreadsheet_safe(pd.Series(table.columns, dtype=object)))
    return table


def read_results(results_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The result tables of a folder written by :func:`write_results`, as the notebooks use them.

    Parameters
    ----------
    results_dir : Path or str

    Returns
    -------
    dict of str to DataFrame
        One table per name of ``RESULT_FILES``, then each of ``OPTIONAL_RESULT_FILES`` the
        folder holds; unit identifiers as text, ``wave`` as dates (where the table is by
        wave), text cells and headers as they were before being made spreadsheet-safe.
    """
    results_dir = Path(results_dir)
    tables = {
        name: _read_csv(
            results_dir / f"{name}.csv",
            dtype={"unit_id": "string"},
            parse_dates=["wave"] if name == "unit_wave" else False,
        )
        for name in RESULT_FILES
    }
    for name in OPTIONAL_RESULT_FILES:
        path = results_dir / f"{name}.csv"
        if path.is_file():
            header = pd.read_csv(path, nrows=0).columns
            tables[name] = _read_csv(
                path,
                dtype=dict.fromkeys([c for c in _ID_COLUMNS if c in header], "string"),
                parse_dates=[c for c in _DATE_COLUMNS if c in header],
            )
    return tables


def expected_result_files(manifest: Mapping) -> tuple[str, ...]:
    """The result files a folder computed from ``manifest``'s inputs must hold.

    ``RESULT_FILES`` always; each of ``REQUIRED_BY_INPUT`` when the inputs include its table
    (``internal_service.csv`` or ``.parquet``). ``brand_alignment.csv`` depends on a column,
    not a table, and is read when present.
    """
    stems = {Path(name).stem for name in (manifest.get("inputs_sha256") or {})}
    return (*RESULT_FILES, *(n for n, table in REQUIRED_BY_INPUT.items() if table in stems))


def stored_manifest(results_dir: Path | str) -> dict | None:
    """The manifest of a result folder, or ``None`` when it has none or it cannot be read."""
    path = Path(results_dir) / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def results_are_current(results_dir: Path | str, manifest: Mapping) -> bool:
    """Whether ``results_dir`` holds every result table, computed from what ``manifest`` names.

    Parameters
    ----------
    results_dir : Path or str
    manifest : Mapping
        The manifest the tables would be written with now.

    Returns
    -------
    bool
        True when every file of :func:`expected_result_files` exists and the stored manifest
        has the same :func:`results_key`.
    """
    results_dir = Path(results_dir)
    stored = stored_manifest(results_dir)
    return (
        stored is not None
        and results_key(stored) == results_key(manifest)
        and all((results_dir / f"{name}.csv").is_file() for name in expected_result_files(manifest))
    )


def write_calibration(tables: Mapping[str, pd.DataFrame], out_dir: Path | str) -> Path:
    """Write the calibration study's tables (``CALIBRATION_FILES``) as one result folder.

    Parameters
    ----------
    tables : Mapping of str to DataFrame
        ``replicates``, ``summary`` and ``conditions`` (``analysis.studies.calibration``).
    out_dir : Path or str
        As for :func:`write_results`.

    Returns
    -------
    Path
    """
    return write_tables(dict(tables), out_dir, kind="results")


def read_calibration(results_dir: Path | str) -> dict[str, pd.DataFrame]:
    """The calibration study's tables, as :func:`write_calibration` wrote them.

    Parameters
    ----------
    results_dir : Path or str

    Returns
    -------
    dict of str to DataFrame
        ``replicates``, ``summary`` and ``conditions``; the text columns whose empty cell means
        "none" (``failure`` and the verdicts) as empty strings, not missing values.

    Raises
    ------
    FileNotFoundError
        When a table is missing, saying how to produce it.
    """
    results_dir = Path(results_dir)
    missing = [n for n in CALIBRATION_FILES if not (results_dir / f"{n}.csv").exists()]
    if missing:
        raise FileNotFoundError(
            f"no calibration results in {results_dir} ({', '.join(missing)}.csv missing): "
            "run `make validate` or `python -m analysis calibrate` first"
        )
    tables = {
        name: _read_csv(results_dir / f"{name}.csv", keep_default_na=False, na_values=[""])
        for name in CALIBRATION_FILES
    }
    for name in ("replicates", "summary"):
        for column in _CALIBRATION_TEXT:
            if column in tables[name]:
                tables[name][column] = tables[name][column].fillna("").astype(str)
    return tables
