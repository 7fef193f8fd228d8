"""model.vision.init: local SigLIP / CLIP towers load into vloom's encoder with transformers'
features; the pixel-shuffle connector; frozen towers; one-line errors for bad towers."""

import json

import pytest
import torch

pytest.importorskip(
    "transformers", reason="transformers is an optional extra: pip install 'vloom[hf]'"
)
from transformers import (  # noqa: E402
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from vloom.config import ConfigError, ModelConfig, check_model_dirs, config_from_dict  # noqa: E402
from vloom.model.hf_vision import load_tower  # noqa: E402
from vloom.model.tower_config import MEAN_STD  # noqa: E402
from vloom.model.vision import VisionEncoder  # noqa: E402
from vloom.model.vlm import VLM, make_targets  # noqa: E402
from vloom.sequence import IMAGE_ID  # noqa: E402

TOWER = dict(
    hidden_size=32,
    intermediate_size=48,  # not 4 x hidden: the width comes from the tower
    num_hidden_layers=3,
    num_attention_heads=4,
    image_size=16,
    patch_size=4,
)
TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
CLIP_MEAN, CLIP_STD = [0.4, 0.45, 0.5], [0.2, 0.25, 0.3]  # not the defaults: read from the file


def _noisy(model):
    """Off the init (unit LayerNorms, zero biases), so a misplaced weight shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _save(kind: str, path, **tower):
    t = TOWER | tower
    if kind == "siglip_vision":
        m = SiglipVisionModel(SiglipVisionConfig(**t))
    elif kind == "siglip_full":
        m = SiglipModel(SiglipConfig(vision_config=t, text_config=TEXT | {"vocab_size": 64}))
    elif kind == "clip_vision":
        m = CLIPVisionModel(CLIPVisionConfig(**t))
    else:
        m = CLIPModel(CLIPConfig(vision_config=t, text_config=TEXT | {"vocab_size": 64}))
    _noisy(m).save_pretrained(str(path))
    if kind.startswith("clip"):  # a processor file with its own statistics
        CLIPImageProcessor(image_mean=CLIP_MEAN, image_std=CLIP_STD).save_pretrained(str(path))
    return m


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    out = {}
    for kind in ("siglip_vision", "siglip_full", "clip_vision", "clip_full"):
        out[kind] = (root / kind, _save(kind, root / kind))
    return out


def _images(n=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=g)


def _pixel_values(tower_dir, kind, images):
    """transformers' own preprocessing of the same uint8 pixels (already the tower's size)."""
    proc = (
        (CLIPImageProcessor if kind.startswith("clip") else SiglipImageProcessor).from_pretrained(
            str(tower_dir)
        )
        if (tower_dir / "preprocessor_config.json").exists()
        else SiglipImageProcessor()
    )
    return proc(
        images=list(images.numpy()), do_resize=False, do_center_crop=False, return_tensors="pt"
    )["pixel_values"]


def _tower_sd(model) -> dict:
    """The tower's parameters by vision-model name, whatever prefix this transformers uses."""
    return {k.removeprefix("vision_model."): v for k, v in _hf_vision(model).state_dict().items()}


def _hf_vision(model):
    return model.vision_model if hasattr(model, "text_model") else model


@pytest.mark.parametrize(
    "kind,vision,expect",
    [
        ("siglip_vision", {}, ("hidden", -1)),  # LLaVA: the last block, no post_layernorm
        ("siglip_full", {}, ("hidden", -1)),
        ("siglip_vision", {"post_norm": True}, ("last", None)),  # nanoVLM / Idefics3
        ("siglip_vision", {"feature_layer": -2}, ("hidden", -2)),
        ("clip_vision", {}, ("hidden", -2)),  # LLaVA: penultimate, class token dropped
        ("clip_full", {}, ("hidden", -2)),
        ("clip_vision", {"feature_layer": -1}, ("hidden", -1)),
    ],
)
def test_loaded_tower_features_match_transformers(towers, kind, vision, expect):
    tower_dir, hf = towers[kind]
    cfg = config_from_dict({"model": {"vision": {"init": str(tower_dir), "merge": 1} | vision}})
    v = cfg.model.vision
    assert (v.d_model, v.n_layers, v.n_heads, v.patch_size, v.mlp_hidden) == (32, 3, 4, 4, 48)
    assert cfg.pack.image_size == 16 and v.arch == kind.split("_")[0]
    if kind.startswith("clip"):
        assert v.image_mean == CLIP_MEAN and v.image_std == CLIP_STD and v.act == "quick_gelu"
    else:
        assert v.image_mean == MEAN_STD["siglip"][0] and v.act == "gelu_tanh"
    enc = VisionEncoder(v, cfg.pack.image_size)
    load_tower(enc, tower_dir)
    enc.eval()
    images = _images()
    with torch.no_grad():
        ours = enc(images)
        out = _hf_vision(hf)(_pixel_values(tower_dir, kind, images), output_hidden_states=True)
        theirs = out.last_hidden_state if expect[0] == "last" else out.hidden_states[expect[1]]
        if kind.startswith("clip"):
            theirs = theirs[:, 1:]
        other = enc(images.flip(0))
    diff = (ours - theirs).abs().max().item()
    print(f"{kind} {vision}: max abs diff {diff:.2e}")
    assert ours.shape == theirs.shape == (3, 16, 32)
    assert diff <= 1e-4
    assert (ours - other).abs().max().item() > 1e-2  # the images matter
    # layers past the feature layer are not built (no unused parameters under DDP)
    assert len(enc.layers) == 3 + 1 + expect[1] if expect[1] else len(enc.layers) == 3


def test_vlm_builds_with_the_tower_and_checkpoint_reload_needs_no_tower(towers, tmp_path):
    import shutil

    from vloom.model import load_model, save_model

    src, hf = towers["clip_vision"]
    tower_dir = tmp_path / "tower"
    shutil.copytree(src, tower_dir)
    cfg = config_from_dict({"model": {"d_model": 32, "vision": {"init": str(tower_dir)}}})
    m = VLM(cfg.model, 64, 32, cfg.pack.image_size)
    assert m.tokens_per_image == 4  # 16 px / 4 px patches, 2 x 2 merge
    sd = _tower_sd(hf)
    assert torch.equal(m.vision.cls_embed, sd["embeddings.class_embedding"])
    assert torch.equal(m.vision.layers[1].mlp.fc2.weight, sd["encoder.layers.1.mlp.fc2.weight"])
    save_model(m, tmp_path / "ck")
    shutil.rmtree(tower_dir)  # the checkpoint holds the weights and the preprocessing
    back = load_model(tmp_path / "ck")
    assert back.cfg.vision.image_mean == CLIP_MEAN
    images = _images(2)
    with torch.no_grad():
        assert torch.equal(back.vision(images), m.vision(images))


def test_user_fields_that_contradict_the_tower_are_one_line_errors(towers):
    tower_dir, _ = towers["siglip_vision"]
    init = {"init": str(tower_dir)}
    with pytest.raises(ValueError) as e:
        config_from_dict({"model": {"vision": init | {"d_model": 64, "patch_size": 8}}})
    msg = str(e.value)
    assert "d_model=64 (tower: 32)" in msg and "patch_size=8 (tower: 4)" in msg
    assert "\n" not in msg and str(tower_dir) in msg
    with pytest.raises(ValueError, match=r"pack.image_size=32 .* image_size 16"):
        config_from_dict({"pack": {"image_size": 32}, "model": {"vision": init}})
    # fields that agree, and the ones the tower does not fix, are kept
    cfg = config_from_dict({"model": {"vision": init | {"d_model": 32, "merge": 4}}})
    assert cfg.model.vision.merge == 4 and cfg.model.vision.n_layers == 3


def _write_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(cfg | changes))


def test_bad_towers_are_one_line_errors_naming_file_and_field(tmp_path):
    bad = tmp_path / "bert"
    _save("siglip_vision", bad)
    _write_config(bad, model_type="bert")
    with pytest.raises(ValueError, match=r"bert/config.json: model_type 'bert' is not a vision"):
        config_from_dict({"model": {"vision": {"init": str(bad)}}})

    odd = tmp_path / "odd"
    _save("clip_vision", odd)
    _write_config(odd, image_size=18)
    with pytest.raises(ValueError, match=r"odd/config.json: image_size 18 is not a multiple of"):
        config_from_dict({"model": {"vision": {"init": str(odd)}}})

    gone = tmp_path / "gone"
    _save("siglip_vision", gone)
    cfg = config_from_dict({"model": {"vision": {"init": str(gone)}}})
    (gone / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"gone: no \*.safetensors weights"):
        VLM(cfg.model, 64, 32, cfg.pack.image_size)

    # A tower directory not on this machine parses (another machine's config); the run start
    # names it. A directory without config.json is an error at load.
    elsewhere = config_from_dict({"model": {"vision": {"init": str(tmp_path / "nowhere")}}})
    with pytest.raises(ConfigError, match=r"model.vision.init: .*nowhere: no such directory"):
        check_model_dirs(elsewhere)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/config.json: not found"):
        config_from_dict({"model": {"vision": {"init": str(tmp_path / "empty")}}})

    short = tmp_path / "short"  # config.json promises 3 blocks, the weights hold 2
    _save("siglip_vision", short, num_hidden_layers=2)
    _write_config(short, num_hidden_layers=3)
    cfg = config_from_dict({"model": {"vision": {"init": str(short)}}})
    with pytest.raises(ValueError, match=r"short: the tower's weights lack \['encoder.layers.2"):
        VLM(cfg.model, 64, 32, cfg.pack.image_size)


def test_unresolved_config_is_refused_by_the_loader(towers):
    tower_dir, _ = towers["siglip_vision"]
    enc = VisionEncoder(ModelConfig(vision={"arch": "siglip", "merge": 1}).vision, 16)
    with pytest.raises(ValueError, match=r"does not match the tower: d_model=128 \(tower: 32\)"):
        load_tower(enc, tower_dir)


# -- pixel shuffle -----------------------------------------------------------------------


def nanovlm_pixel_shuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    """nanoVLM's ModalityProjector.pixel_shuffle, verbatim in effect."""
    bsz, seq, dim = x.size()
    side = int(seq**0.5)
    x = x.view(bsz, side, side, dim)
    h = w = side // scale
    x = x.reshape(bsz, h, scale, w, scale, dim).permute(0, 1, 3, 2, 4, 5).contiguous()
    return x.reshape(bsz, h * w, dim * scale**2)


def test_pixel_shuffle_connector_shapes_match_nanovlm():
    cfg = ModelConfig(
        d_model=48,
        vision={"d_model": 16, "n_layers": 1, "n_heads": 2, "patch_size": 2, "merge": 4}
        | {"arch": "siglip", "connector": "pixel_shuffle"},
    )
    torch.manual_seed(0)
    m = VLM(cfg, 64, 128, 16).eval()  # 8 x 8 patches -> 2 x 2 tokens of 16 * 16 features
    assert m.tokens_per_image == 4 and m.vision.slots is None
    assert m.connector.proj.weight.shape == (48, 16 * 16) and m.connector.proj.bias is None
    images = _images(2)
    with torch.no_grad():
        enc = m.vision
        x = enc.normalise(images).permute(0, 3, 1, 2)
        x = enc.patch_embed(x).flatten(2).transpose(1, 2) + enc.pos_embed
        for layer in enc.layers:
            x = layer(x)  # [2, 64, 16]
        ref = nanovlm_pixel_shuffle(x, 4) @ m.connector.proj.weight.T
        ours = m.connector(m.vision(images))
    assert ours.shape == (2, 4, 48)
    assert (ours - ref).abs().max().item() <= 1e-5


def test_tiny_vlm_with_tower_and_pixel_shuffle_trains_a_step(towers):
    tower_dir, _ = towers["siglip_vision"]
    cfg = config_from_dict(
        {
            "model": {
                "d_model": 32,
                "n_layers": 1,
                "n_heads": 2,
                "vision": {"init": str(tower_dir), "connector": "pixel_shuffle", "merge": 2},
            }
        }
    )
    torch.manual_seed(0)
    m = VLM(cfg.model, 64, 32, cfg.pack.image_size)
    k = m.tokens_per_image
    assert k == 4
    rows = torch.randint(4, 64, (2, 21))
    rows[0, 2 : 2 + k] = IMAGE_ID
    rows[1, 5 : 5 + 2 * k] = IMAGE_ID  # two images in row 1
    inputs, targets = make_targets(rows)
    _, loss = m(inputs, _images(3), targets)
    assert torch.isfinite(loss)
    loss.backward()
    for name in ("connector.proj.weight", "vision.patch_embed.weight", "lm.embed_tokens.weight"):
        g = dict(m.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_stage_that_freezes_the_vision_keeps_the_loaded_tower(towers, tmp_path):
    """synth -> pack -> train with a stage whose trainable parts leave the vision out: the
    pretrained tower comes out of training bit for bit, the connector moves."""
    from tinyexp import tiny_config

    from vloom.model import load_model
    from vloom.pack import run_pack
    from vloom.synth import generate
    from vloom.train import train

    tower_dir, hf = towers["siglip_vision"]
    cfg = tiny_config(
        model__vision={"init": str(tower_dir), "connector": "pixel_shuffle", "merge": 2},
        train__steps=4,
        train__stages=[{"trainable": ["connector", "lm"]}],
        train__image_start_fraction=0.0,
        train__image_text_ratio=1.0,
    )
    assert cfg.pack.image_size == 16
    generate(cfg.synth, tmp_path / "synth", cfg.seed)
    stats = run_pack(tmp_path / "synth" / "train", tmp_path / "packed", cfg, quiet=True)
    assert stats["image_size"] == 16 and stats["tokens_per_image"] == 4
    train(cfg, tmp_path / "packed", tmp_path / "run", quiet=True)
    m = load_model(tmp_path / "run" / "checkpoints" / "final")
    torch.manual_seed(cfg.seed)  # the model train started from: random LM/connector + tower
    start = VLM(cfg.model, m.lm.vocab_size, m.lm.max_seq_len, 16)
    tower = _tower_sd(hf)
    for name, p in m.vision.named_parameters():
        assert torch.equal(p, start.vision.state_dict()[name]), name  # frozen, bit for bit
    assert torch.equal(
        m.vision.layers[0].self_attn.q_proj.weight,
        tower["encoder.layers.0.self_attn.q_proj.weight"],
    )
    assert not torch.equal(m.connector.proj.weight, start.connector.proj.weight)  # trained
    assert not torch.equal(m.lm.embed_tokens.weight, start.lm.embed_tokens.weight)


def test_resume_and_init_from_need_no_tower_directory(towers, tmp_path):
    """A run started from a tower resumes (and a second run starts from its checkpoint) after
    the tower directory is gone: the checkpoint's weights replace the tower, so it is not read."""
    import shutil

    from tinyexp import tiny_config

    from vloom.pack import run_pack
    from vloom.synth import generate
    from vloom.train import train

    src, _ = towers["siglip_vision"]
    tower_dir = tmp_path / "tower"
    shutil.copytree(src, tower_dir)
    cfg = tiny_config(
        model__vision={"init": str(tower_dir)}, train__steps=3, train__checkpoint_every=2
    )
    generate(cfg.synth, tmp_path / "synth", cfg.seed)
    run_pack(tmp_path / "synth" / "train", tmp_path / "packed", cfg, quiet=True)
    train(cfg, tmp_path / "packed", tmp_path / "run", quiet=True)
    shutil.rmtree(tower_dir)
    # As if killed after step-000002: the run resumes there.
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "final")
    (tmp_path / "run" / "train_summary.json").unlink()
    summary = train(cfg, tmp_path / "packed", tmp_path / "run", quiet=True)
    assert summary["steps"] == 3
    again = cfg.model_copy(deep=True)
    again.train.init_from = str(tmp_path / "run" / "checkpoints" / "final")
    train(again, tmp_path / "packed", tmp_path / "run2", quiet=True)
    assert (tmp_path / "run2" / "checkpoints" / "final").is_dir()


@pytest.mark.parametrize("kind", ["clip_vision", "siglip_full"])
def test_vlm_with_a_loaded_tower_exports_as_llava_with_matching_logits(towers, tmp_path, kind):
    from PIL import Image
    from transformers import LlavaForConditionalGeneration
    from transformers.models.siglip import SiglipImageProcessorPil

    from vloom.model import save_model
    from vloom.model.hf_export import export_checkpoint

    tower_dir, _ = towers[kind]
    vision = {"init": str(tower_dir), "connector": "llava", "merge": 1}
    cfg = config_from_dict(
        {"model": {"d_model": 32, "n_layers": 1, "n_heads": 2, "vision": vision}}
    )
    torch.manual_seed(0)
    m = VLM(cfg.model, 64, 64, cfg.pack.image_size).eval()
    save_model(m, tmp_path / "ck")
    info = export_checkpoint(tmp_path / "ck", tmp_path / "hf")
    assert info["architecture"] == "LlavaForConditionalGeneration"
    hf, load = LlavaForConditionalGeneration.from_pretrained(
        str(tmp_path / "hf"), output_loading_info=True
    )
    hf.eval()
    assert not any(load.values()), load  # every weight written, none missing or unexpected
    assert hf.config.vision_config.num_hidden_layers == len(m.vision.layers)
    k = m.tokens_per_image
    assert k == 16
    tokens = torch.randint(4, 64, (2, 40), generator=torch.Generator().manual_seed(5))
    tokens[0, 2 : 2 + k] = IMAGE_ID
    tokens[1, 20 : 20 + k] = IMAGE_ID
    images = _images(2)
    proc = SiglipImageProcessorPil.from_pretrained(str(tmp_path / "hf"))  # exported: mean/std
    pixel_values = proc(images=[Image.fromarray(i) for i in images.numpy()], return_tensors="pt")
    with torch.no_grad():
        ours, _ = m(tokens, images)
        theirs = hf(input_ids=tokens, pixel_values=pixel_values["pixel_values"]).logits
    diff = (ours - theirs).abs().max().item()
    print(f"{kind} as LLaVA: max abs logit diff {diff:.2e}")
    assert diff <= 1e-4


def test_import_hf_lm_with_a_tower_gives_both_pretrained_halves(towers, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from vloom.config import VisionConfig
    from vloom.model.hf_import import import_model

    lm = _noisy(
        LlamaForCausalLM(
            LlamaConfig(
                vocab_size=64,
                hidden_size=32,
                intermediate_size=88,
                num_hidden_layers=1,
                num_attention_heads=4,
                max_position_embeddings=64,
            )
        )
    )
    lm.save_pretrained(str(tmp_path / "lm"))
    tower_dir, hf = towers["siglip_vision"]
    vision = VisionConfig(init=str(tower_dir), connector="pixel_shuffle", merge=2)
    m, _ = import_model(tmp_path / "lm", vision=vision)
    assert m.vision.image_size == 16 and m.cfg.vision.d_model == 32 and m.tokens_per_image == 4
    tokens = torch.randint(4, 64, (1, 12), generator=torch.Generator().manual_seed(1))
    images = _images(2)
    pixel_values = _pixel_values(tower_dir, "siglip_vision", images)
    with torch.no_grad():
        assert (m(tokens)[0] - lm(input_ids=tokens).logits).abs().max().item() <= 1e-4
        hidden = _hf_vision(hf)(pixel_values, output_hidden_states=True).hidden_states[-1]
        ours = m.vision(images)  # the tower's features, pixel-shuffled 2 x 2
    assert ours.shape == (2, 4, 32 * 4)
    assert (ours - nanovlm_pixel_shuffle(hidden, 2)).abs().max().item() <= 1e-4


def test_vision_config_rules():
    with pytest.raises(ValueError, match="model.vision.post_norm needs arch: siglip or clip"):
        ModelConfig(vision={"post_norm": True})
    with pytest.raises(ValueError, match="image_mean and image_std go together"):
        ModelConfig(vision={"image_mean": [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="clip has learned absolute positions"):
        ModelConfig(vision={"arch": "clip", "resolution": "dynamic"})
    cfg = ModelConfig(vision={"arch": "clip", "n_layers": 2, "feature_layer": -3})
    with pytest.raises(ValueError, match="feature_layer=-3 leaves no block of n_layers=2"):
        VisionEncoder(cfg.vision, 32)
