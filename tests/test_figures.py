"""Charts a reader trusts (issue 12, item 6): axes, colours, label sizes and shared axes.

Every figure is drawn from small tables of the shape the notebooks pass, saved as the notebook's
inline backend saves it (PNG, ``bbox_inches="tight"``), and measured as the page shows it.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from analysis.models import registry  # noqa: E402
from analysis.report import figures  # noqa: E402

CSS = Path(figures.__file__).parent / "templates" / "inside_out" / "report.css"
MIN_PX = 11.0


def column_px() -> float:
    """The text column's width in CSS px at a 1280 px page, read from report.css."""
    css = CSS.read_text(encoding="utf-8")
    rules = re.findall(r"([^{}]*)\{([^}]*)\}", css)
    rule = next(
        body for selectors, body in rules if ".io-main" in selectors and "max-width" in body
    )
    width = float(re.search(r"max-width:\s*(\d+)px", rule).group(1))
    padding = float(re.search(r"padding:\s*0\s+(\d+)px", rule).group(1))
    return min(width, 1280) - 2 * padding


def png_width(figure: plt.Figure) -> int:
    """The figure's PNG width in pixels, saved as matplotlib-inline saves it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return Image.open(io.BytesIO(buffer.getvalue())).size[0]


def smallest_font_px(figure: plt.Figure) -> tuple[float, str]:
    """The smallest visible text of ``figure`` in CSS px at a 1280 px page, and the text.

    A font of ``s`` points in a PNG ``W`` pixels wide at ``d`` dpi is ``s·d/72`` image pixels,
    and the page shows the image at ``min(W, column)`` CSS pixels: a scale of
    ``min(1, column / W)``.
    """
    width = png_width(figure)
    scale = min(1.0, column_px() / width)
    sizes = [
        (text.get_fontsize() * figure.dpi / 72 * scale, text.get_text())
        for text in figure.findobj(matplotlib.text.Text)
        if text.get_visible() and text.get_text().strip()
    ]
    return min(sizes)


def estimates_table() -> pd.DataFrame:
    rows = {
        "nps_on_engagement": (2.4, -2.3, 7.1),
        "nps_on_engagement_within": (1.1, -3.0, 5.2),
        "engagement_on_prior_nps": (0.02, -0.48, 0.54),
        "churn_hazard_on_engagement": (0.89, 0.81, 0.98),
        "nps_quartile_gap": (6.0, 1.0, 11.0),
        "retention_quartile_gap": (3.1, 0.4, 5.8),
        "nps_mediated_share": (0.2, -0.1, 0.5),
        "nps_on_engagement_mde": (4.0, np.nan, np.nan),
    }
    return pd.DataFrame(
        [
            {
                "estimand": name,
                "estimate": value,
                "conf_low": low,
                "conf_high": high,
                "p_value": 0.01,
                "p_adjusted": 0.04 if name == "churn_hazard_on_engagement" else 0.3,
                "n_units": 120,
            }
            for name, (value, low, high) in rows.items()
        ]
    )


def quartile_table(levels=(22.0, 26.0, 31.0, 38.0)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": [f"{q} quartile" for q in ("Bottom", "Second", "Third", "Top")],
            "nps": list(levels),
            "conf_low": [v - 4 for v in levels],
            "conf_high": [v + 4 for v in levels],
            "n_responses": [900, 950, 1000, 980],
            "n_units": [30, 30, 30, 30],
        }
    )


def km_curves() -> pd.DataFrame:
    time = np.arange(0, 400, 30)
    frames = []
    for quartile in (1, 2, 3, 4):
        retained = np.exp(-time / (900 + 150 * quartile))
        frames.append(
            pd.DataFrame(
                {
                    "quartile": quartile,
                    "time": time,
                    "retained": retained,
                    "conf_low": retained - 0.03,
                    "conf_high": np.minimum(retained + 0.03, 1),
                    "n": 800,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def drivers_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": ["internal_communication", "brand_alignment", "points_of_connection"],
            "share": [45.0, 35.0, 20.0],
            "share_conf_low": [20.0, 12.0, 3.0],
            "share_conf_high": [70.0, 58.0, 40.0],
            "significant": [True, False, False],
        }
    )


def heatmap_inputs(n_units: int = 24, n_waves: int = 8):
    rng = np.random.default_rng(3)
    waves = pd.date_range("2024-03-01", periods=n_waves, freq="QS")
    units = [f"U{i:03d}" for i in range(n_units)]
    cells = pd.DataFrame(
        [(u, w) for u in units for w in waves], columns=["unit_id", "wave"]
    ).assign(
        engagement_index=rng.normal(70, 8, n_units * n_waves),
        difference=rng.normal(0, 8, n_units * n_waves),
        significant=rng.random(n_units * n_waves) < 0.2,
        suppressed=rng.random(n_units * n_waves) < 0.05,
    )
    labels = pd.Series([f"Contact centre King's Lynn {i}" for i in range(n_units)], index=units)
    return cells, labels


def connection_scorecard() -> pd.DataFrame:
    names = ["Listening", "Feeling valued", "Resolving differences", "Honesty", "Doing what we say"]
    means = [70.7, 70.9, 71.1, 70.8, 70.9]
    return pd.DataFrame(
        {
            "label": names,
            "mean": means,
            "conf_low": [m - 0.3 for m in means],
            "conf_high": [m + 0.3 for m in means],
            "n": [22_787] * 5,
        }
    )


def nps_by_quarter(levels=(22.0, 30.0, 38.0, 27.0)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "quarter": [f"2025Q{i}" for i in range(1, len(levels) + 1)],
            "nps": list(levels),
            "conf_low": [v - 3 for v in levels],
            "conf_high": [v + 3 for v in levels],
            "n": [1500] * len(levels),
        }
    )


def calibration_summary() -> pd.DataFrame:
    rows = []
    for condition in ("no_effect", "no_effect_confounded"):
        for name, naive in (
            ("nps_on_engagement", False),
            ("churn_hazard_on_engagement", False),
            ("naive_ols", True),
        ):
            rows.append(
                {
                    "condition": condition,
                    "label": condition.replace("_", " "),
                    "estimand": name,
                    "naive": naive,
                    "replicates": 200,
                    "rejection_rate": 0.3 if naive else 0.05,
                    "rejection_low": 0.24 if naive else 0.03,
                    "rejection_high": 0.37 if naive else 0.09,
                }
            )
    return pd.DataFrame(rows)


def power_table() -> pd.DataFrame:
    rows = []
    for name in ("nps_on_engagement", "nps_on_engagement_within", "churn_hazard_on_engagement"):
        for units in (30, 60, 120, 240):
            for waves in (2, 4, 8):
                rate = min(0.99, units * waves / 1000)
                rows.append(
                    {
                        "estimand": name,
                        "n_units": units,
                        "n_waves": waves,
                        "replicates": 100,
                        "rejection_rate": rate,
                        "rejection_low": max(rate - 0.1, 0),
                        "rejection_high": min(rate + 0.1, 1),
                    }
                )
    return pd.DataFrame(rows)


def focus_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "term": [
                "engagement",
                "internal_communication",
                "brand_alignment",
                "points_of_connection",
            ],
            "score": [71.0, 64.0, 75.0, 70.9],
            "score_low": [70.5, 63.4, 74.5, 70.6],
            "score_high": [71.5, 64.6, 75.5, 71.2],
            "impact": [2.4, 3.1, 0.4, 1.2],
            "impact_low": [0.5, 1.0, -1.5, -0.8],
            "impact_high": [4.3, 5.2, 2.3, 3.2],
        }
    )


def trend_table() -> pd.DataFrame:
    waves = pd.date_range("2024-03-01", periods=6, freq="QS")
    levels = np.array([70.2, 70.8, 71.1, 70.5, 71.4, 71.9])
    return pd.DataFrame(
        {
            "wave": waves,
            "engagement": levels,
            "conf_low": levels - 0.6,
            "conf_high": levels + 0.6,
            "n": [5_400] * 6,
        }
    )


LABELS = {
    "nps_on_engagement": "NPS points per SD of engagement",
    "nps_on_engagement_within": "… within the same unit over time",
    "churn_hazard_on_engagement": "Churn hazard ratio per SD of engagement",
    "naive_ols": "Naive OLS on unit-wave means",
}


def every_figure():
    """Every figure function with inputs of the shape the notebooks pass (name, figure)."""
    cells, labels = heatmap_inputs()
    curve = pd.DataFrame({"effect": np.linspace(0, 12, 61)}).assign(
        power=lambda t: 1 - np.exp(-((t["effect"] / 5) ** 2))
    )
    yield "nps_by_quartile", lambda: figures.nps_by_quartile(quartile_table())
    yield "coefficient_plot", lambda: figures.coefficient_plot(estimates_table())
    yield "retention_curves", lambda: figures.retention_curves(km_curves())
    yield (
        "driver_importance",
        lambda: figures.driver_importance(
            drivers_table(), {"internal_communication": "Internal communication"}
        ),
    )
    yield "power_curve", lambda: figures.power_curve(curve, 5.8, 2.4, 120)
    yield "engagement_heatmap", lambda: figures.engagement_heatmap(cells, labels)
    yield (
        "points_of_connection",
        lambda: figures.estimates_with_intervals(
            connection_scorecard(),
            "label",
            "mean",
            "The six points of connection (0–100, with 95% intervals)",
            "Score (0–100)",
        ),
    )
    yield (
        "nps_by_quarter",
        lambda: figures.estimates_with_intervals(
            nps_by_quarter(),
            "quarter",
            "nps",
            "Customer NPS by quarter, with 95% intervals (clustered by unit)",
            "NPS (−100 to +100)",
        ),
    )
    yield (
        "focus_matrix",
        lambda: figures.focus_matrix(
            focus_table(), {"internal_communication": "Internal communication"}
        ),
    )
    yield (
        "trend_by_wave",
        lambda: figures.trend_by_wave(
            trend_table(),
            "engagement",
            "Engagement by wave, with 95% intervals",
            "Engagement index",
        ),
    )
    yield (
        "calibration_rates",
        lambda: figures.calibration_rates(
            calibration_summary(), ["no_effect", "no_effect_confounded"], LABELS
        ),
    )
    yield "power_curves", lambda: figures.power_curves(power_table(), LABELS)


@pytest.fixture(autouse=True)
def house_style():
    figures.use_house_style()
    yield
    plt.close("all")


def test_the_column_width_in_figures_matches_the_css():
    assert column_px() == figures.COLUMN_PX
    assert column_px() >= figures.FIGURE_WIDTH * figures.DPI


@pytest.mark.parametrize(
    "name, draw", list(every_figure()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_label_is_at_least_11_px_on_a_1280_px_page(name, draw):
    figure = draw()
    size, text = smallest_font_px(figure)
    assert size >= MIN_PX, f"{name}: {text!r} is {size:.1f} px"
    # shown at its own size: a figure wider than the column would shrink every label with it
    assert png_width(figure) <= column_px() * 1.02, name


def test_the_heat_map_uses_the_full_width():
    cells, labels = heatmap_inputs()
    figure = figures.engagement_heatmap(cells, labels)
    figure.canvas.draw()
    heat = figure.axes[0].get_window_extent()
    assert figure.get_size_inches()[0] == pytest.approx(figures.FIGURE_WIDTH)
    # the cells take most of the width left of the unit names (they took under half before)
    assert heat.width / (figure.get_size_inches()[0] * figure.dpi) > 0.55


def test_bars_start_at_zero():
    figure = figures.driver_importance(drivers_table())
    low, high = figure.axes[0].get_xlim()
    assert low == 0 and high > 0
    # shares whose intervals all lie far from zero still start at zero: a bar's length is read
    far = drivers_table().assign(
        share=[60.0, 55.0, 50.0], share_conf_low=[58.0, 53.0, 48.0], share_conf_high=[62.0] * 3
    )
    assert figures.driver_importance(far).axes[0].get_xlim()[0] == 0


@pytest.mark.parametrize("levels", [(22.0, 26.0, 31.0, 38.0), (-12.0, -5.0, 3.0, 9.0)])
def test_nps_axes_reach_zero_when_it_costs_little(levels):
    """NPS of 22 to 38 is drawn from 0, so four-point differences do not look large."""
    figure = figures.nps_by_quartile(quartile_table(levels))
    low, high = figure.axes[0].get_ylim()
    assert low <= 0 <= high
    figure = figures.estimates_with_intervals(
        nps_by_quarter(levels), "quarter", "nps", "t", "NPS (−100 to +100)"
    )
    low, high = figure.axes[0].get_xlim()
    assert low <= 0 <= high
    assert "not 0" not in figure.axes[0].get_xlabel()


def test_a_truncated_dot_axis_says_so():
    """Points of connection between 70.4 and 71.8: the axis keeps its range and is marked."""
    figure = figures.estimates_with_intervals(
        connection_scorecard(), "label", "mean", "t", "Score (0–100)"
    )
    axis = figure.axes[0]
    low, _ = axis.get_xlim()
    assert low > 0
    assert "not 0" in axis.get_xlabel() and f"{low:.3g}" in axis.get_xlabel()
    # the break mark: two short lines drawn outside the axes at its left end
    breaks = [line for line in axis.get_lines() if not line.get_clip_on()]
    assert len(breaks) == 2


def test_the_retention_curves_have_distinct_colour_blind_safe_colours():
    figure = figures.retention_curves(km_curves())
    lines = [line for line in figure.axes[0].get_lines() if line.get_label().endswith(")")]
    colours = [mcolors.to_hex(line.get_color()).upper() for line in lines]
    assert len(lines) == 4
    assert len(set(colours)) == 4
    assert set(colours) <= {c.upper() for c in figures.OKABE_ITO}
    # told apart without colour too (grey-scale print, where two Okabe–Ito hues can have the
    # same lightness): four line styles
    assert len({line.get_linestyle() for line in lines}) == 4


def test_the_coefficient_plot_has_one_axis_per_unit_of_measure():
    estimates = estimates_table()
    figure = figures.coefficient_plot(estimates)
    shown = estimates.dropna(subset=["conf_low"])
    shown = shown[shown["estimand"].isin(registry.labels())]
    units = list(dict.fromkeys(figures.unit_of(name) for name in shown["estimand"]))
    assert len(figure.axes) == len(units) < len(shown)
    for axis, unit in zip(figure.axes, units, strict=True):
        assert axis.get_xlabel() == unit
        in_unit = shown[shown["estimand"].map(figures.unit_of) == unit]
        assert len(axis.get_yticks()) == len(in_unit)
        low, high = axis.get_xlim()
        assert low <= in_unit["conf_low"].min() and in_unit["conf_high"].max() <= high
    # estimands of one registry scale but different units never share an axis
    nps_axis = figure.axes[units.index("NPS points")]
    assert len(nps_axis.get_yticks()) == 3  # the slope, the within-unit slope and the gap
    # a ratio is drawn on a log axis with its no-effect line at 1
    ratio_axis = figure.axes[units.index(figures.unit_of("churn_hazard_on_engagement"))]
    assert ratio_axis.get_xscale() == "log"
    assert any(
        line.get_xdata()[0] == 1.0
        for line in ratio_axis.get_lines()
        if line.get_linestyle() == "--"
    )


def test_an_unbounded_interval_is_left_out_of_the_coefficient_plot():
    """Fieller's interval for the chain's share is the whole line when the link it divides
    may be zero: the plot leaves that row out rather than fail on an infinite axis."""
    chain = pd.DataFrame(
        [
            {"estimand": "nps_on_internal_service", "estimate": 2.0, "conf_low": 0.5,
             "conf_high": 3.5, "p_value": 0.01, "p_adjusted": 0.04, "n_units": 120},
            {"estimand": "nps_via_engagement_share", "estimate": 0.4, "conf_low": -np.inf,
             "conf_high": np.inf, "p_value": 0.3, "p_adjusted": 0.9, "n_units": 120},
        ]
    )  # fmt: skip
    estimates = pd.concat([estimates_table(), chain], ignore_index=True)
    figure = figures.coefficient_plot(estimates)
    units = [axis.get_xlabel() for axis in figure.axes]
    assert figures.unit_of("nps_via_engagement_share") not in units
    assert all(np.isfinite(axis.get_xlim()).all() for axis in figure.axes)
    nps_axis = figure.axes[units.index("NPS points")]
    assert len(nps_axis.get_yticks()) == 4  # the chain's total link joins the NPS axis


def test_power_curves_without_a_power_grid_say_so():
    """A calibration study run on hand-picked conditions may have no power grid."""
    figure = figures.power_curves(power_table().iloc[:0], LABELS)
    assert [t.get_text() for t in figure.axes[0].texts] == ["No power grid was run."]


def test_every_tested_estimand_has_a_unit():
    for estimand in registry.ESTIMANDS:
        if estimand.tested:
            assert figures.unit_of(estimand.name)


def test_the_focus_matrix_names_quadrants_and_hollows_links_it_cannot_tell_from_zero():
    figure = figures.focus_matrix(focus_table())
    axis = figure.axes[0]
    texts = {t.get_text() for t in axis.texts}
    assert set(figures.FOCUS_QUADRANTS.values()) <= texts
    # engagement and internal communication have intervals above 0: filled; the others hollow
    markers = [line for line in axis.get_lines() if line.get_marker() == "o"]
    filled = [mcolors.to_hex(m.get_markerfacecolor()) != "#ffffff" for m in markers]
    assert filled == [True, True, False, False]
    # scores of 63 to 76 on a 0–100 scale: a truncated axis, marked
    assert "not 0" in axis.get_xlabel()


def test_a_trend_on_a_truncated_axis_says_so_and_one_near_zero_reaches_it():
    figure = figures.trend_by_wave(trend_table(), "engagement", "t", "Engagement index")
    assert "not 0" in figure.axes[0].get_ylabel()
    near = trend_table().assign(engagement=[8.0, 12, 15, 9, 11, 14])
    near = near.assign(conf_low=near["engagement"] - 4, conf_high=near["engagement"] + 4)
    figure = figures.trend_by_wave(near, "engagement", "t", "NPS (−100 to +100)")
    low, high = figure.axes[0].get_ylim()
    assert low <= 0 <= high and "not 0" not in figure.axes[0].get_ylabel()
