"""scripts/probe_text_binding.py: trains a tiny LM on the world's text and scores text_qa."""

import torch
from scriptmod import load_script


def _script():
    return load_script("scripts/probe_text_binding.py")


def test_quiz_documents_ask_every_objects_shape_and_place_after_its_scene():
    probe = _script()
    text = probe.build_texts(1, 2, seed=0, variant="quiz")[0]
    for para in text.split("\n\n"):
        n = para.count(" there is a ")
        assert para.count("What shape is the") == n and para.count("Where is the") == n


def test_a_tiny_run_scores_every_type_and_leaves_torch_as_it_found_it():
    probe = _script()
    threads = torch.get_num_threads()
    out = probe.main(
        [
            "--steps",
            "3",
            "--n-text",
            "30",
            "--eval-n",
            "8",
            "--eval-every",
            "3",
            "--d-model",
            "32",
            "--n-layers",
            "1",
            "--seq",
            "64",
            "--batch",
            "2",
        ]
    )
    for q in ("colour", "shape", "count", "position"):
        assert 0.0 <= out[f"accuracy_{q}"] <= 1.0 and out[f"nll_{q}"] > 0
    assert -1.0 <= out["cos_shape"] <= 1.0
    assert torch.get_num_threads() == threads


def test_variants_say_each_objects_place_after_its_colour_and_eval_scenes_bind():
    probe = _script()
    for variant in ("bind", "colourfirst", "colourfirst_any"):
        rows = probe.eval_rows(12, seed=0, variant=variant)
        for r in rows:
            assert r["scene"].count >= 2  # as text_qa: one-object scenes are all trained on
            for o in r["scene"].objects:
                place = probe.CELLS[o.cell]
                assert f"{o.colour} {o.shape} is at the {place}" in r["context"], variant
    # the error breakdown reads wrong picks against the scene: all right -> accuracy 1
    rows = probe.eval_rows(40, seed=0, variant="bind")
    out = probe.binding_errors(rows, [r["qa"].answer_index for r in rows])
    assert out and all(v == 1.0 for k, v in out.items() if k.startswith("acc_"))


def test_legend_puts_each_objects_place_right_after_its_colour():
    probe = _script()
    for r in probe.eval_rows(12, seed=0, variant="legend"):
        legend = r["context"].split("By colour: ")[1].split(".")[0]
        for o in r["scene"].objects:
            assert f"{o.colour} {probe.CELLS[o.cell]}" in legend
        assert legend.count(" ") >= 2 * r["scene"].count - 1  # every object, none twice


def test_named_variant_says_each_place_in_the_answers_own_sentence():
    probe = _script()
    for r in probe.eval_rows(12, seed=0, variant="named"):
        for o in r["scene"].objects:
            said = f"The {o.colour} object is at the {probe.CELLS[o.cell]}."
            assert r["context"].count(said) == 1
        if r["qa"].qtype == "position":  # the scored answer is one of those sentences
            assert r["qa"].answer_text() in r["context"]
