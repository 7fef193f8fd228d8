"""Does the demo's language model learn to bind attributes from the world's text alone?
(issue 16's text_qa path, minutes a run instead of a full demo.)

Trains the demo-sized LM (vloom's init, a BPE trained on the corpus, AdamW, the demo's
schedule) on text documents of the synthetic world only, then asks text_qa's questions about
held-out scenes given in words (the eval's prompt and full-sentence option scoring) and prints
the accuracy per question type, plus the loss on the answer word in the eval's own format.

    python scripts/probe_text_binding.py [--steps 600] [--variant text] [--qa-per-scene 2]

--variant text: the world's text documents (vloom.synth.corpus.text_doc, with the world's
current templates) with --qa-per-scene questions after each scene; quiz: each scene followed by
the shape and the place of every one of its objects asked; bind: the world's description plus
one colour-first sentence an object ("The red triangle is at the top left.", random order);
colourfirst / colourfirst_any: the object list itself said colour first, in reading / random
order; legend: the description plus each object's place right after its colour ("By colour:
red top left, blue bottom right."); named: the description plus each object's place in the
answer's own sentence ("The red object is at the top left."). Eval scenes hold 2-3 objects (as text_qa's), and per scene size it prints the accuracy and
what the wrong picks were: another object's shape/place (in_scene; chance 1/3 with 2 objects,
2/3 with 3) or the first object's in reading order (first; chance 0.17 / 0.22). It also
prints the mean cosine between the shape words' (and the colours') embeddings: near 1, the
model cannot tell them apart (what the world's text did before its shape facts: issue 16).
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

from vloom.config import ModelConfig
from vloom.evaluate.scoring import accuracy_by_type, continuation_logprobs
from vloom.model.vlm import VLM
from vloom.pack.tokenizer import train_tokenizer
from vloom.sequence import encode_text
from vloom.synth import corpus, language
from vloom.synth.language import QTYPES, make_qa, qa_prompt, qa_text
from vloom.synth.world import CELLS, COLOURS, SHAPES, Obj, Scene
from vloom.train.denormal import flush_denormals
from vloom.train.schedule import schedule_lr


def _bound(o: Obj) -> str:
    return f"The {o.colour} {o.shape} is at the {CELLS[o.cell]}."


def bind_description(scene: Scene, rng: random.Random) -> str:
    """The world's description, then one colour-first sentence an object ('The red triangle is
    at the top left.'), the objects in random order: the place follows the colour, as in the
    answer, so an in-context copy keyed by the colour finds it."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    return language.description(scene, rng) + " " + " ".join(_bound(o) for o in objs)


def colourfirst_description(scene: Scene, rng: random.Random, shuffle: bool = False) -> str:
    """The world's description with its object list said colour first ('the small red triangle
    is at the top left'), in reading order (or random order with shuffle)."""
    objs = sorted(scene.objects, key=lambda o: o.cell)
    if shuffle:
        rng.shuffle(objs)
    text = language.description(scene, rng)
    old = language._join([language.phrase(o) for o in sorted(scene.objects, key=lambda o: o.cell)])
    new = language._join(
        [f"the {o.size} {o.colour} {o.shape} is at the {CELLS[o.cell]}" for o in objs]
    )
    assert old in text
    return text.replace(old, new)


def legend_description(scene: Scene, rng: random.Random) -> str:
    """The world's description, then each object's place right after its colour ('By colour:
    red top left, blue bottom right.'): the place is the token after the colour, as the shape
    is in 'The red triangle', so the copy that answers shape questions answers place ones."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    where = language._join([f"{o.colour} {CELLS[o.cell]}" for o in objs])
    return language.description(scene, rng) + f" By colour: {where}."


def named_description(scene: Scene, rng: random.Random) -> str:
    """The world's description, then each object's place in the answer's own sentence ('The
    red object is at the top left.', random order): the words before the place are the
    answer's, so a copy keyed on the whole prefix finds the place, not the shape."""
    objs = list(scene.objects)
    rng.shuffle(objs)
    named = " ".join(f"The {o.colour} object is at the {CELLS[o.cell]}." for o in objs)
    return language.description(scene, rng) + " " + named


# How a scene is said in words, per --variant (quiz: the world's description, more questions).
DESCRIBE = {
    "text": language.description,
    "quiz": language.description,
    "bind": bind_description,
    "legend": legend_description,
    "named": named_description,
    "colourfirst": colourfirst_description,
    "colourfirst_any": lambda s, rng: colourfirst_description(s, rng, shuffle=True),
}


def quiz_doc(scenes, rng: random.Random) -> str:
    """Each scene, then its shape and position asked about every object (shuffled)."""
    paras = []
    for k in range(rng.randint(2, 4)):
        s = scenes()
        qs = [("shape", o) for o in s.objects] + [("position", o) for o in s.objects]
        rng.shuffle(qs)
        lines = [f"Scene {k + 1}. " + language.description(s, rng)]
        for qt, o in qs:
            q = make_qa(Scene((o,)), qt, rng)  # the question about o, asked of the whole scene
            lines.append(qa_text(q))
        paras.append(" ".join(lines))
    return "\n\n".join(paras)


def build_texts(n: int, qa_per_scene: int, seed: int, variant: str) -> list[str]:
    scenes = corpus._SceneSource(random.Random(f"train-scenes-{seed}"), 3)
    rng = random.Random(f"vloom-synth-{seed}")
    if variant == "quiz":
        return [quiz_doc(scenes, rng) for _ in range(n)]
    if variant == "text":  # the world's own text documents
        return [corpus.text_doc(i, scenes, rng, qa_per_scene).texts[0] for i in range(n)]
    return [
        corpus.text_doc(i, scenes, rng, qa_per_scene, DESCRIBE[variant]).texts[0] for i in range(n)
    ]


def eval_rows(n: int, seed: int, variant: str = "text") -> list[dict]:
    held = corpus._SceneSource(random.Random(f"eval-scenes-{seed}"), 3)
    rng = random.Random(f"eval-{seed}")
    rows = []
    for i in range(n):
        s = held()
        while s.count < 2:  # as text_qa: every one-object scene is seen in training
            s = held()
        qa = make_qa(s, QTYPES[i % len(QTYPES)], rng)
        rows.append({"context": DESCRIBE[variant](s, rng), "qa": qa, "scene": s})
    return rows


@torch.no_grad()
def evaluate(model: VLM, tok, rows: list[dict], bos: int) -> dict[str, float]:
    model.eval()
    prompts, conts, owner = [], [], []
    for i, r in enumerate(rows):
        p = [bos] + encode_text(tok, f"{r['context']} {qa_prompt(r['qa'].question)}")
        for o in r["qa"].options:
            prompts.append(p)
            conts.append(encode_text(tok, " " + r["qa"].answer_text(o)))
            owner.append(i)
    scores: list[float] = []
    for k in range(0, len(prompts), 64):
        scores += continuation_logprobs(
            model,
            prompts[k : k + 64],
            conts[k : k + 64],
            [None] * len(prompts[k : k + 64]),
            torch.device("cpu"),
        )
    picks, answers, qtypes, nll = [], [], [], {q: [] for q in QTYPES}
    for i, r in enumerate(rows):
        s = [scores[j] for j in range(len(owner)) if owner[j] == i]
        picks.append(max(range(4), key=lambda k: s[k]))
        answers.append(r["qa"].answer_index)
        qtypes.append(r["qa"].qtype)
        # the answer's share of the probability mass among the options (nats)
        lse = torch.logsumexp(torch.tensor(s), 0).item()
        nll[r["qa"].qtype].append(lse - s[r["qa"].answer_index])
    out = accuracy_by_type(picks, answers, qtypes)
    out.update(binding_errors(rows, picks))
    out.update({f"nll_{q}": sum(v) / len(v) for q, v in nll.items()})
    model.train()
    return out


def binding_errors(rows: list[dict], picks: list[int]) -> dict[str, float]:
    """Per shape/position question and scene size: accuracy, and of the wrong picks the share
    that is another object's attribute (in_scene; chance 1/3 with 2 objects, 2/3 with 3) and the
    share that is the first object's in reading order (first; wrong picks with 2+ objects)."""
    out: dict[str, float] = {}
    for qt in ("shape", "position"):
        for n in (2, 3):
            sel = [
                (r, p)
                for r, p in zip(rows, picks, strict=True)
                if r["qa"].qtype == qt and r["scene"].count == n
            ]
            if not sel:
                continue
            attr = (lambda o: o.shape) if qt == "shape" else (lambda o: CELLS[o.cell])
            wrong = [(r, r["qa"].options[p]) for r, p in sel if p != r["qa"].answer_index]
            out[f"acc_{qt}_{n}"] = 1 - len(wrong) / len(sel)
            if wrong:
                inscene = [w for r, w in wrong if w in {attr(o) for o in r["scene"].objects}]
                first = [
                    w for r, w in wrong if w == attr(min(r["scene"].objects, key=lambda o: o.cell))
                ]
                out[f"in_scene_{qt}_{n}"] = len(inscene) / len(wrong)
                out[f"first_{qt}_{n}"] = len(first) / len(wrong)
    return out


def word_cosine(model: VLM, tok, words) -> float:
    """Mean cosine between the embeddings of `words` (near 1: the model cannot tell them apart)."""
    ids = [tok.token_to_id("\u0120" + w) for w in words]
    v = F.normalize(model.lm.embed_tokens.weight.detach()[torch.tensor(ids)], dim=1)
    sim = v @ v.T
    return float(sim[~torch.eye(len(ids), dtype=torch.bool)].mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--n-text", type=int, default=3000)
    ap.add_argument("--qa-per-scene", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--schedule", default="wsd")
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--eval-n", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="")
    ap.add_argument("--variant", default="text", choices=sorted(DESCRIBE))
    a = ap.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(a.threads)
    try:  # both restored after: tests call main() in-process
        with flush_denormals(torch.device("cpu")):
            return _run(a)
    finally:
        torch.set_num_threads(threads)


def _run(a: argparse.Namespace) -> dict:
    torch.manual_seed(a.seed)
    t0 = time.time()
    texts = build_texts(a.n_text, a.qa_per_scene, a.seed, a.variant)
    tok = train_tokenizer(texts, 2048)
    bos, eos = tok.token_to_id("<bos>") or 1, tok.token_to_id("<eos>") or 2
    stream: list[int] = []
    for t in texts:
        stream += [bos] + encode_text(tok, t) + [eos]
    data = torch.tensor(stream)
    rows = eval_rows(a.eval_n, a.seed, a.variant)
    cfg = ModelConfig(d_model=a.d_model, n_layers=a.n_layers, n_heads=a.n_heads)
    model = VLM(cfg, tok.get_vocab_size(), a.seq + 64, 32, pretrained=False)
    params = list(model.lm.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.1, betas=(0.9, 0.95))
    print(
        f"{len(texts)} docs, {len(data)} tokens, vocab {tok.get_vocab_size()}, "
        f"setup {time.time() - t0:.0f} s",
        flush=True,
    )
    g = torch.Generator().manual_seed(a.seed)
    t1, res = time.time(), {}
    for step in range(a.steps):
        for pg in opt.param_groups:
            pg["lr"] = schedule_lr(step, a.steps, a.lr, a.lr * 0.1, 20, a.schedule, 0.2)
        starts = torch.randint(0, len(data) - a.seq - 1, (a.batch,), generator=g)
        x = torch.stack([data[s : s + a.seq + 1] for s in starts.tolist()])
        logits, _ = model(x[:, :-1], None)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        done = step + 1
        if done % a.eval_every == 0 or done == a.steps:
            res = evaluate(model, tok, rows, bos)
            acc = " ".join(f"{q} {res[f'accuracy_{q}']:.2f}" for q in QTYPES)
            nll = " ".join(f"{q} {res[f'nll_{q}']:.2f}" for q in QTYPES)
            res["cos_shape"] = word_cosine(model, tok, SHAPES)
            res["cos_colour"] = word_cosine(model, tok, COLOURS)
            per_n = " ".join(
                f"{k} {v:.2f}" for k, v in res.items() if k.split("_")[0] in ("acc", "in", "first")
            )
            print(
                f"  by scene size: {per_n}\n"
                f"step {done} loss {loss.item():.3f} | acc {acc} | option-nll {nll} "
                f"| cos shape {res['cos_shape']:.2f} colour {res['cos_colour']:.2f}"
                f"| {time.time() - t1:.0f} s",
                flush=True,
            )
    out = {**vars(a), **res, "train_s": round(time.time() - t1)}
    print("RESULT " + json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
