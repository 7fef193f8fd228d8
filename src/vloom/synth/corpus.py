"""The synthetic corpus: interleaved documents, pairs, text-only documents, held-out eval sets.

Training scenes and evaluation scenes are drawn from separate random streams and
an evaluation scene whose key (objects, ignoring jitter) appears in training is
redrawn, so every evaluation image is a scene never seen in training.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vloom.config import SynthConfig
from vloom.doc import Document, write_documents, write_shard
from vloom.ondisk import MANIFEST, atomic_write_json, staged_dir
from vloom.synth.evalsets import (
    MC_FIELDS,
    WORLD_QA_SCHEMA,
    counts_on_offer,
    question_scene,
    write_evalsets,
)
from vloom.synth.language import QTYPES, caption, description, make_qa, qa_text
from vloom.synth.noise import inject_noise
from vloom.synth.world import Scene, png_bytes, render, sample_scene

# What a synth output holds; an existing directory with anything else is not replaced.
OUTPUTS = frozenset({"train", "eval", "reference", MANIFEST})
VQA_SCHEMA = pa.schema([("id", pa.string()), ("image", pa.binary()), *MC_FIELDS])
TEXT_QA_SCHEMA = WORLD_QA_SCHEMA  # a scene described in words, then the question

# Two sentences of prose each: the question-and-answer lines that follow are dense in
# punctuation, and Gopher's rule wants >= 80% of all tokens (punctuation included) to
# be words with letters, as ordinary prose has.
_INTROS = [
    "These notes describe a few small scenes made of simple coloured shapes. They were "
    "drawn on a plain board so that every object is easy to see and to name.",
    "This page collects figures of shapes and what can be seen in each of them. The "
    "questions and answers below were written by people who looked at them with care.",
    "The following figures show shapes of different colours and sizes on a grey board. "
    "Read the text next to each of them to learn where the objects are and what they look like.",
    "In this short report we look at several pictures and describe the objects in them. "
    "We name the colour and the shape of every object and say where on the board it lies.",
]
_OUTROS = [
    "That is the end of the figures on this page.",
    "Each figure above was described with the colour, the shape and the place of its objects.",
    "We hope that these notes help to read the other pages of the collection.",
]


class _SceneSource:
    """Draws scenes, remembering keys so held-out scenes can avoid them."""

    def __init__(self, rng: random.Random, max_objects: int, avoid: set | None = None) -> None:
        self.rng, self.max_objects, self.avoid, self.keys = rng, max_objects, avoid, set()

    def __call__(self) -> Scene:
        for _ in range(1000):
            s = sample_scene(self.rng, self.max_objects)
            if self.avoid is None or s.key() not in self.avoid:
                self.keys.add(s.key())
                return s
        raise RuntimeError("could not draw a held-out scene unseen in training; raise max_objects")


def interleaved_doc(
    i: int, scenes: Callable[[], Scene], cfg: SynthConfig, rng: random.Random
) -> Document:
    items: list[str | bytes] = [rng.choice(_INTROS)]
    drawn = []
    for k in range(cfg.images_per_doc):
        s = scenes()
        drawn.append(s)
        items.append(f"Figure {k + 1}.")
        items.append(png_bytes(render(s, cfg.image_size)))
        qas = [qa_text(make_qa(s, qt, rng)) for qt in rng.sample(QTYPES, 3)]
        # Questions usually come straight after the figure, as at evaluation, so the
        # answer has to be read from the image rather than copied from the prose.
        lines = qas + [description(s, rng)] if rng.random() < 0.7 else [description(s, rng)] + qas
        items.append(" ".join(lines))
    if len(drawn) > 1:
        a, b = rng.sample(range(len(drawn)), 2)
        na, nb = drawn[a].count, drawn[b].count
        rel = "more" if na > nb else "fewer" if na < nb else "as many"
        tail = "as" if rel == "as many" else "than"
        items.append(
            f"Figure {a + 1} has {rel} objects {tail} figure {b + 1}. {rng.choice(_OUTROS)}"
        )
    return Document.from_items(
        f"interleaved-{i:06d}", items, source="synth/interleaved", url=f"synth://doc/{i}"
    )


def pair_doc(i: int, scene: Scene, cfg: SynthConfig, rng: random.Random) -> Document:
    return Document.from_items(
        f"pair-{i:06d}",
        [png_bytes(render(scene, cfg.image_size)), caption(scene, rng)],
        source="synth/pairs",
        url=f"synth://pair/{i}",
    )


def text_doc(
    i: int,
    scenes: Callable[[], Scene],
    rng: random.Random,
    qas: int = 2,
    describe: Callable[[Scene, random.Random], str] = description,
) -> Document:
    """Scenes said in words (`describe`: the world's description; probes pass other wordings),
    each followed by `qas` of its questions and answers."""
    paras = [rng.choice(_INTROS).replace("figures", "scenes").replace("pictures", "scenes")]
    for k in range(rng.randint(2, 4)):
        s = scenes()
        lines = [f"Scene {k + 1}. " + describe(s, rng)]
        for qt in rng.sample(QTYPES, qas):
            lines.append(qa_text(make_qa(s, qt, rng)))
        paras.append(" ".join(lines))
    return Document.from_items(
        f"text-{i:06d}", ["\n\n".join(paras)], source="synth/text", url=f"synth://text/{i}"
    )


def write_reference(out_dir: Path, avoid: set, cfg: SynthConfig, seed: int) -> int:
    """cfg.n_reference clean documents, the kinds in the training corpus's proportions, from
    scenes no evaluation set uses; none of them is trained on."""
    n = cfg.n_reference
    if n == 0:
        return 0
    scenes = _SceneSource(random.Random(f"reference-scenes-{seed}"), cfg.max_objects, avoid)
    rng = random.Random(f"reference-{seed}")
    sizes = [cfg.n_interleaved, cfg.n_pairs, cfg.n_text]
    total = sum(sizes) or 1
    n_il, n_pair = (round(n * k / total) for k in sizes[:2])
    docs = [interleaved_doc(i, scenes, cfg, rng) for i in range(n_il)]
    docs += [pair_doc(i, scenes(), cfg, rng) for i in range(n_pair)]
    docs += [text_doc(i, scenes, rng) for i in range(max(n - n_il - n_pair, 0))]
    for d in docs:
        d.id, d.source = f"ref-{d.id}", d.source.replace("synth/", "synth/reference/")
    write_documents(out_dir, docs, shard_size=cfg.shard_size)
    return len(docs)


def generate(
    cfg: SynthConfig, out_dir: str | Path, seed: int = 0, quiet: bool = True
) -> dict[str, Any]:
    """Write `train/` shards (with injected noise) and `eval/` sets under out_dir; return the manifest.

    The corpus is built in a staging directory and renamed into place when complete: a run
    killed midway leaves the previous corpus whole, and a rerun never leaves old shards
    beside new ones. An existing `out_dir` holding anything else is refused."""
    out = Path(out_dir)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS)
        if foreign:
            raise FileExistsError(
                f"{out_dir}: holds {foreign[0]!r}, which is not synth output: refusing to replace it"
            )
    with staged_dir(out, overwrite=True) as tmp:
        return _write_corpus(cfg, tmp, seed, quiet)


def _write_corpus(cfg: SynthConfig, out: Path, seed: int, quiet: bool) -> dict[str, Any]:
    rng = random.Random(f"vloom-synth-{seed}")
    train_scenes = _SceneSource(random.Random(f"train-scenes-{seed}"), cfg.max_objects)

    total = cfg.n_interleaved + cfg.n_pairs + cfg.n_text
    bar = tqdm(total=total, desc="synth", unit="doc", disable=quiet, mininterval=2)
    docs: list[Document] = []
    for i in range(cfg.n_interleaved):
        docs.append(interleaved_doc(i, train_scenes, cfg, rng))
        bar.update()
    for i in range(cfg.n_pairs):
        docs.append(pair_doc(i, train_scenes(), cfg, rng))
        bar.update()
    for i in range(cfg.n_text):
        docs.append(text_doc(i, train_scenes, rng))
        bar.update()
    bar.close()
    clean = len(docs)
    docs = inject_noise(docs, cfg.noise, random.Random(f"noise-{seed}"))
    train_paths = write_documents(out / "train", docs, shard_size=cfg.shard_size)

    # Held-out scenes: a separate stream that avoids every training key.
    held = _SceneSource(random.Random(f"eval-scenes-{seed}"), cfg.max_objects, train_scenes.keys)
    erng = random.Random(f"eval-{seed}")
    counts = counts_on_offer(held)  # count answers spread evenly (else "three" scored 0.76)
    vqa_rows = []
    for i in range(cfg.n_eval_vqa):
        s = question_scene(held, QTYPES[i % len(QTYPES)], i, counts)
        qa = make_qa(s, QTYPES[i % len(QTYPES)], erng)
        vqa_rows.append(
            {
                "id": f"vqa-{i:05d}",
                "image": png_bytes(render(s, cfg.image_size)),
                "question": qa.question,
                "options": list(qa.options),
                "answer": qa.answer_index,
                "qtype": qa.qtype,
                "template": qa.template,
            }
        )
    tqa_rows = []
    for i in range(cfg.n_eval_text):
        s = question_scene(held, QTYPES[i % len(QTYPES)], i, counts)
        qa = make_qa(s, QTYPES[i % len(QTYPES)], erng)
        tqa_rows.append(
            {
                "id": f"tqa-{i:05d}",
                "context": description(s, erng),
                "question": qa.question,
                "options": list(qa.options),
                "answer": qa.answer_index,
                "qtype": qa.qtype,
                "template": qa.template,
            }
        )
    (out / "eval").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(vqa_rows, schema=VQA_SCHEMA), out / "eval" / "vqa.parquet")
    pq.write_table(
        pa.Table.from_pylist(tqa_rows, schema=TEXT_QA_SCHEMA), out / "eval" / "text_qa.parquet"
    )
    n_small = max(cfg.n_eval_text // 2, 4)
    write_shard(
        out / "eval" / "heldout_text.parquet", [text_doc(i, held, erng) for i in range(n_small)]
    )
    write_shard(
        out / "eval" / "captions.parquet", [pair_doc(i, held(), cfg, erng) for i in range(n_small)]
    )
    extra = write_evalsets(out / "eval", held, cfg, seed)
    n_ref = write_reference(out / "reference", held.keys, cfg, seed)

    defects = Counter(d.metadata.get("defect", "clean") for d in docs)
    manifest = {
        "seed": seed,
        "config": cfg.model_dump(mode="json"),
        "train": {"documents": len(docs), "clean": clean, "shards": len(train_paths)},
        "defects": dict(sorted(defects.items())),
        "eval": {
            "vqa": len(vqa_rows),
            "text_qa": len(tqa_rows),
            "heldout_text": n_small,
            "captions": n_small,
            **extra,
        },
        "reference": {"documents": n_ref},
    }
    # Written last: its presence marks the stage complete.
    atomic_write_json(out / MANIFEST, manifest)
    return manifest
