"""Typed experiment config: one YAML file describes data, model, training and evaluation.

Every section is a pydantic model that forbids unknown keys, so a typo in a YAML
file is an error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vloom.ondisk import RUN_CONFIG, read_json


def _path_to_paths(raw: Any) -> Any:
    """A source's `path: X` shorthand as `paths: [X]`."""
    if isinstance(raw, dict) and "path" in raw:
        raw = dict(raw)
        if "paths" in raw:
            raise ValueError("give path or paths, not both")
        raw["paths"] = [raw.pop("path")]
    return raw


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# Field tags for `data_fields`: a setting that changes how a stage runs (workers, executor) or
# only the model (widths, depths), not the synthesized, curated or packed data.
_RUNTIME = {"data": False}
_MODEL_ONLY = {"data": False}


def data_fields(section: BaseModel) -> dict[str, Any]:
    """`section` as JSON without the fields tagged {"data": False}, recursively.

    What a stage's output depends on, derived from the config itself: a field added to
    synth, curate, pack or model.vision counts by default (a wrong "same data" is the costly
    mistake; a needless rebuild only costs time), so only the fields known not to change
    the data are tagged out.
    """
    out = section.model_dump(mode="json")  # extras included (a curation step's parameters)
    for name, info in type(section).model_fields.items():
        extra = info.json_schema_extra
        value = getattr(section, name)
        if isinstance(extra, dict) and extra.get("data") is False:
            del out[name]
        elif isinstance(value, BaseModel):
            out[name] = data_fields(value)
        elif isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
            out[name] = [data_fields(v) if isinstance(v, BaseModel) else v for v in value]
    return out


class NoiseConfig(_Strict):
    """Defects the synthetic world injects into the training corpus, each a share of documents."""

    exact_duplicate: float = Field(
        0.05, ge=0, le=1, description="copies of a document, byte-identical"
    )
    near_duplicate: float = Field(0.05, ge=0, le=1, description="copies with a few words changed")
    spam: float = Field(0.05, ge=0, le=1, description="boilerplate / spam pages")
    foreign_language: float = Field(0.03, ge=0, le=1, description="documents in another language")
    broken_image: float = Field(
        0.02, ge=0, le=1, description="an image replaced by undecodable bytes"
    )
    tiny_image: float = Field(0.02, ge=0, le=1, description="an image shrunk to a few pixels")
    unrelated_image: float = Field(0.02, ge=0, le=1, description="an image from another scene")


class SynthConfig(_Strict):
    """The procedural world: scenes of coloured shapes and documents about them."""

    image_size: int = Field(32, ge=8, le=1024, description="rendered image side in pixels")
    max_objects: int = Field(3, ge=1, le=9, description="objects per scene, 1..max_objects")
    n_interleaved: int = Field(
        1500, ge=0, description="interleaved documents (several images each)"
    )
    images_per_doc: int = Field(3, ge=1, le=16, description="images per interleaved document")
    n_pairs: int = Field(3000, ge=0, description="image-caption pair documents")
    n_text: int = Field(3000, ge=0, description="text-only documents about the same world")
    n_reference: int = Field(
        0,
        ge=0,
        description="clean documents in `reference/` (no noise, never trained on): the "
        "'good text' set a quality classifier can learn from (curate params: {input}/../reference)",
    )
    n_eval_vqa: int = Field(400, ge=4, description="held-out 4-way VQA questions")
    n_eval_text: int = Field(200, ge=4, description="held-out text-only questions and documents")
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    shard_size: int = Field(1000, ge=1, description="documents per Parquet shard")


class StepConfig(BaseModel):
    """One curation step: a registry `name` plus that step's own parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class CurateConfig(_Strict):
    steps: list[StepConfig] = Field(
        default_factory=lambda: [StepConfig(name="exact_dedup"), StepConfig(name="gopher_quality")],
        description="ordered curation steps, each named from the step registry",
    )
    workers: int = Field(1, ge=1, description="local worker processes", json_schema_extra=_RUNTIME)
    executor: Literal["local", "ray"] = Field("local", json_schema_extra=_RUNTIME)
    ray_address: str | None = Field(
        None,
        json_schema_extra=_RUNTIME,
        description='Ray cluster for executor "ray": None starts a local Ray with `workers` '
        'CPUs; "auto" or "ray://host:port" joins a cluster (shared file system needed)',
    )
    doc_timeout: float | None = Field(
        120.0,
        gt=0,
        json_schema_extra=_RUNTIME,
        description="seconds one step may spend on one document; past it (or when the step "
        'raises) the document is rejected as "<step>:timeout" / "<step>:error:<Type>"; '
        "None: no limit",
    )


class PackConfig(_Strict):
    vocab_size: int = Field(2048, ge=300, description="BPE vocabulary size (incl. special tokens)")
    seq_len: int = Field(256, ge=16, description="tokens per packed sequence")
    image_size: int = Field(32, ge=8, description="images are resized to this square side")
    tokenizer_docs: int = Field(5000, ge=10, description="documents sampled to train the tokenizer")
    shard_sequences: int = Field(2048, ge=1, description="sequences per packed shard")
    image_captions: bool = Field(
        True,
        description="an image's metadata caption (HTML figure captions, kept out of the page "
        "text by ingest) follows the image in the token stream",
    )
    document_masking: bool = Field(
        False,
        description="rows also carry `segments` (document index within the row, -1 padding) "
        "so attention stays within a document and positions restart at each document",
    )


class VisionConfig(_Strict):
    patch_size: int = Field(8, ge=1, description="ViT patch side in pixels")
    d_model: int = Field(128, ge=8, json_schema_extra=_MODEL_ONLY)
    n_layers: int = Field(2, ge=1, json_schema_extra=_MODEL_ONLY)
    n_heads: int = Field(4, ge=1, json_schema_extra=_MODEL_ONLY)
    merge: int = Field(
        2, ge=1, description="merge merge x merge neighbouring patches into one LM token (Qwen2-VL)"
    )
    resolution: Literal["fixed", "dynamic"] = Field(
        "fixed",
        description="fixed: square pack.image_size images, learned positions; dynamic: aspect "
        "kept, resized within min/max_pixels, 2D RoPE, variable image tokens (Qwen2-VL)",
    )
    arch: Literal["vloom", "siglip", "clip"] = Field(
        "vloom",
        json_schema_extra=_MODEL_ONLY,
        description="vloom: RMSNorm/SwiGLU blocks, final RMSNorm; siglip: SigLIP blocks as "
        "transformers' SiglipVisionModel (LayerNorm + biases, GELU-tanh MLP, no final norm on "
        "the features: LLaVA's vision_feature_layer -1), exportable as LlavaForConditionalGeneration; "
        "clip: CLIP blocks as CLIPVisionModel (class token, pre-LayerNorm, quick_gelu; the class "
        "token is dropped from the features, LLaVA's 'default' strategy)",
    )
    connector: Literal["vloom", "llava", "pixel_shuffle"] = Field(
        "vloom",
        json_schema_extra=_MODEL_ONLY,
        description="vloom: MLP + a learned embedding per image-token slot; llava: the MLP only "
        "(LlavaMultiModalProjector: Linear -> GELU -> Linear, biases); pixel_shuffle: one Linear "
        "without bias after the merge x merge pixel shuffle (nanoVLM's ModalityProjector; the "
        "shuffle factor is `merge`)",
    )
    min_pixels: int = Field(
        1024, ge=1, description="dynamic: smaller images are scaled up to at least this area"
    )
    max_pixels: int = Field(
        4096, ge=1, description="dynamic: larger images are scaled down to at most this area"
    )
    init: str | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        description="a local Hugging Face SigLIP / CLIP vision tower (config.json + safetensors, "
        "a *VisionModel or the vision half of a SiglipModel / CLIPModel): its sizes, preprocessing "
        "and pack.image_size are read from it and its weights start the encoder (vloom.model.hf_vision)",
    )
    feature_layer: int | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        le=-1,
        description="siglip/clip: the hidden state the LM sees, as LLaVA's vision_feature_layer "
        "(-1 the last block, -2 the penultimate; blocks past it are not built); None = -2 for "
        "clip (LLaVA), -1 for siglip",
    )
    post_norm: bool = Field(
        False,
        json_schema_extra=_MODEL_ONLY,
        description="siglip/clip: apply the tower's post_layernorm to the features "
        "(SigLIP's last_hidden_state, as nanoVLM / Idefics3)",
    )
    mlp_hidden: int | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        ge=1,
        description="siglip/clip MLP width; None = 4 x d_model",
    )
    norm_eps: float | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        gt=0,
        description="siglip/clip LayerNorm eps; None = 1e-6 siglip, 1e-5 clip",
    )
    act: Literal["gelu_tanh", "quick_gelu", "gelu"] | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        description="siglip/clip MLP activation; None = gelu_tanh siglip, quick_gelu clip",
    )
    image_mean: list[float] | None = Field(
        None,
        json_schema_extra=_MODEL_ONLY,
        min_length=3,
        max_length=3,
        description="per-channel mean of pixels / 255, "
        "applied in the encoder; None (with image_std None) = 0.5, i.e. pixels / 127.5 - 1",
    )
    image_std: list[float] | None = Field(
        None, min_length=3, max_length=3, json_schema_extra=_MODEL_ONLY
    )

    @model_validator(mode="after")
    def _dynamic_ok(self) -> VisionConfig:
        if self.arch in ("siglip", "clip") and self.resolution == "dynamic":
            raise ValueError(
                f"model.vision.arch: {self.arch} has learned absolute positions; it needs "
                "resolution: fixed"
            )
        tower_only = ("feature_layer", "post_norm", "mlp_hidden", "norm_eps", "act")
        set_ = [f for f in tower_only if getattr(self, f) not in (None, False)]
        if self.arch == "vloom" and set_:
            raise ValueError(f"model.vision.{set_[0]} needs arch: siglip or clip")
        if (self.image_mean is None) != (self.image_std is None) or 0 in (self.image_std or []):
            raise ValueError("model.vision.image_mean and image_std go together (std non-zero)")
        if self.resolution != "dynamic":
            return self
        f = self.patch_size * self.merge
        if self.max_pixels < f * f:
            raise ValueError(
                f"model.vision.max_pixels={self.max_pixels} is below one merged patch "
                f"({f}x{f} = {f * f} pixels)"
            )
        if self.min_pixels > self.max_pixels:
            raise ValueError("model.vision.min_pixels is larger than max_pixels")
        if (self.d_model // self.n_heads) % 4:
            raise ValueError(
                "model.vision: 2D RoPE needs the head dim (d_model / n_heads) divisible by 4"
            )
        return self


class LMInitConfig(_Strict):
    init: str | None = Field(
        None,  # not model-only: pack tokenizes with this checkpoint's tokenizer
        description="a local Hugging Face Llama / Qwen2 / SmolLM2 checkpoint (config.json + "
        "*.safetensors + tokenizer.json): its sizes fill the LM fields of `model`, its weights "
        "start the LM and pack tokenizes with its tokenizer (`<image>` and, when it has no pad "
        "distinct from eos, `<pad>` added; pack.vocab_size is then unused); see vloom.model.hf_lm",
    )
    tokenizer: str | None = Field(
        None,
        description="such a directory whose tokenizer pack uses (and whose config.json vocab_size "
        "sizes the embeddings) without loading its weights or sizes: a model trained from "
        "scratch on a pretrained tokenizer, or grown from an lm.init model; None = init's",
    )

    @property
    def tokenizer_dir(self) -> str | None:
        """The HF directory pack takes the tokenizer from (None: vloom trains its BPE)."""
        return self.tokenizer or self.init


class ModelConfig(_Strict):
    d_model: int = Field(128, ge=8, description="LM width")
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)
    n_kv_heads: int | None = Field(None, ge=1, description="grouped-query heads; None = n_heads")
    ffn_mult: float = Field(8 / 3, gt=0, description="SwiGLU hidden = ffn_mult * d_model (rounded)")
    rope_theta: float = 10000.0
    norm_eps: float = Field(1e-6, gt=0, description="LM RMSNorm epsilon")
    qkv_bias: bool = Field(False, description="biases on the LM's q/k/v projections (Qwen2)")
    tie_embeddings: bool = True
    lm: LMInitConfig = Field(default_factory=LMInitConfig)
    vision: VisionConfig = Field(default_factory=VisionConfig)

    @model_validator(mode="after")
    def _heads_divide(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by n_heads={self.n_heads}"
            )
        kv = self.n_kv_heads or self.n_heads
        if self.n_heads % kv:
            raise ValueError(f"model.n_heads={self.n_heads} is not divisible by n_kv_heads={kv}")
        if self.vision.d_model % self.vision.n_heads:
            raise ValueError("model.vision.d_model is not divisible by model.vision.n_heads")
        return self


Part = Literal["vision", "connector", "lm"]


class StageConfig(_Strict):
    """A training stage: a share of the steps with its own trainable parts, data mixture and
    (optionally) its own learning-rate schedule. Unset fields follow the `train` section."""

    name: str = "pretrain"
    kind: Literal["pretrain", "sft", "rl"] = Field(
        "pretrain",
        description="pretrain: next-token loss on packed documents; sft: loss on assistant "
        "turns of the `sft` section's conversations; rl: online RL on the `rl` section's "
        "verifiable questions",
    )
    fraction: float | None = Field(
        None, gt=0, le=1, description="share of train.steps this stage takes (one stage: 1)"
    )
    steps: int | None = Field(
        None, ge=1, description="this stage's length in steps (instead of fraction)"
    )
    trainable: list[Part] = Field(default_factory=lambda: ["vision", "connector", "lm"])
    mixture: dict[str, float] | None = Field(
        None,
        description="shares of packed-row sources, e.g. {pairs: 0.7, interleaved: 0.3}; a key "
        "matches a source tag, its last /-part (synth/pairs) or its first (a data source's "
        "name: world matches world/pairs, world/text, world/interleaved)",
    )
    image_text_ratio: float | None = Field(
        None, ge=0, le=1, description="share of image-bearing sequences in this stage"
    )
    lr: float | None = Field(
        None, gt=0, description="peak LR; setting any LR field gives the stage its own schedule"
    )
    warmup_steps: int | None = Field(None, ge=0)
    schedule: Literal["cosine", "wsd"] | None = None
    min_lr_ratio: float | None = Field(None, ge=0, le=1)
    decay_fraction: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _mixture_ok(self) -> StageConfig:
        if self.mixture is not None:
            if not self.mixture or any(v < 0 for v in self.mixture.values()):
                raise ValueError(f"stage {self.name}: mixture needs non-negative shares")
            if sum(self.mixture.values()) <= 0:
                raise ValueError(f"stage {self.name}: mixture shares sum to 0")
            if self.image_text_ratio is not None:
                raise ValueError(f"stage {self.name}: give mixture or image_text_ratio, not both")
        return self

    @property
    def own_schedule(self) -> bool:
        return any(
            getattr(self, k) is not None
            for k in ("lr", "warmup_steps", "schedule", "min_lr_ratio", "decay_fraction")
        )


class TrainConfig(_Strict):
    steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1, description="sequences per micro-batch")
    grad_accum: int = Field(
        1, ge=1, description="micro-batches per step; global batch = batch_size x grad_accum"
    )
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.1, ge=0)
    lr_mult: dict[Part, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="a part's learning rate as a multiple of the schedule's (e.g. {connector: "
        "10}, nanoVLM's faster projector); parts not named: 1",
    )
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = Field(1.0, ge=0, description="0 disables clipping")
    schedule: Literal["cosine", "wsd"] = "cosine"
    warmup_steps: int = Field(30, ge=0)
    decay_fraction: float = Field(0.2, gt=0, le=1, description="WSD: share of steps spent decaying")
    image_start_fraction: float = Field(
        0.0, ge=0, le=1, description="step fraction at which image data enters; 1.0 = never"
    )
    image_text_ratio: float = Field(
        0.5, ge=0, le=1, description="share of image-bearing sequences once images are on"
    )
    stages: list[StageConfig] = Field(default_factory=lambda: [StageConfig()])
    init_from: str | None = Field(
        None,
        description="checkpoint directory to start from (weights only, new optimizer; "
        "continual pre-training with LR re-warmup); the model section must be the "
        "checkpoint's: write `model: {from: CHECKPOINT}` to take it from there",
    )
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="under torchrun: DDP, or FSDP2 fully_shard for models too big for one device",
    )
    activation_checkpointing: bool = Field(
        False,
        description="recompute transformer blocks in backward: less memory, ~30% more compute",
    )
    compile: bool = Field(False, description="torch.compile the model")
    prefetch: int = Field(
        2, ge=0, description="batches a background thread prepares ahead; 0 = off"
    )
    peak_flops: float | None = Field(
        None, gt=0, description="device peak FLOP/s for MFU (default: a table by GPU name)"
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 autocast where the device supports it fast, else fp32"
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = all cores")

    @model_validator(mode="after")
    def _stages_cover(self) -> TrainConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"train.stages: stage names must be unique (got {names})")
        by_steps = [s.steps is not None for s in self.stages]
        if any(by_steps) and not all(by_steps):
            raise ValueError("train.stages: give every stage steps, or every stage a fraction")
        if all(by_steps):
            total = sum(s.steps or 0 for s in self.stages)
            if total != self.steps:
                raise ValueError(
                    f"train.stages steps sum to {total} but train.steps is {self.steps}"
                )
            return self
        if len(self.stages) > 1 and any(s.fraction is None for s in self.stages):
            raise ValueError("train.stages: with several stages each needs a fraction (or steps)")
        total = sum(s.fraction or 1.0 for s in self.stages)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train.stages fractions sum to {total:g}, expected 1")
        return self


class DuringTrainingConfig(_Strict):
    """Benchmarks run by the training loop on the current model, for curves against tokens seen."""

    every: int | None = Field(
        None,
        ge=1,
        description="evaluate before a fresh run's first step, after every N optimizer steps "
        "and after the last; None = by every_tokens; neither set = off",
    )
    every_tokens: int | None = Field(
        None,
        ge=1,
        description="instead of `every`: evaluate each time tokens seen crosses a multiple of N "
        "(and at step 0 and after the last step)",
    )
    tasks: list[str] | None = Field(
        None,
        description="task specs as in eval.tasks (results keyed alike); None = eval.tasks",
    )
    max_examples: int = Field(
        64,
        ge=1,
        description="examples per task: each task's first N (the same at every evaluation, as "
        "`vloom eval` with eval.max_examples=N asks them), so an evaluation stays cheap",
    )
    seed: int | None = Field(
        None, description="few-shot and converted-option choice, as eval.seed; None = eval.seed"
    )

    @model_validator(mode="after")
    def _one_interval(self) -> DuringTrainingConfig:
        if self.every is not None and self.every_tokens is not None:
            raise ValueError("eval.during_training: give every or every_tokens, not both")
        return self

    @property
    def enabled(self) -> bool:
        return self.every is not None or self.every_tokens is not None


class EvalConfig(_Strict):
    tasks: list[str] = Field(
        default_factory=lambda: ["text_ppl", "text_qa", "vqa", "caption_loss"],
        description="task specs: a name from `vloom tasks`, or name:key=value,... for its "
        "parameters (e.g. text_qa:num_fewshot=3,as=text_qa_3shot); results are keyed by name/as",
    )
    max_examples: int | None = Field(None, ge=1, description="cap examples per task (None = all)")
    batch_size: int = Field(32, ge=1)
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$",
        description="auto (cuda when available, else cpu), cpu, mps, cuda or cuda:N",
    )
    seed: int = Field(
        0,
        description="few-shot example choice and converted-option order; fixed across the "
        "training seeds of a study so every run is asked the same prompts",
    )
    during_training: DuringTrainingConfig = Field(
        default_factory=DuringTrainingConfig,
        description="run benchmarks every N steps during training on a fixed subset; the "
        "records go to metrics.jsonl as eval/<task>/<metric> with step and tokens seen",
    )

    @property
    def during_tasks(self) -> list[str]:
        """The task specs evaluated during training (none when it is off)."""
        dt = self.during_training
        if not dt.enabled:
            return []
        return list(self.tasks if dt.tasks is None else dt.tasks)


class ReportConfig(_Strict):
    sinks: list[Literal["tensorboard", "mlflow", "wandb"]] | None = Field(
        None,
        description="where metrics go besides metrics.jsonl (offline); None = tensorboard when "
        "installed; a sink asked for whose package is missing is an error",
    )


SourceKind = Literal["synth", "documents", "html", "warc", "pdf", "pairs", "hf"]
INGEST_KINDS = ("html", "warc", "pdf", "pairs", "hf")
# Eval tasks that read the synthetic world's own eval sets (bare names, no file parameter).
WORLD_TASKS = frozenset(
    {
        "vqa",
        "text_qa",
        "vqa_open",
        "vqa_mc_converted",
        "multi_image",
        "world_qa",
        "caption_gen",
        "self_correct",
    }
)


class SourceConfig(_Strict):
    """One data source: the synthetic world, a directory of documents, or an ingest spec."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=64,
        description="unique; the documents' source tag (pack rows, stage mixtures, mix shares; "
        "the world's tags become NAME/pairs, NAME/text, NAME/interleaved)",
    )
    kind: SourceKind = Field(
        description="synth: the world of the `synth` section; documents: OBELICS-schema Parquet "
        "shards in `paths`; html|warc|pdf|pairs|hf: `vloom ingest` of `paths` as a stage"
    )
    paths: list[str] = Field(
        default_factory=list, description="input files or directories (`path` for one)"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="ingest options, as `vloom ingest --option` (e.g. min_text_chars, language, "
        "min_image_side)",
    )
    weight: float | None = Field(
        None,
        gt=0,
        description="share of the curated mixture (curate's `mix` step by source, weights "
        "normalised); a source without one passes through once",
    )
    optional: bool = Field(
        False,
        description="paths not on this machine are left out at run start, and the source too "
        "when none is left (a package that may not be installed); otherwise a missing path is "
        "an error",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_path(cls, raw: Any) -> Any:
        return _path_to_paths(raw)

    @model_validator(mode="after")
    def _fits_kind(self) -> SourceConfig:
        where = f"source {self.name!r}"
        if self.kind == "synth" and self.paths:
            raise ValueError(f"{where}: kind synth takes no paths (the `synth` section sets it)")
        if self.kind != "synth" and not self.paths:
            raise ValueError(f"{where}: kind {self.kind} needs path or paths")
        if self.optional and self.kind == "synth":
            raise ValueError(f"{where}: kind synth has no paths to be optional")
        if self.options and self.kind not in INGEST_KINDS:
            raise ValueError(f"{where}: options are for ingest kinds ({', '.join(INGEST_KINDS)})")
        return self


class DataConfig(_Strict):
    """The sources a run trains on; curation runs over their union (no section = the world)."""

    sources: list[SourceConfig] = Field(min_length=1)
    held_out_per_mille: int = Field(
        10,
        ge=0,
        le=1000,
        description="documents of real (non-synth) sources held out by id: xxhash64(id) mod "
        "1000 below this; they become eval/heldout_text and eval/captions, never training data",
    )
    shard_size: int = Field(1000, ge=1, description="documents per ingested / staged shard")

    @model_validator(mode="after")
    def _names_unique(self) -> DataConfig:
        seen: dict[str, int] = {}
        for i, s in enumerate(self.sources):
            if s.name in seen:
                raise ValueError(
                    f"data.sources[{i}].name: {s.name!r} is already the name of "
                    f"data.sources[{seen[s.name]}]"
                )
            seen[s.name] = i
        if sum(s.kind == "synth" for s in self.sources) > 1:
            raise ValueError("data.sources: at most one source of kind synth (one world)")
        return self

    @property
    def synth(self) -> SourceConfig | None:
        return next((s for s in self.sources if s.kind == "synth"), None)

    @property
    def real(self) -> list[SourceConfig]:
        return [s for s in self.sources if s.kind != "synth"]


# --- post-training sections (issue 17) ---


WORLD_INSTRUCTION_KINDS = ("vqa", "pointing", "captions", "multi_turn", "reading")


class SFTSourceConfig(_Strict):
    """One source of SFT conversations: the synthetic world's instruction sets (from its
    training scenes only) or chat files (JSONL / Parquet) in a common chat layout."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=64,
        description="unique; the rows' source tag (world kinds become NAME/vqa, NAME/pointing...)",
    )
    kind: Literal["world", "chat", "documents"] = Field(
        description="world: instruction sets from the world's training scenes; chat: `paths`; "
        "documents: OBELICS shards whose metadata.conversation holds the turns (a `data:` "
        "source ingested with `vloom ingest hf`, e.g. RUN/sources/NAME)"
    )
    counts: dict[str, int] = Field(
        default_factory=lambda: {
            "vqa": 4000,
            "pointing": 1000,
            "captions": 1000,
            "multi_turn": 1000,
        },
        description="world: conversations per kind (vqa, pointing, captions, multi_turn, reading)",
    )
    max_turns: int = Field(4, ge=2, le=8, description="world multi_turn: questions per image, 2..")
    paths: list[str] = Field(
        default_factory=list,
        description="chat, documents: files or directories (chat: .jsonl, .parquet, or .json "
        "holding an array of rows; a directory is walked for .jsonl and .parquet)",
    )
    format: Literal["auto", "llava", "cauldron", "openai"] = Field(
        "auto", description="chat: the layout (auto: detected per file from its columns / keys)"
    )
    image_root: str | None = Field(
        None,
        description="chat: directory image paths are relative to (default: the file's own); "
        "a path outside it is rejected",
    )
    limit: int | None = Field(
        None, ge=1, description="chat, documents: at most this many rows from this source"
    )

    @model_validator(mode="before")
    @classmethod
    def _one_path(cls, raw: Any) -> Any:
        return _path_to_paths(raw)

    @model_validator(mode="after")
    def _fits_kind(self) -> SFTSourceConfig:
        where = f"sft source {self.name!r}"
        if self.kind == "world":
            bad = sorted(set(self.counts) - set(WORLD_INSTRUCTION_KINDS))
            if bad:
                raise ValueError(
                    f"{where}: counts has unknown kind {bad[0]!r}; known: "
                    f"{', '.join(WORLD_INSTRUCTION_KINDS)}"
                )
            if any(v < 0 for v in self.counts.values()):
                raise ValueError(f"{where}: counts must be >= 0")
            if self.paths:
                raise ValueError(f"{where}: kind world takes no paths")
        elif not self.paths:
            raise ValueError(f"{where}: kind {self.kind} needs path or paths")
        return self


class SFTConfig(_Strict):
    """Supervised fine-tuning data: conversations, their template, loss on assistant turns.

    `vloom.pack.sft.build_sft_data` turns it into SFT shards (short conversations packed
    whole into rows of `seq_len + 1` tokens, loss mask on assistant turns, segments)."""

    sources: list[SFTSourceConfig] = Field(
        default_factory=lambda: [SFTSourceConfig(name="world", kind="world")],
        min_length=1,
        description="where conversations come from (default: the world's instruction sets)",
    )
    template: Literal["auto", "vloom", "hf"] = Field(
        "auto",
        description="vloom: `Question: ... Answer: ...<eos>` (the world's eval prompt, see "
        "vloom.chat.template); hf: the chat_template of model.lm's tokenizer; auto: hf when that "
        "tokenizer has one, else vloom",
    )
    system: str | None = Field(
        None, description="a system prompt for conversations that have none (None: no system turn)"
    )
    seq_len: int | None = Field(None, ge=16, description="tokens per SFT row; None = pack.seq_len")
    overlong: Literal["truncate", "reject"] = Field(
        "truncate",
        description="a conversation longer than a row: truncate: keep its whole turns that fit "
        "(rejected as too_long when not even the first answer fits); reject: reject it",
    )
    seed: int | None = Field(
        None, description="instruction sets, shuffling and packing order; None = the run's seed"
    )
    pack_window: int = Field(
        512,
        ge=1,
        description="conversations packed together (first-fit decreasing) at a time; 1: one "
        "conversation per row (no packing; on the demo's 7,000: 86% padding against 4% at 512)",
    )

    @model_validator(mode="after")
    def _names_unique(self) -> SFTConfig:
        names = [s.name for s in self.sources]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"sft.sources: two sources named {dup!r}")
        return self


class ScoreConfig(_Strict):
    """SCoRe's constants (Kumar et al.): stage I trains attempt 2 while a strong KL (beta2)
    holds attempt 1 at the reference; stage II pays r(y1) + r(y2) + alpha * (r(y2) - r(y1))
    with the weak KL (beta1) on both attempts."""

    alpha: float = Field(10.0, ge=0, description="stage II's bonus for improving on attempt 1")
    beta1: float = Field(0.01, ge=0, description="KL to the reference on every attempt")
    beta2: float = Field(0.1, ge=0, description="stage I's KL on attempt 1 (keeps it at base)")
    credit: Literal["attempt", "trajectory"] = Field(
        "attempt",
        description="stage II: attempt: each attempt's tokens learn from its own reward, r(y1) "
        "and r(y2) + alpha * (r(y2) - r(y1)); trajectory: both from the episode's return "
        "(1 - alpha) * r(y1) + (1 + alpha) * r(y2): alpha 1 pays attempt 1 only for the answer "
        "it leads to (configs/score.yaml); with alpha > 1 it learns to answer wrong first "
        "(measured on the demo at alpha 10: acc@t1 0.67 -> 0.003)",
    )
    stage2_t1_kl: float | None = Field(
        None,
        ge=0,
        description="stage II's KL on attempt 1; None: beta1, the paper's weak KL on both "
        "attempts. beta2 keeps holding attempt 1 at the base in stage II, so attempt 2 has a "
        "first answer to improve on",
    )


class RLConfig(_Strict):
    """Online RL with verifiable rewards (GRPO-style groups, KL to a frozen reference)."""

    reward: str = Field(
        "exact", description="a registered reward (vloom.rl.rewards) or 'module:function'"
    )
    qtypes: list[Literal["colour", "shape", "count", "position", "count_sum", "pointing"]] = Field(
        default_factory=lambda: ["colour", "shape", "count", "position"],
        description="question types of the prompts (count_sum: two figures, the sum of their "
        "counts; pointing: a point inside the object's cell)",
    )
    prompts: int = Field(
        2000, ge=1, description="size of the prompt pool, drawn from the world's training scenes"
    )
    prompts_per_step: int = Field(8, ge=1, description="questions per step (split over ranks)")
    group_size: int = Field(8, ge=2, description="samples per question (the GRPO group)")
    max_new_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, gt=0)
    kl_coef: float = Field(0.05, ge=0, description="KL to the reference (grpo recipe)")
    updates: int = Field(
        1, ge=1, description="optimizer updates per rollout batch (PPO-style clipping when > 1)"
    )
    clip: float = Field(0.2, gt=0, description="PPO ratio clip (used when updates > 1)")
    attempts: Literal[1, 2] = Field(
        1, description="answers per question: 2 = a second attempt after SECOND_ATTEMPT"
    )
    recipe: Literal["grpo", "score", "score_stage1", "score_stage2"] = Field(
        "grpo",
        description="grpo: reward of the last attempt; score: the rl stages in order are "
        "SCoRe's stage I then stage II; score_stage1 / score_stage2: every rl stage is that one",
    )
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    reference: str | None = Field(
        None,
        description="checkpoint of the frozen KL reference (default: the stage's starting "
        "weights); same architecture as the policy",
    )
    seed: int | None = Field(None, description="prompt order and sampling; None = the run's")
    batch_size: int = Field(64, ge=1, description="rollouts decoded together")
    use_cache: bool = Field(
        True, description="rollouts decode with the KV cache (False: recompute each prefix)"
    )

    @model_validator(mode="after")
    def _attempts_fit(self) -> RLConfig:
        if self.recipe != "grpo" and self.attempts != 2:
            raise ValueError(f"rl.recipe {self.recipe} answers twice: set rl.attempts: 2")
        return self


class ExperimentConfig(_Strict):
    name: str = "experiment"
    seed: int = 0
    out_dir: str = Field("runs/experiment", description="run directory for every stage's output")
    data: DataConfig | None = Field(
        None, description="the sources; None = the synthetic world alone (the `synth` section)"
    )
    synth: SynthConfig = Field(default_factory=SynthConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    pack: PackConfig = Field(default_factory=PackConfig)
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="the architecture; `{from: CHECKPOINT}` reads it from CHECKPOINT/config.json",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    control: bool = Field(
        False, description="also train a text-only control with the same budget (images never on)"
    )
    sft: SFTConfig | None = Field(None, description="data for `kind: sft` training stages")
    rl: RLConfig | None = Field(None, description="settings for `kind: rl` training stages")

    @model_validator(mode="after")
    def _post_training_sections(self) -> ExperimentConfig:
        for st in self.train.stages:
            if st.kind == "sft" and self.sft is None:
                raise ValueError(f"train.stages.{st.name}: kind sft needs an `sft` section")
            if st.kind == "rl" and self.rl is None:
                raise ValueError(f"train.stages.{st.name}: kind rl needs an `rl` section")
        n_rl = sum(st.kind == "rl" for st in self.train.stages)
        if self.rl is not None and self.rl.recipe == "score" and n_rl != 2:
            raise ValueError(
                f"rl.recipe score: needs two rl stages (stage I, stage II), train.stages has {n_rl}"
            )
        return self

    @model_validator(mode="after")
    def _data_fits(self) -> ExperimentConfig:
        if self.data is None:
            return self
        if self.data.synth is None:
            # in-training tasks read the same eval sets: check them here, not at step 0
            asked = [("eval.tasks", t) for t in self.eval.tasks] + [
                ("eval.during_training.tasks", t) for t in self.eval.during_tasks
            ]
            named = [(where, t.partition(":")[0].strip()) for where, t in asked]
            world = [(w, n) for w, n in named if n in WORLD_TASKS]
            if world:
                raise ValueError(
                    f"{world[0][0]}: {world[0][1]} reads the synthetic world's eval sets and "
                    "data.sources has no synth source (text_ppl and caption_loss read the "
                    "held-out real documents)"
                )
            held = [(w, n) for w, n in named if n in ("text_ppl", "caption_loss")]
            if held and self.data.held_out_per_mille == 0:
                raise ValueError(
                    f"{held[0][0]}: {held[0][1]} needs held-out documents, but "
                    "data.held_out_per_mille is 0 and there is no synth source"
                )
        if any(s.weight is not None for s in self.data.sources) and any(
            st.name == "mix" for st in self.curate.steps
        ):
            raise ValueError(
                "curate.steps: a mix step and data.sources weights both set the mixture; keep one"
            )
        return self


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the field."""


def _fmt_errors(path: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{path}: " + "; ".join(parts)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file; `overrides` are dotted keys (e.g. {"train.steps": 10})."""
    path = Path(path)
    raw = read_yaml(path)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    return config_from_dict(raw, source=str(path))


def read_yaml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; one-line ConfigErrors otherwise."""
    if not path.exists():
        raise ConfigError(f"{path}: {what} not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return raw


def load_curate_config(path: str | Path) -> CurateConfig:
    """A bare curate YAML (`steps: [...]`) or the `curate` section of an experiment YAML."""
    path = Path(path)
    raw = read_yaml(path)
    if "steps" not in raw:
        return config_from_dict(raw, source=str(path)).curate
    try:
        return CurateConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(str(path), e)) from None


def config_from_dict(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    from vloom.model.lm_config import resolve_lm  # model.lm.init: the LM's sizes
    from vloom.model.tower_config import resolve_raw  # model.vision.init: the tower's sizes

    raw = resolve_lm(resolve_raw(_model_from(raw, source), source), source)
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(source, e)) from None
    _check_init_from(cfg, source)
    return cfg


def _checkpoint_model(ckpt: str, source: str, what: str) -> dict[str, Any] | None:
    """The `model` section of CKPT/config.json; None when there is no such file."""
    path = Path(ckpt) / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        meta = read_json(path)
    except ValueError as e:
        raise ConfigError(f"{source}: {what}: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise ConfigError(f"{source}: {what}: {path} has no model section")
    return meta["model"]


def _model_from(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """`model: {from: CHECKPOINT}`: the architecture is the checkpoint's, said in the config
    (a grown or imported checkpoint continues without pasting its model.yaml)."""
    model = raw.get("model")
    if not (isinstance(model, dict) and "from" in model):
        return raw
    others = sorted(k for k in model if k != "from")
    if others:
        raise ConfigError(
            f"{source}: model.from takes the checkpoint's whole model section; "
            f"remove model.{others[0]} (or drop model.from)"
        )
    ckpt = str(model["from"])
    section = _checkpoint_model(ckpt, source, "model.from")
    if section is None:
        raise ConfigError(f"{source}: model.from: {Path(ckpt) / RUN_CONFIG} not found")
    return {**raw, "model": section}


def _flat(d: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_init_from(cfg: ExperimentConfig, source: str) -> None:
    """`train.init_from` loads weights into the model the config describes, so that model must
    be the checkpoint's: a mismatch is a one-line error naming the fields, never a silent swap.
    A checkpoint that does not exist yet is left to the trainer, which names it."""
    if not cfg.train.init_from:
        return
    what = f"train.init_from {cfg.train.init_from}"
    section = _checkpoint_model(cfg.train.init_from, source, what)
    if section is None:
        return
    try:
        theirs = ModelConfig.model_validate(section)
    except ValidationError as e:
        raise ConfigError(_fmt_errors(f"{source}: {what}", e)) from None
    if theirs == cfg.model:
        return
    a = _flat(cfg.model.model_dump(mode="json"), "model.")
    b = _flat(theirs.model_dump(mode="json"), "model.")
    diff = [f"{k} ({a.get(k)!r} here, {b.get(k)!r} there)" for k in a if a.get(k) != b.get(k)]
    more = f" and {len(diff) - 4} more" if len(diff) > 4 else ""
    raise ConfigError(
        f"{source}: {what}: the model section differs from the checkpoint's in "
        f"{', '.join(diff[:4])}{more}; write `model: {{from: {cfg.train.init_from}}}` to use "
        "the checkpoint's architecture"
    )


def check_model_dirs(cfg: ExperimentConfig) -> None:
    """The local Hugging Face directories the model starts from exist: checked when a run
    starts, not at load, so a config naming another machine's weights (configs/nanovlm.yaml)
    parses; until they exist their sizes are not filled in, so nothing may use the model."""
    for name, path in (
        ("model.lm.init", cfg.model.lm.init),
        ("model.lm.tokenizer", cfg.model.lm.tokenizer),
        ("model.vision.init", cfg.model.vision.init),
    ):
        if path is not None and not Path(path).is_dir():
            raise ConfigError(f"{name}: {path}: no such directory (local Hugging Face weights)")


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs -> {dotted key: value}, each value parsed as YAML
    ("100" -> 100, "false" -> False, "[a, b]" -> a list)."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"--set {p!r}: expected key=value (e.g. train.steps=100)")
        k, v = p.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def nested_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set` pairs as a nested mapping (a config with no file behind it)."""
    raw: dict[str, Any] = {}
    for k, v in parse_overrides(pairs).items():
        set_dotted(raw, k, v)
    return raw


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` (dotted; a number indexes a list: data.sources.0.paths) in the raw config."""
    node: Any = d
    parts = key.split(".")
    for i, p in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not (p.isdigit() and int(p) < len(node)):
                raise ConfigError(f"override {key}: {p} is not an index of a {len(node)}-item list")
            if last:
                node[int(p)] = value
            node = node[int(p)]
        elif last:
            node[p] = value
        else:
            node = node.setdefault(p, {})
        if not last and not isinstance(node, (dict, list)):
            raise ConfigError(f"override {key}: {p} is not a section")


def dump_config(cfg: ExperimentConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")
