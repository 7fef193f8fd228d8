"""Curation at scale: does the driver stay flat while the corpus grows?

    python benchmarks/curate_scale.py --docs 300000 [--executor local|ray] [--workers 2]

A synthetic corpus of N short documents with planted duplicates (`curate.dupcorpus`: 5%
exact copies, 5% near copies with one word replaced, boilerplate lines in a fifth of the
originals), written as 10,000-document shards in a child process, then curated by
exact_dedup + minhash_dedup + paragraph_dedup + mix (repeat tiers by score: the top 10%
twice; with a single source every document is kept at least once, so the output's ids are
the dedup steps' kept set and precision/recall score them against the planted labels).

Prints one line:
    docs=N driver_peak_mb=X worker_peak_mb=Y docs_per_s=Z kept=K precision=P recall=R ...
driver_peak_mb: the driver's ru_maxrss (imports included) right after the run; worker_peak_mb:
the largest worker process's RSS, sampled every 0.1 s (local: the pool's processes; ray:
processes named ray::*). docs_per_s: N / wall time of `run_curate`, all passes included.
docs_per_cpu_s (local executor): N / CPU seconds of the driver and its worker processes
during the run, the per-core throughput with the machine's other load taken out.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from vloom.config import CurateConfig, StepConfig
from vloom.curate import run_curate
from vloom.curate.dedup.scoring import score_dedup
from vloom.curate.dupcorpus import write_planted
from vloom.doc import read_documents

STEPS = [
    {"name": "exact_dedup"},
    {"name": "minhash_dedup"},
    {"name": "paragraph_dedup"},
    {"name": "mix", "score_key": "score", "repeat": [[0.1, 2]]},
]


class PeakSampler(threading.Thread):
    """Largest RSS of the driver's worker processes, sampled."""

    def __init__(self, ray: bool) -> None:
        super().__init__(daemon=True)
        self.ray, self.peak, self.stop = ray, 0, threading.Event()

    def _workers(self) -> list[psutil.Process]:
        if self.ray:
            return [
                p
                for p in psutil.process_iter(["name"])
                if (p.info["name"] or "").startswith("ray::")
            ]
        return psutil.Process().children(recursive=True)

    def run(self) -> None:
        while not self.stop.wait(0.1):
            for p in self._workers():
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                except psutil.Error:
                    pass


def _cpu_s() -> float:
    """User + system CPU seconds of this process and its waited-for children (the pool)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--docs", type=int, default=30_000)
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=10_000)
    ap.add_argument("--partition-records", type=int, default=None)
    ap.add_argument("--work", type=Path, default=None, help="keep corpus and output here")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="curate-scale-"))
    in_dir, out = work / f"in-{args.docs}", work / f"out-{args.docs}-{args.executor}"
    if not in_dir.exists():
        # in a child process: the corpus's generation must not count in the driver's peak
        tmp = in_dir.with_name(in_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        proc = mp.get_context("spawn").Process(
            target=write_planted, args=(tmp, args.docs, args.shard_size)
        )
        proc.start()
        proc.join()
        assert proc.exitcode == 0, "corpus generation failed"
        tmp.rename(in_dir)
    shutil.rmtree(out, ignore_errors=True)
    cfg = CurateConfig(
        steps=[StepConfig(**s) for s in STEPS], workers=args.workers, executor=args.executor
    )
    sampler = PeakSampler(args.executor == "ray")
    sampler.start()
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    led = run_curate(in_dir, out, cfg, quiet=True, partition_records=args.partition_records)
    wall = time.perf_counter() - t0
    # Ray's workers are not this process's children: their CPU time is not seen here
    per_cpu = "na" if args.executor == "ray" else f"{args.docs / (_cpu_s() - cpu0):.0f}"
    sampler.stop.set()
    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept_ids = (d.id for d in read_documents(out) if "repeat_of" not in d.metadata)
    score = score_dedup(read_documents(in_dir), kept_ids)
    print(
        f"docs={args.docs} driver_peak_mb={driver_mb:.0f} worker_peak_mb={sampler.peak / 2**20:.0f} "
        f"docs_per_s={args.docs / wall:.0f} docs_per_cpu_s={per_cpu} kept={led.kept} precision={score.precision:.4f} "
        f"recall={score.recall:.4f} wall_s={wall:.1f} workers={args.workers} "
        f"executor={args.executor} cores={os.cpu_count()} load1={os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
