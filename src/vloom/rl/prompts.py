"""RL prompts: questions about the synthetic world's TRAINING scenes, never held-out ones.

The corpus draws its training scenes from one stream (`train-scenes-<seed>`, one
`sample_scene` per call) and draws at least `n_interleaved * images_per_doc + n_pairs +
2 * n_text` of them; the first that many are therefore scenes the model trained on, and the
held-out stream redraws any scene whose key is among them. Prompts are built from those
scenes only, in an order fixed by a seed, so a step's prompts are a function of (seed, step):
a resumed run asks the same questions.

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

from vloom.config import SynthConfig
from vloom.evaluate.tasks.data import image_prompt
from vloom.evaluate.tasks.vqa_open import open_prompt
from vloom.model.vlm import VLM
from vloom.ondisk import MANIFEST
from vloom.sequence import encode_text
from vloom.synth.evalsets import scene_json, true_answers
from vloom.synth.language import make_qa
from vloom.synth.world import COUNT_WORDS, Scene, png_bytes, render, sample_scene

SUM_QUESTION = "How many objects are there in the two figures together?"
COUNT_TEMPLATE = "The number of objects is {}."


def trained_scene_count(cfg: SynthConfig) -> int:
    """How many scenes of the training stream the corpus surely drew (text docs take 2..4)."""
    return cfg.n_interleaved * cfg.images_per_doc + cfg.n_pairs + 2 * cfg.n_text


def training_scenes(cfg: SynthConfig, world_seed: int, n: int) -> list[Scene]:
    """The first n scenes of the world's training stream (n is capped at those it trained on)."""
    n = min(n, trained_scene_count(cfg))
    if n <= 0:
        raise ValueError("synth: the world has no training scenes to ask RL questions about")
    rng = random.Random(f"train-scenes-{world_seed}")
    return [sample_scene(rng, cfg.max_objects) for _ in range(n)]


def world_of(packed_dir: Path, cfg: SynthConfig, seed: int) -> tuple[SynthConfig, int]:
    """The synth config and seed that built this run's world: its manifest beside the packed
    data (ROOT/synth/manifest.json) when there is one, else the experiment's."""
    path = packed_dir.parent / "synth" / MANIFEST
    if path.is_file():
        m = json.loads(path.read_text())
        return SynthConfig.model_validate(m["config"]), int(m["seed"])
    return cfg, seed


def make_rows(
    cfg: SynthConfig, world_seed: int, qtypes: list[str], n: int, seed: int
) -> list[dict[str, Any]]:
    """n prompt rows over the world's training scenes, qtypes in turn, deterministic in seed."""
    scenes = training_scenes(cfg, world_seed, 2 * n)
    rng = random.Random(f"rl-prompts-{seed}")
    rows = []
    for i in range(n):
        qtype = qtypes[i % len(qtypes)]
        if qtype == "count_sum":
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
            images=[png_bytes(render(s, cfg.image_size)) for s in figures],
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
