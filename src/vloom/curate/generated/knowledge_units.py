"""Knowledge Units: documents -> structured units (entities, attributes, relationships),
without the source's wording.

The document is cut into sections (the world's "Scene k." sections, else paragraphs; each cut
to `max_chars`, as a small model's context is short) and each section becomes one
`KnowledgeUnits` value:
- mode "json" (the paper's way): one generation per section with `KnowledgeUnits` as the
  structured-output schema (`Request.schema`: the generator validates it with pydantic; an
  answer that is no JSON or does not fit is counted `invalid_json` / `schema_mismatch`).
  `schema_in_prompt` appends the JSON schema to the prompt (long: a small model's context
  may not hold it, which is counted `context_overflow`).
- mode "questions" (for a model that reads but writes no JSON, e.g. the world's pre-trained
  demo): the entities are the objects the section names by colour (a vocabulary pass), and
  the model reads the section and answers the world's questions about each
  (`QUESTIONS`: shape, place, and the count once); the answers, parsed into facts, become the
  entities' attributes, validated into the same `KnowledgeUnits`.
The document's text becomes the units as JSON, one section a line; `metadata.knowledge_units`
keeps `[{section, units}]`. A document none of whose sections gave units is dropped as
`units_<reason>` (the most frequent); sections that failed are counted.

Retention (documents with the world's truth, `common.doc_scenes`): multiple-choice questions
on each section's known facts (`mcq`: every object's shape, size and place, named by its
colour, and the count; four options), answered by a fixed scorer from facts
(`answer_mcq`): once from the original section's text, once from its units. Counts under
`step_stats.knowledge_units.mcq`; retention = units correct / original correct. The units'
own facts are also scored (true / false / hallucinated) under `facts.units`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vloom.curate.generated.common import (
    GeneratingStep,
    add_score,
    batched,
    bump,
    clip,
    doc_scenes,
)
from vloom.curate.registry import register
from vloom.doc import Document
from vloom.generate.generator import schema_prompt
from vloom.synth.factcheck import (
    Count,
    Fact,
    Mention,
    parse_facts,
    scene_segments,
    score_facts,
)
from vloom.synth.world import CELLS, COUNT_WORDS, SHAPES, SIZES, Scene

PROMPT = (
    "Turn the text into knowledge units: the entities it names, their attributes and the "
    "relationships between them, as JSON, without the text's wording.\nText: {section}"
)
QUESTIONS = {
    "shape": "What shape is the {} object?",
    "cell": "Where is the {} object?",
}
COUNT_QUESTION = "How many objects are there?"
READ_PROMPT = "{section} {question}"  # the section, then the question (the world's layout)
_ATTR_ALIASES = {
    "colour": "colour",
    "color": "colour",
    "shape": "shape",
    "size": "size",
    "cell": "cell",
    "position": "cell",
    "location": "cell",
    "place": "cell",
}


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, description="what the entity is called")
    type: str = Field("object", description="kind of entity (object, scene, person, ...)")
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Relationship(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subject: str = Field(min_length=1)
    predicate: str = Field(min_length=1)
    object: str = Field(min_length=1)


class KnowledgeUnits(BaseModel):
    """The facts of one text section: entities with attributes, and relationships."""

    model_config = ConfigDict(extra="forbid")
    entities: list[Entity] = Field(min_length=1)
    relationships: list[Relationship] = Field(default_factory=list)


def sections(text: str, max_chars: int) -> list[tuple[int, str]]:
    """(number, text) per section: the world's "Scene k." sections, else paragraphs."""
    segs = scene_segments(text)
    if len(segs) == 1:
        paras = [p for p in text.split("\n\n") if p.strip()]
        segs = list(enumerate(paras, 1)) or segs
    return [(k, clip(s.strip(), max_chars)) for k, s in segs if s.strip()]


def units_facts(units: KnowledgeUnits) -> list[Fact]:
    """The world facts the units state: an entity's name and attributes make one mention (an
    attribute named colour/shape/size/position... fills that field, other words by the
    vocabulary); a count attribute a Count; relationships read as sentences."""
    facts: list[Fact] = []
    for e in units.entities:
        fields: dict[str, str] = {}
        for key, value in e.attributes.items():
            text = str(value).lower()
            if any(w in key.lower() for w in ("count", "number")):
                n = _number(text)
                if n:
                    facts.append(Count(n))
                continue
            ms = [m for m in parse_facts(text) if isinstance(m, Mention)]
            want = _ATTR_ALIASES.get(key.lower())
            for m in ms:
                for f, v in m.named().items():
                    if want in (None, f):
                        fields.setdefault(f, v)
        for m in (m for m in parse_facts(e.name) if isinstance(m, Mention)):
            for f, v in m.named().items():
                fields.setdefault(f, v)
        if fields:
            facts.append(Mention(**fields))
    for r in units.relationships:
        facts += parse_facts(f"{r.subject} is {r.predicate} {r.object}.")
    return facts


def _number(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return COUNT_WORDS.index(text) if text in COUNT_WORDS else None


# ---- multiple-choice retention ----


@dataclass(frozen=True)
class MCQ:
    colour: str | None  # the object asked about (None: the count)
    field: str  # shape, size, cell or count
    options: tuple[str, ...]
    answer: int


def mcq(scene: Scene, rng: random.Random) -> list[MCQ]:
    """Four-option questions on every known fact of the scene but the colours (which name
    the objects): each object's shape, size and place, and the count."""
    pools = {"shape": SHAPES, "size": SIZES, "cell": CELLS}
    out = []
    for o in scene.objects:
        for f, pool in pools.items():
            right = CELLS[o.cell] if f == "cell" else getattr(o, f)
            wrong = [p for p in pool if p != right]
            opts = [right, *rng.sample(wrong, min(3, len(wrong)))]
            rng.shuffle(opts)
            out.append(MCQ(o.colour, f, tuple(opts), opts.index(right)))
    n = COUNT_WORDS[scene.count]
    opts = [n, *rng.sample([w for w in COUNT_WORDS[1:5] if w != n], 3)]
    rng.shuffle(opts)
    out.append(MCQ(None, "count", tuple(opts), opts.index(n)))
    return out


def answer_mcq(q: MCQ, facts: Iterable[Fact]) -> int | None:
    """The option the facts state for the question (the first that names it), or None."""
    for f in facts:
        if q.field == "count":
            value = COUNT_WORDS[f.n] if isinstance(f, Count) and f.n < len(COUNT_WORDS) else None
        elif isinstance(f, Mention) and f.colour == q.colour:
            value = getattr(f, q.field)
        else:
            value = None
        if value in q.options:
            return q.options.index(value)
    return None


@register("knowledge_units")
class KnowledgeUnitsStep(GeneratingStep):
    """Documents -> knowledge units (module docstring)."""

    keeps_counts = True

    def __init__(
        self,
        generator: dict[str, Any],
        cache_dir: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 256,
        seed: int = 0,
        mode: Literal["json", "questions"] = "json",
        prompt: str = PROMPT,
        schema_in_prompt: bool = True,
        max_chars: int = 1200,
        score: bool = True,
    ) -> None:
        super().__init__(generator, cache_dir, batch_size, max_new_tokens, seed)
        self.mode, self.prompt, self.schema_in_prompt = mode, prompt, schema_in_prompt
        self.max_chars, self.score = max_chars, score

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        for batch in batched(docs, self.batch_size):
            yield from self._batch(batch)

    def _batch(self, batch: list[Document]) -> Iterator[Document]:
        secs = [sections(d.text, self.max_chars) for d in batch]
        flat = [(i, k, s) for i, ss in enumerate(secs) for k, s in ss]
        units = self._json(flat) if self.mode == "json" else self._questions(flat)
        for i, d in enumerate(batch):
            mine = [(k, s, units[(i, k)]) for k, s in secs[i]]
            good = [(k, u) for k, _, u in mine if isinstance(u, KnowledgeUnits)]
            self._score(d, mine)
            if not good:
                errs = Counter(u for _, _, u in mine if isinstance(u, str))
                self.drop(f"units_{errs.most_common(1)[0][0]}" if errs else "units_no_text")
                continue
            rows = [{"section": k, "units": u.model_dump(mode="json")} for k, u in good]
            text = "\n".join(json.dumps(r["units"], separators=(",", ":")) for r in rows)
            yield Document(
                id=d.id,
                texts=[text],
                images=[None],
                source=d.source,
                url=d.url,
                language=d.language,
                metadata=dict(d.metadata, knowledge_units=rows),
            )

    def _json(self, flat: list[tuple[int, int, str]]) -> dict[tuple[int, int], Any]:
        tail = "\n" + schema_prompt(KnowledgeUnits) if self.schema_in_prompt else ""
        reqs = [
            self.request(self.prompt.format(section=s) + tail, schema=KnowledgeUnits)
            for _, _, s in flat
        ]
        gens = self.generate("units", reqs)
        return {
            (i, k): g.value if g.ok else g.error for (i, k, _), g in zip(flat, gens, strict=True)
        }

    def _questions(self, flat: list[tuple[int, int, str]]) -> dict[tuple[int, int], Any]:
        asks: list[tuple[int, int, str | None, str]] = []  # (doc, section, colour, question)
        for i, k, s in flat:
            colours = dict.fromkeys(
                m.colour for m in parse_facts(s) if isinstance(m, Mention) and m.colour
            )
            asks.append((i, k, None, COUNT_QUESTION))
            asks += [(i, k, c, q.format(c)) for c in colours for q in QUESTIONS.values()]
        text = {(i, k): s for i, k, s in flat}
        stop = ("Question:", "\n")  # one answer: the world's text goes on with more questions
        reqs = [
            self.request(READ_PROMPT.format(section=text[(i, k)], question=q), stop=stop)
            for i, k, _, q in asks
        ]
        gens = self.generate("read", reqs)
        out: dict[tuple[int, int], Any] = {}
        attrs: dict[tuple[int, int], dict[str, dict[str, str]]] = {}
        counts: dict[tuple[int, int], int] = {}
        fails: dict[tuple[int, int], Counter] = {}
        for (i, k, colour, _), g in zip(asks, gens, strict=True):
            if not g.ok:
                fails.setdefault((i, k), Counter())[g.error] += 1
                continue
            facts = parse_facts(g.text or "")
            if colour is None:
                n = next((f.n for f in facts if isinstance(f, Count)), None)
                if n:
                    counts[(i, k)] = n
                continue
            got = attrs.setdefault((i, k), {}).setdefault(colour, {"colour": colour})
            for m in (m for m in facts if isinstance(m, Mention) and m.colour == colour):
                for f, v in m.named().items():
                    got.setdefault("position" if f == "cell" else f, v)
        for i, k, _ in flat:
            ents = [
                Entity(name=f"{a['colour']} object", attributes=a)
                for a in attrs.get((i, k), {}).values()
            ]
            if (i, k) in counts:
                ents.append(
                    Entity(name=f"scene {k}", type="scene", attributes={"count": counts[(i, k)]})
                )
            if ents:
                out[(i, k)] = KnowledgeUnits(entities=ents)
            else:
                out[(i, k)] = (fails.get((i, k)) or Counter(["no_facts"])).most_common(1)[0][0]
        return out

    def _score(self, doc: Document, mine: list[tuple[int, str, Any]]) -> None:
        truth = doc_scenes(doc) if self.score else {}
        rng = random.Random(f"mcq-{doc.id}")
        for k, text, u in mine:
            scene = truth.get(k)
            if scene is None:
                continue
            got = units_facts(u) if isinstance(u, KnowledgeUnits) else []
            orig = parse_facts(text)
            for q in mcq(scene, rng):
                bump(self.tally, ("mcq", "questions"))
                bump(self.tally, ("mcq", "original_correct"), int(answer_mcq(q, orig) == q.answer))
                bump(self.tally, ("mcq", "units_correct"), int(answer_mcq(q, got) == q.answer))
            bump(self.tally, ("mcq", "sections"))
            bump(self.tally, ("mcq", "sections_with_units"), int(isinstance(u, KnowledgeUnits)))
            add_score(self.tally, ("facts", "original"), score_facts(orig, scene))
            add_score(self.tally, ("facts", "units"), score_facts(got, scene))


def retention_table(stats: dict[str, Any]) -> dict[str, Any]:
    """step_stats.knowledge_units as one row: MCQ accuracy from the original and from the
    units, retention (their ratio), and the units' fact shares."""
    m = stats.get("mcq", {})
    q = max(m.get("questions", 0), 1)
    row: dict[str, Any] = {
        "sections": m.get("sections", 0),
        "sections_with_units": m.get("sections_with_units", 0),
        "questions": m.get("questions", 0),
        "acc_original": round(m.get("original_correct", 0) / q, 3),
        "acc_units": round(m.get("units_correct", 0) / q, 3),
        "retention": round(m.get("units_correct", 0) / max(m.get("original_correct", 0), 1), 3),
    }
    u = stats.get("facts", {}).get("units")
    if u:
        s = max(u["stated"], 1)
        row.update(
            units_true=round(u["true"] / s, 3),
            units_false=round(u["false"] / s, 3),
            units_hallucinated=round(u["hallucinated"] / s, 3),
        )
    return row
