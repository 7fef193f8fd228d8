"""The default curation pipeline removes the injected defects and keeps the clean corpus."""

import random
from collections import Counter

from shapes import clean_docs

from vloom.config import CurateConfig, NoiseConfig, StepConfig
from vloom.curate import run_curate
from vloom.doc import read_documents, write_documents
from vloom.synth.noise import inject_noise


def test_pipeline_removes_injected_defects(tmp_path):
    clean = clean_docs(400, seed=11)
    noise = NoiseConfig(
        exact_duplicate=0.1,
        near_duplicate=0.05,
        spam=0.1,
        foreign_language=0.05,
        broken_image=0.05,
        tiny_image=0.05,
        unrelated_image=0.05,
    )
    noisy = inject_noise(clean, noise, random.Random(0))
    write_documents(tmp_path / "in", noisy, shard_size=150)
    cfg = CurateConfig(
        steps=[
            StepConfig(name="exact_dedup"),
            StepConfig(name="gopher_quality"),
            StepConfig(name="image_filter"),
        ],
        workers=2,
    )
    led = run_curate(tmp_path / "in", tmp_path / "out", cfg, quiet=True)
    kept = {d.id for d in read_documents(tmp_path / "out")}
    assert led.kept == len(kept) and led.input == len(noisy)

    by_kind: dict[str, list[str]] = {}
    for d in noisy:
        by_kind.setdefault(d.metadata.get("defect", "clean"), []).append(d.id)
    kept_share = {k: sum(i in kept for i in ids) / len(ids) for k, ids in by_kind.items()}

    # an exact duplicate may come before its original after the shuffle: then the copy
    # survives and the original is the one dropped. Judge per group: exactly one survivor.
    groups = Counter()
    for d in noisy:
        if d.metadata.get("defect") in (None, "exact_duplicate"):
            root = d.metadata.get("duplicate_of", d.id)
            groups[root] += d.id in kept
    dup_roots = {
        d.metadata["duplicate_of"] for d in noisy if d.metadata.get("defect") == "exact_duplicate"
    }
    assert all(groups[r] == 1 for r in dup_roots), "every duplicate group keeps exactly one copy"
    clean_kept = sum(groups[d.id] >= 1 for d in clean) / len(clean)

    assert clean_kept >= 0.95, kept_share
    assert kept_share["broken_image"] == 0.0
    assert kept_share["tiny_image"] == 0.0
    assert kept_share["spam"] <= 0.2
    assert led.dropped["exact_dedup"]["duplicate"] == len(by_kind["exact_duplicate"])
