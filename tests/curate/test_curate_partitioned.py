"""Partitioned plans (curate/partition.py) decide exactly as the single-process plans.

Each global step runs twice on the same sharded corpus: the old plan (`step.plan` over every
shard's signatures, on one process, states applied shard by shard) and the executor's
partitioned plan (many partitions, spilled to disk). Kept documents, their order, their
edited texts and images, and mix's copies must be the same.
"""

from pathlib import Path

import numpy as np
import pytest

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, run_curate
from vloom.curate.dupcorpus import planted_docs
from vloom.curate.partition import BUCKETS, plan_partitioned
from vloom.curate.registry import build_step
from vloom.doc import Document, read_documents, write_shard

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def _shards(docs: list[Document], n_shards: int) -> list[list[Document]]:
    size = -(-len(docs) // n_shards)
    return [docs[i : i + size] for i in range(0, len(docs), size)]


def old_plan(shards: list[list[Document]], name: str, params: dict) -> list[Document]:
    """The single-machine plan: every shard's signatures on one process, then each shard."""
    step = build_step(StepConfig(name=name, **params))
    states = step.plan([list(step.signatures(docs)) for docs in shards])
    out = []
    for docs, state in zip(shards, states, strict=True):
        s = build_step(StepConfig(name=name, **params))
        s.apply_plan(state)
        out += list(s.run(docs))
    return out


def new_plan(tmp: Path, shards: list[list[Document]], name: str, params: dict, **kw):
    in_dir, out = tmp / "in", tmp / "out"
    for i, docs in enumerate(shards):
        write_shard(in_dir / f"s{i:03d}.parquet", docs)
    cfg = CurateConfig(steps=[StepConfig(name=name, **params)], workers=kw.pop("workers", 1))
    led = run_curate(in_dir, out, cfg, quiet=True, **kw)
    parts = {p.name.split("-r")[0] for p in (out / ".curate").glob("part0-P*")}
    return list(read_documents(out)), led, parts


def _view(docs: list[Document]) -> list[tuple]:
    return [(d.id, d.texts, d.images, d.metadata.get("repeat_of")) for d in docs]


def _compare(tmp_path, docs, name, params, n_shards=12, records=40):
    shards = _shards(docs, n_shards)
    want = old_plan(shards, name, params)
    got, led, parts = new_plan(tmp_path, shards, name, params, partition_records=records)
    (tag,) = parts
    assert int(tag.split("-P")[1]) > 4, f"{tag}: the test must plan over several partitions"
    assert _view(want) != _view(docs), "the step must change something for this to mean anything"
    assert _view(got) == _view(want)
    assert led.input == led.kept + led.n_dropped + led.n_rejected
    return got


def test_exact_dedup_partitioned_same_as_old_plan(tmp_path):
    _compare(tmp_path, list(planted_docs(600, seed=1, exact_share=0.15)), "exact_dedup", {})


def _planted_input(in_dir: Path, n: int = 1200, n_shards: int = 24) -> None:
    for i, docs in enumerate(_shards(list(planted_docs(n, seed=6)), n_shards)):
        write_shard(in_dir / f"s{i:03d}.parquet", docs)


def _dropping_map(drop: set[int], times: list[int]):
    """A MapFn that runs jobs in this process, except partitions in `drop` (a dead worker)
    for the first `times[0]` passes."""

    def run_all(fn, jobs, workers, desc, quiet):
        for job in jobs:
            if desc.startswith("plan") and job[2] in drop and times[0] > 0:
                continue
            fn(*job)
        times[0] -= 1

    return run_all


def _spilled_step(tmp_path: Path):
    from vloom.curate.executor import _signature_task, spill_path

    _planted_input(tmp_path / "in", n=200, n_shards=4)
    shards = sorted((tmp_path / "in").glob("*.parquet"))
    specs = [(build_step(StepConfig(name="exact_dedup")).__class__, {})]
    state = tmp_path / "state"
    state.mkdir()
    sigs = [state / f"sig0-{p.name}.bin" for p in shards]
    for i, p in enumerate(shards):
        _signature_task(p, specs, 0, {}, sigs[i], i, len(shards))
    return build_step(StepConfig(name="exact_dedup")), sigs, [spill_path(s) for s in sigs], state


def test_killed_partition_task_is_retried(tmp_path):
    step, sigs, spills, state = _spilled_step(tmp_path)
    refs = plan_partitioned(step, 0, sigs, spills, state, _dropping_map({1, 2}, [1]), 1, True, 20)
    assert refs is not None and len(refs) == 4
    assert len(list(state.glob("part0-*"))) == len(refs[0].marks)


def test_partition_failing_every_try_is_named(tmp_path):
    step, sigs, spills, state = _spilled_step(tmp_path)
    with pytest.raises(CurateError, match=r"exact_dedup: partition 2 of \d+ \(round 0\) failed"):
        plan_partitioned(step, 0, sigs, spills, state, _dropping_map({2}, [99]), 1, True, 20)


def test_spill_round_trip_keeps_reading_order_among_equal_keys(tmp_path):
    from vloom.curate.partition import read_spill, write_spill

    dt = np.dtype([("key", "<u8"), ("g", "<i8")])
    recs = np.zeros(1000, dt)
    recs["key"] = np.random.default_rng(0).integers(0, 50, 1000).astype(np.uint64) << np.uint64(54)
    recs["g"] = np.arange(1000)
    write_spill(tmp_path / "s.bin", recs)
    back = np.concatenate([read_spill(tmp_path / "s.bin", dt, b, b + 1) for b in range(BUCKETS)])
    assert np.array_equal(back, recs[np.argsort(recs["key"], kind="stable")])
