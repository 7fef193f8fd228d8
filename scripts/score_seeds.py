"""Issue 17's self-correction table: delta(t1, t2) of a base checkpoint asked twice, against RL
arms (SCoRe, single-attempt GRPO) trained from it with several seeds, on the same held-out
questions.

    vloom eval BASE_CKPT --data EVAL --out BASE --tasks self_correct
    vloom run configs/score.yaml --set train.init_from=BASE_CKPT --set rl.reference=BASE_CKPT \
        --set out_dir=SCORE_S --set seed=S                      # S = 0, 1, 2; same for rl.yaml
    vloom eval SCORE_S/checkpoints/final --data EVAL --out SCORE_S_EVAL --tasks self_correct
    python scripts/score_seeds.py BASE score=SCORE_0_EVAL,SCORE_1_EVAL,SCORE_2_EVAL \
        grpo=GRPO_0_EVAL,GRPO_1_EVAL,GRPO_2_EVAL

Each arm's line: accuracy at attempts 1 and 2, delta by seed, the wrong->right and
right->wrong shares (seed means), and the pooled delta: the seeds' per-question deltas
averaged, with a bootstrap 95% interval over the questions and a Student t interval over the
seeds' deltas (the variation between runs, which the questions' interval leaves out; none for
one seed); then the arm minus the base, paired on the same resampled questions. Reads
DIR/examples/self_correct.jsonl (written by any run or eval with records on), every arm on the
base's questions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from vloom.evaluate.records import read_examples
from vloom.report.stats import t_interval

TASK = "self_correct"


def load(run: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(question ids, correct at attempt 1 [n], at attempt 2 [n]) in id order."""
    recs = read_examples(run, TASK)
    if recs is None:
        raise SystemExit(f"{run}: no {TASK} examples (run its eval with records on)")
    rows = sorted(recs, key=lambda r: r["id"])
    t1 = np.array([r["correct_t1"] for r in rows], float)
    t2 = np.array([r["correct_t2"] for r in rows], float)
    return [r["id"] for r in rows], t1, t2


def _interval(x: np.ndarray, idx: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(x[idx].mean(1), [2.5, 97.5])
    return float(lo), float(hi)


def table(base_dir: Path, arms: dict[str, list[Path]], n_boot: int = 4000) -> list[str]:
    ids, b1, b2 = load(base_dir)
    n = len(ids)
    idx = np.random.default_rng(0).integers(0, n, (n_boot, n))
    bd = b2 - b1
    lo, hi = _interval(bd, idx)
    w2r, r2w = ((b1 == 0) & (b2 == 1)).mean(), ((b1 == 1) & (b2 == 0)).mean()
    out = [
        f"== {TASK} (n={n}) ==",
        f"{'base':6s} acc@t1 {b1.mean():.4f} acc@t2 {b2.mean():.4f}  delta {bd.mean():+.4f} "
        f"[{lo:+.4f}, {hi:+.4f}]  w->r {w2r:.4f} r->w {r2w:.4f}",
    ]
    for name, runs in arms.items():
        t1s, t2s = [], []
        for r in runs:
            rid, t1, t2 = load(r)
            if rid != ids:
                raise ValueError(f"{r}: {TASK} asks other questions than {base_dir}")
            t1s.append(t1)
            t2s.append(t2)
        a1, a2 = np.stack(t1s), np.stack(t2s)  # [k, n]
        d = (a2 - a1).mean(0)  # per question, averaged over seeds
        lo, hi = _interval(d, idx)
        glo, ghi = _interval(d - bd, idx)
        w2r = ((a1 == 0) & (a2 == 1)).mean()
        r2w = ((a1 == 1) & (a2 == 0)).mean()
        seeds = (a2 - a1).mean(1)
        by_seed = " / ".join(f"{x:+.4f}" for x in seeds)
        slo, shi = t_interval(seeds)
        over_seeds = f" seeds [{slo:+.4f}, {shi:+.4f}]" if len(seeds) > 1 else ""
        out.append(
            f"{name:6s} acc@t1 {a1.mean():.4f} acc@t2 {a2.mean():.4f}  delta by seed {by_seed}  "
            f"pooled {d.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]{over_seeds}  "
            f"w->r {w2r:.4f} r->w {r2w:.4f}  "
            f"minus base {d.mean() - bd.mean():+.4f} [{glo:+.4f}, {ghi:+.4f}]"
        )
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        raise SystemExit(__doc__)
    arms = {}
    for a in argv[1:]:
        name, _, runs = a.partition("=")
        arms[name] = [Path(p) for p in runs.split(",") if p]
    print("\n".join(table(Path(argv[0]), arms)))


if __name__ == "__main__":
    main(sys.argv[1:])
