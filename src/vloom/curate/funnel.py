"""The funnel: documents, text tokens and images left after each step of a curation run.

Text tokens are an estimate, not a tokenizer's count: the UTF-8 bytes of a document's
text items divided by 4, rounded up per document (the usual "~4 bytes per BPE token"
rule for English; it costs one `len(str.encode())` per item, so it runs at read speed
and does not depend on which tokenizer `pack` later trains). Images are counted, one
per image item.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vloom.doc import Document

BYTES_PER_TOKEN = 4
FUNNEL_KEYS = ("documents", "text_tokens", "images")


def text_tokens(doc: Document) -> int:
    """Estimated text tokens of a document: ceil(UTF-8 bytes of its text items / 4)."""
    n = sum(len(t.encode("utf-8")) for t in doc.texts if t is not None)
    return -(-n // BYTES_PER_TOKEN)


class Tally:
    """Counts what flows past one point of the pipeline (one funnel row).

    With `group`, it also counts per group (e.g. the mix's sources) under "by_source".
    """

    def __init__(self, step: str, group: Callable[[Document], str] | None = None) -> None:
        self.step = step
        self.totals: Counter[str] = Counter({k: 0 for k in FUNNEL_KEYS})
        self.group = group
        self.by_group: dict[str, Counter[str]] = {}

    def wrap(self, docs: Iterable[Document]) -> Iterator[Document]:
        for d in docs:
            row = {"documents": 1, "text_tokens": text_tokens(d), "images": d.n_images}
            self.totals.update(row)
            if self.group is not None:
                self.by_group.setdefault(self.group(d), Counter()).update(row)
            yield d

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, **{k: self.totals[k] for k in FUNNEL_KEYS}}
        if self.group is not None:
            out["by_source"] = {
                g: {k: c[k] for k in FUNNEL_KEYS} for g, c in sorted(self.by_group.items())
            }
        return out


def merge_counts(acc: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Sum two nested dicts of counts (per-shard funnel rows or step stats) key by key."""
    out = dict(acc)
    for k, v in other.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = merge_counts(out[k], v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = out[k] + v
    return out


def merge_funnels(funnels: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Add per-shard funnels row by row (every shard has the same steps)."""
    funnels = [f for f in funnels if f]
    if not funnels:
        return []
    out = [dict(row) for row in funnels[0]]
    for f in funnels[1:]:
        out = [merge_counts(a, b) for a, b in zip(out, f, strict=True)]
    return out
