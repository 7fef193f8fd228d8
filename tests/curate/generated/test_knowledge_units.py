"""Knowledge units: the retention scorer on hand-made units, the step on the tiny world with
a real (random) tiny checkpoint (it writes no JSON: every section is counted)."""

from __future__ import annotations

import random
from pathlib import Path

from vloom.curate import run_steps
from vloom.curate.generated.common import world_documents
from vloom.curate.generated.knowledge_units import (
    KnowledgeUnits,
    KnowledgeUnitsStep,
    answer_mcq,
    mcq,
    retention_table,
    sections,
    units_facts,
)
from vloom.curate.generated.world_run import run_on_world
from vloom.synth.factcheck import Count, Mention, parse_facts, score_facts
from vloom.synth.world import Obj, Scene

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "generated"
SCENE = Scene(
    (Obj("red", "circle", "small", 0, 0.0, 0.0), Obj("blue", "square", "large", 3, 0.0, 0.0))
)
TEXT = (
    "There are two objects. At the top left there is a small red circle and at the bottom "
    "right there is a large blue square."
)


def _units(entities, relationships=()) -> KnowledgeUnits:
    return KnowledgeUnits.model_validate(
        {"entities": entities, "relationships": list(relationships)}
    )


FULL = _units(
    [
        {"name": "scene", "type": "scene", "attributes": {"object count": 2}},
        {
            "name": "red circle",
            "attributes": {"size": "small", "position": "top left"},
        },
        {
            "name": "object B",
            "attributes": {
                "colour": "blue",
                "shape": "square",
                "size": "large",
                "location": "bottom right",
            },
        },
    ],
    [{"subject": "red circle", "predicate": "above", "object": "blue square"}],
)


def _accuracy(facts) -> float:
    qs = mcq(SCENE, random.Random(0))
    return sum(answer_mcq(q, facts) == q.answer for q in qs) / len(qs)


def test_mcq_asks_every_field_of_every_object_and_the_count():
    qs = mcq(SCENE, random.Random(0))
    assert len(qs) == 3 * 2 + 1
    assert all(len(q.options) == 4 or q.field == "size" for q in qs)  # two sizes exist
    assert {q.options[q.answer] for q in qs if q.colour == "red"} == {
        "circle",
        "small",
        "top left",
    }


def test_units_that_hold_every_fact_retain_everything():
    facts = units_facts(FULL)
    assert Count(2) in facts
    assert Mention("red", "circle", "small", "top left") in facts
    assert Mention("blue", "square", "large", "bottom right") in facts
    assert _accuracy(parse_facts(TEXT)) == _accuracy(facts) == 1.0
    s = score_facts(facts, SCENE)
    assert s.true == s.stated  # the relation holds too


def test_units_without_sizes_or_with_a_wrong_place_retain_less():
    partial = _units(
        [
            {"name": "red circle", "attributes": {"position": "top left"}},
            {"name": "blue square", "attributes": {"position": "top right"}},  # wrong
        ]
    )
    acc = _accuracy(units_facts(partial))
    assert acc == 3 / 7  # red's shape and place, blue's shape; no sizes, no count
    s = score_facts(units_facts(partial), SCENE)
    assert (s.true, s.hallucinated) == (1, 1)  # top right is empty


def test_world_documents_cut_into_their_scene_sections():
    text = "Intro.\n\nScene 1. " + TEXT + " Scene 2. There is one object."
    assert [k for k, _ in sections(text, 1000)] == [1, 2]
    assert [k for k, _ in sections("One.\n\nTwo.", 1000)] == [1, 2]  # paragraphs otherwise
    assert len(sections("x " * 500, 100)[0][1]) <= 100


def test_json_mode_counts_every_section_a_small_model_fails(world_gen, tmp_path):
    table = run_on_world(
        "units",
        world_gen.world,
        tmp_path / "run",
        CONFIGS / "knowledge_units.yaml",
        n=4,
        generator={**world_gen.spec, "path": str(world_gen.ckpt)},
    )
    # a random model writes no JSON: every section is counted by its reason, no units kept
    gen = table["generation"]["units"]
    r = table["retention"]
    assert set(gen) <= {"invalid_json", "schema_mismatch", "context_overflow", "refused"}
    assert sum(gen.values()) == r["sections"] > 0
    assert table["kept"] == 0 and sum(table["dropped"].values()) == 4
    assert all(k.startswith("units_") for k in table["dropped"])
    assert r["acc_original"] == 1.0 and r["acc_units"] == 0.0 and r["retention"] == 0.0


def test_questions_mode_builds_validated_units_from_the_models_answers(world_gen):
    docs = world_documents(world_gen.world, "text-", 2)
    step = KnowledgeUnitsStep(world_gen.spec, mode="questions", max_new_tokens=6)
    kept, led = run_steps(docs, [step])
    stats = led.extra["step_stats"]["knowledge_units"]
    n_sections = sum(len(sections(d.text, 1200)) for d in docs)
    # one count question per section, a shape and a place question per object named
    n_objects = sum(
        len({m.colour for m in parse_facts(s) if isinstance(m, Mention) and m.colour})
        for d in docs
        for _, s in sections(d.text, 1200)
    )
    assert sum(stats["generation"]["read"].values()) == n_sections + 2 * n_objects
    assert len(kept) + sum(led.dropped.get("knowledge_units", {}).values()) == 2
    for d in kept:
        for row in d.metadata["knowledge_units"]:
            KnowledgeUnits.model_validate(row["units"])
    row = retention_table(stats)
    assert row["sections"] == n_sections and row["acc_original"] == 1.0
    assert 0.0 <= row["retention"] <= 1.0
