import hashlib
import json
import random
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from vloom.evaluate.convert import (
    Distractors,
    ProposalsOnly,
    convert_open_to_mc,
    load_distractors,
    open_mc_shift,
)
from vloom.evaluate.metrics import normalize_answer
from vloom.evaluate.tasks import get_task
from vloom.evaluate.tasks.vqa_mc_converted import pick_distractors
from vloom.ondisk import DISTRACTORS_KEY
from vloom.synth.answers import NAME, WORLD
from vloom.synth.evalsets import vqa_open_rows
from vloom.synth.language import POSITION_QUESTION, SHAPE_QUESTION, asked_colour
from vloom.synth.world import COLOURS, sample_scene


def _rows(n=40, seed=1):
    rng = random.Random(seed)
    return vqa_open_rows(lambda: sample_scene(rng, 3), n, 16, random.Random(seed + 1))


def _digest(mc):
    blob = json.dumps([[r["id"], r["options"], r["answer"]] for r in mc]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def test_converted_options_have_exactly_one_right_answer():
    rows = _rows()
    mc, stats = convert_open_to_mc(rows, 4, WORLD, seed=3)
    assert len(mc) == len(rows) and stats["distractors_from_generator"] > 0
    for r in mc:
        assert len(r["options"]) == 4
        norms = [normalize_answer(o) for o in r["options"]]
        assert len(set(norms)) == 4  # distinct after normalisation
        right = [o for o in r["options"] if WORLD.also_right(r, o) or o in r["answers"]]
        assert right == [r["options"][r["answer"]]]
    # Deterministic given the seed.
    assert convert_open_to_mc(rows, 4, WORLD, seed=3)[0] == mc


def test_world_plugin_converts_exactly_as_before_the_seam_moved():
    # Digests of (id, options, answer) from the converter that imported the world itself
    # (before the plug-in moved to vloom.synth.answers): the same rows, options and order.
    rows = _rows(60)
    for k, want in ((3, "6a4ba1d06d8222b8"), (4, "632dc77f96146979")):
        mc, stats = convert_open_to_mc(rows, k, WORLD, seed=3)
        assert _digest(mc) == want and stats == {"distractors_from_generator": 60 * (k - 1)}


def test_the_converter_imports_no_world():
    code = "import sys, vloom.evaluate.convert; print(any('synth' in m for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_world_truth_reads_the_scene():
    row = {
        "qtype": "shape",
        "question": SHAPE_QUESTION.format("red"),
        "scene": json.dumps(
            [
                {"colour": "red", "shape": "circle", "size": "small", "cell": "top left"},
                {"colour": "blue", "shape": "square", "size": "large", "cell": "top right"},
            ]
        ),
    }
    assert WORLD.also_right(row, "circle") and not WORLD.also_right(row, "square")
    assert WORLD.also_right({**row, "qtype": "colour"}, "blue")
    assert WORLD.also_right({**row, "qtype": "count"}, "two")
    pos = {**row, "qtype": "position", "question": POSITION_QUESTION.format("red")}
    assert WORLD.also_right(pos, "top left") and not WORLD.also_right(pos, "top right")
    assert not WORLD.also_right({k: v for k, v in row.items() if k != "scene"}, "circle")


def test_question_wording_reads_back_every_colour():
    for c in COLOURS:
        assert asked_colour(SHAPE_QUESTION.format(c)) == c
        assert asked_colour(POSITION_QUESTION.format(c)) == c
    assert asked_colour("How many objects are there?") is None
    assert asked_colour("Where is the") is None


def test_without_a_plugin_questions_short_of_distractors_are_dropped_and_counted():
    rows = _rows(8)
    mc, stats = convert_open_to_mc(rows, 4, None)  # only the set's own answers: too few
    assert stats.get("too_few_distinct_distractors", 0) == len(rows) - len(mc) > 0
    with pytest.raises(ValueError, match="num_options"):
        convert_open_to_mc(rows, 1, WORLD)


def test_a_pluggable_generator_by_module_path(tmp_path, monkeypatch):
    (tmp_path / "my_distractors.py").write_text(
        "def propose(row, k, rng):\n"
        "    # duplicates and a right answer in other spellings: all must be skipped\n"
        "    return ['Purple.', 'purple', 'ORANGE', row['answers'][0].upper(), 'black', 'pink']\n"
        "class Vouching:\n"
        "    def propose(self, row, k, rng):\n"
        "        return ['ORANGE', 'black', 'pink', 'grey']\n"
        "    def also_right(self, row, option):\n"
        "        return option == 'black'  # a right answer the row does not list\n"
        "PLUGIN = Vouching()\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [r for r in _rows() if r["qtype"] == "colour" and "purple" not in r["answers"]]
    assert isinstance(load_distractors("my_distractors:propose"), ProposalsOnly)
    mc, stats = convert_open_to_mc(rows, 4, "my_distractors:propose")
    for r in mc:
        wrong = sorted(o for i, o in enumerate(r["options"]) if i != r["answer"])
        assert wrong == ["ORANGE", "Purple.", "black"]
    assert stats["distractors_from_generator"] == 3 * len(mc)
    plugin = load_distractors("my_distractors:PLUGIN")
    assert isinstance(plugin, Distractors) and not isinstance(plugin, ProposalsOnly)
    mc, _ = convert_open_to_mc(rows, 4, plugin)
    for r in mc:  # the vouched-for option never stands as a wrong one
        assert sorted(o for i, o in enumerate(r["options"]) if i != r["answer"]) == [
            "ORANGE",
            "grey",
            "pink",
        ]
    assert load_distractors(NAME) is not None  # registered by the task that uses it
    with pytest.raises(ValueError, match="expected a registered name"):
        load_distractors("my_distractors.propose")
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_distractors("my_distractors:nope")
    with pytest.raises(ValueError, match="neither a plug-in nor callable"):
        load_distractors("my_distractors:NOT_CALLABLE")


def _with_meta(src, dst, meta, drop=()):
    t = pq.read_table(src)
    t = t.drop_columns(list(drop)).replace_schema_metadata(meta)
    pq.write_table(t, dst)
    return dst


def test_a_data_file_names_its_plugin_but_never_code(tiny_data, tmp_path):
    src = tiny_data["eval"] / "vqa_open.parquet"
    assert pq.read_schema(src).metadata[DISTRACTORS_KEY.encode()] == NAME.encode()
    rows = pq.read_table(src).to_pylist()
    assert pick_distractors("auto", src, rows) is WORLD
    assert pick_distractors("none", src, rows) is None
    bare = _with_meta(src, tmp_path / "bare.parquet", None, drop=["scene"])
    assert pick_distractors("auto", bare, pq.read_table(bare).to_pylist()) is None
    # A file may only name a registered plug-in: a module path is refused, nothing imported.
    for evil in ("os:system", "antigravity:geohash", "no-such-plugin"):
        f = _with_meta(src, tmp_path / "evil.parquet", {DISTRACTORS_KEY: evil})
        with pytest.raises(ValueError, match=r"evil\.parquet: unknown distractors"):
            pick_distractors("auto", f, rows)
    assert "antigravity" not in sys.modules


def test_the_task_picks_the_world_plugin_for_world_sets(rand_ctx, tiny_data, tmp_path):
    from dataclasses import replace

    src = tiny_data["eval"] / "vqa_open.parquet"
    task = get_task("vqa_mc_converted")
    named = task(rand_ctx)
    assert named == task(rand_ctx, distractors=NAME) and named["dropped"] == 0
    # A world file written before files named their plug-in: recognised by its scenes.
    (tmp_path / "old").mkdir()
    _with_meta(src, tmp_path / "old" / "vqa_open.parquet", None)
    assert task(replace(rand_ctx, data_dir=tmp_path / "old")) == named
    # No plug-in: only the set's own answer space, and questions short of options dropped.
    (tmp_path / "plain").mkdir()
    _with_meta(src, tmp_path / "plain" / "vqa_open.parquet", None, drop=["scene"])
    plain = task(replace(rand_ctx, data_dir=tmp_path / "plain"))
    assert plain["distractors_from_generator"] == 0 and plain["dropped"] > 0
    assert plain == task(rand_ctx, distractors="none")


def test_shift_between_open_and_mc():
    shift = open_mc_shift(
        {"accuracy": 0.25, "accuracy_shape": 0.5},
        {"accuracy": 0.75, "accuracy_shape": 1.0, "accuracy_count": 1.0},
    )
    assert shift == {"shift_from_open": 0.5, "shift_from_open_shape": 0.5}
