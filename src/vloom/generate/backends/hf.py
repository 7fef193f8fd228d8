"""The `hf` backend: a local Hugging Face causal LM directory, through transformers `generate`.

Prompt (`template`): `auto` renders with the tokenizer's chat template when it has one
(`apply_chat_template`, with the generation prompt), else `plain`; `hf` requires the chat
template; `plain` joins the turns' texts with blank lines and tokenizes them as the tokenizer
does by default (its bos, if its post-processor adds one); `vloom` renders vloom's own
`Question: ... Answer:` template with the tokenizer's bos/eos (a vloom checkpoint exported by
`vloom.model.hf_export` then reads exactly the ids the vloom backend gives it, so the two
backends can be compared on the same weights).

Decoding is vloom's token choice (`generate.choose.choose_tokens`, the uniforms drawn per
request from its seed as `generate.sample` draws them), applied in a logits processor that
leaves one finite logit per row, under greedy `generate`: a request's text depends on its own
seed, not on the batch, and equals the vloom backend's on exported weights up to float
rounding. The `<image>` and pad tokens are never chosen (as in vloom). Requests run in batches of
equal sampling settings and, by default, equal prompt length (no padding, as vloom's sampler;
`options: {pad: true}` left-pads mixed lengths into fuller batches, whose rounding may then
differ from an unpadded run). A prompt that does not fit `max_position_embeddings` with its
max_new_tokens is `context_overflow`.

A VLM directory (its config.json has a `vision_config`: LLaVA, and so a vloom checkpoint
exported with the siglip/llava vision side) loads with AutoModelForImageTextToText and
AutoProcessor: images are decoded as vloom decodes them (`media.decode_image`, RGB) and
prepared by the processor, the prompt's image placeholders expanded by it; the rows' other
inputs (pixel values) are concatenated along dim 0, as LLaVA-style models take them, and
mixed lengths always left-pad. A text-only model answers `backend_error` for a request with
images, as it does for an image that does not decode.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from vloom.generate.backends import files_sha256
from vloom.generate.generator import BackendError, GeneratorConfig, Request
from vloom.sequence import IMAGE

TEMPLATES = ("auto", "hf", "plain", "vloom")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "processor_config.json",
)


class HFBackend:
    name = "hf"

    def __init__(
        self,
        hf_dir: str | Path,
        template: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        dtype: str = "float32",
        pad: bool = False,
        threads: int = 1,
    ) -> None:
        import transformers

        from vloom.evaluate.harness import resolve_device
        from vloom.ondisk import read_json_object

        hf_dir = Path(hf_dir)
        cfg_json = read_json_object(hf_dir / "config.json", "a Hugging Face model's config")
        if template not in TEMPLATES:
            raise ValueError(f"generator template {template!r}: expected one of {TEMPLATES}")
        self.device = resolve_device(device)
        self.vlm = "vision_config" in cfg_json
        where = {"local_files_only": True}
        if self.vlm:  # the processor prepares images and expands image placeholders
            self.proc = transformers.AutoProcessor.from_pretrained(str(hf_dir), **where)
            self.tok = self.proc.tokenizer
            auto = transformers.AutoModelForImageTextToText
        else:
            self.proc = None
            self.tok = transformers.AutoTokenizer.from_pretrained(str(hf_dir), **where)
            auto = transformers.AutoModelForCausalLM
        chat = getattr(self.proc or self.tok, "chat_template", None) or None
        if template == "hf" and not chat:
            raise ValueError(f"generator template hf: {hf_dir} has no chat_template")
        self.template = ("hf" if chat else "plain") if template == "auto" else template
        model = auto.from_pretrained(str(hf_dir), dtype=getattr(torch, dtype), **where)
        self.model = model.to(self.device).eval()
        self.batch_size, self.pad = batch_size, pad or self.vlm
        self.threads = threads  # torch threads while generating on the CPU (torch_threads)
        text_cfg = getattr(self.model.config, "text_config", None) or self.model.config
        self.limit = int(getattr(text_cfg, "max_position_embeddings", 0) or 1 << 30)
        self.eos = self.tok.eos_token_id
        if self.eos is None:
            self.eos = text_cfg.eos_token_id
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.eos
        self.image = getattr(self.proc, "image_token", None) or IMAGE
        image_id = (
            self.tok.convert_tokens_to_ids(self.image) if self.image in self.tok.vocab else None
        )
        self.banned = [i for i in {image_id, self.tok.pad_token_id} - {None, self.eos}]
        weights = sorted(hf_dir.glob("*.safetensors")) or sorted(hf_dir.glob("*.bin"))
        tok_files = [hf_dir / f for f in TOKENIZER_FILES if (hf_dir / f).is_file()]
        used = chat if self.template == "hf" else None
        self._identity = {
            "backend": "hf",
            "weights": files_sha256(weights),
            "config": files_sha256([hf_dir / "config.json"]),
            "tokenizer": files_sha256(tok_files),
            "template": self.template,
            "chat_template": hashlib.sha256(str(used).encode()).hexdigest() if used else None,
            "dtype": dtype,
        }

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> HFBackend:
        if not cfg.path:
            raise ValueError("generator.path: the hf backend needs a model directory")
        opts = dict(cfg.options)
        unknown = set(opts) - {"dtype", "pad"}
        if unknown:
            raise ValueError(f"generator.options: unknown for hf: {sorted(unknown)}")
        return cls(cfg.path, cfg.template, cfg.device, cfg.batch_size, threads=cfg.threads, **opts)

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def prompt_text(self, req: Request) -> str:
        """The request as the text the tokenizer (or processor) reads: images as the image
        placeholder, where the template puts them."""
        if self.template == "hf":
            msgs: list[dict[str, Any]] = []
            first_user = True
            for role, text in req.turns:
                if self.vlm:  # processors' templates take typed parts
                    parts: list[dict[str, str]] = []
                    if role == "user" and first_user:
                        parts, first_user = [{"type": "image"}] * len(req.images), False
                    msgs.append({"role": role, "content": parts + [{"type": "text", "text": text}]})
                else:
                    msgs.append({"role": role, "content": text})
            return (self.proc or self.tok).apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=True
            )
        if self.template == "plain":
            return self.image * len(req.images) + "\n\n".join(t for _, t in req.turns if t)
        from vloom.chat.conversation import Conversation
        from vloom.chat.template import VloomTemplate
        from vloom.generate.backends.vloom import request_turns
        from vloom.sequence import TokenLayout

        layout = TokenLayout(pad=self.pad_id, bos=self.tok.bos_token_id, eos=self.eos, image=-1)
        pieces = VloomTemplate(layout).render(Conversation("", request_turns(req))).pieces
        name = self.tok.convert_ids_to_tokens
        return "".join(
            name(p) if isinstance(p, int) else self.image if isinstance(p, bytes) else p
            for p in pieces
        )

    def prompt(self, req: Request) -> tuple[list[int], dict[str, torch.Tensor]]:
        """The request's prompt ids and the model's other inputs for it (pixel values)."""
        text = self.prompt_text(req)
        special = self.template == "plain"  # templates write their own bos
        if not self.vlm:
            if req.images:
                raise BackendError("backend_error", "this HF model is text-only: no images")
            return self.tok(text, add_special_tokens=special)["input_ids"], {}
        from vloom.media import decode_image

        images = [decode_image(b) for b in req.images] or None
        enc = self.proc(text=[text], images=images, return_tensors="pt")
        ids = enc.pop("input_ids")[0].tolist()
        enc.pop("attention_mask", None)
        return ids, dict(enc)

    def generate(self, requests: list[Request]) -> list[str | BackendError]:
        from vloom.generate.backends import torch_threads

        with torch_threads(self.threads, self.device):
            return self._generate(requests)

    def _generate(self, requests: list[Request]) -> list[str | BackendError]:
        out: list[str | BackendError | None] = [None] * len(requests)
        prompts: dict[int, tuple[list[int], dict[str, torch.Tensor]]] = {}
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            try:
                ids, extra = self.prompt(r)
            except BackendError as e:
                out[i] = e
                continue
            except ValueError as e:  # an image that does not decode, a template error
                out[i] = BackendError("backend_error", str(e))
                continue
            if not ids or len(ids) + r.max_new_tokens > self.limit:
                out[i] = BackendError(
                    "context_overflow",
                    f"{len(ids)} prompt tokens + {r.max_new_tokens} new exceed the model's "
                    f"{self.limit}",
                )
                continue
            prompts[i] = (ids, extra)
            key = (r.temperature, r.top_p, r.max_new_tokens, r.stop)
            groups[key if self.pad else (*key, len(ids))].append(i)
        for (temp, top_p, new, stop, *_), idx in groups.items():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                texts = self._run(
                    [prompts[i] for i in chunk], [requests[i].seed for i in chunk],
                    temp, top_p, new, stop,
                )  # fmt: skip
                for i, t in zip(chunk, texts, strict=True):
                    out[i] = t
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def _run(
        self,
        prompts: list[tuple[list[int], dict[str, torch.Tensor]]],
        seeds: list[int],
        temperature: float,
        top_p: float,
        new: int,
        stop: tuple[str, ...],
    ) -> list[str]:
        from transformers import GenerationConfig, LogitsProcessorList

        from vloom.generate.sampling import cut_at_stop

        width = max(len(p) for p, _ in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (p, _) in enumerate(prompts):  # left padding: each row's next token at the end
            ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = 1
        # the other inputs (pixel values, image sizes) of the rows, one after another
        extra = {
            k: torch.cat([e[k] for _, e in prompts if k in e]).to(self.device)
            for k in {k for _, e in prompts for k in e}
        }
        choose = _Choose(width, seeds, temperature, top_p, new, self.banned)
        gen = GenerationConfig(
            max_new_tokens=new, do_sample=False, eos_token_id=self.eos, pad_token_id=self.pad_id
        )
        stops = {"stop_strings": list(stop), "tokenizer": self.tok} if stop else {}
        seq = self.model.generate(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            generation_config=gen,
            logits_processor=LogitsProcessorList([choose]),
            **extra,
            **stops,
        )
        texts = []
        for row in seq[:, width:].tolist():
            if self.eos in row:
                row = row[: row.index(self.eos)]
            texts.append(cut_at_stop(self.tok.decode(row), stop).strip())
        return texts


class _Choose:
    """A logits processor that makes vloom's choice (choose_tokens with each row's own
    uniforms) and leaves only that token finite, so greedy generate takes it."""

    def __init__(
        self,
        start: int,
        seeds: list[int],
        temperature: float,
        top_p: float,
        new: int,
        banned: list[int],
    ) -> None:
        from vloom.generate.sampling import _uniforms  # the sampler's own per-seed draws

        self.start, self.temperature, self.top_p, self.banned = start, temperature, top_p, banned
        self.u = torch.stack([_uniforms(s, 0, new) for s in seeds]) if temperature > 0 else None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        from vloom.generate.choose import choose_tokens

        step = input_ids.shape[1] - self.start
        logits = scores.float().clone()  # [b, V]
        logits[:, self.banned] = float("-inf")
        u = self.u[:, step].to(logits.device) if self.u is not None else None
        nxt = choose_tokens(logits, self.temperature, 0, self.top_p, u)  # [b]
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, nxt[:, None], 0.0)
