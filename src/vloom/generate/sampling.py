"""The one generation loop: prompts (with their images) -> sampled continuations with the
log-probability of every chosen token. Evaluation (greedy), RL rollouts and serving use it."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from vloom.evaluate.scoring import Images, batch_images
from vloom.generate.choose import choose_tokens
from vloom.model.layers import KVCache
from vloom.model.vlm import VLM


@dataclass
class Sample:
    """One continuation. tokens: the new ids, without the closing eos (a stop string's
    tokens stay: they were sampled); text: their decoding cut before the earliest stop
    string, stripped; logprobs[j]: log p(tokens[j] | prefix) under the model's untempered,
    unfiltered distribution over the whole vocabulary (what a training forward gives);
    finished: it ended at eos or a stop string, not at max_new_tokens."""

    tokens: list[int] = field(default_factory=list)
    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    finished: bool = False


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...]) -> str:
    """The text up to (not including) the earliest stop string."""
    ends = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(ends)] if ends else text


@torch.no_grad()
def sample(
    model: VLM,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    images: list[Images],
    device: torch.device,
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: list[str] | tuple[str, ...] = (),
    batch_size: int = 32,
    use_cache: bool = True,
    seeds: list[int] | None = None,
) -> list[Sample]:
    """Continue each prompt until eos, a stop string or max_new_tokens; one Sample per prompt.

    Prompts of equal length run together (no padding, so positions match the single-example
    run exactly); for RL, G copies of one prompt form one batch. With the KV cache the prompt
    runs once (copies of one prompt with the same image object once for all of them) and each
    new token reuses the cached keys/values; use_cache=False recomputes the whole prefix (and
    re-encodes the images) every step. Rows that finish leave the batch. A text prompt that
    leaves no room for max_new_tokens in the model's context keeps its end; an image prompt
    fails. The placeholders <image> and <pad> are never emitted.

    temperature 0 is greedy. Otherwise prompt i draws its uniforms from its own generator
    seeded by (seed, i): its samples depend on seed, i, the prompt and the model, not on
    batch_size or on which prompts share its batch (up to float rounding of batched logits).
    seed None takes a base seed from torch's global generator. `seeds` (one per prompt) gives
    each prompt its own seed instead: prompt i draws from (seeds[i], 0), so its samples do not
    depend on its position either (the generator's per-request seeds, its cache keys)."""
    limit = model.lm.max_seq_len
    if not 0 < max_new_tokens < limit:
        raise ValueError(
            f"max_new_tokens must be in 1..{limit - 1} for this model, not {max_new_tokens}"
        )
    if temperature < 0 or top_k < 0 or not 0 < top_p <= 1 or batch_size < 1:
        raise ValueError(
            f"need temperature >= 0, top_k >= 0, 0 < top_p <= 1, batch_size >= 1; got "
            f"temperature={temperature}, top_k={top_k}, top_p={top_p}, batch_size={batch_size}"
        )
    prompts = fit_prompts(model, prompts, images, max_new_tokens)
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if temperature > 0 and seed is None:
        seed = int(torch.randint(2**62, (1,)).item())
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    out: list[Sample] = [Sample() for _ in prompts]
    for _, idx in sorted(groups.items()):
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            u = None
            if temperature > 0:
                rows = [(seeds[i], 0) if seeds is not None else (seed, i) for i in chunk]
                u = torch.stack([_uniforms(a, b, max_new_tokens) for a, b in rows]).to(device)
            batch = _Batch(model, tokenizer, stop, temperature, top_k, top_p)
            got = batch.run(prompts, images, chunk, device, max_new_tokens, u, use_cache)
            for i, smp in zip(chunk, got, strict=True):
                out[i] = smp
    return out


def fit_prompts(
    model: VLM, prompts: list[list[int]], images: list[Images], max_new_tokens: int
) -> list[list[int]]:
    """Prompts that leave room for max_new_tokens: a text prompt keeps its end; an image
    prompt (its placeholders cannot be cut) or an empty one is an error."""
    limit, room = model.lm.max_seq_len, model.lm.max_seq_len - max_new_tokens
    out = list(prompts)
    if len(out) != len(images):
        raise ValueError(f"{len(out)} prompts but {len(images)} image entries")
    for i, (p, im) in enumerate(zip(out, images, strict=True)):
        if not p:
            raise ValueError(f"prompt {i} is empty")
        if len(p) > room:
            if im is not None or model.layout.image in p:
                raise ValueError(
                    f"an image prompt of {len(p)} tokens + {max_new_tokens} new exceeds the "
                    f"model's {limit}"
                )
            out[i] = p[len(p) - room :]
    return out


def _uniforms(seed: int, i: int, n: int) -> torch.Tensor:
    """Prompt i's n uniforms, drawn on the CPU so a device or batch never changes them."""
    # torch's CPU generator keeps only a seed's low 32 bits: hash (seed, i) so all bits count.
    key = hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest()
    g = torch.Generator().manual_seed(int.from_bytes(key, "little"))
    return torch.rand(n, generator=g)


class _Batch:
    """One batch of equal-length prompts decoded together."""

    def __init__(
        self,
        model: VLM,
        tokenizer: Tokenizer,
        stop: list[str] | tuple[str, ...],
        temperature: float,
        top_k: int,
        top_p: float,
    ) -> None:
        self.model, self.tokenizer, self.stop = model, tokenizer, tuple(s for s in stop if s)
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.banned = [model.layout.image, model.layout.pad]

    def run(
        self,
        prompts: list[list[int]],
        images: list[Images],
        chunk: list[int],
        device: torch.device,
        max_new_tokens: int,
        u: torch.Tensor | None,
        use_cache: bool,
    ) -> list[Sample]:
        model = self.model
        seq = torch.tensor([prompts[i] for i in chunk], dtype=torch.long, device=device)
        pics = None if use_cache else self._images(images, chunk, device)
        out = [Sample() for _ in chunk]
        live = list(range(len(chunk)))  # rows of `out` still decoding, in batch order
        cache = model.lm.new_cache() if use_cache else None
        step_in = seq
        for step in range(max_new_tokens):
            if step == 0 and cache is not None:
                last = self._prefill(prompts, images, chunk, cache, device)
            else:
                last = model(step_in, pics, cache=cache)[0][:, -1].float()  # [b, V]
            logp = F.log_softmax(last, dim=-1)
            last[:, self.banned] = float("-inf")
            ut = u[live, step] if u is not None else None
            nxt = choose_tokens(last, self.temperature, self.top_k, self.top_p, ut)  # [b]
            lps = logp.gather(-1, nxt[:, None]).squeeze(-1)
            keep = [
                j
                for j, (r, t, lp) in enumerate(zip(live, nxt.tolist(), lps.tolist(), strict=True))
                if not self._append(out[r], t, lp)
            ]
            if not keep:
                break
            if len(keep) < len(live):  # finished rows leave the batch
                rows = torch.tensor(keep, device=device)
                nxt = nxt[rows]
                live = [live[j] for j in keep]
                if cache is not None:
                    cache.k = [k[rows] for k in cache.k]
                    cache.v = [v[rows] for v in cache.v]
                else:
                    seq = seq[rows]
                    pics = self._images(images, [chunk[r] for r in live], device)
            if cache is not None:
                pics = None  # the images sit in the prompt, which is now cached
                step_in = nxt[:, None]
            else:
                seq = torch.cat([seq, nxt[:, None]], dim=1)
                step_in = seq
        for smp in out:
            smp.text = cut_at_stop(self.tokenizer.decode(smp.tokens), self.stop).strip()
        return out

    def _prefill(
        self,
        prompts: list[list[int]],
        images: list[Images],
        chunk: list[int],
        cache: KVCache,
        device: torch.device,
    ) -> torch.Tensor:
        """Run the chunk's prompts into the cache; last-position logits [b, V]. Copies of one
        prompt with the same image object (an RL group) run once and share cached keys."""
        keys = [(tuple(prompts[i]), id(images[i])) for i in chunk]
        first = {k: j for j, k in reversed(list(enumerate(keys)))}  # key -> its first row
        uniq = sorted(first.values())
        rows = [chunk[j] for j in uniq]
        x = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)
        logits = self.model(x, self._images(images, rows, device), cache=cache)[0]
        last = logits[:, -1].float()  # [u, V]
        if len(uniq) == len(chunk):
            return last
        pos = {j: n for n, j in enumerate(uniq)}
        inv = torch.tensor([pos[first[k]] for k in keys], device=device)  # [b]
        cache.k = [k[inv] for k in cache.k]
        cache.v = [v[inv] for v in cache.v]
        return last[inv]

    def _append(self, smp: Sample, token: int, logprob: float) -> bool:
        """Record one chosen token; True when the row is finished."""
        if token == self.model.layout.eos:
            smp.finished = True
            return True
        smp.tokens.append(token)
        smp.logprobs.append(logprob)
        if self.stop:
            text = self.tokenizer.decode(smp.tokens)
            smp.finished = any(s in text for s in self.stop)
        return smp.finished

    def _images(self, images: list[Images], rows: list[int], device: torch.device):
        # As in scoring: same-size images stack, different sizes become one ImageBatch.
        pics = batch_images(self.model, [images[i] for i in rows])
        return pics.to(device) if pics is not None else None
