"""The local executor: curate a directory of shards with N worker processes, resumably.

Layout of `out_dir`:
    <shard>.parquet            kept documents, one output shard per input shard (same name)
    ledger.json                the merged ledger, plus "funnel" (what is left after each step)
    .curate/state.json         config + input fingerprint; a rerun with another config refuses
    .curate/<shard>.ledger.json, .curate/<shard>.done    per-shard stats and completion marker
    .curate/sig<k>-<shard>.bin signatures of global step k for that shard (cache, for resuming)

Passes: steps that need the driver first (`prepare`, e.g. training a classifier once)
run on the driver; for each global step (dedup, top-fraction, mix), signatures of every
shard in parallel, then one plan in global shard order; then the filtering pass over the
unfinished shards. Every file is written to a temporary name and renamed, and a shard's
marker is written last, so a killed run restarted recomputes only unfinished shards and
ends with the same bytes. The per-shard passes go through a `MapFn`: worker processes
here, Ray tasks in `ray_executor` (same tasks, same files).

Optional hooks a step class may define (beyond `base.Step`), all looked up with getattr:
    prepare(params, work_dir) -> params   classmethod, on the driver before any pass
    needs_plan(params) -> bool            classmethod; a GlobalStep that answers False
                                          runs as a plain streaming step
    stats() -> dict                       nested counts, summed over shards into the
                                          ledger's "step_stats"[name]
    added: int                            documents the step created (repeated copies);
                                          such a step (`adds_documents = True`) must be last
    funnel_group(doc) -> str              its funnel row is also counted per group
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from vloom.config import CurateConfig
from vloom.curate.base import CurateError, GlobalStep, Step
from vloom.curate.funnel import Tally, merge_counts, merge_funnels
from vloom.curate.registry import make_step, resolve_step
from vloom.doc import Document, Rejected, SchemaError, list_shards, read_shard, write_shard
from vloom.ledger import Ledger

# Curation reads shard after shard. pyarrow's default allocator (jemalloc/mimalloc) keeps freed
# pages: +35 MB RSS per 1,000-document shard read, against +9 MB with the system allocator
# (benchmarks/minhash_vs_datatrove.py). Module level, so spawned workers get it too; a user's
# ARROW_DEFAULT_MEMORY_POOL still wins.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())

STATE_DIR = ".curate"
StepSpec = tuple[type[Step], dict[str, Any]]
# (task function, jobs as argument tuples, workers, progress label, quiet) -> None
MapFn = Callable[[Callable[..., None], list[tuple], int, str, bool], None]


def run_steps(
    docs: Iterable[Document | Rejected], steps: list[Step], rank: int = 0, world_size: int = 1
) -> tuple[list[Document], Ledger]:
    """Run steps in order over documents in memory; the ledger adds up and carries the funnel.

    `Rejected` items (malformed rows from `read_shard`) are counted as rejected. Global
    steps without a loaded plan decide while streaming, which over one stream is the
    same as the executor's global decision.
    """
    led = Ledger()
    before = [Counter(s.dropped) for s in steps]

    def source() -> Iterator[Document]:
        for d in docs:
            led.input += 1
            if isinstance(d, Rejected):
                led.reject(d.reason)
            else:
                yield d

    _check_order([type(s) for s in steps])
    added_before = [getattr(s, "added", 0) for s in steps]
    tallies = [Tally("read")]
    stream = tallies[0].wrap(source())
    for step in steps:
        tallies.append(Tally(step.name, getattr(step, "funnel_group", None)))
        stream = tallies[-1].wrap(step.run(stream, rank=rank, world_size=world_size))
    kept = list(stream)
    # repeated copies are output rows, not inputs: the books count each input once
    added = sum(getattr(s, "added", 0) - a for s, a in zip(steps, added_before, strict=True))
    led.kept = len(kept) - added
    stats: dict[str, Any] = {}
    for step, b in zip(steps, before, strict=True):
        delta = step.dropped - b
        if delta:
            led.dropped[step.name].update(delta)
        if hasattr(step, "stats"):
            stats = merge_counts(stats, {step.name: step.stats()})
    led.extra["funnel"] = [t.to_dict() for t in tallies]
    if stats:
        led.extra["step_stats"] = stats
    return kept, led


def _check_order(classes: list[type[Step]]) -> None:
    for i, cls in enumerate(classes[:-1]):
        if getattr(cls, "adds_documents", False):
            raise CurateError(
                f"step {cls.name!r} must be the last step: it repeats documents, and a step "
                f"after it ({classes[i + 1].name!r}) would count copies as inputs"
            )


def _is_global(cls: type[Step], params: dict[str, Any]) -> bool:
    if not issubclass(cls, GlobalStep):
        return False
    needs = getattr(cls, "needs_plan", None)
    return bool(needs(params)) if needs is not None else True


# ---- per-shard tasks (top-level functions: they run in spawned worker processes) ----


def _build(specs: list[StepSpec], plans: dict[int, Any]) -> list[Step]:
    steps = [make_step(cls, params) for cls, params in specs]
    for k, state in plans.items():
        step = steps[k]
        assert isinstance(step, GlobalStep), f"plan given to non-global step {step.name}"
        step.load_plan(state)
    return steps


def _read_docs(path: Path) -> list[Document | Rejected] | None:
    """All rows of a shard, or None when the shard itself is unusable."""
    try:
        return list(read_shard(path))
    except (SchemaError, pa.ArrowException, OSError):
        return None


def _row_count(path: Path) -> int:
    try:
        return max(pq.ParquetFile(path).metadata.num_rows, 1)
    except Exception:  # noqa: BLE001 - unreadable footer: count the file as one input
        return 1


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _signature_task(
    path: Path,
    specs: list[StepSpec],
    k: int,
    plans: dict[int, Any],
    sig_path: Path,
    rank: int = 0,
    world_size: int = 1,
) -> None:
    items = _read_docs(path)
    sigs: list[bytes] = []
    if items is not None:
        steps = _build(specs[: k + 1], plans)
        docs: Iterable[Document] = (d for d in items if isinstance(d, Document))
        for step in steps[:k]:
            docs = step.run(docs, rank=rank, world_size=world_size)
        glob = steps[k]
        assert isinstance(glob, GlobalStep)
        for s in glob.signatures(docs):
            assert len(s) == glob.sig_size, f"{glob.name}: signature of {len(s)} bytes"
            sigs.append(s)
    _atomic_write(sig_path, b"".join(sigs))


def _shard_task(
    path: Path,
    out_path: Path,
    state: Path,
    specs: list[StepSpec],
    plans: dict[int, Any],
    rank: int,
    world_size: int,
) -> None:
    items = _read_docs(path)
    if items is None:
        n = _row_count(path)
        try:
            list(read_shard(path))
            err = "unreadable rows"
        except Exception as e:  # noqa: BLE001 - only to word the message
            err = str(e).splitlines()[0]
        print(f"vloom curate: skipping bad shard ({n} rows): {err}", file=sys.stderr)
        led = Ledger(input=n)
        led.reject("bad_shard", n)
        led.extra["funnel"] = [Tally(s).to_dict() for s in ["read"] + [c.name for c, _ in specs]]
    else:
        kept, led = run_steps(items, _build(specs, plans), rank=rank, world_size=world_size)
        write_shard(out_path, kept)
    led.check()
    _atomic_write(state / f"{path.name}.ledger.json", json.dumps(led.to_dict()).encode())
    _atomic_write(state / f"{path.name}.done", b"")


# ---- the driver ----


def _fingerprint(cfg: CurateConfig, shards: list[Path]) -> dict[str, Any]:
    return {
        "steps": [s.model_dump(mode="json") for s in cfg.steps],
        "inputs": [[p.name, p.stat().st_size] for p in shards],
    }


def _check_state(state: Path, fp: dict[str, Any], out_dir: Path) -> None:
    f = state / "state.json"
    if f.exists():
        if json.loads(f.read_text()) != fp:
            raise CurateError(
                f"{out_dir}: holds a curate run with other steps or inputs; "
                "use a fresh output directory or delete this one"
            )
    else:
        _atomic_write(f, json.dumps(fp, indent=1).encode())


def _run_all(
    fn: Callable[..., None], jobs: list[tuple], workers: int, desc: str, quiet: bool
) -> None:
    bar = tqdm(total=len(jobs), desc=desc, unit="shard", disable=quiet or not jobs)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                fn(*job)
                bar.update()
            return
        ctx = mp.get_context("spawn")  # fork after pyarrow started its threads can deadlock
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            for fut in as_completed([pool.submit(fn, *job) for job in jobs]):
                fut.result()
                bar.update()
    finally:
        bar.close()


def run_curate(
    in_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: CurateConfig, quiet: bool = False
) -> Ledger:
    """Curate every shard of `in_dir` into `out_dir`; returns (and writes) the merged ledger.

    `cfg.executor` picks local worker processes or Ray tasks; both write the same bytes.
    """
    if cfg.executor == "ray":
        from vloom.curate.ray_executor import run_curate_ray

        return run_curate_ray(in_dir, out_dir, cfg, quiet=quiet)
    return drive(in_dir, out_dir, cfg, _run_all, quiet=quiet)


def expand_input(params: dict[str, Any], in_dir: str | os.PathLike) -> dict[str, Any]:
    """Parameters with "{input}" in string values (or lists of them) replaced by in_dir, so a
    config can name files beside its input (e.g. a classifier's training sets)."""

    def sub(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace("{input}", str(in_dir))
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    return {k: sub(v) for k, v in params.items()}


def drive(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: CurateConfig,
    run_all: MapFn,
    quiet: bool = False,
) -> Ledger:
    """The driver shared by every executor; `run_all` runs one pass of per-shard tasks."""
    shards = list_shards(in_dir)
    names = [p.name for p in shards]
    if len(set(names)) != len(names):
        raise CurateError(f"{in_dir}: shard file names are not unique")
    # config errors before any work; "{input}" in a parameter names the input directory
    specs = [(cls, expand_input(p, in_dir)) for cls, p in map(resolve_step, cfg.steps)]
    _check_order([cls for cls, _ in specs])
    out = Path(out_dir)
    if any(p.resolve().parent == out.resolve() for p in shards):
        raise CurateError(f"{out}: output directory is the input directory")
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    _check_state(state, _fingerprint(cfg, shards), out)
    for tmp in list(out.glob(".*.tmp")) + list(state.glob(".*.tmp")):
        tmp.unlink()  # leftovers of a killed run

    n = len(shards)
    todo = [i for i in range(n) if not (state / f"{names[i]}.done").exists()]
    plans: dict[int, list[Any]] = {}
    if todo:
        specs = [
            (cls, cls.prepare(params, state) if hasattr(cls, "prepare") else params)
            for cls, params in specs
        ]
        for cls, params in specs:
            make_step(cls, params)  # constructor errors (a bad program, model) before work
        for k, (cls, params) in enumerate(specs):
            if not _is_global(cls, params):
                continue
            sig_paths = [state / f"sig{k}-{name}.bin" for name in names]
            jobs = [
                (shards[i], specs, k, {j: p[i] for j, p in plans.items()}, sig_paths[i], i, n)
                for i in range(n)
                if not sig_paths[i].exists()
            ]
            run_all(_signature_task, jobs, cfg.workers, f"signatures {cls.name}", quiet)
            step = make_step(cls, params)
            assert isinstance(step, GlobalStep)
            per_shard = []
            for p in sig_paths:
                raw = p.read_bytes()
                size = step.sig_size
                per_shard.append([raw[j : j + size] for j in range(0, len(raw), size)])
            plans[k] = step.plan(per_shard)
        jobs = [
            (shards[i], out / names[i], state, specs, {k: p[i] for k, p in plans.items()}, i, n)
            for i in todo
        ]
        run_all(_shard_task, jobs, cfg.workers, "curate", quiet)

    ledger = Ledger()
    funnels = []
    stats: dict[str, Any] = {}
    for name in names:
        part = Ledger.from_dict(json.loads((state / f"{name}.ledger.json").read_text()))
        funnels.append(part.extra.get("funnel", []))
        stats = merge_counts(stats, part.extra.get("step_stats", {}))
        ledger.merge(part)
    ledger.extra["funnel"] = merge_funnels(funnels)
    if stats:
        ledger.extra["step_stats"] = stats
    ledger.write(out)
    return ledger
