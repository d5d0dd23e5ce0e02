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

from analysis.models.tidy import computed_row


def minimum_detectable_effect(
    std_error: float, df: int, alpha: float = 0.05, power: float = 0.80
) -> float:
    """The smallest true effect a two-sided t test detects with the given power.

    Parameters
    ----------
    std_error : float
        Standard error of the estimator on this dataset.
    df : int
        Degrees of freedom of its t reference (clusters − 1).
    alpha : float
        Two-sided significance level.
    power : float
        Required power, ``1 − β``.

    Returns
    -------
    float
        ``MDE = (t_{1−α/2, df} + t_{1−β, df}) · SE``, on the estimator's own scale.

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical
    power of experimental designs. *Evaluation Review* 19(5), 547–556.
    """
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
    """The minimum detectable effect of a linkage estimate as a tidy row.

    Parameters
    ----------
    estimate_row : dict
        The estimate's tidy row (``tidy.tidy_row``); its SE facts are carried over.
    alpha : float
        Two-sided level of the test.
    power : float
        Power against the detectable effect.

    Returns
    -------
    dict
        A ``tidy.tidy_row`` named ``<estimand>_mde`` with the MDE as ``estimate``, the
        estimate's ``std_error``, and no interval or p-value (not applicable).

    Notes
    -----
    ``MDE = (t_{1−α/2, df} + t_{power, df}) · SE`` with ``df = units − 1``
    (``minimum_detectable_effect``).

    References
    ----------
    Bloom, H. S. (1995). Minimum detectable effects: a simple way to report the statistical
    power of experimental designs. *Evaluation Review* 19(5), 547–556.
    """
    df = int(estimate_row["n_units"]) - 1
    mde = minimum_detectable_effect(float(estimate_row["std_error"]), df, alpha, power)
    return computed_row(
        f"{estimate_row['estimand']}_mde",
        estimate_row["term"],
        # no interval or test: the MDE is a property of the design, not an estimate
        {**estimate_row, "estimate": mde, "conf_low": np.nan, "conf_high": np.nan}
        | {"p_value": np.nan},
        method=f"minimum detectable effect at {power:.0%} power, two-sided α = {alpha}"
        " (Bloom 1995)",
        se_method=estimate_row.get("se_method", "none"),
        jackknife_groups=estimate_row.get("jackknife_groups", 0),
        bootstrap_draws=estimate_row.get("bootstrap_draws", 0),
        correction=estimate_row.get("correction", "none"),
    )
