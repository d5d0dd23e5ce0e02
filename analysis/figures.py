"""The house style for figures: one palette, one font size, one look for what is suppressed.

Every figure shows its n, its intervals and what its colours mean. Figures plot aggregates that
``analysis`` computed, never raw rows, so they stay fast at any scale.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

INK = "#1d2433"
MUTED = "#5b6475"
ACCENT = "#1f5f8b"
QUARTILE_COLOURS = ("#b9c9dc", "#86a6c6", "#4f7fab", "#1f5f8b")
SUPPRESSED = "#e6e8ec"


def use_house_style() -> None:
    """Apply the house style to matplotlib and seaborn (call once per notebook)."""
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
        },
    )


def nps_by_quartile(table: pd.DataFrame, confidence: float = 0.95) -> plt.Figure:
    """Point-and-interval plot of NPS by engagement quartile, each point labelled with its n."""
    figure, axes = plt.subplots()
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
    axes.set_title(f"Customer NPS by unit engagement quartile, with {confidence:.0%} intervals")
    sns.despine(ax=axes, left=True)
    figure.tight_layout()
    return figure
