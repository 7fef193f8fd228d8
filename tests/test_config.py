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


def _checkpoint(tmp_path, **model):
    """A checkpoint directory as far as config loading reads it: config.json's model section."""
    import json

    ck = tmp_path / "ckpt"
    ck.mkdir()
    section = config_from_dict({"model": model}).model.model_dump(mode="json")
    (ck / "config.json").write_text(json.dumps({"model": section, "step": 10}))
    return ck, section


def test_model_from_reads_the_checkpoints_architecture(tmp_path):
    ck, section = _checkpoint(tmp_path, d_model=64, n_heads=2, n_layers=3)
    cfg = config_from_dict({"model": {"from": str(ck)}, "train": {"init_from": str(ck)}})
    assert cfg.model.model_dump(mode="json") == section and cfg.model.d_model == 64
    with pytest.raises(ConfigError, match="remove model.d_model"):
        config_from_dict({"model": {"from": str(ck), "d_model": 64}})
    with pytest.raises(ConfigError, match="model.from: .*config.json not found"):
        config_from_dict({"model": {"from": str(tmp_path / "nowhere")}})


def test_init_from_never_replaces_the_model_section(tmp_path):
    """The user's model section stays what they wrote: a mismatch with the checkpoint is a
    one-line error naming the fields, an equal one passes, a torn config.json is named."""
    ck, section = _checkpoint(tmp_path, d_model=64, n_heads=2)
    same = config_from_dict({"model": section, "train": {"init_from": str(ck)}})
    assert same.model.d_model == 64
    with pytest.raises(ConfigError) as e:
        config_from_dict({"model": {"n_layers": 6}, "train": {"init_from": str(ck)}})
    msg = str(e.value)
    assert "\n" not in msg and "model.d_model (128 here, 64 there)" in msg
    assert "model.n_layers (6 here, 4 there)" in msg and f"model: {{from: {ck}}}" in msg
    (ck / "config.json").write_text('{"model": {"d_mo')
    with pytest.raises(ConfigError, match="corrupt JSON"):
        config_from_dict({"train": {"init_from": str(ck)}})
    # a checkpoint that is not there yet is the trainer's to name
    assert config_from_dict({"train": {"init_from": str(tmp_path / "later")}}).model.d_model == 128


def test_set_overrides_parse_as_yaml_and_nest():
    from vloom.config import nested_overrides, parse_overrides

    assert parse_overrides(["train.steps=100", "control=false", "eval.tasks=[vqa, text_qa]"]) == {
        "train.steps": 100,
        "control": False,
        "eval.tasks": ["vqa", "text_qa"],
    }
    assert nested_overrides(["train.lr=0.001", "train.steps=5"]) == {
        "train": {"lr": 0.001, "steps": 5}
    }
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["train.steps"])


def _sources(*extra: dict) -> dict:
    return {"sources": [{"name": "world", "kind": "synth"}, *extra]}


def test_data_section_rules_name_the_field():
    cfg = config_from_dict({"data": _sources({"name": "web", "kind": "html", "path": "/x"})})
    assert cfg.data.sources[1].paths == ["/x"] and cfg.data.synth.name == "world"
    assert config_from_dict({}).data is None  # no section: the world alone
    cases = [
        (_sources({"name": "world", "kind": "pdf", "path": "/x"}), r"sources\[1\]\.name: 'world'"),
        ({"sources": [{"name": "w", "kind": "synth", "path": "/x"}]}, "kind synth takes no paths"),
        (_sources({"name": "d", "kind": "documents"}), "kind documents needs path or paths"),
        (
            _sources({"name": "d", "kind": "documents", "path": "/x", "options": {"a": 1}}),
            "options are for ingest kinds",
        ),
        (_sources({"name": "x/y", "kind": "html", "path": "/x"}), r"sources\.1\.name"),
        (_sources({"name": "w2", "kind": "synth"}), "at most one source of kind synth"),
        (_sources({"name": "d", "kind": "html", "path": "/x", "weight": 0}), r"sources\.1\.weight"),
        ({"sources": []}, r"data\.sources"),
    ]
    for data, match in cases:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"data": data})


def test_data_without_the_world_refuses_world_eval_tasks_and_weights_with_a_mix_step():
    real = {"sources": [{"name": "web", "kind": "html", "path": "/x", "weight": 1}]}
    with pytest.raises(ConfigError, match="eval.tasks: vqa reads the synthetic world"):
        config_from_dict({"data": real, "eval": {"tasks": ["text_ppl", "vqa"]}})
    with pytest.raises(ConfigError, match="text_ppl needs held-out documents"):
        config_from_dict(
            {"data": {**real, "held_out_per_mille": 0}, "eval": {"tasks": ["text_ppl"]}}
        )
    with pytest.raises(ConfigError, match="eval.tasks: text_qa reads the synthetic world"):
        config_from_dict({"data": real, "eval": {"tasks": ["text_ppl", "text_qa:num_fewshot=2"]}})
    # the tasks run during training read the same eval sets: refused before training, too
    during = {"every": 10, "tasks": ["vqa"]}
    with pytest.raises(ConfigError, match="eval.during_training.tasks: vqa reads the synthetic"):
        config_from_dict({"data": real, "eval": {"tasks": ["text_ppl"], "during_training": during}})
    ok = config_from_dict({"data": real, "eval": {"tasks": ["text_ppl", "caption_loss"]}})
    assert ok.data.real[0].weight == 1
    with pytest.raises(ConfigError, match="a mix step and data.sources weights"):
        config_from_dict(
            {"data": real, "eval": {"tasks": ["text_ppl"]}, "curate": {"steps": [{"name": "mix"}]}}
        )
