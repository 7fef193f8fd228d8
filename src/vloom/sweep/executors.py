"""Where a study's runs execute: in this process, a local process pool, or Ray tasks.

Every executor calls the same `run_task` with plain JSON-able arguments, so a run behaves the
same wherever it lands, and a failing run returns a failed status instead of stopping the
others. (SLURM is not an executor here: `slurm.py` writes an array script that calls
`vloom sweep --run NAME` for each run.)
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

Task = dict[str, Any]  # run_task's keyword arguments


def run_task(task: Task) -> tuple[str, dict[str, Any]]:
    """(run name, status): rebuilds the config from JSON, then `run_one`."""
    from vloom.config import config_from_dict
    from vloom.sweep.runone import run_one
    from vloom.sweep.spec import FinetuneSpec

    ft = task.get("finetune")
    status = run_one(
        task["run_dir"],
        config_from_dict(task["config"], source=f"run {task['name']}"),
        FinetuneSpec.model_validate(ft) if ft else None,
        task["sweep_dir"],
        data_seed=task.get("data_seed"),
        settings=task.get("settings"),
        quiet=task.get("quiet", True),
    )
    return task["name"], status


def _failed(name: str, e: BaseException) -> tuple[str, dict[str, Any]]:
    last = (str(e).strip().splitlines() or [""])[-1]
    return name, {"status": "failed", "error": f"{type(e).__name__}: {last}".rstrip(": ")}


def run_local(tasks: list[Task], workers: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Sequential in this process for one worker; else a spawn-context process pool.

    A worker killed outright (out of memory) fails only its own run: the pool is rebuilt
    lazily by recording the failure and going on with the remaining futures.
    """
    if workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield run_task(t)
        return
    ctx = mp.get_context("spawn")  # no forked torch/thread state in the children
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(run_task, t): t["name"] for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as e:  # BrokenProcessPool: the worker process died
                yield _failed(futures[fut], e)


def run_ray(tasks: list[Task], threads: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """One Ray task per run, each reserving `threads` CPUs; joins a cluster if one is up."""
    try:
        import ray
    except ImportError:
        raise ValueError("executor: ray needs the ray package (pip install 'vloom[ray]')") from None
    if not ray.is_initialized():
        ray.init(address="auto" if _cluster_address() else None, log_to_driver=False)
    remote: Callable[..., Any] = ray.remote(num_cpus=max(threads, 1))(run_task)
    refs = {remote.remote(t): t["name"] for t in tasks}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            try:
                yield ray.get(ref)
            except Exception as e:  # the task's worker died
                yield _failed(refs[ref], e)


def _cluster_address() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))
