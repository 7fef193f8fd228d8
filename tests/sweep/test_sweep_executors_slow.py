"""The same tiny study through a 2-process local pool and through Ray tasks (slow: process
start-up and a local Ray cluster take tens of seconds on two cores)."""

from __future__ import annotations

import json

import pytest
from sweepkit import write_study

from vloom.sweep import load_study, run_sweep

pytestmark = pytest.mark.slow


def _evals(root):
    return {
        p.parent.name: json.loads(p.read_text())["eval"]["vqa"]["accuracy"]
        for p in sorted((root / "runs").glob("*/results.json"))
    }


def test_process_pool_matches_sequential(tmp_path):
    seq = write_study(tmp_path, name="seq.yaml", out_dir=str(tmp_path / "seq"), seeds=[0])
    pool = write_study(
        tmp_path, name="pool.yaml", out_dir=str(tmp_path / "pool"), seeds=[0], workers=2
    )
    a = run_sweep(load_study(seq), quiet=True)
    b = run_sweep(load_study(pool), quiet=True)
    assert sorted(a["done"]) == sorted(b["done"]) and len(b["done"]) == 2
    assert _evals(tmp_path / "seq") == _evals(tmp_path / "pool")  # deterministic given seeds


def test_ray_tasks_run_the_study(tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'vloom[ray]'")
    import ray

    path = write_study(tmp_path, executor="ray", seeds=[0], threads=1)
    try:
        out = run_sweep(load_study(path), quiet=True)
    finally:
        ray.shutdown()
    assert len(out["done"]) == 2 and not out["failed"]
    assert (tmp_path / "sweep" / "study.md").exists()
