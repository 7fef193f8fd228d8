"""Issue 16: how many steps the demo's model needs before it binds attributes to objects.

Trains many variants of the demo (or --config) on one prepared data directory at once (on a
GPU they share the device; on CPU give each one thread), each with a during-training eval of
VQA and text QA, and prints each run's curve of position / shape accuracy (picture, then
words) and, for runs that finished, the final eval. Runs still going at the deadline are
stopped and read as far as they got, so a fixed device budget still yields every curve up to
where it reached.

    vloom run configs/demo.yaml --set control=false          # builds runs/demo/{synth,...}
    python scripts/binding_budget.py --data runs/demo --work /tmp/bb --set budget --deadline 400

Sets: `budget` (the demo for 4,000 and 12,000 steps, and recipes with an answer-only SFT
phase, `instruct`), `lr` (learning rate, batch, width, depth and seed at a 12,000-step
schedule whose LR holds until step 9,600). `--scale 0.01` shortens every run (a smoke test).
Curves: metrics.jsonl's eval/<task>/accuracy_<type> on the eval sets' first --examples.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from vloom.report.runfiles import read_metrics

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "configs" / "demo.yaml")
BIG = ["model.d_model=256", "model.n_layers=6", "model.n_heads=8"]
SMALL = ["model.d_model=64", "model.vision.d_model=64"]
DATA = ("synth", "curated", "packed")
WORLD = "sft.sources=[{name: world, kind: world, counts: {vqa: 4000, pointing: 1000, captions: 1000, multi_turn: 1000, reading: 4000}}]"  # noqa: E501
TYPES = (
    "vqa/accuracy_position",
    "vqa/accuracy_shape",
    "text_qa/accuracy_position",
    "text_qa/accuracy_shape",
)


def instruct(frac: float) -> list[str]:
    """Pre-training, then answer-only SFT on the world's instruction sets for `frac` of steps."""
    return [
        f"train.stages=[{{name: pretrain, fraction: {1 - frac:g}}}, "
        f"{{name: instruct, kind: sft, fraction: {frac:g}}}]",
        WORLD,
    ]


def curve(every: int, examples: int) -> list[str]:
    return [
        f"eval.during_training.every={every}",
        "eval.during_training.tasks=[vqa, text_qa]",
        f"eval.during_training.max_examples={examples}",
    ]


def runs(which: str, examples: int) -> dict[str, tuple[list[str], int]]:
    """name -> (--set overrides of configs/demo.yaml, steps)."""
    if which == "budget":
        return {
            "instruct15": (instruct(0.15), 1000),
            "instruct30": (instruct(0.3), 1000),
            "instruct30_s1": (instruct(0.3) + ["seed=1"], 1000),
            "instruct30_s2": (instruct(0.3) + ["seed=2"], 1000),
            "instruct50": (instruct(0.5), 1000),
            "instruct30_2k": (instruct(0.3), 2000),
            "big_instruct30": (instruct(0.3) + BIG, 1000),
            "pre_4k": (curve(1000, examples), 4000),
            "big_pre_4k": (BIG + curve(1000, examples), 4000),
            "pre_12k": (curve(2000, examples), 12000),
        }
    if which == "lr":

        def lr(v: float, *more: str) -> tuple[list[str], int]:
            return [f"train.lr={v:g}", *curve(500, examples), *more], 12000

        return {
            "lr6e-4": lr(6e-4),
            "lr6e-4_s1": lr(6e-4, "seed=1"),
            "lr1.2e-3": lr(1.2e-3),
            "lr1.2e-3_s1": lr(1.2e-3, "seed=1"),
            "lr2e-3": lr(2e-3),
            "lr2e-3_s1": lr(2e-3, "seed=1"),
            "lr3e-3": lr(3e-3),
            "lr2e-3_b8": lr(2e-3, "train.batch_size=8"),
            "lr2e-3_b32": lr(2e-3, "train.batch_size=32"),
            "lr2e-3_l2": lr(2e-3, "model.n_layers=2"),
            "lr2e-3_d64": lr(2e-3, *SMALL),
            "lr3e-3_d64": lr(3e-3, *SMALL),
        }
    raise SystemExit(f"unknown set {which!r}: budget or lr")


def launch(
    name: str, sets: list[str], steps: int, args: argparse.Namespace, extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    d = args.work / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for sub in DATA:  # one prepared world for every run: only training differs
        os.symlink((args.data / sub).resolve(), d / sub)
    n = max(4, int(steps * args.scale))
    sets = [
        f"out_dir={d}",
        "control=false",
        f"train.steps={n}",
        f"train.threads={args.threads}",
        f"train.checkpoint_every={max(n // 4, 1)}",
        *sets,
        *extra,
    ]
    cmd = [sys.executable, "-m", "vloom", "run", str(args.config), "--quiet"]
    cmd += [a for s in sets for a in ("--set", s)]
    with open(d / "log.txt", "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def read_run(d: Path) -> dict:
    """The run's curve (step -> the four accuracies) and, if it finished, its final eval."""
    out: dict = {"curve": {}, "last_step": 0}
    for r in read_metrics(d)[0]:  # skips the line a kill tore
        if "loss" in r:
            out["last_step"] = r["step"]
        if any(f"eval/{t}" in r for t in TYPES):
            out["curve"][r["step"]] = [r.get(f"eval/{t}") for t in TYPES]
    if (d / "results.json").exists():
        ev = json.loads((d / "results.json").read_text())["eval"]
        out["final"] = {
            t: {k: round(v, 3) for k, v in m.items() if k.startswith("accuracy")}
            for t, m in ev.items()
            if t in ("vqa", "text_qa")
        }
    if (d / "train_summary.json").exists():
        ts = json.loads((d / "train_summary.json").read_text())
        out["train"] = {k: ts.get(k) for k in ("steps", "wall_s", "tokens_per_s", "bf16")}
    return out


def fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a demo run dir with synth/, curated/ and packed/ complete",
    )
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--config", type=Path, default=Path(DEMO), help="the config the runs vary")
    ap.add_argument("--set", dest="which", default="budget", help="budget or lr")
    ap.add_argument("--only", default=None, help="comma-separated run names of the set")
    ap.add_argument("--deadline", type=float, default=3600, help="seconds; then stop and read")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run's steps")
    ap.add_argument("--examples", type=int, default=400, help="questions a task in the curves")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads a run")
    ap.add_argument("--out", type=Path, default=None, help="summary.json (and runs.tar.gz)")
    args = ap.parse_args(argv)
    todo = runs(args.which, args.examples)
    if args.only:
        names = args.only.split(",")
        if unknown := sorted(set(names) - set(todo)):
            raise SystemExit(f"--only: {unknown} not in set {args.which!r} ({', '.join(todo)})")
        todo = {n: todo[n] for n in names}
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    procs = {n: launch(n, *todo[n], args) for n in todo}
    retried: set[str] = set()
    while procs and time.time() - t0 < args.deadline:
        time.sleep(2)
        for n, p in list(procs.items()):
            rc = p.poll()
            if rc is None:
                continue
            del procs[n]
            print(f"[{time.time() - t0:6.0f}s] {n} rc={rc}", flush=True)
            if rc != 0:
                print((args.work / n / "log.txt").read_text()[-1500:], flush=True)
                if n not in retried:  # a failure of the device's bf16 path: once more in fp32
                    retried.add(n)
                    procs[n] = launch(n, *todo[n], args, extra=("train.precision=fp32",))
    for n, p in procs.items():
        print(f"deadline: stopped {n}", flush=True)
        p.kill()
        p.wait()
    summary = {n: read_run(args.work / n) for n in todo}
    print("run / step: VQA position, shape | text QA position, shape")
    for n, s in summary.items():
        pts = "  ".join(
            f"{k}: {fmt(v[0])} {fmt(v[1])} | {fmt(v[2])} {fmt(v[3])}" for k, v in s["curve"].items()
        )
        print(f"{n} (reached step {s['last_step']}) {pts}")
        if "final" in s:
            print(f"  final: {json.dumps(s['final'])}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
        with tarfile.open(args.out / "runs.tar.gz", "w:gz") as tar:
            for n in todo:
                for f in ("results.json", "metrics.jsonl", "train_summary.json", "log.txt"):
                    if (args.work / n / f).exists():
                        tar.add(args.work / n / f, arcname=f"{n}/{f}")
    return summary


if __name__ == "__main__":
    main()
