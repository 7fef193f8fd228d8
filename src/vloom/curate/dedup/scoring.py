"""Precision and recall of a dedup step against the synthetic world's labelled duplicates.

`inject_noise` labels every copy it makes with `metadata["duplicate_of"]` (exact and
near duplicates) naming the original. A duplicate group is an original plus its
copies; of a group of k documents the ideal dedup removes exactly k - 1 (any k - 1:
after the shuffle a copy may come first, and then the original is the one to go).

    true removals = sum over groups of min(removed in group, k - 1)
    precision     = true removals / all removals   (a removal outside any group, or the
                                                     last member of a group, is false)
    recall        = true removals / sum over groups of (k - 1)

Score a run of the dedup step alone (other steps also remove documents). With
`text_only=True` (a dedup that looks at text only, e.g. `minhash_dedup` with
`match_images=False`) the image-defect copies (broken/tiny/unrelated image) count as
duplicates of their source too: their text is the source's text, byte for byte.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from vloom.doc import Document

IMAGE_DEFECTS = ("broken_image", "tiny_image", "unrelated_image")


@dataclass
class DedupScore:
    precision: float
    recall: float
    removed: int  # documents the step removed
    true_removed: int  # of those, redundant copies of a labelled group
    redundant: int  # labelled redundant copies in the input (sum of k - 1)
    false_by_kind: dict[str, int] = field(default_factory=dict)  # false removals by defect

    def line(self, name: str) -> str:
        fp = ", ".join(f"{k} {v}" for k, v in sorted(self.false_by_kind.items())) or "none"
        return (
            f"{name}: precision {self.precision:.3f} recall {self.recall:.3f} "
            f"(removed {self.removed}, of them redundant copies {self.true_removed}; "
            f"labelled redundant {self.redundant}; false removals by kind: {fp})"
        )


def score_dedup(
    inputs: Iterable[Document], kept_ids: Iterable[str], text_only: bool = False
) -> DedupScore:
    """Score which input documents a dedup kept against the `duplicate_of` labels."""
    kept = set(kept_ids)
    group_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    ids: list[str] = []
    for d in inputs:
        ids.append(d.id)
        kind = d.metadata.get("defect", "clean")
        kind_of[d.id] = kind
        root = d.metadata.get("duplicate_of")
        if root is None and text_only and kind in IMAGE_DEFECTS:
            root = d.metadata.get("source_of")
        group_of[d.id] = root if root is not None else d.id
    members: dict[str, list[str]] = defaultdict(list)
    for i in ids:
        members[group_of[i]].append(i)
    removed = true_removed = redundant = 0
    false_by_kind: Counter[str] = Counter()
    for group in members.values():
        gone = [i for i in group if i not in kept]
        ok = min(len(gone), len(group) - 1)
        redundant += len(group) - 1
        removed += len(gone)
        true_removed += ok
        for i in gone[ok:]:  # which ones are "extra" is arbitrary; name them by kind
            false_by_kind[kind_of[i]] += 1
    return DedupScore(
        precision=true_removed / removed if removed else 1.0,
        recall=true_removed / redundant if redundant else 1.0,
        removed=removed,
        true_removed=true_removed,
        redundant=redundant,
        false_by_kind=dict(false_by_kind),
    )
