"""Where does the demo VLM lose an object's shape? (issue 16's binding question).

Renders training-like scenes (`sample_scene` + `render` at the checkpoint's image size), runs
the checkpoint's vision encoder, connector and LM on `<bos> <image> x tokens_per_image`, and
for each object takes the image token covering its grid cell (fixed resolution: one token per
cell when the token grid is the world's 2 x 2). Linear probes (logistic regression, fitted on
a train split of scenes, scored on held-out scenes) read the object's shape, colour, size and
cell (which token of the grid it is: "where is the red object?" needs it in the token) from each stage: raw pixels of the cell, the vision encoder's input (patch embedding +
positions) and each of its blocks, the connector's hidden layer and output (what the LM sees),
and the LM's residual stream after each block. The same model freshly initialised is the
baseline. If a stage reads shape and the next does not, that stage dropped it.

    python scripts/probe_image_tokens.py --checkpoint runs/demo/checkpoints/final [--n 3000]
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the machine is shared; BLAS in sklearn too
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vloom.evaluate.scoring import option_scores  # noqa: E402
from vloom.model.io import build_model, load_model  # noqa: E402
from vloom.model.vlm import VLM  # noqa: E402
from vloom.sequence import encode_text, load_tokenizer  # noqa: E402
from vloom.synth.language import make_qa, qa_prompt  # noqa: E402
from vloom.synth.world import CELLS, COLOURS, SHAPES, SIZES, render, sample_scene  # noqa: E402
from vloom.train.denormal import flush_denormals  # noqa: E402

# cell: which grid cell the token covers; a token must carry it for "where is the red object?"
# to be read by attention (RoPE turns keys, not values)
TARGETS = {
    "shape": SHAPES,
    "colour": tuple(COLOURS),
    "size": SIZES,
    "cell": tuple(range(len(CELLS))),
}


def scenes_and_labels(n: int, seed: int, max_objects: int, size: int):
    """n scenes -> the scenes, pixels [n, H, W, 3] uint8 and per-object rows (scene, cell,
    label per target)."""
    rng = random.Random(seed)
    scenes, pixels, objs = [], [], []
    for i in range(n):
        s = sample_scene(rng, max_objects)
        scenes.append(s)
        pixels.append(np.asarray(render(s, size), dtype=np.uint8))
        for o in s.objects:
            objs.append((i, o.cell, *(TARGETS[t].index(getattr(o, t)) for t in TARGETS)))
    return scenes, np.stack(pixels), np.array(objs)


def cell_pixels(pixels: np.ndarray, side: int) -> np.ndarray:
    """[n, H, W, 3] -> [n, side*side, H/side * W/side * 3]: each token's pixel region."""
    n, h, w, c = pixels.shape
    x = pixels.reshape(n, side, h // side, side, w // side, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, side * side, -1).astype(np.float32)


@torch.no_grad()
def features(model: VLM, pixels: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """Per stage, [n, tokens, dim] at the image tokens of `<bos> <image>...`."""
    vis, lm, conn = model.vision, model.lm, model.connector
    caught: dict[str, torch.Tensor] = {}

    def keep(name, merge):
        def hook(_m, _inp, out):
            caught[name] = vis.merge_patches(out) if merge else out

        return hook

    def keep_input(_m, inp):  # patch embedding + positions, before the first block
        caught["vis.in"] = vis.merge_patches(inp[0])

    hooks = [vis.layers[0].register_forward_pre_hook(keep_input)]
    hooks += [
        b.register_forward_hook(keep(f"vis.L{k + 1}", True)) for k, b in enumerate(vis.layers)
    ]
    hooks.append(vis.register_forward_hook(keep("vis.out (normed)", False)))
    if hasattr(conn, "act"):
        hooks.append(conn.act.register_forward_hook(keep("conn.hidden", False)))
    hooks.append(conn.register_forward_hook(keep("conn.out (LM input)", False)))
    hooks += [b.register_forward_hook(keep(f"lm.L{k + 1}", False)) for k, b in enumerate(lm.layers)]
    P = model.tokens_per_image
    lay = model.layout
    row = torch.tensor(lay.prefix + [lay.image] * P)
    out: dict[str, list] = {}
    try:
        for s in range(0, len(pixels), batch):
            imgs = torch.from_numpy(pixels[s : s + batch])
            model(row.expand(len(imgs), -1), imgs)
            is_img = row == lay.image
            for k, v in caught.items():
                v = v[:, is_img] if k.startswith("lm.") else v
                out.setdefault(k, []).append(v.float().numpy())
    finally:
        for h in hooks:
            h.remove()
    return {k: np.concatenate(v) for k, v in out.items()}


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, mlp: bool = False) -> float:
    """Held-out accuracy of a standardised multinomial logistic regression, or (mlp) of one
    hidden layer of 256: what a nonlinear reader such as an LM block could take out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = (
        MLPClassifier((256,), early_stopping=True, max_iter=300, random_state=0)
        if mlp
        else LogisticRegression(max_iter=300, C=0.1)
    )
    clf = make_pipeline(StandardScaler(), head)
    clf.fit(x[train], y[train])
    return float(clf.score(x[~train], y[~train]))


@torch.no_grad()
def answers(model: VLM, tok, scenes, pixels: np.ndarray, qtype: str, seed: int) -> dict:
    """The model's 4-way accuracy on the eval's `qtype` question (vqa's prompt and scoring)
    per (objects in the scene, size of the object asked about)."""
    rng = random.Random(seed)
    slots = model.layout.prefix + [model.layout.image] * model.tokens_per_image
    prompts, options, images, keys, right = [], [], [], [], []
    for s, px in zip(scenes, pixels, strict=True):
        qa = make_qa(s, qtype, rng)
        o = next((o for o in s.objects if o.colour in qa.question), s.objects[0])
        prompts.append(slots + encode_text(tok, qa_prompt(qa.question)))
        options.append([encode_text(tok, " " + qa.template.format(x)) for x in qa.options])
        images.append(torch.from_numpy(px[None]))
        keys.append((len(s.objects), o.size))
        right.append(qa.answer_index)
    scores = option_scores(model, prompts, options, images, torch.device("cpu"))
    acc: dict = {}
    for k, sc, r in zip(keys, scores, right, strict=True):
        acc.setdefault(k, []).append(int(np.argmax(sc)) == r)
    return {k: (float(np.mean(v)), len(v)) for k, v in sorted(acc.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, default=3000, help="scenes (~2 objects each)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-objects", type=int, default=3)
    ap.add_argument("--train-share", type=float, default=0.7)
    ap.add_argument(
        "--tokenizer", help="tokenizer.json: also ask the eval's questions on the held-out scenes"
    )
    a = ap.parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # both restored after: tests call main() in-process
        with flush_denormals(torch.device("cpu")):
            _probe(a)
    finally:
        torch.set_num_threads(threads)


def _probe(a: argparse.Namespace) -> None:
    t0 = time.time()
    trained = load_model(a.checkpoint).eval()
    torch.manual_seed(a.seed)
    fresh = build_model(
        {
            "model": trained.cfg.model_dump(mode="json"),
            "vocab_size": trained.lm.vocab_size,
            "max_seq_len": trained.lm.max_seq_len,
            "image_size": trained.vision.image_size,
            "token_layout": trained.layout.to_json(),
        }
    ).eval()
    side = trained.vision.grid // trained.cfg.vision.merge
    if trained.vision.dynamic or side != 2:
        raise SystemExit("needs a fixed-resolution model with a 2 x 2 token grid (one per cell)")
    scenes, pixels, objs = scenes_and_labels(a.n, a.seed, a.max_objects, trained.vision.image_size)
    scene, cell, labels = objs[:, 0], objs[:, 1], objs[:, 2:]
    train = scene < int(a.n * a.train_share)  # split by scene: no scene on both sides
    print(
        f"{a.n} scenes, {len(objs)} objects ({train.sum()} train / {(~train).sum()} held out)"
        f"; chance: "
        + ", ".join(
            f"{t} 1/{len(v)}={1 / len(v):.2f} (majority {np.bincount(labels[~train, j]).max() / (~train).sum():.2f})"
            for j, (t, v) in enumerate(TARGETS.items())
        ),
        flush=True,
    )
    stages = {"pixels (cell region)": cell_pixels(pixels, side)}
    feats = {
        "trained": stages | features(trained, pixels),
        "fresh": stages | features(fresh, pixels),
    }
    print(f"features in {time.time() - t0:.0f} s", flush=True)
    cols = [*TARGETS, "shape/mlp"]
    print("linear probes (logistic regression); shape/mlp: a one-hidden-layer MLP probe")
    print(f"{'stage':<22}" + "".join(f"{m[:5] + ' ' + t:>13}" for m in feats for t in cols))
    for name in feats["trained"]:
        accs = []
        for m in feats:
            x = feats[m][name][scene, cell]  # the token covering each object's cell
            accs += [probe(x, labels[:, j], train) for j in range(len(TARGETS))]
            accs.append(probe(x, labels[:, 0], train, mlp=True))
        print(f"{name:<22}" + "".join(f"{v:>13.3f}" for v in accs), flush=True)
    if a.tokenizer:
        tok = load_tokenizer(a.tokenizer, trained.layout)
        held = slice(int(a.n * a.train_share), a.n)
        print("answers of the trained model on held-out scenes, by (objects, size asked about):")
        for qtype in ("colour", "shape", "position"):
            acc = answers(trained, tok, scenes[held], pixels[held], qtype, a.seed)
            cells = "  ".join(f"{n}/{sz} {v:.2f} (n={c})" for (n, sz), (v, c) in acc.items())
            print(f"  {qtype:<9}{cells}", flush=True)
    print(f"total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
