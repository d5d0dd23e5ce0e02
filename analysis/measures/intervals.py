"""Intervals for a proportion and for a mean, shared by every measure."""

from __future__ import annotations

import numpy as np
from scipy import stats


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, on 0 … 1.

    Parameters
    ----------
    successes : int
        Successes, ``0 … n``.
    n : int
        Trials; ``n = 0`` gives NaNs.
    confidence : float
        The interval's level.

    Returns
    -------
    tuple of float
        ``(low, high)``.

    Raises
    ------
    ValueError
        If ``successes`` lies outside ``0 … n``.

    Notes
    -----
    With ``p = successes / n`` and ``z`` the standard normal quantile at ``(1 + confidence) / 2``::

        centre    = (p + z² / (2n)) / (1 + z² / n)
        halfwidth = z / (1 + z² / n) · √(p (1 − p) / n + z² / (4 n²))

    The interval inverts the score test, so it never leaves [0, 1] and does not collapse to a
    point when ``p`` is 0 or 1, unlike the Wald interval (Wilson, 1927; recommended by Newcombe,
    1998, and by Brown, Cai & DasGupta, 2001). Assumes independent answers.

    References
    ----------
    Brown, L. D., Cai, T. T., & DasGupta, A. (2001). Interval estimation for a binomial
    proportion. *Statistical Science* 16(2), 101–133.

    Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion: comparison
    of seven methods. *Statistics in Medicine* 17(8), 857–872.

    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    *Journal of the American Statistical Association* 22(158), 209–212.
    """
    if n == 0:
        return np.nan, np.nan
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0 … n; got {successes} of {n}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    halfwidth = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(centre - halfwidth, 0.0), min(centre + halfwidth, 1.0)


def mean_with_t_interval(
    values: np.ndarray, confidence: float, bounds: tuple[float, float]
) -> dict[str, float]:
    """Mean, standard error ``s / √n`` and Student-t interval (``n − 1`` df) clipped to bounds.

    Parameters
    ----------
    values : ndarray
        The observations, none missing.
    confidence : float
        The interval's level.
    bounds : tuple of float
        The range the mean cannot leave; the interval is clipped to it.

    Returns
    -------
    dict
        ``mean, std_error, conf_low, conf_high``; all but ``mean`` NaN with fewer than two values.

    Notes
    -----
    ``mean ± t_{(1 + confidence)/2, n − 1} · s / √n``, with ``s`` the sample standard deviation.
    """
    n = len(values)
    mean = float(values.mean()) if n else np.nan
    if n < 2:
        return {"mean": mean, "std_error": np.nan, "conf_low": np.nan, "conf_high": np.nan}
    std_error = float(values.std(ddof=1) / np.sqrt(n))
    t = stats.t.ppf(0.5 + confidence / 2, n - 1)
    return {
        "mean": mean,
        "std_error": std_error,
        "conf_low": max(mean - t * std_error, bounds[0]),
        "conf_high": min(mean + t * std_error, bounds[1]),
    }


def unit_multiplicities(rng: np.random.Generator, n_units: int, draws: int) -> np.ndarray:
    """How often each unit is drawn in ``draws`` cluster-bootstrap resamples of ``n_units``
    units out of ``n_units`` (with replacement, equally likely): ``draws × n_units`` counts.

    Each row is a multinomial draw of ``n_units`` over equal shares, made as the counts of
    ``n_units`` uniform unit indices (half the time of ``Generator.multinomial``, which draws
    one binomial per unit). Rows are drawn in order, so the chunks a caller asks for do not
    change the draws.
    """
    counts = np.empty((draws, n_units))
    for b in range(draws):
        counts[b] = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
    return counts
