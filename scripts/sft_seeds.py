"""Issue 17's SFT experiment table: a pre-trained checkpoint vs SFT runs (seeds) of it on
vqa_open (free-answer) and vqa (4-way multiple choice), overall and per question type.

    vloom eval RUN/checkpoints/final --data RUN/synth/eval --out BASE --tasks vqa_open,vqa
    vloom run configs/sft.yaml --set train.init_from=RUN/checkpoints/final \
        --set out_dir=SFT_S --set seed=S            # S = 0, 1, 2
    python scripts/sft_seeds.py BASE SFT_0 SFT_1 SFT_2

Each line: the base accuracy with a bootstrap 95% interval over the eval questions; each
seed's accuracy; their mean with a seed t-interval (95%, k-1 degrees of freedom) and a
bootstrap interval; the gain mean(SFT) - base with a paired bootstrap interval (the same
resampled questions for the base and every seed). Reads RUN/examples/<task>.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vloom.evaluate.records import read_examples
from vloom.report.stats import t_interval

TASKS = ("vqa_open", "vqa")


def load(run: Path, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(correct [n], qtype [n]) in question-id order."""
    recs = read_examples(run, task)
    if recs is None:
        raise SystemExit(f"{run}: no {task} examples (run its eval with records on)")
    rows = sorted(recs, key=lambda r: r["id"])
    return np.array([r["correct"] for r in rows], float), np.array([r["qtype"] for r in rows])


def table(base_dir: Path, runs: list[Path], task: str, n_boot: int = 2000) -> list[str]:
    base, qt = load(base_dir, task)
    seeds = []
    for r in runs:
        c, q = load(r, task)
        if not (q == qt).all():
            raise ValueError(f"{r}: {task} asks other questions than {base_dir}")
        seeds.append(c)
    acc = np.stack(seeds)  # [k, n]
    n, k = len(base), len(runs)
    idx = np.random.default_rng(0).integers(0, n, (n_boot, n))
    out = [f"== {task} (n={n}, {k} SFT runs) =="]
    for name, mask in [("all", np.ones(n, bool))] + [(t, qt == t) for t in sorted(set(qt))]:
        per = acc[:, mask].mean(1)
        mean = per.mean()
        lo, hi = t_interval(per)  # nan for one seed
        half = (hi - lo) / 2
        w = mask[idx]  # resampled questions of this type
        denom = np.maximum(w.sum(1), 1)
        b = (base[idx] * w).sum(1) / denom
        s = ((acc[:, idx] * w).sum(2) / denom).mean(0)
        (bl, bh), (sl, sh), (gl, gh) = (np.percentile(x, [2.5, 97.5]) for x in (b, s, s - b))
        out.append(
            f"{name:9s} base {base[mask].mean():.3f} [{bl:.3f}, {bh:.3f}]  SFT "
            f"{' '.join(f'{x:.3f}' for x in per)}  mean {mean:.3f} +- {half:.3f} (seeds) "
            f"[{sl:.3f}, {sh:.3f}] (boot)  gain {mean - base[mask].mean():+.3f} "
            f"[{gl:+.3f}, {gh:+.3f}]"
        )
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    base, runs = Path(argv[0]), [Path(p) for p in argv[1:]]
    for task in TASKS:
        print("\n".join(table(base, runs, task)), end="\n\n")


if __name__ == "__main__":
    main(sys.argv[1:])
