"""Held-out evaluation sets beyond the basic ones: open VQA, caption references, multi-image
questions over an interleaved document, and world-knowledge questions in text only.

Every scene comes from the held-out stream (never seen in training). Each set is a Parquet
file in eval/; the columns are the contract the evaluate tasks read.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vloom.config import SynthConfig
from vloom.ondisk import DISTRACTORS_KEY
from vloom.synth.answers import NAME as ANSWERS_PLUGIN
from vloom.synth.language import QTYPES, caption, make_qa, qa_text
from vloom.synth.world import CELLS, COLOURS, SHAPES, SIZES, Scene, png_bytes, render

VQA_OPEN_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("image", pa.binary()),
        ("question", pa.string()),
        ("answers", pa.list_(pa.string())),  # every short answer true of the scene
        ("qtype", pa.string()),
        ("template", pa.string()),
        ("scene", pa.string()),  # JSON list of objects, to check converted options
    ],
    # vqa_mc_converted draws wrong options and checks them with the world's plug-in
    metadata={DISTRACTORS_KEY: ANSWERS_PLUGIN},
)
CAPTION_REFS_SCHEMA = pa.schema(
    [("id", pa.string()), ("image", pa.binary()), ("references", pa.list_(pa.string()))]
)
# The multiple-choice columns every QA eval file shares (option i scored as template.format(i)).
MC_FIELDS = [
    ("question", pa.string()),
    ("options", pa.list_(pa.string())),
    ("answer", pa.int32()),
    ("qtype", pa.string()),
    ("template", pa.string()),
]
MULTI_IMAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("texts", pa.list_(pa.string())),  # the interleaved context, OBELICS-style:
        ("images", pa.list_(pa.binary())),  # exactly one of texts[i], images[i] is non-null
        *MC_FIELDS,
    ]
)
WORLD_QA_SCHEMA = pa.schema([("id", pa.string()), ("context", pa.string()), *MC_FIELDS])


def scene_json(s: Scene) -> str:
    return json.dumps(
        [
            {"colour": o.colour, "shape": o.shape, "size": o.size, "cell": CELLS[o.cell]}
            for o in s.objects
        ]
    )


def true_answers(s: Scene, qtype: str, answer: str) -> list[str]:
    """Every short answer that is right for the question about this scene."""
    if qtype == "colour":  # "Which colour can be seen in the picture?": any colour present
        return sorted({o.colour for o in s.objects})
    return [answer]


def vqa_open_rows(held: Callable[[], Scene], n: int, size: int, rng: random.Random) -> list[dict]:
    rows = []
    for i in range(n):
        s = held()
        qa = make_qa(s, QTYPES[i % len(QTYPES)], rng)
        rows.append(
            {
                "id": f"vqa-open-{i:05d}",
                "image": png_bytes(render(s, size)),
                "question": qa.question,
                "answers": true_answers(s, qa.qtype, qa.answer),
                "qtype": qa.qtype,
                "template": qa.template,
                "scene": scene_json(s),
            }
        )
    return rows


def caption_ref_rows(
    held: Callable[[], Scene], n: int, size: int, rng: random.Random, refs: int = 3
) -> list[dict]:
    rows = []
    for i in range(n):
        s = held()
        rows.append(
            {
                "id": f"capref-{i:05d}",
                "image": png_bytes(render(s, size)),
                "references": [caption(s, rng) for _ in range(refs)],
            }
        )
    return rows


# multi_image: the interleaved documents the corpus trains on (`Figure 1. <image> Question: ...
# Answer: ... Figure 2. <image> ...`), asked in the corpus's own words: a question straight
# after the last of 2..MULTI_FIGURES figures, the earlier ones keeping two solved questions.
MULTI_FIGURES = 3


def counts_on_offer(held: Callable[[], Scene], k: int = 200) -> list[int]:
    """The object counts the held-out stream yields (a count every scene of which was seen in
    training never comes: with the default world, one-object scenes)."""
    return sorted({held().count for _ in range(k)})


def question_scene(held: Callable[[], Scene], qtype: str, i: int, counts: list[int]) -> Scene:
    """The held-out scene for question i of `qtype`: count questions take the counts on offer
    in turn (`counts`, from `counts_on_offer`), so no count answer is a prior worth learning;
    the other types take the next scene."""
    if qtype != "count":
        return held()
    return _held_with_count(held, counts[(i // len(QTYPES)) % len(counts)])


def _held_with_count(held: Callable[[], Scene], want: int, tries: int = 200) -> Scene:
    for _ in range(tries):
        s = held()
        if s.count == want:
            return s
    return s


def in_document_row(
    held: Callable[[], Scene], size: int, rng: random.Random, qtype: str, last: Scene
) -> dict[str, Any]:
    """A question about `last`, the last of 2..MULTI_FIGURES figures, asked straight after it
    as the corpus asks; each earlier figure keeps two solved questions after it, so the
    answer has to come from the right image, not the first one or the words about the others
    (they may name the same colour)."""
    scenes = [held() for _ in range(rng.randint(2, MULTI_FIGURES) - 1)] + [last]
    texts: list[str | None] = []
    images: list[bytes | None] = []
    for k, s in enumerate(scenes):
        texts += [f"Figure {k + 1}.", None]
        images += [None, png_bytes(render(s, size))]
        if s is not last:
            qas = [qa_text(make_qa(s, qt, rng)) for qt in rng.sample(QTYPES, 2)]
            texts.append(" ".join(qas))
            images.append(None)
    qa = make_qa(last, qtype, rng)
    return {
        "texts": texts,
        "images": images,
        "question": qa.question,
        "options": list(qa.options),
        "answer": qa.answer_index,
        "qtype": qtype,
        "template": qa.template,
    }


def multi_image_rows(
    held: Callable[[], Scene], n: int, size: int, rng: random.Random
) -> list[dict]:
    """n questions, the four types in turn; the count questions' answers are spread evenly
    over the counts held-out scenes have (else "three" alone scored 0.76 on count)."""
    counts = counts_on_offer(held)
    rows: list[dict] = []
    for i in range(n):
        qtype = QTYPES[i % len(QTYPES)]
        if qtype == "count":
            want = counts[(i // len(QTYPES)) % len(counts)]
            last = _held_with_count(held, want)
        else:
            last = held()
        rows.append({"id": f"multi-{i:05d}", **in_document_row(held, size, rng, qtype, last)})
    return rows


def world_qa_rows(n: int, rng: random.Random) -> list[dict]:
    """Text-only questions on what exists in the world: its colours, shapes, sizes and places.

    Every option is a word the training text uses, so word frequency alone cannot pick the
    answer: the right one plays the asked role (a colour), each distractor plays one of the
    other three roles (a shape, a size, a place), all read in the same answer sentence.
    """
    roles = {
        "colour": ("Which of these is a colour an object can have?", list(COLOURS)),
        "shape": ("Which of these is a shape an object can have?", list(SHAPES)),
        "size": ("Which of these is a size an object can have?", list(SIZES)),
        "position": ("Which of these is a place where an object can be?", list(CELLS)),
    }
    templates = {
        "colour": "There is a {} object.",
        "shape": "The {c} object is a {{}}.",
        "size": "There is a {{}} {c} {s}.",
        "position": "The {c} object is at the {{}}.",
    }
    rows = []
    for i in range(n):
        qtype = list(roles)[i % len(roles)]
        q, right = roles[qtype]
        a = rng.choice(right)
        opts = [a] + [rng.choice(words) for r, (_, words) in roles.items() if r != qtype]
        rng.shuffle(opts)
        c, s = rng.choice(list(COLOURS)), rng.choice(list(SHAPES))
        t = templates[qtype]
        rows.append(
            {
                "id": f"world-{i:05d}",
                "context": "",
                "question": q,
                "options": opts,
                "answer": opts.index(a),
                "qtype": qtype,
                "template": t.format(c=c, s=s) if "{c" in t else t,
            }
        )
    return rows


def write_evalsets(
    eval_dir: Path, held: Callable[[], Scene], cfg: SynthConfig, seed: int
) -> dict[str, Any]:
    """Write the extra held-out sets into eval_dir; return their sizes for the manifest."""
    rng = random.Random(f"evalsets-{seed}")
    n_small = max(cfg.n_eval_text // 2, 4)
    sets = {
        "vqa_open": (vqa_open_rows(held, cfg.n_eval_vqa, cfg.image_size, rng), VQA_OPEN_SCHEMA),
        "caption_refs": (
            caption_ref_rows(held, n_small, cfg.image_size, rng),
            CAPTION_REFS_SCHEMA,
        ),
        "multi_image": (
            multi_image_rows(held, cfg.n_eval_text, cfg.image_size, rng),
            MULTI_IMAGE_SCHEMA,
        ),
        "world_qa": (world_qa_rows(cfg.n_eval_text, rng), WORLD_QA_SCHEMA),
    }
    for name, (rows, schema) in sets.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), eval_dir / f"{name}.parquet")
    return {name: len(rows) for name, (rows, _) in sets.items()}
