"""Back-translation: instruction/response clean-up and world checks on hand-made pairs, the
step on the tiny world with a real (random) tiny checkpoint, and its pairs read back by the
SFT readers (OpenAI-messages JSONL and documents)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vloom.chat.conversation import Conversation
from vloom.chat.readers import read_chat_file, read_document_conversations
from vloom.curate.generated.backtranslate import (
    BackTranslate,
    answers,
    clean_instruction,
    clean_response,
    fit,
    write_openai_jsonl,
)
from vloom.curate.generated.world_run import run_on_world
from vloom.doc import Document, read_documents, write_documents
from vloom.synth.evalsets import scene_json
from vloom.synth.world import Obj, Scene, png_bytes, render

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "generated" / "backtranslate.yaml"
SCENE = Scene(
    (Obj("red", "circle", "small", 0, 0.0, 0.0), Obj("blue", "square", "large", 3, 0.0, 0.0))
)


def test_instructions_and_responses_are_cut_to_one_turn():
    raw = "Question: What shape is the red object? Answer: The red object is a circle."
    assert clean_instruction(raw) == "What shape is the red object?"
    assert clean_instruction("Describe the picture.\nMore text") == "Describe the picture."
    assert clean_response("The red object is a circle. Question: Where is it?") == (
        "The red object is a circle."
    )


@pytest.mark.parametrize(
    "instruction, response, verdict",
    [
        ("What shape is the red object?", "The red object is a circle.", "right"),
        ("What shape is the red object?", "The red object is a square.", "wrong"),
        ("What shape is the red object?", "It is nice.", "wrong"),  # no answer at all
        ("Where is the blue object?", "The blue object is at the bottom right.", "right"),
        ("How many objects are there?", "The number of objects is three.", "wrong"),
        ("Which colour can be seen in the picture?", "There is a blue object.", "right"),
        ("Tell me a story.", "The red object is a circle.", "other"),
    ],
)
def test_world_questions_are_checked_against_the_scene(instruction, response, verdict):
    assert answers(instruction, response, [SCENE]) == verdict


def test_a_response_that_contradicts_the_world_is_dropped(world_gen):
    step = BackTranslate(world_gen.spec)
    doc = Document.from_items("d", ["x"], metadata={"scene": scene_json(SCENE)})
    assert step._judge(doc, "What shape is the red object?", "The red object is a circle.")
    assert not step._judge(doc, "What shape is the red object?", "The red object is a square.")
    assert step.tally["pairs"] == {"scored": 2, "contradicts_world": 1}
    assert step.tally["instructions"] == {"shape": 2}
    assert step.tally["answers"] == {"right": 1, "wrong": 1}


def _pair_doc() -> Document:
    img = png_bytes(render(SCENE, 32))
    return Document.from_items(
        "pair-1",
        [img, "What shape is the red object?", "The red object is a circle."],
        metadata={
            "conversation": [
                {"role": "user", "text": "What shape is the red object?"},
                {"role": "assistant", "text": "The red object is a circle."},
            ]
        },
    )


def test_pairs_read_back_as_conversations_from_jsonl_and_from_documents(tmp_path):
    doc = _pair_doc()
    assert write_openai_jsonl([doc], tmp_path / "pairs.jsonl") == 1
    write_documents(tmp_path / "docs", [doc])
    for got in (
        list(read_chat_file(tmp_path / "pairs.jsonl")),
        list(read_document_conversations(tmp_path / "docs")),
    ):
        assert len(got) == 1 and isinstance(got[0], Conversation), got
        user, assistant = got[0].turns
        assert user.role == "user" and user.parts[0] == doc.images[0]
        assert user.parts[-1] == "What shape is the red object?"
        assert assistant.parts == ("The red object is a circle.",)


def test_backtranslate_on_the_world_end_to_end(world_gen, tmp_path):
    # the config's prompts and limits, but one word makes an instruction (a random model's
    # lines are short) so that some pairs get through to the response and the world check
    table = run_on_world(
        "backtranslate",
        world_gen.world,
        tmp_path / "run",
        CONFIG,
        n=8,
        generator=world_gen.spec,
        params={"min_words": 1, "max_new_tokens": 12},
    )
    gen = table["generation"]
    assert sum(gen["instruction"].values()) == 8  # every document asked once
    # a response is asked only for the documents whose instruction was valid
    n_resp = sum(gen.get("response", {}).values())
    valid = 8 - sum(v for k, v in table["dropped"].items() if k.startswith("instruction_"))
    assert n_resp == valid
    assert table["kept"] + sum(table["dropped"].values()) == 8
    known = ("instruction_", "response_")
    assert all(k.startswith(known) for k in table["dropped"]), table["dropped"]
    kept = list(read_documents(tmp_path / "run" / "curated"))
    assert table["pairs"]["jsonl_rows"] == len(kept) == table["kept"]
    convs = list(read_chat_file(tmp_path / "run" / "pairs.jsonl"))
    assert all(isinstance(c, Conversation) for c in convs) and len(convs) == len(kept)


def test_the_densest_run_of_paragraphs_that_fits_is_shown():
    doc = "Intro of forty characters, more or less.\n\nScene 1. " + "x " * 100 + "\n\nEnd."
    assert fit(doc, 220).startswith("Scene 1.")  # not the intro alone
    assert fit("a b c d e f", 5) == "a b c"  # nothing fits: cut at a word
    assert fit("One.\n\nTwo.", 100) == "One.\n\nTwo."
