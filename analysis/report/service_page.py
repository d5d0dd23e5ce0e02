"""The "Internal service" page: scorecards, the service chain, who depends on whom, the brand.

Everything this page shows comes from the result files (``analysis.data.results``), never from
the ratings themselves: ``internal_service.csv`` and ``internal_service_network.csv``
(``analysis.models.service_release``: suppressed and released), the chain's rows of
``estimates.csv`` and ``findings.csv`` and ``brand_alignment.csv`` when a run has them. A
part that is absent is said to be absent in one sentence; nothing here fails for it.

Words follow the kit's rules (``analysis.report.findings``): a finding is stated only with the
verdict ``evidence``; otherwise the sentence starts "No clear evidence". Every number carries
its n and its 95% interval, and every estimate is called an association, with the argument
that supports reading it one way or the other written out in plain words
(``CHAIN``). Pure: tables in, text and figures out.
"""

from __future__ import annotations

import html
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.data.contract import POINTS_OF_CONNECTION
from analysis.report import findings as findings_module
from analysis.report.figures import (
    ACCENT,
    FIGURE_WIDTH,
    INK,
    MUTED,
    SUPPRESSED,
    _finish,
    _nothing_to_show,
    _value_axis,
    error_extent,
)
from analysis.report.findings import level, signed
from analysis.report.sentences import figure_text, html_table, interval, list_html, paragraph

#: The page's slug: ``internal_service.html``.
SLUG = "internal_service"
PROVIDER, RATER, WAVE = "provider_unit_id", "rater_unit_id", "wave"
#: Teams drawn in the scorecard figure at most (the highest and the lowest half each), and
#: suppressed teams listed one by one before they are drawn as one row; the table lists all.
FIGURE_TEAMS, FIGURE_HIDDEN = 30, 8
#: Teams drawn in the network at most: the most-rated (labels stay legible on the circle).
NETWORK_TEAMS = 40
#: Teams named in the sentence on changes, the largest first; the table shows every change.
CHANGES_NAMED = 3
DISAGREE = "#D55E00"  # vermillion (Okabe–Ito): a unit whose staff and customers disagree

POINT_LABELS = {
    "poc_listening": "Listening",
    "poc_valued": "Feeling valued",
    "poc_resolution": "Resolution",
    "poc_honesty": "Honesty",
    "poc_reliability": "Reliability",
    "poc_authenticity": "Authenticity",
}

#: The chain's estimands (issue 15) and the brand's, as the page reads them: what each asks,
#: its label and the argument that identifies it, in words (the findings' sentences say what
#: was found: ``estimand_sentence``).
CHAIN = {
    "engagement_on_internal_service": {
        "label": "Internal service → engagement",
        "argument": (
            "How it is identified: units are compared within the same survey wave, and the "
            "service a unit receives is measured only from other units' ratings of its "
            "providers (its own staff's ratings are left out), so one team's general mood "
            "cannot raise both numbers. It remains an association: units that get better "
            "service may differ in other ways, for example a manager who both presses "
            "providers for service and engages the team."
        ),
    },
    "nps_on_internal_service": {
        "label": "Internal service → customer NPS",
        "argument": (
            "How it is identified: service is measured at the survey wave and customer NPS in "
            "the quarter after it, so the timing fits service coming first, and the service "
            "measure again leaves out the unit's own raters. Anything that raises both a "
            "unit's service and its customers' view (its region, its market) could still "
            "produce it; the within-unit check below removes what is fixed about a unit."
        ),
    },
    "nps_via_engagement_share": {
        "label": "Share of the service–NPS link through engagement",
        "argument": (
            "How it is identified: the link is split into a part that moves with engagement "
            "and a part that does not (a mediation analysis). The split is only as good as "
            "the assumption that nothing unmeasured drives both engagement and NPS once "
            "service is accounted for, and it means little when the total link is unclear."
        ),
    },
    "nps_on_internal_service_within": {
        "label": "Internal service → NPS, within the same unit",
        "argument": (
            "How it is identified: each unit is compared with itself in other waves, so "
            "anything fixed about a unit (its location, its market, a manager who stays) "
            "cannot explain it. Changes that happen at the same time as the service changes, "
            "such as a new manager, still could."
        ),
    },
}
BRAND_ESTIMAND = "brand_promise_on_brand_alignment"
BRAND = {
    "label": "Staff brand alignment → customers' brand promise",
    "argument": (
        "How it is identified: staff alignment is measured at the survey wave and customers' "
        "view of the promise in the quarter after it, in the same unit, so the timing fits "
        "staff coming first. Units whose customers are easier to please may also have staff "
        "who find the promise easier to believe: it is an association, not proof of cause."
    ),
}


# --------------------------------------------------------------------------------------------
# Names and numbers


def unit_names(units: pd.DataFrame) -> dict[str, str]:
    """``unit_id → display name``: ``unit_name`` where present, else the id."""
    ids = units["unit_id"].astype(str)
    if "unit_name" not in units:
        return dict(zip(ids, ids, strict=True))
    names = units["unit_name"].where(units["unit_name"].notna(), units["unit_id"]).astype(str)
    return dict(zip(ids, names, strict=True))


def _name(names: dict[str, str], unit) -> str:
    return names.get(str(unit), str(unit))


def _ci(low, high, digits: int = 1) -> str:
    if pd.isna(low) or pd.isna(high):
        return "no interval"
    return f"95% CI {low:.{digits}f} to {high:.{digits}f}"


#: Marks an index the privacy noise pushed past the 0–100 scale (``on_scale``).
PAST_THE_SCALE = "†"
PAST_THE_SCALE_NOTE = (
    f"{PAST_THE_SCALE} The privacy noise pushed this figure past the end of its scale (0 to 100; "
    "−100 to +100 for NPS); it is shown at the end, and its interval, for the true value, stops "
    "there too. The result files keep the released value, which stays unbiased."
)


def on_scale(value: float, low: float = 0.0, high: float = 100.0) -> tuple[float, str]:
    """A released index (0–100; internal NPS −100 to 100) as a reader sees it: clipped to the
    scale, with the mark ``PAST_THE_SCALE`` when clipping changed it (clipping released figures
    reveals nothing; the interval, clipped already, is for the true value, inside the scale)."""
    clipped = float(np.clip(value, low, high))
    return clipped, PAST_THE_SCALE if clipped != value else ""


def _on_scale_text(value: float, digits: int = 1) -> str:
    clipped, mark = on_scale(value)
    return f"{clipped:.{digits}f}{mark}"


def _with_note(table: str, marked: bool) -> str:
    return table + (paragraph(PAST_THE_SCALE_NOTE, "io-note") if marked else "")


def _flag(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def latest_wave(scores: pd.DataFrame):
    """The latest wave in the scorecards (``None`` when there is none)."""
    return scores[WAVE].max() if len(scores) else None


def _wave_text(wave) -> str:
    return f"{pd.Timestamp(wave):%d %B %Y}"


def _shown(scores: pd.DataFrame) -> pd.DataFrame:
    return scores[~scores["suppressed"].map(_flag) & scores["service_index"].notna()]


# --------------------------------------------------------------------------------------------
# Scorecards


def scorecard_sentence(
    scores: pd.DataFrame, units: pd.DataFrame, min_group_size: int, alpha: float = 0.05
) -> str:
    """The latest wave's scorecards in words: how many teams are shown and hidden, the best and
    the lowest on the shrunken index, and whether any changed since its previous wave.

    A change is called one only when its Holm-adjusted p-value over the teams compared is below
    ``alpha`` and its interval excludes zero; otherwise "No clear evidence" comes first.
    """
    if scores.empty:
        return "No one rated an internal team in these data, so there are no scorecards."
    names = unit_names(units)
    wave = latest_wave(scores)
    now = scores[scores[WAVE] == wave]
    shown = _shown(now).sort_values("rank")
    hidden = len(now) - len(shown)
    lead = (
        f"In the latest wave ({_wave_text(wave)}) {len(now)} internal teams were rated; "
        f"{len(shown)} had at least {min_group_size} raters and are shown"
        + (
            f", {hidden} had fewer and are suppressed (their figures appear nowhere)."
            if hidden
            else "."
        )
    )
    if shown.empty:
        return lead
    top, bottom = shown.iloc[0], shown.iloc[-1]

    def describe(row) -> str:
        return (
            f"{_name(names, row[PROVIDER])} ({row['shrunken']:.1f} on the shrunken index, "
            f"{_ci(row['shrunken_conf_low'], row['shrunken_conf_high'])}; "
            f"{int(row['n_raters']):,} raters)"
        )

    parts = [lead]
    if len(shown) > 1:
        overlap = top["shrunken_conf_low"] <= bottom["shrunken_conf_high"]
        parts.append(
            f"Ranked on the index shrunk towards the average (small teams pulled in more), "
            f"the highest was {describe(top)} and the lowest {describe(bottom)}"
            + (
                "; their intervals overlap, so the data do not clearly separate even these two."
                if overlap
                else "; their intervals do not overlap."
            )
        )
    changes = now.dropna(subset=["change", "change_p_value"])
    changes = changes[~changes["suppressed"].map(_flag)]
    if len(changes):
        from statsmodels.stats.multitest import multipletests

        adjusted = multipletests(changes["change_p_value"], method="holm")[1]
        excludes = (changes["change_conf_low"] > 0) | (changes["change_conf_high"] < 0)
        moved = changes[(adjusted < alpha) & excludes.to_numpy()]
        if moved.empty:
            parts.append(
                f"No clear evidence that any of the {len(changes)} teams shown in both this and "
                "an earlier wave changed (Holm's correction over the teams)."
            )
        else:
            largest = moved.reindex(moved["change"].abs().sort_values(ascending=False).index)
            described = [
                f"{_name(names, r[PROVIDER])} {signed(r['change'])} points "
                f"(95% CI {interval(r['change_conf_low'], r['change_conf_high'])}; "
                f"{int(r['n_raters']):,} raters)"
                for _, r in largest.head(CHANGES_NAMED).iterrows()
            ]
            more = len(moved) - CHANGES_NAMED
            parts.append(
                f"{len(moved)} of the {len(changes)} teams compared with their previous wave "
                f"changed beyond chance (Holm's correction)"
                + (", the largest: " if more > 0 else ": ")
                + "; ".join(described)
                + (f"; and {more} more (see the table)." if more > 0 else ".")
            )
    return " ".join(parts)


def scorecard_table_html(
    scores: pd.DataFrame, units: pd.DataFrame, confidence: float = 0.95
) -> str:
    """The latest wave's scorecards as an escaped table, ranked; suppressed teams last."""
    if scores.empty:
        return ""
    names = unit_names(units)
    now = scores[scores[WAVE] == latest_wave(scores)].copy()
    now["hidden"] = now["suppressed"].map(_flag)
    now = now.sort_values(["hidden", "rank", PROVIDER], na_position="last")
    ci = f"{level(confidence)} CI"
    ranked = now["n_ranked"].dropna()
    rank_header = f"Rank (of {int(ranked.iloc[0])})" if len(ranked) else "Rank"

    marked = False

    def cell(value, low, high, digits=1, sign=False, scale=None) -> str:
        nonlocal marked
        if pd.isna(value):
            return "—"
        mark = ""
        if scale is not None:
            value, mark = on_scale(value, *scale)
            marked = marked or bool(mark)
        shown = (signed(value, digits) if sign else f"{value:.{digits}f}") + mark
        if pd.isna(low) or pd.isna(high):
            return shown
        ends = interval(low, high, digits) if sign else f"{low:.{digits}f} to {high:.{digits}f}"
        return f"{shown} ({ends})"

    rows = []
    for _, r in now.iterrows():
        if r["hidden"]:
            rows.append(
                {
                    rank_header: "",
                    "Team": _name(names, r[PROVIDER]),
                    "Raters (n)": f"{int(r['n_raters']):,}",
                    f"Service index 0–100 ({ci})": f"suppressed: {r['suppression']}",
                    f"Shrunken ({ci})": "",
                    f"Internal NPS ({ci}; n)": "",
                    f"Change since previous wave ({ci})": "",
                }
            )
            continue
        nps = cell(
            r["internal_nps"],
            r["internal_nps_conf_low"],
            r["internal_nps_conf_high"],
            0,
            True,
            scale=(-100.0, 100.0),
        )
        if pd.notna(r["internal_nps"]):
            nps = f"{nps}; n = {int(r['internal_nps_n']):,}"
        rank = f"{int(r['rank'])}" if pd.notna(r["rank"]) else ""
        rows.append(
            {
                rank_header: rank,
                "Team": _name(names, r[PROVIDER]),
                "Raters (n)": f"{int(r['n_raters']):,}",
                f"Service index 0–100 ({ci})": cell(
                    r["service_index"], r["conf_low"], r["conf_high"], scale=(0.0, 100.0)
                ),
                f"Shrunken ({ci})": cell(
                    r["shrunken"], r["shrunken_conf_low"], r["shrunken_conf_high"]
                ),
                f"Internal NPS ({ci}; n)": nps,
                f"Change since previous wave ({ci})": cell(
                    r["change"], r["change_conf_low"], r["change_conf_high"], 1, True
                ),
            }
        )
    return _with_note(html_table(pd.DataFrame(rows)), marked)


def points_table_html(scores: pd.DataFrame, units: pd.DataFrame) -> str:
    """The six points of connection of each shown team in the latest wave: index (95%
    interval; n)."""
    if scores.empty:
        return ""
    names = unit_names(units)
    now = _shown(scores[scores[WAVE] == latest_wave(scores)]).sort_values("rank")
    if now.empty:
        return ""
    table = pd.DataFrame({"Team": [_name(names, p) for p in now[PROVIDER]]})
    marked = False

    def cell(v, lo, hi, n) -> str:
        nonlocal marked
        if pd.isna(v):
            return "—"
        v, mark = on_scale(v)
        marked = marked or bool(mark)
        # no-break spaces, and word joiners (U+2060) around the en dash, which browsers
        # otherwise break after: a cell wraps between cells, never inside "87 (82–92; 105)"
        if pd.notna(lo):
            return f"{v:.0f}{mark}\u00a0({lo:.0f}\u2060–\u2060{hi:.0f};\u00a0{int(n)})"
        return f"{v:.0f}{mark}\u00a0({int(n)})"

    for item in POINTS_OF_CONNECTION:
        values, counts = now[f"{item}_index"], now[f"{item}_n"]
        low = now.get(f"{item}_conf_low", pd.Series(np.nan, index=now.index))
        high = now.get(f"{item}_conf_high", pd.Series(np.nan, index=now.index))
        table[POINT_LABELS.get(item, item)] = [
            cell(v, lo, hi, n) for v, lo, hi, n in zip(values, low, high, counts, strict=True)
        ]
    return _with_note(html_table(table), marked)


def scorecard_figure(
    scores: pd.DataFrame, units: pd.DataFrame, confidence: float = 0.95
) -> plt.Figure:
    """The latest wave's teams on the shrunken index with intervals and n; suppressed teams
    listed below in grey, without a value."""
    names = unit_names(units)
    if scores.empty:
        figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 2))
        return _nothing_to_show(figure, axes, "No internal team was rated.")
    now = scores[scores[WAVE] == latest_wave(scores)]
    shown = _shown(now).sort_values("rank")
    hidden = now[now["suppressed"].map(_flag)].sort_values(PROVIDER)
    total_shown = len(shown)
    if total_shown > FIGURE_TEAMS:  # the highest and the lowest; the table lists every team
        half = FIGURE_TEAMS // 2
        shown = pd.concat([shown.head(half), shown.tail(half)])
    hidden_rows = [
        (_name(names, row[PROVIDER]), f"(n = {int(row['n_raters'])})")
        for _, row in hidden.iterrows()
    ]
    if len(hidden_rows) > FIGURE_HIDDEN:
        counts = hidden["n_raters"].astype(int)
        hidden_rows = [(f"{len(hidden)} teams", f"(n = {counts.min()} to {counts.max()} each)")]
    rows = len(shown) + len(hidden_rows)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 0.32 * rows + 1.9))
    y = np.arange(len(shown))
    measured = shown["service_index"].clip(0.0, 100.0)  # as the table shows it (on_scale)
    axes.errorbar(
        measured,
        y - 0.12,
        xerr=error_extent(measured, shown["conf_low"], shown["conf_high"]),
        fmt="o",
        color="#9aa3b2",
        ecolor="#c5ccd8",
        markersize=4,
        capsize=0,
        label="As measured",
    )
    axes.errorbar(
        shown["shrunken"],
        y + 0.12,
        xerr=error_extent(
            shown["shrunken"], shown["shrunken_conf_low"], shown["shrunken_conf_high"]
        ),
        fmt="o",
        color=ACCENT,
        ecolor=ACCENT,
        markersize=6,
        capsize=3,
        label="Shrunken (ranks on this)",
    )
    for position, (_, row) in zip(y, shown.iterrows(), strict=True):
        axes.annotate(
            f"n = {int(row['n_raters']):,}",
            (100, position),
            xytext=(4, -3),
            textcoords="offset points",
            fontsize=8,
            color=MUTED,
            annotation_clip=False,
        )
    if total_shown > len(shown):
        axes.axhline(len(shown) / 2 - 0.5, color=MUTED, linewidth=0.8, linestyle=":")
    hidden_y = np.arange(len(shown), rows)
    for position, (_, count) in zip(hidden_y, hidden_rows, strict=True):
        axes.axhspan(position - 0.4, position + 0.4, color=SUPPRESSED, zorder=0)
        axes.text(
            0.5,
            position,
            f"suppressed: fewer than the minimum raters {count}",
            ha="center",
            va="center",
            fontsize=8,
            color=MUTED,
            transform=axes.get_yaxis_transform(),
        )
    labels = [
        *figure_text(shown[PROVIDER].map(lambda p: _name(names, p))),
        *figure_text(pd.Series([label for label, _ in hidden_rows], dtype=object)),
    ]
    axes.set_yticks(np.arange(rows), [_short(label) for label in labels])
    axes.set_ylim(rows - 0.5, -0.6)
    axes.set_xlabel(
        f"Internal service index (0–100), {level(confidence)} intervals: grey as measured, "
        "blue shrunken towards the average (ranks on this)"
    )
    lowest = np.nanmin(np.r_[shown["conf_low"], shown["shrunken_conf_low"], 100.0])
    _value_axis(axes, float(lowest), 100.0, "x", pad=(0.03, 0.0))
    which = (
        f"the {len(shown) // 2} highest and {len(shown) // 2} lowest of {total_shown} teams "
        "shown, ranked on the shrunken index (the table lists every team)"
        if total_shown > len(shown)
        else "ranked on the shrunken index"
    )
    axes.set_title(f"Internal teams, {_wave_text(latest_wave(scores))}: {which}")
    return _finish(figure)


def _units(count: int) -> str:
    return f"{count} unit" if count == 1 else f"{count} units"


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------------------------
# The chain and the brand estimands


def _row(table: pd.DataFrame | None, estimand: str) -> pd.Series | None:
    if table is None or table.empty or "estimand" not in table:
        return None
    rows = table[table["estimand"] == estimand]
    return None if rows.empty else rows.iloc[0]


def estimand_sentence(
    estimand: str,
    estimates: pd.DataFrame | None,
    findings: pd.DataFrame | None,
    alpha: float = 0.05,
) -> str | None:
    """One estimand's finding in words, or ``None`` when the run has no row for it.

    ``findings.csv``'s sentence, decided there from the verdict (``analysis.report.findings``):
    the one place the kit's findings are put into words. Results without that row (written
    before the estimand existed) get it from ``findings.findings_table`` on ``estimates.csv``,
    as ``estimate`` would have written it.
    """
    found = _row(findings, estimand)
    if found is not None and isinstance(found.get("sentence"), str) and found["sentence"]:
        return found["sentence"]
    if _row(estimates, estimand) is None:
        return None
    decided = _row(findings_module.findings_table(estimates, alpha), estimand)
    return None if decided is None else decided["sentence"]


def chain_items(
    estimates: pd.DataFrame | None, findings: pd.DataFrame | None, alpha: float = 0.05
) -> list[tuple[str, str, str]]:
    """``(label, sentence, argument)`` for each chain estimand the run has, in chain order.

    The sentences are the findings' (``estimand_sentence``): the share through engagement, for
    one, is judged only when the total service–NPS link it divides is ``evidence``.
    """
    items = []
    for name, spec in CHAIN.items():
        sentence = estimand_sentence(name, estimates, findings, alpha)
        if sentence is not None:
            items.append((spec["label"], sentence, spec["argument"]))
    return items


def chain_html(
    estimates: pd.DataFrame | None, findings: pd.DataFrame | None, alpha: float = 0.05
) -> str:
    """The chain section: each finding with its argument, or one sentence that there is none."""
    items = chain_items(estimates, findings, alpha)
    if not items:
        return paragraph(
            "The service-chain estimates (internal service → engagement → customer NPS) are "
            "not among this run's results, so this section has nothing to report yet.",
            "io-note",
        )
    parts = []
    for label, sentence, argument in items:
        parts.append(
            f"<h3>{html.escape(label)}</h3>" + paragraph(sentence) + paragraph(argument, "io-note")
        )
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Who depends on whom


def network_layout(
    providers: list[str], raters_only: list[str], edges: pd.DataFrame
) -> dict[str, tuple[float, float]]:
    """Positions: rated teams on the outer circle, units that only rate on an inner one.

    The teams keep the order given (the page passes them best first, clockwise from the top),
    so their labels can radiate outwards; each inner unit sits at the mean angle of the teams it
    rates (a barycentre, which shortens the lines), then the inner units are spread evenly in
    that order so that no two overlap.
    """
    positions: dict[str, tuple[float, float]] = {}
    angles = {}
    for i, unit in enumerate(providers):
        angle = math.pi / 2 - 2 * math.pi * i / max(len(providers), 1)
        angles[unit] = angle
        positions[unit] = (math.cos(angle), math.sin(angle))
    barycentres = []
    for unit in raters_only:
        rated = edges.loc[edges[RATER] == unit, PROVIDER]
        vectors = [(math.cos(angles[p]), math.sin(angles[p])) for p in rated if p in angles]
        mean = (
            math.atan2(sum(v[1] for v in vectors), sum(v[0] for v in vectors)) if vectors else 0.0
        )
        barycentres.append(((math.pi / 2 - mean) % (2 * math.pi), unit))
    inner = [unit for _, unit in sorted(barycentres)]
    for i, unit in enumerate(inner):
        angle = math.pi / 2 - 2 * math.pi * (i + 0.5) / max(len(inner), 1)
        positions[unit] = (0.45 * math.cos(angle), 0.45 * math.sin(angle))
    return positions


def network_figure(
    scores: pd.DataFrame, network: pd.DataFrame, units: pd.DataFrame, min_group_size: int
) -> plt.Figure:
    """Who depends on whom in the latest wave: teams as nodes sized by their raters and
    coloured by their service index, suppressed teams grey and hatched, a line from each unit
    to each team at least ``min_group_size`` of its staff rated, as thick as those raters."""
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    names = unit_names(units)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, FIGURE_WIDTH + 1.2))
    if scores.empty:
        return _nothing_to_show(figure, axes, "No internal team was rated.")
    wave = latest_wave(scores)
    now = scores[scores[WAVE] == wave].copy()
    now["hidden"] = now["suppressed"].map(_flag) | now["service_index"].isna()
    now = now.sort_values(["hidden", "rank", PROVIDER], na_position="last")
    rated = len(now)
    if rated > NETWORK_TEAMS:  # the most-rated teams, still in rank order
        keep = now["n_raters"].rank(method="first", ascending=False) <= NETWORK_TEAMS
        now = now[keep]
    edges = network[network[WAVE] == wave] if len(network) else network
    if len(edges):
        edges = edges[edges[PROVIDER].astype(str).isin(now[PROVIDER].astype(str))]
    providers = [str(p) for p in now[PROVIDER]]
    raters_only = sorted({str(r) for r in edges[RATER]} - set(providers)) if len(edges) else []
    edges = edges.assign(**{RATER: edges[RATER].astype(str), PROVIDER: edges[PROVIDER].astype(str)})
    where = network_layout(providers, raters_only, edges)
    widest = float(edges["n_raters"].max()) if len(edges) else 1.0
    for _, edge in edges.iterrows():
        (x0, y0), (x1, y1) = where[edge[RATER]], where[edge[PROVIDER]]
        axes.annotate(
            "",
            (x1, y1),
            (x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#8a94a6",
                "alpha": 0.55,
                "linewidth": 0.6 + 3.4 * edge["n_raters"] / widest,
                "shrinkA": 4,
                "shrinkB": 9,
                "mutation_scale": 7,
            },
            zorder=1,
        )
    colours = plt.get_cmap("cividis")
    shown = now[~now["hidden"]]
    on_the_scale = shown["service_index"].clip(0.0, 100.0)  # as the tables show it (on_scale)
    low = float(on_the_scale.min()) if len(shown) else 0.0
    high = float(on_the_scale.max()) if len(shown) else 100.0
    norm = Normalize(
        vmin=math.floor(low / 5) * 5, vmax=min(max(math.ceil(high / 5) * 5, low + 5), 100.0)
    )
    largest = float(now["n_raters"].max())
    for _, team in now.iterrows():
        x, y = where[str(team[PROVIDER])]
        size = 30 + 370 * math.sqrt(team["n_raters"] / largest)
        if team["hidden"]:
            axes.scatter(
                x,
                y,
                s=size,
                color=SUPPRESSED,
                edgecolor=MUTED,
                hatch="////",
                linewidth=0.8,
                zorder=3,
            )
        else:
            axes.scatter(
                x,
                y,
                s=size,
                color=colours(norm(team["service_index"])),
                edgecolor=INK,
                linewidth=0.6,
                zorder=3,
            )
        label = _short(str(figure_text(pd.Series([_name(names, team[PROVIDER])])).iloc[0]), 24)
        angle = math.atan2(y, x)
        right = math.cos(angle) >= 0
        axes.annotate(
            label,
            (x, y),
            xytext=(16 * math.cos(angle), 16 * math.sin(angle)),
            textcoords="offset points",
            ha="left" if right else "right",
            va="center",
            rotation=math.degrees(angle) if right else math.degrees(angle) + 180,
            rotation_mode="anchor",
            fontsize=8,
            color=MUTED if team["hidden"] else INK,
            zorder=4,
        )
    for unit in raters_only:
        x, y = where[unit]
        axes.scatter(x, y, s=28, color="white", edgecolor=MUTED, linewidth=0.8, zorder=3)
    axes.set_xlim(-1.75, 1.75)
    axes.set_ylim(-1.75, 1.75)
    axes.set_aspect("equal")
    axes.set_axis_off()
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=colours)
    bar = figure.colorbar(
        mappable, ax=axes, orientation="horizontal", shrink=0.5, pad=0.05, aspect=35
    )
    bar.set_label("Colour: the team's service index (0–100)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor=colours(0.6),
            markeredgecolor=INK,
            markersize=9,
            label="Rated team (size: raters)",
        ),
        Patch(
            facecolor=SUPPRESSED,
            edgecolor=MUTED,
            hatch="////",
            label=f"Suppressed team (fewer than {min_group_size} raters)",
        ),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="white",
            markeredgecolor=MUTED,
            markersize=6,
            label="Unit that rates but is not rated",
        ),
        Line2D(
            [],
            [],
            color="#8a94a6",
            linewidth=2,
            label=f"Rates the team ({min_group_size}+ raters; width: raters)",
        ),
    ]
    bar.ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -5.0),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    n_raters = int(now["n_raters"].sum())
    teams = f"the {len(now)} most-rated of {rated} teams" if rated > len(now) else f"{rated} teams"
    axes.set_title(
        f"Who depends on whom, {_wave_text(wave)}: {teams}, {n_raters:,} ratings, "
        f"{len(edges)} unit-to-team links shown"
    )
    return _finish(figure)


def network_sentence(
    scores: pd.DataFrame, network: pd.DataFrame, units: pd.DataFrame, min_group_size: int
) -> str:
    """Who depends most on whom, in words, for the latest wave."""
    if scores.empty:
        return ""
    names = unit_names(units)
    wave = latest_wave(scores)
    edges = network[network[WAVE] == wave] if len(network) else network
    now = scores[scores[WAVE] == wave]
    if edges.empty:
        return (
            f"No unit had {min_group_size} or more of its staff rating the same team in the "
            "latest wave, so no link between units is shown; the teams' own scorecards stand."
        )
    reach = edges.groupby(PROVIDER)[RATER].nunique().sort_values(ascending=False, kind="stable")
    top = reach.index[0]
    listed = int(edges["n_raters"].sum())
    return (
        f"In the latest wave {len(edges)} links from a unit to a team it depends on had at "
        f"least {min_group_size} raters from the unit ({listed:,} of the "
        f"{int(now['n_raters'].sum()):,} ratings); smaller groups of raters are counted in "
        f"the teams' scorecards but not drawn. The team rated by the most units (counting "
        f"units with at least {min_group_size} raters of it) was {_name(names, top)} "
        f"({int(reach.iloc[0])} units). Suppressed teams are drawn "
        "grey and hatched, without a colour: their figures are not shown anywhere."
    )


# --------------------------------------------------------------------------------------------
# Brand alignment on both sides


def brand_alignment_html(
    brand: pd.DataFrame | None,
    estimates: pd.DataFrame | None,
    findings: pd.DataFrame | None,
    units: pd.DataFrame,
    alpha: float = 0.05,
) -> str:
    """Staff and customers on the brand, side by side: the estimand, the disagreeing units and
    a table, or one sentence that the run has neither."""
    parts = []
    sentence = estimand_sentence(BRAND_ESTIMAND, estimates, findings, alpha)
    if sentence is not None:
        parts.append(paragraph(sentence) + paragraph(BRAND["argument"], "io-note"))
    if brand is None or brand.empty:
        if not parts:
            return paragraph(
                "Brand alignment on both sides (staff belief in the brand beside customers' "
                "view that it keeps its promise) is not among this run's results; it needs the "
                "customer survey's brand_promise question.",
                "io-note",
            )
        return "".join(parts)
    parts.append(paragraph(brand_sentence(brand, units, alpha)))
    parts.append(brand_table_html(brand, units))
    return "".join(parts)


def _brand_latest(brand: pd.DataFrame) -> pd.DataFrame:
    rows = brand.copy()
    rows[WAVE] = pd.to_datetime(rows[WAVE])
    rows = rows[rows[WAVE] == rows[WAVE].max()]
    both = rows["staff_alignment"].notna() & rows["brand_promise_index"].notna()
    return rows[both]


def brand_sentence(brand: pd.DataFrame, units: pd.DataFrame, alpha: float = 0.05) -> str:
    """How many units' staff and customers place the unit differently in the latest wave.

    ``disagrees`` (``brand_alignment.csv``) compares the unit's relative position among units
    on each side (each side centred on its wave's median, scaled by its MAD), with
    Benjamini–Hochberg's adjustment over the unit-waves; the sentence says so, verdict first.
    """
    names = unit_names(units)
    rows = _brand_latest(brand)
    if rows.empty:
        return (
            "No unit has both enough staff and enough customer answers on the brand in the "
            "latest wave to set them side by side."
        )
    wave = _wave_text(rows[WAVE].iloc[0])
    disagree = rows[rows["disagrees"].map(_flag)]
    method = (
        "each unit's standing among units on the staff side against its standing on the "
        f"customer side, the false discovery rate held at {alpha:.0%} by Benjamini–Hochberg's "
        "adjustment"
    )
    if disagree.empty:
        return (
            f"No clear evidence that staff and customers see the brand differently in any of "
            f"the {len(rows)} units shown for {wave} ({method})."
        )
    first = disagree.reindex(disagree["difference_z"].abs().sort_values(ascending=False).index)
    first = first.iloc[0]
    side = (
        "its staff stand higher among units than its customers put it"
        if first["difference_z"] > 0
        else "its customers put it higher among units than its staff stand"
    )
    return (
        f"In {len(disagree)} of the {len(rows)} units shown for {wave}, staff and customers see "
        f"the brand differently beyond chance ({method}). The clearest is "
        f"{_name(names, first['unit_id'])}, where {side}: staff "
        f"{_on_scale_text(first['staff_alignment'])} "
        f"({_ci(first['staff_conf_low'], first['staff_conf_high'])}; "
        f"{int(first['n_staff'])} staff), customers {first['brand_promise_index']:.1f} "
        f"({_ci(first['promise_conf_low'], first['promise_conf_high'])}; "
        f"{int(first['n_customers'])} customers). The two sides answer different questions, "
        "so a gap says where to look, not who is right, nor why."
    )


def brand_table_html(brand: pd.DataFrame, units: pd.DataFrame) -> str:
    """The latest wave's units with both sides shown, disagreeing units first."""
    names = unit_names(units)
    rows = _brand_latest(brand)
    if rows.empty:
        return ""
    rows = rows.assign(flag=rows["disagrees"].map(_flag)).sort_values(
        ["flag", "p_adjusted"], ascending=[False, True]
    )
    table = pd.DataFrame(
        {
            "Unit": [_name(names, u) for u in rows["unit_id"]],
            "Staff alignment 0–100 (95% CI; n)": [
                f"{_on_scale_text(v)} ({lo:.1f} to {hi:.1f}; {int(n)})"
                for v, lo, hi, n in zip(
                    rows["staff_alignment"],
                    rows["staff_conf_low"],
                    rows["staff_conf_high"],
                    rows["n_staff"],
                    strict=True,
                )
            ],
            "Customers' brand promise 0–100 (95% CI; n)": [
                f"{v:.1f} ({lo:.1f} to {hi:.1f}; {int(n)})"
                for v, lo, hi, n in zip(
                    rows["brand_promise_index"],
                    rows["promise_conf_low"],
                    rows["promise_conf_high"],
                    rows["n_customers"],
                    strict=True,
                )
            ],
            "p (BH)": rows["p_adjusted"].map(
                lambda p: "" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"
            ),
            "Disagree?": rows["flag"].map({True: "yes", False: "no"}),
        }
    )
    marked = bool((rows["staff_alignment"].clip(0.0, 100.0) != rows["staff_alignment"]).any())
    return _with_note(html_table(table), marked)


def brand_figure(brand: pd.DataFrame | None, units: pd.DataFrame) -> plt.Figure | None:
    """Staff alignment against customers' brand promise per unit, with both intervals;
    disagreeing units in vermillion. ``None`` without the table."""
    from matplotlib.lines import Line2D

    if brand is None or brand.empty:
        return None
    rows = _brand_latest(brand)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 5.2))
    if rows.empty:
        return _nothing_to_show(figure, axes, "No unit has both sides to show.")
    flag = rows["disagrees"].map(_flag).to_numpy()
    for mask, colour in ((~flag, ACCENT), (flag, DISAGREE)):
        part = rows[mask]
        if part.empty:
            continue
        staff = part["staff_alignment"].clip(0.0, 100.0)  # as the table shows it (on_scale)
        axes.errorbar(
            staff,
            part["brand_promise_index"],
            xerr=error_extent(staff, part["staff_conf_low"], part["staff_conf_high"]),
            yerr=error_extent(
                part["brand_promise_index"], part["promise_conf_low"], part["promise_conf_high"]
            ),
            fmt="o",
            color=colour,
            ecolor=colour,
            alpha=0.8,
            elinewidth=0.7,
            markersize=5,
        )
    # the test compares positions relative to each side's median, drawn as dotted lines
    axes.axvline(rows["staff_alignment"].median(), color=MUTED, linewidth=0.8, linestyle=":")
    axes.axhline(rows["brand_promise_index"].median(), color=MUTED, linewidth=0.8, linestyle=":")
    axes.set_xlim(0, 100)
    axes.set_ylim(0, 100)
    axes.set_xlabel("Staff brand alignment (0–100), 95% intervals; dotted: each side's median")
    axes.set_ylabel("Customers: keeps its promise (0–100)")
    axes.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=ACCENT,
                label=f"Within chance of each other ({_units(int((~flag).sum()))})",
            ),
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                color=DISAGREE,
                label=f"They place the unit differently (BH; {_units(int(flag.sum()))})",
            ),
        ],
        loc="lower right",
        fontsize=8,
    )
    axes.set_title(
        f"Brand alignment on both sides, {_wave_text(rows[WAVE].iloc[0])}: "
        f"{len(rows)} units, {int(rows['n_staff'].sum()):,} staff, "
        f"{int(rows['n_customers'].sum()):,} customers"
    )
    return _finish(figure)


# --------------------------------------------------------------------------------------------
# The executive page's optional section


def executive_html(
    results: dict[str, pd.DataFrame],
    units: pd.DataFrame,
    min_group_size: int,
    alpha: float = 0.05,
) -> str:
    """The executive page's section on internal service and the brand, or ``""`` when the run
    has neither (a version-1 run: the page stays as it was).

    Names the chain's and the brand's findings (their sentences, verdict first), the best and
    lowest teams, and links to the internal-service page when the run has one.
    """
    scores = results.get("internal_service")
    if scores is not None and scores.empty:  # a table without rows: no page, nothing to say
        scores = None
    brand = results.get("brand_alignment")
    estimates, findings = results.get("estimates"), results.get("findings")
    items = []
    if scores is not None:
        items.append(scorecard_sentence(scores, units, min_group_size, alpha))
    items.extend(sentence for _, sentence, _ in chain_items(estimates, findings, alpha))
    brand_line = estimand_sentence(BRAND_ESTIMAND, estimates, findings, alpha)
    if brand_line is not None:
        items.append(brand_line)
    if brand is not None and not brand.empty:
        items.append(brand_sentence(brand, units, alpha))
    if not items:
        return ""
    link = (
        f'<p class="io-note">The <a href="{SLUG}.html">internal service page</a> shows each '
        "team's scorecard, who depends on whom, and how each finding is identified.</p>"
        if scores is not None
        else ""
    )
    return "<h2>Internal service and the brand</h2>" + list_html(items, "io-headline") + link


__all__ = [
    "BRAND",
    "CHAIN",
    "SLUG",
    "brand_alignment_html",
    "brand_figure",
    "chain_html",
    "chain_items",
    "estimand_sentence",
    "executive_html",
    "network_figure",
    "network_layout",
    "network_sentence",
    "points_table_html",
    "scorecard_figure",
    "scorecard_sentence",
    "scorecard_table_html",
    "unit_names",
]
