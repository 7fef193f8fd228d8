"""The per-document guard: a step that stalls or raises on one document rejects that document.

The run finishes, the ledger adds up (input = kept + dropped + rejected) and names the reason:
"<step>:timeout" or "<step>:error:<ExceptionType>". Before the guard, the stalling document
hung its worker (and the run) forever and the raising one ended the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import hostile_step  # noqa: F401 - registers "stall_on"
import pytest
from shapes import clean_docs

from vloom.config import CurateConfig, StepConfig
from vloom.curate import run_curate
from vloom.doc import read_documents, write_shard

HERE = Path(__file__).parent


def _inputs(root: Path, shards: int = 3, per: int = 6) -> tuple[Path, list[str]]:
    ids = []
    for i in range(shards):
        docs = clean_docs(per, seed=20 + i, prefix=f"s{i}-")
        write_shard(root / f"shard-{i:03d}.parquet", docs)
        ids += [d.id for d in docs]
    return root, ids


def _kept_ids(out: Path) -> set[str]:
    return {d.id for p in sorted(out.glob("*.parquet")) for d in read_documents(p)}


def _run(tmp_path: Path, steps: list[dict], **kw) -> tuple[object, list[str], Path]:
    in_dir, ids = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    cfg = CurateConfig(steps=[StepConfig(**s) for s in steps], doc_timeout=1.0, **kw)
    return run_curate(in_dir, out, cfg, quiet=True), ids, out


@pytest.mark.parametrize("workers", [1, 2])
def test_stalling_and_raising_documents_are_rejected_and_the_run_goes_on(tmp_path, workers):
    stall, fail = "s1-00002", "s2-00004"
    led, ids, out = _run(
        tmp_path,
        [{"name": "stall_on", "stall": [stall], "fail": [fail]}, {"name": "gopher_quality"}],
        workers=workers,
    )
    assert dict(led.rejected) == {"stall_on:timeout": 1, "stall_on:error:ValueError": 1}
    assert led.input == len(ids) == led.kept + led.n_dropped + led.n_rejected
    kept = _kept_ids(out)
    assert stall not in kept and fail not in kept and len(kept) == led.kept
    assert (out / "ledger.json").exists()


def test_guard_keeps_global_plans_consistent(tmp_path):
    # the failing step runs before dedup: its rows must leave the signatures and the plan too
    stall, fail = "s0-00001", "s2-00000"
    steps = [
        {"name": "stall_on", "stall": [stall], "fail": [fail]},
        {"name": "exact_dedup"},
    ]
    led, ids, out = _run(tmp_path, steps, workers=2)
    assert dict(led.rejected) == {"stall_on:timeout": 1, "stall_on:error:ValueError": 1}
    assert led.input == led.kept + led.n_dropped + led.n_rejected == len(ids)
    assert _kept_ids(out) == set(ids) - {stall, fail}  # nothing else went
    # a rerun resumes from the finished markers and gives the same books
    again = run_curate(
        tmp_path / "in",
        out,
        CurateConfig(steps=[StepConfig(**s) for s in steps], doc_timeout=1.0, workers=2),
        quiet=True,
    )
    assert again.to_dict() == led.to_dict()


def test_a_worker_stuck_outside_python_is_replaced(tmp_path):
    # SIGALRM blocked: only the watchdog thread can end it (after 2 x budget + grace)
    stall = "s1-00003"
    led, ids, out = _run(
        tmp_path, [{"name": "stall_on", "stall": [stall], "block_signals": True}], workers=2
    )
    assert dict(led.rejected) == {"stall_on:timeout": 1}
    assert led.input == led.kept + led.n_rejected == len(ids)
    assert stall not in _kept_ids(out)


@pytest.mark.slow  # starts a local Ray (about 30 s)
def test_ray_executor_rejects_the_same_documents(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install vloom[ray])")
    path = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        stall, fail = "s1-00002", "s2-00004"
        led, ids, out = _run(
            tmp_path,
            [{"name": "stall_on", "stall": [stall], "fail": [fail]}, {"name": "exact_dedup"}],
            workers=2,
            executor="ray",
        )
    finally:
        ray.shutdown()
    assert dict(led.rejected) == {"stall_on:timeout": 1, "stall_on:error:ValueError": 1}
    assert led.input == led.kept + led.n_dropped + led.n_rejected == len(ids)
    assert stall not in _kept_ids(out) and fail not in _kept_ids(out)
