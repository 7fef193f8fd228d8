"""What the model-in-the-loop steps share: a generator per process, documents batched into
generator calls, every generation counted by outcome, and the world's truth about a document.

A step subclasses `GeneratingStep`; its parameters `generator` (a GeneratorConfig as a dict:
`{backend: vloom, path: CKPT}`), `cache_dir` (default: `generations/` in the run's work dir
OUT/.curate, so a rerun reuses every valid generation; name one outside to share it between
runs, e.g. across configs) and `batch_size` (documents per generator
call) are checked when the config is built; the model loads on the first batch, once per
process (`shared_generator`). `generate(stage, requests)` counts each request's outcome under
`step_stats.<step>.generation.<stage>`: "generated", "cache_hit" or the error reason
("invalid_json", "refused", "timeout", ...). Nested counts in `self.tally` are summed over
shards into the ledger's step_stats.

The curate guard charges a batch's generations to the batch's last document: a config that
runs a generating step gives `doc_timeout` room for a whole batch (configs/generated: 1800 s;
the default 120 s is less than 16 generations take on a loaded CPU). A batch that runs past
it loses only that document: the generations already made are in the cache for the rerun.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from vloom.curate.base import CurateError, Step
from vloom.doc import Document
from vloom.generate.generator import Generation, Generator, GeneratorConfig, Request, make_generator
from vloom.synth.factcheck import FactScore, scene_from_json, world_scenes
from vloom.synth.world import Scene

_GENERATORS: dict[str, Generator] = {}
CACHE_DIRNAME = "generations"


def shared_generator(spec: dict[str, Any], cache_dir: str | None) -> Generator:
    """One Generator per (spec, cache) in a process: the executor builds a step per shard, and
    loading the model per shard would cost more than the shard."""
    key = json.dumps([spec, cache_dir], sort_keys=True, default=str)
    if key not in _GENERATORS:
        _GENERATORS[key] = make_generator(spec, cache_dir)
    return _GENERATORS[key]


def batched(docs: Iterable[Document], n: int) -> Iterator[list[Document]]:
    it = iter(docs)
    while batch := list(islice(it, n)):
        yield batch


def outcome(g: Generation) -> str:
    """How one generation ended, as counted: generated, cache_hit or its error reason."""
    if g.error is not None:
        return g.error
    return "cache_hit" if g.cached else "generated"


def bump(tally: dict[str, Any], path: tuple[str, ...], n: int | float = 1) -> None:
    """Add n at a nested key path (dicts created on the way)."""
    d = tally
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = d.get(path[-1], 0) + n


def add_score(tally: dict[str, Any], path: tuple[str, ...], s: FactScore) -> None:
    """A FactScore's counts under `path` (summed like every other count)."""
    for k in ("texts", "stated", "true", "false", "hallucinated", "covered", "scene_facts"):
        bump(tally, (*path, k), getattr(s, k))


def first_image(doc: Document) -> bytes | None:
    return next((im for im in doc.images if im is not None), None)


def clip(text: str, max_chars: int) -> str:
    """At most max_chars of text, cut at a word boundary (a small model's context is short)."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    if text[max_chars].isspace():  # the cut falls between words already
        return cut
    return cut[: cut.rfind(" ")] if " " in cut else cut


def doc_scenes(doc: Document) -> dict[int, Scene]:
    """The world's truth about a document by section: metadata "scene" (one scene's JSON, as
    `evalsets.scene_json` writes it) is section 1; otherwise the scenes its own world text
    describes in full (`factcheck.world_scenes`: exact for the world's clean documents)."""
    if isinstance(doc.metadata.get("scene"), str):
        return {1: scene_from_json(doc.metadata["scene"])}
    return world_scenes(doc.text)


class GeneratingStep(Step):
    """A step that writes with a model (see the module docstring)."""

    def __init__(
        self,
        generator: dict[str, Any],
        cache_dir: str | None = None,
        batch_size: int = 16,
        max_new_tokens: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        try:
            GeneratorConfig.model_validate(generator)
        except ValueError as e:
            msg = str(e).splitlines()
            raise CurateError(f"step {self.name!r}: generator: {' '.join(msg[:3])}") from None
        if batch_size < 1 or max_new_tokens < 1:
            raise CurateError(f"step {self.name!r}: batch_size and max_new_tokens must be >= 1")
        self.spec, self.cache_dir = generator, cache_dir
        self.batch_size, self.max_new_tokens, self.seed = batch_size, max_new_tokens, seed
        self.tally: dict[str, Any] = {}

    @classmethod
    def prepare(cls, params: dict[str, Any], work_dir: Path) -> dict[str, Any]:
        if params.get("cache_dir") is None:
            params = dict(params, cache_dir=str(work_dir / CACHE_DIRNAME))
        return params

    @property
    def generator(self) -> Generator:
        return shared_generator(self.spec, self.cache_dir)

    def generate(self, stage: str, requests: list[Request]) -> list[Generation]:
        """The generations for `requests` (same order), each outcome counted under `stage`."""
        if not requests:
            return []
        gens = self.generator.generate(requests)
        for g in gens:
            bump(self.tally, ("generation", stage, outcome(g)))
        return gens

    def request(self, prompt: str, images: tuple[bytes, ...] = (), **kw: Any) -> Request:
        """A request with the step's sampling settings (greedy unless kw says otherwise)."""
        kw.setdefault("max_new_tokens", self.max_new_tokens)
        kw.setdefault("seed", self.seed)
        return Request(prompt=prompt, images=images, **kw)

    def stats(self) -> dict[str, Any] | None:
        return self.tally or None


def world_documents(synth_dir: str | Path, prefix: str, n: int) -> list[Document]:
    """The first n clean training documents of a world whose id starts with `prefix`
    ("pair-", "text-", "interleaved-"): injected noise (metadata "defect") left out."""
    from vloom.doc import list_shards, read_shard

    out: list[Document] = []
    for shard in list_shards(Path(synth_dir) / "train"):
        for d in read_shard(shard):
            if isinstance(d, Document) and d.id.startswith(prefix) and "defect" not in d.metadata:
                out.append(d)
                if len(out) >= n:
                    return out
    return out
