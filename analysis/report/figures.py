"""The house style for figures: one palette, one font size, one look for what is suppressed.

Every figure shows its n, its intervals and what its colours mean. Figures plot aggregates that
``analysis`` computed, never raw rows, so they stay fast at any scale.

Figures are read, not admired, so three rules hold for every one of them:

* **Bars start at zero** (a bar's length is its value), and a dot or line axis that does not
  include zero says so on the axis, with a break mark and "axis starts at …, not 0" in its label.
* **Categories are told apart by colour-blind-safe colours**: the Okabe–Ito palette (Okabe & Ito
  2008), which stays distinct under the three common colour-vision deficiencies, and by line
  style where lines cross.
* **Every label is at least 11 CSS pixels on a 1280 px page.** A PNG figure ``w`` inches wide at
  ``d`` dots per inch is ``w·d`` pixels, shown at ``min(w·d, column)`` CSS pixels, where
  ``column`` is the page's text column (``COLUMN_PX``, from ``report.css``). A font of ``s``
  points is then ``s · d / 72 · min(1, column / (w·d))`` pixels high. Figures are
  ``FIGURE_WIDTH`` inches wide, so they are shown at their own size, and no text is smaller than
  ``MIN_FONT`` points: ``8 · 110 / 72 ≈ 12.2`` px.

References
----------
Okabe, M., & Ito, K. (2008). Color Universal Design (CUD): how to make figures and presentations
that are friendly to colorblind people. J*Fly. https://jfly.uni-koeln.de/color/
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.models import registry
from analysis.report.sentences import level

INK = "#1d2433"
MUTED = "#5b6475"
ACCENT = "#1f5f8b"
SUPPRESSED = "#e6e8ec"
PALE = "#b9c9dc"  # ACCENT, lightened: what is shown but not significant

# Okabe & Ito (2008): eight colours that colour-blind readers tell apart (black left out: it is
# the ink). Order: orange, sky blue, bluish green, yellow, blue, vermillion, reddish purple.
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
# Quartiles are ordered: warm for the bottom, cool for the top, every step a different hue
# (four shades of one blue could not be told apart in print or by colour-blind readers).
# For unordered categories: Okabe–Ito without its yellow, which is too light on white for a
# line or a point (contrast 1.3 : 1).
CATEGORY_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9")
QUARTILE_COLOURS = ("#D55E00", "#E69F00", "#56B4E9", "#0072B2")
QUARTILE_LINESTYLES = ("-", "--", "-.", ":")

DPI = 110
# The text column of a report page: ``.io-main`` is ``max-width: 960px`` with 24 px padding on
# each side (report.css). tests/test_figures.py reads both numbers from the CSS.
COLUMN_PX = 960 - 2 * 24
# A figure this wide, plus matplotlib's 0.1-inch padding on each side, fits the column at 1:1.
FIGURE_WIDTH = 8.0
MIN_FONT = 8.0  # points: 8 · 110 / 72 ≈ 12.2 px at 1:1, above the 11 px floor


def error_extent(estimate, low, high) -> list:
    """``errorbar``'s ``[below, above]`` lengths of the interval ``low … high`` around
    ``estimate``, never negative: an interval that ends at its estimate (a Wilson bound at
    100%) may miss it by 1e-16, and an estimate drawn at the end of its scale may lie past
    a bound."""
    return [(estimate - low).clip(lower=0), (high - estimate).clip(lower=0)]


def _titled(figure: plt.Figure, title: str, fontsize: float = 11) -> plt.Figure:
    """Give a many-panel figure its bold title at the left edge, fit its layout, return it."""
    figure.suptitle(_wrap(title, fontsize), x=0.01, ha="left", fontsize=fontsize, fontweight="bold")
    return _finish(figure)


def _wrap(text: str, fontsize: float, width: float = FIGURE_WIDTH - 0.3) -> str:
    """Break ``text`` into lines that fit ``width`` inches at ``fontsize`` points.

    A title wider than its figure makes the saved PNG wider than the page's column, and the
    browser then shrinks every label with it. DejaVu Sans averages about 0.55 em per character.
    """
    import textwrap

    characters = max(20, int(width * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, characters)) if len(text) > characters else text


def _finish(figure: plt.Figure) -> plt.Figure:
    """Fit the layout, then re-wrap any text that still runs past the figure's edges.

    Returns
    -------
    Figure
        The same figure, every text inside its ``FIGURE_WIDTH``, so that the saved PNG is no
        wider than the page's column and is shown at its own size (see the module's Notes).

    Notes
    -----
    A text of ``c`` characters per line measured ``w`` pixels wide, with ``a`` pixels available,
    is re-wrapped at ``⌊c · a / w⌋`` characters; three rounds settle any layout seen so far.
    """
    import textwrap

    figure.tight_layout()
    for _ in range(3):
        renderer = figure.canvas.get_renderer()
        limit = figure.bbox.width
        changed = False
        for text in figure.findobj(matplotlib.text.Text):
            content = text.get_text()
            if not (text.get_visible() and content.strip()) or text.get_rotation() not in (0, 0.0):
                continue
            box = text.get_window_extent(renderer)
            if box.x0 >= -1 and box.x1 <= limit + 1:
                continue
            align = text.get_horizontalalignment()
            if align == "left":
                available = limit - max(box.x0, 0) - 4
            elif align == "right":
                available = min(box.x1, limit) - 4
            else:
                centre = (box.x0 + box.x1) / 2
                available = 2 * min(centre, limit - centre) - 8
            lines = content.split("\n")
            characters = max(12, int(max(map(len, lines)) * available / box.width))
            wrapped = "\n".join(
                "\n".join(textwrap.wrap(line, characters)) or line for line in lines
            )
            if wrapped != content:
                text.set_text(wrapped)
                changed = True
        if not changed:
            break
        figure.tight_layout()
    return figure


def _value_axis(axis: plt.Axes, low: float, high: float, which: str = "x", pad=(0.1, 0.1)):
    """Set a value axis to show ``low … high``, starting at zero where that costs little.

    Parameters
    ----------
    axis : Axes
    low, high : float
        The smallest and largest value drawn (interval ends included).
    which : {"x", "y"}
        The value axis.
    pad : tuple of float
        Room left below and above the data, as shares of their span.

    Returns
    -------
    bool
        Whether the axis was truncated (does not reach zero), and so marked.

    Notes
    -----
    Zero is included when the data lie within two spans of it,
    ``distance(0, [low, high]) ≤ 2 (high − low)``: the picture then at most triples in range and
    the intervals stay readable. Otherwise (six points of connection between 70.4 and 71.8 on a
    0–100 scale) a zero-based axis would squash every interval to a dot, so the axis keeps its
    range and says so: a break mark at its start and "axis starts at …, not 0" in its label
    (Cleveland 1994, *The Elements of Graphing Data*, on zero in scales).
    """
    span = (high - low) or max(abs(high), 1.0)
    distance = max(low, -high, 0.0)
    truncated = distance > 2 * span
    if not truncated:
        low, high = min(low, 0.0), max(high, 0.0)
        span = high - low
    limits = (low - pad[0] * span, high + pad[1] * span)
    if not truncated:  # zero stays the axis's end when the data are on one side of it
        limits = (0.0 if low == 0 else limits[0], 0.0 if high == 0 else limits[1])
    (axis.set_xlim if which == "x" else axis.set_ylim)(*limits)
    if truncated:
        _mark_break(axis, which, limits[0] if low > 0 else limits[1])
    return truncated


def _mark_break(axis: plt.Axes, which: str, start: float) -> None:
    """Draw a break mark (two slashes) where a truncated value axis starts, and say so."""
    end = 0.0 if start == (axis.get_xlim() if which == "x" else axis.get_ylim())[0] else 1.0
    kwargs = {"transform": axis.transAxes, "color": INK, "clip_on": False, "linewidth": 1.2}
    for offset in (-0.008, 0.008):
        if which == "x":
            axis.plot([end + offset - 0.006, end + offset + 0.006], [-0.025, 0.025], **kwargs)
        else:
            axis.plot([-0.025, 0.025], [end + offset - 0.006, end + offset + 0.006], **kwargs)
    label = axis.get_xlabel() if which == "x" else axis.get_ylabel()
    verb = "starts" if end == 0.0 else "ends"
    note = f"axis {verb} at {start:.3g}, not 0".replace("-", "−")
    (axis.set_xlabel if which == "x" else axis.set_ylabel)(
        f"{label}  ({note})" if label else note.capitalize()
    )


LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def _separate_labels(figure: plt.Figure, labels: list, gap: float = 2.0) -> None:
    """Move point labels down, one line at a time, until none overlaps an earlier one."""
    renderer = figure.canvas.get_renderer()
    boxes = []
    for label in labels:
        for _ in range(8):
            box = label.get_window_extent(renderer).expanded(1.0, 1.0)
            if not any(box.overlaps(other) for other in boxes):
                break
            x, y = label.xyann
            label.xyann = (x, y - box.height * 72 / figure.dpi - gap)
        boxes.append(label.get_window_extent(renderer))


def _nothing_to_show(figure: plt.Figure, axes, message: str) -> plt.Figure:
    """The figure of a chart with no data: the reason, centred, in place of empty axes."""
    axes.text(0.5, 0.5, message, ha="center", va="center", color=MUTED, transform=axes.transAxes)
    axes.set_axis_off()
    return figure


def use_house_style() -> None:
    """Apply the house style to matplotlib and seaborn (call once per notebook).

    Text is drawn literally: no figure here uses a formula, and names from the data (units,
    regions, items) may contain ``$``, which matplotlib would otherwise read as mathtext (a name
    such as ``$\\frac`` stopped the figure, and with it the report).
    """
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        font_scale=1.0,
        rc={
            "axes.edgecolor": "#c5ccd8",
            "axes.labelcolor": INK,
            "axes.titleweight": "bold",
            "axes.titlesize": 13,
            "axes.titlelocation": "left",
            "text.color": INK,
            "xtick.color": MUTED,
            "ytick.color": MUTED,
            "grid.color": "#e6e9ef",
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "figure.figsize": (FIGURE_WIDTH, 4.2),
            "font.family": "DejaVu Sans",
            "text.parse_math": False,
        },
    )


def nps_by_quartile(table: pd.DataFrame, confidence: float = 0.95) -> plt.Figure:
    """Point-and-interval plot of NPS by engagement quartile, each point labelled with its n.

    Parameters
    ----------
    table : DataFrame
        One row per quartile: ``label, nps, conf_low, conf_high, n_responses, n_units``. Rows
        without an interval are left out; with none left, the figure says so.
    confidence : float
        The intervals' level, for the title.

    Returns
    -------
    Figure
    """
    figure, axes = plt.subplots()
    table = table.dropna(subset=["nps", "conf_low", "conf_high"])
    if table.empty:  # every unit-wave suppressed, or too few to form quartiles
        return _nothing_to_show(
            figure,
            axes,
            "No engagement quartile could be formed:\ntoo few unit-waves are large enough to show.",
        )
    positions = range(len(table))
    lower = table["nps"] - table["conf_low"]
    upper = table["conf_high"] - table["nps"]
    for x, (_, row), colour in zip(positions, table.iterrows(), QUARTILE_COLOURS, strict=False):
        axes.errorbar(
            x,
            row["nps"],
            yerr=[[lower.iloc[x]], [upper.iloc[x]]],
            fmt="o",
            color=colour,
            ecolor=colour,
            elinewidth=2.5,
            capsize=6,
            markersize=9,
        )
        axes.annotate(
            f"{row['nps']:+.1f}\nn = {row['n_responses']:,} answers\n{row['n_units']} units",
            (x, row["conf_high"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            va="bottom",
            fontsize=9,
            color=MUTED,
        )
    axes.set_xticks(
        list(positions), [label.replace(" quartile", "\nquartile") for label in table["label"]]
    )
    axes.set_xlim(-0.5, len(table) - 0.5)
    axes.set_ylabel("Customer NPS (−100 to +100)")
    axes.set_xlabel("Unit engagement quartile in the survey wave before")
    # room above the highest interval for the labels
    if not _value_axis(axes, table["conf_low"].min(), table["conf_high"].max(), "y", (0.1, 0.6)):
        axes.axhline(0, color=MUTED, linewidth=0.8)
    axes.set_title(f"Customer NPS by unit engagement quartile, with {level(confidence)} intervals")
    sns.despine(ax=axes, left=True)
    return _finish(figure)


# The unit each estimand is reported in: estimands in one unit share one axis. The registry's
# ``scale`` says how an estimate is reported (difference, ratio, share); a difference also needs
# its unit, since NPS points and SD of engagement cannot share an axis.
UNITS = {
    "nps_on_engagement": "NPS points",
    "nps_on_engagement_within": "NPS points",
    "nps_quartile_gap": "NPS points",
    "engagement_on_prior_nps": "SD of engagement",
    "retention_quartile_gap": "Percentage points of 12-month retention",
    "churn_hazard_on_engagement": "Hazard ratio (log axis; below 1 = fewer leave)",
    "nps_mediated_share": "Share of the churn link",
    "engagement_on_internal_service": "Engagement index points",
    "nps_on_internal_service": "NPS points",
    "nps_on_internal_service_within": "NPS points",
    "nps_via_engagement_share": "Share of the internal service–NPS link",
    "brand_promise_on_brand_alignment": "Brand-promise index points",
}
_SCALE_UNITS = {"ratio": "Ratio (log axis)", "share": "Share", "difference": "Difference"}


def unit_of(name: str) -> str:
    """The unit of measure an estimand is reported in: the axis it is drawn on.

    Parameters
    ----------
    name : str
        The estimand's name in ``analysis.models.registry.ESTIMANDS``.

    Returns
    -------
    str
        Its entry in ``UNITS``; for an estimand not listed there, its registry ``scale``
        ("Difference", "Ratio (log axis)", "Share").
    """
    if name in UNITS:
        return UNITS[name]
    return _SCALE_UNITS.get(registry.by_name(name).scale, registry.by_name(name).scale)


def coefficient_plot(estimates: pd.DataFrame, alpha: float = 0.05) -> plt.Figure:
    """Every estimand as a point and interval, one shared axis per unit of measure.

    Parameters
    ----------
    estimates : DataFrame
        The estimates table; rows of estimands without a label, or without a bounded interval,
        are left out.
    alpha : float
        Filled markers are significant after Holm's adjustment (``p_adjusted`` below ``alpha``;
        ``p_value`` where there is no adjusted one).

    Returns
    -------
    Figure
        One panel per unit of measure (``unit_of``), in the registry's order; its estimands
        are rows on one shared value axis with their no-effect line. Ratios are drawn on a log
        axis, so an interval symmetric on the scale the test uses looks symmetric.

    Notes
    -----
    Estimates in different units (NPS points, SD of engagement, a hazard ratio) on one axis
    would invite comparing their lengths; on one axis each they invited comparing panels whose
    scales differ. One axis per unit lets a reader compare what is comparable only.
    """
    labels = registry.labels()
    rows = estimates[estimates["estimand"].isin(labels)]
    # an unbounded interval (Fieller's for a share whose link may be zero) has no end to draw
    bounded = np.isfinite(rows[["estimate", "conf_low", "conf_high"]].to_numpy(float)).all(axis=1)
    rows = rows[bounded]
    groups = list(dict.fromkeys(unit_of(name) for name in rows["estimand"]))
    if not groups:
        figure, axis = plt.subplots(figsize=(FIGURE_WIDTH, 1.6))
        axis.text(0.5, 0.5, "No estimate has an interval to show.", ha="center", color=MUTED)
        axis.set_axis_off()
        return figure
    sizes = [int((rows["estimand"].map(unit_of) == unit).sum()) for unit in groups]
    figure, axes = plt.subplots(
        len(groups),
        1,
        figsize=(FIGURE_WIDTH, 0.5 * sum(sizes) + 1.0 * len(groups) + 0.8),
        gridspec_kw={"height_ratios": [size + 1.2 for size in sizes]},
        squeeze=False,
    )
    for axis, unit in zip(axes[:, 0], groups, strict=True):
        shown = rows[rows["estimand"].map(unit_of) == unit]
        nulls = sorted({labels[name][1] for name in shown["estimand"]})
        for null in nulls:
            axis.axvline(null, color=MUTED, linewidth=1, linestyle="--")
        names = []
        for y, (_, row) in enumerate(shown.iterrows()):
            label, _ = labels[row["estimand"]]
            p = row.get("p_adjusted", row["p_value"])
            significant = bool(p < alpha) if pd.notna(p) else False
            axis.errorbar(
                row["estimate"],
                y,
                xerr=[[row["estimate"] - row["conf_low"]], [row["conf_high"] - row["estimate"]]],
                fmt="o",
                color=ACCENT,
                ecolor=ACCENT,
                capsize=4,
                markersize=7,
                markerfacecolor=ACCENT if significant else "white",
            )
            axis.annotate(
                f"{row['estimate']:.2f}",
                (row["conf_high"], y),
                xytext=(6, -4),
                textcoords="offset points",
                fontsize=9,
                color=MUTED,
            )
            names.append(f"{label}\n(n = {int(row['n_units'])} units)")
        ratio = registry.by_name(shown["estimand"].iloc[0]).scale == "ratio"
        low = min(shown["conf_low"].min(), *nulls)
        high = max(shown["conf_high"].max(), *nulls)
        if ratio and low > 0:
            axis.set_xscale("log")
            factor = (high / low) ** 0.15
            axis.set_xlim(low / factor, high * factor**2)
            axis.minorticks_off()
            # ratios and their reciprocals (0.8 and 1.25, 0.5 and 2) as ticks, at most seven
            nice = (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 3, 4, 5, 10)
            shown_lim = axis.get_xlim()
            ticks = [t for t in nice if shown_lim[0] <= t <= shown_lim[1]]
            if len(ticks) >= 2:
                step = -(-len(ticks) // 7)
                one = ticks.index(1) if 1 in ticks else 0  # thinned from 1, so 1 stays
                ticks = ticks[one::-step][::-1] + ticks[one + step :: step]
                axis.set_xticks(ticks, [f"{t:g}" for t in ticks])
            else:  # a narrow interval around 1: plain decimals
                axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
                axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        else:
            pad = high - low or 1.0
            axis.set_xlim(low - 0.1 * pad, high + 0.25 * pad)  # room for the value labels
        axis.set_yticks(range(len(shown)), names, fontsize=9)
        axis.set_ylim(len(shown) - 0.4, -0.6)
        axis.set_xlabel(unit, fontsize=10)
        axis.grid(axis="y", visible=False)
        sns.despine(ax=axis, left=True)
    return _titled(
        figure,
        "Every estimate with its 95% interval, one axis per unit (filled = significant after "
        "Holm; dashed = no effect)",
        12,
    )


def retention_curves(curves: pd.DataFrame) -> plt.Figure:
    """Kaplan–Meier retention by engagement quartile, with pointwise 95% bands and n.

    Quartiles are told apart by Okabe–Ito colours (Okabe & Ito 2008), warm for the bottom and
    cool for the top, and by line style, so they stay distinct for colour-blind readers and in
    grey-scale print. The retention axis starts at 0 unless the curves lie far above it, in which
    case it is marked as truncated (``_value_axis``).

    Parameters
    ----------
    curves : DataFrame
        ``quartile, time, retained, conf_low, conf_high, n``, as
        ``analysis.models.hazard.kaplan_meier_by_quartile`` returns them.

    Returns
    -------
    Figure
    """
    figure, axes = plt.subplots()
    for quartile, group in curves.groupby("quartile"):
        colour = QUARTILE_COLOURS[int(quartile) - 1]
        style = QUARTILE_LINESTYLES[int(quartile) - 1]
        label = (
            f"{('Bottom', 'Second', 'Third', 'Top')[int(quartile) - 1]} quartile "
            f"(n = {int(group['n'].iloc[0]):,})"
        )
        axes.step(
            group["time"],
            100 * group["retained"],
            where="post",
            color=colour,
            linestyle=style,
            linewidth=2.2,
            label=label,
        )
        axes.fill_between(
            group["time"],
            100 * group["conf_low"],
            100 * group["conf_high"],
            step="post",
            color=colour,
            alpha=0.15,
            linewidth=0,
        )
    axes.set_xlabel("Days since the first survey wave (or joining, if later)")
    axes.set_ylabel("Customers retained (%)")
    _value_axis(axes, float(100 * curves["conf_low"].min()), 100.0, "y", pad=(0.05, 0.02))
    axes.set_title("Customer retention by the engagement quartile of their unit")
    axes.legend(title="Unit engagement", frameon=False)
    sns.despine(ax=axes)
    return _finish(figure)


def driver_importance(drivers: pd.DataFrame, labels: dict[str, str] | None = None) -> plt.Figure:
    """Relative weights as % of explained NPS variance, with bootstrap intervals.

    Parameters
    ----------
    drivers : DataFrame
        ``term, share, share_conf_low, share_conf_high, significant``, as
        ``analysis.models.drivers.driver_importance`` returns them.
    labels : dict of str to str, optional
        Display names of the terms; a term without one is shown as it is.

    Returns
    -------
    Figure
    """
    table = drivers.sort_values("share")
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 0.5 * len(table) + 1.6))
    if table.empty:  # estimate leaves drivers.csv empty when the data cannot carry them
        return _nothing_to_show(
            figure, axes, "Driver importance could not be estimated on these data."
        )
    names = [(labels or {}).get(t, t) for t in table["term"]]
    colours = [ACCENT if s else PALE for s in table["significant"]]
    axes.barh(names, table["share"], color=colours)
    axes.errorbar(
        table["share"],
        names,
        xerr=[table["share"] - table["share_conf_low"], table["share_conf_high"] - table["share"]],
        fmt="none",
        ecolor=INK,
        capsize=3,
        linewidth=1,
    )
    axes.set_xlabel("Share of explained variance in unit NPS (%), with 95% interval")
    # a bar's length is its share: the axis starts at 0 whatever the intervals do
    axes.set_xlim(0, max(float(table["share_conf_high"].max()), float(table["share"].max())) * 1.05)
    axes.set_title(
        "Which internal measures matter most for customer NPS? "
        "(dark = significant after Benjamini–Hochberg FDR)"
    )
    sns.despine(ax=axes, left=True)
    return _finish(figure)


def power_curve(
    curve: pd.DataFrame, mde: float, estimate: float | None = None, n_units: int | None = None
) -> plt.Figure:
    """Power against the true effect size, with the minimum detectable effect marked.

    Parameters
    ----------
    curve : DataFrame
        ``effect`` (NPS points per SD of engagement) and ``power`` (0 … 1).
    mde : float
        The effect detected with 80% power.
    estimate : float, optional
        The study's own estimate, marked when given.
    n_units : int, optional
        The units the curve assumes, for the title.

    Returns
    -------
    Figure
    """
    figure, axes = plt.subplots()
    axes.plot(curve["effect"], 100 * curve["power"], color=ACCENT, linewidth=2)
    axes.axhline(80, color=MUTED, linestyle=":", linewidth=1)
    axes.axvline(mde, color=MUTED, linestyle="--", linewidth=1)
    axes.annotate(
        f"80% power at {mde:.1f} points",
        (mde, 80),
        xytext=(6, -16),
        textcoords="offset points",
        color=MUTED,
        fontsize=9,
        bbox=LABEL_BOX,  # the estimate's line may cross it: the label stays legible
    )
    if estimate is not None:
        axes.axvline(estimate, color=INK, linewidth=1)
        axes.annotate(
            f"estimate {estimate:.1f}",
            (estimate, 8),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=9,
        )
    axes.set_ylim(0, 105)  # room between a curve that reaches 100% and the title
    axes.set_yticks(range(0, 101, 20))
    axes.set_xlabel("True effect: NPS points per SD of engagement")
    axes.set_ylabel("Chance of detecting it (%)")
    suffix = f" ({n_units} units)" if n_units else ""
    axes.set_title(f"How large an effect could this study detect?{suffix}")
    sns.despine(ax=axes)
    return _finish(figure)


def engagement_heatmap(cells: pd.DataFrame, unit_labels: pd.Series) -> plt.Figure:
    """Engagement index by unit × wave, coloured only where a cell differs significantly.

    A cell is coloured where it differs significantly from its wave's mean after FDR correction;
    suppressed cells are hatched grey; the others are pale grey.

    Parameters
    ----------
    cells : DataFrame
        ``unit_id, wave, engagement_index, difference, significant, suppressed``.
    unit_labels : Series
        Maps ``unit_id`` to the label shown, in display order.

    Returns
    -------
    Figure
    """
    units = list(unit_labels.index)
    waves = sorted(cells["wave"].unique())
    grid = cells.pivot_table(
        index="unit_id", columns="wave", values="difference", aggfunc="first"
    ).reindex(index=units, columns=waves)
    significant = cells.pivot_table(
        index="unit_id", columns="wave", values="significant", aggfunc="first"
    ).reindex(index=units, columns=waves)
    hidden = cells.pivot_table(
        index="unit_id", columns="wave", values="suppressed", aggfunc="first"
    ).reindex(index=units, columns=waves)
    shown = grid.where(significant.fillna(False).astype(bool))
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) if grid.notna().any().any() else 1.0
    # full page width; the colour bar goes underneath so the cells keep the width
    figure, (axes, bar_axis) = plt.subplots(
        2,
        1,
        figsize=(FIGURE_WIDTH, 0.3 * len(units) + 2.4),
        gridspec_kw={"height_ratios": [0.3 * len(units) + 0.6, 0.18]},
    )
    axes.imshow(
        np.where(hidden.fillna(True).astype(bool), np.nan, 0.0),
        cmap="Greys",
        vmin=-1,
        vmax=8,
        aspect="auto",
    )
    image = axes.imshow(shown.to_numpy(float), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), flag in np.ndenumerate(hidden.fillna(True).astype(bool).to_numpy()):
        if flag:
            axes.add_patch(
                plt.Rectangle(
                    (j - 0.5, i - 0.5),
                    1,
                    1,
                    facecolor=SUPPRESSED,
                    hatch="///",
                    edgecolor="#b9bec8",
                    linewidth=0,
                )
            )
    axes.set_xticks(
        range(len(waves)),
        [pd.Timestamp(w).strftime("%b %Y") for w in waves],
        rotation=0 if len(waves) <= 8 else 45,
        fontsize=9,
    )
    axes.set_yticks(range(len(units)), list(unit_labels.to_numpy()), fontsize=9)
    axes.grid(False)
    bar = figure.colorbar(image, cax=bar_axis, orientation="horizontal")
    bar.set_label("Index points above (blue) or below (red) the wave mean", fontsize=10)
    bar.ax.tick_params(labelsize=9)
    axes.set_title(
        "Engagement by unit and wave (coloured only where significant after "
        "Benjamini–Hochberg FDR; hatched = suppressed)",
        fontsize=12,
    )
    return _finish(figure)


def estimates_with_intervals(
    table: pd.DataFrame, label: str, value: str, title: str, axis_label: str, n: str = "n"
) -> plt.Figure:
    """A point and its 95% interval per row of a tidy table, each labelled with its n.

    Parameters
    ----------
    table : DataFrame
        One row per point, with ``conf_low`` and ``conf_high``.
    label, value, n : str
        The columns holding each row's label, estimate and n.
    title, axis_label : str
        The figure's title and the value axis's label.

    Returns
    -------
    Figure
    """
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 0.45 * len(table) + 1.6))
    positions = np.arange(len(table))
    axes.errorbar(
        table[value],
        positions,
        xerr=error_extent(table[value], table["conf_low"], table["conf_high"]),
        fmt="o",
        color=ACCENT,
        ecolor=ACCENT,
        capsize=4,
        markersize=7,
    )
    for y, (_, row) in zip(positions, table.iterrows(), strict=True):
        axes.annotate(
            f"{row[value]:.1f}  (n = {int(row[n]):,})",
            (row["conf_high"], y),
            xytext=(6, -4),
            textcoords="offset points",
            fontsize=9,
            color=MUTED,
        )
    axes.set_yticks(positions, table[label].astype(str))
    axes.invert_yaxis()
    axes.set_xlabel(axis_label)
    # room on the right for the value labels; a range far from 0 is marked as truncated
    _value_axis(axes, table["conf_low"].min(), table["conf_high"].max(), "x", pad=(0.05, 0.35))
    if axes.get_xlim()[0] < 0 < axes.get_xlim()[1]:
        axes.axvline(0, color=MUTED, linewidth=0.8)
    axes.set_title(title)
    sns.despine(ax=axes, left=True)
    return _finish(figure)


NAIVE_COLOUR = "#c2571a"  # the naive analysis, beside ours (ACCENT)


def calibration_rates(
    summary: pd.DataFrame,
    conditions: list[str],
    labels: dict[str, str],
    measure: str = "rejection",
    nominal: float = 0.05,
) -> plt.Figure:
    """Monte-Carlo rates with their Wilson 95% bands, one panel per condition, ours vs naive.

    Parameters
    ----------
    summary : DataFrame
        ``analysis.studies.calibration.summarise``'s table.
    conditions : list of str
        The conditions to show, one panel each.
    labels : dict of str to str
        Display names of the estimands.
    measure : {"rejection", "coverage"}
        The false-positive rate or the coverage of the intervals.
    nominal : float
        The nominal rate.

    Returns
    -------
    Figure

    Notes
    -----
    The dashed line is the nominal rate and the grey strip the range a perfectly calibrated
    method would show 95% of the time with ``R`` replicates::

        nominal ± 1.96 √(nominal (1 − nominal) / R)
    """
    rate = "rejection_rate" if measure == "rejection" else "coverage"
    shown = summary[summary["condition"].isin(conditions)].dropna(subset=[rate])
    estimands = list(dict.fromkeys(shown.sort_values("naive", kind="stable")["estimand"]))
    figure, axes = plt.subplots(
        1,
        len(conditions),
        figsize=(FIGURE_WIDTH, 0.48 * len(estimands) + 2.0),
        sharey=True,
        squeeze=False,
    )
    for axis, condition in zip(axes[0], conditions, strict=True):
        rows = shown[shown["condition"] == condition].set_index("estimand")
        replicates = int(rows["replicates"].max()) if len(rows) else 0
        if replicates:
            half = 1.959964 * np.sqrt(nominal * (1 - nominal) / replicates)
            strip = (100 * max(nominal - half, 0), 100 * min(nominal + half, 1))
            axis.axvspan(*strip, color=SUPPRESSED)
        axis.axvline(100 * nominal, color=MUTED, linestyle="--", linewidth=1)
        for y, estimand in enumerate(estimands):
            if estimand not in rows.index:
                continue
            row = rows.loc[estimand]
            colour = NAIVE_COLOUR if row["naive"] else ACCENT
            value, low, high = (100 * row[c] for c in (rate, f"{measure}_low", f"{measure}_high"))
            axis.errorbar(
                value,
                y,
                xerr=[[max(value - low, 0)], [max(high - value, 0)]],  # rounding at 0% or 100%
                fmt="s" if row["naive"] else "o",
                color=colour,
                ecolor=colour,
                capsize=3,
                markersize=6,
            )
            axis.annotate(
                f"{value:.1f}%",
                (high, y),
                xytext=(5, -4),
                textcoords="offset points",
                fontsize=MIN_FONT,
                color=MUTED,
            )
        axis.set_yticks(range(len(estimands)), [labels.get(e, e) for e in estimands])
        label = rows["label"].iloc[0] if len(rows) else condition
        panel = (FIGURE_WIDTH - 2.8) / len(conditions)  # inches left beside the labels
        axis.set_title(
            _wrap(f"{label} (R = {replicates})", 10, panel), fontsize=10, fontweight="normal"
        )
        axis.set_xlabel(
            _wrap(
                "Share of studies called significant (%)"
                if measure == "rejection"
                else "Share of 95% intervals containing the truth (%)",
                10,
                panel,
            )
        )
        low_limit = 0 if measure == "rejection" else min(50, 100 * shown[f"{measure}_low"].min())
        high_limit = (
            max(20, 100 * shown[f"{measure}_high"].max() + 8) if measure == "rejection" else 103
        )
        axis.set_xlim(low_limit, high_limit)
        axis.grid(axis="y", visible=False)
        sns.despine(ax=axis, left=True)
    axes[0, 0].invert_yaxis()  # once: the panels share their y axis
    what = "False-positive rate" if measure == "rejection" else "Coverage of 95% intervals"
    return _titled(
        figure,
        f"{what}: ours (blue dots) vs the naive analysis (orange squares), "
        f"with Monte-Carlo 95% bands; dashed = nominal {nominal:.0%}",
    )


def power_curves(power: pd.DataFrame, labels: dict[str, str]) -> plt.Figure:
    """Power against the number of units, one line per number of waves, Wilson 95% bands.

    Parameters
    ----------
    power : DataFrame
        ``analysis.studies.calibration.power_table``: ``estimand, n_units, n_waves, replicates,
        rejection_rate, rejection_low, rejection_high``.
    labels : dict of str to str
        Display names of the estimands.

    Returns
    -------
    Figure
    """
    estimands = list(dict.fromkeys(power["estimand"]))
    if not estimands:  # a study run without its power grid (conditions chosen by hand)
        figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 1.6))
        return _nothing_to_show(figure, axes, "No power grid was run.")
    figure, axes = plt.subplots(
        1, len(estimands), figsize=(FIGURE_WIDTH, 4.4), sharey=True, squeeze=False
    )
    panel = (FIGURE_WIDTH - 1.8) / len(estimands) - 0.2
    waves = sorted(power["n_waves"].unique())
    # ordered categories: the quartiles' warm-to-cool colours while they last, then Okabe–Ito
    palette = QUARTILE_COLOURS if len(waves) <= len(QUARTILE_COLOURS) else CATEGORY_COLOURS
    colours = {wave: palette[i % len(palette)] for i, wave in enumerate(waves)}
    for axis, estimand in zip(axes[0], estimands, strict=True):
        rows = power[power["estimand"] == estimand]
        for wave, group in rows.groupby("n_waves"):
            group = group.sort_values("n_units")
            axis.plot(
                group["n_units"],
                100 * group["rejection_rate"],
                marker="o",
                color=colours[wave],
                linestyle=QUARTILE_LINESTYLES[waves.index(wave) % len(QUARTILE_LINESTYLES)],
                linewidth=2,
                label=f"{wave} waves",
            )
            axis.fill_between(
                group["n_units"],
                100 * group["rejection_low"],
                100 * group["rejection_high"],
                color=colours[wave],
                alpha=0.18,
                linewidth=0,
            )
        axis.axhline(80, color=MUTED, linestyle=":", linewidth=1)
        axis.set_ylim(0, 100)
        axis.set_xscale("log")
        units = sorted(rows["n_units"].unique())
        axis.set_xticks(units, [str(u) for u in units])
        axis.minorticks_off()
        if axis is axes[0, len(estimands) // 2]:  # one label for the row: they would overlap
            axis.set_xlabel("Units in the organisation (log scale)")
        axis.set_title(
            _wrap(labels.get(estimand, estimand), 10, panel)
            + f"\n(R = {int(rows['replicates'].min())} per point)",
            fontsize=10,
            fontweight="normal",
        )
        sns.despine(ax=axis)
    axes[0, 0].set_ylabel("Chance of detecting the effect (%)")
    # beside the last panel, not on it: the curves fill every corner of a power plot
    axes[0, -1].legend(title="Waves", frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _titled(
        figure, "Power against units and waves at the generator's default effects (dotted: 80%)"
    )


FOCUS_QUADRANTS = {
    (True, False): "Priority: strong link, low score",
    (True, True): "Strength: strong link, high score",
    (False, True): "Maintain: weaker link, high score",
    (False, False): "Monitor: weaker link, low score",
}


def focus_matrix(
    table: pd.DataFrame,
    labels: dict[str, str] | None = None,
    score_split: float | None = None,
    impact_split: float | None = None,
    score_label: str = "Current score (0–100), with 95% interval",
    impact_label: str = "Link to NPS (points per SD, 95% interval)",
) -> plt.Figure:
    """Each internal scale's current score against its estimated link to NPS, in quadrants.

    Parameters
    ----------
    table : DataFrame
        One row per scale: ``term, score, score_low, score_high, impact, impact_low,
        impact_high``; rows missing any of them are left out. An optional boolean ``clear``
        says which impacts stand out from chance (a test of its own, such as the drivers'
        Benjamini–Hochberg one); without it, those whose interval excludes 0.
    labels : dict of str to str, optional
        Display names of the terms.
    score_split, impact_split : float, optional
        Where the quadrants divide; by default the mean score and the median impact of the
        scales shown (so the quadrants rank the scales against each other).
    score_label, impact_label : str
        The axes' labels.

    Returns
    -------
    Figure
        A point and two intervals per scale. A filled point is a scale whose impact interval
        excludes 0; a hollow one has no clear evidence of a link, whatever its quadrant.

    Notes
    -----
    The quadrant of a scale with score ``s`` and impact ``b`` is ``(b ≥ impact_split,
    s ≥ score_split)``, named in ``FOCUS_QUADRANTS`` as vendor focus matrices name them:
    "priority" (strong link, low score) is where a rise in the score is most likely to move NPS.
    A quadrant is a ranking among the scales, not a test; the hollow points say which links the
    data cannot tell from zero.
    """
    columns = ["score", "score_low", "score_high", "impact", "impact_low", "impact_high"]
    table = table.dropna(subset=columns)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 5.6))
    if table.empty:
        return _nothing_to_show(
            figure, axes, "No scale has both a score and an estimated link to show."
        )
    placed: list = []
    x_split = float(table["score"].mean()) if score_split is None else score_split
    y_split = float(table["impact"].median()) if impact_split is None else impact_split
    axes.axvline(x_split, color=MUTED, linewidth=1, linestyle="--")
    axes.axhline(y_split, color=MUTED, linewidth=1, linestyle="--")
    for index, (_, row) in enumerate(table.iterrows()):
        clear = (
            bool(row["clear"])
            if "clear" in row
            else row["impact_low"] > 0 or row["impact_high"] < 0
        )
        colour = CATEGORY_COLOURS[index % len(CATEGORY_COLOURS)]
        axes.errorbar(
            row["score"],
            row["impact"],
            xerr=[[row["score"] - row["score_low"]], [row["score_high"] - row["score"]]],
            yerr=[[row["impact"] - row["impact_low"]], [row["impact_high"] - row["impact"]]],
            fmt="o",
            color=colour,
            ecolor=colour,
            elinewidth=1.5,
            capsize=3,
            markersize=9,
            markerfacecolor=colour if clear else "white",
            markeredgewidth=2,
        )
        placed.append(
            axes.annotate(
                (labels or {}).get(row["term"], row["term"]),
                (row["score"], row["impact"]),
                xytext=(8, 6),
                textcoords="offset points",
                fontsize=10,
                color=INK,
                bbox=LABEL_BOX,
            )
        )
    axes.set_xlabel(score_label)
    axes.set_ylabel(impact_label)
    _value_axis(axes, table["score_low"].min(), table["score_high"].max(), "x", (0.15, 0.25))
    _value_axis(
        axes,
        min(table["impact_low"].min(), y_split),
        max(table["impact_high"].max(), y_split),
        "y",
        (0.12, 0.12),
    )
    if axes.get_ylim()[0] < 0 < axes.get_ylim()[1] and y_split != 0:
        axes.axhline(0, color=MUTED, linewidth=0.8)
    corners = {
        (True, False): (0.01, 0.99, "left", "top"),
        (True, True): (0.99, 0.99, "right", "top"),
        (False, True): (0.99, 0.01, "right", "bottom"),
        (False, False): (0.01, 0.01, "left", "bottom"),
    }
    for key, (x, y, ha, va) in corners.items():
        axes.text(
            x,
            y,
            FOCUS_QUADRANTS[key],
            transform=axes.transAxes,
            ha=ha,
            va=va,
            fontsize=10,
            color=MUTED,
            fontweight="bold" if key == (True, False) else None,
        )
    axes.set_title("Where to focus: each scale's score against its link to customer NPS")
    sns.despine(ax=axes)
    _separate_labels(figure, placed)
    return _finish(figure)


def trend_by_wave(
    table: pd.DataFrame,
    value: str,
    title: str,
    axis_label: str,
    n: str = "n",
    series: str | None = None,
    x_label: str = "Survey wave",
    n_noun: str = "",
) -> plt.Figure:
    """A value over survey waves (or quarters), with its 95% band and the n of each point.

    Parameters
    ----------
    table : DataFrame
        One row per wave (and series): ``wave`` (a date or a label), ``value``, ``conf_low``,
        ``conf_high`` and ``n``.
    value, n : str
        The columns holding the estimate and its count.
    title, axis_label : str
        The figure's title and the value axis's label.
    series : str, optional
        A column whose values are drawn as separate lines, told apart by Okabe–Ito colour and
        line style. Series must share the unit of ``axis_label``: engagement and NPS are two
        figures, not two lines on one axis. Only the first series is drawn with its band (put
        the total first); several overlapping bands would hide each other.
    x_label : str
        The time axis's label.
    n_noun : str
        What ``n`` counts ("units", "answers"), written after each count; ``n = …`` without.

    Returns
    -------
    Figure
        Lines with their bands; the value axis reaches 0 unless the values lie far from it, in
        which case it is marked as truncated (``_value_axis``).
    """
    table = table.dropna(subset=[value, "conf_low", "conf_high"])
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 4.4))
    if table.empty:
        return _nothing_to_show(figure, axes, "No wave has enough answers to show.")
    waves = list(dict.fromkeys(sorted(table["wave"])))
    names = [pd.Timestamp(w).strftime("%b %Y") if not isinstance(w, str) else w for w in waves]
    groups = [(None, table)] if series is None else list(table.groupby(series, sort=False))
    for index, (name, group) in enumerate(groups):
        colour = ACCENT if series is None else CATEGORY_COLOURS[index % len(CATEGORY_COLOURS)]
        group = group.sort_values("wave")
        x = [waves.index(w) for w in group["wave"]]
        axes.plot(
            x,
            group[value],
            marker="o",
            color=colour,
            linewidth=2.4 if index == 0 else 1.3,
            markersize=6 if index == 0 else 4,
            linestyle=QUARTILE_LINESTYLES[index % len(QUARTILE_LINESTYLES)],
            label=None if name is None else str(name),
        )
        if index == 0:  # one band: more would hide each other; the other lines are context
            axes.fill_between(
                x, group["conf_low"], group["conf_high"], color=colour, alpha=0.18, linewidth=0
            )
        if series is None:
            for xi, (_, row) in zip(x, group.iterrows(), strict=True):
                axes.annotate(
                    f"{row[value]:.1f}\n"
                    + (f"{int(row[n]):,} {n_noun}" if n_noun else f"n = {int(row[n]):,}"),
                    (xi, row["conf_high"]),
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color=MUTED,
                )
    axes.set_xticks(range(len(waves)), names)
    axes.set_xlim(-0.4, len(waves) - 0.6)
    axes.set_ylabel(axis_label)
    axes.set_xlabel(x_label)
    _value_axis(axes, table["conf_low"].min(), table["conf_high"].max(), "y", (0.1, 0.3))
    if axes.get_ylim()[0] < 0 < axes.get_ylim()[1]:
        axes.axhline(0, color=MUTED, linewidth=0.8)
    if series is not None:
        axes.legend(frameon=False, loc="best")
    axes.set_title(title)
    sns.despine(ax=axes)
    return _finish(figure)
