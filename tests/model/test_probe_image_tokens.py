"""scripts/probe_image_tokens.py: each object is read from the image token over its own cell."""

import sys

import numpy as np
import torch
from scriptmod import load_script

from vloom.config import ModelConfig
from vloom.model import VLM, save_model
from vloom.synth.world import BACKGROUND, COLOURS, Obj, Scene, render

CFG = ModelConfig(
    d_model=32,
    n_layers=2,
    n_heads=4,
    vision={"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2},
)


def _script():
    return load_script("scripts/probe_image_tokens.py")


def _model():
    torch.manual_seed(0)
    return VLM(CFG, vocab_size=50, max_seq_len=32, image_size=16).eval()


def test_cell_pixels_hold_the_object_of_that_cell_only():
    probe = _script()
    for cell in range(4):
        img = np.asarray(render(Scene((Obj("red", "square", "large", cell, 0, 0),)), 16))
        regions = probe.cell_pixels(img[None], 2)[0].reshape(4, -1, 3)
        for k in range(4):
            red = (np.abs(regions[k] - COLOURS["red"]).sum(-1) < 30).any()
            assert red == (k == cell)
            if k != cell:  # background, but for Lanczos ringing at the border
                assert (np.abs(regions[k] - BACKGROUND) < 30).all()


def test_features_put_a_cells_pixels_in_its_own_token():
    probe = _script()
    m = _model()
    px = np.full((2, 16, 16, 3), 70, np.uint8)
    px[1, 8:, :8] = 200  # bottom-left cell = cell 2 = token 2
    f = probe.features(m, px)
    assert {"vis.in", "conn.out (LM input)", "lm.L1", "lm.L2"} <= set(f)
    assert all(v.shape[:2] == (2, 4) for v in f.values())
    changed = np.abs(f["vis.in"][1] - f["vis.in"][0]).max(-1) > 1e-6  # before attention mixes
    assert changed.tolist() == [False, False, True, False]


def test_main_prints_a_row_per_stage(tmp_path, monkeypatch, capsys):
    save_model(_model(), tmp_path / "ck")
    argv = ["probe", "--checkpoint", str(tmp_path / "ck"), "--n", "40"]
    monkeypatch.setattr(sys, "argv", argv)
    _script().main()
    out = capsys.readouterr().out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("pixels", "vis.", "lm."))]
    assert [r[0] for r in rows][-2:] == ["lm.L1", "lm.L2"]
    assert all(0.0 <= float(v) <= 1.0 for r in rows for v in r[-8:])
