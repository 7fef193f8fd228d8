"""The world's fact checker on hand-made true and false captions, and on the world's own
captions and descriptions (complete and true by construction)."""

from __future__ import annotations

import random

import pytest

from vloom.synth.factcheck import (
    Count,
    Mention,
    Relation,
    judge,
    parse_facts,
    render_facts,
    scene_from_json,
    scene_from_text,
    scene_segments,
    score,
    world_scenes,
)
from vloom.synth.language import caption, description
from vloom.synth.world import Obj, Scene, sample_scene

# red circle top left (small), blue square bottom right (large)
SCENE = Scene(
    (
        Obj("red", "circle", "small", 0, 0.0, 0.0),
        Obj("blue", "square", "large", 3, 0.0, 0.0),
    )
)


def test_a_true_complete_caption_is_all_true_and_covers_the_scene():
    text = (
        "There are two objects. At the top left there is a small red circle and at the "
        "bottom right there is a large blue square."
    )
    s = score(text, SCENE)
    assert (s.stated, s.true, s.false, s.hallucinated) == (3, 3, 0, 0)
    assert s.covered == s.scene_facts == 9  # 4 fields x 2 objects + the count
    assert s.shares()["coverage"] == 1.0


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("The red object is a circle.", "true"),
        ("The red object is at the top left.", "true"),
        ("The red object is a square.", "false"),  # both exist, not together: misbound
        ("At the bottom right there is a small blue square.", "false"),  # blue square is large
        ("There is a green object.", "hallucinated"),  # no green
        ("The red object is a triangle.", "hallucinated"),  # no triangle at all
        ("At the top right there is a red circle.", "hallucinated"),  # top right is empty
        ("There are three objects.", "hallucinated"),
        ("The number of objects is two.", "true"),
        ("The red circle is to the left of the blue square.", "true"),
        ("The red circle is above the blue square.", "true"),
        ("The red circle is below the blue square.", "false"),
    ],
)
def test_one_statement_gets_its_verdict(text, verdict):
    facts = parse_facts(text)
    # a relation sentence also states its two objects; its own verdict is the relation's
    fact = next((f for f in facts if isinstance(f, Relation)), facts[0])
    assert judge(fact, SCENE) == verdict, facts


def test_questions_state_nothing_and_answers_do():
    text = "Question: What shape is the green object? Answer: The red object is a circle."
    assert parse_facts(text) == [Mention(colour="red", shape="circle")]


def test_lists_split_into_one_mention_each_and_figure_numbers_are_no_counts():
    facts = parse_facts(
        "The picture has red, blue and green in it, and it shows a circle and a square. "
        "Figure 1 has more objects than figure 2."
    )
    assert facts == [
        Mention(colour="red"),
        Mention(colour="blue"),
        Mention(colour="green"),
        Mention(shape="circle"),
        Mention(shape="square"),
    ]


def test_a_kind_that_repeats_starts_a_new_mention():
    facts = parse_facts("a red circle near a blue square")
    assert facts == [Mention(colour="red", shape="circle"), Mention(colour="blue", shape="square")]


def test_repeated_facts_count_once_and_a_partial_caption_covers_part():
    s = score("There is a red circle. There is a red circle. There are two objects.", SCENE)
    assert (s.stated, s.true) == (2, 2)
    assert s.covered == 3  # red's colour and shape, and the count


def test_a_mention_that_fits_two_objects_covers_neither():
    both_small = Scene((SCENE.objects[0], Obj("blue", "square", "small", 3, 0.0, 0.0)))
    s = score("There is a small object.", both_small)
    assert (s.true, s.covered) == (1, 0)


def test_the_worlds_captions_and_descriptions_parse_to_their_scene():
    rng = random.Random(0)
    for _ in range(300):
        scene = sample_scene(rng, 3)
        for text in (caption(scene, rng), description(scene, rng)):
            got = scene_from_text(text)
            assert got is not None and got.key() == scene.key(), text
            s = score(text, scene)
            assert s.true == s.stated and s.covered == s.scene_facts, text


def test_a_partial_text_gives_no_scene_and_sections_split():
    assert scene_from_text("There are two objects. There is a red circle.") is None
    doc = (
        "Intro.\n\nScene 1. There is one object. At the top left there is a small red circle. "
        "Scene 2. There is one object. At the bottom left there is a large blue square."
    )
    assert [k for k, _ in scene_segments(doc)] == [1, 2]
    scenes = world_scenes(doc)
    assert scenes[1].objects[0].colour == "red" and scenes[2].objects[0].cell == 2


def test_rendered_facts_read_back_as_the_same_facts():
    facts = [Count(2), Mention("red", "circle", "small", "top left"), Mention(shape="square")]
    assert parse_facts(render_facts(facts)) == facts


def test_scene_json_round_trips():
    from vloom.synth.evalsets import scene_json

    assert scene_from_json(scene_json(SCENE)).key() == SCENE.key()
