"""A tiny synthetic world (the real generator, small counts) for the classify/refine/mix tests."""

from __future__ import annotations

from pathlib import Path

from vloom.config import NoiseConfig, SynthConfig
from vloom.doc import Document, read_documents, write_documents
from vloom.synth import generate


def small_world(out: Path, seed: int = 3, spam: float = 0.3, shard_size: int = 40) -> Path:
    """Write a ~200-document training corpus (text, pairs, interleaved, with spam); return train/."""
    cfg = SynthConfig(
        n_interleaved=30,
        n_pairs=60,
        n_text=60,
        n_eval_vqa=4,
        n_eval_text=4,
        shard_size=shard_size,
        noise=NoiseConfig(spam=spam),
    )
    generate(cfg, out, seed=seed)
    return out / "train"


def split_by_defect(train: Path) -> tuple[list[Document], list[Document]]:
    """(clean documents, spam documents) of a synthetic corpus, in file order."""
    docs = list(read_documents(train))
    clean = [d for d in docs if "defect" not in d.metadata]
    spam = [d for d in docs if d.metadata.get("defect") == "spam"]
    return clean, spam


def write_set(out: Path, docs: list[Document], shard_size: int = 50) -> Path:
    write_documents(out, docs, shard_size=shard_size)
    return out
