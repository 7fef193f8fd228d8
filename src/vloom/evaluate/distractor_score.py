"""Score distractor plug-ins (AutoConverter): how much their wrong options lower a fixed
model's multiple-choice accuracy, and whether each question stays uniquely right.

Each plug-in converts the same open questions (`convert_open_to_mc`, same seed); a fixed
checkpoint answers every converted set as `vqa_mc_converted` asks it (`answer_mc`). Per
plug-in: questions kept (the converter drops one it cannot give enough distinct wrong
options), the share of wrong options the plug-in wrote (the rest come from the set's answer
space), `unique`: the share of questions whose options hold exactly one right answer by the
truth (`truth`: the synthetic world's scenes, `vloom.synth.answers.WORLD`), and the model's
accuracy, also on the questions every plug-in kept (`accuracy_common`, the fair comparison:
lower is harder). `counts` are the plug-in's own (proposals failed, reviewed out, ...).

    python -m vloom.evaluate.distractor_score CKPT EVAL_DIR --config model.yaml [--n 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from vloom.evaluate.convert import Distractors, Row, convert_open_to_mc
from vloom.evaluate.metrics import normalize_answer


def uniquely_right(row: Row, truth: Distractors) -> bool:
    """Whether exactly one option (the keyed one) is right: listed or true by `truth`."""
    listed = {normalize_answer(a) for a in row["answers"] if a}
    right = [
        i
        for i, o in enumerate(row["options"])
        if normalize_answer(o) in listed or truth.also_right(row, o)
    ]
    return right == [row["answer"]]


def score_plugins(
    rows: list[Row],
    plugins: dict[str, Distractors | None],
    answer: Any,
    truth: Distractors,
    num_options: int = 4,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per plug-in name: kept, from_plugin, unique, accuracy, accuracy_common, counts.

    `answer(mc_rows) -> picks` is the fixed model answering converted rows."""
    converted, report = {}, {}
    for name, plugin in plugins.items():
        t0 = time.time()
        mc, stats = convert_open_to_mc(rows, num_options, plugin, seed)
        picks = answer(mc) if mc else []
        correct = {r["id"]: int(p == r["answer"]) for r, p in zip(mc, picks, strict=True)}
        converted[name] = correct
        n_wrong = len(mc) * (num_options - 1)
        report[name] = {
            "kept": len(mc),
            "from_plugin": stats["distractors_from_generator"] / n_wrong if n_wrong else 0.0,
            "unique": sum(uniquely_right(r, truth) for r in mc) / len(mc) if mc else None,
            "accuracy": sum(correct.values()) / len(mc) if mc else None,
            "counts": dict(sorted(getattr(plugin, "counts", {}).items())),
            "seconds": round(time.time() - t0, 1),
        }
    common = set.intersection(*(set(c) for c in converted.values())) if converted else set()
    for name, correct in converted.items():
        acc = sum(correct[i] for i in common) / len(common) if common else None
        report[name]["accuracy_common"] = acc
        report[name]["n_common"] = len(common)
    return report


def table(report: dict[str, dict[str, Any]]) -> str:
    """The report as a Markdown table."""

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)

    cols = ("kept", "from_plugin", "unique", "accuracy", "accuracy_common", "n_common")
    lines = ["| distractors | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in report.items():
        lines.append(f"| {name} | " + " | ".join(f(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from vloom.config import read_yaml
    from vloom.evaluate.harness import load_checkpoint
    from vloom.evaluate.model_distractors import from_config
    from vloom.evaluate.tasks import EvalContext
    from vloom.evaluate.tasks.vqa_mc_converted import answer_mc
    from vloom.evaluate.tasks.vqa_open import read_open_rows
    from vloom.synth.answers import WORLD

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="the fixed model that answers the converted questions")
    ap.add_argument("eval_dir", help="directory holding vqa_open.parquet (the world's eval/)")
    ap.add_argument("--config", required=True, help="model distractors YAML (generator: ...)")
    ap.add_argument("--tokenizer", help="tokenizer.json, when the checkpoint's has moved")
    ap.add_argument("--n", type=int, default=300, help="open questions converted")
    ap.add_argument(
        "--options",
        type=int,
        default=4,
        help="options per question (a world "
        "with 4 shapes and 4 cells leaves no choice of distractor at 4)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the report as JSON here")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    path = Path(args.eval_dir) / "vqa_open.parquet"
    model, tok = load_checkpoint(Path(args.checkpoint), args.tokenizer, torch.device("cpu"))
    ctx = EvalContext(model, tok, Path(args.eval_dir), torch.device("cpu"), batch_size=32)
    rows = read_open_rows(ctx, args.n)
    cfg = read_yaml(Path(args.config))
    plugins: dict[str, Distractors | None] = {
        "answer space only": None,
        "vocabulary (world)": WORLD,
        "model": from_config({**cfg, "review": False}),
    }
    if cfg.get("reviewer"):
        plugins["model + review"] = from_config(cfg)
    answer = lambda mc: answer_mc(ctx, mc, path)  # noqa: E731
    report = score_plugins(rows, plugins, answer, WORLD, args.options, args.seed)
    print(table(report))
    for name, r in report.items():
        print(f"{name}: counts {json.dumps(r['counts'])}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
