"""Which lookups from the picture has a VLM learned? (issue 16's binding question).

On held-out scenes of 2-3 objects (`sample_scene` + `render`, redrawn while a scene's key is
one the run's training corpus drew: `synth.instructions.training_scenes`), the checkpoint
continues the world's own sentences after `<bos> <image>...` and ranks the
scene's own objects' values (so chance is 1/objects, and colour presence, which the model
does read, cannot help):

- colour -> place:  "The red object is at the" -> top left / ...   (vqa's position answer)
- colour -> shape:  "The red object is a"       -> circle / ...     (vqa's shape answer)
- place -> colour:  "... at the top left there is a small" -> red / ... (a caption's list)
- place -> shape:   "... at the top left there is a small red" -> circle / ...

A lookup scores above chance only when the model attends from the key word to that object's
image token and reads the attribute there: what each world's text demands from the picture
before it can be copied from words.

`--one N` also asks the two colour-keyed lookups about N one-object scenes, ranking all four
places and all four shapes (chance 1/4): no choice among objects, only whether the model reads
where the object is and what shape it has. One-object scenes are few (192 keys, nearly all of
them in a demo's corpus), so these are not redrawn: a model that remembered its corpus would
score high here, one that does not read the picture stays at chance.

    python scripts/probe_lookups.py --checkpoint RUN/checkpoints/final \
        --tokenizer RUN/packed/tokenizer.json --synth RUN/synth [--n 1500]
"""

from __future__ import annotations

import argparse
import os
import random

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vloom.evaluate.scoring import option_scores  # noqa: E402
from vloom.model.io import load_model  # noqa: E402
from vloom.sequence import encode_text, load_tokenizer  # noqa: E402
from vloom.synth.instructions import training_scenes  # noqa: E402
from vloom.synth.world import CELLS, SHAPES, Obj, Scene, render, sample_scene  # noqa: E402

LOOKUPS = ("colour -> place", "colour -> shape", "place -> colour", "place -> shape")


def prompt(kind: str, o: Obj) -> tuple[str, str]:
    """(text after the image, the attribute that continues it) for lookup `kind` of object o."""
    place = CELLS[o.cell]
    if kind == "colour -> place":
        return f"The {o.colour} object is at the", place
    if kind == "colour -> shape":
        return f"The {o.colour} object is a", o.shape
    if kind == "place -> colour":
        return f"In this picture, at the {place} there is a {o.size}", o.colour
    if kind == "place -> shape":
        return f"In this picture, at the {place} there is a {o.size} {o.colour}", o.shape
    raise ValueError(f"unknown lookup {kind!r}; known: {', '.join(LOOKUPS)}")


def values(kind: str, s: Scene) -> list[str]:
    """The scene's own values of the attribute `kind` looks up: the options (every place or
    shape for a one-object scene)."""
    attr = kind.split(" -> ")[1]
    if s.count == 1:
        return list(CELLS if attr == "place" else SHAPES)
    return [CELLS[o.cell] if attr == "place" else getattr(o, attr) for o in s.objects]


def one_object_scenes(n: int, seed: int) -> list[tuple[Scene, Obj]]:
    """n one-object scenes (not redrawn: see the module docstring) and their object."""
    rng = random.Random(f"probe-one-{seed}")
    drawn = [sample_scene(rng, 1) for _ in range(n)]
    return [(s, s.objects[0]) for s in drawn]


def scenes(n: int, seed: int, seen: set, max_objects: int = 3) -> list[tuple[Scene, Obj]]:
    """n (scene of >= 2 objects whose key is not in `seen`, the object asked about)."""
    rng = random.Random(f"probe-lookups-{seed}")
    out = []
    while len(out) < n:
        s = sample_scene(rng, max_objects)
        if s.count >= 2 and s.key() not in seen:
            out.append((s, rng.choice(s.objects)))
    return out


@torch.no_grad()
def lookups(model, tok, n: int, seed: int, seen: set, one: int = 0) -> dict[tuple[str, int], list]:
    """(lookup, objects in the scene) -> [accuracy, questions] over `scenes(n, seed, seen)`
    and, with `one`, the colour-keyed lookups over `one_object_scenes(one, seed)`."""
    slots = model.layout.prefix + [model.layout.image] * model.tokens_per_image
    prompts, options, images, keys, right = [], [], [], [], []
    asked = [(s, o, LOOKUPS) for s, o in scenes(n, seed, seen)]
    asked += [(s, o, LOOKUPS[:2]) for s, o in one_object_scenes(one, seed)]
    for s, o, kinds in asked:
        px = torch.from_numpy(np.array(render(s, model.vision.image_size), dtype=np.uint8)[None])
        for kind in kinds:
            text, answer = prompt(kind, o)
            opts = values(kind, s)
            prompts.append(slots + encode_text(tok, text))
            options.append([encode_text(tok, " " + v) for v in opts])
            images.append(px)
            keys.append((kind, s.count))
            right.append(opts.index(answer))
    scores = option_scores(model, prompts, options, images, torch.device("cpu"))
    acc: dict[tuple[str, int], list[int]] = {}
    for k, sc, r in zip(keys, scores, right, strict=True):
        acc.setdefault(k, []).append(int(np.argmax(sc)) == r)
    return {k: [float(np.mean(v)), len(v)] for k, v in sorted(acc.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tokenizer", required=True, help="the run's packed/tokenizer.json")
    ap.add_argument("--synth", required=True, help="the run's synth/ (its scenes are left out)")
    ap.add_argument("--n", type=int, default=1500, help="scenes (2-3 objects)")
    ap.add_argument("--one", type=int, default=0, help="one-object scenes (see above)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    model = load_model(a.checkpoint).eval()
    seen = {s.key() for s in training_scenes(a.synth)[0]}
    got = lookups(model, load_tokenizer(a.tokenizer), a.n, a.seed, seen, a.one)
    print(f"{'lookup':16s} {'objects':>7s} {'accuracy':>8s} {'chance':>6s} {'n':>5s}")
    for (kind, count), (acc, k) in got.items():
        chance = 1 / (count if count > 1 else 4)
        print(f"{kind:16s} {count:7d} {acc:8.3f} {chance:6.3f} {k:5d}")


if __name__ == "__main__":
    main()
