"""A generating step on the Ray executor: the local executor's exact bytes, generations
counted the same (issue 18: "on Ray, generation steps run as the curation steps do")."""

from __future__ import annotations

from pathlib import Path

import pytest

from vloom.config import CurateConfig, StepConfig
from vloom.curate import run_curate
from vloom.curate.generated.kale import alt_text_pairs
from vloom.doc import write_documents

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install vloom[ray])")


def _files(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and ".curate" not in p.parts
    }


@pytest.mark.slow
def test_kale_on_ray_is_byte_identical_to_local(world_gen, tmp_path):
    inp = tmp_path / "input"
    write_documents(inp, alt_text_pairs(world_gen.world, 8), shard_size=2)
    step = {"name": "kale", "generator": world_gen.spec, "max_new_tokens": 8, "batch_size": 4}
    runs = {}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for executor in ("local", "ray"):
            cfg = CurateConfig(
                steps=[StepConfig(**step, cache_dir=str(tmp_path / f"cache-{executor}"))],
                workers=2,
                executor=executor,
                doc_timeout=1800,
            )
            runs[executor] = run_curate(inp, tmp_path / executor, cfg, quiet=True).to_dict()
    finally:
        ray.shutdown()
    assert runs["ray"] == runs["local"]
    assert runs["local"]["input"] == 8
    assert sum(runs["local"]["step_stats"]["kale"]["generation"]["caption"].values()) == 8
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
