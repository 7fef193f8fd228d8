"""The Ray executor (`executor: ray`): the local executor's passes as Ray tasks.

The driver is the same (`executor.drive`): `prepare` hooks run here, on the driver, and so
do the plans of global steps without partitions; a partitioned plan's partition and resolve
tasks (`partition.py`) are Ray tasks like the shard tasks, reading and writing the shared
state directory, so the driver holds file names and small summaries only. Each per-shard task (signatures, then the curate pass) is one
`ray.remote` call of the same function the local executor runs in a worker process, so
the output shards, markers and ledger are byte-identical to a local run. The per-document
guard (`guard.py`) works the same in a Ray worker: a timer in the task's thread when it is
the main one, else the watchdog, whose ended worker Ray retries without the recorded row.

`ray_address` None starts a private local Ray with `workers` CPUs (and shuts it down
afterwards); "auto" or "ray://host:port" joins a cluster, whose workers must see the
input and output directories at the same paths (a shared file system) and import
vloom and any plug-in (a refine `function`, a registered test step) in their Python.
Ray is an optional extra (`pip install vloom[ray]`) and is imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from vloom.config import CurateConfig
from vloom.curate.base import CurateError
from vloom.curate.executor import drive
from vloom.ledger import Ledger


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CurateError(
            "executor 'ray' needs Ray: pip install 'vloom[ray]' (or use executor: local)"
        ) from None
    return ray


def _ray_run_all(
    fn: Callable[..., None], jobs: list[tuple], workers: int, desc: str, quiet: bool
) -> None:
    ray = _import_ray()
    if not jobs:
        return
    task = ray.remote(num_cpus=1, max_retries=2)(fn)
    pending = [task.remote(*job) for job in jobs]
    bar = tqdm(total=len(jobs), desc=desc, unit="shard", disable=quiet)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done)  # re-raises a task's error here, on the driver
            except ray.exceptions.WorkerCrashedError:
                # a worker the per-document guard ended (it recorded the row first), past
                # Ray's retries: the driver sees the shard unfinished and runs the pass again
                pass
            bar.update(len(done))
    finally:
        bar.close()


def run_curate_ray(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: CurateConfig,
    quiet: bool = False,
    partition_records: int | None = None,
) -> Ledger:
    """Curate with Ray tasks; joins a running Ray if this process already initialised one."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet}
        if cfg.ray_address is None:
            kw["num_cpus"] = cfg.workers
        else:
            kw["address"] = cfg.ray_address
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError) as e:
            where = cfg.ray_address or "a local instance"
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CurateError(f"cannot start or reach Ray at {where}: {msg}") from None
        started = True
    try:
        return drive(in_dir, out_dir, cfg, _ray_run_all, quiet, partition_records)
    finally:
        if started:
            ray.shutdown()
