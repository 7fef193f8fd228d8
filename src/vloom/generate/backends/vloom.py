"""The `vloom` backend: a vloom checkpoint directory, run in this process.

Loading is evaluation's (`evaluate.harness.load_checkpoint`: the checkpoint's tokenizer unless
one is named). A request's conversation goes through the chat template SFT trains with
(`chat.template.make_template`: vloom's `Question: ... Answer:` template, or the checkpoint
tokenizer's HF chat template when `template` is hf, or auto and that tokenizer has one) and
becomes ids and images as `vloom serve` makes them (`chat.prompt.chat_prompt`: images
prepared as evaluation prepares them). Requests run through `vloom.generate.sample` with the
KV cache, those of equal sampling settings together, each with its own seed (its text
depends on its request alone), on `threads` torch threads when on the CPU (default one:
`backends.torch_threads`). A prompt that leaves no room for max_new_tokens in the
model's context is `context_overflow` (never cut: a cut prompt asks another question); an
image that does not decode is `backend_error`.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from vloom.generate.backends import files_sha256, torch_threads
from vloom.generate.generator import BackendError, GeneratorConfig, Request
from vloom.ondisk import RUN_CONFIG, WEIGHTS, read_json


class VloomBackend:
    name = "vloom"

    def __init__(
        self,
        ckpt_dir: str | Path,
        tokenizer: str | Path | None = None,
        template: str = "auto",
        device: str = "auto",
        batch_size: int = 16,
        threads: int = 1,
    ) -> None:
        from vloom.chat.template import make_template
        from vloom.evaluate.harness import load_checkpoint, resolve_device

        ckpt_dir = Path(ckpt_dir)
        self.device = resolve_device(device)
        self.model, self.tok = load_checkpoint(ckpt_dir, tokenizer, self.device)
        meta = read_json(ckpt_dir / RUN_CONFIG)
        tok_path = Path(tokenizer or meta["tokenizer"])
        if template not in ("auto", "vloom", "hf"):
            raise ValueError(f"generator template {template!r}: expected auto, vloom or hf")
        tok_dir = self.model.cfg.lm.tokenizer_dir
        if tok_dir is not None and not Path(tok_dir).is_dir():
            if template == "hf":
                raise FileNotFoundError(f"{tok_dir}: the checkpoint's HF tokenizer dir is gone")
            tok_dir = None  # auto: an HF dir moved away leaves vloom's template
        self.template = make_template(template, self.model.layout, tok_dir)
        self.batch_size, self.threads = batch_size, threads
        chat = getattr(getattr(self.template, "tok", None), "chat_template", None) or ""
        meta.pop("tokenizer", None)  # a path: where the file lies does not change the model
        self._identity = {
            "backend": "vloom",
            "weights": files_sha256([ckpt_dir / WEIGHTS]),
            "meta": hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest(),
            "tokenizer": files_sha256([tok_path]),
            "template": self.template.name,
            "chat_template": hashlib.sha256(chat.encode()).hexdigest() if chat else None,
        }

    @classmethod
    def from_config(cls, cfg: GeneratorConfig) -> VloomBackend:
        if not cfg.path:
            raise ValueError("generator.path: the vloom backend needs a checkpoint directory")
        return cls(cfg.path, cfg.tokenizer, cfg.template, cfg.device, cfg.batch_size, cfg.threads)

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def prompt(self, req: Request) -> tuple[list[int], Any]:
        """The request's prompt ids and its images as the model takes them (None: none);
        `vloom serve` builds its prompts the same way (vloom.chat.prompt)."""
        from vloom.chat.prompt import chat_prompt

        return chat_prompt(self.model, self.tok, self.template, request_turns(req))

    def generate(self, requests: list[Request]) -> list[str | BackendError]:
        from vloom.generate.sampling import sample
        from vloom.train.denormal import flush_denormals

        limit = self.model.lm.max_seq_len
        out: list[str | BackendError | None] = [None] * len(requests)
        prompts: dict[int, tuple[list[int], Any]] = {}
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            try:
                ids, pics = self.prompt(r)
            except ValueError as e:  # ImageError, ChatError: this request only
                out[i] = BackendError("backend_error", str(e))
                continue
            if len(ids) + r.max_new_tokens > limit:
                out[i] = BackendError(
                    "context_overflow",
                    f"{len(ids)} prompt tokens + {r.max_new_tokens} new exceed the model's {limit}",
                )
                continue
            prompts[i] = (ids, pics)
            groups[(r.temperature, r.top_p, r.max_new_tokens, r.stop)].append(i)
        # as evaluation does: denormals slow CPU ops
        with flush_denormals(self.device), torch_threads(self.threads, self.device):
            for (temp, top_p, new, stop), idx in groups.items():
                got = sample(
                    self.model,
                    self.tok,
                    [prompts[i][0] for i in idx],
                    [prompts[i][1] for i in idx],
                    self.device,
                    max_new_tokens=new,
                    temperature=temp,
                    top_p=top_p,
                    stop=stop,
                    batch_size=self.batch_size,
                    seeds=[requests[i].seed for i in idx],
                )
                for i, s in zip(idx, got, strict=True):
                    out[i] = s.text
        return out  # type: ignore[return-value]


def request_turns(req: Request) -> list[Any]:
    """The request as chat Turns: its images lead the first user turn, before its text."""
    from vloom.chat.conversation import Turn

    turns, first_user = [], True
    for role, text in req.turns:
        parts: tuple[str | bytes, ...] = (text,) if text else ()
        if role == "user" and first_user:
            parts, first_user = (*req.images, *parts), False
        turns.append(Turn(role, parts))
    return turns
