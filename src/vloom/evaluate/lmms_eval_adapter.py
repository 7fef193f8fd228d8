"""lmms-eval adapter: a vloom checkpoint as lmms-eval model "vloom", images passed through, so
any lmms-eval task (multiple choice by likelihood, generation) can score a vloom VLM.

    import vloom.evaluate.lmms_eval_adapter  # registers "vloom"
    lmms_eval.evaluator.simple_evaluate(model="vloom", model_args="pretrained=CKPT", ...)

The text-only counterpart is `lm_eval_adapter`. A request's images (`doc_to_visual`: Pillow
images, image bytes, `{"bytes": ...}` or file paths) become vloom's layout exactly as vloom's
own tasks build it: `<bos>`, then each image's `<image>` block (prepared as pack prepared it),
then the text; an MMMU `<image k>` or a bare `<image>` in the context puts that image where it
stands (mcbench's rule). Generation is vloom's greedy KV-cache decoding, whatever the task's
temperature.

Two lmms-eval conventions the adapter follows:
- `loglikelihood` returns (negative log-likelihood summed over the continuation's tokens,
  is_greedy): lmms-eval's multiple-choice scoring takes the argmin (its own models return a
  loss; EvolvingLMMs-Lab/lmms-eval#370), so a log-probability would pick the least likely
  option. Its `perplexity` metric assumes the opposite sign and is not meaningful here.
- lmms-eval 0.7.3 turns every response that is not a string into `str(response)`
  (`unwrap_generation_output`), which breaks its own multiple-choice scoring; when the
  installed version does that, each pair travels in a `GenerationResult`, which it unwraps
  back to the pair. It also imports `filelock._api`, which filelock 4 removed, to patch a
  multi-process lock deadlock; with filelock 4 that patch is skipped (one process here).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

import lmms_eval.evaluator
import torch
import torch.nn.functional as F
from lmms_eval.api.instance import GenerationResult, unwrap_generation_output
from lmms_eval.api.model import lmms
from lmms_eval.api.registry import register_model
from lmms_eval.models import MODEL_REGISTRY_V2
from lmms_eval.models.registry_v2 import ModelManifest
from PIL import Image
from tqdm import tqdm

from vloom.evaluate.benchmarks.row import PLACEHOLDER
from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.harness import load_for_harness
from vloom.evaluate.scoring import Images, batch_images
from vloom.evaluate.tasks.data import image_input
from vloom.evaluate.tasks.mcbench import encode_prompt
from vloom.sequence import encode_text

if importlib.util.find_spec("filelock._api") is None:  # filelock >= 4 (see module doc)
    lmms_eval.evaluator._enable_reentrant_filelocks._patched = True

# Whether this lmms-eval keeps a (float, bool) response as it is (see module doc).
_PAIRS_SURVIVE = unwrap_generation_output((0.0, True))[0] == (0.0, True)

Encoded = tuple[list[int], Images]  # prompt token ids and its images


@register_model("vloom")
class VloomLMM(lmms):
    is_simple = True

    def __init__(
        self,
        pretrained: str,
        tokenizer: str | None = None,
        batch_size: int | str = 16,
        device: str = "cpu",
        max_new_tokens: int = 32,
        quiet: bool = True,
        **_: Any,  # lmms-eval passes settings that do not apply (max_batch_size, ...)
    ) -> None:
        super().__init__()
        self.model, self.tok, self._device, self.batch_size = load_for_harness(
            pretrained, tokenizer, device, batch_size
        )
        self.max_new_tokens = int(max_new_tokens)
        self.quiet = quiet

    # -- requests -> vloom inputs ---------------------------------------------------------

    def _doc(self, task: str, split: str, doc_id: int) -> dict:
        return self.task_dict[task][split][doc_id]

    def _images(self, req: Any, doc: dict) -> list[bytes]:
        """The request's images as encoded bytes, in `doc_to_visual` order."""
        visual = req.args[2]
        found = visual(doc) if callable(visual) else visual
        out: list[bytes] = []
        stack = [found] if found is not None else []
        while stack:  # flatten nested lists, keeping order
            v = stack.pop(0)
            if isinstance(v, (list, tuple)):
                stack[:0] = list(v)
            elif isinstance(v, Image.Image):
                # Lossless: decoding these bytes gives back the same RGB pixels.
                buf = io.BytesIO()
                v.convert("RGB").save(buf, format="PNG", compress_level=1)
                out.append(buf.getvalue())
            elif isinstance(v, (bytes, bytearray)):
                out.append(bytes(v))
            elif isinstance(v, dict) and v.get("bytes"):
                out.append(v["bytes"])
            elif isinstance(v, (str, Path)) and Path(v).is_file():
                out.append(Path(v).read_bytes())
            elif v is not None:
                raise ValueError(
                    f"{req.task_name} doc {req.doc_id}: vloom takes images only, "
                    f"doc_to_visual gave {type(v).__name__} {str(v)[:60]!r}"
                )
        return out

    def _pics(self, req: Any, doc: dict, seen: dict) -> list[tuple[torch.Tensor, int]]:
        """Each image as the model sees it (pixels, `<image>` count), once per document."""
        key = tuple(req.args[3:6])  # doc_id, task, split
        if key not in seen:
            where = f"{key[1]} doc {key[0]}"
            ims = self._images(req, doc)
            seen[key] = [
                image_input(self.model, b, f"{where}: image {i + 1}") for i, b in enumerate(ims)
            ]
        return seen[key]

    def _encode(self, context: str, pics: list[tuple[torch.Tensor, int]]) -> Encoded:
        # A bare <image> is the next image; numbered ones follow mcbench's placement.
        parts = context.split("<image>")
        context = parts[0] + "".join(f"<image {k}>{p}" for k, p in enumerate(parts[1:], 1))
        return encode_prompt(self.model, self.tok, context, pics)

    def _split(
        self, context: str, continuation: str, pics: list[tuple[torch.Tensor, int]]
    ) -> tuple[Encoded, list[int]]:
        """Prompt and continuation ids, the continuation tokenised together with the context
        where that leaves the context's tokens unchanged (merges across the boundary)."""
        continuation = PLACEHOLDER.sub(r"image \1", continuation).replace("<image>", "image")
        ctx, pixels = self._encode(context, pics)
        whole, _ = self._encode(context + continuation, pics)
        if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            return (ctx, pixels), whole[len(ctx) :]
        return (ctx, pixels), encode_text(self.tok, continuation)

    # -- lmms API -------------------------------------------------------------------------

    @torch.no_grad()
    def loglikelihood(self, requests: list[Any]) -> list[Any]:
        """(summed negative log-likelihood of the continuation, is_greedy) per request."""
        limit = self.model.lm.max_seq_len
        items, seen = [], {}
        for r in requests:
            context, target, _visual, doc_id, task, split = r.args
            doc = self._doc(task, split, doc_id)
            cont = target if isinstance(target, str) else str(target(doc))
            (p, px), c = self._split(context, cont, self._pics(r, doc, seen))
            if not c:
                raise ValueError(f"{task} doc {doc_id}: empty continuation")
            if len(p) + len(c) > limit:
                if px is not None or len(c) >= limit:
                    raise ValueError(
                        f"{task} doc {doc_id}: {len(p) + len(c)} tokens exceed the model's {limit}"
                    )
                p = p[len(p) + len(c) - limit :]  # text only: keep the end of the context
            items.append((p, c, px))
        out: list[Any] = []
        for s in tqdm(
            range(0, len(items), self.batch_size), disable=self.quiet, desc="loglikelihood"
        ):
            chunk = items[s : s + self.batch_size]
            T = max(len(p) + len(c) for p, c, _ in chunk)
            tokens = torch.full((len(chunk), T), self.model.layout.pad, dtype=torch.long)
            for i, (p, c, _) in enumerate(chunk):
                tokens[i, : len(p) + len(c)] = torch.tensor(p + c)
            images = batch_images(self.model, [px for _, _, px in chunk])
            images = images.to(self._device) if images is not None else None
            logits, _ = self.model(tokens.to(self._device), images)
            logp = F.log_softmax(logits.float(), dim=-1)  # [B, T, V]
            for i, (p, c, _) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=logp.device)
                tgt = torch.tensor(c, device=logp.device)
                nll = -float(logp[i, pos, tgt].sum())
                greedy = bool((logp[i, pos].argmax(-1) == tgt).all())
                out.append((nll, greedy) if _PAIRS_SURVIVE else GenerationResult((nll, greedy)))
        return out

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy continuations, stopped at <eos>, a task `until` string or `max_new_tokens`
        (also read as `max_gen_toks`; capped by the room the model's context leaves)."""
        limit = self.model.lm.max_seq_len
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        prompts: list[Encoded] = []
        seen: dict = {}
        for i, r in enumerate(requests):
            context, kw, _visual, doc_id, task, split = r.args
            kw = dict(kw or {})
            until = kw.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            n = int(kw.get("max_new_tokens", kw.get("max_gen_toks", self.max_new_tokens)))
            pics = self._pics(r, self._doc(task, split, doc_id), seen)
            prompts.append(self._encode(context, pics))
            n = max(1, min(n, limit - len(prompts[-1][0])))
            groups.setdefault((n, until), []).append(i)
        out = [""] * len(requests)
        for (n, until), idx in tqdm(groups.items(), disable=self.quiet, desc="generate"):
            texts = greedy_generate(
                self.model,
                self.tok,
                [prompts[i][0] for i in idx],
                [prompts[i][1] for i in idx],
                self._device,
                n,
                list(until),
                self.batch_size,
            )
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
        return out

    def generate_until_multi_round(self, requests: list[Any]) -> list[str]:
        raise NotImplementedError("vloom's lmms-eval model answers single-round requests only")


# lmms-eval >= 0.7 resolves model names through this registry (register_model above fills the
# older one); overwrite: re-importing the module must not fail.
MODEL_REGISTRY_V2.register_manifest(
    ModelManifest("vloom", simple_class_path=f"{__name__}.VloomLMM"), overwrite=True
)
