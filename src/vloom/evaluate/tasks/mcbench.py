"""Public multiple-choice benchmarks from a local file (see vloom.evaluate.benchmarks).

`mcbench:path=MMStar.parquet` scores a file in any supported layout (detected from its
columns, or `layout=`); give each file its own results key with `as=`. The prompt is
`<image>... [Hint: h ]Question: q Answer:`; an MMMU `<image k>` placeholder puts that image
where it stands (images nobody references go first). `score=option` (default) ranks the
option texts by likelihood, `score=letter` lists the options (`Options: A. x B. y`) and
ranks the letters. POPE rows rank " yes" / " no"; MMMU's open rows are answered by greedy
generation and scored by normalised exact match.

`circular=true` is MMBench's CircularEval: a question with n options is asked n times with
its options rotated and counts only if every pass is right. Option-text ranking with no
list in the prompt cannot depend on the order, so circular runs list the options.

Results: accuracy, n and accuracy_<category> (`category=COLUMN` picks another grouping); POPE adds precision, recall, f1, yes_ratio
and f1_<category>; skipped (rows left out) and skipped_<reason>; layout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.evaluate.benchmarks import LETTERS, Benchmark, BenchRow, load_benchmark
from vloom.evaluate.benchmarks.metrics import (
    by_category,
    circular_correct,
    yes_no_metrics,
)
from vloom.evaluate.benchmarks.row import PLACEHOLDER
from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.metrics import exact_match
from vloom.evaluate.scoring import multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import image_input
from vloom.imagebatch import ImageBatch, join_images
from vloom.media import ImageError
from vloom.model.vlm import VLM
from vloom.sequence import encode_text

STOP = ("\n", "Question:")


def resolve(ctx: EvalContext, path: str) -> Path:
    """A path as given, or relative to the eval directory when only it has the file."""
    p = Path(path).expanduser()
    if not p.exists() and not p.is_absolute() and (ctx.data_dir / p).exists():
        return ctx.data_dir / p
    return p


def prompt_text(row: BenchRow, options: list[str] | None) -> str:
    text = f"Hint: {row.hint} " if row.hint else ""
    text += f"Question: {row.question}"
    if options is not None:
        text += " Options: " + " ".join(f"{k}. {o}" for k, o in zip(LETTERS, options, strict=False))
    return text + " Answer:"


Pics = list[tuple[torch.Tensor, int]]  # each image's pixels and its number of <image> tokens


def decode_images(m: VLM, images: list[bytes], where: str) -> Pics:
    """A row's images as model input; ImageError for bytes that are not a usable image."""
    return [image_input(m, b, f"{where}: image {i + 1}") for i, b in enumerate(images)]


def encode_prompt(
    m: VLM, tok: Tokenizer, text: str, pics: Pics
) -> tuple[list[int], torch.Tensor | ImageBatch | None]:
    """Token ids and pixels: images referenced by `<image k>` sit where first referenced,
    the others go first after <bos>; a repeated reference stays as the words `image k`."""
    pieces = PLACEHOLDER.split(text)  # text, number, text, number, ..., text
    placed = [int(k) - 1 for k in pieces[1::2] if 0 < int(k) <= len(pics)]
    order = [i for i in range(len(pics)) if i not in placed]
    ids = m.layout.prefix + [m.layout.image] * sum(pics[i][1] for i in order)
    buf = pieces[0]
    for k, after in zip(pieces[1::2], pieces[2::2], strict=True):
        i = int(k) - 1
        if 0 <= i < len(pics) and i not in order:
            ids += encode_text(tok, buf) + [m.layout.image] * pics[i][1]
            order.append(i)
            buf = after
        else:
            buf += f"image {k}" + after
    ids += encode_text(tok, buf)
    vc = m.vision.cfg
    return ids, join_images([pics[i][0] for i in order], vc.patch_size, vc.merge)


def option_text(o: str) -> str:
    return " " + PLACEHOLDER.sub(r"image \1", o)


@register("mcbench", modality="vision-language")
def mcbench(
    ctx: EvalContext,
    path: str = "mcbench.parquet",
    layout: str | None = None,
    score: str = "option",
    circular: bool = False,
    max_examples: int | None = None,
    max_new_tokens: int = 16,
    category: str | None = None,
) -> dict[str, Any]:
    if score not in ("option", "letter"):
        raise ValueError(f"mcbench: score must be 'option' or 'letter', not {score!r}")
    if not isinstance(circular, bool):
        raise ValueError(f"mcbench: circular must be true or false, not {circular!r}")
    file = resolve(ctx, path)
    bench = load_benchmark(file, layout, max_examples or ctx.max_examples, category)
    m, tok, limit = ctx.model, ctx.tokenizer, ctx.model.lm.max_seq_len

    # One multiple-choice item per (row, pass); open rows go to generation.
    prompts, options, images, owner = [], [], [], []
    open_prompts, open_images, open_rows = [], [], []
    kept: list[BenchRow] = []
    for row in bench.rows:
        try:
            items = _items(m, tok, row, score, circular, max_new_tokens)
        except ImageError as e:
            bench.skip("bad_image", str(e))
            continue
        except _TooLong:
            bench.skip("too_long", f"{row.where}: prompt longer than the model's {limit} tokens")
            continue
        for ids, conts, px in items:
            if row.kind == "open":
                open_prompts.append(ids)
                open_images.append(px)
                open_rows.append(len(kept))
            else:
                prompts.append(ids)
                options.append(conts)
                images.append(px)
                owner.append(len(kept))
        kept.append(row)

    picks: dict[int, list[int]] = {}  # row -> its pick in each pass
    chosen = multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)
    for j, p in zip(owner, chosen, strict=True):
        picks.setdefault(j, []).append(p)
    correct = [
        circular_correct(picks[j], r.answer, len(r.options)) if j in picks else False
        for j, r in enumerate(kept)
    ]
    if open_prompts:
        said = greedy_generate(
            m, tok, open_prompts, open_images, ctx.device, max_new_tokens, STOP, ctx.batch_size
        )
        for j, text in zip(open_rows, said, strict=True):
            correct[j] = exact_match(text, kept[j].answers)
    return _results(bench, kept, correct, picks, circular)


def _items(
    m: VLM, tok: Tokenizer, row: BenchRow, score: str, circular: bool, max_new_tokens: int
) -> list[tuple[list[int], list[list[int]], torch.Tensor | ImageBatch | None]]:
    """(prompt ids, option continuations, pixels) for each pass over one row."""
    passes = range(len(row.options)) if circular and row.kind == "choice" else [0]
    listed = row.kind == "choice" and (score == "letter" or circular)
    pics = decode_images(m, row.images, row.where)  # once for all passes
    items = []
    for k in passes:
        opts = row.options[k:] + row.options[:k]  # pass k: rotated left by k
        ids, px = encode_prompt(m, tok, prompt_text(row, opts if listed else None), pics)
        if row.kind == "choice" and score == "letter":
            conts = [encode_text(tok, f" {letter}") for letter in LETTERS[: len(opts)]]
        else:
            conts = [encode_text(tok, option_text(o)) for o in opts]
        room = max((len(c) for c in conts), default=max_new_tokens)
        if len(ids) + room > m.lm.max_seq_len:
            raise _TooLong
        items.append((ids, conts, px))
    return items


class _TooLong(Exception):
    pass


def _results(
    bench: Benchmark,
    rows: list[BenchRow],
    correct: list[bool],
    picks: dict[int, list[int]],
    circular: bool,
) -> dict[str, Any]:
    cats = [r.category for r in rows]
    out: dict[str, Any] = {"accuracy": sum(correct) / max(len(rows), 1)}
    out.update(by_category(correct, cats))
    out["n"] = len(rows)
    if circular:
        first = [
            picks[j][0] == r.answer if j in picks else c
            for j, (r, c) in enumerate(zip(rows, correct, strict=True))
        ]
        out["single_pass_accuracy"] = sum(first) / max(len(rows), 1)
    yn = [j for j, r in enumerate(rows) if r.kind == "yesno"]
    if yn:
        said_yes = [picks[j][0] == 0 for j in yn]
        is_yes = [rows[j].answer == 0 for j in yn]
        pope = yes_no_metrics(said_yes, is_yes)
        out.update({k: v for k, v in pope.items() if k != "accuracy"})  # same as above
        for cat in sorted({rows[j].category for j in yn} - {""}):
            sel = [i for i, j in enumerate(yn) if rows[j].category == cat]
            out[f"f1_{cat}"] = yes_no_metrics([said_yes[i] for i in sel], [is_yes[i] for i in sel])[
                "f1"
            ]
    n_open = sum(r.kind == "open" for r in rows)
    if n_open:
        out["n_open"] = n_open
        out["exact_match_open"] = (
            sum(c for r, c in zip(rows, correct, strict=True) if r.kind == "open") / n_open
        )
    out["skipped"] = sum(bench.skipped.values())
    for reason, count in sorted(bench.skipped.items()):
        out[f"skipped_{reason}"] = count
        print(
            f"mcbench: skipped {count} row(s) for {reason}; first: {bench.first_skip[reason]}",
            file=sys.stderr,
        )
    out["layout"] = bench.layout
    return out
