"""scripts/probe_lookups.py: each lookup asks the world's sentence and ranks the scene's own
values, the right one among them."""

import sys

import torch
from scriptmod import load_script
from tinyexp import tiny_config

from vloom.model import VLM, save_model
from vloom.sequence import load_tokenizer
from vloom.synth.world import Obj, Scene


def _script():
    return load_script("scripts/probe_lookups.py")


def test_each_lookup_names_its_key_and_continues_with_its_attribute():
    probe = _script()
    red = Obj("red", "circle", "small", 0, 0, 0)
    blue = Obj("blue", "square", "large", 3, 0, 0)
    s = Scene((red, blue))
    want = {
        "colour -> place": (
            "The blue object is at the",
            "bottom right",
            ["top left", "bottom right"],
        ),
        "colour -> shape": ("The blue object is a", "square", ["circle", "square"]),
        "place -> colour": (
            "In this picture, at the bottom right there is a large",
            "blue",
            ["red", "blue"],
        ),
        "place -> shape": (
            "In this picture, at the bottom right there is a large blue",
            "square",
            ["circle", "square"],
        ),
    }
    assert set(want) == set(probe.LOOKUPS)
    for kind, (text, answer, opts) in want.items():
        assert probe.prompt(kind, blue) == (text, answer)
        assert probe.values(kind, s) == opts


def test_scenes_have_two_objects_or_more_and_leave_out_the_seen_ones():
    probe = _script()
    first = probe.scenes(40, 0, set())
    assert all(s.count >= 2 and o in s.objects for s, o in first)
    seen = {s.key() for s, _ in first[:20]}
    again = probe.scenes(40, 0, seen)
    assert not {s.key() for s, _ in again} & seen
    assert [s.key() for s, _ in again][:5] != [s.key() for s, _ in first][:5]


def test_main_prints_every_lookup_for_two_and_three_objects(
    tiny_data, tmp_path, monkeypatch, capsys
):
    cfg = tiny_config()
    tok_path = tiny_data["packed"] / "tokenizer.json"
    torch.manual_seed(0)
    m = VLM(
        cfg.model,
        vocab_size=load_tokenizer(tok_path).get_vocab_size(),
        max_seq_len=cfg.pack.seq_len,
        image_size=cfg.pack.image_size,
    ).eval()
    save_model(m, tmp_path / "ck")
    argv = ["probe", "--checkpoint", str(tmp_path / "ck"), "--tokenizer", str(tok_path)]
    argv += ["--synth", str(tiny_data["synth"])]
    monkeypatch.setattr(sys, "argv", argv + ["--n", "30", "--one", "12"])
    _script().main()
    rows = [ln.split(" ") for ln in capsys.readouterr().out.splitlines()[1:]]
    rows = [[w for w in r if w] for r in rows]
    got = {(" ".join(r[:3]), int(r[3])): (float(r[4]), float(r[5]), int(r[6])) for r in rows}
    probe = _script()
    assert {k for k, _ in got} == set(probe.LOOKUPS)
    assert {c for _, c in got} == {1, 2, 3}
    for kind in probe.LOOKUPS:
        assert got[(kind, 2)][2] + got[(kind, 3)][2] == 30  # every scene asked every lookup
    # one-object scenes: the colour-keyed lookups only, among all four places or shapes
    assert {k for k, c in got if c == 1} == set(probe.LOOKUPS[:2])
    assert all(got[(k, 1)][1:] == (0.25, 12) for k in probe.LOOKUPS[:2])
    for acc, chance, _ in got.values():
        assert 0.0 <= acc <= 1.0 and chance in (0.25, 0.5, 0.333)


def test_one_object_scenes_rank_every_place_and_shape():
    probe = _script()
    got = probe.one_object_scenes(20, 0)
    assert len(got) == 20 and all(s.count == 1 and s.objects == (o,) for s, o in got)
    s, o = got[0]
    assert probe.values("colour -> place", s) == list(probe.CELLS)
    assert probe.values("colour -> shape", s) == list(probe.SHAPES)
    assert o.shape in probe.values("colour -> shape", s)
