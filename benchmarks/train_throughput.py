"""Training throughput of vloom's decoder LM, side by side with transformers' LlamaForCausalLM.

    python benchmarks/train_throughput.py [--d-model 128] [--n-layers 4] [--steps 10]
    python benchmarks/train_throughput.py --size 125m --device cuda   # GPU: bf16, MFU printed

`--size 125m` is a GPT-2-small-sized Llama (d 768, 12 layers, 12 heads, vocab 32000,
sequence 1024, batch 8; 110M parameters, the embedding tied); on CUDA the default dtype is
bf16 autocast, and MFU is printed from the FLOPs per token vloom's training loop logs
(vloom.train.flops) and the GPU's peak (a table by name, or --peak-flops).

Both models have the same shape (width, depth, heads, vocab, SwiGLU hidden size, tied
embeddings, SDPA attention), train in fp32 on CPU with the same AdamW (fused, as vloom's loop
makes it), lr and random token batches, through the same plain loop: forward, cross-entropy,
backward, clip, step, zero_grad; the same number of threads and warm-up steps.
vloom's model is initialised as vloom trains it (the VLM's init: normal std 0.02, residual
projections scaled by depth), transformers' as LlamaForCausalLM initialises itself (std 0.02).
The two take turns step by step (which goes first alternates), each repeat sums each model's
steps, and the median repeat is reported, so a noisy shared machine slows both alike; the
ratio line is each repeat's own vloom/transformers ratio (the same stretch of time for both),
and the last line also gives their median. Each repeat's rate is printed; a model whose later
half of the repeats runs under 0.85x its earlier half (medians) is flagged DECAY (a slowdown
that grows with training, e.g. denormal floats), and so is the vloom/transformers ratio. On
CPU denormals are flushed to zero, as vloom's training loop does (vloom.train.denormal);
--keep-denormals measures without it.
On a machine whose cores are already busy (e.g. a training job), pass --threads 1 (torch's
default of one thread per core then oversubscribes the CPU and a step can run several times
slower, for both models) and --clock cpu (the process's CPU time instead of the wall clock).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from vloom.config import ModelConfig
from vloom.model.layers import swiglu_hidden
from vloom.model.lm import LanguageModel
from vloom.model.vlm import VLM
from vloom.train.denormal import flush_denormals
from vloom.train.flops import decoder_flops_per_token, peak_flops

LR = 3e-4
DECAY = 0.85  # later repeats under this share of the earlier ones: flagged
SIZES = {
    "tiny": {
        "d_model": 128,
        "n_layers": 4,
        "n_heads": 4,
        "vocab": 2048,
        "seq_len": 256,
        "batch": 16,
    },
    "125m": {
        "d_model": 768,
        "n_layers": 12,
        "n_heads": 12,
        "vocab": 32000,
        "seq_len": 1024,
        "batch": 8,
    },
}


def build_vloom(cfg: ModelConfig, vocab: int, seq_len: int) -> LanguageModel:
    """vloom's LM with the initialisation vloom trains it from: the VLM's. A bare LanguageModel
    keeps torch's defaults (embedding N(0, 1), tied to the output head: initial logits with
    std ~sqrt(d_model), a loss of 124 for vocab 2048, and a softmax whose gradient fills
    with denormals as that loss falls; measured in the README's training-throughput notes)."""
    image = cfg.vision.patch_size * cfg.vision.merge  # the smallest image the tower takes
    return VLM(cfg, vocab, seq_len, image, pretrained=False).lm


def decay_flag(rates: list[float]) -> str:
    """DECAY when the later half of the repeats runs under 0.85x the earlier half (medians: one
    repeat disturbed by the machine's other jobs does not flag it)."""
    half = len(rates) // 2
    if half == 0:
        return ""
    early, late = statistics.median(rates[:half]), statistics.median(rates[-half:])
    return "DECAY" if late < DECAY * early else ""


def vloom_logits(model: LanguageModel):
    return lambda x: model.forward_embeds(model.embed_tokens(x))


def hf_logits(model: nn.Module):
    # use_cache=False: a training step has no use for a KV cache.
    return lambda x: model(input_ids=x, use_cache=False).logits


def train_steps(
    forward,
    model: nn.Module,
    opt,
    batches: list[torch.Tensor],
    n: int,
    bf16: bool = False,
    clock=time.perf_counter,
) -> float:
    """Run n training steps over `batches` (cycled); return their time on `clock` in seconds."""
    dev = batches[0].device
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = clock()
    for i in range(n):
        tokens = batches[i % len(batches)]
        x, y = tokens[:, :-1], tokens[:, 1:]
        with ctx:
            logits = forward(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return clock() - t0


def time_repeats(
    models: dict, opts: dict, batches: list[torch.Tensor], args: argparse.Namespace, bf16: bool
) -> dict[str, list[float]]:
    """Warm up each model, then time `repeats` blocks of `steps` steps each; tokens/s per block.
    Within a block the models take turns step by step (the first alternating), so a change in
    the machine's load lands on both alike, within seconds, not on one model's whole block.
    The same models and optimizers train on through all blocks, so a slowdown that grows with
    training shows as a decay across them."""
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for name, (m, fwd) in models.items():
        train_steps(fwd, m, opts[name], batches, args.warmup, bf16)
    tokens = args.batch * args.seq_len  # per step
    rates: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    step = 0
    for _ in range(args.repeats):
        spent = dict.fromkeys(names, 0.0)
        for _ in range(args.steps):
            for name in names if step % 2 == 0 else names[::-1]:
                m, fwd = models[name]
                # each model cycles through the same batches in the same order
                batch = [batches[step % len(batches)]]
                spent[name] += train_steps(fwd, m, opts[name], batch, 1, bf16, clock)
            step += 1
        for name in names:
            rates[name].append(tokens * args.steps / spent[name])
    return rates


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
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny", help="shape preset")
    ap.add_argument("--d-model", type=int, help="override the preset")
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument(
        "--dtype", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on cuda"
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--peak-flops", type=float, help="device peak FLOP/s for MFU")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat and model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    ap.add_argument("--repeats", type=int, default=5, help="timed blocks per model (>= 4)")
    ap.add_argument(
        "--keep-denormals", action="store_true", help="CPU: do not flush denormals to zero"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 = torch default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time (CPU only), which other jobs on a loaded machine "
        "disturb far less than the wall clock",
    )
    args = ap.parse_args()
    for k, v in SIZES[args.size].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    device = torch.device(args.device)
    bf16 = args.dtype == "bf16" or (args.dtype == "auto" and device.type == "cuda")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    mcfg = ModelConfig(d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads)
    hidden = swiglu_hidden(args.d_model, mcfg.ffn_mult)
    vloom = build_vloom(mcfg, args.vocab, args.seq_len).float().train().to(device)
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
        hf = hf.to(device)
        models["transformers-llama"] = (hf, hf_logits(hf))
    if args.compile:
        models = {n: (m, torch.compile(f)) for n, (m, f) in models.items()}

    # seq_len + 1 tokens per row: inputs and shifted targets both span seq_len positions.
    gen = torch.Generator().manual_seed(args.seed)
    batches = [
        torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), generator=gen).to(device)
        for _ in range(max(1, min(args.steps, 4)))
    ]
    # vloom's training loop's choice for both: fused AdamW (vloom.train.loop.make_optimizer)
    opts = {
        name: torch.optim.AdamW(m.parameters(), lr=LR, fused=True)
        for name, (m, _) in models.items()
    }
    print(
        f"d_model={args.d_model} n_layers={args.n_layers} n_heads={args.n_heads} "
        f"ffn_hidden={hidden} vocab={args.vocab} seq_len={args.seq_len} batch={args.batch} "
        f"params={n_params(vloom):,} threads={torch.get_num_threads()} device={device} "
        f"dtype={'bf16' if bf16 else 'fp32'} "
        f"denormals={'kept' if args.keep_denormals or device.type != 'cpu' else 'flushed'} "
        f"clock={args.clock}"
    )

    flush = contextlib.nullcontext() if args.keep_denormals else flush_denormals(device)
    with flush:
        rates = time_repeats(models, opts, batches, args, bf16)
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(f"  {'repeat':20s} " + " ".join(f"{r + 1:8d}" for r in range(args.repeats)))
    for name, v in rates.items():
        print(f"  {name:20s} " + " ".join(f"{x:8.0f}" for x in v) + f" tok/s {decay_flag(v)}")
    if len(rates) == 2:
        ratio = [a / b for a, b in zip(*rates.values(), strict=True)]
        print(
            f"  {'ratio':20s} "
            + " ".join(f"{x:8.2f}" for x in ratio)
            + f"       {decay_flag(ratio)}"
        )
        flagged = [name for name, v in rates.items() if decay_flag(v)]
        if flagged and not decay_flag(ratio) and not decay_flag([1 / x for x in ratio]):
            # the models ran in turns: a slowdown both share is the machine's, not training's
            print(f"  ({', '.join(flagged)}: DECAY with a steady ratio, i.e. the machine's load)")

    peak = peak_flops(device, bf16, args.peak_flops)
    if peak:
        fpt = decoder_flops_per_token(vloom, args.seq_len)
        mfu = {name: r * fpt / peak for name, r in med.items()}
        print("  MFU: " + ", ".join(f"{n} {v:.1%}" for n, v in mfu.items()) + f" (peak {peak:.3g})")
    if hf is None:
        print(f"train_throughput: vloom {med['vloom']:.0f} tok/s")
        return
    peer = med["transformers-llama"]
    print(
        f"train_throughput: vloom {med['vloom']:.0f} tok/s, transformers-llama {peer:.0f} tok/s, "
        f"ratio {med['vloom'] / peer:.2f} "
        f"(median of the repeats' ratios {statistics.median(ratio):.2f})"
    )


if __name__ == "__main__":
    main()
