"""Tidy tables into plain words and display tables for leadership.

Every sentence carries its number, its interval and its n, so the report never states a finding
without saying how sure we are and how much data it rests on.
"""

from __future__ import annotations

import html

import pandas as pd


def signed(value: float, digits: int = 1) -> str:
    """``+6.1`` / ``−2.3`` (a true minus sign) / ``0.0``."""
    text = f"{abs(value):.{digits}f}"
    if round(value, digits) > 0:
        return f"+{text}"
    if round(value, digits) < 0:
        return f"−{text}"
    return text


def interval(low: float, high: float, digits: int = 1) -> str:
    return f"{signed(low, digits)} to {signed(high, digits)}"


def quartile_headline(table: pd.DataFrame, gap: pd.DataFrame, confidence: float = 0.95) -> str:
    """One paragraph comparing the top and bottom engagement quartiles' customer NPS."""
    top = table.loc[table["quartile"] == 4].iloc[0]
    bottom = table.loc[table["quartile"] == 1].iloc[0]
    row = gap.iloc[0]
    level = f"{confidence:.0%}"
    if row["conf_low"] > 0:
        reading = "Customers of the most engaged units were clearly more likely to recommend us."
    elif row["conf_high"] < 0:
        reading = "Customers of the most engaged units were clearly less likely to recommend us."
    else:
        reading = (
            "The data cannot tell the two groups apart: the interval for the gap includes zero."
        )
    return (
        f"In the quarter after a survey wave, customers of units in the top engagement quartile "
        f"gave an NPS of {signed(top['nps'])} "
        f"({level} CI {interval(top['conf_low'], top['conf_high'])}; "
        f"{top['n_responses']:,} answers from {top['n_units']} units), against "
        f"{signed(bottom['nps'])} ({interval(bottom['conf_low'], bottom['conf_high'])}; "
        f"{bottom['n_responses']:,} answers from {bottom['n_units']} units) in the bottom "
        f"quartile: a gap of {signed(row['estimate'])} points ({level} CI "
        f"{interval(row['conf_low'], row['conf_high'])}). {reading}"
    )


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
            f"{confidence:.0%} interval": [
                interval(lo, hi)
                for lo, hi in zip(table["conf_low"], table["conf_high"], strict=True)
            ],
        }
    )
    return shown.to_html(index=False, escape=True, border=0, classes="io-table")


def paragraph(text: str, css_class: str = "") -> str:
    """Escape text into an HTML paragraph (names in the data may contain any characters)."""
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<p{attribute}>{html.escape(text)}</p>"
