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
# Questions about one object name it by its colour; `asked_colour` reads them back.
SHAPE_QUESTION = "What shape is the {} object?"
POSITION_QUESTION = "Where is the {} object?"
# What each shape looks like, said of the objects in the world's prose. Without it no word of
# the world's text depends on which shape was named (they only stand in each other's place),
# so a small LM trained on it learns one embedding for all four (mean cosine 0.95-0.97 in the
# demo's checkpoints), every shape word stays at ln 4 loss, and no lookup can copy one.
SHAPE_FACTS = {
    "circle": "is round and smooth",
    "square": "has straight sides and right angles",
    "triangle": "has a sharp point on top",
    "diamond": "stands on its tip",
}
# The same for colours: the demo's colour words, as interchangeable in the world's text, stayed
# one embedding (cosine 0.87-0.94) until step 500-750, and colour reading waited for them.
COLOUR_FACTS = {
    "red": "a tomato",
    "green": "grass",
    "blue": "the sky",
    "yellow": "a lemon",
    "purple": "a plum",
    "white": "snow",
}


@dataclass(frozen=True, slots=True)
class QA:
    """A question whose answer is a full sentence: `template` with one option filled in.

    Options are short ("red"); scoring ranks the full answer sentences, whose shared
    words cancel, so the ranking is decided by the option words.
    """

    qtype: str
    question: str
    answer: str
    options: tuple[str, ...]  # 4 options, answer among them
    template: str  # e.g. "The object at the top left is {}."

    @property
    def answer_index(self) -> int:
        return self.options.index(self.answer)

    def answer_text(self, option: str | None = None) -> str:
        return self.template.format(self.answer if option is None else option)


def phrase(o: Obj, article: str = "a") -> str:
    return f"at the {CELLS[o.cell]} there is {article} {o.size} {o.colour} {o.shape}"


def where_sentences(scene: Scene, rng: random.Random) -> str:
    """One sentence an object saying where it is, colour first ('The red triangle is at the top
    left.'), the objects in random order. The object list says the place before the colour
    ("at the top left there is a small red triangle"), so answering "Where is the red object?"
    from it takes a lookup backwards from the colour, while an in-context copy copies what
    follows a match; here the place follows the colour, as in the answer (issue 16)."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    return " ".join(f"The {o.colour} {o.shape} is at the {CELLS[o.cell]}." for o in objs)


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def count_sentence(scene: Scene) -> str:
    n = scene.count
    return f"There {'is' if n == 1 else 'are'} {COUNT_WORDS[n]} object{'' if n == 1 else 's'}."


def _reading_order(scene: Scene) -> list[Obj]:
    # Objects are named in reading order (top left first), the order of the image's cells.
    return sorted(scene.objects, key=lambda o: o.cell)


def summary(scene: Scene, rng: random.Random) -> str:
    """What the picture holds as a whole: its colours and its shapes, in random order."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    colours = _join([o.colour for o in objs])
    shapes = _join([f"a {o.shape}" for o in objs])
    return f"The picture has {colours} in it, and it shows {shapes}."


def caption(scene: Scene, rng: random.Random) -> str:
    """A caption for an image-caption pair: the whole, then each object in reading order."""
    body = _join([phrase(o) for o in _reading_order(scene)])
    lead = rng.choice(
        ["In this picture, ", "In the image, ", "Looking at the picture, ", "In this image, "]
    )
    return (
        f"{summary(scene, rng)} {lead}{body}. {shape_facts(scene, rng)} {count_sentence(scene)} "
        f"{where_sentences(scene, rng)}"
    )


def description(scene: Scene, rng: random.Random) -> str:
    """Prose describing a scene in full, for documents with or without the image."""
    objs = _reading_order(scene)
    first = rng.choice(["In the scene, ", "In this scene, ", "Here, ", "In the picture, "])
    out = [
        summary(scene, rng),
        first + _join([phrase(o) for o in objs]) + ".",
        shape_facts(scene, rng),
        count_sentence(scene),
    ]
    if scene.count > 1 and rng.random() < 0.5:
        a, b = rng.sample(objs, 2)
        ra, ca = divmod(a.cell, 2)
        rb, cb = divmod(b.cell, 2)
        if ca != cb:
            rel = "to the left of" if ca < cb else "to the right of"
        else:
            rel = "above" if ra < rb else "below"
        out.append(f"The {a.colour} {a.shape} is {rel} the {b.colour} {b.shape}.")
    out.append(where_sentences(scene, rng))
    return " ".join(out)


def shape_facts(scene: Scene, rng: random.Random) -> str:
    """What each object's shape and colour look like, two sentences an object, in random order."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    return " ".join(
        f"The {o.colour} {o.shape} {SHAPE_FACTS[o.shape]}. "
        f"The {o.shape} is {o.colour} like {COLOUR_FACTS[o.colour]}."
        for o in objs
    )


def _options(answer: str, pool: tuple[str, ...] | list[str], rng: random.Random) -> tuple[str, ...]:
    others = [p for p in pool if p != answer]
    opts = rng.sample(others, 3) + [answer]
    rng.shuffle(opts)
    return tuple(opts)


def make_qa(scene: Scene, qtype: str, rng: random.Random) -> QA:
    o = rng.choice(scene.objects)
    cell = CELLS[o.cell]
    if qtype == "colour":
        # Presence: the distractors are colours absent from the scene, so one answer is right.
        absent = [c for c in COLOURS if c not in {x.colour for x in scene.objects}]
        a = o.colour
        opts = rng.sample(absent, 3) + [a]
        rng.shuffle(opts)
        return QA(
            qtype,
            "Which colour can be seen in the picture?",
            a,
            tuple(opts),
            "There is a {} object.",
        )
    elif qtype == "shape":
        q, a, pool = SHAPE_QUESTION.format(o.colour), o.shape, SHAPES
        t = f"The {o.colour} object is a {{}}."
    elif qtype == "count":
        q, a, pool = "How many objects are there?", COUNT_WORDS[scene.count], COUNT_OPTIONS
        t = "The number of objects is {}."
    elif qtype == "position":
        q, a, pool = POSITION_QUESTION.format(o.colour), cell, CELLS
        t = f"The {o.colour} object is at the {{}}."
    else:
        raise ValueError(f"unknown question type {qtype!r}; known: {', '.join(QTYPES)}")
    return QA(qtype, q, a, _options(a, pool, rng), t)


def asked_colour(question: str) -> str | None:
    """The colour naming the object a shape or position question asks about, else None."""
    for wording in (SHAPE_QUESTION, POSITION_QUESTION):
        head, tail = wording.split("{}")
        fits = len(question) >= len(head) + len(tail)
        if fits and question.startswith(head) and question.endswith(tail):
            return question[len(head) : len(question) - len(tail)]
    return None


def qa_prompt(question: str) -> str:
    return f"Question: {question} Answer:"


def qa_text(qa: QA) -> str:
    return f"{qa_prompt(qa.question)} {qa.answer_text()}"
