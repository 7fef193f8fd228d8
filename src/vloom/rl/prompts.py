"""RL prompts: questions about the synthetic world's TRAINING scenes, never held-out ones.

The scenes are the ones the world's training corpus certainly drew, replayed from its manifest
(`vloom.synth.instructions.training_scenes`, which SFT's instruction sets read too); the
held-out stream redraws any scene whose key is among them. Prompts come in an order fixed by
a seed, so a step's prompts are a function of (seed, step): a resumed run asks the same
questions. Pointing questions ("Point to the red object.") are right when the point lies in
the object's cell (`point_in_cell`).

A prompt row has vqa_open's columns (`question`, `answers`, `qtype`, `template`, `scene`)
plus `images` (PNG bytes, one per figure) and `text` (the prompt after the images), so the
world's rewards and vqa_open's `accepted` read it directly.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from vloom.evaluate.tasks.data import image_prompt
from vloom.evaluate.tasks.vqa_open import open_prompt
from vloom.model.vlm import VLM
from vloom.sequence import encode_text
from vloom.synth.evalsets import scene_json, true_answers
from vloom.synth.instructions import POINT_QUESTION, cell_centre, training_scenes
from vloom.synth.language import make_qa
from vloom.synth.world import CELLS, COUNT_WORDS, png_bytes, render

SUM_QUESTION = "How many objects are there in the two figures together?"
COUNT_TEMPLATE = "The number of objects is {}."


def make_rows(synth_dir: Path, qtypes: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    """n prompt rows over the first 2n training scenes of the world in `synth_dir` (its
    manifest says how it was made), qtypes in turn, deterministic in seed."""
    scenes, cfg = training_scenes(synth_dir)
    scenes = scenes[: 2 * n]
    rng = random.Random(f"rl-prompts-{seed}")
    rows = []
    for i in range(n):
        qtype = qtypes[i % len(qtypes)]
        if qtype == "pointing":
            s = rng.choice(scenes)
            o = rng.choice(s.objects)
            figures = [s]
            row = {
                "question": POINT_QUESTION.format(o.colour),
                "answers": ["({}, {})".format(*cell_centre(o.cell))],
                "template": f"The {o.colour} object is at {{}}.",
                "scene": scene_json(s),
                "cell": CELLS[o.cell],
            }
        elif qtype == "count_sum":
            a, b = rng.sample(scenes, 2) if len(scenes) > 1 else (scenes[0], scenes[0])
            total = a.count + b.count
            figures = [a, b]
            row = {
                "question": SUM_QUESTION,
                "answers": [COUNT_WORDS[total]],
                "template": COUNT_TEMPLATE,
                "scene": json.dumps([json.loads(scene_json(s)) for s in figures]),
            }
        else:
            s = rng.choice(scenes)
            qa = make_qa(s, qtype, rng)
            figures = [s]
            row = {
                "question": qa.question,
                "answers": true_answers(s, qtype, qa.answer),
                "template": qa.template,
                "scene": scene_json(s),
            }
        row.update(
            id=f"rl-{i:06d}",
            qtype=qtype,
            text=open_prompt(row["question"]),
            images=[png_bytes(render(s, cfg["image_size"])) for s in figures],
        )
        rows.append(row)
    return rows


def prompt_head(m: VLM, tok: Tokenizer, row: dict[str, Any]) -> tuple[list[int], torch.Tensor]:
    """The tokens before the question text and the row's pixels: `<bos> <image>...` as
    vqa_open prompts one figure; `Figure 1. <image>... Figure 2. <image>...` for several."""
    ids = list(m.layout.prefix)
    pixels = []
    where = f"rl prompt {row['id']}"
    for k, data in enumerate(row["images"]):
        slots, px = image_prompt(m, data, where)
        if len(row["images"]) > 1:
            ids += encode_text(tok, f"Figure {k + 1}.")
        ids += slots
        pixels.append(px)
    return ids, torch.cat(pixels)


def step_indices(n_rows: int, per_step: int, step: int, seed: int) -> list[int]:
    """The rows asked at `step`: consecutive slices of one seeded permutation, wrapping."""
    order = list(range(n_rows))
    random.Random(f"rl-order-{seed}").shuffle(order)
    return [order[(step * per_step + j) % n_rows] for j in range(per_step)]
