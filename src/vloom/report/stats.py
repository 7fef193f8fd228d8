"""Interval statistics shared by the run report, the study report and the sweep: numpy only.

Every interval is (low, high) at `level` (0.95 by default). Bootstraps resample examples with
a fixed seed, so a report rebuilt from the same files shows the same intervals.
- `bootstrap_ci`: percentile interval of a mean over examples (one run's accuracy).
- `paired_bootstrap_ci`: the same for mean(a - b) where a[i] and b[i] are the same example
  scored by two models (run vs control, setting A vs B); pairing removes the examples'
  shared difficulty from the interval.
- `t_interval`: Student t interval of a mean over few values (per-seed differences).
- `standard_error`: binomial standard error of an accuracy p on n examples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "Interval",
    "bootstrap_ci",
    "excludes_zero",
    "paired_bootstrap_ci",
    "standard_error",
    "t_interval",
]

Interval = tuple[float, float]


def _resampled_means(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Means of `n` resamples of the rows of x (1-d: values; 2-d: groups resampled together)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n, len(x)))
    return x[idx].mean(axis=1)


def _percentiles(means: np.ndarray, level: float) -> Interval:
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    values: Sequence[float], n: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Percentile bootstrap interval of the mean of `values` (e.g. 0/1 correct per example)."""
    _check_level(level)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci: no values")
    return _percentiles(_resampled_means(x, n, seed), level)


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], n: int = 2000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Percentile bootstrap interval of mean(a - b), resampling example pairs (a[i], b[i])."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired_bootstrap_ci: {x.size} values paired with {y.size}")
    return bootstrap_ci(x - y, n, seed, level)


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student t interval of the mean of a few values (per-seed results or differences).

    One value has no spread: the interval is (nan, nan), which no caller reads as resolved."""
    _check_level(level)
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    m, se = float(x.mean()), float(x.std(ddof=1)) / math.sqrt(x.size)
    q = _t_quantile(1.0 - (1.0 - level) / 2.0, x.size - 1)
    return m - q * se, m + q * se


def standard_error(p: float, n: int) -> float:
    """Binomial standard error sqrt(p (1 - p) / n) of an accuracy p measured on n examples."""
    if n <= 0:
        return math.nan
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def excludes_zero(ci: Interval) -> bool:
    """Whether an interval of a difference lies wholly on one side of 0 (a resolved difference)."""
    lo, hi = ci
    return bool(lo > 0 or hi < 0)  # nan compares False: an unknown interval resolves nothing


def _t_cdf(t: float, df: int) -> float:
    """Student t CDF via the regularised incomplete beta (continued fraction, Numerical
    Recipes `betacf`): numpy has no t distribution and scipy is not a dependency."""
    x = df / (df + t * t)
    a, b = df / 2.0, 0.5
    lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - lbeta) / a
    # Lentz's continued fraction for I_x(a, b)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    tail = 0.5 * front * f  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def _t_quantile(p: float, df: int) -> float:
    """The p-quantile (p > 0.5) of Student t with df degrees of freedom, by bisection."""
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if _t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2.0
