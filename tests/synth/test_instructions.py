"""World instruction sets: answers true of their scene, pointing inside the cell, captions
naming every object, deterministic, and only training scenes (never a held-out one)."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from vloom.config import SynthConfig
from vloom.doc import read_documents
from vloom.evaluate.metrics import exact_match
from vloom.evaluate.tasks.vqa_open import accepted
from vloom.synth import generate
from vloom.synth.instructions import (
    CAPTION_QUESTION,
    cell_centre,
    parse_point,
    point_in_cell,
    world_instructions,
)
from vloom.synth.world import CELLS

COUNTS = {"vqa": 120, "pointing": 40, "captions": 40, "multi_turn": 40}
PHRASE = re.compile(
    r"at the (top left|top right|bottom left|bottom right) there is an? (small|large) (\w+) (\w+)"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One-object scenes: a phrase in the training text names a whole scene, so the training
    scene keys can be read back from the corpus; few keys, so held-out scenes are close by."""
    d = tmp_path_factory.mktemp("w") / "synth"
    cfg = SynthConfig(
        max_objects=1, n_interleaved=4, n_pairs=30, n_text=4, n_eval_vqa=40, n_eval_text=8
    )
    generate(cfg, d, seed=3)
    return d


def scene_of(c) -> list[dict]:
    return json.loads(c.meta["scene"])


def key(objs: list[dict]) -> tuple:
    return tuple(sorted((o["colour"], o["shape"], o["size"], o["cell"]) for o in objs))


def test_answers_are_true_of_the_scene(world):
    convs = list(world_instructions(world, COUNTS, seed=1))
    assert {k: sum(c.meta["kind"] == k for c in convs) for k in COUNTS} == COUNTS
    for c in convs:
        objs = scene_of(c)
        answers = [t.text for t in c.turns if t.role == "assistant"]
        questions = [t.text for t in c.turns if t.role == "user"]
        assert len(c.turns[0].images) == 1 and all(not t.images for t in c.turns[1:])
        for q, a, chk in zip(questions, answers, c.meta["checks"], strict=True):
            if chk["qtype"] == "pointing":
                cell = chk["cell"]
                obj = next(o for o in objs if o["colour"] == chk["colour"])
                assert obj["cell"] == cell and chk["colour"] in q
                assert point_in_cell(a, cell)
                assert parse_point(a) == cell_centre(CELLS.index(cell))
                assert not any(point_in_cell(a, other) for other in CELLS if other != cell)
            elif chk["qtype"] == "caption":
                assert q == CAPTION_QUESTION
                for o in objs:
                    assert f"{o['cell']} there is a {o['size']} {o['colour']} {o['shape']}" in a
            else:
                # vqa_open's own check: the answer sentence is accepted for this scene
                row = {"answers": chk["answers"], "template": chk["template"]}
                assert exact_match(a, accepted(row))
                truth = {
                    "colour": {o["colour"] for o in objs},
                    "count": {["zero", "one", "two", "three", "four"][len(objs)]},
                }
                if chk["qtype"] in truth:
                    assert set(chk["answers"]) <= truth[chk["qtype"]]
                else:
                    colour = q.split("the ")[1].split(" object")[0]
                    obj = next(o for o in objs if o["colour"] == colour)
                    field = "shape" if chk["qtype"] == "shape" else "cell"
                    assert chk["answers"] == [obj[field]]


def test_deterministic_from_the_seed(world):
    a = [(c.id, c.turns) for c in world_instructions(world, {"vqa": 20, "multi_turn": 5}, 7)]
    b = [(c.id, c.turns) for c in world_instructions(world, {"vqa": 20, "multi_turn": 5}, 7)]
    c = [(c.id, c.turns) for c in world_instructions(world, {"vqa": 20, "multi_turn": 5}, 8)]
    assert a == b and a != c


def test_only_training_scenes_never_held_out(world):
    train_keys = set()
    for d in read_documents(world / "train"):
        for t in d.texts:
            for cell, size, colour, shape in PHRASE.findall(t or ""):
                train_keys.add(
                    key([{"colour": colour, "shape": shape, "size": size, "cell": cell}])
                )
    held = {
        key(json.loads(s))
        for s in pq.read_table(world / "eval" / "vqa_open.parquet")["scene"].to_pylist()
    }
    assert held and not held & train_keys  # the world keeps them apart
    convs = list(world_instructions(world, COUNTS, seed=1))
    used = {key(scene_of(c)) for c in convs}
    assert used <= train_keys
    assert not used & held
    assert len(used) > 10


def test_unknown_kind_is_an_error(world):
    with pytest.raises(ValueError, match="unknown instruction kind 'essay'"):
        list(world_instructions(world, {"essay": 1}))


def test_reading_asks_about_the_scene_in_words_with_no_image(world):
    convs = list(world_instructions(world, {"reading": 40}, seed=2))
    assert len(convs) == 40
    assert {c.meta["checks"][0]["qtype"] for c in convs} == {"colour", "shape", "count", "position"}
    for c in convs:
        assert [t.role for t in c.turns] == ["system", "user", "assistant"]
        assert not any(t.images for t in c.turns)
        (obj,) = scene_of(c)  # the fixture's one-object scenes
        said = c.turns[0].text
        assert f"there is a {obj['size']} {obj['colour']} {obj['shape']}" in said
        assert f"The {obj['colour']} {obj['shape']} is at the {obj['cell']}." in said
        chk = c.meta["checks"][0]
        assert exact_match(c.turns[2].text, accepted(chk))
    # the description comes first, on its own line, as text_qa gives its context
    from vloom.chat.template import VloomTemplate
    from vloom.sequence import DEFAULT_LAYOUT

    r = VloomTemplate(DEFAULT_LAYOUT).render(convs[0])
    text = "".join(p for p in r.pieces if isinstance(p, str))
    assert text.startswith(convs[0].turns[0].text + "\nQuestion: ")
    assert text.endswith(f"Answer: {convs[0].turns[2].text}")
