"""RL rewards are exact on the world's answers, plug-ins load and bad ones are counted skips;
RL prompts are training scenes, never held-out ones, and a function of their seed."""

import json

import pyarrow.parquet as pq
import pytest

from vloom.rl.prompts import make_rows
from vloom.rl.rewards import exact, load_reward, score
from vloom.synth.evalsets import scene_json
from vloom.synth.instructions import training_scenes
from vloom.synth.world import COUNT_WORDS

QTYPES = ["colour", "shape", "count", "position", "count_sum", "pointing"]


@pytest.fixture(scope="module")
def rows(tiny_data):
    return make_rows(tiny_data["synth"], QTYPES, 48, seed=3)


def test_exact_reward_on_world_answers(rows):
    for r in rows:
        right = r["template"].format(r["answers"][0])
        if r["qtype"] == "pointing":  # right anywhere inside the object's cell
            x, y = (int(v) for v in r["answers"][0].strip("()").split(", "))
            assert exact(r, right) == exact(r, f"It is at ({x + 20}, {y - 20}).") == 1.0
            assert exact(r, f"({100 - x}, {y})") == exact(r, "somewhere") == 0.0
            continue
        assert exact(r, right) == 1.0, r
        assert exact(r, r["answers"][0]) == 1.0  # the bare short answer, as vqa_open accepts
        assert exact(r, right.upper() + ".") == 1.0  # normalised: case and punctuation
        assert exact(r, "") == 0.0
    by_type = {r["qtype"]: r for r in rows}
    count = by_type["count"]
    n = len(json.loads(count["scene"]))
    wrong = COUNT_WORDS[n % 4 + 1]
    assert exact(count, f"The number of objects is {wrong}.") == 0.0
    s = by_type["count_sum"]  # arithmetic over two figures' counts
    total = sum(len(figure) for figure in json.loads(s["scene"]))
    assert s["answers"] == [COUNT_WORDS[total]] and len(s["images"]) == 2
    colour = by_type["colour"]  # any colour present is right
    for c in {o["colour"] for o in json.loads(colour["scene"])}:
        assert exact(colour, f"There is a {c} object.") == 1.0


def test_prompts_are_training_scenes_never_held_out(tiny_data, rows):
    held = pq.read_table(tiny_data["eval"] / "vqa_open.parquet").column("scene").to_pylist()

    def key(objs):
        return tuple(sorted((o["colour"], o["shape"], o["size"], o["cell"]) for o in objs))

    held_keys = {key(json.loads(s)) for s in held}
    train, _ = training_scenes(tiny_data["synth"])  # the scenes the corpus surely drew
    train_keys = {key(json.loads(scene_json(s))) for s in train}
    for r in rows:
        scene = json.loads(r["scene"])
        figures = scene if r["qtype"] == "count_sum" else [scene]
        for f in figures:
            assert key(f) in train_keys and key(f) not in held_keys
    again = make_rows(tiny_data["synth"], QTYPES, 48, 3)
    assert [r["question"] for r in again] == [r["question"] for r in rows]
    assert [r["images"] for r in again] == [r["images"] for r in rows]
    other = make_rows(tiny_data["synth"], ["shape"], 48, seed=4)
    assert [r["scene"] for r in other] != [r["scene"] for r in rows if r["qtype"] == "shape"]


def test_reward_plugins_load_and_bad_ones_are_counted(tmp_path, monkeypatch, rows):
    (tmp_path / "my_rewards.py").write_text(
        "def length(row, response):\n"
        "    return float(len(response))\n"
        "def boom(row, response):\n"
        "    if 'x' in response:\n"
        "        raise KeyError('x')\n"
        "    return 1.0\n"
        "def words(row, response):\n"
        "    return 'nan' if response else float('nan')\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_reward("exact") is exact
    length = load_reward("my_rewards:length")
    got, skips = score(length, "length", rows[:2], ["ab", "abc"])
    assert got == [2.0, 3.0] and not skips
    boom = load_reward("my_rewards:boom")
    got, skips = score(boom, "boom", rows[:3], ["x", "y", "xx"])
    assert got == [None, 1.0, None] and skips == {"boom:KeyError": 2}
    words = load_reward("my_rewards:words")
    got, skips = score(words, "words", rows[:2], ["a", ""])
    assert got == [None, None] and skips == {"words:not_a_number": 2}
    for bad in ("nosuch", "my_rewards:missing", "no_such_module_xyz:f", "my_rewards:NOT_CALLABLE"):
        with pytest.raises(ValueError, match="rl.reward"):
            load_reward(bad)
