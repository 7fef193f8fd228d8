"""`--executor ray` for ingest: the parts of executor.py as Ray tasks, through curation's engine.

Each part is one `ray.remote` call of the same `_part_task` a local worker runs (curate's
`_ray_run_all`: one CPU per task, retried by Ray when a worker dies), so the output bytes are
those of a local run. `ray_address` None starts a private local Ray with `workers` CPUs and
shuts it down afterwards; "auto" or "ray://host:port" joins a cluster whose workers see the
inputs and the output's parent directory at the same paths. Ray is an optional extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vloom.ingest.base import IngestError
from vloom.ingest.executor import MapFn


@contextmanager
def ray_map(workers: int, ray_address: str | None, quiet: bool) -> Iterator[MapFn]:
    try:
        import ray

        from vloom.curate.ray_executor import _ray_run_all
    except ImportError:
        raise IngestError(
            "executor 'ray' needs Ray: pip install 'vloom[ray]' (or use --executor local)"
        ) from None
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet}
        if ray_address is None:
            kw["num_cpus"] = workers
        else:
            kw["address"] = ray_address
        try:
            ray.init(**kw)
        except (ConnectionError, RuntimeError) as e:
            where = ray_address or "a local instance"
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise IngestError(f"cannot start or reach Ray at {where}: {msg}") from None
        started = True
    try:
        yield _ray_run_all
    finally:
        if started:
            ray.shutdown()
