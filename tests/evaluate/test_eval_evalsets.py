import random

import pyarrow.parquet as pq

from vloom.synth.evalsets import _multi_question, world_qa_rows
from vloom.synth.world import CELLS, COLOURS, SHAPES, SIZES, sample_scene


def test_synth_writes_the_new_eval_sets(tiny_data):
    import json

    ev = tiny_data["eval"]
    man = json.loads((tiny_data["synth"] / "manifest.json").read_text())["eval"]
    for name in ("vqa_open", "caption_refs", "multi_image", "world_qa"):
        assert pq.read_table(ev / f"{name}.parquet").num_rows == man[name] > 0
    for r in pq.read_table(ev / "vqa_open.parquet").to_pylist():
        assert r["answers"] and r["template"].count("{}") == 1
    for r in pq.read_table(ev / "multi_image.parquet").to_pylist():
        assert [t is None for t in r["texts"]] == [b is not None for b in r["images"]]
        assert sum(b is not None for b in r["images"]) == 2


def test_multi_image_answer_is_right_for_the_scenes():
    rng = random.Random(0)
    seen = set()
    for _ in range(200):
        a, b = sample_scene(rng, 3), sample_scene(rng, 3)
        got = _multi_question(a, b, rng)
        if got is None:
            assert {(o.colour, o.shape) for o in a.objects} == {
                (o.colour, o.shape) for o in b.objects
            } or a.count == b.count
            continue
        qtype, q, template, ans = got
        seen.add(qtype)
        pair = (a, b)
        if qtype == "find":
            colour, shape = q.split("shows the ")[1].split(",")[0].split()
            has = [any((o.colour, o.shape) == (colour, shape) for o in s.objects) for s in pair]
            assert has[ans] and not has[1 - ans]
        else:
            assert pair[ans].count > pair[1 - ans].count
    assert seen == {"find", "count"}


def test_world_qa_right_option_plays_the_asked_role_and_each_distractor_another():
    roles = {
        "colour": set(COLOURS),
        "shape": set(SHAPES),
        "size": set(SIZES),
        "position": set(CELLS),
    }
    rows = world_qa_rows(40, random.Random(0))
    assert {r["qtype"] for r in rows} == set(roles)
    for r in rows:
        assert len(r["options"]) == 4 and r["options"][r["answer"]] in roles[r["qtype"]]
        others = [o for i, o in enumerate(r["options"]) if i != r["answer"]]
        # one word of each other role: every option is a word the training text uses
        assert sorted(next(k for k, w in roles.items() if o in w) for o in others) == sorted(
            set(roles) - {r["qtype"]}
        )
        assert r["template"].count("{}") == 1
