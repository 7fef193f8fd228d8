"""Partitioned plans (curate/partition.py) decide exactly as the single-process plans.

Each global step runs twice on the same sharded corpus: the old plan (`step.plan` over every
shard's signatures, on one process, states applied shard by shard) and the executor's
partitioned plan (many partitions, spilled to disk). Kept documents, their order, their
edited texts and images, and mix's copies must be the same.
"""

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, partition, run_curate
from vloom.curate.dupcorpus import planted_docs
from vloom.curate.partition import BUCKETS, plan_partitioned
from vloom.curate.registry import build_step
from vloom.doc import Document, read_documents, write_shard
from vloom.ledger import Ledger
from vloom.synth.world import png_bytes, render, sample_scene

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
    parts = {"-".join(p.name.split("-")[:2]) for p in (out / ".curate").glob("part0-P*")}
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


def test_exact_dedup_partitioned_same_as_old_plan(tmp_path, monkeypatch):
    # marks regrouped for 5 shards a file (256 by default): 12 shards read 3 files
    monkeypatch.setattr(partition, "SHARDS_PER_GROUP", 5)
    _compare(tmp_path, list(planted_docs(600, seed=1, exact_share=0.15)), "exact_dedup", {})
    assert len(list((tmp_path / "out" / ".curate").glob("part0-*-g*.bin"))) == 3


def test_minhash_dedup_partitioned_same_as_old_plan(tmp_path):
    docs = list(planted_docs(600, seed=2, near_share=0.15))
    docs.append(Document.from_items("short", ["too short"]))  # no shingles: never a duplicate
    got = _compare(tmp_path, docs, "minhash_dedup", {})
    ids = {d.id for d in got}
    assert "short" in ids
    # the survivor of every cluster is its first member: originals come before their copies
    assert all(d.metadata.get("duplicate_of") in (None, *ids) for d in got)


def test_paragraph_dedup_partitioned_same_as_old_plan(tmp_path):
    got = _compare(tmp_path, list(planted_docs(600, seed=3)), "paragraph_dedup", {})
    orig = {d.id: d for d in planted_docs(600, seed=3)}
    assert any(len(d.text) < len(orig[d.id].text) for d in got), "no paragraph was removed"


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def _image_docs() -> list[Document]:
    rng = random.Random(0)
    imgs = [render(sample_scene(rng), 64) for _ in range(60)]
    docs = []
    for i in range(120):
        im = imgs[i % 60] if i < 60 else imgs[rng.randrange(60)]
        data = png_bytes(im) if i < 60 or i % 3 == 0 else _jpeg(im)
        items = [data, f"scene {i}"] + ([png_bytes(imgs[(i * 7) % 60])] if i % 5 == 0 else [])
        docs.append(Document.from_items(f"im{i:03d}", items))
    docs.append(Document.from_items("bad", [b"not an image", "undecodable"]))
    return docs


@pytest.mark.parametrize("params", [{}, {"max_distance": 0}, {"policy": "drop_pair"}])
def test_image_dedup_partitioned_same_as_old_plan(tmp_path, params):
    _compare(tmp_path, _image_docs(), "image_dedup", params, records=30)


MIX = [
    {"shares": {"a": 0.5, "b": 0.5}, "by": "metadata.src"},
    {"shares": {"a": 0.3, "b": 0.7}, "by": "metadata.src", "unit": "documents", "total": 900},
    {"score_key": "score", "repeat": [[0.1, 4], [0.3, 2], [0.5, 0.5]]},
    {
        "shares": {"a": 0.5, "b": 0.5},
        "by": "metadata.src",
        "score_key": "score",
        "repeat": [[0.2, 3]],
        "max_repeat": 2,
    },
]


@pytest.mark.parametrize("params", MIX)
def test_mix_partitioned_same_as_old_plan(tmp_path, params):
    docs = list(planted_docs(500, seed=4))
    got = _compare(tmp_path, docs, "mix", params)
    assert any(d.metadata.get("repeat_of") for d in got) or "repeat" not in params


def test_partition_count_does_not_change_the_output(tmp_path):
    docs = list(planted_docs(300, seed=5, near_share=0.2))
    shards = _shards(docs, 5)
    outs = []
    for records in (7, 100_000):
        got, _, _ = new_plan(tmp_path / str(records), shards, "minhash_dedup", {}, workers=2)
        outs.append(_view(got))
    assert outs[0] == outs[1]


RESUME = [
    {"name": "exact_dedup"},
    {"name": "minhash_dedup"},
    {"name": "paragraph_dedup"},
    {"name": "mix", "shares": {"a": 0.5, "b": 0.5}, "by": "metadata.src"},
]


def _planted_input(in_dir: Path, n: int = 1200, n_shards: int = 24) -> None:
    for i, docs in enumerate(_shards(list(planted_docs(n, seed=6)), n_shards)):
        write_shard(in_dir / f"s{i:03d}.parquet", docs)


def _same_output(a: Path, b: Path) -> None:
    names = sorted(p.name for p in b.glob("*.parquet"))
    assert sorted(p.name for p in a.glob("*.parquet")) == names
    for name in names + ["ledger.json"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.slow  # three runs with a process start and ~400 fsynced files each: ~20-50 s
def test_sigkilled_partition_pass_resumes_at_partition_granularity(tmp_path):
    in_dir = tmp_path / "in"
    _planted_input(in_dir)
    cfg = CurateConfig(steps=[StepConfig(**s) for s in RESUME])
    killed = tmp_path / "killed"
    script = (
        "import sys\n"
        "from vloom.config import CurateConfig\n"
        "from vloom.curate import run_curate\n"
        f"run_curate(sys.argv[1], sys.argv[2], CurateConfig(steps={RESUME!r}), quiet=True,"
        " partition_records=160)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, "-c", script, str(in_dir), str(killed)], env=env)
    state = killed / ".curate"
    try:
        deadline = time.monotonic() + 120
        while len(list(state.glob("part1-P*-r0-*.bin"))) < 10:  # minhash's ~100 partitions
            assert proc.poll() is None, "the run ended before the partition pass"
            assert time.monotonic() < deadline, "no partition finished within 120 s"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in state.glob("part1-P*-r0-*.bin")}
    n_parts = int(next(iter(done)).name.split("-")[1][1:])
    assert 10 <= len(done) < n_parts, "the kill must land mid-pass for this test to mean anything"
    assert not (killed / "ledger.json").exists()

    resumed = run_curate(in_dir, killed, cfg, quiet=True, partition_records=160)
    # partitions finished before the kill were not planned again
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())
    fresh = tmp_path / "fresh"
    run_curate(in_dir, fresh, cfg, quiet=True, partition_records=160)
    _same_output(killed, fresh)
    assert resumed.input == resumed.kept + resumed.n_dropped + resumed.n_rejected
    assert resumed.dropped["minhash_dedup"]["near_duplicate"] > 0


def test_corrupt_spill_is_recomputed(tmp_path, capsys):
    in_dir = tmp_path / "in"
    _planted_input(in_dir, n=400, n_shards=8)
    cfg = CurateConfig(steps=[StepConfig(**s) for s in RESUME])
    fresh, out = tmp_path / "fresh", tmp_path / "out"
    run_curate(in_dir, fresh, cfg, quiet=True, partition_records=50)
    run_curate(in_dir, out, cfg, quiet=True, partition_records=50)
    # as if the filtering pass had not run yet, with one spill's records damaged on disk
    state = out / ".curate"
    for p in list(state.glob("*.done")) + list(state.glob("part*")) + list(out.glob("*.parquet")):
        p.unlink()
    (out / "ledger.json").unlink()
    spill = state / "spill1-s003.parquet.bin"
    raw = bytearray(spill.read_bytes())
    raw[-100] ^= 0xFF
    spill.write_bytes(bytes(raw))
    led = run_curate(in_dir, out, cfg, quiet=True, partition_records=50)
    assert "spill1-s003.parquet.bin: bucket" in capsys.readouterr().out
    _same_output(out, fresh)
    assert led.to_dict() == Ledger.read(fresh).to_dict()


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
    parts = {f.name.split("-r0-")[1] for f in state.glob("part0-*-r0-*")}
    assert parts == {f"{p}.bin" for p in range(len(parts))} and len(parts) > 2
    assert refs[0].mark_files()[0].exists()


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
