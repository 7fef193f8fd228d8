import io
import random
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from vloom.synth.evalsets import MULTI_FIGURES, multi_image_rows, world_qa_rows
from vloom.synth.language import QTYPES, asked_colour
from vloom.synth.world import CELLS, COLOURS, COUNT_WORDS, SHAPES, SIZES, sample_scene


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
        assert 2 <= sum(b is not None for b in r["images"]) <= MULTI_FIGURES


def _colour_cells(png: bytes) -> dict[str, int]:
    """What the pixels show: each palette colour drawn in the figure and the grid cell of its
    centre (every object of a scene has its own colour, so this also counts the objects)."""
    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    out = {}
    for name, rgb in COLOURS.items():
        ys, xs = np.nonzero(np.abs(a - np.array(rgb)).sum(-1) < 60)
        if len(ys) >= 6:
            out[name] = 2 * int(ys.mean() >= a.shape[0] / 2) + int(xs.mean() >= a.shape[1] / 2)
    return out


def _pixel_oracle(row: dict) -> int | None:
    """The answer read off the asked figure's pixels alone (None: shape, not read here)."""
    last = _colour_cells(row["images"][-1])  # the question follows the figure it asks about
    opts = row["options"]
    if row["qtype"] == "colour":
        return next(i for i, o in enumerate(opts) if o in last)
    if row["qtype"] == "count":
        return opts.index(COUNT_WORDS[len(last)])
    if row["qtype"] == "position":
        return opts.index(CELLS[last[asked_colour(row["question"])]])
    return None


def test_multi_image_answers_are_read_off_the_last_figure():
    """Every colour, count and place answer follows from the last figure's pixels (an oracle
    agrees on every row it reads); the question comes straight after that figure, each
    earlier figure keeps two solved questions; count answers are spread over the counts."""
    rng = random.Random(0)
    rows = multi_image_rows(lambda: sample_scene(rng, 3), 80, 32, rng)
    read = 0
    for r in rows:
        assert [t is None for t in r["texts"]] == [b is not None for b in r["images"]]
        figures = sum(b is not None for b in r["images"])
        assert 2 <= figures <= MULTI_FIGURES and r["images"][-1] is not None
        assert r["texts"][-2] == f"Figure {figures}."
        solved = [t for t in r["texts"] if t and t.startswith("Question:")]
        assert len(solved) == figures - 1 and all(t.count("Answer:") == 2 for t in solved)
        got = _pixel_oracle(r)
        if got is not None:
            assert got == r["answer"], r
            read += 1
    assert read == sum(r["qtype"] != "shape" for r in rows) > 0
    assert Counter(r["qtype"] for r in rows) == {qt: 20 for qt in QTYPES}
    counts = Counter(r["options"][r["answer"]] for r in rows if r["qtype"] == "count")
    assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 3


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
