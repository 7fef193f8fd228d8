"""Eval throughput of the public-benchmark loader (`mcbench`), and the cost of its generality
against the 4-option-only `vmcbench` on the same file.

    python benchmarks/eval_mcbench.py [--rows 200] [--ckpt DIR] [--repeats 3] [--batch 32]

Writes two files of the same generated questions about real Pillow-drawn images (a shape of
one colour on a white square): one in the MMStar layout (options inlined in the question),
one in the VLMEvalKit/MMBench 4-option column layout that both tasks read. The model is
`--ckpt` (e.g. a trained demo checkpoint) or, by default, a randomly initialised model of
the demo config's shape (d_model 128, 4 layers, 32 px images) with a BPE tokenizer trained
on the questions: throughput does not depend on what the weights learned. Reported:
examples/s of mcbench on the MMStar file, of mcbench and vmcbench on the 4-option file, and
their ratio. Timings alternate between the tasks and the median of --repeats is taken, so a
noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image, ImageDraw

from vloom.evaluate.harness import load_checkpoint
from vloom.evaluate.tasks import EvalContext, get_task
from vloom.model.io import build_model, save_model
from vloom.pack.tokenizer import train_tokenizer

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "grey", "black"]
SHAPES = ["circle", "square"]
DEMO_MODEL = {
    "d_model": 128,
    "n_layers": 4,
    "n_heads": 4,
    "vision": {"patch_size": 8, "merge": 2, "d_model": 128, "n_layers": 2, "n_heads": 4},
}


def drawn(colour: str, shape: str, rng: random.Random) -> bytes:
    im = Image.new("RGB", (32, 32), "white")
    x, y, r = rng.randint(8, 24), rng.randint(8, 24), rng.randint(4, 8)
    box = (x - r, y - r, x + r, y + r)
    draw = ImageDraw.Draw(im)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=colour)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def write_files(out: Path, n: int, seed: int = 0) -> tuple[Path, Path, list[str]]:
    rng = random.Random(seed)
    mmstar, columns, texts = [], [], []
    for i in range(n):
        colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
        options = rng.sample([c for c in COLOURS if c != colour], 3) + [colour]
        rng.shuffle(options)
        answer = "ABCD"[options.index(colour)]
        question = f"What colour is the {shape}?"
        image = {"bytes": drawn(colour, shape, rng), "path": None}
        inline = ", ".join(f"{k}: {o}" for k, o in zip("ABCD", options, strict=True))
        mmstar.append(
            {
                "index": i,
                "question": f"{question}\nOptions: {inline}",
                "answer": answer,
                "category": "colour",
                "l2_category": shape,
                "image": image,
            }
        )
        columns.append(
            {"index": i, "question": question, **dict(zip("ABCD", options, strict=True)),
             "answer": answer, "category": shape, "image": image}
        )  # fmt: skip
        texts.append(f"Question: {question} Answer: {colour}")
    pq.write_table(pa.Table.from_pylist(mmstar), out / "mmstar.parquet")
    pq.write_table(pa.Table.from_pylist(columns), out / "four.parquet")
    return out / "mmstar.parquet", out / "four.parquet", texts


def random_checkpoint(out: Path, texts: list[str]) -> Path:
    tok_path = out / "tokenizer.json"
    tok = train_tokenizer(texts * 4, 2048, tok_path)
    torch.manual_seed(0)
    meta = {
        "model": DEMO_MODEL,
        "vocab_size": tok.get_vocab_size(),
        "max_seq_len": 256,
        "image_size": 32,
    }
    save_model(build_model(meta).eval(), out / "ckpt", {"tokenizer": str(tok_path)})
    return out / "ckpt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--ckpt", help="a vloom checkpoint (default: random demo-shaped model)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        mmstar, four, texts = write_files(out, args.rows)
        ckpt = Path(args.ckpt) if args.ckpt else random_checkpoint(out, texts)
        model, tok = load_checkpoint(ckpt)
        ctx = EvalContext(model, tok, out, torch.device("cpu"), args.batch)
        runs = {
            "mcbench, MMStar layout": ("mcbench", str(mmstar)),
            "mcbench, 4-option columns": ("mcbench", str(four)),
            "vmcbench, 4-option columns": ("vmcbench", str(four)),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        acc: dict[str, float] = {}
        for _ in range(args.repeats):
            for label, (task, path) in runs.items():
                t = time.perf_counter()
                res = get_task(task)(ctx, path=path)
                times[label].append(time.perf_counter() - t)
                acc[label] = res["accuracy"]
                assert res["n"] == args.rows, res
    model_name = args.ckpt or "random weights, demo config shape"
    print(f"{args.rows} questions, 4 options, one 32 px image each; model: {model_name}")
    rate = {k: args.rows / statistics.median(v) for k, v in times.items()}
    for label, r in rate.items():
        print(f"  {label:28s} {r:8.1f} examples/s   accuracy {acc[label]:.3f}")
    ratio = rate["mcbench, 4-option columns"] / rate["vmcbench, 4-option columns"]
    print(f"  mcbench / vmcbench on the same file: {ratio:.2f}x")


if __name__ == "__main__":
    main()
