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
import pandas as pd

from analysis.measures.internal import scale_label
from analysis.models import registry

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


def level(confidence: float) -> str:
    """A confidence level as a percentage that prints exactly: ``95%``, ``99.9%``."""
    text = f"{100 * confidence:.1f}".removesuffix(".0")
    return f"{text}%"


def signed(value: float, digits: int = 1) -> str:
    """``+6.1`` / ``−2.3`` (a true minus sign) / ``0.0``."""
    text = f"{abs(value):.{digits}f}"
    if round(value, digits) > 0:
        return f"+{text}"
    if round(value, digits) < 0:
        return f"−{text}"
    return text


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


def headline_findings(estimates: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """The findings as sentences, each with its number, 95% interval and n."""
    ci = f"{level(1 - alpha)} CI"
    sentences = []
    row = _get(estimates, "nps_on_engagement")
    if row is not None:
        direction = "higher" if row["estimate"] >= 0 else "lower"
        sentences.append(
            f"Units one standard deviation higher in engagement had customer NPS "
            f"{abs(row['estimate']):.1f} points {direction} in the following quarter ({ci} "
            f"{_ci(row)}; {int(row['n_units'])} units, {int(row['n_obs']):,} unit-quarters)."
        )
    row = _get(estimates, "churn_hazard_on_engagement")
    if row is not None:
        change = (1 - row["estimate"]) * 100
        word = "lower" if change >= 0 else "higher"
        sentences.append(
            f"Customers of units one standard deviation higher in engagement had a "
            f"{abs(change):.0f}% {word} risk of leaving at any time (hazard ratio "
            f"{row['estimate']:.2f}, {ci} "
            f"{row['conf_low']:.2f} to {row['conf_high']:.2f}; {int(row['n_obs']):,} customers "
            f"in {int(row['n_units'])} units)."
        )
    nps_gap = _get(estimates, "nps_quartile_gap")
    retention_gap = _get(estimates, "retention_quartile_gap")
    if nps_gap is not None:
        text = (
            f"Top-quartile units led bottom-quartile units by {signed(nps_gap['estimate'])} "
            f"NPS points ({ci} {_ci(nps_gap)}; {int(nps_gap['n_units'])} units)"
        )
        if retention_gap is not None:
            text += (
                f" and by {signed(retention_gap['estimate'])} percentage points in "
                f"12-month customer retention ({ci} {_ci(retention_gap)}; "
                f"{int(retention_gap['n_obs']):,} customer-waves)"
            )
        sentences.append(text + ".")
    row = _get(estimates, "nps_mediated_share")
    churn = _get(estimates, "churn_hazard_on_engagement")
    if row is not None and churn is not None and _significant(churn, alpha):
        sentences.append(
            f"About {100 * row['estimate']:.0f}% of engagement's link with churn runs through "
            f"customer NPS ({ci} {100 * row['conf_low']:.0f}% to "
            f"{100 * row['conf_high']:.0f}%; {int(row['n_units'])} units)."
        )
    return sentences


def causal_reading(estimates: pd.DataFrame, alpha: float = 0.05) -> str:
    """What the lag, within-unit and reverse-direction checks say about cause and effect."""
    forward = _get(estimates, "nps_on_engagement")
    within = _get(estimates, "nps_on_engagement_within")
    reverse = _get(estimates, "engagement_on_prior_nps")
    if forward is None:
        return "The engagement–NPS link could not be estimated on these data."
    parts = []
    if _significant(forward, alpha) and forward["estimate"] > 0:
        parts.append(
            "Engagement measured in a survey wave predicts customer NPS in the "
            "quarter that follows, so the timing fits engagement coming first."
        )
    else:
        parts.append(
            "We did not find that engagement predicts the next quarter's customer NPS here."
        )
    if within is not None:
        if _significant(within, alpha) and within["estimate"] > 0:
            parts.append(
                f"The link also holds within the same unit over time "
                f"({signed(within['estimate'])} points per SD, {_ci(within)}), so it is not "
                "only that well-run units score high on both."
            )
        else:
            parts.append(
                f"Within the same unit over time the link is not clear "
                f"({signed(within['estimate'])} points per SD, {_ci(within)}), so part of the "
                "association may reflect stable differences between units."
            )
    if reverse is not None:
        if _significant(reverse, alpha) and reverse["estimate"] > 0:
            parts.append(
                f"Customer NPS before a wave also predicts engagement at that wave "
                f"({signed(reverse['estimate'], 2)} SD per 10 points, {_ci(reverse, 2)}): "
                "the relationship runs in the reverse direction too, and customer experience "
                "may be lifting staff as much as staff lift customers."
            )
        else:
            parts.append(
                f"Customer NPS before a wave does not clearly predict engagement at the wave "
                f"({signed(reverse['estimate'], 2)} SD per 10 points, {_ci(reverse, 2)}), "
                "which argues against the reverse direction."
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
        "deviation of engagement or larger; smaller true effects could go unnoticed, so a "
        "non-significant result is not evidence of no effect."
    )


CAVEATS = (
    "Engagement is measured on the staff who answered; units where few answer carry less "
    "weight, and groups below the minimum size are never shown.",
    "Customer answers are linked to units by the unit that served them and by date; customers "
    "served by several units are counted with the unit on each answer.",
    "Effects are averages across units; individual units may differ.",
    "'Significant' means after Holm's correction for the number of questions asked of the data.",
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


def _in_sentence(label: str) -> str:
    """A label inside a sentence: its first letter lower-case, unless it starts an acronym."""
    if len(label) > 1 and label[1].isupper():
        return label
    return label[:1].lower() + label[1:]


def drivers_sentence(drivers: pd.DataFrame) -> str:
    """Which internal measures carry the most weight for customer NPS, with intervals."""
    if drivers.empty:
        return "Driver importance could not be estimated on these data."
    table = drivers.sort_values("estimate", ascending=False)
    top = table.iloc[0]
    share, low, high = top["share"], top["share_conf_low"], top["share_conf_high"]
    label = _in_sentence(scale_label(top["term"]))
    text = (
        f"Of the internal measures, {label} accounts for the largest share of the "
        f"differences in unit NPS that the measures explain together ({share:.0f}%, 95% CI "
        f"{low:.0f}% to {high:.0f}%; {int(top['n_units'])} units)."
    )
    significant = [_in_sentence(scale_label(t)) for t in table.loc[table["significant"], "term"]]
    if significant:
        text += (
            " Measures that stand out from chance after correcting for testing several "
            f"at once: {', '.join(significant)}."
        )
    else:
        text += " None stands out from chance after correcting for testing several at once."
    return (
        text + " Measures that move together share credit; treat this as where to look, "
        "not as proof of what works."
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
                f"{lo:.2f} to {hi:.2f}"
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
                sentences.append(
                    f"{subject} rests on {which}: without it, it would not be significant."
                )
            else:
                sentences.append(
                    f"{subject} is not significant, but leaving out {which} would make it so: "
                    "treat it as unsettled either way."
                )
        if sign and significant:
            which = "a single unit" if sign == 1 else f"any one of {sign} units"
            sentences.append(
                f"The direction of {subject[0].lower()}{subject[1:]} rests on {which}: "
                "without it, the estimate would change sign."
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
