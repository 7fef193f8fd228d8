"""Generations per second through each generator backend on the same small model, and the
cache-hit path.

    python benchmarks/generate_throughput.py [--checkpoint CKPT] [--tokenizer TOK]
        [--n 64] [--new 32] [--batch 16] [--repeats 3] [--temperature 0]

The same weights run everywhere: the vloom checkpoint (default: the demo run's) through the
`vloom` backend; its Llama export (vloom.model.hf_export) through the `hf` backend with
vloom's template (so both read the same prompt ids; the share of identical texts is printed),
unpadded (equal-length batches, as vloom's sampler) and left-padded (`pad: true`); `vloom
serve` on 127.0.0.1 (a free port, a child process) through the `http` backend when it is
installed; and a rerun of the vloom generator over its filled cache (no backend call). The
requests are the world's questions (four question types, several prompt lengths), text only
(the hf backend is text-only), fp32 on the CPU unless --device says otherwise. The timings
alternate between the backends and the median of --repeats is reported, so a loaded machine
slows all alike; ratios are to the vloom backend.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vloom.generate.generator import Generator, Request, make_generator
from vloom.synth.language import QTYPES, make_qa
from vloom.synth.world import sample_scene

DEMO = Path("/tmp/s22/demo_base/demo/checkpoints/final")
DEMO_TOKENIZER = Path("/tmp/s22/demo_base/demo/packed/tokenizer.json")


def world_requests(n: int, new: int, temperature: float, seed: int = 0) -> list[Request]:
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        qa = make_qa(sample_scene(rng), QTYPES[i % len(QTYPES)], rng)
        reqs.append(
            Request(
                prompt=f"Figure {i}. {qa.question}",  # distinct: none is answered twice
                max_new_tokens=new,
                temperature=temperature,
                seed=i,
            )
        )
    return reqs


def start_server(
    ckpt: Path, tokenizer: Path, device: str, batch: int, threads: int
) -> tuple[subprocess.Popen, str]:
    """`vloom serve` on a free loopback port; returns the process and its /v1 URL."""
    cmd = [sys.executable, "-m", "vloom", "serve", str(ckpt), "--port", "0", "--quiet",
           "--tokenizer", str(tokenizer), "--device", device, "--max-batch", str(batch)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    m = re.search(r" on (http://\S+/v1)", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"vloom serve did not start: {line!r}")
    return proc, m.group(1)


def timed(runs: dict[str, Callable[[], list]], repeats: int) -> dict[str, tuple[float, list]]:
    """name -> (median seconds, the last run's generations); runs alternate per repeat."""
    secs: dict[str, list[float]] = {k: [] for k in runs}
    last: dict[str, list] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            last[name] = fn()
            secs[name].append(time.perf_counter() - t)
    return {k: (statistics.median(v), last[k]) for k, v in secs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=DEMO)
    ap.add_argument("--tokenizer", type=Path, default=DEMO_TOKENIZER)
    ap.add_argument("--n", type=int, default=64, help="requests per run")
    ap.add_argument("--new", type=int, default=32, help="max new tokens")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads, here and in the server (a loaded "
        "2-core machine ran the vloom backend 13x slower with 2 than with 1)",
    )
    ap.add_argument("--no-http", action="store_true", help="skip the vloom serve run")
    args = ap.parse_args()

    import torch

    from vloom.model.hf_export import export_checkpoint

    torch.set_num_threads(args.threads)
    reqs = world_requests(args.n, args.new, args.temperature)
    common = {"device": args.device, "batch_size": args.batch}
    with tempfile.TemporaryDirectory(prefix="genbench-") as tmp:
        tmp = Path(tmp)
        export_checkpoint(args.checkpoint, tmp / "hf", args.tokenizer)
        vloom_spec = {
            "backend": "vloom",
            "path": str(args.checkpoint),
            "tokenizer": str(args.tokenizer),
        }
        hf_spec = {"backend": "hf", "path": str(tmp / "hf"), "template": "vloom"}
        gens: dict[str, Generator] = {
            "vloom": make_generator(vloom_spec | common),
            "hf": make_generator(hf_spec | common),
            "hf padded": make_generator(hf_spec | common | {"options": {"pad": True}}),
        }
        proc = None
        if not args.no_http:
            try:
                import vloom.generate.backends.http  # noqa: F401
            except ImportError:
                print("http: skipped (vloom.generate.backends.http is not installed)")
            else:
                proc, url = start_server(
                    args.checkpoint, args.tokenizer, args.device, args.batch, args.threads
                )
                gens["http (vloom serve)"] = make_generator(
                    {
                        "backend": "http",
                        "url": url,
                        "model": "vloom",
                        "batch_size": args.batch,
                        "options": {"concurrency": args.batch},
                    }
                )
        cached = make_generator(vloom_spec | common, cache_dir=tmp / "cache")
        cached.generate(reqs)  # fill the cache once; every timed run is all hits
        runs = {k: (lambda g=g: g.generate(reqs)) for k, g in gens.items()}
        runs["cache hit (vloom)"] = lambda: cached.generate(reqs)
        try:
            res = timed(runs, args.repeats)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    base = res["vloom"][0]
    ref = [g.text for g in res["vloom"][1]]
    print(
        f"{args.n} requests, {args.new} new tokens max, temperature {args.temperature}, "
        f"batch {args.batch}, {args.device}, torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    print(f"{'backend':<22}{'gen/s':>10}{'x vloom':>10}{'ok':>6}{'same text':>11}")
    for name, (sec, out) in res.items():
        same = sum(g.text == r for g, r in zip(out, ref, strict=True)) / len(ref)
        ok = sum(g.ok for g in out)
        print(f"{name:<22}{args.n / sec:>10.1f}{base / sec:>10.2f}{ok:>6}{same:>11.0%}")
    print(f"cache hits counted: {cached.counts['cache_hit']}")


if __name__ == "__main__":
    main()
