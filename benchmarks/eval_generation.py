"""Greedy generation (open-answer eval tasks) of vloom, side by side with transformers' generate.

    python benchmarks/eval_generation.py [--size tiny|125m] [--batch 32] [--prompt 96] [--new 32]

The same weights run in both: a randomly initialised vloom model and its Llama export
(vloom.model.hf_export), fp32 on CPU, the same prompts (equal length, so neither pads),
greedy decoding with the <image>/<pad> tokens suppressed and <eos> ending a row. Reported:
generated tokens per second of vloom's greedy `sample` (KV cache), of transformers'
`generate` (its KV cache), and of vloom without a cache (`use_cache=False`: every step
recomputes the prefix, what vloom did before the cache) — and the share of rows where vloom
and transformers chose the same tokens. The timings alternate between the tools and the median of --repeats is
reported, so a noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from vloom.config import ModelConfig
from vloom.generate import sample
from vloom.model.hf_export import hf_config, hf_state_dict
from vloom.model.vlm import VLM
from vloom.sequence import EOS_ID, IMAGE_ID, PAD_ID

SIZES = {
    "tiny": {"d_model": 128, "n_layers": 4, "n_heads": 4, "vocab": 2048, "seq_len": 256},
    "125m": {"d_model": 768, "n_layers": 12, "n_heads": 12, "vocab": 32000, "seq_len": 1024},
}
TINY_VISION = {"d_model": 32, "n_layers": 1, "n_heads": 2, "patch_size": 8, "merge": 2}


def word_tokenizer(vocab: int) -> Tokenizer:
    """A tokenizer whose ids are the model's ids (decode only: the prompts are ids)."""
    return Tokenizer(WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w0"))


@torch.no_grad()
def hf_greedy(hf, prompts: torch.Tensor, new: int) -> list[list[int]]:
    gen = hf.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        max_new_tokens=new,
        do_sample=False,
        suppress_tokens=[IMAGE_ID, PAD_ID],
        eos_token_id=EOS_ID,
        pad_token_id=PAD_ID,
    )[:, prompts.shape[1] :]
    rows = []
    for r in gen.tolist():
        rows.append(r[: r.index(EOS_ID)] if EOS_ID in r else r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=96, help="prompt tokens")
    ap.add_argument("--new", type=int, default=32, help="generated tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM

    s = SIZES[args.size]
    torch.manual_seed(0)
    cfg = ModelConfig(
        d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"], vision=TINY_VISION
    )
    vlm = VLM(cfg, s["vocab"], s["seq_len"], 32).eval()
    hf = AutoModelForCausalLM.from_config(hf_config(vlm))
    hf.load_state_dict(hf_state_dict(vlm), strict=False)
    hf.tie_weights()
    hf.eval()
    tok = word_tokenizer(s["vocab"])
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(4, s["vocab"], (args.batch, args.prompt), generator=g)
    plist = prompts.tolist()
    cpu = torch.device("cpu")

    def run_vloom(cache: bool) -> list[list[int]]:
        got = sample(
            vlm,
            tok,
            plist,
            [None] * len(plist),
            cpu,
            max_new_tokens=args.new,
            batch_size=args.batch,
            use_cache=cache,
        )
        return [s.tokens for s in got]

    tools = {
        "vloom (KV cache)": lambda: run_vloom(True),
        "transformers generate": lambda: hf_greedy(hf, prompts, args.new),
        "vloom, no cache": lambda: run_vloom(False),
    }
    times: dict[str, list[float]] = {k: [] for k in tools}
    outs: dict[str, list[list[int]]] = {}
    for fn in tools.values():
        fn()  # warm-up
    for _ in range(args.repeats):
        for k, fn in tools.items():
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    n_tok = {k: sum(len(r) for r in v) for k, v in outs.items()}
    print(
        f"size {args.size}: batch {args.batch}, prompt {args.prompt}, up to {args.new} new "
        f"tokens, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    rate = {}
    for k in tools:
        med = statistics.median(times[k])
        rate[k] = n_tok[k] / med
        print(f"  {k:24s} {med:7.3f} s  {n_tok[k]:6d} tokens  {rate[k]:9.1f} tokens/s")
    pairs = zip(outs["vloom (KV cache)"], outs["transformers generate"], strict=True)
    same = sum(a == b for a, b in pairs)
    print(f"  same tokens as transformers: {same}/{len(plist)} rows")
    vs_hf = rate["vloom (KV cache)"] / rate["transformers generate"]
    print(f"ratio vloom / transformers: {vs_hf:.2f}x")
    print(f"ratio KV cache / no cache:   {rate['vloom (KV cache)'] / rate['vloom, no cache']:.2f}x")


if __name__ == "__main__":
    main()
