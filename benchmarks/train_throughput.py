"""Training throughput of vloom's decoder LM, side by side with transformers' LlamaForCausalLM.

    python benchmarks/train_throughput.py [--d-model 128] [--n-layers 4] [--steps 10]

Both models have the same shape (width, depth, heads, vocab, SwiGLU hidden size, tied
embeddings, SDPA attention), train in fp32 on CPU with the same AdamW, lr and random token
batches, through the same plain loop: forward, cross-entropy, backward, clip, step, zero_grad.
The two are timed in alternating blocks and the median block is reported, so a noisy shared
machine slows both alike. On a machine whose cores are already busy (e.g. a training job),
pass --threads 1: torch's default of one thread per core then oversubscribes the CPU and a
step can run several times slower, for both models.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from vloom.config import ModelConfig
from vloom.model.layers import swiglu_hidden
from vloom.model.lm import LanguageModel

LR = 3e-4


def vloom_logits(model: LanguageModel):
    return lambda x: model.forward_embeds(model.embed_tokens(x))


def hf_logits(model: nn.Module):
    # use_cache=False: a training step has no use for a KV cache.
    return lambda x: model(input_ids=x, use_cache=False).logits


def train_steps(forward, model: nn.Module, opt, batches: list[torch.Tensor], n: int) -> float:
    """Run n training steps over `batches` (cycled); return the wall time in seconds."""
    t0 = time.perf_counter()
    for i in range(n):
        tokens = batches[i % len(batches)]
        x, y = tokens[:, :-1], tokens[:, 1:]
        logits = forward(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() counts tied weights once


def build_hf(args: argparse.Namespace, hidden: int) -> nn.Module | None:
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    cfg = LlamaConfig(
        hidden_size=args.d_model,
        intermediate_size=hidden,
        num_hidden_layers=args.n_layers,
        num_attention_heads=args.n_heads,
        num_key_value_heads=args.n_heads,
        vocab_size=args.vocab,
        max_position_embeddings=args.seq_len,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return LlamaForCausalLM(cfg).float().train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat and model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch default")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    mcfg = ModelConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads)
    hidden = swiglu_hidden(args.d_model, mcfg.ffn_mult)
    vloom = LanguageModel(mcfg, args.vocab, args.seq_len).float().train()
    models = {"vloom": (vloom, vloom_logits(vloom))}

    hf = build_hf(args, hidden)
    if hf is None:
        print(
            "transformers is not installed; for the side-by-side run: "
            "pip install 'vloom[hf]' (or pip install transformers)"
        )
    else:
        # Sanity: a shape mismatch would make the comparison meaningless.
        assert n_params(vloom) == n_params(hf), (n_params(vloom), n_params(hf))
        assert hf.config._attn_implementation == "sdpa", hf.config._attn_implementation
        models["transformers-llama"] = (hf, hf_logits(hf))

    # seq_len + 1 tokens per row: inputs and shifted targets both span seq_len positions.
    gen = torch.Generator().manual_seed(args.seed)
    batches = [
        torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=gen)
        for _ in range(max(1, min(args.steps, 4)))
    ]
    opts = {
        name: torch.optim.AdamW(m.parameters(), lr=LR, foreach=True)
        for name, (m, _) in models.items()
    }
    print(
        f"d_model={args.d_model} n_layers={args.n_layers} n_heads={args.n_heads} "
        f"ffn_hidden={hidden} vocab={args.vocab} seq_len={args.seq_len} batch={args.batch} "
        f"params={n_params(vloom):,} threads={torch.get_num_threads()}"
    )

    for name, (m, fwd) in models.items():
        train_steps(fwd, m, opts[name], batches, args.warmup)

    tokens = args.steps * args.batch * args.seq_len
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(args.repeats):
        # Alternate which model goes first so drift in machine load does not favour one.
        for name in names if r % 2 == 0 else names[::-1]:
            m, fwd = models[name]
            rates[name].append(tokens / train_steps(fwd, m, opts[name], batches, args.steps))
    med = {name: statistics.median(v) for name, v in rates.items()}
    for name, v in rates.items():
        print(f"  {name:20s} " + " ".join(f"{x:8.0f}" for x in v) + " tok/s")

    if hf is None:
        print(f"train_throughput: vloom {med['vloom']:.0f} tok/s")
        return
    peer = med["transformers-llama"]
    print(
        f"train_throughput: vloom {med['vloom']:.0f} tok/s, transformers-llama {peer:.0f} tok/s, "
        f"ratio {med['vloom'] / peer:.2f}"
    )


if __name__ == "__main__":
    main()
