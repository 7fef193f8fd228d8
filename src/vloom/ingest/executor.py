"""Parallel, resumable ingest: whole input files on worker processes or Ray tasks.

The inputs are split into parts (`split`): whole input files (one large file, or up to 64
consecutive small ones of one directory), in the order a one-process
run reads them (a directory walk, sorted). Each part runs the source on its one file in a worker
(`_part_task`) and writes its Documents and its ledger under the work directory; the driver then
reads the parts back in input order, renumbers them into `shard_size` shards and merges their
ledgers (`assemble`), so the output bytes - shards and ledger - are those of a one-process run,
for any number of workers and either executor.

Work directory, beside the output (`.ingest-<out name>/`, kept until the output is in place):
    state.json                 source kind, options, and each part's input identity (name, size,
                               xxh3-128 of the bytes); a rerun with other inputs or options
                               starts over, a rerun with the same ones resumes
    part-<k>/docs.arrows       part k's Documents (Arrow IPC stream, shard schema);  part-<k>.ledger.json  its ledger
    part-<k>.done              written last: part k is finished (never redone on a resume)
A run killed at any point (SIGKILL included) and rerun redoes only unfinished parts.

Sources and their parts: html (grouped) and pdf (one per part) split by file (a file found by walking a directory keeps
that directory as its root: ids, relative paths, the image root and the outside-root rule are
those of the walk); pairs per tar/Parquet file; hf per input (dataset directory or file: row
numbers run across a split's files, so one dataset is one part); warc per range of records of
each WARC (about 1/16 of the run's pages each, 512 KiB of them at least), after every WARC was
scanned for its image records (a page's images may come from any of the given WARCs;
`warc_jobs`). Work directory, warc: also
scan-<f>.json per WARC, scan-<f>.images (the payloads of its images, which parts read from there
instead of inflating their records again) and warc-images.json, the merged image index.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash
from tqdm import tqdm

from vloom import ondisk
from vloom.doc import SCHEMA, Document
from vloom.ingest import base, hardstop
from vloom.ingest.base import IngestError, IngestOptions, get_source, inside_root
from vloom.ledger import Ledger

EXECUTORS = ("local", "ray")
PART_FILES, PART_BYTES = 64, 8 << 20  # small files per part at most (see split)
WORK_FORMAT = 3  # 3: parts as Arrow IPC streams, WARC image payloads beside the scans
MAX_PASSES = 3  # a part whose worker died is retried this many times before the run stops
# (task function, jobs as argument tuples, workers, progress label, quiet) -> None
MapFn = Callable[[Callable[..., None], list[tuple], int, str, bool], None]


@dataclass(frozen=True)
class Part:
    """Consecutive input files found in one directory (root None: named on the command line)."""

    paths: tuple[Path, ...]
    root: Path | None
    extra: tuple[tuple[str, Any], ...] = ()  # source options that keep the whole run's ids


def split(kind: str, inputs: list[Path]) -> list[Part] | None:
    """The parts of a run in input order, or None when the source runs as one part.

    Small files are grouped (up to PART_FILES files or PART_BYTES bytes, one root per part) so
    a part is worth a task; the grouping depends on the inputs only, never on the number of
    workers, so a rerun with another --workers resumes the same parts.
    """
    if kind == "html":
        from vloom.ingest.html import HTML_SUFFIXES, walk_inputs

        named = {p for p in inputs if not p.is_dir()}
        files = [
            (f, None if f in named else root) for root, f in walk_inputs(inputs, HTML_SUFFIXES)
        ]
        return _group(files, PART_FILES)
    if kind == "pdf":
        from vloom.ingest.pdf import _walk

        return _group([(f, root) for root, f in _walk(inputs)], 1)
    if kind == "pairs":
        from vloom.ingest.pairs import _walk as pairs_walk

        return _group([(f, None) for f in pairs_walk(inputs)], PART_FILES)
    if kind == "warc":
        from vloom.ingest.warc import _warc_files

        return _group(_warc_files(inputs), 1)  # each WARC scanned, then split (warc_jobs)
    if kind == "hf" and len(inputs) > 1:
        from vloom.ingest.hf_dataset import input_names

        names = input_names(inputs)
        return [
            Part((p,), None, (("_input_names", [n]),)) for p, n in zip(inputs, names, strict=True)
        ]
    return None


def _group(files: list[tuple[Path, Path | None]], max_files: int) -> list[Part]:
    parts: list[Part] = []
    cur: list[Path] = []
    root: Path | None = None
    size = 0
    for f, r in files:
        if cur and (r != root or len(cur) >= max_files or size >= PART_BYTES):
            parts.append(Part(tuple(cur), root))
            cur, size = [], 0
        cur.append(f)
        root = r
        try:
            size += f.stat().st_size if f.is_file() else 0
        except OSError:
            pass
    if cur:
        parts.append(Part(tuple(cur), root))
    return parts


def content_id(path: Path) -> list[Any]:
    """Name, size and xxh3-128 of the bytes (as curate's resume does); unreadable: name only."""
    if not path.is_file():  # a FIFO or device: never opened here (the source names it)
        return [str(path), None, None]
    try:
        h = xxhash.xxh3_128()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return [str(path), path.stat().st_size, h.hexdigest()]
    except OSError:
        return [str(path), None, None]


# ---- one part (a top-level function: it runs in spawned workers and Ray tasks) ----


def _part_task(
    kind: str, inputs: list[str], opts: IngestOptions, work: str, k: int, hard: bool = False
) -> None:
    """Ingest part k into `work`/part-<k>/ with its ledger; the done marker is written last.

    `hard` (a worker process, never the driver): the watchdog of hardstop.py guards each unit.
    """
    state = Path(work)
    if not hard:
        return _part(kind, inputs, opts, state, k)
    _load_test_hooks()
    hardstop.current = hardstop.HardStop(state / f"part-{k:06d}.quarantine.json")
    try:
        _part(kind, inputs, opts, state, k)
    finally:
        hardstop.current.close()
        hardstop.current = None


def _load_test_hooks() -> None:
    import importlib

    for spec in filter(None, os.environ.get("VLOOM_INGEST_TEST_HOOKS", "").split(",")):
        mod, fn = spec.split(":")
        hook = getattr(importlib.import_module(mod), fn)
        if hook not in base.UNIT_HOOKS:
            base.UNIT_HOOKS.append(hook)


def _part(kind: str, inputs: list[str], opts: IngestOptions, state: Path, k: int) -> None:
    source = get_source(kind)
    part_dir = state / f"part-{k:06d}"
    shutil.rmtree(part_dir, ignore_errors=True)  # a killed earlier attempt's leftovers
    ledger = Ledger()
    paths = [Path(p) for p in inputs]
    root = opts.input_root
    if kind == "pdf" and root is not None and not inside_root(paths[0], root):  # 1 file/part
        ledger.input += 1  # the pdf source's own rule for a walked file, applied before it
        ledger.reject("outside_root")
        docs: Iterator[Document] = iter(())
    else:
        if kind == "pdf":
            opts = dataclasses.replace(opts, input_root=None)  # checked just above
        docs = source(paths, ledger, opts)

    def kept() -> Iterator[Document]:
        for d in docs:
            ledger.kept += 1
            yield d

    tmp = state / f".tmp-part-{k:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write_part_docs(tmp / PART_DOCS, kept())
    ledger.check()
    os.replace(tmp, part_dir)
    ondisk.atomic_write_json(state / f"part-{k:06d}.ledger.json", ledger.to_dict(), indent=None)
    ondisk.atomic_write_bytes(state / f"part-{k:06d}.done", b"")


# A part's Documents go to the driver, which writes the shards: an uncompressed Arrow IPC
# stream in the shard schema (a work file only this run writes and reads; no pickle, which
# would run code from a file on shared storage), not Parquet, which would compress and decode
# every image once more on the way (a tenth of a one-process run's time on the GIMP WARC).
PART_DOCS = "docs.arrows"
_PART_BATCH = 64  # documents a record batch: bounded memory on both sides


def write_part_docs(path: Path, docs: Iterator[Document]) -> None:
    """Each Document (checked as a shard's writer checks it) in turn, a record batch at a time."""
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, SCHEMA) as w:
        rows: list[dict] = []
        for d in docs:
            d.validate()
            rows.append(d.to_row())
            if len(rows) == _PART_BATCH:
                w.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
                rows = []
        if rows:
            w.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))


def read_part_docs(path: Path) -> Iterator[Document]:
    with pa.OSFile(str(path), "rb") as f, pa.ipc.open_stream(f) as r:
        for batch in r:
            for row in batch.to_pylist():
                meta = row.pop("metadata")
                yield Document(**row, metadata=json.loads(meta) if meta else {})


# ---- the driver ----


# The run's worker processes: one pool serves every pass of a run (the WARC scans, the parts,
# reruns of parts whose worker died), started before the driver's own work so the workers'
# imports overlap it; `run_pool` holds it for run_parts, `local_map` uses it when one is held.
_pool: ProcessPoolExecutor | None = None
_pool_held = False
_pool_size = 0


def _warm(kind: str) -> None:
    """A new worker's imports (its source's modules): done while the driver still works."""
    get_source(kind)


def _noop() -> None:
    pass


def _new_pool(workers: int, kind: str | None) -> ProcessPoolExecutor:
    ctx = mp.get_context("spawn")  # fork after pyarrow started its threads can deadlock
    init = (_warm, (kind,)) if kind else (None, ())
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init[0], initargs=init[1])
    for _ in range(workers):  # workers are spawned as tasks arrive: start them all now
        pool.submit(_noop)
    return pool


@contextmanager
def run_pool(size: int, kind: str, start: bool) -> Iterator[None]:
    """Hold one pool of `size` processes for the passes run inside (started now if `start`,
    else by the first local_map that needs it)."""
    global _pool, _pool_held, _pool_size
    _pool_held, _pool_size = True, size
    try:
        if start:
            _pool = _new_pool(size, kind)
        yield
    finally:
        _pool_held = False
        if _pool is not None:
            _pool.shutdown()
            _pool = None


def local_map(
    fn: Callable[..., None], jobs: list[tuple], workers: int, desc: str, quiet: bool
) -> None:
    """Run jobs on `workers` spawned processes; a dead worker leaves its part unfinished."""
    global _pool
    bar = tqdm(total=len(jobs), desc=desc, unit="file", disable=quiet or not jobs, mininterval=1)
    try:
        if workers <= 1:  # with workers, even one job runs in a worker: a hard stop ends it
            for job in jobs:
                fn(*job)
                bar.update()
            return
        if _pool_held and _pool is None:
            _pool = _new_pool(min(workers, _pool_size), None)
        pool = _pool if _pool_held else _new_pool(min(workers, len(jobs)), None)
        try:
            for fut in as_completed([pool.submit(fn, *job) for job in jobs]):
                fut.result()  # an IngestError in a part stops the run, as in one process
                bar.update()
        except BrokenProcessPool:
            if pool is _pool:  # the driver sees the unfinished parts and runs them again,
                _pool = None  # on a new pool
            return
        finally:
            if pool is not _pool:
                pool.shutdown(cancel_futures=True)
    finally:
        bar.close()


def _fingerprint(
    kind: str, parts: list[Part] | None, inputs: list[Path], opts: IngestOptions
) -> dict[str, Any]:
    o = {
        f.name: str(getattr(opts, f.name))
        for f in dataclasses.fields(opts)
        if f.name not in ("out_dir", "quiet", "input_root")
    }
    units = parts if parts is not None else [Part(tuple(inputs), None)]
    return {
        "work_format": WORK_FORMAT,  # an earlier version's parts are not read: redone
        "kind": kind,
        "options": o,
        "parts": [
            [[content_id(f) for f in p.paths], str(p.root) if p.root else None] for p in units
        ],
    }


def work_dir(out: Path) -> Path:
    return out.parent / f".ingest-{out.name}"


def run_parts(
    kind: str,
    inputs: list[Path],
    out: Path,
    opts: IngestOptions,
    workers: int,
    map_fn: MapFn,
    quiet: bool,
    hard: bool = False,
    overlap: bool = False,
) -> tuple[Iterator[Document], Callable[[], Ledger], Path]:
    """Run every unfinished part; returns (documents in input order, merged ledger, work dir).

    `hard`: parts run in worker processes, each unit under the watchdog (hardstop.py); a part
    whose worker ended is run again while passes make progress (a part finished, or a unit
    newly quarantined), at most MAX_PASSES times in a row without any.
    `overlap`: the parts run on a thread while the caller reads the documents, each part as
    soon as it is done (the shards are written while later parts still run); the parts'
    error, if any, is raised by the documents or the ledger. Without it, every part is done
    when this returns.
    """
    parts = split(kind, inputs)
    work = work_dir(out)
    fp = _fingerprint(kind, parts, inputs, opts)
    state = work / "state.json"
    if work.exists():
        try:
            same = ondisk.read_json(state) == fp
        except (OSError, ValueError):
            same = False
        if not same:  # other inputs or options: nothing there can be reused
            shutil.rmtree(work)
    if not work.exists():
        work.mkdir(parents=True)
        ondisk.atomic_write_json(state, fp, indent=1)

    def make_jobs() -> list[tuple]:
        if kind == "warc" and parts:
            return warc_jobs(parts, opts, work, workers, map_fn, quiet, hard)
        elif parts is None:
            return [(kind, [str(p) for p in inputs], opts, str(work), 0, hard)]
        else:
            return [
                (
                    kind,
                    [str(f) for f in p.paths],
                    dataclasses.replace(
                        opts, input_root=p.root, extra={**opts.extra, **dict(p.extra)}
                    ),
                    str(work),
                    k,
                    hard,
                )
                for k, p in enumerate(parts)
            ]

    def passes(jobs: list[tuple]) -> None:
        stuck = 0
        while stuck < MAX_PASSES:
            todo = [j for j in jobs if not (work / f"part-{j[4]:06d}.done").exists()]
            if not todo:
                break
            before = (len(todo), _n_quarantined(work))
            map_fn(_part_task, todo, workers, f"ingest {kind}", quiet)
            left = sum(not (work / f"part-{j[4]:06d}.done").exists() for j in jobs)
            stuck = 0 if (left, _n_quarantined(work)) != before else stuck + 1
        left = [j for j in jobs if not (work / f"part-{j[4]:06d}.done").exists()]
        if left:
            raise IngestError(
                f"ingest {kind}: {len(left)} input file(s) never finished (first: {left[0][1][0]}); "
                f"their workers ended {MAX_PASSES} times in a row without progress"
            )

    # started now unless the parts run elsewhere (Ray), no more processes than parts
    start = map_fn is local_map and workers > 1
    size = min(workers, len(parts) if parts and kind != "warc" else 1 if not parts else workers)
    thread: threading.Thread | None = None
    box: dict[str, Any] = {}
    if not overlap:
        with run_pool(size, kind, start):
            jobs = make_jobs()
            passes(jobs)
    else:  # the parts run on a thread of their own; the driver reads each as it is done
        ready = threading.Event()

        def drive() -> None:
            try:
                with run_pool(size, kind, start):
                    box["jobs"] = make_jobs()
                    ready.set()
                    passes(box["jobs"])
            except BaseException as e:  # noqa: BLE001 - raised again in the driver
                box["error"] = e
            finally:
                ready.set()

        thread = threading.Thread(target=drive, name="ingest-parts")
        thread.start()
        ready.wait()
        if "jobs" not in box:
            thread.join()
            raise box["error"]
        jobs = box["jobs"]
    n = len(jobs)

    def settled(k: int | None) -> None:
        """Wait until part k is done (None: every part); the parts' error, if any, is raised."""
        while thread is not None and thread.is_alive():
            if k is not None and (work / f"part-{k:06d}.done").exists():
                return
            thread.join(0.02)
        if "error" in box:
            raise box["error"]

    def docs() -> Iterator[Document]:
        for k in range(n):
            settled(k)
            yield from read_part_docs(work / f"part-{k:06d}" / PART_DOCS)

    def ledger() -> Ledger:
        settled(None)
        led = Ledger()
        for k in range(n):
            merge_ledger(led, Ledger.read(work / f"part-{k:06d}.ledger.json"))
        return led

    return docs(), ledger, work


def _scan_task(path: str, root: str | None, opts: IngestOptions, work: str, f: int) -> None:
    """Scan one WARC: scan-<f>.json, and its images' payloads in scan-<f>.images (first)."""
    from vloom.ingest.warc import scan_warc

    blob = Path(work) / f"scan-{f:06d}.images"
    tmp = blob.with_name(f".{blob.name}.tmp")
    scan = scan_warc(Path(path), Path(root) if root else None, opts, tmp)
    if tmp.exists():
        os.replace(tmp, blob)
    ondisk.atomic_write_json(Path(work) / f"scan-{f:06d}.json", scan, indent=None)


def warc_jobs(
    parts: list[Part],
    opts: IngestOptions,
    work: Path,
    workers: int,
    map_fn: MapFn,
    quiet: bool,
    hard: bool,
) -> list[tuple]:
    """The warc source's parts: every WARC is scanned first (one task each: its image records
    and where its ranges start, warc.scan_warc), the scans are merged into one image index
    (first record of a URL in input order, as one process indexes), then each range of records
    is a part. A page's images come from any WARC, as in one process; the ranges depend on the
    files only, so a rerun with another --workers resumes the same parts."""
    for _ in range(MAX_PASSES):
        todo = [
            (str(p.paths[0]), str(p.root) if p.root else None, opts, str(work), f)
            for f, p in enumerate(parts)
            if not (work / f"scan-{f:06d}.json").exists()
        ]
        if not todo:
            break
        if len(todo) == 1:  # one WARC: nothing to spread, and no pool to start for it
            _scan_task(*todo[0])
        else:
            map_fn(_scan_task, todo, workers, "scan warc", quiet)
    scans = [ondisk.read_json(work / f"scan-{f:06d}.json") for f in range(len(parts))]
    paths: list[str] = []
    blobs: list[str | None] = []
    images: dict[str, list[Any]] = {}
    for f, (p, scan) in enumerate(zip(parts, scans, strict=True)):
        if scan["inside"]:
            for url, *at in scan["images"]:  # [offset] or [offset, position, length]
                images.setdefault(url, [url, len(paths), *at])
            paths.append(str(p.paths[0]))
            blob = work / f"scan-{f:06d}.images"
            blobs.append(str(blob) if blob.exists() else None)
    index = work / "warc-images.json"
    if not index.exists():
        merged = {"paths": paths, "blobs": blobs, "images": list(images.values())}
        ondisk.atomic_write_json(index, merged, indent=None)
    from vloom.ingest.warc import range_starts, range_weight

    per_range = range_weight(sum(scan["weight"] for scan in scans), opts)
    jobs: list[tuple] = []
    file = 0
    for p, scan in zip(parts, scans, strict=True):
        cuts = range_starts(scan, per_range)
        for start, end in zip([0, *cuts], [*cuts, None], strict=True):
            part = {
                "file": file if scan["inside"] else None,
                "start": start,
                "end": end,
                "index": str(index),
            }
            o = dataclasses.replace(
                opts, input_root=p.root, extra={**opts.extra, "_warc_part": part}
            )
            jobs.append(("warc", [str(p.paths[0])], o, str(work), len(jobs), hard))
        file += bool(scan["inside"])
    return jobs


def _n_quarantined(work: Path) -> int:
    return sum(len(ondisk.read_json(f)) for f in work.glob("part-*.quarantine.json"))


def merge_ledger(into: Ledger, part: Ledger) -> Ledger:
    """Counts added; extras (image tallies, pdf stats) summed key by key in first-seen order."""
    into.merge(part)
    into.extra = _merge_extra(into.extra, part.extra)
    return into


def _merge_extra(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge_extra(out[k], v) if k in out else v
        return out
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return b
