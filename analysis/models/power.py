"""How small an effect could this dataset have detected? Minimum detectable effects and power.

For an estimator with standard error ``SE`` and ``df`` degrees of freedom (clusters − 1), a
two-sided test at level α has power ``1 − β`` against effects of at least::

    MDE = (t_{1−α/2, df} + t_{1−β, df}) · SE

(Bloom, 1995, "Minimum detectable effects: a simple way to report the statistical power of
experimental designs", *Evaluation Review* 19(5), 547–556). Power against an effect δ is
``P(|T| > t_{1−α/2})`` with ``T`` noncentral t with noncentrality ``δ / SE``. The SE comes from
the fitted model, so it reflects this dataset's units, waves and answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def minimum_detectable_effect(
    std_error: float, df: int, alpha: float = 0.05, power: float = 0.80
) -> float:
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * std_error)


def power_at(
    effect: float | np.ndarray, std_error: float, df: int, alpha: float = 0.05
) -> np.ndarray:
    """Two-sided power of a t test against ``effect``, via the noncentral t distribution."""
    critical = stats.t.ppf(1 - alpha / 2, df)
    shift = np.asarray(effect, dtype=float) / std_error
    return stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)


def power_curve(
    std_error: float, df: int, effects: Sequence[float], alpha: float = 0.05
) -> pd.DataFrame:
    """Power against each effect size for this dataset's design: ``effect, power``."""
    effects = np.asarray(effects, dtype=float)
    return pd.DataFrame({"effect": effects, "power": power_at(effects, std_error, df, alpha)})


def mde_row(estimate_row: dict, alpha: float = 0.05, power: float = 0.80) -> dict:
    """The MDE of a linkage estimate as a tidy row (the interval is not applicable)."""
    df = int(estimate_row["n_units"]) - 1
    mde = minimum_detectable_effect(float(estimate_row["std_error"]), df, alpha, power)
    return {
        "estimand": f"{estimate_row['estimand']}_mde",
        "term": estimate_row["term"],
        "estimate": mde,
        "std_error": float(estimate_row["std_error"]),
        "conf_low": np.nan,
        "conf_high": np.nan,
        "p_value": np.nan,
        "n_obs": estimate_row["n_obs"],
        "n_units": estimate_row["n_units"],
        "method": f"minimum detectable effect at {power:.0%} power, two-sided α = {alpha}"
        " (Bloom 1995)",
    }
