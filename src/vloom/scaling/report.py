"""`vloom scaling`: the fitted law, the FLOP counting used, and the compute-optimal answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vloom.report.tables import fmt, md_table
from vloom.scaling.fit import fit_law
from vloom.scaling.optimal import FlopModel, bootstrap_optimal, optimal_size
from vloom.scaling.source import read_points


def _sci(x: float) -> str:
    return f"{x:.3g}"


def scaling_fit(
    source: str | Path,
    budget: float | None = None,
    params: str = "nonembedding",
    loss_key: str = "text_ppl.loss",
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything `vloom scaling` reports, as a JSON-able dict."""
    pts = read_points(source, params, loss_key)
    law = fit_law(pts.N, pts.D, pts.L)
    if pts.fpt is not None:
        flops, counting = (
            FlopModel.fit(pts.N, pts.fpt),
            "counted per run: 6N + attention + output layer",
        )
    else:
        flops, counting = FlopModel(), "6N (the CSV gives no flops_per_token column)"
    compute = flops.per_token(pts.N) * pts.D
    if budget is None:
        budget = float(compute.max())
    n_opt, d_opt, l_opt = optimal_size(law, budget, flops)
    boot = (
        bootstrap_optimal(pts.N, pts.D, pts.L, law, budget, flops, n_boot, seed)
        if n_boot
        else {"n": 0}
    )
    lo, hi = np.log10(compute.min()), np.log10(compute.max()) + 2
    envelope = []
    for c in np.logspace(lo, hi, 6):
        n, d, l_ = optimal_size(law, float(c), flops)
        envelope.append({"C": float(c), "N_opt": n, "D_opt": d, "loss": l_})
    return {
        "source": str(source),
        "n_points": int(len(pts.L)),
        "skipped": dict(pts.skipped),
        "N_counts": pts.n_label,
        "loss": loss_key if Path(source).is_dir() else "loss column",
        "law": law.as_dict(),
        "flops_per_token": {"c": flops.c, "k": flops.k, "counting": counting},
        # With fpt proportional to N the optimum follows N_opt ~ C^(beta/(alpha+beta)).
        "a_exponent": law.beta / (law.alpha + law.beta) if law.alpha + law.beta > 0 else None,
        "budget": budget,
        "optimal": {"N": n_opt, "D": d_opt, "loss": l_opt},
        "bootstrap": boot,
        "envelope": envelope,
    }


def render(fit: dict[str, Any]) -> str:
    law, boot, opt = fit["law"], fit["bootstrap"], fit["optimal"]
    out = ["# Scaling law fit", ""]
    skipped = ", ".join(f"{n} {r}" for r, n in fit["skipped"].items())
    out.append(
        f"{fit['n_points']} points from `{fit['source']}`"
        + (f" ({skipped} skipped)" if skipped else "")
        + f". N = {fit['N_counts']}; D = training tokens; loss = {fit['loss']}."
    )
    out.append("")
    out.append("L(N, D) = E + A / N^alpha + B / D^beta, Huber loss in log space (Hoffmann et al.)")
    out.append("")
    ci = lambda k: (  # noqa: E731
        f"[{fmt(boot[k][0])}, {fmt(boot[k][1])}]" if k in boot else ""
    )
    out.append(
        md_table(
            ["E", "A", "alpha", "alpha 95% CI", "B", "beta", "beta 95% CI"],
            [
                [
                    law["E"],
                    _sci(law["A"]),
                    law["alpha"],
                    ci("alpha_ci"),
                    _sci(law["B"]),
                    law["beta"],
                    ci("beta_ci"),
                ]
            ],
        )
    )
    f = fit["flops_per_token"]
    out.append(
        f"Training FLOPs per token: {_sci(f['c'])} x N^{fmt(f['k'])} ({f['counting']}; the "
        "vision encoder is not counted)."
    )
    a = fit["a_exponent"]
    if a is not None:
        out.append(f"Compute-optimal scaling (FLOPs proportional to N): N_opt ~ C^{fmt(a)}.")
    out.append("")
    interval = (
        f", 95% bootstrap interval [{_sci(boot['N_opt_ci'][0])}, {_sci(boot['N_opt_ci'][1])}] "
        f"({boot['n']} resamples)"
        if boot.get("n")
        else " (no bootstrap)"
    )
    out.append(
        f"For a budget of {_sci(fit['budget'])} FLOPs: N_opt = {_sci(opt['N'])}{interval}; "
        f"D_opt = {_sci(opt['D'])} tokens; predicted loss {fmt(opt['loss'])}."
    )
    out.append("")
    out.append("Compute-optimal envelope:")
    out.append("")
    rows = [[_sci(e["C"]), _sci(e["N_opt"]), _sci(e["D_opt"]), e["loss"]] for e in fit["envelope"]]
    out.append(md_table(["FLOPs", "N_opt", "D_opt", "loss"], rows))
    return "\n".join(out)


def scaling_report(
    source: str | Path,
    budget: float | None = None,
    params: str = "nonembedding",
    loss_key: str = "text_ppl.loss",
    n_boot: int = 100,
    seed: int = 0,
    out: str | Path | None = None,
) -> str:
    fit = scaling_fit(source, budget, params, loss_key, n_boot, seed)
    if out:
        Path(out).write_text(json.dumps(fit, indent=2) + "\n")
    return render(fit)
