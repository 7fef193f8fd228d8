"""The Ray executor on a local 2-CPU Ray instance gives the local executor's exact bytes."""

from pathlib import Path

import pytest
from curate_world import small_world

from vloom.config import CurateConfig, StepConfig
from vloom.curate import run_curate

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install vloom[ray])")

STEPS = [
    {
        "name": "refine",
        "rules": [
            {"match": "Copyright", "program": [{"op": "remove_lines", "pattern": "Copyright"}]}
        ],
        "log_programs": True,
    },
    {"name": "exact_dedup"},
    {"name": "minhash_dedup"},
    {"name": "paragraph_dedup"},
    {"name": "gopher_quality", "min_doc_words": 5},
    {"name": "mix", "shares": {"interleaved": 0.5, "pairs": 0.3, "text": 0.2}},
]

PARTS = {"partition_records": 50}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _files(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and ".curate" not in p.parts
    }


def test_ray_output_is_byte_identical_to_local(local_ray, tmp_path):
    train = small_world(tmp_path / "w", spam=0.2, shard_size=40)
    steps = [StepConfig(**s) for s in STEPS]
    # small partitions: the partitioned plans run as several Ray tasks per step
    local = run_curate(
        train, tmp_path / "local", CurateConfig(steps=steps, workers=2), quiet=True, **PARTS
    )
    on_ray = run_curate(
        train,
        tmp_path / "ray",
        CurateConfig(steps=steps, workers=2, executor="ray"),
        quiet=True,
        **PARTS,
    )
    assert on_ray.to_dict() == local.to_dict()
    a, b = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert sorted(a) == sorted(b) and len([n for n in a if n.endswith(".parquet")]) == 6
    for name in a:
        assert a[name] == b[name], name
    assert ray.is_initialized()  # a Ray the caller started is left running


@pytest.mark.slow  # two runs on Ray with partitioned plans: > 20 s on 2 loaded cores
def test_ray_resumes_a_partial_run(local_ray, tmp_path):
    train = small_world(tmp_path / "w", spam=0.2, shard_size=40)
    steps = [StepConfig(**s) for s in STEPS]
    cfg = CurateConfig(steps=steps, workers=2, executor="ray")
    out = tmp_path / "out"
    first = run_curate(train, out, cfg, quiet=True, **PARTS)
    before = _files(out)
    # as if killed: two shards unfinished, the merged ledger not yet written
    for name in sorted(p.name for p in train.glob("*.parquet"))[2:4]:
        (out / ".curate" / f"{name}.done").unlink()
        (out / name).unlink()
    (out / "ledger.json").unlink()
    again = run_curate(train, out, cfg, quiet=True, **PARTS)
    assert again.to_dict() == first.to_dict()
    assert _files(out) == before
