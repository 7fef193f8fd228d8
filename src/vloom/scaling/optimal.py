"""The compute-optimal envelope of a fitted law: for a FLOP budget C, the N that minimises
L(N, D) subject to C = flops_per_token(N) x D, with a bootstrap interval.

FLOPs per token are not assumed to be 6N: the attention and output-layer terms matter at
small N. `FlopModel` is a power law fpt = c N^k fitted (in log space) to the runs' own counts,
so the envelope uses the same counting as the data; with k = 1, c = 6 it is Kaplan's C = 6ND.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from vloom.scaling.fit import Law, fit_law, restarts_near


@dataclass(frozen=True)
class FlopModel:
    c: float = 6.0
    k: float = 1.0

    def per_token(self, N: np.ndarray | float) -> np.ndarray:
        return self.c * np.power(N, self.k)

    @classmethod
    def fit(cls, N: np.ndarray, fpt: np.ndarray) -> FlopModel:
        N, fpt = np.asarray(N, float), np.asarray(fpt, float)
        if len(np.unique(N)) < 2:
            return cls(c=float(np.mean(fpt / N)), k=1.0)
        k, logc = np.polyfit(np.log(N), np.log(fpt), 1)
        return cls(c=float(np.exp(logc)), k=float(k))


def optimal_size(law: Law, budget: float, flops: FlopModel) -> tuple[float, float, float]:
    """(N_opt, D_opt, L_opt) for `budget` training FLOPs."""

    def loss_at(logN: float) -> float:
        N = np.exp(logN)
        D = budget / flops.per_token(N)
        return float(law.loss(N, D))

    # A coarse scan finds the basin, a bounded scalar search polishes it.
    grid = np.linspace(np.log(1e2), np.log(max(budget, 1e3)) - 1.0, 400)
    i = int(np.argmin([loss_at(g) for g in grid]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(loss_at, bounds=(lo, hi), method="bounded")
    N = float(np.exp(res.x))
    return N, float(budget / flops.per_token(N)), float(res.fun)


def bootstrap_optimal(
    N: np.ndarray,
    D: np.ndarray,
    L: np.ndarray,
    law: Law,
    budget: float,
    flops: FlopModel,
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """Percentile interval (2.5%, 97.5%) of N_opt and of the exponents over runs resampled
    with replacement; each resample is refit from starts near the full fit."""
    rng = np.random.default_rng(seed)
    n = len(L)
    n_opts, alphas, betas = [], [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if len(np.unique(idx)) < 5:
            continue
        try:
            b = fit_law(N[idx], D[idx], L[idx], starts=restarts_near(law))
        except ValueError:
            continue
        n_opts.append(optimal_size(b, budget, flops)[0])
        alphas.append(b.alpha)
        betas.append(b.beta)
    if not n_opts:
        return {"n": 0}
    q = lambda xs: [float(v) for v in np.percentile(xs, [2.5, 97.5])]  # noqa: E731
    return {
        "n": len(n_opts),
        "N_opt_ci": q(n_opts),
        "alpha_ci": q(alphas),
        "beta_ci": q(betas),
    }
