"""Mixing and repetition: build the training mixture from sources with target shares.

Each document belongs to a source: with no `shares`, one source holding every document
(only the repetition tiers below apply); else by default its structural `kind` ("text": no images,
"pairs": one image and at most one text item, "interleaved": the rest; the synthetic
world's text-only, pair and interleaved documents), or `by: source` (Document.source;
a share key also matches the last "/" part, so `pairs` matches `synth/pairs`), or
`by: metadata.<key>`. A document of an unlisted source is dropped (`mix_unlisted_source`)
or, with `others: keep`, passed through once and left out of the shares.

The policy, in `unit`s (estimated tokens = funnel text tokens + `tokens_per_image` per
image; or documents):
1. Per-document weight from a score (`score_key`, e.g. fasttext_quality's
   quality_score): within its source, a document in the top `repeat[i][0]` fraction
   gets weight `repeat[i][1]` (first tier that holds it), any other weight 1 — the
   "repeat the best documents more" schedule, e.g. [[0.1, 4], [0.3, 2]].
2. The mixture's size `total` (units); if unset, the largest mixture in which no source
   exceeds its weighted supply: min over sources of supply / share (pure downsampling
   for all but the scarcest source).
3. Source s gets share * total units, so each of its documents wants
   weight * share * total / supply copies (at most `max_repeat`); whole copies are
   drawn by systematic sampling in a seeded order, so counts are deterministic and
   each source's copies add up to its target within one document.
A document drawn 0 times is dropped (`mix_downsampled`); one drawn n times is written
n times, the copies with ids `<id>-rep<k>` and metadata repeat_of, so `pack` needs no
change. The ledger counts each input once (copies are in step_stats.mix.copies_added);
mix must be the last step. Signatures are 26 bytes: source, text tokens, images, score,
and the seeded order key.
"""

from __future__ import annotations

import math
import random
import struct
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import xxhash

from vloom.curate.base import CurateError, GlobalStep
from vloom.curate.funnel import text_tokens
from vloom.curate.registry import register
from vloom.doc import Document

KINDS = ("text", "pairs", "interleaved")
_SIG = struct.Struct("<HIIdQ")
_UNLISTED = 0xFFFF
MAX_COPIES = 0xFFFF


def kind_of(doc: Document) -> str:
    n_img = doc.n_images
    if n_img == 0:
        return "text"
    if n_img == 1 and sum(t is not None for t in doc.texts) <= 1:
        return "pairs"
    return "interleaved"


@register("mix")
class Mix(GlobalStep):
    """Downsample or repeat sources to target shares; repeat high-scoring documents more."""

    sig_size = _SIG.size
    adds_documents: ClassVar[bool] = True
    funnel_groups: ClassVar[bool] = True

    def __init__(
        self,
        shares: dict[str, float] | None = None,
        unit: Literal["tokens", "documents"] = "tokens",
        by: str = "kind",
        total: float | None = None,
        tokens_per_image: int = 16,
        score_key: str | None = None,
        repeat: list[tuple[float, float]] | None = None,
        max_repeat: int = 16,
        others: Literal["drop", "keep"] = "drop",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if shares is None:
            shares, by = {"all": 1.0}, "all"  # one source: repetition by score only
        if not shares:
            raise CurateError("'shares' is empty; name at least one source")
        if any(v < 0 or not math.isfinite(v) for v in shares.values()):
            raise CurateError(f"shares must be finite and >= 0, got {shares}")
        if abs(sum(shares.values()) - 1) > 1e-6:
            raise CurateError(f"shares must add up to 1, got {sum(shares.values()):g}")
        if len(shares) >= _UNLISTED:
            raise CurateError("too many sources")
        if by not in ("kind", "source", "all") and not by.startswith("metadata."):
            raise CurateError(f"by={by!r}: expected 'kind', 'source' or 'metadata.<key>'")
        if by == "all" and list(shares) != ["all"]:
            raise CurateError("by 'all' is the single source of a mix without 'shares'")
        if by == "kind" and set(shares) - set(KINDS):
            bad = sorted(set(shares) - set(KINDS))
            raise CurateError(f"by 'kind' knows sources {', '.join(KINDS)}, not {', '.join(bad)}")
        for tier in repeat or []:
            if len(tier) != 2 or not 0 < tier[0] <= 1 or tier[1] < 0:
                raise CurateError(
                    f"repeat tier {list(tier)}: expected [fraction in (0,1], times >= 0]"
                )
        if repeat and score_key is None:
            raise CurateError("'repeat' tiers need a 'score_key' to rank documents by")
        if total is not None and total < 0:
            raise CurateError(f"total={total} must be >= 0")
        if max_repeat < 1:
            raise CurateError(f"max_repeat={max_repeat} must be >= 1")
        self.names = list(shares)  # signature index -> source name (config order)
        self.shares = [float(shares[n]) for n in self.names]
        self.unit, self.by, self.total = unit, by, total
        self.tokens_per_image, self.score_key = tokens_per_image, score_key
        self.repeat = sorted((float(f), float(t)) for f, t in (repeat or []))
        self.max_repeat, self.others, self.seed = min(max_repeat, MAX_COPIES), others, seed
        self._counts: array | None = None
        self.added = 0
        self.out: dict[str, Counter[str]] = defaultdict(Counter)

    # ---- which source a document belongs to ----

    def _label(self, doc: Document) -> str:
        if self.by == "all":
            return "all"
        if self.by == "kind":
            return kind_of(doc)
        if self.by == "source":
            return doc.source
        value = doc.metadata.get(self.by.removeprefix("metadata."))
        return "" if value is None else str(value)

    def source_index(self, doc: Document) -> int:
        label = self._label(doc)
        for i, name in enumerate(self.names):
            if label == name or label.rsplit("/", 1)[-1] == name:
                return i
        return _UNLISTED

    def funnel_group(self, doc: Document) -> str:
        i = self.source_index(doc)
        return self.names[i] if i != _UNLISTED else "(other)"

    # ---- the global pass ----

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            score = math.nan
            if self.score_key is not None:
                v = doc.metadata.get(self.score_key)
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    score = float(v)
            order = xxhash.xxh64_intdigest(doc.id.encode("utf-8"), seed=self.seed)
            yield _SIG.pack(
                self.source_index(doc),
                min(text_tokens(doc), 0xFFFFFFFF),
                min(doc.n_images, 0xFFFFFFFF),
                score,
                order,
            )

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        rows = [
            (i, j, *_SIG.unpack(sig))
            for i, sigs in enumerate(per_shard)
            for j, sig in enumerate(sigs)
        ]
        counts = [array("H", bytes(2 * len(sigs))) for sigs in per_shard]
        by_src: dict[int, list[tuple]] = defaultdict(list)
        for r in rows:
            if r[2] == _UNLISTED:
                if self.others == "keep":
                    counts[r[0]][r[1]] = 1
            else:
                by_src[r[2]].append(r)

        def units(r: tuple) -> float:
            return 1.0 if self.unit == "documents" else r[3] + r[4] * self.tokens_per_image

        weights: dict[tuple[int, int], float] = {}
        supply = [0.0] * len(self.names)
        for s, members in by_src.items():
            ranked = sorted(members, key=lambda r: (math.isnan(r[5]), -_nz(r[5]), r[0], r[1]))
            n = len(ranked)
            for rank, r in enumerate(ranked):
                w = 1.0
                for frac, times in self.repeat:
                    if rank < math.floor(frac * n + 0.5):
                        w = times
                        break
                weights[r[0], r[1]] = w
                supply[s] += w * units(r)
        for s, share in enumerate(self.shares):
            if share > 0 and supply[s] == 0:
                raise CurateError(
                    f"mix: source {self.names[s]!r} has a share of {share:g} but no documents "
                    f"(by {self.by!r}); sources seen: {', '.join(self.names[k] for k in sorted(by_src)) or 'none'}"
                )
        if self.total is not None:
            total = float(self.total)
        else:
            total = min(supply[s] / sh for s, sh in enumerate(self.shares) if sh > 0)
        for s, members in by_src.items():
            factor = self.shares[s] * total / supply[s] if supply[s] else 0.0
            order = sorted(members, key=lambda r: (r[6], r[0], r[1]))
            u = random.Random(f"mix-{self.seed}-{self.names[s]}").random()
            cum = u
            for r in order:
                want = min(weights[r[0], r[1]] * factor, float(self.max_repeat))
                start, cum = cum, cum + want
                counts[r[0]][r[1]] = min(math.floor(cum) - math.floor(start), self.max_repeat)
        return [c.tobytes() for c in counts]

    def load_plan(self, state: Any) -> None:
        self._counts = array("H")
        self._counts.frombytes(state)

    def stats(self) -> dict[str, Any]:
        return {
            "copies_added": self.added,
            "sources": {k: dict(v) for k, v in sorted(self.out.items())},
        }

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        docs = self.planned_stream(docs)
        counts = self._counts
        assert counts is not None
        for j, doc in enumerate(docs):
            if j >= len(counts):
                raise CurateError(f"{self.name}: more documents than the plan covers")
            n = counts[j]
            src = self.funnel_group(doc)
            if n == 0:
                self.drop("mix_unlisted_source" if src == "(other)" else "mix_downsampled")
                continue
            tok, img = text_tokens(doc), doc.n_images
            self.out[src].update(
                {
                    "input_documents": 1,
                    "documents": n,
                    "text_tokens": n * tok,
                    "images": n * img,
                    "tokens": n * (tok + img * self.tokens_per_image),
                }
            )
            yield doc
            for k in range(1, n):
                self.added += 1
                yield Document(
                    id=f"{doc.id}-rep{k}",
                    texts=doc.texts,
                    images=doc.images,
                    source=doc.source,
                    url=doc.url,
                    language=doc.language,
                    metadata={**doc.metadata, "repeat_of": doc.id},
                )


def _nz(x: float) -> float:
    return 0.0 if math.isnan(x) else x
