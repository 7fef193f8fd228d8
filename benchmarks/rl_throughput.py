"""RL rollout throughput: vloom.generate.sample with and without the KV cache, and against
transformers' `generate` on the same weights.

    python benchmarks/rl_throughput.py [--checkpoint DIR] [--prompts 8] [--group 8] [--new 32]

The model is the demo checkpoint (default below; --checkpoint to choose) or, when that is
absent, a randomly initialised small VLM built here, so the script always runs. A rollout is
what GRPO-style RL does: --prompts questions of the eval set's vqa_open.parquet (random ids
for the built model), each repeated --group times, sampled at --temperature (no top-k/top-p)
up to --new tokens; the group's copies run as one batch. Reported, median of --repeats with
the tools alternating (a loaded machine slows all alike), as generated tokens per second
(eos ends a row; only real tokens count):

- image prompts: vloom with the KV cache vs vloom with use_cache=False (every step recomputes
  the whole prefix and re-encodes the images);
- text-only prompts (the same questions without the image): vloom with the KV cache vs
  transformers' `generate` (its own KV cache, do_sample) on the checkpoint exported with
  vloom.model.hf_export. The demo's vision side is vloom's own, which transformers cannot
  load (it exports as LlamaForCausalLM plus a separate vision file), so this comparison is
  text-only. A greedy run of both checks they are the same model (rows with equal tokens).
- RL steps/s with and without the KV cache (`rl.use_cache`): `rl_steps` below runs
  vloom.rl's RLStep (rollouts with RL's stop strings, rewards, advantages, reference and
  policy log-probabilities, backward) on the run's synth world beside the checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel

from vloom.config import ModelConfig
from vloom.generate import sample
from vloom.model.io import save_model
from vloom.model.vlm import VLM
from vloom.sequence import SPECIAL_TOKENS

DEMO = Path("/tmp/s22/demo_base/demo/checkpoints/final")


def load_demo(ckpt: Path, tokenizer: str | None, eval_dir: Path | None, n: int):
    """The checkpoint, its tokenizer, and n vqa_open questions as image and text prompts."""
    from vloom.evaluate.harness import load_checkpoint
    from vloom.evaluate.tasks.data import image_prompt, read_table_rows
    from vloom.evaluate.tasks.vqa_open import VQA_OPEN_COLUMNS, open_prompt
    from vloom.ondisk import read_json
    from vloom.sequence import encode_text

    run = ckpt.parent.parent  # <run>/checkpoints/<name>
    if tokenizer is None:  # the checkpoint's own, else the run's packed tokenizer
        named = read_json(ckpt / "config.json").get("tokenizer")
        tokenizer = named if named and Path(named).is_file() else str(run / "packed/tokenizer.json")
    model, tok = load_checkpoint(ckpt, tokenizer)
    rows = read_table_rows(
        (eval_dir or run / "synth/eval") / "vqa_open.parquet", VQA_OPEN_COLUMNS, n
    )
    image_prompts, text_prompts, images = [], [], []
    for r in rows:
        text = encode_text(tok, open_prompt(r["question"]))
        slots, px = image_prompt(model, r["image"])
        image_prompts.append(model.layout.prefix + slots + text)
        text_prompts.append(model.layout.prefix + text)
        images.append(px)
    return model, tok, tokenizer, image_prompts, images, text_prompts


def build_small(n: int, tmp: Path):
    """No checkpoint: a random small VLM, a word-level tokenizer of its ids, random prompts."""
    torch.manual_seed(0)
    vision = {"d_model": 64, "n_layers": 2, "n_heads": 4, "patch_size": 8, "merge": 2}
    cfg = ModelConfig(d_model=128, n_layers=4, n_heads=4, vision=vision)
    vocab = 1024
    model = VLM(cfg, vocab, 256, 32).eval()
    words = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    words |= {f"w{i}": i for i in range(len(SPECIAL_TOKENS), vocab)}
    tok = Tokenizer(WordLevel(words, unk_token="w4"))
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.save(str(tmp / "tokenizer.json"))
    g = torch.Generator().manual_seed(1)
    lay = model.layout
    text_prompts = [
        lay.prefix + torch.randint(4, vocab, (int(k),), generator=g).tolist()
        for k in torch.randint(12, 24, (n,), generator=g)
    ]
    image_prompts = [lay.prefix + [lay.image] * model.tokens_per_image + p for p in text_prompts]
    images = [torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8, generator=g)] * n
    return model, tok, str(tmp / "tokenizer.json"), image_prompts, images, text_prompts


def export_hf(model: VLM, tokenizer_path: str, tmp: Path, device: torch.device):
    """The weights through vloom's HF export, loaded back by transformers."""
    from transformers import AutoModelForCausalLM

    from vloom.model.hf_export import export_checkpoint

    save_model(model, tmp / "ckpt", {"tokenizer": tokenizer_path})
    info = export_checkpoint(tmp / "ckpt", tmp / "hf")
    print(f"export: {info['architecture']} ({info['note']})")
    return AutoModelForCausalLM.from_pretrained(str(tmp / "hf")).to(device).eval()


@torch.no_grad()
def hf_rollout(hf, model: VLM, prompts: list[list[int]], new: int, temperature: float, seed: int):
    """transformers' generate, equal-length prompts batched together as vloom does."""
    lay = model.layout
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    torch.manual_seed(seed)
    rows: list[list[int]] = [[] for _ in prompts]
    for idx in groups.values():
        x = torch.tensor([prompts[i] for i in idx], device=hf.device)
        kw = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        gen = hf.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=new,
            suppress_tokens=[lay.image, lay.pad],
            eos_token_id=lay.eos,
            pad_token_id=lay.pad,
            **(kw if temperature > 0 else {"do_sample": False}),
        )[:, x.shape[1] :]
        for i, r in zip(idx, gen.tolist(), strict=True):
            rows[i] = r[: r.index(lay.eos)] if lay.eos in r else r
    return rows


def rl_steps(model: VLM, tok: Tokenizer, device: torch.device, packed: Path, args) -> None:
    """HOOK (issue 17): RL steps/s with and without the KV cache, through vloom.rl's public
    step (RLStep.run: rollouts, rewards, group advantages, logprobs vs the reference,
    backward; the loop's optimizer step is not included), with rl.use_cache true and false."""
    try:
        from vloom.config import config_from_dict
        from vloom.rl.step import RLStep
        from vloom.train.distributed import DistInfo
    except ImportError:
        print("RL steps/s with/without KV cache: left (no vloom.rl step function yet)")
        return
    rl = {
        "prompts": 64,
        "prompts_per_step": args.prompts,
        "group_size": args.group,
        "max_new_tokens": args.new,
        "temperature": args.temperature,
        "batch_size": args.prompts * args.group,
    }
    steps = {}
    for name, cache in {"KV cache": True, "no cache": False}.items():
        stages = [{"name": "rl", "kind": "rl"}]
        raw = {"train": {"steps": 1, "stages": stages}, "rl": rl | {"use_cache": cache}}
        steps[name] = RLStep(config_from_dict(raw), model, tok, device, DistInfo(), packed)
        steps[name].begin(0, None)

    def one(step) -> Callable[[int], list[list[int]]]:
        def run(i: int) -> list[list[int]]:
            step.run(i, model, contextlib.nullcontext, lambda: None)
            model.zero_grad(set_to_none=True)  # no optimizer step: the same model each time
            return []

        return run

    model.train()
    res = timed({k: one(v) for k, v in steps.items()}, args.repeats)
    model.eval()
    rate = {k: 1 / sec for k, (sec, _) in res.items()}
    for k, (sec, _) in res.items():
        print(f"  RL step, {k:26s} {sec:7.3f} s  {rate[k]:9.2f} steps/s")
    print(f"ratio RL steps/s, KV cache / no cache: {rate['KV cache'] / rate['no cache']:.2f}x")


def timed(tools: dict[str, Callable[[int], list[list[int]]]], repeats: int):
    """Median seconds and generated tokens per tool, the tools alternating each repeat."""
    times: dict[str, list[float]] = {k: [] for k in tools}
    toks: dict[str, list[int]] = {k: [] for k in tools}
    for fn in tools.values():
        fn(0)  # warm-up
    for r in range(repeats):
        for k, fn in tools.items():
            t0 = time.perf_counter()
            out = fn(r + 1)
            times[k].append(time.perf_counter() - t0)
            toks[k].append(sum(len(x) for x in out))
    return {k: (statistics.median(times[k]), statistics.median(toks[k])) for k in tools}


def report(title: str, res: dict[str, tuple[float, float]]) -> dict[str, float]:
    print(title)
    rate = {}
    for k, (sec, n) in res.items():
        rate[k] = n / sec
        print(f"  {k:34s} {sec:7.3f} s  {n:7.0f} tokens  {rate[k]:9.1f} tokens/s")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=DEMO)
    ap.add_argument("--tokenizer", default=None, help="default: the checkpoint's")
    ap.add_argument("--eval-data", type=Path, default=None, help="dir with vqa_open.parquet")
    ap.add_argument("--prompts", type=int, default=8, help="distinct questions")
    ap.add_argument("--group", type=int, default=8, help="samples per question (GRPO group)")
    ap.add_argument("--new", type=int, default=32, help="max new tokens")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if (args.checkpoint / "config.json").is_file():
            src = f"checkpoint {args.checkpoint}"
            loaded = load_demo(args.checkpoint, args.tokenizer, args.eval_data, args.prompts)
        else:
            src = f"a random small VLM ({args.checkpoint} not found)"
            loaded = build_small(args.prompts, tmp)
        model, tok, tok_path, image_prompts, images, text_prompts = loaded
        model = model.to(device).eval()
        hf = export_hf(model.cpu(), tok_path, tmp, device)
        model = model.to(device)
        g = args.group
        img_rows = [p for p in image_prompts for _ in range(g)]
        img_pix = [im for im in images for _ in range(g)]
        txt_rows = [p for p in text_prompts for _ in range(g)]
        batch = len(img_rows)
        print(
            f"{src}: {model.num_params() / 1e6:.2f}M params, {len(image_prompts)} prompts x "
            f"group {g}, up to {args.new} new tokens, temperature {args.temperature}, "
            f"{torch.get_num_threads()} threads, {device}, median of {args.repeats}"
        )

        def vloom(rows, pix, cache):
            kw = dict(max_new_tokens=args.new, temperature=args.temperature, batch_size=batch)
            return lambda seed: [
                s.tokens
                for s in sample(model, tok, rows, pix, device, seed=seed, use_cache=cache, **kw)
            ]

        img = report(
            "image prompts (rollouts):",
            timed(
                {
                    "vloom sample, KV cache": vloom(img_rows, img_pix, True),
                    "vloom sample, no cache": vloom(img_rows, img_pix, False),
                },
                args.repeats,
            ),
        )
        none = [None] * len(txt_rows)
        txt = report(
            "text-only prompts (rollouts):",
            timed(
                {
                    "vloom sample, KV cache": vloom(txt_rows, none, True),
                    "transformers generate (KV cache)": lambda seed: hf_rollout(
                        hf, model, txt_rows, args.new, args.temperature, seed
                    ),
                },
                args.repeats,
            ),
        )
        ours = sample(
            model,
            tok,
            text_prompts,
            [None] * len(text_prompts),
            device,
            max_new_tokens=args.new,
            batch_size=batch,
        )
        theirs = hf_rollout(hf, model, text_prompts, args.new, 0.0, 0)
        same = sum(a.tokens == b for a, b in zip(ours, theirs, strict=True))
        print(f"  greedy, same tokens as transformers: {same}/{len(ours)} prompts")
        cache = img["vloom sample, KV cache"] / img["vloom sample, no cache"]
        vs_hf = txt["vloom sample, KV cache"] / txt["transformers generate (KV cache)"]
        print(f"ratio rollout tokens/s, KV cache / no cache (image prompts): {cache:.2f}x")
        print(f"ratio rollout tokens/s, vloom / transformers (text prompts): {vs_hf:.2f}x")
        print(f"RL steps ({args.prompts} prompts x group {args.group}, grpo):")
        try:
            rl_steps(model, tok, device, args.checkpoint.parent.parent / "packed", args)
        except (OSError, ValueError, TypeError) as e:  # vloom.rl's interface is young
            print(f"RL steps/s: left ({type(e).__name__}: {e})")


if __name__ == "__main__":
    main()
