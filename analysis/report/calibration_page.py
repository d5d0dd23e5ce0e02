"""The calibration study's page: its tables and sentences, from the study's summary tables.

The study itself (``analysis.studies.calibration``) simulates and summarises; this module only
turns its ``summary``, ``conditions`` and power tables into words and display tables, so the
report layer never imports the study. Labels of the estimands come from the registry
(``analysis.models.registry``); the study's own naive estimands are named by the ``labels``
mapping the page passes (``analysis.studies.calibration.LABELS``).

Every rate is shown with its Wilson 95% Monte-Carlo band (Morris, White & Crowther, 2019); the
band a perfectly calibrated false-positive rate falls in is ``α ± 1.96 √(α (1 − α) / R)``.

References
----------
Morris, T. P., White, I. R. & Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. *Statistics in Medicine*, 38(11), 2074–2102.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from analysis.report.sentences import html_table

#: The false-positive rate every test promises, used when the page is given no other.
NOMINAL_ALPHA = 0.05
_COUNT_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _registry_labels() -> dict[str, str]:
    from analysis.models import registry

    return {e.name: e.label for e in registry.ESTIMANDS}


def _labelled(estimands: pd.Series, labels: Mapping[str, str] | None) -> pd.Series:
    """Each estimand's label: ``labels``, then the registry's, then its own name."""
    known = {**_registry_labels(), **(labels or {})}
    return estimands.map(known).fillna(estimands)


def _label(estimand: str, labels: Mapping[str, str] | None) -> str:
    return _labelled(pd.Series([estimand]), labels).iloc[0]


#: What an estimand whose false-positive rate or coverage missed its band is labelled with
#: (``analysis.studies.calibration.exploratory_estimands``): shown, never hidden.
EXPLORATORY = " (exploratory)"


def _shown_labels(rows: pd.DataFrame, labels: Mapping[str, str] | None) -> pd.Series:
    """Each row's estimand label, with ``EXPLORATORY`` where the summary marks it so."""
    shown = _labelled(rows["estimand"], labels)
    if "exploratory" in rows:
        marked = rows["exploratory"].fillna(False).astype(bool)
        shown = shown.where(~marked, shown + EXPLORATORY)
    return shown


def exploratory_sentence(summary: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Which estimands the page labels exploratory, and why; empty when none is.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise`` (its ``exploratory`` column).
    labels : Mapping of str to str, optional
        As for :func:`rates_table_html`.

    Returns
    -------
    str
    """
    if "exploratory" not in summary:
        return ""
    marked = summary.loc[summary["exploratory"].fillna(False).astype(bool), "estimand"]
    names = list(dict.fromkeys(marked))
    if not names:
        return (
            "Every estimand kept its false-positive rate and its coverage within their "
            "Monte-Carlo bands."
        )
    listed = "; ".join(_label(n, labels) for n in names)
    return (
        f"Labelled exploratory: {listed}. In at least one condition its false-positive rate "
        "or the coverage of its interval missed the Monte-Carlo band of the promised rate, so "
        "its p-values and intervals are not to be taken at face value; it is shown, not hidden."
    )


def _percent(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.1f}%"


def _band(low: float, high: float) -> str:
    return "–" if pd.isna(low) else f"{100 * low:.1f}–{100 * high:.1f}%"


def rates_table_html(
    summary: pd.DataFrame, measure: str = "rejection", labels: Mapping[str, str] | None = None
) -> str:
    """Rates with their Wilson 95% Monte-Carlo band, one row per condition and estimand.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``, or some of its rows.
    measure : {"rejection", "coverage"}
    labels : Mapping of str to str, optional
        Labels of estimands the registry does not hold (the naive analysis).

    Returns
    -------
    str
        An escaped HTML table: condition, estimand, replicates, rate, band, verdict.
    """
    rate = "rejection_rate" if measure == "rejection" else "coverage"
    rows = summary.dropna(subset=[rate])
    shown = pd.DataFrame(
        {
            "Condition": rows["label"],
            "Estimand": _shown_labels(rows, labels),
            "Replicates": rows["replicates"],
            "Rate": rows[rate].map(_percent),
            "Monte-Carlo 95% band": [
                _band(lo, hi)
                for lo, hi in zip(rows[f"{measure}_low"], rows[f"{measure}_high"], strict=True)
            ],
            "Verdict": rows[f"{measure}_verdict"],
        }
    )
    return html_table(shown)


def reverse_table_html(
    summary: pd.DataFrame, labels: Mapping[str, str] | None = None, role: str = "reverse"
) -> str:
    """Under reverse causation: what each estimand reports, against a true forward effect of 0.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``; its rows of ``role`` are shown.
    labels : Mapping of str to str, optional
        As for :func:`rates_table_html`.
    role : str
        ``reverse`` (customers drive engagement) or ``confounded`` (a unit trait drives both
        the internal service received and NPS; the truth is the causal effect).

    Returns
    -------
    str
        An escaped HTML table: truth, mean estimate, bias ± its Monte-Carlo SE (on the log
        scale for ratios), share called significant and its band.
    """
    rows = summary[summary["role"] == role]
    shown = pd.DataFrame(
        {
            "Estimand": _shown_labels(rows, labels),
            "True causal value": rows["truth"].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}"),
            "Mean estimate": rows["mean_estimate"].map("{:.2f}".format),
            "Bias ± MC SE (log scale for ratios)": [
                "–" if pd.isna(b) else f"{b:+.2f} ± {s:.2f}"
                for b, s in zip(rows["bias"], rows["bias_mc_se"], strict=True)
            ],
            "Share called significant": rows["rejection_rate"].map(_percent),
            "Monte-Carlo 95% band": [
                _band(lo, hi)
                for lo, hi in zip(rows["rejection_low"], rows["rejection_high"], strict=True)
            ],
        }
    )
    return html_table(shown)


def false_positive_sentence(
    summary: pd.DataFrame,
    ours: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    alpha: float = NOMINAL_ALPHA,
) -> str:
    """The headline: our false-positive rates against the naive analysis's, with bands.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``; its ``no_effect`` rows are read.
    ours : sequence of str, optional
        The estimands the sentence speaks for ("our models"); every one that is not naive when
        not given.
    labels : Mapping of str to str, optional
        As for :func:`rates_table_html`.
    alpha : float
        The promised false-positive rate.

    Returns
    -------
    str
        The range of our rates, how many are within their band of ``alpha``, which are liberal
        and by how much their model SE falls short of the empirical SE
        (``1 − mean_model_se / empirical_se``), and the naive analysis's worst rate as a
        multiple of ``alpha``.
    """
    null = summary[summary["role"] == "no_effect"]
    mine = null[~null["naive"]] if ours is None else null[null["estimand"].isin(ours)]
    naive = null[null["naive"]]
    if mine.empty:
        return "No condition without an effect was run."
    models = mine["estimand"].nunique()
    count = _COUNT_WORDS[models] if models < len(_COUNT_WORDS) else str(models)
    subject = f"our {count} model{'s' if models != 1 else ''}"
    calibrated = int((mine["rejection_verdict"] == "calibrated").sum())
    promised = f"{100 * alpha:g}%"
    worst_naive = naive.loc[naive["rejection_rate"].idxmax()] if not naive.empty else None
    text = (
        f"In studies where engagement has no effect at all, {subject} called an "
        f"effect significant in {_percent(mine['rejection_rate'].min())} to "
        f"{_percent(mine['rejection_rate'].max())} of {int(mine['replicates'].min())} "
        f"simulated studies each, against the promised {promised}; "
        f"{calibrated} of {len(mine)} model-and-condition rates are within their Monte-Carlo "
        f"band of {promised}."
    )
    liberal = mine[mine["rejection_verdict"] == "liberal"]
    if len(liberal):
        text += (
            " Slightly too many false alarms: "
            + "; ".join(
                f"{_label(row['estimand'], labels)} in '{row['label']}', "
                f"{_percent(row['rejection_rate'])} (band "
                f"{_band(row['rejection_low'], row['rejection_high'])}; its standard errors "
                f"are {100 * (1 - row['mean_model_se'] / row['empirical_se']):.0f}% smaller "
                f"than the estimates' actual spread)"
                for _, row in liberal.iterrows()
            )
            + "."
        )
    if worst_naive is not None:
        text += (
            f" The naive spreadsheet analysis called an effect significant in up to "
            f"{_percent(worst_naive['rejection_rate'])} "
            f"(band {_band(worst_naive['rejection_low'], worst_naive['rejection_high'])}) of the "
            f"same studies, {worst_naive['rejection_rate'] / alpha:.1f} times the "
            f"promised rate."
        )
    return text


def coverage_sentence(summary: pd.DataFrame) -> str:
    """How often our intervals, and the naive analysis's, contained the true effect.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``; its ``effect`` rows with a coverage.

    Returns
    -------
    str
    """
    rows = summary[(summary["role"] == "effect") & summary["coverage"].notna()]
    mine = rows[~rows["naive"]]
    naive = rows[rows["naive"]]
    if mine.empty:
        return "No effect condition was run."
    text = (
        f"Where the effects are real, our 95% intervals contained the true effect in "
        f"{_percent(mine['coverage'].min())} to {_percent(mine['coverage'].max())} of studies."
    )
    if not naive.empty:
        text += (
            f" The naive analysis's intervals contained it in "
            f"{_percent(naive['coverage'].iloc[0])}: without the lag and the correction for "
            f"noisy small units its estimate is both biased and overconfident."
        )
    return text


def reverse_sentence(summary: pd.DataFrame) -> str:
    """What the forward model and the reverse check report when customers drive engagement.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``; its ``reverse`` rows.

    Returns
    -------
    str
    """
    rows = summary[summary["role"] == "reverse"].set_index("estimand")
    if "engagement_on_prior_nps" not in rows.index or "nps_on_engagement" not in rows.index:
        return "No reverse-causation condition was run."
    forward, check = rows.loc["nps_on_engagement"], rows.loc["engagement_on_prior_nps"]
    return (
        f"When customers' experience drives staff engagement and engagement has no effect on "
        f"customers, the forward model still reports {forward['mean_estimate']:+.1f} NPS points "
        f"per SD on average and calls it significant in {_percent(forward['rejection_rate'])} of "
        f"studies: a lagged association alone cannot prove cause. The reverse check flags the "
        f"problem in {_percent(check['rejection_rate'])} of the same studies "
        f"(band {_band(check['rejection_low'], check['rejection_high'])}), which is why the "
        f"report always reads the two together."
    )


def confounded_sentence(summary: pd.DataFrame) -> str:
    """What the chain's estimands report when a unit trait drives service and NPS together.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``; its ``confounded`` rows.

    Returns
    -------
    str
    """
    rows = summary[summary["role"] == "confounded"].set_index("estimand")
    between, within = "nps_on_internal_service", "nps_on_internal_service_within"
    if between not in rows.index or within not in rows.index:
        return "No confounded internal-service condition was run."
    b, w = rows.loc[between], rows.loc[within]
    return (
        f"When a stable trait of a unit both steers it toward good internal providers and "
        f"pleases its customers ({int(b['replicates'])} studies), the between-unit estimate of "
        f"NPS per SD of internal service averages {b['mean_estimate']:+.1f} points "
        f"(Monte-Carlo SE {b['bias_mc_se']:.1f}) against a true effect of {b['truth']:+.1f}, "
        f"and its interval covers the truth in {_percent(b['coverage'])} of studies (band "
        f"{_band(b['coverage_low'], b['coverage_high'])}); the within-unit estimate, which "
        f"compares each unit with itself, averages {w['mean_estimate']:+.1f} (Monte-Carlo SE "
        f"{w['bias_mc_se']:.1f}) and covers it in {_percent(w['coverage'])} (band "
        f"{_band(w['coverage_low'], w['coverage_high'])}). This is why the report calls the "
        f"between-unit links associations."
    )


def band_statement(replicates: int, band: tuple[float, float], alpha: float = NOMINAL_ALPHA) -> str:
    """What a perfectly calibrated false-positive rate looks like with this many replicates.

    Parameters
    ----------
    replicates : int
        ``R``, the replicates of a no-effect condition.
    band : tuple of float
        ``α ± 1.96 √(α (1 − α) / R)`` (``analysis.studies.calibration.nominal_band``).
    alpha : float

    Returns
    -------
    str
    """
    low, high = band
    promised = f"{100 * alpha:g}%"
    return (
        f"Every rate is shown with its Wilson 95% Monte-Carlo interval: the range the rate "
        f"could plausibly take if the study were rerun with other seeds. With {replicates} "
        f"replicates a perfectly calibrated test shows a false-positive rate between "
        f"{_percent(max(low, 0))} and {_percent(high)} 95% of the time "
        f"({promised} ± 1.96 · √({alpha:g} · {1 - alpha:g} / {replicates}))."
    )


def power_sentence(
    power: pd.DataFrame,
    estimand: str = "nps_on_engagement",
    labels: Mapping[str, str] | None = None,
) -> str:
    """Power of one estimand at the smallest and the largest design of the grid.

    Parameters
    ----------
    power : DataFrame
        ``analysis.studies.calibration.power_table``.
    estimand : str
    labels : Mapping of str to str, optional
        As for :func:`rates_table_html`.

    Returns
    -------
    str
    """
    rows = power[power["estimand"] == estimand].dropna(subset=["rejection_rate"])
    if rows.empty:
        return "No power grid was run."
    rows = rows.assign(size=rows["n_units"] * rows["n_waves"]).sort_values("size")
    small, large = rows.iloc[0], rows.iloc[-1]
    truth = float(large["truth"]) if "truth" in large.index else float("nan")
    # the v2 estimands' effects are the generator's, read from its truth.json
    effect = {
        "churn_hazard_on_engagement": "a churn hazard ratio of 0.88 per SD of engagement",
        "engagement_on_internal_service": f"{truth:.1f} engagement points per SD of internal "
        "service",
        "nps_on_internal_service": f"{truth:.1f} NPS points per SD of internal service",
        "nps_on_internal_service_within": f"{truth:.1f} NPS points per SD of internal service",
        "nps_via_engagement_share": f"{truth:.0%} of the service–NPS link through engagement",
        "brand_promise_on_brand_alignment": f"{truth:.1f} brand-promise points per SD of staff "
        "brand alignment",
    }.get(estimand, "4 NPS points per SD of engagement")
    return (
        f"{_label(estimand, labels)}: with the generator's default effect ({effect}), "
        f"it was detected in {_percent(small['rejection_rate'])} of studies with "
        f"{int(small['n_units'])} units and {int(small['n_waves'])} waves "
        f"(band {_band(small['rejection_low'], small['rejection_high'])}), and in "
        f"{_percent(large['rejection_rate'])} with {int(large['n_units'])} units and "
        f"{int(large['n_waves'])} waves (band "
        f"{_band(large['rejection_low'], large['rejection_high'])})."
    )


def conditions_table_html(conditions: pd.DataFrame) -> str:
    """The simulated conditions: design, effects and replicates.

    Parameters
    ----------
    conditions : DataFrame
        ``analysis.studies.calibration.conditions_table``.

    Returns
    -------
    str
        An escaped HTML table.
    """
    yes_no = {True: "yes", False: "no"}
    shown = pd.DataFrame(
        {
            "Condition": conditions["label"],
            "Units": conditions["n_units"],
            "Waves": conditions["n_waves"],
            "NPS effect (points per SD)": conditions["nps_effect"].map("{:.1f}".format),
            "Churn hazard ratio per SD": conditions["churn_hazard_ratio"].map("{:.2f}".format),
            "Regions confound": conditions["confounding"].map(yes_no),
            "Reverse causation": conditions["reverse_causation"].map(yes_no),
            **(
                {
                    "Internal service chain": conditions["internal_service"]
                    .fillna("")
                    .replace("", "–")
                }
                if "internal_service" in conditions
                else {}
            ),
            "Churn model fitted": conditions["churn_model"].map(yes_no),
            "Replicates": conditions["replicates"],
        }
    )
    return html_table(shown)
