"""The interval statistics the reports and the sweep share (vloom.report.stats)."""

import math

import numpy as np
import pytest

from vloom.report.stats import (
    bootstrap_ci,
    excludes_zero,
    paired_bootstrap_ci,
    standard_error,
    t_interval,
)


def test_t_interval_matches_tabled_quantiles():
    # t(0.975) for df 1, 2, 4, 9 from any table: 12.706, 4.303, 2.776, 2.262
    for df, q in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262)):
        x = np.arange(df + 1, dtype=float)
        lo, hi = t_interval(x)
        half = q * x.std(ddof=1) / math.sqrt(len(x))
        assert (hi - lo) / 2 == pytest.approx(half, rel=1e-3)
        assert (hi + lo) / 2 == pytest.approx(x.mean())
    assert all(math.isnan(v) for v in t_interval([0.5]))  # one seed: no interval


def test_bootstrap_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.6).astype(float)
    large = (rng.random(2500) < 0.6).astype(float)
    lo, hi = bootstrap_ci(small)
    assert lo < small.mean() < hi
    # the width tracks the binomial standard error: 2 * 1.96 * se
    se = standard_error(small.mean(), len(small))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    lo2, hi2 = bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 3
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)  # deterministic


def test_paired_bootstrap_removes_shared_difficulty():
    rng = np.random.default_rng(2)
    a = (rng.random(400) < 0.5).astype(float)
    b = a.copy()
    b[:20] = 1 - b[:20]  # the two models disagree on 20 of 400 examples only
    lo, hi = paired_bootstrap_ci(a, b)
    assert hi - lo < bootstrap_ci(a)[1] - bootstrap_ci(a)[0]
    assert not excludes_zero(paired_bootstrap_ci(a, a))
    assert excludes_zero(paired_bootstrap_ci(np.ones(50), np.zeros(50)))
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap_ci([1, 0], [1])


def test_standard_error():
    assert standard_error(0.5, 100) == pytest.approx(0.05)
    assert standard_error(0.25, 1200) <= 0.0126  # a 4-way task at 1,200 examples
    assert math.isnan(standard_error(0.5, 0))
