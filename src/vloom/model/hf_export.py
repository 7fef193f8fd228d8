"""Export a vloom checkpoint as a Hugging Face transformers model directory.

The decoder LM is Llama-shaped (RMSNorm, half-split RoPE as in HF's `rotate_half`, GQA, SwiGLU),
so it is written as `LlamaForCausalLM` (or `Qwen2ForCausalLM` when the q/k/v projections have
biases) and loads with `from_pretrained(DIR)`; the tokenizer goes beside it so
`AutoTokenizer.from_pretrained(DIR)` encodes exactly as vloom does (vloom adds `<bos>`, id 1,
itself when it builds sequences; the exported tokenizer adds no special tokens). The special
ids are the checkpoint's `token_layout` (vloom.sequence.TokenLayout): for a model started from
a pretrained LM (`model.lm.init`) they are that LM tokenizer's, whose own post-processor (e.g.
Llama's bos) is kept, and `<image>` / `<pad>` are the ids pack added; ids 0..3 below are the
defaults of vloom's own BPE.

The vision side is not a transformers class: vloom's ViT uses RMSNorm and SwiGLU blocks with a
learned position table and 2x2 patch merging, and its connector adds a learned embedding per
image-token slot. CLIP / SigLIP / Idefics3 towers use LayerNorm with biases and GELU MLPs,
Qwen2.5-VL's tower uses 2D RoPE and window attention, and Llava's projector has no slot
embedding, so none reproduces vloom's function exactly. The vision encoder and connector are
therefore written as `vision.safetensors` + `vloom_vision.json`, and `load_image_encoder(DIR)`
(needs vloom) rebuilds them; `inputs_embeds(lm, encoder, tokens, images)` splices the image
embeddings in place of `<image>` tokens for the transformers LM's `inputs_embeds=`.

A VLM built with the opt-in transformers-shaped vision side exports as one transformers class:
`model.vision: {arch: siglip, connector: llava, merge: 1}` (fixed resolution) is written as
`LlavaForConditionalGeneration` (SiglipVisionModel tower, LlavaMultiModalProjector, the Llama /
Qwen2 LM above), loadable with `LlavaForConditionalGeneration.from_pretrained(DIR)` alone:
vision_feature_layer -1 (the last block's output, before SigLIP's post_layernorm, which vloom's
siglip arch does not have and is written as identity), vision_feature_select_strategy "full"
(SigLIP has no CLS token), projector_hidden_act "gelu" (exact, as vloom's connector),
image_token_index 3 (`<image>`), image_seq_length = tokens per image. Inputs are what vloom's
encoder sees: `pixel_values` [N, 3, H, W] float = uint8 RGB / 127.5 - 1 (SigLIP's own
normalisation: rescale 1/255, mean = std = 0.5), and `input_ids` with each image expanded to
image_seq_length copies of id 3, as vloom packs them. `preprocessor_config.json` (SigLIP's PIL
image processor: RGB, bicubic resize to the square, that normalisation) turns raw images into
the same pixel_values as vloom's packer, and `processor_config.json` (LlavaProcessor) does both:
`AutoProcessor.from_pretrained(DIR)(text="<bos>A cat<image>on a mat", images=[img])` gives
vloom's ids for the items ["A cat", image, "on a mat"] (vloom writes `<bos>` itself; the
exported tokenizer adds no special tokens) and its pixels.

`arch: clip` (and a tower loaded with `model.vision.init`, SigLIP or CLIP) exports the same way:
the tower's own sizes, MLP width, LayerNorm eps and activation; CLIPVisionModel with strategy
"default" (the class token dropped, as vloom does); only the blocks vloom built (up to its
`feature_layer`), so vision_feature_layer stays -1; the processor normalises with the model's
image_mean / image_std. `post_norm: true` has no LLaVA equivalent and keeps vloom's loader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vloom.config import ModelConfig
from vloom.model.connector import Connector
from vloom.model.hf_lm import bias_names as _bias_names
from vloom.model.hf_lm import hf_name_map
from vloom.model.io import CONFIG, load_model
from vloom.model.layers import swiglu_hidden
from vloom.model.vision import TOWER_ACT, TOWERS, VisionEncoder
from vloom.model.vlm import VLM
from vloom.ondisk import staged_dir
from vloom.sequence import IMAGE, TokenLayout, load_tokenizer

VISION_WEIGHTS, VISION_CONFIG = "vision.safetensors", "vloom_vision.json"
LLAVA_OPTIONS = "model.vision: {arch: siglip, connector: llava, merge: 1}"
HF_ACT = {"gelu_tanh": "gelu_pytorch_tanh", "quick_gelu": "quick_gelu", "gelu": "gelu"}


def hf_config(model: VLM):
    """The transformers config object for the model's LM."""
    try:
        from transformers import LlamaConfig, Qwen2Config
    except ImportError:
        raise ValueError("exporting needs transformers (pip install 'vloom[hf]')") from None
    cfg = model.cfg
    common = dict(
        vocab_size=model.lm.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=swiglu_hidden(cfg.d_model, cfg.ffn_mult),
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads or cfg.n_heads,
        hidden_act="silu",
        max_position_embeddings=model.lm.max_seq_len,
        rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        bos_token_id=model.layout.bos,
        eos_token_id=model.layout.eos,
        pad_token_id=model.layout.pad,
    )
    if cfg.qkv_bias:  # Qwen2 is Llama with q/k/v biases
        c = Qwen2Config(**common, use_sliding_window=False)
        c.architectures = ["Qwen2ForCausalLM"]
    else:
        c = LlamaConfig(
            **common, attention_bias=False, mlp_bias=False, head_dim=cfg.d_model // cfg.n_heads
        )
        c.architectures = ["LlamaForCausalLM"]
    c.dtype = "float32"
    return c


def hf_state_dict(model: VLM) -> dict[str, torch.Tensor]:
    cfg = model.cfg
    names = hf_name_map(cfg.n_layers, cfg.tie_embeddings)
    if cfg.qkv_bias:
        names |= _bias_names(cfg.n_layers)
    sd = model.state_dict()
    return {hf: sd[v].detach().contiguous().cpu() for v, hf in names.items()}


def llava_blocker(model: VLM) -> str | None:
    """Why the model's vision side cannot be LlavaForConditionalGeneration (None: it can)."""
    v = model.cfg.vision
    if v.arch not in TOWERS or v.connector != "llava" or v.merge != 1:
        return f"the vision side is vloom's own (LLaVA needs {LLAVA_OPTIONS}, or arch: clip)"
    if v.resolution != "fixed":
        return "dynamic resolution has no LLaVA equivalent"
    if v.post_norm:
        return "post_norm (post_layernorm on the features) has no LLaVA equivalent"
    return None


def llava_config(model: VLM):
    """LlavaConfig: SigLIP / CLIP tower + LLaVA projector around the LM's Llama / Qwen2 config."""
    from transformers import CLIPVisionConfig, LlavaConfig, SiglipVisionConfig

    v, block = model.cfg.vision, model.vision.layers[0]
    common = dict(
        hidden_size=v.d_model,
        intermediate_size=block.mlp.fc1.out_features,
        num_hidden_layers=len(model.vision.layers),  # the blocks up to the feature layer
        num_attention_heads=v.n_heads,
        num_channels=3,
        image_size=model.vision.image_size,
        patch_size=v.patch_size,
        hidden_act=HF_ACT[v.act or TOWER_ACT[v.arch]],
        layer_norm_eps=block.layer_norm1.eps,
    )
    if v.arch == "clip":
        vision = CLIPVisionConfig(**common)
    else:
        vision = SiglipVisionConfig(**common, vision_use_head=False)
    text = hf_config(model)
    c = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=model.layout.image,
        image_seq_length=model.tokens_per_image,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default" if v.arch == "clip" else "full",
        multimodal_projector_bias=True,
        tie_word_embeddings=model.cfg.tie_embeddings,
    )
    c.architectures = ["LlavaForConditionalGeneration"]
    c.dtype = "float32"
    return c


def llava_state_dict(model: VLM) -> dict[str, torch.Tensor]:
    """vloom VLM (siglip + llava connector) -> LlavaForConditionalGeneration parameter names."""
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    lm = hf_state_dict(model)  # model.* -> model.language_model.*; lm_head stays
    out = {
        ("model.language_model." + k[6:] if k.startswith("model.") else k): t for k, t in lm.items()
    }
    if "lm_head.weight" not in out:  # tied: written anyway so either tie setting loads it
        out["lm_head.weight"] = sd["lm.embed_tokens.weight"].clone()
    tower = "model.vision_tower."
    out[tower + "embeddings.patch_embedding.weight"] = sd["vision.patch_embed.weight"]
    if "vision.patch_embed.bias" in sd:  # CLIP's patch conv has none
        out[tower + "embeddings.patch_embedding.bias"] = sd["vision.patch_embed.bias"]
    out[tower + "embeddings.position_embedding.weight"] = sd["vision.pos_embed"][0]
    if "vision.cls_embed" in sd:
        out[tower + "embeddings.class_embedding"] = sd["vision.cls_embed"]
        out[tower + "pre_layrnorm.weight"] = sd["vision.pre_norm.weight"]
        out[tower + "pre_layrnorm.bias"] = sd["vision.pre_norm.bias"]
    for k, t in sd.items():
        if k.startswith("vision.layers."):
            out[tower + "encoder." + k.removeprefix("vision.")] = t
        elif k.startswith("connector.fc"):  # fc1 / fc2 -> linear_1 / linear_2
            out["model.multi_modal_projector.linear_" + k.removeprefix("connector.fc")] = t
    d = model.cfg.vision.d_model  # unused by LLaVA (hidden_states[-1] precedes it): identity
    out[tower + "post_layernorm.weight"] = torch.ones(d)
    out[tower + "post_layernorm.bias"] = torch.zeros(d)
    return out


def export_tokenizer(
    tokenizer_json: str | Path, out_dir: Path, max_len: int, layout: TokenLayout
) -> int:
    """tokenizer.json + tokenizer_config.json for AutoTokenizer; returns the vocab size."""
    from transformers import PreTrainedTokenizerFast

    tok = load_tokenizer(str(tokenizer_json), layout)  # checks the special-token ids
    name = tok.id_to_token
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None if layout.bos is None else name(layout.bos),
        eos_token=name(layout.eos),
        pad_token=name(layout.pad),
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=max_len,
    )
    fast.save_pretrained(str(out_dir))
    return tok.get_vocab_size()


def export_checkpoint(
    ckpt_dir: str | Path, out_dir: str | Path, tokenizer: str | Path | None = None
) -> dict[str, Any]:
    """Write `out_dir` for transformers' from_pretrained (staged, then renamed into place)."""
    ckpt_dir = Path(ckpt_dir)
    model = load_model(ckpt_dir)
    meta = json.loads((ckpt_dir / CONFIG).read_text())
    tok_path = tokenizer or meta.get("tokenizer")
    if tok_path is not None and not Path(tok_path).exists():
        raise FileNotFoundError(f"{tok_path}: tokenizer not found (pass --tokenizer)")
    blocker = llava_blocker(model)
    config = hf_config(model) if blocker else llava_config(model)
    weights = hf_state_dict(model) if blocker else llava_state_dict(model)
    with staged_dir(out_dir) as tmp:
        config.save_pretrained(str(tmp))
        save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        if tok_path is not None:
            n_vocab = export_tokenizer(tok_path, tmp, model.lm.max_seq_len, model.layout)
            if n_vocab > model.lm.vocab_size:
                raise ValueError(
                    f"{tok_path}: tokenizer has {n_vocab} tokens, the model only {model.lm.vocab_size}"
                )
        if blocker:
            write_vision_side(model, tmp)
        else:
            write_processor(model, tmp, with_tokenizer=tok_path is not None)
    if not blocker:
        return {
            "out": str(out_dir),
            "architecture": config.architectures[0],
            "tokenizer": str(tok_path) if tok_path else None,
            "vision": "model.safetensors",
            "note": "VLM as LlavaForConditionalGeneration (SigLIP tower, LLaVA projector); "
            "pixel_values = uint8 RGB / 127.5 - 1, NCHW",
        }
    return {
        "out": str(out_dir),
        "architecture": config.architectures[0],
        "tokenizer": str(tok_path) if tok_path else None,
        "vision": VISION_WEIGHTS,
        "note": f"LM as {config.architectures[0]}; {blocker}, so it is written as "
        f"{VISION_WEIGHTS} + {VISION_CONFIG} for vloom.model.hf_export.load_image_encoder",
    }


def write_processor(model: VLM, out: Path, with_tokenizer: bool) -> None:
    """preprocessor_config.json: SigLIP's PIL image processor does what vloom's packer does to
    an image (RGB, bicubic resize to the square, then (p / 255 - mean) / std with the model's
    image_mean / image_std, by default / 127.5 - 1). With the tokenizer, also
    processor_config.json: LlavaProcessor expands each `<image>` in the text to
    image_seq_length copies, so AutoProcessor(text, images) gives vloom's inputs."""
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from transformers.models.siglip import SiglipImageProcessorPil

    size, clip = model.vision.image_size, model.cfg.vision.arch == "clip"
    images = SiglipImageProcessorPil(
        size={"height": size, "width": size},
        resample=3,  # PIL bicubic, as vloom.media.to_array
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=model.cfg.vision.image_mean or [0.5, 0.5, 0.5],
        image_std=model.cfg.vision.image_std or [0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )
    images.save_pretrained(str(out))
    if with_tokenizer:
        LlavaProcessor(
            image_processor=images,
            tokenizer=PreTrainedTokenizerFast.from_pretrained(str(out)),
            patch_size=model.cfg.vision.patch_size,
            vision_feature_select_strategy="default" if clip else "full",
            num_additional_image_tokens=int(clip),  # CLIP's class token, dropped again
            image_token=IMAGE,
        ).save_pretrained(str(out))


def write_vision_side(model: VLM, out: Path) -> None:
    """vloom's own vision encoder + connector, for load_image_encoder."""
    vis = {
        k: v.contiguous().cpu()
        for k, v in model.state_dict().items()
        if k.startswith(("vision.", "connector."))
    }
    save_file(vis, str(out / VISION_WEIGHTS))
    (out / VISION_CONFIG).write_text(
        json.dumps(
            {
                "model": model.cfg.model_dump(mode="json"),
                "image_size": model.vision.image_size,
                "tokens_per_image": model.tokens_per_image,
                "image_token_id": model.layout.image,
            },
            indent=2,
        )
        + "\n"
    )


class ImageEncoder(nn.Module):
    """vloom's vision encoder + connector as exported: images [N, H, W, 3] -> [N, P, D_lm]."""

    def __init__(self, cfg: ModelConfig, image_size: int) -> None:
        super().__init__()
        self.vision = VisionEncoder(cfg.vision, image_size)
        slots = self.vision.slots
        self.connector = Connector(self.vision.d_out, cfg.d_model, slots, cfg.vision.connector)

    def forward(self, images: Any) -> torch.Tensor:
        """Images (a [N, H, W, 3] stack, or an ImageBatch with dynamic resolution) ->
        [N, P, D_lm] or, dynamic, [sum of tokens, D_lm]."""
        return self.connector(self.vision(images))


def load_image_encoder(export_dir: str | Path) -> ImageEncoder:
    """Rebuild the exported vision encoder + connector (the documented loader for the VLM side)."""
    export_dir = Path(export_dir)
    cfg_path = export_dir / VISION_CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{export_dir}: no {VISION_CONFIG} (not a vloom VLM export)")
    meta = json.loads(cfg_path.read_text())
    enc = ImageEncoder(ModelConfig.model_validate(meta["model"]), meta["image_size"])
    try:
        sd = load_file(str(export_dir / VISION_WEIGHTS))
    except Exception as e:
        raise ValueError(f"{export_dir / VISION_WEIGHTS}: corrupt safetensors file ({e})") from None
    enc.load_state_dict(sd)
    return enc.eval()


def inputs_embeds(
    lm: nn.Module,
    encoder: ImageEncoder,
    tokens: torch.Tensor,
    images: torch.Tensor | None,
    image_id: int = TokenLayout().image,
) -> torch.Tensor:
    """Token embeddings of a transformers LM with `<image>` positions replaced, in order, by the
    image encoder's outputs (what vloom's VLM does); pass as `lm(inputs_embeds=...)`."""
    x = lm.get_input_embeddings()(tokens)  # [B, T, D]
    is_img = tokens == image_id
    if not bool(is_img.any()):
        return x
    feats = encoder(images).reshape(-1, x.shape[-1])  # [image tokens, D]
    if feats.shape[0] != int(is_img.sum()):
        raise ValueError(f"{int(is_img.sum())} image tokens but the images give {feats.shape[0]}")
    x = x.clone()
    x[is_img] = feats.reshape(-1, feats.shape[-1]).to(x.dtype)
    return x
