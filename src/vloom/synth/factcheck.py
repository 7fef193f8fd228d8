"""Facts in free text about the synthetic world, scored against a scene's truth.

`parse_facts(text)` reads whatever a caption, a description, an answer or a model's output
says about colours, shapes, sizes, places and counts as facts:

    Mention(colour, shape, size, cell)  one object, the fields the text names (None: unnamed)
    Count(n)                            "there are three objects", "the number of objects is two"
    Relation(a, rel, b)                 "the red circle is to the left of the blue square"

Parsing is by the world's vocabulary, not its templates, so a model's loose wording still
parses: sentences split on . ! ? and new lines (questions are dropped: they state nothing),
then on commas and "and"; within one fragment the vocabulary words in reading order form one
mention until a kind repeats ("a red circle near a blue square" -> two mentions).

`judge(fact, scene)` says whether a fact is true of the scene:
    true          an object has every named field (a relation: both sides true, and it holds)
    hallucinated  it names a value no object in the scene has (a colour, shape or size that is
                  absent, a cell that is empty), or a count that is wrong
    false         every value it names exists, but not together (a misbound attribute) or a
                  relation that does not hold
`score(text, scene)` counts the distinct facts a text states by verdict and the share of the
scene's facts it covers: each object's colour, shape, size and cell, plus the count
(4 x objects + 1); a true mention covers the fields it names of the one object it matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from vloom.synth.world import CELLS, COLOURS, COUNT_WORDS, SHAPES, SIZES, Obj, Scene

FIELDS = ("colour", "shape", "size", "cell")
RELATIONS = ("to the left of", "to the right of", "above", "below")
_KIND = {
    **{c: "colour" for c in COLOURS},
    **{s: "shape" for s in SHAPES},
    **{s + "s": "shape" for s in SHAPES},
    **{s: "size" for s in SIZES},
    **{c: "cell" for c in CELLS},
}
_WORD = re.compile(r"\b(" + "|".join(sorted(_KIND, key=len, reverse=True)) + r")\b")
_REL = re.compile(r"\b(" + "|".join(RELATIONS) + r")\b")
_NUM = "|".join([*COUNT_WORDS, r"\d+"])
# "three objects", "two different objects", "the number of objects is three" (not "figure 1
# has more objects": only a few adjectives may stand between the number and the noun)
_COUNT = [
    re.compile(rf"\b({_NUM}) (?:(?:different|coloured|colored|small|large) )?objects?\b"),
    re.compile(rf"\bnumber of objects is ({_NUM})\b"),
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_FRAGMENT = re.compile(r",|;|\band\b")


@dataclass(frozen=True, slots=True)
class Mention:
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    cell: str | None = None

    def named(self) -> dict[str, str]:
        return {f: v for f in FIELDS if (v := getattr(self, f)) is not None}


@dataclass(frozen=True, slots=True)
class Count:
    n: int


@dataclass(frozen=True, slots=True)
class Relation:
    a: Mention
    rel: str
    b: Mention


Fact = Mention | Count | Relation
VERDICTS = ("true", "false", "hallucinated")


def _mentions(fragment: str) -> list[Mention]:
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for m in _WORD.finditer(fragment):
        word = m.group(1)
        kind = _KIND[word]
        if kind in cur:
            out.append(cur)
            cur = {}
        cur[kind] = word[:-1] if kind == "shape" and word not in SHAPES else word
    if cur:
        out.append(cur)
    return [Mention(**d) for d in out]


def _count(sentence: str) -> Count | None:
    for pat in _COUNT:
        m = pat.search(sentence)
        if m:
            w = m.group(1)
            n = int(w) if w.isdigit() else COUNT_WORDS.index(w)
            if n > 0:  # "zero objects" is no claim the parser can check against a cell
                return Count(n)
    return None


def parse_facts(text: str) -> list[Fact]:
    """Every fact `text` states, in reading order (repeats kept; `score` counts distinct)."""
    facts: list[Fact] = []
    for sentence in _SENTENCE.split(text.lower()):
        sentence = sentence.strip()
        if not sentence or sentence.endswith("?"):
            continue
        if (c := _count(sentence)) is not None:
            facts.append(c)
        parts = _REL.split(sentence)  # [left, rel, right, rel, ...]
        sides = [[m for frag in _FRAGMENT.split(p) for m in _mentions(frag)] for p in parts[::2]]
        for ms in sides:
            facts.extend(ms)
        for k, rel in enumerate(parts[1::2]):
            left, right = sides[k], sides[k + 1]
            if left and right:
                facts.append(Relation(left[-1], rel, right[0]))
    return facts


def _matches(o: Obj, m: Mention) -> bool:
    return all(
        (v := getattr(m, f)) is None or v == (CELLS[o.cell] if f == "cell" else getattr(o, f))
        for f in FIELDS
    )


def _values(scene: Scene, f: str) -> set[str]:
    return {CELLS[o.cell] if f == "cell" else getattr(o, f) for o in scene.objects}


def _judge_mention(m: Mention, scene: Scene) -> str:
    if any(v not in _values(scene, f) for f, v in m.named().items()):
        return "hallucinated"
    return "true" if any(_matches(o, m) for o in scene.objects) else "false"


def _holds(a: Obj, rel: str, b: Obj) -> bool:
    (ra, ca), (rb, cb) = divmod(a.cell, 2), divmod(b.cell, 2)
    return {
        "to the left of": ca < cb,
        "to the right of": ca > cb,
        "above": ra < rb,
        "below": ra > rb,
    }[rel]


def judge(fact: Fact, scene: Scene) -> str:
    """One of VERDICTS (see the module docstring)."""
    if isinstance(fact, Count):
        return "true" if fact.n == scene.count else "hallucinated"
    if isinstance(fact, Mention):
        return _judge_mention(fact, scene)
    sides = [_judge_mention(fact.a, scene), _judge_mention(fact.b, scene)]
    if "hallucinated" in sides:
        return "hallucinated"
    oa = [o for o in scene.objects if _matches(o, fact.a)]
    ob = [o for o in scene.objects if _matches(o, fact.b)]
    ok = any(_holds(a, fact.rel, b) for a in oa for b in ob if a is not b)
    return "true" if ok else "false"


def covered(facts: Iterable[Fact], scene: Scene) -> set[tuple]:
    """The scene facts ((object index, field) and ("count",)) that true facts state."""
    out: set[tuple] = set()
    for f in facts:
        if isinstance(f, Count):
            if f.n == scene.count:
                out.add(("count",))
            continue
        for m in (f.a, f.b) if isinstance(f, Relation) else (f,):
            hits = [i for i, o in enumerate(scene.objects) if _matches(o, m)]
            if len(hits) == 1:
                out.update((hits[0], name) for name in m.named())
    return out


@dataclass
class FactScore:
    """Distinct facts stated, by verdict, and the scene facts covered (sums over texts add)."""

    stated: int = 0
    true: int = 0
    false: int = 0
    hallucinated: int = 0
    covered: int = 0
    scene_facts: int = 0
    texts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, other: FactScore) -> FactScore:
        for k in ("stated", "true", "false", "hallucinated", "covered", "scene_facts", "texts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k, v in other.by_kind.items():
            self.by_kind[k] = self.by_kind.get(k, 0) + v
        return self

    def shares(self) -> dict[str, float]:
        """true / false / hallucinated as shares of the stated facts, coverage of the scene's."""
        s = max(self.stated, 1)
        return {
            "true": self.true / s,
            "false": self.false / s,
            "hallucinated": self.hallucinated / s,
            "coverage": self.covered / max(self.scene_facts, 1),
            "facts_per_text": self.stated / max(self.texts, 1),
        }


def score_facts(facts: Iterable[Fact], scene: Scene) -> FactScore:
    distinct = list(dict.fromkeys(facts))
    out = FactScore(stated=len(distinct), scene_facts=4 * scene.count + 1, texts=1)
    for f in distinct:
        v = judge(f, scene)
        setattr(out, v, getattr(out, v) + 1)
        kind = type(f).__name__.lower()
        out.by_kind[f"{kind}_{v}"] = out.by_kind.get(f"{kind}_{v}", 0) + 1
    out.covered = len(covered(distinct, scene))
    return out


def score(text: str, scene: Scene) -> FactScore:
    """How true and how complete `text` is about `scene`."""
    return score_facts(parse_facts(text), scene)


# ---- scenes from the world's own words (its captions and descriptions are complete) ----


def scene_from_json(text: str) -> Scene:
    """A scene from `evalsets.scene_json`'s JSON (jitter 0: only what words can say)."""
    objs = json.loads(text)
    return Scene(
        tuple(
            Obj(o["colour"], o["shape"], o["size"], CELLS.index(o["cell"]), 0.0, 0.0) for o in objs
        )
    )


def scene_from_text(text: str) -> Scene | None:
    """The scene a world caption or description names in full: every object with all four
    fields and a count that agrees; None when the text does not (a partial or broken text)."""
    facts = parse_facts(text)
    full = {
        m.cell: m
        for m in facts
        if isinstance(m, Mention) and all(getattr(m, f) is not None for f in FIELDS)
    }
    counts = {f.n for f in facts if isinstance(f, Count)}
    if not full or counts != {len(full)}:
        return None
    objs = [
        Obj(m.colour, m.shape, m.size, CELLS.index(m.cell), 0.0, 0.0)  # type: ignore[arg-type]
        for m in full.values()
    ]
    return Scene(tuple(sorted(objs, key=lambda o: o.cell)))


_SEGMENT = re.compile(r"\b(?:Scene|Figure) (\d+)\.")


def scene_segments(text: str) -> list[tuple[int, str]]:
    """(k, text) for each "Scene k." / "Figure k." section of a world document; the whole text
    as section 1 when it has none (a caption)."""
    marks = list(_SEGMENT.finditer(text))
    if not marks:
        return [(1, text)]
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [(int(m.group(1)), text[m.end() : e]) for m, e in zip(marks, ends, strict=True)]


def world_scenes(text: str) -> dict[int, Scene]:
    """The scenes a world document describes in full, by section number (see scene_segments)."""
    out = {}
    for k, seg in scene_segments(text):
        s = scene_from_text(seg)
        if s is not None:
            out[k] = s
    return out


# ---- facts back into the world's words ----


def phrase_mention(m: Mention) -> str:
    """One mention in the world's wording ("at the top left there is a small red circle")."""
    noun = " ".join(v for v in (m.size, m.colour, m.shape or "object") if v)
    return f"at the {m.cell} there is a {noun}" if m.cell else f"there is a {noun}"


def render_facts(facts: Iterable[Fact]) -> str:
    """Facts as world sentences: the count, then one clause per mention, then relations."""
    facts = list(dict.fromkeys(facts))
    out = []
    counts = [f for f in facts if isinstance(f, Count)]
    if counts:
        n = counts[0].n
        word = COUNT_WORDS[n] if n < len(COUNT_WORDS) else str(n)
        out.append(f"There {'is' if n == 1 else 'are'} {word} object{'' if n == 1 else 's'}.")
    for m in facts:
        if isinstance(m, Mention):
            s = phrase_mention(m)
            out.append(s[0].upper() + s[1:] + ".")
    for r in facts:
        if isinstance(r, Relation):
            a = " ".join(v for v in (r.a.colour, r.a.shape or "object") if v)
            b = " ".join(v for v in (r.b.colour, r.b.shape or "object") if v)
            out.append(f"The {a} is {r.rel} the {b}.")
    return " ".join(out)
