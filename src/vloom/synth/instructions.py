"""Instruction sets from the synthetic world's training scenes, as conversations for SFT.

Kinds (each answer a sentence in the world's own words, so it is checkable):
- vqa: one question (colour, shape, count, position in turn) answered with the QA template's
  sentence, e.g. "The red object is a circle." — what `vqa_open` accepts.
- pointing: "Point to the red object." -> "The red object is at (25, 75)." The point is the
  object's cell centre in percent of the image's width and height (x from the left, y from
  the top); `point_in_cell` checks an answer against the cell.
- captions: "Describe every object in the picture." -> the count sentence, then every object
  with its cell, size, colour and shape in reading order.
- multi_turn: 2..max_turns of the questions above (distinct types) about one image.
- reading: no image; the scene described in the world's prose (a system turn, as `text_qa`
  gives its context) and one question about it (the four types in turn): binding an object's
  attributes in words, which the image kinds alone let the LM forget.

Scenes: only the world's training scenes. Training and held-out scenes come from separate
random streams (synth/corpus.py); the training stream is replayed here from the world's seed
for as many scenes as training certainly drew (interleaved x images_per_doc + pairs +
2 x text documents: a text document draws 2..4), never further, so no scene is one the
held-out stream could hold (held-out scenes avoid every training key). Deterministic from
(world manifest, seed, counts).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vloom.chat.conversation import Conversation, Turn, text_turn
from vloom.ondisk import MANIFEST, read_json_object
from vloom.synth.evalsets import scene_json, true_answers
from vloom.synth.language import QTYPES, _join, count_sentence, description, make_qa, phrase
from vloom.synth.world import CELLS, Scene, png_bytes, render, sample_scene

KINDS = ("vqa", "pointing", "captions", "multi_turn", "reading")
POINT_QUESTION = "Point to the {} object."
CAPTION_QUESTION = "Describe every object in the picture."
_POINT = re.compile(r"\(\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\)")


def cell_centre(cell: int) -> tuple[int, int]:
    """(x, y) of a grid cell's centre in percent of the image (2x2 grid: 25 or 75)."""
    row, col = divmod(cell, 2)
    return 25 + 50 * col, 25 + 50 * row


def parse_point(text: str) -> tuple[float, float] | None:
    """The first `(x, y)` in `text`, or None."""
    m = _POINT.search(text)
    return (float(m.group(1)), float(m.group(2))) if m else None


def point_in_cell(text: str, cell: int | str) -> bool:
    """Whether the point an answer gives lies inside `cell` (an index or a CELLS name)."""
    pt = parse_point(text)
    if pt is None:
        return False
    c = CELLS.index(cell) if isinstance(cell, str) else cell
    row, col = divmod(c, 2)
    x, y = pt
    return 50 * col <= x < 50 * (col + 1) + (col == 1) and 50 * row <= y < 50 * (row + 1) + (
        row == 1
    )


def training_scenes(synth_dir: str | Path) -> tuple[list[Scene], dict[str, Any]]:
    """The scenes the world's training corpus certainly drew, in order, and its synth config
    (from `synth_dir/manifest.json`; see the module docstring)."""
    manifest = read_json_object(Path(synth_dir) / MANIFEST, "synth manifest")
    cfg, seed = manifest["config"], manifest["seed"]
    n = cfg["n_interleaved"] * cfg["images_per_doc"] + cfg["n_pairs"] + 2 * cfg["n_text"]
    if n < 1:
        raise ValueError(f"{synth_dir}: the world has no training scenes to draw instructions from")
    rng = random.Random(f"train-scenes-{seed}")  # synth/corpus.py's training stream
    return [sample_scene(rng, cfg["max_objects"]) for _ in range(n)], cfg


def _question(scene: Scene, kind: str, rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """(question, answer sentence, what checks it) for one question type or pointing."""
    if kind == "pointing":
        o = rng.choice(scene.objects)
        x, y = cell_centre(o.cell)
        check = {"qtype": "pointing", "cell": CELLS[o.cell], "colour": o.colour}
        return POINT_QUESTION.format(o.colour), f"The {o.colour} object is at ({x}, {y}).", check
    qa = make_qa(scene, kind, rng)
    answers = true_answers(scene, qa.qtype, qa.answer)
    check = {"qtype": qa.qtype, "answers": answers, "template": qa.template}
    return qa.question, qa.answer_text(), check


def dense_caption(scene: Scene) -> str:
    objs = sorted(scene.objects, key=lambda o: o.cell)
    body = _join([phrase(o) for o in objs])
    return f"{count_sentence(scene)} {body[0].upper()}{body[1:]}."


def _conversation(
    i: int, kind: str, scene: Scene, size: int, rng: random.Random, max_turns: int, source: str
) -> Conversation:
    meta: dict[str, Any] = {"kind": kind, "scene": scene_json(scene)}
    if kind == "reading":
        q, a, check = _question(scene, QTYPES[i % len(QTYPES)], rng)
        said = text_turn("system", description(scene, rng))
        turns = [said, Turn("user", (q,)), Turn("assistant", (a,))]
        meta["checks"] = [check]
        return Conversation(f"{source}/{kind}-{i:06d}", turns, source=f"{source}/{kind}", meta=meta)
    image = png_bytes(render(scene, size))
    if kind == "captions":
        qs = [(CAPTION_QUESTION, dense_caption(scene), {"qtype": "caption"})]
    elif kind == "vqa":
        qs = [_question(scene, QTYPES[i % len(QTYPES)], rng)]
    elif kind == "pointing":
        qs = [_question(scene, "pointing", rng)]
    else:
        kinds = rng.sample([*QTYPES, "pointing"], rng.randint(2, min(max_turns, 5)))
        qs = [_question(scene, k, rng) for k in kinds]
    turns: list[Turn] = []
    for k, (q, a, _) in enumerate(qs):
        turns.append(Turn("user", (image, q) if k == 0 else (q,)))
        turns.append(Turn("assistant", (a,)))
    meta["checks"] = [c for _, _, c in qs]
    return Conversation(f"{source}/{kind}-{i:06d}", turns, source=f"{source}/{kind}", meta=meta)


def world_instructions(
    synth_dir: str | Path,
    counts: dict[str, int],
    seed: int = 0,
    max_turns: int = 4,
    source: str = "world",
) -> Iterator[Conversation]:
    """counts[kind] conversations of each kind, the kinds interleaved (so any prefix mixes
    them), scenes drawn from the training scenes alone; deterministic from the arguments."""
    bad = sorted(set(counts) - set(KINDS))
    if bad:
        raise ValueError(f"unknown instruction kind {bad[0]!r}; known: {', '.join(KINDS)}")
    scenes, cfg = training_scenes(synth_dir)
    rng = random.Random(f"instructions-{seed}")
    order = [k for k in KINDS for _ in range(counts.get(k, 0))]
    rng.shuffle(order)
    done = dict.fromkeys(KINDS, 0)
    for kind in order:
        scene = rng.choice(scenes)
        yield _conversation(done[kind], kind, scene, cfg["image_size"], rng, max_turns, source)
        done[kind] += 1
