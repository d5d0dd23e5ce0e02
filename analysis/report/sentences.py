"""Tidy tables into plain words and display tables for leadership.

Every sentence carries its number, its interval and its n, so the report never states a finding
without saying how sure we are and how much data it rests on.

Names from the data (units, regions, items) may contain any characters. They reach the page
escaped and with the Unicode bidirectional controls removed (``BIDI_CONTROLS``: an override
such as U+202E would otherwise reverse the text that follows it on the page), and they reach
figures literally (``figure_text``). ``analysis.report.build.render_page`` removes the same controls
from every finished page, so HTML made any other way (``DataFrame.to_html`` in a notebook,
Markdown, printed text) is covered too.
"""

from __future__ import annotations

import html

import matplotlib as mpl
import numpy as np
import pandas as pd

from analysis.measures import quality
from analysis.measures.internal import scale_label
from analysis.models import registry
from analysis.report import findings
from analysis.report.findings import level, signed  # the one way numbers are written

# Embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the left-to-right and
# right-to-left marks (U+200E, U+200F) and the Arabic letter mark (U+061C): invisible
# characters that reorder the text around them (the "Trojan Source" trick). Displayed names lose
# them; a name in a right-to-left script still reads correctly, as each sits in its own cell.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
_NO_BIDI = str.maketrans(dict.fromkeys(BIDI_CONTROLS))


def plain_text(text: object) -> str:
    """Text as it may be shown: a string without bidirectional controls (``None`` is empty)."""
    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return ""
    return str(text).translate(_NO_BIDI)


def html_table(table: pd.DataFrame, **options) -> str:
    """A display table as escaped HTML, names made safe: the one way tables reach the page.

    Every text cell and heading loses its bidirectional controls (``plain_text``) and is
    escaped; ``options`` go to ``DataFrame.to_html`` (``float_format`` for instance).
    """
    shown = table.copy()
    for column in shown.columns:
        values = shown[column]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            shown[column] = values.map(plain_text, na_action="ignore")
    shown.columns = [plain_text(c) for c in shown.columns]
    settings = {"index": False, "border": 0, "classes": "io-table", **options, "escape": True}
    return shown.to_html(**settings)


def interval(low: float, high: float, digits: int = 1) -> str:
    """An interval as words: ``+2.3 to +6.7``, each end signed as :func:`signed` signs it.

    Parameters
    ----------
    low, high : float
        The interval's ends.
    digits : int
        Decimals shown.

    Returns
    -------
    str
    """
    return f"{signed(low, digits)} to {signed(high, digits)}"


def quartile_table_html(table: pd.DataFrame, confidence: float = 0.95) -> str:
    """The quartile table as escaped HTML with readable headings."""
    shown = pd.DataFrame(
        {
            "Engagement quartile": table["label"],
            "Units": table["n_units"],
            "Unit-waves": table["n_unit_waves"],
            "Mean engagement index (0–100)": table["mean_engagement_index"].map("{:.1f}".format),
            "Customer answers (n)": table["n_responses"].map("{:,}".format),
            "NPS": table["nps"].map(signed),
            f"{level(confidence)} interval": [
                interval(lo, hi)
                for lo, hi in zip(table["conf_low"], table["conf_high"], strict=True)
            ],
        }
    )
    return html_table(shown)


def figure_text(values: pd.Series) -> pd.Series:
    """Names from the data made safe as figure labels: shown literally, never as mathtext.

    matplotlib reads text between two ``$`` as a formula, so a unit called ``Store $5 $\\frac$``
    would stop a figure from rendering (``ParseSyntaxException``) and with it the report. The
    house style (``figures.use_house_style``) turns formulas off altogether
    (``text.parse_math``), and the names are left as they are; without it, ``$`` is escaped
    as ``\\$``, which is drawn as a dollar sign. Bidirectional controls are removed.
    """
    text = values.map(plain_text, na_action="ignore").astype("string").fillna("")
    if mpl.rcParams["text.parse_math"]:
        text = text.str.replace("$", r"\$", regex=False)
    return text


def paragraph(text: str, css_class: str = "") -> str:
    """Escape text into an HTML paragraph (names in the data may contain any characters)."""
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{html.escape(plain_text(text))}</p>"


# --------------------------------------------------------------------------------------------
# The executive summary: one sentence per finding, from estimates.csv


def _get(estimates: pd.DataFrame, estimand: str) -> pd.Series | None:
    rows = estimates[estimates["estimand"] == estimand]
    if rows.empty or pd.isna(rows.iloc[0]["estimate"]):
        return None
    return rows.iloc[0]


def _significant(row: pd.Series, alpha: float) -> bool:
    p = row["p_adjusted"] if "p_adjusted" in row and pd.notna(row["p_adjusted"]) else row["p_value"]
    return bool(p < alpha)


def _ci(row: pd.Series, digits: int = 1, scale: float = 1.0) -> str:
    return interval(row["conf_low"] * scale, row["conf_high"] * scale, digits)


def _as_findings(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``findings.csv`` as given, or built from ``estimates.csv`` (``findings.findings_table``)."""
    if "verdict" in table.columns and "sentence" in table.columns:
        return table
    return findings.findings_table(table, alpha)


def headline_findings(estimates: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """The sentences of "What we found": the ``found`` rows of ``findings.csv``, in order.

    Parameters
    ----------
    estimates : DataFrame
        ``findings.csv`` (``analysis.report.findings.findings_table``), or ``estimates.csv``,
        from which it is built.
    alpha : float
        The family-wise error rate (only used to build the findings from estimates).

    Returns
    -------
    list of str
        One sentence per finding; each verdict decides its words
        (``analysis.report.findings.finding_sentence``): a finding without clear evidence
        starts "No clear evidence", and every sentence with numbers carries its interval and n.
    """
    table = _as_findings(estimates, alpha)
    return [str(s) for s in table.loc[table["section"] == "found", "sentence"]]


def causal_reading(estimates: pd.DataFrame, alpha: float = 0.05) -> str:
    """What the lag, within-unit and reverse-direction checks say about cause and effect.

    Parameters
    ----------
    estimates : DataFrame
        ``findings.csv``, or ``estimates.csv``, from which it is built.
    alpha : float
        The family-wise error rate (only used to build the findings from estimates).

    Returns
    -------
    str
        A paragraph built from the findings' verdicts and sentences. It speaks of an
        association only when a forward finding of "What we found" is ``evidence``
        (``findings.any_association``); the within-unit and reverse checks are the rows' own
        sentences, so the reverse check argues against the reverse direction only when its
        interval excludes ``findings.REVERSE_MEANINGFUL`` (``findings.reverse_ruled_out``).
    """
    table = _as_findings(estimates, alpha)
    forward = findings.verdict_of(table, "nps_on_engagement")
    if forward == findings.NOT_ESTIMABLE:
        return "The engagement–NPS link could not be estimated on these data."
    associated = findings.any_association(table)
    lead = table[(table["estimand"] == "nps_on_engagement")].iloc[0]
    parts = []
    if forward == findings.EVIDENCE and lead["estimate"] > 0:
        parts.append(
            "Engagement measured in a survey wave predicts customer NPS in the quarter that "
            "follows, so the timing fits engagement coming first."
        )
    elif forward == findings.EVIDENCE:
        parts.append(
            "Engagement measured in a survey wave predicts lower customer NPS in the quarter "
            "that follows, the opposite of the expected direction."
        )
    elif associated:
        parts.append(
            "Some of the findings above show an association, but the test of engagement "
            "predicting the next quarter's customer NPS found no clear evidence, so the "
            "timing does not show that engagement comes first."
        )
    else:
        parts.append(
            "We found no clear evidence that engagement is linked to customer NPS or to "
            "customers leaving, so there is no association here to read as cause and effect; "
            "the checks below are reported for completeness."
        )
    within = findings.verdict_of(table, "nps_on_engagement_within")
    if within != findings.NOT_ESTIMABLE:
        parts.append(findings.sentence_of(table, "nps_on_engagement_within"))
        if associated and within == findings.EVIDENCE:
            parts.append("So the link is not only that well-run units score high on both.")
        elif associated:
            parts.append("So part of the association may reflect stable differences between units.")
    reverse = findings.verdict_of(table, "engagement_on_prior_nps")
    if reverse != findings.NOT_ESTIMABLE:
        parts.append(findings.sentence_of(table, "engagement_on_prior_nps"))
        row = table[table["estimand"] == "engagement_on_prior_nps"].iloc[0]
        if reverse == findings.EVIDENCE and row["estimate"] > 0:
            parts.append(
                "The relationship runs from customers to staff too: customer experience may be "
                + (
                    "lifting staff as much as staff lift customers."
                    if forward == findings.EVIDENCE
                    else "lifting staff rather than the other way round."
                )
            )
    parts.append(
        "These are observational checks: they make a causal reading more or less "
        "plausible but cannot prove it; only a change made on purpose, such as a "
        "staggered internal-communication programme, could."
    )
    return " ".join(parts)


def power_sentence(estimates: pd.DataFrame) -> str | None:
    """The smallest effect the study could detect, and what a non-significant result means.

    Parameters
    ----------
    estimates : DataFrame
        ``estimates.csv``; its ``nps_on_engagement_mde`` row is read.

    Returns
    -------
    str or None
        ``None`` when the minimum detectable effect was not estimated.

    Notes
    -----
    The minimum detectable effect at 80% power and two-sided level α is
    ``(t_{1−α/2, df} + t_{0.80, df}) · SE`` with ``df`` the units − 1 (``analysis.models.power``).

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical
    power of experimental designs. *Evaluation Review*, 19(5), 547–556.
    """
    row = _get(estimates, "nps_on_engagement_mde")
    if row is None:
        return None
    return (
        f"With {int(row['n_units'])} units and these response numbers, the study had an 80% "
        f"chance of detecting an effect of {row['estimate']:.1f} NPS points per standard "
        "deviation of engagement or larger; smaller true effects could go unnoticed, so "
        '"no clear evidence" does not show that there is no effect.'
    )


#: The one sentence on every page that shows a Holm- or a BH-corrected result.
MULTIPLE_TESTING = (
    "Two corrections for testing many things at once are used, each where it fits: the "
    "headline questions use Holm's method, which keeps the chance of even one false finding "
    "among them at 5%, while the many cells of the heat map and the list of drivers use the "
    "Benjamini–Hochberg method, which keeps the expected share of false alarms among the cells "
    "flagged at 5%, a screen for where to look rather than a confirmation."
)

CAVEATS = (
    "Engagement is measured on the staff who answered; units where few answer carry less "
    "weight, and groups below the minimum size are never shown.",
    "Customer answers are linked to units by the unit that served them and by date; customers "
    "served by several units are counted with the unit on each answer.",
    "Effects are averages across units; individual units may differ.",
    "'Evidence' means that a finding holds after Holm's correction for the questions asked of "
    "the data and that its 95% interval excludes no effect; 'no clear evidence' means it does "
    "not, which is not proof that there is no effect.",
    MULTIPLE_TESTING,
)


def list_html(items: list[str], css_class: str = "") -> str:
    """Sentences as an HTML bullet list, each escaped and without bidirectional controls.

    Parameters
    ----------
    items : list of str
        The sentences.
    css_class : str
        The list's class (``io-note``, ``io-headline``), none when empty.

    Returns
    -------
    str
    """
    attribute = f' class="{css_class}"' if css_class else ""
    return (
        f"<ul{attribute}>"
        + "".join(f"<li>{html.escape(plain_text(i))}</li>" for i in items)
        + "</ul>"
    )


def in_sentence(label: str) -> str:
    """A label inside a sentence: its first letter lower-case, unless it starts an acronym."""
    if len(label) > 1 and label[1].isupper():
        return label
    return label[:1].lower() + label[1:]


def drivers_sentence(drivers: pd.DataFrame, link_found: bool | None = None) -> str:
    """Which internal measures carry weight for customer NPS: named only with evidence.

    Parameters
    ----------
    drivers : DataFrame
        ``drivers.csv``: ``term``, ``estimate``, ``share`` with ``share_conf_low`` and
        ``share_conf_high`` (percent), ``significant`` (Benjamini–Hochberg) and ``n_units``.
    link_found : bool, optional
        Whether the engagement–NPS finding has the verdict ``evidence``
        (``analysis.report.findings``). ``False``: no measure is named, as there is no
        evidence of a link to act on. ``None`` (not known): the drivers decide alone.

    Returns
    -------
    str
        The measures that stand out from chance after the Benjamini–Hochberg correction, the
        largest share first with its interval and n; when none does, or ``link_found`` is
        ``False``, a sentence that names none.

    Notes
    -----
    A measure's share is its relative weight (Johnson 2000) as a percentage of the NPS
    variance the measures explain together; "stands out" means its BH-adjusted p-value is
    below alpha.

    References
    ----------
    Johnson, J. W. (2000). A heuristic method for estimating the relative weight of predictor
    variables in multiple regression. *Multivariate Behavioral Research*, 35(1), 1–19.

    Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. *Journal of the
    Royal Statistical Society B*, 57(1), 289–300.
    """
    if drivers.empty:
        return "Driver importance could not be estimated on these data."
    units = int(drivers["n_units"].max())
    if link_found is False:
        return (
            "There is no clear evidence of a link between engagement and customer NPS in these "
            f"data ({units} units), so this page names no internal measure to act on for NPS; "
            "the engagement and NPS page shows each measure's estimated weight for reference."
        )
    table = drivers.sort_values("estimate", ascending=False)
    significant = table[table["significant"].astype(bool)]
    if significant.empty:
        return (
            "No internal measure stands out from chance as a driver of customer NPS after "
            f"correcting for testing several at once ({units} units), so these data do not "
            "point to one measure to act on."
        )
    top = significant.iloc[0]
    share, low, high = top["share"], top["share_conf_low"], top["share_conf_high"]
    label = in_sentence(scale_label(top["term"]))
    names = [in_sentence(scale_label(t)) for t in significant["term"]]
    return (
        f"Of the internal measures, {label} accounts for the largest share of the "
        f"differences in unit NPS that the measures explain together ({share:.0f}%, 95% CI "
        f"{low:.0f}% to {high:.0f}%; {int(top['n_units'])} units). Measures that stand out "
        f"from chance after correcting for testing several at once: {', '.join(names)}. "
        "Measures that move together share credit; treat this as where to look, not as proof "
        "of what works."
    )


def estimates_table_html(estimates: pd.DataFrame, alpha: float = 0.05) -> str:
    """Every estimand as a readable row: estimate, interval, p (Holm) and n."""
    labels = registry.labels()
    rows = estimates[estimates["estimand"].isin(labels)]
    shown = pd.DataFrame(
        {
            "Question": [labels[e][0] for e in rows["estimand"]],
            "Estimate": rows["estimate"].map("{:.2f}".format),
            f"{level(1 - alpha)} interval": [
                # Fieller's interval of a share of a link that may be zero is unbounded
                "unbounded" if np.isinf(lo) or np.isinf(hi) else f"{lo:.2f} to {hi:.2f}"
                for lo, hi in zip(rows["conf_low"], rows["conf_high"], strict=True)
            ],
            "p (Holm)": rows["p_adjusted"].map(lambda p: "<0.001" if p < 0.001 else f"{p:.3f}"),
            "Units": rows["n_units"].astype(int),
            "n": rows["n_obs"].map("{:,}".format),
            "Method": rows["method"],
        }
    )
    return html_table(shown)


def _number(value: float, kind: str) -> str:
    if pd.isna(value):
        return ""
    if kind == "share":
        return f"{100 * value:.1f}%"
    if kind == "mean":
        return f"{value:.1f}"
    return f"{int(value):,}"


def coverage_table_html(coverage: pd.DataFrame) -> str:
    """``measures.quality.coverage`` as a readable table: value, interval (shares), n, note."""
    shown = pd.DataFrame(
        {
            "Measure": coverage["label"],
            "Value": [
                _number(v, k) for v, k in zip(coverage["value"], coverage["kind"], strict=True)
            ],
            "95% interval": [
                f"{_number(lo, k)} to {_number(hi, k)}" if pd.notna(lo) else ""
                for lo, hi, k in zip(
                    coverage["conf_low"], coverage["conf_high"], coverage["kind"], strict=True
                )
            ],
            "n": coverage["n"].map(lambda n: f"{int(n):,}" if pd.notna(n) else ""),
            "Note": coverage["note"].fillna(""),
        }
    )
    return html_table(shown)


def reliability_table_html(reliability: pd.DataFrame) -> str:
    """``measures.internal.scale_reliability`` for leadership: alpha, ICCs, agreement, verdict."""

    def pair(value: float, low: float, high: float) -> str:
        return "" if pd.isna(value) else f"{value:.2f} ({low:.2f} to {high:.2f})"

    shown = pd.DataFrame(
        {
            "Scale": reliability["label"],
            "Items": reliability["n_items"],
            "Cronbach's alpha (95% CI)": [
                pair(*r)
                for r in zip(
                    reliability["alpha"],
                    reliability["alpha_conf_low"],
                    reliability["alpha_conf_high"],
                    strict=True,
                )
            ],
            "ICC(1) (95% CI)": [
                pair(*r)
                for r in zip(
                    reliability["icc1"],
                    reliability["icc1_conf_low"],
                    reliability["icc1_conf_high"],
                    strict=True,
                )
            ],
            "ICC(2)": reliability["icc2"].map(lambda v: f"{v:.2f}"),
            "Median r_wg": reliability["median_rwg"].map(lambda v: f"{v:.2f}"),
            "Responses": reliability["n_responses"].map("{:,}".format),
            "Verdict": reliability["verdict"],
        }
    )
    return html_table(shown)


# --------------------------------------------------------------------------------------------
# Findings that rest on one unit (analysis.models.estimate.one_unit_fragility)

FRAGILITY_SUBJECTS = {e.name: e.subject for e in registry.ESTIMANDS if e.tested}
NO_FRAGILE_FINDING = (
    "No finding changes its significance or its direction when any single unit is left out."
)


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def fragility_sentences(estimates: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One sentence per finding that leaving out a single unit would change; no unit is named.

    Reads ``fragile_to_one_unit``, ``n_units_flip_significance`` and ``n_units_flip_sign`` of
    ``estimates.csv``; an empty list when the columns are absent or nothing is fragile. The
    unit is never named, shown or suppressed: a sentence naming a hidden unit would say that
    its answers drive a headline.
    """
    if "fragile_to_one_unit" not in estimates:
        return []
    sentences = []
    for _, row in estimates.iterrows():
        subject = FRAGILITY_SUBJECTS.get(row["estimand"])
        if subject is None or not _flag(row["fragile_to_one_unit"]):
            continue
        significance = int(row.get("n_units_flip_significance", 0) or 0)
        sign = int(row.get("n_units_flip_sign", 0) or 0)
        significant = _significant(row, alpha)
        if significance:
            which = "a single unit" if significance == 1 else f"any one of {significance} units"
            if significant:
                without = "it" if significance == 1 else "any one of them"
                sentences.append(
                    f"{subject} rests on {which}: without {without}, it would not be significant."
                )
            else:
                sentences.append(
                    f"{subject} is not significant, but leaving out {which} would make it so: "
                    "treat it as unsettled either way."
                )
        if sign and significant:
            which = "a single unit" if sign == 1 else f"any one of {sign} units"
            without = "it" if sign == 1 else "any one of them"
            sentences.append(
                f"The direction of {subject[0].lower()}{subject[1:]} rests on {which}: "
                f"without {without}, the estimate would change sign."
            )
    return sentences


def release_noise_sentence(epsilon: float, min_group_size: int) -> str:
    """What the release noise on unit × wave figures means, in points, for two group sizes.

    The noise on a 0–100 average of ``n`` answers is Laplace with scale ``100 / (n ε)``, so its
    standard deviation is ``√2 · 100 / (n ε)`` (``analysis.measures.privacy``).
    """
    sizes = sorted({min_group_size, max(4 * min_group_size, 20)})
    spreads = [f"about ±{2**0.5 * 100 / (n * epsilon):.0f} points for {n}" for n in sizes]
    return (
        "Each unit's engagement in each wave is published with random noise, so that no "
        "one's answers can be worked out by comparing two reports (differential privacy, "
        f"ε = {epsilon:g}): one standard deviation of noise is {' and '.join(spreads)} "
        "respondents. Intervals, the tests of each cell and the shrunken ranking include it."
    )


_NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def points_of_connection_title(scorecard: pd.DataFrame) -> str:
    """The title of the points-of-connection chart, counting the instrument's own items.

    Parameters
    ----------
    scorecard : DataFrame
        ``organisation_figures(...)["scorecard"]``: one row per item.

    Returns
    -------
    str
        ``"The six points of connection (0–100, with 95% intervals)"`` for the default
        instrument; the count follows the items the instrument lists.
    """
    count = len(scorecard)
    words = _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else f"{count:,}"
    what = "point of connection" if count == 1 else "points of connection"
    return f"The {words} {what} (0–100, with 95% intervals)"


def _easy_answers(low: float, high: float, threshold: float) -> str:
    """Which answers count as easy, in words: ``6 or 7``, ``7``, ``5.5 or more``."""
    if float(threshold).is_integer() and high - threshold == 1:
        return f"{threshold:g} or {high:g}"
    if threshold >= high:
        return f"{high:g}"
    return f"{threshold:g} or more"


def employee_figures_html(org: dict) -> str:
    """Employee effort and eNPS across the organisation, one paragraph each, as HTML.

    Parameters
    ----------
    org : dict
        ``analysis.measures.internal.organisation_figures``; its ``"effort"`` and ``"enps"``
        entries are used when present (they are keyed by scale, whatever the items are called).

    Returns
    -------
    str
        One ``<p>`` paragraph per figure present. The effort scale's range and easy threshold
        come from the instrument (``1–7`` and ``6 or 7`` by default). When ``org`` holds no
        figure at all (an instrument without points of connection, effort or eNPS, or nothing
        large enough to show), one paragraph says so, so that the section is never left empty.
    """
    if not org:
        return paragraph(
            "The survey measures none of the points of connection, employee effort or employee "
            "NPS with enough answers to show, so there are no organisation-wide figures here."
        )
    parts = []
    if "effort" in org:
        ease = org["effort"]
        low, high = float(ease.get("low", 1)), float(ease.get("high", 7))
        threshold = float(ease.get("threshold", high - 1))
        ci = (
            f"; 95% CI {ease['conf_low']:.2f} to {ease['conf_high']:.2f}"
            if pd.notna(ease["conf_low"]) and pd.notna(ease["conf_high"])
            else ""
        )
        parts.append(
            f"Employee effort: {ease['mean']:.2f} on {low:g}–{high:g} ({high:g} = it is easy to "
            f"get my work done{ci}); {100 * ease['share_easy']:.0f}% answered "
            f"{_easy_answers(low, high, threshold)} ({int(ease['n']):,} answers)."
        )
    if "enps" in org:
        employer = org["enps"]
        parts.append(
            f"Employee NPS across the organisation: {signed(employer['nps'])} (95% CI "
            f"{interval(employer['conf_low'], employer['conf_high'])}; "
            f"{int(employer['n']):,} answers), on the same −100 to +100 scale as customer NPS."
        )
    return "".join(paragraph(text) for text in parts)


def correction_sentence(
    estimates: pd.DataFrame, reliability: pd.DataFrame, scale: str = "engagement"
) -> str:
    """Why the models correct engagement for measurement error, and what it changes.

    Parameters
    ----------
    estimates : DataFrame
        ``estimates.csv``, with ``nps_on_engagement`` (corrected) and
        ``nps_on_engagement_uncorrected`` rows.
    reliability : DataFrame
        ``analysis.measures.internal.scale_reliability``: ``scale``, ``icc2``, ``group_size``.
    scale : str
        The scale whose ICC(2) is quoted.

    Returns
    -------
    str
        The ICC(2) of a typical unit-wave, then both slopes with their intervals and n, and
        their ratio: "the correction changes the headline by …".

    Notes
    -----
    ICC(2) is the reliability of a unit-wave mean of ``k`` answers,
    ``k·ICC(1) / (1 + (k − 1)·ICC(1))`` (Bliese 2000). Regression on a mean of reliability
    ``λ`` attenuates a slope per SD by about ``√λ`` (Fuller 1987), which regression calibration
    undoes (``analysis.models.linkage.calibrate``).
    """
    rows = estimates.set_index("estimand")
    if not {"nps_on_engagement", "nps_on_engagement_uncorrected"} <= set(rows.index):
        return ""
    corrected = rows.loc["nps_on_engagement"]
    naive = rows.loc["nps_on_engagement_uncorrected"]
    if pd.isna(corrected["estimate"]) or pd.isna(naive["estimate"]):
        return ""
    found = reliability[reliability["scale"] == scale]
    icc2 = found["icc2"].iloc[0] if not found.empty else np.nan
    size = found["group_size"].iloc[0] if not found.empty else np.nan
    lead = (
        f"A unit-wave's engagement average rests on about {size:.0f} answers, so it is a noisy "
        f"measure of the unit (ICC(2) {icc2:.2f}, where 0.70 is the usual bar). "
        if pd.notna(icc2) and pd.notna(size)
        else "A unit-wave's engagement average is a noisy measure of the unit. "
    )
    change = (
        f"the correction changes the headline by a factor of "
        f"{corrected['estimate'] / naive['estimate']:.2f}"
        if abs(naive["estimate"]) > 1e-9
        else "the uncorrected slope is zero"
    )
    return (
        lead + "That noise is why the models correct for measurement error rather than treat the "
        "averages as exact: without the correction, customer NPS would move "
        f"{signed(naive['estimate'])} points per SD of engagement (95% CI "
        f"{signed(naive['conf_low'])} to {signed(naive['conf_high'])}); with it, "
        f"{signed(corrected['estimate'])} (95% CI {signed(corrected['conf_low'])} to "
        f"{signed(corrected['conf_high'])}; both on {int(corrected['n_units'])} units and "
        f"{int(corrected['n_obs']):,} unit-quarters): {change}. Noise in the averages shrinks "
        "a link towards zero; it never creates one."
    )


def nonresponse_sentence(check: pd.Series) -> str:
    """The non-response check in words; its verdict decides them, "No clear evidence" first.

    Parameters
    ----------
    check : Series
        ``analysis.measures.quality.nonresponse_check``'s result.

    Returns
    -------
    str
        ``evidence``: the relation, its interval and n, and what it means for units with low
        response. ``no clear evidence``: "No clear evidence that …" first, then the slope, its
        interval and n, whether the interval includes no relation, and the slope the check
        could have detected. ``not estimable``: so, with the reason.

    Notes
    -----
    The words follow ``analysis.report.findings.finding_sentence``: only the verdict
    ``evidence`` states a relation.
    """
    verdict_ = check["verdict"]
    if verdict_ == findings.NOT_ESTIMABLE:
        why = f": {check['reason']}" if check.get("reason") else ""
        return (
            "Whether engagement is related to response rate could not be checked on these "
            f"data{why}."
        )
    estimate, low, high = (float(check[c]) for c in ("estimate", "conf_low", "conf_high"))
    level = f"{100 * float(check['confidence']):.1f}".removesuffix(".0") + "%"
    digits = 1
    # an end that rounds to 0.0 would read as touching "no relation" when it does not
    while digits < 3 and any(v != 0 and round(v, digits) == 0 for v in (low, high)):
        digits += 1
    ci = f"{level} CI {signed(low, digits)} to {signed(high, digits)}"
    counts = f"{int(check['n_units'])} units, {int(check['n_obs']):,} unit-waves"
    per = f"per {quality.RATE_STEP:.0f} percentage points more response, within a wave"
    if verdict_ == findings.EVIDENCE:
        direction = "higher" if estimate > 0 else "lower"
        text = (
            f"Units where more staff answered had {direction} engagement: "
            f"{signed(estimate)} points of the engagement index {per} ({ci}; {counts}). "
        )
        if estimate > 0:
            text += (
                "Those who did not answer may be less engaged than those who did, so the "
                "engagement of units with low response may be overstated."
            )
        else:
            text += (
                "Those who did not answer may be more engaged than those who did, so the "
                "engagement of units with low response may be understated."
            )
        return text
    text = (
        "No clear evidence that engagement is related to response rate: the estimate is "
        f"{signed(estimate)} points of the engagement index {per} ({ci}; {counts})"
    )
    if low > 0 or high < 0:
        text += ". The interval leaves out no relation, but the test does not reach its level"
    else:
        text += ", an interval that includes no relation"
    text += "."
    if pd.notna(check.get("mde")):
        text += (
            f" The check had an 80% chance of detecting a slope of {float(check['mde']):.1f} "
            "points; a smaller one could have gone unnoticed. No relation does not show that "
            "those who did not answer feel as those who did."
        )
    return text


def response_rate_sentence(rates: pd.DataFrame) -> str:
    """Who answered: the organisation's response rate in the latest wave, and the regions'.

    Parameters
    ----------
    rates : DataFrame
        ``analysis.measures.quality.response_rates``: ``level``, ``label``, ``wave``,
        ``respondents``, ``headcount``, ``response_rate`` with ``conf_low`` and ``conf_high``
        (Wilson), ``suppressed``.

    Returns
    -------
    str
        The latest wave's rate with its interval and counts, and the lowest and highest shown
        regions; empty when no rate is shown.
    """
    shown = rates[~rates["suppressed"].astype(bool)].dropna(subset=["response_rate"])
    organisation = shown[shown["level"] == "organisation"]
    if organisation.empty:
        return ""
    latest = organisation.sort_values("wave").iloc[-1]
    text = (
        f"In the latest wave ({latest['wave']:%d %B %Y}), {100 * latest['response_rate']:.0f}% "
        f"of the {int(latest['headcount']):,} staff invited answered (95% CI "
        f"{100 * latest['conf_low']:.0f}% to {100 * latest['conf_high']:.0f}%; "
        f"{int(latest['respondents']):,} respondents)."
    )
    regions = shown[(shown["level"] == "region") & (shown["wave"] == latest["wave"])]
    if len(regions) >= 2:
        low, high = (
            regions.nsmallest(1, "response_rate").iloc[0],
            regions.nlargest(1, "response_rate").iloc[0],
        )
        text += (
            f" By region it ranged from {100 * low['response_rate']:.0f}% in {low['label']} "
            f"(95% CI {100 * low['conf_low']:.0f}% to {100 * low['conf_high']:.0f}%) to "
            f"{100 * high['response_rate']:.0f}% in {high['label']} (95% CI "
            f"{100 * high['conf_low']:.0f}% to {100 * high['conf_high']:.0f}%)."
        )
    return text
