"""Throughput of vloom's exact dedup + Gopher quality, side by side with datatrove's Gopher filter.

    python benchmarks/curate_exact_dedup.py [--n 20000] [--seed 0]

Both tools see the same texts in the same process. datatrove's exact dedup is a
multi-stage disk pipeline, so the like-for-like ratio is measured on the Gopher
filter alone; vloom's dedup + Gopher throughput is printed beside it.
"""

from __future__ import annotations

import argparse
import random
import time

from vloom.curate.dedup.exact import ExactDedup
from vloom.curate.executor import run_steps
from vloom.curate.filters.gopher_quality import GopherQuality
from vloom.doc import Document

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "triangle", "star")
SENTENCES = (
    "The {c} {s} sits to the left of the {c2} {s2}.",
    "A small {c} {s} is drawn above the large {c2} {s2}, and it has a thin outline.",
    "In this scene we can see that the {c} {s} is close to the {c2} {s2}.",
    "Each shape has a solid colour and a clear edge, which makes it easy to describe.",
    "Buy cheap {s} now... click here...",
)


def make_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        if texts and rng.random() < 0.1:  # 10% exact duplicates
            texts.append(rng.choice(texts))
            continue
        sents = [
            rng.choice(SENTENCES).format(
                c=rng.choice(COLOURS),
                c2=rng.choice(COLOURS),
                s=rng.choice(SHAPES),
                s2=rng.choice(SHAPES),
            )
            for _ in range(rng.randint(3, 12))
        ]
        texts.append(" ".join(sents))
    return texts


def rate(n: int, fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    kept = fn()
    return n / (time.perf_counter() - t0), kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="documents to generate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    texts = make_texts(args.n, args.seed)
    docs = [Document.from_items(f"d{i}", [t]) for i, t in enumerate(texts)]

    v_both, kept_both = rate(
        args.n, lambda: len(run_steps(docs, [ExactDedup(), GopherQuality()])[0])
    )
    v_gopher, kept_g = rate(args.n, lambda: len(run_steps(docs, [GopherQuality()])[0]))
    print(f"vloom exact_dedup + gopher_quality: {v_both:10.0f} docs/s (kept {kept_both}/{args.n})")
    print(f"vloom gopher_quality:               {v_gopher:10.0f} docs/s (kept {kept_g}/{args.n})")

    try:
        from datatrove.data import Document as DTDocument
        from datatrove.pipeline.filters import GopherQualityFilter
    except ImportError:
        print("datatrove is not installed; for the side-by-side run: pip install datatrove spacy")
        return

    dt_docs = [DTDocument(text=t, id=str(i)) for i, t in enumerate(texts)]

    def datatrove_gopher() -> int:
        return sum(1 for _ in GopherQualityFilter().run(iter(dt_docs), rank=0, world_size=1))

    try:
        d_gopher, kept_d = rate(args.n, datatrove_gopher)
    except (ImportError, LookupError) as e:  # its word tokenizer needs spacy (or nltk data)
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        print(f"datatrove could not run its Gopher filter: {first}")
        return
    print(f"datatrove GopherQualityFilter:      {d_gopher:10.0f} docs/s (kept {kept_d}/{args.n})")
    print(f"ratio vloom/datatrove (gopher only): {v_gopher / d_gopher:.2f}x")


if __name__ == "__main__":
    main()
