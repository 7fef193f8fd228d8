"""The world's prose says what each object's shape and colour look like (issue 16: without it
no word depends on which shape or colour was named, and a small LM learns one embedding for
all four shapes)."""

import random
import re

import pyarrow.parquet as pq

from vloom.config import SynthConfig
from vloom.doc import read_documents
from vloom.synth import generate
from vloom.synth.language import COLOUR_FACTS, SHAPE_FACTS, caption, description
from vloom.synth.world import COLOURS, SHAPES, sample_scene


def test_every_shape_has_a_fact_whose_words_no_other_shape_shares():
    assert set(SHAPE_FACTS) == set(SHAPES)
    for shape, fact in SHAPE_FACTS.items():
        others = {w for s, f in SHAPE_FACTS.items() if s != shape for w in f.split()}
        assert set(fact.split()) - others, shape  # its own words tell which shape was named
        assert not set(fact.split()) & set(SHAPES), shape  # a fact never names a shape
    assert set(COLOUR_FACTS) == set(COLOURS)
    assert len({f.split()[-1] for f in COLOUR_FACTS.values()}) == len(COLOURS)


def test_descriptions_and_captions_state_each_objects_own_shape_fact_and_no_other():
    rng = random.Random(0)
    for _ in range(200):
        s = sample_scene(rng)
        for text in (description(s, rng), caption(s, rng)):
            said = re.findall(r"The (\w+) (\w+) (" + "|".join(SHAPE_FACTS.values()) + r")\.", text)
            assert sorted(said) == sorted(
                (o.colour, o.shape, SHAPE_FACTS[o.shape]) for o in s.objects
            ), text
            for o in s.objects:
                assert f"The {o.shape} is {o.colour} like {COLOUR_FACTS[o.colour]}." in text


def test_the_training_corpus_and_text_qa_contexts_carry_the_facts(tmp_path):
    cfg = SynthConfig(
        n_interleaved=4, n_pairs=6, n_text=4, n_eval_vqa=8, n_eval_text=8, shard_size=20
    )
    generate(cfg, tmp_path, seed=0)
    for d in read_documents(tmp_path / "train"):
        if "defect" in d.metadata:
            continue
        assert any(f in d.text for f in SHAPE_FACTS.values()), d.id
    for row in pq.read_table(tmp_path / "eval" / "text_qa.parquet").to_pylist():
        assert any(f in row["context"] for f in SHAPE_FACTS.values())
