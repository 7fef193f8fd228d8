"""A checkpoint on disk is whole or refused: torn config, a save that fails midway."""

from pathlib import Path

import pytest
import torch

from vloom.config import ModelConfig
from vloom.model import VLM, load_model, save_model

CFG = ModelConfig(
    d_model=32,
    n_layers=1,
    n_heads=2,
    vision={"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 4, "merge": 2},
)


def _model(d_model=32, seed=0):
    torch.manual_seed(seed)
    return VLM(CFG.model_copy(update={"d_model": d_model}), 50, 32, 16)


def test_a_torn_config_is_a_one_line_error_naming_the_file(tmp_path):
    save_model(_model(), tmp_path / "ck")
    cfg = tmp_path / "ck" / "config.json"
    cfg.write_bytes(cfg.read_bytes()[:40])  # killed mid-write
    with pytest.raises(ValueError, match="config.json: corrupt JSON") as e:
        load_model(tmp_path / "ck")
    assert "\n" not in str(e.value)


def test_a_save_killed_midway_leaves_no_checkpoint_that_loads_as_a_mix(tmp_path, monkeypatch):
    import vloom.model.io as io

    ck = tmp_path / "ck"
    save_model(_model(), ck)
    real = io.save_file

    def killed_while_writing(tensors, path):  # half the file is on disk when the kill comes
        real(tensors, path)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "save_file", killed_while_writing)
    with pytest.raises(KeyboardInterrupt):
        save_model(_model(d_model=64), ck)
    monkeypatch.setattr(io, "save_file", real)
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_model(ck)  # refused as incomplete, not half a file under the old config
    assert sorted(p.name for p in ck.iterdir()) == ["model.safetensors"]  # no temp left
    save_model(_model(d_model=64), ck)
    assert load_model(ck).cfg.d_model == 64
