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

Arithmetic: a source's supply is summed exactly (per weight class: weight x the integer
units of its documents), and the systematic draw runs in fixed point (2**-32 of a copy), so
the result does not depend on the order sums are taken in. (Before, one floating-point
running sum over the source: from about a million documents its rounding error reached
1e-4 of a copy, enough to move a few draws in 10^4 across a whole copy.)

Partitioned plan (what the executors run, `partition.py`): one record per document keyed
by its order key, so partitions are consecutive stretches of the draw order. Round
"count" sums documents per source; with repeat tiers, eight "select" rounds find each
tier's boundary document (the document at rank floor(fraction x n + 0.5) by score, then
global position) by radix selection on (score, position), 16 bits a round; round "supply"
sums units per source and weight class per partition; the driver turns these totals into
each partition's starting point of every source's running sum, and round "final" draws
each document's copies. The driver holds per-partition totals only; the counts are the
single-process `plan`'s, document for document.
"""

from __future__ import annotations

import math
import random
import struct
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import xxhash

from vloom.curate.base import CurateError, GlobalStep
from vloom.curate.funnel import text_tokens
from vloom.curate.partition import marks_of
from vloom.curate.registry import register
from vloom.doc import Document

KINDS = ("text", "pairs", "interleaved")
_SIG = struct.Struct("<HIIdQ")
_SIG_DT = np.dtype(
    [("src", "<u2"), ("tok", "<u4"), ("img", "<u4"), ("score", "<f8"), ("order", "<u8")]
)
_UNLISTED = 0xFFFF
MAX_COPIES = 0xFFFF
ONE = 1 << 32  # one copy in the fixed-point draw
_SELECT_ROUNDS = 8  # 16 bits of the 128-bit (score key, position) a round


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

        def units(r: tuple) -> int:
            return 1 if self.unit == "documents" else r[3] + r[4] * self.tokens_per_image

        n_class = len(self.repeat) + 1
        cls: dict[tuple[int, int], int] = {}  # weight class: first tier holding it, else last
        usum = [[0] * n_class for _ in self.names]
        for s, members in by_src.items():
            ranked = sorted(members, key=lambda r: (math.isnan(r[5]), -_nz(r[5]), r[0], r[1]))
            n = len(ranked)
            for rank, r in enumerate(ranked):
                c = len(self.repeat)
                for t, (frac, _) in enumerate(self.repeat):
                    if rank < math.floor(frac * n + 0.5):
                        c = t
                        break
                cls[r[0], r[1]] = c
                usum[s][c] += units(r)
        want = self._wants(usum, sorted(by_src))
        for s, members in by_src.items():
            cum = self._start(s)
            for r in sorted(members, key=lambda r: (r[6], r[0], r[1])):
                start, cum = cum, cum + want[s][cls[r[0], r[1]]]
                counts[r[0]][r[1]] = min(cum // ONE - start // ONE, self.max_repeat)
        return [c.tobytes() for c in counts]

    def _weights(self) -> list[float]:
        return [t for _, t in self.repeat] + [1.0]

    def _start(self, s: int) -> int:
        """Source s's seeded starting point of the systematic draw, in fixed point."""
        return math.floor(random.Random(f"mix-{self.seed}-{self.names[s]}").random() * ONE)

    def _wants(self, usum: list[list[int]], seen: list[int]) -> list[list[int]]:
        """Copies each document of source s and weight class c wants (fixed point), from the
        sources' exact unit sums per weight class."""
        w = self._weights()
        supply = [sum(w[c] * u for c, u in enumerate(row)) for row in usum]
        for s, share in enumerate(self.shares):
            if share > 0 and supply[s] == 0:
                raise CurateError(
                    f"mix: source {self.names[s]!r} has a share of {share:g} but no documents "
                    f"(by {self.by!r}); sources seen: {', '.join(self.names[k] for k in seen) or 'none'}"
                )
        if self.total is not None:
            total = float(self.total)
        else:
            total = min(supply[s] / sh for s, sh in enumerate(self.shares) if sh > 0)
        out = []
        for s in range(len(self.names)):
            factor = self.shares[s] * total / supply[s] if supply[s] else 0.0
            out.append([math.floor(min(wc * factor, float(self.max_repeat)) * ONE) for wc in w])
        return out

    # ---- the partitioned plan ----

    record_dtype = np.dtype(
        [("key", "<u8"), ("g", "<i8"), ("src", "<u2"), ("units", "<i8"), ("skey", "<u8")]
    )

    def records(self, sigs: np.ndarray) -> np.ndarray:
        sig = np.frombuffer(sigs.tobytes(), dtype=_SIG_DT)
        recs = np.empty(sig.size, self.record_dtype)
        recs["key"], recs["g"], recs["src"] = sig["order"], np.arange(sig.size), sig["src"]
        if self.unit == "documents":
            recs["units"] = 1
        else:
            recs["units"] = sig["tok"].astype(np.int64) + sig["img"] * self.tokens_per_image
        recs["skey"] = score_key(sig["score"])
        return recs

    def plan_rounds(self) -> int:
        return 2 + (1 + _SELECT_ROUNDS if self.repeat else 0)

    def _round(self, rnd: int) -> str:
        if not self.repeat:
            return ("supply", "final")[rnd]
        if rnd == 0:
            return "count"
        return "select" if rnd <= _SELECT_ROUNDS else ("supply", "final")[rnd - 1 - _SELECT_ROUNDS]

    def _classes(self, recs: np.ndarray, ctx: dict[str, Any] | None) -> np.ndarray:
        """Each record's weight class (0..tiers; tiers = weight 1) from the tier boundaries."""
        c = np.full(recs.size, len(self.repeat), dtype=np.int64)
        if not self.repeat:
            return c
        assert ctx is not None
        for t in reversed(range(len(self.repeat))):  # the first tier holding it wins
            for s, bound in enumerate(ctx["bound"]):
                b = bound[t]
                if b is None:  # the tier holds none of this source
                    continue
                m = recs["src"] == s
                if b != "all":
                    hi, lo = b
                    g = recs["g"].view("<u8")
                    m &= (recs["skey"] < hi) | ((recs["skey"] == hi) & (g < lo))
                c[m] = t
        return c

    def plan_partition(self, recs: np.ndarray, part: int, rnd: int, ctx: Any) -> Any:
        phase = self._round(rnd)
        listed = recs["src"] != _UNLISTED
        src = recs["src"][listed].astype(np.int64)
        n_src, n_class = len(self.names), len(self.repeat) + 1
        if phase == "count":
            return np.bincount(src, minlength=n_src)
        if phase == "select":
            return self._histograms(recs, rnd - 1, ctx)
        cls = self._classes(recs, ctx)[listed]
        if phase == "supply":
            idx = src * n_class + cls
            return (
                np.bincount(idx, minlength=n_src * n_class).reshape(n_src, n_class),
                [
                    [int(x) for x in row]
                    for row in _int_sums(idx, recs["units"][listed], n_src * n_class).reshape(
                        n_src, n_class
                    )
                ],
            )
        # final: in draw order (key, then g), each source's running sum starting where the
        # earlier partitions left it
        order = np.lexsort([recs["g"][listed], recs["key"][listed]])
        src, cls = src[order], cls[order]
        want = np.asarray(ctx["want"], dtype=np.int64)[src, cls]
        copies = np.zeros(recs.size, dtype=np.int64)
        out = np.empty(src.size, dtype=np.int64)
        for s in np.unique(src):
            m = src == s
            base = ctx["start"][part][s]
            off = base % ONE  # only the fraction matters: copies are differences of floors
            assert want[m].sum() < (1 << 62), "a partition too large for the fixed-point sum"
            cum = off + np.cumsum(want[m])
            out[m] = np.minimum(cum // ONE - (cum - want[m]) // ONE, self.max_repeat)
        copies[np.flatnonzero(listed)[order]] = out
        if self.others == "keep":
            copies[~listed] = 1
        keep = copies != 0
        return marks_of(recs["g"][keep], copies[keep])

    def _histograms(self, recs: np.ndarray, i: int, ctx: dict[str, Any]) -> dict:
        """Round i of the radix selection: per pending (source, tier), a histogram of the
        i-th 16-bit digit of (score key, position) among records matching the prefix."""
        g = recs["g"].view("<u8")
        word, shift = (recs["skey"], 48 - 16 * i) if i < 4 else (g, 48 - 16 * (i - 4))
        digit = ((word >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64)
        out = {}
        for (s, t), (hi, lo) in ctx["prefix"].items():
            m = recs["src"] == s
            if i < 4:
                if i:
                    m &= (recs["skey"] >> np.uint64(64 - 16 * i)) == np.uint64(hi >> (64 - 16 * i))
            else:
                m &= recs["skey"] == np.uint64(hi)
                if i > 4:
                    m &= (g >> np.uint64(64 - 16 * (i - 4))) == np.uint64(lo >> (64 - 16 * (i - 4)))
            out[s, t] = np.bincount(digit[m], minlength=1 << 16)
        return out

    def reduce(self, rnd: int, outs: Iterable[Any], ctx: Any) -> Any:
        # `outs` is read once, one partition's summary at a time: the driver never holds
        # more than one histogram per pending boundary
        phase = self._round(rnd)
        if phase == "count":
            n = np.zeros(len(self.names), dtype=np.int64)
            for o in outs:
                n += o
            bound: list[list[Any]] = []
            prefix, rank = {}, {}
            for s in range(len(self.names)):
                row = []
                for t, (frac, _) in enumerate(self.repeat):
                    k = math.floor(frac * int(n[s]) + 0.5)
                    if k >= n[s]:
                        row.append("all")
                    elif k <= 0:
                        row.append(None)
                    else:
                        row.append("pending")
                        prefix[s, t], rank[s, t] = (0, 0), k
                bound.append(row)
            return {"bound": bound, "prefix": prefix, "rank": rank}
        if phase == "select":
            i = rnd - 1
            hists = {key: np.zeros(1 << 16, dtype=np.int64) for key in ctx["prefix"]}
            for o in outs:
                for key, h in o.items():
                    hists[key] += h
            for key, (hi, lo) in list(ctx["prefix"].items()):
                cum = np.cumsum(hists[key])
                d = int(np.searchsorted(cum, ctx["rank"][key], side="right"))
                ctx["rank"][key] -= int(cum[d - 1]) if d else 0
                if i < 4:
                    hi |= d << (48 - 16 * i)
                else:
                    lo |= d << (48 - 16 * (i - 4))
                ctx["prefix"][key] = (hi, lo)
            if i == _SELECT_ROUNDS - 1:  # the boundary is the document at that rank
                for (s, t), hl in ctx["prefix"].items():
                    ctx["bound"][s][t] = hl
            return ctx
        # supply: exact unit sums per source and class -> wants and each partition's start
        n_src, n_class = len(self.names), len(self.repeat) + 1
        usum = [[0] * n_class for _ in range(n_src)]
        counts = []  # per partition [n_src, n_class] documents: small
        for cnt, u in outs:
            counts.append(cnt)
            for s in range(n_src):
                for c in range(n_class):
                    usum[s][c] += u[s][c]
        seen = [s for s in range(n_src) if sum(int(cnt[s].sum()) for cnt in counts)]
        want = self._wants(usum, seen)
        start, run = [], [self._start(s) for s in range(n_src)]
        for cnt in counts:
            start.append(list(run))
            for s in range(n_src):
                run[s] += sum(int(cnt[s][c]) * want[s][c] for c in range(n_class))
        return dict(ctx or {}, want=want, start=start)

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        counts = np.zeros(sigs.shape[0], dtype="<u2")
        counts[j] = v
        return counts.tobytes()

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


def score_key(score: np.ndarray) -> np.ndarray:
    """uint64 keys that sort as (NaN last, higher score first): the tiers' ranking order."""
    bits = (score + 0.0).view("<u8").copy()  # + 0.0: -0.0 ranks as 0.0
    neg = (bits >> np.uint64(63)) == 1
    asc = np.where(neg, ~bits, bits | np.uint64(1 << 63))  # ascending order of the floats
    key = ~asc  # descending
    key[np.isnan(score)] = np.uint64(0xFFFFFFFFFFFFFFFF)
    return key


def _int_sums(idx: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of `values` per index (np.bincount would sum in float64)."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, idx, values)
    return out
