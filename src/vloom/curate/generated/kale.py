"""BLIP3-KALE: knowledge-augmented captions for image-text pairs.

Stage 1: a VLM writes a dense caption of the pair's image (`caption_prompt`). Stage 2: the
dense caption is merged with the facts of the pair's alt-text into one caption:
- merge "facts" (the default; what a generator too small to follow a merge instruction
  needs): both texts are parsed into facts (`vloom.synth.factcheck`); the alt-text's facts
  are kept as they are (the web's knowledge is the trusted part), and each of the dense
  caption's object mentions is added unless it contradicts one: it shares a colour, shape or
  place with an alt-text object (each names one object in the world) but names another value
  for a field both give. Agreeing mentions are joined into that object, the rest added while
  the alt-text's count (when it gives one) is not exceeded. `trust` names the fields (and
  "count") taken from the caption at all: a captioner measured to name colours and counts
  well but to misbind shapes and places (the demo's VQA: colour 0.94, count 1.00, position
  0.37, shape 0.23) is trusted for those alone. The result is written back in the world's
  words (`render_facts`).
- merge "prompt": one generation (`merge_prompt`, text only) writes the augmented caption,
  as KALE's stage-2 LLM does.
The pair's text becomes the augmented caption; `metadata.kale` keeps the alt-text, the dense
caption and the merge used. A pair whose generation fails is dropped as
`<stage>_<reason>` (e.g. `caption_invalid_json`), or kept as it was with `on_error: keep`.

Scoring (documents that carry the world's truth, `common.doc_scenes`): the alt-text, the
dense caption and the augmented caption are each scored against the scene (share true,
false, hallucinated; coverage of the scene's facts) under `step_stats.kale.facts`.
`alt_text_pairs` builds such pairs from a world: its training scenes' images, an alt-text
that names a few true facts, the scene's JSON in `metadata.scene`. `world_alt_text_pairs`
does the same for the world's own training pairs (their images and ids, the caption
replaced): what scripts/kale_pretrain.py pre-trains on against the KALE captions.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from vloom.curate.base import CurateError
from vloom.curate.generated.common import (
    GeneratingStep,
    add_score,
    batched,
    bump,
    doc_scenes,
    first_image,
    world_documents,
)
from vloom.curate.registry import register
from vloom.doc import Document
from vloom.synth.evalsets import scene_json
from vloom.synth.factcheck import (
    FIELDS,
    Count,
    Fact,
    Mention,
    Relation,
    parse_facts,
    render_facts,
    score,
)
from vloom.synth.instructions import CAPTION_QUESTION, training_scenes
from vloom.synth.world import CELLS, Scene, png_bytes, render

MERGE_PROMPT = (
    "Alt-text: {alt}\nCaption: {caption}\nWrite one caption of the picture that keeps every "
    "fact of the alt-text and adds the details of the caption that agree with it."
)
IDENTITY = ("colour", "shape", "cell")  # each value names one object in a world scene
TRUSTABLE = (*FIELDS, "count")


def _conflicts(a: Mention, b: Mention) -> bool:
    same = any(getattr(a, f) is not None and getattr(a, f) == getattr(b, f) for f in IDENTITY)
    differ = any(
        getattr(a, f) is not None and getattr(b, f) is not None and getattr(a, f) != getattr(b, f)
        for f in FIELDS
    )
    return same and differ


def _joins(a: Mention, b: Mention) -> bool:
    return any(getattr(a, f) is not None and getattr(a, f) == getattr(b, f) for f in IDENTITY)


def _union(a: Mention, b: Mention) -> Mention:
    return Mention(**{f: getattr(a, f) or getattr(b, f) for f in FIELDS})


def merge_facts(
    alt: Iterable[Fact], dense: Iterable[Fact], trust: Iterable[str] = TRUSTABLE
) -> list[Fact]:
    """The alt-text's facts plus the dense caption's that do not contradict them (module
    docstring, merge "facts"); of the caption only the fields in `trust` (and its count if
    "count" is there) are taken."""
    alt, trust = list(alt), set(trust)
    dense = [
        Mention(**{f: v for f, v in m.named().items() if f in trust})
        if isinstance(m, Mention)
        else m
        for m in dense
        if not isinstance(m, Count) or "count" in trust
    ]
    objs = [m for m in alt if isinstance(m, Mention)]
    counts = [c for c in alt if isinstance(c, Count)]
    cap = counts[0].n if counts else None
    for m in (m for m in dense if isinstance(m, Mention) and m.named()):
        if any(_conflicts(m, o) for o in objs):
            continue
        hit = next((k for k, o in enumerate(objs) if _joins(m, o)), None)
        if hit is not None:
            objs[hit] = _union(objs[hit], m)
        elif cap is None or len(objs) < cap:
            objs.append(m)
    if not counts:  # the caption's count, when it leaves room for every object kept
        counts = [c for c in dense if isinstance(c, Count) and c.n >= len(objs)][:1]
    rels = [r for r in alt if isinstance(r, Relation)]
    merged: list[Fact] = [*counts, *objs, *rels]
    # one clause per object: a mention that another (fuller) one contains says nothing new
    return [
        f
        for f in merged
        if not (isinstance(f, Mention) and any(o is not f and _within(f, o) for o in objs))
    ]


def _within(a: Mention, b: Mention) -> bool:
    """a names a subset of b's fields with the same values (and is not equal to b)."""
    na, nb = a.named(), b.named()
    return na != nb and all(nb.get(k) == v for k, v in na.items())


def alt_text(scene: Scene, rng: random.Random) -> str:
    """An alt-text-like line: one to all of the scene's objects, each by one to three of its
    fields (always its colour or shape), and the count half of the time; every fact true."""
    objs = rng.sample(list(scene.objects), rng.randint(1, scene.count))
    facts: list[Fact] = [Count(scene.count)] if rng.random() < 0.5 else []
    for o in objs:
        full = {"colour": o.colour, "shape": o.shape, "size": o.size, "cell": CELLS[o.cell]}
        keep = {rng.choice(["colour", "shape"])}
        keep |= set(rng.sample(FIELDS, rng.randint(0, 2)))
        facts.append(Mention(**{f: v for f, v in full.items() if f in keep}))
    return render_facts(facts)


def alt_text_pairs(synth_dir: str | Path, n: int, seed: int = 0) -> list[Document]:
    """n image/alt-text pairs from the world's training scenes (its own pair images), with the
    scene's truth in `metadata.scene`."""
    scenes, cfg = training_scenes(synth_dir)
    rng = random.Random(f"alt-text-{seed}")
    picked = rng.sample(range(len(scenes)), min(n, len(scenes)))
    return [
        Document.from_items(
            f"kale-{i:06d}",
            [png_bytes(render(scenes[k], cfg["image_size"])), alt_text(scenes[k], rng)],
            source="synth/alt_pairs",
            url=f"synth://scene/{k}",
            metadata={"scene": scene_json(scenes[k])},
        )
        for i, k in enumerate(picked)
    ]


def world_alt_text_pairs(
    synth_dir: str | Path, seed: int = 0, n: int | None = None
) -> list[Document]:
    """The world's clean training pairs (the first n; all by default), each with its image,
    id, source and url, its caption replaced by an alt-text of its scene (`alt_text`) and the
    scene's JSON in `metadata.scene`. Pair i's scene is the world's training scene
    n_interleaved * images_per_doc + i (synth/corpus.py draws the interleaved documents'
    scenes first, then one per pair)."""
    scenes, cfg = training_scenes(synth_dir)
    first = cfg["n_interleaved"] * cfg["images_per_doc"]
    rng = random.Random(f"world-alt-text-{seed}")
    out = []
    for d in world_documents(synth_dir, "pair-", cfg["n_pairs"] if n is None else n):
        scene = scenes[first + int(d.id.removeprefix("pair-"))]
        out.append(
            Document.from_items(
                d.id,
                [first_image(d), alt_text(scene, rng)],
                source=d.source,
                url=d.url,
                metadata={"scene": scene_json(scene)},
            )
        )
    return out


@register("kale")
class KaleCaptions(GeneratingStep):
    """Knowledge-augmented captions for image-text pairs (module docstring)."""

    keeps_counts = True

    def __init__(
        self,
        generator: dict[str, Any],
        cache_dir: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 64,
        seed: int = 0,
        caption_prompt: str = CAPTION_QUESTION,
        merge: Literal["facts", "prompt"] = "facts",
        merge_prompt: str = MERGE_PROMPT,
        on_error: Literal["drop", "keep"] = "drop",
        score: bool = True,
        trust: list[str] = list(TRUSTABLE),  # noqa: B006 - a config default, never mutated
    ) -> None:
        super().__init__(generator, cache_dir, batch_size, max_new_tokens, seed)
        if bad := sorted(set(trust) - set(TRUSTABLE)):
            raise CurateError(f"step 'kale': trust {bad}: expected some of {list(TRUSTABLE)}")
        self.trust = tuple(trust)
        if merge == "prompt" and not {"{alt}", "{caption}"} <= _fields(merge_prompt):
            raise CurateError("step 'kale': merge_prompt must contain {alt} and {caption}")
        self.caption_prompt, self.merge, self.merge_prompt = caption_prompt, merge, merge_prompt
        self.on_error, self.score = on_error, score

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        for batch in batched(docs, self.batch_size):
            yield from self._batch(batch)

    def _batch(self, batch: list[Document]) -> Iterator[Document]:
        pairs = []
        for d in batch:
            im = first_image(d)
            if im is None:
                self.drop("no_image")
            else:
                pairs.append((d, im))
        caps = self.generate(
            "caption", [self.request(self.caption_prompt, (im,)) for _, im in pairs]
        )
        alts = [d.text for d, _ in pairs]
        merged = {}
        if self.merge == "prompt":
            todo = [k for k, g in enumerate(caps) if g.ok]
            reqs = [
                self.request(self.merge_prompt.format(alt=alts[k], caption=caps[k].text))
                for k in todo
            ]
            merged = dict(zip(todo, self.generate("merge", reqs), strict=True))
        for k, ((d, im), cap) in enumerate(zip(pairs, caps, strict=True)):
            failed = None if cap.ok else f"caption_{cap.error}"
            if failed is None and self.merge == "prompt" and not merged[k].ok:
                failed = f"merge_{merged[k].error}"
            if failed is not None:
                if self.on_error == "drop":
                    self.drop(failed)
                else:
                    bump(self.tally, ("kept_original", failed))
                    yield d
                continue
            dense = cap.text or ""
            if self.merge == "prompt":
                augmented = (merged[k].text or "").strip()
            else:
                facts = merge_facts(parse_facts(alts[k]), parse_facts(dense), self.trust)
                augmented = render_facts(facts)
            if not augmented:
                self.drop("empty_caption")
                continue
            self._score(d, alts[k], dense, augmented)
            kale = {"alt_text": alts[k], "dense": dense, "merge": self.merge, "trust": self.trust}
            meta = dict(d.metadata, kale=kale)
            yield Document.from_items(
                d.id,
                [im, augmented],
                source=d.source,
                url=d.url,
                language=d.language,
                metadata=meta,
            )

    def _score(self, doc: Document, alt: str, dense: str, augmented: str) -> None:
        scenes = doc_scenes(doc) if self.score else {}
        if len(scenes) != 1:
            return
        scene = next(iter(scenes.values()))
        for name, text in (("alt_text", alt), ("dense", dense), ("augmented", augmented)):
            add_score(self.tally, ("facts", name), score(text, scene))


def _fields(fmt: str) -> set[str]:
    return {"{" + f + "}" for _, f, _, _ in string.Formatter().parse(fmt) if f}


def facts_table(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """step_stats.kale.facts as rows: text, texts, facts/text, true, false, hallucinated,
    coverage (shares)."""
    rows = []
    for name in ("alt_text", "dense", "augmented"):
        c = stats.get("facts", {}).get(name)
        if not c:
            continue
        s = max(c["stated"], 1)
        rows.append(
            {
                "text": name,
                "texts": c["texts"],
                "facts_per_text": round(c["stated"] / max(c["texts"], 1), 2),
                "true": round(c["true"] / s, 3),
                "false": round(c["false"] / s, 3),
                "hallucinated": round(c["hallucinated"] / s, 3),
                "coverage": round(c["covered"] / max(c["scene_facts"], 1), 3),
            }
        )
    return rows
