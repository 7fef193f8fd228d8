"""The local executor: curate a directory of shards with N worker processes, resumably.

Layout of `out_dir`:
    <shard>.parquet            kept documents, one output shard per input shard (same name)
    ledger.json                the merged ledger, plus "funnel" (what is left after each step)
    .curate/state.json         config + input fingerprint; a rerun with another config refuses
    .curate/<shard>.ledger.json, .curate/<shard>.done    per-shard stats and completion marker
    .curate/sig<k>-<shard>.bin signatures of global step k for that shard (cache, for resuming)

Passes: for each global step (dedup), signatures of every shard in parallel, then one
plan in global shard order; then the filtering pass over the unfinished shards. Every
file is written to a temporary name and renamed, and a shard's marker is written last,
so a killed run restarted recomputes only unfinished shards and ends with the same bytes.
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
from vloom.curate.registry import make_step, resolve_step
from vloom.doc import Document, Rejected, SchemaError, list_shards, read_shard, write_shard
from vloom.ledger import Ledger

STATE_DIR = ".curate"
StepSpec = tuple[type[Step], dict[str, Any]]


class _Tally:
    """Counts what flows past one point of the pipeline (a funnel row)."""

    def __init__(self, step: str) -> None:
        self.step, self.documents, self.images, self.text_words = step, 0, 0, 0

    def wrap(self, docs: Iterable[Document]) -> Iterator[Document]:
        for d in docs:
            self.documents += 1
            self.images += d.n_images
            self.text_words += sum(len(t.split()) for t in d.texts if t is not None)
            yield d

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "documents": self.documents,
            "images": self.images,
            "text_words": self.text_words,
        }


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

    tallies = [_Tally("read")]
    stream = tallies[0].wrap(source())
    for step in steps:
        tallies.append(_Tally(step.name))
        stream = tallies[-1].wrap(step.run(stream, rank=rank, world_size=world_size))
    kept = list(stream)
    led.kept = len(kept)
    for step, b in zip(steps, before, strict=True):
        delta = step.dropped - b
        if delta:
            led.dropped[step.name].update(delta)
    led.extra["funnel"] = [t.to_dict() for t in tallies]
    return kept, led


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
    path: Path, specs: list[StepSpec], k: int, plans: dict[int, Any], sig_path: Path
) -> None:
    items = _read_docs(path)
    sigs: list[bytes] = []
    if items is not None:
        steps = _build(specs[: k + 1], plans)
        docs: Iterable[Document] = (d for d in items if isinstance(d, Document))
        for step in steps[:k]:
            docs = step.run(docs)
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
        led.extra["funnel"] = [_Tally(s).to_dict() for s in ["read"] + [c.name for c, _ in specs]]
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


def _merge_funnels(funnels: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = [dict(row) for row in funnels[0]]
    for f in funnels[1:]:
        for acc, row in zip(out, f, strict=True):
            for key in ("documents", "images", "text_words"):
                acc[key] += row[key]
    return out


def run_curate(
    in_dir: str | os.PathLike, out_dir: str | os.PathLike, cfg: CurateConfig, quiet: bool = False
) -> Ledger:
    """Curate every shard of `in_dir` into `out_dir`; returns (and writes) the merged ledger."""
    shards = list_shards(in_dir)
    names = [p.name for p in shards]
    if len(set(names)) != len(names):
        raise CurateError(f"{in_dir}: shard file names are not unique")
    specs = [resolve_step(s) for s in cfg.steps]  # config errors before any work
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
        for k, (cls, params) in enumerate(specs):
            if not issubclass(cls, GlobalStep):
                continue
            sig_paths = [state / f"sig{k}-{name}.bin" for name in names]
            jobs = [
                (shards[i], specs, k, {j: p[i] for j, p in plans.items()}, sig_paths[i])
                for i in range(n)
                if not sig_paths[i].exists()
            ]
            _run_all(_signature_task, jobs, cfg.workers, f"signatures {cls.name}", quiet)
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
        _run_all(_shard_task, jobs, cfg.workers, "curate", quiet)

    ledger = Ledger()
    funnels = []
    for name in names:
        part = Ledger.from_dict(json.loads((state / f"{name}.ledger.json").read_text()))
        funnels.append(part.extra.get("funnel", []))
        ledger.merge(part)
    ledger.extra["funnel"] = _merge_funnels(funnels)
    ledger.write(out)
    return ledger
