from pathlib import Path

import pytest

from vloom.config import ConfigError, ExperimentConfig, config_from_dict, load_config

# Study files (`vloom sweep`: a top-level `grid:` or `variants:`) are checked in tests/sweep.
CONFIGS = sorted(
    p
    for p in Path(__file__).resolve().parents[1].glob("configs/*.yaml")
    if not any(f"\n{k}:" in "\n" + p.read_text() for k in ("grid", "variants"))
)


def test_there_are_example_configs():
    assert any(p.name == "demo.yaml" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_parses(path):
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.pack.image_size % (cfg.model.vision.patch_size * cfg.model.vision.merge) == 0


def test_unknown_key_names_file_and_field(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: train\.stepz: unknown key"):
        load_config(p)


def test_wrong_type_and_range_are_errors():
    with pytest.raises(ConfigError, match="train.steps"):
        config_from_dict({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match="image_start_fraction"):
        config_from_dict({"train": {"image_start_fraction": 1.5}})
    with pytest.raises(ConfigError, match="fractions sum to 0.5"):
        config_from_dict({"train": {"stages": [{"fraction": 0.5}]}})
    with pytest.raises(ConfigError, match="not divisible by n_heads"):
        config_from_dict({"model": {"d_model": 30, "n_heads": 4}})
    with pytest.raises(ConfigError, match="trainable"):
        config_from_dict({"train": {"stages": [{"trainable": ["eyes"]}]}})


def test_missing_file_and_overrides(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "ok.yaml"
    p.write_text("name: x\n")
    cfg = load_config(p, {"train.steps": 7, "control": False})
    assert cfg.train.steps == 7 and cfg.name == "x" and cfg.control is False
