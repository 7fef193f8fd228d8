import json
import random

import pytest

from vloom.evaluate.convert import (
    convert_open_to_mc,
    load_generator,
    open_mc_shift,
    true_of_scene,
    world_vocabulary,
)
from vloom.evaluate.metrics import normalize_answer
from vloom.synth.evalsets import vqa_open_rows
from vloom.synth.world import sample_scene


def _rows(n=40, seed=1):
    rng = random.Random(seed)
    return vqa_open_rows(lambda: sample_scene(rng, 3), n, 16, random.Random(seed + 1))


def test_converted_options_have_exactly_one_right_answer():
    rows = _rows()
    mc, stats = convert_open_to_mc(rows, 4, world_vocabulary, seed=3)
    assert len(mc) == len(rows) and stats["distractors_from_generator"] > 0
    for r in mc:
        assert len(r["options"]) == 4
        norms = [normalize_answer(o) for o in r["options"]]
        assert len(set(norms)) == 4  # distinct after normalisation
        right = [o for o in r["options"] if true_of_scene(r, o) or o in r["answers"]]
        assert right == [r["options"][r["answer"]]]
    # Deterministic given the seed.
    assert convert_open_to_mc(rows, 4, world_vocabulary, seed=3)[0] == mc


def test_true_of_scene_reads_the_scene():
    row = {
        "qtype": "shape",
        "question": "What shape is the red object?",
        "scene": json.dumps(
            [
                {"colour": "red", "shape": "circle", "size": "small", "cell": "top left"},
                {"colour": "blue", "shape": "square", "size": "large", "cell": "top right"},
            ]
        ),
    }
    assert true_of_scene(row, "circle") and not true_of_scene(row, "square")
    assert true_of_scene({**row, "qtype": "colour"}, "blue")
    assert true_of_scene({**row, "qtype": "count"}, "two")
    assert not true_of_scene({**row, "qtype": "position"}, "top right")


def test_without_enough_distractors_questions_are_dropped_and_counted():
    rows = _rows(8)
    mc, stats = convert_open_to_mc(rows, 4, None)  # only the set's own answers: too few
    assert stats.get("too_few_distinct_distractors", 0) == len(rows) - len(mc) > 0


def test_a_pluggable_generator_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_distractors.py").write_text(
        "def propose(row, k, rng):\n"
        "    # duplicates and a right answer in other spellings: all must be skipped\n"
        "    return ['Purple.', 'purple', 'ORANGE', row['answers'][0].upper(), 'black', 'pink']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [r for r in _rows() if r["qtype"] == "colour" and "purple" not in r["answers"]]
    mc, stats = convert_open_to_mc(rows, 4, "my_distractors:propose")
    for r in mc:
        wrong = sorted(o for i, o in enumerate(r["options"]) if i != r["answer"])
        assert wrong == ["ORANGE", "Purple.", "black"]
    assert stats["distractors_from_generator"] == 3 * len(mc)
    with pytest.raises(ValueError, match="expected 'module:function'"):
        load_generator("my_distractors.propose")
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_generator("my_distractors:nope")


def test_shift_between_open_and_mc():
    shift = open_mc_shift(
        {"accuracy": 0.25, "accuracy_shape": 0.5},
        {"accuracy": 0.75, "accuracy_shape": 1.0, "accuracy_count": 1.0},
    )
    assert shift == {"shift_from_open": 0.5, "shift_from_open_shape": 0.5}
