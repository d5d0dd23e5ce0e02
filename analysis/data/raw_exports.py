"""Worked example: a dataset written back as the raw exports real data arrives as.

``write_raw_exports`` turns a validated dataset (the sample study, ``data/sample``) into the
files an organisation actually has, plus the commented ``mapping.yaml`` that imports them with
``python -m analysis import`` (``analysis.data.importer``):

* ``engagement_2024Q1.csv`` … one Qualtrics export per survey wave: row 1 the column ids
  (``Q1_1`` …), row 2 the question text, row 3 the ``{"ImportId": …}`` cells; 1–5 answers as
  labels ("Agree"), 0–10 and 1–7 answers as numbers, as a "choice text" export has them; a
  ``RecordedDate`` timestamp within the wave's field period; ``Finished`` True/False, with a
  few partial responses (``Finished`` False, from people who also completed the survey) that
  the import must drop; the HR key of each respondent (``EmployeeKey``) beside their e-mail
  address (``RecipientEmail``), which the import never carries into the dataset;
* ``org_units.csv``, the HR system's org table (``Front Line`` Y/N);
* ``cx/nps_export.csv``, the CX platform's NPS export, with ISO timestamps in UTC or an offset;
* ``crm_accounts.csv``, the CRM extract (accounts opened and closed).

Identifiers and row order are preserved, so importing the folder gives back the dataset, up to
the keyed pseudonyms of respondent and customer ids (none without ``INSIDE_OUT_ID_KEY``).

Command line::

    python -m analysis.data.raw_exports --data data/sample --out data/examples/raw

The output folder is written whole and atomically (``analysis.data.folders``): it must be new,
empty, or a folder this command wrote before.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.data.contract import Instrument
from analysis.data.load import INSTRUMENT_FILE, SYNTHETIC_FILE, Dataset

KIND = "raw exports"
SEED = 20240331
FIELD_DAYS = 20
PARTIAL_SHARE = 0.015
AGREE5 = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")
EMAIL_DOMAIN = "staff.example.com"
#: Question text of the default instrument's items, as the survey showed them.
QUESTION_TEXT = {
    "eng_1": "I am proud to work for this organisation",
    "eng_2": "I would recommend this organisation as a great place to work",
    "eng_3": "I rarely think about looking for a job at another organisation",
    "eng_4": "I see myself still working here in two years' time",
    "eng_5": "This organisation motivates me to go beyond what I would in a similar role elsewhere",
    "comm_1": "I get the information I need to do my job well",
    "comm_2": "I hear about changes that affect me before they happen",
    "comm_3": "Leaders keep us informed about what is happening",
    "comm_4": "I know where to find answers to customers' questions",
    "brand_1": "I believe in what our brand promises customers",
    "brand_2": "I could explain our brand promise to a customer",
    "brand_3": "My work helps us keep our brand promise",
    "poc_listening": "The teams I depend on listen to what I need",
    "poc_valued": "The teams I depend on make me feel valued",
    "poc_resolution": "The teams I depend on resolve my problems",
    "poc_honesty": "The teams I depend on are honest with me",
    "poc_reliability": "The teams I depend on do what they say they will",
    "poc_authenticity": "The teams I depend on treat me as a person, not a ticket",
    "ees": "How easy is it to get your work done here? (1 = very difficult, 7 = very easy)",
    "enps": "How likely are you to recommend this organisation as a place to work?",
}


def question_ids(instrument: Instrument) -> dict[str, str]:
    """Qualtrics-style question ids for the instrument's items: ``Q1_1`` …, or ``Q5`` alone.

    Parameters
    ----------
    instrument : Instrument

    Returns
    -------
    dict of str to str
        Item -> question id: scale *k* (in instrument order) is question ``Qk``; a scale of
        several items is a matrix question whose rows are ``Qk_1``, ``Qk_2`` ….
    """
    ids = {}
    for k, scale in enumerate(instrument.scales, start=1):
        for j, item in enumerate(scale.items, start=1):
            ids[item] = f"Q{k}_{j}" if len(scale.items) > 1 else f"Q{k}"
    return ids


def _labelled(low: int, high: int) -> bool:
    """Agreement items (1–5) are exported as labels; 0–10 and 1–7 ratings as numbers."""
    return (low, high) == (1, 5)


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


def _wave_names(waves: list[pd.Timestamp]) -> dict[pd.Timestamp, str]:
    """``engagement_2024Q1.csv`` per wave; ISO dates if two waves share a quarter."""
    quarters = {w: f"{w.year}Q{(w.month - 1) // 3 + 1}" for w in waves}
    if len(set(quarters.values())) < len(waves):
        quarters = {w: w.date().isoformat() for w in waves}
    return {w: f"engagement_{q}.csv" for w, q in quarters.items()}


def email_of(respondent_id: str) -> str:
    """The e-mail address an export carries for a respondent of the sample.

    Parameters
    ----------
    respondent_id : str

    Returns
    -------
    str
        ``<id in lower case>@staff.example.com`` (``example.com`` is reserved for examples,
        RFC 2606), so that no real address is ever made up.
    """
    return f"{respondent_id.lower()}@{EMAIL_DOMAIN}"


def survey_exports(dataset: Dataset, rng: np.random.Generator) -> dict[str, str]:
    """One Qualtrics-layout CSV per wave, by file name (see the module's docstring).

    Parameters
    ----------
    dataset : Dataset
    rng : numpy.random.Generator
        Draws the timestamps, durations, response ids and partial responses.

    Returns
    -------
    dict of str to str
        File name -> CSV text.
    """
    survey = dataset.employee_survey
    instrument = dataset.instrument
    ids = question_ids(instrument)
    scales = {item: s for s in instrument.scales for item in s.items}
    waves = sorted(pd.Timestamp(w) for w in survey["wave"].unique())
    names = _wave_names(waves)
    meta = [
        ("StartDate", "Start Date", '{"ImportId":"startDate","timeZone":"Europe/London"}'),
        ("EndDate", "End Date", '{"ImportId":"endDate","timeZone":"Europe/London"}'),
        ("Status", "Response Type", '{"ImportId":"status"}'),
        ("Progress", "Progress", '{"ImportId":"progress"}'),
        ("Duration (in seconds)", "Duration (in seconds)", '{"ImportId":"duration"}'),
        ("Finished", "Finished", '{"ImportId":"finished"}'),
        ("RecordedDate", "Recorded Date", '{"ImportId":"recordedDate","timeZone":"Europe/London"}'),
        ("ResponseId", "Response ID", '{"ImportId":"_recordId"}'),
        ("RecipientEmail", "Recipient Email", '{"ImportId":"recipientEmail"}'),
        ("DistributionChannel", "Distribution Channel", '{"ImportId":"distributionChannel"}'),
        ("UserLanguage", "User Language", '{"ImportId":"userLanguage"}'),
    ]
    items = list(instrument.items)
    header = [m[0] for m in meta] + [ids[i] for i in items] + ["EmployeeKey", "DeptCode"]
    text_row = [m[1] for m in meta]
    text_row += [f"{scales[i].name} - {QUESTION_TEXT.get(i, i)}" for i in items]
    text_row += ["EmployeeKey", "DeptCode"]
    import_row = [m[2] for m in meta]
    import_row += [
        json.dumps({"ImportId": f"QID{ids[i][1:]}"}, separators=(",", ":")) for i in items
    ]
    import_row += ['{"ImportId":"EmployeeKey"}', '{"ImportId":"DeptCode"}']
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
    files = {}
    previous = None
    for wave in waves:
        part = survey[survey["wave"] == wave]
        gap = (wave - previous).days - 1 if previous is not None else FIELD_DAYS
        previous = wave
        field_days = max(0, min(FIELD_DAYS, gap))
        rows = []
        records = part.to_dict("records")
        for record in records:
            rows.append(_survey_row(record, wave, field_days, items, scales, rng, alphabet))
        n_partial = int(round(PARTIAL_SHARE * len(part)))
        chosen = rng.choice(len(part), size=min(n_partial, len(part)), replace=False)
        for index in sorted(chosen, reverse=True):
            record = records[index]
            partial = _survey_row(record, wave, field_days, items, scales, rng, alphabet)
            answered = int(rng.integers(1, max(2, len(items) // 2)))
            start = len(meta)
            for k in range(start + answered, start + len(items)):
                partial[k] = ""
            partial[3] = str(int(round(100 * answered / len(items))))
            partial[5] = "False"
            # a started-then-abandoned response sits before the completed one
            rows.insert(int(rng.integers(0, index + 1)), partial)
        files[names[wave]] = _csv_text([header, text_row, import_row, *rows])
    return files


def _survey_row(record, wave, field_days, items, scales, rng, alphabet) -> list[str]:
    day = wave - pd.Timedelta(days=int(rng.integers(0, field_days + 1)))
    seconds = int(rng.integers(7 * 3600, 21 * 3600))
    recorded = day + pd.Timedelta(seconds=seconds)
    duration = int(rng.integers(120, 1500))
    started = recorded - pd.Timedelta(seconds=duration)
    answers = []
    for item in items:
        value = record[item]
        if value is None or value is pd.NA or pd.isna(value):
            answers.append("")
        elif _labelled(scales[item].low, scales[item].high):
            answers.append(AGREE5[int(value) - 1])
        else:
            answers.append(str(int(value)))
    stamp = "%Y-%m-%d %H:%M:%S"
    return [
        started.strftime(stamp),
        recorded.strftime(stamp),
        "IP Address",
        "100",
        str(duration),
        "True",
        recorded.strftime(stamp),
        "R_" + "".join(rng.choice(alphabet, size=15)),
        email_of(str(record["respondent_id"])),
        "email",
        "EN-GB",
        *answers,
        str(record["respondent_id"]),
        str(record["unit_id"]),
    ]


def org_export(dataset: Dataset) -> str:
    """The HR org table: ``Dept Code, Dept Name, Region, Front Line`` (Y/N).

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    str
        CSV text.
    """
    units = dataset.units
    rows = [["Dept Code", "Dept Name", "Region", "Front Line"]]
    for record in units.itertuples(index=False):
        facing = record.customer_facing
        flag = "" if facing is pd.NA or facing is None else ("Y" if bool(facing) else "N")
        rows.append(
            [
                _cell(record.unit_id),
                _cell(getattr(record, "unit_name", "")),
                _cell(getattr(record, "region", "")),
                flag,
            ]
        )
    return _csv_text(rows)


def nps_export(dataset: Dataset, rng: np.random.Generator) -> str:
    """The CX platform's NPS export, with ISO 8601 timestamps (``Z`` or ``+01:00``).

    Parameters
    ----------
    dataset : Dataset
    rng : numpy.random.Generator
        Draws the time of day and the offset.

    Returns
    -------
    str
        CSV text: ``Response ID, Survey, Account, Branch, Recorded Date, NPS, CES``.
    """
    nps = dataset.customer_nps
    n = len(nps)
    seconds = rng.integers(8 * 3600, 20 * 3600, size=n)
    summer = rng.random(n) < 0.5
    rows = [["Response ID", "Survey", "Account", "Branch", "Recorded Date", "NPS", "CES"]]
    has_effort = "effort" in nps.columns
    for i, record in enumerate(nps.itertuples(index=False)):
        moment = record.responded_on + pd.Timedelta(seconds=int(seconds[i]))
        # the calendar date is the one written, in its own offset
        zone = "+01:00" if summer[i] else "Z"
        rows.append(
            [
                _cell(record.response_id),
                "Relationship NPS",
                _cell(record.customer_id),
                _cell(record.unit_id),
                moment.strftime("%Y-%m-%dT%H:%M:%S") + zone,
                _cell(record.likelihood_to_recommend),
                _cell(record.effort) if has_effort else "",
            ]
        )
    return _csv_text(rows)


def crm_export(dataset: Dataset) -> str:
    """The CRM extract: ``Account, Branch, Opened, Closed`` (closed as a midnight timestamp).

    Parameters
    ----------
    dataset : Dataset

    Returns
    -------
    str
        CSV text.
    """
    rows = [["Account", "Branch", "Opened", "Closed"]]
    for record in dataset.customers.itertuples(index=False):
        closed = record.churned_on
        rows.append(
            [
                _cell(record.customer_id),
                _cell(record.unit_id),
                record.since.date().isoformat(),
                "" if pd.isna(closed) else closed.strftime("%Y-%m-%d 00:00:00"),
            ]
        )
    return _csv_text(rows)


def headcount_export(headcount: pd.DataFrame) -> str:
    """The HR system's invitation counts: ``Dept Code, Survey Close, Invited``.

    Parameters
    ----------
    headcount : DataFrame
        The dataset's optional ``headcount`` table.

    Returns
    -------
    str
        CSV text.
    """
    rows = [["Dept Code", "Survey Close", "Invited"]]
    for record in headcount.to_dict("records"):
        rows.append([_cell(record["unit_id"]), _cell(record["wave"]), _cell(record["headcount"])])
    return _csv_text(rows)


#: Raw headers of the internal-service survey's columns (the points of connection as labels).
SERVICE_HEADERS = {
    "poc_listening": "Listens",
    "poc_valued": "Makes me feel valued",
    "poc_resolution": "Resolves my problems",
    "poc_honesty": "Is honest with me",
    "poc_reliability": "Does what it says",
    "poc_authenticity": "Treats me as a person",
    "internal_nps": "Recommend this team",
}


def internal_service_export(service: pd.DataFrame, rng: np.random.Generator) -> str:
    """The internal-service survey: who rated which team, when, and how (labels, 0–10).

    Parameters
    ----------
    service : DataFrame
        The dataset's optional ``internal_service`` table.
    rng : numpy.random.Generator
        Draws each rating's time within the wave's last ``FIELD_DAYS`` days.

    Returns
    -------
    str
        CSV text: ``EmployeeKey, Rater Dept, Rated Team, RecordedDate``, then one column per
        ``SERVICE_HEADERS`` entry the table has.
    """
    columns = [c for c in SERVICE_HEADERS if c in service.columns]
    rows = [
        ["EmployeeKey", "Rater Dept", "Rated Team", "RecordedDate"]
        + [SERVICE_HEADERS[c] for c in columns]
    ]
    for record in service.to_dict("records"):
        day = record["wave"] - pd.Timedelta(days=int(rng.integers(0, FIELD_DAYS + 1)))
        moment = day + pd.Timedelta(seconds=int(rng.integers(8 * 3600, 18 * 3600)))
        answers = []
        for column in columns:
            value = record[column]
            if value is None or value is pd.NA or pd.isna(value):
                answers.append("")
            elif column == "internal_nps":
                answers.append(str(int(value)))
            else:
                answers.append(AGREE5[int(value) - 1])
        rows.append(
            [
                _cell(record["respondent_id"]),
                _cell(record["rater_unit_id"]),
                _cell(record["provider_unit_id"]),
                moment.strftime("%Y-%m-%d %H:%M:%S"),
                *answers,
            ]
        )
    return _csv_text(rows)


def _optional_tables_text(dataset: Dataset) -> str:
    """The mapping's entries for the optional tables the dataset holds."""
    text = ""
    if getattr(dataset, "headcount", None) is not None:
        text += """
  # The HR system's count of staff invited to each wave (response rates).
  headcount:
    file: hr_headcount.csv
    columns: {unit_id: Dept Code, wave: Survey Close, headcount: Invited}
"""
    service = getattr(dataset, "internal_service", None)
    if service is not None:
        columns = [c for c in SERVICE_HEADERS if c in service.columns]
        mapped = "\n".join(f"      {c}: {SERVICE_HEADERS[c]}" for c in columns)
        labelled = "\n".join(f"      {c}: agree5" for c in columns if c != "internal_nps")
        text += f"""
  # Staff rating the internal teams they depend on; each rating dated by its timestamp.
  internal_service:
    file: internal_service.csv
    columns:
      respondent_id: EmployeeKey
      rater_unit_id: Rater Dept
      provider_unit_id: Rated Team
      wave: {{from: RecordedDate}}
{mapped}
    labels:
{labelled}
"""
    return text


def mapping_text(dataset: Dataset, has_instrument: bool) -> str:
    """The commented ``mapping.yaml`` that imports the exports ``write_raw_exports`` writes.

    Parameters
    ----------
    dataset : Dataset
    has_instrument : bool
        Whether an ``instrument.yaml`` is written beside it (a non-default instrument).

    Returns
    -------
    str
        YAML text.
    """
    instrument = dataset.instrument
    ids = question_ids(instrument)
    scales = {item: s for s in instrument.scales for item in s.items}
    waves = sorted(
        pd.Timestamp(w).date().isoformat() for w in dataset.employee_survey["wave"].unique()
    )
    items = "\n".join(f"      {item}: {ids[item]}" for item in instrument.items)
    labelled = [i for i in instrument.items if _labelled(scales[i].low, scales[i].high)]
    labels = "\n".join(f"      {item}: agree5" for item in labelled)
    agree = ", ".join(f"{label}: {code}" for code, label in enumerate(AGREE5, start=1))
    effort = "\n      effort: CES" if "effort" in dataset.customer_nps.columns else ""
    instrument_line = (
        "instrument: instrument.yaml        # which survey items form which scale\n"
        if has_instrument
        else ""
    )
    return f"""\
# How the raw exports in this folder become an Inside Out dataset. Import them with
#   python -m analysis import data/examples/raw --mapping data/examples/raw/mapping.yaml --out DIR
# or  make import RAW=data/examples/raw MAPPING=data/examples/raw/mapping.yaml OUT=DIR
# Rerun the same mapping on next quarter's exports; the data contract (data/README.md) says
# what each table and column means.
version: 1

# Close dates of the survey waves. Each survey answer belongs to the first close date on or
# after the day it was recorded; an answer recorded after the last one is dropped and counted.
waves: [{", ".join(waves)}]

# Answer labels as the survey platform exports them, and the codes the analysis uses.
# Matched after trimming spaces, ignoring upper and lower case.
label_sets:
  agree5: {{{agree}}}

# Identifiers replaced by a keyed hash (HMAC-SHA256) when the variable INSIDE_OUT_ID_KEY
# holds a secret: the same person gets the same pseudonym in every file and wave. Keep the key
# outside the dataset, and the same key for every import you want to link.
pseudonymise: [respondent_id, customer_id]
{instrument_line}
tables:
  # The HR system's org table: one row per department.
  units:
    file: org_units.csv
    columns:
      unit_id: Dept Code         # kept as text, so 0001 stays 0001
      unit_name: Dept Name
      region: Region
      customer_facing: Front Line
    values:
      customer_facing: {{Y: true, N: false}}

  # One Qualtrics export per wave ("choice text" answers, three header rows), stacked.
  employee_survey:
    file: engagement_*.csv
    layout: qualtrics
    keep: {{Finished: ["1", "True"]}}   # partial responses (Finished False) are dropped
    columns:
      respondent_id: EmployeeKey     # the HR key; RecipientEmail is never imported
      unit_id: DeptCode
      wave: {{from: RecordedDate}}
{items}
    labels:                          # 1-5 items come as labels; 0-10 and 1-7 as numbers
{labels}

  # The CX platform's relationship-NPS export; timestamps become calendar dates.
  customer_nps:
    file: cx/nps_export.csv
    columns:
      response_id: Response ID
      customer_id: Account
      unit_id: Branch
      responded_on: Recorded Date
      likelihood_to_recommend: NPS{effort}

  # The CRM extract: when each account opened and, if it did, closed.
  customers:
    file: crm_accounts.csv
    columns:
      customer_id: Account
      unit_id: Branch
      since: Opened
      churned_on: Closed
""" + _optional_tables_text(dataset)


def raw_export_files(dataset: Dataset, seed: int = SEED) -> dict[str, str]:
    """Every file of the worked example, by path relative to the output folder.

    Parameters
    ----------
    dataset : Dataset
        A validated dataset, e.g. ``load_dataset("data/sample")``.
    seed : int
        Seeds the timestamps, response ids and partial responses: the same seed gives the same
        bytes.

    Returns
    -------
    dict of str to str
        Relative path -> text.
    """
    from analysis.data.contract import DEFAULT_INSTRUMENT

    rng = np.random.default_rng(seed)
    files = survey_exports(dataset, rng)
    files["org_units.csv"] = org_export(dataset)
    files["cx/nps_export.csv"] = nps_export(dataset, rng)
    files["crm_accounts.csv"] = crm_export(dataset)
    if getattr(dataset, "headcount", None) is not None:
        files["hr_headcount.csv"] = headcount_export(dataset.headcount)
    if getattr(dataset, "internal_service", None) is not None:
        files["internal_service.csv"] = internal_service_export(dataset.internal_service, rng)
    has_instrument = dataset.instrument != DEFAULT_INSTRUMENT
    if has_instrument and dataset.files:
        source = Path(next(iter(dataset.files.values()))).parent / INSTRUMENT_FILE
        if source.is_file():
            files[INSTRUMENT_FILE] = source.read_text(encoding="utf-8")
        else:
            has_instrument = False
    files["mapping.yaml"] = mapping_text(dataset, has_instrument)
    return files


def write_raw_exports(data: Path | str, out: Path | str, seed: int = SEED) -> Path:
    """Write the worked example's raw exports of the dataset ``data`` to ``out``, atomically.

    Parameters
    ----------
    data : Path or str
        The dataset to export (validated first).
    out : Path or str
        The folder to write: new, empty, or one this function wrote before.
    seed : int
        See :func:`raw_export_files`.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    analysis.data.load.DatasetError
        If ``data`` does not follow the data contract.
    analysis.data.folders.OutputError
        If ``out`` may not be written.
    """
    from analysis.data import folders
    from analysis.data.load import load_dataset

    target = folders.check_replaceable(out, KIND, inputs=[data])
    dataset = load_dataset(data)
    files = raw_export_files(dataset, seed)
    if dataset.synthetic:
        files[SYNTHETIC_FILE] = (Path(data) / SYNTHETIC_FILE).read_text(encoding="utf-8")
    with folders.writing(target.parent):
        staging = folders.new_staging(target)
        try:
            for name, text in files.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8", newline="")
            top = sorted({name.split("/")[0] for name in files})
            folders.write_marker(staging, KIND, top)
            folders.replace_folder(staging, target)
        except BaseException:
            folders.discard(staging)
            raise
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.data.raw_exports --data DIR --out DIR``; exit status as the CLI's.

    Parameters
    ----------
    argv : list of str, optional
        The arguments; ``sys.argv[1:]`` when not given.

    Returns
    -------
    int
        0 on success, 2 for an invalid dataset or a refused output folder, 3 for a disk error.
    """
    from analysis.data.folders import OutputError, StorageError
    from analysis.data.load import DatasetError

    parser = argparse.ArgumentParser(
        prog="python -m analysis.data.raw_exports",
        description="Write a dataset back as the raw exports real data arrives as (Qualtrics "
        "survey per wave, HR org table, CX NPS export, CRM extract) with the mapping.yaml "
        "that imports them: python -m analysis import OUT --mapping OUT/mapping.yaml --out DIR.",
    )
    parser.add_argument("--data", type=Path, default=Path("data/sample"), help="dataset to export")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder to write (new or the kit's)"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed of timestamps and ids")
    args = parser.parse_args(argv)
    try:
        written = write_raw_exports(args.data, args.out, args.seed)
    except (DatasetError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StorageError as error:
        print(f"error: {error.strerror}", file=sys.stderr)
        return 3
    print(f"Wrote raw exports of {args.data} to {written} (import: see {written}/mapping.yaml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
