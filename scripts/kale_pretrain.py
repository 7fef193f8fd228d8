"""KALE (issue 18): pre-train the demo-shaped VLM on KALE-augmented captions against the
pairs' original alt-text, same budget, same seeds, and print the paired differences.

    python scripts/kale_pretrain.py --checkpoint runs/demo/checkpoints/final --out runs/K-kale \
        [--pairs 3000 --interleaved 750 --text 750 --steps 400 --seeds 0 1 2 --jobs 2 \
         --arms alt kale true --world-seed 1 --config configs/demo.yaml]

What it does (every stage is skipped when its output is complete, so a rerun costs nothing):
1. World: `vloom synth` (vloom.synth.generate) with the demo's synth section, fewer documents
   and no injected noise, seed --world-seed, into OUT/synth. Its held-out eval sets are the
   ones every run is evaluated on.
2. Pairs: the world's own training pairs with each caption replaced by an alt-text of its
   scene (`kale.world_alt_text_pairs`: a few true facts, as a web alt-text), OUT/pairs/alt.
   Those pairs go through the real curate step `kale` (configs/generated/kale.yaml, its
   generator pointed at --checkpoint, `on_error: keep` so no pair is lost, the generation
   cache OUT/generations): OUT/pairs/kale, and its fact table (alt-text, the VLM's dense
   caption, the augmented caption, each scored against the world's truth).
3. Corpora, one per arm, that differ only in the pairs' captions: the world's interleaved and
   text documents (the same documents, in the same order, first), then the pairs: `alt` the
   alt-texts, `kale` the augmented captions, `true` (an upper bound) the world's full true
   captions. Packed with the experiment's pack section (vloom.pack.run_pack; no curate step,
   the world being clean); the tokenizer is trained on the shared documents alone
   (pack.tokenizer_docs = their number), so every arm has the same tokenizer (checked).
4. Training: the config's model and train sections (the demo's shape), train.steps = --steps,
   one torch thread per run, --jobs runs at a time; the same seeds in every arm (a seed fixes
   the model's initialisation and the data order). Evaluation: VQA (overall and per question
   type) and caption loss on the world's held-out sets (pipeline.train_stage / eval_stage, as
   `vloom run` and `vloom sweep` do).
5. Table: per arm the mean over seeds with a 95% t interval over the seeds; per pair of arms
   the paired difference with a t interval over the per-seed differences and a paired
   bootstrap over the questions (each question's correctness averaged over the seeds:
   vloom.report.study_diffs, vloom.report.stats). OUT/kale_pretrain.json keeps it all, and
   OUT/kale_pretrain.md the Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KALE_CONFIG = ROOT / "configs" / "generated" / "kale.yaml"
ARMS = ("alt", "kale", "true")
QTYPES = ("colour", "count", "shape", "position")
DONE = "_done"


def experiment_config(
    config: str | Path,
    pairs: int,
    interleaved: int,
    text: int,
    steps: int,
    n_vqa: int = 1200,
    n_text: int = 1200,
    batch_size: int | None = None,
) -> Any:
    """The experiment's config: the demo's (model, pack, train) with a smaller, clean world,
    `steps` training steps on one thread, VQA and caption loss."""
    from vloom.config import load_config

    noise = dict.fromkeys(
        ("exact_duplicate", "near_duplicate", "spam", "foreign_language")
        + ("broken_image", "tiny_image", "unrelated_image"),
        0.0,
    )
    extra = {"train.batch_size": batch_size} if batch_size else {}
    return load_config(
        config,
        extra
        | {
            "synth.n_pairs": pairs,
            "synth.n_interleaved": interleaved,
            "synth.n_text": text,
            "synth.n_eval_vqa": n_vqa,
            "synth.n_eval_text": n_text,  # the caption-loss set is half of it
            "synth.noise": noise,
            "pack.tokenizer_docs": max(interleaved + text, 10),
            "train.steps": steps,
            "train.threads": 1,
            "train.checkpoint_every": steps,
            "control": False,
            "eval.tasks": ["vqa", "caption_loss"],
        },
    )


def build_world(cfg: Any, out: Path, world_seed: int) -> Path:
    from vloom.ondisk import MANIFEST, complete, read_json
    from vloom.synth import generate

    synth = out / "synth"
    if not complete(synth / MANIFEST):
        generate(cfg.synth, synth, world_seed)
    made = read_json(synth / MANIFEST)
    if made["config"] != cfg.synth.model_dump(mode="json") or made["seed"] != world_seed:
        raise ValueError(f"{synth}: a world of other settings; choose another --out")
    return synth


def alt_pairs(synth: Path, out: Path, seed: int = 0) -> list[Any]:
    """The world's pairs with alt-texts of their scenes (OUT/pairs/alt, written once)."""
    from vloom.curate.generated.kale import world_alt_text_pairs
    from vloom.doc import read_documents, write_documents

    alt_dir = out / "pairs" / "alt"
    if not (alt_dir / DONE).exists():
        write_documents(alt_dir, world_alt_text_pairs(synth, seed), shard_size=500)
        (alt_dir / DONE).touch()
    return list(read_documents(alt_dir))


def kale_pairs(
    synth: Path,
    out: Path,
    checkpoint: str | Path,
    tokenizer: str | Path | None = None,
    config: str | Path = KALE_CONFIG,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """(alt-text pairs, KALE pairs, the kale step's fact table): the world's pairs with their
    alt-texts (OUT/pairs/alt), run through the curate step `kale` of `config` with its
    generator at `checkpoint` (OUT/pairs/kale; generations cached in OUT/generations)."""
    from vloom.config import load_curate_config
    from vloom.curate import run_curate
    from vloom.curate.generated.world_run import point_generators, score_table
    from vloom.doc import read_documents
    from vloom.ondisk import LEDGER, complete, read_json

    alt_dir, kale_dir = out / "pairs" / "alt", out / "pairs" / "kale"
    alt_pairs(synth, out, seed)
    if not complete(kale_dir / LEDGER):
        gen = {"path": str(checkpoint)} | ({"tokenizer": str(tokenizer)} if tokenizer else {})
        keep = {"on_error": "keep", **(params or {})}
        cfg = point_generators(load_curate_config(config), gen, keep, out / "generations")
        run_curate(alt_dir, kale_dir, cfg, quiet=True)
    table = score_table("kale", read_json(kale_dir / LEDGER))
    return list(read_documents(alt_dir)), list(read_documents(kale_dir)), table


def _bare(doc: Any, caption: str) -> Any:
    """A pair as every arm writes it: image, caption, the pair's id/source/url, no metadata
    (the packed tokens depend on the texts and the image alone)."""
    from vloom.curate.generated.common import first_image
    from vloom.doc import Document

    return Document.from_items(doc.id, [first_image(doc), caption], source=doc.source, url=doc.url)


def build_corpora(
    synth: Path, alt: list[Any], kale: list[Any], out: Path, arms: tuple[str, ...] = ARMS
) -> dict[str, Path]:
    """OUT/corpora/<arm>: the world's clean non-pair training documents (as they are, in the
    world's order), then the pairs (in the world's order) with the arm's captions; the same
    pair ids in every arm, or an error."""
    from vloom.curate.generated.common import world_documents
    from vloom.doc import list_shards, read_shard, write_documents

    true = {d.id: d for d in world_documents(synth, "pair-", 1 << 62)}
    caps = {
        "alt": {d.id: d.text for d in alt},
        "kale": {d.id: d.text for d in kale},
        "true": {i: d.text for i, d in true.items()},
    }
    ids = sorted(caps["alt"])
    for arm in arms:
        if sorted(caps[arm]) != ids:
            missing = sorted(set(ids) ^ set(caps[arm]))[:3]
            raise ValueError(f"arm {arm}: its pairs are not the alt-text pairs ({missing} ...)")
    shared = [
        d
        for shard in list_shards(synth / "train")
        for d in read_shard(shard)
        if not d.id.startswith("pair-") and "defect" not in d.metadata
    ]
    dirs = {}
    for arm in arms:
        d = out / "corpora" / arm
        if not (d / DONE).exists():
            pairs = [_bare(true[i], caps[arm][i]) for i in ids]
            write_documents(d, [*shared, *pairs], shard_size=1000)
            (d / DONE).touch()
        dirs[arm] = d
    return dirs


def pack_arms(cfg: Any, corpora: dict[str, Path], out: Path) -> dict[str, Path]:
    """OUT/packed/<arm>; every arm's tokenizer must be byte-identical."""
    from vloom.ondisk import STATS, TOKENIZER, complete
    from vloom.pack import run_pack

    packed, hashes = {}, {}
    for arm, corpus in corpora.items():
        p = out / "packed" / arm
        if not complete(p / STATS):
            run_pack(corpus, p, cfg, quiet=True)
        packed[arm] = p
        hashes[arm] = hashlib.sha256((p / TOKENIZER).read_bytes()).hexdigest()
    if len(set(hashes.values())) != 1:
        raise RuntimeError(f"the arms' tokenizers differ: {hashes}")
    return packed


def train_eval(cfg_json: dict[str, Any], packed: str, synth: str, run_dir: str) -> dict[str, Any]:
    """One run (a process of its own): train, evaluate; its results.json."""
    import torch

    from vloom.config import config_from_dict
    from vloom.pipeline import eval_stage, train_stage

    torch.set_num_threads(1)
    cfg = config_from_dict(cfg_json)
    run = Path(run_dir)
    data = _Dirs(Path(packed), Path(synth) / "eval")
    t0 = time.perf_counter()
    summary = train_stage(cfg, data.packed, run, quiet=True, eval_dir=data.eval)
    res = eval_stage(cfg, run / "checkpoints" / "final", data, run, summary, quiet=True)
    res.setdefault("wall_s", round(time.perf_counter() - t0, 1))
    return res


class _Dirs:
    """What eval_stage reads of pipeline.DataDirs, for a packed dir outside a run root."""

    def __init__(self, packed: Path, eval_dir: Path) -> None:
        self.packed, self.eval, self.tokenizer = packed, eval_dir, packed / "tokenizer.json"


def run_all(
    cfg: Any,
    packed: dict[str, Path],
    synth: Path,
    out: Path,
    seeds: list[int],
    jobs: int,
) -> list[dict[str, Any]]:
    """Every (arm, seed) run; the study's run records (settings, eval, dir)."""
    from vloom.config import dump_config

    todo = []
    for seed in seeds:  # seed-major: a budget cut short leaves whole pairs of arms
        for arm in packed:
            c = cfg.model_copy(deep=True)
            c.seed = seed
            c.out_dir = str(out / "runs" / f"{arm}-s{seed}")
            todo.append((arm, seed, (dump_config(c), str(packed[arm]), str(synth), c.out_dir)))
    runs = []
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        futs = [(arm, seed, args[-1], pool.submit(train_eval, *args)) for arm, seed, args in todo]
        for arm, seed, d, f in futs:
            res = f.result()
            runs.append(
                {"settings": {"captions": arm, "seed": seed}, "eval": res["eval"], "dir": d}
            )
            print(f"[kale_pretrain] {arm} seed {seed}: {_brief(res['eval'])}", flush=True)
    return runs


def finished_runs(out: Path, arms: tuple[str, ...], seeds: list[int]) -> list[dict[str, Any]]:
    """The run records of the seeds every arm has finished (their results.json)."""
    from vloom.ondisk import complete, read_json

    runs = []
    for seed in seeds:
        dirs = {arm: out / "runs" / f"{arm}-s{seed}" for arm in arms}
        if all(complete(d / "results.json") for d in dirs.values()):
            for arm, d in dirs.items():
                ev = read_json(d / "results.json")["eval"]
                runs.append(
                    {"settings": {"captions": arm, "seed": seed}, "eval": ev, "dir": str(d)}
                )
    if not runs:
        raise SystemExit(f"{out}/runs: no seed has finished in every arm yet")
    return runs


def _brief(ev: dict[str, Any]) -> str:
    return json.dumps(
        {
            "vqa": round(ev["vqa"]["accuracy"], 4),
            "caption_loss": round(ev["caption_loss"]["loss"], 4),
        }
    )


def _metrics(ev: dict[str, Any]) -> dict[str, float]:
    out = {"vqa": ev["vqa"]["accuracy"]}
    for q in QTYPES:
        if f"accuracy_{q}" in ev["vqa"]:
            out[f"vqa {q}"] = ev["vqa"][f"accuracy_{q}"]
    out["caption loss"] = ev["caption_loss"]["loss"]
    return out


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: mean and seed interval of each metric; per pair of arms (later minus
    earlier): the paired difference, its seed interval and (VQA) its question bootstrap."""
    from vloom.evaluate.records import read_examples
    from vloom.report.headline import paired_records
    from vloom.report.stats import paired_bootstrap_ci, t_interval
    from vloom.report.study_diffs import differences

    arms = list(dict.fromkeys(r["settings"]["captions"] for r in runs))
    by = {(r["settings"]["captions"], r["settings"]["seed"]): r for r in runs}
    seeds = sorted({r["settings"]["seed"] for r in runs})
    per_arm = {}
    for arm in arms:
        ms = [_metrics(by[arm, s]["eval"]) for s in seeds if (arm, s) in by]
        per_arm[arm] = {
            k: {"mean": statistics.fmean(m[k] for m in ms), "ci": t_interval([m[k] for m in ms])}
            for k in ms[0]
        }
    # the headline VQA difference from the study's own code (checks the per-type loop below)
    study = {(d.a, d.b): d for d in differences(runs, ["captions"]) if d.key == "vqa.accuracy"}
    diffs = []
    for i, a in enumerate(arms):
        for b in arms[i + 1 :]:
            both = [s for s in seeds if (a, s) in by and (b, s) in by]
            ma = {s: _metrics(by[a, s]["eval"]) for s in both}
            mb = {s: _metrics(by[b, s]["eval"]) for s in both}
            rows = {}
            for k in ma[both[0]]:
                per_seed = [mb[s][k] - ma[s][k] for s in both]
                row = {"diff": statistics.fmean(per_seed), "seed_ci": t_interval(per_seed)}
                if k.startswith("vqa"):
                    q = k.removeprefix("vqa").strip() or None
                    sums: dict[Any, list[float]] = {}
                    for s in both:
                        ra = read_examples(by[a, s]["dir"], "vqa") or []
                        rb = read_examples(by[b, s]["dir"], "vqa") or []
                        if q is not None:
                            ra = [r for r in ra if r.get("qtype") == q]
                            rb = [r for r in rb if r.get("qtype") == q]
                        for key, xa, xb in paired_records(ra, rb):
                            acc = sums.setdefault(key, [0.0, 0.0, 0])
                            acc[0], acc[1], acc[2] = acc[0] + xa, acc[1] + xb, acc[2] + 1
                    full = [v for v in sums.values() if v[2] == len(both)]
                    ea = [v[0] / v[2] for v in full]
                    eb = [v[1] / v[2] for v in full]
                    row["question_ci"] = paired_bootstrap_ci(eb, ea) if full else None
                    row["questions"] = len(full)
                rows[k] = row
            d = study.get((b, a))
            if d is not None:  # the study's code agrees with the loop above
                assert abs(d.diff - rows["vqa"]["diff"]) < 1e-9, (d.diff, rows["vqa"])
            diffs.append({"a": a, "b": b, "seeds": both, "metrics": rows})
    return {"seeds": seeds, "arms": per_arm, "differences": diffs}


def _ci(ci: Any) -> str:
    if ci is None or any(v != v for v in ci):
        return "—"
    return (
        f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci[0] < 0 or ci[1] < 0 else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
    )


def markdown(summary: dict[str, Any], facts: list[dict[str, Any]] | None = None) -> str:
    keys = list(next(iter(summary["arms"].values())))
    k = len(summary["seeds"])
    lines = [
        f"Per arm: mean of {k} seeds [95% t interval over the seeds].",
        "",
        "| captions | " + " | ".join(keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for arm, ms in summary["arms"].items():
        cells = [f"{ms[m]['mean']:.3f} {_ci(ms[m]['ci'])}" for m in keys]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences (b − a, same seeds): mean over seeds; seeds: 95% t interval over "
        "the per-seed differences; questions: 95% paired bootstrap over the held-out "
        "questions, each question's correctness averaged over the seeds.",
        "",
        "| b − a | metric | difference | seeds CI | questions CI |",
        "|---|---|---:|---|---|",
    ]
    for d in summary["differences"]:
        for m, r in d["metrics"].items():
            q = _ci(r.get("question_ci")) if "question_ci" in r else ""
            lines.append(
                f"| {d['b']} − {d['a']} | {m} | {r['diff']:+.3f} | {_ci(r['seed_ci'])} | {q} |"
            )
    if facts:
        lines += [
            "",
            "The pairs' captions scored against the world (the kale step's table):",
            "",
            "| text | texts | facts/text | true | false | hallucinated | coverage |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in facts:
            lines.append(
                f"| {r['text']} | {r['texts']} | {r['facts_per_text']} | {r['true']} | "
                f"{r['false']} | {r['hallucinated']} | {r['coverage']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="the captioner (a vloom checkpoint; the kale arm)")
    p.add_argument("--tokenizer", help="the captioner's tokenizer (default: its own)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    p.add_argument("--kale-config", default=str(KALE_CONFIG))
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--interleaved", type=int, default=750)
    p.add_argument("--text", type=int, default=750)
    p.add_argument("--eval-vqa", type=int, default=1200, help="held-out VQA questions")
    p.add_argument("--eval-text", type=int, default=1200, help="held-out captions: half of it")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, help="train.batch_size (default: the config's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--world-seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    p.add_argument(
        "--summarize-only",
        action="store_true",
        help="train nothing: the table of the --seeds whose runs have finished in every arm",
    )
    a = p.parse_args(argv)
    if "alt" not in a.arms:
        p.error("--arms: alt (the original captions) is the baseline every arm is paired with")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = a.out
    cfg = experiment_config(
        a.config, a.pairs, a.interleaved, a.text, a.steps, a.eval_vqa, a.eval_text, a.batch
    )
    synth = build_world(cfg, out, a.world_seed)
    print(f"[kale_pretrain] world {synth} ({time.perf_counter() - t0:.0f}s)", flush=True)
    arms = tuple(x for x in ARMS if x in a.arms)
    if "kale" in arms and not a.checkpoint:
        p.error("--checkpoint: the kale arm needs a captioner")
    if "kale" in arms:
        alt, kale, table = kale_pairs(synth, out, a.checkpoint, a.tokenizer, a.kale_config)
        print(
            f"[kale_pretrain] kale: {table['kept']} of {table['input']} pairs, generation "
            f"{table['generation']} ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    else:  # the other arms need no captioner: they can train while it is not there yet
        alt, kale, table = alt_pairs(synth, out), [], {}
    corpora = build_corpora(synth, alt, kale, out, arms)
    packed = pack_arms(cfg, corpora, out)
    print(f"[kale_pretrain] packed {list(packed)} ({time.perf_counter() - t0:.0f}s)", flush=True)
    if a.summarize_only:
        runs = finished_runs(out, tuple(packed), a.seeds)
    else:
        runs = run_all(cfg, packed, synth, out, a.seeds, a.jobs)
    summary = summarize(runs)
    summary["facts"] = table.get("facts")
    summary["setup"] = {
        "argv": sys.argv[1:] if argv is None else argv,
        "world": {"pairs": a.pairs, "interleaved": a.interleaved, "text": a.text},
        "steps": a.steps,
        "batch_size": cfg.train.batch_size,
        "seq_len": cfg.pack.seq_len,
        "packed_rows": {
            arm: json.loads((p / "stats.json").read_text()).get("sequences")
            for arm, p in packed.items()
        },
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    from vloom.ondisk import atomic_write_json, atomic_write_text

    md = markdown(summary, table.get("facts"))
    atomic_write_json(out / "kale_pretrain.json", summary)
    atomic_write_text(out / "kale_pretrain.md", md + "\n")
    print(md)
    return summary


if __name__ == "__main__":
    main()
