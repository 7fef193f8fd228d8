"""KALE: the fact merge on hand-made captions, and the step on the tiny world with a real
(random) tiny checkpoint through the curate executor."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from vloom.config import StepConfig
from vloom.curate import build_step, run_steps
from vloom.curate.base import CurateError
from vloom.curate.generated.kale import KaleCaptions, alt_text, alt_text_pairs, merge_facts
from vloom.curate.generated.world_run import run_on_world
from vloom.doc import read_documents
from vloom.synth.factcheck import Count, Mention, parse_facts, score
from vloom.synth.world import sample_scene

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "generated" / "kale.yaml"


def test_alt_text_states_only_true_facts_and_not_always_all():
    rng = random.Random(0)
    coverage = []
    for _ in range(200):
        scene = sample_scene(rng, 3)
        s = score(alt_text(scene, rng), scene)
        assert s.stated > 0 and s.true == s.stated
        coverage.append(s.covered / s.scene_facts)
    assert min(coverage) < 0.5 < max(coverage)


def test_merge_keeps_the_alt_text_joins_agreeing_facts_and_drops_contradictions():
    alt = parse_facts("There are two objects. There is a red circle.")
    dense = parse_facts(
        "The red object is at the top left. "  # agrees: joined into the red circle
        "The red object is a square. "  # contradicts the alt-text's red circle: dropped
        "At the bottom right there is a blue triangle. "  # new object: added
        "There is a green object."  # a third object, past the alt-text's count: dropped
    )
    merged = merge_facts(alt, dense)
    assert merged == [
        Count(2),
        Mention(colour="red", shape="circle", cell="top left"),
        Mention(colour="blue", shape="triangle", cell="bottom right"),
    ]


def test_merge_takes_the_captions_count_only_when_it_holds_every_object():
    dense = parse_facts("There is one object. At the top left there is a blue circle.")
    merged = merge_facts(parse_facts("There is a red square."), dense)
    assert not any(isinstance(f, Count) for f in merged)  # two objects, the caption says one


def test_bad_parameters_are_one_line_errors(world_gen):
    with pytest.raises(CurateError, match="generator"):
        build_step(StepConfig(name="kale", generator={"backend": "vloom", "nope": 1}))
    with pytest.raises(CurateError, match="merge_prompt"):
        build_step(
            StepConfig(name="kale", generator=world_gen.spec, merge="prompt", merge_prompt="x")
        )


def test_kale_on_the_world_end_to_end(world_gen, tmp_path):
    """The config under configs/generated, the executor, the score table from the ledger."""
    table = run_on_world(
        "kale",
        world_gen.world,
        tmp_path / "run",
        CONFIG,
        n=6,
        generator=world_gen.spec,
        params={"max_new_tokens": 8},  # a random model never stops: keep its captions short
    )
    assert table["input"] == 6
    gen = table["generation"]["caption"]
    assert sum(gen.values()) == 6  # every pair's caption counted once, by outcome
    dropped = sum(table["dropped"].values())
    assert table["kept"] + dropped == 6
    assert all(k.startswith("caption_") for k in table["dropped"])
    rows = {r["text"]: r for r in table["facts"]}
    assert set(rows) == {"alt_text", "dense", "augmented"}
    assert rows["alt_text"]["true"] == 1.0 and rows["alt_text"]["texts"] == table["kept"]
    # the merge keeps every alt-text fact: coverage never falls below the alt-text's
    assert rows["augmented"]["coverage"] >= rows["alt_text"]["coverage"]
    out = list(read_documents(tmp_path / "run" / "curated"))
    assert len(out) == table["kept"]
    for d in out:
        assert d.n_images == 1 and d.metadata["kale"]["merge"] == "facts"
        k = d.metadata["kale"]
        assert k["trust"] == ["colour", "count"]  # the config's
        want = merge_facts(parse_facts(k["alt_text"]), parse_facts(k["dense"]), k["trust"])
        assert parse_facts(d.text) == want


def test_a_rerun_reuses_every_caption_and_failures_are_counted_by_reason(world_gen, tmp_path):
    docs = alt_text_pairs(world_gen.world, 6)
    step = KaleCaptions(world_gen.spec, cache_dir=str(tmp_path / "cache"), max_new_tokens=8)
    first, _ = run_steps(docs, [step])
    again = KaleCaptions(world_gen.spec, cache_dir=str(tmp_path / "cache"), max_new_tokens=8)
    second, _ = run_steps(docs, [again])
    assert again.tally["generation"]["caption"] == {"cache_hit": 6}
    assert [d.text for d in second] == [d.text for d in first]
    # a prompt longer than the model's context (256 tokens): context_overflow, per pair
    long = " ".join(["Describe every object in the picture."] * 80)
    drop = KaleCaptions(world_gen.spec, caption_prompt=long)
    kept, led = run_steps(docs, [drop])
    assert kept == [] and led.dropped["kale"] == {"caption_context_overflow": 6}
    keep = KaleCaptions(world_gen.spec, caption_prompt=long, on_error="keep")
    kept, led = run_steps(docs, [keep])
    assert [d.text for d in kept] == [d.text for d in docs]
    assert keep.tally["kept_original"] == {"caption_context_overflow": 6}


def test_merge_takes_only_the_trusted_fields_of_the_caption():
    alt = parse_facts("There are two objects. There is a red circle.")
    dense = parse_facts(
        "There are three objects. The red object is a square. "
        "At the bottom right there is a blue triangle."
    )
    merged = merge_facts(alt, dense, trust=("colour",))
    assert merged == [Count(2), Mention(colour="red", shape="circle"), Mention(colour="blue")]
    # without the alt-text's count, the caption's is taken only when trusted
    assert Count(3) not in merge_facts(alt[1:], dense, trust=("colour",))
    assert Count(3) in merge_facts(alt[1:], dense, trust=("colour", "count"))
