"""The open VQA questions converted to multiple choice (see vloom.evaluate.convert).

Wrong options come from the set's answer plug-in and from the set's own answers.
`distractors=auto` takes the plug-in the file names in its metadata (the synthetic world's
sets name `synthetic-world`, whose proposals are the world's words for the question's role;
older world files without the name are recognised by their `scene` column); a registered name
or `module:attr` picks one; `none` leaves only the set's own answer space. Scored like `vqa`;
run beside `vqa_open`, the results gain `shift_from_open*`: how much accuracy moves between
the open and the multiple-choice form, overall and per question type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import vloom.evaluate.model_distractors  # noqa: F401  (registers the "model" distractors)
from vloom.evaluate.convert import (
    Distractors,
    convert_open_to_mc,
    load_distractors,
    register_distractors,
    registered_distractors,
)
from vloom.evaluate.scoring import accuracy_by_type, multiple_choice
from vloom.evaluate.tasks import EvalContext, register
from vloom.evaluate.tasks.data import answer_text, file_metadata, image_prompt
from vloom.evaluate.tasks.vqa_open import read_open_rows
from vloom.ondisk import DISTRACTORS_KEY
from vloom.sequence import encode_text
from vloom.synth import answers as world_answers

register_distractors(world_answers.NAME, world_answers.WORLD)


def pick_distractors(
    spec: str | None, path: Path, rows: list[dict[str, Any]]
) -> Distractors | None:
    """The plug-in for this set: `spec`, or with `auto` the one its file names."""
    if spec in (None, "", "none"):
        return None
    if spec != "auto":
        return load_distractors(spec)
    named = file_metadata(path).get(DISTRACTORS_KEY)
    if named:  # a name only: a data file never makes us import code
        try:
            return registered_distractors(named)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    if rows and rows[0].get("scene"):  # a world set written before files named their plug-in
        return world_answers.WORLD
    return None


def answer_mc(ctx: EvalContext, rows: list[dict[str, Any]], where: Path) -> list[int]:
    """The option the model picks for each converted row (image, `Question: q Answer:`, each
    option scored as the row's answer template filled in)."""
    m, tok = ctx.model, ctx.tokenizer
    prompts, images = [], []
    for r in rows:
        slots, pixels = image_prompt(m, r["image"], f"{where}: row {r.get('id')}")
        prompts.append(
            m.layout.prefix + slots + encode_text(tok, f"Question: {r['question']} Answer:")
        )
        images.append(pixels)
    options = [[encode_text(tok, " " + answer_text(r, o)) for o in r["options"]] for r in rows]
    return multiple_choice(m, prompts, options, images, ctx.device, ctx.batch_size)


@register("vqa_mc_converted", modality="vision-language")
def vqa_mc_converted(
    ctx: EvalContext, num_options: int = 4, distractors: str | None = "auto"
) -> dict[str, Any]:
    # The answer space is the whole file's; the first max_examples questions are asked, the
    # same ones vqa_open asks (unless some are dropped, which `dropped` counts).
    where = ctx.data_dir / "vqa_open.parquet"
    allrows = read_open_rows(ctx, None)
    plugin = pick_distractors(distractors, where, allrows)
    rows, stats = convert_open_to_mc(allrows, num_options, plugin, ctx.seed)
    rows = rows[: ctx.max_examples] if ctx.max_examples else rows
    picks = answer_mc(ctx, rows, where)
    out: dict[str, Any] = accuracy_by_type(
        picks, [int(r["answer"]) for r in rows], [r["qtype"] for r in rows]
    )
    out["dropped"] = sum(v for k, v in stats.items() if k != "distractors_from_generator")
    out["distractors_from_generator"] = stats["distractors_from_generator"]
    out["chance"] = 1 / num_options
    return out
