"""The curation step protocol (datatrove style).

A `Step` turns a stream of documents into a stream of documents and counts what it
dropped, by reason, so the executor can put every document in the ledger. A `Filter`
only answers `(keep, reason)` per document; the base class does the counting.

A `GlobalStep` (e.g. deduplication) cannot decide on one document alone: it needs
to have seen every shard first. The executor therefore runs it in two passes:
`signatures` per shard (in parallel), one `plan` over all shards in global order,
then the normal `run` per shard after `load_plan` gave it that shard's decision.
Run without a plan (in memory, one stream), a global step decides as it streams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from vloom.doc import Document
from vloom.ledger import Ledger


class CurateError(ValueError):
    """A curation config or input that cannot be used; the message is one line."""


class Step:
    """One curation step: `run` yields the documents it keeps and counts the ones it drops."""

    name: ClassVar[str] = "step"

    def __init__(self) -> None:
        self.dropped: Counter[str] = Counter()

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

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        """One signature per document, in stream order."""
        raise NotImplementedError

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        """Given every shard's signatures in global order, one picklable state per shard."""
        raise NotImplementedError

    def load_plan(self, state: Any) -> None:
        """Set the decision for the shard about to be `run`."""
        raise NotImplementedError
