"""Words about scenes: captions, descriptions and question/answer templates.

The same phrasing serves image captions, the prose of interleaved documents and
text-only documents, so what a model learns from text transfers to images.
The QA template is also the evaluation prompt: `Question: ... Answer: <option>`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vloom.synth.world import CELLS, COLOURS, COUNT_WORDS, SHAPES, Obj, Scene

QTYPES = ("colour", "shape", "count", "position")
COUNT_OPTIONS = COUNT_WORDS[1:5]


@dataclass(frozen=True, slots=True)
class QA:
    qtype: str
    question: str
    answer: str
    options: tuple[str, ...]  # 4 options, answer among them

    @property
    def answer_index(self) -> int:
        return self.options.index(self.answer)


def phrase(o: Obj, article: str = "a") -> str:
    return f"{article} {o.size} {o.colour} {o.shape} at the {CELLS[o.cell]}"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def count_sentence(scene: Scene) -> str:
    n = scene.count
    return f"There {'is' if n == 1 else 'are'} {COUNT_WORDS[n]} object{'' if n == 1 else 's'}."


def caption(scene: Scene, rng: random.Random) -> str:
    """A one-line caption for an image-caption pair."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    body = _join([phrase(o) for o in objs])
    # Every lead carries a stop word besides the "the" of each phrase: captions are prose.
    lead = rng.choice(
        ["This is a picture of ", "The image shows ", "In the image there is ", "A picture with "]
    )
    return f"{lead}{body}. {count_sentence(scene)}"


def description(scene: Scene, rng: random.Random) -> str:
    """Prose describing a scene in full, for documents with or without the image."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    first = rng.choice(
        ["In the scene there is ", "The scene has ", "Here we can see ", "The picture contains "]
    )
    out = [first + _join([phrase(o) for o in objs]) + ".", count_sentence(scene)]
    if scene.count > 1 and rng.random() < 0.5:
        a, b = rng.sample(objs, 2)
        ra, ca = divmod(a.cell, 2)
        rb, cb = divmod(b.cell, 2)
        if ca != cb:
            rel = "to the left of" if ca < cb else "to the right of"
        else:
            rel = "above" if ra < rb else "below"
        out.append(f"The {a.colour} {a.shape} is {rel} the {b.colour} {b.shape}.")
    return " ".join(out)


def _options(answer: str, pool: tuple[str, ...] | list[str], rng: random.Random) -> tuple[str, ...]:
    others = [p for p in pool if p != answer]
    opts = rng.sample(others, 3) + [answer]
    rng.shuffle(opts)
    return tuple(opts)


def make_qa(scene: Scene, qtype: str, rng: random.Random) -> QA:
    o = rng.choice(scene.objects)
    if qtype == "colour":
        q, a, pool = f"What colour is the {o.shape}?", o.colour, list(COLOURS)
    elif qtype == "shape":
        q, a, pool = f"What shape is the {o.colour} object?", o.shape, SHAPES
    elif qtype == "count":
        q, a, pool = "How many objects are there?", COUNT_WORDS[scene.count], COUNT_OPTIONS
    elif qtype == "position":
        q, a, pool = f"Where is the {o.colour} {o.shape}?", CELLS[o.cell], CELLS
    else:
        raise ValueError(f"unknown question type {qtype!r}; known: {', '.join(QTYPES)}")
    return QA(qtype, q, a, _options(a, pool, rng))


def qa_prompt(question: str) -> str:
    return f"Question: {question} Answer:"


def qa_text(qa: QA) -> str:
    return f"{qa_prompt(qa.question)} {qa.answer}."
