"""The house style for figures: one palette, one font size, one look for what is suppressed.

Every figure shows its n, its intervals and what its colours mean. Figures plot aggregates that
``analysis`` computed, never raw rows, so they stay fast at any scale.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis.models import registry
from analysis.report.sentences import level

INK = "#1d2433"
MUTED = "#5b6475"
ACCENT = "#1f5f8b"
QUARTILE_COLOURS = ("#b9c9dc", "#86a6c6", "#4f7fab", "#1f5f8b")
SUPPRESSED = "#e6e8ec"


def _titled(figure: plt.Figure, title: str, fontsize: float = 11) -> plt.Figure:
    """Give a many-panel figure its bold title at the left edge, fit its layout, return it."""
    figure.suptitle(title, x=0.01, ha="left", fontsize=fontsize, fontweight="bold")
    figure.tight_layout()
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
            "figure.dpi": 110,
            "savefig.dpi": 110,
            "figure.figsize": (8, 4.2),
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
        axes.text(
            0.5,
            0.5,
            "No engagement quartile could be formed:\ntoo few unit-waves are large enough to show.",
            ha="center",
            va="center",
            color=MUTED,
            transform=axes.transAxes,
        )
        axes.set_axis_off()
        return figure
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
    span = table["conf_high"].max() - table["conf_low"].min()
    axes.set_ylim(table["conf_low"].min() - 0.15 * span, table["conf_high"].max() + 0.6 * span)
    axes.set_ylabel("Customer NPS (−100 to +100)")
    axes.set_xlabel("Unit engagement quartile in the survey wave before")
    axes.set_title(f"Customer NPS by unit engagement quartile, with {level(confidence)} intervals")
    sns.despine(ax=axes, left=True)
    figure.tight_layout()
    return figure


def coefficient_plot(estimates: pd.DataFrame, alpha: float = 0.05) -> plt.Figure:
    """Every estimand as a point and interval on its own axis, with its no-effect line.

    Parameters
    ----------
    estimates : DataFrame
        The estimates table; rows of estimands without a label, or without an interval, are left
        out.
    alpha : float
        Filled markers are significant after Holm's adjustment (``p_adjusted`` below ``alpha``;
        ``p_value`` where there is no adjusted one).

    Returns
    -------
    Figure
    """
    labels = registry.labels()
    rows = estimates[estimates["estimand"].isin(labels)].dropna(
        subset=["estimate", "conf_low", "conf_high"]
    )
    figure, axes = plt.subplots(len(rows), 1, figsize=(8, 0.85 * len(rows) + 0.6), squeeze=False)
    for axis, (_, row) in zip(axes[:, 0], rows.iterrows(), strict=True):
        label, null = labels[row["estimand"]]
        significant = row.get("p_adjusted", row["p_value"]) < alpha
        axis.axvline(null, color=MUTED, linewidth=1, linestyle="--")
        axis.errorbar(
            row["estimate"],
            0,
            xerr=[[row["estimate"] - row["conf_low"]], [row["conf_high"] - row["estimate"]]],
            fmt="o",
            color=ACCENT,
            ecolor=ACCENT,
            capsize=4,
            markersize=7,
            markerfacecolor=ACCENT if significant else "white",
        )
        low = min(row["conf_low"], null)
        high = max(row["conf_high"], null)
        pad = 0.15 * (high - low or 1)
        axis.set_xlim(low - pad, high + pad)
        axis.set_yticks([])
        axis.set_ylabel("")
        axis.set_title(
            f"{label}: {row['estimate']:.2f}  (n = {int(row['n_units'])} units)",
            fontsize=10,
            fontweight="normal",
            loc="left",
        )
        axis.grid(axis="y", visible=False)
        sns.despine(ax=axis, left=True)
    return _titled(
        figure, "Every estimate with its 95% interval (filled = significant after Holm)", 12
    )


def retention_curves(curves: pd.DataFrame) -> plt.Figure:
    """Kaplan–Meier retention by engagement quartile, with pointwise 95% bands and n.

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
        label = (
            f"{('Bottom', 'Second', 'Third', 'Top')[int(quartile) - 1]} quartile "
            f"(n = {int(group['n'].iloc[0]):,})"
        )
        axes.step(
            group["time"],
            100 * group["retained"],
            where="post",
            color=colour,
            linewidth=2,
            label=label,
        )
        axes.fill_between(
            group["time"],
            100 * group["conf_low"],
            100 * group["conf_high"],
            step="post",
            color=colour,
            alpha=0.2,
            linewidth=0,
        )
    axes.set_xlabel("Days since the first survey wave (or joining, if later)")
    axes.set_ylabel("Customers retained (%)")
    axes.set_title("Customer retention by the engagement quartile of their unit")
    axes.legend(title="Unit engagement", frameon=False)
    sns.despine(ax=axes)
    figure.tight_layout()
    return figure


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
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(table) + 1.2))
    names = [(labels or {}).get(t, t) for t in table["term"]]
    colours = [ACCENT if s else QUARTILE_COLOURS[0] for s in table["significant"]]
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
    axes.set_title(
        "Which internal measures matter most for customer NPS? (dark = significant after FDR)"
    )
    sns.despine(ax=axes, left=True)
    figure.tight_layout()
    return figure


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
    axes.set_ylim(0, 100)
    axes.set_xlabel("True effect: NPS points per SD of engagement")
    axes.set_ylabel("Chance of detecting it (%)")
    suffix = f" ({n_units} units)" if n_units else ""
    axes.set_title(f"How large an effect could this study detect?{suffix}")
    sns.despine(ax=axes)
    figure.tight_layout()
    return figure


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
    figure, axes = plt.subplots(figsize=(8, 0.28 * len(units) + 1.6))
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
        rotation=0,
        fontsize=8,
    )
    axes.set_yticks(range(len(units)), list(unit_labels.to_numpy()), fontsize=8)
    axes.grid(False)
    bar = figure.colorbar(image, ax=axes, fraction=0.03, pad=0.02)
    bar.set_label("Index points above (blue) or below (red) the wave mean", fontsize=8)
    axes.set_title(
        "Engagement by unit and wave (coloured only where significant after FDR; "
        "hatched = suppressed)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


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
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(table) + 1.4))
    positions = np.arange(len(table))
    axes.errorbar(
        table[value],
        positions,
        # an interval that ends at its estimate (a Wilson bound at 100%) may miss it by 1e-16
        xerr=[
            (table[value] - table["conf_low"]).clip(lower=0),
            (table["conf_high"] - table[value]).clip(lower=0),
        ],
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
            xytext=(6, -3),
            textcoords="offset points",
            fontsize=8,
            color=MUTED,
        )
    axes.set_yticks(positions, table[label].astype(str))
    axes.invert_yaxis()
    span = table["conf_high"].max() - table["conf_low"].min()
    axes.set_xlim(table["conf_low"].min() - 0.05 * span, table["conf_high"].max() + 0.35 * span)
    axes.set_xlabel(axis_label)
    axes.set_title(title)
    sns.despine(ax=axes, left=True)
    figure.tight_layout()
    return figure


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
        figsize=(4.6 * len(conditions) + 2.6, 0.48 * len(estimands) + 1.6),
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
                xytext=(5, -3),
                textcoords="offset points",
                fontsize=8,
                color=MUTED,
            )
        axis.set_yticks(range(len(estimands)), [labels.get(e, e) for e in estimands])
        label = rows["label"].iloc[0] if len(rows) else condition
        axis.set_title(f"{label} (R = {replicates})", fontsize=10, fontweight="normal")
        axis.set_xlabel(
            "Share of studies called significant (%)"
            if measure == "rejection"
            else "Share of 95% intervals containing the truth (%)"
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
    figure, axes = plt.subplots(
        1, len(estimands), figsize=(4.2 * len(estimands), 4.0), sharey=True, squeeze=False
    )
    waves = sorted(power["n_waves"].unique())
    picks = np.linspace(1, len(QUARTILE_COLOURS) - 1, len(waves)).round().astype(int)
    colours = dict(zip(waves, [QUARTILE_COLOURS[i] for i in picks], strict=True))
    for axis, estimand in zip(axes[0], estimands, strict=True):
        rows = power[power["estimand"] == estimand]
        for wave, group in rows.groupby("n_waves"):
            group = group.sort_values("n_units")
            axis.plot(
                group["n_units"],
                100 * group["rejection_rate"],
                marker="o",
                color=colours[wave],
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
        axis.set_xlabel("Units in the organisation")
        axis.set_title(
            f"{labels.get(estimand, estimand)}\n(R = {int(rows['replicates'].min())} per point)",
            fontsize=10,
            fontweight="normal",
        )
        sns.despine(ax=axis)
    axes[0, 0].set_ylabel("Chance of detecting the effect (%)")
    axes[0, -1].legend(title="Survey waves", frameon=False)
    return _titled(
        figure, "Power against units and waves at the generator's default effects (dotted: 80%)"
    )
