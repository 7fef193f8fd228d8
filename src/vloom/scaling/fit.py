"""Fit L(N, D) = E + A/N^alpha + B/D^beta as Hoffmann et al. (Chinchilla, approach 3).

Minimise the Huber loss (delta = 1e-3) between log L and
log(exp(a - alpha log N) + exp(b - beta log D) + exp(e)) with L-BFGS from several starting
points, keeping the best; A = e^a, B = e^b, E = e^e. The log-space objective weights every
run alike whatever its loss scale, and the Huber loss keeps a few bad runs from steering the
exponents.

Chinchilla starts L-BFGS from a large grid over all five parameters. Here the starts come
cheaper: for fixed exponents the law is linear in (E, A, B), so a grid over (alpha, beta)
with a non-negative least-squares solve each ranks the basins, and the best few are the
starting points (plus a fixed coarse set, so a bad ranking cannot hide the optimum).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.special import logsumexp, softmax

HUBER_DELTA = 1e-3
GRID_EXP = np.linspace(0.02, 1.5, 38)  # exponents scanned for starting points
N_STARTS = 6  # best (alpha, beta) cells refined with L-BFGS
COARSE = [(0.3, 0.3, 0.0, 5.0, 5.0), (0.6, 0.6, 0.0, 10.0, 10.0), (0.1, 0.1, 0.5, 2.0, 2.0)]


@dataclass(frozen=True)
class Law:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")

    def loss(self, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.power(N, self.alpha) + self.B / np.power(D, self.beta)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float
):
    a, b, e, alpha, beta = theta
    z = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])  # [3, n]
    pred = logsumexp(z, axis=0)
    r = pred - logL
    small = np.abs(r) <= delta
    value = np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)).sum()
    dr = np.where(small, r, delta * np.sign(r))  # d huber / d r
    w = softmax(z, axis=0)  # d pred / d z
    grad = np.array(
        [
            (dr * w[0]).sum(),
            (dr * w[1]).sum(),
            (dr * w[2]).sum(),
            -(dr * w[0] * logN).sum(),
            -(dr * w[1] * logD).sum(),
        ]
    )
    return value, grad


def _starts(N: np.ndarray, D: np.ndarray, L: np.ndarray) -> list[np.ndarray]:
    """Starting points: the best (alpha, beta) cells by NNLS for (E, A, B), then COARSE."""
    scored = []
    for al, be in itertools.product(GRID_EXP, GRID_EXP):
        # Columns scaled to unit max so NNLS is well conditioned across exponent sizes.
        cols = np.stack([np.ones_like(N), N**-al, D**-be], axis=1)
        scale = cols.max(axis=0)
        coef, _ = nnls(cols / scale, L)
        E, A, B = np.maximum(coef / scale, 1e-12)
        pred = E + A * N**-al + B * D**-be
        scored.append((float(np.sum(np.log(pred / L) ** 2)), al, be, E, A, B))
    scored.sort(key=lambda t: t[0])
    out = [
        np.array([np.log(A), np.log(B), np.log(E), al, be])
        for _, al, be, E, A, B in scored[:N_STARTS]
    ]
    return out + [np.array([a, b, e, al, be]) for al, be, e, a, b in COARSE]


def fit_law(
    N: np.ndarray,
    D: np.ndarray,
    L: np.ndarray,
    delta: float = HUBER_DELTA,
    starts: list[np.ndarray] | None = None,
) -> Law:
    """The best fit over the starting grid (or `starts`); ValueError on too few points."""
    N, D, L = (np.asarray(x, dtype=float) for x in (N, D, L))
    if len(L) < 5:
        raise ValueError(f"scaling fit needs at least 5 runs (5 parameters), got {len(L)}")
    if np.any(N <= 0) or np.any(D <= 0) or np.any(L <= 0):
        raise ValueError("scaling fit needs positive N, D and loss")
    logN, logD, logL = np.log(N), np.log(D), np.log(L)
    best = None
    bounds = [(None, None), (None, None), (None, None), (0.0, 3.0), (0.0, 3.0)]
    for x0 in starts or _starts(N, D, L):
        res = minimize(
            _objective,
            x0,
            args=(logN, logD, logL, delta),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
        )
        if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
            best = res
    assert best is not None, "no starting point gave a finite objective"
    a, b, e, alpha, beta = best.x
    return Law(
        float(np.exp(e)),
        float(np.exp(a)),
        float(np.exp(b)),
        float(alpha),
        float(beta),
        float(best.fun),
    )


def restarts_near(law: Law) -> list[np.ndarray]:
    """The start for bootstrap refits: the full fit (a resample moves the optimum little)."""
    return [
        np.array([np.log(law.A), np.log(law.B), np.log(max(law.E, 1e-12)), law.alpha, law.beta])
    ]
