"""The local executor: curate a directory of shards with N worker processes, resumably.

Layout of `out_dir`:
    <shard>.parquet            kept documents, one output shard per input shard (same name)
    ledger.json                the merged ledger, plus "funnel" (what is left after each step);
                               the completion marker: removed when a run starts, written last
    .curate/state.json         config + input fingerprint (name, size, xxh3 of the bytes);
                               a rerun with other steps or other input content refuses
    .curate/<shard>.ledger.json, .curate/<shard>.done    per-shard stats and completion marker
    .curate/<shard>.quarantine.json  input rows a step could not finish (per-document guard)
    .curate/sig<k>-<shard>.bin signatures of global step k for that shard (cache, for resuming)
    .curate/spill<k>-<shard>.bin, part<k>-P<P>-*.bin   a partitioned step's records and its
                               partitions' outputs (`partition.py`), kept for resuming

Passes: steps' `prepare` hooks run on the driver first (e.g. training a classifier once);
for each global step (dedup, top-fraction, mix), signatures of every shard in parallel,
then its plan: partitioned (`partition.py`: partitions of the signatures as tasks, so no
process holds them all) for steps with a `record_dtype`, else one plan on the driver in
global shard order; then the filtering pass over the unfinished shards.
Every file is written atomically (`ondisk`), and a shard's marker is written last, so a
killed run restarted recomputes only unfinished shards and ends with the same bytes. The
per-shard passes go through a `MapFn`: worker processes here, Ray tasks in `ray_executor`
(same tasks, same files). The step hooks the driver calls are `base.Step`'s.

Per-document guard (`guard.py`): a step that runs past `doc_timeout` seconds on one document,
or raises on it, rejects that document ("<step>:timeout", "<step>:error:<Type>"); the row is
recorded in the shard's quarantine file, the shard's signature caches go, and the passes run
again without it (a worker stuck outside Python records the row and exits; the pass is
retried the same way). Rows already rejected this way are skipped by every later pass, so
plans always cover the same documents the filtering pass sees.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from tqdm import tqdm

from vloom import ondisk
from vloom.config import CurateConfig
from vloom.curate.base import CurateError, GlobalStep, Step
from vloom.curate.funnel import Tally, merge_counts, merge_funnels
from vloom.curate.guard import Chain, DocFailed, DocGuard
from vloom.curate.partition import (
    TASK_TRIES,
    PlanRef,
    global_ids,
    plan_partitioned,
    shard_state,
    write_spill,
)
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
# a shard where more than this share of rows (and at least MIN_QUARANTINE) fail is a broken
# step, not hostile documents: the run stops with the step's error instead of retrying on
MAX_QUARANTINE_SHARE, MIN_QUARANTINE = 0.05, 20


def run_steps(
    docs: Iterable[Document | Rejected],
    steps: list[Step],
    rank: int = 0,
    world_size: int = 1,
    guard: DocGuard | None = None,
) -> tuple[list[Document], Ledger]:
    """Run steps in order over documents in memory; the ledger adds up and carries the funnel.

    `Rejected` items (malformed rows from `read_shard`) are counted as rejected. Global
    steps without a loaded plan plan over this one stream, which is the same decision as
    the executor's. With a `guard`, a step that times out or raises on a document raises
    `DocFailed` naming the step, the input row (index in `docs`) and the reason.
    """
    led = Ledger()
    before = [Counter(s.dropped) for s in steps]

    def source() -> Iterator[tuple[int, Document]]:
        for row, d in enumerate(docs):
            led.input += 1
            if isinstance(d, Rejected):
                led.reject(d.reason)
            else:
                yield row, d

    _check_order([type(s) for s in steps])
    added_before = [s.added for s in steps]
    tallies = [Tally("read")]
    chain = Chain(guard) if guard is not None else None
    stream: Iterable[Document]
    stream = chain.source(source()) if chain else (d for _, d in source())
    stream = tallies[0].wrap(stream)
    for k, step in enumerate(steps, 1):
        tallies.append(Tally(step.name, step.funnel_group if step.funnel_groups else None))
        run = partial(step.run, rank=rank, world_size=world_size)
        stream = tallies[-1].wrap(chain(k, run, stream) if chain else run(stream))
    kept = list(stream)
    # repeated copies are output rows, not inputs: the books count each input once
    added = sum(s.added - a for s, a in zip(steps, added_before, strict=True))
    led.kept = len(kept) - added
    stats: dict[str, Any] = {}
    for step, b in zip(steps, before, strict=True):
        delta = step.dropped - b
        if delta:
            led.dropped[step.name].update(delta)
        step_stats = step.stats()
        if step_stats is not None:
            stats = merge_counts(stats, {step.name: step_stats})
    led.extra["funnel"] = [t.to_dict() for t in tallies]
    if stats:
        led.extra["step_stats"] = stats
    return kept, led


def _check_order(classes: list[type[Step]]) -> None:
    for i, cls in enumerate(classes[:-1]):
        if cls.adds_documents:
            raise CurateError(
                f"step {cls.name!r} must be the last step: it repeats documents, and a step "
                f"after it ({classes[i + 1].name!r}) would count copies as inputs"
            )


def _is_global(cls: type[Step], params: dict[str, Any]) -> bool:
    return issubclass(cls, GlobalStep) and cls.needs_plan(params)


# ---- per-shard tasks (top-level functions: they run in spawned worker processes) ----


def _build(specs: list[StepSpec], plans: dict[int, Any]) -> list[Step]:
    steps = [make_step(cls, params) for cls, params in specs]
    for k, state in plans.items():
        step = steps[k]
        assert isinstance(step, GlobalStep), f"plan given to non-global step {step.name}"
        step.apply_plan(shard_state(step, state) if isinstance(state, PlanRef) else state)
    return steps


def _read_docs(path: Path) -> list[Document | Rejected] | None:
    """All rows of a shard, or None when the shard itself is unusable."""
    try:
        return list(read_shard(path))
    except (SchemaError, pa.ArrowException, OSError):
        return None


def _row_count(path: Path) -> int | None:
    """Rows the shard's Parquet footer declares; None when the footer cannot be read."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - any unreadable footer
        return None


def _quarantine_file(state: Path, name: str) -> Path:
    return state / f"{name}.quarantine.json"


def _quarantined(state: Path, name: str) -> dict[int, str]:
    f = _quarantine_file(state, name)
    return {int(k): v for k, v in ondisk.read_json(f).items()} if f.exists() else {}


def _quarantine(state: Path, name: str, row: int, reason: str) -> None:
    """Record that `row` of shard `name` is rejected for `reason`; its plans are void now."""
    q = _quarantined(state, name)
    q[row] = reason
    ondisk.atomic_write_json(
        _quarantine_file(state, name), {str(k): v for k, v in sorted(q.items())}
    )
    for sig in state.iterdir():  # not a glob: a shard's name may hold "[" or "*"
        if re.fullmatch(rf"(sig|spill)\d+-{re.escape(name)}\.bin", sig.name):
            sig.unlink(missing_ok=True)
        elif re.fullmatch(r"part\d+-P\d+-.*", sig.name):
            sig.unlink(missing_ok=True)  # partition outputs counted the row: all are void


def _items(path: Path, state: Path) -> list[Document | Rejected] | None:
    """The shard's rows, with quarantined ones turned into `Rejected` (same positions)."""
    items = _read_docs(path)
    if items is not None:
        for row, reason in _quarantined(state, path.name).items():
            if row < len(items):
                items[row] = Rejected(id=getattr(items[row], "id", ""), reason=reason, error=reason)
    return items


def _guard(
    names: list[str], budget: float | None, state: Path, shard: str, driver: int
) -> DocGuard:
    def hard(step: str, row: int, reason: str) -> None:
        print(f"vloom curate: {shard} row {row}: {reason} (worker restarted)", file=sys.stderr)
        _quarantine(state, shard, row, reason)

    # ending the process is only for workers, never the driver (workers=1 runs tasks inline)
    return DocGuard(budget, names, hard if os.getpid() != driver else None)


def _failed(path: Path, state: Path, n_rows: int, e: DocFailed) -> None:
    """Quarantine the row of a failed document, or stop when the step fails on too many."""
    print(f"vloom curate: {path.name} row {e.row}: rejected, {e}", file=sys.stderr)
    _quarantine(state, path.name, e.row, e.reason)
    n = len(_quarantined(state, path.name))
    if n > max(MIN_QUARANTINE, MAX_QUARANTINE_SHARE * n_rows):
        raise CurateError(
            f"{path}: step {e.step!r} failed on {n} of {n_rows} documents, last {e}; "
            "this is the step, not the data"
        )


def _signature_task(
    path: Path,
    specs: list[StepSpec],
    k: int,
    plans: dict[int, Any],
    sig_path: Path,
    rank: int = 0,
    world_size: int = 1,
    budget: float | None = None,
    driver: int = -1,
) -> None:
    state = sig_path.parent
    items = _items(path, state)
    sigs: list[bytes] = []
    if items is not None:
        steps = _build(specs[: k + 1], plans)
        glob = steps[k]
        assert isinstance(glob, GlobalStep)
        names = ["read"] + [s.name for s in steps]
        try:
            with _guard(names, budget, state, path.name, driver) as g:
                chain = Chain(g)
                docs = chain.source((r, d) for r, d in enumerate(items) if isinstance(d, Document))
                for j, step in enumerate(steps[:k], 1):
                    docs = chain(j, partial(step.run, rank=rank, world_size=world_size), docs)
                for s in chain(k + 1, glob.signatures, docs):
                    assert len(s) == glob.sig_size, f"{glob.name}: signature of {len(s)} bytes"
                    sigs.append(s)
        except DocFailed as e:
            _failed(path, state, len(items), e)
            return  # no signature file: the driver plans again without this row
        if glob.record_dtype is not None:
            # this shard's records, bucketed by key, for the partition tasks (written before
            # the signatures: those are the marker that this shard's pass is done)
            raw = np.frombuffer(b"".join(sigs), dtype=np.uint8).reshape(-1, glob.sig_size)
            recs = glob.records(raw)
            recs["g"] = global_ids(rank, recs["g"])
            write_spill(spill_path(sig_path), recs)
    elif (dtype := getattr(specs[k][0], "record_dtype", None)) is not None:
        write_spill(spill_path(sig_path), np.empty(0, dtype))  # an unreadable shard: no records
    ondisk.atomic_write_bytes(sig_path, b"".join(sigs))


def spill_path(sig_path: Path) -> Path:
    return sig_path.with_name("spill" + sig_path.name.removeprefix("sig"))


def _bad_shard(path: Path, specs: list[StepSpec]) -> Ledger:
    """The ledger of a shard that cannot be read: every row it declares is rejected."""
    declared = _row_count(path)
    try:
        list(read_shard(path))
        err = "unreadable rows"
    except Exception as e:  # noqa: BLE001 - only to word the message
        err = str(e).splitlines()[0]
    if declared is None:
        # no readable footer: the number of rows is unknown, the file counts as one input
        n, reason = 1, "bad_shard_rows_unknown"
    else:
        n, reason = declared, "bad_shard"
    print(f"vloom curate: skipping bad shard ({n} rows, {reason}): {err}", file=sys.stderr)
    led = Ledger(input=n)
    led.reject(reason, n)
    led.extra["funnel"] = [Tally(s).to_dict() for s in ["read"] + [c.name for c, _ in specs]]
    return led


def _shard_task(
    path: Path,
    out_path: Path,
    state: Path,
    specs: list[StepSpec],
    plans: dict[int, Any],
    rank: int,
    world_size: int,
    budget: float | None = None,
    driver: int = -1,
) -> None:
    names = ["read"] + [cls.name for cls, _ in specs]
    while True:
        items = _items(path, state)  # read again each try: steps may edit documents in place
        if items is None:
            led = _bad_shard(path, specs)
            break
        try:
            with _guard(names, budget, state, path.name, driver) as g:
                kept, led = run_steps(items, _build(specs, plans), rank, world_size, guard=g)
        except DocFailed as e:
            _failed(path, state, len(items), e)
            if plans:
                return  # this shard's plans counted the row: the driver plans again
            continue
        write_shard(out_path, kept)
        break
    led.check()
    ondisk.atomic_write_json(state / f"{path.name}.ledger.json", led.to_dict(), indent=None)
    ondisk.atomic_write_bytes(state / f"{path.name}.done", b"")


# ---- the driver ----


def _content_id(path: Path) -> list[Any]:
    """Name, size and xxh3-128 of the bytes: a replaced input is never taken for the old one."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return [path.name, path.stat().st_size, h.hexdigest()]


def _fingerprint(cfg: CurateConfig, shards: list[Path]) -> dict[str, Any]:
    return {
        "steps": [s.model_dump(mode="json") for s in cfg.steps],
        "inputs": [_content_id(p) for p in shards],
    }


def _check_state(state: Path, fp: dict[str, Any], out_dir: Path) -> None:
    f = state / "state.json"
    if f.exists():
        if ondisk.read_json(f) != fp:
            raise CurateError(
                f"{out_dir}: holds a curate run with other steps or inputs (by content); "
                "use a fresh output directory or delete this one"
            )
        return
    # a fresh run writes only into an empty directory (hidden files aside): shards left there
    # by something else would sit beside ours under our ledger
    others = (
        [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
        if out_dir.exists()
        else []
    )
    if others:
        raise CurateError(
            f"{out_dir}: output directory is not empty and holds no curate run "
            f"({', '.join(sorted(others)[:3])}); use a fresh output directory"
        )
    ondisk.atomic_write_json(f, fp, indent=1)


def _run_all(
    fn: Callable[..., None], jobs: list[tuple], workers: int, desc: str, quiet: bool
) -> None:
    bar = tqdm(total=len(jobs), desc=desc, unit="shard", disable=quiet or not jobs)
    try:
        # with workers, no task runs in the driver: its memory stays that of the driver
        if workers <= 1 or not jobs:
            for job in jobs:
                fn(*job)
                bar.update()
            return
        ctx = mp.get_context("spawn")  # fork after pyarrow started its threads can deadlock
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx) as pool:
            try:
                for fut in as_completed([pool.submit(fn, *job) for job in jobs]):
                    fut.result()
                    bar.update()
            except BrokenProcessPool:
                # a worker ended (the guard ends one stuck outside Python after recording the
                # row): the driver sees unfinished shards and runs the pass again
                return
    finally:
        bar.close()


def run_curate(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: CurateConfig,
    quiet: bool = False,
    partition_records: int | None = None,
) -> Ledger:
    """Curate every shard of `in_dir` into `out_dir`; returns (and writes) the merged ledger.

    `cfg.executor` picks local worker processes or Ray tasks; both write the same bytes.
    """
    if cfg.executor == "ray":
        from vloom.curate.ray_executor import run_curate_ray

        return run_curate_ray(in_dir, out_dir, cfg, quiet, partition_records)
    return drive(in_dir, out_dir, cfg, _run_all, quiet, partition_records)


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
    partition_records: int | None = None,
) -> Ledger:
    """The driver shared by every executor; `run_all` runs one pass of per-shard tasks.

    `partition_records`: records per partition task of a partitioned plan (default
    `partition.PARTITION_RECORDS`); decisions do not depend on it."""
    shards = list_shards(in_dir)
    names = [p.name for p in shards]
    if len(set(names)) != len(names):
        raise CurateError(f"{in_dir}: shard file names are not unique")
    # config errors before any work; "{input}" in a parameter names the input directory
    specs = [(cls, expand_input(p, in_dir)) for cls, p in map(resolve_step, cfg.steps)]
    _check_order([cls for cls, _ in specs])
    try:
        out = ondisk.check_out_dir(out_dir, [in_dir, *shards])
    except (ValueError, FileExistsError) as e:
        raise CurateError(str(e)) from None
    state = out / STATE_DIR
    _check_state(state, _fingerprint(cfg, shards), out)
    state.mkdir(parents=True, exist_ok=True)
    # the ledger says "complete": it goes before any shard may change and comes back last
    (out / ondisk.LEDGER).unlink(missing_ok=True)
    for tmp in list(out.glob(".*.tmp*")) + list(state.glob(".*.tmp*")):
        tmp.unlink()  # leftovers of a killed run

    budget = cfg.doc_timeout
    n = len(shards)

    def unfinished() -> list[int]:
        return [i for i in range(n) if not (state / f"{names[i]}.done").exists()]

    def n_quarantined() -> int:
        return sum(len(_quarantined(state, name)) for name in names)

    todo = unfinished()
    if todo:
        specs = [(cls, cls.prepare(params, state)) for cls, params in specs]
        for cls, params in specs:
            make_step(cls, params)  # constructor errors (a bad program, model) before work
        while todo:
            seen = n_quarantined()
            plans = _plan(
                shards, specs, state, run_all, cfg.workers, budget, quiet, partition_records
            )
            if plans is not None:
                jobs = [
                    (shards[i], out / names[i], state, specs, {k: p[i] for k, p in plans.items()})
                    + (i, n, budget, os.getpid())
                    for i in todo
                ]
                run_all(_shard_task, jobs, cfg.workers, "curate", quiet)
                todo = unfinished()
            if todo and n_quarantined() == seen:
                raise CurateError(
                    f"{in_dir}: a pass ended with {len(todo)} shard(s) unfinished and no "
                    f"document named (a worker died?): {', '.join(names[i] for i in todo[:3])}"
                )

    ledger = Ledger()
    funnels = []
    stats: dict[str, Any] = {}
    for name in names:
        part = Ledger.from_dict(ondisk.read_json(state / f"{name}.ledger.json"))
        funnels.append(part.extra.get("funnel", []))
        stats = merge_counts(stats, part.extra.get("step_stats", {}))
        ledger.merge(part)
    ledger.extra["funnel"] = merge_funnels(funnels)
    if stats:
        ledger.extra["step_stats"] = stats
    ledger.check()
    ondisk.atomic_write_json(out / ondisk.LEDGER, ledger.to_dict())
    return ledger


def _plan(
    shards: list[Path],
    specs: list[StepSpec],
    state: Path,
    run_all: MapFn,
    workers: int,
    budget: float | None,
    quiet: bool,
    partition_records: int | None = None,
) -> dict[int, list[Any]] | None:
    """Each global step's plan, one state per shard; None when a signature pass lost a shard
    (a document was quarantined, its shard's signatures are void: plan again)."""
    n = len(shards)
    plans: dict[int, list[Any]] = {}
    for k, (cls, params) in enumerate(specs):
        if not _is_global(cls, params):
            continue
        sig_paths = [state / f"sig{k}-{p.name}.bin" for p in shards]
        step = make_step(cls, params)
        assert isinstance(step, GlobalStep)
        spills = [spill_path(p) for p in sig_paths]
        partitioned = step.record_dtype is not None
        for _ in range(TASK_TRIES):
            jobs = [
                (shards[i], specs, k, {j: p[i] for j, p in plans.items()}, sig_paths[i], i, n)
                + (budget, os.getpid())
                for i in range(n)
                if not sig_paths[i].exists() or (partitioned and not spills[i].exists())
            ]
            run_all(_signature_task, jobs, workers, f"signatures {cls.name}", quiet)
            if not all(p.exists() for p in sig_paths):
                return None  # a document was quarantined: plan again without it
            if not partitioned:
                break
            refs = plan_partitioned(
                step, k, sig_paths, spills, state, run_all, workers, quiet, partition_records
            )
            if refs is not None:
                plans[k] = refs
                break
            # else a damaged spill went with its signatures: compute them again
        else:
            raise CurateError(f"{cls.name}: spill files damaged {TASK_TRIES} times in a row")
        if partitioned:
            continue
        per_shard = []
        for p in sig_paths:
            raw = p.read_bytes()
            size = step.sig_size
            per_shard.append([raw[j : j + size] for j in range(0, len(raw), size)])
        plans[k] = step.plan(per_shard)
    return plans
