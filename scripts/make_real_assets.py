"""Build what configs/real.yaml starts from, locally (nothing can be downloaded here):

    OUT/lm/        a SmolLM2-shaped LlamaForCausalLM (random weights, tiny sizes) with a
                   byte-level BPE trained on the manuals' own text (a real vocabulary);
                   config.json, model.safetensors, tokenizer.json, tokenizer_config.json
    OUT/siglip/    a SiglipVisionModel (random weights, tiny) + preprocessor_config.json
    OUT/mmstar_real.parquet
                   a benchmark in MMStar's Parquet layout (index, question with inlined
                   `Options: A: .., B: ..`, answer letter, category, l2_category, image) made
                   from real figures and screenshots, each question's truth computed from the
                   image's own pixels

    python scripts/make_real_assets.py [--config configs/real.yaml] [--out runs/assets]

The weights are random: the run shows the path (pretrained dirs -> pack with their tokenizer ->
train -> eval), not what pretraining buys. Questions are ones a fixed-resolution tower can
answer after the square resize (so no "wider than tall"): the dominant colour, light or dark,
the brighter half, colour or greyscale. Images come from the Debian handbook (not a training
source of real.yaml), else GIMP's help, else any PNG under /usr/share/doc. Reruns skip what
exists (delete OUT to rebuild).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import io
import random
import re
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

VOCAB = 4096
TEXT_BUDGET = 8_000_000  # characters of manual text the tokenizer is trained on
# SmolLM2-135M's shape (9 heads, 3 kv heads, MLP 8/3 x, tied, RoPE 1e5, eps 1e-5), scaled down
LM_SIZES = dict(
    hidden_size=144,
    intermediate_size=384,
    num_hidden_layers=4,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=2048,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # SmolLM2's first ids
TOWER = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)
IMAGE_POOLS = (
    "/usr/share/doc/debian-handbook/html",
    "/usr/share/gimp/2.0/help/en/images",
    "/usr/share/doc",
)
N_QUESTIONS = 240
PALETTE = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "red": (200, 40, 40),
    "green": (50, 160, 60),
    "blue": (50, 90, 200),
    "yellow": (230, 210, 60),
    "brown": (130, 85, 45),
}


def html_text(paths: list[Path], budget: int) -> list[str]:
    """Visible text of the HTML pages under `paths` (tags, scripts and styles removed)."""
    out, used = [], 0
    for root in paths:
        for f in sorted(root.rglob("*.htm*")) if root.is_dir() else [root]:
            raw = f.read_text(errors="replace")
            raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", raw)
            text = html.unescape(re.sub(r"(?s)<[^>]+>", " ", raw))
            text = re.sub(r"[ \t\r\f\v]+", " ", text)
            out.append(text)
            used += len(text)
            if used >= budget:
                return out
    return out


def make_tokenizer(texts: list[str], out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    from vloom.pack.tokenizer import train_tokenizer

    tok = train_tokenizer(texts, VOCAB, special_tokens=SPECIALS)
    # As SmolLM2: bos = eos = <|endoftext|>, no pad (vloom adds <pad> and <image>)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIALS[0],
        eos_token=SPECIALS[0],
        unk_token=SPECIALS[0],
        model_max_length=LM_SIZES["max_position_embeddings"],
    )
    fast.save_pretrained(str(out))


def make_lm(out: Path, seed: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(str(out))
    cfg = LlamaConfig(
        **LM_SIZES, vocab_size=len(tok), bos_token_id=0, eos_token_id=0, hidden_act="silu"
    )
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 100000.0}
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(str(out))


def make_tower(out: Path, seed: int) -> None:
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    SiglipVisionModel(SiglipVisionConfig(**TOWER)).save_pretrained(str(out))
    side = TOWER["image_size"]
    SiglipImageProcessor(
        size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(str(out))


# --- the benchmark: questions whose answer is in the pixels ---


def pool_images(limit: int, pools: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """Distinct (by content) PNG/JPEG files of the first pool with at least limit / 2 of them
    (else the largest), in path order."""
    best: list[tuple[str, bytes]] = []
    for pool in pools:
        root = Path(pool)
        if not root.is_dir():
            continue
        seen, out = set(), []
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for p in files:
            data = p.read_bytes()
            h = hashlib.sha256(data).hexdigest()
            if h in seen or not 32 <= len(data) <= 4_000_000:
                continue
            seen.add(h)
            out.append((str(p), data))
        if len(out) >= limit // 2:
            return out
        best = max(best, out, key=len)
    return best


def rgb(data: bytes) -> np.ndarray | None:
    """[H, W, 3] float in 0..1 (transparency over white), None if unusable or tiny."""
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception:  # noqa: BLE001  a file PIL cannot read is simply not used
        return None
    if min(im.size) < 16:
        return None
    im = im.convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    im = Image.alpha_composite(bg, im).convert("RGB")
    im.thumbnail((256, 256))
    return np.asarray(im, dtype=np.float32) / 255.0


def luminance(a: np.ndarray) -> np.ndarray:
    return a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def q_colour(a: np.ndarray, rng: random.Random):
    names = list(PALETTE)
    centres = np.array([PALETTE[n] for n in names], dtype=np.float32) / 255.0
    px = a.reshape(-1, 3)
    nearest = ((px[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    share = np.bincount(nearest, minlength=len(names)) / len(px)
    top = int(share.argmax())
    if share[top] < 0.4 or np.sort(share)[-2] > share[top] / 2:  # no clear winner
        return None
    options = [names[top], *rng.sample([n for i, n in enumerate(names) if i != top], 3)]
    return "Which colour covers most of this image?", options, "colour", "coarse perception"


def q_light(a: np.ndarray, rng: random.Random):
    m = float(luminance(a).mean())
    if 0.4 < m < 0.6:
        return None
    truth = "light" if m >= 0.6 else "dark"
    other = "dark" if truth == "light" else "light"
    return (
        "Is this image mostly light or mostly dark?",
        [truth, other],
        "brightness",
        ("coarse perception"),
    )


def q_half(a: np.ndarray, rng: random.Random):
    y = luminance(a)
    h, w = y.shape
    halves = {
        "top": y[: h // 2].mean(),
        "bottom": y[h - h // 2 :].mean(),
        "left": y[:, : w // 2].mean(),
        "right": y[:, w - w // 2 :].mean(),
    }
    ranked = sorted(halves, key=halves.get, reverse=True)
    if halves[ranked[0]] - halves[ranked[1]] < 0.05:
        return None
    return (
        "Which half of this image is the brightest?",
        ranked[:1] + ranked[1:],
        "localization",
        ("fine-grained perception"),
    )


def q_grey(a: np.ndarray, rng: random.Random):
    sat = float((a.max(-1) - a.min(-1)).mean())  # 0 for pure grey pixels
    if 0.03 < sat < 0.08:
        return None
    truth = "in colour" if sat >= 0.08 else "in greyscale"
    other = "in greyscale" if truth == "in colour" else "in colour"
    return (
        "Is this image in colour or in greyscale?",
        [truth, other],
        "image style & quality",
        ("coarse perception"),
    )


QUESTIONS = (q_colour, q_light, q_half, q_grey)


def make_benchmark(
    out: Path, seed: int, n: int = N_QUESTIONS, pools: tuple[str, ...] = IMAGE_POOLS
) -> dict[str, int]:
    """MMStar-layout Parquet of up to `n` questions; returns counts per l2_category."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vloom.evaluate.benchmarks.row import LETTERS

    rng = random.Random(seed)
    images = pool_images(n, pools)
    rng.shuffle(images)
    rows, k = [], 0
    for path, data in images:
        a = rgb(data)
        if a is None:
            continue
        for j in range(len(QUESTIONS)):  # this image's turn, else the next kind that fits
            got = QUESTIONS[(k + j) % len(QUESTIONS)](a, rng)
            if got is not None:
                break
        if got is None:
            continue
        k += 1
        question, options, l2, cat = got
        truth = options[0]
        rng.shuffle(options)
        inline = ", ".join(f"{LETTERS[i]}: {o}" for i, o in enumerate(options))
        rows.append(
            {
                "index": len(rows),
                "question": f"{question}\nOptions: {inline}",
                "answer": LETTERS[options.index(truth)],
                "category": cat,
                "l2_category": l2,
                "image": {"bytes": data, "path": Path(path).name},
                "meta_info": {"source": path},
            }
        )
        if len(rows) == n:
            break
    if not rows:
        raise SystemExit("no usable image found under " + ", ".join(pools))
    tmp = out.with_suffix(".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.rename(out)  # a killed run leaves no half file that a rerun would take as done
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["l2_category"]] = counts.get(r["l2_category"], 0) + 1
    return counts


def manual_paths(config: Path) -> list[Path]:
    """The config's HTML source paths present here (the tokenizer's training text)."""
    raw = yaml.safe_load(config.read_text())
    paths = [
        Path(p)
        for s in raw.get("data", {}).get("sources", [])
        if s.get("kind") == "html"
        for p in s.get("paths", [s.get("path")])
        if p
    ]
    return [p for p in paths if p.exists()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/real.yaml", type=Path)
    ap.add_argument("--out", default="runs/assets", type=Path)
    ap.add_argument("--seed", default=0, type=int)
    ap.add_argument(
        "--images",
        action="append",
        help="a directory of the benchmark's images (repeatable; default: "
        + ", ".join(IMAGE_POOLS)
        + ", the first with enough)",
    )
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    lm, tower, bench = out / "lm", out / "siglip", out / "mmstar_real.parquet"
    if not (lm / "model.safetensors").exists():
        paths = manual_paths(args.config)
        if not paths:
            raise SystemExit(f"{args.config}: none of its HTML source paths is on this machine")
        texts = html_text(paths, TEXT_BUDGET)
        make_tokenizer(texts, lm)
        make_lm(lm, args.seed)
        print(f"lm -> {lm} (BPE {VOCAB} on {sum(map(len, texts)):,} chars of {len(texts)} pages)")
    if not (tower / "model.safetensors").exists():
        make_tower(tower, args.seed)
        print(f"vision tower -> {tower}")
    if not bench.exists():
        counts = make_benchmark(bench, args.seed, pools=tuple(args.images or IMAGE_POOLS))
        print(f"benchmark -> {bench} ({sum(counts.values())} questions: {counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
