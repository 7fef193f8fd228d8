"""The curation step protocol (datatrove style).

A `Step` turns a stream of documents into a stream of documents and counts what it
dropped, by reason, so the executor can put every document in the ledger. A `Filter`
only answers `(keep, reason)` per document; the base class does the counting.

A `GlobalStep` (e.g. deduplication) cannot decide on one document alone: it needs
to have seen every shard first. The executor therefore runs it in two passes:
`signatures` per shard (in parallel), one `plan` over all shards in global order,
then the normal `run` per shard after `load_plan` gave it that shard's decision.
Run without a plan (in memory, one stream), a global step plans over that stream alone
(`planned_stream`), which is the same decision.

Partitioned plan (`partition.py`, what the executors run for a step with a `record_dtype`):
no process holds the corpus. A step implements little:
    records(sigs) -> records              one shard's signatures [n, sig_size] as records
                                          with a uniform uint64 "key" (records with equal
                                          keys meet in one partition) and "g" (the record's
                                          index in the shard; the executor makes it global)
    plan_partition(recs, part, rnd, ctx)  one partition's records (any order: g orders them) ->
                                          marks (partition.MARK: global position, value),
                                          or pairs (u, v) with `resolves_pairs`
    shard_state(sigs, j, v) -> state      a shard's marks -> the state `plan` would give it
    plan_rounds(), reduce(rnd, outs, ctx) steps that need global totals first (mix): each
                                          round but the last returns small summaries
`plan` stays the single-process plan (in-memory runs, and the reference the partitioned
plan is tested against: same kept set, same survivor).

The hooks the executors call, with their defaults here (a step overrides what it needs):
    prepare(params, work_dir) -> params   classmethod, on the driver before any pass
                                          (e.g. train a classifier once, name a log dir)
    needs_plan(params) -> bool            classmethod: False runs a GlobalStep as a plain
                                          streaming step (e.g. a classifier with a threshold)
    stats() -> dict | None                nested counts, summed over shards into the
                                          ledger's "step_stats"[name]; None adds nothing
    added                                 documents the step created (repeated copies);
                                          such a step (`adds_documents = True`) must be last
    funnel_group(doc) -> str              with `funnel_groups = True`, the step's funnel row
                                          is also counted per group (mix: per source)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vloom.doc import Document
from vloom.ledger import Ledger


class CurateError(ValueError):
    """A curation config or input that cannot be used; the message is one line."""


class Step:
    """One curation step: `run` yields the documents it keeps and counts the ones it drops."""

    name: ClassVar[str] = "step"
    adds_documents: ClassVar[bool] = False
    funnel_groups: ClassVar[bool] = False
    # the step counts things beside the ledger in `counts` (lines removed, images, ...):
    # `stats()` reports them, sorted by name
    keeps_counts: ClassVar[bool] = False

    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.added = 0  # documents created, not read (only with adds_documents)

    @classmethod
    def prepare(cls, params: dict[str, Any], work_dir: Path) -> dict[str, Any]:
        """Driver-side work before any pass; returns the parameters the workers get."""
        return params

    @classmethod
    def needs_plan(cls, params: dict[str, Any]) -> bool:
        """Whether the executor must run the signature and plan passes for this step."""
        return False

    def stats(self) -> dict[str, Any] | None:
        """Counts beside the ledger (summed over shards into "step_stats"); None: none kept."""
        return dict(sorted(self.counts.items())) if self.keeps_counts else None

    def funnel_group(self, doc: Document) -> str:
        """The group a document is counted under in the funnel (with `funnel_groups`)."""
        return ""

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def ledger(self) -> Ledger:
        """What this step dropped so far, as a Ledger fragment (`dropped` only)."""
        led = Ledger()
        if self.dropped:
            led.dropped[self.name].update(self.dropped)
        return led

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class Filter(Step):
    """A step that judges each document on its own; subclasses implement `filter`."""

    def filter(self, doc: Document) -> tuple[bool, str] | bool:
        """Return (keep, reason); the reason is only used when the document is dropped."""
        raise NotImplementedError

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        for doc in docs:
            verdict = self.filter(doc)
            keep, reason = verdict if isinstance(verdict, tuple) else (verdict, "filtered")
            if keep:
                yield doc
            else:
                self.drop(reason)


class GlobalStep(Step):
    """A step whose decision needs all shards: signatures per shard, a plan, then `run`.

    Signatures are fixed-size `bytes` (`sig_size` long) so the executor can cache
    them on disk as one flat file per shard and resume without recomputing.
    """

    sig_size: ClassVar[int] = 16
    # partitioned plan: None plans on the driver from every shard's signatures (`plan`)
    record_dtype: ClassVar[np.dtype | None] = None
    resolves_pairs: ClassVar[bool] = False  # plan_partition emits pairs for union-find

    def __init__(self) -> None:
        super().__init__()
        self.planned = False  # set by `apply_plan`

    @classmethod
    def needs_plan(cls, params: dict[str, Any]) -> bool:
        return True

    def apply_plan(self, state: Any) -> None:
        """Load the decision for the shard about to be `run` (what the executors call)."""
        self.load_plan(state)
        self.planned = True

    def planned_stream(self, docs: Iterable[Document]) -> Iterable[Document]:
        """The documents to `run` over, with a plan loaded: without one (a single stream in
        memory, e.g. `run_steps`), plan over this stream alone, which is the same decision."""
        if self.planned:
            return docs
        docs = list(docs)
        self.apply_plan(self.plan([list(self.signatures(docs))])[0])
        self.after_self_plan()
        return docs

    def after_self_plan(self) -> None:
        """Reset counts that `signatures` made while the step planned over its own stream."""

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        """One signature per document, in stream order."""
        raise NotImplementedError

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        """Given every shard's signatures in global order, one picklable state per shard."""
        raise NotImplementedError

    def load_plan(self, state: Any) -> None:
        """Set the decision for the shard about to be `run`."""
        raise NotImplementedError

    # ---- the partitioned plan (used when `record_dtype` is set) ----

    def records(self, sigs: np.ndarray) -> np.ndarray:
        """One shard's signatures [n, sig_size] uint8 -> records of `record_dtype`."""
        raise NotImplementedError

    def plan_rounds(self) -> int:
        """Passes over the partitions; every one but the last returns a summary."""
        return 1

    def plan_partition(self, recs: np.ndarray, part: int, rnd: int, ctx: Any) -> Any:
        """A partition's records (in no particular order) -> marks, pairs or a summary."""
        raise NotImplementedError

    def reduce(self, rnd: int, outs: Iterable[Any], ctx: Any) -> Any:
        """Round `rnd`'s summaries of every partition (in order, read once, one at a time)
        -> the next round's context."""
        raise NotImplementedError

    def shard_state(self, sigs: np.ndarray, j: np.ndarray, v: np.ndarray) -> Any:
        """The state for one shard from its signatures and its marks (record j, value v)."""
        raise NotImplementedError
