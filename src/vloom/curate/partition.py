"""Partitioned plans: a global step decides without any process holding the corpus.

A GlobalStep with a `record_dtype` (see `base.GlobalStep`) plans in partitions:

1. Signature pass, one task per shard (executor): besides the shard's signatures
   (`sig<k>-<shard>.bin`) it writes the step's records (`step.records`, each with a uniform
   64-bit `key` and its global position `g`) sorted by key into `spill<k>-<shard>.bin`:
   BUCKETS ranges of the key, each with its record offset and an xxh3 checksum.
2. Partition pass: P partitions, each a contiguous range of buckets (P = records /
   `partition_records`, at most BUCKETS), one task each. A task reads its buckets from every
   shard's spill, so records with equal keys meet in one task, and `step.plan_partition`
   returns marks (global position, value) or, for `resolves_pairs` steps, candidate pairs.
   A step with several `plan_rounds` (mix) reads its partitions once per round; the driver
   folds each round's small summaries into the next round's context (`step.reduce`).
3. Resolve (pair steps only), one task: union-find over the pairs, whose number is bounded
   by the duplicates, not the corpus; the first member of a cluster (reading order) stays.
4. Regroup (several partitions): one task per 256 shards gathers their marks from every
   partition into one file. The curate pass: a shard task reads its slice of that file (or
   of the resolved one) and turns it into the step's per-shard state (`step.shard_state`),
   the state the single-process plan gives it.

`g = shard index << 32 | record index in the shard`: ordering by g is global reading order,
so "first occurrence" is decided inside a partition exactly as by a walk over the corpus.
Every file is written atomically; a rerun skips partitions whose output exists (resumable at
partition granularity). A spill whose bucket checksum fails is deleted with its shard's
signatures (the driver recomputes them and plans again); a partition whose task died is
retried, then named in a one-line error.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from vloom import ondisk
from vloom.curate import summary_codec
from vloom.curate.base import CurateError, GlobalStep

BUCKETS = 4096  # key ranges per spill file; also the most partitions a step can have
_SHIFT = np.uint64(64 - 12)  # bucket = key >> (64 - log2(BUCKETS))
# default records per partition task: 18-34 MB of records, ~3x that at the task's peak
# (sorting); a corpus of up to 4,096 x this many records gets partitions this small
PARTITION_RECORDS = 1_000_000
TASK_TRIES = 3  # a partition pass that leaves outputs missing is run again this many times
SHARDS_PER_GROUP = 256  # shards whose marks one regroup task gathers into one file
MARK = np.dtype([("g", "<i8"), ("v", "<i8")])
_MAGIC = b"VLSPILL1"


class SpillError(Exception):
    """A spill file that does not hold what its header says (cut, overwritten, bit rot)."""


def bucket_of(key: np.ndarray) -> np.ndarray:
    return (key >> _SHIFT).astype(np.int64)


def global_ids(shard: int, j: np.ndarray) -> np.ndarray:
    """Global position of records `j` of shard `shard`: sorts as reading order."""
    return (np.int64(shard) << np.int64(32)) | j.astype(np.int64)


# ---- spill files: one per (step, shard) ----


def write_spill(path: Path, recs: np.ndarray) -> None:
    """Records sorted by key (stable: reading order among equal keys), bucketed, checksummed."""
    recs = recs[np.argsort(recs["key"], kind="stable")]
    bounds = np.searchsorted(bucket_of(recs["key"]), np.arange(BUCKETS + 1), side="left")
    raw = recs.tobytes()
    size = recs.dtype.itemsize
    sums = [
        xxhash.xxh3_64_intdigest(raw[lo * size : hi * size])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    header = _MAGIC + struct.pack("<q", size)
    header += bounds.astype("<i8").tobytes() + np.asarray(sums, dtype="<u8").tobytes()
    ondisk.atomic_write_bytes(path, header + raw)


def _header_size() -> int:
    return len(_MAGIC) + 8 + 8 * (BUCKETS + 1) + 8 * BUCKETS


def spill_count(path: Path, dtype: np.dtype) -> int:
    """Records in a spill, from its size (no read)."""
    return max(0, (path.stat().st_size - _header_size()) // dtype.itemsize)


def read_spill(path: Path, dtype: np.dtype, b0: int, b1: int) -> np.ndarray:
    """Records of buckets [b0, b1) of one spill; SpillError when the file is damaged."""
    try:
        with open(path, "rb") as f:
            head = f.read(_header_size())
            if len(head) != _header_size() or not head.startswith(_MAGIC):
                raise SpillError(f"{path.name}: no spill header")
            (size,) = struct.unpack_from("<q", head, len(_MAGIC))
            at = len(_MAGIC) + 8
            bounds = np.frombuffer(head, "<i8", BUCKETS + 1, at)
            sums = np.frombuffer(head, "<u8", BUCKETS, at + 8 * (BUCKETS + 1))
            n = int(bounds[-1])
            if size != dtype.itemsize or path.stat().st_size != len(head) + n * size:
                raise SpillError(f"{path.name}: size does not match its header")
            lo, hi = int(bounds[b0]), int(bounds[b1])
            if not 0 <= lo <= hi <= n:
                raise SpillError(f"{path.name}: bucket offsets out of order")
            f.seek(len(head) + lo * size)
            raw = f.read((hi - lo) * size)
    except OSError as e:
        raise SpillError(f"{path.name}: {e}") from None
    for b in range(b0, b1):  # each bucket's own checksum: a task reads only its buckets
        seg = raw[(int(bounds[b]) - lo) * size : (int(bounds[b + 1]) - lo) * size]
        if xxhash.xxh3_64_intdigest(seg) != int(sums[b]):
            raise SpillError(f"{path.name}: bucket {b} fails its checksum")
    return np.frombuffer(raw, dtype=dtype)


# ---- marks files: one per partition, grouped by shard ----


def write_marks(path: Path, marks: np.ndarray, n_shards: int) -> None:
    """Marks (g, v) grouped by shard, with the shard offsets first."""
    marks = np.sort(marks, order="g")
    shard = marks["g"] >> np.int64(32)
    bounds = np.searchsorted(shard, np.arange(n_shards + 1), side="left")
    head = np.concatenate([[n_shards], bounds]).astype("<i8")
    ondisk.atomic_write_bytes(path, head.tobytes() + marks.astype(MARK).tobytes())


def read_marks(path: Path, shard: int, end: int | None = None) -> np.ndarray:
    """The marks of shards [shard, end) (default: `shard` alone) in one marks file."""
    end = shard + 1 if end is None else end
    with open(path, "rb") as f:
        (n_shards,) = struct.unpack("<q", f.read(8))
        f.seek(8 + 8 * shard)
        (lo,) = struct.unpack("<q", f.read(8))
        f.seek(8 + 8 * end)
        (hi,) = struct.unpack("<q", f.read(8))
        f.seek(8 * (n_shards + 2) + lo * MARK.itemsize)
        raw = f.read((hi - lo) * MARK.itemsize)
    if len(raw) != (hi - lo) * MARK.itemsize:
        raise CurateError(f"{path}: marks file cut short; delete it to recompute")
    return np.frombuffer(raw, dtype=MARK)


def marks_of(g: np.ndarray, v: np.ndarray | int = 1) -> np.ndarray:
    out = np.empty(g.size, dtype=MARK)
    out["g"], out["v"] = g, v
    return out


# ---- union-find over pairs ----


def components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1 = smallest node of its connected component."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
        diff = lo != hi
        if not diff.any():
            return parent
        np.minimum.at(parent, hi[diff], lo[diff])  # hook a root under a smaller root
        while True:  # pointer jumping: every node points at its root again
            pp = parent[parent]
            if np.array_equal(pp, parent):
                break
            parent = pp


def later_members(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nodes (any int64 ids) of clusters linked by pairs (u, v) that are not their cluster's
    smallest id: memory is O(pairs), whatever the id range."""
    if u.size == 0:
        return np.empty(0, np.int64)
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    root = components(nodes.size, inv[: u.size], inv[u.size :])
    return nodes[root != np.arange(nodes.size)]  # nodes are sorted: the root is the first


# ---- the tasks (top level: they run in worker processes or as Ray tasks) ----


@dataclass(frozen=True)
class PlanRef:
    """What a shard task needs to build its state of a partitioned step: names, no data, and
    the same few fields whatever the number of partitions (the driver holds one per shard)."""

    sig_path: Path
    shard: int
    marks: str  # the marks files' name in sig_path's directory, "{p}" = partition
    n_marks: int

    def mark_files(self) -> list[Path]:
        return [self.sig_path.parent / self.marks.format(p=p) for p in range(self.n_marks)]


def _buckets(p: int, n_parts: int) -> tuple[int, int]:
    return p * BUCKETS // n_parts, (p + 1) * BUCKETS // n_parts


def _partition_task(
    step: GlobalStep,
    spill_list: Path,
    p: int,
    n_parts: int,
    rnd: int,
    ctx: Any,
    out: Path,
    last: bool,
) -> None:
    b0, b1 = _buckets(p, n_parts)
    spills = _spills(spill_list)
    parts = []
    for s in spills:
        try:
            parts.append(read_spill(s, step.record_dtype, b0, b1))
        except SpillError as e:
            # the shard's signatures go with it: the driver recomputes both, then plans again
            print(f"vloom curate: {e}; recomputing that shard's signatures", flush=True)
            s.unlink(missing_ok=True)
            (s.parent / s.name.replace("spill", "sig", 1)).unlink(missing_ok=True)
            return
    # in shard order, each shard's slice by key: a step sorts what it needs itself (one copy
    # of the records less at the task's peak)
    recs = np.concatenate(parts) if parts else np.empty(0, step.record_dtype)
    result = step.plan_partition(recs, p, rnd, ctx)
    del recs, parts
    if last and not step.resolves_pairs:
        write_marks(out, result, len(spills))
    elif last:
        u, v = result
        ondisk.atomic_write_bytes(out, np.stack([u, v]).astype("<i8").tobytes())
    else:
        ondisk.atomic_write_bytes(out, summary_codec.dumps(result))


def _summary(path: Path) -> Any:
    """A partition's round summary; one that cannot be read is removed (a rerun recomputes
    it) and named in a one-line error."""
    try:
        return summary_codec.loads(path.read_bytes())
    except Exception as e:  # noqa: BLE001  (any damage: zip, npy header, JSON)
        path.unlink(missing_ok=True)
        raise CurateError(
            f"{path}: unreadable partition summary ({type(e).__name__}); removed, rerun to "
            "recompute it"
        ) from None


def _spills(spill_list: Path) -> list[Path]:
    return [spill_list.parent / name for name in spill_list.read_text().splitlines()]


def _resolve_task(pair_files: list[Path], n_shards: int, out: Path) -> None:
    us, vs = [], []
    for f in pair_files:
        a = np.fromfile(f, dtype="<i8").reshape(2, -1)
        us.append(a[0])
        vs.append(a[1])
    u, v = np.concatenate(us), np.concatenate(vs)
    # the same pair found in several bands is one edge
    pairs = np.unique(np.stack([u, v], 1), axis=0) if u.size else np.empty((0, 2), np.int64)
    write_marks(out, marks_of(later_members(pairs[:, 0], pairs[:, 1])), n_shards)


def _regroup_task(parts: list[Path], lo: int, hi: int, n_shards: int, out: Path) -> None:
    """The marks of shards [lo, hi) from every partition, in one file: a shard task then
    opens one file, not one per partition."""
    marks = [read_marks(f, lo, hi) for f in parts]
    write_marks(out, np.concatenate(marks) if marks else np.empty(0, MARK), n_shards)


def shard_state(step: GlobalStep, ref: PlanRef) -> Any:
    """The state a shard task loads for a partitioned step: its signatures and its marks."""
    raw = np.fromfile(ref.sig_path, dtype=np.uint8).reshape(-1, step.sig_size)
    marks = [read_marks(f, ref.shard) for f in ref.mark_files()]
    m = np.concatenate(marks) if marks else np.empty(0, MARK)
    m = m[np.argsort(m["g"], kind="stable")]
    j = m["g"] & np.int64(0xFFFFFFFF)
    return step.shard_state(raw, j, m["v"])


# ---- the driver side ----

MapFn = Callable[[Callable[..., None], list[tuple], int, str, bool], None]


def plan_partitioned(
    step: GlobalStep,
    k: int,
    sig_paths: list[Path],
    spills: list[Path],
    state: Path,
    run_all: MapFn,
    workers: int,
    quiet: bool,
    partition_records: int | None = None,
) -> list[PlanRef] | None:
    """One PlanRef per shard, or None when a spill was damaged (signatures must be redone).

    The driver holds only file names and each round's per-partition summaries."""
    n_shards = len(spills)
    total = sum(spill_count(s, step.record_dtype) for s in spills)
    per = partition_records or PARTITION_RECORDS
    n_parts = int(min(BUCKETS, max(1, -(-total // per))))
    rounds = step.plan_rounds()
    ctx: Any = None
    tag = f"part{k}-P{n_parts}"
    # every partition task reads every shard's spill: their names go in one file, so a task's
    # arguments stay a few names whatever the number of shards
    spill_list = state / f"{tag}-spills.txt"
    if not spill_list.exists():
        ondisk.atomic_write_text(spill_list, "".join(f"{s.name}\n" for s in spills))
    outs: list[Path] = []
    for rnd in range(rounds):
        last = rnd == rounds - 1
        suffix = ".bin" if last else ".npz"
        outs = [state / f"{tag}-r{rnd}-{p}{suffix}" for p in range(n_parts)]
        for _ in range(TASK_TRIES):
            jobs = [
                (step, spill_list, p, n_parts, rnd, ctx, outs[p], last)
                for p in range(n_parts)
                if not outs[p].exists()
            ]
            if not jobs:
                break
            run_all(_partition_task, jobs, workers, f"plan {step.name} r{rnd}", quiet)
            if not all(s.exists() for s in spills):
                return None  # a damaged spill was removed: the driver recomputes it
        missing = [p for p in range(n_parts) if not outs[p].exists()]
        if missing:
            raise CurateError(
                f"{step.name}: partition {missing[0]} of {n_parts} (round {rnd}) failed "
                f"{TASK_TRIES} times (worker killed?); rerun to resume"
            )
        if not last:
            ctx = step.reduce(rnd, (_summary(o) for o in outs), ctx)
    if step.resolves_pairs:
        resolved = state / f"{tag}-resolved.bin"
        for _ in range(TASK_TRIES):
            if resolved.exists():
                break
            run_all(_resolve_task, [(outs, n_shards, resolved)], workers, "resolve", quiet)
        if not resolved.exists():
            raise CurateError(f"{step.name}: resolving clusters failed {TASK_TRIES} times")
        return [PlanRef(sig_paths[i], i, resolved.name, 1) for i in range(n_shards)]
    if n_parts == 1:
        return [PlanRef(sig_paths[i], i, outs[0].name, 1) for i in range(n_shards)]
    groups = [state / f"{tag}-g{g}.bin" for g in range(-(-n_shards // SHARDS_PER_GROUP))]
    for _ in range(TASK_TRIES):
        jobs = [
            (outs, g * SHARDS_PER_GROUP, min(n_shards, (g + 1) * SHARDS_PER_GROUP), n_shards, f)
            for g, f in enumerate(groups)
            if not f.exists()
        ]
        if not jobs:
            break
        run_all(_regroup_task, jobs, workers, f"regroup {step.name}", quiet)
    if not all(f.exists() for f in groups):
        raise CurateError(f"{step.name}: regrouping marks failed {TASK_TRIES} times")
    return [
        PlanRef(sig_paths[i], i, groups[i // SHARDS_PER_GROUP].name, 1) for i in range(n_shards)
    ]
